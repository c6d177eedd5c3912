# Helpers shared by the fixture scripts that start throwaway servers (sourced, not run).

# Runs a command as the postgres user when we are root (PostgreSQL and PgBouncer refuse root).
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A loopback TCP port nobody listens on, picked at random in 20000-39999.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "$(basename "$0"): no free port found" >&2
    exit 1
}
