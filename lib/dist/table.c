// SPDX-License-Identifier: MIT
// The node table. Every remote node we know of is a peer, found by its
// full name ("NAME@HOST:PORT") in a list that only grows while the node
// lives. Pids of remote actors carry a node-table index: an entry per
// (peer, incarnation), so pids of a peer's earlier life are recognised as
// dead once it has restarted. Entries are published with release stores
// and never change, so routers read them without a lock.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The proxies' behaviour: never run, only recognised.
static int
proxy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK;
}

// A proxy's state is its peer's pointer, set when the peer is made.
const tp_behaviour tp__proxy_behaviour = {
    .name = "$peer", .state_size = sizeof(tp__peer *), .handle = proxy_handle};

bool
tp__short_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TP__NODE_SHORT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int
tp_node_name_check(const char *node)
{
    if (node == NULL || strnlen(node, TP_NODE_NAME_MAX) >= TP_NODE_NAME_MAX)
        return TP_EINVAL;
    const char *at = strchr(node, '@');
    if (at == NULL || at == node || (size_t)(at - node) > TP__NODE_SHORT_MAX)
        return TP_EINVAL;
    char shortn[64];
    memcpy(shortn, node, (size_t)(at - node));
    shortn[at - node] = 0;
    if (!tp__short_name_ok(shortn))
        return TP_EINVAL;
    struct sockaddr_storage sa;
    socklen_t sl;
    return tp__addr_parse(at + 1, TP__ADDR_CANON, &sa, &sl);
}

tp__peer *
tp__peer_find_locked(tp__dist *n, const char *name)
{
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++)
        if (strcmp(n->peers[i]->name, name) == 0)
            return n->peers[i];
    return NULL;
}

// Adds the peer `name`. Returns it, or NULL with *rc TP_EAGAIN (the
// list is full) or TP_ENOMEM.
static tp__peer *
peer_new_locked(tp__dist *n, const char *name, int *rc)
{
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    if (np >= TP__NODE_PEERS_MAX) {
        *rc = TP_EAGAIN;
        return NULL;
    }
    tp__peer *p = calloc(1, sizeof *p);
    tp_actor *q = calloc(1, TP__HEAD + sizeof p);
    if (p == NULL || q == NULL) {
        free(p);
        free(q);
        *rc = TP_ENOMEM;
        return NULL;
    }
    p->node = n;
    snprintf(p->name, sizeof p->name, "%s", name);
    // Checked by the caller: a full name's address parses.
    tp__addr_parse(strchr(name, '@') + 1, TP__ADDR_CANON, &p->addr,
                   &p->addr_len);
    p->backoff_ms = TP__NODE_BACKOFF_FIRST_MS;
    tp__io_timer_init(&p->backoff, tp__peer_backoff_cb, 0.0, 0.0);
    p->backoff.data = p;
    tp__mpscq_init(&q->user);
    tp__mpscq_init(&q->sys);
    q->system = n->sys;
    q->behaviour = &tp__proxy_behaviour;
    *(tp__peer **)tp__state(q) = p;
    q->capacity = n->cfg.send_queue;
    q->overflow = (uint8_t)n->cfg.overflow;
    q->started = 1;
    p->proxy = q;
    n->peers[np] = p;
    // release: readers of npeers see the peer built.
    atomic_store_explicit(&n->npeers, np + 1, memory_order_release);
    return p;
}

int
tp__peer_get(tp__dist *n, const char *name, tp__peer **out)
{
    if (tp_node_name_check(name) != 0 || strcmp(name, n->name) == 0)
        return TP_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    tp__peer *p = tp__peer_find_locked(n, name);
    if (p == NULL)
        p = peer_new_locked(n, name, &rc);
    pthread_mutex_unlock(&n->lock);
    *out = p;
    return rc;
}

int
tp__ent_get_locked(tp__dist *n, tp__peer *p, uint32_t inc, uint16_t *idx)
{
    for (uint32_t i = n->nents; i > 0; i--) {
        ent *e = atomic_load_explicit(&n->ents[i], memory_order_relaxed);
        if (e->peer == p && e->inc == inc) {
            *idx = (uint16_t)i;
            return 0;
        }
    }
    if (n->nents >= TP__NODE_ENTS_MAX)
        return TP_EAGAIN;
    ent *e = malloc(sizeof *e);
    if (e == NULL)
        return TP_ENOMEM;
    e->peer = p;
    e->inc = inc;
    n->nents++;
    // release: routers load the entry with acquire.
    atomic_store_explicit(&n->ents[n->nents], e, memory_order_release);
    *idx = (uint16_t)n->nents;
    return 0;
}

ent *
tp__ent_at(tp__dist *n, uint32_t idx)
{
    if (idx == 0 || idx > TP__NODE_ENTS_MAX)
        return NULL;
    return atomic_load_explicit(&n->ents[idx], memory_order_acquire);
}

int
tp__node_pid_encode(tp_system *sys, tp_pid pid, const char **node,
                    uint32_t *inc, uint64_t *local)
{
    tp__dist *n = node_of(sys);
    *local = pid.v & TP__NODE_REF_MASK;
    if (tp_pid_node(pid) == 0) {
        *node = n ? n->name : "";
        *inc = n ? n->inc : 0;
        return 0;
    }
    ent *e = n ? tp__ent_at(n, tp_pid_node(pid)) : NULL;
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
    if (local > TP__NODE_REF_MASK)
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
    tp__peer *p;
    uint16_t idx;
    int rc = tp__peer_get(n, node, &p);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&n->lock);
    rc = tp__ent_get_locked(n, p, inc, &idx);
    pthread_mutex_unlock(&n->lock);
    if (rc != 0)
        return rc;
    out->v = ((uint64_t)idx << TP__NODE_IDX_SHIFT) | local;
    return 0;
}

void
tp__peer_free(tp__peer *p)
{
    tp__msg *m;
    while ((m = tp__mailbox_pop(&p->proxy->sys)) != NULL)
        tp__msg_retire(m);
    while ((m = tp__mailbox_pop(&p->proxy->user)) != NULL)
        tp__msg_retire(m);
    tp__mailbox_close(&p->proxy->sys);
    tp__mailbox_close(&p->proxy->user);
    free(p->proxy);
    tp__pairset_free(&p->links);
    tp__pairset_free(&p->mon_out);
    tp__pairset_free(&p->mon_in);
    free(p);
}
