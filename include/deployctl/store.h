/* Where snapshots live. One interface: write a key (atomically: invisible until committed),
 * read a key, list a prefix, delete; plus leases that mark work in progress so that cleaning
 * never removes what a running backup is writing. Drivers: file:// and s3://. */
#ifndef DEPLOYCTL_STORE_H
#define DEPLOYCTL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "deployctl/error.h"

typedef struct dc_store dc_store_t;
typedef struct dc_store_writer dc_store_writer_t;
typedef struct dc_store_reader dc_store_reader_t;
typedef struct dc_store_lease dc_store_lease_t;

typedef struct dc_store_entry {
    const char *key; /* relative to the store root, '/'-separated */
    uint64_t size;
    time_t mtime;
} dc_store_entry_t;

/* Settings of the s3:// driver: the config file's [s3] section and the AWS_* environment, as
 * the CLI resolved them. Strings are copied. A NULL string falls back to the AWS environment
 * variable of the same meaning (so a library user needs no configuration); `*_origin` names
 * where a value came from ("AWS_ACCESS_KEY_ID", "/etc/deployctl/deployctl.conf line 12"), for
 * error messages. Secrets are registered with the log redactor when a store opens. */
typedef struct dc_store_s3_settings {
    const char *endpoint, *endpoint_origin; /* "https://host[:port]" */
    const char *region;
    const char *access_key_id, *access_key_id_origin;
    const char *secret_access_key, *secret_access_key_origin;
    const char *secret_access_key_file; /* read when opening; wins over secret_access_key */
    const char *session_token;
    const char *ca_file;
    bool path_style;
    uint64_t part_size;  /* 0: sized from dc_store_expect_size (at least 8 MiB); else >= 5 MiB */
    uint64_t timeout_ms; /* no byte moving for this long fails a try; 0: the default (30 s) */
    int max_attempts;    /* tries per request; 0: AWS_MAX_ATTEMPTS or 5 */
} dc_store_s3_settings_t;

/* Sets the s3:// settings for stores opened afterwards in this process (call it before any
 * store is opened; NULL forgets them). */
void dc_store_s3_configure(const dc_store_s3_settings_t *settings);

/* Opens a store from its URL: "file:///abs/dir", a plain absolute path, or
 * "s3://bucket/prefix". Opening changes nothing, so a read-only store can be listed and read. */
int dc_store_open(const char *url, dc_store_t **out, dc_error_t *err);
/* Makes sure objects can be written (creating what the driver needs), so a command fails
 * before it starts work rather than after. */
int dc_store_check_writable(dc_store_t *store, dc_error_t *err);
void dc_store_close(dc_store_t *store);
/* Bytes a new object can still take and the size of the medium, measured at `where` (the
 * store's directory, or its nearest existing ancestor). *known is false, and nothing else
 * set, when the driver has no such notion (object stores). */
int dc_store_free_space(dc_store_t *store, bool *known, uint64_t *available, uint64_t *total,
                        char *where, size_t where_size, dc_error_t *err);
/* The URL as given, for messages (stores carry no secrets in their URL). */
const char *dc_store_url(const dc_store_t *store);

/* Objects written from now on may be about `bytes` long (an estimate, such as a backup's
 * table sizes): a driver that uploads in parts sizes them so such an object fits its part
 * limit. Drivers without parts ignore it. */
void dc_store_expect_size(dc_store_t *store, uint64_t bytes);

/* Writers: bytes go to a temporary object; commit makes the key appear whole, or not at all. */
int dc_store_writer_open(dc_store_t *store, const char *key, dc_store_writer_t **out,
                         dc_error_t *err);
int dc_store_writer_write(dc_store_writer_t *w, const void *data, size_t len, dc_error_t *err);
int dc_store_writer_commit(dc_store_writer_t *w, dc_error_t *err); /* frees w */
void dc_store_writer_abort(dc_store_writer_t *w);                  /* frees w */

int dc_store_reader_open(dc_store_t *store, const char *key, dc_store_reader_t **out,
                         dc_error_t *err);
/* Whether the store can read part of an object (file:// can; a driver that cannot is read
 * front to back). */
bool dc_store_can_read_ranges(const dc_store_t *store);
/* A reader of `length` bytes of the object from `offset` (fewer when the object ends first),
 * so that several threads can read members of one archive side by side. */
int dc_store_reader_open_range(dc_store_t *store, const char *key, uint64_t offset, uint64_t length,
                               dc_store_reader_t **out, dc_error_t *err);
/* Reads up to len bytes; *got == 0 at the end. */
int dc_store_reader_read(dc_store_reader_t *r, void *buf, size_t len, size_t *got, dc_error_t *err);
void dc_store_reader_close(dc_store_reader_t *r);
/* Reads a whole small object (a manifest) into memory, refusing more than max bytes. */
int dc_store_read_all(dc_store_t *store, const char *key, size_t max, char **out, size_t *len,
                      dc_error_t *err);

typedef int (*dc_store_list_fn)(void *ctx, const dc_store_entry_t *entry, dc_error_t *err);
/* Calls fn for every committed key under prefix (recursively), in no particular order. */
int dc_store_list(dc_store_t *store, const char *prefix, dc_store_list_fn fn, void *ctx,
                  dc_error_t *err);
int dc_store_exists(dc_store_t *store, const char *key, bool *exists, dc_error_t *err);
int dc_store_delete(dc_store_t *store, const char *key, dc_error_t *err);
/* Deletes every key under prefix. */
int dc_store_delete_prefix(dc_store_t *store, const char *prefix, dc_error_t *err);

/* A lease marks `name` as being worked on by a live process until released (or the process
 * dies: the file driver uses flock(), so SIGKILL releases it). */
int dc_store_lease_acquire(dc_store_t *store, const char *name, dc_store_lease_t **out,
                           dc_error_t *err);
void dc_store_lease_release(dc_store_lease_t *lease);
/* Before publishing the work a lease covers: -1 (err) when the lease was lost (another
 * process took it: S3 leases are only objects a cleaner may judge dead) or may be about to be,
 * or its state cannot be read. 0 for a NULL lease. */
int dc_store_lease_check(dc_store_lease_t *lease, dc_error_t *err);
bool dc_store_lease_is_held(dc_store_t *store, const char *name);

/* Removes temporary objects left by writers that died (SIGKILL, power loss) and leases
 * nobody holds; returns how many objects were removed in *removed. */
int dc_store_cleanup_temporary(dc_store_t *store, int *removed, dc_error_t *err);

#endif
