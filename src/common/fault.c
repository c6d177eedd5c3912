/* Fault injection points (see fault.h): a getenv and a few comparisons when reached. */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/fault.h"

bool dc_fault_fails(const char *name)
{
    const char *spec = getenv("DEPLOYCTL_FAULT");
    size_t len = strlen(name);
    for (const char *p = spec; p != NULL && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len + 5 && strncmp(p, name, len) == 0 && strncmp(p + len, ":fail", 5) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

void dc_fault_point(const char *name)
{
    const char *spec = getenv("DEPLOYCTL_FAULT");
    size_t len = strlen(name);
    for (const char *p = spec; p != NULL && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= len && strncmp(p, name, len) == 0) {
            if (n == len) {
                raise(SIGKILL);
            } else if (strncmp(p + len, ":sleep=", 7) == 0) {
                double seconds = atof(p + len + 7);
                struct timespec ts = {(time_t)seconds,
                                      (long)((seconds - (double)(time_t)seconds) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        p = end ? end + 1 : NULL;
    }
}
