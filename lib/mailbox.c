// SPDX-License-Identifier: MIT
// Messages and the intrusive MPSC queue behind both mailbox lanes. A push is
// one atomic exchange plus one release store; a pop touches only the
// consumer's side until the queue runs dry. Small messages come from a
// per-scheduler-thread free list so the hot path rarely reaches malloc.
#include "troupe_impl.h"

#include <stdlib.h>
#include <string.h>

void
tp__mpscq_init(tp__mpscq *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
}

void
tp__mpscq_push(tp__mpscq *q, tp__node *n)
{
    // relaxed: n is not yet visible to anyone; the exchange below publishes.
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    // acq_rel: release publishes n's contents to the consumer; acquire
    // orders us after the previous producer so prev is fully initialised.
    tp__node *prev =
        atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    // release: the consumer's acquire load of prev->next then sees n whole.
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

// Returns the oldest node, or NULL when the queue is empty or when a
// producer is between its exchange and its link (the caller retries later).
tp__node *
tp__mpscq_pop(tp__mpscq *q)
{
    tp__node *tail = q->tail;
    // acquire: pairs with the producer's release store of the link.
    tp__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    // acquire: if head moved past tail, a producer is mid-push.
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    tp__mpscq_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

// ---- message allocation -------------------------------------------------

// One size class covers the header plus small payloads; it is what
// ping-pong style traffic uses. Larger messages go to malloc directly.
#define POOL_BLOCK 128
#define POOL_PAYLOAD (POOL_BLOCK - sizeof(tp__msg))
#define POOL_KEEP 8192

typedef struct pool_block {
    struct pool_block *next;
} pool_block;

static _Thread_local pool_block *pool_head;
static _Thread_local unsigned pool_len;

static tp__msg *
msg_alloc(size_t payload, uint32_t *pool)
{
    if (payload <= POOL_PAYLOAD) {
        *pool = 1;
        if (pool_head != NULL) {
            pool_block *b = pool_head;
            pool_head = b->next;
            pool_len--;
            return (tp__msg *)b;
        }
        return malloc(POOL_BLOCK);
    }
    *pool = 0;
    return malloc(sizeof(tp__msg) + payload);
}

tp__msg *
tp__msg_new_copy(uint32_t tag, tp_pid from, const void *data, size_t size)
{
    uint32_t pool;
    tp__msg *m = msg_alloc(size, &pool);
    if (m == NULL)
        return NULL;
    m->pub.tag = tag;
    m->pub.from = from;
    m->pub.size = size;
    m->pub.data = (const void *)(m + 1);
    m->kind = TP__MSG_USER;
    m->flags = 0;
    m->pool = pool;
    if (size > 0)
        memcpy(m + 1, data, size);
    return m;
}

tp__msg *
tp__msg_new_buf(uint32_t tag, tp_pid from, void *buf, size_t size)
{
    uint32_t pool;
    tp__msg *m = msg_alloc(0, &pool);
    if (m == NULL)
        return NULL;
    m->pub.tag = tag;
    m->pub.from = from;
    m->pub.size = size;
    m->pub.data = buf;
    m->kind = TP__MSG_USER;
    m->flags = TP__MSG_OWNS_BUF;
    m->pool = pool;
    return m;
}

tp__msg *
tp__msg_new_sys(uint16_t kind, tp_pid from)
{
    tp__msg *m = tp__msg_new_copy(0, from, NULL, 0);
    if (m != NULL)
        m->kind = kind;
    return m;
}

void
tp__msg_free(tp__msg *m)
{
    if (m == NULL)
        return;
    if (m->flags & TP__MSG_OWNS_BUF)
        free((void *)m->pub.data);
    // Only scheduler threads keep a pool: their lists are flushed when the
    // thread ends, so nothing cached can outlive the system.
    if (m->pool && tp__self.worker != NULL && pool_len < POOL_KEEP) {
        pool_block *b = (pool_block *)m;
        b->next = pool_head;
        pool_head = b;
        pool_len++;
        return;
    }
    free(m);
}

void
tp__msg_pool_flush(void)
{
    while (pool_head != NULL) {
        pool_block *b = pool_head;
        pool_head = b->next;
        free(b);
    }
    pool_len = 0;
}
