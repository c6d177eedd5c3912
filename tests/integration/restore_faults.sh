#!/usr/bin/env bash
# Restore faults: whatever goes wrong, the target ends exactly as it was (same fingerprint) and
# deployctl says what was wrong in one error line:
#  - one flipped byte inside a data chunk of snapshot.tar (also: verify fails, and a --target
#    database created for the restore is dropped again);
#  - a truncated snapshot.tar (both also with --jobs 2, which reads members through an index);
#  - a missing manifest.json (the snapshot is incomplete; 'latest' skips it);
#  - deployctl killed with SIGKILL in the middle of a COPY;
#  - the restoring session ended with pg_terminate_backend in the middle of a COPY;
#  - a long transaction holding a lock (fails after --lock-timeout naming the session;
#    --terminate-connections then restores);
# and finally a clean in-place restore whose pre-restore snapshot holds what it replaced.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

started=$SECONDS
src=$(new_db src)
url=$(db_url "$src")
store=$WORK/store

psql_admin "$src" >/dev/null <<'SQL'
CREATE TABLE big (id bigint PRIMARY KEY, payload text, n numeric);
INSERT INTO big SELECT g, repeat(md5(g::text), 6), g / 7.0 FROM generate_series(1, 40000) g;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, created date);
INSERT INTO customers (name, created) SELECT 'customer ' || g, date '2024-01-01' + g FROM generate_series(1, 200) g;
CREATE TABLE extra (k int, v text);
INSERT INTO extra SELECT g, 'extra ' || g FROM generate_series(1, 30) g;
CREATE SCHEMA app;
CREATE TABLE app.settings (key text PRIMARY KEY, value text);
INSERT INTO app.settings VALUES ('mode', 'snapshot'), ('level', '3');
CREATE SEQUENCE counter;
SELECT setval('counter', 42);
SQL

run_deployctl backup --database "$url" --store "$store" --chunk-size 256KiB --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
snap=$(snapshot_dir "$store" "$src" "$id")
[[ -f $snap/manifest.json && -f $snap/snapshot.tar ]] || fail "snapshot files missing in $snap"
fingerprint "$src" >"$WORK/fp.snapshot"
big_chunks=$(jq '[.tables[] | select(.name == "big") | .chunks[]] | length' "$snap/manifest.json")
[[ $big_chunks -ge 10 ]] || fail "expected the big table in many chunks, got $big_chunks"
pass "backup $id: big table in $big_chunks chunks"

# Changes after the backup, so that "restored" and "unchanged" differ.
modify() { # tag
    psql_admin "$src" <<SQL
UPDATE big SET payload = 'changed $1' WHERE id % 1000 = 0;
INSERT INTO customers (name) VALUES ('after the backup $1');
UPDATE app.settings SET value = 'changed $1' WHERE key = 'mode';
DROP TABLE IF EXISTS extra;
CREATE TABLE IF NOT EXISTS later (id int);
INSERT INTO later VALUES (1), (2);
SELECT nextval('counter') FROM generate_series(1, 5);
SQL
}
modify one >/dev/null
fingerprint "$src" >"$WORK/fp.modified"
if diff -q "$WORK/fp.snapshot" "$WORK/fp.modified" >/dev/null; then
    fail "the modifications did not change the fingerprint"
fi

# expect_unchanged WHAT: the source's fingerprint is still the one taken before the fault.
expect_unchanged() {
    fingerprint "$src" >"$WORK/fp.now"
    diff -u "$WORK/fp.modified" "$WORK/fp.now" >&2 || fail "$1: the database changed"
}

# copy_store NAME: a new store holding a copy of the good snapshot (which stays intact).
copy_store() {
    local s=$WORK/$1
    mkdir -p "$s/$src"
    cp -a "$snap" "$s/$src/"
    echo "$s"
}

# ---- 1. One flipped byte in the middle of a data chunk inside snapshot.tar ----
flip_store=$(copy_store flip-store)
flip_tar=$flip_store/$src/$id/snapshot.tar
member=$(jq -r '[.tables[] | select(.name == "big") | .chunks[].member] | .[length / 2 | floor]' "$snap/manifest.json")
python3 - "$flip_tar" "$member" >"$WORK/flip.out" <<'PY'
import sys, tarfile
path, name = sys.argv[1], sys.argv[2]
with tarfile.open(path) as t:
    m = t.getmember(name)
    offset, size = m.offset_data, m.size
pos = offset + size // 2
with open(path, "r+b") as f:
    f.seek(pos)
    b = f.read(1)
    f.seek(pos)
    f.write(bytes([b[0] ^ 0x5A]))
print(pos, offset, size)
PY
read -r pos moff msize <"$WORK/flip.out"
[[ $pos -gt $moff && $pos -lt $((moff + msize)) ]] || fail "flipped byte $pos is not inside $member ($moff + $msize)"
cmp -s "$snap/snapshot.tar" "$flip_tar" && fail "the byte was not flipped"
[[ $(cmp -l "$snap/snapshot.tar" "$flip_tar" | wc -l) -eq 1 ]] || fail "more than one byte differs"

run_deployctl --quiet restore "$id" --database "$url" --store "$flip_store" --yes
expect_error_line "flipped byte" "corrupt|SHA-256"
grep -qF -- "$member" "$WORK/err" || fail "flipped byte: the error does not name member $member: $(cat "$WORK/err")"
expect_unchanged "flipped byte"
pass "flipped byte in $member: $(cat "$WORK/err")"

run_deployctl --quiet verify "$id" --database "$url" --store "$flip_store"
[[ $rc -ne 0 ]] || fail "verify accepted a snapshot with a flipped byte"
grep -qiE 'corrupt|SHA-256' "$WORK/err" || fail "verify: unclear message: $(cat "$WORK/err")"
pass "verify of the flipped snapshot fails: $(cat "$WORK/err")"

flip_target=$(target_db flip)
drop_at_exit "$flip_target"
run_deployctl --quiet restore "$id" --database "$url" --store "$flip_store" --target "$(db_url "$flip_target")"
expect_error_line "flipped byte into --target" "corrupt|SHA-256"
db_exists "$flip_target" && fail "the database created for the failed --target restore was not dropped"
pass "flipped byte into a new --target: failed, the created database was dropped"

# --jobs reads each member on its own through the archive's index: the same byte is caught.
flip_jobs=$(target_db flip_jobs)
drop_at_exit "$flip_jobs"
run_deployctl --quiet restore "$id" --database "$url" --store "$flip_store" --target "$(db_url "$flip_jobs")" --jobs 2
expect_error_line "flipped byte, --jobs 2" "corrupt|SHA-256"
grep -qF -- "$member" "$WORK/err" || fail "flipped byte, --jobs: the error does not name $member: $(cat "$WORK/err")"
db_exists "$flip_jobs" && fail "the database created for the failed --jobs restore was not dropped"
pass "flipped byte with --jobs 2: failed naming $member, the created database was dropped"

# ---- 2. A truncated archive ----
trunc_store=$(copy_store trunc-store)
trunc_tar=$trunc_store/$src/$id/snapshot.tar
full=$(stat -c %s "$trunc_tar")
truncate -s $((full * 6 / 10)) "$trunc_tar"
assert_eq $((full * 6 / 10)) "$(stat -c %s "$trunc_tar")" "size of the truncated archive"
run_deployctl --quiet restore "$id" --database "$url" --store "$trunc_store" --yes
expect_error_line "truncated archive" "truncated|damaged"
expect_unchanged "truncated archive"
pass "truncated archive: $(cat "$WORK/err")"
trunc_jobs=$(target_db trunc_jobs)
drop_at_exit "$trunc_jobs"
run_deployctl --quiet restore "$id" --database "$url" --store "$trunc_store" --target "$(db_url "$trunc_jobs")" --jobs 2
expect_error_line "truncated archive, --jobs 2" "truncated|damaged|missing"
db_exists "$trunc_jobs" && fail "the database created for the failed --jobs restore was not dropped"
pass "truncated archive with --jobs 2: $(cat "$WORK/err")"

# ---- 3. A missing manifest ----
# The store holds the good snapshot and a newer one of the modified database whose manifest is
# gone: restoring the newer one by id fails, and 'latest' must fall back to the good one.
nomf_store=$(copy_store nomf-store)
run_deployctl --quiet backup --database "$url" --store "$nomf_store" --chunk-size 256KiB
[[ $rc -eq 0 ]] || fail "second backup failed: $(cat "$WORK/err")"
newer=$(tail -n 1 "$WORK/out")
[[ $newer > $id ]] || fail "the second snapshot id $newer does not sort after $id"
rm "$nomf_store/$src/$newer/manifest.json"
[[ -f $nomf_store/$src/$newer/snapshot.tar ]] || fail "the archive of the second snapshot is missing"
run_deployctl --quiet restore "$newer" --database "$url" --store "$nomf_store" --yes
expect_error_line "missing manifest" "incomplete|no manifest"
grep -qF -- "$newer" "$WORK/err" || fail "missing manifest: the error does not name $newer: $(cat "$WORK/err")"
expect_unchanged "missing manifest"
pass "missing manifest: $(cat "$WORK/err")"

latest_target=$(target_db latest)
drop_at_exit "$latest_target"
run_deployctl --quiet --json restore latest --database "$url" --store "$nomf_store" --target "$(db_url "$latest_target")"
[[ $rc -eq 0 ]] || fail "restore latest with an incomplete newer snapshot failed: $(cat "$WORK/err")"
assert_eq "$id" "$(jq -r .id "$WORK/out")" "the snapshot 'latest' restored"
fingerprint "$latest_target" >"$WORK/fp.latest"
diff -u "$WORK/fp.snapshot" "$WORK/fp.latest" >&2 || fail "restore latest into --target: not the snapshot's content"
pass "restore latest skipped incomplete $newer and restored $id into a new database"

# ---- 4 and 5. Faults in the middle of the COPY of the big table ----
# restoring_copy_pid: the backend pid of the restore while it runs a COPY into big, or empty.
restoring_copy_pid() {
    psql_value postgres "SELECT pid FROM pg_stat_activity WHERE datname = '$src'
        AND application_name = 'deployctl restore' AND state = 'active' AND query ~ '^COPY \"?public\"?\.\"?big\"? '"
}
# start_restore: runs an in-place restore in the background and waits until it is in the middle
# of loading the big table; sets restore_pid and backend. The restore pauses after every chunk
# it sent (its COPY open), so the fault lands mid-COPY however fast or loaded the machine is.
start_restore() { # what
    DEPLOYCTL_FAULT=restore-chunk-loaded:sleep=0.1 \
        "$DEPLOYCTL" --quiet restore "$id" --database "$url" --store "$store" --yes --no-safety-snapshot \
        >"$WORK/bg.out" 2>"$WORK/bg.err" &
    restore_pid=$!
    backend=
    local copies=0
    for _ in $(seq 1 1500); do
        backend=$(restoring_copy_pid)
        # Seen in three polls: chunks are being loaded, not just the first one started.
        if [[ -n $backend ]]; then
            copies=$((copies + 1))
            [[ $copies -ge 3 ]] && break
        fi
        kill -0 "$restore_pid" 2>/dev/null || fail "$1: the restore ended before its COPY was seen: $(cat "$WORK/bg.err")"
        sleep 0.02
    done
    [[ -n $backend && $copies -ge 3 ]] || fail "$1: the restore was never seen loading the big table"
}
# Background processes still running at exit (their variables are cleared once reaped).
restore_pid=
blocker=
# shellcheck disable=SC2016 # expanded when the hooks run
on_exit '[[ -z $restore_pid ]] || kill -9 "$restore_pid" 2>/dev/null'
# shellcheck disable=SC2016
on_exit '[[ -z $blocker ]] || kill "$blocker" 2>/dev/null'
wait_backend_gone() { # what pid
    for _ in $(seq 1 1000); do
        [[ $(psql_value postgres "SELECT count(*) FROM pg_stat_activity WHERE pid = $2") -eq 0 ]] && return 0
        sleep 0.03
    done
    fail "$1: backend $2 is still there"
}

start_restore "SIGKILL"
kill -9 "$restore_pid"
set +e
wait "$restore_pid" 2>/dev/null
krc=$?
set -e
restore_pid=
assert_eq 137 "$krc" "exit status of the killed restore"
wait_backend_gone "SIGKILL" "$backend"
expect_unchanged "SIGKILL mid-COPY"
pass "SIGKILL mid-COPY (backend $backend gone): database unchanged"

start_restore "pg_terminate_backend"
assert_eq t "$(psql_value postgres "SELECT pg_terminate_backend($backend)")" "pg_terminate_backend"
set +e
wait "$restore_pid"
rc=$?
set -e
restore_pid=
cp "$WORK/bg.err" "$WORK/err"
expect_error_line "terminated session" "terminat|lost the connection|server closed"
wait_backend_gone "pg_terminate_backend" "$backend"
expect_unchanged "pg_terminate_backend mid-COPY"
pass "restoring session terminated mid-COPY: $(cat "$WORK/err")"

# ---- 6. A long transaction holding a lock on a table ----
PGAPPNAME=fault_blocker psql_admin "$src" \
    -c "BEGIN; SELECT * FROM big LIMIT 1; SELECT pg_sleep($(scaled 60));" >"$WORK/blocker.out" 2>&1 &
blocker=$!
blocker_backend=
for _ in $(seq 1 500); do
    blocker_backend=$(psql_value "$src" "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE a.application_name = 'fault_blocker' AND l.relation = 'public.big'::regclass AND l.granted")
    [[ -n $blocker_backend ]] && break
    sleep 0.02
done
[[ -n $blocker_backend ]] || fail "the blocking transaction never took its lock"

t0=$SECONDS
run_deployctl --quiet restore "$id" --database "$url" --store "$store" --yes --lock-timeout 2s
elapsed=$((SECONDS - t0))
expect_error_line "blocking transaction" "fault_blocker|pid $blocker_backend"
[[ $elapsed -le $(scaled 20) ]] || fail "blocking transaction: the restore gave up only after ${elapsed}s"
kill -0 "$blocker" 2>/dev/null || fail "the blocking session ended although --terminate-connections was not given"
expect_unchanged "blocking transaction"
pass "blocking transaction: failed in ${elapsed}s: $(cat "$WORK/err")"

run_deployctl --quiet restore "$id" --database "$url" --store "$store" --yes --lock-timeout 2s \
    --terminate-connections --no-safety-snapshot
[[ $rc -eq 0 ]] || fail "restore with --terminate-connections failed: $(cat "$WORK/err")"
set +e
wait "$blocker"
brc=$?
set -e
blocker=
[[ $brc -ne 0 ]] || fail "the blocking session was not ended (psql exited 0)"
fingerprint "$src" >"$WORK/fp.now"
diff -u "$WORK/fp.snapshot" "$WORK/fp.now" >&2 || fail "after --terminate-connections: not the snapshot's content"
pass "--terminate-connections ended the blocker and restored the snapshot"

# ---- 7. A clean in-place restore, and its pre-restore snapshot ----
modify two >/dev/null
fingerprint "$src" >"$WORK/fp.modified2"
diff -q "$WORK/fp.snapshot" "$WORK/fp.modified2" >/dev/null && fail "the second modifications changed nothing"
run_deployctl --quiet --json restore "$id" --database "$url" --store "$store" --yes
[[ $rc -eq 0 ]] || fail "clean restore failed: $(cat "$WORK/err")"
safety=$(jq -r .safety_snapshot "$WORK/out")
[[ $safety =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$ ]] || fail "no pre-restore snapshot id in the output: $(cat "$WORK/out")"
fingerprint "$src" >"$WORK/fp.now"
diff -u "$WORK/fp.snapshot" "$WORK/fp.now" >&2 || fail "clean restore: not the snapshot's content"
safety_m=$(snapshot_dir "$store" "$src" "$safety")/manifest.json
assert_eq pre-restore "$(jq -r .tag "$safety_m")" "tag of the pre-restore snapshot"
pre_target=$(target_db pre)
drop_at_exit "$pre_target"
run_deployctl --quiet restore "$safety" --database "$url" --store "$store" --target "$(db_url "$pre_target")"
[[ $rc -eq 0 ]] || fail "restoring the pre-restore snapshot failed: $(cat "$WORK/err")"
fingerprint "$pre_target" >"$WORK/fp.pre"
diff -u "$WORK/fp.modified2" "$WORK/fp.pre" >&2 || fail "the pre-restore snapshot does not hold what the restore replaced"
assert_eq "changed two" "$(psql_value "$pre_target" "SELECT value FROM app.settings WHERE key = 'mode'")" \
    "a modification in the pre-restore snapshot"
pass "clean restore; pre-restore snapshot $safety holds the modifications"

echo "restore_faults took $((SECONDS - started))s"
