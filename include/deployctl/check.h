/* Pre-migration safety checks (`deployctl check`, and the precheck of `release`): is the
 * database reachable directly (not through a pooler), are the migrations in a deployable state,
 * is there a recent snapshot and room for the next one, is anything holding locks the DDL would
 * wait for, are pg_dump and the role's privileges good enough. Each check yields ok, warning or
 * failed with a one-line detail; the verdict is the worst of them. Not for changing anything:
 * every check only reads. */
#ifndef DEPLOYCTL_CHECK_H
#define DEPLOYCTL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "deployctl/error.h"

/* In rising order of gravity (the verdict is the maximum); skipped sits below ok because a
 * check is only skipped when another one, which already failed, made it impossible. */
typedef enum {
    DC_CHECK_SKIPPED = 0,
    DC_CHECK_OK,
    DC_CHECK_WARNING,
    DC_CHECK_FAILED,
} dc_check_status_t;

typedef struct dc_check_result {
    const char *name;  /* stable, for machines: "pooler", "locks", ... (static) */
    const char *title; /* for people: "Direct connection" (static) */
    dc_check_status_t status;
    char *detail; /* one line */
    char **items; /* the things the detail counts (sessions, tables, migrations), one each */
    size_t item_count;
} dc_check_result_t;

typedef struct dc_check_report {
    dc_check_result_t *results; /* in the order they ran */
    size_t count;
    dc_check_status_t verdict;
} dc_check_report_t;

typedef struct dc_check_opts {
    /* The URL as the user gave it, Prisma parameters included (?pgbouncer=true and ?schema=
     * are read from it). */
    const char *database_url;
    const char *pooled_url;    /* the application's pooled URL as given, or NULL (not checked) */
    const char *pooled_origin; /* where it came from ("--pooled-url", "DATABASE_URL", a file) */
    const char *store_url;
    const char *migrations_dir;
    const char *pg_dump_path;        /* NULL: the newest installed */
    uint64_t max_snapshot_age_ms;    /* an older newest snapshot is a warning */
    uint64_t max_transaction_age_ms; /* older transactions holding table locks fail */
    int connections_needed;          /* free connection slots a release needs */
} dc_check_opts_t;

/* The defaults: snapshot 24 h, transactions 5 min, 3 connections. */
void dc_check_opts_init(dc_check_opts_t *opts);

/* Runs every check and fills out (free it with dc_check_report_free). A problem found is a
 * result, not an error: -1 is only returned when the checks cannot run at all (no database
 * URL given). */
int dc_check_run(const dc_check_opts_t *opts, dc_check_report_t *out, dc_error_t *err);
void dc_check_report_free(dc_check_report_t *report);

/* "ok", "warning", "failed", "skipped" */
const char *dc_check_status_name(dc_check_status_t status);
size_t dc_check_report_count(const dc_check_report_t *report, dc_check_status_t status);
/* The worst status of the results (ok for an empty report; skipped counts as ok). */
dc_check_status_t dc_check_report_verdict(const dc_check_report_t *report);

/* Prints one line per check (and an indented line per item), then the verdict, as the seed's
 * pre-migration-check does; `unicode` picks ✅ ⚠️ ❌ over [ok] [warn] [fail]. */
void dc_check_report_print(FILE *out, const dc_check_report_t *report, bool unicode);
/* {"verdict": "...", "checks": [{"name", "title", "status", "detail", "items"}], ...};
 * caller frees. */
char *dc_check_report_to_json(const dc_check_report_t *report);
/* Whether stdout may carry emoji: a UTF-8 locale (LC_ALL, LC_CTYPE or LANG) and NO_COLOR
 * unset. */
bool dc_check_unicode_wanted(void);

/* ---- for tests and the checks themselves ---- */

/* Adds a result to a report (detail formatted); returns it so items can be added. */
dc_check_result_t *dc_check_add(dc_check_report_t *report, const char *name, const char *title,
                                dc_check_status_t status, const char *fmt, ...) DC_PRINTF(5, 6);
void dc_check_add_item(dc_check_result_t *result, const char *fmt, ...) DC_PRINTF(2, 3);
/* Raises a result's status to at least `status`. */
void dc_check_raise(dc_check_result_t *result, dc_check_status_t status);

/* What a database URL says about a pooler before connecting: Prisma's ?pgbouncer=true, or
 * PgBouncer's customary port 6432. NULL when nothing; a static string otherwise. */
const char *dc_check_url_pooler_hint(const char *url);

#endif
