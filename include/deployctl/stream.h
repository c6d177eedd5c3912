/* The filter chain every byte goes through: source -> zstd -> SHA-256 -> (AES-256-GCM) -> sink,
 * and back. A filter transforms or observes what it is given and pushes its output to the next
 * one; each holds fixed-size buffers only, so nothing ever holds a whole table or archive. */
#ifndef DEPLOYCTL_STREAM_H
#define DEPLOYCTL_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "deployctl/error.h"
#include "deployctl/util.h"

typedef struct dc_filter dc_filter_t;

typedef struct dc_filter_ops {
    const char *name;
    /* Consumes len bytes, pushing any output to f->next. */
    int (*process)(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err);
    /* Ends the stream: flushes what is buffered, then finishes f->next. */
    int (*finish)(dc_filter_t *f, dc_error_t *err);
    /* Gets ready for a new stream, keeping allocated resources. */
    void (*reset)(dc_filter_t *f);
    void (*free)(dc_filter_t *f);
} dc_filter_ops_t;

struct dc_filter {
    const dc_filter_ops_t *ops;
    dc_filter_t *next; /* NULL for a sink */
};

int dc_filter_write(dc_filter_t *f, const void *data, size_t len, dc_error_t *err);
int dc_filter_finish(dc_filter_t *f, dc_error_t *err);
/* Resets f and every filter after it. */
void dc_filter_reset_chain(dc_filter_t *f);
/* Frees f and every filter after it. */
void dc_filter_free_chain(dc_filter_t *f);

/* SHA-256 of the bytes passing through (unchanged). The digest is ready after finish. */
dc_filter_t *dc_filter_sha256_new(dc_filter_t *next);
/* Lower-case hex digest (65 bytes with NUL). */
void dc_filter_sha256_hex(const dc_filter_t *f, char out[65]);

/* Counts the bytes passing through (unchanged). */
dc_filter_t *dc_filter_count_new(dc_filter_t *next);
uint64_t dc_filter_count_bytes(const dc_filter_t *f);

/* zstd: each stream is one zstd frame. */
dc_filter_t *dc_filter_zstd_compress_new(int level, dc_filter_t *next, dc_error_t *err);
dc_filter_t *dc_filter_zstd_decompress_new(dc_filter_t *next, dc_error_t *err);

/* Keyed digest: HMAC-SHA256 of the bytes passing through (unchanged), read with
 * dc_filter_sha256_hex. With key NULL, plain SHA-256 (dc_filter_sha256_new). */
dc_filter_t *dc_filter_digest_new(const uint8_t *hmac_key, dc_filter_t *next);

/* Segmented AES-256-GCM (format in src/stream/aes_gcm.c): a stream is a 24-byte header (magic,
 * version, random nonce base) then segments of DC_AEAD_SEGMENT plaintext bytes (the last may be
 * shorter, or empty), each sealed with its own tag and bound to its position, to whether it is
 * the last, and to a context (the snapshot id and member name). Opening releases a segment only
 * once its tag checked, so no forged, truncated or reordered byte ever goes downstream. */
#define DC_AEAD_SEGMENT (64 * 1024)
#define DC_AEAD_HEADER  24
#define DC_AEAD_TAG     16
/* The sealed size of a stream of len bytes. */
uint64_t dc_aead_sealed_size(uint64_t len);
dc_filter_t *dc_filter_aead_seal_new(const uint8_t key[32], dc_filter_t *next, dc_error_t *err);
dc_filter_t *dc_filter_aead_open_new(const uint8_t key[32], dc_filter_t *next, dc_error_t *err);
/* Starts a stream (after a reset) bound to context; sealing draws a fresh nonce base and sends
 * the header downstream. */
int dc_filter_aead_begin(dc_filter_t *f, const char *context, dc_error_t *err);

/* Sinks. */
dc_filter_t *dc_filter_null_sink_new(void);
/* Appends to a dc_buf_t, which the caller owns and may swap between streams. */
dc_filter_t *dc_filter_memory_sink_new(dc_buf_t *target);
void dc_filter_memory_sink_set(dc_filter_t *f, dc_buf_t *target);
/* Hands each piece to a callback (a store writer, a file descriptor, a COPY). */
typedef int (*dc_sink_fn)(void *ctx, const uint8_t *data, size_t len, dc_error_t *err);
dc_filter_t *dc_filter_callback_sink_new(dc_sink_fn fn, void *ctx);

/* SHA-256 of a whole buffer, for small things (manifests, tests). */
void dc_sha256_hex(const void *data, size_t len, char out[65]);

#endif
