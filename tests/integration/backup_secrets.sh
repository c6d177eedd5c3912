#!/usr/bin/env bash
# The password in the database URL reaches pg_dump only through a 0600 in-memory passfile:
# never its argv, never its environment, and a stale PGPASSWORD in ours cannot override it.
# A wrapper in front of the real pg_dump records what it was given.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
psql_admin "$src" -c "CREATE TABLE t AS SELECT generate_series(1, 100) AS id"

cat >"$WORK/pg_dump" <<WRAPPER
#!/usr/bin/env bash
{ printf '%s\n' "\$0" "\$@"; echo ---; } >>"$WORK/argv.log"
env >>"$WORK/env.log"
if [[ -n \${PGPASSFILE:-} ]]; then
    stat -L -c '%a %F' "\$PGPASSFILE" >>"$WORK/passfile.stat"
    cat "\$PGPASSFILE" >>"$WORK/passfile.content"
fi
exec "$DC_PG_BIN/pg_dump" "\$@"
WRAPPER
chmod +x "$WORK/pg_dump"

# The harness's own variables hold the password too: deployctl runs without them.
set +e
env -u DC_PG_PASSWORD -u DC_PG_URL_BASE PGPASSWORD=a-stale-wrong-password "$DEPLOYCTL" backup \
    --database "$(db_url "$src")" --store "$WORK/store" --pg-dump "$WORK/pg_dump" >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
[[ $rc -eq 0 ]] || fail "backup through the wrapper failed: $(cat "$WORK/err")"
grep -q -- '--section=pre-data' "$WORK/argv.log" && grep -q -- '--section=post-data' "$WORK/argv.log" ||
    fail "the wrapper did not see both schema dumps"
if grep -qF "$DC_PG_PASSWORD" "$WORK/argv.log"; then fail "the password is in pg_dump's argv"; fi
if grep -qF "$DC_PG_PASSWORD" "$WORK/env.log"; then fail "the password is in pg_dump's environment"; fi
if grep -q '^PGPASSWORD=' "$WORK/env.log"; then fail "PGPASSWORD was passed on to pg_dump"; fi
grep -q '^PGPASSFILE=/proc/self/fd/' "$WORK/env.log" || fail "no in-memory passfile given"
[[ $(sort -u "$WORK/passfile.stat") == "600 regular file" ]] ||
    fail "passfile is not a 0600 regular file: $(sort -u "$WORK/passfile.stat")"
grep -qF ":$DC_PG_PASSWORD" "$WORK/passfile.content" || fail "the passfile does not hold the password"
if grep -qF "$DC_PG_PASSWORD" "$WORK/out" "$WORK/err"; then fail "the password is in deployctl's output"; fi
pass "pg_dump got the password through a 0600 in-memory passfile only"

# The documented route: the URL in DATABASE_URL_DIRECT. pg_dump must not inherit it.
rm -f "$WORK/argv.log" "$WORK/env.log"
set +e
env -u DC_PG_PASSWORD -u DC_PG_URL_BASE DATABASE_URL_DIRECT="$(db_url "$src")" \
    DATABASE_URL="$(db_url "$src")" "$DEPLOYCTL" backup --store "$WORK/store" \
    --pg-dump "$WORK/pg_dump" >"$WORK/out" 2>"$WORK/err"
rc=$?
set -e
[[ $rc -eq 0 ]] || fail "backup with the URL in the environment failed: $(cat "$WORK/err")"
[[ -s $WORK/env.log ]] || fail "the wrapper did not run"
if grep -qF "$DC_PG_PASSWORD" "$WORK/env.log" "$WORK/argv.log"; then
    fail "the password reached pg_dump: $(grep -F "$DC_PG_PASSWORD" "$WORK/env.log" | sed "s/$DC_PG_PASSWORD/<pw>/" | head -3)"
fi
if grep -q '^DATABASE_URL' "$WORK/env.log"; then fail "DATABASE_URL* passed on to pg_dump"; fi
pass "DATABASE_URL_DIRECT and DATABASE_URL are not passed on to pg_dump"
