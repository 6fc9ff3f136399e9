// SPDX-License-Identifier: MIT
// Timers. Pending timers sit in one binary heap per
// system ordered by deadline, served by a timer thread started on first
// use. A timer's message carries the timer, and the receiving actor claims
// it just before handling: that is what lets tp_timer_cancel promise that
// a cancelled timer's message is never handled, even one already queued.
#include "core/core.h"
#include "signals/signals.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { KIND_USER, KIND_TIMEOUT };
#define NOT_QUEUED UINT32_MAX
#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)

typedef struct tmr {
    int64_t due_ns;
    uint32_t period_ms; // 0: once
    uint32_t gen;       // bumped each time the entry is reused
    uint32_t heap_at;   // index in the heap or NOT_QUEUED
    uint32_t inflight;  // messages carrying this timer not yet retired
    uint8_t kind;
    uint8_t live;      // handed out and not yet freed
    uint8_t cancelled; // cancelled, or (once) its message was handled
    uint32_t tag;
    tp_pid to, from;
    uint64_t ref; // KIND_TIMEOUT: the request
    // A timer an actor set for itself is on that actor's list (its
    // `timers`, under the lock), so that its exit cancels it at once.
    tp_actor *self_of;
    struct tmr *self_prev, *self_next;
    void *data;
    size_t size;
    tp__timers *tt;
} tmr;

struct tp__timers {
    tp_system *sys;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stop;
    // These two under lock. ns: when the thread's wait ends; INT64_MAX
    // while it waits for a signal, INT64_MIN while it is not waiting (it
    // looks at the heap before it waits again). A timer armed to fire
    // before then wakes it.
    int64_t wait_until;
    // ns: the latest due time of a timer taken out of the heap. With the
    // heap empty the thread waits until then rather than for a signal, so
    // a request that arms a timeout and cancels it on its answer, again
    // and again, wakes the thread once per timeout period, not per request.
    int64_t idle_until;
    tmr **heap;
    uint32_t nheap, capheap;
    tmr **chunks;
    uint32_t nchunks, nentries; // entries ever made
    uint64_t nlive;             // entries handed out and not yet freed
    uint32_t *free_idx;
    uint32_t nfree, capfree;
};

static tmr *
entry(tp__timers *t, uint32_t idx)
{
    return &t->chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)];
}

static uint32_t
index_of(tp__timers *t, tmr *e)
{
    for (uint32_t c = 0; c < t->nchunks; c++)
        if (e >= t->chunks[c] && e < t->chunks[c] + CHUNK)
            return (c << CHUNK_BITS) | (uint32_t)(e - t->chunks[c]);
    return UINT32_MAX;
}

// ---- the heap --------------------------------------------------------------

static void
heap_set(tp__timers *t, uint32_t i, tmr *e)
{
    t->heap[i] = e;
    e->heap_at = i;
}

static void
heap_up(tp__timers *t, uint32_t i)
{
    tmr *e = t->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (t->heap[p]->due_ns <= e->due_ns)
            break;
        heap_set(t, i, t->heap[p]);
        i = p;
    }
    heap_set(t, i, e);
}

static void
heap_down(tp__timers *t, uint32_t i)
{
    tmr *e = t->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= t->nheap)
            break;
        if (c + 1 < t->nheap && t->heap[c + 1]->due_ns < t->heap[c]->due_ns)
            c++;
        if (t->heap[c]->due_ns >= e->due_ns)
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, e);
}

static int
heap_push(tp__timers *t, tmr *e)
{
    if (t->nheap == t->capheap) {
        uint32_t cap = t->capheap ? t->capheap * 2 : 64;
        tmr **h = realloc(t->heap, cap * sizeof *h);
        if (h == NULL)
            return TP_ENOMEM;
        t->heap = h;
        t->capheap = cap;
    }
    heap_set(t, t->nheap++, e);
    heap_up(t, t->nheap - 1);
    return 0;
}

static void
heap_remove(tp__timers *t, tmr *e)
{
    uint32_t i = e->heap_at;
    e->heap_at = NOT_QUEUED;
    if (e->due_ns > t->idle_until)
        t->idle_until = e->due_ns;
    tmr *last = t->heap[--t->nheap];
    if (i == t->nheap)
        return;
    heap_set(t, i, last);
    heap_down(t, i);
    heap_up(t, last->heap_at);
}

// ---- entries ---------------------------------------------------------------

static tmr *
entry_new(tp__timers *t)
{
    uint32_t idx;
    if (t->nfree > 0) {
        idx = t->free_idx[--t->nfree];
    } else {
        if (t->nentries == t->nchunks * CHUNK) {
            if (t->nchunks == (UINT32_MAX >> CHUNK_BITS))
                return NULL;
            tmr **c = realloc(t->chunks, (t->nchunks + 1) * sizeof *c);
            if (c == NULL)
                return NULL;
            t->chunks = c;
            if ((c[t->nchunks] = calloc(CHUNK, sizeof(tmr))) == NULL)
                return NULL;
            t->nchunks++;
        }
        idx = t->nentries++;
    }
    tmr *e = entry(t, idx);
    uint32_t gen = e->gen;
    memset(e, 0, sizeof *e);
    e->gen = gen + 1 ? gen + 1 : 1;
    e->heap_at = NOT_QUEUED;
    e->live = 1;
    e->tt = t;
    t->nlive++;
    return e;
}

// Takes `e` off its actor's list of timers set for itself; lock held.
static void
self_unlink(tmr *e)
{
    if (e->self_of == NULL)
        return;
    if (e->self_prev != NULL)
        e->self_prev->self_next = e->self_next;
    else
        e->self_of->ext->timers = e->self_next;
    if (e->self_next != NULL)
        e->self_next->self_prev = e->self_prev;
    e->self_of = NULL;
    e->self_prev = e->self_next = NULL;
}

// Frees `e` once nothing refers to it any more; lock held.
static void
entry_maybe_free(tp__timers *t, tmr *e)
{
    if (!e->live || e->heap_at != NOT_QUEUED || e->inflight > 0)
        return;
    if (e->period_ms != 0 && !e->cancelled)
        return; // between firings
    self_unlink(e);
    free(e->data);
    e->data = NULL;
    e->live = 0;
    t->nlive--;
    uint32_t idx = index_of(t, e);
    if (t->nfree == t->capfree) {
        uint32_t cap = t->capfree ? t->capfree * 2 : 64;
        uint32_t *f = realloc(t->free_idx, cap * sizeof *f);
        if (f == NULL)
            return; // the entry is lost until the system goes, no worse
        t->free_idx = f;
        t->capfree = cap;
    }
    t->free_idx[t->nfree++] = idx;
}

static uint64_t
id_of(tp__timers *t, tmr *e)
{
    return ((uint64_t)e->gen << 32) | (uint64_t)(index_of(t, e) + 1);
}

// Finds the live entry behind `id`; lock held.
static tmr *
lookup(tp__timers *t, uint64_t id)
{
    uint32_t idx = (uint32_t)id;
    if (idx == 0 || idx > t->nentries)
        return NULL;
    tmr *e = entry(t, idx - 1);
    return e->live && e->gen == (uint32_t)(id >> 32) ? e : NULL;
}

// ---- the thread ------------------------------------------------------------

// Sends what `e` carries; lock not held. Returns whether the destination
// is alive.
static bool
fire(tp_system *sys, tmr *e, tp__msg *m)
{
    if (m == NULL)
        return true; // no memory: this firing is lost, the timer stays
    if (e->kind == KIND_TIMEOUT) {
        if (tp__push_sys(sys, e->to, m) == 0)
            return true;
        tp__msg_free(m);
        return false;
    }
    // A timer an actor set for itself passes its own full mailbox, as a
    // reply does: a state machine's timeouts and a supervisor's kill and
    // restart timers are never lost, and each timer adds at most one
    // message per firing.
    int rc = tp_pid_eq(e->to, e->from) && tp_pid_node(e->to) == 0
                 ? tp__deliver_force(sys, e->to, m)
                 : tp__deliver_nowait(sys, e->to, m);
    if (rc == 0)
        return true;
    tp__msg_free(m); // releases the timer
    return rc != TP_ENOACTOR;
}

// Fires the heap's first timer, due by `now`; lock held, and released
// while its message goes out.
static void
fire_first(tp__timers *t, int64_t now)
{
    tmr *e = t->heap[0];
    heap_remove(t, e);
    tp__msg *m;
    if (e->kind == KIND_TIMEOUT) {
        if ((m = tp__msg_new_sys(t->sys, TP__MSG_TIMEOUT, TP_PID_NIL)) != NULL)
            m->pub.ref = e->ref;
    } else if ((m = tp__msg_new_copy(t->sys, e->tag, e->from, e->data,
                                     e->size)) != NULL) {
        m->flags |= TP__MSG_TIMER;
        m->aux = e;
        e->inflight++;
    }
    if (e->period_ms != 0) {
        int64_t p = (int64_t)e->period_ms * 1000000;
        e->due_ns += p;
        // Fell behind: skip, do not burst; except in virtual time, where
        // a test that moves the clock expects a firing per period.
        if (e->due_ns < now && t->sys->test == NULL)
            e->due_ns = now + p;
        if (heap_push(t, e) != 0)
            e->cancelled = 1;
    }
    // Our own reference while the lock is down: without it the
    // message could be handled and the entry freed and reused before
    // we look at it again.
    e->inflight++;
    pthread_mutex_unlock(&t->lock);
    bool alive = fire(t->sys, e, m);
    pthread_mutex_lock(&t->lock);
    e->inflight--;
    if (!alive && !e->cancelled) {
        // The destination is gone: so is its timer.
        e->cancelled = 1;
        if (e->heap_at != NOT_QUEUED)
            heap_remove(t, e);
    }
    entry_maybe_free(t, e);
}

static void *
timer_main(void *arg)
{
    tp__timers *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        int64_t now = tp__now_ns(), until;
        if (t->nheap > 0)
            until = t->heap[0]->due_ns;
        else
            until = t->idle_until > now ? t->idle_until : INT64_MAX;
        if (until <= now) {
            fire_first(t, now);
            continue;
        }
        t->wait_until = until;
        if (until == INT64_MAX) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            struct timespec ts = {(time_t)(until / 1000000000),
                                  (long)(until % 1000000000)};
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        }
        t->wait_until = INT64_MIN;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

// ---- the system's side -----------------------------------------------------

int
tp__timers_fire_due(tp_system *sys, int64_t now_ns)
{
    tp__timers *t = sys->timers;
    int n = 0;
    pthread_mutex_lock(&t->lock);
    while (!t->stop && t->nheap > 0 && t->heap[0]->due_ns <= now_ns) {
        fire_first(t, now_ns);
        if (n < INT_MAX) // an interval timer over weeks of virtual time
            n++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

int64_t
tp__timers_next_due(tp_system *sys)
{
    tp__timers *t = sys->timers;
    pthread_mutex_lock(&t->lock);
    int64_t due = t->nheap > 0 ? t->heap[0]->due_ns : -1;
    pthread_mutex_unlock(&t->lock);
    return due;
}

static tp__timers *
timers_of(tp_system *sys)
{
    return sys->timers;
}

int
tp__timers_new(tp_system *sys)
{
    tp__timers *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TP_ENOMEM;
    // Before any timer message exists: the mailbox releases them.
    tp__msg_on_release(TP__REL_TIMER, tp__timer_msg_gone);
    t->sys = sys;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return TP_ENOMEM;
    }
    if (tp__cond_init(&t->cond) != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return TP_ENOMEM;
    }
    t->wait_until = INT64_MIN; // a thread not started yet looks first
    sys->timers = t;
    return 0;
}

// Stops the timer thread; pending timers stay until tp__timers_free.
void
tp__timers_stop(tp_system *sys)
{
    tp__timers *t = timers_of(sys);
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    bool running = t->running;
    t->running = false;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (running)
        pthread_join(t->thread, NULL);
}

uint64_t
tp__timers_live(tp_system *sys)
{
    tp__timers *t = timers_of(sys);
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->nlive;
    pthread_mutex_unlock(&t->lock);
    return n;
}

// Frees every timer; no message carrying one may remain.
void
tp__timers_free(tp_system *sys)
{
    tp__timers *t = timers_of(sys);
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->nentries; i++)
        free(entry(t, i)->data);
    for (uint32_t c = 0; c < t->nchunks; c++)
        free(t->chunks[c]);
    free(t->chunks);
    free(t->heap);
    free(t->free_idx);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
    sys->timers = NULL;
}

// Queues `e` due in `ms`; lock held. Starts the thread on first use.
static int
arm(tp__timers *t, tmr *e, uint32_t ms)
{
    if (t->stop)
        return TP_ESHUTDOWN;
    if (t->sys->test != NULL) { // virtual time: the test fires them
        e->due_ns = tp__test_now_ns(t->sys) + (int64_t)ms * 1000000;
        return heap_push(t, e);
    }
    if (!t->running) {
        if (pthread_create(&t->thread, NULL, timer_main, t) != 0)
            return TP_EAGAIN;
        t->running = true;
    }
    e->due_ns = tp__now_ns() + (int64_t)ms * 1000000;
    int rc = heap_push(t, e);
    if (rc == 0 && e->due_ns < t->wait_until)
        pthread_cond_signal(&t->cond);
    return rc;
}

static void
disarm_new(tp__timers *t, tmr *e)
{
    e->cancelled = 1;
    entry_maybe_free(t, e);
}

bool
tp__timer_claim(tp__msg *m)
{
    tmr *e = m->aux;
    tp__timers *t = e->tt;
    pthread_mutex_lock(&t->lock);
    bool ok = !e->cancelled;
    if (ok && e->period_ms == 0)
        e->cancelled = 1; // handled: cancelling now is too late
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void
tp__timer_msg_gone(tp__msg *m)
{
    tmr *e = m->aux;
    tp__timers *t = e->tt;
    pthread_mutex_lock(&t->lock);
    e->inflight--;
    entry_maybe_free(t, e);
    pthread_mutex_unlock(&t->lock);
}

uint64_t
tp__timer_add_timeout(tp_system *sys, tp_pid to, uint64_t ref, uint32_t ms)
{
    tp__timers *t = timers_of(sys);
    uint64_t id = 0;
    pthread_mutex_lock(&t->lock);
    tmr *e = entry_new(t);
    if (e != NULL) {
        e->kind = KIND_TIMEOUT;
        e->to = to;
        e->ref = ref;
        if (arm(t, e, ms) == 0)
            id = id_of(t, e);
        else
            disarm_new(t, e);
    }
    pthread_mutex_unlock(&t->lock);
    return id;
}

int
tp__timer_cancel(tp_system *sys, uint64_t id)
{
    tp__timers *t = timers_of(sys);
    int rc = TP_ENOENT;
    pthread_mutex_lock(&t->lock);
    tmr *e = lookup(t, id);
    if (e != NULL && !e->cancelled) {
        e->cancelled = 1;
        if (e->heap_at != NOT_QUEUED)
            heap_remove(t, e);
        entry_maybe_free(t, e);
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

// ---- the public calls ------------------------------------------------------

static int
add_user_timer(tp_ctx *ctx, tp_pid to, uint32_t ms, uint32_t period,
               uint32_t tag, const void *data, size_t size, tp_timer *out)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    // A timer for itself goes on its list, cancelled when it exits.
    tp__ext *x = NULL;
    if (tp_pid_eq(to, a->pid) && (x = tp__ext_of(a)) == NULL)
        return TP_ENOMEM;
    void *copy = NULL;
    if (size > 0) {
        if ((copy = malloc(size)) == NULL)
            return TP_ENOMEM;
        memcpy(copy, data, size);
    }
    tp__timers *t = timers_of(a->system);
    pthread_mutex_lock(&t->lock);
    tmr *e = entry_new(t);
    if (e == NULL) {
        rc = TP_ENOMEM;
    } else {
        e->kind = KIND_USER;
        e->period_ms = period;
        e->tag = tag;
        e->to = to;
        e->from = a->pid;
        e->data = copy;
        e->size = size;
        copy = NULL;
        if ((rc = arm(t, e, ms)) != 0) {
            disarm_new(t, e);
        } else {
            if (x != NULL) {
                e->self_of = a;
                e->self_next = x->timers;
                if (x->timers != NULL)
                    x->timers->self_prev = e;
                x->timers = e;
                x->own_timers = true;
            }
            if (out != NULL)
                *out = id_of(t, e);
        }
    }
    pthread_mutex_unlock(&t->lock);
    free(copy);
    return rc;
}

// Cancels every timer `a` set for itself: it is exiting, and they are
// released before its exit is announced.
void
tp__timers_owner_died(tp_actor *a)
{
    tp__timers *t = timers_of(a->system);
    // The flag is the actor's own (set on its thread): most actors never
    // set a timer for themselves and take no lock here.
    if (t == NULL || a->ext == NULL || !a->ext->own_timers)
        return;
    pthread_mutex_lock(&t->lock);
    tmr *e;
    while ((e = a->ext->timers) != NULL) {
        self_unlink(e);
        if (!e->cancelled) {
            e->cancelled = 1;
            if (e->heap_at != NOT_QUEUED)
                heap_remove(t, e);
        }
        entry_maybe_free(t, e);
    }
    a->ext->own_timers = false; // a second call takes no lock
    pthread_mutex_unlock(&t->lock);
}

int
tp_send_after(tp_ctx *ctx, tp_pid to, uint32_t ms, uint32_t tag,
              const void *data, size_t size, tp_timer *out)
{
    return add_user_timer(ctx, to, ms, 0, tag, data, size, out);
}

int
tp_send_interval(tp_ctx *ctx, tp_pid to, uint32_t ms, uint32_t tag,
                 const void *data, size_t size, tp_timer *out)
{
    if (ms == 0)
        return TP_EINVAL;
    return add_user_timer(ctx, to, ms, ms, tag, data, size, out);
}

int
tp_timer_cancel(tp_system *sys, tp_timer t)
{
    if (sys == NULL || t == 0)
        return TP_EINVAL;
    return tp__timer_cancel(sys, t);
}
