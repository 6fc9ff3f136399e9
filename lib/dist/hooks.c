// SPDX-License-Identifier: MIT
// The distribution layer's hooks into the core: the table of functions the
// core calls for remote pids, peers' proxy actors and corked frames
// (tp__dist_ops, core.h), installed when a node starts. The core reaches
// node.c only through it, so it stays below dist (lib/README.md).
#include "core/core.h"
#include "dist/dist.h"

static const tp__dist_ops ops = {
    .route = tp__node_route,
    .kick = tp__node_kick,
    .unstall = tp__node_unstall,
    .uncork = tp__node_uncork,
    .poll_ready = tp__node_poll_ready,
    .poll_read = tp__node_poll_read,
    .unpoll = tp__node_unpoll,
};

// Installs the table in `sys`, before the node is published: routers find
// the node only after this (tp_node_start's release store of sys->node),
// and a proxy actor exists only once a peer does.
void
tp__dist_hooks_install(tp_system *sys)
{
    // release: a thread that loads the proxy behaviour or the table with
    // acquire, or learns of a proxy through its spawn, sees them whole.
    atomic_store_explicit(&sys->proxy_behaviour, &tp__proxy_behaviour,
                          memory_order_release);
    atomic_store_explicit(&sys->dist, &ops, memory_order_release);
}
