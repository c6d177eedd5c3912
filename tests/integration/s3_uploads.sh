#!/usr/bin/env bash
# Abandoned multipart uploads found by listing them (ListMultipartUploads), on a server that can
# list uploads: the launcher's bucket $DC_S3_LISTING_BUCKET (in the bucket "deployctl" s3rver
# cannot, and s3_prune covers the cleaning through upload leases there). A cleaning run (prune)
# aborts the uploads under the store's prefix that are older than the grace period and that no
# live upload lease keeps: across more than one page of the listing (1000 uploads a page). It
# keeps a fresh upload, an old one whose writer's lease is live, and an old one under another
# prefix; --dry-run aborts nothing. The real `aws` client starts the uploads and lists what is left.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/s3_lib.sh"

bucket=$DC_S3_LISTING_BUCKET
store=s3://$bucket/$S3_PREFIX
# s3rver's own files for the bucket's uploads: <upload id>/key holds the key; the launcher takes
# an upload's Initiated from that file's mtime.
uploads_dir=$DC_S3_DATA/$bucket/._S3rver_uploads
src=$(new_db src)
url=$(db_url "$src")
key_of() { echo "$S3_PREFIX/$src/$1/snapshot.tar"; }

new_upload() { # key: starts a multipart upload with the aws client, prints its id
    aws_s3 s3api create-multipart-upload --bucket "$bucket" --key "$1" --query UploadId --output text
}
age_upload() { # id: initiated ten minutes ago (the grace period is two)
    [[ -f $uploads_dir/$1/key ]] || fail "s3rver keeps upload $1 elsewhere than $uploads_dir"
    touch -d '-10 minutes' "$uploads_dir/$1/key"
}
# What is left, as the aws client lists it: "key upload-id" lines, sorted.
uploads_left() { # prefix
    aws_s3 s3api list-multipart-uploads --bucket "$bucket" --prefix "$1" \
        --query 'Uploads[].[Key, UploadId]' --output text | grep -v '^None$' | sort || true
}

old=$(new_upload "$(key_of 20250101T000000Z-0a0a)")
age_upload "$old"
fresh=$(new_upload "$(key_of 20250102T000000Z-0b0b)")
leased=$(new_upload "$(key_of 20250103T000000Z-0c0c)")
age_upload "$leased"
other=$(new_upload "$S3_PREFIX-other/$src/20250104T000000Z-0d0d/snapshot.tar")
age_upload "$other"
# The lease of a writer still uploading $leased, as the store names and writes one.
lease_name=upload-$(printf '%s' "$leased" | sha256sum | cut -c1-24)
jq -nc --arg id "$leased" --arg key "$(key_of 20250103T000000Z-0c0c)" --argjson e "$(($(date +%s) + 300))" \
    '{token: "0123456789abcdef0123456789abcdef", expires: $e, host: "test", pid: 1, upload: {key: $key, id: $id}}' \
    >"$WORK/lease"
aws_s3 s3 cp --only-show-errors "$WORK/lease" "s3://$bucket/$S3_PREFIX/.leases/$lease_name"

# 1005 more old uploads nobody keeps, made in the server's files (as 1005 aws calls would, only
# faster): the listing takes two pages.
bulk=1005
python3 - "$uploads_dir" "$(key_of 20250105T000000Z-0e0e)" "$bulk" <<'PY'
import os, sys, time
root, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
then = time.time() - 600
for i in range(n):
    d = os.path.join(root, "%032x" % (0xb0 << 120 | i))
    os.makedirs(d)
    with open(os.path.join(d, "key"), "w") as f:
        f.write(key)
    with open(os.path.join(d, "metadata"), "w") as f:
        f.write("{}")
    os.utime(os.path.join(d, "key"), (then, then))
PY
before=$(uploads_left "$S3_PREFIX/")
assert_eq $((bulk + 3)) "$(wc -l <<<"$before")" "uploads under the store's prefix before cleaning"
pass "$((bulk + 4)) multipart uploads started (aws s3api list-multipart-uploads sees them)"

run_deployctl prune --database "$url" --store "$store" --keep-last 1 --dry-run
[[ $rc -eq 0 ]] || fail "prune --dry-run failed: $(cat "$WORK/err")"
assert_eq "$before" "$(uploads_left "$S3_PREFIX/")" "uploads after prune --dry-run"
pass "prune --dry-run aborted no upload"

# The bulk uploads have no lease: only the listing can have found them.
run_deployctl prune --database "$url" --store "$store" --keep-last 1
[[ $rc -eq 0 ]] || fail "prune failed: $(cat "$WORK/err")"
grep -q "$((bulk + 1)) temporary objects of dead writers removed" "$WORK/err" ||
    fail "prune does not report $((bulk + 1)) aborted uploads: $(tail -5 "$WORK/err")"
expected=$(printf '%s %s\n%s %s\n' "$(key_of 20250102T000000Z-0b0b)" "$fresh" \
    "$(key_of 20250103T000000Z-0c0c)" "$leased" | tr ' ' '\t' | sort)
assert_eq "$expected" "$(uploads_left "$S3_PREFIX/")" "uploads left under the store's prefix"
assert_eq "$(printf '%s\t%s' "$S3_PREFIX-other/$src/20250104T000000Z-0d0d/snapshot.tar" "$other")" \
    "$(uploads_left "$S3_PREFIX-other/")" "the upload under another prefix"
aws_s3 s3api list-parts --bucket "$bucket" --key "$(key_of 20250101T000000Z-0a0a)" --upload-id "$old" \
    >"$WORK/parts" 2>&1 && fail "ListParts of the aborted upload $old still answers: $(cat "$WORK/parts")"
grep -q NoSuchUpload "$WORK/parts" || fail "ListParts of the aborted upload: $(cat "$WORK/parts")"
pass "prune aborted the $((bulk + 1)) old uploads nobody keeps (two pages of the listing); kept the fresh one, the leased one and the other prefix's"
