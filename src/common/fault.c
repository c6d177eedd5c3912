/* Fault injection points (see fault.h): a getenv and a few comparisons when reached. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/fault.h"

/* The next entry of DEPLOYCTL_FAULT from *pos that names `name`: what follows the name ("" for
 * a bare NAME, ":sleep=1", ":fail") into suffix; false when there is none left. */
static bool next_fault(const char *name, const char **pos, char *suffix, size_t size)
{
    size_t len = strlen(name);
    while (*pos != NULL && **pos) {
        const char *p = *pos;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        *pos = end ? end + 1 : NULL;
        if (n >= len && strncmp(p, name, len) == 0) {
            snprintf(suffix, size, "%.*s", (int)(n - len), p + len);
            return true;
        }
    }
    return false;
}

bool dc_fault_fails(const char *name)
{
    const char *pos = getenv("DEPLOYCTL_FAULT");
    char suffix[64];
    while (next_fault(name, &pos, suffix, sizeof(suffix))) {
        if (strcmp(suffix, ":fail") == 0)
            return true;
    }
    return false;
}

void dc_fault_point(const char *name)
{
    const char *pos = getenv("DEPLOYCTL_FAULT");
    char suffix[64];
    while (next_fault(name, &pos, suffix, sizeof(suffix))) {
        if (suffix[0] == '\0') {
            raise(SIGKILL);
        } else if (strncmp(suffix, ":sleep=", 7) == 0) {
            double seconds = atof(suffix + 7);
            struct timespec ts = {(time_t)seconds,
                                  (long)((seconds - (double)(time_t)seconds) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
}
