/* External mode: another tool applies the migrations (`npx prisma migrate deploy`, `dbmate up`,
 * ...), run by fork/exec without a shell, with the database URL only in its environment; we
 * hold our runner lock meanwhile and read the history table before and after to report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/process.h"
#include "deployctl/util.h"
#include "migrate_intern.h"
#include "session.h"

static bool row_in(const dc_history_t *h, const dc_history_row_t *row)
{
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->rows[i].id, row->id) == 0 &&
            (h->rows[i].finished_at != NULL) == (row->finished_at != NULL) &&
            (h->rows[i].rolled_back_at != NULL) == (row->rolled_back_at != NULL))
            return true;
    }
    return false;
}

/* Rows that are new or changed state: finished ones were applied, unfinished ones failed. */
static void diff_history(const dc_history_t *before, const dc_history_t *after,
                         dc_migrate_report_t *report)
{
    for (size_t i = 0; i < after->count; i++) {
        const dc_history_row_t *row = &after->rows[i];
        if (row_in(before, row) || row->rolled_back_at != NULL)
            continue;
        if (row->finished_at != NULL) {
            report->applied =
                dc_realloc(report->applied, (report->applied_count + 1) * sizeof(char *));
            report->applied[report->applied_count++] = dc_strdup(row->migration_name);
        } else if (report->failed == NULL) {
            report->failed = dc_strdup(row->migration_name);
        }
    }
}

static int run_command(const dc_migrate_opts_t *opts, int *status, bool *timed_out, dc_error_t *err)
{
    char **argv;
    if (dc_migrate_split_command(opts->external_command, &argv, err) != 0)
        return -1;
    dc_env_t env;
    dc_env_init_for_child(&env);
    /* Prisma reads the URL as the user wrote it (with ?schema=); so do dbmate and others. */
    const char *url = opts->prisma_url != NULL ? opts->prisma_url : opts->url;
    dc_env_set(&env, "DATABASE_URL", url);
    /* A schema.prisma with directUrl = env("DIRECT_URL") migrates through it: the database we
     * snapshotted, never one an inherited DIRECT_URL names. */
    dc_env_set(&env, "DIRECT_URL", url);
    if (opts->dir != NULL)
        dc_env_set(&env, "DEPLOYCTL_MIGRATIONS", opts->dir);
    dc_log_info("running migrate.command: %s", argv[0]);
    /* Its output goes to our stderr: stdout is kept for our own --json. */
    dc_spawn_opts_t spawn = {.argv = (const char *const *)argv,
                             .env = &env,
                             .stdout_fd = STDERR_FILENO,
                             .keep_fd = -1,
                             .capture_stderr = false,
                             .new_group = true};
    dc_process_t proc;
    int rc = dc_process_spawn(&spawn, &proc, err);
    if (rc == 0) {
        rc = dc_process_wait_timeout(&proc, opts->external_timeout_ms, status, timed_out, err);
        dc_process_release(&proc);
    }
    if (rc != 0)
        dc_error_prefix(err, "migrate.command: ");
    dc_env_free(&env);
    dc_migrate_argv_free(argv);
    return rc;
}

static void list_names(char **names, size_t n, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? ", " : "", names[i]);
    }
}

int dc_migrate_external(const dc_migrate_opts_t *opts, dc_migrate_report_t *report, dc_error_t *err)
{
    memset(report, 0, sizeof(*report));
    double t0 = dc_now_seconds();
    dc_session_t s;
    dc_history_t before, after;
    memset(&before, 0, sizeof(before));
    memset(&after, 0, sizeof(after));
    int status = 0;
    bool timed_out = false;
    /* Our lock only: taking Prisma's would make `prisma migrate deploy` wait for us. */
    int rc = dc_session_open(opts, "migrate external", &s, err);
    if (rc == 0)
        rc = dc_session_lock(&s, false, err);
    if (rc == 0)
        rc = dc_history_read(s.conn, opts->schema, &before, err);
    if (rc == 0)
        rc = run_command(opts, &status, &timed_out, err);
    if (rc == 0)
        rc = dc_history_read(s.conn, opts->schema, &after, err);
    if (rc == 0)
        diff_history(&before, &after, report);
    if (rc == 0 && (timed_out || status != 0 || report->failed != NULL)) {
        char applied[512], why[128];
        list_names(report->applied, report->applied_count, applied, sizeof(applied));
        if (timed_out)
            snprintf(why, sizeof(why),
                     "did not finish within %llu s (migrate.command_timeout) and was stopped "
                     "with its process group",
                     (unsigned long long)(opts->external_timeout_ms / 1000));
        else
            snprintf(why, sizeof(why), "%s with status %d", status == 0 ? "exited" : "failed",
                     status);
        rc = dc_error_set(err,
                          "migrate.command (%s) %s; applied: %s; failed: %s; see its output "
                          "above, and 'deployctl migrate status'",
                          opts->external_command, why, report->applied_count ? applied : "none",
                          report->failed ? report->failed : "none recorded");
    }
    dc_history_free(&before);
    dc_history_free(&after);
    dc_session_close(&s);
    report->seconds = dc_now_seconds() - t0;
    return rc;
}
