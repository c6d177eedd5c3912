#!/usr/bin/env bash
# A release that succeeds: exit 0, the migration applied, every hook called once in order with
# the release's environment (and no credentials: DATABASE_URL, PGPASSWORD and a smoke URL's
# password and token are set and appear nowhere), smoke passed against a live HTTP app, JSON and
# Markdown reports written, the journal closed, history listing it; then --dry-run changes
# nothing.
source "$(dirname "$0")/../harness/lib.sh"
source "$HARNESS/release_lib.sh"

all_hooks
add 20240201000000_tags 'CREATE TABLE tags (id serial PRIMARY KEY, label text);'
export GITHUB_STEP_SUMMARY=$WORK/summary.md
# Credentials everywhere a CI job has them: DATABASE_URL, Prisma's DIRECT_URL,
# DEPLOYCTL_POOLED_URL and PGPASSWORD in the environment, and
# a smoke URL with a password and a token in its query string. None may reach a hook, a report,
# the journal (or its database copy) or the output.
pw=$(sed -n 's#^postgresql://[^:]*:\([^@]*\)@.*#\1#p' <<<"$url")
[[ -n $pw ]] || fail "setup: the test cluster's URL has no password: $url"
smoke_url="http://smoke:Sm0kePw9@127.0.0.1:$(cat "$WORK/app_port")/health?a=1&token=T0kenS3cret&x=2"
DATABASE_URL=$url DIRECT_URL=$url DEPLOYCTL_POOLED_URL=$url PGPASSWORD=$pw release --smoke "$smoke_url"
expect_rc 0 "release"
assert_eq "t" "$(q "SELECT to_regclass('public.tags') IS NOT NULL")" "migration applied"
assert_eq "pre-release deploy post-release notify" "$(called)" "hooks called in order"
id=$(report .release)
grep -q "^deploy phase=deploy release=$id snapshot=2" "$CALLS" || fail "deploy env: $(cat "$CALLS")"
grep -q "^notify phase=notify release=$id .* outcome=released report=$REPORT" "$CALLS" ||
    fail "notify env: $(grep notify "$CALLS")"
[[ $(grep -c ' direct=none db=none$' "$CALLS") -eq $(wc -l <"$CALLS") ]] ||
    fail "a hook saw DATABASE_URL, DIRECT_URL or DEPLOYCTL_POOLED_URL: $(cat "$CALLS")"
pass "hooks called in order with the release's environment, no credentials"

for f in "$CALLS" "$REPORT" "$WORK/report.md" "$GITHUB_STEP_SUMMARY" "$WORK/out" "$WORK/err" \
    "$DEPLOYCTL_STATE_DIR"/releases/*/*.jsonl; do
    for secret in "$pw" Sm0kePw9 T0kenS3cret; do
        if grep -qF "$secret" "$f"; then fail "secret $secret in $f"; fi
    done
done
assert_eq 0 "$(psql_value "$db" "SELECT count(*) FROM deployctl.release_events WHERE event::text ~ '$pw|Sm0kePw9|T0kenS3cret'")" "secrets in the database copy of the journal"
grep -q '127.0.0.1:[0-9]*/health?a=1&token=\*\*\*&x=2' "$REPORT" || fail "the smoke check is not named (masked) in the report: $(report '.smoke.attempts[0].check')"
pass "no password or token in hooks, reports, summary, journal, its copy or the output"

assert_eq released "$(report .outcome)" "report outcome"
assert_eq 0 "$(report .exit_code)" "report exit code"
snap=$(report .snapshot)
[[ $snap == 2* ]] || fail "no snapshot in the report"
assert_eq "20240201000000_tags" "$(report '.migrations_applied[0]')" "applied in the report"
assert_eq true "$(report '.smoke.passed')" "smoke in the report"
for p in precheck backup migrate verify deploy smoke; do
    assert_eq ok "$(report ".phases[] | select(.name == \"$p\") | .status")" "phase $p"
done
grep -q '### Pre-Migration' "$WORK/report.md" || fail "no Markdown report"
grep -q '\[x\] Smoke tests passed' "$WORK/report.md" || fail "Markdown: smoke item"
grep -q "Release $id" "$GITHUB_STEP_SUMMARY" || fail "GITHUB_STEP_SUMMARY not appended"
assert_eq released "$(psql_value "$db" "SELECT status FROM deployctl.releases WHERE id = '$id'")" \
    "journal mirrored in the database"
pass "reports (JSON, Markdown, step summary) and the database's journal"

run_deployctl snapshots --database "$url" --store "$STORE" --json
assert_eq release "$(jq -r ".[] | select(.id == \"$snap\") | .tag" "$WORK/out")" "snapshot tag"
[[ -z $(ls "$WORK/store"/*/"$snap"/pin-* 2>/dev/null) ]] || fail "snapshot still pinned"

run_deployctl history --database "$url" --json
assert_eq "$id released" "$(jq -r '.[-1] | "\(.id) \(.outcome)"' "$WORK/out")" "history"
run_deployctl history --database "$url"
grep -q "$id .*released .*backup" "$WORK/out" || fail "history text: $(cat "$WORK/out")"
pass "history lists the release with its phases"

# An INVALID index an earlier, unrelated CREATE INDEX CONCURRENTLY left is not this release's:
# verify passes (it fails only on INVALID indexes the release's migrations left).
q "INSERT INTO items (name) VALUES ('dup'), ('dup')" >/dev/null
q "CREATE UNIQUE INDEX CONCURRENTLY items_name_uniq ON items (name)" >/dev/null 2>&1 || true
assert_eq 1 "$(q "SELECT count(*) FROM pg_index WHERE NOT indisvalid")" "an INVALID index before the release"
add 20240202000000_more 'CREATE TABLE more (id int);'
release
expect_rc 0 "a release over an old INVALID index"
pass "an INVALID index from before the release does not fail verify"

# --dry-run: the plan, nothing changed.
add 20240301000000_drop 'ALTER TABLE items DROP COLUMN name;'
: >"$CALLS"
before=$(fingerprint "$db")
release --dry-run
expect_rc 0 "dry run"
grep -q '20240301000000_drop: destructive' "$WORK/out" || fail "plan: $(cat "$WORK/out")"
grep -q 'restore the pre-release snapshot' "$WORK/out" || fail "plan: compensation"
assert_eq "$before" "$(fingerprint "$db")" "dry run changed nothing"
assert_eq "" "$(called)" "dry run called no hook"
pass "--dry-run prints the plan and changes nothing"
