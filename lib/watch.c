// SPDX-License-Identifier: MIT
// The stall watch. Callbacks are not preempted, so an activation that runs
// past tp_config.stall_ms is reported instead: logged once with the actor
// and the message it handles, counted (tp_system_stats, /metrics) and
// shown busy by introspection. Each worker publishes the pid of the actor
// it runs (sched.c) and the message being handled (actor.c), and already
// counts its activations: one store per activation and two per message,
// nothing more on the hot path. The watch samples them eight times per
// stall_ms.
//
// It runs on the I/O thread, as a libev timer, which tp_system_start
// starts for it: of the threads already there, the only one that sees a
// stall whatever the workers do. An idle worker could watch only while
// some worker is idle, and with one scheduler thread the stuck worker is
// the only one; the timer thread starts on first use and exists for
// timers; the I/O thread already serves the runtime's periodic chores and
// never runs actors' callbacks, so it is free whenever a callback is not.
#include "troupe_impl.h"
#include "io.h"

#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_STALL_MS 1000
#define PERIOD_MIN_NS 1000000LL   // the watch looks at most every 1 ms
#define PERIOD_MAX_NS 125000000LL // and at least every 125 ms

// What the watch last saw of one worker's activation.
typedef struct seen {
    uint64_t pid;     // its actor's; 0: the worker was idle
    uint64_t seq;     // the worker's activation count then
    int64_t since_ns; // when the watch first saw this activation
    bool stalled;     // logged and counted
} seen;

typedef struct tp__watch {
    tp_system *sys;
    tp__io_timer timer;
    int64_t stall_ns;
    _Atomic uint64_t stalls;
    pthread_mutex_t lock; // `seen`: written by the watch, read by snapshots
    seen seen[];          // one per worker
} tp__watch;

// Logs the stall of actor `pid`, running on `w` for `ns`; false when it
// is gone (the activation ended meanwhile). The caller holds ext_lock for
// reading, which keeps what the lookup finds alive.
static bool
report(tp_system *sys, tp__worker *w, uint64_t pid, int64_t ns)
{
    tp_actor *a = tp__actor_lookup(sys, (tp_pid){pid});
    if (a == NULL)
        return false;
    char text[TP_PID_STRLEN], from[TP_PID_STRLEN], name[TP_NAME_MAX + 1];
    tp_pid_format(a->pid, text, sizeof text);
    // relaxed: the worker's own notes of what it handles; a message later
    // in the same activation would do as well.
    tp_pid_format(
        (tp_pid){atomic_load_explicit(&w->msg_from, memory_order_relaxed)},
        from, sizeof from);
    uint32_t tag = atomic_load_explicit(&w->msg_tag, memory_order_relaxed);
    tp__reg_name(a, name);
    tp__log(sys, TP_LOG_WARNING,
            "stall actor=%s behaviour=%s name=%s msg_tag=%u msg_from=%s "
            "running_ms=%lld",
            text, a->behaviour->name ? a->behaviour->name : "?",
            name[0] ? name : "-", (unsigned)tag, from,
            (long long)(ns / 1000000));
    return true;
}

// The activation worker `w` is in, as (pid, activation count); pid 0 when
// idle. The worker stores the pid just before it counts the activation,
// so a new activation of the same actor may read as the old one for a few
// instructions: within the watch's precision.
static void
sample(tp__worker *w, uint64_t *pid, uint64_t *seq)
{
    // relaxed, both: hints; a pid is looked up before it is trusted.
    *pid = atomic_load_explicit(&w->running, memory_order_relaxed);
    *seq = atomic_load_explicit(&w->activations, memory_order_relaxed);
}

// Looks at worker `w` once; `s` is what the watch saw of it before.
static void
look(tp__watch *wa, tp__worker *w, seen *s, int64_t now)
{
    uint64_t pid, seq;
    sample(w, &pid, &seq);
    bool stalled = false;
    pthread_mutex_lock(&wa->lock);
    if (pid == 0 || pid != s->pid || seq != s->seq)
        *s = (seen){.pid = pid, .seq = seq, .since_ns = now};
    else if (!s->stalled && now - s->since_ns >= wa->stall_ns)
        s->stalled = stalled = true;
    pthread_mutex_unlock(&wa->lock);
    if (stalled && report(wa->sys, w, pid, now - s->since_ns))
        // relaxed: a statistic.
        atomic_fetch_add_explicit(&wa->stalls, 1, memory_order_relaxed);
}

static void
watch_cb(tp__io_timer *t)
{
    tp__watch *wa = t->data;
    tp_system *sys = wa->sys;
    int64_t now = tp__now_ns();
    pthread_rwlock_rdlock(&sys->ext_lock);
    for (unsigned i = 0; i < sys->nworkers; i++)
        look(wa, &sys->workers[i], &wa->seen[i], now);
    pthread_rwlock_unlock(&sys->ext_lock);
}

// Starts the watch unless the configuration turns it off. Returns 0, or
// TP_ENOMEM or TP_EAGAIN (the I/O thread could not be started). The
// scheduler's caller, tp_system_start, before the workers run.
int
tp__watch_start(tp_system *sys)
{
    if (sys->cfg.stall_ms < 0 || sys->watch != NULL)
        return 0;
    int64_t ms = sys->cfg.stall_ms ? sys->cfg.stall_ms : DEFAULT_STALL_MS;
    tp__watch *wa = calloc(1, sizeof *wa + sys->nworkers * sizeof wa->seen[0]);
    if (wa == NULL)
        return TP_ENOMEM;
    tp__io *io = tp__io_get(sys);
    if (io == NULL) {
        free(wa);
        return TP_EAGAIN;
    }
    wa->sys = sys;
    wa->stall_ns = ms * 1000000;
    pthread_mutex_init(&wa->lock, NULL);
    int64_t period = wa->stall_ns / 8;
    if (period < PERIOD_MIN_NS)
        period = PERIOD_MIN_NS;
    if (period > PERIOD_MAX_NS)
        period = PERIOD_MAX_NS;
    tp__io_timer_init(&wa->timer, watch_cb, (double)period / 1e9,
                      (double)period / 1e9);
    wa->timer.data = wa;
    sys->watch = wa;
    pthread_mutex_lock(&io->lock);
    tp__io_timer_start(io, &wa->timer);
    pthread_mutex_unlock(&io->lock);
    tp__io_wake(io); // so the loop counts with the new timer
    return 0;
}

// After the I/O loop is gone (tp__io_free).
void
tp__watch_free(tp_system *sys)
{
    tp__watch *wa = sys->watch;
    if (wa == NULL)
        return;
    sys->watch = NULL;
    pthread_mutex_destroy(&wa->lock);
    free(wa);
}

uint64_t
tp__watch_stalls(tp_system *sys)
{
    tp__watch *wa = sys->watch;
    // relaxed: a statistic.
    return wa ? atomic_load_explicit(&wa->stalls, memory_order_relaxed) : 0;
}

// The actors whose stalled activation still runs, or NULL when there are
// none (or no memory). The caller frees the result.
tp__busy *
tp__watch_busy(tp_system *sys)
{
    tp__watch *wa = sys->watch;
    if (wa == NULL)
        return NULL;
    tp__busy *b = NULL;
    pthread_mutex_lock(&wa->lock);
    for (unsigned i = 0; i < sys->nworkers; i++) {
        const seen *s = &wa->seen[i];
        uint64_t pid, seq;
        sample(&sys->workers[i], &pid, &seq);
        if (!s->stalled || pid != s->pid || seq != s->seq)
            continue;
        if (b == NULL) {
            b = malloc(sizeof *b + sys->nworkers * sizeof b->at[0]);
            if (b == NULL)
                break;
            b->n = 0;
        }
        b->at[b->n].pid = s->pid;
        b->at[b->n++].since_ns = s->since_ns;
    }
    pthread_mutex_unlock(&wa->lock);
    return b;
}
