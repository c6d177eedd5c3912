/* The restore: resolves the snapshot, prepares the target (creating it, or confirming, ending
 * sessions in the way, blocking writes and taking the pre-restore snapshot), then replaces the
 * snapshot's schemas, runs pre-data, loads every chunk and runs post-data in ONE transaction,
 * and commits only when every hash and row count matched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "restore_intern.h"

typedef struct restore {
    const dc_restore_opts_t *opts;
    const dc_manifest_t *manifest;
    const char *database_dir;
    dc_restore_result_t *result;
    PGconn *conn;
    char target_name[256];
    dc_progress_t progress;
} restore_t;

static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    /* DROP ... CASCADE says what else it removed: worth seeing. */
    if (msg != NULL)
        dc_log_debug("server: %s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

/* A database that holds anything is only changed after a yes: --yes, or on a terminal. */
static int confirm_overwrite(restore_t *r, long objects, dc_error_t *err)
{
    const dc_restore_opts_t *o = r->opts;
    if (o->yes)
        return 0;
    char question[512];
    snprintf(question, sizeof(question),
             "Database %s holds %ld objects (tables, views, functions, large objects). Replace "
             "its contents with snapshot %s (%s)?",
             r->target_name, objects, r->manifest->id, r->manifest->created_at);
    if (o->confirm != NULL && o->confirm(o->confirm_ctx, question))
        return 0;
    return dc_error_set(err,
                        "database %s holds %ld objects (tables, views, functions, large "
                        "objects) and restoring would replace them: confirm "
                        "on a terminal or pass --yes",
                        r->target_name, objects);
}

/* Writers wait from here on, so the pre-restore snapshot holds every write made before. */
static int take_safety_snapshot(restore_t *r, dc_error_t *err)
{
    PGresult *res = dc_pg_query(r->conn, "SELECT pg_catalog.pg_export_snapshot()", err);
    if (res == NULL)
        return dc_error_prefix(err, "cannot take the pre-restore snapshot: ");
    char snapshot[64];
    snprintf(snapshot, sizeof(snapshot), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    dc_backup_opts_t opts = *r->opts->backup;
    opts.database_url = r->opts->target_url;
    opts.store = r->opts->store;
    opts.tag = DC_TAG_PRE_RESTORE;
    opts.external_snapshot = snapshot;
    dc_backup_result_t backup;
    dc_log_info("taking a pre-restore snapshot of %s (writes wait until the restore ends)",
                r->target_name);
    if (dc_backup_run(&opts, &backup, err) != 0)
        return dc_error_prefix(err, "the pre-restore snapshot failed, nothing was changed: ");
    snprintf(r->result->safety_id, sizeof(r->result->safety_id), "%s", backup.manifest->id);
    dc_log_info("pre-restore snapshot %s taken: the database as it was can be restored from it",
                backup.manifest->id);
    dc_manifest_free(backup.manifest);
    return 0;
}

static int prepare_target(restore_t *r, dc_error_t *err)
{
    const dc_restore_opts_t *o = r->opts;
    long objects = 0;
    if (dc_restore_count_objects(r->conn, &objects, err) != 0)
        return -1;
    if (objects > 0 && confirm_overwrite(r, objects, err) != 0)
        return -1;
    if (o->terminate_connections) {
        int ended = 0;
        if (dc_restore_terminate_sessions(r->conn, &ended, err) != 0)
            return -1;
        if (ended > 0)
            dc_log_info("ended %d other sessions connected to %s", ended, r->target_name);
    }
    char *lock = dc_sprintf("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE;"
                            " SET LOCAL lock_timeout = '%llums'",
                            (unsigned long long)o->lock_timeout_ms);
    int rc = dc_pg_exec(r->conn, lock, err);
    free(lock);
    if (rc != 0)
        return -1;
    if (objects > 0 && dc_restore_block_writes(r->conn, o->lock_timeout_ms, err) != 0)
        return dc_error_prefix(err, "cannot keep writers out of %s: ", r->target_name);
    if (dc_restore_remove_large_objects(r->conn, err) != 0)
        return -1;
    if (objects > 0 && o->safety_snapshot && take_safety_snapshot(r, err) != 0)
        return -1;
    return 0;
}

static int run_schema(restore_t *r, dc_snapshot_reader_t *reader, const dc_member_t *member,
                      dc_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (dc_restore_read_member(reader, &text, &len, err) != 0)
        return -1;
    int rc =
        dc_restore_run_script(r->conn, text, len, r->manifest->restrict_key, member->name, err);
    free(text);
    return rc;
}

/* Dropping the schemas needs ACCESS EXCLUSIVE locks, which readers hold up: past
 * --lock-timeout, say who they are (the savepoint keeps the transaction usable to ask). */
static int clear_schemas(restore_t *r, dc_error_t *err)
{
    if (dc_pg_exec(r->conn, "SAVEPOINT dc_clear", err) != 0)
        return -1;
    if (dc_restore_clear_schemas(r->conn, r->manifest, err) == 0)
        return dc_pg_exec(r->conn, "RELEASE SAVEPOINT dc_clear", err);
    if (strstr(err->message, "SQLSTATE 55P03") != NULL) {
        PQclear(PQexec(r->conn, "ROLLBACK TO SAVEPOINT dc_clear"));
        char *who = dc_pg_describe_lock_holders(r->conn);
        dc_error_set(err,
                     "could not take over the tables of %s within --lock-timeout: %s; end those "
                     "sessions (--terminate-connections) or raise --lock-timeout",
                     r->target_name, *who ? who : "other sessions use them");
        free(who);
    }
    return -1;
}

/* Everything between BEGIN and COMMIT that touches the target. */
static int replace_contents(restore_t *r, dc_error_t *err)
{
    dc_snapshot_reader_t *reader = NULL;
    if (clear_schemas(r, err) != 0)
        return -1;
    if (dc_snapshot_reader_open(r->opts->store, r->database_dir, r->manifest, &reader, err) != 0)
        return -1;
    dc_restore_load_t load = {.conn = r->conn,
                              .manifest = r->manifest,
                              .freeze = true,
                              .autocommit = false,
                              .progress = &r->progress};
    int rc = 0;
    for (;;) {
        dc_member_t member;
        bool end = false;
        rc = dc_snapshot_reader_next(reader, &member, &end, err);
        if (rc != 0 || end)
            break;
        if (member.kind == DC_MEMBER_PRE_DATA_KIND) {
            rc = run_schema(r, reader, &member, err);
            if (rc == 0) {
                /* The script set its own client_encoding; the COPY text is in the manifest's. */
                char *set = dc_sprintf("SET client_encoding = '%s'",
                                       r->manifest->encoding ? r->manifest->encoding : "UTF8");
                rc = dc_pg_exec(r->conn, set, err);
                free(set);
            }
        } else if (member.kind == DC_MEMBER_POST_DATA_KIND) {
            rc = dc_restore_load_finish(&load, err);
            if (rc == 0)
                rc = run_schema(r, reader, &member, err);
        } else {
            rc = dc_restore_load_member(&load, dc_restore_reader_source(reader), &member, err);
            if (rc == 0 && member.kind == DC_MEMBER_TABLE_CHUNK &&
                member.chunk_index + 1 == r->manifest->tables[member.index].chunk_count)
                atomic_fetch_add(&r->progress.items_done, 1);
        }
        if (rc == 0)
            rc = dc_signal_check(err);
        if (rc != 0)
            break;
        dc_progress_report(&r->progress);
    }
    /* The manifest guarantees a post-data section, which ends the COPY; this is the seatbelt
     * that keeps a COPY from staying open into COMMIT whatever the archive held. */
    if (rc == 0)
        rc = dc_restore_load_finish(&load, err);
    if (rc == 0)
        rc = dc_snapshot_reader_finish(reader, err);
    dc_snapshot_reader_close(reader);
    r->result->rows = load.rows;
    r->result->raw_bytes = load.raw_bytes;
    return rc;
}

static int restore_atomic(restore_t *r, dc_error_t *err)
{
    if (prepare_target(r, err) != 0)
        return -1;
    dc_log_info("restoring snapshot %s (%s, %zu tables) into %s in one transaction",
                r->manifest->id, r->manifest->created_at, r->manifest->table_count, r->target_name);
    if (replace_contents(r, err) != 0)
        return -1;
    dc_fault_point("restore-before-commit");
    return dc_pg_commit(r->conn, err);
}

/* --jobs N: only into an empty database, where "as it was" is "empty" and a failure is plain. */
static int restore_parallel(restore_t *r, dc_error_t *err)
{
    long objects = 0;
    if (dc_restore_count_objects(r->conn, &objects, err) != 0)
        return -1;
    if (objects > 0)
        return dc_error_set(err,
                            "--jobs restores into an empty database only, and %s holds %ld "
                            "objects: restore atomically (without --jobs), or into a new "
                            "--target",
                            r->target_name, objects);
    dc_log_info("restoring snapshot %s into %s with %d connections: NOT atomic (a failure "
                "leaves an incomplete database)",
                r->manifest->id, r->target_name, r->opts->jobs);
    if (!dc_store_can_read_ranges(r->opts->store))
        return dc_error_set(err,
                            "--jobs reads the archive's members side by side, which store %s "
                            "cannot: restore without --jobs",
                            dc_store_url(r->opts->store));
    dc_snapshot_index_t *index = NULL;
    if (dc_snapshot_index_build(r->opts->store, r->database_dir, r->manifest, &index, err) != 0)
        return -1;
    int rc =
        dc_restore_parallel(r->opts, r->manifest, index, r->conn, &r->progress, r->result, err);
    dc_snapshot_index_free(index);
    return rc;
}

/* A database the restore created goes again when the restore fails; err says which. */
static void drop_created_target(restore_t *r, dc_error_t *err)
{
    dc_error_t drop;
    if (dc_pg_drop_database(r->opts->target_url, "restore", &drop) == 0)
        dc_error_append(err, "; the database created for it was dropped");
    else
        dc_error_append(err, "; %s (drop it by hand)", drop.message);
}

int dc_restore_manifest(const dc_restore_opts_t *opts, const dc_manifest_t *manifest,
                        const char *database_dir, dc_restore_result_t *result, dc_error_t *err)
{
    restore_t r = {opts, manifest, database_dir, result, NULL, "", {0}};
    double started = dc_now_seconds();
    memset(result, 0, sizeof(*result));
    snprintf(result->id, sizeof(result->id), "%s", manifest->id);
    /* An encrypted snapshot without its key stops here, before the target is touched. */
    if (dc_manifest_check_unlocked(manifest, err) != 0)
        return -1;
    if (dc_pg_url_database(opts->target_url, r.target_name, sizeof(r.target_name), err) != 0)
        return -1;
    if (dc_restore_connect_target(opts, manifest, &r.conn, &result->created_target, err) != 0) {
        if (r.conn != NULL)
            PQfinish(r.conn);
        r.conn = NULL;
        if (result->created_target) {
            drop_created_target(&r, err);
        }
        return -1;
    }
    PQsetNoticeReceiver(r.conn, on_notice, NULL);
    result->tables = manifest->table_count;
    dc_progress_init(&r.progress, "restore", (double)dc_manifest_total_rows(manifest),
                     (double)dc_manifest_total_raw_bytes(manifest),
                     (uint32_t)manifest->table_count);

    int rc = opts->jobs > 1 ? restore_parallel(&r, err) : restore_atomic(&r, err);
    dc_progress_finish(&r.progress);
    if (rc != 0) {
        dc_signal_check(err);
        PQclear(PQexec(r.conn, "ROLLBACK"));
        if (result->created_target) {
            PQfinish(r.conn);
            r.conn = NULL;
            drop_created_target(&r, err);
        } else if (opts->jobs > 1) {
            dc_error_append(err,
                            "; database %s is INCOMPLETE (a parallel restore is not "
                            "atomic): drop it and restore again",
                            r.target_name);
        } else {
            dc_error_append(err, "; database %s was left exactly as it was", r.target_name);
        }
        if (result->safety_id[0] != '\0')
            dc_error_append(err, " (pre-restore snapshot %s holds it too)", result->safety_id);
    }
    if (r.conn != NULL)
        PQfinish(r.conn);
    result->seconds = dc_now_seconds() - started;
    return rc;
}

int dc_restore_run(const dc_restore_opts_t *opts, dc_restore_result_t *result, dc_error_t *err)
{
    dc_manifest_t *m = NULL;
    char dir[256];
    memset(result, 0, sizeof(*result));
    if (dc_catalog_load(opts->store, opts->database, opts->ref, &m, dir, err) != 0)
        return -1;
    if (dc_manifest_unlock(m, opts->key, err) != 0) {
        dc_manifest_free(m);
        return -1;
    }
    int rc = dc_restore_manifest(opts, m, dir, result, err);
    dc_manifest_free(m);
    return rc;
}
