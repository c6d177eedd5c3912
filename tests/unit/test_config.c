/* Proves the option table is consistent and that settings resolve default < file < env < flag,
 * with INI typos and invalid values refused by messages that say where the value came from. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/config.h"
#include "deployctl/util.h"

typedef struct fixture {
    char dir[64];
    char *path; /* <dir>/deployctl.conf */
    dc_config_t cfg;
} fixture_t;

/* Every variable the option table reads, so the caller's environment cannot leak in. */
static void clear_environment(void)
{
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        for (int e = 0; e < DC_OPT_ENV_MAX; e++) {
            if (dc_options[i].env[e] != NULL)
                unsetenv(dc_options[i].env[e]);
        }
    }
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/dc-test-config-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    fx->path = dc_sprintf("%s/deployctl.conf", fx->dir);
    dc_config_init(&fx->cfg);
    clear_environment();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    clear_environment();
    dc_config_free(&fx->cfg);
    unlink(fx->path);
    int rc = rmdir(fx->dir);
    free(fx->path);
    free(fx);
    return rc;
}

static void write_file(fixture_t *fx, const char *text)
{
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(fx->path, 0600); /* as a config file that may hold a password should be */
}

static void load(fixture_t *fx, const char *text)
{
    dc_error_t err = {0};
    write_file(fx, text);
    if (dc_config_load_file(&fx->cfg, fx->path, &err) != 0)
        fail_msg("dc_config_load_file: %s", err.message);
}

static void finish_ok(fixture_t *fx)
{
    dc_error_t err = {0};
    if (dc_config_finish(&fx->cfg, &err) != 0)
        fail_msg("dc_config_finish: %s", err.message);
}

/* Expects dc_config_finish to refuse, naming the option and every word in `where`. */
static void check_finish_refuses(fixture_t *fx, dc_opt_id_t id, const char *value,
                                 const char *where)
{
    dc_error_t err = {0};
    if (dc_config_finish(&fx->cfg, &err) != -1)
        fail_msg("'%s' for %s was accepted", value, dc_options[id].name);
    if (strstr(err.message, dc_options[id].name) == NULL)
        fail_msg("error does not name the option %s: %s", dc_options[id].name, err.message);
    if (strstr(err.message, value) == NULL)
        fail_msg("error does not show the value '%s': %s", value, err.message);
    if (strstr(err.message, where) == NULL)
        fail_msg("error does not say the value came from %s: %s", where, err.message);
}

/* ---- the table ---- */

static void test_option_table(void **state)
{
    (void)state;
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        const dc_option_t *o = &dc_options[i];
        if ((int)o->id != i)
            fail_msg("dc_options[%d].id is %d (%s)", i, (int)o->id, o->name ? o->name : "?");
        assert_non_null(o->name);
        assert_true(o->name[0] != '\0' && o->name[0] != '-');
        assert_non_null(o->help);
        assert_ptr_equal(dc_option_by_name(o->name), o);
        if (o->short_name != 0)
            assert_ptr_equal(dc_option_by_short(o->short_name), o);
        if (o->type == DC_TYPE_ENUM)
            assert_non_null(o->choices);
        if (o->type == DC_TYPE_INT || o->type == DC_TYPE_SIZE)
            assert_true(o->min <= o->max);
        if (o->config_key != NULL) {
            const char *dot = strchr(o->config_key, '.');
            assert_non_null(dot);
            assert_true(dot != o->config_key && dot[1] != '\0');
        }
        for (int j = i + 1; j < DC_OPT_COUNT; j++) {
            const dc_option_t *p = &dc_options[j];
            if (strcmp(o->name, p->name) == 0)
                fail_msg("option name --%s used twice", o->name);
            if (o->short_name != 0 && o->short_name == p->short_name)
                fail_msg("short option -%c used by --%s and --%s", o->short_name, o->name, p->name);
            if (o->config_key && p->config_key && strcasecmp(o->config_key, p->config_key) == 0)
                fail_msg("config key %s used twice", o->config_key);
            for (int a = 0; a < DC_OPT_ENV_MAX; a++) {
                for (int b = 0; b < DC_OPT_ENV_MAX; b++) {
                    if (o->env[a] && p->env[b] && strcmp(o->env[a], p->env[b]) == 0)
                        fail_msg("environment variable %s used twice", o->env[a]);
                }
            }
        }
    }
    assert_null(dc_option_by_name("no-such-option"));
    assert_null(dc_option_by_short(0));
}

static void test_defaults_are_valid(void **state)
{
    fixture_t *fx = *state;
    finish_ok(fx);
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        const dc_setting_t *s = &fx->cfg.settings[i];
        if (dc_options[i].default_value != NULL) {
            assert_string_equal(s->value, dc_options[i].default_value);
            assert_int_equal(s->source, DC_SRC_DEFAULT);
        } else {
            assert_null(s->value);
        }
    }
    assert_false(dc_config_flag(&fx->cfg, DC_OPT_JSON));
}

/* ---- precedence ---- */

static void test_precedence(void **state)
{
    fixture_t *fx = *state;
    /* The flag comes first, as the CLI parses before reading the file: it must still win. */
    dc_config_offer(&fx->cfg, DC_OPT_JOBS, "12", DC_SRC_FLAG, "--jobs");
    load(fx, "# deployctl test configuration\n"
             "[database]\n"
             "url = postgresql://file@db/app\n"
             "\n"
             "[store]\n"
             "url = file:///from-file\n"
             "[backup]\n"
             "jobs = 4\n"
             "compression_level = 5\n"
             "chunk_size = 1MiB\n"
             "[log]\n"
             "level = warning\n");
    setenv("DEPLOYCTL_JOBS", "8", 1);
    setenv("DEPLOYCTL_STORE", "file:///from-env", 1);
    finish_ok(fx);
    const dc_config_t *cfg = &fx->cfg;

    /* flag > env > file */
    assert_string_equal(dc_config_get(cfg, DC_OPT_JOBS), "12");
    assert_int_equal(dc_config_int(cfg, DC_OPT_JOBS), 12);
    assert_int_equal(cfg->settings[DC_OPT_JOBS].source, DC_SRC_FLAG);
    assert_string_equal(cfg->settings[DC_OPT_JOBS].origin, "--jobs");

    /* env > file */
    assert_string_equal(dc_config_get(cfg, DC_OPT_STORE), "file:///from-env");
    assert_int_equal(cfg->settings[DC_OPT_STORE].source, DC_SRC_ENV);
    assert_string_equal(cfg->settings[DC_OPT_STORE].origin, "DEPLOYCTL_STORE");

    /* file > default */
    assert_string_equal(dc_config_get(cfg, DC_OPT_DATABASE), "postgresql://file@db/app");
    assert_int_equal(cfg->settings[DC_OPT_DATABASE].source, DC_SRC_FILE);
    assert_non_null(strstr(cfg->settings[DC_OPT_DATABASE].origin, fx->path));
    assert_int_equal(dc_config_int(cfg, DC_OPT_COMPRESS_LEVEL), 5);
    assert_int_equal(cfg->settings[DC_OPT_COMPRESS_LEVEL].source, DC_SRC_FILE);
    assert_int_equal(dc_config_size(cfg, DC_OPT_CHUNK_SIZE), 1024 * 1024);
    assert_string_equal(dc_config_get(cfg, DC_OPT_LOG_LEVEL), "warning");

    /* default where nothing else was said */
    const char *lock_default = dc_options[DC_OPT_LOCK_TIMEOUT].default_value;
    assert_non_null(lock_default);
    assert_string_equal(dc_config_get(cfg, DC_OPT_LOCK_TIMEOUT), lock_default);
    assert_int_equal(cfg->settings[DC_OPT_LOCK_TIMEOUT].source, DC_SRC_DEFAULT);
    uint64_t ms = 0;
    assert_int_equal(dc_parse_duration_ms(lock_default, &ms), 0);
    assert_int_equal(dc_config_duration_ms(cfg, DC_OPT_LOCK_TIMEOUT), ms);
    assert_string_equal(dc_config_get(cfg, DC_OPT_LOG_FORMAT),
                        dc_options[DC_OPT_LOG_FORMAT].default_value);

    assert_non_null(cfg->config_path);
    assert_string_equal(cfg->config_path, fx->path);
}

static void test_env_beats_file(void **state)
{
    fixture_t *fx = *state;
    load(fx, "[backup]\njobs = 4\nlock_timeout = 5m\n");
    setenv("DEPLOYCTL_JOBS", "8", 1);
    finish_ok(fx);
    assert_int_equal(dc_config_int(&fx->cfg, DC_OPT_JOBS), 8);
    assert_string_equal(fx->cfg.settings[DC_OPT_JOBS].origin, "DEPLOYCTL_JOBS");
    assert_int_equal(dc_config_duration_ms(&fx->cfg, DC_OPT_LOCK_TIMEOUT), 5 * 60 * 1000);
    assert_int_equal(fx->cfg.settings[DC_OPT_LOCK_TIMEOUT].source, DC_SRC_FILE);
}

static void test_offer_order(void **state)
{
    fixture_t *fx = *state;
    dc_config_t *cfg = &fx->cfg;
    /* A lower source offered later does not override; the same source later wins. */
    dc_config_offer(cfg, DC_OPT_TAG, "nightly", DC_SRC_FLAG, "--tag");
    dc_config_offer(cfg, DC_OPT_TAG, "from-file", DC_SRC_FILE, "x.conf");
    dc_config_offer(cfg, DC_OPT_TAG, "from-env", DC_SRC_ENV, "ENV");
    dc_config_offer(cfg, DC_OPT_TAG, "default", DC_SRC_DEFAULT, "default");
    assert_string_equal(dc_config_get(cfg, DC_OPT_TAG), "nightly");
    dc_config_offer(cfg, DC_OPT_TAG, "release", DC_SRC_FLAG, "--tag");
    assert_string_equal(dc_config_get(cfg, DC_OPT_TAG), "release");

    dc_config_offer(cfg, DC_OPT_JOBS, "2", DC_SRC_FILE, "a.conf");
    dc_config_offer(cfg, DC_OPT_JOBS, "3", DC_SRC_ENV, "DEPLOYCTL_JOBS");
    assert_string_equal(dc_config_get(cfg, DC_OPT_JOBS), "3");
    finish_ok(fx);
    assert_string_equal(dc_config_get(cfg, DC_OPT_TAG), "release");
    assert_int_equal(dc_config_int(cfg, DC_OPT_JOBS), 3);
}

static void test_database_url_direct_wins(void **state)
{
    fixture_t *fx = *state;
    load(fx, "[database]\nurl = postgresql://file@db/app\n");
    setenv("DATABASE_URL", "postgresql://pooled@pgbouncer/app", 1);
    setenv("DATABASE_URL_DIRECT", "postgresql://direct@db/app", 1);
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://direct@db/app");
    assert_string_equal(fx->cfg.settings[DC_OPT_DATABASE].origin, "DATABASE_URL_DIRECT");

    /* Without the direct URL, DATABASE_URL is used (over the file). */
    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    unsetenv("DATABASE_URL_DIRECT");
    load(fx, "[database]\nurl = postgresql://file@db/app\n");
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE),
                        "postgresql://pooled@pgbouncer/app");
    assert_string_equal(fx->cfg.settings[DC_OPT_DATABASE].origin, "DATABASE_URL");

    /* The flag beats both. */
    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    setenv("DATABASE_URL_DIRECT", "postgresql://direct@db/app", 1);
    dc_config_offer(&fx->cfg, DC_OPT_DATABASE, "postgresql://flag@db/app", DC_SRC_FLAG,
                    "--database");
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://flag@db/app");
}

static void reset(fixture_t *fx)
{
    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
}

/* Prisma's convention: DATABASE_URL is the application's (pooled) URL once a direct one is
 * given beside it (DATABASE_URL_DIRECT or DIRECT_URL); alone it is the direct URL. */
static void test_pooled_url_precedence(void **state)
{
    fixture_t *fx = *state;
    static const char *const direct_vars[] = {"DATABASE_URL_DIRECT", "DIRECT_URL"};
    for (int i = 0; i < 2; i++) {
        reset(fx);
        clear_environment();
        setenv("DATABASE_URL", "postgresql://app@pgbouncer:6432/app", 1);
        setenv(direct_vars[i], "postgresql://direct@db/app", 1);
        finish_ok(fx);
        assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://direct@db/app");
        assert_string_equal(fx->cfg.settings[DC_OPT_DATABASE].origin, direct_vars[i]);
        assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL),
                            "postgresql://app@pgbouncer:6432/app");
        assert_string_equal(fx->cfg.settings[DC_OPT_POOLED_URL].origin, "DATABASE_URL");
    }
    /* both direct variables: DATABASE_URL_DIRECT wins */
    setenv("DATABASE_URL_DIRECT", "postgresql://first@db/app", 1);
    reset(fx);
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://first@db/app");

    /* DATABASE_URL alone: the direct URL, no pooled one */
    clear_environment();
    setenv("DATABASE_URL", "postgresql://only@db/app", 1);
    reset(fx);
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://only@db/app");
    assert_null(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL));

    /* DEPLOYCTL_POOLED_URL beats DATABASE_URL; the flag beats both; the file and its
     * environment's section sit below the environment */
    setenv("DIRECT_URL", "postgresql://direct@db/app", 1);
    setenv("DEPLOYCTL_POOLED_URL", "postgresql://explicit@pgbouncer/app", 1);
    reset(fx);
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL),
                        "postgresql://explicit@pgbouncer/app");
    reset(fx);
    dc_config_offer(&fx->cfg, DC_OPT_POOLED_URL, "postgresql://flag@pgbouncer/app", DC_SRC_FLAG,
                    "--pooled-url");
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL),
                        "postgresql://flag@pgbouncer/app");
    clear_environment();
    reset(fx);
    dc_config_offer(&fx->cfg, DC_OPT_ENV, "staging", DC_SRC_FLAG, "--env");
    load(fx, "[database]\npooled_url = postgresql://top@pgbouncer/app\n"
             "[env \"staging\"]\ndatabase.pooled_url = postgresql://staging@pgbouncer/app\n");
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL),
                        "postgresql://staging@pgbouncer/app");

    /* a direct URL from --database does not pair with the shell's
     * DATABASE_URL and DIRECT_URL (a dev .env): no pooled URL is derived */
    setenv("DATABASE_URL", "postgresql://dev@localhost/app", 1);
    setenv("DIRECT_URL", "postgresql://dev@localhost/app", 1);
    reset(fx);
    dc_config_offer(&fx->cfg, DC_OPT_DATABASE, "postgresql://prod@db/app", DC_SRC_FLAG,
                    "--database");
    finish_ok(fx);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://prod@db/app");
    assert_null(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL));

    /* the opt-out: --pooled-url none (or empty, or DEPLOYCTL_POOLED_URL=none) beats the pair */
    static const char *const none[] = {"none", "", "NONE"};
    setenv("DIRECT_URL", "postgresql://direct@db/app", 1);
    for (int i = 0; i < 3; i++) {
        reset(fx);
        dc_config_offer(&fx->cfg, DC_OPT_POOLED_URL, none[i], DC_SRC_FLAG, "--pooled-url");
        finish_ok(fx);
        assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), "postgresql://direct@db/app");
        assert_null(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL));
    }
    setenv("DEPLOYCTL_POOLED_URL", "none", 1);
    reset(fx);
    finish_ok(fx);
    assert_null(dc_config_get(&fx->cfg, DC_OPT_POOLED_URL));
    clear_environment();
}

/* ---- the INI file ---- */

static void check_load_refuses(fixture_t *fx, const char *text, const char *const *words)
{
    dc_error_t err = {0};
    write_file(fx, text);
    if (dc_config_load_file(&fx->cfg, fx->path, &err) != -1)
        fail_msg("config file accepted:\n%s", text);
    assert_non_null(strstr(err.message, fx->path));
    for (int i = 0; words[i] != NULL; i++) {
        if (strstr(err.message, words[i]) == NULL)
            fail_msg("error does not say '%s': %s", words[i], err.message);
    }
}

static void test_unknown_key(void **state)
{
    fixture_t *fx = *state;
    const char *words[] = {"line 4", "frobnicate", NULL};
    check_load_refuses(fx, "# comment\n[backup]\njobs = 4\nfrobnicate = 1\ntag_x = 2\n", words);

    const char *words2[] = {"line 4", "nosuch", NULL};
    check_load_refuses(fx, "[backup]\njobs = 4\n[nosuch]\nkey = 1\n", words2);

    /* A key outside any section. */
    const char *words3[] = {"line 1", "jobs", NULL};
    check_load_refuses(fx, "jobs = 4\n", words3);
}

static void test_malformed_line(void **state)
{
    fixture_t *fx = *state;
    const char *words[] = {"line 2", NULL};
    check_load_refuses(fx, "[backup]\njobs 4\n", words);
    const char *words2[] = {"line 3", NULL};
    check_load_refuses(fx, "[backup]\njobs = 4\n[unclosed\n", words2);
}

static void test_error_names_the_right_line(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    /* Line 2 is malformed, line 3 holds an unknown key. */
    write_file(fx, "[backup]\njobs 4\nfrobnicate = 1\n");
    assert_int_equal(dc_config_load_file(&fx->cfg, fx->path, &err), -1);
    assert_true(err.message[0] != '\0');
    /* Whichever problem it reports, the line number and the description are of one line. */
    bool line2 = strstr(err.message, "line 2") != NULL;
    bool line3 = strstr(err.message, "line 3") != NULL;
    bool names_key = strstr(err.message, "frobnicate") != NULL;
    if (!((line2 && !names_key) || (line3 && names_key)))
        fail_msg("line number and description disagree: %s", err.message);
}

static void test_long_value(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    /* Cloud databases hand out long URLs (IAM tokens, certificate paths, options). */
    dc_buf_t url = {0};
    dc_buf_appendf(&url, "postgresql://app@db.example.com:5432/app?sslmode=verify-full");
    while (url.len < 300)
        dc_buf_appendf(&url, "&application_name=deployctl-%zu", url.len);
    char *text = dc_sprintf("[database]\nurl = %s\n", url.data);
    write_file(fx, text);
    int rc = dc_config_load_file(&fx->cfg, fx->path, &err);
    /* libinih reads at most 200 bytes a line: config.c must carry longer values whole. */
    if (rc != 0)
        fail_msg("a %zu-byte URL was refused: %s", url.len, err.message);
    assert_string_equal(dc_config_get(&fx->cfg, DC_OPT_DATABASE), url.data);
    free(text);
    dc_buf_free(&url);
}

static void test_missing_file(void **state)
{
    fixture_t *fx = *state;
    dc_error_t err = {0};
    char *missing = dc_sprintf("%s/nope.conf", fx->dir);
    assert_int_equal(dc_config_load_file(&fx->cfg, missing, &err), -1);
    assert_non_null(strstr(err.message, missing));
    free(missing);
}

/* ---- invalid values ---- */

static void test_invalid_values(void **state)
{
    fixture_t *fx = *state;

    setenv("DEPLOYCTL_JOBS", "abc", 1);
    check_finish_refuses(fx, DC_OPT_JOBS, "abc", "DEPLOYCTL_JOBS");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    setenv("DEPLOYCTL_JOBS", "0", 1);
    check_finish_refuses(fx, DC_OPT_JOBS, "0", "DEPLOYCTL_JOBS");
    unsetenv("DEPLOYCTL_JOBS");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    dc_config_offer(&fx->cfg, DC_OPT_JOBS, "65", DC_SRC_FLAG, "--jobs");
    check_finish_refuses(fx, DC_OPT_JOBS, "65", "--jobs");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    load(fx, "[backup]\n\nchunk_size = 12XB\n");
    check_finish_refuses(fx, DC_OPT_CHUNK_SIZE, "12XB", fx->path);

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    load(fx, "[backup]\n\nchunk_size = 1k\n"); /* below the minimum */
    check_finish_refuses(fx, DC_OPT_CHUNK_SIZE, "1k", fx->path);
    /* The origin names the line of the bad value. */
    check_finish_refuses(fx, DC_OPT_CHUNK_SIZE, "1k", "line 3");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    setenv("DEPLOYCTL_LOCK_TIMEOUT", "soon", 1);
    check_finish_refuses(fx, DC_OPT_LOCK_TIMEOUT, "soon", "DEPLOYCTL_LOCK_TIMEOUT");
    unsetenv("DEPLOYCTL_LOCK_TIMEOUT");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    dc_config_offer(&fx->cfg, DC_OPT_LOG_FORMAT, "xml", DC_SRC_FLAG, "--log-format");
    check_finish_refuses(fx, DC_OPT_LOG_FORMAT, "xml", "--log-format");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    setenv("DEPLOYCTL_LOG_FORMAT", "xml", 1);
    check_finish_refuses(fx, DC_OPT_LOG_FORMAT, "xml", "DEPLOYCTL_LOG_FORMAT");
    unsetenv("DEPLOYCTL_LOG_FORMAT");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    setenv("DEPLOYCTL_COMPRESS_LEVEL", "20", 1);
    check_finish_refuses(fx, DC_OPT_COMPRESS_LEVEL, "20", "DEPLOYCTL_COMPRESS_LEVEL");
    unsetenv("DEPLOYCTL_COMPRESS_LEVEL");

    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    load(fx, "[log]\nlevel = loud\n");
    check_finish_refuses(fx, DC_OPT_LOG_LEVEL, "loud", fx->path);

    /* A valid value from a higher source hides an invalid one from a lower source. */
    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    load(fx, "[backup]\njobs = many\n");
    dc_config_offer(&fx->cfg, DC_OPT_JOBS, "2", DC_SRC_FLAG, "--jobs");
    finish_ok(fx);
    assert_int_equal(dc_config_int(&fx->cfg, DC_OPT_JOBS), 2);
}

/* The [retention] section: prune's rules and durations in days; a negative count refused. */
static void test_retention_section(void **state)
{
    fixture_t *fx = *state;
    load(fx, "[retention]\nkeep_daily = 7\nkeep_monthly = 12\nincomplete_grace = 2d\n");
    finish_ok(fx);
    assert_int_equal(dc_config_int(&fx->cfg, DC_OPT_KEEP_DAILY), 7);
    assert_int_equal(dc_config_int(&fx->cfg, DC_OPT_KEEP_MONTHLY), 12);
    assert_null(dc_config_get(&fx->cfg, DC_OPT_KEEP_LAST)); /* unset: the rule is off */
    assert_int_equal(dc_config_duration_ms(&fx->cfg, DC_OPT_INCOMPLETE_GRACE), 2ull * 86400000);
    assert_int_equal(dc_config_duration_ms(&fx->cfg, DC_OPT_PRE_RESTORE_WINDOW), 7ull * 86400000);
    dc_config_free(&fx->cfg);
    dc_config_init(&fx->cfg);
    load(fx, "[retention]\nkeep_last = -1\n");
    check_finish_refuses(fx, DC_OPT_KEEP_LAST, "-1", "line 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_table),
        cmocka_unit_test_setup_teardown(test_defaults_are_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pooled_url_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_beats_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_url_direct_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_names_the_right_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_section, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
