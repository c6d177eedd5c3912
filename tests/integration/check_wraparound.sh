#!/usr/bin/env bash
# `deployctl check` warns about a table close to its anti-wraparound autovacuum (age of
# relfrozenxid above 90% of the freeze age autovacuum uses for it), which would not give way to
# a migration's ALTER. Nothing global is lowered: one table's own autovacuum_freeze_max_age
# storage parameter (its minimum, 100000; autovacuum honours a per-table value below the
# server's) and 92000 transaction IDs consumed (subtransactions of one DO block) bring it to 92%,
# short of the 100% at which autovacuum would freeze it under the test.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/check_lib.sh"

psql_admin "$db" -c "CREATE TABLE hot (id int) WITH (autovacuum_freeze_max_age = 100000)" \
    -c "CREATE TABLE cold (id int)" -c "CREATE TABLE burn (id int)" >/dev/null
check
[[ $(result wraparound) == "ok|no table within 90% of its autovacuum freeze age|" ]] || fail "fresh tables: $(result wraparound)"
pass "fresh tables are far from their freeze age"

psql_admin "$db" -c "DO \$\$ BEGIN FOR i IN 1..92000 LOOP BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END \$\$" >/dev/null
age=$(psql_value "$db" "SELECT age(relfrozenxid) FROM pg_class WHERE oid = 'hot'::regclass")
((age > 90000 && age < 100000)) || fail "hot's age is $age, not between 90% and 100% of 100000"
check
[[ $rc -eq 0 ]] || fail "a warning must not fail the check (rc $rc)"
r=$(result wraparound)
[[ $r == "warning|1 table close to an anti-wraparound autovacuum, which does not give way to DDL"*"|hot: transaction ID age "*" is 9"?"% of the 100000 at which autovacuum must freeze it" ]] ||
    fail "hot at $age: $r"
pass "a table at $age of its own 100000 freeze age warns, named; tables under the server's limit do not"

psql_admin "$db" -c "VACUUM (FREEZE) hot" >/dev/null
check
[[ $(result wraparound) == "ok|"* ]] || fail "after VACUUM (FREEZE): $(result wraparound)"
pass "after VACUUM (FREEZE) it is ok again"
