/* Signal handling: a flag that long-running loops check, and (when a command asks) a cancel
 * request for the query it is blocked in; nothing else happens in a handler. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "deployctl/signals.h"

static volatile sig_atomic_t received_signal;
/* The query to cancel on a stop signal (dc_signals_cancel_conn), or NULL. */
static PGcancel *volatile cancel_target;

static void on_signal(int signo)
{
    int saved = errno;
    received_signal = signo;
    PGcancel *target = cancel_target;
    if (target != NULL) {
        char ignored[256]; /* a local buffer: PQcancel is then async-signal-safe */
        PQcancel(target, ignored, sizeof(ignored));
    }
    errno = saved;
}

void dc_signals_cancel_conn(PGconn *conn)
{
    PGcancel *next = conn != NULL ? PQgetCancel(conn) : NULL;
    sigset_t all, old;
    sigfillset(&all);
    /* No handler may run while the target is swapped (and the old one then freed). */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    PGcancel *prev = cancel_target;
    cancel_target = next;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prev != NULL)
        PQfreeCancel(prev);
}

void dc_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool dc_signal_received(int *signo)
{
    if (received_signal == 0)
        return false;
    if (signo != NULL)
        *signo = received_signal;
    return true;
}

int dc_signal_check(dc_error_t *err)
{
    int signo = 0;
    if (dc_signal_received(&signo))
        return dc_error_set(err, "interrupted by signal %d", signo);
    return 0;
}

void dc_signal_clear(void)
{
    received_signal = 0;
}
