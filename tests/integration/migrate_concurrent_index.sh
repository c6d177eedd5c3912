#!/usr/bin/env bash
# CREATE INDEX CONCURRENTLY in a migration: found by the parser, run statement by statement
# outside a transaction block (inside one PostgreSQL refuses it). A concurrent build that fails
# leaves an INVALID index; the runner reports it and drops it before the next attempt, both in a
# later deploy (after resolve) and between the lock-timeout retries of one deploy.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"
valid() { q "SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass('$1')"; }
end_session() { # application_name
    psql_admin postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1' AND datname = '$db'" >/dev/null
}
on_exit "end_session test-snapshot"

add 20240101000000_init "CREATE TABLE t (id int PRIMARY KEY, a int, b int);
CREATE TABLE other (id int);
INSERT INTO t SELECT g, g % 1000, g FROM generate_series(1, 20000) g;"
# Statements before and after the concurrent build, in one file.
add 20240102000000_index "CREATE TABLE side (id int);
CREATE INDEX CONCURRENTLY t_b_idx ON t (b);
INSERT INTO side VALUES (1);"
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"
grep -q "migration 20240102000000_index runs statement by statement outside a transaction: line 2 is CREATE INDEX CONCURRENTLY" "$WORK/err" ||
    fail "not reported as run outside a transaction: $(cat "$WORK/err")"
assert_eq "true|1" "$(valid t_b_idx)|$(q "SELECT count(*) FROM side")" "index valid, every statement run"
assert_eq "1|1" "$(q "SELECT applied_steps_count, count(*) OVER () FROM _prisma_migrations WHERE migration_name = '20240102000000_index'")" \
    "history row finished"
pass "CREATE INDEX CONCURRENTLY runs outside a transaction, with its neighbours, and is recorded"

# A concurrent unique build over duplicates fails and leaves an INVALID index.
add 20240103000000_unique 'CREATE UNIQUE INDEX CONCURRENTLY "t_a_key" ON "t"("a");'
migrate deploy
[[ $rc -eq 1 ]] || fail "a unique index over duplicates was built: $(cat "$WORK/err")"
grep -q "could not create unique index \"t_a_key\" (SQLSTATE 23505).*ran outside a transaction, so the statements before the failed one stay applied" "$WORK/err" ||
    fail "unclear failure: $(cat "$WORK/err")"
assert_eq "false" "$(valid t_a_key)" "the failed build left an INVALID index"
# The data is fixed; the migration runs again and the INVALID index is dropped first.
psql_admin "$db" -c "UPDATE t SET a = id"
migrate resolve --rolled-back 20240103000000_unique
[[ $rc -eq 0 ]] || fail "resolve: $(cat "$WORK/err")"
migrate deploy --json
[[ $rc -eq 0 ]] || fail "redeploy: $(cat "$WORK/err")"
grep -q 'index t_a_key is INVALID (left by a failed CREATE INDEX CONCURRENTLY): dropping it before building it again' "$WORK/err" ||
    fail "the INVALID index was not reported: $(cat "$WORK/err")"
grep -q '"dropped_invalid_indexes":\["t_a_key"\]' "$WORK/out" || fail "json: $(cat "$WORK/out")"
assert_eq "true" "$(valid t_a_key)" "rebuilt index valid"
pass "a failed concurrent build's INVALID index is reported and dropped before the retry"

# Between retries of one deploy: the build waits for an old snapshot, times out (INVALID
# index left), and each new attempt drops it first.
PGAPPNAME=test-snapshot psql_admin "$db" -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
for _ in $(seq 1 100); do
    [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-snapshot' AND query LIKE '%pg_sleep%'") == 1 ]] && break
    sleep 0.1
done
add 20240104000000_c_index "CREATE INDEX CONCURRENTLY t_c_idx ON t (a, b);"
migrate deploy --json --lock-timeout 500ms --lock-retries 2 --lock-retry-delay 100ms
[[ $rc -eq 1 ]] || fail "the build did not wait for the old snapshot: $(cat "$WORK/err")"
blocker=$(q "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-snapshot'")
grep -q "SQLSTATE 55P03.*blocked by pid $blocker" "$WORK/err" || fail "the snapshot holder is not named: $(cat "$WORK/err")"
[[ $(grep -c "index t_c_idx is INVALID" "$WORK/err") -eq 2 ]] || fail "INVALID index not dropped before each retry: $(cat "$WORK/err")"
grep -q '"dropped_invalid_indexes":\["t_c_idx","t_c_idx"\]' "$WORK/out" || fail "json: $(cat "$WORK/out")"
end_session test-snapshot
migrate resolve --rolled-back 20240104000000_c_index
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy after the snapshot ended: $(cat "$WORK/err")"
assert_eq "true" "$(valid t_c_idx)" "index built"
assert_eq 1 "$(q "SELECT count(*) FROM pg_class WHERE relname LIKE 't_c_idx%'")" "one index, no leftovers"
pass "between lock-timeout retries of a concurrent build the INVALID index is dropped each time"

# Prisma's names are quoted and mixed case ("User_email_key"): the INVALID leftover is found in
# the catalog as written (not folded to user_email_key) and dropped before the build runs again.
add 20240105000000_user "CREATE TABLE \"User\" (\"id\" int PRIMARY KEY, \"email\" text, \"name\" text);
INSERT INTO \"User\" SELECT g, 'u' || (g % 10), 'n' || (g % 10) FROM generate_series(1, 100) g;"
add 20240106000000_user_email 'CREATE UNIQUE INDEX CONCURRENTLY "User_email_key" ON "User"("email");'
migrate deploy
[[ $rc -eq 1 ]] || fail "a unique index over duplicate emails was built: $(cat "$WORK/err")"
assert_eq "false" "$(valid '"User_email_key"')" "the failed build left an INVALID mixed-case index"
psql_admin "$db" -c "UPDATE \"User\" SET email = 'u' || id"
migrate resolve --rolled-back 20240106000000_user_email
migrate deploy --json
[[ $rc -eq 0 ]] || fail "redeploy with a mixed-case INVALID index left: $(cat "$WORK/err")"
grep -q 'index "User_email_key" is INVALID' "$WORK/err" || fail "the INVALID index was not reported: $(cat "$WORK/err")"
grep -q '"dropped_invalid_indexes":\["\\"User_email_key\\""\]' "$WORK/out" || fail "json: $(cat "$WORK/out")"
assert_eq "true" "$(valid '"User_email_key"')" "rebuilt mixed-case index valid"
pass "a mixed-case (Prisma-style quoted) INVALID index is found and dropped before the retry"

# An unnamed concurrent build is named by the server; when it fails, its INVALID index is dropped
# at once (a retry would otherwise build "User_name_idx1" beside it).
add 20240107000000_user_name 'CREATE UNIQUE INDEX CONCURRENTLY ON "User"("name");'
migrate deploy
[[ $rc -eq 1 ]] || fail "a unique index over duplicate names was built: $(cat "$WORK/err")"
grep -q 'index "User_name_idx" is INVALID' "$WORK/err" || fail "the unnamed INVALID index was not reported: $(cat "$WORK/err")"
assert_eq 0 "$(q "SELECT count(*) FROM pg_index WHERE indrelid = '\"User\"'::regclass AND NOT indisvalid")" \
    "no INVALID index left by the unnamed build"
psql_admin "$db" -c "UPDATE \"User\" SET name = 'n' || id"
migrate resolve --rolled-back 20240107000000_user_name
migrate deploy
[[ $rc -eq 0 ]] || fail "redeploy of the unnamed build: $(cat "$WORK/err")"
assert_eq "User_name_idx" "$(q "SELECT string_agg(c.relname, ',') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '\"User\"'::regclass AND c.relname LIKE 'User_name%'")" \
    "one index, no leftover"
pass "an unnamed concurrent build that fails leaves no INVALID index"
