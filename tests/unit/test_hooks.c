/* Proves the release hooks runner with real child scripts in a temp directory: exit status,
 * timeout of the whole process group, the environment (DEPLOYCTL_* in, credentials out), output
 * into the log and its kept tail, and the absent / not executable cases. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deployctl/hooks.h"
#include "deployctl/log.h"
#include "deployctl/util.h"
#include "unit_tmpdir.h"

typedef struct fixture {
    char dir[64];  /* the hooks directory */
    char *log;     /* <dir>.log: our stderr (the log) while log_capture_start..stop */
    int saved_err; /* our real stderr meanwhile, else -1 */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL || unit_tmpdir_new(fx->dir, sizeof(fx->dir), "hooks") != 0)
        return -1;
    fx->log = dc_sprintf("%s.log", fx->dir);
    fx->saved_err = -1;
    *state = fx;
    return 0;
}

/* The log goes to stderr: into a file for the test to read (cmocka's messages too, so only
 * around the hook's run). */
static void log_capture_start(fixture_t *fx)
{
    int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    fx->saved_err = dup(STDERR_FILENO);
    assert_true(fx->saved_err >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

static void log_capture_stop(fixture_t *fx)
{
    if (fx->saved_err < 0)
        return;
    fflush(stderr);
    dup2(fx->saved_err, STDERR_FILENO);
    close(fx->saved_err);
    fx->saved_err = -1;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    log_capture_stop(fx);
    int rc = unit_tmpdir_remove(fx->dir);
    unlink(fx->log);
    free(fx->log);
    free(fx);
    return rc;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t size = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + size, 1, cap - size - 1, f)) > 0) {
        size += n;
        if (cap - size - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    buf[size] = '\0';
    fclose(f);
    return buf;
}

static void write_hook(const fixture_t *fx, const char *name, mode_t mode, const char *body)
{
    char *path = dc_sprintf("%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s", body);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    free(path);
}

static dc_hook_env_t env_in(const fixture_t *fx)
{
    dc_hook_env_t e = {.release_id = "20261129-rel1",
                       .snapshot = "20261129T000000Z-abcd",
                       .report_path = "/tmp/report.json",
                       .database = "appdb",
                       .state_dir = fx->dir};
    return e;
}

/* Runs the hook from fx->dir with env_in's variables (or *env), the log captured in fx->log. */
static int run_hook(fixture_t *fx, dc_hook_t hook, const dc_hook_env_t *env, uint64_t timeout_ms,
                    dc_hook_result_t *res, dc_error_t *err)
{
    dc_hook_env_t e = env != NULL ? *env : env_in(fx);
    log_capture_start(fx);
    int rc = dc_hook_run(fx->dir, hook, &e, timeout_ms, res, err);
    log_capture_stop(fx);
    return rc;
}

static void test_success(void **state)
{
    fixture_t *fx = *state;
    /* argv is the path alone; stdin is /dev/null (cat ends at once). */
    write_hook(fx, "deploy", 0755,
               "echo \"args:$#\"\ncat\necho to-stderr >&2\necho deployed\nexit 0\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), 0);
    assert_true(res.ran);
    assert_int_equal(res.exit_status, 0);
    assert_false(res.timed_out);
    assert_true(res.duration_ms < 5000);
    assert_string_equal(res.output_tail, "args:0\nto-stderr\ndeployed");
    dc_hook_result_free(&res);
    char *log = read_file(fx->log);
    assert_non_null(strstr(log, "hook deploy: args:0"));
    assert_non_null(strstr(log, "hook deploy: to-stderr"));
    assert_non_null(strstr(log, "hook deploy: deployed"));
    free(log);
}

static void test_exit_status(void **state)
{
    fixture_t *fx = *state;
    write_hook(fx, "rollback", 0700, "echo first\necho 'platform said no'\nexit 3\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_ROLLBACK, NULL, 5000, &res, &err), -1);
    assert_true(res.ran);
    assert_int_equal(res.exit_status, 3);
    assert_false(res.timed_out);
    assert_non_null(strstr(err.message, "hook rollback"));
    assert_non_null(strstr(err.message, "exit status 3"));
    assert_non_null(strstr(err.message, "platform said no"));
    assert_null(strstr(err.message, "first"));
    dc_hook_result_free(&res);
}

/* A process is gone once it no longer exists or is a zombie waiting for init. */
static bool process_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *stat = read_file(path);
    if (stat == NULL)
        return true;
    const char *close_paren = strrchr(stat, ')');
    bool zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    free(stat);
    return zombie;
}

static void test_timeout_kills_group(void **state)
{
    fixture_t *fx = *state;
    /* The grandchild ignores SIGTERM: only the group's SIGKILL stops it. */
    write_hook(fx, "maintenance-on", 0755,
               "(trap '' TERM; exec sleep 30) &\n"
               "echo $! > \"$DEPLOYCTL_STATE_DIR/grandchild.pid\"\n"
               "echo waiting\n"
               "sleep 30\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_MAINTENANCE_ON, NULL, 300, &res, &err), -1);
    assert_true(res.ran);
    assert_true(res.timed_out);
    assert_true(res.duration_ms >= 300);
    assert_true(res.duration_ms < 5000);
    assert_non_null(strstr(err.message, "hook maintenance-on"));
    assert_non_null(strstr(err.message, "300 ms"));
    assert_non_null(strstr(err.message, "waiting"));
    dc_hook_result_free(&res);

    char *pidfile = dc_sprintf("%s/grandchild.pid", fx->dir);
    char *text = read_file(pidfile);
    assert_non_null(text);
    pid_t grandchild = (pid_t)atoi(text);
    assert_true(grandchild > 1);
    bool gone = false;
    for (int i = 0; i < 50 && !gone; i++) {
        gone = process_gone(grandchild);
        if (!gone) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!gone)
        kill(grandchild, SIGKILL);
    assert_true(gone);
    free(text);
    free(pidfile);
}

/* A process the hook leaves running still holds the output pipe: the run ends with the hook. */
static void test_left_running(void **state)
{
    fixture_t *fx = *state;
    write_hook(fx, "post-release", 0755,
               "sleep 20 &\necho $! > \"$DEPLOYCTL_STATE_DIR/left.pid\"\necho started\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_POST_RELEASE, NULL, 10000, &res, &err), 0);
    char *pidfile = dc_sprintf("%s/left.pid", fx->dir);
    char *text = read_file(pidfile);
    assert_non_null(text);
    kill((pid_t)atoi(text), SIGKILL);
    assert_true(res.duration_ms < 5000);
    assert_false(res.timed_out);
    assert_string_equal(res.output_tail, "started");
    dc_hook_result_free(&res);
    free(text);
    free(pidfile);
}

static void test_environment(void **state)
{
    fixture_t *fx = *state;
    setenv("DATABASE_URL", "postgres://app:s3cr3t-pw@db/app", 1);
    setenv("PGPASSWORD", "s3cr3t-pw", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t", 1);
    setenv("DEPLOYCTL_OUTCOME", "stale-from-parent", 1); /* not set for this hook: absent */
    write_hook(fx, "pre-release", 0755, "env > \"$DEPLOYCTL_STATE_DIR/env.txt\"\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    int rc = run_hook(fx, DC_HOOK_PRE_RELEASE, NULL, 5000, &res, &err);
    unsetenv("DATABASE_URL");
    unsetenv("PGPASSWORD");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("DEPLOYCTL_OUTCOME");
    assert_int_equal(rc, 0);
    assert_null(res.output_tail);
    dc_hook_result_free(&res);

    char *path = dc_sprintf("%s/env.txt", fx->dir);
    char *env = read_file(path);
    assert_non_null(env);
    char *state_dir = dc_sprintf("\nDEPLOYCTL_STATE_DIR=%s\n", fx->dir);
    assert_non_null(strstr(env, "\nDEPLOYCTL_PHASE=pre-release\n"));
    assert_non_null(strstr(env, "\nDEPLOYCTL_RELEASE_ID=20261129-rel1\n"));
    assert_non_null(strstr(env, "\nDEPLOYCTL_SNAPSHOT=20261129T000000Z-abcd\n"));
    assert_non_null(strstr(env, "\nDEPLOYCTL_REPORT=/tmp/report.json\n"));
    assert_non_null(strstr(env, "\nDEPLOYCTL_DATABASE=appdb\n"));
    assert_non_null(strstr(env, state_dir));
    assert_null(strstr(env, "DEPLOYCTL_OUTCOME="));
    assert_null(strstr(env, "DATABASE_URL="));
    assert_null(strstr(env, "PGPASSWORD="));
    assert_null(strstr(env, "AWS_SECRET_ACCESS_KEY="));
    assert_null(strstr(env, "s3cr3t"));
    assert_non_null(strstr(env, "PATH=")); /* the rest of ours is there */
    free(state_dir);
    free(env);
    free(path);
}

static void test_phase_and_outcome(void **state)
{
    fixture_t *fx = *state;
    write_hook(fx, "notify", 0755, "echo \"$DEPLOYCTL_PHASE/$DEPLOYCTL_OUTCOME\"\n");
    dc_hook_env_t e = env_in(fx);
    e.phase = "rollback";
    e.outcome = "rolled-back";
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_NOTIFY, &e, 5000, &res, &err), 0);
    assert_string_equal(res.output_tail, "rollback/rolled-back");
    dc_hook_result_free(&res);
}

static void test_output_tail(void **state)
{
    fixture_t *fx = *state;
    /* 50000 lines (about 290 kB, far more than a pipe holds) then 30 numbered ones. */
    write_hook(fx, "post-release", 0755,
               "seq 1 50000 >/dev/stdout\n"
               "i=1; while [ $i -le 30 ]; do echo \"line $i\"; i=$((i+1)); done\n"
               "echo 'last on stderr' >&2\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_POST_RELEASE, NULL, 20000, &res, &err), 0);
    assert_non_null(res.output_tail);
    size_t lines = 1;
    for (const char *p = res.output_tail; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, DC_HOOK_TAIL_LINES);
    assert_true(strncmp(res.output_tail, "line 12\n", 8) == 0);
    assert_non_null(strstr(res.output_tail, "\nline 30\nlast on stderr"));
    assert_null(strstr(res.output_tail, "line 11\n"));
    dc_hook_result_free(&res);
    char *log = read_file(fx->log);
    assert_non_null(strstr(log, "hook post-release: 1\n"));
    assert_non_null(strstr(log, "hook post-release: 50000\n"));
    free(log);
}

static void test_long_line_is_bounded(void **state)
{
    fixture_t *fx = *state;
    write_hook(fx, "deploy", 0755, "head -c 20000 /dev/zero | tr '\\0' x; echo\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), 0);
    assert_non_null(res.output_tail);
    assert_true(strlen(res.output_tail) <= DC_HOOK_TAIL_LINES * DC_HOOK_TAIL_LINE_MAX);
    assert_int_equal(res.output_tail[0], 'x');
    dc_hook_result_free(&res);
}

static void test_secrets_masked(void **state)
{
    fixture_t *fx = *state;
    dc_secret_register("hunter2-store-token");
    write_hook(fx, "deploy", 0755,
               "echo 'using hunter2-store-token'\n"
               "echo 'url postgres://app:pw-in-url@db/app'\nexit 1\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    int rc = run_hook(fx, DC_HOOK_DEPLOY, NULL, 5000, &res, &err);
    dc_secrets_forget_all();
    assert_int_equal(rc, -1);
    assert_non_null(res.output_tail);
    assert_non_null(strstr(res.output_tail, "using ***"));
    assert_null(strstr(res.output_tail, "hunter2-store-token"));
    assert_null(strstr(res.output_tail, "pw-in-url"));
    assert_null(strstr(err.message, "pw-in-url"));
    assert_non_null(strstr(err.message, "postgres://app:"));
    dc_hook_result_free(&res);
    char *log = read_file(fx->log);
    assert_null(strstr(log, "hunter2-store-token"));
    assert_null(strstr(log, "pw-in-url"));
    assert_non_null(strstr(log, "hook deploy: using ***"));
    free(log);
}

static void test_not_executable(void **state)
{
    fixture_t *fx = *state;
    write_hook(fx, "deploy", 0644, "exit 0\n");
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), -1);
    assert_false(res.ran);
    char *want = dc_sprintf("hook %s/deploy is not executable: chmod +x it", fx->dir);
    assert_string_equal(err.message, want);
    free(want);

    char *path = dc_sprintf("%s/deploy", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/nonexistent/interpreter\nexit 0\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    dc_error_clear(&err);
    assert_int_equal(run_hook(fx, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), -1);
    assert_false(res.ran);
    assert_non_null(strstr(err.message, "hook deploy: cannot run"));
    assert_non_null(strstr(err.message, "#! line"));
    free(path);

    char *sub = dc_sprintf("%s/smoke-dir", fx->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *dir_hook = dc_sprintf("%s/notify", sub);
    assert_int_equal(mkdir(dir_hook, 0755), 0);
    dc_error_clear(&err);
    assert_int_equal(dc_hook_run(sub, DC_HOOK_NOTIFY, NULL, 5000, &res, &err), -1);
    assert_false(res.ran);
    assert_non_null(strstr(err.message, "is not executable"));
    assert_non_null(strstr(err.message, dir_hook));
    free(dir_hook);
    free(sub);
}

static void test_absent(void **state)
{
    fixture_t *fx = *state;
    dc_hook_result_t res;
    dc_error_t err = {0};
    assert_int_equal(run_hook(fx, DC_HOOK_MAINTENANCE_OFF, NULL, 5000, &res, &err), 0);
    assert_false(res.ran);
    assert_null(res.output_tail);
    assert_int_equal(dc_hook_run(NULL, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), 0);
    assert_false(res.ran);
    char *missing = dc_sprintf("%s/no-such-dir", fx->dir);
    assert_int_equal(dc_hook_run(missing, DC_HOOK_DEPLOY, NULL, 5000, &res, &err), 0);
    assert_false(res.ran);
    free(missing);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(dc_hook_name(DC_HOOK_PRE_RELEASE), "pre-release");
    assert_string_equal(dc_hook_name(DC_HOOK_MAINTENANCE_ON), "maintenance-on");
    assert_string_equal(dc_hook_name(DC_HOOK_DEPLOY), "deploy");
    assert_string_equal(dc_hook_name(DC_HOOK_ROLLBACK), "rollback");
    assert_string_equal(dc_hook_name(DC_HOOK_MAINTENANCE_OFF), "maintenance-off");
    assert_string_equal(dc_hook_name(DC_HOOK_POST_RELEASE), "post-release");
    assert_string_equal(dc_hook_name(DC_HOOK_NOTIFY), "notify");
}

int main(void)
{
    dc_log_configure(DC_LOG_INFO, DC_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_left_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phase_and_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_masked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_executable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
