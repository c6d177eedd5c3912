/* zstd filters: compression (each stream becomes one zstd frame) and decompression (which
 * refuses a truncated frame). Output goes downstream in pieces of zstd's recommended size. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "deployctl/stream.h"

typedef struct zstd_filter {
    dc_filter_t base;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint8_t *out;
    size_t out_size;
    size_t frame_pending; /* decompression: nonzero while inside an unfinished frame */
    int level;
} zstd_filter_t;

static int push_output(zstd_filter_t *z, ZSTD_outBuffer *ob, dc_error_t *err)
{
    if (ob->pos > 0 && z->base.next && dc_filter_write(z->base.next, z->out, ob->pos, err) != 0)
        return -1;
    ob->pos = 0;
    return 0;
}

static int compress_run(zstd_filter_t *z, const uint8_t *data, size_t len, ZSTD_EndDirective op,
                        dc_error_t *err)
{
    ZSTD_inBuffer ib = {data, len, 0};
    for (;;) {
        ZSTD_outBuffer ob = {z->out, z->out_size, 0};
        size_t remaining = ZSTD_compressStream2(z->cctx, &ob, &ib, op);
        if (ZSTD_isError(remaining))
            return dc_error_set(err, "zstd compression failed: %s", ZSTD_getErrorName(remaining));
        if (push_output(z, &ob, err) != 0)
            return -1;
        if (op == ZSTD_e_continue ? ib.pos == ib.size : remaining == 0)
            return 0;
    }
}

static int compress_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    return compress_run((zstd_filter_t *)f, data, len, ZSTD_e_continue, err);
}

static int compress_finish(dc_filter_t *f, dc_error_t *err)
{
    if (compress_run((zstd_filter_t *)f, NULL, 0, ZSTD_e_end, err) != 0)
        return -1;
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void compress_reset(dc_filter_t *f)
{
    ZSTD_CCtx_reset(((zstd_filter_t *)f)->cctx, ZSTD_reset_session_only);
}

static void zstd_free(dc_filter_t *f)
{
    zstd_filter_t *z = (zstd_filter_t *)f;
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    free(z->out);
    free(z);
}

static const dc_filter_ops_t compress_ops = {"zstd-compress", compress_process, compress_finish,
                                             compress_reset, zstd_free};

dc_filter_t *dc_filter_zstd_compress_new(int level, dc_filter_t *next, dc_error_t *err)
{
    zstd_filter_t *z = dc_calloc(1, sizeof(*z));
    z->base.ops = &compress_ops;
    z->base.next = next;
    z->level = level;
    z->cctx = ZSTD_createCCtx();
    z->out_size = ZSTD_CStreamOutSize();
    z->out = dc_malloc(z->out_size);
    if (z->cctx == NULL ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1))) {
        zstd_free(&z->base);
        dc_error_set(err, "cannot set up zstd compression at level %d", level);
        return NULL;
    }
    return &z->base;
}

static int decompress_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    zstd_filter_t *z = (zstd_filter_t *)f;
    ZSTD_inBuffer ib = {data, len, 0};
    /* Until the input is consumed and the decoder has nothing more to give: a full output
     * buffer means it may hold more. */
    for (;;) {
        ZSTD_outBuffer ob = {z->out, z->out_size, 0};
        size_t hint = ZSTD_decompressStream(z->dctx, &ob, &ib);
        if (ZSTD_isError(hint))
            return dc_error_set(err, "corrupt zstd data: %s", ZSTD_getErrorName(hint));
        z->frame_pending = hint;
        bool full = ob.pos == ob.size;
        if (push_output(z, &ob, err) != 0)
            return -1;
        /* Done when the input is used up and the decoder holds nothing more: either the output
         * had room left, or the frame is complete (calling again would only ask for the next
         * frame's header). */
        if (ib.pos == ib.size && (!full || hint == 0))
            return 0;
    }
}

static int decompress_finish(dc_filter_t *f, dc_error_t *err)
{
    zstd_filter_t *z = (zstd_filter_t *)f;
    if (z->frame_pending != 0)
        return dc_error_set(err, "truncated zstd data: the frame ends early");
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void decompress_reset(dc_filter_t *f)
{
    zstd_filter_t *z = (zstd_filter_t *)f;
    ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
    z->frame_pending = 1; /* until a whole frame was seen */
}

static const dc_filter_ops_t decompress_ops = {"zstd-decompress", decompress_process,
                                               decompress_finish, decompress_reset, zstd_free};

dc_filter_t *dc_filter_zstd_decompress_new(dc_filter_t *next, dc_error_t *err)
{
    zstd_filter_t *z = dc_calloc(1, sizeof(*z));
    z->base.ops = &decompress_ops;
    z->base.next = next;
    z->dctx = ZSTD_createDCtx();
    z->frame_pending = 1;
    z->out_size = ZSTD_DStreamOutSize();
    z->out = dc_malloc(z->out_size);
    if (z->dctx == NULL) {
        zstd_free(&z->base);
        dc_error_set(err, "cannot set up zstd decompression");
        return NULL;
    }
    return &z->base;
}
