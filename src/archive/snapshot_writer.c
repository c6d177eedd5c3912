/* Writes one snapshot into a store: snapshot.tar (POSIX pax via libarchive) whose bytes are
 * counted and hashed on their way to the store, then manifest.json as the commit point.
 * The whole time, a lease tells cleaners that this incomplete snapshot is alive. Each member
 * goes through [AES-256-GCM seal ->] SHA-256 -> count -> the archive, which gives the manifest
 * its stored size and hash. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/fault.h"
#include "deployctl/snapshot.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define COPY_BUFFER (256 * 1024)

struct dc_snapshot_writer {
    dc_store_t *store;
    char database_dir[256];
    char id[DC_SNAPSHOT_ID_LEN + 1];
    time_t created;
    dc_store_lease_t *lease;
    dc_store_writer_t *tar_object;
    dc_filter_t *count;  /* archive bytes */
    dc_filter_t *sha256; /* archive hash */
    struct archive *tar;
    dc_filter_t *member_head; /* [seal ->] member_sha -> member_count -> archive data */
    dc_filter_t *seal;        /* NULL when not encrypting */
    dc_filter_t *member_sha;
    dc_filter_t *member_count;
    const char *member;    /* the member being written, for messages */
    dc_error_t sink_error; /* what the store said when libarchive's write failed */
    bool sink_failed;
};

static int store_sink(void *ctx, const uint8_t *data, size_t len, dc_error_t *err)
{
    dc_snapshot_writer_t *w = ctx;
    return dc_store_writer_write(w->tar_object, data, len, err);
}

static int write_data(dc_snapshot_writer_t *w, const char *member, const void *data, size_t len,
                      dc_error_t *err);

static int member_sink(void *ctx, const uint8_t *data, size_t len, dc_error_t *err)
{
    dc_snapshot_writer_t *w = ctx;
    return write_data(w, w->member, data, len, err);
}

static int member_chain_new(dc_snapshot_writer_t *w, const dc_key_t *key, dc_error_t *err)
{
    w->member_count = dc_filter_count_new(dc_filter_callback_sink_new(member_sink, w));
    w->member_sha = dc_filter_sha256_new(w->member_count);
    w->member_head = w->member_sha;
    if (key == NULL)
        return 0;
    w->seal = dc_filter_aead_seal_new(key->data, w->member_sha, err);
    if (w->seal == NULL)
        return -1;
    w->member_head = w->seal;
    return 0;
}

static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    dc_snapshot_writer_t *w = ctx;
    if (w->tar_object == NULL)
        return -1; /* aborted: libarchive flushing on free has nowhere to go */
    if (dc_filter_write(w->count, buf, len, &w->sink_error) != 0) {
        w->sink_failed = true;
        return -1;
    }
    return (la_ssize_t)len;
}

static char *object_key(const dc_snapshot_writer_t *w, const char *object)
{
    return dc_sprintf("%s/%s/%s", w->database_dir, w->id, object);
}

static int tar_failed(dc_snapshot_writer_t *w, const char *what, const char *member,
                      dc_error_t *err)
{
    if (w->sink_failed) {
        *err = w->sink_error;
        return -1;
    }
    return dc_error_set(err, "cannot write %s %s to the archive: %s", what, member,
                        archive_error_string(w->tar) ? archive_error_string(w->tar) : "?");
}

/* True when something is already stored under <database-dir>/<id>/ (an id collision). */
static bool id_taken(dc_snapshot_writer_t *w)
{
    static const char *const objects[] = {"snapshot.tar", "manifest.json"};
    for (size_t i = 0; i < 2; i++) {
        char *key = object_key(w, objects[i]);
        bool exists = false;
        dc_error_t ignored;
        int rc = dc_store_exists(w->store, key, &exists, &ignored);
        free(key);
        if (rc != 0 || exists)
            return true;
    }
    return false;
}

typedef struct newest_of_second {
    char stamp[17]; /* "YYYYMMDDTHHMMSSZ" */
    char id[DC_SNAPSHOT_ID_LEN + 1];
} newest_of_second_t;

static int note_same_second(void *ctx, const dc_store_entry_t *entry, dc_error_t *err)
{
    (void)err;
    newest_of_second_t *n = ctx;
    const char *slash = strchr(entry->key, '/');
    if (slash == NULL || strlen(slash + 1) < DC_SNAPSHOT_ID_LEN)
        return 0;
    char id[DC_SNAPSHOT_ID_LEN + 1];
    memcpy(id, slash + 1, DC_SNAPSHOT_ID_LEN);
    id[DC_SNAPSHOT_ID_LEN] = '\0';
    if (dc_snapshot_id_valid(id) && strncmp(id, n->stamp, 16) == 0 && strcmp(id, n->id) > 0)
        memcpy(n->id, id, sizeof(n->id));
    return 0;
}

/* The newest id already in the store for the second of w->created, "" when none. */
static void newest_id_of_second(dc_snapshot_writer_t *w, char out[DC_SNAPSHOT_ID_LEN + 1])
{
    newest_of_second_t n = {.id = ""};
    dc_snapshot_id_new(w->created, out);
    memcpy(n.stamp, out, 16);
    n.stamp[16] = '\0';
    char *prefix = dc_sprintf("%s/", w->database_dir);
    dc_error_t ignored;
    if (dc_store_list(w->store, prefix, note_same_second, &n, &ignored) != 0)
        n.id[0] = '\0'; /* an unlistable store fails at the write that follows */
    free(prefix);
    memcpy(out, n.id, sizeof(n.id));
}

/* Picks a fresh id, after every id of the same second already in the store, and takes its
 * lease: two backups in the same second get different ids that sort in the order they were
 * taken, and a committed snapshot is never overwritten. */
static int claim_id(dc_snapshot_writer_t *w, dc_error_t *err)
{
    char newest[DC_SNAPSHOT_ID_LEN + 1];
    newest_id_of_second(w, newest);
    for (int attempt = 0; attempt < 8; attempt++) {
        if (!dc_snapshot_id_new_after(w->created, newest[0] ? newest : NULL, w->id))
            break;
        char *lease = dc_sprintf("%s.%s", w->database_dir, w->id);
        int rc = dc_store_lease_acquire(w->store, lease, &w->lease, err);
        free(lease);
        if (rc == 0 && !id_taken(w))
            return 0;
        if (rc == 0)
            dc_store_lease_release(w->lease);
        w->lease = NULL;
        memcpy(newest, w->id, sizeof(newest)); /* taken by another backup: go after it */
    }
    return dc_error_set(err, "cannot find a free snapshot id in store %s", dc_store_url(w->store));
}

int dc_snapshot_writer_open(dc_store_t *store, const char *database, time_t created,
                            const dc_key_t *key, char id_out[DC_SNAPSHOT_ID_LEN + 1],
                            dc_snapshot_writer_t **out, dc_error_t *err)
{
    dc_snapshot_writer_t *w = dc_calloc(1, sizeof(*w));
    w->store = store;
    w->created = created;
    dc_snapshot_database_dir(database, w->database_dir, sizeof(w->database_dir));
    if (member_chain_new(w, key, err) != 0) {
        dc_filter_free_chain(w->member_sha);
        free(w);
        return -1;
    }
    if (claim_id(w, err) != 0) {
        dc_filter_free_chain(w->member_head);
        free(w);
        return -1;
    }
    char *tar_key = object_key(w, "snapshot.tar");
    int rc = dc_store_writer_open(store, tar_key, &w->tar_object, err);
    free(tar_key);
    if (rc != 0) {
        dc_store_lease_release(w->lease);
        dc_filter_free_chain(w->member_head);
        free(w);
        return -1;
    }
    w->sha256 = dc_filter_sha256_new(dc_filter_callback_sink_new(store_sink, w));
    w->count = dc_filter_count_new(w->sha256);

    w->tar = archive_write_new();
    if (archive_write_set_format_pax_restricted(w->tar) != ARCHIVE_OK ||
        archive_write_open2(w->tar, w, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
        dc_error_set(err, "cannot start the archive: %s", archive_error_string(w->tar));
        dc_snapshot_writer_abort(w);
        return -1;
    }
    memcpy(id_out, w->id, sizeof(w->id));
    *out = w;
    return 0;
}

/* Writes the member's header (with its stored size) and readies the member chain. */
static int begin_member(dc_snapshot_writer_t *w, const char *member, uint64_t size, dc_error_t *err)
{
    if (w->seal != NULL)
        size = dc_aead_sealed_size(size);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, member);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0640);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, w->created, 0);
    int rc = archive_write_header(w->tar, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return tar_failed(w, "the header of", member, err);
    w->member = member;
    dc_filter_reset_chain(w->member_head);
    if (w->seal == NULL)
        return 0;
    char *context = dc_sprintf("%s/%s", w->id, member);
    rc = dc_filter_aead_begin(w->seal, context, err);
    free(context);
    return rc;
}

static int end_member(dc_snapshot_writer_t *w, dc_stored_t *stored, dc_error_t *err)
{
    if (dc_filter_finish(w->member_head, err) != 0)
        return -1;
    stored->bytes = dc_filter_count_bytes(w->member_count);
    dc_filter_sha256_hex(w->member_sha, stored->sha256);
    return 0;
}

static int write_data(dc_snapshot_writer_t *w, const char *member, const void *data, size_t len,
                      dc_error_t *err)
{
    const char *p = data;
    while (len > 0) {
        la_ssize_t n = archive_write_data(w->tar, p, len);
        if (n <= 0)
            return tar_failed(w, "member", member, err);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int dc_snapshot_writer_add(dc_snapshot_writer_t *w, const char *member, const void *data,
                           size_t len, dc_stored_t *stored, dc_error_t *err)
{
    if (begin_member(w, member, len, err) != 0 ||
        dc_filter_write(w->member_head, data, len, err) != 0)
        return -1;
    return end_member(w, stored, err);
}

int dc_snapshot_writer_add_fd(dc_snapshot_writer_t *w, const char *member, int fd, uint64_t size,
                              dc_stored_t *stored, dc_error_t *err)
{
    uint8_t *buf = dc_malloc(COPY_BUFFER);
    uint64_t done = 0;
    int rc = begin_member(w, member, size, err);
    while (rc == 0 && done < size) {
        size_t want = size - done < COPY_BUFFER ? (size_t)(size - done) : COPY_BUFFER;
        ssize_t n = pread(fd, buf, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = dc_error_set(err, "cannot read the spooled %s: %s", member,
                              n < 0 ? strerror(errno) : "file is shorter than expected");
            break;
        }
        rc = dc_filter_write(w->member_head, buf, (size_t)n, err);
        done += (uint64_t)n;
    }
    if (rc == 0)
        rc = end_member(w, stored, err);
    free(buf);
    return rc;
}

uint64_t dc_snapshot_writer_bytes(const dc_snapshot_writer_t *w)
{
    return dc_filter_count_bytes(w->count);
}

static void writer_free(dc_snapshot_writer_t *w)
{
    if (w->tar != NULL)
        archive_write_free(w->tar);
    dc_filter_free_chain(w->count);
    dc_filter_free_chain(w->member_head);
    dc_store_lease_release(w->lease);
    free(w);
}

void dc_snapshot_writer_abort(dc_snapshot_writer_t *w)
{
    if (w == NULL)
        return;
    dc_store_writer_abort(w->tar_object);
    w->tar_object = NULL;
    writer_free(w);
}

static int write_manifest(dc_snapshot_writer_t *w, const dc_manifest_t *m, dc_error_t *err)
{
    char *text = dc_manifest_to_json(m);
    if (text == NULL)
        return dc_error_set(err,
                            "cannot write the manifest: the name '%s' is not valid UTF-8 (is the "
                            "database SQL_ASCII with non-UTF-8 names?)",
                            dc_manifest_invalid_string(m) ? dc_manifest_invalid_string(m) : "?");
    char *key = object_key(w, "manifest.json");
    dc_store_writer_t *obj = NULL;
    int rc = dc_store_writer_open(w->store, key, &obj, err);
    if (rc == 0)
        rc = dc_store_writer_write(obj, text, strlen(text), err);
    if (rc == 0)
        rc = dc_store_writer_write(obj, "\n", 1, err);
    if (rc == 0)
        rc = dc_store_writer_commit(obj, err);
    else
        dc_store_writer_abort(obj);
    free(key);
    free(text);
    return rc;
}

int dc_snapshot_writer_commit(dc_snapshot_writer_t *w, dc_manifest_t *m, dc_error_t *err)
{
    if (archive_write_close(w->tar) != ARCHIVE_OK) {
        tar_failed(w, "the end of", "snapshot.tar", err);
        dc_snapshot_writer_abort(w);
        return -1;
    }
    if (dc_filter_finish(w->count, err) != 0) {
        dc_snapshot_writer_abort(w);
        return -1;
    }
    m->archive_bytes = dc_filter_count_bytes(w->count);
    dc_filter_sha256_hex(w->sha256, m->archive_sha256);
    dc_store_writer_t *tar_object = w->tar_object;
    w->tar_object = NULL;
    int rc = dc_store_writer_commit(tar_object, err);
    if (rc == 0) {
        dc_fault_point("before-manifest");
        /* A cleaner that took our lease for dead may be deleting the archive: no manifest
         * then, or a snapshot would be listed whose archive is gone. */
        rc = dc_store_lease_check(w->lease, err);
        if (rc == 0)
            rc = write_manifest(w, m, err);
    }
    if (rc != 0) {
        /* The archive may already be in place without a manifest: an incomplete snapshot,
         * never listed, removed by the next cleaning once our lease is gone. */
        char *prefix = dc_sprintf("%s/%s", w->database_dir, w->id);
        dc_error_t ignored;
        dc_store_delete_prefix(w->store, prefix, &ignored);
        free(prefix);
        writer_free(w);
        return -1;
    }
    writer_free(w);
    return 0;
}
