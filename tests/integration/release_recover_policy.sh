#!/usr/bin/env bash
# recover decides like the release it recovers: the on_failure the release recorded in its
# journal (none -> the migrations are left, exit 3), unless --on-failure is given explicitly
# (the override is logged and reported); migrations this release applied that the recovering
# checkout lacks still count as this release's (no down.sql: restore); a database copy of the
# journal with a hole is refused unless the operator decides explicitly; one that ends at the
# deploy phase's start (its hook's start may be the lost copy) runs the rollback hook; a
# rollback hook killed before its "ok" line is re-run by recover with DEPLOYCTL_ATTEMPT=2.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"
all_hooks
has_table() { q "SELECT to_regclass('public.$1') IS NOT NULL"; }

# ---- the release's own policy: none ----
add 20240201000000_a 'CREATE TABLE a (id int);'
kill_during deploy --on-failure none
hook deploy 0
recover
expect_rc 3 "recover of a release run with --on-failure none"
grep -q "left as they are" "$WORK/err" "$WORK/out" || fail "no 'left as they are': $(cat "$WORK/err" "$WORK/out")"
assert_eq t "$(has_table a)" "the migration is left applied"
pass "recover without a flag keeps the release's on_failure none (exit 3, migration left)"

# ---- an explicit --on-failure overrides it ----
recover --on-failure restore
expect_rc 2 "recover --on-failure restore"
assert_eq f "$(has_table a)" "restored"
assert_eq "none restore" "$(report '"\(.on_failure_override.recorded) \(.on_failure_override.used)"')" "override reported"
grep -q "overrides the release's own none" "$WORK/err" || fail "override not logged: $(cat "$WORK/err")"
pass "recover --on-failure restore overrides the recorded none, logged and reported"
rm -rf "${dir:?}/20240201000000_a"

# ---- recover from an older checkout that lacks the release's migration ----
add 20240202000000_b 'CREATE TABLE b (id int);'
before=$(fingerprint "$db")
kill_during deploy
hook deploy 0
old=$WORK/oldmig
mkdir -p "$old"
cp -r "$dir/20240101000000_init" "$old/"
run_deployctl recover --database "$url" --migrations "$old" --store "$STORE" --hooks "$HOOKS" --report "$REPORT"
expect_rc 2 "recover from a checkout without migration b"
assert_eq f "$(has_table b)" "migration b undone"
assert_eq "$before" "$(fingerprint "$db")" "database as before the release"
assert_eq restore "$(report '[.compensation[] | select(.status == "ok") | .step] | last')" "undone by a restore"
pass "a migration missing from the recovering checkout counts as this release's: restored"
rm -rf "${dir:?}/20240202000000_b"

# ---- a database copy of the journal with a hole ----
add 20240203000000_c 'CREATE TABLE c (id int);'
kill_during deploy
lost=$victim
hook deploy 0
gone=$(psql_value "$db" "SELECT seq FROM deployctl.release_events WHERE release_id = '$lost' AND event->>'event' = 'migrations'")
q "DELETE FROM deployctl.release_events WHERE release_id = '$lost' AND seq = $gone" >/dev/null
: >"$CALLS"
DEPLOYCTL_STATE_DIR=$WORK/other recover
expect_rc 4 "recover from a database copy with a hole"
grep -q "event $gone is missing" "$WORK/err" || fail "the refusal does not name the gap: $(cat "$WORK/err")"
assert_eq t "$(has_table c)" "nothing undone on a guess"
assert_eq "" "$(called)" "no hook ran"
DEPLOYCTL_STATE_DIR=$WORK/other recover --on-failure restore
expect_rc 2 "recover with an explicit decision"
assert_eq f "$(has_table c)" "restored"
grep -q '^rollback' "$CALLS" || fail "the rollback hook did not run (the worst is assumed): $(called)"
pass "a hole in the database copy is refused (exit 4) until the operator decides explicitly"
rm -rf "${dir:?}/20240203000000_c"
recover # this runner's journal of it: only closed (the other runner undid it)
expect_rc 0 "closing the journal here"

# ---- a copy that ends at the deploy phase's start ----
add 20240204000000_d 'CREATE TABLE d (id int);'
kill_during deploy
lost=$victim
hook deploy 0
q "DELETE FROM deployctl.release_events WHERE release_id = '$lost' AND event->>'hook' = 'deploy'" >/dev/null
: >"$CALLS"
DEPLOYCTL_STATE_DIR=$WORK/third recover
expect_rc 2 "recover from a copy that ends at the deploy phase's start"
grep -q '^rollback' "$CALLS" || fail "the rollback hook did not run: $(called)"
assert_eq f "$(has_table d)" "undone"
pass "a copy ending at the deploy phase's start: the deploy hook may have started, rolled back"
rm -rf "${dir:?}/20240204000000_d"
recover
expect_rc 0 "closing the journal here"

# ---- killed while the rollback hook runs: recover tells the hook it is a second attempt ----
add 20240205000000_e 'CREATE TABLE e (id int);'
: >"$CALLS"
hook deploy 1
waiting_hook rollback
start_release
wait_for "$WORK/in_rollback"
kill_release rollback
hook rollback 0
hook deploy 0
grep -q '^rollback .* attempt=1 ' "$CALLS" || fail "first rollback attempt: $(cat "$CALLS")"
recover
expect_rc 2 "recover after a kill in the rollback hook"
grep -q '^rollback .* attempt=2 ' "$CALLS" || fail "the re-run is not attempt 2: $(cat "$CALLS")"
assert_eq f "$(has_table e)" "undone"
pass "a rollback hook killed before its ok line is re-run with DEPLOYCTL_ATTEMPT=2"
