#!/usr/bin/env bash
# `deployctl check` tells a direct connection from one through a pooler: a real PgBouncer in
# transaction pooling mode (the `pgbouncer` fixture) fails the pooler check with exit 4 and a
# message naming DATABASE_URL_DIRECT; the direct URL passes; Prisma's ?pgbouncer=true on a
# direct URL only warns.
source "$(dirname "$0")/../harness/lib.sh"

pgb_env=$DC_BUILD_DIR/tests/pgbouncer/env
[[ -f $pgb_env ]] || fail "the pgbouncer fixture did not run ($pgb_env missing)"
# shellcheck disable=SC1090
source "$pgb_env"
[[ -z ${DC_PGB_MISSING:-} ]] || skip "$DC_PGB_MISSING"

db=$(new_db main)
direct=$(db_url "$db")
pooled=$DC_PGB_URL_BASE/$db
store=$WORK/store
mkdir -p "$WORK/migrations"

check() { run_deployctl check --store "$store" --migrations "$WORK/migrations" "$@"; }
status_of() { jq -r --arg n "$1" '.checks[] | select(.name == $n) | .status' "$WORK/out"; }
detail_of() { jq -r --arg n "$1" '.checks[] | select(.name == $n) | .detail' "$WORK/out"; }

# The pooled URL really reaches the server (so the check is judging a working connection).
[[ $(PGPASSWORD=$DC_PG_PASSWORD "$DC_PG_BIN/psql" -X -At "$pooled" -c 'SELECT 1') == 1 ]] ||
    fail "pgbouncer does not forward to the test cluster"

check --database "$direct" --json
[[ $(status_of connection) == ok ]] || fail "direct: connection not ok: $(cat "$WORK/out" "$WORK/err")"
[[ $(status_of pooler) == ok ]] || fail "direct: pooler check not ok: $(detail_of pooler)"
[[ $(detail_of pooler) == *"not pooled"* ]] || fail "direct: detail: $(detail_of pooler)"
pass "the direct URL is recognised as direct"

check --database "$pooled" --json
assert_eq 4 "$rc" "through pgbouncer: exit code"
[[ $(status_of connection) == ok ]] || fail "through pgbouncer: the connection itself should work"
[[ $(status_of pooler) == failed ]] || fail "through pgbouncer: pooler check $(status_of pooler)"
[[ $(detail_of pooler) == *DATABASE_URL_DIRECT* ]] || fail "the message does not name DATABASE_URL_DIRECT: $(detail_of pooler)"
[[ $(detail_of pooler) == *PgBouncer* ]] || fail "the message does not name the pooler: $(detail_of pooler)"
assert_eq failed "$(jq -r .verdict "$WORK/out")" "through pgbouncer: verdict"
grep -q "pre-migration checks failed" "$WORK/err" || fail "no error line on stderr: $(cat "$WORK/err")"
pass "through pgbouncer (transaction pooling): pooler check fails, exit 4, names DATABASE_URL_DIRECT"

# The same, as text, from the environment as a CI job sets it (DATABASE_URL_DIRECT wins over
# DATABASE_URL), and the password never printed.
LC_ALL=C DATABASE_URL=$direct DATABASE_URL_DIRECT=$pooled check
assert_eq 4 "$rc" "pooled DATABASE_URL_DIRECT: exit code"
grep -q '^\[fail\] Direct connection: .*DATABASE_URL_DIRECT' "$WORK/out" ||
    fail "text output: $(cat "$WORK/out")"
! grep -qF "$DC_PG_PASSWORD" "$WORK/out" "$WORK/err" || fail "the password was printed"
pass "text output shows [fail] for the pooled DATABASE_URL_DIRECT, no password"

# Prisma's mark of a pooled URL on a URL that is in fact direct: a warning, not a failure.
check --database "$direct?pgbouncer=true" --json
[[ $(status_of pooler) == warning ]] || fail "?pgbouncer=true on a direct URL: $(status_of pooler): $(detail_of pooler)"
[[ $(detail_of pooler) == *pgbouncer=true* ]] || fail "?pgbouncer=true not named: $(detail_of pooler)"
[[ $rc -eq 0 ]] || fail "a warning must not fail the check (rc $rc)"
check --database "$direct?pgbouncer=true" --strict
assert_eq 4 "$rc" "--strict with a warning: exit code"
pass "?pgbouncer=true on a direct URL warns; --strict makes it fail"

# A plain TCP proxy (no pooling) in front of the server is not mistaken for a pooler: the
# session is still the server's own; the detail notes the port difference.
python3 "$HARNESS/tcp_proxy.py" "$DC_PG_PORT" "$WORK/proxy.port" &
proxy=$!
on_exit "kill $proxy 2>/dev/null"
for _ in $(seq 1 50); do [[ -s $WORK/proxy.port ]] && break; sleep 0.1; done
[[ -s $WORK/proxy.port ]] || fail "the TCP proxy did not start"
proxy_port=$(cat "$WORK/proxy.port")
check --database "postgresql://dctest:$DC_PG_PASSWORD@127.0.0.1:$proxy_port/$db" --json
[[ $(status_of pooler) == ok ]] || fail "through a TCP proxy: $(status_of pooler): $(detail_of pooler)"
[[ $(detail_of pooler) == *"listens on port $DC_PG_PORT behind the URL's $proxy_port, a TCP proxy"* ]] ||
    fail "through a TCP proxy: detail: $(detail_of pooler)"
pass "a plain TCP proxy is not taken for a pooler (the port difference is noted)"

# The application's pooled URL beside the direct one (--pooled-url, or Prisma's convention of
# DATABASE_URL next to DATABASE_URL_DIRECT / DIRECT_URL): same database through PgBouncer passes.
check --database "$direct" --pooled-url "$pooled" --json
[[ $rc -eq 0 ]] || fail "--pooled-url through pgbouncer: exit $rc: $(cat "$WORK/out" "$WORK/err")"
[[ $(status_of pooled-url) == ok ]] || fail "--pooled-url: $(status_of pooled-url): $(detail_of pooled-url)"
[[ $(detail_of pooled-url) == *"same database as the direct URL, through a pooler"* ]] ||
    fail "--pooled-url detail: $(detail_of pooled-url)"
[[ $(status_of pooler) == ok ]] || fail "the direct URL is still checked as direct: $(detail_of pooler)"
for direct_var in DATABASE_URL_DIRECT DIRECT_URL; do
    env DATABASE_URL="$pooled" "$direct_var=$direct" "$DEPLOYCTL" check --store "$store" \
        --migrations "$WORK/migrations" --json >"$WORK/out" 2>"$WORK/err" || fail "$direct_var: $(cat "$WORK/err")"
    [[ $(status_of pooler) == ok && $(status_of pooled-url) == ok ]] ||
        fail "DATABASE_URL (pooled) beside $direct_var: $(jq -c .checks "$WORK/out")"
done
pass "a pooled URL through pgbouncer to the same database passes (--pooled-url, DATABASE_URL beside DATABASE_URL_DIRECT or DIRECT_URL)"

# A pooled URL that is not pooled warns; one that reaches another database fails. The pooled
# session here runs in another TimeZone and DateStyle (as an app role's ALTER ROLE ... SET may
# have it): still the same server.
check --database "$direct" --json \
    --pooled-url "$direct?options=-c%20TimeZone%3DPacific/Chatham%20-c%20DateStyle%3DSQL,DMY"
[[ $rc -eq 0 && $(status_of pooled-url) == warning ]] ||
    fail "a direct --pooled-url: rc $rc, $(status_of pooled-url): $(detail_of pooled-url)"
[[ $(detail_of pooled-url) == *"not through a pooler"* ]] || fail "detail: $(detail_of pooled-url)"
other=$(new_db other)
check --database "$direct" --pooled-url "$DC_PGB_URL_BASE/$other" --json
assert_eq 4 "$rc" "a --pooled-url to another database: exit code"
[[ $(status_of pooled-url) == failed && $(detail_of pooled-url) == *"another database"*"(from --pooled-url)"* ]] ||
    fail "another database: $(status_of pooled-url): $(detail_of pooled-url)"
! grep -qF "$DC_PG_PASSWORD" "$WORK/out" "$WORK/err" || fail "the password was printed"
pass "a direct --pooled-url warns; one reaching another database fails (exit 4), no password printed"

# release: the SQL smoke checks run through the pooled URL, as the application's queries do.
# PgBouncer's log counts the logins to the database: the precheck's pooled-url check makes one
# (measured with check alone), the smoke checks the other.
mkdir -p "$WORK/smoke"
echo 'SELECT true' >"$WORK/smoke/alive.sql"
logins() { grep -c "login attempt: db=$db " "$DC_PGB_DIR/pgbouncer.log" || true; }
n0=$(logins)
check --database "$direct" --pooled-url "$pooled" --quiet
n1=$(logins)
run_deployctl release --database "$direct" --store "file://$store" --migrations "$WORK/migrations" \
    --smoke-queries "$WORK/smoke" --report "$WORK/release.json"
[[ $rc -eq 0 ]] || fail "release without a pooled URL: $rc $(cat "$WORK/err")"
assert_eq direct "$(jq -r .smoke.sql_connection "$WORK/release.json")" "smoke without a pooled URL"
n2=$(logins)
assert_eq "$n1" "$n2" "a release without a pooled URL does not log in through pgbouncer"
run_deployctl release --database "$direct" --pooled-url "$pooled" --store "file://$store" \
    --migrations "$WORK/migrations" --smoke-queries "$WORK/smoke" --report "$WORK/release.json"
[[ $rc -eq 0 ]] || fail "release with --pooled-url: $rc $(cat "$WORK/err")"
assert_eq pooled "$(jq -r .smoke.sql_connection "$WORK/release.json")" "smoke with a pooled URL"
n3=$(logins)
assert_eq $((n3 - n2)) $((n1 - n0 + 1)) "pgbouncer logins of the release: its precheck's and the smoke checks'"
# Prisma's pooled DATABASE_URL names the app's schema (?schema=): the smoke checks' unqualified
# names resolve there, as the app's do.
psql_admin "$db" -c "CREATE SCHEMA app" -c "CREATE TABLE app.only_in_app_schema (id int)" >/dev/null
mkdir -p "$WORK/smoke-app"
echo 'SELECT count(*) = 0 FROM only_in_app_schema' >"$WORK/smoke-app/app.sql"
run_deployctl release --database "$direct" --pooled-url "$pooled?pgbouncer=true&schema=app" \
    --store "file://$store" --migrations "$WORK/migrations" --smoke-queries "$WORK/smoke-app" \
    --smoke-window 1 --report "$WORK/release.json"
[[ $rc -eq 0 ]] || fail "release with a pooled URL's ?schema=app: $rc $(tail -3 "$WORK/err")"
assert_eq pooled "$(jq -r .smoke.sql_connection "$WORK/release.json")" "smoke through the pooled URL with ?schema="
pass "release runs the SQL smoke checks through the pooled URL (its ?schema= applied)"
