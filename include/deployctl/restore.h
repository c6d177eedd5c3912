/* `deployctl restore`: bring a database back to a snapshot. Atomic by default: one transaction
 * replaces the snapshot's schemas, runs pre-data, streams every chunk through COPY while
 * checking its hashes, runs post-data, checks row counts and commits, so any failure leaves the
 * database exactly as it was. Before it changes a database that holds tables it takes a
 * pre-restore snapshot of it, with writes blocked, so no write made since is ever lost. */
#ifndef DEPLOYCTL_RESTORE_H
#define DEPLOYCTL_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "deployctl/backup.h"
#include "deployctl/error.h"
#include "deployctl/snapshot.h"
#include "deployctl/store.h"

/* Asked before an existing database is changed: returns true to go on. */
typedef bool (*dc_confirm_fn)(void *ctx, const char *question);

typedef struct dc_restore_opts {
    dc_store_t *store;
    const char *database;    /* whose snapshots (the source's name; NULL: any) */
    const char *ref;         /* id or "latest" */
    const char *target_url;  /* the database to restore into */
    bool create_target;      /* create it when missing (--target) */
    bool require_new_target; /* ... and refuse one that exists (a scratch database) */
    int jobs;                /* 1: atomic; more: parallel into an empty database */
    bool yes;                /* changing a database with tables needs no confirmation */
    dc_confirm_fn confirm;   /* else asked through this (NULL: refuse) */
    void *confirm_ctx;
    bool safety_snapshot;       /* take a pre-restore snapshot of a database with tables */
    bool terminate_connections; /* end the sessions that would block the restore */
    uint64_t lock_timeout_ms;
    const char *maintenance_work_mem; /* for the index builds ("262144kB"); NULL: the server's */
    const dc_backup_opts_t *backup;   /* settings for the pre-restore snapshot */
    const dc_key_t *key;              /* for an encrypted snapshot (NULL: none given) */
    /* Called right after the target database was created, before anything goes into it (a
     * release journals a scratch database's name there, so that `recover` can drop it after a
     * kill); non-zero stops the restore, which drops the database again. */
    int (*on_created)(void *ctx, const char *database, dc_error_t *err);
    void *created_ctx;
} dc_restore_opts_t;

typedef struct dc_restore_result {
    char id[DC_SNAPSHOT_ID_LEN + 1];
    char safety_id[DC_SNAPSHOT_ID_LEN + 1]; /* the pre-restore snapshot, "" when none */
    bool created_target;
    size_t tables;
    uint64_t rows;
    uint64_t raw_bytes;
    double seconds;
} dc_restore_result_t;

int dc_restore_run(const dc_restore_opts_t *opts, dc_restore_result_t *result, dc_error_t *err);

/* Restores an already loaded snapshot (verify --deep uses it). */
int dc_restore_manifest(const dc_restore_opts_t *opts, const dc_manifest_t *manifest,
                        const char *database_dir, dc_restore_result_t *result, dc_error_t *err);

#endif
