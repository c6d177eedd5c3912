/* `deployctl verify`: proof that a snapshot would restore. Plain: every stored byte against its
 * SHA-256, every chunk decompressed against the SHA-256 and size of its COPY text, the manifest
 * against itself. Deep: restored into a scratch database and read back with COPY, chunk by
 * chunk, against the same hashes. The outcome is stored beside the snapshot. */
#ifndef DEPLOYCTL_VERIFY_H
#define DEPLOYCTL_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "deployctl/error.h"
#include "deployctl/snapshot.h"
#include "deployctl/store.h"

typedef struct dc_verify_opts {
    dc_store_t *store;
    const char *database; /* whose snapshots (NULL: any) */
    const char *ref;      /* id or "latest" */
    bool deep;
    const char *server_url;           /* deep: the server to create the scratch database on */
    const char *scratch_url;          /* deep: another server for it (--verify-database) */
    const char *maintenance_work_mem; /* deep: for the restore's index builds */
    const dc_key_t *key;              /* for an encrypted snapshot (NULL: none given) */
} dc_verify_opts_t;

typedef struct dc_verify_result {
    char id[DC_SNAPSHOT_ID_LEN + 1];
    bool ok;
    bool deep;
    uint64_t members;
    uint64_t stored_bytes;
    uint64_t raw_bytes;
    uint64_t rows;
    size_t tables;
    double seconds;
    char failure[DC_ERROR_MAX]; /* why it failed, when !ok */
} dc_verify_result_t;

/* Returns 0 when the verification ran (result->ok says how it went, and the outcome is stored
 * as verify-<time>.json next to the snapshot), -1 when it could not run at all. */
int dc_verify_run(const dc_verify_opts_t *opts, dc_verify_result_t *result, dc_error_t *err);

#endif
