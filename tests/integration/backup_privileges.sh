#!/usr/bin/env bash
# Backups by a role that is not a superuser, as in production: with pg_read_all_data and
# BYPASSRLS every row is read; without BYPASSRLS, a table with row-level security makes the
# backup fail with a clear error instead of silently missing rows.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
role=dc_reader_$$
password=reader-$RANDOM-pw
psql_admin postgres -c "CREATE ROLE $role LOGIN PASSWORD '$password' IN ROLE pg_read_all_data"
on_exit "psql_admin postgres -c 'DROP ROLE IF EXISTS $role' >/dev/null 2>&1"
psql_admin "$src" <<'SQL'
CREATE TABLE secrets (id int, owner_name text, secret text);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_alice ON secrets USING (owner_name = current_user);
INSERT INTO secrets VALUES (1, 'alice', 's1'), (2, 'bob', 's2');
CREATE TABLE plain (id int);
INSERT INTO plain SELECT generate_series(1, 100);
SQL
url="postgresql://$role:$password@127.0.0.1:$DC_PG_PORT/$src"

run_deployctl backup --database "$url" --store "$WORK/store" --quiet
[[ $rc -eq 1 ]] || fail "a role subject to row-level security backed up anyway (rc $rc)"
grep -q "row-level security" "$WORK/err" && grep -q "secrets" "$WORK/err" ||
    fail "unclear error: $(cat "$WORK/err")"
if grep -qF "$password" "$WORK/err"; then fail "the password leaked: $(cat "$WORK/err")"; fi
[[ -z $(find "$WORK/store" -name manifest.json) ]] || fail "a snapshot was committed"
pass "row-level security refused clearly: $(cat "$WORK/err")"

psql_admin postgres -c "ALTER ROLE $role BYPASSRLS"
run_deployctl backup --database "$url" --store "$WORK/store" --quiet
[[ $rc -eq 0 ]] || fail "backup by a non-superuser with BYPASSRLS failed: $(cat "$WORK/err")"
m=$(find "$WORK/store" -name manifest.json)
assert_eq 2 "$(jq '.tables[] | select(.name == "secrets") | .rows' "$m")" "rows of the RLS table"
assert_eq 100 "$(jq '.tables[] | select(.name == "plain") | .rows' "$m")" "rows of a plain table"
"$HARNESS/check_archive.sh" "$(dirname "$m")" >/dev/null || fail "archive does not match its manifest"
pass "a non-superuser with pg_read_all_data and BYPASSRLS backs up every row"
