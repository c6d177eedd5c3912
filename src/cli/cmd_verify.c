/* `deployctl verify`: wires settings to dc_verify_run and reports the outcome; exit 1 when the
 * snapshot failed its verification. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/util.h"
#include "deployctl/verify.h"

/* Verification outcome for Prometheus: when, whether it passed, and whether it was deep. */
static void write_metrics(const char *path, const char *database, const dc_verify_result_t *r)
{
    dc_metric_t m[] = {
        {"deployctl_verify_last_timestamp_seconds",
         "When the last verification of a snapshot ended (Unix time).", database, dc_metrics_now()},
        {"deployctl_verify_last_ok", "1 when the last verified snapshot passed, else 0.", database,
         r != NULL && r->ok ? 1 : 0},
        {"deployctl_verify_last_deep",
         "1 when the last verification restored the snapshot and compared every row.", database,
         r != NULL && r->deep ? 1 : 0},
    };
    dc_cli_metrics_write(path, m, sizeof(m) / sizeof(m[0]));
}

int dc_cmd_verify(dc_cli_t *cli, dc_error_t *err)
{
    const char *metrics;
    if (dc_cli_metrics_path(cli, &metrics, err) != 0)
        return -1;
    char dbbuf[256];
    int rc;
    const char *database = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    const char *server = NULL;
    if (database != NULL && dc_cli_database_url(cli, &server, err) != 0)
        return -1;
    const dc_key_t *key = NULL;
    if (dc_cli_key(cli, &key, err) != 0)
        return -1;
    dc_store_t *store;
    if (dc_cli_open_store(cli, &store, err) != 0)
        return -1;
    char work_mem[32];
    const char *maintenance_work_mem = dc_cli_maintenance_work_mem(cli, work_mem, sizeof(work_mem));
    dc_verify_opts_t opts = {
        .maintenance_work_mem = maintenance_work_mem,
        .store = store,
        .database = database,
        .ref = cli->args[0],
        .deep = dc_config_flag(&cli->config, DC_OPT_DEEP),
        .server_url = server,
        .scratch_url = dc_config_get(&cli->config, DC_OPT_VERIFY_DATABASE),
        .key = key,
    };
    dc_verify_result_t r;
    rc = dc_verify_run(&opts, &r, err);
    dc_store_close(store);
    write_metrics(metrics, database, rc == 0 ? &r : NULL);
    if (rc != 0)
        return dc_error_prefix(err, "verify failed: ");
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:f}", "id", r.id, "ok", r.ok,
                              "deep", r.deep, "members", (json_int_t)r.members, "tables",
                              (json_int_t)r.tables, "rows", (json_int_t)r.rows, "stored_bytes",
                              (json_int_t)r.stored_bytes, "seconds", r.seconds);
        json_object_set_new(o, "error", r.ok ? json_null() : json_string(r.failure));
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    }
    if (!r.ok)
        return dc_error_set(err, "snapshot %s FAILED verification: %s", r.id, r.failure);
    char rows[32], bytes[32], took[32];
    dc_format_count(r.rows, rows, sizeof(rows));
    dc_format_bytes(r.stored_bytes, bytes, sizeof(bytes));
    dc_format_duration(r.seconds, took, sizeof(took));
    if (r.deep)
        dc_log_info("snapshot %s verified deeply: restored into a scratch database and read back, "
                    "%zu tables and %s rows identical, in %s",
                    r.id, r.tables, rows, took);
    else
        dc_log_info("snapshot %s verified: %llu members, %s, every hash and %s rows as the "
                    "manifest says, in %s",
                    r.id, (unsigned long long)r.members, bytes, rows, took);
    return 0;
}
