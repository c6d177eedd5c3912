/* Running pg_dump's schema scripts through libpq: psql meta-commands are not SQL, so the
 * \restrict lines carrying the snapshot's own key are dropped and any other is refused; the
 * rest is split with PostgreSQL's own scanner (libpg_query) and pipelined statement by
 * statement, so that an error names its statement. */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"
#include "restore_intern.h"

#define PIPELINE_BATCH 256

/* Removes the exact "\restrict KEY" and "\unrestrict KEY" lines; returns the new length. */
static size_t drop_restrict_lines(char *text, size_t len, const char *key)
{
    if (key == NULL || *key == '\0')
        return len;
    char restrict_line[128], unrestrict_line[128];
    snprintf(restrict_line, sizeof(restrict_line), "\\restrict %s", key);
    snprintf(unrestrict_line, sizeof(unrestrict_line), "\\unrestrict %s", key);
    size_t out = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
        size_t next = pos + line_len + (nl ? 1 : 0);
        bool drop = (line_len == strlen(restrict_line) &&
                     memcmp(text + pos, restrict_line, line_len) == 0) ||
                    (line_len == strlen(unrestrict_line) &&
                     memcmp(text + pos, unrestrict_line, line_len) == 0);
        if (drop) {
            /* Keep the newline so line numbers still match the member. */
            if (nl)
                text[out++] = '\n';
        } else {
            memmove(text + out, text + pos, next - pos);
            out += next - pos;
        }
        pos = next;
    }
    text[out] = '\0';
    return out;
}

/* Sends a batch in pipeline mode and reads every result: one round trip for the batch. */
static int run_batch(PGconn *conn, const dc_statement_t *stmts, size_t n, const char *label,
                     dc_error_t *err)
{
    if (PQenterPipelineMode(conn) != 1)
        return dc_pg_error(conn, NULL, "entering pipeline mode", err);
    size_t sent = 0;
    for (; sent < n; sent++) {
        if (PQsendQueryParams(conn, stmts[sent].text, 0, NULL, NULL, NULL, NULL, 0) != 1)
            break;
    }
    PQpipelineSync(conn);
    int rc = 0;
    for (size_t i = 0; i < sent; i++) {
        PGresult *res;
        while ((res = PQgetResult(conn)) != NULL) {
            ExecStatusType st = PQresultStatus(res);
            if (rc == 0 && st == PGRES_FATAL_ERROR) {
                char what[256];
                char first[96];
                snprintf(first, sizeof(first), "%s", stmts[i].text);
                for (char *c = first; *c; c++) {
                    if (*c == '\n')
                        *c = ' ';
                }
                snprintf(what, sizeof(what), "%s, statement at line %d (%s%s)", label,
                         stmts[i].line, first, strlen(stmts[i].text) > 90 ? "..." : "");
                rc = dc_pg_error(conn, res, what, err);
            }
            PQclear(res);
        }
    }
    /* The sync's own result, then leave pipeline mode. */
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        PQclear(res);
    }
    PQexitPipelineMode(conn);
    if (rc == 0 && sent < n)
        rc = dc_pg_error(conn, NULL, label, err);
    return rc;
}

int dc_restore_split_script(const char *script, size_t len, const char *restrict_key,
                            const char *label, dc_script_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    char *text = dc_strndup(script, len);
    len = drop_restrict_lines(text, len, restrict_key);
    PgQuerySplitResult split = pg_query_split_with_scanner(text);
    if (split.error != NULL) {
        int error_line = dc_pg_sql_line(text, dc_pg_sql_error_at(text, split.error->cursorpos));
        /* What confuses PostgreSQL's scanner in a pg_dump script is a psql meta-command. */
        const char *meta = *text == '\\' ? text : strstr(text, "\n\\");
        if (meta != NULL && *meta == '\n')
            meta++;
        if (meta != NULL && dc_pg_sql_line(text, meta) <= error_line) {
            const char *eol = strchr(meta, '\n');
            int shown = (int)(eol ? eol - meta : (long)strlen(meta));
            dc_error_set(err,
                         "%s holds a psql meta-command at line %d (%.*s): a schema script may "
                         "only carry the snapshot's own \\restrict lines",
                         label, dc_pg_sql_line(text, meta), shown > 60 ? 60 : shown, meta);
        } else {
            dc_error_set(err, "%s cannot be read as SQL at line %d: %s", label, error_line,
                         split.error->message);
        }
        pg_query_free_split_result(split);
        free(text);
        return -1;
    }
    out->statements = dc_calloc((size_t)split.n_stmts + 1, sizeof(dc_statement_t));
    int rc = 0;
    for (int i = 0; i < split.n_stmts; i++) {
        const char *begin = text + split.stmts[i]->stmt_location;
        const char *end = begin + split.stmts[i]->stmt_len;
        const char *start = dc_pg_sql_skip_blank(begin, end);
        if (start == end)
            continue;
        if (*start == '\\') {
            const char *eol = memchr(start, '\n', (size_t)(end - start));
            int shown = (int)((eol ? eol : end) - start);
            rc = dc_error_set(err,
                              "%s holds a psql meta-command at line %d (%.*s): a schema script "
                              "may only carry the snapshot's own \\restrict lines",
                              label, dc_pg_sql_line(text, start), shown > 60 ? 60 : shown, start);
            break;
        }
        dc_statement_t *st = &out->statements[out->count++];
        st->text = dc_strndup(start, (size_t)(end - start));
        st->line = dc_pg_sql_line(text, start);
    }
    pg_query_free_split_result(split);
    free(text);
    if (rc != 0)
        dc_restore_script_free(out);
    return rc;
}

void dc_restore_script_free(dc_script_t *script)
{
    for (size_t i = 0; i < script->count; i++)
        free(script->statements[i].text);
    free(script->statements);
    memset(script, 0, sizeof(*script));
}

int dc_restore_run_statements(PGconn *conn, const dc_statement_t *stmts, size_t count,
                              const char *label, dc_error_t *err)
{
    int rc = 0;
    for (size_t first = 0; rc == 0 && first < count; first += PIPELINE_BATCH) {
        size_t n = count - first < PIPELINE_BATCH ? count - first : PIPELINE_BATCH;
        rc = run_batch(conn, stmts + first, n, label, err);
    }
    return rc;
}

int dc_restore_run_script(PGconn *conn, const char *script, size_t len, const char *restrict_key,
                          const char *label, dc_error_t *err)
{
    dc_script_t parsed;
    if (dc_restore_split_script(script, len, restrict_key, label, &parsed, err) != 0)
        return -1;
    int rc = dc_restore_run_statements(conn, parsed.statements, parsed.count, label, err);
    if (rc == 0)
        dc_log_debug("%s: %zu statements", label, parsed.count);
    dc_restore_script_free(&parsed);
    return rc;
}
