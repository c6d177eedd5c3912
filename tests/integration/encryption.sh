#!/usr/bin/env bash
# Client-side encryption through deployctl itself (file:// store): a snapshot taken with a key
# is stored as AES-256-GCM ciphertext (no plaintext in any member; the stored hashes still
# checkable without the key), restores into an identical database (atomic and --jobs 2) and
# verifies (plain and deep) with the key; listed and shown without it. A wrong key, a missing
# key, one flipped byte in an encrypted chunk and an edited manifest are each a clear one-line
# error before anything is restored. The key never comes from argv nor shows in any output.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

store=$WORK/store
src=$(new_db src)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
psql_admin "$src" -c "CREATE TABLE public.big (id int PRIMARY KEY, a text);
  INSERT INTO public.big SELECT g, md5(g::text) || ' secret-marker-' || g FROM generate_series(1, 60000) g" >/dev/null
url=$(db_url "$src")

umask 077
openssl rand -hex 32 >"$WORK/key"
openssl rand -base64 32 >"$WORK/other.key"
key_hex=$(cat "$WORK/key")
export DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/key

no_key_in_output() { # what
    ! grep -qF -- "$key_hex" "$WORK/out" "$WORK/err" || fail "$1: the key shows in the output"
}

# ---- backup with the key: ciphertext members, manifest readable and authenticated ----
run_deployctl backup --database "$url" --store "$store" --chunk-size 256KiB --jobs 2
[[ $rc -eq 0 ]] || fail "encrypted backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
no_key_in_output "backup"
snap=$store/$src/$id
m=$snap/manifest.json
key_id=$(jq -r .encryption.key_id "$m")
[[ $(jq -r .encryption.algorithm "$m") == aes-256-gcm ]] || fail "manifest encryption: $(jq -c .encryption "$m")"
[[ $key_id =~ ^[0-9a-f]{16}$ ]] || fail "key id '$key_id' is not 16 hex digits"
[[ $(jq -r .encryption.manifest_mac "$m") =~ ^[0-9a-f]{64}$ ]] || fail "no manifest_mac"
grep -q "encrypted with key id $key_id" "$WORK/err" || fail "the backup does not say it encrypts: $(cat "$WORK/err")"
[[ $(jq '[.tables[].chunks[] | select(has("raw_sha256"))] | length' "$m") -eq 0 ]] ||
    fail "an encrypted manifest carries plain raw_sha256 digests of the content"
[[ $(jq '[.tables[].chunks[] | select(.raw_hmac_sha256 | test("^[0-9a-f]{64}$"))] | length' "$m") -eq \
    $(jq '[.tables[].chunks[]] | length' "$m") ]] || fail "chunks lack raw_hmac_sha256"
[[ $(jq '.large_objects | length' "$m") -ge 1 ]] || fail "the test database should have large objects"
pass "encrypted backup $id, key id $key_id; the manifest keys its content digests"

# Every member is ciphertext with the stored hash and size of the manifest: checkable with
# standard tools, no key needed; no plaintext (SQL, COPY rows, zstd frames) anywhere.
mkdir "$WORK/x"
tar -xf "$snap/snapshot.tar" -C "$WORK/x"
assert_eq "$(jq -r .archive.sha256 "$m")" "$(sha256sum <"$snap/snapshot.tar" | cut -d' ' -f1)" "archive sha256"
jq -r '(.schema[] | [.member, .bytes, .sha256]), (.tables[].chunks[], .large_objects[].chunks[] | [.member, .stored_bytes, .sha256]) | @tsv' "$m" |
    while IFS=$'\t' read -r member bytes sha; do
        f=$WORK/x/$member
        [[ $(stat -c %s "$f") == "$bytes" ]] || fail "$member: size differs from the manifest"
        [[ $(sha256sum <"$f" | cut -d' ' -f1) == "$sha" ]] || fail "$member: sha256 differs from the manifest"
        [[ $(head -c 6 "$f") == DCAEAD ]] || fail "$member does not start with the encryption header"
    done
! grep -rqaE 'CREATE TABLE|secret-marker|a small large object' "$WORK/x" || fail "plaintext found in the archive"
[[ $(grep -rlaP '\x28\xb5\x2f\xfd' "$WORK/x" | wc -l) -lt $(find "$WORK/x" -type f | wc -l) ]] ||
    fail "every member holds the zstd magic: not encrypted?"
pass "every member is ciphertext with the manifest's stored size and sha256 (checked without the key)"

# ---- listed and shown without a key ----
(
    unset DEPLOYCTL_ENCRYPTION_KEY_FILE
    run_deployctl snapshots --database "$url" --store "$store" --json
    [[ $rc -eq 0 ]] || fail "snapshots without a key: $(cat "$WORK/err")"
    jq -e --arg id "$id" 'map(select(.id == $id and .complete)) | length == 1' "$WORK/out" >/dev/null ||
        fail "snapshots does not list $id"
    run_deployctl show "$id" --database "$url" --store "$store"
    [[ $rc -eq 0 ]] || fail "show without a key: $(cat "$WORK/err")"
    grep -q "encryption   aes-256-gcm, key id $key_id" "$WORK/out" || fail "show does not say encrypted: $(cat "$WORK/out")"
    run_deployctl show "$id" --database "$url" --store "$store" --json
    assert_eq "$key_id" "$(jq -r .encryption.key_id "$WORK/out")" "show --json key id"
)
pass "snapshots and show work without the key, and say which key"

# ---- restore and verify with the key ----
copy=$(target_db copy)
run_deployctl restore "$id" --database "$url" --target "$(db_url "$copy")" --store "$store"
[[ $rc -eq 0 ]] || fail "restore of the encrypted snapshot failed: $(cat "$WORK/err")"
no_key_in_output "restore"
diff -u <(schema_dump "$src") <(schema_dump "$copy") >"$WORK/d" || fail "schema differs: $(head -30 "$WORK/d")"
diff -u <(fingerprint "$src") <(fingerprint "$copy") >"$WORK/d" || fail "content differs: $(head -30 "$WORK/d")"
pass "restored (atomic) from the encrypted snapshot: schema and content identical"

parallel=$(target_db parallel)
run_deployctl restore "$id" --database "$url" --target "$(db_url "$parallel")" --store "$store" --jobs 2
[[ $rc -eq 0 ]] || fail "parallel restore of the encrypted snapshot failed: $(cat "$WORK/err")"
diff -u <(fingerprint "$src") <(fingerprint "$parallel") >"$WORK/d" || fail "content differs (--jobs 2): $(head -30 "$WORK/d")"
pass "restored with --jobs 2 from the encrypted snapshot: content identical"

# The key as an environment value (hex) instead of a file.
(
    unset DEPLOYCTL_ENCRYPTION_KEY_FILE
    export DEPLOYCTL_ENCRYPTION_KEY=$key_hex
    run_deployctl verify "$id" --database "$url" --store "$store" --json
    [[ $rc -eq 0 ]] || fail "verify with DEPLOYCTL_ENCRYPTION_KEY failed: $(cat "$WORK/err")"
    jq -e '.ok == true and .members > 3' "$WORK/out" >/dev/null || fail "verify: $(cat "$WORK/out")"
    no_key_in_output "verify"
)
# ... or from the config file's [encryption] section.
(
    unset DEPLOYCTL_ENCRYPTION_KEY_FILE
    printf '[encryption]\nkey_file = %s\n' "$WORK/key" >"$WORK/enc.conf"
    run_deployctl verify "$id" --config "$WORK/enc.conf" --database "$url" --store "$store"
    [[ $rc -eq 0 ]] || fail "verify with encryption.key_file failed: $(cat "$WORK/err")"
)
run_deployctl verify "$id" --database "$url" --store "$store" --deep
[[ $rc -eq 0 ]] || fail "deep verify of the encrypted snapshot failed: $(cat "$WORK/err")"
pass "verify (key from DEPLOYCTL_ENCRYPTION_KEY, and from encryption.key_file) and verify --deep pass"

# ---- refusals, before anything is restored ----
fingerprint "$src" >"$WORK/fp.src"
unchanged() { fingerprint "$src" | diff -q "$WORK/fp.src" - >/dev/null || fail "$1: the source database changed"; }

wrong=$(target_db wrong)
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/other.key run_deployctl --quiet restore "$id" --database "$url" \
    --target "$(db_url "$wrong")" --store "$store"
expect_error_line "wrong key" "encrypted with key id $key_id, but the key given has id [0-9a-f]{16}"
db_exists "$wrong" && fail "wrong key: the target database was created"
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/other.key run_deployctl --quiet restore "$id" --database "$url" \
    --store "$store" --yes
expect_error_line "wrong key in place" "key id"
unchanged "wrong key in place"
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/other.key run_deployctl --quiet verify "$id" --database "$url" --store "$store"
expect_error_line "verify with the wrong key" "key id"
pass "wrong key: $(cat "$WORK/err")"

(
    unset DEPLOYCTL_ENCRYPTION_KEY_FILE
    missing=$(target_db missing)
    run_deployctl --quiet restore "$id" --database "$url" --target "$(db_url "$missing")" --store "$store"
    expect_error_line "missing key" "is encrypted \(key id $key_id\): give its key with --encryption-key-file FILE, DEPLOYCTL_ENCRYPTION_KEY_FILE"
    db_exists "$missing" && fail "missing key: the target database was created"
    run_deployctl --quiet verify "$id" --database "$url" --store "$store"
    expect_error_line "verify without the key" "encryption-key-file"
)
pass "missing key: restore and verify say how to give it, nothing created"

# One flipped byte inside an encrypted chunk (a copy of the store).
flip=$WORK/flip
mkdir -p "$flip/$src" && cp -a "$snap" "$flip/$src/"
member=$(jq -r '[.tables[] | select(.name == "big") | .chunks[].member] | .[length / 2 | floor]' "$m")
python3 - "$flip/$src/$id/snapshot.tar" "$member" <<'PY'
import sys, tarfile
path, name = sys.argv[1], sys.argv[2]
with tarfile.open(path) as t:
    m = t.getmember(name)
pos = m.offset_data + m.size // 2
with open(path, "r+b") as f:
    f.seek(pos)
    b = f.read(1)
    f.seek(pos)
    f.write(bytes([b[0] ^ 0x01]))
PY
[[ $(cmp -l "$snap/snapshot.tar" "$flip/$src/$id/snapshot.tar" | wc -l) -eq 1 ]] || fail "not exactly one byte flipped"
flipped=$(target_db flipped)
run_deployctl --quiet restore "$id" --database "$url" --target "$(db_url "$flipped")" --store "$flip"
expect_error_line "flipped byte" "member $member: segment [0-9]+ .*does not authenticate"
db_exists "$flipped" && fail "flipped byte: the database created for the restore is still there"
run_deployctl --quiet restore "$id" --database "$url" --store "$flip" --yes --no-safety-snapshot
expect_error_line "flipped byte in place" "$member.*does not authenticate"
unchanged "flipped byte in place"
flipped_jobs=$(target_db flipped_jobs)
run_deployctl --quiet restore "$id" --database "$url" --target "$(db_url "$flipped_jobs")" --store "$flip" --jobs 2
expect_error_line "flipped byte, --jobs 2" "$member.*does not authenticate"
db_exists "$flipped_jobs" && fail "flipped byte, --jobs 2: the created database is still there"
run_deployctl --quiet verify "$id" --database "$url" --store "$flip"
[[ $rc -ne 0 ]] || fail "verify accepted a flipped byte"
grep -qF -- "$member" "$WORK/err" || fail "verify does not name $member: $(cat "$WORK/err")"
pass "flipped byte in $member: $(cat "$WORK/err")"

# An edited manifest (a valid change: the tag) no longer authenticates.
forged=$WORK/forged
mkdir -p "$forged/$src" && cp -a "$snap" "$forged/$src/"
jq '.tag = "nightly"' "$m" >"$forged/$src/$id/manifest.json"
forged_db=$(target_db forged)
run_deployctl --quiet restore "$id" --database "$url" --target "$(db_url "$forged_db")" --store "$forged"
expect_error_line "edited manifest" "manifest does not authenticate"
db_exists "$forged_db" && fail "edited manifest: the target database was created"
pass "edited manifest: $(cat "$WORK/err")"

# ---- how the key may (not) be given ----
run_deployctl --quiet backup --database "$url" --store "$store" --encryption-key "$key_hex"
expect_error_line "key on argv" "cannot be given on the command line"
run_deployctl --quiet backup --database "$url" --store "$store" --encryption-key="$key_hex"
expect_error_line "key on argv (=)" "cannot be given on the command line.*set DEPLOYCTL_ENCRYPTION_KEY instead, or better give a key file"
grep -q "(null)" "$WORK/err" && fail "key on argv: $(cat "$WORK/err")"
no_key_in_output "key on argv"
cp "$WORK/key" "$WORK/open.key" && chmod 644 "$WORK/open.key"
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/open.key run_deployctl --quiet backup --database "$url" --store "$store"
expect_error_line "key file readable by others" "may be read by group or others .*chmod 600"
echo "not a key" >"$WORK/bad.key"
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/bad.key run_deployctl --quiet backup --database "$url" --store "$store"
expect_error_line "malformed key file" "is not a 32-byte key"
(
    unset DEPLOYCTL_ENCRYPTION_KEY_FILE
    run_deployctl --quiet backup --database "$url" --store "$store" --encryption on
    expect_error_line "encryption on without a key" "encryption is on .* but no key is given"
)
run_deployctl backup --database "$url" --store "$store" --encryption off --quiet
[[ $rc -eq 0 ]] || fail "backup with --encryption off failed: $(cat "$WORK/err")"
plain_id=$(tail -n 1 "$WORK/out")
assert_eq null "$(jq -c .encryption "$store/$src/$plain_id/manifest.json")" "encryption with --encryption off"
pass "the key never comes from argv; unsafe or malformed key files, and 'on' without a key, are refused"

# A restore over a database with tables takes its pre-restore snapshot encrypted too.
run_deployctl restore "$id" --database "$url" --store "$store" --yes --json
[[ $rc -eq 0 ]] || fail "in-place restore with the key failed: $(cat "$WORK/err")"
safety=$(jq -r .safety_snapshot "$WORK/out")
assert_eq "$key_id" "$(jq -r .encryption.key_id "$store/$src/$safety/manifest.json")" "pre-restore snapshot key id"
unchanged "in-place restore of a snapshot of itself"
pass "in-place restore: pre-restore snapshot $safety is encrypted with the same key"
