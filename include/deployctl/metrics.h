/* Metrics for Prometheus, in node_exporter's textfile-collector format: one file that several
 * commands (backup, verify, prune, release) update in turn. An update replaces only the samples
 * it names (same metric name and labels) and keeps every other one, so a backup does not erase
 * the last release's outcome. The file is replaced atomically (temporary file in the same
 * directory, fsync, rename), so the collector never reads half of it. */
#ifndef DEPLOYCTL_METRICS_H
#define DEPLOYCTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "deployctl/error.h"

typedef struct dc_metric {
    const char *name;     /* [a-zA-Z_:][a-zA-Z0-9_:]*, e.g. deployctl_backup_last_bytes */
    const char *help;     /* the # HELP text (one line) */
    const char *database; /* the value of the label database="...", or NULL for no label */
    double value;
} dc_metric_t;

/* Merges the samples into the file at path (created when missing) and replaces it atomically.
 * Every metric is a gauge. Errors name the path; a failed update leaves the old file as it was
 * and no temporary file behind. Concurrent updaters are serialized by a lock on the directory. */
int dc_metrics_update(const char *path, const dc_metric_t *metrics, size_t count, dc_error_t *err);

/* Checks, before a command starts its work, that path can be written later: an absolute or
 * relative file name in an existing, writable directory, not a directory itself. */
int dc_metrics_check_path(const char *path, dc_error_t *err);

/* A release's outcome, for `deployctl release`: deployctl_release_last_outcome (its exit code:
 * 0 released, 2 rolled back, 3 rollback failed, 4 precheck refused, 75 locked out), its start,
 * end and duration, and, when it released (0), deployctl_release_last_success_timestamp_seconds.
 * Times are Unix timestamps (dc_metrics_now()). */
int dc_metrics_release(const char *path, const char *database, int exit_code, double start,
                       double end, dc_error_t *err);

/* The current time as a Unix timestamp in seconds, with sub-second precision. */
double dc_metrics_now(void);

#endif
