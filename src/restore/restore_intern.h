/* What the restore's orchestration, schema scripts, data loading and target preparation share.
 * Private to src/restore/. */
#ifndef DEPLOYCTL_RESTORE_INTERN_H
#define DEPLOYCTL_RESTORE_INTERN_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "deployctl/progress.h"
#include "deployctl/restore.h"

/* Every restore session: no timeouts of the role's or database's defaults cut a long restore
 * short, and defaults that would break it (read-only, repeatable read, which COPY FREEZE
 * refuses) are overridden. */
#define DC_RESTORE_SESSION_SETTINGS                                                                \
    "SET statement_timeout = 0; SET lock_timeout = 0;"                                             \
    " SET idle_in_transaction_session_timeout = 0;"                                                \
    " SET default_transaction_read_only = off;"                                                    \
    " SET default_transaction_isolation = 'read committed'"

/* ---- schema scripts (script.c) ---- */

typedef struct dc_statement {
    char *text;
    int line;
} dc_statement_t;

typedef struct dc_script {
    dc_statement_t *statements;
    size_t count;
} dc_script_t;

/* Splits a pg_dump schema script into statements with PostgreSQL's own scanner, dropping exactly
 * the \restrict / \unrestrict lines that carry the snapshot's key and refusing any other psql
 * meta-command. */
int dc_restore_split_script(const char *script, size_t len, const char *restrict_key,
                            const char *label, dc_script_t *out, dc_error_t *err);
void dc_restore_script_free(dc_script_t *script);
/* Runs statements in order, pipelined (a remote server costs few round trips); a failure names
 * the statement and its line. */
int dc_restore_run_statements(PGconn *conn, const dc_statement_t *stmts, size_t count,
                              const char *label, dc_error_t *err);
/* Split, then run. */
int dc_restore_run_script(PGconn *conn, const char *script, size_t len, const char *restrict_key,
                          const char *label, dc_error_t *err);

/* ---- the target database (target.c) ---- */

/* Connects to the target, creating it first (like the snapshot's source: encoding and locale)
 * when asked to and missing. */
int dc_restore_connect_target(const dc_restore_opts_t *opts, const dc_manifest_t *m, PGconn **out,
                              bool *created, dc_error_t *err);
/* How many objects a restore would replace: relations (tables, views, sequences...) and
 * functions in user schemas (not deployctl's, not extensions' members), and large objects. */
int dc_restore_count_objects(PGconn *conn, long *count, dc_error_t *err);
/* The other sessions connected to this database, one line (caller frees; "" when none). */
char *dc_restore_describe_sessions(PGconn *conn);
/* Ends the other sessions connected to this database; how many in *ended. */
int dc_restore_terminate_sessions(PGconn *conn, int *ended, dc_error_t *err);
/* In the open transaction: locks every user table in EXCLUSIVE mode (reads go on, writes
 * wait), within lock_timeout_ms, naming the sessions in the way when it cannot. */
int dc_restore_block_writes(PGconn *conn, uint64_t lock_timeout_ms, dc_error_t *err);
/* In the open transaction: unlinks every large object. Done before the pre-restore snapshot
 * is exported, so the rows it deletes stay locked by the restore: a session writing into an
 * existing large object waits like a table's writers (locking pg_largeobject instead would stop
 * its readers too, the pre-restore backup among them). The snapshot's large objects come back
 * with their old oids from pre-data. */
int dc_restore_remove_large_objects(PGconn *conn, dc_error_t *err);
/* In the open transaction: removes every publication and event trigger, and
 * drops every user schema (the snapshot's, and those created after it, named in a warning) but
 * deployctl's own and extensions'; `public` is recreated with the owner, privileges and comment
 * it had. */
int dc_restore_clear_schemas(PGconn *conn, const dc_manifest_t *m, dc_error_t *err);

/* ---- data (load.c) ---- */

typedef struct dc_restore_load {
    PGconn *conn;
    const dc_manifest_t *manifest;
    bool freeze;     /* COPY ... FREEZE: the tables were created in this transaction */
    bool autocommit; /* no transaction is open: large object writes need one of their own */
    dc_progress_t *progress;
    uint64_t rows;
    uint64_t raw_bytes;
    /* The COPY kept open across consecutive chunks of one table. */
    bool copy_open;
    size_t copy_table;
    uint64_t copy_rows;
} dc_restore_load_t;

/* Where a member's stored bytes come from: the archive reader, or a chunk in memory. */
typedef struct dc_member_source {
    int (*read)(void *ctx, void *buf, size_t len, size_t *got, dc_error_t *err);
    void *ctx;
} dc_member_source_t;

dc_member_source_t dc_restore_reader_source(dc_snapshot_reader_t *reader);

/* Loads one data member (a table chunk or a piece of a large object) into the database,
 * checking its raw hash, raw size and row count (the stored hash is the source's job). A
 * table's COPY stays open for the next chunk of the same table. */
int dc_restore_load_member(dc_restore_load_t *load, dc_member_source_t source,
                           const dc_member_t *member, dc_error_t *err);
/* Ends the COPY left open, if any: after the last data member, and before anything else is
 * sent on the connection. */
int dc_restore_load_finish(dc_restore_load_t *load, dc_error_t *err);

/* ---- parallel restore (parallel.c) ---- */

/* Restores into an empty database with `jobs` connections, each reading the members it loads
 * through the archive's index: pre-data, then tables loaded side by side, indexes, keys and
 * foreign keys built as their tables are ready, then the rest of post-data. Not atomic. */
int dc_restore_parallel(const dc_restore_opts_t *opts, const dc_manifest_t *m,
                        const dc_snapshot_index_t *index, PGconn *conn, dc_progress_t *progress,
                        dc_restore_result_t *result, dc_error_t *err);
/* Reads a whole schema member into memory (schema scripts are small). */
int dc_restore_read_member(dc_snapshot_reader_t *reader, char **text, size_t *len, dc_error_t *err);

#endif
