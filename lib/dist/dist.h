// SPDX-License-Identifier: MIT
// The distribution subsystem's internal header: what the rest of the
// runtime calls of the node (routing to peers, the proxy actors and
// corking in send.c, pids in table.c, stalls in input.c, stop and free in
// node.c). The node's own structs and calls are in node_impl.h.
#ifndef TROUPE_DIST_H
#define TROUPE_DIST_H

#include "core/core.h"

// ---- distribution ------------------------------------------------------

// The core's side of routing and proxies (tp__proxy_put, tp__deliver_io,
// TP__ROUTE_*, tp__corked) is declared in core/core.h.
struct tp__dist;
extern const tp_behaviour tp__proxy_behaviour;
void tp__node_unstall(tp_system *sys);
int tp__node_route(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m,
                   int mode);
void tp__node_kick(tp_actor *proxy);
void tp__node_uncork(void);
bool tp__node_poll_ready(tp_system *sys, tp__worker *w, int64_t now);
void tp__node_poll_read(tp_system *sys, tp__worker *w);
void tp__node_unpoll(tp_system *sys, tp__worker *w);
// Installs the hooks the core calls (tp__dist_ops) in `sys`: hooks.c.
void tp__dist_hooks_install(tp_system *sys);
void tp__node_stop(tp_system *sys);
void tp__node_free(tp_system *sys);
// Whether the peer of remote pid `pid` (when `node` is NULL) or the peer
// named `node` is connected: for senders that must not make a connection
// (a send to a peer not connected dials it). Any thread.
bool tp__node_peer_up(tp_system *sys, tp_pid pid, const char *node);
// The largest frame `sys`'s node accepts (tp_node_config.max_frame), 0
// when it is not a node. A node sends frames of that size at most too.
uint32_t tp__node_max_frame(tp_system *sys);
// One seed of a seeds list: its short name, host (an address or a DNS
// name) and port, and whether the host is a DNS name.
typedef struct tp__seed {
    char name[64];
    char host[256];
    unsigned port;
    bool dns;
} tp__seed;
// Parses the next entry of seeds list *s into *out and moves *s past it.
// Returns 1 for an entry, 0 at the end, TP_EINVAL for a malformed one.
int tp__seed_next(const char **s, tp__seed *out);
// The node's seeds list (a copy), NULL for none or not a node.
const char *tp__node_seeds(tp_system *sys);
// Whether `sys` is a node started with tp_node_config.mesh.
bool tp__node_mesh(tp_system *sys);
int tp__node_pid_encode(tp_system *sys, tp_pid pid, const char **node,
                        uint32_t *inc, uint64_t *local);
int tp__node_pid_decode(tp_system *sys, const char *node, uint32_t inc,
                        uint64_t local, tp_pid *out);

// ---- msgpack helpers (pack.c) ------------------------------------------

// Checks that p[0..n) is one whole msgpack object within the decoder's
// limits: 0, or TP_EDECODE.
int tp__pack_check(const uint8_t *p, size_t n);

#endif
