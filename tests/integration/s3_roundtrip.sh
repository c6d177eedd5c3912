#!/usr/bin/env bash
# Through an S3-compatible server (s3rver), deployctl backs up, lists, shows, verifies and
# restores (atomic and --jobs 2) exactly as through file://; the archive spans several
# multipart parts; the real `aws` client lists what deployctl stored and fetches snapshot.tar
# with the manifest's SHA-256; and a snapshot taken into a file:// store and copied into the
# bucket by `aws s3 cp --recursive` restores from S3.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"

src=$(new_db src)
psql_admin "$src" -f "$DC_SOURCE_DIR/tests/sql/roundtrip.sql" >/dev/null
# Incompressible enough that the archive takes several parts (about 54 bytes a row
# compressed: some 19 MB, where the check below wants more than 15 MiB).
psql_admin "$src" -c "CREATE TABLE big (id int PRIMARY KEY, a text, b text);
  INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text), md5(g::text)
  FROM generate_series(1, 360000) g" >/dev/null
url=$(db_url "$src")

# At the default part size (8 MiB for a database this small): every part but the last that size.
run_deployctl backup --database "$url" --store "$S3_STORE" --jobs 2 --chunk-size 1MiB --tag release --verbose
[[ $rc -eq 0 ]] || fail "backup to S3 failed: $(cat "$WORK/err")"
id=$(tail -n 1 "$WORK/out")
[[ $id =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$ ]] || fail "backup printed no snapshot id: '$id'"
sed -n 's/.*snapshot\.tar: part \([0-9]*\) (\([0-9]*\) bytes) starts/\1 \2/p' "$WORK/err" >"$WORK/parts"
parts=$(wc -l <"$WORK/parts")
[[ $parts -ge 2 ]] || fail "the archive went up in $parts part(s) at the default size: $(grep -i part "$WORK/err" | head -3)"
[[ $(head -n $((parts - 1)) "$WORK/parts" | awk '$2 != 8388608' | wc -l) -eq 0 ]] ||
    fail "parts other than the last are not 8 MiB: $(cat "$WORK/parts")"
grep -q "snapshot\.tar: $parts parts stored" "$WORK/err" || fail "the upload does not report $parts parts stored"
pass "backup into $S3_STORE: $id in $parts parts, 8 MiB each (the default) but the last"
export DEPLOYCTL_S3_PART_SIZE=5MiB

# The real client sees both objects where DESIGN.md puts them, and nothing else but leases.
aws_s3 s3 ls --recursive "s3://$DC_S3_BUCKET/$S3_PREFIX/" >"$WORK/ls"
grep -q " $S3_PREFIX/$src/$id/snapshot.tar\$" "$WORK/ls" || fail "aws does not list snapshot.tar: $(cat "$WORK/ls")"
grep -q " $S3_PREFIX/$src/$id/manifest.json\$" "$WORK/ls" || fail "aws does not list manifest.json"
grep -q '\.leases/' "$WORK/ls" && fail "a lease was left behind: $(cat "$WORK/ls")"
grep -q '\.probe/' "$WORK/ls" && fail "a probe object was left behind"
aws_s3 s3 cp --only-show-errors "s3://$DC_S3_BUCKET/$S3_PREFIX/$src/$id/manifest.json" "$WORK/manifest.json"
aws_s3 s3 cp --only-show-errors "s3://$DC_S3_BUCKET/$S3_PREFIX/$src/$id/snapshot.tar" "$WORK/snapshot.tar"
bytes=$(stat -c %s "$WORK/snapshot.tar")
assert_eq "$(jq -r .archive.bytes "$WORK/manifest.json")" "$bytes" "archive size (aws) vs manifest"
assert_eq "$(jq -r .archive.sha256 "$WORK/manifest.json")" "$(sha256sum "$WORK/snapshot.tar" | cut -d' ' -f1)" \
    "sha256 of snapshot.tar fetched by aws vs the manifest"
[[ $bytes -gt $((3 * 5 * 1024 * 1024)) ]] || fail "the archive ($bytes bytes) should be over 15 MiB: several parts"
mkdir "$WORK/snap" && cp "$WORK/manifest.json" "$WORK/snapshot.tar" "$WORK/snap/"
"$HARNESS/check_archive.sh" "$WORK/snap" || fail "member hashes of the fetched archive do not match the manifest"
pass "aws lists both objects; the $bytes-byte archive it fetches has the manifest's SHA-256 and member hashes"

run_deployctl snapshots --store "$S3_STORE" --database "$url"
[[ $rc -eq 0 ]] || fail "snapshots failed: $(cat "$WORK/err")"
grep -q "$id" "$WORK/out" || fail "snapshots does not list $id: $(cat "$WORK/out")"
grep -q "release" "$WORK/out" || fail "snapshots does not show the tag"
run_deployctl show latest --store "$S3_STORE" --database "$url" --json
[[ $rc -eq 0 ]] || fail "show failed: $(cat "$WORK/err")"
assert_eq "$id" "$(jq -r .id "$WORK/out")" "show latest --json id"
pass "snapshots and show read the store through S3"

run_deployctl verify "$id" --store "$S3_STORE" --database "$url"
[[ $rc -eq 0 ]] || fail "verify failed: $(cat "$WORK/err")"
run_deployctl snapshots --store "$S3_STORE" --database "$url"
grep "$id" "$WORK/out" | grep -qv ' no$' || fail "verification not recorded: $(cat "$WORK/out")"
pass "verify checks every byte through S3 and records its outcome there"

expected=$(fingerprint "$src")
for jobs in 1 2; do
    dst=$(new_db "dst$jobs")
    run_deployctl restore "$id" --database "$url" --store "$S3_STORE" --target "$(db_url "$dst")" --jobs "$jobs" --yes
    [[ $rc -eq 0 ]] || fail "restore --jobs $jobs from S3 failed: $(cat "$WORK/err")"
    [[ $(fingerprint "$dst") == "$expected" ]] || fail "restore --jobs $jobs from S3: content differs"
    pass "restore --jobs $jobs from S3 gives identical content"
done

# A snapshot made into a file:// store, copied into the bucket by the real client, restores.
run_deployctl backup --database "$url" --store "file://$WORK/fstore" --jobs 2
[[ $rc -eq 0 ]] || fail "file backup failed: $(cat "$WORK/err")"
fid=$(tail -n 1 "$WORK/out")
copied="$S3_PREFIX-copied"
aws_s3 s3 cp --only-show-errors --recursive --exclude '.tmp/*' "$WORK/fstore/" "s3://$DC_S3_BUCKET/$copied/"
dst=$(new_db copied)
run_deployctl restore "$fid" --database "$url" --store "s3://$DC_S3_BUCKET/$copied" --target "$(db_url "$dst")" --yes
[[ $rc -eq 0 ]] || fail "restore of the aws-copied snapshot failed: $(cat "$WORK/err")"
[[ $(fingerprint "$dst") == "$expected" ]] || fail "the aws-copied snapshot restores different content"
pass "a file:// snapshot copied by 'aws s3 cp --recursive' restores from S3"

# Secrets never reach output.
grep -rqF "$AWS_SECRET_ACCESS_KEY" "$WORK/err" "$WORK/out" && fail "the secret access key was printed"
run_deployctl snapshots --store "$S3_STORE" --s3-secret-access-key "$AWS_SECRET_ACCESS_KEY"
[[ $rc -eq 1 ]] || fail "a secret on the command line was accepted"
grep -q 'cannot be given on the command line' "$WORK/err" || fail "no clear refusal: $(cat "$WORK/err")"
grep -qF "$AWS_SECRET_ACCESS_KEY" "$WORK/err" && fail "the refused secret was echoed"
pass "the secret access key is refused on the command line and never printed"
