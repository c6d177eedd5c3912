/* Shared helpers: checked allocation, growable strings, human-readable sizes and durations,
 * parsing of sizes/durations/integers from config, time stamps, directories. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/util.h"

static void out_of_memory(size_t size)
{
    fprintf(stderr, "deployctl: error: out of memory (allocating %zu bytes)\n", size);
    abort();
}

void *dc_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *dc_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *dc_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

char *dc_strdup(const char *s)
{
    return dc_strndup(s, strlen(s));
}

char *dc_strndup(const char *s, size_t n)
{
    char *p = dc_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dc_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = dc_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static void buf_reserve(dc_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = dc_realloc(b->data, cap);
    b->cap = cap;
}

void dc_buf_append(dc_buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void dc_buf_appendf(dc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dc_buf_free(dc_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

bool dc_str_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool dc_str_ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

void dc_format_bytes(uint64_t bytes, char *out, size_t out_size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, out_size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, out_size, "%.*f %s", v < 10 ? 2 : (v < 100 ? 1 : 0), v, units[u]);
}

void dc_format_duration(double seconds, char *out, size_t out_size)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 60)
        snprintf(out, out_size, "%.1fs", seconds);
    else if (seconds < 3600)
        snprintf(out, out_size, "%dm%02ds", (int)seconds / 60, (int)seconds % 60);
    else
        snprintf(out, out_size, "%dh%02dm", (int)seconds / 3600, ((int)seconds % 3600) / 60);
}

void dc_format_count(uint64_t n, char *out, size_t out_size)
{
    char digits[32];
    char tmp[48];
    int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    int j = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            tmp[j++] = ',';
        tmp[j++] = digits[i];
    }
    tmp[j] = '\0';
    snprintf(out, out_size, "%s", tmp);
}

int dc_parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    if (text == NULL || !isdigit((unsigned char)*text))
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    while (*end == ' ')
        end++;
    uint64_t mult = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mult = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mult = 1024ULL;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mult = 1024ULL * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mult = 1024ULL * 1024 * 1024;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = (uint64_t)v * mult;
    return 0;
}

int dc_parse_duration_ms(const char *text, uint64_t *out_ms)
{
    char *end;
    errno = 0;
    if (text == NULL || !isdigit((unsigned char)*text))
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    uint64_t mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out_ms = (uint64_t)v * mult;
    return 0;
}

int dc_parse_int(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    if (text == NULL || *text == '\0')
        return -1;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

double dc_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dc_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void dc_format_rfc3339(time_t t, char *out, size_t out_size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int dc_read_file(const char *path, size_t max_bytes, bool missing_ok, char **out, size_t *len,
                 dc_error_t *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (missing_ok && errno == ENOENT)
            return 0;
        return dc_error_set(err, "cannot read %s: %s", path, strerror(errno));
    }
    dc_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        dc_buf_append(&b, chunk, n);
        if (max_bytes > 0 && b.len > max_bytes) {
            fclose(f);
            dc_buf_free(&b);
            char limit[32];
            dc_format_bytes(max_bytes, limit, sizeof(limit));
            return dc_error_set(err, "%s is larger than %s", path, limit);
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        dc_buf_free(&b);
        return dc_error_set(err, "cannot read %s", path);
    }
    dc_buf_append(&b, "", 0); /* an empty file is still a string */
    *out = b.data;
    *len = b.len;
    return 0;
}

void dc_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* The length of the well-formed UTF-8 character at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_char_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

size_t dc_utf8_valid_len(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_char_len(p + i, len - i);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}

void dc_utf8_truncate(char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    s[cut] = '\0';
}

void dc_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_char_len(p + i, len - i);
        if (n == 0) {
            p[i++] = '?';
        } else {
            i += n;
        }
    }
}

uint64_t dc_count_newlines(const void *data, size_t len)
{
    uint64_t n = 0;
    const char *p = data, *end = p + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

int dc_mkdir_p(const char *path, int mode, dc_error_t *err)
{
    if (path == NULL || *path == '\0')
        return dc_error_set(err, "cannot create a directory with an empty name");
    char *copy = dc_strdup(path);
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            int made = mkdir(copy, (mode_t)mode);
            if (made != 0 && errno != EEXIST) {
                int e = errno;
                dc_error_set(err, "cannot create directory %s: %s", copy, strerror(e));
                free(copy);
                return -1;
            }
            /* A new directory's entry is durable only once its parent is synced. */
            char *slash = strrchr(copy, '/');
            if (made == 0 && slash != NULL) {
                *slash = '\0';
                int rc = dc_fsync_dir(*copy ? copy : "/", err);
                *slash = '/';
                if (rc != 0) {
                    free(copy);
                    return -1;
                }
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(copy);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return dc_error_set(err, "%s exists but is not a directory", path);
    return 0;
}

int dc_fsync_dir(const char *path, dc_error_t *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return dc_error_set(err, "cannot open directory %s: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return dc_error_set(err, "cannot sync directory %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int dc_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void dc_buf_append_md_cell(dc_buf_t *b, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '|')
            dc_buf_append(b, "\\|", 2);
        else if (*c == '\n' || *c == '\r')
            dc_buf_append(b, " ", 1);
        else
            dc_buf_append(b, c, 1);
    }
}
