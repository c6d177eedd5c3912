#!/usr/bin/env bash
# Prune on an S3 store (s3rver) exactly as on file:// (tests/harness/prune_lib.sh holds the
# history and the checks both share): two real backups plus a made-up history spanning months
# put into the bucket by the real `aws` client, a pin, incomplete snapshots (old, fresh, and one
# whose writer's lease is live). --dry-run changes nothing; prune leaves exactly the expected
# snapshots, as `deployctl snapshots` and `aws s3 ls` both see. A backup killed in the middle
# of its multipart upload leaves a live upload: prune keeps it while its writer's lease lives
# and aborts it once the lease expired, found through the lease (s3rver cannot list uploads):
# ListParts and UploadPart on that upload id fail afterwards.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"
source "$DC_SOURCE_DIR/tests/harness/prune_lib.sh"

src=$(new_db src)
psql_admin "$src" <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
SQL
url=$(db_url "$src")
common=(--database "$url" --store "$S3_STORE")
bucket_dir=s3://$DC_S3_BUCKET/$S3_PREFIX

prune_backups

# ---- a backup killed in the middle of its multipart upload ----
big=$(new_db big)
psql_admin "$big" -c "CREATE TABLE big (id int PRIMARY KEY, a text, b text);
  INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text), md5(random()::text)
  FROM generate_series(1, 150000) g" >/dev/null
DEPLOYCTL_S3_PART_SIZE=5MiB DEPLOYCTL_FAULT=s3-after-part \
    run_deployctl backup --database "$(db_url "$big")" --store "$S3_STORE" --quiet
[[ $rc -eq 137 ]] || fail "the backup was not killed after its first part (rc $rc): $(cat "$WORK/err")"
# The leases, fetched into a directory (and put back from it) with one `aws` call each way.
leases=$WORK/leases
aws_s3 s3 cp --only-show-errors --recursive "$bucket_dir/.leases/" "$leases/"
upload_lease=$(cd "$leases" && ls upload-* 2>/dev/null || true)
[[ $(wc -w <<<"$upload_lease") -eq 1 ]] || fail "no (or more than one) upload lease: $(ls "$leases")"
writer_lease=$(cd "$leases" && ls "$big."* 2>/dev/null || true)
[[ -n $writer_lease ]] || fail "the killed backup left no lease of its snapshot: $(ls "$leases")"
upload_id=$(jq -r .upload.id "$leases/$upload_lease")
upload_key=$(jq -r .upload.key "$leases/$upload_lease")
[[ $upload_key == "$S3_PREFIX/$big/"*/snapshot.tar ]] || fail "the upload lease names the key '$upload_key'"
parts() { aws_s3 s3api list-parts --bucket "$DC_S3_BUCKET" --key "$upload_key" --upload-id "$upload_id" "$@"; }
parts --query 'length(Parts)' --output text >"$WORK/parts" 2>&1 || fail "ListParts of the killed upload failed: $(cat "$WORK/parts")"
[[ $(cat "$WORK/parts") -ge 1 ]] || fail "the killed upload has no part: $(cat "$WORK/parts")"
pass "a backup killed after its first part leaves a live multipart upload ($upload_id) named in its lease"

# Leases are rewritten by hand, rather than waited for: with an expiry an hour ahead (a writer
# refreshing it) or in the past (one that died LEASE_TTL ago). The third is the lease of a live
# writer of $i_held (an incomplete snapshot of the history below), as the S3 store sees one.
i_held=20250211T020000Z-f0b3
set_leases_expiry() { # seconds-from-now
    local e=$(($(date +%s) + $1)) f
    jq -nc '{token: "0123456789abcdef0123456789abcdef", host: "test", pid: 1}' >"$leases/$src.$i_held"
    for f in "$leases"/*; do
        jq -c --argjson e "$e" '.expires = $e' "$f" >"$f.new" && mv "$f.new" "$f"
    done
    aws_s3 s3 cp --only-show-errors --recursive "$leases/" "$bucket_dir/.leases/"
    # Liveness is judged on the server's clock: a lease is as old as its object (Last-Modified,
    # which s3rver takes from the file's mtime). Age the objects as much as the expiry says.
    touch -d "@$((e - 300))" "$DC_S3_DATA/$DC_S3_BUCKET/$S3_PREFIX/.leases/"*._S3rver_object
}
set_leases_expiry 3600

# ---- the history, staged in a directory and put into the bucket with one `aws s3 cp` ----
stage=$WORK/stage/$src
mkdir -p "$stage/$r1"
aws_s3 s3 cp --only-show-errors --recursive "$bucket_dir/$src/$r1/" "$stage/$r1/"
history_get() { cat "$stage/$1"; }
history_put() { mkdir -p "$stage/$(dirname "$1")" && cat >"$stage/$1"; }
history_copy() { mkdir -p "$stage/$(dirname "$2")" && cp "$stage/$1" "$stage/$2"; }
history_sync() {
    rm -r "${stage:?}/$r1"
    aws_s3 s3 cp --only-show-errors --recursive "$stage/" "$bucket_dir/$src/"
}
prune_history

# What the real client lists under the store (one call): the objects of each snapshot of $src.
bucket_ls() { aws_s3 s3 ls --recursive "$bucket_dir/" | awk '{print $3, $4}' | sort >"$WORK/ls"; }
ids_in_bucket() { awk '{print $2}' "$WORK/ls" | grep "^$S3_PREFIX/$src/" | cut -d/ -f3 | sort -u | tr '\n' ' ' | sed 's/ $//'; }
in_bucket() { grep -q " $S3_PREFIX/$src/$1\$" "$WORK/ls"; }
bucket_ls
assert_eq "$all" "$(ids_in_bucket)" "snapshots aws lists before prune"
grep -q " $S3_PREFIX/$src/$f6/verify-.*\.json$" "$WORK/ls" || fail "verify left no outcome next to $f6"

# ---- dry run ----
cp "$WORK/ls" "$WORK/before"
prune_check_dry_run
bucket_ls
diff -u "$WORK/before" "$WORK/ls" >"$WORK/diff" || fail "--dry-run changed the bucket: $(head -20 "$WORK/diff")"
pass "--dry-run lists what would go and why, as a table and as JSON, and changes nothing in the bucket"

# ---- prune ----
prune_check_prune
bucket_ls
assert_eq "$expected_kept" "$(ids_in_bucket)" "snapshots aws lists after prune"
in_bucket "$f3/pin-release-test" || fail "the pin was removed"
in_bucket "$i_held/snapshot.tar" || fail "the snapshot whose writer is alive lost its archive"
parts --query 'length(Parts)' --output text >"$WORK/parts" 2>&1 ||
    fail "prune aborted the upload of a live writer: $(cat "$WORK/parts")"
pass "prune left exactly the expected snapshots (aws and deployctl agree), and the live upload"

# ---- the writers die: their leases expire ----
set_leases_expiry -60
run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
[[ $rc -eq 0 ]] || fail "prune after the writers died failed: $(cat "$WORK/err")"
assert_eq "$i_held" "$(jq -r '[.[] | select(.deleted) | .id] | join(" ")' "$WORK/out")" "deleted once its writer is gone"
assert_eq '["abandoned"]' "$(jq -c ".[] | select(.id == \"$i_held\") | .reasons" "$WORK/out")" "reason"
grep -q "aborted the multipart upload of $upload_key" "$WORK/err" || fail "prune does not say it aborted the upload: $(cat "$WORK/err")"
if parts >"$WORK/parts" 2>&1; then fail "ListParts still finds the upload prune should have aborted: $(cat "$WORK/parts")"; fi
grep -q NoSuchUpload "$WORK/parts" || fail "ListParts failed for another reason: $(cat "$WORK/parts")"
head -c 1024 /dev/urandom >"$WORK/part"
if aws_s3 s3api upload-part --bucket "$DC_S3_BUCKET" --key "$upload_key" --upload-id "$upload_id" \
    --part-number 2 --body "$WORK/part" >"$WORK/upload-part" 2>&1; then
    fail "UploadPart still works on the aborted upload"
fi
grep -q NoSuchUpload "$WORK/upload-part" || fail "UploadPart failed for another reason: $(cat "$WORK/upload-part")"
bucket_ls
grep '/\.leases/' "$WORK/ls" && fail "leases left behind"
assert_eq "$(sorted "$r2 $f9 $f7 $f6 $f3 $i_fresh")" "$(ids_in_bucket)" "snapshots aws lists at the end"
pass "once the leases expired: the old incomplete snapshot deleted, the dead writer's upload aborted (ListParts, UploadPart: NoSuchUpload), no lease left"
