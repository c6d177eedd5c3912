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
# One COPY per chunk, into the columns the manifest names.
jq -r '.tables[] | . as $t
       | ([$t.columns[] | "\"" + gsub("\""; "\"\"") + "\""] | join(", ")) as $cols
       | ("\"" + ($t.schema | gsub("\""; "\"\"")) + "\".\"" + ($t.name | gsub("\""; "\"\"")) + "\"") as $rel
       | .chunks[] | [.member, $rel, $cols] | @tsv' "$manifest" |
    while IFS=$'\t' read -r member rel cols; do
        if [[ -n $cols ]]; then target="$rel ($cols)"; else target="$rel"; fi
        zstd -q -dc "$tmp/$member" | psql -X -q -v ON_ERROR_STOP=1 "$@" -c "COPY $target FROM STDIN"
    done
psql -X -q -v ON_ERROR_STOP=1 "$@" -f "$tmp/schema/post-data.sql" >/dev/null
