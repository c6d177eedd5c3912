/* `deployctl lint [DIR]`: lints the migrations and prints each finding with its safe
 * alternative and each migration's class (or, with --json, the findings as JSON); fails when an
 * error remains. The rules themselves are src/lint/'s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/lint.h"

static void print_finding(const dc_lint_finding_t *f)
{
    printf("%s:%d: %s%s: [%s] %s\n", f->file, f->line, dc_lint_severity_name(f->rule->severity),
           f->allowed ? " (allowed)" : "", f->rule->id, f->message);
    printf("    %s\n", f->statement);
    if (!f->allowed)
        printf("    hint: %s\n", f->rule->hint);
}

static void add_count(char *buf, size_t size, size_t n, const char *what, const char *plural)
{
    size_t len = strlen(buf);
    if (n == 0 || len >= size)
        return;
    snprintf(buf + len, size - len, "%s%zu %s", len ? ", " : "", n, n == 1 ? what : plural);
}

static void describe_counts(char *buf, size_t size, size_t errors, size_t warnings, size_t infos,
                            size_t allowed)
{
    buf[0] = '\0';
    add_count(buf, size, errors, "error", "errors");
    add_count(buf, size, warnings, "warning", "warnings");
    add_count(buf, size, infos, "info", "infos");
    add_count(buf, size, allowed, "allowed", "allowed");
    if (buf[0] == '\0')
        snprintf(buf, size, "no findings");
}

static void print_report(const dc_lint_result_t *r, const char *dir)
{
    char counts[128];
    for (size_t i = 0; i < r->count; i++)
        print_finding(&r->findings[i]);
    if (r->migration_count == 0) {
        printf("no migrations in %s\n", dir);
        return;
    }
    printf("%s%-48s %-15s %s\n", r->count ? "\n" : "", "MIGRATION", "CLASS", "FINDINGS");
    for (size_t i = 0; i < r->migration_count; i++) {
        const dc_lint_migration_t *m = &r->migrations[i];
        describe_counts(counts, sizeof(counts), m->errors, m->warnings, m->infos, m->allowed);
        printf("%-48s %-15s %s\n", m->name, dc_lint_class_name(m->cls), counts);
    }
    describe_counts(counts, sizeof(counts), r->errors, r->warnings, r->infos, r->allowed);
    printf("\n%zu migration%s, %s at worst: %s\n", r->migration_count,
           r->migration_count == 1 ? "" : "s", dc_lint_class_name(dc_lint_worst_class(r)), counts);
}

int dc_cmd_lint(dc_cli_t *cli, dc_error_t *err)
{
    const char *dir =
        cli->arg_count > 0 ? cli->args[0] : dc_config_get(&cli->config, DC_OPT_MIGRATIONS);
    dc_lint_result_t result;
    dc_lint_result_init(&result);
    if (dc_lint_dir(dir, &result, err) != 0) {
        dc_lint_result_free(&result);
        return -1;
    }
    if (cli->json) {
        char *text = dc_lint_to_json(&result);
        printf("%s\n", text ? text : "[]");
        free(text);
    } else {
        print_report(&result, dir);
    }
    size_t errors = result.errors;
    dc_lint_result_free(&result);
    if (errors > 0)
        return dc_error_set(err,
                            "lint found %zu error%s in %s: fix %s, or accept a finding with a "
                            "'-- deployctl:allow <rule>' comment above its statement",
                            errors, errors == 1 ? "" : "s", dir, errors == 1 ? "it" : "them");
    return 0;
}
