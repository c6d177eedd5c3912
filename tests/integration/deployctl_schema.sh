#!/usr/bin/env bash
# deployctl's own schema (`deployctl`, where `release` mirrors its journal) lives in the target
# database but is never the application's: a snapshot does not hold it (no table in the manifest,
# no trace in the schema scripts), a restore in place leaves it as it is (journal rows written
# after the snapshot included: the release that restores must still find its journal), its
# tables alone do not make a database "hold data", and a deep verify is not thrown off by it.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
store=$WORK/store
psql_admin "$db" <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers (id),
                     total numeric(10, 2) NOT NULL);
INSERT INTO customers (email) SELECT 'c' || g || '@shop.test' FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 200, g * 1.25 FROM generate_series(1, 3000) g;
CREATE SCHEMA deployctl;
CREATE TABLE deployctl.journal (seq bigserial PRIMARY KEY, release_id text NOT NULL,
                                phase text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE INDEX journal_release ON deployctl.journal (release_id);
CREATE TABLE deployctl.releases (release_id text PRIMARY KEY, outcome text);
INSERT INTO deployctl.releases VALUES ('r1', NULL);
INSERT INTO deployctl.journal (release_id, phase) VALUES ('r1', 'precheck'), ('r1', 'pre-release'),
                                                         ('r1', 'backup');
SQL

# The backup: nothing of deployctl's in the snapshot.
run_deployctl backup --database "$url" --store "$store" --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
m=$(snapshot_dir "$store" "$db" "$id")/manifest.json
snap=$(dirname "$m")/snapshot.tar
assert_eq "public.customers,public.orders" "$(jq -r '[.tables[] | .schema + "." + .name] | sort | join(",")' "$m")" \
    "the snapshot's tables"
assert_eq 0 "$(jq '[.schemas[] | select(. == "deployctl")] | length' "$m")" "deployctl in the manifest's schemas"
tar -xOf "$snap" schema/pre-data.sql >"$WORK/pre-data.sql"
tar -xOf "$snap" schema/post-data.sql >"$WORK/post-data.sql"
grep -q "CREATE TABLE public.orders" "$WORK/pre-data.sql" || fail "pre-data has no app table: $(head -c 600 "$WORK/pre-data.sql")"
# (the word alone is in comments: "read under the backup's snapshot (deployctl)")
grep -n -i -E '(deployctl\.|schema:? "?deployctl\b|journal)' "$WORK/pre-data.sql" "$WORK/post-data.sql" >"$WORK/traces" &&
    fail "the schema scripts mention deployctl's schema: $(head -5 "$WORK/traces")"
pass "snapshot $id holds the app's tables and nothing of schema deployctl (manifest, pre-data, post-data)"
fingerprint "$db" >"$WORK/snapshot.fp"

# The release goes on: journal rows after the snapshot, the app changes (a migration, writes).
psql_admin "$db" <<'SQL'
INSERT INTO deployctl.journal (release_id, phase) VALUES ('r1', 'migrate'), ('r1', 'rollback');
UPDATE deployctl.releases SET outcome = 'rolling-back';
ALTER TABLE orders ADD COLUMN coupon text;
UPDATE orders SET total = total * 2 WHERE id % 5 = 0;
DELETE FROM customers WHERE id > 190 AND id NOT IN (SELECT customer_id FROM orders);
INSERT INTO orders (customer_id, total) VALUES (1, 99.99);
CREATE TABLE loyalty (customer_id int, points int);
SQL
journal="SELECT string_agg(seq || ':' || release_id || ':' || phase, ',' ORDER BY seq) FROM deployctl.journal"
before_journal=$(psql_value "$db" "$journal")
assert_eq "1:r1:precheck,2:r1:pre-release,3:r1:backup,4:r1:migrate,5:r1:rollback" "$before_journal" "the journal before restoring"

# Restore in place: the app is the snapshot's again, deployctl's schema is untouched.
run_deployctl restore "$id" --database "$url" --store "$store" --yes --json
[[ $rc -eq 0 ]] || fail "restore in place failed: $(cat "$WORK/err")"
safety=$(jq -r .safety_snapshot "$WORK/out")
[[ $safety =~ ^[0-9]{8}T[0-9]{6}Z- ]] || fail "the app's tables did not call for a pre-restore snapshot: $(cat "$WORK/out")"
diff -u "$WORK/snapshot.fp" <(fingerprint "$db") >"$WORK/fp.diff" ||
    fail "the app's tables are not the snapshot's after the restore: $(head -20 "$WORK/fp.diff")"
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM pg_class WHERE relname = 'loyalty'")" "a table created after the snapshot"
assert_eq "$before_journal" "$(psql_value "$db" "$journal")" "the journal after restoring (every row, those after the snapshot too)"
assert_eq "rolling-back" "$(psql_value "$db" "SELECT outcome FROM deployctl.releases")" "a journal row updated after the snapshot"
assert_eq 6 "$(psql_value "$db" "INSERT INTO deployctl.journal (release_id, phase) VALUES ('r1', 'restored') RETURNING seq")" \
    "the journal's sequence goes on (not reset)"
assert_eq 1 "$(psql_value "$db" "SELECT count(*) FROM pg_indexes WHERE schemaname = 'deployctl' AND indexname = 'journal_release'")" \
    "the journal's index"
grep -q "schema deployctl" "$WORK/err" && fail "the restore talked about dropping deployctl's schema: $(grep "schema deployctl" "$WORK/err")"
pass "restored in place: the app's tables are the snapshot's, every journal row (5, 2 of them written after the snapshot) and the journal's sequence are kept"

# The release writes its journal while the restore runs: deployctl's tables are not locked by
# the restore's transaction. The restore pauses before its COMMIT (a fault point); meanwhile
# another session writes and reads the journal within a short lock_timeout.
psql_admin "$db" -c "CREATE TABLE marker_after (x int)"
DEPLOYCTL_FAULT=restore-before-commit:sleep=6 "$DEPLOYCTL" restore "$id" --database "$url" \
    --store "$store" --yes --no-safety-snapshot >"$WORK/bg.out" 2>"$WORK/bg.err" &
bg=$!
on_exit "kill $bg 2>/dev/null"
paused=0
for _ in $(seq 1 300); do # the restore itself first: up to 30 s on a busy machine
    paused=$(psql_value "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '%restore%'
        AND state = 'idle in transaction' AND now() - state_change > interval '1 second'")
    [[ $paused -eq 1 ]] && break
    sleep 0.1
done
[[ $paused -eq 1 ]] || fail "the restore never paused before its commit: $(cat "$WORK/bg.err")"
assert_eq 1 "$(psql_value "$db" "SELECT count(*) FROM pg_class WHERE relname = 'marker_after'")" "the restore not yet committed"
PGOPTIONS="-c lock_timeout=2s -c statement_timeout=3s" psql_admin "$db" \
    -c "INSERT INTO deployctl.journal (release_id, phase) VALUES ('r1', 'during-restore')" \
    -c "UPDATE deployctl.releases SET outcome = 'restoring'" >/dev/null ||
    fail "the journal could not be written while the restore ran"
wait "$bg" || fail "the restore with a pause failed: $(cat "$WORK/bg.err")"
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM pg_class WHERE relname = 'marker_after'")" "a table made before the 2nd restore"
assert_eq "$before_journal,6:r1:restored,7:r1:during-restore" "$(psql_value "$db" "$journal")" "the journal written during the restore"
assert_eq "restoring" "$(psql_value "$db" "SELECT outcome FROM deployctl.releases")" "a journal row updated during the restore"
diff -u "$WORK/snapshot.fp" <(fingerprint "$db") >"$WORK/fp3.diff" ||
    fail "the app's tables are not the snapshot's after the second restore: $(head -20 "$WORK/fp3.diff")"
pass "the journal is written and read while an in-place restore holds its transaction open, and kept by its commit"

m2=$(snapshot_dir "$store" "$db" "$safety")/manifest.json
assert_eq "public.customers,public.loyalty,public.orders" "$(jq -r '[.tables[] | .schema + "." + .name] | sort | join(",")' "$m2")" \
    "the pre-restore snapshot's tables"
pass "the pre-restore snapshot $safety holds the app as it was, without deployctl's schema"

# A database holding only deployctl's schema holds no data of the user's: restoring into it
# asks nothing and takes no pre-restore snapshot; --jobs (empty databases only) accepts it; the
# journal stays.
only=$(new_db journal_only)
psql_admin "$only" <<'SQL'
CREATE SCHEMA deployctl;
CREATE TABLE deployctl.journal (seq bigserial PRIMARY KEY, release_id text, phase text);
INSERT INTO deployctl.journal (release_id, phase) VALUES ('r0', 'precheck'), ('r0', 'backup');
SQL
run_deployctl restore "$id" --database "$url" --target "$(db_url "$only")" --store "$store" --jobs 2 --json
[[ $rc -eq 0 ]] || fail "restoring into a database holding only deployctl's schema failed: $(cat "$WORK/err")"
assert_eq "null" "$(jq -r '.safety_snapshot // "null"' "$WORK/out")" "a pre-restore snapshot of a database without user data"
diff -u "$WORK/snapshot.fp" <(fingerprint "$only") >"$WORK/fp2.diff" ||
    fail "the restored copy differs from the snapshot: $(head -20 "$WORK/fp2.diff")"
assert_eq "1:r0:precheck,2:r0:backup" "$(psql_value "$only" "$journal")" "the journal of the database restored into"
pass "a database with only deployctl's schema counts as empty (no question, --jobs allowed) and keeps its journal"

# verify --deep restores into a scratch database and reads the tables back: unaffected.
run_deployctl verify "$id" --deep --store "$store" --database "$url" --json
[[ $rc -eq 0 ]] || fail "verify --deep failed: $(cat "$WORK/err")"
assert_eq "true|true" "$(jq -r '"\(.ok)|\(.deep)"' "$WORK/out")" "verify --deep's result"
pass "verify --deep passes on a snapshot of a database with deployctl's schema"
