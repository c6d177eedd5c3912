# Helpers for the s3_* integration tests (sourced after lib.sh): the server started by the `s3`
# fixture, its credentials in the AWS_* environment (as users give them), a prefix of the
# test's own in the shared bucket, and the real `aws` client to cross-check what deployctl did.
if [[ ! -f $DC_BUILD_DIR/tests/s3/env ]]; then
    echo "the S3 server is not running: run the tests through ctest (fixture 's3')" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$DC_BUILD_DIR/tests/s3/env"
[[ -z ${DC_S3_MISSING:-} ]] || skip "$DC_S3_MISSING"

export AWS_ACCESS_KEY_ID=$DC_S3_KEY
export AWS_SECRET_ACCESS_KEY=$DC_S3_SECRET
export AWS_ENDPOINT_URL_S3=$DC_S3_ENDPOINT
export AWS_REGION=us-east-1
export DEPLOYCTL_S3_PATH_STYLE=true
unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_PROFILE AWS_CONFIG_FILE \
    AWS_SHARED_CREDENTIALS_FILE AWS_CA_BUNDLE AWS_MAX_ATTEMPTS || true
# The aws client must not read a profile of the machine's.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

# A prefix no other test (or earlier run) uses.
S3_PREFIX="$TEST_NAME-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
S3_STORE="s3://$DC_S3_BUCKET/$S3_PREFIX"

# The real AWS command-line client against the test server.
aws_s3() {
    command -v aws >/dev/null || skip "the aws client is not installed (Debian package awscli)"
    aws --endpoint-url "$DC_S3_ENDPOINT" "$@"
}

# Starts tests/harness/fault_proxy.py in front of the S3 server with the given faults; sets
# PROXY_ENDPOINT and PROXY_LOG. Stopped when the test ends.
start_proxy() { # name faults...
    local name=$1
    shift
    PROXY_LOG=$WORK/proxy-$name.log
    : >"$PROXY_LOG"
    DC_PROXY_SECRET=$DC_S3_SECRET python3 "$HARNESS/fault_proxy.py" --upstream "$DC_S3_PORT" \
        --port-file "$WORK/proxy-$name.port" --log "$PROXY_LOG" --lifetime 900 "$@" &
    local pid=$!
    on_exit "kill $pid 2>/dev/null"
    for _ in $(seq 1 50); do
        [[ -s $WORK/proxy-$name.port ]] && break
        sleep 0.1
    done
    [[ -s $WORK/proxy-$name.port ]] || fail "the fault proxy did not start"
    PROXY_ENDPOINT=http://127.0.0.1:$(cat "$WORK/proxy-$name.port")
}
