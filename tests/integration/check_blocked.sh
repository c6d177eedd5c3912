#!/usr/bin/env bash
# `deployctl check` never waits behind another session's lock: with a table locked ACCESS
# EXCLUSIVE (and a query queued behind it) it finishes within seconds, and the locks check
# names the holder and the queue. (It used to size the tables with pg_table_size(), which
# waits for the lock, on a connection without lock_timeout: it hung until the holder ended.)
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

psql_admin "$db" -c "CREATE TABLE items (id int PRIMARY KEY)" -c "INSERT INTO items SELECT generate_series(1, 1000)" >/dev/null
create_history
holder_app="dc_${TEST_NAME}_holder"
waiter_app="dc_${TEST_NAME}_waiter"
start_session "$holder_app" "BEGIN; LOCK TABLE items, _prisma_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;"
holder=$(lock_pid "$holder_app" granted "l.relation = 'items'::regclass AND l.mode = 'AccessExclusiveLock'")
start_session "$waiter_app" "SELECT count(*) FROM items"
waiter=$(lock_pid "$waiter_app" waiting)

start=$SECONDS
set +e
timeout 60 "$DEPLOYCTL" check --database "$url" --store "$WORK/store" --migrations "$mig" --json >"$WORK/out" 2>"$WORK/err"
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
pass "the free-space estimate counts the locked table from pg_class, without waiting for it"
