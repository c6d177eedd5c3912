/* Segmented AES-256-GCM filters (OpenSSL EVP), after the STREAM construction of age: one GCM tag
 * at the end of a whole member would let unauthenticated plaintext reach COPY before the tag is
 * checked, so a member is sealed in segments that each authenticate on their own.
 *
 *   header  "DCAEAD" | version 1 | log2(segment) = 16 | 4 zero bytes | 12-byte random nonce base
 *   segment ciphertext (64 KiB, the last one 0..64 KiB) | 16-byte tag
 *
 * Segment i uses nonce = base XOR big-endian i (in its last 8 bytes) and authenticates, as AAD,
 * the header, a byte that says whether it is the last segment, and the context (snapshot id and
 * member name): so changing, dropping, reordering or truncating segments, or moving a member to
 * another name or snapshot, fails a tag. One cipher context per filter, reused for every
 * segment; memory is one segment in and one out. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "deployctl/stream.h"

#define MAGIC       "DCAEAD"
#define MAGIC_LEN   6
#define VERSION     1
#define SEGMENT_LOG 16
#define NONCE_LEN   12

typedef struct aead_filter {
    dc_filter_t base;
    bool seal;
    bool begun;
    EVP_CIPHER_CTX *ctx;
    uint8_t header[DC_AEAD_HEADER];
    size_t header_have; /* opening: header bytes received so far */
    uint64_t counter;   /* the next segment's number */
    uint8_t *in;        /* sealing: plaintext of a segment; opening: ciphertext and tag */
    size_t in_len;
    size_t in_cap;
    uint8_t *out;
    char *context;
} aead_filter_t;

uint64_t dc_aead_sealed_size(uint64_t len)
{
    uint64_t segments = len == 0 ? 1 : (len + DC_AEAD_SEGMENT - 1) / DC_AEAD_SEGMENT;
    return DC_AEAD_HEADER + len + segments * DC_AEAD_TAG;
}

/* Sets the segment's nonce and feeds its AAD. */
static int start_segment(aead_filter_t *a, bool final)
{
    uint8_t nonce[NONCE_LEN];
    int n = 0;
    memcpy(nonce, a->header + DC_AEAD_HEADER - NONCE_LEN, NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] ^= (uint8_t)(a->counter >> (8 * i));
    uint8_t last = final ? 1 : 0;
    int ok = a->seal ? EVP_EncryptInit_ex(a->ctx, NULL, NULL, NULL, nonce)
                     : EVP_DecryptInit_ex(a->ctx, NULL, NULL, NULL, nonce);
    ok = ok && EVP_CipherUpdate(a->ctx, NULL, &n, a->header, DC_AEAD_HEADER);
    ok = ok && EVP_CipherUpdate(a->ctx, NULL, &n, &last, 1);
    ok = ok &&
         EVP_CipherUpdate(a->ctx, NULL, &n, (const uint8_t *)a->context, (int)strlen(a->context));
    return ok ? 0 : -1;
}

static int seal_segment(aead_filter_t *a, bool final, dc_error_t *err)
{
    int n = 0, m = 0;
    size_t len = a->in_len;
    int ok = start_segment(a, final) == 0;
    ok = ok && (len == 0 || EVP_EncryptUpdate(a->ctx, a->out, &n, a->in, (int)len));
    ok = ok && EVP_EncryptFinal_ex(a->ctx, a->out + n, &m);
    ok = ok && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_GET_TAG, DC_AEAD_TAG, a->out + len);
    if (!ok)
        return dc_error_set(err, "AES-256-GCM encryption failed (OpenSSL)");
    a->counter++;
    a->in_len = 0;
    return a->base.next ? dc_filter_write(a->base.next, a->out, len + DC_AEAD_TAG, err) : 0;
}

static int open_segment(aead_filter_t *a, bool final, dc_error_t *err)
{
    int n = 0, m = 0;
    size_t len = a->in_len - DC_AEAD_TAG;
    int ok = start_segment(a, final) == 0;
    ok = ok && (len == 0 || EVP_DecryptUpdate(a->ctx, a->out, &n, a->in, (int)len));
    ok = ok && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_TAG, DC_AEAD_TAG, a->in + len);
    ok = ok && EVP_DecryptFinal_ex(a->ctx, a->out + n, &m) > 0;
    if (!ok) {
        OPENSSL_cleanse(a->out, len);
        return dc_error_set(err,
                            "segment %llu%s does not authenticate: the bytes were altered, "
                            "truncated or reordered, or belong to another member or key",
                            (unsigned long long)a->counter, final ? " (the last)" : "");
    }
    a->counter++;
    a->in_len = 0;
    return a->base.next && len > 0 ? dc_filter_write(a->base.next, a->out, len, err) : 0;
}

static int not_begun(dc_error_t *err)
{
    return dc_error_set(err, "internal error: encrypted stream used before it was begun");
}

/* Fills the segment buffer; a full one is processed (sealed or opened) only when more input
 * follows, because the last segment is flagged as such and only the end says which it is. */
static int take_input(aead_filter_t *a, const uint8_t *data, size_t len,
                      int (*segment)(aead_filter_t *, bool, dc_error_t *), dc_error_t *err)
{
    while (len > 0) {
        if (a->in_len == a->in_cap && segment(a, false, err) != 0)
            return -1;
        size_t take = a->in_cap - a->in_len < len ? a->in_cap - a->in_len : len;
        memcpy(a->in + a->in_len, data, take);
        a->in_len += take;
        data += take;
        len -= take;
    }
    return 0;
}

static int seal_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    aead_filter_t *a = (aead_filter_t *)f;
    if (!a->begun)
        return not_begun(err);
    return take_input(a, data, len, seal_segment, err);
}

static int seal_finish(dc_filter_t *f, dc_error_t *err)
{
    aead_filter_t *a = (aead_filter_t *)f;
    if (!a->begun)
        return not_begun(err);
    if (seal_segment(a, true, err) != 0)
        return -1;
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

/* Opening: the header first, checked as soon as it is whole. */
static int take_header(aead_filter_t *a, const uint8_t **data, size_t *len, dc_error_t *err)
{
    size_t take = DC_AEAD_HEADER - a->header_have < *len ? DC_AEAD_HEADER - a->header_have : *len;
    memcpy(a->header + a->header_have, *data, take);
    a->header_have += take;
    *data += take;
    *len -= take;
    if (a->header_have < DC_AEAD_HEADER)
        return 0;
    static const uint8_t zeros[4] = {0};
    if (memcmp(a->header, MAGIC, MAGIC_LEN) != 0 || a->header[MAGIC_LEN] != VERSION ||
        a->header[MAGIC_LEN + 1] != SEGMENT_LOG || memcmp(a->header + MAGIC_LEN + 2, zeros, 4))
        return dc_error_set(err, "not an encrypted member of this format (its header is "
                                 "damaged, or it was never encrypted)");
    return 0;
}

static int open_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    aead_filter_t *a = (aead_filter_t *)f;
    if (!a->begun)
        return not_begun(err);
    if (a->header_have < DC_AEAD_HEADER && take_header(a, &data, &len, err) != 0)
        return -1;
    return take_input(a, data, len, open_segment, err);
}

static int open_finish(dc_filter_t *f, dc_error_t *err)
{
    aead_filter_t *a = (aead_filter_t *)f;
    if (!a->begun)
        return not_begun(err);
    if (a->header_have < DC_AEAD_HEADER || a->in_len < DC_AEAD_TAG)
        return dc_error_set(err, "the encrypted stream is truncated (it ends %s)",
                            a->header_have < DC_AEAD_HEADER ? "inside its header"
                                                            : "inside a segment's tag");
    if (open_segment(a, true, err) != 0)
        return -1;
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void aead_reset(dc_filter_t *f)
{
    aead_filter_t *a = (aead_filter_t *)f;
    a->begun = false;
    a->header_have = 0;
    a->counter = 0;
    a->in_len = 0;
}

static void aead_free(dc_filter_t *f)
{
    aead_filter_t *a = (aead_filter_t *)f;
    EVP_CIPHER_CTX_free(a->ctx);
    if (a->in)
        OPENSSL_cleanse(a->in, a->in_cap);
    if (a->out)
        OPENSSL_cleanse(a->out, DC_AEAD_SEGMENT + DC_AEAD_TAG);
    free(a->in);
    free(a->out);
    free(a->context);
    free(a);
}

static const dc_filter_ops_t seal_ops = {"aes-256-gcm-seal", seal_process, seal_finish, aead_reset,
                                         aead_free};
static const dc_filter_ops_t open_ops = {"aes-256-gcm-open", open_process, open_finish, aead_reset,
                                         aead_free};

static dc_filter_t *aead_new(bool seal, const uint8_t key[32], dc_filter_t *next, dc_error_t *err)
{
    aead_filter_t *a = dc_calloc(1, sizeof(*a));
    a->base.ops = seal ? &seal_ops : &open_ops;
    a->base.next = next;
    a->seal = seal;
    a->in_cap = seal ? DC_AEAD_SEGMENT : DC_AEAD_SEGMENT + DC_AEAD_TAG;
    a->in = dc_malloc(a->in_cap);
    a->out = dc_malloc(DC_AEAD_SEGMENT + DC_AEAD_TAG);
    a->context = dc_strdup("");
    a->ctx = EVP_CIPHER_CTX_new();
    int ok = a->ctx != NULL &&
             EVP_CipherInit_ex(a->ctx, EVP_aes_256_gcm(), NULL, key, NULL, seal ? 1 : 0);
    if (!ok) {
        a->base.next = NULL;
        aead_free(&a->base);
        dc_error_set(err, "cannot set up AES-256-GCM (OpenSSL)");
        return NULL;
    }
    return &a->base;
}

dc_filter_t *dc_filter_aead_seal_new(const uint8_t key[32], dc_filter_t *next, dc_error_t *err)
{
    return aead_new(true, key, next, err);
}

dc_filter_t *dc_filter_aead_open_new(const uint8_t key[32], dc_filter_t *next, dc_error_t *err)
{
    return aead_new(false, key, next, err);
}

int dc_filter_aead_begin(dc_filter_t *f, const char *context, dc_error_t *err)
{
    aead_filter_t *a = (aead_filter_t *)f;
    free(a->context);
    a->context = dc_strdup(context);
    a->begun = true;
    if (!a->seal)
        return 0;
    memcpy(a->header, MAGIC, MAGIC_LEN);
    a->header[MAGIC_LEN] = VERSION;
    a->header[MAGIC_LEN + 1] = SEGMENT_LOG;
    memset(a->header + MAGIC_LEN + 2, 0, 4);
    if (RAND_bytes(a->header + DC_AEAD_HEADER - NONCE_LEN, NONCE_LEN) != 1) {
        a->begun = false;
        return dc_error_set(err, "cannot draw a random nonce (OpenSSL RAND_bytes)");
    }
    a->header_have = DC_AEAD_HEADER;
    return f->next ? dc_filter_write(f->next, a->header, DC_AEAD_HEADER, err) : 0;
}
