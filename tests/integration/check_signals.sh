#!/usr/bin/env bash
# `deployctl check` stops at once on SIGINT or SIGTERM, even while one of its queries waits:
# the signal cancels the running query (PQcancel) instead of leaving it to its lock_timeout
# (2 s). Here the migrations check waits for the history table, which another session holds
# ACCESS EXCLUSIVE; the signal comes as soon as the server shows the check waiting.
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
psql_admin "$db" -c "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL,
        finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)" >/dev/null
holder_app="dc_${TEST_NAME}_holder"
end_session() { psql_value postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null; }
on_exit "end_session $holder_app"
PGAPPNAME=$holder_app psql_admin "$db" -c "BEGIN; LOCK TABLE _prisma_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
on_exit "kill $! 2>/dev/null"
for _ in $(seq 1 100); do
    [[ -n $(psql_value "$db" "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '$holder_app' AND l.mode = 'AccessExclusiveLock' AND l.granted LIMIT 1") ]] && break
    sleep 0.1
done

interrupt() { # signal-name signal-number
    "$DEPLOYCTL" check --database "$url" --store "$WORK/store" --migrations "$WORK/migrations" --json >"$WORK/out" 2>"$WORK/err" &
    local pid=$! waiting=""
    for _ in $(seq 1 200); do
        waiting=$(psql_value "$db" "SELECT pid FROM pg_stat_activity WHERE application_name = 'deployctl check' AND datname = current_database() AND wait_event_type = 'Lock'")
        [[ -n $waiting ]] && break
        sleep 0.02
    done
    [[ -n $waiting ]] || fail "the check never waited for the lock"
    local start=$(date +%s%N)
    kill "-$1" "$pid"
    set +e
    wait "$pid"
    rc=$?
    set -e
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    ((elapsed_ms < 1000)) || fail "$1: the check took ${elapsed_ms} ms to stop (its query was not cancelled)"
    assert_eq 1 "$rc" "$1: exit"
    grep -q "interrupted by signal $2" "$WORK/err" || fail "$1: $(cat "$WORK/err")"
    [[ -z $(psql_value "$db" "SELECT pid FROM pg_stat_activity WHERE pid = $waiting") ]] || fail "$1: the check's session is still there"
    pass "$1 during a query waiting for a lock stops the check in ${elapsed_ms} ms (the lock timeout is 2 s): the query is cancelled"
}
interrupt INT 2
interrupt TERM 15
