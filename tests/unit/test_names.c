/* Proves the snapshot naming rules: new ids are valid and sort by time, the strict id and tag
 * patterns refuse anything else, database dirs are safe, reversible path components. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/snapshot.h"

static time_t utc(int year, int month, int day, int hour, int minute, int second)
{
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return timegm(&tm);
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* ---- ids ---- */

static void test_id_new_format(void **state)
{
    (void)state;
    char id[DC_SNAPSHOT_ID_LEN + 1];
    memset(id, 'Z', sizeof(id));
    dc_snapshot_id_new(utc(2026, 11, 25, 1, 32, 59), id);
    assert_int_equal(strlen(id), DC_SNAPSHOT_ID_LEN);
    assert_memory_equal(id, "20261125T013259Z-", 17);
    for (int i = 17; i < DC_SNAPSHOT_ID_LEN; i++)
        assert_true(is_lower_hex(id[i]));
    assert_true(dc_snapshot_id_valid(id));

    dc_snapshot_id_new(utc(1999, 1, 2, 3, 4, 5), id);
    assert_memory_equal(id, "19990102T030405Z-", 17);
    assert_true(dc_snapshot_id_valid(id));
}

static void test_id_new_random_suffix(void **state)
{
    (void)state;
    time_t t = utc(2026, 1, 1, 0, 0, 0);
    char first[DC_SNAPSHOT_ID_LEN + 1];
    char id[DC_SNAPSHOT_ID_LEN + 1];
    int distinct = 0;
    dc_snapshot_id_new(t, first);
    for (int i = 0; i < 50; i++) {
        dc_snapshot_id_new(t, id);
        assert_true(dc_snapshot_id_valid(id));
        assert_memory_equal(id, first, 17); /* same second, same stamp */
        if (strcmp(id, first) != 0)
            distinct++;
    }
    /* 50 draws of 16 random bits all equal to the first: probability 2^-800. */
    assert_true(distinct > 0);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_id_sorts_by_time(void **state)
{
    (void)state;
    const time_t times[] = {
        utc(2025, 12, 31, 23, 59, 59), utc(2026, 1, 1, 0, 0, 0),  utc(2026, 1, 1, 0, 0, 1),
        utc(2026, 1, 1, 0, 1, 0),      utc(2026, 1, 1, 1, 0, 0),  utc(2026, 1, 2, 0, 0, 0),
        utc(2026, 2, 1, 0, 0, 0),      utc(2026, 10, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0),
    };
    enum { N = sizeof(times) / sizeof(times[0]) };
    char ids[N][DC_SNAPSHOT_ID_LEN + 1];
    const char *shuffled[N];
    for (int i = 0; i < N; i++)
        dc_snapshot_id_new(times[i], ids[i]);
    /* Sort a scrambled copy as strings: it must come back in time order. */
    for (int i = 0; i < N; i++)
        shuffled[i] = ids[(i * 4 + 3) % N];
    qsort(shuffled, N, sizeof(shuffled[0]), compare_strings);
    for (int i = 0; i < N; i++)
        assert_string_equal(shuffled[i], ids[i]);
}

/* Ids of one second, each made after the previous one, sort in the order they were made, and
 * the suffix space runs out with an answer rather than a wrong order. */
static void test_id_new_after_orders_within_a_second(void **state)
{
    (void)state;
    time_t t = utc(2026, 11, 29, 21, 0, 0);
    char prev[DC_SNAPSHOT_ID_LEN + 1];
    char id[DC_SNAPSHOT_ID_LEN + 1];
    assert_true(dc_snapshot_id_new_after(t, NULL, prev));
    assert_true(strtoul(prev + 17, NULL, 16) <= 0x7fff);
    for (int i = 0; i < 100; i++) {
        assert_true(dc_snapshot_id_new_after(t, prev, id));
        assert_true(dc_snapshot_id_valid(id));
        assert_memory_equal(id, prev, 17);
        assert_true(strcmp(id, prev) > 0);
        memcpy(prev, id, sizeof(prev));
    }
    /* An id of another second imposes nothing. */
    assert_true(dc_snapshot_id_new_after(t + 1, prev, id));
    assert_memory_not_equal(id, prev, 16);
    assert_true(strtoul(id + 17, NULL, 16) <= 0x7fff);
    /* Nothing sorts after -ffff within its second. */
    assert_true(dc_snapshot_id_new_after(t, "20261129T210000Z-fffe", id));
    assert_string_equal(id, "20261129T210000Z-ffff");
    assert_false(dc_snapshot_id_new_after(t, "20261129T210000Z-ffff", id));
}

static void test_id_valid_rejects(void **state)
{
    (void)state;
    assert_true(dc_snapshot_id_valid("20261125T013259Z-0f9a"));
    assert_true(dc_snapshot_id_valid("19700101T000000Z-0000"));

    const char *bad[] = {
        "",
        "../../etc",
        "../../../../etc/passw",  /* right length, wrong shape */
        "20261125T013259Z-0f9",   /* too short */
        "20261125T013259Z-0f9ab", /* too long */
        "20261125T013259Z-0F9A",  /* upper-case hex */
        "20261125T013259Z-0g9a",  /* not hex */
        "20261125T0132590-0f9a",  /* Z missing */
        "20261125t013259Z-0f9a",  /* lower-case t */
        "20261125X013259Z-0f9a",  /* T missing */
        "20261125T013259z-0f9a",  /* lower-case z */
        "20261125T013259Z_0f9a",  /* wrong separator */
        "2026112AT013259Z-0f9a",  /* letter in the date */
        "20261125T01325 Z-0f9a",  /* space in the time */
        "2026-11-25T01:32:59Z",   /* RFC 3339 is not an id */
        "20261125T013259Z-0f/a",  /* path separator */
        "20261125T013259Z-0f9a/", /* trailing slash */
        "/20261125T013259Z-0f9a", /* leading slash */
        "20261125T013259Z-0f9a\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dc_snapshot_id_valid(bad[i]))
            fail_msg("dc_snapshot_id_valid accepted \"%s\"", bad[i]);
    }
    assert_false(dc_snapshot_id_valid(NULL));
    /* An embedded NUL cuts the id short. */
    const char embedded[] = "20261125T013259Z-0f\0a";
    assert_false(dc_snapshot_id_valid(embedded));
}

/* ---- tags ---- */

static void test_tag_valid(void **state)
{
    (void)state;
    const char *good[] = {
        "release", "nightly", "manual", "pre-restore",
        "v1.2_3",  "a",       "9",      "0123456789abcdefghijklmnopqrstuv" /* 32 */};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!dc_snapshot_tag_valid(good[i]))
            fail_msg("dc_snapshot_tag_valid refused \"%s\"", good[i]);
    }
    const char *bad[] = {"",           "0123456789abcdefghijklmnopqrstuvw" /* 33 */,
                         "-x",         ".x",
                         "_x",         "Release",
                         "a b",        "a/b",
                         "../x",       "tag\n",
                         "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dc_snapshot_tag_valid(bad[i]))
            fail_msg("dc_snapshot_tag_valid accepted \"%s\"", bad[i]);
    }
    assert_false(dc_snapshot_tag_valid(NULL));
}

/* ---- database dirs ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes a dir back into the name; fails the test on a malformed escape. */
static void decode_dir(const char *dir, char *out, size_t out_size)
{
    size_t j = 0;
    for (const char *p = dir; *p; p++) {
        assert_true(j + 1 < out_size);
        if (*p == '%') {
            int hi = hex_value(p[1]);
            int lo = hi < 0 ? -1 : hex_value(p[2]);
            if (hi < 0 || lo < 0)
                fail_msg("malformed escape in \"%s\"", dir);
            out[j++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            out[j++] = *p;
        }
    }
    out[j] = '\0';
}

/* A dir is one safe store-key component: not empty, not "." or "..", no leading dot, and made
 * only of unreserved characters and escapes. */
static void check_safe_component(const char *dir)
{
    assert_true(dir[0] != '\0');
    assert_true(dir[0] != '.');
    for (const char *p = dir; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.' || c == '%';
        if (!ok)
            fail_msg("unsafe character 0x%02x in database dir \"%s\"", (unsigned char)c, dir);
    }
}

static void check_dir(const char *database, const char *expected)
{
    char dir[256];
    char back[256];
    dc_snapshot_database_dir(database, dir, sizeof(dir));
    if (expected != NULL)
        assert_string_equal(dir, expected);
    check_safe_component(dir);
    decode_dir(dir, back, sizeof(back));
    assert_string_equal(back, database);
}

static void test_database_dir_escapes(void **state)
{
    (void)state;
    check_dir("app", "app");
    check_dir("My_DB-2", "My_DB-2");
    check_dir("ABCxyz_0123456789-", "ABCxyz_0123456789-");
    check_dir("a/b", "a%2Fb");
    check_dir("..", "%2E.");
    check_dir(".", "%2E");
    check_dir(".hidden", NULL);
    check_dir("a b", "a%20b");
    check_dir("caf\xc3\xa9", "caf%C3%A9");
    check_dir("100%", "100%25");
    check_dir("../../etc", NULL);
    check_dir("a\\b", "a%5Cb");
    check_dir("x:y?z#w*", NULL);
    check_dir("\x01\x7f\xff", "%01%7F%FF");

    /* Different names never share a dir. */
    char d1[256], d2[256];
    dc_snapshot_database_dir("a/b", d1, sizeof(d1));
    dc_snapshot_database_dir("a%2Fb", d2, sizeof(d2));
    assert_string_not_equal(d1, d2);
}

static void test_database_dir_small_buffer(void **state)
{
    (void)state;
    const char *name = "db/with spaces/\xc3\xa9";
    char full[256];
    dc_snapshot_database_dir(name, full, sizeof(full));
    for (size_t size = 1; size <= strlen(full) + 1; size++) {
        char *buf = malloc(size + 1);
        assert_non_null(buf);
        memset(buf, 'Z', size + 1);
        dc_snapshot_database_dir(name, buf, size);
        assert_int_equal(buf[size], 'Z');
        size_t len = strlen(buf);
        assert_true(len < size);
        assert_memory_equal(buf, full, len);
        /* Never a partial escape at the end. */
        const char *pct = strrchr(buf, '%');
        if (pct != NULL)
            assert_true(strlen(pct) >= 3);
        free(buf);
    }
}

/* ---- member names ---- */

static void test_chunk_member(void **state)
{
    (void)state;
    char member[DC_MEMBER_MAX];
    dc_snapshot_chunk_member(1, 1, member);
    assert_string_equal(member, "data/1.1.copy.zst");
    dc_snapshot_chunk_member(0, 0, member);
    assert_string_equal(member, "data/0.0.copy.zst");
    dc_snapshot_chunk_member(12, 345, member);
    assert_string_equal(member, "data/12.345.copy.zst");
    dc_snapshot_chunk_member(UINT_MAX, UINT_MAX, member);
    assert_string_equal(member, "data/4294967295.4294967295.copy.zst");

    assert_string_equal(DC_MEMBER_PRE_DATA, "schema/pre-data.sql");
    assert_string_equal(DC_MEMBER_POST_DATA, "schema/post-data.sql");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_new_format),
        cmocka_unit_test(test_id_new_random_suffix),
        cmocka_unit_test(test_id_sorts_by_time),
        cmocka_unit_test(test_id_new_after_orders_within_a_second),
        cmocka_unit_test(test_id_valid_rejects),
        cmocka_unit_test(test_tag_valid),
        cmocka_unit_test(test_database_dir_escapes),
        cmocka_unit_test(test_database_dir_small_buffer),
        cmocka_unit_test(test_chunk_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
