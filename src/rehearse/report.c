/* What the rehearsal measured, judged and written for people: one verdict per statement (the
 * worst write-blocking lock on a table that existed before, rewrites, what to do instead), as
 * text, JSON and Markdown (a pull-request comment or a CI summary). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/util.h"
#include "rehearse_intern.h"

static void seconds_text(double s, char *out, size_t size)
{
    if (s < 60)
        snprintf(out, size, "%.2f s", s);
    else
        dc_format_duration(s, out, size);
}

/* The longest write-blocking lock on a table the migrations did not create, or NULL. */
static const dc_rehearse_lock_t *worst_lock(const dc_rehearse_stmt_t *s)
{
    const dc_rehearse_lock_t *worst = NULL;
    for (size_t i = 0; i < s->lock_count; i++) {
        const dc_rehearse_lock_t *l = &s->locks[i];
        if (l->blocks_writes && !l->new_relation && (worst == NULL || l->seconds > worst->seconds))
            worst = l;
    }
    return worst;
}

static const char *advice(const dc_rehearse_stmt_t *s, const dc_rehearse_lock_t *l)
{
    if (s->rewrite_count > 0)
        return "use expand/contract (add a new column, backfill in batches, switch, drop the old)";
    if (strcmp(l->mode, "SHARE") == 0)
        return "use CREATE INDEX CONCURRENTLY";
    return "split it (NOT VALID then VALIDATE, batches) or run it in a maintenance window";
}

static char *verdict(const dc_rehearse_stmt_t *s, uint64_t max_lock_ms, bool *over)
{
    dc_buf_t b = {0};
    dc_buf_appendf(&b, "%s: ", s->text);
    const dc_rehearse_lock_t *l = worst_lock(s);
    char took[32];
    if (l != NULL) {
        seconds_text(l->seconds, took, sizeof(took));
        dc_buf_appendf(&b, "%s on %s for %s", l->mode, l->relation, took);
    } else {
        seconds_text(s->seconds, took, sizeof(took));
        dc_buf_appendf(&b, "no write-blocking lock on an existing table (ran %s)", took);
    }
    for (size_t i = 0; i < s->rewrite_count; i++) {
        char size[32];
        dc_format_bytes(s->rewrites[i].bytes_after, size, sizeof(size));
        dc_buf_appendf(&b, ", table %s rewritten (%s)", s->rewrites[i].relation, size);
    }
    for (size_t i = 0; i < s->index_count; i++) {
        char size[32];
        dc_format_bytes(s->indexes[i].bytes, size, sizeof(size));
        dc_buf_appendf(&b, ", index %s built (%s)", s->indexes[i].relation, size);
    }
    *over = l != NULL && l->seconds * 1000.0 > (double)max_lock_ms;
    if (!s->ok)
        dc_buf_appendf(&b, " — FAILED");
    else if (*over)
        dc_buf_appendf(&b, " — over --max-lock: %s", advice(s, l));
    else
        dc_buf_appendf(&b, " — ok");
    return b.data;
}

void rh_judge(dc_rehearse_result_t *r, uint64_t max_lock_ms)
{
    r->over_threshold = 0;
    for (size_t i = 0; i < r->count; i++) {
        dc_rehearse_stmt_t *s = &r->stmts[i];
        free(s->verdict);
        s->verdict = verdict(s, max_lock_ms, &s->over_threshold);
        r->over_threshold += s->over_threshold;
    }
}

/* ---- text ---- */

/* WAL and temporary bytes: "?" when they could not be seen. */
static void wal_text(int64_t bytes, char *out, size_t size)
{
    if (bytes < 0)
        snprintf(out, size, "?");
    else
        dc_format_bytes((uint64_t)bytes, out, size);
}

/* "12.0 MiB in 3 files", "0 B", "?" */
static void temp_text(const dc_rehearse_stmt_t *s, char *out, size_t size)
{
    char bytes[32];
    wal_text(s->temp_bytes, bytes, sizeof(bytes));
    if (s->temp_files > 0)
        snprintf(out, size, "%s in %lld file%s", bytes, (long long)s->temp_files,
                 s->temp_files == 1 ? "" : "s");
    else
        snprintf(out, size, "%s", bytes);
}

/* A statement's measurements as the text and Markdown reports show them. */
typedef struct {
    char took[32], wal[32], temp[64];
    const char *rows;
} stmt_figures_t;

static void stmt_figures(const dc_rehearse_stmt_t *s, stmt_figures_t *f)
{
    seconds_text(s->seconds, f->took, sizeof(f->took));
    f->rows = *s->rows ? s->rows : "-";
    wal_text(s->wal_bytes, f->wal, sizeof(f->wal));
    temp_text(s, f->temp, sizeof(f->temp));
}

void dc_rehearse_print_text(const dc_rehearse_result_t *r, FILE *out)
{
    char max[32], took[32];
    seconds_text((double)r->max_lock_ms / 1000.0, max, sizeof(max));
    fprintf(out, "rehearsal of snapshot %s (scratch database %s, %s):\n", r->snapshot, r->scratch,
            r->scratch_dropped ? "dropped" : "NOT dropped");
    const char *migration = "";
    for (size_t i = 0; i < r->count; i++) {
        const dc_rehearse_stmt_t *s = &r->stmts[i];
        if (strcmp(s->migration, migration) != 0)
            fprintf(out, "\nmigration %s\n", s->migration);
        migration = s->migration;
        stmt_figures_t f;
        stmt_figures(s, &f);
        fprintf(out, "  %s line %d: %s\n",
                s->over_threshold ? "FAIL"
                : s->ok           ? "ok  "
                                  : "ERR ",
                s->line, s->verdict);
        fprintf(out, "       took %s, rows %s, WAL %s, temp %s\n", f.took, f.rows, f.wal, f.temp);
        for (size_t k = 0; k < s->index_count; k++) {
            char size[32];
            dc_format_bytes(s->indexes[k].bytes, size, sizeof(size));
            fprintf(out, "       index %s built, %s\n", s->indexes[k].relation, size);
        }
        for (size_t k = 0; k < s->lock_count; k++) {
            seconds_text(s->locks[k].seconds, took, sizeof(took));
            fprintf(out, "       lock %s on %s held %s%s\n", s->locks[k].mode, s->locks[k].relation,
                    took, s->locks[k].new_relation ? " (new table)" : "");
        }
        for (size_t k = 0; k < s->lint_count; k++)
            fprintf(out, "       lint %s\n", s->lint[k]);
    }
    if (r->failed != NULL)
        fprintf(out, "\nmigration %s FAILED in the rehearsal: %s\n", r->failed,
                r->failure ? r->failure : "");
    fprintf(out, "\n%zu statements, %zu over --max-lock %s\n", r->count, r->over_threshold, max);
}

/* ---- JSON ---- */

static json_t *stmt_json(const dc_rehearse_stmt_t *s)
{
    json_t *locks = json_array();
    for (size_t k = 0; k < s->lock_count; k++)
        json_array_append_new(
            locks, json_pack("{s:s, s:s, s:f, s:b, s:b}", "relation", s->locks[k].relation, "mode",
                             s->locks[k].mode, "seconds", s->locks[k].seconds, "blocks_writes",
                             s->locks[k].blocks_writes, "new_relation", s->locks[k].new_relation));
    json_t *rewrites = json_array();
    for (size_t k = 0; k < s->rewrite_count; k++)
        json_array_append_new(rewrites,
                              json_pack("{s:s, s:I, s:I}", "relation", s->rewrites[k].relation,
                                        "bytes_before", (json_int_t)s->rewrites[k].bytes_before,
                                        "bytes_after", (json_int_t)s->rewrites[k].bytes_after));
    json_t *indexes = json_array();
    for (size_t k = 0; k < s->index_count; k++)
        json_array_append_new(indexes, json_pack("{s:s, s:I}", "relation", s->indexes[k].relation,
                                                 "bytes", (json_int_t)s->indexes[k].bytes));
    json_t *lint = json_array();
    for (size_t k = 0; k < s->lint_count; k++)
        json_array_append_new(lint, json_string(s->lint[k]));
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:s, s:f, s:b, s:o, s:o, s:o, s:o, s:s, s:b}", "migration",
                  s->migration, "file", s->file, "line", s->line, "statement", s->text, "seconds",
                  s->seconds, "ok", s->ok, "locks", locks, "rewrites", rewrites, "lint", lint,
                  "wal_bytes", s->wal_bytes < 0 ? json_null() : json_integer(s->wal_bytes),
                  "verdict", s->verdict ? s->verdict : "", "over_threshold", s->over_threshold);
    json_object_set_new(o, "temp_bytes",
                        s->temp_bytes < 0 ? json_null() : json_integer(s->temp_bytes));
    json_object_set_new(o, "temp_files",
                        s->temp_files < 0 ? json_null() : json_integer(s->temp_files));
    json_object_set_new(o, "indexes", indexes);
    json_object_set_new(o, "rows",
                        *s->rows ? json_integer(strtoll(s->rows, NULL, 10)) : json_null());
    return o;
}

json_t *dc_rehearse_json(const dc_rehearse_result_t *r)
{
    json_t *stmts = json_array();
    for (size_t i = 0; i < r->count; i++)
        json_array_append_new(stmts, stmt_json(&r->stmts[i]));
    json_t *applied = json_array();
    for (size_t i = 0; i < r->applied_count; i++)
        json_array_append_new(applied, json_string(r->applied[i]));
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:f, s:f, s:I, s:I, s:b, s:o, s:o}", "snapshot", r->snapshot,
        "scratch_database", r->scratch, "scratch_dropped", r->scratch_dropped, "restore_seconds",
        r->restore_seconds, "seconds", r->seconds, "max_lock_ms", (json_int_t)r->max_lock_ms,
        "over_threshold", (json_int_t)r->over_threshold, "ok",
        r->over_threshold == 0 && r->failed == NULL, "applied", applied, "statements", stmts);
    json_object_set_new(o, "failed", r->failed ? json_string(r->failed) : json_null());
    json_object_set_new(o, "failure", r->failure ? json_string(r->failure) : json_null());
    return o;
}

/* ---- Markdown ---- */

/* Table cells: a '|' would end the cell, a newline the row. */
static void md_cell(FILE *out, const char *text)
{
    dc_buf_t b = {0};
    dc_buf_append_md_cell(&b, text);
    if (b.len)
        fwrite(b.data, 1, b.len, out);
    dc_buf_free(&b);
}

void dc_rehearse_write_markdown(const dc_rehearse_result_t *r, FILE *out)
{
    char max[32];
    seconds_text((double)r->max_lock_ms / 1000.0, max, sizeof(max));
    bool ok = r->over_threshold == 0 && r->failed == NULL;
    fprintf(out, "## deployctl rehearse: %s\n\n", ok ? "passed" : "FAILED");
    fprintf(out,
            "Snapshot `%s` restored into a scratch database (%s); %zu statements of %zu "
            "migrations applied; write-blocking locks allowed up to %s.\n\n",
            r->snapshot, r->scratch_dropped ? "dropped" : "NOT dropped", r->count,
            r->applied_count + (r->failed != NULL), max);
    fprintf(out, "| | Migration | Line | Verdict | Time | Rows | WAL | Temp | Lint |\n"
                 "|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < r->count; i++) {
        const dc_rehearse_stmt_t *s = &r->stmts[i];
        stmt_figures_t f;
        stmt_figures(s, &f);
        fprintf(out, "| %s | `%s` | %d | ",
                s->over_threshold ? ":x:"
                : s->ok           ? ":white_check_mark:"
                                  : ":warning:",
                s->migration, s->line);
        md_cell(out, s->verdict ? s->verdict : "");
        fprintf(out, " | %s | %s | %s | %s | ", f.took, f.rows, f.wal, f.temp);
        for (size_t k = 0; k < s->lint_count; k++) {
            fputs(k ? "<br>" : "", out);
            md_cell(out, s->lint[k]);
        }
        fputs(" |\n", out);
    }
    if (r->failed != NULL) {
        fprintf(out, "\nMigration `%s` failed in the rehearsal: ", r->failed);
        md_cell(out, r->failure ? r->failure : "");
        fputc('\n', out);
    }
}
