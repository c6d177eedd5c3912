/* Every option deployctl knows, in one table: its flag, environment variables, config-file key,
 * default and the commands that take it. Help text, parsing and config loading all read this. */
#include <string.h>

#include "deployctl/config.h"

#define BACKUP  DC_CMD_BACKUP
#define RESTORE DC_CMD_RESTORE
#define VERIFY  DC_CMD_VERIFY
#define CHECK   DC_CMD_CHECK
#define MIGRATE DC_CMD_MIGRATE
#define GLOBAL  DC_CMD_ALL

/* clang-format off */
const dc_option_t dc_options[DC_OPT_COUNT] = {
    /* id, name, short, type, environment, config key, default, choices, min, max, commands,
     * metavar, help */
    [DC_OPT_CONFIG] = {DC_OPT_CONFIG, "config", 'c', DC_TYPE_STRING, {"DEPLOYCTL_CONFIG"}, NULL,
        NULL, NULL, 0, 0, GLOBAL, "FILE",
        "configuration file (default /etc/deployctl/deployctl.conf if present)"},
    [DC_OPT_DATABASE] = {DC_OPT_DATABASE, "database", 'd', DC_TYPE_STRING,
        {"DATABASE_URL_DIRECT", "DATABASE_URL"}, "database.url", NULL, NULL, 0, 0, GLOBAL, "URL",
        "PostgreSQL URL of the direct (non-pooled) connection"},
    [DC_OPT_STORE] = {DC_OPT_STORE, "store", 's', DC_TYPE_STRING, {"DEPLOYCTL_STORE"},
        "store.url", NULL, NULL, 0, 0, GLOBAL, "URL",
        "snapshot store (default file://<state-dir>/snapshots)"},
    [DC_OPT_JSON] = {DC_OPT_JSON, "json", 0, DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        GLOBAL, NULL, "machine-readable output on stdout"},
    [DC_OPT_QUIET] = {DC_OPT_QUIET, "quiet", 'q', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        GLOBAL, NULL, "log errors only"},
    [DC_OPT_VERBOSE] = {DC_OPT_VERBOSE, "verbose", 'v', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL,
        0, 0, GLOBAL, NULL, "log debug details"},
    [DC_OPT_LOG_LEVEL] = {DC_OPT_LOG_LEVEL, "log-level", 0, DC_TYPE_ENUM,
        {"DEPLOYCTL_LOG_LEVEL"}, "log.level", "info", "error|warning|info|debug", 0, 0, GLOBAL,
        "LEVEL", "error, warning, info or debug"},
    [DC_OPT_LOG_FORMAT] = {DC_OPT_LOG_FORMAT, "log-format", 0, DC_TYPE_ENUM,
        {"DEPLOYCTL_LOG_FORMAT"}, "log.format", "text", "text|json", 0, 0, GLOBAL, "FORMAT",
        "log lines as text or json"},
    [DC_OPT_STATE_DIR] = {DC_OPT_STATE_DIR, "state-dir", 0, DC_TYPE_STRING,
        {"DEPLOYCTL_STATE_DIR"}, "paths.state_dir", NULL, NULL, 0, 0, GLOBAL, "DIR",
        "state directory (default /var/lib/deployctl, or ~/.local/state/deployctl)"},
    [DC_OPT_PG_DUMP] = {DC_OPT_PG_DUMP, "pg-dump", 0, DC_TYPE_STRING, {"DEPLOYCTL_PG_DUMP"},
        "paths.pg_dump", NULL, NULL, 0, 0, GLOBAL, "PATH",
        "pg_dump to use (default: the newest installed)"},
    [DC_OPT_PROGRESS_INTERVAL] = {DC_OPT_PROGRESS_INTERVAL, "progress-interval", 0,
        DC_TYPE_DURATION, {"DEPLOYCTL_PROGRESS_INTERVAL"}, "log.progress_interval", "10s", NULL,
        0, 0, GLOBAL, "DURATION", "how often to log progress when stderr is not a terminal"},
    [DC_OPT_HELP] = {DC_OPT_HELP, "help", 'h', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        GLOBAL, NULL, "show help"},
    [DC_OPT_VERSION] = {DC_OPT_VERSION, "version", 'V', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL,
        0, 0, GLOBAL, NULL, "show the version"},
    [DC_OPT_JOBS] = {DC_OPT_JOBS, "jobs", 'j', DC_TYPE_INT, {"DEPLOYCTL_JOBS"}, "backup.jobs",
        NULL, NULL, 1, 64, BACKUP | RESTORE | CHECK, "N",
        "worker connections (default: the number of cores; restore: 1, atomic; check: those "
        "a release would open)"},
    [DC_OPT_TAG] = {DC_OPT_TAG, "tag", 't', DC_TYPE_STRING, {NULL}, NULL, "manual", NULL, 0, 0,
        BACKUP, "TAG", "label for the snapshot: manual, nightly, release, ..."},
    [DC_OPT_COMPRESS_LEVEL] = {DC_OPT_COMPRESS_LEVEL, "compress-level", 'Z', DC_TYPE_INT,
        {"DEPLOYCTL_COMPRESS_LEVEL"}, "backup.compression_level", "1", NULL, 1, 19, BACKUP, "N",
        "zstd level, 1-19"},
    [DC_OPT_CHUNK_SIZE] = {DC_OPT_CHUNK_SIZE, "chunk-size", 0, DC_TYPE_SIZE,
        {"DEPLOYCTL_CHUNK_SIZE"}, "backup.chunk_size", "16MiB", NULL, 4096, 1L << 30, BACKUP,
        "SIZE", "COPY text per archive chunk"},
    [DC_OPT_SPLIT_SIZE] = {DC_OPT_SPLIT_SIZE, "split-size", 0, DC_TYPE_SIZE,
        {"DEPLOYCTL_SPLIT_SIZE"}, "backup.split_size", "64MiB", NULL, 8192, 1L << 40, BACKUP,
        "SIZE", "tables larger than this are read by several workers in ranges this big"},
    [DC_OPT_LOCK_TIMEOUT] = {DC_OPT_LOCK_TIMEOUT, "lock-timeout", 0, DC_TYPE_DURATION,
        {"DEPLOYCTL_LOCK_TIMEOUT"}, "backup.lock_timeout", "30s", NULL, 0, 0,
        BACKUP | RESTORE | MIGRATE, "DURATION",
        "how long to wait for a lock before giving up (default 30s; migrate: 5s)"},
    [DC_OPT_VERIFY] = {DC_OPT_VERIFY, "verify", 0, DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        BACKUP, NULL, "then verify it deeply (restore into a scratch database and compare)"},
    [DC_OPT_VERIFY_DATABASE] = {DC_OPT_VERIFY_DATABASE, "verify-database", 0, DC_TYPE_STRING,
        {"DEPLOYCTL_VERIFY_DATABASE"}, "verify.database", NULL, NULL, 0, 0, BACKUP | VERIFY,
        "URL", "server for deep verification's scratch database (default: --database's server)"},
    [DC_OPT_TARGET] = {DC_OPT_TARGET, "target", 0, DC_TYPE_STRING, {NULL}, NULL, NULL, NULL, 0,
        0, RESTORE, "URL", "restore into this database instead (created when missing)"},
    [DC_OPT_YES] = {DC_OPT_YES, "yes", 'y', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        RESTORE, NULL, "replace a database that holds tables without asking"},
    [DC_OPT_NO_SAFETY_SNAPSHOT] = {DC_OPT_NO_SAFETY_SNAPSHOT, "no-safety-snapshot", 0,
        DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0, RESTORE, NULL,
        "do not take a pre-restore snapshot first"},
    [DC_OPT_TERMINATE_CONNECTIONS] = {DC_OPT_TERMINATE_CONNECTIONS, "terminate-connections", 0,
        DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0, RESTORE, NULL,
        "end the other sessions connected to the target first"},
    [DC_OPT_MAINTENANCE_WORK_MEM] = {DC_OPT_MAINTENANCE_WORK_MEM, "maintenance-work-mem", 0,
        DC_TYPE_SIZE, {"DEPLOYCTL_MAINTENANCE_WORK_MEM"}, "restore.maintenance_work_mem", NULL, NULL,
        1024 * 1024, 1L << 40, RESTORE | VERIFY | BACKUP, "SIZE",
        "server memory for each index build during a restore (default: the server's)"},
    [DC_OPT_DEEP] = {DC_OPT_DEEP, "deep", 0, DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0, VERIFY,
        NULL, "restore into a scratch database and compare every row"},
    [DC_OPT_ALL] = {DC_OPT_ALL, "all", 'a', DC_TYPE_BOOL, {NULL}, NULL, NULL, NULL, 0, 0,
        DC_CMD_SNAPSHOTS, NULL, "also list incomplete snapshots"},
    [DC_OPT_MIGRATIONS] = {DC_OPT_MIGRATIONS, "migrations", 0, DC_TYPE_STRING,
        {"DEPLOYCTL_MIGRATIONS"}, "migrations.dir", "prisma/migrations", NULL, 0, 0, CHECK | DC_CMD_LINT | MIGRATE,
        "DIR",
        "the Prisma migrations directory (<timestamp>_<name>/migration.sql)"},
    [DC_OPT_MAX_SNAPSHOT_AGE] = {DC_OPT_MAX_SNAPSHOT_AGE, "max-snapshot-age", 0,
        DC_TYPE_DURATION, {"DEPLOYCTL_MAX_SNAPSHOT_AGE"}, "check.max_snapshot_age", "24h", NULL,
        0, 0, CHECK, "DURATION", "warn when the newest snapshot is older than this"},
    [DC_OPT_MAX_TRANSACTION_AGE] = {DC_OPT_MAX_TRANSACTION_AGE, "max-transaction-age", 0,
        DC_TYPE_DURATION, {"DEPLOYCTL_MAX_TRANSACTION_AGE"}, "check.max_transaction_age", "5m",
        NULL, 0, 0, CHECK, "DURATION",
        "fail when a transaction this old holds locks on tables (younger idle ones warn)"},
    [DC_OPT_STRICT] = {DC_OPT_STRICT, "strict", 0, DC_TYPE_BOOL, {NULL}, "check.strict", NULL,
        NULL, 0, 0, CHECK, NULL, "warnings fail the check too (exit 4)"},
    [DC_OPT_MIGRATE_COMMAND] = {DC_OPT_MIGRATE_COMMAND, "migrate-command", 0, DC_TYPE_STRING,
        {"DEPLOYCTL_MIGRATE_COMMAND"}, "migrate.command", NULL, NULL, 0, 0, MIGRATE, "COMMAND",
        "deploy with this command instead (e.g. 'npx prisma migrate deploy'; no shell)"},
    [DC_OPT_MIGRATE_COMMAND_TIMEOUT] = {DC_OPT_MIGRATE_COMMAND_TIMEOUT, "migrate-command-timeout",
        0, DC_TYPE_DURATION, {"DEPLOYCTL_MIGRATE_COMMAND_TIMEOUT"}, "migrate.command_timeout", "1h",
        NULL, 0, 0, MIGRATE, "DURATION",
        "longest migrate.command may run before it is stopped (0: no limit)"},
    [DC_OPT_STATEMENT_TIMEOUT] = {DC_OPT_STATEMENT_TIMEOUT, "statement-timeout", 0,
        DC_TYPE_DURATION, {"DEPLOYCTL_STATEMENT_TIMEOUT"}, "migrate.statement_timeout", "0", NULL,
        0, 0, MIGRATE, "DURATION",
        "longest a migration statement may run (0: the role's or database's own setting)"},
    [DC_OPT_LOCK_RETRIES] = {DC_OPT_LOCK_RETRIES, "lock-retries", 0, DC_TYPE_INT,
        {"DEPLOYCTL_LOCK_RETRIES"}, "migrate.lock_retries", "3", NULL, 0, 100, MIGRATE, "N",
        "attempts after a lock timeout, with growing pauses"},
    [DC_OPT_LOCK_RETRY_DELAY] = {DC_OPT_LOCK_RETRY_DELAY, "lock-retry-delay", 0,
        DC_TYPE_DURATION, {"DEPLOYCTL_LOCK_RETRY_DELAY"}, "migrate.lock_retry_delay", "1s",
        NULL, 0, 0, MIGRATE, "DURATION", "first pause before a retry, doubled each time"},
    [DC_OPT_APPLIED] = {DC_OPT_APPLIED, "applied", 0, DC_TYPE_STRING, {NULL}, NULL, NULL, NULL,
        0, 0, MIGRATE, "NAME", "resolve: mark this failed (or unapplied) migration applied"},
    [DC_OPT_ROLLED_BACK] = {DC_OPT_ROLLED_BACK, "rolled-back", 0, DC_TYPE_STRING, {NULL}, NULL,
        NULL, NULL, 0, 0, MIGRATE, "NAME",
        "resolve: mark this failed migration rolled back (deploy runs it again)"},
    [DC_OPT_TO] = {DC_OPT_TO, "to", 0, DC_TYPE_STRING, {NULL}, NULL, NULL, NULL, 0, 0, MIGRATE,
        "NAME", "down: roll back until this migration is the newest applied"},
};
/* clang-format on */

const dc_option_t *dc_option_by_name(const char *name)
{
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (strcmp(dc_options[i].name, name) == 0)
            return &dc_options[i];
    }
    return NULL;
}

const dc_option_t *dc_option_by_short(char c)
{
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (dc_options[i].short_name == c && c != 0)
            return &dc_options[i];
    }
    return NULL;
}
