/* `deployctl release --dry-run`: what a release would do, decided from the same inputs, with
 * nothing changed: no lock, no journal, no snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/hooks.h"
#include "deployctl/lint.h"
#include "deployctl/util.h"
#include "release_intern.h"

static void plan_checks(const dc_release_opts_t *o, dc_buf_t *b, bool *refused)
{
    dc_check_report_t report;
    dc_error_t e;
    if (dc_check_run(&o->check, &report, &e) != 0) {
        dc_buf_appendf(b, "precheck: cannot run: %s\n", e.message);
        *refused = true;
        return;
    }
    dc_buf_appendf(b, "precheck: %s\n", dc_check_status_name(report.verdict));
    for (size_t i = 0; i < report.count; i++) {
        const dc_check_result_t *c = &report.results[i];
        if (c->status == DC_CHECK_FAILED || c->status == DC_CHECK_WARNING)
            dc_buf_appendf(b, "  %s %s: %s\n", dc_check_status_name(c->status), c->name, c->detail);
        *refused = *refused || c->status == DC_CHECK_FAILED;
    }
    dc_check_report_free(&report);
}

/* The pending migrations with their class; whether auto would undo them by down.sql. */
static void plan_migrations(const dc_release_opts_t *o, dc_buf_t *b, bool *down_ok)
{
    dc_migration_set_t set;
    dc_history_t hist;
    dc_migrate_status_t st;
    dc_error_t e;
    *down_ok = true;
    if (dc_migrate_status(&o->migrate, &set, &hist, &st, &e) != 0) {
        dc_buf_appendf(b, "migrations: cannot read: %s\n", e.message);
        *down_ok = false;
        return;
    }
    dc_buf_appendf(b, "migrations to apply: %zu%s\n", st.pending,
                   o->migrate.external_command ? " (by migrate.command)" : "");
    for (size_t i = 0; i < st.count; i++) {
        const dc_migration_status_t *m = &st.entries[i];
        if (m->state != DC_MIG_PENDING)
            continue;
        dc_lint_result_t lr;
        dc_lint_result_init(&lr);
        bool linted =
            dc_lint_migration(o->migrate.dir, m->name, &lr, &e) == 0 && lr.migration_count == 1;
        dc_lint_class_t cls = linted ? lr.migrations[0].cls : DC_LINT_DESTRUCTIVE;
        bool has_down = m->local && m->local->down_sql;
        dc_buf_appendf(b, "  %s: %s, %s, lint: %zu error(s), %zu warning(s)\n", m->name,
                       linted ? dc_lint_class_name(cls) : "unparsable",
                       has_down ? "down.sql" : "no down.sql", lr.errors, lr.warnings);
        *down_ok = *down_ok && has_down && cls == DC_LINT_ADDITIVE;
        dc_lint_result_free(&lr);
    }
    dc_migrate_status_free(&st);
    dc_history_free(&hist);
    dc_migrate_set_free(&set);
}

static void plan_hooks(const dc_release_opts_t *o, dc_buf_t *b)
{
    dc_buf_appendf(b, "hooks (%s):", o->hooks_dir ? o->hooks_dir : "none");
    for (int h = 0; h < DC_HOOK_COUNT; h++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", o->hooks_dir ? o->hooks_dir : "",
                 dc_hook_name((dc_hook_t)h));
        bool there = o->hooks_dir && access(path, F_OK) == 0;
        dc_buf_appendf(b, " %s%s", dc_hook_name((dc_hook_t)h), there ? "" : " (absent)");
    }
    dc_buf_appendf(b, "\n");
}

int dc_release_plan(const dc_release_opts_t *o, char **plan, bool *refused, dc_error_t *err)
{
    (void)err;
    dc_buf_t b = {0};
    *refused = false;
    dc_buf_appendf(&b, "release plan for %s (dry run: nothing is changed)\n", o->database);
    plan_checks(o, &b, refused);
    bool down_ok;
    plan_migrations(o, &b, &down_ok);
    plan_hooks(o, &b);
    dc_buf_appendf(
        &b,
        "phases: precheck, pre-release, maintenance-on, backup (tag release, "
        "verified), %smigrate, verify, deploy, smoke (%zu URL(s)%s, window %llu s), "
        "maintenance-off, post-release, notify\n",
        o->rehearse != NULL ? "rehearse (on that snapshot), " : "", o->smoke_url_count,
        o->smoke_queries_dir != NULL
            ? (o->pooled_url != NULL ? " and SQL checks through the pooled URL" : " and SQL checks")
            : "",
        (unsigned long long)(o->smoke_window_ms / 1000));
    const char *how = o->on_failure == DC_ON_FAILURE_NONE      ? "leave the database as it is"
                      : o->on_failure == DC_ON_FAILURE_RESTORE ? "restore the pre-release snapshot"
                      : o->on_failure == DC_ON_FAILURE_DOWN    ? "run the down.sql files"
                      : down_ok ? "run the down.sql files (every migration is additive with one)"
                                : "restore the pre-release snapshot (not every migration is "
                                  "additive with a down.sql)";
    dc_buf_appendf(&b, "on failure (%s): rollback hook if deployed, then %s\n",
                   dc_on_failure_name(o->on_failure), how);
    dc_buf_appendf(&b, "verdict: %s\n", *refused ? "REFUSED by the precheck (exit 4)" : "ready");
    *plan = b.data;
    return 0;
}
