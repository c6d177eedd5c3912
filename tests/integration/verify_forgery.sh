#!/usr/bin/env bash
# Snapshots that were tampered with are refused before anything is restored: a chunk replaced by
# a valid zstd frame holding other rows (its stored hash updated in a forged manifest) is caught
# by the raw-content hash -- by a deep verify, which restores and reads back -- and by restore;
# a member the manifest does not name, and a schema script carrying a psql meta-command that is
# not the snapshot's own \restrict line, are refused.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

db=$(new_db src)
url=$(db_url "$db")
psql_admin "$db" <<'SQL'
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 3000) g;
CREATE TABLE notes (id int, body text);
INSERT INTO notes SELECT g, repeat('n', g % 50) FROM generate_series(1, 500) g;
SQL
run_deployctl backup --database "$url" --store "$WORK/good" --quiet
[[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")

# forge NAME: a copy of the good snapshot in $WORK/NAME/<db>/<id>, extracted in $WORK/NAME.x
forge_start() {
    mkdir -p "$WORK/$1/$db" "$WORK/$1.x"
    cp -r "$WORK/good/$db/$id" "$WORK/$1/$db/"
    tar -xf "$WORK/$1/$db/$id/snapshot.tar" -C "$WORK/$1.x"
    tar -tf "$WORK/$1/$db/$id/snapshot.tar" >"$WORK/$1.members"
}
# Rebuilds snapshot.tar from the extracted members (in the listed order) and fixes the
# manifest's archive size and hash, as a forger would.
forge_finish() {
    local snap=$WORK/$1/$db/$id
    tar --format=pax -cf "$snap/snapshot.tar" -C "$WORK/$1.x" -T "$WORK/$1.members"
    jq --argjson bytes "$(stat -c %s "$snap/snapshot.tar")" \
        --arg sha "$(sha256sum <"$snap/snapshot.tar" | cut -d' ' -f1)" \
        '.archive.bytes = $bytes | .archive.sha256 = $sha' "$snap/manifest.json" >"$snap/m.json"
    mv "$snap/m.json" "$snap/manifest.json"
}

# 1. A chunk replaced by a valid zstd frame of other rows, stored hash and size updated.
forge_start swapped
member=$(jq -r '.tables[] | select(.name == "accounts") | .chunks[0].member' "$WORK/swapped/$db/$id/manifest.json")
rows=$(jq '.tables[] | select(.name == "accounts") | .chunks[0].rows' "$WORK/swapped/$db/$id/manifest.json")
zstd -q -dc "$WORK/swapped.x/$member" | sed 's/\towner /\tthief /' | zstd -q -c >"$WORK/swapped.x/$member.new"
mv "$WORK/swapped.x/$member.new" "$WORK/swapped.x/$member"
[[ $(zstd -q -dc "$WORK/swapped.x/$member" | wc -l) -eq $rows ]] || fail "the forged chunk lost rows"
m=$WORK/swapped/$db/$id/manifest.json
jq --arg member "$member" --arg sha "$(sha256sum <"$WORK/swapped.x/$member" | cut -d' ' -f1)" \
    --argjson size "$(stat -c %s "$WORK/swapped.x/$member")" \
    '(.tables[].chunks[] | select(.member == $member)) |= (.sha256 = $sha | .stored_bytes = $size)' \
    "$m" >"$m.new" && mv "$m.new" "$m"
forge_finish swapped
"$HARNESS/check_archive.sh" "$WORK/swapped/$db/$id" >/dev/null 2>&1 &&
    fail "the forgery is too weak: the stored hashes must all match and only the raw one differ"
[[ $(jq -r '.tables[] | select(.name == "accounts") | .chunks[0].sha256' "$m") == $(sha256sum <"$WORK/swapped.x/$member" | cut -d' ' -f1) ]] ||
    fail "forged manifest not updated"

run_deployctl verify "$id" --deep --store "$WORK/swapped" --database "$url"
[[ $rc -eq 1 ]] || fail "deep verify accepted a forged chunk (rc $rc): $(cat "$WORK/err")"
grep -q "$member" "$WORK/err" && grep -qi "does not match the manifest\|differ" "$WORK/err" ||
    fail "deep verify did not name the chunk and the content mismatch: $(cat "$WORK/err")"
verdict=$(grep error "$WORK/err")
assert_eq 0 "$(verify_scratch_dbs "$id")" \
    "scratch database left after a failed deep verify"
run_deployctl snapshots --store "$WORK/swapped" --json
assert_eq "false" "$(jq -r '.[0].verified' "$WORK/out")" "a failed verification recorded"
run_deployctl snapshots --store "$WORK/swapped"
grep -q FAILED "$WORK/out" || fail "snapshots does not show the failed verification: $(cat "$WORK/out")"
pass "a chunk swapped for other rows is caught by deep verify: $verdict"

fingerprint "$db" >"$WORK/db.fp"
run_deployctl restore "$id" --database "$url" --store "$WORK/swapped" --yes --no-safety-snapshot
[[ $rc -eq 1 ]] || fail "restore accepted a forged chunk"
diff -q <(fingerprint "$db") "$WORK/db.fp" >/dev/null || fail "a refused restore changed the database"
pass "restore refuses it too, and changes nothing"

# 2. A member the manifest does not name.
forge_start extra
printf '#!/bin/sh\necho pwned\n' >"$WORK/extra.x/evil.sh"
sed -i '$i evil.sh' "$WORK/extra.members"
forge_finish extra
run_deployctl verify "$id" --store "$WORK/extra"
[[ $rc -eq 1 ]] && grep -q "unexpected member 'evil.sh'" "$WORK/err" || fail "an extra member was accepted: $(cat "$WORK/err")"
run_deployctl restore "$id" --database "$url" --store "$WORK/extra" --yes --no-safety-snapshot
[[ $rc -eq 1 ]] && grep -q "unexpected member" "$WORK/err" || fail "restore accepted an extra member: $(cat "$WORK/err")"
diff -q <(fingerprint "$db") "$WORK/db.fp" >/dev/null || fail "a refused restore changed the database"
pass "a member the manifest does not name is refused"

# 3. A schema script carrying a psql meta-command of its own (hash updated to match).
forge_start meta
pre=$WORK/meta.x/schema/pre-data.sql
awk -v cmd="\\! touch $WORK/x.4Hx $WORK/pwned" '!done && /^SET statement_timeout/ { print cmd; done = 1 } { print }' "$pre" >"$pre.new"
mv "$pre.new" "$pre"
grep -q '^\\! touch' "$pre" || fail "could not inject the meta-command"
m=$WORK/meta/$db/$id/manifest.json
jq --arg sha "$(sha256sum <"$pre" | cut -d' ' -f1)" --argjson size "$(stat -c %s "$pre")" \
    '(.schema[] | select(.section == "pre-data")) |= (.sha256 = $sha | .bytes = $size)' "$m" >"$m.new" && mv "$m.new" "$m"
forge_finish meta
run_deployctl verify "$id" --store "$WORK/meta"
[[ $rc -eq 0 ]] || fail "the forged hashes should pass a plain verify (only the content is hostile): $(cat "$WORK/err")"
run_deployctl restore "$id" --database "$url" --store "$WORK/meta" --yes --no-safety-snapshot
[[ $rc -eq 1 ]] && grep -q "psql meta-command at line" "$WORK/err" || fail "a foreign meta-command was not refused: $(cat "$WORK/err")"
[[ ! -e $WORK/pwned && ! -e $WORK/x.4Hx ]] || fail "the meta-command ran"
diff -q <(fingerprint "$db") "$WORK/db.fp" >/dev/null || fail "a refused restore changed the database"
pass "a psql meta-command other than the snapshot's own \\restrict lines is refused"

# 4. A chunk whose every hash and size was forged to match: its rows are written "+1" instead
#    of "1". Plain verify and restore (which check the archive against the manifest) cannot
#    tell; only reading back what the server holds (deep verify) shows the data is not what the
#    manifest describes.
forge_start plus
member=$(jq -r '.tables[] | select(.name == "accounts") | .chunks[0].member' "$WORK/plus/$db/$id/manifest.json")
zstd -q -dc "$WORK/plus.x/$member" | sed 's/^/+/' >"$WORK/plus.raw"
zstd -q -c <"$WORK/plus.raw" >"$WORK/plus.x/$member"
m=$WORK/plus/$db/$id/manifest.json
raw_size=$(stat -c %s "$WORK/plus.raw")
jq --arg member "$member" --arg sha "$(sha256sum <"$WORK/plus.x/$member" | cut -d' ' -f1)" \
    --argjson size "$(stat -c %s "$WORK/plus.x/$member")" \
    --arg raw_sha "$(sha256sum <"$WORK/plus.raw" | cut -d' ' -f1)" --argjson raw "$raw_size" \
    '(.tables[] | select(.name == "accounts")) |= (.raw_bytes += ($raw - (.chunks[] | select(.member == $member) | .raw_bytes)))
     | (.tables[].chunks[] | select(.member == $member)) |= (.sha256 = $sha | .stored_bytes = $size | .raw_sha256 = $raw_sha | .raw_bytes = $raw)' \
    "$m" >"$m.new" && mv "$m.new" "$m"
forge_finish plus
run_deployctl verify "$id" --store "$WORK/plus"
[[ $rc -eq 0 ]] || fail "plain verify should pass a consistently forged manifest: $(cat "$WORK/err")"
run_deployctl verify "$id" --deep --store "$WORK/plus" --database "$url"
[[ $rc -eq 1 ]] || fail "deep verify accepted rows that read back differently (rc $rc): $(cat "$WORK/err")"
grep -q "read back from the restored database differ" "$WORK/err" ||
    fail "deep verify did not blame the read-back: $(cat "$WORK/err")"
assert_eq 0 "$(verify_scratch_dbs "$id")" \
    "scratch database left after a failed deep verify"
pass "non-canonical rows that match every stored hash are caught by deep verify's read-back alone"

# 5. --verify-database names a server: its database is never the scratch one, never touched.
keep="${db}_keep"
drop_at_exit "$keep"
psql_admin postgres -c "CREATE DATABASE \"$keep\"" >/dev/null
psql_admin "$keep" -c "CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')" >/dev/null
run_deployctl verify "$id" --deep --store "$WORK/good" --database "$url" --verify-database "$(db_url "$keep")"
[[ $rc -eq 0 ]] || fail "deep verify on the --verify-database server failed: $(cat "$WORK/err")"
grep -q "scratch database deployctl_verify_$(tr 'A-Z-' 'a-z_' <<<"$id")_[0-9a-f]\{8\}" "$WORK/err" ||
    fail "the scratch database is not named after the snapshot: $(cat "$WORK/err")"
assert_eq "keep me" "$(psql_value "$keep" "SELECT v FROM precious")" "the --verify-database database's data"
assert_eq 0 "$(psql_value "$keep" "SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'")" "snapshot tables in the named database"
assert_eq 0 "$(verify_scratch_dbs "$id")" \
    "scratch database left after a deep verify"
pass "--verify-database gives the server; the database it names is left alone"
