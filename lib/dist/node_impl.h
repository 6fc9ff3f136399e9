// SPDX-License-Identifier: MIT
// The node's private header, shared by the files of lib/dist that make up
// distribution and by nothing else: the node, its peers, their
// connections and the pairs links and monitors set up across them, the
// node's defaults and limits, and the calls the files make of each other.
//
//   table.c      names, the peer list and the node table (pids' node bits)
//   send.c       routing to peers, corking, sending by name
//   connect.c    listening, accepting, dialling, backoff, closing
//   handshake.c  the authentication state machine
//   input.c      reading, decoding and delivering frames, stalls
//   output.c     moving queued frames into connections and writing them
//   pairs.c      links and monitors across connections, noconnection
//   node.c       the node's life, configuration, queries, subscribers
//
// Threads: the I/O thread owns connections and everything marked "I/O
// thread"; a thread holding io->lock while the loop waits may stand in for
// it (corking, direct writes). node->lock guards the peer list, the node
// table and the subscribers.
#ifndef TROUPE_DIST_NODE_IMPL_H
#define TROUPE_DIST_NODE_IMPL_H

#include "core/core.h"
#include "dist/dist.h"
#include "dist/wire.h"
#include "io/io.h"
#include "signals/signals.h"

#include <netinet/in.h>
#include <sys/socket.h>

// ---- defaults, limits and timings ------------------------------------

// What a zero field of tp_node_config means.
#define TP__NODE_LISTEN_DEFAULT "127.0.0.1:0"
#define TP__NODE_MAX_FRAME_DEFAULT (1u << 20)
#define TP__NODE_HEARTBEAT_MS_DEFAULT 500
#define TP__NODE_TIMEOUT_MS_DEFAULT 2500
#define TP__NODE_HANDSHAKE_MS_DEFAULT 2000
#define TP__NODE_SEND_QUEUE_DEFAULT 8192
#define TP__NODE_MAX_UNAUTH_DEFAULT 64
#define TP__NODE_RECONNECT_MAX_MS_DEFAULT 5000

// The ranges check_config (node.c) accepts.
#define TP__NODE_MAX_FRAME_MIN 256
#define TP__NODE_MAX_FRAME_MAX (1u << 30)
#define TP__NODE_HEARTBEAT_MS_MIN 10
#define TP__NODE_HANDSHAKE_MS_MIN 10
#define TP__NODE_SEND_QUEUE_MAX (1u << 24)
#define TP__NODE_MAX_UNAUTH_MAX 65536
#define TP__NODE_RECONNECT_MAX_MS_MIN 100
// Warnings about connections that never authenticated are rate-limited
// per kind (connect.c): the first LOG_BURST in a window of LOG_WINDOW_S
// seconds are logged one by one, the rest counted and reported in one
// summary line when the window ends.
#define TP__NODE_LOG_BURST 5
#define TP__NODE_LOG_WINDOW_S 10.0
enum {
    TP__HS_EVICTED, // dropped to make room for a newer connection
    TP__HS_REFUSED, // not accepted
    TP__HS_TIMEOUT, // handshake deadline passed
    TP__HS_CLOSED,  // closed, or broke the protocol, before authenticating
    TP__HS_AUTH,    // a proof of the secret that failed
    TP__HS_KINDS
};
// A peer's timeout covers at least this many heartbeats; the tick that
// checks them runs at least this often per timeout.
#define TP__NODE_TIMEOUT_BEATS 2
#define TP__NODE_TICKS_PER_TIMEOUT 5.0
// A ping is due a little before a full interval has passed, so that a
// tick landing just short of it does not put the ping off by a whole tick.
#define TP__NODE_PING_SLACK 0.9

#define TP__NODE_SHORT_MAX 48   // a node's short name, bytes
#define TP__NODE_PEERS_MAX 4096 // peers a node knows
#define TP__NODE_ENTS_MAX 65535 // node-table entries; 0 is local
#define TP__NODE_IDX_SHIFT 48   // a pid's node-table index, above it
#define TP__NODE_REF_MASK                                                     \
    ((1ull << TP__NODE_IDX_SHIFT) - 1) // local pids, refs
#define TP__NODE_SECRET_MIN 32         // secret file, bytes
#define TP__NODE_SECRET_MAX 4096
// listen(2)'s backlog: room for a flood of connections (the kernel caps it
// at net.core.somaxconn), so that a peer's SYN is queued behind them, not
// dropped and retried a second later.
#define TP__NODE_BACKLOG 4096
#define TP__NODE_ACCEPT_BATCH 16 // accepts per readiness event

// Reconnecting: the first delay after a failure, doubled per failure up to
// reconnect_max_ms, each drawn from [0.75, 1.25) times the current one.
#define TP__NODE_BACKOFF_FIRST_MS 100
#define TP__NODE_BACKOFF_JITTER_MIN 0.75
#define TP__NODE_BACKOFF_JITTER_STEPS 512 // of 1/1024 each above the min

// Output: a proxy is not drained past OUT_HIGH buffered bytes; the write
// callback drains again below half of it; a buffer grown past OUT_SHRINK bytes
// is freed once empty. A drain makes at most DRAIN_PASSES passes before it
// lets the loop run.
#define TP__NODE_OUT_HIGH (256 * 1024)
#define TP__NODE_OUT_SHRINK (4 * TP__NODE_OUT_HIGH)
#define TP__NODE_DRAIN_PASSES 64

// Input: the buffer starts at IN_START bytes and keeps READ_ROOM free
// for each read; a readiness event reads at most READ_ROUNDS times.
// Before authentication a frame is at most HS_FRAME_MAX bytes.
#define TP__NODE_IN_START (64 * 1024)
#define TP__NODE_READ_ROOM 4096
#define TP__NODE_READ_ROUNDS 8
#define TP__NODE_HS_FRAME_MAX 1024
// A connection stalled on a full mailbox retries this often (seconds)
// even when no wake-up comes.
#define TP__NODE_RETRY_S 0.001

// A thread outside any actor sending by name to a full peer queue retries
// every SEND_WAIT_NS, at most SEND_WAIT_ROUNDS times (about 5 s).
#define TP__NODE_SEND_WAIT_NS 100000
#define TP__NODE_SEND_WAIT_ROUNDS 50000

// ---- the node, its peers and connections -------------------------------

// A connection's state: dialling, then the handshake (WIRE.md) from the
// initiator's or the acceptor's side, then up.
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

// Pairs indexed by a 64-bit key, with slot reuse. I/O thread only.
typedef struct pairset {
    tp__map index; // key -> slot + 1
    pair *slots;
    uint64_t *keys;
    uint32_t len, cap;
    uint32_t *free;
    uint32_t nfree;
} pairset;

// One TCP connection, inbound or outbound. I/O thread (or io->lock).
typedef struct conn {
    tp__dist *node;
    tp__peer *peer; // outbound: from the start; inbound: once named
    int fd;
    int st;
    bool outbound;
    bool counted_unauth;
    bool known;    // its HELLO named a peer that was up before (eviction)
    bool reading;  // in node->pfd (poll.c)
    int tls_st;    // TP__TLS_* while ssl is set
    bool tls_more; // TLS holds input a capped read left (node_wake)
    bool tls_read_writes; // a read waits for TLS to write: wio reads again
    struct ssl_st *ssl;   // TLS (tls.c), or NULL
    tp__io_fd wio;
    tp__io_timer retry; // a delivery refused by a full mailbox, retried
    double born, last_rx, last_ping;
    uint64_t seq;               // order of creation, for eviction
    char addr[TP__ADDR_STRLEN]; // the peer's, for logs
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

// A remote node we know of. Its proxy is its send queue (send.c).
struct tp__peer {
    tp__dist *node;
    char name[TP_NODE_NAME_MAX];
    struct sockaddr_storage addr; // where to dial it
    socklen_t addr_len;
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

// A node-table entry: what a remote pid's node bits name.
typedef struct ent {
    tp__peer *peer;
    uint32_t inc;
} ent;

// One kind's window of rate-limited warnings. I/O thread (or io->lock).
typedef struct hslog {
    double start;
    unsigned logged;
    uint64_t held; // events not logged in this window
    char last[TP__ADDR_STRLEN];
} hslog;

struct tp__dist {
    tp_system *sys;
    tp_node_config cfg;
    char name[TP_NODE_NAME_MAX];
    char short_name[64];
    uint32_t inc;
    uint8_t *secret;
    char *seeds; // cfg.seeds points here: the caller's may go
    size_t secret_len;
    int lfd;
    struct tp_test_net *net; // a test system's in-memory net, or NULL
    tp__io *io;              // the I/O thread; its lock guards what follows
    tp__io_fd lio;
    tp__io_timer tick;
    bool watching; // lio and tick are on the loop
    conn *conns;
    uint64_t conn_seq;
    unsigned unauth;
    hslog hslogs[TP__HS_KINDS];
    // Reading (poll.c): the connections' sockets, in an epoll set the loop
    // watches with pio, unless worker `poller` (a tp__worker) polls it;
    // pwatch then checks that it still does.
    struct ssl_ctx_st *tls; // TLS for every connection (tls.c), or NULL
    int pfd;
    unsigned nreading; // connections in it
    tp__io_fd pio;
    tp__io_timer pwatch;
    _Atomic(void *) poller; // written under io->lock
    // The one connection read when only one is: the poller reads it
    // without asking epoll first (poll.c). Written under io->lock.
    _Atomic(void *) solo;
    _Atomic int64_t poll_seen;  // ns: the poller's last look
    _Atomic int64_t last_input; // ns: the last read that got bytes

    pthread_mutex_t lock; // peers, ents, subscribers; cond for waiters
    pthread_cond_t cond;
    tp__peer *peers[TP__NODE_PEERS_MAX];
    _Atomic uint32_t npeers;
    _Atomic(ent *) ents[TP__NODE_ENTS_MAX + 1];
    uint32_t nents;
    tp_pid *subs;
    size_t nsubs, subs_cap;

    _Atomic int want_retry; // an actor a connection stalled on has room
    _Atomic int want_more;  // a connection has tls_more set
    _Atomic uint64_t frames_in, frames_out, bytes_in, bytes_out;
    _Atomic uint64_t frames_polled; // of frames_in, read by a worker
    _Atomic uint64_t rejected, auth_failures, hs_timeouts, refused, nodedowns;
    _Atomic uint64_t evicted;
};

static inline void
bump(_Atomic uint64_t *c, uint64_t n)
{
    // relaxed: statistics.
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline tp__dist *
node_of(tp_system *sys)
{
    // acquire: the node is fully built before it is published.
    return sys ? atomic_load_explicit(&sys->node, memory_order_acquire) : NULL;
}

// ---- table.c: names, peers, the node table (any thread) ----------------

bool tp__short_name_ok(const char *s);
// The peer named `name` (a full node name); node->lock held.
tp__peer *tp__peer_find_locked(tp__dist *n, const char *name);
// Sets *out to the peer named `name` (a full node name), created if new.
// Returns 0, TP_EINVAL (a malformed name, or this node's own), TP_EAGAIN
// (TP__NODE_PEERS_MAX peers already) or TP_ENOMEM.
int tp__peer_get(tp__dist *n, const char *name, tp__peer **out);
// Sets *idx to the node-table index for `p` at incarnation `inc`, created
// if new; node->lock held. Returns 0, TP_EAGAIN (the table is full) or
// TP_ENOMEM.
int tp__ent_get_locked(tp__dist *n, tp__peer *p, uint32_t inc, uint16_t *idx);
ent *tp__ent_at(tp__dist *n, uint32_t idx);
// Frees a peer and what its proxy still holds (the node is stopping).
void tp__peer_free(tp__peer *p);

// ---- send.c ----------------------------------------------------------

// Flags `p` for the I/O thread and wakes it. Any thread.
void tp__peer_kick(tp__dist *n, tp__peer *p);

// ---- connect.c (I/O thread) --------------------------------------------

// Sets `p`'s state and wakes threads waiting in tp_node_connect.
void tp__peer_set_state(tp__peer *p, int st);
void tp__peer_backoff_cb(tp__io_timer *w);
void tp__peer_connect(tp__peer *p);
// An authenticated connection no longer counts against the cap.
void tp__conn_unauth_release(conn *c);
// Whether a warning of kind TP__HS_* about a connection from `addr` is
// logged now; if not, it is counted for the window's summary.
bool tp__hslog_ok(tp__dist *n, int kind, const char *addr);
void tp__conn_free(conn *c);
// Closes `c`. If it was its peer's connection, the peer goes down (an up
// connection: nodedown and noconnection) and backs off.
void tp__conn_close(conn *c, const char *why, bool log_it);
void tp__conn_dialled(conn *c);
void tp__node_accept_cb(tp__io_fd *w, int revents);
void tp__node_tick_cb(tp__io_timer *w);
// Opens the listening socket and sets the node's full name.
int tp__node_listen(tp__dist *n);

// ---- net.c: test systems' in-memory net (troupe/test.h), on the test's
// thread ------------------------------------------------------------------

// Listens on `sa` in the node's net, a port 0 replaced by a free one; sets
// n->lfd to a descriptor readable while dials wait. Returns 0 or an errno.
int tp__net_listen(tp__dist *n, struct sockaddr_storage *sa, socklen_t *sl);
// The node leaves the net: its listener goes, dials it never accepted are
// refused. Sets n->net to NULL.
void tp__net_unlisten(tp__dist *n);
// A connected socket to whoever listens on `sa` in the net, or -1 with
// errno (ECONNREFUSED when no one does).
int tp__net_dial(tp__dist *n, const struct sockaddr_storage *sa);
// The next dial waiting for the node's listener, with the dialler's
// address in *sa, or -1 with errno EAGAIN.
int tp__net_accept(tp__dist *n, struct sockaddr_storage *sa);
// A node's incarnation, drawn from the net's seed: a member restarted with
// its own seed still gets a new one.
uint32_t tp__net_incarnation(tp__dist *n);
// The clock a node stamps pings with: the virtual one in a net.
static inline int64_t
tp__dist_now_ns(const tp__dist *n)
{
    return n->net != NULL ? tp__test_now_ns(n->sys) : tp__now_ns();
}

// ---- handshake.c (I/O thread) ------------------------------------------

// An outbound connection is established: send HELLO.
// Returns false when writing it failed and closed (freed) `c`.
bool tp__handshake_start(conn *c);
// A frame before authentication. Returns false if `c` was closed.
bool tp__handshake(conn *c, const tp__frame *f);

// ---- input.c (I/O thread) ----------------------------------------------

void tp__msg_chain_free(tp__msg *m);
void tp__node_retry_stalled(tp__dist *n);
void tp__conn_retry_cb(tp__io_timer *w);
// Reads what `c`'s socket holds and acts on it.
void tp__conn_read(conn *c);
// On the I/O thread: reads again where tp__conn_read left input in TLS.
void tp__node_read_more(tp__dist *n);

// ---- tls.c (I/O thread, or io->lock) --------------------------------------

// A connection's TLS: handshaking, up, or broken by a fatal error (no
// close_notify is sent then).
enum { TP__TLS_HANDSHAKE = 1, TP__TLS_UP, TP__TLS_BROKEN };

// Sets up n->tls from cfg's three files when they are given (all or none).
// Returns 0, TP_EINVAL (a partial set; a certificate, key or CA that does
// not load, match or verify), TP_ENOENT or another TP_E* for a file that
// cannot be read; each refusal logged.
int tp__tls_init(tp__dist *n, const tp_node_config *cfg);
void tp__tls_free(tp__dist *n);
// Gives `c` its TLS layer, as client when it dialled. False: no memory.
bool tp__tls_attach(conn *c);
void tp__tls_detach(conn *c);
// Moves `c`'s TLS handshake on. Returns 1 when it is done, 0 when it
// waits for the socket, -1 when it failed and closed `c` (logged).
int tp__tls_step(conn *c);
// tp__tls_step, then the node's handshake when TLS is up: HELLO from the
// side that dialled (connect.c). Returns true when TLS is up and `c` open.
bool tp__conn_tls_advance(conn *c);
// Reads into or writes from `c`'s socket, through TLS when it has it: as
// read(2) and a non-blocking send(2) with MSG_NOSIGNAL.
ssize_t tp__conn_recv(conn *c, void *buf, size_t size);
ssize_t tp__conn_write(conn *c, const void *buf, size_t size);
// Whether TLS holds bytes of `c` already read from its socket.
bool tp__conn_pending(const conn *c);

// ---- poll.c (I/O thread, or io->lock) -------------------------------------

// Sets up and tears down the node's epoll set and its watchers (pfd).
int tp__poll_init(tp__dist *n);
void tp__poll_start(tp__dist *n);
void tp__poll_free(tp__dist *n);
// Starts or stops reading `c`. read_on returns false when the socket
// cannot join the set (no memory): the caller closes `c`.
bool tp__conn_read_on(conn *c);
void tp__conn_read_off(conn *c);
// io->lock held: the loop watches the set again.
void tp__poll_reclaim(tp__dist *n);

// ---- output.c (I/O thread, or io->lock) --------------------------------

// Writes what `c` has buffered. Returns false when a write error closed
// (and freed) `c`.
bool tp__conn_flush(conn *c);
void tp__conn_write_cb(tp__io_fd *w, int revents);
uint32_t tp__peer_take(tp__peer *p, conn *c, uint32_t *left);
void tp__peer_drain(tp__peer *p);

// ---- pairs.c (I/O thread, but for the pushes) ----------------------------

uint64_t tp__pair_key(uint64_t a, uint64_t b);
// Records pair (a, b, ref) under `key`. Returns 0 or TP_ENOMEM (then `s`
// is as it was).
int tp__pairset_put(pairset *s, uint64_t key, uint64_t a, uint64_t b,
                    uint64_t ref);
// tp__pairset_put into `s` of `p`, logging a pair that memory could not
// hold: its local end would not hear of a lost connection.
void tp__pairs_put(tp__peer *p, pairset *s, uint64_t key, uint64_t a,
                   uint64_t b, uint64_t ref);
bool tp__pairset_del(pairset *s, uint64_t key, pair *out);
void tp__pairset_free(pairset *s);
void tp__pairs_note(tp__peer *p, const tp__msg *m, tp_pid remote);
void tp__pairs_fire(tp__peer *p);
// Pushes an exit signal or DOWN (tp__signal payload) into `to`'s system
// lane; any thread.
void tp__push_signal(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from,
                     uint64_t ref, int reason, bool linked, const char *text,
                     size_t text_len);
// Pushes a system message whose payload is `ref`; any thread.
void tp__push_ref(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from,
                  uint64_t ref);
void tp__answer_lost(tp_system *sys, uint16_t kind, tp_pid local,
                     tp_pid remote, uint64_t ref);

// ---- node.c ------------------------------------------------------------

// Tells the subscribers of tp_monitor_nodes that `p` went up or down.
void tp__node_notify(tp__dist *n, tp__peer *p, uint32_t tag, uint32_t inc,
                     const char *why);

#endif
