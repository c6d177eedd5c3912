/* Release hooks: executables named after the phase in the hooks directory (pre-release,
 * maintenance-on, deploy, rollback, maintenance-off, post-release, notify), run by fork/exec,
 * never through a shell string, with a timeout (then their process group is stopped), the
 * DEPLOYCTL_* variables in their environment and no database credentials, their output copied
 * into the log line by line. A hook that is absent is not an error: it is reported as not run. */
#ifndef DEPLOYCTL_HOOKS_H
#define DEPLOYCTL_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployctl/error.h"

typedef enum {
    DC_HOOK_PRE_RELEASE,
    DC_HOOK_MAINTENANCE_ON,
    DC_HOOK_DEPLOY,
    DC_HOOK_ROLLBACK,
    DC_HOOK_MAINTENANCE_OFF,
    DC_HOOK_POST_RELEASE,
    DC_HOOK_NOTIFY,
    DC_HOOK_COUNT,
} dc_hook_t;

/* "pre-release", ... (also the executable's file name) */
const char *dc_hook_name(dc_hook_t hook);

typedef struct dc_hook_env {
    const char *release_id;  /* DEPLOYCTL_RELEASE_ID */
    const char *phase;       /* DEPLOYCTL_PHASE: the hook's name unless set */
    const char *snapshot;    /* DEPLOYCTL_SNAPSHOT: the pre-release snapshot id, or NULL */
    const char *outcome;     /* DEPLOYCTL_OUTCOME: "released", "rolled-back", ... or NULL */
    const char *report_path; /* DEPLOYCTL_REPORT: the JSON report, or NULL */
    const char *database;    /* DEPLOYCTL_DATABASE: the database's name (never its URL) */
    const char *state_dir;   /* DEPLOYCTL_STATE_DIR: where hooks may keep what they record */
    int attempt; /* DEPLOYCTL_ATTEMPT: 1 the first run for this release, 2... when it started
                    before and did not finish (a rollback re-run by recover); 0: unset */
} dc_hook_env_t;

/* How much of a hook's output the result keeps (the log has all of it). */
#define DC_HOOK_TAIL_LINES    20
#define DC_HOOK_TAIL_LINE_MAX 512

typedef struct dc_hook_result {
    bool ran;        /* false: no executable for this hook in the directory */
    int exit_status; /* the exit code, or 128+signal */
    bool timed_out;
    uint64_t duration_ms;
    char *output_tail; /* the last lines of its stdout+stderr (for the report), or NULL: at most
                          DC_HOOK_TAIL_LINES lines of DC_HOOK_TAIL_LINE_MAX bytes, '\n'-joined */
} dc_hook_result_t;

/* Runs <dir>/<name> when it exists (dir NULL: none). Returns 0 when the hook was absent or
 * exited 0; -1 with a message naming the hook, its exit status or timeout and its last output
 * line, when it failed or could not start (not executable). res is filled either way (free it
 * with dc_hook_result_free).
 * env NULL: only DEPLOYCTL_PHASE. timeout_ms 0: no limit; past it the hook's process group gets
 * SIGTERM, then SIGKILL 10 s later, and whatever the hook left in its group is killed once it
 * has exited. The hook's stdin is /dev/null; stdout and stderr are one pipe we read until the
 * hook exits: a process it leaves running (a daemon) must send its output elsewhere. */
int dc_hook_run(const char *dir, dc_hook_t hook, const dc_hook_env_t *env, uint64_t timeout_ms,
                dc_hook_result_t *res, dc_error_t *err);
void dc_hook_result_free(dc_hook_result_t *res);

#endif
