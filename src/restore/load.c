/* Loading data members into the database: a table chunk streams through zstd into
 * COPY ... FROM STDIN, a piece of a large object into lo_write; on the way, the stored bytes are
 * checked by the reader and the COPY text by its SHA-256, size and row count, and any mismatch
 * aborts the COPY (so the transaction) before it can be committed. */
#include <libpq/libpq-fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"
#include "restore_intern.h"

#define READ_PIECE (256 * 1024)

int dc_restore_read_member(dc_snapshot_reader_t *reader, char **text, size_t *len, dc_error_t *err)
{
    dc_buf_t b = {0};
    char *piece = dc_malloc(READ_PIECE);
    int rc = 0;
    for (;;) {
        size_t got = 0;
        rc = dc_snapshot_reader_read(reader, piece, READ_PIECE, &got, err);
        if (rc != 0 || got == 0)
            break;
        dc_buf_append(&b, piece, got);
    }
    free(piece);
    if (rc != 0) {
        dc_buf_free(&b);
        return -1;
    }
    if (b.data == NULL)
        dc_buf_append(&b, "", 0);
    *text = b.data;
    *len = b.len;
    return 0;
}

/* Where the decompressed bytes go: COPY data or a large object, counting rows on the way. */
typedef struct sink_ctx {
    PGconn *conn;
    int lo_fd; /* >= 0: a large object */
    uint64_t rows;
    dc_progress_t *progress;
} sink_ctx_t;

static int deliver(void *ctx, const uint8_t *data, size_t len, dc_error_t *err)
{
    sink_ctx_t *s = ctx;
    if (s->lo_fd >= 0) {
        size_t done = 0;
        while (done < len) {
            int n = lo_write(s->conn, s->lo_fd, (const char *)data + done, len - done);
            if (n <= 0)
                return dc_pg_error(s->conn, NULL, "writing a large object", err);
            done += (size_t)n;
        }
    } else {
        s->rows += dc_count_newlines(data, len); /* COPY text: one line a row */
        if (PQputCopyData(s->conn, (const char *)data, (int)len) != 1)
            return dc_pg_error(s->conn, NULL, "sending COPY data", err);
    }
    if (s->progress != NULL)
        atomic_fetch_add(&s->progress->bytes, len);
    return 0;
}

static int read_from_reader(void *ctx, void *buf, size_t len, size_t *got, dc_error_t *err)
{
    return dc_snapshot_reader_read(ctx, buf, len, got, err);
}

dc_member_source_t dc_restore_reader_source(dc_snapshot_reader_t *reader)
{
    dc_member_source_t source = {read_from_reader, reader};
    return source;
}

/* Streams the member through zstd into the sink and checks the COPY text against the
 * manifest. */
static int stream_member(dc_member_source_t source, const dc_manifest_t *m,
                         const dc_member_t *member, sink_ctx_t *s, dc_error_t *err)
{
    dc_filter_t *count = dc_filter_count_new(dc_filter_callback_sink_new(deliver, s));
    dc_filter_t *raw_sha = dc_manifest_raw_digest_new(m, count);
    dc_filter_t *head = dc_filter_zstd_decompress_new(raw_sha, err);
    if (head == NULL) {
        dc_filter_free_chain(raw_sha);
        return -1;
    }
    char *piece = dc_malloc(READ_PIECE);
    int rc = 0;
    for (;;) {
        size_t got = 0;
        rc = source.read(source.ctx, piece, READ_PIECE, &got, err);
        if (rc != 0 || got == 0)
            break;
        rc = dc_filter_write(head, piece, got, err);
        if (rc != 0)
            break;
    }
    free(piece);
    if (rc == 0)
        rc = dc_filter_finish(head, err);
    if (rc != 0) {
        dc_error_prefix(err, "%s: ", member->name);
    } else {
        char sha[DC_HASH_HEX];
        dc_filter_sha256_hex(raw_sha, sha);
        const dc_manifest_chunk_t *k = member->chunk;
        if (dc_filter_count_bytes(count) != k->raw_bytes || strcmp(sha, k->raw_sha256) != 0)
            rc = dc_error_set(err,
                              "%s: its content does not match the manifest (%llu bytes with "
                              "SHA-256 %s, expected %llu bytes with %s)",
                              member->name, (unsigned long long)dc_filter_count_bytes(count), sha,
                              (unsigned long long)k->raw_bytes, k->raw_sha256);
        else if (s->lo_fd < 0 && s->rows != k->rows)
            rc = dc_error_set(err, "%s: %llu rows, the manifest says %llu", member->name,
                              (unsigned long long)s->rows, (unsigned long long)k->rows);
    }
    dc_filter_free_chain(head);
    return rc;
}

/* Ends the COPY that is open, checking that the server stored every row it was sent. A failed
 * check ends it with an error instead: the server discards it (and the transaction). */
static int end_copy(dc_restore_load_t *load, bool ok, dc_error_t *err)
{
    if (!load->copy_open)
        return ok ? 0 : -1;
    load->copy_open = false;
    const dc_manifest_table_t *t = &load->manifest->tables[load->copy_table];
    char what[600];
    snprintf(what, sizeof(what), "loading %s.%s", t->schema, t->name);
    int rc = ok ? 0 : -1;
    PQputCopyEnd(load->conn, ok ? NULL : "deployctl: a chunk failed its checks");
    PGresult *res;
    while ((res = PQgetResult(load->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = dc_pg_error(load->conn, res, what, err);
        else if (rc == 0 && strtoull(PQcmdTuples(res), NULL, 10) != load->copy_rows)
            rc = dc_error_set(err, "%s: the server stored %s rows, the snapshot holds %llu", what,
                              PQcmdTuples(res), (unsigned long long)load->copy_rows);
        PQclear(res);
    }
    return rc;
}

int dc_restore_load_finish(dc_restore_load_t *load, dc_error_t *err)
{
    return end_copy(load, true, err);
}

static int begin_copy(dc_restore_load_t *load, size_t table, dc_error_t *err)
{
    const dc_manifest_table_t *t = &load->manifest->tables[table];
    char *schema = dc_pg_quote_ident(load->conn, t->schema);
    char *name = dc_pg_quote_ident(load->conn, t->name);
    char *cols = dc_pg_column_list(load->conn, t->columns, t->column_count);
    char *sql =
        dc_sprintf("COPY %s.%s%s%s%s FROM STDIN%s", schema, name, t->column_count ? " (" : "", cols,
                   t->column_count ? ")" : "", load->freeze ? " WITH (FREEZE)" : "");
    PGresult *res = PQexec(load->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        char what[600];
        snprintf(what, sizeof(what), "loading %s.%s", t->schema, t->name);
        rc = dc_pg_error(load->conn, res, what, err);
    } else {
        load->copy_open = true;
        load->copy_table = table;
        load->copy_rows = 0;
    }
    PQclear(res);
    free(sql);
    free(cols);
    free(schema);
    free(name);
    return rc;
}

/* Consecutive chunks of one table go through one COPY statement: a COPY per chunk costs the
 * server a sixth more time. Each chunk is still checked on its own. */
static int load_table_chunk(dc_restore_load_t *load, dc_member_source_t source,
                            const dc_member_t *member, dc_error_t *err)
{
    if (load->copy_open && load->copy_table != member->index && end_copy(load, true, err) != 0)
        return -1;
    if (!load->copy_open && begin_copy(load, member->index, err) != 0)
        return -1;
    sink_ctx_t s = {load->conn, -1, 0, load->progress};
    if (stream_member(source, load->manifest, member, &s, err) != 0) {
        dc_error_t ignored;
        end_copy(load, false, &ignored);
        return -1;
    }
    load->copy_rows += member->chunk->rows;
    load->rows += member->chunk->rows;
    load->raw_bytes += member->chunk->raw_bytes;
    if (load->progress != NULL)
        atomic_fetch_add(&load->progress->rows, member->chunk->rows);
    dc_fault_point("restore-chunk-loaded");
    return 0;
}

static int load_blob_chunk(dc_restore_load_t *load, dc_member_source_t source,
                           const dc_member_t *member, dc_error_t *err)
{
    if (end_copy(load, true, err) != 0)
        return -1;
    const dc_manifest_large_object_t *lo = &load->manifest->large_objects[member->index];
    uint64_t offset = 0;
    for (size_t c = 0; c < member->chunk_index; c++)
        offset += lo->chunks[c].raw_bytes;
    char what[64];
    snprintf(what, sizeof(what), "large object %u", (unsigned)lo->oid);
    /* Large object descriptors live in a transaction. */
    if (load->autocommit && dc_pg_exec(load->conn, "BEGIN", err) != 0)
        return -1;
    /* pre-data.sql created it empty (lo_create); its bytes go in where this piece belongs, so
     * pieces may arrive in any order. */
    int fd = lo_open(load->conn, lo->oid, INV_WRITE);
    int rc = 0;
    if (fd < 0)
        rc = dc_pg_error(load->conn, NULL, what, err);
    else if (lo_lseek64(load->conn, fd, (pg_int64)offset, SEEK_SET) < 0)
        rc = dc_pg_error(load->conn, NULL, what, err);
    if (rc == 0) {
        sink_ctx_t s = {load->conn, fd, 0, load->progress};
        rc = stream_member(source, load->manifest, member, &s, err);
    }
    if (fd >= 0 && lo_close(load->conn, fd) != 0 && rc == 0)
        rc = dc_pg_error(load->conn, NULL, what, err);
    if (load->autocommit && rc == 0)
        rc = dc_pg_commit(load->conn, err);
    else if (load->autocommit)
        PQclear(PQexec(load->conn, "ROLLBACK"));
    if (rc == 0)
        load->raw_bytes += member->chunk->raw_bytes;
    return rc;
}

int dc_restore_load_member(dc_restore_load_t *load, dc_member_source_t source,
                           const dc_member_t *member, dc_error_t *err)
{
    if (member->kind == DC_MEMBER_TABLE_CHUNK)
        return load_table_chunk(load, source, member, err);
    if (member->kind == DC_MEMBER_BLOB_CHUNK)
        return load_blob_chunk(load, source, member, err);
    return dc_error_set(err, "%s is not a data member", member->name);
}
