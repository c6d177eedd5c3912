#!/usr/bin/env bash
# Round trips through deployctl itself: the database with every kind of object, and the public
# sample databases, are backed up, restored into new databases (--target, created), and compared
# with their sources: identical pg_dump --schema-only output and identical contents. Plain and
# deep verification pass and are recorded; a deep verify leaves no scratch database behind.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

store=$WORK/store

roundtrip() { # source-db
    local src=$1 copy="${1}_restored"
    run_deployctl backup --database "$(db_url "$src")" --store "$store" --chunk-size 128KiB --quiet
    [[ $rc -eq 0 ]] || fail "$src: backup failed: $(cat "$WORK/err")"
    local id
    id=$(tail -n 1 "$WORK/out")
    drop_at_exit "$copy"
    run_deployctl restore "$id" --database "$(db_url "$src")" --target "$(db_url "$copy")" \
        --store "$store" --json --progress-interval 1ms
    [[ $rc -eq 0 ]] || fail "$src: restore failed: $(cat "$WORK/err")"
    grep -qE '^deployctl: restore: .*rows, [0-9]+/[0-9]+ tables, .*/s, ETA' "$WORK/err" ||
        fail "$src: no progress lines from the restore: $(cat "$WORK/err")"
    jq -e '.created_target == true and .safety_snapshot == null' "$WORK/out" >/dev/null ||
        fail "$src: restore result: $(cat "$WORK/out")"
    diff -u <(schema_dump "$src") <(schema_dump "$copy") >"$WORK/schema.diff" ||
        fail "$src: schema differs after restore: $(head -40 "$WORK/schema.diff")"
    diff -u <(fingerprint "$src") <(fingerprint "$copy") >"$WORK/fp.diff" ||
        fail "$src: content differs after restore: $(head -40 "$WORK/fp.diff")"
    pass "$src: restored into a new database, schema and content identical"

    # The same with --jobs 2 (parallel loading and index builds, into an empty database).
    local parallel="${1}_parallel"
    drop_at_exit "$parallel"
    run_deployctl restore "$id" --database "$(db_url "$src")" --target "$(db_url "$parallel")" \
        --store "$store" --jobs 2 --verbose
    [[ $rc -eq 0 ]] || fail "$src: parallel restore failed: $(cat "$WORK/err")"
    grep -q "with 2 connections: NOT atomic" "$WORK/err" || fail "$src: the parallel restore did not say it is not atomic"
    diff -u <(schema_dump "$src") <(schema_dump "$parallel") >"$WORK/schema.diff" ||
        fail "$src: schema differs after a parallel restore: $(head -40 "$WORK/schema.diff")"
    diff -u <(fingerprint "$src") <(fingerprint "$parallel") >"$WORK/fp.diff" ||
        fail "$src: content differs after a parallel restore: $(head -40 "$WORK/fp.diff")"
    pass "$src: restored with --jobs 2, schema and content identical"
    # Tables within a loader's fair share are loaded by one loader, TRUNCATE + COPY FREEZE in its
    # transaction: every page of such a table is all-frozen in the visibility map.
    local frozen pages all_frozen
    frozen=$(grep -oE 'chunks of [a-z_]+\.[a-z_]+ \(frozen\)' "$WORK/err" | head -n 1 | cut -d' ' -f3)
    [[ -n $frozen ]] || fail "$src: no table was loaded frozen: $(grep loader "$WORK/err")"
    psql_admin "$parallel" -c "CREATE EXTENSION IF NOT EXISTS pg_visibility" >/dev/null
    read -r pages all_frozen < <(psql_value "$parallel" \
        "SELECT pg_relation_size('$frozen') / current_setting('block_size')::int, all_frozen FROM pg_visibility_map_summary('$frozen')" | tr '|' ' ')
    [[ $pages -gt 0 && $pages -eq $all_frozen ]] ||
        fail "$src: $frozen has $pages pages, $all_frozen all-frozen after a frozen load"
    pass "$src: $frozen loaded frozen ($all_frozen of $pages pages all-frozen)"
    echo "$id" >"$WORK/last-id"
}

src=$(new_db src)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
psql_admin "$src" -c "ALTER DATABASE $src SET search_path = app, public"
roundtrip "$src"
id=$(cat "$WORK/last-id")

# --jobs only into an empty database: a database with tables is refused, untouched.
fingerprint "$src" >"$WORK/src.fp"
run_deployctl restore "$id" --database "$(db_url "$src")" --store "$store" --jobs 2 --yes
[[ $rc -eq 1 ]] && grep -q "restores into an empty database only" "$WORK/err" ||
    fail "--jobs over a database with tables was not refused: $(cat "$WORK/err")"
diff -q <(fingerprint "$src") "$WORK/src.fp" >/dev/null || fail "a refused parallel restore changed the database"
pass "--jobs refuses a database that holds tables"

# Plain and deep verification, recorded and shown by `snapshots`.
run_deployctl verify "$id" --store "$store" --database "$(db_url "$src")"
[[ $rc -eq 0 ]] || fail "verify failed: $(cat "$WORK/err")"
grep -q "verified: .* members" "$WORK/err" || fail "verify said: $(cat "$WORK/err")"
run_deployctl snapshots --store "$store" --json
assert_eq "true|false" "$(jq -r --arg id "$id" '.[] | select(.id == $id) | "\(.verified)|\(.verification.deep)"' "$WORK/out")" \
    "a plain verification recorded"
run_deployctl verify latest --deep --store "$store" --database "$(db_url "$src")" --json
[[ $rc -eq 0 ]] || fail "deep verify failed: $(cat "$WORK/err")"
jq -e --arg id "$id" '.ok == true and .deep == true and .id == $id and .tables > 20 and .rows > 20000' "$WORK/out" >/dev/null ||
    fail "deep verify result: $(cat "$WORK/out")"
assert_eq 0 "$(verify_scratch_dbs "$id")" \
    "scratch databases left behind"
run_deployctl snapshots --store "$store" --json
assert_eq "true|true" "$(jq -r --arg id "$id" '.[] | select(.id == $id) | "\(.verified)|\(.verification.deep)"' "$WORK/out")" \
    "a deep verification recorded"
[[ $(find "$store/$src/$id" -name 'verify-*.json' | wc -l) -ge 1 ]] || fail "no verify-<time>.json stored"
pass "plain and deep verification pass, are stored and listed; no scratch database left"

# backup --verify: backup, then a deep verification.
run_deployctl backup --verify --database "$(db_url "$src")" --store "$store" --tag nightly
[[ $rc -eq 0 ]] || fail "backup --verify failed: $(cat "$WORK/err")"
grep -q "verified: restored into a scratch database" "$WORK/err" || fail "backup --verify did not verify: $(cat "$WORK/err")"
pass "backup --verify"

if datasets=$(datasets_dir); then
    pagila=$(new_db pagila)
    load_pagila "$datasets" "$pagila"
    roundtrip "$pagila"
    chinook=$(new_db chinook)
    load_chinook "$datasets" "$chinook"
    roundtrip "$chinook"
else
    echo "note: sample datasets not found; Pagila and Chinook round trips not run"
fi
