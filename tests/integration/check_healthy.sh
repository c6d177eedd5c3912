#!/usr/bin/env bash
# `deployctl check` on a healthy database with a fresh snapshot: every check ok, exit 0, as text
# and as JSON; then an old snapshot and no snapshot at all warn (exit 0, --strict exit 4), and
# an unreachable server fails with a clear error and no password in the output.
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
store=$WORK/store
mig=$WORK/migrations

# One applied migration, recorded as Prisma records it (checksum = SHA-256 of migration.sql).
mkdir -p "$mig/20260101000000_init"
cat >"$mig/20260101000000_init/migration.sql" <<'SQL'
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);
SQL
psql_admin "$db" -f "$mig/20260101000000_init/migration.sql"
psql_admin "$db" <<SQL
CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
  finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
  rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
  applied_steps_count integer NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
VALUES (gen_random_uuid(), '$(sha256sum "$mig/20260101000000_init/migration.sql" | cut -c1-64)',
        now(), '20260101000000_init', 1);
INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 100) g;
SQL

check() { run_deployctl check --database "$url" --store "$store" --migrations "$mig" "$@"; }
statuses() { jq -r '.checks[] | "\(.name)=\(.status)"' "$WORK/out" | sort | tr '\n' ' '; }

# No snapshot yet: a warning only.
check --json
[[ $rc -eq 0 ]] || fail "no snapshot: exit $rc: $(cat "$WORK/err")"
[[ $(jq -r '.checks[] | select(.name == "snapshot") | .status' "$WORK/out") == warning ]] ||
    fail "no snapshot is not a warning: $(statuses)"
jq -r '.checks[] | select(.name == "snapshot") | .detail' "$WORK/out" | grep -q "no complete snapshot of $db" ||
    fail "no snapshot: detail: $(jq -c '.checks[] | select(.name == "snapshot")' "$WORK/out")"
assert_eq warning "$(jq -r .verdict "$WORK/out")" "no snapshot: verdict"
pass "no snapshot: warning, exit 0"

run_deployctl --quiet backup --database "$url" --store "$store"
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
snapshot=$(tail -1 "$WORK/out")

check --json
[[ $rc -eq 0 ]] || fail "healthy: exit $rc: $(cat "$WORK/err")"
expected="connection=ok connections=ok free-space=ok invalid-indexes=ok locks=ok migrations=ok pg-dump=ok pooler=ok prepared-transactions=ok privileges=ok snapshot=ok wraparound=ok "
assert_eq "$expected" "$(statuses)" "healthy: every check"
assert_eq ok "$(jq -r .verdict "$WORK/out")" "healthy: verdict"
assert_eq 12 "$(jq -r .counts.ok "$WORK/out")" "healthy: ok count"
jq -r '.checks[] | select(.name == "snapshot") | .detail' "$WORK/out" | grep -q "newest is $snapshot" ||
    fail "the snapshot check does not name $snapshot"
jq -r '.checks[] | select(.name == "free-space") | .detail' "$WORK/out" | grep -q "last snapshot's size" ||
    fail "free space not estimated from the last snapshot: $(jq -c '.checks[] | select(.name == "free-space")' "$WORK/out")"
jq -r '.checks[] | select(.name == "migrations") | .detail' "$WORK/out" | grep -q "1 in .*: 0 pending, 0 failed, 0 edited" ||
    fail "migrations detail: $(jq -c '.checks[] | select(.name == "migrations")' "$WORK/out")"
pass "healthy database with a fresh snapshot: 12 checks ok, exit 0 (JSON)"

# Text, as the seed prints it: one line per check, then the verdict; emoji in a UTF-8 locale.
LC_ALL=C.UTF-8 NO_COLOR= check
[[ $rc -eq 0 ]] || fail "healthy text: exit $rc"
assert_eq 12 "$(grep -c '^✅ [^:]*: ' "$WORK/out")" "healthy text: ✅ check lines"
tail -1 "$WORK/out" | grep -q '^✅ All pre-migration checks passed. Safe to proceed.$' ||
    fail "healthy text: verdict line: $(tail -1 "$WORK/out")"
LC_ALL=C check
assert_eq 12 "$(grep -c '^\[ok\] *[^:]*: ' "$WORK/out")" "plain text: [ok] check lines"
grep -q '^\[ok\] *All pre-migration checks passed' "$WORK/out" || fail "plain text: no verdict line"
LC_ALL=C.UTF-8 NO_COLOR=1 check
grep -q '✅' "$WORK/out" && fail "NO_COLOR still prints emoji"
pass "text output: ✅ per check and the verdict line; plain [ok] without a UTF-8 locale or with NO_COLOR"

# An old snapshot: a warning naming the option, exit 0; --strict makes it exit 4.
sleep 2
check --json --max-snapshot-age 1s
[[ $rc -eq 0 ]] || fail "old snapshot: exit $rc"
[[ $(jq -r '.checks[] | select(.name == "snapshot") | .status' "$WORK/out") == warning ]] ||
    fail "old snapshot is not a warning: $(statuses)"
jq -r '.checks[] | select(.name == "snapshot") | .detail' "$WORK/out" | grep -q "older than --max-snapshot-age" ||
    fail "old snapshot: detail"
check --max-snapshot-age 1s --strict
assert_eq 4 "$rc" "old snapshot with --strict: exit"
pass "a snapshot older than --max-snapshot-age warns; --strict fails"

# A snapshot whose verification failed warns too.
printf '{"ok": false, "deep": false, "verified_at": "2026-01-01T00:00:00Z"}' \
    >"$store/$db/$snapshot/verify-20260101T000000Z.json"
check --json
jq -r '.checks[] | select(.name == "snapshot") | "\(.status) \(.detail)"' "$WORK/out" | grep -q "^warning .*verification FAILED" ||
    fail "failed verification: $(jq -c '.checks[] | select(.name == "snapshot")' "$WORK/out")"
pass "a snapshot whose verification failed warns"

# An unreachable server: the connection check fails with what to do, checks that need it are
# skipped, exit 4, and the password is not printed.
secret=Unreachable-Secret-9137
run_deployctl check --database "postgresql://dctest:$secret@127.0.0.1:1/$db" --store "$store" --migrations "$mig" --json
assert_eq 4 "$rc" "unreachable: exit code"
jq -r '.checks[] | select(.name == "connection") | .detail' "$WORK/out" |
    grep -q "cannot connect to postgresql://dctest:\*\*\*@127.0.0.1:1/.*check the host and port" ||
    fail "unreachable: connection detail: $(jq -c '.checks[0]' "$WORK/out")"
assert_eq skipped "$(jq -r '.checks[] | select(.name == "locks") | .status' "$WORK/out")" "unreachable: locks"
! grep -qF "$secret" "$WORK/out" "$WORK/err" || fail "unreachable: the password was printed"
pass "unreachable server: connection fails with a hint, the rest skipped, exit 4, no password"

# Configuration errors are exit 1, not a check failure.
run_deployctl check --store "$store"
assert_eq 1 "$rc" "no database: exit code"
grep -q "no database given" "$WORK/err" || fail "no database: $(cat "$WORK/err")"
run_deployctl check --database "$url" --store "$store" --max-transaction-age soon
assert_eq 1 "$rc" "bad duration: exit code"
pass "no database or a bad option value: exit 1 with the reason"
