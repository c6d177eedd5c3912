/* `deployctl release` and `deployctl recover`: wire settings to the release module, print the
 * outcome (one line, or the JSON report with --json) and turn it into the exit code: 0
 * released, 2 rolled back, 3 rollback failed, 4 refused, 75 locked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/rehearse.h"
#include "deployctl/release.h"
#include "deployctl/util.h"

typedef struct release_setup {
    dc_release_opts_t opts;
    dc_store_t *store;
    char **smoke; /* URLs split from the setting */
    size_t smoke_count;
    char work_mem[32];
    char database[256];
    const char *metrics;         /* --metrics-file, or NULL */
    char *pooled;                /* the pooled URL, or NULL */
    dc_rehearse_opts_t rehearse; /* --rehearse */
    char *scratch;
    char rehearse_work_mem[32];
} release_setup_t;

/* --smoke URL (repeated: one per line) or release.smoke (separated by spaces). */
static void split_urls(const char *value, release_setup_t *s)
{
    if (value == NULL)
        return;
    char *copy = dc_strdup(value), *save = NULL;
    for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
        s->smoke = dc_realloc(s->smoke, (s->smoke_count + 1) * sizeof(char *));
        s->smoke[s->smoke_count++] = dc_strdup(t);
    }
    free(copy);
}

static void setup_free(release_setup_t *s)
{
    for (size_t i = 0; i < s->smoke_count; i++)
        free(s->smoke[i]);
    free(s->smoke);
    free(s->pooled);
    free(s->scratch);
    if (s->store)
        dc_store_close(s->store);
}

static int setup(dc_cli_t *cli, release_setup_t *s, dc_error_t *err)
{
    const dc_config_t *cfg = &cli->config;
    dc_release_opts_t *o = &s->opts;
    memset(s, 0, sizeof(*s));
    if (dc_cli_migrate_opts(cli, &o->migrate, err) != 0 ||
        dc_pg_url_database(o->migrate.url, s->database, sizeof(s->database), err) != 0)
        return -1;
    if (dc_on_failure_parse(dc_config_get(cfg, DC_OPT_ON_FAILURE), &o->on_failure) != 0)
        return dc_error_set(err, "--on-failure must be auto, restore, down or none");
    o->on_failure_explicit = cfg->settings[DC_OPT_ON_FAILURE].source == DC_SRC_FLAG;
    if (dc_cli_open_store(cli, &s->store, err) != 0)
        return -1;
    split_urls(dc_config_get(cfg, DC_OPT_SMOKE), s);
    o->database_url = o->migrate.url;
    o->database = s->database;
    o->state_dir = dc_config_get(cfg, DC_OPT_STATE_DIR);
    o->store = s->store;
    dc_cli_backup_opts(cli, &o->backup);
    if (dc_cli_key(cli, &o->key, err) != 0 || dc_cli_backup_key(cli, &o->backup.key, err) != 0 ||
        dc_cli_metrics_path(cli, &s->metrics, err) != 0)
        return -1;
    dc_cli_check_opts(cli, &o->check);
    o->hooks_dir = dc_config_get(cfg, DC_OPT_HOOKS);
    o->hook_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_HOOK_TIMEOUT);
    o->smoke_urls = (const char *const *)s->smoke;
    o->smoke_url_count = s->smoke_count;
    o->smoke_window_ms = dc_config_duration_ms(cfg, DC_OPT_SMOKE_WINDOW);
    o->smoke_queries_dir = dc_config_get(cfg, DC_OPT_SMOKE_QUERIES);
    o->verify_queries_dir = dc_config_get(cfg, DC_OPT_VERIFY_QUERIES);
    o->row_tolerance_pct = (double)dc_config_int(cfg, DC_OPT_ROW_TOLERANCE);
    o->dry_run = dc_config_flag(cfg, DC_OPT_DRY_RUN);
    o->report_path = dc_config_get(cfg, DC_OPT_REPORT);
    o->report_md_path = dc_config_get(cfg, DC_OPT_REPORT_MD);
    o->lock_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_LOCK_TIMEOUT);
    o->maintenance_work_mem = dc_cli_maintenance_work_mem(cli, s->work_mem, sizeof(s->work_mem));
    /* As given, not in libpq form: the SQL smoke checks apply its ?schema= (Prisma's pooled
     * DATABASE_URL carries it) as the application's queries see it. */
    const char *pooled = dc_config_get(cfg, DC_OPT_POOLED_URL);
    if (pooled != NULL)
        dc_pg_register_secrets(pooled);
    o->pooled_url = s->pooled = pooled != NULL ? dc_strdup(pooled) : NULL;
    if (dc_config_flag(cfg, DC_OPT_REHEARSE)) {
        if (dc_cli_rehearse_opts(cli, &s->rehearse, &s->scratch, s->rehearse_work_mem,
                                 sizeof(s->rehearse_work_mem), err) != 0)
            return dc_error_prefix(err, "release --rehearse: ");
        o->rehearse = &s->rehearse;
    }
    return 0;
}

/* The outcome into --metrics-file; a failed write is a warning (the release's outcome stands). */
static void write_metrics(const release_setup_t *s, const dc_release_result_t *r, double start)
{
    dc_error_t e;
    if (s->metrics == NULL)
        return;
    dc_error_clear(&e);
    if (dc_metrics_release(s->metrics, s->database, r->exit_code, start, dc_metrics_now(), &e) != 0)
        dc_log_warn("metrics not updated: %s", e.message);
}

/* Prints the outcome and turns it into the exit code. */
static int conclude(dc_cli_t *cli, const dc_release_result_t *r, dc_error_t *err)
{
    if (cli->json && r->report_path[0]) {
        char *text = NULL;
        size_t len = 0;
        dc_error_t e;
        if (dc_read_file(r->report_path, 64u << 20, false, &text, &len, &e) == 0)
            printf("%s\n", text);
        free(text);
    } else if (cli->json) {
        printf("{\"outcome\": \"%s\"}\n", r->outcome);
    } else {
        printf("%s\n", r->summary);
        if (r->report_path[0])
            printf("report: %s (and %s)\n", r->report_path, r->report_md_path);
    }
    if (r->exit_code == DC_EXIT_OK)
        return 0;
    dc_error_set_code(err, r->exit_code, "%s", r->summary);
    return -1;
}

int dc_cmd_release(dc_cli_t *cli, dc_error_t *err)
{
    release_setup_t s;
    if (setup(cli, &s, err) != 0) {
        setup_free(&s);
        return -1;
    }
    int rc;
    if (s.opts.dry_run) {
        char *plan = NULL;
        bool refused = false;
        rc = dc_release_plan(&s.opts, &plan, &refused, err);
        if (rc == 0) {
            fputs(plan, stdout);
            if (refused)
                rc = dc_error_set_code(err, DC_EXIT_PRECHECK,
                                       "dry run: the precheck refuses this release");
        }
        free(plan);
    } else {
        dc_release_result_t result;
        double start = dc_metrics_now();
        rc = dc_release_run(&s.opts, &result, err);
        if (rc == 0) {
            write_metrics(&s, &result, start);
            rc = conclude(cli, &result, err);
        }
    }
    setup_free(&s);
    return rc;
}

int dc_cmd_recover(dc_cli_t *cli, dc_error_t *err)
{
    release_setup_t s;
    if (setup(cli, &s, err) != 0) {
        setup_free(&s);
        return -1;
    }
    dc_release_result_t result;
    double start = dc_metrics_now();
    int rc = dc_release_recover(&s.opts, &result, err);
    if (rc == 0) {
        write_metrics(&s, &result, start);
        rc = conclude(cli, &result, err);
    }
    setup_free(&s);
    return rc;
}

int dc_cmd_history(dc_cli_t *cli, dc_error_t *err)
{
    const char *url;
    char database[256];
    if (dc_cli_database_url(cli, &url, err) != 0 ||
        dc_pg_url_database(url, database, sizeof(database), err) != 0)
        return -1;
    return dc_release_history(dc_config_get(&cli->config, DC_OPT_STATE_DIR), database, cli->json,
                              err);
}
