/* `deployctl check`: wires settings to dc_check_run, prints the report (lines like the seed's
 * pre-migration-check, or JSON with --json) and turns a failed verdict into exit code 4. */
#include <stdio.h>
#include <stdlib.h>

#include "deployctl/check.h"
#include "deployctl/cli.h"

void dc_cli_check_opts(dc_cli_t *cli, dc_check_opts_t *opts_out)
{
    const dc_config_t *cfg = &cli->config;
    dc_check_opts_t opts;
    dc_check_opts_init(&opts);
    /* The URL as given: the pooler check reads Prisma's ?pgbouncer=true from it. */
    opts.database_url = dc_config_get(cfg, DC_OPT_DATABASE);
    opts.pooled_url = dc_config_get(cfg, DC_OPT_POOLED_URL);
    opts.pooled_origin = cfg->settings[DC_OPT_POOLED_URL].origin;
    opts.store_url = dc_config_get(cfg, DC_OPT_STORE);
    opts.migrations_dir = dc_config_get(cfg, DC_OPT_MIGRATIONS);
    opts.pg_dump_path = dc_config_get(cfg, DC_OPT_PG_DUMP);
    opts.max_snapshot_age_ms = dc_config_duration_ms(cfg, DC_OPT_MAX_SNAPSHOT_AGE);
    opts.max_transaction_age_ms = dc_config_duration_ms(cfg, DC_OPT_MAX_TRANSACTION_AGE);
    /* A release's backup: its workers, the coordinator and pg_dump. */
    opts.connections_needed = (int)dc_config_int(cfg, DC_OPT_JOBS) + 2;
    *opts_out = opts;
}

int dc_cmd_check(dc_cli_t *cli, dc_error_t *err)
{
    const dc_config_t *cfg = &cli->config;
    dc_check_opts_t opts;
    dc_cli_check_opts(cli, &opts);
    dc_check_report_t report;
    if (dc_check_run(&opts, &report, err) != 0)
        return -1;
    if (cli->json) {
        char *text = dc_check_report_to_json(&report);
        printf("%s\n", text ? text : "null");
        free(text);
    } else {
        dc_check_report_print(stdout, &report, dc_check_unicode_wanted());
    }
    size_t failed = dc_check_report_count(&report, DC_CHECK_FAILED);
    size_t warnings = dc_check_report_count(&report, DC_CHECK_WARNING);
    dc_check_report_free(&report);
    if (failed > 0)
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "pre-migration checks failed: %zu check%s failed", failed,
                                 failed == 1 ? "" : "s");
    if (warnings > 0 && dc_config_flag(cfg, DC_OPT_STRICT))
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "pre-migration checks: %zu warning%s, and --strict makes "
                                 "warnings fail",
                                 warnings, warnings == 1 ? "" : "s");
    return 0;
}
