/* `deployctl snapshots` and `deployctl show`: what the store holds, as a table or JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/pg.h"
#include "deployctl/snapshot.h"
#include "deployctl/util.h"

static const char *status_of(const dc_snapshot_info_t *s)
{
    if (s->complete)
        return s->manifest ? "complete" : "unreadable";
    return s->in_progress ? "in-progress" : "incomplete";
}

static const char *verification_of(const dc_snapshot_info_t *s)
{
    if (s->verify_object[0] == '\0')
        return "no";
    if (!s->verified)
        return "FAILED";
    return s->verified_deep ? "deep" : "hashes";
}

static json_t *info_to_json(const dc_snapshot_info_t *s)
{
    const dc_manifest_t *m = s->manifest;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "database",
                        m && m->database ? json_string(m->database) : json_string(s->database_dir));
    json_object_set_new(o, "tag", m && m->tag ? json_string(m->tag) : json_null());
    json_object_set_new(o, "created_at", m ? json_string(m->created_at) : json_null());
    json_object_set_new(o, "complete", json_boolean(s->complete && m != NULL));
    json_object_set_new(o, "status", json_string(status_of(s)));
    json_object_set_new(o, "verified", json_boolean(s->verified));
    if (s->verify_object[0] != '\0')
        json_object_set_new(o, "verification",
                            json_pack("{s:b, s:b, s:s}", "ok", s->verified, "deep",
                                      s->verified_deep, "at", s->verified_at));
    json_object_set_new(o, "bytes", json_integer((json_int_t)s->stored_bytes));
    if (m != NULL) {
        json_object_set_new(o, "tables", json_integer((json_int_t)m->table_count));
        json_object_set_new(o, "rows", json_integer((json_int_t)dc_manifest_total_rows(m)));
        json_object_set_new(o, "raw_bytes",
                            json_integer((json_int_t)dc_manifest_total_raw_bytes(m)));
        json_object_set_new(o, "server_version", json_string(m->server_version));
    }
    if (s->manifest_error)
        json_object_set_new(o, "error", json_string(s->manifest_error));
    return o;
}

static void print_table(const dc_snapshot_list_t *list, bool all)
{
    printf("%-20s %-21s %-12s %-20s %10s %7s %14s %-11s %s\n", "DATABASE", "ID", "TAG", "CREATED",
           "SIZE", "TABLES", "ROWS", "STATUS", "VERIFIED");
    for (size_t i = 0; i < list->count; i++) {
        const dc_snapshot_info_t *s = &list->items[i];
        const dc_manifest_t *m = s->manifest;
        if (!all && (!s->complete || m == NULL))
            continue;
        char size[32], rows[32], tables[16];
        dc_format_bytes(s->stored_bytes, size, sizeof(size));
        dc_format_count(m ? dc_manifest_total_rows(m) : 0, rows, sizeof(rows));
        snprintf(tables, sizeof(tables), "%zu", m ? m->table_count : 0);
        printf("%-20s %-21s %-12s %-20s %10s %7s %14s %-11s %s\n",
               m && m->database ? m->database : s->database_dir, s->id, m && m->tag ? m->tag : "-",
               m ? m->created_at : "-", size, m ? tables : "-", m ? rows : "-", status_of(s),
               verification_of(s));
    }
}

int dc_cmd_snapshots(dc_cli_t *cli, dc_error_t *err)
{
    char dbbuf[256];
    int rc;
    const char *database = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    bool all = dc_config_flag(&cli->config, DC_OPT_ALL);
    dc_store_t *store;
    if (dc_cli_open_store(cli, &store, err) != 0)
        return -1;
    dc_snapshot_list_t list;
    rc = dc_catalog_list(store, database, &list, err);
    dc_store_close(store);
    if (rc != 0)
        return -1;
    if (cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < list.count; i++) {
            if (all || (list.items[i].complete && list.items[i].manifest))
                json_array_append_new(arr, info_to_json(&list.items[i]));
        }
        char *text = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
        json_decref(arr);
    } else {
        print_table(&list, all);
    }
    dc_catalog_list_free(&list);
    return 0;
}

static void print_manifest_summary(const dc_manifest_t *m, const char *dir)
{
    char size[32], raw[32], rows[32], took[32];
    size_t chunks = 0;
    for (size_t i = 0; i < m->table_count; i++)
        chunks += m->tables[i].chunk_count;
    dc_format_bytes(m->archive_bytes, size, sizeof(size));
    dc_format_bytes(dc_manifest_total_raw_bytes(m), raw, sizeof(raw));
    dc_format_count(dc_manifest_total_rows(m), rows, sizeof(rows));
    dc_format_duration(m->duration_seconds, took, sizeof(took));
    printf("snapshot     %s\n", m->id);
    printf("database     %s (PostgreSQL %s, %s), stored under %s/\n", m->database,
           m->server_version ? m->server_version : "?", m->encoding ? m->encoding : "?", dir);
    printf("tag          %s\n", m->tag ? m->tag : "-");
    printf("created      %s (took %s, deployctl %s)\n", m->created_at, took,
           m->tool_version ? m->tool_version : "?");
    printf("consistency  snapshot %s at LSN %s\n", m->snapshot ? m->snapshot : "?",
           m->lsn ? m->lsn : "?");
    printf("archive      %s, sha256 %s\n", size, m->archive_sha256);
    if (m->encrypted)
        printf("encryption   aes-256-gcm, key id %s (restore and verify need that key)\n",
               m->key_id);
    else
        printf("encryption   none\n");
    printf("data         %zu tables, %s rows, %s of COPY text in %zu chunks (zstd level %d)\n",
           m->table_count, rows, raw, chunks, m->compression_level);
    if (m->migration_count > 0)
        printf("migrations   %zu applied, the last %s\n", m->migration_count,
               m->migrations[m->migration_count - 1].name);
    else
        printf("migrations   none recorded\n");
    if (m->table_count > 0)
        printf("\n%-50s %14s %12s %7s\n", "TABLE", "ROWS", "DATA", "CHUNKS");
    for (size_t i = 0; i < m->table_count; i++) {
        const dc_manifest_table_t *t = &m->tables[i];
        char name[512], trows[32], tbytes[32];
        snprintf(name, sizeof(name), "%s.%s", t->schema, t->name);
        dc_format_count(t->rows, trows, sizeof(trows));
        dc_format_bytes(t->raw_bytes, tbytes, sizeof(tbytes));
        printf("%-50s %14s %12s %7zu\n", name, trows, tbytes, t->chunk_count);
    }
}

int dc_cmd_show(dc_cli_t *cli, dc_error_t *err)
{
    char dbbuf[256];
    int rc;
    const char *database = dc_cli_database_name(cli, dbbuf, sizeof(dbbuf), err, &rc);
    if (rc != 0)
        return -1;
    dc_store_t *store;
    if (dc_cli_open_store(cli, &store, err) != 0)
        return -1;
    dc_manifest_t *m = NULL;
    char dir[256];
    rc = dc_catalog_load(store, database, cli->args[0], &m, dir, err);
    dc_store_close(store);
    if (rc != 0)
        return -1;
    if (cli->json) {
        char *text = dc_manifest_to_json(m);
        printf("%s\n", text ? text : "null");
        free(text);
    } else {
        print_manifest_summary(m, dir);
    }
    dc_manifest_free(m);
    return 0;
}
