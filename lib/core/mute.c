// SPDX-License-Identifier: MIT
// Backpressure: an actor that sends to a full BACKPRESSURE mailbox is
// muted (it finishes its activation, then waits off the run queues) and
// listed on the receiver, which unmutes its senders once it drains below
// its low-water mark. A receiver's list is guarded by its mute_lock; the
// sender's `mute` state decides who schedules it again, exactly once.
#include "core/actor.h"

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
void
tp__unmute(tp_actor *s)
{
    // acq_rel: whoever sees PARKED owns the actor and must schedule it.
    if (atomic_exchange_explicit(&s->mute, TP__MUTE_NONE,
                                 memory_order_acq_rel) == TP__MUTE_PARKED)
        tp__sched_pin(s->system, s);
}

// Releases every sender muted on `r`.
void
tp__unmute_all(tp_actor *r)
{
    mute_lock(r);
    // relaxed: the list and its links are guarded by mute_lock, whose
    // acquire and release order them; they are atomics only because
    // maybe_mute's lock-free first look reads them.
    tp_actor *s = atomic_load_explicit(&r->mute_list, memory_order_relaxed);
    atomic_store_explicit(&r->mute_list, NULL, memory_order_relaxed);
    while (s != NULL) {
        tp_actor *next = s->mute_next;
        // relaxed: read only under this lock, or by s itself while listed.
        atomic_store_explicit(&s->mute_target, NULL, memory_order_relaxed);
        // release: s may list itself again once it sees 0 (maybe_mute's
        // acquire), after our read of its mute_next above.
        atomic_store_explicit(&s->listed, 0, memory_order_release);
        tp__unmute(s);
        s = next;
    }
    mute_unlock(r);
}

// Mutes the running actor `s` after it filled `r`'s mailbox: once its
// current callback returns it is not scheduled again until `r` drains
// below its low-water mark.
void
tp__maybe_mute(tp_actor *s, tp_actor *r)
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
    // relaxed: the dying receiver empties its list under this lock after
    // setting `dead` (tp__bury: dead, then unmute_all), so either we see it
    // dead or it sees us listed.
    if (atomic_load_explicit(&r->dead, memory_order_relaxed)) {
        mute_unlock(r);
        return;
    }
    // relaxed: guarded by mute_lock (see tp__unmute_all).
    s->mute_next = atomic_load_explicit(&r->mute_list, memory_order_relaxed);
    // seq_cst: pairs with the receiver's seq_cst counter update and list
    // check in finish(): either it sees us listed or we see it drained.
    atomic_store_explicit(&r->mute_list, s, memory_order_seq_cst);
    // relaxed: both guarded by mute_lock; s reads them on its own thread.
    atomic_store_explicit(&s->mute_target, r, memory_order_relaxed);
    atomic_store_explicit(&s->listed, 1, memory_order_relaxed);
    // seq_cst: see keep_muted.
    atomic_store_explicit(&s->mute, TP__MUTE_PENDING, memory_order_seq_cst);
    // seq_cst: the other half of the list store's pairing with finish().
    uint64_t c = atomic_load_explicit(&r->count, memory_order_seq_cst);
    if (TP__CNT_USERS(c) < tp__low_water(r)) {
        // relaxed: undoing our own stores under the same lock; `mute` is
        // read by s itself, on this thread.
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
void
tp__unlist(tp_actor *s)
{
    // acquire: pairs with unmute_all's release: unlisted, and done with us.
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
        // relaxed: all three are guarded by the lock we hold.
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
    // relaxed: s is dying on this thread; nobody schedules it from here on.
    atomic_store_explicit(&s->mute, TP__MUTE_NONE, memory_order_relaxed);
}

// Whether the actor muted in this activation should stay muted: not when
// its receiver is itself muted, since a muted receiver cannot drain (two
// actors filling each other's mailboxes would otherwise both park forever).
bool
tp__keep_muted(tp_actor *a)
{
    bool ext = !on_own_worker(a->system); // as in unlist
    if (ext)
        pthread_rwlock_rdlock(&a->system->ext_lock);
    // relaxed: as in unlist.
    tp_actor *r = atomic_load_explicit(&a->mute_target, memory_order_relaxed);
    // seq_cst: pairs with the receiver's own mute store; of two actors
    // muting on each other, at least one sees the other muted.
    bool keep =
        r == NULL ||
        atomic_load_explicit(&r->mute, memory_order_seq_cst) == TP__MUTE_NONE;
    if (ext)
        pthread_rwlock_unlock(&a->system->ext_lock);
    if (!keep)
        tp__unlist(a);
    return keep;
}
