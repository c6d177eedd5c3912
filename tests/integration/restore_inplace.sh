#!/usr/bin/env bash
# Restoring in place, as an operator does after a bad deploy: a migration added, renamed and
# dropped tables and columns and changed data, the application kept writing; the restore brings
# back exactly the snapshot (schema and content), deployctl's own schema survives, and every
# write made since the snapshot is in the pre-restore snapshot. Replacing a database that holds
# tables asks first.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db app)
url=$(db_url "$db")
store=$WORK/store
psql_admin "$db" <<'SQL'
CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL UNIQUE, name text);
CREATE TABLE inventory_items (id serial PRIMARY KEY, item_name text NOT NULL, batch text NOT NULL,
                              quantity integer NOT NULL, created_by text REFERENCES users (id));
CREATE TABLE audit_logs (id bigserial PRIMARY KEY, action text, at timestamptz DEFAULT '2024-01-01');
CREATE INDEX inventory_items_name_batch ON inventory_items (item_name, batch);
INSERT INTO users SELECT 'u' || g, 'u' || g || '@x.test', 'User ' || g FROM generate_series(1, 50) g;
INSERT INTO inventory_items (item_name, batch, quantity, created_by)
SELECT 'item ' || (g % 40), 'B' || (g % 100), g % 17, 'u' || (1 + g % 50) FROM generate_series(1, 20000) g;
INSERT INTO audit_logs (action) SELECT 'create' FROM generate_series(1, 5000);
SELECT lo_from_bytea(555001, 'original large object');
COMMENT ON SCHEMA public IS 'the application';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA deployctl;
CREATE TABLE deployctl.journal (id int, note text);
CREATE PUBLICATION app_changes FOR TABLE users;
SQL
run_deployctl backup --database "$url" --store "$store" --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
fingerprint "$db" >"$WORK/snapshot.fp"
schema_dump "$db" >"$WORK/snapshot.schema"

# A migration, then the application writing on.
psql_admin "$db" <<'SQL'
ALTER TABLE inventory_items RENAME COLUMN batch TO batch_number;
ALTER TABLE inventory_items ADD COLUMN expiry date;
ALTER TABLE users DROP COLUMN name;
DROP TABLE audit_logs;
CREATE TABLE preferences (user_id text REFERENCES users (id), prefs jsonb);
INSERT INTO preferences SELECT id, '{"theme": "dark"}' FROM users;
UPDATE inventory_items SET quantity = quantity * 10 WHERE id % 3 = 0;
DELETE FROM inventory_items WHERE id % 7 = 0;
INSERT INTO users VALUES ('late-user', 'late@x.test');
SELECT lo_put(555001, 0, 'CHANGED');
SELECT lo_from_bytea(555002, 'a new large object');
INSERT INTO deployctl.journal VALUES (1, 'written after the snapshot');
CREATE SCHEMA reporting;
CREATE VIEW reporting.user_emails AS SELECT email FROM public.users;
CREATE VIEW deployctl.user_ids AS SELECT id FROM public.users;
SQL
# Defaults of the database that would break a restore that trusted them (COPY FREEZE is refused
# under repeatable read; nothing can be written under read only).
psql_admin "$db" -c "ALTER DATABASE \"$db\" SET default_transaction_isolation = 'repeatable read'" \
    -c "ALTER DATABASE \"$db\" SET default_transaction_read_only = on"
cmp -s <(fingerprint "$db") "$WORK/snapshot.fp" && fail "the migration changed nothing the fingerprint sees"

# Without --yes and without a terminal: refused, nothing changed.
fingerprint "$db" >"$WORK/migrated.fp"
run_deployctl restore "$id" --database "$url" --store "$store"
[[ $rc -eq 1 ]] || fail "restore without --yes went ahead (rc $rc)"
grep -q "holds .* objects (tables, views, functions, large objects) and restoring would replace them: confirm on a terminal or pass --yes" "$WORK/err" ||
    fail "unclear refusal: $(cat "$WORK/err")"
diff -q <(fingerprint "$db") "$WORK/migrated.fp" >/dev/null || fail "a refused restore changed the database"
# On a terminal, "n" refuses as well.
printf 'n\n' | script -qec "'$DEPLOYCTL' restore '$id' --database '$url' --store '$store'" "$WORK/tty-no.log" >/dev/null || true
grep -q "Replace its contents with snapshot $id" "$WORK/tty-no.log" || fail "no question on a terminal: $(cat -v "$WORK/tty-no.log")"
diff -q <(fingerprint "$db") "$WORK/migrated.fp" >/dev/null || fail "answering n changed the database"
pass "replacing a database with tables needs a yes (--yes, or on a terminal)"

# On a terminal, "y": the restore runs.
printf 'y\n' | script -qec "'$DEPLOYCTL' restore '$id' --database '$url' --store '$store' --json" "$WORK/tty-yes.log" >/dev/null || true
grep -q '"safety_snapshot":"' "$WORK/tty-yes.log" || fail "restore after y did not finish: $(cat -v "$WORK/tty-yes.log")"
safety=$(grep -o '"safety_snapshot":"[^"]*"' "$WORK/tty-yes.log" | cut -d'"' -f4)
diff -u "$WORK/snapshot.schema" <(schema_dump "$db") >"$WORK/schema.diff" ||
    fail "schema differs from the snapshot after restoring in place: $(head -40 "$WORK/schema.diff")"
diff -u "$WORK/snapshot.fp" <(fingerprint "$db") >"$WORK/fp.diff" ||
    fail "content differs from the snapshot after restoring in place: $(head -40 "$WORK/fp.diff")"
assert_eq 1 "$(psql_value "$db" "SELECT count(*) FROM deployctl.journal")" "deployctl's own schema kept"
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = 555002")" "a large object created later"
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM pg_namespace WHERE nspname = 'reporting'")" "a schema created later"
grep -q "schema reporting is not in the snapshot: the restore drops it" "$WORK/tty-yes.log" ||
    fail "the dropped schema was not named: $(cat -v "$WORK/tty-yes.log")"
grep -q "depend on objects the restore replaces and are dropped with them: .*deployctl.user_ids" "$WORK/tty-yes.log" ||
    fail "the view in deployctl's schema dropped by CASCADE was not named: $(cat -v "$WORK/tty-yes.log")"
assert_eq app_changes "$(psql_value "$db" "SELECT string_agg(pubname, ',') FROM pg_publication")" "the publication"
pass "restored in place under read-only, repeatable-read defaults: schema and content are the snapshot's again (tables, columns, data, large objects, publications; later schemas dropped and named)"

# Nothing written since the snapshot is lost: it is all in the pre-restore snapshot.
[[ $safety =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$ ]] || fail "no pre-restore snapshot id: '$safety'"
run_deployctl snapshots --store "$store" --json
assert_eq pre-restore "$(jq -r --arg id "$safety" '.[] | select(.id == $id) | .tag' "$WORK/out")" "the safety snapshot's tag"
copy="${db}_before"
drop_at_exit "$copy"
run_deployctl restore "$safety" --database "$url" --target "$(db_url "$copy")" --store "$store"
[[ $rc -eq 0 ]] || fail "restoring the pre-restore snapshot failed: $(cat "$WORK/err")"
assert_eq "late@x.test" "$(psql_value "$copy" "SELECT email FROM users WHERE id = 'late-user'")" "the late write"
assert_eq 1 "$(psql_value "$copy" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'inventory_items' AND column_name = 'batch_number'")" \
    "the migrated schema"
assert_eq "CHANGED" "$(psql_value "$copy" "SELECT convert_from(lo_get(555001, 0, 7), 'UTF8')")" "the changed large object"
diff -q <(fingerprint "$copy") "$WORK/migrated.fp" >/dev/null || fail "the pre-restore snapshot is not the database as it was"
pass "the pre-restore snapshot $safety holds the database exactly as it was before the restore"

# "latest" is the snapshot taken by the backup, never the newer pre-restore one: restoring
# latest again must not bring back what the first restore replaced.
run_deployctl restore latest --database "$url" --store "$store" --yes --no-safety-snapshot --json
[[ $rc -eq 0 ]] || fail "restore latest failed: $(cat "$WORK/err")"
assert_eq "$id" "$(jq -r .id "$WORK/out")" "the snapshot 'latest' restored"
grep -q "latest snapshot of $db: $id" "$WORK/err" || fail "latest's resolution not logged: $(cat "$WORK/err")"
pass "latest skips pre-restore snapshots"

# A database without a single table still holds things a restore would drop: it asks too.
fns="${db}_functions"
drop_at_exit "$fns"
psql_admin postgres -c "CREATE DATABASE \"$fns\"" >/dev/null
psql_admin "$fns" -c "CREATE SCHEMA etl; CREATE FUNCTION etl.transform() RETURNS int LANGUAGE sql AS 'SELECT 1'" >/dev/null
run_deployctl restore "$id" --database "$url" --target "$(db_url "$fns")" --store "$store"
[[ $rc -eq 1 ]] && grep -q "holds 1 objects" "$WORK/err" || fail "a database of functions was replaced without a yes: $(cat "$WORK/err")"
assert_eq 1 "$(psql_value "$fns" "SELECT etl.transform()")" "the function after a refused restore"
pass "a database holding only functions needs a yes too"
