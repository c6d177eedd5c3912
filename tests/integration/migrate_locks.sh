#!/usr/bin/env bash
# Lock safety. Two runners at once: the second waits for the first (then finds nothing to do) or,
# past its lock timeout, refuses with exit 75 naming the first; nothing is applied twice.
# Prisma's own lock (72707369) held: refused with a clear message. A migration blocked by a long
# transaction: each attempt times out after lock_timeout, is retried with backoff, and the
# failure names the blocking session, which is never terminated.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

source "$DC_SOURCE_DIR/tests/harness/migrate_lib.sh"
OUR_LOCK=1684237671 # 0x64636d67, DC_MIGRATE_LOCK_KEY

# Waits until a condition (SQL returning t) holds, for at most 20 s.
wait_for() { # sql what
    for _ in $(seq 1 200); do
        [[ $(q "$1") == t ]] && return 0
        sleep 0.1
    done
    fail "timed out waiting for $2"
}
# Ends a session this test started, found by its application_name.
end_session() { # application_name
    psql_admin postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1' AND datname = '$db'" >/dev/null
}
on_exit "end_session test-blocker; end_session test-prisma; end_session test-runner"

add 20240101000000_slow "CREATE TABLE items (id int PRIMARY KEY); SELECT pg_sleep($(scaled 6));"
add 20240102000000_next "INSERT INTO items VALUES (1);"

# Runner A takes the lock and works for 6 s (scaled: long enough for status, B and C to start
# on a loaded machine).
"$DEPLOYCTL" migrate deploy --database "$url" --migrations "$dir" --json >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
wait_for "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $OUR_LOCK AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())" "runner A's lock"
a_pid=$(q "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $OUR_LOCK AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
# status meanwhile: the migration being applied has no finished_at yet; the runner is named.
run_deployctl migrate status --database "$url" --migrations "$dir" --json
grep -q "\"runner_pid\":$a_pid" "$WORK/out" || fail "status does not name the running deploy: $(cat "$WORK/out")"
grep -q "pid $a_pid holds the migration lock: a deploy is running now" "$WORK/err" || fail "status: $(cat "$WORK/err")"
# Runner C waits long enough; runner B does not and is refused.
"$DEPLOYCTL" migrate deploy --database "$url" --migrations "$dir" --json --lock-timeout "$(scaled 30)s" >"$WORK/c.out" 2>"$WORK/c.err" &
c=$!
run_deployctl migrate deploy --database "$url" --migrations "$dir" --lock-timeout 1s
[[ $rc -eq 75 ]] || fail "second runner: rc $rc: $(cat "$WORK/err")"
grep -q "another deployctl migration runner holds the migration lock on database $db (pid $a_pid (user dctest, application 'deployctl migrate deploy'.*waited 1.0s; nothing was applied" "$WORK/err" ||
    fail "unclear refusal: $(cat "$WORK/err")"
wait $a || fail "runner A failed: $(cat "$WORK/a.err")"
wait $c || fail "runner C failed: $(cat "$WORK/c.err")"
grep -q '"done":\["20240101000000_slow","20240102000000_next"\]' "$WORK/a.out" || fail "A: $(cat "$WORK/a.out")"
grep -q '"done":\[\]' "$WORK/c.out" || fail "C applied something again: $(cat "$WORK/c.out")"
grep -q "waiting up to $(scaled 30).0s for the migration lock held by pid" "$WORK/c.err" || fail "C did not say it waited: $(cat "$WORK/c.err")"
assert_eq "2|2|1" "$(q "SELECT count(*), count(DISTINCT migration_name), (SELECT count(*) FROM items) FROM _prisma_migrations")" \
    "each migration applied exactly once"
pass "two runners at once: one waits (then has nothing to do), one refuses (75); nothing applied twice"

# Prisma's lock held by a `prisma migrate` (here: a session holding it).
PGAPPNAME=test-prisma psql_admin "$db" -c "SELECT pg_advisory_lock(72707369), pg_sleep(60)" >/dev/null 2>&1 &
wait_for "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())" "the Prisma lock"
prisma_pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'test-prisma'")
add 20240103000000_third "INSERT INTO items VALUES (3);"
run_deployctl migrate deploy --database "$url" --migrations "$dir" --lock-timeout 1s
[[ $rc -eq 75 ]] || fail "deploy beside prisma migrate: rc $rc: $(cat "$WORK/err")"
grep -q "Prisma's migration lock (advisory lock 72707369) on database $db is held by pid $prisma_pid (user postgres, application 'test-prisma'.*prisma migrate.*nothing was applied" "$WORK/err" ||
    fail "unclear message about Prisma's lock: $(cat "$WORK/err")"
assert_eq 0 "$(q "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20240103000000_third'")" "applied beside Prisma"
end_session test-prisma
pass "Prisma's advisory lock held: refused, the holder named"

# resolve and down take the runner lock too: beside a running deploy (here: a session holding
# deployctl's lock) they wait --lock-timeout, then refuse (75) and change nothing.
PGAPPNAME=test-runner psql_admin "$db" -c "SELECT pg_advisory_lock($OUR_LOCK), pg_sleep(60)" >/dev/null 2>&1 &
wait_for "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = $OUR_LOCK AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())" "the runner lock"
history_before=$(q "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM _prisma_migrations t")
run_deployctl migrate resolve --applied 20240103000000_third --database "$url" --migrations "$dir" --lock-timeout 500ms
[[ $rc -eq 75 ]] || fail "resolve beside a running deploy: rc $rc: $(cat "$WORK/err")"
run_deployctl migrate down --database "$url" --migrations "$dir" --lock-timeout 500ms
[[ $rc -eq 75 ]] || fail "down beside a running deploy: rc $rc: $(cat "$WORK/err")"
assert_eq "$history_before" "$(q "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM _prisma_migrations t")" "history changed"
end_session test-runner
pass "resolve and down beside a running deploy: refused (75), nothing changed"

# A long transaction reading items holds a lock the migration's ALTER TABLE waits for.
PGAPPNAME=test-blocker psql_admin "$db" -c "BEGIN; SELECT count(*) FROM items; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
wait_for "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-blocker' AND query LIKE '%pg_sleep%'" "the blocker"
blocker=$(q "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'test-blocker'")
add 20240104000000_alter "ALTER TABLE items ADD COLUMN note text;"
start=$(date +%s%N)
run_deployctl migrate deploy --database "$url" --migrations "$dir" --lock-timeout 500ms --lock-retries 2 --lock-retry-delay 200ms
took_ms=$((($(date +%s%N) - start) / 1000000))
[[ $rc -eq 1 ]] || fail "blocked migration: rc $rc: $(cat "$WORK/err")"
grep -q "waiting for a lock, blocked by pid $blocker (user postgres, application 'test-blocker'" "$WORK/err" ||
    fail "the blocker was not named while waiting: $(cat "$WORK/err")"
grep -q "attempt 2 of 3" "$WORK/err" && grep -q "attempt 3 of 3" "$WORK/err" || fail "no retries: $(cat "$WORK/err")"
grep -q "migration 20240104000000_alter failed: .*lock timeout (SQLSTATE 55P03); blocked by pid $blocker (user postgres, application 'test-blocker'" "$WORK/err" ||
    fail "the failure does not name the blocker: $(cat "$WORK/err")"
grep -q "waited too long for a lock held by pid $blocker (user postgres, application 'test-blocker'.*pg_sleep" "$WORK/err" ||
    fail "the blocker's query is not shown: $(cat "$WORK/err")"
# Three attempts of 0.5 s and pauses of 0.2 s and 0.4 s.
((took_ms >= 2100)) || fail "three attempts with backoff took only ${took_ms} ms"
assert_eq "1|0" "$(q "SELECT count(*), count(finished_at) FROM _prisma_migrations WHERE migration_name = '20240104000000_alter'")" \
    "one failed row for all attempts"
q "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240104000000_alter'" | grep -q "blocked by pid $blocker" ||
    fail "logs do not name the blocker"
q "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240104000000_alter'" | grep -q "pg_sleep" &&
    fail "another session's query was written into logs"
assert_eq 1 "$(q "SELECT count(*) FROM pg_stat_activity WHERE pid = $blocker")" "the blocker was terminated"
pass "a migration blocked by a long transaction: lock_timeout, retries with backoff, the blocker named and left alone"

# Once the blocker is gone: resolve, deploy.
end_session test-blocker
run_deployctl migrate resolve --rolled-back 20240104000000_alter --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "resolve: $(cat "$WORK/err")"
run_deployctl migrate deploy --database "$url" --migrations "$dir"
[[ $rc -eq 0 ]] || fail "deploy after the blocker left: $(cat "$WORK/err")"
assert_eq "text" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'note'")" \
    "column added"
pass "after the blocker ended: resolved and deployed"

# statement_timeout applies to migration statements.
add 20240105000000_long "SELECT pg_sleep(5);"
run_deployctl migrate deploy --database "$url" --migrations "$dir" --statement-timeout 300ms
[[ $rc -eq 1 ]] && grep -q "canceling statement due to statement timeout (SQLSTATE 57014)" "$WORK/err" ||
    fail "statement_timeout not applied: rc $rc: $(cat "$WORK/err")"
pass "statement_timeout ends a statement that runs too long"
