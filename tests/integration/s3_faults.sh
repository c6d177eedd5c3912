#!/usr/bin/env bash
# deployctl through tests/harness/fault_proxy.py, between it and the S3 server: every request's
# SigV4 signature is recomputed (the server does not check them); refused connections, 500s,
# resets in the middle of parts and of downloads, and stalls are ridden out by retries, and the
# restore of what was written is identical; an upload whose parts fail for good is aborted and
# leaves nothing listed.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"

src=$(new_db src)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
psql_admin "$src" -c "CREATE TABLE big (id int PRIMARY KEY, a text);
  INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 300000) g" >/dev/null
url=$(db_url "$src")
expected=$(fingerprint "$src")
export DEPLOYCTL_S3_PART_SIZE=5MiB

# ---- signatures: the verifier accepts the real aws client, then every deployctl request ----
start_proxy sigv4 --verify-sigv4
# The two clients side by side: each takes seconds just to start.
aws --endpoint-url "$PROXY_ENDPOINT" s3 ls "s3://$DC_S3_BUCKET/" >/dev/null 2>"$WORK/aws.err" &
aws_ls=$!
aws --endpoint-url "$PROXY_ENDPOINT" s3 cp --only-show-errors "$DC_SOURCE_DIR/README.md" "s3://$DC_S3_BUCKET/$S3_PREFIX-aws/a+b=c%d.md" ||
    fail "the SigV4 verifier rejects an aws upload: $(tail -3 "$PROXY_LOG")"
wait "$aws_ls" || fail "the SigV4 verifier rejects the aws client itself: $(cat "$WORK/aws.err") $(cat "$PROXY_LOG")"
grep -q ' 403 ' "$PROXY_LOG" && fail "the verifier rejected aws: $(grep ' 403 ' "$PROXY_LOG")"
sig_store="$S3_STORE-sigv4"
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl backup --database "$url" --store "$sig_store" --jobs 2
[[ $rc -eq 0 ]] || fail "backup through the SigV4 verifier failed: $(cat "$WORK/err") $(grep ' 403 ' "$PROXY_LOG" | head -3)"
id=$(tail -n 1 "$WORK/out")
dst=$(new_db sig)
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl restore "$id" --database "$url" --store "$sig_store" --target "$(db_url "$dst")" --jobs 2 --yes
[[ $rc -eq 0 ]] || fail "restore through the SigV4 verifier failed: $(cat "$WORK/err")"
grep -q ' 403 ' "$PROXY_LOG" && fail "a deployctl request had a wrong signature: $(grep ' 403 ' "$PROXY_LOG" | head -3)"
for kind in 'POST .*uploads=' 'PUT .*partNumber=' 'POST .*uploadId=' 'GET .*list-type=2' 'HEAD ' 'DELETE '; do
    grep -qE "^[0-9]+ $kind" "$PROXY_LOG" || fail "no '$kind' request went through the verifier"
done
[[ $(fingerprint "$dst") == "$expected" ]] || fail "restore through the verifier: content differs"
pass "$(wc -l <"$PROXY_LOG") requests (multipart, ranged GETs, listing, HEAD, DELETE) carry valid SigV4 signatures"
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT AWS_SECRET_ACCESS_KEY=not-the-secret run_deployctl snapshots --store "$sig_store"
[[ $rc -eq 1 ]] || fail "a wrong secret was not refused (rc $rc)"
grep -q 'SignatureDoesNotMatch\|signature does not match' "$WORK/err" || fail "no signature error: $(cat "$WORK/err")"
grep -q 'AWS_SECRET_ACCESS_KEY' "$WORK/err" || fail "the error does not name AWS_SECRET_ACCESS_KEY: $(cat "$WORK/err")"
pass "a wrong secret: $(cat "$WORK/err")"

# ---- transient faults: the backup and the restore complete through retries ----
export AWS_MAX_ATTEMPTS=8 DEPLOYCTL_S3_TIMEOUT=3s
start_proxy chaos --refuse-for 1 --fail500 5 --reset-body 3 --stall 11 --stall-seconds 6
chaos_store="$S3_STORE-chaos"
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl backup --database "$url" --store "$chaos_store" --jobs 2
[[ $rc -eq 0 ]] || fail "backup through the faults failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
for fault in ' 500$' ' reset-mid-request$' ' stall$'; do
    grep -qE "$fault" "$PROXY_LOG" || fail "the proxy injected no '$fault' during the backup: $(cat "$PROXY_LOG")"
done
grep -q 'refusing for' "$PROXY_LOG" || fail "connections were not refused"
pass "backup completed through refused connections, 500s, resets mid-part and stalls ($(grep -cE ' (500|reset-mid-request|stall)$' "$PROXY_LOG") faults)"
dst=$(new_db chaos)
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl restore "$id" --database "$url" --store "$chaos_store" --target "$(db_url "$dst")" --jobs 2 --yes
[[ $rc -eq 0 ]] || fail "restore through the faults failed: $(cat "$WORK/err")"
[[ $(fingerprint "$dst") == "$expected" ]] || fail "restore through the faults: content differs"
grep -q ' reset-mid-answer$' "$PROXY_LOG" || fail "no download was cut in the middle"
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl verify "$id" --store "$chaos_store" --database "$url"
[[ $rc -eq 0 ]] || fail "verify through the faults failed: $(cat "$WORK/err")"
pass "restore --jobs 2 and verify through downloads cut mid-answer resume by range: identical content"

# ---- a part that fails for good: the backup fails cleanly, the upload is aborted ----
export AWS_MAX_ATTEMPTS=3
start_proxy broken --fail-parts-from 2
broken_store="$S3_STORE-broken"
AWS_ENDPOINT_URL_S3=$PROXY_ENDPOINT run_deployctl backup --database "$url" --store "$broken_store" --jobs 2
[[ $rc -eq 1 ]] || fail "backup with failing parts: expected exit 1, got $rc"
[[ $(grep -c 'error' "$WORK/err") -ge 1 ]] || fail "no error reported"
grep -q 'HTTP 500' "$WORK/err" || fail "the error does not say what the server answered: $(cat "$WORK/err")"
grep -q 'after 3 tries' "$WORK/err" || fail "the error does not say it was tried 3 times: $(cat "$WORK/err")"
created=$(grep -E '^[0-9]+ POST .*uploads= 200$' "$PROXY_LOG" | wc -l)
[[ $created -ge 1 ]] || fail "no multipart upload was started: $(cat "$PROXY_LOG")"
aborted=$(grep -cE '^[0-9]+ DELETE .*uploadId=' "$PROXY_LOG" || true)
[[ $aborted -ge $created ]] || fail "$created uploads started, $aborted aborted: $(cat "$PROXY_LOG")"
run_deployctl snapshots --store "$broken_store" --all
[[ $rc -eq 0 ]] || fail "snapshots failed: $(cat "$WORK/err")"
[[ $(grep -c "$src" "$WORK/out" || true) -eq 0 ]] || fail "the failed backup is listed: $(cat "$WORK/out")"
left=$(aws_s3 s3 ls --recursive "s3://$DC_S3_BUCKET/$S3_PREFIX-broken/" || true)
[[ -z $left ]] || fail "the failed backup left objects: $left"
pass "a part failing for good: exit 1 ($(head -c 300 "$WORK/err")), upload aborted (DELETE ?uploadId), nothing listed or left"
