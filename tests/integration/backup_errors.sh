#!/usr/bin/env bash
# Bad input gets one clear error line naming what was wrong, a non-zero exit, no secret in the
# output, and nothing half-written in the store: unreachable database, wrong password, unwritable
# and full stores, a connection lost mid-backup, bad options and a malformed config file.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
psql_admin "$src" <<'SQL'
CREATE TABLE t (id bigint, payload text);
INSERT INTO t SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 6) FROM generate_series(1, 30000) g;
SQL
url=$(db_url "$src")
store=$WORK/store

# expect_error NAME PATTERN deployctl-args...: exit 1, exactly one line on stderr (with --quiet),
# which is an error line matching PATTERN and holding no password.
expect_error() {
    local name=$1 pattern=$2
    shift 2
    run_deployctl --quiet "$@"
    [[ $rc -eq 1 ]] || fail "$name: expected exit 1, got $rc (stderr: $(cat "$WORK/err"))"
    [[ $(wc -l <"$WORK/err") -eq 1 ]] || fail "$name: expected one line on stderr, got: $(cat "$WORK/err")"
    grep -q '^deployctl: error: ' "$WORK/err" || fail "$name: not an error line: $(cat "$WORK/err")"
    grep -qE -- "$pattern" "$WORK/err" || fail "$name: message does not match /$pattern/: $(cat "$WORK/err")"
    if grep -qF -- "$DC_PG_PASSWORD" "$WORK/err" "$WORK/out" || grep -qF "s3cr3t-Passw0rd" "$WORK/err" "$WORK/out"; then
        fail "$name: a password leaked into the output: $(cat "$WORK/err")"
    fi
    [[ -s $WORK/out ]] && fail "$name: printed something on stdout: $(cat "$WORK/out")"
    pass "$name: $(cat "$WORK/err")"
}

assert_store_clean() { # what
    if [[ -d $store ]]; then
        local left
        left=$(find "$store" -mindepth 1 -not -path "$store/.tmp" | head -5)
        [[ -z $left ]] || fail "$1: files left in the store: $left"
    fi
}

expect_error "unreachable database" "cannot connect to postgresql://dctest:\*\*\*@127.0.0.1:1/" \
    backup --database "postgresql://dctest:s3cr3t-Passw0rd@127.0.0.1:1/$src" --store "$store"
assert_store_clean "unreachable database"
expect_error "wrong password" "password authentication failed.*check the user and password" \
    backup --database "postgresql://dctest:s3cr3t-Passw0rd@127.0.0.1:$DC_PG_PORT/$src" --store "$store"
expect_error "unknown database" "does not exist" \
    backup --database "$DC_PG_URL_BASE/no_such_database_here" --store "$store"
expect_error "no database" "no database given" backup --store "$store"
expect_error "invalid URL" "invalid database URL" backup --database "postgresql://[bad" --store "$store"

touch "$WORK/a-file"
expect_error "store under a file" "cannot use store .*a-file" backup --database "$url" --store "$WORK/a-file/store"
expect_error "unsupported store" "unsupported store URL" backup --database "$url" --store "ftp://host/x"

expect_error "unknown option" "unknown option '--bogus'" backup --bogus
expect_error "unknown command" "unknown command 'bakup'" bakup
expect_error "option of another command" "option --jobs does not apply to snapshots" snapshots --jobs 2
expect_error "invalid jobs" "invalid value '0' for jobs \(from --jobs\)" backup --jobs 0 --database "$url"
DEPLOYCTL_JOBS=lots expect_error "invalid env value" "invalid value 'lots' for jobs \(from DEPLOYCTL_JOBS\)" \
    backup --database "$url" --store "$store"
expect_error "missing value" "option --tag needs a value" backup --tag
expect_error "invalid tag" "invalid tag" backup --tag "../x" --database "$url" --store "$store"
expect_error "bad snapshot id" "is not a snapshot id" show ../../etc --store "$store"

printf '[backup]\njbos = 4\n' >"$WORK/bad.conf"
expect_error "unknown config key" "bad.conf, line 2: unknown setting 'backup.jbos'" \
    backup --config "$WORK/bad.conf" --database "$url"
printf '[backup\njobs = 4\n' >"$WORK/broken.conf"
expect_error "malformed config" "broken.conf, line 1: not a .key = value. line" backup --config "$WORK/broken.conf" --database "$url"
expect_error "missing config" "cannot read config file .*nope.conf" backup --config "$WORK/nope.conf"

# A worker's connection is terminated in the middle of the COPY. The server may already have
# sent the whole COPY when the terminate lands (the client still reading its socket): then the
# backup rightly succeeds and the attempt proves nothing, so it is made again.
for attempt in 1 2 3 4 5; do
    DEPLOYCTL_FAULT=backup-chunk-ended:sleep=0.2 "$DEPLOYCTL" backup --database "$url" --store "$store" --jobs 2 --chunk-size 64KiB --quiet \
        >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    killed=0
    for _ in $(seq 1 500); do
        killed=$(psql_value postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = '$src' AND application_name LIKE 'deployctl backup worker%'
            AND state = 'active' AND query LIKE 'COPY%'")
        [[ $killed -gt 0 ]] && break
        sleep 0.01
    done
    set +e
    wait "$pid"
    rc=$?
    set -e
    [[ $rc -eq 0 && $killed -gt 0 ]] || break
    echo "# attempt $attempt: the terminate came after the COPY had been sent; again"
    rm -rf "$store" # the complete snapshot it made
done
[[ $killed -gt 0 ]] || fail "no backup worker was seen to terminate"
[[ $rc -eq 1 ]] || fail "lost connection: expected exit 1, got $rc"
grep -qE 'COPY of table public\.t.*(terminat|lost the connection|server closed)' "$WORK/err" ||
    fail "lost connection: unclear message: $(cat "$WORK/err")"
assert_store_clean "lost connection"
pass "lost connection mid-COPY: $(cat "$WORK/err")"

# Read-only and full stores need a mount (root only).
mnt=$WORK/mnt
mkdir -p "$mnt"
if [[ $(id -u) -eq 0 ]] && mount -t tmpfs -o size=1m,mode=755 tmpfs "$mnt" 2>/dev/null; then
    on_exit "umount -l '$mnt'"
    expect_error "full store" "store .* is full: no space left" backup --database "$url" --store "$mnt/store"
    [[ -z $(find "$mnt/store" -type f) ]] || fail "full store: files left: $(find "$mnt/store" -type f)"
    umount "$mnt"
    mount -t tmpfs -o size=1m,mode=755,ro tmpfs "$mnt"
    expect_error "read-only store" "cannot use store .*(Read-only|not writable)" \
        backup --database "$url" --store "$mnt/store"
    umount "$mnt"
    # A store on a read-only medium can still be listed and read (for restores).
    run_deployctl --quiet backup --database "$url" --store "$WORK/good-store"
    [[ $rc -eq 0 ]] || fail "backup into a good store failed: $(cat "$WORK/err")"
    mount --bind "$WORK/good-store" "$mnt" && mount -o remount,bind,ro "$mnt"
    run_deployctl snapshots --store "$mnt" --json
    [[ $rc -eq 0 && $(jq length "$WORK/out") -eq 1 ]] || fail "a read-only store cannot be listed: $(cat "$WORK/err")"
    run_deployctl show latest --store "$mnt" --database "$url"
    [[ $rc -eq 0 ]] || fail "a read-only store cannot be read: $(cat "$WORK/err")"
    pass "a read-only store is listed and read"
else
    echo "note: not root or no mount permission; full and read-only store cases not run"
fi
