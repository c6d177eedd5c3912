/* `deployctl release`: precheck -> pre-release, maintenance-on hooks -> backup (tag release,
 * verified) -> migrate -> verify -> deploy hook -> smoke -> maintenance-off, post-release hooks
 * -> done, or, on a failure after something changed, compensation (compensate.c). Every phase
 * is journaled before it takes effect (journal.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/lint.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/fault.h"
#include "deployctl/signals.h"
#include "deployctl/smoke.h"
#include "deployctl/util.h"
#include "deployctl/verify.h"
#include "release_intern.h"

int dc_on_failure_parse(const char *text, dc_on_failure_t *out)
{
    static const char *const names[] = {"auto", "restore", "down", "none"};
    for (int i = 0; i < 4; i++) {
        if (text != NULL && strcmp(text, names[i]) == 0) {
            *out = (dc_on_failure_t)i;
            return 0;
        }
    }
    return -1;
}

const char *dc_on_failure_name(dc_on_failure_t p)
{
    static const char *const names[] = {"auto", "restore", "down", "none"};
    return names[p];
}

/* ---- precheck ---- */

static int phase_precheck(rel_t *r, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "precheck", err);
    if (phase == NULL)
        return -1;
    dc_check_report_t report;
    dc_error_t cerr;
    if (dc_check_run(&r->o->check, &report, &cerr) != 0)
        return rel_phase_end(r, phase, false, cerr.message, err) == 0 ? 1 : -1;
    char *text = dc_check_report_to_json(&report);
    json_object_set_new(r->report, "precheck", text ? json_loads(text, 0, NULL) : json_null());
    free(text);
    dc_buf_t failed = {0};
    for (size_t i = 0; i < report.count; i++) {
        const dc_check_result_t *c = &report.results[i];
        if (c->status == DC_CHECK_FAILED)
            dc_buf_appendf(&failed, "%s%s: %s", failed.len ? "; " : "", c->name, c->detail);
    }
    dc_check_report_free(&report);
    int rc = rel_phase_end(r, phase, failed.len == 0,
                           failed.len ? failed.data : "all checks passed", err);
    dc_buf_free(&failed);
    return rc != 0 ? -1 : (r->failed_phase[0] ? 1 : 0);
}

/* ---- backup ---- */

static json_t *manifest_migrations(const dc_manifest_t *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->migration_count; i++)
        json_array_append_new(a, json_string(m->migrations[i].name));
    return a;
}

static int backup_and_verify(rel_t *r, dc_manifest_t **manifest, char *detail, size_t size)
{
    dc_backup_opts_t b = r->o->backup;
    b.database_url = r->o->database_url;
    b.store = r->o->store;
    b.tag = "release";
    dc_backup_result_t res;
    dc_error_t e;
    if (dc_backup_run(&b, &res, &e) != 0) {
        snprintf(detail, size, "backup failed: %s", e.message);
        return -1;
    }
    dc_verify_opts_t v = {
        .store = r->o->store,
        .database = res.manifest->database,
        .ref = res.manifest->id,
        .key = r->o->key,
    };
    dc_verify_result_t vr;
    if (dc_verify_run(&v, &vr, &e) != 0 || !vr.ok) {
        snprintf(detail, size, "snapshot %s did not verify: %s", res.manifest->id,
                 vr.ok ? e.message : vr.failure);
        dc_manifest_free(res.manifest);
        return -1;
    }
    snprintf(detail, size, "snapshot %s: %zu tables, %llu rows, hashes verified", res.manifest->id,
             res.manifest->table_count, (unsigned long long)dc_manifest_total_rows(res.manifest));
    *manifest = res.manifest;
    return 0;
}

static void pin_owner(const rel_t *r, char *out, size_t size)
{
    snprintf(out, size, "release-%s", r->id);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

static void pin(rel_t *r, const dc_manifest_t *m, bool on)
{
    char owner[48], dbdir[256];
    dc_error_t e;
    pin_owner(r, owner, sizeof(owner));
    dc_snapshot_database_dir(m ? m->database : r->o->database, dbdir, sizeof(dbdir));
    const char *id = m ? m->id : r->st.snapshot;
    int rc = on ? dc_snapshot_pin(r->o->store, dbdir, id, owner, "the release may restore it", &e)
                : dc_snapshot_unpin(r->o->store, dbdir, id, owner, &e);
    if (rc != 0)
        dc_log_warn("release %s: cannot %s snapshot %s: %s", r->id, on ? "pin" : "unpin", id,
                    e.message);
}

static int phase_backup(rel_t *r, dc_manifest_t **manifest, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "backup", err);
    if (phase == NULL)
        return -1;
    char detail[DC_ERROR_MAX + 64];
    bool ok = backup_and_verify(r, manifest, detail, sizeof(detail)) == 0;
    if (ok) {
        json_object_set_new(r->report, "snapshot", json_string((*manifest)->id));
        if (rel_event(r,
                      json_pack("{s:s, s:s, s:o}", "event", "snapshot", "id", (*manifest)->id,
                                "migrations", manifest_migrations(*manifest)),
                      err) != 0)
            return -1;
        pin(r, *manifest, true);
    }
    return rel_phase_end(r, phase, ok, detail, err) != 0 ? -1 : (ok ? 0 : 1);
}

/* ---- rehearse (release --rehearse) ---- */

/* How many migrations are pending (-1 when the status cannot be read: rehearse anyway). */
static long pending_migrations(rel_t *r)
{
    dc_migration_set_t set;
    dc_history_t hist;
    dc_migrate_status_t st;
    dc_error_t e;
    if (dc_migrate_status(&r->o->migrate, &set, &hist, &st, &e) != 0)
        return -1;
    long pending = (long)st.pending;
    dc_migrate_status_free(&st);
    dc_history_free(&hist);
    dc_migrate_set_free(&set);
    return pending;
}

/* The rehearsal into the journal (one event: the snapshot it ran on, its verdict lines) and the
 * report (the whole rehearsal, as `rehearse --json` writes it). */
static int record_rehearsal(rel_t *r, const dc_rehearse_result_t *res, const char *snapshot,
                            bool ok, bool scratch_dropped, const char *error, dc_error_t *err)
{
    json_t *verdicts = json_array();
    for (size_t i = 0; res != NULL && i < res->count; i++) {
        const dc_rehearse_stmt_t *s = &res->stmts[i];
        json_array_append_new(verdicts, json_sprintf("%s line %d: %s", s->migration, s->line,
                                                     s->verdict ? s->verdict : ""));
        if (s->over_threshold || !s->ok)
            dc_log_error("release %s: rehearse: %s line %d: %s", r->id, s->migration, s->line,
                         s->verdict ? s->verdict : "");
        else
            dc_log_info("release %s: rehearse: %s line %d: %s", r->id, s->migration, s->line,
                        s->verdict ? s->verdict : "");
    }
    json_t *report = res != NULL ? dc_rehearse_json(res) : json_object();
    json_object_set_new(report, "snapshot", json_string(snapshot));
    json_object_set_new(report, "ok", json_boolean(ok));
    if (error != NULL)
        json_object_set_new(report, "error", json_string(error));
    json_object_set_new(r->report, "rehearsal", report);
    json_t *ev =
        json_pack("{s:s, s:s, s:b, s:I, s:O}", "event", "rehearsal", "snapshot", snapshot, "ok", ok,
                  "over_threshold", (json_int_t)(res != NULL ? res->over_threshold : 0), "verdicts",
                  verdicts);
    json_decref(verdicts);
    if (res != NULL && res->failed != NULL)
        json_object_set_new(ev, "failed", json_string(res->failed));
    /* the scratch database the journal named (event "scratch") is gone, or recover drops it */
    if (r->st.scratch[0])
        json_object_set_new(ev, "scratch_dropped", json_boolean(scratch_dropped));
    if (error != NULL)
        json_object_set_new(ev, "error", json_string(error));
    return rel_event(r, ev, err);
}

/* The scratch database into the journal as soon as it exists, before production's data goes
 * into it: a release killed during the rehearsal leaves a copy of production that `recover`
 * must drop (by name: never a database that existed before, the restore creates only new
 * ones). */
static int journal_scratch(void *ctx, const char *database, dc_error_t *err)
{
    rel_t *r = ctx;
    int rc = rel_event(r,
                       json_pack("{s:s, s:s, s:b}", "event", "scratch", "database", database,
                                 "own_server", r->o->rehearse->scratch_url == NULL),
                       err);
    dc_fault_point("release-scratch-created");
    return rc;
}

/* The pending migrations rehearsed on the pre-release snapshot m: the very snapshot a failure
 * would restore, so the rehearsal measures the data the migrations will meet. It runs after
 * the backup, inside the maintenance window (if there is one): a snapshot taken before
 * maintenance-on would miss the writes made until then, and a rollback by restore would lose
 * them. The window grows by the rehearsal's time, not more: nothing is rehearsed when nothing
 * is pending, and a refusal ends the window at once (maintenance-off, by the compensation). */
static int phase_rehearse(rel_t *r, const dc_manifest_t *m, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "rehearse", err);
    if (phase == NULL)
        return -1;
    if (pending_migrations(r) == 0)
        return rel_phase_end(r, phase, true, "no pending migration: nothing to rehearse", err) != 0
                   ? -1
                   : 0;
    dc_rehearse_opts_t ro = *r->o->rehearse;
    ro.store = r->o->store;
    ro.database = m->database;
    ro.ref = m->id;
    ro.key = r->o->key;
    ro.on_scratch = journal_scratch;
    ro.scratch_ctx = r;
    dc_rehearse_result_t res;
    dc_error_t e;
    dc_error_clear(&e);
    bool ran = dc_rehearse_run(&ro, &res, &e) == 0;
    bool ok = ran && res.failed == NULL && res.over_threshold == 0;
    char detail[DC_ERROR_MAX + 160];
    char max[32];
    dc_format_duration((double)ro.max_lock_ms / 1000.0, max, sizeof(max));
    if (!ran)
        snprintf(detail, sizeof(detail), "the rehearsal could not run: %s", e.message);
    else if (res.failed != NULL)
        snprintf(detail, sizeof(detail), "migration %s failed in the rehearsal on snapshot %s: %s",
                 res.failed, res.snapshot, res.failure ? res.failure : "");
    else
        snprintf(detail, sizeof(detail),
                 "snapshot %s: %zu statement(s), %zu held a write-blocking lock longer than "
                 "--max-lock %s",
                 res.snapshot, res.count, res.over_threshold, max);
    if (r->st.scratch[0] && !res.scratch_dropped) {
        size_t len = strlen(detail);
        snprintf(detail + len, sizeof(detail) - len,
                 "; the scratch database %s is left behind (drop it by hand)", r->st.scratch);
    }
    /* A verdict, or a rehearsal that could not run, refuses the release (exit 4); one stopped
     * by a signal is a cancellation like in any other phase (compensated, exit 2). */
    r->rehearsal_refused = !ok && (ran || !dc_signal_received(NULL));
    int rc = record_rehearsal(r, ran ? &res : NULL, ran ? res.snapshot : m->id, ok,
                              res.scratch_dropped, ran ? NULL : e.message, err);
    dc_rehearse_result_free(&res);
    if (rc != 0)
        return -1;
    return rel_phase_end(r, phase, ok, detail, err) != 0 ? -1 : (ok ? 0 : 1);
}

/* ---- migrate ---- */

static json_t *names_json(char **names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

static int phase_migrate(rel_t *r, json_t **applied, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "migrate", err);
    if (phase == NULL)
        return -1;
    dc_migrate_report_t rep;
    dc_error_t e;
    dc_error_clear(&e);
    int rc = dc_migrate_deploy(&r->o->migrate, &rep, &e);
    *applied = names_json(rep.applied, rep.applied_count);
    json_object_set_new(r->report, "migrations_applied", json_incref(*applied));
    if (rep.failed != NULL)
        json_object_set_new(r->report, "migration_failed", json_string(rep.failed));
    char detail[DC_ERROR_MAX + 64];
    if (rc == 0)
        snprintf(detail, sizeof(detail), "%zu migration(s) applied in %.1f s", rep.applied_count,
                 rep.seconds);
    else
        snprintf(detail, sizeof(detail), "%s", e.message);
    if (rel_event(r, json_pack("{s:s, s:O}", "event", "migrations", "applied", *applied), err) != 0)
        rc = -2;
    dc_migrate_report_free(&rep);
    if (rc == -2)
        return -1;
    return rel_phase_end(r, phase, rc == 0, detail, err) != 0 ? -1 : (rc == 0 ? 0 : 1);
}

/* ---- verify ---- */

/* The INVALID indexes of the database (names), or NULL when the query failed. */
static json_t *invalid_indexes(PGconn *conn, dc_error_t *err)
{
    PGresult *res = dc_pg_query(conn,
                                "SELECT i.indexrelid::regclass::text FROM pg_catalog.pg_index i "
                                "WHERE NOT i.indisvalid ORDER BY 1",
                                err);
    if (res == NULL)
        return NULL;
    json_t *names = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(names, json_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    return names;
}

static bool json_has_string(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

/* INVALID indexes this release left (a failed CREATE INDEX CONCURRENTLY); one an earlier,
 * unrelated failure left before the release (r->invalid_before) is not this release's. */
static int count_invalid_indexes(rel_t *r, PGconn *conn, dc_buf_t *problems)
{
    dc_error_t e;
    json_t *now = invalid_indexes(conn, &e);
    if (now == NULL) {
        dc_buf_appendf(problems, "%sINVALID index query: %s", problems->len ? "; " : "", e.message);
        return -1;
    }
    dc_buf_t names = {0};
    size_t i;
    json_t *v;
    json_array_foreach(now, i, v)
    {
        if (!json_has_string(r->invalid_before, json_string_value(v)))
            dc_buf_appendf(&names, "%s%s", names.len ? ", " : "", json_string_value(v));
    }
    if (names.len)
        dc_buf_appendf(problems, "%sINVALID indexes: %s", problems->len ? "; " : "", names.data);
    dc_buf_free(&names);
    json_decref(now);
    return 0;
}

static void check_history(rel_t *r, dc_buf_t *problems)
{
    dc_migration_set_t set;
    dc_history_t hist;
    dc_migrate_status_t st;
    dc_error_t e;
    if (dc_migrate_status(&r->o->migrate, &set, &hist, &st, &e) != 0) {
        dc_buf_appendf(problems, "%smigration status: %s", problems->len ? "; " : "", e.message);
        return;
    }
    if (st.pending || st.failed)
        dc_buf_appendf(problems, "%smigration history: %zu pending, %zu failed",
                       problems->len ? "; " : "", st.pending, st.failed);
    dc_migrate_status_free(&st);
    dc_history_free(&hist);
    dc_migrate_set_free(&set);
}

/* The user's verification queries: each passes with no rows, or one row of one true. */
static void run_verify_queries(rel_t *r, PGconn *conn, dc_buf_t *problems, int *count)
{
    dc_smoke_check_t *checks = NULL;
    size_t n = 0;
    dc_error_t e;
    if (dc_smoke_read_sql_dir(r->o->verify_queries_dir, &checks, &n, &e) != 0) {
        dc_buf_appendf(problems, "%sverification queries: %s", problems->len ? "; " : "",
                       e.message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        PGresult *res = PQexec(conn, checks[i].sql);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
                  (PQntuples(res) == 0 || (PQntuples(res) == 1 && PQnfields(res) == 1 &&
                                           strcmp(PQgetvalue(res, 0, 0), "t") == 0));
        if (!ok)
            dc_buf_appendf(problems, "%squery %s failed%s%s", problems->len ? "; " : "",
                           checks[i].name, PQresultStatus(res) == PGRES_TUPLES_OK ? "" : ": ",
                           PQresultStatus(res) == PGRES_TUPLES_OK
                               ? ""
                               : PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        PQclear(res);
    }
    *count = (int)n;
    dc_smoke_checks_free(checks, n);
}

/* The text (lower case) of the applied migrations that lint classes destructive: a table it
 * names may lose rows on purpose, so its row count is not held to the snapshot's. */
static char *destructive_statements(rel_t *r, const json_t *applied)
{
    dc_buf_t text = {0};
    size_t i;
    json_t *name;
    json_array_foreach(applied, i, name)
    {
        dc_lint_result_t lr;
        dc_lint_result_init(&lr);
        dc_error_t e;
        const char *n = json_string_value(name);
        bool destructive = dc_lint_migration(r->o->migrate.dir, n, &lr, &e) != 0 ||
                           lr.migration_count != 1 || lr.migrations[0].cls == DC_LINT_DESTRUCTIVE;
        dc_lint_result_free(&lr);
        dc_migration_t m;
        if (destructive && dc_migrate_read_one(r->o->migrate.dir, n, NULL, &m, &e) == 0) {
            dc_buf_appendf(&text, "%s\n", m.sql);
            dc_migration_free(&m);
        }
    }
    for (size_t k = 0; k < text.len; k++)
        text.data[k] = (char)tolower((unsigned char)text.data[k]);
    return text.data ? text.data : dc_strdup("");
}

static bool row_count_ok(uint64_t then, uint64_t now, double pct)
{
    uint64_t diff = now > then ? now - then : then - now;
    double allowed = (double)then * pct / 100.0;
    return diff <= 10 || (double)diff <= allowed;
}

static void check_row_counts(rel_t *r, PGconn *conn, const dc_manifest_t *m, const json_t *applied,
                             dc_buf_t *problems, int *checked)
{
    char *destructive = destructive_statements(r, applied);
    for (size_t i = 0; i < m->table_count; i++) {
        const dc_manifest_table_t *t = &m->tables[i];
        char lname[256];
        snprintf(lname, sizeof(lname), "%s", t->name);
        for (char *p = lname; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strstr(destructive, lname) != NULL || strcmp(t->name, "_prisma_migrations") == 0)
            continue;
        char *qs = dc_pg_quote_ident(conn, t->schema), *qt = dc_pg_quote_ident(conn, t->name);
        char *sql = dc_sprintf("SELECT count(*) FROM %s.%s", qs, qt);
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            uint64_t now = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
            (*checked)++;
            if (!row_count_ok(t->rows, now, r->o->row_tolerance_pct))
                dc_buf_appendf(
                    problems, "%s%s.%s has %llu rows, the snapshot %llu (tolerance %g%%)",
                    problems->len ? "; " : "", t->schema, t->name, (unsigned long long)now,
                    (unsigned long long)t->rows, r->o->row_tolerance_pct);
        }
        PQclear(res);
        free(sql);
        free(qs);
        free(qt);
    }
    free(destructive);
}

static int phase_verify(rel_t *r, const dc_manifest_t *m, const json_t *applied, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "verify", err);
    if (phase == NULL)
        return -1;
    dc_buf_t problems = {0};
    PGconn *conn = NULL;
    dc_error_t e;
    int queries = 0, tables = 0;
    if (dc_pg_connect(r->o->database_url, "deployctl release verify", &conn, &e) != 0) {
        dc_buf_appendf(&problems, "%s", e.message);
    } else {
        check_history(r, &problems);
        count_invalid_indexes(r, conn, &problems);
        if (r->o->verify_queries_dir != NULL)
            run_verify_queries(r, conn, &problems, &queries);
        check_row_counts(r, conn, m, applied, &problems, &tables);
    }
    PQfinish(conn);
    char detail[512];
    snprintf(detail, sizeof(detail),
             "history clean, no INVALID index, %d verification quer%s passed, %d table row "
             "counts within tolerance",
             queries, queries == 1 ? "y" : "ies", tables);
    bool ok = problems.len == 0;
    int rc = rel_phase_end(r, phase, ok, ok ? detail : problems.data, err);
    dc_buf_free(&problems);
    return rc != 0 ? -1 : (ok ? 0 : 1);
}

/* ---- deploy, smoke ---- */

static int phase_hook(rel_t *r, const char *name, dc_hook_t hook, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, name, err);
    if (phase == NULL)
        return -1;
    dc_error_t e;
    dc_error_clear(&e);
    bool ran = false;
    int rc = rel_hook(r, hook, NULL, &ran, &e);
    char detail[DC_ERROR_MAX];
    snprintf(detail, sizeof(detail), "%s", rc == 0 ? (ran ? "hook ran" : "no hook") : e.message);
    return rel_phase_end(r, phase, rc == 0, detail, err) != 0 ? -1 : (rc == 0 ? 0 : 1);
}

static json_t *smoke_json(const dc_smoke_check_t *checks, const dc_smoke_result_t *s)
{
    json_t *attempts = json_array();
    for (size_t i = 0; i < s->attempt_count; i++) {
        const dc_smoke_attempt_t *a = &s->attempts[i];
        /* the name with the URL's password and credential-like query values masked: the
         * report goes to the CI job summary */
        char name[512], detail[1024];
        dc_smoke_check_name(&checks[a->check], a->check, name, sizeof(name));
        dc_redact(a->detail, detail, sizeof(detail));
        json_array_append_new(attempts,
                              json_pack("{s:s, s:I, s:I, s:i, s:b, s:b, s:s}", "check", name,
                                        "started_ms", (json_int_t)a->started_ms, "latency_ms",
                                        (json_int_t)a->latency_ms, "status", a->status, "passed",
                                        a->passed, "error", a->error, "detail", detail));
    }
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:o}", "passed", s->passed, "checks",
                     (json_int_t)s->check_count, "failures", (json_int_t)s->failures, "errors",
                     (json_int_t)s->errors, "duration_ms", (json_int_t)s->duration_ms, "attempts",
                     attempts);
}

static int run_smoke(rel_t *r, char *detail, size_t size)
{
    const dc_release_opts_t *o = r->o;
    dc_smoke_check_t *sql = NULL;
    size_t nsql = 0;
    dc_error_t e;
    if (o->smoke_queries_dir != NULL &&
        dc_smoke_read_sql_dir(o->smoke_queries_dir, &sql, &nsql, &e) != 0) {
        snprintf(detail, size, "%s", e.message);
        return -1;
    }
    size_t n = o->smoke_url_count + nsql;
    if (n == 0) {
        dc_smoke_checks_free(sql, nsql);
        snprintf(detail, size, "no smoke checks configured");
        return 0;
    }
    dc_smoke_check_t *checks = dc_calloc(n, sizeof(*checks));
    for (size_t i = 0; i < o->smoke_url_count; i++)
        checks[i] = (dc_smoke_check_t){.kind = DC_SMOKE_HTTP, .url = o->smoke_urls[i]};
    for (size_t i = 0; i < nsql; i++)
        checks[o->smoke_url_count + i] = sql[i];
    dc_smoke_opts_t so;
    dc_smoke_opts_init(&so);
    so.window_ms = o->smoke_window_ms;
    /* SQL checks run as the application's queries do: through its pooler when there is one,
     * with the URL as given (the smoke runner applies its ?schema=) */
    so.database_url = o->pooled_url != NULL           ? o->pooled_url
                      : o->migrate.prisma_url != NULL ? o->migrate.prisma_url
                                                      : o->database_url;
    dc_smoke_result_t res;
    int rc = dc_smoke_run(checks, n, &so, &res, &e);
    if (rc == 0) {
        json_t *smoke = smoke_json(checks, &res);
        if (nsql > 0)
            json_object_set_new(smoke, "sql_connection",
                                json_string(o->pooled_url != NULL ? "pooled" : "direct"));
        json_object_set_new(r->report, "smoke", smoke);
        snprintf(detail, size, "%zu check(s) %s; %zu attempt(s), %zu failure(s), %zu error(s)", n,
                 res.passed ? "passed" : "did not pass", res.attempt_count, res.failures,
                 res.errors);
        rc = res.passed ? 0 : -1;
        dc_smoke_result_free(&res);
    } else {
        snprintf(detail, size, "%s", e.message);
    }
    free(checks);
    dc_smoke_checks_free(sql, nsql);
    return rc;
}

static int phase_smoke(rel_t *r, dc_error_t *err)
{
    json_t *phase = rel_phase_begin(r, "smoke", err);
    if (phase == NULL)
        return -1;
    char detail[DC_ERROR_MAX + 128];
    bool ok = run_smoke(r, detail, sizeof(detail)) == 0;
    return rel_phase_end(r, phase, ok, detail, err) != 0 ? -1 : (ok ? 0 : 1);
}

/* ---- the whole ---- */

static int begin(rel_t *r, dc_error_t *err)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    json_t *ev =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "begin", "database", r->o->database, "host",
                  host, "on_failure", dc_on_failure_name(r->o->on_failure), "migrations",
                  r->o->migrate.dir ? r->o->migrate.dir : "");
    if (r->o->hooks_dir)
        json_object_set_new(ev, "hooks", json_string(r->o->hooks_dir));
    return rel_event(r, ev, err);
}

/* Refuses while an earlier release is unfinished (exit 4: nothing changed). */
static int refuse_unfinished(rel_t *r, dc_error_t *err)
{
    char path[PATH_MAX], id[64];
    if (rel_find_unfinished(r->dir, path, sizeof(path), id, sizeof(id)))
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "release %s of %s did not finish (journal %s); run 'deployctl "
                                 "recover' to finish or undo it first",
                                 id, r->o->database, path);
    if (r->conn != NULL && rel_mirror_unfinished(r->conn, id, sizeof(id))) {
        snprintf(path, sizeof(path), "%s/%s.jsonl", r->dir, id);
        if (access(path, F_OK) != 0)
            return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                     "release %s of %s did not finish (on another runner: "
                                     "deployctl.releases says so); run 'deployctl recover' first",
                                     id, r->o->database);
    }
    return 0;
}

/* The phases up to the database change; 1 when one failed (r->failed_phase). */
static int run_phases(rel_t *r, dc_error_t *err)
{
    dc_manifest_t *manifest = NULL;
    json_t *applied = NULL;
    int rc = phase_hook(r, "pre-release", DC_HOOK_PRE_RELEASE, err);
    if (rc == 0 && rel_hook_exists(r, DC_HOOK_MAINTENANCE_ON))
        rc = phase_hook(r, "maintenance-on", DC_HOOK_MAINTENANCE_ON, err);
    if (rc == 0 && (rc = dc_signal_check(err)) == 0)
        rc = phase_backup(r, &manifest, err);
    if (rc == 0 && r->o->rehearse != NULL && (rc = dc_signal_check(err)) == 0)
        rc = phase_rehearse(r, manifest, err);
    if (rc == 0) {
        dc_error_t e;
        r->invalid_before = r->conn ? invalid_indexes(r->conn, &e) : NULL;
    }
    if (rc == 0 && (rc = dc_signal_check(err)) == 0 && (rc = rel_lock_check(r, err)) == 0)
        rc = phase_migrate(r, &applied, err);
    if (rc == 0 && (rc = dc_signal_check(err)) == 0)
        rc = phase_verify(r, manifest, applied, err);
    if (rc == 0 && (rc = dc_signal_check(err)) == 0 && (rc = rel_lock_check(r, err)) == 0)
        rc = phase_hook(r, "deploy", DC_HOOK_DEPLOY, err);
    if (rc == 0 && (rc = dc_signal_check(err)) == 0 && (rc = rel_lock_check(r, err)) == 0)
        rc = phase_smoke(r, err);
    if (rc == -1 && r->failed_phase[0] == '\0' && err->message[0] && !r->lock_lost &&
        !r->journal_failed) {
        /* an interruption between phases: compensate like a failure */
        snprintf(r->failed_phase, sizeof(r->failed_phase), "%s", r->st.last_phase);
        snprintf(r->failure, sizeof(r->failure), "%s", err->message);
        rc = 1;
    }
    json_decref(applied);
    dc_manifest_free(manifest);
    return rc;
}

static void set_result(rel_t *r, dc_release_result_t *res, const char *outcome, int code)
{
    snprintf(res->id, sizeof(res->id), "%s", r->id);
    snprintf(res->outcome, sizeof(res->outcome), "%s", outcome);
    res->exit_code = code;
    snprintf(res->report_path, sizeof(res->report_path), "%s", r->report_path);
    snprintf(res->report_md_path, sizeof(res->report_md_path), "%s", r->report_md_path);
    const char *state = json_string_value(json_object_get(r->report, "state_summary"));
    if (code == DC_EXIT_OK)
        snprintf(res->summary, sizeof(res->summary), "release %s of %s: %s", r->id, r->o->database,
                 outcome);
    else
        snprintf(res->summary, sizeof(res->summary), "release %s of %s: %s at %s (%s)%s%s", r->id,
                 r->o->database, outcome, r->failed_phase, r->failure, state ? "; " : "",
                 state ? state : "");
}

/* The end: journal, notify hook, reports, unpin. */
int rel_finish(rel_t *r, const char *outcome, int code, dc_release_result_t *res, dc_error_t *err)
{
    if (rel_end(r, outcome, code, err) != 0)
        return -1;
    rel_report_write(r);
    dc_error_t e;
    if (rel_hook(r, DC_HOOK_NOTIFY, outcome, NULL, &e) != 0)
        dc_log_warn("release %s: notify hook: %s", r->id, e.message);
    if (r->st.snapshot[0] && code != DC_EXIT_ROLLBACK_FAILED)
        pin(r, NULL, false);
    rel_report_write(r);
    rel_report_step_summary(r);
    set_result(r, res, outcome, code);
    return 0;
}

int rel_stop(rel_t *r, dc_release_result_t *res, const dc_error_t *why)
{
    if (r->failed_phase[0] == '\0')
        snprintf(r->failed_phase, sizeof(r->failed_phase), "%s",
                 r->st.last_phase[0] ? r->st.last_phase : "begin");
    snprintf(r->failure, sizeof(r->failure), "%s", why->message);
    dc_log_error("release %s: %s", r->id, why->message);
    json_t *manual = json_array();
    json_array_append_new(manual,
                          json_string(r->lock_lost ? "deployctl history; select * from "
                                                     "deployctl.releases   # who took it over, "
                                                     "and what it did"
                                                   : "make the state directory writable again"));
    json_array_append_new(manual, json_string("deployctl recover   # finishes or undoes the "
                                              "release from its journal once the other runner "
                                              "is done"));
    rel_set_state(r,
                  r->st.migrate_started ? "UNKNOWN: migrations may have committed"
                                        : "unchanged: no migration ran",
                  r->st.deploy_started ? "UNKNOWN: the deploy hook ran"
                                       : "not deployed (the previous version runs)",
                  manual);
    json_object_set_new(r->report, "outcome", json_string("interrupted"));
    json_object_set_new(r->report, "exit_code", json_integer(DC_EXIT_ROLLBACK_FAILED));
    json_object_set_new(r->report, "failed_phase", json_string(r->failed_phase));
    json_object_set_new(r->report, "failure", json_string(r->failure));
    rel_report_write(r);
    rel_report_step_summary(r);
    set_result(r, res, "interrupted", DC_EXIT_ROLLBACK_FAILED);
    return 0;
}

/* -1 from the phases: a stop (lock or journal lost) once something may have changed is an
 * exit 3 with a report, never a plain error. */
static int stopped(rel_t *r, dc_release_result_t *res, dc_error_t *err)
{
    if (r->lock_lost || r->journal_failed || r->st.migrate_started || r->st.deploy_started)
        return rel_stop(r, res, err);
    return -1;
}

/* The rehearsal refused the release: production is as it was (no migration ran), but the hooks
 * may have started a maintenance window; the compensation ends it (maintenance-off) and the
 * release ends refused (exit 4), its snapshot unpinned. */
static int refuse_rehearsed(rel_t *r, dc_release_result_t *res, dc_error_t *err)
{
    int code = rel_compensate(r, err);
    if (r->lock_lost || r->journal_failed)
        return rel_stop(r, res, err);
    bool refused = code == DC_EXIT_ROLLED_BACK;
    return rel_finish(r, refused ? "refused" : "rollback-failed", refused ? DC_EXIT_PRECHECK : code,
                      res, err) == 0
               ? 0
               : stopped(r, res, err);
}

static int release_body(rel_t *r, dc_release_result_t *res, dc_error_t *err)
{
    if (begin(r, err) != 0)
        return -1;
    int rc = phase_precheck(r, err);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return rel_finish(r, "refused", DC_EXIT_PRECHECK, res, err);
    rc = run_phases(r, err);
    if (rc < 0)
        return stopped(r, res, err);
    if (rc > 0 && r->rehearsal_refused && strcmp(r->failed_phase, "rehearse") == 0)
        return refuse_rehearsed(r, res, err);
    if (rc > 0) {
        int code = rel_compensate(r, err);
        if (r->lock_lost || r->journal_failed)
            return rel_stop(r, res, err);
        return rel_finish(r, code == DC_EXIT_ROLLED_BACK ? "rolled-back" : "rollback-failed", code,
                          res, err) == 0
                   ? 0
                   : stopped(r, res, err);
    }
    if (rel_lock_check(r, err) != 0 || rel_finish_hooks(r, err) != 0 ||
        rel_finish(r, "released", DC_EXIT_OK, res, err) != 0)
        return stopped(r, res, err);
    return 0;
}

int rel_init(rel_t *r, const dc_release_opts_t *o, dc_error_t *err)
{
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->journal_fd = -1;
    r->lock_fd = -1;
    r->t0 = dc_now_seconds();
    char id[DC_SNAPSHOT_ID_LEN + 1];
    dc_snapshot_id_new(time(NULL), id);
    snprintf(r->id, sizeof(r->id), "%s", id);
    return rel_dir(o, r->dir, sizeof(r->dir), err);
}

int dc_release_run(const dc_release_opts_t *o, dc_release_result_t *res, dc_error_t *err)
{
    memset(res, 0, sizeof(*res));
    rel_t r;
    if (rel_init(&r, o, err) != 0)
        return -1;
    int rc = -1;
    if (rel_lock(&r, err) == 0 && refuse_unfinished(&r, err) == 0 &&
        rel_journal_create(&r, err) == 0) {
        rel_mirror_setup(&r);
        rel_report_init(&r);
        rc = release_body(&r, res, err);
    }
    rel_free(&r);
    return rc;
}
