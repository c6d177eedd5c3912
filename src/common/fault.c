/* Fault injection points (see fault.h): a getenv and a comparison when reached, nothing else. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/fault.h"

void dc_fault_point(const char *name)
{
    const char *wanted = getenv("DEPLOYCTL_FAULT");
    if (wanted != NULL && strcmp(wanted, name) == 0)
        raise(SIGKILL);
}
