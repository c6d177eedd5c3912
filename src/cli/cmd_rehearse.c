/* `deployctl rehearse`: wires settings to dc_rehearse_run and writes what it measured (text,
 * --json, --report-md). Exit 4 when a statement held a write-blocking lock longer than
 * --max-lock, or a migration failed in the rehearsal; 1 when the rehearsal could not run. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/rehearse.h"
#include "deployctl/util.h"

static int write_markdown(const char *path, const dc_rehearse_result_t *r, dc_error_t *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return dc_error_set(err, "cannot write the Markdown report %s: %s", path, strerror(errno));
    dc_rehearse_write_markdown(r, f);
    if (fclose(f) != 0)
        return dc_error_set(err, "cannot write the Markdown report %s: %s", path, strerror(errno));
    return 0;
}

/* The rehearsal's outcome as an exit: 4 when a threshold was crossed or a migration failed. */
int dc_cli_rehearse_outcome(const dc_rehearse_result_t *r, dc_error_t *err)
{
    char max[32];
    dc_format_duration((double)r->max_lock_ms / 1000.0, max, sizeof(max));
    if (r->failed != NULL)
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "rehearse: migration %s failed on snapshot %s: %s", r->failed,
                                 r->snapshot, r->failure ? r->failure : "");
    if (r->over_threshold > 0)
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "rehearse: %zu statement(s) held a write-blocking lock longer "
                                 "than --max-lock %s on snapshot %s; see the verdicts above",
                                 r->over_threshold, max, r->snapshot);
    return 0;
}

int dc_cli_rehearse_opts(dc_cli_t *cli, dc_rehearse_opts_t *opts, char **scratch, char *work_mem,
                         size_t size, dc_error_t *err)
{
    memset(opts, 0, sizeof(*opts));
    *scratch = NULL;
    if (dc_cli_migrate_opts(cli, &opts->migrate, err) != 0)
        return dc_error_prefix(err, "rehearse on which database's snapshot? ");
    if (dc_cli_key(cli, &opts->key, err) != 0)
        return -1;
    *scratch = dc_cli_url_option(cli, DC_OPT_SCRATCH);
    opts->production_url = opts->migrate.url;
    opts->scratch_url = *scratch;
    opts->maintenance_work_mem = dc_cli_maintenance_work_mem(cli, work_mem, size);
    opts->max_lock_ms = dc_config_duration_ms(&cli->config, DC_OPT_MAX_LOCK);
    return 0;
}

int dc_cli_rehearse(dc_cli_t *cli, const char *ref, dc_rehearse_result_t *r, dc_error_t *err)
{
    char dbbuf[256], work_mem[32];
    int rc;
    memset(r, 0, sizeof(*r));
    const char *database = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    dc_rehearse_opts_t opts;
    char *scratch = NULL;
    dc_store_t *store = NULL;
    if (dc_cli_rehearse_opts(cli, &opts, &scratch, work_mem, sizeof(work_mem), err) != 0 ||
        dc_cli_open_store(cli, &store, err) != 0) {
        free(scratch);
        return -1;
    }
    opts.store = store;
    opts.database = database;
    opts.ref = ref;
    rc = dc_rehearse_run(&opts, r, err);
    dc_store_close(store);
    free(scratch);
    return rc;
}

int dc_cmd_rehearse(dc_cli_t *cli, dc_error_t *err)
{
    dc_rehearse_result_t r;
    if (dc_cli_rehearse(cli, dc_config_get(&cli->config, DC_OPT_SNAPSHOT), &r, err) != 0) {
        dc_rehearse_result_free(&r);
        return -1;
    }
    if (cli->json) {
        json_t *o = dc_rehearse_json(&r);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        dc_log_status_clear();
        dc_rehearse_print_text(&r, stdout);
    }
    fflush(stdout);
    const char *md = dc_config_get(&cli->config, DC_OPT_REPORT_MD);
    int rc = md != NULL ? write_markdown(md, &r, err) : 0;
    if (rc == 0)
        rc = dc_cli_rehearse_outcome(&r, err);
    dc_rehearse_result_free(&r);
    return rc;
}
