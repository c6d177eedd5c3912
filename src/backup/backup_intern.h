/* What the backup's coordinator, workers and chunk queue share. Private to src/backup/. */
#ifndef DEPLOYCTL_BACKUP_INTERN_H
#define DEPLOYCTL_BACKUP_INTERN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "deployctl/backup.h"
#include "deployctl/pg.h"
#include "deployctl/progress.h"
#include "deployctl/util.h"

/* What a chunk or a task holds: rows of a table, or bytes of a large object. */
typedef enum { DC_UNIT_TABLE, DC_UNIT_LARGE_OBJECT } dc_unit_kind_t;

/* A compressed chunk on its way from a worker to the archive. */
typedef struct dc_chunk {
    dc_buf_t data;
    dc_unit_kind_t kind;
    size_t index; /* into the manifest's tables or large objects */
    uint64_t rows;
    uint64_t raw_bytes;
    char sha256[DC_HASH_HEX];
    char raw_sha256[DC_HASH_HEX];
    struct dc_chunk *next;
} dc_chunk_t;

/* A fixed pool of chunk buffers and the FIFO of finished ones: memory is bounded by the pool,
 * and a slow store makes the workers wait instead of buffering more. */
typedef struct dc_chunk_queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    dc_chunk_t *pool; /* all chunks, for freeing */
    size_t pool_size;
    dc_chunk_t *free_list;
    dc_chunk_t *ready_head;
    dc_chunk_t *ready_tail;
    int producers;
    bool aborted;
} dc_chunk_queue_t;

void dc_chunk_queue_init(dc_chunk_queue_t *q, size_t pool_size, size_t buffer_capacity,
                         int producers);
void dc_chunk_queue_destroy(dc_chunk_queue_t *q);
/* Blocks for a free chunk; NULL once aborted. */
dc_chunk_t *dc_chunk_queue_acquire(dc_chunk_queue_t *q);
void dc_chunk_queue_submit(dc_chunk_queue_t *q, dc_chunk_t *c);
void dc_chunk_queue_release(dc_chunk_queue_t *q, dc_chunk_t *c);
void dc_chunk_queue_producer_done(dc_chunk_queue_t *q);
void dc_chunk_queue_abort(dc_chunk_queue_t *q);
typedef enum {
    DC_QUEUE_CHUNK,
    DC_QUEUE_TIMEOUT,
    DC_QUEUE_DONE,
    DC_QUEUE_ABORTED
} dc_queue_status_t;
/* Waits up to timeout_ms for a finished chunk. */
dc_queue_status_t dc_chunk_queue_next(dc_chunk_queue_t *q, int timeout_ms, dc_chunk_t **out);

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
