/* Prisma's history table, <schema>._prisma_migrations, created and written exactly as Prisma's
 * schema engine does (same DDL, random UUID v4 ids, a row committed before its migration runs),
 * so that `prisma migrate status` and deployctl agree. Not the runner's decisions: runner.c. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/migrate.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "migrate_intern.h"

/* Prisma's DDL for PostgreSQL (sql-schema-connector), column for column. */
#define PRISMA_HISTORY_DDL                                                                         \
    "CREATE TABLE %s (\n"                                                                          \
    "    id                      VARCHAR(36) PRIMARY KEY NOT NULL,\n"                              \
    "    checksum                VARCHAR(64) NOT NULL,\n"                                          \
    "    finished_at             TIMESTAMPTZ,\n"                                                   \
    "    migration_name          VARCHAR(255) NOT NULL,\n"                                         \
    "    logs                    TEXT,\n"                                                          \
    "    rolled_back_at          TIMESTAMPTZ,\n"                                                   \
    "    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),\n"                            \
    "    applied_steps_count     INTEGER NOT NULL DEFAULT 0\n"                                     \
    ")"

const char *dc_history_schema(const char *schema)
{
    return schema != NULL && *schema ? schema : "public";
}

char *dc_history_table(PGconn *conn, const char *schema)
{
    char *s = dc_pg_quote_ident(conn, dc_history_schema(schema));
    char *t = dc_sprintf("%s.\"_prisma_migrations\"", s);
    free(s);
    return t;
}

static int table_exists(PGconn *conn, const char *schema, bool *exists, dc_error_t *err)
{
    const char *params[] = {dc_history_schema(schema)};
    PGresult *res = dc_pg_query_params(
        conn,
        "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '._prisma_migrations')"
        " IS NOT NULL",
        1, params, err);
    if (res == NULL)
        return -1;
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

int dc_history_ensure(PGconn *conn, const char *schema, dc_error_t *err)
{
    bool exists;
    if (table_exists(conn, schema, &exists, err) != 0)
        return -1;
    if (exists)
        return 0;
    char *quoted_schema = dc_pg_quote_ident(conn, dc_history_schema(schema));
    char *create_schema = dc_sprintf("CREATE SCHEMA IF NOT EXISTS %s", quoted_schema);
    char *table = dc_history_table(conn, schema);
    char *ddl = dc_sprintf(PRISMA_HISTORY_DDL, table);
    int rc = dc_pg_exec(conn, create_schema, err);
    if (rc == 0)
        rc = dc_pg_exec(conn, ddl, err);
    free(ddl);
    free(table);
    free(create_schema);
    free(quoted_schema);
    if (rc != 0)
        return dc_error_prefix(err, "cannot create the migration history table: ");
    return 0;
}

int dc_history_require_baseline(PGconn *conn, const char *schema, dc_error_t *err)
{
    bool exists;
    if (table_exists(conn, schema, &exists, err) != 0)
        return -1;
    if (exists)
        return 0;
    /* What Prisma's schema describer sees in the schema: tables, views, enums. */
    const char *params[] = {dc_history_schema(schema)};
    PGresult *res = dc_pg_query_params(
        conn,
        "SELECT count(*), coalesce(pg_catalog.string_agg(what, ', '), '') FROM ("
        " SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'view ' ELSE 'table ' END"
        "   || pg_catalog.quote_ident(c.relname) AS what"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f', 'v', 'm')"
        "   AND c.relname <> '_prisma_migrations'"
        " UNION ALL SELECT 'enum ' || pg_catalog.quote_ident(t.typname)"
        " FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = $1 AND t.typtype = 'e'"
        " ORDER BY 1 LIMIT 5) o",
        1, params, err);
    if (res == NULL)
        return dc_error_prefix(err, "cannot read the schema: ");
    int rc = 0;
    if (atoi(PQgetvalue(res, 0, 0)) > 0)
        rc = dc_error_set_code(
            err, DC_EXIT_PRECHECK,
            "schema %s is not empty (%s%s) but has no _prisma_migrations table, so deploy was "
            "refused and nothing was written (as Prisma's P3005): if these migrations already "
            "built this schema, baseline it: run 'deployctl migrate resolve --applied NAME' for "
            "each migration already reflected in the schema, then deploy the rest; if the "
            "schema is the wrong one, check the URL's ?schema=",
            dc_history_schema(schema), PQgetvalue(res, 0, 1),
            atoi(PQgetvalue(res, 0, 0)) >= 5 ? ", ..." : "");
    PQclear(res);
    return rc;
}

static char *value_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : dc_strdup(PQgetvalue(res, row, col));
}

int dc_history_read(PGconn *conn, const char *schema, dc_history_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (table_exists(conn, schema, &out->exists, err) != 0)
        return dc_error_prefix(err, "cannot read the migration history: ");
    if (!out->exists)
        return 0;
    char *table = dc_history_table(conn, schema);
    char *sql = dc_sprintf("SELECT id, checksum, migration_name, logs, started_at::text,"
                           " finished_at::text, rolled_back_at::text, applied_steps_count"
                           " FROM %s ORDER BY started_at, migration_name, id",
                           table);
    PGresult *res = dc_pg_query(conn, sql, err);
    free(sql);
    free(table);
    if (res == NULL)
        return dc_error_prefix(err, "cannot read the migration history: ");
    out->count = (size_t)PQntuples(res);
    out->rows = dc_calloc(out->count + 1, sizeof(dc_history_row_t));
    for (int r = 0; r < PQntuples(res); r++) {
        dc_history_row_t *row = &out->rows[r];
        row->id = dc_strdup(PQgetvalue(res, r, 0));
        row->checksum = dc_strdup(PQgetvalue(res, r, 1));
        row->migration_name = dc_strdup(PQgetvalue(res, r, 2));
        row->logs = value_or_null(res, r, 3);
        row->started_at = value_or_null(res, r, 4);
        row->finished_at = value_or_null(res, r, 5);
        row->rolled_back_at = value_or_null(res, r, 6);
        row->applied_steps_count = atoi(PQgetvalue(res, r, 7));
    }
    PQclear(res);
    return 0;
}

void dc_history_new_id(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* RAND_bytes only fails without an entropy source; abort rather than reuse ids. */
        fprintf(stderr, "deployctl: no random bytes for a migration id\n");
        abort();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static int run_update(PGconn *conn, const char *sql, int n, const char *const *params,
                      dc_error_t *err)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = dc_pg_error(conn, res, "updating the migration history", err);
    else if (strcmp(PQcmdTuples(res), "1") != 0)
        rc = dc_error_set(err,
                          "the migration history row %s is gone: another tool changed "
                          "_prisma_migrations meanwhile; run 'deployctl migrate status'",
                          params[0]);
    PQclear(res);
    return rc;
}

int dc_history_insert(PGconn *conn, const char *table, const dc_migration_t *m, char id[37],
                      dc_error_t *err)
{
    dc_history_new_id(id);
    char *sql = dc_sprintf("INSERT INTO %s (id, checksum, migration_name, started_at,"
                           " applied_steps_count) VALUES ($1, $2, $3, now(), 0)",
                           table);
    const char *params[] = {id, m->checksum, m->name};
    int rc = run_update(conn, sql, 3, params, err);
    free(sql);
    return rc;
}

int dc_history_finish(PGconn *conn, const char *table, const char *id, dc_error_t *err)
{
    char *sql = dc_sprintf("UPDATE %s SET finished_at = now(), applied_steps_count = 1,"
                           " logs = NULL WHERE id = $1",
                           table);
    const char *params[] = {id};
    int rc = run_update(conn, sql, 1, params, err);
    free(sql);
    return rc;
}

int dc_history_fail(PGconn *conn, const char *table, const char *id, const char *logs,
                    dc_error_t *err)
{
    char *sql = dc_sprintf("UPDATE %s SET logs = $2 WHERE id = $1", table);
    const char *params[] = {id, logs};
    int rc = run_update(conn, sql, 2, params, err);
    free(sql);
    return rc;
}

int dc_history_roll_back(PGconn *conn, const char *table, const char *id, dc_error_t *err)
{
    char *sql = dc_sprintf("UPDATE %s SET rolled_back_at = now() WHERE id = $1", table);
    const char *params[] = {id};
    int rc = run_update(conn, sql, 1, params, err);
    free(sql);
    return rc;
}

int dc_history_record_applied(PGconn *conn, const char *table, const dc_migration_t *m,
                              dc_error_t *err)
{
    char id[37];
    dc_history_new_id(id);
    /* Prisma's mark_migration_applied: logs '' and applied_steps_count left at its default. */
    char *sql = dc_sprintf("INSERT INTO %s (id, checksum, logs, migration_name, started_at,"
                           " finished_at) VALUES ($1, $2, '', $3, now(), now())",
                           table);
    const char *params[] = {id, m->checksum, m->name};
    int rc = run_update(conn, sql, 3, params, err);
    free(sql);
    return rc;
}
