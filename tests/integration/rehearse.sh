#!/usr/bin/env bash
# `deployctl rehearse` on a sample database: a migration that rewrites a 200k-row table is seen
# holding ACCESS EXCLUSIVE for as long as the rewrite takes and reported rewritten, one that adds
# a nullable column holds it for next to nothing; --max-lock turns the first into exit 4; the
# scratch database is gone after success, a failing migration and SIGINT; production untouched.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
store=file://$WORK/store
dir=$WORK/migrations
mkdir -p "$dir/20240101000000_init"
printf 'provider = "postgresql"\n' >"$dir/migration_lock.toml"
cat >"$dir/20240101000000_init/migration.sql" <<'SQL'
CREATE TABLE inventory_items (id serial PRIMARY KEY, name text NOT NULL, quantity integer NOT NULL);
SQL
run_deployctl migrate deploy --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "init: $(cat "$WORK/err")"
psql_admin "$db" -c "INSERT INTO inventory_items (name, quantity) SELECT 'item ' || g, g % 1000 FROM generate_series(1, 200000) g"
run_deployctl backup --database "$url" --store "$store" --quiet
[[ $rc -eq 0 ]] || fail "backup: $(cat "$WORK/err")"
before=$(fingerprint "$db")

mkdir -p "$dir/20240201000000_quantity_numeric" "$dir/20240202000000_add_note"
echo 'ALTER TABLE inventory_items ALTER COLUMN quantity TYPE numeric;' \
    >"$dir/20240201000000_quantity_numeric/migration.sql"
echo 'ALTER TABLE inventory_items ADD COLUMN note text;' >"$dir/20240202000000_add_note/migration.sql"

# This test's scratch databases (named after $db: other tests rehearse on the cluster too).
scratch_left() {
    local label
    label=$(tr 'A-Z' 'a-z' <<<"$db" | tr -cd 'a-z0-9_' | cut -c1-24)
    psql_value postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'deployctl_rehearse_${label}_%'"
}
expect_no_scratch() { # what: none left, or what the run said of its scratch database
    [[ $(scratch_left) -eq 0 ]] ||
        fail "$1: a scratch database is left; the run said: $(grep -i 'scratch' "$WORK/err" | tail -3)"
}

# A lock limit the rewrite exceeds: exit 4, the verdict says why.
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --max-lock 50ms \
    --json --report-md "$WORK/report.md"
[[ $rc -eq 4 ]] || fail "rehearse with --max-lock 50ms: expected exit 4, got $rc: $(cat "$WORK/err")"
out=$WORK/out
jq -e '.ok == false and .over_threshold == 1 and .scratch_dropped' "$out" >/dev/null ||
    fail "summary: $(cat "$out")"
rewrite=$(jq -c '.statements[] | select(.migration == "20240201000000_quantity_numeric")' "$out")
[[ $(jq -r '.rewrites[0].relation' <<<"$rewrite") == public.inventory_items ]] ||
    fail "the rewrite is not reported: $rewrite"
lock=$(jq -r '[.locks[] | select(.relation == "public.inventory_items" and .mode == "ACCESS EXCLUSIVE")][0].seconds' <<<"$rewrite")
took=$(jq -r '.seconds' <<<"$rewrite")
awk -v l="$lock" -v t="$took" 'BEGIN { exit !(l >= 0.05 && l >= t * 0.5) }' ||
    fail "ACCESS EXCLUSIVE should be held about as long as the rewrite ($took s): $lock s"
jq -e '.over_threshold and (.verdict | test("ACCESS EXCLUSIVE on public.inventory_items for .*rewritten .*expand/contract"))' \
    <<<"$rewrite" >/dev/null || fail "verdict: $rewrite"
jq -e '.wal_bytes > 1000000' <<<"$rewrite" >/dev/null || fail "WAL of the rewrite: $rewrite"
jq -e '.lint | length > 0' <<<"$rewrite" >/dev/null || fail "lint's findings beside it: $rewrite"
note=$(jq -c '.statements[] | select(.migration == "20240202000000_add_note")' "$out")
jq -e '(.rewrites | length) == 0 and (.over_threshold | not)' <<<"$note" >/dev/null || fail "add column: $note"
nlock=$(jq -r '[.locks[] | select(.mode == "ACCESS EXCLUSIVE")][0].seconds // 0' <<<"$note")
awk -v l="$nlock" 'BEGIN { exit !(l < 0.05) }' || fail "ADD COLUMN held ACCESS EXCLUSIVE for $nlock s"
grep -q 'deployctl rehearse: FAILED' "$WORK/report.md" || fail "markdown: $(cat "$WORK/report.md")"
grep -q 'expand/contract' "$WORK/report.md" || fail "markdown verdict: $(cat "$WORK/report.md")"
expect_no_scratch "scratch database dropped after the rehearsal"
echo "rewrite of 200k rows: statement $took s, ACCESS EXCLUSIVE $lock s; add column lock $nlock s"
pass "rewrite reported with its ACCESS EXCLUSIVE lock; --max-lock 50ms exits 4"

# A large limit passes, human text names the verdicts.
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --max-lock 1h
[[ $rc -eq 0 ]] || fail "rehearse with --max-lock 1h: $rc $(cat "$WORK/err")"
grep -q 'rewritten' "$WORK/out" || fail "text report: $(cat "$WORK/out")"
cat "$WORK/out" # the numbers, in the test's log
expect_no_scratch "scratch database dropped after success"
pass "a large --max-lock passes"

# A failing migration: exit 4, scratch dropped.
mkdir -p "$dir/20240203000000_broken"
echo 'ALTER TABLE no_such_table ADD COLUMN x int;' >"$dir/20240203000000_broken/migration.sql"
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --max-lock 1h --json
[[ $rc -eq 4 ]] || fail "failing migration: expected exit 4, got $rc: $(cat "$WORK/err")"
jq -e '.failed == "20240203000000_broken"' "$WORK/out" >/dev/null || fail "failed: $(cat "$WORK/out")"
expect_no_scratch "scratch database dropped after a failing migration"
pass "a failing migration is reported and the scratch database dropped"

# SIGINT during a slow statement.
echo 'SELECT pg_sleep(5);' >"$dir/20240203000000_broken/migration.sql"
set +e
"$DEPLOYCTL" rehearse --database "$url" --store "$store" --migrations "$dir" --max-lock 1h \
    >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 100); do
    [[ $(psql_value postgres "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%'
        AND datname LIKE 'deployctl_rehearse_$(tr 'A-Z' 'a-z' <<<"$db" | tr -cd 'a-z0-9_' | cut -c1-24)_%'") -eq 1 ]] && break
    sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "interrupted rehearsal exited 0"
grep -qi 'interrupted' "$WORK/err" || fail "no interruption message: $(cat "$WORK/err")"
expect_no_scratch "scratch database dropped after SIGINT"
pass "SIGINT during a slow statement drops the scratch database"

# --scratch URL: created, rehearsed in, dropped; one that exists is refused and left alone.
scratch=$(target_db scratch)
echo 'SELECT 1;' >"$dir/20240203000000_broken/migration.sql"
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --max-lock 1h \
    --scratch "$(db_url "$scratch")" --json
[[ $rc -eq 0 ]] || fail "--scratch: expected exit 0, got $rc: $(cat "$WORK/err")"
jq -e --arg s "$scratch" '.scratch_database == $s and .scratch_dropped' "$WORK/out" >/dev/null ||
    fail "--scratch: $(cat "$WORK/out")"
db_exists "$scratch" && fail "--scratch database left behind"
kept=$(new_db kept)
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --scratch "$(db_url "$kept")" --quiet
[[ $rc -eq 1 ]] || fail "--scratch naming an existing database: expected exit 1, got $rc"
db_exists "$kept" || fail "--scratch naming an existing database dropped it"
pass "--scratch URL is created and dropped; an existing database is refused and kept"

# --scratch naming production is refused before anything is restored.
run_deployctl rehearse --database "$url" --store "$store" --migrations "$dir" --scratch "$url" --quiet
expect_error_line "--scratch production" "production database"
# ... also when the database's name holds a '/' (legal): the identity is not cut at it.
slash=$(new_db "app/prod")
slash_url=$DC_PG_URL_BASE/${slash//\//%2F}
run_deployctl rehearse --database "$slash_url" --store "$store" --migrations "$dir" --scratch "$slash_url" --quiet
expect_error_line "--scratch production, a name with a slash" "production database"

# Temporary files and index sizes: an index build on the 200k-row table under the smallest
# maintenance_work_mem spills its sort to temporary files, and the index it built has a size.
idx=$WORK/migrations-index
mkdir -p "$idx/20240204000000_name_index"
cp -r "$dir/20240101000000_init" "$dir/migration_lock.toml" "$idx/"
cat >"$idx/20240204000000_name_index/migration.sql" <<'SQL'
SET LOCAL maintenance_work_mem = '1MB';
CREATE INDEX inventory_items_name_idx ON inventory_items (name);
SQL
run_deployctl rehearse --database "$url" --store "$store" --migrations "$idx" --max-lock 1h --json \
    --report-md "$WORK/index.md"
[[ $rc -eq 0 ]] || fail "index build rehearsal: $rc $(cat "$WORK/err")"
build=$(jq -c '.statements[] | select(.statement | test("^CREATE INDEX"))' "$WORK/out")
jq -e '.indexes[0].relation == "public.inventory_items_name_idx" and .indexes[0].bytes > 1000000' \
    <<<"$build" >/dev/null || fail "index size: $build"
jq -e '.temp_bytes > 1000000 and .temp_files >= 1' <<<"$build" >/dev/null ||
    fail "temporary files of the index build: $build"
jq -e '.verdict | test("index public.inventory_items_name_idx built")' <<<"$build" >/dev/null ||
    fail "verdict: $build"
set_stmt=$(jq -c '.statements[] | select(.statement | test("^SET"))' "$WORK/out")
jq -e '.temp_bytes == 0 and (.indexes | length) == 0' <<<"$set_stmt" >/dev/null ||
    fail "SET wrote temporary files or built an index: $set_stmt"
grep -q '| Temp |' "$WORK/index.md" || fail "markdown has no Temp column: $(cat "$WORK/index.md")"
grep -q 'index public.inventory_items_name_idx built' "$WORK/index.md" || fail "markdown: $(cat "$WORK/index.md")"
run_deployctl rehearse --database "$url" --store "$store" --migrations "$idx" --max-lock 1h
grep -Eq 'temp [0-9.]+ [KMG]i?B in [0-9]+ file' "$WORK/out" || fail "text: no temp size: $(cat "$WORK/out")"
grep -q 'index public.inventory_items_name_idx built, ' "$WORK/out" || fail "text: no index size: $(cat "$WORK/out")"
echo "index build: $(jq -r '"\(.seconds) s, temp \(.temp_bytes) bytes in \(.temp_files) files, index \(.indexes[0].bytes) bytes"' <<<"$build")"
pass "an index build reports its temporary files and the index's size (JSON, text, Markdown)"

# Without pg_monitor (pg_ls_tmpdir denied) the index build's temporary files cannot be seen:
# the statistics counter is not flushed inside the migration's transaction, so the answer is
# unknown (null, "?"), never a made-up 0 B.
role=t_rehearse_nomon_$$
psql_admin postgres -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN CREATEDB PASSWORD 'Nomon-pw-1'" >/dev/null
on_exit "psql_admin postgres -c 'DROP ROLE IF EXISTS $role' >/dev/null 2>&1"
# a member of the snapshot's owner (the restore gives its tables back to it), not a superuser
psql_admin postgres -c "GRANT dctest TO $role" >/dev/null
run_deployctl rehearse --database "postgresql://$role:Nomon-pw-1@127.0.0.1:$DC_PG_PORT/$db" --store "$store" \
    --migrations "$idx" --max-lock 1h --json
[[ $rc -eq 0 ]] || fail "rehearsal without pg_monitor: $rc $(cat "$WORK/err")"
build=$(jq -c '.statements[] | select(.statement | test("^CREATE INDEX"))' "$WORK/out")
jq -e '.temp_bytes == null and .temp_files == null' <<<"$build" >/dev/null ||
    fail "temporary files without pg_monitor: $build"
run_deployctl rehearse --database "postgresql://$role:Nomon-pw-1@127.0.0.1:$DC_PG_PORT/$db" --store "$store" \
    --migrations "$idx" --max-lock 1h
grep -Eq 'temp \?' "$WORK/out" || fail "text: temp is not '?': $(cat "$WORK/out")"
expect_no_scratch "scratch database dropped by a role without pg_monitor"
pass "without pg_monitor the temporary files are unknown (null, ?), not 0"

assert_eq "$before" "$(fingerprint "$db")" "production untouched"
assert_eq 1 "$(psql_value "$db" "SELECT count(*) FROM _prisma_migrations")" "production's history untouched"
pass "production untouched"

# release --rehearse: the rehearsal runs on the release's own pre-release snapshot (taken inside
# the maintenance window), and over --max-lock refuses the release (exit 4) before any migration
# touches production: maintenance ended, the snapshot unpinned, the verdicts in the journal and
# both reports. Under it the release goes on.
rm -r "$dir/20240203000000_broken"
hooks=$WORK/hooks
mkdir -p "$hooks"
for h in maintenance-on maintenance-off; do
    printf '#!/bin/sh\necho %s >>"%s/hooks.log"\necho "%s $DEPLOYCTL_OUTCOME" >>"%s/outcomes.log"\n' \
        "$h" "$WORK" "$h" "$WORK" >"$hooks/$h"
    chmod +x "$hooks/$h"
done
release() { # report max-lock
    run_deployctl release --database "$url" --store "$store" --migrations "$dir" --hooks "$hooks" \
        --rehearse --max-lock "$2" --report "$WORK/$1.json"
}
run_deployctl release --database "$url" --store "$store" --migrations "$dir" --rehearse --dry-run
grep -q 'backup (tag release, verified), rehearse (on that snapshot), migrate' "$WORK/out" ||
    fail "the dry run's plan does not show the rehearsal: $(cat "$WORK/out")"
# A migration holding a password literal, which fails in the rehearsal (no such role): its
# statement reaches the journal, its database copy and both reports, masked.
mkdir -p "$dir/20240203000001_role_password"
echo "ALTER ROLE deployctl_no_such_role PASSWORD 'hunter2Secret9';" \
    >"$dir/20240203000001_role_password/migration.sql"
release refused 50ms
[[ $rc -eq 4 ]] || fail "release --rehearse --max-lock 50ms: expected exit 4, got $rc: $(cat "$WORK/err")"
rep=$WORK/refused.json
assert_eq refused "$(jq -r .outcome "$rep")" "outcome of the refused release"
assert_eq rehearse "$(jq -r .failed_phase "$rep")" "the phase that refused"
snap=$(jq -r .snapshot "$rep")
[[ $snap == 2* ]] || fail "the refused release took no pre-release snapshot: $(cat "$rep")"
assert_eq "$snap" "$(jq -r .rehearsal.snapshot "$rep")" "rehearsed snapshot = the release's snapshot (report)"
journal=$(jq -r .journal "$rep")
assert_eq "$snap" "$(jq -r 'select(.event == "snapshot") | .id' "$journal")" "pre-release snapshot (journal)"
assert_eq "$snap" "$(jq -r 'select(.event == "rehearsal") | .snapshot' "$journal")" "rehearsed snapshot (journal)"
jq -se 'map(select(.event == "rehearsal"))[0] | .ok == false and .over_threshold == 1 and
       (.verdicts[0] | test("quantity_numeric line 1: ALTER TABLE .*ACCESS EXCLUSIVE on public.inventory_items .*over --max-lock"))' \
    "$journal" >/dev/null || fail "journal's rehearsal event: $(grep rehearsal "$journal")"
[[ -z $(jq -r 'select(.event == "phase" and .phase == "migrate") | .phase' "$journal") ]] ||
    fail "the migrate phase started after a refusal"
jq -e '.rehearsal.statements[] | select(.migration == "20240201000000_quantity_numeric") | .over_threshold' \
    "$rep" >/dev/null || fail "report's rehearsal: $(jq -c .rehearsal "$rep")"
grep -q "Rehearsal on snapshot \`$snap\`: FAILED" "$WORK/refused.md" || fail "markdown: $(cat "$WORK/refused.md")"
grep -q ':x: `20240201000000_quantity_numeric` line 1: ALTER TABLE inventory_items ALTER COLUMN quantity TYPE numeric: ACCESS EXCLUSIVE' \
    "$WORK/refused.md" || fail "markdown verdict line: $(cat "$WORK/refused.md")"
grep -q 'rehearse: 20240201000000_quantity_numeric line 1: ALTER TABLE inventory_items' "$WORK/err" ||
    fail "the verdict is not logged: $(cat "$WORK/err")"
assert_eq "maintenance-on maintenance-off" "$(paste -sd' ' "$WORK/hooks.log")" "maintenance window ended"
grep -qx "maintenance-off refused" "$WORK/outcomes.log" || fail "maintenance-off's DEPLOYCTL_OUTCOME: $(cat "$WORK/outcomes.log")"
grep -q "### Refused by the rehearsal, nothing migrated" "$WORK/refused.md" || fail "markdown heading: $(cat "$WORK/refused.md")"
grep -q -- "- \[x\] System verified — database: unchanged" "$WORK/refused.md" || fail "markdown: not verified: $(cat "$WORK/refused.md")"
grep -q "Post-mortem" "$WORK/refused.md" && fail "markdown: a refusal asks for a post-mortem"
assert_eq "$before" "$(fingerprint "$db")" "refused release changed nothing"
[[ -z $(find "$WORK/store" -path "*$snap*" -name 'pin-*') ]] || fail "snapshot $snap left pinned"
expect_no_scratch "scratch database dropped after release --rehearse"
jq -e '.rehearsal.failed == "20240203000001_role_password"' "$rep" >/dev/null ||
    fail "the failing migration is not in the report: $(jq -c '.rehearsal | del(.statements)' "$rep")"
grep -q "ALTER ROLE deployctl_no_such_role PASSWORD" "$journal" || fail "the statement is not in the journal"
for f in "$journal" "$rep" "$WORK/refused.md" "$WORK/err"; do
    ! grep -q hunter2Secret9 "$f" || fail "the password literal is in $f: $(grep hunter2Secret9 "$f")"
done
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM deployctl.release_events WHERE event::text LIKE '%hunter2Secret9%'")" \
    "the password literal in deployctl.release_events"
rm -r "$dir/20240203000001_role_password"
pass "release --rehearse over --max-lock: exit 4 on its own pre-release snapshot, production untouched, maintenance ended, unpinned, no password"

rm "$WORK/hooks.log"
release released 1h
[[ $rc -eq 0 ]] || fail "release --rehearse --max-lock 1h: $rc $(cat "$WORK/err")"
rep=$WORK/released.json
snap=$(jq -r .snapshot "$rep")
assert_eq "$snap" "$(jq -r .rehearsal.snapshot "$rep")" "rehearsed snapshot = the release's snapshot"
assert_eq true "$(jq -r .rehearsal.ok "$rep")" "the rehearsal passed"
assert_eq "backup rehearse migrate" "$(jq -r '[.phases[].name | select(. == "backup" or . == "rehearse" or . == "migrate")] | join(" ")' "$rep")" "phase order"
assert_eq numeric "$(psql_value "$db" "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'inventory_items'::regclass AND attname = 'quantity'")" "released"
assert_eq "maintenance-on maintenance-off" "$(paste -sd' ' "$WORK/hooks.log")" "maintenance window"
expect_no_scratch "scratch database dropped after a passing release --rehearse"
pass "release --rehearse under --max-lock rehearses on its snapshot, then releases"
