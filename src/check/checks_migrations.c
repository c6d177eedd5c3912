/* The migrations check: failed, pending, edited and missing migrations, as the migrate module
 * classifies them (`deployctl migrate status`): its reader of the migration directory, its read
 * of _prisma_migrations on the check's connection, its line-ending-insensitive checksums.
 * Mapping: failed -> failed, edited or missing locally -> warning, pending -> ok (listed). */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "check_intern.h"
#include "deployctl/migrate.h"
#include "deployctl/util.h"
#include "needs.h"

#define NAME  "migrations"
#define TITLE "Migrations"

/* A directory that is not there (as opposed to one migrate cannot read). */
static bool dir_missing(const char *dir)
{
    struct stat st;
    return stat(dir, &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

/* One item per migration that is not applied: failed, missing and edited ones first, then the
 * pending ones (a failed one is listed as failed, not again as pending). */
static void list_entries(dc_check_result_t *res, const dc_migrate_status_t *st)
{
    for (size_t i = 0; i < st->count; i++) {
        const dc_migration_status_t *e = &st->entries[i];
        switch (e->state) {
        case DC_MIG_FAILED:
            dc_check_raise(res, DC_CHECK_FAILED);
            dc_check_add_item(res,
                              "%s: %s (%.160s); resolve it (prisma migrate resolve) "
                              "before deploying",
                              dc_migrate_state_name(e->state), e->name,
                              e->row->logs != NULL && *e->row->logs ? e->row->logs : "no log");
            break;
        case DC_MIG_MISSING_LOCALLY:
            dc_check_raise(res, DC_CHECK_WARNING);
            dc_check_add_item(res, "applied but missing locally: %s", e->name);
            break;
        case DC_MIG_EDITED:
            dc_check_raise(res, DC_CHECK_WARNING);
            dc_check_add_item(res, "edited after it was applied: %s", e->name);
            break;
        case DC_MIG_APPLIED:
        case DC_MIG_PENDING:
            break;
        }
    }
    for (size_t i = 0; i < st->count; i++) {
        if (st->entries[i].state == DC_MIG_PENDING)
            dc_check_add_item(res, "%s: %s", dc_migrate_state_name(DC_MIG_PENDING),
                              st->entries[i].name);
    }
}

/* What the pending migrations need of the role, in the order they would run (the privileges
 * check judges it). */
static void collect_needs(dc_check_ctx_t *ctx, const dc_migrate_status_t *st)
{
    ctx->needs = dc_calloc(1, sizeof(dc_needs_t));
    for (size_t i = 0; i < st->count && ctx->needs_error == NULL; i++) {
        const dc_migration_status_t *e = &st->entries[i];
        dc_error_t err;
        if (e->state == DC_MIG_PENDING && e->local != NULL &&
            dc_needs_collect(ctx->needs, e->name, e->local->sql, &err) != 0)
            ctx->needs_error = dc_strdup(err.message);
    }
}

void dc_check_migrations(dc_check_ctx_t *ctx)
{
    if (ctx->conn == NULL) {
        dc_check_skip_no_connection(ctx, NAME, TITLE);
        return;
    }
    const char *dir = ctx->opts->migrations_dir;
    dc_error_t err;
    dc_migration_set_t set;
    if (dir_missing(dir)) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_WARNING,
                     "no migrations directory at %s: give it with --migrations DIR", dir);
        return;
    }
    /* What `migrate deploy` would refuse too: another provider in migration_lock.toml, an
     * unreadable directory or file, a directory without migration.sql. */
    if (dc_migrate_read_dir(dir, &set, &err) != 0) {
        dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_FAILED, "%s", err.message);
        return;
    }
    dc_history_t history;
    if (dc_history_read(ctx->conn, ctx->prisma_schema, &history, &err) != 0) {
        if (dc_check_timed_out(&err))
            dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_WARNING,
                         "not checked: another session locks the migration history table "
                         "(the locks check names it): %s",
                         err.message);
        else
            dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_FAILED, "%s", err.message);
        dc_migrate_set_free(&set);
        return;
    }
    dc_migrate_status_t st;
    dc_migrate_classify(&set, &history, &st);
    dc_check_result_t *res = dc_check_add(ctx->report, NAME, TITLE, DC_CHECK_OK,
                                          "%zu in %s: %zu pending, %zu failed, %zu edited",
                                          set.count, dir, st.pending, st.failed, st.edited);
    if (!dc_migrate_up_to_date(&st))
        list_entries(res, &st);
    ctx->pending_count = (long)st.pending;
    ctx->history_exists = history.exists;
    collect_needs(ctx, &st);
    dc_migrate_status_free(&st);
    dc_history_free(&history);
    dc_migrate_set_free(&set);
}
