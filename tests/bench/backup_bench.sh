#!/usr/bin/env bash
# backup_bench.sh - how fast and how lean `deployctl backup` is, next to pg_dump and the raw
# COPY floor. A BENCHMARK, not a test: it is not registered with ctest, it takes minutes, and
# its numbers depend on the machine. Run it by hand (or from a perf job) and read the report.
#
# Usage:
#   tests/bench/backup_bench.sh [--sizes "100MB 1GB"] [--jobs N] [--deployctl PATH]
#                               [--repeat K] [--json FILE] [--keep] [--strict]
#
#   --sizes LIST     database sizes to generate, space separated (default "100MB 1GB");
#                    units B, kB, MB, GB, TB (powers of 1024, as PostgreSQL's pg_size_bytes;
#                    KiB, MiB, GiB, TiB are accepted too); at least 32MB
#   --jobs N         parallel workers for deployctl, pg_dump -Fd and floor-parallel (default 2)
#   --deployctl PATH the binary to measure (default $DEPLOYCTL, else <repo>/build/deployctl)
#   --repeat K       run every tool K times, in rounds (deployctl, pg_dump -Fc, ... again),
#                    and report the median wall time and the largest peak RSS (default 1)
#   --json FILE      also write the results there: a JSON array, one object per size
#   --keep           leave the cluster running and the work directory (outputs) in place
#   --strict         exit 3 when a target is missed (default: only a failed run is an error)
#
# Exit status: 0 when every run completed (targets missed or not), 3 with --strict when a
# target was missed, 1 when a measured tool failed, 2 on bad arguments, and non-zero when
# the cluster or the data cannot be set up. It takes about 30 s at 100MB and a few
# minutes at 1GB on 2 cores, and needs roughly twice the largest size in free space under
# /tmp (the cluster) and $TMPDIR (the outputs, removed after each size unless --keep).
#
# What one run does, against ONE throwaway cluster started with tests/harness/pg_cluster.sh:
#   for each size S:
#     1. generates a database of about S bytes (pg_database_size, aimed within +-15%), server
#        side with generate_series: a wide `orders` table (text, numeric, timestamps; ~70% of
#        the rest), a jsonb `events` table (~30% of the rest), an `attachments` table whose
#        bytea column holds random-looking, poorly compressible bytes (~10% of S), a few small
#        tables (countries, products, customers, settings), primary keys, secondary indexes and
#        a foreign key; then VACUUM ANALYZE and CHECKPOINT;
#     2. warm-up: one `COPY <table> TO STDOUT` pass over every table (counted with wc -c), so
#        every measured tool sees the same warm OS page cache instead of the first one paying
#        for cold reads (the database fits in RAM at the default sizes);
#     3. measures, one after the other, wall time (date +%s.%N deltas) and peak RSS
#        (/usr/bin/time -f %M, in KiB; also the client's user+sys CPU, %U + %S):
#          deployctl backup --jobs N   into a fresh file:// store in the work dir (same disk)
#          pg_dump -Fc                 to a file
#          pg_dump -Fd -j N            to a directory
#          floor                       psql `COPY <table> TO STDOUT` > /dev/null, one psql per
#                                      table, sequentially: a single stream, no compression
#          floor-parallel              the same in N parallel streams; tables bigger than
#                                      deployctl's split size (64MiB of heap) are cut into ctid
#                                      ranges like deployctl does (PostgreSQL >= 14), assigned
#                                      largest first to the least loaded stream
#        `sync` runs (untimed) after each tool, so one tool's dirty pages do not slow the next;
#     4. prints a table (tool, wall s, MiB/s, peak RSS MiB, output MiB) and the ratios with
#        their targets: deployctl wall / pg_dump -Fc wall <= 0.33, deployctl MiB/s / floor
#        MiB/s >= 0.8, deployctl peak RSS <= 64 MiB (plus, for information, the ratios to
#        pg_dump -Fd -jN and to floor-parallel).
#   At the end: whether deployctl's peak RSS stayed within 64 MiB at every size (the bound
#   must not grow with the database).
#
# How to read the numbers:
#   - MiB/s is the same numerator for every tool: the COPY text bytes of all tables (the sum
#     of .tables[].raw_bytes in deployctl's manifest), divided by that tool's wall time, so the
#     rates compare like with like whatever each tool writes.
#   - Every tool connects over the same TCP URL with a password (as deployctl does in
#     production), so all pay the same protocol and authentication costs. URLs are printed
#     with the password replaced by ***.
#   - Peak RSS is GNU time's %M: the largest single process of the tool's process tree, not a
#     sum. deployctl's workers are threads, so its figure covers all of them (and its pg_dump
#     child for the schema, if that is larger); pg_dump -Fd -jN is N+1 processes, of which
#     the largest is shown.
#   - client CPU s is user+sys time of the tool's own processes (GNU time %U + %S), not of the
#     PostgreSQL backends serving them; with --repeat, the median.
#   - pg_dump runs with its defaults (gzip compression, sync of the output); deployctl with
#     its defaults (zstd level 3, 16MiB chunks, 64MiB split size). The environment that
#     could change deployctl's settings (DEPLOYCTL_*, DATABASE_URL*) is cleared and an empty
#     config file is passed, so /etc/deployctl is never read; DEPLOYCTL_STATE_DIR points into
#     the work directory.
set -euo pipefail

BENCH_NAME=backup_bench.sh
# shellcheck source=bench_lib.sh source-path=SCRIPTDIR
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench_lib.sh"

# ---- settings (the shared ones, RSS_LIMIT_MIB and the generator's, are in bench_lib.sh) ----

WALL_VS_FC_MAX=0.33
FLOOR_MIN=0.80
SPLIT_BYTES=$((64 * 1024 * 1024)) # deployctl's default --split-size

bench_parse_args "$@"
bench_clear_env
bench_start deployctl-bench

# ---- the floor: psql COPY streams ----

# Runs one stream of COPY statements (one per line of each file), one psql per statement; with
# several files, one stream per file in parallel. Runs under /usr/bin/time as its own process.
# shellcheck disable=SC2016
STREAM_RUNNER='
run_stream() {
    local sql
    while IFS= read -r sql; do
        "$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_URL" -c "$sql" >/dev/null || return 1
    done <"$1"
}
pids=()
for f in "$@"; do run_stream "$f" & pids+=("$!"); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit "$rc"'

# ---- one size ----

declare -A run_label=()
tools=(deployctl pg_dump_fc pg_dump_fd floor floor_parallel)
run_label[deployctl]="deployctl backup -j$jobs"
run_label[pg_dump_fc]="pg_dump -Fc"
run_label[pg_dump_fd]="pg_dump -Fd -j$jobs"
run_label[floor]="floor (1 stream)"
run_label[floor_parallel]="floor-parallel ($jobs streams)"

bench_size() { # size
    local size=$1 target=${target_of[$1]} db db_url runs gen_s db_bytes dev
    generate_and_describe "$size"

    # Units of work: whole tables for the single stream; ctid ranges of big tables for the
    # parallel streams (as deployctl splits them).
    local tables name heap weight nt=0
    tables=$(list_tables "$db")
    : >"$runs/floor.units"
    : >"$runs/parallel.units"
    local split_blocks=$((SPLIT_BYTES / block_size))
    while IFS=$'\t' read -r name heap weight; do
        [[ -n $name ]] || continue
        nt=$((nt + 1))
        printf 'COPY %s TO STDOUT\n' "$name" >>"$runs/floor.units"
        local blocks=$((heap / block_size)) first=0 upper
        if [[ $pg_version_num -ge 140000 && $blocks -gt $split_blocks ]]; then
            while [[ $first -lt $blocks ]]; do
                upper=""
                [[ $((first + split_blocks)) -lt $blocks ]] && upper=" AND ctid < '($((first + split_blocks)),0)'::tid"
                printf '%s\tCOPY (SELECT * FROM ONLY %s WHERE ctid >= '\''(%s,0)'\''::tid%s) TO STDOUT\n' \
                    "$(((blocks - first < split_blocks ? blocks - first : split_blocks) * block_size))" \
                    "$name" "$first" "$upper" >>"$runs/parallel.units"
                first=$((first + split_blocks))
            done
        else
            printf '%s\tCOPY %s TO STDOUT\n' "$weight" "$name" >>"$runs/parallel.units"
        fi
    done <<<"$tables"
    # Largest unit first to the least loaded stream.
    local i
    for ((i = 0; i < jobs; i++)); do : >"$runs/stream.$i"; done
    sort -t $'\t' -k1,1nr "$runs/parallel.units" |
        awk -F '\t' -v n="$jobs" -v dir="$runs" '{
            best = 0
            for (i = 1; i < n; i++) if (load[i] < load[best]) best = i
            load[best] += $1
            print $2 >> (dir "/stream." best)
        }'
    local stream_files=()
    for ((i = 0; i < jobs; i++)); do stream_files+=("$runs/stream.$i"); done

    # Warm-up: every table read once (and its COPY text counted).
    local copy_bytes=0 b
    while IFS= read -r sql; do
        b=$(PGOPTIONS='-c extra_float_digits=3' "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db_url" -c "$sql" | wc -c)
        copy_bytes=$((copy_bytes + b))
    done <"$runs/floor.units"
    echo "warm-up: $nt tables read once, $(mib "$copy_bytes") MiB of COPY text"

    declare -A wall=() rss=() cpu=() outb=() ok=() walls=() rsses=() cpus=()
    local t rep store=$runs/store raw_bytes="" stored_bytes="" manifest snap_id
    for t in "${tools[@]}"; do ok[$t]=0 walls[$t]="" rsses[$t]="" cpus[$t]=""; done
    export BENCH_PSQL=$PSQL
    for ((rep = 1; rep <= repeat; rep++)); do
        [[ $repeat -eq 1 ]] || echo "round $rep of $repeat ..."
        for t in "${tools[@]}"; do
            [[ ${ok[$t]} -eq 0 ]] || continue # failed once: not run again
            case $t in
            deployctl)
                rm -rf "$store" "$runs/state" # a fresh store every time
                measure "$runs/run.$t" env DEPLOYCTL_STATE_DIR="$runs/state" "$deployctl" backup \
                    --config "$work/empty.conf" --quiet --jobs "$jobs" --pg-dump "$PG_DUMP" \
                    --database "$db_url" --store "file://$store"
                ;;
            pg_dump_fc)
                rm -f "$runs/dump.fc"
                measure "$runs/run.$t" "$PG_DUMP" -Fc -d "$db_url" -f "$runs/dump.fc"
                ;;
            pg_dump_fd)
                rm -rf "$runs/dump.fd"
                measure "$runs/run.$t" "$PG_DUMP" -Fd -j "$jobs" -d "$db_url" -f "$runs/dump.fd"
                ;;
            floor) BENCH_URL=$db_url measure "$runs/run.$t" bash -c "$STREAM_RUNNER" stream "$runs/floor.units" ;;
            floor_parallel) BENCH_URL=$db_url measure "$runs/run.$t" bash -c "$STREAM_RUNNER" stream "${stream_files[@]}" ;;
            esac
            record_run "$t" "$runs/run.$t" || continue
            case $t in
            deployctl)
                snap_id=$(tail -n 1 "$runs/run.$t/out")
                manifest=$(find "$store" -name manifest.json -path "*/$snap_id/*" 2>/dev/null | head -n 1)
                if [[ -n $manifest ]]; then
                    raw_bytes=$(jq '[.tables[].raw_bytes] | add // 0' "$manifest")
                    stored_bytes=$(jq '[.tables[].chunks[].stored_bytes] | add // 0' "$manifest")
                else
                    echo "WARNING: deployctl printed '$snap_id' but no manifest.json for it is in the store" >&2
                fi
                outb[$t]=$(du -sb "$store" | cut -f1)
                ;;
            pg_dump_fc) outb[$t]=$(stat -c %s "$runs/dump.fc") ;;
            pg_dump_fd) outb[$t]=$(du -sb "$runs/dump.fd" | cut -f1) ;;
            esac
        done
    done
    summarize_runs

    # The common numerator: deployctl's manifest; the warm-up count if there is none.
    local numer=$raw_bytes numer_src="deployctl manifest, sum of .tables[].raw_bytes"
    if [[ -z $numer ]]; then
        numer=$copy_bytes numer_src="warm-up psql COPY count (no deployctl manifest)"
    fi
    echo "raw COPY text: $(mib "$numer") MiB ($numer_src); psql counted $(mib "$copy_bytes") MiB"
    if [[ -n $raw_bytes && $raw_bytes -ne $copy_bytes ]]; then
        echo "note: manifest raw_bytes ($raw_bytes) != psql COPY byte count ($copy_bytes)"
    fi
    if [[ -n $stored_bytes && -n $raw_bytes && $stored_bytes -gt 0 ]]; then
        echo "deployctl compression: $(mib "$raw_bytes") MiB -> $(mib "$stored_bytes") MiB of chunks ($(calc "printf \"%.2f\", $raw_bytes / $stored_bytes")x)"
    fi

    declare -A rate=() rss_mib=() out_mib=()
    echo
    printf '%-28s %9s %9s %13s %11s %13s\n' tool "wall s" "MiB/s" "peak RSS MiB" "output MiB" "client CPU s"
    for t in "${tools[@]}"; do
        rate[$t]="" rss_mib[$t]="" out_mib[$t]=""
        [[ -z ${wall[$t]} ]] || rate[$t]=$(ratio "$(mib "$numer")" "${wall[$t]}")
        [[ -z ${rss[$t]} ]] || rss_mib[$t]=$(calc "printf \"%.1f\", ${rss[$t]} / 1024")
        [[ -z ${outb[$t]:-} ]] || out_mib[$t]=$(mib "${outb[$t]}")
        [[ -z ${rate[$t]} ]] || rate[$t]=$(calc "printf \"%.1f\", ${rate[$t]}")
        printf '%-28s %9s %9s %13s %11s %13s\n' "${run_label[$t]}" "$(fmt_or_dash "${wall[$t]}")" \
            "$(fmt_or_dash "${rate[$t]}")" "$(fmt_or_dash "${rss_mib[$t]}")" "$(fmt_or_dash "${out_mib[$t]}")" \
            "$(fmt_or_dash "${cpu[$t]}")"
    done

    local r_fc r_fd r_floor r_par v_fc v_floor v_rss
    r_fc=$(ratio "${wall[deployctl]}" "${wall[pg_dump_fc]}")
    r_fd=$(ratio "${wall[deployctl]}" "${wall[pg_dump_fd]}")
    # throughput ratio = inverse wall ratio (same numerator)
    r_floor=$(ratio "${wall[floor]}" "${wall[deployctl]}")
    r_par=$(ratio "${wall[floor_parallel]}" "${wall[deployctl]}")
    v_fc=$(verdict "$r_fc" "<=" "$WALL_VS_FC_MAX")
    v_floor=$(verdict "$r_floor" ">=" "$FLOOR_MIN")
    v_rss=$(verdict "${rss_mib[deployctl]}" "<=" "$RSS_LIMIT_MIB")
    [[ $v_fc == PASS && $v_floor == PASS && $v_rss == PASS ]] || any_target_failed=1
    echo
    echo "ratios:"
    print_ratio "deployctl wall / pg_dump -Fc wall" "$r_fc" "target <= $WALL_VS_FC_MAX" "$v_fc"
    print_ratio "deployctl wall / pg_dump -Fd -j$jobs wall" "$r_fd" "(info)" ""
    print_ratio "deployctl MiB/s / floor MiB/s" "$r_floor" "target >= $FLOOR_MIN" "$v_floor"
    print_ratio "deployctl MiB/s / floor-parallel MiB/s" "$r_par" "(info)" ""
    print_ratio "deployctl peak RSS MiB" "${rss_mib[deployctl]}" "target <= $RSS_LIMIT_MIB" "$v_rss"

    rss_summary+=("$size=$(fmt_or_dash "${rss_mib[deployctl]}")=$v_rss")

    # JSON
    local runs_json='{}' rj
    for t in "${tools[@]}"; do
        rj=$(jq -n --arg name "${run_label[$t]}" --argjson ok "$([[ ${ok[$t]} -eq 0 ]] && echo true || echo false)" \
            --argjson code "${ok[$t]}" --argjson wall "$(json_num "${wall[$t]}")" \
            --argjson rate "$(json_num "${rate[$t]}")" --argjson rss "$(json_num "${rss[$t]}")" \
            --argjson out "$(json_num "${outb[$t]:-}")" --argjson cpu "$(json_num "${cpu[$t]}")" \
            '{"label": $name, "ok": $ok, "exit_code": $code, "wall_seconds": $wall,
              "mib_per_second": $rate, "peak_rss_kib": $rss, "output_bytes": $out,
              "client_cpu_seconds": $cpu}')
        runs_json=$(jq -n --argjson all "$runs_json" --arg k "$t" --argjson v "$rj" '$all + {($k): $v}')
    done
    results_json+=("$(jq -n \
        --arg size "$size" --argjson target "$target" --arg db "$db" --argjson db_bytes "$db_bytes" \
        --argjson dev "$dev" --argjson gen "$gen_s" --argjson raw "$numer" --arg raw_src "$numer_src" \
        --argjson copy_bytes "$copy_bytes" --argjson stored "$(json_num "$stored_bytes")" \
        --argjson tables "$nt" --argjson jobs "$jobs" --argjson repeat "$repeat" --arg pg "$pg_version" \
        --arg dv "$deployctl_version" --arg cores "$cores" --argjson runs "$runs_json" \
        --argjson r_fc "$(json_num "$r_fc")" --argjson r_fd "$(json_num "$r_fd")" \
        --argjson r_floor "$(json_num "$r_floor")" --argjson r_par "$(json_num "$r_par")" \
        --argjson rss_mib "$(json_num "${rss_mib[deployctl]}")" \
        --argjson fc_max "$WALL_VS_FC_MAX" --argjson floor_min "$FLOOR_MIN" --argjson rss_max "$RSS_LIMIT_MIB" \
        --arg v_fc "$v_fc" --arg v_floor "$v_floor" --arg v_rss "$v_rss" \
        '{size: $size, target_bytes: $target, database: $db, database_bytes: $db_bytes,
          size_deviation_percent: $dev, generate_seconds: $gen, tables: $tables, jobs: $jobs, repeat: $repeat,
          raw_copy_bytes: $raw, raw_copy_bytes_source: $raw_src, psql_copy_bytes: $copy_bytes,
          deployctl_chunk_bytes: $stored, postgres_version: $pg, deployctl_version: $dv, cores: $cores,
          runs: $runs,
          ratios: {deployctl_wall_vs_pg_dump_fc: $r_fc, deployctl_wall_vs_pg_dump_fd: $r_fd,
                   deployctl_rate_vs_floor: $r_floor, deployctl_rate_vs_floor_parallel: $r_par},
          targets: {wall_vs_pg_dump_fc: {value: $r_fc, max: $fc_max, result: $v_fc},
                    rate_vs_floor: {value: $r_floor, min: $floor_min, result: $v_floor},
                    peak_rss_mib: {value: $rss_mib, max: $rss_max, result: $v_rss}}}')")
    write_json

    if [[ $keep -eq 0 ]]; then
        rm -rf "$store" "$runs/dump.fc" "$runs/dump.fd" "$runs/state"
        drop_db "$db"
    fi
}
echo "deployctl backup benchmark: deployctl $deployctl_version ($deployctl), PostgreSQL $pg_version, $cores cores, jobs $jobs"
echo "sizes: ${size_list[*]}; rounds per tool: $repeat$([[ $repeat -eq 1 ]] || echo ' (median wall, largest RSS)'); work dir $work"
echo "database URL (all tools): $(mask <<<"$DC_PG_URL_BASE")/<db>"
echo "deployctl runs: DEPLOYCTL_STATE_DIR=<work>/state deployctl backup --quiet --jobs $jobs --pg-dump $PG_DUMP --database $(mask <<<"$DC_PG_URL_BASE")/<db> --store file://<work>/store"

for s in "${size_list[@]}"; do
    bench_size "$s"
done

echo
echo "=== summary"
print_rss_summary
[[ -z $json_out ]] || echo "JSON results: $json_out"
# shellcheck disable=SC2119  # no verdicts beyond the per-size ones
bench_exit
