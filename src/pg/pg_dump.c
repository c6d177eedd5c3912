/* pg_dump as the reference schema dumper: finding one at least as new as the server, and
 * running it under our exported snapshot. Its argv carries no secret: the password travels in
 * an in-memory 0600 passfile that disappears with the processes. */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"

/* Runs `path arg` with no credentials in its environment and returns its stdout. */
static int probe(const char *path, const char *arg, size_t max, char **text, int *status,
                 dc_error_t *err)
{
    const char *argv[] = {path, arg, NULL};
    dc_env_t env;
    dc_env_init_for_child(&env);
    int rc = dc_process_run_capture(argv, &env, max, text, status, err);
    dc_env_free(&env);
    return rc;
}

static int probe_version(const char *path, dc_pg_dump_t *out, dc_error_t *err)
{
    char *text = NULL;
    int status = 0;
    if (probe(path, "--version", 4096, &text, &status, err) != 0)
        return -1;
    const char *v = strstr(text, ") ");
    if (status != 0 || v == NULL || sscanf(v + 2, "%d.%d", &out->major, &out->minor) < 1) {
        dc_error_set(err, "%s --version did not print a version (got '%.80s')", path, text);
        free(text);
        return -1;
    }
    free(text);
    if (probe(path, "--help", 65536, &text, &status, err) != 0)
        return -1;
    out->has_restrict_key = strstr(text, "--restrict-key") != NULL;
    free(text);
    out->path = dc_strdup(path);
    return 0;
}

int dc_pg_dump_find(const char *configured, int server_major, dc_pg_dump_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (configured != NULL && *configured) {
        if (probe_version(configured, out, err) != 0)
            return dc_error_prefix(err, "pg_dump from configuration: ");
    } else {
        glob_t g;
        int best_major = -1;
        char *best = NULL;
        if (glob("/usr/lib/postgresql/*/bin/pg_dump", 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) {
                int major = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
                if (major > best_major && access(g.gl_pathv[i], X_OK) == 0) {
                    best_major = major;
                    free(best);
                    best = dc_strdup(g.gl_pathv[i]);
                }
            }
            globfree(&g);
        }
        int rc = probe_version(best ? best : "pg_dump", out, err);
        free(best);
        if (rc != 0)
            return dc_error_set(err, "no usable pg_dump found: install the PostgreSQL client "
                                     "(Debian package postgresql-client) or set paths.pg_dump");
    }
    if (out->major < server_major) {
        dc_error_set(err,
                     "%s is version %d but the server is %d: pg_dump must be the same major "
                     "version or newer; install postgresql-client-%d or set paths.pg_dump",
                     out->path, out->major, server_major, server_major);
        dc_pg_dump_free(out);
        return -1;
    }
    return 0;
}

void dc_pg_dump_free(dc_pg_dump_t *d)
{
    free(d->path);
    d->path = NULL;
}

/* A passfile line matching any host, port, database and user. */
static char *passfile_content(const char *password)
{
    dc_buf_t b = {0};
    dc_buf_append(&b, "*:*:*:*:", 8);
    for (const char *p = password; *p; p++) {
        if (*p == ':' || *p == '\\')
            dc_buf_append(&b, "\\", 1);
        dc_buf_append(&b, p, 1);
    }
    dc_buf_append(&b, "\n", 1);
    return b.data;
}

/* Points the child's libpq at an in-memory passfile holding the password. */
static int give_password(dc_env_t *env, const char *password, int *fd, dc_error_t *err)
{
    char *content = passfile_content(password);
    int rc = dc_memfd_with_content("deployctl-pgpass", content, fd, err);
    explicit_bzero(content, strlen(content));
    free(content);
    if (rc != 0)
        return -1;
    char *path = dc_sprintf("/proc/self/fd/%d", *fd);
    dc_env_set(env, "PGPASSFILE", path);
    free(path);
    return 0;
}

int dc_pg_dump_start(const dc_pg_dump_t *dump, const dc_pg_dump_args_t *args, dc_pg_dump_run_t *run,
                     dc_error_t *err)
{
    char *conninfo = NULL, *password = NULL;
    memset(run, 0, sizeof(*run));
    run->passfile_fd = -1;
    run->out_fd = args->out_fd;
    snprintf(run->section, sizeof(run->section), "%s", args->section);
    conninfo = dc_pg_conninfo(args->url, NULL, &password);
    if (conninfo == NULL)
        return dc_error_set(err, "invalid database URL");

    dc_env_t env;
    dc_env_init_for_child(&env);
    dc_env_unset(&env, "PGCLIENTENCODING"); /* the schema is dumped in the database's encoding */
    int rc = 0;
    if (password != NULL) {
        rc = give_password(&env, password, &run->passfile_fd, err);
        explicit_bzero(password, strlen(password));
        free(password);
    }

    char *arg_section = dc_sprintf("--section=%s", args->section);
    char *arg_snapshot = dc_sprintf("--snapshot=%s", args->snapshot);
    char *arg_lock =
        dc_sprintf("--lock-wait-timeout=%llu",
                   (unsigned long long)(args->lock_timeout_ms ? args->lock_timeout_ms : 1));
    char *arg_key = args->restrict_key ? dc_sprintf("--restrict-key=%s", args->restrict_key) : NULL;
    const char *argv[32];
    char *excludes[16];
    size_t n = 0, nx = 0;
    argv[n++] = dump->path;
    argv[n++] = "--no-password";
    argv[n++] = arg_section;
    argv[n++] = arg_snapshot;
    argv[n++] = arg_lock;
    if (arg_key != NULL)
        argv[n++] = arg_key;
    for (size_t i = 0; args->excluded_schemas && args->excluded_schemas[i] && nx < 16; i++) {
        excludes[nx] = dc_sprintf("--exclude-schema=%s", args->excluded_schemas[i]);
        argv[n++] = excludes[nx++];
    }
    argv[n++] = "--dbname";
    argv[n++] = conninfo;
    argv[n] = NULL;

    if (rc == 0) {
        dc_spawn_opts_t opts = {.argv = argv,
                                .env = &env,
                                .stdout_fd = args->out_fd,
                                .keep_fd = run->passfile_fd,
                                .capture_stderr = true};
        rc = dc_process_spawn(&opts, &run->proc, err);
        snprintf(run->proc.name, sizeof(run->proc.name), "pg_dump");
    }
    for (size_t i = 0; i < nx; i++)
        free(excludes[i]);
    free(arg_section);
    free(arg_snapshot);
    free(arg_lock);
    free(arg_key);
    free(conninfo);
    dc_env_free(&env);
    if (rc != 0 && run->passfile_fd >= 0) {
        close(run->passfile_fd);
        run->passfile_fd = -1;
    }
    return rc;
}

static void close_passfile(dc_pg_dump_run_t *run)
{
    if (run->passfile_fd >= 0)
        close(run->passfile_fd);
    run->passfile_fd = -1;
}

int dc_pg_dump_wait(dc_pg_dump_run_t *run, dc_error_t *err)
{
    int status = 0;
    int rc = dc_process_wait(&run->proc, &status, err);
    close_passfile(run);
    if (rc == 0 && status != 0) {
        char *tail = dc_process_stderr_head(&run->proc, 600);
        rc = dc_error_set(err, "pg_dump --section=%s failed (exit status %d): %s", run->section,
                          status, *tail ? tail : "no message");
        free(tail);
    }
    dc_process_release(&run->proc);
    return rc;
}

void dc_pg_dump_cancel(dc_pg_dump_run_t *run)
{
    dc_process_release(&run->proc);
    close_passfile(run);
}
