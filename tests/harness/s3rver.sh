#!/usr/bin/env bash
# Starts or stops the S3-compatible server the s3 tests talk to (the `s3` ctest fixture):
#   s3rver.sh start STATE_DIR   installs s3rver 3.7.1 from the npm registry into
#                               STATE_DIR/npm when missing, runs it on a private loopback port
#                               with objects under STATE_DIR/data and writes STATE_DIR/env
#                               (endpoint, credentials, buckets) for tests to source
#   s3rver.sh stop STATE_DIR    stops it and removes its objects
# Without node or npm, start writes DC_S3_MISSING into the env file and the tests skip.
set -euo pipefail

action=${1:?start or stop}
state=${2:?state directory}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state"

stop_server() {
    if [[ -f $state/pid ]]; then
        local pid
        pid=$(cat "$state/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$state/pid"
    fi
    rm -rf "$state/data" "$state/env" "$state/port"
}

case $action in
start)
    stop_server
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "DC_S3_MISSING='node and npm are not installed (scripts/setup-debian.sh installs them)'" >"$state/env"
        exit 0
    fi
    if [[ ! -f $state/npm/node_modules/s3rver/package.json ]]; then
        mkdir -p "$state/npm"
        # The cache first (works offline), the registry when the cache does not have it.
        npm install --prefix "$state/npm" --no-audit --no-fund --offline s3rver@3.7.1 >"$state/npm.log" 2>&1 ||
            npm install --prefix "$state/npm" --no-audit --no-fund s3rver@3.7.1 >>"$state/npm.log" 2>&1 || {
            tail -20 "$state/npm.log" >&2
            echo "s3rver.sh: cannot install s3rver (log: $state/npm.log)" >&2
            exit 1
        }
    fi
    mkdir -p "$state/data"
    key=DCTESTKEY$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
    secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
    # s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider:
    # without it, listing more than 1000 keys fails with a 500.
    legacy=()
    node --openssl-legacy-provider -e '' 2>/dev/null && legacy=(--openssl-legacy-provider)
    setsid node "${legacy[@]}" "$here/s3rver_launch.js" "$state/npm/node_modules" "$state/data" "$state/port" \
        "$key" "$secret" >"$state/s3rver.log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    for _ in $(seq 1 100); do
        [[ -s $state/port ]] && break
        kill -0 "$(cat "$state/pid")" 2>/dev/null || { cat "$state/s3rver.log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -s $state/port ]] || { echo "s3rver.sh: s3rver did not start" >&2; cat "$state/s3rver.log" >&2; exit 1; }
    port=$(cat "$state/port")
    cat >"$state/env" <<ENV
DC_S3_ENDPOINT=http://127.0.0.1:$port
DC_S3_PORT=$port
DC_S3_BUCKET=deployctl
DC_S3_LISTING_BUCKET=deployctl-uploads
DC_S3_KEY=$key
DC_S3_SECRET=$secret
DC_S3_DATA=$state/data
ENV
    echo "s3rver on 127.0.0.1:$port"
    ;;
stop)
    stop_server
    ;;
*)
    echo "usage: s3rver.sh start|stop STATE_DIR" >&2
    exit 2
    ;;
esac
