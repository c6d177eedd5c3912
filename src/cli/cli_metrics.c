/* --metrics-file for the commands that report to Prometheus: the path is checked before the
 * command does any work (a typo fails at once, not after a six-hour backup), and a write that
 * fails afterwards is a warning: the command's own outcome, and exit code, stand. */
#include "deployctl/cli.h"
#include "deployctl/log.h"

int dc_cli_metrics_path(dc_cli_t *cli, const char **out, dc_error_t *err)
{
    *out = dc_config_get(&cli->config, DC_OPT_METRICS_FILE);
    if (*out == NULL)
        return 0;
    if (dc_metrics_check_path(*out, err) != 0)
        return dc_error_append(err, " (set from %s)",
                               cli->config.settings[DC_OPT_METRICS_FILE].origin);
    return 0;
}

void dc_cli_metrics_write(const char *path, const dc_metric_t *metrics, size_t count)
{
    dc_error_t err;
    if (path == NULL || count == 0)
        return;
    dc_error_clear(&err);
    if (dc_metrics_update(path, metrics, count, &err) != 0)
        dc_log_warn("metrics not updated: %s", err.message);
}
