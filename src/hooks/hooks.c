/* Release hooks: <dir>/<name> run by fork/exec in a process group of its own, stopped at its
 * timeout, with the DEPLOYCTL_* variables and no credentials, its output copied into our log as it
 * comes. What the phases mean and when each hook runs is the release orchestrator's business. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/hooks.h"
#include "deployctl/log.h"
#include "deployctl/process.h"
#include "deployctl/util.h"

static const char *const hook_names[DC_HOOK_COUNT] = {
    [DC_HOOK_PRE_RELEASE] = "pre-release",
    [DC_HOOK_MAINTENANCE_ON] = "maintenance-on",
    [DC_HOOK_DEPLOY] = "deploy",
    [DC_HOOK_ROLLBACK] = "rollback",
    [DC_HOOK_MAINTENANCE_OFF] = "maintenance-off",
    [DC_HOOK_POST_RELEASE] = "post-release",
    [DC_HOOK_NOTIFY] = "notify",
};

const char *dc_hook_name(dc_hook_t hook)
{
    return (int)hook >= 0 && hook < DC_HOOK_COUNT ? hook_names[hook] : "unknown";
}

/* The last lines of the output, in a ring. */
typedef struct tail {
    const char *hook;
    char lines[DC_HOOK_TAIL_LINES][DC_HOOK_TAIL_LINE_MAX];
    size_t next;  /* where the next line goes */
    size_t count; /* lines held */
} tail_t;

static void on_output_line(const char *line, void *ctx)
{
    tail_t *t = ctx;
    dc_log_info("hook %s: %s", t->hook, line); /* the log masks secrets itself */
    /* The tail goes into reports and error messages: masked too. */
    dc_redact(line, t->lines[t->next], DC_HOOK_TAIL_LINE_MAX);
    t->next = (t->next + 1) % DC_HOOK_TAIL_LINES;
    if (t->count < DC_HOOK_TAIL_LINES)
        t->count++;
}

static size_t tail_index(const tail_t *t, size_t i) /* i: 0 = the oldest line held */
{
    return (t->next + DC_HOOK_TAIL_LINES - t->count + i) % DC_HOOK_TAIL_LINES;
}

static char *tail_join(const tail_t *t)
{
    if (t->count == 0)
        return NULL;
    size_t size = 1;
    for (size_t i = 0; i < t->count; i++)
        size += strlen(t->lines[tail_index(t, i)]) + 1;
    char *out = dc_malloc(size);
    out[0] = '\0';
    for (size_t i = 0; i < t->count; i++) {
        if (i > 0)
            strcat(out, "\n");
        strcat(out, t->lines[tail_index(t, i)]);
    }
    return out;
}

/* Whether <path> is there (*present) and can run: absent is fine, anything else that cannot be
 * executed is the user's mistake and says how to fix it. */
static int hook_check(const char *path, bool *present, dc_error_t *err)
{
    struct stat st;
    *present = false;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && lstat(path, &st) == 0)
            return dc_error_set(err, "hook %s is a symbolic link to nothing: fix or remove it",
                                path);
        if (errno == ENOENT)
            return 0;
        if (errno == ENOTDIR)
            return dc_error_set(err, "hook %s: its directory is not a directory: fix hooks dir",
                                path);
        return dc_error_set(err, "cannot read hook %s: %s", path, strerror(errno));
    }
    *present = true;
    if (S_ISDIR(st.st_mode))
        return dc_error_set(err,
                            "hook %s is not executable (it is a directory): put an executable "
                            "file there or remove it",
                            path);
    if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        return dc_error_set(err, "hook %s is not executable: chmod +x it", path);
    return 0;
}

static void env_put(dc_env_t *env, const char *name, const char *value)
{
    if (value != NULL)
        dc_env_set(env, name, value);
    else
        dc_env_unset(env, name); /* not one inherited from whoever started us */
}

/* Ours minus the credentials, plus what the hook is told about the release. */
static void hook_env(dc_hook_t hook, const dc_hook_env_t *e, dc_env_t *env)
{
    static const dc_hook_env_t none = {0};
    if (e == NULL)
        e = &none;
    dc_env_init_for_child(env);
    env_put(env, "DEPLOYCTL_PHASE", e->phase != NULL ? e->phase : dc_hook_name(hook));
    env_put(env, "DEPLOYCTL_RELEASE_ID", e->release_id);
    env_put(env, "DEPLOYCTL_SNAPSHOT", e->snapshot);
    env_put(env, "DEPLOYCTL_OUTCOME", e->outcome);
    env_put(env, "DEPLOYCTL_REPORT", e->report_path);
    env_put(env, "DEPLOYCTL_DATABASE", e->database);
    env_put(env, "DEPLOYCTL_STATE_DIR", e->state_dir);
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%d", e->attempt);
    env_put(env, "DEPLOYCTL_ATTEMPT", e->attempt > 0 ? attempt : NULL);
}

/* Starts the hook with stdout and stderr into one pipe and waits for it, reading as it goes. */
static int hook_exec(const char *path, const dc_env_t *env, uint64_t timeout_ms, tail_t *tail,
                     dc_hook_result_t *res, dc_error_t *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return dc_error_set(err, "cannot start hook %s: %s", path, strerror(errno));
    const char *argv[] = {path, NULL};
    dc_spawn_opts_t opts = {.argv = argv,
                            .env = env,
                            .stdout_fd = fds[1],
                            .keep_fd = -1,
                            .new_group = true,
                            .stderr_to_stdout = true};
    dc_process_t proc;
    int rc = dc_process_spawn(&opts, &proc, err);
    close(fds[1]); /* the child's copy is the only writer left */
    if (rc != 0)   /* executable, yet exec failed: a script's interpreter most of the time */
        dc_error_append(err, " (a script: is the interpreter on its #! line installed?)");
    if (rc == 0) {
        res->ran = true;
        rc = dc_process_wait_output(&proc, fds[0], timeout_ms, on_output_line, tail,
                                    &res->exit_status, &res->timed_out, err);
        dc_process_release(&proc);
    }
    close(fds[0]);
    if (rc != 0)
        dc_error_prefix(err, "hook %s: ", tail->hook);
    return rc;
}

/* The failure message: which hook, how it ended, and the last thing it said. */
static int hook_failed(const char *path, const tail_t *tail, uint64_t timeout_ms,
                       const dc_hook_result_t *res, dc_error_t *err)
{
    char how[128];
    if (res->timed_out)
        snprintf(how, sizeof(how),
                 "did not finish within %llu ms and was stopped with its "
                 "process group",
                 (unsigned long long)timeout_ms);
    else if (res->exit_status > 128)
        snprintf(how, sizeof(how), "was killed by signal %d", res->exit_status - 128);
    else
        snprintf(how, sizeof(how), "failed with exit status %d", res->exit_status);
    const char *last = tail->count > 0 ? tail->lines[tail_index(tail, tail->count - 1)] : NULL;
    return dc_error_set(err, "hook %s (%s) %s; %s%s", tail->hook, path, how,
                        last != NULL ? "its last output: " : "it printed nothing",
                        last != NULL ? last : "");
}

int dc_hook_run(const char *dir, dc_hook_t hook, const dc_hook_env_t *env, uint64_t timeout_ms,
                dc_hook_result_t *res, dc_error_t *err)
{
    memset(res, 0, sizeof(*res));
    if (dir == NULL)
        return 0;
    char *path = dc_sprintf("%s/%s", dir, dc_hook_name(hook));
    bool present;
    int rc = hook_check(path, &present, err);
    if (rc != 0 || !present) {
        free(path);
        return rc;
    }
    tail_t *tail = dc_calloc(1, sizeof(*tail));
    tail->hook = dc_hook_name(hook);
    dc_env_t child_env;
    hook_env(hook, env, &child_env);
    dc_log_info("hook %s: running %s", tail->hook, path);
    double t0 = dc_now_seconds();
    rc = hook_exec(path, &child_env, timeout_ms, tail, res, err);
    res->duration_ms = (uint64_t)((dc_now_seconds() - t0) * 1000.0);
    res->output_tail = tail_join(tail);
    if (rc == 0 && (res->timed_out || res->exit_status != 0))
        rc = hook_failed(path, tail, timeout_ms, res, err);
    if (rc == 0)
        dc_log_info("hook %s: done in %llu ms", tail->hook, (unsigned long long)res->duration_ms);
    dc_env_free(&child_env);
    free(tail);
    free(path);
    return rc;
}

void dc_hook_result_free(dc_hook_result_t *res)
{
    if (res == NULL)
        return;
    free(res->output_tail);
    res->output_tail = NULL;
}
