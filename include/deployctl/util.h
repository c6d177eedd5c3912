/* Small helpers shared by every module: allocation that cannot fail silently, strings,
 * byte sizes and durations for humans, time stamps, hex. No module-specific logic here. */
#ifndef DEPLOYCTL_UTIL_H
#define DEPLOYCTL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "deployctl/error.h"

/* Allocation failure is not recoverable for a CLI tool: these abort with a message. */
void *dc_malloc(size_t size);
void *dc_calloc(size_t count, size_t size);
void *dc_realloc(void *ptr, size_t size);
char *dc_strdup(const char *s);
char *dc_strndup(const char *s, size_t n);
char *dc_sprintf(const char *fmt, ...) DC_PRINTF(1, 2);

/* A growable string. */
typedef struct dc_buf {
    char *data;
    size_t len;
    size_t cap;
} dc_buf_t;

void dc_buf_append(dc_buf_t *b, const void *data, size_t len);
void dc_buf_appendf(dc_buf_t *b, const char *fmt, ...) DC_PRINTF(2, 3);
/* Appends text as one Markdown table cell: '|' escaped, line breaks turned into spaces (error
 * messages and hook output must not break the table of a report). */
void dc_buf_append_md_cell(dc_buf_t *b, const char *text);
void dc_buf_free(dc_buf_t *b);

bool dc_str_starts_with(const char *s, const char *prefix);
bool dc_str_ends_with(const char *s, const char *suffix);

/* "1.50 GiB", "12.0 MiB", "512 B" */
void dc_format_bytes(uint64_t bytes, char *out, size_t out_size);
/* "1h02m", "4m05s", "12.3s" */
void dc_format_duration(double seconds, char *out, size_t out_size);
/* "12,345,678" */
void dc_format_count(uint64_t n, char *out, size_t out_size);

/* Parses "64MiB", "1GB", "4096", "16k": returns -1 on junk. */
int dc_parse_size(const char *text, uint64_t *out);
/* Parses "30s", "5m", "250ms", "2h", "7d", "10" (seconds): returns -1 on junk. */
int dc_parse_duration_ms(const char *text, uint64_t *out_ms);
/* Parses a decimal integer in [min, max]: returns -1 on junk or out of range. */
int dc_parse_int(const char *text, long min, long max, long *out);

double dc_now_seconds(void); /* monotonic */
/* Sleeps ms milliseconds; a signal cuts it short, so that a caller notices it at once. */
void dc_sleep_ms(uint64_t ms);
/* RFC 3339 UTC with seconds: 2026-11-25T01:32:59Z */
void dc_format_rfc3339(time_t t, char *out, size_t out_size);

void dc_hex_encode(const uint8_t *in, size_t len, char *out); /* out: 2*len+1 */
/* The length of the longest prefix of data that is well-formed UTF-8 (len when all of it is):
 * the offset of the first bad byte. */
size_t dc_utf8_valid_len(const char *data, size_t len);
/* Cuts s (NUL-terminated) to at most max bytes without splitting a UTF-8 character. */
void dc_utf8_truncate(char *s, size_t max);
/* Replaces, in place, every byte that is not part of a well-formed UTF-8 character with '?'
 * (text that must be valid UTF-8, e.g. for the server, from a cut or a foreign file). */
void dc_utf8_scrub(char *s);
/* How many '\n' bytes (COPY text rows) are in data. */
uint64_t dc_count_newlines(const void *data, size_t len);

/* Reads a whole file into *out (NUL-terminated; *len excludes the NUL, so an empty file is "").
 * A file larger than max_bytes (0: no limit) is an error naming the size. When missing_ok and
 * the file does not exist, *out is NULL and 0 is returned. Errors name the path. */
int dc_read_file(const char *path, size_t max_bytes, bool missing_ok, char **out, size_t *len,
                 dc_error_t *err);

/* Creates a directory and its parents (mode for the ones created), durably: the parent of
 * each directory created is fsynced. */
int dc_mkdir_p(const char *path, int mode, dc_error_t *err);
/* fsync a directory so a rename inside it is durable. */
int dc_fsync_dir(const char *path, dc_error_t *err);

int dc_cpu_count(void);

#endif
