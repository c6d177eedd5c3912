/* Proves the Prometheus textfile updater: a new file, an update that replaces only its own
 * samples (same name and labels) and keeps everything else (other databases, other tools'
 * families, histograms), label and HELP escaping, value formatting, refused metric names and
 * paths, no temporary file left behind, concurrent updaters that lose nothing, and a release's
 * outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deployctl/metrics.h"
#include "deployctl/util.h"
#include "unit_tmpdir.h"

static char dir[256];
static char path[300];

static int setup(void **state)
{
    (void)state;
    if (unit_tmpdir_new(dir, sizeof(dir), "metrics") != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/deployctl.prom", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return unit_tmpdir_remove(dir);
}

static char *slurp(void)
{
    char *text = NULL;
    size_t len;
    dc_error_t err;
    assert_int_equal(dc_read_file(path, 0, false, &text, &len, &err), 0);
    return text;
}

static int entries_in_dir(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    closedir(d);
    return n;
}

static void update(const dc_metric_t *m, size_t n)
{
    dc_error_t err;
    dc_error_clear(&err);
    if (dc_metrics_update(path, m, n, &err) != 0)
        fail_msg("dc_metrics_update: %s", err.message);
}

static void test_new_file(void **state)
{
    (void)state;
    dc_metric_t m[] = {{"deployctl_backup_last_bytes", "Stored size.", "app", 1234},
                       {"deployctl_backup_last_duration_seconds", "How long.", "app", 1.5}};
    update(m, 2);
    char *text = slurp();
    assert_string_equal(text,
                        "# HELP deployctl_backup_last_bytes Stored size.\n"
                        "# TYPE deployctl_backup_last_bytes gauge\n"
                        "deployctl_backup_last_bytes{database=\"app\"} 1234\n"
                        "# HELP deployctl_backup_last_duration_seconds How long.\n"
                        "# TYPE deployctl_backup_last_duration_seconds gauge\n"
                        "deployctl_backup_last_duration_seconds{database=\"app\"} 1.500000\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(entries_in_dir(), 1);
}

static void test_merge_keeps_others(void **state)
{
    (void)state;
    FILE *f = fopen(path, "w");
    fputs("# a comment that is dropped\n"
          "# HELP other_hist A histogram.\n# TYPE other_hist histogram\n"
          "other_hist_bucket{le=\"+Inf\",path=\"/a}b\"} 4\nother_hist_sum 2.5\n"
          "other_hist_count 4\n"
          "untyped_thing 7 1700000000000\n"
          "# HELP deployctl_backup_last_bytes old help\n"
          "# TYPE deployctl_backup_last_bytes gauge\n"
          "deployctl_backup_last_bytes{database=\"app\"} 1\n"
          "deployctl_backup_last_bytes{database=\"crm\"} 99\n",
          f);
    fclose(f);
    dc_metric_t m[] = {{"deployctl_backup_last_bytes", "Stored size.", "app", 2},
                       {"deployctl_release_last_outcome", "Outcome.", "app", 0}};
    update(m, 2);
    char *text = slurp();
    assert_string_equal(text, "# HELP other_hist A histogram.\n# TYPE other_hist histogram\n"
                              "other_hist_bucket{le=\"+Inf\",path=\"/a}b\"} 4\nother_hist_sum 2.5\n"
                              "other_hist_count 4\n"
                              "untyped_thing 7 1700000000000\n"
                              "# HELP deployctl_backup_last_bytes Stored size.\n"
                              "# TYPE deployctl_backup_last_bytes gauge\n"
                              "deployctl_backup_last_bytes{database=\"app\"} 2\n"
                              "deployctl_backup_last_bytes{database=\"crm\"} 99\n"
                              "# HELP deployctl_release_last_outcome Outcome.\n"
                              "# TYPE deployctl_release_last_outcome gauge\n"
                              "deployctl_release_last_outcome{database=\"app\"} 0\n");
    free(text);
}

static void test_escaping_and_values(void **state)
{
    (void)state;
    dc_metric_t m[] = {{"x_total", "a\\b\nc", "we\"ird\\db\nname", -3},
                       {"y", NULL, NULL, 1795988426.672547}};
    update(m, 2);
    char *text = slurp();
    assert_string_equal(text, "# HELP x_total a\\\\b\\nc\n# TYPE x_total gauge\n"
                              "x_total{database=\"we\\\"ird\\\\db\\nname\"} -3\n"
                              "# HELP y y\n# TYPE y gauge\ny 1795988426.672547\n");
    free(text);
    /* Updating the escaped sample again finds it rather than adding a second one. */
    m[0].value = 4;
    update(m, 1);
    text = slurp();
    assert_non_null(strstr(text, "x_total{database=\"we\\\"ird\\\\db\\nname\"} 4\n"));
    assert_null(strstr(text, "} -3\n"));
    free(text);
}

static void test_refusals_leave_nothing(void **state)
{
    (void)state;
    dc_error_t err;
    dc_metric_t bad[] = {{"9starts_with_digit", "x", NULL, 1}};
    assert_int_equal(dc_metrics_update(path, bad, 1, &err), -1);
    assert_non_null(strstr(err.message, "9starts_with_digit"));
    dc_metric_t ok[] = {{"fine", "x", NULL, 1}};
    char missing[400];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/x.prom", dir);
    assert_int_equal(dc_metrics_update(missing, ok, 1, &err), -1);
    assert_non_null(strstr(err.message, "does not exist"));
    assert_int_equal(dc_metrics_update(dir, ok, 1, &err), -1);
    assert_non_null(strstr(err.message, "is a directory"));
    /* A file too big to be ours is not replaced. */
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 5 * 1024 * 1024 / 16; i++)
        fputs("junk_metric 1.0\n", f);
    fclose(f);
    assert_int_equal(dc_metrics_update(path, ok, 1, &err), -1);
    assert_int_equal(entries_in_dir(), 1);
}

/* Eight processes, each adding its own sample 20 times: none may be lost to a race. */
static void test_concurrent_updaters(void **state)
{
    (void)state;
    enum { WRITERS = 8, ROUNDS = 20 };
    for (int w = 0; w < WRITERS; w++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char db[16];
            snprintf(db, sizeof(db), "db%d", w);
            for (int r = 0; r < ROUNDS; r++) {
                dc_metric_t m = {"deployctl_backup_last_bytes", "Stored size.", db, r};
                dc_error_t err;
                if (dc_metrics_update(path, &m, 1, &err) != 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status;
        wait(&status);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char *text = slurp();
    for (int w = 0; w < WRITERS; w++) {
        char line[96];
        snprintf(line, sizeof(line), "deployctl_backup_last_bytes{database=\"db%d\"} %d\n", w,
                 ROUNDS - 1);
        if (strstr(text, line) == NULL)
            fail_msg("lost %s in:\n%s", line, text);
    }
    free(text);
    assert_int_equal(entries_in_dir(), 1);
}

/* A rolled-back release leaves the last success time of the release before it. */
static void test_release_outcome(void **state)
{
    (void)state;
    dc_error_t err;
    assert_int_equal(dc_metrics_release(path, "app", 0, 100, 160, &err), 0);
    assert_int_equal(dc_metrics_release(path, "app", 2, 200, 230, &err), 0);
    char *text = slurp();
    assert_non_null(strstr(text, "deployctl_release_last_outcome{database=\"app\"} 2\n"));
    assert_non_null(
        strstr(text, "deployctl_release_last_end_timestamp_seconds{database=\"app\"} 230\n"));
    assert_non_null(strstr(text, "deployctl_release_last_duration_seconds{database=\"app\"} 30\n"));
    assert_non_null(
        strstr(text, "deployctl_release_last_success_timestamp_seconds{database=\"app\"} 160\n"));
    assert_non_null(strstr(text, "# TYPE deployctl_release_last_outcome gauge\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_keeps_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_updaters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_outcome, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
