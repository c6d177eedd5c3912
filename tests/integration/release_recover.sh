#!/usr/bin/env bash
# One release at a time, and releases that die: a second release while one runs exits 75
# naming the holder's id; a release SIGKILLed during its deploy hook leaves an unfinished
# journal, the next release refuses (exit 4, pointing at recover), recover runs the rollback
# hook and restores (fingerprint identical), and history shows it; killed before anything
# changed -> aborted; killed after smoke passed -> recover finishes it (released).
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
# ---- two releases at once ----
add 20240201000000_a 'CREATE TABLE a (id int);'
waiting_hook deploy
start_release
wait_for "$WORK/in_deploy"
holder=$(sed -n 's/^deploy .*release=\([^ ]*\).*/\1/p' "$CALLS")
release
expect_rc 75 "second release"
grep -q "$holder" "$WORK/err" || fail "the refusal does not name release $holder: $(cat "$WORK/err")"
touch "$WORK/go"
wait "$bg" || fail "the first release failed: $(tail -3 "$WORK/bg.err")"
rm -f "$WORK/go" "$WORK/in_deploy"
pass "a second release exits 75 naming the holder ($holder)"

# ---- SIGKILL during the deploy hook ----
: >"$CALLS"
add 20240202000000_drop 'ALTER TABLE items DROP COLUMN name;'
before=$(fingerprint "$db")
kill_during deploy
killed=$victim
[[ -z $(q "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'name'") ]] ||
    fail "the migration had not run before the kill"
release
expect_rc 4 "release after a killed one"
grep -q "release $killed .*deployctl recover" "$WORK/err" || fail "refusal: $(cat "$WORK/err")"
hook deploy 0
: >"$CALLS"
recover
expect_rc 2 "recover"
assert_eq "rollback notify" "$(called)" "recover ran the rollback hook"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before the killed release"
assert_eq "$killed" "$(report .release)" "the report is the killed release's"
[[ $(report .pre_restore_snapshot) == 2* ]] || fail "no pre-restore snapshot named"
run_deployctl history --database "$url" --json
assert_eq "rolled-back true" "$(jq -r ".[] | select(.id == \"$killed\") | \"\(.outcome) \(.recovered)\"" "$WORK/out")" "history"
recover
expect_rc 0 "a second recover"
grep -q 'nothing to recover' "$WORK/out" || fail "second recover: $(cat "$WORK/out")"
pass "SIGKILL during deploy: next release refuses, recover rolls back and restores, history shows it"
rm -rf "${dir:?}/20240202000000_drop"

# ---- the runner lost: another machine (another state directory) recovers from the database ----
: >"$CALLS"
add 20240202500000_type 'ALTER TABLE items ALTER COLUMN name TYPE varchar(80);'
before=$(fingerprint "$db")
kill_during deploy
lost=$victim
hook deploy 0
: >"$CALLS"
DEPLOYCTL_STATE_DIR=$WORK/other-runner release
expect_rc 4 "a release on another runner"
grep -q "release $lost .*another runner" "$WORK/err" || fail "refusal on the other runner: $(cat "$WORK/err")"
DEPLOYCTL_STATE_DIR=$WORK/other-runner recover
expect_rc 2 "recover on another runner"
assert_eq "$lost" "$(report .release)" "recovered the lost release"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before the lost release"
assert_eq "rollback notify" "$(called)" "rollback hook on the other runner"
[[ -s $WORK/other-runner/releases/$db/$lost.jsonl ]] || fail "journal not copied from the database"
assert_eq rolled-back "$(psql_value "$db" "SELECT status FROM deployctl.releases WHERE id = '$lost'")" "mirror closed"
pass "a lost runner's release is found and undone from the database's copy of its journal"
rm -rf "${dir:?}/20240202500000_type"
# the first runner's own journal still says unfinished: its recover only closes it
: >"$CALLS"
recover
expect_rc 0 "the first runner's recover"
grep -q 'already closed by another runner' "$WORK/out" || fail "first runner's recover: $(cat "$WORK/out")"
assert_eq "" "$(called)" "no hook runs twice"
pass "the first runner's recover closes its journal without rolling back twice"

# ---- SIGTERM (a cancelled CI job) during the deploy hook: undone at once ----
: >"$CALLS"
add 20240202700000_type2 'ALTER TABLE items ALTER COLUMN name TYPE varchar(90);'
before=$(fingerprint "$db")
waiting_hook deploy
start_release
wait_for "$WORK/in_deploy"
kill -TERM "$bg"
set +e
wait "$bg"
rc=$?
set -e
rm -f "$WORK/in_deploy"
hook deploy 0
expect_rc 2 "a release stopped by SIGTERM"
assert_eq "$before" "$(fingerprint "$db")" "database identical after SIGTERM"
grep -q '^rollback' "$CALLS" || fail "no rollback hook after SIGTERM during deploy"
pass "SIGTERM during the deploy hook: the hook stopped, rolled back and restored at once (exit 2)"
rm -rf "${dir:?}/20240202700000_type2"

# ---- SIGKILL before anything changed ----
: >"$CALLS"
add 20240203000000_b 'CREATE TABLE b (id int);'
before=$(fingerprint "$db")
kill_during pre-release
hook pre-release 0
: >"$CALLS"
recover
expect_rc 2 "recover of a release killed before any change"
assert_eq aborted "$(report .outcome)" "outcome"
assert_eq "notify" "$(called)" "no rollback hook"
assert_eq "$before" "$(fingerprint "$db")" "nothing changed"
pass "killed before anything changed: recover marks it aborted"

# ---- SIGKILL after smoke passed (during post-release) ----
: >"$CALLS"
kill_during post-release
hook post-release 0
: >"$CALLS"
recover
expect_rc 0 "recover of a release killed after smoke"
assert_eq released "$(report .outcome)" "outcome"
assert_eq "post-release notify" "$(called)" "recover finished the hooks"
assert_eq "t" "$(q "SELECT to_regclass('public.b') IS NOT NULL")" "the migration stays"
release
expect_rc 0 "a release after recovery"
pass "killed after smoke passed: recover finishes it; releases run again"
