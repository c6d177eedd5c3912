/* Private to src/migrate/: a runner's database session (connection, runner locks, statements
 * that name what blocks them). See session.c. */
#ifndef DEPLOYCTL_MIGRATE_SESSION_H
#define DEPLOYCTL_MIGRATE_SESSION_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "deployctl/migrate.h"
#include "migrate_intern.h"

typedef struct dc_session {
    const dc_migrate_opts_t *opts;
    PGconn *conn;
    PGconn *monitor;          /* a second connection that looks at pg_blocking_pids, made on need */
    char *table;              /* the quoted history table */
    char blockers[768];       /* who blocked the last statement, as last seen */
    char blockers_brief[512]; /* the same without their queries (for the history row) */
} dc_session_t;

int dc_session_open(const dc_migrate_opts_t *opts, const char *purpose, dc_session_t *s,
                    dc_error_t *err);
void dc_session_close(dc_session_t *s);
/* Takes deployctl's runner lock (and, when prisma_too, Prisma's), waiting at most
 * lock_timeout_ms for each; exit code 75 with the holder named when it cannot. */
int dc_session_lock(dc_session_t *s, bool prisma_too, dc_error_t *err);
/* The pid of another session holding deployctl's or Prisma's migration lock, or 0. */
int dc_session_runner_pid(dc_session_t *s);
/* Runs one statement, logging the sessions that block it while it waits; the result (caller
 * clears), or NULL when the connection failed. */
PGresult *dc_session_exec(dc_session_t *s, const char *sql);
bool dc_session_ok(const PGresult *res);
/* SQLSTATE 55P03: lock_timeout expired. */
bool dc_session_lock_timeout(const PGresult *res);
/* The sessions that blocked the last statement, with their queries, and in *brief without
 * them (NULL when they are not known apart); caller frees both; "" when unknown. */
char *dc_session_blockers(dc_session_t *s, char **brief);
/* lock_timeout and statement_timeout from the options, for the transaction or the session. */
int dc_session_set_timeouts(dc_session_t *s, bool local, dc_error_t *err);
/* Undoes dc_session_set_timeouts(s, false) after an autocommit script: statement_timeout back
 * to the server's; lock_timeout kept for the runner's own statements. */
int dc_session_reset_timeouts(dc_session_t *s, dc_error_t *err);
/* Sleeps before retry number `attempt` (1, 2, ...): retry_backoff_ms doubled each time. */
void dc_session_backoff(const dc_migrate_opts_t *opts, int attempt);

#endif
