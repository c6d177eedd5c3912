/* The migrations check: failed, pending and edited migrations, from Prisma's
 * _prisma_migrations rows compared with the migration directory.
 *
 * PLACEHOLDER until the migrate module (`deployctl migrate status`) is merged: then this whole
 * file becomes a call to its status API, mapping failed -> failed, edited -> warning,
 * pending -> ok (listed), missing locally -> warning, and setting ctx->pending_count. Nothing
 * else in src/check/ depends on how the status is computed. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check_intern.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define NAME  "migrations"
#define TITLE "Migrations"

typedef struct local_migration {
    char *name;
    char checksum[65]; /* SHA-256 of migration.sql, as Prisma stores it */
} local_migration_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const local_migration_t *)a)->name, ((const local_migration_t *)b)->name);
}

static int read_file(const char *path, dc_buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char buf[65536];
    size_t n;
    dc_buf_append(out, "", 0);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        dc_buf_append(out, buf, n);
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    return rc;
}

/* <dir>/<name>/migration.sql for every subdirectory, sorted by name (Prisma's order). */
static int list_local(const char *dir, local_migration_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = dc_sprintf("%s/%s/migration.sql", dir, e->d_name);
        dc_buf_t sql = {0};
        if (read_file(path, &sql) == 0) {
            *out = dc_realloc(*out, (*count + 1) * sizeof(**out));
            local_migration_t *m = &(*out)[(*count)++];
            m->name = dc_strdup(e->d_name);
            dc_sha256_hex(sql.data, sql.len, m->checksum);
        }
        dc_buf_free(&sql);
        free(path);
    }
    closedir(d);
    if (*count > 1)
        qsort(*out, *count, sizeof(**out), by_name);
    return 0;
}

static const local_migration_t *find_local(const local_migration_t *list, size_t count,
                                           const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    }
    return NULL;
}

/* Every row of <schema>._prisma_migrations, oldest first; NULL result (and no error) when the
 * table does not exist yet. */
static PGresult *history_rows(dc_check_ctx_t *ctx, dc_error_t *err, bool *missing)
{
    const char *params[] = {ctx->prisma_schema ? ctx->prisma_schema : "public"};
    PGresult *res = dc_pg_query_params(ctx->conn,
                                       "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1)"
                                       " || '._prisma_migrations')::text",
                                       1, params, err);
    *missing = res != NULL && PQgetisnull(res, 0, 0);
    if (res == NULL || *missing) {
        PQclear(res);
        return NULL;
    }
    char *sql = dc_sprintf("SELECT migration_name, checksum, finished_at IS NOT NULL,"
                           " rolled_back_at IS NOT NULL, coalesce(logs, '')"
                           " FROM %s ORDER BY started_at, migration_name",
                           PQgetvalue(res, 0, 0));
    PQclear(res);
    res = dc_pg_query(ctx->conn, sql, err);
    free(sql);
    return res;
}

/* Whether a row of the history has this name with finished_at set (finished) or unset, and
 * no rolled_back_at. */
static bool has_row(PGresult *rows, const char *name, bool finished)
{
    for (int r = 0; rows != NULL && r < PQntuples(rows); r++) {
        if (strcmp(PQgetvalue(rows, r, 0), name) == 0 &&
            strcmp(PQgetvalue(rows, r, 2), finished ? "t" : "f") == 0 &&
            strcmp(PQgetvalue(rows, r, 3), "f") == 0)
            return true;
    }
    return false;
}

static bool applied_in(PGresult *rows, const char *name)
{
    return has_row(rows, name, true);
}

/* Failed rows (not finished, not rolled back), edited and missing applied ones. */
static void compare_rows(dc_check_result_t *res, PGresult *rows, const local_migration_t *local,
                         size_t local_count, size_t *failed, size_t *edited)
{
    for (int r = 0; rows != NULL && r < PQntuples(rows); r++) {
        const char *name = PQgetvalue(rows, r, 0);
        bool finished = strcmp(PQgetvalue(rows, r, 2), "t") == 0;
        bool rolled_back = strcmp(PQgetvalue(rows, r, 3), "t") == 0;
        const local_migration_t *l = find_local(local, local_count, name);
        if (!finished && !rolled_back && !applied_in(rows, name)) {
            (*failed)++;
            dc_check_raise(res, DC_CHECK_FAILED);
            dc_check_add_item(res,
                              "failed: %s (%.160s); resolve it (prisma migrate resolve) "
                              "before deploying",
                              name, *PQgetvalue(rows, r, 4) ? PQgetvalue(rows, r, 4) : "no log");
        } else if (finished && !rolled_back && l == NULL) {
            dc_check_raise(res, DC_CHECK_WARNING);
            dc_check_add_item(res, "applied but missing locally: %s", name);
        } else if (finished && !rolled_back && strcmp(l->checksum, PQgetvalue(rows, r, 1)) != 0) {
            (*edited)++;
            dc_check_raise(res, DC_CHECK_WARNING);
            dc_check_add_item(res, "edited after it was applied: %s", name);
        }
    }
}

void dc_check_migrations(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, NAME, TITLE);
        return;
    }
    const char *dir = ctx->opts->migrations_dir;
    local_migration_t *local = NULL;
    size_t local_count = 0;
    if (list_local(dir, &local, &local_count) != 0) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_WARNING,
                     "no migrations directory at %s: give it with --migrations DIR", dir);
        return;
    }
    dc_error_t err;
    bool missing = false;
    PGresult *rows = history_rows(ctx, &err, &missing);
    if (rows == NULL && !missing) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_FAILED,
                     "cannot read _prisma_migrations: %s", err.message);
    } else {
        dc_check_result_t *res = dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_OK, "%s", "");
        size_t failed = 0, edited = 0, pending = 0;
        compare_rows(res, rows, local, local_count, &failed, &edited);
        for (size_t i = 0; i < local_count; i++) {
            /* A failed one is listed as failed, not again as pending. */
            if (!applied_in(rows, local[i].name) && !has_row(rows, local[i].name, false)) {
                pending++;
                dc_check_add_item(res, "pending: %s", local[i].name);
            }
        }
        ctx->pending_count = (long)pending;
        free(res->detail);
        res->detail = dc_sprintf("%zu in %s: %zu pending, %zu failed, %zu edited", local_count, dir,
                                 pending, failed, edited);
        PQclear(rows);
    }
    for (size_t i = 0; i < local_count; i++)
        free(local[i].name);
    free(local);
}
