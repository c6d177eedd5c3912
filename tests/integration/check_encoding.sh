#!/usr/bin/env bash
# `deployctl check` reports in UTF-8 whatever the database's encoding and the client's
# environment: in a LATIN1 database, a lock on table "café" is named correctly in the text and
# in --json (where invalid UTF-8 used to make jansson drop the item silently).
source "$(dirname "$0")/../harness/lib.sh"

db="t_${TEST_NAME}_latin1"
psql_admin postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
psql_admin postgres -c "CREATE DATABASE \"$db\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
drop_at_exit "$db"
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
psql_admin "$db" -c 'CREATE TABLE "café" (id int)' >/dev/null

app="dc_${TEST_NAME}_holder"
PGAPPNAME=$app psql_admin "$db" -c 'BEGIN; LOCK TABLE "café" IN ACCESS SHARE MODE; SELECT pg_sleep(60); COMMIT;' >/dev/null 2>&1 &
holder=$!
on_exit "kill $holder 2>/dev/null; psql_value postgres \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'\" >/dev/null"
for _ in $(seq 1 100); do
    [[ $(psql_value postgres "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND xact_start IS NOT NULL") == 1 ]] && break
    sleep 0.1
done
sleep 1.2

# The client's environment names no encoding: libpq would use the database's, LATIN1.
unset PGCLIENTENCODING
run_deployctl check --database "$url" --store "$WORK/store" --migrations "$WORK/migrations" --max-transaction-age 1s --json
assert_eq 4 "$rc" "long lock holder: exit"
r=$(jq -r '.checks[] | select(.name == "locks") | "\(.status)|\(.items | join(";"))"' "$WORK/out")
[[ $r == "failed|"*'has held locks on "café" for '* ]] || fail "the item naming \"café\" is missing or garbled: $r"
pass "--json names table \"café\" of a LATIN1 database in UTF-8"

run_deployctl check --database "$url" --store "$WORK/store" --migrations "$WORK/migrations" --max-transaction-age 1s
assert_eq 4 "$rc" "text: exit"
grep -qF 'has held locks on "café" for ' "$WORK/out" || fail "the text report does not name \"café\" in UTF-8: $(cat "$WORK/out")"
iconv -f UTF-8 -t UTF-8 "$WORK/out" >/dev/null || fail "the text report is not UTF-8"
pass "the text report is UTF-8 too"
