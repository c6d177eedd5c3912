/* The command line: parsing argv against the option table, loading the configuration, and
 * dispatching to a command. Commands are thin: they wire settings to library calls and print. */
#ifndef DEPLOYCTL_CLI_H
#define DEPLOYCTL_CLI_H

#include <stdbool.h>

#include "deployctl/backup.h"
#include "deployctl/check.h"
#include "deployctl/migrate.h"
#include "deployctl/config.h"
#include "deployctl/error.h"
#include "deployctl/metrics.h"
#include "deployctl/store.h"

typedef struct dc_cli {
    dc_config_t config;
    const struct dc_command *command;
    char **args; /* positional arguments after the command */
    int arg_count;
    bool json;
    char *database_url;  /* as libpq takes it (Prisma-only parameters removed) */
    char *prisma_schema; /* the URL's ?schema=, or NULL */
    struct dc_key *key;  /* the snapshot key, once loaded */
    bool key_loaded;
} dc_cli_t;

typedef struct dc_command {
    const char *name;
    dc_command_mask_t mask;
    const char *usage; /* after "deployctl <name>" */
    const char *summary;
    const char *description;
    int min_args;
    int max_args;
    int (*run)(dc_cli_t *cli, dc_error_t *err);
} dc_command_t;

int dc_cli_main(int argc, char **argv);

/* Helpers for commands. */
int dc_cli_open_store(dc_cli_t *cli, dc_store_t **out, dc_error_t *err);
/* The database URL (Prisma-only parameters removed), or an error saying how to give one. */
/* A PostgreSQL URL option (--target, --scratch, --pooled-url) in libpq form, its password
 * registered as a secret (caller frees); NULL when the option is not set. */
char *dc_cli_url_option(dc_cli_t *cli, int option);
int dc_cli_database_url(dc_cli_t *cli, const char **out, dc_error_t *err);

int dc_cmd_backup(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_snapshots(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_show(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_restore(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_verify(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_check(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_lint(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_migrate(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_prune(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_release(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_recover(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_history(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_rehearse(dc_cli_t *cli, dc_error_t *err);
int dc_cmd_promote_check(dc_cli_t *cli, dc_error_t *err);

/* Rehearses the pending migrations on snapshot ref (rehearse, release --rehearse); free r with
 * dc_rehearse_result_free whatever it returns. */
struct dc_rehearse_result;
int dc_cli_rehearse(dc_cli_t *cli, const char *ref, struct dc_rehearse_result *r, dc_error_t *err);
/* The rehearsal's settings from the configuration (migrations, key, --scratch, --max-lock,
 * maintenance_work_mem); store, database and ref are the caller's. *scratch (caller frees) and
 * work_mem hold strings opts points to. */
struct dc_rehearse_opts;
int dc_cli_rehearse_opts(dc_cli_t *cli, struct dc_rehearse_opts *opts, char **scratch,
                         char *work_mem, size_t size, dc_error_t *err);
/* Exit 4 with what was crossed when the rehearsal failed a threshold or a migration, else 0. */
int dc_cli_rehearse_outcome(const struct dc_rehearse_result *r, dc_error_t *err);

/* The migration runner's settings (the database URL resolved). */
int dc_cli_migrate_opts(dc_cli_t *cli, dc_migrate_opts_t *opts, dc_error_t *err);
/* The precheck's settings. */
void dc_cli_check_opts(dc_cli_t *cli, dc_check_opts_t *opts);

/* maintenance_work_mem for restores, in PostgreSQL's units ("262144kB"), in out; NULL when not
 * configured (the server's own setting applies). */
const char *dc_cli_maintenance_work_mem(dc_cli_t *cli, char *out, size_t size);
/* The backup settings from the configuration (for backups, and pre-restore snapshots). */
void dc_cli_backup_opts(dc_cli_t *cli, dc_backup_opts_t *opts);
/* The snapshot key, if one is configured (*out = NULL when none); loaded once. */
int dc_cli_key(dc_cli_t *cli, const struct dc_key **out, dc_error_t *err);
/* The key new snapshots are encrypted with, by the encryption mode: NULL when off, or in auto
 * mode without a key; an error in on mode without one. */
int dc_cli_backup_key(dc_cli_t *cli, const struct dc_key **out, dc_error_t *err);
/* The name of the database --database designates (without connecting), or NULL when none is
 * given; buf holds it. */
const char *dc_cli_database_name(dc_cli_t *cli, char *buf, size_t size, dc_error_t *err, int *rc);

/* The --metrics-file path (NULL when none is configured), checked to be writable. */
int dc_cli_metrics_path(dc_cli_t *cli, const char **out, dc_error_t *err);
/* Updates the metrics file; a failure is logged as a warning and does not change the outcome. */
void dc_cli_metrics_write(const char *path, const dc_metric_t *metrics, size_t count);

#endif
