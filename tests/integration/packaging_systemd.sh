#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# The nightly backup's systemd units, checked by systemd itself: `systemd-analyze verify` on the
# service, the timer and the credentials drop-in (pointed at the built binary, with the manual
# page on MANPATH so Documentation= resolves) must print nothing at all; a broken copy proves
# the check sees warnings. The sandbox's exposure score stays low, the sysusers file creates
# the user (in a scratch root), and every ExecStart parses with the real binary.
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup packaging_systemd
command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian package systemd)"

units=$DC_SOURCE_DIR/packaging/systemd
# Copies whose ExecStart= runs the binary just built, and the manual page where man finds it.
mkdir -p "$WORK/units/deployctl-backup.service.d" "$WORK/man/man1"
sed "s#/usr/bin/deployctl#$DEPLOYCTL#g" "$units/deployctl-backup.service" >"$WORK/units/deployctl-backup.service"
cp "$units/deployctl-backup.timer" "$WORK/units/"
cp "$units/credentials.conf.example" "$WORK/units/deployctl-backup.service.d/credentials.conf"
cp "$DC_SOURCE_DIR/docs/deployctl.1" "$WORK/man/man1/"
grep -q "ExecStart=$DEPLOYCTL backup" "$WORK/units/deployctl-backup.service" || fail "ExecStart not pointed at $DEPLOYCTL"

verify() { # unit files... -> all output in $WORK/verify.out, status in $vrc
    set +e
    (cd "$WORK/units" && MANPATH=$WORK/man systemd-analyze verify "$@") >"$WORK/verify.out" 2>&1
    vrc=$?
    set -e
}
verify ./deployctl-backup.service ./deployctl-backup.timer
[[ $vrc -eq 0 && ! -s $WORK/verify.out ]] || fail "systemd-analyze verify (rc $vrc): $(cat "$WORK/verify.out")"
pass "systemd-analyze verify: the service, its credentials drop-in and the timer, without a warning"

# The check must see a warning: an unknown key in a copy.
cp -r "$WORK/units" "$WORK/units.good"
printf '[Service]\nProtectSystem=stricter\n' >"$WORK/units/deployctl-backup.service.d/broken.conf"
verify ./deployctl-backup.service
[[ -s $WORK/verify.out ]] || fail "a broken drop-in went unnoticed"
rm -rf "$WORK/units" && mv "$WORK/units.good" "$WORK/units"
pass "a broken copy is reported"

# The sandbox: systemd's own exposure score (0 best, 10 worst).
score=$(systemd-analyze security --offline=yes "$WORK/units/deployctl-backup.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for deployctl-backup.service: \([0-9.]*\).*/\1/p')
[[ -n $score ]] || fail "no exposure score from systemd-analyze security"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure level $score, more than 2.0"
for setting in ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes PrivateDevices=yes \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' StateDirectory=deployctl User=deployctl \
    EnvironmentFile=-/etc/deployctl/env Type=oneshot; do
    grep -qx "$setting" "$units/deployctl-backup.service" || fail "the service lacks $setting"
done
for setting in Persistent=true RandomizedDelaySec=30m WantedBy=timers.target; do
    grep -qx "$setting" "$units/deployctl-backup.timer" || fail "the timer lacks $setting"
done
next=$(systemd-analyze calendar "$(sed -n 's/^OnCalendar=//p' "$units/deployctl-backup.timer")" --iterations=2 |
    sed -n 's/.*Next elapse: //p; s/.*Iter. #2: //p' | head -n 2)
[[ $(wc -l <<<"$next") -eq 2 ]] || fail "OnCalendar does not elapse twice: $next"
d1=$(date -d "$(sed -n 1p <<<"$next")" +%s) d2=$(date -d "$(sed -n 2p <<<"$next")" +%s)
assert_eq 86400 $((d2 - d1)) "seconds between two elapses of the timer"
pass "sandbox exposure $score (systemd-analyze security), daily timer, the settings asked for"

# The user: systemd-sysusers creates it, in a scratch root, with the state directory as home.
mkdir -p "$WORK/root/etc"
systemd-sysusers --root="$WORK/root" "$units/deployctl.sysusers" >/dev/null 2>&1 || fail "systemd-sysusers failed"
grep -q '^deployctl:x:[0-9]*:[0-9]*:[^:]*:/var/lib/deployctl:/usr/sbin/nologin$' "$WORK/root/etc/passwd" ||
    fail "no deployctl user: $(cat "$WORK/root/etc/passwd")"
pass "sysusers creates the deployctl system user"

# Every ExecStart parses with the real binary: run against a server that is not there, each
# must fail on the connection (rc 1), never on its arguments.
refused=0
while read -r cmdline; do
    read -ra argv <<<"$cmdline"
    set +e
    DEPLOYCTL_STATE_DIR=$WORK/state DATABASE_URL_DIRECT=postgresql://nobody@127.0.0.1:1/app \
        DEPLOYCTL_KEEP_DAILY=7 DEPLOYCTL_METRICS_FILE=$WORK/deployctl.prom "${argv[@]}" >"$WORK/out" 2>&1
    erc=$?
    set -e
    [[ $erc -ne 0 ]] || continue # prune of an empty store succeeds
    refused=$((refused + 1))
    grep -q -E 'unknown option|does not apply|usage:|invalid value' "$WORK/out" && fail "'$cmdline': $(cat "$WORK/out")"
    grep -q -i -E 'connect|server' "$WORK/out" || fail "'$cmdline' failed otherwise: $(cat "$WORK/out")"
done < <(sed -n 's/^ExecStart=//p' "$WORK/units/deployctl-backup.service")
[[ $(grep -c '^ExecStart=' "$units/deployctl-backup.service") -eq 2 ]] || fail "expected two ExecStart lines"
[[ $refused -ge 1 ]] || fail "the backup did not even try to connect"
pass "ExecStart command lines parse with this deployctl"

# The cron example: one job line of five time fields, the user and a command sh can parse,
# running the same deployctl command lines as the service.
cron=$DC_SOURCE_DIR/packaging/cron/deployctl-backup
job=$(grep -v -E '^\s*(#|$|[A-Z_]+=)' "$cron")
[[ $(wc -l <<<"$job") -eq 1 ]] || fail "the cron example should hold one job line: $job"
read -r min hour dom mon dow user cmd <<<"$job"
[[ $min =~ ^[0-9]+$ && $hour =~ ^[0-9]+$ && $dom$mon$dow == '***' && $user == deployctl ]] ||
    fail "the cron job is not daily as user deployctl: $job"
sh -n -c "$cmd" || fail "the cron command is not valid sh: $cmd"
for c in 'deployctl backup --verify --tag nightly' 'deployctl prune'; do
    grep -qF "$c" <<<"$cmd" || fail "the cron job does not run '$c'"
done
pass "the cron example: a daily job as deployctl, valid sh, the service's commands"
