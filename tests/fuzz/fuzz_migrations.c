/* libFuzzer target: a migration's SQL as deployctl reads it. The input is the migration.sql of
 * a one-migration directory, read by the runner's directory reader (dc_migrate_read_dir), split
 * and classified by dc_migrate_parse_script (PostgreSQL's parser, libpg_query), and linted
 * (dc_lint_dir: the directory reader again, then lint's classification of each parse tree). */
#include "deployctl/lint.h"
#include "deployctl/migrate.h"
#include "fuzz_common.h"

static char sql_path[160];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[160];
    fuzz_setup("migrations");
    snprintf(path, sizeof(path), "%s/migration_lock.toml", fuzz_dir);
    const char lock[] = "provider = \"postgresql\"\n";
    fuzz_write_file(path, lock, sizeof(lock) - 1);
    snprintf(path, sizeof(path), "%s/20260101000000_init", fuzz_dir);
    if (mkdir(path, 0700) != 0)
        abort();
    snprintf(sql_path, sizeof(sql_path), "%s/migration.sql", path);
    return 0;
}

static void read_dir(void)
{
    dc_migration_set_t set;
    dc_error_t err = {0};
    memset(&set, 0, sizeof(set));
    if (dc_migrate_read_dir(fuzz_dir, &set, &err) == 0) {
        if (set.count != 1)
            abort();
        dc_migrate_script_t script;
        memset(&script, 0, sizeof(script));
        if (dc_migrate_parse_script(set.items[0].sql, set.items[0].name, &script, &err) == 0) {
            for (size_t i = 0; i < script.count; i++) {
                if (script.stmts[i].text == NULL || script.stmts[i].line < 1)
                    abort();
            }
        } else if (err.message[0] == '\0') {
            abort();
        }
        dc_migrate_script_free(&script);
        (void)dc_migrate_checksum_matches(set.items[0].sql, set.items[0].sql_len,
                                          set.items[0].checksum);
    } else if (err.message[0] == '\0') {
        abort();
    }
    dc_migrate_set_free(&set);
}

static void lint_dir(void)
{
    dc_lint_result_t result;
    dc_error_t err = {0};
    dc_lint_result_init(&result);
    if (dc_lint_dir(fuzz_dir, &result, &err) == 0) {
        (void)dc_lint_worst_class(&result);
        char *json = dc_lint_to_json(&result);
        if (json == NULL)
            abort();
        free(json);
    } else if (err.message[0] == '\0') {
        abort();
    }
    dc_lint_result_free(&result);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write_file(sql_path, data, size);
    read_dir();
    lint_dir();
    return 0;
}
