// SPDX-License-Identifier: MIT
// Peers: the nodes a listening actord connects to at start ([node] peers)
// and the nodes watcher, the actor registered as "actord_nodes" that logs
// every peer coming up or going down.
//
// The watcher subscribes to TP_TAG_NODEUP and TP_TAG_NODEDOWN in its init,
// which runs on the spawning thread before tp_spawn returns: the main
// thread connects to the peers only after that. Peers may still come up
// before it (with seeds and a mesh, the others connect to a node as soon
// as it listens): init logs those it finds up, so no nodeup escapes it.
// Connecting is the main thread's business (tp_node_connect with no timeout:
// the library keeps reconnecting with backoff), so is disconnecting on reload;
// the watcher only logs.
//
// The watcher belongs to no application and is linked to nothing: spawned
// from outside any actor, its exit reaches no one, so a crash of it can
// take down neither an application nor the node, and the connections go
// on (they are the library's). Only the log of nodeups and nodedowns
// would stop, so the main thread watches it as it watches a root
// supervisor (an ad_watch writing to the event pipe) and spawns it again,
// up to 5 times in 10 seconds as a supervisor would: a watcher that keeps
// dying is left dead rather than fill the log. At shutdown it is stopped once
// the applications are, and waited for, so that nothing it logs races with the
// system's destruction.
#include "actord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES_NAME "actord_nodes"
#define NODES_RESTARTS 5 // at most, in
#define NODES_WINDOW_MS 10000

// ---- the watcher -----------------------------------------------------------

// The peers already up when the watcher subscribed: logged by its init
// (with seeds and a mesh, peers connect to a node as soon as it listens,
// before actord spawns the watcher), and their nodeup messages then
// skipped once, so each coming up is logged once.
typedef struct early_peer {
    char node[TP_NODE_NAME_MAX];
    uint32_t incarnation;
} early_peer;

typedef struct nodes_state {
    early_peer *early;
    size_t nearly;
} nodes_state;

static void
log_nodeup(const char *node, uint32_t incarnation)
{
    ad_log(TP_LOG_INFO, "nodeup node=%s incarnation=%u", AD_Q(node),
           (unsigned)incarnation);
}

static int
nodes_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)arg;
    nodes_state *st = state;
    int rc = tp_monitor_nodes(ctx, true);
    if (rc != 0)
        return rc;
    // Subscribed first: a peer that comes up from now on sends a nodeup;
    // one already up is in the list (and maybe sends one too: skipped).
    tp_system *sys = tp_ctx_system(ctx);
    int n = tp_node_peers(sys, NULL, 0);
    if (n <= 0)
        return 0;
    tp_peer_info *peers = calloc((size_t)n, sizeof *peers);
    st->early = calloc((size_t)n, sizeof *st->early);
    if (peers == NULL || st->early == NULL) {
        free(peers);
        free(st->early);
        st->early = NULL;
        return TP_ENOMEM;
    }
    int got = tp_node_peers(sys, peers, (size_t)n);
    for (int i = 0; i < got && i < n; i++) {
        if (peers[i].state != TP_PEER_UP)
            continue;
        early_peer *e = &st->early[st->nearly++];
        snprintf(e->node, sizeof e->node, "%s", peers[i].node);
        e->incarnation = peers[i].incarnation;
        log_nodeup(e->node, e->incarnation);
    }
    free(peers);
    return 0;
}

// Whether `node` was logged up by init at `incarnation` (and forgets it:
// a later coming up, after a nodedown, is logged again).
static bool
early_take(nodes_state *st, const char *node, uint32_t incarnation, bool up)
{
    for (size_t i = 0; i < st->nearly; i++) {
        early_peer *e = &st->early[i];
        if (strcmp(e->node, node) != 0)
            continue;
        bool same = up && e->incarnation == incarnation;
        st->early[i] = st->early[--st->nearly];
        return same;
    }
    return false;
}

static int
nodes_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    nodes_state *st = state;
    if ((msg->tag != TP_TAG_NODEUP && msg->tag != TP_TAG_NODEDOWN) ||
        msg->size < sizeof(tp_node_msg))
        return TP_OK;
    const tp_node_msg *m = msg->data;
    char node[sizeof m->node], why[sizeof m->why];
    snprintf(node, sizeof node, "%.*s", (int)sizeof m->node - 1, m->node);
    snprintf(why, sizeof why, "%.*s", (int)sizeof m->why - 1, m->why);
    bool up = msg->tag == TP_TAG_NODEUP;
    if (early_take(st, node, m->incarnation, up))
        return TP_OK; // init logged this one
    if (up)
        log_nodeup(node, m->incarnation);
    else
        ad_log(TP_LOG_WARNING, "nodedown node=%s incarnation=%u reason=%s",
               AD_Q(node), (unsigned)m->incarnation,
               AD_Q(why[0] ? why : "unknown"));
    return TP_OK;
}

static void
nodes_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    free(((nodes_state *)state)->early);
}

static const tp_behaviour nodes_watcher = {.name = NODES_NAME,
                                           .state_size = sizeof(nodes_state),
                                           .init = nodes_init,
                                           .handle = nodes_handle,
                                           .terminate = nodes_terminate};

// Spawns the watcher and the actor that tells the main thread of its exit.
static int
spawn_watcher(ad_node *n)
{
    tp_pid pid;
    int rc = tp_spawn(n->sys, &nodes_watcher, NULL,
                      &(tp_spawn_opts){.name = NODES_NAME}, &pid);
    if (rc != 0)
        return rc;
    n->nodes = (ad_watch){.id = ++n->next_id, .root = pid, .fd = n->event[1]};
    if ((rc = ad_watch_start(n->sys, &n->nodes)) != 0) {
        tp_system_exit(n->sys, pid, TP_REASON_KILL);
        return rc;
    }
    n->nodes_running = true;
    char p[TP_PID_STRLEN];
    tp_pid_format(pid, p, sizeof p);
    ad_log(TP_LOG_DEBUG, "nodes_watcher_started pid=%s name=%s", p,
           NODES_NAME);
    return 0;
}

// ---- connecting ------------------------------------------------------------

void
ad_peer_connect(ad_node *n, const char *node)
{
    ad_log(TP_LOG_INFO, "peer_connecting node=%s", AD_Q(node));
    int rc = tp_node_connect(n->sys, node, 0);
    if (rc != 0) // this node itself (its port picked at start), or no memory
        ad_log(TP_LOG_WARNING, "peer_connect_failed node=%s error=%s",
               AD_Q(node), tp_err_name(rc));
}

void
ad_peer_disconnect(ad_node *n, const char *node)
{
    ad_log(TP_LOG_INFO, "peer_disconnecting node=%s", AD_Q(node));
    int rc = tp_node_disconnect(n->sys, node);
    if (rc != 0 && rc != TP_ENOENT) // ENOENT: never known, nothing to close
        ad_log(TP_LOG_WARNING, "peer_disconnect_failed node=%s error=%s",
               AD_Q(node), tp_err_name(rc));
}

int
ad_peers_start(ad_node *n)
{
    if (tp_node_name(n->sys)[0] == 0)
        return 0; // not distributed: no peers, no nodeups
    int rc = spawn_watcher(n);
    if (rc != 0) {
        ad_log(TP_LOG_ERR, "nodes_watcher_failed error=%s", tp_err_name(rc));
        return EX_OSERR;
    }
    for (size_t i = 0; i < n->cfg->npeers; i++)
        ad_peer_connect(n, n->cfg->peers[i].node);
    return 0;
}

// ---- its exit --------------------------------------------------------------

bool
ad_peers_event(ad_node *n, const ad_event *ev)
{
    if (!n->nodes_running || ev->id != n->nodes.id)
        return false;
    n->nodes_running = false;
    if (n->stopping && ev->reason == TP_REASON_SHUTDOWN)
        return true; // ad_peers_stop asked
    char why[64];
    tp_reason_format(ev->reason, why, sizeof why);
    int64_t now = ad_now_ms();
    if (now - n->nodes_window_ms > NODES_WINDOW_MS) {
        n->nodes_window_ms = now;
        n->nodes_restarts = 0;
    }
    bool again = !n->stopping && n->nodes_restarts < NODES_RESTARTS;
    ad_log(TP_LOG_ERR, "nodes_watcher_exited reason=%s action=%s", why,
           again ? "restart" : "none");
    if (again) {
        n->nodes_restarts++;
        int rc = spawn_watcher(n);
        if (rc != 0)
            ad_log(TP_LOG_ERR, "nodes_watcher_failed error=%s",
                   tp_err_name(rc));
    }
    return true;
}

void
ad_peers_stop(ad_node *n)
{
    if (!n->nodes_running)
        return;
    tp_system_exit(n->sys, n->nodes.root, TP_REASON_SHUTDOWN);
    int64_t deadline = ad_now_ms() + 1000;
    int64_t left;
    while (n->nodes_running && (left = deadline - ad_now_ms()) > 0)
        ad_node_wait(n, (int)left);
    if (n->nodes_running) // the system's destruction finishes it
        ad_log(TP_LOG_WARNING, "nodes_watcher_stop_unconfirmed");
}
