/* What the backup's coordinator, workers and chunk queue share. Private to src/backup/. */
#ifndef DEPLOYCTL_BACKUP_INTERN_H
#define DEPLOYCTL_BACKUP_INTERN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "deployctl/backup.h"
#include "deployctl/chunk_queue.h"
#include "deployctl/pg.h"
#include "deployctl/progress.h"
#include "deployctl/util.h"

/* What a chunk or a task holds: rows of a table, or bytes of a large object. */
typedef enum { DC_UNIT_TABLE, DC_UNIT_LARGE_OBJECT } dc_unit_kind_t;

/* One unit of work: a whole table, a range of its heap blocks [first, end), or a large
 * object. */
typedef struct dc_backup_task {
    dc_unit_kind_t kind;
    size_t index; /* table or large object */
    bool ranged;
    uint64_t first_block;
    uint64_t end_block; /* 0 with ranged: to the end of the table */
    uint64_t weight;
} dc_backup_task_t;

/* What every worker shares. */
typedef struct dc_backup_shared {
    const dc_backup_opts_t *opts;
    const char *snapshot;
    const char *encoding;
    const dc_pg_table_list_t *tables; /* in manifest order */
    const uint32_t *large_objects;    /* oids, in manifest order */
    dc_backup_task_t *tasks;
    size_t task_count;
    _Atomic size_t next_task;
    _Atomic uint32_t *tasks_left; /* per table: tasks not finished yet */
    dc_chunk_queue_t *queue;
    dc_progress_t *progress;
    uint64_t stored_limit; /* end a chunk when its compressed size reaches this */
    pthread_mutex_t error_mu;
    bool failed;
    dc_error_t error;
} dc_backup_shared_t;

typedef struct dc_backup_worker {
    dc_backup_shared_t *shared;
    int number;
    PGconn *conn;
    PGcancel *cancel;
    pthread_t thread;
    bool started;
} dc_backup_worker_t;

/* Connects and joins the exported snapshot (in the caller's thread, so errors surface early). */
int dc_backup_worker_connect(dc_backup_worker_t *w, dc_error_t *err);
void *dc_backup_worker_main(void *arg);
void dc_backup_worker_close(dc_backup_worker_t *w);
/* Records the first failure and makes everybody stop. */
void dc_backup_fail(dc_backup_shared_t *shared, const dc_error_t *err);

#endif
