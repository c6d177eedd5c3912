/* Lint results: the findings and per-migration verdicts of any number of files, their totals,
 * the questions other commands ask of them (is every migration additive?), and their JSON
 * form. Linting itself is lint.c's and rules.c's. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/util.h"
#include "lint_intern.h"

void dc_lint_result_init(dc_lint_result_t *r)
{
    memset(r, 0, sizeof(*r));
}

void dc_lint_result_free(dc_lint_result_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->findings[i].file);
        free(r->findings[i].statement);
        free(r->findings[i].message);
    }
    for (size_t i = 0; i < r->migration_count; i++) {
        free(r->migrations[i].name);
        free(r->migrations[i].file);
    }
    free(r->findings);
    free(r->migrations);
    memset(r, 0, sizeof(*r));
}

size_t lint_result_add_migration(dc_lint_result_t *r, const char *name, const char *file)
{
    if (r->migration_count == r->migration_cap) {
        r->migration_cap = r->migration_cap ? r->migration_cap * 2 : 16;
        r->migrations = dc_realloc(r->migrations, r->migration_cap * sizeof(*r->migrations));
    }
    dc_lint_migration_t *m = &r->migrations[r->migration_count];
    memset(m, 0, sizeof(*m));
    m->name = dc_strdup(name);
    m->file = dc_strdup(file);
    m->cls = DC_LINT_ADDITIVE;
    return r->migration_count++;
}

/* Allowed findings are kept (the report shows them) but counted apart from the rest. */
static void count_finding(size_t *errors, size_t *warnings, size_t *infos, size_t *allowed,
                          const dc_lint_finding_t *f)
{
    if (f->allowed)
        (*allowed)++;
    else if (f->rule->severity == DC_LINT_ERROR)
        (*errors)++;
    else if (f->rule->severity == DC_LINT_WARNING)
        (*warnings)++;
    else
        (*infos)++;
}

void lint_result_add_finding(dc_lint_result_t *r, size_t migration, int line, const char *statement,
                             const dc_lint_rule_t *rule, dc_lint_class_t cls, const char *message,
                             bool allowed)
{
    if (r->count == r->finding_cap) {
        r->finding_cap = r->finding_cap ? r->finding_cap * 2 : 32;
        r->findings = dc_realloc(r->findings, r->finding_cap * sizeof(*r->findings));
    }
    dc_lint_migration_t *m = &r->migrations[migration];
    dc_lint_finding_t *f = &r->findings[r->count++];
    f->file = dc_strdup(m->file);
    f->line = line;
    f->statement = dc_strdup(statement ? statement : "");
    f->rule = rule;
    f->cls = cls;
    f->message = dc_strdup(message);
    f->allowed = allowed;
    count_finding(&r->errors, &r->warnings, &r->infos, &r->allowed, f);
    count_finding(&m->errors, &m->warnings, &m->infos, &m->allowed, f);
}

dc_lint_class_t dc_lint_worst_class(const dc_lint_result_t *r)
{
    dc_lint_class_t worst = DC_LINT_ADDITIVE;
    for (size_t i = 0; i < r->migration_count; i++) {
        if (r->migrations[i].cls > worst)
            worst = r->migrations[i].cls;
    }
    return worst;
}

bool dc_lint_all_additive(const dc_lint_result_t *r)
{
    return dc_lint_worst_class(r) == DC_LINT_ADDITIVE;
}

const char *dc_lint_class_name(dc_lint_class_t c)
{
    switch (c) {
    case DC_LINT_ADDITIVE:
        return "additive";
    case DC_LINT_TRANSFORMATIVE:
        return "transformative";
    case DC_LINT_DESTRUCTIVE:
        return "destructive";
    }
    return "?";
}

const char *dc_lint_severity_name(dc_lint_severity_t s)
{
    switch (s) {
    case DC_LINT_INFO:
        return "info";
    case DC_LINT_WARNING:
        return "warning";
    case DC_LINT_ERROR:
        return "error";
    }
    return "?";
}

char *dc_lint_to_json(const dc_lint_result_t *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->count; i++) {
        const dc_lint_finding_t *f = &r->findings[i];
        if (f->allowed)
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "file", f->file,
                                             "line", f->line, "statement", f->statement, "rule",
                                             f->rule->id, "severity",
                                             dc_lint_severity_name(f->rule->severity), "class",
                                             dc_lint_class_name(f->cls), "hint", f->rule->hint));
    }
    char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(arr);
    return text;
}
