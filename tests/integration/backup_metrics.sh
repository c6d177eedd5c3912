#!/usr/bin/env bash
# --metrics-file: a real backup --verify, verify and prune update one node_exporter textfile
# (parsed by the Prometheus client library's parser and a strict grammar check), keep what
# others wrote to it, and a failed backup moves the end time but not the success time, leaving
# no temporary file. A bad path fails before any work. The credentials the systemd drop-in
# passes (a password file through PGPASSFILE, no password in the URL) work for the backup and
# its pg_dump.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
prom() { # file -> one sample per line: name{labels} value type
    "$PY" "$HARNESS/prom_check.py" "$1" 2>"$WORK/prom.err" || fail "not a valid textfile: $(cat "$WORK/prom.err")"
}
value() { # file metric -> its value for our database
    prom "$1" | awk -v k="$2{database=$src}" '$1 == k { print $2 }'
}

src=$(new_db src)
psql_admin "$src" -c "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g"
url=$(db_url "$src")
store=$WORK/store
dir=$WORK/textfile
mkdir -p "$dir"
m=$dir/deployctl.prom
# What another writer (a release, another tool) left in the file must survive our updates.
cat >"$m" <<'PROM'
# HELP deployctl_release_last_outcome 0 success, 2 rolled back, 3 rollback failed.
# TYPE deployctl_release_last_outcome gauge
deployctl_release_last_outcome{database="other"} 2
# HELP other_histogram_seconds A histogram someone else keeps here.
# TYPE other_histogram_seconds histogram
other_histogram_seconds_bucket{le="1"} 3
other_histogram_seconds_bucket{le="+Inf"} 4
other_histogram_seconds_sum 5.5
other_histogram_seconds_count 4
PROM

before=$(date +%s)
run_deployctl backup --database "$url" --store "file://$store" --verify --tag nightly --metrics-file "$m"
[[ $rc -eq 0 ]] || fail "backup --verify --metrics-file: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
after=$(date +%s)
prom "$m" >"$WORK/samples"
for metric in deployctl_backup_last_start_timestamp_seconds deployctl_backup_last_end_timestamp_seconds \
    deployctl_backup_last_success_timestamp_seconds deployctl_backup_last_bytes \
    deployctl_backup_last_duration_seconds deployctl_backup_last_verified; do
    grep -q "^$metric{database=$src} .* gauge$" "$WORK/samples" || fail "$metric missing or not a gauge: $(cat "$m")"
    grep -q "^# HELP $metric .\+" "$m" || fail "$metric has no HELP line"
done
grep -q '^deployctl_release_last_outcome{database=other} 2.0 gauge$' "$WORK/samples" || fail "the release's metric was lost: $(cat "$m")"
grep -q '^other_histogram_seconds_bucket{le=+Inf} 4.0 histogram$' "$WORK/samples" || fail "the histogram was lost: $(cat "$m")"
start=$(value "$m" deployctl_backup_last_start_timestamp_seconds)
end=$(value "$m" deployctl_backup_last_end_timestamp_seconds)
success=$(value "$m" deployctl_backup_last_success_timestamp_seconds)
duration=$(value "$m" deployctl_backup_last_duration_seconds)
"$PY" -c "import sys; b,a,s,e,ok,d=map(float,sys.argv[1:]); sys.exit(not (b-1 <= s <= e <= a+1 and ok == e and abs(d-(e-s)) < 0.01))" \
    "$before" "$after" "$start" "$end" "$success" "$duration" || fail "times: start $start end $end success $success duration $duration, run $before..$after"
assert_eq 1.0 "$(value "$m" deployctl_backup_last_verified)" "verified after backup --verify"
bytes=$(stat -c %s "$store/$src/$id/snapshot.tar")
assert_eq "$bytes.0" "$(value "$m" deployctl_backup_last_bytes)" "last_bytes against the stored archive"
[[ $(stat -c %a "$m") == 644 ]] || fail "the textfile is mode $(stat -c %a "$m"), the collector could not read it"
assert_eq "deployctl.prom" "$(ls -A "$dir")" "files in the textfile directory"
pass "backup --verify wrote every backup metric and kept the others'"

# A failed backup of the same database (the store cannot be created): end moves, success not.
sleep 1
touch "$WORK/not-a-dir"
run_deployctl backup --database "$url" --store "file://$WORK/not-a-dir/store" --metrics-file "$m"
[[ $rc -eq 1 ]] || fail "a backup into an impossible store: rc $rc"
assert_eq "$success" "$(value "$m" deployctl_backup_last_success_timestamp_seconds)" "success time after a failure"
assert_eq "$bytes.0" "$(value "$m" deployctl_backup_last_bytes)" "last_bytes after a failure"
assert_eq 0.0 "$(value "$m" deployctl_backup_last_verified)" "verified after a failure"
end2=$(value "$m" deployctl_backup_last_end_timestamp_seconds)
"$PY" -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$end2" "$end" || fail "end time not moved by the failure: $end -> $end2"
prom "$m" >"$WORK/samples"
grep -q "^deployctl_release_last_outcome{database=other} 2.0 gauge$" "$WORK/samples" || fail "the release's metric was lost by the failure"
assert_eq "deployctl.prom" "$(ls -A "$dir")" "files in the textfile directory after a failure"
pass "a failed backup moved the end time only, and left no temporary file"

# verify and prune, from the environment and the config file.
DEPLOYCTL_METRICS_FILE=$m run_deployctl verify latest --database "$url" --store "file://$store"
[[ $rc -eq 0 ]] || fail "verify: $(cat "$WORK/err")"
assert_eq 1.0 "$(value "$m" deployctl_verify_last_ok)" "verify_last_ok"
assert_eq 0.0 "$(value "$m" deployctl_verify_last_deep)" "verify_last_deep"
printf '[metrics]\nfile = %s\n' "$m" >"$WORK/deployctl.conf"
run_deployctl prune --config "$WORK/deployctl.conf" --database "$url" --store "file://$store" --keep-last 1
[[ $rc -eq 0 ]] || fail "prune: $(cat "$WORK/err")"
assert_eq 1.0 "$(value "$m" deployctl_prune_last_kept)" "prune_last_kept"
[[ -n $(value "$m" deployctl_prune_last_success_timestamp_seconds) ]] || fail "no prune timestamp"
assert_eq "$success" "$(value "$m" deployctl_backup_last_success_timestamp_seconds)" "backup metrics after verify and prune"
pass "verify (environment) and prune (config file) add their metrics to the same file"

# A path that cannot be written fails at once, naming it, before any backup is taken.
count=$(find "$store" -name manifest.json | wc -l)
run_deployctl backup --database "$url" --store "file://$store" --metrics-file "$WORK/missing/deployctl.prom"
[[ $rc -eq 1 && $(wc -l <"$WORK/err") -eq 1 ]] || fail "a metrics file in a missing directory: rc $rc: $(cat "$WORK/err")"
grep -q "$WORK/missing" "$WORK/err" || fail "the error does not name the directory: $(cat "$WORK/err")"
run_deployctl backup --database "$url" --store "file://$store" --metrics-file "$dir"
[[ $rc -eq 1 ]] && grep -q 'is a directory' "$WORK/err" || fail "a directory as metrics file: rc $rc: $(cat "$WORK/err")"
assert_eq "$count" "$(find "$store" -name manifest.json | wc -l)" "snapshots after refused runs"
pass "unwritable metrics paths are refused before any work"

# Credentials as the systemd drop-in hands them over: a password file in a directory only the
# service reads, PGPASSFILE pointing at it, and a URL without the password.
creds=$WORK/credentials
mkdir -m 700 "$creds"
printf '*:*:*:dctest:%s\n' "$DC_PG_PASSWORD" >"$creds/pgpass"
chmod 400 "$creds/pgpass"
nopw=${url/:$DC_PG_PASSWORD@/@}
[[ $nopw != "$url" && $nopw != *"$DC_PG_PASSWORD"* ]] || fail "could not take the password out of the URL"
PGPASSFILE=$creds/pgpass run_deployctl backup --database "$nopw" --store "file://$store" --tag nightly
[[ $rc -eq 0 ]] || fail "backup with PGPASSFILE: $(cat "$WORK/err")"
run_deployctl backup --database "$nopw" --store "file://$store" --tag nightly
[[ $rc -eq 1 ]] || fail "the backup without PGPASSFILE should fail for want of a password (rc $rc)"
pass "a password file through PGPASSFILE (systemd LoadCredential) serves the backup and pg_dump"
