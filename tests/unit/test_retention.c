/* Proves the retention decision on a made-up history spanning four months (several snapshots
 * some days, gaps, month and ISO-week boundaries, a year boundary where 30-31 December 2024
 * belong to ISO week 2025-W01): each rule alone and combined keep exactly the expected ids, and
 * the safety rules (newest, newest verified, pins, pre-restore window, incomplete grace and
 * live writers, unreadable manifests) hold whatever the rules say. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deployctl/retention.h"
#include "deployctl/util.h"

enum {
    VERIFIED = 1,
    PINNED = 2,
    INCOMPLETE = 4,
    IN_PROGRESS = 8,
    PRE_RESTORE = 16,
    UNREADABLE = 32
};

typedef struct {
    const char *database;
    const char *id;
    int flags;
} snap_t;

/* The regular history of database "app" (weekdays in comments; W = ISO week). */
static const snap_t history[] = {
    {"app", "20241115T020000Z-0001", 0}, /* Fri 2024-W46, November */
    {"app", "20241201T020000Z-0002", 0}, /* Sun 2024-W48 */
    {"app", "20241215T020000Z-0003", 0}, /* Sun 2024-W50 */
    {"app", "20241228T020000Z-0004", 0}, /* Sat 2024-W52 */
    {"app", "20241230T020000Z-0005", 0}, /* Mon 2025-W01, still December 2024 */
    {"app", "20241231T230000Z-0006", 0}, /* Tue 2025-W01, the last of 2024 */
    {"app", "20250101T010000Z-0007", 0}, /* Wed 2025-W01, January */
    {"app", "20250105T020000Z-0008", 0}, /* Sun 2025-W01, its newest */
    {"app", "20250106T020000Z-0009", 0}, /* Mon 2025-W02 */
    {"app", "20250131T020000Z-000a", 0}, /* Fri 2025-W05, January's newest */
    {"app", "20250201T020000Z-000b", 0}, /* Sat 2025-W05, its newest */
    {"app", "20250228T020000Z-000c", 0}, /* Fri 2025-W09, February's newest */
    {"app", "20250303T020000Z-000d", 0}, /* Mon 2025-W10, three that day */
    {"app", "20250303T140000Z-000e", 0}, {"app", "20250303T230000Z-000f", 0},
    {"app", "20250305T020000Z-0010", 0}, /* Wed 2025-W10 */
    {"app", "20250309T020000Z-0011", 0}, /* Sun 2025-W10, its newest */
    {"app", "20250310T020000Z-0012", 0}, /* Mon 2025-W11, two that day */
    {"app", "20250310T080000Z-0013", 0},
};
#define HISTORY_COUNT (sizeof(history) / sizeof(history[0]))

static time_t now_utc(void)
{
    struct tm tm = {.tm_year = 2025 - 1900, .tm_mon = 2, .tm_mday = 10, .tm_hour = 12};
    return timegm(&tm); /* 2025-03-10 12:00:00Z */
}

typedef struct {
    dc_retention_item_t items[64];
    size_t count;
} run_t;

static void add(run_t *r, const char *database, const char *id, int flags)
{
    dc_retention_item_t *it = &r->items[r->count++];
    memset(it, 0, sizeof(*it));
    it->database = database;
    it->id = id;
    assert_int_equal(dc_snapshot_id_time(id, &it->created), 0);
    it->complete = !(flags & INCOMPLETE);
    it->readable = it->complete && !(flags & UNREADABLE);
    it->verified = flags & VERIFIED;
    it->pinned = flags & PINNED;
    it->in_progress = flags & IN_PROGRESS;
    it->pre_restore = flags & PRE_RESTORE;
}

/* The history with some flags changed: ids (suffixes) given flags. */
static void load_history(run_t *r, const char *suffix, int flags)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < HISTORY_COUNT; i++) {
        const char *s = history[i].id + 17;
        add(r, history[i].database, history[i].id,
            suffix && strstr(suffix, s) ? flags : history[i].flags);
    }
}

static const dc_retention_item_t *find(const run_t *r, const char *suffix)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->items[i].id + 17, suffix) == 0)
            return &r->items[i];
    }
    fail_msg("no snapshot %s", suffix);
    return NULL;
}

/* Decides, then returns the kept ids' suffixes ("0012 0013"), in the order the items were
 * added (with "db:" when there is more than one database). */
static const char *kept(run_t *r, dc_retention_policy_t p)
{
    static char out[1024];
    if (p.incomplete_grace == 0)
        p.incomplete_grace = DC_RETENTION_INCOMPLETE_GRACE;
    if (p.pre_restore_window == 0)
        p.pre_restore_window = DC_RETENTION_PRE_RESTORE_WINDOW;
    dc_error_t err;
    assert_int_equal(dc_retention_decide(r->items, r->count, &p, now_utc(), &err), 0);
    bool several = false;
    for (size_t i = 0; i < r->count; i++)
        several |= strcmp(r->items[i].database, r->items[0].database) != 0;
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->count; i++) {
        const dc_retention_item_t *it = &r->items[i];
        assert_true(it->reasons != 0); /* every decision says why */
        assert_int_equal(it->keep, !(it->reasons & (DC_DROP_EXPIRED | DC_DROP_ABANDONED)));
        if (it->keep)
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s%s%s", n ? " " : "",
                                  several ? it->database : "", several ? ":" : "", it->id + 17);
    }
    return out;
}

static dc_retention_policy_t policy(int last, int daily, int weekly, int monthly)
{
    dc_retention_policy_t p = {last, daily, weekly, monthly, 0, 0};
    return p;
}

/* ---- each rule alone ---- */

static void test_keep_last(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(3, 0, 0, 0)), "0011 0012 0013");
    assert_int_equal(find(&r, "0012")->reasons, DC_KEEP_LAST);
    assert_int_equal(find(&r, "0013")->reasons, DC_KEEP_LAST | DC_KEEP_NEWEST);
    assert_int_equal(find(&r, "0001")->reasons, DC_DROP_EXPIRED);
}

static void test_keep_daily(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    /* The last four days that have snapshots (not calendar days: 6-8 March have none), the
     * newest of each: 10 March 08:00, 9 March, 5 March, 3 March 23:00. */
    assert_string_equal(kept(&r, policy(0, 4, 0, 0)), "000f 0010 0011 0013");
    assert_int_equal(find(&r, "000f")->reasons, DC_KEEP_DAILY);
    /* More days than there are: one per day, the other two of 3 March and one of 10 March go. */
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 100, 0, 0)),
                        "0001 0002 0003 0004 0005 0006 0007 0008 0009 000a 000b 000c 000f 0010 "
                        "0011 0013");
}

static void test_keep_weekly_across_the_year(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 0, 4, 0)), "000b 000c 0011 0013");
    /* 30 and 31 December 2024 are in ISO week 2025-W01, whose newest is 5 January: they go,
     * and the seventh week back is 2024-W52 (28 December). */
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 0, 7, 0)), "0004 0008 0009 000b 000c 0011 0013");
    assert_int_equal(find(&r, "0006")->reasons, DC_DROP_EXPIRED);
}

static void test_keep_monthly_across_the_year(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 0, 0, 3)), "000a 000c 0013");
    /* December's newest is 31 December 23:00 (not 1 January 01:00); then November. */
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 0, 0, 5)), "0001 0006 000a 000c 0013");
    assert_int_equal(find(&r, "0007")->reasons, DC_DROP_EXPIRED);
}

/* ---- combined ---- */

static void test_rules_combined(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    /* last 2: 0013 0012; daily 3: 0013 0011 0010; weekly 2: 0013 0011; monthly 2: 0013 000c */
    assert_string_equal(kept(&r, policy(2, 3, 2, 2)), "000c 0010 0011 0012 0013");
    assert_int_equal(find(&r, "0013")->reasons, DC_KEEP_LAST | DC_KEEP_DAILY | DC_KEEP_WEEKLY |
                                                    DC_KEEP_MONTHLY | DC_KEEP_NEWEST);
    assert_int_equal(find(&r, "0011")->reasons, DC_KEEP_DAILY | DC_KEEP_WEEKLY);
    assert_int_equal(find(&r, "000c")->reasons, DC_KEEP_MONTHLY);
    assert_int_equal(find(&r, "000f")->reasons, DC_DROP_EXPIRED);
    /* A typical policy: a week of dailies, a month of weeklies, a year of monthlies. */
    load_history(&r, NULL, 0);
    assert_string_equal(kept(&r, policy(0, 7, 4, 12)),
                        "0001 0006 000a 000b 000c 000f 0010 0011 0013");
}

/* The input order does not matter: the same history shuffled decides the same. */
static void test_order_does_not_matter(void **state)
{
    (void)state;
    run_t r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < HISTORY_COUNT; i++) {
        size_t j = (i * 7) % HISTORY_COUNT; /* 7 and 19 are coprime: a permutation */
        add(&r, history[j].database, history[j].id, 0);
    }
    kept(&r, policy(2, 3, 2, 2));
    size_t n = 0;
    for (size_t i = 0; i < r.count; i++)
        n += r.items[i].keep;
    assert_int_equal(n, 5);
    assert_true(find(&r, "000c")->keep);
    assert_true(find(&r, "0010")->keep);
    assert_false(find(&r, "000f")->keep);
}

/* ---- what stays whatever the rules say ---- */

static void test_newest_verified_kept(void **state)
{
    (void)state;
    run_t r;
    /* Verified: 0004 and 0009; the newest verified is 0009, which no rule keeps. */
    load_history(&r, "0004 0009", VERIFIED);
    assert_string_equal(kept(&r, policy(1, 0, 0, 0)), "0009 0013");
    assert_int_equal(find(&r, "0009")->reasons, DC_KEEP_NEWEST_VERIFIED);
    assert_int_equal(find(&r, "0004")->reasons, DC_DROP_EXPIRED);
}

static void test_pinned_kept(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, "0002", PINNED);
    assert_string_equal(kept(&r, policy(1, 0, 0, 0)), "0002 0013");
    assert_int_equal(find(&r, "0002")->reasons, DC_KEEP_PINNED);
}

static void test_newest_kept_when_unverified_and_rules_skip_it(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    /* A fresh pre-restore snapshot is the newest: rules do not count it (keep-last 2 keeps the
     * two newest regular ones), the window and "newest" keep it. */
    add(&r, "app", "20250310T100000Z-0020", PRE_RESTORE);
    add(&r, "app", "20250201T120000Z-0021", PRE_RESTORE); /* five weeks old */
    add(&r, "app", "20250306T120000Z-0022", PRE_RESTORE); /* four days old */
    assert_string_equal(kept(&r, policy(2, 0, 0, 0)), "0012 0013 0020 0022");
    assert_int_equal(find(&r, "0020")->reasons, DC_KEEP_NEWEST | DC_KEEP_PRE_RESTORE);
    assert_int_equal(find(&r, "0022")->reasons, DC_KEEP_PRE_RESTORE);
    assert_int_equal(find(&r, "0021")->reasons, DC_DROP_EXPIRED);
    assert_int_equal(find(&r, "0013")->reasons, DC_KEEP_LAST);
    /* A shorter window: the four-day-old one goes too. */
    dc_retention_policy_t p = policy(2, 0, 0, 0);
    p.pre_restore_window = 3600;
    assert_string_equal(kept(&r, p), "0012 0013 0020");
    /* keep-daily 1: the newest day's newest regular snapshot, not the pre-restore one. */
    assert_string_equal(kept(&r, policy(0, 1, 0, 0)), "0013 0020 0022");
}

static void test_incomplete(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    add(&r, "app", "20250310T113000Z-0030", INCOMPLETE);               /* 30 minutes old */
    add(&r, "app", "20250308T000000Z-0031", INCOMPLETE);               /* abandoned */
    add(&r, "app", "20250301T000000Z-0032", INCOMPLETE | IN_PROGRESS); /* slow, alive */
    add(&r, "app", "20250201T000000Z-0033", INCOMPLETE | PINNED);
    add(&r, "app", "20250311T000000Z-0034", INCOMPLETE); /* in the future: a clock set wrong */
    assert_string_equal(kept(&r, policy(1, 0, 0, 0)), "0013 0030 0032 0033 0034");
    assert_int_equal(find(&r, "0030")->reasons, DC_KEEP_INCOMPLETE_GRACE);
    assert_int_equal(find(&r, "0031")->reasons, DC_DROP_ABANDONED);
    assert_int_equal(find(&r, "0032")->reasons, DC_KEEP_IN_PROGRESS);
    assert_int_equal(find(&r, "0033")->reasons, DC_KEEP_PINNED);
    /* Incomplete ones are never "newest", nor counted by the rules. */
    assert_int_equal(find(&r, "0013")->reasons, DC_KEEP_LAST | DC_KEEP_NEWEST);
    /* With a grace of 10 minutes the 30-minute-old one goes too. */
    dc_retention_policy_t p = policy(1, 0, 0, 0);
    p.incomplete_grace = 600;
    assert_string_equal(kept(&r, p), "0013 0032 0033 0034");
}

static void test_unreadable_kept_and_not_counted(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, "0013", UNREADABLE);
    /* 0013 cannot be read: kept for a person, and 0012 is the newest usable one. */
    assert_string_equal(kept(&r, policy(1, 0, 0, 0)), "0012 0013");
    assert_int_equal(find(&r, "0013")->reasons, DC_KEEP_UNREADABLE);
    assert_int_equal(find(&r, "0012")->reasons, DC_KEEP_LAST | DC_KEEP_NEWEST);
}

static void test_per_database(void **state)
{
    (void)state;
    run_t r;
    memset(&r, 0, sizeof(r));
    add(&r, "app", "20250301T020000Z-0001", 0);
    add(&r, "app", "20250302T020000Z-0002", 0);
    add(&r, "app", "20250303T020000Z-0003", 0);
    /* Same ids in another database: decided on their own. */
    add(&r, "other", "20250101T020000Z-0001", VERIFIED);
    add(&r, "other", "20250102T020000Z-0002", 0);
    add(&r, "other", "20250103T020000Z-0003", 0);
    assert_string_equal(kept(&r, policy(1, 0, 0, 0)), "app:0003 other:0001 other:0003");
}

static void test_no_policy_refused(void **state)
{
    (void)state;
    run_t r;
    load_history(&r, NULL, 0);
    dc_retention_policy_t p = policy(0, 0, 0, 0);
    p.incomplete_grace = 3600;
    dc_error_t err;
    for (size_t i = 0; i < r.count; i++)
        r.items[i].keep = true;
    assert_int_equal(dc_retention_decide(r.items, r.count, &p, now_utc(), &err), -1);
    assert_non_null(strstr(err.message, "--keep-last"));
    for (size_t i = 0; i < r.count; i++)
        assert_true(r.items[i].keep); /* nothing decided */
    assert_int_equal(dc_retention_policy_check(&p, &err), -1);
    p.keep_monthly = -1;
    p.keep_daily = 1;
    assert_int_equal(dc_retention_policy_check(&p, &err), -1);
    dc_retention_policy_t monthly = {0, 0, 0, 1, 0, DC_RETENTION_PRE_RESTORE_MIN};
    assert_int_equal(dc_retention_policy_check(&monthly, &err), 0);
    /* The pre-restore snapshot a failed restore points at is never left less than an hour. */
    monthly.pre_restore_window = 600;
    assert_int_equal(dc_retention_policy_check(&monthly, &err), -1);
    assert_non_null(strstr(err.message, "--pre-restore-window"));
}

static void test_empty_store(void **state)
{
    (void)state;
    dc_error_t err;
    dc_retention_policy_t p = policy(1, 0, 0, 0);
    p.pre_restore_window = DC_RETENTION_PRE_RESTORE_WINDOW;
    assert_int_equal(dc_retention_decide(NULL, 0, &p, now_utc(), &err), 0);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(dc_retention_reason_name(DC_KEEP_WEEKLY), "keep-weekly");
    assert_string_equal(dc_retention_reason_name(DC_DROP_ABANDONED), "abandoned");
    for (unsigned bit = 1; bit < (1u << DC_RETENTION_REASON_COUNT); bit <<= 1)
        assert_string_not_equal(dc_retention_reason_name(bit), "?");
}

static void test_id_time(void **state)
{
    (void)state;
    time_t t;
    assert_int_equal(dc_snapshot_id_time("20241231T235959Z-00ff", &t), 0);
    struct tm tm;
    gmtime_r(&t, &tm);
    assert_int_equal(tm.tm_year + 1900, 2024);
    assert_int_equal(tm.tm_mon + 1, 12);
    assert_int_equal(tm.tm_mday, 31);
    assert_int_equal(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, 86399);
    assert_int_equal(dc_snapshot_id_time("20241301T000000Z-0000", &t), -1); /* month 13 */
    assert_int_equal(dc_snapshot_id_time("20250230T000000Z-0000", &t), -1); /* 30 February */
    assert_int_equal(dc_snapshot_id_time("20250101T240000Z-0000", &t), -1);
    assert_int_equal(dc_snapshot_id_time("20250101T000000Z-00", &t), -1);
    assert_int_equal(dc_snapshot_id_time("20240229T120000Z-0000", &t), 0); /* a leap day */
}

/* ---- pins and deletion in a real file store ---- */

static void put(dc_store_t *store, const char *key, const char *text)
{
    dc_store_writer_t *w;
    dc_error_t err;
    assert_int_equal(dc_store_writer_open(store, key, &w, &err), 0);
    assert_int_equal(dc_store_writer_write(w, text, strlen(text), &err), 0);
    assert_int_equal(dc_store_writer_commit(w, &err), 0);
}

static bool exists(dc_store_t *store, const char *key)
{
    bool found = false;
    dc_error_t err;
    assert_int_equal(dc_store_exists(store, key, &found, &err), 0);
    return found;
}

static void test_pins_and_deletion(void **state)
{
    (void)state;
    char dir[] = "/tmp/dc-test-retention-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *url = dc_sprintf("file://%s", dir);
    dc_store_t *store;
    dc_error_t err;
    assert_int_equal(dc_store_open(url, &store, &err), 0);
    const char *id = "20250101T000000Z-abcd";
    put(store, "app/20250101T000000Z-abcd/snapshot.tar", "archive");
    put(store, "app/20250101T000000Z-abcd/manifest.json", "{}");
    put(store, "app/20250101T000000Z-abcd/verify-20250102T000000Z.json", "{\"ok\": true}");

    assert_int_equal(dc_snapshot_pin(store, "app", id, "release-7", "test", &err), 0);
    assert_int_equal(dc_snapshot_pin(store, "app", id, "Bad Owner", NULL, &err), -1);
    assert_int_equal(dc_snapshot_pin(store, "app", "not-an-id", "release-7", NULL, &err), -1);
    dc_snapshot_list_t list;
    assert_int_equal(dc_catalog_list(store, NULL, &list, &err), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.items[0].pin_count, 1);
    assert_string_equal(list.items[0].pin_object, "pin-release-7");
    dc_catalog_list_free(&list);

    /* A pinned snapshot is never deleted, even when asked directly. */
    assert_int_equal(dc_catalog_delete_snapshot(store, "app", id, &err), -1);
    assert_non_null(strstr(err.message, "pinned"));
    assert_true(exists(store, "app/20250101T000000Z-abcd/manifest.json"));

    assert_int_equal(dc_snapshot_unpin(store, "app", id, "release-7", &err), 0);
    assert_int_equal(dc_catalog_list(store, NULL, &list, &err), 0);
    assert_int_equal(list.items[0].pin_count, 0);
    dc_catalog_list_free(&list);
    assert_int_equal(dc_catalog_delete_snapshot(store, "app", id, &err), 0);
    assert_false(exists(store, "app/20250101T000000Z-abcd/manifest.json"));
    assert_false(exists(store, "app/20250101T000000Z-abcd/snapshot.tar"));
    assert_int_equal(dc_catalog_list(store, NULL, &list, &err), 0);
    assert_int_equal(list.count, 0);
    dc_catalog_list_free(&list);
    dc_store_close(store);
    char *cmd = dc_sprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_last),
        cmocka_unit_test(test_keep_daily),
        cmocka_unit_test(test_keep_weekly_across_the_year),
        cmocka_unit_test(test_keep_monthly_across_the_year),
        cmocka_unit_test(test_rules_combined),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_newest_verified_kept),
        cmocka_unit_test(test_pinned_kept),
        cmocka_unit_test(test_newest_kept_when_unverified_and_rules_skip_it),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_unreadable_kept_and_not_counted),
        cmocka_unit_test(test_per_database),
        cmocka_unit_test(test_no_policy_refused),
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_id_time),
        cmocka_unit_test(test_pins_and_deletion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
