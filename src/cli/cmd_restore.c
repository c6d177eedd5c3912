/* `deployctl restore`: wires settings to dc_restore_run, asks on a terminal before replacing a
 * database that holds tables, and reports what happened. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/restore.h"
#include "deployctl/util.h"

/* Asks on the terminal; anything but an explicit yes is a no. */
static bool ask_on_terminal(void *ctx, const char *question)
{
    (void)ctx;
    if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
        return false;
    dc_log_status_clear();
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char answer[16];
    if (fgets(answer, sizeof(answer), stdin) == NULL)
        return false;
    return answer[0] == 'y' || answer[0] == 'Y';
}

static void print_result(const dc_cli_t *cli, const dc_restore_result_t *r, const char *target)
{
    char shown[512];
    dc_pg_url_display(target, shown, sizeof(shown));
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:f}", "id", r->id, "target", shown,
                              "created_target", r->created_target, "tables", (json_int_t)r->tables,
                              "rows", (json_int_t)r->rows, "raw_bytes", (json_int_t)r->raw_bytes,
                              "seconds", r->seconds);
        json_object_set_new(o, "safety_snapshot",
                            r->safety_id[0] ? json_string(r->safety_id) : json_null());
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
        return;
    }
    char rows[32], took[32];
    dc_format_count(r->rows, rows, sizeof(rows));
    dc_format_duration(r->seconds, took, sizeof(took));
    dc_log_info("restored snapshot %s into %s: %zu tables, %s rows, in %s%s%s", r->id, shown,
                r->tables, rows, took,
                r->safety_id[0] ? "; the previous contents are in "
                                  "pre-restore snapshot "
                                : "",
                r->safety_id);
}

int dc_cmd_restore(dc_cli_t *cli, dc_error_t *err)
{
    const dc_config_t *cfg = &cli->config;
    char dbbuf[256];
    int rc;
    const char *source = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    char *target = dc_cli_url_option(cli, DC_OPT_TARGET);
    if (target == NULL) {
        const char *url;
        if (dc_cli_database_url(cli, &url, err) != 0)
            return dc_error_prefix(err, "restore into which database? ");
        target = dc_strdup(url);
    }
    if (source == NULL && strcmp(cli->args[0], "latest") == 0) {
        free(target);
        return dc_error_set(err, "'latest' needs --database: the database whose newest snapshot "
                                 "to restore");
    }
    dc_backup_opts_t backup;
    dc_cli_backup_opts(cli, &backup);
    const dc_key_t *key = NULL;
    if (dc_cli_key(cli, &key, err) != 0 || dc_cli_backup_key(cli, &backup.key, err) != 0) {
        free(target);
        return -1;
    }
    dc_store_t *store;
    if (dc_cli_open_store(cli, &store, err) != 0) {
        free(target);
        return -1;
    }
    char work_mem[32];
    const char *maintenance_work_mem = dc_cli_maintenance_work_mem(cli, work_mem, sizeof(work_mem));
    bool jobs_given = cfg->settings[DC_OPT_JOBS].source == DC_SRC_FLAG ||
                      cfg->settings[DC_OPT_JOBS].source == DC_SRC_ENV;
    dc_restore_opts_t opts = {
        .store = store,
        .database = source,
        .ref = cli->args[0],
        .target_url = target,
        .create_target = dc_config_get(cfg, DC_OPT_TARGET) != NULL,
        .jobs = jobs_given ? (int)dc_config_int(cfg, DC_OPT_JOBS) : 1,
        .yes = dc_config_flag(cfg, DC_OPT_YES),
        .confirm = ask_on_terminal,
        .safety_snapshot = !dc_config_flag(cfg, DC_OPT_NO_SAFETY_SNAPSHOT),
        .terminate_connections = dc_config_flag(cfg, DC_OPT_TERMINATE_CONNECTIONS),
        .lock_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_LOCK_TIMEOUT),
        .maintenance_work_mem = maintenance_work_mem,
        .backup = &backup,
        .key = key,
    };
    dc_restore_result_t result;
    rc = dc_restore_run(&opts, &result, err);
    if (rc == 0)
        print_result(cli, &result, target);
    else if (result.id[0] != '\0')
        dc_error_prefix(err, "restore of snapshot %s failed: ", result.id);
    else
        dc_error_prefix(err, "restore failed: ");
    dc_store_close(store);
    free(target);
    return rc;
}
