#!/usr/bin/env bash
# Releases that fail and are undone, one cell each: the deploy hook fails after a destructive
# migration (rollback hook, then restore: the database identical to before, exit 2, the
# pre-restore snapshot named); an additive migration with down.sql under on_failure=auto is
# undone by its down.sql and keeps the rows written meanwhile; a migration failing inside its
# transaction changes nothing and is resolved as rolled back; a failing rollback hook is exit 3
# with the state in the report; a precheck refusal is exit 4 with nothing changed.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
psql_cmd="'$DC_PG_BIN/psql' -X -q -h '$DC_PG_SOCKET' -p $DC_PG_PORT -U postgres -d '$db'"

# ---- destructive migration, deploy hook fails -> rollback hook + restore ----
add 20240201000000_drop_name 'ALTER TABLE items DROP COLUMN name;'
before=$(fingerprint "$db")
hook deploy 1 "$psql_cmd -c \"INSERT INTO items DEFAULT VALUES\""
release
expect_rc 2 "deploy hook failure"
assert_eq "pre-release deploy rollback notify" "$(called)" "hooks"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before the release"
assert_eq rolled-back "$(report .outcome)" "outcome"
assert_eq deploy "$(report .failed_phase)" "failed phase"
assert_eq restore "$(report '.compensation[-1].step')" "compensation by restore"
pre=$(report .pre_restore_snapshot)
[[ $pre == 2* ]] || fail "no pre-restore snapshot named in the report"
grep -q "$pre" "$WORK/report.md" || fail "the Markdown report does not name $pre"
run_deployctl snapshots --database "$url" --store "$STORE" --json
assert_eq pre-restore "$(jq -r ".[] | select(.id == \"$pre\") | .tag" "$WORK/out")" "pre-restore tag"
grep -q "^rollback phase=rollback .* outcome=rolling-back" "$CALLS" || fail "rollback env: $(cat "$CALLS")"
pass "deploy failure: rollback hook, restore, identical fingerprint, pre-restore $pre named"
rm -rf "${dir:?}/20240201000000_drop_name"

# ---- smoke fails (the app answers 500) -> rollback hook + restore; writes kept in pre-restore ----
: >"$CALLS"
hook deploy 0 "$psql_cmd -c \"INSERT INTO items (name) VALUES ('by the new version')\""
add 20240201500000_type 'ALTER TABLE items ALTER COLUMN name TYPE varchar(100);'
before=$(fingerprint "$db")
app_status 500
release
app_status 200
expect_rc 2 "smoke failure"
assert_eq "pre-release deploy rollback notify" "$(called)" "hooks"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before the release"
assert_eq smoke "$(report .failed_phase)" "failed phase"
assert_eq false "$(report .smoke.passed)" "smoke result"
[[ $(report '.smoke.attempts | length') -ge 2 ]] || fail "smoke attempts not all reported"
assert_eq 500 "$(report '.smoke.attempts[0].status')" "attempt status"
pre=$(report .pre_restore_snapshot)
run_deployctl restore "$pre" --database "$url" --store "$STORE" --target "$(db_url "${db}_pre")"
[[ $rc -eq 0 ]] || fail "restore of the pre-restore snapshot: $(cat "$WORK/err")"
drop_at_exit "${db}_pre"
assert_eq 1 "$(psql_value "${db}_pre" "SELECT count(*) FROM items WHERE name = 'by the new version'")" \
    "the new version's write is in the pre-restore snapshot"
pass "smoke failure: rollback hook, restore, identical fingerprint; the new version's write kept in $pre"
rm -rf "${dir:?}/20240201500000_type"
hook deploy 1

# ---- a verification query fails -> restore ----
: >"$CALLS"
mkdir -p "$WORK/verify"
echo "SELECT count(*) = 0 FROM items" >"$WORK/verify/no_items.sql"
add 20240201600000_idx 'CREATE TABLE idx (id int);'
before=$(fingerprint "$db")
release --verify-queries "$WORK/verify"
expect_rc 2 "verification query"
assert_eq verify "$(report .failed_phase)" "failed phase"
report .failure | grep -q 'no_items' || fail "failure does not name the query: $(report .failure)"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before"
assert_eq "pre-release notify" "$(called)" "no deploy, no rollback hook"
pass "a failing verification query: restored before any deploy"
rm -rf "${dir:?}/20240201600000_idx"

# ---- a destructive migration deleting rows on purpose passes verify's row counts ----
: >"$CALLS"
hook deploy 0
q "INSERT INTO items (name) SELECT 'old ' || g FROM generate_series(1, 300) g" >/dev/null
add 20240201700000_purge "DELETE FROM items WHERE name LIKE 'old %';"
release
expect_rc 0 "a destructive migration deleting rows"
assert_eq 0 "$(q "SELECT count(*) FROM items WHERE name LIKE 'old %'")" "rows deleted"
pass "verify does not hold a table a destructive migration names to the snapshot's row count"
hook deploy 1

# ---- additive with down.sql, on_failure auto -> down, rows written meanwhile kept ----
: >"$CALLS"
add 20240202000000_notes 'CREATE TABLE notes (id int PRIMARY KEY, body text);'
echo 'DROP TABLE notes;' >"$dir/20240202000000_notes/down.sql"
hook deploy 1 "$psql_cmd -c \"INSERT INTO items (name) VALUES ('written meanwhile')\""
release --on-failure auto
expect_rc 2 "additive with down.sql"
assert_eq down "$(report '.compensation[-1].step')" "compensation by down.sql"
assert_eq "" "$(q "SELECT to_regclass('public.notes')")" "notes dropped by down.sql"
assert_eq 1 "$(q "SELECT count(*) FROM items WHERE name = 'written meanwhile'")" "row written meanwhile kept"
assert_eq null "$(report .pre_restore_snapshot)" "no restore"
pass "additive migration with down.sql undone by it, rows written meanwhile kept"
rm -rf "${dir:?}/20240202000000_notes"
q "DELETE FROM items WHERE name = 'written meanwhile'" >/dev/null

# ---- a migration that fails inside its transaction ----
: >"$CALLS"
hook deploy 0
add 20240203000000_bad 'CREATE TABLE fine (id int); SELECT 1/0;'
before=$(fingerprint "$db")
release
expect_rc 2 "failing migration"
assert_eq "pre-release notify" "$(called)" "no deploy or rollback hook after a failed migration"
assert_eq "" "$(q "SELECT to_regclass('public.fine')")" "nothing of the failed migration"
assert_eq 20240203000000_bad "$(report '.migrations_resolved[0]')" "resolved as rolled back"
assert_eq 1 "$(q "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20240203000000_bad' AND rolled_back_at IS NOT NULL")" "history row rolled back"
pass "a failed migration changed nothing and is resolved as rolled back (exit 2)"
rm -rf "${dir:?}/20240203000000_bad"

# ---- the rollback hook fails -> exit 3, the report says the state ----
: >"$CALLS"
add 20240204000000_col 'ALTER TABLE items ADD COLUMN extra int;'
hook deploy 1
hook rollback 1 'echo "platform says no" >&2'
release
expect_rc 3 "rollback hook failure"
assert_eq rollback-failed "$(report .outcome)" "outcome"
report '.state.application' | grep -q 'UNKNOWN' || fail "state: $(report .state)"
report '.state.database' | grep -q 'migrated' || fail "state: $(report .state)"
[[ $(report '.state.manual_steps | length') -ge 2 ]] || fail "no manual steps"
grep -q 'Operator needed' "$WORK/report.md" || fail "Markdown: no operator section"
grep -q "deployctl restore $(report .snapshot)" "$WORK/report.md" || fail "Markdown: no restore command"
pass "a failed rollback hook: exit 3, the report states the database and application state"

# the next release refuses until recover; recover (the hook fixed) finishes the rollback
hook rollback 0
release
expect_rc 4 "release after a failed rollback"
grep -q 'deployctl recover' "$WORK/err" || fail "refusal does not point at recover: $(cat "$WORK/err")"
recover
expect_rc 2 "recover after the rollback hook is fixed"
assert_eq "" "$(q "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'extra'")" "column gone after recover"
pass "recover finishes a failed rollback once the hook works"
rm -rf "${dir:?}/20240204000000_col"

# ---- precheck refusal ----
: >"$CALLS"
add 20240205000000_more 'CREATE TABLE more (id int);'
# a failed, unresolved migration in the history (Prisma's P3009) fails the precheck
q "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count)
   VALUES ('x1', 'abc', '20240205000000_more', now(), 0)" >/dev/null
before=$(fingerprint "$db")
release
expect_rc 4 "precheck with a failed migration"
assert_eq "$before" "$(fingerprint "$db")" "nothing changed"
assert_eq "notify" "$(called)" "no hook but notify ran"
grep -q 'outcome=refused' "$CALLS" || fail "notify outcome"
assert_eq refused "$(report .outcome)" "outcome"
pass "precheck refusal: exit 4, nothing changed, no hook"
