/* Smoke checks after a deploy: the HTTP checks, all in flight at once through libcurl's multi
 * interface and each retried until it passes or the window closes, plus the bookkeeping every
 * check shares (clock, retry schedule, attempts). The SQL checks live in smoke_sql.c and run
 * beside the HTTP ones in a thread. No printing: the caller reports. */
#include "deployctl/smoke.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deployctl/log.h"
#include "deployctl/util.h"
#include "smoke_intern.h"

/* A body is read up to this much: enough for any health page, and a check against an endpoint
 * that streams (or a huge page) cannot grow memory or run until the timeout. */
#define SMOKE_BODY_MAX (1024 * 1024)

void dc_smoke_opts_init(dc_smoke_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->window_ms = 60000;
    opts->interval_ms = 1000;
    opts->request_timeout_ms = 10000;
}

/* ---- the shared clock, schedule and record ---- */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t dc_smoke_clock_ms(const dc_smoke_run_t *run)
{
    return monotonic_ms() - run->start_ms;
}

uint64_t dc_smoke_attempt_timeout(const dc_smoke_run_t *run, uint64_t now_ms, bool first)
{
    uint64_t timeout = run->opts.request_timeout_ms;
    if (first)
        return timeout;
    uint64_t left = now_ms < run->opts.window_ms ? run->opts.window_ms - now_ms : 1;
    return left < timeout ? left : timeout;
}

bool dc_smoke_schedule_retry(const dc_smoke_run_t *run, uint64_t end_ms, uint64_t *next_ms)
{
    *next_ms = end_ms + run->opts.interval_ms;
    return *next_ms < run->opts.window_ms;
}

void dc_smoke_record(dc_smoke_run_t *run, const dc_smoke_attempt_t *attempt)
{
    pthread_mutex_lock(&run->lock);
    dc_smoke_result_t *out = run->out;
    if (out->attempt_count == run->attempt_cap) {
        run->attempt_cap = run->attempt_cap ? run->attempt_cap * 2 : 16;
        out->attempts = dc_realloc(out->attempts, run->attempt_cap * sizeof(*out->attempts));
    }
    out->attempts[out->attempt_count++] = *attempt;
    dc_smoke_check_result_t *c = &out->checks[attempt->check];
    c->attempts++;
    if (attempt->passed) {
        c->passed = true;
    } else if (attempt->error) {
        c->errors++;
        out->errors++;
    } else {
        c->failures++;
        out->failures++;
    }
    pthread_mutex_unlock(&run->lock);
}

/* ---- checking the checks before anything runs ---- */

void dc_smoke_check_name(const dc_smoke_check_t *check, size_t index, char *out, size_t size)
{
    if (check->name != NULL && *check->name != '\0')
        snprintf(out, size, "%s", check->name);
    else if (check->kind == DC_SMOKE_HTTP && check->url != NULL)
        dc_redact(check->url, out, size); /* a password in the URL stays out of messages */
    else
        snprintf(out, size, "%s %zu", check->kind == DC_SMOKE_SQL ? "sql" : "check", index + 1);
}

static int validate_url(const char *label, const char *url, dc_error_t *err)
{
    char shown[512];
    dc_redact(url, shown, sizeof(shown));
    CURLU *u = curl_url();
    if (u == NULL)
        return dc_error_set(err, "smoke check %s: out of memory", label);
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    char *scheme = NULL;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK)
        return dc_error_set(err,
                            "smoke check %s: malformed URL \"%s\" (%s): give a full URL such as "
                            "https://app.example.com/health",
                            label, shown, curl_url_strerror(uc));
    bool web = strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0;
    if (!web)
        dc_error_set(err,
                     "smoke check %s: URL scheme \"%s\" is not supported in \"%s\": use an "
                     "http:// or https:// URL",
                     label, scheme, shown);
    curl_free(scheme);
    return web ? 0 : -1;
}

static int validate_check(const dc_smoke_check_t *check, size_t index, const dc_smoke_opts_t *opts,
                          dc_error_t *err)
{
    char label[512];
    dc_smoke_check_name(check, index, label, sizeof(label));
    switch (check->kind) {
    case DC_SMOKE_HTTP:
        if (check->url == NULL || *check->url == '\0')
            return dc_error_set(err, "smoke check %s: no URL given", label);
        if (check->expect_status != 0 && (check->expect_status < 100 || check->expect_status > 599))
            return dc_error_set(err,
                                "smoke check %s: expected status %d is not an HTTP status: give "
                                "100..599, or 0 for any 2xx",
                                label, check->expect_status);
        return validate_url(label, check->url, err);
    case DC_SMOKE_SQL:
        if (check->sql == NULL || strspn(check->sql, " \t\r\n;") == strlen(check->sql))
            return dc_error_set(err, "smoke check %s: the query is empty", label);
        if (opts->database_url == NULL || *opts->database_url == '\0')
            return dc_error_set(err,
                                "smoke check %s is an SQL check but no database is given: set "
                                "--database or DATABASE_URL",
                                label);
        return 0;
    }
    return dc_error_set(err, "smoke check %s: unknown kind %d", label, (int)check->kind);
}

/* ---- one HTTP check ---- */

typedef struct http_check {
    size_t index;
    const dc_smoke_check_t *check;
    CURL *easy; /* an attempt in flight when non-NULL */
    bool done;
    bool first;
    uint64_t next_ms; /* when the next attempt may start */
    uint64_t started_ms;
    uint64_t timeout_ms; /* of the attempt in flight */
    char *body;          /* the first SMOKE_BODY_MAX bytes */
    size_t body_len;
    bool body_capped;
    char errbuf[CURL_ERROR_SIZE];
} http_check_t;

/* Keeps the start of the body; past the cap the transfer stops (reported as CURLE_WRITE_ERROR,
 * which finish_attempt knows is ours). */
static size_t collect_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    http_check_t *hc = ctx;
    size_t n = size * nmemb;
    size_t room = SMOKE_BODY_MAX - hc->body_len;
    size_t take = n < room ? n : room;
    if (take > 0) {
        hc->body = dc_realloc(hc->body, hc->body_len + take);
        memcpy(hc->body + hc->body_len, data, take);
        hc->body_len += take;
    }
    if (take < n) {
        hc->body_capped = true;
        return 0;
    }
    return n;
}

static int start_attempt(dc_smoke_run_t *run, CURLM *multi, http_check_t *hc, uint64_t now)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return -1;
    free(hc->body);
    hc->body = NULL;
    hc->body_len = 0;
    hc->body_capped = false;
    hc->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, hc->check->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects are not followed: a smoke check is about the deployment it names, and a
     * redirect (to a login page, a maintenance host, another region) answering 200 would pass
     * for the wrong reason. A check that means to test a redirect expects its 3xx status. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "deployctl-smoke/" DEPLOYCTL_VERSION);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (run->opts.ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, run->opts.ca_file);
    /* a fresh connection each attempt: a retry must see the new deployment, not a kept-alive
     * connection to the old one */
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    hc->timeout_ms = dc_smoke_attempt_timeout(run, now, hc->first);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)hc->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, hc);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, hc->errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, hc);
    if (curl_multi_add_handle(multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        return -1;
    }
    hc->easy = h;
    hc->first = false;
    hc->started_ms = now;
    return 0;
}

/* No answer: what went wrong, in a few words a user can act on. */
static void describe_error(http_check_t *hc, CURLcode rc, uint64_t timeout_ms, char *out,
                           size_t size)
{
    long os_errno = 0;
    curl_easy_getinfo(hc->easy, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = hc->errbuf[0] ? hc->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(out, size, "connection refused (%s)", why);
        else
            snprintf(out, size, "cannot connect (%s)", why);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(out, size, "no answer within %llu ms", (unsigned long long)timeout_ms);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(out, size, "cannot resolve the host (%s)", why);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(out, size, "TLS: %s (a private CA goes in the smoke CA file)", why);
        break;
    default:
        snprintf(out, size, "%s", why);
        break;
    }
}

static bool status_ok(int expect, long status)
{
    return expect == 0 ? status >= 200 && status <= 299 : status == expect;
}

/* An answer: judged on status, then body, then latency. */
static void judge_answer(http_check_t *hc, long status, uint64_t latency_ms, dc_smoke_attempt_t *a)
{
    const dc_smoke_check_t *c = hc->check;
    if (!status_ok(c->expect_status, status)) {
        char want[32];
        if (c->expect_status == 0)
            snprintf(want, sizeof(want), "any 2xx");
        else
            snprintf(want, sizeof(want), "%d", c->expect_status);
        char *location = NULL;
        curl_easy_getinfo(hc->easy, CURLINFO_REDIRECT_URL, &location);
        if (location != NULL)
            snprintf(a->detail, sizeof(a->detail),
                     "HTTP %ld, want %s (redirect to %s, not followed)", status, want, location);
        else
            snprintf(a->detail, sizeof(a->detail), "HTTP %ld, want %s", status, want);
        return;
    }
    if (c->expect_body != NULL && *c->expect_body != '\0' &&
        (hc->body == NULL ||
         memmem(hc->body, hc->body_len, c->expect_body, strlen(c->expect_body)) == NULL)) {
        snprintf(a->detail, sizeof(a->detail), "HTTP %ld, body lacks \"%s\"%s", status,
                 c->expect_body, hc->body_capped ? " in its first MiB" : "");
        return;
    }
    if (c->max_latency_ms > 0 && latency_ms > c->max_latency_ms) {
        snprintf(a->detail, sizeof(a->detail), "HTTP %ld in %llu ms, over the %llu ms budget",
                 status, (unsigned long long)latency_ms, (unsigned long long)c->max_latency_ms);
        return;
    }
    a->passed = true;
    snprintf(a->detail, sizeof(a->detail), "HTTP %ld in %llu ms", status,
             (unsigned long long)latency_ms);
}

static void finish_attempt(dc_smoke_run_t *run, CURLM *multi, http_check_t *hc, CURLcode rc)
{
    uint64_t now = dc_smoke_clock_ms(run);
    dc_smoke_attempt_t a = {.check = hc->index, .started_ms = hc->started_ms};
    curl_off_t total_us = 0;
    long status = 0;
    curl_easy_getinfo(hc->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(hc->easy, CURLINFO_RESPONSE_CODE, &status);
    a.latency_ms = total_us > 0 ? (uint64_t)total_us / 1000u : now - hc->started_ms;
    a.status = (int)status;
    bool answered = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && hc->body_capped);
    if (answered) {
        judge_answer(hc, status, a.latency_ms, &a);
    } else {
        a.error = true;
        describe_error(hc, rc, hc->timeout_ms, a.detail, sizeof(a.detail));
    }
    dc_utf8_truncate(a.detail, sizeof(a.detail) - 1);
    dc_smoke_record(run, &a);

    curl_multi_remove_handle(multi, hc->easy);
    curl_easy_cleanup(hc->easy);
    hc->easy = NULL;
    free(hc->body);
    hc->body = NULL;
    hc->body_len = 0;
    if (a.passed || !dc_smoke_schedule_retry(run, now, &hc->next_ms))
        hc->done = true;
}

/* ---- the HTTP loop ---- */

/* Starts the attempts that are due; returns -1 when libcurl cannot (out of memory). */
static int start_due(dc_smoke_run_t *run, CURLM *multi, http_check_t *hcs, size_t n)
{
    uint64_t now = dc_smoke_clock_ms(run);
    for (size_t i = 0; i < n; i++) {
        http_check_t *hc = &hcs[i];
        if (hc->done || hc->easy != NULL || hc->next_ms > now)
            continue;
        if (start_attempt(run, multi, hc, now) != 0)
            return -1;
    }
    return 0;
}

static void collect_finished(dc_smoke_run_t *run, CURLM *multi)
{
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        http_check_t *hc = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&hc);
        finish_attempt(run, multi, hc, msg->data.result);
    }
}

/* How long to wait for sockets before the next idle check is due (curl adds its own timers). */
static int poll_timeout(dc_smoke_run_t *run, const http_check_t *hcs, size_t n, bool *pending)
{
    uint64_t now = dc_smoke_clock_ms(run);
    uint64_t wait = 1000;
    *pending = false;
    for (size_t i = 0; i < n; i++) {
        if (hcs[i].done)
            continue;
        *pending = true;
        if (hcs[i].easy == NULL) {
            uint64_t due = hcs[i].next_ms > now ? hcs[i].next_ms - now : 0;
            wait = due < wait ? due : wait;
        }
    }
    return (int)wait;
}

static int http_loop(dc_smoke_run_t *run, http_check_t *hcs, size_t n, dc_error_t *err)
{
    CURLM *multi = curl_multi_init();
    if (multi == NULL)
        return dc_error_set(err, "smoke checks: libcurl cannot start (out of memory)");
    int rc = 0;
    for (;;) {
        if (start_due(run, multi, hcs, n) != 0) {
            rc = dc_error_set(err, "smoke checks: libcurl cannot start a request (out of memory)");
            break;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        collect_finished(run, multi);
        bool pending;
        int wait = poll_timeout(run, hcs, n, &pending);
        if (!pending)
            break;
        if (wait > 0)
            curl_multi_poll(multi, NULL, 0, wait, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (hcs[i].easy != NULL) {
            curl_multi_remove_handle(multi, hcs[i].easy);
            curl_easy_cleanup(hcs[i].easy);
        }
        free(hcs[i].body);
    }
    curl_multi_cleanup(multi);
    return rc;
}

/* ---- the run ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void fill_defaults(dc_smoke_opts_t *opts)
{
    if (opts->interval_ms == 0)
        opts->interval_ms = 1000; /* 0 would retry a refused connection in a tight loop */
    if (opts->request_timeout_ms == 0)
        opts->request_timeout_ms = 10000;
}

static bool has_kind(const dc_smoke_check_t *checks, size_t count, dc_smoke_kind_t kind)
{
    for (size_t i = 0; i < count; i++)
        if (checks[i].kind == kind)
            return true;
    return false;
}

static int run_checks(dc_smoke_run_t *run, dc_error_t *err)
{
    size_t n = 0;
    http_check_t *hcs = dc_calloc(run->count ? run->count : 1, sizeof(*hcs));
    for (size_t i = 0; i < run->count; i++) {
        if (run->checks[i].kind != DC_SMOKE_HTTP)
            continue;
        hcs[n].index = i;
        hcs[n].check = &run->checks[i];
        hcs[n].first = true;
        n++;
    }
    pthread_t sql;
    bool sql_started = false;
    if (has_kind(run->checks, run->count, DC_SMOKE_SQL)) {
        if (pthread_create(&sql, NULL, dc_smoke_sql_thread, run) != 0) {
            free(hcs);
            return dc_error_set(err, "smoke checks: cannot start the SQL checks' thread");
        }
        sql_started = true;
    }
    int rc = n > 0 ? http_loop(run, hcs, n, err) : 0;
    if (sql_started)
        pthread_join(sql, NULL);
    free(hcs);
    return rc;
}

int dc_smoke_run(const dc_smoke_check_t *checks, size_t count, const dc_smoke_opts_t *opts,
                 dc_smoke_result_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    dc_smoke_run_t run = {.checks = checks, .count = count, .out = out};
    if (opts != NULL)
        run.opts = *opts;
    else
        dc_smoke_opts_init(&run.opts);
    fill_defaults(&run.opts);
    for (size_t i = 0; i < count; i++)
        if (validate_check(&checks[i], i, &run.opts, err) != 0)
            return -1;
    pthread_once(&curl_once, curl_init_once);

    out->check_count = count;
    out->checks = dc_calloc(count ? count : 1, sizeof(*out->checks));
    pthread_mutex_init(&run.lock, NULL);
    run.start_ms = monotonic_ms();
    int rc = run_checks(&run, err);
    pthread_mutex_destroy(&run.lock);
    out->duration_ms = monotonic_ms() - run.start_ms;
    if (rc != 0) {
        dc_smoke_result_free(out);
        return -1;
    }
    out->passed = true;
    for (size_t i = 0; i < count; i++)
        out->passed = out->passed && out->checks[i].passed;
    return 0;
}

void dc_smoke_result_free(dc_smoke_result_t *result)
{
    if (result == NULL)
        return;
    free(result->checks);
    free(result->attempts);
    memset(result, 0, sizeof(*result));
}
