// SPDX-License-Identifier: MIT
// Actors: spawning, the activation that drains a mailbox in batches, exit
// and burial. An actor is owned by whoever moved its mailbox counter from 0
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
#include "core/core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTINUE INT_MIN // process(): keep the actor alive

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

// Routes `m` to remote pid `to`: TP_ENOACTOR while no node was started.
static int
route_remote(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m, int mode)
{
    // acquire: pairs with tp__dist_hooks_install's release store.
    const tp__dist_ops *d =
        atomic_load_explicit(&sys->dist, memory_order_acquire);
    return d != NULL ? d->route(sys, self, to, m, mode) : TP_ENOACTOR;
}

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

// ---- backpressure ---------------------------------------------------------

static void
mute_lock(tp_actor *a)
{
    // acquire: the critical section sees the previous holder's writes.
    while (atomic_exchange_explicit(&a->mute_lock, 1, memory_order_acquire))
        while (atomic_load_explicit(&a->mute_lock, memory_order_relaxed))
            tp__cpu_relax();
}

static void
mute_unlock(tp_actor *a)
{
    // release: publishes the critical section to the next holder.
    atomic_store_explicit(&a->mute_lock, 0, memory_order_release);
}

// Lets `s` run again; if it had already parked, schedules it.
static void
unmute(tp_actor *s)
{
    // acq_rel: whoever sees PARKED owns the actor and must schedule it.
    if (atomic_exchange_explicit(&s->mute, TP__MUTE_NONE,
                                 memory_order_acq_rel) == TP__MUTE_PARKED)
        tp__sched_pin(s->system, s);
}

// Releases every sender muted on `r`.
static void
unmute_all(tp_actor *r)
{
    mute_lock(r);
    tp_actor *s = atomic_load_explicit(&r->mute_list, memory_order_relaxed);
    atomic_store_explicit(&r->mute_list, NULL, memory_order_relaxed);
    while (s != NULL) {
        tp_actor *next = s->mute_next;
        atomic_store_explicit(&s->mute_target, NULL, memory_order_relaxed);
        atomic_store_explicit(&s->listed, 0, memory_order_release);
        unmute(s);
        s = next;
    }
    mute_unlock(r);
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

// Mutes the running actor `s` after it filled `r`'s mailbox: once its
// current callback returns it is not scheduled again until `r` drains
// below its low-water mark.
static void
maybe_mute(tp_actor *s, tp_actor *r)
{
    // relaxed: each is a hint re-checked under the lock or harmless: a
    // muted receiver cannot drain, so muting on it could deadlock a cycle.
    if (s == r || !s->started ||
        atomic_load_explicit(&s->mute, memory_order_relaxed) != 0 ||
        // acquire: pairs with unmute_all's release, so its reads of our
        // links are done before we reuse them.
        atomic_load_explicit(&s->listed, memory_order_acquire) ||
        atomic_load_explicit(&r->mute, memory_order_relaxed) != 0)
        return;
    mute_lock(r);
    if (atomic_load_explicit(&r->dead, memory_order_relaxed)) {
        mute_unlock(r);
        return;
    }
    s->mute_next = atomic_load_explicit(&r->mute_list, memory_order_relaxed);
    // seq_cst: pairs with the receiver's seq_cst counter update and list
    // check in finish(): either it sees us listed or we see it drained.
    atomic_store_explicit(&r->mute_list, s, memory_order_seq_cst);
    atomic_store_explicit(&s->mute_target, r, memory_order_relaxed);
    atomic_store_explicit(&s->listed, 1, memory_order_relaxed);
    // seq_cst: see keep_muted.
    atomic_store_explicit(&s->mute, TP__MUTE_PENDING, memory_order_seq_cst);
    uint64_t c = atomic_load_explicit(&r->count, memory_order_seq_cst);
    if (TP__CNT_USERS(c) < r->low_water) {
        atomic_store_explicit(&r->mute_list, s->mute_next,
                              memory_order_relaxed);
        atomic_store_explicit(&s->mute_target, NULL, memory_order_relaxed);
        atomic_store_explicit(&s->listed, 0, memory_order_relaxed);
        atomic_store_explicit(&s->mute, TP__MUTE_NONE, memory_order_relaxed);
    }
    mute_unlock(r);
}

static bool on_own_worker(tp_system *sys);

// Takes `s` off its receiver's list when it dies while still listed.
static void
unlist(tp_actor *s)
{
    if (!atomic_load_explicit(&s->listed, memory_order_acquire))
        return;
    // Outside the pool (a dedicated actor's thread) the receiver's memory
    // is kept by ext_lock, not by the epochs: a receiver freed before we
    // took it cleared mute_target first.
    bool ext = !on_own_worker(s->system);
    if (ext)
        pthread_rwlock_rdlock(&s->system->ext_lock);
    // relaxed: only valid during the activation that muted us, when the
    // receiver's memory is still protected; the lock settles the rest.
    tp_actor *r = atomic_load_explicit(&s->mute_target, memory_order_relaxed);
    if (r != NULL) {
        mute_lock(r);
        if (atomic_load_explicit(&s->listed, memory_order_relaxed)) {
            tp_actor *p =
                atomic_load_explicit(&r->mute_list, memory_order_relaxed);
            if (p == s) {
                atomic_store_explicit(&r->mute_list, s->mute_next,
                                      memory_order_relaxed);
            } else {
                while (p != NULL && p->mute_next != s)
                    p = p->mute_next;
                if (p != NULL)
                    p->mute_next = s->mute_next;
            }
            atomic_store_explicit(&s->listed, 0, memory_order_relaxed);
        }
        mute_unlock(r);
    }
    if (ext)
        pthread_rwlock_unlock(&s->system->ext_lock);
    atomic_store_explicit(&s->mute, TP__MUTE_NONE, memory_order_relaxed);
}

// Whether the actor muted in this activation should stay muted: not when
// its receiver is itself muted, since a muted receiver cannot drain (two
// actors filling each other's mailboxes would otherwise both park forever).
static bool
keep_muted(tp_actor *a)
{
    bool ext = !on_own_worker(a->system); // as in unlist
    if (ext)
        pthread_rwlock_rdlock(&a->system->ext_lock);
    tp_actor *r = atomic_load_explicit(&a->mute_target, memory_order_relaxed);
    // seq_cst: pairs with the receiver's own mute store; of two actors
    // muting on each other, at least one sees the other muted.
    bool keep =
        r == NULL ||
        atomic_load_explicit(&r->mute, memory_order_seq_cst) == TP__MUTE_NONE;
    if (ext)
        pthread_rwlock_unlock(&a->system->ext_lock);
    if (!keep)
        unlist(a);
    return keep;
}

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
    while (len > hw && !atomic_compare_exchange_weak_explicit(
                           &r->high_water, &hw, len, memory_order_relaxed,
                           memory_order_relaxed))
        ;
}

// Schedules `r` after its counter left zero; a peer's send queue wakes the
// I/O thread instead.
static inline void
schedule(tp_actor *r)
{
    tp_system *sys = r->system;
    // relaxed: a proxy is reached only through its spawn, published after
    // the node installed its hooks; for any other actor the compare fails
    // whatever value is read.
    if (__builtin_expect(r->behaviour == atomic_load_explicit(
                                             &sys->proxy_behaviour,
                                             memory_order_relaxed),
                         0))
        dist_ops(sys)->kick(r);
    else
        tp__sched_schedule(sys, r);
}

static void
push_reserved(tp_actor *r, tp__msg *m, uint64_t old)
{
    tp__mpscq_push(&r->user, &m->node);
    note_high_water(r, TP__CNT_USERS(old) + 1);
    if (TP__CNT_TOTAL(old) == 0)
        schedule(r);
}

// Queues a signal or a runtime request, never refused and never counted
// against the capacity. Signals an actor causes go behind what their
// sender queued before them (tp__msg_ordered); the rest jump the queue.
static void
push_system(tp_actor *r, tp__msg *m)
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
        schedule(r);
}

static void
count_drop(tp_actor *r)
{
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
        atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        return TP_EFULL;
    case TP_OVERFLOW_DROP_OLDEST:
        // Accept now; the receiver discards its oldest message before it
        // handles the next one. Past twice the capacity drop the newest,
        // so memory stays bounded while the receiver is not running.
        if (reserve(r, r->capacity * 2, &old)) {
            atomic_fetch_add_explicit(&r->drop_debt, 1, memory_order_relaxed);
            push_reserved(r, m, old);
            return 0;
        }
        // fall through
    case TP_OVERFLOW_DROP_NEWEST:
        count_drop(r);
        tp__msg_free(m);
        return 0;
    case TP_OVERFLOW_EXIT_RECEIVER:
        count_drop(r);
        tp__msg_free(m);
        // acq_rel: only the first overflowing sender sends the kill.
        if (!atomic_exchange_explicit(&r->overflow_kill, 1,
                                      memory_order_acq_rel)) {
            tp__msg *k = tp__msg_new_sys(r->system, TP__MSG_OVERFLOW_KILL,
                                         sender ? sender->pid : TP_PID_NIL);
            if (k != NULL)
                push_system(r, k);
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
            atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
            maybe_mute(sender, r);
            return TP_EFULL;
        }
        sender->overshoot++;
        push_reserved(r, m, old);
        maybe_mute(sender, r);
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
        maybe_mute(sender, r);
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
        push_system(p, m);
        return 0;
    case TP__ROUTE_FORCE:
        if (!reserve(p, UINT32_MAX - 1, &old))
            return TP_EFULL;
        push_reserved(p, m, old);
        return 0;
    case TP__ROUTE_NOWAIT:
        rc = mailbox_put(p, NULL, m);
        if (rc == TP__EWAIT || rc == TP_EFULL) {
            count_drop(p);
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
    uint32_t left_user = TP__CNT_USERS(old) - users;
    if (left_user < p->low_water &&
        atomic_load_explicit(&p->mute_list, memory_order_seq_cst) != NULL)
        unmute_all(p);
    return TP__CNT_TOTAL(old) - total;
}

// Frees everything queued in both lanes, counting dead letters. With
// `answer`, link and monitor requests still queued are answered as if they
// had come after the exit with `reason`.
static void
drain(tp_actor *a, bool answer, int reason)
{
    tp__msg *m;
    uint64_t lost = 0;
    while ((m = tp__mailbox_pop(&a->sys)) != NULL) {
        if (answer)
            a->system->up->answer_late(a, m, reason);
        tp__msg_retire(m);
    }
    while ((m = tp__mailbox_pop(&a->user)) != NULL) {
        if (m->kind != TP__MSG_USER) {
            if (answer)
                a->system->up->answer_late(a, m, reason);
        } else {
            lost++;
        }
        tp__msg_retire(m);
    }
    if (lost)
        atomic_fetch_add_explicit(&a->system->dead_letters, lost,
                                  memory_order_relaxed);
}

// ---- logging crashes -------------------------------------------------------

// Logs one line: who crashed, why, the message being handled and the
// actor's own description of its state.
static void
crash_report(tp_actor *a, int reason, const char *text)
{
    char pid[TP_PID_STRLEN], from[TP_PID_STRLEN], why[64], msg[64];
    char state[TP_DESCRIBE_MAX + 1] = "";
    tp_pid_format(a->pid, pid, sizeof pid);
    tp_reason_format(reason, why, sizeof why);
    if (a->current != NULL) {
        tp_pid_format(a->current->pub.from, from, sizeof from);
        snprintf(msg, sizeof msg, "msg_tag=%u msg_from=%s",
                 (unsigned)a->current->pub.tag, from);
    } else {
        snprintf(msg, sizeof msg, "msg=none");
    }
    if (a->behaviour->describe != NULL && a->state != NULL)
        a->behaviour->describe(a->state, state, sizeof state);
    char name[TP_NAME_MAX + 1];
    tp__reg_name(a, name);
    tp__log(a->system, TP_LOG_ERR,
            "crash actor=%s behaviour=%s name=%s reason=%s %s%s%s%s%s%s%s",
            pid, a->behaviour->name ? a->behaviour->name : "?",
            name[0] ? name : "-", why, msg, text ? " text=\"" : "",
            text ? text : "", text ? "\"" : "", state[0] ? " state=\"" : "",
            state, state[0] ? "\"" : "");
}

// Logs the crash report of a native fault caught in one of a's callbacks.
static void
report_fault(tp_actor *a)
{
    if (tp__self.fault_sig == 0)
        return;
    char text[768];
    int n = snprintf(text, sizeof text, "backtrace: ");
    tp__fault_backtrace(text + n, sizeof text - (size_t)n);
    crash_report(a, TP_REASON_SIGNAL + tp__self.fault_sig, text);
    tp__self.fault_sig = 0;
}

// ---- exit and burial -------------------------------------------------------

// Releases what `a` owns before anyone hears of its exit: its name (as in
// Erlang), its sockets, closed here rather than later by the I/O thread,
// and the timers it set for itself, so a supervisor can restart it under
// the same name and on the same port at once. tp__notify_exit drops its
// monitors and request timers before the signals go out.
static void
release_owned(tp_actor *a)
{
    tp__reg_drop(a);
    // seq_cst: pairs with mark_owner's store of the mark (sock.c).
    if (atomic_load_explicit(&a->socks, memory_order_seq_cst))
        a->system->up->sock_owner_died(a);
    if (a->ext != NULL)
        a->system->up->timers_owner_died(a);
}

// Makes `a` unreachable and releases what it holds, except its memory,
// which waits for a grace period in limbo. Callers have released its name
// and timers (release_owned) first, or it never had them; its sockets are
// looked at again for one given to it while it was dying.
static void
bury(tp_actor *a, int reason)
{
    tp_system *sys = a->system;
    tp__slot_clear(sys, tp_pid_slot(a->pid));
    // seq_cst: after the slot is cleared, so maybe_mute and lookups that
    // still find the actor see it dead.
    atomic_store_explicit(&a->dead, 1, memory_order_seq_cst);
    // seq_cst: pairs with tp_sock_give's mark and load of `dead`.
    if (atomic_load_explicit(&a->socks, memory_order_seq_cst))
        a->system->up->sock_owner_died(a);
    unmute_all(a);
    unlist(a);
    drain(a, true, reason);
    tp__slot_release(sys, tp_pid_slot(a->pid));
    tp__limbo_add(sys, a);
}

static void
run_terminate(tp_actor *a, int reason)
{
    if (!a->started || a->behaviour->terminate == NULL)
        return;
    jmp_buf jb;
    tp__tls saved = tp__self;
    tp__self.actor = a;
    tp__self.jb = &jb;
    a->current = NULL;
    if (setjmp(jb) == 0)
        a->behaviour->terminate(ctx_of(a), a->state, reason);
    else
        report_fault(a);
    tp__self = saved;
}

// Frees or retires the message `a` was handling.
static void
done_with_current(tp_actor *a)
{
    tp__msg *m = (tp__msg *)a->current;
    a->current = NULL;
    if (m == NULL)
        return;
    if (m->flags & TP__MSG_LOOSE)
        tp__msg_free(m);
    else
        tp__msg_retire(m);
}

static void
actor_exit(tp_actor *a, int reason, bool reported)
{
    tp_system *sys = a->system;
    // Actors that die of a signal did not crash themselves: no report, as
    // in Erlang, or one crash would be logged once per linked actor.
    if (reason != TP_REASON_NORMAL && reason != TP_REASON_SHUTDOWN &&
        !reported && !a->by_signal)
        crash_report(a, reason, NULL);
    done_with_current(a);
    run_terminate(a, reason);
    release_owned(a);
    if (a->ext != NULL)
        sys->up->notify_exit(a, reason);
    bury(a, reason);
    atomic_fetch_add_explicit(&sys->exited, 1, memory_order_relaxed);
    if (reason < 0 || reason == TP_REASON_KILL || reason == TP_REASON_KILLED ||
        reason == TP_REASON_MAILBOX_OVERFLOW || reason > TP_REASON_SIGNAL)
        atomic_fetch_add_explicit(&sys->crashed, 1, memory_order_relaxed);
    tp__live_dec(sys);
}

void
tp__actor_free(tp_actor *a)
{
    // Messages pushed by senders that raced with the death; at system
    // destruction (no workers) nobody is left to answer.
    drain(a,
          a->system->started && !atomic_load_explicit(&a->system->stop_workers,
                                                      memory_order_relaxed),
          TP_REASON_NOPROC);
    if (a->ext != NULL)
        a->system->up->ext_free(a);
    tp__ded_release(a); // ends and joins its thread, if it has one
    tp__mailbox_close(&a->sys);
    tp__mailbox_close(&a->user);
    free(a->name);
    free(a);
}

// Terminates an actor at system destruction; no scheduler thread runs.
void
tp__actor_shutdown(tp_actor *a)
{
    run_terminate(a, TP_REASON_SHUTDOWN);
    tp_system *sys = a->system;
    if (a->ext != NULL)
        sys->up->timers_owner_died(a);
    tp__reg_drop(a);
    tp__slot_clear(sys, tp_pid_slot(a->pid));
    atomic_store_explicit(&a->dead, 1, memory_order_relaxed);
    drain(a, false, 0);
    atomic_fetch_add_explicit(&sys->exited, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sys->live, 1, memory_order_relaxed);
    tp__actor_free(a);
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

// Applies one system-lane message; exit signals and DOWN messages may
// reach `handle`. Returns CONTINUE or an exit reason.
static int
handle_system(tp_actor *a, tp__msg *m)
{
    if (m->kind == TP__MSG_OVERFLOW_KILL) {
        tp__msg_retire(m);
        return TP_REASON_MAILBOX_OVERFLOW;
    }
    if (m->kind == TP__MSG_INFO) {
        a->system->up->info_answer(a, m);
        tp__msg_retire(m);
        return CONTINUE;
    }
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
    r = handle_result(a, a->behaviour->handle(ctx_of(a), a->state, &d->pub));
    if (r != CONTINUE)
        return r; // actor_exit frees the message
    done_with_current(a);
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
        if (m->flags & TP__MSG_FORCED)
            // relaxed: a bound (see tp__deliver_reply).
            atomic_fetch_sub_explicit(&a->req_forced, 1,
                                      memory_order_relaxed);
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
    tp__count(&a->handled, w->done_user);
    tp__count(&w->messages, w->done_user);
    uint32_t left_user = TP__CNT_USERS(old) - w->done_user;
    w->done_user = 0;
    w->done_total = 1;
    if (left_user < a->low_water) {
        if (atomic_load_explicit(&a->mute_list, memory_order_seq_cst) != NULL)
            unmute_all(a);
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

// Handles up to one batch of messages. Returns CONTINUE or an exit reason.
static int
process(tp__worker *w, tp_actor *a)
{
    unsigned budget = a->system->cfg.batch;
    for (;;) {
        tp__msg *m;
        while ((m = tp__mailbox_pop(&a->sys)) != NULL) {
            w->done_total++;
            int r = handle_system(a, m);
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
            atomic_fetch_sub_explicit(&a->drop_debt, 1, memory_order_relaxed);
            count_drop(a);
            tp__msg_retire(m);
            if (w->done_user >= a->settle_every)
                settle(w, a);
            continue;
        }
        if (__builtin_expect(m->flags & (TP__MSG_TIMER | TP__MSG_REPLY), 0) &&
            !wanted(a, m)) {
            tp__msg_retire(m);
            continue;
        }
        budget--;
        a->current = m;
        int r = a->behaviour->handle(ctx_of(a), a->state, &m->pub);
        r = handle_result(a, r);
        if (r != CONTINUE)
            return r; // actor_exit reports and frees the message
        a->current = NULL;
        tp__msg_retire(m);
        if (w->done_user >= a->settle_every)
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
    bool muting = atomic_load_explicit(&a->mute, memory_order_seq_cst) ==
                      TP__MUTE_PENDING &&
                  keep_muted(a);
    uint64_t total = (uint64_t)w->done_total + a->hold - (muting ? 1 : 0);
    a->hold = muting ? 1 : 0;
    uint64_t sub = ((uint64_t)w->done_user << 32) + total;
    // seq_cst: pairs with maybe_mute's seq_cst list store and count load.
    uint64_t old =
        atomic_fetch_sub_explicit(&a->count, sub, memory_order_seq_cst);
    uint32_t left_total = TP__CNT_TOTAL(old) - (uint32_t)total;
    uint32_t left_user = TP__CNT_USERS(old) - w->done_user;
    tp__count(&a->handled, w->done_user);
    tp__count(&w->messages, w->done_user);
    if (left_user < a->low_water) {
        if (atomic_load_explicit(&a->mute_list, memory_order_seq_cst) != NULL)
            unmute_all(a);
        io_unwait(a);
    }
    if (muting) {
        uint32_t expect = TP__MUTE_PENDING;
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

// Adds the activation that began at `t0` to the actor's run time.
static void
account(tp_actor *a, uint64_t t0)
{
    uint64_t t1 = tp__ticks();
    // relaxed: only the actor's activation writes these two; snapshots
    // read them for display and tolerate seeing one updated before the
    // other (an activation counted twice for an instant). An activation
    // that migrated between CPUs whose counters disagree adds nothing.
    if (t1 > t0)
        atomic_store_explicit(
            &a->ran,
            atomic_load_explicit(&a->ran, memory_order_relaxed) + (t1 - t0),
            memory_order_relaxed);
    atomic_store_explicit(&a->running_since, 0, memory_order_relaxed);
}

void
tp__actor_run(tp__worker *w, tp_actor *a)
{
    jmp_buf jb;
    int reason;
    tp__self.actor = a;
    tp__self.jb = &jb;
    w->done_user = 0;
    w->done_total = 0;
    a->overshoot = 0;
    tp__count(&w->activations, 1);
    if (setjmp(jb) != 0) {
        // tp_fail logged its crash report; a caught fault has not yet.
        report_fault(a);
        tp__self.actor = NULL;
        tp__self.jb = NULL;
        tp__count(&w->messages, w->done_user);
        // relaxed: as in account(); a dead actor's clock stops.
        atomic_store_explicit(&a->running_since, 0, memory_order_relaxed);
        actor_exit(a, tp__self.fail_reason, true);
        return;
    }
    bool timed = a->system->cfg.cpu_time;
    uint64_t t0 = 0;
    if (timed) {
        t0 = tp__ticks();
        // relaxed: as in account().
        atomic_store_explicit(&a->running_since, t0, memory_order_relaxed);
    }
    reason = process(w, a);
    tp__self.actor = NULL;
    tp__self.jb = NULL;
    if (reason == CONTINUE) {
        if (timed)
            account(a, t0);
        finish(w, a);
    } else {
        // relaxed: as in account(); a dead actor's clock stops.
        atomic_store_explicit(&a->running_since, 0, memory_order_relaxed);
        tp__count(&w->messages, w->done_user);
        actor_exit(a, reason, false);
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
    }
    if (atomic_load_explicit(&sys->shutting_down, memory_order_acquire))
        return TP_ESHUTDOWN;
    return 0;
}

static tp_actor *
actor_new(tp_system *sys, const tp_behaviour *b, const tp_spawn_opts *o)
{
    size_t head = (sizeof(tp_actor) + 15) & ~(size_t)15;
    size_t size = head + b->state_size;
    tp_actor *a = malloc(size);
    if (a == NULL)
        return NULL;
    memset(a, 0, size);
    a->name = NULL;
    if (o != NULL && o->name != NULL && (a->name = strdup(o->name)) == NULL) {
        free(a);
        return NULL;
    }
    tp__mpscq_init(&a->user);
    tp__mpscq_init(&a->sys);
    // The init hold: nobody schedules the actor before init has finished.
    atomic_init(&a->count, TP__CNT_ONE);
    a->system = sys;
    a->behaviour = b;
    a->state = b->state_size ? (char *)a + head : NULL;
    a->capacity = o && o->mailbox_capacity ? o->mailbox_capacity
                                           : sys->cfg.mailbox_capacity;
    a->low_water = a->capacity / 2 ? a->capacity / 2 : 1;
    a->settle_every = a->capacity / 4 ? a->capacity / 4 : 1;
    a->overflow = o && o->overflow ? o->overflow : sys->cfg.overflow;
    a->restarts = o ? o->restarts : 0;
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
        r = a->behaviour->init(ctx_of(a), a->state, arg);
    } else {
        report_fault(a);
        r = tp__self.fail_reason;
    }
    tp__self = saved;
    return r;
}

int
tp_spawn(tp_system *sys, tp_pid *out, const tp_behaviour *b, void *arg,
         const tp_spawn_opts *opts)
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
    if (a->name != NULL && (rc = tp__reg_insert(sys, a->name, a->pid)) != 0) {
        if (parent != NULL)
            sys->up->unlink_spawned(parent, a);
        bury(a, rc);
        return rc;
    }
    rc = run_init(a, arg);
    if (rc == 0 && a->stopping)
        rc = TP_EINIT;
    if (rc != 0) {
        rc = rc < 0                            ? rc
             : rc == TP_IGNORE && !a->stopping ? TP_EIGNORED
                                               : TP_EINIT;
        // The spawner learns of the failure from the return value, not
        // from a signal; others init linked to or monitored are told.
        if (parent != NULL)
            sys->up->unlink_spawned(parent, a);
        release_owned(a);
        if (a->ext != NULL)
            sys->up->notify_exit(a, rc);
        bury(a, rc);
        return rc;
    }
    a->started = 1;
    atomic_fetch_add_explicit(&sys->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sys->spawned, 1, memory_order_relaxed);
    // acq_rel: drops the init hold; messages that arrived meanwhile make us
    // the one to schedule the actor.
    uint64_t old = atomic_fetch_sub_explicit(&a->count, TP__CNT_ONE,
                                             memory_order_acq_rel);
    if (TP__CNT_TOTAL(old) > 1)
        tp__sched_schedule(sys, a);
    if (out != NULL)
        *out = a->pid;
    return 0;
}

// ---- sending ---------------------------------------------------------------

static bool
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
    return self != NULL && atomic_load_explicit(&self->dead,
                                                memory_order_relaxed);
}

// Pushes system message `m` to `to`, from any thread. Consumes `m` on
// success; TP_ENOACTOR when `to` is not alive.
int
tp__push_sys(tp_system *sys, tp_pid to, tp__msg *m)
{
    tp_actor *self = tp__self.actor;
    if (__builtin_expect(killed(self), 0) && tp_pid_eq(m->pub.from, self->pid)) {
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
        push_system(r, m);
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return r ? 0 : TP_ENOACTOR;
}

// Delivers `m` from actor `self` (or NULL). Consumes `m` on success.
static int
deliver(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
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
        count_drop(r);
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
int
tp__deliver_reply(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m)
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
                     &r->req_forced, &forced, forced + 1,
                     memory_order_relaxed, memory_order_relaxed)))
            ;
        if (credit && reserve(r, UINT32_MAX - 1, &old)) {
            m->flags |= TP__MSG_FORCED;
            push_reserved(r, m, old);
            rc = 0;
        } else {
            if (credit) // a counter at its limit: give the credit back
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
        // seq_cst: as in bury(): lookups after this see it dead.
        atomic_store_explicit(&r->dead, 1, memory_order_seq_cst);
        tp__reg_drop(r);
        // A muted actor is not scheduled by the kill's push: let it run,
        // so that its death is announced without waiting for a drain.
        unmute(r);
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
        tp__mpscq_push_chain(&r->user, &first->node, &last->node);
        note_high_water(r, TP__CNT_USERS(old) + n);
        if (TP__CNT_TOTAL(old) == 0)
            schedule(r);
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
        uint64_t c = atomic_load_explicit(&r->count, memory_order_seq_cst);
        now = TP__CNT_USERS(c) < r->low_water;
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

// Delivers from a thread outside the system, waiting on BACKPRESSURE.
static int
system_send(tp_system *sys, tp_pid to, tp__msg *m)
{
    int timeout = sys->cfg.send_timeout_ms;
    int64_t deadline = timeout < 0 ? INT64_MAX : tp__now_ms() + timeout;
    for (unsigned round = 0;; round++) {
        int rc = deliver(sys, NULL, to, m);
        if (rc != TP__EWAIT)
            return rc;
        if (tp__now_ms() >= deadline)
            return TP_ETIMEDOUT;
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

int
tp_stop(tp_ctx *ctx)
{
    return tp_stop_reason(ctx, TP_REASON_NORMAL);
}

int
tp_stop_reason(tp_ctx *ctx, int reason)
{
    int rc = tp__check_ctx(ctx);
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
    crash_report(a, reason, text);
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
