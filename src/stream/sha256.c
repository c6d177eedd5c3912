/* SHA-256 filter (OpenSSL EVP): hashes the bytes that pass through, unchanged; or, given a key,
 * their HMAC-SHA256 (the COPY text digests of encrypted snapshots). */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/stream.h"

typedef struct sha256_filter {
    dc_filter_t base;
    EVP_MD_CTX *ctx;
    EVP_MAC_CTX *mac; /* instead of ctx, for HMAC */
    uint8_t digest[32];
    int finished;
} sha256_filter_t;

static int sha256_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    if (s->mac)
        EVP_MAC_update(s->mac, data, len);
    else
        EVP_DigestUpdate(s->ctx, data, len);
    return f->next ? dc_filter_write(f->next, data, len, err) : 0;
}

static int sha256_finish(dc_filter_t *f, dc_error_t *err)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    unsigned int n = 0;
    size_t mac_len = 0;
    if (s->mac)
        EVP_MAC_final(s->mac, s->digest, &mac_len, sizeof(s->digest));
    else
        EVP_DigestFinal_ex(s->ctx, s->digest, &n);
    s->finished = 1;
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void sha256_reset(dc_filter_t *f)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    if (s->mac)
        EVP_MAC_init(s->mac, NULL, 0, NULL); /* the same key again */
    else
        EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
    s->finished = 0;
}

static void sha256_free(dc_filter_t *f)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    EVP_MD_CTX_free(s->ctx);
    EVP_MAC_CTX_free(s->mac);
    free(s);
}

static const dc_filter_ops_t sha256_ops = {"sha256", sha256_process, sha256_finish, sha256_reset,
                                           sha256_free};

dc_filter_t *dc_filter_sha256_new(dc_filter_t *next)
{
    sha256_filter_t *s = dc_calloc(1, sizeof(*s));
    s->base.ops = &sha256_ops;
    s->base.next = next;
    s->ctx = EVP_MD_CTX_new();
    if (s->ctx == NULL) {
        free(s);
        return NULL;
    }
    EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
    return &s->base;
}

dc_filter_t *dc_filter_digest_new(const uint8_t *hmac_key, dc_filter_t *next)
{
    if (hmac_key == NULL)
        return dc_filter_sha256_new(next);
    sha256_filter_t *s = dc_calloc(1, sizeof(*s));
    s->base.ops = &sha256_ops;
    s->base.next = next;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    s->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (s->mac == NULL || EVP_MAC_init(s->mac, hmac_key, 32, params) != 1) {
        EVP_MAC_CTX_free(s->mac);
        free(s);
        return NULL;
    }
    return &s->base;
}

void dc_filter_sha256_hex(const dc_filter_t *f, char out[65])
{
    const sha256_filter_t *s = (const sha256_filter_t *)f;
    dc_hex_encode(s->digest, sizeof(s->digest), out);
}

void dc_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t digest[32];
    unsigned int n = 0;
    EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL);
    dc_hex_encode(digest, sizeof(digest), out);
}
