#!/usr/bin/env bash
# What a failed migration leaves in _prisma_migrations.logs: always valid UTF-8 (the statement
# excerpt is never cut inside a character), with secrets masked; a file that is not UTF-8 is
# refused before anything runs, as Prisma refuses it.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"
logs_of() { q "SELECT logs FROM _prisma_migrations WHERE migration_name = '$1' AND rolled_back_at IS NULL"; }

add 20240101000000_init "CREATE TABLE items (id int PRIMARY KEY, note text);"
migrate deploy
[[ $rc -eq 0 ]] || fail "deploy: $(cat "$WORK/err")"

# The excerpt is the statement's first 99 bytes: here the 99th is the first byte of an "é".
prefix="INSERT INTO nothere VALUES ('"
stmt="$prefix$(printf 'a%.0s' $(seq 1 $((98 - ${#prefix}))))éééééé')"
add 20240102000000_accents "$stmt;"
migrate deploy
[[ $rc -eq 1 ]] || fail "a failing migration: rc $rc: $(cat "$WORK/err")"
grep -q "recording the error in logs failed" "$WORK/err" && fail "the failure was not recorded: $(cat "$WORK/err")"
logs=$(logs_of 20240102000000_accents)
[[ $logs == *'relation "nothere" does not exist'* ]] || fail "logs does not hold the error: '$logs'"
[[ $logs == *"aaa..."* ]] || fail "the excerpt was not cut before the split character: '$logs'"
pass "a failure whose excerpt ends inside a UTF-8 character is recorded in logs"
migrate resolve --rolled-back 20240102000000_accents
rm -r "${dir:?}/20240102000000_accents"

# Secrets: a role's password in the failing statement and the connection's own password.
add 20240103000000_role "ALTER ROLE no_such_role_here PASSWORD 'hunter2-very-secret';"
migrate deploy
[[ $rc -eq 1 ]] || fail "a failing ALTER ROLE: rc $rc: $(cat "$WORK/err")"
logs=$(logs_of 20240103000000_role)
[[ $logs == *"PASSWORD '***'"* ]] || fail "the password is not masked in logs: '$logs'"
grep -q hunter2 "$WORK/err" && fail "the password is on stderr: $(cat "$WORK/err")"
migrate resolve --rolled-back 20240103000000_role
rm -r "${dir:?}/20240103000000_role"
pw=$(sed -nE 's#^[a-z]+://[^:/@]*:([^@]*)@.*#\1#p' <<<"$DC_PG_URL_BASE")
if [[ -n $pw ]]; then
    add 20240104000000_pw "SELECT 'x$pw'::int;"
    migrate deploy
    [[ $rc -eq 1 ]] || fail "a failing cast: rc $rc: $(cat "$WORK/err")"
    logs=$(logs_of 20240104000000_pw)
    [[ $logs == *"invalid input syntax"* && $logs != *"$pw"* ]] || fail "the URL's password is in logs: '$logs'"
    migrate resolve --rolled-back 20240104000000_pw
    rm -r "${dir:?}/20240104000000_pw"
fi
pass "secrets are masked in logs"

# Latin-1: refused before anything is written or run.
mkdir -p "$dir/20240105000000_latin1"
printf 'CREATE TABLE latin1 (id int);\n-- caf\xe9\n' >"$dir/20240105000000_latin1/migration.sql"
before=$(q "SELECT count(*) FROM _prisma_migrations")
migrate deploy
[[ $rc -eq 1 ]] || fail "a Latin-1 file: rc $rc: $(cat "$WORK/err")"
grep -q "20240105000000_latin1/migration.sql is not valid UTF-8 (byte 0xe9 at offset 36, line 2).*nothing was run" "$WORK/err" ||
    fail "unclear refusal: $(cat "$WORK/err")"
assert_eq "$before|" "$(q "SELECT count(*) FROM _prisma_migrations")|$(q "SELECT to_regclass('latin1')")" "nothing written or run"
pass "a migration that is not valid UTF-8 is refused before anything runs"
