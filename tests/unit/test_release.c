/* Proves the release's pure parts: the state a journal's events add up to (what recover and
 * compensation decide from), finding the unfinished release among journal files (a torn last
 * line ignored), the Markdown report's checklist, the on_failure names, and the gap check of
 * the database copy of a journal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/release/release_intern.h"
#include "deployctl/release.h"
#include "unit_tmpdir.h"

static const char JOURNAL_KILLED_IN_DEPLOY[] =
    "{\"event\":\"begin\",\"database\":\"app\",\"on_failure\":\"auto\",\"seq\":1}\n"
    "{\"event\":\"phase\",\"phase\":\"backup\",\"status\":\"start\",\"seq\":2}\n"
    "{\"event\":\"snapshot\",\"id\":\"20260101T000000Z-abcd\",\"migrations\":[\"m1\"],\"seq\":3}\n"
    "{\"event\":\"phase\",\"phase\":\"backup\",\"status\":\"ok\",\"seconds\":1.5,\"seq\":4}\n"
    "{\"event\":\"phase\",\"phase\":\"migrate\",\"status\":\"start\",\"seq\":5}\n"
    "{\"event\":\"phase\",\"phase\":\"migrate\",\"status\":\"ok\",\"seconds\":0.5,\"seq\":6}\n"
    "{\"event\":\"phase\",\"phase\":\"deploy\",\"status\":\"start\",\"seq\":7}\n"
    "{\"event\":\"hook\",\"hook\":\"deploy\",\"status\":\"start\",\"seq\":8}\n"
    "{\"event\":\"hook\",\"hook\":\"deploy\",\"sta"; /* torn by the kill */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_state_fold(void **state)
{
    (void)state;
    char dir[64], path[128];
    assert_int_equal(unit_tmpdir_new(dir, sizeof(dir), "release"), 0);
    snprintf(path, sizeof(path), "%s/r.jsonl", dir);
    write_file(path, JOURNAL_KILLED_IN_DEPLOY);
    json_t *events;
    dc_error_t err;
    assert_int_equal(rel_journal_load(path, &events, &err), 0);
    assert_int_equal(json_array_size(events), 8); /* the torn line dropped */
    rel_state_t st = {0};
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) rel_state_apply(&st, ev);
    assert_true(st.began);
    assert_true(st.migrate_started);
    assert_true(st.deploy_started);
    assert_false(st.smoke_passed);
    assert_false(st.compensating);
    assert_false(st.ended);
    assert_string_equal(st.snapshot, "20260101T000000Z-abcd");
    assert_string_equal(st.last_phase, "deploy");
    assert_string_equal(st.on_failure, "auto");
    assert_int_equal(json_array_size(st.before), 1);
    assert_string_equal(json_string_value(json_array_get(st.before, 0)), "m1");
    rel_state_free(&st);
    json_decref(events);
    unit_tmpdir_remove(dir);
}

static void test_find_unfinished(void **state)
{
    (void)state;
    char dir[64], path[256], id[64], found[512];
    assert_int_equal(unit_tmpdir_new(dir, sizeof(dir), "release"), 0);
    snprintf(path, sizeof(path), "%s/20260101T000000Z-0001.jsonl", dir);
    write_file(path, "{\"event\":\"begin\"}\n{\"event\":\"end\",\"outcome\":\"released\"}\n");
    assert_false(rel_find_unfinished(dir, found, sizeof(found), id, sizeof(id)));
    snprintf(path, sizeof(path), "%s/20260102T000000Z-0002.jsonl", dir);
    write_file(path,
               "{\"event\":\"begin\"}\n{\"event\":\"end\",\"outcome\":\"rollback-failed\"}\n");
    assert_true(rel_find_unfinished(dir, found, sizeof(found), id, sizeof(id)));
    assert_string_equal(id, "20260102T000000Z-0002");
    snprintf(path, sizeof(path), "%s/20260103T000000Z-0003.jsonl", dir);
    write_file(path, JOURNAL_KILLED_IN_DEPLOY);
    assert_true(rel_find_unfinished(dir, found, sizeof(found), id, sizeof(id)));
    assert_string_equal(id, "20260103T000000Z-0003"); /* the newest */
    /* recover closed it: an end after the rollback-failed one */
    snprintf(path, sizeof(path), "%s/20260102T000000Z-0002.jsonl", dir);
    write_file(path, "{\"event\":\"begin\"}\n{\"event\":\"end\",\"outcome\":\"rollback-failed\"}\n"
                     "{\"event\":\"end\",\"outcome\":\"rolled-back\"}\n");
    snprintf(path, sizeof(path), "%s/20260103T000000Z-0003.jsonl", dir);
    remove(path);
    assert_false(rel_find_unfinished(dir, found, sizeof(found), id, sizeof(id)));
    unit_tmpdir_remove(dir);
}

static void test_markdown(void **state)
{
    (void)state;
    json_t *report = json_loads(
        "{\"release\":\"R1\",\"database\":\"app\",\"outcome\":\"rollback-failed\","
        "\"exit_code\":3,\"on_failure\":\"auto\",\"snapshot\":\"S1\","
        "\"migrations_applied\":[\"m2\"],\"failed_phase\":\"smoke\",\"failure\":\"HTTP 500\","
        "\"phases\":[{\"name\":\"backup\",\"status\":\"ok\",\"seconds\":1.0,\"detail\":\"snap\"},"
        "{\"name\":\"smoke\",\"status\":\"failed\",\"seconds\":2.0,\"detail\":\"HTTP 500\"},"
        "{\"name\":\"verify\",\"status\":\"failed\",\"seconds\":0.5,"
        "\"detail\":\"a || b\\nfailed\"}],"
        "\"hooks\":[{\"name\":\"deploy\",\"ran\":true,\"exit_status\":0,\"duration_ms\":5},"
        "{\"name\":\"rollback\",\"ran\":true,\"exit_status\":1,\"duration_ms\":7}],"
        "\"compensation\":[{\"step\":\"rollback-hook\",\"status\":\"failed\",\"detail\":\"exit "
        "1\"}],\"state\":{\"database\":\"migrated\",\"application\":\"UNKNOWN\","
        "\"manual_steps\":[\"deployctl restore S1 --yes\"]}}",
        0, NULL);
    assert_non_null(report);
    char *md = rel_report_markdown(report);
    assert_non_null(strstr(md, "## Release R1 of app: rollback-failed"));
    assert_non_null(strstr(md, "### Pre-Migration"));
    assert_non_null(strstr(md, "### Migration"));
    assert_non_null(strstr(md, "### Post-Migration"));
    assert_non_null(strstr(md, "### Rollback"));
    assert_non_null(strstr(md, "- [x] Backup created and verified — snap (1.0 s)"));
    assert_non_null(strstr(md, "- [ ] Smoke tests passed — **FAILED**: HTTP 500"));
    assert_non_null(strstr(md, "- [ ] Migration executed successfully — not run"));
    assert_non_null(strstr(md, "Issue identified — smoke failed: HTTP 500"));
    assert_non_null(strstr(md, "**Operator needed.**"));
    assert_non_null(strstr(md, "deployctl restore S1 --yes"));
    assert_non_null(strstr(md, "| rollback | yes | 1 | 7 |"));
    /* A detail with '|' and a line break stays in its cell. */
    assert_non_null(strstr(md, "| verify | failed | 0.50 | a \\|\\| b failed |\n"));
    free(md);
    json_decref(report);
}

static void test_on_failure_names(void **state)
{
    (void)state;
    dc_on_failure_t p;
    assert_int_equal(dc_on_failure_parse("down", &p), 0);
    assert_int_equal(p, DC_ON_FAILURE_DOWN);
    assert_string_equal(dc_on_failure_name(DC_ON_FAILURE_RESTORE), "restore");
    assert_int_equal(dc_on_failure_parse("sometimes", &p), -1);
    assert_int_equal(dc_on_failure_parse(NULL, &p), -1);
}

/* The database copy of a journal: sequence numbers 1, 2, 3... with no hole; the first missing
 * one is named (recover refuses to guess from an incomplete copy). */
static void test_seq_gap(void **state)
{
    (void)state;
    const int whole[] = {1, 2, 3, 4};
    const int hole[] = {1, 2, 4, 5};
    const int late_start[] = {2, 3};
    const int dup[] = {1, 1, 2};
    assert_int_equal(rel_seq_gap(whole, 4), 0);
    assert_int_equal(rel_seq_gap(whole, 0), 0);
    assert_int_equal(rel_seq_gap(hole, 4), 3);
    assert_int_equal(rel_seq_gap(late_start, 2), 1);
    assert_int_equal(rel_seq_gap(dup, 3), 2);
}

/* An "assume" event (recover from a copy with a hole, decided by the operator) takes the
 * worst: the deploy hook and the migrations ran. */
static void test_assume_worst(void **state)
{
    (void)state;
    rel_state_t st = {0};
    json_t *ev = json_loads("{\"event\":\"assume\",\"deploy_started\":true,"
                            "\"migrate_started\":true}",
                            0, NULL);
    rel_state_apply(&st, ev);
    assert_true(st.deploy_started);
    assert_true(st.migrate_started);
    json_decref(ev);
    rel_state_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_fold), cmocka_unit_test(test_find_unfinished),
        cmocka_unit_test(test_markdown),   cmocka_unit_test(test_on_failure_names),
        cmocka_unit_test(test_seq_gap),    cmocka_unit_test(test_assume_worst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
