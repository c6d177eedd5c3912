#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, checks the
# formatting, builds, runs every test with ctest, then runs them all again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the normal build only (no sanitizer pass)
#   scripts/test.sh --valgrind the end-to-end tests only, every deployctl under valgrind memcheck
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-debian.sh"

echo "== format"
"$root/scripts/format.sh" --check

jobs=$(nproc)
if [[ ${1:-} == --valgrind ]]; then # not in CI: over an hour on 2 cores (README.md, "Tests")
    "$root/scripts/build.sh" "$root/build-vg" -DDEPLOYCTL_VALGRIND=ON
    (cd "$root/build-vg" && ctest --output-on-failure -j "$jobs" -L integration \
        -E '^(fuzz_smoke|packaging_.*|hooks_examples|s3_store_live|smoke_sql_live)$')
    echo "== all end-to-end tests passed under valgrind" && exit 0
fi
echo "== build and test"
"$root/scripts/build.sh" "$root/build"
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if [[ ${1:-} != --quick ]]; then
    echo "== sanitizers (ASan + UBSan)"
    "$root/scripts/build.sh" "$root/build-sanitize" -DDEPLOYCTL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    # Not again here: fuzz_smoke builds and runs its own clang ASan + UBSan copy of the library
    # in either pass, and the packaging tests check files and a package, not deployctl's code.
    (cd "$root/build-sanitize" &&
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            ctest --output-on-failure -j "$jobs" -E '^(fuzz_smoke|packaging_.*)$')
fi
echo "== all tests passed"
