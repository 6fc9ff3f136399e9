// SPDX-License-Identifier: MIT
// Messages and the intrusive MPSC queue behind both mailbox lanes. A push is
// one atomic exchange plus one release store; a pop touches only the
// consumer's side until the queue runs dry. Small messages come from a
// per-scheduler-thread free list so the hot path rarely reaches malloc.
#include "core/core.h"

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

// Pushes the nodes first..last, already linked in order through `next`
// by the caller (relaxed stores will do: the exchange publishes them), as
// one: the consumer sees them in that order, after earlier pushes.
void
tp__mpscq_push_chain(tp__mpscq *q, tp__node *first, tp__node *last)
{
    // relaxed: as in tp__mpscq_push.
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    // acq_rel: as in tp__mpscq_push; the release also covers the links
    // the caller stored between first and last.
    tp__node *prev =
        atomic_exchange_explicit(&q->head, last, memory_order_acq_rel);
    // release: the consumer's acquire load of prev->next sees the chain.
    atomic_store_explicit(&prev->next, first, memory_order_release);
}

// The consumer side of a mailbox lane. A popped message stays linked as the
// queue's stub until the next pop frees it, so a lane never has to put its
// own stub back (which would cost an extra atomic exchange each time a
// lane runs dry). Returns NULL when the lane is empty or when a producer is
// between its exchange and its link (the caller retries later). The caller
// retires each message (tp__msg_retire) before popping the next.
tp__msg *
tp__mailbox_pop(tp__mpscq *q)
{
    tp__node *tail = q->tail;
    // acquire: pairs with the producer's release store of the link.
    tp__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next == NULL)
        return NULL;
    q->tail = next;
    if (tail != &q->stub)
        tp__msg_free((tp__msg *)tail);
    return (tp__msg *)next;
}

// Frees the message a lane still holds as its stub. No producer may push.
void
tp__mailbox_close(tp__mpscq *q)
{
    // Drained, and no producer between its exchange and its link. relaxed:
    // no producer is left to order against.
    TP_ASSERT(
        atomic_load_explicit(&q->head, memory_order_relaxed) == q->tail &&
        atomic_load_explicit(&q->tail->next, memory_order_relaxed) == NULL);
    if (q->tail != &q->stub)
        tp__msg_free((tp__msg *)q->tail);
    tp__mpscq_init(q);
}

// ---- release hooks ------------------------------------------------------

static _Atomic(tp__msg_release_fn) releasers[TP__REL_N];

void
tp__msg_on_release(int which, tp__msg_release_fn fn)
{
    TP_ASSERT(which >= 0 && which < TP__REL_N && fn != NULL);
    // release: pairs with release_hook's acquire; the subsystem registers
    // before it makes a message with the flag, so the hook is always there.
    atomic_store_explicit(&releasers[which], fn, memory_order_release);
}

// Calls the hook of class `which` on `m`: rare, only for flagged messages.
static void
release_hook(int which, tp__msg *m)
{
    // acquire: pairs with tp__msg_on_release.
    tp__msg_release_fn fn =
        atomic_load_explicit(&releasers[which], memory_order_acquire);
    TP_ASSERT(fn != NULL); // flagged only by a subsystem that registered
    fn(m);
}

#define UPPER_FLAGS                                                           \
    (TP__MSG_INFO_REQ | TP__MSG_SOCK_DATA | TP__MSG_SOCK_START |              \
     TP__MSG_TIMER | TP__MSG_UPGRADE_REQ)

// Lets the upper subsystems release what `m` holds of theirs.
static void
release_upper(tp__msg *m)
{
    if (m->flags & TP__MSG_INFO_REQ)
        release_hook(TP__REL_INFO, m);
    if (m->flags & (TP__MSG_SOCK_DATA | TP__MSG_SOCK_START))
        release_hook(TP__REL_SOCK, m);
    if (m->flags & TP__MSG_TIMER) {
        m->flags &= (uint16_t)~TP__MSG_TIMER;
        release_hook(TP__REL_TIMER, m);
    }
    if (m->flags & TP__MSG_UPGRADE_REQ) {
        m->flags &= (uint16_t)~TP__MSG_UPGRADE_REQ;
        tp__upgrade_msg_gone(m);
    }
}

// Releases what a handled message owns except the block itself, which the
// lane keeps until its next pop.
void
tp__msg_retire(tp__msg *m)
{
    if (__builtin_expect(m->flags & UPPER_FLAGS, 0))
        release_upper(m);
    if (m->flags & TP__MSG_OWNS_BUF) {
        free((void *)m->pub.data);
        m->flags &= (uint16_t)~TP__MSG_OWNS_BUF;
    }
}

// ---- message allocation -------------------------------------------------

// One size class covers the header plus small payloads, which is what most
// traffic carries; larger messages go to malloc directly. Each pooled block
// is malloc'ed on its own, so any thread may also release it with free().
#define POOL_BLOCK 128
#define POOL_PAYLOAD (POOL_BLOCK - sizeof(tp__msg))
#define POOL_KEEP 16384 // blocks a worker keeps before returning to malloc
#define POOL_BATCH 64   // blocks returned to another worker at once

// The I/O thread allocates every message that arrives from a peer and a
// worker frees it, so it has a pool too: a worker record that only its
// pool fields are used of, with index `nworkers`. Each pool therefore
// keeps a pending batch for nworkers + 1 origins.
int
tp__pool_init(tp__worker *w, unsigned nworkers)
{
    w->pending = calloc(nworkers + 1, sizeof *w->pending);
    w->victims = calloc(nworkers, sizeof *w->victims);
    return w->pending && w->victims ? 0 : TP_ENOMEM;
}

static void
free_list(tp__pool_block *b)
{
    while (b != NULL) {
        tp__pool_block *next = b->next;
        free(b);
        b = next;
    }
}

// Frees every block a worker holds; no scheduler thread may run.
void
tp__pool_free_all(tp__worker *w, unsigned nworkers)
{
    free_list(w->pool);
    w->pool = NULL;
    w->pool_len = 0;
    atomic_store_explicit(&w->remote_len, 0, memory_order_relaxed);
    free_list(
        // acquire: pairs with pool_return's release CAS: the links are seen.
        atomic_exchange_explicit(&w->remote, NULL, memory_order_acquire));
    for (unsigned i = 0; w->pending != NULL && i <= nworkers; i++)
        free_list(w->pending[i].head);
    free(w->pending);
    w->pending = NULL;
    free(w->victims);
    w->victims = NULL;
    tp__wait_rows_free(w);
    tp__recs_free_all(w);
}

// The I/O thread's pool record, for the I/O thread of `sys`; NULL when
// out of memory (its thread then allocates with malloc). Its blocks go
// back to malloc in tp__pool_io_free, once no thread of the system runs.
tp__worker *
tp__pool_io_new(tp_system *sys)
{
    // Cache-line aligned, as tp__worker's fields are declared.
    size_t size = (sizeof(tp__worker) + TP__CACHELINE - 1) &
                  ~(size_t)(TP__CACHELINE - 1);
    tp__worker *w = aligned_alloc(TP__CACHELINE, size);
    if (w == NULL)
        return NULL;
    memset(w, 0, size);
    w->sys = sys;
    w->index = sys->nworkers;
    if (tp__pool_init(w, sys->nworkers) != 0) {
        tp__pool_free_all(w, sys->nworkers);
        free(w);
        return NULL;
    }
    return w;
}

void
tp__pool_io_free(tp__worker **wp)
{
    tp__worker *w = *wp;
    if (w == NULL)
        return;
    tp__pool_free_all(w, w->sys->nworkers);
    free(w);
    *wp = NULL;
}

// The pool this thread allocates from and frees into: its worker's, or
// the I/O thread's; NULL on any other thread.
static inline tp__worker *
thread_pool(void)
{
    return tp__self.worker != NULL ? tp__self.worker : tp__self.io_pool;
}

static tp__worker *
pool_owner(tp_system *sys)
{
    tp__worker *w = thread_pool();
    return w != NULL && w->sys == sys ? w : NULL;
}

static tp__msg *
msg_alloc(tp_system *sys, size_t payload)
{
    tp__worker *w;
    if (payload > POOL_PAYLOAD || (w = pool_owner(sys)) == NULL) {
        tp__msg *m = malloc(sizeof(tp__msg) + payload);
        if (m != NULL)
            m->origin = NULL;
        return m;
    }
    // relaxed on `remote`: a hint; the exchange below takes it with acquire.
    if (w->pool == NULL &&
        atomic_load_explicit(&w->remote, memory_order_relaxed) != NULL) {
        // acquire: pairs with the release CAS of the returning worker.
        w->pool =
            atomic_exchange_explicit(&w->remote, NULL, memory_order_acquire);
        // relaxed: only bounds caching. A returner between its push and
        // its count leaves this count short by its batch and the next one
        // long by as much (or, its count seen before its push, the other
        // way round); an empty pool counts 0, so that never adds up.
        // (Guessing half of POOL_KEEP here instead left a worker whose
        // blocks were ever returned caching half as many: 40 % of spawn's
        // messages at 2 threads went through malloc.)
        w->pool_len =
            atomic_exchange_explicit(&w->remote_len, 0, memory_order_relaxed);
    }
    tp__msg *m;
    if (w->pool != NULL) {
        m = (tp__msg *)w->pool;
        w->pool = w->pool->next;
        w->pool_len =
            w->pool == NULL || w->pool_len == 0 ? 0 : w->pool_len - 1;
    } else if ((m = malloc(POOL_BLOCK)) == NULL) {
        return NULL;
    }
    m->origin = w;
    return m;
}

// Hands a batch of blocks back to the worker they came from.
static void
pool_return(tp__worker *origin, tp__pool_batch *b)
{
    // relaxed: the CAS below publishes with release; a stale head fails it.
    tp__pool_block *head =
        atomic_load_explicit(&origin->remote, memory_order_relaxed);
    do {
        b->tail->next = head;
        // release: the owner's acquire exchange sees the links.
    } while (!atomic_compare_exchange_weak_explicit(
        &origin->remote, &head, b->head, memory_order_release,
        memory_order_relaxed));
    // relaxed: a count for the owner's bound on caching (see msg_alloc).
    atomic_fetch_add_explicit(&origin->remote_len, b->len,
                              memory_order_relaxed);
    b->head = b->tail = NULL;
    b->len = 0;
}

static void
msg_release(tp__msg *m)
{
    tp__worker *origin = m->origin;
    tp__worker *w = thread_pool();
    if (origin == NULL || w == NULL || w->sys != origin->sys) {
        free(m);
        return;
    }
    tp__pool_block *b = (tp__pool_block *)m;
    if (origin == w) {
        if (w->pool_len >= POOL_KEEP) {
            free(m);
            return;
        }
        b->next = w->pool;
        w->pool = b;
        w->pool_len++;
        return;
    }
    tp__pool_batch *p = &w->pending[origin->index];
    b->next = p->head;
    p->head = b;
    if (p->tail == NULL)
        p->tail = b;
    if (++p->len == POOL_BATCH)
        pool_return(origin, p);
}

// A payload that fits a pool block travels inline; a larger one gets a
// buffer of its own (TP__MSG_OWNS_BUF), which tp__msg_retire frees as soon
// as the message is handled. A lane keeps its last message as its stub
// (see tp__mailbox_pop), so a stub never holds more than one pool block:
// an idle actor that was sent 16 MiB does not keep 16 MiB.
tp__msg *
tp__msg_new_copy(tp_system *sys, uint32_t tag, tp_pid from, const void *data,
                 size_t size)
{
    if (size > POOL_PAYLOAD) {
        void *buf = malloc(size);
        if (buf == NULL)
            return NULL;
        memcpy(buf, data, size);
        tp__msg *m = tp__msg_new_buf(sys, tag, from, buf, size);
        if (m == NULL)
            free(buf);
        return m;
    }
    tp__msg *m = msg_alloc(sys, size);
    if (m == NULL)
        return NULL;
    m->pub.tag = tag;
    m->pub.from = from;
    m->pub.size = size;
    m->pub.data = (const void *)(m + 1);
    m->pub.ref = 0;
    m->kind = TP__MSG_USER;
    m->flags = 0;
    m->aux = NULL;
    m->enq = 0;
    if (size > 0)
        memcpy(m + 1, data, size);
    return m;
}

tp__msg *
tp__msg_new_buf(tp_system *sys, uint32_t tag, tp_pid from, void *buf,
                size_t size)
{
    tp__msg *m = msg_alloc(sys, 0);
    if (m == NULL)
        return NULL;
    m->pub.tag = tag;
    m->pub.from = from;
    m->pub.size = size;
    m->pub.data = buf;
    m->pub.ref = 0;
    m->kind = TP__MSG_USER;
    m->flags = TP__MSG_OWNS_BUF;
    m->aux = NULL;
    m->enq = 0;
    return m;
}

// A message with `size` bytes of uninitialised inline payload. Inline
// whatever its size: the distribution layer writes frames right after the
// header. Such a message stays allocated, payload and all, while a lane
// keeps it as its stub, so it is for frames and other short-lived queues,
// not for what an actor's mailbox receives in bulk.
tp__msg *
tp__msg_new_raw(tp_system *sys, size_t size)
{
    tp__msg *m = msg_alloc(sys, size);
    if (m == NULL)
        return NULL;
    m->pub.tag = 0;
    m->pub.from = TP_PID_NIL;
    m->pub.size = size;
    m->pub.data = (const void *)(m + 1);
    m->pub.ref = 0;
    m->kind = TP__MSG_USER;
    m->flags = 0;
    m->aux = NULL;
    m->enq = 0;
    return m;
}

tp__msg *
tp__msg_new_sys(tp_system *sys, uint16_t kind, tp_pid from)
{
    tp__msg *m = tp__msg_new_copy(sys, 0, from, NULL, 0);
    if (m != NULL)
        m->kind = kind;
    return m;
}

void
tp__msg_free(tp__msg *m)
{
    if (m == NULL)
        return;
    if (__builtin_expect(m->flags & UPPER_FLAGS, 0))
        release_upper(m);
    if (m->flags & TP__MSG_OWNS_BUF)
        free((void *)m->pub.data);
    msg_release(m);
}
