// SPDX-License-Identifier: MIT
// Test systems (troupe/test.h): one worker whose thread never starts; the
// test's thread takes its place for one activation at a time. Every way
// an actor becomes ready (a send, a timer, a requeue after an activation,
// a muted sender released) ends in tp__test_ready instead of a run queue,
// and a step draws which ready actor runs from the seed (splitmix64). As
// long as the test's own calls are the same, the same seed makes the same
// draws on the same list, so the interleaving replays exactly.
//
// Timers read the virtual clock (tp__test_now_ns) instead of the real one
// and are fired by tp_test_advance, on this thread. Faults are a short
// list looked up only for actors marked TP__MARK_FAULT: the check on the
// hot paths is the same byte test as tracing's.
#include "core/actor.h"
#include "core/sched.h"

#include <stdlib.h>
#include <string.h>

enum { F_CRASH_AT, F_CRASH_TAG, F_INIT, F_DROP, F_HOLD };

typedef struct fault {
    int kind;
    tp_pid pid, to; // the actor (the sender for DROP and HOLD), receiver
    uint32_t n;     // CRASH_AT, INIT: messages/spawns to go; DROP: left
    uint32_t tag;   // CRASH_TAG
    char name[64];  // INIT: the behaviour's
} fault;

typedef struct held {
    tp__msg *m;
    tp_pid from, to;
} held;

struct tp__test {
    pthread_mutex_t lock; // the ready list: other threads may schedule
    uint64_t rng;
    int64_t now_ns;
    tp_actor **ready;
    size_t nready, capready;
    fault *faults;
    size_t nfaults, capfaults;
    held *held;
    size_t nheld, capheld;
    void *net; // a net's member (lib/dist/net.c): its hooks
    const tp__test_net_ops *ops;
};

static bool
grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (q == NULL)
        return false;
    *p = q;
    *cap = c;
    return true;
}

// ---- the system's side -----------------------------------------------------

int
tp_test_system_new(const tp_config *cfg, uint64_t seed, tp_system **out)
{
    if (out == NULL)
        return TP_EINVAL;
    tp_config c = cfg != NULL ? *cfg : (tp_config){0};
    c.threads = 1;
    c.batch = 1;
    c.cpu_time = false;
    c.stall_ms = -1;
    tp__test *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TP_ENOMEM;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return TP_ENOMEM;
    }
    t->rng = seed;
    int rc = tp_system_new(&c, out);
    if (rc != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return rc;
    }
    (*out)->test = t;
    return 0;
}

bool
tp_test_system(const tp_system *sys)
{
    return sys != NULL && sys->test != NULL;
}

void
tp__test_free(tp_system *sys)
{
    tp__test *t = sys->test;
    if (t == NULL)
        return;
    if (t->ops != NULL)
        t->ops->leave(sys);
    for (size_t i = 0; i < t->nheld; i++)
        tp__msg_free(t->held[i].m);
    free(t->held);
    free(t->faults);
    free(t->ready);
    pthread_mutex_destroy(&t->lock);
    free(t);
    sys->test = NULL;
}

int64_t
tp__test_now_ns(const tp_system *sys)
{
    // The test's thread moves it; others (a timer armed from the I/O
    // thread) read a value a step old at worst.
    return __atomic_load_n(&sys->test->now_ns, __ATOMIC_RELAXED);
}

void
tp__test_ready(tp_system *sys, tp_actor *a)
{
    tp__test *t = sys->test;
    pthread_mutex_lock(&t->lock);
    if (!grow((void **)&t->ready, &t->capready, t->nready, sizeof *t->ready))
        tp__assert_fail("the ready list could grow (out of memory)", __FILE__,
                        __LINE__, __func__);
    t->ready[t->nready++] = a;
    pthread_mutex_unlock(&t->lock);
}

static uint64_t
draw(tp__test *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int
check(tp_system *sys)
{
    if (sys == NULL || sys->test == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    return 0;
}

int
tp_test_step(tp_system *sys, tp_pid *ran)
{
    int rc = check(sys);
    if (rc != 0)
        return rc;
    tp__test *t = sys->test;
    if (t->ops != NULL)
        t->ops->poll(sys); // what the net brought it
    pthread_mutex_lock(&t->lock);
    if (t->nready == 0) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    size_t i = (size_t)(draw(t) % t->nready);
    tp_actor *a = t->ready[i];
    // Keeps the others in their order: the next draw sees the same list
    // whatever this one took.
    memmove(&t->ready[i], &t->ready[i + 1],
            (t->nready - i - 1) * sizeof *t->ready);
    t->nready--;
    pthread_mutex_unlock(&t->lock);
    tp__worker *w = &sys->workers[0];
    tp__self.worker = w;
    tp__announce(w);
    if (w->limbo.head != NULL || w->ready.head != NULL)
        tp__worker_reclaim_some(w, 64);
    tp_pid pid = a->pid;
    tp__actor_run(w, a);
    // Remote sends the activation held back, as a worker sends them
    // (sched.c): only a started node corks.
    if (tp__corked.npeers > 0)
        atomic_load_explicit(&sys->dist, memory_order_acquire)->uncork();
    tp__go_idle(w);
    tp__self.worker = NULL;
    if (ran != NULL)
        *ran = pid;
    return 1;
}

long
tp_test_run(tp_system *sys, long max_steps)
{
    int rc = check(sys);
    if (rc != 0 || max_steps < 0)
        return rc != 0 ? rc : TP_EINVAL;
    long n = 0;
    while (n < max_steps && tp_test_step(sys, NULL) == 1)
        n++;
    pthread_mutex_lock(&sys->test->lock);
    bool more = sys->test->nready > 0;
    pthread_mutex_unlock(&sys->test->lock);
    if (n == max_steps && more)
        return TP_ETIMEDOUT;
    return n;
}

uint64_t
tp_test_random(tp_system *sys)
{
    if (sys == NULL || sys->test == NULL)
        return 0;
    pthread_mutex_lock(&sys->test->lock);
    uint64_t r = draw(sys->test);
    pthread_mutex_unlock(&sys->test->lock);
    return r;
}

int64_t
tp_now_ms(tp_system *sys)
{
    if (sys == NULL)
        return 0;
    return sys->test != NULL ? tp__test_now_ns(sys) / 1000000 : tp__now_ms();
}

int64_t
tp_test_now_ms(const tp_system *sys)
{
    return sys != NULL && sys->test != NULL ? tp__test_now_ns(sys) / 1000000
                                            : 0;
}

int
tp__test_clock_to(tp_system *sys, int64_t ns)
{
    tp__test *t = sys->test;
    if (ns > t->now_ns)
        __atomic_store_n(&t->now_ns, ns, __ATOMIC_RELAXED);
    int n = sys->up->timers_fire_due(sys, t->now_ns);
    if (t->ops != NULL)
        t->ops->fire(sys);
    return n;
}

int64_t
tp__test_next_due_ns(tp_system *sys)
{
    tp__test *t = sys->test;
    int64_t due = sys->up->timers_next_due(sys);
    int64_t io = t->ops != NULL ? t->ops->next_due(sys) : -1;
    return due < 0 || (io >= 0 && io < due) ? io : due;
}

int64_t
tp__test_actor_due_ns(tp_system *sys)
{
    return sys->up->timers_next_due(sys);
}

// Moves the clock to `to_ns` (never back) and fires what is due, in
// order: a stepped loop's repeating timers once per period passed.
static int
advance_to(tp_system *sys, int64_t to_ns)
{
    tp__test *t = sys->test;
    int n = 0;
    for (int64_t due; t->ops != NULL &&
                      (due = tp__test_next_due_ns(sys)) >= 0 && due <= to_ns;)
        n += tp__test_clock_to(sys, due);
    return n + tp__test_clock_to(sys, to_ns);
}

int
tp_test_advance(tp_system *sys, uint32_t ms)
{
    int rc = check(sys);
    if (rc != 0)
        return rc;
    return advance_to(sys, sys->test->now_ns + (int64_t)ms * 1000000);
}

int64_t
tp_test_next_timer_ms(tp_system *sys)
{
    if (sys == NULL || sys->test == NULL)
        return -1;
    int64_t due = tp__test_next_due_ns(sys);
    if (due < 0)
        return -1;
    int64_t left = due - sys->test->now_ns;
    return left > 0 ? (left + 999999) / 1000000 : 0;
}

// Steps until done(arg); moves the clock to the next timer whenever no
// actor is ready. Returns the steps run, or TP_ETIMEDOUT after max_steps,
// when nothing is left to run and no timer is set, or when the next timer
// is past `until_ns` (-1: none), the clock then moved to it.
static long
drive(tp_system *sys, bool (*done)(void *), void *arg, long max_steps,
      int64_t until_ns)
{
    if (sys->test->ops != NULL)
        return sys->test->ops->drive(sys, done, arg, max_steps, until_ns);
    long n = 0;
    while (!done(arg)) {
        if (n >= max_steps)
            return TP_ETIMEDOUT;
        if (tp_test_step(sys, NULL) == 1) {
            n++;
            continue;
        }
        int64_t due = sys->up->timers_next_due(sys);
        if (due < 0 || (until_ns >= 0 && due > until_ns)) {
            if (until_ns >= 0)
                advance_to(sys, until_ns);
            return TP_ETIMEDOUT;
        }
        advance_to(sys, due);
    }
    return n;
}

long
tp__test_drive(tp_system *sys, bool (*done)(void *), void *arg, int timeout_ms)
{
    int64_t until = timeout_ms < 0
                        ? -1
                        : sys->test->now_ns + (int64_t)timeout_ms * 1000000;
    return drive(sys, done, arg, TP__TEST_DRIVE_MAX, until);
}

long
tp_test_run_until(tp_system *sys, bool (*pred)(void *arg), void *arg,
                  long max_steps)
{
    int rc = check(sys);
    if (rc != 0 || pred == NULL || max_steps < 0)
        return rc != 0 ? rc : TP_EINVAL;
    return drive(sys, pred, arg, max_steps, -1);
}

// ---- nets (lib/dist/net.c)
// --------------------------------------------------

int
tp__test_net_set(tp_system *sys, void *net, const tp__test_net_ops *ops)
{
    tp__test *t = sys->test;
    if (net != NULL && t->net != NULL)
        return TP_EEXIST;
    t->net = net;
    t->ops = ops;
    return 0;
}

void *
tp__test_net_of(const tp_system *sys)
{
    return sys != NULL && sys->test != NULL ? sys->test->net : NULL;
}

bool
tp__test_stepped(const tp_system *sys)
{
    return tp__test_net_of(sys) != NULL;
}

size_t
tp__test_nready(tp_system *sys)
{
    tp__test *t = sys->test;
    pthread_mutex_lock(&t->lock);
    size_t n = t->nready;
    pthread_mutex_unlock(&t->lock);
    return n;
}

// ---- faults ----------------------------------------------------------------

// Marks the live local actor `pid` as having faults; 0 or TP_ENOACTOR.
static int
mark(tp_system *sys, tp_pid pid)
{
    if (tp_pid_node(pid) != 0)
        return TP_ENOACTOR;
    pthread_rwlock_rdlock(&sys->ext_lock);
    tp_actor *a = tp__actor_lookup(sys, pid);
    if (a != NULL)
        // relaxed: read on this thread, by the steps that follow.
        atomic_fetch_or_explicit(&a->marks, TP__MARK_FAULT,
                                 memory_order_relaxed);
    pthread_rwlock_unlock(&sys->ext_lock);
    return a != NULL ? 0 : TP_ENOACTOR;
}

static int
add(tp_system *sys, const fault *f, bool marks)
{
    int rc = check(sys);
    if (rc != 0)
        return rc == TP_EPERM ? rc : TP_EINVAL;
    if (marks && (rc = mark(sys, f->pid)) != 0)
        return rc;
    tp__test *t = sys->test;
    pthread_mutex_lock(&t->lock);
    bool ok = grow((void **)&t->faults, &t->capfaults, t->nfaults,
                   sizeof *t->faults);
    if (ok)
        t->faults[t->nfaults++] = *f;
    pthread_mutex_unlock(&t->lock);
    return ok ? 0 : TP_ENOMEM;
}

static void
drop_fault(tp__test *t, size_t i)
{
    t->faults[i] = t->faults[--t->nfaults];
}

int
tp_test_crash_at(tp_system *sys, tp_pid pid, uint32_t nth)
{
    if (nth == 0)
        return TP_EINVAL;
    return add(sys, &(fault){.kind = F_CRASH_AT, .pid = pid, .n = nth}, true);
}

int
tp_test_crash_on_tag(tp_system *sys, tp_pid pid, uint32_t tag)
{
    return add(sys, &(fault){.kind = F_CRASH_TAG, .pid = pid, .tag = tag},
               true);
}

int
tp_test_fail_init(tp_system *sys, const char *behaviour, uint32_t nth)
{
    if (behaviour == NULL || nth == 0 || strlen(behaviour) >= 64)
        return TP_EINVAL;
    fault f = {.kind = F_INIT, .n = nth};
    strcpy(f.name, behaviour);
    return add(sys, &f, false);
}

int
tp_test_drop(tp_system *sys, tp_pid from, tp_pid to, uint32_t count)
{
    if (count == 0 || tp_pid_node(to) != 0 || tp_pid_is_nil(to))
        return TP_EINVAL;
    return add(sys,
               &(fault){.kind = F_DROP, .pid = from, .to = to, .n = count},
               true);
}

int
tp_test_hold(tp_system *sys, tp_pid from, tp_pid to)
{
    if (tp_pid_node(to) != 0 || tp_pid_is_nil(to))
        return TP_EINVAL;
    return add(sys, &(fault){.kind = F_HOLD, .pid = from, .to = to}, true);
}

int
tp_test_release(tp_system *sys, tp_pid from, tp_pid to)
{
    int rc = check(sys);
    if (rc != 0)
        return rc == TP_EPERM ? rc : TP_EINVAL;
    tp__test *t = sys->test;
    bool found = false;
    for (size_t i = 0; i < t->nfaults; i++)
        if (t->faults[i].kind == F_HOLD && tp_pid_eq(t->faults[i].pid, from) &&
            tp_pid_eq(t->faults[i].to, to)) {
            drop_fault(t, i);
            found = true;
            break;
        }
    int n = 0;
    for (size_t i = 0; i < t->nheld;) {
        held h = t->held[i];
        if (!tp_pid_eq(h.from, from) || !tp_pid_eq(h.to, to)) {
            i++;
            continue;
        }
        memmove(&t->held[i], &t->held[i + 1],
                (t->nheld - i - 1) * sizeof *t->held);
        t->nheld--;
        // Past a full mailbox: the sender was told it was sent.
        if (tp__deliver_force(sys, to, h.m) != 0) {
            tp__msg_free(h.m);
            // relaxed: a statistic.
            atomic_fetch_add_explicit(&sys->dead_letters, 1,
                                      memory_order_relaxed);
        }
        n++;
    }
    return found || n > 0 ? n : TP_ENOENT;
}

// Whether `a`, marked, crashes on `m` instead of handling it.
bool
tp__test_crashes(tp_actor *a, const tp__msg *m)
{
    tp__test *t = a->system->test;
    if (t == NULL || m->kind != TP__MSG_USER)
        return false;
    for (size_t i = 0; i < t->nfaults; i++) {
        fault *f = &t->faults[i];
        if (!tp_pid_eq(f->pid, a->pid))
            continue;
        if ((f->kind == F_CRASH_AT && --f->n == 0) ||
            (f->kind == F_CRASH_TAG && f->tag == m->pub.tag)) {
            drop_fault(t, i);
            return true;
        }
    }
    return false;
}

void
tp__test_forget(tp_actor *a)
{
    tp__test *t = a->system->test;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nfaults;)
        if (t->faults[i].kind != F_INIT && tp_pid_eq(t->faults[i].pid, a->pid))
            drop_fault(t, i);
        else
            i++;
}

// Whether the spawn of `b` is to fail as if its init crashed.
bool
tp__test_init_fails(tp_system *sys, const tp_behaviour *b)
{
    tp__test *t = sys->test;
    for (size_t i = 0; i < t->nfaults; i++) {
        fault *f = &t->faults[i];
        if (f->kind == F_INIT && b->name != NULL &&
            strcmp(f->name, b->name) == 0 && --f->n == 0) {
            drop_fault(t, i);
            return true;
        }
    }
    return false;
}

// What becomes of `m`, from marked actor `self` to `to`: 0 to send it,
// 1 when it was dropped or held (consumed).
int
tp__test_intercept(tp_actor *self, tp_pid to, tp__msg *m)
{
    tp_system *sys = self->system;
    tp__test *t = sys->test;
    if (t == NULL || m->kind != TP__MSG_USER)
        return 0;
    for (size_t i = 0; i < t->nfaults; i++) {
        fault *f = &t->faults[i];
        if ((f->kind != F_DROP && f->kind != F_HOLD) ||
            !tp_pid_eq(f->pid, self->pid) || !tp_pid_eq(f->to, to))
            continue;
        // A receiver gone ends the drop or hold: the send fails as usual.
        // (On this thread, the one running actors, a lookup is safe.)
        if (tp__actor_lookup(sys, to) == NULL) {
            drop_fault(t, i);
            return 0;
        }
        if (f->kind == F_DROP) {
            if (--f->n == 0)
                drop_fault(t, i);
            tp__msg_free(m);
            // relaxed: a statistic.
            atomic_fetch_add_explicit(&sys->dead_letters, 1,
                                      memory_order_relaxed);
            return 1;
        }
        if (!grow((void **)&t->held, &t->capheld, t->nheld, sizeof *t->held))
            return 0; // no memory to hold it: it goes through
        t->held[t->nheld++] = (held){m, self->pid, to};
        return 1;
    }
    return 0;
}

// ---- sweeping seeds --------------------------------------------------------

int
tp_test_sweep(uint64_t first, uint64_t count, tp_test_scenario fn, void *arg,
              uint64_t *failed)
{
    if (fn == NULL)
        return TP_EINVAL;
    for (uint64_t i = 0; i < count; i++) {
        int rc = fn(first + i, arg);
        if (rc != 0) {
            if (failed != NULL)
                *failed = first + i;
            return rc;
        }
    }
    return 0;
}
