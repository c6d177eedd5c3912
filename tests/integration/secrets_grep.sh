#!/usr/bin/env bash
# No secret in anything deployctl writes: an end-to-end run (backup --verify, snapshots, show,
# verify --deep, check, migrate status/deploy, an external migrate command, restore into a new
# database, and failures: a wrong password, an unreachable server, a refused restore), with
# debug logging in text and JSON, a metrics file and --json reports, and wrappers in front of
# pg_dump and the migrate command recording every child's argv. The cluster's password and an
# S3 secret key set in the environment must appear in none of it.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

: "${DC_PG_PASSWORD:?no DC_PG_PASSWORD in the cluster env}"
[[ ${#DC_PG_PASSWORD} -ge 12 ]] || fail "the cluster's password is too short to grep for"
s3_secret=wJalrXUtnFEMI-deployctl-test-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')
export AWS_ACCESS_KEY_ID=AKIADEPLOYCTLTEST AWS_SECRET_ACCESS_KEY=$s3_secret

db=$(new_db src)
url=$(db_url "$db")
psql_admin "$db" <<'SQL' >/dev/null
CREATE TABLE accounts (id int PRIMARY KEY, owner text);
INSERT INTO accounts SELECT g, 'owner ' || g FROM generate_series(1, 500) g;
SQL
store=$WORK/store
logs=$WORK/logs
mkdir -p "$logs"
cat >"$WORK/pg_dump" <<WRAPPER
#!/usr/bin/env bash
printf '%s\n' "\$0" "\$@" >>"$logs/child-argv"
exec "$DC_PG_BIN/pg_dump" "\$@"
WRAPPER
cat >"$WORK/migrate-command" <<WRAPPER
#!/usr/bin/env bash
printf '%s\n' "\$0" "\$@" >>"$logs/child-argv"
echo "migrate-command ran"
WRAPPER
chmod +x "$WORK/pg_dump" "$WORK/migrate-command"
migrations=$DC_SOURCE_DIR/examples/inventory-app/prisma/migrations
murl="$url?schema=app" # the example app's migrations go into a schema of their own

n=0
# step NAME EXPECTED-RC|fails ARGS...: runs deployctl with debug logs, keeping stdout and stderr.
step() {
    local name=$1 want=$2
    shift 2
    local got=0
    "$DEPLOYCTL" "$@" --log-level debug --pg-dump "$WORK/pg_dump" \
        >"$logs/$name.out" 2>"$logs/$name.err" </dev/null || got=$?
    [[ ($want == fails && $got -ne 0) || ($want != fails && $got -eq $want) ]] || fail "$name: exit $got, expected $want: $(tail -3 "$logs/$name.err")"
    n=$((n + 1))
}
step backup 0 backup --database "$url" --store "$store" --verify --tag nightly \
    --metrics-file "$logs/metrics.prom"
step backup-json 0 backup --database "$url" --store "$store" --log-format json --json
step snapshots 0 snapshots --database "$url" --store "$store" --json
step show 0 show latest --database "$url" --store "$store" --json
step verify 0 verify latest --database "$url" --store "$store" --deep --json \
    --metrics-file "$logs/metrics.prom"
step check 0 check --database "$murl" --store "$store" --migrations "$migrations" --json
step migrate-deploy 0 migrate deploy --database "$murl" --migrations "$migrations"
step migrate-status 0 migrate status --database "$murl" --migrations "$migrations" --json
step migrate-command 0 migrate deploy --database "$murl" --migrations "$migrations" \
    --migrate-command "$WORK/migrate-command --url=$DC_PG_URL_BASE/$db"
target=${db}_restored
drop_at_exit "$target"
step restore 0 restore latest --database "$url" --store "$store" --target "$(db_url "$target")" --json
# Failures print what went wrong, with the URL: redacted.
step wrong-password fails check --database "postgresql://dctest:${DC_PG_PASSWORD}x@127.0.0.1:$DC_PG_PORT/$db" \
    --store "$store" --json
step wrong-password-backup fails backup --database "postgresql://dctest:${DC_PG_PASSWORD}x@127.0.0.1:$DC_PG_PORT/$db" \
    --store "$store" --log-format json
step unreachable fails backup --database "postgresql://dctest:$DC_PG_PASSWORD@127.0.0.1:1/$db" --store "$store"
step refused-restore fails restore latest --database "$url" --store "$store"
grep -q "$db" "$logs/backup.err" || fail "the debug log of the backup does not even name the database"
[[ -s $logs/child-argv ]] || fail "no child process argv was recorded"
grep -q "migrate-command ran" "$logs/migrate-command.out" "$logs/migrate-command.err" ||
    fail "the migrate command did not run"

# ---- the verdict: every byte written, and every child's argv ----
for secret in "$DC_PG_PASSWORD" "$s3_secret"; do
    if leaks=$(grep -rlF -- "$secret" "$logs" "$store"); then
        # The migrate command was given the URL on purpose (in its argv by the user): not ours.
        leaks=$(grep -v -x "$logs/child-argv" <<<"$leaks" || true)
        if grep -F -- "$secret" "$logs/child-argv" | grep -qv -- "^--url="; then
            leaks+=" $logs/child-argv"
        fi
        [[ -z ${leaks// /} ]] || fail "a secret appears in: $leaks"
    fi
done
pass "$n commands (debug logs, JSON logs and reports, metrics, the store, children's argv): no password, no S3 secret"
