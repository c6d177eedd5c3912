-- A database holding everything a real schema holds, for the backup round-trip tests:
-- odd names, every common column type with its edge values, NULLs, generated columns,
-- partitions, inheritance, sequences, views, materialized views, functions, triggers,
-- comments, empty tables, a zero-column table, and deployctl's own schema (never backed up).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA "Ünïcödé Schéma";
CREATE SCHEMA "MixedCase";
CREATE SCHEMA "we""ird sch ema";
COMMENT ON SCHEMA "MixedCase" IS 'a schema with capitals';

CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'très "joyeux"');
CREATE DOMAIN public.positive_int AS integer CHECK (VALUE > 0);
CREATE DOMAIN public.email AS text CHECK (VALUE ~ '@');
CREATE TYPE public.address AS (street text, zip varchar(10));
CREATE TYPE public.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);

-- Every common column type, with edge values.
CREATE TABLE public.all_types (
    id integer PRIMARY KEY,
    small smallint,
    big bigint,
    num numeric,
    num_fixed numeric(20, 6),
    real_col real,
    dbl double precision,
    money_col money,
    flag boolean,
    ch char(5),
    vc varchar(50),
    txt text,
    bin bytea,
    js json,
    jsb jsonb,
    x xml,
    uid uuid,
    ip inet,
    net cidr,
    mac macaddr,
    bits bit(8),
    vbits bit varying(16),
    d date,
    t time,
    ttz time with time zone,
    ts timestamp,
    tstz timestamptz,
    iv interval,
    int_arr integer[],
    txt_arr text[],
    matrix integer[][],
    m public.mood,
    pos public.positive_int,
    mail public.email,
    addr public.address,
    r_int int4range,
    r_ts tstzrange,
    r_num numrange,
    r_custom public.floatrange,
    tsv tsvector,
    pt point,
    bx box,
    o oid
);

INSERT INTO public.all_types VALUES
(1, 32767, 9223372036854775807, 'NaN', 12345678901234.123456, 'NaN', 'Infinity', 12.34, true,
 'ab', 'varchar', E'tab\there\nnewline\\backslash "quote" ''single''', '\x00ff10deadbeef',
 '{"a": [1, 2, {"b": null}], "z": "ünï"}', '{"k": "v", "n": 1.50, "arr": [true, false]}',
 '<doc><p a="1">x &amp; y</p></doc>', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24',
 '10.0.0.0/8', '08:00:2b:01:02:03', B'10101010', B'1101', '2024-02-29', '23:59:59.999999',
 '12:00:00+05:30', '1999-12-31 23:59:59.5', '2024-06-01 12:34:56.789+02', '1 year 2 mons 3 days 04:05:06.5',
 '{1,2,NULL,4}', '{"a b","c,d","e\"f",NULL,"NULL",""}', '{{1,2},{3,4}}', 'happy', 42, 'a@b.c',
 ROW('Main St 1', '12345'), '[1,10)', '[2024-01-01 00:00+00,2024-12-31 00:00+00)', '(1.5,2.5]',
 '[0.5,1.5)', 'the quick brown fox', '(1.5,-2.25)', '((0,0),(1,1))', 12345),
(2, -32768, -9223372036854775808, '-0.000000000000000000000000000001', -1, '-Infinity', '-Infinity',
 -0.01, false, '', '', '', '\x', '[]', '{}', '<a/>', '00000000-0000-0000-0000-000000000000',
 '::1', '::/0', 'ff:ff:ff:ff:ff:ff', B'00000000', B'', '4713-01-01 BC', '00:00', '00:00:00-12',
 'infinity', '-infinity', '-178000000 years', '{}', '{}', '{}', 'très "joyeux"', 1, 'x@y',
 ROW(NULL, NULL), 'empty', '(,)', '[-1e30,1e30]', 'empty', '', '(0,0)', '((-1,-1),(1,1))', 0),
(3, NULL, NULL, NULL, NULL, '-0', '-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, 0, 0, '123456789012345678901234567890.123456789012345678901234567890', 0, 1.17549435e-38,
 2.2250738585072014e-308, 0, true, 'abcde', repeat('v', 50),
 E'unicode: 日本語 emoji 🎉 combining é \u00e9 control \x01\x02 cr\rlf\r\n end\\', decode(repeat('ab', 1000), 'hex'),
 '"just a string"', '[1, "two", 3.0, null]', NULL, 'ffffffff-ffff-ffff-ffff-ffffffffffff',
 '2001:db8::ff00:42:8329', '2001:db8::/32', '00:00:00:00:00:00', B'11111111', B'1111111111111111',
 '2000-01-01', '12:34:56', '12:34:56-08', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
 '-1 days +02:03:04', '{-2147483648,2147483647}', '{"\\\\back","\t","\n"}', '{{{1}}}', 'sad', 2147483647,
 'ü@ö', ROW('with "quotes", and commas', ''), '[-2147483648,2147483647)', '[,2000-01-01 00:00+00)',
 '[NaN,NaN]', '(,)', 'a:1 b:2,3', '(1e308,-1e-308)', '((1e10,1e10),(-1e10,-1e10))', 4294967295);

-- Odd names everywhere.
CREATE TABLE "Ünïcödé Schéma"."Tâble Ñame" (
    "Ïd" serial PRIMARY KEY,
    "Column With Spaces" text,
    "col""quote" text,
    "UPPER" integer,
    "日本語" text
);
INSERT INTO "Ünïcödé Schéma"."Tâble Ñame" ("Column With Spaces", "col""quote", "UPPER", "日本語")
SELECT 'row ' || g, 'q"' || g, g, '値' || g FROM generate_series(1, 300) g;
COMMENT ON TABLE "Ünïcödé Schéma"."Tâble Ñame" IS 'comment with ''quotes'' and ünïcödé';
COMMENT ON COLUMN "Ünïcödé Schéma"."Tâble Ñame"."日本語" IS 'a column comment';

CREATE TABLE "MixedCase"."CamelTable" ("Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Value" text);
INSERT INTO "MixedCase"."CamelTable" ("Value") SELECT md5(g::text) FROM generate_series(1, 50) g;
CREATE TABLE "we""ird sch ema"."ta""ble with ""quotes"" and spaces" ("a b" int, "c""d" text);
INSERT INTO "we""ird sch ema"."ta""ble with ""quotes"" and spaces" VALUES (1, 'x'), (NULL, NULL);

-- Generated columns are not copied: they are recomputed on load.
CREATE TABLE public.with_generated (
    id integer GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 7) PRIMARY KEY,
    price numeric NOT NULL,
    qty integer NOT NULL,
    total numeric GENERATED ALWAYS AS (price * qty) STORED,
    label text GENERATED ALWAYS AS ('item-' || qty::text) STORED
);
INSERT INTO public.with_generated (price, qty) SELECT g * 1.5, g FROM generate_series(1, 20) g;

-- A dropped column leaves a hole the column list must skip.
CREATE TABLE public.with_dropped (a int, b text, c int);
INSERT INTO public.with_dropped VALUES (1, 'one', 10), (2, 'two', 20);
ALTER TABLE public.with_dropped DROP COLUMN b;

-- Partitions: range, with a default partition, and a sub-partitioned level.
CREATE TABLE public.measurements (id bigint, taken date NOT NULL, region text NOT NULL, value numeric)
    PARTITION BY RANGE (taken);
CREATE TABLE public.measurements_2023 PARTITION OF public.measurements
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
CREATE TABLE public.measurements_2024_eu PARTITION OF public.measurements_2024 FOR VALUES IN ('eu');
CREATE TABLE public.measurements_2024_other PARTITION OF public.measurements_2024 DEFAULT;
CREATE TABLE public.measurements_default PARTITION OF public.measurements DEFAULT;
INSERT INTO public.measurements
SELECT g, date '2023-06-01' + (g % 700), CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, g / 7.0
FROM generate_series(1, 3000) g;
CREATE INDEX ON public.measurements (taken);

-- Inheritance: the parent has rows of its own; each row must be restored exactly once.
CREATE TABLE public.vehicles (id int PRIMARY KEY, name text);
CREATE TABLE public.cars (doors int) INHERITS (public.vehicles);
CREATE TABLE public.trucks (payload numeric) INHERITS (public.vehicles);
INSERT INTO public.vehicles VALUES (1, 'generic');
INSERT INTO public.cars VALUES (2, 'sedan', 4), (3, 'coupe', 2);
INSERT INTO public.trucks VALUES (4, 'lorry', 12.5);

-- Sequences: standalone, not yet called, custom increments, cycles.
CREATE SEQUENCE public.invoice_seq START 1000 INCREMENT 10;
SELECT nextval('public.invoice_seq'), nextval('public.invoice_seq');
CREATE SEQUENCE public.untouched_seq;
CREATE SEQUENCE "MixedCase"."Odd Seq" START -5 INCREMENT -1 MINVALUE -100 MAXVALUE 0 CYCLE;
SELECT nextval('"MixedCase"."Odd Seq"');
CREATE SEQUENCE public.reset_seq;
SELECT setval('public.reset_seq', 77, false);

-- Empty tables, and a table with no columns at all (its rows still count).
CREATE TABLE public.empty_table (id int, note text);
CREATE TABLE public.no_columns ();
INSERT INTO public.no_columns DEFAULT VALUES;
INSERT INTO public.no_columns DEFAULT VALUES;
CREATE UNLOGGED TABLE public.unlogged_cache (k text PRIMARY KEY, v text);
INSERT INTO public.unlogged_cache VALUES ('a', '1'), ('b', '2');

-- A bigger table, so small --chunk-size/--split-size settings give several chunks and ranges.
CREATE TABLE public.events (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb,
    at timestamptz NOT NULL DEFAULT '2024-01-01 00:00+00'
);
INSERT INTO public.events (kind, payload, at)
SELECT (ARRAY['login', 'logout', 'purchase', 'refund'])[1 + g % 4],
       jsonb_build_object('n', g, 'note', repeat('x', g % 50), 'tags', jsonb_build_array(g % 7, 'ä')),
       timestamptz '2024-01-01 00:00+00' + g * interval '37 seconds'
FROM generate_series(1, 20000) g;
DELETE FROM public.events WHERE id % 97 = 0; -- holes in the heap

-- Foreign keys, checks, unique and partial/expression indexes (all post-data).
CREATE TABLE public.customers (id serial PRIMARY KEY, email public.email UNIQUE, mood public.mood DEFAULT 'ok');
CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES public.customers (id) ON DELETE CASCADE,
    amount numeric(12, 2) CHECK (amount >= 0),
    status text NOT NULL DEFAULT 'new'
);
INSERT INTO public.customers (email, mood) SELECT 'c' || g || '@example.com', (ARRAY['sad','ok','happy']::public.mood[])[1 + g % 3] FROM generate_series(1, 100) g;
INSERT INTO public.orders (customer_id, amount, status) SELECT 1 + g % 100, g * 1.25, CASE WHEN g % 5 = 0 THEN 'paid' ELSE 'new' END FROM generate_series(1, 500) g;
CREATE INDEX orders_paid_idx ON public.orders (customer_id) WHERE status = 'paid';
CREATE INDEX customers_lower_email ON public.customers (lower(email));

-- Views, a materialized view, functions, triggers, comments.
CREATE VIEW public.paid_orders AS SELECT * FROM public.orders WHERE status = 'paid';
CREATE MATERIALIZED VIEW public.order_totals AS
    SELECT customer_id, sum(amount) AS total, count(*) AS n FROM public.orders GROUP BY customer_id;
CREATE MATERIALIZED VIEW public.never_refreshed AS SELECT 1 AS one WITH NO DATA;
CREATE FUNCTION public.order_count(c int) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM public.orders WHERE customer_id = c $$;
CREATE TABLE public.audit_log (id serial PRIMARY KEY, order_id int, action text, at timestamptz DEFAULT now());
CREATE FUNCTION public.log_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.audit_log (order_id, action, at) VALUES (NEW.id, TG_OP, '2024-01-01 00:00+00');
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON public.orders
    FOR EACH ROW EXECUTE FUNCTION public.log_order();
UPDATE public.orders SET status = 'paid' WHERE id <= 3;
COMMENT ON FUNCTION public.order_count(int) IS 'orders of one customer';
COMMENT ON VIEW public.paid_orders IS 'paid only';
COMMENT ON COLUMN public.orders.amount IS 'in euros';

-- Row-level security must not hide rows from the backup.
CREATE TABLE public.secrets (id int, owner_name text, secret text);
ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY only_alice ON public.secrets USING (owner_name = current_user);
INSERT INTO public.secrets VALUES (1, 'alice', 's1'), (2, 'bob', 's2');

-- Prisma's migration history, as Prisma keeps it: the snapshot records what was applied.
CREATE TABLE public._prisma_migrations (
    id varchar(36) PRIMARY KEY,
    checksum varchar(64) NOT NULL,
    finished_at timestamptz,
    migration_name varchar(255) NOT NULL,
    logs text,
    rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(),
    applied_steps_count integer NOT NULL DEFAULT 0
);
INSERT INTO public._prisma_migrations VALUES
('11111111-1111-1111-1111-111111111111', repeat('a', 64), '2024-01-01 00:00+00', '20240101000000_init', NULL, NULL, '2024-01-01 00:00+00', 1),
('22222222-2222-2222-2222-222222222222', repeat('b', 64), '2024-02-01 00:00+00', '20240201000000_add_orders', NULL, NULL, '2024-02-01 00:00+00', 1),
('33333333-3333-3333-3333-333333333333', repeat('c', 64), NULL, '20240301000000_failed', 'boom', NULL, '2024-03-01 00:00+00', 0);

-- Large objects: pre-data only creates them; their bytes are members of their own.
SELECT lo_from_bytea(424242, 'a small large object');
SELECT lo_from_bytea(424243, '');
SELECT lo_from_bytea(424244, decode(string_agg(md5(g::text) || md5((g * 3)::text), ''), 'hex'))
FROM generate_series(1, 12000) g; -- 384 KiB of poorly compressible bytes: several chunks
COMMENT ON LARGE OBJECT 424242 IS 'a comment on a large object';

-- reg* values print relative to search_path: they must be written schema-qualified.
CREATE SCHEMA app;
CREATE TABLE app.widgets (id int);
CREATE TYPE app.shade AS ENUM ('dark', 'light');
CREATE FUNCTION app.twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2 * x';
CREATE TABLE app.references_ (rel regclass, typ regtype, fn regproc, fns regprocedure,
                              nsp regnamespace, cfg regconfig);
INSERT INTO app.references_ VALUES ('app.widgets', 'app.shade', 'app.twice', 'app.twice(int)',
                                    'app', 'pg_catalog.english');

-- deployctl's own journal schema is never part of a snapshot.
CREATE SCHEMA deployctl;
CREATE TABLE deployctl.journal (id int, note text);
INSERT INTO deployctl.journal VALUES (1, 'must not be backed up');

ANALYZE;
