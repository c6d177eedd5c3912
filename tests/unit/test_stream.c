/* Proves the filter chain: SHA-256 against the FIPS vectors, zstd compress -> decompress giving
 * back the same bytes as a standard zstd frame, chain reuse, and refusal of bad zstd input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "deployctl/stream.h"
#include "deployctl/util.h"

#define SHA256_ABC    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_448BIT "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define FIPS_448BIT   "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

/* ---- test data ---- */

static uint64_t rng_state;

static uint32_t next_random(void)
{
    /* xorshift64: deterministic, so a failure can be reproduced. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Mixed data: COPY-like text, long runs, and incompressible random stretches. */
static uint8_t *make_data(size_t size, uint64_t seed)
{
    uint8_t *data = malloc(size);
    assert_non_null(data);
    rng_state = seed;
    size_t pos = 0;
    unsigned row = 0;
    while (pos < size) {
        size_t piece = 1 + next_random() % 20000;
        if (piece > size - pos)
            piece = size - pos;
        switch (next_random() % 3) {
        case 0: /* text rows */
            for (size_t i = 0; i < piece;) {
                char line[64];
                int n = snprintf(line, sizeof(line), "%u\tuser-%u@example.com\t%u\n", row, row * 7u,
                                 next_random() % 1000);
                row++;
                for (int k = 0; k < n && i < piece; k++)
                    data[pos + i++] = (uint8_t)line[k];
            }
            break;
        case 1: /* a run */
            memset(data + pos, (int)(next_random() & 0xff), piece);
            break;
        default: /* noise */
            for (size_t i = 0; i < piece; i++)
                data[pos + i] = (uint8_t)next_random();
            break;
        }
        pos += piece;
    }
    return data;
}

/* Writes data into f in pieces of awkward sizes. */
static void write_in_pieces(dc_filter_t *f, const uint8_t *data, size_t len)
{
    static const size_t sizes[] = {1, 7, 4093, 65537, 13, 131071, 2, 999, 300007, 31};
    dc_error_t err = {0};
    size_t pos = 0;
    for (size_t i = 0; pos < len; i++) {
        size_t n = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
        if (n > len - pos)
            n = len - pos;
        if (dc_filter_write(f, data + pos, n, &err) != 0)
            fail_msg("write of %zu bytes at %zu failed: %s", n, pos, err.message);
        pos += n;
    }
}

/* ---- SHA-256 ---- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    dc_error_t err = {0};

    dc_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, SHA256_ABC);
    dc_sha256_hex("", 0, hex);
    assert_string_equal(hex, SHA256_EMPTY);
    dc_sha256_hex(FIPS_448BIT, strlen(FIPS_448BIT), hex);
    assert_string_equal(hex, SHA256_448BIT);

    /* Through the filter, in one piece and byte by byte. */
    dc_filter_t *sha = dc_filter_sha256_new(NULL);
    assert_non_null(sha);
    assert_int_equal(dc_filter_write(sha, "abc", 3, &err), 0);
    assert_int_equal(dc_filter_finish(sha, &err), 0);
    dc_filter_sha256_hex(sha, hex);
    assert_string_equal(hex, SHA256_ABC);

    dc_filter_reset_chain(sha);
    assert_int_equal(dc_filter_write(sha, "a", 1, &err), 0);
    assert_int_equal(dc_filter_write(sha, "", 0, &err), 0);
    assert_int_equal(dc_filter_write(sha, "b", 1, &err), 0);
    assert_int_equal(dc_filter_write(sha, "c", 1, &err), 0);
    assert_int_equal(dc_filter_finish(sha, &err), 0);
    dc_filter_sha256_hex(sha, hex);
    assert_string_equal(hex, SHA256_ABC);

    dc_filter_reset_chain(sha);
    assert_int_equal(dc_filter_finish(sha, &err), 0);
    dc_filter_sha256_hex(sha, hex);
    assert_string_equal(hex, SHA256_EMPTY);
    dc_filter_free_chain(sha);
}

static void test_sha256_passes_bytes_unchanged(void **state)
{
    (void)state;
    dc_error_t err = {0};
    dc_buf_t out = {0};
    dc_filter_t *sink = dc_filter_memory_sink_new(&out);
    dc_filter_t *count = dc_filter_count_new(sink);
    dc_filter_t *sha = dc_filter_sha256_new(count);
    assert_int_equal(dc_filter_write(sha, FIPS_448BIT, strlen(FIPS_448BIT), &err), 0);
    assert_int_equal(dc_filter_finish(sha, &err), 0);
    char hex[65];
    dc_filter_sha256_hex(sha, hex);
    assert_string_equal(hex, SHA256_448BIT);
    assert_int_equal(out.len, strlen(FIPS_448BIT));
    assert_memory_equal(out.data, FIPS_448BIT, out.len);
    assert_int_equal(dc_filter_count_bytes(count), strlen(FIPS_448BIT));
    dc_filter_free_chain(sha);
    dc_buf_free(&out);
}

/* ---- zstd ---- */

typedef struct pipeline {
    /* in -> sha -> count -> zstd -> count -> memory */
    dc_filter_t *head;
    dc_filter_t *in_sha;
    dc_filter_t *in_count;
    dc_filter_t *out_count;
    dc_filter_t *sink;
} pipeline_t;

static void compress_pipeline(pipeline_t *p, dc_buf_t *target)
{
    dc_error_t err = {0};
    p->sink = dc_filter_memory_sink_new(target);
    p->out_count = dc_filter_count_new(p->sink);
    dc_filter_t *z = dc_filter_zstd_compress_new(3, p->out_count, &err);
    if (z == NULL)
        fail_msg("zstd compressor: %s", err.message);
    p->in_count = dc_filter_count_new(z);
    p->in_sha = dc_filter_sha256_new(p->in_count);
    p->head = p->in_sha;
}

static void decompress_pipeline(pipeline_t *p, dc_buf_t *target)
{
    /* zstd -> count -> sha -> memory */
    dc_error_t err = {0};
    p->sink = dc_filter_memory_sink_new(target);
    p->in_sha = dc_filter_sha256_new(p->sink);
    p->out_count = dc_filter_count_new(p->in_sha);
    p->head = dc_filter_zstd_decompress_new(p->out_count, &err);
    if (p->head == NULL)
        fail_msg("zstd decompressor: %s", err.message);
    p->in_count = NULL;
}

/* Ends a decompression whose input was a whole, valid frame. */
static void finish_decompression(pipeline_t *d)
{
    dc_error_t err = {0};
    int rc = dc_filter_finish(d->head, &err);
    if (rc != 0)
        fail_msg("decompress finish: %s", err.message);
}

/* Decodes with libzstd's one-shot API: the frame must be a standard one, alone. */
static void check_standard_frame(const dc_buf_t *frame, const uint8_t *expected, size_t len)
{
    assert_int_equal(ZSTD_findFrameCompressedSize(frame->data, frame->len), frame->len);
    uint8_t *plain = malloc(len + 1);
    assert_non_null(plain);
    size_t n = ZSTD_decompress(plain, len + 1, frame->data, frame->len);
    if (ZSTD_isError(n))
        fail_msg("ZSTD_decompress: %s", ZSTD_getErrorName(n));
    assert_int_equal(n, len);
    assert_memory_equal(plain, expected, len);
    free(plain);
}

static void test_zstd_round_trip(void **state)
{
    (void)state;
    const size_t size = 5 * 1024 * 1024 + 12345;
    uint8_t *data = make_data(size, 0x9e3779b97f4a7c15ULL);
    char expected_sha[65];
    dc_sha256_hex(data, size, expected_sha);
    dc_error_t err = {0};

    dc_buf_t compressed = {0};
    pipeline_t c;
    compress_pipeline(&c, &compressed);
    write_in_pieces(c.head, data, size);
    if (dc_filter_finish(c.head, &err) != 0)
        fail_msg("compress finish: %s", err.message);

    char sha_in[65];
    dc_filter_sha256_hex(c.in_sha, sha_in);
    assert_string_equal(sha_in, expected_sha);
    assert_int_equal(dc_filter_count_bytes(c.in_count), size);
    assert_int_equal(dc_filter_count_bytes(c.out_count), compressed.len);
    assert_true(compressed.len > 0);
    assert_true(compressed.len < size); /* a third of the data is text or runs */

    check_standard_frame(&compressed, data, size);

    dc_buf_t plain = {0};
    pipeline_t d;
    decompress_pipeline(&d, &plain);
    write_in_pieces(d.head, (const uint8_t *)compressed.data, compressed.len);
    finish_decompression(&d);
    assert_int_equal(plain.len, size);
    assert_memory_equal(plain.data, data, size);
    assert_int_equal(dc_filter_count_bytes(d.out_count), size);
    char sha_out[65];
    dc_filter_sha256_hex(d.in_sha, sha_out);
    assert_string_equal(sha_out, expected_sha);

    dc_filter_free_chain(c.head);
    dc_filter_free_chain(d.head);
    dc_buf_free(&compressed);
    dc_buf_free(&plain);
    free(data);
}

static void test_zstd_reset_and_reuse(void **state)
{
    (void)state;
    dc_error_t err = {0};
    const size_t size1 = 300000, size2 = 123457;
    uint8_t *data1 = make_data(size1, 1);
    uint8_t *data2 = make_data(size2, 2);

    dc_buf_t frame1 = {0}, frame2 = {0};
    pipeline_t c;
    compress_pipeline(&c, &frame1);
    write_in_pieces(c.head, data1, size1);
    assert_int_equal(dc_filter_finish(c.head, &err), 0);

    dc_filter_reset_chain(c.head);
    dc_filter_memory_sink_set(c.sink, &frame2);
    write_in_pieces(c.head, data2, size2);
    assert_int_equal(dc_filter_finish(c.head, &err), 0);

    /* The second stream's results are its own: counters and hash start again. */
    char sha[65], expected[65];
    dc_filter_sha256_hex(c.in_sha, sha);
    dc_sha256_hex(data2, size2, expected);
    assert_string_equal(sha, expected);
    assert_int_equal(dc_filter_count_bytes(c.in_count), size2);
    assert_int_equal(dc_filter_count_bytes(c.out_count), frame2.len);
    check_standard_frame(&frame1, data1, size1);
    check_standard_frame(&frame2, data2, size2);

    /* The decompressor too, frame after frame. */
    dc_buf_t plain1 = {0}, plain2 = {0};
    pipeline_t d;
    decompress_pipeline(&d, &plain1);
    write_in_pieces(d.head, (const uint8_t *)frame1.data, frame1.len);
    finish_decompression(&d);
    dc_filter_reset_chain(d.head);
    dc_filter_memory_sink_set(d.sink, &plain2);
    write_in_pieces(d.head, (const uint8_t *)frame2.data, frame2.len);
    finish_decompression(&d);
    assert_int_equal(plain1.len, size1);
    assert_memory_equal(plain1.data, data1, size1);
    assert_int_equal(plain2.len, size2);
    assert_memory_equal(plain2.data, data2, size2);
    assert_int_equal(dc_filter_count_bytes(d.out_count), size2);
    dc_filter_sha256_hex(d.in_sha, sha);
    assert_string_equal(sha, expected);

    /* A reset after a failed stream: the decompressor is usable again. */
    dc_filter_reset_chain(d.head);
    dc_buf_t junk = {0};
    dc_filter_memory_sink_set(d.sink, &junk);
    assert_int_equal(dc_filter_write(d.head, frame1.data, frame1.len / 2, &err), 0);
    assert_int_equal(dc_filter_finish(d.head, &err), -1);
    dc_filter_reset_chain(d.head);
    dc_buf_t plain3 = {0};
    dc_filter_memory_sink_set(d.sink, &plain3);
    write_in_pieces(d.head, (const uint8_t *)frame2.data, frame2.len);
    finish_decompression(&d);
    assert_int_equal(plain3.len, size2);
    assert_memory_equal(plain3.data, data2, size2);

    dc_filter_free_chain(c.head);
    dc_filter_free_chain(d.head);
    dc_buf_free(&frame1);
    dc_buf_free(&frame2);
    dc_buf_free(&plain1);
    dc_buf_free(&plain2);
    dc_buf_free(&plain3);
    dc_buf_free(&junk);
    free(data1);
    free(data2);
}

static void test_zstd_empty_stream(void **state)
{
    (void)state;
    dc_error_t err = {0};
    dc_buf_t frame = {0};
    pipeline_t c;
    compress_pipeline(&c, &frame);
    assert_int_equal(dc_filter_finish(c.head, &err), 0);
    assert_true(frame.len > 0); /* an empty stream is still one frame */
    check_standard_frame(&frame, (const uint8_t *)"", 0);

    dc_buf_t plain = {0};
    pipeline_t d;
    decompress_pipeline(&d, &plain);
    write_in_pieces(d.head, (const uint8_t *)frame.data, frame.len);
    finish_decompression(&d);
    assert_int_equal(plain.len, 0);
    dc_filter_free_chain(c.head);
    dc_filter_free_chain(d.head);
    dc_buf_free(&frame);
    dc_buf_free(&plain);
}

/* Compresses data into a fresh frame. */
static void compress_all(const uint8_t *data, size_t len, dc_buf_t *frame)
{
    dc_error_t err = {0};
    pipeline_t c;
    compress_pipeline(&c, frame);
    write_in_pieces(c.head, data, len);
    assert_int_equal(dc_filter_finish(c.head, &err), 0);
    dc_filter_free_chain(c.head);
}

/* Feeds input to a new decompressor; returns 0 or -1 and the error of the step that failed. */
static int decompress_all(const void *input, size_t len, dc_buf_t *plain, dc_error_t *err,
                          bool *failed_at_finish)
{
    dc_filter_t *sink = dc_filter_memory_sink_new(plain);
    dc_filter_t *z = dc_filter_zstd_decompress_new(sink, err);
    assert_non_null(z);
    int rc = dc_filter_write(z, input, len, err);
    *failed_at_finish = false;
    if (rc == 0) {
        rc = dc_filter_finish(z, err);
        *failed_at_finish = rc != 0;
    }
    dc_filter_free_chain(z);
    return rc;
}

static void test_zstd_truncated(void **state)
{
    (void)state;
    const size_t size = 200000;
    uint8_t *data = make_data(size, 3);
    dc_buf_t frame = {0};
    compress_all(data, size, &frame);

    /* Cut anywhere: at the end (the checksum), in the middle, just after the header. */
    const size_t cuts[] = {frame.len - 1, frame.len - 4, frame.len / 2, 6};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        dc_buf_t plain = {0};
        dc_error_t err = {0};
        bool at_finish = false;
        int rc = decompress_all(frame.data, cuts[i], &plain, &err, &at_finish);
        if (rc != -1)
            fail_msg("a frame cut at %zu of %zu was accepted", cuts[i], frame.len);
        assert_true(at_finish);
        if (strstr(err.message, "truncated") == NULL)
            fail_msg("cut at %zu: message does not say truncated: %s", cuts[i], err.message);
        dc_buf_free(&plain);
    }
    dc_buf_free(&frame);
    free(data);
}

static void test_zstd_garbage_and_corruption(void **state)
{
    (void)state;
    dc_buf_t plain = {0};
    dc_error_t err = {0};
    bool at_finish;

    /* Not zstd at all. */
    char garbage[4096];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)("garbage!"[i % 8]);
    assert_int_equal(decompress_all(garbage, sizeof(garbage), &plain, &err, &at_finish), -1);
    assert_true(err.message[0] != '\0');
    dc_buf_free(&plain);

    /* Plain text that looks like COPY output. */
    const char *text = "1\tAlice\n2\tBob\n";
    dc_error_clear(&err);
    assert_int_equal(decompress_all(text, strlen(text), &plain, &err, &at_finish), -1);
    assert_true(err.message[0] != '\0');
    dc_buf_free(&plain);

    /* A real frame with one byte flipped in the middle (the frame carries a checksum). */
    const size_t size = 100000;
    uint8_t *data = make_data(size, 4);
    dc_buf_t frame = {0};
    compress_all(data, size, &frame);
    frame.data[frame.len / 2] ^= 0x40;
    dc_error_clear(&err);
    int rc = decompress_all(frame.data, frame.len, &plain, &err, &at_finish);
    if (rc == 0 && plain.len == size && memcmp(plain.data, data, size) == 0)
        fail_msg("flipping a byte changed nothing?");
    assert_int_equal(rc, -1);
    assert_true(err.message[0] != '\0');
    dc_buf_free(&plain);

    /* A whole frame followed by trailing junk. */
    frame.data[frame.len / 2] ^= 0x40;
    dc_buf_append(&frame, "junk", 4);
    dc_error_clear(&err);
    assert_int_equal(decompress_all(frame.data, frame.len, &plain, &err, &at_finish), -1);
    assert_true(err.message[0] != '\0');
    dc_buf_free(&plain);

    dc_buf_free(&frame);
    free(data);
}

static void test_zstd_empty_input_fails(void **state)
{
    (void)state;
    dc_buf_t plain = {0};
    dc_error_t err = {0};
    bool at_finish = false;
    assert_int_equal(decompress_all("", 0, &plain, &err, &at_finish), -1);
    assert_true(at_finish);
    assert_true(err.message[0] != '\0');
    assert_int_equal(plain.len, 0);
    dc_buf_free(&plain);
}

/* ---- sinks ---- */

typedef struct capture {
    dc_buf_t buf;
    int calls;
    int fail_after;
} capture_t;

static int capture_fn(void *ctx, const uint8_t *data, size_t len, dc_error_t *err)
{
    capture_t *c = ctx;
    if (++c->calls > c->fail_after)
        return dc_error_set(err, "sink refused piece %d", c->calls);
    dc_buf_append(&c->buf, data, len);
    return 0;
}

/* Frames whose content fills the decoder's output buffer exactly (or a multiple of it): once
 * the frame is complete, asking the decoder again would only return the next frame's header
 * size, which must not be taken for a truncated frame. */
static void test_zstd_output_buffer_boundaries(void **state)
{
    (void)state;
    size_t sizes[] = {ZSTD_DStreamOutSize(), 2 * ZSTD_DStreamOutSize(), ZSTD_DStreamOutSize() - 1,
                      ZSTD_DStreamOutSize() + 1};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        uint8_t *raw = malloc(n);
        assert_non_null(raw);
        for (size_t i = 0; i < n; i++)
            raw[i] = (uint8_t)((i * 2654435761u) >> 13); /* poorly compressible */
        size_t cap = ZSTD_compressBound(n);
        uint8_t *frame = malloc(cap);
        assert_non_null(frame);
        size_t flen = ZSTD_compress(frame, cap, raw, n, 1);
        assert_false(ZSTD_isError(flen));
        dc_buf_t out = {0};
        dc_error_t err = {0};
        dc_filter_t *d = dc_filter_zstd_decompress_new(dc_filter_memory_sink_new(&out), &err);
        assert_non_null(d);
        assert_int_equal(dc_filter_write(d, frame, flen, &err), 0);
        if (dc_filter_finish(d, &err) != 0)
            fail_msg("a complete %zu-byte frame was refused: %s", n, err.message);
        assert_int_equal(out.len, n);
        assert_memory_equal(out.data, raw, n);
        dc_filter_free_chain(d);
        dc_buf_free(&out);
        free(frame);
        free(raw);
    }
}

static void test_callback_sink_and_errors(void **state)
{
    (void)state;
    dc_error_t err = {0};
    capture_t cap = {{0}, 0, 2};
    dc_filter_t *count = dc_filter_count_new(dc_filter_callback_sink_new(capture_fn, &cap));
    assert_int_equal(dc_filter_write(count, "one", 3, &err), 0);
    assert_int_equal(dc_filter_write(count, "two", 3, &err), 0);
    assert_int_equal(dc_filter_write(count, "three", 5, &err), -1);
    assert_string_equal(err.message, "sink refused piece 3");
    assert_int_equal(cap.buf.len, 6);
    assert_memory_equal(cap.buf.data, "onetwo", 6);
    dc_filter_free_chain(count);
    dc_buf_free(&cap.buf);

    /* An error from the sink reaches the caller through zstd as well. */
    capture_t cap2 = {{0}, 0, 0};
    dc_filter_t *z =
        dc_filter_zstd_compress_new(1, dc_filter_callback_sink_new(capture_fn, &cap2), &err);
    assert_non_null(z);
    dc_error_clear(&err);
    int rc = dc_filter_write(z, "hello", 5, &err);
    if (rc == 0)
        rc = dc_filter_finish(z, &err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.message, "sink refused"));
    dc_filter_free_chain(z);
    dc_buf_free(&cap2.buf);

    /* The null sink swallows everything. */
    dc_filter_t *null_count = dc_filter_count_new(dc_filter_null_sink_new());
    assert_int_equal(dc_filter_write(null_count, "abc", 3, &err), 0);
    assert_int_equal(dc_filter_finish(null_count, &err), 0);
    assert_int_equal(dc_filter_count_bytes(null_count), 3);
    dc_filter_free_chain(null_count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_passes_bytes_unchanged),
        cmocka_unit_test(test_zstd_round_trip),
        cmocka_unit_test(test_zstd_reset_and_reuse),
        cmocka_unit_test(test_zstd_empty_stream),
        cmocka_unit_test(test_zstd_truncated),
        cmocka_unit_test(test_zstd_garbage_and_corruption),
        cmocka_unit_test(test_zstd_empty_input_fails),
        cmocka_unit_test(test_zstd_output_buffer_boundaries),
        cmocka_unit_test(test_callback_sink_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
