/* The migration runner's pure logic: reading Prisma's directory, checksums that ignore line
 * endings and nothing else, statements that cannot run in a transaction found from the parse
 * tree (not the text), status classification as Prisma does it, and command lines split
 * without a shell. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/migrate.h"
#include "deployctl/util.h"

/* ---- a temporary migrations directory ---- */

static void write_file(const char *dir, const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/dc-test-migrate.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return dc_strdup(d);
}

static void remove_dir(const char *dir)
{
    char *cmd = dc_sprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void test_read_dir_in_order(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "migration_lock.toml", "# comment\nprovider = \"postgresql\"\n");
    write_file(dir, "20240201000000_b/migration.sql", "SELECT 2;\n");
    write_file(dir, "20240101000000_a/migration.sql", "SELECT 1;\n");
    write_file(dir, "20240101000000_a/down.sql", "SELECT -1;\n");
    write_file(dir, "README.md", "not a migration\n");
    dc_migration_set_t set;
    dc_error_t err;
    assert_int_equal(dc_migrate_read_dir(dir, &set, &err), 0);
    assert_int_equal(set.count, 2);
    assert_string_equal(set.items[0].name, "20240101000000_a");
    assert_string_equal(set.items[1].name, "20240201000000_b");
    assert_string_equal(set.items[0].sql, "SELECT 1;\n");
    assert_string_equal(set.items[0].down_sql, "SELECT -1;\n");
    assert_null(set.items[1].down_sql);
    /* sha256("SELECT 1;\n") as sha256sum prints it */
    char expected[65];
    dc_migrate_checksum("SELECT 1;\n", 10, expected);
    assert_string_equal(set.items[0].checksum, expected);
    assert_non_null(dc_migrate_find(&set, "20240201000000_b"));
    assert_null(dc_migrate_find(&set, "nope"));
    dc_migrate_set_free(&set);
    remove_dir(dir);
    free(dir);
}

static void test_read_dir_errors(void **state)
{
    (void)state;
    dc_migration_set_t set;
    dc_error_t err;
    char *dir = make_dir();
    write_file(dir, "migration_lock.toml", "provider = \"mysql\"\n");
    assert_int_equal(dc_migrate_read_dir(dir, &set, &err), -1);
    assert_non_null(strstr(err.message, "provider \"mysql\""));
    write_file(dir, "migration_lock.toml", "provider = \"postgresql\"\n");
    write_file(dir, "20240101000000_a/notes.txt", "no migration.sql here\n");
    assert_int_equal(dc_migrate_read_dir(dir, &set, &err), -1);
    assert_non_null(strstr(err.message, "20240101000000_a has no migration.sql"));
    /* As lint reads: a directory without migration.sql is skipped, any provider is read. */
    write_file(dir, "migration_lock.toml", "provider = \"mysql\"\n");
    write_file(dir, "20240201000000_b/migration.sql", "SELECT 2;\n");
    dc_migrate_read_opts_t lenient = {.skip_incomplete = true, .any_provider = true};
    assert_int_equal(dc_migrate_read_dir_with(dir, &lenient, &set, &err), 0);
    assert_int_equal(set.count, 1);
    assert_string_equal(set.items[0].name, "20240201000000_b");
    assert_int_equal(set.skipped_count, 1);
    assert_string_equal(set.skipped[0], "20240101000000_a");
    dc_migrate_set_free(&set);
    dc_migration_t one;
    assert_int_equal(dc_migrate_read_one(dir, "20240101000000_a", &lenient, &one, &err), 0);
    assert_null(one.sql);
    dc_migration_free(&one);
    remove_dir(dir);
    assert_int_equal(dc_migrate_read_dir(dir, &set, &err), -1);
    assert_non_null(strstr(err.message, "--migrations DIR"));
    free(dir);
}

/* ---- checksums ---- */

static void test_checksum(void **state)
{
    (void)state;
    char sum[65];
    dc_migrate_checksum("abc", 3, sum);
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    const char *lf = "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n";
    const char *crlf = "CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n";
    const char *edited = "CREATE TABLE a (id bigint);\nCREATE TABLE b (id int);\n";
    char lf_sum[65], crlf_sum[65];
    dc_migrate_checksum(lf, strlen(lf), lf_sum);
    dc_migrate_checksum(crlf, strlen(crlf), crlf_sum);
    assert_string_not_equal(lf_sum, crlf_sum);
    /* Applied from a Linux checkout, read from a Windows one, and the other way round. */
    assert_true(dc_migrate_checksum_matches(crlf, strlen(crlf), lf_sum));
    assert_true(dc_migrate_checksum_matches(lf, strlen(lf), crlf_sum));
    assert_true(dc_migrate_checksum_matches(lf, strlen(lf), lf_sum));
    /* A real edit is an edit, whatever the line endings. */
    assert_false(dc_migrate_checksum_matches(edited, strlen(edited), lf_sum));
    assert_false(dc_migrate_checksum_matches(edited, strlen(edited), crlf_sum));
    /* Trailing white space is content (Prisma counts it too). */
    assert_false(dc_migrate_checksum_matches("SELECT 1; ", 10, lf_sum));
    assert_false(dc_migrate_checksum_matches(lf, strlen(lf), NULL));

    /* Old Prisma rows: bytes written without their leading zero ({:x}). SHA-256("abc") has
     * the bytes 0x01, 0x03 and 0x00, so its unpadded form is 61 characters long. */
    const char *abc_old = "ba7816bf8f1cfea414140de5dae2223b0361a396177a9cb410ff61f2015ad";
    assert_int_equal(strlen(abc_old), 61);
    assert_true(dc_migrate_checksum_matches("abc", 3, abc_old));
    assert_false(dc_migrate_checksum_matches("abd", 3, abc_old));
    /* Mixed line endings: Prisma turns every '\n' into "\r\n" (a CRLF becomes "\r\r\n") and
     * every "\r\n" into '\n', so a file applied with one CRLF and one LF matches neither. */
    const char *mixed = "CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\n";
    assert_false(dc_migrate_checksum_matches(mixed, strlen(mixed), crlf_sum));
    assert_true(dc_migrate_checksum_matches(mixed, strlen(mixed), lf_sum));
    char mixed_sum[65];
    dc_migrate_checksum(mixed, strlen(mixed), mixed_sum);
    assert_false(dc_migrate_checksum_matches(lf, strlen(lf), mixed_sum));
    assert_false(dc_migrate_checksum_matches(crlf, strlen(crlf), mixed_sum));
}

/* ---- statements ---- */

static void check_script(const char *sql, size_t count, bool autocommit)
{
    dc_migrate_script_t sc;
    dc_error_t err;
    if (dc_migrate_parse_script(sql, "test.sql", &sc, &err) != 0)
        fail_msg("%s: %s", sql, err.message);
    assert_int_equal(sc.count, count);
    if (sc.needs_autocommit != autocommit)
        fail_msg("%s: needs_autocommit %d", sql, sc.needs_autocommit);
    dc_migrate_script_free(&sc);
}

static void test_no_transaction_statements(void **state)
{
    (void)state;
    check_script("CREATE INDEX CONCURRENTLY i ON t (a);", 1, true);
    check_script("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (a)", 1, true);
    check_script("DROP INDEX CONCURRENTLY IF EXISTS i;", 1, true);
    check_script("REINDEX (CONCURRENTLY) INDEX i;", 1, true);
    check_script("REINDEX INDEX CONCURRENTLY i;", 1, true);
    check_script("REINDEX DATABASE app;", 1, true);
    check_script("VACUUM (ANALYZE) t;", 1, true);
    check_script("CREATE DATABASE other;", 1, true);
    check_script("ALTER SYSTEM SET work_mem = '8MB';", 1, true);
    check_script("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;", 1, true);
    check_script("BEGIN; CREATE TABLE t (a int); COMMIT;", 3, true);
    check_script("START TRANSACTION; SELECT 1; END;", 3, true);
    check_script("ALTER DATABASE app SET TABLESPACE fast;", 1, true);
    check_script("DISCARD ALL;", 1, true);
    /* Savepoints live inside the migration's own transaction: they do not need autocommit. */
    check_script("SAVEPOINT a; CREATE TABLE t (a int); ROLLBACK TO SAVEPOINT a; RELEASE a;", 4,
                 false);
    check_script("ALTER DATABASE app SET work_mem = '8MB'; DISCARD PLANS;", 2, false);
    /* These run in a transaction block. */
    check_script("ANALYZE t;", 1, false);
    check_script("CREATE INDEX i ON t (a); REINDEX INDEX i; DROP INDEX i;", 3, false);
    check_script("ALTER TYPE mood ADD VALUE 'meh';", 1, false);
    check_script("ALTER TABLE p DETACH PARTITION p1;", 1, false);
    /* Words in comments and literals are not statements: string matching would be wrong. */
    check_script("-- CREATE INDEX CONCURRENTLY later\n"
                 "COMMENT ON TABLE t IS 'VACUUM; CREATE INDEX CONCURRENTLY x ON t (a)';\n"
                 "/* VACUUM */ SELECT $$CREATE DATABASE x$$;",
                 2, false);
    check_script("", 0, false);
    check_script("-- only a comment\n", 0, false);
}

static void test_statement_details(void **state)
{
    (void)state;
    dc_migrate_script_t sc;
    dc_error_t err;
    const char *sql = "-- header\n"
                      "ALTER TABLE t ADD COLUMN b int;\n"
                      "\n"
                      "CREATE INDEX CONCURRENTLY \"T_b_idx\" ON app.t (b);\n"
                      "CREATE INDEX CONCURRENTLY ON t (a);\n";
    assert_int_equal(dc_migrate_parse_script(sql, "m.sql", &sc, &err), 0);
    assert_int_equal(sc.count, 3);
    assert_int_equal(sc.stmts[0].line, 2);
    assert_string_equal(sc.stmts[0].text, "ALTER TABLE t ADD COLUMN b int");
    assert_false(sc.stmts[0].no_transaction);
    assert_int_equal(sc.stmts[1].line, 4);
    assert_true(sc.stmts[1].no_transaction);
    assert_string_equal(sc.stmts[1].concurrent_index, "T_b_idx");
    assert_string_equal(sc.stmts[1].index_schema, "app");
    assert_string_equal(sc.stmts[1].index_table, "t");
    assert_string_equal(sc.stmts[1].what, "CREATE INDEX CONCURRENTLY");
    assert_int_equal(sc.stmts[2].line, 5);
    assert_null(sc.stmts[2].concurrent_index); /* named by the server */
    assert_null(sc.stmts[2].index_schema);
    assert_string_equal(sc.stmts[2].index_table, "t");
    dc_migrate_script_free(&sc);

    /* Names as PostgreSQL stores them: quoted keep their case, unquoted are folded. */
    assert_int_equal(dc_migrate_parse_script("CREATE INDEX CONCURRENTLY \"User_email_key\" ON "
                                             "\"User\"(\"email\");\n"
                                             "CREATE INDEX CONCURRENTLY Post_Idx ON Post (a);",
                                             "m.sql", &sc, &err),
                     0);
    assert_string_equal(sc.stmts[0].concurrent_index, "User_email_key");
    assert_string_equal(sc.stmts[0].index_table, "User");
    assert_string_equal(sc.stmts[1].concurrent_index, "post_idx");
    assert_string_equal(sc.stmts[1].index_table, "post");
    dc_migrate_script_free(&sc);

    assert_int_equal(
        dc_migrate_parse_script("SELECT 1;\nCREATE TABL x (a int);", "bad.sql", &sc, &err), -1);
    assert_non_null(strstr(err.message, "bad.sql is not valid SQL at line 2"));

    /* Block comments nest, as PostgreSQL's do; an error's position counts characters. */
    assert_int_equal(
        dc_migrate_parse_script("/* a /* nested */ b */\nSELECT 1;", "n.sql", &sc, &err), 0);
    assert_int_equal(sc.count, 1);
    assert_string_equal(sc.stmts[0].text, "SELECT 1");
    assert_int_equal(sc.stmts[0].line, 2);
    dc_migrate_script_free(&sc);
    assert_int_equal(dc_migrate_parse_script("-- \u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
                                             "\u00e9\u00e9\u00e9\u00e9\nSELEC 1;",
                                             "u.sql", &sc, &err),
                     -1);
    assert_non_null(strstr(err.message, "u.sql is not valid SQL at line 2"));
}

/* ---- status ---- */

static dc_history_row_t row(const char *name, const char *checksum, bool finished, bool rolled_back)
{
    dc_history_row_t r = {0};
    r.id = (char *)"id";
    r.migration_name = (char *)name;
    r.checksum = (char *)checksum;
    r.finished_at = finished ? (char *)"2024-01-01 00:00:00+00" : NULL;
    r.rolled_back_at = rolled_back ? (char *)"2024-01-02 00:00:00+00" : NULL;
    return r;
}

static dc_migration_t local(const char *name, const char *sql)
{
    dc_migration_t m = {0};
    m.name = (char *)name;
    m.sql = (char *)sql;
    m.sql_len = strlen(sql);
    dc_migrate_checksum(sql, m.sql_len, m.checksum);
    return m;
}

static void test_classify(void **state)
{
    (void)state;
    dc_migration_t items[] = {
        local("1_applied", "SELECT 1;\n"), local("2_edited", "SELECT 2; -- changed\n"),
        local("3_crlf", "SELECT 3;\r\n"),  local("4_failed", "SELECT 4;\n"),
        local("5_retried", "SELECT 5;\n"), local("6_rolled_back", "SELECT 6;\n"),
        local("7_pending", "SELECT 7;\n"),
    };
    dc_migration_set_t set = {.dir = (char *)"d", .items = items, .count = 7};
    char c1[65], c2[65], c3[65], c5[65];
    dc_migrate_checksum("SELECT 1;\n", 10, c1);
    dc_migrate_checksum("SELECT 2;\n", 10, c2);
    dc_migrate_checksum("SELECT 3;\n", 10, c3);
    dc_migrate_checksum("SELECT 5;\n", 10, c5);
    dc_history_row_t rows[] = {
        row("1_applied", c1, true, false),
        row("2_edited", c2, true, false),
        row("3_crlf", c3, true, false),
        row("4_failed", "x", false, false),
        row("5_retried", c5, false, true), /* failed, resolved --rolled-back, then applied */
        row("5_retried", c5, true, false),
        row("6_rolled_back", "x", false, true),
        row("0_gone", "x", true, false),
        row("0_gone", "x", true, false), /* one entry per name */
        row("0_gone_failed", "x", false, false),
        row("0_gone_rolled_back", "x", false, true), /* not counted */
    };
    dc_history_t h = {.exists = true, .rows = rows, .count = sizeof(rows) / sizeof(rows[0])};
    dc_migrate_status_t st;
    dc_migrate_classify(&set, &h, &st);
    static const struct {
        const char *name;
        dc_migration_state_t state;
    } expected[] = {
        {"1_applied", DC_MIG_APPLIED},    {"2_edited", DC_MIG_EDITED},
        {"3_crlf", DC_MIG_APPLIED},       {"4_failed", DC_MIG_FAILED},
        {"5_retried", DC_MIG_APPLIED},    {"6_rolled_back", DC_MIG_PENDING},
        {"7_pending", DC_MIG_PENDING},    {"0_gone", DC_MIG_MISSING_LOCALLY},
        {"0_gone_failed", DC_MIG_FAILED},
    };
    assert_int_equal(st.count, sizeof(expected) / sizeof(expected[0]));
    for (size_t i = 0; i < st.count; i++) {
        assert_string_equal(st.entries[i].name, expected[i].name);
        if (st.entries[i].state != expected[i].state)
            fail_msg("%s: %s, expected %s", expected[i].name,
                     dc_migrate_state_name(st.entries[i].state),
                     dc_migrate_state_name(expected[i].state));
    }
    assert_ptr_equal(st.entries[4].row, &rows[5]); /* the finished row decides */
    assert_null(st.entries[6].row);
    assert_int_equal(st.applied, 3);
    assert_int_equal(st.edited, 1);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.missing, 1);
    assert_false(dc_migrate_up_to_date(&st));
    dc_migrate_status_free(&st);

    /* Everything applied: up to date. No table at all: everything pending. */
    dc_migration_set_t one = {.dir = (char *)"d", .items = items, .count = 1};
    dc_history_t h1 = {.exists = true, .rows = rows, .count = 1};
    dc_migrate_classify(&one, &h1, &st);
    assert_true(dc_migrate_up_to_date(&st));
    dc_migrate_status_free(&st);
    dc_history_t none = {0};
    dc_migrate_classify(&set, &none, &st);
    assert_int_equal(st.pending, 7);
    assert_false(st.history_exists);
    dc_migrate_status_free(&st);
}

/* A finished row its down.sql left partly rolled back is failed (needs attention), not applied;
 * once rolled back, or with any other logs, the mark does not count. */
static void test_classify_partly_undone(void **state)
{
    (void)state;
    dc_migration_t items[] = {local("1_undone", "SELECT 1;\n"), local("2_done", "SELECT 2;\n"),
                              local("3_other_logs", "SELECT 3;\n")};
    dc_migration_set_t set = {.dir = (char *)"d", .items = items, .count = 3};
    dc_history_row_t rows[] = {
        row("1_undone", items[0].checksum, true, false),
        row("2_done", items[1].checksum, true, true),
        row("3_other_logs", items[2].checksum, true, false),
    };
    rows[0].logs = (char *)DC_MIGRATE_UNDO_MARK "statements 1-1 of 3 committed";
    rows[1].logs = rows[0].logs;
    rows[2].logs = (char *)"deployctl: statements 1-1 of 3 committed";
    dc_history_t h = {.exists = true, .rows = rows, .count = 3};
    dc_migrate_status_t st;
    dc_migrate_classify(&set, &h, &st);
    assert_int_equal(st.entries[0].state, DC_MIG_FAILED);
    assert_true(dc_migrate_row_partly_undone(st.entries[0].row));
    assert_int_equal(st.entries[1].state, DC_MIG_PENDING);
    assert_int_equal(st.entries[2].state, DC_MIG_APPLIED);
    assert_int_equal(st.failed, 1);
    assert_false(dc_migrate_up_to_date(&st));
    dc_migrate_status_free(&st);
}

/* ---- command lines ---- */

static void check_split(const char *command, const char *const *expected)
{
    char **argv;
    dc_error_t err;
    if (dc_migrate_split_command(command, &argv, &err) != 0)
        fail_msg("%s: %s", command, err.message);
    size_t i = 0;
    for (; expected[i] != NULL; i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], expected[i]);
    }
    assert_null(argv[i]);
    dc_migrate_argv_free(argv);
}

static void test_split_command(void **state)
{
    (void)state;
    check_split("npx prisma migrate deploy",
                (const char *const[]){"npx", "prisma", "migrate", "deploy", NULL});
    check_split(
        "  dbmate   --migrations-dir 'db/my migrations' up ",
        (const char *const[]){"dbmate", "--migrations-dir", "db/my migrations", "up", NULL});
    check_split("sh -c \"echo \\\"hi\\\"\" a\\ b",
                (const char *const[]){"sh", "-c", "echo \"hi\"", "a b", NULL});
    /* No shell: variables and globs stay as written (a secret never lands in argv). */
    check_split("tool $DATABASE_URL *.sql `id`",
                (const char *const[]){"tool", "$DATABASE_URL", "*.sql", "`id`", NULL});
    char **argv;
    dc_error_t err;
    assert_int_equal(dc_migrate_split_command("tool 'unclosed", &argv, &err), -1);
    assert_non_null(strstr(err.message, "unclosed"));
    assert_int_equal(dc_migrate_split_command("   ", &argv, &err), -1);
    assert_non_null(strstr(err.message, "empty"));
}

/* A big data migration: split once, numbered in one pass, data statements not parsed again (the
 * time is printed, not asserted; it was quadratic: 11-18 s for 20,000 statements). */
static void test_large_script(void **state)
{
    (void)state;
    enum { N = 20000 };
    dc_buf_t b = {0};
    dc_buf_append(&b, "-- seed\n", 8);
    for (int i = 0; i < N; i++)
        dc_buf_appendf(&b, "INSERT INTO t (id, note) VALUES (%d, 'row %d');\n", i, i);
    dc_migrate_script_t sc;
    dc_error_t err;
    double t0 = dc_now_seconds();
    assert_int_equal(dc_migrate_parse_script(b.data, "big.sql", &sc, &err), 0);
    print_message("parsed %d statements (%zu bytes) in %.2fs\n", N, b.len, dc_now_seconds() - t0);
    assert_int_equal(sc.count, N);
    assert_int_equal(sc.stmts[0].line, 2);
    assert_int_equal(sc.stmts[N - 1].line, N + 1);
    assert_string_equal(sc.stmts[N - 1].text,
                        "INSERT INTO t (id, note) VALUES (19999, 'row 19999')");
    assert_false(sc.needs_autocommit);
    dc_migrate_script_free(&sc);
    dc_buf_free(&b);

    /* DDL is classified statement by statement: one concurrent build among 20,000 is found. */
    dc_buf_t d = {0};
    dc_buf_append(&d, "", 0);
    for (int i = 0; i < N; i++) {
        if (i == N / 2)
            dc_buf_appendf(&d, "CREATE INDEX CONCURRENTLY \"T%d_idx\" ON t%d (a);\n", i, i);
        else
            dc_buf_appendf(&d, "CREATE TABLE t%d (a int, b text);\n", i);
    }
    t0 = dc_now_seconds();
    assert_int_equal(dc_migrate_parse_script(d.data, "ddl.sql", &sc, &err), 0);
    print_message("classified %d DDL statements in %.2fs\n", N, dc_now_seconds() - t0);
    assert_int_equal(sc.count, N);
    assert_true(sc.needs_autocommit);
    assert_true(sc.stmts[N / 2].no_transaction);
    assert_string_equal(sc.stmts[N / 2].concurrent_index, "T10000_idx");
    assert_int_equal(sc.stmts[N / 2].line, N / 2 + 1);
    assert_false(sc.stmts[N / 2 + 1].no_transaction);
    dc_migrate_script_free(&sc);
    dc_buf_free(&d);
}

/* ---- promote-check's comparison (dc_promote_compare) ----
 * On statuses classified from in-memory migration directories and history rows: the same names
 * and checksums match, whatever their order; missing, extra, edited, failed and rolled-back
 * migrations are each reported. */

#define N(a) (sizeof(a) / sizeof((a)[0]))

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
    /* staging applied them in the other order (2_tags came first on its branch). This half
     * covers the history's row order only: classify builds the entries in directory order
     * whatever it, so the entries' own order is tested below by swapping them. */
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

static void test_hotfix_only_on_target(void **state)
{
    (void)state;
    /* production applied 2_hotfix by hand: not in the directory, and staging never had it */
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n")};
    const char *hotfix = "UPDATE a SET id = 1;\n";
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false},
                               {"2_hotfix", hotfix, true, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.same, 1);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.diffs[0].name, "2_hotfix");
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_MISSING_ON_SOURCE);
    char sum[65];
    dc_migrate_checksum(hotfix, strlen(hotfix), sum);
    assert_string_equal(r.diffs[0].target_checksum, sum);
    assert_string_equal(r.diffs[0].source_checksum, "");
    dc_promote_result_free(&r);
}

static void test_failed_on_both(void **state)
{
    (void)state;
    /* 2_tags failed on staging and on production: one finding, production's (deploy refuses
     * there until it is resolved), not also "not in target" */
    dc_migration_t items[] = {local("1_init", "CREATE TABLE a (id int);\n"),
                              local("2_tags", "CREATE TABLE t (id int);\n")};
    fake_row_t staging[] = {{"1_init", items[0].sql, true, false},
                            {"2_tags", items[1].sql, false, false}};
    fake_row_t production[] = {{"1_init", items[0].sql, true, false},
                               {"2_tags", items[1].sql, false, false}};
    dc_promote_result_t r;
    compare(staging, N(staging), production, N(production), items, N(items), &r);
    assert_int_equal(r.same, 1);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.diffs[0].name, "2_tags");
    assert_int_equal(r.diffs[0].kind, DC_PROMOTE_FAILED_ON_TARGET);
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
        cmocka_unit_test(test_read_dir_in_order),
        cmocka_unit_test(test_read_dir_errors),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_no_transaction_statements),
        cmocka_unit_test(test_statement_details),
        cmocka_unit_test(test_large_script),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_partly_undone),
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_same_names_and_checksums_match),
        cmocka_unit_test(test_order_does_not_count),
        cmocka_unit_test(test_missing_and_extra),
        cmocka_unit_test(test_hotfix_only_on_target),
        cmocka_unit_test(test_failed_on_both),
        cmocka_unit_test(test_checksum_differs),
        cmocka_unit_test(test_failed_rows),
        cmocka_unit_test(test_rolled_back_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
