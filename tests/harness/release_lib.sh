# What the release_* tests share (sourced after lib.sh): a database with a table of rows
# ($db, $url), a migrations directory ($dir, from migrate_lib.sh), a hooks directory whose hooks
# record every call into $CALLS, a stand-in HTTP application whose answer a test flips
# (app_status 500), and `release`/`recover` running deployctl with all of it.
# shellcheck source=tests/harness/migrate_lib.sh
source "$HARNESS/migrate_lib.sh"
STORE=file://$WORK/store
HOOKS=$WORK/hooks
CALLS=$WORK/calls
REPORT=$WORK/report.json
mkdir -p "$HOOKS"
: >"$CALLS"

# A first migration applied before the test, and rows in it.
add 20240101000000_init 'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);'
run_deployctl migrate deploy --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "setup: migrate deploy: $(cat "$WORK/err")"
q "INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 200) g" >/dev/null

# hook NAME [EXIT] [SHELL-CODE]: a hook that records "NAME phase=... release=... snapshot=...
# outcome=... report=... attempt=... db=..." and then runs the code and exits.
hook() {
    local name=$1 code=${2:-0} extra=${3:-}
    cat >"$HOOKS/$name" <<HOOK
#!/usr/bin/env bash
echo "$name phase=\$DEPLOYCTL_PHASE release=\$DEPLOYCTL_RELEASE_ID snapshot=\${DEPLOYCTL_SNAPSHOT:-} outcome=\${DEPLOYCTL_OUTCOME:-} report=\${DEPLOYCTL_REPORT:-} attempt=\${DEPLOYCTL_ATTEMPT:-} direct=\${DIRECT_URL:-none}\${DEPLOYCTL_POOLED_URL:-} db=\${DATABASE_URL:-none}" >>"$CALLS"
$extra
exit $code
HOOK
    chmod +x "$HOOKS/$name"
}
all_hooks() {
    for h in pre-release deploy rollback post-release notify; do hook "$h"; done
}
called() { awk '{print $1}' "$CALLS" | paste -sd' ' -; }

# The stand-in application.
APP_STATE=$WORK/app_status
python3 "$HARNESS/release_app.py" "$APP_STATE" >"$WORK/app_port" &
APP_PID=$!
on_exit "kill $APP_PID"
for _ in $(seq 50); do [[ -s $WORK/app_port ]] && break; sleep 0.1; done
APP_URL="http://127.0.0.1:$(cat "$WORK/app_port")/health"
app_status() { echo "$1" >"$APP_STATE"; }

release() {
    run_deployctl release --database "$url" --migrations "$dir" --store "$STORE" --hooks "$HOOKS" \
        --smoke "$APP_URL" --smoke-window 2 --report "$REPORT" "$@"
}
recover() {
    run_deployctl recover --database "$url" --migrations "$dir" --store "$STORE" --hooks "$HOOKS" \
        --report "$REPORT" "$@"
}
report() { jq -r "$1" "$REPORT"; }
expect_rc() { # code what
    [[ $rc -eq $1 ]] || fail "$2: exit $rc, expected $1; stderr: $(tail -5 "$WORK/err")"
}

# Releases that are killed or stopped mid-way (release_recover, release_lock_lost, ...).
# A hook that says it started, then waits for $WORK/go (or 60 s, scaled).
waiting_hook() { # name
    hook "$1" 0 "echo \$\$ >'$WORK/$1.pid'; touch '$WORK/in_$1'; for _ in \$(seq $(scaled 600)); do [[ -e '$WORK/go' ]] && break; sleep 0.1; done"
}
wait_for() { # file
    for _ in $(seq "$(scaled 300)"); do [[ -e $1 ]] && return 0; sleep 0.1; done
    fail "timed out waiting for $1"
}
start_release() { # runs a release in the background; $bg is its pid
    "$DEPLOYCTL" release --database "$url" --migrations "$dir" --store "$STORE" --hooks "$HOOKS" \
        --smoke "$APP_URL" --smoke-window 2 --report "$WORK/bg.json" "$@" >"$WORK/bg.out" 2>"$WORK/bg.err" &
    bg=$!
}
kill_release() { # hook: SIGKILL deployctl while that hook runs, then the hook
    kill -9 "$bg"
    wait "$bg" 2>/dev/null || true
    kill "$(cat "$WORK/$1.pid")" 2>/dev/null || true
    rm -f "$WORK/in_$1"
}

kill_during() { # hook [release args...]: a release SIGKILLed while that hook runs; $victim is its id
    local h=$1
    shift
    waiting_hook "$h"
    start_release "$@"
    wait_for "$WORK/in_$h"
    victim=$(sed -n "s/^$h .*release=\([^ ]*\).*/\1/p" "$CALLS" | tail -1)
    kill_release "$h"
}

