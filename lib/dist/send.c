// SPDX-License-Identifier: MIT
// Sending to peers, from any thread. A peer's send queue is a proxy: an
// actor record that never runs but whose mailbox holds frames already
// encoded by the sending thread. Putting a frame there goes through the
// same capacity, overflow policies and muting as a local send, so a slow
// peer pushes back on local senders exactly as a slow actor would. When
// the proxy's counter leaves zero the I/O thread is woken (once, not per
// message); it copies queued frames into the connection's output buffer
// (output.c). Frames sent from an actor's callback wake nobody: the worker
// writes them itself, in one batch, when the activation ends (corking).
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

void
tp__peer_kick(tp__dist *n, tp__peer *p)
{
    // release: the flag is read after the async wakes the I/O thread.
    atomic_store_explicit(&p->kicked, 1, memory_order_release);
    tp__io_wake(n->io);
}

// ---- corking: an activation's remote sends leave when it ends ----------
//
// A frame that an actor's callback puts into an idle peer queue does not
// wake the I/O thread: the worker notes the peer, and when the activation
// ends (tp__node_uncork, from the scheduler) or CORK_FRAMES frames later it
// moves what is queued into the connection's output itself and writes it
// with one send(), if the I/O thread is waiting for events and nothing is
// pending before it; otherwise it wakes the I/O thread as any sender does.
// A stream of small messages so costs one system call per batch instead of
// one per message, and a reply in a ping-pong still leaves at once, from
// the replying thread, with no other thread woken.

#define CORK_FRAMES 512 // frames after which an activation writes early

// TP__CORK_PEERS (dist.h): peers one activation may hold back;
// more wake the I/O thread.
_Thread_local tp__corkset tp__corked;

// Whether remote sends on this thread wait for the activation's end.
static bool
corking(tp_system *sys)
{
    tp__worker *w = tp__self.worker;
    return w != NULL && w->sys == sys && tp__self.actor != NULL;
}

// Holds back the wake-up for `p`'s queue, which just left empty. Returns
// false when the caller must wake the I/O thread now.
static bool
cork_add(tp__peer *p)
{
    if (!corking(p->node->sys))
        return false;
    tp__corkset *k = &tp__corked;
    for (unsigned i = 0; i < k->npeers; i++)
        if (k->peers[i] == p)
            return true;
    if (k->npeers == TP__CORK_PEERS)
        return false;
    k->peers[k->npeers++] = p;
    return true;
}

// Writes what `c` has buffered with one non-blocking send, from a thread
// holding the I/O lock while the loop waits. Returns false when bytes are
// left for the I/O thread (flagged in want_flush).
static bool
send_now(tp__dist *n, tp__peer *p, conn *c)
{
    ssize_t w =
        tp__conn_write(c, c->out.p + c->out_off, c->out.len - c->out_off);
    if (w > 0) {
        c->out_off += (size_t)w;
        bump(&n->bytes_out, (uint64_t)w);
        bump(&p->bytes_out, (uint64_t)w);
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        return true;
    }
    // release: the I/O thread reads the buffer after it sees the flag.
    atomic_store_explicit(&p->want_flush, 1, memory_order_release);
    return false;
}

// Sends what `p`'s queue holds from this thread when the I/O thread is
// waiting and the connection has nothing pending; else wakes the I/O
// thread to do it.
static void
uncork_peer(tp__peer *p)
{
    tp__dist *n = p->node;
    // relaxed: a hint; the connection's state is checked under the lock.
    if (atomic_load_explicit(&p->state, memory_order_relaxed) != TP_PEER_UP ||
        pthread_mutex_trylock(&n->io->lock) != 0) {
        tp__peer_kick(n, p);
        return;
    }
    conn *c = p->conn;
    bool wake = true;
    if (c != NULL && c->st == C_UP && c->out.len == c->out_off) {
        uint32_t left;
        tp__peer_take(p, c, &left);
        wake = !send_now(n, p, c) || left != 0;
    }
    pthread_mutex_unlock(&n->io->lock);
    if (wake)
        tp__peer_kick(n, p);
}

void
tp__node_uncork(void)
{
    tp__corkset *k = &tp__corked;
    unsigned np = k->npeers;
    tp__peer *peers[TP__CORK_PEERS];
    memcpy(peers, k->peers, np * sizeof *peers);
    k->npeers = k->frames = 0;
    for (unsigned i = 0; i < np; i++)
        uncork_peer(peers[i]);
}

void
tp__node_kick(tp_actor *proxy)
{
    tp__peer *p = *(tp__peer **)tp__state(proxy);
    if (!cork_add(p))
        tp__peer_kick(p->node, p);
}

static int
wire_type(uint16_t kind)
{
    switch (kind) {
    case TP__MSG_USER:
        return TP__F_SEND;
    case TP__MSG_LINK:
        return TP__F_LINK;
    case TP__MSG_UNLINK:
        return TP__F_UNLINK;
    case TP__MSG_EXIT:
        return TP__F_EXIT;
    case TP__MSG_MONITOR:
        return TP__F_MONITOR;
    case TP__MSG_DEMONITOR:
        return TP__F_DEMONITOR;
    case TP__MSG_DOWN:
        return TP__F_DOWN;
    }
    return 0;
}

// Encodes `m` (to `to`, a pid on `e`'s node) as a frame in a new message.
static tp__msg *
encode(tp_system *sys, ent *e, tp_pid to, tp__msg *m, const char *name)
{
    int type = wire_type(m->kind);
    if (type == 0)
        return NULL;
    bool user = type == TP__F_SEND;
    uint64_t from = tp_pid_node(m->pub.from) == 0 ? m->pub.from.v : 0;
    uint32_t flags = (m->flags & TP__MSG_REPLY) ? TP__WF_REPLY : 0;
    size_t max =
        user && name == NULL
            ? tp__wire_send_size(e->inc, to.v & TP__NODE_REF_MASK, from,
                                 m->pub.tag, m->pub.ref, flags, m->pub.size)
        : user ? TP__WIRE_SEND_MAX(m->pub.size) + TP_NAME_MAX
               : TP__WIRE_SIG_MAX;
    tp__msg *f = tp__msg_new_raw(sys, max);
    if (f == NULL)
        return NULL;
    uint8_t *out = (uint8_t *)(f + 1);
    uint64_t ref = 0;
    size_t n;
    if (user) {
        ref = m->pub.ref;
        n = name ? tp__wire_send_name(out, name, from, m->pub.tag, ref, flags,
                                      m->pub.data, m->pub.size)
                 : tp__wire_send(out, e->inc, to.v & TP__NODE_REF_MASK, from,
                                 m->pub.tag, ref, flags, m->pub.data,
                                 m->pub.size);
    } else if (type == TP__F_EXIT || type == TP__F_DOWN) {
        const tp__signal *s = m->pub.data;
        ref = s->ref & TP__NODE_REF_MASK;
        n = tp__wire_signal(out, type, e->inc, to.v & TP__NODE_REF_MASK, from,
                            ref, s->reason, s->linked, s->text);
    } else {
        if (m->pub.size == sizeof ref)
            memcpy(&ref, m->pub.data, sizeof ref);
        n = tp__wire_signal(out, type, e->inc, to.v & TP__NODE_REF_MASK, from,
                            ref & TP__NODE_REF_MASK, 0, false, NULL);
    }
    f->pub.size = n;
    f->kind = m->kind;
    f->pub.from = m->pub.from;
    f->pub.ref = ref;
    f->aux = (void *)(uintptr_t)to.v;
    return f;
}

// Writes frame `f` straight to `p`'s socket from the sending thread when
// nothing is queued before it and the I/O thread is waiting for events:
// a round trip then wakes no thread but the receiver's. Returns false when
// the frame must go through the queue. Whatever the socket does not take
// at once stays in the output buffer, in order, for the I/O thread.
static bool
write_direct(tp__dist *n, tp__peer *p, tp__msg *f)
{
    tp_actor *q = p->proxy;
    // acquire: frames the I/O thread has taken are in the buffer before
    // their counts are given back.
    if (atomic_load_explicit(&p->state, memory_order_relaxed) != TP_PEER_UP ||
        TP__CNT_TOTAL(atomic_load_explicit(&q->count, memory_order_acquire)) !=
            0 ||
        pthread_mutex_trylock(&n->io->lock) != 0)
        return false;
    conn *c = p->conn;
    bool done = false;
    if (c != NULL && c->st == C_UP && c->out.len == c->out_off &&
        TP__CNT_TOTAL(atomic_load_explicit(&q->count, memory_order_acquire)) ==
            0) {
        ssize_t w = tp__conn_write(c, f->pub.data, f->pub.size);
        size_t sent = w > 0 ? (size_t)w : 0;
        if (sent < f->pub.size) {
            tp__wbuf_reserve(&c->out, f->pub.size - sent);
            if (!c->out.failed) {
                memcpy(c->out.p + c->out.len,
                       (const uint8_t *)f->pub.data + sent,
                       f->pub.size - sent);
                c->out.len += f->pub.size - sent;
            }
            atomic_store_explicit(&p->want_flush, 1, memory_order_release);
            tp__peer_kick(n, p);
        }
        if (sent > 0) {
            bump(&n->bytes_out, sent);
            bump(&p->bytes_out, sent);
        }
        bump(&p->sent, 1);
        bump(&n->frames_out, 1);
        done = true;
    }
    pthread_mutex_unlock(&n->io->lock);
    return done;
}

static int
enqueue(tp__peer *p, tp_actor *self, tp__msg *f, int mode)
{
    int st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st == TP_PEER_BACKOFF) {
        bump(&p->dropped, 1);
        return TP_ENOTCONN;
    }
    if (st == TP_PEER_IDLE &&
        !atomic_exchange_explicit(&p->want_connect, 1, memory_order_acq_rel))
        tp__peer_kick(p->node, p);
    return tp__proxy_put(p->proxy, self, f, mode);
}

int
tp__node_route(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m, int mode)
{
    tp__dist *n = node_of(sys);
    ent *e = n ? tp__ent_at(n, tp_pid_node(to)) : NULL;
    if (e == NULL)
        return TP_ENOACTOR;
    tp__peer *p = e->peer;
    uint32_t inc = atomic_load_explicit(&p->inc, memory_order_acquire);
    if (inc != 0 && inc != e->inc)
        return TP_ENOACTOR; // an actor of the peer's earlier life
    if ((m->flags & TP__MSG_TIMER) && !tp__timer_claim(m)) {
        tp__msg_free(m); // cancelled meanwhile
        return 0;
    }
    if (m->kind != TP__MSG_USER && mode != TP__ROUTE_SYS)
        mode = TP__ROUTE_SYS;
    tp__msg *f = encode(sys, e, to, m, NULL);
    if (f == NULL)
        return TP_ENOMEM;
    if (f->pub.size - 4 > n->cfg.max_frame) {
        tp__msg_free(f); // the peer would refuse it and drop the link
        return TP_EMSGSIZE;
    }
    bool cork = corking(sys);
    if (m->kind == TP__MSG_USER && !cork && write_direct(n, p, f)) {
        tp__msg_free(f);
        tp__msg_free(m);
        return 0;
    }
    int rc = enqueue(p, self, f, mode);
    if (rc == TP_ENOTCONN && m->kind != TP__MSG_USER) {
        tp__answer_lost(sys, m->kind, m->pub.from, to, f->pub.ref);
        tp__msg_free(f); // never queued
        tp__msg_free(m);
        return 0;
    }
    if (rc != 0) {
        tp__msg_free(f);
        return rc;
    }
    tp__msg_free(m);
    if (cork && tp__corked.npeers > 0 && ++tp__corked.frames >= CORK_FRAMES)
        tp__node_uncork();
    return 0;
}

static int
send_name_at(tp_system *sys, tp_actor *self, const char *name,
             const char *node, uint32_t tag, const void *data, size_t size)
{
    tp__dist *n = node_of(sys);
    if (name == NULL || node == NULL || tag >= TP_TAG_RESERVED ||
        (data == NULL && size > 0) || strnlen(name, TP_NAME_MAX + 1) == 0 ||
        strnlen(name, TP_NAME_MAX + 1) > TP_NAME_MAX)
        return TP_EINVAL;
    if (size > TP_MSG_MAX)
        return TP_EMSGSIZE;
    if (n == NULL || strcmp(node, n->name) == 0) {
        if (n == NULL && node[0] != 0)
            return TP_EINVAL;
        return self ? tp_send_name((tp_ctx *)self, name, tag, data, size)
                    : tp_system_send_name(sys, name, tag, data, size);
    }
    tp__peer *p;
    int rc = tp__peer_get(n, node, &p);
    if (rc != 0)
        return rc;
    tp_pid from = self ? self->pid : TP_PID_NIL;
    tp__msg *f = tp__msg_new_raw(sys, TP__WIRE_SEND_MAX(size) + TP_NAME_MAX);
    if (f == NULL)
        return TP_ENOMEM;
    f->pub.size = tp__wire_send_name((uint8_t *)(f + 1), name, from.v, tag, 0,
                                     0, data, size);
    if (f->pub.size - 4 > n->cfg.max_frame) {
        tp__msg_free(f);
        return TP_EMSGSIZE;
    }
    f->kind = TP__MSG_USER;
    f->pub.from = from;
    f->aux = NULL;
    for (unsigned round = 0;; round++) {
        rc = enqueue(p, self, f, TP__ROUTE_NORMAL);
        if (rc != TP__EWAIT || self != NULL)
            break;
        if (round > TP__NODE_SEND_WAIT_ROUNDS ||
            atomic_load_explicit(&sys->shutting_down, memory_order_acquire)) {
            rc = TP_ETIMEDOUT;
            break;
        }
        struct timespec ts = {0, TP__NODE_SEND_WAIT_NS};
        nanosleep(&ts, NULL);
    }
    if (rc != 0)
        tp__msg_free(f);
    return rc;
}

int
tp_send_name_at(tp_ctx *ctx, const char *name, const char *node, uint32_t tag,
                const void *data, size_t size)
{
    if (ctx == NULL)
        return TP_EINVAL;
    if (tp__self.actor != (tp_actor *)ctx)
        return TP_EPERM;
    tp_actor *a = (tp_actor *)ctx;
    return send_name_at(a->system, a, name, node, tag, data, size);
}

int
tp_system_send_name_at(tp_system *sys, const char *name, const char *node,
                       uint32_t tag, const void *data, size_t size)
{
    if (sys == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    return send_name_at(sys, NULL, name, node, tag, data, size);
}
