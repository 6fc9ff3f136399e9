// SPDX-License-Identifier: MIT
// The distribution subsystem's internal header: what the rest of the
// runtime calls of node.c (routing to peers, the proxy actors, corking).
#ifndef TROUPE_DIST_H
#define TROUPE_DIST_H

#include "core/core.h"

// ---- distribution (node.c) --------------------------------------------

// How a message is put into a peer's send queue.
enum { TP__ROUTE_NORMAL, TP__ROUTE_NOWAIT, TP__ROUTE_FORCE, TP__ROUTE_SYS };

struct tp__dist;
extern const tp_behaviour tp__proxy_behaviour;
int tp__proxy_put(tp_actor *p, tp_actor *sender, tp__msg *m, int mode);
uint32_t tp__proxy_settle(tp_actor *p, uint32_t users, uint32_t total);
int tp__deliver_io(tp_system *sys, tp_pid to, tp__msg *m);
int tp__deliver_io_chain(tp_system *sys, tp_pid to, tp__msg *first,
                         tp__msg *last, uint32_t n);
bool tp__io_wait_room(tp_system *sys, tp_pid to);
void tp__node_unstall(tp_system *sys);
int tp__node_route(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m,
                   int mode);
void tp__node_kick(tp_actor *proxy);
// The peers whose queued frames this thread's activation held back
// (node.c's corking); the scheduler calls tp__node_uncork after an
// activation that left any. Only in TLS of its own, not in tp__self, which
// callbacks run inside an activation (init, terminate) save and restore.
#define TP__CORK_PEERS 8
typedef struct tp__corkset {
    struct tp__peer *peers[TP__CORK_PEERS];
    unsigned npeers, frames;
} tp__corkset;
extern _Thread_local tp__corkset tp__corked;
void tp__node_uncork(void);
void tp__node_stop(tp_system *sys);
void tp__node_free(tp_system *sys);
int tp__node_pid_encode(tp_system *sys, tp_pid pid, const char **node,
                        uint32_t *inc, uint64_t *local);
int tp__node_pid_decode(tp_system *sys, const char *node, uint32_t inc,
                        uint64_t local, tp_pid *out);

// ---- msgpack helpers (pack.c) ------------------------------------------

// Checks that p[0..n) is one whole msgpack object within the decoder's
// limits: 0, or TP_EDECODE.
int tp__pack_check(const uint8_t *p, size_t n);

#endif
