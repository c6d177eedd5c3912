/* The check runner: the list of checks in the order they run, the report they fill, and the
 * verdict. Each check family lives in its own file; this one only sequences them and owns the
 * report's memory. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_intern.h"
#include "deployctl/log.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"
#include "needs.h"

/* Details quote server messages and other sessions' queries: mask every registered secret
 * before the text is kept, so no printer has to remember to. */
static char *redacted_vformat(const char *fmt, va_list ap)
{
    char raw[2048], safe[2048];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    dc_redact(raw, safe, sizeof(safe));
    return dc_strdup(safe);
}

dc_check_result_t *dc_check_add(dc_check_report_t *report, const char *name, const char *title,
                                dc_check_status_t status, const char *fmt, ...)
{
    report->results = dc_realloc(report->results, (report->count + 1) * sizeof(*report->results));
    dc_check_result_t *r = &report->results[report->count++];
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->title = title;
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    r->detail = redacted_vformat(fmt, ap);
    va_end(ap);
    return r;
}

void dc_check_add_item(dc_check_result_t *result, const char *fmt, ...)
{
    result->items = dc_realloc(result->items, (result->item_count + 1) * sizeof(char *));
    va_list ap;
    va_start(ap, fmt);
    result->items[result->item_count++] = redacted_vformat(fmt, ap);
    va_end(ap);
}

void dc_check_raise(dc_check_result_t *result, dc_check_status_t status)
{
    if (status > result->status)
        result->status = status;
}

const char *dc_check_status_name(dc_check_status_t status)
{
    switch (status) {
    case DC_CHECK_OK:
        return "ok";
    case DC_CHECK_WARNING:
        return "warning";
    case DC_CHECK_FAILED:
        return "failed";
    case DC_CHECK_SKIPPED:
        return "skipped";
    }
    return "failed";
}

size_t dc_check_report_count(const dc_check_report_t *report, dc_check_status_t status)
{
    size_t n = 0;
    for (size_t i = 0; i < report->count; i++)
        n += report->results[i].status == status;
    return n;
}

dc_check_status_t dc_check_report_verdict(const dc_check_report_t *report)
{
    dc_check_status_t verdict = DC_CHECK_OK;
    for (size_t i = 0; i < report->count; i++) {
        if (report->results[i].status > verdict)
            verdict = report->results[i].status;
    }
    return verdict;
}

void dc_check_report_free(dc_check_report_t *report)
{
    for (size_t i = 0; i < report->count; i++) {
        free(report->results[i].detail);
        for (size_t j = 0; j < report->results[i].item_count; j++)
            free(report->results[i].items[j]);
        free(report->results[i].items);
    }
    free(report->results);
    memset(report, 0, sizeof(*report));
}

void dc_check_opts_init(dc_check_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->migrations_dir = "prisma/migrations";
    opts->max_snapshot_age_ms = 24ull * 3600 * 1000;
    opts->max_transaction_age_ms = 5ull * 60 * 1000;
    opts->connections_needed = 3;
}

void dc_check_skip_no_connection(dc_check_ctx_t *ctx, const char *name, const char *title)
{
    dc_check_add(ctx->report, name, title, DC_CHECK_SKIPPED,
                 "not checked: no connection to the database");
}

bool dc_check_timed_out(const dc_error_t *err)
{
    return strstr(err->message, "lock timeout") != NULL ||
           strstr(err->message, "statement timeout") != NULL;
}

typedef void (*check_fn)(dc_check_ctx_t *ctx);

/* The order is the seed's (connection, then migrations, then backup, then disk) followed by
 * what blocks DDL; the connection comes first because most checks read through it. */
static const check_fn checks[] = {
    dc_check_connection,     dc_check_pooler,          dc_check_pooled_url,
    dc_check_migrations,     dc_check_snapshot,        dc_check_free_space,
    dc_check_locks,          dc_check_wraparound,      dc_check_pg_dump,
    dc_check_privileges,     dc_check_invalid_indexes, dc_check_connection_headroom,
    dc_check_prepared_xacts,
};

int dc_check_run(const dc_check_opts_t *opts, dc_check_report_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (opts->database_url == NULL || *opts->database_url == '\0')
        return dc_error_set(err,
                            "no database given: use --database URL, set "
                            "DATABASE_URL_DIRECT, DIRECT_URL or DATABASE_URL, or database.url in "
                            "the config file");
    dc_check_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.opts = opts;
    ctx.report = out;
    ctx.pending_count = -1;
    dc_pg_register_secrets(opts->database_url);
    if (opts->pooled_url != NULL)
        dc_pg_register_secrets(opts->pooled_url);
    ctx.libpq_url = dc_pg_url_for_libpq(opts->database_url, &ctx.prisma_schema);
    if (dc_pg_url_database(ctx.libpq_url, ctx.database, sizeof(ctx.database), err) != 0) {
        free(ctx.libpq_url);
        free(ctx.prisma_schema);
        return -1;
    }
    /* Ctrl-C or SIGTERM stops between checks, and cancels the query in progress (once the
     * connection check has connected), so nothing waits for a lock or a slow query to end. */
    int rc = 0;
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]) && rc == 0; i++) {
        rc = dc_signal_check(err);
        if (rc == 0)
            checks[i](&ctx);
        if (i == 0 && ctx.conn != NULL)
            dc_signals_cancel_conn(ctx.conn);
    }
    dc_signals_cancel_conn(NULL);
    if (ctx.conn != NULL)
        PQfinish(ctx.conn);
    free(ctx.libpq_url);
    free(ctx.prisma_schema);
    if (ctx.needs != NULL)
        dc_needs_free(ctx.needs);
    free(ctx.needs);
    free(ctx.needs_error);
    if (rc != 0)
        dc_check_report_free(out);
    else
        out->verdict = dc_check_report_verdict(out);
    return rc;
}
