#!/usr/bin/env bash
# External mode: migrate.command (here a small script standing in for `npx prisma migrate
# deploy`) runs instead of the native runner, split into argv without a shell; it gets the
# database URL in DATABASE_URL and nowhere else (not in argv, no DATABASE_URL_DIRECT), and
# deployctl reads _prisma_migrations before and after to report what it applied or left failed.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
printf 'provider = "postgresql"\n' >"$WORK/migrations/migration_lock.toml"
tool=$WORK/fake-migrate.sh
cat >"$tool" <<'EOF'
#!/usr/bin/env bash
# Records what it was given, then applies a migration as Prisma would record it.
set -euo pipefail
printf '%s\n' "$@" >"$EXT_OUT/argv"
env >"$EXT_OUT/env"
tr '\0' ' ' </proc/$$/cmdline >"$EXT_OUT/cmdline"
name=${FAKE_NAME:-20240101000000_ext}
finished="now()"
[[ -n ${FAKE_FAIL:-} ]] && finished=NULL
"$DC_PG_BIN/psql" "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
    migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ext_table (id int);
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
VALUES (gen_random_uuid(), repeat('0', 64), $finished, '$name', 1);
SQL
echo "fake-migrate: applied $name"
[[ -z ${FAKE_FAIL:-} ]] || exit 3
EOF
chmod +x "$tool"
cat >"$WORK/deployctl.conf" <<EOF
[migrations]
dir = $WORK/migrations

[migrate]
command = $tool --schema prisma/schema.prisma "two words" \$DATABASE_URL
EOF
export EXT_OUT=$WORK

# The URL from the environment, as CI gives it.
DATABASE_URL_DIRECT=$url run_deployctl migrate deploy --config "$WORK/deployctl.conf" --json
[[ $rc -eq 0 ]] || fail "external deploy: rc $rc: $(cat "$WORK/err")"
grep -q '"done":\["20240101000000_ext"\]' "$WORK/out" || fail "what it applied was not reported: $(cat "$WORK/out")"
grep -q "fake-migrate: applied 20240101000000_ext" "$WORK/err" || fail "the command's output was not passed on: $(cat "$WORK/err")"
assert_eq "--schema|prisma/schema.prisma|two words|\$DATABASE_URL" "$(paste -sd'|' "$WORK/argv")" "argv split without a shell"
grep -qxF "DATABASE_URL=$url" "$WORK/env" || fail "DATABASE_URL not in the command's environment"
grep -q "^DATABASE_URL_DIRECT=" "$WORK/env" && fail "DATABASE_URL_DIRECT passed on"
grep -qF "$DC_PG_PASSWORD" "$WORK/argv" "$WORK/cmdline" && fail "the password is in the command's argv"
grep -qF "$DC_PG_PASSWORD" "$WORK/out" "$WORK/err" && fail "the password is in deployctl's output"
assert_eq "ext_table" "$(psql_value "$db" "SELECT to_regclass('ext_table')")" "the command ran against the database"
pass "migrate.command runs without a shell, DATABASE_URL only in its environment; deployctl reports what it applied"

# Prisma's directUrl = env("DIRECT_URL"): the command migrates through the database deployctl
# snapshots (--database here), never through a DIRECT_URL (or a pooled URL) it inherited.
inherited=postgresql://other:Inherited5ecret@elsewhere.invalid/otherdb
DIRECT_URL=$inherited DEPLOYCTL_POOLED_URL=$inherited DEPLOYCTL_REHEARSE_SCRATCH=$inherited \
    FAKE_NAME=20240101000001_ext_direct run_deployctl migrate deploy --config "$WORK/deployctl.conf" --database "$url"
[[ $rc -eq 0 ]] || fail "external deploy with an inherited DIRECT_URL: rc $rc: $(cat "$WORK/err")"
grep -qxF "DIRECT_URL=$url" "$WORK/env" || fail "DIRECT_URL is not the direct URL: $(grep DIRECT_URL "$WORK/env")"
grep -qF "Inherited5ecret" "$WORK/env" && fail "an inherited URL reached the command: $(grep Inherited5ecret "$WORK/env")"
pass "migrate.command gets DIRECT_URL = the direct URL, no inherited DIRECT_URL or DEPLOYCTL_POOLED_URL"

# A command that fails, leaving a failed migration: reported, non-zero.
FAKE_FAIL=1 FAKE_NAME=20240102000000_ext_bad run_deployctl migrate deploy --config "$WORK/deployctl.conf" --database "$url"
[[ $rc -eq 1 ]] || fail "failing command: rc $rc"
grep -q "migrate.command (.*fake-migrate.sh.*) failed with status 3; applied: none; failed: 20240102000000_ext_bad" "$WORK/err" ||
    fail "unclear failure: $(cat "$WORK/err")"
# The native runner sees the failed migration the other tool left.
run_deployctl migrate status --database "$url" --migrations "$WORK/migrations" --json
[[ $rc -eq 4 ]] && grep -q '"name":"20240102000000_ext_bad","status":"failed"' "$WORK/out" || fail "status: $(cat "$WORK/out")"
pass "a failing migrate.command is reported with what it left failed"

# A command that cannot start.
run_deployctl migrate deploy --database "$url" --migrations "$WORK/migrations" --migrate-command "/nonexistent/prisma migrate deploy"
[[ $rc -eq 1 ]] && grep -q "cannot run /nonexistent/prisma" "$WORK/err" || fail "missing command: $(cat "$WORK/err")"
pass "a command that cannot start is named"

# A command that hangs (waiting on a lock, say) is stopped after migrate.command_timeout, with
# whatever it started: deployctl's runner lock is not held forever.
marker="$((300 + RANDOM % 600)).$$" # unique on the machine: other jobs run sleeps too
t0=$(date +%s)
run_deployctl migrate deploy --database "$url" --migrations "$WORK/migrations" --migrate-command-timeout 1s \
    --migrate-command "sh -c 'sleep $marker & sleep $marker; wait'"
[[ $rc -eq 1 ]] || fail "a hanging command: rc $rc: $(cat "$WORK/err")"
(($(date +%s) - t0 < $(scaled 15))) || fail "the hanging command was not stopped in time"
grep -q "did not finish within 1 s (migrate.command_timeout) and was stopped with its process group" "$WORK/err" ||
    fail "unclear timeout: $(cat "$WORK/err")"
sleep 0.5
pgrep -xf "sleep $marker" >/dev/null && fail "the command's children were left running"
pass "a migrate.command that hangs is stopped after migrate.command_timeout, children included"
