#!/usr/bin/env bash
# A database with every kind of object and value is backed up, its archive is checked hash by
# hash with standard tools, then loaded into a fresh database with psql and zstd alone: schema
# and content must be identical to the source.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
dst=$(new_db dst)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
# A search_path of the database's own, as applications set: backups must not depend on it.
psql_admin "$src" -c "ALTER DATABASE $src SET search_path = app, public"
store=$WORK/store

# Small chunks and ranges, so big tables are split among workers and into several chunks.
run_deployctl backup --database "$(db_url "$src")" --store "file://$store" --jobs 3 \
    --chunk-size 64KiB --split-size 64KiB --tag nightly
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
[[ $id =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$ ]] || fail "last line of stdout is not a snapshot id: '$id'"
pass "backup printed id $id"

snap=$(snapshot_dir "$store" "$src" "$id")
m=$snap/manifest.json
[[ -f $m && -f $snap/snapshot.tar ]] || fail "snapshot files missing in $snap"
assert_eq nightly "$(jq -r .tag "$m")" "tag"
assert_eq "$src" "$(jq -r .database "$m")" "database"
assert_eq 1 "$(jq -r .format_version "$m")" "format_version"
"$HARNESS/check_archive.sh" "$snap" || fail "archive hashes do not match the manifest"
pass "every hash recomputed from the archive matches the manifest"

# What the manifest must and must not contain.
tables=$(jq -r '.tables[] | .schema + "." + .name' "$m")
grep -qx 'deployctl.journal' <<<"$tables" && fail "deployctl's own schema was backed up"
grep -qx 'public.measurements' <<<"$tables" && fail "a partitioned parent has chunks (rows must come from leaves)"
grep -qx 'public.measurements_2024_eu' <<<"$tables" || fail "a leaf partition is missing"
grep -qx 'Ünïcödé Schéma.Tâble Ñame' <<<"$tables" || fail "non-ASCII table missing"
assert_eq '["price","qty"]' "$(jq -c '.tables[] | select(.name == "with_generated") | .columns | map(select(. != "id"))' "$m")" \
    "generated columns must not be in the column list"
assert_eq '["a","c"]' "$(jq -c '.tables[] | select(.name == "with_dropped") | .columns' "$m")" "dropped column skipped"
assert_eq 1 "$(jq '.tables[] | select(.schema == "public" and .name == "vehicles") | .rows' "$m")" "inheritance parent rows"
assert_eq 0 "$(jq '.tables[] | select(.name == "empty_table") | .chunks | length' "$m")" "empty table has no chunks"
assert_eq 2 "$(jq '.tables[] | select(.name == "no_columns") | .rows' "$m")" "zero-column table rows"
assert_eq 2 "$(jq '.tables[] | select(.name == "secrets") | .rows' "$m")" "row-level security hid rows"
events_chunks=$(jq '.tables[] | select(.name == "events") | .chunks | length' "$m")
[[ $events_chunks -ge 4 ]] || fail "events should be split into several chunks, got $events_chunks"
assert_eq '20240101000000_init,20240201000000_add_orders' \
    "$(jq -r '[.migrations[].name] | join(",")' "$m")" "migrations recorded (finished ones only)"
assert_eq 3 "$(jq '.large_objects | length' "$m")" "large objects listed"
[[ $(jq '.large_objects[] | select(.oid == 424244) | .chunks | length' "$m") -ge 3 ]] ||
    fail "the 384 KB large object should span several chunks"
assert_eq 384000 "$(jq '.large_objects[] | select(.oid == 424244) | .bytes' "$m")" "large object size"
assert_eq "$(psql_value "$src" "SELECT count(*) FROM public.events")" \
    "$(jq '.tables[] | select(.name == "events") | .rows' "$m")" "events row count"
key=$(jq -r '.restrict_key // empty' "$m")
if [[ -n $key ]]; then
    tar -xOf "$snap/snapshot.tar" schema/pre-data.sql >"$WORK/pre-data.sql"
    grep -qxF "\\restrict $key" "$WORK/pre-data.sql" || fail "pre-data.sql does not carry the manifest's restrict key"
fi
pass "manifest lists the right tables, columns and migrations"

# Load with psql + zstd only, then compare.
PATH="$DC_PG_BIN:$PATH" "$HARNESS/load_with_psql.sh" "$snap" -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$dst" ||
    fail "loading the archive with psql failed"
diff -u <(schema_dump "$src") <(schema_dump "$dst") >"$WORK/schema.diff" ||
    fail "schema differs after loading: $(head -40 "$WORK/schema.diff")"
pass "schema identical (pg_dump --schema-only)"
fingerprint "$src" >"$WORK/src.fp"
fingerprint "$dst" >"$WORK/dst.fp"
diff -u "$WORK/src.fp" "$WORK/dst.fp" >"$WORK/fp.diff" || fail "content differs: $(head -40 "$WORK/fp.diff")"
[[ $(wc -l <"$WORK/src.fp") -gt 30 ]] || fail "fingerprint too small to mean anything"
pass "content identical: $(wc -l <"$WORK/src.fp") tables and sequences"
assert_eq 0 "$(psql_value "$dst" "SELECT count(*) FROM pg_namespace WHERE nspname = 'deployctl'")" "deployctl schema absent"
assert_eq "20|t" "$(psql_value "$dst" "SELECT count(*), bool_and(total = price * qty AND label = 'item-' || qty) FROM public.with_generated")" \
    "generated columns recomputed"
