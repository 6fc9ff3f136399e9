// SPDX-License-Identifier: MIT
// Output: moving frames from a peer's proxy into its connection's buffer
// and writing them, on the I/O thread or on a thread that holds the I/O
// lock while the loop waits (corking, send.c). With no connection, queued
// frames are dropped: delivery is at most once.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

// Writes what `c` has buffered. Returns false when a write error closed
// (and freed) `c`.
bool
tp__conn_flush(conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w =
            tp__conn_write(c, c->out.p + c->out_off, c->out.len - c->out_off);
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            tp__conn_close(c, strerror(e), true);
            return false;
        }
        c->out_off += (size_t)w;
        bump(&c->node->bytes_out, (uint64_t)w);
        if (c->peer != NULL && c->st == C_UP)
            bump(&c->peer->bytes_out, (uint64_t)w);
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->out.cap > TP__NODE_OUT_SHRINK) {
            tp__wbuf_free(&c->out);
        }
        // A drain may have left frames queued for the write callback,
        // which will not come now that this flush (a PONG's, a PING's)
        // emptied the buffer: without a kick they would wait for the next
        // sender whose frame finds the queue empty, which a muted one
        // never is.
        if (tp__io_fd_active(&c->wio) && c->st == C_UP && c->peer != NULL &&
            c->peer->conn == c)
            tp__peer_kick(c->node, c->peer);
        tp__io_fd_stop(c->node->io, &c->wio);
    } else {
        tp__io_fd_start(c->node->io, &c->wio);
    }
    return true;
}

void
tp__conn_write_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    conn *c = w->data;
    if (c->st == C_CONNECTING) {
        tp__conn_dialled(c);
        return;
    }
    if (c->ssl != NULL && c->tls_st == TP__TLS_HANDSHAKE) {
        // Input may have come with the last of the handshake, inside TLS
        // where readiness will not announce it.
        if (tp__conn_tls_advance(c) && tp__conn_pending(c))
            tp__conn_read(c);
        return;
    }
    if (!tp__conn_flush(c))
        return;
    if (c->tls_read_writes) { // a TLS read waited for this writability
        c->tls_read_writes = false;
        tp__conn_read(c);
        return; // c may be gone
    }
    tp__peer *p = c->peer;
    if (p != NULL && p->conn == c && c->st == C_UP &&
        c->out.len - c->out_off < TP__NODE_OUT_HIGH / 2)
        tp__peer_drain(p);
}

// Moves frames from `p`'s proxy into `c`'s output buffer until it holds
// TP__NODE_OUT_HIGH bytes or the queue is empty, or, with `c` NULL, drops them
// (answering link and monitor requests). The proxy's one consumer is
// whoever holds the I/O lock: the I/O thread, or a worker uncorking. Sets
// *left to what the queue still counts; returns how many frames it took.
uint32_t
tp__peer_take(tp__peer *p, conn *c, uint32_t *left)
{
    tp__dist *n = p->node;
    tp_actor *q = p->proxy;
    bool up = c != NULL;
    uint32_t users = 0, total = 0, sent = 0;
    tp__msg *m;
    while (!(up && c->out.len - c->out_off > TP__NODE_OUT_HIGH)) {
        bool user = false;
        if ((m = tp__mailbox_pop(&q->sys)) == NULL) {
            if ((m = tp__mailbox_pop(&q->user)) == NULL)
                break;
            // Signals share the user lane to keep their place.
            user = m->kind == TP__MSG_USER;
        }
        total++;
        users += user;
        // relaxed: only this consumer decrements the debt.
        if (user &&
            atomic_load_explicit(&q->drop_debt, memory_order_relaxed) > 0) {
            atomic_fetch_sub_explicit(&q->drop_debt, 1, memory_order_relaxed);
            bump(&p->dropped, 1);
            tp__msg_retire(m);
            continue;
        }
        tp_pid remote = {(uint64_t)(uintptr_t)m->aux};
        if (up) {
            tp__wbuf_reserve(&c->out, m->pub.size);
            if (!c->out.failed) {
                memcpy(c->out.p + c->out.len, m->pub.data, m->pub.size);
                c->out.len += m->pub.size;
            }
            tp__pairs_note(p, m, remote);
            sent++;
        } else {
            tp__answer_lost(n->sys, m->kind, m->pub.from, remote, m->pub.ref);
            if (user) {
                bump(&p->dropped, 1);
                bump(&n->sys->dead_letters, 1);
            }
        }
        tp__msg_retire(m);
    }
    if (sent > 0) {
        bump(&p->sent, sent);
        bump(&n->frames_out, sent);
    }
    *left = total ? tp__proxy_settle(q, users, total)
                  : TP__CNT_TOTAL(
                        atomic_load_explicit(&q->count, memory_order_acquire));
    return total;
}

// Moves queued frames from `p`'s proxy into its connection's output, or
// drops them (answering link and monitor requests) when it has none.
void
tp__peer_drain(tp__peer *p)
{
    tp__dist *n = p->node;
    tp_actor *q = p->proxy;
    for (int pass = 0; pass < TP__NODE_DRAIN_PASSES; pass++) {
        conn *c = p->conn;
        bool up = c != NULL && c->st == C_UP;
        if (c != NULL && !up)
            return; // connecting: frames wait
        if (c == NULL &&
            atomic_load_explicit(&p->state, memory_order_relaxed) !=
                TP_PEER_BACKOFF) {
            // Idle: what is queued is the reason to connect.
            if (TP__CNT_TOTAL(
                    atomic_load_explicit(&q->count, memory_order_acquire)) > 0)
                tp__peer_connect(p);
            return;
        }
        uint32_t left;
        uint32_t total = tp__peer_take(p, up ? c : NULL, &left);
        if (up && c->out.len > c->out_off) {
            tp__conn_flush(c);
            if (p->conn != c)
                return; // the write failed and closed it
        }
        if (left == 0)
            return;
        if (up && c->out.len - c->out_off > TP__NODE_OUT_HIGH)
            return; // the write callback drains again as the socket drains
        if (total == 0) {
            // A sender is between publishing and linking its frame.
            tp__peer_kick(n, p);
            return;
        }
    }
    tp__peer_kick(n, p); // plenty more: let the loop breathe, then go on
}
