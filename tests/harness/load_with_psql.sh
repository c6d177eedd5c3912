#!/usr/bin/env bash
# Loads a deployctl snapshot into a database with tar, jq, zstd and psql alone -- no deployctl
# code -- proving the format is open: anyone can restore it by hand.
#   load_with_psql.sh SNAPSHOT_DIR PSQL_ARGS...   (SNAPSHOT_DIR holds snapshot.tar and manifest.json)
set -euo pipefail
snap=${1:?snapshot directory}
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xf "$snap/snapshot.tar" -C "$tmp"
manifest=$snap/manifest.json
export PGCLIENTENCODING
PGCLIENTENCODING=$(jq -r '.encoding // "UTF8"' "$manifest")

psql -X -q -v ON_ERROR_STOP=1 "$@" -f "$tmp/schema/pre-data.sql" >/dev/null
# One COPY per chunk, into the columns the manifest names, all in one psql session: each
# chunk's rows follow their COPY command in the script, ended by \. (a row of text-format COPY
# never is "\." alone: its backslashes are doubled).
jq -r '.tables[] | . as $t
       | ([$t.columns[] | "\"" + gsub("\""; "\"\"") + "\""] | join(", ")) as $cols
       | ("\"" + ($t.schema | gsub("\""; "\"\"")) + "\".\"" + ($t.name | gsub("\""; "\"\"")) + "\"") as $rel
       | .chunks[] | [.member, $rel, $cols] | @tsv' "$manifest" |
    while IFS=$'\t' read -r member rel cols; do
        if [[ -n $cols ]]; then target="$rel ($cols)"; else target="$rel"; fi
        printf 'COPY %s FROM STDIN;\n' "$target"
        zstd -q -dc "$tmp/$member"
        printf '%s\n' '\.'
    done | psql -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null
# Large objects: pre-data created them empty; their bytes go in chunk by chunk, in order.
declare -A offset=()
jq -r '.large_objects[]? | .oid as $oid | .chunks[] | [$oid, .member, .raw_bytes] | @tsv' "$manifest" |
    while IFS=$'\t' read -r oid member raw; do
        hex=$(zstd -q -dc "$tmp/$member" | od -An -v -tx1 | tr -d ' \n')
        printf "SELECT pg_catalog.lo_put(%s, %s, decode('%s', 'hex'));\n" "$oid" "${offset[$oid]:-0}" "$hex" |
            psql -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null
        offset[$oid]=$((${offset[$oid]:-0} + raw))
    done
psql -X -q -v ON_ERROR_STOP=1 "$@" -f "$tmp/schema/post-data.sql" >/dev/null
