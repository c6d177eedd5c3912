/* Proves the check report's pure logic: the verdict is the worst status, statuses only rise,
 * the text and JSON forms, secrets masked in details, the locale choice of markers, and what a
 * URL alone says about a pooler. The checks themselves run against PostgreSQL and PgBouncer
 * in tests/integration/check_*.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/check.h"
#include "deployctl/log.h"
#include "deployctl/util.h"

#include "../../src/check/needs.h"

static void test_verdict_is_the_worst(void **state)
{
    (void)state;
    dc_check_report_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(dc_check_report_verdict(&r), DC_CHECK_OK);
    dc_check_add(&r, "a", "A", DC_CHECK_SKIPPED, "skipped");
    dc_check_add(&r, "b", "B", DC_CHECK_OK, "fine");
    assert_int_equal(dc_check_report_verdict(&r), DC_CHECK_OK);
    dc_check_add(&r, "c", "C", DC_CHECK_WARNING, "hmm");
    assert_int_equal(dc_check_report_verdict(&r), DC_CHECK_WARNING);
    dc_check_add(&r, "d", "D", DC_CHECK_FAILED, "no");
    assert_int_equal(dc_check_report_verdict(&r), DC_CHECK_FAILED);
    assert_int_equal(dc_check_report_count(&r, DC_CHECK_OK), 1);
    assert_int_equal(dc_check_report_count(&r, DC_CHECK_SKIPPED), 1);
    dc_check_report_free(&r);
}

static void test_raise_never_lowers(void **state)
{
    (void)state;
    dc_check_report_t r;
    memset(&r, 0, sizeof(r));
    dc_check_result_t *x = dc_check_add(&r, "x", "X", DC_CHECK_OK, "%d", 1);
    dc_check_raise(x, DC_CHECK_FAILED);
    dc_check_raise(x, DC_CHECK_WARNING);
    assert_int_equal(x->status, DC_CHECK_FAILED);
    assert_string_equal(dc_check_status_name(x->status), "failed");
    dc_check_report_free(&r);
}

static dc_check_report_t sample(void)
{
    dc_check_report_t r;
    memset(&r, 0, sizeof(r));
    dc_check_add(&r, "connection", "Database connection", DC_CHECK_OK, "connected");
    dc_check_result_t *p = dc_check_add(&r, "locks", "Long transactions and locks", DC_CHECK_FAILED,
                                        "%d session in the way", 1);
    dc_check_add_item(p, "pid %d holds locks on %s", 42, "items");
    dc_check_add(&r, "snapshot", "Snapshot", DC_CHECK_WARNING, "none");
    r.verdict = dc_check_report_verdict(&r);
    return r;
}

static void test_json(void **state)
{
    (void)state;
    dc_check_report_t r = sample();
    char *text = dc_check_report_to_json(&r);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "verdict")), "failed");
    assert_true(json_is_false(json_object_get(root, "ok")));
    json_t *counts = json_object_get(root, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "warning")), 1);
    json_t *locks = json_array_get(json_object_get(root, "checks"), 1);
    assert_string_equal(json_string_value(json_object_get(locks, "name")), "locks");
    assert_string_equal(json_string_value(json_object_get(locks, "status")), "failed");
    assert_string_equal(json_string_value(json_array_get(json_object_get(locks, "items"), 0)),
                        "pid 42 holds locks on items");
    json_decref(root);
    free(text);
    dc_check_report_free(&r);
}

/* Text that is not UTF-8 (a LATIN1 table name, a detail cut inside a character) is kept,
 * with U+FFFD for the bad bytes: never an item or a whole check dropped from the JSON. */
static void test_json_keeps_invalid_utf8(void **state)
{
    (void)state;
    dc_check_report_t r;
    memset(&r, 0, sizeof(r));
    dc_check_result_t *res = dc_check_add(&r, "locks", "Locks", DC_CHECK_FAILED, "on caf\xe9");
    dc_check_add_item(res, "pid 7 holds locks on caf\xe9 and \xc3");
    char *text = dc_check_report_to_json(&r);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    json_t *locks = json_array_get(json_object_get(root, "checks"), 0);
    assert_non_null(locks);
    assert_string_equal(json_string_value(json_object_get(locks, "detail")), "on caf\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_array_get(json_object_get(locks, "items"), 0)),
                        "pid 7 holds locks on caf\xef\xbf\xbd and \xef\xbf\xbd");
    json_decref(root);
    free(text);
    dc_check_report_free(&r);
}

static char *printed(const dc_check_report_t *r, bool unicode)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dc_check_report_print(f, r, unicode);
    fclose(f);
    return buf;
}

static void test_text(void **state)
{
    (void)state;
    dc_check_report_t r = sample();
    char *plain = printed(&r, false);
    assert_non_null(strstr(plain, "[ok]   Database connection: connected\n"));
    assert_non_null(strstr(plain, "[fail] Long transactions and locks: 1 session in the way\n"
                                  "       - pid 42 holds locks on items\n"));
    assert_non_null(strstr(plain, "[warn] Snapshot: none\n"));
    assert_non_null(strstr(plain, "[fail] Pre-migration checks failed (1 failed, 1 warning). Do "
                                  "not proceed with migration.\n"));
    assert_null(strstr(plain, "✅"));
    char *fancy = printed(&r, true);
    assert_non_null(strstr(fancy, "✅ Database connection: connected\n"));
    assert_non_null(strstr(fancy, "❌ Long transactions and locks"));
    assert_non_null(strstr(fancy, "⚠️ Snapshot: none\n"));
    free(plain);
    free(fancy);
    dc_check_report_free(&r);

    memset(&r, 0, sizeof(r));
    dc_check_add(&r, "connection", "Database connection", DC_CHECK_OK, "connected");
    plain = printed(&r, false);
    assert_non_null(strstr(plain, "All pre-migration checks passed. Safe to proceed.\n"));
    free(plain);
    dc_check_report_free(&r);
}

static void test_details_are_redacted(void **state)
{
    (void)state;
    dc_secret_register("hunter2-very-secret");
    dc_check_report_t r;
    memset(&r, 0, sizeof(r));
    dc_check_result_t *x =
        dc_check_add(&r, "x", "X", DC_CHECK_FAILED, "cannot connect to postgresql://u:%s@h/db",
                     "hunter2-very-secret");
    dc_check_add_item(x, "query: SET password = 'hunter2-very-secret'");
    assert_null(strstr(x->detail, "hunter2"));
    assert_null(strstr(x->items[0], "hunter2"));
    dc_check_report_free(&r);
    dc_secrets_forget_all();
}

static void test_unicode_wanted(void **state)
{
    (void)state;
    unsetenv("NO_COLOR");
    unsetenv("LC_ALL");
    unsetenv("LC_CTYPE");
    setenv("LANG", "en_US.UTF-8", 1);
    assert_true(dc_check_unicode_wanted());
    setenv("LC_ALL", "C", 1); /* LC_ALL wins over LANG */
    assert_false(dc_check_unicode_wanted());
    setenv("LC_ALL", "de_DE.utf8", 1);
    assert_true(dc_check_unicode_wanted());
    setenv("NO_COLOR", "1", 1);
    assert_false(dc_check_unicode_wanted());
    unsetenv("NO_COLOR");
    unsetenv("LC_ALL");
    unsetenv("LANG");
    assert_false(dc_check_unicode_wanted());
}

static void test_url_pooler_hint(void **state)
{
    (void)state;
    assert_null(dc_check_url_pooler_hint("postgresql://u:p@db:5432/app"));
    assert_null(dc_check_url_pooler_hint("postgresql://u:p@db/app?pgbouncer=false"));
    assert_null(dc_check_url_pooler_hint("postgresql://u:p@db/app?xpgbouncer=true"));
    assert_non_null(
        strstr(dc_check_url_pooler_hint("postgresql://u:p@db/app?schema=s&pgbouncer=true"),
               "pgbouncer=true"));
    assert_non_null(strstr(dc_check_url_pooler_hint("postgresql://u:p@db:6432/app"), "6432"));
    assert_non_null(strstr(dc_check_url_pooler_hint("host=db port=6432 dbname=app"), "6432"));
    /* Prisma's parameters, which libpq does not know, do not hide the port */
    assert_non_null(
        strstr(dc_check_url_pooler_hint("postgresql://u:p@db:6432/app?schema=s&connection_limit=5"),
               "6432"));
}

/* The needs of migrations, one line each: "<kind> <what> <schema>.<name> <privilege>". */
static char *needs_of(const char *const *sqls, size_t n)
{
    static const char *const kinds[] = {"owner", "privilege", "create", "extension", "database"};
    dc_needs_t needs;
    memset(&needs, 0, sizeof(needs));
    dc_error_t err;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dc_needs_collect(&needs, "m", sqls[i], &err), 0);
    char *out = dc_strdup("");
    for (size_t i = 0; i < needs.count; i++) {
        const dc_need_t *d = &needs.items[i];
        char *next = dc_sprintf("%s%s %s %s.%s %s%s\n", out, kinds[d->kind], d->what,
                                d->schema ? d->schema : "-", d->name, d->privilege,
                                d->missing_ok ? " missing-ok" : "");
        free(out);
        out = next;
    }
    dc_needs_free(&needs);
    return out;
}

static void expect_needs(const char *const *sqls, size_t n, const char *want)
{
    char *got = needs_of(sqls, n);
    assert_string_equal(got, want);
    free(got);
}

static void test_needs_of_ddl(void **state)
{
    (void)state;
    const char *const sqls[] = {
        "CREATE TABLE items (id int PRIMARY KEY, parent int REFERENCES items, c int REFERENCES "
        "s.customers (id)); CREATE INDEX items_c ON items (c); ALTER INDEX items_c RENAME TO "
        "items_c2; DROP INDEX items_c2;",
        "ALTER TABLE items ADD COLUMN x int; ALTER TABLE IF EXISTS orders ADD CONSTRAINT f "
        "FOREIGN KEY (x) REFERENCES products (id); CREATE UNIQUE INDEX ON public.orders (x); "
        "COMMENT ON COLUMN s.t.c IS 'x'; TRUNCATE logs; DROP VIEW v; ALTER TABLE t SET SCHEMA "
        "archive;",
        "CREATE SCHEMA app; CREATE TABLE app.t (id int); CREATE TYPE mood AS ENUM ('a'); "
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'; CREATE EXTENSION IF NOT "
        "EXISTS citext; DROP FUNCTION g();",
        "CREATE TABLE IF NOT EXISTS maybe (id int); ALTER TABLE maybe ADD COLUMN x int;",
    };
    expect_needs(sqls, 4,
                 "create CREATE TABLE -.items \n"
                 "privilege FOREIGN KEY s.customers REFERENCES\n"
                 "owner ALTER TABLE -.orders  missing-ok\n"
                 "privilege FOREIGN KEY -.products REFERENCES\n"
                 "owner CREATE UNIQUE INDEX public.orders \n"
                 "owner COMMENT ON s.t \n"
                 "privilege TRUNCATE -.logs TRUNCATE\n"
                 "owner DROP VIEW -.v \n"
                 "owner ALTER TABLE ... SET SCHEMA -.t \n"
                 "create ALTER TABLE ... SET SCHEMA archive.archive \n"
                 "database CREATE SCHEMA -.app \n"
                 "create CREATE TYPE -.mood \n"
                 "create CREATE FUNCTION -.f \n"
                 "extension CREATE EXTENSION -.citext  missing-ok\n"
                 "create CREATE TABLE -.maybe \n"
                 "owner ALTER TABLE -.maybe  missing-ok\n");
}

static void test_needs_of_data(void **state)
{
    (void)state;
    const char *const sqls[] = {
        "WITH recent AS (SELECT * FROM orders) INSERT INTO archive SELECT * FROM recent;"
        "INSERT INTO archive VALUES (1); INSERT INTO archive VALUES (2) ON CONFLICT (id) DO "
        "UPDATE SET id = 3;",
        "UPDATE products SET price = 1; DELETE FROM carts USING users WHERE carts.u = users.id;"
        "SELECT count(*) FROM (SELECT 1 FROM s.big) x;",
    };
    expect_needs(sqls, 2,
                 "privilege INSERT -.archive INSERT\n"
                 "privilege SELECT -.orders SELECT\n"
                 "privilege INSERT -.archive UPDATE\n"
                 "privilege UPDATE -.products UPDATE\n"
                 "privilege DELETE -.carts DELETE\n"
                 "privilege DELETE -.carts SELECT\n"
                 "privilege SELECT -.users SELECT\n"
                 "privilege SELECT s.big SELECT\n");
}

static void test_needs_syntax_error(void **state)
{
    (void)state;
    dc_needs_t needs;
    memset(&needs, 0, sizeof(needs));
    dc_error_t err;
    assert_int_equal(dc_needs_collect(&needs, "20240101_bad", "ALTER TABLEE x;", &err), -1);
    assert_non_null(strstr(err.message, "20240101_bad is not valid SQL at line 1"));
    dc_needs_free(&needs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_is_the_worst),
        cmocka_unit_test(test_raise_never_lowers),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_keeps_invalid_utf8),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_details_are_redacted),
        cmocka_unit_test(test_unicode_wanted),
        cmocka_unit_test(test_url_pooler_hint),
        cmocka_unit_test(test_needs_of_ddl),
        cmocka_unit_test(test_needs_of_data),
        cmocka_unit_test(test_needs_syntax_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
