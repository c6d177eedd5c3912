/* Client-side encryption of snapshots: the key (32 bytes from a file or the environment, never
 * argv), the subkeys HKDF derives from it, its public id, and HMAC-SHA256. Sealing members is a
 * stream filter (stream.h, src/stream/aes_gcm.c); where it is used is src/archive/. */
#ifndef DEPLOYCTL_CRYPTO_H
#define DEPLOYCTL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "deployctl/error.h"

#define DC_KEY_BYTES  32
#define DC_KEY_ID_HEX 17 /* 16 hex digits and a NUL */

/* What a snapshot key gives, each derived from it with HKDF-SHA256 under its own label; the key
 * itself is wiped as soon as they are derived. */
typedef struct dc_key {
    uint8_t data[DC_KEY_BYTES];     /* AES-256-GCM key of the archive's members */
    uint8_t manifest[DC_KEY_BYTES]; /* HMAC-SHA256 key of the manifest */
    uint8_t raw[DC_KEY_BYTES];      /* HMAC-SHA256 key of the COPY text digests */
    char id[DC_KEY_ID_HEX];         /* public: names the key, reveals nothing of it */
} dc_key_t;

/* Derives the subkeys of a 32-byte key. Caller frees with dc_key_free. */
int dc_key_from_bytes(const uint8_t key[DC_KEY_BYTES], dc_key_t **out, dc_error_t *err);
/* A key written as 64 hex digits or base64 (surrounding white space ignored), or as exactly 32
 * raw bytes (files only: raw_ok). `what` names where it came from, for messages. */
int dc_key_parse(const char *text, size_t len, int raw_ok, const char *what, dc_key_t **out,
                 dc_error_t *err);
/* Reads a key file, refusing one that group or others may read (like ssh does). */
int dc_key_load_file(const char *path, dc_key_t **out, dc_error_t *err);
/* The configured key: the file when one is named, else the value (of `value_origin`), else
 * none (*out = NULL, returns 0). */
int dc_key_resolve(const char *file, const char *value, const char *value_origin, dc_key_t **out,
                   dc_error_t *err);
/* Wipes and frees (NULL is fine). */
void dc_key_free(dc_key_t *k);

/* HMAC-SHA256 of a buffer (32 bytes out). */
void dc_hmac_sha256(const uint8_t key[DC_KEY_BYTES], const void *data, size_t len, uint8_t out[32]);

#endif
