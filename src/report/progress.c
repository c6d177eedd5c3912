/* Progress reporting: bytes, rows, items, throughput and an ETA from the catalog's estimates;
 * a status line on a terminal, an info log line every few seconds otherwise. */
#include <stdio.h>

#include "deployctl/log.h"
#include "deployctl/progress.h"
#include "deployctl/util.h"

#define STATUS_INTERVAL 0.25

static double log_interval = 10.0;

void dc_progress_set_log_interval(double seconds)
{
    log_interval = seconds > 0 ? seconds : 10.0;
}

void dc_progress_init(dc_progress_t *p, const char *label, double estimated_rows,
                      double estimated_bytes, uint32_t items_total)
{
    p->label = label;
    atomic_store(&p->rows, 0);
    atomic_store(&p->bytes, 0);
    atomic_store(&p->stored, 0);
    atomic_store(&p->items_done, 0);
    p->items_total = items_total;
    p->estimated_rows = estimated_rows;
    p->estimated_bytes = estimated_bytes;
    p->started = dc_now_seconds();
    p->last_report = p->started;
    p->log_interval = log_interval;
}

/* The fraction done, from rows when the catalog knows them, else from bytes; -1 if unknown. */
static double fraction_done(const dc_progress_t *p, uint64_t rows, uint64_t bytes)
{
    double f = -1;
    if (p->estimated_rows > 0)
        f = (double)rows / p->estimated_rows;
    else if (p->estimated_bytes > 0)
        f = (double)bytes / p->estimated_bytes;
    if (f > 0.99)
        f = 0.99; /* estimates are estimates: never claim done before it is */
    return f;
}

static void format_line(const dc_progress_t *p, char *out, size_t out_size)
{
    uint64_t rows = atomic_load(&p->rows);
    uint64_t bytes = atomic_load(&p->bytes);
    double elapsed = dc_now_seconds() - p->started;
    double rate = elapsed > 0 ? (double)bytes / elapsed : 0;
    double f = fraction_done(p, rows, bytes);
    char sbytes[32], srate[32], srows[32], seta[32], spct[16];

    dc_format_bytes(bytes, sbytes, sizeof(sbytes));
    dc_format_bytes((uint64_t)rate, srate, sizeof(srate));
    dc_format_count(rows, srows, sizeof(srows));
    if (f > 0.01 && elapsed > 1) {
        dc_format_duration(elapsed / f - elapsed, seta, sizeof(seta));
        snprintf(spct, sizeof(spct), "%d%% ", (int)(f * 100));
    } else {
        snprintf(seta, sizeof(seta), "?");
        spct[0] = '\0';
    }
    snprintf(out, out_size, "%s: %s%s, %s rows, %u/%u tables, %s/s, ETA %s", p->label, spct, sbytes,
             srows, atomic_load(&p->items_done), p->items_total, srate, seta);
}

void dc_progress_report(dc_progress_t *p)
{
    double now = dc_now_seconds();
    char line[256];
    if (dc_log_stderr_is_tty()) {
        if (now - p->last_report < STATUS_INTERVAL)
            return;
        format_line(p, line, sizeof(line));
        dc_log_status("%s", line);
        p->last_report = now;
    } else if (now - p->last_report >= p->log_interval) {
        format_line(p, line, sizeof(line));
        dc_log_info("%s", line);
        p->last_report = now;
    }
}

void dc_progress_finish(dc_progress_t *p)
{
    (void)p;
    dc_log_status_clear();
}
