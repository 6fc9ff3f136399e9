// SPDX-License-Identifier: MIT
// The stall watch. Callbacks are not preempted, so an activation that runs
// past tp_config.stall_ms is reported instead: logged once with the actor
// and the message it handles, counted (tp_system_stats, /metrics) and
// shown busy by introspection. It costs the hot path nothing: a worker
// already notes in its tp__self which actor it runs and in `activations`
// how many activations it began, and the watch samples those eight times
// per stall_ms. What a worker writes without telling anyone (tp__self, the
// actor's current message) the watch reads through the kernel (tp__peek),
// then checks it was still current: a debugger's reading, without races.
//
// It runs on the I/O thread, as a libev timer, which tp_system_start
// starts for it: of the threads already there, the only one that sees a
// stall whatever the workers do. An idle worker could watch only while
// some worker is idle, and with one scheduler thread the stuck worker is
// the only one; the timer thread starts on first use and exists for
// timers; the I/O thread already serves the runtime's periodic chores and
// never runs actors' callbacks, so it is free whenever a callback is not.
#include "core/core.h"
#include "dist/dist.h"
#include "io/io.h"
#include "observe/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DEFAULT_STALL_MS 1000
#define PERIOD_MIN_NS 1000000LL   // the watch looks at most every 1 ms
#define PERIOD_MAX_NS 125000000LL // and at least every 125 ms

// What the watch last saw of one worker's activation.
typedef struct seen {
    const void *actor; // the address of the actor it ran; NULL: none
    uint64_t seq;      // the worker's activation count then
    int64_t since_ns;  // when the watch first saw this activation
    bool stalled;      // seen running past stall_ms (reported once)
    uint64_t pid;      // once stalled and reported: the actor's pid
} seen;

typedef struct tp__watch {
    tp_system *sys;
    tp__io_timer timer;
    int64_t stall_ns;
    _Atomic uint64_t stalls;
    pthread_mutex_t lock; // `seen`: written by the watch, read by snapshots
    seen seen[];          // one per worker
} tp__watch;

// What worker `w` runs: the address of the actor in its activation (NULL
// between activations) and its activation count. tp__actor_run sets
// tp__self.actor just before it counts the activation, so a new
// activation of the same actor may read as the old one for a few
// instructions: within the watch's precision.
static void
sample(tp__worker *w, const void **actor, uint64_t *seq)
{
    // acquire: pairs with worker_main's release store of its tp__self.
    tp__tls *t = atomic_load_explicit(&w->tls, memory_order_acquire);
    // relaxed: a count, checked again before anything is trusted.
    *seq = atomic_load_explicit(&w->activations, memory_order_relaxed);
    tp_actor *a = NULL;
    if (t == NULL || !tp__peek(&a, &t->actor, sizeof a))
        a = NULL;
    *actor = a;
}

static bool
still(tp__worker *w, const void *actor, uint64_t seq)
{
    const void *a;
    uint64_t n;
    sample(w, &a, &n);
    return a == actor && n == seq;
}

// Describes the message `a`, stalled on `w` in activation `seq`, handles:
// "msg_tag=7 msg_from=<0.3.1>", "msg=none" (in terminate, say), or "msg=?"
// when it could not be read. The worker sets a->current without telling
// anyone and frees the message when the callback returns: it is read
// through tp__peek, then found unchanged, in the same activation.
static void
describe_msg(tp__worker *w, const tp_actor *a, uint64_t seq, char *buf,
             size_t size)
{
    const tp__msg *m, *again;
    tp_msg pub;
    if (!tp__peek(&m, &a->current, sizeof m)) {
        snprintf(buf, size, "msg=?");
    } else if (m == NULL) {
        snprintf(buf, size, "msg=none");
    } else if (!tp__peek(&pub, &m->pub, sizeof pub) ||
               !tp__peek(&again, &a->current, sizeof again) || again != m ||
               !still(w, a, seq)) {
        snprintf(buf, size, "msg=?");
    } else {
        char from[TP_PID_STRLEN];
        tp_pid_format(pub.from, from, sizeof from);
        snprintf(buf, size, "msg_tag=%u msg_from=%s", (unsigned)pub.tag, from);
    }
}

// Logs the stall of the actor at `actor`, running on `w` in activation
// `seq` for `ns`, and stores its pid in *pid. Returns false when the
// activation ended meanwhile. The caller holds ext_lock for reading: what
// the lookup finds stays alive until it lets go.
static bool
report(tp_system *sys, tp__worker *w, const void *actor, uint64_t seq,
       int64_t ns, uint64_t *pid)
{
    tp_pid p;
    if (!tp__peek(&p, &((const tp_actor *)actor)->pid, sizeof p))
        return false;
    tp_actor *a = tp__actor_lookup(sys, p);
    if (a != actor || !still(w, actor, seq))
        return false; // gone, or not the actor that ran there
    char text[TP_PID_STRLEN], name[TP_NAME_MAX + 1], msg[64];
    tp_pid_format(p, text, sizeof text);
    tp__reg_name(a, name);
    describe_msg(w, a, seq, msg, sizeof msg);
    tp__log(sys, TP_LOG_WARNING,
            "stall actor=%s behaviour=%s name=%s %s running_ms=%lld", text,
            a->behaviour->name ? a->behaviour->name : "?",
            name[0] ? name : "-", msg, (long long)(ns / 1000000));
    *pid = p.v;
    return true;
}

// Looks at worker `w` once; `s` is what the watch saw of it before.
static void
look(tp__watch *wa, tp__worker *w, seen *s, int64_t now)
{
    const void *a;
    uint64_t seq, pid = 0;
    sample(w, &a, &seq);
    bool stalled = false;
    pthread_mutex_lock(&wa->lock);
    if (a == NULL || a != s->actor || seq != s->seq)
        *s = (seen){.actor = a, .seq = seq, .since_ns = now};
    else if (!s->stalled && now - s->since_ns >= wa->stall_ns)
        s->stalled = stalled = true;
    pthread_mutex_unlock(&wa->lock);
    if (!stalled || !report(wa->sys, w, a, seq, now - s->since_ns, &pid))
        return;
    // relaxed: a statistic.
    atomic_fetch_add_explicit(&wa->stalls, 1, memory_order_relaxed);
    pthread_mutex_lock(&wa->lock);
    s->pid = pid;
    pthread_mutex_unlock(&wa->lock);
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
    if (pthread_mutex_init(&wa->lock, NULL) != 0) {
        free(wa);
        return TP_EAGAIN;
    }
    wa->sys = sys;
    wa->stall_ns = ms * 1000000;
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
        if (!s->stalled || s->pid == 0 ||
            !still(&sys->workers[i], s->actor, s->seq))
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
