# What the check_* tests share (sourced after lib.sh): a database of their own ($db, $url), an
# empty migrations directory ($mig), `check` and its results, Prisma's history table, and the
# other sessions they start to hold locks (each ended when the test ends).
db=$(new_db main)
url=$(db_url "$db")
mig=$WORK/migrations
mkdir -p "$mig"
check_url=$url # the URL `check` uses: a test may point it at another role

# deployctl check --json against $check_url; the report in $WORK/out, the status in $rc.
check() { run_deployctl check --database "$check_url" --store "$WORK/store" --migrations "$mig" --json "$@"; }
# One check's "status|detail|item;item..." from the last report.
result() { # name
    jq -r --arg n "$1" '.checks[] | select(.name == $n) | "\(.status)|\(.detail)|\(.items | join(";"))"' "$WORK/out"
}
# One check's items, one a line.
items() { # name
    jq -r --arg n "$1" '.checks[] | select(.name == $n) | .items[]' "$WORK/out"
}

# Prisma's _prisma_migrations, as its schema engine creates it.
create_history() { # [schema]
    psql_admin "$db" -c "CREATE TABLE ${1:-public}._prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL,
        checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL,
        logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        applied_steps_count INTEGER NOT NULL DEFAULT 0)" >/dev/null
}

# A role of the test's own, dropped (with what it owns in $db) when the test ends; with
# "login", a LOGIN role with a random password, left in $role_password.
new_role() { # name [login]
    role_password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
    on_exit "psql_admin '$db' -c 'DROP OWNED BY $1' >/dev/null 2>&1; psql_admin postgres -c 'DROP ROLE IF EXISTS $1' >/dev/null 2>&1"
    psql_admin postgres -c "DROP ROLE IF EXISTS $1" \
        -c "CREATE ROLE $1 ${2:+LOGIN PASSWORD '$role_password'}" >/dev/null
}

end_session() { # application_name
    psql_value postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1' AND datname = '$db'" >/dev/null
}

# Runs SQL in the background in a session named application_name (psql as the superuser, or
# with the given psql function), ended when the test ends; its background pid in $session_job.
start_session() { # application_name sql [psql-function]
    PGAPPNAME=$1 "${3:-psql_admin}" "$db" -c "$2" >/dev/null 2>&1 &
    session_job=$!
    on_exit "kill $session_job 2>/dev/null; end_session $1"
}
# Ends a session start_session started (and waits for its psql).
stop_session() { # application_name
    kill "$session_job" 2>/dev/null || true
    end_session "$1"
    wait "$session_job" 2>/dev/null || true
}

# The server pid of a session once it is in a transaction.
session_pid() { # application_name
    local pid=""
    for _ in $(seq 1 100); do
        pid=$(psql_value postgres "SELECT pid FROM pg_stat_activity WHERE application_name = '$1' AND xact_start IS NOT NULL")
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || fail "session $1 did not start"
    echo "$pid"
}

# The server pid of a session once it holds (granted) or awaits (waiting) a lock matching the
# pg_locks condition (alias l). The server polls every 10 ms for up to 30 s, in one call: a
# check waits 2 s for a lock, a window that polling through one psql process per probe can miss
# on a loaded machine.
lock_pid() { # application_name granted|waiting [condition]
    local pid="" granted=true
    [[ $2 == granted ]] || granted=false
    pid=$(psql_value "$db" "CREATE FUNCTION pg_temp.lock_pid() RETURNS int LANGUAGE plpgsql AS \$f\$
        DECLARE found int;
        BEGIN
            FOR i IN 1..3000 LOOP
                PERFORM pg_catalog.pg_stat_clear_snapshot();
                SELECT l.pid INTO found FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = '$1' AND l.granted = $granted AND (${3:-true}) LIMIT 1;
                IF found IS NOT NULL THEN RETURN found; END IF;
                PERFORM pg_catalog.pg_sleep(0.01);
            END LOOP;
            RETURN NULL;
        END \$f\$; SELECT pg_temp.lock_pid()")
    [[ -n $pid ]] || fail "session $1 did not get to a $2 lock"
    echo "$pid"
}
