/* Proves the snapshot key and the segmented AES-256-GCM filters: keys in their three spellings
 * (and refusals, including a key file others may read), subkeys and ids, HMAC streaming, and
 * sealing/opening across segment boundaries with every kind of tampering refused before a
 * byte of the altered segment goes downstream. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deployctl/crypto.h"
#include "deployctl/stream.h"
#include "deployctl/util.h"
#include "unit_tmpdir.h"

#define SEG DC_AEAD_SEGMENT

static const char KEY_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/* the same 32 bytes in base64 */
static const char KEY_B64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static dc_key_t *key_from_hex(const char *hex)
{
    dc_key_t *k = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_key_parse(hex, strlen(hex), 0, "test key", &k, &err), 0);
    return k;
}

static uint8_t *make_data(size_t size, uint32_t seed)
{
    uint8_t *d = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        seed = seed * 1103515245u + 12345u;
        d[i] = (uint8_t)(seed >> 16);
    }
    return d;
}

/* ---- keys ---- */

static void test_key_spellings(void **state)
{
    (void)state;
    dc_key_t *a = key_from_hex(KEY_HEX);
    dc_key_t *b = NULL, *c = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_key_parse(KEY_B64, strlen(KEY_B64), 0, "b64", &b, &err), 0);
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    assert_int_equal(dc_key_parse((const char *)raw, 32, 1, "raw", &c, &err), 0);
    assert_memory_equal(a, b, sizeof(*a));
    assert_memory_equal(a, c, sizeof(*a));
    /* white space around a text key (a file ending in a newline) is fine */
    char padded[100];
    snprintf(padded, sizeof(padded), "  %s\n", KEY_HEX);
    dc_key_t *d = NULL;
    assert_int_equal(dc_key_parse(padded, strlen(padded), 0, "padded", &d, &err), 0);
    assert_memory_equal(a, d, sizeof(*a));
    dc_key_free(b);
    dc_key_free(c);
    dc_key_free(d);
    dc_key_free(a);
}

static void test_key_refusals(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "00",
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
                         "correct horse battery staple"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dc_key_t *k = NULL;
        dc_error_t err = {0};
        assert_int_equal(
            dc_key_parse(bad[i], strlen(bad[i]), 0, "DEPLOYCTL_ENCRYPTION_KEY", &k, &err), -1);
        assert_null(k);
        assert_non_null(strstr(err.message, "DEPLOYCTL_ENCRYPTION_KEY is not a 32-byte key"));
        assert_null(strstr(err.message, bad[i][0] ? bad[i] : "\x01")); /* never echoed */
    }
    /* 32 raw bytes only where raw is allowed (files) */
    dc_key_t *k = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_key_parse("0123456789abcdef0123456789abcdef", 32, 0, "env", &k, &err), -1);
}

static void test_key_ids_and_subkeys(void **state)
{
    (void)state;
    dc_key_t *a = key_from_hex(KEY_HEX);
    dc_key_t *b = key_from_hex("ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    assert_int_equal(strlen(a->id), 16);
    assert_string_not_equal(a->id, b->id);
    /* the subkeys differ from one another and from the key */
    assert_memory_not_equal(a->data, a->manifest, 32);
    assert_memory_not_equal(a->data, a->raw, 32);
    assert_memory_not_equal(a->manifest, a->raw, 32);
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    assert_memory_not_equal(a->data, raw, 32);
    /* the id is stable: a key made again has the same one */
    dc_key_t *again = key_from_hex(KEY_HEX);
    assert_string_equal(a->id, again->id);
    dc_key_free(again);
    dc_key_free(a);
    dc_key_free(b);
}

static void test_key_file_modes(void **state)
{
    (void)state;
    char dir[128], path[256];
    assert_int_equal(unit_tmpdir_new(dir, sizeof(dir), "key"), 0);
    snprintf(path, sizeof(path), "%s/snapshot.key", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, KEY_HEX, strlen(KEY_HEX)), (ssize_t)strlen(KEY_HEX));
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(chmod(path, 0644), 0);
    dc_key_t *k = NULL;
    dc_error_t err = {0};
    assert_int_equal(dc_key_load_file(path, &k, &err), -1);
    assert_non_null(strstr(err.message, "may be read by group or others"));
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(dc_key_load_file(path, &k, &err), 0);
    dc_key_t *ref = key_from_hex(KEY_HEX);
    assert_string_equal(k->id, ref->id);
    dc_key_free(k);
    /* resolve: the file wins over the value; no file and no value is no key */
    assert_int_equal(dc_key_resolve(path, "garbage", "DEPLOYCTL_ENCRYPTION_KEY", &k, &err), 0);
    assert_string_equal(k->id, ref->id);
    dc_key_free(k);
    assert_int_equal(dc_key_resolve(NULL, NULL, NULL, &k, &err), 0);
    assert_null(k);
    snprintf(path, sizeof(path), "%s/missing.key", dir);
    assert_int_equal(dc_key_load_file(path, &k, &err), -1);
    assert_non_null(strstr(err.message, "missing.key"));
    dc_key_free(ref);
    unit_tmpdir_remove(dir);
}

static void test_hmac_filter(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    uint8_t *data = make_data(200000, 7);
    uint8_t mac[32];
    char expected[65], got[65], plain[65];
    dc_hmac_sha256(k->raw, data, 200000, mac);
    dc_hex_encode(mac, 32, expected);
    dc_filter_t *f = dc_filter_digest_new(k->raw, NULL);
    dc_error_t err = {0};
    for (int round = 0; round < 2; round++) { /* reset keeps the key */
        dc_filter_reset_chain(f);
        for (size_t off = 0; off < 200000; off += 777)
            dc_filter_write(f, data + off, 200000 - off < 777 ? 200000 - off : 777, &err);
        dc_filter_finish(f, &err);
        dc_filter_sha256_hex(f, got);
        assert_string_equal(got, expected);
    }
    dc_sha256_hex(data, 200000, plain);
    assert_string_not_equal(plain, expected);
    dc_filter_free_chain(f);
    free(data);
    dc_key_free(k);
}

/* ---- segmented AES-256-GCM ---- */

static dc_buf_t seal(const dc_key_t *k, const char *context, const uint8_t *data, size_t len,
                     size_t piece)
{
    dc_buf_t out = {0};
    dc_error_t err = {0};
    dc_filter_t *f = dc_filter_aead_seal_new(k->data, dc_filter_memory_sink_new(&out), &err);
    assert_non_null(f);
    assert_int_equal(dc_filter_aead_begin(f, context, &err), 0);
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(
            dc_filter_write(f, data + off, len - off < piece ? len - off : piece, &err), 0);
    assert_int_equal(dc_filter_finish(f, &err), 0);
    dc_filter_free_chain(f);
    return out;
}

/* Opens; returns 0 or -1, with what came out in *plain and the error in err. */
static int open_sealed(const dc_key_t *k, const char *context, const void *data, size_t len,
                       size_t piece, dc_buf_t *plain, dc_error_t *err)
{
    dc_filter_t *f = dc_filter_aead_open_new(k->data, dc_filter_memory_sink_new(plain), err);
    assert_non_null(f);
    int rc = dc_filter_aead_begin(f, context, err);
    for (size_t off = 0; rc == 0 && off < len; off += piece)
        rc = dc_filter_write(f, (const uint8_t *)data + off, len - off < piece ? len - off : piece,
                             err);
    if (rc == 0)
        rc = dc_filter_finish(f, err);
    dc_filter_free_chain(f);
    return rc;
}

static void test_aead_round_trip(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    const size_t sizes[] = {0, 1, 15, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17};
    const size_t pieces[] = {1, 7, 4096, SEG + 16, 1 << 20};
    uint8_t *data = make_data(3 * SEG + 17, 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
            if (pieces[p] == 1 && sizes[i] > SEG + 1)
                continue; /* byte by byte is slow and proves nothing more there */
            dc_buf_t sealed = seal(k, "S/data/1.1.copy.zst", data, sizes[i], pieces[p]);
            assert_int_equal(sealed.len, dc_aead_sealed_size(sizes[i]));
            dc_buf_t plain = {0};
            dc_error_t err = {0};
            assert_int_equal(open_sealed(k, "S/data/1.1.copy.zst", sealed.data, sealed.len,
                                         pieces[(p + 1) % 5], &plain, &err),
                             0);
            assert_int_equal(plain.len, sizes[i]);
            if (sizes[i] > 0)
                assert_memory_equal(plain.data, data, sizes[i]);
            /* the plaintext never shows in the sealed bytes */
            if (sizes[i] >= 64)
                assert_null(memmem(sealed.data, sealed.len, data, 64));
            dc_buf_free(&sealed);
            dc_buf_free(&plain);
        }
    }
    free(data);
    dc_key_free(k);
}

static void test_aead_fresh_nonce_and_reuse(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    uint8_t *data = make_data(SEG + 5, 2);
    dc_buf_t a = seal(k, "ctx", data, SEG + 5, 1000);
    dc_buf_t b = seal(k, "ctx", data, SEG + 5, 1000);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data, b.data, a.len); /* a new nonce base each time */
    /* one filter, reset between streams, seals and opens several members */
    dc_buf_t out = {0}, plain = {0};
    dc_error_t err = {0};
    dc_filter_t *s = dc_filter_aead_seal_new(k->data, dc_filter_memory_sink_new(&out), &err);
    dc_filter_t *o = dc_filter_aead_open_new(k->data, dc_filter_memory_sink_new(&plain), &err);
    for (int round = 0; round < 3; round++) {
        out.len = plain.len = 0;
        dc_filter_reset_chain(s);
        dc_filter_reset_chain(o);
        assert_int_equal(dc_filter_aead_begin(s, "member", &err), 0);
        assert_int_equal(dc_filter_write(s, data, (size_t)round * 1000 + 1, &err), 0);
        assert_int_equal(dc_filter_finish(s, &err), 0);
        assert_int_equal(dc_filter_aead_begin(o, "member", &err), 0);
        assert_int_equal(dc_filter_write(o, (uint8_t *)out.data, out.len, &err), 0);
        assert_int_equal(dc_filter_finish(o, &err), 0);
        assert_int_equal(plain.len, (size_t)round * 1000 + 1);
        assert_memory_equal(plain.data, data, plain.len);
    }
    dc_filter_free_chain(s);
    dc_filter_free_chain(o);
    dc_buf_free(&out);
    dc_buf_free(&plain);
    dc_buf_free(&a);
    dc_buf_free(&b);
    free(data);
    dc_key_free(k);
}

/* Where segment i starts in the sealed stream. */
static size_t segment_at(size_t i)
{
    return DC_AEAD_HEADER + i * (SEG + DC_AEAD_TAG);
}

/* The altered stream must fail, and nothing downstream may come from the segment that failed
 * or later: only the whole segments before `first_bad`. */
static void expect_refused(const dc_key_t *k, const char *context, const dc_buf_t *sealed,
                           const uint8_t *data, size_t first_bad, const char *why)
{
    dc_buf_t plain = {0};
    dc_error_t err = {0};
    assert_int_equal(open_sealed(k, context, sealed->data, sealed->len, 5000, &plain, &err), -1);
    assert_non_null(strstr(err.message, why));
    assert_int_equal(plain.len, first_bad * SEG);
    if (plain.len > 0)
        assert_memory_equal(plain.data, data, plain.len);
    dc_buf_free(&plain);
}

static void test_aead_tamper(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    size_t len = 3 * SEG + 100;
    uint8_t *data = make_data(len, 3);
    dc_buf_t sealed = seal(k, "ctx", data, len, 10000);
    /* header: magic, nonce base; each segment's ciphertext and tag */
    struct {
        size_t at;
        size_t first_bad;
        const char *why;
    } flips[] = {
        {0, 0, "not an encrypted member"},
        {DC_AEAD_HEADER - 1, 0, "segment 0 does not authenticate"},
        {segment_at(0) + 5, 0, "segment 0 does not authenticate"},
        {segment_at(1) + SEG + 3, 1, "segment 1 does not authenticate"}, /* a tag */
        {segment_at(2) + 100, 2, "segment 2 does not authenticate"},
        {sealed.len - 1, 3, "segment 3 (the last) does not authenticate"},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        sealed.data[flips[i].at] ^= 0x01;
        expect_refused(k, "ctx", &sealed, data, flips[i].first_bad, flips[i].why);
        sealed.data[flips[i].at] ^= 0x01;
    }
    dc_buf_free(&sealed);
    free(data);
    dc_key_free(k);
}

static void test_aead_truncation(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    size_t len = 2 * SEG; /* two full segments: cutting the last leaves a valid-looking end */
    uint8_t *data = make_data(len, 4);
    dc_buf_t sealed = seal(k, "ctx", data, len, 3000);
    size_t full = sealed.len;
    sealed.len = segment_at(1); /* the last segment dropped: segment 0 is not the last */
    expect_refused(k, "ctx", &sealed, data, 0, "segment 0 (the last) does not authenticate");
    sealed.len = segment_at(1) + 10; /* inside the last segment's ... well, too short for a tag */
    expect_refused(k, "ctx", &sealed, data, 1, "truncated");
    sealed.len = full - 1;
    expect_refused(k, "ctx", &sealed, data, 1, "segment 1 (the last) does not authenticate");
    sealed.len = 10;
    expect_refused(k, "ctx", &sealed, data, 0, "truncated");
    sealed.len = 0;
    expect_refused(k, "ctx", &sealed, data, 0, "truncated");
    /* appended bytes: the real last segment is no longer last */
    sealed.len = full;
    dc_buf_append(&sealed, "x", 1);
    expect_refused(k, "ctx", &sealed, data, 1, "segment 1 does not authenticate");
    dc_buf_free(&sealed);
    free(data);
    dc_key_free(k);
}

static void test_aead_reorder(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    size_t len = 3 * SEG + 1;
    uint8_t *data = make_data(len, 5);
    dc_buf_t sealed = seal(k, "ctx", data, len, SEG);
    uint8_t *tmp = malloc(SEG + DC_AEAD_TAG);
    /* swap segments 0 and 1 */
    memcpy(tmp, sealed.data + segment_at(0), SEG + DC_AEAD_TAG);
    memmove(sealed.data + segment_at(0), sealed.data + segment_at(1), SEG + DC_AEAD_TAG);
    memcpy(sealed.data + segment_at(1), tmp, SEG + DC_AEAD_TAG);
    expect_refused(k, "ctx", &sealed, data, 0, "segment 0 does not authenticate");
    /* a segment repeated in place of the next */
    dc_buf_t again = seal(k, "ctx", data, len, SEG);
    memcpy(again.data + segment_at(2), again.data + segment_at(1), SEG + DC_AEAD_TAG);
    expect_refused(k, "ctx", &again, data, 2, "segment 2 does not authenticate");
    free(tmp);
    dc_buf_free(&sealed);
    dc_buf_free(&again);
    free(data);
    dc_key_free(k);
}

static void test_aead_wrong_key_or_context(void **state)
{
    (void)state;
    dc_key_t *k = key_from_hex(KEY_HEX);
    dc_key_t *other =
        key_from_hex("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100");
    uint8_t *data = make_data(1000, 6);
    dc_buf_t sealed = seal(k, "S1/data/1.1.copy.zst", data, 1000, 1000);
    expect_refused(other, "S1/data/1.1.copy.zst", &sealed, data, 0,
                   "segment 0 (the last) does not authenticate");
    /* the same bytes under another member's name or another snapshot */
    expect_refused(k, "S1/data/1.2.copy.zst", &sealed, data, 0, "does not authenticate");
    expect_refused(k, "S2/data/1.1.copy.zst", &sealed, data, 0, "does not authenticate");
    /* plaintext given to the opener */
    dc_buf_t plain = {0};
    dc_error_t err = {0};
    assert_int_equal(open_sealed(k, "x", data, 1000, 1000, &plain, &err), -1);
    assert_int_equal(plain.len, 0);
    dc_buf_free(&plain);
    dc_buf_free(&sealed);
    free(data);
    dc_key_free(k);
    dc_key_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_spellings),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_key_ids_and_subkeys),
        cmocka_unit_test(test_key_file_modes),
        cmocka_unit_test(test_hmac_filter),
        cmocka_unit_test(test_aead_round_trip),
        cmocka_unit_test(test_aead_fresh_nonce_and_reuse),
        cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_aead_truncation),
        cmocka_unit_test(test_aead_reorder),
        cmocka_unit_test(test_aead_wrong_key_or_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
