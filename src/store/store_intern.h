/* The contract between store.c (validation, dispatch) and each driver (file, s3).
 * Only store drivers include this file. */
#ifndef DEPLOYCTL_STORE_INTERN_H
#define DEPLOYCTL_STORE_INTERN_H

#include "deployctl/store.h"

typedef struct dc_store_ops {
    int (*writer_open)(dc_store_t *store, const char *key, dc_store_writer_t **out,
                       dc_error_t *err);
    int (*writer_write)(dc_store_writer_t *w, const void *data, size_t len, dc_error_t *err);
    int (*writer_commit)(dc_store_writer_t *w, dc_error_t *err);
    void (*writer_abort)(dc_store_writer_t *w);
    int (*reader_open)(dc_store_t *store, const char *key, dc_store_reader_t **out,
                       dc_error_t *err);
    /* NULL when the driver cannot read part of an object. */
    int (*reader_open_range)(dc_store_t *store, const char *key, uint64_t offset, uint64_t length,
                             dc_store_reader_t **out, dc_error_t *err);
    int (*reader_read)(dc_store_reader_t *r, void *buf, size_t len, size_t *got, dc_error_t *err);
    void (*reader_close)(dc_store_reader_t *r);
    int (*list)(dc_store_t *store, const char *prefix, dc_store_list_fn fn, void *ctx,
                dc_error_t *err);
    int (*exists)(dc_store_t *store, const char *key, bool *exists, dc_error_t *err);
    int (*remove)(dc_store_t *store, const char *key, dc_error_t *err);
    int (*lease_acquire)(dc_store_t *store, const char *name, dc_store_lease_t **out,
                         dc_error_t *err);
    void (*lease_release)(dc_store_lease_t *lease);
    bool (*lease_is_held)(dc_store_t *store, const char *name);
    /* NULL when a lease cannot be lost while held (the file driver's flock). */
    int (*lease_check)(dc_store_lease_t *lease, dc_error_t *err);
    int (*cleanup_temporary)(dc_store_t *store, int *removed, dc_error_t *err);
    int (*check_writable)(dc_store_t *store, dc_error_t *err);
    /* NULL when the driver cannot tell (object stores have no "free space"). */
    int (*free_space)(dc_store_t *store, uint64_t *available, uint64_t *total, char *where,
                      size_t where_size, dc_error_t *err);
    /* NULL when the driver does not care how large objects will be. */
    void (*expect_size)(dc_store_t *store, uint64_t bytes);
    void (*close)(dc_store_t *store);
} dc_store_ops_t;

/* Drivers embed these as their first member. */
struct dc_store {
    const dc_store_ops_t *ops;
    char *url;
};

struct dc_store_writer {
    dc_store_t *store;
    char *key;
};

struct dc_store_reader {
    dc_store_t *store;
    char *key;
};

struct dc_store_lease {
    dc_store_t *store;
    char *name;
};

int dc_store_file_open(const char *url, dc_store_t **out, dc_error_t *err);
int dc_store_s3_open(const char *url, dc_store_t **out, dc_error_t *err);

#endif
