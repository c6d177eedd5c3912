#!/usr/bin/env bash
# `migrate status` on the sample app: pending before a deploy (exit 4), up to date after (exit 0);
# a migration edited after it was applied is reported, a CRLF checkout of the same file is not;
# a migration applied but missing from the directory is reported; --json carries each state.
# Prisma's ?schema= puts the tables and _prisma_migrations in that schema, as Prisma does.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
src=$DC_SOURCE_DIR/examples/inventory-app/prisma/migrations
dir=$WORK/migrations
cp -r "$src" "$dir"
q() { psql_value "$db" "$1"; }
status() { run_deployctl migrate status --database "$url" --migrations "$1" --json; }
state_of() { # name: the status --json gave it
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([m["status"] for m in d["migrations"] if m["name"]==sys.argv[2]][0])' "$WORK/out" "$1"
}

status "$dir"
[[ $rc -eq 4 ]] || fail "status of an empty database: rc $rc"
grep -q '"up_to_date":false,"history_table":false' "$WORK/out" && grep -q '"pending":8' "$WORK/out" ||
    fail "status before deploy: $(cat "$WORK/out")"
grep -q "not up to date: 8 pending" "$WORK/err" || fail "status message: $(cat "$WORK/err")"
assert_eq "" "$(q "SELECT to_regclass('_prisma_migrations')")" "status created the history table"
run_deployctl migrate deploy --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"
status "$dir"
[[ $rc -eq 0 ]] && grep -q '"up_to_date":true' "$WORK/out" && grep -q '"applied":8' "$WORK/out" || fail "after deploy: $(cat "$WORK/out")"
grep -q '"runner_pid":null' "$WORK/out" || fail "a runner reported where none runs: $(cat "$WORK/out")"
run_deployctl migrate status --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] && grep -q "^20240210000000_add_inventory_items_name_batch_number_index  applied  *yes" "$WORK/out" ||
    fail "status table: $(cat "$WORK/out")"
pass "status: pending before deploy (exit 4), up to date after (exit 0)"

# A Windows checkout (CRLF) of every applied file is not an edit.
crlf=$WORK/crlf
cp -r "$src" "$crlf"
for f in "$crlf"/*/migration.sql; do sed -i 's/$/\r/' "$f"; done
cmp -s "$crlf/20240101000000_init/migration.sql" "$src/20240101000000_init/migration.sql" && fail "sed made no CRLF"
status "$crlf"
[[ $rc -eq 0 ]] || fail "a CRLF checkout counts as edited: $(cat "$WORK/out")"
pass "a CRLF-only change is not an edit"

# The other way round: applied from a CRLF file (a Windows deploy), checked out LF.
crlf_sum=$(sha256sum <"$crlf/20240101000000_init/migration.sql" | cut -d' ' -f1)
q "UPDATE _prisma_migrations SET checksum = '$crlf_sum' WHERE migration_name = '20240101000000_init'" >/dev/null
status "$dir"
[[ $rc -eq 0 ]] || fail "applied from CRLF, checked out LF counts as edited: $(cat "$WORK/out")"
# Old Prisma versions wrote checksums without each byte's leading zero (prisma-engines #1887);
# this file's SHA-256 has two bytes below 0x10, so its unpadded form has 62 characters.
m=20240210000000_add_inventory_items_name_batch_number_index
lf_sum=$(sha256sum <"$dir/$m/migration.sql" | cut -d' ' -f1)
old_sum=$(python3 -c 'import sys; print("".join("%x" % b for b in bytes.fromhex(sys.argv[1])))' "$lf_sum")
assert_eq 62 "${#old_sum}" "unpadded checksum length"
q "UPDATE _prisma_migrations SET checksum = '$old_sum' WHERE migration_name = '$m'" >/dev/null
status "$dir"
[[ $rc -eq 0 ]] || fail "an unpadded legacy checksum counts as edited: $(cat "$WORK/out")"
q "UPDATE _prisma_migrations SET checksum = '$lf_sum' WHERE migration_name = '$m'" >/dev/null
q "UPDATE _prisma_migrations SET checksum = '$(sha256sum <"$dir/20240101000000_init/migration.sql" | cut -d' ' -f1)' WHERE migration_name = '20240101000000_init'" >/dev/null
pass "applied from CRLF and read as LF, and legacy unpadded checksums, are not edits (as Prisma)"

# A real edit is.
edited=$WORK/edited
cp -r "$src" "$edited"
printf -- '-- a comment added after the fact\n' >>"$edited/20240115000000_add_user_preferences/migration.sql"
sed -i 's/$/\r/' "$edited/20240115000000_add_user_preferences/migration.sql"
status "$edited"
[[ $rc -eq 4 ]] || fail "an edited migration: rc $rc"
assert_eq edited "$(state_of 20240115000000_add_user_preferences)" "edited migration"
assert_eq applied "$(state_of 20240101000000_init)" "untouched migration"
grep -q "1 edited after they were applied" "$WORK/err" || fail "status message: $(cat "$WORK/err")"
pass "a migration edited after it was applied is reported (exit 4)"

# Missing locally: applied, but not in the directory.
missing=$WORK/missing
cp -r "$src" "$missing"
rm -r "$missing/20240415000000_remove_user_name"
status "$missing"
[[ $rc -eq 4 ]] || fail "a missing migration: rc $rc"
assert_eq missing_locally "$(state_of 20240415000000_remove_user_name)" "missing migration"
grep -q '"missing_locally":1' "$WORK/out" || fail "counts: $(cat "$WORK/out")"
pass "a migration applied but missing from the directory is reported (exit 4)"

# Prisma's ?schema=: the tables and the history live in that schema.
schema_db=$(new_db schema)
run_deployctl migrate deploy --database "$(db_url "$schema_db")?schema=inventory&connection_limit=5" --migrations "$src"
[[ $rc -eq 0 ]] || fail "deploy with ?schema=: $(cat "$WORK/err")"
assert_eq "inventory._prisma_migrations|inventory.inventory_items|" \
    "$(psql_value "$schema_db" "SELECT to_regclass('inventory._prisma_migrations')::text || '|' || to_regclass('inventory.inventory_items')::text || '|' || coalesce(to_regclass('public._prisma_migrations')::text, '')")" \
    "tables in the URL's schema"
run_deployctl migrate status --database "$(db_url "$schema_db")?schema=inventory" --migrations "$src"
[[ $rc -eq 0 ]] || fail "status with ?schema=: $(cat "$WORK/err")"
pass "?schema= keeps the tables and _prisma_migrations in that schema"

# Usage errors.
run_deployctl migrate frobnicate --database "$url"
[[ $rc -eq 1 ]] && grep -q "unknown migrate subcommand 'frobnicate'" "$WORK/err" || fail "unknown subcommand: $(cat "$WORK/err")"
run_deployctl migrate deploy --applied x --database "$url" --migrations "$dir"
[[ $rc -eq 1 ]] && grep -q "go with 'migrate resolve'" "$WORK/err" || fail "--applied with deploy: $(cat "$WORK/err")"
run_deployctl migrate status --database "$url" --migrations "$WORK/nowhere"
[[ $rc -eq 1 ]] && grep -q "cannot read the migrations directory $WORK/nowhere" "$WORK/err" || fail "missing dir: $(cat "$WORK/err")"
pass "usage errors are named"
