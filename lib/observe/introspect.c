// SPDX-License-Identifier: MIT
// Introspection: a snapshot of every actor read from the actor table while
// everything runs, and details an actor gives about itself between two
// messages (its link and monitor tables have a single writer: itself).
#include "core/core.h"
#include "observe/observe.h"
#include "signals/signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tp_snapshot {
    tp_system_stats stats;
    uint64_t uptime_ms;
    size_t len;
    tp_actor_info actors[];
};

// The busy actors as the stall watch found them, for fill_info.
typedef struct busy_view {
    tp__busy *busy; // NULL: none
    int64_t now_ns;
} busy_view;

static busy_view
busy_take(tp_system *sys)
{
    return (busy_view){tp__watch_busy(sys), tp__now_ns()};
}

// How long `a` has been busy in a stalled activation, in ms; -1 if it is
// not.
static int64_t
busy_ms(const busy_view *v, const tp_actor *a)
{
    for (unsigned i = 0; v != NULL && v->busy != NULL && i < v->busy->n; i++)
        if (v->busy->at[i].pid == a->pid.v)
            return (v->now_ns - v->busy->at[i].since_ns) / 1000000;
    return -1;
}

static void wait_fill(tp_actor_info *o, tp__clock *k);

// Reads what any thread may read of `a`: immutable fields and counters.
static void
fill_info(tp_actor *a, tp_actor_info *o, int64_t now, double tick_ns,
          const busy_view *view)
{
    memset(o, 0, sizeof *o);
    o->pid = a->pid;
    o->parent = a->parent;
    tp__reg_name(a, o->name);
    snprintf(o->behaviour, sizeof o->behaviour, "%s",
             a->behaviour->name ? a->behaviour->name : "?");
    tp__behaviour_version_of(a->system, a->behaviour, o->version,
                             sizeof o->version);
    // relaxed: a snapshot of counters; each may be a little stale.
    uint64_t c = atomic_load_explicit(&a->count, memory_order_relaxed);
    int64_t busy = busy_ms(view, a);
    if (atomic_load_explicit(&a->dead, memory_order_relaxed))
        o->status = TP_ACTOR_EXITING;
    else if (busy >= 0)
        o->status = TP_ACTOR_BUSY;
    else if (atomic_load_explicit(&a->mute, memory_order_relaxed) ==
             TP__MUTE_PARKED)
        o->status = TP_ACTOR_MUTED;
    else if (TP__CNT_TOTAL(c) > 0)
        o->status = TP_ACTOR_RUNNABLE;
    else
        o->status = TP_ACTOR_WAITING;
    o->busy_ms = busy >= 0 ? (uint64_t)busy : 0;
    o->mailbox = TP__CNT_USERS(c);
    o->capacity = a->capacity;
    o->high_water = atomic_load_explicit(&a->high_water, memory_order_relaxed);
    o->handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
    o->dropped = atomic_load_explicit(&a->dropped, memory_order_relaxed);
    o->rejected = atomic_load_explicit(&a->rejected, memory_order_relaxed);
    o->restarts = tp__restarts_of(a);
    // relaxed: counters with a single writer, read for display. An
    // activation still running counts up to now, so an actor stuck in a
    // callback shows.
    tp__clock *k = tp__clock_of(a);
    if (k != NULL) {
        uint64_t ran = atomic_load_explicit(&k->ran, memory_order_relaxed);
        uint64_t since =
            atomic_load_explicit(&k->running_since, memory_order_relaxed);
        uint64_t t = tp__ticks();
        if (since != 0 && t > since)
            ran += t - since;
        o->cpu_ns = (uint64_t)((double)ran * tick_ns);
        wait_fill(o, k);
    }
    o->age_ms = now > a->born_ms ? (uint64_t)(now - a->born_ms) : 0;
    o->start_order = (uint64_t)a->born_ms << 16 | a->spawn_seq;
}

// The upper bound of wait bucket `b`, in microseconds.
static uint64_t
wait_bound_us(unsigned b)
{
    return (uint64_t)1 << b;
}

// The p-th percentile (in thousandths) of `waits` waits counted in
// `hist`, the longest `max_us`.
static uint64_t
hist_percentile(const uint32_t *hist, uint64_t waits, uint64_t max_us,
                uint64_t permille)
{
    uint64_t want = (waits * permille + 999) / 1000, seen = 0;
    for (unsigned b = 0; b < TP_WAIT_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want && seen > 0) {
            uint64_t us =
                b == TP_WAIT_BUCKETS - 1 ? UINT64_MAX : wait_bound_us(b);
            return us < max_us ? us : max_us;
        }
    }
    return max_us;
}

static uint64_t
wait_percentile(const tp_actor_info *o, uint64_t permille)
{
    return hist_percentile(o->wait_hist, o->waits, o->wait_max_us, permille);
}

static void
wait_fill(tp_actor_info *o, tp__clock *k)
{
    // relaxed, all: counters with a single writer, read for display; the
    // count is what the buckets add up to, so the two always agree.
    o->waits = 0;
    for (unsigned b = 0; b < TP_WAIT_BUCKETS; b++) {
        o->wait_hist[b] =
            atomic_load_explicit(&k->wait[b], memory_order_relaxed);
        o->waits += o->wait_hist[b];
    }
    if (o->waits == 0)
        return;
    // Rounded up: a wait under a microsecond still shows as one, and the
    // sum is never below the longest.
    o->wait_max_us =
        (atomic_load_explicit(&k->wait_max_ns, memory_order_relaxed) + 999) /
        1000;
    o->wait_sum_us =
        (atomic_load_explicit(&k->wait_sum_ns, memory_order_relaxed) + 999) /
        1000;
    o->wait_p50_us = wait_percentile(o, 500);
    o->wait_p99_us = wait_percentile(o, 990);
}

// What a walk of the table fills in: the snapshot grows as it goes.
typedef struct snap_walk {
    tp_snapshot *s;
    size_t cap;
    int64_t now;
    double tick_ns;
    const busy_view *busy;
} snap_walk;

static bool
snap_one(tp_actor *a, void *arg)
{
    snap_walk *w = arg;
    if (w->s->len == w->cap) {
        size_t ncap = w->cap * 2;
        tp_snapshot *g =
            realloc(w->s, sizeof *w->s + ncap * sizeof w->s->actors[0]);
        if (g == NULL)
            return false; // a partial snapshot rather than none
        w->s = g;
        w->cap = ncap;
    }
    fill_info(a, &w->s->actors[w->s->len++], w->now, w->tick_ns, w->busy);
    return true;
}

int
tp_snapshot_take(tp_system *sys, tp_snapshot **out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    int64_t now = tp__now_coarse_ms();
    // Room for every live actor plus those spawned while we walk.
    size_t cap = tp__actor_count(sys) + 64;
    tp_snapshot *s = malloc(sizeof *s + cap * sizeof s->actors[0]);
    if (s == NULL)
        return TP_ENOMEM;
    s->len = 0;
    busy_view busy = busy_take(sys);
    snap_walk w = {s, cap, now, tp__tick_ns(sys), &busy};
    tp__actor_each(sys, snap_one, &w);
    s = w.s;
    free(busy.busy);
    tp_system_stats_get(sys, &s->stats);
    s->uptime_ms = now > sys->born_ms ? (uint64_t)(now - sys->born_ms) : 0;
    *out = s;
    return 0;
}

typedef struct info_walk {
    tp_actor_info *out;
    int64_t now;
    double tick_ns;
    const busy_view *busy;
} info_walk;

static void
info_one(tp_actor *a, void *arg)
{
    info_walk *w = arg;
    fill_info(a, w->out, w->now, w->tick_ns, w->busy);
}

int
tp_actor_info_get(tp_system *sys, tp_pid pid, tp_actor_info *out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    busy_view busy = busy_take(sys);
    info_walk w = {out, tp__now_coarse_ms(), tp__tick_ns(sys), &busy};
    int rc = tp__actor_with(sys, pid, info_one, &w);
    free(busy.busy);
    return rc;
}

size_t
tp_snapshot_len(const tp_snapshot *s)
{
    return s ? s->len : 0;
}

const tp_actor_info *
tp_snapshot_at(const tp_snapshot *s, size_t i)
{
    return s && i < s->len ? &s->actors[i] : NULL;
}

const tp_system_stats *
tp_snapshot_stats(const tp_snapshot *s)
{
    return s ? &s->stats : NULL;
}

uint64_t
tp_snapshot_uptime_ms(const tp_snapshot *s)
{
    return s ? s->uptime_ms : 0;
}

void
tp_snapshot_free(tp_snapshot *s)
{
    free(s);
}

// ---- details, asked of the actor ------------------------------------------

// Shared by the asker and the message that carries the question; whichever
// lets go last frees it. A blocking asker (tp_actor_detail_get) waits on
// `cond`; one on the I/O thread (the control socket) is told by `done`.
typedef struct tp__info {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    bool answered, gone;
    void (*done)(void *); // NULL once the asker let go
    void *done_arg;
    tp_actor_detail detail;
} tp__info;

static tp__info *
info_of(const tp__msg *m)
{
    tp__info *r;
    memcpy(&r, m->pub.data, sizeof r);
    return r;
}

static void
info_put(tp__info *r)
{
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
    }
}

// Tells the asker, with r->lock held, that the question is settled.
static void
info_settled(tp__info *r)
{
    pthread_cond_broadcast(&r->cond);
    if (r->done != NULL)
        r->done(r->done_arg);
}

// The actor `a` answers, in its own activation.
void
tp__info_answer(tp_actor *a, tp__msg *m)
{
    tp__info *r = info_of(m);
    tp_actor_detail d;
    memset(&d, 0, sizeof d);
    fill_info(a, &d.info, tp__now_coarse_ms(), tp__tick_ns(a->system),
              NULL); // answering, so not busy
    tp__ext_detail(a, &d);
    if (a->behaviour->describe != NULL) {
        tp__tls saved = tp__self;
        tp__self.actor = a;
        a->behaviour->describe(tp__state(a), d.describe, sizeof d.describe);
        tp__self = saved;
        d.describe[sizeof d.describe - 1] = 0;
    }
    pthread_mutex_lock(&r->lock);
    r->detail = d;
    r->answered = true;
    info_settled(r);
    pthread_mutex_unlock(&r->lock);
}

// The message is gone, answered or not (the actor died first).
void
tp__info_release(tp__msg *m)
{
    m->flags &= (uint16_t)~TP__MSG_INFO_REQ;
    tp__info *r = info_of(m);
    pthread_mutex_lock(&r->lock);
    if (!r->answered) {
        r->gone = true;
        info_settled(r);
    }
    info_put(r);
}

tp__info *
tp__info_ask(tp_system *sys, tp_pid pid, void (*done)(void *), void *arg,
             int *rc)
{
    *rc = TP_ENOMEM;
    if (tp_pid_node(pid) != 0) {
        *rc = TP_ENOACTOR; // another node's actor: ask that node
        return NULL;
    }
    tp__info *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    if (tp__cond_init(&r->cond) != 0) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    r->refs = 2;
    r->done = done;
    r->done_arg = arg;
    tp__msg *m = tp__msg_new_copy(sys, 0, TP_PID_NIL, &r, sizeof r);
    if (m == NULL) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r);
        return NULL;
    }
    m->kind = TP__MSG_INFO;
    tp__msg_on_release(TP__REL_INFO, tp__info_release);
    m->flags |= TP__MSG_INFO_REQ;
    if (tp__push_sys(sys, pid, m) != 0) {
        r->done = NULL;  // settled before it was asked: no news to give
        tp__msg_free(m); // releases the message's reference
        pthread_mutex_lock(&r->lock);
        info_put(r);
        *rc = TP_ENOACTOR;
        return NULL;
    }
    *rc = 0;
    return r;
}

int
tp__info_poll(tp__info *r, tp_actor_detail *out)
{
    pthread_mutex_lock(&r->lock);
    int rc = r->answered ? 0 : r->gone ? TP_ENOACTOR : TP_EAGAIN;
    if (r->answered)
        *out = r->detail;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void
tp__info_drop(tp__info *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->done = NULL;
    info_put(r);
}

// Whether the question was answered or its actor died (a test system's
// drive asks).
static bool
detail_settled(void *arg)
{
    tp__info *r = arg;
    pthread_mutex_lock(&r->lock);
    bool done = r->answered || r->gone;
    pthread_mutex_unlock(&r->lock);
    return done;
}

int
tp_actor_detail_get(tp_system *sys, tp_pid pid, int timeout_ms,
                    tp_actor_detail *out)
{
    if (sys == NULL || out == NULL || timeout_ms < -1)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    int rc;
    tp__info *r = tp__info_ask(sys, pid, NULL, NULL, &rc);
    if (r == NULL)
        return rc;
    if (sys->test != NULL) // a test system: its actors run here meanwhile
        tp__test_drive(sys, detail_settled, r, timeout_ms);
    struct timespec dl;
    if (timeout_ms >= 0)
        tp__deadline(&dl, sys->test != NULL ? 0 : timeout_ms);
    pthread_mutex_lock(&r->lock);
    while (!r->answered && !r->gone) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->cond, &r->lock);
        else if (pthread_cond_timedwait(&r->cond, &r->lock, &dl) != 0)
            break;
    }
    if (r->answered)
        *out = r->detail;
    else
        rc = r->gone ? TP_ENOACTOR : TP_ETIMEDOUT;
    info_put(r);
    return rc;
}

// ---- the longest wait
// --------------------------------------------------------

typedef struct slow_walk {
    uint64_t p99, max;
    tp_pid pid;
} slow_walk;

static bool
slow_one(tp_actor *a, void *arg)
{
    slow_walk *w = arg;
    tp__clock *k = tp__clock_of(a);
    if (k == NULL)
        return true;
    uint32_t hist[TP_WAIT_BUCKETS];
    uint64_t waits = 0;
    // relaxed, all: as in wait_fill.
    for (unsigned b = 0; b < TP_WAIT_BUCKETS; b++)
        waits += hist[b] =
            atomic_load_explicit(&k->wait[b], memory_order_relaxed);
    if (waits == 0)
        return true;
    uint64_t max =
        (atomic_load_explicit(&k->wait_max_ns, memory_order_relaxed) + 999) /
        1000;
    uint64_t p99 = hist_percentile(hist, waits, max, 990);
    if (tp_pid_is_nil(w->pid) || p99 > w->p99 ||
        (p99 == w->p99 && max > w->max)) {
        w->p99 = p99;
        w->max = max;
        w->pid = a->pid;
    }
    return true;
}

int
tp__longest_wait(tp_system *sys, tp_actor_info *out)
{
    slow_walk w = {0, 0, TP_PID_NIL};
    tp__actor_each(sys, slow_one, &w);
    if (tp_pid_is_nil(w.pid))
        return TP_ENOACTOR;
    return tp_actor_info_get(sys, w.pid, out); // gone meanwhile: ENOACTOR
}
