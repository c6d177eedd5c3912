/* The release report: JSON (every phase with its timing, hooks, smoke attempts, snapshots,
 * compensation, the state things were left in) and Markdown shaped like the seed's migration
 * checklist (pre-migration, migration, post-migration, rollback), ready for a CI job summary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/util.h"
#include "release_intern.h"

void rel_report_init(rel_t *r)
{
    const dc_release_opts_t *o = r->o;
    if (o->report_path != NULL)
        snprintf(r->report_path, sizeof(r->report_path), "%s", o->report_path);
    else
        snprintf(r->report_path, sizeof(r->report_path), "%s/%s.report.json", r->dir, r->id);
    if (o->report_md_path != NULL) {
        snprintf(r->report_md_path, sizeof(r->report_md_path), "%s", o->report_md_path);
    } else {
        size_t n = strlen(r->report_path);
        if (dc_str_ends_with(r->report_path, ".json"))
            n -= 5;
        snprintf(r->report_md_path, sizeof(r->report_md_path), "%.*s.md", (int)n, r->report_path);
    }
    char at[40];
    rel_now(at, sizeof(at));
    r->report =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:[], s:n, s:s}", "release", r->id, "database",
                  o->database, "started_at", at, "on_failure", dc_on_failure_name(o->on_failure),
                  "journal", r->journal, "phases", "hooks", "snapshot", "outcome", "running");
}

static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    bool ok = fputs(text, f) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

void rel_report_write(rel_t *r)
{
    if (r->report == NULL)
        return;
    char *json = json_dumps(r->report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *md = rel_report_markdown(r->report);
    if (write_atomic(r->report_path, json) != 0)
        dc_log_warn("cannot write the release report %s: %s", r->report_path, strerror(errno));
    if (write_atomic(r->report_md_path, md) != 0)
        dc_log_warn("cannot write the release report %s: %s", r->report_md_path, strerror(errno));
    free(json);
    free(md);
}

void rel_report_step_summary(rel_t *r)
{
    const char *path = getenv("GITHUB_STEP_SUMMARY");
    if (path == NULL || *path == '\0' || r->report == NULL)
        return;
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        dc_log_warn("cannot append to GITHUB_STEP_SUMMARY %s: %s", path, strerror(errno));
        return;
    }
    char *md = rel_report_markdown(r->report);
    fputs(md, f);
    fputc('\n', f);
    fclose(f);
    free(md);
}

/* ---- Markdown ---- */

static const json_t *find_named(const json_t *list, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* "- [x] Title — detail (1.2 s)" from a phase: checked when it passed, "not run" when absent. */
static void item_phase(dc_buf_t *b, const json_t *report, const char *phase, const char *title)
{
    const json_t *p = find_named(json_object_get(report, "phases"), phase);
    if (p == NULL) {
        dc_buf_appendf(b, "- [ ] %s — not run\n", title);
        return;
    }
    bool ok = strcmp(str(p, "status"), "ok") == 0;
    dc_buf_appendf(b, "- [%s] %s — %s%s%s", ok ? "x" : " ", title,
                   ok ? "" : "**FAILED**: ", str(p, "detail"), "");
    if (json_object_get(p, "seconds"))
        dc_buf_appendf(b, " (%.1f s)", json_real_value(json_object_get(p, "seconds")));
    dc_buf_appendf(b, "\n");
}

static void item_hook(dc_buf_t *b, const json_t *report, const char *hook, const char *title)
{
    const json_t *h = NULL;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(report, "hooks"), i, v)
    {
        if (strcmp(str(v, "name"), hook) == 0)
            h = v; /* the last run */
    }
    if (h == NULL || !json_is_true(json_object_get(h, "ran"))) {
        dc_buf_appendf(b, "- [ ] %s — no `%s` hook\n", title, hook);
        return;
    }
    long long status = json_integer_value(json_object_get(h, "exit_status"));
    dc_buf_appendf(b, "- [%s] %s — `%s` hook exited %lld in %lld ms\n", status == 0 ? "x" : " ",
                   title, hook, status,
                   (long long)json_integer_value(json_object_get(h, "duration_ms")));
}

static void table_phases(dc_buf_t *b, const json_t *report)
{
    dc_buf_appendf(b,
                   "\n#### Phases\n\n| phase | status | seconds | detail |\n|---|---|---|---|\n");
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(report, "phases"), i, p)
    {
        dc_buf_appendf(b, "| %s | %s | %.2f | ", str(p, "name"), str(p, "status"),
                       json_real_value(json_object_get(p, "seconds")));
        dc_buf_append_md_cell(b, str(p, "detail"));
        dc_buf_appendf(b, " |\n");
    }
    dc_buf_appendf(b, "\n#### Hooks\n\n| hook | ran | exit | ms |\n|---|---|---|---|\n");
    json_array_foreach(json_object_get(report, "hooks"), i, p)
        dc_buf_appendf(b, "| %s | %s | %lld | %lld |\n", str(p, "name"),
                       json_is_true(json_object_get(p, "ran")) ? "yes" : "no",
                       (long long)json_integer_value(json_object_get(p, "exit_status")),
                       (long long)json_integer_value(json_object_get(p, "duration_ms")));
    const json_t *smoke = json_object_get(report, "smoke");
    if (smoke == NULL)
        return;
    dc_buf_appendf(b,
                   "\n#### Smoke attempts (%lld failures, %lld errors)\n\n| check | at ms | "
                   "status | passed | detail |\n|---|---|---|---|---|\n",
                   (long long)json_integer_value(json_object_get(smoke, "failures")),
                   (long long)json_integer_value(json_object_get(smoke, "errors")));
    json_array_foreach(json_object_get(smoke, "attempts"), i, p)
    {
        dc_buf_appendf(b, "| ");
        dc_buf_append_md_cell(b, str(p, "check"));
        dc_buf_appendf(b, " | %lld | %lld | %s | ",
                       (long long)json_integer_value(json_object_get(p, "started_ms")),
                       (long long)json_integer_value(json_object_get(p, "status")),
                       json_is_true(json_object_get(p, "passed")) ? "yes" : "no");
        dc_buf_append_md_cell(b, str(p, "detail"));
        dc_buf_appendf(b, " |\n");
    }
}

static void section_rollback(dc_buf_t *b, const json_t *report)
{
    const json_t *comp = json_object_get(report, "compensation");
    /* a rehearsal's refusal (exit 4) migrated nothing: verified, nothing to roll back */
    bool refused = strcmp(str(report, "outcome"), "refused") == 0;
    dc_buf_appendf(b, "\n### %s\n",
                   refused && strcmp(str(report, "failed_phase"), "rehearse") == 0
                       ? "Refused by the rehearsal, nothing migrated"
                       : "Rollback");
    if (comp == NULL) {
        dc_buf_appendf(b, "- not needed\n");
        return;
    }
    dc_buf_appendf(b, "- [x] Issue identified — %s failed: %s\n", str(report, "failed_phase"),
                   str(report, "failure"));
    dc_buf_appendf(b, "- [x] Rollback decision made — release.on_failure = %s\n",
                   str(report, "on_failure"));
    size_t i;
    const json_t *s;
    json_array_foreach(comp, i, s) dc_buf_appendf(b, "- [%s] Rollback executed: %s — %s\n",
                                                  strcmp(str(s, "status"), "ok") == 0 ? "x" : " ",
                                                  str(s, "step"), str(s, "detail"));
    if (json_object_get(report, "pre_restore_snapshot"))
        dc_buf_appendf(b,
                       "- Pre-restore snapshot (what the database held before the restore): "
                       "`%s`\n",
                       str(report, "pre_restore_snapshot"));
    const json_t *state = json_object_get(report, "state");
    bool ok = json_integer_value(json_object_get(report, "exit_code")) == 2 || refused;
    dc_buf_appendf(b, "- [%s] System verified — database: %s; application: %s\n", ok ? "x" : " ",
                   str(state, "database"), str(state, "application"));
    const json_t *manual = json_object_get(state, "manual_steps");
    if (json_array_size(manual) > 0) {
        dc_buf_appendf(b, "\n**Operator needed.** To finish by hand:\n\n```sh\n");
        json_array_foreach(manual, i, s) dc_buf_appendf(b, "%s\n", json_string_value(s));
        dc_buf_appendf(b, "```\n");
    }
    if (!refused)
        dc_buf_appendf(b, "- [ ] Post-mortem scheduled\n");
}

/* release --rehearse: the snapshot it ran on and one verdict line per statement. */
static void section_rehearsal(dc_buf_t *b, const json_t *report)
{
    const json_t *reh = json_object_get(report, "rehearsal");
    if (reh == NULL)
        return;
    dc_buf_appendf(b, "\n#### Rehearsal on snapshot `%s`: %s\n\n", str(reh, "snapshot"),
                   json_is_true(json_object_get(reh, "ok")) ? "passed" : "FAILED");
    if (json_object_get(reh, "error") != NULL) {
        dc_buf_appendf(b, "- could not run: ");
        dc_buf_append_md_cell(b, str(reh, "error"));
        dc_buf_appendf(b, "\n");
    }
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(reh, "statements"), i, s)
    {
        bool bad = json_is_true(json_object_get(s, "over_threshold")) ||
                   !json_is_true(json_object_get(s, "ok"));
        dc_buf_appendf(
            b, "- %s `%s` line %lld: ", bad ? ":x:" : ":white_check_mark:", str(s, "migration"),
            (long long)json_integer_value(json_object_get(s, "line")));
        dc_buf_append_md_cell(b, str(s, "verdict"));
        dc_buf_appendf(b, "\n");
    }
    if (json_is_string(json_object_get(reh, "failed"))) {
        dc_buf_appendf(b, "- migration `%s` failed in the rehearsal: ", str(reh, "failed"));
        dc_buf_append_md_cell(b, str(reh, "failure"));
        dc_buf_appendf(b, "\n");
    }
}

char *rel_report_markdown(const json_t *report)
{
    dc_buf_t b = {0};
    dc_buf_appendf(&b, "## Release %s of %s: %s\n\n", str(report, "release"),
                   str(report, "database"), str(report, "outcome"));
    dc_buf_appendf(&b, "Started %s, snapshot `%s`", str(report, "started_at"),
                   json_is_string(json_object_get(report, "snapshot")) ? str(report, "snapshot")
                                                                       : "none");
    const json_t *applied = json_object_get(report, "migrations_applied");
    dc_buf_appendf(&b, ", %zu migration(s) applied", json_array_size(applied));
    size_t i;
    const json_t *v;
    json_array_foreach(applied, i, v)
        dc_buf_appendf(&b, "%s`%s`", i ? ", " : ": ", json_string_value(v));
    dc_buf_appendf(&b, ".\n\n### Pre-Migration\n");
    item_phase(&b, report, "backup", "Backup created and verified");
    item_hook(&b, report, "pre-release", "Team notified (pre-release)");
    item_hook(&b, report, "maintenance-on", "Maintenance window (maintenance-on)");
    dc_buf_appendf(&b, "\n### Migration\n");
    item_phase(&b, report, "precheck", "Pre-migration checks passed");
    if (json_object_get(report, "rehearsal") != NULL)
        item_phase(&b, report, "rehearse", "Migrations rehearsed on the pre-release snapshot");
    item_phase(&b, report, "migrate", "Migration executed successfully");
    item_phase(&b, report, "verify", "Migration status verified");
    item_phase(&b, report, "deploy", "Application deployed");
    item_phase(&b, report, "smoke", "Smoke tests passed");
    dc_buf_appendf(&b, "\n### Post-Migration\n");
    item_phase(&b, report, "verify", "Data integrity verified");
    item_hook(&b, report, "maintenance-off", "Maintenance ended (maintenance-off)");
    item_hook(&b, report, "post-release", "Post-release hook");
    item_hook(&b, report, "notify", "Team notified of completion (notify)");
    section_rollback(&b, report);
    section_rehearsal(&b, report);
    table_phases(&b, report);
    return b.data;
}
