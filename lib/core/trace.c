// SPDX-License-Identifier: MIT
// Tracing one actor (troupe/trace.h). A trace is a record in the system's
// table of at most TP_TRACE_MAX, found by pid, holding a ring of events
// its reader takes. The actor carries what is traced in its `marks`, so
// an actor nobody traces pays one test of a byte it reads anyway; a traced
// one takes sys->trace_lock for each event. Events come from the thread
// that runs the actor's activation (one at a time), so the lock is
// contended only by the reader and by other traced actors: tracing is for
// a few actors at a time, briefly, and every trace ends by itself.
//
// Marks and traces agree under trace_lock: tp_trace_start lists the trace
// and then sets the marks; an event that finds no running trace clears
// them. A trace that ends (count, time, stop) is unlisted at once; the
// actor's marks stay set until its next event clears them, a cost of one
// lookup. The actor's exit and tp_trace_start each look at what the other
// stored first (seq_cst), as the sockets' owner mark does: of an actor
// that dies while its trace starts, one of the two ends the trace.
#include "core/actor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 512 // events kept for the reader; more are dropped
#define DEFAULT_COUNT 100
#define DEFAULT_SECONDS 60
#define DEFAULT_RATE 1000
#define LIMIT 1000000
#define SECONDS_MAX 86400
#define NS 1000000000LL

struct tp_trace {
    tp_system *sys;
    tp_pid pid;
    unsigned what;
    uint32_t count, rate;
    int64_t start_ns, end_ns;
    int64_t window_ns;  // the second the rate counts in began then
    uint32_t in_window; // events kept in it
    uint64_t seq, recorded, dropped;
    tp_trace_end end;
    unsigned slot;    // in sys->traces, + 1; 0 once unlisted
    unsigned waiting; // readers in tp_trace_read's wait
    unsigned head, len;
    void (*notify)(void *); // tp__trace_notify's
    void *notify_arg;
    tp_trace_event ring[RING];
};

// ---- under trace_lock ------------------------------------------------------

static tp_trace *
find(tp_system *sys, tp_pid pid)
{
    for (unsigned i = 0; i < TP_TRACE_MAX; i++)
        if (sys->traces[i] != NULL && tp_pid_eq(sys->traces[i]->pid, pid))
            return sys->traces[i];
    return NULL;
}

static void
wake(tp_trace *t)
{
    if (t->waiting > 0)
        pthread_cond_broadcast(&t->sys->trace_cond);
    if (t->notify != NULL)
        t->notify(t->notify_arg);
}

// Ends `t` for `why` if it runs: unlisted, so no event finds it again.
static void
finish(tp_trace *t, tp_trace_end why)
{
    if (t->end != TP_TRACE_RUNNING)
        return;
    t->end = why;
    t->sys->traces[t->slot - 1] = NULL;
    t->slot = 0;
    wake(t);
}

static void
clear_marks(tp_actor *a)
{
    // relaxed: set and cleared under trace_lock, read as a hint.
    atomic_fetch_and_explicit(&a->marks, (uint8_t)~TP__MARK_TRACED,
                              memory_order_relaxed);
}

// The running trace of `a`, with trace_lock held; or NULL, the lock
// released and a's marks cleared when no trace runs for it any more.
static tp_trace *
begin(tp_actor *a, int64_t now)
{
    tp_system *sys = a->system;
    pthread_mutex_lock(&sys->trace_lock);
    tp_trace *t = find(sys, a->pid);
    if (t != NULL && now >= t->end_ns) {
        finish(t, TP_TRACE_END_TIME);
        t = NULL;
    }
    if (t == NULL) {
        clear_marks(a);
        pthread_mutex_unlock(&sys->trace_lock);
    }
    return t;
}

// Numbers `ev`, keeps it unless the rate or a full ring drops it, and
// ends the trace at its count. The caller then releases trace_lock.
static void
put(tp_trace *t, tp_actor *a, tp_trace_event *ev, int64_t now, bool always)
{
    ev->seq = ++t->seq;
    ev->at_us = (now - t->start_ns) / 1000;
    ev->actor = t->pid;
    if (now - t->window_ns >= NS) {
        t->window_ns = now;
        t->in_window = 0;
    }
    if (t->len == RING || (t->in_window >= t->rate && !always)) {
        t->dropped++;
    } else {
        t->ring[(t->head + t->len) % RING] = *ev;
        t->len++;
        t->recorded++;
        t->in_window++;
        if (t->len == 1 || t->waiting > 0)
            wake(t);
    }
    if (t->seq >= t->count) {
        finish(t, TP_TRACE_END_COUNT);
        clear_marks(a);
    }
}

// What a trace must follow to record an event of `kind`.
static unsigned
what_of(tp_trace_kind kind)
{
    switch (kind) {
    case TP_TEV_RECEIVED:
        return TP_TRACE_RECEIVED;
    case TP_TEV_SENT:
        return TP_TRACE_SENT;
    case TP_TEV_SIGNAL:
        return TP_TRACE_SIGNALS;
    case TP_TEV_SPAWN:
    case TP_TEV_EXIT:
        return TP_TRACE_LIFE;
    default:
        return TP_TRACE_STATE;
    }
}

static void
record(tp_actor *a, tp_trace_event *ev)
{
    int64_t now = tp__now_ns();
    tp_trace *t = begin(a, now);
    if (t == NULL)
        return;
    // The marks may still carry an ended trace's kinds: this one decides.
    if (t->what & what_of(ev->kind))
        put(t, a, ev, now, false);
    pthread_mutex_unlock(&a->system->trace_lock);
}

// Copies `s` into an event's text, cut at a character boundary.
static void
text_set(char *out, const char *s)
{
    snprintf(out, TP_TRACE_TEXT, "%s", s ? s : "?");
    tp__utf8_trim(out, TP_TRACE_TEXT);
}

// ---- the events ------------------------------------------------------------

void
tp__trace_received(tp_actor *a, const tp__msg *m)
{
    tp_trace_event ev = {.kind = TP_TEV_RECEIVED,
                         .peer = m->pub.from,
                         .tag = m->pub.tag,
                         .size = (uint32_t)m->pub.size,
                         .wait_us = -1};
    if (m->enq != 0) {
        uint32_t units = tp__wait_stamp() - m->enq; // as tp__wait_note
        if (units > UINT32_MAX / 2)
            units = 0;
        ev.wait_us = (int64_t)((double)units * 1024.0 *
                               tp__tick_ns(a->system) / 1000.0);
    }
    record(a, &ev);
}

void
tp__trace_sent(tp_actor *a, tp_pid to, uint32_t tag, size_t size, int rc)
{
    tp_trace_event ev = {.kind = TP_TEV_SENT,
                         .peer = to,
                         .tag = tag,
                         .size = (uint32_t)size,
                         .result = rc};
    record(a, &ev);
}

void
tp__trace_signal(tp_actor *a, const tp__msg *m)
{
    static const char *const names[] = {
        [TP__MSG_LINK] = "link",           [TP__MSG_UNLINK] = "unlink",
        [TP__MSG_EXIT] = "exit",           [TP__MSG_MONITOR] = "monitor",
        [TP__MSG_DEMONITOR] = "demonitor", [TP__MSG_DOWN] = "down"};
    if (m->kind < TP__MSG_LINK || m->kind > TP__MSG_DOWN)
        return;
    tp_trace_event ev = {.kind = TP_TEV_SIGNAL, .peer = m->pub.from};
    text_set(ev.text, names[m->kind]);
    if (m->kind == TP__MSG_EXIT || m->kind == TP__MSG_DOWN)
        ev.reason = ((const tp__signal *)m->pub.data)->reason;
    record(a, &ev);
}

void
tp__trace_spawn(tp_actor *a, const tp_actor *child)
{
    tp_trace_event ev = {.kind = TP_TEV_SPAWN, .peer = child->pid};
    text_set(ev.text, child->behaviour->name);
    record(a, &ev);
}

void
tp__trace_exit(tp_actor *a, int reason)
{
    int64_t now = tp__now_ns();
    tp_trace *t = begin(a, now);
    if (t == NULL)
        return;
    if (t->what & TP_TRACE_LIFE) {
        tp_trace_event ev = {.kind = TP_TEV_EXIT, .reason = reason};
        // Past the rate: the last event says why the trace ended.
        put(t, a, &ev, now, true);
    }
    finish(t, TP_TRACE_END_EXITED);
    clear_marks(a);
    pthread_mutex_unlock(&a->system->trace_lock);
}

void
tp__trace_shutdown(tp_system *sys)
{
    pthread_mutex_lock(&sys->trace_lock);
    for (unsigned i = 0; i < TP_TRACE_MAX; i++)
        if (sys->traces[i] != NULL)
            finish(sys->traces[i], TP_TRACE_END_STOPPED);
    pthread_mutex_unlock(&sys->trace_lock);
}

// ---- the public calls ------------------------------------------------------

static int
opts_fill(const tp_trace_opts *o, tp_trace *t)
{
    tp_trace_opts d = o != NULL ? *o : (tp_trace_opts){0};
    if ((d.what & ~(unsigned)TP_TRACE_ALL) != 0 || d.count > LIMIT ||
        d.rate > LIMIT || d.seconds > SECONDS_MAX)
        return TP_EINVAL;
    t->what = d.what != 0 ? d.what : TP_TRACE_ALL;
    t->count = d.count != 0 ? d.count : DEFAULT_COUNT;
    t->rate = d.rate != 0 ? d.rate : DEFAULT_RATE;
    t->start_ns = tp__now_ns();
    t->window_ns = t->start_ns;
    t->end_ns =
        t->start_ns + (d.seconds != 0 ? d.seconds : DEFAULT_SECONDS) * NS;
    return 0;
}

// Lists `t` for `a` and marks `a`; under trace_lock.
static int
list(tp_trace *t, tp_actor *a)
{
    tp_system *sys = t->sys;
    // Traces past their time end now, not at their next event or read:
    // they hold neither the actor nor a place.
    for (unsigned i = 0; i < TP_TRACE_MAX; i++)
        if (sys->traces[i] != NULL && t->start_ns >= sys->traces[i]->end_ns)
            finish(sys->traces[i], TP_TRACE_END_TIME);
    if (find(sys, t->pid) != NULL)
        return TP_EEXIST;
    unsigned i = 0;
    while (i < TP_TRACE_MAX && sys->traces[i] != NULL)
        i++;
    if (i == TP_TRACE_MAX)
        return TP_EAGAIN;
    sys->traces[i] = t;
    t->slot = i + 1;
    // An ended trace's kinds may still be marked: this trace's replace
    // them. seq_cst, both: pairs with tp__bury's store of `dead` and load
    // of the marks.
    clear_marks(a);
    atomic_fetch_or_explicit(&a->marks,
                             (uint8_t)(t->what << TP__MARK_TRACE_SHIFT),
                             memory_order_seq_cst);
    if (atomic_load_explicit(&a->dead, memory_order_seq_cst))
        finish(t, TP_TRACE_END_EXITED);
    return 0;
}

int
tp_trace_start(tp_system *sys, tp_pid pid, const tp_trace_opts *opts,
               tp_trace **out)
{
    if (sys == NULL || out == NULL)
        return TP_EINVAL;
    tp_trace *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TP_ENOMEM;
    t->sys = sys;
    t->pid = pid;
    int rc = opts_fill(opts, t);
    if (rc == 0 &&
        atomic_load_explicit(&sys->shutting_down, memory_order_acquire))
        rc = TP_ESHUTDOWN;
    if (rc == 0 && (tp_pid_is_nil(pid) || tp_pid_node(pid) != 0))
        rc = TP_ENOACTOR;
    if (rc != 0) {
        free(t);
        return rc;
    }
    bool ext = !on_own_worker(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *a = tp__actor_lookup(sys, pid);
    if (a == NULL) {
        rc = TP_ENOACTOR;
    } else {
        pthread_mutex_lock(&sys->trace_lock);
        rc = list(t, a);
        pthread_mutex_unlock(&sys->trace_lock);
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    if (rc != 0) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

// The CLOCK_MONOTONIC time `ns` as a condition variable's deadline.
static struct timespec
at(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / NS, .tv_nsec = ns % NS};
}

int
tp_trace_read(tp_trace *t, tp_trace_event *out, size_t max, int timeout_ms)
{
    if (t == NULL || out == NULL || max == 0 || timeout_ms < -1)
        return TP_EINVAL;
    if (timeout_ms != 0 && (tp__self.actor != NULL || tp__self.worker != NULL))
        return TP_EPERM;
    tp_system *sys = t->sys;
    int64_t until = timeout_ms < 0
                        ? INT64_MAX
                        : tp__now_ns() + (int64_t)timeout_ms * 1000000;
    int n = 0;
    pthread_mutex_lock(&sys->trace_lock);
    for (;;) {
        if (t->len > 0) {
            while ((size_t)n < max && t->len > 0) {
                out[n++] = t->ring[t->head];
                t->head = (t->head + 1) % RING;
                t->len--;
            }
            break;
        }
        int64_t now = tp__now_ns();
        if (t->end == TP_TRACE_RUNNING && now >= t->end_ns)
            finish(t, TP_TRACE_END_TIME);
        if (t->end != TP_TRACE_RUNNING) {
            n = TP_ESHUTDOWN;
            break;
        }
        if (now >= until)
            break;
        struct timespec dl = at(until < t->end_ns ? until : t->end_ns);
        t->waiting++;
        pthread_cond_timedwait(&sys->trace_cond, &sys->trace_lock, &dl);
        // A tp_trace_stop waits for the readers to leave before it frees.
        if (--t->waiting == 0 && t->end != TP_TRACE_RUNNING)
            pthread_cond_broadcast(&sys->trace_cond);
    }
    pthread_mutex_unlock(&sys->trace_lock);
    return n;
}

void
tp_trace_status_get(tp_trace *t, tp_trace_status *out)
{
    if (t == NULL || out == NULL)
        return;
    pthread_mutex_lock(&t->sys->trace_lock);
    if (t->end == TP_TRACE_RUNNING && tp__now_ns() >= t->end_ns)
        finish(t, TP_TRACE_END_TIME);
    *out = (tp_trace_status){.pid = t->pid,
                             .end = t->end,
                             .events = t->recorded,
                             .dropped = t->dropped};
    pthread_mutex_unlock(&t->sys->trace_lock);
}

void
tp_trace_stop(tp_trace **pt)
{
    if (pt == NULL || *pt == NULL)
        return;
    tp_trace *t = *pt;
    pthread_mutex_lock(&t->sys->trace_lock);
    finish(t, TP_TRACE_END_STOPPED); // wakes a reader waiting in a read
    while (t->waiting > 0)
        pthread_cond_wait(&t->sys->trace_cond, &t->sys->trace_lock);
    pthread_mutex_unlock(&t->sys->trace_lock);
    free(t);
    *pt = NULL;
}

bool
tp_traced(tp_ctx *ctx, unsigned what)
{
    return tp__check_ctx(ctx) == 0 &&
           tp__traced((tp_actor *)ctx, what & TP_TRACE_ALL);
}

void
tp_trace_note(tp_ctx *ctx, const char *fmt, ...)
{
    if (!tp_traced(ctx, TP_TRACE_STATE) || fmt == NULL)
        return;
    tp_trace_event ev = {.kind = TP_TEV_NOTE};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.text, sizeof ev.text, fmt, ap);
    va_end(ap);
    tp__utf8_trim(ev.text, sizeof ev.text);
    record((tp_actor *)ctx, &ev);
}

void
tp_trace_state(tp_ctx *ctx, const char *from, const char *to)
{
    if (!tp_traced(ctx, TP_TRACE_STATE))
        return;
    tp_trace_event ev = {.kind = TP_TEV_STATE};
    snprintf(ev.text, sizeof ev.text, "%s -> %s", from ? from : "?",
             to ? to : "?");
    tp__utf8_trim(ev.text, sizeof ev.text);
    record((tp_actor *)ctx, &ev);
}

void
tp__trace_notify(tp_trace *t, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&t->sys->trace_lock);
    t->notify = fn;
    t->notify_arg = arg;
    pthread_mutex_unlock(&t->sys->trace_lock);
}
