/* Signals: SIGINT/SIGTERM/SIGHUP ask the running command to stop cleanly (abort what it is
 * writing, drop temporary objects); SIGPIPE is ignored so a closed pipe is an error, not death. */
#ifndef DEPLOYCTL_SIGNALS_H
#define DEPLOYCTL_SIGNALS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "deployctl/error.h"

void dc_signals_install(void);
/* True once a stop was asked for; *signo names the signal. */
bool dc_signal_received(int *signo);
/* -1 with "interrupted by signal N" in err once a stop was asked for, else 0. */
int dc_signal_check(dc_error_t *err);
/* While set, a stop signal also cancels the query running on conn (PQcancel, which is safe in a
 * signal handler, as psql does), so a command blocked in a query stops at once rather than when
 * the query ends. NULL unsets it; unset it before closing conn. For commands that query from one
 * thread: the signals are blocked in the calling thread while the target changes. */
void dc_signals_cancel_conn(PGconn *conn);
/* Forgets a stop asked for: for work that must still be done once the stop was honoured (a
 * release that was interrupted undoes what it did; a second signal stops that too). */
void dc_signal_clear(void);

#endif
