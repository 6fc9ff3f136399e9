// SPDX-License-Identifier: MIT
// Hot code upgrade (troupe/upgrade.h), in two phases run by the caller.
//
// Prepare: each actor of a `from` gets a system-lane message. Its
// activation builds the new state (the change) and, when that worked,
// marks itself held and ends; finish() parks it with one hold left in its
// count, so no send schedules it, and only then tells the upgrade. End:
// once every actor has parked (or failed, or was gone), the caller sends
// each parked actor the verdict and schedules it itself, which the hold
// makes safe: nobody else can. Its activation installs the new code and
// state, or drops the new state, and goes on with its mailbox.
//
// The actor record keeps its layout: what follows the state is found from
// the behaviour's state_size, so an actor's behaviour may only change to
// one with the same state_size. A `to` of another size runs through a
// shim, a copy of `to` with the original size: a smaller state is stored
// in the original place, a larger one in a block of its own whose address
// the original place holds (the shim's callbacks follow it). Shims live
// until the system goes.
#include "core/actor.h"

#include <stdalign.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

enum { PH_PREPARE = 1, PH_END = 2 };
enum { S_WAITING, S_HOLDING, S_HELD, S_FAILED, S_GONE, S_DONE };

typedef struct tp__shim {
    tp_behaviour b; // first: actors point to it
    const tp_behaviour *to;
    bool outline;
    struct tp__shim *next;
} tp__shim;

// A state kept out of the record: the record's state holds its address.
typedef struct outline {
    const tp_behaviour *to;
    alignas(max_align_t) unsigned char state[];
} outline;

typedef struct slot {
    struct tp__upgrade *u;
    tp_pid pid;
    tp_actor *a; // once held: valid until it is let go
    const tp_code_change *ch;
    void *fresh;           // the new state (in `block` when outline)
    outline *block;        // the new state's block, or NULL
    const tp_behaviour *b; // what the actor runs once committed
    int state, rc;
    int64_t held_ns, pause_ns;
} slot;

typedef struct tp__upgrade {
    tp_system *sys;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    slot *slots;
    size_t n;
    size_t decided;  // slots held, failed or gone (prepare)
    size_t acked;    // verdicts applied (end)
    bool over;       // prepare is over: late changes are dropped
    size_t changing; // changes running now: the caller outwaits them
    bool commit;
    unsigned refs; // the caller, and each phase message not yet done
} tp__upgrade;

static void drop_fresh(struct slot *s, bool built);

// ---- shims -------------------------------------------------------------

static outline *
block_of(void *state)
{
    outline *o;
    memcpy(&o, state, sizeof o);
    return o;
}

static int
outline_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    outline *o = block_of(state);
    return o->to->handle(ctx, o->state, msg);
}

// The block is freed after it, faulted or not (tp__upgrade_state_free).
static void
outline_terminate(tp_ctx *ctx, void *state, int reason)
{
    outline *o = block_of(state);
    if (o->to->terminate != NULL)
        o->to->terminate(ctx, o->state, reason);
}

void
tp__upgrade_state_free(tp_actor *a)
{
    if (a->behaviour->handle != outline_handle)
        return;
    void *place = tp__state(a);
    free(block_of(place));
    memset(place, 0, sizeof(outline *));
}

static int
outline_describe(const void *state, char *buf, size_t size)
{
    outline *o = block_of((void *)state);
    return o->to->describe(o->state, buf, size);
}

void *
tp__user_state(tp_actor *a)
{
    void *s = tp__state(a);
    return a->behaviour->handle == outline_handle ? block_of(s)->state : s;
}

// A shim's behaviour: `to` in a record whose state holds `size` bytes.
static tp_behaviour
shim_of(const tp_behaviour *to, size_t size, bool own)
{
    tp_behaviour b = *to;
    b.state_size = size;
    b.init = NULL; // never spawned: actors switch to it
    if (own) {
        b.handle = outline_handle;
        b.terminate = outline_terminate; // always: the block must go
        b.describe = to->describe != NULL ? outline_describe : NULL;
    }
    return b;
}

// The shim running `to` in a record whose state holds `size` bytes; NULL
// when out of memory. A shim found is made again from `to`: one left by a
// rolled-back upgrade may name a module since unloaded, whose `to` a new
// module now has the address of (no actor runs a shim whose `to` is
// gone, so one in use is found unchanged and left alone).
static const tp_behaviour *
shim_get(tp_system *sys, const tp_behaviour *to, size_t size, bool own)
{
    tp_behaviour b = shim_of(to, size, own);
    pthread_mutex_lock(&sys->shim_lock);
    tp__shim *s = sys->shims;
    while (s != NULL &&
           !(s->to == to && s->b.state_size == size && s->outline == own))
        s = s->next;
    if (s != NULL && memcmp(&s->b, &b, sizeof b) != 0) {
        s->b = b;
    } else if (s == NULL && (s = calloc(1, sizeof *s)) != NULL) {
        s->b = b;
        s->to = to;
        s->outline = own;
        s->next = sys->shims;
        sys->shims = s;
    }
    pthread_mutex_unlock(&sys->shim_lock);
    return s != NULL ? &s->b : NULL;
}

// What behaviour `b` runs: itself, or a shim's `to`.
static const tp_behaviour *
target_of(tp_system *sys, const tp_behaviour *b)
{
    pthread_mutex_lock(&sys->shim_lock);
    for (const tp__shim *s = sys->shims; s != NULL; s = s->next)
        if (&s->b == b) {
            b = s->to;
            break;
        }
    pthread_mutex_unlock(&sys->shim_lock);
    return b;
}

void
tp__shims_free(tp_system *sys)
{
    while (sys->shims != NULL) {
        tp__shim *s = sys->shims;
        sys->shims = s->next;
        free(s);
    }
    free(sys->vlabels);
    sys->vlabels = NULL;
}

// ---- version labels ----------------------------------------------------

typedef struct tp__vlabel {
    const tp_behaviour *b;
    char v[32];
} tp__vlabel;

int
tp_behaviour_version(tp_system *sys, const tp_behaviour *b,
                     const char *version)
{
    if (sys == NULL || b == NULL ||
        (version != NULL && strlen(version) >= sizeof(tp__vlabel){0}.v))
        return TP_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&sys->shim_lock);
    // relaxed: written under shim_lock, which we hold.
    size_t n = atomic_load_explicit(&sys->nvlabels, memory_order_relaxed);
    size_t i = 0;
    while (i < n && sys->vlabels[i].b != b)
        i++;
    if (version == NULL || version[0] == '\0') {
        if (i < n) // removed: the last takes its place
            sys->vlabels[i] = sys->vlabels[--n];
    } else {
        if (i == n && n == sys->capvlabels) {
            size_t cap = n ? 2 * n : 8;
            tp__vlabel *v = realloc(sys->vlabels, cap * sizeof *v);
            if (v == NULL)
                rc = TP_ENOMEM;
            else {
                sys->vlabels = v;
                sys->capvlabels = cap;
            }
        }
        if (rc == 0) {
            sys->vlabels[i].b = b;
            snprintf(sys->vlabels[i].v, sizeof sys->vlabels[i].v, "%s",
                     version);
            n += i == n;
        }
    }
    atomic_store_explicit(&sys->nvlabels, n, memory_order_relaxed);
    pthread_mutex_unlock(&sys->shim_lock);
    return rc;
}

void
tp__behaviour_version_of(tp_system *sys, const tp_behaviour *b, char *out,
                         size_t size)
{
    out[0] = '\0';
    // relaxed: a label set meanwhile shows next time.
    if (atomic_load_explicit(&sys->nvlabels, memory_order_relaxed) == 0)
        return;
    b = target_of(sys, b);
    pthread_mutex_lock(&sys->shim_lock);
    size_t n = atomic_load_explicit(&sys->nvlabels, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        if (sys->vlabels[i].b == b) {
            snprintf(out, size, "%s", sys->vlabels[i].v);
            break;
        }
    pthread_mutex_unlock(&sys->shim_lock);
}

// ---- the upgrade's record ----------------------------------------------

static void
unref_locked(tp__upgrade *u)
{
    bool last = --u->refs == 0;
    pthread_mutex_unlock(&u->lock);
    if (last) {
        pthread_mutex_destroy(&u->lock);
        pthread_cond_destroy(&u->cond);
        free(u->slots);
        free(u);
    }
}

// Decides slot `s`; lock held.
static void
decide(tp__upgrade *u, slot *s, int state, int rc)
{
    s->state = state;
    s->rc = rc;
    u->decided++;
    pthread_cond_broadcast(&u->cond);
}

static void
decide_gone(tp__upgrade *u, slot *s)
{
    decide(u, s, S_GONE, 0);
}

// Sends slot i's actor an upgrade's phase: by pid to prepare (when it is
// gone, or out of memory, the message's release decides the slot), to
// its record once it is held (a held actor cannot exit, and the hold in
// its count keeps this push from scheduling it: the caller does).
static void
post(tp__upgrade *u, size_t i, int phase, tp_actor *held)
{
    tp__msg *m = tp__msg_new_sys(u->sys, TP__MSG_UPGRADE, TP_PID_NIL);
    pthread_mutex_lock(&u->lock);
    if (m == NULL) {
        if (phase == PH_PREPARE && !u->over)
            decide_gone(u, &u->slots[i]);
        pthread_mutex_unlock(&u->lock);
        return;
    }
    u->refs++;
    pthread_mutex_unlock(&u->lock);
    m->aux = u;
    m->pub.ref = i;
    m->pub.tag = (uint32_t)phase;
    // Freed unhandled, its release settles the slot: an actor gone
    // before its prepare, or killed while it was held.
    m->flags |= TP__MSG_UPGRADE_REQ;
    if (held != NULL) {
        // The verdict goes ahead of the mailbox: the activation this
        // schedule starts applies it first (tp__actor_run). A held actor
        // is run by nobody else (the hold in its count), and keeps no
        // message in `current` between activations.
        held->current = m;
        tp__sched_schedule(u->sys, held);
        return;
    }
    if (tp__push_sys(u->sys, u->slots[i].pid, m) != 0)
        tp__msg_free(m); // its release decides the slot: gone
}

void
tp__upgrade_msg_gone(tp__msg *m)
{
    tp__upgrade *u = m->aux;
    slot *s = &u->slots[m->pub.ref];
    pthread_mutex_lock(&u->lock);
    if (m->pub.tag == PH_END) {
        // Killed while held (a kill pushed before the verdict ends it
        // first): its new state goes, and the caller stops waiting for it.
        drop_fresh(s, s->ch->change != NULL);
        s->state = S_GONE;
        pthread_cond_broadcast(&u->cond);
    } else if (s->state == S_WAITING && !u->over) {
        decide_gone(u, s);
    }
    unref_locked(u);
}

// ---- on the actor's thread ---------------------------------------------

// Frees s's new state; `built` when its change returned 0, so that the
// change's discard has its say first.
static void
drop_fresh(slot *s, bool built)
{
    if (built && s->fresh != NULL && s->ch->discard != NULL)
        s->ch->discard(s->fresh, false, s->ch->arg);
    free(s->block != NULL ? (void *)s->block : s->fresh);
    s->fresh = NULL;
    s->block = NULL;
}

// Builds s's new state from a's; 0 or a code. Sets s->b, s->fresh and
// s->block.
static int
prepare(tp__upgrade *u, tp_actor *a, slot *s)
{
    const tp_behaviour *to = s->ch->to;
    size_t room = a->behaviour->state_size; // the record's
    bool own = to->state_size > room;       // a block of its own
    if (own && room < sizeof(void *))
        return TP_EINVAL;
    s->b = to->state_size == room ? to : shim_get(u->sys, to, room, own);
    if (s->b == NULL)
        return TP_ENOMEM;
    if (own) {
        s->block = calloc(1, sizeof(outline) + to->state_size);
        if (s->block == NULL)
            return TP_ENOMEM;
        s->block->to = to;
        s->fresh = s->block->state;
    } else if ((s->fresh = calloc(1, to->state_size ? to->state_size : 1)) ==
               NULL) {
        return TP_ENOMEM;
    }
    void *old = tp__user_state(a);
    size_t old_size = target_of(u->sys, a->behaviour)->state_size;
    if (s->ch->change == NULL) {
        if (old != NULL)
            memcpy(s->fresh, old,
                   old_size < to->state_size ? old_size : to->state_size);
        return 0;
    }
    tp__self.upgrading = s;
    int rc = s->ch->change((tp_ctx *)a, old, s->fresh, s->ch->arg);
    tp__self.upgrading = NULL;
    return rc;
}

// Installs s's new code and state in a.
static void
install(tp_actor *a, slot *s)
{
    void *place = tp__state(a);
    size_t room = a->behaviour->state_size;
    outline *old_block =
        a->behaviour->handle == outline_handle ? block_of(place) : NULL;
    if (s->block != NULL) {
        memcpy(place, &s->block, sizeof s->block);
    } else {
        if (room > 0) {
            memset(place, 0, room);
            memcpy(place, s->fresh, s->ch->to->state_size);
        }
        free(s->fresh);
    }
    s->fresh = NULL;
    s->block = NULL;
    free(old_block); // the old state's own block, dropped as documented
    a->behaviour = s->b;
}

int
tp__upgrade_handle(tp_actor *a, tp__msg *m)
{
    tp__upgrade *u = m->aux;
    slot *s = &u->slots[m->pub.ref];
    int phase = (int)m->pub.tag;
    // Handled, not gone; let go of now, as a change may crash the actor:
    // a prepare came through the lane, which keeps its block until the
    // next pop; a verdict came by hand (post) and is freed.
    m->flags &= (uint16_t)~TP__MSG_UPGRADE_REQ;
    if (phase == PH_END)
        tp__msg_free(m);
    else
        tp__msg_retire(m);
    if (phase == PH_END) {
        pthread_mutex_lock(&u->lock);
        bool commit = u->commit && s->state == S_HELD;
        pthread_mutex_unlock(&u->lock);
        // relaxed: only this actor's activations read it.
        atomic_fetch_and_explicit(&a->marks, (uint8_t)~TP__MARK_HELD,
                                  memory_order_relaxed);
        if (commit) {
            if (s->ch->discard != NULL)
                s->ch->discard(tp__user_state(a), true, s->ch->arg);
            install(a, s);
            a->system->up->thens_stale(a);
        } else {
            drop_fresh(s, s->ch->change != NULL);
        }
        pthread_mutex_lock(&u->lock);
        s->pause_ns = tp__now_ns() - s->held_ns;
        s->state = S_DONE;
        u->acked++;
        pthread_cond_broadcast(&u->cond);
        unref_locked(u);
        return 0;
    }
    pthread_mutex_lock(&u->lock);
    bool skip = u->over || target_of(u->sys, a->behaviour) != s->ch->from;
    if (skip && !u->over)
        decide_gone(u, s); // it runs something else by now
    if (!skip)
        u->changing++;
    pthread_mutex_unlock(&u->lock);
    if (skip) {
        pthread_mutex_lock(&u->lock);
        unref_locked(u);
        return 0;
    }
    int rc = prepare(u, a, s);
    pthread_mutex_lock(&u->lock);
    u->changing--;
    pthread_cond_broadcast(&u->cond);
    if (rc != 0 || u->over) {
        drop_fresh(s, rc == 0 && s->ch->change != NULL);
        if (!u->over)
            decide(u, s, S_FAILED, rc);
        unref_locked(u);
        return 0; // the old code goes on
    }
    s->state = S_HOLDING;
    s->a = a;
    // The message's reference passes to the parking (tp__upgrade_parked):
    // the caller may give up and go meanwhile.
    pthread_mutex_unlock(&u->lock);
    // relaxed: read by this activation's finish, on this thread.
    atomic_fetch_or_explicit(&a->marks, TP__MARK_HELD, memory_order_relaxed);
    tp__self.parking = s;
    return TP__HOLD;
}

void
tp__upgrade_parked(tp_actor *a)
{
    slot *s = tp__self.parking;
    tp__self.parking = NULL;
    tp__upgrade *u = s->u;
    pthread_mutex_lock(&u->lock);
    s->held_ns = tp__now_ns();
    if (!u->over) {
        decide(u, s, S_HELD, 0);
        unref_locked(u); // the caller holds its own until it lets us go
        return;
    }
    pthread_mutex_unlock(&u->lock);
    // Prepare ended while we held: let ourselves go, with the old code.
    post(u, (size_t)(s - u->slots), PH_END, a);
    pthread_mutex_lock(&u->lock);
    unref_locked(u);
}

void
tp__upgrade_crashed(tp_actor *a)
{
    (void)a;
    slot *s = tp__self.upgrading;
    tp__self.upgrading = NULL;
    tp__upgrade *u = s->u;
    pthread_mutex_lock(&u->lock);
    u->changing--;
    drop_fresh(s, false); // the change crashed: no discard
    if (!u->over)
        decide(u, s, S_FAILED, TP_ECRASH);
    unref_locked(u); // the prepare message's
}

// ---- the caller --------------------------------------------------------

typedef struct collect {
    const tp_code_change *ch;
    size_t nch;
    slot *slots;
    size_t n, cap;
    bool nomem;
} collect;

static bool
collect_one(tp_actor *a, void *arg)
{
    collect *c = arg;
    // relaxed: a dying actor's message is freed unhandled, which counts
    // it as gone.
    if (atomic_load_explicit(&a->dead, memory_order_relaxed))
        return true;
    const tp_behaviour *b = target_of(a->system, a->behaviour);
    for (size_t k = 0; k < c->nch; k++) {
        if (c->ch[k].from != b)
            continue;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            slot *g = realloc(c->slots, cap * sizeof *g);
            if (g == NULL) {
                c->nomem = true;
                return false;
            }
            c->slots = g;
            c->cap = cap;
        }
        c->slots[c->n++] = (slot){.pid = a->pid, .ch = &c->ch[k]};
        break;
    }
    return true;
}

static bool
all_decided(void *arg)
{
    tp__upgrade *u = arg;
    pthread_mutex_lock(&u->lock);
    bool done = u->decided == u->n;
    pthread_mutex_unlock(&u->lock);
    return done;
}

static bool
none_changing(void *arg)
{
    tp__upgrade *u = arg;
    pthread_mutex_lock(&u->lock);
    bool done = u->changing == 0;
    pthread_mutex_unlock(&u->lock);
    return done;
}

static bool
all_acked(void *arg)
{
    tp__upgrade *u = arg;
    pthread_mutex_lock(&u->lock);
    size_t held = 0;
    for (size_t i = 0; i < u->n; i++)
        held += u->slots[i].state == S_HELD;
    bool done = held == 0;
    pthread_mutex_unlock(&u->lock);
    return done;
}

// Waits until done(u), until `deadline_ns` (-1: none): on a test system,
// running its actors for `timeout_ms` of virtual time instead. Returns
// whether done.
static bool
await(tp__upgrade *u, bool (*done)(void *), int64_t deadline_ns,
      int timeout_ms)
{
    if (u->sys->test != NULL)
        return tp__test_drive(u->sys, done, u, timeout_ms) >= 0;
    // done() takes the lock itself, so a wake-up between it and the wait
    // may be missed: the wait is cut to 50 ms, and done() asked again.
    while (!done(u)) {
        pthread_mutex_lock(&u->lock);
        struct timespec dl;
        int64_t now = tp__now_ns();
        if (deadline_ns >= 0 && now >= deadline_ns) {
            pthread_mutex_unlock(&u->lock);
            return done(u);
        }
        int64_t until = deadline_ns >= 0 && deadline_ns - now < 50000000
                            ? deadline_ns
                            : now + 50000000; // looks again every 50 ms
        dl.tv_sec = until / 1000000000;
        dl.tv_nsec = until % 1000000000;
        pthread_cond_timedwait(&u->cond, &u->lock, &dl);
        pthread_mutex_unlock(&u->lock);
    }
    return true;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int
check_changes(const tp_code_change *ch, size_t n)
{
    if (ch == NULL || n == 0)
        return TP_EINVAL;
    for (size_t k = 0; k < n; k++) {
        if (ch[k].from == NULL || ch[k].to == NULL ||
            ch[k].to->handle == NULL || ch[k].to->state_size > (1u << 30))
            return TP_EINVAL;
        for (size_t j = 0; j < k; j++)
            if (ch[j].from == ch[k].from)
                return TP_EINVAL;
    }
    return 0;
}

int
tp_upgrade(tp_system *sys, const tp_code_change *changes, size_t n,
           int timeout_ms, tp_upgrade_report *out)
{
    if (sys == NULL || timeout_ms < -1 || check_changes(changes, n) != 0)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    tp__upgrade *u = calloc(1, sizeof *u);
    if (u == NULL)
        return TP_ENOMEM;
    if (pthread_mutex_init(&u->lock, NULL) != 0 ||
        tp__cond_init(&u->cond) != 0) {
        free(u);
        return TP_ENOMEM;
    }
    u->sys = sys;
    u->refs = 1;
    pthread_mutex_lock(&sys->upgrade_lock);
    collect c = {.ch = changes, .nch = n};
    tp__actor_each(sys, collect_one, &c);
    u->slots = c.slots;
    u->n = c.n;
    int rc = c.nomem ? TP_ENOMEM : 0;
    int64_t deadline =
        timeout_ms < 0 ? -1 : tp__now_ns() + (int64_t)timeout_ms * 1000000;
    for (size_t i = 0; rc == 0 && i < u->n; i++)
        u->slots[i].u = u;
    for (size_t i = 0; rc == 0 && i < u->n; i++)
        post(u, i, PH_PREPARE, NULL);
    bool prepared = rc == 0 && await(u, all_decided, deadline, timeout_ms);
    // The verdict: every actor held, or gone.
    pthread_mutex_lock(&u->lock);
    u->over = true;
    tp_upgrade_report r = {0};
    u->commit = rc == 0 && prepared;
    for (size_t i = 0; i < u->n; i++) {
        slot *s = &u->slots[i];
        if (s->state == S_FAILED) {
            u->commit = false;
            if (r.failed == 0) {
                r.failed = s->rc;
                r.failed_pid = s->pid;
            }
        }
    }
    if (rc == 0 && !prepared && r.failed == 0) {
        r.failed = TP_ETIMEDOUT;
        for (size_t i = 0; i < u->n && tp_pid_is_nil(r.failed_pid); i++)
            if (u->slots[i].state == S_WAITING ||
                u->slots[i].state == S_HOLDING)
                r.failed_pid = u->slots[i].pid; // the first not ready
    }
    bool commit = u->commit;
    pthread_mutex_unlock(&u->lock);
    if (commit) // spawns by other nodes run the new code from now on
        sys->up->code_switched(sys, changes, n);
    // Let the held ones go, each with the verdict.
    for (size_t i = 0; i < u->n; i++)
        if (u->slots[i].state == S_HELD)
            post(u, i, PH_END, u->slots[i].a);
    await(u, all_acked, -1, -1);
    await(u, none_changing, -1, -1); // the changes' arguments may go then
    pthread_mutex_lock(&u->lock);
    int64_t *pause = malloc((u->n ? u->n : 1) * sizeof *pause);
    size_t np = 0;
    r.gone = 0; // again: those killed while held are gone too
    for (size_t i = 0; i < u->n; i++)
        r.gone += u->slots[i].state == S_GONE;
    for (size_t i = 0; i < u->n; i++)
        if (u->slots[i].state == S_DONE) {
            r.actors++;
            if (pause != NULL)
                pause[np++] = u->slots[i].pause_ns / 1000;
        }
    if (np > 0) {
        qsort(pause, np, sizeof *pause, cmp_i64);
        r.pause_p50_us = pause[np / 2];
        r.pause_max_us = pause[np - 1];
    }
    free(pause);
    unref_locked(u);
    pthread_mutex_unlock(&sys->upgrade_lock);
    if (rc == 0 && r.failed != 0)
        rc = r.failed;
    if (out != NULL)
        *out = r;
    return rc;
}

typedef struct users {
    const tp_behaviour *b;
    size_t n;
} users;

static bool
count_user(tp_actor *a, void *arg)
{
    users *u = arg;
    // relaxed: a count for a decision made later, and again.
    if (!atomic_load_explicit(&a->dead, memory_order_relaxed) &&
        (a->behaviour == u->b || target_of(a->system, a->behaviour) == u->b))
        u->n++;
    return true;
}

size_t
tp_behaviour_users(tp_system *sys, const tp_behaviour *b)
{
    if (sys == NULL || b == NULL)
        return 0;
    users u = {.b = b};
    tp__actor_each(sys, count_user, &u);
    return u.n;
}

typedef struct refs {
    uintptr_t lo, hi;
    size_t n;
} refs;

// Dying actors count as well: one may still run its terminate, and
// introspection reads its behaviour until it leaves the table.
static bool
count_ref(tp_actor *a, void *arg)
{
    refs *r = arg;
    r->n += tp__behaviour_in(target_of(a->system, a->behaviour), r->lo, r->hi);
    return true;
}

size_t
tp_code_refs(tp_system *sys, const void *start, size_t size)
{
    if (sys == NULL || size == 0)
        return 0;
    uintptr_t lo = (uintptr_t)start;
    // A range past the end of the address space ends there.
    refs r = {lo, size > UINTPTR_MAX - lo ? UINTPTR_MAX : lo + size, 0};
    tp__actor_each(sys, count_ref, &r);
    r.n += sys->up->code_refs(sys, r.lo, r.hi);
    // acquire: pairs with tp__then_done's release, so that a 0 comes
    // after the continuations it no longer counts have returned.
    return r.n + (size_t)atomic_load_explicit(&sys->stale_thens,
                                              memory_order_acquire);
}
