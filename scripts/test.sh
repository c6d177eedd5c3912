#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, checks the
# formatting, builds, runs every test with ctest, then runs them all again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the normal build only (no sanitizer pass)
#   scripts/test.sh --valgrind the end-to-end tests only, every deployctl under valgrind memcheck
# DEPLOYCTL_TEST_JOBS sets how many tests run at once (default: twice the cores, as most of a
# test's time is spent waiting on servers, hooks and pauses).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-debian.sh"

echo "== format"
"$root/scripts/format.sh" --check

jobs=${DEPLOYCTL_TEST_JOBS:-$(($(nproc) * 2))}
quick=false
[[ ${1:-} != --quick ]] || quick=true

if [[ ${1:-} == --valgrind ]]; then # not in CI: over an hour on 2 cores (README.md, "Tests")
    "$root/scripts/build.sh" "$root/build-vg" -DDEPLOYCTL_VALGRIND=ON
    (cd "$root/build-vg" && ctest --output-on-failure -j "$(nproc)" -L integration \
        -E '^(fuzz_smoke|packaging_.*|hooks_examples|s3_store_live|smoke_sql_live)$')
    echo "== all end-to-end tests passed under valgrind" && exit 0
fi
echo "== build and test"
"$root/scripts/build.sh" "$root/build"
# The sanitizer build compiles (at low priority) while the normal tests run: they leave the
# cores mostly idle.
san_build=
if ! $quick; then
    mkdir -p "$root/build-sanitize"
    nice -n 10 "$root/scripts/build.sh" "$root/build-sanitize" -DDEPLOYCTL_SANITIZE=ON \
        -DCMAKE_BUILD_TYPE=Debug >"$root/build-sanitize/build.log" 2>&1 &
    san_build=$!
    trap '[[ -z $san_build ]] || kill "$san_build" 2>/dev/null || true' EXIT
fi
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

if ! $quick; then
    echo "== sanitizers (ASan + UBSan)"
    if ! wait "$san_build"; then
        san_build=
        cat "$root/build-sanitize/build.log" >&2
        echo "the sanitizer build failed (log above: $root/build-sanitize/build.log)" >&2
        exit 1
    fi
    san_build=
    # Not again here: fuzz_smoke builds and runs its own clang ASan + UBSan copy of the library
    # in either pass; the packaging tests check files and a package, and hooks_examples the
    # example hook scripts, not deployctl's code.
    (cd "$root/build-sanitize" &&
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            ctest --output-on-failure -j "$jobs" -E '^(fuzz_smoke|packaging_.*|hooks_examples)$')
fi
echo "== all tests passed"
