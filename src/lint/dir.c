/* Finding the migrations to lint: Prisma's layout, <dir>/<timestamp>_<name>/migration.sql, in
 * name order (down.sql and migration_lock.toml are not migrations), or one .sql file. Kept small
 * and private to lint; the migrate runner has its own reader. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deployctl/log.h"
#include "deployctl/util.h"
#include "lint_intern.h"

static int read_text(const char *path, char **out, dc_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return dc_error_set(err, "cannot open %s: %s", path, strerror(errno));
    dc_buf_t buf = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dc_buf_append(&buf, chunk, n);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        dc_buf_free(&buf);
        return dc_error_set(err, "cannot read %s", path);
    }
    if (buf.len > 0 && memchr(buf.data, '\0', buf.len) != NULL) {
        dc_buf_free(&buf);
        return dc_error_set(err, "%s holds NUL bytes: it is not a SQL text file", path);
    }
    dc_buf_append(&buf, "", 1);
    *out = (char *)buf.data;
    return 0;
}

int dc_lint_file(const char *path, const char *name, dc_lint_result_t *out, dc_error_t *err)
{
    char *sql;
    if (read_text(path, &sql, err) != 0)
        return -1;
    int rc = lint_sql_named(sql, name ? name : path, name ? name : path, path, out, err);
    free(sql);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The migration directories under dir, sorted; the caller frees the array and its strings. */
static int list_migrations(const char *dir, char ***names, size_t *count, dc_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return dc_error_set(err, "cannot read the migrations directory %s: %s", dir,
                            strerror(errno));
    size_t cap = 0;
    *names = NULL;
    *count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = dc_sprintf("%s/%s", dir, e->d_name);
        bool migration = is_dir(sub);
        free(sub);
        if (!migration)
            continue; /* migration_lock.toml and other files */
        if (*count == cap) {
            cap = cap ? cap * 2 : 32;
            *names = dc_realloc(*names, cap * sizeof(char *));
        }
        (*names)[(*count)++] = dc_strdup(e->d_name);
    }
    closedir(d);
    if (*count > 0)
        qsort(*names, *count, sizeof(char *), compare_names);
    return 0;
}

int dc_lint_migration(const char *dir, const char *name, dc_lint_result_t *out, dc_error_t *err)
{
    char *path = dc_sprintf("%s/%s/migration.sql", dir, name);
    char *file = dc_sprintf("%s/migration.sql", name);
    int rc = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        dc_log(DC_LOG_WARN, "%s/%s holds no migration.sql: not a migration, skipped", dir, name);
    } else {
        char *sql;
        rc = read_text(path, &sql, err);
        if (rc == 0) {
            rc = lint_sql_named(sql, name, file, path, out, err);
            free(sql);
        }
    }
    free(path);
    free(file);
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
    char **names = NULL;
    size_t count = 0;
    if (list_migrations(clean, &names, &count, err) != 0) {
        free(clean);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        if (rc == 0)
            rc = dc_lint_migration(clean, names[i], out, err);
        free(names[i]);
    }
    free(names);
    free(clean);
    return rc;
}
