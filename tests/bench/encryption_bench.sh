#!/usr/bin/env bash
# encryption_bench.sh - `deployctl backup` and `deployctl restore` with client-side encryption
# (AES-256-GCM, a key file) against the same without, in one run. A BENCHMARK, not a test: not
# registered with ctest; run it by hand and read the report. Target (issue 5): encryption on
# <= 1.1x the wall time of encryption off, for backup and for restore.
#
# Usage: tests/bench/encryption_bench.sh [--sizes "1GB"] [--jobs N] [--repeat K] [--keep]
#        (the options of backup_bench.sh; --json and --strict are accepted and ignored)
# Each round runs backup off and on, then restore off and on (atomic, into a new --target
# database, dropped after; odd rounds off first, even rounds on first), so all see the same
# warm cache; medians of K rounds, and the client's CPU time (user + sys), which the load of
# a shared machine disturbs much less than wall time. The ratio checked against the target is
# the median of each round's on/off ratio (both ran back to back under the same load). The
# machine's load average is printed before and after: on a shared machine, read the ratios
# with it.
set -euo pipefail

BENCH_NAME=encryption_bench.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench_lib.sh"
RATIO_MAX=1.1

# paired ON OFF: the on/off ratio of each round ("v1 v2 ..." in round order), space separated.
paired() {
    paste -d' ' <(tr ' ' '\n' <<<"$1" | sed '/^$/d') <(tr ' ' '\n' <<<"$2" | sed '/^$/d') |
        awk '{ printf "%.3f ", $1 / $2 }'
}

bench_parse_args "$@"
bench_clear_env
unset DEPLOYCTL_ENCRYPTION DEPLOYCTL_ENCRYPTION_KEY DEPLOYCTL_ENCRYPTION_KEY_FILE || true
bench_start deployctl-encryption-bench
(umask 077 && openssl rand -hex 32 >"$work/key")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($cores cores)"

for size in "${size_list[@]}"; do
    generate_and_describe "$size"
    declare -A w=([backup_off]="" [backup_on]="" [restore_off]="" [restore_on]="")
    declare -A r=([backup_off]=0 [backup_on]=0 [restore_off]=0 [restore_on]=0)
    declare -A c=([backup_off]="" [backup_on]="" [restore_off]="" [restore_on]="")
    declare -A stored=()
    for round in $(seq 1 "$repeat"); do
        # Which goes first alternates between rounds, so a drift in the machine's load
        # (shared machines) weighs on both alike.
        order="off on"
        ((round % 2 == 0)) && order="on off"
        for mode in $order; do
            key=()
            [[ $mode == on ]] && key=(--encryption on --encryption-key-file "$work/key")
            store="file://$runs/store-$mode"
            rm -rf "$runs/store-$mode"
            measure "$runs/backup-$mode-$round" "$deployctl" backup --config "$work/empty.conf" \
                --database "$db_url" --store "$store" --jobs "$jobs" --state-dir "$work/state" "${key[@]}"
            [[ $M_RC -eq 0 ]] || { tail "$runs/backup-$mode-$round/err" >&2; die "backup ($mode) failed"; }
            w[backup_$mode]+="$M_WALL "
            c[backup_$mode]+="$M_CPU "
            ((M_RSS > r[backup_$mode])) && r[backup_$mode]=$M_RSS
            stored[$mode]=$(find "$runs/store-$mode" -name snapshot.tar -printf '%s\n' | head -n 1)
        done
        for mode in $order; do
            key=()
            [[ $mode == on ]] && key=(--encryption-key-file "$work/key")
            target=${db}_restored_$mode
            drop_db "$target" >/dev/null
            measure "$runs/restore-$mode-$round" "$deployctl" restore latest --config "$work/empty.conf" \
                --database "$db_url" --target "$DC_PG_URL_BASE/$target" --store "file://$runs/store-$mode" \
                --state-dir "$work/state" "${key[@]}"
            [[ $M_RC -eq 0 ]] || { tail "$runs/restore-$mode-$round/err" >&2; die "restore ($mode) failed"; }
            w[restore_$mode]+="$M_WALL "
            c[restore_$mode]+="$M_CPU "
            ((M_RSS > r[restore_$mode])) && r[restore_$mode]=$M_RSS
            drop_db "$target" >/dev/null
        done
        echo "round $round: backup off/on $(awk '{print $NF}' <<<"${w[backup_off]}")/$(awk '{print $NF}' <<<"${w[backup_on]}") s," \
            "restore off/on $(awk '{print $NF}' <<<"${w[restore_off]}")/$(awk '{print $NF}' <<<"${w[restore_on]}") s"
    done
    echo
    echo "| $size, backup --jobs $jobs, atomic restore, medians of $repeat | wall s | client CPU s | peak RSS |"
    echo "|---|---:|---:|---:|"
    for t in backup_off backup_on restore_off restore_on; do
        echo "| ${t/_/ encryption } | $(median "${w[$t]}" "%.2f") | $(median "${c[$t]}" "%.2f") | $(mib $((r[$t] * 1024))) MiB |"
    done
    for op in backup restore; do
        rounds=$(paired "${w[${op}_on]}" "${w[${op}_off]}")
        ratio=$(median "$rounds" "%.3f")
        echo "$op wall ratio on/off, median of the rounds' ratios: $ratio (target <= $RATIO_MAX:" \
            "$(calc "exit !($ratio <= $RATIO_MAX)" && echo met || echo NOT met)); per round: $rounds;" \
            "ratio of the medians: $(calc "printf \"%.3f\", $(median "${w[${op}_on]}" "%f") / $(median "${w[${op}_off]}" "%f")");" \
            "client CPU on - off: $(calc "printf \"%+.2f\", $(median "${c[${op}_on]}" "%f") - $(median "${c[${op}_off]}" "%f")") s"
    done
    echo "archive: $(mib "${stored[off]:-0}") MiB plain, $(mib "${stored[on]:-0}") MiB encrypted"
    rm -rf "$runs"/store-*
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
