/* Database URL handling that runs before libpq connects: Prisma-only parameters removed (and
 * ?schema= kept aside), conninfo strings rebuilt without the password or with another database. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"

static void check_prisma(const char *url, const char *expected_url, const char *expected_schema)
{
    char *schema = (char *)"untouched";
    char *out = dc_pg_url_for_libpq(url, &schema);
    assert_string_equal(out, expected_url);
    if (expected_schema == NULL)
        assert_null(schema);
    else
        assert_string_equal(schema, expected_schema);
    free(out);
    free(schema);
}

static void test_prisma_parameters_removed(void **state)
{
    (void)state;
    check_prisma("postgresql://u:p@h:5432/db?schema=app&connection_limit=5&sslmode=require",
                 "postgresql://u:p@h:5432/db?sslmode=require", "app");
    check_prisma("postgres://h/db?pgbouncer=true&pool_timeout=10&schema=a%20b", "postgres://h/db",
                 "a b");
    check_prisma("postgresql://h/db?sslmode=disable&application_name=x",
                 "postgresql://h/db?sslmode=disable&application_name=x", NULL);
    check_prisma("postgresql://h/db", "postgresql://h/db", NULL);
    /* A conninfo string is not a URL: left alone. */
    check_prisma("host=h dbname=d", "host=h dbname=d", NULL);
    /* What remains is a URL libpq accepts. */
    char *schema = NULL;
    char *out = dc_pg_url_for_libpq("postgresql://u@h/db?schema=s&socket_timeout=3&statement_cache_"
                                    "size=0&sslaccept=strict&connect_timeout=5",
                                    &schema);
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(out, &errmsg);
    if (opts == NULL)
        fail_msg("libpq refuses %s: %s", out, errmsg);
    PQconninfoFree(opts);
    assert_string_equal(out, "postgresql://u@h/db?connect_timeout=5");
    free(out);
    free(schema);
}

static const char *value_of(PQconninfoOption *opts, const char *keyword)
{
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    }
    return NULL;
}

static void test_conninfo_without_password(void **state)
{
    (void)state;
    char *password = NULL;
    char *conninfo = dc_pg_conninfo(
        "postgresql://app:s%27cr%5Ct@db.example:6543/prod?sslmode=require", NULL, &password);
    assert_non_null(conninfo);
    assert_string_equal(password, "s'cr\\t");
    assert_null(strstr(conninfo, "password"));
    assert_null(strstr(conninfo, "cr"));
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    assert_non_null(opts);
    assert_string_equal(value_of(opts, "host"), "db.example");
    assert_string_equal(value_of(opts, "port"), "6543");
    assert_string_equal(value_of(opts, "dbname"), "prod");
    assert_string_equal(value_of(opts, "sslmode"), "require");
    PQconninfoFree(opts);
    free(conninfo);
    free(password);
}

static void test_conninfo_other_database(void **state)
{
    (void)state;
    /* A database name with quotes and backslashes survives conninfo quoting. */
    char *conninfo = dc_pg_url_with_database("postgresql://app:pw@h/prod", "it's a \\ db");
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    assert_non_null(opts);
    assert_string_equal(value_of(opts, "dbname"), "it's a \\ db");
    assert_string_equal(value_of(opts, "password"), "pw");
    assert_string_equal(value_of(opts, "user"), "app");
    PQconninfoFree(opts);
    free(conninfo);
    assert_null(dc_pg_conninfo("postgresql://[broken", NULL, NULL));
}

static void test_url_database(void **state)
{
    (void)state;
    char name[64];
    dc_error_t err = {0};
    assert_int_equal(dc_pg_url_database("postgresql://u@h/orders", name, sizeof(name), &err), 0);
    assert_string_equal(name, "orders");
    unsetenv("PGDATABASE");
    assert_int_equal(dc_pg_url_database("postgresql://alice@h", name, sizeof(name), &err), 0);
    assert_string_equal(name, "alice"); /* libpq's fallback: the user name */
    assert_int_equal(dc_pg_url_database("postgresql://[bad", name, sizeof(name), &err), -1);
    assert_true(err.message[0] != '\0');
}

/* A Prisma pooled URL (?pgbouncer=true: libpq refuses to parse it as is) still registers its
 * password, decoded, so that a message quoting it without the URL around is masked. */
static void test_prisma_url_secrets_registered(void **state)
{
    (void)state;
    dc_secrets_forget_all();
    dc_pg_register_secrets("postgresql://app:Pr1sma%21pw@pgbouncer:6432/app?pgbouncer=true&"
                           "connection_limit=1");
    char out[128];
    dc_redact("password Pr1sma!pw was rejected", out, sizeof(out));
    assert_string_equal(out, "password *** was rejected");
    dc_secrets_forget_all();
}

static void test_count_newlines(void **state)
{
    (void)state;
    assert_int_equal(dc_count_newlines("", 0), 0);
    assert_int_equal(dc_count_newlines("a\tb\n", 4), 1);
    assert_int_equal(dc_count_newlines("\n\n\nx", 4), 3);
    assert_int_equal(dc_count_newlines("a\\nb\n", 5), 1); /* an escaped newline is not a row */
    assert_int_equal(dc_count_newlines("x\ny\n", 2), 1);  /* only the first len bytes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prisma_parameters_removed),
        cmocka_unit_test(test_conninfo_without_password),
        cmocka_unit_test(test_conninfo_other_database),
        cmocka_unit_test(test_url_database),
        cmocka_unit_test(test_prisma_url_secrets_registered),
        cmocka_unit_test(test_count_newlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
