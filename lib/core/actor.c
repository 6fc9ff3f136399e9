// SPDX-License-Identifier: MIT
// Actors: lookup, spawning, the activation that drains a mailbox in
// batches, and the calls made inside an actor. Sending lives in send.c,
// backpressure in mute.c, exit and burial in exit.c (private declarations
// in actor.h). An actor is owned by whoever moved its mailbox counter from 0
// (see TP__CNT_* in core.h): that thread schedules it, and exactly
// one worker runs it at a time. A dead actor's pointer stays valid until
// every scheduler thread has passed a quiescent point (sched.c).
//
// Ordering. A mailbox has two MPSC lanes, each FIFO per producer. The user
// lane carries messages and, in their place among them, every signal one
// actor causes another to receive (link, unlink, exit, monitor, demonitor,
// DOWN): a signal is counted in the total but not against the capacity, so
// it is never refused or dropped, yet it cannot overtake what the same
// sender queued before it; remote signals keep their place the same way,
// in the peer's send queue and in frame order on arrival. The system lane,
// read first, carries only what needs no order: the runtime's own requests
// and the untrappable kill. An exit signal that would kill a receiver that
// does not trap exits is found in the user lane as soon as it arrives
// (exit_queued), as Erlang applies signals on arrival: the messages it
// passes would never be handled anyway.
#include "core/actor.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTINUE INT_MIN // process(): keep the actor alive

// ---- lookup ---------------------------------------------------------------

// Finds the live actor named by `pid`. On a scheduler thread the result is
// safe until the worker's next quiescent point; elsewhere the caller holds
// sys->ext_lock for reading.
tp_actor *
tp__actor_lookup(tp_system *sys, tp_pid pid)
{
    if (tp_pid_node(pid) != 0)
        return NULL;
    uint32_t slot = tp_pid_slot(pid);
    // acquire: a chunk's contents are initialised before it is published.
    tp__slot_chunk *c = atomic_load_explicit(
        &sys->chunks[slot >> TP__SLOT_CHUNK_BITS], memory_order_acquire);
    if (c == NULL)
        return NULL;
    // seq_cst: orders this read after the epoch the worker announced, so a
    // concurrently buried actor is either seen as NULL or kept alive.
    tp_actor *a = atomic_load_explicit(&c->actor[slot & (TP__SLOT_CHUNK - 1)],
                                       memory_order_seq_cst);
    if (a == NULL || a->pid.v != pid.v)
        return NULL;
    // relaxed: a late message to a dying actor is freed when it is reclaimed.
    if (atomic_load_explicit(&a->dead, memory_order_relaxed))
        return NULL;
    return a;
}

// ---- the activation --------------------------------------------------------

static int
handle_result(tp_actor *a, int r)
{
    if (r == TP_OK)
        return a->stopping ? a->stop_reason : CONTINUE;
    if (r == TP_STOP)
        return TP_REASON_NORMAL;
    if (r < 0)
        return r;
    tp__log(a->system, TP_LOG_ERR, "behaviour %s: handle returned %d",
            a->behaviour->name ? a->behaviour->name : "?", r);
    return TP_EINVAL;
}

// Hands the answer to a request (a reply, or its TP_TAG_TIMEOUT or
// TP_TAG_FAILED) to the request's continuation when it has one
// (tp_request_then), else to handle.
static int
handle_answer(tp_actor *a, tp__msg *m)
{
    tp_then_fn fn;
    void *arg;
    if (a->system->up->then_take(a, m->pub.ref, &fn, &arg)) {
        int r = fn(ctx_of(a), tp__user_state(a), &m->pub, arg);
        a->system->up->then_done(a);
        return r;
    }
    return a->behaviour->handle(ctx_of(a), tp__state(a), &m->pub);
}

// Applies one system-lane message; exit signals and DOWN messages may
// reach `handle`. Returns CONTINUE or an exit reason.
static int
handle_system(tp_actor *a, tp__msg *m)
{
    if (tp__traced(a, TP_TRACE_SIGNALS))
        tp__trace_signal(a, m);
    if (m->kind == TP__MSG_OVERFLOW_KILL) {
        tp__msg_retire(m);
        return TP_REASON_MAILBOX_OVERFLOW;
    }
    if (m->kind == TP__MSG_INFO) {
        a->system->up->info_answer(a, m);
        tp__msg_retire(m);
        return CONTINUE;
    }
    if (m->kind == TP__MSG_UPGRADE) // retires m
        return tp__upgrade_handle(a, m) == TP__HOLD ? TP__HOLD : CONTINUE;
    tp__msg *d;
    int r = a->system->up->system_signal(m, a, &d);
    tp__msg_retire(m);
    if (r != 0) {
        a->by_signal = 1;
        return r;
    }
    if (d == NULL)
        return CONTINUE;
    a->current = d;
    bool answer = d->pub.ref != 0 && (d->pub.tag == TP_TAG_TIMEOUT ||
                                      d->pub.tag == TP_TAG_FAILED);
    r = handle_result(
        a, answer ? handle_answer(a, d)
                  : a->behaviour->handle(ctx_of(a), tp__state(a), &d->pub));
    if (r != CONTINUE)
        return r; // actor_exit frees the message
    tp__done_with_current(a);
    return CONTINUE;
}

// Whether user message `m` may be handled: a cancelled timer's message or
// a reply nobody waits for any more is dropped here.
static bool
wanted(tp_actor *a, tp__msg *m)
{
    if ((m->flags & TP__MSG_TIMER) && !a->system->up->timer_claim(m))
        return false;
    if (m->flags & TP__MSG_REPLY) {
        if (m->flags & TP__MSG_FORCED) {
            // relaxed: a bound (see tp__deliver_reply).
            uint32_t was = atomic_fetch_sub_explicit(&a->req_forced, 1,
                                                     memory_order_relaxed);
            TP_ASSERT(was > 0); // one credit per forced reply: never negative
            (void)was;
        }
        return a->system->up->request_done(a, m->pub.ref, m->pub.from);
    }
    return true;
}

// Gives back the counts of the messages handled so far in this activation
// without ending it, so senders see the mailbox as it is: a small mailbox
// would otherwise look full of messages already handled, refusing or
// dropping for nothing. One popped message stays counted so the total
// cannot reach zero and let a sender schedule us while we run.
static void
settle(tp__worker *w, tp_actor *a)
{
    uint64_t sub = ((uint64_t)w->done_user << 32) + (w->done_total - 1);
    // seq_cst: as in finish().
    uint64_t old =
        atomic_fetch_sub_explicit(&a->count, sub, memory_order_seq_cst);
    // Never negative, and the popped message we keep counted leaves the
    // total above zero: no sender can schedule us while we run.
    TP_ASSERT(TP__CNT_USERS(old) >= w->done_user &&
              TP__CNT_TOTAL(old) > w->done_total - 1);
    tp__count(&a->handled, w->done_user);
    tp__count(&w->messages, w->done_user);
    uint32_t left_user = TP__CNT_USERS(old) - w->done_user;
    w->done_user = 0;
    w->done_total = 1;
    if (tp__below_low_water(a, left_user)) {
        // seq_cst: pairs with maybe_mute's seq_cst list store (see finish()).
        if (atomic_load_explicit(&a->mute_list, memory_order_seq_cst) != NULL)
            tp__unmute_all(a);
        io_unwait(a);
    }
}

// An exit signal that ends its receiver does so as soon as it arrives, as
// in Erlang, even though it waits in the user lane behind its sender's
// messages: an actor that does not trap exits would never handle those
// anyway. One that traps exits receives it in order, as a message. Looks
// through the lane only when an exit signal came since the last look.
static int
exit_queued(tp_actor *a)
{
    // acquire: pairs with push_system's release: the signal is linked.
    uint16_t pushed =
        atomic_load_explicit(&a->exits_pushed, memory_order_acquire);
    if (pushed == a->exits_scanned)
        return CONTINUE;
    a->exits_scanned = pushed;
    int r = a->system->up->exit_queued(a);
    return r == TP__NO_EXIT ? CONTINUE : r;
}

// `a`, marked as traced or as having faults injected, starts to handle
// `m`: traces it; returns whether a test's fault makes it crash instead.
static __attribute__((noinline)) bool
received_marked(tp_actor *a, const tp__msg *m)
{
    if (tp__traced(a, TP_TRACE_RECEIVED))
        tp__trace_received(a, m);
    return tp__marked(a, TP__MARK_FAULT) && tp__test_crashes(a, m);
}

// Handles up to one batch of messages. Returns CONTINUE or an exit reason.
static int
process(tp__worker *w, tp_actor *a)
{
    unsigned budget = a->system->cfg.batch;
    uint32_t every = tp__settle_every(a); // done_user is >= 1 where compared
    for (;;) {
        tp__msg *m;
        while ((m = tp__mailbox_pop(&a->sys)) != NULL) {
            w->done_total++;
            int r = handle_system(a, m);
            if (r == TP__HOLD) // held by an upgrade: finish parks it
                return CONTINUE;
            if (r != CONTINUE)
                return r;
        }
        if (budget == 0)
            return CONTINUE;
        // relaxed: a hint; exit_queued reads it again with acquire.
        if (__builtin_expect(
                atomic_load_explicit(&a->exits_pushed, memory_order_relaxed) !=
                    a->exits_scanned,
                0)) {
            int r = exit_queued(a);
            if (r != CONTINUE)
                return r;
        }
        if (__builtin_expect(tp__self.replay != NULL, 0)) {
            // Put back by tp_unstash_all: before the mailbox, in order.
            m = tp__self.replay;
            // relaxed: the list is this activation's own.
            tp__self.replay = (tp__msg *)atomic_load_explicit(
                &m->node.next, memory_order_relaxed);
            if (tp__self.replay == NULL)
                tp__self.replay_tail = NULL;
            w->done_total++;
            w->done_user++;
            budget--;
            bool crash = false;
            if (tp__marked(a, TP_TRACE_RECEIVED << TP__MARK_TRACE_SHIFT |
                                  TP__MARK_FAULT))
                crash = received_marked(a, m);
            a->current = m;
            int r = handle_result(a, crash ? TP_ECRASH
                                           : a->behaviour->handle(ctx_of(a),
                                                                  tp__state(a),
                                                                  &m->pub));
            if (r != CONTINUE)
                return r; // actor_exit frees the message
            tp__done_with_current(a);
            if (w->done_user >= every)
                settle(w, a);
            // relaxed: set by this thread in maybe_mute.
            if (atomic_load_explicit(&a->mute, memory_order_relaxed) != 0)
                return CONTINUE;
            continue;
        }
        if ((m = tp__mailbox_pop(&a->user)) == NULL)
            return CONTINUE;
        w->done_total++;
        if (__builtin_expect(m->kind != TP__MSG_USER, 0)) {
            // A signal that kept its place behind its sender's messages.
            budget--;
            int r = handle_system(a, m);
            if (r != CONTINUE)
                return r;
            // relaxed: set by this thread in maybe_mute.
            if (atomic_load_explicit(&a->mute, memory_order_relaxed) != 0)
                return CONTINUE;
            continue;
        }
        w->done_user++;
        // relaxed: only this consumer decrements the debt.
        if (atomic_load_explicit(&a->drop_debt, memory_order_relaxed) > 0) {
            // relaxed: as above; senders only add to it.
            uint32_t debt = atomic_fetch_sub_explicit(&a->drop_debt, 1,
                                                      memory_order_relaxed);
            TP_ASSERT(debt > 0); // one consumer: the debt never goes negative
            (void)debt;
            tp__count_drop(a);
            tp__msg_retire(m);
            if (w->done_user >= every)
                settle(w, a);
            continue;
        }
        if (__builtin_expect(m->flags & (TP__MSG_TIMER | TP__MSG_REPLY), 0) &&
            !wanted(a, m)) {
            tp__msg_retire(m);
            continue;
        }
        budget--;
        bool crash = false;
        if (tp__marked(a, TP_TRACE_RECEIVED << TP__MARK_TRACE_SHIFT |
                              TP__MARK_FAULT))
            crash = received_marked(a, m);
        if (__builtin_expect(m->enq != 0, 0))
            tp__wait_note(w, a, m->enq);
        a->current = m;
        int r = __builtin_expect(crash, 0) ? TP_ECRASH
                : __builtin_expect(m->flags & TP__MSG_REPLY, 0)
                    ? handle_answer(a, m)
                    : a->behaviour->handle(ctx_of(a), tp__state(a), &m->pub);
        r = handle_result(a, r);
        if (r != CONTINUE)
            return r; // actor_exit reports and frees the message
        a->current = NULL;
        tp__msg_retire(m);
        if (w->done_user >= every)
            settle(w, a);
        // relaxed: set by this thread in maybe_mute.
        if (atomic_load_explicit(&a->mute, memory_order_relaxed) != 0)
            return CONTINUE;
    }
}

// Ends an activation of a surviving actor: gives back the counts it
// handled, releases senders it muted, and requeues or parks it.
static void
finish(tp__worker *w, tp_actor *a)
{
    // seq_cst: see keep_muted: of two actors muting on each other, one
    // sees the other muted.
    // Held by an upgrade: parked, keeping one in the count so no sender
    // schedules it; the upgrade does when it lets it go. A change that
    // muted it (a send to a full mailbox) leaves its mute pending, settled
    // by the unmute (which then schedules nothing) or its next activation.
    bool parking = tp__marked(a, TP__MARK_HELD);
    bool muting = !parking &&
                  atomic_load_explicit(&a->mute, memory_order_seq_cst) ==
                      TP__MUTE_PENDING &&
                  tp__keep_muted(a);
    uint64_t total =
        (uint64_t)w->done_total + a->hold - (muting || parking ? 1 : 0);
    a->hold = muting || parking ? 1 : 0;
    uint64_t sub = ((uint64_t)w->done_user << 32) + total;
    // seq_cst: pairs with maybe_mute's seq_cst list store and count load.
    uint64_t old =
        atomic_fetch_sub_explicit(&a->count, sub, memory_order_seq_cst);
    // Never negative: we give back only what this activation counted.
    TP_ASSERT(TP__CNT_TOTAL(old) >= total &&
              TP__CNT_USERS(old) >= w->done_user);
    uint32_t left_total = TP__CNT_TOTAL(old) - (uint32_t)total;
    uint32_t left_user = TP__CNT_USERS(old) - w->done_user;
    tp__count(&a->handled, w->done_user);
    tp__count(&w->messages, w->done_user);
    if (tp__below_low_water(a, left_user)) {
        // seq_cst: pairs with maybe_mute's seq_cst list store (see finish()).
        if (atomic_load_explicit(&a->mute_list, memory_order_seq_cst) != NULL)
            tp__unmute_all(a);
        io_unwait(a);
    }
    if (parking) {
        tp__upgrade_parked(a);
        return;
    }
    if (muting) {
        uint8_t expect = TP__MUTE_PENDING;
        // acq_rel: if an unmute already happened we keep running.
        if (atomic_compare_exchange_strong_explicit(
                &a->mute, &expect, TP__MUTE_PARKED, memory_order_acq_rel,
                memory_order_acquire))
            return; // parked: the receiver that unmutes us schedules us
        tp__sched_requeue(w, a);
        return;
    }
    if (left_total > 0)
        tp__sched_requeue(w, a);
}

// ---- message waits ---------------------------------------------------------

static unsigned
wait_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us == 0)
        return 0;
    unsigned b = 64 - (unsigned)__builtin_clzll(us); // 2^(b-1) <= us < 2^b
    return b < TP_WAIT_BUCKETS ? b : TP_WAIT_BUCKETS - 1;
}

// Adds one to a counter only this thread writes (relaxed: readers take a
// snapshot for display).
static inline void
bump32(_Atomic uint32_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void
tp__wait_note(tp__worker *w, tp_actor *a, uint32_t enq)
{
    tp__clock *k = tp__clock_of(a);
    if (k == NULL)
        return;
    uint32_t units = tp__wait_stamp() - enq; // modulo 2^32, as stamped
    // A receiver's clock read a little behind the sender's (time-stamp
    // counters of two CPUs agree only so far) would wrap to half an hour.
    if (units > UINT32_MAX / 2)
        units = 0;
    uint64_t ns = (uint64_t)((double)units * 1024.0 * a->system->tick_ns0);
    unsigned b = wait_bucket(ns);
    // relaxed, all: written by this actor's activations only, read for
    // display (as in account()). A bucket about to wrap halves them all,
    // so the percentiles stay right and the counts only shrink.
    if (atomic_load_explicit(&k->wait[b], memory_order_relaxed) ==
        UINT32_MAX) {
        for (unsigned i = 0; i < TP_WAIT_BUCKETS; i++)
            atomic_store_explicit(
                &k->wait[i],
                atomic_load_explicit(&k->wait[i], memory_order_relaxed) / 2,
                memory_order_relaxed);
        atomic_store_explicit(
            &k->wait_sum_ns,
            atomic_load_explicit(&k->wait_sum_ns, memory_order_relaxed) / 2,
            memory_order_relaxed);
    }
    atomic_store_explicit(
        &k->wait_sum_ns,
        atomic_load_explicit(&k->wait_sum_ns, memory_order_relaxed) + ns,
        memory_order_relaxed);
    if (ns > atomic_load_explicit(&k->wait_max_ns, memory_order_relaxed))
        atomic_store_explicit(&k->wait_max_ns, ns, memory_order_relaxed);
    bump32(&k->wait[b]);
    tp__wait_count(w, a->behaviour, b, ns);
}

// Adds the activation that began at `t0` to the actor's run time.
static void
account(tp__clock *k, uint64_t t0)
{
    uint64_t t1 = tp__ticks();
    // relaxed: only the actor's activation writes these two; snapshots
    // read them for display and tolerate seeing one updated before the
    // other (an activation counted twice for an instant). An activation
    // that migrated between CPUs whose counters disagree adds nothing.
    if (t1 > t0)
        atomic_store_explicit(
            &k->ran,
            atomic_load_explicit(&k->ran, memory_order_relaxed) + (t1 - t0),
            memory_order_relaxed);
    // relaxed: as above.
    atomic_store_explicit(&k->running_since, 0, memory_order_relaxed);
}

// Stops the clock of an actor dying in its activation.
static void
clock_stop(tp__clock *k)
{
    // relaxed: as in account().
    if (k != NULL)
        atomic_store_explicit(&k->running_since, 0, memory_order_relaxed);
}

// Ends the activation's list of messages put back by tp_unstash_all:
// kept for the next one when the actor lives on (they are counted in its
// mailbox, so it runs again), freed with it when it exits.
static void
replay_end(tp_actor *a, bool lives)
{
    tp__msg *m = tp__self.replay;
    if (__builtin_expect(m == NULL, 1))
        return;
    if (lives)
        a->system->up->replay_save(a, m, tp__self.replay_tail);
    else
        a->system->up->replay_drop(a, m);
    tp__self.replay = tp__self.replay_tail = NULL;
}

void
tp__actor_run(tp__worker *w, tp_actor *a)
{
    jmp_buf jb;
    int reason;
    // One activation at a time, on the thread that owns the actor: none is
    // running here, on w's own thread (a worker, or a dedicated actor's
    // thread with its private record), and the counter that made us its
    // owner is held.
    TP_ASSERT(
        tp__self.actor == NULL &&
        (tp__self.worker == w || (tp__self.worker == NULL && w->ded != NULL)));
    // relaxed: only checks the hold; the ownership came with the schedule.
    TP_ASSERT(TP__CNT_TOTAL(
                  atomic_load_explicit(&a->count, memory_order_relaxed)) > 0);
    tp__clock *k = tp__clock_of(a); // NULL unless the system measures
    tp__self.actor = a;
    tp__self.jb = &jb;
    w->done_user = 0;
    w->done_total = 0;
    a->overshoot = 0;
    tp__count(&w->activations, 1);
    tp__self.replay = tp__self.replay_tail = NULL;
    if (__builtin_expect(a->ext != NULL, 0)) // what an unstash left
        a->system->up->replay_load(a, &tp__self.replay, &tp__self.replay_tail);
    if (setjmp(jb) != 0) {
        // tp_fail logged its crash report; a caught fault has not yet.
        tp__report_fault(a);
        if (__builtin_expect(tp__self.upgrading != NULL, 0))
            tp__upgrade_crashed(a);
        replay_end(a, false);
        tp__self.actor = NULL;
        tp__self.jb = NULL;
        tp__count(&w->messages, w->done_user);
        clock_stop(k);
        tp__actor_exit(a, tp__self.fail_reason, true);
        return;
    }
    uint64_t t0 = 0;
    if (k != NULL) {
        t0 = tp__ticks();
        // relaxed: as in account().
        atomic_store_explicit(&k->running_since, t0, memory_order_relaxed);
    }
    if (__builtin_expect(a->current != NULL, 0)) {
        // An upgrade's verdict for this held actor (upgrade.c), before
        // anything queued: what came while it was held is handled by the
        // code the verdict leaves, on its state.
        tp__msg *verdict = (tp__msg *)a->current;
        a->current = NULL;
        tp__upgrade_handle(a, verdict);
    }
    reason = process(w, a);
    replay_end(a, reason == CONTINUE);
    tp__self.actor = NULL;
    tp__self.jb = NULL;
    if (reason == CONTINUE) {
        if (k != NULL)
            account(k, t0);
        finish(w, a);
    } else {
        clock_stop(k);
        tp__count(&w->messages, w->done_user);
        tp__actor_exit(a, reason, false);
    }
}

// ---- spawning --------------------------------------------------------------

static int
check_spawn(tp_system *sys, const tp_behaviour *b, const tp_spawn_opts *o)
{
    if (sys == NULL || b == NULL || b->handle == NULL ||
        b->state_size > ((size_t)1 << 30))
        return TP_EINVAL;
    if (o != NULL) {
        if (o->name != NULL &&
            (o->name[0] == '\0' || strlen(o->name) > TP_NAME_MAX))
            return TP_EINVAL;
        if (o->mailbox_capacity > (1u << 30) ||
            (unsigned)o->overflow > TP_OVERFLOW_EXIT_RECEIVER)
            return TP_EINVAL;
        // Linking needs a spawning actor of the same system.
        if (o->link &&
            (tp__self.actor == NULL || tp__self.actor->system != sys))
            return TP_EINVAL;
        // A test system runs everything on the test's thread.
        if (o->dedicated && sys->test != NULL)
            return TP_EINVAL;
    }
    // acquire: pairs with tp_system_destroy's release store.
    if (atomic_load_explicit(&sys->shutting_down, memory_order_acquire))
        return TP_ESHUTDOWN;
    return 0;
}

// ---- actor records ---------------------------------------------------------
//
// A worker keeps up to REC_KEEP free records per size class and spawns from
// them; beyond that it hands REC_BATCH at a time to the system's depot,
// from which a worker that ran out takes a batch before it calls malloc.
// A spawn and an exit then cost no malloc and free, and, with two or more
// workers, no wait on a malloc arena's lock: spawn at two threads spent
// most of its extra time there, in a spawner's malloc against a thief
// freeing the records of the actors it took. A record's size is rounded up
// to the next 16k + 8 bytes, what malloc's chunks give anyway, so the
// rounding costs no memory. The depot keeps at most REC_DEPOT bytes; the
// rest goes back to malloc, as everything does when the system ends. Under
// AddressSanitizer records go straight back to malloc, so that a use after
// free is still caught.
#define REC_KEEP 256
#define REC_BATCH 128
#define REC_DEPOT (4u << 20)

#if defined(__SANITIZE_ADDRESS__)
#define REC_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REC_CACHE 0
#endif
#endif
#ifndef REC_CACHE
#define REC_CACHE 1
#endif

// A free record: the link to the next in its list, and in the depot, the
// link from a batch's first record to the next batch.
typedef struct rec_free {
    struct rec_free *next;
    struct rec_free *next_batch;
} rec_free;

// Takes a batch of class `cls` from the depot into w's empty list.
static void
rec_refill(tp__worker *w, unsigned cls)
{
    tp_system *sys = w->sys;
    pthread_mutex_lock(&sys->rec_lock);
    rec_free *b = sys->rec_depot[cls];
    if (b != NULL) {
        sys->rec_depot[cls] = b->next_batch;
        sys->rec_depot_bytes -= (size_t)REC_BATCH * cls * 16;
    }
    pthread_mutex_unlock(&sys->rec_lock);
    if (b != NULL) {
        w->recs.head[cls] = b;
        w->recs.n[cls] = REC_BATCH;
    }
}

// Moves REC_BATCH of w's records of class `cls` to the depot, or to
// malloc when the depot is full.
static void
rec_spill(tp__worker *w, unsigned cls)
{
    rec_free *b = w->recs.head[cls], *last = b;
    for (unsigned i = 1; i < REC_BATCH; i++)
        last = last->next;
    w->recs.head[cls] = last->next;
    w->recs.n[cls] -= REC_BATCH;
    last->next = NULL;
    tp_system *sys = w->sys;
    size_t bytes = (size_t)REC_BATCH * cls * 16;
    pthread_mutex_lock(&sys->rec_lock);
    bool kept = sys->rec_depot_bytes + bytes <= REC_DEPOT;
    if (kept) {
        b->next_batch = sys->rec_depot[cls];
        sys->rec_depot[cls] = b;
        sys->rec_depot_bytes += bytes;
    }
    pthread_mutex_unlock(&sys->rec_lock);
    while (!kept && b != NULL) {
        rec_free *next = b->next;
        free(b);
        b = next;
    }
}

// Returns a zeroed record of at least `size` bytes, its class noted; from
// this worker's list (its own, no lock) when the thread is a worker.
tp_actor *
tp__rec_alloc(size_t size)
{
    size_t r = ((size + 7) & ~(size_t)15) + 8; // the next 16k + 8
    unsigned cls = (unsigned)(r / 16);
    tp__worker *w = tp__self.worker;
    rec_free *f = NULL;
    if (cls >= TP__REC_CLASSES) {
        cls = 0;
    } else if (REC_CACHE && w != NULL) {
        if (w->recs.head[cls] == NULL)
            rec_refill(w, cls);
        if ((f = w->recs.head[cls]) != NULL) {
            w->recs.head[cls] = f->next;
            w->recs.n[cls]--;
        }
    }
    tp_actor *a = (tp_actor *)f;
    if (a == NULL && (a = malloc(r)) == NULL)
        return NULL;
    memset(a, 0, size);
    a->rec_class = (uint8_t)cls;
    return a;
}

// On the thread that frees `a`: a worker of a's system keeps it (its own
// list, no lock; the depot under rec_lock); any other thread, or a record
// too large for a class, gives it back to malloc.
void
tp__rec_free(tp_actor *a)
{
    tp__worker *w = tp__self.worker;
    unsigned cls = a->rec_class;
    if (!REC_CACHE || w == NULL || w->sys != a->system || cls == 0) {
        free(a);
        return;
    }
    rec_free *f = (rec_free *)a;
    f->next = w->recs.head[cls];
    w->recs.head[cls] = f;
    if (++w->recs.n[cls] > REC_KEEP)
        rec_spill(w, cls);
}

static void
rec_list_free(rec_free *f)
{
    while (f != NULL) {
        rec_free *next = f->next;
        free(f);
        f = next;
    }
}

// Frees the records `w` keeps; no scheduler thread runs.
void
tp__recs_free_all(tp__worker *w)
{
    for (unsigned i = 0; i < TP__REC_CLASSES; i++) {
        rec_list_free(w->recs.head[i]);
        w->recs.head[i] = NULL;
        w->recs.n[i] = 0;
    }
}

// Frees the depot's records; no thread of the system runs.
void
tp__rec_depot_free(tp_system *sys)
{
    for (unsigned i = 0; i < TP__REC_CLASSES; i++) {
        rec_free *b = sys->rec_depot[i];
        while (b != NULL) {
            rec_free *nb = b->next_batch;
            rec_list_free(b);
            b = nb;
        }
        sys->rec_depot[i] = NULL;
    }
    sys->rec_depot_bytes = 0;
}

static tp_actor *
actor_new(tp_system *sys, const tp_behaviour *b, const tp_spawn_opts *o)
{
    unsigned tails = (sys->cfg.cpu_time ? TP__TAIL_CLOCK : 0) |
                     (o && o->dedicated ? TP__TAIL_DED : 0) |
                     (o && o->restarts ? TP__TAIL_RESTARTS : 0);
    size_t size = TP__HEAD + ((b->state_size + 7) & ~(size_t)7) +
                  tp__tail_below(tails, TP__TAIL_END);
    tp_actor *a = tp__rec_alloc(size);
    if (a == NULL)
        return NULL;
    a->tails = (uint8_t)tails;
    tp__mpscq_init(&a->user);
    tp__mpscq_init(&a->sys);
    // The init hold: nobody schedules the actor before init has finished.
    atomic_init(&a->count, TP__CNT_ONE);
    a->system = sys;
    a->behaviour = b;
    a->capacity = o && o->mailbox_capacity ? o->mailbox_capacity
                                           : sys->cfg.mailbox_capacity;
    a->overflow = o && o->overflow ? o->overflow : sys->cfg.overflow;
    if (tails & TP__TAIL_RESTARTS)
        *(uint32_t *)tp__tail(a, TP__TAIL_RESTARTS) = o->restarts;
    if (tp__self.actor != NULL && tp__self.actor->system == sys)
        a->parent = tp__self.actor->pid;
    a->born_ms = tp__now_coarse_ms();
    return a;
}

static int
run_init(tp_actor *a, void *arg)
{
    if (a->behaviour->init == NULL)
        return 0;
    jmp_buf jb;
    volatile int r;
    tp__tls saved = tp__self;
    tp__self.actor = a;
    tp__self.jb = &jb;
    if (setjmp(jb) == 0) {
        r = a->behaviour->init(ctx_of(a), tp__state(a), arg);
    } else {
        tp__report_fault(a);
        r = tp__self.fail_reason;
    }
    tp__self = saved;
    return r;
}

int
tp_spawn(tp_system *sys, const tp_behaviour *b, void *arg,
         const tp_spawn_opts *opts, tp_pid *out)
{
    int rc = check_spawn(sys, b, opts);
    if (rc != 0)
        return rc;
    tp_actor *a = actor_new(sys, b, opts);
    if (a == NULL)
        return TP_ENOMEM;
    if (opts != NULL && opts->dedicated && (rc = tp__ded_start(a)) != 0) {
        tp__actor_free(a);
        return rc;
    }
    uint32_t slot, gen;
    if ((rc = tp__slot_alloc(sys, &slot, &gen)) != 0) {
        tp__actor_free(a);
        return rc;
    }
    a->pid = tp_pid_make(0, slot, gen);
    tp_actor *parent = opts && opts->link ? tp__self.actor : NULL;
    if (parent != NULL && (rc = sys->up->link_spawned(parent, a)) != 0) {
        tp__slot_release(sys, slot);
        tp__actor_free(a);
        return rc;
    }
    // Published before its name, so a pid found by name is reachable.
    tp__slot_publish(sys, slot, a);
    if (opts != NULL && opts->name != NULL &&
        (rc = tp__reg_insert(a, opts->name)) != 0) {
        if (parent != NULL)
            sys->up->unlink_spawned(parent, a);
        tp__bury(a, rc);
        return rc;
    }
    if (__builtin_expect(sys->test != NULL, 0) &&
        tp__test_init_fails(sys, b)) {
        tp__crash_report(a, TP_ECRASH, "init failed: tp_test_fail_init");
        rc = TP_ECRASH;
    } else {
        rc = run_init(a, arg);
    }
    if (rc != 0 || a->stopping) {
        // What those linked to it or monitoring it are told, as of any
        // exit: init's error or the fault caught in it (a reason),
        // tp_stop_reason's reason, normal when it declined or stopped (as
        // OTP's ignore and {stop, normal}), TP_EINIT for any other value.
        int why = rc < 0 || tp__reason_is_fault(rc)  ? rc
                  : a->stopping                      ? a->stop_reason
                  : rc == TP_IGNORE || rc == TP_STOP ? TP_REASON_NORMAL
                                                     : TP_EINIT;
        rc = rc < 0                            ? rc
             : rc == TP_IGNORE && !a->stopping ? TP_EIGNORED
                                               : TP_EINIT;
        // The spawner learns of the failure from the return value, not
        // from a signal.
        if (parent != NULL)
            sys->up->unlink_spawned(parent, a);
        tp__release_owned(a);
        if (a->ext != NULL)
            sys->up->notify_exit(a, why);
        tp__bury(a, why);
        return rc;
    }
    a->started = 1;
    tp_actor *by = tp__self.actor;
    if (by != NULL && by->system == sys && tp__traced(by, TP_TRACE_LIFE))
        tp__trace_spawn(by, a);
    // relaxed: counters; tp_system_wait reads `live` under wait_lock.
    atomic_fetch_add_explicit(&sys->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sys->spawned, 1, memory_order_relaxed);
    // acq_rel: drops the init hold; messages that arrived meanwhile make us
    // the one to schedule the actor.
    uint64_t old = atomic_fetch_sub_explicit(&a->count, TP__CNT_ONE,
                                             memory_order_acq_rel);
    TP_ASSERT(TP__CNT_TOTAL(old) >= 1); // the init hold, dropped once
    if (TP__CNT_TOTAL(old) > 1)
        tp__sched_schedule(sys, a);
    if (out != NULL)
        *out = a->pid;
    return 0;
}

// ---- context ---------------------------------------------------------------

tp_pid
tp_self(tp_ctx *ctx)
{
    return ctx ? ((tp_actor *)ctx)->pid : TP_PID_NIL;
}

tp_pid
tp_sender(tp_ctx *ctx)
{
    tp_actor *a = (tp_actor *)ctx;
    if (a == NULL || tp__self.actor != a || a->current == NULL)
        return TP_PID_NIL;
    return a->current->pub.from;
}

tp_system *
tp_ctx_system(tp_ctx *ctx)
{
    return ctx ? ((tp_actor *)ctx)->system : NULL;
}

const tp_behaviour *
tp_ctx_behaviour(tp_ctx *ctx)
{
    return ctx ? ((tp_actor *)ctx)->behaviour : NULL;
}

void *
tp_ctx_state(tp_ctx *ctx)
{
    return ctx ? tp__user_state((tp_actor *)ctx) : NULL;
}

int
tp_stop(tp_ctx *ctx)
{
    return tp_stop_reason(ctx, TP_REASON_NORMAL);
}

int
tp_stop_reason(tp_ctx *ctx, int reason)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0 && !tp__reason_ok(reason))
        rc = TP_EINVAL;
    if (rc == 0) {
        ((tp_actor *)ctx)->stopping = 1;
        ((tp_actor *)ctx)->stop_reason = reason;
    }
    return rc;
}

int
tp_fail(tp_ctx *ctx, int reason, const char *fmt, ...)
{
    if (ctx == NULL || reason >= 0)
        return TP_EINVAL;
    tp_actor *a = (tp_actor *)ctx;
    if (tp__self.actor != a || tp__self.jb == NULL)
        return TP_EPERM;
    char text[512] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    tp__crash_report(a, reason, text);
    if (fmt != NULL)
        a->system->up->exit_text(a, text);
    tp__self.fail_reason = reason;
    longjmp(*tp__self.jb, 1);
}

int
tp_actor_stats_get(tp_system *sys, tp_pid pid, tp_actor_stats *out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *a = tp__actor_lookup(sys, pid);
    if (a != NULL) {
        memset(out, 0, sizeof *out);
        out->behaviour = a->behaviour->name;
        tp__reg_name(a, out->name);
        out->capacity = a->capacity;
        out->overflow = (tp_overflow)a->overflow;
        // relaxed: statistics.
        uint64_t c = atomic_load_explicit(&a->count, memory_order_relaxed);
        out->length = TP__CNT_USERS(c);
        out->high_water =
            atomic_load_explicit(&a->high_water, memory_order_relaxed);
        out->dropped = atomic_load_explicit(&a->dropped, memory_order_relaxed);
        out->rejected =
            atomic_load_explicit(&a->rejected, memory_order_relaxed);
        out->handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
        out->muted = atomic_load_explicit(&a->mute, memory_order_relaxed) != 0;
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return a ? 0 : TP_ENOACTOR;
}
