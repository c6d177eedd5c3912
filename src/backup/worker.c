/* A backup worker: one connection inside the exported snapshot, taking tasks (tables, block
 * ranges of big tables, large objects) largest first and streaming each through SHA-256 and
 * zstd into bounded chunks for the archive writer. */
#include <libpq/libpq-fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_intern.h"
#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/stream.h"

#define STAGING_BYTES (256 * 1024)
#define CHECK_EVERY   4096 /* rows between looks at the failure flag */
#define LO_READ_BYTES (256 * 1024)

typedef struct worker_stream {
    /* raw digest -> zstd -> stored count -> sink; the archive writer hashes what it stores */
    dc_filter_t *head;
    dc_filter_t *raw_sha;
    dc_filter_t *stored_count;
    dc_filter_t *sink;
    uint8_t *staging;
    size_t staged;
    uint64_t staged_rows;
    dc_chunk_t *chunk; /* NULL until the first row of a chunk arrives */
} worker_stream_t;

void dc_backup_fail(dc_backup_shared_t *shared, const dc_error_t *err)
{
    pthread_mutex_lock(&shared->error_mu);
    if (!shared->failed) {
        shared->failed = true;
        shared->error = *err;
    }
    pthread_mutex_unlock(&shared->error_mu);
    dc_chunk_queue_abort(shared->queue);
}

static bool has_failed(dc_backup_shared_t *shared)
{
    pthread_mutex_lock(&shared->error_mu);
    bool failed = shared->failed;
    pthread_mutex_unlock(&shared->error_mu);
    return failed;
}

int dc_backup_worker_connect(dc_backup_worker_t *w, dc_error_t *err)
{
    char purpose[48];
    snprintf(purpose, sizeof(purpose), "backup worker %d", w->number);
    if (dc_pg_connect(w->shared->opts->database_url, purpose, &w->conn, err) != 0)
        return -1;
    /* Output settings that make COPY text exact and the same on every run: ISO dates, UTC,
     * round-trip floats, no row-level security hiding rows, and UTF-8 (the manifest is JSON, so
     * names are UTF-8; the data follows, converted losslessly by the server). */
    /* lock_timeout: a COPY queued behind an ALTER TABLE that waits for our coordinator would
     * otherwise wait forever (the deadlock runs through this process, not the server). */
    char *setup = dc_sprintf(
        "SET statement_timeout = 0; SET lock_timeout = '%llums';"
        " SET idle_in_transaction_session_timeout = 0; SET DateStyle = 'ISO';"
        " SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET TimeZone = 'UTC';"
        " SET bytea_output = 'hex'; SET row_security = off; SET client_encoding = '%s';"
        " SELECT pg_catalog.set_config('search_path', '', false)",
        (unsigned long long)w->shared->opts->lock_timeout_ms, w->shared->encoding);
    /* Separately: a query in the same string would have taken a snapshot of its own. */
    char *join = dc_sprintf("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
                            " SET TRANSACTION SNAPSHOT '%s'",
                            w->shared->snapshot);
    int rc = dc_pg_exec(w->conn, setup, err);
    if (rc == 0)
        rc = dc_pg_exec(w->conn, join, err);
    free(setup);
    free(join);
    if (rc != 0) {
        dc_error_prefix(err, "backup worker %d cannot join the snapshot: ", w->number);
        return -1;
    }
    w->cancel = PQgetCancel(w->conn);
    return 0;
}

void dc_backup_worker_close(dc_backup_worker_t *w)
{
    if (w->cancel)
        PQfreeCancel(w->cancel);
    if (w->conn)
        PQfinish(w->conn);
    w->cancel = NULL;
    w->conn = NULL;
}

static char *copy_statement(PGconn *conn, const dc_pg_table_t *t, const dc_backup_task_t *task)
{
    char *schema = dc_pg_quote_ident(conn, t->schema);
    char *name = dc_pg_quote_ident(conn, t->name);
    char *cols = dc_pg_column_list(conn, t->columns, t->column_count);
    char *sql;
    if (t->filter != NULL) {
        /* An extension configuration table: only the rows the extension did not create. */
        sql = dc_sprintf("COPY (SELECT %s FROM ONLY %s.%s %s) TO STDOUT", cols, schema, name,
                         t->filter);
    } else if (!task->ranged) {
        /* COPY of a table never includes its inheritance children: each row exactly once. */
        sql = dc_sprintf("COPY %s.%s %s%s%s TO STDOUT", schema, name, t->column_count ? "(" : "",
                         cols, t->column_count ? ")" : "");
    } else {
        char upper[64] = "";
        if (task->end_block > 0)
            snprintf(upper, sizeof(upper), " AND ctid < '(%llu,0)'::pg_catalog.tid",
                     (unsigned long long)task->end_block);
        sql = dc_sprintf("COPY (SELECT %s FROM ONLY %s.%s WHERE ctid >= '(%llu,0)'::pg_catalog.tid"
                         "%s) TO STDOUT",
                         cols, schema, name, (unsigned long long)task->first_block, upper);
    }
    free(cols);
    free(schema);
    free(name);
    return sql;
}

/* An encrypted snapshot keys the COPY text digest (HMAC), so it confirms no guess. */
static int stream_init(worker_stream_t *s, int level, const dc_key_t *key, dc_error_t *err)
{
    memset(s, 0, sizeof(*s));
    s->sink = dc_filter_memory_sink_new(NULL);
    s->stored_count = dc_filter_count_new(s->sink);
    dc_filter_t *zstd = dc_filter_zstd_compress_new(level, s->stored_count, err);
    if (zstd == NULL) {
        dc_filter_free_chain(s->stored_count);
        return -1;
    }
    s->raw_sha = dc_filter_digest_new(key ? key->raw : NULL, zstd);
    if (s->raw_sha == NULL) {
        dc_filter_free_chain(zstd);
        return dc_error_set(err, "cannot set up HMAC-SHA256 (OpenSSL)");
    }
    s->head = s->raw_sha;
    s->staging = dc_malloc(STAGING_BYTES);
    return 0;
}

static void stream_free(worker_stream_t *s, dc_chunk_queue_t *q)
{
    if (s->chunk)
        dc_chunk_queue_release(q, s->chunk);
    dc_filter_free_chain(s->head);
    free(s->staging);
}

static int stream_flush(worker_stream_t *s, dc_backup_shared_t *shared, dc_error_t *err)
{
    if (s->staged == 0)
        return 0;
    if (dc_filter_write(s->head, s->staging, s->staged, err) != 0)
        return -1;
    atomic_fetch_add(&shared->progress->bytes, s->staged);
    atomic_fetch_add(&shared->progress->rows, s->staged_rows);
    s->staged = 0;
    s->staged_rows = 0;
    return 0;
}

static int chunk_begin(worker_stream_t *s, dc_backup_shared_t *shared, const dc_backup_task_t *task,
                       dc_error_t *err)
{
    s->chunk = dc_chunk_queue_acquire(shared->queue);
    if (s->chunk == NULL)
        return dc_error_set(err, "backup aborted");
    s->chunk->kind = (int)task->kind;
    s->chunk->index = task->index;
    dc_filter_reset_chain(s->head);
    dc_filter_memory_sink_set(s->sink, &s->chunk->data);
    return 0;
}

static int chunk_end(worker_stream_t *s, dc_backup_shared_t *shared, dc_error_t *err)
{
    if (stream_flush(s, shared, err) != 0 || dc_filter_finish(s->head, err) != 0)
        return -1;
    dc_filter_sha256_hex(s->raw_sha, s->chunk->raw_sha256);
    atomic_fetch_add(&shared->progress->stored, s->chunk->data.len);
    dc_chunk_queue_submit(shared->queue, s->chunk);
    s->chunk = NULL;
    dc_fault_point("backup-chunk-ended");
    return 0;
}

/* Adds a row (rows = 1) or a piece of a large object (rows = 0) to the current chunk, and ends
 * the chunk when it is full. */
static int add_bytes(worker_stream_t *s, dc_backup_shared_t *shared, const dc_backup_task_t *task,
                     const char *row, size_t len, uint64_t rows, dc_error_t *err)
{
    if (s->chunk == NULL && chunk_begin(s, shared, task, err) != 0)
        return -1;
    if (s->staged + len > STAGING_BYTES && stream_flush(s, shared, err) != 0)
        return -1;
    if (len > STAGING_BYTES) {
        if (dc_filter_write(s->head, row, len, err) != 0)
            return -1;
        atomic_fetch_add(&shared->progress->bytes, len);
    } else {
        memcpy(s->staging + s->staged, row, len);
        s->staged += len;
    }
    s->staged_rows += rows;
    s->chunk->rows += rows;
    s->chunk->raw_bytes += len;
    if (s->chunk->raw_bytes >= shared->opts->chunk_bytes ||
        dc_filter_count_bytes(s->stored_count) >= shared->stored_limit)
        return chunk_end(s, shared, err);
    return 0;
}

static int copy_task(dc_backup_worker_t *w, worker_stream_t *s, const dc_backup_task_t *task,
                     dc_error_t *err)
{
    dc_backup_shared_t *shared = w->shared;
    const dc_pg_table_t *t = &shared->tables->items[task->index];
    char what[600];
    snprintf(what, sizeof(what), "COPY of table %s.%s", t->schema, t->name);
    char *sql = copy_statement(w->conn, t, task);
    dc_log_debug("worker %d: %s", w->number, sql);
    PGresult *res = PQexec(w->conn, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "55P03") == 0) {
            /* Someone waits for an ACCESS EXCLUSIVE lock on the table (ALTER TABLE, a
             * migration): name them instead of waiting behind them. */
            PQclear(PQexec(w->conn, "ROLLBACK")); /* the failed transaction answers nothing */
            char *who = dc_pg_describe_lock_holders(w->conn);
            dc_error_set(err,
                         "%s: could not lock it within --lock-timeout (%llu ms): %s; run the "
                         "backup when it is done, or raise --lock-timeout",
                         what, (unsigned long long)w->shared->opts->lock_timeout_ms,
                         *who ? who : "another session wants an exclusive lock");
            free(who);
        } else {
            dc_pg_error(w->conn, res, what, err);
            if (state != NULL && strcmp(state, "42501") == 0)
                dc_error_append(err, "; the backup role needs to read every table: grant it "
                                     "pg_read_all_data (and BYPASSRLS for row-level security), "
                                     "or back up as the owner");
        }
        PQclear(res);
        return -1;
    }
    PQclear(res);

    int rc = 0;
    uint64_t rows = 0;
    for (;;) {
        char *row = NULL;
        int n = PQgetCopyData(w->conn, &row, 0);
        if (n > 0) {
            rc = add_bytes(s, shared, task, row, (size_t)n, 1, err);
            PQfreemem(row);
            if (rc == 0 && ++rows % CHECK_EVERY == 0 && has_failed(shared))
                rc = dc_error_set(err, "backup aborted");
            if (rc != 0)
                return -1; /* the connection is closed mid-COPY by the caller */
            continue;
        }
        if (n == -1)
            break;
        return dc_pg_error(w->conn, NULL, what, err);
    }
    while ((res = PQgetResult(w->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = dc_pg_error(w->conn, res, what, err);
        PQclear(res);
    }
    if (rc == 0 && s->chunk != NULL)
        rc = chunk_end(s, shared, err);
    return rc;
}

/* Large objects are read with lo_read inside the worker's transaction: opened INV_READ, they are
 * seen as of the exported snapshot. */
static int large_object_task(dc_backup_worker_t *w, worker_stream_t *s,
                             const dc_backup_task_t *task, dc_error_t *err)
{
    dc_backup_shared_t *shared = w->shared;
    uint32_t oid = shared->large_objects[task->index];
    int fd = lo_open(w->conn, oid, INV_READ);
    if (fd < 0) {
        char what[64];
        snprintf(what, sizeof(what), "opening large object %u", (unsigned)oid);
        return dc_pg_error(w->conn, NULL, what, err);
    }
    /* Never more than a chunk at once, so chunks keep their size. */
    size_t piece = shared->opts->chunk_bytes < LO_READ_BYTES ? (size_t)shared->opts->chunk_bytes
                                                             : LO_READ_BYTES;
    char *buf = dc_malloc(piece);
    int rc = 0;
    for (;;) {
        int n = lo_read(w->conn, fd, buf, piece);
        if (n < 0) {
            char what[64];
            snprintf(what, sizeof(what), "reading large object %u", (unsigned)oid);
            rc = dc_pg_error(w->conn, NULL, what, err);
            break;
        }
        if (n == 0)
            break;
        if (add_bytes(s, shared, task, buf, (size_t)n, 0, err) != 0) {
            rc = -1;
            break;
        }
    }
    free(buf);
    if (rc == 0 && lo_close(w->conn, fd) != 0)
        rc = dc_pg_error(w->conn, NULL, "closing a large object", err);
    if (rc == 0 && s->chunk != NULL)
        rc = chunk_end(s, shared, err);
    return rc;
}

void *dc_backup_worker_main(void *arg)
{
    dc_backup_worker_t *w = arg;
    dc_backup_shared_t *shared = w->shared;
    worker_stream_t stream;
    dc_error_t err;

    if (stream_init(&stream, shared->opts->compression_level, shared->opts->key, &err) != 0) {
        dc_backup_fail(shared, &err);
        dc_chunk_queue_producer_done(shared->queue);
        return NULL;
    }
    while (!has_failed(shared)) {
        size_t i = atomic_fetch_add(&shared->next_task, 1);
        if (i >= shared->task_count)
            break;
        const dc_backup_task_t *task = &shared->tasks[i];
        int rc = task->kind == DC_UNIT_TABLE ? copy_task(w, &stream, task, &err)
                                             : large_object_task(w, &stream, task, &err);
        if (rc != 0) {
            dc_backup_fail(shared, &err);
            break;
        }
        if (task->kind == DC_UNIT_TABLE &&
            atomic_fetch_sub(&shared->tasks_left[task->index], 1) == 1)
            atomic_fetch_add(&shared->progress->items_done, 1);
    }
    stream_free(&stream, shared->queue);
    dc_chunk_queue_producer_done(shared->queue);
    return NULL;
}
