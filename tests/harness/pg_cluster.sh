#!/usr/bin/env bash
# Starts or stops the throwaway PostgreSQL cluster the tests share (a ctest fixture).
#   pg_cluster.sh start STATE_DIR   creates a cluster in a temp dir owned by postgres, on a
#                                   private port and socket directory; writes STATE_DIR/env
#   pg_cluster.sh stop STATE_DIR    stops it and removes its files
# The server refuses to run as root, so it runs as the postgres user (runuser when we are root).
set -euo pipefail

action=${1:?start or stop}
state=${2:?state directory}
mkdir -p "$state"

pg_bin() {
    local v
    for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
        if [[ -x /usr/lib/postgresql/$v/bin/initdb ]]; then
            echo "/usr/lib/postgresql/$v/bin"
            return
        fi
    done
    echo "pg_cluster.sh: no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
}

# shellcheck source=fixture_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/fixture_lib.sh"

stop_cluster() {
    [[ -f $state/env ]] || return 0
    # shellcheck disable=SC1091
    source "$state/env"
    if [[ -d ${DC_PG_DIR:-}/data ]]; then
        as_postgres "$DC_PG_BIN/pg_ctl" -D "$DC_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [[ -n ${DC_PG_DIR:-} && $DC_PG_DIR == /tmp/deployctl-pg.* ]] && rm -rf "$DC_PG_DIR"
    rm -f "$state/env"
}

start_cluster() {
    stop_cluster
    local bin dir port password
    bin=$(pg_bin)
    dir=$(mktemp -d /tmp/deployctl-pg.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$dir/sock"
    [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$dir"
    port=$(free_port)
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    "$bin/psql" -X -q -h "$dir/sock" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE dctest LOGIN SUPERUSER PASSWORD '$password'" >/dev/null
    cat >"$state/env" <<ENV
export DC_PG_BIN='$bin'
export DC_PG_DIR='$dir'
export DC_PG_SOCKET='$dir/sock'
export DC_PG_PORT='$port'
export DC_PG_PASSWORD='$password'
export DC_PG_URL_BASE='postgresql://dctest:$password@127.0.0.1:$port'
ENV
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running on port $port (socket $dir/sock)"
}

case $action in
start) start_cluster ;;
stop) stop_cluster ;;
*) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
