#!/usr/bin/env bash
# The command line as users meet it: --version, --help for the tool and each command,
# settings from config file < environment < flags, JSON logs, JSON listings, and passwords
# masked in every message.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

run_deployctl --version
[[ $rc -eq 0 && $(cat "$WORK/out") =~ ^deployctl\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version: $(cat "$WORK/out")"
run_deployctl --help
[[ $rc -eq 0 ]] || fail "--help exit $rc"
for word in backup snapshots show --database --store --json --quiet --verbose --config; do
    grep -q -- "$word" "$WORK/out" || fail "--help does not mention $word"
done
run_deployctl backup --help
[[ $rc -eq 0 ]] && grep -q -- '--jobs' "$WORK/out" && grep -q -- '--tag' "$WORK/out" || fail "backup --help"
run_deployctl help snapshots
[[ $rc -eq 0 ]] && grep -q -- '--all' "$WORK/out" || fail "help snapshots"
run_deployctl
[[ $rc -eq 1 ]] && grep -q 'no command given' "$WORK/err" || fail "no command: rc $rc"
pass "version and help"

src=$(new_db src)
psql_admin "$src" -c "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id"
url=$(db_url "$src")

# Settings: config file < environment < flags.
cat >"$WORK/deployctl.conf" <<CONF
[database]
url = $url
[store]
url = file://$WORK/store-from-file
[log]
format = json
[backup]
jobs = 1
CONF
chmod 600 "$WORK/deployctl.conf"
run_deployctl backup --config "$WORK/deployctl.conf"
[[ $rc -eq 0 ]] || fail "backup from a config file: $(cat "$WORK/err")"
[[ -n $(find "$WORK/store-from-file" -name manifest.json) ]] || fail "the config file's store was not used"
jq -e -s 'length > 0 and all(.[]; has("time") and has("level") and has("msg"))' "$WORK/err" >/dev/null ||
    fail "log.format = json did not give JSON lines: $(cat "$WORK/err")"
pass "config file: database, store and log format"

# A config file readable by others holding the app's pooled URL with its password: warned.
printf '[database]\npooled_url = postgresql://app:Pooled-pw-9@127.0.0.1:1/app\n' >"$WORK/exposed.conf"
chmod 644 "$WORK/exposed.conf"
echo 'SELECT 1;' >"$WORK/one.sql"
run_deployctl lint --config "$WORK/exposed.conf" "$WORK/one.sql"
grep -q "exposed.conf holds a password and is readable by others; chmod 600 it" "$WORK/err" ||
    fail "no permission warning for a pooled URL's password: $(cat "$WORK/err")"
! grep -q "Pooled-pw-9" "$WORK/err" "$WORK/out" || fail "the pooled URL's password was printed"
pass "a readable config file holding database.pooled_url's password is warned about"

DEPLOYCTL_STORE="file://$WORK/store-from-env" DEPLOYCTL_LOG_FORMAT=text run_deployctl backup --config "$WORK/deployctl.conf"
[[ $rc -eq 0 ]] || fail "backup with env overrides: $(cat "$WORK/err")"
[[ -n $(find "$WORK/store-from-env" -name manifest.json) ]] || fail "DEPLOYCTL_STORE did not win over the file"
grep -q '^deployctl: ' "$WORK/err" || fail "DEPLOYCTL_LOG_FORMAT=text did not win over the file"
DEPLOYCTL_STORE="file://$WORK/store-from-env" run_deployctl backup --config "$WORK/deployctl.conf" \
    --store "$WORK/store-from-flag" --log-format text --quiet
[[ $rc -eq 0 && -n $(find "$WORK/store-from-flag" -name manifest.json) ]] || fail "--store did not win over the environment"
[[ ! -s $WORK/err ]] || fail "--quiet still logged: $(cat "$WORK/err")"
pass "precedence: file < environment < flag"

# DATABASE_URL_DIRECT wins over DATABASE_URL (migrations and backups use the direct URL).
DATABASE_URL="postgresql://dctest:pooled-secret@127.0.0.1:1/pooled" DATABASE_URL_DIRECT="$url" \
    run_deployctl backup --store "$WORK/store-direct" --quiet
[[ $rc -eq 0 ]] || fail "DATABASE_URL_DIRECT was not preferred: $(cat "$WORK/err")"

# Prisma's URLs: ?schema= and pool parameters libpq does not know are understood, and the
# migration history is read from that schema.
psql_admin "$src" <<'SQL'
CREATE SCHEMA app;
CREATE TABLE app._prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
    finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
    rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
    applied_steps_count integer NOT NULL DEFAULT 0);
INSERT INTO app._prisma_migrations VALUES
    ('11111111-1111-1111-1111-111111111111', repeat('a', 64), now(), '20240101000000_init', NULL, NULL, now(), 1);
SQL
DATABASE_URL="$url?schema=app&connection_limit=5&pool_timeout=10&pgbouncer=true&sslmode=disable" \
    run_deployctl backup --store "$WORK/store-prisma" --quiet
[[ $rc -eq 0 ]] || fail "a Prisma URL was refused: $(cat "$WORK/err")"
m=$(find "$WORK/store-prisma" -name manifest.json)
assert_eq 20240101000000_init "$(jq -r '[.migrations[].name] | join(",")' "$m")" "migrations read from ?schema=app"
pass "Prisma URLs (?schema=, pool parameters)"

# Listing: text and JSON with the contract keys.
run_deployctl snapshots --store "$WORK/store-from-file" --json
[[ $rc -eq 0 ]] || fail "snapshots --json: $(cat "$WORK/err")"
jq -e 'length == 1 and (.[0] | has("id") and has("tag") and has("created_at") and has("complete")
       and has("verified") and has("bytes")) and .[0].complete == true and .[0].tag == "manual"' \
    "$WORK/out" >/dev/null || fail "snapshots --json lacks contract keys: $(cat "$WORK/out")"
id=$(jq -r '.[0].id' "$WORK/out")
run_deployctl snapshots --store "$WORK/store-from-file"
grep -q "$id" "$WORK/out" && grep -q complete "$WORK/out" || fail "snapshots text: $(cat "$WORK/out")"
run_deployctl show "$id" --store "$WORK/store-from-file" --json
[[ $rc -eq 0 ]] || fail "show --json: $(cat "$WORK/err")"
assert_eq "$id" "$(jq -r .id "$WORK/out")" "show --json id"
run_deployctl show latest --store "$WORK/store-from-file" --database "$url"
[[ $rc -eq 0 ]] && grep -q "public.t" "$WORK/out" && grep -q "1,000" "$WORK/out" || fail "show latest: $(cat "$WORK/out")"
run_deployctl snapshots --store "$WORK/empty-store" --json
assert_eq "[]" "$(jq -c . "$WORK/out")" "empty store lists nothing"
pass "snapshots and show"

# Passwords never appear, even in debug logs and errors.
run_deployctl backup --database "$url" --store "$WORK/store-verbose" --verbose --log-format json
[[ $rc -eq 0 ]] || fail "verbose backup: $(cat "$WORK/err")"
if grep -qF "$DC_PG_PASSWORD" "$WORK/err" "$WORK/out"; then fail "password in verbose output"; fi
run_deployctl show latest --store "$WORK/nothing" --database "postgresql://dctest:pooled-secret@h/db"
if grep -qF "pooled-secret" "$WORK/err"; then fail "password in an error: $(cat "$WORK/err")"; fi
pass "no password in any output"
