#!/usr/bin/env bash
# The fault matrix: phases {backup, migrate, verify, deploy, smoke} x faults {the step fails,
# SIGKILL then recover, the database connections cut (pg_terminate_backend), the store
# unreachable}. Every cell must end either released (exit 0, migration applied) or with the
# database identical to before (exit 2, fingerprint), the rollback hook called whenever the
# deploy hook had started, and a report saying so. Each fault lands in its named phase: the
# release pauses (DEPLOYCTL_FAULT=release-phase-PHASE:sleep=2) or dies
# (release-phase-PHASE) right after journaling the phase's start, and the journal's last
# started phase is checked; each cell's exit is asserted where it is certain (expected_exit).
# Then the rehearse phase of `release --rehearse`: killed once its scratch database exists, then
# recovered; and stopped by SIGINT there (a cancellation, exit 2, not a refusal).
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
JDIR=$DEPLOYCTL_STATE_DIR/releases/$db
psql_cmd="'$DC_PG_BIN/psql' -X -q -h '$DC_PG_SOCKET' -p $DC_PG_PORT -U postgres -d '$db'"
n=0
# The data, and the migrations applied: a failed migration resolved as rolled back stays in
# _prisma_migrations as Prisma keeps it (rolled_back_at set), so the history is compared by
# what is applied.
state() {
    fingerprint "$db" | grep -v '^public._prisma_migrations|'
    q "SELECT string_agg(migration_name, ',' ORDER BY migration_name) FROM _prisma_migrations
       WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
}

phase_starts() { # phase: how many times the journals show it starting
    cat "$JDIR"/*.jsonl 2>/dev/null | grep -c "\"event\":\"phase\",\"phase\":\"$1\",\"status\":\"start\"" || true
}
wait_phase() { # phase count-before
    for _ in $(seq "$(scaled 1500)"); do
        [[ $(phase_starts "$1") -gt $2 ]] && return 0
        kill -0 "$bg" 2>/dev/null || return 0
        sleep 0.02
    done
    fail "phase $1 never started"
}
last_started() { # the phase the newest journal shows started last
    cat "$(ls "$JDIR"/*.jsonl | tail -1)" | jq -r 'select(.event == "phase" and .status == "start") | .phase' | tail -1
}
# Where the outcome of a fault that lands at a phase's start is certain, it is asserted:
# - the store gone when backup starts: the backup fails, nothing changed (2);
# - the store gone later: nothing reads it until a compensation: released (0);
# - connections cut: only the lock session exists at a phase's start; the release notices
#   it before its next step, takes the lock again (nobody else acted) and goes on: released.
# A cut or a store loss in the middle of a phase's own work is not aimed at here (timing
# cannot guarantee it); release_lock_lost and the "fails" column cover those paths.
expected_exit() { # phase fault
    local want=0
    [[ $1 == backup && $2 == store ]] && want=2
    [[ $rc -eq $want ]] || fail "$1 x $2: exit $rc, expected $want; $(tail -3 "$WORK/err")"
}
# The store unreachable: its directory replaced by a file (it may not exist yet), and back.
store_off() {
    [[ -d $WORK/store ]] && mv "$WORK/store" "$WORK/store.away"
    touch "$WORK/store"
}
store_on() {
    rm -f "$WORK/store"
    if [[ -d $WORK/store.away ]]; then mv "$WORK/store.away" "$WORK/store"; fi
}
cut_connections() {
    psql_value postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE datname = '$db' AND application_name LIKE 'deployctl%'" >/dev/null
}

# Makes the phase fail on its own (the "fails" fault), for the next release only.
arrange_failure() { # phase migration-dir
    case $1 in
    backup) # the store gone between the precheck and the backup
        hook pre-release 0 "WORK='$WORK'; $(declare -f store_off); store_off" ;;
    migrate) printf 'SELECT 1/0;\n' >>"$2/migration.sql" ;;
    verify) printf "INSERT INTO items (name) SELECT 'bulk' FROM generate_series(1, 1000);\n" >>"$2/migration.sql" ;;
    deploy) hook deploy 1 ;;
    smoke) hook deploy 0 "echo 500 >'$APP_STATE'" ;;
    esac
}

check_cell() { # phase fault code
    local what="$1 x $2" outcome
    outcome=$(report .outcome)
    case $3 in
    0)
        assert_eq released "$outcome" "$what: outcome"
        assert_eq t "$(q "SELECT to_regclass('public.m$n') IS NOT NULL")" "$what: migration applied"
        ;;
    2)
        [[ $outcome == rolled-back || $outcome == aborted ]] || fail "$what: outcome $outcome"
        assert_eq "$before" "$(state)" "$what: database identical to before"
        if grep -q '^deploy' "$CALLS"; then
            grep -q '^rollback' "$CALLS" || fail "$what: deployed but the rollback hook was not called"
        fi
        ;;
    *) fail "$what: exit $3; $(tail -3 "$WORK/err")" ;;
    esac
    pass "$what: exit $3 ($outcome)"
}

cell() { # phase fault
    local phase=$1 fault=$2 m
    n=$((n + 1))
    m=2024060100$(printf '%04d' $n)_m$n
    add "$m" "CREATE TABLE m$n (id int); ALTER TABLE items ADD COLUMN c$n int DEFAULT 1;"
    all_hooks
    app_status 200
    : >"$CALLS"
    before=$(state)
    local starts
    starts=$(phase_starts "$phase")
    if [[ $fault == fails ]]; then
        arrange_failure "$phase" "$dir/$m"
        release
        [[ $phase == backup ]] && store_on
        [[ $rc -eq 2 ]] || fail "$phase x fails: exit $rc, expected 2"
        check_cell "$phase" "$fault" "$rc"
    elif [[ $fault == sigkill ]]; then
        # killed exactly in the phase: the release stops itself there (fault point)
        DEPLOYCTL_FAULT=release-phase-$phase release
        assert_eq 137 "$rc" "$phase x sigkill: killed at the fault point"
        assert_eq "$phase" "$(last_started)" "$phase x sigkill: the phase it died in"
        recover
        expect_rc 2 "$phase x sigkill: recover"
        check_cell "$phase" "$fault" "$rc"
    else
        # the phase pauses 2 s (scaled) after its start line; the fault lands in that pause (1 s
        # was too short when the machine is busy: the step began while the store was being moved)
        DEPLOYCTL_FAULT=release-phase-$phase:sleep=$(scaled 2) "$DEPLOYCTL" release --database "$url" \
            --migrations "$dir" --store "$STORE" --hooks "$HOOKS" --smoke "$APP_URL" \
            --smoke-window 2 --report "$REPORT" >"$WORK/out" 2>"$WORK/err" &
        bg=$!
        wait_phase "$phase" "$starts"
        kill -0 "$bg" 2>/dev/null || fail "$phase x $fault: the release ended before the fault"
        case $fault in
        cut) cut_connections ;;
        store) store_off ;;
        esac
        assert_eq "$phase" "$(last_started)" "$phase x $fault: the phase the fault landed in"
        set +e
        wait "$bg"
        rc=$?
        set -e
        [[ $fault == store ]] && store_on
        expected_exit "$phase" "$fault"
        if [[ $fault == cut ]] && ! grep -q "lock's session was lost and is back" "$WORK/err"; then
            fail "$phase x cut: the lost lock session went unnoticed: $(tail -3 "$WORK/err")"
        fi
        check_cell "$phase" "$fault" "$rc"
    fi
    [[ $(report .outcome) == released ]] || rm -rf "${dir:?}/$m"
}

phases=${RELEASE_FAULT_PHASES:-backup migrate verify deploy smoke}
faults=${RELEASE_FAULTS:-fails sigkill cut store}
for phase in $phases; do
    for fault in $faults; do
        cell "$phase" "$fault"
    done
done

# The rehearse phase (release --rehearse): killed once its scratch copy of production exists
# (journaled before any data goes in), then recover: aborted, the database as before, the
# maintenance window closed and the scratch database dropped. Stopped by a signal there: a
# cancellation (exit 2, compensated), not a refusal (exit 4).
scratch_events() { cat "$JDIR"/*.jsonl 2>/dev/null | grep -c '"event":"scratch"' || true; }
scratch_of_last() { # the scratch database the newest journal names
    jq -r 'select(.event == "scratch") | .database' "$(ls "$JDIR"/*.jsonl | tail -1)" | tail -1
}
rehearse_cell() { # fault
    n=$((n + 1))
    local m=2024060100$(printf '%04d' $n)_m$n what="rehearse x $1" scratch
    add "$m" "CREATE TABLE m$n (id int);"
    all_hooks
    hook maintenance-on
    hook maintenance-off
    app_status 200
    : >"$CALLS"
    before=$(state)
    scratches=$(scratch_events)
    if [[ $1 == sigkill ]]; then
        DEPLOYCTL_FAULT=release-scratch-created release --rehearse
        assert_eq 137 "$rc" "$what: killed at the fault point"
        assert_eq rehearse "$(last_started)" "$what: the phase it died in"
        scratch=$(scratch_of_last)
        [[ $scratch == deployctl_rehearse_* ]] || fail "$what: the journal names no scratch database"
        db_exists "$scratch" || fail "$what: the scratch database $scratch was not there to leave"
        recover
        expect_rc 2 "$what: recover"
        assert_eq aborted "$(report .outcome)" "$what: outcome"
        grep -q "DROP DATABASE" <<<"$(report '.state.manual_steps[]?')" &&
            fail "$what: dropping the scratch database was left to the operator"
    else
        DEPLOYCTL_FAULT=release-scratch-created:sleep=1 "$DEPLOYCTL" release --database "$url" \
            --migrations "$dir" --store "$STORE" --hooks "$HOOKS" --smoke "$APP_URL" --rehearse \
            --report "$REPORT" >"$WORK/out" 2>"$WORK/err" &
        bg=$!
        for _ in $(seq 300); do
            [[ $(scratch_events) -gt $scratches ]] && break
            sleep 0.05
        done
        scratch=$(scratch_of_last)
        kill -INT "$bg"
        set +e
        wait "$bg"
        rc=$?
        set -e
        assert_eq 2 "$rc" "$what: a cancelled rehearsal is compensated (exit 2), not refused (4): $(tail -3 "$WORK/err")"
        [[ $(report .outcome) != refused ]] || fail "$what: outcome refused"
    fi
    assert_eq "$before" "$(state)" "$what: database identical to before"
    grep -q '^maintenance-off' "$CALLS" || fail "$what: the maintenance window was left open: $(called)"
    db_exists "$scratch" && fail "$what: the scratch database $scratch was left behind"
    rm -rf "${dir:?}/$m"
    rm -f "$HOOKS/maintenance-on" "$HOOKS/maintenance-off"
    pass "$what: exit $rc ($(report .outcome)), nothing changed, maintenance ended, scratch dropped"
}
for fault in ${RELEASE_REHEARSE_FAULTS:-sigkill sigint}; do
    rehearse_cell "$fault"
done
