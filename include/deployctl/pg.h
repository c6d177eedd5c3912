/* PostgreSQL access: connecting from a URL with secrets registered for redaction and errors
 * a user can act on; running statements; the catalog queries a snapshot needs; and pg_dump as
 * a child process that gets its credentials without argv. */
#ifndef DEPLOYCTL_PG_H
#define DEPLOYCTL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "deployctl/error.h"
#include "deployctl/process.h"

/* Returned (instead of -1) when an operation lost a race with a concurrent change and can be
 * tried again from the start. */
#define DC_PG_RETRY (-2)

/* ---- connections ---- */

/* Prisma's URLs carry parameters libpq refuses (?schema=, connection_limit, pgbouncer, ...).
 * Returns the URL with them removed (caller frees) and, in *schema (caller frees, NULL when
 * absent), the schema Prisma keeps its tables and _prisma_migrations in. */
char *dc_pg_url_for_libpq(const char *url, char **schema);

/* A URL (or conninfo) as a conninfo string, with dbname replaced when `database` is given, and,
 * when `password` is given, without the password (returned there; caller frees both). NULL
 * when the URL cannot be parsed. */
char *dc_pg_conninfo(const char *url, const char *database, char **password);
/* The same connection settings with another database name, as a conninfo string (it holds the
 * password if the URL did: for libpq only; caller frees). */
char *dc_pg_url_with_database(const char *url, const char *database);

/* Registers the URL's password (and its percent-encoded form) with the log redactor. */
void dc_pg_register_secrets(const char *url);
/* Connects; `purpose` ends up in application_name ("deployctl backup worker 2"). */
int dc_pg_connect(const char *url, const char *purpose, PGconn **out, dc_error_t *err);
/* The database name a URL designates, without connecting (libpq's defaults apply). */
int dc_pg_url_database(const char *url, char *out, size_t out_size, dc_error_t *err);
/* DROP DATABASE ... WITH (FORCE) of the database a URL designates, from a connection to the
 * same server's "postgres" database. */
int dc_pg_drop_database(const char *url, const char *purpose, dc_error_t *err);
/* Which server instance (its port and start time) and, with_database, which database a session
 * reaches, as one string: two connections that give the same string reach the same database,
 * however their URLs spell the host or whatever pooler sits between. */
int dc_pg_instance(PGconn *conn, bool with_database, char *out, size_t size, dc_error_t *err);
/* The URL with its password masked, for messages. */
void dc_pg_url_display(const char *url, char *out, size_t out_size);

/* Runs a statement that returns no rows. */
int dc_pg_exec(PGconn *conn, const char *sql, dc_error_t *err);
/* COMMIT, and an error unless the server really committed (not rolled back). */
int dc_pg_commit(PGconn *conn, dc_error_t *err);
/* Runs a query; returns the result (PQclear it) or NULL with err set. */
PGresult *dc_pg_query(PGconn *conn, const char *sql, dc_error_t *err);
PGresult *dc_pg_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             dc_error_t *err);
/* Fills err from a failed result or connection, as one line with SQLSTATE and hint. */
int dc_pg_error(PGconn *conn, const PGresult *res, const char *what, dc_error_t *err);
/* A text[] literal, {"a","b"}, for a query parameter: the first `count` items, or up to a
 * NULL one (SIZE_MAX: NULL-terminated); caller frees. */
char *dc_pg_text_array(const char *const *items, size_t count);
/* "col1", "Col 2" -> quoted identifier (caller frees). */
char *dc_pg_quote_ident(PGconn *conn, const char *ident);
/* Columns as a quoted, comma-separated list for COPY ("a", "B c"); "" when none (caller
 * frees). */
char *dc_pg_column_list(PGconn *conn, char *const *columns, size_t count);
int dc_pg_server_major(PGconn *conn);

/* ---- catalog ---- */

typedef struct dc_pg_table {
    uint32_t oid;
    char *schema;
    char *name;
    char **columns; /* stored columns only: no dropped or generated ones */
    size_t column_count;
    uint64_t heap_bytes; /* on-disk size of the heap, for planning and ETA */
    uint64_t blocks;
    double estimated_rows; /* pg_class.reltuples; < 0 when never analysed */
    char *filter;          /* an extension configuration table's "WHERE ..." (or NULL) */
} dc_pg_table_t;

typedef struct dc_pg_table_list {
    dc_pg_table_t *items;
    size_t count;
} dc_pg_table_list_t;

/* Every table whose rows a snapshot must hold: ordinary tables and leaf partitions, not
 * partitioned parents (their rows live in the leaves), views, foreign tables, system schemas
 * or the schemas in `excluded` (NULL-terminated); extension members only when the extension
 * declared them configuration tables (pg_extension_config_dump), with its row filter. */
int dc_pg_list_tables(PGconn *conn, const char *const *excluded, dc_pg_table_list_t *out,
                      dc_error_t *err);
void dc_pg_table_list_free(dc_pg_table_list_t *list);

/* "SELECT pg_catalog.setval(...);" lines for every sequence, values read now (so under the
 * caller's snapshot for the sequences' catalog, and their current values). */
int dc_pg_sequence_setvals(PGconn *conn, const char *const *excluded, char **sql_out,
                           size_t *count_out, dc_error_t *err);

/* Every user schema (not system ones, not those an extension created, not those in
 * `excluded`), by name (caller frees each and the array). */
int dc_pg_list_schemas(PGconn *conn, const char *const *excluded, char ***names, size_t *count,
                       dc_error_t *err);

/* The oids of every large object, ascending (caller frees). */
int dc_pg_list_large_objects(PGconn *conn, uint32_t **oids, size_t *count, dc_error_t *err);

/* Locks the tables (but those in `skip`, already locked) in `mode` ("ACCESS SHARE",
 * "EXCLUSIVE"), waiting at most lock_timeout_ms, then naming the sessions in the way.
 * DC_PG_RETRY when a table was dropped meanwhile. */
int dc_pg_lock_tables(PGconn *conn, const dc_pg_table_list_t *tables,
                      const dc_pg_table_list_t *skip, const char *mode, uint64_t lock_timeout_ms,
                      dc_error_t *err);
/* DC_PG_RETRY when a table's file is not the one the transaction's snapshot sees (it was
 * truncated or rewritten after the snapshot was taken and before it was locked). */
int dc_pg_check_unchanged(PGconn *conn, const dc_pg_table_list_t *tables, dc_error_t *err);
/* The other sessions holding or awaiting locks on this database's tables, as one line
 * (pid, locks, application, state, query; caller frees; "" when nobody). */
char *dc_pg_describe_lock_holders(PGconn *conn);

/* ---- pg_dump ---- */

typedef struct dc_pg_dump {
    char *path;
    int major;
    int minor;
    bool has_restrict_key;
} dc_pg_dump_t;

/* Finds a pg_dump at least as new as the server: `configured` if given, else the newest
 * /usr/lib/postgresql/<N>/bin/pg_dump, else pg_dump in PATH. */
int dc_pg_dump_find(const char *configured, int server_major, dc_pg_dump_t *out, dc_error_t *err);
void dc_pg_dump_free(dc_pg_dump_t *d);

typedef struct dc_pg_dump_run {
    dc_process_t proc;
    int passfile_fd;
    int out_fd;
    char section[16];
} dc_pg_dump_run_t;

typedef struct dc_pg_dump_args {
    const char *url;
    const char *section;  /* pre-data | post-data */
    const char *snapshot; /* the exported snapshot to dump under */
    const char *restrict_key;
    const char *const *excluded_schemas; /* NULL-terminated */
    uint64_t lock_timeout_ms;
    int out_fd;
} dc_pg_dump_args_t;

/* Starts pg_dump --section=SECTION --snapshot=SNAP writing into out_fd. The connection
 * parameters go in argv except the password, which goes through a 0600 in-memory passfile
 * (PGPASSFILE=/proc/self/fd/N); the environment is scrubbed of other secrets. */
int dc_pg_dump_start(const dc_pg_dump_t *dump, const dc_pg_dump_args_t *args, dc_pg_dump_run_t *run,
                     dc_error_t *err);
int dc_pg_dump_wait(dc_pg_dump_run_t *run, dc_error_t *err);
void dc_pg_dump_cancel(dc_pg_dump_run_t *run);

/* ---- SQL text (scripts split with libpg_query) ---- */

/* Skips white space and comments (block comments nest, as PostgreSQL's do) from p, not past
 * end: where the statement proper begins (libpg_query's stmt_location is just past the previous
 * semicolon). */
const char *dc_pg_sql_skip_blank(const char *p, const char *end);
/* Where a statement of a libpg_query result (its stmt_location and stmt_len; a stmt_len of 0
 * runs to the end) lies in sql (len bytes): *begin just past the previous statement, *start where
 * the statement proper begins (dc_pg_sql_skip_blank), *end where it ends. False when it lies
 * outside the text. */
bool dc_pg_sql_statement(const char *sql, size_t len, size_t location, size_t stmt_len,
                         const char **begin, const char **start, const char **end);
/* The 1-based line of `at` in text. */
int dc_pg_sql_line(const char *text, const char *at);
/* Where a libpg_query error's cursorpos (1-based, in characters, not bytes) points in text. */
const char *dc_pg_sql_error_at(const char *text, int cursorpos);

#endif
