#!/usr/bin/env bash
# `deployctl check` estimates the next snapshot's size and compares it with the store's free
# space: fails when it does not fit, warns when it is tight (small tmpfs stores; root only).
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
# Freshly loaded and never vacuumed or analyzed (autovacuum off for it): pg_class.relpages is 0,
# yet the estimate must count the table's real size.
psql_admin "$db" -c "CREATE TABLE big (id int, payload text) WITH (autovacuum_enabled = false)" \
    -c "INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g"
[[ $(psql_value "$db" "SELECT relpages FROM pg_class WHERE oid = 'big'::regclass") == 0 ]] ||
    fail "the table was vacuumed or analyzed: the test needs relpages 0"
table_bytes=$(psql_value "$db" "SELECT pg_table_size('big')")
[[ $table_bytes -gt 1000000 ]] || fail "pg_table_size of the table: $table_bytes bytes"
need=$((table_bytes / 2)) # the estimate without a previous snapshot: half the tables' size

check() { run_deployctl check --database "$url" --migrations "$WORK/migrations" --json "$@"; }
result() { jq -r '.checks[] | select(.name == "free-space") | "\(.status)|\(.detail)"' "$WORK/out"; }

check --store "$WORK/store"
[[ $(result) == "ok|the next snapshot needs about "*"(half of the tables'"*"is free at $WORK"* ]] ||
    fail "roomy store: $(result)"
pass "a roomy store passes, measured where the store will be created"

# "half of the tables' 2.46 MiB": the tables' size the estimate used, in bytes.
tables_counted() {
    sed -E "s/.*half of the tables' ([0-9.]+) (B|KiB|MiB|GiB);.*/\1 \2/" <<<"$(result)" |
        awk '{ m = ($2 == "KiB") ? 1024 : ($2 == "MiB") ? 1048576 : ($2 == "GiB") ? 1073741824 : 1; printf "%d\n", $1 * m }'
}
counted=$(tables_counted)
((counted * 100 >= table_bytes * 99 && counted * 100 <= table_bytes * 101)) ||
    fail "the never-analyzed table counts $counted bytes, its files $table_bytes: $(result)"
pass "a freshly loaded, never-analyzed table (relpages 0) counts with its real size ($counted bytes)"

# Another session holds ACCESS EXCLUSIVE on it: the table is counted from pg_class (0 pages)
# rather than waiting behind the lock.
app="dc_${TEST_NAME}_locker"
PGAPPNAME=$app psql_admin "$db" -c "BEGIN; LOCK TABLE big; SELECT pg_sleep(60); COMMIT;" >/dev/null 2>&1 &
locker=$!
on_exit "kill $locker 2>/dev/null; psql_value postgres \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'\" >/dev/null"
for _ in $(seq 1 100); do
    [[ $(psql_value "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '$app' AND l.mode = 'AccessExclusiveLock' AND l.granted") -ge 1 ]] && break
    sleep 0.1
done
start=$(date +%s%N)
check --store "$WORK/store"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[[ $(result) == "ok|"*"half of the tables' 0 B;"* ]] || fail "locked table: $(result)"
((elapsed_ms < $(scaled 2000))) || fail "the free-space check waited behind the lock (${elapsed_ms} ms)"
psql_value postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'" >/dev/null
wait "$locker" 2>/dev/null || true
pass "a table locked ACCESS EXCLUSIVE by another session is counted from pg_class, without waiting (${elapsed_ms} ms)"

mnt=$WORK/mnt
mkdir -p "$mnt"
[[ $(id -u) -eq 0 ]] || skip "mounting a small tmpfs store needs root; the fail and warn cases were not run"
mount -t tmpfs -o size=$((need / 2048))k,mode=755 tmpfs "$mnt" 2>/dev/null ||
    skip "cannot mount a tmpfs here; the fail and warn cases were not run"
on_exit "umount -l '$mnt'"
check --store "file://$mnt/store"
assert_eq 4 "$rc" "full store: exit"
[[ $(result) == "failed|the next snapshot needs about "*" but only "*" is free at $mnt: free space there or use another --store" ]] ||
    fail "full store: $(result)"
[[ ! -e $mnt/store ]] || fail "the check created the store directory"
pass "a store with less free space than the estimate fails (exit 4) and is left untouched"

umount "$mnt"
mount -t tmpfs -o size=$((need * 3 / 2048))k,mode=755 tmpfs "$mnt"
check --store "$mnt/store"
[[ $rc -eq 0 ]] || fail "tight store: exit $rc"
[[ $(result) == "warning|tight: the next snapshot needs about "* ]] || fail "tight store: $(result)"
pass "a store with less than twice the estimate free warns"
