#!/usr/bin/env bash
# Progress: on a terminal a status line rewrites itself (bytes, rows, tables, throughput, ETA);
# otherwise a log line comes every --progress-interval. SIGTERM and SIGINT stop a backup cleanly:
# a clear message, exit 1, and nothing left in the store.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
psql_admin "$src" <<'SQL'
CREATE TABLE events (id bigint, payload text);
-- Random hex: the archive (some 2.7 MB) grows through the backup, not all at its end.
INSERT INTO events SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
  FROM generate_series(1, 40000) g;
CREATE TABLE other AS SELECT generate_series(1, 1000) AS id;
ANALYZE;
SQL
url=$(db_url "$src")
# Every backup here pauses after each chunk (20 of them): seconds long, however fast the machine.
export DEPLOYCTL_FAULT=backup-chunk-ended:sleep=0.1

run_deployctl backup --database "$url" --store "$WORK/store" --jobs 1 --chunk-size 256KiB --progress-interval 50ms
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
lines=$(grep -cE '^deployctl: backup: ([0-9]+% )?[0-9.]+ [KMG]?i?B, [0-9,]+ rows, [0-9]+/2 tables, .*/s, ETA ' "$WORK/err" || true)
[[ $lines -ge 2 ]] || fail "expected periodic progress lines, got $lines: $(cat "$WORK/err")"
grep -q $'\r' "$WORK/err" && fail "status-line control characters written to a non-terminal"
pass "$lines progress log lines without a terminal"

# On a terminal (script(1) gives the command a pty): one self-rewriting status line.
script -qfec "'$DEPLOYCTL' backup --database '$url' --store '$WORK/store' --jobs 1 --chunk-size 256KiB" \
    "$WORK/tty.log" >/dev/null
grep -q $'\r\033\[K''backup: ' "$WORK/tty.log" || fail "no status line on a terminal: $(head -c 600 "$WORK/tty.log" | cat -v)"
grep -qE 'ETA [0-9?]' "$WORK/tty.log" || fail "status line without an ETA"
pass "status line on a terminal"

for sig in TERM INT; do
    "$DEPLOYCTL" backup --database "$url" --store "$WORK/store-$sig" --jobs 1 --chunk-size 256KiB \
        >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    for _ in $(seq 1 500); do
        [[ -n $(find "$WORK/store-$sig/.tmp" -name '*.part' -size +100k 2>/dev/null) ]] && break
        sleep 0.01
    done
    kill -s "$sig" "$pid" 2>/dev/null || fail "SIG$sig: the backup ended before it could be interrupted"
    set +e
    wait "$pid"
    rc=$?
    set -e
    assert_eq 1 "$rc" "exit status after SIG$sig"
    grep -q "interrupted by signal" "$WORK/err" || fail "SIG$sig: unclear message: $(cat "$WORK/err")"
    [[ -z $(find "$WORK/store-$sig" -mindepth 1 -not -path "$WORK/store-$sig/.tmp") ]] ||
        fail "SIG$sig: files left in the store: $(find "$WORK/store-$sig")"
    [[ -z $(find "$WORK/store-$sig/.tmp" -mindepth 1) ]] || fail "SIG$sig: temporary files left behind"
    pass "SIG$sig: $(grep error "$WORK/err")"
done
