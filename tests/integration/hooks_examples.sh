#!/usr/bin/env bash
# fixture: none -- no PostgreSQL needed.
# The example hooks in hooks/ (Vercel, Kubernetes, Heroku, Fly.io, Slack) run as deployctl runs
# them (exec, DEPLOYCTL_* in the environment) against fake platform CLIs first in PATH: each fake
# records its argv, its standard input and the secrets it got from the environment, and answers
# like the real one. Asserts the exact calls, that rollbacks use what deploy recorded, that a
# failing CLI fails the hook, and that no secret ever reaches a command line.
set -euo pipefail

: "${DC_SOURCE_DIR:?run the tests through ctest (DC_SOURCE_DIR unset)}"
TEST_NAME=${TEST_NAME:-hooks_examples}
HOOKS=$DC_SOURCE_DIR/hooks
WORK=$(mktemp -d "/tmp/deployctl-test-$TEST_NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    exit 1
}
pass() { echo "ok - $*"; }

VERCEL_SECRET=vercel-token-0d1e2f3a4b5c
HEROKU_SECRET=heroku-key-9a8b7c6d5e4f
FLY_SECRET=fly-token-5f4e3d2c1b0a
SLACK_SECRET=https://hooks.slack.com/services/T000/B000/slack-secret-77aa88bb

# ---- the fake CLIs: one script, installed under each name ----
mkdir -p "$WORK/bin"
cat >"$WORK/bin/fake" <<'FAKE'
#!/usr/bin/env bash
# Records "name args..." in $FAKE_LOG/calls, stdin (curl) in $FAKE_LOG/stdin, the secrets its
# environment holds in $FAKE_LOG/env; fails when "name sub" is in $FAKE_FAIL.
name=$(basename "$0")
printf '%s\n' "$name $*" >>"$FAKE_LOG/calls"
for var in VERCEL_TOKEN HEROKU_API_KEY FLY_API_TOKEN; do
    [[ -n ${!var:-} ]] && echo "$name $var=${!var}" >>"$FAKE_LOG/env"
done
sub=$1
[[ $name == kubectl && $1 == --namespace ]] && sub=$3
[[ $name == git ]] && sub=$5
if [[ " ${FAKE_FAIL:-} " == *" $name:$sub "* ]]; then
    echo "$name: simulated failure of $sub" >&2
    exit 1
fi
case $name in
vercel)
    case $1 in
    ls)
        echo "> Deployments for acme/shop [table on stderr]" >&2
        printf '%s\n' https://shop-old123-acme.vercel.app https://shop-older99-acme.vercel.app
        ;;
    deploy) echo https://shop-new456-acme.vercel.app ;;
    rollback) echo "Success! shop was rolled back to $2" >&2 ;;
    esac
    ;;
kubectl)
    case $sub in
    get) printf '7' ;;
    *) echo "deployment.apps/web: $sub done" ;;
    esac
    ;;
heroku)
    case $1 in
    releases) printf '[\n  {\n    "description": "Deploy 1a2b3c",\n    "status": "succeeded",\n    "version": 41\n  }\n]\n' ;;
    rollback) echo "Rolling back shop... done, v43 (rollback to $2)" ;;
    esac
    ;;
git)
    # run the credential helper as git would, to prove it hands over the key
    for arg in "$@"; do
        case $arg in credential.helper=!*) helper=${arg#credential.helper=!} ;; esac
    done
    if [[ -n ${helper:-} ]]; then
        echo "git helper $(sh -c "$helper"' "$@"' helper get | grep '^password=')" >>"$FAKE_LOG/env"
    fi
    echo "remote: Verifying deploy... done."
    ;;
fly)
    case $1 in
    releases) echo '[{"Version":12,"Status":"complete","ImageRef":"registry.fly.io/shop:deployment-01OLD"},{"Version":11,"ImageRef":"registry.fly.io/shop:deployment-01OLDER"}]' ;;
    deploy) echo "Visit your newly deployed app at https://shop.fly.dev/" ;;
    esac
    ;;
curl)
    cat >"$FAKE_LOG/stdin"
    for arg in "$@"; do
        [[ $arg == @* ]] && cp "${arg#@}" "$FAKE_LOG/payload"
    done
    printf 'ok'
    ;;
esac
FAKE
chmod +x "$WORK/bin/fake"
for tool in vercel kubectl heroku git fly curl; do
    ln -s fake "$WORK/bin/$tool"
done

# A fresh record and state directory per case.
setup_case() {
    export FAKE_LOG=$WORK/log/$1
    rm -rf "$FAKE_LOG" "$WORK/state"
    mkdir -p "$FAKE_LOG" "$WORK/state"
    : >"$FAKE_LOG/calls"
    : >"$FAKE_LOG/env"
    unset FAKE_FAIL
}

# Runs a hook as deployctl does: exec, its environment, output kept; sets rc.
run_hook() { # platform hook [VAR=value...]
    local platform=$1 hook=$2
    shift 2
    rc=0
    env PATH="$WORK/bin:$PATH" DEPLOYCTL_PHASE="$hook" DEPLOYCTL_RELEASE_ID=rel-20261129-01 \
        DEPLOYCTL_DATABASE=shop DEPLOYCTL_STATE_DIR="$WORK/state" "$@" \
        "$HOOKS/$platform/$hook" >"$FAKE_LOG/out" 2>&1 || rc=$?
}

expect_calls() { # expected lines...
    local expected
    expected=$(printf '%s\n' "$@")
    [[ $(cat "$FAKE_LOG/calls") == "$expected" ]] ||
        fail "calls in $FAKE_LOG:"$'\n'"$(cat "$FAKE_LOG/calls")"$'\n'"expected:"$'\n'"$expected"
}

expect_rc() { # expected what
    [[ $rc -eq $1 ]] || fail "$2: exit $rc, expected $1; output: $(cat "$FAKE_LOG/out")"
}

# The hook exits 1 when the CLI call named "tool:subcommand" fails.
expect_failure() { # platform hook tool:subcommand vars...
    FAKE_FAIL=$3 run_hook "$1" "$2" "${@:4}"
    expect_rc 1 "$1 $2 when $3 fails"
}

# ---- Vercel ----
V=("VERCEL_TOKEN=$VERCEL_SECRET")
setup_case vercel-deploy
run_hook vercel deploy "${V[@]}"
expect_rc 0 "vercel deploy"
expect_calls "vercel ls --prod" "vercel deploy --prebuilt --prod --yes"
[[ $(sed -n 2p "$WORK/state/vercel/previous") == https://shop-old123-acme.vercel.app ]] ||
    fail "vercel deploy did not record the production deployment before it"
grep -qx "vercel VERCEL_TOKEN=$VERCEL_SECRET" "$FAKE_LOG/env" || fail "the CLI did not get VERCEL_TOKEN"
run_hook vercel rollback "${V[@]}"
expect_rc 0 "vercel rollback"
expect_calls "vercel ls --prod" "vercel deploy --prebuilt --prod --yes" \
    "vercel rollback https://shop-old123-acme.vercel.app"
grep -q "to undo this rollback: vercel promote https://shop-new456-acme.vercel.app" "$FAKE_LOG/out" ||
    fail "vercel rollback did not print the promote command: $(cat "$FAKE_LOG/out")"
pass "vercel: deploy records the production deployment, rollback goes back to it"

setup_case vercel-deploy-fails
expect_failure vercel deploy vercel:deploy "${V[@]}"
run_hook vercel rollback "${V[@]}"
expect_rc 0 "vercel rollback after a failed deploy"
[[ $(tail -n 1 "$FAKE_LOG/calls") == "vercel rollback https://shop-old123-acme.vercel.app" ]] ||
    fail "rollback after a failed deploy: $(cat "$FAKE_LOG/calls")"
pass "vercel: a failing deploy fails the hook, and can still be rolled back"

setup_case vercel-ls-fails
expect_failure vercel deploy vercel:ls "${V[@]}"
expect_calls "vercel ls --prod"
grep -q "not deploying" "$FAKE_LOG/out" || fail "no reason given: $(cat "$FAKE_LOG/out")"
pass "vercel: no deploy when the current deployment cannot be recorded"

setup_case vercel-no-token
run_hook vercel deploy
[[ $rc -ne 0 ]] || fail "vercel deploy without VERCEL_TOKEN succeeded"
expect_calls
grep -q "set VERCEL_TOKEN" "$FAKE_LOG/out" || fail "no hint: $(cat "$FAKE_LOG/out")"
pass "vercel: a missing token is named, nothing runs"

setup_case vercel-other-release
run_hook vercel deploy "${V[@]}"
run_hook vercel rollback "${V[@]}" DEPLOYCTL_RELEASE_ID=rel-20261130-07
expect_rc 1 "vercel rollback of another release's record"
[[ $(grep -c rollback "$FAKE_LOG/calls") -eq 0 ]] || fail "rolled back on a stale record"
run_hook vercel rollback VERCEL_TOKEN=x DEPLOYCTL_STATE_DIR="$WORK/nothing"
expect_rc 1 "vercel rollback with nothing recorded"
pass "vercel: rollback refuses a record from another release, or none"

# ---- Kubernetes ----
K=(K8S_NAMESPACE=shop K8S_DEPLOYMENT=web K8S_CONTAINER=app K8S_IMAGE=registry.example.com/shop:v2
    K8S_ROLLOUT_TIMEOUT=120s)
setup_case kubernetes
run_hook kubernetes deploy "${K[@]}"
expect_rc 0 "kubernetes deploy"
run_hook kubernetes rollback "${K[@]}"
expect_rc 0 "kubernetes rollback"
expect_calls \
    "kubectl --namespace shop get deployment/web -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}" \
    "kubectl --namespace shop set image deployment/web app=registry.example.com/shop:v2" \
    "kubectl --namespace shop rollout status deployment/web --timeout=120s" \
    "kubectl --namespace shop rollout undo deployment/web --to-revision=7" \
    "kubectl --namespace shop rollout status deployment/web --timeout=120s"
pass "kubernetes: set image + rollout status, undo to the recorded revision + status"

# a second attempt with no revision recorded: a bare undo would flip back, so it refuses
setup_case kubernetes
mkdir -p "$WORK/state/kubernetes"
printf 'rel-20261129-01\n\n' >"$WORK/state/kubernetes/previous"
run_hook kubernetes rollback "${K[@]}" DEPLOYCTL_ATTEMPT=2
expect_rc 1 "kubernetes rollback, attempt 2 without a recorded revision"
grep -q "attempt 2 and no revision recorded" "$FAKE_LOG/out" || fail "kubernetes attempt 2: $(cat "$FAKE_LOG/out")"
expect_calls ""
pass "kubernetes: a second rollback attempt without a recorded revision refuses a bare undo"

setup_case kubernetes-manifest
run_hook kubernetes deploy K8S_DEPLOYMENT=web K8S_MANIFEST=k8s/web.yaml
expect_rc 0 "kubernetes deploy with a manifest"
expect_calls \
    "kubectl get deployment/web -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}" \
    "kubectl apply -f k8s/web.yaml" \
    "kubectl rollout status deployment/web --timeout=300s"
pass "kubernetes: apply -f a manifest, default timeout"

setup_case kubernetes-fails
expect_failure kubernetes deploy kubectl:rollout "${K[@]}"
expect_failure kubernetes rollback kubectl:rollout "${K[@]}"
pass "kubernetes: a failed rollout fails the hook"

# ---- Heroku ----
H=(HEROKU_APP=shop "HEROKU_API_KEY=$HEROKU_SECRET")
setup_case heroku
run_hook heroku deploy "${H[@]}"
expect_rc 0 "heroku deploy"
run_hook heroku rollback "${H[@]}"
expect_rc 0 "heroku rollback"
# shellcheck disable=SC2016
helper='!f() { test "$1" = get && echo username=heroku && echo "password=$HEROKU_API_KEY"; }; f'
expect_calls "heroku releases --app shop --num 1 --json" \
    "git -c credential.helper= -c credential.helper=$helper push https://git.heroku.com/shop.git HEAD:refs/heads/main" \
    "heroku rollback v41 --app shop"
grep -qx "git helper password=$HEROKU_SECRET" "$FAKE_LOG/env" ||
    fail "git's credential helper did not hand over the API key: $(cat "$FAKE_LOG/env")"
pass "heroku: git push with the key from a credential helper, rollback to the recorded release"

setup_case heroku-fails
expect_failure heroku deploy git:push "${H[@]}"
expect_failure heroku rollback heroku:rollback "${H[@]}"
pass "heroku: a failed push or rollback fails the hook"

# ---- Fly.io ----
F=(FLY_APP=shop "FLY_API_TOKEN=$FLY_SECRET" FLY_IMAGE=registry.fly.io/shop:v2)
setup_case fly
run_hook fly deploy "${F[@]}"
expect_rc 0 "fly deploy"
run_hook fly rollback "${F[@]}"
expect_rc 0 "fly rollback"
expect_calls "fly releases --app shop --image --json" \
    "fly deploy --app shop --image registry.fly.io/shop:v2" \
    "fly deploy --app shop --image registry.fly.io/shop:deployment-01OLD"
grep -qx "fly FLY_API_TOKEN=$FLY_SECRET" "$FAKE_LOG/env" || fail "flyctl did not get FLY_API_TOKEN"
pass "fly: deploy an image, rollback deploys the recorded previous image"

setup_case fly-fails
expect_failure fly deploy fly:deploy FLY_APP=shop FLY_API_TOKEN=$FLY_SECRET
expect_calls "fly releases --app shop --image --json" "fly deploy --app shop --remote-only"
pass "fly: a failed deploy fails the hook (remote build without FLY_IMAGE)"

# ---- Slack ----
setup_case slack
run_hook slack notify SLACK_WEBHOOK_URL=$SLACK_SECRET DEPLOYCTL_OUTCOME=rolled-back \
    DEPLOYCTL_SNAPSHOT=20261129T220000Z-ab12 DEPLOYCTL_REPORT=/var/lib/deployctl/reports/r.json
expect_rc 0 "slack notify"
[[ $(cat "$FAKE_LOG/calls") == "curl --fail --silent --show-error --max-time 20 --config - --header Content-Type: application/json --data-binary @"* ]] ||
    fail "curl call: $(cat "$FAKE_LOG/calls")"
[[ $(cat "$FAKE_LOG/stdin") == "url = \"$SLACK_SECRET\"" ]] || fail "curl config on stdin: $(cat "$FAKE_LOG/stdin")"
text=$(jq -r .text "$FAKE_LOG/payload") || fail "the payload is not JSON: $(cat "$FAKE_LOG/payload")"
[[ $text == ":leftwards_arrow_with_hook: deployctl release rel-20261129-01 of shop: rolled-back (snapshot 20261129T220000Z-ab12), report /var/lib/deployctl/reports/r.json" ]] ||
    fail "slack text: $text"
pass "slack: posts the outcome, the webhook URL through curl's stdin"

setup_case slack-quotes
run_hook slack notify SLACK_WEBHOOK_URL=$SLACK_SECRET DEPLOYCTL_OUTCOME="fai\"led\\"
expect_rc 0 "slack notify with quotes in a value"
[[ $(jq -r .text "$FAKE_LOG/payload") == *"fai\"led\\" ]] || fail "escaping: $(cat "$FAKE_LOG/payload")"
pass "slack: values are escaped into valid JSON"

setup_case slack-fails
expect_failure slack notify curl:--fail SLACK_WEBHOOK_URL=$SLACK_SECRET DEPLOYCTL_OUTCOME=released
run_hook slack notify
[[ $rc -ne 0 ]] || fail "slack notify without a webhook URL succeeded"
grep -q "set SLACK_WEBHOOK_URL" "$FAKE_LOG/out" || fail "no hint: $(cat "$FAKE_LOG/out")"
run_hook slack notify SLACK_WEBHOOK_URL=http://hooks.example.com/x
expect_rc 1 "slack notify with a plain http webhook"
pass "slack: a failed post, a missing or non-https webhook fail the hook"

# ---- no secret on any command line ----
for secret in "$VERCEL_SECRET" "$HEROKU_SECRET" "$FLY_SECRET" "$SLACK_SECRET" slack-secret-77aa88bb; do
    if grep -rqF -- "$secret" "$WORK"/log/*/calls; then
        fail "a secret reached a command line: $(grep -rlF -- "$secret" "$WORK"/log/*/calls)"
    fi
done
pass "no secret in any recorded argv"
