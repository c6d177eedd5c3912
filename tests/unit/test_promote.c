/* promote-check's comparison (dc_promote_compare) on statuses classified from in-memory
 * migration directories and history rows: the same names and checksums match, whatever their
 * order; missing, extra, edited, failed and rolled-back migrations are each reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deployctl/migrate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static dc_migration_t local(const char *name, const char *sql)
{
    dc_migration_t m = {0};
    m.name = (char *)name;
    m.sql = (char *)sql;
    m.sql_len = strlen(sql);
    dc_migrate_checksum(sql, m.sql_len, m.checksum);
    return m;
}

/* A history row for migration.sql text `sql` (its checksum, as Prisma records it). */
typedef struct fake_row {
    const char *name;
    const char *sql;
    bool finished;
    bool rolled_back;
} fake_row_t;

typedef struct side {
    char checksums[8][65];
    dc_history_row_t rows[8];
    dc_migration_set_t set;
    dc_history_t history;
    dc_migrate_status_t status;
} side_t;

/* One database's status: the shared migrations directory against its own history rows. */
static void classify(side_t *s, dc_migration_t *items, size_t n_items, const fake_row_t *rows,
                     size_t n_rows)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n_rows; i++) {
        dc_migrate_checksum(rows[i].sql, strlen(rows[i].sql), s->checksums[i]);
        s->rows[i] = (dc_history_row_t){
            .id = (char *)"id",
            .migration_name = (char *)rows[i].name,
            .checksum = s->checksums[i],
            .finished_at = rows[i].finished ? (char *)"2024-01-01 00:00:00+00" : NULL,
            .rolled_back_at = rows[i].rolled_back ? (char *)"2024-01-02 00:00:00+00" : NULL,
        };
    }
    s->set = (dc_migration_set_t){.dir = (char *)"d", .items = items, .count = n_items};
    s->history = (dc_history_t){.exists = true, .rows = s->rows, .count = n_rows};
    dc_migrate_classify(&s->set, &s->history, &s->status);
}

static const dc_promote_diff_t *diff_of(const dc_promote_result_t *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->diffs[i].name, name) == 0)
            return &r->diffs[i];
    }
    return NULL;
}

static void compare(const fake_row_t *staging, size_t ns, const fake_row_t *production, size_t np,
                    dc_migration_t *items, size_t n_items, dc_promote_result_t *r)
{
    side_t src, dst;
    classify(&src, items, n_items, staging, ns);
    classify(&dst, items, n_items, production, np);
    dc_promote_compare(&src.status, &dst.status, r);
    dc_migrate_status_free(&src.status);
    dc_migrate_status_free(&dst.status);
}

static void test_same_names_and_checksums_match(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id int);\n")};
    /* staging has both; production has the first and would get the second from the directory */
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false},
                            {"2_tags", items[1].sql, true, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.same, 2);
    dc_promote_result_free(&r);
}

static void test_order_does_not_count(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id int);\n")};
    /* staging applied them in the other order (2_tags came first on its branch) */
    fake_row_t staging[] = {{"2_tags", items[1].sql, true, false},
                            {"1_init", items[0].sql, true, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false},
                               {"2_tags", items[1].sql, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.same, 2);
    dc_promote_result_free(&r);

    /* and the entries themselves reversed: the comparison goes by name, not position */
    side_t src, dst;
    classify(&src, items, N(items), staging, N(staging));
    classify(&dst, items, N(items), production, N(production));
    dc_migration_status_t tmp = src.status.entries[0];
    src.status.entries[0] = src.status.entries[1];
    src.status.entries[1] = tmp;
    dc_promote_compare(&src.status, &dst.status, &r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.same, 2);
    dc_promote_result_free(&r);
    dc_migrate_status_free(&src.status);
    dc_migrate_status_free(&dst.status);
}

static void test_missing_and_extra(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("3_notes", "CREATE TABLE n (id int);\n")};
    /* staging never applied 3_notes; it applied 2_hotfix, which is not in the directory and
     * production does not have */
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false},
                            {"2_hotfix", "UPDATE a SET id = 1;\n", true, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.same, 1);
    assert_int_equal(r.count, 2);
    const dc_promote_diff_t *d = diff_of(&r, "3_notes");
    assert_non_null(d);
    assert_int_equal(d->kind, DC_PROMOTE_MISSING_ON_SOURCE);
    assert_string_equal(d->source_checksum, "");
    assert_string_equal(d->target_checksum, items[1].checksum);
    d = diff_of(&r, "2_hotfix");
    assert_non_null(d);
    assert_int_equal(d->kind, DC_PROMOTE_NOT_IN_TARGET);
    assert_string_equal(d->target_checksum, "");
    dc_promote_result_free(&r);
}

static void test_checksum_differs(void **state)
{
    (void)state;
    /* 2_tags was edited after staging applied it: production would get the new text */
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id bigint);\n")};
    const char *old = "CREATE TABLE t (id int);\n";
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false}, {"2_tags", old, true, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.same, 1);
    assert_string_equal(r.diffs[0].name, "2_tags");
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_CHECKSUM_DIFFERS);
    char old_sum[65];
    dc_migrate_checksum(old, strlen(old), old_sum);
    assert_string_equal(r.diffs[0].source_checksum, old_sum);
    assert_string_equal(r.diffs[0].target_checksum, items[1].checksum);
    assert_string_equal(dc_promote_diff_name(r.diffs[0].kind), "checksum differs");
    dc_promote_result_free(&r);
}

static void test_failed_rows(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id int);\n")};
    /* 2_tags failed on staging (a row never finished) */
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false},
                            {"2_tags", items[1].sql, false, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_FAILED_ON_SOURCE);
    assert_string_equal(r.diffs[0].name, "2_tags");
    dc_promote_result_free(&r);

    /* it failed on production: reported once, as production's, not also as "not in target" */
    fake_row_t staging_ok[] = {{"1_init", items[0].sql, true, false},
                               {"2_tags", items[1].sql, true, false}};
    fake_row_t production_failed[] = {{"1_init", items[0].sql, true, false},
                                      {"2_tags", items[1].sql, false, false}};
    compare(staging_ok, N(staging_ok), production_failed, N(production_failed), items, N(items),
            &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_FAILED_ON_TARGET);
    assert_string_equal(r.diffs[0].source_checksum, items[1].checksum);
    assert_int_equal(r.same, 1);
    dc_promote_result_free(&r);
}

static void test_rolled_back_rows(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id int);\n")};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false}};
    /* staging rolled 2_tags back (resolve --rolled-back) and never applied it again: it does
     * not have it */
    fake_row_t rolled_back[] = {{"1_init", items[0].sql, true, false},
                                {"2_tags", items[1].sql, false, true}};
    dc_promote_result_t r;
    compare(rolled_back, N(rolled_back), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_MISSING_ON_SOURCE);
    dc_promote_result_free(&r);

    /* rolled back, then applied again: it has it */
    fake_row_t retried[] = {{"1_init", items[0].sql, true, false},
                            {"2_tags", items[1].sql, false, true},
                            {"2_tags", items[1].sql, true, false}};
    compare(retried, N(retried), production, N(production), items, N(items), &r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.same, 2);
    dc_promote_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_names_and_checksums_match),
        cmocka_unit_test(test_order_does_not_count),
        cmocka_unit_test(test_missing_and_extra),
        cmocka_unit_test(test_checksum_differs),
        cmocka_unit_test(test_failed_rows),
        cmocka_unit_test(test_rolled_back_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
