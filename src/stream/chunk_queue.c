/* The bounded hand-over of chunks between threads (see chunk_queue.h). */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "deployctl/chunk_queue.h"

void dc_chunk_queue_init(dc_chunk_queue_t *q, size_t pool_size, size_t buffer_capacity,
                         int producers)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->changed, &attr);
    pthread_condattr_destroy(&attr);
    q->pool = dc_calloc(pool_size, sizeof(dc_chunk_t));
    q->pool_size = pool_size;
    q->free_list = NULL;
    for (size_t i = 0; i < pool_size; i++) {
        /* Reserved up front so a chunk never grows by doubling past the bound. */
        q->pool[i].data.cap = buffer_capacity;
        q->pool[i].data.data = dc_malloc(buffer_capacity);
        q->pool[i].next = q->free_list;
        q->free_list = &q->pool[i];
    }
    q->ready_head = q->ready_tail = NULL;
    q->producers = producers;
    q->aborted = false;
}

void dc_chunk_queue_destroy(dc_chunk_queue_t *q)
{
    for (size_t i = 0; i < q->pool_size; i++)
        dc_buf_free(&q->pool[i].data);
    free(q->pool);
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->mu);
}

dc_chunk_t *dc_chunk_queue_acquire(dc_chunk_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->free_list == NULL && !q->aborted)
        pthread_cond_wait(&q->changed, &q->mu);
    dc_chunk_t *c = NULL;
    if (!q->aborted) {
        c = q->free_list;
        q->free_list = c->next;
        c->next = NULL;
        c->data.len = 0;
        c->rows = c->raw_bytes = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return c;
}

void dc_chunk_queue_submit(dc_chunk_queue_t *q, dc_chunk_t *c)
{
    pthread_mutex_lock(&q->mu);
    c->next = NULL;
    if (q->ready_tail)
        q->ready_tail->next = c;
    else
        q->ready_head = c;
    q->ready_tail = c;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

void dc_chunk_queue_release(dc_chunk_queue_t *q, dc_chunk_t *c)
{
    pthread_mutex_lock(&q->mu);
    c->next = q->free_list;
    q->free_list = c;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

void dc_chunk_queue_producer_done(dc_chunk_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->producers--;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

void dc_chunk_queue_abort(dc_chunk_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->aborted = true;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

dc_queue_status_t dc_chunk_queue_next(dc_chunk_queue_t *q, int timeout_ms, dc_chunk_t **out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    dc_queue_status_t status;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->aborted) {
            status = DC_QUEUE_ABORTED;
            break;
        }
        if (q->ready_head != NULL) {
            *out = q->ready_head;
            q->ready_head = q->ready_head->next;
            if (q->ready_head == NULL)
                q->ready_tail = NULL;
            status = DC_QUEUE_CHUNK;
            break;
        }
        if (q->producers == 0) {
            status = DC_QUEUE_DONE;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->changed, &q->mu);
        } else if (pthread_cond_timedwait(&q->changed, &q->mu, &deadline) == ETIMEDOUT) {
            status = DC_QUEUE_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return status;
}
