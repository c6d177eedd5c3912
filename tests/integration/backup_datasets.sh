#!/usr/bin/env bash
# Real sample databases nobody on this project wrote (Pagila, Chinook; see ../shared/datasets):
# backed up, checked hash by hash, loaded with psql and zstd alone, and compared with the source.
# Skipped, with the reason, when the datasets directory is absent (a clone of the project alone).
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

datasets=$(datasets_dir) || skip "sample datasets not found (set DEPLOYCTL_DATASETS or provide ../shared/datasets)"

roundtrip() { # name
    local src=$1 dst
    dst=$(new_db "${1}_copy")
    run_deployctl backup --database "$(db_url "$src")" --store "$WORK/store" --jobs 2
    [[ $rc -eq 0 ]] || fail "$1: backup failed: $(cat "$WORK/err")"
    local id snap
    id=$(tail -n 1 "$WORK/out")
    snap=$WORK/store/$src/$id
    "$HARNESS/check_archive.sh" "$snap" >/dev/null || fail "$1: archive hashes differ from the manifest"
    PATH="$DC_PG_BIN:$PATH" "$HARNESS/load_with_psql.sh" "$snap" -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$dst" ||
        fail "$1: loading with psql failed"
    diff -u <(schema_dump "$src") <(schema_dump "$dst") >"$WORK/schema.diff" ||
        fail "$1: schema differs: $(head -30 "$WORK/schema.diff")"
    diff -u <(fingerprint "$src") <(fingerprint "$dst") >"$WORK/fp.diff" ||
        fail "$1: content differs: $(head -30 "$WORK/fp.diff")"
    pass "$1: $(jq '[.tables[].rows] | add' "$snap/manifest.json") rows in $(jq '.tables | length' "$snap/manifest.json") tables round-trip exactly"
}

pagila=$(new_db pagila)
load_pagila "$datasets" "$pagila"
roundtrip "$pagila"

chinook=$(new_db chinook)
load_chinook "$datasets" "$chinook"
roundtrip "$chinook"
