/* Proves the smoke checks against real servers: HTTP checks against tests/harness/smoke_server.py
 * started by the test (status, body, delay, fails-then-passes, comes up late, https with a
 * private CA), and, run as `test_smoke sql` with DC_PG_ENV naming the pg fixture's env file (the
 * smoke_sql_live ctest entry), SQL checks against the test cluster. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deployctl/smoke.h"
#include "unit_tmpdir.h"

/* ---- the server, a child process ---- */

typedef struct server {
    pid_t pid;
    int port;
} server_t;

static server_t main_server;

/* Starts smoke_server.py with extra arguments (NULL-terminated) and reads its port. */
static int server_start(server_t *s, const char *arg1, const char *arg2, const char *arg3)
{
    const char *src = getenv("DC_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/harness/smoke_server.py", src ? src : ".");
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", script, arg1, arg2, arg3, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* the first line is the port (read up to its newline: the pipe may deliver it in parts) */
    char line[32] = {0};
    size_t len = 0;
    while (len < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        ssize_t n = read(fds[0], line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    s->port = atoi(line);
    if (s->port <= 0)
        fprintf(stderr, "smoke_server.py did not print its port (got \"%s\")\n", line);
    return s->port > 0 ? 0 : -1;
}

static void server_stop(server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    return server_start(&main_server, NULL, NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&main_server);
    return 0;
}

/* A port nobody listens on: bound then closed (nothing else on this machine takes it in the
 * milliseconds the test needs). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static char urls[8][512];

static const char *url_on(int slot, int port, const char *query)
{
    snprintf(urls[slot], sizeof(urls[slot]), "http://127.0.0.1:%d/health?%s", port, query);
    return urls[slot];
}

static const char *url(int slot, const char *query)
{
    return url_on(slot, main_server.port, query);
}

static dc_smoke_opts_t quick_opts(uint64_t window_ms)
{
    dc_smoke_opts_t o;
    dc_smoke_opts_init(&o);
    o.window_ms = window_ms;
    o.interval_ms = 150;
    o.request_timeout_ms = 3000;
    return o;
}

static dc_smoke_check_t http_check(const char *u)
{
    return (dc_smoke_check_t){.kind = DC_SMOKE_HTTP, .url = u};
}

/* One check, run; asserts it ran (0) and returns the result. */
static dc_smoke_result_t run_one(dc_smoke_check_t check, dc_smoke_opts_t opts)
{
    dc_smoke_result_t r;
    dc_error_t err = {0};
    int rc = dc_smoke_run(&check, 1, &opts, &r, &err);
    if (rc != 0)
        fail_msg("dc_smoke_run: %s", err.message);
    assert_int_equal(r.check_count, 1);
    assert_int_equal(r.checks[0].attempts, r.attempt_count);
    return r;
}

/* ---- HTTP ---- */

static void test_passes_on_200(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "status=200&body=all+good"));
    c.expect_body = "good";
    dc_smoke_result_t r = run_one(c, quick_opts(5000));
    assert_true(r.passed);
    assert_true(r.checks[0].passed);
    assert_int_equal(r.attempt_count, 1);
    assert_int_equal(r.failures + r.errors, 0);
    assert_int_equal(r.attempts[0].status, 200);
    assert_true(r.attempts[0].passed);
    assert_non_null(strstr(r.attempts[0].detail, "HTTP 200"));
    dc_smoke_result_free(&r);
}

static void test_fails_twice_then_passes(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "key=flaky1&fail=2&status=200"));
    dc_smoke_result_t r = run_one(c, quick_opts(5000));
    assert_true(r.passed);
    assert_int_equal(r.attempt_count, 3);
    assert_int_equal(r.checks[0].failures, 2);
    assert_int_equal(r.checks[0].errors, 0);
    assert_int_equal(r.failures, 2);
    assert_int_equal(r.attempts[0].status, 503);
    assert_false(r.attempts[0].error);
    assert_string_equal(r.attempts[1].detail, "HTTP 503, want any 2xx");
    assert_true(r.attempts[2].passed);
    /* retried after the interval, not at once */
    assert_true(r.attempts[1].started_ms >= r.attempts[0].started_ms + 150);
    dc_smoke_result_free(&r);
}

static void test_refused_is_an_error(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url_on(0, dead_port(), "status=200"));
    dc_smoke_result_t r = run_one(c, quick_opts(600));
    assert_false(r.passed);
    assert_false(r.checks[0].passed);
    assert_true(r.errors >= 2);
    assert_int_equal(r.failures, 0);
    assert_int_equal(r.checks[0].errors, r.attempt_count);
    assert_true(r.attempts[0].error);
    assert_int_equal(r.attempts[0].status, 0);
    assert_non_null(strstr(r.attempts[0].detail, "connection refused"));
    dc_smoke_result_free(&r);
}

static void test_comes_up_late(void **state)
{
    (void)state;
    server_t late;
    assert_int_equal(server_start(&late, "--late", "1.0", NULL), 0);
    dc_smoke_check_t c = http_check(url_on(0, late.port, "status=200"));
    dc_smoke_result_t r = run_one(c, quick_opts(8000));
    server_stop(&late);
    assert_true(r.passed);
    assert_true(r.checks[0].errors >= 2); /* refused while it was not up */
    assert_int_equal(r.checks[0].failures, 0);
    assert_true(r.attempts[r.attempt_count - 1].passed);
    assert_true(r.attempts[r.attempt_count - 1].started_ms >= 900);
    dc_smoke_result_free(&r);
}

static void test_status_mismatch(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "status=200"));
    c.expect_status = 201;
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_int_equal(r.attempt_count, 1); /* a window of 0: one attempt */
    assert_int_equal(r.failures, 1);
    assert_string_equal(r.attempts[0].detail, "HTTP 200, want 201");
    dc_smoke_result_free(&r);

    /* an explicit status that is not 2xx passes when it comes */
    c = http_check(url(0, "status=418"));
    c.expect_status = 418;
    r = run_one(c, quick_opts(0));
    assert_true(r.passed);
    dc_smoke_result_free(&r);
}

static void test_body_missing(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "body=maintenance+mode"));
    c.expect_body = "\"status\":\"ok\"";
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_int_equal(r.failures, 1);
    assert_string_equal(r.attempts[0].detail, "HTTP 200, body lacks \"\"status\":\"ok\"\"");
    dc_smoke_result_free(&r);
}

static void test_body_read_is_bounded(void **state)
{
    (void)state;
    /* 3 MiB of padding, then the text: only the first MiB is read */
    dc_smoke_check_t c = http_check(url(0, "pad=3145728&body=needle"));
    c.expect_body = "needle";
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_false(r.attempts[0].error);
    assert_non_null(strstr(r.attempts[0].detail, "lacks \"needle\" in its first MiB"));
    dc_smoke_result_free(&r);
    /* under the cap the text is found */
    c.url = url(0, "pad=500000&body=needle");
    r = run_one(c, quick_opts(0));
    assert_true(r.passed);
    dc_smoke_result_free(&r);
}

static void test_latency_over_budget(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "delay=0.4"));
    c.max_latency_ms = 150;
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_int_equal(r.failures, 1);
    assert_int_equal(r.errors, 0);
    assert_true(r.attempts[0].latency_ms >= 400);
    assert_non_null(strstr(r.attempts[0].detail, "over the 150 ms budget"));
    dc_smoke_result_free(&r);
    c.max_latency_ms = 2000;
    r = run_one(c, quick_opts(0));
    assert_true(r.passed);
    dc_smoke_result_free(&r);
}

static void test_window_closes(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "status=503"));
    dc_smoke_result_t r = run_one(c, quick_opts(1000));
    assert_false(r.passed);
    assert_true(r.attempt_count >= 3);
    assert_int_equal(r.failures, r.attempt_count);
    assert_true(r.duration_ms >= 700);
    assert_true(r.duration_ms < 1600);
    dc_smoke_result_free(&r);
}

static void test_attempt_timeout(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "delay=3"));
    dc_smoke_opts_t o = quick_opts(0);
    o.request_timeout_ms = 300;
    dc_smoke_result_t r = run_one(c, o);
    assert_false(r.passed);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.attempts[0].detail, "no answer within 300 ms");
    assert_true(r.duration_ms < 1500);
    dc_smoke_result_free(&r);
}

static void test_redirect_not_followed(void **state)
{
    (void)state;
    dc_smoke_check_t c = http_check(url(0, "status=302&redirect=http://127.0.0.1:1/login"));
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_int_equal(r.attempts[0].status, 302);
    assert_non_null(strstr(r.attempts[0].detail, "redirect to http://127.0.0.1:1/login"));
    dc_smoke_result_free(&r);
    c.expect_status = 302;
    r = run_one(c, quick_opts(0));
    assert_true(r.passed);
    dc_smoke_result_free(&r);
}

static void test_bad_urls_refused(void **state)
{
    (void)state;
    dc_smoke_opts_t o = quick_opts(0);
    dc_smoke_result_t r;
    dc_error_t err = {0};
    dc_smoke_check_t good = http_check(url(0, ""));
    dc_smoke_check_t checks[2] = {good, http_check("ftp://127.0.0.1/file")};
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);
    assert_non_null(strstr(err.message, "scheme \"ftp\" is not supported"));
    assert_non_null(strstr(err.message, "http:// or https://"));
    assert_null(r.checks);

    checks[1] = http_check("http://exa mple.com:99999/");
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);
    assert_non_null(strstr(err.message, "malformed URL"));

    /* no scheme at all, and a password that must not reach the message */
    checks[1] = http_check("https://deploy:s3cretpass@ex ample.com/");
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);
    assert_non_null(strstr(err.message, "malformed URL"));
    assert_null(strstr(err.message, "s3cretpass"));
    checks[1] = http_check("app.example.com/health");
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);

    checks[1] = http_check(url(1, ""));
    checks[1].expect_status = 42;
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);
    assert_non_null(strstr(err.message, "not an HTTP status"));

    /* an SQL check needs a database */
    checks[1] = (dc_smoke_check_t){.kind = DC_SMOKE_SQL, .sql = "SELECT true"};
    assert_int_equal(dc_smoke_run(checks, 2, &o, &r, &err), -1);
    assert_non_null(strstr(err.message, "no database"));
}

static void test_concurrent_checks(void **state)
{
    (void)state;
    dc_smoke_check_t checks[3] = {http_check(url(0, "delay=1&body=a")),
                                  http_check(url(1, "delay=1&body=b")),
                                  http_check(url(2, "key=conc&fail=1"))};
    checks[0].expect_body = "a";
    checks[1].expect_body = "b";
    dc_smoke_opts_t o = quick_opts(5000);
    dc_smoke_result_t r;
    dc_error_t err = {0};
    assert_int_equal(dc_smoke_run(checks, 3, &o, &r, &err), 0);
    assert_true(r.passed);
    assert_int_equal(r.check_count, 3);
    assert_int_equal(r.checks[2].attempts, 2);
    print_message("two 1 s checks and a flaky one together: %llu ms\n",
                  (unsigned long long)r.duration_ms);
    assert_true(r.duration_ms >= 1000);
    assert_true(r.duration_ms < 1800); /* at once: about the slowest, not the sum */
    /* attempts are in the order they ended: the quick flaky one first */
    assert_int_equal(r.attempts[0].check, 2);
    dc_smoke_result_free(&r);
}

static void test_check_names(void **state)
{
    (void)state;
    char name[256];
    dc_smoke_check_t c = http_check("https://ci:hunter2secret@app.example.com/health");
    dc_smoke_check_name(&c, 0, name, sizeof(name));
    assert_null(strstr(name, "hunter2secret"));
    assert_non_null(strstr(name, "app.example.com/health"));
    c.name = "home page";
    dc_smoke_check_name(&c, 0, name, sizeof(name));
    assert_string_equal(name, "home page");
    dc_smoke_check_t s = {.kind = DC_SMOKE_SQL, .sql = "SELECT true"};
    dc_smoke_check_name(&s, 2, name, sizeof(name));
    assert_string_equal(name, "sql 3");
}

/* ---- https with a private CA ---- */

static void test_https_verification(void **state)
{
    (void)state;
    char dir[256], cert[512], key[512], cmd[2048];
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        print_message("openssl not installed (apt-get install openssl): https not tested\n");
        skip();
    }
    assert_int_equal(unit_tmpdir_new(dir, sizeof(dir), "smoke-tls"), 0);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null",
             key, cert);
    assert_int_equal(system(cmd), 0);
    server_t tls;
    assert_int_equal(server_start(&tls, "--tls", cert, key), 0);
    char u[128];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/health", tls.port);
    dc_smoke_check_t c = http_check(u);

    /* verification is always on: a certificate nobody vouches for is no answer */
    dc_smoke_result_t r = run_one(c, quick_opts(0));
    assert_false(r.passed);
    assert_true(r.attempts[0].error);
    assert_non_null(strstr(r.attempts[0].detail, "TLS"));
    dc_smoke_result_free(&r);

    dc_smoke_opts_t o = quick_opts(0);
    o.ca_file = cert;
    r = run_one(c, o);
    assert_true(r.passed);
    dc_smoke_result_free(&r);
    server_stop(&tls);
    unit_tmpdir_remove(dir);
}

/* ---- a directory of SQL checks ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_read_sql_dir(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(unit_tmpdir_new(dir, sizeof(dir), "smoke-sql"), 0);
    write_file(dir, "20_orders.sql", "SELECT count(*) > 0 FROM orders;\n");
    write_file(dir, "10_users.sql", "SELECT id FROM users WHERE email IS NULL;\n");
    write_file(dir, "notes.txt", "not a check");
    write_file(dir, ".hidden.sql", "SELECT false");
    dc_smoke_check_t *checks = NULL;
    size_t count = 0;
    dc_error_t err = {0};
    assert_int_equal(dc_smoke_read_sql_dir(dir, &checks, &count, &err), 0);
    assert_int_equal(count, 2);
    assert_int_equal(checks[0].kind, DC_SMOKE_SQL);
    assert_string_equal(checks[0].name, "10_users.sql");
    assert_string_equal(checks[0].sql, "SELECT id FROM users WHERE email IS NULL;\n");
    assert_string_equal(checks[1].name, "20_orders.sql");
    dc_smoke_checks_free(checks, count);

    write_file(dir, "30_empty.sql", " \n;\n");
    assert_int_equal(dc_smoke_read_sql_dir(dir, &checks, &count, &err), -1);
    assert_non_null(strstr(err.message, "30_empty.sql is empty"));
    assert_null(checks);

    char missing[300];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    assert_int_equal(dc_smoke_read_sql_dir(missing, &checks, &count, &err), -1);
    assert_non_null(strstr(err.message, "nope"));
    unit_tmpdir_remove(dir);
}

/* ---- SQL against the test cluster (test_smoke sql) ---- */

static char pg_base[512];

static int sql_setup(void **state)
{
    (void)state;
    const char *env = getenv("DC_PG_ENV");
    FILE *f = env ? fopen(env, "r") : NULL;
    if (f == NULL)
        return -1;
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        const char *prefix = "export DC_PG_URL_BASE='";
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            snprintf(pg_base, sizeof(pg_base), "%s", line + strlen(prefix));
            pg_base[strcspn(pg_base, "'")] = '\0';
        }
    }
    fclose(f);
    return pg_base[0] ? server_start(&main_server, NULL, NULL, NULL) : -1;
}

static dc_smoke_result_t run_sql(const char *sql, uint64_t window_ms, uint64_t timeout_ms)
{
    char db[600];
    snprintf(db, sizeof(db), "%s/postgres", pg_base);
    dc_smoke_opts_t o = quick_opts(window_ms);
    o.database_url = db;
    o.request_timeout_ms = timeout_ms;
    dc_smoke_check_t c = {.kind = DC_SMOKE_SQL, .sql = sql};
    return run_one(c, o);
}

static void expect_sql(const char *sql, bool passed, const char *detail)
{
    dc_smoke_result_t r = run_sql(sql, 0, 5000);
    if (r.passed != passed || strstr(r.attempts[0].detail, detail) == NULL)
        fail_msg("%s: passed=%d detail \"%s\", want passed=%d and \"%s\"", sql, r.passed,
                 r.attempts[0].detail, passed, detail);
    assert_false(r.attempts[0].error);
    dc_smoke_result_free(&r);
}

static void test_sql_answers(void **state)
{
    (void)state;
    expect_sql("SELECT true", true, "true");
    expect_sql("SELECT 1 WHERE false", true, "no rows");
    expect_sql("DO $$ BEGIN PERFORM 1; END $$", true, "no rows");
    expect_sql("SELECT false", false, "returned false");
    expect_sql("SELECT NULL::boolean", false, "returned (NULL)");
    expect_sql("SELECT 'yes'", false, "returned (yes), want no rows or one boolean true");
    expect_sql("SELECT g, g * 2 FROM generate_series(7, 9) g", false,
               "returned 3 rows of 2 columns, first (7, 14)");
    expect_sql("DO $$ BEGIN RAISE EXCEPTION 'orders without customer: 3'; END $$", false,
               "orders without customer: 3");
    /* a check runs read-only: it cannot change what it checks */
    expect_sql("CREATE TABLE smoke_write_attempt (id int)", false, "read-only transaction");
}

static void test_sql_timeout_and_no_database(void **state)
{
    (void)state;
    dc_smoke_result_t r = run_sql("SELECT pg_sleep(5) IS NOT NULL", 0, 300);
    assert_false(r.passed);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.attempts[0].detail, "no answer within 300 ms");
    dc_smoke_result_free(&r);

    /* a server that is not there: errors, retried through the window, no password shown */
    char db[128];
    snprintf(db, sizeof(db), "postgresql://dctest:pw-not-shown@127.0.0.1:%d/postgres", dead_port());
    dc_smoke_opts_t o = quick_opts(500);
    o.database_url = db;
    dc_smoke_check_t c = {.kind = DC_SMOKE_SQL, .sql = "SELECT true"};
    r = run_one(c, o);
    assert_false(r.passed);
    assert_true(r.errors >= 2);
    assert_int_equal(r.failures, 0);
    assert_non_null(strstr(r.attempts[0].detail, "cannot connect"));
    assert_null(strstr(r.attempts[0].detail, "pw-not-shown"));
    dc_smoke_result_free(&r);
}

static void test_sql_beside_http(void **state)
{
    (void)state;
    char db[600];
    snprintf(db, sizeof(db), "%s/postgres", pg_base);
    dc_smoke_check_t checks[3] = {
        {.kind = DC_SMOKE_SQL, .sql = "SELECT pg_sleep(1) IS NOT NULL"},
        http_check(url(0, "delay=1")),
        {.kind = DC_SMOKE_SQL, .sql = "SELECT 1 WHERE false", .name = "no orphans"},
    };
    dc_smoke_opts_t o = quick_opts(5000);
    o.database_url = db;
    dc_smoke_result_t r;
    dc_error_t err = {0};
    assert_int_equal(dc_smoke_run(checks, 3, &o, &r, &err), 0);
    assert_true(r.passed);
    assert_int_equal(r.attempt_count, 3);
    assert_true(r.duration_ms < 1800); /* the SQL checks run beside the HTTP one */
    dc_smoke_result_free(&r);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sql") == 0) {
        const struct CMUnitTest sql[] = {
            cmocka_unit_test(test_sql_answers),
            cmocka_unit_test(test_sql_timeout_and_no_database),
            cmocka_unit_test(test_sql_beside_http),
        };
        return cmocka_run_group_tests_name("smoke_sql", sql, sql_setup, group_teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passes_on_200),
        cmocka_unit_test(test_fails_twice_then_passes),
        cmocka_unit_test(test_refused_is_an_error),
        cmocka_unit_test(test_comes_up_late),
        cmocka_unit_test(test_status_mismatch),
        cmocka_unit_test(test_body_missing),
        cmocka_unit_test(test_body_read_is_bounded),
        cmocka_unit_test(test_latency_over_budget),
        cmocka_unit_test(test_window_closes),
        cmocka_unit_test(test_attempt_timeout),
        cmocka_unit_test(test_redirect_not_followed),
        cmocka_unit_test(test_bad_urls_refused),
        cmocka_unit_test(test_concurrent_checks),
        cmocka_unit_test(test_check_names),
        cmocka_unit_test(test_https_verification),
        cmocka_unit_test(test_read_sql_dir),
    };
    return cmocka_run_group_tests_name("smoke", tests, group_setup, group_teardown);
}
