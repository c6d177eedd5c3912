/* Progress of a long operation: counters any thread may bump, and a report made from one
 * thread: a self-rewriting status line on a terminal, a log line every few seconds otherwise. */
#ifndef DEPLOYCTL_PROGRESS_H
#define DEPLOYCTL_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct dc_progress {
    const char *label;
    _Atomic uint64_t rows;
    _Atomic uint64_t bytes;  /* uncompressed bytes moved */
    _Atomic uint64_t stored; /* bytes written to the store */
    _Atomic uint32_t items_done;
    uint32_t items_total;
    double estimated_rows;  /* < 0: unknown */
    double estimated_bytes; /* < 0: unknown */
    double started;
    double last_report;
    double log_interval;
} dc_progress_t;

void dc_progress_init(dc_progress_t *p, const char *label, double estimated_rows,
                      double estimated_bytes, uint32_t items_total);
/* How often a log line is written when stderr is not a terminal (default 10 s). */
void dc_progress_set_log_interval(double seconds);
/* Reports if it is time to. Call it often from one thread. */
void dc_progress_report(dc_progress_t *p);
/* Clears the status line. */
void dc_progress_finish(dc_progress_t *p);

#endif
