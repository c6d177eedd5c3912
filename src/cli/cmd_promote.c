/* `deployctl promote-check SOURCE TARGET`: whether what was released on one environment (staging)
 * is exactly what the next (production) is about to get, migration by migration, from both
 * databases' _prisma_migrations and the migrations directory. Exit 0 same, 4 with the diff. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/cli.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/util.h"

typedef struct env_db {
    char *url;    /* as libpq takes it */
    char *schema; /* ?schema= */
} env_db_t;

static int env_database(dc_cli_t *cli, const char *env, env_db_t *out, dc_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *path = cli->config.config_path;
    if (path == NULL)
        return dc_error_set(err, "promote-check compares environments of a config file: give "
                                 "--config FILE with [env \"NAME\"] sections");
    char *url = NULL;
    if (dc_config_env_value(path, env, DC_OPT_DATABASE, &url, err) != 0)
        return -1;
    if (url == NULL)
        return dc_error_set(err,
                            "environment '%s' has no database.url in %s: add it to its "
                            "[env \"%s\"] section",
                            env, path, env);
    dc_pg_register_secrets(url);
    out->url = dc_pg_url_for_libpq(url, &out->schema);
    free(url);
    return 0;
}

static void short_sum(const char *checksum, char *out)
{
    snprintf(out, 13, "%s", *checksum ? checksum : "-");
}

static void print_text(const dc_promote_result_t *r, const char *src, const char *dst)
{
    for (size_t i = 0; i < r->count; i++) {
        const dc_promote_diff_t *d = &r->diffs[i];
        char a[13], b[13];
        short_sum(d->source_checksum, a);
        short_sum(d->target_checksum, b);
        const char *what = dc_promote_diff_name(d->kind);
        printf("%s: %s (%s %s, %s %s)\n", d->name, what, src, a, dst, b);
    }
    printf("%zu migrations identical on %s and %s-after-deploy, %zu differences\n", r->same, src,
           dst, r->count);
}

static void print_json(const dc_promote_result_t *r, const char *src, const char *dst)
{
    json_t *diffs = json_array();
    for (size_t i = 0; i < r->count; i++) {
        const dc_promote_diff_t *d = &r->diffs[i];
        json_t *o =
            json_pack("{s:s, s:s}", "name", d->name, "difference", dc_promote_diff_name(d->kind));
        json_object_set_new(o, "source_checksum",
                            *d->source_checksum ? json_string(d->source_checksum) : json_null());
        json_object_set_new(o, "target_checksum",
                            *d->target_checksum ? json_string(d->target_checksum) : json_null());
        json_array_append_new(diffs, o);
    }
    json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:o}", "source", src, "target", dst, "same",
                          r->count == 0, "identical", (json_int_t)r->same, "differences", diffs);
    char *text = json_dumps(o, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(o);
}

int dc_cmd_promote_check(dc_cli_t *cli, dc_error_t *err)
{
    const char *src = cli->args[0], *dst = cli->args[1];
    dc_migrate_opts_t base;
    env_db_t a, b;
    memset(&b, 0, sizeof(b));
    int rc = env_database(cli, src, &a, err);
    if (rc == 0)
        rc = env_database(cli, dst, &b, err);
    /* Only reads: the directory and each database's history (no --database needed). */
    memset(&base, 0, sizeof(base));
    base.dir = dc_config_get(&cli->config, DC_OPT_MIGRATIONS);
    base.lock_timeout_ms = 5000;
    dc_promote_result_t r = {0};
    if (rc == 0) {
        dc_migrate_opts_t so = base, to = base;
        so.url = a.url;
        so.schema = a.schema;
        to.url = b.url;
        to.schema = b.schema;
        rc = dc_migrate_promote_check(&so, &to, &r, err);
    }
    if (rc == 0) {
        if (cli->json)
            print_json(&r, src, dst);
        else
            print_text(&r, src, dst);
        if (r.count > 0)
            rc = dc_error_set_code(err, DC_EXIT_PRECHECK,
                                   "%s would not get exactly what %s has: %zu difference(s) "
                                   "listed above",
                                   dst, src, r.count);
        else
            dc_log_info("%s would get exactly what %s has (%zu migrations)", dst, src, r.same);
    }
    dc_promote_result_free(&r);
    free(a.url);
    free(a.schema);
    free(b.url);
    free(b.schema);
    return rc;
}
