// SPDX-License-Identifier: MIT
// Test systems (test.h) through the public API: a seed replays the same
// interleaving exactly and other seeds find others; timers, request
// timeouts and supervisors' backoffs follow the virtual clock; injected
// crashes, failed inits, dropped and held messages; tp_call and
// tp_system_wait running the actors on the test's thread; a sweep that
// finds a failing seed which then replays; and the calls refused.
//
// Nothing here sleeps or waits on another thread: every test runs its
// actors itself, step by step.
#include "tp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TAG_GO = 1, // producer: send 3 numbered messages to the collector
    TAG_ITEM,   // collector: data: uint32 (sender index << 8 | n)
    TAG_ARM,    // timed: data: uint32 ms: send_after itself TAG_RING
    TAG_RING,
    TAG_ASK, // timed: request the silent actor, with a 500 ms timeout
    TAG_GET, // request: reply with the count (uint32)
    TAG_FWD, // forwarder: pass data on to its target as TAG_ITEM
    TAG_SET, // register: data: a byte
};

// ---- a collector and its producers ----------------------------------------

typedef struct collector {
    uint32_t seen[64];
    uint32_t n;
} collector;

static int
collector_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    collector *c = state;
    if (msg->tag == TAG_ITEM && c->n < 64)
        memcpy(&c->seen[c->n++], msg->data, sizeof(uint32_t));
    if (msg->tag == TAG_GET)
        return tp_reply(ctx, TAG_GET, c, sizeof *c);
    return TP_OK;
}

static const tp_behaviour collector_b = {.name = "collector",
                                         .state_size = sizeof(collector),
                                         .handle = collector_handle};

typedef struct producer {
    tp_pid to;
    uint32_t index;
} producer;

static int
producer_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(producer));
    return 0;
}

static int
producer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    producer *p = state;
    if (msg->tag != TAG_GO)
        return TP_OK;
    for (uint32_t k = 0; k < 3; k++) {
        uint32_t v = p->index << 8 | k;
        int rc = tp_send(ctx, p->to, TAG_ITEM, &v, sizeof v);
        if (rc != 0)
            return rc;
    }
    return TP_OK;
}

static const tp_behaviour producer_b = {.name = "producer",
                                        .state_size = sizeof(producer),
                                        .init = producer_init,
                                        .handle = producer_handle};

static tp_pid
spawn_arg(tp_system *sys, const tp_behaviour *b, void *arg)
{
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, b, arg, NULL, &pid), 0);
    return pid;
}

// Runs four producers into a collector with `seed`: fills `order` with
// the pids run, step by step (*nsteps of them), and `got` with what the
// collector saw.
static void
produce(uint64_t seed, tp_pid *order, size_t *nsteps, collector *got)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, seed, &sys), 0);
    tp_pid col = spawn_arg(sys, &collector_b, NULL), prod[4];
    for (uint32_t i = 0; i < 4; i++) {
        producer p = {.to = col, .index = i};
        prod[i] = spawn_arg(sys, &producer_b, &p);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tp_system_send(sys, prod[i], TAG_GO, NULL, 0), 0);
    size_t n = 0;
    int r;
    while ((r = tp_test_step(sys, &order[n])) == 1)
        ck_assert_uint_lt(++n, 64);
    ck_assert_int_eq(r, 0);
    *nsteps = n;
    tp_call_reply rep;
    ck_assert_int_eq(tp_call(sys, col, TAG_GET, NULL, 0, 1000, &rep), 0);
    ck_assert_uint_eq(rep.size, sizeof *got);
    memcpy(got, rep.data, sizeof *got);
    free((void *)rep.data);
    tp_system_destroy(&sys);
}

START_TEST(a_seed_replays_its_interleaving)
{
    tp_pid a[64], b[64];
    size_t na, nb;
    collector ca, cb;
    produce(42, a, &na, &ca);
    produce(42, b, &nb, &cb);
    ck_assert_uint_eq(na, 16); // 4 GOs and 12 items, one per step
    ck_assert_uint_eq(nb, na);
    for (size_t i = 0; i < na; i++)
        ck_assert(tp_pid_eq(a[i], b[i]));
    ck_assert_uint_eq(ca.n, 12);
    ck_assert_mem_eq(ca.seen, cb.seen, sizeof ca.seen);
    // Each producer's own messages keep their order, whatever the seed;
    // some seed interleaves the producers otherwise.
    bool other = false;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        produce(seed, b, &nb, &cb);
        ck_assert_uint_eq(cb.n, 12);
        uint32_t next[4] = {0};
        for (uint32_t i = 0; i < cb.n; i++) {
            uint32_t who = cb.seen[i] >> 8, k = cb.seen[i] & 0xff;
            ck_assert_uint_eq(k, next[who]++);
        }
        other |= memcmp(ca.seen, cb.seen, sizeof ca.seen) != 0;
    }
    ck_assert(other);
}
END_TEST

// ---- virtual time
// ------------------------------------------------------------

static _Atomic long rings, answers, timeouts;

static int
timed_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    tp_pid *silent = state;
    switch (msg->tag) {
    case TAG_ARM: {
        uint32_t ms;
        memcpy(&ms, msg->data, sizeof ms);
        return tp_send_after(ctx, tp_self(ctx), ms, TAG_RING, NULL, 0, NULL);
    }
    case TAG_RING:
        rings++;
        return TP_OK;
    case TAG_ASK: {
        uint64_t ref;
        memcpy(silent, msg->data, sizeof *silent);
        return tp_request(ctx, *silent, TAG_GET, NULL, 0, 500, &ref);
    }
    case TP_TAG_TIMEOUT:
        timeouts++;
        return TP_OK;
    default:
        answers++;
        return TP_OK;
    }
}

static const tp_behaviour timed_b = {
    .name = "timed", .state_size = sizeof(tp_pid), .handle = timed_handle};

static int
silent_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK; // never replies
}

static const tp_behaviour silent_b = {.name = "silent",
                                      .handle = silent_handle};

START_TEST(timers_follow_the_virtual_clock)
{
    rings = timeouts = answers = 0;
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 7, &sys), 0);
    ck_assert(tp_test_system(sys));
    ck_assert_int_eq(tp_system_start(sys), 0); // allowed, does nothing
    tp_pid t = spawn_arg(sys, &timed_b, NULL);
    tp_pid s = spawn_arg(sys, &silent_b, NULL);
    ck_assert_int_eq(tp_test_now_ms(sys), 0);
    ck_assert_int_eq(tp_now_ms(sys), 0);
    ck_assert_int_eq(tp_test_next_timer_ms(sys), -1);
    uint32_t ms = 1000;
    ck_assert_int_eq(tp_system_send(sys, t, TAG_ARM, &ms, sizeof ms), 0);
    ck_assert_int_eq(tp_test_run(sys, 100), 1);
    ck_assert_int_eq(tp_test_next_timer_ms(sys), 1000);
    ck_assert_int_eq(tp_test_advance(sys, 999), 0);
    ck_assert_int_eq(tp_test_run(sys, 100), 0);
    ck_assert_int_eq(rings, 0);
    ck_assert_int_eq(tp_test_next_timer_ms(sys), 1);
    ck_assert_int_eq(tp_test_advance(sys, 1), 1);
    ck_assert_int_eq(tp_test_run(sys, 100), 1);
    ck_assert_int_eq(rings, 1);
    ck_assert_int_eq(tp_test_now_ms(sys), 1000);
    // A request's timeout: the silent actor never answers.
    ck_assert_int_eq(tp_system_send(sys, t, TAG_ASK, &s, sizeof s), 0);
    ck_assert_int_ge(tp_test_run(sys, 100), 2); // the ask, the request
    ck_assert_int_eq(tp_test_advance(sys, 499), 0);
    tp_test_run(sys, 100);
    ck_assert_int_eq(timeouts, 0);
    ck_assert_int_eq(tp_test_advance(sys, 1), 1);
    tp_test_run(sys, 100);
    ck_assert_int_eq(timeouts, 1);
    ck_assert_int_eq(answers, 0);
    ck_assert_int_eq(tp_test_run_until(sys, NULL, NULL, 10), TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

static bool
rang_twice(void *arg)
{
    (void)arg;
    return rings >= 2;
}

START_TEST(run_until_moves_the_clock_to_the_next_timer)
{
    rings = 0;
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 7, &sys), 0);
    tp_pid t = spawn_arg(sys, &timed_b, NULL);
    uint32_t ms[] = {60000, 3600000};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(tp_system_send(sys, t, TAG_ARM, &ms[i], sizeof ms[i]),
                         0);
    ck_assert_int_ge(tp_test_run_until(sys, rang_twice, NULL, 100), 4);
    ck_assert_int_eq(rings, 2);
    ck_assert_int_eq(tp_test_now_ms(sys), 3600000);
    ck_assert_int_eq(tp_test_run_until(sys, rang_twice, NULL, 100), 0);
    // Nothing left to run and no timer: the predicate can never hold.
    rings = 0;
    ck_assert_int_eq(tp_test_run_until(sys, rang_twice, NULL, 100),
                     TP_ETIMEDOUT);
    tp_system_destroy(&sys);
}
END_TEST

// ---- faults under a supervisor
// -----------------------------------------------

static _Atomic long inits;

static int
counted_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    (void)state;
    (void)arg;
    inits++;
    return 0;
}

static const tp_behaviour worker_b = {
    .name = "worker", .init = counted_init, .handle = silent_handle};

static tp_pid
whereis(tp_system *sys, const char *name)
{
    tp_pid pid = TP_PID_NIL;
    tp_whereis(sys, name, &pid);
    return pid;
}

START_TEST(a_crash_is_injected_and_the_restart_waits_its_backoff)
{
    inits = 0;
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 3, &sys), 0);
    static const tp_child_spec kids[] = {
        {.id = "w", .behaviour = &worker_b, .opts = {.name = "w"}}};
    tp_sup_spec spec = {.flags = {.intensity = 5,
                                  .period_ms = 60000,
                                  .backoff_min_ms = 2000,
                                  .backoff_max_ms = 2000},
                        .children = kids,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    tp_pid w1 = whereis(sys, "w");
    ck_assert(!tp_pid_is_nil(w1));
    ck_assert_int_eq(inits, 1);
    ck_assert_int_eq(tp_test_crash_at(sys, w1, 2), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(tp_system_send(sys, w1, 9, NULL, 0), 0);
    tp_test_run(sys, 100);
    // Crashed at its second message; the restart waits 2 s +-25 %.
    ck_assert(tp_pid_is_nil(whereis(sys, "w")));
    int64_t wait = tp_test_next_timer_ms(sys);
    ck_assert_int_ge(wait, 1500);
    ck_assert_int_le(wait, 2500);
    ck_assert_int_eq(tp_test_advance(sys, (uint32_t)wait - 1), 0);
    tp_test_run(sys, 100);
    ck_assert(tp_pid_is_nil(whereis(sys, "w")));
    ck_assert_int_eq(tp_test_advance(sys, 1), 1);
    tp_test_run(sys, 100);
    tp_pid w2 = whereis(sys, "w");
    ck_assert(!tp_pid_is_nil(w2));
    ck_assert(!tp_pid_eq(w1, w2));
    ck_assert_int_eq(inits, 2);
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, w2, &info), 0);
    ck_assert_uint_eq(info.restarts, 1);
    // A crash at a tag, and an init that fails: the restart after the
    // failed one waits again.
    ck_assert_int_eq(tp_test_crash_on_tag(sys, w2, 77), 0);
    ck_assert_int_eq(tp_test_fail_init(sys, "worker", 1), 0);
    ck_assert_int_eq(tp_system_send(sys, w2, 76, NULL, 0), 0);
    ck_assert_int_eq(tp_system_send(sys, w2, 77, NULL, 0), 0);
    long inits_before = inits;
    tp_test_run(sys, 100);
    ck_assert(tp_pid_is_nil(whereis(sys, "w")));
    // Two backoffs: the failed init, then the start that works.
    for (int k = 0; k < 2; k++) {
        ck_assert_int_gt(tp_test_next_timer_ms(sys), 0);
        tp_test_advance(sys, (uint32_t)tp_test_next_timer_ms(sys));
        tp_test_run(sys, 100);
    }
    ck_assert(!tp_pid_is_nil(whereis(sys, "w")));
    ck_assert_int_eq(inits, inits_before + 1); // the failed one never ran
    tp_system_destroy(&sys);
}
END_TEST

// ---- dropped and held messages
// -----------------------------------------------

static int
fwd_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    memcpy(state, arg, sizeof(tp_pid));
    return 0;
}

static int
fwd_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    if (msg->tag != TAG_FWD)
        return TP_OK;
    return tp_send(ctx, *(tp_pid *)state, TAG_ITEM, msg->data, msg->size);
}

static const tp_behaviour fwd_b = {.name = "forwarder",
                                   .state_size = sizeof(tp_pid),
                                   .init = fwd_init,
                                   .handle = fwd_handle};

static collector
collected(tp_system *sys, tp_pid col)
{
    collector c;
    tp_call_reply rep;
    ck_assert_int_eq(tp_call(sys, col, TAG_GET, NULL, 0, 1000, &rep), 0);
    memcpy(&c, rep.data, sizeof c);
    free((void *)rep.data);
    return c;
}

START_TEST(messages_dropped_and_held_between_two_actors)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 11, &sys), 0);
    tp_pid col = spawn_arg(sys, &collector_b, NULL);
    tp_pid fwd = spawn_arg(sys, &fwd_b, &col);
    tp_system_stats st0;
    tp_system_stats_get(sys, &st0);
    ck_assert_int_eq(tp_test_drop(sys, fwd, col, 2), 0);
    for (uint32_t i = 0; i < 5; i++)
        ck_assert_int_eq(tp_system_send(sys, fwd, TAG_FWD, &i, sizeof i), 0);
    tp_test_run(sys, 100);
    collector c = collected(sys, col);
    ck_assert_uint_eq(c.n, 3); // the first two were lost
    ck_assert_uint_eq(c.seen[0], 2);
    ck_assert_uint_eq(c.seen[2], 4);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.dead_letters - st0.dead_letters, 2);

    ck_assert_int_eq(tp_test_hold(sys, fwd, col), 0);
    for (uint32_t i = 10; i < 14; i++)
        ck_assert_int_eq(tp_system_send(sys, fwd, TAG_FWD, &i, sizeof i), 0);
    tp_test_run(sys, 100);
    ck_assert_uint_eq(collected(sys, col).n, 3); // all four held
    ck_assert_int_eq(tp_test_release(sys, fwd, col), 4);
    ck_assert_int_eq(tp_test_release(sys, fwd, col), TP_ENOENT);
    tp_test_run(sys, 100);
    c = collected(sys, col);
    ck_assert_uint_eq(c.n, 7);
    for (uint32_t i = 0; i < 4; i++)
        ck_assert_uint_eq(c.seen[3 + i], 10 + i); // in order
    tp_system_destroy(&sys);
}
END_TEST

// ---- sweeping seeds
// ------------------------------------------------------------

static int
reg_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    if (msg->tag == TAG_SET)
        memcpy(state, msg->data, 1);
    if (msg->tag == TAG_GET)
        return tp_reply(ctx, TAG_GET, state, 1);
    return TP_OK;
}

static const tp_behaviour reg_b = {
    .name = "register", .state_size = 1, .handle = reg_handle};

static int
setter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    if (msg->tag != TAG_FWD)
        return TP_OK;
    return tp_send(ctx, *(tp_pid *)state, TAG_SET, msg->data, 1);
}

static const tp_behaviour setter_b = {.name = "setter",
                                      .state_size = sizeof(tp_pid),
                                      .init = fwd_init,
                                      .handle = setter_handle};

static int
a_writes_last(uint64_t seed, void *arg)
{
    long *runs = arg;
    (*runs)++;
    tp_system *sys;
    if (tp_test_system_new(NULL, seed, &sys) != 0)
        return -1;
    tp_pid reg = spawn_arg(sys, &reg_b, NULL);
    tp_pid sa = spawn_arg(sys, &setter_b, &reg),
           sb = spawn_arg(sys, &setter_b, &reg);
    tp_system_send(sys, sa, TAG_FWD, "A", 1);
    tp_system_send(sys, sb, TAG_FWD, "B", 1);
    tp_test_run(sys, 100);
    tp_call_reply rep;
    int rc = tp_call(sys, reg, TAG_GET, NULL, 0, 1000, &rep);
    char last = rc == 0 && rep.size == 1 ? *(const char *)rep.data : '?';
    free((void *)rep.data);
    tp_system_destroy(&sys);
    return last == 'A' ? 0 : last;
}

START_TEST(a_sweep_finds_the_seed_that_fails_and_it_replays)
{
    long runs = 0;
    uint64_t bad = 0;
    int rc = tp_test_sweep(1, 100, a_writes_last, &runs, &bad);
    ck_assert_int_eq(rc, 'B');
    ck_assert_uint_ge(bad, 1);
    ck_assert_int_eq(runs, (long)bad); // stopped at the first
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(a_writes_last(bad, &runs), 'B');
    ck_assert_int_eq(tp_test_sweep(1, 0, a_writes_last, &runs, &bad), 0);
    ck_assert_int_eq(tp_test_sweep(1, 1, NULL, NULL, &bad), TP_EINVAL);
}
END_TEST

// ---- supervisors and links under many seeds
// -----------------------------------

static tp_pid
named(tp_system *sys, const char *name)
{
    tp_pid pid = TP_PID_NIL;
    tp_whereis(sys, name, &pid);
    return pid;
}

// Three children under `strategy`; the second crashes at a tag. Returns 0
// when exactly the children the strategy names got new pids, and each
// runs again; otherwise which check failed.
static int
strategy_holds(uint64_t seed, void *arg)
{
    tp_strategy strategy = *(tp_strategy *)arg;
    tp_system *sys;
    if (tp_test_system_new(NULL, seed, &sys) != 0)
        return 100;
    static const tp_child_spec kids[] = {
        {.id = "a", .behaviour = &silent_b, .opts = {.name = "ka"}},
        {.id = "b", .behaviour = &silent_b, .opts = {.name = "kb"}},
        {.id = "c", .behaviour = &silent_b, .opts = {.name = "kc"}},
    };
    tp_sup_spec spec = {.flags = {.strategy = strategy, .intensity = 3},
                        .children = kids,
                        .nchildren = 3};
    tp_pid sup, before[3], after[3];
    const char *names[] = {"ka", "kb", "kc"};
    int rc = tp_sup_start(sys, &spec, NULL, &sup);
    for (int i = 0; i < 3; i++)
        before[i] = named(sys, names[i]);
    // Messages to all three, the crash among them: any interleaving.
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = tp_system_send(sys, before[i], 5, NULL, 0);
    if (rc == 0)
        rc = tp_test_crash_on_tag(sys, before[1], 6);
    if (rc == 0)
        rc = tp_system_send(sys, before[1], 6, NULL, 0);
    if (rc == 0 && tp_test_run(sys, 10000) < 0)
        rc = 101;
    bool restarted[3] = {false, true, strategy != TP_ONE_FOR_ONE};
    restarted[0] = strategy == TP_ONE_FOR_ALL;
    for (int i = 0; rc == 0 && i < 3; i++) {
        after[i] = named(sys, names[i]);
        if (tp_pid_is_nil(after[i]))
            rc = 10 + i; // not running again
        else if (tp_pid_eq(before[i], after[i]) == restarted[i])
            rc = 20 + i; // restarted when it should not, or not when it should
    }
    tp_sup_counts counts;
    if (rc == 0 && tp_sup_count_children(sys, sup, 1000, &counts) != 0)
        rc = 102;
    if (rc == 0 && counts.active != 3)
        rc = 103;
    tp_system_destroy(&sys);
    return rc;
}

START_TEST(supervisor_strategies_hold_under_many_seeds)
{
    tp_strategy strategies[] = {TP_ONE_FOR_ONE, TP_ONE_FOR_ALL,
                                TP_REST_FOR_ONE};
    for (int i = 0; i < 3; i++) {
        uint64_t bad = 0;
        int rc = tp_test_sweep(1, 50, strategy_holds, &strategies[i], &bad);
        ck_assert_msg(rc == 0, "strategy %d: seed %llu failed with %d", i,
                      (unsigned long long)bad, rc);
    }
}
END_TEST

// Restarts older than the period no longer count: with intensity 1 in
// 40 ms, a crash every 60 ms (virtual) is restarted each time, and two
// within 40 ms end the supervisor.
START_TEST(restart_intensity_follows_the_virtual_clock)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 5, &sys), 0);
    static const tp_child_spec kids[] = {
        {.id = "w", .behaviour = &silent_b, .opts = {.name = "w"}}};
    tp_sup_spec spec = {.flags = {.intensity = 1, .period_ms = 40},
                        .children = kids,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    for (int i = 0; i < 6; i++) {
        tp_pid w = named(sys, "w");
        ck_assert(!tp_pid_is_nil(w));
        ck_assert_int_eq(tp_test_crash_at(sys, w, 1), 0);
        ck_assert_int_eq(tp_system_send(sys, w, 5, NULL, 0), 0);
        ck_assert_int_ge(tp_test_run(sys, 100), 1);
        tp_test_advance(sys, 60);
    }
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, sup, &info), 0); // still there
    // Two crashes 10 ms apart: over the intensity.
    for (int i = 0; i < 2; i++) {
        tp_pid w = named(sys, "w");
        ck_assert(!tp_pid_is_nil(w));
        ck_assert_int_eq(tp_test_crash_at(sys, w, 1), 0);
        ck_assert_int_eq(tp_system_send(sys, w, 5, NULL, 0), 0);
        tp_test_run(sys, 100);
        tp_test_advance(sys, 10);
    }
    ck_assert_int_eq(tp_actor_info_get(sys, sup, &info), TP_ENOACTOR);
    tp_system_destroy(&sys);
}
END_TEST

// What a linked actor that traps exits sees of one that sends it three
// messages and then exits: the messages, then the exit signal, under any
// interleaving (a signal keeps its place behind its sender's messages).
typedef struct watcher {
    uint32_t got[8];
    uint32_t n;
} watcher;

static int
watcher_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    return tp_trap_exit(ctx, true);
}

static int
watcher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    watcher *w = state;
    if (msg->tag == TAG_GET)
        return tp_reply(ctx, TAG_GET, w, sizeof *w);
    if (w->n < 8)
        w->got[w->n++] = msg->tag;
    return TP_OK;
}

static const tp_behaviour watcher_b = {.name = "watcher",
                                       .state_size = sizeof(watcher),
                                       .init = watcher_init,
                                       .handle = watcher_handle};

static int
leaver_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != TAG_GO)
        return TP_OK;
    tp_pid to;
    memcpy(&to, msg->data, sizeof to);
    int rc = tp_link(ctx, to);
    for (uint32_t t = 1; rc == 0 && t <= 3; t++)
        rc = tp_send(ctx, to, 100 + t, NULL, 0);
    return rc == 0 ? TP_EINVAL : rc; // exits abnormally: the link fires
}

static const tp_behaviour leaver_b = {.name = "leaver",
                                      .handle = leaver_handle};

static int
exit_comes_last(uint64_t seed, void *arg)
{
    (void)arg;
    tp_system *sys;
    if (tp_test_system_new(NULL, seed, &sys) != 0)
        return 100;
    tp_pid w, l[2];
    tp_spawn(sys, &watcher_b, NULL, NULL, &w);
    for (int i = 0; i < 2; i++) {
        tp_spawn(sys, &leaver_b, NULL, NULL, &l[i]);
        tp_system_send(sys, l[i], TAG_GO, &w, sizeof w);
    }
    tp_test_run(sys, 1000);
    tp_call_reply rep;
    int rc = tp_call(sys, w, TAG_GET, NULL, 0, 1000, &rep);
    if (rc == 0) {
        watcher got;
        memcpy(&got, rep.data, sizeof got);
        free((void *)rep.data);
        // Two leavers: 3 messages and an exit each, each leaver's in order.
        rc = got.n == 8 ? 0 : 1;
        uint32_t exits = 0, seen = 0;
        for (uint32_t i = 0; rc == 0 && i < got.n; i++) {
            if (got.got[i] == TP_TAG_EXIT)
                exits++;
            else
                seen++;
            if (exits * 3 > seen) // an exit before its sender's messages
                rc = 2;
        }
    }
    tp_system_destroy(&sys);
    return rc;
}

START_TEST(exit_signals_keep_their_place_under_many_seeds)
{
    uint64_t bad = 0;
    int rc = tp_test_sweep(1, 200, exit_comes_last, NULL, &bad);
    ck_assert_msg(rc == 0, "seed %llu failed with %d", (unsigned long long)bad,
                  rc);
}
END_TEST

// ---- waits that run the actors -------------------------------------------

static int
interval_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TAG_ARM)
        return tp_send_interval(ctx, tp_self(ctx), 10, TAG_RING, NULL, 0,
                                NULL);
    if (msg->tag == TAG_RING)
        rings++;
    return TP_OK;
}

static const tp_behaviour interval_b = {.name = "interval",
                                        .handle = interval_handle};

START_TEST(waits_run_the_actors_in_virtual_time)
{
    rings = 0;
    tp_system *sys;
    ck_assert_int_eq(
        tp_test_system_new(&(tp_config){.mailbox_capacity = 4,
                                        .overflow = TP_OVERFLOW_BACKPRESSURE},
                           2, &sys),
        0);
    // A periodic timer fires once per period the clock moves.
    tp_pid iv = spawn_arg(sys, &interval_b, NULL);
    ck_assert_int_eq(tp_system_send(sys, iv, TAG_ARM, NULL, 0), 0);
    tp_test_run(sys, 10);
    ck_assert_int_eq(tp_test_advance(sys, 100), 10);
    tp_test_run(sys, 100);
    ck_assert_int_eq(rings, 10);
    ck_assert_int_eq(tp_test_next_timer_ms(sys), 10);
    // tp_system_wait's timeout is virtual, periodic timer or not.
    ck_assert_int_eq(tp_system_wait(sys, 1000), TP_ETIMEDOUT);
    ck_assert_int_eq(tp_test_now_ms(sys), 1100);
    ck_assert_int_ge(rings, 100);
    // tp_call with no timeout to an actor that never answers: the
    // interval keeps the clock going, so the drive's step bound ends it.
    tp_pid s = spawn_arg(sys, &silent_b, NULL);
    tp_call_reply rep;
    ck_assert_int_eq(tp_call(sys, s, TAG_GET, NULL, 0, 500, &rep),
                     TP_ETIMEDOUT);
    // A full BACKPRESSURE mailbox: the send runs the actors for room.
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(tp_system_send(sys, s, 9, NULL, 0), 0);
    // Introspection asks the actor: it runs to answer.
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, s, 1000, &d), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Held messages go past a full mailbox when released; a receiver that
// exits ends the hold.
START_TEST(holds_release_past_a_full_mailbox_and_end_with_the_receiver)
{
    tp_system *sys;
    ck_assert_int_eq(
        tp_test_system_new(&(tp_config){.mailbox_capacity = 4}, 13, &sys), 0);
    tp_pid col = spawn_arg(sys, &collector_b, NULL);
    tp_pid fwd = spawn_arg(sys, &fwd_b, &col);
    ck_assert_int_eq(tp_test_hold(sys, fwd, col), 0);
    for (uint32_t i = 0; i < 10; i++) {
        ck_assert_int_eq(tp_system_send(sys, fwd, TAG_FWD, &i, sizeof i), 0);
        tp_test_run(sys, 100);
    }
    ck_assert_int_eq(tp_test_release(sys, fwd, col), 10);
    tp_test_run(sys, 100);
    collector c = collected(sys, col);
    ck_assert_uint_eq(c.n, 10);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_uint_eq(c.seen[i], i);
    // Held, then the receiver exits: the next send finds it gone.
    ck_assert_int_eq(tp_test_hold(sys, fwd, col), 0);
    uint32_t v = 99;
    ck_assert_int_eq(tp_system_send(sys, fwd, TAG_FWD, &v, sizeof v), 0);
    tp_test_run(sys, 100);
    ck_assert_int_eq(tp_system_exit(sys, col, TP_REASON_KILL), 0);
    tp_test_run(sys, 100);
    tp_system_stats st0, st;
    tp_system_stats_get(sys, &st0);
    ck_assert_int_eq(tp_system_send(sys, fwd, TAG_FWD, &v, sizeof v), 0);
    tp_test_run(sys, 100); // the forwarder's send fails: it crashes
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, fwd, &info), TP_ENOACTOR);
    ck_assert_int_eq(tp_test_release(sys, fwd, col), 1); // a dead letter
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.dead_letters - st0.dead_letters, 1);
    tp_system_destroy(&sys);
}
END_TEST

// ---- what a test system refuses
// ------------------------------------------------

static _Atomic long inside_rc;

static int
stepper_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    (void)msg;
    inside_rc = tp_test_step(tp_ctx_system(ctx), NULL);
    return TP_OK;
}

static const tp_behaviour stepper_b = {.name = "stepper",
                                       .handle = stepper_handle};

START_TEST(what_a_test_system_refuses)
{
    tp_system *real = tpt_system(1), *sys;
    tp_pid pid;
    ck_assert_int_eq(tp_test_step(real, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_test_run(real, 1), TP_EINVAL);
    ck_assert_int_eq(tp_test_advance(real, 1), TP_EINVAL);
    ck_assert_int_eq(tp_test_next_timer_ms(real), -1);
    ck_assert(!tp_test_system(real));
    ck_assert_int_eq(tp_test_crash_at(real, TP_PID_NIL, 1), TP_EINVAL);
    ck_assert_int_ge(tp_now_ms(real), 0);
    tp_system_destroy(&real);
    ck_assert_int_eq(tp_test_system_new(NULL, 1, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_test_system_new(NULL, 1, &sys), 0);
    ck_assert_int_eq(tp_test_step(NULL, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_test_run(sys, -1), TP_EINVAL);
    tp_spawn_opts ded = {.dedicated = true};
    ck_assert_int_eq(tp_spawn(sys, &silent_b, NULL, &ded, &pid), TP_EINVAL);
    ck_assert_int_eq(tp_node_start(sys, NULL), TP_EPERM);
    pid = spawn_arg(sys, &stepper_b, NULL);
    ck_assert_int_eq(tp_test_crash_at(sys, pid, 0), TP_EINVAL);
    ck_assert_int_eq(tp_test_fail_init(sys, NULL, 1), TP_EINVAL);
    ck_assert_int_eq(tp_test_fail_init(sys, "x", 0), TP_EINVAL);
    ck_assert_int_eq(tp_test_drop(sys, pid, TP_PID_NIL, 1), TP_EINVAL);
    ck_assert_int_eq(tp_test_drop(sys, pid, pid, 0), TP_EINVAL);
    ck_assert_int_eq(tp_test_hold(sys, pid, tp_pid_make(2, 1, 1)), TP_EINVAL);
    ck_assert_int_eq(tp_test_release(sys, pid, pid), TP_ENOENT);
    ck_assert_int_eq(tp_test_crash_at(sys, tp_pid_make(0, 999, 1), 1),
                     TP_ENOACTOR);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 0), 0);
    ck_assert_int_eq(tp_test_run(sys, 10), 1);
    ck_assert_int_eq(inside_rc, TP_EPERM); // not from an actor
    // tp_system_wait runs the actors until none is left.
    ck_assert_int_eq(tp_system_exit(sys, pid, TP_REASON_SHUTDOWN), 0);
    ck_assert_int_eq(tp_system_wait(sys, -1), 0);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
testmode_suite(void)
{
    Suite *s = suite_create("testmode");
    TCase *tc = tcase_create("testmode");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_seed_replays_its_interleaving);
    tcase_add_test(tc, timers_follow_the_virtual_clock);
    tcase_add_test(tc, run_until_moves_the_clock_to_the_next_timer);
    tcase_add_test(tc, a_crash_is_injected_and_the_restart_waits_its_backoff);
    tcase_add_test(tc, messages_dropped_and_held_between_two_actors);
    tcase_add_test(tc, a_sweep_finds_the_seed_that_fails_and_it_replays);
    tcase_add_test(tc, supervisor_strategies_hold_under_many_seeds);
    tcase_add_test(tc, restart_intensity_follows_the_virtual_clock);
    tcase_add_test(tc, exit_signals_keep_their_place_under_many_seeds);
    tcase_add_test(tc, waits_run_the_actors_in_virtual_time);
    tcase_add_test(
        tc, holds_release_past_a_full_mailbox_and_end_with_the_receiver);
    tcase_add_test(tc, what_a_test_system_refuses);
    suite_add_tcase(s, tc);
    return s;
}
