// SPDX-License-Identifier: MIT
// Links, monitors, exit signals and the monitors behind requests. Every
// signal travels as a message of its own kind (in the user lane, in order
// with its sender's messages: see actor.c) and is applied by the receiving
// actor's own activation, so each actor's link and monitor tables have a
// single writer and need no lock.
// An actor that dies answers the requests still queued for it: links get
// its exit signal, monitors a DOWN, so no watcher waits forever.
#include "core/core.h"
#include "signals/signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- a small open-addressing map of 64-bit keys ---------------------------

#define MAP_EMPTY 0
#define MAP_GONE UINT64_MAX

static uint32_t
map_slot(uint64_t key, uint32_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key & (cap - 1);
}

bool
tp__map_get(const tp__map *m, uint64_t key, uint64_t *val)
{
    if (m->cap == 0 || key == MAP_EMPTY || key == MAP_GONE)
        return false;
    for (uint32_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            if (val != NULL)
                *val = m->vals[i];
            return true;
        }
        if (m->keys[i] == MAP_EMPTY)
            return false;
    }
}

static int
map_grow(tp__map *m)
{
    uint32_t cap = m->cap ? m->cap : 8;
    // Grow only when live entries fill half; otherwise just sweep tombstones.
    if (m->len * 2 >= cap)
        cap *= 2;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint64_t *vals = malloc(cap * sizeof *vals);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return TP_ENOMEM;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        uint64_t k = m->keys[i];
        if (k == MAP_EMPTY || k == MAP_GONE)
            continue;
        uint32_t j = map_slot(k, cap);
        while (keys[j] != MAP_EMPTY)
            j = (j + 1) & (cap - 1);
        keys[j] = k;
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->len;
    return 0;
}

int
tp__map_put(tp__map *m, uint64_t key, uint64_t val)
{
    // The two marker keys would corrupt the table (and a later lookup of
    // a missing key could then loop forever): never store them.
    if (key == MAP_EMPTY || key == MAP_GONE)
        return TP_EINVAL;
    if ((m->used + 1) * 4 > m->cap * 3) {
        int rc = map_grow(m);
        if (rc != 0)
            return rc;
    }
    uint32_t gone = UINT32_MAX;
    for (uint32_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return 0;
        }
        if (m->keys[i] == MAP_GONE && gone == UINT32_MAX)
            gone = i;
        if (m->keys[i] == MAP_EMPTY) {
            if (gone != UINT32_MAX)
                i = gone;
            else
                m->used++;
            m->keys[i] = key;
            m->vals[i] = val;
            m->len++;
            return 0;
        }
    }
}

bool
tp__map_del(tp__map *m, uint64_t key, uint64_t *val)
{
    if (m->cap == 0 || key == MAP_EMPTY || key == MAP_GONE)
        return false;
    for (uint32_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            if (val != NULL)
                *val = m->vals[i];
            m->keys[i] = MAP_GONE;
            m->len--;
            return true;
        }
        if (m->keys[i] == MAP_EMPTY)
            return false;
    }
}

void
tp__map_free(tp__map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

// ---- per-actor tables ------------------------------------------------------

tp__ext *
tp__ext_of(tp_actor *a)
{
    if (a->ext == NULL)
        a->ext = calloc(1, sizeof *a->ext);
    return a->ext;
}

// The core's hook (tp__up_ops.exit_queued), called on `a`'s own thread
// when an exit signal was pushed into its user lane since the last look:
// finds the first one that ends `a` now, as Erlang applies signals on
// arrival, and returns its exit reason, or TP__NO_EXIT. An actor that
// traps exits receives them in order, as messages, instead.
int
tp__exit_queued(tp_actor *a)
{
    tp__ext *x = a->ext;
    if (x != NULL && x->trap_exit)
        return TP__NO_EXIT;
    // acquire: pairs with each producer's release store of the link.
    for (tp__node *n =
             atomic_load_explicit(&a->user.tail->next, memory_order_acquire);
         n != NULL; n = atomic_load_explicit(&n->next, memory_order_acquire)) {
        const tp__msg *m = (const tp__msg *)n;
        if (m->kind != TP__MSG_EXIT)
            continue;
        const tp__signal *s = m->pub.data;
        if (s->reason == TP_REASON_NORMAL ||
            (s->linked &&
             (x == NULL || !tp__map_get(&x->links, m->pub.from.v, NULL))))
            continue; // ignored, or from a link since undone
        if (x != NULL || (x = tp__ext_of(a)) != NULL) {
            if (s->linked) // the linked actor is gone: nothing to tell it
                tp__map_del(&x->links, m->pub.from.v, NULL);
            memcpy(x->exit_text, s->text, sizeof x->exit_text);
        }
        a->by_signal = 1;
        return s->reason == TP_REASON_KILL ? TP_REASON_KILLED : s->reason;
    }
    return TP__NO_EXIT;
}

// The core's hook (tp__up_ops.exit_text): keeps tp_fail's text for the
// exit signals `a` sends when it dies.
void
tp__exit_text(tp_actor *a, const char *text)
{
    tp__ext *x = tp__ext_of(a);
    if (x != NULL)
        snprintf(x->exit_text, sizeof x->exit_text, "%s", text);
}

// Frees the messages of requests by name that never found their callee.
static void
free_byname(tp__ext *x)
{
    for (uint32_t i = 0; i < x->byname.cap; i++)
        if (x->byname.keys[i] != MAP_EMPTY && x->byname.keys[i] != MAP_GONE)
            tp__msg_free((tp__msg *)(uintptr_t)x->byname.vals[i]);
    tp__map_free(&x->byname);
}

// On `a`'s thread, as an upgrade commits: what the continuations pending
// run is code `a` no longer runs, which tp_code_refs must count wherever
// it lies.
void
tp__thens_stale(tp_actor *a)
{
    tp__ext *x = a->ext;
    uint64_t n = 0;
    for (uint32_t i = 0; x != NULL && i < x->thens.cap; i++) {
        if (x->thens.keys[i] == 0 || x->thens.keys[i] == MAP_GONE)
            continue;
        tp__then *t = (tp__then *)(uintptr_t)x->thens.vals[i];
        n += !t->stale;
        t->stale = true;
    }
    if (n > 0)
        atomic_fetch_add_explicit(&a->system->stale_thens, n,
                                  memory_order_relaxed);
}

static void
thens_free(tp_actor *a, tp__ext *x)
{
    tp__then_done(a); // one that was running when the actor died
    for (uint32_t i = 0; i < x->thens.cap; i++)
        if (x->thens.keys[i] != 0 && x->thens.keys[i] != MAP_GONE)
            tp__then_free(a, (tp__then *)(uintptr_t)x->thens.vals[i]);
    tp__map_free(&x->thens);
}

void
tp__ext_free(tp_actor *a)
{
    tp__ext *x = a->ext;
    if (x == NULL)
        return;
    tp__map_free(&x->links);
    tp__map_free(&x->watchers);
    tp__map_free(&x->monitors);
    tp__map_free(&x->requests);
    thens_free(a, x);
    free_byname(x);
    tp__stash_free(x); // empty but for an actor that never ran
    free(x);
    a->ext = NULL;
}

uint64_t
tp__new_ref(tp_system *sys)
{
    // relaxed: uniqueness is all that matters.
    return atomic_fetch_add_explicit(&sys->next_ref, 1, memory_order_relaxed) +
           1;
}

// ---- sending signals -------------------------------------------------------

static tp__msg *
signal_new(tp_system *sys, uint16_t kind, tp_pid from, uint64_t ref,
           int reason, bool linked, const char *text)
{
    tp__signal s = {.ref = ref, .reason = reason, .linked = linked};
    if (text != NULL)
        snprintf(s.text, sizeof s.text, "%s", text);
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &s, sizeof s);
    if (m != NULL)
        m->kind = kind;
    return m;
}

// Sends a system message of `kind` with `ref` as payload (or none).
static int
send_ref(tp_system *sys, uint16_t kind, tp_pid from, tp_pid to, uint64_t ref)
{
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &ref, sizeof ref);
    if (m == NULL)
        return TP_ENOMEM;
    m->kind = kind;
    int rc = tp__push_sys(sys, to, m);
    if (rc != 0)
        tp__msg_free(m);
    return rc;
}

static int
send_signal(tp_system *sys, uint16_t kind, tp_pid from, tp_pid to,
            uint64_t ref, int reason, bool linked, const char *text)
{
    tp__msg *m = signal_new(sys, kind, from, ref, reason, linked, text);
    if (m == NULL)
        return TP_ENOMEM;
    int rc = tp__push_sys(sys, to, m);
    if (rc != 0)
        tp__msg_free(m);
    return rc;
}

// ---- the public calls ------------------------------------------------------

int
tp_link(tp_ctx *ctx, tp_pid pid)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    if (tp_pid_is_nil(pid))
        return TP_ENOACTOR;
    if (tp_pid_eq(pid, a->pid))
        return 0;
    tp__ext *x = tp__ext_of(a);
    if (x == NULL)
        return TP_ENOMEM;
    if (tp__map_get(&x->links, pid.v, NULL))
        return 0;
    if ((rc = tp__map_put(&x->links, pid.v, 1)) != 0)
        return rc;
    if ((rc = send_ref(a->system, TP__MSG_LINK, a->pid, pid, 0)) != 0)
        tp__map_del(&x->links, pid.v, NULL);
    return rc;
}

int
tp_unlink(tp_ctx *ctx, tp_pid pid)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    if (a->ext == NULL || !tp__map_del(&a->ext->links, pid.v, NULL))
        return 0;
    // The peer may be gone already; nothing to undo then.
    send_ref(a->system, TP__MSG_UNLINK, a->pid, pid, 0);
    return 0;
}

int
tp_trap_exit(tp_ctx *ctx, bool on)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp__ext *x = tp__ext_of((tp_actor *)ctx);
    if (x == NULL)
        return TP_ENOMEM;
    int was = x->trap_exit;
    x->trap_exit = on;
    return was;
}

// After a kill signal is queued: the target is unreachable from now on,
// even if it is busy in a callback.
static int
killed_now(tp_system *sys, tp_pid pid, int reason, int rc)
{
    if (rc == 0 && reason == TP_REASON_KILL)
        tp__actor_kill_now(sys, pid);
    return rc;
}

int
tp_exit(tp_ctx *ctx, tp_pid pid, int reason)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0 && !tp__reason_ok(reason))
        rc = TP_EINVAL;
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    // As erlang:exit/2: a normal exit sent to oneself, when not trapping
    // exits, ends the caller with reason normal (when its callback
    // returns) instead of being ignored.
    if (tp_pid_eq(pid, a->pid) && reason == TP_REASON_NORMAL &&
        (a->ext == NULL || !a->ext->trap_exit)) {
        a->stopping = 1;
        a->stop_reason = TP_REASON_NORMAL;
        return 0;
    }
    rc = send_signal(a->system, TP__MSG_EXIT, a->pid, pid, 0, reason, false,
                     NULL);
    return killed_now(a->system, pid, reason, rc);
}

int
tp_system_exit(tp_system *sys, tp_pid pid, int reason)
{
    if (sys == NULL || !tp__reason_ok(reason))
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    int rc = send_signal(sys, TP__MSG_EXIT, TP_PID_NIL, pid, 0, reason, false,
                         NULL);
    return killed_now(sys, pid, reason, rc);
}

int
tp_monitor(tp_ctx *ctx, tp_pid pid, uint64_t *ref)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    tp__ext *x = tp__ext_of(a);
    if (x == NULL)
        return TP_ENOMEM;
    uint64_t r = tp__new_ref(a->system);
    if ((rc = tp__map_put(&x->monitors, r, pid.v)) != 0)
        return rc;
    rc = tp_pid_is_nil(pid)
             ? TP_ENOACTOR
             : send_ref(a->system, TP__MSG_MONITOR, a->pid, pid, r);
    if (rc == TP_ENOACTOR) {
        // Gone already: the DOWN says so, through our own system lane.
        rc = send_signal(a->system, TP__MSG_DOWN, pid, a->pid, r,
                         TP_REASON_NOPROC, false, NULL);
    }
    if (rc != 0) {
        tp__map_del(&x->monitors, r, NULL);
        return rc;
    }
    if (ref != NULL)
        *ref = r;
    return 0;
}

int
tp_demonitor(tp_ctx *ctx, uint64_t ref)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    uint64_t target;
    if (a->ext == NULL || !tp__map_del(&a->ext->monitors, ref, &target))
        return 0;
    send_ref(a->system, TP__MSG_DEMONITOR, a->pid, (tp_pid){target}, ref);
    return 0;
}

// ---- requests --------------------------------------------------------------

// Monitors the callee of request `ref` from `a`, under the request's own
// ref, before the request is sent: the callee's death then reaches `a` as
// a DOWN behind anything the callee answered, and fails the request at
// once. Sets *gone when `to` is not alive: the failure is already queued.
int
tp__request_monitor(tp_actor *a, tp_pid to, uint64_t ref, bool *gone)
{
    tp__ext *x = tp__ext_of(a);
    if (x == NULL)
        return TP_ENOMEM;
    int rc = tp__map_put(&x->monitors, ref, to.v);
    if (rc != 0)
        return rc;
    rc = tp_pid_is_nil(to)
             ? TP_ENOACTOR
             : send_ref(a->system, TP__MSG_MONITOR, a->pid, to, ref);
    *gone = rc == TP_ENOACTOR;
    if (*gone)
        rc = send_signal(a->system, TP__MSG_DOWN, to, a->pid, ref,
                         TP_REASON_NOPROC, false, NULL);
    if (rc != 0)
        tp__map_del(&x->monitors, ref, NULL);
    return rc;
}

// Ends pending request `ref` of `a`, answered by `from` (nil for a
// timeout or a failure): cancels its timer and drops its monitor, telling
// the callee unless the callee dropped its end itself when it replied.
// Returns false when the request was no longer pending.
bool
tp__request_done(tp_actor *a, uint64_t ref, tp_pid from)
{
    tp__ext *x = a->ext;
    uint64_t timer, target;
    if (x == NULL || !tp__map_del(&x->requests, ref, &timer))
        return false;
    if (timer != 0)
        tp__timer_cancel(a->system, timer);
    uint64_t unsent;
    if (x->byname.len != 0 && tp__map_del(&x->byname, ref, &unsent))
        tp__msg_free((tp__msg *)(uintptr_t)unsent); // its callee never found
    // relaxed: a bound for tp__deliver_reply; only we decrement it.
    atomic_fetch_sub_explicit(&a->req_pending, 1, memory_order_relaxed);
    if (tp__map_del(&x->monitors, ref, &target) &&
        (target != from.v || tp_pid_node(from) != 0))
        send_ref(a->system, TP__MSG_DEMONITOR, a->pid, (tp_pid){target}, ref);
    return true;
}

// The callee's side: replying to request `ref` from `to` ends the
// monitor the requester set for it, so no DEMONITOR has to follow.
void
tp__request_answered(tp_actor *a, tp_pid to, uint64_t ref)
{
    uint64_t watcher;
    if (a->ext != NULL && tp__map_get(&a->ext->watchers, ref, &watcher) &&
        watcher == to.v)
        tp__map_del(&a->ext->watchers, ref, NULL);
}

// ---- spawn-time links ------------------------------------------------------

// Links a child being spawned to its spawner, which runs on this thread;
// the child is not scheduled yet, so both tables are ours to write.
int
tp__link_spawned(tp_actor *parent, tp_actor *child)
{
    tp__ext *px = tp__ext_of(parent), *cx = tp__ext_of(child);
    if (px == NULL || cx == NULL)
        return TP_ENOMEM;
    int rc = tp__map_put(&px->links, child->pid.v, 1);
    if (rc == 0 && (rc = tp__map_put(&cx->links, parent->pid.v, 1)) != 0)
        tp__map_del(&px->links, child->pid.v, NULL);
    return rc;
}

void
tp__unlink_spawned(tp_actor *parent, tp_actor *child)
{
    if (parent->ext != NULL)
        tp__map_del(&parent->ext->links, child->pid.v, NULL);
}

// ---- receiving signals -----------------------------------------------------

// Makes a message for `handle` that lives outside the mailbox lanes.
static int
loose(tp_system *sys, uint32_t tag, tp_pid from, const void *data, size_t size,
      tp__msg **out)
{
    tp__msg *n = tp__msg_new_copy(sys, tag, from, data, size);
    if (n == NULL)
        return TP_ENOMEM;
    n->flags |= TP__MSG_LOOSE;
    *out = n;
    return 0;
}

// A DOWN for one of our monitors: a TP_TAG_DOWN message, or TP_TAG_FAILED
// when the monitor was a pending request's (its callee died).
static int
on_down(tp__msg *m, tp_actor *a, tp__msg **deliver)
{
    tp__ext *x = a->ext;
    const tp__signal *s = m->pub.data;
    // Demonitored meanwhile: flushed.
    if (x == NULL || !tp__map_del(&x->monitors, s->ref, NULL))
        return 0;
    tp_down_msg d = {.ref = s->ref, .from = m->pub.from, .reason = s->reason};
    memcpy(d.text, s->text, sizeof d.text);
    uint32_t tag =
        tp__request_done(a, s->ref, TP_PID_NIL) ? TP_TAG_FAILED : TP_TAG_DOWN;
    if (loose(a->system, tag, m->pub.from, &d, sizeof d, deliver) != 0)
        return TP_ENOMEM;
    (*deliver)->pub.ref = tag == TP_TAG_FAILED ? s->ref : 0;
    return 0;
}

// A request's timeout fired: TP_TAG_TIMEOUT, unless a reply or a failure
// that came first ended the request.
static int
on_timeout(tp__msg *m, tp_actor *a, tp__msg **deliver)
{
    if (!tp__request_done(a, m->pub.ref, TP_PID_NIL))
        return 0;
    if (loose(a->system, TP_TAG_TIMEOUT, TP_PID_NIL, NULL, 0, deliver) != 0)
        return TP_ENOMEM;
    (*deliver)->pub.ref = m->pub.ref;
    return 0;
}

// What a request by name resolved to (TP__MSG_RESOLVED's payload).
typedef struct resolved {
    int32_t error;
    uint64_t pid;
} resolved;

int
tp__request_resolved(tp_system *sys, tp_pid caller, uint64_t ref, int error,
                     tp_pid pid)
{
    resolved r = {.error = error, .pid = pid.v};
    tp__msg *m = tp__msg_new_copy(sys, 0, TP_PID_NIL, &r, sizeof r);
    if (m == NULL)
        return TP_ENOMEM;
    m->kind = TP__MSG_RESOLVED;
    m->pub.ref = ref;
    int rc = tp__push_sys(sys, caller, m);
    if (rc != 0)
        tp__msg_free(m);
    return rc;
}

// A request by name learnt its callee: sent as tp_request sends, under the
// monitor that fails it if the callee dies; or failed at once: with
// TP_REASON_NOPROC when the name is not registered there,
// TP_REASON_NOCONNECTION when its node was lost, the error otherwise. A
// lookup that timed out leaves the answer to the request's own timeout.
static int
on_resolved(tp__msg *m, tp_actor *a, tp__msg **deliver)
{
    tp__ext *x = a->ext;
    uint64_t ref = m->pub.ref, v;
    resolved r;
    if (x == NULL || m->pub.size != sizeof r ||
        !tp__map_del(&x->byname, ref, &v))
        return 0; // the request ended first (its timeout)
    memcpy(&r, m->pub.data, sizeof r);
    tp__msg *req = (tp__msg *)(uintptr_t)v;
    tp_pid to = {r.error == 0 ? r.pid : 0};
    int err = r.error;
    if (err == 0) {
        err = tp__request_send(a, to, ref, req);
    } else {
        tp__msg_free(req);
        if (err == TP_ETIMEDOUT)
            return 0; // the request's own timeout answers it
    }
    if (err == 0 || !tp__request_done(a, ref, TP_PID_NIL))
        return 0;
    tp_down_msg d = {.ref = ref,
                     .from = to,
                     .reason = err == TP_ENOACTOR   ? TP_REASON_NOPROC
                               : err == TP_ENOTCONN ? TP_REASON_NOCONNECTION
                                                    : err};
    if (loose(a->system, TP_TAG_FAILED, to, &d, sizeof d, deliver) != 0)
        return TP_ENOMEM;
    (*deliver)->pub.ref = ref;
    return 0;
}

// An exit signal: ignored (an unlinked link's, or a normal one), a
// TP_TAG_EXIT message when trapping, else the reason to die with.
static int
on_exit_signal(tp__msg *m, tp_actor *a, tp__msg **deliver)
{
    tp__ext *x = a->ext;
    const tp__signal *s = m->pub.data;
    tp_pid from = m->pub.from;
    int reason = s->reason;
    if (s->linked) {
        if (x == NULL || !tp__map_del(&x->links, from.v, NULL))
            return 0; // unlinked meanwhile
    } else if (reason == TP_REASON_KILL) {
        return TP_REASON_KILLED;
    }
    if (x != NULL && x->trap_exit) {
        tp_exit_msg e = {.from = from, .reason = reason, .linked = s->linked};
        memcpy(e.text, s->text, sizeof e.text);
        return loose(a->system, TP_TAG_EXIT, from, &e, sizeof e, deliver);
    }
    if (reason == TP_REASON_NORMAL)
        return 0;
    if (x != NULL || (x = tp__ext_of(a)) != NULL)
        memcpy(x->exit_text, s->text, sizeof x->exit_text);
    return reason == TP_REASON_KILL ? TP_REASON_KILLED : reason;
}

// Applies system message `m` to actor `a`, its receiver. Returns 0 to go
// on, or an exit reason (non-zero) to die with. Sets *deliver to a loose
// message when `handle` should see one (the caller frees it).
int
tp__system_signal(tp__msg *m, tp_actor *a, tp__msg **deliver)
{
    tp__ext *x = a->ext;
    tp_pid from = m->pub.from;
    *deliver = NULL;
    switch (m->kind) {
    case TP__MSG_LINK:
        if ((x = tp__ext_of(a)) == NULL ||
            tp__map_put(&x->links, from.v, 1) != 0) {
            // No memory to remember the link: keep the promise the other
            // way, by telling the linker we are gone.
            send_signal(a->system, TP__MSG_EXIT, a->pid, from, 0, TP_ENOMEM,
                        true, "no memory for a link");
        }
        return 0;
    case TP__MSG_UNLINK:
        if (x != NULL)
            tp__map_del(&x->links, from.v, NULL);
        return 0;
    case TP__MSG_MONITOR: {
        uint64_t ref;
        memcpy(&ref, m->pub.data, sizeof ref);
        if ((x = tp__ext_of(a)) == NULL ||
            tp__map_put(&x->watchers, ref, from.v) != 0)
            send_signal(a->system, TP__MSG_DOWN, a->pid, from, ref, TP_ENOMEM,
                        false, "no memory for a monitor");
        return 0;
    }
    case TP__MSG_DEMONITOR: {
        uint64_t ref;
        memcpy(&ref, m->pub.data, sizeof ref);
        if (x != NULL)
            tp__map_del(&x->watchers, ref, NULL);
        return 0;
    }
    case TP__MSG_DOWN:
        return on_down(m, a, deliver);
    case TP__MSG_TIMEOUT:
        return on_timeout(m, a, deliver);
    case TP__MSG_EXIT:
        return on_exit_signal(m, a, deliver);
    case TP__MSG_RESOLVED:
        return on_resolved(m, a, deliver);
    default:
        return 0;
    }
}

// ---- dying -----------------------------------------------------------------

// Tells every linked actor and every watcher that `a` exited with `reason`,
// and drops the monitors `a` held.
void
tp__notify_exit(tp_actor *a, int reason)
{
    tp__ext *x = a->ext;
    if (x == NULL)
        return;
    tp_system *sys = a->system;
    const char *text = x->exit_text[0] ? x->exit_text : NULL;
    // Stashed messages die with the actor, dead letters as what its
    // mailbox holds (those are counted when it is buried).
    uint64_t lost = tp__stash_free(x);
    if (lost != 0)
        // relaxed: a statistic.
        atomic_fetch_add_explicit(&sys->dead_letters, lost,
                                  memory_order_relaxed);
    // What it held goes first: its monitors and its requests' timers.
    for (uint32_t i = 0; i < x->monitors.cap; i++) {
        uint64_t k = x->monitors.keys[i];
        if (k != MAP_EMPTY && k != MAP_GONE)
            send_ref(sys, TP__MSG_DEMONITOR, a->pid,
                     (tp_pid){x->monitors.vals[i]}, k);
    }
    for (uint32_t i = 0; i < x->requests.cap; i++) {
        uint64_t k = x->requests.keys[i];
        if (k != MAP_EMPTY && k != MAP_GONE && x->requests.vals[i] != 0)
            tp__timer_cancel(sys, x->requests.vals[i]);
    }
    for (uint32_t i = 0; i < x->links.cap; i++) {
        uint64_t k = x->links.keys[i];
        if (k != MAP_EMPTY && k != MAP_GONE)
            send_signal(sys, TP__MSG_EXIT, a->pid, (tp_pid){k}, 0, reason,
                        true, text);
    }
    for (uint32_t i = 0; i < x->watchers.cap; i++) {
        uint64_t k = x->watchers.keys[i];
        if (k != MAP_EMPTY && k != MAP_GONE)
            send_signal(sys, TP__MSG_DOWN, a->pid,
                        (tp_pid){x->watchers.vals[i]}, k, reason, false, text);
    }
    tp__map_free(&x->links);
    tp__map_free(&x->watchers);
    tp__map_free(&x->monitors);
    tp__map_free(&x->requests);
    // No continuation runs after its actor died: they go now, not when
    // the record is reclaimed, so that tp_code_refs stops counting them.
    thens_free(a, x);
}

// Answers a link or monitor request found in the mailbox of `a`, which has
// exited with `reason`, as if it had arrived just after the exit.
void
tp__answer_late(tp_actor *a, tp__msg *m, int reason)
{
    uint64_t ref;
    switch (m->kind) {
    case TP__MSG_LINK:
        send_signal(a->system, TP__MSG_EXIT, a->pid, m->pub.from, 0, reason,
                    true, NULL);
        break;
    case TP__MSG_MONITOR:
        memcpy(&ref, m->pub.data, sizeof ref);
        send_signal(a->system, TP__MSG_DOWN, a->pid, m->pub.from, ref, reason,
                    false, NULL);
        break;
    default:
        break;
    }
}

// ---- introspection ---------------------------------------------------------

static uint32_t
list_keys(const tp__map *m, bool vals, tp_pid *out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->cap; i++) {
        uint64_t k = m->keys[i];
        if (k == MAP_EMPTY || k == MAP_GONE)
            continue;
        if (n < TP_DETAIL_PIDS)
            out[n] = (tp_pid){vals ? m->vals[i] : k};
        n++;
    }
    return n;
}

// Fills what only the running actor `a` may read: its tables.
void
tp__ext_detail(tp_actor *a, tp_actor_detail *d)
{
    tp__ext *x = a->ext;
    if (x == NULL)
        return;
    d->trap_exit = x->trap_exit;
    d->nlinks = list_keys(&x->links, false, d->links);
    d->nmonitors = list_keys(&x->monitors, true, d->monitors);
    d->nwatchers = list_keys(&x->watchers, true, d->watchers);
    d->stashed = x->nstash;
}
