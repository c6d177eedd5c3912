#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# The CI examples in packaging/ci (GitHub Actions release and nightly backup, GitLab CI): valid
# YAML of the right shape, no secret written into them or interpolated into a command line
# (copies with an inlined password and a secret in a run: line must be caught), and every
# `deployctl` call uses a command and flags this deployctl has.
set -euo pipefail
source "$DC_SOURCE_DIR/tests/harness/assert_lib.sh"
standalone_test_setup packaging_ci
PY=/usr/bin/python3
"$PY" -c 'import yaml' 2>/dev/null || PY=python3
"$PY" -c 'import yaml' 2>/dev/null || skip "PyYAML not installed (Debian package python3-yaml)"
check="$PY $DC_SOURCE_DIR/tests/harness/ci_check.py"
ci=$DC_SOURCE_DIR/packaging/ci
files=("$ci/github/release.yml" "$ci/github/nightly-backup.yml" "$ci/gitlab/.gitlab-ci.yml")

$check "${files[@]}" >"$WORK/calls" 2>"$WORK/err" || fail "$(cat "$WORK/err")"
pass "the CI examples parse as YAML, have their CI's shape, and hold no secret"

# The check must catch an inlined password and a secret on a command line.
sed 's#DATABASE_URL_DIRECT: ${{ secrets.DATABASE_URL_DIRECT }}#DATABASE_URL_DIRECT: postgresql://app:hunter2@db/app#' \
    "$ci/github/release.yml" >"$WORK/inlined.yml"
cmp -s "$WORK/inlined.yml" "$ci/github/release.yml" && fail "could not make the inlined copy"
$check "$WORK/inlined.yml" >/dev/null 2>"$WORK/err" && fail "an inlined password went unnoticed"
grep -q 'URL with a password' "$WORK/err" || fail "unexpected complaint: $(cat "$WORK/err")"
sed 's#run: deployctl lint --migrations prisma/migrations#run: deployctl lint --database "${{ secrets.DATABASE_URL_DIRECT }}"#' \
    "$ci/github/release.yml" >"$WORK/argv.yml"
cmp -s "$WORK/argv.yml" "$ci/github/release.yml" && fail "could not make the argv copy"
$check "$WORK/argv.yml" >/dev/null 2>"$WORK/err" && fail "a secret on a command line went unnoticed"
printf 'variables:\n  AWS_SECRET_ACCESS_KEY: "abc"\nstages: [a]\nj:\n  stage: a\n  script: [deployctl snapshots]\n' >"$WORK/.gitlab-ci.yml"
$check "$WORK/.gitlab-ci.yml" >/dev/null 2>"$WORK/err" && fail "a secret in GitLab variables went unnoticed"
pass "inlined secrets and secrets on command lines are caught"

# Every call: a command of this deployctl, with flags its help lists.
commands=$("$DEPLOYCTL" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
checked=0
while IFS=$'\t' read -r file cmd flags; do
    grep -qx "$cmd" <<<"$commands" || fail "$file calls 'deployctl $cmd', which does not exist"
    "$DEPLOYCTL" "$cmd" --help >"$WORK/help"
    for flag in $flags; do
        grep -q -E -- "(^|[ ,])$flag( |$)" "$WORK/help" || fail "$file: deployctl $cmd has no option $flag"
        checked=$((checked + 1))
    done
done <"$WORK/calls"
[[ $checked -ge 10 ]] || fail "only $checked flags checked: $(cat "$WORK/calls")"
for f in "${files[@]}"; do
    grep -q "^$f	release	.*--migrations.*--smoke" "$WORK/calls" ||
        [[ $f == */nightly-backup.yml ]] || fail "$f does not run deployctl release with --migrations and --smoke"
    grep -q "^$f	backup	--verify --tag" "$WORK/calls" ||
        [[ $f == */release.yml ]] || fail "$f does not run deployctl backup --verify --tag"
done
pass "$checked flags of deployctl calls exist in this deployctl"
