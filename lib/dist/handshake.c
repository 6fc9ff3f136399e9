// SPDX-License-Identifier: MIT
// The handshake (WIRE.md): HELLO, CHALLENGE, REPLY, then ACCEPT or
// REFUSE, with HMAC-SHA256 proofs over both nonces, names and
// incarnations. The acceptor settles duplicate and simultaneous
// connections before it sends ACCEPT, so an accepted connection is never
// refused afterwards. I/O thread only.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

// Tells the peer why before `c` is closed: one best-effort write.
static void
conn_refuse(conn *c, const char *why)
{
    tp__wire_refuse(&c->out, why);
    if (c->out.len > c->out_off &&
        tp__conn_write(c, c->out.p + c->out_off, c->out.len - c->out_off) > 0)
        c->out_off = c->out.len;
}

static void
fill_nonce(const tp__dist *n, uint8_t *nonce)
{
    if (n->net != NULL) { // a test system: the bytes replay too
        for (size_t i = 0; i < TP__WIRE_NONCE; i += 8) {
            uint64_t r = tp_test_random(n->sys);
            memcpy(nonce + i, &r,
                   TP__WIRE_NONCE - i < 8 ? TP__WIRE_NONCE - i : 8);
        }
        return;
    }
    size_t got = 0;
    while (got < TP__WIRE_NONCE) {
        ssize_t r = getrandom(nonce + got, TP__WIRE_NONCE - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

// Refuses `c` for `why`, tells its peer, and closes it; false, always.
static bool
refuse(conn *c, const char *why, const char *logged, bool log_it)
{
    conn_refuse(c, why);
    tp__conn_close(c, logged, log_it);
    return false;
}

// Settles `c` against `p`'s other connection `old`, if any. Returns false
// when `old` wins and `c` was refused and closed.
static bool
settle_duplicate(conn *c, tp__peer *p)
{
    tp__dist *n = c->node;
    conn *old = p->conn;
    if (old == NULL || old == c)
        return true;
    uint32_t inc = atomic_load_explicit(&p->inc, memory_order_relaxed);
    if (old->st == C_UP && inc == c->peer_inc)
        return refuse(c, "already connected", "duplicate connection", true);
    if (old->st != C_UP && strcmp(n->name, p->name) < 0) {
        // Both sides dialled at once: the lower-named node's own
        // connection wins, and we are the lower one.
        return refuse(c, "simultaneous connect",
                      "simultaneous connect, keeping ours", false);
    }
    // Our pending attempt loses, or the peer restarted: the new
    // connection replaces the old one.
    if (old->st == C_UP) {
        tp__conn_close(old, "peer restarted", true);
    } else {
        p->conn = NULL;
        tp__conn_free(old);
    }
    tp__io_timer_stop(n->io, &p->backoff);
    return true;
}

// `c` is `p`'s connection now, at node-table index `idx`.
static void
peer_up(conn *c, tp__peer *p, uint16_t idx)
{
    tp__dist *n = c->node;
    c->peer = p;
    p->conn = c;
    c->st = C_UP;
    tp__io_timer_stop(n->io, &p->backoff);
    tp__conn_unauth_release(c);
    uint32_t prev = atomic_load_explicit(&p->inc, memory_order_relaxed);
    atomic_store_explicit(&p->idx, idx, memory_order_release);
    atomic_store_explicit(&p->inc, c->peer_inc, memory_order_release);
    if (prev != 0 && prev != c->peer_inc) {
        // Links and monitors made with the earlier life are void now.
        tp__pairs_fire(p);
    }
    p->backoff_ms = TP__NODE_BACKOFF_FIRST_MS;
    bump(&p->connects, 1);
    tp__peer_set_state(p, TP_PEER_UP);
    tp__log(n->sys, TP_LOG_INFO, "node: up peer=%s incarnation=%u via=%s",
            p->name, c->peer_inc, c->outbound ? "connect" : "accept");
    tp__node_notify(n, p, TP_TAG_NODEUP, c->peer_inc, NULL);
}

// The connection to `c->peer_name` at `c->peer_inc` is authenticated: make
// it the peer's. Returns false (and refuses it) when another one wins. The
// acceptor (`accept`) sends ACCEPT only once it has decided, so a peer
// never sees a connection accepted and then refused.
static bool
conn_attach(conn *c, bool accept)
{
    tp__dist *n = c->node;
    tp__peer *p = c->peer;
    uint16_t idx;
    int rc = p != NULL ? 0 : tp__peer_get(n, c->peer_name, &p);
    if (rc == TP_EAGAIN)
        return refuse(c, "too many peers", "too many peers", true);
    if (rc != 0) // the name was checked on HELLO: out of memory
        return refuse(c, "out of memory", tp_strerror(rc), true);
    // Its pids need a node-table index: a table full of incarnations (a
    // peer that restarted 65,535 times) refuses the connection rather
    // than let its pids pass for local ones.
    pthread_mutex_lock(&n->lock);
    rc = tp__ent_get_locked(n, p, c->peer_inc, &idx);
    pthread_mutex_unlock(&n->lock);
    if (rc == TP_EAGAIN)
        return refuse(c, "node table full", "node table full", true);
    if (rc != 0)
        return refuse(c, "out of memory", tp_strerror(rc), true);
    if (!settle_duplicate(c, p))
        return false;
    if (accept)
        tp__wire_simple(&c->out, TP__F_ACCEPT); // before any queued frame
    peer_up(c, p, idx);
    tp__peer_drain(p);
    return p->conn == c; // a failed write may have closed it
}

static void
frame_name(const tp__frame *f, char *out, size_t size)
{
    size_t n = f->name_len < size - 1 ? f->name_len : size - 1;
    memcpy(out, f->name, n);
    out[n] = 0;
}

static bool
make_mac(tp__dist *n, uint8_t *out, char role, const uint8_t *na,
         const uint8_t *nb, const char *a, const char *b, uint32_t ia,
         uint32_t ib)
{
    return tp__wire_mac(out, n->secret, n->secret_len, role, na, nb, a, b, ia,
                        ib);
}

static void
auth_failed(conn *c, const char *why)
{
    bump(&c->node->auth_failures, 1);
    if (tp__hslog_ok(c->node, TP__HS_AUTH, c->addr))
        tp__log(c->node->sys, TP_LOG_WARNING,
                "node: handshake %s %s failed: reason=\"%s\"",
                c->outbound ? "to" : "from",
                c->peer_name[0] ? c->peer_name : c->addr, why);
    tp__conn_close(c, why, false);
}

bool
tp__handshake_start(conn *c)
{
    tp__dist *n = c->node;
    c->st = C_WAIT_CHALLENGE;
    fill_nonce(n, c->nonce_mine);
    tp__wire_hello(&c->out, TP__F_HELLO, n->name, n->inc, c->nonce_mine, NULL);
    c->born = tp__io_now(n->io);
    return tp__conn_flush(c);
}

// b: HELLO from the initiator; answer with CHALLENGE.
static bool
on_hello(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    uint8_t mac[TP__WIRE_MAC];
    if (f->vsn != TP__WIRE_VERSION) {
        conn_refuse(c, "unsupported protocol version");
        auth_failed(c, "unsupported protocol version");
        return false;
    }
    frame_name(f, c->peer_name, sizeof c->peer_name);
    if (tp_node_name_check(c->peer_name) != 0 || f->inc == 0 ||
        strcmp(c->peer_name, n->name) == 0) {
        conn_refuse(c, "bad node name");
        auth_failed(c, "bad node name or incarnation");
        return false;
    }
    c->peer_inc = f->inc;
    // A peer that was up before outranks strangers for a slot (connect.c).
    pthread_mutex_lock(&n->lock);
    tp__peer *before = tp__peer_find_locked(n, c->peer_name);
    c->known =
        before != NULL &&
        // relaxed: a statistic, read as a hint.
        atomic_load_explicit(&before->connects, memory_order_relaxed) > 0;
    pthread_mutex_unlock(&n->lock);
    memcpy(c->nonce_peer, f->nonce, TP__WIRE_NONCE);
    fill_nonce(n, c->nonce_mine);
    if (!make_mac(n, mac, 'b', c->nonce_peer, c->nonce_mine, c->peer_name,
                  n->name, c->peer_inc, n->inc)) {
        auth_failed(c, "cannot compute proof");
        return false;
    }
    tp__wire_hello(&c->out, TP__F_CHALLENGE, n->name, n->inc, c->nonce_mine,
                   mac);
    c->st = C_WAIT_REPLY;
    return tp__conn_flush(c);
}

// a: CHALLENGE from the node we dialled; check its proof, send ours.
static bool
on_challenge(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    uint8_t mac[TP__WIRE_MAC];
    char name[TP_NODE_NAME_MAX];
    frame_name(f, name, sizeof name);
    if (f->vsn != TP__WIRE_VERSION || strcmp(name, c->peer->name) != 0 ||
        f->inc == 0) {
        auth_failed(c, "peer answered with another name or version");
        return false;
    }
    snprintf(c->peer_name, sizeof c->peer_name, "%s", name);
    c->peer_inc = f->inc;
    memcpy(c->nonce_peer, f->nonce, TP__WIRE_NONCE);
    if (!make_mac(n, mac, 'b', c->nonce_mine, c->nonce_peer, n->name,
                  c->peer_name, n->inc, c->peer_inc) ||
        !tp__wire_mac_eq(mac, f->mac)) {
        auth_failed(c, "peer failed to prove the shared secret");
        return false;
    }
    if (!make_mac(n, mac, 'a', c->nonce_mine, c->nonce_peer, n->name,
                  c->peer_name, n->inc, c->peer_inc)) {
        auth_failed(c, "cannot compute proof");
        return false;
    }
    tp__wire_reply(&c->out, mac);
    c->st = C_WAIT_ACCEPT;
    return tp__conn_flush(c);
}

// b: REPLY from the initiator; check its proof, then accept or refuse.
static bool
on_reply(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    uint8_t mac[TP__WIRE_MAC];
    if (!make_mac(n, mac, 'a', c->nonce_peer, c->nonce_mine, c->peer_name,
                  n->name, c->peer_inc, n->inc) ||
        !tp__wire_mac_eq(mac, f->mac)) {
        conn_refuse(c, "authentication failed");
        auth_failed(c, "peer failed to prove the shared secret");
        return false;
    }
    return conn_attach(c, true) && tp__conn_flush(c);
}

// a: the peer refused us. Always closes `c`; returns false.
static bool
on_refuse(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    char why[TP__WIRE_TEXT_MAX + 1];
    size_t len = f->text_len;
    memcpy(why, f->text, len);
    why[len] = 0;
    for (size_t i = 0; i < len; i++)
        if (why[i] < 32 || why[i] > 126)
            why[i] = '?';
    if (strcmp(why, "simultaneous connect") == 0) {
        // The peer's own connection to us wins and is on its way: wait
        // for it (as connecting), and dial again only if it never comes.
        tp__peer *p = c->peer;
        if (p != NULL && p->conn == c) {
            p->conn = NULL;
            tp__conn_free(c);
            tp__io_timer_stop(n->io, &p->backoff);
            tp__io_timer_set(&p->backoff, n->cfg.handshake_timeout_ms / 1000.0,
                             0.0);
            tp__io_timer_start(n->io, &p->backoff);
            return false;
        }
        tp__conn_close(c, why, false);
        return false;
    }
    char buf[160];
    snprintf(buf, sizeof buf, "refused by peer: %s", why);
    if (strcmp(why, "authentication failed") == 0)
        bump(&n->auth_failures, 1);
    tp__conn_close(c, buf, true);
    return false;
}

bool
tp__handshake(conn *c, const tp__frame *f)
{
    switch (c->st) {
    case C_WAIT_HELLO:
        if (f->type == TP__F_HELLO)
            return on_hello(c, f);
        break;
    case C_WAIT_CHALLENGE:
        if (f->type == TP__F_REFUSE)
            return on_refuse(c, f);
        if (f->type == TP__F_CHALLENGE)
            return on_challenge(c, f);
        break;
    case C_WAIT_REPLY:
        if (f->type == TP__F_REPLY)
            return on_reply(c, f);
        break;
    case C_WAIT_ACCEPT:
        if (f->type == TP__F_REFUSE)
            return on_refuse(c, f);
        if (f->type == TP__F_ACCEPT)
            return conn_attach(c, false);
        break;
    }
    bump(&c->node->rejected, 1);
    tp__conn_close(c, "unexpected frame before authentication", true);
    return false;
}
