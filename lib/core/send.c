// SPDX-License-Identifier: MIT
// Sending: reserving room in a mailbox, pushing into its lanes and
// scheduling the receiver when the push made it runnable (exactly one
// sender does), the overflow policies, the delivery variants the other
// subsystems use (tp__deliver*, tp__push_sys, from the I/O thread), peers'
// proxy queues, and the public send calls. A remote pid goes to the
// distribution layer through its hooks (route_remote).
#include "core/actor.h"

#include <string.h>
#include <time.h>

// ---- putting messages in mailboxes -----------------------------------------

// Reserves a place in `r`'s user lane unless it already holds `limit`
// messages. Returns true with the counter's previous value in *old.
static bool
reserve(tp_actor *r, uint32_t limit, uint64_t *old)
{
    // relaxed: the CAS below validates the value.
    uint64_t c = atomic_load_explicit(&r->count, memory_order_relaxed);
    do {
        if (TP__CNT_USERS(c) >= limit)
            return false;
        // acq_rel: the release half publishes our reservation before the
        // push; the acquire half orders us after the consumer's update.
    } while (!atomic_compare_exchange_weak_explicit(
        &r->count, &c, c + TP__CNT_USER + TP__CNT_ONE, memory_order_acq_rel,
        memory_order_relaxed));
    *old = c;
    return true;
}

// As reserve, for `n` places at once, all or none.
static bool
reserve_n(tp_actor *r, uint32_t limit, uint32_t n, uint64_t *old)
{
    // relaxed: the CAS below validates the value.
    uint64_t c = atomic_load_explicit(&r->count, memory_order_relaxed);
    do {
        if (TP__CNT_USERS(c) > limit || limit - TP__CNT_USERS(c) < n)
            return false;
        // acq_rel: as in reserve().
    } while (!atomic_compare_exchange_weak_explicit(
        &r->count, &c, c + n * (TP__CNT_USER + TP__CNT_ONE),
        memory_order_acq_rel, memory_order_relaxed));
    *old = c;
    return true;
}

static void
note_high_water(tp_actor *r, uint32_t len)
{
    // relaxed: a statistic; the CAS only keeps the maximum.
    uint32_t hw = atomic_load_explicit(&r->high_water, memory_order_relaxed);
    // relaxed: as above, both orders.
    while (len > hw && !atomic_compare_exchange_weak_explicit(
                           &r->high_water, &hw, len, memory_order_relaxed,
                           memory_order_relaxed))
        ;
}

// The enqueue stamp of a message to measuring actor `r`: one message in
// the system's wait_sample on average is timed, the gaps between two drawn
// at random per sending thread, from 1 to 2 * wait_sample - 1 (random, not
// fixed: a sender that goes round a fixed set of receivers must not time
// the same one every time). Between two, a message costs a decrement; the
// rest carry 0 and cost nothing at the receiver.
static inline uint32_t
wait_stamp(const tp_actor *r)
{
    if (__builtin_expect(tp__self.wait_left > 1, 1)) {
        tp__self.wait_left--;
        return 0;
    }
    uint32_t every = (uint32_t)r->system->cfg.wait_sample;
    uint32_t x = tp__self.wait_rng;
    if (x == 0) // this thread's first draw
        x = (uint32_t)(uintptr_t)&tp__self * 2654435761u | 1;
    x ^= x << 13; // xorshift32
    x ^= x >> 17;
    x ^= x << 5;
    tp__self.wait_rng = x;
    tp__self.wait_left = 1 + x % (2 * every - 1);
    return tp__wait_stamp();
}

// The enqueue stamp of a message to `r`: every one to a receiver traced
// for what it receives, one in wait_sample to one that measures, else 0.
static inline uint32_t
enq_stamp(const tp_actor *r)
{
    if (tp__traced(r, TP_TRACE_RECEIVED))
        return tp__wait_stamp();
    return (r->tails & TP__TAIL_CLOCK) ? wait_stamp(r) : 0;
}

static void
push_reserved(tp_actor *r, tp__msg *m, uint64_t old)
{
    m->enq = enq_stamp(r);
    tp__mpscq_push(&r->user, &m->node);
    note_high_water(r, TP__CNT_USERS(old) + 1);
    if (TP__CNT_TOTAL(old) == 0)
        tp__actor_schedule(r);
}

// Queues a signal or a runtime request, never refused and never counted
// against the capacity. Signals an actor causes go behind what their
// sender queued before them (tp__msg_ordered); the rest jump the queue.
void
tp__push_system(tp_actor *r, tp__msg *m)
{
    // acq_rel: as in reserve(); neither lane has a capacity for these.
    uint64_t old = atomic_fetch_add_explicit(&r->count, TP__CNT_ONE,
                                             memory_order_acq_rel);
    bool ordered = tp__msg_ordered(m);
    // Read before the push: from then on the receiver may free `m`.
    bool may_kill =
        ordered && m->kind == TP__MSG_EXIT &&
        ((const tp__signal *)m->pub.data)->reason != TP_REASON_NORMAL;
    tp__mpscq_push(ordered ? &r->user : &r->sys, &m->node);
    if (may_kill)
        // release: after the push, so whoever sees the count finds the
        // signal linked in the lane (exit_queued).
        atomic_fetch_add_explicit(&r->exits_pushed, 1, memory_order_release);
    if (TP__CNT_TOTAL(old) == 0)
        tp__actor_schedule(r);
}

void
tp__count_drop(tp_actor *r)
{
    // relaxed: statistics.
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->system->dead_letters, 1,
                              memory_order_relaxed);
}

// Handles a send to a full user lane according to r's policy.
static int
overflow(tp_actor *r, tp_actor *sender, tp__msg *m)
{
    uint64_t old;
    switch (r->overflow) {
    case TP_OVERFLOW_REJECT:
        // relaxed: a statistic.
        atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        return TP_EFULL;
    case TP_OVERFLOW_DROP_OLDEST:
        // Accept now; the receiver discards its oldest message before it
        // handles the next one. Past twice the capacity drop the newest,
        // so memory stays bounded while the receiver is not running.
        if (reserve(r, r->capacity * 2, &old)) {
            // relaxed: the receiver reads the debt after the push that follows
            // (its count went up first), and acts on it only then.
            atomic_fetch_add_explicit(&r->drop_debt, 1, memory_order_relaxed);
            push_reserved(r, m, old);
            return 0;
        }
        // fall through
    case TP_OVERFLOW_DROP_NEWEST:
        tp__count_drop(r);
        tp__msg_free(m);
        return 0;
    case TP_OVERFLOW_EXIT_RECEIVER:
        tp__count_drop(r);
        tp__msg_free(m);
        // acq_rel: only the first overflowing sender sends the kill.
        if (!(atomic_fetch_or_explicit(&r->latch, TP__LATCH_KILL,
                                       memory_order_acq_rel) &
              TP__LATCH_KILL)) {
            tp__msg *k = tp__msg_new_sys(r->system, TP__MSG_OVERFLOW_KILL,
                                         sender ? sender->pid : TP_PID_NIL);
            if (k != NULL)
                tp__push_system(r, k);
        }
        return 0;
    default: // BACKPRESSURE
        if (sender == NULL)
            return TP__EWAIT;
        // An actor's message is accepted and the actor muted. The bound
        // is the sender's own, so that any number of senders each get
        // their first message through: one activation (or init) may put
        // up to a capacity's worth into full mailboxes, then is refused.
        if (sender->overshoot >= r->capacity ||
            !reserve(r, UINT32_MAX - 1, &old)) {
            // relaxed: a statistic.
            atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
            tp__maybe_mute(sender, r);
            return TP_EFULL;
        }
        sender->overshoot++;
        push_reserved(r, m, old);
        tp__maybe_mute(sender, r);
        return 0;
    }
}

// Puts `m` into r's user lane. Returns 0 when the message was consumed
// (queued or discarded by policy), else an error and the caller keeps `m`.
static int
mailbox_put(tp_actor *r, tp_actor *sender, tp__msg *m)
{
    uint64_t old;
    if (!reserve(r, r->capacity, &old))
        return overflow(r, sender, m);
    push_reserved(r, m, old);
    if (r->overflow == TP_OVERFLOW_BACKPRESSURE && sender != NULL &&
        TP__CNT_USERS(old) + 1 >= r->capacity)
        tp__maybe_mute(sender, r);
    return 0;
}

// ---- peers' send queues (node.c) -------------------------------------------

int
tp__proxy_put(tp_actor *p, tp_actor *sender, tp__msg *m, int mode)
{
    uint64_t old;
    int rc;
    switch (mode) {
    case TP__ROUTE_SYS:
        tp__push_system(p, m);
        return 0;
    case TP__ROUTE_FORCE:
        if (!reserve(p, UINT32_MAX - 1, &old))
            return TP_EFULL;
        push_reserved(p, m, old);
        return 0;
    case TP__ROUTE_NOWAIT:
        rc = mailbox_put(p, NULL, m);
        if (rc == TP__EWAIT || rc == TP_EFULL) {
            tp__count_drop(p);
            tp__msg_free(m);
            rc = 0;
        }
        return rc;
    default:
        return mailbox_put(p, sender, m);
    }
}

// Gives back the counts of frames the I/O thread took from a peer's queue
// and releases muted senders once it is below half. Returns what is left.
uint32_t
tp__proxy_settle(tp_actor *p, uint32_t users, uint32_t total)
{
    uint64_t sub = ((uint64_t)users << 32) + total;
    // seq_cst: as in finish().
    uint64_t old =
        atomic_fetch_sub_explicit(&p->count, sub, memory_order_seq_cst);
    // Never negative: the I/O thread gives back only frames it took.
    TP_ASSERT(TP__CNT_TOTAL(old) >= total && TP__CNT_USERS(old) >= users);
    uint32_t left_user = TP__CNT_USERS(old) - users;
    if (tp__below_low_water(p, left_user) &&
        // seq_cst: as in finish().
        atomic_load_explicit(&p->mute_list, memory_order_seq_cst) != NULL)
        tp__unmute_all(p);
    return TP__CNT_TOTAL(old) - total;
}
// Routes `m` to remote pid `to`: TP_ENOACTOR while no node was started.
static int
route_remote(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m, int mode)
{
    // acquire: pairs with tp__dist_hooks_install's release store.
    const tp__dist_ops *d =
        atomic_load_explicit(&sys->dist, memory_order_acquire);
    return d != NULL ? d->route(sys, self, to, m, mode) : TP_ENOACTOR;
}

// ---- sending ---------------------------------------------------------------

// Pushes system message `m` to `to`, from any thread. Consumes `m` on
// success; TP_ENOACTOR when `to` is not alive.
int
tp__push_sys(tp_system *sys, tp_pid to, tp__msg *m)
{
    tp_actor *self = tp__self.actor;
    if (__builtin_expect(killed(self), 0) &&
        tp_pid_eq(m->pub.from, self->pid)) {
        tp__msg_free(m);
        return 0;
    }
    if (tp_pid_node(to) != 0)
        return route_remote(sys, NULL, to, m, TP__ROUTE_SYS);
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    if (r != NULL)
        tp__push_system(r, m);
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return r ? 0 : TP_ENOACTOR;
}

// Delivers `m` from actor `self` (or NULL). Consumes `m` on success.
// Inlined where it is called, so that deliver costs one test more.
static inline __attribute__((always_inline)) int
deliver_now(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    if (__builtin_expect(killed(self), 0)) {
        tp__msg_free(m);
        return 0;
    }
    if (__builtin_expect(tp_pid_node(to) != 0, 0))
        return route_remote(sys, self, to, m, TP__ROUTE_NORMAL);
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    int rc = r ? mailbox_put(r, self, m) : TP_ENOACTOR;
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

// Calls `how` to deliver `m`, unless a test drops or holds it, and records
// what `self`, traced for what it sends, sent (the message may be gone by
// then). Out of line, so that the
// untraced path does not pay for its frame.
static __attribute__((noinline, cold)) int
deliver_traced(int (*how)(tp_system *, tp_actor *, tp_pid, tp__msg *),
               tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    uint32_t tag = m->pub.tag;
    size_t size = m->pub.size;
    int rc =
        tp__marked(self, TP__MARK_FAULT) && tp__test_intercept(self, to, m)
            ? 0 // dropped or held by a test: sent, as far as it knows
            : how(sys, self, to, m);
    if (tp__traced(self, TP_TRACE_SENT))
        tp__trace_sent(self, to, tag, size, rc);
    return rc;
}

// Whether `self`, an actor sending, is traced for what it sends or has
// faults a test injected.
#define SEND_MARKED(self)                                                     \
    ((self) != NULL &&                                                        \
     tp__marked(self,                                                         \
                TP_TRACE_SENT << TP__MARK_TRACE_SHIFT | TP__MARK_FAULT))

static int
deliver(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    if (SEND_MARKED(self))
        return deliver_traced(deliver_now, sys, self, to, m);
    return deliver_now(sys, self, to, m);
}

int
tp__deliver(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    return deliver(sys, self, to, m);
}

// Delivers for a sender that cannot wait (the timer thread): where a
// thread would wait or be refused, the message is dropped and counted.
int
tp__deliver_nowait(tp_system *sys, tp_pid to, tp__msg *m)
{
    if (tp_pid_node(to) != 0)
        return route_remote(sys, NULL, to, m, TP__ROUTE_NOWAIT);
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    int rc = r ? mailbox_put(r, NULL, m) : TP_ENOACTOR;
    if (rc == TP__EWAIT || rc == TP_EFULL) {
        // A REJECT mailbox counted it as rejected; a BACKPRESSURE one,
        // where a thread would wait, did not: it is dropped.
        if (rc == TP__EWAIT)
            tp__count_drop(r);
        tp__msg_free(m);
        rc = 0;
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

// Delivers past the capacity (replies, which the receiver asked for and
// which are bounded by its pending requests).
int
tp__deliver_force(tp_system *sys, tp_pid to, tp__msg *m)
{
    if (tp_pid_node(to) != 0)
        return route_remote(sys, NULL, to, m, TP__ROUTE_FORCE);
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    uint64_t old;
    if (r != NULL && reserve(r, UINT32_MAX - 1, &old))
        push_reserved(r, m, old);
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return r ? 0 : TP_ENOACTOR;
}

// Delivers reply `m` from actor `self` (or, with NULL, from a peer on the
// I/O thread). A reply passes a full mailbox only while its receiver has
// requests pending that no reply has yet been let through for; otherwise
// it is an ordinary message, so nobody can grow a mailbox without bound
// by calling what they send replies. Consumes `m` on success.
static int deliver_reply(tp_system *sys, tp_actor *self, tp_pid to,
                         tp__msg *m);

int
tp__deliver_reply(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    if (SEND_MARKED(self))
        return deliver_traced(deliver_reply, sys, self, to, m);
    return deliver_reply(sys, self, to, m);
}

static int
deliver_reply(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
{
    if (__builtin_expect(killed(self), 0)) {
        tp__msg_free(m);
        return 0;
    }
    if (tp_pid_node(to) != 0)
        return route_remote(sys, self, to, m, TP__ROUTE_FORCE);
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    int rc = TP_ENOACTOR;
    if (r != NULL) {
        // relaxed: a bound, not a synchronisation; the CAS keeps the
        // replies let through at most the requests seen pending.
        uint32_t pending =
            atomic_load_explicit(&r->req_pending, memory_order_relaxed);
        uint32_t forced =
            atomic_load_explicit(&r->req_forced, memory_order_relaxed);
        uint64_t old;
        bool credit = false;
        while (forced < pending &&
               !(credit = atomic_compare_exchange_weak_explicit(
                     &r->req_forced, &forced, forced + 1, memory_order_relaxed,
                     memory_order_relaxed)))
            ;
        if (credit && reserve(r, UINT32_MAX - 1, &old)) {
            m->flags |= TP__MSG_FORCED;
            push_reserved(r, m, old);
            rc = 0;
        } else {
            if (credit) // a counter at its limit: give the credit back
                // relaxed: as above.
                atomic_fetch_sub_explicit(&r->req_forced, 1,
                                          memory_order_relaxed);
            rc = mailbox_put(r, self, m);
        }
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

// Makes actor `pid`, killed with TP_REASON_KILL, unreachable at once even
// while one of its callbacks runs: lookups and sends find it dead, its
// name is free, and what it sends from now on is discarded. Its kill
// signal, already queued, ends it when the callback returns. Any thread.
void
tp__actor_kill_now(tp_system *sys, tp_pid pid)
{
    if (tp_pid_node(pid) != 0)
        return;
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, pid);
    if (r != NULL) {
        // seq_cst: as in tp__bury(): lookups after this see it dead.
        atomic_store_explicit(&r->dead, 1, memory_order_seq_cst);
        tp__reg_drop(r);
        // A muted actor is not scheduled by the kill's push: let it run,
        // so that its death is announced without waiting for a drain.
        tp__unmute(r);
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
}

// Delivers a message that arrived from a peer, on the I/O thread: where a
// thread would wait (a full BACKPRESSURE mailbox) returns TP__EWAIT and the
// caller keeps `m`; refusals and drops follow the receiver's policy.
int
tp__deliver_io(tp_system *sys, tp_pid to, tp__msg *m)
{
    pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    int rc = r ? mailbox_put(r, NULL, m) : TP_ENOACTOR;
    pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

// Delivers `n` user messages from a peer, linked first to last through
// their queue nodes, on the I/O thread: one lookup, one reservation and
// one push for all of them, as n sends that each found room would have.
// Returns 0 when the chain was consumed; TP_EFULL when they do not all fit
// below the capacity, or TP_ENOACTOR, and the caller keeps the chain.
int
tp__deliver_io_chain(tp_system *sys, tp_pid to, tp__msg *first, tp__msg *last,
                     uint32_t n)
{
    pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    uint64_t old;
    int rc = r == NULL                            ? TP_ENOACTOR
             : reserve_n(r, r->capacity, n, &old) ? 0
                                                  : TP_EFULL;
    if (rc == 0) {
        for (tp__msg *m = first;; m = (tp__msg *)atomic_load_explicit(
                                      &m->node.next, memory_order_relaxed)) {
            m->enq = enq_stamp(r);
            if (m == last)
                break;
        }
        tp__mpscq_push_chain(&r->user, &first->node, &last->node);
        note_high_water(r, TP__CNT_USERS(old) + n);
        if (TP__CNT_TOTAL(old) == 0)
            tp__actor_schedule(r);
    }
    pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

// On the I/O thread, after a delivery to `to` returned TP__EWAIT: asks the
// actor to call tp__node_unstall once it has drained below its low-water
// mark. Returns true when it already has (or is gone): retry at once.
bool
tp__io_wait_room(tp_system *sys, tp_pid to)
{
    pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *r = tp__actor_lookup(sys, to);
    bool now = true;
    if (r != NULL) {
        // seq_cst: see io_unwait.
        atomic_store_explicit(&r->io_waiting, 1, memory_order_seq_cst);
        // seq_cst: the other half of the pairing with io_unwait.
        uint64_t c = atomic_load_explicit(&r->count, memory_order_seq_cst);
        now = TP__CNT_USERS(c) < tp__low_water(r);
    }
    pthread_rwlock_unlock(&sys->ext_lock);
    return now;
}

static int
actor_send(tp_ctx *ctx, tp_pid to, tp__msg *m)
{
    tp_actor *a = (tp_actor *)ctx;
    return deliver(a->system, a, to, m);
}

static void
backoff(unsigned round)
{
    if (round < 16) {
        sched_yield();
        return;
    }
    unsigned us = round < 64 ? 20 : 200;
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

typedef struct send_try {
    tp_system *sys;
    tp_pid to;
    tp__msg *m;
    int rc;
} send_try;

static bool
send_tried(void *arg)
{
    send_try *t = arg;
    t->rc = deliver(t->sys, NULL, t->to, t->m);
    return t->rc != TP__EWAIT;
}

// Delivers from a thread outside the system, waiting on BACKPRESSURE.
static int
system_send(tp_system *sys, tp_pid to, tp__msg *m)
{
    int timeout = sys->cfg.send_timeout_ms;
    if (sys->test != NULL) {
        // A test system makes room only when its test runs its actors
        // (and, in a net, carries what waits for a peer); the timeout is
        // virtual time.
        send_try t = {sys, to, m, TP__EWAIT};
        tp__test_drive(sys, send_tried, &t, timeout);
        return t.rc == TP__EWAIT ? TP_ETIMEDOUT : t.rc;
    }
    int64_t deadline = timeout < 0 ? INT64_MAX : tp__now_ms() + timeout;
    for (unsigned round = 0;; round++) {
        int rc = deliver(sys, NULL, to, m);
        if (rc != TP__EWAIT)
            return rc;
        if (tp__now_ms() >= deadline)
            return TP_ETIMEDOUT;
        // acquire: pairs with tp_system_destroy's release store.
        if (atomic_load_explicit(&sys->shutting_down, memory_order_acquire))
            return TP_ESHUTDOWN;
        backoff(round);
    }
}

int
tp_send(tp_ctx *ctx, tp_pid to, uint32_t tag, const void *data, size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    tp_actor *self = (tp_actor *)ctx;
    tp__msg *m = tp__msg_new_copy(self->system, tag, self->pid, data, size);
    if (m == NULL)
        return TP_ENOMEM;
    if ((rc = actor_send(ctx, to, m)) != 0)
        tp__msg_free(m);
    return rc;
}

// Frees a message that failed to send without freeing the caller's buffer.
static void
give_back(tp__msg *m)
{
    m->flags &= (uint16_t)~TP__MSG_OWNS_BUF;
    tp__msg_free(m);
}

int
tp_send_buf(tp_ctx *ctx, tp_pid to, uint32_t tag, void *buf, size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, buf, size);
    if (rc != 0)
        return rc;
    tp_actor *self = (tp_actor *)ctx;
    tp__msg *m = tp__msg_new_buf(self->system, tag, self->pid, buf, size);
    if (m == NULL)
        return TP_ENOMEM;
    if ((rc = actor_send(ctx, to, m)) != 0)
        give_back(m);
    return rc;
}

static int
check_system_send(tp_system *sys, uint32_t tag, const void *data, size_t size)
{
    if (sys == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    return tp__check_payload(tag, data, size);
}

int
tp_system_send(tp_system *sys, tp_pid to, uint32_t tag, const void *data,
               size_t size)
{
    int rc = check_system_send(sys, tag, data, size);
    if (rc != 0)
        return rc;
    tp__msg *m = tp__msg_new_copy(sys, tag, TP_PID_NIL, data, size);
    if (m == NULL)
        return TP_ENOMEM;
    if ((rc = system_send(sys, to, m)) != 0)
        tp__msg_free(m);
    return rc;
}

int
tp_system_send_buf(tp_system *sys, tp_pid to, uint32_t tag, void *buf,
                   size_t size)
{
    int rc = check_system_send(sys, tag, buf, size);
    if (rc != 0)
        return rc;
    tp__msg *m = tp__msg_new_buf(sys, tag, TP_PID_NIL, buf, size);
    if (m == NULL)
        return TP_ENOMEM;
    if ((rc = system_send(sys, to, m)) != 0)
        give_back(m);
    return rc;
}

int
tp_send_name(tp_ctx *ctx, const char *name, uint32_t tag, const void *data,
             size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_pid to;
    if ((rc = tp_whereis(((tp_actor *)ctx)->system, name, &to)) != 0)
        return rc;
    return tp_send(ctx, to, tag, data, size);
}

int
tp_system_send_name(tp_system *sys, const char *name, uint32_t tag,
                    const void *data, size_t size)
{
    tp_pid to;
    int rc = check_system_send(sys, tag, data, size);
    if (rc == 0)
        rc = tp_whereis(sys, name, &to);
    return rc != 0 ? rc : tp_system_send(sys, to, tag, data, size);
}
