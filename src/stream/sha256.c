/* SHA-256 filter (OpenSSL EVP): hashes the bytes that pass through, unchanged. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/stream.h"

typedef struct sha256_filter {
    dc_filter_t base;
    EVP_MD_CTX *ctx;
    uint8_t digest[32];
    int finished;
} sha256_filter_t;

static int sha256_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    EVP_DigestUpdate(s->ctx, data, len);
    return f->next ? dc_filter_write(f->next, data, len, err) : 0;
}

static int sha256_finish(dc_filter_t *f, dc_error_t *err)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    unsigned int n = 0;
    EVP_DigestFinal_ex(s->ctx, s->digest, &n);
    s->finished = 1;
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void sha256_reset(dc_filter_t *f)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
    s->finished = 0;
}

static void sha256_free(dc_filter_t *f)
{
    sha256_filter_t *s = (sha256_filter_t *)f;
    EVP_MD_CTX_free(s->ctx);
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
