#!/usr/bin/env bash
# A database that holds a schema but no _prisma_migrations (never managed by Prisma, or the
# wrong ?schema=): deploy refuses as Prisma's P3005 does (exit 4, nothing written) and explains
# baselining; resolve --applied creates the table and records the baseline; deploy then runs the
# rest. An empty schema (or one holding only the history table) deploys from scratch.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"

add 20240101000000_init 'CREATE TABLE "User" ("id" int PRIMARY KEY, "email" text);'
add 20240102000000_post 'CREATE TABLE "Post" ("id" int PRIMARY KEY);'
# The schema exists already, built by hand (or by an earlier tool).
psql_admin "$db" -c 'CREATE TABLE "User" ("id" int PRIMARY KEY, "email" text); INSERT INTO "User" VALUES (1, $$a$$)'
before=$(schema_dump "$db")

migrate deploy
assert_eq 4 "$rc" "deploy into a non-empty schema without history: $(cat "$WORK/err")"
grep -q 'schema public is not empty (table "User") but has no _prisma_migrations table.*nothing was written (as Prisma.s P3005).*deployctl migrate resolve --applied NAME' "$WORK/err" ||
    fail "the refusal does not explain baselining: $(cat "$WORK/err")"
assert_eq "" "$(q "SELECT to_regclass('_prisma_migrations')")" "no history table created"
[[ $(schema_dump "$db") == "$before" ]] || fail "the schema changed"
pass "deploy into a non-empty schema without _prisma_migrations is refused (P3005), nothing written"

# resolve --rolled-back does not create the table either (Prisma creates it only to baseline).
migrate resolve --rolled-back 20240101000000_init
[[ $rc -ne 0 ]] || fail "resolve --rolled-back of a migration never run succeeded"
assert_eq "" "$(q "SELECT to_regclass('_prisma_migrations')")" "resolve --rolled-back created no table"

# Baselining: the first migration is marked applied, deploy runs the rest.
migrate resolve --applied 20240101000000_init
[[ $rc -eq 0 ]] || fail "resolve --applied: $(cat "$WORK/err")"
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy after baselining: $(cat "$WORK/err")"
assert_eq "20240101000000_init,20240102000000_post" "$(q "SELECT string_agg(migration_name, ',' ORDER BY migration_name) FROM _prisma_migrations WHERE finished_at IS NOT NULL")" \
    "baseline recorded, the rest applied"
assert_eq 1 "$(q 'SELECT count(*) FROM "User"')" "existing data kept"
pass "resolve --applied baselines the schema, then deploy applies the rest"

# An empty schema deploys from scratch; an enum alone makes a schema non-empty.
db2=$(new_db empty)
run_deployctl migrate deploy --database "$(db_url "$db2")" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "deploy into an empty database: $(cat "$WORK/err")"
db3=$(new_db enum)
psql_admin "$db3" -c "CREATE TYPE mood AS ENUM ('ok')"
run_deployctl migrate deploy --database "$(db_url "$db3")" --migrations "$dir"
assert_eq 4 "$rc" "deploy into a schema with an enum: $(cat "$WORK/err")"
pass "an empty database deploys; one holding only an enum is not empty"
