/* Errors that travel up the call chain: a message a user can act on and the exit code class.
 * Modules fill a caller-provided dc_error_t and return -1; only main() turns it into an exit. */
#ifndef DEPLOYCTL_ERROR_H
#define DEPLOYCTL_ERROR_H

#include <stddef.h>

/* Exit codes, as DESIGN.md fixes them. */
enum {
    DC_EXIT_OK = 0,
    DC_EXIT_ERROR = 1, /* usage, configuration or a failed command */
    DC_EXIT_ROLLED_BACK = 2,
    DC_EXIT_ROLLBACK_FAILED = 3,
    DC_EXIT_PRECHECK = 4,
    DC_EXIT_LOCKED = 75,
};

#define DC_ERROR_MAX 1024

typedef struct dc_error {
    int exit_code;
    char message[DC_ERROR_MAX];
} dc_error_t;

#define DC_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Sets the message (and exit code DC_EXIT_ERROR); always returns -1 so callers can
 * `return dc_error_set(err, ...)`. A NULL err is allowed and ignored. */
int dc_error_set(dc_error_t *err, const char *fmt, ...) DC_PRINTF(2, 3);

/* Same with an explicit exit code. */
int dc_error_set_code(dc_error_t *err, int exit_code, const char *fmt, ...) DC_PRINTF(3, 4);

/* Prepends context ("backup of db: ") to an existing message; returns -1. */
int dc_error_prefix(dc_error_t *err, const char *fmt, ...) DC_PRINTF(2, 3);

/* Appends to an existing message (a hint on what to do); returns -1. */
int dc_error_append(dc_error_t *err, const char *fmt, ...) DC_PRINTF(2, 3);

void dc_error_clear(dc_error_t *err);

#endif
