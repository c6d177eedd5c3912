/* dc_error_t helpers: formatting messages that travel up to main(). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "deployctl/error.h"

static int error_vset(dc_error_t *err, int exit_code, const char *fmt, va_list ap)
{
    if (err == NULL)
        return -1;
    err->exit_code = exit_code;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return -1;
}

int dc_error_set(dc_error_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, DC_EXIT_ERROR, fmt, ap);
    va_end(ap);
    return -1;
}

int dc_error_set_code(dc_error_t *err, int exit_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, exit_code, fmt, ap);
    va_end(ap);
    return -1;
}

int dc_error_prefix(dc_error_t *err, const char *fmt, ...)
{
    char prefix[DC_ERROR_MAX];
    char old[DC_ERROR_MAX];
    va_list ap;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof(old));
    snprintf(err->message, sizeof(err->message), "%s%s", prefix, old);
    if (err->exit_code == DC_EXIT_OK)
        err->exit_code = DC_EXIT_ERROR;
    return -1;
}

int dc_error_append(dc_error_t *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return -1;
    size_t used = strlen(err->message);
    va_start(ap, fmt);
    vsnprintf(err->message + used, sizeof(err->message) - used, fmt, ap);
    va_end(ap);
    return -1;
}

void dc_error_clear(dc_error_t *err)
{
    if (err == NULL)
        return;
    err->exit_code = DC_EXIT_OK;
    err->message[0] = '\0';
}
