/* The database-side checks: sessions whose transactions or locks a migration's DDL would wait
 * behind, pg_dump's version against the server's, INVALID indexes left
 * by failed concurrent builds, connection slots, and forgotten prepared transactions. Each
 * only reads the catalog; none changes or ends anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_intern.h"
#include "deployctl/util.h"

/* Prisma's own migration lock: pg_advisory_lock(72707369), a bigint key, so pg_locks shows it
 * as classid 0, objid 72707369, objsubid 1. */
#define PRISMA_LOCK_KEY "72707369"
/* deployctl's own (DC_MIGRATE_LOCK_KEY, 0x64636d67 "dcmg"), held by every deployctl runner. */
#define DEPLOYCTL_LOCK_KEY "1684237671"

static bool is_true(PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* ---- long transactions and lock holders ---- */

#define LOCKS   "locks"
#define LOCKS_T "Long transactions and locks"

/* Every other session of this database that is in a transaction or holds or awaits a lock on
 * a table (or materialized view), oldest first: a migration's ALTER TABLE needs an ACCESS
 * EXCLUSIVE lock and waits for all of them, and every query after it waits behind it. The list
 * is driven by pg_locks, which every role may read: pg_stat_activity hides the state, start and
 * query of other roles' sessions unless the role has pg_read_all_stats, and then only
 * pg_locks shows that they are in the way. Columns: pid, user, application, state, age in
 * seconds (NULL when hidden), query, tables locked, tables locked ACCESS EXCLUSIVE, tables
 * waited for, whether the details are hidden, the pids it waits behind. */
static const char SESSIONS_SQL[] =
    "WITH locks AS ("
    " SELECT l.pid,"
    "  pg_catalog.string_agg(DISTINCT l.relation::pg_catalog.regclass::text, ', ')"
    "   FILTER (WHERE l.granted) AS held,"
    "  pg_catalog.string_agg(DISTINCT l.relation::pg_catalog.regclass::text, ', ')"
    "   FILTER (WHERE l.granted AND l.mode = 'AccessExclusiveLock') AS exclusive,"
    "  pg_catalog.string_agg(DISTINCT l.relation::pg_catalog.regclass::text, ', ')"
    "   FILTER (WHERE NOT l.granted) AS waiting"
    " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE l.locktype = 'relation' AND l.pid IS NOT NULL"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())"
    " AND c.relkind IN ('r', 'p', 'm')"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " GROUP BY l.pid),"
    " sessions AS ("
    " SELECT pid FROM pg_catalog.pg_stat_activity"
    " WHERE datname = pg_catalog.current_database() AND xact_start IS NOT NULL"
    " AND backend_type = 'client backend'"
    " UNION SELECT pid FROM locks)"
    "SELECT s.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),"
    " coalesce(a.state, ''),"
    " extract(epoch FROM pg_catalog.now() - a.xact_start)::float8,"
    " pg_catalog.left(pg_catalog.regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 100),"
    " k.held, k.exclusive, k.waiting, a.pid IS NULL OR a.backend_type IS NULL,"
    " (SELECT pg_catalog.string_agg(b::text, ', ')"
    "  FROM pg_catalog.unnest(pg_catalog.pg_blocking_pids(s.pid)) b)"
    " FROM sessions s LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.pid"
    " LEFT JOIN locks k ON k.pid = s.pid"
    " WHERE s.pid <> pg_catalog.pg_backend_pid()"
    " AND (a.backend_type IS NULL OR a.backend_type = 'client backend')"
    /* autovacuum workers have no user (and give way to DDL) */
    " AND (a.pid IS NULL OR a.usesysid IS NOT NULL)"
    " ORDER BY a.xact_start NULLS LAST, s.pid";

static const char PRISMA_LOCK_SQL[] =
    "SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.usename, ''),"
    " l.objid = " DEPLOYCTL_LOCK_KEY
    " FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a USING (pid)"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0"
    " AND l.objid IN (" PRISMA_LOCK_KEY ", " DEPLOYCTL_LOCK_KEY ") AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database())";

static const char *nullable(PGresult *rows, int r, int c)
{
    return PQgetisnull(rows, r, c) ? NULL : PQgetvalue(rows, r, c);
}

/* Reports one session when it is in the way. */
static void judge_session(dc_check_result_t *res, PGresult *rows, int r, double max_age)
{
    const char *pid = PQgetvalue(rows, r, 0), *user = PQgetvalue(rows, r, 1);
    const char *app = PQgetvalue(rows, r, 2), *state = PQgetvalue(rows, r, 3);
    bool hidden = is_true(rows, r, 9);
    double age = PQgetisnull(rows, r, 4) ? 0 : atof(PQgetvalue(rows, r, 4));
    const char *query = PQgetvalue(rows, r, 5);
    const char *tables = nullable(rows, r, 6), *exclusive = nullable(rows, r, 7);
    const char *waiting = nullable(rows, r, 8), *blockers = nullable(rows, r, 10);
    bool idle = dc_str_starts_with(state, "idle in transaction");
    char shown[32];
    dc_format_duration(age, shown, sizeof(shown));
    if (hidden) {
        /* Another role's session: only pg_locks tells that it is in the way. */
        if (tables == NULL && waiting == NULL)
            return;
        dc_check_raise(res, DC_CHECK_WARNING);
        if (tables != NULL)
            dc_check_add_item(res,
                              "pid %s (user %s: another role; its age, state and query are "
                              "hidden, details need pg_read_all_stats) holds %slocks on %s; "
                              "DDL on them would wait behind it",
                              pid, *user ? user : "unknown", exclusive ? "ACCESS EXCLUSIVE " : "",
                              exclusive ? exclusive : tables);
        else
            dc_check_add_item(res,
                              "pid %s (user %s: another role; details need pg_read_all_stats) "
                              "waits for a lock on %s behind pid %s: a lock queue exists",
                              pid, *user ? user : "unknown", waiting, blockers ? blockers : "?");
        return;
    }
    if (age >= max_age && tables != NULL) {
        dc_check_raise(res, DC_CHECK_FAILED);
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s', %s) has held locks on %s for %s; "
                          "DDL on them would wait and block every query behind it: %s",
                          pid, user, app, state, tables, shown, query);
    } else if (exclusive != NULL) {
        dc_check_raise(res, DC_CHECK_WARNING);
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s', %s) holds an ACCESS EXCLUSIVE "
                          "lock on %s (for %s): every query on it waits, and so would DDL: %s",
                          pid, user, app, state, exclusive, shown, query);
    } else if (age >= max_age && waiting == NULL) {
        dc_check_raise(res, DC_CHECK_WARNING);
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s', %s) has had a transaction open "
                          "for %s (no table locks; it holds back vacuum): %s",
                          pid, user, app, state, shown, query);
    } else if (idle && tables != NULL) {
        dc_check_raise(res, DC_CHECK_WARNING);
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s') is idle in transaction for %s "
                          "holding locks on %s: %s",
                          pid, user, app, shown, tables, query);
    }
    if (waiting != NULL) {
        dc_check_raise(res, DC_CHECK_WARNING);
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s') waits for a lock on %s behind "
                          "pid %s: a lock queue exists, and DDL would join it: %s",
                          pid, user, app, waiting, blockers ? blockers : "?", query);
    }
}

static void judge_prisma_lock(dc_check_ctx_t *ctx, dc_check_result_t *res)
{
    PGresult *rows = PQexec(ctx->conn, PRISMA_LOCK_SQL);
    for (int r = 0; PQresultStatus(rows) == PGRES_TUPLES_OK && r < PQntuples(rows); r++) {
        dc_check_raise(res, DC_CHECK_FAILED);
        bool ours = strcmp(PQgetvalue(rows, r, 3), "t") == 0;
        dc_check_add_item(res,
                          "pid %s (user %s, application '%s') holds %s migration lock "
                          "(advisory lock %s): another migration is running",
                          PQgetvalue(rows, r, 0), PQgetvalue(rows, r, 2), PQgetvalue(rows, r, 1),
                          ours ? "deployctl's" : "Prisma's",
                          ours ? DEPLOYCTL_LOCK_KEY : PRISMA_LOCK_KEY);
    }
    PQclear(rows);
}

void dc_check_locks(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, LOCKS, LOCKS_T);
        return;
    }
    dc_error_t err;
    PGresult *rows = dc_pg_query(ctx->conn, SESSIONS_SQL, &err);
    if (rows == NULL) {
        dc_check_add(ctx->report, LOCKS, LOCKS_T, DC_CHECK_FAILED,
                     "cannot read the other sessions: %s", err.message);
        return;
    }
    double max_age = (double)ctx->opts->max_transaction_age_ms / 1000.0;
    char shown[32];
    dc_format_duration(max_age, shown, sizeof(shown));
    dc_check_result_t *res = dc_check_add(ctx->report, LOCKS, LOCKS_T, DC_CHECK_OK, "%s", "");
    for (int r = 0; r < PQntuples(rows); r++)
        judge_session(res, rows, r, max_age);
    PQclear(rows);
    judge_prisma_lock(ctx, res);
    free(res->detail);
    if (res->item_count == 0)
        res->detail = dc_sprintf("no transaction older than %s, no session idle in transaction "
                                 "holding table locks",
                                 shown);
    else
        res->detail = dc_sprintf("%zu session%s in the way of DDL (transactions older than %s "
                                 "fail the check; nothing was ended: end them yourself, e.g. "
                                 "SELECT pg_terminate_backend(pid), if that is safe)",
                                 res->item_count, res->item_count == 1 ? "" : "s", shown);
}

/* ---- pg_dump ---- */

#define PG_DUMP   "pg-dump"
#define PG_DUMP_T "pg_dump"

void dc_check_pg_dump(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, PG_DUMP, PG_DUMP_T);
        return;
    }
    int major = dc_pg_server_major(ctx->conn);
    dc_pg_dump_t dump;
    dc_error_t err;
    if (dc_pg_dump_find(ctx->opts->pg_dump_path, major, &dump, &err) != 0) {
        dc_check_add(ctx->report, PG_DUMP, PG_DUMP_T, DC_CHECK_FAILED, "%s", err.message);
        return;
    }
    dc_check_add(ctx->report, PG_DUMP, PG_DUMP_T, DC_CHECK_OK,
                 "%s is version %d.%d, the server %d: compatible", dump.path, dump.major,
                 dump.minor, major);
    dc_pg_dump_free(&dump);
}

/* ---- INVALID indexes ---- */

#define INVALID_INDEXES   "invalid-indexes"
#define INVALID_INDEXES_T "Invalid indexes"

/* A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: never used by queries,
 * still maintained on every write, and its name makes the retried migration fail with
 * "relation already exists". Builds still in progress are invalid too, and not reported. */
static const char INVALID_INDEXES_SQL[] =
    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ci.relname),"
    " i.indrelid::pg_catalog.regclass::text"
    " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace"
    " WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p"
    "                 WHERE p.index_relid = i.indexrelid)"
    /* The progress view hides other roles' builds; pg_locks does not: a concurrent build
     * holds SHARE UPDATE EXCLUSIVE on its table from start to end (so does a VACUUM, whose
     * table's failed index is then reported by the next check). */
    " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
    "                 WHERE l.locktype = 'relation' AND l.granted"
    "                 AND l.pid <> pg_catalog.pg_backend_pid()"
    "                 AND ((l.relation = i.indrelid AND l.mode = 'ShareUpdateExclusiveLock')"
    "                      OR l.relation = i.indexrelid))"
    " ORDER BY 1";

void dc_check_invalid_indexes(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, INVALID_INDEXES, INVALID_INDEXES_T);
        return;
    }
    dc_error_t err;
    PGresult *rows = dc_pg_query(ctx->conn, INVALID_INDEXES_SQL, &err);
    if (rows == NULL) {
        dc_check_add(ctx->report, INVALID_INDEXES, INVALID_INDEXES_T, DC_CHECK_FAILED,
                     "cannot read the indexes: %s", err.message);
        return;
    }
    int n = PQntuples(rows);
    if (n == 0) {
        dc_check_add(ctx->report, INVALID_INDEXES, INVALID_INDEXES_T, DC_CHECK_OK, "none");
    } else {
        dc_check_result_t *res =
            dc_check_add(ctx->report, INVALID_INDEXES, INVALID_INDEXES_T, DC_CHECK_WARNING,
                         "%d INVALID index%s, left by a failed CREATE INDEX CONCURRENTLY: drop "
                         "each (DROP INDEX CONCURRENTLY name) before the migration retries it",
                         n, n == 1 ? "" : "es");
        for (int r = 0; r < n; r++)
            dc_check_add_item(res, "%s on %s", PQgetvalue(rows, r, 0), PQgetvalue(rows, r, 1));
    }
    PQclear(rows);
}

/* ---- connection slots ---- */

#define CONNECTIONS   "connections"
#define CONNECTIONS_T "Connection headroom"

/* Three limits apply to a new connection: the server's max_connections (less the slots
 * reserved for superusers), the database's CONNECTION LIMIT and the role's; the last two do not
 * bind superusers. Columns: limit, connections counted against it. */
/* Other roles' sessions show no backend_type unless the role has pg_read_all_stats: a hidden
 * session connected to a database counts as a client (possibly an autovacuum worker: the count
 * errs on the safe side). */
#define CLIENT_SESSION                                                                             \
    "(backend_type = 'client backend' OR (backend_type IS NULL AND datid IS NOT NULL))"

static const char HEADROOM_SQL[] =
    "SELECT pg_catalog.current_setting('max_connections')::int"
    "   - CASE WHEN r.rolsuper THEN 0"
    "     ELSE pg_catalog.current_setting('superuser_reserved_connections')::int END,"
    " (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE " CLIENT_SESSION "),"
    " CASE WHEN r.rolsuper THEN -1 ELSE d.datconnlimit END,"
    " (SELECT count(*) FROM pg_catalog.pg_stat_activity"
    "  WHERE datname = d.datname AND " CLIENT_SESSION "),"
    " CASE WHEN r.rolsuper THEN -1 ELSE r.rolconnlimit END,"
    " (SELECT count(*) FROM pg_catalog.pg_stat_activity"
    "  WHERE usename = r.rolname AND " CLIENT_SESSION ")"
    " FROM pg_catalog.pg_roles r, pg_catalog.pg_database d"
    " WHERE r.rolname = current_user AND d.datname = pg_catalog.current_database()";

void dc_check_connection_headroom(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, CONNECTIONS, CONNECTIONS_T);
        return;
    }
    dc_error_t err;
    PGresult *res = dc_pg_query(ctx->conn, HEADROOM_SQL, &err);
    if (res == NULL || PQntuples(res) != 1) {
        dc_check_add(ctx->report, CONNECTIONS, CONNECTIONS_T, DC_CHECK_FAILED,
                     "cannot read the connection limits: %s",
                     res == NULL ? err.message : "no row for the current role and database");
        PQclear(res);
        return;
    }
    static const char *const what[] = {"max_connections", "the database's CONNECTION LIMIT",
                                       "the role's CONNECTION LIMIT"};
    int binding = 0, limit = 0, used = 0, left = 0;
    for (int i = 0; i < 3; i++) {
        int l = atoi(PQgetvalue(res, 0, 2 * i)), u = atoi(PQgetvalue(res, 0, 2 * i + 1));
        if (l < 0) /* -1: no limit */
            continue;
        if (i == 0 || l - u < left) {
            binding = i;
            limit = l;
            used = u;
            left = l - u;
        }
    }
    PQclear(res);
    int needed = ctx->opts->connections_needed;
    char shown[160] = "";
    dc_check_status_t status = DC_CHECK_OK;
    /* A migration needs one connection; a release's backup needs its workers too, but a
     * smaller --jobs makes do with fewer, so that shortage only warns. */
    if (left < 1) {
        status = DC_CHECK_FAILED;
        snprintf(shown, sizeof(shown), ": none left; close idle sessions or raise the limit");
    } else if (left < needed) {
        status = DC_CHECK_WARNING;
        snprintf(shown, sizeof(shown),
                 ": fewer than a release's backup opens; lower --jobs or "
                 "close idle sessions");
    } else if (used * 10 > limit * 8) {
        status = DC_CHECK_WARNING;
        snprintf(shown, sizeof(shown), ": over 80%% used");
    }
    dc_check_add(ctx->report, CONNECTIONS, CONNECTIONS_T, status,
                 "%d of %d connections in use under %s, %d free (a release with these --jobs "
                 "opens %d)%s",
                 used, limit, what[binding], left < 0 ? 0 : left, needed, shown);
}

/* ---- prepared transactions ---- */

#define PREPARED   "prepared-transactions"
#define PREPARED_T "Prepared transactions"

/* A prepared (two-phase) transaction keeps its locks until someone commits or rolls it back,
 * even across restarts: DDL on its tables would wait forever. */
void dc_check_prepared_xacts(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, PREPARED, PREPARED_T);
        return;
    }
    dc_error_t err;
    PGresult *rows =
        dc_pg_query(ctx->conn,
                    "SELECT gid, owner,"
                    " extract(epoch FROM pg_catalog.now() - prepared)::float8"
                    " FROM pg_catalog.pg_prepared_xacts"
                    " WHERE database = pg_catalog.current_database() ORDER BY prepared",
                    &err);
    if (rows == NULL) {
        dc_check_add(ctx->report, PREPARED, PREPARED_T, DC_CHECK_FAILED,
                     "cannot read pg_prepared_xacts: %s", err.message);
        return;
    }
    int n = PQntuples(rows);
    if (n == 0) {
        dc_check_add(ctx->report, PREPARED, PREPARED_T, DC_CHECK_OK, "none");
        PQclear(rows);
        return;
    }
    double max_age = (double)ctx->opts->max_transaction_age_ms / 1000.0;
    dc_check_result_t *res = dc_check_add(
        ctx->report, PREPARED, PREPARED_T, DC_CHECK_WARNING,
        "%d prepared transaction%s pending; they hold their locks until COMMIT PREPARED or "
        "ROLLBACK PREPARED 'gid'",
        n, n == 1 ? "" : "s");
    for (int r = 0; r < n; r++) {
        double age = atof(PQgetvalue(rows, r, 2));
        char shown[32];
        dc_format_duration(age, shown, sizeof(shown));
        if (age >= max_age)
            dc_check_raise(res, DC_CHECK_FAILED);
        dc_check_add_item(res, "'%s' (owner %s), prepared %s ago", PQgetvalue(rows, r, 0),
                          PQgetvalue(rows, r, 1), shown);
    }
    PQclear(rows);
}
