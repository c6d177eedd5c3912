#!/usr/bin/env bash
# Timeouts and lost connections: with no --statement-timeout the database's (or role's) own
# statement_timeout applies, not 0; the runner's own statements on the history table wait at
# most --lock-timeout; when the connection dies mid-migration the outcome is reported as unknown
# and 'migrate status' named as the way to learn it.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"
end_session() { # application_name
    psql_admin postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1' AND datname = '$db'" >/dev/null
}
on_exit "end_session test-holder"

add 20240101000000_init "CREATE TABLE items (id int);"
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"

# The database's statement_timeout cuts a long statement, in a transaction and outside one.
psql_admin postgres -c "ALTER DATABASE \"$db\" SET statement_timeout = '1s'"
add 20240102000000_slow "SELECT pg_sleep($(scaled 4));"
t0=$(date +%s)
migrate deploy
[[ $rc -eq 1 ]] || fail "a statement longer than the database's statement_timeout ran: $(cat "$WORK/err")"
grep -q "statement timeout (SQLSTATE 57014)" "$WORK/err" || fail "not cut by statement_timeout: $(cat "$WORK/err")"
(($(date +%s) - t0 < $(scaled 4))) || fail "the statement ran to its end"
migrate resolve --rolled-back 20240102000000_slow
add 20240102000000_slow "CREATE INDEX CONCURRENTLY items_id ON items (id);
SELECT pg_sleep(4);"
migrate deploy
[[ $rc -eq 1 ]] && grep -q "statement timeout (SQLSTATE 57014)" "$WORK/err" || fail "autocommit: not cut by statement_timeout: $(cat "$WORK/err")"
migrate resolve --rolled-back 20240102000000_slow
# --statement-timeout still overrides it.
add 20240102000000_slow "SELECT pg_sleep(2);"
migrate deploy --statement-timeout 10s
[[ $rc -eq 0 ]] || fail "--statement-timeout 10s did not override the database's 1s: $(cat "$WORK/err")"
psql_admin postgres -c "ALTER DATABASE \"$db\" RESET statement_timeout"
pass "with no --statement-timeout the database's own statement_timeout applies"

# A session holding the history table: the runner gives up after --lock-timeout, not never.
PGAPPNAME=test-holder psql_admin "$db" -c "BEGIN; LOCK TABLE _prisma_migrations; SELECT pg_sleep(60);" >/dev/null 2>&1 &
for _ in $(seq 1 100); do
    [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-holder' AND query LIKE '%pg_sleep%'") == 1 ]] && break
    sleep 0.1
done
add 20240103000000_next "CREATE TABLE next (id int);"
set +e
timeout 20 "$DEPLOYCTL" migrate deploy --database "$url" --migrations "$dir" --lock-timeout 500ms >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
[[ $rc -ne 124 ]] || fail "deploy waited for the history table's lock with no limit"
[[ $rc -ne 0 ]] && grep -q "SQLSTATE 55P03" "$WORK/err" || fail "rc $rc: $(cat "$WORK/err")"
set +e
timeout 20 "$DEPLOYCTL" migrate resolve --applied 20240103000000_next --database "$url" --migrations "$dir" --lock-timeout 500ms >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
[[ $rc -ne 124 && $rc -ne 0 ]] || fail "resolve: rc $rc"
end_session test-holder
pass "the runner's statements on the history table wait at most --lock-timeout"

# The connection dies mid-migration: no claim about what was recorded.
add 20240104000000_long "SELECT pg_sleep(30);"
"$DEPLOYCTL" migrate deploy --database "$url" --migrations "$dir" >"$WORK/out" 2>"$WORK/err" &
runner=$!
for _ in $(seq 1 100); do
    [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deployctl migrate deploy' AND query LIKE '%pg_sleep(30)%'") == 1 ]] && break
    sleep 0.1
done
# Its connection has TCP keepalives of 30 s (libpq's default leaves the kernel's 2 hours).
if command -v ss >/dev/null; then
    conns=$(ss -tnpo | grep "pid=$runner," || true)
    [[ -n $conns ]] || fail "no TCP connection of the runner found by ss"
    grep -qE 'timer:\(keepalive,[0-9.]+sec' <<<"$conns" || fail "no 30 s keepalive on the runner's connection: $conns"
fi
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deployctl migrate deploy' AND query LIKE '%pg_sleep(30)%'" >/dev/null
set +e
wait $runner
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "deploy after its connection died: rc $rc: $(cat "$WORK/err")"
grep -q "the connection to the server was lost.*is unknown: run 'deployctl migrate status'" "$WORK/err" ||
    fail "the outcome is not reported as unknown: $(cat "$WORK/err")"
grep -q "recorded as failed" "$WORK/err" && fail "claims it was recorded: $(cat "$WORK/err")"
migrate status --json
grep -q '"name":"20240104000000_long","status":"failed"' "$WORK/out" || fail "status: $(cat "$WORK/out")"
pass "a lost connection is reported as an unknown outcome, pointing at migrate status"
