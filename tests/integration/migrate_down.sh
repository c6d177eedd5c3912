#!/usr/bin/env bash
# `migrate down` on the sample app: the down.sql files run newest first, each in a transaction
# with its history row's rolled_back_at, and the schema is exactly the one before the migrations
# (pg_dump -s); the data in the old columns survives; deploy brings them back. Down refuses,
# before changing anything, when a migration to undo has no down.sql.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
src=$DC_SOURCE_DIR/examples/inventory-app/prisma/migrations
dir=$WORK/migrations
mkdir -p "$dir"
cp "$src/migration_lock.toml" "$dir/"
q() { psql_value "$db" "$1"; }
migrate() { run_deployctl migrate "$@" --database "$url" --migrations "$dir"; }
# The schema without the history table's rows (schema_dump has no rows anyway).
schema() { schema_dump "$db"; }

for m in 20240101000000_init 20240115000000_add_user_preferences; do cp -r "$src/$m" "$dir/"; done
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"
psql_admin "$db" <<'SQL'
INSERT INTO users (id, email, name) SELECT 'u' || g, 'u' || g || '@x.test', 'User ' || g FROM generate_series(1, 20) g;
INSERT INTO inventory_items (item_name, batch, quantity, created_by)
SELECT 'item ' || g, 'B' || g, g, 'u' || (1 + g % 20) FROM generate_series(1, 500) g;
SQL
schema >"$WORK/before.sql"
data_before=$(fingerprint "$db" | grep -v _prisma_migrations)

# The three additive migrations of the scenarios, each with a down.sql.
for m in 20240201000000_expand_batch_number 20240210000000_add_inventory_items_name_batch_number_index \
    20240301000000_expand_quantity_decimal; do cp -r "$src/$m" "$dir/"; done
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"
schema >"$WORK/after.sql"
cmp -s "$WORK/before.sql" "$WORK/after.sql" && fail "the migrations changed no schema"

# One step: the newest only.
migrate down --json
[[ $rc -eq 0 ]] || fail "down: $(cat "$WORK/err")"
grep -q '"done":\["20240301000000_expand_quantity_decimal"\]' "$WORK/out" || fail "down 1: $(cat "$WORK/out")"
assert_eq "" "$(q "SELECT attname FROM pg_attribute WHERE attrelid = 'inventory_items'::regclass AND attname = 'quantity_decimal' AND NOT attisdropped")" \
    "quantity_decimal dropped"
# Down to a named migration: the other two, newest first (the index's down runs concurrently).
migrate down --to 20240115000000_add_user_preferences --json
[[ $rc -eq 0 ]] || fail "down --to: $(cat "$WORK/err")"
grep -q '"done":\["20240210000000_add_inventory_items_name_batch_number_index","20240201000000_expand_batch_number"\]' "$WORK/out" ||
    fail "down --to: $(cat "$WORK/out")"
diff -u "$WORK/before.sql" <(schema) >"$WORK/schema.diff" || fail "schema after down differs from before: $(head -30 "$WORK/schema.diff")"
assert_eq "$data_before" "$(fingerprint "$db" | grep -v _prisma_migrations)" "data in the old columns kept"
assert_eq "3|3" "$(q "SELECT count(*), count(rolled_back_at) FROM _prisma_migrations WHERE migration_name > '20240115000000_add_user_preferences'")" \
    "rows marked rolled back"
migrate status --json
[[ $rc -eq 4 ]] && grep -q '"pending":3' "$WORK/out" || fail "rolled-back migrations are not pending: $(cat "$WORK/out")"
pass "down (1 step, then --to NAME) restores the previous schema exactly and marks the rows rolled back"

# As Prisma's P3008: a migration that ever finished cannot be marked applied again.
migrate resolve --applied 20240301000000_expand_quantity_decimal
[[ $rc -eq 1 ]] && grep -q "applied before and later rolled back.*P3008" "$WORK/err" || fail "resolve --applied after down: $(cat "$WORK/err")"

# Deploy brings them back, to the same schema.
migrate deploy
[[ $rc -eq 0 ]] || fail "redeploy: $(cat "$WORK/err")"
diff -u "$WORK/after.sql" <(schema) >"$WORK/schema.diff" || fail "schema after redeploy differs: $(head -30 "$WORK/schema.diff")"
pass "deploy after down reapplies them, to the same schema"

# Destructive migrations have no down.sql: refused before any change.
for m in "$src"/2024*/; do cp -r "$m" "$dir/"; done
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy of all: $(cat "$WORK/err")"
schema >"$WORK/all.sql"
history_before=$(q "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM _prisma_migrations t")
migrate down --to 20240210000000_add_inventory_items_name_batch_number_index
[[ $rc -eq 4 ]] || fail "down without down.sql files: rc $rc: $(cat "$WORK/err")"
grep -q "cannot roll back: no down.sql for 20240415000000_remove_user_name, 20240401000000_contract_quantity_decimal, 20240315000000_contract_batch .*nothing was changed" "$WORK/err" ||
    fail "unclear refusal: $(cat "$WORK/err")"
diff -q "$WORK/all.sql" <(schema) >/dev/null || fail "a refused down changed the schema"
assert_eq "$history_before" "$(q "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM _prisma_migrations t")" "a refused down changed the history"
migrate down 99
[[ $rc -eq 1 ]] && grep -q "cannot roll back 99 migrations: only 8 are applied" "$WORK/err" || fail "down 99: $(cat "$WORK/err")"
migrate down --to 20990101000000_nope
[[ $rc -eq 1 ]] && grep -q "no applied migration has that name" "$WORK/err" || fail "down --to unknown: $(cat "$WORK/err")"
migrate down 1 --to 20240101000000_init
[[ $rc -eq 1 ]] && grep -q "N or --to NAME, not both" "$WORK/err" || fail "down N --to: $(cat "$WORK/err")"
pass "down refuses before any change when a down.sql is missing, and on nonsense"

# A failing down.sql. In one transaction: nothing undone, the row stays applied.
db2=$(new_db downfail)
url2=$(db_url "$db2")
dir2=$WORK/downfail
mkdir -p "$dir2/20240101000000_d1" "$dir2/20240102000000_d2"
cp "$src/migration_lock.toml" "$dir2/"
printf 'CREATE TABLE d1 (id int);\n' >"$dir2/20240101000000_d1/migration.sql"
printf 'DROP TABLE d1;\nDROP TABLE nope;\n' >"$dir2/20240101000000_d1/down.sql"
printf 'CREATE TABLE d2 (id int);\nCREATE INDEX d2_id ON d2 (id);\n' >"$dir2/20240102000000_d2/migration.sql"
printf 'DROP INDEX CONCURRENTLY d2_id;\nDROP TABLE nope;\nDROP TABLE d2;\n' >"$dir2/20240102000000_d2/down.sql"
q2() { psql_value "$db2" "$1"; }
run_deployctl migrate deploy --database "$url2" --migrations "$dir2"
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"
# Outside a transaction: the index is gone, the row is marked partly rolled back: exit 3, and it says so.
run_deployctl migrate down --database "$url2" --migrations "$dir2"
[[ $rc -eq 3 ]] || fail "a failing autocommit down.sql: rc $rc: $(cat "$WORK/err")"
grep -q "down.sql of 20240102000000_d2 failed: statements 1-1 of 3 committed, statement 2 failed: .*down.sql line 2.*stay undone and 20240102000000_d2 is recorded as failed (partly rolled back)" "$WORK/err" ||
    fail "unclear partial undo: $(cat "$WORK/err")"
assert_eq "|d2|" "$(q2 "SELECT to_regclass('d2_id')")|$(q2 "SELECT to_regclass('d2')")|$(q2 "SELECT rolled_back_at FROM _prisma_migrations WHERE migration_name = '20240102000000_d2'")" \
    "statement 1 undone, 3 not run, row applied"
q2 "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240102000000_d2'" | grep -q "statements 1-1 of 3 committed" ||
    fail "the row does not record how far the undo got"
# Status tells the truth: d2 is failed (partly rolled back), not applied, and nothing is up to
# date; deploy refuses until it is dealt with.
run_deployctl migrate status --database "$url2" --migrations "$dir2" --json
[[ $rc -eq 4 ]] || fail "status after a partial down: rc $rc: $(cat "$WORK/out")"
jq -e '.up_to_date == false and .counts.failed == 1 and .counts.applied == 1 and
       ([.migrations[] | select(.name == "20240102000000_d2")][0] | .status == "failed" and .partly_rolled_back == true)' "$WORK/out" >/dev/null ||
    fail "status after a partial down: $(cat "$WORK/out")"
run_deployctl migrate status --database "$url2" --migrations "$dir2"
grep -qE '^20240102000000_d2 +failed \(down\) ' "$WORK/out" || fail "status table: $(cat "$WORK/out")"
grep -q "migration 20240102000000_d2 is partly rolled back: its down.sql stopped partway (statements 1-1 of 3 committed" "$WORK/err" ||
    fail "status does not say how far the undo got: $(cat "$WORK/err")"
run_deployctl migrate deploy --database "$url2" --migrations "$dir2"
[[ $rc -eq 4 ]] && grep -q "migration 20240102000000_d2 is partly rolled back .*so deploy was refused and nothing was changed" "$WORK/err" ||
    fail "deploy after a partial down: rc $rc: $(cat "$WORK/err")"
pass "after a partly undone down, status reports the migration failed (partly rolled back), exit 4, and deploy refuses"

# Finish it by hand (here: fix the file), then down again; then the transactional one fails.
printf 'DROP INDEX CONCURRENTLY IF EXISTS d2_id;\nDROP TABLE d2;\n' >"$dir2/20240102000000_d2/down.sql"
run_deployctl migrate down --database "$url2" --migrations "$dir2"
[[ $rc -eq 0 ]] || fail "down after the fix: $(cat "$WORK/err")"
run_deployctl migrate status --database "$url2" --migrations "$dir2" --json
jq -e '.counts.applied == 1 and .counts.pending == 1 and .counts.failed == 0' "$WORK/out" >/dev/null ||
    fail "status after the down was finished: $(cat "$WORK/out")"
run_deployctl migrate down --database "$url2" --migrations "$dir2"
[[ $rc -eq 1 ]] || fail "a failing transactional down.sql: rc $rc: $(cat "$WORK/err")"
grep -q "down.sql of 20240101000000_d1 failed: .*down.sql line 2.*nothing of it was undone and 20240101000000_d1 stays applied" "$WORK/err" ||
    fail "unclear failure: $(cat "$WORK/err")"
assert_eq "d1|" "$(q2 "SELECT to_regclass('d1')")|$(q2 "SELECT rolled_back_at FROM _prisma_migrations WHERE migration_name = '20240101000000_d1'")" \
    "nothing undone, row applied"
pass "a failing down.sql: in a transaction nothing changes; outside one, exit 3 and how far it got"

# The down.sql of a migration edited after it was applied runs with a warning.
printf -- '-- edited later\n' >>"$dir2/20240101000000_d1/migration.sql"
printf 'DROP TABLE d1;\n' >"$dir2/20240101000000_d1/down.sql"
run_deployctl migrate down --database "$url2" --migrations "$dir2"
[[ $rc -eq 0 ]] || fail "down of an edited migration: $(cat "$WORK/err")"
grep -q "migration 20240101000000_d1 was edited after it was applied: its down.sql undoes the current migration.sql" "$WORK/err" ||
    fail "no warning for an edited migration: $(cat "$WORK/err")"
pass "down warns when the migration was edited after it was applied"

# A partly rolled back migration resolved either way: --applied once the undone part is redone
# by hand (applied again, as recorded), --rolled-back once the undo is finished by hand (pending).
db3=$(new_db resolve)
url3=$(db_url "$db3")
dir3=$WORK/resolve
mkdir -p "$dir3/20240101000000_t3"
cp "$src/migration_lock.toml" "$dir3/"
printf 'CREATE TABLE t3 (id int);\nCREATE INDEX t3_id ON t3 (id);\n' >"$dir3/20240101000000_t3/migration.sql"
printf 'DROP INDEX CONCURRENTLY t3_id;\nDROP TABLE nope;\nDROP TABLE t3;\n' >"$dir3/20240101000000_t3/down.sql"
m3() { run_deployctl migrate "$@" --database "$url3" --migrations "$dir3"; }
m3 deploy
[[ $rc -eq 0 ]] || fail "deploy t3: $(cat "$WORK/err")"
m3 down
[[ $rc -eq 3 ]] || fail "partial down of t3: rc $rc: $(cat "$WORK/err")"
psql_admin "$db3" -c "CREATE INDEX t3_id ON t3 (id)" >/dev/null
m3 resolve --applied 20240101000000_t3
[[ $rc -eq 0 ]] || fail "resolve --applied of a partly rolled back migration: rc $rc: $(cat "$WORK/err")"
m3 status --json
[[ $rc -eq 0 ]] && jq -e '.up_to_date and .counts.applied == 1' "$WORK/out" >/dev/null || fail "after resolve --applied: $(cat "$WORK/out")"
assert_eq 1 "$(psql_value "$db3" "SELECT count(*) FROM _prisma_migrations")" "resolve --applied of a partly undone row adds no row"
m3 down
[[ $rc -eq 3 ]] || fail "second partial down of t3: rc $rc: $(cat "$WORK/err")"
psql_admin "$db3" -c "DROP TABLE t3" >/dev/null
m3 resolve --rolled-back 20240101000000_t3
[[ $rc -eq 0 ]] || fail "resolve --rolled-back of a partly rolled back migration: rc $rc: $(cat "$WORK/err")"
m3 status --json
[[ $rc -eq 4 ]] && jq -e '.counts.pending == 1 and .counts.failed == 0' "$WORK/out" >/dev/null || fail "after resolve --rolled-back: $(cat "$WORK/out")"
m3 deploy
[[ $rc -eq 0 ]] || fail "deploy after resolve --rolled-back: $(cat "$WORK/err")"
pass "a partly rolled back migration resolves --applied (redone by hand) or --rolled-back (undo finished by hand)"
