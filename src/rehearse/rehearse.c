/* The rehearsal: snapshot -> scratch database -> the real runner, measured -> verdicts -> the
 * scratch database dropped, whatever happened (a failed migration, a stop signal). */
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/lint.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "rehearse_intern.h"

/* deployctl_rehearse_<database>_<random>: says whose copy a leftover is (the database's name
 * in lower case, letters, digits and _ only, at most 24 of them), and is never the name of a
 * database that is already there (the restore must create it, or it does not run). */
static void scratch_name(const char *production_url, char *out, size_t size)
{
    char database[128] = "", label[25] = "";
    dc_error_t ignored;
    if (dc_pg_url_database(production_url, database, sizeof(database), &ignored) != 0)
        database[0] = '\0';
    size_t n = 0;
    for (const char *c = database; *c != '\0' && n < sizeof(label) - 1; c++) {
        char lower = (char)tolower((unsigned char)*c);
        if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '_')
            label[n++] = lower;
    }
    label[n] = '\0';
    uint8_t rnd[4] = {0};
    char hex[9];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memcpy(rnd, &(uint32_t){(uint32_t)getpid()}, sizeof(rnd));
    dc_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(out, size, "deployctl_rehearse_%s%s%s", label, n > 0 ? "_" : "", hex);
}

/* The server instance (port and start time) and database a connection reaches. */
static int server_identity(const char *url, const char *database, char *out, size_t size,
                           dc_error_t *err)
{
    char *conninfo = database ? dc_pg_url_with_database(url, database) : dc_strdup(url);
    PGconn *conn = NULL;
    int rc = dc_pg_connect(conninfo, "rehearse", &conn, err);
    free(conninfo);
    if (rc != 0)
        return -1;
    rc = dc_pg_instance(conn, false, out, size, err);
    PQfinish(conn);
    return rc;
}

/* --scratch must never be the production database: same server instance and same name is
 * refused, however the URLs spell the host. */
static int refuse_production(const dc_rehearse_opts_t *opts, dc_error_t *err)
{
    char prod_db[256], scratch_db[256], prod_id[128], scratch_id[128];
    if (dc_pg_url_database(opts->production_url, prod_db, sizeof(prod_db), err) != 0 ||
        dc_pg_url_database(opts->scratch_url, scratch_db, sizeof(scratch_db), err) != 0)
        return -1;
    if (strcmp(prod_db, scratch_db) != 0)
        return 0;
    if (server_identity(opts->production_url, NULL, prod_id, sizeof(prod_id), err) != 0 ||
        server_identity(opts->scratch_url, "postgres", scratch_id, sizeof(scratch_id), err) != 0)
        return dc_error_prefix(err, "cannot tell whether --scratch is the production database: ");
    if (strcmp(prod_id, scratch_id) == 0)
        return dc_error_set(err,
                            "--scratch names the production database (%s on the same server): "
                            "give a database that does not exist yet, it is created and dropped",
                            scratch_db);
    return 0;
}

static void add_lint(dc_rehearse_stmt_t *s, const dc_lint_finding_t *f)
{
    s->lint = dc_realloc(s->lint, (s->lint_count + 1) * sizeof(char *));
    s->lint[s->lint_count++] =
        dc_sprintf("%s%s: %s", f->rule->id, f->allowed ? " (allowed)" : "", f->message);
}

/* Lint's findings beside the measured statements, matched by migration file and line. */
static void attach_lint(dc_rehearse_result_t *r, const char *dir)
{
    for (size_t i = 0; i < r->count; i++) {
        if (i > 0 && strcmp(r->stmts[i].migration, r->stmts[i - 1].migration) == 0)
            continue;
        dc_lint_result_t lr;
        dc_lint_result_init(&lr);
        dc_error_t ignored;
        if (dc_lint_migration(dir, r->stmts[i].migration, &lr, &ignored) == 0) {
            size_t len = strlen(r->stmts[i].migration);
            for (size_t f = 0; f < lr.count; f++) {
                const dc_lint_finding_t *fi = &lr.findings[f];
                for (size_t k = i; k < r->count; k++) {
                    dc_rehearse_stmt_t *s = &r->stmts[k];
                    if (strcmp(s->migration, r->stmts[i].migration) == 0 && s->line == fi->line &&
                        strncmp(fi->file, s->migration, len) == 0)
                        add_lint(s, fi);
                }
            }
        }
        dc_lint_result_free(&lr);
    }
}

static void copy_report(dc_rehearse_result_t *r, const dc_migrate_report_t *report)
{
    r->applied = dc_calloc(report->applied_count + 1, sizeof(char *));
    for (size_t i = 0; i < report->applied_count; i++)
        r->applied[i] = dc_strdup(report->applied[i]);
    r->applied_count = report->applied_count;
    if (report->failed != NULL)
        r->failed = dc_strdup(report->failed);
}

/* The pending migrations through the real runner, watched. */
static int migrate_measured(const dc_rehearse_opts_t *opts, const char *scratch,
                            dc_rehearse_result_t *result, dc_error_t *err)
{
    rh_observer_t o;
    if (rh_observer_start(&o, scratch, opts->sample_ms, result, err) != 0) {
        rh_observer_free(&o);
        return -1;
    }
    dc_migrate_observer_t observer = {.before = rh_before, .after = rh_after, .ctx = &o};
    dc_migrate_opts_t mo = opts->migrate;
    mo.url = scratch;
    mo.prisma_url = NULL;
    mo.external_command = NULL; /* only the native runner can be measured */
    mo.observer = &observer;
    dc_migrate_report_t report;
    dc_error_t merr;
    dc_error_clear(&merr);
    int rc = dc_migrate_deploy(&mo, &report, &merr);
    rh_observer_finish(&o);
    rh_observer_free(&o);
    copy_report(result, &report);
    dc_migrate_report_free(&report);
    if (rc != 0 && dc_signal_received(NULL))
        return dc_error_set(err, "rehearsal interrupted: %s", merr.message);
    if (rc != 0) {
        /* The server's message can quote the statement, password literal included. */
        char clean[DC_ERROR_MAX * 2];
        dc_redact(merr.message, clean, sizeof(clean));
        result->failure = dc_strdup(clean);
        if (result->failed == NULL)
            result->failed = dc_strdup("(before the first migration)");
    }
    return 0;
}

int dc_rehearse_run(const dc_rehearse_opts_t *opts, dc_rehearse_result_t *result, dc_error_t *err)
{
    memset(result, 0, sizeof(*result));
    result->max_lock_ms = opts->max_lock_ms;
    double t0 = dc_now_seconds();
    char *scratch;
    if (opts->scratch_url != NULL) {
        if (refuse_production(opts, err) != 0)
            return -1;
        scratch = dc_strdup(opts->scratch_url);
        dc_pg_url_database(scratch, result->scratch, sizeof(result->scratch), err);
    } else {
        scratch_name(opts->production_url, result->scratch, sizeof(result->scratch));
        scratch = dc_pg_url_with_database(opts->production_url, result->scratch);
    }
    dc_backup_opts_t no_backup = {0};
    dc_restore_opts_t ro = {
        .store = opts->store,
        .database = opts->database,
        .ref = opts->ref,
        .target_url = scratch,
        .create_target = true,
        .require_new_target = true, /* never overwrite, so dropping it is always right */
        .jobs = 1,
        .yes = true,
        .lock_timeout_ms = 30000,
        .maintenance_work_mem = opts->maintenance_work_mem,
        .backup = &no_backup,
        .key = opts->key,
        .on_created = opts->on_scratch,
        .created_ctx = opts->scratch_ctx,
    };
    dc_log_info("rehearse: restoring snapshot %s into scratch database %s", opts->ref,
                result->scratch);
    dc_restore_result_t restored;
    memset(&restored, 0, sizeof(restored));
    int rc = dc_restore_run(&ro, &restored, err);
    snprintf(result->snapshot, sizeof(result->snapshot), "%s", restored.id);
    result->restore_seconds = restored.seconds;
    if (rc != 0)
        dc_error_prefix(err, "rehearse: restoring snapshot %s into a scratch database failed: ",
                        restored.id[0] ? restored.id : opts->ref);
    if (rc == 0)
        rc = migrate_measured(opts, scratch, result, err);
    /* Ours when the restore created it: it always goes, also after a failure or a signal. */
    if (restored.created_target) {
        dc_error_t drop;
        if (dc_pg_drop_database(scratch, "rehearse", &drop) != 0)
            dc_log_warn("%s: the scratch database is left behind, drop it by hand", drop.message);
        else
            result->scratch_dropped = true;
    }
    free(scratch);
    if (rc == 0) {
        attach_lint(result, opts->migrate.dir);
        rh_judge(result, opts->max_lock_ms);
    }
    result->seconds = dc_now_seconds() - t0;
    return rc;
}

void dc_rehearse_result_free(dc_rehearse_result_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        dc_rehearse_stmt_t *s = &r->stmts[i];
        free(s->migration);
        free(s->file);
        free(s->text);
        free(s->rows);
        for (size_t k = 0; k < s->lock_count; k++)
            free(s->locks[k].relation);
        free(s->locks);
        for (size_t k = 0; k < s->rewrite_count; k++)
            free(s->rewrites[k].relation);
        free(s->rewrites);
        for (size_t k = 0; k < s->index_count; k++)
            free(s->indexes[k].relation);
        free(s->indexes);
        for (size_t k = 0; k < s->lint_count; k++)
            free(s->lint[k]);
        free(s->lint);
        free(s->verdict);
    }
    free(r->stmts);
    for (size_t i = 0; i < r->applied_count; i++)
        free(r->applied[i]);
    free(r->applied);
    free(r->failed);
    free(r->failure);
    memset(r, 0, sizeof(*r));
}
