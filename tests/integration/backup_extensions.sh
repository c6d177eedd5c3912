#!/usr/bin/env bash
# Extension configuration tables (pg_extension_config_dump): CREATE EXTENSION in pre-data makes
# the extension's own rows; the snapshot must hold the rows users added (the extension's filter)
# and its configuration sequences, and nothing else of the extension. A small test extension is
# installed into the server's extension directory for this (root only; skipped otherwise).
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

extdir=$("$DC_PG_BIN/pg_config" --sharedir)/extension
[[ -w $extdir ]] || skip "cannot install a test extension into $extdir (not root?)"
name=deployctl_test_ext_$$
cat >"$extdir/$name.control" <<CONTROL
comment = 'deployctl test: an extension with configuration tables'
default_version = '1.0'
relocatable = false
schema = dctest_ext
superuser = true
CONTROL
cat >"$extdir/$name--1.0.sql" <<'SQL'
CREATE TABLE dctest_ext.settings (name text PRIMARY KEY, value text, standard boolean NOT NULL DEFAULT false);
INSERT INTO dctest_ext.settings VALUES ('builtin', 'shipped', true);
SELECT pg_catalog.pg_extension_config_dump('dctest_ext.settings', 'WHERE NOT standard');
CREATE SEQUENCE dctest_ext.ids;
SELECT pg_catalog.pg_extension_config_dump('dctest_ext.ids', '');
CREATE TABLE dctest_ext.internal (x int);
INSERT INTO dctest_ext.internal VALUES (1);
SQL
on_exit "rm -f '$extdir/$name.control' '$extdir/$name--1.0.sql'"

src=$(new_db src)
dst=$(new_db dst)
psql_admin "$src" <<SQL
CREATE EXTENSION $name;
INSERT INTO dctest_ext.settings VALUES ('mine', 'added by a user', false);
SELECT nextval('dctest_ext.ids') + nextval('dctest_ext.ids') AS advanced \gset
CREATE TABLE public.app (id int);
INSERT INTO public.app VALUES (1), (2);
SQL

run_deployctl backup --database "$(db_url "$src")" --store "$WORK/store" --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
snap=$WORK/store/$src/$(tail -n 1 "$WORK/out")
m=$snap/manifest.json
assert_eq 1 "$(jq '.tables[] | select(.schema == "dctest_ext" and .name == "settings") | .rows' "$m")" \
    "configuration table rows (only those the extension did not create)"
assert_eq 0 "$(jq '[.tables[] | select(.name == "internal")] | length' "$m")" "a non-configuration extension table"
"$HARNESS/check_archive.sh" "$snap" >/dev/null || fail "archive does not match its manifest"
grep -q "setval('\"dctest_ext\".\"ids\"', 2, true)" <(tar -xOf "$snap/snapshot.tar" schema/post-data.sql) ||
    fail "the configuration sequence's value is missing"

PATH="$DC_PG_BIN:$PATH" "$HARNESS/load_with_psql.sh" "$snap" -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$dst"
diff <(fingerprint "$src") <(fingerprint "$dst") >"$WORK/fp.diff" || fail "content differs: $(cat "$WORK/fp.diff")"
assert_eq "builtin,mine" "$(psql_value "$dst" "SELECT string_agg(name, ',' ORDER BY name) FROM dctest_ext.settings")" \
    "configuration rows after loading"
pass "extension configuration tables and sequences round-trip, other extension tables are left to the extension"
