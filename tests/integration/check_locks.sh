#!/usr/bin/env bash
# `deployctl check` names the sessions a migration's DDL would wait behind: a long transaction
# holding a table lock fails the check with its pid, a session idle in transaction holding a
# lock warns, a held Prisma migration lock fails; nothing is ended.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

psql_admin "$db" -c "CREATE TABLE inventory_items (id serial PRIMARY KEY, quantity int)"

check
assert_eq "ok" "$(result locks | cut -d'|' -f1)" "no other session"

# A transaction holding a lock on the table, older than --max-transaction-age.
app="dc_${TEST_NAME}_holder"
start_session "$app" "BEGIN; LOCK TABLE inventory_items IN ACCESS SHARE MODE; SELECT pg_sleep(60); COMMIT;"
pid=$(session_pid "$app")
sleep 1.2
check --max-transaction-age 1s
assert_eq 4 "$rc" "long lock holder: exit"
r=$(result locks)
[[ $r == "failed|1 session in the way of DDL"* ]] || fail "long lock holder: $r"
[[ $r == *"pid $pid (user postgres, application '$app', active) has held locks on inventory_items for "* ]] ||
    fail "the holder is not named with its pid $pid: $r"
[[ $r == *"SELECT pg_sleep(60)"* ]] || fail "the holder's query is not shown: $r"
[[ $(psql_value postgres "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 1 ]] ||
    fail "the check ended the session"
pass "a transaction holding a lock longer than --max-transaction-age fails the check, named by pid $pid"

# Younger than the threshold and running: not in the way yet.
check
assert_eq "ok" "$(result locks | cut -d'|' -f1)" "holder under the default 5m threshold"
stop_session "$app"

# Idle in transaction, holding a lock: a warning even when young.
app="dc_${TEST_NAME}_idle"
fifo=$WORK/idle.fifo
mkfifo "$fifo"
PGAPPNAME=$app psql_admin "$db" <"$fifo" >/dev/null 2>&1 &
idle=$!
exec 3>"$fifo"
on_exit "exec 3>&-; kill $idle 2>/dev/null; end_session $app"
echo "BEGIN; SELECT count(*) FROM inventory_items;" >&3
pid=$(session_pid "$app")
for _ in $(seq 1 50); do
    [[ $(psql_value postgres "SELECT state FROM pg_stat_activity WHERE pid = $pid") == "idle in transaction" ]] && break
    sleep 0.1
done
check
[[ $rc -eq 0 ]] || fail "idle in transaction: exit $rc"
r=$(result locks)
[[ $r == "warning|"*"pid $pid (user postgres, application '$app') is idle in transaction for "*" holding locks on inventory_items"* ]] ||
    fail "idle in transaction: $r"
pass "a session idle in transaction holding a lock warns, named by pid $pid"
echo "ROLLBACK;" >&3

# Prisma's migration lock held by another runner.
app="dc_${TEST_NAME}_prisma"
start_session "$app" "SELECT pg_advisory_lock(72707369), pg_sleep(60)"
pid=$(lock_pid "$app" granted "l.locktype = 'advisory' AND l.objid = 72707369")
check
assert_eq 4 "$rc" "Prisma lock held: exit"
[[ $(result locks) == "failed|"*"pid $pid (user postgres, application '$app') holds Prisma's migration lock (advisory lock 72707369): another migration is running"* ]] ||
    fail "Prisma lock: $(result locks)"
pass "Prisma's advisory migration lock held by pid $pid fails the check"

stop_session "$app"

# deployctl's own migration lock (DC_MIGRATE_LOCK_KEY, 0x64636d67) held by another runner.
app="dc_${TEST_NAME}_deployctl"
start_session "$app" "SELECT pg_advisory_lock(1684237671), pg_sleep(60)"
pid=$(lock_pid "$app" granted "l.locktype = 'advisory' AND l.objid = 1684237671")
check
assert_eq 4 "$rc" "deployctl lock held: exit"
[[ $(result locks) == "failed|"*"pid $pid (user postgres, application '$app') holds deployctl's migration lock (advisory lock 1684237671): another migration is running"* ]] ||
    fail "deployctl lock: $(result locks)"
pass "deployctl's own advisory migration lock held by pid $pid fails the check"

# Prepared transactions need max_prepared_transactions > 0, which the shared cluster does not
# set (it would need a restart); that check's query runs in every case above (status ok).
assert_eq ok "$(jq -r '.checks[] | select(.name == "prepared-transactions") | .status' "$WORK/out")" "prepared transactions"
