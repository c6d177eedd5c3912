#!/usr/bin/env bash
# restore_bench.sh - how fast and how lean `deployctl restore` is, next to pg_restore. A
# BENCHMARK, not a test: it is not registered with ctest, it takes minutes, and its numbers
# depend on the machine. Run it by hand (or from a perf job) and read the report.
#
# Usage:
#   tests/bench/restore_bench.sh [--sizes "100MB 1GB"] [--jobs N] [--deployctl PATH]
#                                [--repeat K] [--json FILE] [--keep] [--strict]
#
#   --sizes LIST     database sizes to generate, space separated (default "100MB 1GB");
#                    units B, kB, MB, GB, TB (powers of 1024, as PostgreSQL's pg_size_bytes;
#                    KiB, MiB, GiB, TiB are accepted too); at least 32MB
#   --jobs N         parallel workers for deployctl restore --jobs, pg_restore -j and the
#                    inputs (deployctl backup --jobs, pg_dump -Fd -j) (default 2)
#   --deployctl PATH the binary to measure (default $DEPLOYCTL, else <repo>/build/deployctl)
#   --repeat K       run every restore K times, in rounds (deployctl, pg_restore, ... again),
#                    and report the median wall time and the largest peak RSS (default 1)
#   --json FILE      also write the results there: a JSON array, one object per size
#   --keep           leave the cluster running and the work directory (inputs) in place
#   --strict         exit 3 when a target is missed (default: only a failed run is an error)
#
# Exit status: 0 when every restore completed and restored every row (targets missed or
# not), 3 with --strict when a target was missed, 1 when a measured tool failed or a restored
# database has the wrong row count, 2 on bad arguments, and non-zero when the cluster, the
# data or the inputs cannot be set up. It takes about a minute at 100MB and several at 1GB on
# 2 cores, and needs roughly three times the largest size in free space under /tmp (the
# cluster: source and restored database) and $TMPDIR (the inputs, removed after each size
# unless --keep).
#
# What one run does, against ONE throwaway cluster started with tests/harness/pg_cluster.sh:
#   for each size S:
#     1. generates the source database of about S bytes with the generator of backup_bench.sh
#        (bench_lib.sh: a wide `orders` table, a jsonb `events` table, incompressible bytea
#        `attachments`, small tables, keys, indexes, a foreign key), VACUUM ANALYZE;
#     2. makes the inputs once, untimed: `deployctl backup --jobs N` into a file:// store in
#        the work dir (the snapshot id is the last line of its stdout), `pg_dump -Fc` to a
#        file, `pg_dump -Fd -j N` to a directory;
#     3. measures, one after the other, each into a database that does not exist yet (dropped
#        and CHECKPOINTed between runs, untimed), wall time (date +%s.%N deltas), peak RSS
#        (/usr/bin/time -f %M, in KiB) and the client's user+sys CPU (%U + %S):
#          deployctl restore <id> --target <new>            atomic: ONE transaction; deployctl
#                                                           creates the database itself
#          createdb -T template0 <new> &&                   the createdb counts in pg_restore's
#            pg_restore --single-transaction -d <new> -Fc   time, as deployctl's includes it
#          deployctl restore <id> --jobs N --target <new>   parallel, not atomic
#          createdb -T template0 <new> &&
#            pg_restore -j N -d <new> <-Fd directory>
#        `sync` runs (untimed) before and after each tool;
#     4. after every restore, untimed: the restored database must hold the source's row count
#        in its largest table and the same number of tables (a mismatch is a failed run); for
#        deployctl, its --json result must say it created the database, and its log must say
#        it ran in the intended mode ("in one transaction" / "with N connections");
#     5. prints a table (tool, wall s, peak RSS MiB, client CPU s) and the ratios with their
#        targets: deployctl atomic wall / pg_restore --single-transaction wall <= 1.0,
#        deployctl --jobs N wall / pg_restore -j N wall <= 0.8, deployctl peak RSS <= 64 MiB
#        (both modes).
#   At the end: whether deployctl's peak RSS (the larger of its two modes) stayed within 64 MiB
#   at every size, and, with two sizes or more, whether it grew from the smallest size to the
#   largest by at most 25% (the bound must not grow with the database; 25% is a tolerance
#   for noise, chosen here).
#
# How to read the numbers:
#   - Every tool connects over the same TCP URL with a password ($DC_PG_URL_BASE/<db>), so all
#     pay the same protocol and authentication costs. deployctl gets the URL (printed with
#     the password replaced by ***); createdb and pg_restore get its host, port and user as
#     flags and the password through PGPASSWORD in their environment, never on a command line.
#   - The inputs were just written, so every tool reads them from a warm page cache.
#   - Peak RSS is GNU time's %M: the largest single process of the tool's process tree, not a
#     sum. deployctl's workers are threads, so its figure covers all of them; pg_restore -j N
#     is N+1 processes, of which the largest is shown (createdb and the bash that runs both
#     are smaller).
#   - client CPU s is user+sys time of the tool's own processes (for pg_restore: with
#     createdb and the bash wrapper), not of the PostgreSQL backends serving them; with
#     --repeat, the median.
#   - pg_restore runs with its defaults otherwise (owners and privileges restored, as deployctl
#     does). deployctl runs with its defaults; the environment that could change its settings
#     (DEPLOYCTL_*, DATABASE_URL*) is cleared and an empty config file is passed, so
#     /etc/deployctl is never read; DEPLOYCTL_STATE_DIR points into the work directory.
set -euo pipefail

BENCH_NAME=restore_bench.sh
# shellcheck source=bench_lib.sh source-path=SCRIPTDIR
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench_lib.sh"

# ---- settings (the shared ones, RSS_LIMIT_MIB and the generator's, are in bench_lib.sh) ----

ATOMIC_VS_SINGLE_MAX=1.0 # deployctl restore / pg_restore --single-transaction
JOBS_VS_JOBS_MAX=0.8     # deployctl restore --jobs N / pg_restore -j N
RSS_GROWTH_MAX=1.25      # deployctl peak RSS at the largest size / at the smallest
RATIO_LABEL_WIDTH=52     # bench_lib.sh's print_ratio: room for the longer labels

bench_parse_args "$@"
bench_clear_env
bench_start deployctl-restore-bench

PG_RESTORE=$DC_PG_BIN/pg_restore
CREATEDB=$DC_PG_BIN/createdb
for tool in "$PG_RESTORE" "$CREATEDB"; do
    [[ -x $tool ]] || die "$tool is required (the PostgreSQL client that goes with the server)"
done

# The cluster's URL, postgresql://USER:PASSWORD@HOST:PORT, split for createdb and pg_restore.
[[ $DC_PG_URL_BASE =~ ^postgresql://([^:@/]+):[^@]*@([^:/@]+):([0-9]+)$ ]] ||
    die "cannot read the cluster URL $(mask <<<"$DC_PG_URL_BASE")"
PG_USER=${BASH_REMATCH[1]} PG_HOST=${BASH_REMATCH[2]} PG_PORT=${BASH_REMATCH[3]}

# createdb, then pg_restore into the new database; both over TCP, the password (PGPASSWORD)
# from the environment. Arguments: the database, then pg_restore's options and input.
# shellcheck disable=SC2016
CREATE_AND_RESTORE='
db=$1
shift
"$BENCH_CREATEDB" -h "$BENCH_HOST" -p "$BENCH_PORT" -U "$BENCH_USER" -T template0 "$db" || exit
exec "$BENCH_PG_RESTORE" -h "$BENCH_HOST" -p "$BENCH_PORT" -U "$BENCH_USER" -d "$db" "$@"'
export BENCH_CREATEDB=$CREATEDB BENCH_PG_RESTORE=$PG_RESTORE BENCH_HOST=$PG_HOST \
    BENCH_PORT=$PG_PORT BENCH_USER=$PG_USER

# ---- one size ----

declare -A run_label=()
tools=(deployctl_atomic pg_restore_single deployctl_jobs pg_restore_jobs)
run_label[deployctl_atomic]="deployctl restore (atomic)"
run_label[pg_restore_single]="pg_restore -1 (-Fc)"
run_label[deployctl_jobs]="deployctl restore -j$jobs"
run_label[pg_restore_jobs]="pg_restore -j$jobs (-Fd)"

rss_values=() # "size<TAB>KiB" of deployctl (larger mode) per size, for the growth check

# The user tables of a database, counted like list_tables lists them.
count_tables() { # db
    value "$1" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'deployctl')
                  AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'"
}

# check_restored TOOL RUNDIR: the restored database holds what the source holds (row count of
# the largest table, number of tables), and deployctl restored the way it was asked to. Sets
# the caller's check[t]; returns 1 on a mismatch (a failed run); warnings do not fail it.
check_restored() {
    local t=$1 dir=$2 rows ntab
    rows=$(value "$target_db" "SELECT count(*) FROM $largest" 2>/dev/null) || rows="(no such table)"
    ntab=$(count_tables "$target_db" 2>/dev/null) || ntab="?"
    if [[ $rows != "$largest_rows" || $ntab != "$source_tables" ]]; then
        check[$t]="FAIL: $largest has $rows rows (source $largest_rows), $ntab tables (source $source_tables)"
        return 1
    fi
    check[$t]=PASS
    case $t in
    deployctl_*)
        jq -e '.created_target == true' "$dir/out" >/dev/null 2>&1 ||
            echo "WARNING: ${run_label[$t]}: its --json result does not say it created $target_db: $(head -c 300 "$dir/out")" >&2
        local mode="in one transaction"
        [[ $t == deployctl_atomic ]] || mode="with $jobs connections"
        grep -q "$mode" "$dir/err" ||
            echo "WARNING: ${run_label[$t]}: its log does not say it restored \"$mode\"" >&2
        ;;
    esac
    return 0
}

bench_size() { # size
    local size=$1 target=${target_of[$1]} db db_url runs gen_s db_bytes dev
    generate_and_describe "$size"

    local largest largest_rows source_tables tables
    tables=$(list_tables "$db")
    largest=$(head -n 1 <<<"$tables" | cut -f1)
    largest_rows=$(value "$db" "SELECT count(*) FROM $largest")
    source_tables=$(count_tables "$db")

    # The inputs, untimed.
    local store=$runs/store snap_id manifest raw_bytes="" total_rows="" store_bytes fc_bytes fd_bytes in_t0
    echo "making the inputs (untimed): deployctl backup --jobs $jobs, pg_dump -Fc, pg_dump -Fd -j$jobs ..."
    in_t0=$(date +%s.%N)
    if ! env DEPLOYCTL_STATE_DIR="$runs/state" "$deployctl" backup --config "$work/empty.conf" --quiet \
        --jobs "$jobs" --pg-dump "$PG_DUMP" --database "$db_url" --store "file://$store" \
        >"$runs/backup.out" 2>"$runs/backup.err"; then
        echo "ERROR: the input backup failed:" \
            "deployctl backup --jobs $jobs --database $(mask <<<"$db_url") --store file://$store" >&2
        mask <"$runs/backup.err" | tail -n 20 | sed 's/^/  /' >&2
        exit 1
    fi
    snap_id=$(tail -n 1 "$runs/backup.out")
    "$PG_DUMP" -Fc -d "$db_url" -f "$runs/dump.fc" 2> >(mask >&2)
    "$PG_DUMP" -Fd -j "$jobs" -d "$db_url" -f "$runs/dump.fd" 2> >(mask >&2)
    manifest=$(find "$store" -name manifest.json -path "*/$snap_id/*" 2>/dev/null | head -n 1)
    if [[ -n $manifest ]]; then
        raw_bytes=$(jq '[.tables[].raw_bytes] | add // 0' "$manifest")
        total_rows=$(jq '[.tables[].rows // 0] | add // 0' "$manifest")
    else
        echo "WARNING: deployctl printed '$snap_id' but no manifest.json for it is in the store" >&2
    fi
    store_bytes=$(du -sb "$store" | cut -f1)
    fc_bytes=$(stat -c %s "$runs/dump.fc")
    fd_bytes=$(du -sb "$runs/dump.fd" | cut -f1)
    echo "inputs made in $(calc "printf \"%.1f\", $(date +%s.%N) - $in_t0") s: snapshot $snap_id ($(mib "$store_bytes") MiB store), dump.Fc $(mib "$fc_bytes") MiB, dump.Fd $(mib "$fd_bytes") MiB"
    echo "source: $source_tables tables, largest $largest with $largest_rows rows$([[ -z $raw_bytes ]] || echo "; $(mib "$raw_bytes") MiB of COPY text, $total_rows rows in the snapshot")"

    local target_db=${db}_restored
    local target_url=$DC_PG_URL_BASE/$target_db
    # Untimed, between runs: no target database (nor its autovacuum), no dirty buffers.
    reset_target() {
        drop_db "$target_db"
        admin postgres -c "CHECKPOINT"
    }

    declare -A wall=() rss=() cpu=() ok=() walls=() rsses=() cpus=() check=() code=()
    local t rep shown cmd=()
    for t in "${tools[@]}"; do ok[$t]=0 walls[$t]="" rsses[$t]="" cpus[$t]="" check[$t]="" code[$t]=0; done
    for ((rep = 1; rep <= repeat; rep++)); do
        [[ $repeat -eq 1 ]] || echo "round $rep of $repeat ..."
        for t in "${tools[@]}"; do
            [[ ${ok[$t]} -eq 0 ]] || continue # failed once: not run again
            reset_target
            rm -rf "$runs/state"
            case $t in
            deployctl_atomic | deployctl_jobs)
                cmd=("$deployctl" restore "$snap_id" --config "$work/empty.conf" --json --pg-dump "$PG_DUMP")
                [[ $t == deployctl_atomic ]] || cmd+=(--jobs "$jobs")
                cmd+=(--database "$db_url" --target "$target_url" --store "file://$store")
                shown="DEPLOYCTL_STATE_DIR=$runs/state ${cmd[*]}"
                measure "$runs/run.$t" env DEPLOYCTL_STATE_DIR="$runs/state" "${cmd[@]}"
                ;;
            pg_restore_single | pg_restore_jobs)
                cmd=("$target_db" --single-transaction "$runs/dump.fc")
                [[ $t == pg_restore_single ]] || cmd=("$target_db" -j "$jobs" "$runs/dump.fd")
                shown="PGPASSWORD=*** $CREATEDB -h $PG_HOST -p $PG_PORT -U $PG_USER -T template0 $target_db &&"
                shown+=" $PG_RESTORE -h $PG_HOST -p $PG_PORT -U $PG_USER -d ${cmd[*]}"
                PGPASSWORD=$DC_PG_PASSWORD measure "$runs/run.$t" bash -c "$CREATE_AND_RESTORE" create-and-restore "${cmd[@]}"
                ;;
            esac
            code[$t]=$M_RC
            if ! record_run "$t" "$runs/run.$t"; then
                echo "  the command: $(mask <<<"$shown")" >&2
                continue
            fi
            if ! check_restored "$t" "$runs/run.$t"; then
                # It ran, but did not restore everything: a failed run, its times are void.
                any_run_failed=1
                ok[$t]=-1
                echo "ERROR: ${run_label[$t]} exited 0 but the restored database is wrong: ${check[$t]}" >&2
                echo "  the command: $(mask <<<"$shown")" >&2
                walls[$t]="" rsses[$t]="" cpus[$t]=""
            fi
        done
    done
    reset_target
    summarize_runs

    declare -A rss_mib=()
    echo
    printf '%-28s %9s %13s %13s  %s\n' tool "wall s" "peak RSS MiB" "client CPU s" "restored"
    for t in "${tools[@]}"; do
        rss_mib[$t]=""
        [[ -z ${rss[$t]} ]] || rss_mib[$t]=$(calc "printf \"%.1f\", ${rss[$t]} / 1024")
        printf '%-28s %9s %13s %13s  %s\n' "${run_label[$t]}" "$(fmt_or_dash "${wall[$t]}")" \
            "$(fmt_or_dash "${rss_mib[$t]}")" "$(fmt_or_dash "${cpu[$t]}")" \
            "$(if [[ ${check[$t]} == PASS ]]; then echo "ok, $largest_rows rows in $largest"; else fmt_or_dash "${check[$t]:+FAILED}"; fi)"
    done

    local r_atomic r_jobs r_dc_speedup r_pg_speedup v_atomic v_jobs v_rss_a v_rss_j v_rss dc_rss=""
    r_atomic=$(ratio "${wall[deployctl_atomic]}" "${wall[pg_restore_single]}")
    r_jobs=$(ratio "${wall[deployctl_jobs]}" "${wall[pg_restore_jobs]}")
    r_dc_speedup=$(ratio "${wall[deployctl_jobs]}" "${wall[deployctl_atomic]}")
    r_pg_speedup=$(ratio "${wall[pg_restore_jobs]}" "${wall[pg_restore_single]}")
    v_atomic=$(verdict "$r_atomic" "<=" "$ATOMIC_VS_SINGLE_MAX")
    v_jobs=$(verdict "$r_jobs" "<=" "$JOBS_VS_JOBS_MAX")
    v_rss_a=$(verdict "${rss_mib[deployctl_atomic]}" "<=" "$RSS_LIMIT_MIB")
    v_rss_j=$(verdict "${rss_mib[deployctl_jobs]}" "<=" "$RSS_LIMIT_MIB")
    # deployctl's peak at this size: the larger of its two modes (missing if either failed).
    if [[ -n ${rss[deployctl_atomic]} && -n ${rss[deployctl_jobs]} ]]; then
        dc_rss=$((rss[deployctl_atomic] > rss[deployctl_jobs] ? rss[deployctl_atomic] : rss[deployctl_jobs]))
        rss_values+=("$size"$'\t'"$dc_rss")
    fi
    v_rss=FAIL
    [[ $v_rss_a == PASS && $v_rss_j == PASS ]] && v_rss=PASS
    [[ $v_atomic == PASS && $v_jobs == PASS && $v_rss == PASS ]] || any_target_failed=1
    echo
    echo "ratios:"
    print_ratio "deployctl atomic / pg_restore --single-transaction" "$r_atomic" "target <= $ATOMIC_VS_SINGLE_MAX" "$v_atomic"
    print_ratio "deployctl -j$jobs / pg_restore -j$jobs" "$r_jobs" "target <= $JOBS_VS_JOBS_MAX" "$v_jobs"
    print_ratio "deployctl -j$jobs / deployctl atomic" "$r_dc_speedup" "(info)" ""
    print_ratio "pg_restore -j$jobs / pg_restore --single-transaction" "$r_pg_speedup" "(info)" ""
    print_ratio "deployctl atomic peak RSS MiB" "${rss_mib[deployctl_atomic]}" "target <= $RSS_LIMIT_MIB" "$v_rss_a"
    print_ratio "deployctl -j$jobs peak RSS MiB" "${rss_mib[deployctl_jobs]}" "target <= $RSS_LIMIT_MIB" "$v_rss_j"

    local dc_rss_mib=""
    [[ -z $dc_rss ]] || dc_rss_mib=$(calc "printf \"%.1f\", $dc_rss / 1024")
    rss_summary+=("$size=$(fmt_or_dash "$dc_rss_mib")=$v_rss")

    # JSON
    local runs_json='{}' rj
    for t in "${tools[@]}"; do
        rj=$(jq -n --arg name "${run_label[$t]}" --argjson ok "$([[ ${ok[$t]} -eq 0 ]] && echo true || echo false)" \
            --argjson code "${code[$t]}" --argjson wall "$(json_num "${wall[$t]}")" \
            --argjson rss "$(json_num "${rss[$t]}")" --argjson cpu "$(json_num "${cpu[$t]}")" \
            --arg check "${check[$t]}" --arg rounds "${walls[$t]}" \
            '{"label": $name, "ok": $ok, "exit_code": $code, "wall_seconds": $wall,
              "wall_seconds_per_round": ($rounds | split(" ") | map(select(. != "") | tonumber)),
              "peak_rss_kib": $rss, "client_cpu_seconds": $cpu,
              "restored_check": (if $check == "" then null else $check end)}')
        runs_json=$(jq -n --argjson all "$runs_json" --arg k "$t" --argjson v "$rj" '$all + {($k): $v}')
    done
    results_json+=("$(jq -n \
        --arg size "$size" --argjson target "$target" --arg db "$db" --argjson db_bytes "$db_bytes" \
        --argjson dev "$dev" --argjson gen "$gen_s" --argjson tables "$source_tables" \
        --arg largest "$largest" --argjson largest_rows "$largest_rows" \
        --argjson raw "$(json_num "$raw_bytes")" --argjson rows "$(json_num "$total_rows")" \
        --arg snap "$snap_id" --argjson store_bytes "$store_bytes" --argjson fc_bytes "$fc_bytes" \
        --argjson fd_bytes "$fd_bytes" --argjson jobs "$jobs" --argjson repeat "$repeat" --arg pg "$pg_version" \
        --arg dv "$deployctl_version" --arg cores "$cores" --argjson runs "$runs_json" \
        --argjson r_atomic "$(json_num "$r_atomic")" --argjson r_jobs "$(json_num "$r_jobs")" \
        --argjson r_dc "$(json_num "$r_dc_speedup")" --argjson r_pg "$(json_num "$r_pg_speedup")" \
        --argjson rss_a "$(json_num "${rss_mib[deployctl_atomic]}")" --argjson rss_j "$(json_num "${rss_mib[deployctl_jobs]}")" \
        --argjson atomic_max "$ATOMIC_VS_SINGLE_MAX" --argjson jobs_max "$JOBS_VS_JOBS_MAX" --argjson rss_max "$RSS_LIMIT_MIB" \
        --arg v_atomic "$v_atomic" --arg v_jobs "$v_jobs" --arg v_rss_a "$v_rss_a" --arg v_rss_j "$v_rss_j" \
        '{size: $size, target_bytes: $target, database: $db, database_bytes: $db_bytes,
          size_deviation_percent: $dev, generate_seconds: $gen, tables: $tables,
          largest_table: $largest, largest_table_rows: $largest_rows,
          snapshot_raw_copy_bytes: $raw, snapshot_rows: $rows, jobs: $jobs, repeat: $repeat,
          postgres_version: $pg, deployctl_version: $dv, cores: $cores,
          inputs: {deployctl_snapshot: $snap, deployctl_store_bytes: $store_bytes,
                   pg_dump_fc_bytes: $fc_bytes, pg_dump_fd_bytes: $fd_bytes},
          runs: $runs,
          ratios: {deployctl_atomic_vs_pg_restore_single_transaction: $r_atomic,
                   deployctl_jobs_vs_pg_restore_jobs: $r_jobs,
                   deployctl_jobs_vs_deployctl_atomic: $r_dc,
                   pg_restore_jobs_vs_pg_restore_single_transaction: $r_pg},
          targets: {atomic_vs_pg_restore_single_transaction: {value: $r_atomic, max: $atomic_max, result: $v_atomic},
                    jobs_vs_pg_restore_jobs: {value: $r_jobs, max: $jobs_max, result: $v_jobs},
                    atomic_peak_rss_mib: {value: $rss_a, max: $rss_max, result: $v_rss_a},
                    jobs_peak_rss_mib: {value: $rss_j, max: $rss_max, result: $v_rss_j}}}')")
    write_json

    if [[ $keep -eq 0 ]]; then
        rm -rf "$store" "$runs/dump.fc" "$runs/dump.fd" "$runs/state"
        drop_db "$db"
    fi
}

masked_base=$(mask <<<"$DC_PG_URL_BASE")
echo "deployctl restore benchmark: deployctl $deployctl_version ($deployctl), PostgreSQL $pg_version, $cores cores, jobs $jobs"
echo "sizes: ${size_list[*]}; rounds per tool: $repeat$([[ $repeat -eq 1 ]] || echo ' (median wall, largest RSS)'); work dir $work"
echo "database URL (all tools): $masked_base/<db>"
echo "deployctl runs: DEPLOYCTL_STATE_DIR=<work>/state deployctl restore <id> --json [--jobs $jobs] --database $masked_base/<db> --target $masked_base/<db>_restored --store file://<work>/<db>/store"
echo "pg_restore runs: PGPASSWORD=*** createdb -h $PG_HOST -p $PG_PORT -U $PG_USER -T template0 <db>_restored && pg_restore -h $PG_HOST -p $PG_PORT -U $PG_USER -d <db>_restored {--single-transaction dump.fc | -j $jobs dump.fd}"

for s in "${size_list[@]}"; do
    bench_size "$s"
done

echo
echo "=== summary"
print_rss_summary
v_growth=PASS
if [[ ${#rss_values[@]} -ge 2 ]]; then
    # smallest and largest size that have a figure (sizes sorted by their byte count)
    first_size="" first_kib="" last_size="" last_kib=""
    for entry in "${rss_values[@]}"; do
        IFS=$'\t' read -r s kib <<<"$entry"
        if [[ -z $first_size || ${target_of[$s]} -lt ${target_of[$first_size]} ]]; then first_size=$s first_kib=$kib; fi
        if [[ -z $last_size || ${target_of[$s]} -gt ${target_of[$last_size]} ]]; then last_size=$s last_kib=$kib; fi
    done
    growth=$(ratio "$last_kib" "$first_kib")
    v_growth=$(verdict "$growth" "<=" "$RSS_GROWTH_MAX")
    echo "deployctl peak RSS from $first_size to $last_size: $(calc "printf \"%.1f\", $first_kib / 1024") -> $(calc "printf \"%.1f\", $last_kib / 1024") MiB (x$growth, target <= x$RSS_GROWTH_MAX): $v_growth"
else
    echo "deployctl peak RSS growth with size: not measured (needs two sizes or more)"
fi
[[ -z $json_out ]] || echo "JSON results: $json_out"
bench_exit "$v_growth"
