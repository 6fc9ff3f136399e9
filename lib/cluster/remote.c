// SPDX-License-Identifier: MIT
// Names and spawning on other nodes. Each node runs one actor registered
// as "troupe.remote" (started by tp_node_start). A local caller queues a
// note for it; it sends the request by name to the other node's
// "troupe.remote" and keeps it pending until the answer, its timeout or
// the loss of that node, then delivers TP_TAG_WHEREIS or TP_TAG_SPAWNED to
// the caller under the caller's ref. Between nodes (msgpack):
//
//   WHEREIS [id, name]            SPAWN [id, behaviour, arg (bin)]
//   ANSWER  [id, error, pid or nil]
//
// `id` is the asking service's own number for the request; the answer
// goes to the sender of the request.
#include "cluster/cluster.h"
#include "core/core.h"
#include "dist/dist.h"
#include "signals/signals.h"

#include <troupe/msgpack.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REMOTE_NAME "troupe.remote"
#define REMOTE_CAPACITY (1u << 20)

enum {
    R_NOTE = 0x74707201u, // "tpr", below the reserved tags
    R_WHEREIS,
    R_SPAWN,
    R_ANSWER,
    R_TIMEOUT,
};

// OP_RESOLVE is a lookup made for a request by name
// (tp_request_name_at): the same WHEREIS between nodes, answered to the
// caller's request instead of as a message.
enum { OP_WHEREIS = 1, OP_SPAWN, OP_RESOLVE };

typedef struct spawnable {
    char name[TP_NAME_MAX + 1];
    const tp_behaviour *b;
} spawnable;

typedef struct tp__remote {
    pthread_mutex_t lock; // the spawnables
    spawnable *tab;
    size_t n, cap;
} tp__remote;

// What a caller queues for the service; the argument's bytes follow.
typedef struct rnote {
    uint32_t op;
    int32_t timeout_ms;
    tp_pid caller;
    uint64_t ref;
    char node[TP_NODE_NAME_MAX];
    char name[TP_NAME_MAX + 1];
    uint32_t size;
} rnote;

// ---- the spawnables ------------------------------------------------------

static tp__remote *
remote_of(tp_system *sys)
{
    // acquire: built before published.
    tp__remote *r = atomic_load_explicit(&sys->remote, memory_order_acquire);
    if (r != NULL)
        return r;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    tp__remote *expected = NULL;
    // acq_rel: publishes ours, or sees the winner's.
    if (!atomic_compare_exchange_strong_explicit(&sys->remote, &expected, r,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return expected;
    }
    return r;
}

void
tp__remote_free(tp_system *sys)
{
    tp__remote *r = atomic_load_explicit(&sys->remote, memory_order_acquire);
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->tab);
    free(r);
    atomic_store_explicit(&sys->remote, NULL, memory_order_relaxed);
}

static bool
name_ok(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, TP_NAME_MAX + 1);
    return n >= 1 && n <= TP_NAME_MAX;
}

int
tp_spawnable(tp_system *sys, const char *name, const tp_behaviour *b)
{
    if (sys == NULL || !name_ok(name) || b == NULL || b->handle == NULL)
        return TP_EINVAL;
    tp__remote *r = remote_of(sys);
    if (r == NULL)
        return TP_ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n && rc == 0; i++)
        if (strcmp(r->tab[i].name, name) == 0)
            rc = TP_EEXIST;
    if (rc == 0 && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        spawnable *t = realloc(r->tab, cap * sizeof *t);
        if (t == NULL)
            rc = TP_ENOMEM;
        else {
            r->tab = t;
            r->cap = cap;
        }
    }
    if (rc == 0) {
        snprintf(r->tab[r->n].name, sizeof r->tab[r->n].name, "%s", name);
        r->tab[r->n++].b = b;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void
tp__spawnables_switch(tp_system *sys, const tp_code_change *changes, size_t n)
{
    // acquire: as remote_of; none registered means nothing to switch.
    tp__remote *r = atomic_load_explicit(&sys->remote, memory_order_acquire);
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        for (size_t c = 0; c < n; c++)
            if (r->tab[i].b == changes[c].from) {
                r->tab[i].b = changes[c].to;
                break;
            }
    pthread_mutex_unlock(&r->lock);
}

size_t
tp__spawnables_refs(tp_system *sys, uintptr_t lo, uintptr_t hi)
{
    // acquire: as remote_of.
    tp__remote *r = atomic_load_explicit(&sys->remote, memory_order_acquire);
    if (r == NULL)
        return 0;
    size_t refs = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        refs += tp__behaviour_in(r->tab[i].b, lo, hi);
    pthread_mutex_unlock(&r->lock);
    return refs;
}

int
tp_spawnable_remove(tp_system *sys, const char *name)
{
    if (sys == NULL || !name_ok(name))
        return TP_EINVAL;
    tp__remote *r = remote_of(sys);
    if (r == NULL)
        return TP_ENOMEM;
    int rc = TP_ENOENT;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->tab[i].name, name) == 0) {
            r->tab[i] = r->tab[--r->n];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static const tp_behaviour *
spawnable_find(tp_system *sys, const char *name)
{
    tp__remote *r = remote_of(sys);
    const tp_behaviour *b = NULL;
    if (r == NULL)
        return NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->tab[i].name, name) == 0)
            b = r->tab[i].b;
    pthread_mutex_unlock(&r->lock);
    return b;
}

// ---- doing it here -----------------------------------------------------

// Looks `name` up, or spawns behaviour `name` with `arg`, on this node.
static void
do_here(tp_system *sys, uint32_t op, const char *name, const void *arg,
        size_t size, tp_remote_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    if (op != OP_SPAWN) {
        ans->error = tp_whereis(sys, name, &ans->pid);
        return;
    }
    const tp_behaviour *b = spawnable_find(sys, name);
    if (b == NULL) {
        ans->error = TP_ENOENT;
        return;
    }
    tp_spawn_arg sa = {size ? arg : NULL, size};
    ans->error = tp_spawn(sys, b, &sa, NULL, &ans->pid);
}

// Delivers answer `ans` to the caller under its ref. An actor spawned for
// a caller that cannot be told (it has exited; no memory) is killed: no
// one would know it is there.
static void
answer(tp_ctx *ctx, uint32_t op, tp_pid caller, uint64_t ref,
       const tp_remote_answer *ans)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (op == OP_RESOLVE) {
        // Lost only for want of memory: the request's timeout answers.
        tp__request_resolved(sys, caller, ref, ans->error, ans->pid);
        return;
    }
    uint32_t tag = op == OP_WHEREIS ? TP_TAG_WHEREIS : TP_TAG_SPAWNED;
    tp__msg *m = tp__msg_new_copy(sys, tag, TP_PID_NIL, ans, sizeof *ans);
    if (m != NULL) {
        m->pub.ref = ref;
        if (tp__deliver_force(sys, caller, m) == 0)
            return;
        tp__msg_free(m); // the caller has exited
    }
    if (op == OP_SPAWN && ans->error == 0)
        tp_exit(ctx, ans->pid, TP_REASON_KILL);
}

// ---- the service ---------------------------------------------------------

typedef struct pending {
    uint64_t id, ref;
    tp_pid caller;
    uint32_t op;
    tp_timer timer;
    char node[TP_NODE_NAME_MAX];
    // The request, until it is sent: a request waits for its node to be
    // up, since one queued for a connection attempt that fails is lost.
    uint8_t *req;
    size_t req_len;
} pending;

// Spawn requests that ended without their answer (timeout, lost node):
// an answer that still comes has its actor killed.
#define TOMBS 256

typedef struct service {
    pending *p;
    size_t n, cap;
    uint64_t next_id;
    uint64_t tombs[TOMBS];
    unsigned next_tomb;
} service;

static pending *
pending_find(service *s, uint64_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i].id == id)
            return &s->p[i];
    return NULL;
}

// Ends pending request `p` with `ans`.
static void
finish(tp_ctx *ctx, service *s, pending *p, const tp_remote_answer *ans)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (p->timer != 0)
        tp_timer_cancel(sys, p->timer);
    if (p->op == OP_SPAWN && p->req == NULL && ans->error != 0) {
        s->tombs[s->next_tomb] = p->id; // sent, and not answered
        s->next_tomb = (s->next_tomb + 1) % TOMBS;
    }
    free(p->req);
    answer(ctx, p->op, p->caller, p->ref, ans);
    *p = s->p[--s->n];
}

// Sends pending request `p`. Returns 0 or the send's code.
static int
send_request(tp_ctx *ctx, pending *p)
{
    int rc = tp_send_name_at(ctx, REMOTE_NAME, p->node,
                             p->op != OP_SPAWN ? R_WHEREIS : R_SPAWN, p->req,
                             p->req_len);
    if (rc == 0) {
        free(p->req);
        p->req = NULL;
    }
    return rc;
}

static void
fail(tp_ctx *ctx, service *s, pending *p, int error)
{
    tp_remote_answer ans = {.error = error};
    finish(ctx, s, p, &ans);
}

// A caller's note: do it here, or send it to the other node.
static void
handle_note(tp_ctx *ctx, service *s, const tp_msg *msg)
{
    tp_system *sys = tp_ctx_system(ctx);
    rnote nt;
    if (!tp_pid_is_nil(msg->from) || msg->size < sizeof nt)
        return;
    memcpy(&nt, msg->data, sizeof nt);
    if (msg->size != sizeof nt + nt.size)
        return;
    nt.node[sizeof nt.node - 1] = 0;
    nt.name[sizeof nt.name - 1] = 0;
    const uint8_t *arg = (const uint8_t *)msg->data + sizeof nt;
    tp_remote_answer ans;
    if (strcmp(nt.node, tp_node_name(sys)) == 0) {
        do_here(sys, nt.op, nt.name, arg, nt.size, &ans);
        answer(ctx, nt.op, nt.caller, nt.ref, &ans);
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        pending *p = realloc(s->p, cap * sizeof *p);
        if (p == NULL) {
            ans = (tp_remote_answer){.error = TP_ENOMEM};
            answer(ctx, nt.op, nt.caller, nt.ref, &ans);
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    uint64_t id = ++s->next_id;
    tp_pack pk;
    tp_pack_init(&pk);
    msgpack_packer *p = tp_pack_packer(&pk);
    size_t len = strlen(nt.name);
    msgpack_pack_array(p, nt.op != OP_SPAWN ? 2 : 3);
    msgpack_pack_uint64(p, id);
    msgpack_pack_str(p, len);
    msgpack_pack_str_body(p, nt.name, len);
    if (nt.op == OP_SPAWN) {
        msgpack_pack_bin(p, nt.size);
        msgpack_pack_bin_body(p, arg, nt.size);
    }
    pending *q = &s->p[s->n++];
    *q = (pending){.id = id,
                   .ref = nt.ref,
                   .caller = nt.caller,
                   .op = nt.op,
                   .req = (uint8_t *)pk.buf.data,
                   .req_len = pk.buf.size};
    pk.buf.data = NULL; // the pending request owns the bytes now
    pk.buf.size = pk.buf.alloc = 0;
    tp_pack_destroy(&pk);
    snprintf(q->node, sizeof q->node, "%s", nt.node);
    if (nt.timeout_ms >= 0 &&
        tp_send_after(ctx, tp_self(ctx), (uint32_t)nt.timeout_ms, R_TIMEOUT,
                      &id, sizeof id, &q->timer) != 0) {
        fail(ctx, s, q, TP_ENOMEM);
        return;
    }
    // Sent now if its node is up; otherwise at its nodeup (connecting to
    // it now), or never, if the timeout comes first.
    int rc = tp__node_peer_up(sys, TP_PID_NIL, nt.node)
                 ? send_request(ctx, q)
                 : tp_node_connect(sys, nt.node, 0);
    if (rc != 0)
        fail(ctx, s, q, rc);
}

// Packs and sends ANSWER [id, error, pid or nil] to `to`.
static void
send_answer(tp_ctx *ctx, tp_pid to, uint64_t id, const tp_remote_answer *a)
{
    tp_pack pk;
    tp_pack_init(&pk);
    msgpack_packer *p = tp_pack_packer(&pk);
    msgpack_pack_array(p, 3);
    msgpack_pack_uint64(p, id);
    msgpack_pack_int32(p, a->error);
    if (a->error != 0 || tp_pack_pid(tp_ctx_system(ctx), a->pid, p) != 0)
        msgpack_pack_nil(p);
    tp_send(ctx, to, R_ANSWER, pk.buf.data, pk.buf.size);
    tp_pack_destroy(&pk);
}

static bool
read_str(const msgpack_object *o, char *out, size_t size)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        o->via.str.size >= size ||
        memchr(o->via.str.ptr, 0, o->via.str.size) != NULL)
        return false;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

// WHEREIS or SPAWN from another node's service: answered at once.
static void
handle_request(tp_ctx *ctx, const tp_msg *msg, const msgpack_object_array *a)
{
    tp_system *sys = tp_ctx_system(ctx);
    bool spawn = msg->tag == R_SPAWN;
    char name[TP_NAME_MAX + 1];
    if (a->size != (spawn ? 3u : 2u) ||
        a->ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return; // not a request this service can answer
    uint64_t id = a->ptr[0].via.u64;
    tp_remote_answer ans = {.error = TP_EINVAL};
    if (read_str(&a->ptr[1], name, sizeof name) &&
        (!spawn || a->ptr[2].type == MSGPACK_OBJECT_BIN))
        do_here(sys, spawn ? OP_SPAWN : OP_WHEREIS, name,
                spawn ? a->ptr[2].via.bin.ptr : NULL,
                spawn ? a->ptr[2].via.bin.size : 0, &ans);
    send_answer(ctx, msg->from, id, &ans);
}

// ANSWER from another node's service.
static void
handle_answer(tp_ctx *ctx, service *s, const tp_msg *msg,
              const msgpack_object_array *a)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (a->size != 3 || a->ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    uint64_t id = a->ptr[0].via.u64;
    pending *p = pending_find(s, id);
    const char *node;
    uint32_t inc;
    uint64_t local;
    if (p == NULL) {
        // A spawn's answer after the request ended: its actor is killed.
        tp_pid orphan;
        for (unsigned i = 0; i < TOMBS && id != 0; i++)
            if (s->tombs[i] == id) {
                s->tombs[i] = 0;
                if (a->ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    a->ptr[1].via.u64 == 0 &&
                    tp_unpack_pid(sys, &a->ptr[2], &orphan) == 0 &&
                    tp_pid_node(orphan) == tp_pid_node(msg->from))
                    tp_exit(ctx, orphan, TP_REASON_KILL);
            }
        return;
    }
    // Only the node asked answers.
    if (tp__node_pid_encode(sys, msg->from, &node, &inc, &local) != 0 ||
        strcmp(node, p->node) != 0)
        return;
    tp_remote_answer ans = {.error = TP_EINVAL};
    const msgpack_object *e = &a->ptr[1], *pid = &a->ptr[2];
    if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER && e->via.u64 == 0) {
        // A pid of that node, from its own service.
        if (tp_unpack_pid(sys, pid, &ans.pid) == 0 &&
            tp_pid_node(ans.pid) == tp_pid_node(msg->from))
            ans.error = 0;
    } else if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
               e->via.i64 > INT32_MIN) {
        ans.error = (int)e->via.i64; // INT32_MIN is no code of ours
    }
    finish(ctx, s, p, &ans);
}

static int
service_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    service *s = state;
    switch (msg->tag) {
    case R_NOTE:
        handle_note(ctx, s, msg);
        break;
    case R_TIMEOUT: {
        uint64_t id;
        if (!tp_pid_eq(msg->from, tp_self(ctx)) || msg->size != sizeof id)
            break;
        memcpy(&id, msg->data, sizeof id);
        pending *p = pending_find(s, id);
        if (p != NULL) {
            p->timer = 0; // it fired
            fail(ctx, s, p, TP_ETIMEDOUT);
        }
        break;
    }
    case R_WHEREIS:
    case R_SPAWN:
    case R_ANSWER: {
        if (tp_pid_node(msg->from) == 0)
            break; // only other nodes' services send these
        msgpack_unpacked u;
        if (tp_msg_unpack(msg, &u) == 0 &&
            u.data.type == MSGPACK_OBJECT_ARRAY) {
            if (msg->tag == R_ANSWER)
                handle_answer(ctx, s, msg, &u.data.via.array);
            else
                handle_request(ctx, msg, &u.data.via.array);
        }
        msgpack_unpacked_destroy(&u);
        break;
    }
    case TP_TAG_NODEUP:
    case TP_TAG_NODEDOWN:
        if (msg->size == sizeof(tp_node_msg)) {
            tp_node_msg nm;
            memcpy(&nm, msg->data, sizeof nm);
            nm.node[sizeof nm.node - 1] = 0;
            // Downwards: finish moves the last entry, already seen, here.
            for (size_t i = s->n; i-- > 0;) {
                pending *p = &s->p[i];
                if (strcmp(p->node, nm.node) != 0)
                    continue;
                if (msg->tag == TP_TAG_NODEDOWN && p->req == NULL) {
                    fail(ctx, s, p, TP_ENOTCONN); // sent, now lost
                } else if (msg->tag == TP_TAG_NODEUP && p->req != NULL) {
                    int rc = send_request(ctx, p);
                    if (rc != 0)
                        fail(ctx, s, p, rc);
                }
            }
        }
        break;
    default:
        break; // strays
    }
    return TP_OK;
}

static int
service_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    return tp_monitor_nodes(ctx, true);
}

static void
service_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    service *s = state;
    for (size_t i = 0; i < s->n; i++)
        free(s->p[i].req);
    free(s->p);
}

static const tp_behaviour service_b = {
    .name = "troupe.remote",
    .state_size = sizeof(service),
    .init = service_init,
    .handle = service_handle,
    .terminate = service_terminate,
};

int
tp__remote_start(tp_system *sys)
{
    tp_spawn_opts o = {.name = REMOTE_NAME,
                       .mailbox_capacity = REMOTE_CAPACITY};
    return tp_spawn(sys, &service_b, NULL, &o, NULL);
}

// ---- asking ----------------------------------------------------------------

// Whether a lookup or spawn of `name` on `node` may be asked.
static int
ask_check(tp_ctx *ctx, const char *node, const char *name, int timeout_ms)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    if (!name_ok(name) || node == NULL || tp_node_name_check(node) != 0 ||
        timeout_ms < -1 || tp_node_name(tp_ctx_system(ctx))[0] == 0)
        return TP_EINVAL;
    return 0;
}

// Queues the caller's note for the service, under `given` as its ref or,
// when 0, a new one stored in *ref.
static int
ask(tp_ctx *ctx, uint32_t op, const char *node, const char *name,
    const void *arg, size_t size, int timeout_ms, uint64_t given,
    uint64_t *ref)
{
    int rc = ask_check(ctx, node, name, timeout_ms);
    if (rc != 0)
        return rc;
    tp_system *sys = tp_ctx_system(ctx);
    if (arg == NULL && size > 0)
        return TP_EINVAL;
    _Static_assert(sizeof(rnote) <= TP_REMOTE_ARG_SLACK, "a note's header");
    if (size > TP_MSG_MAX - TP_REMOTE_ARG_SLACK)
        return TP_EMSGSIZE;
    tp_pid svc;
    if (tp_whereis(sys, REMOTE_NAME, &svc) != 0)
        return TP_EINVAL; // its node stopped
    rnote nt;
    memset(&nt, 0, sizeof nt);
    nt.op = op;
    nt.timeout_ms = timeout_ms;
    nt.caller = tp_self(ctx);
    nt.ref = given != 0 ? given : tp__new_ref(sys);
    snprintf(nt.node, sizeof nt.node, "%s", node);
    snprintf(nt.name, sizeof nt.name, "%s", name);
    nt.size = (uint32_t)size;
    uint8_t *buf = malloc(sizeof nt + size);
    if (buf == NULL)
        return TP_ENOMEM;
    memcpy(buf, &nt, sizeof nt);
    if (size > 0)
        memcpy(buf + sizeof nt, arg, size);
    tp__msg *m =
        tp__msg_new_copy(sys, R_NOTE, TP_PID_NIL, buf, sizeof nt + size);
    free(buf);
    if (m == NULL)
        return TP_ENOMEM;
    if (tp__deliver_force(sys, svc, m) != 0) {
        tp__msg_free(m);
        return TP_EINVAL; // its node stopped
    }
    if (ref != NULL)
        *ref = nt.ref;
    return 0;
}

int
tp_whereis_at(tp_ctx *ctx, const char *name, const char *node, int timeout_ms,
              uint64_t *ref)
{
    return ask(ctx, OP_WHEREIS, node, name, NULL, 0, timeout_ms, 0, ref);
}

int
tp_spawn_at(tp_ctx *ctx, const char *node, const char *behaviour,
            const void *arg, size_t size, int timeout_ms, uint64_t *ref)
{
    return ask(ctx, OP_SPAWN, node, behaviour, arg, size, timeout_ms, 0, ref);
}

// ---- requests by name ------------------------------------------------------

// The request waits in the caller's tables (signals' tp__request_by_name)
// while the service looks the name up (OP_RESOLVE); the answer, a system
// message to the caller, sends it from there or fails it, in the caller's
// own activation.
static int
request_name(tp_ctx *ctx, const char *name, const char *node, uint32_t tag,
             const void *data, size_t size, int timeout_ms, tp_then_fn then,
             void *arg, uint64_t *ref)
{
    int rc = ask_check(ctx, node, name, timeout_ms);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    tp__msg *m = tp__msg_new_copy(a->system, tag, a->pid, data, size);
    if (m == NULL)
        return TP_ENOMEM;
    uint64_t r;
    if ((rc = tp__request_by_name(a, m, timeout_ms, &r)) != 0) {
        tp__msg_free(m);
        return rc;
    }
    // From here `m` is the request's: tp__request_done frees it.
    if (then != NULL)
        rc = tp__then_attach(a, r, then, arg);
    if (rc == 0)
        rc = ask(ctx, OP_RESOLVE, node, name, NULL, 0, timeout_ms, r, NULL);
    if (rc != 0) {
        if (then != NULL)
            tp__then_take(a, r, &then, &arg);
        tp__request_done(a, r, TP_PID_NIL); // nothing follows
        return rc;
    }
    if (ref != NULL)
        *ref = r;
    return 0;
}

int
tp_request_name_at(tp_ctx *ctx, const char *name, const char *node,
                   uint32_t tag, const void *data, size_t size, int timeout_ms,
                   uint64_t *ref)
{
    return request_name(ctx, name, node, tag, data, size, timeout_ms, NULL,
                        NULL, ref);
}

int
tp_request_name_at_then(tp_ctx *ctx, const char *name, const char *node,
                        uint32_t tag, const void *data, size_t size,
                        int timeout_ms, tp_then_fn then, void *arg,
                        uint64_t *ref)
{
    if (then == NULL)
        return tp__check_ctx(ctx) ? tp__check_ctx(ctx) : TP_EINVAL;
    return request_name(ctx, name, node, tag, data, size, timeout_ms, then,
                        arg, ref);
}

// ---- asking from outside the system: a hidden actor waits --------------

typedef struct wait_slot {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    tp_remote_answer ans;
    uint32_t op;
    const char *node, *name;
    const void *arg;
    size_t size;
    int timeout_ms;
    uint64_t ref;
} wait_slot;

static void
wait_finish(wait_slot *w, const tp_remote_answer *ans)
{
    pthread_mutex_lock(&w->lock);
    if (!w->done) {
        w->done = true;
        w->ans = *ans;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
}

static int
waiter_init(tp_ctx *ctx, void *state, void *arg)
{
    wait_slot *w = arg;
    *(wait_slot **)state = w;
    return ask(ctx, w->op, w->node, w->name, w->arg, w->size, w->timeout_ms, 0,
               &w->ref);
}

static int
waiter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    wait_slot *w = *(wait_slot **)state;
    if (w == NULL || msg->ref != w->ref ||
        (msg->tag != TP_TAG_WHEREIS && msg->tag != TP_TAG_SPAWNED) ||
        msg->size != sizeof(tp_remote_answer))
        return TP_OK;
    tp_remote_answer ans;
    memcpy(&ans, msg->data, sizeof ans);
    *(wait_slot **)state = NULL; // the caller may return from now on
    wait_finish(w, &ans);
    return TP_STOP;
}

static void
waiter_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    wait_slot *w = *(wait_slot **)state;
    if (w != NULL) {
        tp_remote_answer ans = {.error = TP_ESHUTDOWN};
        wait_finish(w, &ans);
    }
}

static bool
waiter_done(void *arg)
{
    wait_slot *w = arg;
    pthread_mutex_lock(&w->lock);
    bool done = w->done;
    pthread_mutex_unlock(&w->lock);
    return done;
}

static const tp_behaviour waiter_b = {.name = "troupe.remote.wait",
                                      .state_size = sizeof(wait_slot *),
                                      .init = waiter_init,
                                      .handle = waiter_handle,
                                      .terminate = waiter_terminate};

static int
ask_and_wait(tp_system *sys, uint32_t op, const char *node, const char *name,
             const void *arg, size_t size, int timeout_ms, tp_pid *out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    wait_slot w = {.op = op,
                   .node = node,
                   .name = name,
                   .arg = arg,
                   .size = size,
                   .timeout_ms = timeout_ms};
    if (pthread_mutex_init(&w.lock, NULL) != 0)
        return TP_ENOMEM;
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        return TP_ENOMEM;
    }
    tp_pid waiter;
    int rc = tp_spawn(sys, &waiter_b, &w, NULL, &waiter);
    if (rc == 0 && sys->test != NULL && // a test system: its net runs here
        tp__test_drive(sys, waiter_done, &w, -1) < 0 && !waiter_done(&w)) {
        // It gave up: the waiter goes before `w` does.
        tp_system_exit(sys, waiter, TP_REASON_KILL);
        tp_test_run(sys, TP__TEST_DRIVE_MAX);
        w.done = true;
        w.ans.error = TP_ETIMEDOUT;
    }
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.ans.error;
        if (rc == 0)
            *out = w.ans.pid;
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

int
tp_system_whereis_at(tp_system *sys, const char *name, const char *node,
                     int timeout_ms, tp_pid *out)
{
    return ask_and_wait(sys, OP_WHEREIS, node, name, NULL, 0, timeout_ms, out);
}

int
tp_system_spawn_at(tp_system *sys, const char *node, const char *behaviour,
                   const void *arg, size_t size, int timeout_ms, tp_pid *out)
{
    return ask_and_wait(sys, OP_SPAWN, node, behaviour, arg, size, timeout_ms,
                        out);
}
