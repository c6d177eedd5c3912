#!/usr/bin/env bash
# `deployctl check`'s privileges check is exact: a real non-superuser role that owns only some
# of the tables, and pending migrations touching both kinds. The check fails naming exactly the
# relations (and privileges) the role lacks, and nothing for the tables it owns, for a table an
# earlier pending migration creates, or for an applied migration; unqualified names resolve
# through ?schema= as the runner sets search_path; it passes once the role owns them.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

printf 'provider = "postgresql"\n' >"$mig/migration_lock.toml"
app="dc_${TEST_NAME}_app"
owner="dc_${TEST_NAME}_owner"
new_role "$app" login
password=$role_password
new_role "$owner"
# The role owns customers and the history; orders and products belong to another role, which
# lets it insert into audit_logs only; schema reporting is the other role's too.
psql_admin "$db" -c "CREATE SCHEMA shop" >/dev/null
create_history public
create_history shop
psql_admin "$db" >/dev/null <<SQL
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, created_at timestamptz);
CREATE TABLE products (id int PRIMARY KEY, name text);
CREATE TABLE audit_logs (id serial PRIMARY KEY, msg text);
CREATE SCHEMA reporting;
CREATE TABLE shop.orders (id int PRIMARY KEY, created_at timestamptz);
ALTER TABLE _prisma_migrations OWNER TO $app;
ALTER TABLE customers OWNER TO $app;
ALTER TABLE shop.orders OWNER TO $app;
ALTER TABLE shop._prisma_migrations OWNER TO $app;
ALTER TABLE orders OWNER TO $owner;
ALTER TABLE products OWNER TO $owner;
ALTER TABLE audit_logs OWNER TO $owner;
ALTER SCHEMA reporting OWNER TO $owner;
GRANT USAGE ON SCHEMA shop, reporting TO $app;
GRANT CREATE ON SCHEMA public, shop TO $app;
GRANT INSERT ON audit_logs TO $app;
GRANT USAGE ON SEQUENCE audit_logs_id_seq TO $app;
SQL

add() { # name sql
    mkdir -p "$mig/$1"
    printf '%s\n' "$2" >"$mig/$1/migration.sql"
}
applied() { # name schema: recorded as applied (its needs are not the pending ones')
    local sum
    sum=$(sha256sum "$mig/$1/migration.sql" | cut -c1-64)
    psql_admin "$db" -c "INSERT INTO $2._prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
        VALUES (gen_random_uuid(), '$sum', now(), '$1', 1)" >/dev/null
}
check_url="postgresql://$app:$password@127.0.0.1:$DC_PG_PORT/$db"

# Applied long ago, on a table the role does not own: not pending, so not its business.
add 20240101000000_old "ALTER TABLE products ADD COLUMN sku text;"
psql_admin "$db" -f "$mig/20240101000000_old/migration.sql" >/dev/null
applied 20240101000000_old public
applied 20240101000000_old shop
# Pending: a new table (the role will own it), then statements on it, on the role's own table,
# on the other role's tables, and a privileged data change.
add 20240201000000_create_items "CREATE TABLE items (id int PRIMARY KEY, customer_id int REFERENCES customers (id), product_id int);
CREATE INDEX items_customer_idx ON items (customer_id);"
add 20240202000000_own_tables "ALTER TABLE items ADD COLUMN note text;
COMMENT ON COLUMN items.note IS 'free text';
ALTER TABLE customers ADD COLUMN email text;
ALTER INDEX items_customer_idx RENAME TO items_customer_id_idx;
INSERT INTO audit_logs (msg) VALUES ('items added');"
add 20240301000000_add_index "SET lock_timeout = '5s';
CREATE INDEX orders_created_idx ON orders (created_at);"
add 20240302000000_product_fk "ALTER TABLE items ADD CONSTRAINT items_product_fk FOREIGN KEY (product_id) REFERENCES products (id);"
add 20240303000000_rename "ALTER TABLE public.orders RENAME COLUMN created_at TO placed_at;
UPDATE products SET name = 'unnamed' WHERE name IS NULL;"
add 20240304000000_report "CREATE TABLE reporting.daily (day date PRIMARY KEY);"

check
assert_eq 4 "$rc" "lacking privileges: exit"
expected="20240301000000_add_index: CREATE INDEX on public.orders needs ownership of public.orders (owned by $owner)
20240302000000_product_fk: FOREIGN KEY to public.products needs the REFERENCES privilege on public.products (GRANT REFERENCES ON public.products TO $app)
20240303000000_rename: RENAME COLUMN on public.orders needs ownership of public.orders (owned by $owner)
20240303000000_rename: UPDATE on public.products needs the UPDATE privilege on public.products (GRANT UPDATE ON public.products TO $app)
20240303000000_rename: UPDATE on public.products needs the SELECT privilege on public.products (GRANT SELECT ON public.products TO $app)
20240304000000_report: CREATE TABLE daily needs CREATE on schema reporting (owned by $owner; GRANT CREATE ON SCHEMA reporting TO $app)"
got=$(items privileges)
[[ $got == "$expected" ]] || fail "privileges items:
--- expected
$expected
--- got
$got"
[[ $(result privileges) == "failed|$app lacks 6 privileges the 6 pending migrations need|"* ]] || fail "privileges: $(result privileges)"
! grep -qF "$password" "$WORK/out" "$WORK/err" || fail "the role's password was printed"
pass "the privileges check names exactly the relations the role lacks ownership or privileges of, and nothing for items (created earlier in the pending set), customers (owned) or audit_logs (granted)"

# Owned (and granted) what they need: ok.
psql_admin "$db" -c "ALTER TABLE orders OWNER TO $app" -c "ALTER TABLE products OWNER TO $app" \
    -c "GRANT CREATE ON SCHEMA reporting TO $app" >/dev/null
check
[[ $(result privileges) == "ok|$app has every privilege the 6 pending migrations need (10 checked)|" ]] ||
    fail "granted: $(result privileges) $(items privileges)"
pass "once the role owns them the privileges check passes"

# INSERT into a table whose serial column's default calls nextval: USAGE on its sequence too
# (a warning: the INSERT may give the column's value itself).
psql_admin "$db" -c "REVOKE USAGE ON SEQUENCE audit_logs_id_seq FROM $app" >/dev/null
check
[[ $(result privileges) == "warning|$app has every privilege the 6 pending migrations need (10 checked)|20240202000000_own_tables: INSERT on public.audit_logs needs USAGE on the sequence audit_logs_id_seq when it leaves the serial column to its default (GRANT USAGE ON SEQUENCE audit_logs_id_seq TO $app)" ]] ||
    fail "sequence: $(result privileges)"
psql_admin "$db" -c "GRANT USAGE ON SEQUENCE audit_logs_id_seq TO $app" >/dev/null
pass "an INSERT relying on a serial default warns when the role may not use its sequence"

# Unqualified names resolve as the runner resolves them: with ?schema=shop, orders is
# shop.orders (the role's), not public.orders (the other role's).
psql_admin "$db" -c "ALTER TABLE orders OWNER TO $owner" >/dev/null
rm -r "$mig"/202402* "$mig"/20240302* "$mig"/20240303* "$mig"/20240304*
check
[[ $(items privileges) == "20240301000000_add_index: CREATE INDEX on public.orders needs ownership of public.orders (owned by $owner)" ]] ||
    fail "public.orders: $(items privileges)"
check_url="$check_url?schema=shop" check
[[ $(result privileges) == "ok|$app has every privilege the 1 pending migration needs (1 checked)|" ]] ||
    fail "?schema=shop: $(result privileges) $(items privileges) / $(result migrations) $(items migrations)"
pass "unqualified names resolve through ?schema= (shop.orders, owned) and the search_path (public.orders, not owned)"

# A relation that exists nowhere warns (the migration would fail); IF EXISTS does not.
add 20240305000000_missing "DROP TABLE IF EXISTS gone; ALTER TABLE nowhere ADD COLUMN x int;"
psql_admin "$db" -c "ALTER TABLE orders OWNER TO $app" >/dev/null
check
[[ $(result privileges) == "warning|"* && $(items privileges) == "20240305000000_missing: ALTER TABLE on nowhere: no such relation on the search_path; the migration fails unless something creates it first" ]] ||
    fail "missing relation: $(result privileges) $(items privileges)"
pass "a relation that does not exist warns, one dropped IF EXISTS does not"

# CREATE EXTENSION: an untrusted extension needs a superuser; a trusted one CREATE on the
# database; one already installed needs nothing.
rm -r "$mig"/20240305*
[[ $(psql_value "$db" "SELECT count(*) FROM pg_available_extension_versions WHERE (name, trusted) IN (('pg_buffercache', false), ('pgcrypto', true))") -ge 2 ]] ||
    skip "the contrib extensions pg_buffercache and pgcrypto are not installed"
add 20240306000000_extensions "CREATE EXTENSION IF NOT EXISTS pg_buffercache; CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE SCHEMA app_private;"
check
expected="20240306000000_extensions: CREATE EXTENSION pg_buffercache needs a superuser (pg_buffercache is not a trusted extension): have a superuser create it before the deploy
20240306000000_extensions: CREATE EXTENSION pgcrypto (a trusted extension) needs CREATE on the database (GRANT CREATE ON DATABASE ... TO $app)
20240306000000_extensions: CREATE SCHEMA app_private needs CREATE on the database (GRANT CREATE ON DATABASE ... TO $app)"
[[ $(items privileges) == "$expected" ]] || fail "extensions: $(items privileges)"
psql_admin "$db" -c "CREATE EXTENSION pg_buffercache" -c "GRANT CREATE ON DATABASE $db TO $app" >/dev/null
check
[[ $(result privileges) == "ok|"* ]] || fail "extensions granted: $(result privileges) $(items privileges)"
pass "CREATE EXTENSION: untrusted needs a superuser, trusted needs CREATE on the database, installed needs nothing"
