/* Parallel restore into an empty database (--jobs N), scheduled like pg_restore -j but with
 * every connection kept busy:
 *  - the archive is indexed once (its headers only), so each loader reads the members it needs
 *    on its own, wherever they are: no loader waits behind another's table in the archive;
 *  - pre-data on one connection;
 *  - each loader takes the biggest table nobody has started, and loads its chunks from the
 *    front in one transaction; a loader with nothing else to do takes chunks from the back of
 *    the table with the most left (the biggest table is then never loaded by one connection
 *    while the other waits);
 *  - an index or primary/unique key is built by whichever loader is free once its table is
 *    committed, biggest tables first, and a foreign key between two tables is checked once both
 *    tables' builds are done, beside the other builds;
 *  - then everything else in post-data runs in order (foreign keys that involve a partitioned
 *    table side by side, as their keys may need that order).
 * Not atomic, and it says so. */
#include <jansson.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "restore_intern.h"

#define NO_TABLE SIZE_MAX

typedef struct loader loader_t;

typedef enum { STMT_SETTING, STMT_BUILD, STMT_FOREIGN_KEY, STMT_OTHER } stmt_kind_t;

/* A post-data statement the loaders run: an index or key build, or a foreign key check. */
typedef struct post_task {
    stmt_kind_t kind;
    char *sql;           /* with the settings in effect before it in the script */
    size_t settings_len; /* where the statement itself starts in sql */
    size_t table;        /* manifest index of the table it is on, or NO_TABLE */
    size_t ref;          /* foreign keys: the referenced table */
    bool taken;
} post_task_t;

typedef struct table_state {
    size_t front, back; /* chunks [front, back) are not taken yet */
    size_t committed;   /* chunks whose transaction has committed */
    bool started;       /* a loader owns it */
    size_t builds_left; /* builds on it not yet done */
    bool fk_running;    /* a foreign key check on it or to it runs */
    bool frozen;        /* loaded by its owner alone, TRUNCATE + COPY FREEZE */
} table_state_t;

typedef struct parallel {
    const dc_restore_opts_t *opts;
    const dc_manifest_t *manifest;
    const dc_snapshot_index_t *index;
    dc_progress_t *progress;
    loader_t *loaders;
    int count;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t changed;
    table_state_t *tables;
    size_t *by_size;      /* indexes of the tables with rows, biggest first */
    size_t to_load;       /* how many */
    size_t next_table;    /* in by_size */
    size_t tables_loaded; /* tables whose every chunk is committed */
    size_t fks_left;      /* foreign key tasks not done yet */
    size_t next_blob, next_blob_piece;
    post_task_t *tasks;
    size_t task_count;
    bool failed;
    dc_error_t error;
    void *(*thread_fn)(void *); /* what the running threads do */
    int running;                /* threads not yet returned */
    /* Pieces of one large object may share a 2 KiB page of pg_largeobject: written by two
     * loaders at once, both would insert it. One piece at a time, each committed. */
    pthread_mutex_t blob_mu;
    /* independent statements shared by the loaders (foreign keys run in order) */
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
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

/* ---- what a free loader does next (all under mu) ---- */

typedef enum { TASK_NONE, TASK_LOAD, TASK_BLOB, TASK_POST } task_kind_t;

typedef struct task {
    task_kind_t kind;
    size_t table;   /* TASK_LOAD */
    bool from_back; /* TASK_LOAD: taking chunks from another loader's table */
    size_t blob, piece;
    post_task_t *post;
} task_t;

static bool table_loaded(const parallel_t *p, size_t table)
{
    if (table == NO_TABLE)
        return p->tables_loaded == p->manifest->table_count;
    return p->tables[table].committed == p->manifest->tables[table].chunk_count;
}

/* A build needs its table loaded. A foreign key needs both tables loaded and built (their keys
 * exist, and no build of theirs waits behind its lock), and no other foreign key check on
 * either: each takes SHARE ROW EXCLUSIVE on both tables, so two of them in opposite directions
 * would deadlock. A build on a relation the manifest has no rows for (a partitioned parent,
 * whose build may lock every partition) waits for every table and every foreign key task. */
static bool post_ready(const parallel_t *p, const post_task_t *t)
{
    if (t->kind == STMT_BUILD && t->table == NO_TABLE) /* may lock many tables: alone */
        return table_loaded(p, NO_TABLE) && p->fks_left == 0;
    if (t->kind == STMT_BUILD)
        return table_loaded(p, t->table);
    const table_state_t *a = &p->tables[t->table], *b = &p->tables[t->ref];
    return table_loaded(p, t->table) && table_loaded(p, t->ref) && a->builds_left == 0 &&
           b->builds_left == 0 && !a->fk_running && !b->fk_running;
}

static uint64_t post_weight(const parallel_t *p, const post_task_t *t)
{
    return t->table == NO_TABLE ? 0 : p->manifest->tables[t->table].raw_bytes;
}

static void set_fk_running(parallel_t *p, const post_task_t *t, bool running)
{
    if (t->kind == STMT_FOREIGN_KEY)
        p->tables[t->table].fk_running = p->tables[t->ref].fk_running = running;
}

/* The ready post-data task of the biggest table; *pending when some are not ready yet. */
static post_task_t *ready_post_task(parallel_t *p, bool *pending)
{
    post_task_t *found = NULL;
    for (size_t i = 0; i < p->task_count; i++) {
        post_task_t *t = &p->tasks[i];
        if (t->taken)
            continue;
        if (!post_ready(p, t))
            *pending = true;
        else if (found == NULL || post_weight(p, t) > post_weight(p, found))
            found = t;
    }
    return found;
}

/* The started table with the most chunks nobody has taken, if two or more are left. */
static bool table_to_help(const parallel_t *p, size_t *table)
{
    size_t best = 0;
    for (size_t i = 0; i < p->manifest->table_count; i++) {
        const table_state_t *s = &p->tables[i];
        if (s->started && !s->frozen && s->back - s->front > best) {
            best = s->back - s->front;
            *table = i;
        }
    }
    return best >= 2;
}

static bool next_blob_piece(parallel_t *p, task_t *task)
{
    const dc_manifest_t *m = p->manifest;
    while (p->next_blob < m->large_object_count &&
           p->next_blob_piece >= m->large_objects[p->next_blob].chunk_count) {
        p->next_blob++;
        p->next_blob_piece = 0;
    }
    if (p->next_blob >= m->large_object_count)
        return false;
    *task = (task_t){.kind = TASK_BLOB, .blob = p->next_blob, .piece = p->next_blob_piece++};
    return true;
}

/* Builds first (they are what the end waits for), then a new table, then large objects, then
 * help with a table another loader is on; waits while there is nothing to do yet. */
static void next_task(parallel_t *p, task_t *task)
{
    const dc_manifest_t *m = p->manifest;
    *task = (task_t){.kind = TASK_NONE};
    pthread_mutex_lock(&p->mu);
    while (!p->failed) {
        bool pending = false;
        post_task_t *post = ready_post_task(p, &pending);
        size_t table;
        if (post != NULL) {
            post->taken = true;
            set_fk_running(p, post, true);
            *task = (task_t){.kind = TASK_POST, .post = post};
        } else if (p->next_table < p->to_load) {
            table = p->by_size[p->next_table++];
            p->tables[table].started = true;
            *task = (task_t){.kind = TASK_LOAD, .table = table};
        } else if (next_blob_piece(p, task)) {
            /* set */
        } else if (table_to_help(p, &table)) {
            *task = (task_t){.kind = TASK_LOAD, .table = table, .from_back = true};
        } else if (pending || p->tables_loaded < m->table_count) {
            pthread_cond_wait(&p->changed, &p->mu);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- running a task ---- */

/* Loads one member, read on its own from the archive. */
static int load_member(loader_t *l, const char *name, dc_error_t *err)
{
    dc_snapshot_reader_t *reader;
    dc_member_t member;
    if (dc_snapshot_reader_open_member(l->p->index, name, &reader, &member, err) != 0)
        return -1;
    int rc = dc_restore_load_member(&l->load, dc_restore_reader_source(reader), &member, err);
    dc_snapshot_reader_close(reader);
    return rc;
}

static bool restore_failed(parallel_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool failed = p->failed;
    pthread_mutex_unlock(&p->mu);
    return failed;
}

/* The next chunk of a table to load, from its front or its back; false when none is left. */
static bool take_chunk(parallel_t *p, size_t table, bool from_back, size_t *chunk)
{
    pthread_mutex_lock(&p->mu);
    table_state_t *s = &p->tables[table];
    bool any = s->front < s->back && !p->failed;
    if (any)
        *chunk = from_back ? --s->back : s->front++;
    pthread_mutex_unlock(&p->mu);
    return any;
}

/* Emptying the (new, empty) table in the loading transaction lets COPY FREEZE write its rows
 * frozen and all-visible: no hint bits for the index builds to set, nothing for autovacuum to
 * do after the commit. A role that may load a table but not truncate it (not its owner) loads it
 * unfrozen: *freeze says which. */
static int truncate_for_freeze(loader_t *l, const dc_manifest_table_t *t, bool *freeze,
                               dc_error_t *err)
{
    char *schema = dc_pg_quote_ident(l->conn, t->schema);
    char *name = dc_pg_quote_ident(l->conn, t->name);
    char *sql = dc_sprintf("SAVEPOINT dc_freeze; TRUNCATE ONLY %s.%s; RELEASE SAVEPOINT dc_freeze",
                           schema, name);
    dc_error_t refused;
    *freeze = dc_pg_exec(l->conn, sql, &refused) == 0;
    int rc = 0;
    if (!*freeze) {
        dc_log_debug("loader %d: %s.%s loads unfrozen: %s", l->number, t->schema, t->name,
                     refused.message);
        rc = dc_pg_exec(l->conn, "ROLLBACK TO SAVEPOINT dc_freeze; RELEASE SAVEPOINT dc_freeze",
                        err);
    }
    free(sql);
    free(schema);
    free(name);
    return rc;
}

/* Loads chunks of a table in one transaction (one COPY) until none is left, then commits and
 * publishes them: builds wait for every chunk of their table to be committed. */
static int load_table(loader_t *l, size_t table, bool from_back, dc_error_t *err)
{
    parallel_t *p = l->p;
    const dc_manifest_table_t *t = &p->manifest->tables[table];
    size_t chunk, loaded = 0;
    double started = dc_now_seconds();
    if (dc_pg_exec(l->conn, "BEGIN", err) != 0)
        return -1;
    bool freeze = p->tables[table].frozen;
    if (freeze && truncate_for_freeze(l, t, &freeze, err) != 0)
        return -1;
    l->load.freeze = freeze;
    while (take_chunk(p, table, from_back, &chunk)) {
        if (load_member(l, t->chunks[chunk].member, err) != 0)
            return -1;
        loaded++;
    }
    if (restore_failed(p)) /* stop here: the first error is the one reported */
        return dc_error_set(err, "loader %d stopped: another loader failed", l->number);
    if (dc_restore_load_finish(&l->load, err) != 0 || dc_pg_commit(l->conn, err) != 0)
        return -1;
    dc_log_debug("loader %d: %zu chunks of %s.%s%s%s in %.1f s", l->number, loaded, t->schema,
                 t->name, from_back ? " (helping, from the back)" : "", freeze ? " (frozen)" : "",
                 dc_now_seconds() - started);
    pthread_mutex_lock(&p->mu);
    table_state_t *s = &p->tables[table];
    s->committed += loaded;
    bool complete = loaded > 0 && s->committed == t->chunk_count;
    p->tables_loaded += complete;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    if (complete)
        atomic_fetch_add(&p->progress->items_done, 1);
    return 0;
}

static int load_blob_piece(loader_t *l, size_t blob, size_t piece, dc_error_t *err)
{
    const dc_manifest_chunk_t *k = &l->p->manifest->large_objects[blob].chunks[piece];
    pthread_mutex_lock(&l->p->blob_mu);
    int rc = load_member(l, k->member, err); /* autocommit: each piece commits on its own */
    pthread_mutex_unlock(&l->p->blob_mu);
    return rc;
}

static int run_post_task(loader_t *l, post_task_t *t, dc_error_t *err)
{
    parallel_t *p = l->p;
    double started = dc_now_seconds();
    if (dc_pg_exec(l->conn, t->sql, err) != 0) {
        dc_error_prefix(err, "%s: ", DC_MEMBER_POST_DATA);
        return -1;
    }
    dc_log_debug("loader %d: %.70s in %.1f s", l->number, t->sql + t->settings_len,
                 dc_now_seconds() - started);
    pthread_mutex_lock(&p->mu);
    if (t->kind == STMT_BUILD && t->table != NO_TABLE)
        p->tables[t->table].builds_left--;
    set_fk_running(p, t, false);
    p->fks_left -= t->kind == STMT_FOREIGN_KEY;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void *loader_main(void *arg)
{
    loader_t *l = arg;
    parallel_t *p = l->p;
    for (;;) {
        task_t task;
        dc_error_t err;
        int rc = 0;
        next_task(p, &task);
        if (task.kind == TASK_NONE)
            break;
        if (task.kind == TASK_LOAD)
            rc = load_table(l, task.table, task.from_back, &err);
        else if (task.kind == TASK_BLOB)
            rc = load_blob_piece(l, task.blob, task.piece, &err);
        else
            rc = run_post_task(l, task.post, &err);
        if (rc != 0) {
            fail(p, &err);
            break;
        }
    }
    return NULL;
}

/* ---- the loaders' threads and connections ---- */

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

/* Waits for the threads, reporting progress; a stop asked for meanwhile fails the restore and
 * cancels their statements rather than waiting for them to end. */
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
        pthread_mutex_unlock(&p->mu);
        dc_progress_report(p->progress);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->count; i++) {
        if (p->loaders[i].started)
            pthread_join(p->loaders[i].thread, NULL);
        p->loaders[i].started = false;
    }
}

/* ---- post-data ---- */

/* The manifest table a "relation" (a RangeVar) names, or NO_TABLE. */
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
 * is loaded. Foreign keys need those keys: they come after. Told apart with PostgreSQL's own
 * parser. */
static stmt_kind_t classify(const parallel_t *p, const char *sql, size_t *table, size_t *ref)
{
    *table = *ref = NO_TABLE;
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
        *table = relation_table(p, json_object_get(alter, "relation"));
        if (subtype && strcmp(subtype, "AT_AddConstraint") == 0 && contype != NULL) {
            if (strcmp(contype, "CONSTR_FOREIGN") == 0) {
                kind = STMT_FOREIGN_KEY;
                *ref = relation_table(p, json_object_get(constraint, "pktable"));
            } else if (strcmp(contype, "CONSTR_PRIMARY") == 0 ||
                       strcmp(contype, "CONSTR_UNIQUE") == 0 ||
                       strcmp(contype, "CONSTR_EXCLUSION") == 0) {
                kind = STMT_BUILD;
            }
        }
    }
    json_decref(root);
    pg_query_free_parse_result(parsed);
    return kind;
}

/* Splits post-data into the tasks of the loaders (builds, and foreign keys between two tables
 * of the manifest), each carrying the settings in effect before it in the script since it runs
 * on another connection, and the rest. kinds[i] says which statement went where: a foreign
 * key left as STMT_FOREIGN_KEY runs after the loaders, in order. */
static void plan_post_data(parallel_t *p, const dc_script_t *script, stmt_kind_t *kinds,
                           bool *as_task)
{
    dc_buf_t settings = {0};
    dc_buf_append(&settings, "", 0);
    p->tasks = dc_calloc(script->count + 1, sizeof(post_task_t));
    for (size_t i = 0; i < script->count; i++) {
        size_t table, ref;
        const char *sql = script->statements[i].text;
        kinds[i] = classify(p, sql, &table, &ref);
        if (kinds[i] == STMT_SETTING)
            dc_buf_appendf(&settings, "%s; ", sql);
        as_task[i] = kinds[i] == STMT_BUILD ||
                     (kinds[i] == STMT_FOREIGN_KEY && table != NO_TABLE && ref != NO_TABLE);
        if (!as_task[i])
            continue;
        p->tasks[p->task_count++] = (post_task_t){.kind = kinds[i],
                                                  .sql = dc_sprintf("%s%s", settings.data, sql),
                                                  .settings_len = settings.len,
                                                  .table = table,
                                                  .ref = ref};
        if (kinds[i] == STMT_BUILD && table != NO_TABLE)
            p->tables[table].builds_left++;
        p->fks_left += kinds[i] == STMT_FOREIGN_KEY;
    }
    dc_buf_free(&settings);
    dc_log_debug("post-data: %zu index, key and foreign key statements for the loaders",
                 p->task_count);
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

/* After the loaders: the rest of post-data in order, runs of foreign keys side by side. */
static int run_rest(parallel_t *p, PGconn *conn, const dc_script_t *script,
                    const stmt_kind_t *kinds, const bool *as_task, dc_error_t *err)
{
    dc_buf_t settings = {0};
    dc_buf_append(&settings, "", 0);
    char **group = dc_calloc(script->count + 1, sizeof(char *));
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i <= script->count && rc == 0; i++) {
        bool fk = i < script->count && kinds[i] == STMT_FOREIGN_KEY && !as_task[i];
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
        else if (!as_task[i])
            rc = dc_restore_run_statements(conn, st, 1, DC_MEMBER_POST_DATA, err);
    }
    for (size_t g = 0; g < n; g++)
        free(group[g]);
    free(group);
    dc_buf_free(&settings);
    return rc;
}

/* ---- the whole ---- */

/* Reads a schema member whole (schema scripts are small). */
static int read_schema(const dc_snapshot_index_t *ix, const char *name, char **text, size_t *len,
                       dc_error_t *err)
{
    dc_snapshot_reader_t *reader;
    dc_member_t member;
    if (dc_snapshot_reader_open_member(ix, name, &reader, &member, err) != 0)
        return -1;
    int rc = dc_restore_read_member(reader, text, len, err);
    dc_snapshot_reader_close(reader);
    return rc;
}

static const char *schema_member(const dc_manifest_t *m, const char *section)
{
    for (size_t i = 0; i < m->schema_count; i++) {
        if (strcmp(m->schema[i].section, section) == 0)
            return m->schema[i].member;
    }
    return section;
}

static int run_pre_data(parallel_t *p, PGconn *conn, dc_error_t *err)
{
    const char *name = schema_member(p->manifest, "pre-data");
    char *text = NULL;
    size_t len = 0;
    if (read_schema(p->index, name, &text, &len, err) != 0)
        return -1;
    int rc = dc_restore_run_script(conn, text, len, p->manifest->restrict_key, name, err);
    free(text);
    return rc;
}

static int read_post_data(parallel_t *p, dc_script_t *script, dc_error_t *err)
{
    const char *name = schema_member(p->manifest, "post-data");
    char *text = NULL;
    size_t len = 0;
    if (read_schema(p->index, name, &text, &len, err) != 0)
        return -1;
    int rc = dc_restore_split_script(text, len, p->manifest->restrict_key, name, script, err);
    free(text);
    return rc;
}

static int bigger_first(const void *a, const void *b, void *manifest)
{
    const dc_manifest_t *m = manifest;
    uint64_t x = m->tables[*(const size_t *)a].raw_bytes;
    uint64_t y = m->tables[*(const size_t *)b].raw_bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Tables to load, biggest first; empty ones count as loaded already. */
static void plan_tables(parallel_t *p)
{
    const dc_manifest_t *m = p->manifest;
    p->tables = dc_calloc(m->table_count + 1, sizeof(table_state_t));
    p->by_size = dc_calloc(m->table_count + 1, sizeof(size_t));
    size_t n = 0;
    for (size_t t = 0; t < m->table_count; t++) {
        p->tables[t].back = m->tables[t].chunk_count;
        if (m->tables[t].chunk_count == 0)
            p->tables_loaded++;
        else
            p->by_size[n++] = t;
    }
    qsort_r(p->by_size, n, sizeof(size_t), bigger_first, (void *)m);
    p->to_load = n;
    /* A table bigger than a loader's fair share would be the restore's critical path on one
     * connection: it stays open to helpers. Every other table is loaded by its owner alone,
     * frozen. */
    uint64_t total = dc_manifest_total_raw_bytes(m);
    for (size_t i = 0; i < n; i++) {
        size_t t = p->by_size[i];
        p->tables[t].frozen = m->tables[t].raw_bytes * (uint64_t)p->count <= total;
    }
}

static void free_parallel(parallel_t *p)
{
    for (size_t i = 0; i < p->task_count; i++)
        free(p->tasks[i].sql);
    free(p->tasks);
    for (int i = 0; i < p->count; i++) {
        if (p->loaders[i].conn != NULL)
            PQfinish(p->loaders[i].conn);
    }
    free(p->loaders);
    free(p->tables);
    free(p->by_size);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->blob_mu);
}

int dc_restore_parallel(const dc_restore_opts_t *opts, const dc_manifest_t *m,
                        const dc_snapshot_index_t *index, PGconn *conn, dc_progress_t *progress,
                        dc_restore_result_t *result, dc_error_t *err)
{
    parallel_t p = {0};
    p.opts = opts;
    p.manifest = m;
    p.index = index;
    p.progress = progress;
    p.count = opts->jobs;
    p.loaders = dc_calloc((size_t)p.count, sizeof(loader_t));
    pthread_mutex_init(&p.mu, NULL);
    pthread_mutex_init(&p.blob_mu, NULL);
    pthread_cond_init(&p.changed, NULL);
    plan_tables(&p);

    dc_script_t script = {0};
    int rc = read_post_data(&p, &script, err);
    stmt_kind_t *kinds = dc_calloc(script.count + 1, sizeof(stmt_kind_t));
    bool *as_task = dc_calloc(script.count + 1, sizeof(bool));
    if (rc == 0) {
        plan_post_data(&p, &script, kinds, as_task);
        rc = run_pre_data(&p, conn, err);
    }
    if (rc == 0)
        rc = connect_loaders(&p, err);
    if (rc == 0)
        rc = start_threads(&p, loader_main, err);
    if (rc != 0) {
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
        rc = run_rest(&p, conn, &script, kinds, as_task, err);

    dc_restore_script_free(&script);
    free(kinds);
    free(as_task);
    free_parallel(&p);
    return rc;
}
