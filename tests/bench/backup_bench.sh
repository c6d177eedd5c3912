#!/usr/bin/env bash
# backup_bench.sh - how fast and how lean `deployctl backup` is, next to pg_dump and the raw
# COPY floor. A BENCHMARK, not a test: it is not registered with ctest, it takes minutes, and
# its numbers depend on the machine. Run it by hand (or from a perf job) and read the report.
#
# Usage:
#   tests/bench/backup_bench.sh [--sizes "100MB 1GB"] [--jobs N] [--deployctl PATH]
#                               [--repeat K] [--json FILE] [--keep] [--strict]
#
#   --sizes LIST     database sizes to generate, space separated (default "100MB 1GB");
#                    units B, kB, MB, GB, TB (powers of 1024, as PostgreSQL's pg_size_bytes;
#                    KiB, MiB, GiB, TiB are accepted too); at least 32MB
#   --jobs N         parallel workers for deployctl, pg_dump -Fd and floor-parallel (default 2)
#   --deployctl PATH the binary to measure (default $DEPLOYCTL, else <repo>/build/deployctl)
#   --repeat K       run every tool K times, in rounds (deployctl, pg_dump -Fc, ... again),
#                    and report the median wall time and the largest peak RSS (default 1)
#   --json FILE      also write the results there: a JSON array, one object per size
#   --keep           leave the cluster running and the work directory (outputs) in place
#   --strict         exit 3 when a target is missed (default: only a failed run is an error)
#
# Exit status: 0 when every run completed (targets missed or not), 3 with --strict when a
# target was missed, 1 when a measured tool failed, 2 on bad arguments, and non-zero when
# the cluster or the data cannot be set up. It takes about 30 s at 100MB and a few
# minutes at 1GB on 2 cores, and needs roughly twice the largest size in free space under
# /tmp (the cluster) and $TMPDIR (the outputs, removed after each size unless --keep).
#
# What one run does, against ONE throwaway cluster started with tests/harness/pg_cluster.sh:
#   for each size S:
#     1. generates a database of about S bytes (pg_database_size, aimed within +-15%), server
#        side with generate_series: a wide `orders` table (text, numeric, timestamps; ~70% of
#        the rest), a jsonb `events` table (~30% of the rest), an `attachments` table whose
#        bytea column holds random-looking, poorly compressible bytes (~10% of S), a few small
#        tables (countries, products, customers, settings), primary keys, secondary indexes and
#        a foreign key; then VACUUM ANALYZE and CHECKPOINT;
#     2. warm-up: one `COPY <table> TO STDOUT` pass over every table (counted with wc -c), so
#        every measured tool sees the same warm OS page cache instead of the first one paying
#        for cold reads (the database fits in RAM at the default sizes);
#     3. measures, one after the other, wall time (date +%s.%N deltas) and peak RSS
#        (/usr/bin/time -f %M, in KiB; also the client's user+sys CPU, %U + %S):
#          deployctl backup --jobs N   into a fresh file:// store in the work dir (same disk)
#          pg_dump -Fc                 to a file
#          pg_dump -Fd -j N            to a directory
#          floor                       psql `COPY <table> TO STDOUT` > /dev/null, one psql per
#                                      table, sequentially: a single stream, no compression
#          floor-parallel              the same in N parallel streams; tables bigger than
#                                      deployctl's split size (64MiB of heap) are cut into ctid
#                                      ranges like deployctl does (PostgreSQL >= 14), assigned
#                                      largest first to the least loaded stream
#        `sync` runs (untimed) after each tool, so one tool's dirty pages do not slow the next;
#     4. prints a table (tool, wall s, MiB/s, peak RSS MiB, output MiB) and the ratios with
#        their targets: deployctl wall / pg_dump -Fc wall <= 0.33, deployctl MiB/s / floor
#        MiB/s >= 0.8, deployctl peak RSS <= 64 MiB (plus, for information, the ratios to
#        pg_dump -Fd -jN and to floor-parallel).
#   At the end: whether deployctl's peak RSS stayed within 64 MiB at every size (the bound
#   must not grow with the database).
#
# How to read the numbers:
#   - MiB/s is the same numerator for every tool: the COPY text bytes of all tables (the sum
#     of .tables[].raw_bytes in deployctl's manifest), divided by that tool's wall time, so the
#     rates compare like with like whatever each tool writes.
#   - Every tool connects over the same TCP URL with a password (as deployctl does in
#     production), so all pay the same protocol and authentication costs. URLs are printed
#     with the password replaced by ***.
#   - Peak RSS is GNU time's %M: the largest single process of the tool's process tree, not a
#     sum. deployctl's workers are threads, so its figure covers all of them (and its pg_dump
#     child for the schema, if that is larger); pg_dump -Fd -jN is N+1 processes, of which
#     the largest is shown.
#   - client CPU s is user+sys time of the tool's own processes (GNU time %U + %S), not of the
#     PostgreSQL backends serving them; with --repeat, the median.
#   - pg_dump runs with its defaults (gzip compression, sync of the output); deployctl with
#     its defaults (zstd level 3, 16MiB chunks, 64MiB split size). The environment that
#     could change deployctl's settings (DEPLOYCTL_*, DATABASE_URL*) is cleared and an empty
#     config file is passed, so /etc/deployctl is never read; DEPLOYCTL_STATE_DIR points into
#     the work directory.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)

# ---- settings ----

RSS_LIMIT_MIB=64
WALL_VS_FC_MAX=0.33
FLOOR_MIN=0.80
SPLIT_BYTES=$((64 * 1024 * 1024)) # deployctl's default --split-size
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

usage() {
    sed -n '6,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "backup_bench.sh: $*" >&2
    exit 2
}

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
    json_dir=$(dirname "$json_out")
    [[ -d $json_dir ]] || die "--json: directory $json_dir does not exist"
    json_out=$(cd "$json_dir" && pwd)/$(basename "$json_out")
fi
for tool in jq awk /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

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

read -r -a size_list <<<"$sizes"
[[ ${#size_list[@]} -gt 0 ]] || die "--sizes is empty"
declare -A target_of=()
for s in "${size_list[@]}"; do
    b=$(size_bytes "$s") || die "cannot read size '$s' (use e.g. 100MB, 1GB)"
    [[ $b -ge $MIN_SIZE ]] || die "size '$s' is too small: at least 32MB (the fixed part is ~13 MiB)"
    target_of[$s]=$b
done

# ---- environment: nothing from the caller's shell may change what is measured ----

unset DATABASE_URL DATABASE_URL_DIRECT DEPLOYCTL_STORE DEPLOYCTL_CONFIG DEPLOYCTL_JOBS \
    DEPLOYCTL_COMPRESS_LEVEL DEPLOYCTL_CHUNK_SIZE DEPLOYCTL_SPLIT_SIZE DEPLOYCTL_LOCK_TIMEOUT \
    DEPLOYCTL_PG_DUMP DEPLOYCTL_LOG_LEVEL DEPLOYCTL_LOG_FORMAT \
    PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGOPTIONS \
    PGSSLMODE PGCONNECT_TIMEOUT 2>/dev/null || true
export PGCLIENTENCODING=UTF8 PGTZ=UTC PGDATESTYLE=ISO

work=$(mktemp -d "${TMPDIR:-/tmp}/deployctl-bench.XXXXXX")
chmod 755 "$work"
pg_state=$work/pg
: >"$work/empty.conf"
chmod 600 "$work/empty.conf"

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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mask() { sed -E 's#(://[^:/@]+:)[^@]*@#\1***@#g'; }

"$repo_root/tests/harness/pg_cluster.sh" start "$pg_state" >"$work/cluster.log" 2>&1 ||
    { mask <"$work/cluster.log" >&2; die "cannot start the PostgreSQL cluster"; }
# shellcheck disable=SC1091
source "$pg_state/env"
PSQL=$DC_PG_BIN/psql
PG_DUMP=$DC_PG_BIN/pg_dump

admin() { # db args...  (superuser over the socket; setup and inspection, never measured)
    local db=$1
    shift
    PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 \
        -h "$DC_PG_SOCKET" -p "$DC_PG_PORT" -U postgres -d "$db" "$@"
}
value() { admin "$1" -At -c "$2"; }

pg_version=$(value postgres "SHOW server_version")
pg_version_num=$(value postgres "SHOW server_version_num")
block_size=$(value postgres "SHOW block_size")
deployctl_version=$("$deployctl" --version 2>/dev/null | awk 'NR == 1 && $1 == "deployctl" { print $2 }') || true
[[ -n $deployctl_version ]] || deployctl_version=unknown
cores=$(nproc 2>/dev/null || echo "?")

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

# ---- measuring ----

# Runs one stream of COPY statements (one per line of each file), one psql per statement; with
# several files, one stream per file in parallel. Runs under /usr/bin/time as its own process.
# shellcheck disable=SC2016
STREAM_RUNNER='
run_stream() {
    local sql
    while IFS= read -r sql; do
        "$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_URL" -c "$sql" >/dev/null || return 1
    done <"$1"
}
pids=()
for f in "$@"; do run_stream "$f" & pids+=("$!"); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit "$rc"'

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

# ---- one size ----

declare -A run_label=()
tools=(deployctl pg_dump_fc pg_dump_fd floor floor_parallel)
run_label[deployctl]="deployctl backup -j$jobs"
run_label[pg_dump_fc]="pg_dump -Fc"
run_label[pg_dump_fd]="pg_dump -Fd -j$jobs"
run_label[floor]="floor (1 stream)"
run_label[floor_parallel]="floor-parallel ($jobs streams)"

results_json=()
rss_summary=()
any_run_failed=0
any_target_failed=0

# ratio A B -> A/B with 3 decimals, empty when either is missing or B is 0
ratio() { if [[ -n $1 && -n $2 ]] && calc "exit !($2 > 0)"; then calc "printf \"%.3f\", $1 / $2"; fi; }
# verdict VALUE OP LIMIT -> PASS/FAIL
verdict() {
    if [[ -n $1 ]] && calc "exit !($1 $2 $3)"; then echo PASS; else echo FAIL; fi
}
json_num() { if [[ -n $1 ]]; then echo "$1"; else echo null; fi; }

bench_size() { # size
    local size=$1 target=${target_of[$1]} db db_url runs gen_t0 gen_s db_bytes dev
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

    # Units of work: whole tables for the single stream; ctid ranges of big tables for the
    # parallel streams (as deployctl splits them).
    local tables name heap weight nt=0
    tables=$(list_tables "$db")
    : >"$runs/floor.units"
    : >"$runs/parallel.units"
    local split_blocks=$((SPLIT_BYTES / block_size))
    while IFS=$'\t' read -r name heap weight; do
        [[ -n $name ]] || continue
        nt=$((nt + 1))
        printf 'COPY %s TO STDOUT\n' "$name" >>"$runs/floor.units"
        local blocks=$((heap / block_size)) first=0 upper
        if [[ $pg_version_num -ge 140000 && $blocks -gt $split_blocks ]]; then
            while [[ $first -lt $blocks ]]; do
                upper=""
                [[ $((first + split_blocks)) -lt $blocks ]] && upper=" AND ctid < '($((first + split_blocks)),0)'::tid"
                printf '%s\tCOPY (SELECT * FROM ONLY %s WHERE ctid >= '\''(%s,0)'\''::tid%s) TO STDOUT\n' \
                    "$(((blocks - first < split_blocks ? blocks - first : split_blocks) * block_size))" \
                    "$name" "$first" "$upper" >>"$runs/parallel.units"
                first=$((first + split_blocks))
            done
        else
            printf '%s\tCOPY %s TO STDOUT\n' "$weight" "$name" >>"$runs/parallel.units"
        fi
    done <<<"$tables"
    # Largest unit first to the least loaded stream.
    local i
    for ((i = 0; i < jobs; i++)); do : >"$runs/stream.$i"; done
    sort -t $'\t' -k1,1nr "$runs/parallel.units" |
        awk -F '\t' -v n="$jobs" -v dir="$runs" '{
            best = 0
            for (i = 1; i < n; i++) if (load[i] < load[best]) best = i
            load[best] += $1
            print $2 >> (dir "/stream." best)
        }'
    local stream_files=()
    for ((i = 0; i < jobs; i++)); do stream_files+=("$runs/stream.$i"); done

    # Warm-up: every table read once (and its COPY text counted).
    local copy_bytes=0 b
    while IFS= read -r sql; do
        b=$(PGOPTIONS='-c extra_float_digits=3' "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db_url" -c "$sql" | wc -c)
        copy_bytes=$((copy_bytes + b))
    done <"$runs/floor.units"
    echo "warm-up: $nt tables read once, $(mib "$copy_bytes") MiB of COPY text"

    declare -A wall=() rss=() cpu=() outb=() ok=() walls=() rsses=() cpus=()
    local t rep store=$runs/store raw_bytes="" stored_bytes="" manifest snap_id
    for t in "${tools[@]}"; do ok[$t]=0 walls[$t]="" rsses[$t]="" cpus[$t]=""; done
    export BENCH_PSQL=$PSQL
    for ((rep = 1; rep <= repeat; rep++)); do
        [[ $repeat -eq 1 ]] || echo "round $rep of $repeat ..."
        for t in "${tools[@]}"; do
            [[ ${ok[$t]} -eq 0 ]] || continue # failed once: not run again
            case $t in
            deployctl)
                rm -rf "$store" "$runs/state" # a fresh store every time
                measure "$runs/run.$t" env DEPLOYCTL_STATE_DIR="$runs/state" "$deployctl" backup \
                    --config "$work/empty.conf" --quiet --jobs "$jobs" --pg-dump "$PG_DUMP" \
                    --database "$db_url" --store "file://$store"
                ;;
            pg_dump_fc)
                rm -f "$runs/dump.fc"
                measure "$runs/run.$t" "$PG_DUMP" -Fc -d "$db_url" -f "$runs/dump.fc"
                ;;
            pg_dump_fd)
                rm -rf "$runs/dump.fd"
                measure "$runs/run.$t" "$PG_DUMP" -Fd -j "$jobs" -d "$db_url" -f "$runs/dump.fd"
                ;;
            floor) BENCH_URL=$db_url measure "$runs/run.$t" bash -c "$STREAM_RUNNER" stream "$runs/floor.units" ;;
            floor_parallel) BENCH_URL=$db_url measure "$runs/run.$t" bash -c "$STREAM_RUNNER" stream "${stream_files[@]}" ;;
            esac
            ok[$t]=$M_RC
            if [[ $M_RC -ne 0 ]]; then
                any_run_failed=1
                echo "ERROR: ${run_label[$t]} failed (exit $M_RC):" >&2
                tail -n 20 "$runs/run.$t/err" | mask | sed 's/^/  /' >&2
                continue
            fi
            walls[$t]+="$M_WALL "
            rsses[$t]+="$M_RSS "
            cpus[$t]+="$M_CPU "
            case $t in
            deployctl)
                snap_id=$(tail -n 1 "$runs/run.$t/out")
                manifest=$(find "$store" -name manifest.json -path "*/$snap_id/*" 2>/dev/null | head -n 1)
                if [[ -n $manifest ]]; then
                    raw_bytes=$(jq '[.tables[].raw_bytes] | add // 0' "$manifest")
                    stored_bytes=$(jq '[.tables[].chunks[].stored_bytes] | add // 0' "$manifest")
                else
                    echo "WARNING: deployctl printed '$snap_id' but no manifest.json for it is in the store" >&2
                fi
                outb[$t]=$(du -sb "$store" | cut -f1)
                ;;
            pg_dump_fc) outb[$t]=$(stat -c %s "$runs/dump.fc") ;;
            pg_dump_fd) outb[$t]=$(du -sb "$runs/dump.fd" | cut -f1) ;;
            esac
        done
    done
    # Median wall and CPU time, largest peak RSS over the rounds.
    median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g |
        awk -v f="$2" '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf f, m }'; }
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

    # The common numerator: deployctl's manifest; the warm-up count if there is none.
    local numer=$raw_bytes numer_src="deployctl manifest, sum of .tables[].raw_bytes"
    if [[ -z $numer ]]; then
        numer=$copy_bytes numer_src="warm-up psql COPY count (no deployctl manifest)"
    fi
    echo "raw COPY text: $(mib "$numer") MiB ($numer_src); psql counted $(mib "$copy_bytes") MiB"
    if [[ -n $raw_bytes && $raw_bytes -ne $copy_bytes ]]; then
        echo "note: manifest raw_bytes ($raw_bytes) != psql COPY byte count ($copy_bytes)"
    fi
    if [[ -n $stored_bytes && -n $raw_bytes && $stored_bytes -gt 0 ]]; then
        echo "deployctl compression: $(mib "$raw_bytes") MiB -> $(mib "$stored_bytes") MiB of chunks ($(calc "printf \"%.2f\", $raw_bytes / $stored_bytes")x)"
    fi

    declare -A rate=() rss_mib=() out_mib=()
    echo
    printf '%-28s %9s %9s %13s %11s %13s\n' tool "wall s" "MiB/s" "peak RSS MiB" "output MiB" "client CPU s"
    for t in "${tools[@]}"; do
        rate[$t]="" rss_mib[$t]="" out_mib[$t]=""
        [[ -z ${wall[$t]} ]] || rate[$t]=$(ratio "$(mib "$numer")" "${wall[$t]}")
        [[ -z ${rss[$t]} ]] || rss_mib[$t]=$(calc "printf \"%.1f\", ${rss[$t]} / 1024")
        [[ -z ${outb[$t]:-} ]] || out_mib[$t]=$(mib "${outb[$t]}")
        [[ -z ${rate[$t]} ]] || rate[$t]=$(calc "printf \"%.1f\", ${rate[$t]}")
        printf '%-28s %9s %9s %13s %11s %13s\n' "${run_label[$t]}" "$(fmt_or_dash "${wall[$t]}")" \
            "$(fmt_or_dash "${rate[$t]}")" "$(fmt_or_dash "${rss_mib[$t]}")" "$(fmt_or_dash "${out_mib[$t]}")" \
            "$(fmt_or_dash "${cpu[$t]}")"
    done

    local r_fc r_fd r_floor r_par v_fc v_floor v_rss
    r_fc=$(ratio "${wall[deployctl]}" "${wall[pg_dump_fc]}")
    r_fd=$(ratio "${wall[deployctl]}" "${wall[pg_dump_fd]}")
    # throughput ratio = inverse wall ratio (same numerator)
    r_floor=$(ratio "${wall[floor]}" "${wall[deployctl]}")
    r_par=$(ratio "${wall[floor_parallel]}" "${wall[deployctl]}")
    v_fc=$(verdict "$r_fc" "<=" "$WALL_VS_FC_MAX")
    v_floor=$(verdict "$r_floor" ">=" "$FLOOR_MIN")
    v_rss=$(verdict "${rss_mib[deployctl]}" "<=" "$RSS_LIMIT_MIB")
    [[ $v_fc == PASS && $v_floor == PASS && $v_rss == PASS ]] || any_target_failed=1
    echo
    echo "ratios:"
    printf '  %-46s %8s   %-16s %s\n' "deployctl wall / pg_dump -Fc wall" "$(fmt_or_dash "$r_fc")" "target <= $WALL_VS_FC_MAX" "$v_fc"
    printf '  %-46s %8s   %-16s %s\n' "deployctl wall / pg_dump -Fd -j$jobs wall" "$(fmt_or_dash "$r_fd")" "(info)" ""
    printf '  %-46s %8s   %-16s %s\n' "deployctl MiB/s / floor MiB/s" "$(fmt_or_dash "$r_floor")" "target >= $FLOOR_MIN" "$v_floor"
    printf '  %-46s %8s   %-16s %s\n' "deployctl MiB/s / floor-parallel MiB/s" "$(fmt_or_dash "$r_par")" "(info)" ""
    printf '  %-46s %8s   %-16s %s\n' "deployctl peak RSS MiB" "$(fmt_or_dash "${rss_mib[deployctl]}")" "target <= $RSS_LIMIT_MIB" "$v_rss"

    rss_summary+=("$size=$(fmt_or_dash "${rss_mib[deployctl]}")=$v_rss")

    # JSON
    local runs_json='{}' rj
    for t in "${tools[@]}"; do
        rj=$(jq -n --arg name "${run_label[$t]}" --argjson ok "$([[ ${ok[$t]} -eq 0 ]] && echo true || echo false)" \
            --argjson code "${ok[$t]}" --argjson wall "$(json_num "${wall[$t]}")" \
            --argjson rate "$(json_num "${rate[$t]}")" --argjson rss "$(json_num "${rss[$t]}")" \
            --argjson out "$(json_num "${outb[$t]:-}")" --argjson cpu "$(json_num "${cpu[$t]}")" \
            '{"label": $name, "ok": $ok, "exit_code": $code, "wall_seconds": $wall,
              "mib_per_second": $rate, "peak_rss_kib": $rss, "output_bytes": $out,
              "client_cpu_seconds": $cpu}')
        runs_json=$(jq -n --argjson all "$runs_json" --arg k "$t" --argjson v "$rj" '$all + {($k): $v}')
    done
    results_json+=("$(jq -n \
        --arg size "$size" --argjson target "$target" --arg db "$db" --argjson db_bytes "$db_bytes" \
        --argjson dev "$dev" --argjson gen "$gen_s" --argjson raw "$numer" --arg raw_src "$numer_src" \
        --argjson copy_bytes "$copy_bytes" --argjson stored "$(json_num "$stored_bytes")" \
        --argjson tables "$nt" --argjson jobs "$jobs" --argjson repeat "$repeat" --arg pg "$pg_version" \
        --arg dv "$deployctl_version" --arg cores "$cores" --argjson runs "$runs_json" \
        --argjson r_fc "$(json_num "$r_fc")" --argjson r_fd "$(json_num "$r_fd")" \
        --argjson r_floor "$(json_num "$r_floor")" --argjson r_par "$(json_num "$r_par")" \
        --argjson rss_mib "$(json_num "${rss_mib[deployctl]}")" \
        --argjson fc_max "$WALL_VS_FC_MAX" --argjson floor_min "$FLOOR_MIN" --argjson rss_max "$RSS_LIMIT_MIB" \
        --arg v_fc "$v_fc" --arg v_floor "$v_floor" --arg v_rss "$v_rss" \
        '{size: $size, target_bytes: $target, database: $db, database_bytes: $db_bytes,
          size_deviation_percent: $dev, generate_seconds: $gen, tables: $tables, jobs: $jobs, repeat: $repeat,
          raw_copy_bytes: $raw, raw_copy_bytes_source: $raw_src, psql_copy_bytes: $copy_bytes,
          deployctl_chunk_bytes: $stored, postgres_version: $pg, deployctl_version: $dv, cores: $cores,
          runs: $runs,
          ratios: {deployctl_wall_vs_pg_dump_fc: $r_fc, deployctl_wall_vs_pg_dump_fd: $r_fd,
                   deployctl_rate_vs_floor: $r_floor, deployctl_rate_vs_floor_parallel: $r_par},
          targets: {wall_vs_pg_dump_fc: {value: $r_fc, max: $fc_max, result: $v_fc},
                    rate_vs_floor: {value: $r_floor, min: $floor_min, result: $v_floor},
                    peak_rss_mib: {value: $rss_mib, max: $rss_max, result: $v_rss}}}')")
    if [[ -n $json_out ]]; then
        printf '%s\n' "${results_json[@]}" | jq -s . >"$json_out"
    fi

    if [[ $keep -eq 0 ]]; then
        rm -rf "$store" "$runs/dump.fc" "$runs/dump.fd" "$runs/state"
        admin postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    fi
}

echo "deployctl backup benchmark: deployctl $deployctl_version ($deployctl), PostgreSQL $pg_version, $cores cores, jobs $jobs"
echo "sizes: ${size_list[*]}; rounds per tool: $repeat$([[ $repeat -eq 1 ]] || echo ' (median wall, largest RSS)'); work dir $work"
echo "database URL (all tools): $(mask <<<"$DC_PG_URL_BASE")/<db>"
echo "deployctl runs: DEPLOYCTL_STATE_DIR=<work>/state deployctl backup --quiet --jobs $jobs --pg-dump $PG_DUMP --database $(mask <<<"$DC_PG_URL_BASE")/<db> --store file://<work>/store"

for s in "${size_list[@]}"; do
    bench_size "$s"
done

echo
echo "=== summary"
all_rss=PASS
for entry in "${rss_summary[@]}"; do
    IFS='=' read -r s m v <<<"$entry"
    printf '  deployctl peak RSS at %-8s %8s MiB  %s\n' "$s:" "$m" "$v"
    [[ $v == PASS ]] || all_rss=FAIL
done
echo "deployctl peak RSS within $RSS_LIMIT_MIB MiB at every size: $all_rss"
[[ -z $json_out ]] || echo "JSON results: $json_out"

if [[ $any_run_failed -ne 0 ]]; then
    exit 1
fi
if [[ $strict -eq 1 && ($any_target_failed -ne 0 || $all_rss != PASS) ]]; then
    exit 3
fi
exit 0
