/* The command line: argv parsed against the option table (options may come before or after
 * the command, as with git and pg_dump), configuration resolved, logging set up, the command
 * run, and its error turned into an exit code. Nothing else in deployctl calls exit(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/cli.h"
#include "deployctl/crypto.h"
#include "deployctl/log.h"
#include "deployctl/pg.h"
#include "deployctl/progress.h"
#include "deployctl/signals.h"
#include "deployctl/util.h"

static const dc_command_t commands[] = {
    {"backup", DC_CMD_BACKUP, "[--tag TAG] [--jobs N]", "take a consistent snapshot and store it",
     "Takes a consistent snapshot of the database: one exported snapshot shared by pg_dump (for\n"
     "the schema) and N COPY workers (for the data), compressed with zstd, hashed with SHA-256\n"
     "and packed into one tar archive in the store; the manifest is written last. Prints the new\n"
     "snapshot's id as the last line of stdout.",
     0, 0, dc_cmd_backup},
    {"snapshots", DC_CMD_SNAPSHOTS, "[--all]", "list the snapshots in the store",
     "Lists the complete snapshots of the database given with --database (or of every database\n"
     "in the store when none is given), oldest first. --all also lists incomplete ones.",
     0, 0, dc_cmd_snapshots},
    {"show", DC_CMD_SHOW, "<id|latest>", "describe one snapshot (--json: its manifest)",
     "Describes one snapshot: database, consistency point, archive, tables and chunks.\n"
     "With --json prints its manifest.",
     1, 1, dc_cmd_show},
    {"restore", DC_CMD_RESTORE, "<id|latest> [--target URL] [--yes]",
     "bring a database back to a snapshot (atomic)",
     "Restores a snapshot into the database it came from (--database), or into --target URL\n"
     "(created when missing). In one transaction it replaces the snapshot's schemas, runs the\n"
     "schema scripts, loads every chunk checking its hashes, checks the row counts and commits:\n"
     "any failure leaves the database exactly as it was. A database that holds tables is only\n"
     "replaced after confirmation on a terminal or --yes, and after a pre-restore snapshot of it,\n"
     "taken with writes blocked, so that nothing written since is lost (--no-safety-snapshot\n"
     "skips it). Sessions in the way are named; --terminate-connections ends them.",
     1, 1, dc_cmd_restore},
    {"verify", DC_CMD_VERIFY, "<id|latest> [--deep]", "prove a snapshot would restore",
     "Checks every stored byte of a snapshot against its SHA-256 and every chunk's content\n"
     "against the manifest. --deep restores it into a scratch database (created on the\n"
     "--database server, or --verify-database URL, and always dropped) and reads every table\n"
     "back. The outcome is stored next to the snapshot and shown by 'snapshots'.",
     1, 1, dc_cmd_verify},
    {"migrate", DC_CMD_MIGRATE,
     "status | deploy | resolve --applied NAME | resolve --rolled-back NAME | down [N | --to NAME]",
     "run Prisma migrations (status, deploy, resolve, down)",
     "The migration runner, for Prisma's layout (--migrations DIR: <timestamp>_<name>/\n"
     "migration.sql, optional down.sql) and Prisma's history table, _prisma_migrations, kept as\n"
     "Prisma keeps it (in the URL's ?schema=), so that either tool can take over.\n"
     "  status    each migration: applied, pending, failed, edited (checksum differs, line\n"
     "            endings aside), missing_locally; exit 4 when not up to date\n"
     "  deploy    applies the pending ones in order, each in its own transaction with its history\n"
     "            row (statements such as CREATE INDEX CONCURRENTLY: one by one, outside one);\n"
     "            refused (exit 4) while a failed migration is unresolved. With migrate.command\n"
     "            (--migrate-command) that command runs instead, DATABASE_URL in its environment\n"
     "  resolve   --applied NAME / --rolled-back NAME, as 'prisma migrate resolve'\n"
     "  down      runs the down.sql of the newest N applied migrations (default 1), or of those\n"
     "            after --to NAME, newest first, each in a transaction; refused (exit 4) before\n"
     "            any change when one has no down.sql\n"
     "Two runners never overlap: deployctl's advisory lock (and Prisma's, 72707369) is held for\n"
     "the whole run; a second waits --lock-timeout, then exits 75. A statement waits at most\n"
     "--lock-timeout for its locks and is retried --lock-retries times; the sessions in its way\n"
     "are named (never terminated).",
     1, 2, dc_cmd_migrate},
    {"check", DC_CMD_CHECK, "[--strict] [--migrations DIR]", "pre-migration safety checks",
     "Checks, reading only, that a migration can run now: a direct connection (not through a\n"
     "pooler such as PgBouncer), no failed or edited migrations, a recent snapshot and room\n"
     "for the next one, no long transaction or lock holder in the way of DDL, a compatible\n"
     "pg_dump, the privileges each pending statement needs, no INVALID index, connection\n"
     "slots, no forgotten prepared transaction, no table close to an anti-wraparound\n"
     "autovacuum. One line per check (ok, warning or failed), then a verdict;\n"
     "--json prints them as an object. Exits 4 when a check failed (--strict: or warned).",
     0, 0, dc_cmd_check},
    {"lint", DC_CMD_LINT, "[DIR|FILE.sql] [--json]",
     "classify migrations and flag unsafe DDL (no database needed)",
     "Parses every migration (DIR/<timestamp>_<name>/migration.sql, in name order; DIR is the\n"
     "argument, else --migrations, else prisma/migrations) with PostgreSQL's own parser, classes\n"
     "each migration as additive, transformative or destructive, and reports statements that\n"
     "can lose data, break the running application or block writes, each with a safe\n"
     "alternative. Exits 1 when an error remains. A '-- deployctl:allow RULE[, RULE]' comment\n"
     "on the lines directly above a statement accepts those findings for it. With --json\n"
     "prints an array of {file, line, statement, rule, severity, class, hint}.\n"
     "Rules (severity): drop-table, drop-column, drop-schema, drop-database, rename-table,\n"
     "rename-column, change-column-type, add-not-null-column-without-default,\n"
     "add-column-with-volatile-default, constraint-without-not-valid, index-not-concurrent,\n"
     "unique-constraint-without-index, truncate, concurrently-in-transaction (error);\n"
     "set-not-null, update-without-where, delete-without-where, missing-lock-timeout,\n"
     "drop-index-not-concurrent, concurrently-not-alone, unknown-allow-rule (warning).",
     0, 1, dc_cmd_lint},
    {"prune", DC_CMD_PRUNE,
     "[--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--dry-run] "
     "[--database URL|all]",
     "delete old snapshots by retention rules",
     "Applies retention to the snapshots of --database (or of every database in the store with\n"
     "--database all): the N newest (--keep-last), the newest of each of the last N days,\n"
     "ISO weeks or months that have snapshots (UTC); a snapshot any rule keeps stays. Whatever\n"
     "the rules say, it keeps the newest complete and the newest verified snapshot of each\n"
     "database, pinned ones (an unfinished release depends on them), pre-restore ones younger\n"
     "than --pre-restore-window (not counted by the rules), and incomplete ones whose backup\n"
     "runs or that are younger than --incomplete-grace; older incomplete ones are removed.\n"
     "With no rule it refuses. Prints every snapshot with keep or delete and why;\n"
     "--dry-run changes nothing. Run it with --dry-run first.",
     0, 0, dc_cmd_prune},
    {"release", DC_CMD_RELEASE,
     "[--hooks DIR] [--smoke URL]... [--smoke-window SECONDS] [--report FILE] [--dry-run]",
     "the deploy as a transaction: backup, migrate, verify, deploy, smoke, or roll back",
     "Runs the production deploy as one transaction: precheck (as 'check'; refused: exit 4,\n"
     "nothing changed), pre-release and maintenance-on hooks, a verified snapshot (tag release),\n"
     "the migrations (native runner, or --migrate-command), verify (history clean, no INVALID\n"
     "index, --verify-queries, row counts within --row-tolerance of the snapshot), the deploy\n"
     "hook, smoke checks (--smoke URL, --smoke-queries DIR, retried for --smoke-window), then\n"
     "maintenance-off and post-release hooks. On a failure after something changed it undoes it\n"
     "in reverse order: the rollback hook if the deploy hook ran, then the migrations by their\n"
     "down.sql or by restoring the snapshot (--on-failure auto|restore|down|none; a restore\n"
     "takes a pre-restore snapshot first). Every step is journaled first in the state directory\n"
     "(and in the database's deployctl schema). Reports: --report FILE (JSON, and Markdown\n"
     "beside it), appended to $GITHUB_STEP_SUMMARY when set. Exit 0 released, 2 failed and\n"
     "rolled back, 3 rollback failed (the report says what state things are in and what to run),\n"
     "4 refused (also while an earlier release is unfinished: run 'deployctl recover'), 75\n"
     "another release runs. --dry-run prints the plan and changes nothing.",
     0, 0, dc_cmd_release},
    {"recover", DC_CMD_RECOVER, "", "finish or undo a release that was interrupted",
     "Finds the newest release of the database that did not finish (killed, runner lost) or\n"
     "whose rollback failed, and follows its journal: smoke had passed -> finish it (the\n"
     "maintenance-off and post-release hooks); otherwise undo what it did, as the release\n"
     "would have (rollback hook if the deploy hook started, then down.sql or restore).\n"
     "Exit 0 finished or nothing to recover, 2 undone, 3 the undo failed (operator needed).",
     0, 0, dc_cmd_recover},
    {"history", DC_CMD_HISTORY, "[--json]", "past releases: phases, timings, outcome",
     "Lists the releases of the database recorded in the state directory, oldest first, with\n"
     "each phase's duration and the outcome (released, rolled-back, rollback-failed, refused,\n"
     "aborted, unfinished).",
     0, 0, dc_cmd_history},
    {"rehearse", DC_CMD_REHEARSE,
     "[--snapshot ID|latest] [--scratch URL] [--max-lock DURATION] [--report-md FILE]",
     "run the pending migrations on a restored snapshot and measure their locks",
     "Restores the snapshot (default: the newest complete one of --database) into a scratch\n"
     "database (--scratch URL, which must not exist, or a new one on --database's server; always\n"
     "dropped afterwards, also after a failure or a stop signal) and applies the pending\n"
     "migrations there with the real runner. For each statement it measures the wall time, the\n"
     "locks held on which tables and for how long (pg_locks sampled every 20 ms by a second\n"
     "connection), tables rewritten (relfilenode changed), rows touched and WAL written, and\n"
     "gives a verdict with lint's findings beside it. Exit 4 when a statement holds a\n"
     "write-blocking lock (SHARE or stronger) on an existing table longer than --max-lock\n"
     "(rehearse.max_lock, default 5s) or a migration fails; --json, --report-md FILE.",
     0, 0, dc_cmd_rehearse},
    {"promote-check", DC_CMD_PROMOTE_CHECK, "SOURCE TARGET",
     "whether TARGET would get exactly the migrations SOURCE has",
     "Compares what was released on environment SOURCE (say staging: the migration names and\n"
     "checksums applied in its database's _prisma_migrations) with what TARGET (production) is\n"
     "about to get: its applied migrations plus the pending ones of --migrations. Both are\n"
     "[env \"NAME\"] sections of the config file with their database.url. Exit 0 when they\n"
     "are the same, 4 with the differences (missing on SOURCE, failed there, checksum differs,\n"
     "applied on SOURCE but not going to TARGET, failed on TARGET).",
     2, 2, dc_cmd_promote_check},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static const dc_command_t *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

/* ---- help ---- */

static void print_option(FILE *out, const dc_option_t *o)
{
    char flag[64];
    if (o->no_flag)
        return; /* environment or config file only */
    if (o->short_name)
        snprintf(flag, sizeof(flag), "-%c, --%s%s%s", o->short_name, o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    else
        snprintf(flag, sizeof(flag), "    --%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    fprintf(out, "  %-30s %s", flag, o->help);
    for (int e = 0; e < DC_OPT_ENV_MAX && o->env[e] != NULL; e++)
        fprintf(out, "%s%s", e ? ", " : " [env ", o->env[e]);
    if (o->env[0] != NULL)
        fputc(']', out);
    fputc('\n', out);
}

static void print_tool_help(FILE *out)
{
    fprintf(out, "deployctl %s - transactional deploys for PostgreSQL-backed applications\n\n",
            DEPLOYCTL_VERSION);
    fprintf(out, "Usage: deployctl <command> [options]\n\nCommands:\n");
    int width = 0;
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if ((int)strlen(commands[i].name) > width)
            width = (int)strlen(commands[i].name);
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-*s  %s\n", width, commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions for every command:\n");
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (dc_options[i].commands == DC_CMD_ALL)
            print_option(out, &dc_options[i]);
    }
    fprintf(out, "\nSettings come from the config file, then the environment, then flags (later\n"
                 "wins). Run 'deployctl <command> --help' for a command's own options.\n"
                 "Exit codes: 0 success, 1 error, 2 release rolled back, 3 rollback failed,\n"
                 "4 precheck refused, 75 another release holds the lock.\n");
}

static void print_command_help(FILE *out, const dc_command_t *c)
{
    fprintf(out, "Usage: deployctl %s %s [options]\n\n%s\n", c->name, c->usage, c->description);
    bool any = false;
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (dc_options[i].commands != DC_CMD_ALL && (dc_options[i].commands & c->mask)) {
            if (!any)
                fprintf(out, "\nOptions:\n");
            any = true;
            print_option(out, &dc_options[i]);
        }
    }
    fprintf(out, "\nOptions for every command:\n");
    for (int i = 0; i < DC_OPT_COUNT; i++) {
        if (dc_options[i].commands == DC_CMD_ALL)
            print_option(out, &dc_options[i]);
    }
}

/* ---- argv ---- */

typedef struct parsed_flag {
    const dc_option_t *option;
    char origin[80];
} parsed_flag_t;

static int take_value(const dc_option_t *o, const char *inline_value, int argc, char **argv, int *i,
                      const char **value, dc_error_t *err)
{
    if (o->type == DC_TYPE_BOOL) {
        if (inline_value != NULL)
            return dc_error_set(err, "option --%s takes no value", o->name);
        *value = "true";
        return 0;
    }
    if (inline_value != NULL) {
        *value = inline_value;
        return 0;
    }
    if (*i + 1 >= argc)
        return dc_error_set(err, "option --%s needs a value (%s)", o->name,
                            o->metavar ? o->metavar : "VALUE");
    *value = argv[++*i];
    return 0;
}

static void record_flag(dc_cli_t *cli, parsed_flag_t *flags, int *nflags, const dc_option_t *o,
                        const char *value, const char *origin)
{
    dc_config_offer(&cli->config, o->id, value, DC_SRC_FLAG, origin);
    flags[*nflags].option = o;
    snprintf(flags[*nflags].origin, sizeof(flags[0].origin), "%s", origin);
    (*nflags)++;
}

/* "--name", "--name=value", "--name value" */
static int parse_long(dc_cli_t *cli, int argc, char **argv, int *i, parsed_flag_t *flags,
                      int *nflags, dc_error_t *err)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    char name[64];
    int n = (int)(eq ? (size_t)(eq - arg) : strlen(arg));
    snprintf(name, sizeof(name), "%.*s", n < 63 ? n : 63, arg);
    const dc_option_t *o = dc_option_by_name(name);
    const char *value;
    char origin[80];
    if (o == NULL)
        return dc_error_set(err, "unknown option '--%s'; run 'deployctl --help'", name);
    if (o->no_flag && o->config_key == NULL)
        return dc_error_set(err,
                            "--%s cannot be given on the command line (other users see "
                            "arguments); set %s instead%s",
                            name, o->env[0],
                            o->id == DC_OPT_ENCRYPTION_KEY
                                ? ", or better give a key file (--encryption-key-file FILE)"
                                : "");
    if (o->no_flag)
        return dc_error_set(err,
                            "--%s cannot be given on the command line (other users see "
                            "arguments); set %s or %s in the config file",
                            name, o->env[0], o->config_key);
    if (take_value(o, eq ? eq + 1 : NULL, argc, argv, i, &value, err) != 0)
        return -1;
    snprintf(origin, sizeof(origin), "--%s", o->name);
    record_flag(cli, flags, nflags, o, value, origin);
    return 0;
}

/* "-q", "-qv", "-j4", "-j 4" */
static int parse_short(dc_cli_t *cli, int argc, char **argv, int *i, parsed_flag_t *flags,
                       int *nflags, dc_error_t *err)
{
    for (const char *p = argv[*i] + 1; *p; p++) {
        const dc_option_t *o = dc_option_by_short(*p);
        const char *value;
        char origin[8];
        if (o == NULL)
            return dc_error_set(err, "unknown option '-%c'; run 'deployctl --help'", *p);
        snprintf(origin, sizeof(origin), "-%c", *p);
        if (take_value(o, o->type == DC_TYPE_BOOL || p[1] == '\0' ? NULL : p + 1, argc, argv, i,
                       &value, err) != 0)
            return -1;
        record_flag(cli, flags, nflags, o, value, origin);
        if (o->type != DC_TYPE_BOOL)
            return 0; /* the rest of the cluster was its value */
    }
    return 0;
}

static int parse_argv(dc_cli_t *cli, int argc, char **argv, parsed_flag_t *flags, int *nflags,
                      dc_error_t *err)
{
    bool only_args = false;
    cli->args = dc_calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        int rc = 0;
        if (!only_args && strcmp(arg, "--") == 0) {
            only_args = true;
        } else if (!only_args && strncmp(arg, "--", 2) == 0) {
            rc = parse_long(cli, argc, argv, &i, flags, nflags, err);
        } else if (!only_args && arg[0] == '-' && arg[1] != '\0') {
            rc = parse_short(cli, argc, argv, &i, flags, nflags, err);
        } else if (cli->command == NULL && !only_args && strcmp(arg, "help") == 0 &&
                   cli->arg_count == 0) {
            dc_config_offer(&cli->config, DC_OPT_HELP, "true", DC_SRC_FLAG, "help");
        } else if (cli->command == NULL && dc_config_get(&cli->config, DC_OPT_HELP) == NULL) {
            cli->command = find_command(arg);
            if (cli->command == NULL)
                rc = dc_error_set(err,
                                  "unknown command '%s'; run 'deployctl --help' to see "
                                  "the commands",
                                  arg);
        } else {
            cli->args[cli->arg_count++] = arg;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Options given for a command that does not take them are errors, not silently ignored. */
static int check_flags_apply(const dc_cli_t *cli, const parsed_flag_t *flags, int nflags,
                             dc_error_t *err)
{
    for (int i = 0; i < nflags; i++) {
        const dc_option_t *o = flags[i].option;
        if (o->commands == DC_CMD_ALL)
            continue;
        if (cli->command == NULL || !(o->commands & cli->command->mask))
            return dc_error_set(err, "option %s does not apply to %s; run 'deployctl %s --help'",
                                flags[i].origin,
                                cli->command ? cli->command->name : "deployctl without a command",
                                cli->command ? cli->command->name : "");
    }
    return 0;
}

/* ---- configuration ---- */

static int load_configuration(dc_cli_t *cli, dc_error_t *err)
{
    const char *path = dc_config_get(&cli->config, DC_OPT_CONFIG);
    if (path == NULL) {
        const char *env = getenv("DEPLOYCTL_CONFIG");
        if (env != NULL && *env)
            path = env;
    }
    if (path != NULL) {
        if (dc_config_load_file(&cli->config, path, err) != 0)
            return -1;
    } else if (access(DC_DEFAULT_CONFIG_PATH, F_OK) == 0) {
        if (dc_config_load_file(&cli->config, DC_DEFAULT_CONFIG_PATH, err) != 0)
            return -1;
    }
    if (dc_config_check_env(&cli->config, err) != 0 || dc_config_finish(&cli->config, err) != 0)
        return -1;

    /* Defaults that depend on the machine. */
    char *state = NULL;
    if (dc_config_get(&cli->config, DC_OPT_STATE_DIR) == NULL) {
        state = dc_config_default_state_dir();
        dc_config_offer(&cli->config, DC_OPT_STATE_DIR, state, DC_SRC_DEFAULT, "default");
        free(state);
    }
    if (dc_config_get(&cli->config, DC_OPT_STORE) == NULL) {
        char *store =
            dc_sprintf("file://%s/snapshots", dc_config_get(&cli->config, DC_OPT_STATE_DIR));
        dc_config_offer(&cli->config, DC_OPT_STORE, store, DC_SRC_DEFAULT, "default");
        free(store);
    }
    if (dc_config_get(&cli->config, DC_OPT_JOBS) == NULL) {
        char jobs[16];
        int n = dc_cpu_count();
        snprintf(jobs, sizeof(jobs), "%d", n > 64 ? 64 : n);
        dc_config_offer(&cli->config, DC_OPT_JOBS, jobs, DC_SRC_DEFAULT, "default");
    }
    return 0;
}

static void configure_logging(const dc_cli_t *cli)
{
    const char *level = dc_config_get(&cli->config, DC_OPT_LOG_LEVEL);
    dc_log_level_t l = DC_LOG_INFO;
    if (strcmp(level, "error") == 0)
        l = DC_LOG_ERROR;
    else if (strcmp(level, "warning") == 0)
        l = DC_LOG_WARN;
    else if (strcmp(level, "debug") == 0)
        l = DC_LOG_DEBUG;
    if (dc_config_flag(&cli->config, DC_OPT_QUIET))
        l = DC_LOG_ERROR;
    if (dc_config_flag(&cli->config, DC_OPT_VERBOSE))
        l = DC_LOG_DEBUG;
    const char *format = dc_config_get(&cli->config, DC_OPT_LOG_FORMAT);
    dc_log_configure(l, strcmp(format, "json") == 0 ? DC_LOG_JSON : DC_LOG_TEXT);
    dc_progress_set_log_interval(
        (double)dc_config_duration_ms(&cli->config, DC_OPT_PROGRESS_INTERVAL) / 1000.0);
}

/* Hands the [s3] settings (and the AWS_* environment they were resolved from) to the store. */
static void configure_s3(const dc_cli_t *cli)
{
    const dc_config_t *c = &cli->config;
    dc_store_s3_settings_t s3 = {
        .endpoint = dc_config_get(c, DC_OPT_S3_ENDPOINT),
        .endpoint_origin = c->settings[DC_OPT_S3_ENDPOINT].origin,
        .region = dc_config_get(c, DC_OPT_S3_REGION),
        .access_key_id = dc_config_get(c, DC_OPT_S3_ACCESS_KEY_ID),
        .access_key_id_origin = c->settings[DC_OPT_S3_ACCESS_KEY_ID].origin,
        .secret_access_key = dc_config_get(c, DC_OPT_S3_SECRET_ACCESS_KEY),
        .secret_access_key_origin = c->settings[DC_OPT_S3_SECRET_ACCESS_KEY].origin,
        .secret_access_key_file = dc_config_get(c, DC_OPT_S3_SECRET_ACCESS_KEY_FILE),
        .session_token = dc_config_get(c, DC_OPT_S3_SESSION_TOKEN),
        .ca_file = dc_config_get(c, DC_OPT_S3_CA_FILE),
        .path_style = dc_config_flag(c, DC_OPT_S3_PATH_STYLE),
        .part_size = dc_config_size(c, DC_OPT_S3_PART_SIZE),
        .timeout_ms = dc_config_duration_ms(c, DC_OPT_S3_TIMEOUT),
        .max_attempts = (int)dc_config_int(c, DC_OPT_S3_MAX_ATTEMPTS),
    };
    if (s3.secret_access_key != NULL)
        dc_secret_register(s3.secret_access_key);
    if (s3.session_token != NULL)
        dc_secret_register(s3.session_token);
    dc_store_s3_configure(&s3);
}

char *dc_cli_url_option(dc_cli_t *cli, int option)
{
    const char *value = dc_config_get(&cli->config, option);
    if (value == NULL)
        return NULL;
    char *schema = NULL;
    dc_pg_register_secrets(value);
    char *url = dc_pg_url_for_libpq(value, &schema);
    free(schema);
    return url;
}

int dc_cli_open_store(dc_cli_t *cli, dc_store_t **out, dc_error_t *err)
{
    return dc_store_open(dc_config_get(&cli->config, DC_OPT_STORE), out, err);
}

int dc_cli_key(dc_cli_t *cli, const dc_key_t **out, dc_error_t *err)
{
    const dc_config_t *c = &cli->config;
    if (!cli->key_loaded) {
        const char *value = dc_config_get(c, DC_OPT_ENCRYPTION_KEY);
        if (value != NULL)
            dc_secret_register(value);
        if (dc_key_resolve(dc_config_get(c, DC_OPT_ENCRYPTION_KEY_FILE), value,
                           c->settings[DC_OPT_ENCRYPTION_KEY].origin, &cli->key, err) != 0)
            return -1;
        cli->key_loaded = true;
    }
    *out = cli->key;
    return 0;
}

int dc_cli_backup_key(dc_cli_t *cli, const dc_key_t **out, dc_error_t *err)
{
    const char *mode = dc_config_get(&cli->config, DC_OPT_ENCRYPTION);
    *out = NULL;
    if (strcmp(mode, "off") == 0)
        return 0;
    if (dc_cli_key(cli, out, err) != 0)
        return -1;
    if (*out == NULL && strcmp(mode, "on") == 0)
        return dc_error_set(err,
                            "encryption is on (%s) but no key is given: set "
                            "--encryption-key-file FILE, DEPLOYCTL_ENCRYPTION_KEY_FILE, "
                            "DEPLOYCTL_ENCRYPTION_KEY or encryption.key_file in the config "
                            "file",
                            cli->config.settings[DC_OPT_ENCRYPTION].origin);
    return 0;
}

int dc_cli_database_url(dc_cli_t *cli, const char **out, dc_error_t *err)
{
    const char *url = dc_config_get(&cli->config, DC_OPT_DATABASE);
    if (url == NULL || *url == '\0')
        return dc_error_set(err,
                            "no database given: use --database URL, set "
                            "DATABASE_URL_DIRECT, DIRECT_URL or DATABASE_URL, or database.url in "
                            "the config file");
    if (cli->database_url == NULL) {
        dc_pg_register_secrets(url);
        cli->database_url = dc_pg_url_for_libpq(url, &cli->prisma_schema);
    }
    *out = cli->database_url;
    return 0;
}

const char *dc_cli_database_name(dc_cli_t *cli, char *buf, size_t size, dc_error_t *err, int *rc)
{
    const char *url;
    *rc = 0;
    if (dc_config_get(&cli->config, DC_OPT_DATABASE) == NULL)
        return NULL;
    if (dc_cli_database_url(cli, &url, err) != 0 || dc_pg_url_database(url, buf, size, err) != 0) {
        *rc = -1;
        return NULL;
    }
    return buf;
}

/* ---- main ---- */

static int run_cli(dc_cli_t *cli, int argc, char **argv, dc_error_t *err)
{
    parsed_flag_t *flags = dc_calloc((size_t)argc + 1, sizeof(parsed_flag_t));
    int nflags = 0;
    int rc = parse_argv(cli, argc, argv, flags, &nflags, err);
    if (rc == 0 && dc_config_flag(&cli->config, DC_OPT_VERSION)) {
        printf("deployctl %s\n", DEPLOYCTL_VERSION);
        free(flags);
        return 0;
    }
    if (rc == 0 && dc_config_flag(&cli->config, DC_OPT_HELP)) {
        if (cli->command == NULL && cli->arg_count == 1 && find_command(cli->args[0]))
            cli->command = find_command(cli->args[0]); /* deployctl help backup */
        if (cli->command)
            print_command_help(stdout, cli->command);
        else
            print_tool_help(stdout);
        free(flags);
        return 0;
    }
    if (rc == 0 && cli->command == NULL) {
        print_tool_help(stderr);
        rc = dc_error_set(err, "no command given");
    }
    if (rc == 0)
        rc = check_flags_apply(cli, flags, nflags, err);
    free(flags);
    if (rc != 0)
        return -1;
    if (cli->arg_count < cli->command->min_args || cli->arg_count > cli->command->max_args)
        return dc_error_set(err, "usage: deployctl %s %s", cli->command->name, cli->command->usage);
    if (load_configuration(cli, err) != 0)
        return -1;
    configure_logging(cli);
    configure_s3(cli);
    cli->json = dc_config_flag(&cli->config, DC_OPT_JSON);
    dc_signals_install();
    return cli->command->run(cli, err);
}

int dc_cli_main(int argc, char **argv)
{
    dc_cli_t cli;
    dc_error_t err;
    memset(&cli, 0, sizeof(cli));
    dc_config_init(&cli.config);
    dc_error_clear(&err);

    int rc = run_cli(&cli, argc, argv, &err);
    int code = DC_EXIT_OK;
    if (rc != 0) {
        dc_log_report_error(&err);
        code = err.exit_code != DC_EXIT_OK ? err.exit_code : DC_EXIT_ERROR;
    }
    if (fflush(stdout) != 0 && code == DC_EXIT_OK) {
        dc_error_set(&err, "cannot write to standard output");
        dc_log_report_error(&err);
        code = DC_EXIT_ERROR;
    }
    free(cli.args);
    free(cli.database_url);
    free(cli.prisma_schema);
    dc_key_free(cli.key);
    dc_config_free(&cli.config);
    dc_secrets_forget_all();
    return code;
}
