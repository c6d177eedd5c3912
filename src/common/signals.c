/* Signal handling: a flag that long-running loops check; nothing else happens in a handler. */
#include <signal.h>
#include <string.h>

#include "deployctl/signals.h"

static volatile sig_atomic_t received_signal;

static void on_signal(int signo)
{
    received_signal = signo;
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
