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

// ---- warnings about unauthenticated connections, rate-limited ------------

static const char *const hs_what[TP__HS_KINDS] = {
    [TP__HS_EVICTED] = "unauthenticated connections evicted",
    [TP__HS_REFUSED] = "connections refused",
    [TP__HS_TIMEOUT] = "handshakes timed out",
    [TP__HS_CLOSED] = "connections closed before authenticating",
    [TP__HS_AUTH] = "handshakes failed",
};

// Reports what `kind`'s window held back, if anything, and opens a new one.
static void
hslog_roll(tp__dist *n, int kind, double now)
{
    hslog *l = &n->hslogs[kind];
    if (l->held > 0)
        tp__log(n->sys, TP_LOG_WARNING,
                "node: %llu more %s in the last %.0f s, not logged one by "
                "one; the latest from %s",
                (unsigned long long)l->held, hs_what[kind], now - l->start,
                l->last);
    l->start = now;
    l->logged = 0;
    l->held = 0;
}

bool
tp__hslog_ok(tp__dist *n, int kind, const char *addr)
{
    hslog *l = &n->hslogs[kind];
    double now = tp__io_now(n->io);
    if (now - l->start >= TP__NODE_LOG_WINDOW_S)
        hslog_roll(n, kind, now);
    if (l->logged < TP__NODE_LOG_BURST) {
        l->logged++;
        return true;
    }
    l->held++;
    snprintf(l->last, sizeof l->last, "%s", addr);
    return false;
}

static void
enter_backoff(tp__peer *p)
{
    tp__dist *n = p->node;
    tp__peer_set_state(p, TP_PEER_BACKOFF);
    tp__peer_drain(p); // drops what was queued: delivery is at most once
    uint32_t r = 0;
    if (n->net != NULL) // a test system: replays with its seed
        r = (uint32_t)tp_test_random(n->sys);
    else
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
    tp__tls_detach(c);
    if (c->fd >= 0)
        close(c->fd);
    tp__conn_unauth_release(c);
    conn_unlink(c);
    tp__msg_chain_free(c->stalled);
    free(c->in);
    tp__wbuf_free(&c->out);
    free(c);
}

// Closes `c`, saying why in the log when `log_it`. If it was its peer's
// connection, the peer goes down (an up connection: nodedown and
// noconnection) and backs off.
static void
conn_close(conn *c, const char *why, bool log_it)
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

void
tp__conn_close(conn *c, const char *why, bool log_it)
{
    // An inbound connection that never authenticated: rate-limited.
    conn_close(c, why,
               log_it && (!c->counted_unauth ||
                          tp__hslog_ok(c->node, TP__HS_CLOSED, c->addr)));
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
    c->seq = ++n->conn_seq;
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
    int fd = n->net != NULL
                 ? tp__net_dial(n, &p->addr)
                 : socket(p->addr.ss_family,
                          SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = errno;
    if (fd < 0 && e == ECONNREFUSED) { // the net: no one listens there
        tp__log(n->sys, TP_LOG_INFO,
                "node: connection to %s closed: reason=\"%s\"", p->name,
                strerror(e));
        bump(&p->fails, 1);
        enter_backoff(p);
        return;
    }
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
    if (n->net == NULL &&
        connect(fd, (struct sockaddr *)&p->addr, p->addr_len) != 0 &&
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
    if (n->tls == NULL) {
        tp__handshake_start(c);
        return;
    }
    c->st = C_WAIT_CHALLENGE; // once TLS is up, HELLO goes out
    if (!tp__tls_attach(c)) {
        tp__conn_close(c, "TLS: cannot set up the connection", true);
        return;
    }
    tp__conn_tls_advance(c);
}

bool
tp__conn_tls_advance(conn *c)
{
    int r = tp__tls_step(c);
    if (r <= 0)
        return false; // more to come, or failed and closed
    // HELLO, now inside TLS; writing it may find the peer gone and free c.
    return !c->outbound || tp__handshake_start(c);
}

// How much an unauthenticated connection has shown, for eviction: 0 for
// nothing (no HELLO yet), 1 for a HELLO, 2 for a HELLO naming a peer that
// was up before which no other connection here names too. A HELLO costs
// nothing without the secret, nor does a name, but an attacker who does
// not know a peer's name cannot outrank it, and one who does only takes
// the peer's rank away (two claims to a name rank 1).
static int
rank(tp__dist *n, const conn *c)
{
    if (c->st == C_WAIT_HELLO)
        return 0;
    if (!c->known)
        return 1;
    for (const conn *o = n->conns; o != NULL; o = o->next)
        if (o != c && o->counted_unauth && o->st != C_WAIT_HELLO &&
            strcmp(o->peer_name, c->peer_name) == 0)
            return 1;
    return 2;
}

// Makes room for a new connection when every slot for unauthenticated ones
// is taken: closes the oldest of those of the lowest rank. A peer's
// handshake takes one round trip, so connections opened to keep the slots
// full push out each other and not the peer that comes in among them,
// which a refusal of newcomers would keep out for as long as they kept
// trying. A peer's HELLO is read as its connection is accepted (it waited
// in the backlog behind the flood), so it ranks at once. Returns false
// when no connection could go.
static bool
evict_one(tp__dist *n)
{
    conn *victim = NULL;
    int vrank = 0;
    for (conn *c = n->conns; c != NULL; c = c->next) {
        if (!c->counted_unauth)
            continue;
        int r = rank(n, c);
        if (victim == NULL || r < vrank ||
            (r == vrank && c->seq < victim->seq)) {
            victim = c;
            vrank = r;
        }
    }
    if (victim == NULL)
        return false;
    bump(&n->evicted, 1);
    if (tp__hslog_ok(n, TP__HS_EVICTED, victim->addr))
        tp__log(n->sys, TP_LOG_WARNING,
                "node: connection from %s evicted: reason=\"too many "
                "unauthenticated connections\" limit=%u",
                victim->addr, n->cfg.max_unauthenticated);
    conn_close(victim, "evicted", false);
    return true;
}

void
tp__node_accept_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    tp__dist *n = w->data;
    for (int i = 0; i < TP__NODE_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = n->net != NULL ? tp__net_accept(n, &sa)
                                : accept4(n->lfd, (struct sockaddr *)&sa, &sl,
                                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char addr[TP__ADDR_STRLEN];
        tp__addr_format((struct sockaddr *)&sa, addr, sizeof addr);
        if (n->unauth >= n->cfg.max_unauthenticated && !evict_one(n)) {
            bump(&n->refused, 1);
            if (tp__hslog_ok(n, TP__HS_REFUSED, addr))
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
        else if (n->tls != NULL && !tp__tls_attach(c))
            tp__conn_close(c, "TLS: cannot set up the connection", true);
        else
            tp__conn_read(c); // what came meanwhile: a HELLO that ranks it
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
    if (!tp__addr_is_loopback(&sa) && n->tls == NULL)
        tp__log(n->sys, TP_LOG_WARNING,
                "node: listening on %s without TLS: after the handshake, "
                "traffic is neither encrypted nor authenticated (set "
                "tls_cert_file, tls_key_file and tls_ca_file)",
                n->cfg.listen);
    if (n->net != NULL) { // a test system: an address in its net
        int e = tp__net_listen(n, &sa, &sl);
        if (e != 0)
            return listen_failed(n, "bind", e);
        char addr[TP__ADDR_STRLEN];
        tp__addr_format((struct sockaddr *)&sa, addr, sizeof addr);
        snprintf(n->name, sizeof n->name, "%s@%s", n->short_name, addr);
        return 0;
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
    for (int k = 0; k < TP__HS_KINDS; k++)
        if (n->hslogs[k].held > 0 &&
            now - n->hslogs[k].start >= TP__NODE_LOG_WINDOW_S)
            hslog_roll(n, k, now);
    for (conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->st != C_UP) {
            if (now - c->born > hs) {
                bump(&n->hs_timeouts, 1);
                conn_close(c, "handshake timeout",
                           !c->counted_unauth ||
                               tp__hslog_ok(n, TP__HS_TIMEOUT, c->addr));
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
                          (uint64_t)(tp__dist_now_ns(n) / 1000));
            bump(&n->frames_out, 1);
            tp__conn_flush(c);
        }
    }
}
