/* Logging: levels, text or JSON lines on stderr, and redaction of every secret before output.
 * Not for command results (those go to stdout through the commands themselves). */
#ifndef DEPLOYCTL_LOG_H
#define DEPLOYCTL_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "deployctl/error.h"

typedef enum { DC_LOG_ERROR = 0, DC_LOG_WARN, DC_LOG_INFO, DC_LOG_DEBUG } dc_log_level_t;
typedef enum { DC_LOG_TEXT = 0, DC_LOG_JSON } dc_log_format_t;

void dc_log_configure(dc_log_level_t level, dc_log_format_t format);
dc_log_level_t dc_log_level(void);
bool dc_log_enabled(dc_log_level_t level);

void dc_log(dc_log_level_t level, const char *fmt, ...) DC_PRINTF(2, 3);
#define dc_log_error(...) dc_log(DC_LOG_ERROR, __VA_ARGS__)
#define dc_log_warn(...)  dc_log(DC_LOG_WARN, __VA_ARGS__)
#define dc_log_info(...)  dc_log(DC_LOG_INFO, __VA_ARGS__)
#define dc_log_debug(...) dc_log(DC_LOG_DEBUG, __VA_ARGS__)

/* Writes the error as one line ("deployctl: error: ...") whatever the level. */
void dc_log_report_error(const dc_error_t *err);

/* A status line that rewrites itself on a terminal (progress); cleared by the next log line.
 * Does nothing when stderr is not a terminal or the level is below info. */
void dc_log_status(const char *fmt, ...) DC_PRINTF(1, 2);
void dc_log_status_clear(void);
bool dc_log_stderr_is_tty(void);

/* Secrets: every registered string is replaced by "***" in all output, and URL passwords
 * (scheme://user:password@) and conninfo `password=` values are always masked. */
void dc_secret_register(const char *secret);
void dc_secrets_forget_all(void);

/* Copies `in` to `out` (always NUL-terminated) with every secret masked. */
void dc_redact(const char *in, char *out, size_t out_size);

#endif
