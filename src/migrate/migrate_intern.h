/* Private to src/migrate/: the history table's writes, shared by the runner's commands.
 * Callers outside the module use include/deployctl/migrate.h. */
#ifndef DEPLOYCTL_MIGRATE_INTERN_H
#define DEPLOYCTL_MIGRATE_INTERN_H

#include <libpq-fe.h>

#include "deployctl/migrate.h"

/* The schema the history lives in: ?schema=, else public. */
const char *dc_history_schema(const char *schema);
/* "schema"."_prisma_migrations", quoted (caller frees). */
char *dc_history_table(PGconn *conn, const char *schema);
/* Creates the schema and the table with Prisma's DDL when missing. */
int dc_history_ensure(PGconn *conn, const char *schema, dc_error_t *err);
/* Refuses (exit 4, nothing written) when <schema> has no _prisma_migrations but holds tables,
 * views or enums (as Prisma's P3005): deploying there would run the first migration against a
 * schema it did not create. The message explains baselining with `resolve --applied`. */
int dc_history_require_baseline(PGconn *conn, const char *schema, dc_error_t *err);
/* A random UUID v4, as Prisma's ids are. */
void dc_history_new_id(char out[37]);
/* The row Prisma writes (and commits) before running a migration; its new id in id. */
int dc_history_insert(PGconn *conn, const char *table, const dc_migration_t *m, char id[37],
                      dc_error_t *err);
/* Success: finished_at = now(), applied_steps_count = 1. */
int dc_history_finish(PGconn *conn, const char *table, const char *id, dc_error_t *err);
/* Failure: the error in logs (NULL: none), finished_at left as it is. */
int dc_history_fail(PGconn *conn, const char *table, const char *id, const char *logs,
                    dc_error_t *err);
int dc_history_roll_back(PGconn *conn, const char *table, const char *id, dc_error_t *err);
/* A finished row for a migration that was not run (resolve --applied). */
int dc_history_record_applied(PGconn *conn, const char *table, const dc_migration_t *m,
                              dc_error_t *err);

#endif
