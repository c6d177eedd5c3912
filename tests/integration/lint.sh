#!/usr/bin/env bash
# `deployctl lint` through the real binary, on a Prisma migrations directory made here: the text
# report and its exit code, --json read with jq, allow comments, a clean directory, a syntax
# error, and where the directory comes from (argument, flag, environment, config, default).
# fixture: none -- lint reads files only, so this test runs without the PostgreSQL cluster.
set -euo pipefail

: "${DC_BUILD_DIR:?run the tests through ctest (DC_BUILD_DIR unset)}"
DEPLOYCTL=${DEPLOYCTL:-$DC_BUILD_DIR/deployctl}
TEST_NAME=${TEST_NAME:-lint}
WORK=$(mktemp -d "/tmp/deployctl-test-$TEST_NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export DEPLOYCTL_STATE_DIR=$WORK/state
unset DATABASE_URL DATABASE_URL_DIRECT DEPLOYCTL_STORE DEPLOYCTL_CONFIG DEPLOYCTL_MIGRATIONS || true

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    exit 1
}
pass() { echo "ok - $*"; }
run_deployctl() {
    set +e
    "$DEPLOYCTL" "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    set -e
}
migration() { # dir name: writes stdin to dir/name/migration.sql
    mkdir -p "$1/$2"
    cat >"$1/$2/migration.sql"
}

# The sample app's first migration as `prisma migrate dev` writes it: quoted identifiers,
# "-- CreateTable" comments, a unique index and a foreign key between the new tables.
prisma_init() { # dir
    migration "$1" 20240101000000_init <<'SQL'
-- CreateTable
CREATE TABLE "users" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "inventory_items" (
    "id" SERIAL NOT NULL,
    "item_name" TEXT NOT NULL,
    "batch" TEXT NOT NULL,
    "quantity" INTEGER NOT NULL,
    "expiry_date" DATE,
    "created_by" TEXT NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "inventory_items_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_logs" (
    "id" BIGSERIAL NOT NULL,
    "user_id" TEXT,
    "action" TEXT NOT NULL,
    "entity" TEXT NOT NULL,
    "details" JSONB,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_logs_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- AddForeignKey
ALTER TABLE "inventory_items" ADD CONSTRAINT "inventory_items_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
SQL
    echo 'provider = "postgresql"' >"$1/migration_lock.toml"
}

# ---- a Prisma-generated migration alone: nothing is an error ----
prisma_init "$WORK/init"
run_deployctl lint "$WORK/init"
[[ $rc -eq 0 ]] || fail "the Prisma init migration failed lint (rc $rc): $(cat "$WORK/out" "$WORK/err")"
grep -Eq '^20240101000000_init +additive +no findings$' "$WORK/out" || fail "init summary: $(cat "$WORK/out")"
run_deployctl lint "$WORK/init" --json
[[ $rc -eq 0 && $(jq 'length' "$WORK/out") == 0 ]] || fail "init --json: $(cat "$WORK/out")"
pass "a Prisma-generated migration creating tables lints clean"

# ---- a mixed history ----
M=$WORK/migrations
prisma_init "$M"
migration "$M" 20240115000000_add_user_preferences <<'SQL'
-- AlterTable
ALTER TABLE "users" ADD COLUMN "preferences" JSONB;
SQL
echo 'ALTER TABLE "users" DROP COLUMN "preferences";' >"$M/20240115000000_add_user_preferences/down.sql"
migration "$M" 20240201000000_rename_batch <<'SQL'
SET lock_timeout = '5s';

-- The old name goes at once: the running version still reads "batch".
ALTER TABLE "inventory_items" RENAME COLUMN "batch" TO "batch_number";
SQL
migration "$M" 20240301000000_add_index <<'SQL'
SET lock_timeout = '5s';
-- deployctl:allow index-not-concurrent -- the table holds 40 rows
CREATE INDEX "inventory_items_item_name_idx" ON "inventory_items"("item_name");
SQL
migration "$M" 20240401000000_quantity_decimal <<'SQL'
SET lock_timeout = '5s';
/* Prisma: quantity Int -> Decimal */
-- AlterTable
ALTER TABLE "inventory_items"
    ALTER COLUMN "quantity"
    SET DATA TYPE DECIMAL(65,30);
UPDATE "inventory_items" SET "quantity" = 0;
SQL
mkdir -p "$M/not_a_migration"

run_deployctl lint "$M"
[[ $rc -eq 1 ]] || fail "errors must exit 1, got $rc: $(cat "$WORK/out")"
out=$(cat "$WORK/out")
grep -Fxq '20240201000000_rename_batch/migration.sql:4: error: [rename-column] renames column "batch" of table "inventory_items" to "batch_number"' <<<"$out" ||
    fail "rename finding: $out"
grep -Fxq '    ALTER TABLE "inventory_items" RENAME COLUMN "batch" TO "batch_number"' <<<"$out" || fail "statement line: $out"
grep -q '^    hint: Expand/contract (seed scenario 2)' <<<"$out" || fail "rename hint: $out"
grep -q '^20240401000000_quantity_decimal/migration.sql:4: error: \[change-column-type\]' <<<"$out" || fail "type change at line 4: $out"
grep -q '^20240401000000_quantity_decimal/migration.sql:7: warning: \[update-without-where\]' <<<"$out" || fail "update at line 7: $out"
grep -q '^20240115000000_add_user_preferences/migration.sql:2: warning: \[missing-lock-timeout\]' <<<"$out" || fail "lock_timeout warning: $out"
grep -q '^20240301000000_add_index/migration.sql:3: error (allowed): \[index-not-concurrent\]' <<<"$out" || fail "allowed finding: $out"
grep -q 'DROP COLUMN' <<<"$out" && fail "down.sql was linted: $out"
grep -Eq '^20240101000000_init +additive +no findings$' <<<"$out" || fail "init class: $out"
grep -Eq '^20240115000000_add_user_preferences +additive +1 warning$' <<<"$out" || fail "preferences class: $out"
grep -Eq '^20240201000000_rename_batch +transformative +1 error$' <<<"$out" || fail "rename class: $out"
grep -Eq '^20240301000000_add_index +additive +1 allowed$' <<<"$out" || fail "index class: $out"
grep -Eq '^20240401000000_quantity_decimal +transformative +1 error, 1 warning$' <<<"$out" || fail "decimal class: $out"
grep -q '^5 migrations, transformative at worst: 2 errors, 2 warnings, 1 allowed$' <<<"$out" || fail "totals: $out"
grep -q 'not_a_migration' <<<"$out" && fail "a directory without migration.sql was listed: $out"
grep -q "lint found 2 errors in $M" "$WORK/err" || fail "stderr: $(cat "$WORK/err")"
pass "text report: findings with lines and hints, classes per migration, exit 1"

run_deployctl lint "$M" --json
[[ $rc -eq 1 ]] || fail "--json with errors must exit 1, got $rc"
jq -e 'type == "array" and length == 4' "$WORK/out" >/dev/null || fail "--json count: $(cat "$WORK/out")"
jq -e 'all(.[]; keys == ["class","file","hint","line","rule","severity","statement"])' "$WORK/out" >/dev/null ||
    fail "--json keys: $(jq -c '.[0] | keys' "$WORK/out")"
[[ $(jq -c '[.[] | select(.severity == "error") | .rule] | sort' "$WORK/out") == '["change-column-type","rename-column"]' ]] ||
    fail "--json errors: $(cat "$WORK/out")"
[[ $(jq -r '.[] | select(.rule == "change-column-type") | "\(.file):\(.line):\(.class)"' "$WORK/out") == \
    "20240401000000_quantity_decimal/migration.sql:4:transformative" ]] || fail "--json type change: $(cat "$WORK/out")"
[[ $(jq -r '.[] | select(.rule == "change-column-type") | .statement' "$WORK/out") == \
    'ALTER TABLE "inventory_items" ALTER COLUMN "quantity" SET DATA TYPE DECIMAL(65,30)' ]] ||
    fail "--json statement: $(cat "$WORK/out")"
jq -e 'all(.[]; (.hint | length) > 20 and (.line | type) == "number")' "$WORK/out" >/dev/null || fail "--json hints"
jq -e 'any(.[]; .rule == "index-not-concurrent") | not' "$WORK/out" >/dev/null || fail "an allowed finding is in --json"
pass "--json: an array of {file, line, statement, rule, severity, class, hint}"

# Accepting the two errors leaves warnings only: exit 0.
sed -i 's/^ALTER TABLE "inventory_items" RENAME/-- deployctl:allow rename-column\n&/' "$M/20240201000000_rename_batch/migration.sql"
sed -i 's|^/\* Prisma|-- deployctl:allow change-column-type, update-without-where\n&|' "$M/20240401000000_quantity_decimal/migration.sql"
run_deployctl lint "$M"
# The allow comment above the block comment is not directly above the statement.
[[ $rc -eq 1 ]] && grep -q '\[change-column-type\]' "$WORK/out" || fail "an allow comment separated by a block comment counted: $(cat "$WORK/out")"
sed -i '/^\/\* Prisma/d' "$M/20240401000000_quantity_decimal/migration.sql"
run_deployctl lint "$M" --json
[[ $rc -eq 0 ]] || fail "allowed errors still fail (rc $rc): $(cat "$WORK/out" "$WORK/err")"
[[ $(jq -c '[.[] | .rule]' "$WORK/out") == '["missing-lock-timeout","update-without-where"]' ]] || fail "after allow: $(cat "$WORK/out")"
sed -i 's/allow rename-column/allow rename-colum/' "$M/20240201000000_rename_batch/migration.sql"
run_deployctl lint "$M"
[[ $rc -eq 1 ]] && grep -q '\[unknown-allow-rule\] .*"rename-colum"' "$WORK/out" || fail "a misspelt allow: $(cat "$WORK/out")"
pass "deployctl:allow accepts findings; a misspelt rule accepts nothing and is named"

# ---- a clean directory, an empty one ----
C=$WORK/clean
prisma_init "$C"
migration "$C" 20240115000000_add_user_preferences <<'SQL'
SET lock_timeout = '5s';
ALTER TABLE "users" ADD COLUMN "preferences" JSONB;
CREATE INDEX CONCURRENTLY "x" ON "users" ("name");
SQL
run_deployctl lint "$C"
[[ $rc -eq 0 ]] || fail "clean directory: rc $rc $(cat "$WORK/out" "$WORK/err")"
grep -q '^2 migrations, additive at worst: 1 warning$' "$WORK/out" || fail "clean summary: $(cat "$WORK/out")"
grep -q 'warning: \[concurrently-not-alone\]' "$WORK/out" || fail "concurrent index beside other statements: $(cat "$WORK/out")"
[[ ! -s $WORK/err ]] || fail "clean directory wrote to stderr: $(cat "$WORK/err")"
mkdir "$WORK/empty"
run_deployctl lint "$WORK/empty"
[[ $rc -eq 0 ]] && grep -q "no migrations in $WORK/empty" "$WORK/out" || fail "empty directory: $(cat "$WORK/out")"
pass "a clean directory and an empty one exit 0"

# ---- errors a user can act on ----
migration "$C" 20240201000000_broken <<'SQL'
SET lock_timeout = '5s';
-- AlterTable
ALTER TABLE "users" ADD COLUMN;
SQL
run_deployctl lint "$C" --json
[[ $rc -eq 1 ]] || fail "syntax error: rc $rc"
grep -q "$C/20240201000000_broken/migration.sql:3: syntax error" "$WORK/err" || fail "syntax error message: $(cat "$WORK/err")"
[[ ! -s $WORK/out ]] || fail "a syntax error still printed findings: $(cat "$WORK/out")"
run_deployctl lint "$WORK/nowhere"
[[ $rc -eq 1 ]] && grep -q -- "--migrations" "$WORK/err" || fail "missing directory: $(cat "$WORK/err")"
pass "a syntax error names file and line; a missing directory says how to give one"

# ---- where the directory comes from ----
run_deployctl lint --migrations "$WORK/init"
[[ $rc -eq 0 ]] && grep -q '^20240101000000_init ' "$WORK/out" || fail "--migrations: $(cat "$WORK/out" "$WORK/err")"
DEPLOYCTL_MIGRATIONS=$WORK/init run_deployctl lint
[[ $rc -eq 0 ]] && grep -q '^20240101000000_init ' "$WORK/out" || fail "DEPLOYCTL_MIGRATIONS: $(cat "$WORK/err")"
printf '[migrations]\ndir = %s\n' "$M" >"$WORK/deployctl.conf"
run_deployctl lint --config "$WORK/deployctl.conf"
grep -q '^20240201000000_rename_batch ' "$WORK/out" || fail "migrations.dir: $(cat "$WORK/out" "$WORK/err")"
run_deployctl lint --config "$WORK/deployctl.conf" "$WORK/init"
[[ $rc -eq 0 ]] && ! grep -q rename_batch "$WORK/out" || fail "the argument did not win over the config file"
mkdir -p "$WORK/app/prisma"
cp -r "$WORK/init" "$WORK/app/prisma/migrations"
(cd "$WORK/app" && run_deployctl lint && [[ $rc -eq 0 ]] && grep -q '^20240101000000_init ' "$WORK/out") ||
    fail "default prisma/migrations: $(cat "$WORK/out" "$WORK/err")"
run_deployctl lint "$M/20240201000000_rename_batch/migration.sql"
[[ $rc -eq 1 ]] && grep -q "^$M/20240201000000_rename_batch/migration.sql:5: warning: \[unknown-allow-rule\]" "$WORK/out" ||
    fail "a single file: $(cat "$WORK/out")"
run_deployctl backup --migrations "$M"
[[ $rc -eq 1 ]] && grep -q 'does not apply to backup' "$WORK/err" || fail "--migrations on backup: $(cat "$WORK/err")"
run_deployctl lint --help
[[ $rc -eq 0 ]] && grep -q -- '--migrations' "$WORK/out" && grep -q 'missing-lock-timeout' "$WORK/out" || fail "lint --help"
run_deployctl --help
grep -q '^  lint ' "$WORK/out" || fail "--help does not list lint"
pass "the directory: argument > --migrations > DEPLOYCTL_MIGRATIONS > migrations.dir > prisma/migrations"
