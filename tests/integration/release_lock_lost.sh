#!/usr/bin/env bash
# A release whose advisory-lock session dies (pg_terminate_backend, a failover) while its
# deploy hook runs, and a second runner (another state directory) that recovers it meanwhile:
# the first release must notice before its next step, change nothing more, and end with exit 3
# ("interrupted", the lock was lost) — never "released" over the other runner's rollback.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
add 20240201000000_a 'CREATE TABLE a (id int);'
before=$(fingerprint "$db")
waiting_hook deploy
start_release
wait_for "$WORK/in_deploy"
first=$(sed -n 's/^deploy .*release=\([^ ]*\).*/\1/p' "$CALLS")
killed=$(psql_value postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$db' AND application_name LIKE '%release lock%'")
assert_eq 1 "$killed" "the first release's lock session was terminated"

# the second runner takes the lock and undoes the release from the database's copy
DEPLOYCTL_STATE_DIR=$WORK/other recover
expect_rc 2 "recover on another runner while the first release is alive"
assert_eq "$first" "$(report .release)" "the second runner recovered the first release"
assert_eq "$before" "$(fingerprint "$db")" "the second runner restored the database"

# the first release resumes after its deploy hook: it must stop, not go on to smoke
: >"$CALLS"
touch "$WORK/go"
set +e
wait "$bg"
rc=$?
set -e
rm -f "$WORK/go" "$WORK/in_deploy"
[[ $rc -ne 0 ]] || fail "the first release exited 0 (released) after another runner undid it"
assert_eq 3 "$rc" "the first release's exit"
grep -q "lock .* was lost" "$WORK/bg.err" || fail "no lock-lost message: $(tail -3 "$WORK/bg.err")"
assert_eq interrupted "$(jq -r .outcome "$WORK/bg.json")" "the first release's report"
grep -q "another runner" <<<"$(jq -r .failure "$WORK/bg.json")" || fail "report failure: $(jq -r .failure "$WORK/bg.json")"
if grep -qE '^(post-release|rollback)' "$CALLS"; then fail "hooks ran after the lock was lost: $(called)"; fi
assert_eq "$before" "$(fingerprint "$db")" "the first release changed nothing more"
assert_eq rolled-back "$(psql_value "$db" "SELECT status FROM deployctl.releases WHERE id = '$first'")" "the database copy keeps the second runner's outcome"
pass "a release whose lock was lost and taken over exits 3 without further changes"

# its own runner's recover then only closes the local journal
hook deploy 0
: >"$CALLS"
recover
expect_rc 0 "recover on the first runner"
grep -q 'already closed by another runner' "$WORK/out" || fail "first runner's recover: $(cat "$WORK/out")"
assert_eq "" "$(called)" "no hook runs twice"
release
expect_rc 0 "the next release"
pass "the first runner's recover closes its journal; the next release runs"
