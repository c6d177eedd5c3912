/* The store checks: the newest complete snapshot of this database (its age and verification)
 * and whether the next snapshot fits in the store. Read only: nothing is created, not even the
 * store's directory. Not for the database-side checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_intern.h"
#include "deployctl/release_schema.h"
#include "deployctl/snapshot.h"
#include "deployctl/store.h"
#include "deployctl/util.h"

#define SNAPSHOT     "snapshot"
#define SNAPSHOT_T   "Snapshot"
#define FREE_SPACE   "free-space"
#define FREE_SPACE_T "Free space"

/* A previous snapshot is the best estimate of the next; this margin covers the growth since. */
#define GROWTH_MARGIN 1.25
/* Without one: COPY text compressed with zstd is rarely more than half of the tables' on-disk
 * size (heap and TOAST; indexes are not in a snapshot, only their definitions). */
#define TABLE_RATIO 0.5

/* "2026-11-25T01:32:59Z" -> seconds since the epoch (-1 when malformed). */
static time_t parse_rfc3339(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return (time_t)-1;
    return timegm(&tm);
}

static const dc_snapshot_info_t *newest_complete(const dc_snapshot_list_t *list)
{
    for (size_t i = list->count; i > 0; i--) {
        if (list->items[i - 1].complete && list->items[i - 1].manifest != NULL)
            return &list->items[i - 1];
    }
    return NULL;
}

static void describe_verification(const dc_snapshot_info_t *s, char *out, size_t size)
{
    if (s->verify_object[0] == '\0')
        snprintf(out, size, "not verified");
    else if (!s->verified)
        snprintf(out, size, "its verification FAILED at %s", s->verified_at);
    else
        snprintf(out, size, "verified (%s) at %s", s->verified_deep ? "deep" : "hashes",
                 s->verified_at);
}

static void report_snapshot(dc_check_ctx_t *ctx, const dc_snapshot_info_t *s)
{
    const dc_manifest_t *m = s->manifest;
    time_t created = parse_rfc3339(m->created_at);
    double age = created == (time_t)-1 ? -1 : difftime(time(NULL), created);
    double max_age = (double)ctx->opts->max_snapshot_age_ms / 1000.0;
    char size[32], shown_age[32], max_shown[32], verification[96];
    dc_format_bytes(m->archive_bytes, size, sizeof(size));
    dc_format_duration(age, shown_age, sizeof(shown_age));
    dc_format_duration(max_age, max_shown, sizeof(max_shown));
    describe_verification(s, verification, sizeof(verification));
    ctx->last_snapshot_bytes = m->archive_bytes;

    dc_check_status_t status = DC_CHECK_OK;
    if (age < 0 || age > max_age || (s->verify_object[0] != '\0' && !s->verified))
        status = DC_CHECK_WARNING;
    dc_check_add(
        ctx->report, SNAPSHOT, SNAPSHOT_T, status, "newest is %s (%s, %s), taken %s%s%s, %s%s%s",
        m->id, m->tag ? m->tag : "untagged", size, age < 0 ? "at an unreadable time " : "",
        age < 0 ? m->created_at : shown_age, age < 0 ? "" : " ago", verification,
        age > max_age ? "; older than --max-snapshot-age " : "", age > max_age ? max_shown : "");
}

void dc_check_snapshot(dc_check_ctx_t *ctx)
{
    dc_store_t *store = NULL;
    dc_error_t err;
    dc_snapshot_list_t list;
    if (dc_store_open(ctx->opts->store_url, &store, &err) != 0) {
        dc_check_add(ctx->report, SNAPSHOT, SNAPSHOT_T, DC_CHECK_FAILED, "%s", err.message);
        return;
    }
    if (dc_catalog_list(store, ctx->database, &list, &err) != 0) {
        dc_check_add(ctx->report, SNAPSHOT, SNAPSHOT_T, DC_CHECK_FAILED,
                     "cannot list the snapshots in %s: %s", dc_store_url(store), err.message);
        dc_store_close(store);
        return;
    }
    const dc_snapshot_info_t *newest = newest_complete(&list);
    if (newest == NULL)
        /* Only a warning: `release` takes a snapshot before it migrates anyway. */
        dc_check_add(ctx->report, SNAPSHOT, SNAPSHOT_T, DC_CHECK_WARNING,
                     "no complete snapshot of %s in %s: 'deployctl release' takes one before "
                     "migrating; 'deployctl backup' takes one now",
                     ctx->database, dc_store_url(store));
    else
        report_snapshot(ctx, newest);
    dc_catalog_list_free(&list);
    dc_store_close(store);
}

/* The on-disk size of the tables a snapshot reads (heap and TOAST: pg_table_size, the real file
 * sizes; pg_class.relpages is 0 until the first VACUUM or ANALYZE, so a freshly loaded table
 * would count for nothing), and of the whole database. pg_table_size takes (and at once gives
 * back) an ACCESS SHARE lock: a table another session holds or awaits ACCESS EXCLUSIVE on is
 * counted from pg_class instead of queueing behind that lock. $1: every table from pg_class. */
static const char SIZES_SQL[] =
    "WITH exclusive AS (SELECT l.relation FROM pg_catalog.pg_locks l"
    " WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'"
    " AND l.pid <> pg_catalog.pg_backend_pid()"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    "                   WHERE datname = pg_catalog.current_database()))"
    "SELECT coalesce(sum(CASE WHEN $1::bool OR c.oid IN (SELECT relation FROM exclusive)"
    "  OR t.oid IN (SELECT relation FROM exclusive)"
    "  THEN (c.relpages::bigint + coalesce(t.relpages, 0))"
    "   * pg_catalog.current_setting('block_size')::bigint"
    "  ELSE coalesce(pg_catalog.pg_table_size(c.oid), 0) END), 0)::bigint,"
    " pg_catalog.pg_database_size(pg_catalog.current_database())"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid"
    " WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema',"
    " " DC_RELEASE_SCHEMA_SQL ") AND n.nspname !~ '^pg_toast'";

static int database_sizes(dc_check_ctx_t *ctx, uint64_t *tables, uint64_t *database,
                          dc_error_t *err)
{
    const char *catalog_only[] = {"false"};
    PGresult *res = dc_pg_query_params(ctx->conn, SIZES_SQL, 1, catalog_only, err);
    if (res == NULL && dc_check_timed_out(err)) {
        /* A lock taken since pg_locks was read: count every table from pg_class instead. */
        catalog_only[0] = "true";
        res = dc_pg_query_params(ctx->conn, SIZES_SQL, 1, catalog_only, err);
    }
    if (res == NULL)
        return -1;
    *tables = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    *database = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return 0;
}

static void report_free_space(dc_check_ctx_t *ctx, uint64_t need, const char *basis,
                              uint64_t available, uint64_t total, const char *where)
{
    char s_need[32], s_free[32];
    dc_format_bytes(need, s_need, sizeof(s_need));
    dc_format_bytes(available, s_free, sizeof(s_free));
    if (need > available)
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_FAILED,
                     "the next snapshot needs about %s (%s) but only %s is free at %s: free "
                     "space there or use another --store",
                     s_need, basis, s_free, where);
    /* Tight: less than twice the need, or the file system left under 5% free afterwards. */
    else if (available < 2 * need || (double)(available - need) < 0.05 * (double)total)
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_WARNING,
                     "tight: the next snapshot needs about %s (%s) and %s is free at %s", s_need,
                     basis, s_free, where);
    else
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_OK,
                     "the next snapshot needs about %s (%s); %s is free at %s", s_need, basis,
                     s_free, where);
}

void dc_check_free_space(dc_check_ctx_t *ctx)
{
    dc_store_t *store = NULL;
    dc_error_t err;
    uint64_t tables = 0, database = 0, available = 0, total = 0;
    bool known = false;
    char where[4096], basis[128], s_db[32];
    if (ctx->conn == NULL && ctx->last_snapshot_bytes == 0) {
        dc_check_skip_no_connection(ctx, FREE_SPACE, FREE_SPACE_T);
        return;
    }
    if (ctx->conn != NULL && database_sizes(ctx, &tables, &database, &err) != 0) {
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_FAILED,
                     "cannot read the database's size: %s", err.message);
        return;
    }
    if (dc_store_open(ctx->opts->store_url, &store, &err) != 0 ||
        dc_store_free_space(store, &known, &available, &total, where, sizeof(where), &err) != 0) {
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_FAILED, "%s", err.message);
        dc_store_close(store);
        return;
    }
    dc_store_close(store);
    if (!known) {
        dc_check_add(ctx->report, FREE_SPACE, FREE_SPACE_T, DC_CHECK_OK,
                     "not measured: the store %s has no free-space limit deployctl can read",
                     ctx->opts->store_url);
        return;
    }
    uint64_t need;
    dc_format_bytes(database, s_db, sizeof(s_db));
    if (ctx->last_snapshot_bytes > 0) {
        need = (uint64_t)((double)ctx->last_snapshot_bytes * GROWTH_MARGIN);
        snprintf(basis, sizeof(basis), "the last snapshot's size plus %d%%",
                 (int)((GROWTH_MARGIN - 1) * 100));
    } else {
        char s_tables[32];
        need = (uint64_t)((double)tables * TABLE_RATIO);
        dc_format_bytes(tables, s_tables, sizeof(s_tables));
        snprintf(basis, sizeof(basis), "half of the tables' %s; the database is %s", s_tables,
                 s_db);
    }
    report_free_space(ctx, need, basis, available, total, where);
}
