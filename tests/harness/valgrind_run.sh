#!/usr/bin/env bash
# Runs one integration test with every deployctl it starts under valgrind's memcheck:
#   valgrind_run.sh TEST.sh
# DEPLOYCTL (which lib.sh, assert_lib.sh and the standalone tests honour) points at
# valgrind_deployctl.sh. The test fails if it fails, or if any deployctl process reported a
# memory error or a definite or indirect leak; the offending valgrind logs are printed. They are
# kept in BUILD/valgrind/TEST/ until the test's next run. DC_TIME_FACTOR tells the tests' own
# waits how much slower deployctl runs here (default 10; assert_lib.sh's `scaled`).
set -uo pipefail

# The logs with errors (memcheck counts the definite and indirect leaks as errors here). A
# process killed before its summary (the SIGKILL tests) counts by the errors it reported.
failed_logs() { # dir
    local log
    for log in "$1"/*.log; do
        [[ -f $log ]] || continue
        if grep -q -E '^==[0-9]+== ERROR SUMMARY: [1-9]' "$log" ||
            { ! grep -q 'ERROR SUMMARY' "$log" &&
                grep -q -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument)' "$log"; }; then
            echo "$log"
        fi
    done
}

main() {
    : "${DC_BUILD_DIR:?run the tests through ctest (DC_BUILD_DIR unset)}"
    local script=$1 name=${TEST_NAME:-$(basename "$1" .sh)} here rc runs bad log
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    command -v valgrind >/dev/null ||
        { echo "FAIL [$name]: valgrind is not installed (scripts/setup-debian.sh)" >&2; return 1; }

    export DC_VALGRIND_LOGS=$DC_BUILD_DIR/valgrind/$name
    export DC_VALGRIND_BINARY=${DEPLOYCTL:-$DC_BUILD_DIR/deployctl}
    export DEPLOYCTL=$here/valgrind_deployctl.sh
    export DC_TIME_FACTOR=${DC_TIME_FACTOR:-10}
    rm -rf "$DC_VALGRIND_LOGS"
    mkdir -p "$DC_VALGRIND_LOGS"

    bash "$script"
    rc=$?

    runs=$(find "$DC_VALGRIND_LOGS" -name '*.log' | wc -l)
    bad=$(failed_logs "$DC_VALGRIND_LOGS")
    if [[ -n $bad ]]; then
        for log in $bad; do
            echo "---- valgrind: $log" >&2
            cat "$log" >&2
        done
        echo "FAIL [$name]: memcheck found errors in $(wc -l <<<"$bad") of $runs deployctl runs (logs above)" >&2
        return 1
    fi
    [[ $rc -eq 0 || $rc -eq 77 ]] && echo "valgrind: $runs deployctl runs, no error and no leak"
    return "$rc"
}

# All in functions: bash has read the whole file before the test starts.
main "$@"
exit
