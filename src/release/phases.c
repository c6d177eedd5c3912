/* The pieces every phase is made of: the phase's start and end (journaled, timed, in the
 * report), hooks run with the release's environment, and the release's end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/fault.h"
#include "deployctl/log.h"
#include "deployctl/util.h"
#include "release_intern.h"

json_t *rel_phase_begin(rel_t *r, const char *name, dc_error_t *err)
{
    char at[40];
    rel_now(at, sizeof(at));
    if (rel_event(r,
                  json_pack("{s:s, s:s, s:s}", "event", "phase", "phase", name, "status", "start"),
                  err) != 0)
        return NULL;
    json_t *phase = json_pack("{s:s, s:s, s:s, s:f}", "name", name, "status", "running",
                              "started_at", at, "_t0", dc_now_seconds());
    json_array_append_new(json_object_get(r->report, "phases"), phase);
    dc_log_info("release %s: %s", r->id, name);
    /* the fault matrix's barrier: its fault lands in this phase, after its start line */
    char point[64];
    snprintf(point, sizeof(point), "release-phase-%s", name);
    dc_fault_point(point);
    return phase;
}

int rel_phase_end(rel_t *r, json_t *phase, bool ok, const char *detail, dc_error_t *err)
{
    double t0 = json_real_value(json_object_get(phase, "_t0"));
    double seconds = dc_now_seconds() - t0;
    const char *name = json_string_value(json_object_get(phase, "name"));
    json_object_del(phase, "_t0");
    json_object_set_new(phase, "status", json_string(ok ? "ok" : "failed"));
    json_object_set_new(phase, "seconds", json_real(seconds));
    if (detail != NULL && *detail)
        json_object_set_new(phase, "detail", json_string(detail));
    if (!ok) {
        snprintf(r->failed_phase, sizeof(r->failed_phase), "%s", name);
        snprintf(r->failure, sizeof(r->failure), "%s", detail ? detail : "failed");
        dc_log_error("release %s: %s failed: %s", r->id, name, detail ? detail : "");
    }
    json_t *ev = json_pack("{s:s, s:s, s:s, s:f}", "event", "phase", "phase", name, "status",
                           ok ? "ok" : "failed", "seconds", seconds);
    if (detail != NULL && *detail)
        json_object_set_new(ev, "detail", json_string(detail));
    int rc = rel_event(r, ev, err);
    rel_report_write(r);
    return rc;
}

bool rel_hook_exists(const rel_t *r, dc_hook_t hook)
{
    if (r->o->hooks_dir == NULL)
        return false;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", r->o->hooks_dir, dc_hook_name(hook));
    return access(path, F_OK) == 0;
}

static json_t *hook_json(dc_hook_t hook, const dc_hook_result_t *res, const char *failure)
{
    json_t *o = json_pack("{s:s, s:b}", "name", dc_hook_name(hook), "ran", res->ran);
    if (res->ran) {
        json_object_set_new(o, "exit_status", json_integer(res->exit_status));
        json_object_set_new(o, "timed_out", json_boolean(res->timed_out));
        json_object_set_new(o, "duration_ms", json_integer((json_int_t)res->duration_ms));
    }
    if (res->output_tail != NULL)
        json_object_set_new(o, "output_tail", json_string(res->output_tail));
    if (failure != NULL)
        json_object_set_new(o, "error", json_string(failure));
    return o;
}

int rel_hook(rel_t *r, dc_hook_t hook, const char *outcome, bool *ran, dc_error_t *err)
{
    const char *name = dc_hook_name(hook);
    if (ran != NULL)
        *ran = false;
    if (!rel_hook_exists(r, hook)) {
        json_array_append_new(json_object_get(r->report, "hooks"),
                              json_pack("{s:s, s:b}", "name", name, "ran", false));
        return 0;
    }
    /* Journaled before it starts: once a deploy hook has started, the application may have
     * changed, even if the hook then dies. */
    if (rel_event(r, json_pack("{s:s, s:s, s:s}", "event", "hook", "hook", name, "status", "start"),
                  err) != 0)
        return -1;
    dc_hook_env_t env = {
        .release_id = r->id,
        .snapshot = r->st.snapshot[0] ? r->st.snapshot : NULL,
        .outcome = outcome,
        .report_path = r->report_path,
        .database = r->o->database,
        .state_dir = r->o->state_dir,
        /* the journal's count, this start included: > 1 tells the hook it may have rolled
         * back already (killed before its "ok" line), so it must not undo twice */
        .attempt = hook == DC_HOOK_ROLLBACK ? r->st.rollback_hook_starts : 0,
    };
    dc_hook_result_t res;
    memset(&res, 0, sizeof(res));
    dc_error_t herr;
    dc_error_clear(&herr);
    int rc = dc_hook_run(r->o->hooks_dir, hook, &env, r->o->hook_timeout_ms, &res, &herr);
    if (ran != NULL)
        *ran = res.ran;
    json_array_append_new(json_object_get(r->report, "hooks"),
                          hook_json(hook, &res, rc != 0 ? herr.message : NULL));
    json_t *ev = json_pack("{s:s, s:s, s:s, s:i}", "event", "hook", "hook", name, "status",
                           rc == 0 ? "ok" : "failed", "exit_status", res.exit_status);
    dc_hook_result_free(&res);
    if (rel_event(r, ev, err) != 0)
        return -1;
    if (rc != 0) {
        *err = herr;
        return -1;
    }
    return 0;
}

int rel_end(rel_t *r, const char *outcome, int exit_code, dc_error_t *err)
{
    json_object_set_new(r->report, "outcome", json_string(outcome));
    json_object_set_new(r->report, "exit_code", json_integer(exit_code));
    json_object_set_new(r->report, "seconds", json_real(dc_now_seconds() - r->t0));
    char at[40];
    rel_now(at, sizeof(at));
    json_object_set_new(r->report, "finished_at", json_string(at));
    if (r->failed_phase[0]) {
        json_object_set_new(r->report, "failed_phase", json_string(r->failed_phase));
        json_object_set_new(r->report, "failure", json_string(r->failure));
    }
    return rel_event(
        r, json_pack("{s:s, s:s, s:i}", "event", "end", "outcome", outcome, "exit_code", exit_code),
        err);
}

void rel_free(rel_t *r)
{
    if (r->journal_fd >= 0)
        close(r->journal_fd);
    r->journal_fd = -1;
    rel_unlock(r);
    rel_state_free(&r->st);
    json_decref(r->report);
    r->report = NULL;
    json_decref(r->invalid_before);
    r->invalid_before = NULL;
}
