/* Smoke tests after a deploy: HTTP checks run concurrently through libcurl's multi interface,
 * each retried until it passes or the window closes (a new deployment may need a while to come
 * up), and SQL checks against the database. An attempt is either a failure (an answer that is
 * not the one expected: status, body, latency) or an error (no answer: refused, reset, timed
 * out); the two are counted apart, and every attempt is kept for the report. No printing.
 * HTTP: a fresh connection per attempt, TLS always verified (ca_file adds a CA), redirects not
 * followed (a 3xx fails unless expected: a redirect to a login or maintenance page answering 200
 * must not pass), the body read up to 1 MiB (the substring is looked for there). SQL: each query
 * runs in a READ ONLY transaction with statement_timeout = the request timeout; an error the
 * server answers (a DO block that raises) is a failure, no connection or a timeout an error. */
#ifndef DEPLOYCTL_SMOKE_H
#define DEPLOYCTL_SMOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployctl/error.h"

typedef enum {
    DC_SMOKE_HTTP,
    DC_SMOKE_SQL,
} dc_smoke_kind_t;

typedef struct dc_smoke_check {
    dc_smoke_kind_t kind;
    const char *name;        /* for the report; NULL: the URL, or "sql <n>" */
    const char *url;         /* HTTP: http:// or https:// only */
    int expect_status;       /* HTTP: 0 = any 2xx */
    const char *expect_body; /* HTTP: a substring the body must contain, or NULL */
    uint64_t max_latency_ms; /* HTTP: slower answers fail; 0 = no budget */
    const char *sql;         /* SQL: passes when it returns no rows, or one row of one true */
} dc_smoke_check_t;

typedef struct dc_smoke_opts {
    uint64_t window_ms;          /* keep retrying a check until it passes or this has passed */
    uint64_t interval_ms;        /* pause between attempts of one check (default 1000; 0 too) */
    uint64_t request_timeout_ms; /* one attempt, HTTP or SQL (default 10000; 0 too) */
    const char *database_url;    /* for SQL checks (libpq form); secrets never in results */
    const char *ca_file;         /* extra CA bundle for https, or NULL */
} dc_smoke_opts_t;

/* dc_smoke_opts_init: window 60 s, interval 1 s, request timeout 10 s. */
void dc_smoke_opts_init(dc_smoke_opts_t *opts);

typedef struct dc_smoke_attempt {
    size_t check;        /* index into the checks */
    uint64_t started_ms; /* since dc_smoke_run began */
    uint64_t latency_ms;
    int status; /* HTTP status, 0 when none */
    bool passed;
    bool error;       /* no answer (vs a wrong answer) */
    char detail[256]; /* "HTTP 503", "connection refused", "body lacks \"ok\"" */
} dc_smoke_attempt_t;

typedef struct dc_smoke_check_result {
    bool passed;
    size_t attempts, failures, errors;
} dc_smoke_check_result_t;

typedef struct dc_smoke_result {
    dc_smoke_check_result_t *checks; /* one per check, same order */
    size_t check_count;
    dc_smoke_attempt_t *attempts; /* every attempt, in the order they ended */
    size_t attempt_count;
    size_t failures, errors; /* totals over all attempts that did not pass */
    bool passed;             /* every check passed */
    uint64_t duration_ms;
} dc_smoke_result_t;

/* Runs every check until each has passed once or the window closes. A check that does not pass
 * is a result (passed = false), not an error: -1 only when the checks cannot run at all (a
 * malformed URL, a scheme other than http/https, out of memory), with a message naming it. */
int dc_smoke_run(const dc_smoke_check_t *checks, size_t count, const dc_smoke_opts_t *opts,
                 dc_smoke_result_t *out, dc_error_t *err);
void dc_smoke_result_free(dc_smoke_result_t *result);

/* A check's name for reports and messages: its name, else its URL with any password masked,
 * else "sql <n>" (n = index + 1). */
void dc_smoke_check_name(const dc_smoke_check_t *check, size_t index, char *out, size_t size);

/* Reads a directory of *.sql files (name order) as SQL checks: each file is one query. The
 * strings in *checks (name, sql) are owned by the array; free with dc_smoke_checks_free. */
int dc_smoke_read_sql_dir(const char *dir, dc_smoke_check_t **checks, size_t *count,
                          dc_error_t *err);
void dc_smoke_checks_free(dc_smoke_check_t *checks, size_t count);

#endif
