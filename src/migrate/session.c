/* A runner's database session: the connection (with Prisma's ?schema= as search_path), the
 * session-level advisory locks that keep two runners (ours or Prisma's) apart, and statements
 * run asynchronously so that, while one waits for a lock, the sessions in its way are named.
 * Nothing here ever terminates another session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "session.h"

#define POLL_MS          100
#define MONITOR_START_MS 200

/* The server's notices ("... does not exist, skipping") are details, not output. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strlen(message);
    while (n > 0 && message[n - 1] == '\n')
        n--;
    dc_log_debug("server: %.*s", (int)n, message);
}

int dc_session_open(const dc_migrate_opts_t *opts, const char *purpose, dc_session_t *s,
                    dc_error_t *err)
{
    memset(s, 0, sizeof(*s));
    s->opts = opts;
    if (dc_pg_connect(opts->url, purpose, &s->conn, err) != 0)
        return -1;
    PQsetNoticeProcessor(s->conn, log_notice, NULL);
    /* Prisma runs migrations with search_path set to the URL's schema: so do we. */
    if (opts->schema != NULL && *opts->schema) {
        char *q = dc_pg_quote_ident(s->conn, opts->schema);
        char *sql = dc_sprintf("SET search_path TO %s", q);
        int rc = dc_pg_exec(s->conn, sql, err);
        free(sql);
        free(q);
        if (rc != 0) {
            dc_session_close(s);
            return -1;
        }
    }
    /* The runner's own statements (history table, catalog lookups) never wait for a lock
     * forever either: the session gets lock_timeout, the migrations SET LOCAL it again. */
    if (dc_session_set_timeouts(s, false, err) != 0) {
        dc_session_close(s);
        return -1;
    }
    s->table = dc_history_table(s->conn, opts->schema);
    return 0;
}

void dc_session_close(dc_session_t *s)
{
    /* Session-level advisory locks end with the session. */
    if (s->monitor != NULL)
        PQfinish(s->monitor);
    if (s->conn != NULL)
        PQfinish(s->conn);
    free(s->table);
    memset(s, 0, sizeof(*s));
}

/* Who holds advisory lock `key` in this database, as one line ("" when nobody). */
static char *describe_advisory_holder(PGconn *conn, long long key)
{
    char classid[32], objid[32];
    snprintf(classid, sizeof(classid), "%lld", (key >> 32) & 0xffffffffLL);
    snprintf(objid, sizeof(objid), "%lld", key & 0xffffffffLL);
    const char *params[] = {classid, objid};
    dc_error_t ignored;
    PGresult *res = dc_pg_query_params(
        conn,
        "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),"
        " coalesce(a.state, ''),"
        " coalesce(extract(epoch FROM now() - a.backend_start)::bigint, 0)"
        " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.classid = $1::oid AND l.objid = $2::oid AND l.pid <> pg_catalog.pg_backend_pid()"
        " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
        "   WHERE datname = pg_catalog.current_database())",
        2, params, &ignored);
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    for (int r = 0; res != NULL && r < PQntuples(res); r++)
        dc_buf_appendf(&b, "%spid %s (user %s, application '%s', %s, connected %ss ago)",
                       r ? "; " : "", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4));
    PQclear(res);
    return b.data;
}

int dc_session_runner_pid(dc_session_t *s)
{
    char ours[32], prisma[32];
    snprintf(ours, sizeof(ours), "%lld", DC_MIGRATE_LOCK_KEY);
    snprintf(prisma, sizeof(prisma), "%lld", DC_MIGRATE_PRISMA_LOCK_KEY);
    const char *params[] = {ours, prisma};
    dc_error_t ignored;
    PGresult *res = dc_pg_query_params(
        s->conn,
        "SELECT l.pid FROM pg_catalog.pg_locks l"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = 0"
        " AND l.objid IN ($1::oid, $2::oid) AND l.pid <> pg_catalog.pg_backend_pid()"
        " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
        "   WHERE datname = pg_catalog.current_database())"
        " ORDER BY l.objid DESC LIMIT 1",
        2, params, &ignored);
    int pid = res != NULL && PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return pid;
}

static int try_lock(PGconn *conn, long long key, bool *got, dc_error_t *err)
{
    char k[32];
    snprintf(k, sizeof(k), "%lld", key);
    const char *params[] = {k};
    PGresult *res = dc_pg_query_params(conn, "SELECT pg_catalog.pg_try_advisory_lock($1::bigint)",
                                       1, params, err);
    if (res == NULL)
        return -1;
    *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

/* Polls for a session-level advisory lock until timeout_ms has passed. */
static int wait_for_lock(dc_session_t *s, long long key, uint64_t timeout_ms, bool *got,
                         dc_error_t *err)
{
    double deadline = dc_now_seconds() + (double)timeout_ms / 1000.0;
    bool logged = false;
    for (;;) {
        if (try_lock(s->conn, key, got, err) != 0)
            return -1;
        if (*got || dc_now_seconds() >= deadline)
            return 0;
        if (!logged) {
            char *who = describe_advisory_holder(s->conn, key);
            dc_log_info("waiting up to %.1fs for the migration lock held by %s",
                        (double)timeout_ms / 1000.0, *who ? who : "another session");
            free(who);
            logged = true;
        }
        if (dc_signal_check(err) != 0)
            return -1;
        dc_sleep_ms(POLL_MS);
    }
}

int dc_session_lock(dc_session_t *s, bool prisma_too, dc_error_t *err)
{
    char dbname[256] = "";
    snprintf(dbname, sizeof(dbname), "%s", PQdb(s->conn));
    uint64_t timeout = s->opts->lock_timeout_ms;
    bool got = false;
    if (wait_for_lock(s, DC_MIGRATE_LOCK_KEY, timeout, &got, err) != 0)
        return -1;
    if (!got) {
        char *who = describe_advisory_holder(s->conn, DC_MIGRATE_LOCK_KEY);
        dc_error_set_code(err, DC_EXIT_LOCKED,
                          "another deployctl migration runner holds the migration lock on "
                          "database %s (%s); waited %.1fs; nothing was applied: run again when "
                          "it has finished (or raise --lock-timeout)",
                          dbname, *who ? who : "a session that has just ended",
                          (double)timeout / 1000.0);
        free(who);
        return -1;
    }
    if (!prisma_too)
        return 0;
    /* Holding Prisma's own lock too keeps `prisma migrate` from running beside us. */
    if (wait_for_lock(s, DC_MIGRATE_PRISMA_LOCK_KEY, timeout, &got, err) != 0)
        return -1;
    if (!got) {
        char *who = describe_advisory_holder(s->conn, DC_MIGRATE_PRISMA_LOCK_KEY);
        dc_error_set_code(err, DC_EXIT_LOCKED,
                          "Prisma's migration lock (advisory lock %lld) on database %s is held "
                          "by %s: a `prisma migrate` command is running against this database; "
                          "nothing was applied: let it finish, then run deployctl again",
                          DC_MIGRATE_PRISMA_LOCK_KEY, dbname,
                          *who ? who : "a session that has just ended");
        free(who);
        return -1;
    }
    return 0;
}

/* The sessions our statement is waiting for, from a second connection (pg_blocking_pids). */
static void describe_blockers(dc_session_t *s)
{
    if (s->monitor == NULL) {
        dc_error_t ignored;
        if (dc_pg_connect(s->opts->url, "migrate monitor", &s->monitor, &ignored) != 0) {
            s->monitor = NULL;
            return;
        }
    }
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(s->conn));
    const char *params[] = {pid};
    dc_error_t ignored;
    PGresult *res = dc_pg_query_params(
        s->monitor,
        "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),"
        " coalesce(a.state, ''),"
        " coalesce(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::bigint, 0),"
        " pg_catalog.left(pg_catalog.regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)"
        " FROM pg_catalog.pg_stat_activity a"
        " WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1::int)) ORDER BY a.pid",
        1, params, &ignored);
    if (res == NULL || PQntuples(res) == 0) {
        PQclear(res);
        return;
    }
    dc_buf_t b = {0}, brief = {0};
    dc_buf_append(&b, "", 0);
    dc_buf_append(&brief, "", 0);
    for (int r = 0; r < PQntuples(res) && r < 5; r++) {
        dc_buf_appendf(&b, "%spid %s (user %s, application '%s', %s for %ss: %s)", r ? "; " : "",
                       PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                       PQgetvalue(res, r, 3), PQgetvalue(res, r, 4), PQgetvalue(res, r, 5));
        dc_buf_appendf(&brief, "%spid %s (user %s, application '%s', %s for %ss)", r ? "; " : "",
                       PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                       PQgetvalue(res, r, 3), PQgetvalue(res, r, 4));
    }
    PQclear(res);
    snprintf(s->blockers_brief, sizeof(s->blockers_brief), "%s", brief.data);
    dc_buf_free(&brief);
    if (strcmp(b.data, s->blockers) != 0)
        dc_log_warn("waiting for a lock, blocked by %s", b.data);
    snprintf(s->blockers, sizeof(s->blockers), "%s", b.data);
    dc_buf_free(&b);
}

/* Waits for the answer to a sent query, naming what blocks it meanwhile and passing a stop
 * request on as a cancel. */
static int wait_for_result(dc_session_t *s)
{
    double started = dc_now_seconds();
    double next_look = started + MONITOR_START_MS / 1000.0;
    bool cancelled = false;
    while (PQisBusy(s->conn)) {
        int sock = PQsocket(s->conn);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(sock, &rd);
        struct timeval tv = {0, POLL_MS * 1000};
        select(sock + 1, &rd, NULL, NULL, &tv);
        if (PQconsumeInput(s->conn) != 1)
            return -1;
        if (!PQisBusy(s->conn))
            break;
        if (!cancelled && dc_signal_received(NULL)) {
            PGcancel *c = PQgetCancel(s->conn);
            char buf[256];
            if (c != NULL) {
                PQcancel(c, buf, sizeof(buf));
                PQfreeCancel(c);
            }
            cancelled = true;
        }
        if (dc_now_seconds() >= next_look) {
            describe_blockers(s);
            next_look = dc_now_seconds() + 0.5;
        }
    }
    return 0;
}

PGresult *dc_session_exec(dc_session_t *s, const char *sql)
{
    s->blockers[0] = '\0';
    s->blockers_brief[0] = '\0';
    if (PQsendQuery(s->conn, sql) != 1)
        return NULL;
    if (wait_for_result(s) != 0) {
        PGresult *r;
        while ((r = PQgetResult(s->conn)) != NULL)
            PQclear(r);
        return NULL;
    }
    /* One statement, one result; keep the last (an error, if any). */
    PGresult *last = NULL, *r;
    while ((r = PQgetResult(s->conn)) != NULL) {
        if (last != NULL && PQresultStatus(last) == PGRES_FATAL_ERROR) {
            PQclear(r);
            continue;
        }
        PQclear(last);
        last = r;
    }
    return last;
}

bool dc_session_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

bool dc_session_lock_timeout(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && strcmp(state, "55P03") == 0;
}

char *dc_session_blockers(dc_session_t *s, char **brief)
{
    *brief = NULL;
    if (s->blockers[0]) {
        *brief = dc_strdup(s->blockers_brief);
        return dc_strdup(s->blockers);
    }
    /* Our wait was too short to be seen: name the sessions holding table locks instead. */
    return dc_pg_describe_lock_holders(s->conn);
}

int dc_session_set_timeouts(dc_session_t *s, bool local, dc_error_t *err)
{
    /* statement_timeout 0 means the server's setting (ALTER ROLE / DATABASE ... SET): left as
     * it is, not overridden with 0 (which would turn it off). */
    char *sql =
        s->opts->statement_timeout_ms > 0
            ? dc_sprintf("SET %s lock_timeout = '%llums'; SET %s statement_timeout = "
                         "'%llums'",
                         local ? "LOCAL" : "SESSION", (unsigned long long)s->opts->lock_timeout_ms,
                         local ? "LOCAL" : "SESSION",
                         (unsigned long long)s->opts->statement_timeout_ms)
            : dc_sprintf("SET %s lock_timeout = '%llums'", local ? "LOCAL" : "SESSION",
                         (unsigned long long)s->opts->lock_timeout_ms);
    int rc = dc_pg_exec(s->conn, sql, err);
    free(sql);
    return rc;
}

int dc_session_reset_timeouts(dc_session_t *s, dc_error_t *err)
{
    /* lock_timeout stays as dc_session_open set it, for the runner's own statements. */
    return s->opts->statement_timeout_ms > 0 ? dc_pg_exec(s->conn, "RESET statement_timeout", err)
                                             : 0;
}

void dc_session_backoff(const dc_migrate_opts_t *opts, int attempt)
{
    uint64_t ms = opts->retry_backoff_ms;
    for (int i = 1; i < attempt && ms < 60000; i++)
        ms *= 2;
    dc_sleep_ms(ms);
}
