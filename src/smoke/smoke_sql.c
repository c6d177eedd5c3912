/* SQL smoke checks: each query runs through libpq in a READ ONLY transaction (a check must not
 * change the data it checks) with a statement timeout, and passes when it returns no rows (or
 * no result set, e.g. a DO block that did not raise), or exactly one row of one boolean column
 * that is true. Anything else is a failure whose detail says what came back; no answer (no
 * connection, timeout) is an error. Also reads a directory of *.sql files as checks. */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/pg.h"
#include "deployctl/smoke.h"
#include "deployctl/util.h"
#include "smoke_intern.h"

#define BOOL_OID 16
/* The largest query file taken as a check: a check is a query, not a dump. */
#define SQL_FILE_MAX (1024 * 1024)

typedef struct sql_check {
    size_t index;
    const char *sql;
    bool done;
    bool first;
    uint64_t next_ms;
} sql_check_t;

typedef struct sql_session {
    char *url;    /* libpq form */
    char *schema; /* Prisma's ?schema=, for the search path, or NULL */
    PGconn *conn; /* NULL until connected, again after a lost connection */
} sql_session_t;

/* ---- judging what a query returned ---- */

/* The first row as "(a, b, NULL)", cut to fit a detail. */
static void describe_row(const PGresult *res, char *out, size_t size)
{
    dc_buf_t b = {0};
    dc_buf_append(&b, "(", 1);
    for (int f = 0; f < PQnfields(res) && b.len < size; f++) {
        const char *v = PQgetisnull(res, 0, f) ? "NULL" : PQgetvalue(res, 0, f);
        dc_buf_appendf(&b, "%s%.80s", f ? ", " : "", v);
    }
    dc_buf_append(&b, ")", 1);
    dc_buf_append(&b, "", 1);
    snprintf(out, size, "%s", b.data);
    dc_utf8_truncate(out, size - 1);
    dc_buf_free(&b);
}

static void judge_rows(const PGresult *res, dc_smoke_attempt_t *a)
{
    int rows = PQntuples(res), cols = PQnfields(res);
    if (rows == 0) {
        a->passed = true;
        snprintf(a->detail, sizeof(a->detail), "no rows");
        return;
    }
    char row[160];
    describe_row(res, row, sizeof(row));
    if (rows == 1 && cols == 1 && PQftype(res, 0) == BOOL_OID && !PQgetisnull(res, 0, 0)) {
        a->passed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        snprintf(a->detail, sizeof(a->detail), "%s", a->passed ? "true" : "returned false");
        return;
    }
    if (rows == 1 && cols == 1)
        snprintf(a->detail, sizeof(a->detail), "returned %s, want no rows or one boolean true",
                 row);
    else
        snprintf(a->detail, sizeof(a->detail),
                 "returned %d row%s of %d column%s, first %s; want no rows or one boolean true",
                 rows, rows == 1 ? "" : "s", cols, cols == 1 ? "" : "s", row);
}

/* A query that the server answered with an error is a failure (the check ran and said no, as
 * a DO block that raises does); a cancelled query (our timeout) or a lost connection is no
 * answer: an error. */
static void judge_error(PGconn *conn, const PGresult *res, uint64_t timeout_ms,
                        dc_smoke_attempt_t *a)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "57014") == 0) {
        a->error = true;
        snprintf(a->detail, sizeof(a->detail), "no answer within %llu ms",
                 (unsigned long long)timeout_ms);
        return;
    }
    dc_error_t err = {0};
    dc_pg_error(conn, res, "query", &err);
    a->error = PQstatus(conn) != CONNECTION_OK || (state != NULL && strncmp(state, "08", 2) == 0);
    snprintf(a->detail, sizeof(a->detail), "%s", err.message);
}

/* ---- one attempt ---- */

static int begin_read_only(sql_session_t *s, uint64_t timeout_ms, dc_error_t *err)
{
    char sql[128];
    if (dc_pg_exec(s->conn, "BEGIN READ ONLY", err) != 0)
        return -1;
    snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = %llu",
             (unsigned long long)timeout_ms);
    if (dc_pg_exec(s->conn, sql, err) != 0)
        return -1;
    if (s->schema == NULL)
        return 0;
    char *ident = dc_pg_quote_ident(s->conn, s->schema);
    char *path = dc_sprintf("SET LOCAL search_path = %s, public", ident);
    int rc = dc_pg_exec(s->conn, path, err);
    free(path);
    free(ident);
    return rc;
}

static void run_query(sql_session_t *s, const char *sql, uint64_t timeout_ms, dc_smoke_attempt_t *a)
{
    dc_error_t err = {0};
    if (begin_read_only(s, timeout_ms, &err) != 0) {
        a->error = true;
        snprintf(a->detail, sizeof(a->detail), "%s", err.message);
    } else {
        PGresult *res = PQexec(s->conn, sql);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_TUPLES_OK) {
            judge_rows(res, a);
        } else if (st == PGRES_COMMAND_OK) {
            a->passed = true;
            snprintf(a->detail, sizeof(a->detail), "no rows");
        } else {
            judge_error(s->conn, res, timeout_ms, a);
        }
        PQclear(res);
    }
    PQclear(PQexec(s->conn, "ROLLBACK"));
    if (PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

static void sql_attempt(dc_smoke_run_t *run, sql_session_t *s, sql_check_t *sc)
{
    uint64_t start = dc_smoke_clock_ms(run);
    uint64_t timeout = dc_smoke_attempt_timeout(run, start, sc->first);
    sc->first = false;
    dc_smoke_attempt_t a = {.check = sc->index, .started_ms = start};
    dc_error_t err = {0};
    if (s->conn == NULL && dc_pg_connect(s->url, "smoke check", &s->conn, &err) != 0) {
        s->conn = NULL;
        a.error = true;
        snprintf(a.detail, sizeof(a.detail), "%s", err.message);
    } else {
        run_query(s, sc->sql, timeout, &a);
    }
    dc_utf8_truncate(a.detail, sizeof(a.detail) - 1);
    uint64_t end = dc_smoke_clock_ms(run);
    a.latency_ms = end - start;
    dc_smoke_record(run, &a);
    if (a.passed || !dc_smoke_schedule_retry(run, end, &sc->next_ms))
        sc->done = true;
}

/* ---- the SQL checks' thread ---- */

/* Runs the due checks one after the other; returns false when none is left. */
static bool sql_round(dc_smoke_run_t *run, sql_session_t *s, sql_check_t *scs, size_t n)
{
    bool pending = false;
    uint64_t wait = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!scs[i].done && scs[i].next_ms <= dc_smoke_clock_ms(run))
            sql_attempt(run, s, &scs[i]);
        if (scs[i].done)
            continue;
        pending = true;
        uint64_t now = dc_smoke_clock_ms(run);
        uint64_t due = scs[i].next_ms > now ? scs[i].next_ms - now : 0;
        wait = due < wait ? due : wait;
    }
    if (pending && wait > 0)
        dc_sleep_ms(wait);
    return pending;
}

void *dc_smoke_sql_thread(void *arg)
{
    dc_smoke_run_t *run = arg;
    sql_check_t *scs = dc_calloc(run->count, sizeof(*scs));
    size_t n = 0;
    for (size_t i = 0; i < run->count; i++) {
        if (run->checks[i].kind != DC_SMOKE_SQL)
            continue;
        scs[n] = (sql_check_t){.index = i, .sql = run->checks[i].sql, .first = true};
        n++;
    }
    sql_session_t s = {0};
    s.url = dc_pg_url_for_libpq(run->opts.database_url, &s.schema);
    while (sql_round(run, &s, scs, n))
        ;
    PQfinish(s.conn);
    free(s.url);
    free(s.schema);
    free(scs);
    return NULL;
}

/* ---- a directory of checks ---- */

static int sql_file_filter(const struct dirent *e)
{
    return e->d_name[0] != '.' && dc_str_ends_with(e->d_name, ".sql");
}

/* Byte order, not the locale's: the same directory runs in the same order everywhere. */
static int name_order(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int read_check(const char *dir, const char *file, dc_smoke_check_t *check, dc_error_t *err)
{
    char *path = dc_sprintf("%s/%s", dir, file);
    char *sql = NULL;
    size_t len = 0;
    int rc = dc_read_file(path, SQL_FILE_MAX, false, &sql, &len, err);
    if (rc == 0 && strspn(sql, " \t\r\n;") == len) {
        rc = dc_error_set(err,
                          "smoke check %s is empty: write a query that returns no rows, or one "
                          "row of one true, when the application is healthy",
                          path);
        free(sql);
    }
    free(path);
    if (rc != 0)
        return -1;
    check->kind = DC_SMOKE_SQL;
    check->name = dc_strdup(file);
    check->sql = sql;
    return 0;
}

int dc_smoke_read_sql_dir(const char *dir, dc_smoke_check_t **checks, size_t *count,
                          dc_error_t *err)
{
    *checks = NULL;
    *count = 0;
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, sql_file_filter, name_order);
    if (n < 0)
        return dc_error_set(err,
                            "cannot read the smoke checks directory %s: %s: give a directory "
                            "of *.sql files",
                            dir, strerror(errno));
    dc_smoke_check_t *list = dc_calloc(n > 0 ? (size_t)n : 1, sizeof(*list));
    size_t done = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && read_check(dir, entries[i]->d_name, &list[done], err) == 0)
            done++;
        else
            rc = -1;
        free(entries[i]);
    }
    free(entries);
    if (rc != 0) {
        dc_smoke_checks_free(list, done);
        return -1;
    }
    *checks = list;
    *count = done;
    return 0;
}

void dc_smoke_checks_free(dc_smoke_check_t *checks, size_t count)
{
    if (checks == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free((char *)checks[i].name);
        free((char *)checks[i].sql);
    }
    free(checks);
}
