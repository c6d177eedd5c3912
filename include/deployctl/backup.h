/* `deployctl backup` as a library call: a consistent snapshot of a live database, taken with
 * parallel COPY workers under one exported snapshot, written to a store. */
#ifndef DEPLOYCTL_BACKUP_H
#define DEPLOYCTL_BACKUP_H

#include <stdint.h>

#include "deployctl/crypto.h"
#include "deployctl/error.h"
#include "deployctl/snapshot.h"
#include "deployctl/store.h"

typedef struct dc_backup_opts {
    const char *database_url;
    dc_store_t *store;
    const char *tag;
    int jobs;                  /* worker connections */
    int compression_level;     /* zstd */
    uint64_t chunk_bytes;      /* COPY text per chunk, at most (plus one row) */
    uint64_t split_bytes;      /* tables with more heap than this are read in ranges this big */
    uint64_t lock_timeout_ms;  /* waiting for table locks */
    const char *pg_dump_path;  /* NULL: find one */
    const char *prisma_schema; /* where _prisma_migrations lives (the URL's ?schema=), or NULL */
    /* A snapshot exported by the caller's open transaction (which keeps writers out): the
     * backup reads under it instead of taking its own. NULL: take one. */
    const char *external_snapshot;
    const dc_key_t *key; /* encrypt the snapshot with this key (NULL: do not) */
} dc_backup_opts_t;

typedef struct dc_backup_result {
    dc_manifest_t *manifest; /* the committed snapshot's manifest (caller frees) */
    uint64_t stored_bytes;
    double seconds;
} dc_backup_result_t;

int dc_backup_run(const dc_backup_opts_t *opts, dc_backup_result_t *result, dc_error_t *err);

#endif
