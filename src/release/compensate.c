/* Compensation, the seed's rollback decision tree, in reverse order of the release: if the
 * application was deployed, the rollback hook (the hosting platform's rollback); then, if a
 * migration committed, its down.sql files (release.on_failure down, or auto when every applied
 * migration is additive and has one) or a restore of the pre-release snapshot (restore takes a
 * pre-restore snapshot first, so nothing the new application wrote is lost); a migration that
 * failed inside its own transaction changed nothing and is resolved as rolled back. What was
 * done is decided from the journal and the database's history table, never from memory, so
 * `recover` runs the same code after a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/lint.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/restore.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "release_intern.h"

typedef struct undo {
    json_t *applied;   /* migrations committed since the snapshot, oldest first */
    json_t *resolved;  /* failed in their transaction: resolved as rolled back */
    bool need_restore; /* a failed migration ran outside a transaction */
    json_t *missing;   /* committed by this release, not in the migrations directory */
    char db_state[1024];
    char method[16]; /* "down", "restore", "" */
} undo_t;

static bool in_before(const rel_t *r, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(r->st.before, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

static bool runs_in_transaction(const dc_migration_t *m)
{
    dc_migrate_script_t script;
    dc_error_t e;
    if (m == NULL || dc_migrate_parse_script(m->sql, m->name, &script, &e) != 0)
        return false;
    bool tx = !script.needs_autocommit;
    dc_migrate_script_free(&script);
    return tx;
}

/* Reads the history: what committed since the snapshot; resolves what failed harmlessly. */
static int survey(rel_t *r, undo_t *u, dc_error_t *err)
{
    dc_migration_set_t set;
    dc_history_t hist;
    dc_migrate_status_t st;
    if (dc_migrate_status(&r->o->migrate, &set, &hist, &st, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < st.count && rc == 0; i++) {
        const dc_migration_status_t *e = &st.entries[i];
        if (in_before(r, e->name))
            continue;
        if (e->state == DC_MIG_APPLIED || e->state == DC_MIG_EDITED) {
            json_array_append_new(u->applied, json_string(e->name));
        } else if (e->state == DC_MIG_FAILED && runs_in_transaction(e->local)) {
            rc = dc_migrate_resolve(&r->o->migrate, e->name, DC_RESOLVE_ROLLED_BACK, err);
            json_array_append_new(u->resolved, json_string(e->name));
        } else if (e->state == DC_MIG_FAILED) {
            u->need_restore = true; /* it ran statement by statement: some may have stayed */
        } else if (e->state == DC_MIG_MISSING_LOCALLY) {
            /* recover from another checkout: the history says this release applied it (it
             * is not in the snapshot's list); without its files there is no down.sql */
            json_array_append_new(u->applied, json_string(e->name));
            json_array_append_new(u->missing, json_string(e->name));
            u->need_restore = true;
        }
    }
    dc_migrate_status_free(&st);
    dc_history_free(&hist);
    dc_migrate_set_free(&set);
    return rc;
}

/* auto: down when every applied migration is additive and has a down.sql. */
static bool down_possible(rel_t *r, const json_t *applied, bool need_additive)
{
    size_t i;
    json_t *v;
    json_array_foreach(applied, i, v)
    {
        const char *name = json_string_value(v);
        dc_migration_t m;
        dc_error_t e;
        if (dc_migrate_read_one(r->o->migrate.dir, name, NULL, &m, &e) != 0)
            return false;
        bool has_down = m.down_sql != NULL;
        dc_migration_free(&m);
        if (!has_down)
            return false;
        if (!need_additive)
            continue;
        dc_lint_result_t lr;
        dc_lint_result_init(&lr);
        bool additive = dc_lint_migration(r->o->migrate.dir, name, &lr, &e) == 0 &&
                        lr.migration_count == 1 && lr.migrations[0].cls == DC_LINT_ADDITIVE;
        dc_lint_result_free(&lr);
        if (!additive)
            return false;
    }
    return true;
}

static int undo_down(rel_t *r, undo_t *u, dc_error_t *err)
{
    dc_migrate_report_t rep;
    int rc = dc_migrate_down(&r->o->migrate, NULL, (int)json_array_size(u->applied), &rep, err);
    dc_migrate_report_free(&rep);
    if (rc == 0)
        snprintf(u->db_state, sizeof(u->db_state),
                 "as before the release: %zu migration(s) undone by their down.sql (rows written "
                 "meanwhile kept)",
                 json_array_size(u->applied));
    return rc;
}

static const dc_manifest_table_t *find_table(const dc_manifest_t *m, const dc_manifest_table_t *t)
{
    for (size_t i = 0; i < m->table_count; i++) {
        if (strcmp(m->tables[i].schema, t->schema) == 0 && strcmp(m->tables[i].name, t->name) == 0)
            return &m->tables[i];
    }
    return NULL;
}

/* What the restore took out of the live database: per table, the rows the pre-restore snapshot
 * holds beyond the pre-release one (written during the release; a lower bound, as updates do not
 * show in a count). Into the report ("rows_only_in_pre_restore") and *text. */
static void rows_removed(rel_t *r, const char *pre_restore, dc_buf_t *text)
{
    dc_manifest_t *before = NULL, *after = NULL;
    char dbdir[256];
    dc_error_t e;
    if (dc_catalog_load(r->o->store, r->o->database, r->st.snapshot, &before, dbdir, &e) != 0 ||
        dc_catalog_load(r->o->store, r->o->database, pre_restore, &after, dbdir, &e) != 0) {
        dc_log_warn("release %s: cannot compare the snapshots' row counts: %s", r->id, e.message);
        dc_manifest_free(before);
        return;
    }
    json_t *removed = json_object();
    for (size_t i = 0; i < after->table_count; i++) {
        const dc_manifest_table_t *t = &after->tables[i];
        const dc_manifest_table_t *was = find_table(before, t);
        uint64_t then = was ? was->rows : 0;
        /* The history table's new rows are the release's own migrations, not the app's writes. */
        if (t->rows <= then || strcmp(t->name, "_prisma_migrations") == 0)
            continue;
        char *name = dc_sprintf("%s.%s", t->schema, t->name);
        json_object_set_new(removed, name, json_integer((json_int_t)(t->rows - then)));
        dc_buf_appendf(text, "%s%s %llu", text->len ? ", " : "", name,
                       (unsigned long long)(t->rows - then));
        free(name);
    }
    json_object_set_new(r->report, "rows_only_in_pre_restore", removed);
    dc_manifest_free(before);
    dc_manifest_free(after);
}

static int undo_restore(rel_t *r, undo_t *u, dc_error_t *err)
{
    if (r->st.snapshot[0] == '\0')
        return dc_error_set(err, "no pre-release snapshot to restore");
    dc_backup_opts_t b = r->o->backup;
    b.database_url = r->o->database_url;
    b.store = r->o->store;
    dc_restore_opts_t ro = {
        .store = r->o->store,
        .database = r->o->database,
        .ref = r->st.snapshot,
        .target_url = r->o->database_url,
        .jobs = 1,
        .yes = true,
        .safety_snapshot = true,
        .lock_timeout_ms = r->o->lock_timeout_ms,
        .maintenance_work_mem = r->o->maintenance_work_mem,
        .backup = &b,
        .key = r->o->key,
    };
    dc_restore_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = dc_restore_run(&ro, &res, err);
    if (res.safety_id[0]) {
        json_object_set_new(r->report, "pre_restore_snapshot", json_string(res.safety_id));
        snprintf(r->st.pre_restore, sizeof(r->st.pre_restore), "%s", res.safety_id);
    }
    dc_buf_t removed = {0};
    if (rc == 0 && res.safety_id[0])
        rows_removed(r, res.safety_id, &removed);
    if (rc == 0)
        snprintf(u->db_state, sizeof(u->db_state),
                 "as before the release: snapshot %s restored; what the database held just "
                 "before is in pre-restore snapshot %s%s%s%s",
                 r->st.snapshot, res.safety_id[0] ? res.safety_id : "(none: it was empty)",
                 removed.len ? " (rows written during the release, now only there: " : "",
                 removed.len ? removed.data : "", removed.len ? ")" : "");
    dc_buf_free(&removed);
    return rc;
}

static void comp_step(rel_t *r, const char *step, const char *status, const char *detail)
{
    json_t *o = json_pack("{s:s, s:s}", "step", step, "status", status);
    if (detail != NULL)
        json_object_set_new(o, "detail", json_string(detail));
    json_array_append_new(json_object_get(r->report, "compensation"), o);
}

/* A compensation step's journal line; when it cannot be written the step must not run. */
static int journal_step(rel_t *r, const char *step, const char *status, const char *method,
                        dc_error_t *err)
{
    dc_error_t e;
    json_t *ev =
        json_pack("{s:s, s:s, s:s}", "event", "compensate", "step", step, "status", status);
    if (method != NULL)
        json_object_set_new(ev, "method", json_string(method));
    if (r->st.pre_restore[0])
        json_object_set_new(ev, "pre_restore", json_string(r->st.pre_restore));
    if (rel_event(r, ev, &e) != 0) {
        dc_log_error("%s", e.message);
        if (err != NULL)
            *err = e;
        return -1;
    }
    return 0;
}

dc_on_failure_t rel_policy(rel_t *r)
{
    dc_on_failure_t recorded;
    if (r->o->on_failure_explicit || dc_on_failure_parse(r->st.on_failure, &recorded) != 0)
        return r->o->on_failure;
    return recorded;
}

/* recover --on-failure X for a release that recorded Y: the operator's decision, said aloud. */
static void note_override(rel_t *r, dc_on_failure_t policy)
{
    dc_on_failure_t recorded;
    if (dc_on_failure_parse(r->st.on_failure, &recorded) != 0 || recorded == policy)
        return;
    dc_log_warn("release %s: on_failure %s given explicitly overrides the release's own %s", r->id,
                dc_on_failure_name(policy), r->st.on_failure);
    json_object_set_new(
        r->report, "on_failure_override",
        json_pack("{s:s, s:s}", "recorded", r->st.on_failure, "used", dc_on_failure_name(policy)));
}

/* Undoes the database; fills u->db_state either way. */
static int undo_database(rel_t *r, undo_t *u, dc_error_t *err)
{
    if (!r->st.migrate_started || r->st.db_undone) {
        snprintf(u->db_state, sizeof(u->db_state), "%s",
                 r->st.db_undone ? "as before the release (undone earlier)"
                                 : "unchanged: no migration ran");
        return 0;
    }
    if (survey(r, u, err) != 0)
        return -1;
    size_t n = json_array_size(u->applied);
    if (n == 0 && !u->need_restore) {
        snprintf(u->db_state, sizeof(u->db_state), "unchanged: no migration committed%s",
                 json_array_size(u->resolved) ? " (the failed one was resolved as rolled back)"
                                              : "");
        return 0;
    }
    dc_on_failure_t policy = rel_policy(r);
    note_override(r, policy);
    if (policy == DC_ON_FAILURE_NONE)
        return dc_error_set(err,
                            "%zu migration(s) committed and release.on_failure is none: "
                            "left as they are",
                            n);
    bool down =
        !u->need_restore && ((policy == DC_ON_FAILURE_DOWN) ||
                             (policy == DC_ON_FAILURE_AUTO && down_possible(r, u->applied, true)));
    if (policy == DC_ON_FAILURE_DOWN && !down && json_array_size(u->missing) > 0)
        return dc_error_set(err,
                            "migration %s is not in %s, so it has no down.sql (release.on_failure "
                            "is down): recover from the release's checkout, or with "
                            "--on-failure restore",
                            json_string_value(json_array_get(u->missing, 0)),
                            r->o->migrate.dir ? r->o->migrate.dir : "the migrations directory");
    if (policy == DC_ON_FAILURE_DOWN && !down)
        return dc_error_set(err, "a migration ran outside a transaction and failed: down.sql "
                                 "cannot undo it (release.on_failure is down)");
    snprintf(u->method, sizeof(u->method), "%s", down ? "down" : "restore");
    if (rel_lock_check(r, err) != 0 || journal_step(r, "database", "start", u->method, err) != 0)
        return -1;
    int rc = down ? undo_down(r, u, err) : undo_restore(r, u, err);
    if (rc != 0 && down && policy == DC_ON_FAILURE_AUTO) {
        dc_log_warn("release %s: down migration failed (%s); restoring the snapshot instead", r->id,
                    err->message);
        snprintf(u->method, sizeof(u->method), "restore");
        rc = undo_restore(r, u, err);
    }
    return rc;
}

void rel_set_state(rel_t *r, const char *database, const char *application, json_t *manual)
{
    json_object_set_new(r->report, "state",
                        json_pack("{s:s, s:s, s:o}", "database", database, "application",
                                  application, "manual_steps", manual ? manual : json_array()));
    char *line = dc_sprintf("database %s; application %s", database, application);
    json_object_set_new(r->report, "state_summary", json_string(line));
    free(line);
}

static json_t *manual_db_steps(rel_t *r, const undo_t *u)
{
    json_t *m = json_array();
    char *s;
    if (r->st.snapshot[0]) {
        s = dc_sprintf("deployctl restore %s --database <url of %s> --yes   # back to the "
                       "pre-release snapshot",
                       r->st.snapshot, r->o->database);
        json_array_append_new(m, json_string(s));
        free(s);
    }
    if (u != NULL && json_array_size(u->applied) > 0) {
        s = dc_sprintf("deployctl migrate down %zu   # or: undo the %zu migration(s) by their "
                       "down.sql",
                       json_array_size(u->applied), json_array_size(u->applied));
        json_array_append_new(m, json_string(s));
        free(s);
    }
    json_array_append_new(m, json_string("deployctl recover   # retries the rollback and "
                                         "closes the release once it succeeds"));
    return m;
}

/* A rehearsal's scratch database that a killed release left (journaled, never dropped): a copy
 * of production, PII included, so it goes now. One on another server (--scratch) can only go
 * when this run was given that URL; else it is a manual step. */
static void drop_scratch(rel_t *r, json_t *manual)
{
    if (!r->st.scratch[0])
        return;
    const char *server = r->st.scratch_own        ? r->o->database_url
                         : r->o->rehearse != NULL ? r->o->rehearse->scratch_url
                                                  : NULL;
    dc_error_t e;
    dc_error_clear(&e);
    if (server != NULL) {
        char *url = dc_pg_url_with_database(server, r->st.scratch);
        int rc = dc_pg_drop_database(url, "release", &e);
        free(url);
        if (rc == 0) {
            comp_step(r, "scratch", "ok", r->st.scratch);
            rel_event(r,
                      json_pack("{s:s, s:s, s:b}", "event", "scratch_dropped", "database",
                                r->st.scratch, "scratch_dropped", true),
                      &e);
            return;
        }
        dc_log_warn("release %s: %s", r->id, e.message);
    }
    char *step =
        dc_sprintf("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE);   # the rehearsal's "
                   "scratch copy of production, on %s",
                   r->st.scratch, r->st.scratch_own ? "its server" : "the --scratch server");
    comp_step(r, "scratch", "failed", step);
    json_array_append_new(manual, json_string(step));
    free(step);
}

static const char *app_state(const rel_t *r)
{
    if (!r->st.deploy_started)
        return "not deployed (the previous version runs)";
    return "rolled back by the rollback hook (the previous version runs)";
}

/* The rollback hook, when the application may have changed. */
static int undo_application(rel_t *r, char *why, size_t size, dc_error_t *err)
{
    why[0] = '\0';
    if (!r->st.deploy_started || r->st.rollback_hook_done)
        return 0;
    if (!rel_hook_exists(r, DC_HOOK_ROLLBACK)) {
        snprintf(why, size, "the deploy hook ran but there is no rollback hook in %s",
                 r->o->hooks_dir ? r->o->hooks_dir : "(no hooks directory)");
        comp_step(r, "rollback-hook", "failed", why);
        return -1;
    }
    dc_error_t e;
    dc_error_clear(&e);
    if (rel_lock_check(r, err) != 0)
        return -1;
    if (rel_hook(r, DC_HOOK_ROLLBACK, "rolling-back", NULL, &e) != 0) {
        snprintf(why, size, "%s", e.message);
        *err = e;
        comp_step(r, "rollback-hook", "failed", why);
        return -1;
    }
    comp_step(r, "rollback-hook", "ok", "the rollback hook exited 0");
    return 0;
}

/* The state when compensation cannot go on (lock or journal lost): nothing more is done. */
static int comp_stopped(rel_t *r)
{
    rel_set_state(r, r->st.migrate_started ? "UNKNOWN: migrations may have committed" : "unchanged",
                  r->st.deploy_started ? "UNKNOWN: the deploy hook ran" : "not deployed",
                  manual_db_steps(r, NULL));
    return DC_EXIT_ROLLBACK_FAILED;
}

int rel_compensate(rel_t *r, dc_error_t *err)
{
    int signo = 0;
    if (dc_signal_received(&signo)) {
        /* Stopped (a CI job cancelled): undo what was done; a second signal stops the undo
         * too, and `recover` carries it on. */
        dc_log_warn("release %s: interrupted by signal %d: undoing what was done (signal again "
                    "to stop; then run 'deployctl recover')",
                    r->id, signo);
        dc_signal_clear();
    }
    if (json_object_get(r->report, "compensation") == NULL)
        json_object_set_new(r->report, "compensation", json_array());
    if (journal_step(r, "begin", "start", NULL, err) != 0 || rel_lock_check(r, err) != 0)
        return comp_stopped(r);
    char why[DC_ERROR_MAX];
    if (undo_application(r, why, sizeof(why), err) != 0 && (r->lock_lost || r->journal_failed))
        return comp_stopped(r);
    if (why[0] != '\0') {
        /* The database is left as the new version expects it: undoing it under a new
         * application that could not be rolled back would break that application too. */
        char *app = dc_sprintf("UNKNOWN, possibly the new version: the rollback failed (%s)", why);
        json_t *manual = json_array();
        json_array_append_new(manual, json_string("roll the application back on the hosting "
                                                  "platform (the rollback hook failed)"));
        json_t *db_steps = manual_db_steps(r, NULL);
        json_array_extend(manual, db_steps);
        json_decref(db_steps);
        rel_set_state(r,
                      r->st.migrate_started ? "migrated (left so that the new application keeps "
                                              "working)"
                                            : "unchanged",
                      app, manual);
        free(app);
        journal_step(r, "application", "failed", NULL, NULL);
        return DC_EXIT_ROLLBACK_FAILED;
    }
    undo_t u = {.applied = json_array(), .resolved = json_array(), .missing = json_array()};
    dc_error_t e;
    dc_error_clear(&e);
    int rc = undo_database(r, &u, &e);
    json_object_set_new(r->report, "migrations_resolved", json_incref(u.resolved));
    if (rc != 0 && (r->lock_lost || r->journal_failed)) {
        *err = e;
        json_decref(u.applied);
        json_decref(u.resolved);
        json_decref(u.missing);
        return comp_stopped(r);
    }
    json_t *manual = rc != 0 ? manual_db_steps(r, &u) : json_array();
    drop_scratch(r, manual);
    if (rc != 0) {
        comp_step(r, "database", "failed", e.message);
        journal_step(r, "database", "failed", u.method[0] ? u.method : NULL, NULL);
        char *db = dc_sprintf("NOT restored: %s (migrations committed by this release: %zu)",
                              e.message, json_array_size(u.applied));
        rel_set_state(r, db, app_state(r), manual);
        free(db);
    } else {
        comp_step(r, u.method[0] ? u.method : "database", "ok", u.db_state);
        journal_step(r, "database", "ok", u.method[0] ? u.method : NULL, NULL);
        rel_set_state(r, u.db_state, app_state(r), manual);
    }
    json_decref(u.applied);
    json_decref(u.resolved);
    json_decref(u.missing);
    if (r->st.maint_on && !r->st.maint_off_done &&
        rel_hook(r, DC_HOOK_MAINTENANCE_OFF, r->rehearsal_refused ? "refused" : "rolled-back", NULL,
                 &e) != 0)
        dc_log_warn("release %s: maintenance-off hook: %s", r->id, e.message);
    return rc == 0 ? DC_EXIT_ROLLED_BACK : DC_EXIT_ROLLBACK_FAILED;
}

int rel_finish_hooks(rel_t *r, dc_error_t *err)
{
    static const dc_hook_t hooks[] = {DC_HOOK_MAINTENANCE_OFF, DC_HOOK_POST_RELEASE};
    for (size_t i = 0; i < 2; i++) {
        if (hooks[i] == DC_HOOK_MAINTENANCE_OFF && (!r->st.maint_on || r->st.maint_off_done))
            continue;
        json_t *phase = rel_phase_begin(r, dc_hook_name(hooks[i]), err);
        if (phase == NULL)
            return -1;
        dc_error_t e;
        dc_error_clear(&e);
        bool ran = false;
        int rc = rel_hook(r, hooks[i], "released", &ran, &e);
        char *detail =
            rc == 0 ? dc_strdup(ran ? "hook ran" : "no hook")
                    : dc_sprintf("hook failed, ignored (the release is live): %s", e.message);
        if (rc != 0)
            dc_log_warn("release %s: %s", r->id, detail);
        rc = rel_phase_end(r, phase, true, detail, err);
        free(detail);
        if (rc != 0)
            return -1;
    }
    rel_set_state(r, "migrated to this release", "the new version is live", NULL);
    return 0;
}
