#!/usr/bin/env bash
# The journal cannot be written once the migrate phase began (a full disk, a lost NFS mount;
# injected with DEPLOYCTL_FAULT=release-journal-after-migrate:fail): the release changes
# nothing more (no compensation step runs unjournaled) and ends with exit 3 and a report
# saying the state is unknown, never exit 1 with the lock quietly released; recover then
# undoes it from the journal. The same when the journal fails during compensation: the
# rollback hook, whose start line cannot be written, does not run.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"
all_hooks
add 20240201000000_a 'CREATE TABLE a (id int);'
before=$(fingerprint "$db")
DEPLOYCTL_FAULT=release-journal-after-migrate:fail release
expect_rc 3 "release whose journal fails after migrate"
assert_eq interrupted "$(report .outcome)" "report outcome"
grep -q "cannot write the release journal" <<<"$(report .failure)" || fail "report failure: $(report .failure)"
grep -q "UNKNOWN" <<<"$(report .state.database)" || fail "report state: $(report .state.database)"
assert_eq "pre-release" "$(called)" "no hook after the journal failed"
pass "a journal failure after migrate: exit 3 with a report, nothing more done"
recover
expect_rc 2 "recover"
assert_eq "$before" "$(fingerprint "$db")" "database as before the release"
pass "recover undoes it from the journal"
rm -rf "${dir:?}/20240201000000_a"

# ---- the journal fails once compensation began ----
add 20240202000000_b 'CREATE TABLE b (id int);'
before=$(fingerprint "$db")
hook deploy 1
: >"$CALLS"
DEPLOYCTL_FAULT=release-journal-in-compensation:fail release
expect_rc 3 "release whose journal fails during compensation"
assert_eq interrupted "$(report .outcome)" "report outcome"
assert_eq "pre-release deploy" "$(called)" "the rollback hook did not run without its journal line"
assert_eq t "$(q "SELECT to_regclass('public.b') IS NOT NULL")" "no restore without its journal line"
hook deploy 0
: >"$CALLS"
recover
expect_rc 2 "recover"
assert_eq "rollback notify" "$(called)" "recover ran the rollback hook"
assert_eq "$before" "$(fingerprint "$db")" "database as before the release"
pass "a journal failure during compensation: no unjournaled step, exit 3; recover undoes it"
