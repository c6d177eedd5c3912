#!/usr/bin/env bash
# `deployctl check` stops at once on SIGINT or SIGTERM, even while one of its queries waits:
# the signal cancels the running query (PQcancel) instead of leaving it to its lock_timeout
# (2 s). Here the migrations check waits for the history table, which another session holds
# ACCESS EXCLUSIVE; the signal comes as soon as the server shows the check waiting.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

create_history
holder_app="dc_${TEST_NAME}_holder"
start_session "$holder_app" "BEGIN; LOCK TABLE _prisma_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;"
lock_pid "$holder_app" granted "l.mode = 'AccessExclusiveLock'" >/dev/null

interrupt() { # signal-name signal-number
    "$DEPLOYCTL" check --database "$url" --store "$WORK/store" --migrations "$mig" --json >"$WORK/out" 2>"$WORK/err" &
    local pid=$! waiting start
    waiting=$(lock_pid "deployctl check" waiting)
    start=$(date +%s%N)
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
