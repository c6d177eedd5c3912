/* Every option deployctl knows, in one table: its flag, environment variables, config-file key,
 * default and the commands that take it. Help text, parsing and config loading all read this. */
#include <string.h>

#include "deployctl/config.h"

#define BACKUP  DC_CMD_BACKUP
#define RESTORE DC_CMD_RESTORE
#define VERIFY  DC_CMD_VERIFY
#define CHECK   DC_CMD_CHECK
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
        {"DEPLOYCTL_LOCK_TIMEOUT"}, "backup.lock_timeout", "30s", NULL, 0, 0, BACKUP | RESTORE,
        "DURATION", "how long to wait for table locks before giving up"},
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
        {"DEPLOYCTL_MIGRATIONS"}, "migrations.dir", "prisma/migrations", NULL, 0, 0, CHECK, "DIR",
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
    [DC_OPT_S3_ENDPOINT] = {DC_OPT_S3_ENDPOINT, "s3-endpoint", 0, DC_TYPE_STRING,
        {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, "s3.endpoint", NULL, NULL, 0, 0, GLOBAL,
        "URL", "S3 endpoint, https://host[:port] (default: AWS S3 in the region)"},
    [DC_OPT_S3_REGION] = {DC_OPT_S3_REGION, "s3-region", 0, DC_TYPE_STRING,
        {"AWS_REGION", "AWS_DEFAULT_REGION"}, "s3.region", "us-east-1", NULL, 0, 0, GLOBAL,
        "REGION", "S3 region (signing)"},
    [DC_OPT_S3_ACCESS_KEY_ID] = {DC_OPT_S3_ACCESS_KEY_ID, "s3-access-key-id", 0, DC_TYPE_STRING,
        {"AWS_ACCESS_KEY_ID"}, "s3.access_key_id", NULL, NULL, 0, 0, GLOBAL, "ID",
        "S3 access key id", true},
    [DC_OPT_S3_SECRET_ACCESS_KEY] = {DC_OPT_S3_SECRET_ACCESS_KEY, "s3-secret-access-key", 0,
        DC_TYPE_STRING, {"AWS_SECRET_ACCESS_KEY"}, "s3.secret_access_key", NULL, NULL, 0, 0,
        GLOBAL, "KEY", "S3 secret access key", true},
    [DC_OPT_S3_SECRET_ACCESS_KEY_FILE] = {DC_OPT_S3_SECRET_ACCESS_KEY_FILE,
        "s3-secret-access-key-file", 0, DC_TYPE_STRING, {"DEPLOYCTL_S3_SECRET_ACCESS_KEY_FILE"},
        "s3.secret_access_key_file", NULL, NULL, 0, 0, GLOBAL, "FILE",
        "file holding the S3 secret access key (wins over AWS_SECRET_ACCESS_KEY)"},
    [DC_OPT_S3_SESSION_TOKEN] = {DC_OPT_S3_SESSION_TOKEN, "s3-session-token", 0, DC_TYPE_STRING,
        {"AWS_SESSION_TOKEN"}, "s3.session_token", NULL, NULL, 0, 0, GLOBAL, "TOKEN",
        "S3 session token of temporary credentials", true},
    [DC_OPT_S3_PATH_STYLE] = {DC_OPT_S3_PATH_STYLE, "s3-path-style", 0, DC_TYPE_BOOL,
        {"DEPLOYCTL_S3_PATH_STYLE"}, "s3.path_style", NULL, NULL, 0, 0, GLOBAL, NULL,
        "address buckets as <endpoint>/<bucket> (MinIO, s3rver) instead of <bucket>.<host>"},
    [DC_OPT_S3_CA_FILE] = {DC_OPT_S3_CA_FILE, "s3-ca-file", 0, DC_TYPE_STRING,
        {"AWS_CA_BUNDLE"}, "s3.ca_file", NULL, NULL, 0, 0, GLOBAL, "FILE",
        "CA bundle to verify the S3 endpoint's certificate (verification is always on)"},
    [DC_OPT_S3_PART_SIZE] = {DC_OPT_S3_PART_SIZE, "s3-part-size", 0, DC_TYPE_SIZE,
        {"DEPLOYCTL_S3_PART_SIZE"}, "s3.part_size", "16MiB", NULL, 5L * 1024 * 1024,
        5L * 1024 * 1024 * 1024, GLOBAL, "SIZE",
        "multipart upload part size (memory: one part per upload)"},
    [DC_OPT_S3_TIMEOUT] = {DC_OPT_S3_TIMEOUT, "s3-timeout", 0, DC_TYPE_DURATION,
        {"DEPLOYCTL_S3_TIMEOUT"}, "s3.timeout", "30s", NULL, 0, 0, GLOBAL, "DURATION",
        "an S3 request where no byte moves for this long is tried again"},
    [DC_OPT_S3_MAX_ATTEMPTS] = {DC_OPT_S3_MAX_ATTEMPTS, "s3-max-attempts", 0, DC_TYPE_INT,
        {"AWS_MAX_ATTEMPTS"}, "s3.max_attempts", "5", NULL, 1, 100, GLOBAL, "N",
        "tries per S3 request (transient errors are retried with backoff and jitter)"},
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
