#!/usr/bin/env bash
# What a user gets wrong with an S3 store, each a clear one-line error and exit 1: an access
# key the server does not know, a bucket that does not exist, an endpoint that refuses or does
# not resolve, no credentials at all, a malformed URL. The [s3] section of a config file works
# without any AWS_* variable (secret from secret_access_key_file). More than 1000 objects are
# listed through ListObjectsV2's continuation tokens.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"

src=$(new_db src)
psql_admin "$src" -c "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
url=$(db_url "$src")

one_line_error() { # what pattern
    [[ $rc -eq 1 ]] || fail "$1: expected exit 1, got $rc ($(cat "$WORK/err"))"
    [[ $(grep -c 'error' "$WORK/err") -eq 1 ]] || fail "$1: not one error line: $(cat "$WORK/err")"
    grep -qE "$2" "$WORK/err" || fail "$1: the error does not match '$2': $(cat "$WORK/err")"
    grep -qF "$DC_S3_SECRET" "$WORK/err" && fail "$1: the secret was printed"
    pass "$1: $(grep error "$WORK/err")"
}

AWS_ACCESS_KEY_ID=NOSUCHKEY000 run_deployctl backup --database "$url" --store "$S3_STORE"
one_line_error "unknown access key" "does not know the access key id \(from AWS_ACCESS_KEY_ID\)"
run_deployctl backup --database "$url" --store "s3://no-such-bucket-$RANDOM/x"
one_line_error "unknown bucket" "bucket 'no-such-bucket-[0-9]+' does not exist at $DC_S3_ENDPOINT"
run_deployctl snapshots --store "s3://no-such-bucket-$RANDOM/x"
one_line_error "unknown bucket (listing)" "does not exist"
start=$(date +%s)
AWS_MAX_ATTEMPTS=2 AWS_ENDPOINT_URL_S3=http://127.0.0.1:9 run_deployctl snapshots --store "$S3_STORE"
one_line_error "refused endpoint" "cannot connect to the endpoint http://127.0.0.1:9 .*AWS_ENDPOINT_URL_S3"
[[ $(($(date +%s) - start)) -lt $(scaled 10) ]] || fail "a refused endpoint took too long to report"
AWS_MAX_ATTEMPTS=1 AWS_ENDPOINT_URL_S3=http://s3.does-not-exist.invalid run_deployctl snapshots --store "$S3_STORE"
one_line_error "unresolvable endpoint" "cannot resolve the endpoint http://s3.does-not-exist.invalid"
AWS_ACCESS_KEY_ID='' run_deployctl snapshots --store "$S3_STORE"
one_line_error "no credentials" "no S3 credentials: set AWS_ACCESS_KEY_ID"
run_deployctl snapshots --store "s3://Bad_Bucket/x"
one_line_error "malformed URL" "invalid store URL 's3://Bad_Bucket/x'"
run_deployctl snapshots --store "$S3_STORE" --s3-part-size 1MiB
one_line_error "part size below 5 MiB" "s3-part-size"

# The [s3] section alone, the secret in a file.
printf '%s\n' "$DC_S3_SECRET" >"$WORK/secret"
chmod 600 "$WORK/secret"
cat >"$WORK/deployctl.conf" <<CONF
[s3]
endpoint = $DC_S3_ENDPOINT
region = us-east-1
access_key_id = $DC_S3_KEY
secret_access_key_file = $WORK/secret
path_style = true
part_size = 5MiB
CONF
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL_S3 AWS_REGION DEPLOYCTL_S3_PATH_STYLE
    run_deployctl backup --config "$WORK/deployctl.conf" --database "$url" --store "$S3_STORE"
    [[ $rc -eq 0 ]] || fail "backup with the [s3] section alone failed: $(cat "$WORK/err")"
    run_deployctl snapshots --config "$WORK/deployctl.conf" --database "$url" --store "$S3_STORE"
    [[ $rc -eq 0 && $(grep -c "$src" "$WORK/out") -eq 1 ]] || fail "snapshots with [s3] alone: $(cat "$WORK/out" "$WORK/err")"
    sed -i "s/^access_key_id = .*/access_key_id = WRONGKEY1/" "$WORK/deployctl.conf"
    run_deployctl snapshots --config "$WORK/deployctl.conf" --store "$S3_STORE"
    one_line_error "unknown access key from the config file" "access key id \(from $WORK/deployctl.conf line 4\)"
)
pass "the [s3] section (secret_access_key_file) works without AWS_* variables"

# A secret written in a config file others can read: it works, with a warning, never printed.
cat >"$WORK/inline.conf" <<CONF
[s3]
access_key_id = $DC_S3_KEY
secret_access_key = $DC_S3_SECRET
CONF
chmod 644 "$WORK/inline.conf"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    run_deployctl snapshots --config "$WORK/inline.conf" --store "$S3_STORE"
    [[ $rc -eq 0 ]] || fail "an inline secret_access_key was not used: $(cat "$WORK/err")"
    grep -q "holds \[s3\] secret_access_key and is readable by others" "$WORK/err" ||
        fail "no warning for a readable secret: $(cat "$WORK/err")"
    if grep -qF "$DC_S3_SECRET" "$WORK/err" "$WORK/out"; then fail "the inline secret was printed"; fi
)
pass "a secret in a config file others can read works, with a warning"

# More than 1000 keys: 1050 incomplete snapshots made with the aws client.
# The names are made in the shell and the files by one mkdir and one touch (not 2100 processes).
many=()
for ((i = 1; i <= 1050; i++)); do
    printf -v d '%s/many/%s/20250101T%06dZ-%04x' "$WORK" "$src" "$i" "$i"
    many+=("$d/snapshot.tar")
done
mkdir -p "${many[@]%/snapshot.tar}"
touch "${many[@]}"
# More requests in flight than the client's default 10: the 1050 uploads take less time.
printf '[default]\ns3 =\n    max_concurrent_requests = 32\n' >"$WORK/aws-many.conf"
AWS_CONFIG_FILE=$WORK/aws-many.conf aws_s3 s3 cp --only-show-errors --recursive "$WORK/many/" "s3://$DC_S3_BUCKET/$S3_PREFIX-many/"
run_deployctl snapshots --store "s3://$DC_S3_BUCKET/$S3_PREFIX-many" --all --database "$url"
[[ $rc -eq 0 ]] || fail "listing 1050 snapshots failed: $(cat "$WORK/err")"
assert_eq 1050 "$(grep -c incomplete "$WORK/out")" "incomplete snapshots listed"
grep -q '20250101T000001Z-0001' "$WORK/out" || fail "the first key is missing"
grep -q '20250101T001050Z-041a' "$WORK/out" || fail "the last key is missing"
pass "1050 objects listed across ListObjectsV2 pages"
