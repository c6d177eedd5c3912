/* What the fuzz targets share: a private temporary directory (removed at exit) for the readers
 * that only read files, and a quiet log so a run prints findings, not warnings. Header-only,
 * included by each target. */
#ifndef DEPLOYCTL_FUZZ_COMMON_H
#define DEPLOYCTL_FUZZ_COMMON_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static inline int fuzz_remove_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fuzz_remove_dir(void)
{
    if (fuzz_dir[0] != '\0')
        nftw(fuzz_dir, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes /tmp/dc-fuzz-<name>-XXXXXX (one per process, so parallel jobs do not collide) and
 * silences the log. Aborts when it cannot: a fuzzer without its directory finds nothing. */
static inline void fuzz_setup(const char *name)
{
    dc_log_configure(DC_LOG_ERROR, DC_LOG_TEXT);
    snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/dc-fuzz-%s-XXXXXX", name);
    if (mkdtemp(fuzz_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_remove_dir);
}

/* Replaces path's content with data (mode 0600: the config reader warns on readable secrets). */
static inline void fuzz_write_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size)) {
        perror(path);
        abort();
    }
    close(fd);
}

/* The input as a NUL-terminated string (it may hold NULs of its own). Caller frees. */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
