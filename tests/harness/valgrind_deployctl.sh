#!/usr/bin/env bash
# deployctl under valgrind's memcheck: the tests call this in place of the binary when they run
# through valgrind_run.sh (DEPLOYCTL points here). exec keeps the process id, so a test that
# signals "$!" signals deployctl itself. One log per process in DC_VALGRIND_LOGS, checked by
# valgrind_run.sh when the test ends. The programs deployctl starts (hooks, pg_dump, the
# migrate command) run natively: --trace-children=no is the default, and a forked child that
# fails to exec stays silent (--child-silent-after-fork).
: "${DC_VALGRIND_LOGS:?DC_VALGRIND_LOGS unset: run through tests/harness/valgrind_run.sh}"
: "${DC_VALGRIND_BINARY:?DC_VALGRIND_BINARY unset: run through tests/harness/valgrind_run.sh}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec valgrind --tool=memcheck --error-exitcode=97 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --track-fds=no --child-silent-after-fork=yes --num-callers=30 --gen-suppressions=all \
    --suppressions="$here/../valgrind.supp" --log-file="$DC_VALGRIND_LOGS/%p.log" \
    "$DC_VALGRIND_BINARY" "$@"
