// SPDX-License-Identifier: MIT
// Read access to the actor table and the workers' counters for the
// subsystems above the core (introspection, metrics), so that they never
// walk the table's chunks or the worker array themselves. Each accessor
// takes what keeps the actors it hands out from being freed: on a
// scheduler thread of the same system the epochs do (the worker does not
// pass a quiescent point while it walks), elsewhere sys->ext_lock, held
// for reading around the whole walk.
#include "core/core.h"

// Whether the calling thread must hold ext_lock to touch `sys`'s actors.
static bool
outside(tp_system *sys)
{
    return tp__self.worker == NULL || tp__self.worker->sys != sys;
}

size_t
tp__actor_each(tp_system *sys, bool (*fn)(tp_actor *a, void *arg), void *arg)
{
    bool ext = outside(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    pthread_mutex_lock(&sys->slot_lock);
    uint32_t slots = sys->slot_next;
    pthread_mutex_unlock(&sys->slot_lock);
    size_t seen = 0;
    for (uint32_t i = 0; i < slots; i++) {
        // acquire: pairs with the chunk's publication.
        tp__slot_chunk *c = atomic_load_explicit(
            &sys->chunks[i >> TP__SLOT_CHUNK_BITS], memory_order_acquire);
        if (c == NULL)
            continue;
        // seq_cst: as in tp__actor_lookup, so an actor buried meanwhile is
        // either missed or kept alive until the walk ends.
        tp_actor *a = atomic_load_explicit(&c->actor[i & (TP__SLOT_CHUNK - 1)],
                                           memory_order_seq_cst);
        if (a == NULL)
            continue;
        seen++;
        if (!fn(a, arg))
            break;
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return seen;
}

int
tp__actor_with(tp_system *sys, tp_pid pid, void (*fn)(tp_actor *a, void *arg),
               void *arg)
{
    bool ext = outside(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *a = tp__actor_lookup(sys, pid);
    if (a != NULL)
        fn(a, arg);
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return a != NULL ? 0 : TP_ENOACTOR;
}

uint64_t
tp__actor_count(tp_system *sys)
{
    // relaxed: a count for sizing and display; it may be a little stale.
    return atomic_load_explicit(&sys->live, memory_order_relaxed);
}

unsigned
tp__worker_count(tp_system *sys)
{
    return sys->nworkers;
}

int
tp__worker_counters(tp_system *sys, unsigned index, tp__worker_counts *out)
{
    if (index >= sys->nworkers)
        return TP_EINVAL;
    tp__worker *w = &sys->workers[index];
    // relaxed: statistics and a gauge; the two ends of the run queue may
    // be read a little apart, so the length is clamped to the ring.
    out->activations =
        atomic_load_explicit(&w->activations, memory_order_relaxed);
    out->messages = atomic_load_explicit(&w->messages, memory_order_relaxed);
    out->steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
    out->sleeps = atomic_load_explicit(&w->sleeps, memory_order_relaxed);
    uint32_t tl = atomic_load_explicit(&w->tail, memory_order_relaxed);
    uint32_t hd = atomic_load_explicit(&w->head, memory_order_relaxed);
    uint32_t len = tl - hd;
    out->run_queue = len > TP__RUNQ_SIZE ? 0 : len;
    return 0;
}
