/* Parallel restore into an empty database (--jobs N): pre-data on one connection; then the
 * archive is read once, and its chunks are handed through a bounded queue to N loaders that
 * COPY them concurrently (large object pieces go where they belong, in any order); then the
 * post-data script: indexes and primary/unique keys built in parallel, foreign keys checked in
 * parallel, everything else in order. Not atomic, and it says so. */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deployctl/chunk_queue.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "restore_intern.h"

#define CHUNK_BUFFER (4u * 1024 * 1024 + 512 * 1024)

typedef struct loader loader_t;

typedef struct parallel {
    const dc_restore_opts_t *opts;
    const dc_manifest_t *manifest;
    dc_progress_t *progress;
    dc_chunk_queue_t queue;
    loader_t *loaders;
    int count;
    pthread_mutex_t mu;
    bool failed;
    dc_error_t error;
    /* post-data work shared by the loaders */
    char **work;
    size_t work_count;
    size_t next_work;
} parallel_t;

struct loader {
    parallel_t *p;
    int number;
    PGconn *conn;
    pthread_t thread;
    bool started;
    dc_restore_load_t load;
};

static void fail(parallel_t *p, const dc_error_t *err)
{
    pthread_mutex_lock(&p->mu);
    if (!p->failed) {
        p->failed = true;
        p->error = *err;
    }
    pthread_mutex_unlock(&p->mu);
    dc_chunk_queue_abort(&p->queue);
}

/* ---- loading chunks ---- */

typedef struct memory_source {
    const dc_buf_t *data;
    size_t pos;
} memory_source_t;

static int read_memory(void *ctx, void *buf, size_t len, size_t *got, dc_error_t *err)
{
    (void)err;
    memory_source_t *m = ctx;
    size_t left = m->data->len - m->pos;
    *got = left < len ? left : len;
    memcpy(buf, m->data->data + m->pos, *got);
    m->pos += *got;
    return 0;
}

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    parallel_t *p = l->p;
    dc_error_t err;
    for (;;) {
        dc_chunk_t *c = NULL;
        dc_queue_status_t st = dc_chunk_queue_next(&p->queue, -1, &c);
        if (st != DC_QUEUE_CHUNK)
            break;
        const dc_manifest_chunk_t *k = c->ref;
        dc_member_t member = {.kind = (dc_member_kind_t)c->kind,
                              .name = k->member,
                              .index = c->index,
                              .chunk_index = c->position,
                              .chunk = k,
                              .size = k->stored_bytes,
                              .sha256 = k->sha256};
        memory_source_t mem = {&c->data, 0};
        dc_member_source_t source = {read_memory, &mem};
        int rc = dc_restore_load_member(&l->load, source, &member, &err);
        dc_chunk_queue_release(&p->queue, c);
        if (rc != 0) {
            fail(p, &err);
            break;
        }
    }
    return NULL;
}

static int connect_loaders(parallel_t *p, dc_error_t *err)
{
    const char *encoding = p->manifest->encoding ? p->manifest->encoding : "UTF8";
    char *setup = dc_sprintf("SET statement_timeout = 0; SET client_encoding = '%s';"
                             " SELECT pg_catalog.set_config('search_path', '', false)",
                             encoding);
    int rc = 0;
    for (int i = 0; i < p->count && rc == 0; i++) {
        loader_t *l = &p->loaders[i];
        char purpose[32];
        l->p = p;
        l->number = i + 1;
        snprintf(purpose, sizeof(purpose), "restore loader %d", i + 1);
        rc = dc_pg_connect(p->opts->target_url, purpose, &l->conn, err);
        if (rc == 0)
            rc = dc_pg_exec(l->conn, setup, err);
        l->load = (dc_restore_load_t){.conn = l->conn,
                                      .manifest = p->manifest,
                                      .freeze = false,
                                      .autocommit = true,
                                      .progress = p->progress};
    }
    free(setup);
    return rc;
}

static int start_threads(parallel_t *p, void *(*fn)(void *), dc_error_t *err)
{
    for (int i = 0; i < p->count; i++) {
        if (pthread_create(&p->loaders[i].thread, NULL, fn, &p->loaders[i]) != 0)
            return dc_error_set(err, "cannot start restore loader %d", i + 1);
        p->loaders[i].started = true;
    }
    return 0;
}

static void join_threads(parallel_t *p)
{
    for (int i = 0; i < p->count; i++) {
        if (p->loaders[i].started)
            pthread_join(p->loaders[i].thread, NULL);
        p->loaders[i].started = false;
    }
}

/* The archive is read once, in order; each chunk goes whole into a pool buffer for a loader. */
static int feed_chunks(parallel_t *p, dc_snapshot_reader_t *reader, dc_member_t *post,
                       dc_error_t *err)
{
    for (;;) {
        dc_member_t member;
        bool end = false;
        if (dc_snapshot_reader_next(reader, &member, &end, err) != 0)
            return -1;
        if (end)
            return dc_error_set(err, "the archive ends without %s", DC_MEMBER_POST_DATA);
        if (member.kind == DC_MEMBER_POST_DATA_KIND) {
            *post = member;
            return 0;
        }
        dc_chunk_t *c = dc_chunk_queue_acquire(&p->queue);
        if (c == NULL)
            return -1; /* a loader failed: its error is the one to report */
        c->kind = (int)member.kind;
        c->index = member.index;
        c->position = member.chunk_index;
        c->ref = member.chunk;
        for (;;) {
            char piece[65536];
            size_t got = 0;
            if (dc_snapshot_reader_read(reader, piece, sizeof(piece), &got, err) != 0) {
                dc_chunk_queue_release(&p->queue, c);
                return -1;
            }
            if (got == 0)
                break;
            dc_buf_append(&c->data, piece, got);
        }
        dc_chunk_queue_submit(&p->queue, c);
        if (dc_signal_check(err) != 0)
            return -1;
        dc_progress_report(p->progress);
    }
}

/* ---- post-data ---- */

typedef enum { STMT_SETTING, STMT_BUILD, STMT_FOREIGN_KEY, STMT_OTHER } stmt_kind_t;

/* Indexes and primary/unique/exclusion keys only need their table: they can be built side by
 * side. Foreign keys need those keys: they come after, side by side too. Told apart with
 * PostgreSQL's own parser. */
static stmt_kind_t classify(const char *sql)
{
    if (strncasecmp(sql, "SET ", 4) == 0 ||
        strncasecmp(sql, "SELECT pg_catalog.set_config", 28) == 0)
        return STMT_SETTING;
    PgQueryParseResult parsed = pg_query_parse(sql);
    stmt_kind_t kind = STMT_OTHER;
    if (parsed.error == NULL && parsed.parse_tree != NULL) {
        const char *tree = parsed.parse_tree;
        if (strstr(tree, "\"IndexStmt\"") != NULL && strstr(tree, "\"AlterTableStmt\"") == NULL)
            kind = STMT_BUILD;
        else if (strstr(tree, "\"AlterTableStmt\"") != NULL &&
                 strstr(tree, "\"AT_AddConstraint\"") != NULL) {
            if (strstr(tree, "\"CONSTR_FOREIGN\"") != NULL)
                kind = STMT_FOREIGN_KEY;
            else if (strstr(tree, "\"CONSTR_PRIMARY\"") != NULL ||
                     strstr(tree, "\"CONSTR_UNIQUE\"") != NULL ||
                     strstr(tree, "\"CONSTR_EXCLUSION\"") != NULL)
                kind = STMT_BUILD;
        }
    }
    pg_query_free_parse_result(parsed);
    return kind;
}

static void *post_worker(void *arg)
{
    loader_t *l = arg;
    parallel_t *p = l->p;
    dc_error_t err;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next_work++;
        bool stop = p->failed || i >= p->work_count;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (dc_pg_exec(l->conn, p->work[i], &err) != 0) {
            dc_error_prefix(&err, "%s: ", DC_MEMBER_POST_DATA);
            fail(p, &err);
            break;
        }
    }
    return NULL;
}

/* Runs a group of independent statements on all loader connections. */
static int run_in_parallel(parallel_t *p, char **work, size_t count, dc_error_t *err)
{
    if (count == 0)
        return 0;
    p->work = work;
    p->work_count = count;
    p->next_work = 0;
    if (start_threads(p, post_worker, err) != 0) {
        join_threads(p);
        return -1;
    }
    join_threads(p);
    if (p->failed) {
        *err = p->error;
        return -1;
    }
    return 0;
}

/* Each statement built in parallel carries the settings in effect before it in the script
 * (search_path, default_tablespace, ...), since it runs on another connection. */
static int run_post_data(parallel_t *p, PGconn *conn, const dc_script_t *script, dc_error_t *err)
{
    dc_buf_t settings = {0};
    dc_buf_append(&settings, "", 0);
    char **group = dc_calloc(script->count + 1, sizeof(char *));
    size_t n = 0;
    stmt_kind_t group_kind = STMT_OTHER;
    int rc = 0;
    for (size_t i = 0; i <= script->count && rc == 0; i++) {
        const dc_statement_t *st = i < script->count ? &script->statements[i] : NULL;
        stmt_kind_t kind = st ? classify(st->text) : STMT_OTHER;
        bool parallel = kind == STMT_BUILD || kind == STMT_FOREIGN_KEY;
        /* A group ends where a statement of another kind begins. */
        if (n > 0 && (!parallel || kind != group_kind)) {
            rc = run_in_parallel(p, group, n, err);
            for (size_t g = 0; g < n; g++)
                free(group[g]);
            n = 0;
        }
        if (st == NULL || rc != 0)
            break;
        if (kind == STMT_SETTING)
            dc_buf_appendf(&settings, "%s; ", st->text);
        if (parallel) {
            group[n++] = dc_sprintf("%s%s", settings.data, st->text);
            group_kind = kind;
        } else {
            rc = dc_restore_run_statements(conn, st, 1, DC_MEMBER_POST_DATA, err);
        }
    }
    for (size_t g = 0; g < n; g++)
        free(group[g]);
    free(group);
    dc_buf_free(&settings);
    return rc;
}

/* ---- the whole ---- */

int dc_restore_parallel(const dc_restore_opts_t *opts, const dc_manifest_t *m,
                        dc_snapshot_reader_t *reader, PGconn *conn, dc_progress_t *progress,
                        dc_restore_result_t *result, dc_error_t *err)
{
    parallel_t p = {0};
    p.opts = opts;
    p.manifest = m;
    p.progress = progress;
    p.count = opts->jobs;
    p.loaders = dc_calloc((size_t)p.count, sizeof(loader_t));
    pthread_mutex_init(&p.mu, NULL);
    dc_chunk_queue_init(&p.queue, (size_t)p.count + 2, CHUNK_BUFFER, 1);

    dc_member_t member;
    bool end = false;
    int rc = dc_snapshot_reader_next(reader, &member, &end, err);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = dc_restore_read_member(reader, &text, &len, err);
    if (rc == 0)
        rc = dc_restore_run_script(conn, text, len, m->restrict_key, member.name, err);
    free(text);
    if (rc == 0)
        rc = connect_loaders(&p, err);
    if (rc == 0)
        rc = start_threads(&p, loader_main, err);
    dc_member_t post = {0};
    if (rc == 0)
        rc = feed_chunks(&p, reader, &post, err);
    if (rc == 0)
        dc_chunk_queue_producer_done(&p.queue);
    else
        dc_chunk_queue_abort(&p.queue);
    join_threads(&p);
    if (p.failed) {
        *err = p.error;
        rc = -1;
    }
    for (int i = 0; i < p.count; i++) {
        result->rows += p.loaders[i].load.rows;
        result->raw_bytes += p.loaders[i].load.raw_bytes;
    }

    dc_script_t script = {0};
    if (rc == 0)
        rc = dc_restore_read_member(reader, &text, &len, err);
    if (rc == 0) {
        rc = dc_restore_split_script(text, len, m->restrict_key, post.name, &script, err);
        free(text);
    }
    if (rc == 0) {
        dc_member_t after;
        rc = dc_snapshot_reader_next(reader, &after, &end, err); /* post-data is the last */
        if (rc == 0 && !end)
            rc = dc_error_set(err, "member %s follows %s", after.name, DC_MEMBER_POST_DATA);
    }
    if (rc == 0)
        rc = dc_snapshot_reader_finish(reader, err);
    if (rc == 0)
        rc = run_post_data(&p, conn, &script, err);
    dc_restore_script_free(&script);

    for (int i = 0; i < p.count; i++) {
        if (p.loaders[i].conn != NULL)
            PQfinish(p.loaders[i].conn);
    }
    free(p.loaders);
    dc_chunk_queue_destroy(&p.queue);
    pthread_mutex_destroy(&p.mu);
    return rc;
}
