/* The snapshot format (DESIGN.md "Snapshot format", version 1): ids, member names, store keys,
 * the manifest, the tar archive, and the catalog of snapshots in a store. Nothing outside
 * src/archive/ knows a member name or a manifest key. */
#ifndef DEPLOYCTL_SNAPSHOT_H
#define DEPLOYCTL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "deployctl/crypto.h"
#include "deployctl/error.h"
#include "deployctl/store.h"

#define DC_SNAPSHOT_FORMAT         "deployctl-snapshot"
#define DC_SNAPSHOT_FORMAT_VERSION 1
#define DC_SNAPSHOT_ID_LEN         21 /* YYYYMMDDTHHMMSSZ-xxxx */
#define DC_MEMBER_MAX              64
#define DC_HASH_HEX                65

/* ---- ids, tags, names ---- */

/* The tag of the snapshot a restore takes of what it replaces. "latest" never means one of
 * these: restoring "latest" again after a failed restore must not bring back what failed. */
#define DC_TAG_PRE_RESTORE "pre-restore"

/* A new id for a snapshot taken at time t. */
void dc_snapshot_id_new(time_t t, char out[DC_SNAPSHOT_ID_LEN + 1]);
/* A new id for time t that sorts after `after` (the newest id already in the store, or NULL):
 * ids order by second, and within one second by their suffix, so "latest" must never pick an
 * older snapshot of the same second. false when that second has no suffix left above it. */
bool dc_snapshot_id_new_after(time_t t, const char *after, char out[DC_SNAPSHOT_ID_LEN + 1]);
/* Strict pattern check; run before an id touches a path or a URL. */
bool dc_snapshot_id_valid(const char *id);
/* The creation time (UTC) an id encodes; -1 when the id is not valid or names no real time. */
int dc_snapshot_id_time(const char *id, time_t *out);
/* Tags: 1-32 of [a-z0-9._-], starting with a letter or digit. */
bool dc_snapshot_tag_valid(const char *tag);
/* The store path component for a database name (safe characters, others %XX-escaped). */
void dc_snapshot_database_dir(const char *database, char *out, size_t out_size);
/* "data/<table-seq>.<chunk-seq>.copy.zst" */
void dc_snapshot_chunk_member(unsigned table_seq, unsigned chunk_seq, char out[DC_MEMBER_MAX]);
/* "blobs/<oid>.<chunk-seq>.zst": a piece of a large object's bytes. */
void dc_snapshot_blob_member(uint32_t oid, unsigned chunk_seq, char out[DC_MEMBER_MAX]);
extern const char DC_MEMBER_PRE_DATA[];
extern const char DC_MEMBER_POST_DATA[];

/* ---- manifest ---- */

typedef struct dc_manifest_chunk {
    char member[DC_MEMBER_MAX];
    uint64_t rows;
    uint64_t raw_bytes;
    uint64_t stored_bytes;
    char sha256[DC_HASH_HEX]; /* of the stored (compressed, maybe encrypted) bytes */
    /* Of the COPY text: its SHA-256, or in an encrypted snapshot its HMAC-SHA256 under the key's
     * raw subkey ("raw_hmac_sha256"), which confirms no guess about the content. */
    char raw_sha256[DC_HASH_HEX];
} dc_manifest_chunk_t;

typedef struct dc_manifest_table {
    char *schema;
    char *name;
    char *filter; /* an extension configuration table's row filter ("WHERE ..."), or NULL */
    char **columns;
    size_t column_count;
    uint64_t rows;
    uint64_t raw_bytes;
    dc_manifest_chunk_t *chunks;
    size_t chunk_count;
    size_t chunk_cap;
} dc_manifest_table_t;

/* A large object: its bytes, in order, are the concatenation of its chunks (rows unused). */
typedef struct dc_manifest_large_object {
    uint32_t oid;
    uint64_t bytes;
    dc_manifest_chunk_t *chunks;
    size_t chunk_count;
    size_t chunk_cap;
} dc_manifest_large_object_t;

typedef struct dc_manifest_schema {
    char section[16]; /* pre-data | post-data */
    char member[DC_MEMBER_MAX];
    uint64_t bytes;
    char sha256[DC_HASH_HEX];
} dc_manifest_schema_t;

typedef struct dc_manifest_migration {
    char *name;
    char *checksum;
} dc_manifest_migration_t;

typedef struct dc_manifest {
    char *tool_version;
    char id[DC_SNAPSHOT_ID_LEN + 1];
    char *tag;
    char created_at[32];
    char *database;
    char *server_version;
    char *encoding; /* encoding of the COPY text (UTF8, or SQL_ASCII for such databases) */
    /* The source database, so a restore can create its twin: */
    char *server_encoding;
    char *lc_collate;
    char *lc_ctype;
    char **schemas; /* every schema the snapshot holds: what an in-place restore replaces */
    size_t schema_name_count;
    char *snapshot; /* exported snapshot id */
    char *lsn;
    char *restrict_key; /* the key pg_dump used for \restrict lines, if any */
    double duration_seconds;
    dc_manifest_migration_t *migrations;
    size_t migration_count;
    int compression_level;
    uint64_t archive_bytes;
    char archive_sha256[DC_HASH_HEX];
    dc_manifest_schema_t schema[2];
    size_t schema_count;
    dc_manifest_table_t *tables;
    size_t table_count;
    dc_manifest_large_object_t *large_objects;
    size_t large_object_count;
    /* Encryption ("encryption" in the manifest, null when off): */
    bool encrypted;
    char key_id[DC_KEY_ID_HEX];
    char manifest_mac[DC_HASH_HEX]; /* read: as stored */
    uint8_t mac_input[32];          /* read: SHA-256 of what manifest_mac covers */
    /* The key (not owned): writing, seals with it; reading, set by dc_manifest_unlock. */
    const dc_key_t *key;
} dc_manifest_t;

dc_manifest_t *dc_manifest_new(void);
void dc_manifest_free(dc_manifest_t *m);
dc_manifest_table_t *dc_manifest_add_table(dc_manifest_t *m, const char *schema, const char *name);
void dc_manifest_table_add_column(dc_manifest_table_t *t, const char *column);
void dc_manifest_table_add_chunk(dc_manifest_table_t *t, const dc_manifest_chunk_t *chunk);
void dc_manifest_add_migration(dc_manifest_t *m, const char *name, const char *checksum);
void dc_manifest_add_schema_name(dc_manifest_t *m, const char *schema);
dc_manifest_large_object_t *dc_manifest_add_large_object(dc_manifest_t *m, uint32_t oid);
void dc_manifest_large_object_add_chunk(dc_manifest_large_object_t *lo,
                                        const dc_manifest_chunk_t *chunk);
uint64_t dc_manifest_total_rows(const dc_manifest_t *m);
uint64_t dc_manifest_total_raw_bytes(const dc_manifest_t *m);

/* Serialised with the fixed keys of DESIGN.md; caller frees. NULL when a name is not valid
 * UTF-8 (see dc_manifest_invalid_string). */
char *dc_manifest_to_json(const dc_manifest_t *m);
/* The first string of the manifest that JSON cannot hold, or NULL. */
const char *dc_manifest_invalid_string(const dc_manifest_t *m);
/* Parses and validates (types, ids, member names, hashes); never trusts the input. An encrypted
 * manifest is parsed without its key (listing needs none): dc_manifest_unlock authenticates it. */
int dc_manifest_from_json(const char *text, size_t len, dc_manifest_t **out, dc_error_t *err);
/* Marks a manifest being written as encrypted with key (NULL: not encrypted). */
void dc_manifest_set_key(dc_manifest_t *m, const dc_key_t *key);
/* For an encrypted snapshot: checks that key is the one it was taken with and that the manifest
 * is authentic (its MAC), then keeps key for reading the archive. Nothing to do (0) when the
 * snapshot is not encrypted. A missing or wrong key, or a forged manifest, is an error that
 * says what to do. */
int dc_manifest_unlock(dc_manifest_t *m, const dc_key_t *key, dc_error_t *err);
/* A filter computing a chunk's raw_sha256 as this manifest defines it (SHA-256, or HMAC-SHA256
 * under the unlocked key); NULL when OpenSSL fails. */
struct dc_filter *dc_manifest_raw_digest_new(const dc_manifest_t *m, struct dc_filter *next);
/* 0 when the archive can be read: not encrypted, or unlocked; else the error of a missing key. */
int dc_manifest_check_unlocked(const dc_manifest_t *m, dc_error_t *err);

/* ---- writing a snapshot ---- */

typedef struct dc_snapshot_writer dc_snapshot_writer_t;

/* Picks a new snapshot id (returned in id_out) and starts <database-dir>/<id>/snapshot.tar in
 * the store under a lease (so no cleaner touches it), with the archive's bytes counted and
 * hashed on their way to the store. With a key (else NULL), every member is sealed with
 * segmented AES-256-GCM (stream.h) bound to the snapshot id and its name. */
int dc_snapshot_writer_open(dc_store_t *store, const char *database, time_t created,
                            const dc_key_t *key, char id_out[DC_SNAPSHOT_ID_LEN + 1],
                            dc_snapshot_writer_t **out, dc_error_t *err);
/* What a member became in the archive: the manifest's stored size and SHA-256. */
typedef struct dc_stored {
    uint64_t bytes;
    char sha256[DC_HASH_HEX];
} dc_stored_t;
/* Adds a member whose bytes are in memory. */
int dc_snapshot_writer_add(dc_snapshot_writer_t *w, const char *member, const void *data,
                           size_t len, dc_stored_t *stored, dc_error_t *err);
/* Adds a member of known size streamed from a file descriptor (read from its offset 0). */
int dc_snapshot_writer_add_fd(dc_snapshot_writer_t *w, const char *member, int fd, uint64_t size,
                              dc_stored_t *stored, dc_error_t *err);
/* Closes the archive, commits it, fills m->archive_*, writes the manifest (the commit point)
 * and releases the lease. Frees w whatever happens. */
int dc_snapshot_writer_commit(dc_snapshot_writer_t *w, dc_manifest_t *m, dc_error_t *err);
/* Drops everything written so far. Frees w. */
void dc_snapshot_writer_abort(dc_snapshot_writer_t *w);
uint64_t dc_snapshot_writer_bytes(const dc_snapshot_writer_t *w);

/* ---- reading a snapshot ---- */

typedef struct dc_snapshot_reader dc_snapshot_reader_t;

typedef enum {
    DC_MEMBER_PRE_DATA_KIND,
    DC_MEMBER_TABLE_CHUNK,
    DC_MEMBER_BLOB_CHUNK,
    DC_MEMBER_POST_DATA_KIND,
} dc_member_kind_t;

/* A member of the archive, as its manifest describes it. */
typedef struct dc_member {
    dc_member_kind_t kind;
    const char *name;
    size_t index;       /* chunks: the manifest's table or large object */
    size_t chunk_index; /* chunks: position within it */
    const dc_manifest_chunk_t *chunk;
    uint64_t size;      /* stored bytes */
    const char *sha256; /* of the stored bytes */
} dc_member_t;

/* Opens <database-dir>/<id>/snapshot.tar of a snapshot whose manifest the caller holds. */
int dc_snapshot_reader_open(dc_store_t *store, const char *database_dir,
                            const dc_manifest_t *manifest, dc_snapshot_reader_t **out,
                            dc_error_t *err);
/* The next member (*end at the end of the archive). Only members the manifest names are
 * accepted, once each, pre-data first and post-data last. */
int dc_snapshot_reader_next(dc_snapshot_reader_t *r, dc_member_t *out, bool *end, dc_error_t *err);
/* Reads the current member's bytes (decrypted, for an encrypted snapshot: each segment only once
 * it authenticated); *got == 0 at its end, when its size and SHA-256 have been checked (an error
 * if they differ from the manifest). */
int dc_snapshot_reader_read(dc_snapshot_reader_t *r, void *buf, size_t len, size_t *got,
                            dc_error_t *err);
/* After the end: every member was there, and the archive's size and SHA-256 match. */
int dc_snapshot_reader_finish(dc_snapshot_reader_t *r, dc_error_t *err);
void dc_snapshot_reader_close(dc_snapshot_reader_t *r);

/* Random access, for stores that read ranges (dc_store_can_read_ranges): the index says where
 * each member starts. Building it reads every header (with the checks above: expected names,
 * once each, in order, of the announced size and type, none missing) and skips the data. */
typedef struct dc_snapshot_index dc_snapshot_index_t;
int dc_snapshot_index_build(dc_store_t *store, const char *database_dir,
                            const dc_manifest_t *manifest, dc_snapshot_index_t **out,
                            dc_error_t *err);
void dc_snapshot_index_free(dc_snapshot_index_t *ix);
/* A reader of one member (any thread may hold one): dc_snapshot_reader_read reads its bytes
 * and checks their size and SHA-256 at the end. The index must outlive it. */
int dc_snapshot_reader_open_member(const dc_snapshot_index_t *ix, const char *name,
                                   dc_snapshot_reader_t **out, dc_member_t *info, dc_error_t *err);

/* ---- the catalog: what a store holds ---- */

typedef struct dc_snapshot_info {
    char database_dir[256];
    char id[DC_SNAPSHOT_ID_LEN + 1];
    bool complete;    /* the manifest exists */
    bool in_progress; /* incomplete, and a live backup holds its lease */
    uint64_t stored_bytes;
    dc_manifest_t *manifest; /* loaded when complete (NULL if unreadable) */
    char *manifest_error;    /* why it could not be read */
    char verify_object[64];  /* the newest verify-<time>.json, "" when never verified */
    bool verified;           /* the newest verification succeeded */
    bool verified_deep;      /* ... and it was a deep one */
    char verified_at[32];
    int pin_count;       /* pin-<owner> objects: see "pins" below */
    char pin_object[48]; /* the first of them, for messages */
} dc_snapshot_info_t;

typedef struct dc_snapshot_list {
    dc_snapshot_info_t *items; /* oldest first */
    size_t count;
} dc_snapshot_list_t;

/* Lists snapshots of one database (its name, not its dir), or of all when database is NULL. */
int dc_catalog_list(dc_store_t *store, const char *database, dc_snapshot_list_t *out,
                    dc_error_t *err);
void dc_catalog_list_free(dc_snapshot_list_t *list);
/* Resolves "latest" (the newest complete snapshot but pre-restore ones) or an id to a
 * complete snapshot and loads its manifest. */
int dc_catalog_load(dc_store_t *store, const char *database, const char *ref, dc_manifest_t **out,
                    char database_dir_out[256], dc_error_t *err);
/* Removes what died backups left: temporary objects, and snapshots with no manifest whose
 * writer is gone. Safe against backups running at the same time. */
int dc_catalog_clean_abandoned(dc_store_t *store, int *removed_temporary, int *removed_snapshots,
                               dc_error_t *err);
/* Removes one listed snapshot that has no manifest, if its writer is gone (*removed says
 * whether it was): the check is made again under the writer's lease, so a backup that commits
 * meanwhile keeps its snapshot. */
int dc_catalog_remove_abandoned(dc_store_t *store, const dc_snapshot_info_t *info, bool *removed,
                                dc_error_t *err);
/* Deletes one complete snapshot: the manifest first, so that an interrupted deletion leaves an
 * incomplete snapshot (never listed, cleaned later) rather than a listed one with missing
 * objects; then the archive and everything else under it. Refuses (and deletes nothing) when a
 * pin appeared since the snapshot was listed. */
int dc_catalog_delete_snapshot(dc_store_t *store, const char *database_dir, const char *id,
                               dc_error_t *err);

/* ---- pins: snapshots something still depends on ----
 *
 * A pin is an object named "pin-<owner>" in a snapshot's directory
 * (<database-dir>/<id>/pin-<owner>), <owner> being 1-32 of [a-z0-9._-] (e.g.
 * "release-20260101T120000Z"). Its content is a short JSON note for people ({"owner", "note",
 * "pinned_at"}); only its presence counts. While a snapshot has at least one pin, `prune` keeps
 * it whatever the retention rules say. A release pins the snapshot it may have to restore
 * before it migrates and unpins it once it has ended (done or rolled back); a pin left by a
 * release that died stays until `recover` resolves that release (or someone deletes it). Pins
 * are per snapshot, so several owners may pin the same one. */
int dc_snapshot_pin(dc_store_t *store, const char *database_dir, const char *id, const char *owner,
                    const char *note, dc_error_t *err);
int dc_snapshot_unpin(dc_store_t *store, const char *database_dir, const char *id,
                      const char *owner, dc_error_t *err);

#endif
