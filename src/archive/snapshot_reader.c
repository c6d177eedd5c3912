/* Reads a snapshot's archive back, trusting nothing: only the members its manifest names are
 * accepted, in the format's order (pre-data first, post-data last), each once, as regular files
 * of the announced size; each member's bytes are checked against its SHA-256 as they are
 * consumed, and the whole archive against the manifest's at the end.
 * Stores that read ranges also get random access: an index of where each member starts (its
 * headers read, its data skipped, with the same checks), then a reader per member.
 * Members of an encrypted snapshot are opened segment by segment (stream.h): a reader hands out
 * only plaintext whose tag checked, and needs the manifest unlocked with the key first. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/snapshot.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define READ_BLOCK  (1024 * 1024)
#define INDEX_BLOCK (16 * 1024)
#define CIPHER_READ (64 * 1024) /* encrypted members: ciphertext read at a time */

typedef struct expected_member {
    const char *name;
    dc_member_t info;
    bool seen;
} expected_member_t;

typedef enum {
    READ_WHOLE,  /* front to back, every byte hashed */
    READ_INDEX,  /* every header, data skipped: where each member starts */
    READ_MEMBER, /* one member, from its headers to the next member's */
} read_mode_t;

struct dc_snapshot_reader {
    dc_store_t *store;
    const dc_manifest_t *manifest;
    read_mode_t mode;
    dc_store_reader_t *object; /* READ_INDEX and READ_MEMBER: the range from pos to end */
    uint64_t pos;
    uint64_t end;
    struct archive *tar;
    uint8_t *block;
    dc_filter_t *archive_count; /* -> archive_sha */
    dc_filter_t *archive_sha;
    expected_member_t *expected; /* sorted by name */
    size_t expected_count;
    size_t members_read;
    expected_member_t *current;
    expected_member_t *wanted; /* READ_MEMBER: the one member to read */
    uint64_t header_offset;    /* READ_INDEX: where the current member's headers start */
    dc_filter_t *member_sha;
    dc_filter_t *open; /* encrypted: AES-256-GCM open -> plain */
    dc_buf_t plain;    /* authenticated plaintext not handed out yet, from plain_pos */
    size_t plain_pos;
    uint8_t *cipher; /* encrypted: ciphertext read from the archive */
    uint64_t member_read;
    bool member_checked;
    bool at_end;
    dc_error_t io_error; /* what the store said when a read callback failed */
    bool io_failed;
    char key[512];
};

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buffer)
{
    (void)a;
    dc_snapshot_reader_t *r = ctx;
    size_t got = 0;
    if (r->object == NULL && r->mode != READ_WHOLE && r->pos < r->end &&
        dc_store_reader_open_range(r->store, r->key, r->pos, r->end - r->pos, &r->object,
                                   &r->io_error) != 0) {
        r->io_failed = true;
        return -1;
    }
    /* Indexing reads headers only: small reads, not a block of data after each skip. */
    size_t want = r->mode == READ_INDEX ? INDEX_BLOCK : READ_BLOCK;
    if (r->object != NULL &&
        dc_store_reader_read(r->object, r->block, want, &got, &r->io_error) != 0) {
        r->io_failed = true;
        return -1;
    }
    r->pos += got;
    if (got > 0 && r->mode == READ_WHOLE &&
        dc_filter_write(r->archive_count, r->block, got, &r->io_error) != 0) {
        r->io_failed = true;
        return -1;
    }
    *buffer = r->block;
    return (la_ssize_t)got;
}

/* Ranged modes: skipping data is moving the range's start, nothing is read. */
static la_int64_t skip_cb(struct archive *a, void *ctx, la_int64_t request)
{
    (void)a;
    dc_snapshot_reader_t *r = ctx;
    uint64_t left = r->end - r->pos;
    uint64_t skipped = request < 0 ? 0 : (uint64_t)request < left ? (uint64_t)request : left;
    dc_store_reader_close(r->object);
    r->object = NULL;
    r->pos += skipped;
    return (la_int64_t)skipped;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const expected_member_t *)a)->name, ((const expected_member_t *)b)->name);
}

static void expect(dc_snapshot_reader_t *r, const char *name, dc_member_t info)
{
    expected_member_t *e = &r->expected[r->expected_count++];
    e->name = name;
    e->info = info;
    e->info.name = name;
    e->seen = false;
}

static void build_expected(dc_snapshot_reader_t *r)
{
    const dc_manifest_t *m = r->manifest;
    size_t n = m->schema_count;
    for (size_t i = 0; i < m->table_count; i++)
        n += m->tables[i].chunk_count;
    for (size_t i = 0; i < m->large_object_count; i++)
        n += m->large_objects[i].chunk_count;
    r->expected = dc_calloc(n ? n : 1, sizeof(expected_member_t));
    for (size_t i = 0; i < m->schema_count; i++) {
        const dc_manifest_schema_t *s = &m->schema[i];
        dc_member_t info = {.kind = strcmp(s->section, "pre-data") == 0 ? DC_MEMBER_PRE_DATA_KIND
                                                                        : DC_MEMBER_POST_DATA_KIND,
                            .size = s->bytes,
                            .sha256 = s->sha256};
        expect(r, s->member, info);
    }
    for (size_t t = 0; t < m->table_count; t++) {
        for (size_t c = 0; c < m->tables[t].chunk_count; c++) {
            const dc_manifest_chunk_t *k = &m->tables[t].chunks[c];
            dc_member_t info = {.kind = DC_MEMBER_TABLE_CHUNK,
                                .index = t,
                                .chunk_index = c,
                                .chunk = k,
                                .size = k->stored_bytes,
                                .sha256 = k->sha256};
            expect(r, k->member, info);
        }
    }
    for (size_t l = 0; l < m->large_object_count; l++) {
        for (size_t c = 0; c < m->large_objects[l].chunk_count; c++) {
            const dc_manifest_chunk_t *k = &m->large_objects[l].chunks[c];
            dc_member_t info = {.kind = DC_MEMBER_BLOB_CHUNK,
                                .index = l,
                                .chunk_index = c,
                                .chunk = k,
                                .size = k->stored_bytes,
                                .sha256 = k->sha256};
            expect(r, k->member, info);
        }
    }
    if (r->expected_count > 1)
        qsort(r->expected, r->expected_count, sizeof(*r->expected), by_name);
}

/* Opens the archive in a mode; ranged modes read [pos, end) of it. */
static int open_reader(dc_store_t *store, const char *key, const dc_manifest_t *manifest,
                       read_mode_t mode, uint64_t pos, uint64_t end, dc_snapshot_reader_t **out,
                       dc_error_t *err)
{
    if (dc_manifest_check_unlocked(manifest, err) != 0)
        return -1;
    dc_snapshot_reader_t *r = dc_calloc(1, sizeof(*r));
    r->store = store;
    r->manifest = manifest;
    r->mode = mode;
    r->pos = pos;
    r->end = end;
    snprintf(r->key, sizeof(r->key), "%s", key);
    if (mode == READ_WHOLE && dc_store_reader_open(store, r->key, &r->object, err) != 0) {
        free(r);
        return -1;
    }
    r->block = dc_malloc(READ_BLOCK);
    r->archive_sha = dc_filter_sha256_new(NULL);
    r->archive_count = dc_filter_count_new(r->archive_sha);
    r->member_sha = dc_filter_sha256_new(NULL);
    if (manifest->encrypted) {
        r->open =
            dc_filter_aead_open_new(manifest->key->data, dc_filter_memory_sink_new(&r->plain), err);
        r->cipher = dc_malloc(CIPHER_READ);
        if (r->open == NULL) {
            dc_snapshot_reader_close(r);
            return -1;
        }
    }
    build_expected(r);
    r->tar = archive_read_new();
    archive_read_support_format_tar(r->tar);
    archive_read_set_read_callback(r->tar, read_cb);
    if (mode != READ_WHOLE)
        archive_read_set_skip_callback(r->tar, skip_cb);
    archive_read_set_callback_data(r->tar, r);
    if (archive_read_open1(r->tar) != ARCHIVE_OK) {
        if (r->io_failed)
            *err = r->io_error;
        else
            dc_error_set(err, "cannot read %s: %s", r->key, archive_error_string(r->tar));
        dc_snapshot_reader_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

static void archive_key(char *out, size_t size, const char *database_dir, const dc_manifest_t *m)
{
    snprintf(out, size, "%s/%s/snapshot.tar", database_dir, m->id);
}

int dc_snapshot_reader_open(dc_store_t *store, const char *database_dir,
                            const dc_manifest_t *manifest, dc_snapshot_reader_t **out,
                            dc_error_t *err)
{
    char key[512];
    archive_key(key, sizeof(key), database_dir, manifest);
    return open_reader(store, key, manifest, READ_WHOLE, 0, 0, out, err);
}

static int archive_failed(dc_snapshot_reader_t *r, const char *what, dc_error_t *err)
{
    if (r->io_failed) {
        *err = r->io_error;
        return -1;
    }
    const char *why = archive_error_string(r->tar);
    return dc_error_set(err, "snapshot %s: %s: %s (the archive is damaged or truncated)",
                        r->manifest->id, what, why ? why : "unexpected end of archive");
}

/* Checks the member just finished against its size and SHA-256. */
static int check_member(dc_snapshot_reader_t *r, dc_error_t *err)
{
    char sha[DC_HASH_HEX];
    if (r->current == NULL || r->member_checked)
        return 0;
    r->member_checked = true;
    dc_filter_finish(r->member_sha, err);
    dc_filter_sha256_hex(r->member_sha, sha);
    if (r->member_read != r->current->info.size)
        return dc_error_set(err, "snapshot %s: member %s has %llu bytes, the manifest says %llu",
                            r->manifest->id, r->current->name, (unsigned long long)r->member_read,
                            (unsigned long long)r->current->info.size);
    if (strcmp(sha, r->current->info.sha256) != 0)
        return dc_error_set(err,
                            "snapshot %s: member %s is corrupt: its SHA-256 is %s, the manifest "
                            "says %s",
                            r->manifest->id, r->current->name, sha, r->current->info.sha256);
    return 0;
}

static int accept_member(dc_snapshot_reader_t *r, struct archive_entry *e, dc_member_t *out,
                         dc_error_t *err)
{
    const char *name = archive_entry_pathname(e);
    expected_member_t key = {.name = name ? name : ""};
    expected_member_t *found =
        r->expected_count ? bsearch(&key, r->expected, r->expected_count, sizeof(key), by_name)
                          : NULL;
    const char *id = r->manifest->id;
    if (found == NULL)
        return dc_error_set(err,
                            "snapshot %s: unexpected member '%s' in the archive: it does not "
                            "match its manifest",
                            id, key.name);
    if (found->seen)
        return dc_error_set(err, "snapshot %s: member %s appears twice in the archive", id,
                            found->name);
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != NULL ||
        archive_entry_symlink(e) != NULL)
        return dc_error_set(err, "snapshot %s: member %s is not a regular file", id, found->name);
    if (!archive_entry_size_is_set(e) || (uint64_t)archive_entry_size(e) != found->info.size)
        return dc_error_set(err, "snapshot %s: member %s has the wrong size in the archive", id,
                            found->name);
    if (r->mode == READ_MEMBER) {
        if (r->members_read > 0 || found != r->wanted)
            return dc_error_set(err,
                                "snapshot %s: the archive has %s where its index found %s (it "
                                "changed while being read)",
                                id, found->name, r->wanted->name);
        goto accepted;
    }
    bool first = r->members_read == 0;
    if (first != (found->info.kind == DC_MEMBER_PRE_DATA_KIND))
        return dc_error_set(err, "snapshot %s: the archive does not start with %s", id,
                            DC_MEMBER_PRE_DATA);
    expected_member_t *post = NULL;
    for (size_t i = 0; i < r->expected_count; i++) {
        if (r->expected[i].info.kind == DC_MEMBER_POST_DATA_KIND)
            post = &r->expected[i];
    }
    if (post != NULL && post->seen)
        return dc_error_set(err, "snapshot %s: member %s comes after %s", id, found->name,
                            DC_MEMBER_POST_DATA);
accepted:
    found->seen = true;
    r->members_read++;
    r->current = found;
    r->member_read = 0;
    r->member_checked = false;
    dc_filter_reset_chain(r->member_sha);
    *out = found->info;
    if (r->open == NULL)
        return 0;
    r->plain.len = 0;
    r->plain_pos = 0;
    dc_filter_reset_chain(r->open);
    char *context = dc_sprintf("%s/%s", id, found->name);
    int rc = dc_filter_aead_begin(r->open, context, err);
    free(context);
    return rc;
}

int dc_snapshot_reader_next(dc_snapshot_reader_t *r, dc_member_t *out, bool *end, dc_error_t *err)
{
    *end = false;
    if (r->current != NULL && !r->member_checked) {
        /* The caller did not read it all: skip the rest (it is not checked then). */
        if (archive_read_data_skip(r->tar) != ARCHIVE_OK)
            return archive_failed(r, "skipping a member", err);
        r->member_checked = true;
    }
    struct archive_entry *e;
    int rc = archive_read_next_header(r->tar, &e);
    if (rc == ARCHIVE_EOF) {
        r->at_end = true;
        *end = true;
        return 0;
    }
    if (rc != ARCHIVE_OK)
        return archive_failed(r, "reading the next member", err);
    r->header_offset = (uint64_t)archive_read_header_position(r->tar);
    return accept_member(r, e, out, err);
}

/* Hands out authenticated plaintext; *got == 0 when there is none. */
static void take_plain(dc_snapshot_reader_t *r, void *buf, size_t len, size_t *got)
{
    size_t left = r->plain.len - r->plain_pos;
    *got = left < len ? left : len;
    memcpy(buf, r->plain.data + r->plain_pos, *got);
    r->plain_pos += *got;
    if (r->plain_pos == r->plain.len)
        r->plain.len = r->plain_pos = 0;
}

static int open_failed(dc_snapshot_reader_t *r, dc_error_t *err)
{
    r->plain.len = r->plain_pos = 0;
    return dc_error_prefix(err, "snapshot %s: member %s: ", r->manifest->id, r->current->name);
}

static int read_encrypted(dc_snapshot_reader_t *r, void *buf, size_t len, size_t *got,
                          dc_error_t *err)
{
    for (;;) {
        if (r->plain_pos < r->plain.len) {
            take_plain(r, buf, len, got);
            return 0;
        }
        if (r->current == NULL || r->member_checked)
            return 0;
        la_ssize_t n = archive_read_data(r->tar, r->cipher, CIPHER_READ);
        if (n < 0)
            return archive_failed(r, "reading member data", err);
        if (n == 0) {
            /* The last segment authenticates here; the whole member is checked against the
             * manifest before that segment is handed out. */
            if (dc_filter_finish(r->open, err) != 0) {
                r->member_checked = true;
                return open_failed(r, err);
            }
            if (check_member(r, err) != 0) {
                r->plain.len = r->plain_pos = 0;
                return -1;
            }
            continue;
        }
        dc_filter_write(r->member_sha, r->cipher, (size_t)n, err);
        r->member_read += (uint64_t)n;
        if (dc_filter_write(r->open, r->cipher, (size_t)n, err) != 0)
            return open_failed(r, err);
    }
}

int dc_snapshot_reader_read(dc_snapshot_reader_t *r, void *buf, size_t len, size_t *got,
                            dc_error_t *err)
{
    *got = 0;
    if (r->open != NULL)
        return read_encrypted(r, buf, len, got, err);
    if (r->current == NULL || r->member_checked)
        return 0;
    la_ssize_t n = archive_read_data(r->tar, buf, len);
    if (n < 0)
        return archive_failed(r, "reading member data", err);
    if (n == 0)
        return check_member(r, err);
    dc_filter_write(r->member_sha, buf, (size_t)n, err);
    r->member_read += (uint64_t)n;
    *got = (size_t)n;
    return 0;
}

/* The archive object ends exactly where the manifest says: a byte at archive_bytes - 1, none
 * at archive_bytes. */
static int check_object_size(dc_snapshot_reader_t *r, dc_error_t *err)
{
    uint64_t bytes = r->manifest->archive_bytes;
    size_t got[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        uint64_t at = bytes - 1 + (uint64_t)i;
        dc_store_reader_t *probe;
        if (bytes == 0 && i == 0)
            continue;
        if (dc_store_reader_open_range(r->store, r->key, at, 1, &probe, err) != 0)
            return -1;
        int rc = dc_store_reader_read(probe, r->block, 1, &got[i], err);
        dc_store_reader_close(probe);
        if (rc != 0)
            return -1;
    }
    if (got[0] != (bytes > 0) || got[1] != 0)
        return dc_error_set(err,
                            "snapshot %s: snapshot.tar is %s than the %llu bytes its manifest "
                            "says",
                            r->manifest->id, got[1] != 0 ? "longer" : "shorter",
                            (unsigned long long)bytes);
    return 0;
}

int dc_snapshot_reader_finish(dc_snapshot_reader_t *r, dc_error_t *err)
{
    const char *id = r->manifest->id;
    if (!r->at_end)
        return dc_error_set(err, "snapshot %s: the archive was not read to its end", id);
    for (size_t i = 0; i < r->expected_count; i++) {
        if (!r->expected[i].seen)
            return dc_error_set(err,
                                "snapshot %s: member %s is missing from the archive (truncated "
                                "or damaged)",
                                id, r->expected[i].name);
    }
    if (r->mode == READ_INDEX) /* data skipped, not hashed: each member checks its own */
        return check_object_size(r, err);
    /* What libarchive did not need (the end-of-archive padding) still counts for the hash. */
    for (;;) {
        size_t got = 0;
        if (dc_store_reader_read(r->object, r->block, READ_BLOCK, &got, err) != 0)
            return -1;
        if (got == 0)
            break;
        dc_filter_write(r->archive_count, r->block, got, err);
    }
    char sha[DC_HASH_HEX];
    dc_filter_finish(r->archive_count, err);
    dc_filter_sha256_hex(r->archive_sha, sha);
    uint64_t bytes = dc_filter_count_bytes(r->archive_count);
    if (bytes != r->manifest->archive_bytes)
        return dc_error_set(err, "snapshot %s: snapshot.tar has %llu bytes, the manifest says %llu",
                            id, (unsigned long long)bytes,
                            (unsigned long long)r->manifest->archive_bytes);
    if (strcmp(sha, r->manifest->archive_sha256) != 0)
        return dc_error_set(err,
                            "snapshot %s: snapshot.tar is corrupt: its SHA-256 is %s, the "
                            "manifest says %s",
                            id, sha, r->manifest->archive_sha256);
    return 0;
}

void dc_snapshot_reader_close(dc_snapshot_reader_t *r)
{
    if (r == NULL)
        return;
    if (r->tar != NULL)
        archive_read_free(r->tar);
    dc_store_reader_close(r->object);
    dc_filter_free_chain(r->archive_count);
    dc_filter_free_chain(r->member_sha);
    dc_filter_free_chain(r->open);
    if (r->plain.data != NULL)
        OPENSSL_cleanse(r->plain.data, r->plain.cap);
    dc_buf_free(&r->plain);
    free(r->cipher);
    free(r->expected);
    free(r->block);
    free(r);
}

/* ---- random access ---- */

typedef struct indexed_member {
    const char *name; /* the manifest's */
    uint64_t offset;  /* of its headers in the archive */
    uint64_t end;     /* where the next member's headers start (or the archive ends) */
} indexed_member_t;

struct dc_snapshot_index {
    dc_store_t *store;
    const dc_manifest_t *manifest;
    char key[512];
    indexed_member_t *members; /* sorted by name */
    size_t count;
};

static int indexed_by_name(const void *a, const void *b)
{
    return strcmp(((const indexed_member_t *)a)->name, ((const indexed_member_t *)b)->name);
}

int dc_snapshot_index_build(dc_store_t *store, const char *database_dir,
                            const dc_manifest_t *manifest, dc_snapshot_index_t **out,
                            dc_error_t *err)
{
    dc_snapshot_index_t *ix = dc_calloc(1, sizeof(*ix));
    ix->store = store;
    ix->manifest = manifest;
    archive_key(ix->key, sizeof(ix->key), database_dir, manifest);
    dc_snapshot_reader_t *r = NULL;
    /* The store's own size of the object bounds the ranges; the manifest's is checked. */
    int rc = open_reader(store, ix->key, manifest, READ_INDEX, 0, manifest->archive_bytes, &r, err);
    if (rc == 0) {
        ix->members = dc_calloc(r->expected_count + 1, sizeof(indexed_member_t));
        for (;;) {
            dc_member_t member;
            bool end = false;
            rc = dc_snapshot_reader_next(r, &member, &end, err);
            if (rc != 0 || end)
                break;
            if (ix->count > 0)
                ix->members[ix->count - 1].end = r->header_offset;
            ix->members[ix->count++] = (indexed_member_t){member.name, r->header_offset, 0};
        }
    }
    if (rc == 0 && ix->count > 0)
        ix->members[ix->count - 1].end = r->pos;
    if (rc == 0)
        rc = dc_snapshot_reader_finish(r, err);
    dc_snapshot_reader_close(r);
    if (rc != 0) {
        dc_snapshot_index_free(ix);
        return -1;
    }
    qsort(ix->members, ix->count, sizeof(*ix->members), indexed_by_name);
    *out = ix;
    return 0;
}

void dc_snapshot_index_free(dc_snapshot_index_t *ix)
{
    if (ix == NULL)
        return;
    free(ix->members);
    free(ix);
}

int dc_snapshot_reader_open_member(const dc_snapshot_index_t *ix, const char *name,
                                   dc_snapshot_reader_t **out, dc_member_t *info, dc_error_t *err)
{
    indexed_member_t key = {.name = name};
    const indexed_member_t *m = bsearch(&key, ix->members, ix->count, sizeof(key), indexed_by_name);
    if (m == NULL)
        return dc_error_set(err, "snapshot %s: no member %s in the archive", ix->manifest->id,
                            name);
    dc_snapshot_reader_t *r;
    if (open_reader(ix->store, ix->key, ix->manifest, READ_MEMBER, m->offset, m->end, &r, err) != 0)
        return -1;
    expected_member_t wanted = {.name = name};
    r->wanted = bsearch(&wanted, r->expected, r->expected_count, sizeof(wanted), by_name);
    bool end = false;
    if (r->wanted == NULL || dc_snapshot_reader_next(r, info, &end, err) != 0 || end) {
        if (r->wanted == NULL || end)
            dc_error_set(err, "snapshot %s: member %s is not where the index found it",
                         ix->manifest->id, name);
        dc_snapshot_reader_close(r);
        return -1;
    }
    *out = r;
    return 0;
}
