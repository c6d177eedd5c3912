/* The migration runner: Prisma's migration directory read as Prisma reads it, its history table
 * (_prisma_migrations) kept as Prisma's schema engine keeps it, status, deploy, down, resolve and
 * an external mode. A library for `migrate`, and for `check` and `release` later; no printing. */
#ifndef DEPLOYCTL_MIGRATE_H
#define DEPLOYCTL_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployctl/error.h"

/* Prisma's own advisory lock (prisma migrate holds it while it runs). */
#define DC_MIGRATE_PRISMA_LOCK_KEY 72707369LL
/* Ours, held by every deployctl migration runner for its whole run ("dcmg"). */
#define DC_MIGRATE_LOCK_KEY 0x64636d67LL

/* ---- the migration directory (pure, no database) ---- */

typedef struct dc_migration {
    char *name; /* the directory name, "20240101000000_init" */
    char *path; /* its migration.sql */
    char *sql;  /* migration.sql, as stored (NUL-terminated) */
    size_t sql_len;
    char checksum[65]; /* lower-case hex SHA-256 of migration.sql's bytes, as Prisma records */
    char *down_sql;    /* down.sql beside it, or NULL when there is none */
    size_t down_len;
} dc_migration_t;

typedef struct dc_migration_set {
    char *dir;
    dc_migration_t *items; /* in name (timestamp) order, as Prisma applies them */
    size_t count;
    char **skipped; /* subdirectories without migration.sql (only with skip_incomplete) */
    size_t skipped_count;
} dc_migration_set_t;

/* How the directory is read. dc_migrate_read_dir reads as the runner must: every option off. */
typedef struct dc_migrate_read_opts {
    /* A subdirectory without migration.sql is not a migration: named in set->skipped (or, for
     * dc_migrate_read_one, left with sql NULL) instead of an error. For lint. */
    bool skip_incomplete;
    /* migration_lock.toml's provider is not checked (lint only reads the SQL). */
    bool any_provider;
} dc_migrate_read_opts_t;

/* Reads <dir>/<name>/migration.sql (and down.sql) for every subdirectory, in name order, and
 * checks migration_lock.toml names provider "postgresql". Errors name the file and what to do. */
int dc_migrate_read_dir(const char *dir, dc_migration_set_t *out, dc_error_t *err);
/* The same with options (NULL: as dc_migrate_read_dir). */
int dc_migrate_read_dir_with(const char *dir, const dc_migrate_read_opts_t *opts,
                             dc_migration_set_t *out, dc_error_t *err);
/* Reads one migration, <dir>/<name>/migration.sql and down.sql (opts NULL: all off); free it
 * with dc_migration_free. */
int dc_migrate_read_one(const char *dir, const char *name, const dc_migrate_read_opts_t *opts,
                        dc_migration_t *out, dc_error_t *err);
void dc_migration_free(dc_migration_t *m);
void dc_migrate_set_free(dc_migration_set_t *set);
/* The migration of that name in the set, or NULL. */
const dc_migration_t *dc_migrate_find(const dc_migration_set_t *set, const char *name);

/* Lower-case hex SHA-256 of data (out: 65 bytes). */
void dc_migrate_checksum(const void *data, size_t len, char out[65]);
/* Whether a recorded checksum is this script's, line endings aside: the raw bytes, CRLF turned
 * into LF, or LF into CRLF (a Windows checkout of a file applied from Linux is not an edit). */
bool dc_migrate_checksum_matches(const char *sql, size_t len, const char *recorded);

/* Whether a statement's parse tree (libpg_query) says it cannot run inside a transaction block
 * (CREATE INDEX CONCURRENTLY, VACUUM, CREATE DATABASE, ...); fills reason with what it is. */
typedef struct dc_migrate_stmt {
    char *text;
    int line;             /* 1-based line in the file */
    bool no_transaction;  /* must run outside a transaction block */
    bool transaction_ctl; /* BEGIN / COMMIT / ROLLBACK written in the file itself */
    /* CREATE INDEX CONCURRENTLY: the index name exactly as PostgreSQL stores it (quoted case
     * kept, unquoted folded; NULL when the server names it), and its table's schema (NULL: on
     * the search_path) and name, to find an INVALID leftover in the catalog. */
    char *concurrent_index;
    char *index_schema;
    char *index_table;
    char what[64]; /* "CREATE INDEX CONCURRENTLY", for messages */
} dc_migrate_stmt_t;

typedef struct dc_migrate_script {
    dc_migrate_stmt_t *stmts;
    size_t count;
    bool needs_autocommit; /* some statement cannot run in a transaction, or the file has its own */
} dc_migrate_script_t;

/* The same judgement for one parsed statement ({"<type>": node} of libpg_query's JSON), for
 * lint: true when it cannot run in a transaction block, with what it is in what. */
struct json_t;
bool dc_migrate_stmt_no_transaction(const char *type, struct json_t *node, char *what,
                                    size_t what_size);

/* Splits and classifies a migration with PostgreSQL's parser; label names it in errors. */
int dc_migrate_parse_script(const char *sql, const char *label, dc_migrate_script_t *out,
                            dc_error_t *err);
void dc_migrate_script_free(dc_migrate_script_t *script);

/* Splits a command line into argv the way a shell would split words ('single', "double" quotes,
 * backslash escapes) but without a shell: no variables, globs or substitutions. NULL-terminated;
 * free with dc_migrate_argv_free. */
int dc_migrate_split_command(const char *command, char ***argv, dc_error_t *err);
void dc_migrate_argv_free(char **argv);

/* ---- history (_prisma_migrations rows) and status (pure) ---- */

typedef struct dc_history_row {
    char *id;
    char *checksum;
    char *migration_name;
    char *logs;           /* NULL when none */
    char *started_at;     /* as the server prints timestamptz */
    char *finished_at;    /* NULL: not finished (failed, or running) */
    char *rolled_back_at; /* NULL: not rolled back */
    int applied_steps_count;
} dc_history_row_t;

typedef struct dc_history {
    bool exists;            /* whether the table exists at all */
    dc_history_row_t *rows; /* in started_at order */
    size_t count;
} dc_history_t;

void dc_history_free(dc_history_t *h);

/* How a down.sql that runs outside a transaction marks its row's logs from before its first
 * statement until it is rolled back: while the mark stays (it stopped partway, or was killed),
 * the migration is neither applied nor pending but failed, "partly rolled back". */
#define DC_MIGRATE_UNDO_MARK "deployctl: down.sql partly run: "
/* Whether a finished row carries that mark. */
bool dc_migrate_row_partly_undone(const dc_history_row_t *row);

typedef enum {
    DC_MIG_APPLIED,         /* finished, checksum matches */
    DC_MIG_EDITED,          /* finished, but migration.sql changed since */
    DC_MIG_PENDING,         /* no row, or only rolled-back rows */
    DC_MIG_FAILED,          /* a row neither finished nor rolled back, or a finished one whose
                             * down.sql stopped partway: blocks deploys */
    DC_MIG_MISSING_LOCALLY, /* applied (or failed) in the database, not in the directory */
} dc_migration_state_t;

const char *dc_migrate_state_name(dc_migration_state_t s); /* "applied", "pending", ... */

typedef struct dc_migration_status {
    const char *name;
    dc_migration_state_t state;
    const dc_migration_t *local; /* NULL when missing locally */
    const dc_history_row_t *row; /* the row that decided the state; NULL when pending w/o row */
} dc_migration_status_t;

typedef struct dc_migrate_status {
    dc_migration_status_t *entries; /* local ones in order, then those missing locally */
    size_t count;
    size_t applied, edited, pending, failed, missing;
    bool history_exists;
    /* A session holding deployctl's or Prisma's migration lock: a deploy in progress, whose
     * current migration shows as failed until it finishes. 0 when none (dc_migrate_status). */
    int runner_pid;
} dc_migrate_status_t;

/* Classifies each migration from the directory and the history rows, as Prisma does: rows
 * rolled back do not count; a finished row makes it applied (or edited when the checksum
 * differs); an unfinished one makes it failed. Pointers refer into set and history. */
void dc_migrate_classify(const dc_migration_set_t *set, const dc_history_t *history,
                         dc_migrate_status_t *out);
/* Up to date: nothing pending, failed, edited or missing locally. */
bool dc_migrate_up_to_date(const dc_migrate_status_t *st);
void dc_migrate_status_free(dc_migrate_status_t *st);

/* ---- against a database ---- */

/* Watches the runner apply each migration statement (rehearse measures them): before is called
 * just before the statement is sent, after once its result is in (res NULL when the connection
 * failed), both on the runner's thread with the runner's own connection, inside the migration's
 * transaction when it runs in one. An observer may read (catalog, pg_locks, WAL position) but
 * must change nothing and must not leave the connection in another state. */
typedef struct dc_migrate_observer {
    void (*before)(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st);
    void (*after)(void *ctx, PGconn *conn, const char *file, const dc_migrate_stmt_t *st,
                  const PGresult *res);
    void *ctx;
} dc_migrate_observer_t;

typedef struct dc_migrate_opts {
    const char *url;          /* as libpq takes it (dc_pg_url_for_libpq) */
    const char *prisma_url;   /* as the user gave it (with ?schema=): external commands get this */
    const char *schema;       /* where _prisma_migrations lives (?schema=); NULL: public */
    const char *dir;          /* the migrations directory */
    uint64_t lock_timeout_ms; /* per statement; also how long to wait for the runner lock */
    uint64_t statement_timeout_ms; /* 0: the server's setting */
    int lock_retries;              /* extra attempts after a lock timeout (SQLSTATE 55P03) */
    uint64_t retry_backoff_ms;     /* first pause between attempts, doubled each time */
    const char *external_command;  /* migrate.command: run it instead of the native runner */
    uint64_t external_timeout_ms;  /* then stopped (its process group); 0: no limit */
    const dc_migrate_observer_t *observer; /* NULL: none (the native runner only) */
} dc_migrate_opts_t;

typedef struct dc_migrate_report {
    char **applied; /* migrations applied (deploy) or rolled back (down), in the order done */
    size_t applied_count;
    char *failed;           /* the migration that failed, or NULL */
    char **dropped_invalid; /* INVALID indexes dropped before a retry */
    size_t dropped_count;
    int retries; /* lock-timeout retries taken */
    double seconds;
} dc_migrate_report_t;

void dc_migrate_report_free(dc_migrate_report_t *r);

/* Reads the directory and the history table and classifies (no lock, changes nothing). */
int dc_migrate_status(const dc_migrate_opts_t *opts, dc_migration_set_t *set, dc_history_t *history,
                      dc_migrate_status_t *out, dc_error_t *err);

/* Applies the pending migrations in order, each in its own transaction with its history row
 * (or statement by statement outside one when it must), under the runner locks. Refuses (exit 4)
 * while a migration is failed and unresolved (Prisma's P3009); warns about edited or missing
 * ones, as Prisma's deploy ignores them. With opts->external_command: dc_migrate_external. */
int dc_migrate_deploy(const dc_migrate_opts_t *opts, dc_migrate_report_t *report, dc_error_t *err);

/* Runs down.sql of the newest applied migrations, newest first, each in a transaction that also
 * sets its row's rolled_back_at, until `to` is the newest applied (to != NULL) or `steps` were
 * undone. Refuses before changing anything when one of them has no down.sql. */
int dc_migrate_down(const dc_migrate_opts_t *opts, const char *to, int steps,
                    dc_migrate_report_t *report, dc_error_t *err);

typedef enum { DC_RESOLVE_APPLIED, DC_RESOLVE_ROLLED_BACK } dc_migrate_resolution_t;

/* Prisma's `migrate resolve`: --applied marks a failed migration applied (or records one never
 * run) without running it; --rolled-back marks a failed one rolled back so deploy runs it again.
 * Anything else (already applied, not failed, unknown) is refused. */
int dc_migrate_resolve(const dc_migrate_opts_t *opts, const char *name, dc_migrate_resolution_t how,
                       dc_error_t *err);

/* Runs opts->external_command (split into argv, no shell; the URL only in DATABASE_URL in its
 * environment) under the runner lock, and reports the migrations the history table shows it
 * applied (report->applied) or left failed (report->failed). */
int dc_migrate_external(const dc_migrate_opts_t *opts, dc_migrate_report_t *report,
                        dc_error_t *err);

/* ---- promotion (staging -> production) ---- */

typedef enum {
    DC_PROMOTE_MISSING_ON_SOURCE, /* production would get it, staging never applied it */
    DC_PROMOTE_FAILED_ON_SOURCE,  /* ... staging has it failed */
    DC_PROMOTE_CHECKSUM_DIFFERS,  /* both have it, with different migration.sql */
    DC_PROMOTE_NOT_IN_TARGET,     /* applied on staging, production would not get it */
    DC_PROMOTE_FAILED_ON_TARGET,  /* failed on production: deploy refuses until resolved */
} dc_promote_diff_kind_t;

typedef struct dc_promote_diff {
    char *name;
    dc_promote_diff_kind_t kind;
    char source_checksum[65]; /* "" when none */
    char target_checksum[65];
} dc_promote_diff_t;

typedef struct dc_promote_result {
    dc_promote_diff_t *diffs;
    size_t count;
    size_t same; /* migrations production would have exactly as staging has them */
} dc_promote_result_t;

/* What production would have after a deploy (its applied migrations and the directory's pending
 * ones) against what staging has applied, migration by migration (name and checksum). */
int dc_migrate_promote_check(const dc_migrate_opts_t *source, const dc_migrate_opts_t *target,
                             dc_promote_result_t *out, dc_error_t *err);
/* The comparison itself, from both sides' classified status (dc_migrate_classify): no I/O. By
 * name, so the order of the entries (and the order staging applied them in) does not count;
 * rolled-back rows do not count (dc_migrate_classify drops them). Fills *out (freed with
 * dc_promote_result_free). */
void dc_promote_compare(const dc_migrate_status_t *source, const dc_migrate_status_t *target,
                        dc_promote_result_t *out);
void dc_promote_result_free(dc_promote_result_t *r);
const char *dc_promote_diff_name(dc_promote_diff_kind_t kind); /* "missing on the source", ... */

/* Reads the history table (out->exists false when there is none). */
int dc_history_read(PGconn *conn, const char *schema, dc_history_t *out, dc_error_t *err);

#endif
