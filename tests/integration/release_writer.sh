#!/usr/bin/env bash
# No write is lost: a stand-in application writes rows without pause during a release whose
# smoke test fails and that is undone by a restore. Every row the writer saw committed is
# afterwards either in the database (written after the restore) or in the pre-restore snapshot
# the report names (written before it); none is in neither; the report counts, per table, the
# rows that left the live database and are only in the pre-restore snapshot.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
add 20240201000000_widen 'ALTER TABLE items ALTER COLUMN name TYPE varchar(120);'
q "CREATE TABLE orders (id int PRIMARY KEY, note text)" >/dev/null

# The writer: one row per INSERT, its id logged once the INSERT returned (committed).
writer() {
    local i=0
    while [[ ! -e $WORK/stop ]]; do
        i=$((i + 1))
        if psql_value "$db" "INSERT INTO orders VALUES ($i, 'order $i')" >/dev/null 2>&1; then
            echo "$i" >>"$WORK/written"
        fi
        sleep 0.02
    done
}
writer &
writer_pid=$!
on_exit "touch '$WORK/stop'; kill $writer_pid 2>/dev/null"
sleep 0.5
app_status 500
release
app_status 200
sleep 0.5
touch "$WORK/stop"
wait "$writer_pid" || true
expect_rc 2 "release with a failing smoke test"
assert_eq restore "$(report '.compensation[-1].step')" "undone by restore"
pre=$(report .pre_restore_snapshot)
[[ $pre == 2* ]] || fail "no pre-restore snapshot in the report"

run_deployctl restore "$pre" --database "$url" --store "$STORE" --target "$(db_url "${db}_pre")"
[[ $rc -eq 0 ]] || fail "restore of $pre: $(cat "$WORK/err")"
drop_at_exit "${db}_pre"
written=$(wc -l <"$WORK/written")
[[ $written -ge 10 ]] || fail "the writer wrote only $written rows"
{
    psql_value "$db" "SELECT id FROM orders"
    psql_value "${db}_pre" "SELECT id FROM orders"
} | sort -n -u >"$WORK/kept"
lost=$(comm -23 <(sort -n -u "$WORK/written" | sort) <(sort "$WORK/kept"))
[[ -z $lost ]] || fail "rows written during the release are in neither the database nor $pre: $lost"
after=$(psql_value "$db" "SELECT count(*) FROM orders")
in_pre=$(psql_value "${db}_pre" "SELECT count(*) FROM orders")
removed=$(report '.rows_only_in_pre_restore["public.orders"] // 0')
[[ $removed -gt 0 ]] || fail "the report does not count the orders rows only in $pre: $(report .rows_only_in_pre_restore)"
grep -q "public.orders $removed" <<<"$(report .state.database)" || fail "state: $(report .state.database)"
grep -q "public.orders $removed" "$WORK/report.md" || fail "the Markdown report does not name them"
# a row written after the pre-release snapshot: in pre, not in the live database
only_pre=$(comm -13 <(psql_value "$db" "SELECT id FROM orders" | sort) <(psql_value "${db}_pre" "SELECT id FROM orders" | sort) | wc -l)
[[ $only_pre -gt 0 ]] || fail "no row only in the pre-restore snapshot: the writer did not run during the restore window"
pass "$written rows written during the release: none lost ($in_pre in pre-restore snapshot $pre, $after in the database)"
