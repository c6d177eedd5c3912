#!/usr/bin/env bash
# Recomputes every hash of a snapshot from its files with standard tools (sha256sum, zstd, tar,
# jq) and compares them with the manifest: the archive, each schema member, each chunk's stored
# and raw bytes and its row count. Also checks the archive holds exactly the expected members.
#   check_archive.sh SNAPSHOT_DIR
set -euo pipefail
snap=${1:?snapshot directory}
m=$snap/manifest.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
die() { echo "check_archive: $*" >&2; exit 1; }

[[ $(jq -r .format "$m") == deployctl-snapshot ]] || die "format is not deployctl-snapshot"
[[ $(jq -r .format_version "$m") == 1 ]] || die "format_version is not 1"
[[ $(stat -c %s "$snap/snapshot.tar") == $(jq -r .archive.bytes "$m") ]] || die "archive size differs"
[[ $(sha256sum <"$snap/snapshot.tar" | cut -d' ' -f1) == $(jq -r .archive.sha256 "$m") ]] || die "archive sha256 differs"

# pre-data first, post-data last, and between them exactly the manifest's chunks, once each.
tar -tf "$snap/snapshot.tar" >"$tmp/members"
[[ $(head -n 1 "$tmp/members") == schema/pre-data.sql ]] || die "the first member is not schema/pre-data.sql"
[[ $(tail -n 1 "$tmp/members") == schema/post-data.sql ]] || die "the last member is not schema/post-data.sql"
sed '1d;$d' "$tmp/members" | sort >"$tmp/chunks"
jq -r '.tables[].chunks[].member, (.large_objects[]?.chunks[].member)' "$m" | sort >"$tmp/expected"
diff -u "$tmp/expected" "$tmp/chunks" >&2 || die "archive chunks differ from the manifest's"
[[ -z $(uniq -d "$tmp/chunks") ]] || die "duplicate members in the archive"

mkdir "$tmp/x"
tar -xf "$snap/snapshot.tar" -C "$tmp/x"
jq -r '.schema[] | [.member, .bytes, .sha256] | @tsv' "$m" | while IFS=$'\t' read -r member bytes sha; do
    [[ $(stat -c %s "$tmp/x/$member") == "$bytes" ]] || die "$member: size differs"
    [[ $(sha256sum <"$tmp/x/$member" | cut -d' ' -f1) == "$sha" ]] || die "$member: sha256 differs"
done
jq -r '.tables[].chunks[] | [.member, .rows, .raw_bytes, .stored_bytes, .sha256, .raw_sha256] | @tsv' "$m" |
    while IFS=$'\t' read -r member rows raw stored sha rawsha; do
        f=$tmp/x/$member
        [[ $(stat -c %s "$f") == "$stored" ]] || die "$member: stored size differs"
        [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$sha" ]] || die "$member: sha256 differs"
        zstd -q -t "$f" || die "$member: not a valid zstd frame"
        [[ $(zstd -q -dc "$f" | sha256sum | cut -d' ' -f1) == "$rawsha" ]] || die "$member: raw sha256 differs"
        [[ $(zstd -q -dc "$f" | wc -c) == "$raw" ]] || die "$member: raw size differs"
        [[ $(zstd -q -dc "$f" | wc -l) == "$rows" ]] || die "$member: row count differs"
    done
jq -r '.large_objects[]? | .chunks[] | [.member, .raw_bytes, .stored_bytes, .sha256, .raw_sha256] | @tsv' "$m" |
    while IFS=$'\t' read -r member raw stored sha rawsha; do
        f=$tmp/x/$member
        [[ $(stat -c %s "$f") == "$stored" ]] || die "$member: stored size differs"
        [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$sha" ]] || die "$member: sha256 differs"
        [[ $(zstd -q -dc "$f" | sha256sum | cut -d' ' -f1) == "$rawsha" ]] || die "$member: raw sha256 differs"
        [[ $(zstd -q -dc "$f" | wc -c) == "$raw" ]] || die "$member: raw size differs"
    done
# Per-table sums agree with their chunks.
jq -e '[.tables[] | (.rows == ([.chunks[].rows] | add // 0)) and (.raw_bytes == ([.chunks[].raw_bytes] | add // 0))] | all' "$m" >/dev/null ||
    die "a table's rows/raw_bytes differ from the sum of its chunks"
echo "archive checked: $(jq '[.tables[].chunks[]] | length' "$m") chunks, $(jq '[.tables[].rows] | add // 0' "$m") rows"
