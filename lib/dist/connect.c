// SPDX-License-Identifier: MIT
// Connections' lives, on the I/O thread: the listening socket, accepting,
// dialling a peer, the backoff between attempts, the heartbeat tick and
// closing. A connection that closes takes its peer down when it was the
// peer's own: nodedown, noconnection and a reconnect after backoff.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

void
tp__peer_set_state(tp__peer *p, int st)
{
    tp__dist *n = p->node;
    pthread_mutex_lock(&n->lock);
    atomic_store_explicit(&p->state, st, memory_order_release);
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

void
tp__conn_unauth_release(conn *c)
{
    if (c->counted_unauth) {
        c->counted_unauth = false;
        c->node->unauth--;
    }
}

void
tp__peer_backoff_cb(tp__io_timer *w)
{
    tp__peer *p = w->data;
    int st = atomic_load_explicit(&p->state, memory_order_relaxed);
    if (st == TP_PEER_CONNECTING && p->conn == NULL) {
        tp__peer_connect(p); // the connection we yielded to never came
        return;
    }
    if (st != TP_PEER_BACKOFF)
        return;
    if (atomic_load_explicit(&p->persistent, memory_order_relaxed)) {
        tp__peer_connect(p);
    } else {
        tp__peer_set_state(p, TP_PEER_IDLE);
        tp__peer_drain(p); // connects again if senders queued meanwhile
    }
}

static void
enter_backoff(tp__peer *p)
{
    tp__dist *n = p->node;
    tp__peer_set_state(p, TP_PEER_BACKOFF);
    tp__peer_drain(p); // drops what was queued: delivery is at most once
    uint32_t r = 0;
    getrandom(&r, sizeof r, GRND_NONBLOCK);
    double jitter = TP__NODE_BACKOFF_JITTER_MIN +
                    (r % TP__NODE_BACKOFF_JITTER_STEPS) / 1024.0;
    double delay = p->backoff_ms * jitter / 1000.0;
    int cap = n->cfg.reconnect_max_ms;
    p->backoff_ms = p->backoff_ms * 2 > cap ? cap : p->backoff_ms * 2;
    tp__io_timer_stop(n->io, &p->backoff);
    tp__io_timer_set(&p->backoff, delay, 0.0);
    tp__io_timer_start(n->io, &p->backoff);
}

static void
conn_unlink(conn *c)
{
    tp__dist *n = c->node;
    for (conn **pp = &n->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
}

void
tp__conn_free(conn *c)
{
    tp__dist *n = c->node;
    tp__conn_read_off(c);
    tp__io_fd_stop(n->io, &c->wio);
    tp__io_timer_stop(n->io, &c->retry);
    if (c->fd >= 0)
        close(c->fd);
    tp__conn_unauth_release(c);
    conn_unlink(c);
    tp__msg_chain_free(c->stalled);
    free(c->in);
    tp__wbuf_free(&c->out);
    free(c);
}

// Closes `c`. If it was its peer's connection, the peer goes down (an up
// connection: nodedown and noconnection) and backs off.
void
tp__conn_close(conn *c, const char *why, bool log_it)
{
    tp__dist *n = c->node;
    tp__peer *p = c->peer;
    bool was_up = c->st == C_UP;
    bool mine = p != NULL && p->conn == c;
    if (log_it)
        tp__log(n->sys, was_up ? TP_LOG_WARNING : TP_LOG_INFO,
                "node: connection %s %s closed: reason=\"%s\"",
                c->outbound ? "to" : "from",
                p ? p->name : (c->peer_name[0] ? c->peer_name : c->addr), why);
    if (mine)
        p->conn = NULL;
    tp__conn_free(c);
    if (!mine || atomic_load_explicit(&n->io->stopping, memory_order_relaxed))
        return;
    if (was_up) {
        bump(&n->nodedowns, 1);
        tp__pairs_fire(p);
        tp__node_notify(n, p, TP_TAG_NODEDOWN,
                        atomic_load_explicit(&p->inc, memory_order_relaxed),
                        why);
    } else {
        bump(&p->fails, 1);
    }
    if (atomic_exchange_explicit(&p->want_disconnect, 0,
                                 memory_order_acq_rel)) {
        tp__peer_set_state(p, TP_PEER_BACKOFF);
        tp__peer_drain(p); // drops what was queued
        tp__peer_set_state(p, TP_PEER_IDLE);
        return;
    }
    enter_backoff(p);
}

static conn *
conn_new(tp__dist *n, int fd, bool outbound)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->node = n;
    c->fd = fd;
    c->outbound = outbound;
    c->born = c->last_rx = c->last_ping = tp__io_now(n->io);
    c->next = n->conns;
    n->conns = c;
    return c;
}

static void
conn_watch(conn *c)
{
    tp__io_fd_init(&c->wio, tp__conn_write_cb, c->fd, TP__IO_WRITE);
    tp__io_timer_init(&c->retry, tp__conn_retry_cb, TP__NODE_RETRY_S,
                      TP__NODE_RETRY_S);
    c->wio.data = c->retry.data = c;
}

void
tp__peer_connect(tp__peer *p)
{
    tp__dist *n = p->node;
    if (p->conn != NULL)
        return;
    int fd = socket(p->addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = errno;
    conn *c = fd >= 0 ? conn_new(n, fd, true) : NULL;
    if (c == NULL) {
        if (fd >= 0) {
            close(fd);
            e = ENOMEM;
        }
        tp__log(n->sys, TP_LOG_ERR, "node: cannot connect to %s: %s", p->name,
                strerror(e));
        enter_backoff(p);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->peer = p;
    c->st = C_CONNECTING;
    snprintf(c->addr, sizeof c->addr, "%s", strchr(p->name, '@') + 1);
    p->conn = c;
    tp__peer_set_state(p, TP_PEER_CONNECTING);
    conn_watch(c);
    if (connect(fd, (struct sockaddr *)&p->addr, p->addr_len) != 0 &&
        (e = errno) != EINPROGRESS) {
        tp__conn_close(c, strerror(e), true);
        return;
    }
    tp__io_fd_start(n->io, &c->wio); // completion shows as writability
}

// An outbound connection's dial finished (it shows as writability): on
// success the handshake starts.
void
tp__conn_dialled(conn *c)
{
    tp__dist *n = c->node;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        tp__conn_close(c, strerror(err), true);
        return;
    }
    tp__io_fd_stop(n->io, &c->wio);
    if (!tp__conn_read_on(c)) {
        tp__conn_close(c, "cannot watch the socket", true);
        return;
    }
    tp__handshake_start(c);
}

void
tp__node_accept_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    tp__dist *n = w->data;
    for (int i = 0; i < TP__NODE_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(n->lfd, (struct sockaddr *)&sa, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char addr[TP__ADDR_STRLEN];
        tp__addr_format((struct sockaddr *)&sa, addr, sizeof addr);
        if (n->unauth >= n->cfg.max_unauthenticated) {
            bump(&n->refused, 1);
            tp__log(n->sys, TP_LOG_WARNING,
                    "node: connection from %s refused: reason=\"too many "
                    "unauthenticated connections\" limit=%u",
                    addr, n->cfg.max_unauthenticated);
            close(fd);
            continue;
        }
        conn *c = conn_new(n, fd, false);
        if (c == NULL) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        snprintf(c->addr, sizeof c->addr, "%s", addr);
        c->st = C_WAIT_HELLO;
        c->counted_unauth = true;
        n->unauth++;
        conn_watch(c);
        if (!tp__conn_read_on(c))
            tp__conn_close(c, "cannot watch the socket", true);
    }
}

// Says why listening on the configured address failed; returns `e` as a
// TP_E* code.
static int
listen_failed(tp__dist *n, const char *what, int e)
{
    tp__log(n->sys, TP_LOG_ERR, "node: cannot listen on %s: %s: %s",
            n->cfg.listen, what, strerror(e));
    return tp__err_from_errno(e);
}

int
tp__node_listen(tp__dist *n)
{
    struct sockaddr_storage sa;
    socklen_t sl;
    if (n->cfg.listen[0] == 0) {
        snprintf(n->name, sizeof n->name, "%s@127.0.0.1:0", n->short_name);
        return 0; // no listener; peers cannot dial us
    }
    if (tp__addr_parse(n->cfg.listen, TP__ADDR_PORT0, &sa, &sl) != 0) {
        tp__log(n->sys, TP_LOG_ERR,
                "node: listen address \"%s\" is not HOST:PORT (IPv4 "
                "A.B.C.D:PORT or IPv6 [ADDR]:PORT)",
                n->cfg.listen);
        return TP_EINVAL;
    }
    if (!tp__addr_is_loopback(&sa) && n->secret == NULL) {
        tp__log(n->sys, TP_LOG_ERR,
                "node: listening on %s needs a secret file (only loopback "
                "may go without)",
                n->cfg.listen);
        return TP_EINVAL;
    }
    n->lfd =
        socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (n->lfd < 0)
        return listen_failed(n, "socket", errno);
    int one = 1;
    setsockopt(n->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(n->lfd, (struct sockaddr *)&sa, sl) != 0)
        return listen_failed(n, "bind", errno);
    if (listen(n->lfd, TP__NODE_BACKLOG) != 0)
        return listen_failed(n, "listen", errno);
    sl = sizeof sa;
    if (getsockname(n->lfd, (struct sockaddr *)&sa, &sl) != 0)
        return listen_failed(n, "getsockname", errno);
    char addr[TP__ADDR_STRLEN];
    tp__addr_format((struct sockaddr *)&sa, addr, sizeof addr);
    snprintf(n->name, sizeof n->name, "%s@%s", n->short_name, addr);
    return 0;
}

void
tp__node_tick_cb(tp__io_timer *w)
{
    tp__dist *n = w->data;
    tp__io_now_update(n->io);
    double now = tp__io_now(n->io);
    double hb = n->cfg.heartbeat_ms / 1000.0;
    double to = n->cfg.timeout_ms / 1000.0;
    double hs = n->cfg.handshake_timeout_ms / 1000.0;
    for (conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->st != C_UP) {
            if (now - c->born > hs) {
                bump(&n->hs_timeouts, 1);
                tp__conn_close(c, "handshake timeout", true);
            }
            continue;
        }
        if (now - c->last_rx > to) {
            tp__conn_close(c, "heartbeat timeout", true);
            continue;
        }
        // Both sides ping every interval, busy or idle: were pings only
        // sent on idle links, each side's PONGs would keep the other one
        // from ever pinging, and it would never measure a round trip.
        if (now - c->last_ping >= hb * TP__NODE_PING_SLACK) {
            c->last_ping = now;
            tp__wire_ping(&c->out, TP__F_PING,
                          (uint64_t)(tp__now_ns() / 1000));
            bump(&n->frames_out, 1);
            tp__conn_flush(c);
        }
    }
}
