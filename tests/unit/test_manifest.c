/* Proves that a manifest survives dc_manifest_to_json -> dc_manifest_from_json field by field,
 * carries the fixed keys of DESIGN.md, and that hostile or inconsistent JSON is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/snapshot.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define TEST_ID "20261125T013259Z-0f9a"

static void hash_of(const char *what, char out[DC_HASH_HEX])
{
    dc_sha256_hex(what, strlen(what), out);
}

static dc_manifest_chunk_t make_chunk(unsigned table_seq, unsigned chunk_seq, uint64_t rows,
                                      uint64_t raw_bytes, uint64_t stored_bytes)
{
    dc_manifest_chunk_t c;
    char seed[64];
    memset(&c, 0, sizeof(c));
    dc_snapshot_chunk_member(table_seq, chunk_seq, c.member);
    c.rows = rows;
    c.raw_bytes = raw_bytes;
    c.stored_bytes = stored_bytes;
    snprintf(seed, sizeof(seed), "stored %u.%u", table_seq, chunk_seq);
    hash_of(seed, c.sha256);
    snprintf(seed, sizeof(seed), "raw %u.%u", table_seq, chunk_seq);
    hash_of(seed, c.raw_sha256);
    return c;
}

/* A manifest with every field set to something distinctive. */
/* Every manifest has its two schema sections. */
static void add_schema_sections(dc_manifest_t *m)
{
    m->schema_count = 2;
    snprintf(m->schema[0].section, sizeof(m->schema[0].section), "pre-data");
    snprintf(m->schema[0].member, sizeof(m->schema[0].member), "%s", DC_MEMBER_PRE_DATA);
    m->schema[0].bytes = 4321;
    hash_of("pre", m->schema[0].sha256);
    snprintf(m->schema[1].section, sizeof(m->schema[1].section), "post-data");
    snprintf(m->schema[1].member, sizeof(m->schema[1].member), "%s", DC_MEMBER_POST_DATA);
    m->schema[1].bytes = 8765;
    hash_of("post", m->schema[1].sha256);
}

static dc_manifest_t *build_manifest(void)
{
    dc_manifest_t *m = dc_manifest_new();
    m->tool_version = dc_strdup("0.1.0-test");
    memcpy(m->id, TEST_ID, sizeof(TEST_ID));
    m->tag = dc_strdup("release");
    snprintf(m->created_at, sizeof(m->created_at), "2026-11-25T01:32:59Z");
    m->database = dc_strdup("app \"prod\" caf\xc3\xa9");
    m->server_version = dc_strdup("16.4 (Debian 16.4-1.pgdg120+1)");
    m->encoding = dc_strdup("UTF8");
    m->snapshot = dc_strdup("00000003-0000001B-1");
    m->lsn = dc_strdup("0/1A2B3C4D");
    m->restrict_key = dc_strdup("Zk3xQ9");
    m->duration_seconds = 12.5;
    dc_manifest_add_migration(m, "20240101000000_init", "0f1e2d3c");
    dc_manifest_add_migration(m, "20240202000000_add_\"quoted\"_col", "aabbccdd");
    dc_manifest_add_migration(m, "20240303000000_\xe2\x98\x83_snowman", "");
    m->compression_level = 7;
    m->archive_bytes = 123456789012ULL;
    hash_of("archive", m->archive_sha256);

    add_schema_sections(m);

    dc_manifest_table_t *t = dc_manifest_add_table(m, "public", "users");
    dc_manifest_table_add_column(t, "id");
    dc_manifest_table_add_column(t, "na\"me");
    dc_manifest_table_add_column(t, "caf\xc3\xa9");
    dc_manifest_table_add_column(t, "\xe2\x98\x83 snow \\ man");
    dc_manifest_table_add_column(t, "tab\there");
    dc_manifest_chunk_t c = make_chunk(1, 1, 1000, 65536, 12000);
    dc_manifest_table_add_chunk(t, &c);
    c = make_chunk(1, 2, 999, 65000, 11900);
    dc_manifest_table_add_chunk(t, &c);
    c = make_chunk(1, 3, 1, 42, 30);
    dc_manifest_table_add_chunk(t, &c);

    t = dc_manifest_add_table(m, "weird \"schema\"",
                              "t\xc3\xa4"
                              "ble.with.dots");
    dc_manifest_table_add_column(t, "only");

    t = dc_manifest_add_table(m, "big", "numbers");
    dc_manifest_table_add_column(t, "x");
    /* Beyond 2^53: a JSON library that goes through double would lose the last digit. */
    c = make_chunk(3, 1, 9007199254740993ULL, 9007199254740995ULL, 4503599627370497ULL);
    dc_manifest_table_add_chunk(t, &c);
    return m;
}

static void check_equal_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void check_manifests_equal(const dc_manifest_t *a, const dc_manifest_t *b)
{
    check_equal_str(a->tool_version, b->tool_version);
    assert_string_equal(a->id, b->id);
    check_equal_str(a->tag, b->tag);
    assert_string_equal(a->created_at, b->created_at);
    check_equal_str(a->database, b->database);
    check_equal_str(a->server_version, b->server_version);
    check_equal_str(a->encoding, b->encoding);
    check_equal_str(a->snapshot, b->snapshot);
    check_equal_str(a->lsn, b->lsn);
    check_equal_str(a->restrict_key, b->restrict_key);
    assert_true(a->duration_seconds == b->duration_seconds);
    assert_int_equal(a->migration_count, b->migration_count);
    for (size_t i = 0; i < a->migration_count; i++) {
        assert_string_equal(a->migrations[i].name, b->migrations[i].name);
        assert_string_equal(a->migrations[i].checksum, b->migrations[i].checksum);
    }
    assert_int_equal(a->compression_level, b->compression_level);
    assert_int_equal(a->archive_bytes, b->archive_bytes);
    assert_string_equal(a->archive_sha256, b->archive_sha256);
    assert_int_equal(a->schema_count, b->schema_count);
    for (size_t i = 0; i < a->schema_count; i++) {
        assert_string_equal(a->schema[i].section, b->schema[i].section);
        assert_string_equal(a->schema[i].member, b->schema[i].member);
        assert_int_equal(a->schema[i].bytes, b->schema[i].bytes);
        assert_string_equal(a->schema[i].sha256, b->schema[i].sha256);
    }
    assert_int_equal(a->table_count, b->table_count);
    for (size_t i = 0; i < a->table_count; i++) {
        const dc_manifest_table_t *ta = &a->tables[i], *tb = &b->tables[i];
        assert_string_equal(ta->schema, tb->schema);
        assert_string_equal(ta->name, tb->name);
        assert_int_equal(ta->column_count, tb->column_count);
        for (size_t k = 0; k < ta->column_count; k++)
            assert_string_equal(ta->columns[k], tb->columns[k]);
        assert_int_equal(ta->rows, tb->rows);
        assert_int_equal(ta->raw_bytes, tb->raw_bytes);
        assert_int_equal(ta->chunk_count, tb->chunk_count);
        for (size_t k = 0; k < ta->chunk_count; k++) {
            const dc_manifest_chunk_t *ca = &ta->chunks[k], *cb = &tb->chunks[k];
            assert_string_equal(ca->member, cb->member);
            assert_int_equal(ca->rows, cb->rows);
            assert_int_equal(ca->raw_bytes, cb->raw_bytes);
            assert_int_equal(ca->stored_bytes, cb->stored_bytes);
            assert_string_equal(ca->sha256, cb->sha256);
            assert_string_equal(ca->raw_sha256, cb->raw_sha256);
        }
    }
}

/* ---- building ---- */

static void test_table_totals(void **state)
{
    (void)state;
    dc_manifest_t *m = build_manifest();
    assert_int_equal(m->table_count, 3);
    assert_int_equal(m->tables[0].chunk_count, 3);
    assert_int_equal(m->tables[0].rows, 1000 + 999 + 1);
    assert_int_equal(m->tables[0].raw_bytes, 65536 + 65000 + 42);
    assert_int_equal(m->tables[1].rows, 0);
    assert_int_equal(dc_manifest_total_rows(m), 2000 + 9007199254740993ULL);
    assert_int_equal(dc_manifest_total_raw_bytes(m), 65536 + 65000 + 42 + 9007199254740995ULL);
    dc_manifest_free(m);
}

/* ---- round trip ---- */

static void test_round_trip(void **state)
{
    (void)state;
    dc_manifest_t *m = build_manifest();
    char *text = dc_manifest_to_json(m);
    assert_non_null(text);

    dc_manifest_t *back = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &back, &err) != 0)
        fail_msg("round trip refused: %s", err.message);
    assert_non_null(back);
    check_manifests_equal(m, back);

    /* Serialising the parsed copy gives the same document. */
    char *again = dc_manifest_to_json(back);
    assert_string_equal(text, again);

    free(again);
    free(text);
    dc_manifest_free(back);
    dc_manifest_free(m);
}

static void test_round_trip_nulls(void **state)
{
    (void)state;
    dc_manifest_t *m = dc_manifest_new();
    memcpy(m->id, TEST_ID, sizeof(TEST_ID));
    snprintf(m->created_at, sizeof(m->created_at), "2026-11-25T01:32:59Z");
    hash_of("archive", m->archive_sha256);
    add_schema_sections(m);
    char *text = dc_manifest_to_json(m);
    assert_non_null(text);
    dc_manifest_t *back = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &back, &err) != 0)
        fail_msg("minimal manifest refused: %s", err.message);
    check_manifests_equal(m, back);
    assert_null(back->tag);
    assert_null(back->database);
    assert_int_equal(back->table_count, 0);
    free(text);
    dc_manifest_free(back);
    dc_manifest_free(m);
}

static void test_non_utf8_names_not_dropped(void **state)
{
    (void)state;
    /* A SQL_ASCII database can name a table or a column with any bytes. */
    dc_manifest_t *m = dc_manifest_new();
    memcpy(m->id, TEST_ID, sizeof(TEST_ID));
    hash_of("archive", m->archive_sha256);
    dc_manifest_table_t *t = dc_manifest_add_table(m, "public", "caf\xe9");
    dc_manifest_table_add_column(t, "na\xefve");
    dc_manifest_add_table(m, "public", "plain");
    /* JSON holds UTF-8 only: the manifest is refused (so the backup fails) and the culprit
     * named, rather than a table silently left out. */
    char *text = dc_manifest_to_json(m);
    assert_null(text);
    assert_string_equal(dc_manifest_invalid_string(m), "caf\xe9");
    dc_manifest_free(m);
}

/* ---- the fixed keys ---- */

static void test_fixed_keys(void **state)
{
    (void)state;
    dc_manifest_t *m = build_manifest();
    char *text = dc_manifest_to_json(m);
    assert_non_null(text);
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        fail_msg("manifest is not JSON: %s", jerr.text);
    assert_true(json_is_object(root));

    static const char *const keys[] = {
        "format",      "format_version", "tool_version",   "id",          "tag",
        "created_at",  "database",       "server_version", "consistency", "migrations",
        "compression", "encryption",     "archive",        "schema",      "tables",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (json_object_get(root, keys[i]) == NULL)
            fail_msg("manifest has no top-level key \"%s\"", keys[i]);
    }

    assert_string_equal(json_string_value(json_object_get(root, "format")), "deployctl-snapshot");
    json_t *v = json_object_get(root, "format_version");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 1);
    assert_string_equal(json_string_value(json_object_get(root, "id")), TEST_ID);
    assert_string_equal(json_string_value(json_object_get(root, "tag")), "release");
    assert_string_equal(json_string_value(json_object_get(root, "created_at")),
                        "2026-11-25T01:32:59Z");
    assert_string_equal(json_string_value(json_object_get(root, "database")),
                        "app \"prod\" caf\xc3\xa9");
    assert_true(json_is_null(json_object_get(root, "encryption")));

    json_t *consistency = json_object_get(root, "consistency");
    assert_string_equal(json_string_value(json_object_get(consistency, "snapshot")),
                        "00000003-0000001B-1");
    assert_string_equal(json_string_value(json_object_get(consistency, "lsn")), "0/1A2B3C4D");

    json_t *compression = json_object_get(root, "compression");
    assert_string_equal(json_string_value(json_object_get(compression, "algorithm")), "zstd");
    assert_int_equal(json_integer_value(json_object_get(compression, "level")), 7);

    json_t *archive = json_object_get(root, "archive");
    assert_int_equal(json_integer_value(json_object_get(archive, "bytes")), 123456789012LL);
    assert_string_equal(json_string_value(json_object_get(archive, "sha256")), m->archive_sha256);

    json_t *migrations = json_object_get(root, "migrations");
    assert_int_equal(json_array_size(migrations), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(migrations, 1), "name")),
                        "20240202000000_add_\"quoted\"_col");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(migrations, 1), "checksum")), "aabbccdd");

    json_t *schema = json_object_get(root, "schema");
    assert_int_equal(json_array_size(schema), 2);
    json_t *pre = json_array_get(schema, 0);
    assert_string_equal(json_string_value(json_object_get(pre, "section")), "pre-data");
    assert_string_equal(json_string_value(json_object_get(pre, "member")), "schema/pre-data.sql");
    assert_int_equal(json_integer_value(json_object_get(pre, "bytes")), 4321);
    assert_non_null(json_object_get(pre, "sha256"));

    json_t *tables = json_object_get(root, "tables");
    assert_int_equal(json_array_size(tables), 3);
    json_t *users = json_array_get(tables, 0);
    assert_string_equal(json_string_value(json_object_get(users, "schema")), "public");
    assert_string_equal(json_string_value(json_object_get(users, "name")), "users");
    json_t *cols = json_object_get(users, "columns");
    assert_int_equal(json_array_size(cols), 5);
    assert_string_equal(json_string_value(json_array_get(cols, 1)), "na\"me");
    assert_string_equal(json_string_value(json_array_get(cols, 2)), "caf\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(users, "rows")), 2000);
    assert_int_equal(json_integer_value(json_object_get(users, "raw_bytes")), 65536 + 65000 + 42);
    json_t *chunk = json_array_get(json_object_get(users, "chunks"), 1);
    assert_string_equal(json_string_value(json_object_get(chunk, "member")), "data/1.2.copy.zst");
    assert_int_equal(json_integer_value(json_object_get(chunk, "rows")), 999);
    assert_int_equal(json_integer_value(json_object_get(chunk, "raw_bytes")), 65000);
    assert_int_equal(json_integer_value(json_object_get(chunk, "stored_bytes")), 11900);
    assert_string_equal(json_string_value(json_object_get(chunk, "sha256")),
                        m->tables[0].chunks[1].sha256);
    assert_string_equal(json_string_value(json_object_get(chunk, "raw_sha256")),
                        m->tables[0].chunks[1].raw_sha256);

    json_decref(root);
    free(text);
    dc_manifest_free(m);
}

/* ---- hostile input ---- */

/* The valid manifest as a jansson tree, for a test to spoil one thing in. */
static json_t *valid_tree(void)
{
    dc_manifest_t *m = build_manifest();
    char *text = dc_manifest_to_json(m);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    free(text);
    dc_manifest_free(m);
    assert_non_null(root);
    return root;
}

static json_t *first_chunk(json_t *root)
{
    return json_array_get(
        json_object_get(json_array_get(json_object_get(root, "tables"), 0), "chunks"), 0);
}

static const char *first_chunk_hash(json_t *root)
{
    return json_string_value(json_object_get(first_chunk(root), "sha256"));
}

static json_t *first_table(json_t *root)
{
    return json_array_get(json_object_get(root, "tables"), 0);
}

/* Parses text and expects a refusal whose message names `word` (case-insensitively). */
static void check_refused_text(const char *what, const char *text, size_t len, const char *word)
{
    dc_manifest_t *out = NULL;
    dc_error_t err = {0};
    int rc = dc_manifest_from_json(text, len, &out, &err);
    if (rc != -1) {
        dc_manifest_free(out);
        fail_msg("hostile manifest accepted: %s", what);
    }
    assert_null(out);
    if (err.message[0] == '\0')
        fail_msg("no error message for: %s", what);
    if (word != NULL && strcasestr(err.message, word) == NULL)
        fail_msg("error for %s does not name \"%s\": %s", what, word, err.message);
}

/* Serialises a spoiled tree, expects a refusal, and frees the tree. */
static void check_refused(const char *what, json_t *root, const char *word)
{
    char *text = json_dumps(root, JSON_COMPACT);
    assert_non_null(text);
    check_refused_text(what, text, strlen(text), word);
    free(text);
    json_decref(root);
}

static void test_valid_tree_accepted(void **state)
{
    (void)state;
    /* The control: the unspoiled tree parses, so each refusal below is due to its one change. */
    json_t *root = valid_tree();
    char *text = json_dumps(root, JSON_COMPACT);
    dc_manifest_t *out = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &out, &err) != 0)
        fail_msg("valid manifest refused: %s", err.message);
    dc_manifest_free(out);
    free(text);
    json_decref(root);
}

static void test_refuses_not_json(void **state)
{
    (void)state;
    const char *cases[] = {"", "not json", "{\"format\": ", "{}}", "\xff\xfe{}"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_refused_text(cases[i], cases[i], strlen(cases[i]), NULL);
    check_refused_text("an array", "[]", 2, NULL);
    check_refused_text("null", "null", 4, NULL);
    check_refused_text("a string", "\"deployctl-snapshot\"", 20, NULL);
    check_refused_text("an empty object", "{}", 2, "format");
}

static void test_refuses_format(void **state)
{
    (void)state;
    json_t *root = valid_tree();
    json_object_set_new(root, "format", json_string("pg_dump"));
    check_refused("wrong format", root, "format");

    root = valid_tree();
    json_object_del(root, "format");
    check_refused("no format", root, "format");

    root = valid_tree();
    json_object_set_new(root, "format_version", json_integer(2));
    check_refused("format_version 2", root, "format_version");

    root = valid_tree();
    json_object_set_new(root, "format_version", json_integer(0));
    check_refused("format_version 0", root, "format_version");

    root = valid_tree();
    json_object_set_new(root, "format_version", json_string("1"));
    check_refused("format_version \"1\"", root, "format_version");

    root = valid_tree();
    json_object_set_new(root, "format_version", json_real(1.0));
    check_refused("format_version 1.0", root, "format_version");
}

static void test_refuses_bad_id(void **state)
{
    (void)state;
    const char *ids[] = {"../x", "", "20261125T013259Z-0F9A", "20261125T013259Z-0f9a/../../x",
                         "../../../../etc/passw"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        json_t *root = valid_tree();
        json_object_set_new(root, "id", json_string(ids[i]));
        check_refused(ids[i], root, "id");
    }
    json_t *root = valid_tree();
    json_object_set_new(root, "id", json_integer(42));
    check_refused("numeric id", root, "id");

    root = valid_tree();
    json_object_del(root, "id");
    check_refused("no id", root, "id");
}

static void test_refuses_bad_chunk_member(void **state)
{
    (void)state;
    const char *members[] = {
        "../../etc/passwd",
        "data/1.1.copy.zst/../x",
        "data/01.1.copy.zst",
        "data/1.01.copy.zst",
        "/data/1.1.copy.zst",
        "data/+1.1.copy.zst",
        "data/-1.1.copy.zst",
        "data/ 1.1.copy.zst",
        "data/1.1.copy.zst ",
        "data/1.1.copy.gz",
        "data/1.1",
        "data/a.b.copy.zst",
        "data/99999999999.1.copy.zst",
        "schema/pre-data.sql",
        "",
        "data/1.1.copy.zst\n",
        "data/1.1.copy.zst/",
        "data//1.1.copy.zst",
    };
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        json_t *root = valid_tree();
        json_object_set_new(first_chunk(root), "member", json_string(members[i]));
        check_refused(members[i], root, "member");
    }
    /* A long name, beyond any member buffer. */
    char longname[300];
    memset(longname, '1', sizeof(longname));
    memcpy(longname, "data/", 5);
    snprintf(longname + 250, sizeof(longname) - 250, ".1.copy.zst");
    json_t *root = valid_tree();
    json_object_set_new(first_chunk(root), "member", json_string(longname));
    check_refused("a 261-byte member", root, "member");

    root = valid_tree();
    json_object_set_new(first_chunk(root), "member", json_integer(1));
    check_refused("numeric member", root, "member");

    /* The schema members are fixed names too. */
    root = valid_tree();
    json_object_set_new(json_array_get(json_object_get(root, "schema"), 0), "member",
                        json_string("../pre-data.sql"));
    check_refused("schema member ../pre-data.sql", root, "schema");
    root = valid_tree();
    json_object_set_new(json_array_get(json_object_get(root, "schema"), 1), "member",
                        json_string(DC_MEMBER_PRE_DATA));
    check_refused("post-data section with the pre-data member", root, "schema");
}

static void test_refuses_bad_hash(void **state)
{
    (void)state;
    char good[DC_HASH_HEX];
    hash_of("x", good);
    char upper[DC_HASH_HEX];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)((good[i] >= 'a' && good[i] <= 'f') ? good[i] - 32 : good[i]);
    char shorter[DC_HASH_HEX];
    memcpy(shorter, good, 63);
    shorter[63] = '\0';
    char longer[DC_HASH_HEX + 1];
    memcpy(longer, good, 64);
    longer[64] = 'a';
    longer[65] = '\0';
    char nonhex[DC_HASH_HEX];
    memcpy(nonhex, good, 65);
    nonhex[10] = 'g';
    const char *bad[] = {upper, shorter, longer, nonhex, ""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = valid_tree();
        json_object_set_new(first_chunk(root), "sha256", json_string(bad[i]));
        check_refused("chunk sha256", root, "sha256");

        root = valid_tree();
        json_object_set_new(first_chunk(root), "raw_sha256", json_string(bad[i]));
        check_refused("chunk raw_sha256", root, "sha256");

        root = valid_tree();
        json_object_set_new(json_object_get(root, "archive"), "sha256", json_string(bad[i]));
        check_refused("archive sha256", root, "sha256");

        root = valid_tree();
        json_object_set_new(json_array_get(json_object_get(root, "schema"), 1), "sha256",
                            json_string(bad[i]));
        check_refused("schema sha256", root, "sha256");
    }
    json_t *root = valid_tree();
    json_object_del(first_chunk(root), "sha256");
    check_refused("missing chunk sha256", root, "sha256");
}

static void test_refuses_bad_counts(void **state)
{
    (void)state;
    json_t *root = valid_tree();
    json_object_set_new(first_chunk(root), "rows", json_integer(-1));
    check_refused("negative chunk rows", root, "rows");

    root = valid_tree();
    json_object_set_new(first_chunk(root), "stored_bytes", json_integer(-5));
    check_refused("negative stored_bytes", root, "stored_bytes");

    root = valid_tree();
    json_object_set_new(first_chunk(root), "rows", json_string("1000"));
    check_refused("rows as a string", root, "rows");

    root = valid_tree();
    json_object_set_new(first_table(root), "rows", json_integer(-2000));
    check_refused("negative table rows", root, "rows");

    root = valid_tree();
    json_object_set_new(json_object_get(root, "archive"), "bytes", json_integer(-1));
    check_refused("negative archive bytes", root, "bytes");

    /* Totals that disagree with the chunks. */
    root = valid_tree();
    json_object_set_new(first_table(root), "rows", json_integer(2001));
    check_refused("table rows off by one", root, "rows");

    root = valid_tree();
    json_object_set_new(first_table(root), "raw_bytes", json_integer(65536 + 65000 + 41));
    check_refused("table raw_bytes off by one", root, "raw_bytes");

    root = valid_tree();
    json_object_set_new(first_chunk(root), "rows", json_integer(1001));
    check_refused("chunk rows changed under the table total", root, "rows");
}

static void test_refuses_duplicate_keys(void **state)
{
    (void)state;
    dc_manifest_t *m = build_manifest();
    char *text = dc_manifest_to_json(m);
    dc_manifest_free(m);

    /* A second "id" at the top, which a lenient parser would let win. */
    char *dup = dc_sprintf("{\"id\": \"20261125T013259Z-ffff\", %s", text + 1);
    check_refused_text("duplicate top-level id", dup, strlen(dup), "duplicate");
    free(dup);

    /* A duplicate inside a chunk. */
    const char *at = strstr(text, "\"member\": \"data/1.1.copy.zst\"");
    assert_non_null(at);
    size_t head = (size_t)(at - text);
    char *dup2 = dc_sprintf("%.*s\"rows\": 1, %s", (int)head, text, at);
    check_refused_text("duplicate chunk rows", dup2, strlen(dup2), "duplicate");
    free(dup2);
    free(text);
}

static void test_refuses_encryption(void **state)
{
    (void)state;
    json_t *root = valid_tree();
    json_object_set_new(root, "encryption",
                        json_pack("{s:s, s:s}", "algorithm", "aes-256-gcm", "key_id", "k1"));
    check_refused("encryption object", root, "encryption");

    root = valid_tree();
    json_object_set_new(root, "encryption", json_string("none"));
    check_refused("encryption string", root, "encryption");

    root = valid_tree();
    json_object_set_new(root, "encryption", json_false());
    check_refused("encryption false", root, "encryption");
}

static dc_key_t *test_key(const char *hex)
{
    dc_key_t *k = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_key_parse(hex, strlen(hex), 0, "test key", &k, &err), 0);
    return k;
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"

static dc_manifest_t *parse_ok(const char *text)
{
    dc_manifest_t *m = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &m, &err) != 0)
        fail_msg("encrypted manifest refused: %s", err.message);
    return m;
}

static void test_encrypted_round_trip(void **state)
{
    (void)state;
    dc_key_t *key = test_key(KEY_A);
    dc_manifest_t *m = build_manifest();
    dc_manifest_set_key(m, key);
    char *text = dc_manifest_to_json(m);
    json_t *root = json_loads(text, 0, NULL);
    json_t *enc = json_object_get(root, "encryption");
    assert_string_equal(json_string_value(json_object_get(enc, "algorithm")), "aes-256-gcm");
    assert_string_equal(json_string_value(json_object_get(enc, "key_id")), key->id);
    assert_int_equal(strlen(json_string_value(json_object_get(enc, "manifest_mac"))), 64);
    /* the COPY text digest is keyed, under its own name: no plain raw_sha256 to test guesses */
    json_t *chunk = json_array_get(
        json_object_get(json_array_get(json_object_get(root, "tables"), 0), "chunks"), 0);
    assert_null(json_object_get(chunk, "raw_sha256"));
    assert_non_null(json_object_get(chunk, "raw_hmac_sha256"));

    dc_manifest_t *back = parse_ok(text);
    assert_true(back->encrypted);
    assert_string_equal(back->key_id, key->id);
    assert_null(back->key);
    check_manifests_equal(m, back);
    dc_error_t err = {0};
    assert_int_equal(dc_manifest_unlock(back, key, &err), 0);
    assert_ptr_equal(back->key, key);
    /* reformatted (other indentation, keys reordered) it still authenticates */
    char *other = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    dc_manifest_t *reformatted = parse_ok(other);
    assert_int_equal(dc_manifest_unlock(reformatted, key, &err), 0);
    /* a copy made without a key (show) carries the same MAC */
    dc_manifest_t *listed = parse_ok(text);
    char *shown = dc_manifest_to_json(listed);
    assert_string_equal(shown, text);

    free(shown);
    free(other);
    json_decref(root);
    free(text);
    dc_manifest_free(listed);
    dc_manifest_free(reformatted);
    dc_manifest_free(back);
    dc_manifest_free(m);
    dc_key_free(key);
}

static void test_encrypted_unlock_refusals(void **state)
{
    (void)state;
    dc_key_t *key = test_key(KEY_A);
    dc_key_t *other = test_key(KEY_B);
    dc_manifest_t *m = build_manifest();
    dc_manifest_set_key(m, key);
    char *text = dc_manifest_to_json(m);
    dc_error_t err = {0};

    /* no key: says how to give one, and readers refuse too */
    dc_manifest_t *back = parse_ok(text);
    assert_int_equal(dc_manifest_unlock(back, NULL, &err), -1);
    assert_non_null(strstr(err.message, "is encrypted"));
    assert_non_null(strstr(err.message, "--encryption-key-file"));
    assert_non_null(strstr(err.message, "DEPLOYCTL_ENCRYPTION_KEY"));
    assert_int_equal(dc_manifest_check_unlocked(back, &err), -1);
    /* the wrong key: both ids named */
    assert_int_equal(dc_manifest_unlock(back, other, &err), -1);
    assert_non_null(strstr(err.message, key->id));
    assert_non_null(strstr(err.message, other->id));
    assert_null(back->key);
    dc_manifest_free(back);

    /* any value changed, the manifest staying valid: a chunk's hash, the tag, the archive size */
    char sha[DC_HASH_HEX], forged_sha[DC_HASH_HEX + 2], real_sha[DC_HASH_HEX + 2];
    hash_of("stored 1.1", sha);
    snprintf(real_sha, sizeof(real_sha), "\"%s\"", sha);
    hash_of("something else", sha);
    snprintf(forged_sha, sizeof(forged_sha), "\"%s\"", sha);
    const char *edits[][2] = {
        {real_sha, forged_sha},
        {"\"tag\": \"release\"", "\"tag\": \"nightly\""},
        {"\"bytes\": 123456789012", "\"bytes\": 123456789013"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *at = strstr(text, edits[i][0]);
        if (at == NULL)
            fail_msg("no %s in the manifest", edits[i][0]);
        dc_buf_t b = {0};
        dc_buf_append(&b, text, (size_t)(at - text));
        dc_buf_appendf(&b, "%s%s", edits[i][1], at + strlen(edits[i][0]));
        dc_manifest_t *forged = parse_ok(b.data);
        assert_int_equal(dc_manifest_unlock(forged, key, &err), -1);
        assert_non_null(strstr(err.message, "does not authenticate"));
        assert_null(forged->key);
        dc_manifest_free(forged);
        dc_buf_free(&b);
    }
    /* the encryption dropped altogether: a plain manifest whose raw digests are not SHA-256 */
    json_t *root = json_loads(text, 0, NULL);
    json_object_set_new(root, "encryption", json_null());
    check_refused("encryption removed", root, "raw_sha256");

    free(text);
    dc_manifest_free(m);
    dc_key_free(key);
    dc_key_free(other);
}

static void test_refuses_other_shapes(void **state)
{
    (void)state;
    json_t *root = valid_tree();
    json_object_set_new(json_object_get(root, "compression"), "algorithm", json_string("gzip"));
    check_refused("gzip compression", root, "compression");

    root = valid_tree();
    json_object_set_new(root, "tables", json_object());
    check_refused("tables as an object", root, "tables");

    root = valid_tree();
    json_object_del(root, "tables");
    check_refused("no tables", root, "tables");

    root = valid_tree();
    json_array_append_new(json_object_get(root, "tables"), json_string("users"));
    check_refused("a table that is a string", root, "table");

    root = valid_tree();
    json_array_append_new(json_object_get(first_table(root), "columns"), json_integer(3));
    check_refused("a numeric column", root, "column");

    root = valid_tree();
    json_object_del(first_table(root), "chunks");
    check_refused("a table without chunks", root, "chunks");

    root = valid_tree();
    json_t *schema = json_object_get(root, "schema");
    json_array_append_new(schema, json_deep_copy(json_array_get(schema, 0)));
    check_refused("three schema sections", root, "schema");

    root = valid_tree();
    json_array_remove(json_object_get(root, "schema"), 1);
    check_refused("no post-data section", root, "schema");

    root = valid_tree();
    schema = json_object_get(root, "schema");
    json_t *pre = json_incref(json_array_get(schema, 0));
    json_array_remove(schema, 0);
    json_array_append_new(schema, pre);
    check_refused("post-data before pre-data", root, "schema");
}

/* ---- large objects ---- */

static dc_manifest_chunk_t make_blob_chunk(uint32_t oid, unsigned seq, uint64_t raw)
{
    dc_manifest_chunk_t c = make_chunk(1, seq, 0, raw, raw / 2 + 1);
    dc_snapshot_blob_member(oid, seq, c.member);
    return c;
}

static void test_large_objects_round_trip(void **state)
{
    (void)state;
    dc_manifest_t *m = build_manifest();
    dc_manifest_large_object_t *lo = dc_manifest_add_large_object(m, 424244);
    dc_manifest_chunk_t c = make_blob_chunk(424244, 1, 65536);
    dc_manifest_large_object_add_chunk(lo, &c);
    c = make_blob_chunk(424244, 2, 100);
    dc_manifest_large_object_add_chunk(lo, &c);
    dc_manifest_add_large_object(m, 424243); /* empty */
    assert_int_equal(m->large_objects[0].bytes, 65636);

    char *text = dc_manifest_to_json(m);
    assert_non_null(text);
    dc_manifest_t *back = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &back, &err) != 0)
        fail_msg("manifest with large objects refused: %s", err.message);
    assert_int_equal(back->large_object_count, 2);
    assert_int_equal(back->large_objects[0].oid, 424244);
    assert_int_equal(back->large_objects[0].bytes, 65636);
    assert_int_equal(back->large_objects[0].chunk_count, 2);
    assert_string_equal(back->large_objects[0].chunks[1].member, "blobs/424244.2.zst");
    assert_string_equal(back->large_objects[0].chunks[1].raw_sha256, c.raw_sha256);
    assert_int_equal(back->large_objects[1].chunk_count, 0);
    assert_int_equal(back->large_objects[1].bytes, 0);
    dc_manifest_free(back);
    free(text);
    dc_manifest_free(m);
}

/* A valid tree with one large object of two chunks, to spoil. */
static json_t *tree_with_large_object(void)
{
    json_t *root = valid_tree();
    json_t *chunks = json_array();
    json_array_append_new(chunks,
                          json_pack("{s:s, s:i, s:i, s:s, s:s}", "member", "blobs/77.1.zst",
                                    "raw_bytes", 10, "stored_bytes", 9, "sha256",
                                    first_chunk_hash(root), "raw_sha256", first_chunk_hash(root)));
    json_object_set_new(root, "large_objects",
                        json_pack("[{s:i, s:i, s:o}]", "oid", 77, "bytes", 10, "chunks", chunks));
    return root;
}

static json_t *blob(json_t *root)
{
    return json_array_get(json_object_get(root, "large_objects"), 0);
}

static void test_large_objects_refused(void **state)
{
    (void)state;
    json_t *root = tree_with_large_object();
    char *text = json_dumps(root, JSON_COMPACT);
    dc_manifest_t *out = NULL;
    dc_error_t err = {0};
    if (dc_manifest_from_json(text, strlen(text), &out, &err) != 0)
        fail_msg("control with a large object refused: %s", err.message);
    dc_manifest_free(out);
    free(text);
    json_decref(root);

    root = tree_with_large_object();
    json_object_set_new(json_array_get(json_object_get(blob(root), "chunks"), 0), "member",
                        json_string("blobs/78.1.zst"));
    check_refused("a blob member naming another oid", root, "member");

    root = tree_with_large_object();
    json_object_set_new(json_array_get(json_object_get(blob(root), "chunks"), 0), "member",
                        json_string("blobs/77.1.zst/../../x"));
    check_refused("a blob member with a path", root, "member");

    root = tree_with_large_object();
    json_object_set_new(blob(root), "bytes", json_integer(11));
    check_refused("large object bytes that lie", root, "bytes");

    root = tree_with_large_object();
    json_object_set_new(blob(root), "oid", json_integer(0));
    check_refused("oid 0", root, "oid");

    root = tree_with_large_object();
    json_object_set_new(root, "large_objects", json_string("nope"));
    check_refused("large_objects not an array", root, "large_objects");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_totals),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_nulls),
        cmocka_unit_test(test_non_utf8_names_not_dropped),
        cmocka_unit_test(test_fixed_keys),
        cmocka_unit_test(test_valid_tree_accepted),
        cmocka_unit_test(test_refuses_not_json),
        cmocka_unit_test(test_refuses_format),
        cmocka_unit_test(test_refuses_bad_id),
        cmocka_unit_test(test_refuses_bad_chunk_member),
        cmocka_unit_test(test_refuses_bad_hash),
        cmocka_unit_test(test_refuses_bad_counts),
        cmocka_unit_test(test_refuses_duplicate_keys),
        cmocka_unit_test(test_refuses_encryption),
        cmocka_unit_test(test_encrypted_round_trip),
        cmocka_unit_test(test_encrypted_unlock_refusals),
        cmocka_unit_test(test_refuses_other_shapes),
        cmocka_unit_test(test_large_objects_round_trip),
        cmocka_unit_test(test_large_objects_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
