#!/usr/bin/env bash
# The main job on the embedded default, on a fresh Debian 12 machine: installs what is missing,
# builds, starts a throwaway local PostgreSQL with the sample inventory application (its Prisma
# migrations applied, as `prisma migrate deploy` would, and sample data), then runs the most
# complete flow deployctl has today: `deployctl backup`, `deployctl snapshots`, `deployctl show`.
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
psql_app -d inventory <<'SQL'
CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id"));
SQL
for dir in "$app"/prisma/migrations/*/; do
    name=$(basename "$dir")
    checksum=$(sha256sum <"$dir/migration.sql" | cut -d' ' -f1)
    psql_app -d inventory -1 -f "$dir/migration.sql"
    psql_app -d inventory -c "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
        VALUES (gen_random_uuid(), '$checksum', now(), '$name', 1)"
    echo "applied migration $name"
done
psql_app -d inventory -f "$app/seed.sql"
psql_app -d inventory -c "ANALYZE"

# The application's direct URL, as CI would give it (the password is never printed).
export DATABASE_URL_DIRECT=$DC_PG_URL_BASE/inventory

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
