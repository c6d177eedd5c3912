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
