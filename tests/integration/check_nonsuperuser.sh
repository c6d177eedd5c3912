#!/usr/bin/env bash
# `deployctl check` as a role that is not a superuser and lacks pg_read_all_stats, as in
# production: another role's sessions show no state, start or query in pg_stat_activity, yet
# the check still sees (through pg_locks) that one of them holds a table lock and says that its
# details are hidden; it counts them against the connection limits; it does not call another
# role's running CREATE INDEX CONCURRENTLY a failed build; and the privileges check ignores the
# tables and views an extension owns.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

checker="dc_${TEST_NAME}_checker"
other="dc_${TEST_NAME}_other"
new_role "$checker" login
pw_checker=$role_password
new_role "$other" login
pw_other=$role_password
psql_admin "$db" -c "CREATE TABLE items (id int PRIMARY KEY, name text)" \
    -c "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g" \
    -c "ALTER TABLE items OWNER TO $checker" -c "GRANT CREATE ON SCHEMA public TO $checker" \
    -c "GRANT SELECT ON items TO $other" -c "GRANT CREATE ON DATABASE $db TO $other" >/dev/null
check_url="postgresql://$checker:$pw_checker@127.0.0.1:$DC_PG_PORT/$db"
other_psql() { # db args...: psql as the other role
    local d=$1
    shift
    PGPASSWORD=$pw_other "$DC_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DC_PG_PORT" -U "$other" -d "$d" "$@"
}

# The other role reads the table in a long transaction: it holds an ACCESS SHARE lock.
app="dc_${TEST_NAME}_holder"
start_session "$app" "BEGIN; SELECT count(*) FROM items; SELECT pg_sleep(60); COMMIT;" other_psql
pid=$(session_pid "$app")
sleep 1.2
psql_admin postgres -c "ALTER DATABASE $db CONNECTION LIMIT 5" >/dev/null
check --max-transaction-age 1s
r=$(result locks)
[[ $r == "warning|"* || $r == "failed|"* ]] || fail "another role's lock holder is not reported: $r"
[[ $r == *"pid $pid (user $other: another role; its age, state and query are hidden, details need pg_read_all_stats) holds locks on items"* ]] ||
    fail "the hidden holder is not named plainly: $r"
pass "another role's lock holder is reported by pid $pid, saying its details are hidden"

# Its session counts against the database's CONNECTION LIMIT: it and the check's own.
r=$(result connections)
used=$(sed -E 's/^[a-z]+\|([0-9]+) of 5 connections in use under the database.*/\1/' <<<"$r")
[[ $used =~ ^[0-9]+$ && $used -ge 2 ]] || fail "another role's session is not counted: $r"
pass "another role's sessions count against the connection limit ($used of 5 in use)"
stop_session "$app"
psql_admin postgres -c "ALTER DATABASE $db CONNECTION LIMIT -1" >/dev/null

# The other role builds an index concurrently, slowly (0.2 s a row): it is INVALID while it
# builds, and the progress view hides it from the checker.
other_psql "$db" -c "CREATE SCHEMA other_s" \
    -c "CREATE TABLE other_s.slow_t AS SELECT g AS id FROM generate_series(1, 300) g" \
    -c "CREATE FUNCTION other_s.slow(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(0.2); RETURN \$1; END'" >/dev/null
app="dc_${TEST_NAME}_builder"
start_session "$app" "CREATE INDEX CONCURRENTLY slow_idx ON other_s.slow_t (other_s.slow(id))" other_psql
for _ in $(seq 1 100); do
    [[ $(psql_value "$db" "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'slow_idx' AND NOT i.indisvalid") == 1 ]] && break
    sleep 0.1
done
check
r=$(result invalid-indexes)
[[ $r == "ok|none|" ]] || fail "a running build of another role is reported as failed: $r"
stop_session "$app"
for _ in $(seq 1 100); do
    [[ $(psql_value postgres "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app'") == 0 ]] && break
    sleep 0.1
done
check
r=$(result invalid-indexes)
[[ $r == "warning|1 INVALID index"*"other_s.slow_idx on other_s.slow_t" ]] || fail "the interrupted build is not reported: $r"
pass "another role's running concurrent build is not reported; once interrupted, it is"

# An extension's views belong to the extension's owner: not the checker's business.
psql_admin "$db" -c "CREATE EXTENSION pg_buffercache" >/dev/null 2>&1 || skip "no pg_buffercache extension"
check
r=$(result privileges)
[[ $r == "ok|no migration is pending; $checker may use schema public and take advisory locks|" ]] || fail "extension-owned objects fail the privileges check: $r"
pass "the privileges check ignores the relations an extension owns"
