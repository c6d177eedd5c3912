/* `deployctl backup`: wires settings to dc_backup_run and prints the result; the snapshot id
 * is always the last line of stdout (or the "id" of the JSON object with --json). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/backup.h"
#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/util.h"
#include "deployctl/verify.h"

static void print_summary(const dc_cli_t *cli, const dc_backup_result_t *r, const char *store)
{
    const dc_manifest_t *m = r->manifest;
    uint64_t rows = dc_manifest_total_rows(m);
    uint64_t raw = dc_manifest_total_raw_bytes(m);
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:s}", "id", m->id,
                              "database", m->database, "tag", m->tag, "created_at", m->created_at,
                              "tables", (json_int_t)m->table_count, "rows", (json_int_t)rows,
                              "raw_bytes", (json_int_t)raw, "bytes", (json_int_t)m->archive_bytes,
                              "seconds", r->seconds, "store", store);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
        return;
    }
    char srows[32], sraw[32], sstored[32], stime[32], srate[32];
    dc_format_count(rows, srows, sizeof(srows));
    dc_format_bytes(raw, sraw, sizeof(sraw));
    dc_format_bytes(m->archive_bytes, sstored, sizeof(sstored));
    dc_format_duration(r->seconds, stime, sizeof(stime));
    dc_format_bytes(r->seconds > 0 ? (uint64_t)((double)raw / r->seconds) : raw, srate,
                    sizeof(srate));
    dc_log_info("snapshot %s of %s complete: %zu tables, %s rows, %s of data stored in %s, "
                "in %s (%s/s)",
                m->id, m->database, m->table_count, srows, sraw, sstored, stime, srate);
    printf("%s\n", m->id);
}

void dc_cli_backup_opts(dc_cli_t *cli, dc_backup_opts_t *opts)
{
    const dc_config_t *cfg = &cli->config;
    memset(opts, 0, sizeof(*opts));
    opts->tag = dc_config_get(cfg, DC_OPT_TAG);
    opts->jobs = (int)dc_config_int(cfg, DC_OPT_JOBS);
    opts->compression_level = (int)dc_config_int(cfg, DC_OPT_COMPRESS_LEVEL);
    opts->chunk_bytes = dc_config_size(cfg, DC_OPT_CHUNK_SIZE);
    opts->split_bytes = dc_config_size(cfg, DC_OPT_SPLIT_SIZE);
    opts->lock_timeout_ms = dc_config_duration_ms(cfg, DC_OPT_LOCK_TIMEOUT);
    opts->pg_dump_path = dc_config_get(cfg, DC_OPT_PG_DUMP);
    opts->prisma_schema = cli->prisma_schema;
}

const char *dc_cli_maintenance_work_mem(dc_cli_t *cli, char *out, size_t size)
{
    if (dc_config_get(&cli->config, DC_OPT_MAINTENANCE_WORK_MEM) == NULL)
        return NULL;
    uint64_t bytes = dc_config_size(&cli->config, DC_OPT_MAINTENANCE_WORK_MEM);
    snprintf(out, size, "%llukB", (unsigned long long)(bytes / 1024));
    return out;
}

/* backup --verify: a deep verification of the snapshot just taken. */
static int verify_new_snapshot(dc_cli_t *cli, dc_store_t *store, const dc_manifest_t *m,
                               const char *url, dc_error_t *err)
{
    char work_mem[32];
    dc_verify_opts_t vopts = {
        .maintenance_work_mem = dc_cli_maintenance_work_mem(cli, work_mem, sizeof(work_mem)),
        .store = store,
        .database = m->database,
        .ref = m->id,
        .deep = true,
        .server_url = url,
        .scratch_url = dc_config_get(&cli->config, DC_OPT_VERIFY_DATABASE),
        .key = m->key,
    };
    dc_verify_result_t result;
    if (dc_verify_run(&vopts, &result, err) != 0)
        return dc_error_prefix(err, "snapshot %s was stored but could not be verified: ", m->id);
    if (!result.ok)
        return dc_error_set(err, "snapshot %s was stored but FAILED its deep verification: %s",
                            m->id, result.failure);
    char rows[32], took[32];
    dc_format_count(result.rows, rows, sizeof(rows));
    dc_format_duration(result.seconds, took, sizeof(took));
    dc_log_info("snapshot %s verified: restored into a scratch database and read back, %zu "
                "tables and %s rows identical, in %s",
                m->id, result.tables, rows, took);
    return 0;
}

/* The outcome for Prometheus: start and end always, success time and size only when the
 * snapshot was stored (and, with --verify, verified), so an alert can compare the two. */
static void write_metrics(const char *path, const char *database, double start, double end,
                          const dc_manifest_t *stored, bool succeeded, bool verified)
{
    dc_metric_t m[6] = {
        {"deployctl_backup_last_start_timestamp_seconds",
         "When the last backup started (Unix time).", database, start},
        {"deployctl_backup_last_end_timestamp_seconds",
         "When the last backup ended, successful or not (Unix time).", database, end},
        {"deployctl_backup_last_duration_seconds", "How long the last backup took.", database,
         end - start},
        {"deployctl_backup_last_verified",
         "1 when the last backup was verified deeply (backup --verify) and passed, else 0.",
         database, verified ? 1 : 0},
        {"deployctl_backup_last_success_timestamp_seconds",
         "When the last successful backup ended (Unix time).", database, end},
        {"deployctl_backup_last_bytes", "Stored size of the last successful backup's archive.",
         database, stored ? (double)stored->archive_bytes : 0},
    };
    dc_cli_metrics_write(path, m, succeeded ? 6 : 4);
}

int dc_cmd_backup(dc_cli_t *cli, dc_error_t *err)
{
    const char *url, *metrics;
    dc_backup_opts_t opts;
    dc_cli_backup_opts(cli, &opts);
    if (!dc_snapshot_tag_valid(opts.tag))
        return dc_error_set(err, "invalid tag '%s': use 1-32 of a-z, 0-9, '.', '_' and '-'",
                            opts.tag);
    if (dc_cli_database_url(cli, &url, err) != 0 || dc_cli_metrics_path(cli, &metrics, err) != 0)
        return -1;
    char dbbuf[256];
    int rc;
    const char *database = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    double start = dc_metrics_now();
    dc_store_t *store;
    if (dc_cli_backup_key(cli, &opts.key, err) != 0 || dc_cli_open_store(cli, &store, err) != 0) {
        write_metrics(metrics, database, start, dc_metrics_now(), NULL, false, false);
        return -1;
    }
    opts.database_url = url;
    opts.store = store;
    opts.prisma_schema = cli->prisma_schema;
    bool verify = dc_config_flag(&cli->config, DC_OPT_VERIFY);
    dc_backup_result_t result;
    rc = dc_backup_run(&opts, &result, err);
    if (rc != 0) {
        dc_error_prefix(err, "backup failed: ");
        write_metrics(metrics, database, start, dc_metrics_now(), NULL, false, false);
    } else {
        if (verify)
            rc = verify_new_snapshot(cli, store, result.manifest, url, err);
        write_metrics(metrics, database, start, dc_metrics_now(), result.manifest, rc == 0,
                      verify && rc == 0);
        print_summary(cli, &result, dc_store_url(store));
        dc_manifest_free(result.manifest);
    }
    dc_store_close(store);
    return rc;
}
