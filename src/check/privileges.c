/* The privileges check: what the role needs for the pending migrations, exactly. The migrations
 * check collected each pending statement's needs (needs.c); here the catalog says, for each,
 * whether the role has it: ownership (or membership in the owning role) of every relation
 * altered, dropped, renamed, indexed or commented on; CREATE on every schema something is
 * created in; the table privileges of the rows read and written; REFERENCES for foreign keys;
 * a superuser or a trusted extension for CREATE EXTENSION. Unqualified names resolve through
 * the role's search_path, or the URL's ?schema= as the runner sets it. Plus what every runner
 * needs: USAGE on the history's schema (CREATE too while the history table is missing) and the
 * advisory lock functions. Reads the catalog only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_intern.h"
#include "deployctl/util.h"
#include "needs.h"

#define PRIVILEGES   "privileges"
#define PRIVILEGES_T "Privileges"

static bool is_true(PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* What every runner needs. Columns: the schema exists, CREATE on it, USAGE on it, CREATE on the
 * database, may call the advisory lock functions, the role. */
static const char RUNNER_SQL[] =
    "SELECT s.oid IS NOT NULL,"
    " CASE WHEN s.oid IS NULL THEN NULL ELSE pg_catalog.has_schema_privilege(s.oid, 'CREATE') END,"
    " CASE WHEN s.oid IS NULL THEN NULL ELSE pg_catalog.has_schema_privilege(s.oid, 'USAGE') END,"
    " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'),"
    " pg_catalog.has_function_privilege('pg_catalog.pg_advisory_lock(bigint)', 'EXECUTE')"
    " AND pg_catalog.has_function_privilege('pg_catalog.pg_try_advisory_lock(bigint)', 'EXECUTE'),"
    " current_user"
    " FROM (SELECT $1::text AS name) p LEFT JOIN pg_catalog.pg_namespace s ON s.nspname = p.name";

/* The schemas an unqualified name is looked up in: the role's search_path, or (as the runner
 * sets search_path to the URL's ?schema=) that schema after pg_catalog. $1: ?schema= or NULL. */
#define SEARCH_PATH                                                                                \
    "CASE WHEN $1::text IS NULL THEN pg_catalog.current_schemas(true)"                             \
    " ELSE ARRAY['pg_catalog', $1::text]::name[] END"

/* A relation as PostgreSQL would find it: $2 its schema (NULL: the first on the path that has
 * it), $3 its name, $4 a table privilege to test ('' for none). Columns: its qualified name,
 * its owner, whether the role is (a member of) the owner, whether it has the privilege, and
 * for INSERT the serial columns' sequences it may not use (their defaults call nextval, which
 * needs USAGE; identity columns need nothing), or NULL. */
static const char RELATION_SQL[] =
    "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),"
    " pg_catalog.pg_get_userbyid(c.relowner), pg_catalog.pg_has_role(c.relowner, 'USAGE'),"
    " $4::text = '' OR pg_catalog.has_table_privilege(c.oid, $4::text),"
    " CASE WHEN $4::text = 'INSERT' THEN"
    "  (SELECT pg_catalog.string_agg(s.oid::pg_catalog.regclass::text, ', ' ORDER BY s.relname)"
    "   FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid"
    "   WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = c.oid"
    "   AND d.deptype = 'a'"
    /* CASE: has_sequence_privilege errors on anything else, whatever order the planner picks */
    "   AND CASE WHEN s.relkind = 'S'"
    "    THEN NOT pg_catalog.has_sequence_privilege(s.oid, 'USAGE') END) END"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,"
    " (SELECT " SEARCH_PATH " AS p) path"
    " WHERE c.relname = $3::text"
    " AND CASE WHEN $2::text IS NULL THEN n.nspname = ANY (path.p) ELSE n.nspname = $2::text END"
    " ORDER BY pg_catalog.array_position(path.p, n.nspname) LIMIT 1";

/* The schema something is created in: $2, else the first existing schema of the path (?schema=
 * itself when given). Columns: its name (NULL: none), exists, CREATE on it, its owner. */
static const char SCHEMA_SQL[] =
    "SELECT s.name, n.oid IS NOT NULL,"
    " n.oid IS NOT NULL AND pg_catalog.has_schema_privilege(n.oid, 'CREATE'),"
    " coalesce(pg_catalog.pg_get_userbyid(n.nspowner), '')"
    " FROM (SELECT coalesce($2::text, $1::text,"
    "  (pg_catalog.current_schemas(false))[1]::text) AS name) s"
    " LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.name";

/* Columns: installed already, trusted (NULL: the server has no such extension), CREATE on the
 * database (a trusted extension needs it). */
static const char EXTENSION_SQL[] =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = $1),"
    " (SELECT v.trusted FROM pg_catalog.pg_available_extension_versions v"
    "  JOIN pg_catalog.pg_available_extensions a"
    "  ON a.name = v.name AND a.default_version = v.version WHERE v.name = $1),"
    " pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')";

typedef struct judge {
    dc_check_ctx_t *ctx;
    dc_check_result_t *res;
    const dc_needs_t *needs;
    const char *role;
    size_t missing; /* privileges lacking */
} judge_t;

/* A privilege the role lacks: fails the check while migrations are pending (or their state is
 * unknown), else warns for the next ones (message: formatted, freed here). */
static void lacking(judge_t *j, char *message)
{
    dc_check_raise(j->res, j->ctx->pending_count == 0 ? DC_CHECK_WARNING : DC_CHECK_FAILED);
    dc_check_add_item(j->res, "%s", message);
    free(message);
    j->missing++;
}

/* The rows, or NULL (and a failing item) when the query failed. */
static PGresult *query(judge_t *j, const char *sql, int n, const char *const *params)
{
    dc_error_t err;
    PGresult *rows = dc_pg_query_params(j->ctx->conn, sql, n, params, &err);
    if (rows == NULL) {
        dc_check_raise(j->res, DC_CHECK_FAILED);
        dc_check_add_item(j->res, "cannot read the catalog: %s", err.message);
    }
    return rows;
}

/* "orders", "public.orders": the name as the migration wrote it, for a relation not found. */
static char *written(const dc_need_t *n)
{
    return n->schema ? dc_sprintf("%s.%s", n->schema, n->name) : dc_strdup(n->name);
}

static void judge_relation(judge_t *j, const dc_need_t *n)
{
    const char *params[] = {j->ctx->prisma_schema, n->schema, n->name, n->privilege};
    PGresult *r = query(j, RELATION_SQL, 4, params);
    const char *prep = strcmp(n->what, "FOREIGN KEY") == 0 ? "to" : "on";
    if (r == NULL)
        return;
    if (PQntuples(r) == 0) {
        PQclear(r);
        if (n->missing_ok)
            return;
        char *name = written(n);
        dc_check_raise(j->res, DC_CHECK_WARNING);
        dc_check_add_item(j->res,
                          "%s: %s %s %s: no such relation%s; the migration fails unless "
                          "something creates it first",
                          n->migration, n->what, prep, name,
                          n->schema ? "" : " on the search_path");
        free(name);
        return;
    }
    const char *rel = PQgetvalue(r, 0, 0), *owner = PQgetvalue(r, 0, 1);
    if (n->kind == DC_NEED_OWNER && !is_true(r, 0, 2))
        lacking(j, dc_sprintf("%s: %s %s %s needs ownership of %s (owned by %s)", n->migration,
                              n->what, prep, rel, rel, owner));
    else if (n->kind == DC_NEED_PRIVILEGE && !is_true(r, 0, 3)) {
        char *grant = dc_sprintf("GRANT %s ON %s TO %s", n->privilege, rel, j->role);
        lacking(j, dc_sprintf("%s: %s %s %s needs the %s privilege on %s (%s)", n->migration,
                              n->what, prep, rel, n->privilege, rel, grant));
        free(grant);
    } else if (n->kind == DC_NEED_PRIVILEGE && !PQgetisnull(r, 0, 4)) {
        /* Only when the INSERT leaves the column to its default: a warning. */
        dc_check_raise(j->res, DC_CHECK_WARNING);
        dc_check_add_item(j->res,
                          "%s: %s %s %s needs USAGE on the sequence %s when it leaves the "
                          "serial column to its default (GRANT USAGE ON SEQUENCE %s TO %s)",
                          n->migration, n->what, prep, rel, PQgetvalue(r, 0, 4),
                          PQgetvalue(r, 0, 4), j->role);
    }
    PQclear(r);
}

static void judge_create(judge_t *j, const dc_need_t *n)
{
    const char *params[] = {j->ctx->prisma_schema, n->schema};
    PGresult *r = query(j, SCHEMA_SQL, 2, params);
    if (r == NULL)
        return;
    const char *schema = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
    if (schema == NULL)
        lacking(j, dc_sprintf("%s: %s %s: no schema on the search_path to create it in",
                              n->migration, n->what, n->name));
    else if (dc_needs_schema_created(j->needs, schema))
        ; /* an earlier pending migration creates it: the role will own it */
    else if (!is_true(r, 0, 1))
        lacking(j, dc_sprintf("%s: %s %s: schema %s does not exist", n->migration, n->what, n->name,
                              schema));
    else if (!is_true(r, 0, 2))
        lacking(j, dc_sprintf("%s: %s %s needs CREATE on schema %s (owned by %s; GRANT CREATE ON "
                              "SCHEMA %s TO %s)",
                              n->migration, n->what, n->name, schema, PQgetvalue(r, 0, 3), schema,
                              j->role));
    PQclear(r);
}

static void judge_extension(judge_t *j, const dc_need_t *n)
{
    const char *params[] = {n->name};
    PGresult *r = query(j, EXTENSION_SQL, 1, params);
    if (r == NULL)
        return;
    if (is_true(r, 0, 0))
        ; /* installed already */
    else if (PQgetisnull(r, 0, 1))
        lacking(j,
                dc_sprintf(
                    "%s: CREATE EXTENSION %s: the server has no extension %s (install its package "
                    "on the database server)",
                    n->migration, n->name, n->name));
    else if (!is_true(r, 0, 1))
        lacking(j, dc_sprintf(
                       "%s: CREATE EXTENSION %s needs a superuser (%s is not a trusted extension): "
                       "have a superuser create it before the deploy",
                       n->migration, n->name, n->name));
    else if (!is_true(r, 0, 2))
        lacking(j, dc_sprintf(
                       "%s: CREATE EXTENSION %s (a trusted extension) needs CREATE on the database "
                       "(GRANT CREATE ON DATABASE ... TO %s)",
                       n->migration, n->name, j->role));
    PQclear(r);
}

static void judge_database(judge_t *j, const dc_need_t *n)
{
    const char *params[] = {n->name};
    PGresult *r = query(j, EXTENSION_SQL, 1, params); /* column 2: CREATE on the database */
    if (r == NULL)
        return;
    if (!is_true(r, 0, 2))
        lacking(j, dc_sprintf("%s: CREATE SCHEMA %s needs CREATE on the database (GRANT CREATE ON "
                              "DATABASE ... TO %s)",
                              n->migration, n->name, j->role));
    PQclear(r);
}

static void judge_need(judge_t *j, const dc_need_t *n)
{
    switch (n->kind) {
    case DC_NEED_OWNER:
    case DC_NEED_PRIVILEGE:
        judge_relation(j, n);
        break;
    case DC_NEED_CREATE:
        judge_create(j, n);
        break;
    case DC_NEED_EXTENSION:
        judge_extension(j, n);
        break;
    case DC_NEED_DATABASE:
        judge_database(j, n);
        break;
    }
}

/* USAGE on the history's schema, CREATE there when the history table must be made, and the
 * advisory lock functions. */
static void judge_runner(judge_t *j, PGresult *p, const char *schema)
{
    bool exists = is_true(p, 0, 0);
    const char *role = j->role;
    if (!exists && !is_true(p, 0, 3))
        lacking(
            j, dc_sprintf("schema %s does not exist and %s lacks CREATE on the database to make it "
                          "(GRANT CREATE ON DATABASE ... TO %s)",
                          schema, role, role));
    if (exists && !j->ctx->history_exists && !is_true(p, 0, 1))
        lacking(j,
                dc_sprintf("%s lacks CREATE on schema %s, where the migration history table "
                           "_prisma_migrations must be created (GRANT CREATE ON SCHEMA %s TO %s)",
                           role, schema, schema, role));
    if (exists && !is_true(p, 0, 2))
        lacking(j, dc_sprintf("%s lacks USAGE on schema %s (GRANT USAGE ON SCHEMA %s TO %s)", role,
                              schema, schema, role));
    if (!is_true(p, 0, 4))
        lacking(j,
                dc_sprintf(
                    "%s may not call pg_advisory_lock(bigint): migration runners take an advisory "
                    "lock",
                    role));
}

static char *summary(const judge_t *j, const char *schema)
{
    long pending = j->ctx->pending_count;
    if (j->missing > 0 && pending <= 0)
        return dc_sprintf("%s lacks %zu privilege%s every migration runner needs", j->role,
                          j->missing, j->missing == 1 ? "" : "s");
    if (j->missing > 0)
        return dc_sprintf("%s lacks %zu privilege%s the %ld pending migration%s need%s", j->role,
                          j->missing, j->missing == 1 ? "" : "s", pending, pending == 1 ? "" : "s",
                          pending == 1 ? "s" : "");
    if (j->ctx->needs == NULL)
        return dc_sprintf("%s may use schema %s and take advisory locks; what the migrations "
                          "need is unknown (see the migrations check)",
                          j->role, schema);
    if (pending == 0)
        return dc_sprintf("no migration is pending; %s may use schema %s and take advisory locks",
                          j->role, schema);
    return dc_sprintf("%s has every privilege the %ld pending migration%s need%s (%zu checked)",
                      j->role, pending, pending == 1 ? "" : "s", pending == 1 ? "s" : "",
                      j->needs->count);
}

void dc_check_privileges(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, PRIVILEGES, PRIVILEGES_T);
        return;
    }
    const char *schema = ctx->prisma_schema ? ctx->prisma_schema : "public";
    if (ctx->superuser) {
        dc_check_add(ctx->report, PRIVILEGES, PRIVILEGES_T, DC_CHECK_OK,
                     "the role is a superuser: every privilege");
        return;
    }
    const char *params[] = {schema};
    dc_error_t err;
    PGresult *p = dc_pg_query_params(ctx->conn, RUNNER_SQL, 1, params, &err);
    if (p == NULL) {
        dc_check_add(ctx->report, PRIVILEGES, PRIVILEGES_T, DC_CHECK_FAILED,
                     "cannot read the role's privileges: %s", err.message);
        return;
    }
    char role[256];
    snprintf(role, sizeof(role), "%s", PQgetvalue(p, 0, 5));
    dc_check_result_t *res =
        dc_check_add(ctx->report, PRIVILEGES, PRIVILEGES_T, DC_CHECK_OK, "%s", "");
    judge_t j = {ctx, res, ctx->needs, role, 0};
    judge_runner(&j, p, schema);
    PQclear(p);
    if (ctx->needs_error != NULL) {
        dc_check_raise(res, DC_CHECK_FAILED);
        dc_check_add_item(res, "cannot tell what the pending migrations need: %s",
                          ctx->needs_error);
    }
    for (size_t i = 0; ctx->needs != NULL && i < ctx->needs->count; i++)
        judge_need(&j, &ctx->needs->items[i]);
    free(res->detail);
    res->detail = summary(&j, schema);
}
