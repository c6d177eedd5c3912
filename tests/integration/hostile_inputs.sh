#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed: every input here is refused before a connection.
# Hostile command-line and config inputs get one clear error line, exit 1, and touch nothing:
# snapshot ids that are not ids (paths out of the store, encoded slashes, trailing paths) for
# every command that takes one; store URLs with odd schemes or shapes; config values out of
# type or range, overflowing, or with shell text. (Hostile archives and manifests:
# unit_test_snapshot_hostile, unit_test_manifest, verify_forgery; fuzzing: fuzz_smoke.)
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup hostile_inputs
export DEPLOYCTL_STATE_DIR=$WORK/state
unset DEPLOYCTL_CONFIG DEPLOYCTL_STORE DATABASE_URL DATABASE_URL_DIRECT
store=$WORK/store
mkdir -p "$store"
unreachable=postgresql://nobody@127.0.0.1:1/none

# refused NAME WANT ARGS...: exit 1, one line on stderr holding WANT, nothing on stdout, and
# nothing new under the work directory but the state directory.
refused() {
    local name=$1 want=$2
    shift 2
    local before after rc=0
    before=$(find "$WORK" -path "$WORK/state" -prune -o -print | grep -v '/\(out\|err\)$' | sort)
    "$DEPLOYCTL" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null || rc=$?
    [[ $rc -eq 1 ]] || fail "$name: exit $rc, expected 1 (stderr: $(cat "$WORK/err"))"
    grep -qF -- "$want" "$WORK/err" || fail "$name: expected '$want' in: $(cat "$WORK/err")"
    [[ $(wc -l <"$WORK/err") -eq 1 ]] || fail "$name: more than one error line: $(cat "$WORK/err")"
    [[ ! -s $WORK/out ]] || fail "$name: wrote to stdout: $(cat "$WORK/out")"
    after=$(find "$WORK" -path "$WORK/state" -prune -o -print | grep -v '/\(out\|err\)$' | sort)
    [[ $before == "$after" ]] || fail "$name: files appeared: $(diff <(echo "$before") <(echo "$after"))"
}

# ---- snapshot ids that are not ids ----
ids=('../../etc' '20261125T013259Z-0f9a/../x' '20261125T013259Z-0f9a%2F..%2Fx' '/etc/passwd'
    'latest/../x' '20261125T013259Z-0F9A' '20261125T013259Z-0f9a ' '' '..' '.')
n=0
for id in "${ids[@]}"; do
    refused "show '$id'" "is not a snapshot id" show "$id" --store "$store"
    refused "verify '$id'" "is not a snapshot id" verify "$id" --store "$store" --database "$unreachable"
    refused "restore '$id'" "is not a snapshot id" restore "$id" --store "$store" --database "$unreachable"
    n=$((n + 1))
done
pass "$n ids that are not ids refused by show, verify and restore, nothing created"

# ---- store URLs ----
urls=('ftp://host/dir' 'file:relative' 'file:' 'file://relative/dir' 'javascript:alert(1)'
    'http://example.com/x' 'S3://bucket/x' 's3://' 's3:///prefix' 's3://ab' 's3://Bucket/x'
    's3://bucket/a//b' 's3://bucket/../other' 's3://bucket/a/./b' 's3://bucket/x?y=1'
    "file://$store?x=1" "file://$store#frag" 'gopher://x/y' '~/snapshots')
n=0
for u in "${urls[@]}"; do
    refused "store '$u'" "store URL '$u'" snapshots --store "$u"
    n=$((n + 1))
done
refused "empty store" "no store given" snapshots --store ''
pass "$n odd store URLs (and an empty one) refused, each named in its error"

# ---- config values ----
conf=$WORK/state/deployctl.conf
mkdir -p "$WORK/state"
values=('backup|jobs|99999999999999999999' 'backup|jobs|0x10' 'backup|jobs|4 # comment'
    'backup|jobs|-1' 'backup|chunk_size|-1MiB' 'backup|chunk_size|99999999999999999999GiB'
    'backup|chunk_size|16EiB' 'backup|chunk_size|1.5MiB' 'backup|lock_timeout|-5s'
    'backup|lock_timeout|99999999999999999d' 'backup|compression_level|1e3'
    'log|level|info; rm -rf /' 'log|level|' 's3|path_style|maybe' 's3|max_attempts|2147483648'
    'retention|keep_last|-3' 'check|max_snapshot_age|1y' 'log|format|$(id)')
n=0
for v in "${values[@]}"; do
    IFS='|' read -r section key value <<<"$v"
    printf '[%s]\n%s = %s\n' "$section" "$key" "$value" >"$conf"
    chmod 600 "$conf"
    refused "[$section] $key = '$value'" "invalid value '$value'" snapshots --config "$conf" --store "$store"
    n=$((n + 1))
done
printf '[backup]\njobs = 2\n[backup\n' >"$conf"
refused "an unclosed section" "line 3" snapshots --config "$conf" --store "$store"
printf '[backup]\njobs = 2\nrm -rf / = 1\n' >"$conf"
refused "an unknown key" "line 3" snapshots --config "$conf" --store "$store"
printf '[backup]\njobs = 2\n' >"$conf"
"$DEPLOYCTL" snapshots --config "$conf" --store "$store" >"$WORK/out" 2>"$WORK/err" ||
    fail "a valid config file was refused: $(cat "$WORK/err")"
pass "$n odd config values refused naming the value (and the same file with a valid value accepted)"
