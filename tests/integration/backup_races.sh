#!/usr/bin/env bash
# Races with other sessions and other backups, made deterministic with fault points that pause
# deployctl at the exact moment (DEPLOYCTL_FAULT=point:sleep=SECONDS):
#  - a TRUNCATE-and-reload committed just before the tables are locked is backed up reloaded,
#    not empty (tables are locked before the snapshot is taken);
#  - a table created before the snapshot and rewritten before it is locked makes the backup
#    start again instead of saving an empty table;
#  - a migration's ALTER TABLE queued during a backup makes the backup fail after
#    --lock-timeout, naming the session, instead of both waiting forever;
#  - a backup's cleanup never removes another backup's snapshot, even one that commits while
#    the cleaner looks at it.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
url=$(db_url "$src")
psql_admin "$src" <<'SQL'
CREATE TABLE summary (k int, v text);
INSERT INTO summary SELECT g, 'v' || g FROM generate_series(1, 1000) g;
SQL
reload='BEGIN; TRUNCATE summary; INSERT INTO summary SELECT g, '"'"'r'"'"' || g FROM generate_series(1, 1000) g; COMMIT;'

# 1. TRUNCATE + reload while deployctl has listed the tables but not locked them yet.
DEPLOYCTL_FAULT=before-lock:sleep=$(scaled 3) "$DEPLOYCTL" backup --database "$url" --store "$WORK/s1" --quiet \
    >"$WORK/out" 2>"$WORK/err" &
pid=$!
sleep "$(scaled 1.5)"
psql_admin "$src" -c "$reload"
wait "$pid" || fail "backup failed: $(cat "$WORK/err")"
m=$(find "$WORK/s1" -name manifest.json)
assert_eq 1000 "$(jq '.tables[] | select(.name == "summary") | .rows' "$m")" "rows of a table reloaded before the lock"
pass "TRUNCATE and reload just before the lock: all 1000 rows backed up"

# 2. A table created before the snapshot (after the listing) and rewritten before its lock.
psql_admin "$src" -c "DROP TABLE IF EXISTS late"
DEPLOYCTL_FAULT=before-lock:sleep=$(scaled 3),after-export:sleep=$(scaled 3) "$DEPLOYCTL" backup --database "$url" \
    --store "$WORK/s2" >"$WORK/out" 2>"$WORK/err" &
pid=$!
sleep "$(scaled 1.5)" # listed, not locked: create the table
psql_admin "$src" -c "CREATE TABLE late AS SELECT generate_series(1, 500) AS id"
sleep "$(scaled 3)" # snapshot exported (it sees late), late not locked yet: rewrite it
psql_admin "$src" -c "BEGIN; TRUNCATE late; INSERT INTO late SELECT generate_series(1, 500); COMMIT;"
wait "$pid" || fail "backup failed: $(cat "$WORK/err")"
grep -q "truncated or rewritten as the backup started; starting again" "$WORK/err" ||
    fail "the rewrite was not detected: $(cat "$WORK/err")"
m=$(find "$WORK/s2" -name manifest.json)
assert_eq 500 "$(jq '.tables[] | select(.name == "late") | .rows' "$m")" "rows of the rewritten table"
pass "a table rewritten between snapshot and lock: detected, backup started again, 500 rows"

# 3. ALTER TABLE queued behind the backup: the backup gives up after --lock-timeout.
psql_admin "$src" <<'SQL'
CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 6) AS payload FROM generate_series(1, 60000) g;
CREATE TABLE victim AS SELECT generate_series(1, 10) AS id;
SQL
start=$(date +%s)
# The worker pauses mid-COPY after each chunk of big: the ALTER queues while big is read.
DEPLOYCTL_FAULT=backup-chunk-ended:sleep=0.5 "$DEPLOYCTL" backup --database "$url" --store "$WORK/s3" --jobs 1 --chunk-size 1MiB --lock-timeout 2s --quiet \
    >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 1 "$(scaled 500)"); do
    [[ $(psql_value "$src" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deployctl backup worker 1' AND query LIKE 'COPY%big%'") -gt 0 ]] && break
    sleep 0.01
done
psql_admin "$src" -c "ALTER TABLE victim ADD COLUMN z int" &
alter=$!
set +e
wait "$pid"
rc=$?
set -e
wait "$alter" || fail "the ALTER TABLE did not complete after the backup gave up"
elapsed=$(($(date +%s) - start))
[[ $rc -eq 1 ]] || fail "expected the backup to fail, got rc $rc: $(cat "$WORK/err")"
grep -qE "could not lock (it|the tables) within --lock-timeout" "$WORK/err" && grep -q "ALTER TABLE victim" "$WORK/err" ||
    fail "the blocker is not named: $(cat "$WORK/err")"
[[ $elapsed -lt $(scaled 60) ]] || fail "took ${elapsed}s"
[[ -z $(find "$WORK/s3" -name manifest.json) ]] || fail "a snapshot was committed"
pass "ALTER TABLE queued behind the backup: failed in ${elapsed}s naming it: $(cat "$WORK/err")"

# 4. Backup A pauses after committing its archive, before its manifest; backup B's cleaner
#    lists the store (A looks incomplete), then pauses while A commits; B must not remove A.
psql_admin "$src" -c "DROP TABLE big"
DEPLOYCTL_FAULT=before-manifest:sleep=$(scaled 3) "$DEPLOYCTL" backup --database "$url" --store "$WORK/s4" \
    --quiet >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
for _ in $(seq 1 "$(scaled 500)"); do
    [[ -n $(find "$WORK/s4/$src" -name snapshot.tar 2>/dev/null) ]] && break
    sleep 0.01
done
[[ -n $(find "$WORK/s4/$src" -name snapshot.tar) ]] || fail "backup A never committed its archive"
DEPLOYCTL_FAULT=clean-after-scan:sleep=$(scaled 5) "$DEPLOYCTL" backup --database "$url" --store "$WORK/s4" \
    --quiet >"$WORK/b.out" 2>"$WORK/b.err" &
b=$!
wait "$a" || fail "backup A failed: $(cat "$WORK/a.err")"
wait "$b" || fail "backup B failed: $(cat "$WORK/b.err")"
run_deployctl snapshots --store "$WORK/s4" --json
assert_eq 2 "$(jq length "$WORK/out")" "snapshots after two overlapping backups"
grep -q "$(tail -n 1 "$WORK/a.out")" "$WORK/out" || fail "backup A's snapshot is gone"
pass "overlapping backups keep each other's snapshots"
