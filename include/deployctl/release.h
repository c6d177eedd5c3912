/* `deployctl release`, `recover` and `history`: the deploy as a transaction. Phases (precheck,
 * pre-release and maintenance-on hooks, backup, migrate, verify, deploy hook, smoke,
 * maintenance-off and post-release hooks) each journaled before they take effect; any failure
 * after something changed is compensated in reverse order (the rollback hook when the app was
 * deployed, then down.sql or a restore of the pre-release snapshot when a migration committed).
 * One release at a time per database (advisory lock + a local lock file). A release that died
 * leaves an unfinished journal that `recover` finishes or undoes by the same decision tree. */
#ifndef DEPLOYCTL_RELEASE_H
#define DEPLOYCTL_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployctl/backup.h"
#include "deployctl/check.h"
#include "deployctl/error.h"
#include "deployctl/migrate.h"
#include "deployctl/rehearse.h"
#include "deployctl/store.h"

/* What to do with migrations that committed when a release fails (release.on_failure). */
typedef enum {
    DC_ON_FAILURE_AUTO,    /* down.sql when every applied migration is additive and has one */
    DC_ON_FAILURE_RESTORE, /* restore the pre-release snapshot */
    DC_ON_FAILURE_DOWN,    /* down.sql (fails when one is missing) */
    DC_ON_FAILURE_NONE,    /* leave the database as it is (exit 3: an operator decides) */
} dc_on_failure_t;

int dc_on_failure_parse(const char *text, dc_on_failure_t *out);
const char *dc_on_failure_name(dc_on_failure_t p);

typedef struct dc_release_opts {
    const char *database_url; /* libpq form */
    const char *database;     /* its name: journals, snapshots, DEPLOYCTL_DATABASE */
    /* The application's pooled URL (libpq form), or NULL: SQL smoke checks run through it, as
     * the application's queries do. Migrations, backups and verification stay direct. */
    const char *pooled_url;
    const char *state_dir;
    dc_store_t *store;
    dc_backup_opts_t backup;   /* database_url and store are filled in by the release */
    const dc_key_t *key;       /* reads encrypted snapshots (verify, restore); NULL: none */
    dc_migrate_opts_t migrate; /* the runner's settings (dir, timeouts, external command) */
    dc_check_opts_t check;     /* the precheck */
    const char *hooks_dir;     /* NULL: no hooks */
    uint64_t hook_timeout_ms;
    const char *const *smoke_urls; /* HTTP checks, 2xx passes */
    size_t smoke_url_count;
    uint64_t smoke_window_ms;
    const char *smoke_queries_dir;  /* SQL smoke checks, or NULL */
    const char *verify_queries_dir; /* verification queries, or NULL */
    double row_tolerance_pct;       /* row counts may move this much (and 10 rows) */
    dc_on_failure_t on_failure;
    /* --on-failure was on the command line: recover uses it instead of the policy the
     * release recorded in its journal (otherwise the release's own policy decides). */
    bool on_failure_explicit;
    bool dry_run;
    const char *report_path;    /* JSON report (NULL: in the state directory) */
    const char *report_md_path; /* Markdown (NULL: report_path with .md) */
    uint64_t lock_timeout_ms;   /* restore's wait for table locks */
    const char *maintenance_work_mem;
    /* release --rehearse: the pending migrations are rehearsed on the release's own pre-release
     * snapshot before they touch production (ref, store, database and key are the release's);
     * a threshold crossed or a failed migration refuses the release (exit 4). NULL: none. */
    const dc_rehearse_opts_t *rehearse;
} dc_release_opts_t;

typedef struct dc_release_result {
    char id[32];
    int exit_code; /* DC_EXIT_OK, _ROLLED_BACK, _ROLLBACK_FAILED, _PRECHECK, _LOCKED */
    char outcome[32];
    char summary[DC_ERROR_MAX];
    char report_path[1024];
    char report_md_path[1024];
} dc_release_result_t;

/* Runs the release. Returns 0 when it ran to an outcome (result->exit_code says which, and
 * result->summary in one line), -1 when it could not start (err; nothing changed). */
int dc_release_run(const dc_release_opts_t *opts, dc_release_result_t *result, dc_error_t *err);

/* --dry-run: the precheck and lint of the pending migrations, and the plan (phases, hooks
 * found, migrations with their class and down.sql, how a failure would be undone) as text in
 * *plan (caller frees). Changes nothing. Returns 0 with *refused set when a check failed. */
int dc_release_plan(const dc_release_opts_t *opts, char **plan, bool *refused, dc_error_t *err);

/* Finds the unfinished release of opts->database (journal without an end, or one whose
 * rollback failed) and finishes or undoes it. result->exit_code as for a release; "nothing to
 * recover" is exit 0 with outcome "none". */
int dc_release_recover(const dc_release_opts_t *opts, dc_release_result_t *result, dc_error_t *err);

/* Prints the releases of a database (text, or a JSON array with json), oldest first. */
int dc_release_history(const char *state_dir, const char *database, bool json, dc_error_t *err);

#endif
