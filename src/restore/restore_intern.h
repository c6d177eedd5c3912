/* What the restore's orchestration, schema scripts, data loading and target preparation share.
 * Private to src/restore/. */
#ifndef DEPLOYCTL_RESTORE_INTERN_H
#define DEPLOYCTL_RESTORE_INTERN_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "deployctl/progress.h"
#include "deployctl/restore.h"

/* ---- schema scripts (script.c) ---- */

/* Runs a pg_dump schema script statement by statement (pipelined, so a remote server costs few
 * round trips), dropping exactly the \restrict / \unrestrict lines that carry the snapshot's
 * key and refusing any other psql meta-command. A failure names the statement and its line. */
int dc_restore_run_script(PGconn *conn, const char *script, size_t len, const char *restrict_key,
                          const char *label, dc_error_t *err);

/* ---- the target database (target.c) ---- */

/* Connects to the target, creating it first (like the snapshot's source: encoding and locale)
 * when asked to and missing. */
int dc_restore_connect_target(const dc_restore_opts_t *opts, const dc_manifest_t *m, PGconn **out,
                              bool *created, dc_error_t *err);
/* How many user tables the database holds (outside deployctl's own schema). */
int dc_restore_count_tables(PGconn *conn, long *count, dc_error_t *err);
/* The other sessions connected to this database, one line (caller frees; "" when none). */
char *dc_restore_describe_sessions(PGconn *conn);
/* Ends the other sessions connected to this database; how many in *ended. */
int dc_restore_terminate_sessions(PGconn *conn, int *ended, dc_error_t *err);
/* In the open transaction: locks every user table in EXCLUSIVE mode (reads go on, writes
 * wait), within lock_timeout_ms, naming the sessions in the way when it cannot. */
int dc_restore_block_writes(PGconn *conn, uint64_t lock_timeout_ms, dc_error_t *err);
/* In the open transaction: removes every large object, drops the snapshot's schemas and
 * everything in them; `public` is recreated with the owner, privileges and comment it had. */
int dc_restore_clear_schemas(PGconn *conn, const dc_manifest_t *m, dc_error_t *err);

/* ---- data (load.c) ---- */

typedef struct dc_restore_load {
    PGconn *conn;
    const dc_manifest_t *manifest;
    bool freeze; /* COPY ... FREEZE: the tables were created in this transaction */
    dc_progress_t *progress;
    uint64_t rows;
    uint64_t raw_bytes;
} dc_restore_load_t;

/* Loads one data member (a table chunk or a piece of a large object) from the reader into the
 * database, checking its stored and raw hashes, raw size and row count. */
int dc_restore_load_member(dc_restore_load_t *load, dc_snapshot_reader_t *reader,
                           const dc_member_t *member, dc_error_t *err);
/* Reads a whole schema member into memory (schema scripts are small). */
int dc_restore_read_member(dc_snapshot_reader_t *reader, char **text, size_t *len, dc_error_t *err);

#endif
