/* What the HTTP runner (smoke.c) and the SQL runner (smoke_sql.c) share: the run's clock and
 * window, the retry schedule, and the one place attempts are recorded (under a lock, since the
 * SQL checks run in their own thread beside the HTTP ones). Private to src/smoke/. */
#ifndef DEPLOYCTL_SMOKE_INTERN_H
#define DEPLOYCTL_SMOKE_INTERN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "deployctl/smoke.h"

typedef struct dc_smoke_run {
    const dc_smoke_check_t *checks;
    size_t count;
    dc_smoke_opts_t opts; /* defaults filled in */
    uint64_t start_ms;    /* monotonic clock when the run began */
    pthread_mutex_t lock; /* guards out and attempt_cap */
    dc_smoke_result_t *out;
    size_t attempt_cap;
} dc_smoke_run_t;

/* Milliseconds since the run began. */
uint64_t dc_smoke_clock_ms(const dc_smoke_run_t *run);

/* The timeout of an attempt starting at now_ms: the request timeout, cut to what is left of the
 * window so that the run ends with it; a check's first attempt always gets the whole request
 * timeout (a window of 0 still means one real attempt). */
uint64_t dc_smoke_attempt_timeout(const dc_smoke_run_t *run, uint64_t now_ms, bool first);

/* After an attempt that did not pass ended at end_ms: true with *next_ms when another attempt
 * fits in the window, false when the check has run out of window. */
bool dc_smoke_schedule_retry(const dc_smoke_run_t *run, uint64_t end_ms, uint64_t *next_ms);

/* Appends an attempt to the result and updates its check's counts (thread-safe). */
void dc_smoke_record(dc_smoke_run_t *run, const dc_smoke_attempt_t *attempt);

/* Runs every SQL check of the run until each passed or the window closed (a pthread start
 * routine; returns NULL). */
void *dc_smoke_sql_thread(void *run);

#endif
