/* The native runner: status, deploy, down and resolve against one database, under the runner
 * locks, with Prisma's semantics for the history table. Each migration runs in one transaction
 * together with its history row, unless PostgreSQL cannot run one of its statements in a
 * transaction block; lock timeouts are retried with backoff and name the blocking sessions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "migrate_intern.h"
#include "session.h"

#define LOCK_TIMED_OUT 1 /* a statement gave up waiting for a lock: worth another attempt */

typedef enum { ROW_FINISH, ROW_ROLL_BACK } row_action_t;

/* The statement through the runner's session, with the observer (if any) told before and after. */
static PGresult *exec_statement(dc_session_t *s, const char *file, const dc_migrate_stmt_t *st)
{
    const dc_migrate_observer_t *o = s->opts->observer;
    if (o != NULL && o->before != NULL)
        o->before(o->ctx, s->conn, file, st);
    PGresult *res = dc_session_exec(s, st->text);
    if (o != NULL && o->after != NULL)
        o->after(o->ctx, s->conn, file, st, res);
    return res;
}

static void report_add(char ***list, size_t *count, const char *name)
{
    *list = dc_realloc(*list, (*count + 1) * sizeof(char *));
    (*list)[(*count)++] = dc_strdup(name);
}

/* One line naming the statement that failed, where, and why; LOCK_TIMED_OUT for 55P03. */
static int statement_failed(dc_session_t *s, PGresult *res, const char *file,
                            const dc_migrate_stmt_t *st, dc_error_t *err)
{
    char what[300];
    char first[101];
    snprintf(first, sizeof(first), "%s", st->text);
    dc_utf8_truncate(first, 99); /* not inside a character: logs must be UTF-8 */
    for (char *c = first; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    }
    snprintf(what, sizeof(what), "%s line %d (%s%s)", file, st->line, first,
             strlen(st->text) > 99 ? "..." : "");
    dc_pg_error(s->conn, res, what, err);
    if (!dc_session_lock_timeout(res))
        return -1;
    /* Other sessions' queries go to our output only, not into the history row (readable by the
     * application's role): the error names the sessions, the warning shows what they ran. */
    char *brief;
    char *who = dc_session_blockers(s, &brief);
    if (*who)
        dc_log_warn("%s waited too long for a lock held by %s", what, who);
    dc_error_append(err, "; blocked by %s",
                    brief != NULL && *brief ? brief
                    : *who                  ? "the sessions named above (holding table locks)"
                                            : "a session that has finished since");
    free(brief);
    free(who);
    return LOCK_TIMED_OUT;
}

/* Writes text into the row's logs as the server will take it: secrets masked (the redactor's
 * registered secrets, URL and SQL passwords) and valid UTF-8 (a cut character becomes '?'). */
static int write_logs(dc_session_t *s, const char *row_id, const char *text, dc_error_t *err)
{
    char clean[DC_ERROR_MAX * 2];
    dc_redact(text, clean, sizeof(clean));
    dc_utf8_scrub(clean);
    return dc_history_fail(s->conn, s->table, row_id, clean, err);
}

static int update_row(dc_session_t *s, const char *row_id, row_action_t action, dc_error_t *err)
{
    return action == ROW_FINISH ? dc_history_finish(s->conn, s->table, row_id, err)
                                : dc_history_roll_back(s->conn, s->table, row_id, err);
}

/* The whole script and its history-row update in one transaction: all or nothing. */
static int run_in_transaction(dc_session_t *s, const dc_migrate_script_t *sc, const char *file,
                              const char *row_id, row_action_t action, dc_error_t *err)
{
    if (dc_pg_exec(s->conn, "BEGIN", err) != 0)
        return -1;
    int rc = dc_session_set_timeouts(s, true, err);
    for (size_t i = 0; rc == 0 && i < sc->count; i++) {
        PGresult *res = exec_statement(s, file, &sc->stmts[i]);
        if (!dc_session_ok(res))
            rc = statement_failed(s, res, file, &sc->stmts[i], err);
        PQclear(res);
    }
    if (rc == 0)
        rc = update_row(s, row_id, action, err);
    if (rc == 0)
        return dc_pg_commit(s->conn, err);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

/* The INVALID indexes of a concurrent build's table (named `name` only, unless NULL), as
 * regclass text (quoted where needed). The table is looked up with each part quoted, and the
 * name compared with pg_class.relname as the parser gave it, so "User_email_key" is found. */
static PGresult *invalid_indexes(dc_session_t *s, const dc_migrate_stmt_t *st, const char *name,
                                 dc_error_t *err)
{
    const char *params[] = {st->index_schema ? st->index_schema : "", st->index_table, name};
    return dc_pg_query_params(
        s->conn,
        "SELECT i.indexrelid::pg_catalog.regclass::text FROM pg_catalog.pg_index i"
        " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = pg_catalog.to_regclass(CASE WHEN $1 = '' THEN ''"
        "   ELSE pg_catalog.quote_ident($1) || '.' END || pg_catalog.quote_ident($2))"
        " AND NOT i.indisvalid AND ($3::text IS NULL OR c.relname = $3) ORDER BY i.indexrelid",
        3, params, err);
}

/* DROP INDEX CONCURRENTLY of one INVALID index (regclass text), under the session's
 * lock_timeout: LOCK_TIMED_OUT when it waited too long, so that the attempt is retried. */
static int drop_index(dc_session_t *s, const char *index, dc_migrate_report_t *report,
                      dc_error_t *err)
{
    dc_log_warn("index %s is INVALID (left by a failed CREATE INDEX CONCURRENTLY): dropping "
                "it before building it again",
                index);
    char *sql = dc_sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", index);
    PGresult *res = dc_session_exec(s, sql);
    free(sql);
    int rc = 0;
    if (!dc_session_ok(res)) {
        char what[300];
        snprintf(what, sizeof(what), "cannot drop the INVALID index %s", index);
        dc_pg_error(s->conn, res, what, err);
        rc = dc_session_lock_timeout(res) ? LOCK_TIMED_OUT : -1;
    } else if (report != NULL) {
        report_add(&report->dropped_invalid, &report->dropped_count, index);
    }
    PQclear(res);
    return rc;
}

/* A concurrent index build that failed leaves an INVALID index behind, which would make the
 * build fail again ("already exists") or be skipped (IF NOT EXISTS): drop it first. */
static int drop_invalid_index(dc_session_t *s, const dc_migrate_stmt_t *st,
                              dc_migrate_report_t *report, dc_error_t *err)
{
    PGresult *res = invalid_indexes(s, st, st->concurrent_index, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    for (int r = 0; rc == 0 && r < PQntuples(res); r++)
        rc = drop_index(s, PQgetvalue(res, r, 0), report, err);
    PQclear(res);
    return rc;
}

/* An unnamed concurrent build gets its name from the server (t_b_idx, then t_b_idx1 beside a
 * leftover): when it fails, the INVALID indexes of its table that were not there before it
 * (`before`, a result of invalid_indexes) are its own, dropped at once. */
static void drop_new_invalid(dc_session_t *s, const dc_migrate_stmt_t *st, PGresult *before,
                             dc_migrate_report_t *report)
{
    dc_error_t ignored;
    PGresult *after = invalid_indexes(s, st, NULL, &ignored);
    for (int r = 0; after != NULL && r < PQntuples(after); r++) {
        const char *index = PQgetvalue(after, r, 0);
        bool old = false;
        for (int b = 0; before != NULL && b < PQntuples(before); b++)
            old = old || strcmp(PQgetvalue(before, b, 0), index) == 0;
        dc_error_t drop_err;
        if (!old && drop_index(s, index, report, &drop_err) != 0)
            dc_log_warn("%s: drop it by hand", drop_err.message);
    }
    PQclear(after);
}

/* Statement by statement in autocommit, from *next on (statements done in an earlier attempt
 * stay done); a transaction the file opens itself is restarted as a whole. */
/* Outside a transaction, how far a script got is written into its row's logs as statements
 * commit (applied_steps_count stays Prisma's), so that after a failure, a kill or a lost
 * connection the row says which statements remain applied. */
static void record_progress(dc_session_t *s, const char *row_id, const dc_migrate_script_t *sc,
                            const char *file, size_t done, row_action_t action)
{
    char *text = dc_sprintf("%sstatements 1-%zu of %zu committed (the last at %s line "
                            "%d); the others not run yet",
                            action == ROW_ROLL_BACK ? DC_MIGRATE_UNDO_MARK : "deployctl: ", done,
                            sc->count, file, sc->stmts[done - 1].line);
    dc_error_t ignored;
    if (write_logs(s, row_id, text, &ignored) != 0)
        dc_log_warn("cannot record the progress of %s: %s", file, ignored.message);
    free(text);
}

static int run_autocommit(dc_session_t *s, const dc_migrate_script_t *sc, const char *file,
                          const char *row_id, row_action_t action, size_t *next,
                          dc_migrate_report_t *report, dc_error_t *err)
{
    if (dc_session_set_timeouts(s, false, err) != 0)
        return -1;
    size_t tx_start = SIZE_MAX;
    int rc = 0;
    for (size_t i = *next; rc == 0 && i < sc->count; i++) {
        const dc_migrate_stmt_t *st = &sc->stmts[i];
        PGresult *before = NULL;
        if (st->concurrent_index != NULL) {
            rc = drop_invalid_index(s, st, report, err);
            if (rc != 0) {
                *next = i;
                break;
            }
        } else if (st->index_table != NULL) {
            dc_error_t ignored;
            before = invalid_indexes(s, st, NULL, &ignored);
        }
        if (PQtransactionStatus(s->conn) == PQTRANS_IDLE)
            tx_start = i;
        PGresult *res = exec_statement(s, file, st);
        if (!dc_session_ok(res)) {
            rc = statement_failed(s, res, file, st, err);
            if (before != NULL)
                drop_new_invalid(s, st, before, report);
            bool in_tx = PQtransactionStatus(s->conn) != PQTRANS_IDLE;
            if (in_tx)
                PQclear(PQexec(s->conn, "ROLLBACK"));
            *next = in_tx ? tx_start : i;
            if (*next > 0)
                dc_error_prefix(err,
                                "statements 1-%zu of %zu committed, statement %zu failed: ", *next,
                                sc->count, i + 1);
            else
                dc_error_prefix(err, "statement %zu of %zu failed, none committed: ", i + 1,
                                sc->count);
        } else if (PQtransactionStatus(s->conn) == PQTRANS_IDLE) {
            *next = i + 1;
            if (*next < sc->count)
                record_progress(s, row_id, sc, file, *next, action);
        }
        PQclear(res);
        PQclear(before);
    }
    if (rc == 0 && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        rc =
            dc_error_set(err, "%s opens a transaction (BEGIN) it never ends: add its COMMIT", file);
    }
    if (rc == 0)
        rc = dc_session_reset_timeouts(s, err);
    return rc;
}

static void describe_autocommit(const char *label, const dc_migrate_script_t *sc)
{
    for (size_t i = 0; i < sc->count; i++) {
        if (sc->stmts[i].no_transaction) {
            dc_log_info("%s runs statement by statement outside a transaction: line %d is %s, "
                        "which PostgreSQL cannot run in a transaction block",
                        label, sc->stmts[i].line, sc->stmts[i].what);
            return;
        }
    }
    dc_log_info("%s runs as written: it holds its own BEGIN / COMMIT", label);
}

/* Runs a script with retries on lock timeouts; the history row is updated as it succeeds. */
static int run_script(dc_session_t *s, const dc_migrate_script_t *sc, const char *label,
                      const char *file, const char *row_id, row_action_t action,
                      dc_migrate_report_t *report, dc_error_t *err)
{
    size_t next = 0;
    if (sc->needs_autocommit)
        describe_autocommit(label, sc);
    for (int attempt = 0;; attempt++) {
        int rc;
        if (sc->needs_autocommit) {
            rc = run_autocommit(s, sc, file, row_id, action, &next, report, err);
            if (rc == 0)
                rc = update_row(s, row_id, action, err);
        } else {
            rc = run_in_transaction(s, sc, file, row_id, action, err);
        }
        if (rc == 0)
            return 0;
        if (rc != LOCK_TIMED_OUT || attempt >= s->opts->lock_retries)
            return -1;
        report->retries++;
        dc_log_warn("%s: %s; attempt %d of %d in a moment", label, err->message, attempt + 2,
                    s->opts->lock_retries + 1);
        dc_session_backoff(s->opts, attempt + 1);
    }
}

static int parse_scripts(const dc_migrate_status_t *st, dc_migrate_script_t *scripts,
                         dc_error_t *err)
{
    for (size_t i = 0; i < st->count; i++) {
        if (st->entries[i].state == DC_MIG_PENDING &&
            dc_migrate_parse_script(st->entries[i].local->sql, st->entries[i].local->path,
                                    &scripts[i], err) != 0)
            return -1;
    }
    return 0;
}

static int apply_one(dc_session_t *s, const dc_migration_t *m, const dc_migrate_script_t *sc,
                     dc_migrate_report_t *report, dc_error_t *err)
{
    char id[37];
    char label[300];
    snprintf(label, sizeof(label), "migration %s", m->name);
    double t0 = dc_now_seconds();
    dc_log_info("applying %s", label);
    /* As Prisma: the row is committed first, so a crash leaves a visible failed migration. */
    if (dc_history_insert(s->conn, s->table, m, id, err) != 0)
        return -1;
    if (run_script(s, sc, label, m->path, id, ROW_FINISH, report, err) == 0) {
        char took[32];
        dc_format_duration(dc_now_seconds() - t0, took, sizeof(took));
        dc_log_info("applied %s in %s", label, took);
        report_add(&report->applied, &report->applied_count, m->name);
        return 0;
    }
    report->failed = dc_strdup(m->name);
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        /* Nothing can be recorded, and the server may have committed before it went away. */
        dc_error_prefix(err, "%s: the connection to the server was lost: ", label);
        return dc_error_append(
            err,
            "; whether the migration (and its history row) committed before that is unknown: run "
            "'deployctl migrate status', which reads the database's own record: applied means "
            "it completed; failed means it did not complete%s, then resolve it as status says",
            sc->needs_autocommit ? " (it ran outside a transaction, so some of its statements may "
                                   "have been applied)"
                                 : " and, as it ran in one transaction, none of it remains");
    }
    dc_error_t logged;
    dc_error_clear(&logged);
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    bool recorded = write_logs(s, id, err->message, &logged) == 0;
    if (!recorded)
        dc_error_append(err, " (and recording the error in logs failed too: %s)", logged.message);
    dc_error_prefix(err, "%s failed: ", label);
    return dc_error_append(
        err,
        "; %s; its history row is left unfinished (failed), which blocks later deploys: fix "
        "it, then run 'deployctl "
        "migrate resolve --rolled-back %s' (when none of it remains applied) or 'deployctl "
        "migrate resolve --applied %s' (when you completed it by hand)",
        sc->needs_autocommit ? "it ran outside a transaction, so the statements before the "
                               "failed one stay applied"
                             : "it ran in one transaction, so none of it was applied",
        m->name, m->name);
}

/* ---- shared steps ---- */

/* What to do when _prisma_migrations is missing. */
typedef enum { TABLE_READ_ONLY, TABLE_CREATE, TABLE_CREATE_IF_EMPTY } table_mode_t;

static int open_and_read(const dc_migrate_opts_t *opts, const char *purpose, bool lock,
                         table_mode_t table, dc_session_t *s, dc_migration_set_t *set,
                         dc_history_t *history, dc_migrate_status_t *st, dc_error_t *err)
{
    memset(history, 0, sizeof(*history));
    memset(st, 0, sizeof(*st));
    if (dc_migrate_read_dir(opts->dir, set, err) != 0)
        return -1;
    int rc = dc_session_open(opts, purpose, s, err);
    if (rc == 0 && lock)
        rc = dc_session_lock(s, true, err);
    if (rc == 0 && table == TABLE_CREATE_IF_EMPTY)
        rc = dc_history_require_baseline(s->conn, opts->schema, err);
    if (rc == 0 && table != TABLE_READ_ONLY)
        rc = dc_history_ensure(s->conn, opts->schema, err);
    if (rc == 0)
        rc = dc_history_read(s->conn, opts->schema, history, err);
    if (rc == 0)
        dc_migrate_classify(set, history, st);
    return rc;
}

static void close_all(dc_session_t *s, dc_migration_set_t *set, dc_history_t *history,
                      dc_migrate_status_t *st)
{
    dc_migrate_status_free(st);
    dc_history_free(history);
    dc_migrate_set_free(set);
    dc_session_close(s);
}

static const dc_migration_status_t *first_in_state(const dc_migrate_status_t *st,
                                                   dc_migration_state_t state)
{
    for (size_t i = 0; i < st->count; i++) {
        if (st->entries[i].state == state)
            return &st->entries[i];
    }
    return NULL;
}

static bool partly_undone(const dc_migration_status_t *e)
{
    return e->state == DC_MIG_FAILED && dc_migrate_row_partly_undone(e->row);
}

/* A migration whose down.sql stopped partway: what to do about it. */
static int refuse_partly_undone(const dc_migration_status_t *f, const char *doing, dc_error_t *err)
{
    return dc_error_set_code(
        err, DC_EXIT_PRECHECK,
        "migration %s is partly rolled back (%s), so %s was refused and nothing was changed: "
        "finish the undo by hand and run 'deployctl migrate resolve --rolled-back %s', or make "
        "its down.sql able to run again from the start (IF EXISTS) and run 'deployctl migrate "
        "down' again, or redo what was undone and run 'deployctl migrate resolve --applied %s'",
        f->name, f->row->logs + strlen(DC_MIGRATE_UNDO_MARK), doing, f->name, f->name);
}

/* P3009: a failed migration must be resolved before anything else runs. `down` may run again
 * the down.sql of a migration it left partly rolled back (retry_undo). */
static int refuse_if_failed(const dc_migrate_status_t *st, const char *doing, bool retry_undo,
                            dc_error_t *err)
{
    const dc_migration_status_t *f = NULL;
    for (size_t i = 0; i < st->count && f == NULL; i++) {
        if (st->entries[i].state == DC_MIG_FAILED &&
            !(retry_undo && partly_undone(&st->entries[i])))
            f = &st->entries[i];
    }
    if (f == NULL)
        return 0;
    if (partly_undone(f))
        return refuse_partly_undone(f, doing, err);
    char logs[300];
    snprintf(logs, sizeof(logs), "%s", f->row && f->row->logs ? f->row->logs : "no error recorded");
    return dc_error_set_code(
        err, DC_EXIT_PRECHECK,
        "migration %s failed (started %s: %s) and is not resolved, so %s was refused and nothing "
        "was changed (as Prisma's P3009): repair the database, then run 'deployctl migrate "
        "resolve --rolled-back %s' to run it again, or 'deployctl migrate resolve --applied %s' "
        "if you completed it by hand",
        f->name, f->row && f->row->started_at ? f->row->started_at : "?", logs, doing, f->name,
        f->name);
}

static void warn_divergence(const dc_migrate_status_t *st)
{
    for (size_t i = 0; i < st->count; i++) {
        const dc_migration_status_t *e = &st->entries[i];
        if (e->state == DC_MIG_EDITED)
            dc_log_warn("migration %s was edited after it was applied (its checksum differs "
                        "from the one recorded): the database has the old version",
                        e->name);
        else if (e->state == DC_MIG_MISSING_LOCALLY)
            dc_log_warn("migration %s is applied in the database but missing from the "
                        "migrations directory",
                        e->name);
    }
}

/* ---- status ---- */

int dc_migrate_status(const dc_migrate_opts_t *opts, dc_migration_set_t *set, dc_history_t *history,
                      dc_migrate_status_t *out, dc_error_t *err)
{
    dc_session_t s;
    memset(&s, 0, sizeof(s));
    int rc =
        open_and_read(opts, "migrate status", false, TABLE_READ_ONLY, &s, set, history, out, err);
    if (rc == 0)
        out->runner_pid = dc_session_runner_pid(&s);
    dc_session_close(&s);
    if (rc != 0) {
        dc_migrate_status_free(out);
        dc_history_free(history);
        dc_migrate_set_free(set);
    }
    return rc;
}

/* ---- deploy ---- */

int dc_migrate_deploy(const dc_migrate_opts_t *opts, dc_migrate_report_t *report, dc_error_t *err)
{
    memset(report, 0, sizeof(*report));
    if (opts->external_command != NULL && *opts->external_command)
        return dc_migrate_external(opts, report, err);
    double t0 = dc_now_seconds();
    dc_session_t s;
    dc_migration_set_t set;
    dc_history_t history;
    dc_migrate_status_t st;
    memset(&s, 0, sizeof(s));
    int rc = open_and_read(opts, "migrate deploy", true, TABLE_CREATE_IF_EMPTY, &s, &set, &history,
                           &st, err);
    if (rc == 0)
        rc = refuse_if_failed(&st, "deploy", false, err);
    dc_migrate_script_t *scripts = dc_calloc(st.count + 1, sizeof(dc_migrate_script_t));
    /* Every pending file is parsed before the first runs: a typo refuses the whole deploy. */
    if (rc == 0)
        rc = parse_scripts(&st, scripts, err);
    if (rc == 0)
        warn_divergence(&st);
    for (size_t i = 0; rc == 0 && i < st.count; i++) {
        if (st.entries[i].state == DC_MIG_PENDING)
            rc = apply_one(&s, st.entries[i].local, &scripts[i], report, err);
    }
    for (size_t i = 0; i < st.count; i++)
        dc_migrate_script_free(&scripts[i]);
    free(scripts);
    close_all(&s, &set, &history, &st);
    report->seconds = dc_now_seconds() - t0;
    return rc;
}

/* ---- down ---- */

/* The applied migrations to undo, newest first, into targets (pointers into st). */
static int choose_down_targets(const dc_migrate_status_t *st, const char *to, int steps,
                               const dc_migration_status_t **targets, size_t *n, dc_error_t *err)
{
    const dc_migration_status_t *missing = first_in_state(st, DC_MIG_MISSING_LOCALLY);
    if (missing != NULL)
        return dc_error_set_code(err, DC_EXIT_PRECHECK,
                                 "migration %s is applied but missing from the migrations "
                                 "directory, so its down.sql cannot run; nothing was changed",
                                 missing->name);
    size_t applied = 0;
    const dc_migration_status_t **list = dc_calloc(st->count + 1, sizeof(*list));
    for (size_t i = 0; i < st->count; i++) {
        if (st->entries[i].state == DC_MIG_APPLIED || st->entries[i].state == DC_MIG_EDITED ||
            partly_undone(&st->entries[i]))
            list[applied++] = &st->entries[i];
    }
    size_t keep = 0; /* how many of the oldest stay applied */
    int rc = 0;
    if (to != NULL) {
        keep = SIZE_MAX;
        for (size_t i = 0; i < applied; i++) {
            if (strcmp(list[i]->name, to) == 0)
                keep = i + 1;
        }
        if (keep == SIZE_MAX)
            rc = dc_error_set(err,
                              "--to %s: no applied migration has that name; 'deployctl migrate "
                              "status' lists them",
                              to);
    } else if ((size_t)steps > applied) {
        rc = dc_error_set(err, "cannot roll back %d migrations: only %zu are applied", steps,
                          applied);
    } else {
        keep = applied - (size_t)steps;
    }
    *n = 0;
    for (size_t i = applied; rc == 0 && i > keep; i--)
        targets[(*n)++] = list[i - 1];
    free(list);
    return rc;
}

static int require_down_files(const dc_migration_status_t **targets, size_t n, const char *dir,
                              dc_error_t *err)
{
    dc_buf_t missing = {0};
    dc_buf_append(&missing, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (targets[i]->local->down_sql == NULL)
            dc_buf_appendf(&missing, "%s%s", missing.len ? ", " : "", targets[i]->name);
    }
    int rc = 0;
    if (missing.len > 0)
        rc = dc_error_set_code(err, DC_EXIT_PRECHECK,
                               "cannot roll back: no down.sql for %s (in %s/<name>/); nothing "
                               "was changed: write the missing down.sql, or restore the "
                               "snapshot taken before these migrations",
                               missing.data, dir);
    dc_buf_free(&missing);
    return rc;
}

/* The row's logs while a down.sql runs outside a transaction (see DC_MIGRATE_UNDO_MARK). */
static int mark_undo(dc_session_t *s, const char *row_id, const char *what, dc_error_t *err)
{
    char *text = dc_sprintf("%s%s", DC_MIGRATE_UNDO_MARK, what);
    int rc = write_logs(s, row_id, text, err);
    free(text);
    return rc;
}

static int run_downs(dc_session_t *s, const dc_migration_status_t **targets, size_t n,
                     dc_migrate_report_t *report, dc_error_t *err)
{
    dc_migrate_script_t *scripts = dc_calloc(n + 1, sizeof(dc_migrate_script_t));
    int rc = 0;
    char **paths = dc_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        paths[i] = dc_sprintf("%s/%s/down.sql", s->opts->dir, targets[i]->name);
        rc = dc_migrate_parse_script(targets[i]->local->down_sql, paths[i], &scripts[i], err);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char label[300];
        snprintf(label, sizeof(label), "down.sql of %s", targets[i]->name);
        dc_log_info("rolling back migration %s", targets[i]->name);
        if (scripts[i].needs_autocommit)
            rc = mark_undo(s, targets[i]->row->id,
                           "started; none of its statements committed "
                           "yet",
                           err);
        if (rc == 0)
            rc = run_script(s, &scripts[i], label, paths[i], targets[i]->row->id, ROW_ROLL_BACK,
                            report, err);
        if (rc == 0) {
            dc_log_info("rolled back migration %s", targets[i]->name);
            report_add(&report->applied, &report->applied_count, targets[i]->name);
        } else if (scripts[i].needs_autocommit) {
            /* Part of it may be undone: the row's mark makes status say so (failed, partly
             * rolled back) until an operator finishes or redoes it. */
            report->failed = dc_strdup(targets[i]->name);
            dc_error_t ignored;
            if (mark_undo(s, targets[i]->row->id, err->message, &ignored) != 0)
                dc_log_warn("cannot record the failure in the history: %s", ignored.message);
            dc_error_prefix(err, "%s failed: ", label);
            err->exit_code = DC_EXIT_ROLLBACK_FAILED;
            dc_error_append(err,
                            "; it ran outside a transaction, so the statements before the failed "
                            "one stay undone and %s is recorded as failed (partly rolled back): "
                            "finish the undo by hand and run 'deployctl migrate resolve "
                            "--rolled-back' for it, or fix its down.sql and run 'deployctl "
                            "migrate down' again, or restore the snapshot taken before it",
                            targets[i]->name);
        } else {
            report->failed = dc_strdup(targets[i]->name);
            dc_error_prefix(err, "%s failed: ", label);
            dc_error_append(err,
                            "; it ran in one transaction, so nothing of it was undone and %s "
                            "stays applied",
                            targets[i]->name);
        }
    }
    for (size_t i = 0; i < n; i++) {
        dc_migrate_script_free(&scripts[i]);
        free(paths[i]);
    }
    free(scripts);
    free(paths);
    return rc;
}

int dc_migrate_down(const dc_migrate_opts_t *opts, const char *to, int steps,
                    dc_migrate_report_t *report, dc_error_t *err)
{
    memset(report, 0, sizeof(*report));
    double t0 = dc_now_seconds();
    dc_session_t s;
    dc_migration_set_t set;
    dc_history_t history;
    dc_migrate_status_t st;
    memset(&s, 0, sizeof(s));
    int rc =
        open_and_read(opts, "migrate down", true, TABLE_READ_ONLY, &s, &set, &history, &st, err);
    if (rc == 0 && !history.exists)
        rc = dc_error_set(err, "nothing to roll back: the database has no _prisma_migrations "
                               "table (no migration was ever applied)");
    if (rc == 0)
        rc = refuse_if_failed(&st, "down", true, err);
    const dc_migration_status_t **targets = dc_calloc(st.count + 1, sizeof(*targets));
    size_t n = 0;
    if (rc == 0)
        rc = choose_down_targets(&st, to, steps < 1 ? 1 : steps, targets, &n, err);
    if (rc == 0)
        rc = require_down_files(targets, n, opts->dir, err);
    if (rc == 0 && n == 0 && to != NULL)
        dc_log_info("%s is the newest applied migration: nothing to roll back", to);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (targets[i]->state == DC_MIG_EDITED)
            dc_log_warn("migration %s was edited after it was applied: its down.sql undoes the "
                        "current migration.sql, which may not be what the database has; check it "
                        "before relying on the result",
                        targets[i]->name);
    }
    if (rc == 0)
        rc = run_downs(&s, targets, n, report, err);
    free(targets);
    close_all(&s, &set, &history, &st);
    report->seconds = dc_now_seconds() - t0;
    return rc;
}

/* ---- resolve ---- */

static int resolve_rows(dc_session_t *s, const char *name, const dc_migration_t *local,
                        const dc_history_t *h, dc_migrate_resolution_t how, dc_error_t *err)
{
    if (dc_pg_exec(s->conn, "BEGIN", err) != 0)
        return -1;
    int rc = 0;
    const char *partly_undone_row = NULL;
    /* Prisma rolls the failed rows back in both cases; --applied then adds a finished row. A
     * row its down.sql left partly rolled back is rolled back too, or (--applied) unmarked. */
    for (size_t i = 0; rc == 0 && i < h->count; i++) {
        const dc_history_row_t *r = &h->rows[i];
        if (strcmp(r->migration_name, name) != 0 || r->rolled_back_at != NULL)
            continue;
        if (dc_migrate_row_partly_undone(r) && how == DC_RESOLVE_APPLIED) {
            partly_undone_row = r->id; /* redone by hand: applied again, as recorded */
            rc = dc_history_fail(s->conn, s->table, r->id, NULL, err);
        } else if (r->finished_at == NULL || dc_migrate_row_partly_undone(r)) {
            rc = dc_history_roll_back(s->conn, s->table, r->id, err);
        }
    }
    if (rc == 0 && how == DC_RESOLVE_APPLIED && partly_undone_row == NULL)
        rc = dc_history_record_applied(s->conn, s->table, local, err);
    if (rc == 0)
        return dc_pg_commit(s->conn, err);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

static const dc_migration_status_t *find_entry(const dc_migrate_status_t *st, const char *name)
{
    for (size_t i = 0; i < st->count; i++) {
        if (strcmp(st->entries[i].name, name) == 0)
            return &st->entries[i];
    }
    return NULL;
}

/* Prisma's refusals (P3008, P3011, P3012, P3017), with what to do instead. */
static int check_resolvable(const dc_migration_status_t *e, const char *name, const char *dir,
                            const dc_history_t *h, dc_migrate_resolution_t how, dc_error_t *err)
{
    if (e == NULL && how == DC_RESOLVE_ROLLED_BACK)
        return dc_error_set(err,
                            "migration %s cannot be marked rolled back because it was never "
                            "applied to the database (as Prisma's P3011): check the name with "
                            "'deployctl migrate status'",
                            name);
    if (e == NULL)
        return dc_error_set(err,
                            "migration %s is neither in %s nor in the history table (as "
                            "Prisma's P3017): check the name with 'deployctl migrate status'",
                            name, dir);
    bool applied = e->state == DC_MIG_APPLIED || e->state == DC_MIG_EDITED ||
                   e->state == DC_MIG_MISSING_LOCALLY;
    /* Prisma's P3008 counts any row that ever finished, even one rolled back since (by down). */
    bool ever_finished = false;
    for (size_t i = 0; !partly_undone(e) && i < h->count; i++)
        ever_finished = ever_finished || (strcmp(h->rows[i].migration_name, name) == 0 &&
                                          h->rows[i].finished_at != NULL);
    if (how == DC_RESOLVE_APPLIED && !applied && ever_finished)
        return dc_error_set(err,
                            "migration %s was applied before and later rolled back, so it is "
                            "already recorded as applied in the database (as Prisma's P3008): "
                            "run 'deployctl migrate deploy' to apply it again",
                            name);
    if (how == DC_RESOLVE_APPLIED && applied)
        return dc_error_set(err,
                            "migration %s is already recorded as applied in the database (as "
                            "Prisma's P3008): nothing to resolve",
                            name);
    if (how == DC_RESOLVE_APPLIED && e->local == NULL)
        return dc_error_set(err,
                            "migration %s is not in %s (as Prisma's P3017): --applied records "
                            "the checksum of its migration.sql, so it must be there",
                            name, dir);
    if (how == DC_RESOLVE_ROLLED_BACK && e->state != DC_MIG_FAILED)
        return dc_error_set(err,
                            "migration %s cannot be marked rolled back because it is not in a "
                            "failed state (it is %s; as Prisma's P3011/P3012)%s",
                            name, dc_migrate_state_name(e->state),
                            applied ? ": to undo an applied migration use 'deployctl migrate "
                                      "down'"
                                    : "");
    return 0;
}

int dc_migrate_resolve(const dc_migrate_opts_t *opts, const char *name, dc_migrate_resolution_t how,
                       dc_error_t *err)
{
    dc_session_t s;
    dc_migration_set_t set;
    dc_history_t history;
    dc_migrate_status_t st;
    memset(&s, 0, sizeof(s));
    /* As Prisma: only --applied creates the table (baselining); --rolled-back needs a row. */
    int rc = open_and_read(opts, "migrate resolve", true,
                           how == DC_RESOLVE_APPLIED ? TABLE_CREATE : TABLE_READ_ONLY, &s, &set,
                           &history, &st, err);
    const dc_migration_status_t *e = rc == 0 ? find_entry(&st, name) : NULL;
    if (rc == 0)
        rc = check_resolvable(e, name, opts->dir, &history, how, err);
    if (rc == 0)
        rc = resolve_rows(&s, name, e->local, &history, how, err);
    if (rc == 0)
        dc_log_info("migration %s marked as %s", name,
                    how == DC_RESOLVE_APPLIED ? "applied" : "rolled back");
    close_all(&s, &set, &history, &st);
    return rc;
}
