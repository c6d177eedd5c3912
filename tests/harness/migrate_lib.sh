# What the migrate_* tests share (sourced after lib.sh): a database of their own ($db, $url), a
# Prisma migrations directory ($dir) with its migration_lock.toml, and helpers to add a
# migration, query the database and run `deployctl migrate`.
db=$(new_db app)
url=$(db_url "$db")
dir=$WORK/migrations
mkdir -p "$dir"
printf 'provider = "postgresql"\n' >"$dir/migration_lock.toml"
add() { # name sql
    mkdir -p "$dir/$1"
    printf '%s\n' "$2" >"$dir/$1/migration.sql"
}
q() { psql_value "$db" "$1"; }
migrate() { run_deployctl migrate "$@" --database "$url" --migrations "$dir"; }
