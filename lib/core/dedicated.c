// SPDX-License-Identifier: MIT
// Dedicated actors (tp_spawn_opts.dedicated): an actor with an OS thread of
// its own, whose callbacks may block. It is an ordinary actor in every
// other way, mailbox, links, monitors, supervision, backpressure; only
// where it runs differs. Where the scheduler would queue it (sched.c's
// hooks), its thread is woken instead; its thread runs its activations
// exactly as a worker would, with a worker record of its own that no one
// else sees, so the mailbox protocol (whoever moves the counter from 0
// schedules the actor) carries over unchanged.
//
// The thread is not a scheduler thread (tp__self.worker stays NULL): it
// touches other actors only under sys->ext_lock, like any thread outside
// the pool, so a callback that blocks never holds up reclamation. Its own
// actor is safe without the lock because only it can bury the actor, and
// it hands the actor to limbo only when it has let go of it. When the actor
// dies the thread ends; whoever frees the actor joins it.
#include "core/core.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// Bits of `state`, the thread's futex word.
enum {
    ST_RUN = 1,   // the actor was scheduled
    ST_CTL = 2,   // look at `ctl`
    ST_SLEEP = 4, // the thread sleeps on the word
};

// Bits of `ctl`: what the rest of the runtime asks of the thread.
enum {
    CTL_DEAD = 1,     // the actor is gone: end without touching it
    CTL_QUIESCE = 2,  // system destruction: stop running it, say so, wait
    CTL_SHUTDOWN = 4, // then terminate it here and end
};

typedef struct tp__ded {
    tp_system *sys;
    tp_actor *actor;
    pthread_t thread;
    struct tp__ded *prev, *next; // in sys->deds, under sys->ded_lock
    _Atomic uint32_t state;      // ST_*
    _Atomic uint32_t ctl;        // CTL_*
    _Atomic uint32_t ack;        // futex word: 1 once quiesced or ended
    // The thread's own.
    bool again;    // the activation left messages: run it again
    bool deferred; // the actor died here; limbo waits for the thread
    bool quiesced; // the destroyer's: asked to quiesce
} tp__ded;

// The dedicated record of the actor this thread runs, if any.
static _Thread_local tp__ded *ded_self;

static void
futex_wait(_Atomic uint32_t *word, uint32_t expect)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, NULL,
            NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void
post(tp__ded *d, uint32_t bits)
{
    // release: the thread's acquire exchange sees what led to the post
    // (a message queued, a flag in ctl).
    if (atomic_fetch_or_explicit(&d->state, bits, memory_order_release) &
        ST_SLEEP)
        futex_wake(&d->state);
}

static void
ask(tp__ded *d, uint32_t bits)
{
    // release: published by post's release too; this one orders the flag
    // before the wake for a thread that looks at ctl without sleeping.
    atomic_fetch_or_explicit(&d->ctl, bits, memory_order_release);
    post(d, ST_CTL);
}

// Sleeps until something is posted; returns the bits.
static uint32_t
wait_posted(tp__ded *d)
{
    for (;;) {
        // acquire: pairs with post's release.
        uint32_t s =
            atomic_exchange_explicit(&d->state, 0, memory_order_acquire);
        if (s & (ST_RUN | ST_CTL))
            return s;
        uint32_t zero = 0;
        // relaxed: a poster's fetch_or either precedes this (the CAS
        // fails) or sees ST_SLEEP and wakes us.
        if (atomic_compare_exchange_strong_explicit(&d->state, &zero, ST_SLEEP,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed))
            futex_wait(&d->state, ST_SLEEP);
    }
}

static void
acknowledge(tp__ded *d)
{
    // release: the destroyer waiting for it sees the thread done with
    // every actor it touched.
    atomic_store_explicit(&d->ack, 1, memory_order_release);
    syscall(SYS_futex, (uint32_t *)&d->ack, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
            0);
}

// The thread: runs activations when the actor is scheduled, until the
// actor dies or the system is destroyed.
static void *
ded_main(void *arg)
{
    tp__ded *d = arg;
    tp_system *sys = d->sys;
    ded_self = d;
    // A worker record for tp__actor_run's per-activation counts; nothing
    // but this thread ever sees it.
    tp__worker *w = aligned_alloc(TP__CACHELINE, sizeof *w);
    if (w != NULL) {
        memset(w, 0, sizeof *w);
        w->sys = sys;
        w->index = sys->nworkers;
        w->ded = d;
    }
    void *altstack = sys->cfg.catch_faults ? tp__fault_altstack_on() : NULL;
    bool quiesced = false;
    for (;;) {
        // acquire: pairs with ask's release.
        uint32_t ctl = atomic_load_explicit(&d->ctl, memory_order_acquire);
        if (ctl & CTL_DEAD)
            break;
        if (ctl & CTL_SHUTDOWN) {
            tp__actor_shutdown(d->actor); // runs terminate here
            break;
        }
        if (ctl & CTL_QUIESCE) {
            if (!quiesced)
                acknowledge(d);
            quiesced = true;
            wait_posted(d);
            continue;
        }
        if (!d->again && !(wait_posted(d) & ST_RUN))
            continue;
        d->again = false;
        if (w == NULL) { // no memory for the record: we cannot run it
            tp__log(sys, TP_LOG_ERR, "dedicated actor: out of memory");
            break;
        }
        tp__actor_run(w, d->actor);
        if (d->deferred) { // it died: now limbo may have it
            tp__limbo_add(sys, d->actor);
            break;
        }
    }
    tp__fault_altstack_off(altstack);
    free(w);
    ded_self = NULL;
    acknowledge(d);
    return NULL;
}

// The system's list of threads not yet joined, for its destruction.
static void
list_add(tp__ded *d)
{
    tp_system *sys = d->sys;
    pthread_mutex_lock(&sys->ded_lock);
    d->prev = NULL;
    d->next = sys->deds;
    if (d->next != NULL)
        d->next->prev = d;
    sys->deds = d;
    pthread_mutex_unlock(&sys->ded_lock);
}

// Joins d's thread and frees the record.
static void
join_free(tp__ded *d)
{
    tp_system *sys = d->sys;
    pthread_join(d->thread, NULL);
    pthread_mutex_lock(&sys->ded_lock);
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        sys->deds = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    pthread_mutex_unlock(&sys->ded_lock);
    free(d);
}

// Gives `a`, not yet published, a thread of its own, waiting to be
// scheduled. Returns 0, TP_ENOMEM or TP_EAGAIN; on failure `a` is left as
// it was.
int
tp__ded_start(tp_actor *a)
{
    tp__ded *d = calloc(1, sizeof *d);
    if (d == NULL)
        return TP_ENOMEM;
    d->sys = a->system;
    d->actor = a;
    if (pthread_create(&d->thread, NULL, ded_main, d) != 0) {
        free(d);
        return TP_EAGAIN;
    }
    list_add(d);
    *(tp__ded **)tp__tail(a, TP__TAIL_DED) = d;
    return 0;
}

// The scheduler's hook: `a` was scheduled.
void
tp__ded_wake(tp_actor *a)
{
    post(tp__ded_of(a), ST_RUN);
}

// The scheduler's hook: the activation on `w` asks to run again.
void
tp__ded_again(tp__worker *w)
{
    w->ded->again = true;
}

// The scheduler's hook from tp__limbo_add: returns true when `a` died on
// its own thread, which puts it in limbo itself once it has let go of it.
bool
tp__ded_defer(tp_actor *a)
{
    tp__ded *d = tp__ded_of(a);
    if (d != ded_self || d->deferred)
        return false;
    d->deferred = true;
    return true;
}

// Before `a` is freed: ends its thread and joins it. On the thread itself
// (tp__ded_shutdown's terminate) only detaches the record, which the
// destroyer joins and frees.
void
tp__ded_release(tp_actor *a)
{
    tp__ded *d = tp__ded_of(a);
    if (d == NULL)
        return;
    *(tp__ded **)tp__tail(a, TP__TAIL_DED) = NULL;
    if (d == ded_self)
        return;
    ask(d, CTL_DEAD);
    join_free(d);
}

// System destruction, once the workers have stopped: every dedicated
// thread finishes the callback it is in (waited for, however long) and
// runs nothing more, or ends if its actor has died, so that the actors can
// be terminated one at a time and limbo freed.
void
tp__ded_quiesce_all(tp_system *sys)
{
    // Records are freed only by this thread now (the workers have
    // stopped), and added only by a callback's spawn that began before
    // destruction did: once every thread listed has stopped, no more come.
    for (bool more = true; more;) {
        more = false;
        pthread_mutex_lock(&sys->ded_lock);
        tp__ded *first = sys->deds;
        for (tp__ded *d = first; d != NULL; d = d->next)
            if (!d->quiesced) {
                d->quiesced = more = true;
                ask(d, CTL_QUIESCE);
            }
        pthread_mutex_unlock(&sys->ded_lock);
        for (tp__ded *d = first; d != NULL; d = d->next)
            // acquire: pairs with acknowledge.
            while (!atomic_load_explicit(&d->ack, memory_order_acquire))
                futex_wait(&d->ack, 0);
    }
}

// System destruction: terminates dedicated actor `a` on its own thread and
// joins the thread. Returns false when `a` is not dedicated.
bool
tp__ded_shutdown(tp_actor *a)
{
    tp__ded *d = tp__ded_of(a);
    if (d == NULL)
        return false;
    ask(d, CTL_SHUTDOWN);
    join_free(d);
    return true;
}
