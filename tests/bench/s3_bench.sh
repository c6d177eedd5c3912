#!/usr/bin/env bash
# s3_bench.sh - `deployctl backup` into a local S3 server (s3rver on loopback) against the same
# backup into file://, in one run. A BENCHMARK, not a test: not registered with ctest; run it by
# hand and read the report. Target (issue 5): S3 wall time <= 1.3x file://, peak RSS within
# three parts (the part filling and two uploading) plus a constant.
#
# Usage: tests/bench/s3_bench.sh [--sizes "1GB"] [--jobs N] [--repeat K] [--keep]
#        (the options of backup_bench.sh; --json and --strict are accepted and ignored)
# Rounds alternate file:// and s3:// so both see the same warm cache; medians of K rounds.
set -euo pipefail

BENCH_NAME=s3_bench.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench_lib.sh"
WALL_RATIO_MAX=1.3

bench_parse_args "$@"
bench_clear_env
bench_start deployctl-s3-bench

s3_state=$work/s3
mkdir -p "$s3_state"
# Reuse the test fixture's s3rver install when there is one (no network needed).
[[ -d $repo_root/build/tests/s3/npm/node_modules/s3rver ]] && cp -r "$repo_root/build/tests/s3/npm" "$s3_state/npm"
"$repo_root/tests/harness/s3rver.sh" start "$s3_state" >"$work/s3rver.log" 2>&1 ||
    { cat "$work/s3rver.log" >&2; die "cannot start s3rver"; }
trap '"$repo_root/tests/harness/s3rver.sh" stop "$s3_state" >/dev/null 2>&1 || true; cleanup' EXIT
# shellcheck disable=SC1091
source "$s3_state/env"
export AWS_ACCESS_KEY_ID=$DC_S3_KEY AWS_SECRET_ACCESS_KEY=$DC_S3_SECRET AWS_ENDPOINT_URL_S3=$DC_S3_ENDPOINT \
    AWS_REGION=us-east-1 DEPLOYCTL_S3_PATH_STYLE=true
part_size=$((8 * 1024 * 1024)) # the default for databases under 40 GB
# S3_BENCH_ARGS: extra backup options for the s3:// runs (e.g. "--s3-part-size 8MiB").
# --verbose always: its debug lines say how long the server took to complete the upload.
s3_args="--verbose ${S3_BENCH_ARGS:-}"

for size in "${size_list[@]}"; do
    generate_and_describe "$size"
    file_walls="" s3_walls="" cp_walls="" complete_walls="" file_rss=0 s3_rss=0 bytes=0
    for round in $(seq 1 "$repeat"); do
        measure "$runs/file-$round" "$deployctl" backup --config "$work/empty.conf" --database "$db_url" \
            --store "file://$runs/store-$round" --jobs "$jobs" --state-dir "$work/state"
        [[ $M_RC -eq 0 ]] || { tail "$runs/file-$round/err" >&2; die "file:// backup failed"; }
        file_walls+="$M_WALL "
        ((M_RSS > file_rss)) && file_rss=$M_RSS
        # The server's own floor: the real aws client uploading the finished archive.
        measure "$runs/cp-$round" aws --endpoint-url "$DC_S3_ENDPOINT" s3 cp --quiet \
            "$(find "$runs/store-$round" -name snapshot.tar | head -n 1)" "s3://$DC_S3_BUCKET/awscp-$round/snapshot.tar"
        [[ $M_RC -eq 0 ]] || { tail "$runs/cp-$round/err" >&2; die "aws s3 cp failed"; }
        cp_walls+="$M_WALL "
        rm -rf "$runs/store-$round" "$DC_S3_DATA/$DC_S3_BUCKET/awscp-$round"
        measure "$runs/s3-$round" "$deployctl" backup --config "$work/empty.conf" --database "$db_url" \
            --store "s3://$DC_S3_BUCKET/bench-$round" --jobs "$jobs" --state-dir "$work/state" $s3_args
        [[ $M_RC -eq 0 ]] || { tail "$runs/s3-$round/err" >&2; die "s3:// backup failed"; }
        s3_walls+="$M_WALL "
        ((M_RSS > s3_rss)) && s3_rss=$M_RSS
        # CompleteMultipartUpload of the archive: work on the server's side alone (s3rver copies
        # and hashes every part again; S3 assembles the object from its parts' metadata).
        complete=$(sed -n 's/.*snapshot\.tar: upload completed in \([0-9.]*\) s.*/\1/p' "$runs/s3-$round/err")
        [[ -n $complete ]] || die "no 'upload completed' line in the --verbose log of s3 round $round"
        complete_walls+="$complete "
        bytes=$(find "$DC_S3_DATA" -name 'snapshot.tar._S3rver_object' -path "*bench-$round*" -printf '%s\n' | head -n 1)
        rm -rf "$DC_S3_DATA/$DC_S3_BUCKET/bench-$round"
        echo "round $round: file:// $(awk "{print \$NF}" <<<"$file_walls") s, s3:// $M_WALL s"
    done
    fw=$(median "$file_walls" "%.2f")
    sw=$(median "$s3_walls" "%.2f")
    cw=$(median "$cp_walls" "%.2f")
    kw=$(median "$complete_walls" "%.2f")
    ratio=$(calc "printf \"%.2f\", $sw / $fw")
    ratio_client=$(calc "printf \"%.2f\", ($sw - $kw) / $fw")
    echo
    echo "| $size, --jobs $jobs, medians of $repeat | wall s | peak RSS |"
    echo "|---|---:|---:|"
    echo "| deployctl backup → file:// | $fw | $(mib $((file_rss * 1024))) MiB |"
    echo "| deployctl backup → s3:// (s3rver, default parts) | $sw | $(mib $((s3_rss * 1024))) MiB |"
    echo "| of which the server completing the upload (CompleteMultipartUpload) | $kw | |"
    echo "| reference: aws s3 cp of the finished archive → s3rver | $cw | |"
    echo "archive: $(mib "${bytes:-0}") MiB; wall ratio s3/file: $ratio (target <= $WALL_RATIO_MAX:" \
        "$(calc "exit !($ratio <= $WALL_RATIO_MAX)" && echo met || echo NOT met));" \
        "without the server's completion: $ratio_client;" \
        "RSS growth s3-file: $(mib $(((s3_rss - file_rss) * 1024))) MiB (bound: 3 parts = $(mib $((3 * part_size))) MiB + a constant)"
done
