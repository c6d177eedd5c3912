/* `deployctl rehearse`: the pending migrations run against a copy of production. A snapshot is
 * restored into a scratch database (always dropped afterwards), the real runner applies the
 * pending migrations there, and each statement is measured: wall time, the locks it took and
 * how long they were held (sampled from pg_locks by a second connection), tables rewritten,
 * rows touched, WAL written, temporary files written and the size of the indexes built. Each
 * statement gets a verdict; write-blocking locks held longer than max_lock make the rehearsal
 * fail. */
#ifndef DEPLOYCTL_REHEARSE_H
#define DEPLOYCTL_REHEARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "deployctl/error.h"
#include "deployctl/migrate.h"
#include "deployctl/restore.h"
#include "deployctl/snapshot.h"

typedef struct dc_rehearse_opts {
    dc_store_t *store;
    const char *database;       /* whose snapshots (the production database's name) */
    const char *ref;            /* snapshot id or "latest" */
    const char *production_url; /* libpq URL of production: its server gets the scratch db */
    const char *scratch_url;    /* a database to create and drop instead (must not exist) */
    const dc_key_t *key;        /* for an encrypted snapshot */
    const char *maintenance_work_mem;
    dc_migrate_opts_t migrate; /* url, observer filled in by the rehearsal */
    uint64_t max_lock_ms;      /* write-blocking locks held longer fail the rehearsal */
    uint64_t sample_ms;        /* pg_locks sampling interval (0: 20 ms) */
    /* Told the scratch database's name once it exists (see dc_restore_opts_t.on_created). */
    int (*on_scratch)(void *ctx, const char *database, dc_error_t *err);
    void *scratch_ctx;
} dc_rehearse_opts_t;

/* One lock a statement took on one relation, as seen by the sampler. */
typedef struct dc_rehearse_lock {
    char *relation; /* schema.name, or "relation <oid>" when it is gone */
    char mode[32];  /* "ACCESS EXCLUSIVE" */
    double seconds; /* from first to last seen (held until the transaction ended) */
    bool blocks_writes;
    bool new_relation; /* created by the migrations: blocks nobody */
} dc_rehearse_lock_t;

typedef struct dc_rehearse_rewrite {
    char *relation;
    uint64_t bytes_before; /* at the start of the rehearsal */
    uint64_t bytes_after;  /* after the statement (with indexes and TOAST) */
} dc_rehearse_rewrite_t;

/* An index the statement built (CREATE INDEX, a constraint's index), with its size after. */
typedef struct dc_rehearse_index {
    char *relation; /* schema.name */
    uint64_t bytes; /* pg_relation_size */
} dc_rehearse_index_t;

typedef struct dc_rehearse_stmt {
    char *migration;
    char *file;
    int line;
    char *text; /* on one line, shortened */
    double seconds;
    bool ok;
    char *rows;        /* PQcmdTuples, "" when the statement reports none */
    int64_t wal_bytes; /* -1 when unknown */
    /* Temporary files the statement wrote (sorts, hashes, index builds spilling past
     * work_mem / maintenance_work_mem): the larger of the peak its own temporary files reached
     * while it ran (pg_ls_tmpdir, sampled) and the database's temp_bytes counter's growth
     * (pg_stat_database, which sees parallel workers' files once they exit); -1 when neither
     * can be seen (pg_ls_tmpdir needs pg_monitor). */
    int64_t temp_bytes;
    int64_t temp_files; /* most temporary files seen at once, or the counter's growth; -1 */
    dc_rehearse_index_t *indexes;
    size_t index_count;
    dc_rehearse_lock_t *locks;
    size_t lock_count;
    dc_rehearse_rewrite_t *rewrites;
    size_t rewrite_count;
    char **lint; /* "rule-id: message" of lint's findings for this statement */
    size_t lint_count;
    char *verdict; /* one line a reviewer can act on */
    bool over_threshold;
} dc_rehearse_stmt_t;

typedef struct dc_rehearse_result {
    char snapshot[DC_SNAPSHOT_ID_LEN + 1];
    char scratch[128]; /* the scratch database's name */
    bool scratch_dropped;
    double restore_seconds;
    double seconds;
    dc_rehearse_stmt_t *stmts;
    size_t count;
    char **applied; /* migrations applied in the scratch database */
    size_t applied_count;
    char *failed;          /* the migration that failed, or NULL */
    char *failure;         /* its error */
    size_t over_threshold; /* statements whose write-blocking locks exceeded max_lock */
    uint64_t max_lock_ms;
} dc_rehearse_result_t;

/* Restores, migrates, measures and drops. 0 with the result filled in (even when a migration
 * failed: result->failed says so); -1 when the rehearsal itself could not run. */
int dc_rehearse_run(const dc_rehearse_opts_t *opts, dc_rehearse_result_t *result, dc_error_t *err);
void dc_rehearse_result_free(dc_rehearse_result_t *r);

/* Reports: human text, JSON (caller frees with json_decref via the jansson API) and Markdown. */
struct json_t;
void dc_rehearse_print_text(const dc_rehearse_result_t *r, FILE *out);
struct json_t *dc_rehearse_json(const dc_rehearse_result_t *r);
void dc_rehearse_write_markdown(const dc_rehearse_result_t *r, FILE *out);

#endif
