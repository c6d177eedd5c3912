/* Configuration: one table of options (flag, environment variables, config-file key, default,
 * type, which commands take it), and the resolution of each value from, in rising precedence,
 * the default, the INI file, the environment and the command line. */
#ifndef DEPLOYCTL_CONFIG_H
#define DEPLOYCTL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "deployctl/error.h"

/* Commands, as bits so an option can name those that take it. */
typedef enum {
    DC_CMD_NONE = 0,
    DC_CMD_BACKUP = 1u << 0,
    DC_CMD_SNAPSHOTS = 1u << 1,
    DC_CMD_SHOW = 1u << 2,
    DC_CMD_RESTORE = 1u << 3,
    DC_CMD_VERIFY = 1u << 4,
    DC_CMD_LINT = 1u << 5,
    DC_CMD_MIGRATE = 1u << 6,
    DC_CMD_CHECK = 1u << 7,
    DC_CMD_PRUNE = 1u << 8,
    DC_CMD_RELEASE = 1u << 9,
    DC_CMD_RECOVER = 1u << 10,
    DC_CMD_HISTORY = 1u << 11,
    DC_CMD_REHEARSE = 1u << 12,
    DC_CMD_PROMOTE_CHECK = 1u << 13,
    DC_CMD_ALL = 0xffffu,
} dc_command_mask_t;

typedef enum {
    /* global */
    DC_OPT_CONFIG,
    DC_OPT_ENV,
    DC_OPT_DATABASE,
    DC_OPT_POOLED_URL,
    DC_OPT_STORE,
    DC_OPT_JSON,
    DC_OPT_QUIET,
    DC_OPT_VERBOSE,
    DC_OPT_LOG_LEVEL,
    DC_OPT_LOG_FORMAT,
    DC_OPT_STATE_DIR,
    DC_OPT_PG_DUMP,
    DC_OPT_PROGRESS_INTERVAL,
    DC_OPT_HELP,
    DC_OPT_VERSION,
    /* backup */
    DC_OPT_JOBS,
    DC_OPT_TAG,
    DC_OPT_COMPRESS_LEVEL,
    DC_OPT_CHUNK_SIZE,
    DC_OPT_SPLIT_SIZE,
    DC_OPT_LOCK_TIMEOUT,
    DC_OPT_VERIFY,
    DC_OPT_VERIFY_DATABASE,
    /* encryption (backup, restore, verify) */
    DC_OPT_ENCRYPTION,
    DC_OPT_ENCRYPTION_KEY_FILE,
    DC_OPT_ENCRYPTION_KEY,
    /* restore */
    DC_OPT_TARGET,
    DC_OPT_YES,
    DC_OPT_NO_SAFETY_SNAPSHOT,
    DC_OPT_TERMINATE_CONNECTIONS,
    DC_OPT_MAINTENANCE_WORK_MEM,
    /* verify */
    DC_OPT_DEEP,
    /* snapshots */
    DC_OPT_ALL,
    /* commands that read migrations (check, lint, migrate) */
    DC_OPT_MIGRATIONS,
    DC_OPT_MAX_SNAPSHOT_AGE,
    DC_OPT_MAX_TRANSACTION_AGE,
    DC_OPT_STRICT,
    /* migrate */
    DC_OPT_MIGRATE_COMMAND,
    DC_OPT_MIGRATE_COMMAND_TIMEOUT,
    DC_OPT_STATEMENT_TIMEOUT,
    DC_OPT_LOCK_RETRIES,
    DC_OPT_LOCK_RETRY_DELAY,
    DC_OPT_APPLIED,
    DC_OPT_ROLLED_BACK,
    DC_OPT_TO,
    /* prune */
    DC_OPT_KEEP_LAST,
    DC_OPT_KEEP_DAILY,
    DC_OPT_KEEP_WEEKLY,
    DC_OPT_KEEP_MONTHLY,
    DC_OPT_INCOMPLETE_GRACE,
    DC_OPT_PRE_RESTORE_WINDOW,
    DC_OPT_DRY_RUN,
    /* metrics for Prometheus (backup, verify, prune) */
    DC_OPT_METRICS_FILE,
    /* release, recover */
    DC_OPT_HOOKS,
    DC_OPT_HOOK_TIMEOUT,
    DC_OPT_SMOKE,
    DC_OPT_SMOKE_WINDOW,
    DC_OPT_SMOKE_QUERIES,
    DC_OPT_VERIFY_QUERIES,
    DC_OPT_ROW_TOLERANCE,
    DC_OPT_ON_FAILURE,
    DC_OPT_REPORT,
    DC_OPT_REPORT_MD,
    /* rehearse (and release --rehearse) */
    DC_OPT_SNAPSHOT,
    DC_OPT_SCRATCH,
    DC_OPT_MAX_LOCK,
    DC_OPT_REHEARSE,
    /* the s3:// store ([s3] section; AWS_* environment) */
    DC_OPT_S3_ENDPOINT,
    DC_OPT_S3_REGION,
    DC_OPT_S3_ACCESS_KEY_ID,
    DC_OPT_S3_SECRET_ACCESS_KEY,
    DC_OPT_S3_SECRET_ACCESS_KEY_FILE,
    DC_OPT_S3_SESSION_TOKEN,
    DC_OPT_S3_PATH_STYLE,
    DC_OPT_S3_CA_FILE,
    DC_OPT_S3_PART_SIZE,
    DC_OPT_S3_TIMEOUT,
    DC_OPT_S3_MAX_ATTEMPTS,
    DC_OPT_COUNT
} dc_opt_id_t;

typedef enum {
    DC_TYPE_STRING,
    DC_TYPE_BOOL, /* a flag: present or not */
    DC_TYPE_INT,
    DC_TYPE_SIZE,     /* "64MiB" */
    DC_TYPE_DURATION, /* "30s", "24h", "7d" */
    DC_TYPE_ENUM,
} dc_opt_type_t;

/* Environment variables one option may read (the first set wins). */
#define DC_OPT_ENV_MAX 3

typedef struct dc_option {
    dc_opt_id_t id;
    const char *name; /* --name */
    char short_name;  /* -x, or 0 */
    dc_opt_type_t type;
    const char *env[DC_OPT_ENV_MAX]; /* environment variables, the first set wins */
    const char *config_key;          /* "section.key", or NULL when only a flag */
    const char *default_value;       /* NULL: none (or computed, see dc_config_default) */
    const char *choices;             /* enums: "text|json" */
    long min, max;                   /* ints */
    unsigned commands;               /* DC_CMD_ALL: global */
    const char *metavar;
    const char *help;
    bool no_flag;    /* secrets: only from the environment or the config file, never argv */
    bool repeatable; /* a flag given again adds a line to the value instead of replacing it */
} dc_option_t;

extern const dc_option_t dc_options[DC_OPT_COUNT];
const dc_option_t *dc_option_by_name(const char *name);
const dc_option_t *dc_option_by_short(char c);

/* In rising precedence: the config file's top level, then its [env "NAME"] section for the
 * environment chosen (--env, DEPLOYCTL_ENV), then environment variables, then flags. */
typedef enum {
    DC_SRC_NONE,
    DC_SRC_DEFAULT,
    DC_SRC_FILE,
    DC_SRC_FILE_ENV,
    DC_SRC_ENV,
    DC_SRC_FLAG
} dc_source_t;

typedef struct dc_setting {
    char *value;
    dc_source_t source;
    char *origin; /* "--jobs", "DEPLOYCTL_JOBS", "/etc/deployctl/deployctl.conf line 12" */
} dc_setting_t;

typedef struct dc_config {
    dc_setting_t settings[DC_OPT_COUNT];
    char *config_path; /* the file that was read, if any */
    char *env_names;   /* the [env "NAME"] sections the file has, ", "-separated ("" none) */
    bool env_found;    /* the file has the section of the environment chosen */
} dc_config_t;

void dc_config_init(dc_config_t *cfg);
void dc_config_free(dc_config_t *cfg);
/* Records a value from a source, unless one from a higher-precedence source is there. */
void dc_config_offer(dc_config_t *cfg, dc_opt_id_t id, const char *value, dc_source_t source,
                     const char *origin);
/* Reads an INI file; unknown sections or keys are errors (they are typos). Sections
 * [env "NAME"] hold the same "section.key" settings for one environment: those of the
 * environment chosen (DC_OPT_ENV as offered so far, else DEPLOYCTL_ENV) override the top level. */
int dc_config_load_file(dc_config_t *cfg, const char *path, dc_error_t *err);
/* The environment chosen (--env or DEPLOYCTL_ENV), or NULL. */
const char *dc_config_env_name(const dc_config_t *cfg);
/* Refuses an environment the file does not define, naming those it does. */
int dc_config_check_env(const dc_config_t *cfg, dc_error_t *err);
/* The value of one setting for environment `env` as the config file gives it (its section, else
 * the top level; NULL when neither does): for commands that compare environments. */
int dc_config_env_value(const char *path, const char *env, dc_opt_id_t id, char **out,
                        dc_error_t *err);
/* Applies the environment and the defaults, then checks every value's type and range. */
int dc_config_finish(dc_config_t *cfg, dc_error_t *err);

const char *dc_config_get(const dc_config_t *cfg, dc_opt_id_t id);
bool dc_config_flag(const dc_config_t *cfg, dc_opt_id_t id);
long dc_config_int(const dc_config_t *cfg, dc_opt_id_t id);
uint64_t dc_config_size(const dc_config_t *cfg, dc_opt_id_t id);
uint64_t dc_config_duration_ms(const dc_config_t *cfg, dc_opt_id_t id);

/* The default config file, /etc/deployctl/deployctl.conf. */
extern const char DC_DEFAULT_CONFIG_PATH[];
/* The state directory: /var/lib/deployctl for root, else $XDG_STATE_HOME/deployctl or
 * ~/.local/state/deployctl (caller frees). */
char *dc_config_default_state_dir(void);

#endif
