// SPDX-License-Identifier: MIT
// Distribution: the node table, per-peer send queues and the I/O thread.
//
// Every remote node we know of is a peer. A peer's send queue is a proxy:
// an actor record that never runs but whose mailbox holds frames already
// encoded by the sending thread. Putting a frame there goes through the
// same capacity, overflow policies and muting as a local send, so a slow
// peer pushes back on local senders exactly as a slow actor would. When
// the proxy's counter leaves zero the I/O thread is woken (once, not per
// message); it copies queued frames into the connection's output buffer
// and writes them with one system call per batch. Frames sent from an
// actor's callback wake nobody: the worker writes them itself, in one
// batch, when the activation ends (corking, below).
//
// Incoming, messages from consecutive SEND frames for one actor enter its
// mailbox together; a connection whose receiver is full stops reading
// until the receiver drains, which wakes it as it would a muted sender.
//
// The I/O thread (libev) owns every socket and connection; other threads
// reach it through flags on peers and one ev_async. Pids of remote actors
// carry a node-table index: an entry per (peer, incarnation), so pids of a
// peer's earlier life are recognised as dead once it has restarted.
//
// For `noconnection`, the I/O thread watches the link and monitor frames
// that cross each connection and keeps, per peer, the pairs they set up.
// When the connection goes, each local end receives the exit signal, DOWN
// or cleanup it would have got had the remote actors died.
#include "core/core.h"
#include "dist/dist.h"
#include "dist/wire.h"
#include "io/io.h"
#include "signals/signals.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PEERS_MAX 4096
#define ENTS_MAX 65535        // node index 0 is the local node
#define OUT_HIGH (256 * 1024) // stop draining a proxy past this many bytes
#define IN_START (64 * 1024)
#define REF_MASK ((1ull << 48) - 1)
#define SECRET_MIN 32
#define SECRET_MAX 4096

enum {
    C_CONNECTING,
    C_WAIT_HELLO,
    C_WAIT_CHALLENGE,
    C_WAIT_REPLY,
    C_WAIT_ACCEPT,
    C_UP
};

typedef struct tp__dist tp__dist;
typedef struct tp__peer tp__peer;

// A pair a link or monitor across a connection set up; `a` is local.
typedef struct pair {
    uint64_t a, b, ref;
} pair;

// Pairs indexed by a 64-bit key, with slot reuse.
typedef struct pairset {
    tp__map index; // key -> slot + 1
    pair *slots;
    uint64_t *keys;
    uint32_t len, cap;
    uint32_t *free;
    uint32_t nfree;
} pairset;

typedef struct conn {
    tp__dist *node;
    tp__peer *peer; // outbound: from the start; inbound: once named
    int fd;
    int st;
    bool outbound;
    bool counted_unauth;
    tp__io_fd rio, wio;
    tp__io_timer retry; // a delivery refused by a full mailbox, retried
    double born, last_rx, last_ping;
    char addr[64];
    uint8_t nonce_mine[TP__WIRE_NONCE], nonce_peer[TP__WIRE_NONCE];
    char peer_name[TP_NODE_NAME_MAX];
    uint32_t peer_inc;
    uint8_t *in;
    size_t in_len, in_off, in_cap;
    tp__wbuf out;
    size_t out_off;
    tp__msg *stalled;  // frames' messages waiting for mailbox room, linked
    tp_pid stalled_to; // through their queue nodes; all for this actor
    struct conn *next; // in node->conns
} conn;

struct tp__peer {
    tp__dist *node;
    char name[TP_NODE_NAME_MAX];
    struct sockaddr_in addr;
    _Atomic uint32_t inc; // incarnation of the current or last connection
    _Atomic uint16_t idx; // node-table index of that incarnation, 0 = none
    _Atomic int state;    // tp_peer_state
    _Atomic int kicked;
    _Atomic int want_connect, want_disconnect;
    _Atomic int want_flush; // a sender left bytes in the output buffer
    _Atomic int persistent;
    _Atomic uint64_t fails; // attempts that ended without coming up
    tp_actor *proxy;
    conn *conn; // I/O thread: live or connecting connection
    int backoff_ms;
    tp__io_timer backoff;
    pairset links, mon_out, mon_in;
    _Atomic uint32_t rtt_us;
    _Atomic uint64_t sent, received, bytes_out, bytes_in, dropped, connects;
};

typedef struct ent {
    tp__peer *peer;
    uint32_t inc;
} ent;

struct tp__dist {
    tp_system *sys;
    tp_node_config cfg;
    char name[TP_NODE_NAME_MAX];
    char short_name[64];
    uint32_t inc;
    uint8_t *secret;
    size_t secret_len;
    int lfd;
    tp__io *io; // the I/O thread; its lock guards what follows
    tp__io_fd lio;
    tp__io_timer tick;
    bool watching; // lio and tick are on the loop
    conn *conns;
    unsigned unauth;

    pthread_mutex_t lock; // peers, ents, subscribers; cond for waiters
    pthread_cond_t cond;
    tp__peer *peers[PEERS_MAX];
    _Atomic uint32_t npeers;
    _Atomic(ent *) ents[ENTS_MAX + 1];
    uint32_t nents;
    tp_pid *subs;
    size_t nsubs, subs_cap;

    _Atomic int want_retry; // an actor a connection stalled on has room
    _Atomic uint64_t frames_in, frames_out, bytes_in, bytes_out;
    _Atomic uint64_t rejected, auth_failures, hs_timeouts, refused, nodedowns;
};

// The proxies' behaviour: never run, only recognised.
static int
proxy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK;
}

const tp_behaviour tp__proxy_behaviour = {.name = "$peer",
                                          .handle = proxy_handle};

static inline void
bump(_Atomic uint64_t *c, uint64_t n)
{
    // relaxed: statistics.
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

// ---- pair sets ------------------------------------------------------------

static uint64_t
pair_key(uint64_t a, uint64_t b)
{
    uint64_t k = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
    k ^= k >> 31;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 29;
    if (k == 0 || k == UINT64_MAX)
        k = 1;
    return k;
}

static void
pairset_put(pairset *s, uint64_t key, uint64_t a, uint64_t b, uint64_t ref)
{
    uint64_t v;
    if (tp__map_get(&s->index, key, &v)) {
        s->slots[v - 1] = (pair){a, b, ref};
        return;
    }
    uint32_t i;
    if (s->nfree > 0) {
        i = s->free[--s->nfree];
    } else {
        if (s->len == s->cap) {
            uint32_t cap = s->cap ? s->cap * 2 : 16;
            pair *p = realloc(s->slots, cap * sizeof *p);
            if (p == NULL)
                return;
            s->slots = p;
            uint64_t *k = realloc(s->keys, cap * sizeof *k);
            if (k == NULL)
                return;
            s->keys = k;
            uint32_t *f = realloc(s->free, cap * sizeof *f);
            if (f == NULL)
                return;
            s->free = f;
            s->cap = cap;
        }
        i = s->len++;
    }
    if (tp__map_put(&s->index, key, (uint64_t)i + 1) != 0) {
        s->free[s->nfree++] = i;
        return;
    }
    s->slots[i] = (pair){a, b, ref};
    s->keys[i] = key;
}

static bool
pairset_del(pairset *s, uint64_t key, pair *out)
{
    uint64_t v;
    if (!tp__map_del(&s->index, key, &v))
        return false;
    uint32_t i = (uint32_t)(v - 1);
    if (out != NULL)
        *out = s->slots[i];
    s->keys[i] = 0;
    s->free[s->nfree++] = i;
    return true;
}

static void
pairset_free(pairset *s)
{
    tp__map_free(&s->index);
    free(s->slots);
    free(s->keys);
    free(s->free);
    memset(s, 0, sizeof *s);
}

static void backoff_cb(tp__io_timer *w);

// ---- names and the node table ----------------------------------------------

static bool
short_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 48)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

// Splits "HOST:PORT" into an IPv4 address. Port 0 allowed with `any_port`.
static int
parse_addr(const char *s, struct sockaddr_in *sa, bool any_port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= 40)
        return TP_EINVAL;
    char host[40];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    const char *p = colon + 1;
    if (*p == 0 || strlen(p) > 5 || (p[0] == '0' && p[1] != 0))
        return TP_EINVAL; // one spelling per port: no leading zeros
    unsigned long port = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return TP_EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535 || (port == 0 && !any_port))
        return TP_EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return TP_EINVAL;
    return 0;
}

int
tp_node_name_check(const char *node)
{
    if (node == NULL || strnlen(node, TP_NODE_NAME_MAX) >= TP_NODE_NAME_MAX)
        return TP_EINVAL;
    const char *at = strchr(node, '@');
    if (at == NULL || at == node || (size_t)(at - node) > 48)
        return TP_EINVAL;
    char shortn[64];
    memcpy(shortn, node, (size_t)(at - node));
    shortn[at - node] = 0;
    if (!short_name_ok(shortn))
        return TP_EINVAL;
    struct sockaddr_in sa;
    return parse_addr(at + 1, &sa, false);
}

static tp__dist *
node_of(tp_system *sys)
{
    // acquire: the node is fully built before it is published.
    return sys ? atomic_load_explicit(&sys->node, memory_order_acquire) : NULL;
}

static tp__peer *
peer_find_locked(tp__dist *n, const char *name)
{
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++)
        if (strcmp(n->peers[i]->name, name) == 0)
            return n->peers[i];
    return NULL;
}

static tp__peer *
peer_new_locked(tp__dist *n, const char *name)
{
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    if (np >= PEERS_MAX)
        return NULL;
    tp__peer *p = calloc(1, sizeof *p);
    tp_actor *q = calloc(1, sizeof *q);
    if (p == NULL || q == NULL) {
        free(p);
        free(q);
        return NULL;
    }
    p->node = n;
    snprintf(p->name, sizeof p->name, "%s", name);
    parse_addr(strchr(name, '@') + 1, &p->addr, false);
    p->backoff_ms = 100;
    tp__io_timer_init(&p->backoff, backoff_cb, 0.0, 0.0);
    p->backoff.data = p;
    tp__mpscq_init(&q->user);
    tp__mpscq_init(&q->sys);
    q->system = n->sys;
    q->behaviour = &tp__proxy_behaviour;
    q->state = p;
    q->capacity = n->cfg.send_queue;
    q->low_water = q->capacity / 2;
    q->settle_every = UINT32_MAX;
    q->overflow = (uint8_t)n->cfg.overflow;
    q->started = 1;
    p->proxy = q;
    n->peers[np] = p;
    // release: readers of npeers see the peer built.
    atomic_store_explicit(&n->npeers, np + 1, memory_order_release);
    return p;
}

// The peer named `name` (a full node name), created if new.
static tp__peer *
peer_get(tp__dist *n, const char *name)
{
    if (tp_node_name_check(name) != 0 || strcmp(name, n->name) == 0)
        return NULL;
    pthread_mutex_lock(&n->lock);
    tp__peer *p = peer_find_locked(n, name);
    if (p == NULL)
        p = peer_new_locked(n, name);
    pthread_mutex_unlock(&n->lock);
    return p;
}

// The node-table index for `peer` at incarnation `inc`, created if new.
static uint16_t
ent_get_locked(tp__dist *n, tp__peer *p, uint32_t inc)
{
    for (uint32_t i = n->nents; i > 0; i--) {
        ent *e = atomic_load_explicit(&n->ents[i], memory_order_relaxed);
        if (e->peer == p && e->inc == inc)
            return (uint16_t)i;
    }
    if (n->nents >= ENTS_MAX)
        return 0;
    ent *e = malloc(sizeof *e);
    if (e == NULL)
        return 0;
    e->peer = p;
    e->inc = inc;
    n->nents++;
    // release: routers load the entry with acquire.
    atomic_store_explicit(&n->ents[n->nents], e, memory_order_release);
    return (uint16_t)n->nents;
}

static ent *
ent_at(tp__dist *n, uint32_t idx)
{
    if (idx == 0 || idx > ENTS_MAX)
        return NULL;
    return atomic_load_explicit(&n->ents[idx], memory_order_acquire);
}

int
tp__node_pid_encode(tp_system *sys, tp_pid pid, const char **node,
                    uint32_t *inc, uint64_t *local)
{
    tp__dist *n = node_of(sys);
    *local = pid.v & REF_MASK;
    if (tp_pid_node(pid) == 0) {
        *node = n ? n->name : "";
        *inc = n ? n->inc : 0;
        return 0;
    }
    ent *e = n ? ent_at(n, tp_pid_node(pid)) : NULL;
    if (e == NULL)
        return TP_EINVAL;
    *node = e->peer->name;
    *inc = e->inc;
    return 0;
}

int
tp__node_pid_decode(tp_system *sys, const char *node, uint32_t inc,
                    uint64_t local, tp_pid *out)
{
    tp__dist *n = node_of(sys);
    if (local > REF_MASK)
        return TP_EINVAL;
    if ((n == NULL && node[0] == 0) ||
        (n != NULL && strcmp(node, n->name) == 0)) {
        if (n != NULL && inc != n->inc) {
            // A pid of an earlier life of this node: its actor is gone.
            // Slot 0 of a made-up generation never names a live actor.
            out->v = 0;
            return TP_ENOACTOR;
        }
        out->v = local;
        return 0;
    }
    if (n == NULL || inc == 0)
        return TP_EINVAL;
    tp__peer *p = peer_get(n, node);
    if (p == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&n->lock);
    uint16_t idx = ent_get_locked(n, p, inc);
    pthread_mutex_unlock(&n->lock);
    if (idx == 0)
        return TP_EAGAIN;
    out->v = ((uint64_t)idx << 48) | local;
    return 0;
}

// ---- routing: any thread ---------------------------------------------------

static uint32_t take_frames(tp__peer *p, struct conn *c, uint32_t *left);

static void
kick(tp__dist *n, tp__peer *p)
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
    ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
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
        kick(n, p);
        return;
    }
    conn *c = p->conn;
    bool wake = true;
    if (c != NULL && c->st == C_UP && c->out.len == c->out_off) {
        uint32_t left;
        take_frames(p, c, &left);
        wake = !send_now(n, p, c) || left != 0;
    }
    pthread_mutex_unlock(&n->io->lock);
    if (wake)
        kick(n, p);
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
    tp__peer *p = proxy->state;
    if (!cork_add(p))
        kick(p->node, p);
}

static tp__msg *
signal_msg(tp_system *sys, uint16_t kind, tp_pid from, uint64_t ref,
           int reason, bool linked, const char *text, size_t text_len)
{
    tp__signal s = {.ref = ref, .reason = reason, .linked = linked};
    if (text_len >= sizeof s.text)
        text_len = sizeof s.text - 1;
    if (text != NULL)
        memcpy(s.text, text, text_len);
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &s, sizeof s);
    if (m != NULL)
        m->kind = kind;
    return m;
}

static void
push_signal(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from,
            uint64_t ref, int reason, bool linked, const char *text,
            size_t text_len)
{
    tp__msg *m =
        signal_msg(sys, kind, from, ref, reason, linked, text, text_len);
    if (m != NULL && tp__push_sys(sys, to, m) != 0)
        tp__msg_free(m);
}

static void
push_ref(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from, uint64_t ref)
{
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &ref, sizeof ref);
    if (m == NULL)
        return;
    m->kind = kind;
    if (tp__push_sys(sys, to, m) != 0)
        tp__msg_free(m);
}

// A link or monitor request that will never reach its peer is answered as
// a lost connection would be: exit signal or DOWN with noconnection.
static void
answer_lost(tp_system *sys, uint16_t kind, tp_pid local, tp_pid remote,
            uint64_t ref)
{
    if (kind == TP__MSG_LINK)
        push_signal(sys, local, TP__MSG_EXIT, remote, 0,
                    TP_REASON_NOCONNECTION, true, NULL, 0);
    else if (kind == TP__MSG_MONITOR)
        push_signal(sys, local, TP__MSG_DOWN, remote, ref,
                    TP_REASON_NOCONNECTION, false, NULL, 0);
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
            ? tp__wire_send_size(e->inc, to.v & REF_MASK, from, m->pub.tag,
                                 m->pub.ref, flags, m->pub.size)
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
        n = name
                ? tp__wire_send_name(out, name, from, m->pub.tag, ref, flags,
                                     m->pub.data, m->pub.size)
                : tp__wire_send(out, e->inc, to.v & REF_MASK, from, m->pub.tag,
                                ref, flags, m->pub.data, m->pub.size);
    } else if (type == TP__F_EXIT || type == TP__F_DOWN) {
        const tp__signal *s = m->pub.data;
        ref = s->ref & REF_MASK;
        n = tp__wire_signal(out, type, e->inc, to.v & REF_MASK, from, ref,
                            s->reason, s->linked, s->text);
    } else {
        if (m->pub.size == sizeof ref)
            memcpy(&ref, m->pub.data, sizeof ref);
        n = tp__wire_signal(out, type, e->inc, to.v & REF_MASK, from,
                            ref & REF_MASK, 0, false, NULL);
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
        ssize_t w =
            send(c->fd, f->pub.data, f->pub.size, MSG_NOSIGNAL | MSG_DONTWAIT);
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
            kick(n, p);
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
        kick(p->node, p);
    return tp__proxy_put(p->proxy, self, f, mode);
}

int
tp__node_route(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m, int mode)
{
    tp__dist *n = node_of(sys);
    ent *e = n ? ent_at(n, tp_pid_node(to)) : NULL;
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
        answer_lost(sys, m->kind, m->pub.from, to, f->pub.ref);
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
    tp__peer *p = peer_get(n, node);
    if (p == NULL)
        return TP_EINVAL;
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
    int rc;
    for (unsigned round = 0;; round++) {
        rc = enqueue(p, self, f, TP__ROUTE_NORMAL);
        if (rc != TP__EWAIT || self != NULL)
            break;
        if (round > 50000 ||
            atomic_load_explicit(&sys->shutting_down, memory_order_acquire)) {
            rc = TP_ETIMEDOUT;
            break;
        }
        struct timespec ts = {0, 100000};
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

// ---- node up/down subscribers ----------------------------------------------

int
tp_monitor_nodes(tp_ctx *ctx, bool on)
{
    if (ctx == NULL)
        return TP_EINVAL;
    if (tp__self.actor != (tp_actor *)ctx)
        return TP_EPERM;
    tp_actor *a = (tp_actor *)ctx;
    tp__dist *n = node_of(a->system);
    if (n == NULL)
        return TP_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    size_t i;
    for (i = 0; i < n->nsubs && n->subs[i].v != a->pid.v; i++)
        ;
    if (!on && i < n->nsubs) {
        n->subs[i] = n->subs[--n->nsubs];
    } else if (on && i == n->nsubs) {
        if (n->nsubs == n->subs_cap) {
            size_t cap = n->subs_cap ? n->subs_cap * 2 : 8;
            tp_pid *s = realloc(n->subs, cap * sizeof *s);
            if (s == NULL)
                rc = TP_ENOMEM;
            else {
                n->subs = s;
                n->subs_cap = cap;
            }
        }
        if (rc == 0)
            n->subs[n->nsubs++] = a->pid;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

static void
notify_subs(tp__dist *n, tp__peer *p, uint32_t tag, uint32_t inc,
            const char *why)
{
    tp_node_msg nm;
    memset(&nm, 0, sizeof nm);
    snprintf(nm.node, sizeof nm.node, "%s", p->name);
    nm.incarnation = inc;
    snprintf(nm.why, sizeof nm.why, "%s", why ? why : "");
    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nsubs;) {
        tp__msg *m = tp__msg_new_copy(n->sys, tag, TP_PID_NIL, &nm, sizeof nm);
        if (m == NULL)
            break;
        if (tp__deliver_force(n->sys, n->subs[i], m) != 0) {
            tp__msg_free(m);
            n->subs[i] = n->subs[--n->nsubs]; // its actor is gone
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&n->lock);
}

// ---- connections: I/O thread only -----------------------------------------

static void conn_close(conn *c, const char *why, bool log_it);
static void free_chain(tp__msg *m);
static void drain_proxy(tp__peer *p);
static void connect_peer(tp__peer *p);

static void
set_state(tp__peer *p, int st)
{
    tp__dist *n = p->node;
    pthread_mutex_lock(&n->lock);
    atomic_store_explicit(&p->state, st, memory_order_release);
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

// Writes what `c` has buffered. Returns false when a write error closed
// (and freed) `c`.
static bool
conn_flush(conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c, strerror(errno), true);
            return false;
        }
        c->out_off += (size_t)w;
        bump(&c->node->bytes_out, (uint64_t)w);
        if (c->peer != NULL && c->st == C_UP)
            bump(&c->peer->bytes_out, (uint64_t)w);
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->out.cap > 4 * OUT_HIGH) {
            tp__wbuf_free(&c->out);
        }
        // drain_proxy may have left frames queued for write_cb, which will
        // not come now that this flush (a PONG's, a PING's) emptied the
        // buffer: without a kick they would wait for the next sender whose
        // frame finds the queue empty, which a muted one never is.
        if (tp__io_fd_active(&c->wio) && c->st == C_UP && c->peer != NULL &&
            c->peer->conn == c)
            kick(c->node, c->peer);
        tp__io_fd_stop(c->node->io, &c->wio);
    } else {
        tp__io_fd_start(c->node->io, &c->wio);
    }
    return true;
}

// Tells the peer why before `c` is closed: one best-effort write.
static void
conn_refuse(conn *c, const char *why)
{
    tp__wire_refuse(&c->out, why);
    if (c->out.len > c->out_off &&
        send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
             MSG_NOSIGNAL) > 0)
        c->out_off = c->out.len;
}

static void
unauth_release(conn *c)
{
    if (c->counted_unauth) {
        c->counted_unauth = false;
        c->node->unauth--;
    }
}

// Fires noconnection at every local end of a link or monitor across `p`.
static void
fire_noconnection(tp__peer *p)
{
    tp_system *sys = p->node->sys;
    for (uint32_t i = 0; i < p->links.len; i++)
        if (p->links.keys[i] != 0)
            push_signal(sys, (tp_pid){p->links.slots[i].a}, TP__MSG_EXIT,
                        (tp_pid){p->links.slots[i].b}, 0,
                        TP_REASON_NOCONNECTION, true, NULL, 0);
    for (uint32_t i = 0; i < p->mon_out.len; i++)
        if (p->mon_out.keys[i] != 0)
            push_signal(sys, (tp_pid){p->mon_out.slots[i].a}, TP__MSG_DOWN,
                        (tp_pid){p->mon_out.slots[i].b},
                        p->mon_out.slots[i].ref, TP_REASON_NOCONNECTION, false,
                        NULL, 0);
    for (uint32_t i = 0; i < p->mon_in.len; i++)
        if (p->mon_in.keys[i] != 0)
            push_ref(sys, (tp_pid){p->mon_in.slots[i].a}, TP__MSG_DEMONITOR,
                     (tp_pid){p->mon_in.slots[i].b}, p->mon_in.slots[i].ref);
    pairset_free(&p->links);
    pairset_free(&p->mon_out);
    pairset_free(&p->mon_in);
}

static void
backoff_cb(tp__io_timer *w)
{
    tp__peer *p = w->data;
    int st = atomic_load_explicit(&p->state, memory_order_relaxed);
    if (st == TP_PEER_CONNECTING && p->conn == NULL) {
        connect_peer(p); // the connection we yielded to never came
        return;
    }
    if (st != TP_PEER_BACKOFF)
        return;
    if (atomic_load_explicit(&p->persistent, memory_order_relaxed)) {
        connect_peer(p);
    } else {
        set_state(p, TP_PEER_IDLE);
        drain_proxy(p); // connects again if senders queued meanwhile
    }
}

static void
enter_backoff(tp__peer *p)
{
    tp__dist *n = p->node;
    set_state(p, TP_PEER_BACKOFF);
    drain_proxy(p); // drops what was queued: delivery is at most once
    uint32_t r = 0;
    getrandom(&r, sizeof r, GRND_NONBLOCK);
    double delay = p->backoff_ms * (0.75 + (r % 512) / 1024.0) / 1000.0;
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

static void
conn_free(conn *c)
{
    tp__dist *n = c->node;
    tp__io_fd_stop(n->io, &c->rio);
    tp__io_fd_stop(n->io, &c->wio);
    tp__io_timer_stop(n->io, &c->retry);
    if (c->fd >= 0)
        close(c->fd);
    unauth_release(c);
    conn_unlink(c);
    free_chain(c->stalled);
    free(c->in);
    tp__wbuf_free(&c->out);
    free(c);
}

// Closes `c`. If it was its peer's connection, the peer goes down (an up
// connection: nodedown and noconnection) and backs off.
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
    conn_free(c);
    if (!mine || atomic_load_explicit(&n->io->stopping, memory_order_relaxed))
        return;
    if (was_up) {
        bump(&n->nodedowns, 1);
        fire_noconnection(p);
        notify_subs(n, p, TP_TAG_NODEDOWN,
                    atomic_load_explicit(&p->inc, memory_order_relaxed), why);
    } else {
        bump(&p->fails, 1);
    }
    if (atomic_exchange_explicit(&p->want_disconnect, 0,
                                 memory_order_acq_rel)) {
        set_state(p, TP_PEER_BACKOFF);
        drain_proxy(p); // drops what was queued
        set_state(p, TP_PEER_IDLE);
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

static void read_cb(tp__io_fd *w, int revents);
static void write_cb(tp__io_fd *w, int revents);
static void retry_cb(tp__io_timer *w);

static void
conn_watch(conn *c)
{
    tp__io_fd_init(&c->rio, read_cb, c->fd, TP__IO_READ);
    tp__io_fd_init(&c->wio, write_cb, c->fd, TP__IO_WRITE);
    tp__io_timer_init(&c->retry, retry_cb, 0.001, 0.001);
    c->rio.data = c->wio.data = c->retry.data = c;
}

static void
fill_nonce(uint8_t *nonce)
{
    size_t got = 0;
    while (got < TP__WIRE_NONCE) {
        ssize_t r = getrandom(nonce + got, TP__WIRE_NONCE - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

static void
connect_peer(tp__peer *p)
{
    tp__dist *n = p->node;
    if (p->conn != NULL)
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    conn *c = fd >= 0 ? conn_new(n, fd, true) : NULL;
    if (c == NULL) {
        if (fd >= 0)
            close(fd);
        tp__log(n->sys, TP_LOG_ERR, "node: cannot connect to %s: %s", p->name,
                strerror(errno));
        enter_backoff(p);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->peer = p;
    c->st = C_CONNECTING;
    snprintf(c->addr, sizeof c->addr, "%s", strchr(p->name, '@') + 1);
    p->conn = c;
    set_state(p, TP_PEER_CONNECTING);
    conn_watch(c);
    if (connect(fd, (struct sockaddr *)&p->addr, sizeof p->addr) != 0 &&
        errno != EINPROGRESS) {
        conn_close(c, strerror(errno), true);
        return;
    }
    tp__io_fd_start(n->io, &c->wio); // completion shows as writability
}

// The connection to `c->peer_name` at `c->peer_inc` is authenticated: make
// it the peer's. Returns false (and refuses it) when another one wins. The
// acceptor (`accept`) sends ACCEPT only once it has decided, so a peer
// never sees a connection accepted and then refused.
static bool
conn_attach(conn *c, bool accept)
{
    tp__dist *n = c->node;
    tp__peer *p = c->peer ? c->peer : peer_get(n, c->peer_name);
    if (p == NULL) {
        conn_refuse(c, "too many peers");
        conn_close(c, "too many peers", true);
        return false;
    }
    // Its pids need a node-table index: a table full of incarnations (a
    // peer that restarted 65,535 times) refuses the connection rather
    // than let its pids pass for local ones.
    pthread_mutex_lock(&n->lock);
    uint16_t idx = ent_get_locked(n, p, c->peer_inc);
    pthread_mutex_unlock(&n->lock);
    if (idx == 0) {
        conn_refuse(c, "node table full");
        conn_close(c, "node table full", true);
        return false;
    }
    conn *old = p->conn;
    if (old != NULL && old != c) {
        uint32_t inc = atomic_load_explicit(&p->inc, memory_order_relaxed);
        if (old->st == C_UP && inc == c->peer_inc) {
            conn_refuse(c, "already connected");
            conn_close(c, "duplicate connection", true);
            return false;
        }
        if (old->st != C_UP && strcmp(n->name, p->name) < 0) {
            // Both sides dialled at once: the lower-named node's own
            // connection wins, and we are the lower one.
            conn_refuse(c, "simultaneous connect");
            conn_close(c, "simultaneous connect, keeping ours", false);
            return false;
        }
        // Our pending attempt loses, or the peer restarted: the new
        // connection replaces the old one.
        if (old->st == C_UP) {
            conn_close(old, "peer restarted", true);
        } else {
            p->conn = NULL;
            conn_free(old);
        }
        tp__io_timer_stop(n->io, &p->backoff);
    }
    if (accept)
        tp__wire_simple(&c->out, TP__F_ACCEPT); // before any queued frame
    c->peer = p;
    p->conn = c;
    c->st = C_UP;
    tp__io_timer_stop(n->io, &p->backoff);
    unauth_release(c);
    uint32_t prev = atomic_load_explicit(&p->inc, memory_order_relaxed);
    atomic_store_explicit(&p->idx, idx, memory_order_release);
    atomic_store_explicit(&p->inc, c->peer_inc, memory_order_release);
    if (prev != 0 && prev != c->peer_inc) {
        // Links and monitors made with the earlier life are void now.
        fire_noconnection(p);
    }
    p->backoff_ms = 100;
    bump(&p->connects, 1);
    set_state(p, TP_PEER_UP);
    tp__log(n->sys, TP_LOG_INFO, "node: up peer=%s incarnation=%u via=%s",
            p->name, c->peer_inc, c->outbound ? "connect" : "accept");
    notify_subs(n, p, TP_TAG_NODEUP, c->peer_inc, NULL);
    drain_proxy(p);
    return p->conn == c; // a failed write may have closed it
}

// Local pid from a peer-local pid value.
static tp_pid
from_remote(tp__peer *p, uint64_t v)
{
    if (v == 0)
        return TP_PID_NIL;
    uint16_t idx = atomic_load_explicit(&p->idx, memory_order_relaxed);
    return (tp_pid){((uint64_t)idx << 48) | v};
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

static void
free_chain(tp__msg *m)
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
        free_chain(first);
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
    int rc;
    switch (f->type) {
    case TP__F_LINK: {
        tp__msg *m = tp__msg_new_copy(sys, 0, from, &(uint64_t){0}, 8);
        if (m == NULL)
            return;
        m->kind = TP__MSG_LINK;
        if ((rc = tp__push_sys(sys, to, m)) != 0) {
            tp__msg_free(m);
            send_direct_signal(c, TP__F_EXIT, f->from, f->to, 0,
                               TP_REASON_NOPROC, true);
            return;
        }
        pairset_put(&p->links, pair_key(to.v, from.v), to.v, from.v, 0);
        return;
    }
    case TP__F_UNLINK:
        pairset_del(&p->links, pair_key(to.v, from.v), NULL);
        push_ref(sys, to, TP__MSG_UNLINK, from, 0);
        return;
    case TP__F_EXIT:
        if (f->linked)
            pairset_del(&p->links, pair_key(to.v, from.v), NULL);
        push_signal(sys, to, TP__MSG_EXIT, from, 0, f->reason, f->linked,
                    (const char *)f->text, f->text_len);
        return;
    case TP__F_MONITOR: {
        uint64_t ref = ((uint64_t)idx << 48) | f->ref;
        tp__msg *m = tp__msg_new_copy(sys, 0, from, &ref, sizeof ref);
        if (m == NULL)
            return;
        m->kind = TP__MSG_MONITOR;
        if ((rc = tp__push_sys(sys, to, m)) != 0) {
            tp__msg_free(m);
            send_direct_signal(c, TP__F_DOWN, f->from, f->to, f->ref,
                               TP_REASON_NOPROC, false);
            return;
        }
        pairset_put(&p->mon_in, ref, to.v, from.v, ref);
        return;
    }
    case TP__F_DEMONITOR: {
        uint64_t ref = ((uint64_t)idx << 48) | f->ref;
        pairset_del(&p->mon_in, ref, NULL);
        push_ref(sys, to, TP__MSG_DEMONITOR, from, ref);
        return;
    }
    case TP__F_DOWN:
        if (f->ref != 0)
            pairset_del(&p->mon_out, f->ref, NULL);
        push_signal(sys, to, TP__MSG_DOWN, from, f->ref, f->reason, false,
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
    conn_close(c, buf, true);
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
    tp__log(c->node->sys, TP_LOG_WARNING,
            "node: handshake %s %s failed: reason=\"%s\"",
            c->outbound ? "to" : "from",
            c->peer_name[0] ? c->peer_name : c->addr, why);
    conn_close(c, why, false);
}

// A frame before authentication. Returns false if `c` was closed.
static bool
handshake(conn *c, const tp__frame *f)
{
    tp__dist *n = c->node;
    uint8_t mac[TP__WIRE_MAC];
    switch (c->st) {
    case C_WAIT_HELLO:
        if (f->type != TP__F_HELLO)
            break;
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
        memcpy(c->nonce_peer, f->nonce, TP__WIRE_NONCE);
        fill_nonce(c->nonce_mine);
        if (!make_mac(n, mac, 'b', c->nonce_peer, c->nonce_mine, c->peer_name,
                      n->name, c->peer_inc, n->inc)) {
            auth_failed(c, "cannot compute proof");
            return false;
        }
        tp__wire_hello(&c->out, TP__F_CHALLENGE, n->name, n->inc,
                       c->nonce_mine, mac);
        c->st = C_WAIT_REPLY;
        return conn_flush(c);
    case C_WAIT_CHALLENGE: {
        if (f->type == TP__F_REFUSE)
            goto refused;
        if (f->type != TP__F_CHALLENGE)
            break;
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
        return conn_flush(c);
    }
    case C_WAIT_REPLY:
        if (f->type != TP__F_REPLY)
            break;
        if (!make_mac(n, mac, 'a', c->nonce_peer, c->nonce_mine, c->peer_name,
                      n->name, c->peer_inc, n->inc) ||
            !tp__wire_mac_eq(mac, f->mac)) {
            conn_refuse(c, "authentication failed");
            auth_failed(c, "peer failed to prove the shared secret");
            return false;
        }
        return conn_attach(c, true) && conn_flush(c);
    case C_WAIT_ACCEPT:
        if (f->type == TP__F_REFUSE)
            goto refused;
        if (f->type != TP__F_ACCEPT)
            break;
        return conn_attach(c, false);
    }
    bump(&n->rejected, 1);
    conn_close(c, "unexpected frame before authentication", true);
    return false;
refused : {
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
            conn_free(c);
            tp__io_timer_stop(n->io, &p->backoff);
            tp__io_timer_set(&p->backoff, n->cfg.handshake_timeout_ms / 1000.0,
                             0.0);
            tp__io_timer_start(n->io, &p->backoff);
            return false;
        }
        conn_close(c, why, false);
        return false;
    }
    char buf[160];
    snprintf(buf, sizeof buf, "refused by peer: %s", why);
    if (strcmp(why, "authentication failed") == 0)
        bump(&n->auth_failures, 1);
    conn_close(c, buf, true);
    return false;
}
}

// One frame: FR_OK, FR_CLOSED (c is freed) or FR_STALLED.
enum { FR_OK, FR_CLOSED, FR_STALLED };

// Handles decoded frame `f`; a SEND frame may join batch `b`.
static int
handle_frame(conn *c, const tp__frame *f, inbatch *b)
{
    bump(&c->node->frames_in, 1);
    if (c->st != C_UP)
        return handshake(c, f) ? FR_OK : FR_CLOSED;
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
        uint64_t now = (uint64_t)(tp__now_ns() / 1000);
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
    conn_close(c, "handshake frame after authentication", true);
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
    conn_close(c, why, true);
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
        if (c->st != C_UP && len > 1024) {
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
        return conn_flush(c);
    return true;
}

// Stops reading from `c` until its stalled messages fit: the receiver
// calls tp__node_unstall once it drains below its low-water mark; the
// timer retries anyway, in case it died meanwhile.
static void
stall(conn *c)
{
    tp__io_fd_stop(c->node->io, &c->rio);
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
static void
retry_stalled(tp__dist *n)
{
    // acquire: pairs with tp__node_unstall's store.
    if (!atomic_exchange_explicit(&n->want_retry, 0, memory_order_acquire))
        return;
    for (conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next; // retrying may close and free c
        if (c->stalled != NULL)
            retry_cb(&c->retry);
    }
}

static void
retry_cb(tp__io_timer *w)
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
    tp__io_fd_start(c->node->io, &c->rio);
    if (process_input(c) && c->stalled != NULL)
        stall(c);
}

static void
read_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    conn *c = w->data;
    for (int round = 0; round < 8; round++) {
        if (c->in_cap - c->in_len < 4096) {
            size_t cap = c->in_cap ? c->in_cap * 2 : IN_START;
            if (c->in_len + 4096 > cap)
                cap = c->in_len + 4096;
            uint8_t *in = realloc(c->in, cap);
            if (in == NULL) {
                conn_close(c, "out of memory", true);
                return;
            }
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0) {
            conn_close(c, "closed by peer", true);
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c, strerror(errno), true);
            return;
        }
        c->in_len += (size_t)r;
        c->last_rx = tp__io_now(c->node->io);
        bump(&c->node->bytes_in, (uint64_t)r);
        if (c->peer && c->st == C_UP)
            bump(&c->peer->bytes_in, (uint64_t)r);
        if (!process_input(c))
            return;
        if (c->stalled != NULL) {
            stall(c);
            return;
        }
        if ((size_t)r < 4096)
            break;
    }
}

static void
write_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    conn *c = w->data;
    tp__dist *n = c->node;
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_close(c, strerror(err), true);
            return;
        }
        tp__io_fd_stop(n->io, &c->wio);
        tp__io_fd_start(n->io, &c->rio);
        c->st = C_WAIT_CHALLENGE;
        fill_nonce(c->nonce_mine);
        tp__wire_hello(&c->out, TP__F_HELLO, n->name, n->inc, c->nonce_mine,
                       NULL);
        c->born = tp__io_now(n->io);
        conn_flush(c);
        return;
    }
    if (!conn_flush(c))
        return;
    tp__peer *p = c->peer;
    if (p != NULL && p->conn == c && c->st == C_UP &&
        c->out.len - c->out_off < OUT_HIGH / 2)
        drain_proxy(p);
}

// Keeps the pairs that link and monitor frames set up across the
// connection, as frame `m` (to `remote`) leaves for the peer.
static void
note_pairs(tp__peer *p, const tp__msg *m, tp_pid remote)
{
    tp_pid local = m->pub.from;
    switch (m->kind) {
    case TP__MSG_LINK:
        pairset_put(&p->links, pair_key(local.v, remote.v), local.v, remote.v,
                    0);
        break;
    case TP__MSG_UNLINK:
    case TP__MSG_EXIT:
        pairset_del(&p->links, pair_key(local.v, remote.v), NULL);
        break;
    case TP__MSG_MONITOR:
        pairset_put(&p->mon_out, m->pub.ref, local.v, remote.v, m->pub.ref);
        break;
    case TP__MSG_DEMONITOR:
        pairset_del(&p->mon_out, m->pub.ref, NULL);
        break;
    case TP__MSG_DOWN: {
        uint16_t idx = atomic_load_explicit(&p->idx, memory_order_relaxed);
        pairset_del(&p->mon_in, ((uint64_t)idx << 48) | m->pub.ref, NULL);
        break;
    }
    }
}

// Moves frames from `p`'s proxy into `c`'s output buffer until it holds
// OUT_HIGH bytes or the queue is empty, or, with `c` NULL, drops them
// (answering link and monitor requests). The proxy's one consumer is
// whoever holds the I/O lock: the I/O thread, or a worker uncorking. Sets
// *left to what the queue still counts; returns how many frames it took.
static uint32_t
take_frames(tp__peer *p, conn *c, uint32_t *left)
{
    tp__dist *n = p->node;
    tp_actor *q = p->proxy;
    bool up = c != NULL;
    uint32_t users = 0, total = 0, sent = 0;
    tp__msg *m;
    while (!(up && c->out.len - c->out_off > OUT_HIGH)) {
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
            note_pairs(p, m, remote);
            sent++;
        } else {
            answer_lost(n->sys, m->kind, m->pub.from, remote, m->pub.ref);
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
static void
drain_proxy(tp__peer *p)
{
    tp__dist *n = p->node;
    tp_actor *q = p->proxy;
    for (int pass = 0; pass < 64; pass++) {
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
                connect_peer(p);
            return;
        }
        uint32_t left;
        uint32_t total = take_frames(p, up ? c : NULL, &left);
        if (up && c->out.len > c->out_off) {
            conn_flush(c);
            if (p->conn != c)
                return; // the write failed and closed it
        }
        if (left == 0)
            return;
        if (up && c->out.len - c->out_off > OUT_HIGH)
            return; // write_cb drains again once the socket takes more
        if (total == 0) {
            // A sender is between publishing and linking its frame.
            kick(n, p);
            return;
        }
    }
    kick(n, p); // plenty more: let the loop breathe, then go on
}

// ---- the I/O thread's watchers ---------------------------------------------

static void
accept_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    tp__dist *n = w->data;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(n->lfd, (struct sockaddr *)&sa, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char addr[64];
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
        snprintf(addr, sizeof addr, "%s:%u", ip, ntohs(sa.sin_port));
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
        tp__io_fd_start(n->io, &c->rio);
    }
}

static void
tick_cb(tp__io_timer *w)
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
                conn_close(c, "handshake timeout", true);
            }
            continue;
        }
        if (now - c->last_rx > to) {
            conn_close(c, "heartbeat timeout", true);
            continue;
        }
        // Both sides ping every interval, busy or idle: were pings only
        // sent on idle links, each side's PONGs would keep the other one
        // from ever pinging, and it would never measure a round trip.
        if (now - c->last_ping >= hb * 0.9) {
            c->last_ping = now;
            tp__wire_ping(&c->out, TP__F_PING, (uint64_t)(tp__now_ns() / 1000));
            bump(&n->frames_out, 1);
            conn_flush(c);
        }
    }
}

// On the I/O thread at each wake-up: requests flagged on peers.
static void
node_wake(void *arg)
{
    tp__dist *n = arg;
    tp__io *io = n->io;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer *p = n->peers[i];
        if (atomic_exchange_explicit(&p->want_disconnect, 0,
                                     memory_order_acq_rel)) {
            atomic_store_explicit(&p->persistent, 0, memory_order_relaxed);
            tp__io_timer_stop(io, &p->backoff);
            if (p->conn != NULL) {
                atomic_store_explicit(&p->want_disconnect, 1,
                                      memory_order_relaxed);
                conn_close(p->conn, "disconnected locally", true);
            } else {
                set_state(p, TP_PEER_IDLE);
            }
        }
        if (atomic_exchange_explicit(&p->want_connect, 0,
                                     memory_order_acq_rel)) {
            int st = atomic_load_explicit(&p->state, memory_order_relaxed);
            if (p->conn == NULL &&
                (st == TP_PEER_IDLE ||
                 (st == TP_PEER_BACKOFF &&
                  atomic_load_explicit(&p->persistent, memory_order_relaxed))))
                connect_peer(p);
        }
        if (atomic_exchange_explicit(&p->want_flush, 0,
                                     memory_order_acq_rel) &&
            p->conn != NULL && p->conn->st == C_UP)
            conn_flush(p->conn);
        if (atomic_exchange_explicit(&p->kicked, 0, memory_order_acq_rel))
            drain_proxy(p);
    }
    retry_stalled(n);
}

// ---- secrets
// ----------------------------------------------------------------

static int
load_secret(tp__dist *n, const char *path)
{
    tp_system *sys = n->sys;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        tp__log(sys, TP_LOG_ERR, "node: secret file %s: %s", path,
                strerror(e));
        return e == ENOENT ? TP_ENOENT : e == EACCES ? TP_EPERM : TP_EINVAL;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tp__log(sys, TP_LOG_ERR, "node: secret file %s is not a regular file",
                path);
        rc = TP_EPERM;
    } else if ((st.st_mode & 077) != 0) {
        tp__log(sys, TP_LOG_ERR,
                "node: secret file %s has mode %03o: it must be readable by "
                "its owner only (0600 or 0400)",
                path, (unsigned)(st.st_mode & 0777));
        rc = TP_EPERM;
    } else if (st.st_size < SECRET_MIN || st.st_size > SECRET_MAX) {
        tp__log(sys, TP_LOG_ERR,
                "node: secret file %s holds %lld bytes: it needs %d to %d",
                path, (long long)st.st_size, SECRET_MIN, SECRET_MAX);
        rc = TP_EINVAL;
    } else if ((n->secret = malloc((size_t)st.st_size)) == NULL) {
        rc = TP_ENOMEM;
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, n->secret + got, (size_t)st.st_size - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                break;
            }
            got += (size_t)r;
        }
        if (got < SECRET_MIN) {
            tp__log(sys, TP_LOG_ERR, "node: secret file %s: short read", path);
            rc = TP_EINVAL;
        }
        n->secret_len = got;
    }
    close(fd);
    return rc;
}

// ---- lifetime
// ----------------------------------------------------------------

static void
node_free(tp__dist *n)
{
    if (n == NULL)
        return;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer *p = n->peers[i];
        tp__msg *m;
        while ((m = tp__mailbox_pop(&p->proxy->sys)) != NULL)
            tp__msg_retire(m);
        while ((m = tp__mailbox_pop(&p->proxy->user)) != NULL)
            tp__msg_retire(m);
        tp__mailbox_close(&p->proxy->sys);
        tp__mailbox_close(&p->proxy->user);
        free(p->proxy);
        pairset_free(&p->links);
        pairset_free(&p->mon_out);
        pairset_free(&p->mon_in);
        free(p);
    }
    for (uint32_t i = 1; i <= n->nents; i++)
        free(atomic_load_explicit(&n->ents[i], memory_order_relaxed));
    if (n->secret != NULL) {
        OPENSSL_cleanse(n->secret, n->secret_len);
        free(n->secret);
    }
    free(n->subs);
    if (n->lfd >= 0)
        close(n->lfd);
    if (n->watching) {
        tp__io_timer_stop(n->io, &n->tick);
        if (n->lfd >= 0)
            tp__io_fd_stop(n->io, &n->lio);
    }
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
}

static int
check_config(tp_system *sys, const tp_node_config *in, tp_node_config *cfg)
{
    if (in == NULL || in->name == NULL || !short_name_ok(in->name)) {
        tp__log(sys, TP_LOG_ERR,
                "node: name must be 1 to 48 characters of [A-Za-z0-9_.-]");
        return TP_EINVAL;
    }
    *cfg = *in;
    if (cfg->listen == NULL)
        cfg->listen = "127.0.0.1:0";
    if (cfg->max_frame == 0)
        cfg->max_frame = 1u << 20;
    if (cfg->heartbeat_ms == 0)
        cfg->heartbeat_ms = 500;
    if (cfg->timeout_ms == 0)
        cfg->timeout_ms = 2500;
    if (cfg->handshake_timeout_ms == 0)
        cfg->handshake_timeout_ms = 2000;
    if (cfg->send_queue == 0)
        cfg->send_queue = 8192;
    if (cfg->overflow == TP_OVERFLOW_DEFAULT)
        cfg->overflow = TP_OVERFLOW_BACKPRESSURE;
    if (cfg->max_unauthenticated == 0)
        cfg->max_unauthenticated = 64;
    if (cfg->reconnect_max_ms == 0)
        cfg->reconnect_max_ms = 5000;
    if (cfg->max_frame < 256 || cfg->max_frame > (1u << 30) ||
        cfg->heartbeat_ms < 10 || cfg->timeout_ms < 2 * cfg->heartbeat_ms ||
        cfg->handshake_timeout_ms < 10 || cfg->send_queue > (1u << 24) ||
        cfg->overflow > TP_OVERFLOW_DROP_OLDEST ||
        cfg->max_unauthenticated > 65536 || cfg->reconnect_max_ms < 100) {
        tp__log(sys, TP_LOG_ERR, "node: configuration field out of range");
        return TP_EINVAL;
    }
    return 0;
}

static int
open_listener(tp__dist *n)
{
    struct sockaddr_in sa;
    if (n->cfg.listen[0] == 0) {
        snprintf(n->name, sizeof n->name, "%s@127.0.0.1:0", n->short_name);
        return 0; // no listener; peers cannot dial us
    }
    if (parse_addr(n->cfg.listen, &sa, true) != 0) {
        tp__log(n->sys, TP_LOG_ERR,
                "node: listen address \"%s\" is not HOST:PORT (IPv4)",
                n->cfg.listen);
        return TP_EINVAL;
    }
    bool loopback = (ntohl(sa.sin_addr.s_addr) >> 24) == 127;
    if (!loopback && n->secret == NULL) {
        tp__log(n->sys, TP_LOG_ERR,
                "node: listening on %s needs a secret file (only loopback "
                "may go without)",
                n->cfg.listen);
        return TP_EINVAL;
    }
    n->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (n->lfd < 0)
        return TP_EAGAIN;
    int one = 1;
    setsockopt(n->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(n->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(n->lfd, 128) != 0) {
        int e = errno;
        tp__log(n->sys, TP_LOG_ERR, "node: cannot listen on %s: %s",
                n->cfg.listen, strerror(e));
        return e == EADDRINUSE ? TP_EADDRINUSE : TP_EINVAL;
    }
    socklen_t sl = sizeof sa;
    getsockname(n->lfd, (struct sockaddr *)&sa, &sl);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(n->name, sizeof n->name, "%s@%s:%u", n->short_name, ip,
             ntohs(sa.sin_port));
    return 0;
}

int
tp_node_start(tp_system *sys, const tp_node_config *in)
{
    if (sys == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    if (node_of(sys) != NULL)
        return TP_EEXIST;
    tp__dist *n = calloc(1, sizeof *n);
    if (n == NULL)
        return TP_ENOMEM;
    n->sys = sys;
    n->lfd = -1;
    pthread_mutex_init(&n->lock, NULL);
    tp__cond_init(&n->cond);
    int rc = check_config(sys, in, &n->cfg);
    if (rc != 0)
        goto fail;
    snprintf(n->short_name, sizeof n->short_name, "%s", in->name);
    n->cfg.name = n->short_name;
    if (in->secret_file != NULL && (rc = load_secret(n, in->secret_file)) != 0)
        goto fail;
    n->cfg.secret_file = NULL;
    if ((rc = open_listener(n)) != 0)
        goto fail;
    n->cfg.listen = NULL;
    while (n->inc == 0)
        if (getrandom(&n->inc, sizeof n->inc, 0) != sizeof n->inc)
            n->inc = 0;
    if ((n->io = tp__io_get(sys)) == NULL) {
        rc = TP_EAGAIN;
        goto fail;
    }
    double tick = n->cfg.heartbeat_ms;
    if (tick > n->cfg.timeout_ms / 5.0)
        tick = n->cfg.timeout_ms / 5.0;
    tp__io_timer_init(&n->tick, tick_cb, tick / 1000.0, tick / 1000.0);
    n->tick.data = n;
    if (n->lfd >= 0) {
        tp__io_fd_init(&n->lio, accept_cb, n->lfd, TP__IO_READ);
        n->lio.data = n;
    }
    // The loop runs already: register while it waits, then wake it.
    pthread_mutex_lock(&n->io->lock);
    tp__io_timer_start(n->io, &n->tick);
    if (n->lfd >= 0)
        tp__io_fd_start(n->io, &n->lio);
    n->watching = true;
    tp__io_on_wake(n->io, TP__IO_NODE, node_wake, n);
    tp__dist_hooks_install(sys);
    // release: routers and the I/O thread see the node complete.
    atomic_store_explicit(&sys->node, n, memory_order_release);
    pthread_mutex_unlock(&n->io->lock);
    tp__io_wake(n->io);
    tp__log(sys, TP_LOG_INFO, "node: started name=%s incarnation=%u%s",
            n->name, n->inc, n->secret ? " secret=yes" : " secret=no");
    return 0;
fail:
    node_free(n);
    return rc;
}

// Closes every connection once the I/O thread has stopped; run before
// the scheduler stops, so muted senders are released.
void
tp__node_stop(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->io->lock); // senders may still try a direct write
    while (n->conns != NULL)
        conn_free(n->conns);
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer *p = n->peers[i];
        p->conn = NULL;
        tp__io_timer_stop(n->io, &p->backoff);
        atomic_store_explicit(&p->state, TP_PEER_BACKOFF,
                              memory_order_release);
        drain_proxy(p);
    }
    pthread_mutex_unlock(&n->io->lock);
}

void
tp__node_free(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return;
    atomic_store_explicit(&sys->node, NULL, memory_order_release);
    node_free(n);
}

// ---- queries
// ------------------------------------------------------------------

const char *
tp_node_name(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n ? n->name : "";
}

uint32_t
tp_node_incarnation(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n ? n->inc : 0;
}

int
tp_node_connect(tp_system *sys, const char *node, int timeout_ms)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || tp_node_name_check(node) != 0 ||
        strcmp(node, n->name) == 0 || timeout_ms < 0)
        return TP_EINVAL;
    if (timeout_ms > 0 && (tp__self.actor != NULL || tp__self.worker != NULL))
        return TP_EPERM;
    tp__peer *p = peer_get(n, node);
    if (p == NULL)
        return TP_ENOMEM;
    uint64_t fails = atomic_load_explicit(&p->fails, memory_order_acquire);
    atomic_store_explicit(&p->persistent, 1, memory_order_relaxed);
    atomic_store_explicit(&p->want_connect, 1, memory_order_release);
    kick(n, p);
    if (timeout_ms == 0)
        return 0;
    struct timespec dl;
    tp__deadline(&dl, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        if (atomic_load_explicit(&p->state, memory_order_acquire) ==
            TP_PEER_UP)
            break;
        if (atomic_load_explicit(&p->fails, memory_order_acquire) != fails) {
            rc = TP_ENOTCONN;
            break;
        }
        if (pthread_cond_timedwait(&n->cond, &n->lock, &dl) == ETIMEDOUT) {
            rc = TP_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

int
tp_node_disconnect(tp_system *sys, const char *node)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || node == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&n->lock);
    tp__peer *p = peer_find_locked(n, node);
    pthread_mutex_unlock(&n->lock);
    if (p == NULL)
        return TP_ENOENT;
    atomic_store_explicit(&p->want_disconnect, 1, memory_order_release);
    kick(n, p);
    return 0;
}

int
tp_node_peers(tp_system *sys, tp_peer_info *out, size_t max)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || (out == NULL && max > 0))
        return TP_EINVAL;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np && i < max; i++) {
        tp__peer *p = n->peers[i];
        tp_peer_info *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->node, sizeof o->node, "%s", p->name);
        // relaxed: a snapshot of statistics.
        o->incarnation = atomic_load_explicit(&p->inc, memory_order_relaxed);
        o->state = atomic_load_explicit(&p->state, memory_order_relaxed);
        o->rtt_us = atomic_load_explicit(&p->rtt_us, memory_order_relaxed);
        o->queued = TP__CNT_USERS(
            atomic_load_explicit(&p->proxy->count, memory_order_relaxed));
        o->sent = atomic_load_explicit(&p->sent, memory_order_relaxed);
        o->received = atomic_load_explicit(&p->received, memory_order_relaxed);
        o->bytes_out =
            atomic_load_explicit(&p->bytes_out, memory_order_relaxed);
        o->bytes_in = atomic_load_explicit(&p->bytes_in, memory_order_relaxed);
        o->dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
        o->connects = atomic_load_explicit(&p->connects, memory_order_relaxed);
    }
    return (int)np;
}

int
tp_node_stats_get(tp_system *sys, tp_node_stats *out)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || out == NULL)
        return TP_EINVAL;
    memset(out, 0, sizeof *out);
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np; i++)
        out->peers_up +=
            atomic_load_explicit(&n->peers[i]->state, memory_order_relaxed) ==
            TP_PEER_UP;
    // relaxed: statistics.
    out->frames_in = atomic_load_explicit(&n->frames_in, memory_order_relaxed);
    out->frames_out =
        atomic_load_explicit(&n->frames_out, memory_order_relaxed);
    out->bytes_in = atomic_load_explicit(&n->bytes_in, memory_order_relaxed);
    out->bytes_out = atomic_load_explicit(&n->bytes_out, memory_order_relaxed);
    out->frames_rejected =
        atomic_load_explicit(&n->rejected, memory_order_relaxed);
    out->auth_failures =
        atomic_load_explicit(&n->auth_failures, memory_order_relaxed);
    out->handshakes_timed_out =
        atomic_load_explicit(&n->hs_timeouts, memory_order_relaxed);
    out->connections_refused =
        atomic_load_explicit(&n->refused, memory_order_relaxed);
    out->nodedowns = atomic_load_explicit(&n->nodedowns, memory_order_relaxed);
    return 0;
}
