/* Child processes (pg_dump, hooks): fork/exec of an argv, never a shell string; an environment
 * built explicitly (secrets go there or into a private passfile, never into argv); stderr
 * captured for the log and error messages. */
#ifndef DEPLOYCTL_PROCESS_H
#define DEPLOYCTL_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "deployctl/error.h"

/* An environment: a copy of ours plus overrides. */
typedef struct dc_env {
    char **vars; /* NULL-terminated "NAME=value" */
    size_t count;
} dc_env_t;

void dc_env_init_inherit(dc_env_t *env);
/* Ours minus the variables that carry secrets (DATABASE_URL*, PGPASSWORD, cloud keys): what a
 * child gets unless it is given a credential on purpose. */
void dc_env_init_for_child(dc_env_t *env);
void dc_env_set(dc_env_t *env, const char *name, const char *value);
void dc_env_unset(dc_env_t *env, const char *name);
void dc_env_free(dc_env_t *env);

typedef struct dc_process {
    pid_t pid;
    int stderr_fd; /* anonymous file holding the child's stderr, -1 if not captured */
    char name[64]; /* for messages: "pg_dump" */
} dc_process_t;

typedef struct dc_spawn_opts {
    const char *const *argv; /* argv[0] is the program; searched in PATH when it has no '/' */
    const dc_env_t *env;     /* NULL: inherit ours */
    int stdout_fd;           /* -1: /dev/null */
    int keep_fd;             /* a descriptor the child must inherit (a passfile), or -1 */
    bool capture_stderr;     /* else stderr is inherited */
    bool new_group;          /* the child leads a process group of its own (see below) */
    bool stderr_to_stdout;   /* stderr goes where stdout goes (one stream, in order); overrides
                                capture_stderr */
} dc_spawn_opts_t;

int dc_process_spawn(const dc_spawn_opts_t *opts, dc_process_t *proc, dc_error_t *err);
/* Waits for the child; *exit_status is its exit code, or 128+signal when killed. */
int dc_process_wait(dc_process_t *proc, int *exit_status, dc_error_t *err);
/* The first bytes of the captured stderr (where the error is), as one line (caller frees);
 * "" when none. */
char *dc_process_stderr_head(dc_process_t *proc, size_t max);
void dc_process_kill(dc_process_t *proc);
/* dc_process_wait for at most timeout_ms (0: no limit) for a child spawned with new_group: past
 * it, its whole group gets SIGTERM, then SIGKILL 10 s later, *timed_out is set and *exit_status
 * is 128+signal. */
int dc_process_wait_timeout(dc_process_t *proc, uint64_t timeout_ms, int *exit_status,
                            bool *timed_out, dc_error_t *err);

/* One line of a child's output, without its newline; lines longer than DC_OUTPUT_LINE_MAX
 * bytes arrive in pieces. */
#define DC_OUTPUT_LINE_MAX 4096
typedef void (*dc_output_line_fn)(const char *line, void *ctx);

/* dc_process_wait_timeout that also reads the child's output as it comes: out_fd is the read end
 * of the pipe whose write end was the child's stdout (made non-blocking here; the caller closes
 * it), each line goes to on_line. Once the child has exited, what is already in the pipe is read
 * and the wait ends, even if a process it left behind still holds the pipe open. */
int dc_process_wait_output(dc_process_t *proc, int out_fd, uint64_t timeout_ms,
                           dc_output_line_fn on_line, void *ctx, int *exit_status, bool *timed_out,
                           dc_error_t *err);
void dc_process_release(dc_process_t *proc);

/* Runs argv to completion (env NULL: ours), capturing stdout (up to max bytes) into *out. */
int dc_process_run_capture(const char *const *argv, const dc_env_t *env, size_t max, char **out,
                           int *exit_status, dc_error_t *err);

/* An anonymous regular file with mode 0600 holding `content`, inherited by children as
 * /proc/self/fd/N: a passfile that never touches the disk and dies with the processes. */
int dc_memfd_with_content(const char *name, const char *content, int *fd_out, dc_error_t *err);

#endif
