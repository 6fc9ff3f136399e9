// SPDX-License-Identifier: MIT
// The system: configuration, the actor table (slots with generations, so a
// stale pid never matches a reused slot), and the lifetime calls (start,
// wait, stop, destroy, statistics). The name registry is in registry.c.
//
// It is also the composition root, the one core file that includes the
// headers of the subsystems above the core (test/layout.sh allows it by
// name): creating and destroying a system creates and destroys every
// subsystem in order, and it hands the rest of the core the table of hooks
// (tp__up_ops) through which the core reaches signals, io and observe.
#include "core/core.h"
#include "dist/dist.h"
#include "io/io.h"
#include "cluster/cluster.h"
#include "observe/observe.h"
#include "signals/signals.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CAPACITY 1024
#define DEFAULT_WAIT_SAMPLE 64 // messages per timed wait, on average
#define DEFAULT_BATCH 64
#define DEFAULT_SEND_TIMEOUT_MS 5000

// ---- configuration -----------------------------------------------------

static int
config_fill(tp_config *c, const tp_config *in)
{
    if (in != NULL)
        *c = *in;
    else
        memset(c, 0, sizeof *c);
    if (c->threads > 1024 || c->mailbox_capacity > (1u << 30) ||
        (unsigned)c->overflow > TP_OVERFLOW_EXIT_RECEIVER ||
        c->batch > 65536 || c->send_timeout_ms < -1 || c->stall_ms < -1 ||
        c->wait_sample < 0 || c->wait_sample > 65536)
        return TP_EINVAL;
    if (c->wait_sample == 0)
        c->wait_sample = DEFAULT_WAIT_SAMPLE;
    if (c->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->threads = n > 0 ? (n > 1024 ? 1024 : (unsigned)n) : 1;
    }
    if (c->mailbox_capacity == 0)
        c->mailbox_capacity = DEFAULT_CAPACITY;
    if (c->overflow == TP_OVERFLOW_DEFAULT)
        c->overflow = TP_OVERFLOW_BACKPRESSURE;
    if (c->batch == 0)
        c->batch = DEFAULT_BATCH;
    if (c->send_timeout_ms == 0)
        c->send_timeout_ms = DEFAULT_SEND_TIMEOUT_MS;
    return 0;
}

// ---- the actor table -------------------------------------------------------

// Takes a never-used slot, creating its chunk when needed. Holds slot_lock.
static int
slot_fresh(tp_system *sys, uint32_t *slot)
{
    if (sys->slot_next >= TP__SLOT_MAX)
        return TP_EAGAIN;
    uint32_t s = sys->slot_next, ci = s >> TP__SLOT_CHUNK_BITS;
    if (atomic_load_explicit(&sys->chunks[ci], memory_order_relaxed) == NULL) {
        tp__slot_chunk *c = calloc(1, sizeof *c);
        if (c == NULL)
            return TP_ENOMEM;
        for (uint32_t i = 0; i < TP__SLOT_CHUNK; i++)
            c->gen[i] = 1; // generation 0 never names an actor
        // release: lookups see a zeroed chunk.
        atomic_store_explicit(&sys->chunks[ci], c, memory_order_release);
    }
    sys->slot_next++;
    *slot = s;
    return 0;
}

// Moves up to `n` free slots from the shared list into w's cache, or takes
// one fresh slot when the shared list is empty. Holds slot_lock.
static int
slot_refill(tp_system *sys, tp__worker *w, unsigned n)
{
    while (n-- > 0 && sys->slot_free_len > 0)
        w->slots[w->nslots++] = sys->slot_free[--sys->slot_free_len];
    if (w->nslots > 0)
        return 0;
    uint32_t s;
    int rc = slot_fresh(sys, &s);
    if (rc == 0)
        w->slots[w->nslots++] = s;
    return rc;
}

static uint32_t *
slot_gen(tp_system *sys, uint32_t slot)
{
    tp__slot_chunk *c = atomic_load_explicit(
        &sys->chunks[slot >> TP__SLOT_CHUNK_BITS], memory_order_relaxed);
    return &c->gen[slot & (TP__SLOT_CHUNK - 1)];
}

// Picks a free slot and its current generation. Scheduler threads use a
// private cache of slots, so spawning and dying rarely share a lock.
int
tp__slot_alloc(tp_system *sys, uint32_t *slot, uint32_t *gen)
{
    tp__worker *w = tp__self.worker;
    int rc = 0;
    if (w != NULL && w->sys == sys) {
        if (w->nslots == 0) {
            pthread_mutex_lock(&sys->slot_lock);
            rc = slot_refill(sys, w, TP__SLOT_CACHE / 2);
            pthread_mutex_unlock(&sys->slot_lock);
            if (rc != 0)
                return rc;
        }
        *slot = w->slots[--w->nslots];
        *gen = *slot_gen(sys, *slot); // the cache's slots are ours alone
        return 0;
    }
    pthread_mutex_lock(&sys->slot_lock);
    if (sys->slot_free_len > 0)
        *slot = sys->slot_free[--sys->slot_free_len];
    else
        rc = slot_fresh(sys, slot);
    if (rc == 0)
        *gen = *slot_gen(sys, *slot);
    pthread_mutex_unlock(&sys->slot_lock);
    return rc;
}

static _Atomic(tp_actor *) *
slot_ref(tp_system *sys, uint32_t slot)
{
    tp__slot_chunk *c = atomic_load_explicit(
        &sys->chunks[slot >> TP__SLOT_CHUNK_BITS], memory_order_acquire);
    return &c->actor[slot & (TP__SLOT_CHUNK - 1)];
}

// Also numbers the actor among the system's spawns (modulo 2^16): with
// born_ms, its place in spawn order for introspection, in two bytes that
// were padding.
void
tp__slot_publish(tp_system *sys, uint32_t slot, tp_actor *a)
{
    // relaxed: only increasing numbers are needed; the store below
    // publishes this one with the actor.
    a->spawn_seq = (uint16_t)atomic_fetch_add_explicit(&sys->spawn_seq, 1,
                                                       memory_order_relaxed);
    // seq_cst: see tp__actor_lookup.
    atomic_store_explicit(slot_ref(sys, slot), a, memory_order_seq_cst);
}

void
tp__slot_clear(tp_system *sys, uint32_t slot)
{
    // seq_cst: see tp__limbo_add; burial orders the epoch read after this.
    atomic_store_explicit(slot_ref(sys, slot), NULL, memory_order_seq_cst);
}

// Holds slot_lock. Losing a slot when memory runs out beats failing a death.
static void
slot_free_push(tp_system *sys, uint32_t slot)
{
    if (sys->slot_free_len == sys->slot_free_cap) {
        size_t cap = sys->slot_free_cap ? sys->slot_free_cap * 2 : 1024;
        uint32_t *p = realloc(sys->slot_free, cap * sizeof *p);
        if (p == NULL)
            return;
        sys->slot_free = p;
        sys->slot_free_cap = cap;
    }
    sys->slot_free[sys->slot_free_len++] = slot;
}

// Returns a cleared slot with its generation advanced, to this worker's
// cache when there is one, else to the shared list.
void
tp__slot_release(tp_system *sys, uint32_t slot)
{
    tp__worker *w = tp__self.worker;
    bool cached = w != NULL && w->sys == sys;
    if (!cached)
        pthread_mutex_lock(&sys->slot_lock);
    uint32_t *g = slot_gen(sys, slot);
    *g = (*g + 1) & 0xffffffu;
    if (*g == 0)
        *g = 1;
    if (!cached) {
        slot_free_push(sys, slot);
        pthread_mutex_unlock(&sys->slot_lock);
        return;
    }
    if (w->nslots == TP__SLOT_CACHE) {
        pthread_mutex_lock(&sys->slot_lock);
        while (w->nslots > TP__SLOT_CACHE / 2)
            slot_free_push(sys, w->slots[--w->nslots]);
        pthread_mutex_unlock(&sys->slot_lock);
    }
    w->slots[w->nslots++] = slot;
}

// ---- lifetime --------------------------------------------------------------

void
tp__live_dec(tp_system *sys)
{
    // acq_rel: the last exit wakes waiters after everything it did.
    if (atomic_fetch_sub_explicit(&sys->live, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&sys->wait_lock);
        pthread_cond_broadcast(&sys->wait_cond);
        pthread_mutex_unlock(&sys->wait_lock);
    }
}

static void
system_free(tp_system *sys)
{
    for (unsigned i = 0; i < TP__SLOT_CHUNKS; i++)
        free(atomic_load_explicit(&sys->chunks[i], memory_order_relaxed));
    free(sys->slot_free);
    tp__reg_free(sys);
    pthread_mutex_destroy(&sys->inject_lock);
    pthread_mutex_destroy(&sys->idle_lock);
    pthread_mutex_destroy(&sys->limbo_lock);
    pthread_mutex_destroy(&sys->slot_lock);
    pthread_mutex_destroy(&sys->reg_lock);
    pthread_mutex_destroy(&sys->wait_lock);
    pthread_cond_destroy(&sys->wait_cond);
    pthread_rwlock_destroy(&sys->ext_lock);
    pthread_mutex_destroy(&sys->io_init_lock);
    pthread_mutex_destroy(&sys->ded_lock);
    pthread_mutex_destroy(&sys->wait_rows_lock);
    pthread_mutex_destroy(&sys->trace_lock);
    pthread_mutex_destroy(&sys->upgrade_lock);
    pthread_mutex_destroy(&sys->shim_lock);
    pthread_cond_destroy(&sys->trace_cond);
    free(sys->wait_shared);
    tp__rec_depot_free(sys);
    pthread_mutex_destroy(&sys->rec_lock);
    free(sys->workers);
    free(sys);
}

// Initialises the system's locks and condition variable. Each call is
// checked: a failure (out of memory or of some other resource) destroys
// what was made before it and returns the positive errno.
static int
locks_init(tp_system *sys)
{
    pthread_mutex_t *mx[] = {
        &sys->inject_lock,    &sys->idle_lock,  &sys->limbo_lock,
        &sys->slot_lock,      &sys->reg_lock,   &sys->wait_lock,
        &sys->io_init_lock,   &sys->ded_lock,   &sys->rec_lock,
        &sys->wait_rows_lock, &sys->trace_lock, &sys->upgrade_lock,
        &sys->shim_lock};
    size_t n = 0;
    int rc = 0;
    while (rc == 0 && n < sizeof mx / sizeof mx[0])
        if ((rc = pthread_mutex_init(mx[n], NULL)) == 0)
            n++;
    if (rc == 0 && (rc = -tp__cond_init(&sys->wait_cond)) == 0) {
        if ((rc = -tp__cond_init(&sys->trace_cond)) != 0)
            pthread_cond_destroy(&sys->wait_cond);
        else if ((rc = pthread_rwlock_init(&sys->ext_lock, NULL)) != 0) {
            pthread_cond_destroy(&sys->trace_cond);
            pthread_cond_destroy(&sys->wait_cond);
        }
    }
    if (rc != 0)
        while (n > 0)
            pthread_mutex_destroy(mx[--n]);
    return rc;
}

// The hooks the core calls upward (core.h): the same table for every
// system. The distribution layer installs its own (tp__dist_ops) when a
// node starts.
static const tp__up_ops up_ops = {
    .link_spawned = tp__link_spawned,
    .unlink_spawned = tp__unlink_spawned,
    .system_signal = tp__system_signal,
    .exit_queued = tp__exit_queued,
    .exit_text = tp__exit_text,
    .notify_exit = tp__notify_exit,
    .answer_late = tp__answer_late,
    .ext_free = tp__ext_free,
    .request_done = tp__request_done,
    .then_take = tp__then_take,
    .then_done = tp__then_done,
    .thens_stale = tp__thens_stale,
    .replay_save = tp__replay_save,
    .replay_load = tp__replay_load,
    .replay_drop = tp__replay_drop,
    .timer_claim = tp__timer_claim,
    .timers_owner_died = tp__timers_owner_died,
    .timers_fire_due = tp__timers_fire_due,
    .timers_next_due = tp__timers_next_due,
    .sock_owner_died = tp__sock_owner_died,
    .info_answer = tp__info_answer,
    .node_started = tp__cluster_node_started,
    .code_switched = tp__spawnables_switch,
    .code_refs = tp__spawnables_refs,
};

int
tp_system_new(const tp_config *cfg, tp_system **out)
{
    tp_config c;
    if (out == NULL || config_fill(&c, cfg) != 0)
        return TP_EINVAL;
    if (tp__self.actor != NULL)
        return TP_EPERM;
    tp_system *sys =
        aligned_alloc(TP__CACHELINE, (sizeof *sys + TP__CACHELINE - 1) &
                                         ~(size_t)(TP__CACHELINE - 1));
    if (sys == NULL)
        return TP_ENOMEM;
    memset(sys, 0, sizeof *sys);
    sys->up = &up_ops;
    sys->cfg = c;
    sys->nworkers = c.threads;
    size_t wsize = sizeof(tp__worker) * c.threads;
    sys->workers = aligned_alloc(TP__CACHELINE, wsize);
    if (sys->workers == NULL) {
        free(sys);
        return TP_ENOMEM;
    }
    memset(sys->workers, 0, wsize);
    for (unsigned i = 0; i < c.threads; i++) {
        tp__worker *w = &sys->workers[i];
        w->sys = sys;
        w->index = i;
        w->rng = 0x9e3779b9u * (i + 1);
        atomic_init(&w->announce, TP__EPOCH_IDLE);
        w->seen_epoch = TP__EPOCH_IDLE;
        if (tp__pool_init(w, c.threads) != 0) {
            for (unsigned j = 0; j <= i; j++)
                tp__pool_free_all(&sys->workers[j], c.threads);
            free(sys->workers);
            free(sys);
            return TP_ENOMEM;
        }
    }
    atomic_init(&sys->epoch, 1);
    int rc = locks_init(sys);
    if (rc != 0) {
        for (unsigned i = 0; i < sys->nworkers; i++)
            tp__pool_free_all(&sys->workers[i], sys->nworkers);
        free(sys->workers);
        free(sys);
        return rc == ENOMEM ? TP_ENOMEM : TP_EAGAIN;
    }
    sys->born_ms = tp__now_coarse_ms();
    tp__tick_calibrate(sys);
    if (tp__timers_new(sys) != 0) {
        for (unsigned i = 0; i < sys->nworkers; i++)
            tp__pool_free_all(&sys->workers[i], sys->nworkers);
        system_free(sys);
        return TP_ENOMEM;
    }
    *out = sys;
    return 0;
}

int
tp_system_start(tp_system *sys)
{
    if (sys == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    if (sys->started)
        return TP_EEXIST;
    if (sys->cfg.catch_faults && !sys->faults_installed) {
        if (tp__faults_install() != 0)
            return TP_EINVAL;
        sys->faults_installed = true;
    }
    if (sys->test != NULL) // its test's thread runs it
        return 0;
    // Set before the workers exist, so they read it without a race
    // (tp__actor_free does); reset if starting fails.
    sys->started = 1;
    int rc = tp__watch_start(sys);
    if (rc == 0)
        rc = tp__sched_start(sys);
    if (rc != 0)
        sys->started = 0;
    return rc;
}

// Whether a test system's wait is over: no actor lives, or stop was asked.
static bool
wait_over(void *arg)
{
    tp_system *sys = arg;
    // relaxed: the test's own thread ran everything that changed them.
    return atomic_load_explicit(&sys->live, memory_order_relaxed) == 0 ||
           atomic_load_explicit(&sys->stop_requested, memory_order_relaxed);
}

int
tp_system_wait(tp_system *sys, int timeout_ms)
{
    if (sys == NULL || timeout_ms < -1)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    if (sys->test != NULL) // runs the actors here, in virtual time
        return tp__test_drive(sys, wait_over, sys, timeout_ms) < 0
                   ? TP_ETIMEDOUT
                   : 0;
    struct timespec dl;
    if (timeout_ms >= 0)
        tp__deadline(&dl, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&sys->wait_lock);
    // acquire: pairs with the release halves of tp__live_dec and stop.
    while (atomic_load_explicit(&sys->live, memory_order_acquire) != 0 &&
           !atomic_load_explicit(&sys->stop_requested, memory_order_acquire)) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&sys->wait_cond, &sys->wait_lock);
        } else if (pthread_cond_timedwait(&sys->wait_cond, &sys->wait_lock,
                                          &dl) != 0) {
            if (atomic_load_explicit(&sys->live, memory_order_acquire) != 0 &&
                !atomic_load_explicit(&sys->stop_requested,
                                      memory_order_acquire))
                rc = TP_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&sys->wait_lock);
    return rc;
}

bool
tp_system_may_block(tp_system *sys)
{
    // `started` is written once, by tp_system_start, which its contract
    // orders before this call. acquire: pairs with tp_system_destroy's
    // release store, after which no scheduler thread will run.
    return sys != NULL && tp__self.worker == NULL &&
           tp__self.io_pool == NULL && sys->started &&
           !atomic_load_explicit(&sys->shutting_down, memory_order_acquire);
}

int
tp_system_stop(tp_system *sys)
{
    if (sys == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&sys->wait_lock);
    atomic_store_explicit(&sys->stop_requested, 1, memory_order_release);
    pthread_cond_broadcast(&sys->wait_cond);
    pthread_mutex_unlock(&sys->wait_lock);
    return 0;
}

int
tp_system_destroy(tp_system **psys)
{
    if (psys == NULL || *psys == NULL)
        return 0;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    tp_system *sys = *psys;
    atomic_store_explicit(&sys->shutting_down, 1, memory_order_release);
    tp__control_stop(sys); // no more outside requests
    tp__metrics_stop(sys);
    tp__trace_shutdown(sys); // wakes readers: the traces are over
    tp__io_stop(sys);        // no more frames in
    tp__node_stop(sys);      // connections closed; muted senders released
    tp__timers_stop(sys);
    if (sys->started)
        tp__sched_stop(sys);
    tp__ded_quiesce_all(sys);
    // No scheduler thread runs now, nor any dedicated actor's callback.
    // Terminate actors newest first, so an actor outlives the ones it
    // spawned (a dedicated one on its own thread), then free what they left.
    for (uint32_t s = sys->slot_next; s-- > 0;) {
        tp__slot_chunk *c = atomic_load_explicit(
            &sys->chunks[s >> TP__SLOT_CHUNK_BITS], memory_order_relaxed);
        tp_actor *a = atomic_load_explicit(&c->actor[s & (TP__SLOT_CHUNK - 1)],
                                           memory_order_relaxed);
        if (a != NULL && !tp__ded_shutdown(a))
            tp__actor_shutdown(a);
    }
    tp__limbo_reclaim_all(sys);
    tp__test_free(sys);  // after the messages it held
    tp__shims_free(sys); // after every actor that ran one
    tp__groups_free(sys);
    tp__remote_free(sys);
    tp__node_free(sys); // after every actor that could still send out
    tp__sock_free(sys); // after every data message
    tp__io_free(sys);
    tp__watch_free(sys);  // after the loop that ran its timer
    tp__timers_free(sys); // after every message that carried a timer
    if (sys->faults_installed)
        tp__faults_uninstall();
    for (unsigned i = 0; i < sys->nworkers; i++)
        tp__pool_free_all(&sys->workers[i], sys->nworkers);
    system_free(sys);
    *psys = NULL;
    return 0;
}

int
tp_system_stats_get(tp_system *sys, tp_system_stats *out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    memset(out, 0, sizeof *out);
    out->threads = sys->nworkers;
    // relaxed: statistics.
    out->actors = atomic_load_explicit(&sys->live, memory_order_relaxed);
    out->spawned = atomic_load_explicit(&sys->spawned, memory_order_relaxed);
    out->exited = atomic_load_explicit(&sys->exited, memory_order_relaxed);
    out->crashed = atomic_load_explicit(&sys->crashed, memory_order_relaxed);
    out->dead_letters =
        atomic_load_explicit(&sys->dead_letters, memory_order_relaxed);
    out->timers = tp__timers_live(sys);
    out->stalls = tp__watch_stalls(sys);
    for (unsigned i = 0; i < sys->nworkers; i++) {
        tp_worker_stats w;
        tp_worker_stats_get(sys, i, &w);
        out->total.activations += w.activations;
        out->total.messages += w.messages;
        out->total.steals += w.steals;
        out->total.sleeps += w.sleeps;
    }
    return 0;
}

int
tp_worker_stats_get(tp_system *sys, unsigned index, tp_worker_stats *out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    tp__worker_counts c;
    int rc = tp__worker_counters(sys, index, &c); // TP_EINVAL past the last
    if (rc != 0)
        return rc;
    *out = (tp_worker_stats){.activations = c.activations,
                             .messages = c.messages,
                             .steals = c.steals,
                             .sleeps = c.sleeps};
    return 0;
}
