#!/usr/bin/env bash
# Environments: [env "NAME"] sections of the config file select each environment's database,
# store and hooks (--env or DEPLOYCTL_ENV), over the top level and under environment variables
# and flags; an unknown name is refused naming the known ones; promote-check compares what
# staging has applied with what production is about to get.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

stg=$(new_db staging)
prod=$(new_db production)
other=$(new_db other)
dir=$WORK/migrations
mkdir -p "$dir/20240101000000_init" "$dir/20240201000000_tags" "$WORK/hooks-staging"
printf 'provider = "postgresql"\n' >"$dir/migration_lock.toml"
echo 'CREATE TABLE items (id serial PRIMARY KEY, name text);' >"$dir/20240101000000_init/migration.sql"
echo 'CREATE TABLE tags (id serial PRIMARY KEY, label text);' >"$dir/20240201000000_tags/migration.sql"
conf=$WORK/deployctl.conf
cat >"$conf" <<CONF
[database]
url = $(db_url "$other")
[store]
url = file://$WORK/store-top
[migrations]
dir = $dir

[env "staging"]
database.url = $(db_url "$stg")
database.pooled_url = $(db_url "$stg")?application_name=staging-app
store.url = file://$WORK/store-staging
release.hooks = $WORK/hooks-staging
rehearse.max_lock = 2s

[env "production"]
database.url = $(db_url "$prod")
database.pooled_url = $(db_url "$other")
store.url = file://$WORK/store-production
CONF
chmod 600 "$conf"
history_rows() { psql_value "$1" "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL"; }

run_deployctl migrate deploy --config "$conf" --env staging
[[ $rc -eq 0 ]] || fail "deploy --env staging: $(cat "$WORK/err")"
assert_eq 2 "$(history_rows "$stg")" "--env staging deployed to the staging database"
assert_eq 0 "$(psql_value "$prod" "SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'")" "production untouched"
assert_eq 0 "$(psql_value "$other" "SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'")" "top-level database untouched"
pass "--env staging uses the staging database"

run_deployctl check --config "$conf" --env staging --json
grep -q "$stg" "$WORK/out" "$WORK/err" || fail "check --env staging did not check $stg: $(cat "$WORK/out" "$WORK/err")"
pool() { jq -r ".checks[] | select(.name == \"pooled-url\") | .$1" "$WORK/out"; }
assert_eq warning "$(pool status)" "staging's pooled URL: same database, not pooled"
[[ $(pool detail) == *"same database as the direct URL"* ]] || fail "staging pooled: $(pool detail)"
run_deployctl check --config "$conf" --env production --json
assert_eq failed "$(pool status)" "production's pooled URL reaches another database"
[[ $(pool detail) == *"/$other, the direct one "*"/$prod)"* ]] || fail "production pooled: $(pool detail)"
pass "check --env staging connects to the staging database; each environment's pooled URL is checked against its own direct URL"

rm -r "$dir/20240201000000_tags"
DEPLOYCTL_ENV=production run_deployctl migrate deploy --config "$conf"
[[ $rc -eq 0 ]] || fail "DEPLOYCTL_ENV=production deploy: $(cat "$WORK/err")"
assert_eq 1 "$(history_rows "$prod")" "DEPLOYCTL_ENV=production deployed to production"
mkdir -p "$dir/20240201000000_tags"
echo 'CREATE TABLE tags (id serial PRIMARY KEY, label text);' >"$dir/20240201000000_tags/migration.sql"
pass "DEPLOYCTL_ENV selects the environment"

run_deployctl backup --config "$conf" --env staging --quiet
[[ $rc -eq 0 ]] || fail "backup --env staging: $(cat "$WORK/err")"
[[ -d $WORK/store-staging/$stg ]] || fail "backup --env staging did not write to the staging store: $(ls -R "$WORK" | head -30)"
[[ ! -e $WORK/store-top ]] || fail "backup --env staging wrote to the top-level store"
pass "backup --env staging writes to the staging store"

run_deployctl release --config "$conf" --env staging --dry-run
grep -q "hooks ($WORK/hooks-staging)" "$WORK/out" || fail "release --env staging hooks: $(cat "$WORK/out")"
pass "the staging hooks directory is used"

# Precedence: environment variables and flags over the env section.
DATABASE_URL=$(db_url "$other") run_deployctl migrate status --config "$conf" --env staging --json
assert_eq false "$(jq .history_table "$WORK/out")" "DATABASE_URL beats the env section"
run_deployctl migrate status --config "$conf" --env staging --database "$(db_url "$prod")" --json
assert_eq 1 "$(jq .counts.applied "$WORK/out")" "--database beats the env section"
pass "precedence: env section < environment variables < flags"

run_deployctl migrate status --config "$conf" --env qa --quiet
expect_error_line "unknown environment" "unknown environment 'qa'.*defines staging, production"
run_deployctl migrate status --env qa --quiet
expect_error_line "--env without a config file" "no config file was read"
pass "an unknown environment is refused, naming the known ones"

# promote-check: production (init applied, tags pending) gets exactly what staging has.
run_deployctl promote-check staging production --config "$conf"
[[ $rc -eq 0 ]] || fail "promote-check on the same migrations: $rc $(cat "$WORK/out" "$WORK/err")"
grep -q '2 migrations identical' "$WORK/out" || fail "promote-check output: $(cat "$WORK/out")"
# tags edited since staging got it, a new migration staging never had.
echo 'CREATE TABLE tags (id bigserial PRIMARY KEY, label text);' >"$dir/20240201000000_tags/migration.sql"
mkdir -p "$dir/20240301000000_notes"
echo 'CREATE TABLE notes (id serial PRIMARY KEY);' >"$dir/20240301000000_notes/migration.sql"
run_deployctl promote-check staging production --config "$conf" --json
[[ $rc -eq 4 ]] || fail "promote-check mismatch: expected exit 4, got $rc: $(cat "$WORK/err")"
assert_eq "checksum differs" "$(jq -r '.differences[] | select(.name == "20240201000000_tags") | .difference' "$WORK/out")" "edited migration"
assert_eq "missing on the source" "$(jq -r '.differences[] | select(.name == "20240301000000_notes") | .difference' "$WORK/out")" "migration staging never had"
# A migration that failed on staging.
psql_admin "$stg" -c "INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES ('f1', 'x', '20240301000000_notes', now(), 0)"
run_deployctl promote-check staging production --config "$conf"
[[ $rc -eq 4 ]] || fail "promote-check failed on staging: $rc"
grep -q '^20240301000000_notes: failed on the source' "$WORK/out" || fail "failed on staging: $(cat "$WORK/out")"
pass "promote-check: same -> 0; checksum differs, missing and failed on staging -> 4"
