#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# A short fuzzing run: builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) in
# <build>/fuzz (kept, so later runs rebuild only what changed), replays every input kept in
# tests/fuzz/regressions/<target>/ (each once crashed a reader: it must not any more), then
# fuzzes each target for FUZZ_SECONDS (3) seconds from its seed corpus tests/fuzz/corpus/<target>/
# (fuzz_migrations also from the example app's migrations).
# A crash, a leak, undefined behaviour or a timeout fails the test; the input that did it is
# kept in <build>/fuzz-artifacts/ (move it into regressions/ with the fix).
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup fuzz_smoke
command -v clang >/dev/null || skip "clang is not installed (Debian package clang; scripts/setup-debian.sh)"
seconds=${FUZZ_SECONDS:-3}
fuzz_src=$DC_SOURCE_DIR/tests/fuzz
fuzz_build=$DC_BUILD_DIR/fuzz
artifacts=$DC_BUILD_DIR/fuzz-artifacts
mapfile -t targets < <(cd "$fuzz_src" && ls fuzz_*.c | sed 's/\.c$//')
[[ ${#targets[@]} -ge 5 ]] || fail "expected at least 5 fuzz targets in $fuzz_src, found ${targets[*]}"

# ---- build (configure once; then incremental) ----
start=$SECONDS
if [[ ! -f $fuzz_build/CMakeCache.txt ]]; then
    generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    CC=clang cmake -S "$DC_SOURCE_DIR" -B "$fuzz_build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DDEPLOYCTL_FUZZ=ON -DDEPLOYCTL_TESTS=OFF >"$WORK/configure.log" 2>&1 ||
        fail "configuring the fuzz build failed: $(tail -5 "$WORK/configure.log")"
fi
cmake --build "$fuzz_build" -j "$(nproc)" --target "${targets[@]}" >"$WORK/build.log" 2>&1 ||
    fail "building the fuzz targets failed: $(grep -m5 -E 'error|Error' "$WORK/build.log")"
pass "built ${targets[*]} in $((SECONDS - start)) s"

# libFuzzer exits non-zero (and writes the input to -artifact_prefix) on a crash, a leak,
# UBSan's report (-fno-sanitize-recover), an input slower than -timeout, or -rss_limit_mb.
fuzz_opts=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
mkdir -p "$artifacts"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
    bin=$fuzz_build/tests/fuzz/$t
    [[ -x $bin ]] || fail "$bin was not built"
    mkdir -p "$WORK/$t"
    # ---- every kept regression input, once ----
    mapfile -t regressions < <(find "$fuzz_src/regressions/$t" -type f ! -name '.*' 2>/dev/null | sort)
    if [[ ${#regressions[@]} -gt 0 ]]; then
        "$bin" "${fuzz_opts[@]}" -artifact_prefix="$artifacts/$t-" "${regressions[@]}" \
            >"$WORK/$t.replay.log" 2>&1 ||
            fail "$t crashes again on a regression input: $(grep -m3 -E 'ERROR|SUMMARY|runtime error' "$WORK/$t.replay.log")"
    fi
    # ---- a short run from the seed corpus (new inputs go to a scratch copy) ----
    seed_dirs=("$fuzz_src/corpus/$t")
    # The example app's migrations seed the migrations target where they are (no copies).
    [[ $t != fuzz_migrations ]] || seed_dirs+=("$DC_SOURCE_DIR/examples/inventory-app/prisma/migrations")
    seeds=$(find "${seed_dirs[@]}" -type f | wc -l)
    [[ $seeds -gt 0 ]] || fail "$t has no seed corpus in $fuzz_src/corpus/$t"
    if ! "$bin" "${fuzz_opts[@]}" -max_total_time="$seconds" -artifact_prefix="$artifacts/$t-" \
        "$WORK/$t" "${seed_dirs[@]}" >"$WORK/$t.log" 2>&1; then
        cp "$WORK/$t.log" "$artifacts/$t.log"
        fail "$t found a crash: $(grep -m3 -E 'ERROR|SUMMARY|runtime error|Test unit written' "$WORK/$t.log") (log: $artifacts/$t.log)"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$t.log")
    [[ ${execs:-0} -gt 0 ]] || fail "$t ran no input: $(tail -3 "$WORK/$t.log")"
    pass "$t: ${#regressions[@]} regression input(s) replayed, $execs runs in ${seconds} s from $seeds seeds, no crash"
done
