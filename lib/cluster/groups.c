// SPDX-License-Identifier: MIT
// Process groups. Each system has one table of groups, read and written
// under its lock by any thread, and one group server: an actor registered
// as "troupe.groups" that monitors the local members (a member that exits
// leaves its groups) and keeps the other nodes' group servers told.
//
// Between nodes, the servers exchange ordinary messages (msgpack, pids as
// the pid extension):
//
//   SYNC  [want_reply, first, last, [group, pid, group, pid, ...]]
//         the sender's local memberships, in chunks from `first` to
//         `last`: the receiver keeps those it held from that sender and
//         the sync tells again, adds the new ones and, after the last
//         chunk, drops the rest. `want_reply` asks for the receiver's own
//         in return. Sent by name when a node comes up (or the server
//         starts on a node with peers up), and by pid to a server heard
//         from for the first time.
//   JOIN  [group, pid]     LEAVE [group, pid]
//         a change of the sender's local memberships, in the order the
//         server saw it.
//
// A server monitors each server it heard from: the DOWN, for its exit or
// for a lost connection (noconnection), takes that node's members out.
// A message to a peer server that fails (its node's queue full) marks the
// peer, and the whole SYNC is sent again a little later.
//
// Local changes are made in the table by the caller, who then queues a
// note for the server; the server broadcasts what the table holds when it
// reads the note, so notes read in any order still leave every node with
// the last state.
#include "cluster/cluster.h"
#include "core/core.h"
#include "dist/dist.h"
#include "signals/signals.h"

#include <troupe/msgpack.h>

#include <stdlib.h>
#include <string.h>

#define SERVER_NAME "troupe.groups"
#define SERVER_CAPACITY (1u << 20) // remote messages; local notes force in
#define SYNC_BYTES (256 * 1024)    // a SYNC chunk, at most
#define SYNC_SLACK 256             // of a frame, for the envelope and header
#define PENDING_TRIES 3            // whole SYNCs by name to a silent server
#define RESYNC_MS 100              // retry of a failed send to a peer
#define BUCKETS_FIRST 64
#define PEERS_LIST_MAX 4096 // as many as a node knows

// The server's tags, below the reserved range. Notes come from this
// system only; the rest from other nodes' servers.
enum {
    T_BASE = 0x74706700u, // "tpg"
    T_NOTE_JOIN,
    T_NOTE_LEAVE,
    T_NOTE_NODE,
    T_NOTE_RESCAN,
    T_NOTE_SUB,
    T_SYNC,
    T_JOIN,
    T_LEAVE,
    T_RESYNC,
};

typedef struct group {
    struct group *next; // in its bucket
    uint64_t hash;
    char name[TP_GROUP_NAME_MAX + 1];
    tp_pid *pids;
    uint64_t *origins; // 0: local; else the pid of the server it came from
    uint32_t *epochs;  // a remote one's: the sync of its origin that told it
    uint32_t n, cap;
    tp__map index; // pid -> position + 1
    tp_pid *subs;
    uint32_t nsubs, subs_cap;
} group;

typedef struct tp__groups {
    tp_system *sys;
    pthread_mutex_t lock; // the groups and their subscribers
    group **buckets;
    uint32_t nbuckets, ngroups;
    pthread_mutex_t start_lock; // starting the server
    _Atomic uint64_t server;    // its pid, 0 before it started
    _Atomic uint64_t version;   // bumped at every change
    uint64_t nlocal;            // memberships of local actors
} tp__groups;

typedef struct note {
    char group[TP_GROUP_NAME_MAX + 1];
    tp_pid pid;
} note;

// A global name's entry in the table is a group named GLOBAL_MARK and the
// name; a user's group name may not start with it.
#define GLOBAL_MARK '\x1f'

// A name of the table: a group's, or a global name's entry.
static bool
entry_name_ok(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, TP_GROUP_NAME_MAX + 1);
    return n >= 1 && n <= TP_GROUP_NAME_MAX;
}

bool
tp__group_name_ok(const char *name)
{
    return entry_name_ok(name) && name[0] != GLOBAL_MARK;
}

static uint64_t
name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

// ---- the table (g->lock held) ------------------------------------------

static group *
find(tp__groups *g, const char *name)
{
    if (g->nbuckets == 0)
        return NULL;
    uint64_t h = name_hash(name);
    for (group *gr = g->buckets[h & (g->nbuckets - 1)]; gr; gr = gr->next)
        if (gr->hash == h && strcmp(gr->name, name) == 0)
            return gr;
    return NULL;
}

static int
rehash(tp__groups *g)
{
    uint32_t nb = g->nbuckets ? g->nbuckets * 2 : BUCKETS_FIRST;
    group **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return TP_ENOMEM;
    for (uint32_t i = 0; i < g->nbuckets; i++)
        for (group *gr = g->buckets[i], *next; gr; gr = next) {
            next = gr->next;
            gr->next = b[gr->hash & (nb - 1)];
            b[gr->hash & (nb - 1)] = gr;
        }
    free(g->buckets);
    g->buckets = b;
    g->nbuckets = nb;
    return 0;
}

static group *
find_or_add(tp__groups *g, const char *name)
{
    group *gr = find(g, name);
    if (gr != NULL)
        return gr;
    if (g->ngroups >= g->nbuckets && rehash(g) != 0)
        return NULL;
    gr = calloc(1, sizeof *gr);
    if (gr == NULL)
        return NULL;
    gr->hash = name_hash(name);
    snprintf(gr->name, sizeof gr->name, "%s", name);
    gr->next = g->buckets[gr->hash & (g->nbuckets - 1)];
    g->buckets[gr->hash & (g->nbuckets - 1)] = gr;
    g->ngroups++;
    return gr;
}

// Frees `gr` once no one is in it or watches it.
static void
drop_if_empty(tp__groups *g, group *gr)
{
    if (gr->n > 0 || gr->nsubs > 0)
        return;
    group **pp = &g->buckets[gr->hash & (g->nbuckets - 1)];
    while (*pp != gr)
        pp = &(*pp)->next;
    *pp = gr->next;
    g->ngroups--;
    tp__map_free(&gr->index);
    free(gr->pids);
    free(gr->origins);
    free(gr->epochs);
    free(gr->subs);
    free(gr);
}

// Tells `gr`'s subscribers that `pid` joined or left; a subscriber that is
// gone is dropped.
static void
notify(tp__groups *g, group *gr, uint32_t tag, tp_pid pid)
{
    tp_group_msg gm;
    memset(&gm, 0, sizeof gm);
    memcpy(gm.group, gr->name, sizeof gm.group);
    gm.member = pid;
    for (uint32_t i = 0; i < gr->nsubs;) {
        tp__msg *m = tp__msg_new_copy(g->sys, tag, TP_PID_NIL, &gm, sizeof gm);
        if (m == NULL)
            break; // out of memory: the subscriber misses this one
        if (tp__deliver_force(g->sys, gr->subs[i], m) != 0) {
            tp__msg_free(m);
            gr->subs[i] = gr->subs[--gr->nsubs];
            continue;
        }
        i++;
    }
}

static void
changed(tp__groups *g)
{
    // release: pairs with the acquire of routers checking their copy.
    atomic_fetch_add_explicit(&g->version, 1, memory_order_release);
}

// Adds `pid` (from `origin`, told in its sync `epoch`) to `gr`. Returns 1
// when added, 0 when it was already a member (its epoch brought up to
// date), or TP_ENOMEM.
static int
add(tp__groups *g, group *gr, tp_pid pid, uint64_t origin, uint32_t epoch)
{
    uint64_t v;
    if (tp__map_get(&gr->index, pid.v, &v)) {
        gr->origins[v - 1] = origin;
        gr->epochs[v - 1] = epoch;
        return 0;
    }
    if (gr->n == gr->cap) {
        uint32_t cap = gr->cap ? gr->cap * 2 : 4;
        tp_pid *p = realloc(gr->pids, cap * sizeof *p);
        if (p == NULL)
            return TP_ENOMEM;
        gr->pids = p;
        uint64_t *o = realloc(gr->origins, cap * sizeof *o);
        if (o == NULL)
            return TP_ENOMEM;
        gr->origins = o;
        uint32_t *e = realloc(gr->epochs, cap * sizeof *e);
        if (e == NULL)
            return TP_ENOMEM;
        gr->epochs = e;
        gr->cap = cap;
    }
    if (tp__map_put(&gr->index, pid.v, gr->n + 1) != 0)
        return TP_ENOMEM;
    gr->pids[gr->n] = pid;
    gr->origins[gr->n] = origin;
    gr->epochs[gr->n] = epoch;
    gr->n++;
    g->nlocal += origin == 0;
    changed(g);
    notify(g, gr, TP_TAG_GROUP_JOIN, pid);
    return 1;
}

// Takes `pid` out of `gr` if it is there from `origin`. Returns whether it
// was. May free `gr`.
static bool
del(tp__groups *g, group *gr, tp_pid pid, uint64_t origin)
{
    uint64_t v;
    if (!tp__map_get(&gr->index, pid.v, &v) || gr->origins[v - 1] != origin)
        return false;
    tp__map_del(&gr->index, pid.v, NULL);
    uint32_t i = (uint32_t)(v - 1), last = gr->n - 1;
    if (i != last) {
        gr->pids[i] = gr->pids[last];
        gr->origins[i] = gr->origins[last];
        gr->epochs[i] = gr->epochs[last];
        // Cannot fail: the key is there, only its value changes.
        tp__map_put(&gr->index, gr->pids[i].v, (uint64_t)i + 1);
    }
    gr->n--;
    g->nlocal -= origin == 0;
    changed(g);
    notify(g, gr, TP_TAG_GROUP_LEAVE, pid);
    drop_if_empty(g, gr);
    return true;
}

// Calls fn on every group; fn may free the group it is given.
static void
each_group(tp__groups *g, void (*fn)(tp__groups *, group *, void *), void *arg)
{
    for (uint32_t b = 0; b < g->nbuckets; b++)
        for (group *gr = g->buckets[b], *next; gr; gr = next) {
            next = gr->next;
            fn(g, gr, arg);
        }
}

// Which remote members drop_origin takes out: those from `origin` (every
// remote one when it is UINT64_MAX), but for those told in sync `keep`
// when `stale_only`.
typedef struct dropping {
    uint64_t origin;
    bool stale_only;
    uint32_t keep;
} dropping;

// Takes out of `gr` the members *(dropping *)arg names. May free `gr`.
static void
drop_origin(tp__groups *g, group *gr, void *arg)
{
    const dropping *d = arg;
    // Downwards: a removal moves the last member, already seen, into i.
    for (uint32_t i = gr->n; i-- > 0;) {
        uint64_t o = gr->origins[i];
        if (o == 0 || (d->origin != UINT64_MAX && o != d->origin) ||
            (d->stale_only && gr->epochs[i] == d->keep))
            continue;
        bool last = gr->n == 1;
        del(g, gr, gr->pids[i], o);
        if (last)
            return; // gr may be freed
    }
}

// ---- the table's life ----------------------------------------------------

static tp__groups *
table(tp_system *sys)
{
    // acquire: the table is built before it is published.
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    if (g != NULL)
        return g;
    g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->sys = sys;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (pthread_mutex_init(&g->start_lock, NULL) != 0) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    tp__groups *expected = NULL;
    // acq_rel: publishes ours, or sees the winner's.
    if (!atomic_compare_exchange_strong_explicit(&sys->groups, &expected, g,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        pthread_mutex_destroy(&g->lock);
        pthread_mutex_destroy(&g->start_lock);
        free(g);
        return expected;
    }
    return g;
}

static void
free_group(tp__groups *g, group *gr, void *arg)
{
    (void)g;
    (void)arg;
    tp__map_free(&gr->index);
    free(gr->pids);
    free(gr->origins);
    free(gr->epochs);
    free(gr->subs);
    free(gr);
}

void
tp__groups_free(tp_system *sys)
{
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    if (g == NULL)
        return;
    each_group(g, free_group, NULL);
    free(g->buckets);
    pthread_mutex_destroy(&g->lock);
    pthread_mutex_destroy(&g->start_lock);
    free(g);
    atomic_store_explicit(&sys->groups, NULL, memory_order_relaxed);
}

uint64_t
tp__groups_version(tp_system *sys)
{
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    return g ? atomic_load_explicit(&g->version, memory_order_acquire) : 0;
}

int
tp__groups_snapshot(tp_system *sys, const char *name, tp_pid **pids, size_t *n,
                    size_t *cap, uint64_t *version)
{
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    *n = 0;
    *version = 0;
    if (g == NULL)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&g->lock);
    *version = atomic_load_explicit(&g->version, memory_order_relaxed);
    group *gr = find(g, name);
    size_t need = gr ? gr->n : 0;
    if (need > *cap) {
        tp_pid *p = realloc(*pids, need * sizeof *p);
        if (p == NULL) {
            rc = TP_ENOMEM;
        } else {
            *pids = p;
            *cap = need;
        }
    }
    if (rc == 0 && need > 0) {
        memcpy(*pids, gr->pids, need * sizeof **pids);
        *n = need;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

// ---- the server ------------------------------------------------------------

// Another node's server, heard from.
typedef struct peer {
    tp_pid pid;
    uint64_t ref;   // our monitor of it
    uint32_t epoch; // its sync being read, counted from 1
    bool dirty;     // a send to it failed: it gets the whole SYNC again
} peer;

// A node up whose server has not been heard from.
typedef struct pend {
    char node[TP_NODE_NAME_MAX];
    unsigned tries; // whole SYNCs sent to it by name
} pend;

typedef struct server {
    tp__groups *g;
    tp__map watched; // local members and subscribers, monitored
    peer *peers;
    uint32_t npeers, peers_cap;
    pend *pending;
    uint32_t npending, pending_cap;
    bool resync_due;    // a T_RESYNC timer is set
    bool retry_pending; // a SYNC by name failed: T_RESYNC sends them again
    bool watching_nodes;
    bool warned_size; // logged that a SYNC chunk is over the frame limit
} server;

static int server_init(tp_ctx *ctx, void *state, void *arg);
static int server_handle(tp_ctx *ctx, void *state, const tp_msg *msg);
static void server_terminate(tp_ctx *ctx, void *state, int reason);

static const tp_behaviour server_b = {
    .name = "troupe.groups",
    .state_size = sizeof(server),
    .init = server_init,
    .handle = server_handle,
    .terminate = server_terminate,
};

static bool
alive(tp_system *sys, uint64_t pid)
{
    tp_actor_stats st;
    return pid != 0 && tp_actor_stats_get(sys, (tp_pid){pid}, &st) == 0;
}

// Queues note `tag` about `pid` in `group` for the server. Under g->lock
// for changes, so their notes enter its mailbox in the order they were
// made. Returns false when it could not (no server, no memory).
static bool
note_server(tp__groups *g, uint32_t tag, const char *name, tp_pid pid)
{
    // acquire: pairs with ensure_server's store.
    uint64_t s = atomic_load_explicit(&g->server, memory_order_acquire);
    if (s == 0)
        return false;
    note nt;
    memset(&nt, 0, sizeof nt);
    snprintf(nt.group, sizeof nt.group, "%s", name);
    nt.pid = pid;
    tp__msg *m = tp__msg_new_copy(g->sys, tag, TP_PID_NIL, &nt, sizeof nt);
    if (m == NULL)
        return false;
    if (tp__deliver_force(g->sys, (tp_pid){s}, m) != 0) {
        tp__msg_free(m); // the server is gone: the next call starts one
        return false;
    }
    return true;
}

// Starts the server unless it runs. Returns 0 or tp_spawn's code.
static int
ensure_server(tp__groups *g)
{
    // acquire: pairs with the store below.
    if (alive(g->sys, atomic_load_explicit(&g->server, memory_order_acquire)))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&g->start_lock);
    if (!alive(g->sys,
               atomic_load_explicit(&g->server, memory_order_relaxed))) {
        tp_pid pid;
        tp_spawn_opts o = {.name = SERVER_NAME,
                           .mailbox_capacity = SERVER_CAPACITY};
        rc = tp_spawn(g->sys, &server_b, g, &o, &pid);
        if (rc == 0) {
            atomic_store_explicit(&g->server, pid.v, memory_order_release);
            // Changes made while its init ran noted a dead server: it
            // reads the table again.
            note_server(g, T_NOTE_RESCAN, "", TP_PID_NIL);
        }
    }
    pthread_mutex_unlock(&g->start_lock);
    return rc;
}

static void
schedule_resync(tp_ctx *ctx, server *s)
{
    if (!s->resync_due && tp_send_after(ctx, tp_self(ctx), RESYNC_MS, T_RESYNC,
                                        NULL, 0, NULL) == 0)
        s->resync_due = true;
}

// A send to peer `i` failed: it gets the whole SYNC later, and nothing
// else until then. A message too big for a frame never fits: no retry.
static void
peer_failed(tp_ctx *ctx, server *s, uint32_t i, int rc)
{
    if (rc == TP_EMSGSIZE)
        return;
    s->peers[i].dirty = true;
    schedule_resync(ctx, s);
}

static int
peer_find(const server *s, tp_pid pid)
{
    for (uint32_t i = 0; i < s->npeers; i++)
        if (s->peers[i].pid.v == pid.v)
            return (int)i;
    return -1;
}

// Sends JOIN or LEAVE of `pid` in `name` to every peer server.
static void
broadcast(tp_ctx *ctx, server *s, uint32_t tag, const char *name, tp_pid pid)
{
    if (s->npeers == 0)
        return;
    tp_system *sys = tp_ctx_system(ctx);
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    size_t len = strlen(name);
    msgpack_pack_array(pk, 2);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, name, len);
    if (tp_pack_pid(sys, pid, pk) == 0)
        for (uint32_t i = 0; i < s->npeers; i++) {
            if (s->peers[i].dirty ||
                !tp__node_peer_up(sys, s->peers[i].pid, NULL))
                continue;
            int rc =
                tp_send(ctx, s->peers[i].pid, tag, p.buf.data, p.buf.size);
            if (rc != 0)
                peer_failed(ctx, s, i, rc);
        }
    tp_pack_destroy(&p);
}

typedef struct item {
    char name[TP_GROUP_NAME_MAX + 1];
    tp_pid pid;
} item;

// The local memberships, copied under the lock. Returns 0 or TP_ENOMEM.
static int
local_items(tp__groups *g, item **out, size_t *n)
{
    item *items = NULL;
    size_t cap = 0;
    *n = 0;
    int rc = 0;
    pthread_mutex_lock(&g->lock);
    for (uint32_t b = 0; b < g->nbuckets && rc == 0; b++)
        for (group *gr = g->buckets[b]; gr && rc == 0; gr = gr->next)
            for (uint32_t i = 0; i < gr->n && rc == 0; i++) {
                if (gr->origins[i] != 0)
                    continue;
                if (*n == cap) {
                    size_t c = cap ? cap * 2 : 64;
                    item *it = realloc(items, c * sizeof *it);
                    if (it == NULL) {
                        rc = TP_ENOMEM;
                        break;
                    }
                    items = it;
                    cap = c;
                }
                memcpy(items[*n].name, gr->name, sizeof items[*n].name);
                items[(*n)++].pid = gr->pids[i];
            }
    pthread_mutex_unlock(&g->lock);
    if (rc != 0) {
        free(items);
        *n = 0;
        items = NULL;
    }
    *out = items;
    return rc;
}

// Sends one SYNC chunk: the header, then `count` entries already packed.
static int
sync_chunk(tp_ctx *ctx, tp_pid to, const char *node, bool want_reply,
           bool first, bool last, const msgpack_sbuffer *entries,
           uint32_t count)
{
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_array(pk, 4);
    if (want_reply)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    if (first)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    if (last)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    msgpack_pack_array(pk, 2 * count);
    msgpack_sbuffer_write(&p.buf, entries->data, entries->size);
    int rc = node != NULL ? tp_send_name_at(ctx, SERVER_NAME, node, T_SYNC,
                                            p.buf.data, p.buf.size)
                          : tp_send(ctx, to, T_SYNC, p.buf.data, p.buf.size);
    tp_pack_destroy(&p);
    return rc;
}

// Sends this node's local memberships to `to` (by pid) or to the server
// named on `node`, in chunks that fit the node's frames, unless that node
// is not connected (a send would dial it): its server hears of them when
// it comes up. Returns 0 or the failed send's code.
static int
send_sync(tp_ctx *ctx, server *s, tp_pid to, const char *node, bool want_reply)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (!tp__node_peer_up(sys, to, node))
        return 0;
    item *items;
    size_t n;
    int rc = local_items(s->g, &items, &n);
    if (rc != 0)
        return rc;
    // Room for the entries in a frame: the limit, less the envelope and
    // the chunk's header.
    uint32_t max = tp__node_max_frame(sys);
    size_t budget = max > SYNC_BYTES ? SYNC_BYTES : max;
    budget = budget > SYNC_SLACK * 2 ? budget - SYNC_SLACK : SYNC_SLACK;
    msgpack_sbuffer entries, one;
    msgpack_sbuffer_init(&entries);
    msgpack_sbuffer_init(&one);
    msgpack_packer pe;
    msgpack_packer_init(&pe, &one, msgpack_sbuffer_write);
    bool first = true;
    uint32_t count = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        msgpack_sbuffer_clear(&one);
        size_t len = strlen(items[i].name);
        msgpack_pack_str(&pe, len);
        msgpack_pack_str_body(&pe, items[i].name, len);
        if (tp_pack_pid(sys, items[i].pid, &pe) != 0)
            continue; // cannot happen for a local pid; skip it
        if (count > 0 && entries.size + one.size > budget) {
            rc = sync_chunk(ctx, to, node, want_reply, first, false, &entries,
                            count);
            first = false;
            count = 0;
            msgpack_sbuffer_clear(&entries);
        }
        msgpack_sbuffer_write(&entries, one.data, one.size);
        count++;
    }
    if (rc == 0)
        rc = sync_chunk(ctx, to, node, want_reply, first, true, &entries,
                        count);
    msgpack_sbuffer_destroy(&entries);
    msgpack_sbuffer_destroy(&one);
    free(items);
    if (rc == TP_EMSGSIZE && !s->warned_size) {
        s->warned_size = true;
        tp_log(sys, TP_LOG_WARNING,
               "groups: a membership does not fit in a frame of %u bytes "
               "(max_frame): other nodes do not see this node's members",
               max);
    }
    return rc;
}

static bool
have_local(server *s)
{
    pthread_mutex_lock(&s->g->lock);
    bool any = s->g->nlocal > 0;
    pthread_mutex_unlock(&s->g->lock);
    return any;
}

// Takes `node` off the pending list. Returns whether it was on it.
static bool
pending_del(server *s, const char *node)
{
    for (uint32_t i = 0; i < s->npending; i++)
        if (strcmp(s->pending[i].node, node) == 0) {
            s->pending[i] = s->pending[--s->npending];
            return true;
        }
    return false;
}

// Sends the whole SYNC by name to pending node `i`, asking for theirs.
static void
tell_one(tp_ctx *ctx, server *s, uint32_t i)
{
    s->pending[i].tries++;
    int rc = send_sync(ctx, s, TP_PID_NIL, s->pending[i].node, true);
    if (rc != 0 && rc != TP_EMSGSIZE) {
        s->retry_pending = true;
        schedule_resync(ctx, s);
    }
}

// Node `node` is up and its server unknown: it is told this node's
// memberships now when there are some (or when `ask`: this server wants
// theirs), and again at local changes until its server answers, at most
// PENDING_TRIES times. A node with no members sends nothing unasked: the
// nodes with some tell it theirs, and it answers.
static void
node_up(tp_ctx *ctx, server *s, const char *node, bool ask)
{
    uint32_t i;
    for (i = 0; i < s->npending; i++)
        if (strcmp(s->pending[i].node, node) == 0)
            break;
    if (i == s->npending) {
        if (s->npending == s->pending_cap) {
            uint32_t cap = s->pending_cap ? s->pending_cap * 2 : 8;
            pend *p = realloc(s->pending, cap * sizeof *p);
            if (p == NULL) {
                if (ask || have_local(s))
                    send_sync(ctx, s, TP_PID_NIL, node, true);
                return;
            }
            s->pending = p;
            s->pending_cap = cap;
        }
        snprintf(s->pending[i].node, sizeof s->pending[i].node, "%s", node);
        s->pending[i].tries = 0;
        s->npending++;
    }
    if (ask || have_local(s))
        tell_one(ctx, s, i);
}

// A local change: the nodes whose server has not answered yet get the
// whole SYNC again, the change included.
static void
tell_pending(tp_ctx *ctx, server *s)
{
    for (uint32_t i = 0; i < s->npending; i++)
        if (s->pending[i].tries < PENDING_TRIES)
            tell_one(ctx, s, i);
}

// Every node up now: asked for its memberships and told ours.
static void
sync_up_peers(tp_ctx *ctx, server *s)
{
    tp_system *sys = tp_ctx_system(ctx);
    int total = tp_node_peers(sys, NULL, 0);
    if (total <= 0)
        return;
    size_t max =
        (size_t)total < PEERS_LIST_MAX ? (size_t)total : PEERS_LIST_MAX;
    tp_peer_info *info = malloc(max * sizeof *info);
    if (info == NULL)
        return;
    int got = tp_node_peers(sys, info, max);
    for (int i = 0; i < got && (size_t)i < max; i++)
        if (info[i].state == TP_PEER_UP)
            node_up(ctx, s, info[i].node, true);
    free(info);
}

static void
watch_nodes(tp_ctx *ctx, server *s)
{
    if (s->watching_nodes || tp_monitor_nodes(ctx, true) != 0)
        return; // not a node (yet): tp_node_start's note comes then
    s->watching_nodes = true;
    sync_up_peers(ctx, s);
}

// Monitors local member or subscriber `pid` once: its exit takes it out.
static void
watch(tp_ctx *ctx, server *s, tp_pid pid)
{
    uint64_t v;
    if (tp__map_get(&s->watched, pid.v, &v))
        return;
    // One already gone answers with DOWN (noproc).
    if (tp__map_put(&s->watched, pid.v, 1) == 0 &&
        tp_monitor(ctx, pid, NULL) != 0)
        tp__map_del(&s->watched, pid.v, NULL);
}

static void
collect_local(tp__groups *g, group *gr, void *arg)
{
    (void)g;
    tp__map *pids = arg;
    for (uint32_t i = 0; i < gr->n; i++)
        if (gr->origins[i] == 0)
            tp__map_put(pids, gr->pids[i].v, 1);
    for (uint32_t i = 0; i < gr->nsubs; i++)
        tp__map_put(pids, gr->subs[i].v, 1);
}

// Watches every local member and subscriber in the table.
static void
watch_table(tp_ctx *ctx, server *s)
{
    tp__map local = {0};
    pthread_mutex_lock(&s->g->lock);
    each_group(s->g, collect_local, &local);
    pthread_mutex_unlock(&s->g->lock);
    for (uint32_t i = 0; i < local.cap; i++)
        if (local.keys[i] != 0 && local.keys[i] != UINT64_MAX)
            watch(ctx, s, (tp_pid){local.keys[i]});
    tp__map_free(&local);
}

static int
server_init(tp_ctx *ctx, void *state, void *arg)
{
    server *s = state;
    s->g = arg;
    // A server started again after its predecessor died: what other nodes
    // told that one is dropped (they tell this one again), and the local
    // members are watched anew.
    dropping every_remote = {.origin = UINT64_MAX};
    pthread_mutex_lock(&s->g->lock);
    each_group(s->g, drop_origin, &every_remote);
    pthread_mutex_unlock(&s->g->lock);
    watch_table(ctx, s);
    watch_nodes(ctx, s);
    return 0;
}

static void
server_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    server *s = state;
    tp__map_free(&s->watched);
    free(s->peers);
    free(s->pending);
}

// Remembers peer server `pid`, monitored. Returns its index or -1.
static int
peer_add(tp_ctx *ctx, server *s, tp_pid pid)
{
    if (s->npeers >= PEERS_LIST_MAX)
        return -1;
    if (s->npeers == s->peers_cap) {
        uint32_t cap = s->peers_cap ? s->peers_cap * 2 : 8;
        peer *p = realloc(s->peers, cap * sizeof *p);
        if (p == NULL)
            return -1;
        s->peers = p;
        s->peers_cap = cap;
    }
    uint64_t ref;
    if (tp_monitor(ctx, pid, &ref) != 0)
        return -1;
    s->peers[s->npeers] = (peer){.pid = pid, .ref = ref};
    return (int)s->npeers++;
}

static void
peer_drop(server *s, uint32_t i)
{
    dropping d = {.origin = s->peers[i].pid.v};
    s->peers[i] = s->peers[--s->npeers];
    pthread_mutex_lock(&s->g->lock);
    each_group(s->g, drop_origin, &d);
    pthread_mutex_unlock(&s->g->lock);
}

// Reads a group name and a pid from two msgpack objects.
static bool
read_membership(tp_system *sys, const msgpack_object *name,
                const msgpack_object *pid, char *out, tp_pid *member)
{
    if (name->type != MSGPACK_OBJECT_STR || name->via.str.size == 0 ||
        name->via.str.size > TP_GROUP_NAME_MAX ||
        memchr(name->via.str.ptr, 0, name->via.str.size) != NULL)
        return false;
    memcpy(out, name->via.str.ptr, name->via.str.size);
    out[name->via.str.size] = 0;
    // A member from another node is a pid of another node.
    return tp_unpack_pid(sys, pid, member) == 0 && tp_pid_node(*member) != 0;
}

static uint32_t global_winner(tp__groups *g, const group *gr);
static void global_lost(tp_ctx *ctx, server *s, const char *entry,
                        tp_pid loser, tp_pid winner);

static void
apply_remote(tp_ctx *ctx, server *s, uint64_t origin, uint32_t epoch,
             bool join, const char *name, tp_pid pid)
{
    tp__groups *g = s->g;
    tp_pid loser = TP_PID_NIL, winner = TP_PID_NIL;
    pthread_mutex_lock(&g->lock);
    if (join) {
        group *gr = find_or_add(g, name);
        if (gr != NULL && add(g, gr, pid, origin, epoch) < 0) {
            drop_if_empty(g, gr);
        } else if (gr != NULL && name[0] == GLOBAL_MARK && gr->n > 1) {
            // A global name two actors hold: the rule picks one, the same
            // on every node; a local holder that lost gives it up.
            uint32_t w = global_winner(g, gr);
            winner = gr->pids[w];
            for (uint32_t i = 0; i < gr->n; i++)
                if (i != w && gr->origins[i] == 0)
                    loser = gr->pids[i];
            if (!tp_pid_is_nil(loser))
                del(g, gr, loser, 0);
        }
    } else {
        group *gr = find(g, name);
        if (gr != NULL)
            del(g, gr, pid, origin);
    }
    pthread_mutex_unlock(&g->lock);
    if (!tp_pid_is_nil(loser))
        global_lost(ctx, s, name, loser, winner);
}

// A message from another node's server: SYNC, JOIN or LEAVE.
static void
handle_remote(tp_ctx *ctx, server *s, const tp_msg *msg)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (tp_pid_node(msg->from) == 0)
        return; // only other nodes' servers send these
    msgpack_unpacked u;
    if (tp_msg_unpack(msg, &u) != 0 || u.data.type != MSGPACK_OBJECT_ARRAY) {
        msgpack_unpacked_destroy(&u);
        return;
    }
    const msgpack_object_array *a = &u.data.via.array;
    int i = peer_find(s, msg->from);
    bool fresh = i < 0, was_pending = false;
    if (fresh) {
        if ((i = peer_add(ctx, s, msg->from)) < 0) {
            msgpack_unpacked_destroy(&u);
            return;
        }
        const char *node;
        uint32_t inc;
        uint64_t local;
        if (tp__node_pid_encode(sys, msg->from, &node, &inc, &local) == 0)
            was_pending = pending_del(s, node); // it knows of us now
    }
    peer *pr = &s->peers[i];
    char name[TP_GROUP_NAME_MAX + 1];
    tp_pid member;
    bool reply = false, ask = false;
    if (msg->tag == T_SYNC) {
        if (a->size != 4 || a->ptr[0].type != MSGPACK_OBJECT_BOOLEAN ||
            a->ptr[1].type != MSGPACK_OBJECT_BOOLEAN ||
            a->ptr[2].type != MSGPACK_OBJECT_BOOLEAN ||
            a->ptr[3].type != MSGPACK_OBJECT_ARRAY ||
            a->ptr[3].via.array.size % 2 != 0) {
            msgpack_unpacked_destroy(&u);
            return;
        }
        bool first = a->ptr[1].via.boolean, last = a->ptr[2].via.boolean;
        reply = a->ptr[0].via.boolean && first;
        // A sync is read as a difference: members it tells again keep
        // their place (no leave and join for subscribers), those it no
        // longer tells leave when its last chunk is read.
        if (first)
            pr->epoch++;
        const msgpack_object_array *l = &a->ptr[3].via.array;
        for (uint32_t k = 0; k + 1 < l->size; k += 2)
            if (read_membership(sys, &l->ptr[k], &l->ptr[k + 1], name,
                                &member))
                apply_remote(ctx, s, pr->pid.v, pr->epoch, true, name, member);
        if (last) {
            dropping d = {
                .origin = pr->pid.v, .stale_only = true, .keep = pr->epoch};
            pthread_mutex_lock(&s->g->lock);
            each_group(s->g, drop_origin, &d);
            pthread_mutex_unlock(&s->g->lock);
        }
    } else {
        if (a->size == 2 &&
            read_membership(sys, &a->ptr[0], &a->ptr[1], name, &member))
            apply_remote(ctx, s, pr->pid.v, pr->epoch, msg->tag == T_JOIN,
                         name, member);
        // A server first heard of by a change: ask for all it holds.
        ask = fresh;
    }
    msgpack_unpacked_destroy(&u);
    // Asked, asking, or a node told by name before its server answered
    // (changes since the last telling would be missing): the whole SYNC.
    if (reply || ask || was_pending) {
        int rc = send_sync(ctx, s, msg->from, NULL, ask);
        if (rc != 0)
            peer_failed(ctx, s, (uint32_t)i, rc);
    }
}

// A note from this system: what it says is read from the table now, so
// notes read in any order still leave the other nodes with the last state.
static void
handle_note(tp_ctx *ctx, server *s, const tp_msg *msg)
{
    if (!tp_pid_is_nil(msg->from) || msg->size != sizeof(note))
        return;
    note nt;
    memcpy(&nt, msg->data, sizeof nt);
    nt.group[TP_GROUP_NAME_MAX] = 0;
    switch (msg->tag) {
    case T_NOTE_NODE:
        watch_nodes(ctx, s);
        return;
    case T_NOTE_RESCAN:
        watch_table(ctx, s);
        for (uint32_t i = 0; i < s->npeers; i++)
            s->peers[i].dirty = true;
        schedule_resync(ctx, s);
        tell_pending(ctx, s);
        return;
    case T_NOTE_SUB:
        if (tp_pid_node(nt.pid) == 0 && !tp_pid_is_nil(nt.pid))
            watch(ctx, s, nt.pid);
        return;
    }
    if (tp_pid_node(nt.pid) != 0 || !entry_name_ok(nt.group))
        return;
    tp__groups *g = s->g;
    bool member = false;
    uint64_t v;
    pthread_mutex_lock(&g->lock);
    group *gr = find(g, nt.group);
    if (gr != NULL && tp__map_get(&gr->index, nt.pid.v, &v))
        member = gr->origins[v - 1] == 0;
    pthread_mutex_unlock(&g->lock);
    if (member)
        watch(ctx, s, nt.pid);
    if (member == (msg->tag == T_NOTE_JOIN)) {
        broadcast(ctx, s, member ? T_JOIN : T_LEAVE, nt.group, nt.pid);
        tell_pending(ctx, s);
    }
}

typedef struct gone_ctx {
    tp_pid pid;
    char (*names)[TP_GROUP_NAME_MAX + 1];
    size_t n, cap;
    bool lost; // a name could not be kept: the peers get the whole SYNC
} gone_ctx;

// Takes exited actor gc->pid out of `gr`'s members and subscribers.
static void
drop_gone(tp__groups *g, group *gr, void *arg)
{
    gone_ctx *gc = arg;
    for (uint32_t i = 0; i < gr->nsubs; i++)
        if (gr->subs[i].v == gc->pid.v) {
            gr->subs[i] = gr->subs[--gr->nsubs];
            break;
        }
    char name[TP_GROUP_NAME_MAX + 1];
    memcpy(name, gr->name, sizeof name);
    if (!del(g, gr, gc->pid, 0)) { // may free gr
        drop_if_empty(g, gr);
        return;
    }
    if (gc->n == gc->cap) {
        size_t cap = gc->cap ? gc->cap * 2 : 4;
        void *p = realloc(gc->names, cap * sizeof *gc->names);
        if (p == NULL) {
            gc->lost = true;
            return;
        }
        gc->names = p;
        gc->cap = cap;
    }
    memcpy(gc->names[gc->n++], name, sizeof name);
}

static void
handle_down(tp_ctx *ctx, server *s, const tp_down_msg *d)
{
    for (uint32_t i = 0; i < s->npeers; i++)
        if (s->peers[i].ref == d->ref) {
            peer_drop(s, i);
            return;
        }
    if (!tp__map_del(&s->watched, d->from.v, NULL))
        return;
    gone_ctx gc = {.pid = d->from};
    pthread_mutex_lock(&s->g->lock);
    each_group(s->g, drop_gone, &gc);
    pthread_mutex_unlock(&s->g->lock);
    for (size_t i = 0; i < gc.n; i++)
        broadcast(ctx, s, T_LEAVE, gc.names[i], d->from);
    if (gc.lost) {
        for (uint32_t i = 0; i < s->npeers; i++)
            s->peers[i].dirty = true;
        schedule_resync(ctx, s);
    }
    if (gc.n > 0 || gc.lost)
        tell_pending(ctx, s);
    free(gc.names);
}

static int
server_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    server *s = state;
    switch (msg->tag) {
    case T_NOTE_JOIN:
    case T_NOTE_LEAVE:
    case T_NOTE_NODE:
    case T_NOTE_RESCAN:
    case T_NOTE_SUB:
        handle_note(ctx, s, msg);
        break;
    case T_SYNC:
    case T_JOIN:
    case T_LEAVE:
        handle_remote(ctx, s, msg);
        break;
    case T_RESYNC:
        if (!tp_pid_eq(msg->from, tp_self(ctx)))
            break;
        s->resync_due = false;
        for (uint32_t i = 0; i < s->npeers; i++)
            if (s->peers[i].dirty) {
                s->peers[i].dirty = false;
                int rc = send_sync(ctx, s, s->peers[i].pid, NULL, false);
                if (rc != 0)
                    peer_failed(ctx, s, i, rc);
            }
        if (s->retry_pending) {
            s->retry_pending = false;
            tell_pending(ctx, s);
        }
        break;
    case TP_TAG_DOWN:
        if (msg->size == sizeof(tp_down_msg)) {
            tp_down_msg d;
            memcpy(&d, msg->data, sizeof d);
            handle_down(ctx, s, &d);
        }
        break;
    case TP_TAG_NODEUP:
    case TP_TAG_NODEDOWN:
        if (msg->size == sizeof(tp_node_msg)) {
            tp_node_msg nm;
            memcpy(&nm, msg->data, sizeof nm);
            nm.node[sizeof nm.node - 1] = 0;
            // A server of that node heard from goes with its DOWN.
            if (msg->tag == TP_TAG_NODEUP)
                node_up(ctx, s, nm.node, false);
            else
                pending_del(s, nm.node);
        }
        break;
    default:
        break; // strays
    }
    return TP_OK;
}

void
tp__groups_node_started(tp_system *sys)
{
    tp__groups *g = table(sys);
    if (g == NULL || ensure_server(g) != 0) {
        tp_log(sys, TP_LOG_WARNING,
               "groups: the group server could not start: groups stay local "
               "until a tp_group_join or tp_group_monitor starts it");
        return;
    }
    // A server that started before the node (or is starting for a join
    // on another thread) watches nodes from now on.
    note_server(g, T_NOTE_NODE, "", TP_PID_NIL);
}

// ---- the API -------------------------------------------------------------

static int
check_local(tp_system *sys, tp_pid pid)
{
    if (tp_pid_is_nil(pid) || tp_pid_node(pid) != 0)
        return TP_EINVAL;
    tp_actor_stats st;
    return tp_actor_stats_get(sys, pid, &st);
}

// Adds local `pid` to table entry `name`; with `alone`, only while the
// entry holds no one else (a global name).
static int
join_entry(tp_system *sys, const char *group_name, tp_pid pid, bool alone)
{
    int rc = check_local(sys, pid);
    if (rc != 0)
        return rc;
    tp__groups *g = table(sys);
    if (g == NULL)
        return TP_ENOMEM;
    if ((rc = ensure_server(g)) != 0)
        return rc;
    pthread_mutex_lock(&g->lock);
    group *gr = find_or_add(g, group_name);
    uint64_t v;
    if (gr == NULL) {
        rc = TP_ENOMEM;
    } else if (alone && gr->n > 0 && !tp__map_get(&gr->index, pid.v, &v)) {
        rc = TP_EEXIST;
    } else if ((rc = add(g, gr, pid, 0, 0)) > 0) {
        rc = 0;
        // Without its note the server would neither watch the member nor
        // tell the other nodes: the join is undone.
        if (!note_server(g, T_NOTE_JOIN, group_name, pid)) {
            del(g, gr, pid, 0);
            rc = TP_ENOMEM;
        }
    } else if (rc < 0) {
        drop_if_empty(g, gr);
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int
tp_group_join(tp_system *sys, const char *group_name, tp_pid pid)
{
    if (sys == NULL || !tp__group_name_ok(group_name))
        return TP_EINVAL;
    return join_entry(sys, group_name, pid, false);
}

static int
leave_entry(tp_system *sys, const char *group_name, tp_pid pid)
{
    tp__groups *g = table(sys);
    if (g == NULL)
        return TP_ENOMEM;
    int rc = TP_ENOENT;
    pthread_mutex_lock(&g->lock);
    group *gr = find(g, group_name);
    if (gr != NULL && del(g, gr, pid, 0)) {
        note_server(g, T_NOTE_LEAVE, group_name, pid);
        rc = 0;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int
tp_group_leave(tp_system *sys, const char *group_name, tp_pid pid)
{
    if (sys == NULL || !tp__group_name_ok(group_name) || tp_pid_is_nil(pid) ||
        tp_pid_node(pid) != 0)
        return TP_EINVAL;
    return leave_entry(sys, group_name, pid);
}

static int
members(tp_system *sys, const char *group_name, tp_pid *out, size_t max,
        bool local_only)
{
    if (sys == NULL || !tp__group_name_ok(group_name) ||
        (out == NULL && max > 0))
        return TP_EINVAL;
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    if (g == NULL)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&g->lock);
    group *gr = find(g, group_name);
    for (uint32_t i = 0; gr != NULL && i < gr->n; i++) {
        if (local_only && gr->origins[i] != 0)
            continue;
        if (n < max)
            out[n] = gr->pids[i];
        n++;
    }
    pthread_mutex_unlock(&g->lock);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int
tp_group_members(tp_system *sys, const char *group_name, tp_pid *out,
                 size_t max)
{
    return members(sys, group_name, out, max, false);
}

int
tp_group_local_members(tp_system *sys, const char *group_name, tp_pid *out,
                       size_t max)
{
    return members(sys, group_name, out, max, true);
}

int
tp_group_names(tp_system *sys, char (*names)[TP_GROUP_NAME_MAX + 1],
               size_t max)
{
    if (sys == NULL || (names == NULL && max > 0))
        return TP_EINVAL;
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    if (g == NULL)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&g->lock);
    for (uint32_t b = 0; b < g->nbuckets; b++)
        for (group *gr = g->buckets[b]; gr; gr = gr->next) {
            if (gr->n == 0 || !tp__group_name_ok(gr->name))
                continue; // only watched, or a global name's (global.c)
            if (n < max)
                memcpy(names[n], gr->name, sizeof names[n]);
            n++;
        }
    pthread_mutex_unlock(&g->lock);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int
tp_group_monitor(tp_ctx *ctx, const char *group_name, bool on)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    if (!tp__group_name_ok(group_name))
        return TP_EINVAL;
    tp_system *sys = tp_ctx_system(ctx);
    tp_pid self = tp_self(ctx);
    tp__groups *g = table(sys);
    if (g == NULL)
        return TP_ENOMEM;
    if (on && (rc = ensure_server(g)) != 0)
        return rc;
    pthread_mutex_lock(&g->lock);
    group *gr = on ? find_or_add(g, group_name) : find(g, group_name);
    uint32_t i = 0;
    while (gr != NULL && i < gr->nsubs && gr->subs[i].v != self.v)
        i++;
    if (gr == NULL) {
        rc = on ? TP_ENOMEM : 0;
    } else if (!on) {
        if (i < gr->nsubs) {
            gr->subs[i] = gr->subs[--gr->nsubs];
            drop_if_empty(g, gr);
        }
    } else if (i == gr->nsubs) {
        if (gr->nsubs == gr->subs_cap) {
            uint32_t cap = gr->subs_cap ? gr->subs_cap * 2 : 4;
            tp_pid *p = realloc(gr->subs, cap * sizeof *p);
            if (p == NULL)
                rc = TP_ENOMEM;
            else {
                gr->subs = p;
                gr->subs_cap = cap;
            }
        }
        if (rc == 0) {
            // The current members first, then every change: all under the
            // lock, so nothing is told twice or missed.
            tp_group_msg gm;
            memset(&gm, 0, sizeof gm);
            memcpy(gm.group, gr->name, sizeof gm.group);
            for (uint32_t k = 0; k < gr->n && rc == 0; k++) {
                gm.member = gr->pids[k];
                tp__msg *m = tp__msg_new_copy(sys, TP_TAG_GROUP_JOIN,
                                              TP_PID_NIL, &gm, sizeof gm);
                if (m == NULL)
                    rc = TP_ENOMEM;
                else if (tp__deliver_force(sys, self, m) != 0)
                    tp__msg_free(m);
            }
            if (rc == 0) {
                gr->subs[gr->nsubs++] = self;
                // The server watches it: its exit ends the subscription.
                note_server(g, T_NOTE_SUB, gr->name, self);
            } else
                drop_if_empty(g, gr);
        } else {
            drop_if_empty(g, gr);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int
tp_group_send(tp_ctx *ctx, const char *group_name, uint32_t tag,
              const void *data, size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0 && !tp__group_name_ok(group_name))
        rc = TP_EINVAL;
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    tp_system *sys = tp_ctx_system(ctx);
    tp_pid *pids = NULL;
    size_t n = 0, cap = 0;
    uint64_t version;
    if (tp__groups_snapshot(sys, group_name, &pids, &n, &cap, &version) != 0)
        return TP_ENOMEM;
    int reached = 0;
    for (size_t i = 0; i < n; i++) {
        rc = tp_send(ctx, pids[i], tag, data, size);
        if (rc == 0)
            reached++;
        else if (rc == TP_ENOMEM)
            break;
    }
    free(pids);
    return rc == TP_ENOMEM && reached == 0 ? rc : reached;
}

// ---- global names --------------------------------------------------------

static bool
global_entry(const char *name, char *entry)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, TP_GLOBAL_NAME_MAX + 1);
    if (n < 1 || n > TP_GLOBAL_NAME_MAX)
        return false;
    entry[0] = GLOBAL_MARK;
    memcpy(entry + 1, name, n + 1);
    return true;
}

// The full name of `pid`'s node ("" for a pid of no node).
static const char *
node_of_pid(tp_system *sys, tp_pid pid)
{
    if (tp_pid_node(pid) == 0)
        return tp_node_name(sys);
    const char *node;
    uint32_t inc;
    uint64_t local;
    return tp__node_pid_encode(sys, pid, &node, &inc, &local) == 0 ? node : "";
}

// The holder the rule picks among gr's: the one whose node's full name
// sorts first, then the lowest pid. g->lock held; gr->n > 0.
static uint32_t
global_winner(tp__groups *g, const group *gr)
{
    uint32_t w = 0;
    const char *wn = node_of_pid(g->sys, gr->pids[0]);
    for (uint32_t i = 1; i < gr->n; i++) {
        const char *n = node_of_pid(g->sys, gr->pids[i]);
        int c = strcmp(n, wn);
        if (c < 0 || (c == 0 && gr->pids[i].v < gr->pids[w].v)) {
            w = i;
            wn = n;
        }
    }
    return w;
}

// Local `loser` gave up global name entry `entry` to `winner`: the other
// nodes hear of it, and the loser gets TP_TAG_GLOBAL_LOST.
static void
global_lost(tp_ctx *ctx, server *s, const char *entry, tp_pid loser,
            tp_pid winner)
{
    broadcast(ctx, s, T_LEAVE, entry, loser);
    tell_pending(ctx, s);
    tp_global_msg gm;
    memset(&gm, 0, sizeof gm);
    snprintf(gm.name, sizeof gm.name, "%s", entry + 1);
    gm.holder = winner;
    tp_system *sys = tp_ctx_system(ctx);
    tp__msg *m =
        tp__msg_new_copy(sys, TP_TAG_GLOBAL_LOST, TP_PID_NIL, &gm, sizeof gm);
    if (m != NULL && tp__deliver_force(sys, loser, m) != 0)
        tp__msg_free(m);
    char text[TP_PID_STRLEN], by[TP_PID_STRLEN];
    tp_pid_format(loser, text, sizeof text);
    tp_pid_format(winner, by, sizeof by);
    tp_log(sys, TP_LOG_WARNING,
           "groups: global name \"%s\" held twice: %s gives it up to %s "
           "(of %s)",
           gm.name, text, by, node_of_pid(sys, winner));
}

int
tp_global_register(tp_system *sys, const char *name, tp_pid pid)
{
    char entry[TP_GROUP_NAME_MAX + 1];
    if (sys == NULL || !global_entry(name, entry))
        return TP_EINVAL;
    return join_entry(sys, entry, pid, true);
}

int
tp_global_unregister(tp_system *sys, const char *name)
{
    char entry[TP_GROUP_NAME_MAX + 1];
    if (sys == NULL || !global_entry(name, entry))
        return TP_EINVAL;
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    tp_pid holder = TP_PID_NIL;
    if (g != NULL) {
        pthread_mutex_lock(&g->lock);
        group *gr = find(g, entry);
        for (uint32_t i = 0; gr != NULL && i < gr->n; i++)
            if (gr->origins[i] == 0)
                holder = gr->pids[i];
        pthread_mutex_unlock(&g->lock);
    }
    if (tp_pid_is_nil(holder))
        return TP_ENOENT;
    return leave_entry(sys, entry, holder);
}

int
tp_global_whereis(tp_system *sys, const char *name, tp_pid *out)
{
    char entry[TP_GROUP_NAME_MAX + 1];
    if (sys == NULL || out == NULL || !global_entry(name, entry))
        return TP_EINVAL;
    tp__groups *g = atomic_load_explicit(&sys->groups, memory_order_acquire);
    if (g == NULL)
        return TP_ENOACTOR;
    int rc = TP_ENOACTOR;
    pthread_mutex_lock(&g->lock);
    group *gr = find(g, entry);
    if (gr != NULL && gr->n > 0) {
        *out = gr->pids[global_winner(g, gr)];
        rc = 0;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int
tp_global_send(tp_ctx *ctx, const char *name, uint32_t tag, const void *data,
               size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_pid to;
    if ((rc = tp_global_whereis(tp_ctx_system(ctx), name, &to)) != 0)
        return rc;
    return tp_send(ctx, to, tag, data, size);
}
