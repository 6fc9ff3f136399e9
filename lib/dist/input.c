// SPDX-License-Identifier: MIT
// Input, on the I/O thread: reading, splitting frames, handing
// pre-authentication frames to the handshake and delivering the rest.
// Messages from consecutive SEND frames for one actor enter its mailbox
// together; a connection whose receiver is full stops reading until the
// receiver drains, which wakes it as it would a muted sender.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Local pid from a peer-local pid value.
static tp_pid
from_remote(tp__peer *p, uint64_t v)
{
    if (v == 0)
        return TP_PID_NIL;
    uint16_t idx = atomic_load_explicit(&p->idx, memory_order_relaxed);
    return (tp_pid){((uint64_t)idx << TP__NODE_IDX_SHIFT) | v};
}

static void
send_direct_signal(conn *c, int type, uint64_t to, uint64_t from, uint64_t ref,
                   int reason, bool linked)
{
    tp__wbuf_reserve(&c->out, TP__WIRE_SIG_MAX);
    if (c->out.failed)
        return;
    c->out.len += tp__wire_signal(c->out.p + c->out.len, type, c->peer_inc, to,
                                  from, ref, reason, linked, NULL);
    bump(&c->peer->sent, 1);
    bump(&c->node->frames_out, 1);
}

// Messages from consecutive SEND frames for one actor, linked through
// their queue nodes, go into its mailbox together: one lookup, one
// reservation and one push for up to IN_BATCH of them, and the receiver
// wakes once for all. Only SEND frames that are not replies join a batch,
// and a batch is delivered before any other frame is handled, so frames
// still take effect in their order on the wire.
#define IN_BATCH 64

typedef struct inbatch {
    tp__msg *first, *last;
    tp_pid to;
    uint32_t n;
} inbatch;

static tp__msg *
chain_next(tp__msg *m)
{
    // relaxed: chains are built and read by the I/O thread alone.
    return (tp__msg *)atomic_load_explicit(&m->node.next,
                                           memory_order_relaxed);
}

void
tp__msg_chain_free(tp__msg *m)
{
    while (m != NULL) {
        tp__msg *next = chain_next(m);
        tp__msg_free(m);
        m = next;
    }
}

// Whether frame `f` may join batch `b` (or start one when it is empty).
static bool
batch_fits(const conn *c, const inbatch *b, const tp__frame *f)
{
    bool mine =
        c->st == C_UP && f->type == TP__F_SEND && !(f->flags & TP__WF_REPLY);
    return b->n == 0 ? mine : mine && f->to == b->to.v && b->n < IN_BATCH;
}

// Delivers the chain from `m` on to `to` one message at a time, as the
// frames would have been alone. Returns false when one finds the mailbox
// full under backpressure: it and the rest wait in c->stalled.
static bool
deliver_each(conn *c, tp_pid to, tp__msg *m)
{
    while (m != NULL) {
        tp__msg *next = chain_next(m); // a push overwrites the link
        int rc = tp__deliver_io(c->node->sys, to, m);
        if (rc == TP__EWAIT) {
            c->stalled = m;
            c->stalled_to = to;
            return false;
        }
        if (rc != 0) {
            tp__msg_free(m);
            bump(&c->peer->dropped, 1);
        }
        m = next;
    }
    return true;
}

// Delivers and empties batch `b`. Returns false when the receiver's
// mailbox is full under backpressure: the caller stalls.
static bool
batch_flush(conn *c, inbatch *b)
{
    if (b->n == 0)
        return true;
    tp__msg *first = b->first, *last = b->last;
    uint32_t n = b->n;
    b->first = b->last = NULL;
    b->n = 0;
    int rc = tp__deliver_io_chain(c->node->sys, b->to, first, last, n);
    if (rc == 0)
        return true;
    if (rc == TP_ENOACTOR) {
        tp__msg_chain_free(first);
        bump(&c->peer->dropped, n);
        return true;
    }
    return deliver_each(c, b->to, first); // TP_EFULL: not all fit
}

// Delivers a user message from a SEND frame, or adds it to batch `b` when
// batch_fits said it may. Returns false when the receiver's mailbox is
// full under backpressure: the caller stalls.
static bool
deliver_user(conn *c, const tp__frame *f, inbatch *b)
{
    tp__dist *n = c->node;
    tp__peer *p = c->peer;
    tp_pid to;
    if (f->type == TP__F_SEND_NAME) {
        char name[TP_NAME_MAX_WIRE];
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = 0;
        if (tp_whereis(n->sys, name, &to) != 0) {
            bump(&p->dropped, 1);
            return true;
        }
    } else {
        if (f->to_inc != n->inc) {
            bump(&p->dropped, 1); // for an earlier life of this node
            return true;
        }
        to = (tp_pid){f->to};
    }
    if (f->tag >= TP_TAG_RESERVED) {
        bump(&p->dropped, 1);
        return true;
    }
    tp__msg *m = tp__msg_new_copy(n->sys, f->tag, from_remote(p, f->from),
                                  f->payload, f->payload_len);
    if (m == NULL) {
        bump(&p->dropped, 1);
        return true;
    }
    m->pub.ref = f->ref;
    // relaxed: as in chain_next.
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    if (f->flags & TP__WF_REPLY) {
        // Past a full mailbox only on a pending request's credit;
        // otherwise it waits for room like any message.
        m->flags |= TP__MSG_REPLY;
        int rc = tp__deliver_reply(n->sys, NULL, to, m);
        if (rc == TP__EWAIT) {
            c->stalled = m;
            c->stalled_to = to;
            return false;
        }
        if (rc != 0) {
            tp__msg_free(m);
            bump(&p->dropped, 1);
        }
        return true;
    }
    if (f->type == TP__F_SEND_NAME)
        return deliver_each(c, to, m);
    if (b->n == 0) {
        b->first = m;
        b->to = to;
    } else {
        atomic_store_explicit(&b->last->node.next, &m->node,
                              memory_order_relaxed);
    }
    b->last = m;
    b->n++;
    return true;
}

// Pushes the link or monitor request `kind` (payload `ref`) of frame `f`
// from `from` to `to`. When `to` is not alive, answers the peer as the
// actor would have, with an exit signal or DOWN of reason noproc. Returns
// whether the request was pushed.
static bool
push_request(conn *c, const tp__frame *f, uint16_t kind, tp_pid to,
             tp_pid from, uint64_t ref)
{
    tp_system *sys = c->node->sys;
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &ref, sizeof ref);
    if (m == NULL)
        return false;
    m->kind = kind;
    if (tp__push_sys(sys, to, m) == 0)
        return true;
    tp__msg_free(m);
    if (kind == TP__MSG_LINK)
        send_direct_signal(c, TP__F_EXIT, f->from, f->to, 0, TP_REASON_NOPROC,
                           true);
    else
        send_direct_signal(c, TP__F_DOWN, f->from, f->to, f->ref,
                           TP_REASON_NOPROC, false);
    return false;
}

static void
handle_signal_frame(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    tp__peer *p = c->peer;
    tp_system *sys = n->sys;
    if (f->to_inc != n->inc)
        return; // an earlier life of this node: nothing there any more
    tp_pid to = {f->to}, from = from_remote(p, f->from);
    // Only an exit signal sent from outside any actor has no sender.
    if (f->from == 0 && (f->type != TP__F_EXIT || f->linked))
        return;
    uint16_t idx = atomic_load_explicit(&p->idx, memory_order_relaxed);
    switch (f->type) {
    case TP__F_LINK:
        if (push_request(c, f, TP__MSG_LINK, to, from, 0))
            tp__pairs_put(p, &p->links, tp__pair_key(to.v, from.v), to.v,
                          from.v, 0);
        return;
    case TP__F_UNLINK:
        tp__pairset_del(&p->links, tp__pair_key(to.v, from.v), NULL);
        tp__push_ref(sys, to, TP__MSG_UNLINK, from, 0);
        return;
    case TP__F_EXIT:
        if (f->linked)
            tp__pairset_del(&p->links, tp__pair_key(to.v, from.v), NULL);
        tp__push_signal(sys, to, TP__MSG_EXIT, from, 0, f->reason, f->linked,
                        (const char *)f->text, f->text_len);
        return;
    case TP__F_MONITOR: {
        uint64_t ref = ((uint64_t)idx << TP__NODE_IDX_SHIFT) | f->ref;
        if (push_request(c, f, TP__MSG_MONITOR, to, from, ref))
            tp__pairs_put(p, &p->mon_in, ref, to.v, from.v, ref);
        return;
    }
    case TP__F_DEMONITOR: {
        uint64_t ref = ((uint64_t)idx << TP__NODE_IDX_SHIFT) | f->ref;
        tp__pairset_del(&p->mon_in, ref, NULL);
        tp__push_ref(sys, to, TP__MSG_DEMONITOR, from, ref);
        return;
    }
    case TP__F_DOWN:
        if (f->ref != 0)
            tp__pairset_del(&p->mon_out, f->ref, NULL);
        tp__push_signal(sys, to, TP__MSG_DOWN, from, f->ref, f->reason, false,
                        (const char *)f->text, f->text_len);
        return;
    }
}

static void
reject(conn *c, const char *what, int why)
{
    bump(&c->node->rejected, 1);
    char buf[128];
    snprintf(buf, sizeof buf, "%s: %s", what, tp__wire_why(why));
    tp__conn_close(c, buf, true);
}

// One frame: FR_OK, FR_CLOSED (c is freed) or FR_STALLED.
enum { FR_OK, FR_CLOSED, FR_STALLED };

// Handles decoded frame `f`; a SEND frame may join batch `b`.
static int
handle_frame(conn *c, const tp__frame *f, inbatch *b)
{
    bump(&c->node->frames_in, 1);
    if (c->st != C_UP)
        return tp__handshake(c, f) ? FR_OK : FR_CLOSED;
    tp__peer *peer = c->peer;
    bump(&peer->received, 1);
    switch (f->type) {
    case TP__F_SEND:
    case TP__F_SEND_NAME:
        return deliver_user(c, f, b) ? FR_OK : FR_STALLED;
    case TP__F_PING:
        tp__wire_ping(&c->out, TP__F_PONG, f->stamp);
        return FR_OK;
    case TP__F_PONG: {
        uint64_t now = (uint64_t)(tp__dist_now_ns(c->node) / 1000);
        if (f->stamp <= now && now - f->stamp < UINT32_MAX)
            atomic_store_explicit(&peer->rtt_us, (uint32_t)(now - f->stamp),
                                  memory_order_relaxed);
        return FR_OK;
    }
    case TP__F_LINK:
    case TP__F_UNLINK:
    case TP__F_EXIT:
    case TP__F_MONITOR:
    case TP__F_DEMONITOR:
    case TP__F_DOWN:
        handle_signal_frame(c, f);
        return FR_OK;
    }
    bump(&c->node->rejected, 1);
    tp__conn_close(c, "handshake frame after authentication", true);
    return FR_CLOSED;
}

// Handles every whole frame in the input buffer. Returns false when the
// connection was closed. A frame is decoded before it is consumed: one
// that cannot join the batch waits, unconsumed, if delivering the batch
// before it stalls.
// Closes `c` for `why` once the messages batched before delivered: they
// came in good frames, and the batch is the only thing holding them.
static void
close_after_batch(conn *c, inbatch *b, const char *why)
{
    batch_flush(c, b); // a stall leaves them in c->stalled, freed with c
    tp__conn_close(c, why, true);
}

static bool
process_input(conn *c)
{
    tp__dist *n = c->node;
    inbatch b = {0};
    while (c->stalled == NULL && c->in_len - c->in_off >= 4) {
        const uint8_t *h = c->in + c->in_off;
        uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                       (uint32_t)h[2] << 8 | h[3];
        if (len == 0 || len > n->cfg.max_frame) {
            bump(&n->rejected, 1);
            char buf[96];
            snprintf(buf, sizeof buf, "frame length %u outside 1..%u", len,
                     n->cfg.max_frame);
            close_after_batch(c, &b, buf);
            return false;
        }
        if (c->st != C_UP && len > TP__NODE_HS_FRAME_MAX) {
            bump(&n->rejected, 1);
            close_after_batch(c, &b, "oversized handshake frame");
            return false;
        }
        if (c->in_len - c->in_off - 4 < len) {
            if (c->in_cap < (size_t)len + 4 && c->in_off == 0) {
                uint8_t *in = realloc(c->in, (size_t)len + 4);
                if (in == NULL) {
                    close_after_batch(c, &b, "out of memory");
                    return false;
                }
                c->in = in;
                c->in_cap = (size_t)len + 4;
            }
            break;
        }
        tp__frame f;
        int why = tp__wire_decode(h + 4, len, &f);
        if (why != TP__W_OK) {
            batch_flush(c, &b); // what came before still counts
            reject(c, "malformed frame", why);
            return false;
        }
        if (!batch_fits(c, &b, &f) && !batch_flush(c, &b))
            break;
        c->in_off += 4 + (size_t)len;
        int r = handle_frame(c, &f, &b);
        if (r == FR_CLOSED)
            return false;
        if (r == FR_STALLED)
            break;
    }
    batch_flush(c, &b); // a stall it meets leaves c->stalled set
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->out.len > c->out_off)
        return tp__conn_flush(c);
    return true;
}

// Stops reading from `c` until its stalled messages fit: the receiver
// calls tp__node_unstall once it drains below its low-water mark; the
// timer retries anyway, in case it died meanwhile.
static void
stall(conn *c)
{
    tp__conn_read_off(c);
    tp__io_timer_again(c->node->io, &c->retry);
    if (tp__io_wait_room(c->node->sys, c->stalled_to))
        tp__node_unstall(c->node->sys); // drained meanwhile: next round
}

void
tp__node_unstall(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return;
    // release: nothing to publish but the flag; the wake-up follows it.
    atomic_store_explicit(&n->want_retry, 1, memory_order_release);
    tp__io_wake(n->io);
}

// On the I/O thread: retries the stalled connections.
void
tp__node_retry_stalled(tp__dist *n)
{
    // acquire: pairs with tp__node_unstall's store.
    if (!atomic_exchange_explicit(&n->want_retry, 0, memory_order_acquire))
        return;
    for (conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next; // retrying may close and free c
        if (c->stalled != NULL)
            tp__conn_retry_cb(&c->retry);
    }
}

void
tp__conn_retry_cb(tp__io_timer *w)
{
    conn *c = w->data;
    tp__msg *m = c->stalled;
    c->stalled = NULL;
    if (!deliver_each(c, c->stalled_to, m)) {
        // Still full: wait for the receiver again (or the timer).
        if (tp__io_wait_room(c->node->sys, c->stalled_to))
            tp__node_unstall(c->node->sys);
        return;
    }
    tp__io_timer_stop(c->node->io, w);
    if (!tp__conn_read_on(c)) {
        tp__conn_close(c, "cannot watch the socket", true);
        return;
    }
    if (!process_input(c))
        return;
    if (c->stalled != NULL)
        stall(c);
    else if (tp__conn_pending(c))
        tp__conn_read(c); // what TLS holds, readiness will not announce
}

void
tp__conn_read(conn *c)
{
    if (c->ssl != NULL && c->tls_st == TP__TLS_HANDSHAKE &&
        !tp__conn_tls_advance(c))
        return;
    int round;
    for (round = 0; round < TP__NODE_READ_ROUNDS; round++) {
        if (c->in_cap - c->in_len < TP__NODE_READ_ROOM) {
            size_t cap = c->in_cap ? c->in_cap * 2 : TP__NODE_IN_START;
            if (c->in_len + TP__NODE_READ_ROOM > cap)
                cap = c->in_len + TP__NODE_READ_ROOM;
            uint8_t *in = realloc(c->in, cap);
            if (in == NULL) {
                tp__conn_close(c, "out of memory", true);
                return;
            }
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t r = tp__conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0) {
            tp__conn_close(c, "closed by peer", true);
            return;
        }
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            tp__conn_close(c, strerror(e), true);
            return;
        }
        c->in_len += (size_t)r;
        c->last_rx = tp__io_now(c->node->io);
        // relaxed: a hint for worker polling (poll.c).
        atomic_store_explicit(&c->node->last_input, tp__now_ns(),
                              memory_order_relaxed);
        bump(&c->node->bytes_in, (uint64_t)r);
        if (c->peer && c->st == C_UP)
            bump(&c->peer->bytes_in, (uint64_t)r);
        if (!process_input(c))
            return;
        if (c->stalled != NULL) {
            stall(c);
            return;
        }
        // Under TLS, what the socket gave may hold more than one read
        // takes: it waits inside the TLS layer.
        if ((size_t)r < TP__NODE_READ_ROOM && !tp__conn_pending(c))
            break;
    }
    if (round == TP__NODE_READ_ROUNDS && tp__conn_pending(c)) {
        // Readiness of the socket will not announce what TLS holds: the
        // I/O thread comes back for it once it has run the others.
        c->tls_more = true;
        // release: node_wake reads the flags after it sees this.
        atomic_store_explicit(&c->node->want_more, 1, memory_order_release);
        tp__io_wake(c->node->io);
    }
}

// On the I/O thread: reads on the connections a capped read left with
// input inside TLS.
void
tp__node_read_more(tp__dist *n)
{
    // acquire: pairs with tp__conn_read's store.
    if (!atomic_exchange_explicit(&n->want_more, 0, memory_order_acquire))
        return;
    for (conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next; // reading may close and free c, not the next one
        if (c->tls_more) {
            c->tls_more = false;
            if (c->reading && c->stalled == NULL)
                tp__conn_read(c);
        }
    }
}
