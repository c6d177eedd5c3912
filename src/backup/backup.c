/* The backup coordinator: opens one REPEATABLE READ transaction and exports its snapshot, reads
 * the catalog and locks the tables under it, runs pg_dump for the schema and N COPY workers for
 * the data inside that same snapshot, and writes the archive in the order of the format:
 * pre-data, data chunks, post-data (with sequence values), then the manifest. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_intern.h"
#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/migrate.h"
#include "deployctl/release_schema.h"
#include "deployctl/signals.h"
#include "deployctl/snapshot.h"

#define QUEUE_POLL_MS    250
#define MAX_STORED_CHUNK (4u * 1024 * 1024)
#define CHUNK_SLACK      (512u * 1024)
#define MIN_SPLIT_BYTES  (8u * 1024 * 1024)

/* Schemas that are never part of a snapshot: deployctl's own release journal. */
static const char *const excluded_schemas[] = {DC_RELEASE_SCHEMA, NULL};

typedef struct backup {
    const dc_backup_opts_t *opts;
    PGconn *conn;
    int server_major;
    char snapshot[64];
    char lsn[64];
    char database[256];
    char server_version[64];
    char encoding[64];
    char server_encoding[64];
    char lc_collate[128];
    char lc_ctype[128];
    char restrict_key[33];
    time_t created;
    char id[DC_SNAPSHOT_ID_LEN + 1];
    dc_pg_dump_t dump;
    dc_pg_dump_run_t schema_runs[2]; /* pre-data, post-data */
    int schema_fds[2];
    bool schema_started[2];
    dc_pg_table_list_t tables;
    uint32_t *large_objects;
    size_t large_object_count;
    char *setvals;
    size_t sequence_count;
    dc_manifest_t *manifest;
    dc_snapshot_writer_t *writer;
    dc_chunk_queue_t queue;
    bool queue_ready;
    dc_progress_t progress;
    dc_backup_shared_t shared;
    dc_backup_worker_t *workers;
    int worker_count;
} backup_t;

/* ---- the snapshot ---- */

#define SNAPSHOT_ATTEMPTS 3

static int by_schema_and_name(const void *a, const void *b)
{
    const dc_pg_table_t *x = a, *y = b;
    int c = strcmp(x->schema, y->schema);
    return c ? c : strcmp(x->name, y->name);
}

/* Connects and reads what does not need the snapshot: version and encoding. */
static int connect_coordinator(backup_t *b, dc_error_t *err)
{
    if (dc_pg_connect(b->opts->database_url, "backup", &b->conn, err) != 0)
        return -1;
    b->server_major = dc_pg_server_major(b->conn);
    PGresult *res = dc_pg_query(
        b->conn,
        "SELECT pg_catalog.current_database(),"
        " pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1),"
        " pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype"
        " FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()",
        err);
    if (res == NULL)
        return -1;
    snprintf(b->database, sizeof(b->database), "%s", PQgetvalue(res, 0, 0));
    snprintf(b->server_version, sizeof(b->server_version), "%s", PQgetvalue(res, 0, 1));
    /* COPY text and names travel as UTF-8 (the manifest is JSON), converted by the server;
     * SQL_ASCII databases have no defined encoding, so their bytes pass through untouched. */
    bool sql_ascii = strcmp(PQgetvalue(res, 0, 2), "SQL_ASCII") == 0;
    snprintf(b->encoding, sizeof(b->encoding), "%s", sql_ascii ? "SQL_ASCII" : "UTF8");
    snprintf(b->server_encoding, sizeof(b->server_encoding), "%s", PQgetvalue(res, 0, 2));
    snprintf(b->lc_collate, sizeof(b->lc_collate), "%s", PQgetvalue(res, 0, 3));
    snprintf(b->lc_ctype, sizeof(b->lc_ctype), "%s", PQgetvalue(res, 0, 4));
    PQclear(res);
    /* An empty search_path, as pg_dump uses: reg* values are written schema-qualified. */
    char *setup = dc_sprintf("SET statement_timeout = 0; SET idle_in_transaction_session_timeout"
                             " = 0; SET client_encoding = '%s';"
                             " SELECT pg_catalog.set_config('search_path', '', false)",
                             b->encoding);
    int rc = dc_pg_exec(b->conn, setup, err);
    free(setup);
    return rc;
}

/* One attempt at a consistent start. TRUNCATE and table rewrites are not MVCC-safe: a snapshot
 * taken before they commit sees the new, empty files. So the tables are locked first, then the
 * snapshot is taken (LOCK takes none), then anything created in between is locked too and
 * every table's file is checked to be the one the snapshot sees. DC_PG_RETRY: try again. */
static int try_snapshot(backup_t *b, dc_error_t *err)
{
    dc_pg_table_list_t before;
    int rc;
    if (dc_pg_list_tables(b->conn, excluded_schemas, &before, err) != 0)
        return dc_error_prefix(err, "cannot list the tables: ");
    dc_fault_point("before-lock");
    rc = dc_pg_exec(b->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err);
    if (rc == 0)
        rc = dc_pg_lock_tables(b->conn, &before, NULL, "ACCESS SHARE", b->opts->lock_timeout_ms,
                               err);
    if (rc == 0) {
        PGresult *res = dc_pg_query(
            b->conn,
            "SELECT pg_catalog.pg_export_snapshot(),"
            " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()"
            " ELSE pg_catalog.pg_current_wal_lsn() END::text",
            err);
        if (res == NULL) {
            rc = dc_error_prefix(err, "cannot export a snapshot: ");
        } else {
            snprintf(b->snapshot, sizeof(b->snapshot), "%s", PQgetvalue(res, 0, 0));
            snprintf(b->lsn, sizeof(b->lsn), "%s", PQgetvalue(res, 0, 1));
            PQclear(res);
        }
    }
    if (rc == 0)
        dc_fault_point("after-export");
    if (rc == 0 && dc_pg_list_tables(b->conn, excluded_schemas, &b->tables, err) != 0)
        rc = dc_error_prefix(err, "cannot list the tables: ");
    if (rc == 0)
        rc = dc_pg_lock_tables(b->conn, &b->tables, &before, "ACCESS SHARE",
                               b->opts->lock_timeout_ms, err);
    if (rc == 0)
        rc = dc_pg_check_unchanged(b->conn, &b->tables, err);
    dc_pg_table_list_free(&before);
    if (rc != 0) {
        PQclear(PQexec(b->conn, "ROLLBACK"));
        if (rc != DC_PG_RETRY)
            dc_pg_table_list_free(&b->tables);
    }
    return rc;
}

/* Joins a snapshot the caller exported (and keeps open): nothing can change under it, the
 * caller's locks see to that. */
static int join_snapshot(backup_t *b, dc_error_t *err)
{
    char *sql = dc_sprintf("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
                           " SET TRANSACTION SNAPSHOT '%s'",
                           b->opts->external_snapshot);
    int rc = dc_pg_exec(b->conn, sql, err);
    free(sql);
    if (rc != 0)
        return dc_error_prefix(err, "cannot join the snapshot to back up: ");
    snprintf(b->snapshot, sizeof(b->snapshot), "%s", b->opts->external_snapshot);
    PGresult *res = dc_pg_query(
        b->conn,
        "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()"
        " ELSE pg_catalog.pg_current_wal_lsn() END::text",
        err);
    if (res == NULL)
        return -1;
    snprintf(b->lsn, sizeof(b->lsn), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (dc_pg_list_tables(b->conn, excluded_schemas, &b->tables, err) != 0)
        return dc_error_prefix(err, "cannot list the tables: ");
    return dc_pg_lock_tables(b->conn, &b->tables, NULL, "ACCESS SHARE", b->opts->lock_timeout_ms,
                             err);
}

static int open_snapshot(backup_t *b, dc_error_t *err)
{
    if (connect_coordinator(b, err) != 0)
        return -1;
    if (b->opts->external_snapshot != NULL) {
        int rc = join_snapshot(b, err);
        if (rc == 0 && b->tables.count > 1)
            qsort(b->tables.items, b->tables.count, sizeof(dc_pg_table_t), by_schema_and_name);
        return rc;
    }
    int rc = DC_PG_RETRY;
    for (int attempt = 1; rc == DC_PG_RETRY && attempt <= SNAPSHOT_ATTEMPTS; attempt++) {
        rc = try_snapshot(b, err);
        if (rc == DC_PG_RETRY) {
            dc_log_info("%s; starting again (attempt %d of %d)", err->message, attempt + 1,
                        SNAPSHOT_ATTEMPTS);
            dc_pg_table_list_free(&b->tables);
        }
    }
    if (rc == DC_PG_RETRY)
        return dc_error_prefix(
            err, "tables kept changing as the backup started (%d attempts): ", SNAPSHOT_ATTEMPTS);
    if (rc == 0 && b->tables.count > 1)
        qsort(b->tables.items, b->tables.count, sizeof(dc_pg_table_t), by_schema_and_name);
    return rc;
}

static int by_migration_name(const void *a, const void *b)
{
    const dc_history_row_t *x = *(const dc_history_row_t *const *)a;
    const dc_history_row_t *y = *(const dc_history_row_t *const *)b;
    return strcmp(x->migration_name, y->migration_name);
}

/* The manifest's migrations: the history rows (the migrate module reads them) that are applied,
 * finished and not rolled back, by name. None when there is no history table. */
static int add_applied_migrations(backup_t *b, dc_error_t *err)
{
    dc_history_t h;
    if (dc_history_read(b->conn, b->opts->prisma_schema, &h, err) != 0)
        return -1;
    const dc_history_row_t **applied = dc_calloc(h.count + 1, sizeof(*applied));
    size_t count = 0;
    for (size_t i = 0; i < h.count; i++) {
        if (h.rows[i].finished_at != NULL && h.rows[i].rolled_back_at == NULL)
            applied[count++] = &h.rows[i];
    }
    if (count > 1)
        qsort(applied, count, sizeof(*applied), by_migration_name);
    for (size_t i = 0; i < count; i++)
        dc_manifest_add_migration(b->manifest, applied[i]->migration_name, applied[i]->checksum);
    free(applied);
    dc_history_free(&h);
    return 0;
}

/* What else the snapshot sees: sequence values, large objects, Prisma's history. */
static int read_catalog(backup_t *b, dc_error_t *err)
{
    if (dc_pg_sequence_setvals(b->conn, excluded_schemas, &b->setvals, &b->sequence_count, err) !=
        0)
        return dc_error_prefix(err, "cannot read the sequences: ");
    if (dc_pg_list_large_objects(b->conn, &b->large_objects, &b->large_object_count, err) != 0)
        return dc_error_prefix(err, "cannot list the large objects: ");
    char **schemas = NULL;
    size_t schema_count = 0;
    if (dc_pg_list_schemas(b->conn, excluded_schemas, &schemas, &schema_count, err) != 0)
        return dc_error_prefix(err, "cannot list the schemas: ");
    for (size_t i = 0; i < schema_count; i++) {
        dc_manifest_add_schema_name(b->manifest, schemas[i]);
        free(schemas[i]);
    }
    free(schemas);

    return add_applied_migrations(b, err);
}

/* ---- schema through pg_dump ---- */

static int open_spool(dc_error_t *err)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char *path = dc_sprintf("%s/deployctl-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
        free(path);
    }
    if (fd < 0)
        return dc_error_set(err, "cannot create a temporary file in %s: %s (set TMPDIR)", dir,
                            strerror(errno));
    return fd;
}

static void make_restrict_key(char out[33])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t rnd[32];
    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 32; i++)
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[32] = '\0';
}

static int start_schema_dumps(backup_t *b, dc_error_t *err)
{
    static const char *const sections[2] = {"pre-data", "post-data"};
    if (dc_pg_dump_find(b->opts->pg_dump_path, b->server_major, &b->dump, err) != 0)
        return -1;
    if (b->dump.has_restrict_key)
        make_restrict_key(b->restrict_key);
    for (int i = 0; i < 2; i++) {
        b->schema_fds[i] = open_spool(err);
        if (b->schema_fds[i] < 0)
            return -1;
        dc_pg_dump_args_t args = {
            .url = b->opts->database_url,
            .section = sections[i],
            .snapshot = b->snapshot,
            .restrict_key = b->dump.has_restrict_key ? b->restrict_key : NULL,
            .excluded_schemas = excluded_schemas,
            .lock_timeout_ms = b->opts->lock_timeout_ms,
            .out_fd = b->schema_fds[i],
        };
        if (dc_pg_dump_start(&b->dump, &args, &b->schema_runs[i], err) != 0)
            return -1;
        b->schema_started[i] = true;
    }
    return 0;
}

/* Inserts the sequence values into the post-data script, before pg_dump's closing
 * \unrestrict line when there is one (so the script stays a valid psql script). */
static int splice_setvals(backup_t *b, int fd, dc_error_t *err)
{
    struct stat st;
    char tail[512];
    size_t tail_len = 0;
    if (fstat(fd, &st) != 0)
        return dc_error_set(err, "cannot read the post-data spool: %s", strerror(errno));
    off_t cut = st.st_size;
    if (b->restrict_key[0] != '\0' && st.st_size > 0) {
        size_t want = st.st_size < (off_t)sizeof(tail) - 1 ? (size_t)st.st_size : sizeof(tail) - 1;
        ssize_t got = pread(fd, tail, want, st.st_size - (off_t)want);
        if (got == (ssize_t)want) {
            tail[got] = '\0';
            char marker[64];
            snprintf(marker, sizeof(marker), "\\unrestrict %s", b->restrict_key);
            char *hit = strstr(tail, marker);
            if (hit != NULL && (hit == tail || hit[-1] == '\n')) {
                tail_len = (size_t)got - (size_t)(hit - tail);
                memmove(tail, hit, tail_len);
                cut = st.st_size - (off_t)tail_len;
            }
        }
    }
    char *block = dc_sprintf("\n--\n-- Sequence values, read under the backup's snapshot "
                             "(deployctl)\n--\n\n%s\n",
                             b->setvals ? b->setvals : "");
    size_t len = strlen(block);
    int rc = 0;
    if (pwrite(fd, block, len, cut) != (ssize_t)len ||
        (tail_len > 0 && pwrite(fd, tail, tail_len, cut + (off_t)len) != (ssize_t)tail_len))
        rc = dc_error_set(err, "cannot write the post-data spool: %s", strerror(errno));
    free(block);
    return rc;
}

static int write_schema_member(backup_t *b, int section, dc_error_t *err)
{
    const char *member = section == 0 ? DC_MEMBER_PRE_DATA : DC_MEMBER_POST_DATA;
    int fd = b->schema_fds[section];
    b->schema_started[section] = false;
    if (dc_pg_dump_wait(&b->schema_runs[section], err) != 0) {
        /* pg_dump gave up waiting for a table lock (--lock-wait-timeout): say who holds it. */
        if (strstr(err->message, "LOCK TABLE") != NULL && strstr(err->message, "timeout") != NULL) {
            char *who = dc_pg_describe_lock_holders(b->conn);
            dc_error_set(err,
                         "pg_dump could not lock the tables within --lock-timeout (%llu ms): %s; "
                         "run the backup when it is done, or raise --lock-timeout",
                         (unsigned long long)b->opts->lock_timeout_ms,
                         *who ? who : "another session wants an exclusive lock");
            free(who);
        }
        return -1;
    }
    if (section == 1 && splice_setvals(b, fd, err) != 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dc_error_set(err, "cannot read the %s spool: %s", member, strerror(errno));
    dc_manifest_schema_t *entry = &b->manifest->schema[b->manifest->schema_count];
    snprintf(entry->section, sizeof(entry->section), "%s", section == 0 ? "pre-data" : "post-data");
    snprintf(entry->member, sizeof(entry->member), "%s", member);
    dc_stored_t stored;
    if (dc_snapshot_writer_add_fd(b->writer, member, fd, (uint64_t)st.st_size, &stored, err) != 0)
        return -1;
    entry->bytes = stored.bytes;
    memcpy(entry->sha256, stored.sha256, sizeof(entry->sha256));
    b->manifest->schema_count++;
    return 0;
}

/* ---- data ---- */

static int by_weight_desc(const void *a, const void *b)
{
    const dc_backup_task_t *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->first_block < y->first_block ? -1 : (x->first_block > y->first_block);
}

/* The range size: the configured one, or smaller when the database is small for the number of
 * workers, so that one big table does not leave the other workers idle at the end. */
static uint64_t effective_split_bytes(const backup_t *b)
{
    uint64_t total = 0;
    int jobs = b->opts->jobs > 0 ? b->opts->jobs : 1;
    for (size_t i = 0; i < b->tables.count; i++)
        total += b->tables.items[i].heap_bytes;
    uint64_t balanced = total / ((uint64_t)jobs * 4);
    if (balanced < MIN_SPLIT_BYTES)
        balanced = MIN_SPLIT_BYTES;
    return balanced < b->opts->split_bytes ? balanced : b->opts->split_bytes;
}

/* Big tables become several block ranges (TID range scans, PostgreSQL 14+) so that workers
 * share them; the last range is open-ended, so rows in blocks added since are still read. */
static void plan_tasks(backup_t *b)
{
    dc_backup_shared_t *s = &b->shared;
    uint64_t split_bytes = effective_split_bytes(b);
    size_t cap = b->tables.count + 16;
    s->tasks = dc_calloc(cap, sizeof(dc_backup_task_t));
    s->tasks_left = dc_calloc(b->tables.count ? b->tables.count : 1, sizeof(*s->tasks_left));
    for (size_t i = 0; i < b->tables.count; i++) {
        const dc_pg_table_t *t = &b->tables.items[i];
        uint64_t block_size = t->blocks ? t->heap_bytes / t->blocks : 8192;
        uint64_t split_blocks = split_bytes / (block_size ? block_size : 8192);
        if (split_blocks == 0)
            split_blocks = 1;
        bool split = b->server_major >= 14 && t->blocks > split_blocks && t->filter == NULL;
        uint64_t first = 0;
        do {
            if (s->task_count == cap) {
                cap *= 2;
                s->tasks = dc_realloc(s->tasks, cap * sizeof(dc_backup_task_t));
            }
            dc_backup_task_t *task = &s->tasks[s->task_count++];
            memset(task, 0, sizeof(*task));
            task->kind = DC_UNIT_TABLE;
            task->index = i;
            task->ranged = split;
            task->first_block = first;
            if (split) {
                task->end_block = first + split_blocks >= t->blocks ? 0 : first + split_blocks;
                task->weight = (task->end_block ? task->end_block : t->blocks) - first;
                task->weight *= block_size;
            } else {
                task->weight = t->heap_bytes;
            }
            atomic_fetch_add(&s->tasks_left[i], 1);
            first += split_blocks;
        } while (split && first < t->blocks);
    }
    /* Large objects: one task each, after the tables (their sizes are not known up front). */
    for (size_t i = 0; i < b->large_object_count; i++) {
        if (s->task_count == cap) {
            cap *= 2;
            s->tasks = dc_realloc(s->tasks, cap * sizeof(dc_backup_task_t));
        }
        dc_backup_task_t *task = &s->tasks[s->task_count++];
        memset(task, 0, sizeof(*task));
        task->kind = DC_UNIT_LARGE_OBJECT;
        task->index = i;
    }
    if (s->task_count > 1)
        qsort(s->tasks, s->task_count, sizeof(dc_backup_task_t), by_weight_desc);
}

static void estimate_totals(const backup_t *b, double *rows, double *bytes)
{
    *rows = 0;
    *bytes = 0;
    for (size_t i = 0; i < b->tables.count; i++) {
        const dc_pg_table_t *t = &b->tables.items[i];
        if (t->estimated_rows < 0 && t->blocks > 0)
            *rows = -1; /* a table never analysed: rows are unknown, fall back to bytes */
        else if (*rows >= 0 && t->estimated_rows > 0)
            *rows += t->estimated_rows;
        *bytes += (double)t->heap_bytes;
    }
    if (*rows == 0)
        *rows = -1;
}

static int start_workers(backup_t *b, dc_error_t *err)
{
    dc_backup_shared_t *s = &b->shared;
    int jobs = b->opts->jobs > 0 ? b->opts->jobs : 1;
    if ((size_t)jobs > s->task_count)
        jobs = s->task_count > 0 ? (int)s->task_count : 0;
    s->opts = b->opts;
    s->snapshot = b->snapshot;
    s->encoding = b->encoding;
    s->tables = &b->tables;
    s->large_objects = b->large_objects;
    s->queue = &b->queue;
    s->progress = &b->progress;
    s->stored_limit =
        b->opts->chunk_bytes < MAX_STORED_CHUNK ? b->opts->chunk_bytes : MAX_STORED_CHUNK;
    pthread_mutex_init(&s->error_mu, NULL);
    dc_chunk_queue_init(&b->queue, (size_t)jobs + 2, s->stored_limit + CHUNK_SLACK, jobs);
    b->queue_ready = true;

    b->workers = dc_calloc((size_t)(jobs ? jobs : 1), sizeof(dc_backup_worker_t));
    for (int i = 0; i < jobs; i++) {
        b->workers[i].shared = s;
        b->workers[i].number = i + 1;
        b->worker_count++;
        if (dc_backup_worker_connect(&b->workers[i], err) != 0)
            return -1;
    }
    for (int i = 0; i < jobs; i++) {
        if (pthread_create(&b->workers[i].thread, NULL, dc_backup_worker_main, &b->workers[i]) != 0)
            return dc_error_set(err, "cannot start backup worker %d", i + 1);
        b->workers[i].started = true;
    }
    return 0;
}

/* Chunks of one table range or large object arrive in order (one worker produced them), so a
 * large object's chunks are listed in the order of its bytes. */
static int write_chunk(backup_t *b, dc_chunk_t *c, dc_error_t *err)
{
    dc_manifest_table_t *t = NULL;
    dc_manifest_large_object_t *lo = NULL;
    dc_manifest_chunk_t entry;
    memset(&entry, 0, sizeof(entry));
    if (c->kind == (int)DC_UNIT_TABLE) {
        t = &b->manifest->tables[c->index];
        dc_snapshot_chunk_member((unsigned)c->index + 1, (unsigned)t->chunk_count + 1,
                                 entry.member);
    } else {
        lo = &b->manifest->large_objects[c->index];
        dc_snapshot_blob_member(lo->oid, (unsigned)lo->chunk_count + 1, entry.member);
    }
    entry.rows = c->rows;
    entry.raw_bytes = c->raw_bytes;
    memcpy(entry.raw_sha256, c->raw_sha256, sizeof(entry.raw_sha256));
    dc_stored_t stored;
    if (dc_snapshot_writer_add(b->writer, entry.member, c->data.data, c->data.len, &stored, err) !=
        0)
        return -1;
    entry.stored_bytes = stored.bytes;
    memcpy(entry.sha256, stored.sha256, sizeof(entry.sha256));
    if (t != NULL)
        dc_manifest_table_add_chunk(t, &entry);
    else
        dc_manifest_large_object_add_chunk(lo, &entry);
    return 0;
}

static int check_interrupted(dc_error_t *err)
{
    if (dc_signal_check(err) != 0)
        return dc_error_append(err, "; the backup was abandoned and nothing was stored");
    return 0;
}

/* The writer's loop: chunks go into the archive in the order they finish. */
static int drain_chunks(backup_t *b, dc_error_t *err)
{
    for (;;) {
        dc_chunk_t *c = NULL;
        dc_queue_status_t st = dc_chunk_queue_next(&b->queue, QUEUE_POLL_MS, &c);
        if (st == DC_QUEUE_CHUNK) {
            int rc = write_chunk(b, c, err);
            dc_chunk_queue_release(&b->queue, c);
            if (rc != 0)
                return -1;
        } else if (st == DC_QUEUE_DONE) {
            return 0;
        } else if (st == DC_QUEUE_ABORTED) {
            *err = b->shared.error;
            return -1;
        }
        if (check_interrupted(err) != 0)
            return -1;
        dc_progress_report(&b->progress);
    }
}

static void stop_workers(backup_t *b)
{
    if (b->queue_ready)
        dc_chunk_queue_abort(&b->queue);
    for (int i = 0; i < b->worker_count; i++) {
        char ignored[256];
        if (b->workers[i].started && b->workers[i].cancel)
            PQcancel(b->workers[i].cancel, ignored, sizeof(ignored));
    }
}

static void join_workers(backup_t *b)
{
    for (int i = 0; i < b->worker_count; i++) {
        if (b->workers[i].started)
            pthread_join(b->workers[i].thread, NULL);
        b->workers[i].started = false;
        dc_backup_worker_close(&b->workers[i]);
    }
}

static void backup_cleanup(backup_t *b)
{
    join_workers(b);
    free(b->workers);
    for (int i = 0; i < 2; i++) {
        if (b->schema_started[i])
            dc_pg_dump_cancel(&b->schema_runs[i]);
        if (b->schema_fds[i] >= 0)
            close(b->schema_fds[i]);
    }
    if (b->queue_ready) {
        dc_chunk_queue_destroy(&b->queue);
        pthread_mutex_destroy(&b->shared.error_mu);
    }
    dc_snapshot_writer_abort(b->writer);
    free(b->shared.tasks);
    free(b->shared.tasks_left);
    dc_pg_table_list_free(&b->tables);
    free(b->large_objects);
    dc_pg_dump_free(&b->dump);
    free(b->setvals);
    if (b->conn)
        PQfinish(b->conn);
    dc_manifest_free(b->manifest);
}

static void fill_manifest(backup_t *b)
{
    dc_manifest_t *m = b->manifest;
    m->tool_version = dc_strdup(DEPLOYCTL_VERSION);
    memcpy(m->id, b->id, sizeof(m->id));
    m->tag = dc_strdup(b->opts->tag ? b->opts->tag : "manual");
    dc_format_rfc3339(b->created, m->created_at, sizeof(m->created_at));
    m->database = dc_strdup(b->database);
    m->server_version = dc_strdup(b->server_version);
    m->encoding = dc_strdup(b->encoding);
    m->server_encoding = dc_strdup(b->server_encoding);
    m->lc_collate = dc_strdup(b->lc_collate);
    m->lc_ctype = dc_strdup(b->lc_ctype);
    m->snapshot = dc_strdup(b->snapshot);
    m->lsn = dc_strdup(b->lsn);
    m->restrict_key = b->restrict_key[0] ? dc_strdup(b->restrict_key) : NULL;
    m->compression_level = b->opts->compression_level;
    dc_manifest_set_key(m, b->opts->key);
    for (size_t i = 0; i < b->tables.count; i++) {
        const dc_pg_table_t *t = &b->tables.items[i];
        dc_manifest_table_t *mt = dc_manifest_add_table(m, t->schema, t->name);
        mt->filter = t->filter ? dc_strdup(t->filter) : NULL;
        for (size_t c = 0; c < t->column_count; c++)
            dc_manifest_table_add_column(mt, t->columns[c]);
    }
    for (size_t i = 0; i < b->large_object_count; i++)
        dc_manifest_add_large_object(m, b->large_objects[i]);
}

static void clean_store(dc_store_t *store)
{
    int temporary = 0, snapshots = 0;
    dc_error_t err;
    if (dc_catalog_clean_abandoned(store, &temporary, &snapshots, &err) != 0)
        dc_log_warn("could not clean the store: %s", err.message);
    else if (temporary > 0 || snapshots > 0)
        dc_log_info("removed what interrupted backups left: %d temporary files, %d incomplete "
                    "snapshots",
                    temporary, snapshots);
}

static int run(backup_t *b, dc_error_t *err)
{
    double started = dc_now_seconds();
    char store_shown[512];
    dc_redact(dc_store_url(b->opts->store), store_shown, sizeof(store_shown));

    if (dc_store_check_writable(b->opts->store, err) != 0)
        return -1;
    clean_store(b->opts->store);
    if (open_snapshot(b, err) != 0 || read_catalog(b, err) != 0)
        return -1;
    b->created = time(NULL);
    /* The tables' size bounds the archive's in practice (COPY text compresses below the heap
     * it came from), so an object store can size its upload parts to fit. */
    double est_rows, est_bytes;
    estimate_totals(b, &est_rows, &est_bytes);
    dc_store_expect_size(b->opts->store, (uint64_t)est_bytes);
    if (dc_snapshot_writer_open(b->opts->store, b->database, b->created, b->opts->key, b->id,
                                &b->writer, err) != 0)
        return -1;
    if (start_schema_dumps(b, err) != 0)
        return -1;
    fill_manifest(b);
    plan_tasks(b);

    char est[32];
    dc_format_bytes((uint64_t)est_bytes, est, sizeof(est));
    dc_log_info("backup %s of database %s (PostgreSQL %s) to %s: %zu tables, %zu sequences, "
                "%zu large objects, about %s on disk, %d jobs%s%s",
                b->id, b->database, b->server_version, store_shown, b->tables.count,
                b->sequence_count, b->large_object_count, est, b->opts->jobs,
                b->opts->key ? ", encrypted with key id " : "",
                b->opts->key ? b->opts->key->id : "");
    dc_progress_init(&b->progress, "backup", est_rows, est_bytes, (uint32_t)b->tables.count);

    if (start_workers(b, err) != 0 || write_schema_member(b, 0, err) != 0 ||
        drain_chunks(b, err) != 0)
        return -1;
    join_workers(b);
    if (b->shared.failed) {
        *err = b->shared.error;
        return -1;
    }
    if (write_schema_member(b, 1, err) != 0 || check_interrupted(err) != 0)
        return -1;
    /* Everything was read under the snapshot: its transaction can end. */
    if (dc_pg_exec(b->conn, "COMMIT", err) != 0)
        return dc_error_prefix(err, "the backup's snapshot transaction failed: ");
    dc_progress_finish(&b->progress);
    b->manifest->duration_seconds = dc_now_seconds() - started;
    dc_snapshot_writer_t *writer = b->writer;
    b->writer = NULL;
    return dc_snapshot_writer_commit(writer, b->manifest, err);
}

int dc_backup_run(const dc_backup_opts_t *opts, dc_backup_result_t *result, dc_error_t *err)
{
    backup_t b;
    memset(&b, 0, sizeof(b));
    b.opts = opts;
    b.schema_fds[0] = b.schema_fds[1] = -1;
    b.manifest = dc_manifest_new();
    memset(result, 0, sizeof(*result));

    int rc = run(&b, err);
    if (rc != 0) {
        check_interrupted(err); /* whatever failed, a signal is the reason to report */
        stop_workers(&b);
        dc_progress_finish(&b.progress);
    } else {
        result->manifest = b.manifest;
        result->stored_bytes = result->manifest->archive_bytes;
        result->seconds = result->manifest->duration_seconds;
        b.manifest = NULL;
    }
    backup_cleanup(&b);
    return rc;
}
