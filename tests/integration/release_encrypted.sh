#!/usr/bin/env bash
# A release with a snapshot key configured: the pre-release snapshot is encrypted with it, a
# failing smoke test is undone by restoring that snapshot (which needs the key), the pre-restore
# snapshot is encrypted too, and --metrics-file records the release's outcome.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
key_file=$WORK/snapshot.key
(umask 077 && openssl rand -hex 32 >"$key_file")
metrics=$WORK/deployctl.prom
add 20240201000000_type 'ALTER TABLE items ALTER COLUMN name TYPE varchar(100);'
before=$(fingerprint "$db")
app_status 500
release --encryption-key-file "$key_file" --metrics-file "$metrics"
app_status 200
expect_rc 2 "smoke failure"
assert_eq "$before" "$(fingerprint "$db")" "database identical to before the release"
assert_eq restore "$(report '.compensation[-1].step')" "compensation by restore"

encryption_of() { # snapshot id -> the manifest's encryption algorithm
    run_deployctl show "$1" --database "$url" --store "$STORE" --json
    [[ $rc -eq 0 ]] || fail "show $1: $(cat "$WORK/err")"
    jq -r '.encryption.algorithm // "none"' "$WORK/out"
}
snap=$(report .snapshot)
pre=$(report .pre_restore_snapshot)
[[ $snap == 2* && $pre == 2* ]] || fail "snapshots not named in the report: '$snap' '$pre'"
assert_eq aes-256-gcm "$(encryption_of "$snap")" "the pre-release snapshot is encrypted"
assert_eq aes-256-gcm "$(encryption_of "$pre")" "the pre-restore snapshot is encrypted"
run_deployctl verify "$snap" --database "$url" --store "$STORE"
[[ $rc -ne 0 ]] || fail "verify without the key passed"
run_deployctl verify "$snap" --database "$url" --store "$STORE" --encryption-key-file "$key_file"
[[ $rc -eq 0 ]] || fail "verify with the key: $(cat "$WORK/err")"
pass "pre-release and pre-restore snapshots encrypted with the configured key; restore used it"

grep -Eq "^deployctl_release_last_outcome\{database=\"$db\"\} 2(\.0)?$" "$metrics" ||
    fail "release outcome not in the metrics file: $(cat "$metrics")"
grep -q "^deployctl_release_last_end_timestamp_seconds{database=\"$db\"}" "$metrics" ||
    fail "release end time not in the metrics file"
pass "the metrics file records the release's outcome"
