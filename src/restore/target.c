/* The database a restore writes into: creating it like the snapshot's source, finding the
 * sessions in the way (and ending them when asked), keeping writers out while the pre-restore
 * snapshot is taken, and clearing the snapshot's schemas inside the restore's transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/release_schema.h"
#include "deployctl/util.h"
#include "restore_intern.h"

static const char *const own_schemas[] = {DC_RELEASE_SCHEMA, NULL};

/* n is a schema of the user's (not the system's or deployctl's). */
#define USER_SCHEMA                                                                                \
    " n.nspname NOT IN ('pg_catalog', 'information_schema', " DC_RELEASE_SCHEMA_SQL ")"            \
    " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
/* ... and the object is not an extension's (CREATE EXTENSION made it). */
#define NOT_EXTENSION_MEMBER(catalog, oid)                                                         \
    " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '" catalog            \
    "'::pg_catalog.regclass AND d.objid = " oid " AND d.deptype = 'e')"

static char *quote_literal(PGconn *conn, const char *s)
{
    char *q = PQescapeLiteral(conn, s, strlen(s));
    char *copy = dc_strdup(q ? q : "''");
    PQfreemem(q);
    return copy;
}

/* CREATE DATABASE like the source: same encoding and locale, from template0. */
static int create_database(PGconn *maint, const char *name, const dc_manifest_t *m, dc_error_t *err)
{
    char *ident = dc_pg_quote_ident(maint, name);
    dc_buf_t sql = {0};
    dc_buf_appendf(&sql, "CREATE DATABASE %s TEMPLATE template0", ident);
    if (m->server_encoding) {
        char *v = quote_literal(maint, m->server_encoding);
        dc_buf_appendf(&sql, " ENCODING %s", v);
        free(v);
    }
    if (m->lc_collate) {
        char *v = quote_literal(maint, m->lc_collate);
        dc_buf_appendf(&sql, " LC_COLLATE %s", v);
        free(v);
    }
    if (m->lc_ctype) {
        char *v = quote_literal(maint, m->lc_ctype);
        dc_buf_appendf(&sql, " LC_CTYPE %s", v);
        free(v);
    }
    int rc = dc_pg_exec(maint, sql.data, err);
    if (rc != 0)
        dc_error_prefix(err,
                        "cannot create database %s like the snapshot's source (encoding %s, "
                        "locale %s): ",
                        name, m->server_encoding ? m->server_encoding : "?",
                        m->lc_collate ? m->lc_collate : "?");
    else
        dc_log_info("created database %s", name);
    dc_buf_free(&sql);
    free(ident);
    return rc;
}

int dc_restore_connect_target(const dc_restore_opts_t *opts, const dc_manifest_t *m, PGconn **out,
                              bool *created, dc_error_t *err)
{
    char name[256];
    *created = false;
    if (dc_pg_url_database(opts->target_url, name, sizeof(name), err) != 0)
        return -1;
    if (opts->create_target) {
        char *maint_url = dc_pg_url_with_database(opts->target_url, "postgres");
        PGconn *maint = NULL;
        int rc = dc_pg_connect(maint_url, "restore", &maint, err);
        free(maint_url);
        if (rc != 0)
            return dc_error_prefix(err, "cannot reach the target's server to create %s: ", name);
        const char *params[] = {name};
        PGresult *res = dc_pg_query_params(
            maint, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", 1, params, err);
        rc = res ? 0 : -1;
        if (rc == 0 && PQntuples(res) == 0) {
            rc = create_database(maint, name, m, err);
            *created = rc == 0;
            if (rc == 0 && opts->on_created != NULL)
                rc = opts->on_created(opts->created_ctx, name, err);
        } else if (rc == 0 && opts->require_new_target) {
            rc = dc_error_set(err, "database %s already exists and is not ours to overwrite", name);
        }
        PQclear(res);
        PQfinish(maint);
        if (rc != 0)
            return -1;
    }
    if (dc_pg_connect(opts->target_url, "restore", out, err) != 0)
        return -1;
    int rc =
        dc_pg_exec(*out, DC_RESTORE_SESSION_SETTINGS "; SET client_min_messages = notice", err);
    /* Index builds in post-data sort whole tables: more memory helps big ones. */
    if (rc == 0 && opts->maintenance_work_mem != NULL) {
        char *set = dc_sprintf("SET maintenance_work_mem = '%s'", opts->maintenance_work_mem);
        rc = dc_pg_exec(*out, set, err);
        free(set);
    }
    return rc;
}

int dc_restore_count_objects(PGconn *conn, long *count, dc_error_t *err)
{
    PGresult *res = dc_pg_query(
        conn,
        "SELECT (SELECT count(*) FROM pg_catalog.pg_class c"
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND " USER_SCHEMA NOT_EXTENSION_MEMBER(
            "pg_catalog.pg_class",
            "c.oid") ")"
                     " + (SELECT count(*) FROM pg_catalog.pg_proc f"
                     "  JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace WHERE " USER_SCHEMA
                         NOT_EXTENSION_MEMBER("pg_catalog.pg_proc",
                                              "f.oid") ")"
                                                       " + (SELECT count(*) FROM "
                                                       "pg_catalog.pg_largeobject_metadata)",
        err);
    if (res == NULL)
        return -1;
    *count = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

#define OTHER_SESSIONS                                                                             \
    " FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database()"              \
    " AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend'"

char *dc_restore_describe_sessions(PGconn *conn)
{
    dc_buf_t out = {0};
    dc_buf_append(&out, "", 0);
    PGresult *res =
        PQexec(conn, "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''),"
                     " coalesce(state, ''),"
                     " pg_catalog.left(pg_catalog.regexp_replace(coalesce(query, ''), '\\s+', ' ', "
                     "'g'), 80)" OTHER_SESSIONS " ORDER BY pid LIMIT 10");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int r = 0; r < PQntuples(res); r++) {
            dc_buf_appendf(&out, "%spid %s (user %s, application '%s', %s: %s)", r ? "; " : "",
                           PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                           PQgetvalue(res, r, 3), PQgetvalue(res, r, 4));
        }
    }
    PQclear(res);
    return out.data;
}

int dc_restore_terminate_sessions(PGconn *conn, int *ended, dc_error_t *err)
{
    PGresult *res = dc_pg_query(
        conn, "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid))" OTHER_SESSIONS,
        err);
    if (res == NULL)
        return -1;
    *ended = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int dc_restore_block_writes(PGconn *conn, uint64_t lock_timeout_ms, dc_error_t *err)
{
    dc_pg_table_list_t tables;
    if (dc_pg_list_tables(conn, own_schemas, &tables, err) != 0)
        return -1;
    int rc = dc_pg_lock_tables(conn, &tables, NULL, "EXCLUSIVE", lock_timeout_ms, err);
    dc_pg_table_list_free(&tables);
    if (rc != 0)
        dc_error_append(err, " (or end those sessions: --terminate-connections)");
    return rc == 0 ? 0 : -1;
}

int dc_restore_remove_large_objects(PGconn *conn, dc_error_t *err)
{
    if (dc_pg_exec(
            conn, "SELECT count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata",
            err) != 0)
        return dc_error_prefix(err, "cannot remove the large objects: ");
    return 0;
}

/* DROP SCHEMA public CASCADE, then CREATE it again as it was: owner, privileges, comment. */
static int recreate_public(PGconn *conn, dc_error_t *err)
{
    PGresult *res = dc_pg_query(
        conn,
        "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(n.nspowner)),"
        " pg_catalog.obj_description(n.oid, 'pg_namespace'),"
        " (SELECT pg_catalog.string_agg(pg_catalog.format('GRANT %s ON SCHEMA public TO %s%s;',"
        "    a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
        "    ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,"
        "    CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), ' ')"
        "  FROM pg_catalog.aclexplode(n.nspacl) a)"
        " FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'",
        err);
    if (res == NULL)
        return -1;
    dc_buf_t sql = {0};
    if (PQntuples(res) == 0) {
        dc_buf_appendf(&sql, "CREATE SCHEMA public;");
    } else {
        dc_buf_appendf(&sql, "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION %s;",
                       PQgetvalue(res, 0, 0));
        if (!PQgetisnull(res, 0, 2))
            dc_buf_appendf(&sql, " %s", PQgetvalue(res, 0, 2));
        if (!PQgetisnull(res, 0, 1)) {
            char *comment = quote_literal(conn, PQgetvalue(res, 0, 1));
            dc_buf_appendf(&sql, " COMMENT ON SCHEMA public IS %s;", comment);
            free(comment);
        }
    }
    PQclear(res);
    int rc = dc_pg_exec(conn, sql.data, err);
    dc_buf_free(&sql);
    return rc;
}

/* DROP SCHEMA ... CASCADE also takes what the schemas it keeps (deployctl's own, those of
 * extensions) built on what it drops: the restore cannot keep them, so it names them. */
static int warn_about_dependents(PGconn *conn, const char *dropped, dc_error_t *err)
{
    const char *params[] = {dropped};
    PGresult *res = dc_pg_query_params(
        conn,
        /* a view's rule and a trigger have no schema: their table does */
        "SELECT DISTINCT o.type || ' ' || o.identity"
        " FROM pg_catalog.pg_depend d"
        " LEFT JOIN pg_catalog.pg_rewrite rw"
        "  ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND rw.oid = d.objid"
        " LEFT JOIN pg_catalog.pg_trigger tg"
        "  ON d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND tg.oid = d.objid"
        " CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0) r"
        " CROSS JOIN LATERAL pg_catalog.pg_identify_object("
        "  CASE WHEN coalesce(rw.ev_class, tg.tgrelid) IS NULL THEN d.classid"
        "  ELSE 'pg_catalog.pg_class'::pg_catalog.regclass END,"
        "  coalesce(rw.ev_class, tg.tgrelid, d.objid),"
        "  CASE WHEN coalesce(rw.ev_class, tg.tgrelid) IS NULL THEN d.objsubid ELSE 0 END) o"
        " WHERE d.deptype = 'n' AND d.refclassid IN ('pg_catalog.pg_class'::pg_catalog.regclass,"
        "  'pg_catalog.pg_type'::pg_catalog.regclass, 'pg_catalog.pg_proc'::pg_catalog.regclass)"
        " AND r.schema = ANY ($1::text[]) AND o.schema IS NOT NULL"
        " AND o.schema <> ALL ($1::text[])"
        " AND o.schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 20",
        1, params, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0) {
        dc_buf_t list = {0};
        for (int i = 0; i < PQntuples(res); i++)
            dc_buf_appendf(&list, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
        dc_log_warn("these depend on objects the restore replaces and are dropped with them: "
                    "%s%s",
                    list.data, PQntuples(res) == 20 ? ", ..." : "");
        dc_buf_free(&list);
    }
    PQclear(res);
    return 0;
}

/* Runs every statement a query returns, naming each: what the restore drops beyond the
 * snapshot's schemas is worth a line in the log. */
static int run_generated(PGconn *conn, const char *query, dc_error_t *err)
{
    PGresult *res = dc_pg_query(conn, query, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        dc_log_info("restore: %s", PQgetvalue(res, i, 0));
        rc = dc_pg_exec(conn, PQgetvalue(res, i, 0), err);
    }
    PQclear(res);
    return rc;
}

/* Publications and event triggers belong to the database, not to a schema: the snapshot's
 * post-data creates them again. An extension that created a schema of its own (pg_cron's
 * cron, TimescaleDB's) keeps its tables and rows there, which the snapshot holds too: the
 * extension goes with them, and the snapshot's CREATE EXTENSION in pre-data makes it again. */
static int drop_database_objects(PGconn *conn, dc_error_t *err)
{
    return run_generated(
        conn,
        "SELECT 'DROP PUBLICATION ' || pg_catalog.quote_ident(pubname)"
        " FROM pg_catalog.pg_publication"
        " UNION ALL SELECT 'DROP EVENT TRIGGER ' || pg_catalog.quote_ident(evtname)"
        " FROM pg_catalog.pg_event_trigger e WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend"
        "  d WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass"
        "  AND d.objid = e.oid AND d.deptype = 'e')"
        " UNION ALL SELECT DISTINCT 'DROP EXTENSION ' || pg_catalog.quote_ident(e.extname)"
        "  || ' CASCADE' FROM pg_catalog.pg_depend d"
        " JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid"
        " WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
        " AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'",
        err);
}

static bool in_snapshot(const dc_manifest_t *m, const char *schema)
{
    for (size_t i = 0; i < m->schema_name_count; i++) {
        if (strcmp(m->schemas[i], schema) == 0)
            return true;
    }
    return false;
}

/* Drops every user schema but deployctl's own and those extensions made (CREATE EXTENSION in
 * pre-data makes them again): the snapshot's, and those created after it (a migration's),
 * which the restored database did not have. public is recreated as it was, as CREATE DATABASE
 * would have it. */
static int drop_schemas(PGconn *conn, const dc_manifest_t *m, char **names, size_t count,
                        dc_error_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (strcmp(names[i], "public") == 0 && in_snapshot(m, "public"))
            continue;
        if (!in_snapshot(m, names[i]))
            dc_log_warn("schema %s is not in the snapshot: the restore drops it (the "
                        "pre-restore snapshot keeps it)",
                        names[i]);
        char *ident = dc_pg_quote_ident(conn, names[i]);
        char *sql = dc_sprintf("DROP SCHEMA %s CASCADE", ident);
        rc = dc_pg_exec(conn, sql, err);
        free(sql);
        free(ident);
        if (rc != 0)
            dc_error_prefix(err, "cannot clear schema %s: ", names[i]);
    }
    if (rc == 0 && in_snapshot(m, "public") && recreate_public(conn, err) != 0)
        rc = dc_error_prefix(err, "cannot clear schema public: ");
    return rc;
}

int dc_restore_clear_schemas(PGconn *conn, const dc_manifest_t *m, dc_error_t *err)
{
    char **names = NULL;
    size_t count = 0;
    if (dc_pg_list_schemas(conn, own_schemas, &names, &count, err) != 0)
        return -1;
    char *dropped = dc_pg_text_array((const char *const *)names, count);
    int rc = warn_about_dependents(conn, dropped, err);
    free(dropped);
    if (rc == 0)
        rc = drop_database_objects(conn, err);
    if (rc == 0)
        rc = drop_schemas(conn, m, names, count, err);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}
