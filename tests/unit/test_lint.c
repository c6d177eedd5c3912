/* Proves lint's verdicts on a table of statements, dangerous and safe: the rules each one
 * triggers with their severity, the migration's class, and the lines, statement texts, allow
 * comments, syntax errors, directory reading and JSON form around them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/lint.h"
#include "deployctl/util.h"

/* Most cases set a lock_timeout first so that only the rule under test fires. */
#define LT "SET lock_timeout = '5s';\n"

#define ADD DC_LINT_ADDITIVE
#define TRA DC_LINT_TRANSFORMATIVE
#define DES DC_LINT_DESTRUCTIVE

typedef struct lint_case {
    const char *sql;
    const char *expect; /* "rule:severity ..." in report order, "" for no finding */
    dc_lint_class_t cls;
} lint_case_t;

/* clang-format off */
static const lint_case_t cases[] = {
    /* adding columns */
    {LT "ALTER TABLE t ADD COLUMN c int", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int NULL", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int NOT NULL", "add-not-null-column-without-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT NULL",
     "add-not-null-column-without-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int DEFAULT NULL::int NOT NULL",
     "add-not-null-column-without-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int DEFAULT NULL", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT 'x'::text", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c timestamptz NOT NULL DEFAULT now()", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP", "", ADD},
    {LT "ALTER TABLE t ADD COLUMN c uuid NOT NULL DEFAULT gen_random_uuid()",
     "add-column-with-volatile-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c float8 DEFAULT random() * 10",
     "add-column-with-volatile-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c bigserial", "add-column-with-volatile-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS IDENTITY",
     "add-column-with-volatile-default:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int UNIQUE", "unique-constraint-without-index:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int PRIMARY KEY",
     "add-not-null-column-without-default:error unique-constraint-without-index:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN u int REFERENCES users(id)",
     "constraint-without-not-valid:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int CHECK (c > 0)", "constraint-without-not-valid:error", ADD},
    /* indexes */
    {LT "CREATE INDEX CONCURRENTLY i ON t (a)", "concurrently-not-alone:warning", ADD},
    {"CREATE INDEX CONCURRENTLY i ON t (a)", "", ADD},
    {LT "CREATE INDEX i ON t (a)", "index-not-concurrent:error", ADD},
    {LT "CREATE UNIQUE INDEX \"t_a_key\" ON \"t\"(\"a\")", "index-not-concurrent:error", ADD},
    {LT "CREATE INDEX i ON s.t USING gin (doc)", "index-not-concurrent:error", ADD},
    {"CREATE TABLE n (a int);\nCREATE INDEX i ON n (a)", "", ADD},
    {"CREATE TABLE public.n (a int);\nCREATE INDEX i ON n (a)", "", ADD},
    {"CREATE TABLE n (a int);\nCREATE INDEX i ON public.n (a)", "", ADD},
    {"CREATE TABLE a.n (a int);\nCREATE INDEX i ON b.n (a)",
     "missing-lock-timeout:warning index-not-concurrent:error", ADD},
    {LT "DROP INDEX i", "drop-index-not-concurrent:warning", DES},
    {"DROP INDEX CONCURRENTLY i", "", DES},
    {"CREATE INDEX i ON t (a);\nDROP INDEX i",
     "missing-lock-timeout:warning index-not-concurrent:error", DES},
    {"BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT",
     "concurrently-in-transaction:error", ADD},
    {LT "ALTER TABLE t ADD COLUMN c int;\nCREATE INDEX CONCURRENTLY i ON t (c)",
     "concurrently-not-alone:warning", ADD},
    /* every statement the migrate runner knows cannot run in a transaction */
    {"BEGIN;\nREINDEX TABLE CONCURRENTLY t;\nCOMMIT", "concurrently-in-transaction:error", ADD},
    {LT "REINDEX INDEX CONCURRENTLY i", "concurrently-not-alone:warning", ADD},
    {"REINDEX INDEX CONCURRENTLY i", "", ADD},
    {LT "VACUUM t", "concurrently-not-alone:warning", ADD},
    {LT "ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "concurrently-not-alone:warning", TRA},
    /* rewrites, and exclusive locks held while every row is read */
    {"VACUUM FULL t", "missing-lock-timeout:warning table-rewrite-or-exclusive-lock:error", TRA},
    {LT "CLUSTER t USING t_pkey", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "REINDEX TABLE t", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "REINDEX INDEX i", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "REFRESH MATERIALIZED VIEW mv", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "", ADD},
    {LT "ALTER TABLE t SET TABLESPACE fast", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "ALTER TABLE t SET LOGGED", "table-rewrite-or-exclusive-lock:error", TRA},
    {LT "ALTER TABLE t SET UNLOGGED", "table-rewrite-or-exclusive-lock:error", TRA},
    {"CREATE TABLE n (a int);\nALTER TABLE n SET UNLOGGED;\nCLUSTER n USING n_a_idx", "", ADD},
    /* constraints */
    {LT "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id)",
     "constraint-without-not-valid:error", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID", "",
     ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "constraint-without-not-valid:error",
     ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID", "", ADD},
    {"ALTER TABLE t VALIDATE CONSTRAINT fk", "", ADD},
    /* VALIDATE in the migration that added the constraint NOT VALID: the ADD's lock is still
     * held (the file is one transaction), so the scan blocks writes after all */
    {LT "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c", "constraint-without-not-valid:error", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;\n"
        "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"fk\"", "constraint-without-not-valid:error", ADD},
    {LT "BEGIN;\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nCOMMIT;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c", "", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
        "ALTER TABLE u VALIDATE CONSTRAINT c", "", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)", "unique-constraint-without-index:error", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX t_a_idx", "", ADD},
    {LT "ALTER TABLE t ADD PRIMARY KEY (id)", "unique-constraint-without-index:error", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT p PRIMARY KEY USING INDEX t_id_idx", "", ADD},
    {LT "ALTER TABLE t ADD CONSTRAINT e EXCLUDE USING gist (r WITH &&)",
     "unique-constraint-without-index:error", ADD},
    {LT "ALTER TABLE t ALTER COLUMN c SET NOT NULL", "set-not-null:warning", TRA},
    {LT "ALTER TABLE t ALTER COLUMN c DROP NOT NULL", "", TRA},
    {LT "ALTER TABLE t DROP CONSTRAINT c", "", DES},
    /* renames, types, drops */
    {LT "ALTER TABLE \"inventory_items\" RENAME COLUMN \"batch\" TO \"batch_number\"",
     "rename-column:error", TRA},
    {LT "ALTER TABLE t RENAME TO u", "rename-table:error", TRA},
    {LT "ALTER TABLE t SET SCHEMA archive", "rename-table:error", TRA},
    {LT "ALTER INDEX i RENAME TO j", "", TRA},
    {LT "ALTER TABLE t ALTER COLUMN quantity TYPE numeric(12,2)", "change-column-type:error", TRA},
    {LT "ALTER TABLE \"t\" ALTER COLUMN \"q\" SET DATA TYPE DECIMAL(65,30)",
     "change-column-type:error", TRA},
    {LT "ALTER TABLE t DROP COLUMN c", "drop-column:error", DES},
    /* to text, varchar or unconstrained numeric without USING: no rewrite if it widens */
    {LT "ALTER TABLE t ALTER COLUMN name TYPE varchar(200)", "widen-column-type:warning", TRA},
    {LT "ALTER TABLE t ALTER COLUMN name TYPE character varying", "widen-column-type:warning",
     TRA},
    {LT "ALTER TABLE t ALTER COLUMN name TYPE text", "widen-column-type:warning", TRA},
    {LT "ALTER TABLE t ALTER COLUMN q SET DATA TYPE numeric", "widen-column-type:warning", TRA},
    {LT "ALTER TABLE t ALTER COLUMN name TYPE text USING name || ''", "change-column-type:error",
     TRA},
    {LT "ALTER TABLE t ALTER COLUMN tags TYPE varchar(20)[]", "change-column-type:error", TRA},
    {LT "ALTER TABLE t ALTER COLUMN q TYPE integer", "change-column-type:error", TRA},
    {LT "ALTER TABLE t ADD COLUMN a int, DROP COLUMN b, ALTER COLUMN c TYPE bigint",
     "drop-column:error change-column-type:error", DES},
    {LT "DROP TABLE t", "drop-table:error", DES},
    {LT "DROP TABLE IF EXISTS s.t, u CASCADE", "drop-table:error drop-table:error", DES},
    {"CREATE TABLE n (a int);\nDROP TABLE n", "", ADD},
    /* IF NOT EXISTS: the table may exist, with rows and readers */
    {LT "CREATE TABLE IF NOT EXISTS t (id int);\nALTER TABLE t DROP COLUMN c;\nDROP TABLE t",
     "drop-column:error drop-table:error", DES},
    {"CREATE TABLE IF NOT EXISTS n (a int);\nCREATE INDEX i ON n (a)",
     "missing-lock-timeout:warning index-not-concurrent:error", ADD},
    {LT "CREATE TABLE IF NOT EXISTS n AS SELECT 1 AS a;\nTRUNCATE n", "truncate:error", DES},
    {LT "DROP SCHEMA old CASCADE", "drop-schema:error", DES},
    {"DROP DATABASE app", "drop-database:error", DES},
    {LT "DROP VIEW v", "", DES},
    {LT "TRUNCATE t", "truncate:error", DES},
    {LT "TRUNCATE TABLE a, b", "truncate:error truncate:error", DES},
    /* data */
    {LT "UPDATE t SET a = 1", "update-without-where:warning", TRA},
    {LT "UPDATE inventory_items SET batch_number = batch WHERE batch_number IS NULL", "", TRA},
    {LT "DELETE FROM t", "delete-without-where:warning", DES},
    {LT "DELETE FROM t WHERE created_at < now() - interval '1 year'", "", DES},
    {LT "INSERT INTO roles (name) VALUES ('admin')", "", ADD},
    {"CREATE TABLE n (a int);\nUPDATE n SET a = 1;\nDELETE FROM n", "", ADD},
    /* lock_timeout */
    {"ALTER TABLE t ADD COLUMN c int", "missing-lock-timeout:warning", ADD},
    {"ALTER TABLE t ADD COLUMN c int;\nALTER TABLE u ADD COLUMN d int",
     "missing-lock-timeout:warning", ADD},
    {"SET lock_timeout = 0;\nALTER TABLE t ADD COLUMN c int", "missing-lock-timeout:warning",
     ADD},
    {"SET lock_timeout = '0';\nALTER TABLE t ADD COLUMN c int", "missing-lock-timeout:warning",
     ADD},
    {"SET LOCAL lock_timeout TO 1000;\nALTER TABLE t ADD COLUMN c int", "", ADD},
    {"BEGIN;\nSET LOCAL lock_timeout = '5s';\nCOMMIT;\nALTER TABLE t ADD COLUMN c int",
     "missing-lock-timeout:warning", ADD},
    {"BEGIN;\nSET lock_timeout = '5s';\nROLLBACK;\nALTER TABLE t ADD COLUMN c int",
     "missing-lock-timeout:warning", ADD},
    {"BEGIN;\nSET lock_timeout = '5s';\nCOMMIT;\nALTER TABLE t ADD COLUMN c int", "", ADD},
    {"SELECT set_config('lock_timeout', '5s', false);\nALTER TABLE t ADD COLUMN c int", "", ADD},
    {"SELECT pg_catalog.set_config('lock_timeout', '0', false);\nALTER TABLE t ADD COLUMN c int",
     "missing-lock-timeout:warning", ADD},
    {"BEGIN;\nSELECT set_config('lock_timeout', '5s', true);\nCOMMIT;\n"
     "ALTER TABLE t ADD COLUMN c int", "missing-lock-timeout:warning", ADD},
    {"ALTER TABLE t ADD COLUMN c int;\nSET lock_timeout = '5s'", "missing-lock-timeout:warning",
     ADD},
    {LT "RESET lock_timeout;\nALTER TABLE t ADD COLUMN c int", "missing-lock-timeout:warning",
     ADD},
    {"CREATE TABLE n (id int, u text REFERENCES users (id))", "missing-lock-timeout:warning",
     ADD},
    {"CREATE TABLE n (id int);\nCREATE TABLE m (n int REFERENCES n (id))", "", ADD},
    {"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
     "missing-lock-timeout:warning", ADD},
    {"LOCK TABLE t", "missing-lock-timeout:warning", ADD},
    {"LOCK TABLE t IN ACCESS SHARE MODE", "", ADD},
    /* no findings, and the classes of what is not a table change */
    {"CREATE TYPE mood AS ENUM ('ok', 'sad')", "", ADD},
    {"ALTER TYPE mood ADD VALUE 'happy'", "", ADD},
    {"ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'", "", TRA},
    {"CREATE VIEW v AS SELECT 1", "", ADD},
    {"CREATE OR REPLACE VIEW v AS SELECT 2", "", TRA},
    {"CREATE EXTENSION IF NOT EXISTS pgcrypto", "", ADD},
    {"COMMENT ON TABLE t IS 'items'", "", ADD},
    {"", "", ADD},
    {"-- only a comment\n", "", ADD},
};
/* clang-format on */

#define CASE_COUNT (sizeof(cases) / sizeof(cases[0]))

/* "rule:severity ..." of the findings that count (not allowed). */
static void describe(const dc_lint_result_t *r, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < r->count; i++) {
        const dc_lint_finding_t *f = &r->findings[i];
        if (f->allowed)
            continue;
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s:%s", len ? " " : "", f->rule->id,
                 dc_lint_severity_name(f->rule->severity));
    }
}

static void lint_ok(const char *sql, dc_lint_result_t *r)
{
    dc_error_t err;
    dc_error_clear(&err);
    dc_lint_result_init(r);
    if (dc_lint_sql(sql, "m.sql", r, &err) != 0)
        fail_msg("lint failed on <%s>: %s", sql, err.message);
}

static void test_statement_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < CASE_COUNT; i++) {
        const lint_case_t *c = &cases[i];
        dc_lint_result_t r;
        char got[1024];
        lint_ok(c->sql, &r);
        describe(&r, got, sizeof(got));
        if (strcmp(got, c->expect) != 0)
            fail_msg("case %zu <%s>:\n  expected [%s]\n  got      [%s]", i, c->sql, c->expect, got);
        assert_int_equal(r.migration_count, 1);
        if (r.migrations[0].cls != c->cls)
            fail_msg("case %zu <%s>: class %s, expected %s", i, c->sql,
                     dc_lint_class_name(r.migrations[0].cls), dc_lint_class_name(c->cls));
        dc_lint_result_free(&r);
    }
}

/* Every rule is proved by at least one case of the table (unknown-allow-rule by the allow test). */
static void test_every_rule_has_a_case(void **state)
{
    (void)state;
    size_t count;
    const dc_lint_rule_t *rules = dc_lint_rules(&count);
    for (size_t i = 0; i < count; i++) {
        char token[96];
        bool found = strcmp(rules[i].id, "unknown-allow-rule") == 0;
        snprintf(token, sizeof(token), "%s:%s", rules[i].id,
                 dc_lint_severity_name(rules[i].severity));
        for (size_t c = 0; c < CASE_COUNT && !found; c++)
            found = strstr(cases[c].expect, token) != NULL;
        if (!found)
            fail_msg("no case of the statement table expects %s", token);
    }
}

/* The severity policy of the issue, independent of the table above. */
static void test_severity_policy(void **state)
{
    (void)state;
    static const char *const errors[] = {"drop-table",
                                         "drop-column",
                                         "rename-table",
                                         "rename-column",
                                         "change-column-type",
                                         "add-not-null-column-without-default",
                                         "constraint-without-not-valid",
                                         "index-not-concurrent",
                                         "unique-constraint-without-index",
                                         "truncate",
                                         "table-rewrite-or-exclusive-lock"};
    static const char *const warnings[] = {"set-not-null",           "update-without-where",
                                           "delete-without-where",   "missing-lock-timeout",
                                           "concurrently-not-alone", "widen-column-type"};
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        const dc_lint_rule_t *r = dc_lint_rule_find(errors[i]);
        assert_non_null(r);
        assert_int_equal(r->severity, DC_LINT_ERROR);
    }
    for (size_t i = 0; i < sizeof(warnings) / sizeof(warnings[0]); i++) {
        const dc_lint_rule_t *r = dc_lint_rule_find(warnings[i]);
        assert_non_null(r);
        assert_int_equal(r->severity, DC_LINT_WARNING);
    }
    assert_null(dc_lint_rule_find("no-such-rule"));
}

/* Every rule has a hint, and the README's rule table names every rule. */
static void test_rules_documented(void **state)
{
    (void)state;
    const char *src = getenv("DC_SOURCE_DIR");
    if (src == NULL)
        skip();
    char *path = dc_sprintf("%s/README.md", src);
    FILE *f = fopen(path, "r");
    free(path);
    assert_non_null(f);
    static char readme[1 << 20];
    size_t n = fread(readme, 1, sizeof(readme) - 1, f);
    fclose(f);
    readme[n] = '\0';
    size_t count;
    const dc_lint_rule_t *rules = dc_lint_rules(&count);
    assert_true(count >= 16);
    for (size_t i = 0; i < count; i++) {
        char cell[96];
        assert_true(strlen(rules[i].hint) > 20);
        assert_true(strlen(rules[i].summary) > 10);
        snprintf(cell, sizeof(cell), "| `%s` |", rules[i].id);
        if (strstr(readme, cell) == NULL)
            fail_msg("README.md's rule table has no row %s", cell);
    }
}

static void test_lines_and_statements(void **state)
{
    (void)state;
    const char *sql = "-- A migration\n"
                      "/* a block comment\n"
                      "   over lines */\n"
                      "SET lock_timeout = '5s';\n"
                      "\n"
                      "-- DropColumn\n"
                      "ALTER TABLE \"t\"\n"
                      "    DROP COLUMN   \"b\";  SELECT 'é';\n"
                      "TRUNCATE t; TRUNCATE u;\n";
    dc_lint_result_t r;
    lint_ok(sql, &r);
    assert_int_equal(r.count, 3);
    assert_string_equal(r.findings[0].rule->id, "drop-column");
    assert_int_equal(r.findings[0].line, 7);
    assert_string_equal(r.findings[0].statement, "ALTER TABLE \"t\" DROP COLUMN \"b\"");
    assert_string_equal(r.findings[0].file, "m.sql");
    assert_non_null(strstr(r.findings[0].message, "\"b\""));
    assert_int_equal(r.findings[1].line, 9);
    assert_string_equal(r.findings[1].statement, "TRUNCATE t");
    assert_int_equal(r.findings[2].line, 9);
    assert_string_equal(r.findings[2].statement, "TRUNCATE u");
    assert_int_equal(r.migrations[0].statements, 5);
    assert_int_equal(r.errors, 3);
    dc_lint_result_free(&r);

    /* A long statement is shortened, on a character boundary. */
    dc_buf_t long_sql = {0};
    dc_buf_appendf(&long_sql, "%sUPDATE t SET a = '", LT);
    for (int i = 0; i < 300; i++)
        dc_buf_appendf(&long_sql, "é");
    dc_buf_appendf(&long_sql, "'");
    lint_ok(long_sql.data, &r);
    assert_int_equal(r.count, 1);
    size_t len = strlen(r.findings[0].statement);
    assert_true(len <= 203 && len > 100);
    assert_string_equal(r.findings[0].statement + len - 3, "...");
    assert_true(((unsigned char)r.findings[0].statement[len - 4] & 0xC0) != 0xC0);
    assert_int_equal(r.findings[0].line, 2);
    dc_buf_free(&long_sql);
    dc_lint_result_free(&r);
}

static void test_allow_comments(void **state)
{
    (void)state;
    const char *sql = LT "-- deployctl:allow drop-column -- unused since v2\n"
                         "ALTER TABLE t DROP COLUMN a;\n"
                         "-- deployctl:allow rename-column,change-column-type\n"
                         "-- RenameColumn\n"
                         "ALTER TABLE t RENAME COLUMN b TO c;\n"
                         "-- deployctl:allow drop-table\n"
                         "\n"
                         "DROP TABLE x;\n"
                         "TRUNCATE y; -- deployctl:allow drop-table\n"
                         "DROP TABLE z;\n"
                         "-- Deployctl:Allow TRUNCATE frobnicate\n"
                         "TRUNCATE w;\n";
    dc_lint_result_t r;
    lint_ok(sql, &r);
    char got[1024];
    describe(&r, got, sizeof(got));
    /* The blank line and the same-line comment do not count; the unknown rule is named. */
    assert_string_equal(got, "drop-table:error truncate:error drop-table:error "
                             "unknown-allow-rule:warning");
    assert_int_equal(r.allowed, 3);
    assert_int_equal(r.errors, 3);
    assert_int_equal(r.warnings, 1);
    assert_int_equal(r.migrations[0].allowed, 3);
    assert_true(r.findings[0].allowed);
    assert_string_equal(r.findings[0].rule->id, "drop-column");
    assert_int_equal(r.findings[0].line, 3);
    assert_int_equal(r.findings[1].line, 6);
    assert_true(r.findings[1].allowed);
    dc_lint_result_free(&r);

    /* Files written on Windows: CRLF line ends change neither lines nor allow comments. */
    lint_ok("SET lock_timeout = '5s';\r\n\r\n-- deployctl:allow drop-table\r\nDROP TABLE a;\r\n"
            "DROP TABLE b;\r\n",
            &r);
    assert_int_equal(r.count, 2);
    assert_true(r.findings[0].allowed);
    assert_int_equal(r.findings[0].line, 4);
    assert_false(r.findings[1].allowed);
    assert_int_equal(r.findings[1].line, 5);
    assert_string_equal(r.findings[1].statement, "DROP TABLE b");
    dc_lint_result_free(&r);

    /* One comment may accept several findings of one statement. */
    lint_ok("-- deployctl:allow missing-lock-timeout drop-column\nALTER TABLE t DROP COLUMN a", &r);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.allowed, 2);
    assert_int_equal(r.errors + r.warnings, 0);
    dc_lint_result_free(&r);
}

static void test_syntax_error(void **state)
{
    (void)state;
    dc_lint_result_t r;
    dc_error_t err;
    dc_error_clear(&err);
    dc_lint_result_init(&r);
    const char *sql = "-- héllo wörld\nSELECT 'ü';\nALTER TABLE t ADD COLUMN c int;\n"
                      "CREATE TABL x (a int);\n";
    assert_int_equal(dc_lint_sql(sql, "20240101_x/migration.sql", &r, &err), -1);
    if (strstr(err.message, "20240101_x/migration.sql:4:") == NULL ||
        strstr(err.message, "syntax error") == NULL || strstr(err.message, "TABL") == NULL)
        fail_msg("syntax error message: %s", err.message);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.migration_count, 0);
    dc_lint_result_free(&r);
}

static void test_json(void **state)
{
    (void)state;
    dc_lint_result_t r;
    lint_ok("-- deployctl:allow truncate\nTRUNCATE a;\nALTER TABLE t\n  DROP COLUMN c;\n", &r);
    char *text = dc_lint_to_json(&r);
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    assert_non_null(arr);
    /* missing-lock-timeout at line 2 is not allowed; truncate is; drop-column at line 3. */
    assert_int_equal(json_array_size(arr), 2);
    json_t *f = json_array_get(arr, 1);
    assert_int_equal(json_object_size(f), 7);
    assert_string_equal(json_string_value(json_object_get(f, "file")), "m.sql");
    assert_int_equal(json_integer_value(json_object_get(f, "line")), 3);
    assert_string_equal(json_string_value(json_object_get(f, "statement")),
                        "ALTER TABLE t DROP COLUMN c");
    assert_string_equal(json_string_value(json_object_get(f, "rule")), "drop-column");
    assert_string_equal(json_string_value(json_object_get(f, "severity")), "error");
    assert_string_equal(json_string_value(json_object_get(f, "class")), "destructive");
    assert_non_null(strstr(json_string_value(json_object_get(f, "hint")), "Expand/contract"));
    f = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(f, "rule")), "missing-lock-timeout");
    assert_string_equal(json_string_value(json_object_get(f, "class")), "destructive");
    json_decref(arr);
    free(text);
    dc_lint_result_free(&r);
}

/* The seed's five scenarios, done the safe way, as one history: the class of each step, and
 * the one finding that remains (the contract step's drop, accepted once nothing reads it). */
static void test_seed_scenarios(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        dc_lint_class_t cls;
        const char *expect;
    } steps[] = {
        /* 1: add a nullable column */
        {LT "ALTER TABLE \"users\" ADD COLUMN \"preferences\" JSONB;", ADD, ""},
        /* 2: rename batch to batch_number by expand/contract */
        {LT "ALTER TABLE \"inventory_items\" ADD COLUMN \"batch_number\" TEXT;", ADD, ""},
        {LT "UPDATE \"inventory_items\" SET \"batch_number\" = \"batch\" "
            "WHERE \"batch_number\" IS NULL AND \"id\" BETWEEN 1 AND 10000;",
         TRA, ""},
        {LT "ALTER TABLE \"inventory_items\" ADD CONSTRAINT \"bn_nn\" "
            "CHECK (\"batch_number\" IS NOT NULL) NOT VALID;",
         ADD, ""},
        /* in a migration of its own: VALIDATE only takes SHARE UPDATE EXCLUSIVE */
        {LT "ALTER TABLE \"inventory_items\" VALIDATE CONSTRAINT \"bn_nn\";", ADD, ""},
        {LT "ALTER TABLE \"inventory_items\" ALTER COLUMN \"batch_number\" SET NOT NULL;", TRA,
         "set-not-null:warning"},
        {LT "-- deployctl:allow drop-column -- no running version reads it since v2.4\n"
            "ALTER TABLE \"inventory_items\" DROP COLUMN \"batch\";",
         DES, ""},
        /* 3: an index, concurrently, alone */
        {"CREATE INDEX CONCURRENTLY \"idx_inventory_items_name_batch\" "
         "ON \"inventory_items\" (\"item_name\", \"batch_number\");",
         ADD, ""},
        /* 4: quantity to decimal by expand/contract */
        {LT "ALTER TABLE \"inventory_items\" ADD COLUMN \"quantity_decimal\" DECIMAL(12,3);", ADD,
         ""},
        {LT "UPDATE \"inventory_items\" SET \"quantity_decimal\" = \"quantity\"::decimal "
            "WHERE \"quantity_decimal\" IS NULL;",
         TRA, ""},
        /* 5: remove a column, without waiting: the error that remains */
        {LT "ALTER TABLE \"users\" DROP COLUMN \"name\";", DES, "drop-column:error"},
    };
    dc_lint_result_t all;
    dc_lint_result_init(&all);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        dc_lint_result_t one;
        char got[512];
        lint_ok(steps[i].sql, &one);
        describe(&one, got, sizeof(got));
        if (strcmp(got, steps[i].expect) != 0 || one.migrations[0].cls != steps[i].cls)
            fail_msg("step %zu: [%s] %s, expected [%s] %s", i, got,
                     dc_lint_class_name(one.migrations[0].cls), steps[i].expect,
                     dc_lint_class_name(steps[i].cls));
        dc_lint_result_free(&one);
        dc_error_t err;
        assert_int_equal(dc_lint_sql(steps[i].sql, "step.sql", &all, &err), 0);
        /* The expand steps of scenario 1 and 2 leave the old version working. */
        if (i < 2)
            assert_true(dc_lint_all_additive(&all));
    }
    assert_false(dc_lint_all_additive(&all));
    assert_int_equal(dc_lint_worst_class(&all), DC_LINT_DESTRUCTIVE);
    assert_int_equal(all.migration_count, sizeof(steps) / sizeof(steps[0]));
    assert_int_equal(all.errors, 1);
    assert_int_equal(all.warnings, 1);
    assert_int_equal(all.allowed, 1);
    dc_lint_result_free(&all);
}

/* ---- directories ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = dc_sprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

static void make_dir(const char *dir, const char *name)
{
    char *path = dc_sprintf("%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
    free(path);
}

static void test_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/dc-test-lint-XXXXXX";
    assert_non_null(mkdtemp(dir));
    make_dir(dir, "20240201000000_drop_batch");
    make_dir(dir, "20240101000000_init");
    make_dir(dir, "notes");
    write_file(dir, "migration_lock.toml", "provider = \"postgresql\"\n");
    write_file(dir, "20240101000000_init/migration.sql",
               "-- CreateTable\nCREATE TABLE \"users\" (\"id\" TEXT NOT NULL,\n"
               "    CONSTRAINT \"users_pkey\" PRIMARY KEY (\"id\"));\n"
               "CREATE UNIQUE INDEX \"users_id_key\" ON \"users\"(\"id\");\n");
    write_file(dir, "20240101000000_init/down.sql", "DROP TABLE \"users\";\n");
    write_file(dir, "20240201000000_drop_batch/migration.sql",
               "SET lock_timeout = '5s';\nALTER TABLE \"users\" DROP COLUMN \"batch\";\n");

    dc_lint_result_t r;
    dc_error_t err;
    dc_error_clear(&err);
    dc_lint_result_init(&r);
    if (dc_lint_dir(dir, &r, &err) != 0)
        fail_msg("%s", err.message);
    assert_int_equal(r.migration_count, 2);
    assert_string_equal(r.migrations[0].name, "20240101000000_init");
    assert_int_equal(r.migrations[0].cls, DC_LINT_ADDITIVE);
    assert_int_equal(r.migrations[0].statements, 2);
    assert_string_equal(r.migrations[1].name, "20240201000000_drop_batch");
    assert_int_equal(r.migrations[1].cls, DC_LINT_DESTRUCTIVE);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.findings[0].file, "20240201000000_drop_batch/migration.sql");
    assert_int_equal(r.findings[0].line, 2);
    assert_int_equal(dc_lint_worst_class(&r), DC_LINT_DESTRUCTIVE);
    assert_false(dc_lint_all_additive(&r));
    dc_lint_result_free(&r);

    /* One migration by name, as release and check lint the pending ones; a trailing slash
     * does not double in the paths. */
    char *slashed = dc_sprintf("%s/", dir);
    dc_lint_result_init(&r);
    assert_int_equal(dc_lint_migration(dir, "20240201000000_drop_batch", &r, &err), 0);
    assert_int_equal(r.migration_count, 1);
    assert_int_equal(r.migrations[0].cls, DC_LINT_DESTRUCTIVE);
    assert_string_equal(r.findings[0].file, "20240201000000_drop_batch/migration.sql");
    write_file(dir, "20240201000000_drop_batch/migration.sql", "ALTER TABLE;\n");
    assert_int_equal(dc_lint_dir(slashed, &r, &err), -1);
    if (strstr(err.message, "//") != NULL || strstr(err.message, "migration.sql:1:") == NULL)
        fail_msg("syntax error message: %s", err.message);
    write_file(dir, "20240201000000_drop_batch/migration.sql",
               "SET lock_timeout = '5s';\nALTER TABLE \"users\" DROP COLUMN \"batch\";\n");
    free(slashed);
    dc_lint_result_free(&r);

    /* A single file lints as one migration named by its path. */
    char *file = dc_sprintf("%s/20240101000000_init/migration.sql", dir);
    dc_lint_result_init(&r);
    assert_int_equal(dc_lint_dir(file, &r, &err), 0);
    assert_int_equal(r.migration_count, 1);
    assert_true(dc_lint_all_additive(&r));
    dc_lint_result_free(&r);

    /* A syntax error names the file a user can open. */
    write_file(dir, "20240201000000_drop_batch/migration.sql", "ALTER TABLE;\n");
    dc_lint_result_init(&r);
    assert_int_equal(dc_lint_dir(dir, &r, &err), -1);
    if (strstr(err.message, "20240201000000_drop_batch/migration.sql:1:") == NULL)
        fail_msg("syntax error message: %s", err.message);
    dc_lint_result_free(&r);

    char *cmd = dc_sprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(file);

    /* A missing directory says how to name one. */
    dc_lint_result_init(&r);
    assert_int_equal(dc_lint_dir(dir, &r, &err), -1);
    assert_non_null(strstr(err.message, "--migrations"));
    dc_lint_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_table),      cmocka_unit_test(test_every_rule_has_a_case),
        cmocka_unit_test(test_severity_policy),      cmocka_unit_test(test_rules_documented),
        cmocka_unit_test(test_lines_and_statements), cmocka_unit_test(test_allow_comments),
        cmocka_unit_test(test_syntax_error),         cmocka_unit_test(test_json),
        cmocka_unit_test(test_seed_scenarios),       cmocka_unit_test(test_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
