#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# The Debian package: built by CPack from this build, inspected (files, conffiles, depends from
# dpkg-shlibdeps, maintainer scripts), installed into this machine with dpkg -i, then the
# installed deployctl --version, man -w deployctl and its rendering without a groff warning,
# the bash completion, the system user, and the installed units under systemd-analyze verify.
# A changed conffile survives dpkg -r and goes with --purge; the machine is left as it was.
# `cmake --install` on its own writes nothing under /etc.
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup packaging_deb
[[ $(id -u) -eq 0 ]] || skip "dpkg -i needs root"
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps man groff; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup-debian.sh installs it)"
done

# One package test at a time on this machine (a sanitizer run may run beside a normal one).
exec 9>/tmp/deployctl-packaging-deb.lock
flock -w 900 9 || fail "another packaging_deb run holds /tmp/deployctl-packaging-deb.lock"
if dpkg-query -W -f='${Status}' deployctl 2>/dev/null | grep -q 'installed'; then
    skip "a deployctl package is already installed here; not replacing it"
fi
[[ ! -e /usr/bin/deployctl ]] || skip "/usr/bin/deployctl exists (not from a package); not overwriting it"
had_user=0 had_state=0
getent passwd deployctl >/dev/null && had_user=1
[[ -e /var/lib/deployctl ]] && had_state=1
cleanup() {
    local rc=$?
    if dpkg-query -W -f='${Status}' deployctl 2>/dev/null | grep -q -v 'not-installed'; then
        dpkg_retry --purge deployctl >/dev/null 2>&1 || echo "could not purge deployctl" >&2
    fi
    if [[ $had_user -eq 0 ]] && getent passwd deployctl >/dev/null; then
        userdel deployctl 2>/dev/null || true
        getent group deployctl >/dev/null && groupdel deployctl 2>/dev/null || true
    fi
    [[ $had_state -eq 1 ]] || rmdir /var/lib/deployctl 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
# dpkg refuses at once while apt or another dpkg holds its lock: wait for it a while.
dpkg_retry() {
    local i
    for ((i = 0; i < 60; i++)); do
        if dpkg "$@" >"$WORK/dpkg.out" 2>&1; then
            cat "$WORK/dpkg.out"
            return 0
        fi
        grep -q -i 'lock' "$WORK/dpkg.out" || {
            cat "$WORK/dpkg.out" >&2
            return 1
        }
        sleep 2
    done
    cat "$WORK/dpkg.out" >&2
    return 1
}

# ---- build and inspect ----
(cd "$WORK" && cpack -G DEB -B "$WORK/pkg" --config "$DC_BUILD_DIR/CPackConfig.cmake") >"$WORK/cpack.out" 2>&1 ||
    fail "cpack: $(tail -20 "$WORK/cpack.out")"
deb=$(ls "$WORK"/pkg/deployctl_*.deb)
version=$("$DC_BUILD_DIR/deployctl" --version | awk '{print $2}')
assert_field() { # field expected
    assert_eq "$2" "$(dpkg-deb -f "$deb" "$1")" "control field $1"
}
assert_field Package deployctl
assert_field Version "$version"
assert_field Architecture "$(dpkg --print-architecture)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libpq5 libzstd1 libarchive13 libcurl4 libssl3 libjansson4 libinih1 libpg-query postgresql-client; do
    [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$WORK/files"
for f in /usr/bin/deployctl /usr/share/man/man1/deployctl.1.gz /etc/deployctl/deployctl.conf \
    /lib/systemd/system/deployctl-backup.service /lib/systemd/system/deployctl-backup.timer \
    /usr/lib/sysusers.d/deployctl.conf /usr/share/bash-completion/completions/deployctl \
    /usr/share/deployctl/hooks/ /usr/share/doc/deployctl/examples/deployctl-backup \
    /usr/share/doc/deployctl/examples/credentials.conf.example; do
    grep -qx -- "$f" "$WORK/files" || fail "$f is not in the package: $(cat "$WORK/files")"
done
dpkg-deb -e "$deb" "$WORK/control"
assert_conffiles() { [[ $(cat "$WORK/control/conffiles") == /etc/deployctl/deployctl.conf ]]; }
assert_conffiles || fail "conffiles: $(cat "$WORK/control/conffiles")"
for script in postinst postrm; do
    [[ -x $WORK/control/$script ]] || fail "$script is missing or not executable"
    sh -n "$WORK/control/$script" || fail "$script is not valid sh"
done
pass "cpack built $(basename "$deb"): files, conffiles, depends from the shared libraries"

# ---- install into this machine ----
dpkg_retry -i "$deb" >/dev/null || fail "dpkg -i failed"
assert_eq "deployctl $version" "$(/usr/bin/deployctl --version)" "the installed deployctl --version"
assert_eq /usr/share/man/man1/deployctl.1.gz "$(man -w deployctl 2>&1)" "man -w deployctl"
MANWIDTH=80 MANROFFOPT=-ww man deployctl >"$WORK/man.out" 2>"$WORK/man.err" || fail "man deployctl failed: $(cat "$WORK/man.err")"
[[ ! -s $WORK/man.err ]] || fail "man deployctl warns: $(cat "$WORK/man.err")"
grep -q 'EXIT STATUS' "$WORK/man.out" || fail "the rendered page has no EXIT STATUS"
dpkg-query -W -f='${Conffiles}\n' deployctl | grep -q '^ /etc/deployctl/deployctl.conf [0-9a-f]\{32\}$' ||
    fail "dpkg does not treat /etc/deployctl/deployctl.conf as a conffile: $(dpkg-query -W -f='${Conffiles}' deployctl)"
getent passwd deployctl | grep -q ':/var/lib/deployctl:' || fail "postinst made no deployctl user: $(getent passwd deployctl)"
[[ $had_state -eq 1 || $(stat -c '%U %a' /var/lib/deployctl) == "deployctl 700" ]] ||
    fail "postinst made no private state directory: $(stat -c '%U %a' /var/lib/deployctl 2>&1)"
pass "dpkg -i: deployctl --version, man -w deployctl, the conffile, the deployctl user and its directory"

out=$(bash -c 'source /usr/share/bash-completion/completions/deployctl && complete -p deployctl &&
    COMP_WORDS=(deployctl ba) COMP_CWORD=1 && _deployctl && echo "${COMPREPLY[*]}" &&
    COMP_WORDS=(deployctl backup --metrics) COMP_CWORD=2 && _deployctl && echo "${COMPREPLY[*]}" &&
    COMP_WORDS=(deployctl rec) COMP_CWORD=1 && _deployctl && echo "${COMPREPLY[*]}" &&
    COMP_WORDS=(deployctl release --smoke-w) COMP_CWORD=2 && _deployctl && echo "${COMPREPLY[*]}" &&
    COMP_WORDS=(deployctl release --on-failure r) COMP_CWORD=3 && _deployctl && echo "${COMPREPLY[*]}"') ||
    fail "the completion does not load: $out"
[[ $out == $'complete -F _deployctl deployctl\nbackup\n--metrics-file\nrecover\n--smoke-window\nrestore' ]] ||
    fail "completion: $out"
pass "bash completion: complete -p deployctl, commands and options from the installed binary"

if command -v systemd-analyze >/dev/null; then
    (cd / && systemd-analyze verify /lib/systemd/system/deployctl-backup.service \
        /lib/systemd/system/deployctl-backup.timer) >"$WORK/verify.out" 2>&1 ||
        fail "systemd-analyze verify of the installed units: $(cat "$WORK/verify.out")"
    [[ ! -s $WORK/verify.out ]] || fail "systemd-analyze verify warns: $(cat "$WORK/verify.out")"
    pass "the installed units pass systemd-analyze verify"
fi

# ---- remove: a changed conffile stays, purge takes it ----
echo "# changed by the administrator" >>/etc/deployctl/deployctl.conf
dpkg_retry -r deployctl >/dev/null || fail "dpkg -r failed"
[[ ! -e /usr/bin/deployctl ]] || fail "/usr/bin/deployctl survived dpkg -r"
grep -q 'changed by the administrator' /etc/deployctl/deployctl.conf || fail "dpkg -r did not keep the changed conffile"
dpkg_retry --purge deployctl >/dev/null || fail "dpkg --purge failed"
[[ ! -e /etc/deployctl/deployctl.conf ]] || fail "the conffile survived --purge"
pass "dpkg -r keeps the changed conffile, --purge removes it"

# ---- cmake --install alone never writes to /etc ----
DESTDIR=$WORK/destdir cmake --install "$DC_BUILD_DIR" --prefix /usr >/dev/null
[[ -x $WORK/destdir/usr/bin/deployctl && ! -e $WORK/destdir/etc ]] || fail "cmake --install: $(cd "$WORK/destdir" && find . | head)"
pass "cmake --install installs under the prefix only"
