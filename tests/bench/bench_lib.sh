# shellcheck shell=bash disable=SC2034,SC2154,SC2004  # globals and associative arrays of the sourcing script
# bench_lib.sh - what the benchmarks in tests/bench share; sourced by backup_bench.sh and
# restore_bench.sh, never run on its own. It holds the argument parsing (the options every
# benchmark takes), the clean environment, the throwaway cluster (tests/harness/pg_cluster.sh)
# and the work directory, the database generator, the timing/RSS measurement, the
# median-over-rounds bookkeeping and the report helpers.
#
# The sourcing script sets BENCH_NAME (its name in messages) and `set -euo pipefail` first,
# then calls, in this order:
#   bench_parse_args "$@"      sizes, jobs, repeat, keep, strict, json_out, deployctl,
#                              size_list, target_of[size]
#   bench_clear_env
#   bench_start PREFIX         work dir $TMPDIR/PREFIX.XXXXXX, the cluster (removed at exit
#                              unless --keep); PSQL, PG_DUMP, pg_version, ... set
# The per-size functions (generate_and_describe, record_run, summarize_runs) read and write
# the caller's local variables and arrays by bash's dynamic scoping; each says which.

bench_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$bench_lib_dir/../.." && pwd)

# ---- settings shared by every benchmark ----

RSS_LIMIT_MIB=64
MIN_SIZE=$((32 * 1024 * 1024))
# Bytes per row of each generated table, heap + TOAST + indexes, after VACUUM ANALYZE
# (measured on PostgreSQL 15; used to pick row counts for a target size).
ORDERS_ROW_BYTES=251
EVENTS_ROW_BYTES=537
ATTACHMENTS_ROW_BYTES=2525

sizes="100MB 1GB"
jobs=2
repeat=1
keep=0
strict=0
json_out=""
deployctl=${DEPLOYCTL:-}

# The sourcing script's "Usage:" section of its header comment, up to "Exit status:".
usage() {
    awk '/^# Usage:/ { p = 1 } /^# Exit status:/ { exit } p' "${BASH_SOURCE[-1]}" |
        sed 's/^# \{0,1\}//' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}

die() {
    echo "${BENCH_NAME:-$(basename "${BASH_SOURCE[-1]}")}: $*" >&2
    exit 2
}

# "100MB" -> bytes (powers of 1024).
size_bytes() {
    local s=$1 num unit mult
    [[ $s =~ ^([0-9]+([.][0-9]+)?)[[:space:]]*([A-Za-z]*)$ ]] || return 1
    num=${BASH_REMATCH[1]}
    unit=$(tr '[:upper:]' '[:lower:]' <<<"${BASH_REMATCH[3]}")
    case $unit in
    "" | b) mult=1 ;;
    k | kb | kib) mult=1024 ;;
    m | mb | mib) mult=$((1024 ** 2)) ;;
    g | gb | gib) mult=$((1024 ** 3)) ;;
    t | tb | tib) mult=$((1024 ** 4)) ;;
    *) return 1 ;;
    esac
    awk -v n="$num" -v m="$mult" 'BEGIN { printf "%.0f\n", n * m }'
}

# Reads the common options; anything else is an error (exit 2).
bench_parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
        --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
        --sizes=*) sizes=${1#*=}; shift ;;
        --jobs | -j) jobs=${2:?--jobs needs a value}; shift 2 ;;
        --jobs=*) jobs=${1#*=}; shift ;;
        --deployctl) deployctl=${2:?--deployctl needs a value}; shift 2 ;;
        --deployctl=*) deployctl=${1#*=}; shift ;;
        --json) json_out=${2:?--json needs a value}; shift 2 ;;
        --json=*) json_out=${1#*=}; shift ;;
        --repeat) repeat=${2:?--repeat needs a value}; shift 2 ;;
        --repeat=*) repeat=${1#*=}; shift ;;
        --keep) keep=1; shift ;;
        --strict) strict=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
        esac
    done

    [[ $jobs =~ ^[1-9][0-9]*$ && $jobs -le 64 ]] || die "--jobs must be 1-64, got '$jobs'"
    [[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive number, got '$repeat'"
    [[ -n $deployctl ]] || deployctl=$repo_root/build/deployctl
    [[ -x $deployctl ]] || die "deployctl binary not found or not executable: $deployctl (build it, or pass --deployctl PATH)"
    deployctl=$(cd "$(dirname "$deployctl")" && pwd)/$(basename "$deployctl")
    if [[ -n $json_out ]]; then
        local json_dir
        json_dir=$(dirname "$json_out")
        [[ -d $json_dir ]] || die "--json: directory $json_dir does not exist"
        json_out=$(cd "$json_dir" && pwd)/$(basename "$json_out")
    fi
    local tool
    for tool in jq awk /usr/bin/time; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done

    read -r -a size_list <<<"$sizes"
    [[ ${#size_list[@]} -gt 0 ]] || die "--sizes is empty"
    declare -gA target_of=()
    local s b
    for s in "${size_list[@]}"; do
        b=$(size_bytes "$s") || die "cannot read size '$s' (use e.g. 100MB, 1GB)"
        [[ $b -ge $MIN_SIZE ]] || die "size '$s' is too small: at least 32MB (the fixed part is ~13 MiB)"
        target_of[$s]=$b
    done
}

# ---- environment: nothing from the caller's shell may change what is measured ----

bench_clear_env() {
    unset DATABASE_URL DATABASE_URL_DIRECT DEPLOYCTL_STORE DEPLOYCTL_CONFIG DEPLOYCTL_JOBS \
        DEPLOYCTL_COMPRESS_LEVEL DEPLOYCTL_CHUNK_SIZE DEPLOYCTL_SPLIT_SIZE DEPLOYCTL_LOCK_TIMEOUT \
        DEPLOYCTL_PG_DUMP DEPLOYCTL_LOG_LEVEL DEPLOYCTL_LOG_FORMAT DEPLOYCTL_PROGRESS_INTERVAL \
        DEPLOYCTL_VERIFY_DATABASE DEPLOYCTL_STATE_DIR DEPLOYCTL_FAULT \
        PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGOPTIONS \
        PGSSLMODE PGCONNECT_TIMEOUT 2>/dev/null || true
    export PGCLIENTENCODING=UTF8 PGTZ=UTC PGDATESTYLE=ISO
}

# ---- the work directory and the cluster ----

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    if [[ $keep -eq 1 ]]; then
        if [[ -f $pg_state/env ]]; then
            # shellcheck disable=SC1091
            (source "$pg_state/env" && echo "kept: cluster on port $DC_PG_PORT, socket $DC_PG_SOCKET;" \
                "connect: $DC_PG_BIN/psql -h $DC_PG_SOCKET -p $DC_PG_PORT -U postgres -d <db>") >&2
        fi
        echo "kept: work dir $work; clean up: $repo_root/tests/harness/pg_cluster.sh stop $pg_state && rm -rf $work" >&2
    else
        "$repo_root/tests/harness/pg_cluster.sh" stop "$pg_state" >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
    exit "$rc"
}

mask() { sed -E 's#(://[^:/@]+:)[^@]*@#\1***@#g'; }

# bench_start PREFIX: the work dir, an empty config file for deployctl, the cluster; sets work,
# pg_state, PSQL, PG_DUMP, pg_version, pg_version_num, block_size, deployctl_version, cores and
# the DC_PG_* variables of tests/harness/pg_cluster.sh (DC_PG_URL_BASE holds the password).
bench_start() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    chmod 755 "$work"
    pg_state=$work/pg
    : >"$work/empty.conf"
    chmod 600 "$work/empty.conf"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    "$repo_root/tests/harness/pg_cluster.sh" start "$pg_state" >"$work/cluster.log" 2>&1 ||
        { mask <"$work/cluster.log" >&2; die "cannot start the PostgreSQL cluster"; }
    # shellcheck disable=SC1091
    source "$pg_state/env"
    PSQL=$DC_PG_BIN/psql
    PG_DUMP=$DC_PG_BIN/pg_dump

    pg_version=$(value postgres "SHOW server_version")
    pg_version_num=$(value postgres "SHOW server_version_num")
    block_size=$(value postgres "SHOW block_size")
    deployctl_version=$("$deployctl" --version 2>/dev/null | awk 'NR == 1 && $1 == "deployctl" { print $2 }') || true
    [[ -n $deployctl_version ]] || deployctl_version=unknown
    cores=$(nproc 2>/dev/null || echo "?")
}

admin() { # db args...  (superuser over the socket; setup and inspection, never measured)
    local db=$1
    shift
    PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 \
        -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$db" "$@"
}
value() { admin "$1" -At -c "$2"; }
drop_db() { admin postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; }

# ---- number formatting ----

calc() { awk "BEGIN { $1 }"; }
mib() { calc "printf \"%.1f\", $1 / 1048576"; }
fmt_or_dash() { if [[ -n $1 ]]; then printf '%s' "$1"; else printf -- '-'; fi; }

# ---- data generation ----

SMALL_SQL=$(
    cat <<'SQL'
SELECT setseed(0.4242);
CREATE TABLE countries (code char(2) PRIMARY KEY, name text NOT NULL, currency char(3) NOT NULL,
                        vat_rate numeric(4,2) NOT NULL);
INSERT INTO countries
SELECT chr(65 + i / 26) || chr(65 + i % 26), 'Country ' || initcap(md5(i::text)::varchar(8)),
       (ARRAY['EUR','USD','GBP','JPY','CHF','SEK'])[1 + i % 6], (5 + i % 20)::numeric(4,2)
FROM generate_series(0, 249) i;

CREATE TABLE products (id integer PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL,
                       category text NOT NULL, price numeric(10,2) NOT NULL,
                       active boolean NOT NULL DEFAULT true, description text);
INSERT INTO products
SELECT i, 'SKU-' || lpad(i::text, 6, '0'), 'Product ' || initcap(md5(i::text)::varchar(10)),
       (ARRAY['books','garden','toys','kitchen','electronics','sports','office','beauty'])[1 + i % 8],
       round((1 + random() * 499)::numeric, 2), random() > 0.05,
       repeat('Lorem ipsum dolor sit amet. ', 1 + i % 6)
FROM generate_series(1, 5000) i;

CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL UNIQUE, full_name text NOT NULL,
                        country char(2) NOT NULL REFERENCES countries, created_at timestamptz NOT NULL,
                        marketing_opt_in boolean NOT NULL);
INSERT INTO customers
SELECT i, 'customer' || i || '@example.' || (ARRAY['com','org','net','de','fr'])[1 + i % 5],
       initcap(md5(i::text)::varchar(7)) || ' ' || initcap(md5((i * 7)::text)::varchar(9)),
       chr(65 + (i % 250) / 26) || chr(65 + (i % 250) % 26),
       timestamptz '2019-01-01 00:00:00+00' + i * interval '97 seconds', i % 3 = 0
FROM generate_series(1, 20000) i;

CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL,
                       updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
INSERT INTO settings (key, value)
SELECT 'feature.' || i, CASE WHEN i % 2 = 0 THEN 'on' ELSE 'off' END FROM generate_series(1, 40) i;
SQL
)

# Row counts come in as psql variables :orders, :events, :attachments.
BIG_SQL=$(
    cat <<'SQL'
SELECT setseed(0.2424);
-- The wide table: text, numeric, timestamps, some NULLs, free-text notes on a quarter of rows.
CREATE TABLE orders (
    id bigint NOT NULL, customer_id integer NOT NULL, product_id integer NOT NULL,
    status text NOT NULL, currency char(3) NOT NULL, quantity integer NOT NULL,
    unit_price numeric(12,2) NOT NULL, amount numeric(14,2) NOT NULL, tax numeric(12,2) NOT NULL,
    discount_pct numeric(5,2), created_at timestamptz NOT NULL, updated_at timestamptz,
    shipped_at timestamptz, shipping_name text, shipping_street text, shipping_city text,
    shipping_postcode text, country char(2) NOT NULL, coupon_code text, notes text,
    is_gift boolean NOT NULL, weight_kg real);
INSERT INTO orders
SELECT i, c, p, st, cur, q, up, round(up * q * (1 - d / 100), 2), round(up * q * 0.2, 2), d,
       ts, ts + random() * interval '3 days',
       CASE WHEN st IN ('shipped', 'delivered') THEN ts + random() * interval '7 days' END,
       'Customer ' || c,
       (1 + i % 997) || ' ' || (ARRAY['Main','Oak','Pine','Maple','Cedar','Elm','Lake','Hill','Park','Station'])[1 + i % 10] || ' Street',
       (ARRAY['Berlin','Paris','Lyon','Madrid','Rome','Vienna','Oslo','Porto','Leeds','Gent','Basel','Turin'])[1 + (i / 7) % 12],
       lpad(((i::bigint * 7919) % 99999)::text, 5, '0'), chr(65 + (c % 250) / 26) || chr(65 + (c % 250) % 26),
       CASE WHEN i % 11 = 0 THEN 'SAVE' || (i % 50) END,
       CASE WHEN i % 4 = 0 THEN
           (SELECT string_agg((ARRAY['please','leave','the','parcel','at','door','ring','bell','twice',
                                     'gift','wrap','fragile','handle','with','care','call','before',
                                     'delivery','back','office','neighbour','side','entrance','floor',
                                     'code','thanks'])[1 + ((i::bigint * j * 31 + j) % 26)::int], ' ')
            FROM generate_series(1, 4 + i % 17) j) END,
       i % 13 = 0, (random() * 20)::real
FROM (SELECT i, 1 + (random() * 19999)::int AS c, 1 + (random() * 4999)::int AS p,
             (ARRAY['pending','paid','paid','shipped','shipped','delivered','delivered','delivered',
                    'cancelled','refunded'])[1 + (random() * 9)::int] AS st,
             (ARRAY['EUR','EUR','USD','GBP'])[1 + i % 4] AS cur, 1 + (random() * 9)::int AS q,
             round((1 + random() * 499)::numeric, 2) AS up,
             CASE WHEN i % 5 = 0 THEN round((random() * 30)::numeric, 2) ELSE 0 END AS d,
             timestamptz '2020-01-01 00:00:00+00' + i * interval '13 seconds' + random() * interval '1 hour' AS ts
      FROM generate_series(1, :orders) i) s;

-- jsonb documents, as an events/audit table would hold.
CREATE TABLE events (id bigint NOT NULL, occurred_at timestamptz NOT NULL, kind text NOT NULL,
                     customer_id integer, session_id uuid NOT NULL, payload jsonb NOT NULL);
INSERT INTO events
SELECT i, timestamptz '2023-01-01 00:00:00+00' + i * interval '2 seconds', k, 1 + (i * 7) % 20000,
       md5(i::text)::uuid,
       jsonb_build_object(
           'path', '/' || k || '/' || (i % 5000),
           'referrer', (ARRAY['https://www.google.com/', 'https://news.example.org/item?id=' || (i % 977),
                              null, 'https://t.co/' || md5(i::text)::varchar(10)])[1 + i % 4],
           'user_agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0',
                                'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
                                'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36'])[1 + i % 3],
           'ip', '10.' || (i % 256) || '.' || ((i / 256) % 256) || '.' || (i * 13 % 256),
           'duration_ms', (random() * 5000)::int,
           'cart', jsonb_build_object('items', 1 + i % 6, 'total', round((random() * 900)::numeric, 2), 'currency', 'EUR'),
           'flags', jsonb_build_array('exp-' || (i % 7), CASE WHEN i % 2 = 0 THEN 'beta' ELSE 'stable' END),
           'score', random())
FROM (SELECT i, (ARRAY['page_view','page_view','page_view','add_to_cart','search','checkout',
                       'login','logout'])[1 + i % 8] AS k
      FROM generate_series(1, :events) i) s;

-- bytea of random-looking bytes (concatenated md5 digests: incompressible), 128 B to 4 KiB,
-- so the larger values are TOASTed.
CREATE TABLE attachments (id bigint NOT NULL, order_id bigint NOT NULL, filename text NOT NULL,
                          mime_type text NOT NULL, uploaded_at timestamptz NOT NULL, content bytea NOT NULL);
INSERT INTO attachments
SELECT i, 1 + (i * 37) % :orders, 'scan-' || i || '.pdf',
       (ARRAY['application/pdf','image/jpeg','image/png'])[1 + i % 3],
       timestamptz '2021-06-01 00:00:00+00' + i * interval '1 minute',
       (SELECT decode(string_agg(md5(i::text || ':' || j), ''), 'hex') FROM generate_series(1, 8 + i % 249) j)
FROM generate_series(1, :attachments) i;

SET maintenance_work_mem = '256MB';
ALTER TABLE orders ADD PRIMARY KEY (id);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_created_idx ON orders (created_at);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers;
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE INDEX events_customer_time_idx ON events (customer_id, occurred_at);
ALTER TABLE attachments ADD PRIMARY KEY (id);
CREATE INDEX attachments_order_idx ON attachments (order_id);
SQL
)

generate_db() { # db target_bytes
    local db=$1 target=$2 used att_rows rest ev_rows ord_rows
    admin postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
    admin "$db" >/dev/null <<<"$SMALL_SQL"
    used=$(value "$db" "SELECT pg_database_size(current_database())")
    att_rows=$(calc "printf \"%.0f\", 0.10 * $target / $ATTACHMENTS_ROW_BYTES")
    rest=$(calc "printf \"%.0f\", $target - $used - 0.10 * $target")
    ev_rows=$(calc "printf \"%.0f\", 0.30 * $rest / $EVENTS_ROW_BYTES")
    ord_rows=$(calc "printf \"%.0f\", 0.70 * $rest / $ORDERS_ROW_BYTES")
    admin "$db" -v orders="$ord_rows" -v events="$ev_rows" -v attachments="$att_rows" >/dev/null <<<"$BIG_SQL"
    admin "$db" -c "VACUUM ANALYZE"
    admin "$db" -c "CHECKPOINT"
}

# The user tables, largest first: "qualified_name<TAB>heap_bytes<TAB>heap_and_toast_bytes".
list_tables() { # db
    value "$1" "SELECT format('%I.%I', n.nspname, c.relname) || E'\t' || pg_relation_size(c.oid)
                       || E'\t' || pg_table_size(c.oid)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'deployctl')
                  AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'
                ORDER BY pg_total_relation_size(c.oid) DESC, 1"
}

# generate_and_describe SIZE: generates the database for SIZE and prints what it got. Sets the
# caller's db, db_url, runs (its work subdirectory), gen_s, db_bytes and dev.
generate_and_describe() {
    local size=$1 target=${target_of[$1]} gen_t0
    db=bench_$(tr '[:upper:]' '[:lower:]' <<<"$size" | tr -c 'a-z0-9\n' '_')
    db_url=$DC_PG_URL_BASE/$db
    runs=$work/$db
    mkdir -p "$runs"

    echo
    echo "=== size $size (target $(mib "$target") MiB): generating database $db ..."
    gen_t0=$(date +%s.%N)
    generate_db "$db" "$target"
    gen_s=$(calc "printf \"%.1f\", $(date +%s.%N) - $gen_t0")
    db_bytes=$(value "$db" "SELECT pg_database_size(current_database())")
    dev=$(calc "printf \"%+.1f\", ($db_bytes - $target) * 100 / $target")
    local size_ok=yes
    calc "exit !($dev >= -15 && $dev <= 15)" || size_ok=no
    echo "generated in ${gen_s} s: pg_database_size $(mib "$db_bytes") MiB (${dev}% from target$([[ $size_ok == yes ]] || echo ', OUTSIDE +-15%'))"
    value "$db" "SELECT string_agg(relname || ' ' || round(100.0 * s / pg_database_size(current_database()), 1) || '%', ', ' ORDER BY s DESC)
                 FROM (SELECT c.relname, pg_total_relation_size(c.oid) AS s FROM pg_class c
                       WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace) t" |
        sed 's/^/composition (table+toast+indexes, % of database): /'
}

# ---- measuring ----

# measure OUTDIR CMD... : sets M_WALL (s), M_RSS (KiB), M_CPU (user+sys s of the client process
# tree, not the server) and M_RC; stdout/stderr go to OUTDIR/{out,err}.
measure() {
    local dir=$1 t0 t1
    shift
    mkdir -p "$dir"
    sync
    t0=$(date +%s.%N)
    set +e
    /usr/bin/time -f $'%U %S\n%M' -o "$dir/time" "$@" >"$dir/out" 2>"$dir/err"
    M_RC=$?
    set -e
    t1=$(date +%s.%N)
    sync
    M_WALL=$(calc "printf \"%.3f\", $t1 - $t0")
    M_RSS=$(tail -n 1 "$dir/time" 2>/dev/null || true)
    [[ $M_RSS =~ ^[0-9]+$ ]] || M_RSS=""
    M_CPU=$(tail -n 2 "$dir/time" 2>/dev/null | head -n 1 | awk 'NF == 2 { printf "%.2f", $1 + $2 }')
}

# ---- rounds: every tool K times, median wall and CPU, largest peak RSS ----

# The caller (one size) declares, for the tools in the global `tools` array (labels in the
# global run_label): ok[t] (0 until a run fails, then its exit code; a failed tool is not run
# again), walls[t], rsses[t], cpus[t] (space-separated values per round), and wall[t], rss[t],
# cpu[t] (filled by summarize_runs).

# record_run TOOL RUNDIR: after `measure`, files the round (returns 0), or reports the failure
# with the tail of its stderr, marks the tool failed and sets any_run_failed (returns 1).
record_run() {
    local t=$1 dir=$2
    ok[$t]=$M_RC
    if [[ $M_RC -ne 0 ]]; then
        any_run_failed=1
        echo "ERROR: ${run_label[$t]} failed (exit $M_RC):" >&2
        tail -n 20 "$dir/err" | mask | sed 's/^/  /' >&2
        return 1
    fi
    walls[$t]+="$M_WALL "
    rsses[$t]+="$M_RSS "
    cpus[$t]+="$M_CPU "
}

# median "v1 v2 ..." PRINTF-FORMAT
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g |
    awk -v f="$2" '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf f, m }'; }

# Median wall and CPU time, largest peak RSS over the rounds; the wall times of every round
# when there were several.
summarize_runs() {
    local t
    for t in "${tools[@]}"; do
        wall[$t]="" rss[$t]="" cpu[$t]=""
        [[ ${ok[$t]} -eq 0 ]] || continue
        wall[$t]=$(median "${walls[$t]}" "%.3f")
        cpu[$t]=$(median "${cpus[$t]}" "%.2f")
        rss[$t]=$(tr ' ' '\n' <<<"${rsses[$t]}" | sed '/^$/d' | sort -n | tail -n 1)
    done
    if [[ $repeat -gt 1 ]]; then
        echo "wall times per round (s):"
        for t in "${tools[@]}"; do printf '  %-28s %s\n' "${run_label[$t]}" "${walls[$t]}"; done
    fi
}

# ---- report ----

results_json=()   # one JSON object per size
rss_summary=()    # "size=MiB=PASS|FAIL" per size
any_run_failed=0
any_target_failed=0

# ratio A B -> A/B with 3 decimals, empty when either is missing or B is 0
ratio() { if [[ -n $1 && -n $2 ]] && calc "exit !($2 > 0)"; then calc "printf \"%.3f\", $1 / $2"; fi; }
# verdict VALUE OP LIMIT -> PASS/FAIL
verdict() {
    if [[ -n $1 ]] && calc "exit !($1 $2 $3)"; then echo PASS; else echo FAIL; fi
}
json_num() { if [[ -n $1 ]]; then echo "$1"; else echo null; fi; }

# print_ratio LABEL VALUE TARGET-TEXT VERDICT: one line of the "ratios:" block (labels padded
# to RATIO_LABEL_WIDTH).
RATIO_LABEL_WIDTH=46
print_ratio() {
    printf '  %-*s %8s   %-16s %s\n' "$RATIO_LABEL_WIDTH" "$1" "$(fmt_or_dash "$2")" "$3" "$4"
}

# write_json: (re)writes --json FILE with the sizes done so far (a crash keeps the earlier ones).
write_json() {
    if [[ -n $json_out ]]; then
        printf '%s\n' "${results_json[@]}" | jq -s . >"$json_out"
    fi
}

# print_rss_summary: deployctl's peak RSS per size from rss_summary; sets all_rss.
print_rss_summary() {
    local entry s m v
    all_rss=PASS
    for entry in "${rss_summary[@]}"; do
        IFS='=' read -r s m v <<<"$entry"
        printf '  deployctl peak RSS at %-8s %8s MiB  %s\n' "$s:" "$m" "$v"
        [[ $v == PASS ]] || all_rss=FAIL
    done
    echo "deployctl peak RSS within $RSS_LIMIT_MIB MiB at every size: $all_rss"
}

# bench_exit [EXTRA-VERDICT...]: 1 when a measured tool failed; with --strict, 3 when a target
# (per size, the RSS bound, or any EXTRA-VERDICT that is not PASS) was missed; else 0.
bench_exit() {
    local v missed=$any_target_failed
    [[ $all_rss == PASS ]] || missed=1
    for v in "$@"; do [[ $v == PASS ]] || missed=1; done
    if [[ $any_run_failed -ne 0 ]]; then
        exit 1
    fi
    if [[ $strict -eq 1 && $missed -ne 0 ]]; then
        exit 3
    fi
    exit 0
}
