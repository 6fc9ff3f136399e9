// SPDX-License-Identifier: MIT
// Waking and parking scheduler workers. An idle worker spins briefly
// (sched.c's find_work), then parks on a futex; a waker turns one sleeper
// into a spinner only when work appears that no spinning worker will take,
// so the hot path never wakes a thread it does not need.
#include "core/sched.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// ---- futex ----------------------------------------------------------------

static void
futex_wait(_Atomic uint32_t *word, uint32_t expect)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL,
            NULL, 0);
}

static void
futex_wait_ns(_Atomic uint32_t *word, uint32_t expect, long ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, &ts, NULL,
            0);
}

static void
futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

// ---- waking and parking ----------------------------------------------------
//
// Every parked worker but one sleeps until a waker chooses it. That one,
// the sentry, wakes every RESCUE_NS while another worker runs and looks
// for a worker stuck in one activation with actors waiting behind it (in
// runnext, or in a ring nobody spins to steal from); it then leaves the
// idle list and takes them as a spinning worker would (steal_any). It
// sleeps untimed only while every worker is parked, when nothing can be
// stuck, and whoever takes a worker off the idle list then pokes it.
// Wakers choose another parked worker before the sentry, so it stays on
// watch; when it leaves, the watch passes to another parked worker. The
// cost: one parked thread waking a thousand times a second while the
// system works, none while it is idle, and no wake-up on the hot path.

// Asks parked worker `w` (or nobody, for NULL) to look around.
static void
poke(tp__worker *w)
{
    uint32_t none = TP__WAKE_NONE;
    // relaxed: a poke carries nothing; a waker's CHOSEN overrides it.
    if (w != NULL && atomic_compare_exchange_strong_explicit(
                         &w->wake, &none, TP__WAKE_POKED, memory_order_relaxed,
                         memory_order_relaxed))
        futex_wake(&w->wake);
}

// idle_lock held: takes the worker linked at `*link` off the idle list.
// Returns the worker to poke, or NULL: the next sentry when it was the
// sentry, or the sentry asleep untimed, which must watch now.
static tp__worker *
idle_take_locked(tp_system *sys, tp__worker **link)
{
    tp__worker *w = *link;
    *link = w->idle_next;
    // relaxed: changed under idle_lock; its lock-free readers (wake_one's
    // first look) only take a hint from it.
    atomic_fetch_sub_explicit(&sys->nidle, 1, memory_order_relaxed);
    tp__worker *p = NULL;
    if (sys->sentry == w)
        p = sys->sentry = sys->idle; // NULL when no one else is parked
    else if (sys->sentry_deep)
        p = sys->sentry;
    sys->sentry_deep = false;
    return p;
}

// Takes parked worker `w` off the idle list by its own decision and counts
// it as spinning. Returns false when a waker chose it first.
bool
tp__leave_idle(tp__worker *w)
{
    tp_system *sys = w->sys;
    tp__worker *p = NULL, **link;
    pthread_mutex_lock(&sys->idle_lock);
    for (link = &sys->idle; *link != NULL && *link != w;
         link = &(*link)->idle_next)
        ;
    bool found = *link != NULL;
    if (found)
        p = idle_take_locked(sys, link);
    pthread_mutex_unlock(&sys->idle_lock);
    poke(p);
    // seq_cst: as every change of nspinning (see wake_one): a waker that
    // sees us spinning leaves the work to us.
    if (found)
        atomic_fetch_add_explicit(&sys->nspinning, 1, memory_order_seq_cst);
    return found;
}

// The rest of tp__wake_one (sched.h), once it saw nobody spinning and
// someone parked.
void
tp__wake_one_slow(tp_system *sys)
{
    uint32_t zero = 0;
    // seq_cst: only one waker at a time turns a sleeper into a spinner; a
    // sentry deciding to sleep untimed sees it (see sentry_watching).
    if (!atomic_compare_exchange_strong_explicit(&sys->nspinning, &zero, 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    tp__worker *w = NULL, *p = NULL, **link = &sys->idle;
    pthread_mutex_lock(&sys->idle_lock);
    if (*link != NULL && *link == sys->sentry && (*link)->idle_next != NULL)
        link = &(*link)->idle_next; // the sentry stays on watch
    if ((w = *link) != NULL)
        p = idle_take_locked(sys, link);
    pthread_mutex_unlock(&sys->idle_lock);
    if (w == NULL) {
        // seq_cst: undoes our CAS above, in the same total order.
        atomic_fetch_sub_explicit(&sys->nspinning, 1, memory_order_seq_cst);
        return;
    }
    // release: the sleeper's acquire load of `wake` sees it chosen.
    atomic_store_explicit(&w->wake, TP__WAKE_CHOSEN, memory_order_release);
    futex_wake(&w->wake);
    poke(p);
}

// ---- dozing ----------------------------------------------------------------
//
// A worker that finds nothing to run while holding off every other worker
// (their actors are not worth moving, sched.c) dozes: it sleeps for at
// most the rest of its holds, counted neither idle nor spinning, so the
// busy workers' backlogs wake nobody. Only work that no busy worker owns,
// the inject queue's, and stopping wake it early.

void
tp__doze(tp_system *sys, int64_t ns)
{
    // acquire: pairs with tp__wake_dozers' release increment.
    uint32_t gen = atomic_load_explicit(&sys->doze_gen, memory_order_acquire);
    // seq_cst, then the inject queue's length seq_cst: a pusher increments
    // that length, then reads ndozing; one of us sees the other.
    atomic_fetch_add_explicit(&sys->ndozing, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&sys->inject_len, memory_order_seq_cst) == 0 &&
        // acquire: pairs with tp__sched_stop's release store.
        !atomic_load_explicit(&sys->stop_workers, memory_order_acquire))
        futex_wait_ns(&sys->doze_gen, gen, (long)ns);
    // relaxed: only the waker's hint.
    atomic_fetch_sub_explicit(&sys->ndozing, 1, memory_order_relaxed);
}

void
tp__wake_dozers(tp_system *sys, bool always)
{
    // seq_cst: see tp__doze.
    if (!always &&
        atomic_load_explicit(&sys->ndozing, memory_order_seq_cst) == 0)
        return;
    // release: a dozer that reads the new generation sees what came before.
    atomic_fetch_add_explicit(&sys->doze_gen, 1, memory_order_release);
    syscall(SYS_futex, (uint32_t *)&sys->doze_gen, FUTEX_WAKE_PRIVATE,
            INT32_MAX, NULL, NULL, 0);
}

void
tp__wake_all(tp_system *sys)
{
    pthread_mutex_lock(&sys->idle_lock);
    tp__worker *w = sys->idle;
    sys->idle = NULL;
    sys->sentry = NULL;
    sys->sentry_deep = false;
    // relaxed: as in idle_take_locked.
    atomic_store_explicit(&sys->nidle, 0, memory_order_relaxed);
    pthread_mutex_unlock(&sys->idle_lock);
    while (w != NULL) {
        tp__worker *next = w->idle_next; // before it can park again
        // release: as in wake_one.
        atomic_store_explicit(&w->wake, TP__WAKE_CHOSEN, memory_order_release);
        futex_wake(&w->wake);
        w = next;
    }
}

// Whether parked worker `w` is the sentry and must watch: not while every
// worker is parked (it then sleeps untimed until poked).
static bool
sentry_watching(tp__worker *w)
{
    tp_system *sys = w->sys;
    pthread_mutex_lock(&sys->idle_lock);
    bool watch = sys->sentry == w;
    if (watch) {
        // relaxed on nidle: changed under the lock we hold. seq_cst on
        // nspinning: against wake_one's seq_cst CAS of it before it takes
        // this lock: either we see it spinning, or it sees us deep.
        sys->sentry_deep =
            atomic_load_explicit(&sys->nidle, memory_order_relaxed) ==
                sys->nworkers &&
            atomic_load_explicit(&sys->nspinning, memory_order_seq_cst) == 0;
        watch = !sys->sentry_deep;
    }
    pthread_mutex_unlock(&sys->idle_lock);
    return watch;
}

// Sleeps until a waker chooses `w` (returns true: it counted `w` as
// spinning) or, as the sentry, until it leaves the idle list to rescue a
// stuck worker's actors (returns false, counted as spinning by itself).
bool
tp__park(tp__worker *w)
{
    for (;;) {
        // acquire: pairs with the waker's release store.
        uint32_t v = atomic_load_explicit(&w->wake, memory_order_acquire);
        if (v == TP__WAKE_CHOSEN)
            return true;
        if (v == TP__WAKE_POKED) {
            // relaxed: fails only for a waker's CHOSEN, seen next round.
            atomic_compare_exchange_strong_explicit(
                &w->wake, &v, TP__WAKE_NONE, memory_order_relaxed,
                memory_order_relaxed);
            continue;
        }
        if (!sentry_watching(w)) {
            futex_wait(&w->wake, TP__WAKE_NONE);
            continue;
        }
        futex_wait_ns(&w->wake, TP__WAKE_NONE, RESCUE_NS);
        // relaxed: CHOSEN is read again, with acquire, at the loop's top.
        if (atomic_load_explicit(&w->wake, memory_order_relaxed) ==
                TP__WAKE_NONE &&
            tp__rescue_due(w, tp__now_ns()) && tp__leave_idle(w))
            return false;
    }
}
