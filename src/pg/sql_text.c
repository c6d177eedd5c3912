/* SQL text as PostgreSQL's scanner reads it, for the modules that split scripts with libpg_query
 * (lint, the migrate runner, restore): where a statement proper begins, line numbers, and where
 * a parse error points. */
#include <stdbool.h>
#include <stddef.h>

#include "deployctl/pg.h"

const char *dc_pg_sql_skip_blank(const char *p, const char *end)
{
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f') {
            p++;
        } else if (p + 1 < end && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n')
                p++;
        } else if (p + 1 < end && p[0] == '/' && p[1] == '*') {
            int depth = 1; /* PostgreSQL's block comments nest */
            for (p += 2; p < end && depth > 0; p++) {
                if (p + 1 < end && p[0] == '/' && p[1] == '*') {
                    depth++;
                    p++;
                } else if (p + 1 < end && p[0] == '*' && p[1] == '/') {
                    depth--;
                    p++;
                }
            }
        } else {
            break;
        }
    }
    return p < end ? p : end;
}

bool dc_pg_sql_statement(const char *sql, size_t len, size_t location, size_t stmt_len,
                         const char **begin, const char **start, const char **end)
{
    if (location > len)
        return false;
    if (stmt_len == 0 || location + stmt_len > len)
        stmt_len = len - location;
    *begin = sql + location;
    *end = *begin + stmt_len;
    *start = dc_pg_sql_skip_blank(*begin, *end);
    return true;
}

int dc_pg_sql_line(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n')
            line++;
    }
    return line;
}

const char *dc_pg_sql_error_at(const char *text, int cursorpos)
{
    const char *p = text;
    for (int chars = 0; *p != '\0' && chars < cursorpos - 1; chars++) {
        p++;
        while (((unsigned char)*p & 0xC0) == 0x80)
            p++;
    }
    return p;
}
