/* Catalog queries a snapshot needs: the tables and their stored columns, sequence values
 * and the table locks that keep the schema still meanwhile (Prisma's migration history is read
 * by the migrate module: dc_history_read). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/pg.h"
#include "deployctl/util.h"

#define LOCK_BATCH 500

char *dc_pg_text_array(const char *const *items, size_t count)
{
    dc_buf_t b = {0};
    dc_buf_append(&b, "{", 1);
    for (size_t i = 0; items != NULL && i < count && items[i] != NULL; i++) {
        if (i > 0)
            dc_buf_append(&b, ",", 1);
        dc_buf_append(&b, "\"", 1);
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                dc_buf_append(&b, "\\", 1);
            dc_buf_append(&b, p, 1);
        }
        dc_buf_append(&b, "\"", 1);
    }
    dc_buf_append(&b, "}", 1);
    return b.data;
}

/* The relations a dump covers: user schemas, not temporary, not owned by an extension unless
 * the extension declared them configuration (as pg_dump does). */
#define RELATION_FILTER                                                                            \
    " n.nspname NOT IN ('pg_catalog', 'information_schema')"                                       \
    " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"                                            \
    " AND n.nspname <> ALL ($1::text[])"                                                           \
    " AND c.relpersistence <> 't'"                                                                 \
    " AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"                                       \
    "   WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"                              \
    "   AND d.objid = c.oid AND d.deptype = 'e')"                                                  \
    "   OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig)))"

static int load_columns(PGconn *conn, dc_pg_table_list_t *list, const char *excluded,
                        dc_error_t *err)
{
    const char *generated = dc_pg_server_major(conn) >= 12 ? " AND a.attgenerated = ''" : "";
    char *sql = dc_sprintf("SELECT a.attrelid, a.attname"
                           " FROM pg_catalog.pg_attribute a"
                           " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
                           " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped%s"
                           " AND " RELATION_FILTER " ORDER BY a.attrelid, a.attnum",
                           generated);
    const char *params[] = {excluded};
    PGresult *res = dc_pg_query_params(conn, sql, 1, params, err);
    free(sql);
    if (res == NULL)
        return -1;
    size_t t = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        uint32_t oid = (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        /* Both lists are ordered by oid. */
        while (t < list->count && list->items[t].oid < oid)
            t++;
        if (t == list->count)
            break;
        if (list->items[t].oid != oid)
            continue;
        dc_pg_table_t *tab = &list->items[t];
        tab->columns = dc_realloc(tab->columns, (tab->column_count + 1) * sizeof(char *));
        tab->columns[tab->column_count++] = dc_strdup(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    return 0;
}

int dc_pg_list_tables(PGconn *conn, const char *const *excluded, dc_pg_table_list_t *out,
                      dc_error_t *err)
{
    char *excluded_literal = dc_pg_text_array(excluded, SIZE_MAX);
    const char *params[] = {excluded_literal};
    memset(out, 0, sizeof(*out));
    PGresult *res =
        dc_pg_query_params(conn,
                           "SELECT c.oid, n.nspname, c.relname, pg_catalog.pg_relation_size(c.oid),"
                           " c.reltuples, pg_catalog.current_setting('block_size'),"
                           " (SELECT e.extcondition[pg_catalog.array_position(e.extconfig, c.oid)]"
                           "  FROM pg_catalog.pg_extension e WHERE c.oid = ANY (e.extconfig))"
                           " FROM pg_catalog.pg_class c"
                           " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE c.relkind = 'r' AND " RELATION_FILTER " ORDER BY c.oid",
                           1, params, err);
    if (res == NULL) {
        free(excluded_literal);
        return -1;
    }
    out->count = (size_t)PQntuples(res);
    out->items = dc_calloc(out->count, sizeof(dc_pg_table_t));
    for (size_t i = 0; i < out->count; i++) {
        dc_pg_table_t *t = &out->items[i];
        int r = (int)i;
        uint64_t block_size = strtoull(PQgetvalue(res, r, 5), NULL, 10);
        t->oid = (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        t->schema = dc_strdup(PQgetvalue(res, r, 1));
        t->name = dc_strdup(PQgetvalue(res, r, 2));
        t->heap_bytes = strtoull(PQgetvalue(res, r, 3), NULL, 10);
        t->blocks = block_size ? t->heap_bytes / block_size : 0;
        t->estimated_rows = strtod(PQgetvalue(res, r, 4), NULL);
        t->filter = PQgetisnull(res, r, 6) ? NULL : dc_strdup(PQgetvalue(res, r, 6));
    }
    PQclear(res);
    int rc = load_columns(conn, out, excluded_literal, err);
    free(excluded_literal);
    if (rc != 0)
        dc_pg_table_list_free(out);
    return rc;
}

void dc_pg_table_list_free(dc_pg_table_list_t *list)
{
    for (size_t i = 0; i < list->count; i++) {
        dc_pg_table_t *t = &list->items[i];
        free(t->schema);
        free(t->name);
        free(t->filter);
        for (size_t c = 0; c < t->column_count; c++)
            free(t->columns[c]);
        free(t->columns);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

int dc_pg_sequence_setvals(PGconn *conn, const char *const *excluded, char **sql_out,
                           size_t *count_out, dc_error_t *err)
{
    char *excluded_literal = dc_pg_text_array(excluded, SIZE_MAX);
    const char *params[] = {excluded_literal};
    PGresult *res = dc_pg_query_params(conn,
                                       "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
                                       " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                                       " WHERE c.relkind = 'S' AND " RELATION_FILTER
                                       " ORDER BY n.nspname, c.relname",
                                       1, params, err);
    free(excluded_literal);
    if (res == NULL)
        return -1;
    dc_buf_t b = {0};
    dc_buf_append(&b, "", 0);
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        char *schema = dc_pg_quote_ident(conn, PQgetvalue(res, r, 0));
        char *name = dc_pg_quote_ident(conn, PQgetvalue(res, r, 1));
        char *sql =
            dc_sprintf("SELECT pg_catalog.format('SELECT pg_catalog.setval(%%L, %%s, %%s);',"
                       " $1::text, last_value, CASE WHEN is_called THEN 'true' ELSE 'false' END)"
                       " FROM %s.%s",
                       schema, name);
        char *qualified = dc_sprintf("%s.%s", schema, name);
        const char *p[] = {qualified};
        PGresult *v = dc_pg_query_params(conn, sql, 1, p, err);
        if (v == NULL || PQntuples(v) != 1) {
            rc = v ? dc_error_set(err, "cannot read sequence %s", qualified) : -1;
        } else {
            dc_buf_appendf(&b, "%s\n", PQgetvalue(v, 0, 0));
        }
        PQclear(v);
        free(qualified);
        free(sql);
        free(schema);
        free(name);
    }
    *count_out = (size_t)PQntuples(res);
    PQclear(res);
    if (rc != 0) {
        dc_buf_free(&b);
        return -1;
    }
    *sql_out = b.data;
    return 0;
}

int dc_pg_list_schemas(PGconn *conn, const char *const *excluded, char ***names, size_t *count,
                       dc_error_t *err)
{
    char *excluded_literal = dc_pg_text_array(excluded, SIZE_MAX);
    const char *params[] = {excluded_literal};
    PGresult *res = dc_pg_query_params(
        conn,
        "SELECT n.nspname FROM pg_catalog.pg_namespace n"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' AND n.nspname <> ALL ($1::text[])"
        /* a schema an extension created belongs to the extension: CREATE EXTENSION makes it */
        " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
        "  WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
        "  AND d.objid = n.oid AND d.deptype = 'e')"
        " ORDER BY n.nspname",
        1, params, err);
    free(excluded_literal);
    if (res == NULL)
        return -1;
    *count = (size_t)PQntuples(res);
    *names = dc_calloc(*count ? *count : 1, sizeof(char *));
    for (size_t i = 0; i < *count; i++)
        (*names)[i] = dc_strdup(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    return 0;
}

int dc_pg_list_large_objects(PGconn *conn, uint32_t **oids, size_t *count, dc_error_t *err)
{
    PGresult *res =
        dc_pg_query(conn, "SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY oid", err);
    if (res == NULL)
        return -1;
    *count = (size_t)PQntuples(res);
    *oids = dc_calloc(*count ? *count : 1, sizeof(uint32_t));
    for (size_t i = 0; i < *count; i++)
        (*oids)[i] = (uint32_t)strtoul(PQgetvalue(res, (int)i, 0), NULL, 10);
    PQclear(res);
    return 0;
}

char *dc_pg_describe_lock_holders(PGconn *conn)
{
    dc_buf_t out = {0};
    dc_buf_append(&out, "", 0);
    /* Every other session holding or awaiting a lock on a table of this database. */
    PGresult *res = PQexec(
        conn,
        "SELECT l.pid, pg_catalog.bool_and(l.granted),"
        " pg_catalog.string_agg(DISTINCT l.mode || ' on ' || l.relation::pg_catalog.regclass::text,"
        "  ', '),"
        " coalesce(a.application_name, ''), coalesce(a.state, ''),"
        " pg_catalog.left(pg_catalog.regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)"
        " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid)"
        " JOIN pg_catalog.pg_class c ON c.oid = l.relation"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE l.locktype = 'relation' AND l.pid <> pg_catalog.pg_backend_pid()"
        " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
        "   WHERE datname = pg_catalog.current_database())"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " GROUP BY l.pid, a.application_name, a.state, a.query"
        " ORDER BY pg_catalog.bool_and(l.granted) DESC, l.pid LIMIT 5");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int r = 0; r < PQntuples(res); r++) {
            dc_buf_appendf(&out, "%spid %s %s %s (application '%s', %s: %s)", r ? "; " : "",
                           PQgetvalue(res, r, 0),
                           strcmp(PQgetvalue(res, r, 1), "t") == 0 ? "holds" : "waits for",
                           PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4),
                           PQgetvalue(res, r, 5));
        }
    }
    PQclear(res);
    return out.data;
}

static bool in_list(const dc_pg_table_list_t *list, uint32_t oid)
{
    for (size_t i = 0; list != NULL && i < list->count; i++) {
        if (list->items[i].oid == oid)
            return true;
    }
    return false;
}

static int lock_batch(PGconn *conn, const char *sql, uint64_t lock_timeout_ms, dc_error_t *err)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "55P03") == 0) {
            PQclear(PQexec(conn, "ROLLBACK TO SAVEPOINT dc_lock"));
            char *who = dc_pg_describe_lock_holders(conn);
            rc = dc_error_set(err,
                              "could not lock the tables within %llu ms: %s; wait for them "
                              "to finish, or raise --lock-timeout",
                              (unsigned long long)lock_timeout_ms,
                              *who ? who : "another session holds a conflicting lock");
            free(who);
        } else if (state != NULL && strcmp(state, "42P01") == 0) {
            dc_pg_error(conn, res, "a table was dropped as the backup started", err);
            rc = DC_PG_RETRY;
        } else {
            rc = dc_pg_error(conn, res, "locking the tables", err);
        }
    }
    PQclear(res);
    return rc;
}

int dc_pg_lock_tables(PGconn *conn, const dc_pg_table_list_t *tables,
                      const dc_pg_table_list_t *skip, const char *mode, uint64_t lock_timeout_ms,
                      dc_error_t *err)
{
    char *sql = dc_sprintf("SAVEPOINT dc_lock; SET LOCAL lock_timeout = '%llums'",
                           (unsigned long long)lock_timeout_ms);
    int rc = dc_pg_exec(conn, sql, err);
    free(sql);
    size_t next = 0;
    while (rc == 0 && next < tables->count) {
        dc_buf_t b = {0};
        size_t n = 0;
        dc_buf_append(&b, "LOCK TABLE ", 11);
        for (; next < tables->count && n < LOCK_BATCH; next++) {
            const dc_pg_table_t *t = &tables->items[next];
            if (in_list(skip, t->oid))
                continue;
            char *schema = dc_pg_quote_ident(conn, t->schema);
            char *name = dc_pg_quote_ident(conn, t->name);
            dc_buf_appendf(&b, "%sONLY %s.%s", n++ ? ", " : "", schema, name);
            free(schema);
            free(name);
        }
        dc_buf_appendf(&b, " IN %s MODE", mode);
        if (n > 0)
            rc = lock_batch(conn, b.data, lock_timeout_ms, err);
        dc_buf_free(&b);
    }
    if (rc == 0)
        rc = dc_pg_exec(conn, "RELEASE SAVEPOINT dc_lock", err);
    return rc;
}

int dc_pg_check_unchanged(PGconn *conn, const dc_pg_table_list_t *tables, dc_error_t *err)
{
    dc_buf_t oids = {0};
    dc_buf_append(&oids, "{", 1);
    for (size_t i = 0; i < tables->count; i++)
        dc_buf_appendf(&oids, "%s%u", i ? "," : "", (unsigned)tables->items[i].oid);
    dc_buf_append(&oids, "}", 1);
    const char *params[] = {oids.data};
    PGresult *res = dc_pg_query_params(
        conn,
        "SELECT pg_catalog.string_agg(c.oid::pg_catalog.regclass::text, ', ')"
        " FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1::pg_catalog.oid[])"
        " AND c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)",
        1, params, err);
    dc_buf_free(&oids);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (!PQgetisnull(res, 0, 0)) {
        dc_error_set(err, "table %s was truncated or rewritten as the backup started",
                     PQgetvalue(res, 0, 0));
        rc = DC_PG_RETRY;
    }
    PQclear(res);
    return rc;
}
