// SPDX-License-Identifier: MIT
// The scheduler: one thread per worker, each with a `runnext` slot (the
// actor its running actor just woke, run next while caches are warm), a
// bounded FIFO ring that others may steal half of, and a shared inject
// queue for work from outside the pool. Idle workers spin briefly, then
// park on a futex (park.c); a sleeper is woken only when work appears that
// no spinning worker will take. Callbacks are not preempted, so a worker can
// sit in one activation for long: one parked worker, the sentry, then
// looks every millisecond and takes what waits behind it, runnext
// included. A thief leaves a busy worker's actors alone while taking them
// has not paid (see "whether moving an actor pays"). Dead actors wait in
// per-worker limbo lists until every worker has passed a quiescent point
// (epoch-based reclamation, epoch.c), so a sender holding a stale pointer
// never touches freed memory.
#include "core/sched.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPIN_NS 100000       // how long an idle worker spins before parking
#define SPIN_RELAX 64        // pauses between its looks for work
#define STEAL_BULK 4         // a ring this long is stolen from at once
#define STEAL_STUCK_NS 30000 // a shorter one only if its owner is stuck
#define STREAK_MAX 32        // runnext picks before the ring gets a turn
#define GLOBAL_EVERY 61      // ticks between forced inject-queue checks
#define LIMBO_EVERY 16       // ticks between reclamation attempts
#define FREE_STEP 64         // dead actors freed at most per attempt

_Thread_local tp__tls tp__self;

// ---- inject queue ----------------------------------------------------------

static void
inject_push(tp_system *sys, tp_actor *a)
{
    TP_ASSERT(TP__LINKABLE(a));
    pthread_mutex_lock(&sys->inject_lock);
    a->run_next = NULL;
    if (sys->inject_tail != NULL)
        sys->inject_tail->run_next = a;
    else
        sys->inject_head = a;
    sys->inject_tail = a;
    // seq_cst: pairs with a parking worker's seq_cst decrement of nspinning
    // followed by its check of inject_len (no lost wake-up).
    atomic_fetch_add_explicit(&sys->inject_len, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&sys->inject_lock);
}

static uint32_t runq_put(tp__worker *w, tp_actor *a);

// Takes a fair share of the inject queue: one actor to run now, and up to
// half a ring more into w's ring (when `w` is not NULL).
static tp_actor *
inject_pop(tp_system *sys, tp__worker *w)
{
    // relaxed: a hint; the lock below gives the real answer.
    uint32_t len =
        atomic_load_explicit(&sys->inject_len, memory_order_relaxed);
    if (len == 0)
        return NULL;
    uint32_t want = w ? len / sys->nworkers + 1 : 1;
    if (want > TP__RUNQ_SIZE / 2)
        want = TP__RUNQ_SIZE / 2;
    pthread_mutex_lock(&sys->inject_lock);
    tp_actor *first = sys->inject_head, *last = NULL;
    uint32_t n = 0;
    for (tp_actor *a = first; a != NULL && n < want; a = a->run_next, n++)
        last = a;
    if (n > 0) {
        sys->inject_head = last->run_next;
        if (sys->inject_head == NULL)
            sys->inject_tail = NULL;
        last->run_next = NULL;
        // relaxed: a count kept under inject_lock; lock-free readers take
        // a hint from it (a missed decrement only costs a look).
        atomic_fetch_sub_explicit(&sys->inject_len, n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&sys->inject_lock);
    if (n == 0)
        return NULL;
    for (tp_actor *a = first->run_next; a != NULL;) {
        tp_actor *next = a->run_next;
        runq_put(w, a);
        a = next;
    }
    return first;
}

// ---- per-worker ring -------------------------------------------------------

// Appends `a` to w's overflow list, counting it where thieves see that w
// still queues actors (victim_stuck_ns) while its ring's tail stands still.
static uint32_t
overflow_put(tp__worker *w, tp_actor *a)
{
    tp__limbo_append(&w->overflow, a);
    // relaxed: only the owner writes it; thieves take a hint from it.
    atomic_store_explicit(
        &w->overflowed,
        atomic_load_explicit(&w->overflowed, memory_order_relaxed) + 1,
        memory_order_relaxed);
    return TP__RUNQ_SIZE;
}

// Appends `a` to w's ring; when the ring is full, to the worker's private
// overflow list, which refills the ring in order as it drains. Returns how
// many actors wait on this worker (at least). Owner thread only.
static uint32_t
runq_put(tp__worker *w, tp_actor *a)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    if (w->overflow.head != NULL)
        return overflow_put(w, a);
    // relaxed on tail: only the owner writes it. acquire on head: slots
    // below it are no longer read by thieves.
    uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    if (t - h >= TP__RUNQ_SIZE)
        return overflow_put(w, a);
    // relaxed: published by the seq_cst tail store below.
    atomic_store_explicit(&w->ring[t % TP__RUNQ_SIZE], a,
                          memory_order_relaxed);
    // seq_cst: publishes the slot to thieves and orders it before the
    // wake-up check in wake_one.
    atomic_store_explicit(&w->tail, t + 1, memory_order_seq_cst);
    return t + 1 - h;
}

// Moves actors from the overflow list into the ring while it has room.
static void
runq_refill(tp__worker *w)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    // relaxed on tail, acquire on head: as in runq_put.
    uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    uint32_t room = TP__RUNQ_SIZE - (t - h);
    while (room-- > 0 && w->overflow.head != NULL) {
        tp_actor *a = w->overflow.head;
        w->overflow.head = a->run_next;
        if (w->overflow.head == NULL)
            w->overflow.tail = NULL;
        // relaxed: published by the seq_cst tail store below.
        atomic_store_explicit(&w->ring[t % TP__RUNQ_SIZE], a,
                              memory_order_relaxed);
        t++;
    }
    // seq_cst: as in runq_put.
    atomic_store_explicit(&w->tail, t, memory_order_seq_cst);
}

static tp_actor *
runq_get(tp__worker *w)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    for (;;) {
        // acquire: pairs with the owner's tail store and thieves' CAS.
        uint32_t h = atomic_load_explicit(&w->head, memory_order_acquire);
        // relaxed: only this thread writes tail.
        uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
        if (t == h)
            return NULL;
        // relaxed: our own store; the CAS below decides whether it is ours.
        tp_actor *a = atomic_load_explicit(&w->ring[h % TP__RUNQ_SIZE],
                                           memory_order_relaxed);
        // acq_rel: takes the slot against concurrent thieves.
        if (atomic_compare_exchange_weak_explicit(&w->head, &h, h + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            return a;
    }
}

// ---- runnext, and taking it from a stuck owner ----------------------------
//
// runnext is the ping-pong hot path: the owner sets it in every send that
// wakes an actor and takes it before every activation, so those must stay
// plain loads and stores. Yet an owner stuck in one long callback must not
// keep what it woke: a thief then takes runnext, but only from an owner
// inside an activation (tp__self.actor set). The rare thief raises
// rn_thief and runs membarrier(2), which makes every running thread of the
// process execute a full barrier, then reads the owner's tp__self.actor
// (through the kernel: tp__peek) and rn_busy. So:
//  - Setting an empty runnext needs no care: a thief only ever replaces
//    an actor with NULL.
//  - Taking runnext happens between activations: the owner's last store
//    to tp__self.actor was NULL, when the activation ended, and it checks
//    rn_thief before it reads runnext. Either the thief sees that NULL and
//    leaves runnext alone, or the owner sees rn_thief and waits.
//  - Replacing an actor happens inside an activation: the owner raises
//    rn_busy around it (an asymmetric Dekker lock: a compiler barrier on
//    the owner's side, membarrier on the thief's).
// Without membarrier (kernels before 4.14, some seccomp filters) runnext
// is never stolen: a stuck owner's ring still is.

static bool asym_ok;

static void
asym_init(void)
{
#ifdef __SANITIZE_THREAD__
    // ThreadSanitizer cannot see the ordering membarrier gives, so it
    // would report the handover as a race: under it, never steal runnext.
    return;
#endif
    asym_ok = syscall(SYS_membarrier,
                      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

// Raises rn_busy; returns whether a thief was at work (then try again).
static inline bool
rn_try_lock(tp__worker *w)
{
    // relaxed, both: the compiler barrier between them is all the owner
    // needs against the thief's membarrier (see above); what they guard is
    // runnext, an atomic with its own release and acquire.
    atomic_store_explicit(&w->rn_busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return atomic_load_explicit(&w->rn_thief, memory_order_relaxed) == 0;
}

static __attribute__((noinline)) void
rn_lock_slow(tp__worker *w)
{
    do {
        // relaxed: we hold nothing meanwhile.
        atomic_store_explicit(&w->rn_busy, 0, memory_order_relaxed);
        // acquire: once the thief is done, its exchange of runnext shows.
        while (atomic_load_explicit(&w->rn_thief, memory_order_acquire))
            tp__cpu_relax();
    } while (!rn_try_lock(w));
}

static inline void
rn_lock(tp__worker *w)
{
    if (__builtin_expect(!rn_try_lock(w), 0))
        rn_lock_slow(w);
}

static inline void
rn_unlock(tp__worker *w)
{
    // release: a thief that sees us done also sees what we wrote.
    atomic_store_explicit(&w->rn_busy, 0, memory_order_release);
}

static inline tp_actor *
runnext_peek(tp__worker *w)
{
    // relaxed: a hint; only the owner makes it non-NULL.
    return atomic_load_explicit(&w->runnext, memory_order_relaxed);
}

// Owner only: replaces runnext with `a` and returns what it held.
static inline tp_actor *
runnext_swap(tp__worker *w, tp_actor *a)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    rn_lock(w);
    // relaxed: only a thief writes it besides us, and it writes NULL.
    tp_actor *old = atomic_load_explicit(&w->runnext, memory_order_relaxed);
    // release: a thief that takes `a` sees it as it was scheduled.
    atomic_store_explicit(&w->runnext, a, memory_order_release);
    rn_unlock(w);
    return old;
}

// Owner only: puts `a` in runnext and returns the actor it displaced.
static inline tp_actor *
runnext_put(tp__worker *w, tp_actor *a)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    if (runnext_peek(w) != NULL)
        return runnext_swap(w, a);
    // Empty, and only we make it non-empty: no thief can take anything
    // from under us. release: as in runnext_swap.
    atomic_store_explicit(&w->runnext, a, memory_order_release);
    return NULL;
}

static __attribute__((noinline)) void
rn_thief_wait(tp__worker *w)
{
    // acquire: once the thief is done, its exchange of runnext shows.
    while (atomic_load_explicit(&w->rn_thief, memory_order_acquire))
        tp__cpu_relax();
}

// Owner only, between activations (see above): takes runnext.
static inline tp_actor *
runnext_take(tp__worker *w)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    // relaxed: a thief writes it only inside our activations.
    tp_actor *a = atomic_load_explicit(&w->runnext, memory_order_relaxed);
    if (a == NULL)
        return NULL;
    // relaxed: ordered after the end of the last activation by the
    // thief's membarrier and the call boundary (see above). A thief that
    // was at work may have taken `a`: read it again once it is done.
    if (__builtin_expect(
            atomic_load_explicit(&w->rn_thief, memory_order_relaxed), 0)) {
        rn_thief_wait(w);
        // relaxed: rn_thief_wait's acquire ordered it after the theft.
        a = atomic_load_explicit(&w->runnext, memory_order_relaxed);
    }
    // relaxed: as above.
    atomic_store_explicit(&w->runnext, NULL, memory_order_relaxed);
    return a;
}

// Whether v runs an activation now, read after membarrier.
static bool
in_activation(tp__worker *v)
{
    // acquire: pairs with worker_main's release store of its tp__self.
    tp__tls *t = atomic_load_explicit(&v->tls, memory_order_acquire);
    tp_actor *a = NULL;
    return t != NULL && tp__peek(&a, &t->actor, sizeof a) && a != NULL;
}

// A thief's half: takes v's runnext unless the owner is between
// activations or replacing it.
static tp_actor *
runnext_steal(tp__worker *v)
{
    uint32_t zero = 0;
    // acquire: after a previous thief's release of the flag.
    if (!asym_ok || runnext_peek(v) == NULL ||
        !atomic_compare_exchange_strong_explicit(&v->rn_thief, &zero, 1,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return NULL;
    tp_actor *a = NULL;
    // relaxed: ordered by the membarrier before it (see above). acq_rel
    // on the exchange: pairs with the owner's release store of the actor.
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 &&
        in_activation(v) &&
        !atomic_load_explicit(&v->rn_busy, memory_order_relaxed))
        a = atomic_exchange_explicit(&v->runnext, NULL, memory_order_acq_rel);
    // release: an owner waiting in rn_thief_wait or rn_lock_slow sees
    // runnext as we left it.
    atomic_store_explicit(&v->rn_thief, 0, memory_order_release);
    return a;
}

// Steals half of `victim`'s ring, `most` at most, into w's ring and returns
// one actor to run.
// A short ring is left alone unless `short_ok`: its owner will get to it
// soon, and moving a conversation between cores costs more than it gains.
static tp_actor *
runq_steal(tp__worker *w, tp__worker *victim, bool short_ok, uint32_t most)
{
    tp_actor *batch[TP__RUNQ_SIZE / 2];
    for (;;) {
        // acquire: pairs with other thieves' and the owner's head CAS.
        uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
        // acquire: pairs with the owner's tail store, so slots are filled.
        uint32_t t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = t - h;
        if (n == 0 || n > TP__RUNQ_SIZE || (n < STEAL_BULK && !short_ok))
            return NULL;
        n -= n / 2;
        if (n > most)
            n = most;
        // relaxed: the tail's acquire above made the slots visible; a copy
        // is ours only if the claim below succeeds.
        for (uint32_t i = 0; i < n; i++)
            batch[i] = atomic_load_explicit(
                &victim->ring[(h + i) % TP__RUNQ_SIZE], memory_order_relaxed);
        // acq_rel: only a successful claim makes the copies ours.
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            for (uint32_t i = 1; i < n; i++)
                runq_put(w, batch[i]);
            tp__count(&w->steals, n);
            return batch[0];
        }
    }
}

// ---- whether moving an actor pays ------------------------------------------
//
// Moving an actor to another core moves its record, state, mailbox and
// messages there, a few cache-line transfers. Where a transfer costs some
// hundred nanoseconds (the 2-vCPU machine troupe is developed on), taking
// actors whose activations last ~50 ns from a busy worker made a second
// thread two to three times slower than one (big, spawn), while actors with
// 10 us activations want every core. So before taking anything, a thief
// reads the busy worker's pace (its activations over RATE_NS): when they
// average no more than WORTH_MOVES moves cost, it leaves that worker's ring
// alone for a while (1 ms, doubling while it stays so, up to 16 ms). It
// reads the pace rather than trying some actors: a thief that took a few
// of big's actors to try them had spread their conversations over both
// cores before it could judge. What it does take, it still judges by how
// long the taken actors ran here, against the same bound. Held off, it
// looks at the worker only every HELD_LOOK_NS, for a stuck activation; held
// off every other worker and out of work, it dozes (park.c) until its
// holds end, since a thread spinning on the other CPU slowed the busy one
// by a third on that machine. A worker stuck in one activation for
// RESCUE_NS, queueing nothing, is stolen from whatever the verdict.
//
// The cost of a move is measured once per process: the first two workers
// to start bounce a cache line between them and keep the fastest round
// trip.

#define WORTH_MOVES 4        // a taken activation must outlast this many
#define RATE_NS 100000       // a victim's pace is read over this long
#define HOLD_MIN_NS 1000000  // a verdict against stealing holds this long
#define HOLD_MAX_NS 16000000 // and doubles up to this
#define PROBE_ACTORS 4       // taken to try again once a hold is over
#define HELD_LOOK_NS 50000   // how often a held-off thief looks, for rescue
#define MOVE_LINES 4         // lines an actor brings with it, about
#define MOVE_DEFAULT_NS 1000 // until measured
#define MOVE_MIN_NS 200      // bounds on what a measure may conclude
#define MOVE_MAX_NS 4000
#define MOVE_TRIES 64          // round trips measured
#define MOVE_BUDGET_NS 2000000 // the measure gives up after this long

// Nanoseconds a move costs; 0 until measured. move_state: 0 unmeasured,
// 1 being measured, 2 done.
static _Atomic int64_t move_ns;
static _Atomic int move_state;
// The line the two measuring workers bounce: odd from worker 0, even from
// worker 1, UINT32_MAX when worker 0 is done.
static TP__ALIGNED _Atomic uint32_t move_line;

// Waits until move_line holds `want` (or UINT32_MAX); false past `end`.
static bool
move_wait(uint32_t want, int64_t end)
{
    for (unsigned spins = 0;; spins++) {
        // acquire: pairs with the other side's release store.
        uint32_t v = atomic_load_explicit(&move_line, memory_order_acquire);
        if (v == want)
            return true;
        if (v == UINT32_MAX)
            return false;
        tp__cpu_relax();
        if (spins % 1024 == 1023) {
            if (tp__now_ns() > end)
                return false;
            sched_yield(); // the other side may share our CPU
        }
    }
}

static void
move_measure(tp__worker *w)
{
    int64_t end = tp__now_ns() + MOVE_BUDGET_NS, best = INT64_MAX;
    for (uint32_t i = 1; i <= MOVE_TRIES; i++) {
        if (w->index == 1) {
            if (!move_wait(2 * i - 1, end))
                return;
            // release: pairs with worker 0's acquire in move_wait.
            atomic_store_explicit(&move_line, 2 * i, memory_order_release);
            continue;
        }
        int64_t t0 = tp__now_ns();
        // release: pairs with worker 1's acquire in move_wait.
        atomic_store_explicit(&move_line, 2 * i - 1, memory_order_release);
        if (!move_wait(2 * i, end))
            break;
        int64_t rt = tp__now_ns() - t0;
        if (rt < best)
            best = rt;
    }
    // release: ends worker 1's wait.
    atomic_store_explicit(&move_line, UINT32_MAX, memory_order_release);
    int64_t ns = best == INT64_MAX ? MOVE_DEFAULT_NS : best / 2 * MOVE_LINES;
    ns = ns < MOVE_MIN_NS ? MOVE_MIN_NS : ns > MOVE_MAX_NS ? MOVE_MAX_NS : ns;
    // relaxed: a heuristic's input.
    atomic_store_explicit(&move_ns, ns, memory_order_relaxed);
    // release: pairs with the acquire in move_cost.
    atomic_store_explicit(&move_state, 2, memory_order_release);
}

// Run by each worker as it starts: workers 0 and 1 of the first system with
// two or more measure once per process.
static void
move_calibrate(tp__worker *w)
{
    if (w->sys->nworkers < 2 || w->index > 1)
        return;
    // acquire: pairs with move_measure's release.
    int state = atomic_load_explicit(&move_state, memory_order_acquire);
    if (w->index == 0) {
        int unmeasured = 0;
        // relaxed: move_line's stores order the measure itself.
        if (state != 0 || !atomic_compare_exchange_strong_explicit(
                              &move_state, &unmeasured, 1,
                              memory_order_relaxed, memory_order_relaxed))
            return;
        move_measure(w);
        return;
    }
    // Worker 1 answers while worker 0 measures; it may start first.
    int64_t end = tp__now_ns() + MOVE_BUDGET_NS;
    while (state == 0 && tp__now_ns() < end) {
        sched_yield();
        // acquire: as above.
        state = atomic_load_explicit(&move_state, memory_order_acquire);
    }
    if (state == 1)
        move_measure(w);
}

// Registered with pthread_atfork: a child forked while its parent measured
// inherits move_state 1 but not the two threads that were measuring, and
// would wait out the budget at every start. It measures afresh instead.
static void
move_forked(void)
{
    // relaxed, all: the child has one thread so far.
    if (atomic_load_explicit(&move_state, memory_order_relaxed) != 1)
        return;
    atomic_store_explicit(&move_line, 0, memory_order_relaxed);
    atomic_store_explicit(&move_state, 0, memory_order_relaxed);
}

static int64_t
move_cost(void)
{
    // relaxed: a heuristic's input.
    int64_t ns = atomic_load_explicit(&move_ns, memory_order_relaxed);
    return ns != 0 ? ns : MOVE_DEFAULT_NS;
}

// How long `v` has been inside one activation without queueing anything,
// as far as w has watched it (0 when it has moved on since w last looked):
// the actors queued behind a stuck owner are worth taking even a few at a
// time, runnext included. An owner whose activation keeps queueing actors
// (a spawner, a router fanning out) is not stuck but producing: what it
// queues is taken by the ordinary steals, as their verdicts allow. Rescuing
// it took its cheap products at a cost of several microseconds each, and
// the traffic slowed it down until it looked stuck again.
static int64_t
victim_stuck_ns(tp__worker *w, tp__worker *v, int64_t now)
{
    tp__victim *x = &w->victims[v->index];
    // relaxed, both: a heuristic.
    uint64_t seq = atomic_load_explicit(&v->activations, memory_order_relaxed);
    // A full ring's tail stands still while its owner queues more: the
    // overflow count moves then.
    uint32_t tail = atomic_load_explicit(&v->tail, memory_order_relaxed) +
                    atomic_load_explicit(&v->overflowed, memory_order_relaxed);
    if (seq != x->seq || tail != x->tail) {
        x->seq = seq;
        x->tail = tail;
        x->since = now;
        return 0;
    }
    return now - x->since;
}

// Whether busy worker v's activations are too short to be worth moving,
// by the pace it ran them at, seen from here over RATE_NS: its own warm
// caches make them as short as they will ever be, so what moving adds
// would be most of the work. Probes nothing: a thief that took a few to
// try them spread their conversations over both cores before its verdict.
enum { PACE_LONG, PACE_UNKNOWN, PACE_SHORT };

static int
victim_pace(tp__worker *w, tp__worker *v, int64_t now)
{
    tp__victim *x = &w->victims[v->index];
    // relaxed: a heuristic.
    uint64_t seq = atomic_load_explicit(&v->activations, memory_order_relaxed);
    if (x->rate_at == 0 || now - x->rate_at > 8 * RATE_NS) {
        x->rate_at = now;
        x->rate_seq = seq;
        return PACE_UNKNOWN;
    }
    if (now - x->rate_at < RATE_NS)
        return PACE_UNKNOWN;
    uint64_t acts = seq - x->rate_seq;
    int64_t span = now - x->rate_at;
    x->rate_at = now;
    x->rate_seq = seq;
    // No activation ended: one long one, queueing actors (a stuck one is
    // not asked). What it queued may be worth taking: the verdict on the
    // steal says.
    if (acts == 0)
        return PACE_LONG;
    return span / (int64_t)acts <= WORTH_MOVES * move_cost() ? PACE_SHORT
                                                             : PACE_LONG;
}

// A verdict against taking from x's worker: a hold, doubling while they
// follow each other.
static void
hold_off(tp__victim *x, int64_t now)
{
    x->hold_ns = x->hold_ns == 0 ? HOLD_MIN_NS : 2 * x->hold_ns;
    if (x->hold_ns > HOLD_MAX_NS)
        x->hold_ns = HOLD_MAX_NS;
    x->hold_until = now + x->hold_ns;
}

// Judges the actors w last took from a busy worker, once w has run as many
// activations as it took actors, or has run out of work (`done`).
static void
stolen_judge(tp__worker *w, bool done)
{
    tp__stolen *st = &w->stolen;
    // relaxed: our own counter.
    uint64_t acts =
        atomic_load_explicit(&w->activations, memory_order_relaxed) - st->acts;
    if (st->from == NULL || (acts < st->n && !done))
        return;
    tp__victim *x = &w->victims[st->from->index];
    int64_t now = tp__now_ns();
    st->from = NULL;
    if (acts == 0)
        return;
    if ((now - st->at) / (int64_t)acts > WORTH_MOVES * move_cost()) {
        // Worth it: the holds shrink (one good verdict may be noise).
        x->hold_ns = x->hold_ns / 2 < HOLD_MIN_NS ? 0 : x->hold_ns / 2;
        return;
    }
    hold_off(x, now);
}

static tp_actor *
steal_any(tp__worker *w, int64_t now)
{
    tp_system *sys = w->sys;
    unsigned n = sys->nworkers;
    w->rng = w->rng * 1103515245u + 12345u;
    unsigned start = (w->rng >> 16) % n;
    for (unsigned i = 0; i < n; i++) {
        tp__worker *v = &sys->workers[(start + i) % n];
        if (v == w)
            continue;
        // Held off a busy worker, we look at it only every HELD_LOOK_NS,
        // for a stuck activation: each look pulls its counters' and
        // ring's lines to us, and it pays for each when it next writes
        // them, which from a thief looking once a microsecond made a
        // spawner 1.5 times slower.
        tp__victim *x = &w->victims[v->index];
        bool held = now < x->hold_until;
        if (held && now < x->next_look)
            continue;
        if (held)
            x->next_look = now + HELD_LOOK_NS;
        int64_t stuck = victim_stuck_ns(w, v, now);
        tp_actor *a = NULL;
        if (stuck >= RESCUE_NS) {
            a = runq_steal(w, v, true, TP__RUNQ_SIZE / 2);
        } else if (!held) {
            // relaxed: our own counter.
            uint64_t before =
                atomic_load_explicit(&w->steals, memory_order_relaxed);
            // After a verdict against it, a few are taken to try again.
            uint32_t most = x->hold_ns != 0 ? PROBE_ACTORS : TP__RUNQ_SIZE / 2;
            // relaxed: a hint; the steal decides.
            bool queued =
                atomic_load_explicit(&v->tail, memory_order_relaxed) !=
                atomic_load_explicit(&v->head, memory_order_relaxed);
            int pace = queued && stuck < STEAL_STUCK_NS
                           ? victim_pace(w, v, now)
                           : PACE_LONG;
            if (pace == PACE_SHORT)
                hold_off(x, now);
            else if (pace == PACE_LONG &&
                     (a = runq_steal(w, v, stuck >= STEAL_STUCK_NS, most)) !=
                         NULL)
                w->stolen = (tp__stolen){
                    v, now,
                    atomic_load_explicit(&w->activations,
                                         memory_order_relaxed),
                    atomic_load_explicit(&w->steals, memory_order_relaxed) -
                        before};
        }
        if (a == NULL && stuck >= RESCUE_NS && (a = runnext_steal(v))) {
            tp__count(&w->steals, 1);
            x->since = now; // the next one waits as long
        }
        if (a != NULL)
            return a;
    }
    return NULL;
}

// How long w may doze: until the earliest of its holds ends (at most
// RESCUE_NS), when every other worker is one it is held off, and one of
// them has actors queued (else there is nothing to doze beside: w spins
// and parks as usual, and the sentry can sleep); 0 otherwise.
static int64_t
doze_ns(tp__worker *w, int64_t now)
{
    tp_system *sys = w->sys;
    int64_t until = now + RESCUE_NS;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp__victim *x = &w->victims[i];
        if (&sys->workers[i] == w)
            continue;
        if (now >= x->hold_until)
            return 0;
        if (x->hold_until < until)
            until = x->hold_until;
    }
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp__worker *v = &sys->workers[i];
        // relaxed, both: a hint (the doze is bounded either way).
        if (v != w && atomic_load_explicit(&v->tail, memory_order_relaxed) !=
                          atomic_load_explicit(&v->head, memory_order_relaxed))
            return until - now;
    }
    return 0;
}

// Whether some worker has been inside one activation for RESCUE_NS with
// actors waiting behind it that a thief could take.
bool
tp__rescue_due(tp__worker *w, int64_t now)
{
    tp_system *sys = w->sys;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp__worker *v = &sys->workers[i];
        if (v == w || victim_stuck_ns(w, v, now) < RESCUE_NS)
            continue;
        // relaxed: hints; the steal itself decides.
        if (runnext_peek(v) != NULL ||
            atomic_load_explicit(&v->tail, memory_order_relaxed) !=
                atomic_load_explicit(&v->head, memory_order_relaxed))
            return true;
    }
    return false;
}

static bool
work_visible(tp_system *sys)
{
    // seq_cst: see the comment in wake_one.
    if (atomic_load_explicit(&sys->inject_len, memory_order_seq_cst) != 0)
        return true;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp__worker *v = &sys->workers[i];
        if (atomic_load_explicit(&v->tail, memory_order_seq_cst) !=
            atomic_load_explicit(&v->head, memory_order_seq_cst))
            return true;
    }
    return false;
}

// ---- scheduling entry points -----------------------------------------------

void
tp__sched_schedule(tp_system *sys, tp_actor *a)
{
    if (__builtin_expect(sys->test != NULL, 0)) {
        tp__test_ready(sys, a);
        return;
    }
    tp__worker *w = tp__self.worker;
    if (w != NULL && w->sys == sys && tp__ded_of(a) == NULL) {
        // Keep the woken actor on this worker so a conversation stays in
        // this core's cache; the actor it displaces goes to the ring.
        tp_actor *old = runnext_put(w, a);
        if (old != NULL && runq_put(w, old) + 1 >= 2)
            tp__wake_one(sys);
        return;
    }
    if (tp__ded_of(a) != NULL) { // a dedicated actor: its own thread runs it
        tp__ded_wake(a);
        return;
    }
    inject_push(sys, a);
    tp__wake_one(sys);
    tp__wake_dozers(sys, false);
}

// Queues `a` on this worker where no thief takes it: for senders released
// by backpressure, which can only go as fast as the receiver running here,
// so moving them to another core would add traffic and gain nothing.
void
tp__sched_pin(tp_system *sys, tp_actor *a)
{
    tp__worker *w = tp__self.worker;
    if (w == NULL || w->sys != sys || tp__ded_of(a) != NULL ||
        sys->test != NULL) {
        tp__sched_schedule(sys, a);
        return;
    }
    TP_ASSERT(TP__LINKABLE(a));
    a->run_next = NULL;
    if (w->pinned_tail != NULL)
        w->pinned_tail->run_next = a;
    else
        w->pinned = a;
    w->pinned_tail = a;
}

static tp_actor *
pinned_pop(tp__worker *w)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    tp_actor *a = w->pinned;
    if (a != NULL) {
        w->pinned = a->run_next;
        if (w->pinned == NULL)
            w->pinned_tail = NULL;
    }
    return a;
}

// Wakes a helper only when this worker has a backlog: one actor queued
// behind the next is something this worker will get to soon anyway.
void
tp__sched_requeue(tp__worker *w, tp_actor *a)
{
    if (w->ded != NULL) { // a dedicated actor's thread runs it again
        tp__ded_again(w);
        return;
    }
    if (__builtin_expect(w->sys->test != NULL, 0)) {
        tp__test_ready(w->sys, a);
        return;
    }
    if (runq_put(w, a) + (runnext_peek(w) != NULL) >= 2)
        tp__wake_one(w->sys);
}

// ---- the worker loop -------------------------------------------------------

static tp_actor *
local_next(tp__worker *w)
{
    TP_ASSERT(tp__self.worker == w); // owner thread only
    tp_actor *a;
    if (++w->tick % GLOBAL_EVERY == 0 && (a = inject_pop(w->sys, w)) != NULL)
        return a;
    // Refilled once half empty: a refill per activation cost spawn's
    // flood of children a fenced store each.
    if (w->overflow.head != NULL &&
        // relaxed: only we write tail; a stale head only delays a refill.
        atomic_load_explicit(&w->tail, memory_order_relaxed) -
                atomic_load_explicit(&w->head, memory_order_relaxed) <=
            TP__RUNQ_SIZE / 2)
        runq_refill(w);
    if (w->streak < STREAK_MAX && (a = runnext_take(w)) != NULL) {
        w->streak++;
        return a;
    }
    w->streak = 0;
    // The ring and the pinned list take turns so neither starves.
    if ((w->tick & 1) && (a = pinned_pop(w)) != NULL)
        return a;
    if ((a = runq_get(w)) != NULL || (a = pinned_pop(w)) != NULL)
        return a;
    if ((a = runnext_take(w)) != NULL)
        return a;
    // Thieves may have emptied the ring right after it was refilled.
    while (w->overflow.head != NULL) {
        runq_refill(w);
        if ((a = runq_get(w)) != NULL)
            return a;
    }
    return inject_pop(w->sys, w);
}

static bool
stopping(tp_system *sys)
{
    // acquire: pairs with tp__sched_stop's release store.
    return atomic_load_explicit(&sys->stop_workers, memory_order_acquire);
}

// Spins looking for work, then parks. Entered counted as spinning; returns
// an actor to run (no longer counted as spinning) or NULL to stop.
static tp_actor *
find_work(tp__worker *w)
{
    tp_system *sys = w->sys;
    for (;;) {
        // acquire: pairs with tp__dist_hooks_install's release store.
        const tp__dist_ops *dist =
            atomic_load_explicit(&sys->dist, memory_order_acquire);
        int64_t start = tp__now_ns(), now = start;
        for (; now - start < SPIN_NS; now = tp__now_ns()) {
            tp_actor *a = inject_pop(sys, w);
            if (a == NULL)
                a = steal_any(w, now);
            if (a == NULL && dist != NULL && dist->poll_ready(sys, w, now)) {
                // Input from other nodes, read here: the actors it wakes
                // are queued on this worker.
                tp__announce(w);
                dist->poll_read(sys, w);
                tp__go_idle(w);
                a = local_next(w);
            }
            if (a != NULL) {
                // seq_cst: if we were the last spinner and more work is
                // queued, someone must take it. A producer that queued
                // it saw us spinning and woke nobody; its seq_cst
                // publication and our seq_cst decrement, each followed
                // by a look at the other, mean one of us sees the other
                // (as in parking, below). Waking someone for nothing
                // would put a futex wake-up before every hand-off from
                // the I/O thread, on the critical path of a round trip.
                if (atomic_fetch_sub_explicit(&sys->nspinning, 1,
                                              memory_order_seq_cst) == 1 &&
                    work_visible(sys))
                    tp__wake_one(sys);
                return a;
            }
            int64_t doze;
            if (!stopping(sys) && (doze = doze_ns(w, now)) > 0) {
                if (dist != NULL)
                    dist->unpoll(sys, w);
                // seq_cst, both: as every change of nspinning (see
                // wake_one). Dozing, we are not there to take new work:
                // wakers see nobody spinning; the inject queue's wake us.
                atomic_fetch_sub_explicit(&sys->nspinning, 1,
                                          memory_order_seq_cst);
                tp__doze(sys, doze);
                atomic_fetch_add_explicit(&sys->nspinning, 1,
                                          memory_order_seq_cst);
                start = now = tp__now_ns();
                continue;
            }
            if (stopping(sys)) {
                if (dist != NULL)
                    dist->unpoll(sys, w);
                // seq_cst: as every change of nspinning (see wake_one).
                atomic_fetch_sub_explicit(&sys->nspinning, 1,
                                          memory_order_seq_cst);
                return NULL;
            }
            // Yield after every look: a thread woken on this CPU (the I/O
            // thread with a message for us, the other end of a round
            // trip) would otherwise wait for the rest of our time slice,
            // since a scheduler such as Linux's EEVDF does not preempt a
            // running thread for a woken one before its slice ends. One
            // yield in eight held such a thread back by some 17 us.
            for (int k = 0; k < SPIN_RELAX; k++)
                tp__cpu_relax();
            sched_yield();
        }
        // Park: become idle first, stop spinning, then look once more so a
        // producer that saw us spinning cannot leave its work unnoticed.
        // The loop watches the node's connections again.
        if (dist != NULL)
            dist->unpoll(sys, w);
        tp__go_idle(w);
        // relaxed: idle_lock, taken next, publishes it to any waker.
        atomic_store_explicit(&w->wake, TP__WAKE_NONE, memory_order_relaxed);
        pthread_mutex_lock(&sys->idle_lock);
        w->idle_next = sys->idle;
        sys->idle = w;
        if (sys->sentry == NULL)
            sys->sentry = w;
        // seq_cst, both: a waker reads nspinning then nidle (wake_one);
        // counted idle before we stop spinning, we are never invisible.
        atomic_fetch_add_explicit(&sys->nidle, 1, memory_order_seq_cst);
        pthread_mutex_unlock(&sys->idle_lock);
        atomic_fetch_sub_explicit(&sys->nspinning, 1, memory_order_seq_cst);
        // Unless a waker already chose us: then we take its wake.
        if ((work_visible(sys) || stopping(sys)) && tp__leave_idle(w))
            continue;
        tp__count(&w->sleeps, 1);
        if (!tp__park(w))
            continue; // the sentry, off to take a stuck worker's actors
        // The waker counted us as spinning.
        if (stopping(sys)) {
            // seq_cst: as every change of nspinning (see wake_one).
            atomic_fetch_sub_explicit(&sys->nspinning, 1,
                                      memory_order_seq_cst);
            return NULL;
        }
    }
}

static void *
worker_main(void *arg)
{
    tp__worker *w = arg;
    tp_system *sys = w->sys;
    tp__self.worker = w;
    move_calibrate(w);
    // release: the stall watch reads our tp__self (what it points to, it
    // reads through the kernel: see watch.c).
    atomic_store_explicit(&w->tls, &tp__self, memory_order_release);
    void *altstack = sys->cfg.catch_faults ? tp__fault_altstack_on() : NULL;
    for (;;) {
        tp__announce(w);
        // A busy system must stop too: actors that keep each other
        // runnable would otherwise never let us reach find_work.
        if (stopping(sys))
            break;
        if ((w->limbo.head != NULL || w->ready.head != NULL) &&
            w->tick % LIMBO_EVERY == 0)
            tp__worker_reclaim_some(w, FREE_STEP);
        tp_actor *a = local_next(w);
        if (a == NULL) {
            // relaxed: limbo_waiting is a hint (see tp__worker_reclaim).
            if (w->limbo.head != NULL || w->ready.head != NULL ||
                (w->index == 0 && atomic_load_explicit(&sys->limbo_waiting,
                                                       memory_order_relaxed)))
                tp__worker_reclaim(w);
            if (w->stolen.from != NULL)
                stolen_judge(w, true);
            tp__go_idle(w);
            // seq_cst: as every change of nspinning (see wake_one).
            atomic_fetch_add_explicit(&sys->nspinning, 1,
                                      memory_order_seq_cst);
            a = find_work(w);
            if (a == NULL)
                break;
            tp__announce(w);
        }
        tp__actor_run(w, a);
        if (__builtin_expect(w->stolen.from != NULL, 0))
            stolen_judge(w, false);
        // Remote sends held back by the activation: only a started node
        // corks, so its hooks are there. acquire: pairs with
        // tp__dist_hooks_install's release store.
        if (__builtin_expect(tp__corked.npeers > 0, 0))
            atomic_load_explicit(&sys->dist, memory_order_acquire)->uncork();
    }
    tp__go_idle(w);
    // release: as at the start; our tp__self goes with the thread.
    atomic_store_explicit(&w->tls, NULL, memory_order_release);
    tp__fault_altstack_off(altstack);
    tp__self.worker = NULL;
    return NULL;
}

static pthread_once_t sched_once = PTHREAD_ONCE_INIT;

// Once per process, before the first workers start.
static void
sched_init(void)
{
    asym_init();
    // Without the handler (only when out of memory) a forked child may
    // wait out the measure's budget at each start: slower, still correct.
    (void)pthread_atfork(NULL, NULL, move_forked);
}

// Waits, briefly, until move_calibrate's measure is done: a few hundred
// microseconds once per process, which would otherwise hold worker 0 back
// from the first actors (at most twice the measure's budget).
static void
move_wait_measured(void)
{
    int64_t end = tp__now_ns() + 2 * MOVE_BUDGET_NS;
    // acquire: pairs with move_measure's release.
    while (atomic_load_explicit(&move_state, memory_order_acquire) != 2 &&
           tp__now_ns() < end)
        nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
}

int
tp__sched_start(tp_system *sys)
{
    pthread_once(&sched_once, sched_init);
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp__worker *w = &sys->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            // release: as in tp__sched_stop; reset once they are joined.
            atomic_store_explicit(&sys->stop_workers, 1, memory_order_release);
            tp__wake_all(sys);
            for (unsigned j = 0; j < i; j++)
                pthread_join(sys->workers[j].thread, NULL);
            // release: no worker runs; a later start's threads see it.
            atomic_store_explicit(&sys->stop_workers, 0, memory_order_release);
            return TP_EAGAIN;
        }
    }
    if (sys->nworkers >= 2)
        move_wait_measured();
    return 0;
}

void
tp__sched_stop(tp_system *sys)
{
    // release: workers that see the flag also see everything before it.
    atomic_store_explicit(&sys->stop_workers, 1, memory_order_release);
    tp__wake_dozers(sys, true);
    for (unsigned i = 0; i < sys->nworkers; i++)
        tp__wake_all(sys);
    for (unsigned i = 0; i < sys->nworkers; i++)
        pthread_join(sys->workers[i].thread, NULL);
}
