#!/usr/bin/env bash
# The seed's five scenarios, deployed one migration at a time on the sample inventory app with
# data in it, as a team ships them: after each, the schema and the data are what the scenario
# promises (expand/contract keeps both columns in step, the concurrent index is valid, nothing
# is lost). _prisma_migrations is Prisma's table column for column and row for row, and the
# sample seed loads into the final schema.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
src=$DC_SOURCE_DIR/examples/inventory-app/prisma/migrations
dir=$WORK/migrations
mkdir -p "$dir"
cp "$src/migration_lock.toml" "$dir/"

# Ships the next migration (copies it into the app's directory) and deploys it.
ship() { # name
    cp -r "$src/$1" "$dir/"
    run_deployctl migrate deploy --database "$url" --migrations "$dir" --json
    [[ $rc -eq 0 ]] || fail "deploy of $1 failed (rc $rc): $(cat "$WORK/err")"
    grep -q "\"done\":\[\"$1\"\]" "$WORK/out" || fail "deploy did not report $1 applied: $(cat "$WORK/out")"
}
q() { psql_value "$db" "$1"; }
column_type() { # table column
    q "SELECT format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END
       FROM pg_attribute WHERE attrelid = '$1'::regclass AND attname = '$2' AND NOT attisdropped"
}

ship 20240101000000_init
ship 20240115000000_add_user_preferences
assert_eq "jsonb" "$(column_type users preferences)" "scenario 1: nullable preferences column"
# The application's data, written by the version before the scenarios.
psql_admin "$db" <<'SQL'
INSERT INTO users (id, email, name) SELECT 'u' || g, 'u' || g || '@x.test', 'User ' || g FROM generate_series(1, 40) g;
INSERT INTO inventory_items (item_name, batch, quantity, created_by)
SELECT 'item ' || (g % 25), 'B' || (g % 300), g % 97, 'u' || (1 + g % 40) FROM generate_series(1, 3000) g;
INSERT INTO audit_logs (user_id, action, entity) SELECT 'u1', 'create', 'item' FROM generate_series(1, 500);
SQL
batches=$(q "SELECT md5(string_agg(id || ':' || batch, ',' ORDER BY id)) FROM inventory_items")
quantities=$(q "SELECT md5(string_agg(id || ':' || quantity, ',' ORDER BY id)) FROM inventory_items")
pass "scenario 1: a nullable column added"

# Scenario 2, expand: both columns, backfilled, kept in step for the old and the new version.
ship 20240201000000_expand_batch_number
assert_eq "text" "$(column_type inventory_items batch_number)" "batch_number added, nullable"
assert_eq 0 "$(q "SELECT count(*) FROM inventory_items WHERE batch_number IS DISTINCT FROM batch")" "backfill"
psql_admin "$db" <<'SQL'
INSERT INTO inventory_items (item_name, batch, quantity, created_by) VALUES ('old app', 'OLD-1', 1, 'u1');
INSERT INTO inventory_items (item_name, batch_number, quantity, created_by) VALUES ('new app', 'NEW-1', 1, 'u1');
UPDATE inventory_items SET batch = 'OLD-2' WHERE item_name = 'old app';
SQL
assert_eq "OLD-2|OLD-2" "$(q "SELECT batch || '|' || batch_number FROM inventory_items WHERE item_name = 'old app'")" "old version's writes reach batch_number"
assert_eq "NEW-1|NEW-1" "$(q "SELECT batch || '|' || batch_number FROM inventory_items WHERE item_name = 'new app'")" "new version's writes reach batch"
psql_admin "$db" -c "DELETE FROM inventory_items WHERE item_name IN ('old app', 'new app')"
pass "scenario 2 expand: batch_number added, backfilled and kept in step"

# Scenario 3: the index, built concurrently outside a transaction, valid.
ship 20240210000000_add_inventory_items_name_batch_number_index
grep -q "runs statement by statement outside a transaction: line 3 is CREATE INDEX CONCURRENTLY" "$WORK/err" ||
    fail "the concurrent index was not run outside a transaction: $(cat "$WORK/err")"
assert_eq "true|(item_name, batch_number)" \
    "$(q "SELECT i.indisvalid || '|' || substring(pg_get_indexdef(i.indexrelid) FROM '\(.*\)') FROM pg_index i
          WHERE i.indexrelid = 'inventory_items_item_name_batch_number_idx'::regclass")" "index valid"
pass "scenario 3: index built concurrently"

# Scenario 4, expand: the DECIMAL column beside the INTEGER one.
ship 20240301000000_expand_quantity_decimal
assert_eq "numeric(65,30)" "$(column_type inventory_items quantity_decimal)" "quantity_decimal added"
assert_eq 0 "$(q "SELECT count(*) FROM inventory_items WHERE quantity_decimal IS DISTINCT FROM quantity")" "quantity backfill"
pass "scenario 4 expand: quantity_decimal added and backfilled"

# Contract steps: old columns go, values stay.
ship 20240315000000_contract_batch
assert_eq "" "$(column_type inventory_items batch)" "batch dropped"
assert_eq "text not null" "$(column_type inventory_items batch_number)" "batch_number required"
assert_eq "$batches" "$(q "SELECT md5(string_agg(id || ':' || batch_number, ',' ORDER BY id)) FROM inventory_items")" \
    "every batch value kept under batch_number"
pass "scenario 2 contract: batch renamed to batch_number with every value kept"

ship 20240401000000_contract_quantity_decimal
assert_eq "numeric(65,30) not null" "$(column_type inventory_items quantity)" "quantity is DECIMAL now"
assert_eq "" "$(column_type inventory_items quantity_decimal)" "quantity_decimal renamed away"
assert_eq "$quantities" "$(q "SELECT md5(string_agg(id || ':' || quantity::integer, ',' ORDER BY id)) FROM inventory_items")" \
    "every quantity kept"
pass "scenario 4 contract: quantity is DECIMAL with every value kept"

ship 20240415000000_remove_user_name
assert_eq "" "$(column_type users name)" "users.name removed"
assert_eq 40 "$(q "SELECT count(*) FROM users")" "users kept"
assert_eq 3000 "$(q "SELECT count(*) FROM inventory_items")" "items kept"
pass "scenario 5: a column removed"

# The directory in the repository is exactly what was shipped.
diff -r "$src" "$dir" >/dev/null || fail "the test shipped something other than examples/inventory-app"

# _prisma_migrations as Prisma's schema engine creates it: compare with a table made from
# Prisma's own DDL, copied here by hand from prisma-engines (PostgresFlavour::
# create_migrations_table, sql-schema-connector/src/flavour/postgres.rs), not from history.c:
# an edit of deployctl's copy makes this fail.
psql_admin "$db" <<'SQL'
CREATE SCHEMA prisma_reference;
CREATE TABLE prisma_reference._prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);
SQL
columns() { # schema
    q "SELECT string_agg(concat_ws(' ', ordinal_position, column_name, data_type, character_maximum_length,
                                   is_nullable, column_default), E'\n' ORDER BY ordinal_position)
       FROM information_schema.columns WHERE table_schema = '$1' AND table_name = '_prisma_migrations'"
}
constraints() { # schema
    q "SELECT string_agg(contype || ' ' || pg_get_constraintdef(c.oid), ', ' ORDER BY contype)
       FROM pg_constraint c WHERE conrelid = '$1._prisma_migrations'::regclass"
}
assert_eq "$(columns prisma_reference)" "$(columns public)" "history columns as Prisma defines them"
assert_eq "$(constraints prisma_reference)" "$(constraints public)" "history constraints as Prisma's"
[[ $(columns public | wc -l) -eq 8 ]] || fail "history table has $(columns public | wc -l) columns"
pass "_prisma_migrations is Prisma's table, column for column"

# One row per migration, each as Prisma writes it.
for m in "$src"/*/; do
    name=$(basename "$m")
    sum=$(sha256sum <"$m/migration.sql" | cut -d' ' -f1)
    row=$(q "SELECT checksum, finished_at IS NOT NULL AND finished_at >= started_at, logs IS NULL,
                    rolled_back_at IS NULL, applied_steps_count,
                    id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
             FROM _prisma_migrations WHERE migration_name = '$name'")
    assert_eq "$sum|t|t|t|1|t" "$row" "history row of $name"
done
assert_eq 8 "$(q "SELECT count(DISTINCT id) FROM _prisma_migrations")" "eight rows, distinct ids"
pass "history rows: sha256 checksums, UUID v4 ids, finished, one step each"

# Nothing left to do; and the sample seed loads into a fresh database with the final schema.
run_deployctl migrate deploy --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] && grep -q "deploy: nothing to do" "$WORK/err" || fail "second deploy: $(cat "$WORK/err")"
fresh=$(new_db fresh)
run_deployctl migrate deploy --database "$(db_url "$fresh")" --migrations "$src"
[[ $rc -eq 0 ]] || fail "deploy of the whole history failed: $(cat "$WORK/err")"
psql_admin "$fresh" -f "$DC_SOURCE_DIR/examples/inventory-app/seed.sql" >/dev/null ||
    fail "examples/inventory-app/seed.sql does not load into the final schema"
assert_eq 5000 "$(psql_value "$fresh" "SELECT count(*) FROM inventory_items")" "seeded items"
pass "the whole history deploys in one run and the sample seed fits the final schema"
