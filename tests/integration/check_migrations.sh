#!/usr/bin/env bash
# `deployctl check`: the migrations check (pending listed, a failed row fails, an edited one
# warns, line endings alone are no edit, what migrate's reader refuses fails), an INVALID index
# left by a failed CREATE INDEX CONCURRENTLY, and the privileges a non-superuser role lacks for
# the pending migrations.
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
store=$WORK/store
mig=$WORK/migrations

add_migration() { # name sql
    mkdir -p "$mig/$1"
    printf '%s\n' "$2" >"$mig/$1/migration.sql"
}
record() { # name finished(true|false) [logs]
    local sum
    sum=$(sha256sum "$mig/$1/migration.sql" | cut -c1-64)
    psql_admin "$db" -c "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, applied_steps_count)
        VALUES (gen_random_uuid(), '$sum', CASE WHEN $2 THEN now() END, '$1', NULLIF('${3:-}', ''), CASE WHEN $2 THEN 1 ELSE 0 END)"
}
check() { run_deployctl check --store "$store" --migrations "$mig" --json "$@"; }
result() { jq -r --arg n "$1" '.checks[] | select(.name == $n) | "\(.status)|\(.detail)|\(.items | join(";"))"' "$WORK/out"; }

psql_admin "$db" <<'SQL'
CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
  finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
  rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  applied_steps_count integer NOT NULL DEFAULT 0);
SQL
add_migration 20260101000000_init "CREATE TABLE inventory_items (id serial PRIMARY KEY, batch text);"
psql_admin "$db" -f "$mig/20260101000000_init/migration.sql"
record 20260101000000_init true

# Up to date.
check --database "$url"
[[ $(result migrations) == "ok|1 in $mig: 0 pending, 0 failed, 0 edited|" ]] || fail "up to date: $(result migrations)"

# A pending migration is listed (ok: it is what the deploy will apply).
add_migration 20260102000000_add_note "ALTER TABLE inventory_items ADD COLUMN note text;"
check --database "$url"
[[ $(result migrations) == "ok|2 in $mig: 1 pending, 0 failed, 0 edited|pending: 20260102000000_add_note" ]] ||
    fail "pending: $(result migrations)"
[[ $rc -eq 0 ]] || fail "pending: exit $rc"
pass "a pending migration is listed by name, exit 0"

# A failed one (row inserted, never finished, as Prisma leaves it): fails, named with its log.
record 20260102000000_add_note false "ERROR: column \"note\" already exists"
check --database "$url"
assert_eq 4 "$rc" "failed migration: exit"
result migrations | grep -q '^failed|2 in .*: 0 pending, 1 failed, 0 edited|failed: 20260102000000_add_note (ERROR: column "note" already exists); resolve it' ||
    fail "failed: $(result migrations)"
pass "a failed migration row fails the check (exit 4), named with its log"

# Rolled back (prisma migrate resolve --rolled-back): pending again, no longer failed.
psql_admin "$db" -c "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '20260102000000_add_note'"
check --database "$url"
[[ $(result migrations) == "ok|2 in $mig: 1 pending, 0 failed, 0 edited|pending: 20260102000000_add_note" ]] ||
    fail "rolled back: $(result migrations)"

# Line endings alone (a Windows checkout of a migration applied from Linux) are no edit.
cp "$mig/20260101000000_init/migration.sql" "$WORK/init.sql"
sed -i 's/$/\r/' "$mig/20260101000000_init/migration.sql"
check --database "$url"
[[ $(result migrations) == "ok|2 in $mig: 1 pending, 0 failed, 0 edited|pending: 20260102000000_add_note" ]] ||
    fail "CRLF only: $(result migrations)"
cp "$WORK/init.sql" "$mig/20260101000000_init/migration.sql"
pass "a migration.sql whose line endings alone changed is not edited"

# Edited after it was applied: a warning.
printf -- '-- reformatted\n' >>"$mig/20260101000000_init/migration.sql"
check --database "$url"
result migrations | grep -q '^warning|.*1 edited|edited after it was applied: 20260101000000_init' ||
    fail "edited: $(result migrations)"
pass "resolve --rolled-back makes it pending again; an edited applied migration warns"

# What migrate's reader refuses is a failed check naming it: another provider in
# migration_lock.toml, a migration directory without migration.sql.
printf 'provider = "mysql"\n' >"$mig/migration_lock.toml"
check --database "$url"
assert_eq 4 "$rc" "another provider: exit"
result migrations | grep -q "^failed|$mig/migration_lock.toml says provider \"mysql\"" ||
    fail "another provider: $(result migrations)"
printf 'provider = "postgresql"\n' >"$mig/migration_lock.toml"
mkdir "$mig/20260103000000_empty"
check --database "$url"
result migrations | grep -q "^failed|migration directory $mig/20260103000000_empty has no migration.sql" ||
    fail "no migration.sql: $(result migrations)"
rmdir "$mig/20260103000000_empty"
rm "$mig/migration_lock.toml"
pass "another provider or a directory without migration.sql fails the check, named"

# No migrations directory: a warning naming the option.
run_deployctl check --database "$url" --store "$store" --migrations "$WORK/nowhere" --json
result migrations | grep -q "^warning|no migrations directory at $WORK/nowhere: give it with --migrations DIR" ||
    fail "no directory: $(result migrations)"
pass "a missing migrations directory warns"

# An INVALID index from a failed concurrent build is reported by name.
psql_admin "$db" -c "INSERT INTO inventory_items (batch) VALUES ('b1'), ('b1')"
psql_admin "$db" -c "CREATE UNIQUE INDEX CONCURRENTLY inventory_items_batch_key ON inventory_items (batch)" 2>/dev/null &&
    fail "the unique build should have failed"
check --database "$url"
result invalid-indexes | grep -q '^warning|1 INVALID index, left by a failed CREATE INDEX CONCURRENTLY.*|public.inventory_items_batch_key on inventory_items$' ||
    fail "invalid index: $(result invalid-indexes)"
psql_admin "$db" -c "DROP INDEX inventory_items_batch_key"
check --database "$url"
[[ $(result invalid-indexes) == "ok|none|" ]] || fail "after the drop: $(result invalid-indexes)"
pass "an INVALID index is reported by name, and no longer once dropped"

# A non-superuser role: the tables belong to postgres. With a migration pending that alters one,
# the privileges check fails and names that table and its owner (the detail is in
# check_privileges.sh).
role="dc_${TEST_NAME}_app"
password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
psql_admin postgres -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN PASSWORD '$password'"
on_exit "psql_admin '$db' -c 'DROP OWNED BY $role' >/dev/null 2>&1; psql_admin postgres -c 'DROP ROLE IF EXISTS $role'"
psql_admin "$db" -c "GRANT SELECT ON _prisma_migrations TO $role"
app_url="postgresql://$role:$password@127.0.0.1:$DC_PG_PORT/$db"
check --database "$app_url"
assert_eq 4 "$rc" "lacking privileges: exit"
r=$(result privileges)
[[ $r == "failed|$role lacks 1 privilege the 1 pending migration needs|20260102000000_add_note: ALTER TABLE on public.inventory_items needs ownership of public.inventory_items (owned by postgres)" ]] ||
    fail "privileges: $r"
! grep -qF "$password" "$WORK/out" "$WORK/err" || fail "the role's password was printed"
pass "a non-superuser lacking ownership of the table a pending migration alters fails the privileges check"

# Granted what it needs: ok.
psql_admin "$db" -c "GRANT CREATE ON SCHEMA public TO $role" \
    -c "ALTER TABLE inventory_items OWNER TO $role" -c "ALTER TABLE _prisma_migrations OWNER TO $role"
check --database "$app_url"
result privileges | grep -q "^ok|$role has every privilege the 1 pending migration needs (1 checked)|$" || fail "granted: $(result privileges)"
pass "with ownership granted the privileges check passes"

# Connection limits bind non-superusers: the role's CONNECTION LIMIT leaves no slot (the check's
# own connection takes the only one), or fewer than a release's backup with --jobs 4 opens.
psql_admin postgres -c "ALTER ROLE $role CONNECTION LIMIT 1"
check --database "$app_url"
result connections | grep -q "^failed|1 of 1 connections in use under the role's CONNECTION LIMIT, 0 free.*none left" ||
    fail "role limit 1: $(result connections)"
psql_admin postgres -c "ALTER ROLE $role CONNECTION LIMIT -1" -c "ALTER DATABASE $db CONNECTION LIMIT 3"
check --database "$app_url" --jobs 4
result connections | grep -q "^warning|1 of 3 connections in use under the database's CONNECTION LIMIT, 2 free (a release with these --jobs opens 6): fewer" ||
    fail "database limit 3: $(result connections)"
[[ $rc -eq 0 ]] || fail "a warning must not fail the check (rc $rc)"
pass "the role's and the database's CONNECTION LIMIT are read: none left fails, too few for --jobs warns"
