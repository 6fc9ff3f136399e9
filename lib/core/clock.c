// SPDX-License-Identifier: MIT
// The runtime's one clock: every time it reads, every deadline it waits
// for and every condition variable it waits on uses CLOCK_MONOTONIC (or
// its coarse variant where a millisecond is enough), so a change to the
// wall clock never moves a timeout. The activation tick count (tp__ticks,
// core.h) is calibrated against it here.
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t
tp__now_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
tp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
tp__now_ms(void)
{
    return tp__now_ns() / 1000000;
}

void
tp__deadline(struct timespec *dl, int timeout_ms)
{
    TP_ASSERT(timeout_ms >= 0);
    clock_gettime(CLOCK_MONOTONIC, dl);
    dl->tv_sec += timeout_ms / 1000;
    dl->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl->tv_nsec >= 1000000000) {
        dl->tv_sec++;
        dl->tv_nsec -= 1000000000;
    }
}

int
tp__cond_init(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return -rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
    return -rc;
}

// Reads the monotonic clock and the tick count as one pair: the clock
// read bracketed by two tick reads, retried while a preemption or an
// interrupt widened the bracket, so the pair is never a time slice apart.
static void
tick_pair(int64_t *ns, uint64_t *ticks)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        uint64_t a = tp__ticks();
        int64_t n = tp__now_ns();
        uint64_t b = tp__ticks();
        if (b - a < best) {
            best = b - a;
            *ns = n;
            *ticks = a + (b - a) / 2;
        }
        if (best < 20000)
            break;
    }
}

// Marks the start of the system's life for the tick rate and, when run
// time is measured on x86-64, takes a first measurement over 200 us
// (within about 1 %) for snapshots of a system younger than a second.
void
tp__tick_calibrate(tp_system *sys)
{
    tick_pair(&sys->born_ns, &sys->born_ticks);
    sys->tick_ns0 = 1.0;
#if defined(__x86_64__)
    if (!sys->cfg.cpu_time)
        return;
    int64_t ns;
    uint64_t t;
    do {
        tick_pair(&ns, &t);
        ns -= sys->born_ns;
        t -= sys->born_ticks;
    } while (ns < 200000);
    if (t > 0)
        sys->tick_ns0 = (double)ns / (double)t;
#endif
}

// Measured over the system's whole life once it is a second old: exact to
// a few parts per million after that.
double
tp__tick_ns(tp_system *sys)
{
#if defined(__x86_64__)
    int64_t ns;
    uint64_t t;
    tick_pair(&ns, &t);
    ns -= sys->born_ns;
    t -= sys->born_ticks;
    if (ns >= 1000000000 && t > 0)
        return (double)ns / (double)t;
    // Without cpu_time nothing was measured at birth (tick_ns0 is 1): a
    // millisecond gives the rate within a few parts in ten thousand, what
    // a trace's wait times need.
    if (!sys->cfg.cpu_time && ns >= 1000000 && t > 0)
        return (double)ns / (double)t;
    return sys->tick_ns0;
#else
    (void)sys;
    return 1.0; // ticks are nanoseconds
#endif
}

// ---- message waits per behaviour
// --------------------------------------------

void
tp__utf8_trim(char *out, size_t size)
{
    size_t n = strlen(out);
    if (n == size - 1) { // cut: drop a partial UTF-8 sequence at the end
        size_t i = n;
        while (i > 0 && ((unsigned char)out[i - 1] & 0xc0) == 0x80)
            i--;
        if (i > 0 && ((unsigned char)out[i - 1] & 0xc0) == 0xc0) {
            unsigned char lead = (unsigned char)out[i - 1];
            size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (n - (i - 1) < want)
                out[i - 1] = '\0';
        }
    }
}

// Copies behaviour `beh`'s name, cut at a character boundary.
static void
row_name(char *out, size_t size, const tp_behaviour *beh)
{
    snprintf(out, size, "%s", beh->name ? beh->name : "?");
    tp__utf8_trim(out, size);
}

// Whether row `r` counts for `beh`: the same behaviour and name string
// (a module loaded again where an unloaded one was is told apart by its
// name's address, without a string comparison per message).
static bool
row_is(const tp__wait_row *r, const tp_behaviour *beh)
{
    // relaxed: the owner's own row (or one read under the lock).
    return atomic_load_explicit(&r->b, memory_order_relaxed) == beh &&
           r->name_at == beh->name;
}

static void
row_add(tp__wait_row *r, unsigned b, uint64_t ns)
{
    // relaxed, both: one writer at a time (the owner, or under the lock).
    atomic_store_explicit(
        &r->sum_ns,
        atomic_load_explicit(&r->sum_ns, memory_order_relaxed) + ns,
        memory_order_relaxed);
    atomic_store_explicit(
        &r->bucket[b],
        atomic_load_explicit(&r->bucket[b], memory_order_relaxed) + 1,
        memory_order_relaxed);
}

// The shared rows, for threads without rows of their own or out of them.
static void
shared_count(tp_system *sys, const tp_behaviour *beh, unsigned b, uint64_t ns)
{
    pthread_mutex_lock(&sys->wait_rows_lock);
    tp__wait_row *r = NULL;
    for (size_t i = 0; i < sys->nwait_shared && r == NULL; i++)
        if (row_is(&sys->wait_shared[i], beh))
            r = &sys->wait_shared[i];
    if (r == NULL && sys->nwait_shared == sys->capwait_shared) {
        size_t cap = sys->capwait_shared ? 2 * sys->capwait_shared : 8;
        tp__wait_row *g = realloc(sys->wait_shared, cap * sizeof *g);
        if (g != NULL) {
            sys->wait_shared = g;
            sys->capwait_shared = cap;
        }
    }
    if (r == NULL && sys->nwait_shared < sys->capwait_shared) {
        r = &sys->wait_shared[sys->nwait_shared++];
        memset(r, 0, sizeof *r);
        atomic_store_explicit(&r->b, beh, memory_order_relaxed);
        r->name_at = beh->name;
        row_name(r->name, sizeof r->name, beh);
    }
    if (r != NULL) // else out of memory: this wait goes uncounted
        row_add(r, b, ns);
    pthread_mutex_unlock(&sys->wait_rows_lock);
}

void
tp__wait_count(tp__worker *w, const tp_behaviour *beh, unsigned b, uint64_t ns)
{
    tp_system *sys = w->sys;
    // relaxed: our own pointer.
    tp__wait_row *rows =
        w->ded != NULL
            ? NULL
            : atomic_load_explicit(&w->wait_rows, memory_order_relaxed);
    if (w->ded == NULL && rows == NULL &&
        (rows = calloc(TP__WAIT_ROWS, sizeof *rows)) != NULL)
        // release: a reader that sees the pointer sees the zeroed rows.
        atomic_store_explicit(&w->wait_rows, rows, memory_order_release);
    if (rows == NULL) {
        shared_count(sys, beh, b, ns);
        return;
    }
    size_t h = ((uintptr_t)beh >> 4) % TP__WAIT_ROWS;
    for (size_t i = 0; i < TP__WAIT_ROWS; i++) {
        tp__wait_row *r = &rows[(h + i) % TP__WAIT_ROWS];
        // relaxed: only this thread claims our rows.
        const tp_behaviour *rb =
            atomic_load_explicit(&r->b, memory_order_relaxed);
        if (rb == NULL) {
            r->name_at = beh->name;
            row_name(r->name, sizeof r->name, beh);
            // release: a reader that sees the row claimed sees its name.
            atomic_store_explicit(&r->b, beh, memory_order_release);
            row_add(r, b, ns);
            return;
        }
        if (row_is(r, beh)) {
            row_add(r, b, ns);
            return;
        }
    }
    shared_count(sys, beh, b, ns); // TP__WAIT_ROWS behaviours here already
}

// Adds row `r` into the table `out` of `*n` names (room for `max`);
// counts the names in `*names` either way.
static void
hist_add(tp__wait_hist *out, size_t *n, size_t max, size_t *names,
         const tp__wait_row *r)
{
    size_t i = 0;
    while (i < *n && strcmp(out[i].behaviour, r->name) != 0)
        i++;
    if (i == *n) {
        (*names)++;
        if (*n == max)
            return;
        memset(&out[i], 0, sizeof out[i]);
        memcpy(out[i].behaviour, r->name, sizeof out[i].behaviour);
        (*n)++;
    }
    // relaxed, all: single-writer counters, read for display.
    out[i].sum_ns += atomic_load_explicit(&r->sum_ns, memory_order_relaxed);
    for (unsigned b = 0; b < TP_WAIT_BUCKETS; b++) {
        uint64_t c = atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
        out[i].bucket[b] += c;
        out[i].count += c;
    }
}

size_t
tp__wait_by_behaviour(tp_system *sys, tp__wait_hist *out, size_t max)
{
    size_t n = 0, names = 0;
    for (unsigned i = 0; i < sys->nworkers; i++) {
        // acquire: pairs with the worker's release store of its rows.
        tp__wait_row *rows = atomic_load_explicit(&sys->workers[i].wait_rows,
                                                  memory_order_acquire);
        for (size_t j = 0; rows != NULL && j < TP__WAIT_ROWS; j++)
            // acquire: pairs with the claim's release, for the name.
            if (atomic_load_explicit(&rows[j].b, memory_order_acquire) != NULL)
                hist_add(out, &n, max, &names, &rows[j]);
    }
    pthread_mutex_lock(&sys->wait_rows_lock);
    for (size_t j = 0; j < sys->nwait_shared; j++)
        hist_add(out, &n, max, &names, &sys->wait_shared[j]);
    pthread_mutex_unlock(&sys->wait_rows_lock);
    return names;
}

void
tp__wait_rows_free(tp__worker *w)
{
    // relaxed: no scheduler thread runs.
    free(atomic_load_explicit(&w->wait_rows, memory_order_relaxed));
    atomic_store_explicit(&w->wait_rows, NULL, memory_order_relaxed);
}
