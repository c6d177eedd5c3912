#!/usr/bin/env bash
# A failing migration, as Prisma records it: its row committed first, finished_at left null, the
# error in logs, none of it applied (one transaction); it blocks every later deploy (P3009)
# until resolved. resolve --rolled-back then a fixed file deploys again; resolve --applied
# records a migration completed by hand; Prisma's refusals are kept; a file that is not SQL is
# refused before anything runs.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"

add 20240101000000_ok "CREATE TABLE items (id int PRIMARY KEY, qty int);"
add 20240102000000_bad "CREATE TABLE notes (id int);
ALTER TABLE missing ADD COLUMN x int;"
add 20240103000000_later "CREATE TABLE later (id int);"

migrate deploy
[[ $rc -eq 1 ]] || fail "a failing migration: rc $rc: $(cat "$WORK/err")"
grep -q 'migration 20240102000000_bad failed: .*migration.sql line 2 (ALTER TABLE missing ADD COLUMN x int).*relation "missing" does not exist (SQLSTATE 42P01)' "$WORK/err" ||
    fail "the error does not name the file, line, statement and cause: $(cat "$WORK/err")"
grep -q "none of it was applied.*resolve --rolled-back 20240102000000_bad" "$WORK/err" || fail "no way out given: $(cat "$WORK/err")"
assert_eq "t|f|0" "$(q "SELECT bool_and(finished_at IS NULL), bool_or(rolled_back_at IS NOT NULL), max(applied_steps_count)
                     FROM _prisma_migrations WHERE migration_name = '20240102000000_bad'")" "failed row: not finished, 0 steps"
q "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240102000000_bad'" | grep -q 'relation "missing" does not exist' ||
    fail "logs does not hold the error"
assert_eq "" "$(q "SELECT to_regclass('notes')")" "the failed migration's first statement was rolled back"
assert_eq 1 "$(q "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")" "only the first one applied"
assert_eq 0 "$(q "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20240103000000_later'")" "later one not run"
pass "a failing migration is recorded as Prisma does (finished_at null, error in logs), none of it applied"

# Blocks every later deploy, and status says so.
migrate deploy
[[ $rc -eq 4 ]] || fail "deploy after a failure: rc $rc: $(cat "$WORK/err")"
grep -q "migration 20240102000000_bad failed (started .*relation \"missing\" does not exist.*P3009.*resolve --rolled-back 20240102000000_bad.*resolve --applied 20240102000000_bad" "$WORK/err" ||
    fail "unclear P3009 refusal: $(cat "$WORK/err")"
assert_eq 0 "$(q "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20240103000000_later'")" "blocked"
migrate status --json
[[ $rc -eq 4 ]] || fail "status with a failed migration: rc $rc"
grep -q '"name":"20240102000000_bad","status":"failed"' "$WORK/out" || fail "status: $(cat "$WORK/out")"
pass "a failed migration blocks later deploys until resolved (exit 4), status shows it"

# Prisma's refusals.
history() { q "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM _prisma_migrations t"; }
before=$(history)
migrate resolve --rolled-back 20240103000000_later
[[ $rc -eq 1 ]] && grep -q "not in a failed state (it is pending" "$WORK/err" || fail "rolled back a pending one: $(cat "$WORK/err")"
migrate resolve --rolled-back 20240101000000_ok
[[ $rc -eq 1 ]] && grep -q "not in a failed state (it is applied.*migrate down" "$WORK/err" || fail "rolled back an applied one: $(cat "$WORK/err")"
migrate resolve --applied 20240101000000_ok
[[ $rc -eq 1 ]] && grep -q "already recorded as applied" "$WORK/err" || fail "applied twice: $(cat "$WORK/err")"
migrate resolve --applied 20240109999999_nope
[[ $rc -eq 1 ]] && grep -q "neither in .* nor in the history table" "$WORK/err" || fail "unknown name: $(cat "$WORK/err")"
migrate resolve --rolled-back 20240109999999_nope
[[ $rc -eq 1 ]] && grep -q "never applied to the database (as Prisma's P3011)" "$WORK/err" || fail "unknown name rolled back: $(cat "$WORK/err")"
migrate resolve
[[ $rc -eq 1 ]] && grep -q "exactly one of --applied NAME and --rolled-back NAME" "$WORK/err" || fail "resolve without a flag: $(cat "$WORK/err")"
assert_eq "$before" "$(history)" "refusals changed nothing"
pass "resolve refuses what Prisma refuses, and changes nothing"

# Fix the file, resolve --rolled-back, deploy: it runs again, then the later one.
add 20240102000000_bad "CREATE TABLE notes (id int);
ALTER TABLE items ADD COLUMN x int;"
migrate resolve --rolled-back 20240102000000_bad
[[ $rc -eq 0 ]] || fail "resolve --rolled-back: $(cat "$WORK/err")"
assert_eq "t" "$(q "SELECT rolled_back_at IS NOT NULL FROM _prisma_migrations WHERE migration_name = '20240102000000_bad'")" "rolled_back_at set"
migrate status
[[ $rc -eq 4 ]] && grep -q "20240102000000_bad *pending" "$WORK/out" || fail "a rolled-back migration is pending again: $(cat "$WORK/out")"
migrate deploy --json
[[ $rc -eq 0 ]] || fail "deploy after resolve: $(cat "$WORK/err")"
grep -q '"done":\["20240102000000_bad","20240103000000_later"\]' "$WORK/out" || fail "redeploy: $(cat "$WORK/out")"
assert_eq "2|1" "$(q "SELECT count(*), count(finished_at) FROM _prisma_migrations WHERE migration_name = '20240102000000_bad'")" \
    "the rolled-back row kept, a new finished one"
assert_eq "notes" "$(q "SELECT to_regclass('notes')")" "fixed migration applied"
migrate status
[[ $rc -eq 0 ]] || fail "not up to date after redeploy: $(cat "$WORK/out")"
pass "resolve --rolled-back, fix, deploy again: applied, history as Prisma keeps it"

# Completed by hand: resolve --applied, without running it.
add 20240104000000_manual "CREATE TABLE manual (id int);
SELECT 1/0;"
migrate deploy
[[ $rc -eq 1 ]] || fail "division by zero deployed"
psql_admin "$db" -c "CREATE TABLE manual (id int)"
migrate resolve --applied 20240104000000_manual
[[ $rc -eq 0 ]] || fail "resolve --applied: $(cat "$WORK/err")"
assert_eq "2|1|1" "$(q "SELECT count(*), count(finished_at), count(rolled_back_at) FROM _prisma_migrations WHERE migration_name = '20240104000000_manual'")" \
    "failed row rolled back, a finished one recorded"
# As Prisma's mark_migration_applied writes it: logs '', applied_steps_count left at 0.
assert_eq "$(sha256sum <"$dir/20240104000000_manual/migration.sql" | cut -d' ' -f1)|0|t" \
    "$(q "SELECT checksum, applied_steps_count, logs = '' FROM _prisma_migrations WHERE migration_name = '20240104000000_manual' AND finished_at IS NOT NULL")" \
    "resolved row carries the file's checksum, as Prisma writes it"
# Recording one never run: its statements do not run.
add 20240105000000_skipped "CREATE TABLE skipped (id int);"
migrate resolve --applied 20240105000000_skipped
[[ $rc -eq 0 ]] || fail "resolve --applied of a pending one: $(cat "$WORK/err")"
assert_eq "" "$(q "SELECT to_regclass('skipped')")" "resolve --applied ran the migration"
migrate deploy
[[ $rc -eq 0 ]] && grep -q "deploy: nothing to do" "$WORK/err" || fail "deploy after resolve --applied: $(cat "$WORK/err")"
pass "resolve --applied marks a failed (or never run) migration applied without running it"

# Not SQL: refused before anything runs, no row.
add 20240106000000_typo "CREATE TABEL oops (id int);"
add 20240107000000_after "CREATE TABLE after_typo (id int);"
before=$(q "SELECT count(*) FROM _prisma_migrations")
migrate deploy
[[ $rc -eq 1 ]] && grep -q "20240106000000_typo/migration.sql is not valid SQL at line 1.*nothing was run" "$WORK/err" ||
    fail "a syntax error: rc $rc: $(cat "$WORK/err")"
assert_eq "$before" "$(q "SELECT count(*) FROM _prisma_migrations")" "a file that is not SQL left a row"
assert_eq "" "$(q "SELECT to_regclass('after_typo')")" "migrations after the typo ran"
pass "a migration that is not SQL is refused before anything runs"
