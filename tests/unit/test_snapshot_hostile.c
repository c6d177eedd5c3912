/* Hostile snapshot archives, built member by member with libarchive (as an attacker with write
 * access to the store would) against a valid manifest, are refused by both readers -- front to
 * back (restore, verify) and the index with a reader per member (parallel restore) -- with a
 * message naming what is wrong: member names with "..", absolute names, symbolic and hard
 * links, a directory, duplicate members, a member bigger or smaller than its manifest says, a
 * header announcing more bytes than the archive holds, and manifests that lie about a member's
 * or the archive's size. The same archive written honestly is accepted (so each refusal is the
 * hostile part's doing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/snapshot.h"
#include "deployctl/store.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"
#include "unit_tmpdir.h"

#define PRE   "CREATE TABLE orders (id int);\n"
#define CHUNK "zstd-frame-bytes-of-the-orders-table-chunk-one"
#define POST  "ALTER TABLE orders ADD PRIMARY KEY (id);\n"

typedef struct fixture {
    char dir[64];
    dc_store_t *store;
    dc_manifest_t *m;
    char db_dir[256];
    char archive[512];
} fixture_t;

/* One tar member: a regular file by default; link set makes a symlink (or a hard link). */
typedef struct entry {
    const char *name;
    const char *data;
    const char *link;
    bool hard;
    bool dir;
    long size_delta; /* header size = strlen(data) + delta: a header that lies */
} entry_t;

static void set_schema(dc_manifest_schema_t *s, const char *section, const char *member,
                       const char *data)
{
    snprintf(s->section, sizeof(s->section), "%s", section);
    snprintf(s->member, sizeof(s->member), "%s", member);
    s->bytes = strlen(data);
    dc_sha256_hex(data, s->bytes, s->sha256);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    dc_error_t err = {0};
    if (unit_tmpdir_new(fx->dir, sizeof(fx->dir), "hostile") != 0)
        return -1;
    char *url = dc_sprintf("file://%s/store", fx->dir);
    int rc = dc_store_open(url, &fx->store, &err);
    free(url);
    if (rc != 0)
        return -1;
    dc_manifest_t *m = dc_manifest_new();
    m->database = dc_strdup("app");
    dc_snapshot_id_new(1764000000, m->id);
    dc_snapshot_database_dir("app", fx->db_dir, sizeof(fx->db_dir));
    set_schema(&m->schema[0], "pre-data", DC_MEMBER_PRE_DATA, PRE);
    set_schema(&m->schema[1], "post-data", DC_MEMBER_POST_DATA, POST);
    m->schema_count = 2;
    dc_manifest_table_t *t = dc_manifest_add_table(m, "public", "orders");
    dc_manifest_chunk_t k = {0};
    dc_snapshot_chunk_member(1, 1, k.member);
    k.stored_bytes = strlen(CHUNK);
    dc_sha256_hex(CHUNK, k.stored_bytes, k.sha256);
    dc_sha256_hex("", 0, k.raw_sha256);
    dc_manifest_table_add_chunk(t, &k);
    fx->m = m;
    snprintf(fx->archive, sizeof(fx->archive), "%s/store/%s/%s", fx->dir, fx->db_dir, m->id);
    if (dc_mkdir_p(fx->archive, 0700, &err) != 0)
        return -1;
    strncat(fx->archive, "/snapshot.tar", sizeof(fx->archive) - strlen(fx->archive) - 1);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    dc_store_close(fx->store);
    dc_manifest_free(fx->m);
    unit_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* Writes snapshot.tar with these members (pax format, as the writer does) and points the
 * manifest's archive size and SHA-256 at it, as a forger would. */
static void write_archive(fixture_t *fx, const entry_t *entries, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, fx->archive), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = &entries[i];
        struct archive_entry *ae = archive_entry_new();
        size_t len = e->data ? strlen(e->data) : 0;
        archive_entry_set_pathname(ae, e->name);
        archive_entry_set_perm(ae, 0600);
        if (e->link != NULL && e->hard) {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e->link);
        } else if (e->link != NULL) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e->link);
        } else {
            archive_entry_set_filetype(ae, e->dir ? AE_IFDIR : AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)len);
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len > 0 && e->link == NULL && !e->dir)
            assert_int_equal(archive_write_data(a, e->data, len), (la_ssize_t)len);
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_free(a), ARCHIVE_OK);
    char *bytes;
    size_t size;
    dc_error_t err = {0};
    assert_int_equal(dc_read_file(fx->archive, 0, false, &bytes, &size, &err), 0);
    fx->m->archive_bytes = size;
    dc_sha256_hex(bytes, size, fx->m->archive_sha256);
    free(bytes);
}

/* Reads the whole archive front to back as restore does; 0 when every check passed. */
static int read_whole(fixture_t *fx, dc_error_t *err)
{
    dc_snapshot_reader_t *r;
    char buf[256];
    if (dc_snapshot_reader_open(fx->store, fx->db_dir, fx->m, &r, err) != 0)
        return -1;
    int rc;
    for (;;) {
        dc_member_t info;
        bool end = false;
        size_t got = 1;
        rc = dc_snapshot_reader_next(r, &info, &end, err);
        if (rc != 0 || end)
            break;
        while (rc == 0 && got > 0)
            rc = dc_snapshot_reader_read(r, buf, sizeof(buf), &got, err);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = dc_snapshot_reader_finish(r, err);
    dc_snapshot_reader_close(r);
    return rc;
}

/* The index, then each member on its own, as a parallel restore does; 0 when all passed. */
static int read_indexed(fixture_t *fx, dc_error_t *err)
{
    dc_snapshot_index_t *ix;
    const char *names[] = {DC_MEMBER_PRE_DATA, fx->m->tables[0].chunks[0].member,
                           DC_MEMBER_POST_DATA};
    if (dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        dc_snapshot_reader_t *r;
        dc_member_t info;
        char buf[256];
        size_t got = 1;
        rc = dc_snapshot_reader_open_member(ix, names[i], &r, &info, err);
        if (rc != 0)
            break;
        while (rc == 0 && got > 0)
            rc = dc_snapshot_reader_read(r, buf, sizeof(buf), &got, err);
        dc_snapshot_reader_close(r);
    }
    dc_snapshot_index_free(ix);
    return rc;
}

/* Both readers refuse the archive, each with a message holding `want`. */
static void check_refused(fixture_t *fx, const char *what, const char *want)
{
    dc_error_t err = {0};
    if (read_whole(fx, &err) == 0)
        fail_msg("%s: the front-to-back reader accepted it", what);
    if (strstr(err.message, want) == NULL)
        fail_msg("%s: front-to-back: expected '%s' in: %s", what, want, err.message);
    dc_error_clear(&err);
    if (read_indexed(fx, &err) == 0)
        fail_msg("%s: the indexed reader accepted it", what);
    if (strstr(err.message, want) == NULL)
        fail_msg("%s: indexed: expected '%s' in: %s", what, want, err.message);
}

#define ARCHIVE(fx, ...)                                                                           \
    do {                                                                                           \
        entry_t entries_[] = {__VA_ARGS__};                                                        \
        write_archive(fx, entries_, sizeof(entries_) / sizeof(entries_[0]));                       \
    } while (0)

#define E_PRE                                                                                      \
    {                                                                                              \
        .name = DC_MEMBER_PRE_DATA, .data = PRE                                                    \
    }
#define E_CHUNK                                                                                    \
    {                                                                                              \
        .name = "data/1.1.copy.zst", .data = CHUNK                                                 \
    }
#define E_POST                                                                                     \
    {                                                                                              \
        .name = DC_MEMBER_POST_DATA, .data = POST                                                  \
    }

static void test_honest_archive_accepted(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    ARCHIVE(fx, E_PRE, E_CHUNK, E_POST);
    if (read_whole(fx, &err) != 0 || read_indexed(fx, &err) != 0)
        fail_msg("the honest archive was refused: %s", err.message);
}

static void test_dot_dot_and_absolute_names_refused(void **state)
{
    fixture_t *fx = *state;
    const char *names[] = {
        "../data/1.1.copy.zst",    "data/../data/1.1.copy.zst", "/etc/passwd",
        "/data/1.1.copy.zst",      "./data/1.1.copy.zst",       "data//1.1.copy.zst",
        "../../../../etc/cron.d/x"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ARCHIVE(fx, E_PRE, {.name = names[i], .data = CHUNK}, E_POST);
        check_refused(fx, names[i], "unexpected member");
    }
    /* An extra hostile member after a complete, valid set. */
    ARCHIVE(fx, E_PRE, E_CHUNK, {.name = "../../x", .data = "owned"}, E_POST);
    check_refused(fx, "an extra ../../x", "unexpected member '../../x'");
}

static void test_links_and_directories_refused(void **state)
{
    fixture_t *fx = *state;
    ARCHIVE(fx, E_PRE, {.name = "data/1.1.copy.zst", .link = "/etc/shadow"}, E_POST);
    check_refused(fx, "symlink member", "is not a regular file");
    ARCHIVE(fx, E_PRE, {.name = "data/1.1.copy.zst", .link = DC_MEMBER_PRE_DATA, .hard = true},
            E_POST);
    check_refused(fx, "hard link member", "is not a regular file");
    ARCHIVE(fx, E_PRE, {.name = "data/1.1.copy.zst", .dir = true}, E_POST);
    /* libarchive names a directory "data/1.1.copy.zst/": not a name the manifest has. */
    check_refused(fx, "directory member", "unexpected member 'data/1.1.copy.zst/'");
}

static void test_duplicate_member_refused(void **state)
{
    fixture_t *fx = *state;
    ARCHIVE(fx, E_PRE, E_CHUNK, E_CHUNK, E_POST);
    check_refused(fx, "a chunk twice", "appears twice");
    ARCHIVE(fx, E_PRE, E_PRE, E_CHUNK, E_POST);
    check_refused(fx, "pre-data twice", "appears twice");
}

static void test_member_of_the_wrong_size_refused(void **state)
{
    fixture_t *fx = *state;
    /* Bigger than the manifest says (an attacker's payload appended). */
    ARCHIVE(fx, E_PRE, {.name = "data/1.1.copy.zst", .data = CHUNK "-and-a-payload"}, E_POST);
    check_refused(fx, "oversized member", "has the wrong size in the archive");
    ARCHIVE(fx, E_PRE, {.name = "data/1.1.copy.zst", .data = "short"}, E_POST);
    check_refused(fx, "undersized member", "has the wrong size in the archive");
}

static void test_manifest_that_lies_about_sizes_refused(void **state)
{
    fixture_t *fx = *state;
    ARCHIVE(fx, E_PRE, E_CHUNK, E_POST);
    fx->m->tables[0].chunks[0].stored_bytes += 4096;
    check_refused(fx, "chunk size in the manifest", "has the wrong size in the archive");
    fx->m->tables[0].chunks[0].stored_bytes -= 4096;
    fx->m->schema[1].bytes = 1;
    check_refused(fx, "schema size in the manifest", "has the wrong size in the archive");
    fx->m->schema[1].bytes = strlen(POST);
    fx->m->archive_bytes += 512;
    check_refused(fx, "archive size in the manifest", "snapshot.tar");
    fx->m->archive_bytes -= 1024;
    check_refused(fx, "archive size in the manifest", "snapshot.tar");
}

static void test_header_announcing_missing_bytes_refused(void **state)
{
    fixture_t *fx = *state;
    /* The archive ends inside the chunk whose header announced its full size. */
    ARCHIVE(fx, E_PRE, E_CHUNK, E_POST);
    assert_int_equal(truncate(fx->archive, 512 * 3 + 20), 0);
    fx->m->archive_bytes = 512 * 3 + 20; /* a forger would fix the manifest too */
    dc_error_t err = {0};
    assert_int_not_equal(read_whole(fx, &err), 0);
    if (strstr(err.message, "truncated") == NULL)
        fail_msg("front-to-back: expected 'truncated' in: %s", err.message);
    dc_error_clear(&err);
    assert_int_not_equal(read_indexed(fx, &err), 0);
    if (strstr(err.message, "truncated") == NULL)
        fail_msg("indexed: expected 'truncated' in: %s", err.message);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_honest_archive_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_dot_and_absolute_names_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_and_directories_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_member_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_of_the_wrong_size_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_that_lies_about_sizes_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_announcing_missing_bytes_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
