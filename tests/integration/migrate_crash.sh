#!/usr/bin/env bash
# A migration that runs outside a transaction (CREATE INDEX CONCURRENTLY) records in its row's
# logs how far it got, as statements commit: after a failure in the middle, or a SIGKILL of the
# runner, the row says which statements remain applied, and the next deploy is refused (P3009).
# A lock timeout in the middle of such a file is retried from the failed statement: the ones
# committed before it are not run again.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"
logs_of() { q "SELECT logs FROM _prisma_migrations WHERE migration_name = '$1' AND rolled_back_at IS NULL"; }
end_session() { # application_name
    psql_admin postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1' AND datname = '$db'" >/dev/null
}
on_exit "end_session test-holder"
on_exit "end_session 'deployctl migrate deploy'"

add 20240101000000_init "CREATE TABLE t (id int PRIMARY KEY, a int);"
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"

# A failing statement in the middle of a concurrent migration.
add 20240102000000_mid "CREATE TABLE a (id int);
CREATE INDEX CONCURRENTLY a_id ON a (id);
CREATE TABLE a (id int);
CREATE TABLE b (id int);"
migrate deploy
[[ $rc -eq 1 ]] || fail "a failing statement: rc $rc: $(cat "$WORK/err")"
grep -q "statements 1-2 of 4 committed, statement 3 failed: .*migration.sql line 3 (CREATE TABLE a (id int)).*42P07" "$WORK/err" ||
    fail "the failure does not say how far it got: $(cat "$WORK/err")"
logs=$(logs_of 20240102000000_mid)
[[ $logs == *"statements 1-2 of 4 committed, statement 3 failed"* ]] || fail "logs: '$logs'"
assert_eq "a_id|" "$(q "SELECT to_regclass('a_id')")|$(q "SELECT to_regclass('b')")" "1-2 applied, 4 not run"
pass "a failure in the middle of a concurrent migration records which statements committed"
psql_admin "$db" -c "DROP TABLE a"
migrate resolve --rolled-back 20240102000000_mid
rm -r "${dir:?}/20240102000000_mid"

# SIGKILL of the runner after two statements committed.
add 20240103000000_killed "CREATE TABLE s (id int);
CREATE INDEX CONCURRENTLY s_id ON s (id);
SELECT pg_sleep(30);
CREATE TABLE s2 (id int);"
"$DEPLOYCTL" migrate deploy --database "$url" --migrations "$dir" >"$WORK/out" 2>"$WORK/err" &
runner=$!
for _ in $(seq 1 150); do
    [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deployctl migrate deploy' AND query LIKE '%pg_sleep(30)%'") == 1 ]] && break
    sleep 0.1
done
kill -KILL $runner
wait $runner || true
# Its backend only notices at its next write: end it, as the server eventually does.
end_session 'deployctl migrate deploy'
logs=$(logs_of 20240103000000_killed)
[[ $logs == *"statements 1-2 of 4 committed (the last at "*"migration.sql line 2)"* ]] || fail "the killed row does not say how far it got: '$logs'"
for _ in $(seq 1 50); do
    migrate deploy
    [[ $rc -ne 75 ]] && break
    sleep 0.2
done
assert_eq 4 "$rc" "deploy after a SIGKILL: $(cat "$WORK/err")"
grep -q "migration 20240103000000_killed failed .*statements 1-2 of 4 committed.*P3009" "$WORK/err" || fail "unclear P3009: $(cat "$WORK/err")"
assert_eq "s_id|" "$(q "SELECT to_regclass('s_id')")|$(q "SELECT to_regclass('s2')")" "1-2 applied, 4 not run"
pass "after a SIGKILL mid-migration the row shows how far it got and deploy is refused (P3009)"
psql_admin "$db" -c "DROP TABLE s"
migrate resolve --rolled-back 20240103000000_killed
rm -r "${dir:?}/20240103000000_killed"

# A lock timeout on the third of four statements: retried from there, 1-2 not run again.
# Holds a lock on t until the deploy has hit a lock timeout (55P03 in its log), then lets go:
# the deploy is blocked at least once however slowly it starts (e.g. under valgrind).
hold_t_until_blocked() {
    rm -f "$WORK/err"
    PGAPPNAME=test-holder psql_admin "$db" -c "BEGIN; LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE; SELECT pg_sleep(600); COMMIT;" >/dev/null 2>&1 &
    for _ in $(seq 1 100); do
        [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-holder' AND query LIKE '%pg_sleep%'") == 1 ]] && break
        sleep 0.1
    done
    (
        for _ in $(seq 1 "$(scaled 600)"); do
            grep -qs "SQLSTATE 55P03" "$WORK/err" && break
            sleep 0.1
        done
        psql_admin postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'test-holder'" >/dev/null
    ) &
}

hold_t_until_blocked
add 20240104000000_retry "CREATE TABLE r1 (id int);
INSERT INTO r1 VALUES (1);
CREATE INDEX CONCURRENTLY t_a_idx ON t (a);
CREATE TABLE r2 (id int);"
migrate deploy --json --lock-timeout 300ms --lock-retries 8 --lock-retry-delay "$(scaled 200)ms"
[[ $rc -eq 0 ]] || fail "deploy with a lock timeout on the third statement: $(cat "$WORK/err")"
grep -q "SQLSTATE 55P03" "$WORK/err" || fail "the statement was never blocked: $(cat "$WORK/err")"
assert_eq "1|r2|1" "$(q "SELECT count(*) FROM r1")|$(q "SELECT to_regclass('r2')")|$(q "SELECT applied_steps_count FROM _prisma_migrations WHERE migration_name = '20240104000000_retry'")" \
    "statements 1-2 ran once, the rest after the retry, the row finished"
assert_eq "" "$(logs_of 20240104000000_retry)" "a finished row's progress notes are cleared"
pass "a lock timeout mid-file is retried from the failed statement"

# The same with a BEGIN ... COMMIT block of its own: the block is restarted as a whole.
hold_t_until_blocked
add 20240105000000_block "CREATE TABLE k1 (id int);
BEGIN;
INSERT INTO k1 VALUES (1);
ALTER TABLE t ADD COLUMN c int;
COMMIT;"
migrate deploy --lock-timeout 300ms --lock-retries 8 --lock-retry-delay "$(scaled 200)ms"
[[ $rc -eq 0 ]] || fail "deploy of a BEGIN/COMMIT block with a lock timeout: $(cat "$WORK/err")"
grep -q "SQLSTATE 55P03" "$WORK/err" || fail "the block was never blocked: $(cat "$WORK/err")"
assert_eq "1|c" "$(q "SELECT count(*) FROM k1")|$(q "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c'")" \
    "the block restarted at BEGIN, its INSERT not doubled"
pass "a lock timeout inside the file's own BEGIN/COMMIT restarts the block"
