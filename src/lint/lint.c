/* The lint driver: parses one migration's SQL with libpg_query, finds each statement's text,
 * line and `-- deployctl:allow` comments, and hands the statement to the rules (rules.c).
 * Reading directories is dir.c's; the result and its JSON form are result.c's. */
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "lint_intern.h"

#define STATEMENT_SHOWN_MAX 200 /* bytes of a statement shown in a finding */

static const char ALLOW_TAG[] = "deployctl:allow";

/* ---- positions ---- */

/* Lines are counted forward from the last statement, so a file is read once. */
typedef struct line_cursor {
    size_t pos;
    int line;
} line_cursor_t;

static int line_at(line_cursor_t *cur, const char *sql, size_t pos)
{
    if (pos < cur->pos) {
        cur->pos = 0;
        cur->line = 1;
    }
    for (; cur->pos < pos; cur->pos++) {
        if (sql[cur->pos] == '\n')
            cur->line++;
    }
    return cur->line;
}

/* The statement on one line: white space runs collapsed, shortened on a UTF-8 boundary. */
static char *display_text(const char *s, size_t len)
{
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    char *out = dc_malloc(STATEMENT_SHOWN_MAX + 4);
    size_t n = 0;
    bool space = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            space = true;
            continue;
        }
        size_t need = space && n > 0 ? 2 : 1;
        if (n + need > STATEMENT_SHOWN_MAX) {
            /* Cut before the character c is part of, not inside it. */
            if (((unsigned char)c & 0xC0) == 0x80) {
                while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80)
                    n--;
                if (n > 0)
                    n--;
            }
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (space && n > 0)
            out[n++] = ' ';
        space = false;
        out[n++] = c;
    }
    out[n] = '\0';
    return out;
}

/* ---- allow comments ---- */

/* "-- deployctl:allow rule-a, rule-b -- reason": the rules, up to a second "--". */
static void parse_allow_line(lint_ctx_t *ctx, const char *p, const char *eol)
{
    size_t tag_len = sizeof(ALLOW_TAG) - 1;
    p += 2;
    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(eol - p) < tag_len || strncasecmp(p, ALLOW_TAG, tag_len) != 0)
        return;
    p += tag_len;
    if (p < eol && *p != ' ' && *p != '\t' && *p != ',')
        return; /* deployctl:allowed, ... */
    while (p < eol) {
        while (p < eol && (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r'))
            p++;
        if (p >= eol || (p + 1 < eol && p[0] == '-' && p[1] == '-'))
            break;
        const char *word = p;
        while (p < eol && *p != ' ' && *p != '\t' && *p != ',' && *p != '\r')
            p++;
        if (ctx->allow_count < LINT_MAX_ALLOW) {
            size_t n = (size_t)(p - word);
            char *dst = ctx->allow[ctx->allow_count++];
            if (n >= LINT_RULE_ID_MAX)
                n = LINT_RULE_ID_MAX - 1;
            for (size_t i = 0; i < n; i++)
                dst[i] = (char)((word[i] >= 'A' && word[i] <= 'Z') ? word[i] + 32 : word[i]);
            dst[n] = '\0';
        }
    }
}

/* Reads the `--` comment lines directly above the statement (no blank line between). A line
 * that began inside the previous statement ("DROP TABLE a; -- ...") belongs to that one. */
static void collect_allow(lint_ctx_t *ctx, const char *sql, size_t gap_begin, size_t start)
{
    ctx->allow_count = 0;
    size_t line_begin = start;
    while (line_begin > gap_begin && sql[line_begin - 1] != '\n')
        line_begin--;
    while (line_begin > gap_begin) {
        size_t prev_end = line_begin - 1; /* its '\n' */
        size_t prev_begin = prev_end;
        while (prev_begin > 0 && sql[prev_begin - 1] != '\n')
            prev_begin--;
        if (prev_begin < gap_begin)
            break;
        size_t p = prev_begin;
        while (p < prev_end && (sql[p] == ' ' || sql[p] == '\t'))
            p++;
        if (p + 1 >= prev_end || sql[p] != '-' || sql[p + 1] != '-')
            break;
        parse_allow_line(ctx, sql + p, sql + prev_end);
        line_begin = prev_begin;
    }
}

static bool is_allowed(const lint_ctx_t *ctx, const char *rule_id)
{
    for (size_t i = 0; i < ctx->allow_count; i++) {
        if (strcmp(ctx->allow[i], rule_id) == 0)
            return true;
    }
    return false;
}

void lint_report(lint_ctx_t *ctx, const char *rule_id, const char *fmt, ...)
{
    const dc_lint_rule_t *rule = dc_lint_rule_find(rule_id);
    if (rule == NULL)
        return; /* every id the rules use is in the table; test_lint checks each */
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    dc_lint_class_t cls = rule->cls >= 0 ? (dc_lint_class_t)rule->cls : ctx->stmt_class;
    lint_result_add_finding(ctx->result, ctx->migration, ctx->line, ctx->statement, rule, cls,
                            message, is_allowed(ctx, rule_id));
}

/* ---- one file ---- */

static void lint_statement(lint_ctx_t *ctx, const char *sql, size_t len, json_t *raw,
                           line_cursor_t *cur)
{
    const char *begin, *start, *end;
    if (!dc_pg_sql_statement(
            sql, len, (size_t)json_integer_value(lint_json_get(raw, "stmt_location")),
            (size_t)json_integer_value(lint_json_get(raw, "stmt_len")), &begin, &start, &end))
        return;
    char *text = display_text(start, (size_t)(end - start));
    ctx->line = line_at(cur, sql, (size_t)(start - sql));
    ctx->statement = text;
    collect_allow(ctx, sql, (size_t)(begin - sql), (size_t)(start - sql));
    lint_check_statement(ctx, lint_json_get(raw, "stmt"));
    for (size_t i = 0; i < ctx->allow_count; i++) {
        if (dc_lint_rule_find(ctx->allow[i]) == NULL)
            lint_report(ctx, "unknown-allow-rule",
                        "the deployctl:allow comment above this statement names \"%s\", which "
                        "is not a rule",
                        ctx->allow[i]);
    }
    dc_lint_migration_t *m = &ctx->result->migrations[ctx->migration];
    m->statements++;
    if (ctx->stmt_class > m->cls)
        m->cls = ctx->stmt_class;
    ctx->statement = NULL;
    free(text);
}

int lint_sql_named(const char *sql, const char *name, const char *file, const char *label,
                   dc_lint_result_t *out, dc_error_t *err)
{
    PgQueryParseResult parsed = pg_query_parse(sql);
    if (parsed.error != NULL) {
        line_cursor_t cur = {0, 1};
        if (parsed.error->cursorpos > 0)
            dc_error_set(err,
                         "%s:%d: %s; PostgreSQL would refuse this migration too: fix the SQL "
                         "and lint again",
                         label,
                         line_at(&cur, sql,
                                 (size_t)(dc_pg_sql_error_at(sql, parsed.error->cursorpos) - sql)),
                         parsed.error->message);
        else
            dc_error_set(err, "%s: %s; fix the SQL and lint again", label, parsed.error->message);
        pg_query_free_parse_result(parsed);
        return -1;
    }
    json_error_t jerr;
    json_t *tree = json_loads(parsed.parse_tree, 0, &jerr);
    pg_query_free_parse_result(parsed);
    if (tree == NULL)
        return dc_error_set(err, "%s: cannot read the parser's output: %s", label, jerr.text);

    lint_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.result = out;
    ctx.migration = lint_result_add_migration(out, name, file);
    json_t *stmts = lint_json_get(tree, "stmts");
    ctx.statement_count = json_array_size(stmts);
    size_t len = strlen(sql), i;
    line_cursor_t cur = {0, 1};
    json_t *raw;
    json_array_foreach(stmts, i, raw)
    {
        lint_statement(&ctx, sql, len, raw, &cur);
    }
    lint_ctx_free(&ctx);
    json_decref(tree);
    return 0;
}

int dc_lint_sql(const char *sql, const char *file, dc_lint_result_t *out, dc_error_t *err)
{
    return lint_sql_named(sql, file, file, file, out, err);
}
