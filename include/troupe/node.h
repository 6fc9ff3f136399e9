// SPDX-License-Identifier: MIT
// Distribution: make a system a node that other nodes reach over TCP.
//
// Once tp_node_start has run, tp_send, tp_link, tp_monitor and tp_exit
// accept pids of actors on other nodes and behave as they do locally:
// per pair of actors messages arrive in send order, at most once. A
// message's sender (msg->from) may be a remote pid, so a reply is a plain
// tp_send. Pids travel inside payloads as a msgpack extension type
// (tp_pack_pid and tp_unpack_pid in the opt-in <troupe/msgpack.h>).
//
// A node's full name is "NAME@HOST:PORT" (the address it listens on), so
// a pid or a name carries what is needed to connect to its node: the first
// send to a node that is not connected connects to it. Nodes prove to each
// other that they hold the same secret (HMAC-SHA256 challenge/response)
// before any other frame is accepted. A peer silent for longer than the
// configured timeout is declared down: every link across it gets an exit
// signal and every monitor a DOWN with reason TP_REASON_NOCONNECTION.
// lib/dist/WIRE.md documents the protocol.
#ifndef TROUPE_NODE_H
#define TROUPE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "timer.h"

// Message tags delivered to actors that called tp_monitor_nodes.
#define TP_TAG_NODEUP (TP_TAG_RESERVED + 16)   // data: tp_node_msg
#define TP_TAG_NODEDOWN (TP_TAG_RESERVED + 17) // data: tp_node_msg

// Longest full node name, NUL included.
#define TP_NODE_NAME_MAX 128

typedef struct tp_node_msg {
    char node[TP_NODE_NAME_MAX]; // the peer's full name
    uint32_t incarnation;
    char why[96]; // nodedown: what happened ("heartbeat timeout", ...)
} tp_node_msg;

// Node configuration. A zeroed struct, apart from `name`, means defaults:
// a time field left 0 takes the default named with it (not "no wait"), and
// one below its minimum, negative values included, is TP_EINVAL.
typedef struct tp_node_config {
    // Short name: 1 to 48 bytes of [A-Za-z0-9_.-]. Required.
    const char *name;
    // "A.B.C.D:PORT" or "[IPv6]:PORT" to listen on; port 0 picks one.
    // NULL means "127.0.0.1:0". Any address other than loopback needs a
    // secret.
    const char *listen;
    // Path of a file holding the shared secret: at least 32 bytes, at most
    // 4096, a regular file with no permission for group or others (as
    // mode 0600 or 0400).
    // NULL: no secret, only for nodes on loopback (every node must then
    // have none).
    const char *secret_file;
    uint32_t max_frame;           // largest frame accepted; 0 = 1 MiB
    int heartbeat_ms;             // ping an idle peer this often; 0 = 500
    int timeout_ms;               // a peer silent this long is down (found
                                  // within 1.2 times this); 0 = 2500
    int handshake_timeout_ms;     // 0 = 2000
    uint32_t send_queue;          // messages queued per peer; 0 = 8192
    tp_overflow overflow;         // a full peer queue: DEFAULT = BACKPRESSURE;
                                  // EXIT_RECEIVER is refused
    unsigned max_unauthenticated; // connections mid-handshake; 0 = 64;
                                  // a new one past it evicts the oldest
    int reconnect_max_ms;         // backoff cap between attempts; 0 = 5000
    // TLS 1.3 for every connection: this node's certificate (PEM, with any
    // intermediate CA certificates after it), its private key (PEM), and the
    // CA certificates (PEM) a peer's certificate must chain to. All three or
    // none. With them the node neither accepts nor makes a plaintext
    // connection, and both sides verify each other's certificate; the
    // secret's handshake runs inside TLS. Without them, a node listening on
    // an address other than loopback logs a warning at start.
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;
    // A full mesh: when a node comes up, each side tells the other the
    // nodes it is connected to, and each connects to those it was not
    // (kept up as tp_node_connect keeps a connection), so a node that
    // reaches any member of a cluster ends connected to every member. Every
    // node of the cluster needs it on (a node without it answers nothing).
    // A node disconnected with tp_node_disconnect is connected to again
    // when a peer names it.
    bool mesh;
    // Seeds: nodes to connect to at start and keep connected (as
    // tp_node_connect does), "NAME@HOST:PORT" entries separated by commas
    // or blanks. HOST is an address as in a node's full name, or a DNS
    // name: each of its A or AAAA records, of the family this node listens
    // on, is taken as node NAME@ADDRESS:PORT (so the nodes behind one DNS
    // name share a short name and a port), resolved when the node starts
    // and every 10 s again, on a thread of its own, so nodes added behind
    // the name are found (a Kubernetes headless service, Consul's DNS or
    // /etc/hosts serve); one missing from three answers in a row while it is
    // down is disconnected from (tp_node_disconnect). NULL: none. A
    // malformed entry is TP_EINVAL (tp_node_seeds_check).
    const char *seeds;
} tp_node_config;

// Turns `sys` into a node: loads the secret, opens the listening socket and
// starts the I/O thread. Call it once, from outside any actor, before or
// after tp_system_start. Returns 0, TP_EINVAL (a bad field, a non-loopback
// address without a secret), TP_EPERM (secret file with loose permissions
// or not a regular file; called from an actor), TP_ENOENT (no secret
// file), TP_EEXIST (already a node), the error socket(2), bind(2) or
// listen(2) gave (TP_EADDRINUSE, TP_EADDRNOTAVAIL, TP_EACCES,
// TP_EAFNOSUPPORT, ...), TP_ENOMEM or TP_EAGAIN.
// Each refusal is logged with its reason.
TP_API int tp_node_start(tp_system *sys, const tp_node_config *cfg);

// The node's full name ("alpha@127.0.0.1:40123") or "" when `sys` is not a
// node. Valid until the system is destroyed. Any thread.
TP_API const char *tp_node_name(tp_system *sys);

// The node's incarnation: a random non-zero number drawn at start, so pids
// of a node that restarts under the same name never reach the new one.
TP_API uint32_t tp_node_incarnation(tp_system *sys);

// Connects to `node` ("NAME@HOST:PORT") and keeps reconnecting with
// backoff whenever the connection is lost. With `timeout_ms` 0 it returns
// at once, the connection being made in the background (any thread,
// actors too); otherwise it waits until the connection is up, up to
// `timeout_ms` or, with -1, until it is up or the attempt failed (not from
// inside an actor: TP_EPERM). Returns 0, TP_EINVAL (not a node, bad name,
// `timeout_ms` below -1), TP_EAGAIN (the node knows 4096 peers already),
// TP_ENOMEM, TP_ETIMEDOUT or TP_ENOTCONN (the attempt failed: refused,
// wrong secret ...; the log says why).
TP_API int tp_node_connect(tp_system *sys, const char *node, int timeout_ms);

// Closes the connection to `node`, as if it had gone down, and stops
// reconnecting to it. Returns 0, TP_EINVAL or TP_ENOENT.
TP_API int tp_node_disconnect(tp_system *sys, const char *node);

// The pid of the actor registered as `name` on `node` is not known in
// advance; these send to it by name. Same codes as tp_send, and those of
// tp_node_connect for a node not known yet (TP_EINVAL for a malformed
// one); a name that is not registered there loses the message (counted
// in the peer's stats): tp_request_name_at below is told instead.
TP_API int tp_send_name_at(tp_ctx *ctx, const char *name, const char *node,
                           uint32_t tag, const void *data, size_t size);
TP_API int tp_system_send_name_at(tp_system *sys, const char *name,
                                  const char *node, uint32_t tag,
                                  const void *data, size_t size);

// ---- names and spawning on other nodes ---------------------------------
//
// Each node runs an actor registered as "troupe.remote" (started by
// tp_node_start) that answers the other nodes' lookups and spawns, and
// carries this node's own requests: one message each way.

// Answers delivered to the actor that asked, msg->ref the request's ref.
#define TP_TAG_WHEREIS (TP_TAG_RESERVED + 20) // data: tp_remote_answer
#define TP_TAG_SPAWNED (TP_TAG_RESERVED + 21) // data: tp_remote_answer

typedef struct tp_remote_answer {
    // 0 with `pid` set, or why not: TP_ENOACTOR (no actor has the name
    // there), TP_ENOENT (no behaviour is spawnable under that name there),
    // the code tp_spawn returned there (TP_EINIT, init's own code, ...),
    // TP_ETIMEDOUT (no answer within the timeout: a request to a node
    // that is down waits for it to come back until then), TP_ENOTCONN
    // (the connection to the node was lost after the request went out,
    // before the answer came), TP_EMSGSIZE (the request is larger than a
    // frame), TP_ENOMEM, or another code sending the request failed with.
    int error;
    tp_pid pid;
} tp_remote_answer;

// Asks `node` ("NAME@HOST:PORT", this node's own name included) for the
// actor registered there as `name`. The running actor receives exactly
// one TP_TAG_WHEREIS message with msg->ref == *ref (`ref` may be NULL):
// the pid, usable as any remote pid, or the reason there is none, within
// `timeout_ms` (-1: as long as it takes; a node that never comes up then
// never answers). A request to a node not connected waits for it to come
// up, the node connecting to it (and keeping it connected, as
// tp_node_connect does). Returns 0,
// TP_EINVAL (NULL, bad name or node, `timeout_ms` below -1, not a node),
// TP_EPERM (not on the actor's thread) or TP_ENOMEM, in which case nothing
// follows.
TP_API int tp_whereis_at(tp_ctx *ctx, const char *name, const char *node,
                         int timeout_ms, uint64_t *ref);

// As tp_whereis_at from a thread outside the system, waiting for the
// answer: returns 0 with the pid in `*out`, the answer's error, or
// tp_whereis_at's codes (TP_EPERM inside an actor).
TP_API int tp_system_whereis_at(tp_system *sys, const char *name,
                                const char *node, int timeout_ms, tp_pid *out);

// Sends a request (as tp_request) to the actor registered as `name` on
// `node` (this node's own name included), and stores its reference in
// `*ref` (may be NULL). The name is looked up there first, through the
// nodes' "troupe.remote" actors, and the request sent to the actor found,
// monitored as tp_request monitors its callee. The running actor then
// receives exactly one answer with that ref: the reply; TP_TAG_FAILED,
// whose tp_down_msg says TP_REASON_NOPROC when no actor has the name
// there (`from` nil) or the actor found had exited by the time of the
// request, the callee's exit reason when it exits before replying (`from`
// its pid), TP_REASON_NOCONNECTION when the node was lost, or another
// error (the request could not be sent); or TP_TAG_TIMEOUT once
// `timeout_ms` has passed (-1: none; a node that never comes up then never
// answers, nor does a request whose lookup's answer found no memory), the
// lookup's time included. The request leaves once the lookup has
// answered, so a message the caller sends that actor meanwhile by other
// means may arrive before it. A node not connected is connected to, as
// tp_whereis_at does. Returns 0, TP_EINVAL (NULL, bad name or node,
// `timeout_ms` below -1, reserved tag, NULL data with a size, not a
// node), TP_EMSGSIZE, TP_EPERM or TP_ENOMEM, in which case nothing
// follows.
TP_API int tp_request_name_at(tp_ctx *ctx, const char *name, const char *node,
                              uint32_t tag, const void *data, size_t size,
                              int timeout_ms, uint64_t *ref);

// tp_request_name_at whose answer goes to continuation `then`, as with
// tp_request_then (TP_EINVAL for a NULL `then`).
TP_API int tp_request_name_at_then(tp_ctx *ctx, const char *name,
                                   const char *node, uint32_t tag,
                                   const void *data, size_t size,
                                   int timeout_ms, tp_then_fn then, void *arg,
                                   uint64_t *ref);

// Makes behaviour `b` spawnable by other nodes under `name` (1 to 63
// bytes), as an application module registers what it offers. The
// behaviour's init then receives a `const tp_spawn_arg *` (valid during
// init only) holding the bytes the spawning node sent. An upgrade
// (upgrade.h) whose `from` is `b` makes its `to` spawnable under the name
// instead. Returns 0, TP_EINVAL, TP_EEXIST (the name is taken) or
// TP_ENOMEM. Any thread.
TP_API int tp_spawnable(tp_system *sys, const char *name,
                        const tp_behaviour *b);

// Withdraws `name`: later spawns of it fail with TP_ENOENT. Returns 0,
// TP_ENOENT or TP_EINVAL.
TP_API int tp_spawnable_remove(tp_system *sys, const char *name);

// Room a remote spawn's request keeps beside its argument.
#define TP_REMOTE_ARG_SLACK 256

typedef struct tp_spawn_arg {
    const void *data; // as sent (msgpack, by convention), NULL when empty
    size_t size;
} tp_spawn_arg;

// Spawns an actor of the behaviour registered as `behaviour` on `node`,
// its init given a copy of `size` bytes at `arg`. The running actor
// receives exactly one TP_TAG_SPAWNED message with msg->ref == *ref: the
// new actor's pid, or why there is none (see tp_remote_answer); an actor
// spawned for a request that ended first (its timeout, a lost connection)
// or for a caller that has exited is killed when its answer comes. The
// behaviour's init runs on that node's "troupe.remote" actor, which
// serves every request there: keep it short. To link to the new actor or
// monitor it, call tp_link or tp_monitor with its pid: if it has exited by
// then, the link's exit signal or the monitor's DOWN says noproc. Returns
// tp_whereis_at's codes, and TP_EMSGSIZE for an argument over TP_MSG_MAX
// less TP_REMOTE_ARG_SLACK bytes (a request over this node's frame limit
// is answered with TP_EMSGSIZE).
TP_API int tp_spawn_at(tp_ctx *ctx, const char *node, const char *behaviour,
                       const void *arg, size_t size, int timeout_ms,
                       uint64_t *ref);

// As tp_spawn_at from a thread outside the system, waiting for the
// answer: 0 with the pid in `*out`, or as tp_system_whereis_at.
TP_API int tp_system_spawn_at(tp_system *sys, const char *node,
                              const char *behaviour, const void *arg,
                              size_t size, int timeout_ms, tp_pid *out);

// Subscribes the running actor to TP_TAG_NODEUP and TP_TAG_NODEDOWN
// messages for every peer (off with `on` false). Returns 0, TP_EINVAL
// (NULL, not a node), TP_EPERM or TP_ENOMEM.
TP_API int tp_monitor_nodes(tp_ctx *ctx, bool on);

typedef enum tp_peer_state {
    TP_PEER_IDLE = 0,   // known, not connected
    TP_PEER_CONNECTING, // connecting or in the handshake
    TP_PEER_UP,         // authenticated and connected
    TP_PEER_BACKOFF,    // lost or refused; waiting before retrying
} tp_peer_state;

// A snapshot of one peer.
typedef struct tp_peer_info {
    char node[TP_NODE_NAME_MAX];
    uint32_t incarnation; // 0 until first connected
    tp_peer_state state;
    uint32_t rtt_us;         // last heartbeat round trip, 0 if none yet
    uint32_t queued;         // messages waiting in its send queue
    uint64_t sent, received; // frames
    uint64_t bytes_out, bytes_in;
    uint64_t dropped;  // messages lost: queue policy, node down, no name
    uint64_t connects; // times the connection came up
} tp_peer_info;

// Copies up to `max` peers into `out` and returns how many peers there
// are (may exceed `max`), or TP_EINVAL. Any thread.
TP_API int tp_node_peers(tp_system *sys, tp_peer_info *out, size_t max);

// Node-wide counters.
typedef struct tp_node_stats {
    uint64_t peers_up;
    uint64_t frames_in, frames_out;
    uint64_t bytes_in, bytes_out;
    uint64_t frames_rejected; // malformed or over a limit: connection closed
    uint64_t auth_failures;   // handshakes refused for a bad proof
    uint64_t handshakes_timed_out;
    uint64_t connections_refused; // not accepted (no memory, no slot)
    // Unauthenticated connections closed to make room for a newer one when
    // all max_unauthenticated slots were taken.
    uint64_t connections_evicted;
    uint64_t nodedowns;
    // Of frames_in, those read by a scheduler thread that was looking for
    // work (it polls the node's connections while messages flow, so a
    // message reaches its actor without waking another thread) rather than
    // by the I/O thread.
    uint64_t frames_in_polled;
} tp_node_stats;

TP_API int tp_node_stats_get(tp_system *sys, tp_node_stats *out);

// Checks a seeds list (tp_node_config.seeds): 0, or TP_EINVAL for a
// malformed entry (NULL is an empty list). Any thread.
TP_API int tp_node_seeds_check(const char *seeds);

// Checks that a full node name is well formed: "NAME@A.B.C.D:PORT" or
// "NAME@[IPv6]:PORT", the IPv6 address spelled as tp_node_name would spell
// it ("[::1]", not "[0:0:0:0:0:0:0:1]"), the port without leading zeros.
// Returns 0 or TP_EINVAL. Any thread.
TP_API int tp_node_name_check(const char *node);

#endif
