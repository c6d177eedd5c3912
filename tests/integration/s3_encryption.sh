#!/usr/bin/env bash
# Encryption through the S3 store (s3rver): a snapshot taken with a key into s3:// restores into
# an identical database and verifies with the key; what the real `aws` client fetches is
# ciphertext (no plaintext row in it) with the manifest's SHA-256; the wrong key is refused
# before a database is created.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"

src=$(new_db src)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
psql_admin "$src" -c "CREATE TABLE public.big (id int PRIMARY KEY, a text);
  INSERT INTO public.big SELECT g, 'secret-marker-' || g FROM generate_series(1, 50000) g" >/dev/null
url=$(db_url "$src")
umask 077
openssl rand -hex 32 >"$WORK/key"
openssl rand -hex 32 >"$WORK/other.key"
export DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/key

run_deployctl backup --database "$url" --store "$S3_STORE" --jobs 2 --chunk-size 256KiB --quiet
[[ $rc -eq 0 ]] || fail "encrypted backup to S3 failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")

aws_s3 s3 cp --only-show-errors "s3://$DC_S3_BUCKET/$S3_PREFIX/$src/$id/manifest.json" "$WORK/manifest.json"
aws_s3 s3 cp --only-show-errors "s3://$DC_S3_BUCKET/$S3_PREFIX/$src/$id/snapshot.tar" "$WORK/snapshot.tar"
assert_eq aes-256-gcm "$(jq -r .encryption.algorithm "$WORK/manifest.json")" "manifest encryption"
assert_eq "$(jq -r .archive.sha256 "$WORK/manifest.json")" "$(sha256sum <"$WORK/snapshot.tar" | cut -d' ' -f1)" \
    "sha256 of the encrypted archive fetched by aws"
mkdir "$WORK/x" && tar -xf "$WORK/snapshot.tar" -C "$WORK/x"
! grep -rqaE 'secret-marker|CREATE TABLE' "$WORK/x" || fail "plaintext in the archive stored on S3"
pass "encrypted backup into $S3_STORE: aws fetches ciphertext with the manifest's SHA-256"

copy="${src}_copy"
drop_at_exit "$copy"
run_deployctl restore "$id" --database "$url" --target "$(db_url "$copy")" --store "$S3_STORE" --jobs 2
[[ $rc -eq 0 ]] || fail "restore of the encrypted snapshot from S3 failed: $(cat "$WORK/err")"
diff -u <(fingerprint "$src") <(fingerprint "$copy") >"$WORK/d" || fail "content differs: $(head -30 "$WORK/d")"
run_deployctl verify "$id" --database "$url" --store "$S3_STORE"
[[ $rc -eq 0 ]] || fail "verify of the encrypted snapshot on S3 failed: $(cat "$WORK/err")"
pass "restored from S3 with --jobs 2 (content identical) and verified with the key"

wrong="${src}_wrong"
drop_at_exit "$wrong"
DEPLOYCTL_ENCRYPTION_KEY_FILE=$WORK/other.key run_deployctl --quiet restore "$id" --database "$url" \
    --target "$(db_url "$wrong")" --store "$S3_STORE"
[[ $rc -eq 1 && $(wc -l <"$WORK/err") -eq 1 ]] || fail "wrong key: rc $rc, $(cat "$WORK/err")"
grep -q "but the key given has id" "$WORK/err" || fail "wrong key: unclear: $(cat "$WORK/err")"
[[ $(psql_value postgres "SELECT count(*) FROM pg_database WHERE datname = '$wrong'") -eq 0 ]] ||
    fail "wrong key: the target database was created"
pass "wrong key against S3: $(cat "$WORK/err")"
