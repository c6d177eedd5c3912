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
# Every chunk (table data and large objects): stored size and sha256, a valid zstd frame, and
# the decompressed bytes' size, sha256 and line count (rows; large objects have none). One run
# of each tool over all the chunks, not one per chunk: a snapshot can hold thousands.
jq -r '(.tables[].chunks[] | [.member, .rows, .raw_bytes, .stored_bytes, .sha256, .raw_sha256]),
       (.large_objects[]? | .chunks[] | [.member, "-", .raw_bytes, .stored_bytes, .sha256, .raw_sha256]) | @tsv' \
    "$m" >"$tmp/chunks.tsv"
mapfile -t members < <(cut -f1 "$tmp/chunks.tsv")
if [[ ${#members[@]} -gt 0 ]]; then
    cd "$tmp/x"
    for member in "${members[@]}"; do
        [[ $member == *.zst ]] || die "$member: a chunk member not named *.zst"
    done
    zstd -q -t -- "${members[@]}" || die "a chunk is not a valid zstd frame"
    # data/1.2.copy.zst -> data/1.2.copy, next to it
    zstd -q -d -- "${members[@]}" || die "a chunk does not decompress"
    raws=("${members[@]%.zst}")
    declare -A size sha raw_sha raw_size raw_lines
    while read -r n f; do size[$f]=$n; done < <(stat -c '%s %n' -- "${members[@]}")
    while read -r h f; do sha[$f]=$h; done < <(sha256sum -- "${members[@]}")
    while read -r h f; do raw_sha[$f]=$h; done < <(sha256sum -- "${raws[@]}")
    while read -r l c f; do
        raw_lines[$f]=$l
        raw_size[$f]=$c
    done < <(wc -l -c -- "${raws[@]}")
    while IFS=$'\t' read -r member rows raw stored want_sha want_raw_sha; do
        r=${member%.zst}
        [[ ${size[$member]:-} == "$stored" ]] || die "$member: stored size differs"
        [[ ${sha[$member]:-} == "$want_sha" ]] || die "$member: sha256 differs"
        [[ ${raw_sha[$r]:-} == "$want_raw_sha" ]] || die "$member: raw sha256 differs"
        [[ ${raw_size[$r]:-} == "$raw" ]] || die "$member: raw size differs"
        [[ $rows == - || ${raw_lines[$r]:-} == "$rows" ]] || die "$member: row count differs"
    done <"$tmp/chunks.tsv"
    cd - >/dev/null
fi
# Per-table sums agree with their chunks.
jq -e '[.tables[] | (.rows == ([.chunks[].rows] | add // 0)) and (.raw_bytes == ([.chunks[].raw_bytes] | add // 0))] | all' "$m" >/dev/null ||
    die "a table's rows/raw_bytes differ from the sum of its chunks"
echo "archive checked: $(jq '[.tables[].chunks[]] | length' "$m") chunks, $(jq '[.tables[].rows] | add // 0' "$m") rows"
