/* Proves that dc_redact masks every secret the log module promises to hide (URL passwords,
 * conninfo and query-string passwords, registered secrets) and leaves ordinary text intact. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"

static int forget_secrets(void **state)
{
    (void)state;
    dc_secrets_forget_all();
    return 0;
}

static void check_redacts(const char *in, const char *expected)
{
    char out[1024];
    dc_redact(in, out, sizeof(out));
    assert_string_equal(out, expected);
}

static void check_unchanged(const char *in)
{
    check_redacts(in, in);
}

static int count_occurrences(const char *haystack, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + len, needle))
        n++;
    return n;
}

static void test_url_password_masked(void **state)
{
    (void)state;
    check_redacts("postgresql://user:pw@host/db", "postgresql://user:***@host/db");
    check_redacts("connecting to postgres://app:S3cr3t-Pa55@db.internal:5432/app now",
                  "connecting to postgres://app:***@db.internal:5432/app now");
    /* No path after the host. */
    check_redacts("postgresql://user:hunter2@host", "postgresql://user:***@host");
}

/* Query-string values named like credentials (a smoke URL's ?token=, a presigned link's
 * signature) are masked; other parameters, and "key=" outside a query string, stay. */
static void test_query_secrets_masked(void **state)
{
    (void)state;
    check_redacts("http://app/health?a=1&token=T0k&x=2", "http://app/health?a=1&token=***&x=2");
    check_redacts("GET https://h/p?api_key=abc#frag", "GET https://h/p?api_key=***#frag");
    check_redacts("https://b.s3/o?X-Amz-Signature=deadbeef&X-Amz-Credential=AK/1 done",
                  "https://b.s3/o?X-Amz-Signature=***&X-Amz-Credential=*** done");
    check_redacts("http://h/?sig=1&client_secret=2&session_id=3",
                  "http://h/?sig=***&client_secret=***&session_id=***");
    check_unchanged("http://app/health?page=2&sort=name");
    check_unchanged("key=value in a message");
}

static void test_percent_encoded_password_masked(void **state)
{
    (void)state;
    char out[256];
    const char *in = "postgresql://app:p%40ss%2Fw%3Ard%25@db.example.com:5432/app";
    dc_redact(in, out, sizeof(out));
    assert_string_equal(out, "postgresql://app:***@db.example.com:5432/app");
    assert_null(strstr(out, "%40"));
    assert_null(strstr(out, "ss"));
}

static void test_url_without_password_unchanged(void **state)
{
    (void)state;
    check_unchanged("postgresql://user@host/db");
    check_unchanged("postgresql://host:5432/db");
    check_unchanged("postgresql://user@host:5432/db?sslmode=require");
    check_unchanged("postgresql://[::1]:5432/db");
    check_unchanged("https://example.com:8443/health?check=1");
    check_unchanged("file:///var/lib/deployctl/snapshots");
    check_unchanged("no url at all, just text: 12:30 at noon");
}

static void test_url_password_with_reserved_characters(void **state)
{
    (void)state;
    char out[256];
    /* libpq takes everything between "user:" and the last '@' before the first '/' as the
     * password, so "pa?ss" and "pa#ss" are passwords it accepts as written. */
    dc_redact("postgresql://app:pa?ss@db/app", out, sizeof(out));
    assert_string_equal(out, "postgresql://app:***@db/app");
    dc_redact("postgresql://app:pa#ss@db/app", out, sizeof(out));
    assert_string_equal(out, "postgresql://app:***@db/app");
    dc_redact("postgresql://app:pa ss@db/app failed: see admin@example.com", out, sizeof(out));
    assert_string_equal(out, "postgresql://app:***@db/app failed: see admin@example.com");
    dc_redact("connect to postgresql://app:pw@db failed for x@y", out, sizeof(out));
    assert_string_equal(out, "connect to postgresql://app:***@db failed for x@y");
}

static void test_conninfo_password_masked(void **state)
{
    (void)state;
    check_redacts("host=db user=app password=secret dbname=app",
                  "host=db user=app password=*** dbname=app");
    check_redacts("password=secret", "password=***");
    check_redacts("host=db password = secret port=5432", "host=db password = *** port=5432");

    char out[256];
    dc_redact("host=db password='a b' dbname=app", out, sizeof(out));
    assert_string_equal(out, "host=db password=*** dbname=app");
    assert_null(strstr(out, " b'"));

    dc_redact("password='it\\'s a secret' user=app", out, sizeof(out));
    assert_string_equal(out, "password=*** user=app");
    assert_null(strstr(out, "secret"));
}

static void test_query_password_masked(void **state)
{
    (void)state;
    check_redacts("postgresql://app@db/app?password=x&sslmode=require",
                  "postgresql://app@db/app?password=***&sslmode=require");
    check_redacts("postgresql://db/app?sslmode=require&password=topsecret",
                  "postgresql://db/app?sslmode=require&password=***");
}

static void test_sslpassword_masked(void **state)
{
    (void)state;
    check_redacts("sslcert=/c.pem sslpassword=keypass sslmode=verify-full",
                  "sslcert=/c.pem sslpassword=*** sslmode=verify-full");
    check_redacts("postgresql://db/app?sslpassword=keypass&sslmode=verify-full",
                  "postgresql://db/app?sslpassword=***&sslmode=verify-full");
}

static void test_registered_secret_masked_anywhere(void **state)
{
    (void)state;
    char out[256];
    dc_secret_register("hunter22");
    dc_redact("token hunter22 and (hunter22), xhunter22y", out, sizeof(out));
    assert_string_equal(out, "token *** and (***), x***y");

    dc_secret_register("another-Secret");
    dc_redact("another-Secret:hunter22", out, sizeof(out));
    assert_string_equal(out, "***:***");

    /* Registering twice is harmless. */
    dc_secret_register("hunter22");
    dc_redact("hunter22", out, sizeof(out));
    assert_string_equal(out, "***");

    /* Forgetting really forgets. */
    dc_secrets_forget_all();
    dc_redact("token hunter22", out, sizeof(out));
    assert_string_equal(out, "token hunter22");
}

static void test_multiple_urls(void **state)
{
    (void)state;
    char out[512];
    const char *in = "primary postgresql://a:pw1@h1/db replica postgresql://b:pw2@h2:5433/db "
                     "and postgres://c:pw3@h3";
    dc_redact(in, out, sizeof(out));
    assert_string_equal(out,
                        "primary postgresql://a:***@h1/db replica postgresql://b:***@h2:5433/db "
                        "and postgres://c:***@h3");
    assert_int_equal(count_occurrences(out, "***"), 3);
    assert_null(strstr(out, "pw"));

    /* Comma-separated, no spaces. */
    dc_redact("postgresql://a:pw1@h1,postgresql://b:pw2@h2", out, sizeof(out));
    assert_string_equal(out, "postgresql://a:***@h1,postgresql://b:***@h2");
}

static void test_ordinary_messages_intact(void **state)
{
    (void)state;
    check_unchanged("FATAL:  password authentication failed for user \"app\"");
    check_unchanged("fe_sendauth: no password supplied");
    check_unchanged("the password file ~/.pgpass has group or world access");
    check_unchanged("backup of app finished: 12,345 rows in 4m05s");
}

static void test_small_buffer_always_terminated(void **state)
{
    (void)state;
    const char *in = "connect postgresql://user:secretpw@host/db password=other123 done";
    char full[256];
    dc_secret_register("other123");
    dc_redact(in, full, sizeof(full));
    assert_null(strstr(full, "secretpw"));
    assert_null(strstr(full, "other123"));

    size_t full_len = strlen(full);
    for (size_t size = 1; size <= full_len + 2; size++) {
        char *buf = malloc(size + 1);
        assert_non_null(buf);
        memset(buf, 'Z', size + 1);
        dc_redact(in, buf, size);
        assert_true(buf[size] == 'Z');   /* nothing written past out_size */
        assert_true(strlen(buf) < size); /* NUL-terminated inside the buffer */
        /* A cut copy of the redacted text, never a cut copy of the original. */
        assert_memory_equal(buf, full, strlen(buf));
        assert_null(strstr(buf, "secr"));
        free(buf);
    }
}

static void test_sql_passwords(void **state)
{
    (void)state;
    check_redacts("m.sql line 3 (ALTER ROLE app PASSWORD 's3cr''et' VALID UNTIL 'x')",
                  "m.sql line 3 (ALTER ROLE app PASSWORD '***' VALID UNTIL 'x')");
    check_redacts("CREATE ROLE a LOGIN ENCRYPTED PASSWORD\n 'pw'",
                  "CREATE ROLE a LOGIN ENCRYPTED PASSWORD\n '***'");
    check_unchanged("ALTER ROLE app PASSWORD NULL");
    check_unchanged("the password_reset table");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_url_password_masked, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_percent_encoded_password_masked, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_url_without_password_unchanged, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_url_password_with_reserved_characters, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_conninfo_password_masked, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_query_password_masked, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_sslpassword_masked, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_registered_secret_masked_anywhere, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_multiple_urls, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_sql_passwords, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_ordinary_messages_intact, forget_secrets,
                                        forget_secrets),
        cmocka_unit_test_setup_teardown(test_query_secrets_masked, forget_secrets, forget_secrets),
        cmocka_unit_test_setup_teardown(test_small_buffer_always_terminated, forget_secrets,
                                        forget_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
