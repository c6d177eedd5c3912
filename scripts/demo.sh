#!/usr/bin/env bash
# The main job on the embedded default, on a fresh Debian 12 machine: installs what is missing,
# builds, starts a throwaway local PostgreSQL with the sample inventory application (its Prisma
# migrations applied by `deployctl migrate deploy`, and sample data), then runs the most complete
# flow deployctl has today: `lint`, `check`, `backup`, `snapshots`, `show`, `verify --deep`
# and a parallel `restore` into a new database.
# Snapshots go to the default store (file://<state dir>/snapshots); the cluster is removed at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-debian.sh"
"$root/scripts/build.sh" "$root/build"
deployctl=$root/build/deployctl
app=$root/examples/inventory-app

state=$root/build/demo-cluster
"$root/tests/harness/pg_cluster.sh" start "$state"
trap '"$root/tests/harness/pg_cluster.sh" stop "$state"' EXIT
# shellcheck disable=SC1091
source "$state/env"
psql_app() { "$DC_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres "$@"; }

echo "== sample application database 'inventory'"
psql_app -d postgres -c "CREATE DATABASE inventory"
# The application's direct URL, as CI would give it (the password is never printed).
export DATABASE_URL_DIRECT=$DC_PG_URL_BASE/inventory

echo
echo "== deployctl migrate deploy (the app's Prisma migrations, _prisma_migrations kept as Prisma does)"
"$deployctl" migrate deploy --migrations "$app/prisma/migrations"
"$deployctl" migrate status --migrations "$app/prisma/migrations"
psql_app -d inventory -f "$app/seed.sql"
psql_app -d inventory -c "ANALYZE"

echo
echo "== deployctl backup"
id=$("$deployctl" backup --tag manual | tail -n 1)
echo "new snapshot: $id"
echo
echo "== deployctl snapshots"
"$deployctl" snapshots
echo
echo "== deployctl show $id"
"$deployctl" show "$id"

echo
echo "== deployctl lint (the history holds the seed's contract steps: flagged, as they should be)"
"$deployctl" lint "$app/prisma/migrations" || echo "(lint exited $?: a destructive step needs review)"
echo
echo "== deployctl check"
"$deployctl" check --migrations "$app/prisma/migrations" || echo "(check exited $?)"
echo
echo "== deployctl verify --deep $id"
"$deployctl" verify "$id" --deep
echo
echo "== deployctl restore $id --target .../inventory_copy --jobs 2"
"$deployctl" restore "$id" --target "$DC_PG_URL_BASE/inventory_copy" --jobs 2

echo
echo "== deployctl release: the deploy as a transaction (hooks, a local HTTP app for the smoke test)"
# The release's inputs: the app's migrations plus a new one, hooks that stand in for the hosting
# platform, and a small local HTTP app whose health answer the demo flips.
rel=$root/build/demo-release
rm -rf "$rel"
mkdir -p "$rel/hooks"
cp -r "$app/prisma/migrations" "$rel/migrations"
mkdir "$rel/migrations/20240501000000_add_supplier_notes"
echo 'ALTER TABLE "inventory_items" ADD COLUMN "supplier_notes" TEXT;' \
    >"$rel/migrations/20240501000000_add_supplier_notes/migration.sql"
echo 'ALTER TABLE "inventory_items" DROP COLUMN "supplier_notes";' \
    >"$rel/migrations/20240501000000_add_supplier_notes/down.sql"
for hook in deploy rollback notify; do
    printf '#!/bin/sh\necho "%s hook: release $DEPLOYCTL_RELEASE_ID ${DEPLOYCTL_OUTCOME:-}"\n' "$hook" \
        >"$rel/hooks/$hook"
    chmod +x "$rel/hooks/$hook"
done
python3 "$root/tests/harness/release_app.py" "$rel/app_status" >"$rel/app_port" &
app_pid=$!
trap 'kill $app_pid; "$root/tests/harness/pg_cluster.sh" stop "$state"' EXIT
for _ in $(seq 50); do [[ -s $rel/app_port ]] && break; sleep 0.1; done
smoke=http://127.0.0.1:$(cat "$rel/app_port")/api/health
release() {
    "$deployctl" release --migrations "$rel/migrations" --hooks "$rel/hooks" --smoke "$smoke" \
        --smoke-window 3 --report "$rel/$1.json" || echo "(release exited $?)"
}
echo "-- a release that succeeds"
release first
cat "$rel/first.md"
echo
echo "-- a release whose smoke test fails (the app answers 500): rolled back"
mkdir "$rel/migrations/20240601000000_widen_item_name"
echo 'ALTER TABLE "inventory_items" ALTER COLUMN "item_name" TYPE VARCHAR(300);' \
    >"$rel/migrations/20240601000000_widen_item_name/migration.sql"
echo 500 >"$rel/app_status"
release second
cat "$rel/second.md"
echo
echo "== deployctl history"
"$deployctl" history
