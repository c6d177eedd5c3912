/* `deployctl migrate status | deploy | resolve | down`: checks the subcommand and its options,
 * wires settings to the runner (src/migrate/) and prints what happened, as text or --json.
 * Exit 4 when status finds the database not up to date or the runner refused before changing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/migrate.h"
#include "deployctl/util.h"

static void print_json(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(o);
}

static json_t *string_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *names_json(char **names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

/* ---- status ---- */

static json_t *status_json(const dc_migrate_status_t *st)
{
    json_t *list = json_array();
    for (size_t i = 0; i < st->count; i++) {
        const dc_migration_status_t *e = &st->entries[i];
        json_t *o =
            json_pack("{s:s, s:s}", "name", e->name, "status", dc_migrate_state_name(e->state));
        json_object_set_new(o, "checksum",
                            e->local ? json_string(e->local->checksum) : json_null());
        json_object_set_new(o, "recorded_checksum",
                            string_or_null(e->row ? e->row->checksum : NULL));
        json_object_set_new(o, "started_at", string_or_null(e->row ? e->row->started_at : NULL));
        json_object_set_new(o, "finished_at", string_or_null(e->row ? e->row->finished_at : NULL));
        json_object_set_new(o, "logs", string_or_null(e->row ? e->row->logs : NULL));
        json_object_set_new(o, "has_down", json_boolean(e->local && e->local->down_sql));
        json_object_set_new(o, "partly_rolled_back",
                            json_boolean(dc_migrate_row_partly_undone(e->row)));
        json_array_append_new(list, o);
    }
    return json_pack("{s:b, s:b, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}}", "up_to_date",
                     dc_migrate_up_to_date(st), "history_table", st->history_exists, "runner_pid",
                     st->runner_pid ? json_integer(st->runner_pid) : json_null(), "migrations",
                     list, "counts", "applied", (json_int_t)st->applied, "pending",
                     (json_int_t)st->pending, "failed", (json_int_t)st->failed, "edited",
                     (json_int_t)st->edited, "missing_locally", (json_int_t)st->missing);
}

static void print_status_table(const dc_migrate_status_t *st)
{
    int width = 9;
    for (size_t i = 0; i < st->count; i++) {
        int n = (int)strlen(st->entries[i].name);
        width = n > width ? n : width;
    }
    printf("%-*s  %-15s %-4s  %s\n", width, "MIGRATION", "STATUS", "DOWN", "FINISHED");
    for (size_t i = 0; i < st->count; i++) {
        const dc_migration_status_t *e = &st->entries[i];
        const char *when = e->row && e->row->finished_at ? e->row->finished_at : "-";
        /* A down.sql that stopped partway: failed, and how. */
        bool undone = dc_migrate_row_partly_undone(e->row);
        printf("%-*s  %-15s %-4s  %s\n", width, e->name,
               undone ? "failed (down)" : dc_migrate_state_name(e->state),
               e->local && e->local->down_sql ? "yes" : "no", when);
    }
}

static int run_status(dc_cli_t *cli, const dc_migrate_opts_t *opts, dc_error_t *err)
{
    dc_migration_set_t set;
    dc_history_t history;
    dc_migrate_status_t st;
    if (dc_migrate_status(opts, &set, &history, &st, err) != 0)
        return dc_error_prefix(err, "migrate status: ");
    if (cli->json)
        print_json(status_json(&st));
    else
        print_status_table(&st);
    int rc = 0;
    if (st.runner_pid != 0)
        dc_log_warn("pid %d holds the migration lock: a deploy is running now, and the migration "
                    "it is applying shows as failed until it finishes",
                    st.runner_pid);
    for (size_t i = 0; i < st.count; i++) {
        if (dc_migrate_row_partly_undone(st.entries[i].row))
            dc_log_warn("migration %s is partly rolled back: its down.sql stopped partway (%s); "
                        "finish the undo and run 'deployctl migrate resolve --rolled-back %s', or "
                        "redo it and run 'deployctl migrate resolve --applied %s'",
                        st.entries[i].name, st.entries[i].row->logs + strlen(DC_MIGRATE_UNDO_MARK),
                        st.entries[i].name, st.entries[i].name);
    }
    if (!dc_migrate_up_to_date(&st))
        rc = dc_error_set_code(err, DC_EXIT_PRECHECK,
                               "the database is not up to date: %zu pending, %zu failed, %zu "
                               "edited after they were applied, %zu missing locally",
                               st.pending, st.failed, st.edited, st.missing);
    else
        dc_log_info("the database is up to date: %zu migrations applied", st.applied);
    dc_migrate_status_free(&st);
    dc_history_free(&history);
    dc_migrate_set_free(&set);
    return rc;
}

/* ---- deploy, down, resolve ---- */

static void print_report(dc_cli_t *cli, const char *action, const dc_migrate_report_t *r, int rc)
{
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:b, s:o, s:o, s:o, s:i, s:f}", "action", action, "ok",
                              rc == 0, "done", names_json(r->applied, r->applied_count), "failed",
                              string_or_null(r->failed), "dropped_invalid_indexes",
                              names_json(r->dropped_invalid, r->dropped_count), "lock_retries",
                              r->retries, "seconds", r->seconds);
        print_json(o);
    }
    if (rc != 0)
        return;
    char took[32];
    dc_format_duration(r->seconds, took, sizeof(took));
    if (r->applied_count == 0) {
        dc_log_info("%s: nothing to do", action);
        return;
    }
    dc_buf_t names = {0};
    for (size_t i = 0; i < r->applied_count; i++)
        dc_buf_appendf(&names, "%s%s", i ? ", " : "", r->applied[i]);
    dc_log_info("%s: %zu migration(s) %s in %s: %s", action, r->applied_count,
                strcmp(action, "down") == 0 ? "rolled back" : "applied", took, names.data);
    dc_buf_free(&names);
}

static int parse_steps(dc_cli_t *cli, int *steps, dc_error_t *err)
{
    long n = 1;
    const char *to = dc_config_get(&cli->config, DC_OPT_TO);
    if (cli->arg_count == 2) {
        if (to != NULL)
            return dc_error_set(err, "migrate down takes N or --to NAME, not both");
        if (dc_parse_int(cli->args[1], 1, 1000000, &n) != 0)
            return dc_error_set(err,
                                "migrate down %s: N must be a number of migrations (1 or "
                                "more)",
                                cli->args[1]);
    }
    *steps = (int)n;
    return 0;
}

/* Options that belong to one subcommand are refused with another. */
static int check_subcommand_options(dc_cli_t *cli, const char *sub, dc_error_t *err)
{
    const char *applied = dc_config_get(&cli->config, DC_OPT_APPLIED);
    const char *rolled = dc_config_get(&cli->config, DC_OPT_ROLLED_BACK);
    bool resolve = strcmp(sub, "resolve") == 0;
    bool down = strcmp(sub, "down") == 0;
    if (!resolve && (applied || rolled))
        return dc_error_set(err, "--applied and --rolled-back go with 'migrate resolve'");
    if (!down && dc_config_get(&cli->config, DC_OPT_TO) != NULL)
        return dc_error_set(err, "--to goes with 'migrate down'");
    if (resolve && (applied != NULL) == (rolled != NULL))
        return dc_error_set(err, "migrate resolve needs exactly one of --applied NAME and "
                                 "--rolled-back NAME");
    if (cli->arg_count > (down ? 2 : 1))
        return dc_error_set(err, "migrate %s takes no argument '%s'", sub, cli->args[1]);
    return 0;
}

/* A migration waiting for a lock makes every query on that table queue behind it: unless told
 * otherwise (--lock-timeout, DEPLOYCTL_LOCK_TIMEOUT), migrate waits 5 s, not the 30 s a backup
 * may; the config file's [backup] lock_timeout is the backups' own. */
#define MIGRATE_LOCK_TIMEOUT_MS 5000

static uint64_t lock_timeout_ms(const dc_config_t *cfg)
{
    if (cfg->settings[DC_OPT_LOCK_TIMEOUT].source < DC_SRC_ENV)
        return MIGRATE_LOCK_TIMEOUT_MS;
    return dc_config_duration_ms(cfg, DC_OPT_LOCK_TIMEOUT);
}

int dc_cli_migrate_opts(dc_cli_t *cli, dc_migrate_opts_t *opts, dc_error_t *err)
{
    const char *url;
    if (dc_cli_database_url(cli, &url, err) != 0)
        return -1;
    const dc_config_t *cfg = &cli->config;
    *opts = (dc_migrate_opts_t){
        .url = url,
        .prisma_url = dc_config_get(cfg, DC_OPT_DATABASE),
        .schema = cli->prisma_schema,
        .dir = dc_config_get(cfg, DC_OPT_MIGRATIONS),
        .lock_timeout_ms = lock_timeout_ms(cfg),
        .statement_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_STATEMENT_TIMEOUT),
        .lock_retries = (int)dc_config_int(cfg, DC_OPT_LOCK_RETRIES),
        .retry_backoff_ms = dc_config_duration_ms(cfg, DC_OPT_LOCK_RETRY_DELAY),
        .external_command = dc_config_get(cfg, DC_OPT_MIGRATE_COMMAND),
        .external_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_MIGRATE_COMMAND_TIMEOUT),
    };
    return 0;
}

int dc_cmd_migrate(dc_cli_t *cli, dc_error_t *err)
{
    const char *sub = cli->args[0];
    static const char *const known[] = {"status", "deploy", "resolve", "down", NULL};
    bool ok = false;
    for (int i = 0; known[i] != NULL; i++)
        ok = ok || strcmp(sub, known[i]) == 0;
    if (!ok)
        return dc_error_set(err,
                            "unknown migrate subcommand '%s': use status, deploy, resolve or "
                            "down (deployctl migrate --help)",
                            sub);
    dc_migrate_opts_t opts;
    if (check_subcommand_options(cli, sub, err) != 0 || dc_cli_migrate_opts(cli, &opts, err) != 0)
        return -1;
    if (strcmp(sub, "status") == 0)
        return run_status(cli, &opts, err);
    if (strcmp(sub, "resolve") == 0) {
        const char *applied = dc_config_get(&cli->config, DC_OPT_APPLIED);
        int rc = dc_migrate_resolve(
            &opts, applied ? applied : dc_config_get(&cli->config, DC_OPT_ROLLED_BACK),
            applied ? DC_RESOLVE_APPLIED : DC_RESOLVE_ROLLED_BACK, err);
        if (cli->json)
            print_json(json_pack("{s:s, s:b}", "action", "resolve", "ok", rc == 0));
        return rc == 0 ? 0 : dc_error_prefix(err, "migrate resolve: ");
    }
    dc_migrate_report_t report;
    int rc;
    if (strcmp(sub, "deploy") == 0) {
        rc = dc_migrate_deploy(&opts, &report, err);
    } else {
        int steps = 1;
        if (parse_steps(cli, &steps, err) != 0)
            return -1;
        rc = dc_migrate_down(&opts, dc_config_get(&cli->config, DC_OPT_TO), steps, &report, err);
    }
    print_report(cli, sub, &report, rc);
    dc_migrate_report_free(&report);
    return rc == 0 ? 0 : dc_error_prefix(err, "migrate %s: ", sub);
}
