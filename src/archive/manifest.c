/* manifest.json: the in-memory manifest, its serialisation with the fixed keys of DESIGN.md,
 * and a parser that validates every field, since a manifest is input we do not trust. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/snapshot.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"

#define ENCRYPTION_ALGORITHM "aes-256-gcm"

dc_manifest_t *dc_manifest_new(void)
{
    dc_manifest_t *m = dc_calloc(1, sizeof(*m));
    m->compression_level = 3;
    return m;
}

static void table_free(dc_manifest_table_t *t)
{
    free(t->schema);
    free(t->name);
    free(t->filter);
    for (size_t i = 0; i < t->column_count; i++)
        free(t->columns[i]);
    free(t->columns);
    free(t->chunks);
}

void dc_manifest_free(dc_manifest_t *m)
{
    if (m == NULL)
        return;
    free(m->tool_version);
    free(m->tag);
    free(m->database);
    free(m->server_version);
    free(m->encoding);
    free(m->server_encoding);
    free(m->lc_collate);
    free(m->lc_ctype);
    for (size_t i = 0; i < m->schema_name_count; i++)
        free(m->schemas[i]);
    free(m->schemas);
    free(m->snapshot);
    free(m->lsn);
    free(m->restrict_key);
    for (size_t i = 0; i < m->migration_count; i++) {
        free(m->migrations[i].name);
        free(m->migrations[i].checksum);
    }
    free(m->migrations);
    for (size_t i = 0; i < m->table_count; i++)
        table_free(&m->tables[i]);
    free(m->tables);
    for (size_t i = 0; i < m->large_object_count; i++)
        free(m->large_objects[i].chunks);
    free(m->large_objects);
    free(m);
}

dc_manifest_table_t *dc_manifest_add_table(dc_manifest_t *m, const char *schema, const char *name)
{
    m->tables = dc_realloc(m->tables, (m->table_count + 1) * sizeof(*m->tables));
    dc_manifest_table_t *t = &m->tables[m->table_count++];
    memset(t, 0, sizeof(*t));
    t->schema = dc_strdup(schema);
    t->name = dc_strdup(name);
    return t;
}

void dc_manifest_table_add_column(dc_manifest_table_t *t, const char *column)
{
    t->columns = dc_realloc(t->columns, (t->column_count + 1) * sizeof(char *));
    t->columns[t->column_count++] = dc_strdup(column);
}

static void append_chunk(dc_manifest_chunk_t **chunks, size_t *count, size_t *cap,
                         const dc_manifest_chunk_t *chunk)
{
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *chunks = dc_realloc(*chunks, *cap * sizeof(**chunks));
    }
    (*chunks)[(*count)++] = *chunk;
}

void dc_manifest_table_add_chunk(dc_manifest_table_t *t, const dc_manifest_chunk_t *chunk)
{
    append_chunk(&t->chunks, &t->chunk_count, &t->chunk_cap, chunk);
    t->rows += chunk->rows;
    t->raw_bytes += chunk->raw_bytes;
}

dc_manifest_large_object_t *dc_manifest_add_large_object(dc_manifest_t *m, uint32_t oid)
{
    m->large_objects =
        dc_realloc(m->large_objects, (m->large_object_count + 1) * sizeof(*m->large_objects));
    dc_manifest_large_object_t *lo = &m->large_objects[m->large_object_count++];
    memset(lo, 0, sizeof(*lo));
    lo->oid = oid;
    return lo;
}

void dc_manifest_large_object_add_chunk(dc_manifest_large_object_t *lo,
                                        const dc_manifest_chunk_t *chunk)
{
    append_chunk(&lo->chunks, &lo->chunk_count, &lo->chunk_cap, chunk);
    lo->bytes += chunk->raw_bytes;
}

void dc_manifest_add_migration(dc_manifest_t *m, const char *name, const char *checksum)
{
    m->migrations = dc_realloc(m->migrations, (m->migration_count + 1) * sizeof(*m->migrations));
    m->migrations[m->migration_count].name = dc_strdup(name);
    m->migrations[m->migration_count].checksum = dc_strdup(checksum ? checksum : "");
    m->migration_count++;
}

void dc_manifest_add_schema_name(dc_manifest_t *m, const char *schema)
{
    m->schemas = dc_realloc(m->schemas, (m->schema_name_count + 1) * sizeof(char *));
    m->schemas[m->schema_name_count++] = dc_strdup(schema);
}

uint64_t dc_manifest_total_rows(const dc_manifest_t *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->table_count; i++)
        n += m->tables[i].rows;
    return n;
}

uint64_t dc_manifest_total_raw_bytes(const dc_manifest_t *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->table_count; i++)
        n += m->tables[i].raw_bytes;
    return n;
}

/* ---- writing ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The COPY text digest's key: a plain SHA-256 would confirm guesses about encrypted content. */
static const char *raw_key_name(const dc_manifest_t *m)
{
    return m->encrypted ? "raw_hmac_sha256" : "raw_sha256";
}

static json_t *tables_to_json(const dc_manifest_t *m)
{
    json_t *tables = json_array();
    for (size_t i = 0; i < m->table_count; i++) {
        const dc_manifest_table_t *t = &m->tables[i];
        json_t *cols = json_array();
        for (size_t c = 0; c < t->column_count; c++)
            json_array_append_new(cols, json_string(t->columns[c]));
        json_t *chunks = json_array();
        for (size_t c = 0; c < t->chunk_count; c++) {
            const dc_manifest_chunk_t *k = &t->chunks[c];
            json_array_append_new(
                chunks, json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "member", k->member, "rows",
                                  (json_int_t)k->rows, "raw_bytes", (json_int_t)k->raw_bytes,
                                  "stored_bytes", (json_int_t)k->stored_bytes, "sha256", k->sha256,
                                  raw_key_name(m), k->raw_sha256));
        }
        json_t *table = json_pack("{s:s, s:s, s:o, s:I, s:I, s:o}", "schema", t->schema, "name",
                                  t->name, "columns", cols, "rows", (json_int_t)t->rows,
                                  "raw_bytes", (json_int_t)t->raw_bytes, "chunks", chunks);
        if (t->filter != NULL)
            json_object_set_new(table, "filter", json_string(t->filter));
        json_array_append_new(tables, table);
    }
    return tables;
}

static json_t *large_objects_to_json(const dc_manifest_t *m)
{
    json_t *list = json_array();
    for (size_t i = 0; i < m->large_object_count; i++) {
        const dc_manifest_large_object_t *lo = &m->large_objects[i];
        json_t *chunks = json_array();
        for (size_t c = 0; c < lo->chunk_count; c++) {
            const dc_manifest_chunk_t *k = &lo->chunks[c];
            json_array_append_new(chunks,
                                  json_pack("{s:s, s:I, s:I, s:s, s:s}", "member", k->member,
                                            "raw_bytes", (json_int_t)k->raw_bytes, "stored_bytes",
                                            (json_int_t)k->stored_bytes, "sha256", k->sha256,
                                            raw_key_name(m), k->raw_sha256));
        }
        json_array_append_new(list, json_pack("{s:I, s:I, s:o}", "oid", (json_int_t)lo->oid,
                                              "bytes", (json_int_t)lo->bytes, "chunks", chunks));
    }
    return list;
}

static bool json_can_hold(const char *s)
{
    if (s == NULL)
        return true;
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

const char *dc_manifest_invalid_string(const dc_manifest_t *m)
{
    const char *top[] = {m->tool_version, m->tag, m->database, m->server_version,
                         m->encoding,     m->lsn, m->snapshot, m->restrict_key};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        if (!json_can_hold(top[i]))
            return top[i];
    }
    for (size_t i = 0; i < m->schema_name_count; i++) {
        if (!json_can_hold(m->schemas[i]))
            return m->schemas[i];
    }
    for (size_t i = 0; i < m->migration_count; i++) {
        if (!json_can_hold(m->migrations[i].name))
            return m->migrations[i].name;
        if (!json_can_hold(m->migrations[i].checksum))
            return m->migrations[i].checksum;
    }
    for (size_t i = 0; i < m->table_count; i++) {
        const dc_manifest_table_t *t = &m->tables[i];
        if (!json_can_hold(t->schema))
            return t->schema;
        if (!json_can_hold(t->name))
            return t->name;
        if (!json_can_hold(t->filter))
            return t->filter;
        for (size_t c = 0; c < t->column_count; c++) {
            if (!json_can_hold(t->columns[c]))
                return t->columns[c];
        }
    }
    return NULL;
}

/* What the manifest MAC covers: the SHA-256 of the manifest serialised canonically (keys
 * sorted, compact, ASCII) without encryption.manifest_mac. Readers rebuild the same bytes from
 * what they parsed, so the MAC survives any reformatting but no change of a value. */
static void mac_input(json_t *root, uint8_t out[32])
{
    char *canonical = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    unsigned int n = 0;
    EVP_Digest(canonical ? canonical : "", canonical ? strlen(canonical) : 0, out, &n, EVP_sha256(),
               NULL);
    free(canonical);
}

static void mac_hex(const uint8_t input[32], const dc_key_t *key, char out[DC_HASH_HEX])
{
    uint8_t mac[32];
    dc_hmac_sha256(key->manifest, input, 32, mac);
    dc_hex_encode(mac, sizeof(mac), out);
}

static void manifest_mac(json_t *root, const dc_key_t *key, char out[DC_HASH_HEX])
{
    uint8_t input[32];
    mac_input(root, input);
    mac_hex(input, key, out);
}

void dc_manifest_set_key(dc_manifest_t *m, const dc_key_t *key)
{
    m->key = key;
    m->encrypted = key != NULL;
    snprintf(m->key_id, sizeof(m->key_id), "%s", key ? key->id : "");
}

static const char KEY_HOWTO[] =
    "give its key with --encryption-key-file FILE, DEPLOYCTL_ENCRYPTION_KEY_FILE, "
    "DEPLOYCTL_ENCRYPTION_KEY or encryption.key_file in the config file";

int dc_manifest_check_unlocked(const dc_manifest_t *m, dc_error_t *err)
{
    if (m->encrypted && m->key == NULL)
        return dc_error_set(err, "snapshot %s is encrypted (key id %s): %s", m->id, m->key_id,
                            KEY_HOWTO);
    return 0;
}

struct dc_filter *dc_manifest_raw_digest_new(const dc_manifest_t *m, struct dc_filter *next)
{
    return dc_filter_digest_new(m->key ? m->key->raw : NULL, next);
}

int dc_manifest_unlock(dc_manifest_t *m, const dc_key_t *key, dc_error_t *err)
{
    if (!m->encrypted || m->key != NULL)
        return 0;
    if (key == NULL)
        return dc_manifest_check_unlocked(m, err);
    if (strcmp(key->id, m->key_id) != 0)
        return dc_error_set(err,
                            "snapshot %s was encrypted with key id %s, but the key given has id "
                            "%s: give the key the snapshot was taken with",
                            m->id, m->key_id, key->id);
    char mac[DC_HASH_HEX];
    mac_hex(m->mac_input, key, mac);
    if (CRYPTO_memcmp(mac, m->manifest_mac, sizeof(mac)) != 0)
        return dc_error_set(err,
                            "snapshot %s: its manifest does not authenticate with key %s: it "
                            "was changed after the backup, do not trust it",
                            m->id, key->id);
    m->key = key;
    return 0;
}

char *dc_manifest_to_json(const dc_manifest_t *m)
{
    if (dc_manifest_invalid_string(m) != NULL)
        return NULL; /* JSON holds UTF-8 only: refuse rather than drop a table */
    json_t *migrations = json_array();
    for (size_t i = 0; i < m->migration_count; i++)
        json_array_append_new(migrations, json_pack("{s:s, s:s}", "name", m->migrations[i].name,
                                                    "checksum", m->migrations[i].checksum));
    json_t *schema = json_array();
    for (size_t i = 0; i < m->schema_count; i++) {
        const dc_manifest_schema_t *s = &m->schema[i];
        json_array_append_new(schema, json_pack("{s:s, s:s, s:I, s:s}", "section", s->section,
                                                "member", s->member, "bytes", (json_int_t)s->bytes,
                                                "sha256", s->sha256));
    }
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string(DC_SNAPSHOT_FORMAT));
    json_object_set_new(root, "format_version", json_integer(DC_SNAPSHOT_FORMAT_VERSION));
    json_object_set_new(root, "tool_version", str_or_null(m->tool_version));
    json_object_set_new(root, "id", json_string(m->id));
    json_object_set_new(root, "tag", str_or_null(m->tag));
    json_object_set_new(root, "created_at", json_string(m->created_at));
    json_object_set_new(root, "database", str_or_null(m->database));
    json_object_set_new(root, "server_version", str_or_null(m->server_version));
    json_object_set_new(root, "encoding", str_or_null(m->encoding));
    json_object_set_new(root, "source",
                        json_pack("{s:o, s:o, s:o}", "encoding", str_or_null(m->server_encoding),
                                  "lc_collate", str_or_null(m->lc_collate), "lc_ctype",
                                  str_or_null(m->lc_ctype)));
    json_t *schemas = json_array();
    for (size_t i = 0; i < m->schema_name_count; i++)
        json_array_append_new(schemas, json_string(m->schemas[i]));
    json_object_set_new(root, "schemas", schemas);
    json_object_set_new(
        root, "consistency",
        json_pack("{s:o, s:o}", "snapshot", str_or_null(m->snapshot), "lsn", str_or_null(m->lsn)));
    json_object_set_new(root, "migrations", migrations);
    json_object_set_new(
        root, "compression",
        json_pack("{s:s, s:i}", "algorithm", "zstd", "level", m->compression_level));
    json_object_set_new(root, "encryption",
                        m->encrypted
                            ? json_pack("{s:s, s:s, s:i}", "algorithm", ENCRYPTION_ALGORITHM,
                                        "key_id", m->key_id, "segment_bytes", DC_AEAD_SEGMENT)
                            : json_null());
    json_object_set_new(root, "archive",
                        json_pack("{s:I, s:s}", "bytes", (json_int_t)m->archive_bytes, "sha256",
                                  m->archive_sha256));
    json_object_set_new(root, "schema", schema);
    if (m->restrict_key)
        json_object_set_new(root, "restrict_key", json_string(m->restrict_key));
    json_object_set_new(root, "duration_seconds", json_real(m->duration_seconds));
    json_object_set_new(root, "tables", tables_to_json(m));
    json_object_set_new(root, "large_objects", large_objects_to_json(m));
    if (m->encrypted) {
        char mac[DC_HASH_HEX];
        if (m->key != NULL)
            manifest_mac(root, m->key, mac);
        else
            memcpy(mac, m->manifest_mac, sizeof(mac)); /* as read: show prints it */
        json_object_set_new(json_object_get(root, "encryption"), "manifest_mac", json_string(mac));
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(root);
    return text;
}

/* ---- reading ---- */

static bool is_hash(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* Member names are checked by rebuilding them from the numbers they hold: anything but the
 * canonical spelling ("01", "+1", "../", trailing bytes) is refused. */
static bool is_chunk_member(const char *s)
{
    unsigned a, b;
    char canonical[DC_MEMBER_MAX];
    if (strlen(s) >= DC_MEMBER_MAX || sscanf(s, "data/%u.%u.copy.zst", &a, &b) != 2)
        return false;
    dc_snapshot_chunk_member(a, b, canonical);
    return strcmp(canonical, s) == 0;
}

static bool is_blob_member(const char *s, uint32_t oid)
{
    unsigned a, b;
    char canonical[DC_MEMBER_MAX];
    if (strlen(s) >= DC_MEMBER_MAX || sscanf(s, "blobs/%u.%u.zst", &a, &b) != 2 || a != oid)
        return false;
    dc_snapshot_blob_member(oid, b, canonical);
    return strcmp(canonical, s) == 0;
}

typedef struct parse_ctx {
    dc_error_t *err;
    const char *where;
} parse_ctx_t;

static int bad(parse_ctx_t *p, const char *field, const char *why)
{
    return dc_error_set(p->err, "invalid manifest%s%s: %s %s", p->where ? " " : "",
                        p->where ? p->where : "", field, why);
}

static int get_string(parse_ctx_t *p, json_t *obj, const char *key, bool nullable, char **out)
{
    json_t *v = json_object_get(obj, key);
    if ((v == NULL || json_is_null(v)) && nullable) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return bad(p, key, "must be a string");
    *out = dc_strdup(json_string_value(v));
    return 0;
}

static int get_u64(parse_ctx_t *p, json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(p, key, "must be a non-negative integer");
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_hash(parse_ctx_t *p, json_t *obj, const char *key, char out[DC_HASH_HEX])
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || !is_hash(json_string_value(v)))
        return bad(p, key, "must be a lower-case hex SHA-256");
    memcpy(out, json_string_value(v), DC_HASH_HEX);
    return 0;
}

static int parse_chunk(parse_ctx_t *p, json_t *c, const dc_manifest_t *m, dc_manifest_table_t *t)
{
    dc_manifest_chunk_t chunk = {0};
    json_t *member = json_object_get(c, "member");
    if (!json_is_object(c))
        return bad(p, "chunk", "must be an object");
    if (!json_is_string(member) || !is_chunk_member(json_string_value(member)))
        return bad(p, "chunk member", "must be data/<table>.<chunk>.copy.zst");
    snprintf(chunk.member, sizeof(chunk.member), "%s", json_string_value(member));
    if (get_u64(p, c, "rows", &chunk.rows) || get_u64(p, c, "raw_bytes", &chunk.raw_bytes) ||
        get_u64(p, c, "stored_bytes", &chunk.stored_bytes) ||
        get_hash(p, c, "sha256", chunk.sha256) || get_hash(p, c, raw_key_name(m), chunk.raw_sha256))
        return -1;
    dc_manifest_table_add_chunk(t, &chunk);
    return 0;
}

static int parse_large_object(parse_ctx_t *p, json_t *obj, dc_manifest_t *m)
{
    uint64_t oid, bytes;
    size_t i;
    json_t *c;
    if (!json_is_object(obj) || get_u64(p, obj, "oid", &oid) || get_u64(p, obj, "bytes", &bytes))
        return bad(p, "large object", "needs an 'oid' and 'bytes'");
    if (oid == 0 || oid > UINT32_MAX)
        return bad(p, "large object oid", "is out of range");
    dc_manifest_large_object_t *lo = dc_manifest_add_large_object(m, (uint32_t)oid);
    json_t *chunks = json_object_get(obj, "chunks");
    if (!json_is_array(chunks))
        return bad(p, "large object", "needs an array 'chunks'");
    json_array_foreach(chunks, i, c)
    {
        dc_manifest_chunk_t chunk = {0};
        json_t *member = json_object_get(c, "member");
        if (!json_is_string(member) || !is_blob_member(json_string_value(member), lo->oid))
            return bad(p, "large object member", "must be blobs/<oid>.<chunk>.zst");
        snprintf(chunk.member, sizeof(chunk.member), "%s", json_string_value(member));
        if (get_u64(p, c, "raw_bytes", &chunk.raw_bytes) ||
            get_u64(p, c, "stored_bytes", &chunk.stored_bytes) ||
            get_hash(p, c, "sha256", chunk.sha256) ||
            get_hash(p, c, raw_key_name(m), chunk.raw_sha256))
            return -1;
        dc_manifest_large_object_add_chunk(lo, &chunk);
    }
    if (lo->bytes != bytes)
        return bad(p, "large object bytes", "disagree with the sum of its chunks");
    return 0;
}

static int parse_table(parse_ctx_t *p, json_t *obj, dc_manifest_t *m)
{
    char *schema = NULL, *name = NULL;
    if (!json_is_object(obj))
        return bad(p, "table", "must be an object");
    if (get_string(p, obj, "schema", false, &schema) || get_string(p, obj, "name", false, &name)) {
        free(schema);
        return -1;
    }
    dc_manifest_table_t *t = dc_manifest_add_table(m, schema, name);
    free(schema);
    free(name);
    if (get_string(p, obj, "filter", true, &t->filter))
        return -1;
    json_t *cols = json_object_get(obj, "columns");
    json_t *chunks = json_object_get(obj, "chunks");
    if (!json_is_array(cols) || !json_is_array(chunks))
        return bad(p, "table", "needs arrays 'columns' and 'chunks'");
    size_t i;
    json_t *v;
    json_array_foreach(cols, i, v)
    {
        if (!json_is_string(v))
            return bad(p, "column", "must be a string");
        dc_manifest_table_add_column(t, json_string_value(v));
    }
    json_array_foreach(chunks, i, v)
    {
        if (parse_chunk(p, v, m, t) != 0)
            return -1;
    }
    uint64_t rows, raw;
    if (get_u64(p, obj, "rows", &rows) || get_u64(p, obj, "raw_bytes", &raw))
        return -1;
    if (rows != t->rows || raw != t->raw_bytes)
        return bad(p, "table rows/raw_bytes", "disagree with the sum of its chunks");
    return 0;
}

static int parse_schema_entries(parse_ctx_t *p, json_t *arr, dc_manifest_t *m)
{
    size_t i;
    json_t *v;
    /* A restore runs pre-data before and post-data after the data: without both, it would
     * commit a database without its keys and indexes (or without its tables). */
    if (!json_is_array(arr) || json_array_size(arr) != 2)
        return bad(p, "schema", "must be an array of the pre-data and the post-data section");
    json_array_foreach(arr, i, v)
    {
        dc_manifest_schema_t *s = &m->schema[m->schema_count];
        json_t *section = json_object_get(v, "section");
        json_t *member = json_object_get(v, "member");
        if (!json_is_string(section) || !json_is_string(member))
            return bad(p, "schema entry", "needs 'section' and 'member' strings");
        bool pre = i == 0 && strcmp(json_string_value(section), "pre-data") == 0 &&
                   strcmp(json_string_value(member), DC_MEMBER_PRE_DATA) == 0;
        bool post = i == 1 && strcmp(json_string_value(section), "post-data") == 0 &&
                    strcmp(json_string_value(member), DC_MEMBER_POST_DATA) == 0;
        if (!pre && !post)
            return bad(p, "schema entry",
                       "must be pre-data then post-data, each with its member name");
        snprintf(s->section, sizeof(s->section), "%s", json_string_value(section));
        snprintf(s->member, sizeof(s->member), "%s", json_string_value(member));
        if (get_u64(p, v, "bytes", &s->bytes) || get_hash(p, v, "sha256", s->sha256))
            return -1;
        m->schema_count++;
    }
    return 0;
}

/* "encryption": null, or the algorithm, key id and MAC; the MAC's input is computed here (the
 * key comes later, dc_manifest_unlock), with the MAC itself taken out of the document. */
static int parse_encryption(parse_ctx_t *p, json_t *root, dc_manifest_t *m)
{
    json_t *e = json_object_get(root, "encryption");
    if (e == NULL || json_is_null(e))
        return 0;
    json_t *algorithm = json_object_get(e, "algorithm");
    json_t *key_id = json_object_get(e, "key_id");
    json_t *segment = json_object_get(e, "segment_bytes");
    if (!json_is_object(e) || !json_is_string(algorithm) ||
        strcmp(json_string_value(algorithm), ENCRYPTION_ALGORITHM) != 0)
        return bad(p, "encryption.algorithm", "is not " ENCRYPTION_ALGORITHM);
    if (!json_is_string(key_id) || strlen(json_string_value(key_id)) != DC_KEY_ID_HEX - 1 ||
        strspn(json_string_value(key_id), "0123456789abcdef") != DC_KEY_ID_HEX - 1)
        return bad(p, "encryption.key_id", "must be 16 lower-case hex digits");
    if (!json_is_integer(segment) || json_integer_value(segment) != DC_AEAD_SEGMENT)
        return bad(p, "encryption.segment_bytes", "is not 65536");
    if (get_hash(p, e, "manifest_mac", m->manifest_mac) != 0)
        return -1;
    memcpy(m->key_id, json_string_value(key_id), DC_KEY_ID_HEX);
    m->encrypted = true;
    json_object_del(e, "manifest_mac");
    mac_input(root, m->mac_input);
    return 0;
}

static int parse_root(parse_ctx_t *p, json_t *root, dc_manifest_t *m)
{
    char *id = NULL, *created = NULL;
    json_t *v;
    size_t i;

    if (!json_is_object(root))
        return bad(p, "document", "must be a JSON object");
    v = json_object_get(root, "format");
    if (!json_is_string(v) || strcmp(json_string_value(v), DC_SNAPSHOT_FORMAT) != 0)
        return bad(p, "format", "is not \"" DC_SNAPSHOT_FORMAT "\"");
    v = json_object_get(root, "format_version");
    if (!json_is_integer(v) || json_integer_value(v) != DC_SNAPSHOT_FORMAT_VERSION)
        return bad(p, "format_version", "is not 1 (written by a newer deployctl?)");
    if (get_string(p, root, "id", false, &id))
        return -1;
    if (!dc_snapshot_id_valid(id)) {
        free(id);
        return bad(p, "id", "is not a snapshot id");
    }
    memcpy(m->id, id, DC_SNAPSHOT_ID_LEN + 1);
    free(id);
    if (get_string(p, root, "created_at", false, &created))
        return -1;
    snprintf(m->created_at, sizeof(m->created_at), "%s", created);
    free(created);
    if (get_string(p, root, "tool_version", true, &m->tool_version) ||
        get_string(p, root, "tag", true, &m->tag) ||
        get_string(p, root, "database", true, &m->database) ||
        get_string(p, root, "server_version", true, &m->server_version) ||
        get_string(p, root, "encoding", true, &m->encoding) ||
        get_string(p, root, "restrict_key", true, &m->restrict_key))
        return -1;
    json_t *source = json_object_get(root, "source");
    if (json_is_object(source) && (get_string(p, source, "encoding", true, &m->server_encoding) ||
                                   get_string(p, source, "lc_collate", true, &m->lc_collate) ||
                                   get_string(p, source, "lc_ctype", true, &m->lc_ctype)))
        return -1;
    json_t *schema_names = json_object_get(root, "schemas");
    if (schema_names != NULL && !json_is_array(schema_names))
        return bad(p, "schemas", "must be an array of names");
    json_array_foreach(schema_names, i, v)
    {
        if (!json_is_string(v))
            return bad(p, "schemas", "must be an array of names");
        dc_manifest_add_schema_name(m, json_string_value(v));
    }
    json_t *consistency = json_object_get(root, "consistency");
    if (json_is_object(consistency) &&
        (get_string(p, consistency, "snapshot", true, &m->snapshot) ||
         get_string(p, consistency, "lsn", true, &m->lsn)))
        return -1;
    json_t *compression = json_object_get(root, "compression");
    v = json_object_get(compression, "algorithm");
    if (!json_is_string(v) || strcmp(json_string_value(v), "zstd") != 0)
        return bad(p, "compression.algorithm", "is not zstd");
    v = json_object_get(compression, "level");
    m->compression_level = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    if (parse_encryption(p, root, m) != 0)
        return -1;
    json_t *archive = json_object_get(root, "archive");
    if (!json_is_object(archive))
        return bad(p, "archive", "must be an object with 'bytes' and 'sha256'");
    if (get_u64(p, archive, "bytes", &m->archive_bytes) ||
        get_hash(p, archive, "sha256", m->archive_sha256))
        return -1;
    v = json_object_get(root, "duration_seconds");
    m->duration_seconds = json_is_number(v) ? json_number_value(v) : 0;
    json_t *migrations = json_object_get(root, "migrations");
    if (migrations != NULL && json_is_array(migrations)) {
        json_array_foreach(migrations, i, v)
        {
            json_t *name = json_object_get(v, "name");
            json_t *sum = json_object_get(v, "checksum");
            if (!json_is_string(name))
                return bad(p, "migration", "needs a name");
            dc_manifest_add_migration(m, json_string_value(name),
                                      json_is_string(sum) ? json_string_value(sum) : "");
        }
    }
    if (parse_schema_entries(p, json_object_get(root, "schema"), m) != 0)
        return -1;
    json_t *tables = json_object_get(root, "tables");
    if (!json_is_array(tables))
        return bad(p, "tables", "must be an array");
    json_array_foreach(tables, i, v)
    {
        if (parse_table(p, v, m) != 0)
            return -1;
    }
    json_t *large_objects = json_object_get(root, "large_objects");
    if (large_objects != NULL && !json_is_array(large_objects))
        return bad(p, "large_objects", "must be an array");
    json_array_foreach(large_objects, i, v)
    {
        if (parse_large_object(p, v, m) != 0)
            return -1;
    }
    return 0;
}

int dc_manifest_from_json(const char *text, size_t len, dc_manifest_t **out, dc_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return dc_error_set(err, "invalid manifest: not JSON (line %d: %s)", jerr.line, jerr.text);
    dc_manifest_t *m = dc_manifest_new();
    parse_ctx_t p = {err, NULL};
    int rc = parse_root(&p, root, m);
    json_decref(root);
    if (rc != 0) {
        dc_manifest_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
