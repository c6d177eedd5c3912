/* Connections and statements: libpq with the URL's secrets registered for redaction, and every
 * failure turned into one line naming what failed, the SQLSTATE and what to do. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *percent_decode(const char *s, size_t len)
{
    char *out = dc_malloc(len + 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len + 1 && hex_value(s[i + 1]) >= 0 &&
            hex_value(s[i + 2]) >= 0) {
            out[j++] = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

char *dc_pg_url_for_libpq(const char *url, char **schema)
{
    static const char *const prisma_only[] = {
        "schema",    "connection_limit", "pool_timeout",
        "pgbouncer", "socket_timeout",   "statement_cache_size",
        "sslaccept", "sslidentity",      NULL};
    *schema = NULL;
    const char *query = strchr(url, '?');
    if (query == NULL ||
        !(dc_str_starts_with(url, "postgresql://") || dc_str_starts_with(url, "postgres://")))
        return dc_strdup(url);
    dc_buf_t out = {0};
    dc_buf_append(&out, url, (size_t)(query - url));
    bool first = true;
    for (const char *p = query + 1; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        bool drop = false;
        for (int i = 0; prisma_only[i] != NULL; i++) {
            if (strlen(prisma_only[i]) == key_len && strncmp(p, prisma_only[i], key_len) == 0)
                drop = true;
        }
        if (drop && key_len == 6 && strncmp(p, "schema", 6) == 0 && eq != NULL) {
            free(*schema);
            *schema = percent_decode(eq + 1, len - key_len - 1);
        }
        if (!drop && len > 0) {
            dc_buf_append(&out, first ? "?" : "&", 1);
            dc_buf_append(&out, p, len);
            first = false;
        }
        p += len + (amp ? 1 : 0);
    }
    return out.data;
}

static void append_conninfo(dc_buf_t *b, const char *keyword, const char *value)
{
    dc_buf_appendf(b, "%s%s='", b->len ? " " : "", keyword);
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            dc_buf_append(b, "\\", 1);
        dc_buf_append(b, p, 1);
    }
    dc_buf_append(b, "'", 1);
}

char *dc_pg_conninfo(const char *url, const char *database, char **password)
{
    char *parse_error = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_error);
    if (opts == NULL) {
        PQfreemem(parse_error);
        return NULL;
    }
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    if (password != NULL)
        *password = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || (database != NULL && strcmp(o->keyword, "dbname") == 0))
            continue;
        if (password != NULL && strcmp(o->keyword, "password") == 0)
            *password = dc_strdup(o->val);
        else if (password != NULL && strcmp(o->keyword, "sslpassword") == 0)
            dc_log_warn("sslpassword is not passed on to child processes; use an unencrypted "
                        "client key");
        else
            append_conninfo(&b, o->keyword, o->val);
    }
    if (database != NULL)
        append_conninfo(&b, "dbname", database);
    PQconninfoFree(opts);
    return b.data;
}

char *dc_pg_url_with_database(const char *url, const char *database)
{
    char *conninfo = dc_pg_conninfo(url, database, NULL);
    return conninfo ? conninfo : dc_strdup(url);
}

void dc_pg_register_secrets(const char *url)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    if (opts == NULL) {
        /* a Prisma URL (?pgbouncer=true, ?schema=...) that libpq refuses: its libpq form */
        PQfreemem(errmsg);
        errmsg = NULL;
        char *schema = NULL;
        char *libpq = dc_pg_url_for_libpq(url, &schema);
        free(schema);
        opts = libpq != NULL ? PQconninfoParse(libpq, &errmsg) : NULL;
        free(libpq);
        if (opts == NULL) {
            PQfreemem(errmsg);
            return;
        }
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val != NULL &&
            (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0))
            dc_secret_register(o->val);
    }
    PQconninfoFree(opts);
}

void dc_pg_url_display(const char *url, char *out, size_t out_size)
{
    dc_redact(url, out, out_size);
}

/* libpq's multi-line messages become one line, with runs of white space collapsed. */
static void fold_lines(char *s)
{
    char *out = s;
    bool space = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\t' || *p == ' ' || *p == '\r') {
            space = out != s;
            continue;
        }
        if (space)
            *out++ = ' ';
        space = false;
        *out++ = *p;
    }
    *out = '\0';
}

static const char *connect_hint(const char *msg, const char *purpose)
{
    bool bad_password =
        strstr(msg, "password authentication failed") || strstr(msg, "no password supplied");
    if (bad_password && strcmp(purpose, "check pooled") == 0)
        return "check the user and password in the pooled URL (--pooled-url, "
               "DEPLOYCTL_POOLED_URL, DATABASE_URL or database.pooled_url)";
    if (bad_password)
        return "check the user and password in --database / DATABASE_URL_DIRECT / DIRECT_URL";
    if (strstr(msg, "does not exist"))
        return "check the database and user names in the URL";
    if (strstr(msg, "Connection refused") || strstr(msg, "No such file or directory") ||
        strstr(msg, "could not translate host name") || strstr(msg, "timeout expired"))
        return "check the host and port, and that the server is running and reachable";
    return "check the connection URL";
}

int dc_pg_connect(const char *url, const char *purpose, PGconn **out, dc_error_t *err)
{
    char shown[512];
    char application[64];
    if (url == NULL || *url == '\0')
        return dc_error_set(err, "no database given: use --database URL, DATABASE_URL_DIRECT, "
                                 "DIRECT_URL or DATABASE_URL, or database.url in the config file");
    dc_pg_register_secrets(url);
    dc_pg_url_display(url, shown, sizeof(shown));
    snprintf(application, sizeof(application), "deployctl %s", purpose);

    char *parse_error = NULL;
    PQconninfoOption *check = PQconninfoParse(url, &parse_error);
    if (check == NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", parse_error ? parse_error : "out of memory");
        PQfreemem(parse_error);
        fold_lines(msg);
        return dc_error_set(err, "invalid database URL %s: %s", shown, msg);
    }
    PQconninfoFree(check);

    /* The URL comes last so that what the user wrote wins over our defaults. TCP keepalives
     * (probes only while the connection is idle on the wire) find a peer gone silently (a
     * network partition, a failed-over host) in about a minute instead of the kernel's two
     * hours, so a runner holding locks, or a backup, does not wait forever; over a Unix socket
     * libpq ignores them. */
    const char *keys[] = {
        "connect_timeout",     "application_name", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "dbname",     NULL};
    const char *values[] = {"10", application, "1", "30", "10", "3", url, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL)
        return dc_error_set(err, "cannot connect to %s: out of memory", shown);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        fold_lines(msg);
        PQfinish(conn);
        return dc_error_set(err, "cannot connect to %s: %s (%s)", shown, msg,
                            connect_hint(msg, purpose));
    }
    *out = conn;
    return 0;
}

#define DROP_ATTEMPTS 4

int dc_pg_drop_database(const char *url, const char *purpose, dc_error_t *err)
{
    char name[256];
    if (dc_pg_url_database(url, name, sizeof(name), err) != 0)
        return -1;
    char *maint_url = dc_pg_url_with_database(url, "postgres");
    PGconn *maint = NULL;
    int rc = dc_pg_connect(maint_url, purpose, &maint, err);
    free(maint_url);
    if (rc == 0) {
        char *ident = dc_pg_quote_ident(maint, name);
        char *sql = dc_sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
        /* FORCE ends the sessions in the database, then waits up to 5 s for them to be gone;
         * one slow to exit, or one connecting meanwhile, makes it fail with 55006 (object in
         * use). That passes: a few more tries before a scratch database is left behind. */
        for (int attempt = 1;; attempt++) {
            rc = dc_pg_exec(maint, sql, err);
            if (rc == 0 || attempt == DROP_ATTEMPTS ||
                strstr(err->message, "SQLSTATE 55006") == NULL)
                break;
            dc_log_debug("%s; trying again", err->message);
            dc_sleep_ms(500);
        }
        free(sql);
        free(ident);
        PQfinish(maint);
    }
    if (rc != 0)
        dc_error_prefix(err, "could not drop database %s: ", name);
    return rc;
}

int dc_pg_url_database(const char *url, char *out, size_t out_size, dc_error_t *err)
{
    char *parse_error = NULL;
    const char *name = NULL;
    const char *user = NULL;
    PQconninfoOption *opts = PQconninfoParse(url ? url : "", &parse_error);
    if (opts == NULL) {
        char shown[512];
        dc_pg_url_display(url, shown, sizeof(shown));
        PQfreemem(parse_error);
        return dc_error_set(err, "invalid database URL %s", shown);
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val != NULL && *o->val && strcmp(o->keyword, "dbname") == 0)
            name = o->val;
        if (o->val != NULL && *o->val && strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    /* libpq's own fallbacks: PGDATABASE, then the user name. */
    if (name == NULL)
        name = getenv("PGDATABASE");
    if (name == NULL || *name == '\0')
        name = user;
    if (name == NULL || *name == '\0')
        name = getenv("PGUSER");
    if (name == NULL || *name == '\0') {
        struct passwd *pw = getpwuid(geteuid());
        name = pw ? pw->pw_name : "postgres";
    }
    snprintf(out, out_size, "%s", name);
    PQconninfoFree(opts);
    return 0;
}

int dc_pg_error(PGconn *conn, const PGresult *res, const char *what, dc_error_t *err)
{
    if (res == NULL || PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) == NULL) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", conn ? PQerrorMessage(conn) : "no connection");
        fold_lines(msg);
        if (conn != NULL && PQstatus(conn) == CONNECTION_BAD)
            return dc_error_set(err, "%s: lost the connection to the server: %s", what, msg);
        return dc_error_set(err, "%s: %s", what, msg);
    }
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    char msg[DC_ERROR_MAX];
    snprintf(msg, sizeof(msg), "%s: %s (SQLSTATE %s)%s%s%s%s", what, primary, state ? state : "?",
             detail ? "; " : "", detail ? detail : "", hint ? "; hint: " : "", hint ? hint : "");
    fold_lines(msg);
    return dc_error_set(err, "%s", msg);
}

int dc_pg_exec(PGconn *conn, const char *sql, dc_error_t *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char what[160];
        snprintf(what, sizeof(what), "%.120s%s failed", sql, strlen(sql) > 120 ? "..." : "");
        dc_pg_error(conn, res, what, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int dc_pg_commit(PGconn *conn, dc_error_t *err)
{
    PGresult *res = PQexec(conn, "COMMIT");
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK) {
        dc_pg_error(conn, res, "COMMIT failed", err);
        PQclear(res);
        return -1;
    }
    /* A transaction that had already failed answers COMMIT with ROLLBACK, and no error. */
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed)
        return dc_error_set(err, "the transaction had failed and was rolled back instead of "
                                 "committed");
    return 0;
}

PGresult *dc_pg_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             dc_error_t *err)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char what[160];
        snprintf(what, sizeof(what), "query %.100s%s failed", sql, strlen(sql) > 100 ? "..." : "");
        dc_pg_error(conn, res, what, err);
        PQclear(res);
        return NULL;
    }
    return res;
}

PGresult *dc_pg_query(PGconn *conn, const char *sql, dc_error_t *err)
{
    return dc_pg_query_params(conn, sql, 0, NULL, err);
}

char *dc_pg_quote_ident(PGconn *conn, const char *ident)
{
    char *q = PQescapeIdentifier(conn, ident, strlen(ident));
    char *copy = dc_strdup(q ? q : "\"\"");
    PQfreemem(q);
    return copy;
}

char *dc_pg_column_list(PGconn *conn, char *const *columns, size_t count)
{
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    for (size_t i = 0; i < count; i++) {
        char *c = dc_pg_quote_ident(conn, columns[i]);
        dc_buf_appendf(&b, "%s%s", i ? ", " : "", c);
        free(c);
    }
    return b.data;
}

int dc_pg_server_major(PGconn *conn)
{
    return PQserverVersion(conn) / 10000;
}

int dc_pg_instance(PGconn *conn, bool with_database, char *out, size_t size, dc_error_t *err)
{
    /* the server's own port setting, not inet_server_port(): a pooler may reach it by a unix
     * socket where a direct URL uses TCP. The start time as epoch seconds, not as text: the
     * text follows the session's TimeZone and DateStyle, which the pooled URL's role may set
     * otherwise. The database is joined in SQL, never cut from the result: its name may hold a
     * '/'. */
    PGresult *res = dc_pg_query(
        conn,
        with_database ? "SELECT pg_catalog.concat_ws('/', pg_catalog.current_setting('port'),"
                        " extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text,"
                        " pg_catalog.current_database())"
                      : "SELECT pg_catalog.concat_ws('/', pg_catalog.current_setting('port'),"
                        " extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text)",
        err);
    if (res == NULL)
        return -1;
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
