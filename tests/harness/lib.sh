# Shared helpers for the integration tests (sourced). Each test gets its own databases (named
# after the test), its own store and work directory, and the cluster started by the pg fixture.
set -euo pipefail

: "${DC_BUILD_DIR:?run the tests through ctest (DC_BUILD_DIR unset)}"
: "${DC_SOURCE_DIR:?run the tests through ctest (DC_SOURCE_DIR unset)}"
if [[ ! -f $DC_BUILD_DIR/tests/pg/env ]]; then
    echo "the test cluster is not running: run the tests through ctest (fixture 'pg')" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$DC_BUILD_DIR/tests/pg/env"

DEPLOYCTL=${DEPLOYCTL:-$DC_BUILD_DIR/deployctl}
HARNESS=$DC_SOURCE_DIR/tests/harness
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
WORK=$(mktemp -d "/tmp/deployctl-test-$TEST_NAME.XXXXXX")
chmod 755 "$WORK"
export PGCLIENTENCODING=UTF8
# deployctl must never pick up a config file or store from the machine it runs on.
export DEPLOYCTL_STATE_DIR=$WORK/state
unset DATABASE_URL DATABASE_URL_DIRECT DEPLOYCTL_STORE DEPLOYCTL_CONFIG PGPASSWORD || true

_cleanup_hooks=()
on_exit() { _cleanup_hooks+=("$1"); }
_run_cleanup() {
    local rc=$?
    for hook in "${_cleanup_hooks[@]}"; do eval "$hook" || true; done
    # Databases made by new_db (which runs in $(...) subshells: hence a file, not a hook).
    if [[ -f $WORK/.databases ]]; then
        while read -r name; do
            psql_admin postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
        done <"$WORK/.databases"
    fi
    if [[ $rc -eq 0 || -z ${KEEP_WORK:-} ]]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap _run_cleanup EXIT

# shellcheck source=assert_lib.sh
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"

# psql as the superuser over the socket: admin work outside deployctl.
psql_admin() { # db args...
    local db=$1
    shift
    PGOPTIONS=${PGOPTIONS:--c client_min_messages=warning} "$DC_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$db" "$@"
}
# Scratch databases deep verify made for snapshot ID that still exist. Keyed to the snapshot:
# other tests' deep verifies run on the same cluster at the same time.
verify_scratch_dbs() { # id
    psql_value postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'deployctl_verify_$(tr 'A-Z-' 'a-z_' <<<"$1")_%'"
}

psql_value() { # db sql
    psql_admin "$1" -At -c "$2"
}

# Drops the database when the test ends (works from $(...) subshells too).
drop_at_exit() { # name
    echo "$1" >>"$WORK/.databases"
}

# A fresh database for this test, dropped when the test ends; prints its name.
new_db() { # suffix
    local name="t_${TEST_NAME}_$1"
    name=${name//-/_}
    psql_admin postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    psql_admin postgres -c "CREATE DATABASE \"$name\"" >/dev/null
    drop_at_exit "$name"
    echo "$name"
}

# A name for a database deployctl is to create (none exists under it now), dropped when the test
# ends; prints its name.
target_db() { # suffix
    local name="t_${TEST_NAME}_$1"
    psql_admin postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    drop_at_exit "$name"
    echo "$name"
}

db_exists() { # name
    [[ $(psql_value postgres "SELECT count(*) FROM pg_database WHERE datname = '$1'") -eq 1 ]]
}

# expect_error_line WHAT PATTERN: the last run_deployctl (with --quiet) exited 1 with exactly one
# line on stderr, an error line matching PATTERN (extended regex, case-insensitive).
expect_error_line() {
    [[ $rc -eq 1 ]] || fail "$1: expected exit 1, got $rc (stderr: $(cat "$WORK/err"))"
    [[ $(wc -l <"$WORK/err") -eq 1 ]] || fail "$1: expected one line on stderr, got: $(cat "$WORK/err")"
    grep -q '^deployctl: error: ' "$WORK/err" || fail "$1: not an error line: $(cat "$WORK/err")"
    grep -qiE -- "$2" "$WORK/err" || fail "$1: message does not match /$2/: $(cat "$WORK/err")"
}

# The URL deployctl uses: TCP with a password, as in production.
db_url() { echo "$DC_PG_URL_BASE/$1"; }

# A fingerprint of a database's content: the row count of every table and materialized view
# with the sum of its rows' 64-bit hashes (as text; a sum, so no sort: the order of the rows
# does not matter, duplicates count), and every sequence's state. Equal fingerprints, equal data.
fingerprint() { # db
    PGOPTIONS='-c client_min_messages=warning -c search_path=' psql_admin "$1" -At -F '|' <<'SQL'
SELECT format('SELECT %L, count(*), coalesce(sum(hashtextextended(x::text, 0)::numeric), 0) FROM %s %I.%I x',
              n.nspname || '.' || c.relname, CASE WHEN c.relkind = 'r' THEN 'ONLY' ELSE '' END, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'deployctl')
  AND n.nspname !~ '^pg_toast' AND (c.relkind <> 'm' OR c.relispopulated)
ORDER BY n.nspname, c.relname \gexec
SELECT format('SELECT %L, last_value, is_called FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'deployctl')
ORDER BY n.nspname, c.relname \gexec
SELECT 'large object ' || oid, pg_catalog.length(pg_catalog.lo_get(oid)), md5(pg_catalog.lo_get(oid))
FROM pg_largeobject_metadata ORDER BY oid;
SQL
}

# The schema as pg_dump sees it, without the per-run \restrict keys.
schema_dump() { # db
    "$DC_PG_BIN/pg_dump" --schema-only --exclude-schema=deployctl -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres "$1" |
        grep -v -E '^\\(un)?restrict '
}

# Runs deployctl; stdout and stderr are kept in $WORK/out and $WORK/err, the status in $rc.
run_deployctl() {
    set +e
    "$DEPLOYCTL" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    set -e
    return 0
}

snapshot_dir() { # store database id
    echo "$1/$2/$3"
}

datasets_dir() {
    local d=${DEPLOYCTL_DATASETS:-$DC_SOURCE_DIR/../shared/datasets}
    [[ -d $d ]] && echo "$d"
}

# Loads the public sample databases (see ../shared/datasets/README.md) into a database.
load_pagila() { # datasets-dir db
    psql_admin "$2" -f "$1/pagila/pagila-schema.sql" >/dev/null
    psql_admin "$2" -f "$1/pagila/pagila-data.sql" >/dev/null
}
load_chinook() { # datasets-dir db
    # The file creates and connects to its own database: load it into ours instead.
    grep -v -E '^(DROP DATABASE|CREATE DATABASE|\\c )' "$1/chinook/Chinook_PostgreSql.sql" |
        psql_admin "$2" >/dev/null
}
