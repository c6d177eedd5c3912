#!/usr/bin/env bash
# `deployctl check` estimates the next snapshot's size and compares it with the store's free
# space: fails when it does not fit, warns when it is tight (small tmpfs stores; root only).
source "$(dirname "$0")/../harness/lib.sh"

db=$(new_db main)
url=$(db_url "$db")
mkdir -p "$WORK/migrations"
psql_admin "$db" -c "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 4) AS payload FROM generate_series(1, 40000) g"
psql_admin "$db" -c "VACUUM ANALYZE big" # the estimate reads pg_class.relpages, which takes no lock
table_bytes=$(psql_value "$db" "SELECT (c.relpages + coalesce(t.relpages, 0))::bigint * current_setting('block_size')::bigint FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.oid = 'big'::regclass")
[[ $table_bytes -gt 1000000 ]] || fail "pg_class.relpages of the table: $table_bytes bytes"
need=$((table_bytes / 2)) # the estimate without a previous snapshot: half the tables' size

check() { run_deployctl check --database "$url" --migrations "$WORK/migrations" --json "$@"; }
result() { jq -r '.checks[] | select(.name == "free-space") | "\(.status)|\(.detail)"' "$WORK/out"; }

check --store "$WORK/store"
[[ $(result) == "ok|the next snapshot needs about "*"(half of the tables'"*"is free at $WORK"* ]] ||
    fail "roomy store: $(result)"
pass "a roomy store passes, measured where the store will be created"

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
