// SPDX-License-Identifier: MIT
// Private to the scheduler's files: sched.c (run queues, stealing, the
// worker loop), park.c (waking and parking workers) and epoch.c (epoch
// reclamation). What the worker loop calls on every activation (the
// epoch announcement, the cheap half of waking) is inline here, so the
// split adds no call to it.
#ifndef TROUPE_CORE_SCHED_H
#define TROUPE_CORE_SCHED_H

#include "core/core.h"

#define RESCUE_NS 1000000 // runnext too if stuck this long; sentry period

// ---- waking and parking (park.c) -------------------------------------------

void tp__wake_one_slow(tp_system *sys);
void tp__wake_all(tp_system *sys);
// A worker with nothing worth taking sleeps up to `ns` (park.c), woken
// early by tp__wake_dozers (when some doze, or `always`).
void tp__doze(tp_system *sys, int64_t ns);
void tp__wake_dozers(tp_system *sys, bool always);
bool tp__leave_idle(tp__worker *w);
bool tp__park(tp__worker *w);
// sched.c: whether a worker is stuck with actors a thief could take.
bool tp__rescue_due(tp__worker *w, int64_t now);

// Wakes one parked worker if work is waiting and nobody is spinning to take
// it. The woken worker starts out counted as spinning.
static inline void
tp__wake_one(tp_system *sys)
{
    // seq_cst: after our seq_cst publication of the work, so either we see
    // a spinner/no idler, or the parking worker sees our work.
    if (atomic_load_explicit(&sys->nspinning, memory_order_seq_cst) != 0 ||
        atomic_load_explicit(&sys->nidle, memory_order_seq_cst) == 0)
        return;
    tp__wake_one_slow(sys);
}

// ---- epoch reclamation (epoch.c) -------------------------------------------

void tp__worker_reclaim(tp__worker *w);
// The same, freeing at most `most` actors now (the rest on a later call):
// a worker between activations frees in small steps, so the actors queued
// behind it do not wait out a long free (1,000 actors freed took 0.3 ms).
void tp__worker_reclaim_some(tp__worker *w, size_t most);

// Appends `a` to a FIFO list of actors (limbo, overflow). Epochs never
// decrease, so a limbo list stays sorted by epoch and reclamation only ever
// looks at its head.
static inline void
tp__limbo_append(tp__limbo *l, tp_actor *a)
{
    TP_ASSERT(TP__LINKABLE(a));
    a->run_next = NULL;
    if (l->tail != NULL)
        l->tail->run_next = a;
    else
        l->head = a;
    l->tail = a;
}

static inline void
tp__announce(tp__worker *w)
{
    // seq_cst: see tp__limbo_add.
    uint64_t e = atomic_load_explicit(&w->sys->epoch, memory_order_seq_cst);
    if (e != w->seen_epoch) {
        w->seen_epoch = e;
        // seq_cst, not release: this store is followed by the loads of the
        // next activation (slot lookups, the actor's fields), a store->load
        // (Dekker) pattern. A release store may be reordered after those
        // loads, so an advancer could read our old announcement while we
        // already hold a pointer to an actor that is being retired, advance
        // twice and free it under us. As a seq_cst store it is ordered
        // before our later seq_cst loads (the slot table's lookups), and an
        // advancer's seq_cst load of it (epoch_try_advance) either sees it
        // or comes first in the single total order, in which case the
        // retirer's seq_cst slot clear is seen by our lookup.
        atomic_store_explicit(&w->announce, e, memory_order_seq_cst);
    }
}

static inline void
tp__go_idle(tp__worker *w)
{
    w->seen_epoch = TP__EPOCH_IDLE;
    // release: everything this worker did with actors happens before an
    // advancer's seq_cst load that sees it idle. Going idle is a promise to
    // hold no pointer, so no later load needs ordering here: tp__announce()
    // orders the next activation's loads when the worker comes back.
    atomic_store_explicit(&w->announce, TP__EPOCH_IDLE, memory_order_release);
}

#endif
