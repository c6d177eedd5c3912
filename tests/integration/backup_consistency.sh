#!/usr/bin/env bash
# Consistency under concurrent writes: while pgbench moves amounts between two tables in
# transactions, backups read the tables with several workers at different moments; every
# snapshot, loaded with psql, still has the invariant (the total is unchanged).
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
rows=200000
psql_admin "$src" <<SQL
CREATE TABLE accounts_a (id int PRIMARY KEY, bal bigint NOT NULL);
CREATE TABLE accounts_b (id int PRIMARY KEY, bal bigint NOT NULL);
INSERT INTO accounts_a SELECT g, 100 FROM generate_series(1, $rows) g;
INSERT INTO accounts_b SELECT g, 100 FROM generate_series(1, $rows) g;
VACUUM ANALYZE;
SQL
total=$((rows * 200))

cat >"$WORK/transfer.sql" <<'SQL'
\set x random(1, 200000)
\set y random(1, 200000)
\set amt random(1, 50)
BEGIN;
UPDATE accounts_a SET bal = bal - :amt WHERE id = :x;
UPDATE accounts_b SET bal = bal + :amt WHERE id = :y;
COMMIT;
SQL
"$DC_PG_BIN/pgbench" -n -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -c 4 -T 120 \
    -f "$WORK/transfer.sql" "$src" >"$WORK/pgbench.log" 2>&1 &
writer=$!
on_exit "kill $writer 2>/dev/null; wait $writer 2>/dev/null"
sleep 1
kill -0 "$writer" || fail "the writer did not start: $(cat "$WORK/pgbench.log")"

store=$WORK/store
ids=()
for i in 1 2 3; do
    # Small ranges: each table is read in pieces by two workers, at different times.
    run_deployctl backup --database "$(db_url "$src")" --store "$store" --jobs 2 \
        --split-size 256KiB --chunk-size 256KiB --quiet
    [[ $rc -eq 0 ]] || fail "backup $i failed under load: $(cat "$WORK/err")"
    ids+=("$(tail -n 1 "$WORK/out")")
done
kill "$writer"
wait "$writer" 2>/dev/null || true
commits=$(psql_value "$src" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
[[ $commits -gt 1000 ]] || fail "the writer made too few transactions ($commits) for this test to mean anything"
pass "3 backups taken while the writer committed $commits transactions"

moved=0
for id in "${ids[@]}"; do
    snap=$store/$src/$id
    [[ $(jq '[.tables[] | select(.name | startswith("accounts")) | .chunks | length] | add' "$snap/manifest.json") -ge 4 ]] ||
        fail "the accounts tables were not read in several ranges"
    dst=$(new_db "load_${id//[^a-z0-9]/_}")
    PATH="$DC_PG_BIN:$PATH" "$HARNESS/load_with_psql.sh" "$snap" -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$dst"
    got=$(psql_value "$dst" "SELECT (SELECT sum(bal) FROM accounts_a) + (SELECT sum(bal) FROM accounts_b)")
    assert_eq "$total" "$got" "total of snapshot $id"
    assert_eq "$rows|$rows" "$(psql_value "$dst" "SELECT (SELECT count(*) FROM accounts_a), (SELECT count(*) FROM accounts_b)")" "row counts"
    a=$(psql_value "$dst" "SELECT sum(bal) FROM accounts_a")
    [[ $a -ne $((rows * 100)) ]] && moved=$((moved + 1))
done
[[ $moved -gt 0 ]] || fail "no snapshot saw any transfer: the test did not overlap the writes"
pass "every snapshot keeps the invariant (sum = $total), $moved of ${#ids[@]} saw transfers in flight"
