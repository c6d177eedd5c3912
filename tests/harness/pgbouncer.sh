#!/usr/bin/env bash
# Starts or stops the throwaway PgBouncer the pooler tests connect through (a ctest fixture
# that needs the `pg` fixture's cluster).
#   pgbouncer.sh start STATE_DIR   runs pgbouncer in transaction pooling mode on a private
#                                  loopback port in front of the test cluster (any database
#                                  name), authenticating the dctest role with SCRAM from a
#                                  0600 auth file; writes STATE_DIR/env
#   pgbouncer.sh stop STATE_DIR    stops it and removes its files
# When pgbouncer is not installed, start writes DC_PGB_MISSING into the env file instead and the
# tests that need it report themselves skipped. Runs as the postgres user when we are root
# (pgbouncer refuses to run as root), like pg_cluster.sh.
set -euo pipefail

action=${1:?start or stop}
state=${2:?state directory}
mkdir -p "$state"
pg_env=$(dirname "$state")/pg/env

# shellcheck source=fixture_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/fixture_lib.sh"

stop_bouncer() {
    [[ -f $state/env ]] || return 0
    # shellcheck disable=SC1091
    source "$state/env"
    if [[ -n ${DC_PGB_DIR:-} && -f $DC_PGB_DIR/pgbouncer.pid ]]; then
        local pid
        pid=$(cat "$DC_PGB_DIR/pgbouncer.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    [[ -n ${DC_PGB_DIR:-} && $DC_PGB_DIR == /tmp/deployctl-pgbouncer.* ]] && rm -rf "$DC_PGB_DIR"
    rm -f "$state/env"
}

start_bouncer() {
    stop_bouncer
    local bin dir port
    bin=$(command -v pgbouncer || true)
    [[ -z $bin && -x /usr/sbin/pgbouncer ]] && bin=/usr/sbin/pgbouncer
    if [[ -z $bin ]]; then
        echo "export DC_PGB_MISSING='pgbouncer is not installed (apt-get install pgbouncer)'" >"$state/env"
        echo "pgbouncer not installed: the pooler tests will be skipped"
        return
    fi
    [[ -f $pg_env ]] || { echo "pgbouncer.sh: the test cluster is not running ($pg_env missing)" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$pg_env"
    dir=$(mktemp -d /tmp/deployctl-pgbouncer.XXXXXX)
    chmod 700 "$dir"
    port=$(free_port)
    # The auth file holds the password in clear so pgbouncer can answer the server's SCRAM
    # exchange itself; it is 0600 in a 0700 directory, owned by the user pgbouncer runs as.
    (umask 077 && printf '"dctest" "%s"\n' "$DC_PG_PASSWORD" >"$dir/userlist.txt")
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$DC_PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$dir"
    as_postgres "$bin" -d "$dir/pgbouncer.ini" || { cat "$dir/pgbouncer.log" >&2 2>/dev/null; exit 1; }
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.1
    done
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null ||
        { echo "pgbouncer did not start listening on port $port" >&2; cat "$dir/pgbouncer.log" >&2; exit 1; }
    cat >"$state/env" <<ENV
export DC_PGB_DIR='$dir'
export DC_PGB_PORT='$port'
export DC_PGB_URL_BASE='postgresql://dctest:$DC_PG_PASSWORD@127.0.0.1:$port'
ENV
    chmod 600 "$state/env"
    echo "PgBouncer $("$bin" --version | awk 'NR == 1 {print $2}') (transaction pooling) on port $port in front of port $DC_PG_PORT"
}

case $action in
start) start_bouncer ;;
stop) stop_bouncer ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
