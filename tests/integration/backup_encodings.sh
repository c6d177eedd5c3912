#!/usr/bin/env bash
# Databases that are not UTF-8: a LATIN1 database round-trips exactly (names and text travel as
# UTF-8 in the snapshot, converted by the server both ways); a SQL_ASCII database's bytes pass
# through untouched; a name JSON cannot hold is refused with a clear error, never dropped.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

make_db() { # name encoding
    local name="t_${TEST_NAME}_$1"
    psql_admin postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"
    psql_admin postgres -c "CREATE DATABASE $name TEMPLATE template0 ENCODING '$2' LC_COLLATE 'C' LC_CTYPE 'C'"
    drop_at_exit "$name"
    echo "$name"
}

roundtrip() { # src dst
    run_deployctl backup --database "$(db_url "$1")" --store "$WORK/store" --quiet
    [[ $rc -eq 0 ]] || fail "backup of $1 failed: $(cat "$WORK/err")"
    local snap=$WORK/store/$1/$(tail -n 1 "$WORK/out")
    "$HARNESS/check_archive.sh" "$snap" >/dev/null || fail "$1: archive does not match its manifest"
    PATH="$DC_PG_BIN:$PATH" "$HARNESS/load_with_psql.sh" "$snap" -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$2"
    diff <(schema_dump "$1") <(schema_dump "$2") >/dev/null || fail "$1: schema differs after loading"
    diff <(fingerprint "$1") <(fingerprint "$2") >/dev/null || fail "$1: content differs after loading"
    echo "$snap"
}

latin1=$(make_db latin1 LATIN1)
latin1_copy=$(make_db latin1_copy LATIN1)
PGCLIENTENCODING=UTF8 psql_admin "$latin1" <<'SQL'
CREATE TABLE "café" ("señal" text, "größe" int);
INSERT INTO "café" VALUES ('ñandú', 1), ('Ærøskøbing', 2), (E'tab\there', 3);
SQL
snap=$(roundtrip "$latin1" "$latin1_copy")
assert_eq UTF8 "$(jq -r .encoding "$snap/manifest.json")" "COPY text encoding of a LATIN1 database"
assert_eq 'café señal,größe' "$(jq -r '.tables[0] | .name + " " + (.columns | join(","))' "$snap/manifest.json")" \
    "LATIN1 names in the manifest"
assert_eq "ñandú" "$(PGCLIENTENCODING=UTF8 psql_value "$latin1_copy" "SELECT \"señal\" FROM \"café\" WHERE \"größe\" = 1")" \
    "LATIN1 text after the round trip"
pass "LATIN1 database round-trips"

ascii=$(make_db sqlascii SQL_ASCII)
ascii_copy=$(make_db sqlascii_copy SQL_ASCII)
psql_admin "$ascii" -c "CREATE TABLE t (b text)"
printf 'INSERT INTO t VALUES (E%s);\n' "'\\xff\\xfe raw bytes'" | psql_admin "$ascii"
snap=$(roundtrip "$ascii" "$ascii_copy")
assert_eq SQL_ASCII "$(jq -r .encoding "$snap/manifest.json")" "COPY text encoding of a SQL_ASCII database"
pass "SQL_ASCII bytes pass through"

printf 'CREATE TABLE "caf\xe9" (x int);\n' | PGCLIENTENCODING=SQL_ASCII psql_admin "$ascii"
run_deployctl backup --database "$(db_url "$ascii")" --store "$WORK/store2" --quiet
[[ $rc -eq 1 ]] || fail "a non-UTF-8 table name was not refused (rc $rc)"
grep -q "not valid UTF-8" "$WORK/err" || fail "unclear error: $(cat "$WORK/err")"
[[ -z $(find "$WORK/store2" -name manifest.json) ]] || fail "a snapshot was committed"
pass "a name JSON cannot hold is refused: $(cat "$WORK/err")"
