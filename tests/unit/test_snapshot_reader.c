/* Proves the snapshot reader's random access: the index finds every member of a real archive
 * (written by the snapshot writer into a file:// store), each member reads back on its own in
 * any order, and a flipped byte, a truncated or lengthened archive, or a member the manifest
 * does not name is refused. The front-to-back reader is checked on the same archives. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
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

#define CHUNKS 5

typedef struct fixture {
    char dir[64];
    char *url;
    dc_store_t *store;
    dc_manifest_t *m;
    char db_dir[256];
    char *archive_path;
    char *contents[CHUNKS + 2]; /* pre-data, chunks, post-data */
    const char *names[CHUNKS + 2];
} fixture_t;

/* Member bytes of different sizes (some over a 512-byte tar block, one empty). */
static char *member_bytes(int i)
{
    size_t len = i == 3 ? 0 : (size_t)(100 + i * 700);
    char *b = dc_malloc(len + 1);
    for (size_t k = 0; k < len; k++)
        b[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
    b[len] = '\0';
    return b;
}

static void add_member(fixture_t *fx, dc_snapshot_writer_t *w, int i, const char *name)
{
    dc_error_t err = {0};
    dc_stored_t stored;
    fx->contents[i] = member_bytes(i);
    fx->names[i] = name;
    assert_int_equal(
        dc_snapshot_writer_add(w, name, fx->contents[i], strlen(fx->contents[i]), &stored, &err),
        0);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    dc_error_t err = {0};
    if (unit_tmpdir_new(fx->dir, sizeof(fx->dir), "reader") != 0)
        return -1;
    fx->url = dc_sprintf("file://%s/store", fx->dir);
    if (dc_store_open(fx->url, &fx->store, &err) != 0 ||
        dc_store_check_writable(fx->store, &err) != 0)
        return -1;
    dc_manifest_t *m = dc_manifest_new();
    m->database = dc_strdup("app");
    dc_snapshot_database_dir("app", fx->db_dir, sizeof(fx->db_dir));
    dc_snapshot_writer_t *w;
    if (dc_snapshot_writer_open(fx->store, "app", time(NULL), NULL, m->id, &w, &err) != 0)
        return -1;
    dc_manifest_table_t *t = dc_manifest_add_table(m, "public", "orders");
    add_member(fx, w, 0, DC_MEMBER_PRE_DATA);
    for (int c = 0; c < CHUNKS; c++) {
        dc_manifest_chunk_t k = {0};
        dc_snapshot_chunk_member(1, (unsigned)c + 1, k.member);
        add_member(fx, w, c + 1, k.member);
        k.stored_bytes = strlen(fx->contents[c + 1]);
        dc_sha256_hex(fx->contents[c + 1], k.stored_bytes, k.sha256);
        dc_sha256_hex("", 0, k.raw_sha256);
        dc_manifest_table_add_chunk(t, &k);
    }
    add_member(fx, w, CHUNKS + 1, DC_MEMBER_POST_DATA);
    for (int s = 0; s < 2; s++) {
        int i = s == 0 ? 0 : CHUNKS + 1;
        dc_manifest_schema_t *sc = &m->schema[m->schema_count++];
        snprintf(sc->section, sizeof(sc->section), "%s", s == 0 ? "pre-data" : "post-data");
        snprintf(sc->member, sizeof(sc->member), "%s", fx->names[i]);
        sc->bytes = strlen(fx->contents[i]);
        dc_sha256_hex(fx->contents[i], sc->bytes, sc->sha256);
    }
    /* names[] point into the manifest from here on (the chunk names were stack copies) */
    for (int c = 0; c < CHUNKS; c++)
        fx->names[c + 1] = t->chunks[c].member;
    if (dc_snapshot_writer_commit(w, m, &err) != 0) {
        print_error("commit: %s\n", err.message);
        return -1;
    }
    fx->m = m;
    fx->archive_path = dc_sprintf("%s/store/%s/%s/snapshot.tar", fx->dir, fx->db_dir, m->id);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    dc_store_close(fx->store);
    dc_manifest_free(fx->m);
    for (int i = 0; i < CHUNKS + 2; i++)
        free(fx->contents[i]);
    unit_tmpdir_remove(fx->dir);
    free(fx->archive_path);
    free(fx->url);
    free(fx);
    return 0;
}

/* Reads a whole member through a reader; -1 with err set when the reader refuses it. */
static int read_all(dc_snapshot_reader_t *r, dc_buf_t *out, dc_error_t *err)
{
    char piece[333];
    for (;;) {
        size_t got = 0;
        if (dc_snapshot_reader_read(r, piece, sizeof(piece), &got, err) != 0)
            return -1;
        if (got == 0)
            return 0;
        dc_buf_append(out, piece, got);
    }
}

/* Opens one member through the index and reads it whole. */
static int read_member(fixture_t *fx, const dc_snapshot_index_t *ix, int i, dc_error_t *err)
{
    dc_snapshot_reader_t *r;
    dc_member_t info;
    if (dc_snapshot_reader_open_member(ix, fx->names[i], &r, &info, err) != 0)
        return -1;
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    int rc = read_all(r, &b, err);
    dc_snapshot_reader_close(r);
    if (rc == 0) {
        assert_string_equal(info.name, fx->names[i]);
        assert_int_equal(b.len, strlen(fx->contents[i]));
        assert_memory_equal(b.data, fx->contents[i], b.len);
    }
    dc_buf_free(&b);
    return rc;
}

static void test_every_member_in_any_order(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    dc_snapshot_index_t *ix;
    assert_true(dc_store_can_read_ranges(fx->store));
    assert_int_equal(dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, &err), 0);
    for (int i = CHUNKS + 1; i >= 0; i--)
        assert_int_equal(read_member(fx, ix, i, &err), 0);
    assert_int_equal(read_member(fx, ix, 2, &err), 0); /* and again */
    dc_snapshot_reader_t *r;
    dc_member_t info;
    assert_int_equal(dc_snapshot_reader_open_member(ix, "data/9.9.copy.zst", &r, &info, &err), -1);
    assert_non_null(strstr(err.message, "no member"));
    dc_snapshot_index_free(ix);
}

/* Overwrites bytes of the archive file at an offset (negative: from the end). */
static void poke(const char *path, long offset, const char *bytes, size_t len)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t at = offset >= 0 ? offset : lseek(fd, 0, SEEK_END) + offset;
    assert_int_equal(pwrite(fd, bytes, len, at), (ssize_t)len);
    close(fd);
}

static dc_buf_t slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    dc_buf_t b = {0};
    char piece[4096];
    size_t n;
    while ((n = fread(piece, 1, sizeof(piece), f)) > 0)
        dc_buf_append(&b, piece, n);
    fclose(f);
    return b;
}

/* Where bytes first appear in the archive file, or -1. */
static long offset_of(const char *path, const char *needle)
{
    dc_buf_t b = slurp(path);
    char *hit = memmem(b.data, b.len, needle, strlen(needle));
    long at = hit ? hit - b.data : -1;
    dc_buf_free(&b);
    return at;
}

static long find_in_file(const char *path, const char *needle)
{
    long at = offset_of(path, needle);
    assert_true(at >= 0);
    return at;
}

static void test_flipped_byte_refused_when_read(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    long at = find_in_file(fx->archive_path, fx->contents[4]);
    poke(fx->archive_path, at + 10, "#", 1);
    dc_snapshot_index_t *ix;
    /* Headers are intact: the index is built; the member itself fails its hash. */
    assert_int_equal(dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, &err), 0);
    assert_int_equal(read_member(fx, ix, 2, &err), 0);
    assert_int_equal(read_member(fx, ix, 4, &err), -1);
    assert_non_null(strstr(err.message, "is corrupt"));
    dc_snapshot_index_free(ix);
}

static void test_truncated_archive_refused(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    struct stat st;
    assert_int_equal(stat(fx->archive_path, &st), 0);
    assert_int_equal(truncate(fx->archive_path, find_in_file(fx->archive_path, fx->contents[5])),
                     0);
    dc_snapshot_index_t *ix = NULL;
    assert_int_equal(dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, &err), -1);
    assert_null(ix);
    assert_true(strstr(err.message, "truncated") != NULL || strstr(err.message, "missing") != NULL);
}

static void test_longer_archive_refused(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    int fd = open(fx->archive_path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    dc_snapshot_index_t *ix = NULL;
    assert_int_equal(dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, &err), -1);
    assert_non_null(strstr(err.message, "longer than"));
}

static void test_unexpected_member_refused(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    /* Renames data/1.3 to data/1.7 in its tar header (and pax header, if any). */
    char to[DC_MEMBER_MAX];
    snprintf(to, sizeof(to), "%s", fx->names[3]);
    to[strlen(to) - strlen(".copy.zst") - 1] = '7';
    long at;
    while ((at = offset_of(fx->archive_path, fx->names[3])) >= 0)
        poke(fx->archive_path, at, to, strlen(to));
    dc_snapshot_index_t *ix = NULL;
    assert_int_equal(dc_snapshot_index_build(fx->store, fx->db_dir, fx->m, &ix, &err), -1);
    assert_true(strstr(err.message, "unexpected member") != NULL ||
                strstr(err.message, "damaged") != NULL);
}

static void test_whole_reader_still_checks_everything(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    dc_snapshot_reader_t *r;
    assert_int_equal(dc_snapshot_reader_open(fx->store, fx->db_dir, fx->m, &r, &err), 0);
    int seen = 0;
    for (;;) {
        dc_member_t member;
        bool end = false;
        assert_int_equal(dc_snapshot_reader_next(r, &member, &end, &err), 0);
        if (end)
            break;
        assert_string_equal(member.name, fx->names[seen]);
        dc_buf_t b = {0};
        assert_int_equal(read_all(r, &b, &err), 0);
        dc_buf_free(&b);
        seen++;
    }
    assert_int_equal(seen, CHUNKS + 2);
    assert_int_equal(dc_snapshot_reader_finish(r, &err), 0);
    dc_snapshot_reader_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_member_in_any_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_refused_when_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_archive_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_longer_archive_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unexpected_member_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_reader_still_checks_everything, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
