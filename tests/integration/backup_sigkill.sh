#!/usr/bin/env bash
# A backup killed with SIGKILL at any moment leaves nothing listed as complete, and the next
# backup cleans up everything it left (temporary files, an archive without a manifest).
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

src=$(new_db src)
psql_admin "$src" <<'SQL'
CREATE TABLE big (id bigint, payload text, n numeric);
-- Random hex: the archive (some 2.3 MB) grows through the backup, not all at its end.
INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text), g / 3.0
  FROM generate_series(1, 40000) g;
CREATE TABLE small (id int);
INSERT INTO small SELECT generate_series(1, 10);
SQL
store=$WORK/store
url=$(db_url "$src")

assert_nothing_listed() {
    run_deployctl snapshots --store "$store" --database "$url" --json
    [[ $rc -eq 0 ]] || fail "snapshots failed: $(cat "$WORK/err")"
    assert_eq 0 "$(jq length "$WORK/out")" "snapshots listed after a killed backup ($1)"
}

# The backup pauses after each chunk, so the condition is met while it runs, however fast.
kill_when() { # description, condition (bash expression evaluated while the backup runs)
    DEPLOYCTL_FAULT=backup-chunk-ended:sleep=0.2 "$DEPLOYCTL" backup --database "$url" --store "$store" --jobs 2 --chunk-size 256KiB --quiet \
        >"$WORK/killed.out" 2>&1 &
    local pid=$! waited=0
    until eval "$2"; do
        sleep 0.01
        waited=$((waited + 1))
        kill -0 "$pid" 2>/dev/null || fail "backup ended before the kill point ($1): $(cat "$WORK/killed.out")"
        [[ $waited -lt 3000 ]] || fail "kill point never reached ($1)"
    done
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    assert_nothing_listed "$1"
    pass "killed $1: nothing listed"
}

# While the archive is being written (temporary file growing in the store's .tmp).
kill_when "mid-archive" '[[ $(find "$store/.tmp" -name "*.part" -size +300k 2>/dev/null | wc -l) -gt 0 ]]'
[[ -n $(find "$store/.tmp" -name '*.part') ]] || fail "the killed backup left no temporary file (the test did not kill mid-write)"

# Right after the archive is in place, before the manifest (the commit point) is written.
DEPLOYCTL_FAULT=before-manifest run_deployctl backup --database "$url" --store "$store" --quiet
[[ $rc -eq 137 ]] || fail "the fault point did not kill the backup (rc $rc)"
incomplete=$(find "$store/$src" -mindepth 1 -maxdepth 1 -type d | wc -l)
[[ $incomplete -ge 1 ]] || fail "expected an archive without manifest in the store"
[[ -z $(find "$store/$src" -name manifest.json) ]] || fail "a manifest exists after a kill before the manifest"
assert_nothing_listed "before the manifest"
run_deployctl snapshots --store "$store" --database "$url" --json --all
assert_eq '["incomplete"]' "$(jq -c '[.[].status] | unique' "$WORK/out")" "snapshots --all shows the leftovers as incomplete"
run_deployctl show latest --store "$store" --database "$url"
[[ $rc -ne 0 ]] || fail "show latest found a snapshot although none is complete"
pass "killed before the manifest: archive present, nothing listed, show refuses"

# The next backup cleans everything up and succeeds.
run_deployctl backup --database "$url" --store "$store" --quiet
[[ $rc -eq 0 ]] || fail "backup after the crashes failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
[[ -z $(find "$store/.tmp" -mindepth 1) ]] || fail "temporary files left: $(find "$store/.tmp" -mindepth 1)"
assert_eq "$id" "$(find "$store/$src" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')" "only the new snapshot remains"
"$HARNESS/check_archive.sh" "$store/$src/$id" >/dev/null || fail "the new snapshot is not valid"
run_deployctl snapshots --store "$store" --database "$url" --json
assert_eq "[\"$id\"]" "$(jq -c '[.[].id]' "$WORK/out")" "listed snapshots"
pass "next backup removed the leftovers and succeeded"
