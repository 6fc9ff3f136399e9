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
    return sys->tick_ns0;
#else
    (void)sys;
    return 1.0; // ticks are nanoseconds
#endif
}

// ---- waits of dead actors, per behaviour -----------------------------------

void
tp__wait_fold(tp_actor *a)
{
    tp__clock *k = tp__clock_of(a);
    tp_system *sys = a->system;
    // relaxed, all: this actor's own counters, written by it alone.
    uint64_t counts[TP_WAIT_BUCKETS], n = 0;
    for (unsigned i = 0; i < TP_WAIT_BUCKETS; i++)
        n += counts[i] =
            atomic_load_explicit(&k->wait[i], memory_order_relaxed);
    if (n == 0)
        return;
    const char *name = a->behaviour->name ? a->behaviour->name : "?";
    pthread_mutex_lock(&sys->fold_lock);
    tp__wait_hist *h = NULL;
    for (size_t i = 0; i < sys->nfolds && h == NULL; i++)
        if (strncmp(sys->folds[i].behaviour, name, sizeof h->behaviour - 1) ==
            0)
            h = &sys->folds[i];
    if (h == NULL && sys->nfolds == sys->capfolds) {
        size_t cap = sys->capfolds ? 2 * sys->capfolds : 8;
        tp__wait_hist *f = realloc(sys->folds, cap * sizeof *f);
        if (f != NULL) {
            sys->folds = f;
            sys->capfolds = cap;
        }
    }
    if (h == NULL && sys->nfolds < sys->capfolds) {
        h = &sys->folds[sys->nfolds++];
        memset(h, 0, sizeof *h);
        snprintf(h->behaviour, sizeof h->behaviour, "%s", name);
    }
    if (h != NULL) { // else out of memory: these waits go uncounted
        h->count += n;
        h->sum_ns +=
            atomic_load_explicit(&k->wait_sum_ns, memory_order_relaxed);
        for (unsigned i = 0; i < TP_WAIT_BUCKETS; i++)
            h->bucket[i] += counts[i];
    }
    pthread_mutex_unlock(&sys->fold_lock);
}

size_t
tp__wait_folded(tp_system *sys, tp__wait_hist *out, size_t max)
{
    pthread_mutex_lock(&sys->fold_lock);
    size_t n = sys->nfolds;
    if (out != NULL && max > 0 && n > 0)
        memcpy(out, sys->folds, (n < max ? n : max) * sizeof *out);
    pthread_mutex_unlock(&sys->fold_lock);
    return n;
}
