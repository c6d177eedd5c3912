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
