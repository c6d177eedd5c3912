/* Resolving settings: defaults < INI file (inih) < environment < flags, with every value
 * checked against its type and range, and errors that name where the bad value came from. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/config.h"
#include "deployctl/log.h"
#include "deployctl/util.h"

const char DC_DEFAULT_CONFIG_PATH[] = "/etc/deployctl/deployctl.conf";

void dc_config_init(dc_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

void dc_config_free(dc_config_t *cfg)
{
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        free(cfg->settings[i].value);
        free(cfg->settings[i].origin);
    }
    free(cfg->config_path);
    free(cfg->env_names);
    memset(cfg, 0, sizeof(*cfg));
}

void dc_config_offer(dc_config_t *cfg, dc_opt_id_t id, const char *value, dc_source_t source,
                     const char *origin)
{
    dc_setting_t *s = &cfg->settings[id];
    if (s->source > source)
        return;
    if (source == DC_SRC_FLAG && s->source == DC_SRC_FLAG && dc_options[id].repeatable) {
        char *joined = dc_sprintf("%s\n%s", s->value, value);
        free(s->value);
        s->value = joined;
        return;
    }
    free(s->value);
    free(s->origin);
    s->value = dc_strdup(value);
    s->source = source;
    s->origin = dc_strdup(origin);
}

#define MAX_LONG_VALUES 16
#define LONG_MARKER     "\x1d" /* stands for a value too long for inih's line buffer */

typedef struct ini_ctx {
    dc_config_t *cfg;
    const char *path;
    FILE *file;
    int line;       /* the line inih is looking at */
    int error_line; /* where first_error was found */
    char first_error[256];
    char *long_values[MAX_LONG_VALUES];
    int long_count;
} ini_ctx_t;

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    memmove(s, s + lead, n - lead + 1);
}

/* Debian's libinih reads lines of at most 200 bytes, and URLs with options or tokens are
 * longer. A longer "key = value" line reaches inih as "key = <marker><n>", and the handler puts
 * the value back. */
static void shorten_long_line(ini_ctx_t *ctx, char *full, char *str, int num)
{
    char *eq = strpbrk(full, "=:");
    const char *comment = full + strspn(full, " \t");
    if (*comment == ';' || *comment == '#') {
        snprintf(str, (size_t)num, ";\n");
        return;
    }
    if (eq == NULL || ctx->long_count == MAX_LONG_VALUES) {
        snprintf(str, (size_t)num, "%s", "[a line too long to read]\n");
        return;
    }
    char *value = eq + 1;
    char *inline_comment = strstr(value, " ;");
    if (inline_comment != NULL)
        *inline_comment = '\0';
    trim(value);
    ctx->long_values[ctx->long_count] = dc_strdup(value);
    *eq = '\0';
    snprintf(str, (size_t)num, "%.100s = " LONG_MARKER "%d\n", full, ctx->long_count++);
}

/* inih's reader: counts lines so that a setting's error names its own line. */
static char *read_line(char *str, int num, void *stream)
{
    ini_ctx_t *ctx = stream;
    char *full = NULL;
    size_t cap = 0;
    ssize_t n = getline(&full, &cap, ctx->file);
    if (n < 0) {
        free(full);
        return NULL;
    }
    ctx->line++;
    if (n < num)
        memcpy(str, full, (size_t)n + 1);
    else
        shorten_long_line(ctx, full, str, num);
    free(full);
    return str;
}

/* [env "staging"] (or [env staging]): the environment's name in out; false for other sections. */
static bool env_section(const char *section, char *out, size_t size)
{
    if (strncasecmp(section, "env", 3) != 0 || !isspace((unsigned char)section[3]))
        return false;
    const char *name = section + 4 + strspn(section + 4, " \t");
    size_t len = strlen(name);
    if (len >= 2 && name[0] == '"' && name[len - 1] == '"') {
        name++;
        len -= 2;
    }
    snprintf(out, size, "%.*s", (int)len, name);
    return len > 0;
}

/* Remembers an environment's name (for the error that lists them). */
static void note_env(dc_config_t *cfg, const char *name)
{
    const char *names = cfg->env_names ? cfg->env_names : "";
    size_t len = strlen(name);
    for (const char *p = names; (p = strstr(p, name)) != NULL; p += len) {
        if ((p == names || p[-1] == ' ') && (p[len] == '\0' || p[len] == ','))
            return;
    }
    char *joined = dc_sprintf("%s%s%s", names, *names ? ", " : "", name);
    free(cfg->env_names);
    cfg->env_names = joined;
}

const char *dc_config_env_name(const dc_config_t *cfg)
{
    const char *v = cfg->settings[DC_OPT_ENV].value;
    if (v == NULL || !*v)
        v = getenv("DEPLOYCTL_ENV");
    return v != NULL && *v ? v : NULL;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *ctx = user;
    char key[256];
    char origin[600];
    char env[128];
    int index;
    if (strncmp(value, LONG_MARKER, 1) == 0 && sscanf(value + 1, "%d", &index) == 1 && index >= 0 &&
        index < ctx->long_count)
        value = ctx->long_values[index];
    dc_source_t source = DC_SRC_FILE;
    bool offer = true;
    if (env_section(section, env, sizeof(env))) {
        /* Inside an environment's section keys are written whole: database.url = ... */
        snprintf(key, sizeof(key), "%s", name);
        note_env(ctx->cfg, env);
        const char *chosen = dc_config_env_name(ctx->cfg);
        offer = chosen != NULL && strcmp(chosen, env) == 0;
        ctx->cfg->env_found = ctx->cfg->env_found || offer;
        source = DC_SRC_FILE_ENV;
        snprintf(origin, sizeof(origin), "%s line %d [env \"%s\"]", ctx->path, ctx->line, env);
    } else {
        snprintf(key, sizeof(key), "%s.%s", section, name);
        snprintf(origin, sizeof(origin), "%s line %d", ctx->path, ctx->line);
    }
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        const dc_option_t *o = &dc_options[i];
        if (o->config_key != NULL && strcasecmp(o->config_key, key) == 0) {
            if (offer)
                dc_config_offer(ctx->cfg, o->id, value, source, origin);
            return 1;
        }
    }
    if (ctx->first_error[0] == '\0') {
        ctx->error_line = ctx->line;
        if (*section == '\0')
            snprintf(ctx->first_error, sizeof(ctx->first_error),
                     "setting '%s' is outside a [section]", name);
        else
            snprintf(ctx->first_error, sizeof(ctx->first_error),
                     "unknown setting '%s' (see etc/deployctl.conf for the known ones)", key);
    }
    return 0;
}

static bool url_has_password(const char *url)
{
    char *parse_error = NULL;
    bool found = false;
    PQconninfoOption *opts = PQconninfoParse(url, &parse_error);
    PQfreemem(parse_error);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val)
            found = true;
    }
    PQconninfoFree(opts);
    return found;
}

static void warn_if_exposed(const char *path, const dc_config_t *cfg)
{
    struct stat st;
    /* every URL setting that may carry a password (the app's pooled URL is as secret) */
    static const dc_opt_id_t urls[] = {DC_OPT_DATABASE, DC_OPT_POOLED_URL, DC_OPT_SCRATCH};
    bool has_password = false;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const dc_setting_t *s = &cfg->settings[urls[i]];
        has_password = has_password || (s->value != NULL && s->source >= DC_SRC_FILE &&
                                        s->source <= DC_SRC_FILE_ENV && url_has_password(s->value));
    }
    if (has_password && stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        dc_log_warn("config file %s holds a password and is readable by others; "
                    "chmod 600 it",
                    path);
    static const dc_opt_id_t secrets[] = {DC_OPT_S3_SECRET_ACCESS_KEY, DC_OPT_S3_SESSION_TOKEN};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        const dc_setting_t *s = &cfg->settings[secrets[i]];
        if (s->value != NULL && (s->source == DC_SRC_FILE || s->source == DC_SRC_FILE_ENV) &&
            stat(path, &st) == 0 && (st.st_mode & 077) != 0)
            dc_log_warn("config file %s holds [s3] %s and is readable by others; chmod 600 "
                        "it, or use secret_access_key_file",
                        path, dc_options[secrets[i]].config_key + 3);
    }
}

int dc_config_load_file(dc_config_t *cfg, const char *path, dc_error_t *err)
{
    ini_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = cfg;
    ctx.path = path;
    FILE *f = fopen(path, "r");
    ctx.file = f;
    if (f == NULL)
        return dc_error_set(err,
                            "cannot read config file %s: %s; fix the path given with "
                            "--config or DEPLOYCTL_CONFIG",
                            path, strerror(errno));
    int line = ini_parse_stream(read_line, &ctx, on_ini_value, &ctx);
    fclose(f);
    for (int i = 0; i < ctx.long_count; i++)
        free(ctx.long_values[i]);
    if (line != 0) {
        bool ours = ctx.first_error[0] != '\0' && ctx.error_line == line;
        return dc_error_set(err, "config file %s, line %d: %s", path, line,
                            ours ? ctx.first_error
                                 : "not a 'key = value' line or a [section] header");
    }
    free(cfg->config_path);
    cfg->config_path = dc_strdup(path);
    warn_if_exposed(path, cfg);
    return 0;
}

int dc_config_check_env(const dc_config_t *cfg, dc_error_t *err)
{
    const char *env = dc_config_env_name(cfg);
    if (env == NULL || cfg->env_found)
        return 0;
    if (cfg->config_path == NULL)
        return dc_error_set(err,
                            "environment '%s' was asked for (--env or DEPLOYCTL_ENV) but no config "
                            "file was read: give --config FILE with an [env \"%s\"] section",
                            env, env);
    return dc_error_set(err,
                        "unknown environment '%s' (--env or DEPLOYCTL_ENV): config file %s defines "
                        "%s; add an [env \"%s\"] section or pick one of those",
                        env, cfg->config_path,
                        cfg->env_names && *cfg->env_names ? cfg->env_names : "none", env);
}

int dc_config_env_value(const char *path, const char *env, dc_opt_id_t id, char **out,
                        dc_error_t *err)
{
    dc_config_t cfg;
    dc_config_init(&cfg);
    dc_config_offer(&cfg, DC_OPT_ENV, env, DC_SRC_FLAG, "environment");
    *out = NULL;
    int rc = dc_config_load_file(&cfg, path, err);
    if (rc == 0)
        rc = dc_config_check_env(&cfg, err);
    if (rc == 0 && cfg.settings[id].value != NULL)
        *out = dc_strdup(cfg.settings[id].value);
    dc_config_free(&cfg);
    return rc;
}

static void apply_environment(dc_config_t *cfg)
{
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        const dc_option_t *o = &dc_options[i];
        for (int e = 0; e < DC_OPT_ENV_MAX && o->env[e] != NULL; e++) {
            const char *v = getenv(o->env[e]);
            if (v != NULL && *v != '\0') {
                dc_config_offer(cfg, o->id, v, DC_SRC_ENV, o->env[e]);
                break;
            }
        }
    }
}

/* DATABASE_URL is the application's URL (Prisma's convention). When the direct URL itself came
 * from DATABASE_URL_DIRECT or DIRECT_URL, DATABASE_URL beside it is the pooled one; alone it stays
 * the direct URL (one URL, no pooler), as --database reads it. A direct URL from --database or a
 * config file does not pair with a DATABASE_URL the shell happens to hold (a dev .env, say).
 * DEPLOYCTL_POOLED_URL wins over it. */
static void apply_pooled_environment(dc_config_t *cfg)
{
    const dc_setting_t *db = &cfg->settings[DC_OPT_DATABASE];
    const char *app = getenv("DATABASE_URL");
    if (app == NULL || *app == '\0' || db->source != DC_SRC_ENV || db->origin == NULL ||
        (strcmp(db->origin, "DATABASE_URL_DIRECT") != 0 && strcmp(db->origin, "DIRECT_URL") != 0))
        return;
    if (cfg->settings[DC_OPT_POOLED_URL].source < DC_SRC_ENV)
        dc_config_offer(cfg, DC_OPT_POOLED_URL, app, DC_SRC_ENV, "DATABASE_URL");
}

/* "--pooled-url none" (or an empty value) says there is no pooled URL: it beats every lower
 * source (DATABASE_URL beside DIRECT_URL included), then leaves the setting without a value. */
static void apply_pooled_opt_out(dc_config_t *cfg)
{
    dc_setting_t *s = &cfg->settings[DC_OPT_POOLED_URL];
    if (s->value != NULL && (*s->value == '\0' || strcasecmp(s->value, "none") == 0)) {
        free(s->value);
        s->value = NULL;
    }
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on", NULL};
    static const char *const no[] = {"0", "false", "no", "off", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int check_value(const dc_option_t *o, const dc_setting_t *s, dc_error_t *err)
{
    const char *v = s->value;
    const char *expected = NULL;
    char range[96];
    long l;
    uint64_t u;
    bool b;
    switch (o->type) {
    case DC_TYPE_STRING:
        return 0;
    case DC_TYPE_BOOL:
        if (!parse_bool(v, &b))
            expected = "true or false";
        break;
    case DC_TYPE_INT:
        snprintf(range, sizeof(range), "an integer from %ld to %ld", o->min, o->max);
        if (dc_parse_int(v, o->min, o->max, &l) != 0)
            expected = range;
        break;
    case DC_TYPE_SIZE:
        snprintf(range, sizeof(range), "a size such as 64MiB, at least %ld bytes", o->min);
        if (dc_parse_size(v, &u) != 0 || u < (uint64_t)o->min || u > (uint64_t)o->max)
            expected = range;
        break;
    case DC_TYPE_DURATION:
        if (dc_parse_duration_ms(v, &u) != 0)
            expected = "a duration such as 500ms, 30s, 5m, 1h or 7d";
        break;
    case DC_TYPE_ENUM:
        snprintf(range, sizeof(range), "one of %s", o->choices);
        if (!in_choices(o->choices, v))
            expected = range;
        break;
    }
    if (expected == NULL)
        return 0;
    return dc_error_set(err, "invalid value '%s' for %s (from %s): expected %s", v, o->name,
                        s->origin ? s->origin : "?", expected);
}

int dc_config_finish(dc_config_t *cfg, dc_error_t *err)
{
    apply_environment(cfg);
    apply_pooled_environment(cfg);
    apply_pooled_opt_out(cfg);
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        const dc_option_t *o = &dc_options[i];
        if (o->default_value != NULL)
            dc_config_offer(cfg, o->id, o->default_value, DC_SRC_DEFAULT, "default");
    }
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (cfg->settings[i].value != NULL && check_value(&dc_options[i], &cfg->settings[i], err))
            return -1;
    }
    return 0;
}

const char *dc_config_get(const dc_config_t *cfg, dc_opt_id_t id)
{
    return cfg->settings[id].value;
}

bool dc_config_flag(const dc_config_t *cfg, dc_opt_id_t id)
{
    bool b = false;
    const char *v = cfg->settings[id].value;
    return v != NULL && parse_bool(v, &b) && b;
}

long dc_config_int(const dc_config_t *cfg, dc_opt_id_t id)
{
    long l = 0;
    const char *v = cfg->settings[id].value;
    if (v != NULL)
        dc_parse_int(v, dc_options[id].min, dc_options[id].max, &l);
    return l;
}

uint64_t dc_config_size(const dc_config_t *cfg, dc_opt_id_t id)
{
    uint64_t u = 0;
    const char *v = cfg->settings[id].value;
    if (v != NULL)
        dc_parse_size(v, &u);
    return u;
}

uint64_t dc_config_duration_ms(const dc_config_t *cfg, dc_opt_id_t id)
{
    uint64_t u = 0;
    const char *v = cfg->settings[id].value;
    if (v != NULL)
        dc_parse_duration_ms(v, &u);
    return u;
}

char *dc_config_default_state_dir(void)
{
    if (geteuid() == 0)
        return dc_strdup("/var/lib/deployctl");
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg != NULL && *xdg == '/')
        return dc_sprintf("%s/deployctl", xdg);
    const char *home = getenv("HOME");
    return dc_sprintf("%s/.local/state/deployctl", home && *home ? home : "/tmp");
}
