/* What the fuzz targets share: a private temporary directory (removed at exit) for the readers
 * that only read files, and a quiet log so a run prints findings, not warnings. Header-only,
 * included by each target. */
#ifndef DEPLOYCTL_FUZZ_COMMON_H
#define DEPLOYCTL_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../unit/unit_tmpdir.h"
#include "deployctl/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static inline void fuzz_remove_dir(void)
{
    if (fuzz_dir[0] != '\0')
        unit_tmpdir_remove(fuzz_dir);
}

/* Makes /tmp/dc-test-fuzz-<name>-XXXXXX (one per process, so parallel jobs do not collide)
 * and silences the log. Aborts when it cannot: a fuzzer without its directory finds nothing. */
static inline void fuzz_setup(const char *name)
{
    dc_log_configure(DC_LOG_ERROR, DC_LOG_TEXT);
    char tag[32];
    snprintf(tag, sizeof(tag), "fuzz-%s", name);
    if (unit_tmpdir_new(fuzz_dir, sizeof(fuzz_dir), tag) != 0) {
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
