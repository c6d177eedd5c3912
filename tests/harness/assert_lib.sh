# The verdict helpers every integration test uses (sourced by lib.sh, and alone by the tests
# that need no PostgreSQL): fail, pass, skip (exit 77, which ctest reports as skipped), assert_eq.

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    exit 1
}
pass() { echo "ok - $*"; }
skip() {
    echo "SKIP [$TEST_NAME]: $*"
    exit 77
}

# scaled N: N times DC_TIME_FACTOR, how much slower than native deployctl runs here (1, or 10
# under valgrind: harness/valgrind_run.sh). For the waits and pauses that assume native speed.
scaled() {
    awk -v n="$1" -v f="${DC_TIME_FACTOR:-1}" 'BEGIN { print n * f }'
}

assert_eq() { # expected actual message
    [[ $1 == "$2" ]] || fail "$3: expected '$1', got '$2'"
}

# For the tests without the cluster: the build, the binary, and a work directory removed at exit
# (WORK; a test with its own EXIT trap removes it there).
standalone_test_setup() { # name
    : "${DC_BUILD_DIR:?run the tests through ctest (DC_BUILD_DIR unset)}"
    : "${DC_SOURCE_DIR:?run the tests through ctest (DC_SOURCE_DIR unset)}"
    DEPLOYCTL=${DEPLOYCTL:-$DC_BUILD_DIR/deployctl}
    TEST_NAME=${TEST_NAME:-$1}
    WORK=$(mktemp -d "/tmp/deployctl-test-$TEST_NAME.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
}
