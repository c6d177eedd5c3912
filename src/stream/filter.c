/* The filter chain's plumbing and its simplest members: byte counting and the sinks
 * (discard, memory buffer, callback). Transforming filters live in their own files. */
#include <stdlib.h>
#include <string.h>

#include "deployctl/stream.h"

int dc_filter_write(dc_filter_t *f, const void *data, size_t len, dc_error_t *err)
{
    if (len == 0)
        return 0;
    return f->ops->process(f, data, len, err);
}

int dc_filter_finish(dc_filter_t *f, dc_error_t *err)
{
    return f->ops->finish(f, err);
}

void dc_filter_reset_chain(dc_filter_t *f)
{
    for (; f != NULL; f = f->next) {
        if (f->ops->reset)
            f->ops->reset(f);
    }
}

void dc_filter_free_chain(dc_filter_t *f)
{
    while (f != NULL) {
        dc_filter_t *next = f->next;
        f->ops->free(f);
        f = next;
    }
}

/* Default finish for pass-through filters and sinks: nothing buffered, finish downstream. */
static int finish_next(dc_filter_t *f, dc_error_t *err)
{
    return f->next ? dc_filter_finish(f->next, err) : 0;
}

static void free_plain(dc_filter_t *f)
{
    free(f);
}

/* ---- count ---- */

typedef struct count_filter {
    dc_filter_t base;
    uint64_t bytes;
} count_filter_t;

static int count_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    ((count_filter_t *)f)->bytes += len;
    return f->next ? dc_filter_write(f->next, data, len, err) : 0;
}

static void count_reset(dc_filter_t *f)
{
    ((count_filter_t *)f)->bytes = 0;
}

static const dc_filter_ops_t count_ops = {"count", count_process, finish_next, count_reset,
                                          free_plain};

dc_filter_t *dc_filter_count_new(dc_filter_t *next)
{
    count_filter_t *c = dc_calloc(1, sizeof(*c));
    c->base.ops = &count_ops;
    c->base.next = next;
    return &c->base;
}

uint64_t dc_filter_count_bytes(const dc_filter_t *f)
{
    return ((const count_filter_t *)f)->bytes;
}

/* ---- null sink ---- */

static int null_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    (void)f;
    (void)data;
    (void)len;
    (void)err;
    return 0;
}

static const dc_filter_ops_t null_ops = {"null", null_process, finish_next, NULL, free_plain};

dc_filter_t *dc_filter_null_sink_new(void)
{
    dc_filter_t *f = dc_calloc(1, sizeof(*f));
    f->ops = &null_ops;
    return f;
}

/* ---- memory sink ---- */

typedef struct memory_sink {
    dc_filter_t base;
    dc_buf_t *target;
} memory_sink_t;

static int memory_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    (void)err;
    dc_buf_append(((memory_sink_t *)f)->target, data, len);
    return 0;
}

static const dc_filter_ops_t memory_ops = {"memory", memory_process, finish_next, NULL, free_plain};

dc_filter_t *dc_filter_memory_sink_new(dc_buf_t *target)
{
    memory_sink_t *m = dc_calloc(1, sizeof(*m));
    m->base.ops = &memory_ops;
    m->target = target;
    return &m->base;
}

void dc_filter_memory_sink_set(dc_filter_t *f, dc_buf_t *target)
{
    ((memory_sink_t *)f)->target = target;
}

/* ---- callback sink ---- */

typedef struct callback_sink {
    dc_filter_t base;
    dc_sink_fn fn;
    void *ctx;
} callback_sink_t;

static int callback_process(dc_filter_t *f, const uint8_t *data, size_t len, dc_error_t *err)
{
    callback_sink_t *c = (callback_sink_t *)f;
    return c->fn(c->ctx, data, len, err);
}

static const dc_filter_ops_t callback_ops = {"callback", callback_process, finish_next, NULL,
                                             free_plain};

dc_filter_t *dc_filter_callback_sink_new(dc_sink_fn fn, void *ctx)
{
    callback_sink_t *c = dc_calloc(1, sizeof(*c));
    c->base.ops = &callback_ops;
    c->fn = fn;
    c->ctx = ctx;
    return &c->base;
}
