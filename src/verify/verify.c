/* `deployctl verify`. Plain: the archive read end to end, every member against its SHA-256 and
 * size, every chunk decompressed against its COPY text's SHA-256, size and row count. Deep:
 * the snapshot restored into a scratch database (created and always dropped), then every table
 * read back with COPY, in the order it was loaded, and cut at the chunks' row counts, so each
 * chunk's raw SHA-256 is checked again from what the server holds. The outcome is stored as
 * verify-<time>.json beside the snapshot. */
#include <jansson.h>
#include <ctype.h>
#include <libpq/libpq-fs.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/restore.h"
#include "deployctl/signals.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"
#include "deployctl/verify.h"

#define PIECE (256 * 1024)

/* ---- plain ---- */

typedef struct row_counter {
    uint64_t rows;
} row_counter_t;

static int count_rows(void *ctx, const uint8_t *data, size_t len, dc_error_t *err)
{
    (void)err;
    row_counter_t *c = ctx;
    c->rows += dc_count_newlines(data, len);
    return 0;
}

/* Reads one member to its end (the reader checks its stored hash) and, for chunks, checks the
 * decompressed text. */
static int check_member(dc_snapshot_reader_t *reader, const dc_manifest_t *m,
                        const dc_member_t *member, dc_verify_result_t *result, dc_error_t *err)
{
    bool chunk = member->kind == DC_MEMBER_TABLE_CHUNK || member->kind == DC_MEMBER_BLOB_CHUNK;
    row_counter_t rows = {0};
    dc_filter_t *count = dc_filter_count_new(dc_filter_callback_sink_new(count_rows, &rows));
    dc_filter_t *raw_sha = dc_manifest_raw_digest_new(m, count);
    dc_filter_t *head = chunk ? dc_filter_zstd_decompress_new(raw_sha, err) : NULL;
    if (chunk && head == NULL) {
        dc_filter_free_chain(raw_sha);
        return -1;
    }
    char *piece = dc_malloc(PIECE);
    int rc = 0;
    for (;;) {
        size_t got = 0;
        rc = dc_snapshot_reader_read(reader, piece, PIECE, &got, err);
        if (rc != 0 || got == 0)
            break;
        if (head != NULL && (rc = dc_filter_write(head, piece, got, err)) != 0) {
            dc_error_prefix(err, "%s: ", member->name);
            break;
        }
    }
    free(piece);
    if (rc == 0 && head != NULL && (rc = dc_filter_finish(head, err)) != 0)
        dc_error_prefix(err, "%s: ", member->name);
    if (rc == 0)
        result->stored_bytes += member->size; /* what was read may be decrypted: count the stored */
    if (rc == 0 && chunk) {
        char sha[DC_HASH_HEX];
        dc_filter_sha256_hex(raw_sha, sha);
        const dc_manifest_chunk_t *k = member->chunk;
        if (strcmp(sha, k->raw_sha256) != 0 || dc_filter_count_bytes(count) != k->raw_bytes)
            rc = dc_error_set(err, "%s: its content does not match the manifest's raw SHA-256",
                              member->name);
        else if (member->kind == DC_MEMBER_TABLE_CHUNK && rows.rows != k->rows)
            rc = dc_error_set(err, "%s: %llu rows, the manifest says %llu", member->name,
                              (unsigned long long)rows.rows, (unsigned long long)k->rows);
        result->raw_bytes += dc_filter_count_bytes(count);
        result->rows += member->kind == DC_MEMBER_TABLE_CHUNK ? rows.rows : 0;
    }
    if (head != NULL)
        dc_filter_free_chain(head);
    else
        dc_filter_free_chain(raw_sha);
    return rc;
}

static int verify_archive(const dc_verify_opts_t *opts, const dc_manifest_t *m, const char *dir,
                          dc_verify_result_t *result, dc_error_t *err)
{
    dc_snapshot_reader_t *reader;
    if (dc_snapshot_reader_open(opts->store, dir, m, &reader, err) != 0)
        return -1;
    int rc = 0;
    for (;;) {
        dc_member_t member;
        bool end = false;
        rc = dc_snapshot_reader_next(reader, &member, &end, err);
        if (rc != 0 || end)
            break;
        rc = check_member(reader, m, &member, result, err);
        if (rc != 0)
            break;
        result->members++;
        if ((rc = dc_signal_check(err)) != 0)
            break;
    }
    if (rc == 0)
        rc = dc_snapshot_reader_finish(reader, err);
    dc_snapshot_reader_close(reader);
    return rc;
}

/* ---- deep ---- */

/* The same output settings the backup used, so equal data gives equal COPY text. */
static int set_copy_settings(PGconn *conn, const dc_manifest_t *m, dc_error_t *err)
{
    char *sql = dc_sprintf("SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';"
                           " SET extra_float_digits = 3; SET TimeZone = 'UTC';"
                           " SET bytea_output = 'hex'; SET synchronize_seqscans = off;"
                           " SET client_encoding = '%s';"
                           " SELECT pg_catalog.set_config('search_path', '', false)",
                           m->encoding ? m->encoding : "UTF8");
    int rc = dc_pg_exec(conn, sql, err);
    free(sql);
    return rc;
}

/* Reads a restored table back and checks it chunk by chunk: rows come back in the order they
 * were loaded, so the first chunk's rows are the first rows, and so on. */
static int check_table(PGconn *conn, const dc_manifest_t *m, const dc_manifest_table_t *t,
                       dc_error_t *err)
{
    char *schema = dc_pg_quote_ident(conn, t->schema);
    char *name = dc_pg_quote_ident(conn, t->name);
    char *cols = dc_pg_column_list(conn, t->columns, t->column_count);
    char *sql = dc_sprintf("COPY (SELECT %s FROM ONLY %s.%s %s) TO STDOUT", cols, schema, name,
                           t->filter ? t->filter : "");
    char what[600];
    snprintf(what, sizeof(what), "reading %s.%s back", t->schema, t->name);
    free(cols);
    free(schema);
    free(name);
    PGresult *res = PQexec(conn, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        dc_pg_error(conn, res, what, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);

    dc_filter_t *sha = dc_manifest_raw_digest_new(m, NULL);
    size_t chunk = 0;
    uint64_t rows_in_chunk = 0, total = 0;
    int rc = 0;
    for (;;) {
        char *row = NULL;
        int n = PQgetCopyData(conn, &row, 0);
        if (n == -1)
            break;
        if (n < 0) {
            rc = dc_pg_error(conn, NULL, what, err);
            break;
        }
        total++;
        if (rc == 0 && chunk >= t->chunk_count)
            rc = dc_error_set(err,
                              "%s.%s: the restored table has more rows than the snapshot's "
                              "%llu",
                              t->schema, t->name, (unsigned long long)t->rows);
        if (rc == 0) {
            dc_filter_write(sha, row, (size_t)n, err);
            if (++rows_in_chunk == t->chunks[chunk].rows) {
                char hex[DC_HASH_HEX];
                dc_filter_finish(sha, err);
                dc_filter_sha256_hex(sha, hex);
                if (strcmp(hex, t->chunks[chunk].raw_sha256) != 0)
                    rc = dc_error_set(err,
                                      "%s.%s: the rows of %s read back from the restored "
                                      "database differ from the snapshot's (raw SHA-256 %s, "
                                      "expected %s)",
                                      t->schema, t->name, t->chunks[chunk].member, hex,
                                      t->chunks[chunk].raw_sha256);
                dc_filter_reset_chain(sha);
                rows_in_chunk = 0;
                chunk++;
                /* Chunks with no rows do not exist: skip none. */
            }
        }
        PQfreemem(row);
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = dc_pg_error(conn, res, what, err);
        PQclear(res);
    }
    dc_filter_free_chain(sha);
    if (rc == 0 && total != t->rows)
        rc = dc_error_set(err, "%s.%s: %llu rows read back, the snapshot has %llu", t->schema,
                          t->name, (unsigned long long)total, (unsigned long long)t->rows);
    return rc;
}

static int check_large_object(PGconn *conn, const dc_manifest_t *m,
                              const dc_manifest_large_object_t *lo, dc_error_t *err)
{
    char what[64];
    snprintf(what, sizeof(what), "reading large object %u back", (unsigned)lo->oid);
    int fd = lo_open(conn, lo->oid, INV_READ);
    if (fd < 0)
        return dc_pg_error(conn, NULL, what, err);
    char *buf = dc_malloc(PIECE);
    dc_filter_t *sha = dc_manifest_raw_digest_new(m, NULL);
    int rc = 0;
    for (size_t c = 0; c < lo->chunk_count && rc == 0; c++) {
        uint64_t left = lo->chunks[c].raw_bytes;
        while (left > 0 && rc == 0) {
            int n = lo_read(conn, fd, buf, left < PIECE ? (size_t)left : PIECE);
            if (n <= 0)
                rc = n < 0 ? dc_pg_error(conn, NULL, what, err)
                           : dc_error_set(err, "large object %u is shorter than the snapshot's",
                                          (unsigned)lo->oid);
            else {
                dc_filter_write(sha, buf, (size_t)n, err);
                left -= (uint64_t)n;
            }
        }
        if (rc == 0) {
            char hex[DC_HASH_HEX];
            dc_filter_finish(sha, err);
            dc_filter_sha256_hex(sha, hex);
            if (strcmp(hex, lo->chunks[c].raw_sha256) != 0)
                rc = dc_error_set(err, "large object %u differs from the snapshot's at %s",
                                  (unsigned)lo->oid, lo->chunks[c].member);
            dc_filter_reset_chain(sha);
        }
    }
    if (rc == 0 && lo_read(conn, fd, buf, 1) != 0)
        rc = dc_error_set(err, "large object %u is longer than the snapshot's", (unsigned)lo->oid);
    lo_close(conn, fd);
    dc_filter_free_chain(sha);
    free(buf);
    return rc;
}

static int read_back(const char *url, const dc_manifest_t *m, dc_verify_result_t *result,
                     dc_error_t *err)
{
    PGconn *conn;
    if (dc_pg_connect(url, "verify", &conn, err) != 0)
        return -1;
    int rc = set_copy_settings(conn, m, err);
    if (rc == 0)
        rc = dc_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err);
    for (size_t i = 0; rc == 0 && i < m->table_count; i++) {
        rc = check_table(conn, m, &m->tables[i], err);
        result->tables++;
    }
    for (size_t i = 0; rc == 0 && i < m->large_object_count; i++)
        rc = check_large_object(conn, m, &m->large_objects[i], err);
    PQfinish(conn);
    return rc;
}

/* deployctl_verify_<id>_<random>: recognisable, and never the name of a database that is
 * already there (which CREATE refuses anyway: the restore must make it, or it does not run). */
static void scratch_name(const dc_manifest_t *m, char *out, size_t out_size)
{
    uint8_t rnd[4] = {0};
    char hex[9];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) /* then the pid keeps names apart */
        memcpy(rnd, &(uint32_t){(uint32_t)getpid()}, sizeof(rnd));
    dc_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(out, out_size, "deployctl_verify_%s_%s", m->id, hex);
    for (char *c = out; *c; c++)
        *c = *c == '-' ? '_' : (char)tolower((unsigned char)*c);
}

static int verify_deep(const dc_verify_opts_t *opts, const dc_manifest_t *m, const char *dir,
                       dc_verify_result_t *result, dc_error_t *err)
{
    /* --verify-database names the server (its connection settings); the scratch database on
     * it is always a new one of ours, so nothing that exists is ever overwritten. */
    const char *server = opts->scratch_url != NULL ? opts->scratch_url : opts->server_url;
    if (server == NULL)
        return dc_error_set(err, "a deep verify needs a server: give --database (its server "
                                 "gets a scratch database) or --verify-database URL");
    char name[64];
    scratch_name(m, name, sizeof(name));
    char *scratch = dc_pg_url_with_database(server, name);
    if (scratch == NULL)
        return dc_error_set(err, "cannot use the server URL for the scratch database");
    dc_backup_opts_t no_backup = {0};
    dc_restore_opts_t ropts = {
        .store = opts->store,
        .target_url = scratch,
        .create_target = true,
        .require_new_target = true,
        .jobs = 1,
        .yes = true, /* the database is one the restore just created */
        .safety_snapshot = false,
        .terminate_connections = false,
        .lock_timeout_ms = 30000,
        .maintenance_work_mem = opts->maintenance_work_mem,
        .backup = &no_backup,
    };
    dc_restore_result_t restored;
    dc_log_info("deep verify: restoring snapshot %s into scratch database %s", m->id, name);
    int rc = dc_restore_manifest(&ropts, m, dir, &restored, err);
    if (rc == 0) {
        result->stored_bytes = m->archive_bytes;
        result->raw_bytes = restored.raw_bytes;
        result->rows = restored.rows;
        rc = read_back(scratch, m, result, err);
    }
    /* The scratch database is ours when the restore created it: it always goes. */
    dc_error_t drop;
    if (restored.created_target && dc_pg_drop_database(scratch, "verify", &drop) != 0)
        dc_log_warn("%s: the scratch database is left behind, drop it by hand", drop.message);
    free(scratch);
    return rc;
}

/* ---- the outcome ---- */

static void store_outcome(const dc_verify_opts_t *opts, const char *dir,
                          const dc_verify_result_t *result)
{
    char when[32], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    dc_format_rfc3339(now, when, sizeof(when));
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:f}", "snapshot", result->id,
                          "verified_at", when, "deep", result->deep, "ok", result->ok, "members",
                          (json_int_t)result->members, "tables", (json_int_t)result->tables, "rows",
                          (json_int_t)result->rows, "stored_bytes",
                          (json_int_t)result->stored_bytes, "duration_seconds", result->seconds);
    json_object_set_new(o, "error", result->ok ? json_null() : json_string(result->failure));
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    char *key = dc_sprintf("%s/%s/verify-%s.json", dir, result->id, stamp);
    dc_store_writer_t *w = NULL;
    dc_error_t err;
    if (text == NULL || dc_store_writer_open(opts->store, key, &w, &err) != 0 ||
        dc_store_writer_write(w, text, strlen(text), &err) != 0 ||
        dc_store_writer_commit(w, &err) != 0) {
        if (w != NULL)
            dc_store_writer_abort(w);
        dc_log_warn("could not store the verification result %s: %s", key,
                    text ? err.message : "not JSON");
    }
    free(key);
    free(text);
}

int dc_verify_run(const dc_verify_opts_t *opts, dc_verify_result_t *result, dc_error_t *err)
{
    dc_manifest_t *m = NULL;
    char dir[256];
    memset(result, 0, sizeof(*result));
    if (dc_catalog_load(opts->store, opts->database, opts->ref, &m, dir, err) != 0)
        return -1;
    /* Without the key nothing can be checked but what anybody could (the stored hashes): that
     * is not a verification, so it is refused rather than recorded. */
    if (dc_manifest_unlock(m, opts->key, err) != 0) {
        dc_manifest_free(m);
        return -1;
    }
    snprintf(result->id, sizeof(result->id), "%s", m->id);
    result->deep = opts->deep;
    double started = dc_now_seconds();
    dc_error_t failure;
    dc_error_clear(&failure);
    int rc = opts->deep ? verify_deep(opts, m, dir, result, &failure)
                        : verify_archive(opts, m, dir, result, &failure);
    result->seconds = dc_now_seconds() - started;
    result->ok = rc == 0;
    if (!result->ok)
        snprintf(result->failure, sizeof(result->failure), "%s", failure.message);
    else if (!opts->deep)
        result->tables = m->table_count;
    store_outcome(opts, dir, result);
    dc_manifest_free(m);
    return 0;
}
