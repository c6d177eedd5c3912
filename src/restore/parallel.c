/* Parallel restore into an empty database (--jobs N):
 *  - pre-data on one connection;
 *  - the archive is read once, its chunks handed through one bounded queue to N loaders; a
 *    loader keeps its COPY open while the chunks it gets are of the same table (a COPY per
 *    chunk costs the server more), and all its COPYs in one transaction, committed when every
 *    chunk is in;
 *  - the post-data script is read at the end of the archive: each index and primary/unique key
 *    is built by whichever loader is free once every chunk of its table is committed, biggest
 *    tables first (builds on relations without rows of their own, partitioned parents, once
 *    every table is);
 *  - then foreign keys are checked side by side, and everything else runs in order.
 * Not atomic, and it says so. */
#include <jansson.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deployctl/chunk_queue.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "restore_intern.h"

#define CHUNK_BUFFER               (4u * 1024 * 1024 + 512 * 1024)
#define QUEUE_WAIT                 200 /* ms a loader waits for a chunk before it looks again */
#define MAX_TABLES_PER_TRANSACTION 32
#define NO_TABLE                   SIZE_MAX

typedef struct loader loader_t;

/* An index or key to build once its table is loaded. */
typedef struct build {
    char *sql;    /* with the settings in effect before it in the script */
    size_t table; /* manifest index, or NO_TABLE: ready at once */
    bool taken;
} build_t;

typedef struct parallel {
    const dc_restore_opts_t *opts;
    const dc_manifest_t *manifest;
    dc_progress_t *progress;
    loader_t *loaders;
    int count;
    dc_chunk_queue_t queue;
    size_t *committed;    /* per table: chunks whose COPY has ended, under mu */
    size_t tables_loaded; /* tables whose every chunk is committed, under mu */
    pthread_mutex_t mu;
    /* Pieces of one large object may share a 2 KiB page of pg_largeobject: written by two
     * loaders at once, both would insert it. One piece at a time, each committed. */
    pthread_mutex_t blob_mu;
    pthread_cond_t changed;
    bool failed;
    dc_error_t error;
    void *(*thread_fn)(void *); /* what the running threads do */
    int running;                /* threads not yet returned, under mu */
    build_t *builds;            /* published once the post-data script is read */
    size_t build_count;
    bool builds_published;
    /* independent statements shared by the loaders (foreign keys) */
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
    size_t pending;      /* chunks of load.copy_table in the open COPY */
    bool in_transaction; /* the loader's one transaction for its table chunks is open */
    size_t *uncommitted; /* per table: chunks loaded in that transaction */
    size_t tables_open;  /* tables with chunks in it (each holds a lock until commit) */
};

static void fail(parallel_t *p, const dc_error_t *err)
{
    pthread_mutex_lock(&p->mu);
    if (!p->failed) {
        p->failed = true;
        p->error = *err;
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    dc_chunk_queue_abort(&p->queue);
}

/* A build on a relation the manifest has no rows for (a partitioned parent: its key locks
 * every partition) waits until every table is loaded and committed, so it never queues behind,
 * or in front of, a loader's transaction. */
static bool table_loaded(const parallel_t *p, size_t table)
{
    if (table == NO_TABLE)
        return p->tables_loaded == p->manifest->table_count;
    return p->committed[table] == p->manifest->tables[table].chunk_count;
}

/* ---- loaders ---- */

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

static int load_chunk(loader_t *l, dc_chunk_t *c, dc_error_t *err)
{
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
    return dc_restore_load_member(&l->load, source, &member, err);
}

/* Ends the loader's open COPY; its chunks count as loaded once the transaction commits. */
static int end_copy(loader_t *l, dc_error_t *err)
{
    if (!l->load.copy_open)
        return 0;
    size_t table = l->load.copy_table;
    if (dc_restore_load_finish(&l->load, err) != 0)
        return -1;
    l->tables_open += l->uncommitted[table] == 0;
    l->uncommitted[table] += l->pending;
    l->pending = 0;
    return 0;
}

/* Commits the loader's transaction and publishes its chunks as loaded (builds wait for that).
 * A loader keeps one transaction for all its table chunks: a commit per table run would let
 * autovacuum start on a table still being loaded, and leave its rows with many transaction ids
 * for the index builds to look up. */
static int commit_loaded(loader_t *l, dc_error_t *err)
{
    parallel_t *p = l->p;
    if (end_copy(l, err) != 0)
        return -1;
    if (!l->in_transaction)
        return 0;
    if (dc_pg_commit(l->conn, err) != 0)
        return -1;
    l->in_transaction = false;
    l->tables_open = 0;
    size_t completed = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t t = 0; t < p->manifest->table_count; t++) {
        if (l->uncommitted[t] == 0)
            continue;
        p->committed[t] += l->uncommitted[t];
        l->uncommitted[t] = 0;
        completed += p->committed[t] == p->manifest->tables[t].chunk_count;
    }
    p->tables_loaded += completed;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&p->progress->items_done, (uint32_t)completed);
    return 0;
}

/* Loads a chunk, keeping the COPY open for the next chunk of the same table. */
static int take_chunk(loader_t *l, dc_chunk_t *c, dc_error_t *err)
{
    if (c->kind == (int)DC_MEMBER_BLOB_CHUNK) {
        /* Pieces of one large object may share a pg_largeobject page: each is written and
         * committed alone (load.autocommit), one at a time, so no loader waits on another's
         * uncommitted page. */
        if (commit_loaded(l, err) != 0)
            return -1;
        pthread_mutex_lock(&l->p->blob_mu);
        int rc = load_chunk(l, c, err);
        pthread_mutex_unlock(&l->p->blob_mu);
        return rc;
    }
    bool same_table = l->load.copy_open && l->load.copy_table == c->index;
    if (!same_table && end_copy(l, err) != 0)
        return -1;
    /* Each table touched keeps a lock until commit: a schema of thousands of small tables
     * would exhaust the server's lock table (max_locks_per_transaction). */
    if (!same_table && l->tables_open >= MAX_TABLES_PER_TRANSACTION && commit_loaded(l, err) != 0)
        return -1;
    if (!l->in_transaction) {
        if (dc_pg_exec(l->conn, "BEGIN", err) != 0)
            return -1;
        l->in_transaction = true;
    }
    if (load_chunk(l, c, err) != 0)
        return -1;
    l->pending++;
    return 0;
}

static uint64_t build_weight(const parallel_t *p, const build_t *b)
{
    return b->table == NO_TABLE ? 0 : p->manifest->tables[b->table].raw_bytes;
}

/* The next build whose table is loaded, of the biggest table first (the longest builds start
 * first, the short ones fill in: no long build left alone at the end); NULL when none is left.
 * Waits while some are not ready yet. */
static build_t *next_build(parallel_t *p)
{
    build_t *found = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        bool pending = !p->builds_published;
        for (size_t i = 0; p->builds_published && i < p->build_count; i++) {
            build_t *b = &p->builds[i];
            if (b->taken)
                continue;
            if (!table_loaded(p, b->table))
                pending = true;
            else if (found == NULL || build_weight(p, b) > build_weight(p, found))
                found = b;
        }
        if (found != NULL)
            found->taken = true;
        if (found || !pending || p->failed)
            break;
        pthread_cond_wait(&p->changed, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return p->failed ? NULL : found;
}

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    parallel_t *p = l->p;
    dc_error_t err;
    /* Chunks as they come, in one transaction committed when they are all in... */
    for (;;) {
        dc_chunk_t *c = NULL;
        dc_queue_status_t st = dc_chunk_queue_next(&p->queue, QUEUE_WAIT, &c);
        int rc = 0;
        if (st == DC_QUEUE_DONE)
            rc = commit_loaded(l, &err);
        else if (st == DC_QUEUE_CHUNK) {
            rc = take_chunk(l, c, &err);
            dc_chunk_queue_release(&p->queue, c);
        }
        if (rc != 0) {
            fail(p, &err);
            return NULL;
        }
        if (st == DC_QUEUE_DONE || st == DC_QUEUE_ABORTED)
            break;
    }
    /* ...then any index or key whose table is loaded. */
    build_t *b;
    while ((b = next_build(p)) != NULL) {
        if (dc_pg_exec(l->conn, b->sql, &err) != 0) {
            dc_error_prefix(&err, "%s: ", DC_MEMBER_POST_DATA);
            fail(p, &err);
            break;
        }
    }
    return NULL;
}

static int connect_loaders(parallel_t *p, dc_error_t *err)
{
    const char *encoding = p->manifest->encoding ? p->manifest->encoding : "UTF8";
    /* synchronous_commit off: a crash leaves an incomplete database whatever is flushed (a
     * parallel restore is not atomic anyway). No parallel workers for index builds: the loaders
     * already build side by side. */
    dc_buf_t setup = {0};
    dc_buf_appendf(&setup,
                   DC_RESTORE_SESSION_SETTINGS
                   "; SET synchronous_commit = off; SET max_parallel_maintenance_workers = 0;"
                   " SET client_encoding = '%s';"
                   " SELECT pg_catalog.set_config('search_path', '', false)",
                   encoding);
    if (p->opts->maintenance_work_mem != NULL)
        dc_buf_appendf(&setup, "; SET maintenance_work_mem = '%s'", p->opts->maintenance_work_mem);
    int rc = 0;
    for (int i = 0; i < p->count && rc == 0; i++) {
        loader_t *l = &p->loaders[i];
        char purpose[32];
        l->p = p;
        l->number = i + 1;
        l->uncommitted = dc_calloc(p->manifest->table_count + 1, sizeof(size_t));
        snprintf(purpose, sizeof(purpose), "restore loader %d", i + 1);
        rc = dc_pg_connect(p->opts->target_url, purpose, &l->conn, err);
        if (rc == 0)
            rc = dc_pg_exec(l->conn, setup.data, err);
        l->load = (dc_restore_load_t){.conn = l->conn,
                                      .manifest = p->manifest,
                                      .freeze = false,
                                      .autocommit = true,
                                      .progress = p->progress};
    }
    dc_buf_free(&setup);
    return rc;
}

static void *thread_entry(void *arg)
{
    loader_t *l = arg;
    parallel_t *p = l->p;
    p->thread_fn(l);
    pthread_mutex_lock(&p->mu);
    p->running--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int start_threads(parallel_t *p, void *(*fn)(void *), dc_error_t *err)
{
    p->thread_fn = fn;
    for (int i = 0; i < p->count; i++) {
        pthread_mutex_lock(&p->mu);
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (pthread_create(&p->loaders[i].thread, NULL, thread_entry, &p->loaders[i]) != 0) {
            pthread_mutex_lock(&p->mu);
            p->running--;
            pthread_mutex_unlock(&p->mu);
            return dc_error_set(err, "cannot start restore loader %d", i + 1);
        }
        p->loaders[i].started = true;
    }
    return 0;
}

/* Asks the server to stop what every loader is running (an index build can take minutes). */
static void cancel_loaders(parallel_t *p)
{
    for (int i = 0; i < p->count; i++) {
        if (p->loaders[i].conn == NULL)
            continue;
        PGcancel *cancel = PQgetCancel(p->loaders[i].conn);
        char ignored[256];
        if (cancel != NULL)
            PQcancel(cancel, ignored, sizeof(ignored));
        PQfreeCancel(cancel);
    }
}

/* Waits for the threads; a stop asked for meanwhile fails the restore and cancels their
 * statements rather than waiting for them to end. */
static void join_threads(parallel_t *p)
{
    bool cancelled = false;
    pthread_mutex_lock(&p->mu);
    while (p->running > 0) {
        dc_error_t err;
        if (!cancelled && dc_signal_check(&err) != 0) {
            cancelled = true;
            pthread_mutex_unlock(&p->mu);
            fail(p, &err);
            cancel_loaders(p);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->changed, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->count; i++) {
        if (p->loaders[i].started)
            pthread_join(p->loaders[i].thread, NULL);
        p->loaders[i].started = false;
    }
}

/* ---- reading the archive ---- */

/* Each chunk goes whole into a pool buffer, for whichever loader is free. */
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
        dc_chunk_queue_t *q = &p->queue;
        dc_chunk_t *c = dc_chunk_queue_acquire(q);
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
                dc_chunk_queue_release(q, c);
                return -1;
            }
            if (got == 0)
                break;
            dc_buf_append(&c->data, piece, got);
        }
        dc_chunk_queue_submit(q, c);
        if (dc_signal_check(err) != 0)
            return -1;
        dc_progress_report(p->progress);
    }
}

/* ---- post-data ---- */

typedef enum { STMT_SETTING, STMT_BUILD, STMT_FOREIGN_KEY, STMT_OTHER } stmt_kind_t;

/* The manifest table a statement's "relation" names, or NO_TABLE. */
static size_t relation_table(const parallel_t *p, json_t *relation)
{
    const char *schema = json_string_value(json_object_get(relation, "schemaname"));
    const char *name = json_string_value(json_object_get(relation, "relname"));
    for (size_t i = 0; schema && name && i < p->manifest->table_count; i++) {
        const dc_manifest_table_t *t = &p->manifest->tables[i];
        if (strcmp(t->schema, schema) == 0 && strcmp(t->name, name) == 0)
            return i;
    }
    return NO_TABLE;
}

/* Indexes and primary/unique/exclusion keys need only their table: they are built as soon as it
 * is loaded. Foreign keys need those keys: they come after, side by side. Told apart with
 * PostgreSQL's own parser. */
static stmt_kind_t classify(const parallel_t *p, const char *sql, size_t *table)
{
    *table = NO_TABLE;
    if (strncasecmp(sql, "SET ", 4) == 0 ||
        strncasecmp(sql, "SELECT pg_catalog.set_config", 28) == 0)
        return STMT_SETTING;
    PgQueryParseResult parsed = pg_query_parse(sql);
    stmt_kind_t kind = STMT_OTHER;
    json_t *root = parsed.error ? NULL : json_loads(parsed.parse_tree, 0, NULL);
    json_t *stmt = json_object_get(json_array_get(json_object_get(root, "stmts"), 0), "stmt");
    json_t *index = json_object_get(stmt, "IndexStmt");
    json_t *alter = json_object_get(stmt, "AlterTableStmt");
    if (index != NULL) {
        kind = STMT_BUILD;
        *table = relation_table(p, json_object_get(index, "relation"));
    } else if (alter != NULL && json_array_size(json_object_get(alter, "cmds")) == 1) {
        json_t *cmd =
            json_object_get(json_array_get(json_object_get(alter, "cmds"), 0), "AlterTableCmd");
        const char *subtype = json_string_value(json_object_get(cmd, "subtype"));
        json_t *constraint = json_object_get(json_object_get(cmd, "def"), "Constraint");
        const char *contype = json_string_value(json_object_get(constraint, "contype"));
        if (subtype && strcmp(subtype, "AT_AddConstraint") == 0 && contype != NULL) {
            if (strcmp(contype, "CONSTR_FOREIGN") == 0) {
                kind = STMT_FOREIGN_KEY;
            } else if (strcmp(contype, "CONSTR_PRIMARY") == 0 ||
                       strcmp(contype, "CONSTR_UNIQUE") == 0 ||
                       strcmp(contype, "CONSTR_EXCLUSION") == 0) {
                kind = STMT_BUILD;
                *table = relation_table(p, json_object_get(alter, "relation"));
            }
        }
    }
    json_decref(root);
    pg_query_free_parse_result(parsed);
    return kind;
}

/* Splits post-data into the builds (published to the loaders, each carrying the settings in
 * effect before it in the script, since it runs on another connection) and the rest. */
static void publish_builds(parallel_t *p, const dc_script_t *script, stmt_kind_t *kinds)
{
    dc_buf_t settings = {0};
    dc_buf_append(&settings, "", 0);
    build_t *builds = dc_calloc(script->count + 1, sizeof(build_t));
    size_t n = 0;
    for (size_t i = 0; i < script->count; i++) {
        size_t table;
        const char *sql = script->statements[i].text;
        kinds[i] = classify(p, sql, &table);
        if (kinds[i] == STMT_SETTING)
            dc_buf_appendf(&settings, "%s; ", sql);
        else if (kinds[i] == STMT_BUILD)
            builds[n++] = (build_t){dc_sprintf("%s%s", settings.data, sql), table, false};
    }
    dc_buf_free(&settings);
    dc_log_debug("post-data: %zu index and key builds, started as their tables are loaded", n);
    pthread_mutex_lock(&p->mu);
    p->builds = builds;
    p->build_count = n;
    p->builds_published = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

static void *foreign_key_worker(void *arg)
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

static int run_foreign_keys(parallel_t *p, char **work, size_t count, dc_error_t *err)
{
    if (count == 0)
        return 0;
    dc_log_debug("post-data: %zu foreign key checks side by side", count);
    p->work = work;
    p->work_count = count;
    p->next_work = 0;
    int rc = start_threads(p, foreign_key_worker, err);
    join_threads(p);
    if (rc == 0 && p->failed) {
        *err = p->error;
        rc = -1;
    }
    return rc;
}

/* After the builds: the rest of post-data in order, runs of foreign keys side by side. */
static int run_rest(parallel_t *p, PGconn *conn, const dc_script_t *script,
                    const stmt_kind_t *kinds, dc_error_t *err)
{
    dc_buf_t settings = {0};
    dc_buf_append(&settings, "", 0);
    char **group = dc_calloc(script->count + 1, sizeof(char *));
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i <= script->count && rc == 0; i++) {
        bool fk = i < script->count && kinds[i] == STMT_FOREIGN_KEY;
        if (n > 0 && !fk) {
            rc = run_foreign_keys(p, group, n, err);
            for (size_t g = 0; g < n; g++)
                free(group[g]);
            n = 0;
        }
        if (i == script->count || rc != 0)
            break;
        const dc_statement_t *st = &script->statements[i];
        if (kinds[i] == STMT_SETTING)
            dc_buf_appendf(&settings, "%s; ", st->text);
        if (fk)
            group[n++] = dc_sprintf("%s%s", settings.data, st->text);
        else if (kinds[i] != STMT_BUILD)
            rc = dc_restore_run_statements(conn, st, 1, DC_MEMBER_POST_DATA, err);
    }
    for (size_t g = 0; g < n; g++)
        free(group[g]);
    free(group);
    dc_buf_free(&settings);
    return rc;
}

/* ---- the whole ---- */

static int run_pre_data(dc_snapshot_reader_t *reader, PGconn *conn, const dc_manifest_t *m,
                        dc_error_t *err)
{
    dc_member_t member;
    bool end = false;
    char *text = NULL;
    size_t len = 0;
    if (dc_snapshot_reader_next(reader, &member, &end, err) != 0 ||
        dc_restore_read_member(reader, &text, &len, err) != 0)
        return -1;
    int rc = dc_restore_run_script(conn, text, len, m->restrict_key, member.name, err);
    free(text);
    return rc;
}

/* Reads post-data (the last member) and checks the archive ends there, whole. */
static int read_post_data(dc_snapshot_reader_t *reader, const dc_member_t *post,
                          const dc_manifest_t *m, dc_script_t *script, dc_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (dc_restore_read_member(reader, &text, &len, err) != 0)
        return -1;
    int rc = dc_restore_split_script(text, len, m->restrict_key, post->name, script, err);
    free(text);
    dc_member_t after;
    bool end = false;
    if (rc == 0)
        rc = dc_snapshot_reader_next(reader, &after, &end, err);
    if (rc == 0 && !end)
        rc = dc_error_set(err, "member %s follows %s", after.name, DC_MEMBER_POST_DATA);
    if (rc == 0)
        rc = dc_snapshot_reader_finish(reader, err);
    return rc;
}

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
    p.committed = dc_calloc(m->table_count + 1, sizeof(size_t));
    for (size_t t = 0; t < m->table_count; t++)
        p.tables_loaded += m->tables[t].chunk_count == 0; /* empty: loaded already */
    pthread_mutex_init(&p.mu, NULL);
    pthread_mutex_init(&p.blob_mu, NULL);
    pthread_cond_init(&p.changed, NULL);
    dc_chunk_queue_init(&p.queue, (size_t)p.count + 2, CHUNK_BUFFER, 1);

    dc_script_t script = {0};
    stmt_kind_t *kinds = NULL;
    int rc = run_pre_data(reader, conn, m, err);
    if (rc == 0)
        rc = connect_loaders(&p, err);
    if (rc == 0)
        rc = start_threads(&p, loader_main, err);
    dc_member_t post = {0};
    if (rc == 0)
        rc = feed_chunks(&p, reader, &post, err);
    dc_chunk_queue_producer_done(&p.queue);
    if (rc == 0)
        rc = read_post_data(reader, &post, m, &script, err);
    if (rc == 0) {
        kinds = dc_calloc(script.count + 1, sizeof(stmt_kind_t));
        publish_builds(&p, &script, kinds);
    } else {
        dc_error_t mine = *err;
        fail(&p, &mine);
    }
    join_threads(&p);
    if (p.failed) {
        *err = p.error;
        rc = -1;
    }
    for (int i = 0; i < p.count; i++) {
        result->rows += p.loaders[i].load.rows;
        result->raw_bytes += p.loaders[i].load.raw_bytes;
    }
    if (rc == 0)
        rc = run_rest(&p, conn, &script, kinds, err);

    dc_restore_script_free(&script);
    free(kinds);
    for (size_t i = 0; i < p.build_count; i++)
        free(p.builds[i].sql);
    free(p.builds);
    for (int i = 0; i < p.count; i++) {
        if (p.loaders[i].conn != NULL)
            PQfinish(p.loaders[i].conn);
        free(p.loaders[i].uncommitted);
    }
    dc_chunk_queue_destroy(&p.queue);
    free(p.loaders);
    free(p.committed);
    pthread_cond_destroy(&p.changed);
    pthread_mutex_destroy(&p.mu);
    pthread_mutex_destroy(&p.blob_mu);
    return rc;
}
