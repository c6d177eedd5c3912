/* Private to src/rehearse/: the observer that measures each statement the runner applies, and
 * the thread that samples the runner's locks from pg_locks meanwhile. */
#ifndef DEPLOYCTL_REHEARSE_INTERN_H
#define DEPLOYCTL_REHEARSE_INTERN_H

#include <libpq-fe.h>
#include <pthread.h>

#include "deployctl/rehearse.h"

/* One (relation, mode) seen held by the runner, attributed to the statement running when it
 * was first seen; open while every sample since has seen it. */
typedef struct rh_lock_seen {
    unsigned oid;
    char mode[32];
    size_t stmt;
    double first, last;
    bool open;
} rh_lock_seen_t;

/* A relation's size at the start (committed state, before any migration). */
typedef struct rh_rel {
    unsigned oid;
    unsigned filenode;
    uint64_t bytes;
    char *name;
} rh_rel_t;

typedef struct rh_observer {
    pthread_mutex_t mu;
    pthread_t thread;
    bool thread_started;
    bool stop;
    PGconn *monitor; /* the sampler's own connection */
    int runner_pid;  /* 0 until the first statement */
    long current;    /* the statement running, -1 between statements */
    uint64_t sample_ms;
    rh_lock_seen_t *seen;
    size_t seen_count;
    rh_rel_t *start; /* relations before the migrations, by oid */
    size_t start_count;
    rh_rel_t *before; /* relfilenodes before the current statement (runner's view) */
    size_t before_count;
    char wal_before[64];
    /* temporary files: the sampler's peak for the current statement (guarded by mu), whether
     * pg_ls_tmpdir may be read at all, and the database's counters before the statement */
    int64_t temp_peak, temp_files_peak;
    bool tmpdir_denied;
    int64_t stat_temp_bytes, stat_temp_files; /* -1: unknown */
    unsigned *indexes_before;                 /* index oids before the current statement */
    size_t indexes_before_count;
    double t0;
    dc_rehearse_result_t *result;
} rh_observer_t;

/* Connects the sampler to the scratch database, reads the starting sizes, starts the thread. */
int rh_observer_start(rh_observer_t *o, const char *scratch_url, uint64_t sample_ms,
                      dc_rehearse_result_t *result, dc_error_t *err);
/* Stops the thread and turns what it saw into each statement's locks. */
void rh_observer_finish(rh_observer_t *o);
void rh_observer_free(rh_observer_t *o);
/* For dc_migrate_observer_t. */
void rh_before(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st);
void rh_after(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st,
              const PGresult *res);
/* Verdicts and the threshold, once the locks are known. */
void rh_judge(dc_rehearse_result_t *r, uint64_t max_lock_ms);

#endif
