// SPDX-License-Identifier: MIT
// The scheduler: one thread per actor at a time, fairness under a flood,
// every worker used under load, idle workers asleep.
#include "tp_test.h"

#include <pthread.h>
#include <time.h>

static _Atomic long guard_violations, guarded;

typedef struct guard_state {
    _Atomic int inside;
} guard_state;

static int
guard_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)msg;
    guard_state *g = state;
    if (atomic_exchange(&g->inside, 1) != 0)
        atomic_fetch_add(&guard_violations, 1);
    for (volatile int i = 0; i < 20; i++)
        ;
    atomic_store(&g->inside, 0);
    atomic_fetch_add(&guarded, 1);
    return TP_OK;
}

static const tp_behaviour guard_b = {.name = "guard",
                                     .state_size = sizeof(guard_state),
                                     .handle = guard_handle};

typedef struct spray {
    tp_pid targets[8];
    long left;
} spray;

static int
spray_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    spray *s = state;
    if (msg->tag == 1)
        *s = *(const spray *)msg->data;
    for (int i = 0; i < 64 && s->left > 0; i++, s->left--)
        if (tp_send(ctx, s->targets[s->left % 8], 3, NULL, 0) == TP_EFULL)
            break;
    return s->left > 0 ? tp_send(ctx, tp_self(ctx), 2, NULL, 0) : TP_STOP;
}

static const tp_behaviour spray_b = {
    .name = "spray", .state_size = sizeof(spray), .handle = spray_handle};

typedef struct ext_spray {
    tp_system *sys;
    tp_pid *targets;
    long n;
} ext_spray;

static void *
ext_spray_main(void *p)
{
    ext_spray *e = p;
    for (long i = 0; i < e->n; i++)
        while (tp_system_send(e->sys, e->targets[i % 8], 3, NULL, 0) != 0)
            ;
    return NULL;
}

START_TEST(test_never_two_threads_at_once)
{
    tp_system *sys = tpt_system(4);
    spray sp = {.left = tpt_scaled(200000)};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(tp_spawn(sys, &guard_b, NULL,
                                  &(tp_spawn_opts){.mailbox_capacity = 32},
                                  &sp.targets[i]),
                         0);
    for (int i = 0; i < 8; i++) {
        tp_pid p;
        ck_assert_int_eq(tp_spawn(sys, &spray_b, NULL, NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, &sp, sizeof sp), 0);
    }
    ext_spray e = {sys, sp.targets, tpt_scaled(50000)};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, ext_spray_main, &e);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert(tpt_wait_ge(&guarded, 8 * sp.left + 2 * e.n, 120));
    ck_assert_int_eq(atomic_load(&guard_violations), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Ping-pong keeps going while one actor is flooded.
static _Atomic long rounds, flood_seen;
static _Atomic int flood_done;

static int
pp_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    long n = *(const long *)msg->data;
    atomic_fetch_add(&rounds, 1);
    if (n == 0)
        return TP_OK;
    n--;
    tp_pid peer =
        msg->tag == 1
            ? *(const tp_pid *)((const char *)msg->data + sizeof(long))
            : msg->from;
    return tp_send(ctx, peer, 2, &n, sizeof n);
}

static const tp_behaviour pp_b = {.name = "pp", .handle = pp_handle};

static int
flood_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&flood_seen, 1);
    return TP_OK;
}

static const tp_behaviour flood_b = {.name = "flood", .handle = flood_handle};

static void *
flooder(void *p)
{
    ext_spray *e = p;
    while (!atomic_load(&flood_done))
        tp_system_send(e->sys, e->targets[0], 1, NULL, 0);
    return NULL;
}

static void
flood_vs_pingpong(unsigned threads)
{
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = threads, .send_timeout_ms = 10});
    tp_pid f, a, b;
    ck_assert_int_eq(tp_spawn(sys, &flood_b, NULL, NULL, &f), 0);
    ck_assert_int_eq(tp_spawn(sys, &pp_b, NULL, NULL, &a), 0);
    ck_assert_int_eq(tp_spawn(sys, &pp_b, NULL, NULL, &b), 0);
    ext_spray e = {sys, &f, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, flooder, &e);
    ck_assert(tpt_wait_ge(&flood_seen, 10000, 60)); // the flood is on
    struct {
        long n;
        tp_pid peer;
    } start = {20000, b};
    ck_assert_int_eq(tp_system_send(sys, a, 1, &start, sizeof start), 0);
    // 20,001 handled messages mean the game ran to its end meanwhile.
    ck_assert(tpt_wait_ge(&rounds, 20001, 60));
    ck_assert(!atomic_load(&flood_done));
    atomic_store(&flood_done, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    tp_system_destroy(&sys);
}

START_TEST(test_flood_does_not_starve_1_thread)
{
    flood_vs_pingpong(1);
}
END_TEST

START_TEST(test_flood_does_not_starve_2_threads)
{
    flood_vs_pingpong(2);
}
END_TEST

// Busy independent actors: every worker ends up running some.
static _Atomic long busy_done;

static int
busy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    long *left = state;
    if (msg->tag == 1)
        *left = 200;
    for (volatile int i = 0; i < 20000; i++)
        ;
    if (--*left == 0) {
        atomic_fetch_add(&busy_done, 1);
        return TP_STOP;
    }
    return tp_send(ctx, tp_self(ctx), 2, NULL, 0);
}

static const tp_behaviour busy_b = {
    .name = "busy", .state_size = sizeof(long), .handle = busy_handle};

static void
all_workers_busy(unsigned threads)
{
    tp_system *sys = tpt_system(threads);
    for (int i = 0; i < 64; i++) {
        tp_pid p;
        ck_assert_int_eq(tp_spawn(sys, &busy_b, NULL, NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, NULL, 0), 0);
    }
    ck_assert_int_eq(tp_system_wait(sys, 120000), 0);
    ck_assert_int_eq(atomic_load(&busy_done), 64);
    for (unsigned i = 0; i < threads; i++) {
        tp_worker_stats ws;
        ck_assert_int_eq(tp_worker_stats_get(sys, i, &ws), 0);
        ck_assert_msg(ws.activations > 0, "worker %u never ran an actor", i);
        ck_assert_uint_gt(ws.messages, 0);
    }
    tp_system_destroy(&sys);
}

START_TEST(test_all_workers_get_work_2)
{
    all_workers_busy(2);
}
END_TEST

START_TEST(test_all_workers_get_work_4)
{
    all_workers_busy(4);
}
END_TEST

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_idle_system_sleeps)
{
    tp_system *sys = tpt_system(2);
    for (int i = 0; i < 1000; i++) // idle actors cost no CPU
        ck_assert_int_eq(tp_spawn(sys, &flood_b, NULL, NULL, NULL), 0);
    tp_system_stats before;
    for (int tries = 0;; tries++) { // until both workers have parked
        tp_system_stats_get(sys, &before);
        if (before.total.sleeps >= 2 || tries > 2000)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_ge(before.total.sleeps, 2);
    double c0 = cpu_seconds();
    tpt_nap_us(1000000); // the window measured, not a synchronisation
    double used = cpu_seconds() - c0;
    ck_assert_msg(used < 0.05, "idle system used %.3f s of CPU in 1 s", used);
    tp_system_destroy(&sys);
}
END_TEST

// An actor woken by a long callback runs elsewhere meanwhile: A sends to
// B, then spins for 300 ms; B must have been handled long before A's
// callback returns, though the send put it in the runnext slot of A's
// worker and every other worker was asleep.
static _Atomic long woken_handled, long_cb_done;
static _Atomic int woken_seen_before_return;

static int
woken_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&woken_handled, 1);
    return TP_OK;
}

static const tp_behaviour woken_b = {.name = "woken", .handle = woken_handle};

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
long_cb_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    tp_pid b = *(const tp_pid *)msg->data;
    if (tp_send(ctx, b, 1, NULL, 0) != 0)
        return TP_EINVAL;
    double end = mono_s() + 0.3;
    while (mono_s() < end && atomic_load(&woken_handled) == 0)
        ;
    if (atomic_load(&woken_handled) > 0)
        atomic_store(&woken_seen_before_return, 1);
    while (mono_s() < end) // the whole 300 ms, as a stuck callback would
        ;
    atomic_fetch_add(&long_cb_done, 1);
    return TP_OK;
}

static const tp_behaviour long_cb_b = {.name = "long_cb",
                                       .handle = long_cb_handle};

static void
woken_runs_elsewhere(unsigned threads)
{
#ifdef __SANITIZE_THREAD__
    (void)threads;
    return; // runnext is not stolen under TSan (sched.c's asym_init)
#endif
    tp_system *sys = tpt_system(threads);
    // Every worker asleep first, so no spinning worker happens by.
    ck_assert(tpt_wait_asleep(0, 20));
    long done = atomic_load(&long_cb_done);
    for (int round = 0; round < 3; round++) {
        tp_pid a, b;
        atomic_store(&woken_handled, 0);
        atomic_store(&woken_seen_before_return, 0);
        ck_assert_int_eq(tp_spawn(sys, &long_cb_b, NULL, NULL, &a), 0);
        ck_assert_int_eq(tp_spawn(sys, &woken_b, NULL, NULL, &b), 0);
        ck_assert_int_eq(tp_system_send(sys, a, 1, &b, sizeof b), 0);
        ck_assert(tpt_wait_ge(&long_cb_done, done + round + 1, 30));
        ck_assert_msg(atomic_load(&woken_seen_before_return),
                      "round %d: B waited for A's 300 ms callback", round);
        // Every worker parked again before the next round.
        ck_assert(tpt_wait_asleep(0, 20));
    }
    tp_system_destroy(&sys);
}

START_TEST(test_woken_runs_elsewhere_2)
{
    woken_runs_elsewhere(2);
}
END_TEST

START_TEST(test_woken_runs_elsewhere_4)
{
    woken_runs_elsewhere(4);
}
END_TEST

// Thieves take runnext from owners stuck in callbacks that end, around a
// millisecond, just as the thief decides: an actor must still never run on
// two threads at once, and no token may be lost or doubled.
typedef struct relay {
    _Atomic int inside;
    tp_pid next;
    unsigned seed;
} relay;

static _Atomic long relay_violations, relay_hops;

static int
relay_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    relay *r = state;
    if (msg->tag == 1) {
        r->next = *(const tp_pid *)msg->data;
        return TP_OK;
    }
    if (atomic_exchange(&r->inside, 1) != 0)
        atomic_fetch_add(&relay_violations, 1);
    long hop = atomic_fetch_add(&relay_hops, 1);
    int rc = tp_send(ctx, r->next, 2, NULL, 0);
    r->seed = r->seed * 1103515245u + 12345u + (unsigned)hop;
    if ((r->seed >> 16) % 3 == 0) { // spin 0.8 to 1.4 ms after the send
        double end = mono_s() + 0.0008 + (double)((r->seed >> 8) % 600) / 1e6;
        while (mono_s() < end)
            ;
    }
    atomic_store(&r->inside, 0);
    return rc;
}

static const tp_behaviour relay_b = {
    .name = "relay", .state_size = sizeof(relay), .handle = relay_handle};

START_TEST(test_runnext_steals_race_activations)
{
    tp_system *sys = tpt_system(4);
    enum { N = 8, TOKENS = 3 };
    tp_pid p[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tp_spawn(sys, &relay_b, NULL, NULL, &p[i]), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(
            tp_system_send(sys, p[i], 1, &p[(i + 1) % N], sizeof p[0]), 0);
    for (int t = 0; t < TOKENS; t++)
        ck_assert_int_eq(tp_system_send(sys, p[t * N / TOKENS], 2, NULL, 0),
                         0);
    ck_assert(tpt_wait_ge(&relay_hops, tpt_scaled(3000), 120));
    ck_assert_int_eq(atomic_load(&relay_violations), 0);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
#ifndef __SANITIZE_THREAD__ // no runnext stealing under TSan (sched.c)
    ck_assert_uint_gt(st.total.steals, 0);
#endif
    tp_system_destroy(&sys);
}
END_TEST

Suite *
sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_never_two_threads_at_once);
    tcase_add_test(tc, test_flood_does_not_starve_1_thread);
    tcase_add_test(tc, test_flood_does_not_starve_2_threads);
    tcase_add_test(tc, test_all_workers_get_work_2);
    tcase_add_test(tc, test_all_workers_get_work_4);
    tcase_add_test(tc, test_idle_system_sleeps);
    tcase_add_test(tc, test_woken_runs_elsewhere_2);
    tcase_add_test(tc, test_woken_runs_elsewhere_4);
    tcase_add_test(tc, test_runnext_steals_race_activations);
    suite_add_tcase(s, tc);
    return s;
}
