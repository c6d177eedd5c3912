/* The connection checks: can we reach the server with the configured URL, and is it the server
 * itself rather than a connection pooler (PgBouncer, PgCat, RDS Proxy, Supavisor) in front of
 * it. Migrations and backups need a session of their own (advisory locks, SET, exported
 * snapshots), which a transaction-pooling pooler does not give. Not for other checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_intern.h"
#include "deployctl/util.h"

#define CONNECTION   "connection"
#define CONNECTION_T "Database connection"
#define POOLER       "pooler"
#define POOLER_T     "Direct connection"
#define POOLED       "pooled-url"
#define POOLED_T     "Pooled connection"

void dc_check_connection(dc_check_ctx_t *ctx)
{
    dc_error_t err;
    dc_error_clear(&err);
    if (dc_pg_connect(ctx->libpq_url, "check", &ctx->conn, &err) != 0) {
        ctx->conn = NULL;
        dc_check_add(ctx->report, CONNECTION, CONNECTION_T, DC_CHECK_FAILED, "%s", err.message);
        return;
    }
    /* The report is UTF-8 (JSON needs it) whatever the database's encoding, and no check may
     * hang: a query queued behind another session's lock gives up quickly and says so. */
    if (PQsetClientEncoding(ctx->conn, "UTF8") != 0 ||
        dc_pg_exec(ctx->conn,
                   "SET lock_timeout = '" DC_CHECK_LOCK_TIMEOUT "';"
                   " SET statement_timeout = '" DC_CHECK_STATEMENT_TIMEOUT "'",
                   &err) != 0) {
        dc_check_add(ctx->report, CONNECTION, CONNECTION_T, DC_CHECK_FAILED,
                     "connected, but cannot set client_encoding, lock_timeout and "
                     "statement_timeout: %s",
                     err.message[0] ? err.message : PQerrorMessage(ctx->conn));
        PQfinish(ctx->conn);
        ctx->conn = NULL;
        return;
    }
    PGresult *res =
        dc_pg_query(ctx->conn,
                    "SELECT pg_catalog.current_setting('server_version'), current_user,"
                    " (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),"
                    " pg_catalog.current_database()",
                    &err);
    if (res == NULL) {
        dc_check_add(ctx->report, CONNECTION, CONNECTION_T, DC_CHECK_FAILED,
                     "connected, but cannot run a query: %s", err.message);
        PQfinish(ctx->conn);
        ctx->conn = NULL;
        return;
    }
    ctx->superuser = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    dc_check_add(ctx->report, CONNECTION, CONNECTION_T, DC_CHECK_OK,
                 "connected to %s as %s%s (PostgreSQL %s)", PQgetvalue(res, 0, 3),
                 PQgetvalue(res, 0, 1), ctx->superuser ? ", a superuser" : "",
                 PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* The value of ?key= in a URL's query string, copied into out ("" when absent). */
static void url_parameter(const char *url, const char *key, char *out, size_t size)
{
    out[0] = '\0';
    const char *q = strchr(url, '?');
    size_t key_len = strlen(key);
    for (const char *p = q ? q + 1 : NULL; p != NULL && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
            snprintf(out, size, "%.*s", (int)(len - key_len - 1), p + key_len + 1);
            return;
        }
        p = amp ? amp + 1 : NULL;
    }
}

/* The port a URL or conninfo names (5432, libpq's default, when none); 0 when it names
 * several hosts or cannot be parsed. */
static int url_port(const char *url)
{
    char *parse_error = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_error);
    if (opts == NULL) {
        PQfreemem(parse_error);
        return 0;
    }
    int port = 5432;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "port") == 0 && o->val != NULL && *o->val)
            port = strchr(o->val, ',') ? 0 : atoi(o->val);
    }
    PQconninfoFree(opts);
    return port;
}

const char *dc_check_url_pooler_hint(const char *url)
{
    char value[16];
    url_parameter(url, "pgbouncer", value, sizeof(value));
    if (strcmp(value, "true") == 0)
        return "the URL carries ?pgbouncer=true, Prisma's mark of a pooled URL";
    /* Prisma's own parameters (?schema=, ?connection_limit=) make libpq refuse the URL. */
    char *schema = NULL;
    char *libpq_url = dc_pg_url_for_libpq(url, &schema);
    int port = url_port(libpq_url);
    free(libpq_url);
    free(schema);
    if (port == 6432)
        return "the URL names port 6432, PgBouncer's customary port";
    return NULL;
}

/* The server's pid for this session, as a query sees it (-1 when the query fails). */
static long backend_pid(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT pg_catalog.pg_backend_pid()");
    long pid = PQresultStatus(res) == PGRES_TUPLES_OK ? atol(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return pid;
}

static void report_pooled(dc_check_ctx_t *ctx, const char *evidence)
{
    const char *hint = dc_check_url_pooler_hint(ctx->opts->database_url);
    dc_check_add(ctx->report, POOLER, POOLER_T, DC_CHECK_FAILED,
                 "the connection goes through a connection pooler such as PgBouncer (%s%s%s); "
                 "migrations and backups need a session of their own: use the direct URL, "
                 "DATABASE_URL_DIRECT (or --database), with the server's own host and port",
                 evidence, hint ? "; " : "", hint ? hint : "");
}

/* Behavioural probes, not port guesses. A pooler answers the client's startup itself and
 * hands out a cancel key of its own, so the process id libpq was told at connect (the
 * BackendKeyData message) is not the pid of the server process that runs our queries; a
 * plain TCP proxy or NAT passes that message through unchanged. In transaction pooling the
 * server process can also change between two transactions of one client connection.
 * 1 pooled (evidence says why), 0 direct (*pid the session's own), -1 the probe failed. */
static int probe_pooled(PGconn *conn, long *pid, char *evidence, size_t size)
{
    long announced = PQbackendPID(conn);
    long first = backend_pid(conn);
    long second = backend_pid(conn);
    *pid = first;
    if (first < 0 || second < 0) {
        snprintf(evidence, size, "cannot run the probe (SELECT pg_backend_pid()): %s",
                 PQerrorMessage(conn));
        return -1;
    }
    if (first != announced) {
        snprintf(evidence, size,
                 "the server process running the queries, pid %ld, is not the one announced "
                 "at connect, %ld",
                 first, announced);
        return 1;
    }
    if (second != first) {
        snprintf(evidence, size,
                 "two transactions of one connection ran in server processes %ld and %ld", first,
                 second);
        return 1;
    }
    return 0;
}

void dc_check_pooler(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, POOLER, POOLER_T);
        return;
    }
    long first;
    char evidence[256];
    int pooled = probe_pooled(ctx->conn, &first, evidence, sizeof(evidence));
    if (pooled < 0) {
        dc_check_add(ctx->report, POOLER, POOLER_T, DC_CHECK_FAILED, "%s", evidence);
        return;
    }
    if (pooled) {
        report_pooled(ctx, evidence);
        return;
    }
    const char *hint = dc_check_url_pooler_hint(ctx->opts->database_url);
    char value[16];
    url_parameter(ctx->opts->database_url, "pgbouncer", value, sizeof(value));
    if (strcmp(value, "true") == 0) {
        dc_check_add(ctx->report, POOLER, POOLER_T, DC_CHECK_WARNING,
                     "the server answers directly (pid %ld), but %s: drop it from the direct "
                     "URL",
                     first, hint);
        return;
    }
    PGresult *res = PQexec(ctx->conn, "SELECT pg_catalog.inet_server_port()");
    int server_port = PQresultStatus(res) == PGRES_TUPLES_OK && !PQgetisnull(res, 0, 0)
                          ? atoi(PQgetvalue(res, 0, 0))
                          : 0;
    PQclear(res);
    int port = url_port(ctx->libpq_url);
    if (server_port != 0 && port != 0 && server_port != port)
        dc_check_add(ctx->report, POOLER, POOLER_T, DC_CHECK_OK,
                     "not pooled (server pid %ld is the session's own); the server listens on "
                     "port %d behind the URL's %d, a TCP proxy or port forwarding",
                     first, server_port, port);
    else
        dc_check_add(ctx->report, POOLER, POOLER_T, DC_CHECK_OK,
                     "not pooled: server pid %ld is the session's own", first);
}

/* The application's pooled URL (--pooled-url): it must reach the very database the direct URL
 * does (else the smoke checks that run through it test another one), and through a pooler
 * (else the application's connections are not pooled; a warning). */
void dc_check_pooled_url(dc_check_ctx_t *ctx)
{
    if (ctx->opts->pooled_url == NULL)
        return;
    const char *origin = ctx->opts->pooled_origin ? ctx->opts->pooled_origin : "--pooled-url";
    char *schema = NULL;
    char *url = dc_pg_url_for_libpq(ctx->opts->pooled_url, &schema);
    free(schema);
    PGconn *conn = NULL;
    dc_error_t err;
    dc_error_clear(&err);
    char direct_id[160], pooled_id[160], evidence[256];
    long pid = 0;
    if (dc_pg_connect(url, "check pooled", &conn, &err) != 0) {
        dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_FAILED,
                     "cannot connect with the pooled URL (from %s): %s", origin, err.message);
    } else if (ctx->conn == NULL) {
        dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_SKIPPED,
                     "connected, but the direct URL did not: nothing to compare it with");
    } else if (dc_pg_instance(ctx->conn, true, direct_id, sizeof(direct_id), &err) != 0 ||
               dc_pg_instance(conn, true, pooled_id, sizeof(pooled_id), &err) != 0) {
        dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_FAILED,
                     "cannot tell which database the pooled URL reaches: %s", err.message);
    } else if (strcmp(direct_id, pooled_id) != 0) {
        dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_FAILED,
                     "the pooled URL reaches another database than the direct URL (server/port/"
                     "database %s, the direct one %s): fix the pooled URL (from %s), or "
                     "--pooled-url none",
                     pooled_id, direct_id, origin);
    } else {
        int pooled = probe_pooled(conn, &pid, evidence, sizeof(evidence));
        if (pooled < 0)
            dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_FAILED, "%s", evidence);
        else if (pooled)
            dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_OK,
                         "reaches the same database as the direct URL, through a pooler (%s)",
                         evidence);
        else
            dc_check_add(ctx->report, POOLED, POOLED_T, DC_CHECK_WARNING,
                         "reaches the same database as the direct URL, but not through a pooler "
                         "(server pid %ld is the session's own): point the pooled URL (from %s) "
                         "at the pooler (PgBouncer...)",
                         pid, origin);
    }
    if (conn != NULL)
        PQfinish(conn);
    free(url);
}
