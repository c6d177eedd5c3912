/* Temporary directories for the unit tests that need files: made under /tmp, removed with
 * everything in them. Header-only, included by the tests that use it. */
#ifndef DEPLOYCTL_UNIT_TMPDIR_H
#define DEPLOYCTL_UNIT_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes /tmp/dc-test-<name>-XXXXXX into out; 0 on success. */
static inline int unit_tmpdir_new(char *out, size_t size, const char *name)
{
    snprintf(out, size, "/tmp/dc-test-%s-XXXXXX", name);
    return mkdtemp(out) == NULL ? -1 : 0;
}

static inline int unit_tmpdir_remove_entry(const char *path, const struct stat *st, int flag,
                                           struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the directory and everything below it. */
static inline int unit_tmpdir_remove(const char *path)
{
    return nftw(path, unit_tmpdir_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
