#!/usr/bin/env bash
# `deployctl check` never waits behind another session's lock: with a table locked ACCESS
# EXCLUSIVE (and a query queued behind it) it finishes within seconds, and the locks check
# names the holder and the queue. (It used to size the tables with pg_table_size(), which
# waits for the lock, on a connection without lock_timeout: it hung until the holder ended.)
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
psql_admin "$db" -c "CREATE TABLE items (id int PRIMARY KEY)" -c "INSERT INTO items SELECT generate_series(1, 1000)" \
    -c "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL,
        finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)" >/dev/null

end_session() { # application_name
    psql_value postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
}
holder_app="dc_${TEST_NAME}_holder"
waiter_app="dc_${TEST_NAME}_waiter"
on_exit "end_session $holder_app; end_session $waiter_app"
PGAPPNAME=$holder_app psql_admin "$db" -c "BEGIN; LOCK TABLE items, _prisma_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
on_exit "kill $! 2>/dev/null"
holder=""
for _ in $(seq 1 100); do
    holder=$(psql_value "$db" "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '$holder_app' AND l.relation = 'items'::regclass AND l.mode = 'AccessExclusiveLock' AND l.granted")
    [[ -n $holder ]] && break
    sleep 0.1
done
[[ -n $holder ]] || fail "the holder did not lock the table"
PGAPPNAME=$waiter_app psql_admin "$db" -c "SELECT count(*) FROM items" >/dev/null 2>&1 &
on_exit "kill $! 2>/dev/null"
waiter=""
for _ in $(seq 1 100); do
    waiter=$(psql_value "$db" "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '$waiter_app' AND NOT l.granted")
    [[ -n $waiter ]] && break
    sleep 0.1
done
[[ -n $waiter ]] || fail "the waiter did not queue"

start=$SECONDS
set +e
timeout 60 "$DEPLOYCTL" check --database "$url" --store "$WORK/store" --migrations "$WORK/migrations" --json >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
elapsed=$((SECONDS - start))
[[ $rc -ne 124 ]] || fail "check hung behind the lock (killed after 60 s)"
[[ $elapsed -le 40 ]] || fail "check took ${elapsed}s behind the lock"
[[ $rc -eq 0 || $rc -eq 4 ]] || fail "check: exit $rc: $(cat "$WORK/err")"
pass "check finishes in ${elapsed}s while a table is locked ACCESS EXCLUSIVE"

r=$(jq -r '.checks[] | select(.name == "locks") | "\(.status)|\(.items | join(";"))"' "$WORK/out")
[[ $r == "warning|"* || $r == "failed|"* ]] || fail "the lock is not reported: $r"
[[ $r == *"pid $holder (user postgres, application '$holder_app', active) holds an ACCESS EXCLUSIVE lock on "*"items"* ]] ||
    fail "the holder $holder is not named: $r"
[[ $r == *"pid $waiter (user postgres, application '$waiter_app') waits for a lock on items behind pid $holder"* ]] ||
    fail "the queue is not reported: $r"
pass "the locks check names the holder (pid $holder) and the session queued behind it (pid $waiter)"
r=$(jq -r '.checks[] | select(.name == "migrations") | "\(.status)|\(.detail)"' "$WORK/out")
[[ $r == "warning|not checked: another session locks the migration history table"*"lock timeout"* ]] ||
    fail "the locked history table: $r"
pass "a locked _prisma_migrations is a warning after lock_timeout, not a wait"
free=$(jq -r '.checks[] | select(.name == "free-space") | .status' "$WORK/out")
[[ $free == ok || $free == warning ]] || fail "free space: $free"
pass "the free-space estimate reads pg_class, not the locked table"
