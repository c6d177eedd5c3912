/* The retention decision: given snapshots (id, time, state) and a policy, which stay and why.
 * Pure: no store, no clock (the caller passes "now"), so every rule is unit-tested. The store
 * walk and the deletions are in prune.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/retention.h"
#include "deployctl/util.h"

static const struct {
    unsigned reason;
    const char *name;
    const char *text;
} reasons[DC_RETENTION_REASON_COUNT] = {
    {DC_KEEP_LAST, "keep-last", "one of the newest (--keep-last)"},
    {DC_KEEP_DAILY, "keep-daily", "newest of its day (--keep-daily)"},
    {DC_KEEP_WEEKLY, "keep-weekly", "newest of its ISO week (--keep-weekly)"},
    {DC_KEEP_MONTHLY, "keep-monthly", "newest of its month (--keep-monthly)"},
    {DC_KEEP_NEWEST, "newest", "newest complete snapshot of its database"},
    {DC_KEEP_NEWEST_VERIFIED, "newest-verified", "newest verified snapshot of its database"},
    {DC_KEEP_PINNED, "pinned", "pinned (something depends on it)"},
    {DC_KEEP_PRE_RESTORE, "pre-restore", "pre-restore snapshot within its window"},
    {DC_KEEP_UNREADABLE, "unreadable", "its manifest cannot be read (left to a person)"},
    {DC_KEEP_IN_PROGRESS, "in-progress", "incomplete, its backup is still running"},
    {DC_KEEP_INCOMPLETE_GRACE, "incomplete-grace", "incomplete, younger than the grace period"},
    {DC_DROP_EXPIRED, "expired", "no retention rule keeps it"},
    {DC_DROP_ABANDONED, "abandoned", "incomplete, older than the grace period, writer gone"},
};

const char *dc_retention_reason_name(unsigned reason)
{
    for (size_t i = 0; i < DC_RETENTION_REASON_COUNT; i++) {
        if (reasons[i].reason == reason)
            return reasons[i].name;
    }
    return "?";
}

const char *dc_retention_reason_text(unsigned reason)
{
    for (size_t i = 0; i < DC_RETENTION_REASON_COUNT; i++) {
        if (reasons[i].reason == reason)
            return reasons[i].text;
    }
    return "?";
}

int dc_retention_policy_check(const dc_retention_policy_t *p, dc_error_t *err)
{
    if (p->keep_last < 0 || p->keep_daily < 0 || p->keep_weekly < 0 || p->keep_monthly < 0)
        return dc_error_set(err, "retention counts cannot be negative");
    if (p->keep_last + p->keep_daily + p->keep_weekly + p->keep_monthly == 0)
        return dc_error_set(err,
                            "no retention rule given, refusing to prune (it would keep "
                            "nothing by rule): give at least one of --keep-last, --keep-daily, "
                            "--keep-weekly, --keep-monthly (or keep_* in the config file's "
                            "[retention] section)");
    if (p->incomplete_grace < 0)
        return dc_error_set(err, "the incomplete grace cannot be negative");
    /* A failed restore names its pre-restore snapshot as the way back: it must outlive the
     * minutes it takes someone to read that message, whatever the settings. */
    if (p->pre_restore_window < DC_RETENTION_PRE_RESTORE_MIN)
        return dc_error_set(err, "the pre-restore window must be at least 1h (a failed restore "
                                 "points at its pre-restore snapshot as the way back); give "
                                 "--pre-restore-window 1h or more");
    return 0;
}

/* A rule that keeps the newest snapshot of each of its `left` newest periods. */
typedef struct bucket_rule {
    unsigned reason;
    int left;
    const char *format; /* strftime of the period: the key two snapshots share when in one */
    char last[24];
} bucket_rule_t;

static int newest_first(const void *a, const void *b)
{
    const dc_retention_item_t *x = *(const dc_retention_item_t *const *)a;
    const dc_retention_item_t *y = *(const dc_retention_item_t *const *)b;
    int c = strcmp(x->database, y->database);
    if (c != 0)
        return c;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;
    return -strcmp(x->id, y->id);
}

/* The keep-* rules count only complete, readable, regular (not pre-restore) snapshots. */
static bool counted_by_rules(const dc_retention_item_t *it)
{
    return it->complete && it->readable && !it->pre_restore;
}

static void apply_rules(dc_retention_item_t **group, size_t n, const dc_retention_policy_t *p)
{
    int last_left = p->keep_last;
    bucket_rule_t buckets[] = {
        {DC_KEEP_DAILY, p->keep_daily, "%Y-%m-%d", ""},
        {DC_KEEP_WEEKLY, p->keep_weekly, "%G-W%V", ""},
        {DC_KEEP_MONTHLY, p->keep_monthly, "%Y-%m", ""},
    };
    for (size_t i = 0; i < n; i++) {
        dc_retention_item_t *it = group[i];
        if (!counted_by_rules(it))
            continue;
        if (last_left > 0) {
            it->reasons |= DC_KEEP_LAST;
            last_left--;
        }
        struct tm tm;
        gmtime_r(&it->created, &tm);
        for (size_t b = 0; b < sizeof(buckets) / sizeof(buckets[0]); b++) {
            char key[24];
            strftime(key, sizeof(key), buckets[b].format, &tm);
            /* Newest first: the first snapshot seen in a period is that period's newest. */
            if (buckets[b].left > 0 && strcmp(key, buckets[b].last) != 0) {
                it->reasons |= buckets[b].reason;
                buckets[b].left--;
                snprintf(buckets[b].last, sizeof(buckets[b].last), "%s", key);
            }
        }
    }
}

/* What stays whatever the rules say. */
static void apply_safety(dc_retention_item_t **group, size_t n, const dc_retention_policy_t *p,
                         time_t now)
{
    bool newest_seen = false, verified_seen = false;
    for (size_t i = 0; i < n; i++) {
        dc_retention_item_t *it = group[i];
        bool usable = it->complete && it->readable;
        if (usable && !newest_seen) {
            it->reasons |= DC_KEEP_NEWEST;
            newest_seen = true;
        }
        if (usable && it->verified && !verified_seen) {
            it->reasons |= DC_KEEP_NEWEST_VERIFIED;
            verified_seen = true;
        }
        if (it->pinned)
            it->reasons |= DC_KEEP_PINNED;
        /* A time in the future (a clock set wrong) counts as young: keep rather than guess. */
        int64_t age = (int64_t)now - (int64_t)it->created;
        if (usable && it->pre_restore && age < p->pre_restore_window)
            it->reasons |= DC_KEEP_PRE_RESTORE;
        if (it->complete && !it->readable)
            it->reasons |= DC_KEEP_UNREADABLE;
        if (!it->complete && it->in_progress)
            it->reasons |= DC_KEEP_IN_PROGRESS;
        if (!it->complete && age < p->incomplete_grace)
            it->reasons |= DC_KEEP_INCOMPLETE_GRACE;
    }
}

int dc_retention_decide(dc_retention_item_t *items, size_t count,
                        const dc_retention_policy_t *policy, time_t now, dc_error_t *err)
{
    if (dc_retention_policy_check(policy, err) != 0)
        return -1;
    dc_retention_item_t **order = dc_calloc(count ? count : 1, sizeof(*order));
    for (size_t i = 0; i < count; i++) {
        items[i].reasons = 0;
        order[i] = &items[i];
    }
    if (count > 1)
        qsort(order, count, sizeof(*order), newest_first);
    for (size_t start = 0; start < count;) {
        size_t end = start + 1;
        while (end < count && strcmp(order[end]->database, order[start]->database) == 0)
            end++;
        apply_rules(order + start, end - start, policy);
        apply_safety(order + start, end - start, policy, now);
        start = end;
    }
    for (size_t i = 0; i < count; i++) {
        items[i].keep = items[i].reasons != 0;
        if (!items[i].keep)
            items[i].reasons = items[i].complete ? DC_DROP_EXPIRED : DC_DROP_ABANDONED;
    }
    free(order);
    return 0;
}
