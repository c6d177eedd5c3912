#!/usr/bin/env bash
# Abandoned multipart uploads found by listing them (ListMultipartUploads), on a server that can
# list uploads: the launcher's bucket $DC_S3_LISTING_BUCKET (in the bucket "deployctl" s3rver
# cannot, and s3_prune covers the cleaning through upload leases there). A cleaning run (prune)
# aborts the uploads under the store's prefix that are older than the grace period and that no
# live upload lease keeps, across several pages of the listing (the launcher answers 100 uploads
# a page). It keeps a fresh upload, an old one whose writer's lease is live, and an old one under
# another prefix; --dry-run aborts nothing. The real `aws` client starts the uploads and lists
# what is left.
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

# An upload made in the server's own files, as CreateMultipartUpload makes one (an aws call
# each would cost a second of CPU), its id from N: prints the id. Initiated MINUTES ago (the
# grace period is 2).
made_upload() { # n key minutes
    local id
    id=$(printf '%032x' $((0xb0 << 24 | $1)))
    shift
    mkdir -p "$uploads_dir/$id"
    printf '%s' "$1" >"$uploads_dir/$id/key"
    echo '{}' >"$uploads_dir/$id/metadata"
    touch -d "-$2 minutes" "$uploads_dir/$id/key"
    echo "$id"
}
# What is left, as the aws client lists it: "key<TAB>upload-id" lines, sorted.
uploads_left() { # prefix
    aws_s3 s3api list-multipart-uploads --bucket "$bucket" --prefix "$1" \
        --query 'Uploads[].[Key, UploadId]' --output text | grep -v '^None$' | sort || true
}

# One upload started by the real client, and aged: the server's uploads live where we look.
old=$(aws_s3 s3api create-multipart-upload --bucket "$bucket" --key "$(key_of 20250101T000000Z-0a0a)" \
    --query UploadId --output text)
[[ -f $uploads_dir/$old/key ]] || fail "s3rver keeps upload $old elsewhere than $uploads_dir"
touch -d '-10 minutes' "$uploads_dir/$old/key"
fresh=$(made_upload 1 "$(key_of 20250102T000000Z-0b0b)" 0)
leased=$(made_upload 2 "$(key_of 20250103T000000Z-0c0c)" 10)
other=$(made_upload 3 "$S3_PREFIX-other/$src/20250104T000000Z-0d0d/snapshot.tar" 10)
# The lease of a writer still uploading $leased, as the store names and writes one.
lease_name=upload-$(printf '%s' "$leased" | sha256sum | cut -c1-24)
jq -nc --arg id "$leased" --arg key "$(key_of 20250103T000000Z-0c0c)" --argjson e "$(($(date +%s) + 300))" \
    '{token: "0123456789abcdef0123456789abcdef", expires: $e, host: "test", pid: 1, upload: {key: $key, id: $id}}' \
    >"$WORK/lease"
aws_s3 s3 cp --only-show-errors "$WORK/lease" "s3://$bucket/$S3_PREFIX/.leases/$lease_name"
# 205 more old uploads nobody keeps: the listing takes three pages.
bulk=205
for n in $(seq 100 $((99 + bulk))); do made_upload "$n" "$(key_of 20250105T000000Z-0e0e)" 10 >/dev/null; done
# "$S3_PREFIX" without the slash: the other prefix's upload too.
before=$(uploads_left "$S3_PREFIX")
assert_eq $((bulk + 4)) "$(wc -l <<<"$before")" "uploads before cleaning"
pass "$((bulk + 4)) multipart uploads (aws s3api list-multipart-uploads sees them)"

run_deployctl prune --database "$url" --store "$store" --keep-last 1 --dry-run
[[ $rc -eq 0 ]] || fail "prune --dry-run failed: $(cat "$WORK/err")"
assert_eq $((bulk + 4)) "$(find "$uploads_dir" -mindepth 1 -maxdepth 1 -type d | wc -l)" "uploads after prune --dry-run"
pass "prune --dry-run aborted no upload"

# The bulk uploads have no lease: only the listing can have found them.
run_deployctl prune --database "$url" --store "$store" --keep-last 1
[[ $rc -eq 0 ]] || fail "prune failed: $(cat "$WORK/err")"
grep -q "$((bulk + 1)) temporary objects of dead writers removed" "$WORK/err" ||
    fail "prune does not report $((bulk + 1)) aborted uploads: $(tail -5 "$WORK/err")"
expected=$(printf '%s\t%s\n' "$(key_of 20250102T000000Z-0b0b)" "$fresh" "$(key_of 20250103T000000Z-0c0c)" "$leased" \
    "$S3_PREFIX-other/$src/20250104T000000Z-0d0d/snapshot.tar" "$other" | sort)
assert_eq "$expected" "$(uploads_left "$S3_PREFIX")" "uploads left: the fresh, the leased and the other prefix's"
pass "prune aborted the $((bulk + 1)) old uploads nobody keeps (three pages of the listing); kept the fresh one, the leased one and the other prefix's"
