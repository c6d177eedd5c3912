/* A bounded hand-over of compressed chunks between threads: a fixed pool of reusable buffers
 * and a FIFO of filled ones, under one mutex. Memory is bounded by the pool, and a slow
 * consumer makes producers wait instead of buffering more. Backup workers produce chunks for
 * the archive writer; a parallel restore's archive reader produces them for its loaders. */
#ifndef DEPLOYCTL_CHUNK_QUEUE_H
#define DEPLOYCTL_CHUNK_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployctl/util.h"

typedef struct dc_chunk {
    dc_buf_t data;   /* compressed bytes */
    int kind;        /* what the chunk holds (the user's enum) */
    size_t index;    /* of its table or large object */
    size_t position; /* of the chunk within it */
    const void *ref; /* the user's description of it */
    uint64_t rows;
    uint64_t raw_bytes;
    char raw_sha256[65];
    struct dc_chunk *next;
} dc_chunk_t;

typedef struct dc_chunk_queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    dc_chunk_t *pool; /* all chunks, for freeing */
    size_t pool_size;
    dc_chunk_t *free_list;
    dc_chunk_t *ready_head;
    dc_chunk_t *ready_tail;
    int producers;
    bool aborted;
} dc_chunk_queue_t;

void dc_chunk_queue_init(dc_chunk_queue_t *q, size_t pool_size, size_t buffer_capacity,
                         int producers);
void dc_chunk_queue_destroy(dc_chunk_queue_t *q);
/* Blocks for a free chunk; NULL once aborted. */
dc_chunk_t *dc_chunk_queue_acquire(dc_chunk_queue_t *q);
void dc_chunk_queue_submit(dc_chunk_queue_t *q, dc_chunk_t *c);
void dc_chunk_queue_release(dc_chunk_queue_t *q, dc_chunk_t *c);
void dc_chunk_queue_producer_done(dc_chunk_queue_t *q);
void dc_chunk_queue_abort(dc_chunk_queue_t *q);
typedef enum {
    DC_QUEUE_CHUNK,
    DC_QUEUE_TIMEOUT,
    DC_QUEUE_DONE,
    DC_QUEUE_ABORTED
} dc_queue_status_t;
/* Waits up to timeout_ms (< 0: forever) for a filled chunk. */
dc_queue_status_t dc_chunk_queue_next(dc_chunk_queue_t *q, int timeout_ms, dc_chunk_t **out);

#endif
