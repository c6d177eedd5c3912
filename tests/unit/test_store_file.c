/* Proves the file:// store: keys appear whole on commit and never before, aborts and dead
 * writers leave nothing, unsafe keys are refused, leases hold while held, listing skips .tmp. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/store.h"
#include "deployctl/util.h"
#include "unit_tmpdir.h"

typedef struct fixture {
    char dir[64]; /* the mkdtemp directory */
    char *root;   /* <dir>/store */
    char *url;    /* file://<dir>/store */
    dc_store_t *store;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    dc_error_t err = {0};
    if (fx == NULL)
        return -1;
    if (unit_tmpdir_new(fx->dir, sizeof(fx->dir), "store") != 0) {
        free(fx);
        return -1;
    }
    fx->root = dc_sprintf("%s/store", fx->dir);
    fx->url = dc_sprintf("file://%s", fx->root);
    /* Opening creates nothing; checking writability creates the store and its .tmp. */
    if (dc_store_open(fx->url, &fx->store, &err) != 0 ||
        dc_store_check_writable(fx->store, &err) != 0) {
        print_error("opening %s: %s\n", fx->url, err.message);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    dc_store_close(fx->store);
    int rc = unit_tmpdir_remove(fx->dir);
    free(fx->root);
    free(fx->url);
    free(fx);
    return rc;
}

/* ---- helpers ---- */

static bool path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool key_exists(fixture_t *fx, const char *key)
{
    bool exists = true;
    dc_error_t err = {0};
    if (dc_store_exists(fx->store, key, &exists, &err) != 0)
        fail_msg("dc_store_exists(%s): %s", key, err.message);
    return exists;
}

static void put(fixture_t *fx, const char *key, const void *data, size_t len)
{
    dc_store_writer_t *w = NULL;
    dc_error_t err = {0};
    if (dc_store_writer_open(fx->store, key, &w, &err) != 0)
        fail_msg("writer_open(%s): %s", key, err.message);
    if (dc_store_writer_write(w, data, len, &err) != 0)
        fail_msg("writer_write(%s): %s", key, err.message);
    if (dc_store_writer_commit(w, &err) != 0)
        fail_msg("writer_commit(%s): %s", key, err.message);
}

static void put_string(fixture_t *fx, const char *key, const char *text)
{
    put(fx, key, text, strlen(text));
}

/* Entries in a directory other than "." and "..". */
static int count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static int count_tmp_entries(fixture_t *fx)
{
    char *tmp = dc_sprintf("%s/.tmp", fx->root);
    int n = count_dir_entries(tmp);
    free(tmp);
    return n;
}

typedef struct listing {
    char *keys[32];
    uint64_t sizes[32];
    size_t count;
} listing_t;

static int collect(void *ctx, const dc_store_entry_t *entry, dc_error_t *err)
{
    (void)err;
    listing_t *l = ctx;
    assert_true(l->count < 32);
    l->keys[l->count] = dc_strdup(entry->key);
    l->sizes[l->count] = entry->size;
    l->count++;
    return 0;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists prefix and checks the keys (any order) against a NULL-terminated sorted list. */
static void check_listing(fixture_t *fx, const char *prefix, const char *const *expected)
{
    listing_t l = {0};
    dc_error_t err = {0};
    if (dc_store_list(fx->store, prefix, collect, &l, &err) != 0)
        fail_msg("dc_store_list(%s): %s", prefix, err.message);
    qsort(l.keys, l.count, sizeof(l.keys[0]), compare_keys);
    size_t n = 0;
    while (expected[n] != NULL)
        n++;
    for (size_t i = 0; i < l.count; i++) {
        if (strstr(l.keys[i], ".tmp") != NULL || strstr(l.keys[i], ".part") != NULL)
            fail_msg("listing of '%s' shows a temporary object: %s", prefix, l.keys[i]);
        if (i >= n || strcmp(l.keys[i], expected[i]) != 0)
            fail_msg("listing of '%s': got '%s' at %zu, expected '%s'", prefix, l.keys[i], i,
                     i < n ? expected[i] : "(end)");
    }
    assert_int_equal(l.count, n);
    for (size_t i = 0; i < l.count; i++)
        free(l.keys[i]);
}

static char *read_key(fixture_t *fx, const char *key, size_t *len)
{
    char *data = NULL;
    dc_error_t err = {0};
    if (dc_store_read_all(fx->store, key, 64 * 1024 * 1024, &data, len, &err) != 0)
        fail_msg("dc_store_read_all(%s): %s", key, err.message);
    return data;
}

static uint8_t *pattern(size_t len)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)((i * 131 + i / 977) & 0xff);
    return p;
}

/* ---- writers ---- */

static void test_commit_makes_key_visible(void **state)
{
    fixture_t *fx = *state;
    const char *key = "app/20261125T013259Z-0f9a/snapshot.tar";
    const size_t len = 3 * 1024 * 1024 + 17; /* several times the writer's buffer */
    uint8_t *data = pattern(len);
    char *final_path = dc_sprintf("%s/%s", fx->root, key);
    dc_error_t err = {0};

    dc_store_writer_t *w = NULL;
    assert_int_equal(dc_store_writer_open(fx->store, key, &w, &err), 0);
    for (size_t pos = 0; pos < len;) {
        size_t n = len - pos < 100003 ? len - pos : 100003;
        assert_int_equal(dc_store_writer_write(w, data + pos, n, &err), 0);
        pos += n;
    }

    /* Not there before the commit, whatever way one looks. */
    assert_false(key_exists(fx, key));
    const char *none[] = {NULL};
    check_listing(fx, "", none);
    assert_false(path_exists(final_path));
    dc_store_reader_t *r = NULL;
    assert_int_equal(dc_store_reader_open(fx->store, key, &r, &err), -1);
    assert_true(err.message[0] != '\0');

    assert_int_equal(dc_store_writer_commit(w, &err), 0);
    assert_true(key_exists(fx, key));
    assert_int_equal(count_tmp_entries(fx), 0);

    size_t got_len = 0;
    char *got = read_key(fx, key, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);

    /* And with plain stdio. */
    FILE *f = fopen(final_path, "rb");
    assert_non_null(f);
    uint8_t *plain = malloc(len + 1);
    assert_non_null(plain);
    assert_int_equal(fread(plain, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(plain, data, len);
    free(plain);

    const char *one[] = {key, NULL};
    check_listing(fx, "", one);

    free(final_path);
    free(data);
}

static void test_overwrite_and_empty_object(void **state)
{
    fixture_t *fx = *state;
    put_string(fx, "k", "first version");
    put_string(fx, "k", "second");
    size_t len = 0;
    char *got = read_key(fx, "k", &len);
    assert_int_equal(len, 6);
    assert_memory_equal(got, "second", 6);
    free(got);

    put(fx, "empty", "", 0);
    assert_true(key_exists(fx, "empty"));
    got = read_key(fx, "empty", &len);
    assert_int_equal(len, 0);
    assert_non_null(got);
    free(got);
}

static void test_reader_streams(void **state)
{
    fixture_t *fx = *state;
    const size_t len = 200001;
    uint8_t *data = pattern(len);
    put(fx, "r/data.bin", data, len);
    dc_store_reader_t *r = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_store_reader_open(fx->store, "r/data.bin", &r, &err), 0);
    uint8_t buf[4099];
    size_t total = 0, got = 0;
    do {
        assert_int_equal(dc_store_reader_read(r, buf, sizeof(buf), &got, &err), 0);
        assert_true(total + got <= len);
        assert_memory_equal(buf, data + total, got);
        total += got;
    } while (got > 0);
    assert_int_equal(total, len);
    dc_store_reader_close(r);

    assert_int_equal(dc_store_reader_open(fx->store, "r/missing.bin", &r, &err), -1);
    assert_non_null(strstr(err.message, "r/missing.bin"));
    free(data);
}

static void test_abort_leaves_nothing(void **state)
{
    fixture_t *fx = *state;
    dc_store_writer_t *w = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_store_writer_open(fx->store, "db/x/snapshot.tar", &w, &err), 0);
    uint8_t *data = pattern(2 * 1024 * 1024);
    assert_int_equal(dc_store_writer_write(w, data, 2 * 1024 * 1024, &err), 0);
    assert_int_equal(count_tmp_entries(fx), 1); /* it does go somewhere meanwhile */
    dc_store_writer_abort(w);

    assert_false(key_exists(fx, "db/x/snapshot.tar"));
    assert_int_equal(count_tmp_entries(fx), 0);
    char *db_dir = dc_sprintf("%s/db", fx->root);
    assert_false(path_exists(db_dir));
    free(db_dir);
    const char *none[] = {NULL};
    check_listing(fx, "", none);
    free(data);
}

static void test_failed_commit_cleans_up(void **state)
{
    fixture_t *fx = *state;
    put_string(fx, "file", "a key that is a file");
    /* "file/child" needs "file" to be a directory: the commit must fail and leave no .part. */
    dc_store_writer_t *w = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_store_writer_open(fx->store, "file/child", &w, &err), 0);
    assert_int_equal(dc_store_writer_write(w, "x", 1, &err), 0);
    assert_int_equal(dc_store_writer_commit(w, &err), -1);
    assert_true(err.message[0] != '\0');
    assert_int_equal(count_tmp_entries(fx), 0);
    assert_false(key_exists(fx, "file/child"));
    size_t len = 0;
    char *got = read_key(fx, "file", &len);
    assert_int_equal(len, strlen("a key that is a file"));
    free(got);
}

/* ---- listing and deleting ---- */

static void test_list_recursive_without_tmp(void **state)
{
    fixture_t *fx = *state;
    put_string(fx, "a/b/c.txt", "abc");
    put_string(fx, "a/d.txt", "dd");
    put_string(fx, "e.txt", "eeeee");
    put_string(fx, "a%2Fb/x_y-z.json", "{}");

    /* An open writer and a stray temporary file must not show. */
    dc_store_writer_t *w = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_store_writer_open(fx->store, "a/pending.txt", &w, &err), 0);
    assert_int_equal(dc_store_writer_write(w, "pending", 7, &err), 0);
    char *stray = dc_sprintf("%s/.tmp/a_old.txt.0123456789ab.part", fx->root);
    FILE *f = fopen(stray, "w");
    assert_non_null(f);
    fclose(f);

    const char *all[] = {"a%2Fb/x_y-z.json", "a/b/c.txt", "a/d.txt", "e.txt", NULL};
    check_listing(fx, "", all);
    const char *under_a[] = {"a/b/c.txt", "a/d.txt", NULL};
    check_listing(fx, "a", under_a);
    const char *under_ab[] = {"a/b/c.txt", NULL};
    check_listing(fx, "a/b", under_ab);
    const char *none[] = {NULL};
    check_listing(fx, "nothing-here", none);

    /* Sizes are reported. */
    listing_t l = {0};
    assert_int_equal(dc_store_list(fx->store, "a/b", collect, &l, &err), 0);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.sizes[0], 3);
    free(l.keys[0]);

    /* A prefix written with a trailing slash names the same keys. */
    listing_t slash = {0};
    assert_int_equal(dc_store_list(fx->store, "a/", collect, &slash, &err), 0);
    assert_int_equal(slash.count, 2);
    for (size_t i = 0; i < slash.count; i++) {
        assert_null(strstr(slash.keys[i], "//"));
        free(slash.keys[i]);
    }

    dc_store_writer_abort(w);
    free(stray);
}

static void test_delete_removes_empty_dirs(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    put_string(fx, "a/b/c.txt", "abc");
    put_string(fx, "a/d.txt", "dd");
    put_string(fx, "e.txt", "eeeee");
    put_string(fx, "db/20261125T013259Z-0f9a/snapshot.tar", "tar");
    put_string(fx, "db/20261125T013259Z-0f9a/manifest.json", "{}");
    put_string(fx, "db/20261125T013300Z-1234/manifest.json", "{}");

    char *dir_ab = dc_sprintf("%s/a/b", fx->root);
    char *dir_a = dc_sprintf("%s/a", fx->root);
    assert_int_equal(dc_store_delete(fx->store, "a/b/c.txt", &err), 0);
    assert_false(key_exists(fx, "a/b/c.txt"));
    assert_false(path_exists(dir_ab)); /* left empty: removed */
    assert_true(path_exists(dir_a));   /* still holds d.txt */
    assert_true(key_exists(fx, "a/d.txt"));

    assert_int_equal(dc_store_delete(fx->store, "a/d.txt", &err), 0);
    assert_false(path_exists(dir_a));
    assert_true(path_exists(fx->root)); /* never the root itself */

    assert_int_equal(dc_store_delete_prefix(fx->store, "db/20261125T013259Z-0f9a", &err), 0);
    assert_false(key_exists(fx, "db/20261125T013259Z-0f9a/snapshot.tar"));
    assert_false(key_exists(fx, "db/20261125T013259Z-0f9a/manifest.json"));
    char *snap_dir = dc_sprintf("%s/db/20261125T013259Z-0f9a", fx->root);
    assert_false(path_exists(snap_dir));
    assert_true(key_exists(fx, "db/20261125T013300Z-1234/manifest.json"));

    assert_int_equal(dc_store_delete_prefix(fx->store, "db", &err), 0);
    char *db_dir = dc_sprintf("%s/db", fx->root);
    assert_false(path_exists(db_dir));

    const char *left[] = {"e.txt", NULL};
    check_listing(fx, "", left);
    /* Only e.txt and the driver's .tmp remain at the top. */
    assert_int_equal(count_dir_entries(fx->root), 2);

    /* Deleting under a prefix that holds nothing is not an error. */
    assert_int_equal(dc_store_delete_prefix(fx->store, "nothing", &err), 0);
    free(db_dir);
    free(snap_dir);
    free(dir_ab);
    free(dir_a);
}

/* ---- key safety ---- */

static void test_unsafe_keys_refused(void **state)
{
    fixture_t *fx = *state;
    const char *bad[] = {"../x", "/abs", "a//b", ".tmp/x", "a/./b", "a/../b",
                         "..",   ".",    "",     "a/..",   "./a",   ".tmp"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dc_store_writer_t *w = NULL;
        dc_error_t err = {0};
        if (dc_store_writer_open(fx->store, bad[i], &w, &err) != -1) {
            dc_store_writer_abort(w);
            fail_msg("writer_open accepted unsafe key '%s'", bad[i]);
        }
        assert_true(err.message[0] != '\0');

        dc_error_clear(&err);
        char *data = NULL;
        size_t len = 0;
        assert_int_equal(dc_store_read_all(fx->store, bad[i], 1024, &data, &len, &err), -1);
        assert_true(err.message[0] != '\0');

        dc_error_clear(&err);
        bool exists = false;
        assert_int_equal(dc_store_exists(fx->store, bad[i], &exists, &err), -1);
        assert_true(err.message[0] != '\0');

        dc_error_clear(&err);
        assert_int_equal(dc_store_delete(fx->store, bad[i], &err), -1);
        assert_true(err.message[0] != '\0');
    }
    /* Listing: the empty prefix is the whole store, the others are refused. */
    listing_t l = {0};
    dc_error_t err = {0};
    assert_int_equal(dc_store_list(fx->store, "../x", collect, &l, &err), -1);
    assert_true(err.message[0] != '\0');
    assert_int_equal(dc_store_list(fx->store, ".tmp", collect, &l, &err), -1);
    assert_int_equal(dc_store_delete_prefix(fx->store, "..", &err), -1);
    assert_int_equal(l.count, 0);

    /* Nothing escaped the store. */
    char *outside = dc_sprintf("%s/x", fx->dir);
    assert_false(path_exists(outside));
    free(outside);
    assert_int_equal(count_dir_entries(fx->dir), 1); /* just store/ */
}

static void test_read_all_size_limit(void **state)
{
    fixture_t *fx = *state;
    uint8_t *data = pattern(100000);
    put(fx, "big.json", data, 100000);
    char *out = NULL;
    size_t len = 0;
    dc_error_t err = {0};
    assert_int_equal(dc_store_read_all(fx->store, "big.json", 99999, &out, &len, &err), -1);
    assert_null(out);
    assert_non_null(strstr(err.message, "big.json"));
    assert_int_equal(dc_store_read_all(fx->store, "big.json", 100, &out, &len, &err), -1);
    assert_int_equal(dc_store_read_all(fx->store, "big.json", 100000, &out, &len, &err), 0);
    assert_int_equal(len, 100000);
    assert_memory_equal(out, data, 100000);
    free(out);
    free(data);
}

/* ---- leases ---- */

static void test_leases(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    dc_store_lease_t *lease = NULL, *second = NULL;

    assert_false(dc_store_lease_is_held(fx->store, "db-20261125T013259Z-0f9a"));
    assert_int_equal(dc_store_lease_acquire(fx->store, "db-20261125T013259Z-0f9a", &lease, &err),
                     0);
    assert_true(dc_store_lease_is_held(fx->store, "db-20261125T013259Z-0f9a"));

    /* A second acquire of the same name fails while held; another name is independent. */
    assert_int_equal(dc_store_lease_acquire(fx->store, "db-20261125T013259Z-0f9a", &second, &err),
                     -1);
    assert_true(err.message[0] != '\0');
    assert_false(dc_store_lease_is_held(fx->store, "other"));
    dc_store_lease_t *other = NULL;
    assert_int_equal(dc_store_lease_acquire(fx->store, "other", &other, &err), 0);
    assert_true(dc_store_lease_is_held(fx->store, "other"));

    /* Asking does not take it away. */
    assert_true(dc_store_lease_is_held(fx->store, "db-20261125T013259Z-0f9a"));

    dc_store_lease_release(lease);
    assert_false(dc_store_lease_is_held(fx->store, "db-20261125T013259Z-0f9a"));
    assert_true(dc_store_lease_is_held(fx->store, "other"));

    /* Free again: it can be taken again. */
    assert_int_equal(dc_store_lease_acquire(fx->store, "db-20261125T013259Z-0f9a", &lease, &err),
                     0);
    assert_true(dc_store_lease_is_held(fx->store, "db-20261125T013259Z-0f9a"));
    dc_store_lease_release(lease);
    dc_store_lease_release(other);
    assert_false(dc_store_lease_is_held(fx->store, "other"));

    /* Leases never hold a committed key's place and never list. */
    const char *none[] = {NULL};
    check_listing(fx, "", none);

    /* Unsafe names. */
    const char *bad[] = {"../x", "a/b", "", ".tmp", ".."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dc_error_clear(&err);
        assert_int_equal(dc_store_lease_acquire(fx->store, bad[i], &second, &err), -1);
        assert_true(err.message[0] != '\0');
        assert_false(dc_store_lease_is_held(fx->store, bad[i]));
    }
}

/* ---- cleaning ---- */

static void test_cleanup_temporary(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    int removed = -1;

    /* A .part left by a writer that is gone: no lock on it. */
    char *dead = dc_sprintf("%s/.tmp/db_x_snapshot.tar.a1b2c3d4e5f6.part", fx->root);
    FILE *f = fopen(dead, "w");
    assert_non_null(f);
    fputs("half a snapshot", f);
    fclose(f);
    /* A lease file nobody holds. */
    char *stale = dc_sprintf("%s/.tmp/old.lease", fx->root);
    f = fopen(stale, "w");
    assert_non_null(f);
    fclose(f);

    /* A live writer and a held lease. */
    dc_store_writer_t *w = NULL;
    assert_int_equal(dc_store_writer_open(fx->store, "live/key", &w, &err), 0);
    assert_int_equal(dc_store_writer_write(w, "hello", 5, &err), 0);
    dc_store_lease_t *lease = NULL;
    assert_int_equal(dc_store_lease_acquire(fx->store, "busy", &lease, &err), 0);
    put_string(fx, "committed/key", "stays");

    assert_int_equal(dc_store_cleanup_temporary(fx->store, &removed, &err), 0);
    assert_int_equal(removed, 2);
    assert_false(path_exists(dead));
    assert_false(path_exists(stale));
    assert_int_equal(count_tmp_entries(fx), 2); /* the live writer's .part and busy.lease */
    assert_true(dc_store_lease_is_held(fx->store, "busy"));
    assert_true(key_exists(fx, "committed/key"));

    /* The live writer carries on and commits. */
    assert_int_equal(dc_store_writer_write(w, " world", 6, &err), 0);
    if (dc_store_writer_commit(w, &err) != 0)
        fail_msg("commit after cleanup: %s", err.message);
    size_t len = 0;
    char *got = read_key(fx, "live/key", &len);
    assert_int_equal(len, 11);
    assert_memory_equal(got, "hello world", 11);
    free(got);

    /* Nothing more to clean. */
    assert_int_equal(dc_store_cleanup_temporary(fx->store, &removed, &err), 0);
    assert_int_equal(removed, 0);
    dc_store_lease_release(lease);
    free(dead);
    free(stale);
}

/* ---- opening ---- */

static void test_open_errors(void **state)
{
    fixture_t *fx = *state;
    dc_store_t *s = NULL;
    dc_error_t err = {0};

    /* A path under a regular file. */
    char *file = dc_sprintf("%s/regular", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    /* Opening changes nothing (a read-only store must stay listable); the first write, or
     * dc_store_check_writable, says what is wrong. */
    char *url = dc_sprintf("file://%s/store", file);
    assert_int_equal(dc_store_open(url, &s, &err), 0);
    assert_int_equal(dc_store_check_writable(s, &err), -1);
    assert_non_null(strstr(err.message, "regular"));
    assert_non_null(strstr(err.message, "directory"));
    dc_store_close(s);

    /* The path is the regular file itself. */
    char *url2 = dc_sprintf("file://%s", file);
    dc_error_clear(&err);
    assert_int_equal(dc_store_open(url2, &s, &err), 0);
    assert_int_equal(dc_store_check_writable(s, &err), -1);
    assert_non_null(strstr(err.message, "regular"));
    dc_store_close(s);

    /* Opening a store that does not exist creates nothing, and it lists empty. */
    char *absent = dc_sprintf("%s/absent-store", fx->dir);
    dc_error_clear(&err);
    assert_int_equal(dc_store_open(absent, &s, &err), 0);
    listing_t none = {0};
    assert_int_equal(dc_store_list(s, "", collect, &none, &err), 0);
    assert_int_equal(none.count, 0);
    assert_int_equal(access(absent, F_OK), -1);
    dc_store_close(s);
    free(absent);

    dc_error_clear(&err);
    assert_int_equal(dc_store_open("s3://bucket/prefix", &s, &err), -1);
    assert_non_null(strstr(err.message, "s3://"));

    dc_error_clear(&err);
    assert_int_equal(dc_store_open("ftp://host/dir", &s, &err), -1);
    assert_non_null(strstr(err.message, "ftp://host/dir"));
    assert_non_null(strstr(err.message, "file://"));

    dc_error_clear(&err);
    assert_int_equal(dc_store_open("file://relative/dir", &s, &err), -1);
    assert_true(err.message[0] != '\0');

    dc_error_clear(&err);
    assert_int_equal(dc_store_open("", &s, &err), -1);
    assert_true(err.message[0] != '\0');

    /* A plain absolute path works, and the URL is kept as given. */
    char *plain = dc_sprintf("%s/plain-store", fx->dir);
    assert_int_equal(dc_store_open(plain, &s, &err), 0);
    assert_string_equal(dc_store_url(s), plain);
    dc_store_close(s);
    assert_string_equal(dc_store_url(fx->store), fx->url);

    /* Two handles on one directory see the same keys. */
    put_string(fx, "shared", "yes");
    char *with_slash = dc_sprintf("file://%s/", fx->root);
    assert_int_equal(dc_store_open(with_slash, &s, &err), 0);
    bool exists = false;
    assert_int_equal(dc_store_exists(s, "shared", &exists, &err), 0);
    assert_true(exists);
    dc_store_close(s);

    free(with_slash);
    free(plain);
    free(url2);
    free(url);
    free(file);
}

/* Free space is measured at the store, or where it will be created, and never creates it. */
static void test_free_space(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    bool known = false;
    uint64_t available = 0, total = 0;
    char where[4096];
    assert_int_equal(
        dc_store_free_space(fx->store, &known, &available, &total, where, sizeof(where), &err), 0);
    assert_true(known);
    assert_true(total > 0 && available <= total);
    assert_string_equal(where, fx->root);

    char *url = dc_sprintf("file://%s/not/yet/there", fx->dir);
    dc_store_t *later = NULL;
    assert_int_equal(dc_store_open(url, &later, &err), 0);
    assert_int_equal(
        dc_store_free_space(later, &known, &available, &total, where, sizeof(where), &err), 0);
    assert_true(known);
    assert_string_equal(where, fx->dir);
    char *missing = dc_sprintf("%s/not", fx->dir);
    assert_false(path_exists(missing));
    free(missing);
    dc_store_close(later);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_makes_key_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_and_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_cleans_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_recursive_without_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_removes_empty_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_keys_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_all_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_space, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
