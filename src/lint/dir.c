/* Finding the migrations to lint: Prisma's layout, <dir>/<timestamp>_<name>/migration.sql, in
 * name order, read by the migrate module's reader (dc_migrate_read_dir_with: directories without
 * migration.sql are skipped, any provider), or one .sql file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deployctl/log.h"
#include "deployctl/migrate.h"
#include "deployctl/util.h"
#include "lint_intern.h"

/* How lint reads a migrations directory: what is not a migration is skipped, not an error. */
static const dc_migrate_read_opts_t READ_OPTS = {.skip_incomplete = true, .any_provider = true};

/* Lints a file's text; a NUL byte makes it no SQL text file. */
static int lint_text(const char *sql, size_t len, const char *name, const char *file,
                     const char *path, dc_lint_result_t *out, dc_error_t *err)
{
    if (memchr(sql, '\0', len) != NULL)
        return dc_error_set(err, "%s holds NUL bytes: it is not a SQL text file", path);
    return lint_sql_named(sql, name, file, path, out, err);
}

int dc_lint_file(const char *path, const char *name, dc_lint_result_t *out, dc_error_t *err)
{
    char *sql;
    size_t len;
    if (dc_read_file(path, 0, false, &sql, &len, err) != 0)
        return -1;
    int rc = lint_text(sql, len, name ? name : path, name ? name : path, path, out, err);
    free(sql);
    return rc;
}

static void log_skipped(const char *dir, const char *name)
{
    dc_log(DC_LOG_WARN, "%s/%s holds no migration.sql: not a migration, skipped", dir, name);
}

/* One migration as read by the migrate module; findings name it <name>/migration.sql. */
static int lint_one(const dc_migration_t *m, dc_lint_result_t *out, dc_error_t *err)
{
    char *file = dc_sprintf("%s/migration.sql", m->name);
    int rc = lint_text(m->sql, m->sql_len, m->name, file, m->path, out, err);
    free(file);
    return rc;
}

int dc_lint_migration(const char *dir, const char *name, dc_lint_result_t *out, dc_error_t *err)
{
    dc_migration_t m;
    if (dc_migrate_read_one(dir, name, &READ_OPTS, &m, err) != 0)
        return -1;
    int rc = 0;
    if (m.sql == NULL)
        log_skipped(dir, name);
    else
        rc = lint_one(&m, out, err);
    dc_migration_free(&m);
    return rc;
}

int dc_lint_dir(const char *dir, dc_lint_result_t *out, dc_error_t *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return dc_error_set(err,
                            "migrations directory %s: %s; give it as 'deployctl lint DIR', "
                            "--migrations DIR or migrations.dir in the config file",
                            dir, strerror(errno));
    if (S_ISREG(st.st_mode))
        return dc_lint_file(dir, NULL, out, err);
    if (!S_ISDIR(st.st_mode))
        return dc_error_set(err, "%s is neither a migrations directory nor a .sql file", dir);
    /* "prisma/migrations/" names its files without a double slash. */
    char *clean = dc_strdup(dir);
    for (size_t n = strlen(clean); n > 1 && clean[n - 1] == '/'; n--)
        clean[n - 1] = '\0';
    dc_migration_set_t set;
    int rc = dc_migrate_read_dir_with(clean, &READ_OPTS, &set, err);
    if (rc == 0) {
        for (size_t i = 0; i < set.skipped_count; i++)
            log_skipped(clean, set.skipped[i]);
        for (size_t i = 0; rc == 0 && i < set.count; i++)
            rc = lint_one(&set.items[i], out, err);
        dc_migrate_set_free(&set);
    }
    free(clean);
    return rc;
}
