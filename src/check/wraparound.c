/* The anti-wraparound check: tables close to the age at which autovacuum must freeze them. That
 * vacuum ("to prevent wraparound") does not give way to DDL as an ordinary autovacuum does: an
 * ALTER TABLE waits behind it for as long as it runs (hours on a big table), and every query on
 * the table queues behind the ALTER. Reads the catalog only. */
#include <stdlib.h>
#include <string.h>

#include "check_intern.h"

#define NAME  "wraparound"
#define TITLE "Anti-wraparound vacuum"

/* Share of the freeze age past which a table is reported: autovacuum starts at 100%. */
#define NEAR "0.9"

/* User tables (and materialized views, and their TOAST tables under the owning table's name)
 * whose relfrozenxid age passes 90% of the freeze age autovacuum uses for them: the
 * autovacuum_freeze_max_age setting, or the table's own storage parameter when lower (autovacuum
 * ignores a higher one); the same for multixacts. Columns: table, TOAST or not, xid age, its
 * limit, multixact age, its limit, the pid of an anti-wraparound vacuum running on it (NULL
 * when none, or hidden from the role). */
static const char WRAPAROUND_SQL[] =
    "WITH t AS ("
    " SELECT c.oid, coalesce(p.oid, c.oid) AS owner_oid, c.relkind = 't' AS toast,"
    "  pg_catalog.age(c.relfrozenxid)::bigint AS xid_age,"
    "  pg_catalog.mxid_age(c.relminmxid)::bigint AS mxid_age,"
    "  least(pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint,"
    "   (SELECT o.option_value::bigint FROM pg_catalog.pg_options_to_table(c.reloptions) o"
    "    WHERE o.option_name = 'autovacuum_freeze_max_age')) AS xid_limit,"
    "  least(pg_catalog.current_setting('autovacuum_multixact_freeze_max_age')::bigint,"
    "   (SELECT o.option_value::bigint FROM pg_catalog.pg_options_to_table(c.reloptions) o"
    "    WHERE o.option_name = 'autovacuum_multixact_freeze_max_age')) AS mxid_limit"
    " FROM pg_catalog.pg_class c"
    " LEFT JOIN pg_catalog.pg_class p ON c.relkind = 't' AND p.reltoastrelid = c.oid"
    " WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'::xid)"
    "SELECT t.owner_oid::pg_catalog.regclass::text, t.toast, t.xid_age, t.xid_limit,"
    " t.mxid_age, t.mxid_limit,"
    " (SELECT v.pid FROM pg_catalog.pg_stat_progress_vacuum v"
    "  JOIN pg_catalog.pg_stat_activity a ON a.pid = v.pid"
    "  WHERE v.relid = t.oid AND a.query LIKE '%to prevent wraparound%' LIMIT 1)"
    " FROM t JOIN pg_catalog.pg_class oc ON oc.oid = t.owner_oid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = oc.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"
    " AND (t.xid_age > " NEAR " * t.xid_limit OR t.mxid_age > " NEAR " * t.mxid_limit)"
    " ORDER BY t.xid_age::float8 / t.xid_limit DESC, 1";

static void report_table(dc_check_result_t *res, PGresult *rows, int r)
{
    const char *table = PQgetvalue(rows, r, 0);
    bool toast = strcmp(PQgetvalue(rows, r, 1), "t") == 0;
    double xid_age = atof(PQgetvalue(rows, r, 2)), xid_limit = atof(PQgetvalue(rows, r, 3));
    double mxid_age = atof(PQgetvalue(rows, r, 4)), mxid_limit = atof(PQgetvalue(rows, r, 5));
    bool by_xid = xid_age / xid_limit >= mxid_age / mxid_limit;
    double age = by_xid ? xid_age : mxid_age, limit = by_xid ? xid_limit : mxid_limit;
    const char *running = PQgetisnull(rows, r, 6) ? NULL : PQgetvalue(rows, r, 6);
    dc_check_add_item(res,
                      "%s%s: %s age %.0f is %.0f%% of the %.0f at which autovacuum must freeze "
                      "it%s%s%s",
                      table, toast ? " (its TOAST table)" : "",
                      by_xid ? "transaction ID" : "multixact ID", age, 100.0 * age / limit, limit,
                      running ? "; an anti-wraparound vacuum runs on it now (pid " : "",
                      running ? running : "", running ? ")" : "");
}

void dc_check_wraparound(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, NAME, TITLE);
        return;
    }
    dc_error_t err;
    PGresult *rows = dc_pg_query(ctx->conn, WRAPAROUND_SQL, &err);
    if (rows == NULL) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_FAILED,
                     "cannot read the tables' freeze ages: %s", err.message);
        return;
    }
    int n = PQntuples(rows);
    if (n == 0) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_OK,
                     "no table within 90%% of its autovacuum freeze age");
        PQclear(rows);
        return;
    }
    dc_check_result_t *res = dc_check_add(
        ctx->report, NAME, TITLE, DC_CHECK_WARNING,
        "%d table%s close to an anti-wraparound autovacuum, which does not give way to DDL: an "
        "ALTER on %s would wait behind it (and block every query behind the ALTER); VACUUM "
        "(FREEZE) %s before the deploy",
        n, n == 1 ? "" : "s", n == 1 ? "it" : "them", n == 1 ? "it" : "them");
    for (int r = 0; r < n; r++)
        report_table(res, rows, r);
    PQclear(rows);
}
