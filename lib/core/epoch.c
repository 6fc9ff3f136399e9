// SPDX-License-Identifier: MIT
// Epoch-based reclamation of dead actors. A worker announces the global
// epoch before each activation (tp__announce, sched.h) and goes idle
// (TP__EPOCH_IDLE) when it has nothing to run; the epoch advances once
// every active worker has seen it. A dead actor waits in limbo, stamped
// with the epoch of its burial, until the epoch is two past that: then no
// worker can still hold a pointer to it from a lookup. Threads outside the
// pool hold ext_lock for reading instead, which the reclaimer only tries.
#include "core/sched.h"

#include <errno.h>
#include <stdlib.h>

// ---- reclamation -----------------------------------------------------------

void
tp__limbo_add(tp_system *sys, tp_actor *a)
{
    if (tp__ded_of(a) != NULL && tp__ded_defer(a))
        return; // its own thread adds it once done with it
    // seq_cst: read after the actor's slot was cleared (seq_cst), so any
    // worker that still saw the actor announced an epoch <= this one.
    a->limbo_epoch = atomic_load_explicit(&sys->epoch, memory_order_seq_cst);
    tp__worker *w = tp__self.worker;
    if (w != NULL && w->sys == sys) {
        // This thread's epoch reads never go back: the list stays sorted.
        TP_ASSERT(w->limbo.tail == NULL ||
                  w->limbo.tail->limbo_epoch <= a->limbo_epoch);
        tp__limbo_append(&w->limbo, a);
        return;
    }
    pthread_mutex_lock(&sys->limbo_lock);
    // Another thread may have read an older epoch and appended later; keep
    // the order by taking the larger of the two.
    if (sys->limbo.tail != NULL &&
        sys->limbo.tail->limbo_epoch > a->limbo_epoch)
        a->limbo_epoch = sys->limbo.tail->limbo_epoch;
    tp__limbo_append(&sys->limbo, a);
    // relaxed: a hint for worker 0; the lock guards the list itself.
    atomic_fetch_add_explicit(&sys->limbo_waiting, 1, memory_order_relaxed);
    pthread_mutex_unlock(&sys->limbo_lock);
}

// Advances the global epoch when every active worker has seen it.
static void
epoch_try_advance(tp_system *sys)
{
    // seq_cst, the epoch and each announcement: see tp__announce; these
    // loads and the advance belong to the same single total order.
    uint64_t e = atomic_load_explicit(&sys->epoch, memory_order_seq_cst);
    for (unsigned i = 0; i < sys->nworkers; i++) {
        uint64_t seen = atomic_load_explicit(&sys->workers[i].announce,
                                             memory_order_seq_cst);
        if (seen != e && seen != TP__EPOCH_IDLE)
            return;
    }
    // seq_cst: orders the advance after the announcements read above.
    // relaxed on failure: another worker advanced it; nothing to order.
    atomic_compare_exchange_strong_explicit(
        &sys->epoch, &e, e + 1, memory_order_seq_cst, memory_order_relaxed);
}

// Detaches the actors at the head of `l` whose grace period is over.
static tp_actor *
limbo_take_ready(tp__limbo *l, uint64_t epoch)
{
    tp_actor *first = l->head, *last = NULL;
    for (tp_actor *a = first; a != NULL && a->limbo_epoch + 2 <= epoch;
         a = a->run_next)
        last = a;
    if (last == NULL)
        return NULL;
    l->head = last->run_next;
    if (l->head == NULL)
        l->tail = NULL;
    last->run_next = NULL;
    return first;
}

// Moves the actors detached by limbo_take_ready onto w->ready, in order.
static void
ready_append(tp__worker *w, tp_actor *first)
{
    if (first == NULL)
        return;
    tp_actor *last = first;
    while (last->run_next != NULL)
        last = last->run_next;
    if (w->ready.tail != NULL)
        w->ready.tail->run_next = first;
    else
        w->ready.head = first;
    w->ready.tail = last;
}

// Frees the actors on w->ready, whose grace period is over for the
// workers. Threads outside the pool (a snapshot walk, the I/O thread
// delivering) hold ext_lock for reading while they touch an actor; taking
// it for writing once waits them out. A scheduler thread must never block
// on them, so it only tries: while a reader holds the lock the actors stay
// on w->ready for the next attempt (tp__limbo_reclaim_all frees what is
// left at shutdown).
static void
free_ready(tp__worker *w, size_t most)
{
    if (w->ready.head == NULL)
        return;
    int rc = pthread_rwlock_trywrlock(&w->sys->ext_lock);
    if (rc != 0) {
        // EBUSY: a reader holds it. EDEADLK cannot happen: workers hold it
        // for reading only around single calls, never across this one.
        TP_ASSERT(rc == EBUSY);
        return;
    }
    pthread_rwlock_unlock(&w->sys->ext_lock);
    tp_actor *a = w->ready.head;
    for (size_t n = 0; a != NULL && n < most; n++) {
        tp_actor *next = a->run_next;
        tp__actor_free(a);
        a = next;
    }
    w->ready.head = a;
    if (a == NULL)
        w->ready.tail = NULL;
}

void
tp__worker_reclaim_some(tp__worker *w, size_t most)
{
    tp_system *sys = w->sys;
    TP_ASSERT(tp__self.worker == w); // limbo and ready are the owner's alone
    epoch_try_advance(sys);
    // seq_cst: as every access to the epoch (see announce).
    uint64_t e = atomic_load_explicit(&sys->epoch, memory_order_seq_cst);
    ready_append(w, limbo_take_ready(&w->limbo, e));
    // relaxed: a hint; the lock decides.
    if (w->index == 0 &&
        atomic_load_explicit(&sys->limbo_waiting, memory_order_relaxed) != 0) {
        pthread_mutex_lock(&sys->limbo_lock);
        tp_actor *ready = limbo_take_ready(&sys->limbo, e);
        size_t n = 0;
        for (tp_actor *a = ready; a != NULL; a = a->run_next)
            n++;
        // relaxed: the count is a hint; the lock guards the list.
        size_t was = atomic_fetch_sub_explicit(&sys->limbo_waiting, n,
                                               memory_order_relaxed);
        TP_ASSERT(was >= n); // counted under the lock: never negative
        (void)was;
        pthread_mutex_unlock(&sys->limbo_lock);
        ready_append(w, ready);
    }
    free_ready(w, most);
}

void
tp__worker_reclaim(tp__worker *w)
{
    tp__worker_reclaim_some(w, SIZE_MAX);
}

// Called with no scheduler threads running: frees every actor in limbo.
void
tp__limbo_reclaim_all(tp_system *sys)
{
    for (unsigned i = 0; i <= 2 * sys->nworkers; i++) {
        tp__limbo *l = i == 2 * sys->nworkers ? &sys->limbo
                       : i % 2 == 0           ? &sys->workers[i / 2].limbo
                                              : &sys->workers[i / 2].ready;
        while (l->head != NULL) {
            tp_actor *next = l->head->run_next;
            tp__actor_free(l->head);
            l->head = next;
        }
        l->tail = NULL;
    }
}
