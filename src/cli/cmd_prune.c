/* `deployctl prune`: wires the retention settings to dc_prune_run and reports each snapshot's
 * fate and why, as a table or JSON. The rules themselves live in src/archive/retention.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/retention.h"
#include "deployctl/util.h"

static void policy_from_config(const dc_config_t *cfg, dc_retention_policy_t *p)
{
    p->keep_last = (int)dc_config_int(cfg, DC_OPT_KEEP_LAST);
    p->keep_daily = (int)dc_config_int(cfg, DC_OPT_KEEP_DAILY);
    p->keep_weekly = (int)dc_config_int(cfg, DC_OPT_KEEP_WEEKLY);
    p->keep_monthly = (int)dc_config_int(cfg, DC_OPT_KEEP_MONTHLY);
    p->incomplete_grace = (int64_t)(dc_config_duration_ms(cfg, DC_OPT_INCOMPLETE_GRACE) / 1000);
    p->pre_restore_window = (int64_t)(dc_config_duration_ms(cfg, DC_OPT_PRE_RESTORE_WINDOW) / 1000);
}

/* Which database: the one --database (or the environment, or the config) names, or every
 * database in the store for "all". Deleting is never aimed at "whatever is there" by default. */
static int database_of(dc_cli_t *cli, char *buf, size_t size, const char **out, dc_error_t *err)
{
    const char *value = dc_config_get(&cli->config, DC_OPT_DATABASE);
    *out = NULL;
    if (value == NULL || *value == '\0')
        return dc_error_set(err,
                            "prune needs a database: --database URL (or DATABASE_URL_DIRECT, "
                            "DIRECT_URL, DATABASE_URL, database.url), or --database all for every "
                            "database in the store");
    if (strcmp(value, "all") == 0)
        return 0;
    int rc;
    *out = dc_cli_database_name(cli, buf, size, err, &rc);
    return rc;
}

static const char *action_of(const dc_prune_entry_t *e, bool dry_run)
{
    if (e->keep)
        return "keep";
    if (e->failure != NULL)
        return "FAILED";
    return dry_run ? "would-delete" : "delete";
}

static void reasons_text(const dc_prune_entry_t *e, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (unsigned bit = 1; bit != 0 && bit <= e->reasons; bit <<= 1) {
        if (!(e->reasons & bit) || n >= size)
            continue;
        const char *text = e->keep ? dc_retention_reason_name(bit) : dc_retention_reason_text(bit);
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "", text);
        if (bit == DC_KEEP_PINNED && e->pin_object[0] != '\0' && n < size)
            n += (size_t)snprintf(out + n, size - n, " (%s)", e->pin_object);
    }
}

static json_t *entry_to_json(const dc_prune_entry_t *e, bool dry_run)
{
    json_t *reasons = json_array();
    for (unsigned bit = 1; bit != 0 && bit <= e->reasons; bit <<= 1) {
        if (e->reasons & bit)
            json_array_append_new(reasons, json_string(dc_retention_reason_name(bit)));
    }
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:b, s:I}", "id", e->id, "database", e->database,
                  "created_at", e->created_at, "tag", e->tag[0] ? json_string(e->tag) : json_null(),
                  "action", e->keep ? "keep" : "delete", "reasons", reasons, "complete",
                  e->complete, "bytes", (json_int_t)e->stored_bytes);
    json_object_set_new(o, "deleted", json_boolean(e->deleted && !dry_run));
    if (e->pin_object[0] != '\0')
        json_object_set_new(o, "pin", json_string(e->pin_object));
    if (e->failure != NULL)
        json_object_set_new(o, "error", json_string(e->failure));
    return o;
}

static void print_json(const dc_prune_result_t *r, bool dry_run)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->count; i++)
        json_array_append_new(arr, entry_to_json(&r->entries[i], dry_run));
    char *text = json_dumps(arr, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(arr);
}

static void print_table(const dc_prune_result_t *r, bool dry_run)
{
    printf("%-12s %-20s %-21s %-12s %-20s %s\n", "ACTION", "DATABASE", "ID", "TAG", "CREATED",
           "WHY");
    for (size_t i = 0; i < r->count; i++) {
        const dc_prune_entry_t *e = &r->entries[i];
        char why[512];
        reasons_text(e, why, sizeof(why));
        printf("%-12s %-20s %-21s %-12s %-20s %s\n", action_of(e, dry_run), e->database, e->id,
               e->tag[0] ? e->tag : (e->complete ? "-" : "(incomplete)"), e->created_at, why);
    }
}

static void log_summary(const dc_prune_result_t *r, bool dry_run)
{
    char freed[32];
    uint64_t would_free = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (!r->entries[i].keep)
            would_free += r->entries[i].stored_bytes;
    }
    if (dry_run) {
        dc_format_bytes(would_free, freed, sizeof(freed));
        dc_log_info("dry run: %zu of %zu snapshots would be deleted (%s), %zu kept; nothing "
                    "was changed",
                    r->to_delete, r->count, freed, r->kept);
        return;
    }
    dc_format_bytes(r->freed_bytes, freed, sizeof(freed));
    dc_log_info("pruned: %zu snapshots deleted (%s freed), %zu kept, %zu failed; %d temporary "
                "objects of dead writers removed",
                r->deleted, freed, r->kept, r->failed, r->removed_temporary);
}

/* A real (not dry) run for Prometheus: when it last succeeded, what it deleted and freed. */
static void write_metrics(const char *path, const char *database, const dc_prune_result_t *r)
{
    dc_metric_t m[] = {
        {"deployctl_prune_last_success_timestamp_seconds",
         "When prune last applied the retention rules without a failure (Unix time).", database,
         dc_metrics_now()},
        {"deployctl_prune_last_deleted", "Snapshots the last prune deleted.", database,
         (double)r->deleted},
        {"deployctl_prune_last_freed_bytes", "Bytes the last prune freed in the store.", database,
         (double)r->freed_bytes},
        {"deployctl_prune_last_kept", "Snapshots the last prune kept.", database, (double)r->kept},
    };
    dc_cli_metrics_write(path, m, sizeof(m) / sizeof(m[0]));
}

int dc_cmd_prune(dc_cli_t *cli, dc_error_t *err)
{
    const char *metrics;
    if (dc_cli_metrics_path(cli, &metrics, err) != 0)
        return -1;
    dc_prune_opts_t opts = {0};
    policy_from_config(&cli->config, &opts.policy);
    if (dc_retention_policy_check(&opts.policy, err) != 0)
        return -1;
    char dbbuf[256];
    if (database_of(cli, dbbuf, sizeof(dbbuf), &opts.database, err) != 0)
        return -1;
    if (dc_cli_open_store(cli, &opts.store, err) != 0)
        return -1;
    opts.dry_run = dc_config_flag(&cli->config, DC_OPT_DRY_RUN);
    opts.now = time(NULL);
    dc_prune_result_t r;
    int rc = dc_prune_run(&opts, &r, err);
    dc_store_close(opts.store);
    if (r.count > 0 || rc == 0) {
        if (cli->json)
            print_json(&r, opts.dry_run);
        else
            print_table(&r, opts.dry_run);
    }
    if (rc == 0)
        log_summary(&r, opts.dry_run);
    if (rc == 0 && !opts.dry_run)
        write_metrics(metrics, opts.database ? opts.database : "all", &r);
    dc_prune_result_free(&r);
    return rc;
}
