/* How a check report reads: lines like the seed's pre-migration-check (✅ / ⚠️ / ❌ name:
 * detail, then a verdict), or one JSON object. Not for running checks. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deployctl/check.h"

static const char *marker(dc_check_status_t status, bool unicode)
{
    switch (status) {
    case DC_CHECK_OK:
        return unicode ? "✅" : "[ok]  ";
    case DC_CHECK_WARNING:
        return unicode ? "⚠️" : "[warn]";
    case DC_CHECK_FAILED:
        return unicode ? "❌" : "[fail]";
    case DC_CHECK_SKIPPED:
        return unicode ? "➖" : "[skip]";
    }
    return "?";
}

static void print_verdict(FILE *out, const dc_check_report_t *report, bool unicode)
{
    size_t failed = dc_check_report_count(report, DC_CHECK_FAILED);
    size_t warnings = dc_check_report_count(report, DC_CHECK_WARNING);
    fputc('\n', out);
    if (failed > 0)
        fprintf(out,
                "%s Pre-migration checks failed (%zu failed, %zu warning%s). Do not proceed "
                "with migration.\n",
                marker(DC_CHECK_FAILED, unicode), failed, warnings, warnings == 1 ? "" : "s");
    else if (warnings > 0)
        fprintf(out,
                "%s Pre-migration checks passed with %zu warning%s. Read them before you "
                "proceed.\n",
                marker(DC_CHECK_WARNING, unicode), warnings, warnings == 1 ? "" : "s");
    else
        fprintf(out, "%s All pre-migration checks passed. Safe to proceed.\n",
                marker(DC_CHECK_OK, unicode));
}

void dc_check_report_print(FILE *out, const dc_check_report_t *report, bool unicode)
{
    fprintf(out, "%sPre-Migration Safety Checks\n\n", unicode ? "🔍 " : "");
    for (size_t i = 0; i < report->count; i++) {
        const dc_check_result_t *r = &report->results[i];
        fprintf(out, "%s %s: %s\n", marker(r->status, unicode), r->title, r->detail);
        for (size_t j = 0; j < r->item_count; j++)
            fprintf(out, "       - %s\n", r->items[j]);
    }
    print_verdict(out, report, unicode);
}

/* The length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    return n;
}

/* A JSON string of text that may not be UTF-8 (a server message in another encoding, a
 * detail cut in the middle of a character): invalid bytes become U+FFFD, so nothing is
 * dropped from the report. */
static json_t *json_text(const char *text)
{
    json_t *v = json_string(text);
    if (v != NULL)
        return v;
    size_t len = strlen(text);
    char *clean = malloc(3 * len + 1);
    if (clean == NULL)
        return json_string("");
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        size_t n = utf8_sequence(p);
        if (n == 0) {
            memcpy(clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(clean + o, p, n);
            o += n;
            p += n;
        }
    }
    clean[o] = '\0';
    v = json_string(clean);
    if (v == NULL) { /* overlong forms, surrogates: keep ASCII only */
        for (size_t i = 0; i < o; i++)
            clean[i] = (unsigned char)clean[i] < 0x80 ? clean[i] : '?';
        v = json_string(clean);
    }
    free(clean);
    return v != NULL ? v : json_string("");
}

char *dc_check_report_to_json(const dc_check_report_t *report)
{
    json_t *checks = json_array();
    for (size_t i = 0; i < report->count; i++) {
        const dc_check_result_t *r = &report->results[i];
        json_t *items = json_array();
        for (size_t j = 0; j < r->item_count; j++)
            json_array_append_new(items, json_text(r->items[j]));
        json_array_append_new(checks,
                              json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", r->name, "title",
                                        r->title, "status", dc_check_status_name(r->status),
                                        "detail", json_text(r->detail), "items", items));
    }
    json_t *root =
        json_pack("{s:s, s:b, s:{s:I, s:I, s:I, s:I}, s:o}", "verdict",
                  dc_check_status_name(dc_check_report_verdict(report)), "ok",
                  dc_check_report_verdict(report) != DC_CHECK_FAILED, "counts", "ok",
                  (json_int_t)dc_check_report_count(report, DC_CHECK_OK), "warning",
                  (json_int_t)dc_check_report_count(report, DC_CHECK_WARNING), "failed",
                  (json_int_t)dc_check_report_count(report, DC_CHECK_FAILED), "skipped",
                  (json_int_t)dc_check_report_count(report, DC_CHECK_SKIPPED), "checks", checks);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return text;
}

static bool names_utf8(const char *locale)
{
    return locale != NULL && (strcasestr(locale, "UTF-8") || strcasestr(locale, "UTF8"));
}

bool dc_check_unicode_wanted(void)
{
    const char *no_color = getenv("NO_COLOR");
    if (no_color != NULL && *no_color)
        return false;
    /* The first of these that is set decides, as in setlocale(3). */
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && *v)
            return names_utf8(v);
    }
    return false;
}
