#!/usr/bin/env bash
# Writers while a restore takes its pre-restore snapshot: a row written into a table and a
# large object written in place both wait (so neither can fall between the safety snapshot and
# the restore), while reads of both go on. And large objects whose pieces do not fall on
# pg_largeobject's 2 KiB pages restore with --jobs (two loaders never write one page at once).
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
store=$WORK/store
psql_admin "$db" <<'SQL' >/dev/null
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 1000) g;
SELECT lo_from_bytea(777001, 'an invoice scan');
-- 1,600,000 bytes: 320 pieces of 5,000 bytes with --chunk-size 5000, few on a page boundary.
SELECT lo_from_bytea(777002, decode(string_agg(md5(g::text), ''), 'hex'))
FROM generate_series(1, 100000) g;
SQL
run_deployctl backup --database "$url" --store "$store" --chunk-size 5000 --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
pieces=$(jq '[.large_objects[] | select(.oid == 777002) | .chunks[]] | length' "$store/$db/$id/manifest.json")
[[ $pieces -ge 5 ]] || fail "the large object was not cut into pieces ($pieces)"

# --jobs 2 into a new database: every piece lands, on shared pages too.
copy="${db}_parallel"
drop_at_exit "$copy"
run_deployctl restore "$id" --database "$url" --target "$(db_url "$copy")" --store "$store" --jobs 2
[[ $rc -eq 0 ]] || fail "parallel restore of large objects in unaligned pieces failed: $(cat "$WORK/err")"
diff -u <(fingerprint "$db") <(fingerprint "$copy") >"$WORK/fp.diff" ||
    fail "the parallel restore differs: $(head -20 "$WORK/fp.diff")"
pass "a large object in $pieces unaligned pieces restores with --jobs 2"

# An in-place restore that lingers in its pre-restore snapshot (the backup's fault point).
psql_admin "$db" -c "INSERT INTO orders VALUES (1001, 'written after the snapshot')" >/dev/null
DEPLOYCTL_FAULT=before-manifest:sleep=6 "$DEPLOYCTL" restore "$id" --database "$url" --store "$store" \
    --yes >"$WORK/restore.out" 2>"$WORK/restore.err" &
restore_pid=$!
on_exit "kill $restore_pid 2>/dev/null"
for _ in $(seq 100); do
    held=$(psql_value "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE a.datname = current_database() AND a.application_name = 'deployctl restore'
        AND l.relation = 'orders'::regclass
        AND l.mode = 'ExclusiveLock' AND l.granted")
    [[ $held -eq 1 ]] && grep -q "taking a pre-restore snapshot" "$WORK/restore.err" && break
    sleep 0.1
done
[[ $held -eq 1 ]] || fail "the restore never locked the table: $(cat "$WORK/restore.err")"

try() { # sql: prints ok, or the error
    PGOPTIONS='-c statement_timeout=1500 -c client_min_messages=warning' \
        "$DC_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres \
        -d "$db" -c "$1" >/dev/null 2>"$WORK/try.err" && echo ok || head -n 1 "$WORK/try.err"
}
assert_eq ok "$(try "SELECT count(*) FROM orders")" "reading a table during the safety snapshot"
assert_eq ok "$(try "SELECT lo_get(777001)")" "reading a large object during the safety snapshot"
[[ $(try "INSERT INTO orders VALUES (1002, 'too late')") == *"statement timeout"* ]] ||
    fail "a row was written during the safety snapshot: $(cat "$WORK/try.err")"
[[ $(try "SELECT lo_put(777001, 0, 'FORGED')") == *"statement timeout"* ]] ||
    fail "a large object was written during the safety snapshot: $(cat "$WORK/try.err")"
pass "during the safety snapshot, table and large-object writers wait and readers go on"

wait "$restore_pid" || fail "the restore failed: $(cat "$WORK/restore.err")"
safety=$(grep -o 'pre-restore snapshot [0-9a-fTZ-]* taken' "$WORK/restore.err" | cut -d' ' -f3)
assert_eq "an invoice scan" "$(psql_value "$db" "SELECT convert_from(lo_get(777001), 'UTF8')")" "the restored large object"
assert_eq 1000 "$(psql_value "$db" "SELECT count(*) FROM orders")" "rows after the restore"
before="${db}_before"
drop_at_exit "$before"
run_deployctl restore "$safety" --database "$url" --target "$(db_url "$before")" --store "$store"
[[ $rc -eq 0 ]] || fail "restoring the pre-restore snapshot failed: $(cat "$WORK/err")"
assert_eq "written after the snapshot" "$(psql_value "$before" "SELECT note FROM orders WHERE id = 1001")" "the late write"
assert_eq 0 "$(psql_value "$before" "SELECT count(*) FROM orders WHERE id = 1002")" "the refused write"
pass "the restore went through; its pre-restore snapshot $safety holds the write made before it"
