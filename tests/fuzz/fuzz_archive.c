/* libFuzzer target: the snapshot archive reader (src/archive/snapshot_reader.c) on an arbitrary
 * snapshot.tar, against a fixed manifest (pre-data, table chunks, a large object's chunk,
 * post-data) whose archive size and SHA-256 are set to the input's, so the fuzzer gets past
 * the whole-archive checks into the member ones. The input goes into a file:// store (the
 * reader reads stores), then through both readers a restore uses: front to back (every byte
 * hashed) and the index (headers only) with a reader per member.
 *
 * With DC_FUZZ_ARCHIVE_SEED=<file> set, it writes the valid archive of its manifest there and
 * the manifest beside it (<file>.manifest.json), then exits: how the seeds of fuzz_archive and
 * fuzz_manifest were made. */
#include "deployctl/snapshot.h"
#include "deployctl/store.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"
#include "fuzz_common.h"

static dc_store_t *store;
static dc_manifest_t *manifest;
static char db_dir[256];
static char *archive_path;

/* Fixed member bytes, so the seed archive matches the manifest whatever run made it. */
static void member_bytes(int i, dc_buf_t *out)
{
    size_t len = i == 2 ? 0 : (size_t)(40 + i * 300);
    for (size_t k = 0; k < len; k++) {
        char c = (char)('a' + (k * 7 + (size_t)i) % 26);
        dc_buf_append(out, &c, 1);
    }
}

static void add(dc_snapshot_writer_t *w, const char *name, int i, uint64_t *bytes, char *sha)
{
    dc_buf_t b = {0};
    dc_error_t err = {0};
    member_bytes(i, &b);
    dc_stored_t stored;
    if (dc_snapshot_writer_add(w, name, b.len ? b.data : "", b.len, &stored, &err) != 0) {
        fprintf(stderr, "fuzz_archive: %s\n", err.message);
        abort();
    }
    *bytes = stored.bytes;
    memcpy(sha, stored.sha256, sizeof(stored.sha256));
    dc_buf_free(&b);
}

static void add_chunk(dc_snapshot_writer_t *w, dc_manifest_chunk_t *k, int i)
{
    add(w, k->member, i, &k->stored_bytes, k->sha256);
    dc_sha256_hex("", 0, k->raw_sha256);
}

static void add_schema(dc_snapshot_writer_t *w, const char *section, const char *member, int i)
{
    dc_manifest_schema_t *sc = &manifest->schema[manifest->schema_count++];
    snprintf(sc->section, sizeof(sc->section), "%s", section);
    snprintf(sc->member, sizeof(sc->member), "%s", member);
    add(w, member, i, &sc->bytes, sc->sha256);
}

/* Writes the valid archive of the manifest with the snapshot writer, as a backup does. */
static void write_snapshot(void)
{
    dc_error_t err = {0};
    dc_snapshot_writer_t *w;
    manifest = dc_manifest_new();
    manifest->database = dc_strdup("app");
    dc_snapshot_database_dir("app", db_dir, sizeof(db_dir));
    if (dc_snapshot_writer_open(store, "app", 1764000000, NULL, manifest->id, &w, &err) != 0)
        goto fail;
    add_schema(w, "pre-data", DC_MEMBER_PRE_DATA, 0);
    dc_manifest_table_t *t = dc_manifest_add_table(manifest, "public", "orders");
    for (unsigned c = 1; c <= 3; c++) {
        dc_manifest_chunk_t k = {0};
        dc_snapshot_chunk_member(1, c, k.member);
        add_chunk(w, &k, (int)c);
        dc_manifest_table_add_chunk(t, &k);
    }
    dc_manifest_large_object_t *lo = dc_manifest_add_large_object(manifest, 16400);
    dc_manifest_chunk_t k = {0};
    dc_snapshot_blob_member(16400, 1, k.member);
    add_chunk(w, &k, 4);
    dc_manifest_large_object_add_chunk(lo, &k);
    add_schema(w, "post-data", DC_MEMBER_POST_DATA, 5);
    if (dc_snapshot_writer_commit(w, manifest, &err) == 0)
        return;
fail:
    fprintf(stderr, "fuzz_archive: cannot write the reference snapshot: %s\n", err.message);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dc_error_t err = {0};
    fuzz_setup("archive");
    char *url = dc_sprintf("file://%s/store", fuzz_dir);
    if (dc_store_open(url, &store, &err) != 0 || dc_store_check_writable(store, &err) != 0) {
        fprintf(stderr, "fuzz_archive: %s\n", err.message);
        abort();
    }
    free(url);
    write_snapshot();
    archive_path = dc_sprintf("%s/store/%s/%s/snapshot.tar", fuzz_dir, db_dir, manifest->id);
    const char *seed = getenv("DC_FUZZ_ARCHIVE_SEED");
    if (seed != NULL) {
        char *bytes;
        size_t len;
        if (dc_read_file(archive_path, 0, false, &bytes, &len, &err) != 0)
            abort();
        fuzz_write_file(seed, bytes, len);
        free(bytes);
        char *json = dc_manifest_to_json(manifest);
        char *path = dc_sprintf("%s.manifest.json", seed);
        fuzz_write_file(path, json, strlen(json));
        free(path);
        free(json);
        exit(0);
    }
    return 0;
}

/* Reads the current member to its end (where the reader checks its size and SHA-256). */
static int drain(dc_snapshot_reader_t *r, char *buf, size_t size, dc_error_t *err)
{
    for (;;) {
        size_t got = 0;
        if (dc_snapshot_reader_read(r, buf, size, &got, err) != 0)
            return -1;
        if (got == 0)
            return 0;
        if (got > size)
            abort();
    }
}

/* Front to back, as restore reads a store without ranges; every other member is skipped
 * unread, as a reader that stops early does. */
static void read_whole(void)
{
    dc_snapshot_reader_t *r;
    dc_error_t err = {0};
    char buf[777];
    if (dc_snapshot_reader_open(store, db_dir, manifest, &r, &err) != 0)
        return;
    int rc = 0;
    for (unsigned n = 0;; n++) {
        dc_member_t m;
        bool end = false;
        rc = dc_snapshot_reader_next(r, &m, &end, &err);
        if (rc != 0 || end)
            break;
        if (n % 2 == 0 && (rc = drain(r, buf, sizeof(buf), &err)) != 0)
            break;
    }
    if (rc == 0)
        (void)dc_snapshot_reader_finish(r, &err);
    dc_snapshot_reader_close(r);
}

static const char *member_name(size_t i)
{
    if (i == 0 || i == 5)
        return manifest->schema[i == 0 ? 0 : 1].member;
    if (i == 4)
        return manifest->large_objects[0].chunks[0].member;
    return manifest->tables[0].chunks[i - 1].member;
}

/* The index, then every member through its own reader, as a parallel restore reads. */
static void read_indexed(void)
{
    dc_snapshot_index_t *ix;
    dc_error_t err = {0};
    char buf[4096];
    if (dc_snapshot_index_build(store, db_dir, manifest, &ix, &err) != 0)
        return;
    for (size_t i = 0; i < 6; i++) {
        dc_snapshot_reader_t *r;
        dc_member_t info;
        if (dc_snapshot_reader_open_member(ix, member_name(i), &r, &info, &err) != 0)
            continue;
        (void)drain(r, buf, sizeof(buf), &err);
        dc_snapshot_reader_close(r);
    }
    dc_snapshot_index_free(ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(archive_path, data, size);
    manifest->archive_bytes = size;
    dc_sha256_hex(data, size, manifest->archive_sha256);
    read_whole();
    read_indexed();
    return 0;
}
