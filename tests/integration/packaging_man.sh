#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# The manual page docs/deployctl.1: groff finds nothing to warn about (-ww), `man -l` renders it
# without a message, it has the sections a manual page needs, and it describes every command
# and mentions every option that the built deployctl's --help lists (a new command or option
# without a line in the manual page fails here).
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup packaging_man
for tool in groff man; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (Debian packages groff-base, man-db)"
done
page=$DC_SOURCE_DIR/docs/deployctl.1

groff -man -ww -z "$page" 2>"$WORK/groff.err" || fail "groff failed: $(cat "$WORK/groff.err")"
[[ ! -s $WORK/groff.err ]] || fail "groff warns about the manual page: $(cat "$WORK/groff.err")"
MANWIDTH=80 MANROFFOPT=-ww man -l "$page" >"$WORK/rendered" 2>"$WORK/man.err" || fail "man -l failed: $(cat "$WORK/man.err")"
[[ ! -s $WORK/man.err ]] || fail "man -l warns: $(cat "$WORK/man.err")"
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS ENVIRONMENT FILES 'EXIT STATUS' 'SEE ALSO'; do
    grep -q "^$section" "$WORK/rendered" || fail "the manual page has no $section section"
done
pass "groff -ww and man -l render it without a warning; the usual sections are there"

# The words that open each .TP entry (commands are described in such entries).
entries=$(awk '/^\.TP/ { getline; print }' "$page" | sed -E 's/\\-/-/g; s/\\f[BIRP]//g; s/^\.[A-Z]+ +"?//' | awk '{ print $1 }')
commands=$("$DEPLOYCTL" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
[[ $(wc -w <<<"$commands") -ge 9 ]] || fail "too few commands in deployctl --help: $commands"
text=$(sed 's/\\-/-/g' "$WORK/rendered" "$page")
options=0
for c in $commands; do
    grep -qx -- "$c" <<<"$entries" || fail "the manual page has no entry for the command $c"
    for o in $("$DEPLOYCTL" "$c" --help | grep -o -E '^ +(-[a-zA-Z], )?--[a-z0-9-]+' | grep -o -E -- '--[a-z0-9-]+'); do
        grep -q -- "$o" <<<"$text" || fail "the manual page does not mention $o ('deployctl $c --help' lists it)"
        options=$((options + 1))
    done
done
pass "every command ($(wc -w <<<"$commands")) has an entry and every option a mention ($options checked)"
