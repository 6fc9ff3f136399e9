// SPDX-License-Identifier: MIT
// Private to the files that make up actors: actor.c (lookup, the
// activation, spawning, the context calls), send.c (putting messages in
// mailboxes, every delivery variant, the public send calls), mute.c
// (backpressure: muting senders on a full mailbox) and exit.c (crash
// reports, exit and burial). Small helpers on the send path are inline
// here so splitting the files costs the hot path no calls.
#ifndef TROUPE_CORE_ACTOR_H
#define TROUPE_CORE_ACTOR_H

#include "core/core.h"

// ---- helpers shared by the actor files ------------------------------------

static inline tp_ctx *
ctx_of(tp_actor *a)
{
    return (tp_ctx *)a;
}

// The distribution hooks, on paths that only a started node reaches: a
// peer's proxy, the I/O thread waiting for room.
static inline const tp__dist_ops *
dist_ops(tp_system *sys)
{
    // acquire: pairs with tp__dist_hooks_install's release store.
    const tp__dist_ops *d =
        atomic_load_explicit(&sys->dist, memory_order_acquire);
    TP_ASSERT(d != NULL);
    return d;
}

static inline bool
on_own_worker(tp_system *sys)
{
    return tp__self.worker != NULL && tp__self.worker->sys == sys;
}

// Whether `self`, a running actor, was killed while it ran: what it sends
// from then on is discarded, as if it had died at once.
static inline bool
killed(tp_actor *self)
{
    // relaxed: set once by the killer; a send racing with the kill may
    // go either way, as it would have had the kill come a moment later.
    return self != NULL &&
           atomic_load_explicit(&self->dead, memory_order_relaxed);
}

// Schedules `r` after its counter left zero; a peer's send queue wakes the
// I/O thread instead.
static inline void
tp__actor_schedule(tp_actor *r)
{
    tp_system *sys = r->system;
    // relaxed: a proxy is reached only through its spawn, published after
    // the node installed its hooks; for any other actor the compare fails
    // whatever value is read.
    if (__builtin_expect(r->behaviour ==
                             atomic_load_explicit(&sys->proxy_behaviour,
                                                  memory_order_relaxed),
                         0))
        dist_ops(sys)->kick(r);
    else
        tp__sched_schedule(sys, r);
}

// The I/O thread, like a muted sender, waits for a full mailbox to drain
// below its low-water mark (a message from a peer it could not deliver):
// tell it when it has. Called by the consumer after its count update.
static inline void
io_unwait(tp_actor *a)
{
    // seq_cst: pairs with tp__io_wait_room's store and count load: either
    // we see its flag or it sees our count.
    if (atomic_load_explicit(&a->io_waiting, memory_order_seq_cst) &&
        atomic_exchange_explicit(&a->io_waiting, 0, memory_order_acq_rel))
        dist_ops(a->system)->unstall(a->system);
}

// ---- backpressure (mute.c) -------------------------------------------------

void tp__unmute(tp_actor *s);
void tp__unmute_all(tp_actor *r);
void tp__maybe_mute(tp_actor *s, tp_actor *r);
void tp__unlist(tp_actor *s);
bool tp__keep_muted(tp_actor *a);

// ---- mailboxes (send.c) ----------------------------------------------------

void tp__count_drop(tp_actor *r);
// Queues system message `m` on `r` (send.c): never refused; schedules `r`
// when its mailbox was empty.
void tp__push_system(tp_actor *r, tp__msg *m);

// ---- exit and burial (exit.c) ----------------------------------------------

void tp__drain(tp_actor *a, bool answer, int reason);
void tp__crash_report(tp_actor *a, int reason, const char *text);
void tp__report_fault(tp_actor *a);
void tp__release_owned(tp_actor *a);
void tp__bury(tp_actor *a, int reason);
void tp__done_with_current(tp_actor *a);
void tp__actor_exit(tp_actor *a, int reason, bool reported);

#endif
