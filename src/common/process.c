/* fork/exec of child programs with an explicit environment and captured stderr.
 * Between fork and exec the child only calls async-signal-safe functions. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/process.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"

extern char **environ;

void dc_env_init_inherit(dc_env_t *env)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    env->vars = dc_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->vars[i] = dc_strdup(environ[i]);
    env->count = n;
}

void dc_env_init_for_child(dc_env_t *env)
{
    /* Every variable deployctl reads a database URL or a key from (DIRECT_URL is Prisma's). */
    static const char *const secrets[] = {
        "DATABASE_URL",          "DATABASE_URL_DIRECT",        "DIRECT_URL",
        "DEPLOYCTL_POOLED_URL",  "DEPLOYCTL_REHEARSE_SCRATCH", "PGPASSWORD",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",          "DEPLOYCTL_ENCRYPTION_KEY",
    };
    dc_env_init_inherit(env);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        dc_env_unset(env, secrets[i]);
}

void dc_env_unset(dc_env_t *env, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->vars[i], name, nlen) == 0 && env->vars[i][nlen] == '=') {
            free(env->vars[i]);
            env->vars[i] = env->vars[env->count - 1];
            env->vars[env->count - 1] = NULL;
            env->count--;
            return;
        }
    }
}

void dc_env_set(dc_env_t *env, const char *name, const char *value)
{
    dc_env_unset(env, name);
    env->vars = dc_realloc(env->vars, (env->count + 2) * sizeof(char *));
    env->vars[env->count++] = dc_sprintf("%s=%s", name, value);
    env->vars[env->count] = NULL;
}

void dc_env_free(dc_env_t *env)
{
    for (size_t i = 0; i < env->count; i++)
        free(env->vars[i]);
    free(env->vars);
    env->vars = NULL;
    env->count = 0;
}

int dc_memfd_with_content(const char *name, const char *content, int *fd_out, dc_error_t *err)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return dc_error_set(err, "cannot create an in-memory file: %s", strerror(errno));
    size_t len = strlen(content);
    if (fchmod(fd, 0600) != 0 || write(fd, content, len) != (ssize_t)len) {
        int e = errno;
        close(fd);
        return dc_error_set(err, "cannot write an in-memory file: %s", strerror(e));
    }
    *fd_out = fd;
    return 0;
}

int dc_process_spawn(const dc_spawn_opts_t *opts, dc_process_t *proc, dc_error_t *err)
{
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int err_fd = -1;
    int exec_pipe[2]; /* reports an exec failure (errno) from the child */

    memset(proc, 0, sizeof(*proc));
    proc->stderr_fd = -1;
    snprintf(proc->name, sizeof(proc->name), "%s", opts->argv[0]);
    if (devnull < 0)
        return dc_error_set(err, "cannot open /dev/null: %s", strerror(errno));
    if (opts->capture_stderr) {
        err_fd = memfd_create("deployctl-stderr", MFD_CLOEXEC);
        if (err_fd < 0) {
            close(devnull);
            return dc_error_set(err, "cannot capture the output of %s: %s", opts->argv[0],
                                strerror(errno));
        }
    }
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
        close(devnull);
        if (err_fd >= 0)
            close(err_fd);
        return dc_error_set(err, "cannot start %s: %s", opts->argv[0], strerror(errno));
    }
    char *const *envp = opts->env ? opts->env->vars : environ;

    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(devnull);
        close(exec_pipe[0]);
        close(exec_pipe[1]);
        if (err_fd >= 0)
            close(err_fd);
        return dc_error_set(err, "cannot start %s: %s", opts->argv[0], strerror(e));
    }
    if (pid == 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(opts->stdout_fd >= 0 ? opts->stdout_fd : devnull, STDOUT_FILENO);
        if (opts->stderr_to_stdout)
            dup2(STDOUT_FILENO, STDERR_FILENO);
        else if (err_fd >= 0)
            dup2(err_fd, STDERR_FILENO);
        if (opts->keep_fd >= 0) {
            int flags = fcntl(opts->keep_fd, F_GETFD);
            fcntl(opts->keep_fd, F_SETFD, flags & ~FD_CLOEXEC);
        }
        signal(SIGPIPE, SIG_DFL);
        if (opts->new_group)
            setpgid(0, 0);
        execvpe(opts->argv[0], (char *const *)opts->argv, envp);
        int e = errno;
        if (write(exec_pipe[1], &e, sizeof(e)) < 0) {
            /* nothing more can be reported */
        }
        _exit(127);
    }
    close(devnull);
    close(exec_pipe[1]);
    int child_errno = 0;
    ssize_t n = read(exec_pipe[0], &child_errno, sizeof(child_errno));
    close(exec_pipe[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        if (err_fd >= 0)
            close(err_fd);
        return dc_error_set(err, "cannot run %s: %s", opts->argv[0], strerror(child_errno));
    }
    proc->pid = pid;
    proc->stderr_fd = err_fd;
    return 0;
}

int dc_process_wait(dc_process_t *proc, int *exit_status, dc_error_t *err)
{
    int status;
    if (proc->pid <= 0)
        return dc_error_set(err, "%s was not started", proc->name);
    bool forwarded = false;
    while (waitpid(proc->pid, &status, 0) < 0) {
        if (errno != EINTR)
            return dc_error_set(err, "cannot wait for %s: %s", proc->name, strerror(errno));
        /* We were asked to stop: so is the child. */
        if (!forwarded && dc_signal_received(NULL)) {
            kill(proc->pid, SIGTERM);
            forwarded = true;
        }
    }
    proc->pid = 0;
    if (WIFEXITED(status))
        *exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_status = 128 + WTERMSIG(status);
    else
        *exit_status = 255;
    return 0;
}

static void exit_status_of(int status, int *exit_status)
{
    if (WIFEXITED(status))
        *exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_status = 128 + WTERMSIG(status);
    else
        *exit_status = 255;
}

/* A child's output cut into lines as it arrives (wait_output below). */
typedef struct line_reader {
    int fd;
    bool eof;
    dc_output_line_fn on_line;
    void *ctx;
    char line[DC_OUTPUT_LINE_MAX + 1];
    size_t len;
} line_reader_t;

static void line_emit(line_reader_t *lr)
{
    if (lr->len > 0 && lr->line[lr->len - 1] == '\r')
        lr->len--;
    lr->line[lr->len] = '\0';
    lr->on_line(lr->line, lr->ctx);
    lr->len = 0;
}

/* Reads what the pipe holds now, at most about max bytes (a child that never stops writing
 * must not keep us here); stops when it would block or at end of file. */
static void line_read(line_reader_t *lr, size_t max)
{
    char chunk[4096];
    size_t total = 0;
    while (!lr->eof && total < max) {
        ssize_t n = read(lr->fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            lr->eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            return;
        }
        total += (size_t)n;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
                line_emit(lr);
                continue;
            }
            if (lr->len == DC_OUTPUT_LINE_MAX)
                line_emit(lr);
            lr->line[lr->len++] = chunk[i];
        }
    }
}

/* Waits up to 100 ms: for output when there is a pipe to read, else simply sleeps. */
static void wait_a_little(line_reader_t *lr)
{
    if (lr == NULL || lr->eof) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    struct pollfd pfd = {.fd = lr->fd, .events = POLLIN};
    if (poll(&pfd, 1, 100) > 0)
        line_read(lr, 1 << 16);
}

/* The loop behind dc_process_wait_timeout and dc_process_wait_output (lr NULL: no output to
 * read; timeout_ms 0: no limit). */
static int wait_group(dc_process_t *proc, uint64_t timeout_ms, line_reader_t *lr, int *exit_status,
                      bool *timed_out, dc_error_t *err)
{
    *timed_out = false;
    if (proc->pid <= 0)
        return dc_error_set(err, "%s was not started", proc->name);
    double deadline = dc_now_seconds() + (double)timeout_ms / 1000.0;
    int sig = 0; /* what the group was last sent */
    bool forwarded = false;
    for (;;) {
        int status;
        pid_t got = waitpid(proc->pid, &status, WNOHANG);
        if (got == proc->pid) {
            if (*timed_out)
                kill(-proc->pid, SIGKILL); /* what it started and left behind */
            proc->pid = 0;
            exit_status_of(status, exit_status);
            if (lr != NULL) {
                line_read(lr, 1 << 20); /* its last words, already in the pipe */
                if (lr->len > 0)
                    line_emit(lr);
            }
            return 0;
        }
        if (got < 0 && errno != EINTR)
            return dc_error_set(err, "cannot wait for %s: %s", proc->name, strerror(errno));
        if (!forwarded && dc_signal_received(NULL)) {
            kill(-proc->pid, SIGTERM);
            forwarded = true;
        }
        double now = dc_now_seconds();
        if (timeout_ms > 0 && now >= deadline && sig != SIGKILL) {
            sig = sig == 0 ? SIGTERM : SIGKILL;
            *timed_out = true;
            kill(-proc->pid, sig); /* the group: npx, node and whatever they started */
            deadline = now + 10.0;
        }
        wait_a_little(lr);
    }
}

int dc_process_wait_timeout(dc_process_t *proc, uint64_t timeout_ms, int *exit_status,
                            bool *timed_out, dc_error_t *err)
{
    *timed_out = false;
    if (timeout_ms == 0)
        return dc_process_wait(proc, exit_status, err);
    return wait_group(proc, timeout_ms, NULL, exit_status, timed_out, err);
}

int dc_process_wait_output(dc_process_t *proc, int out_fd, uint64_t timeout_ms,
                           dc_output_line_fn on_line, void *ctx, int *exit_status, bool *timed_out,
                           dc_error_t *err)
{
    int flags = fcntl(out_fd, F_GETFL);
    if (flags < 0 || fcntl(out_fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return dc_error_set(err, "cannot read the output of %s: %s", proc->name, strerror(errno));
    line_reader_t *lr = dc_calloc(1, sizeof(*lr));
    lr->fd = out_fd;
    lr->on_line = on_line;
    lr->ctx = ctx;
    int rc = wait_group(proc, timeout_ms, lr, exit_status, timed_out, err);
    free(lr);
    return rc;
}

char *dc_process_stderr_head(dc_process_t *proc, size_t max)
{
    if (proc->stderr_fd < 0)
        return dc_strdup("");
    off_t size = lseek(proc->stderr_fd, 0, SEEK_END);
    if (size <= 0)
        return dc_strdup("");
    size_t want = (size_t)size < max ? (size_t)size : max;
    char *buf = dc_malloc(want + 1);
    ssize_t got = pread(proc->stderr_fd, buf, want, 0);
    if (got < 0)
        got = 0;
    buf[got] = '\0';
    /* Trim trailing newlines, fold the rest into one line. */
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        buf[--got] = '\0';
    for (ssize_t i = 0; i < got; i++) {
        if (buf[i] == '\n')
            buf[i] = ' ';
    }
    return buf;
}

void dc_process_kill(dc_process_t *proc)
{
    if (proc->pid > 0) {
        kill(proc->pid, SIGTERM);
        int status;
        waitpid(proc->pid, &status, 0);
        proc->pid = 0;
    }
}

void dc_process_release(dc_process_t *proc)
{
    dc_process_kill(proc);
    if (proc->stderr_fd >= 0)
        close(proc->stderr_fd);
    proc->stderr_fd = -1;
}

int dc_process_run_capture(const char *const *argv, const dc_env_t *env, size_t max, char **out,
                           int *exit_status, dc_error_t *err)
{
    int out_fd = memfd_create("deployctl-stdout", MFD_CLOEXEC);
    if (out_fd < 0)
        return dc_error_set(err, "cannot capture the output of %s: %s", argv[0], strerror(errno));
    dc_spawn_opts_t opts = {
        .argv = argv, .env = env, .stdout_fd = out_fd, .keep_fd = -1, .capture_stderr = true};
    dc_process_t proc;
    if (dc_process_spawn(&opts, &proc, err) != 0) {
        close(out_fd);
        return -1;
    }
    int rc = dc_process_wait(&proc, exit_status, err);
    dc_process_release(&proc);
    if (rc != 0) {
        close(out_fd);
        return -1;
    }
    off_t size = lseek(out_fd, 0, SEEK_END);
    if (size < 0)
        size = 0;
    if ((size_t)size > max)
        size = (off_t)max;
    *out = dc_malloc((size_t)size + 1);
    ssize_t got = pread(out_fd, *out, (size_t)size, 0);
    (*out)[got > 0 ? got : 0] = '\0';
    close(out_fd);
    return 0;
}
