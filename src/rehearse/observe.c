/* What the rehearsal sees of each statement: the runner tells the observer before and after
 * each one (on the runner's connection: WAL position, relfilenodes, its own locks), and a
 * thread with its own connection samples the runner's locks from pg_locks every few ms while
 * it runs. Nothing here changes anything in the scratch database. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "rehearse_intern.h"

/* Relations of the user's schemas (the catalogs' own locks are noise). */
#define USER_RELATIONS                                                                             \
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"         \
    " WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', "                     \
    "'information_schema') AND n.nspname !~ '^pg_toast'"

/* Indexes of the user's schemas. */
#define USER_INDEXES                                                                               \
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"         \
    " WHERE c.relkind IN ('i', 'I') AND n.nspname NOT IN ('pg_catalog', "                          \
    "'information_schema') AND n.nspname !~ '^pg_toast'"

/* The runner's own temporary files (pgsql_tmp<pid>.<n>) and their size, right now. */
#define TEMP_OF(pid)                                                                               \
    "SELECT coalesce(pg_catalog.sum(size), 0)::pg_catalog.int8, pg_catalog.count(*)"               \
    " FROM pg_catalog.pg_ls_tmpdir() WHERE name LIKE 'pgsql_tmp' || " pid " || '.%'"

#define LOCKS_OF(pid)                                                                              \
    "SELECT relation::pg_catalog.int8, mode FROM pg_catalog.pg_locks WHERE pid = " pid             \
    " AND locktype = 'relation' AND granted AND relation::pg_catalog.int8 >= 16384"

static double now(void)
{
    return dc_now_seconds();
}

static bool in_error(PGconn *conn)
{
    return PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_INERROR;
}

/* ---- locks ---- */

/* Records one full sample of the runner's locks at time t: what is still held stays open, what
 * is gone is closed, what is new is attributed to the statement running (none between them). */
static void ingest(rh_observer_t *o, PGresult *res, double t)
{
    pthread_mutex_lock(&o->mu);
    int n = PQntuples(res);
    for (size_t i = 0; i < o->seen_count; i++) {
        rh_lock_seen_t *s = &o->seen[i];
        bool still = false;
        for (int r = 0; s->open && r < n && !still; r++)
            still = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10) == s->oid &&
                    strcmp(PQgetvalue(res, r, 1), s->mode) == 0;
        if (still && t > s->last) /* the two samplers' clocks were read before their queries */
            s->last = t;
        else
            s->open = false;
    }
    for (int r = 0; o->current >= 0 && r < n; r++) {
        unsigned oid = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        const char *mode = PQgetvalue(res, r, 1);
        bool known = false;
        for (size_t i = 0; i < o->seen_count && !known; i++)
            known = o->seen[i].open && o->seen[i].oid == oid && strcmp(o->seen[i].mode, mode) == 0;
        if (known)
            continue;
        o->seen = dc_realloc(o->seen, (o->seen_count + 1) * sizeof(*o->seen));
        rh_lock_seen_t *s = &o->seen[o->seen_count++];
        memset(s, 0, sizeof(*s));
        s->oid = oid;
        snprintf(s->mode, sizeof(s->mode), "%s", mode);
        s->stmt = (size_t)o->current;
        s->first = s->last = t;
        s->open = true;
    }
    pthread_mutex_unlock(&o->mu);
}

/* The runner's temporary files at this moment: the statement's peak so far. pg_ls_tmpdir needs
 * pg_monitor; without it the sampler stops asking (the database's counters remain). */
static void sample_temp(rh_observer_t *o, const char *pid)
{
    const char *params[] = {pid};
    PGresult *res =
        PQexecParams(o->monitor, TEMP_OF("$1::pg_catalog.text"), 1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    int64_t bytes = ok ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    int64_t files = ok ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0;
    /* only "permission denied" stops the sampling; a transient failure skips this sample */
    const char *state = ok ? NULL : PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool denied = state != NULL && strcmp(state, "42501") == 0;
    PQclear(res);
    pthread_mutex_lock(&o->mu);
    if (denied) {
        o->tmpdir_denied = true;
    } else if (o->current >= 0) {
        if (bytes > o->temp_peak)
            o->temp_peak = bytes;
        if (files > o->temp_files_peak)
            o->temp_files_peak = files;
    }
    pthread_mutex_unlock(&o->mu);
}

static void *sample_loop(void *arg)
{
    rh_observer_t *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        bool stop = o->stop;
        int pid = o->runner_pid;
        bool temp = !o->tmpdir_denied;
        pthread_mutex_unlock(&o->mu);
        if (stop)
            break;
        if (pid != 0) {
            char p[16];
            snprintf(p, sizeof(p), "%d", pid);
            const char *params[] = {p};
            double t = now();
            PGresult *res =
                PQexecParams(o->monitor, LOCKS_OF("$1::int4"), 1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) == PGRES_TUPLES_OK)
                ingest(o, res, t);
            PQclear(res);
            if (temp)
                sample_temp(o, p);
        }
        dc_sleep_ms(o->sample_ms);
    }
    return NULL;
}

/* ---- relations ---- */

static void rels_free(rh_rel_t *rels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rels[i].name);
    free(rels);
}

/* oid, relfilenode (and, with sizes, total size and name) of the user's tables. */
static int read_rels(PGconn *conn, bool sizes, rh_rel_t **out, size_t *count)
{
    const char *sql = sizes ? "SELECT c.oid::pg_catalog.int8, c.relfilenode::pg_catalog.int8,"
                              " pg_catalog.pg_total_relation_size(c.oid),"
                              " pg_catalog.format('%I.%I', n.nspname, c.relname)" USER_RELATIONS
                            : "SELECT c.oid::pg_catalog.int8, c.relfilenode::pg_catalog.int8, 0,"
                              " NULL" USER_RELATIONS;
    PGresult *res = PQexec(conn, sql);
    *out = NULL;
    *count = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    *out = dc_calloc((size_t)n + 1, sizeof(rh_rel_t));
    for (int r = 0; r < n; r++) {
        rh_rel_t *rel = &(*out)[r];
        rel->oid = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        rel->filenode = (unsigned)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        rel->bytes = strtoull(PQgetvalue(res, r, 2), NULL, 10);
        rel->name = PQgetisnull(res, r, 3) ? NULL : dc_strdup(PQgetvalue(res, r, 3));
    }
    *count = (size_t)n;
    PQclear(res);
    return 0;
}

static const rh_rel_t *find_rel(const rh_rel_t *rels, size_t n, unsigned oid)
{
    for (size_t i = 0; i < n; i++) {
        if (rels[i].oid == oid)
            return &rels[i];
    }
    return NULL;
}

/* ---- the runner's callbacks ---- */

/* The migration's directory name, from <dir>/<name>/migration.sql. */
static char *migration_of(const char *file)
{
    char *copy = dc_strdup(file);
    char *slash = strrchr(copy, '/');
    if (slash != NULL)
        *slash = '\0';
    const char *base = strrchr(copy, '/');
    char *name = dc_strdup(base != NULL ? base + 1 : copy);
    free(copy);
    return name;
}

/* The statement as one line for the reports and the release journal (which is copied into the
 * production database): secrets are masked before the cut, so a "PASSWORD '...'" that the cut
 * would split cannot escape the redactor. */
static char *one_line(const char *text)
{
    size_t size = strlen(text) * 2 + 16; /* a mask can be longer than a 1-2 byte secret */
    char *clean = dc_malloc(size);
    dc_redact(text, clean, size);
    char buf[161];
    snprintf(buf, sizeof(buf), "%s", clean);
    dc_utf8_truncate(buf, 150);
    for (char *c = buf; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    }
    char *line = dc_sprintf("%s%s", buf, strlen(clean) > 150 ? "..." : "");
    free(clean);
    return line;
}

/* The database's temporary-file counters, fresh (the session's statistics snapshot dropped).
 * They are only right outside a transaction block: from PostgreSQL 15 a backend's counts stay
 * pending while it is inside one (and for up to a second after), so a statement in the
 * migration's BEGIN ... COMMIT would read 0. Outside one, the pending counts are flushed first
 * (pg_stat_force_next_flush takes effect once the session is idle, before the next query).
 * Unknown (-1) inside a transaction block. */
static void stat_temp(PGconn *conn, int64_t *bytes, int64_t *files)
{
    *bytes = *files = -1;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return;
    if (PQserverVersion(conn) >= 150000)
        PQclear(PQexec(conn, "SELECT pg_catalog.pg_stat_force_next_flush()"));
    PQclear(PQexec(conn, "SELECT pg_catalog.pg_stat_clear_snapshot()"));
    PGresult *res = PQexec(conn, "SELECT temp_bytes, temp_files FROM pg_catalog.pg_stat_database"
                                 " WHERE datname = pg_catalog.current_database()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *bytes = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *files = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
}

static int compare_oids(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

/* The oids of the user's indexes (before a statement: what it builds is what is new after). */
static void read_indexes(PGconn *conn, unsigned **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    PGresult *res = PQexec(conn, "SELECT c.oid::pg_catalog.int8" USER_INDEXES);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        int n = PQntuples(res);
        *out = dc_calloc((size_t)n + 1, sizeof(unsigned));
        for (int r = 0; r < n; r++)
            (*out)[r] = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        *count = (size_t)n;
        /* sorted for had_index's binary search: a schema-per-tenant database has thousands
         * of indexes, looked up after every statement */
        qsort(*out, *count, sizeof(unsigned), compare_oids);
    }
    PQclear(res);
}

void rh_before(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st)
{
    rh_observer_t *o = ctx;
    o->wal_before[0] = '\0';
    rels_free(o->before, o->before_count);
    o->before = NULL;
    o->before_count = 0;
    free(o->indexes_before);
    o->indexes_before = NULL;
    o->indexes_before_count = 0;
    o->stat_temp_bytes = o->stat_temp_files = -1;
    if (!in_error(conn)) {
        stat_temp(conn, &o->stat_temp_bytes, &o->stat_temp_files);
        read_indexes(conn, &o->indexes_before, &o->indexes_before_count);
        PGresult *res = PQexec(conn, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text");
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            snprintf(o->wal_before, sizeof(o->wal_before), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        read_rels(conn, false, &o->before, &o->before_count);
    }
    dc_rehearse_result_t *r = o->result;
    pthread_mutex_lock(&o->mu);
    r->stmts = dc_realloc(r->stmts, (r->count + 1) * sizeof(*r->stmts));
    dc_rehearse_stmt_t *s = &r->stmts[r->count];
    memset(s, 0, sizeof(*s));
    s->migration = migration_of(file);
    s->file = dc_strdup(file);
    s->line = st->line;
    s->text = one_line(st->text);
    s->rows = dc_strdup("");
    s->wal_bytes = -1;
    s->temp_bytes = s->temp_files = -1;
    o->temp_peak = o->temp_files_peak = 0;
    o->current = (long)r->count++;
    o->runner_pid = PQbackendPID(conn);
    pthread_mutex_unlock(&o->mu);
    o->t0 = now(); /* the runner runs one statement at a time */
}

static void add_rewrite(dc_rehearse_stmt_t *s, const char *name, uint64_t before, uint64_t after)
{
    s->rewrites = dc_realloc(s->rewrites, (s->rewrite_count + 1) * sizeof(*s->rewrites));
    s->rewrites[s->rewrite_count++] = (dc_rehearse_rewrite_t){
        .relation = dc_strdup(name), .bytes_before = before, .bytes_after = after};
}

/* Tables whose relfilenode changed under the statement were rewritten (or truncated). */
static void find_rewrites(rh_observer_t *o, PGconn *conn, dc_rehearse_stmt_t *s)
{
    rh_rel_t *after;
    size_t n;
    if (read_rels(conn, false, &after, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const rh_rel_t *b = find_rel(o->before, o->before_count, after[i].oid);
        if (b == NULL || b->filenode == after[i].filenode)
            continue;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", after[i].oid);
        const char *params[] = {oid};
        PGresult *res = PQexecParams(conn,
                                     "SELECT pg_catalog.pg_total_relation_size(c.oid),"
                                     " pg_catalog.format('%I.%I', n.nspname, c.relname)"
                                     " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                                     " ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
                                     1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            const rh_rel_t *start = find_rel(o->start, o->start_count, after[i].oid);
            add_rewrite(s, PQgetvalue(res, 0, 1), start ? start->bytes : 0,
                        strtoull(PQgetvalue(res, 0, 0), NULL, 10));
        }
        PQclear(res);
    }
    rels_free(after, n);
}

static void measure_wal(rh_observer_t *o, PGconn *conn, dc_rehearse_stmt_t *s)
{
    if (!o->wal_before[0])
        return;
    const char *params[] = {o->wal_before};
    PGresult *res = PQexecParams(conn,
                                 "SELECT pg_catalog.pg_wal_lsn_diff("
                                 "pg_catalog.pg_current_wal_insert_lsn(), $1::pg_lsn)::int8",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        s->wal_bytes = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
}

static bool had_index(const rh_observer_t *o, unsigned oid)
{
    return bsearch(&oid, o->indexes_before, o->indexes_before_count, sizeof(unsigned),
                   compare_oids) != NULL;
}

/* Indexes that are there now and were not before the statement: built by it. */
static void find_indexes(rh_observer_t *o, PGconn *conn, dc_rehearse_stmt_t *s)
{
    if (o->indexes_before == NULL)
        return;
    PGresult *res = PQexec(conn, "SELECT c.oid::pg_catalog.int8,"
                                 " pg_catalog.pg_relation_size(c.oid),"
                                 " pg_catalog.format('%I.%I', n.nspname, c.relname)" USER_INDEXES
                                 " ORDER BY 1");
    for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++) {
        if (had_index(o, (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10)))
            continue;
        s->indexes = dc_realloc(s->indexes, (s->index_count + 1) * sizeof(*s->indexes));
        s->indexes[s->index_count++] =
            (dc_rehearse_index_t){.relation = dc_strdup(PQgetvalue(res, r, 2)),
                                  .bytes = strtoull(PQgetvalue(res, r, 1), NULL, 10)};
    }
    PQclear(res);
}

/* The larger of the sampled peak and the counters' growth; unknown when neither was seen. */
static void measure_temp(rh_observer_t *o, PGconn *conn, dc_rehearse_stmt_t *s)
{
    int64_t bytes = -1, files = -1;
    if (o->stat_temp_bytes >= 0)
        stat_temp(conn, &bytes, &files);
    if (bytes >= 0) {
        s->temp_bytes = bytes - o->stat_temp_bytes;
        s->temp_files = files - o->stat_temp_files;
    }
    pthread_mutex_lock(&o->mu);
    if (!o->tmpdir_denied || o->temp_peak > 0) {
        if (o->temp_peak > s->temp_bytes)
            s->temp_bytes = o->temp_peak;
        if (o->temp_files_peak > s->temp_files)
            s->temp_files = o->temp_files_peak;
    }
    pthread_mutex_unlock(&o->mu);
}

void rh_after(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st,
              const PGresult *res)
{
    (void)file;
    (void)st;
    rh_observer_t *o = ctx;
    double took = now() - o->t0;
    dc_rehearse_stmt_t *s = &o->result->stmts[o->current];
    s->seconds = took;
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    s->ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY;
    if (res != NULL) {
        free(s->rows);
        s->rows = dc_strdup(PQcmdTuples((PGresult *)res));
    }
    if (!in_error(conn)) {
        /* The locks the statement still holds (in a transaction, until it ends): a statement
         * shorter than the sampling interval is seen here at least. */
        double t = now();
        PGresult *locks = PQexec(conn, LOCKS_OF("pg_catalog.pg_backend_pid()"));
        if (PQresultStatus(locks) == PGRES_TUPLES_OK)
            ingest(o, locks, t);
        PQclear(locks);
        measure_wal(o, conn, s);
        find_rewrites(o, conn, s);
        find_indexes(o, conn, s);
        measure_temp(o, conn, s);
    }
    pthread_mutex_lock(&o->mu);
    o->current = -1;
    pthread_mutex_unlock(&o->mu);
}

/* ---- start and finish ---- */

static void *start_thread(void *arg)
{
    /* Stop signals are for the runner's thread (it cancels its statement). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    return sample_loop(arg);
}

int rh_observer_start(rh_observer_t *o, const char *scratch_url, uint64_t sample_ms,
                      dc_rehearse_result_t *result, dc_error_t *err)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->mu, NULL);
    o->current = -1;
    o->sample_ms = sample_ms ? sample_ms : 20;
    o->result = result;
    if (dc_pg_connect(scratch_url, "rehearse lock sampler", &o->monitor, err) != 0)
        return -1;
    if (read_rels(o->monitor, true, &o->start, &o->start_count) != 0)
        return dc_pg_error(o->monitor, NULL, "reading the scratch database's tables", err);
    if (pthread_create(&o->thread, NULL, start_thread, o) != 0)
        return dc_error_set(err, "cannot start the lock sampler thread");
    o->thread_started = true;
    return 0;
}

/* The name of a relation the migrations created (NULL when it is gone, or not a table). */
static char *created_name(PGconn *conn, unsigned oid)
{
    char p[16];
    snprintf(p, sizeof(p), "%u", oid);
    const char *params[] = {p};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)" USER_RELATIONS
                     " AND c.oid = $1::oid",
                     1, NULL, params, NULL, NULL, 0);
    char *name = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        name = dc_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return name;
}

/* "AccessExclusiveLock" -> "ACCESS EXCLUSIVE". */
static void mode_name(const char *mode, char *out, size_t size)
{
    size_t o = 0;
    size_t len = strlen(mode);
    if (len > 4 && strcmp(mode + len - 4, "Lock") == 0)
        len -= 4;
    for (size_t i = 0; i < len && o + 2 < size; i++) {
        if (i > 0 && mode[i] >= 'A' && mode[i] <= 'Z')
            out[o++] = ' ';
        out[o++] = (char)(mode[i] >= 'a' && mode[i] <= 'z' ? mode[i] - 32 : mode[i]);
    }
    out[o] = '\0';
}

static bool blocks_writes(const char *mode)
{
    return strcmp(mode, "ShareLock") == 0 || strcmp(mode, "ShareRowExclusiveLock") == 0 ||
           strcmp(mode, "ExclusiveLock") == 0 || strcmp(mode, "AccessExclusiveLock") == 0;
}

static void add_lock(dc_rehearse_stmt_t *s, const char *relation, const rh_lock_seen_t *seen,
                     bool created)
{
    char mode[32];
    mode_name(seen->mode, mode, sizeof(mode));
    double secs = seen->last > seen->first ? seen->last - seen->first : 0;
    for (size_t i = 0; i < s->lock_count; i++) {
        if (strcmp(s->locks[i].relation, relation) == 0 && strcmp(s->locks[i].mode, mode) == 0) {
            s->locks[i].seconds += secs; /* seen, gone, seen again */
            return;
        }
    }
    s->locks = dc_realloc(s->locks, (s->lock_count + 1) * sizeof(*s->locks));
    dc_rehearse_lock_t *l = &s->locks[s->lock_count++];
    memset(l, 0, sizeof(*l));
    l->relation = dc_strdup(relation);
    snprintf(l->mode, sizeof(l->mode), "%s", mode);
    l->seconds = secs;
    l->blocks_writes = blocks_writes(seen->mode);
    l->new_relation = created;
}

static bool is_history_table(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL && strcmp(dot + 1, "_prisma_migrations") == 0;
}

void rh_observer_finish(rh_observer_t *o)
{
    if (o->thread_started) {
        pthread_mutex_lock(&o->mu);
        o->stop = true;
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->thread, NULL);
        o->thread_started = false;
    }
    for (size_t i = 0; i < o->seen_count; i++) {
        const rh_lock_seen_t *seen = &o->seen[i];
        if (seen->stmt >= o->result->count)
            continue;
        const rh_rel_t *start = find_rel(o->start, o->start_count, seen->oid);
        /* Tables that were there before; else ones the migrations made (indexes, TOAST and
         * what was created and dropped again are left out). */
        char *made = start == NULL && o->monitor ? created_name(o->monitor, seen->oid) : NULL;
        const char *name = start != NULL ? start->name : made;
        if (name != NULL && !is_history_table(name))
            add_lock(&o->result->stmts[seen->stmt], name, seen, start == NULL);
        free(made);
    }
}

void rh_observer_free(rh_observer_t *o)
{
    if (o->thread_started)
        rh_observer_finish(o);
    if (o->monitor != NULL)
        PQfinish(o->monitor);
    o->monitor = NULL;
    rels_free(o->start, o->start_count);
    rels_free(o->before, o->before_count);
    free(o->indexes_before);
    free(o->seen);
    pthread_mutex_destroy(&o->mu);
    memset(o, 0, sizeof(*o));
}
