/* Logging to stderr in text or JSON lines, with every secret masked before it is written.
 * The redaction lives here so that no output path can forget it. */
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/log.h"
#include "deployctl/util.h"

#define MAX_SECRETS    32
#define LINE_MAX_BYTES 8192

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static dc_log_level_t current_level = DC_LOG_INFO;
static dc_log_format_t current_format = DC_LOG_TEXT;
static char *secrets[MAX_SECRETS];
static int secret_count;
static int status_shown; /* a status line is on screen and must be cleared first */

void dc_log_configure(dc_log_level_t level, dc_log_format_t format)
{
    current_level = level;
    current_format = format;
}

dc_log_level_t dc_log_level(void)
{
    return current_level;
}

bool dc_log_enabled(dc_log_level_t level)
{
    return level <= current_level;
}

bool dc_log_stderr_is_tty(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = isatty(STDERR_FILENO) ? 1 : 0;
    return cached == 1;
}

void dc_secret_register(const char *secret)
{
    /* Very short strings would mask ordinary words; URL and conninfo patterns still catch them. */
    if (secret == NULL || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < secret_count; i++) {
        if (strcmp(secrets[i], secret) == 0) {
            pthread_mutex_unlock(&log_lock);
            return;
        }
    }
    if (secret_count < MAX_SECRETS)
        secrets[secret_count++] = dc_strdup(secret);
    pthread_mutex_unlock(&log_lock);
}

void dc_secrets_forget_all(void)
{
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < secret_count; i++)
        free(secrets[i]);
    secret_count = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Masks "scheme://user:PASSWORD@host" in place (the buffer keeps its size or shrinks). libpq
 * takes everything up to the '@' before the host as user info, so a password may hold '?', '#'
 * or spaces: the user info runs to the last '@' before the path, and a space only ends it once
 * an '@' has been seen. */
static void mask_url_passwords(dc_buf_t *b)
{
    size_t pos = 0;
    while (pos < b->len) {
        char *scheme_end = strstr(b->data + pos, "://");
        if (scheme_end == NULL)
            return;
        size_t auth_start = (size_t)(scheme_end - b->data) + 3;
        size_t at = SIZE_MAX;
        size_t end = auth_start;
        for (; end < b->len; end++) {
            char c = b->data[end];
            if (c == '/' || c == '\n' || c == '\t' || c == '"' || c == '\'' ||
                (c == ' ' && at != SIZE_MAX))
                break;
            if (c == '@')
                at = end;
        }
        if (at != SIZE_MAX) {
            char *colon = memchr(b->data + auth_start, ':', at - auth_start);
            if (colon != NULL && (size_t)(colon - b->data) + 1 < at) {
                size_t pw_start = (size_t)(colon - b->data) + 1;
                size_t tail = b->len - at;
                memmove(b->data + pw_start + 3, b->data + at, tail + 1);
                memcpy(b->data + pw_start, "***", 3);
                b->len = pw_start + 3 + tail;
                end = pw_start + 3;
            }
        }
        pos = end > auth_start ? end : auth_start;
    }
}

/* Masks conninfo-style "password=VALUE" (also sslpassword, and URL query parameters). */
static void mask_keyword_passwords(dc_buf_t *b)
{
    static const char *const keywords[] = {"password", "sslpassword", "secret_access_key",
                                           "aws_secret_access_key", NULL};
    for (int k = 0; keywords[k] != NULL; k++) {
        size_t klen = strlen(keywords[k]);
        size_t pos = 0;
        while (pos + klen < b->len) {
            char *hit = strcasestr(b->data + pos, keywords[k]);
            if (hit == NULL)
                break;
            size_t start = (size_t)(hit - b->data);
            size_t p = start + klen;
            bool boundary = start == 0 || strchr(" \t?&;,(\"'", b->data[start - 1]) != NULL ||
                            (keywords[k][0] == 'p' && start >= 3 &&
                             strncasecmp(b->data + start - 3, "ssl", 3) == 0);
            while (p < b->len && b->data[p] == ' ')
                p++;
            if (!boundary || p >= b->len || (b->data[p] != '=' && b->data[p] != ':')) {
                pos = start + klen;
                continue;
            }
            p++;
            while (p < b->len && b->data[p] == ' ')
                p++;
            size_t value_start = p;
            if (p < b->len && b->data[p] == '\'') {
                p++;
                while (p < b->len && b->data[p] != '\'') {
                    if (b->data[p] == '\\' && p + 1 < b->len)
                        p++;
                    p++;
                }
                if (p < b->len)
                    p++;
            } else {
                while (p < b->len && !isspace((unsigned char)b->data[p]) &&
                       strchr("&;,\"'", b->data[p]) == NULL)
                    p++;
            }
            if (p > value_start &&
                !(p - value_start == 3 && memcmp(b->data + value_start, "***", 3) == 0)) {
                size_t tail = b->len - p;
                memmove(b->data + value_start + 3, b->data + p, tail + 1);
                memcpy(b->data + value_start, "***", 3);
                b->len = value_start + 3 + tail;
            }
            pos = value_start + 3;
        }
    }
}

/* Masks SQL "PASSWORD 'literal'" (CREATE/ALTER ROLE ... [ENCRYPTED] PASSWORD '...'), e.g. in a
 * failed migration statement quoted in an error. */
static void mask_sql_passwords(dc_buf_t *b)
{
    size_t pos = 0;
    char *hit;
    while (pos < b->len && (hit = strcasestr(b->data + pos, "password")) != NULL) {
        size_t start = (size_t)(hit - b->data);
        size_t p = start + 8;
        pos = p;
        char before = start > 0 ? b->data[start - 1] : ' ';
        if (before != ' ' && before != '\t' && before != '\r' && before != '\n')
            continue;
        while (p < b->len && (b->data[p] == ' ' || b->data[p] == '\t' || b->data[p] == '\r' ||
                              b->data[p] == '\n'))
            p++;
        if (p >= b->len || b->data[p] != '\'')
            continue;
        size_t value_start = p + 1, value_end = value_start;
        while (value_end < b->len && (b->data[value_end] != '\'' ||
                                      (value_end + 1 < b->len && b->data[value_end + 1] == '\''))) {
            value_end += b->data[value_end] == '\'' ? 2 : 1;
        }
        size_t tail = b->len - value_end;
        if (value_end == value_start)
            continue; /* '' */
        memmove(b->data + value_start + 3, b->data + value_end, tail + 1);
        memcpy(b->data + value_start, "***", 3);
        b->len = value_start + 3 + tail;
        pos = value_start + 3;
    }
}

/* Whether a URL query parameter's name says its value is a credential (token=, api_key=,
 * X-Amz-Signature=, sig=, client_secret=...). */
static bool secret_param(const char *name, size_t len)
{
    static const char *const words[] = {"token", "key",  "secret",     "pass",    "pwd",
                                        "sig",   "auth", "credential", "session", NULL};
    char lower[64];
    if (len == 0 || len >= sizeof(lower))
        return len > 0;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[len] = '\0';
    for (int i = 0; words[i] != NULL; i++) {
        if (strstr(lower, words[i]) != NULL)
            return true;
    }
    return false;
}

/* Masks the values of URL query parameters that look like credentials (?token=..., &sig=...):
 * a smoke URL or a presigned link must not leak them into logs and reports. */
static void mask_query_secrets(dc_buf_t *b)
{
    for (size_t pos = 0; pos < b->len; pos++) {
        if (b->data[pos] != '?' && b->data[pos] != '&')
            continue;
        size_t name = pos + 1, p = name;
        while (p < b->len && (isalnum((unsigned char)b->data[p]) || strchr("_-.", b->data[p])))
            p++;
        if (p >= b->len || b->data[p] != '=' || !secret_param(b->data + name, p - name))
            continue;
        size_t value_start = p + 1, end = value_start;
        while (end < b->len && !isspace((unsigned char)b->data[end]) &&
               strchr("&#\"'<>", b->data[end]) == NULL)
            end++;
        if (end == value_start ||
            (end - value_start == 3 && memcmp(b->data + value_start, "***", 3) == 0))
            continue;
        size_t tail = b->len - end;
        memmove(b->data + value_start + 3, b->data + end, tail + 1);
        memcpy(b->data + value_start, "***", 3);
        b->len = value_start + 3 + tail;
        pos = value_start + 2;
    }
}

static void mask_registered_secrets(dc_buf_t *b)
{
    for (int i = 0; i < secret_count; i++) {
        size_t slen = strlen(secrets[i]);
        char *hit;
        size_t pos = 0;
        while (pos < b->len && (hit = strstr(b->data + pos, secrets[i])) != NULL) {
            size_t start = (size_t)(hit - b->data);
            size_t tail = b->len - start - slen;
            memmove(b->data + start + 3, b->data + start + slen, tail + 1);
            memcpy(b->data + start, "***", 3);
            b->len = start + 3 + tail;
            pos = start + 3;
        }
    }
}

static void redact_locked(const char *in, char *out, size_t out_size)
{
    dc_buf_t b = {0};
    size_t len = strlen(in);
    /* Room for masks that are longer than what they replace (secrets of 1-2 bytes). */
    b.cap = len * 2 + 16;
    b.data = dc_malloc(b.cap);
    memcpy(b.data, in, len + 1);
    b.len = len;
    mask_registered_secrets(&b);
    mask_url_passwords(&b);
    mask_keyword_passwords(&b);
    mask_sql_passwords(&b);
    mask_query_secrets(&b);
    snprintf(out, out_size, "%s", b.data);
    free(b.data);
}

void dc_redact(const char *in, char *out, size_t out_size)
{
    pthread_mutex_lock(&log_lock);
    redact_locked(in, out, out_size);
    pthread_mutex_unlock(&log_lock);
}

static const char *level_name(dc_log_level_t level)
{
    switch (level) {
    case DC_LOG_ERROR:
        return "error";
    case DC_LOG_WARN:
        return "warning";
    case DC_LOG_INFO:
        return "info";
    case DC_LOG_DEBUG:
        return "debug";
    }
    return "info";
}

static void clear_status_locked(void)
{
    if (status_shown) {
        fputs("\r\033[K", stderr);
        status_shown = 0;
    }
}

static void write_line_locked(dc_log_level_t level, const char *message)
{
    clear_status_locked();
    if (current_format == DC_LOG_JSON) {
        struct timeval tv;
        char stamp[40];
        char when[32];
        gettimeofday(&tv, NULL);
        dc_format_rfc3339(tv.tv_sec, when, sizeof(when));
        /* 2026-11-25T01:32:59Z -> 2026-11-25T01:32:59.123Z */
        snprintf(stamp, sizeof(stamp), "%.19s.%03dZ", when, (int)(tv.tv_usec / 1000));
        json_t *obj =
            json_pack("{s:s, s:s, s:s}", "time", stamp, "level", level_name(level), "msg", message);
        char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        if (text != NULL) {
            fprintf(stderr, "%s\n", text);
            free(text);
        }
        json_decref(obj);
    } else if (level == DC_LOG_INFO) {
        fprintf(stderr, "deployctl: %s\n", message);
    } else {
        fprintf(stderr, "deployctl: %s: %s\n", level_name(level), message);
    }
    fflush(stderr);
}

static void vlog(dc_log_level_t level, const char *fmt, va_list ap)
{
    char raw[LINE_MAX_BYTES];
    char clean[LINE_MAX_BYTES];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    /* One event, one line: multi-line text (libpq, child stderr) is folded. */
    for (char *p = raw; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = (p[1] == '\0') ? '\0' : ' ';
    }
    pthread_mutex_lock(&log_lock);
    redact_locked(raw, clean, sizeof(clean));
    write_line_locked(level, clean);
    pthread_mutex_unlock(&log_lock);
}

void dc_log(dc_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    if (!dc_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void dc_log_report_error(const dc_error_t *err)
{
    const char *msg = (err && err->message[0]) ? err->message : "unknown error";
    dc_log_configure(current_level < DC_LOG_ERROR ? DC_LOG_ERROR : current_level, current_format);
    dc_log(DC_LOG_ERROR, "%s", msg);
}

void dc_log_status(const char *fmt, ...)
{
    char raw[512];
    char clean[512];
    va_list ap;
    if (!dc_log_stderr_is_tty() || !dc_log_enabled(DC_LOG_INFO) || current_format == DC_LOG_JSON)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    redact_locked(raw, clean, sizeof(clean));
    fprintf(stderr, "\r\033[K%s", clean);
    fflush(stderr);
    status_shown = 1;
    pthread_mutex_unlock(&log_lock);
}

void dc_log_status_clear(void)
{
    pthread_mutex_lock(&log_lock);
    clear_status_locked();
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
