/* `deployctl recover` and `deployctl history`. Recover takes the release lock, finds the
 * newest unfinished release (its journal has no end, or its rollback failed; a journal only in
 * the database's mirror, from another runner, is copied here first), folds its journal into the
 * state it describes and follows the release's own decision tree: smoke had passed -> finish
 * (maintenance-off, post-release); compensation had begun or the rollback failed -> carry it
 * on; otherwise compensate what was done (nothing changed: aborted). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "release_intern.h"

/* Refuses a database copy with a hole: an event whose copy failed (a lost connection, a
 * revoked right) may be the one that says the deploy hook started, and guessing from the rest
 * could skip the rollback hook. An explicit --on-failure lets the operator go on; the worst
 * is then assumed (rel_assume_worst). */
static int check_mirror_seq(rel_t *r, PGresult *res, const char *id, bool *gap, dc_error_t *err)
{
    int n = PQntuples(res);
    int *seqs = dc_calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    for (int i = 0; i < n; i++)
        seqs[i] = atoi(PQgetvalue(res, i, 0));
    int missing = n == 0 ? 1 : rel_seq_gap(seqs, (size_t)n);
    free(seqs);
    *gap = missing > 0;
    if (!*gap)
        return 0;
    if (r->o->on_failure_explicit) {
        dc_log_warn("release %s: the database copy of its journal lacks event %d; going on as "
                    "--on-failure %s says, assuming the deploy hook and the migrations ran",
                    id, missing, dc_on_failure_name(r->o->on_failure));
        return 0;
    }
    return dc_error_set_code(err, DC_EXIT_PRECHECK,
                             "release %s of %s: the database copy of its journal is incomplete "
                             "(event %d is missing), so what it did cannot be told for sure; run "
                             "'deployctl recover' on the runner that ran it (its state directory "
                             "has the whole journal), or decide explicitly with --on-failure "
                             "restore|down|none",
                             id, r->o->database, missing);
}

/* Whether an event (JSON text) is the deploy phase's start. */
static bool ends_in_deploy_phase(const char *text)
{
    json_t *ev = json_loads(text, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "event"));
    const char *phase = json_string_value(json_object_get(ev, "phase"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    bool yes = type && phase && status && strcmp(type, "phase") == 0 &&
               strcmp(phase, "deploy") == 0 && strcmp(status, "start") == 0;
    json_decref(ev);
    return yes;
}

/* Copies a journal that only the database holds into the state directory. */
static int fetch_mirror(rel_t *r, const char *id, dc_error_t *err)
{
    const char *p[1] = {id};
    PGresult *res = dc_pg_query_params(r->conn,
                                       "SELECT seq, event::text FROM deployctl.release_events "
                                       "WHERE release_id = $1 ORDER BY seq",
                                       1, p, err);
    if (res == NULL)
        return -1;
    bool gap = false;
    if (check_mirror_seq(r, res, id, &gap, err) != 0) {
        PQclear(res);
        return -1;
    }
    snprintf(r->journal, sizeof(r->journal), "%s/%s.jsonl", r->dir, id);
    FILE *f = fopen(r->journal, "wx");
    if (f == NULL) {
        PQclear(res);
        return dc_error_set(err, "cannot create %s", r->journal);
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n", PQgetvalue(res, i, 1));
    if (gap) /* the operator's explicit decision, on the record */
        fprintf(f, "{\"event\":\"assume\",\"deploy_started\":true,\"migrate_started\":true}\n");
    else if (n > 0 && ends_in_deploy_phase(PQgetvalue(res, n - 1, 1)))
        /* a hole at the end cannot be seen: the deploy hook's start may be the lost copy */
        fprintf(f, "{\"event\":\"assume\",\"deploy_started\":true}\n");
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    PQclear(res);
    return ok ? 0 : dc_error_set(err, "cannot write %s", r->journal);
}

static int load_state(rel_t *r, dc_error_t *err)
{
    json_t *events;
    if (rel_journal_load(r->journal, &events, err) != 0)
        return -1;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        rel_state_apply(&r->st, ev);
        int seq = (int)json_integer_value(json_object_get(ev, "seq"));
        r->seq = seq > r->seq ? seq : r->seq;
    }
    json_decref(events);
    return 0;
}

/* The report the release was writing, carried on (or a new one). */
static void load_report(rel_t *r)
{
    rel_report_init(r);
    json_t *old = json_load_file(r->report_path, 0, NULL);
    const char *of = json_string_value(json_object_get(old, "release"));
    if (of != NULL && strcmp(of, r->id) == 0) { /* --report may name another release's */
        json_decref(r->report);
        r->report = old;
    } else {
        json_decref(old);
    }
    if (r->st.snapshot[0])
        json_object_set_new(r->report, "snapshot", json_string(r->st.snapshot));
    json_object_set_new(r->report, "recovered", json_true());
}

static int find_release(rel_t *r, bool *found, dc_error_t *err)
{
    char id[64];
    *found = rel_find_unfinished(r->dir, r->journal, sizeof(r->journal), id, sizeof(id));
    if (!*found && r->conn != NULL && rel_mirror_unfinished(r->conn, id, sizeof(id))) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s.jsonl", r->dir, id);
        if (access(path, F_OK) == 0)
            return 0; /* finished here; only the database copy missed its end */
        if (fetch_mirror(r, id, err) != 0)
            return -1;
        *found = true;
    }
    if (*found)
        snprintf(r->id, sizeof(r->id), "%s", id);
    return 0;
}

/* The outcome the database's copy gives a release that another runner already closed, or
 * NULL (caller frees). */
static char *closed_elsewhere(rel_t *r, int *code)
{
    if (r->conn == NULL)
        return NULL;
    const char *p[1] = {r->id};
    PGresult *res = PQexecParams(r->conn,
                                 "SELECT status, coalesce(exit_code, 0) FROM deployctl.releases "
                                 "WHERE id = $1 AND status NOT IN ('running', 'rollback-failed')",
                                 1, NULL, p, NULL, NULL, 0);
    char *outcome = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        outcome = dc_strdup(PQgetvalue(res, 0, 0));
        *code = atoi(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return outcome;
}

/* Another runner recovered it from the database's copy: only this journal is left to close
 * (running the rollback hook again would roll the platform back twice). */
static int close_only(rel_t *r, const char *outcome, int code, dc_release_result_t *res,
                      dc_error_t *err)
{
    json_t *ev = json_pack("{s:s, s:s, s:i, s:s}", "event", "end", "outcome", outcome, "exit_code",
                           code, "note", "closed by another runner");
    if (rel_event(r, ev, err) != 0)
        return -1;
    snprintf(res->id, sizeof(res->id), "%s", r->id);
    snprintf(res->outcome, sizeof(res->outcome), "%s", outcome);
    snprintf(res->summary, sizeof(res->summary),
             "release %s of %s was already closed by another runner (%s); its journal here is "
             "closed too",
             r->id, r->o->database, outcome);
    return 0;
}

static int recover_body(rel_t *r, dc_release_result_t *res, dc_error_t *err)
{
    int closed_code = 0;
    char *closed = closed_elsewhere(r, &closed_code);
    if (closed != NULL) {
        int rc = close_only(r, closed, closed_code, res, err);
        free(closed);
        return rc;
    }
    load_report(r);
    dc_log_info("recovering release %s of %s (last phase: %s%s)", r->id, r->o->database,
                r->st.last_phase[0] ? r->st.last_phase : "none",
                r->st.ended ? ", its rollback had failed" : "");
    if (rel_event(r, json_pack("{s:s, s:i}", "event", "recover", "pid", (int)getpid()), err) != 0)
        return -1;
    if (r->failed_phase[0] == '\0') {
        snprintf(r->failed_phase, sizeof(r->failed_phase), "%s",
                 r->st.last_phase[0] ? r->st.last_phase : "begin");
        snprintf(r->failure, sizeof(r->failure), "%s",
                 r->st.ended ? "its rollback had failed"
                             : "the release process ended without finishing (killed or lost)");
    }
    if (r->st.smoke_passed && !r->st.compensating && !r->st.ended) {
        if (rel_lock_check(r, err) != 0 || rel_finish_hooks(r, err) != 0 ||
            rel_finish(r, "released", DC_EXIT_OK, res, err) != 0)
            return rel_stop(r, res, err);
        return 0;
    }
    bool nothing = !r->st.migrate_started && !r->st.deploy_started;
    int code = rel_compensate(r, err);
    if (r->lock_lost || r->journal_failed)
        return rel_stop(r, res, err);
    const char *outcome = code != DC_EXIT_ROLLED_BACK ? "rollback-failed"
                          : nothing                   ? "aborted"
                                                      : "rolled-back";
    return rel_finish(r, outcome, code, res, err);
}

int dc_release_recover(const dc_release_opts_t *o, dc_release_result_t *res, dc_error_t *err)
{
    memset(res, 0, sizeof(*res));
    rel_t r;
    if (rel_init(&r, o, err) != 0)
        return -1;
    int rc = -1;
    bool found = false;
    if (rel_lock(&r, err) == 0 && find_release(&r, &found, err) == 0) {
        if (!found) {
            snprintf(res->outcome, sizeof(res->outcome), "none");
            snprintf(res->summary, sizeof(res->summary),
                     "no unfinished release of %s: nothing to recover", o->database);
            rc = 0;
        } else if (load_state(&r, err) == 0 && rel_journal_reopen(&r, err) == 0) {
            rel_mirror_setup(&r);
            rc = recover_body(&r, res, err);
        }
    }
    rel_free(&r);
    return rc;
}

/* ---- history ---- */

static json_t *summarize(const char *path)
{
    json_t *events;
    dc_error_t err;
    if (rel_journal_load(path, &events, &err) != 0)
        return NULL;
    json_t *phases = json_array();
    json_t *o = json_pack("{s:o, s:s, s:n, s:n, s:n}", "phases", phases, "outcome", "unfinished",
                          "exit_code", "snapshot", "finished_at");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "event"));
        if (type == NULL)
            continue;
        if (i == 0) {
            json_object_set(o, "id", json_object_get(ev, "release"));
            json_object_set(o, "started_at", json_object_get(ev, "at"));
        }
        if (strcmp(type, "phase") == 0 &&
            strcmp(json_string_value(json_object_get(ev, "status")), "start") != 0) {
            json_array_append_new(phases,
                                  json_pack("{s:O, s:O, s:O}", "name", json_object_get(ev, "phase"),
                                            "status", json_object_get(ev, "status"), "seconds",
                                            json_object_get(ev, "seconds")));
        } else if (strcmp(type, "snapshot") == 0) {
            json_object_set(o, "snapshot", json_object_get(ev, "id"));
        } else if (strcmp(type, "end") == 0) {
            json_object_set(o, "outcome", json_object_get(ev, "outcome"));
            json_object_set(o, "exit_code", json_object_get(ev, "exit_code"));
            json_object_set(o, "finished_at", json_object_get(ev, "at"));
        } else if (strcmp(type, "recover") == 0) {
            json_object_set_new(o, "recovered", json_true());
        }
    }
    json_decref(events);
    return o;
}

static json_t *list_releases(const char *dir)
{
    json_t *list = json_array();
    size_t count;
    char **names = rel_list_journals(dir, &count);
    for (size_t i = 0; i < count; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        json_t *s = summarize(path);
        if (s != NULL)
            json_array_append_new(list, s);
    }
    rel_free_names(names, count);
    return list;
}

static void print_text(const json_t *list)
{
    printf("%-22s %-24s %-16s %-4s %s\n", "RELEASE", "STARTED", "OUTCOME", "EXIT", "PHASES");
    size_t i;
    const json_t *rel;
    json_array_foreach(list, i, rel)
    {
        dc_buf_t phases = {0};
        size_t k;
        const json_t *p;
        json_array_foreach(json_object_get(rel, "phases"), k, p) dc_buf_appendf(
            &phases, "%s%s %.1fs%s", k ? ", " : "", json_string_value(json_object_get(p, "name")),
            json_real_value(json_object_get(p, "seconds")),
            strcmp(json_string_value(json_object_get(p, "status")), "ok") == 0 ? "" : " FAILED");
        const json_t *code = json_object_get(rel, "exit_code");
        char exit_text[16] = "-";
        if (json_is_integer(code))
            snprintf(exit_text, sizeof(exit_text), "%lld", (long long)json_integer_value(code));
        printf("%-22s %-24s %-16s %-4s %s%s\n", json_string_value(json_object_get(rel, "id")),
               json_string_value(json_object_get(rel, "started_at")),
               json_string_value(json_object_get(rel, "outcome")), exit_text,
               phases.data ? phases.data : "",
               json_is_true(json_object_get(rel, "recovered")) ? " (recovered)" : "");
        dc_buf_free(&phases);
    }
}

int dc_release_history(const char *state_dir, const char *database, bool json, dc_error_t *err)
{
    (void)err;
    char dbdir[256], dir[PATH_MAX];
    dc_snapshot_database_dir(database, dbdir, sizeof(dbdir));
    snprintf(dir, sizeof(dir), "%s/releases/%s", state_dir, dbdir);
    json_t *list = list_releases(dir);
    if (json) {
        char *text = json_dumps(list, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
    } else if (json_array_size(list) == 0) {
        dc_log_info("no release of %s recorded in %s", database, dir);
    } else {
        print_text(list);
    }
    json_decref(list);
    return 0;
}
