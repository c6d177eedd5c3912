/* Store front end: picks the driver from the URL scheme, checks every key before a driver
 * sees it, and offers the conveniences (read a whole object, delete a prefix) once for all. */
#include <stdlib.h>
#include <string.h>

#include "deployctl/util.h"
#include "store_intern.h"

/* Keys are relative, '/'-separated, made of safe characters, with no empty or dot components:
 * nothing read from a manifest or typed by a user can escape the store. */
static bool key_is_safe(const char *key, bool allow_empty)
{
    if (*key == '\0')
        return allow_empty;
    if (*key == '/')
        return false;
    const char *component = key;
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - component);
            if (n == 0)
                return false; /* "a//b", "a/" */
            if ((n == 1 && component[0] == '.') || (n == 2 && strncmp(component, "..", 2) == 0))
                return false;
            if (n > 0 && component[0] == '.')
                return false; /* dot files belong to drivers (.tmp) */
            if (*p == '\0')
                return true;
            component = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '%' || c == '+' || c == '='))
            return false;
    }
}

static int check_key(const char *key, bool allow_empty, dc_error_t *err)
{
    if (!key_is_safe(key, allow_empty))
        return dc_error_set(err, "refusing unsafe store key '%s'", key);
    return 0;
}

int dc_store_open(const char *url, dc_store_t **out, dc_error_t *err)
{
    if (url == NULL || *url == '\0')
        return dc_error_set(err, "no store given: use --store URL or DEPLOYCTL_STORE");
    if (dc_str_starts_with(url, "file://") || url[0] == '/' || url[0] == '.')
        return dc_store_file_open(url, out, err);
    if (dc_str_starts_with(url, "s3://"))
        return dc_store_s3_open(url, out, err);
    return dc_error_set(err,
                        "unsupported store URL '%s': use file:///absolute/dir "
                        "(or s3://bucket/prefix)",
                        url);
}

int dc_store_check_writable(dc_store_t *store, dc_error_t *err)
{
    return store->ops->check_writable(store, err);
}

int dc_store_free_space(dc_store_t *store, bool *known, uint64_t *available, uint64_t *total,
                        char *where, size_t where_size, dc_error_t *err)
{
    *known = store->ops->free_space != NULL;
    if (!*known)
        return 0;
    return store->ops->free_space(store, available, total, where, where_size, err);
}

void dc_store_close(dc_store_t *store)
{
    if (store != NULL)
        store->ops->close(store);
}

const char *dc_store_url(const dc_store_t *store)
{
    return store->url;
}

void dc_store_expect_size(dc_store_t *store, uint64_t bytes)
{
    if (store->ops->expect_size != NULL)
        store->ops->expect_size(store, bytes);
}

int dc_store_writer_open(dc_store_t *store, const char *key, dc_store_writer_t **out,
                         dc_error_t *err)
{
    if (check_key(key, false, err) != 0)
        return -1;
    return store->ops->writer_open(store, key, out, err);
}

int dc_store_writer_write(dc_store_writer_t *w, const void *data, size_t len, dc_error_t *err)
{
    return w->store->ops->writer_write(w, data, len, err);
}

int dc_store_writer_commit(dc_store_writer_t *w, dc_error_t *err)
{
    return w->store->ops->writer_commit(w, err);
}

void dc_store_writer_abort(dc_store_writer_t *w)
{
    if (w != NULL)
        w->store->ops->writer_abort(w);
}

int dc_store_reader_open(dc_store_t *store, const char *key, dc_store_reader_t **out,
                         dc_error_t *err)
{
    if (check_key(key, false, err) != 0)
        return -1;
    return store->ops->reader_open(store, key, out, err);
}

bool dc_store_can_read_ranges(const dc_store_t *store)
{
    return store->ops->reader_open_range != NULL;
}

int dc_store_reader_open_range(dc_store_t *store, const char *key, uint64_t offset, uint64_t length,
                               dc_store_reader_t **out, dc_error_t *err)
{
    if (check_key(key, false, err) != 0)
        return -1;
    if (store->ops->reader_open_range == NULL)
        return dc_error_set(err, "store %s cannot read part of an object", store->url);
    return store->ops->reader_open_range(store, key, offset, length, out, err);
}

int dc_store_reader_read(dc_store_reader_t *r, void *buf, size_t len, size_t *got, dc_error_t *err)
{
    return r->store->ops->reader_read(r, buf, len, got, err);
}

void dc_store_reader_close(dc_store_reader_t *r)
{
    if (r != NULL)
        r->store->ops->reader_close(r);
}

int dc_store_read_all(dc_store_t *store, const char *key, size_t max, char **out, size_t *len,
                      dc_error_t *err)
{
    dc_store_reader_t *r;
    dc_buf_t b = {0};
    char chunk[65536];
    if (dc_store_reader_open(store, key, &r, err) != 0)
        return -1;
    for (;;) {
        size_t got = 0;
        if (dc_store_reader_read(r, chunk, sizeof(chunk), &got, err) != 0) {
            dc_store_reader_close(r);
            dc_buf_free(&b);
            return -1;
        }
        if (got == 0)
            break;
        if (b.len + got > max) {
            dc_store_reader_close(r);
            dc_buf_free(&b);
            return dc_error_set(err, "%s in store %s is larger than the %zu bytes allowed", key,
                                store->url, max);
        }
        dc_buf_append(&b, chunk, got);
    }
    dc_store_reader_close(r);
    if (b.data == NULL)
        dc_buf_append(&b, "", 0);
    *out = b.data;
    *len = b.len;
    return 0;
}

int dc_store_list(dc_store_t *store, const char *prefix, dc_store_list_fn fn, void *ctx,
                  dc_error_t *err)
{
    /* A prefix names a directory: "a/" and "a" are the same. */
    char *dir = dc_strdup(prefix);
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
        dir[--n] = '\0';
    int rc = check_key(dir, true, err);
    if (rc == 0)
        rc = store->ops->list(store, dir, fn, ctx, err);
    free(dir);
    return rc;
}

int dc_store_exists(dc_store_t *store, const char *key, bool *exists, dc_error_t *err)
{
    if (check_key(key, false, err) != 0)
        return -1;
    return store->ops->exists(store, key, exists, err);
}

int dc_store_delete(dc_store_t *store, const char *key, dc_error_t *err)
{
    if (check_key(key, false, err) != 0)
        return -1;
    return store->ops->remove(store, key, err);
}

typedef struct key_list {
    char **keys;
    size_t count;
} key_list_t;

static int collect_key(void *ctx, const dc_store_entry_t *entry, dc_error_t *err)
{
    (void)err;
    key_list_t *list = ctx;
    list->keys = dc_realloc(list->keys, (list->count + 1) * sizeof(char *));
    list->keys[list->count++] = dc_strdup(entry->key);
    return 0;
}

int dc_store_delete_prefix(dc_store_t *store, const char *prefix, dc_error_t *err)
{
    key_list_t list = {0};
    int rc = dc_store_list(store, prefix, collect_key, &list, err);
    for (size_t i = 0; i < list.count; i++) {
        if (rc == 0)
            rc = dc_store_delete(store, list.keys[i], err);
        free(list.keys[i]);
    }
    free(list.keys);
    return rc;
}

int dc_store_lease_acquire(dc_store_t *store, const char *name, dc_store_lease_t **out,
                           dc_error_t *err)
{
    if (check_key(name, false, err) != 0 || strchr(name, '/') != NULL)
        return dc_error_set(err, "refusing unsafe lease name '%s'", name);
    return store->ops->lease_acquire(store, name, out, err);
}

void dc_store_lease_release(dc_store_lease_t *lease)
{
    if (lease != NULL)
        lease->store->ops->lease_release(lease);
}

int dc_store_lease_check(dc_store_lease_t *lease, dc_error_t *err)
{
    if (lease == NULL || lease->store->ops->lease_check == NULL)
        return 0;
    return lease->store->ops->lease_check(lease, err);
}

bool dc_store_lease_is_held(dc_store_t *store, const char *name)
{
    if (!key_is_safe(name, false) || strchr(name, '/') != NULL)
        return false;
    return store->ops->lease_is_held(store, name);
}

int dc_store_cleanup_temporary(dc_store_t *store, int *removed, dc_error_t *err)
{
    *removed = 0;
    return store->ops->cleanup_temporary(store, removed, err);
}
