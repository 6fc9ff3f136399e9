// SPDX-License-Identifier: MIT
// Timers (order, cancel, intervals, the cancel-after-fire race, many
// pending), requests with replies and timeouts, and tp_call.
#include "tp_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_ARM = 1, // data: struct arm: start timers
    T_TICK,    // a timer's message; data: int sequence
    T_CANCEL,  // cancel the stored interval timer
    T_REQUEST, // data: struct req: send a request
    T_ECHO,    // a request to answer
    T_SILENT,  // a request never answered
    T_LATE,    // answered only after the requester gave up
    T_PING,
    T_CALL_INSIDE, // try tp_call from inside an actor
    T_RETIME,      // data: uint32_t[2]: arm [0] ms, cancel it, arm [1] ms
    T_REPLY = 100, // the server's answers
};

typedef struct arm {
    int n;          // timers to start
    uint32_t ms[8]; // their delays
    int interval;   // start one interval timer of ms[0] instead
} arm;

typedef struct req {
    tp_pid to;
    uint32_t tag;
    int timeout_ms;
} req;

static _Atomic long ticks, order_bad, last_seq, pings;
static _Atomic long replies, timeouts, stray, call_inside_rc, request_rc;
static uint64_t last_ref;
static tp_timer interval_timer;

static int
clock_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    switch (msg->tag) {
    case T_ARM: {
        arm a;
        memcpy(&a, msg->data, sizeof a);
        if (a.interval)
            return tp_send_interval(ctx, tp_self(ctx), a.ms[0], T_TICK, NULL,
                                    0, &interval_timer);
        for (int i = 0; i < a.n; i++) {
            int rc = tp_send_after(ctx, tp_self(ctx), a.ms[i], T_TICK, &i,
                                   sizeof i, NULL);
            if (rc != 0)
                return rc;
        }
        return TP_OK;
    }
    case T_TICK:
        if (msg->size == sizeof(int)) {
            int seq;
            memcpy(&seq, msg->data, sizeof seq);
            if (seq < atomic_load(&last_seq))
                atomic_fetch_add(&order_bad, 1);
            atomic_store(&last_seq, seq);
        }
        atomic_fetch_add(&ticks, 1);
        return TP_OK;
    case T_CANCEL:
        return tp_timer_cancel(tp_ctx_system(ctx), interval_timer);
    case T_RETIME: {
        uint32_t ms[2];
        memcpy(ms, msg->data, sizeof ms);
        tp_timer t;
        int rc = tp_send_after(ctx, tp_self(ctx), ms[0], T_TICK, NULL, 0, &t);
        if (rc == 0)
            rc = tp_timer_cancel(tp_ctx_system(ctx), t);
        if (rc == 0)
            rc =
                tp_send_after(ctx, tp_self(ctx), ms[1], T_TICK, NULL, 0, NULL);
        return rc;
    }
    case T_PING:
        atomic_fetch_add(&pings, 1);
        return TP_OK;
    case T_REQUEST: {
        req r;
        memcpy(&r, msg->data, sizeof r);
        int rc =
            tp_request(ctx, r.to, r.tag, "hi", 2, r.timeout_ms, &last_ref);
        atomic_store(&request_rc, rc);
        return rc == TP_EINVAL ? TP_OK : rc;
    }
    case TP_TAG_TIMEOUT:
        if (msg->ref != last_ref)
            atomic_fetch_add(&stray, 1);
        atomic_fetch_add(&timeouts, 1);
        return TP_OK;
    case T_CALL_INSIDE: {
        tp_call_reply rep;
        atomic_store(&call_inside_rc, tp_call(tp_ctx_system(ctx), tp_self(ctx),
                                              T_ECHO, NULL, 0, 100, &rep));
        return TP_OK;
    }
    case T_REPLY:
        if (msg->ref != 0) {
            if (msg->ref != last_ref || msg->size != 2 ||
                memcmp(msg->data, "HI", 2) != 0)
                atomic_fetch_add(&stray, 1);
            atomic_fetch_add(&replies, 1);
            return TP_OK;
        }
        return TP_EINVAL;
    default:
        return TP_EINVAL;
    }
}

static const tp_behaviour clock_b = {.name = "clock", .handle = clock_handle};

// Answers T_ECHO at once, T_LATE after a delay, never T_SILENT.
static int
server_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_ECHO || msg->tag == T_LATE) {
        char up[16];
        size_t n = msg->size < sizeof up ? msg->size : sizeof up;
        for (size_t i = 0; i < n; i++)
            up[i] = (char)(((const char *)msg->data)[i] - 32);
        if (msg->tag == T_LATE) // busy past the 20 ms timeout, on purpose
            tpt_nap_us(150000);
        return tp_reply(ctx, T_REPLY, up, n);
    }
    if (msg->tag == T_PING) {
        // Not a request: nothing to reply to.
        ck_assert_int_eq(tp_reply(ctx, 1, NULL, 0), TP_EINVAL);
        atomic_fetch_add(&pings, 1);
    }
    return TP_OK;
}

static const tp_behaviour server_b = {.name = "server",
                                      .handle = server_handle};

static tp_system *sys;

static void
setup(void)
{
    ticks = order_bad = last_seq = pings = 0;
    replies = timeouts = stray = 0;
    call_inside_rc = request_rc = 12345;
    sys = tpt_system(2);
}

static void
teardown(void)
{
    tp_system_destroy(&sys);
}

static tp_pid
spawn(const tp_behaviour *b)
{
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, b, NULL, NULL, &p), 0);
    return p;
}

START_TEST(test_send_after_order)
{
    tp_pid c = spawn(&clock_b);
    arm a = {.n = 5, .ms = {50, 40, 30, 20, 10}};
    // Sequence numbers count down while delays shrink: they must arrive
    // 4, 3, 2, 1, 0; flip the check by arming in reverse.
    for (int i = 0; i < 5; i++)
        a.ms[i] = (uint32_t)(10 + 10 * i);
    ck_assert_int_eq(tp_system_send(sys, c, T_ARM, &a, sizeof a), 0);
    ck_assert(tpt_wait_ge(&ticks, 5, 20));
    ck_assert_int_eq(order_bad, 0);
    ck_assert_int_eq(last_seq, 4);
}
END_TEST

START_TEST(test_interval_and_cancel)
{
    tp_pid c = spawn(&clock_b);
    arm a = {.ms = {5}, .interval = 1};
    ck_assert_int_eq(tp_system_send(sys, c, T_ARM, &a, sizeof a), 0);
    ck_assert(tpt_wait_ge(&ticks, 5, 20));
    ck_assert_int_eq(tp_system_send(sys, c, T_CANCEL, NULL, 0), 0);
    ck_assert_int_eq(tp_system_send(sys, c, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 1, 20));
    long after = atomic_load(&ticks);
    tpt_nap_us(50000); // ten periods: a live timer would have ticked
    ck_assert_int_eq(atomic_load(&ticks), after);
    ck_assert_int_eq(tp_timer_cancel(sys, interval_timer), TP_ENOENT);
    ck_assert_int_eq(tp_timer_cancel(sys, 0), TP_EINVAL);
    ck_assert_int_eq(tp_timer_cancel(NULL, 1), TP_EINVAL);
}
END_TEST

// A timer armed after a longer one was cancelled fires when it is due, not
// when the cancelled one would have: the timer thread, left waiting for
// the cancelled one, is woken for it. And one due after the cancelled one
// fires too, once that wait is over.
START_TEST(test_timer_after_a_cancelled_one)
{
    tp_pid c = spawn(&clock_b);
    uint32_t ms[2] = {600000, 20}; // the cancelled one: ten minutes
    ck_assert_int_eq(tp_system_send(sys, c, T_RETIME, ms, sizeof ms), 0);
    ck_assert(tpt_wait_ge(&ticks, 1, 60));
    ms[0] = 30, ms[1] = 80;
    ck_assert_int_eq(tp_system_send(sys, c, T_RETIME, ms, sizeof ms), 0);
    ck_assert(tpt_wait_ge(&ticks, 2, 60));
    // Many, as requests with a timeout answered in time arm and cancel.
    for (int i = 0; i < 1000; i++) {
        ms[0] = 10000, ms[1] = (uint32_t)(i % 7);
        ck_assert_int_eq(tp_system_send(sys, c, T_RETIME, ms, sizeof ms), 0);
    }
    ck_assert(tpt_wait_ge(&ticks, 1002, 60));
    ck_assert_int_eq(tp_system_send(sys, c, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 1, 20));
    ck_assert_int_eq(atomic_load(&ticks), 1002);
}
END_TEST

// The cancel-after-fire race: the timer's message is already queued behind
// a busy handler when it is cancelled; it must not be handled.
static _Atomic int gate;
static _Atomic long gated_in, gated_ticks;
static tp_timer gated_timer;

static int
gated_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_TICK) {
        atomic_fetch_add(&gated_ticks, 1);
        return TP_OK;
    }
    if (msg->tag == T_ARM) {
        int rc =
            tp_send_after(ctx, tp_self(ctx), 1, T_TICK, NULL, 0, &gated_timer);
        if (rc != 0)
            return rc;
    }
    atomic_fetch_add(&gated_in, 1);
    while (!atomic_load(&gate))
        tpt_nap_us(200);
    return TP_OK;
}

static const tp_behaviour gated_b = {.name = "gated", .handle = gated_handle};

START_TEST(test_cancelled_after_fire_is_never_handled)
{
    atomic_store(&gate, 0);
    gated_in = gated_ticks = 0;
    tp_pid g = spawn(&gated_b);
    ck_assert_int_eq(tp_system_send(sys, g, T_ARM, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gated_in, 1, 20));
    tp_actor_stats st;
    // The tick lands in the mailbox. The T_ARM being handled stays
    // counted in the length until its activation ends, so the tick makes 2
    // (an earlier version broke out at 1 and failed when the 1 ms timer
    // had already fired by the first look).
    for (int i = 0; i < 2000; i++) {
        ck_assert_int_eq(tp_actor_stats_get(sys, g, &st), 0);
        if (st.length >= 2)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_eq(st.length, 2);
    ck_assert_int_eq(tp_timer_cancel(sys, gated_timer), 0);
    ck_assert_int_eq(tp_timer_cancel(sys, gated_timer), TP_ENOENT);
    atomic_store(&gate, 1);
    ck_assert_int_eq(tp_system_send(sys, g, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gated_in, 2, 20));
    ck_assert_int_eq(gated_ticks, 0);
}
END_TEST

START_TEST(test_timer_dies_with_destination)
{
    tp_pid c = spawn(&clock_b);
    arm a = {.ms = {2}, .interval = 1};
    ck_assert_int_eq(tp_system_send(sys, c, T_ARM, &a, sizeof a), 0);
    ck_assert(tpt_wait_ge(&ticks, 3, 20));
    ck_assert_int_eq(tp_system_exit(sys, c, TP_REASON_KILL), 0);
    // The next firing finds the destination gone and drops the timer.
    tp_system_stats st;
    for (int i = 0; i < 20000; i++) {
        ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
        if (st.timers == 0)
            break;
        tpt_nap_us(500);
    }
    ck_assert_uint_eq(st.timers, 0);
    ck_assert_int_eq(tp_timer_cancel(sys, interval_timer), TP_ENOENT);
}
END_TEST

// Many pending timers, all cancelled: nothing fires, nothing leaks.
static _Atomic long many_armed;
static tp_timer *many;

static int
many_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_TICK)
        return TP_EINVAL; // no timer may fire
    long n;
    memcpy(&n, msg->data, sizeof n);
    for (long i = 0; i < n; i++) {
        int rc =
            tp_send_after(ctx, tp_self(ctx), 600000 + (uint32_t)(i % 1000),
                          T_TICK, NULL, 0, &many[i]);
        if (rc != 0)
            return rc;
    }
    atomic_store(&many_armed, n);
    return TP_OK;
}

static const tp_behaviour many_b = {.name = "many", .handle = many_handle};

START_TEST(test_many_pending_timers)
{
    long n = tpt_scaled(200000);
    many = calloc((size_t)n, sizeof *many);
    many_armed = 0;
    tp_pid m = spawn(&many_b);
    ck_assert_int_eq(tp_system_send(sys, m, 1, &n, sizeof n), 0);
    ck_assert(tpt_wait_ge(&many_armed, n, 60));
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.timers, (uint64_t)n);
    for (long i = 0; i < n; i += 2)
        ck_assert_int_eq(tp_timer_cancel(sys, many[i]), 0);
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.timers, (uint64_t)(n / 2));
    // The other half is freed by destroy (teardown), under ASan's eye.
    free(many);
}
END_TEST

// Cancels racing with firings: for every timer, either cancel returned 0
// and its message was never handled, or cancel found it gone (TP_ENOENT)
// and its message was handled exactly once.
#define RACE_N 4000
static _Atomic long race_armed, race_handled[RACE_N];
static tp_timer race_timer[RACE_N];

static int
race_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_TICK) {
        int i;
        memcpy(&i, msg->data, sizeof i);
        atomic_fetch_add(&race_handled[i], 1);
        return TP_OK;
    }
    for (int i = 0; i < RACE_N; i++) {
        int rc = tp_send_after(ctx, tp_self(ctx), (uint32_t)(i % 3), T_TICK,
                               &i, sizeof i, &race_timer[i]);
        if (rc != 0)
            return rc;
    }
    atomic_store(&race_armed, 1);
    return TP_OK;
}

static const tp_behaviour race_b = {.name = "race", .handle = race_handle};

START_TEST(test_cancel_races_firing)
{
    for (int round = 0; round < 5; round++) {
        atomic_store(&race_armed, 0);
        for (int i = 0; i < RACE_N; i++)
            atomic_store(&race_handled[i], 0);
        // Room for every tick: a timer's message never waits, so one that
        // met a full mailbox would be dropped, which is not this race.
        tp_pid r;
        tp_spawn_opts o = {.mailbox_capacity = 2 * RACE_N};
        ck_assert_int_eq(tp_spawn(sys, &race_b, NULL, &o, &r), 0);
        ck_assert_int_eq(tp_system_send(sys, r, 1, NULL, 0), 0);
        ck_assert(tpt_wait_ge(&race_armed, 1, 20));
        int cancelled[RACE_N];
        for (int i = 0; i < RACE_N; i++)
            cancelled[i] = tp_timer_cancel(sys, race_timer[i]);
        // Whatever was not cancelled is handled soon; wait for all of it.
        tp_system_stats st;
        for (int k = 0; k < 20000; k++) {
            ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
            if (st.timers == 0)
                break;
            tpt_nap_us(500);
        }
        ck_assert_uint_eq(st.timers, 0);
        ck_assert_uint_eq(st.dead_letters, 0);
        ck_assert_int_eq(tp_system_exit(sys, r, TP_REASON_KILL), 0);
        for (int i = 0; i < RACE_N; i++) {
            long h = atomic_load(&race_handled[i]);
            if (cancelled[i] == 0)
                ck_assert_msg(h == 0, "timer %d cancelled yet handled", i);
            else
                ck_assert_msg(cancelled[i] == TP_ENOENT && h == 1,
                              "timer %d: cancel %d, handled %ld", i,
                              cancelled[i], h);
        }
    }
}
END_TEST

static bool
no_timers(void *system)
{
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(system, &st), 0);
    return st.timers == 0;
}

START_TEST(test_request_reply_and_timeout)
{
    tp_pid c = spawn(&clock_b), s = spawn(&server_b);
    req r = {s, T_ECHO, 60000};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert(tpt_wait_ge(&replies, 1, 20));
    r = (req){s, T_SILENT, 20};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert(tpt_wait_ge(&timeouts, 1, 20));
    // A reply after the timeout is discarded.
    r = (req){s, T_LATE, 20};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert(tpt_wait_ge(&timeouts, 2, 20));
    ck_assert_int_eq(tp_system_send(sys, s, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 1, 20)); // the late reply was sent
    ck_assert_int_eq(tp_system_send(sys, c, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 2, 20)); // and reached c, which dropped it
    ck_assert_int_eq(replies, 1);
    ck_assert_int_eq(stray, 0);
    // A reply that came in time cancels the timeout: no timer is left,
    // though the first one had a minute to run.
    ck_assert(tpt_wait_until(no_timers, sys, 20));
    ck_assert_int_eq(timeouts, 2);
}
END_TEST

// What the clock's last tp_request returned, once it has run.
static long
request_result(void)
{
    for (int i = 0; i < 40000 && atomic_load(&request_rc) == 12345; i++)
        tpt_nap_us(500);
    return atomic_exchange(&request_rc, 12345);
}

// -1 never times out: no timer is armed and the request waits for the
// reply; 0 times out at once; below -1 is refused and nothing follows.
START_TEST(test_request_timeout_values)
{
    tp_pid c = spawn(&clock_b), s = spawn(&server_b);
    req r = {s, T_SILENT, TP_FOREVER};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert_int_eq(request_result(), 0);
    ck_assert(tpt_wait_until(no_timers, sys, 20));
    r = (req){s, T_ECHO, -1};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert_int_eq(request_result(), 0);
    ck_assert(tpt_wait_ge(&replies, 1, 20));
    ck_assert_int_eq(timeouts, 0);
    r = (req){s, T_SILENT, 0};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert_int_eq(request_result(), 0);
    ck_assert(tpt_wait_ge(&timeouts, 1, 20));
    r = (req){s, T_ECHO, -2};
    ck_assert_int_eq(tp_system_send(sys, c, T_REQUEST, &r, sizeof r), 0);
    ck_assert_int_eq(request_result(), TP_EINVAL);
    ck_assert_int_eq(tp_system_send(sys, c, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 1, 20));
    ck_assert_int_eq(replies, 1);
    ck_assert_int_eq(timeouts, 1);
    ck_assert_int_eq(stray, 0);
}
END_TEST

START_TEST(test_call)
{
    tp_pid s = spawn(&server_b), c = spawn(&clock_b);
    tp_call_reply rep;
    ck_assert_int_eq(tp_call(sys, s, T_ECHO, "abc", 3, 5000, &rep), 0);
    ck_assert_uint_eq(rep.tag, T_REPLY);
    ck_assert_uint_eq(rep.size, 3);
    ck_assert(memcmp(rep.data, "ABC", 3) == 0);
    free(rep.data);
    ck_assert_int_eq(tp_call(sys, s, T_SILENT, NULL, 0, 30, &rep),
                     TP_ETIMEDOUT);
    // The callee dies without answering.
    ck_assert_int_eq(tp_call(sys, c, 999, NULL, 0, 5000, &rep), TP_ENOACTOR);
    ck_assert_int_eq(tp_call(sys, c, T_ECHO, NULL, 0, 5000, &rep),
                     TP_ENOACTOR);
    ck_assert_int_eq(tp_call(sys, s, T_SILENT, NULL, 0, 0, &rep),
                     TP_ETIMEDOUT);
    ck_assert_int_eq(tp_call(sys, s, T_ECHO, "x", 1, TP_FOREVER, &rep), 0);
    free(rep.data);
    ck_assert_int_eq(tp_call(sys, s, T_ECHO, NULL, 0, -2, &rep), TP_EINVAL);
    ck_assert_int_eq(tp_call(sys, s, TP_TAG_RESERVED, NULL, 0, 10, &rep),
                     TP_EINVAL);
    ck_assert_int_eq(tp_call(NULL, s, T_ECHO, NULL, 0, 10, &rep), TP_EINVAL);
    // From inside an actor it is refused.
    tp_pid c2 = spawn(&clock_b);
    ck_assert_int_eq(tp_system_send(sys, c2, T_CALL_INSIDE, NULL, 0), 0);
    for (int i = 0; i < 20000 && atomic_load(&call_inside_rc) == 12345; i++)
        tpt_nap_us(500);
    ck_assert_int_eq(call_inside_rc, TP_EPERM);
}
END_TEST

START_TEST(test_timer_bad_args)
{
    ck_assert_int_eq(tp_send_after(NULL, TP_PID_NIL, 1, 1, NULL, 0, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_send_interval(NULL, TP_PID_NIL, 1, 1, NULL, 0, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_request(NULL, TP_PID_NIL, 1, NULL, 0, 1, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_reply(NULL, 1, NULL, 0), TP_EINVAL);
}
END_TEST

// ---- continuations (tp_request_then)
// ----------------------------------------

enum { A_GO = 300, A_ONE, A_STOPPER };

typedef struct go {
    tp_pid server, dead, silent;
} go;

// Whether the actor at *arg (a pid of `sys`) is gone.
static bool
gone(void *arg)
{
    tp_actor_stats st;
    return tp_actor_stats_get(sys, *(tp_pid *)arg, &st) == TP_ENOACTOR;
}

static _Atomic long then_replies, then_timeouts, then_failed, then_sum,
    then_in_handle, then_reason;

// Counts the answers; `arg` tells the requests apart.
static int
then_count(tp_ctx *ctx, void *state, const tp_msg *answer, void *arg)
{
    (void)ctx, (void)state;
    if (answer->tag == T_REPLY) {
        ck_assert_uint_eq(answer->size, 4);
        ck_assert_int_eq(memcmp(answer->data, "ECHO", 4), 0);
        atomic_fetch_add(&then_sum, (long)(intptr_t)arg);
        atomic_fetch_add(&then_replies, 1);
    } else if (answer->tag == TP_TAG_TIMEOUT) {
        atomic_fetch_add(&then_timeouts, 1);
    } else if (answer->tag == TP_TAG_FAILED) {
        const tp_down_msg *d = answer->data;
        atomic_store(&then_reason, d->reason);
        atomic_fetch_add(&then_failed, 1);
    }
    return TP_OK;
}

static int
then_stop(tp_ctx *ctx, void *state, const tp_msg *answer, void *arg)
{
    (void)ctx, (void)state, (void)answer, (void)arg;
    return TP_STOP;
}

static int
asker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == A_GO) {
        const go *g = msg->data;
        // Three replies, each to its own continuation.
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(tp_request_then(ctx, g->server, T_ECHO, "echo", 4,
                                             60000, then_count,
                                             (void *)(intptr_t)(1 << i), NULL),
                             0);
        // A timeout, a callee not alive, a callee killed while it waits.
        ck_assert_int_eq(tp_request_then(ctx, g->server, T_SILENT, NULL, 0, 20,
                                         then_count, NULL, NULL),
                         0);
        ck_assert_int_eq(tp_request_then(ctx, g->dead, T_ECHO, "x", 1, 60000,
                                         then_count, NULL, NULL),
                         0);
        ck_assert_int_eq(tp_request_then(ctx, g->silent, T_SILENT, NULL, 0,
                                         TP_FOREVER, then_count, NULL, NULL),
                         0);
        // Refused: no continuation.
        uint64_t ref = 7;
        ck_assert_int_eq(tp_request_then(ctx, g->server, T_ECHO, "x", 1, 10,
                                         NULL, NULL, &ref),
                         TP_EINVAL);
        ck_assert_int_eq(tp_request_then(ctx, g->server, T_ECHO, "x", 1, -2,
                                         then_count, NULL, &ref),
                         TP_EINVAL);
        ck_assert_uint_eq(ref, 7);
        return TP_OK;
    }
    if (msg->tag == A_ONE) { // one slow request, then stop before its answer
        const go *g = msg->data;
        ck_assert_int_eq(tp_request_then(ctx, g->server, T_LATE, "late", 4,
                                         TP_FOREVER, then_count, NULL, NULL),
                         0);
        return TP_STOP;
    }
    if (msg->tag == A_STOPPER) { // stops when the answer comes
        const go *g = msg->data;
        ck_assert_int_eq(tp_request_then(ctx, g->server, T_ECHO, "echo", 4,
                                         60000, then_stop, NULL, NULL),
                         0);
        return TP_OK;
    }
    atomic_fetch_add(&then_in_handle, 1); // an answer that missed its way
    return TP_OK;
}

static const tp_behaviour asker_b = {.name = "asker", .handle = asker_handle};

START_TEST(test_request_continuations)
{
    then_replies = then_timeouts = then_failed = then_sum = 0;
    then_in_handle = then_reason = 0;
    tp_pid a = spawn(&asker_b), s = spawn(&server_b), q = spawn(&server_b);
    tp_pid dead = spawn(&server_b);
    ck_assert_int_eq(tp_system_exit(sys, dead, TP_REASON_KILL), 0);
    ck_assert(tpt_wait_until(gone, &dead, 20));
    go g = {s, dead, q};
    ck_assert_int_eq(tp_system_send(sys, a, A_GO, &g, sizeof g), 0);
    ck_assert(tpt_wait_ge(&then_replies, 3, 20));
    ck_assert_int_eq(atomic_load(&then_sum), 7); // 1, 2 and 4: each its own
    ck_assert(tpt_wait_ge(&then_timeouts, 1, 20));
    ck_assert(tpt_wait_ge(&then_failed, 1, 20));
    ck_assert_int_eq(atomic_load(&then_reason), TP_REASON_NOPROC);
    // The callee killed while the request waits: its reason.
    ck_assert_int_eq(tp_system_exit(sys, q, TP_REASON_KILL), 0);
    ck_assert(tpt_wait_ge(&then_failed, 2, 20));
    ck_assert_int_eq(atomic_load(&then_reason), TP_REASON_KILLED);
    ck_assert_int_eq(atomic_load(&then_replies), 3);
    ck_assert_int_eq(atomic_load(&then_timeouts), 1);
    ck_assert_int_eq(atomic_load(&then_in_handle), 0);
    // An actor that stopped is never called back: the late reply is
    // dropped, its continuation freed with the actor.
    tp_pid b = spawn(&asker_b);
    ck_assert_int_eq(tp_system_send(sys, b, A_ONE, &g, sizeof g), 0);
    ck_assert(tpt_wait_until(gone, &b, 20));
    ck_assert_int_eq(tp_system_send(sys, s, T_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings, 1, 20)); // the server replied meanwhile
    ck_assert_int_eq(atomic_load(&then_replies), 3);
    // A continuation that returns TP_STOP stops its actor.
    tp_pid c = spawn(&asker_b);
    ck_assert_int_eq(tp_system_send(sys, c, A_STOPPER, &g, sizeof g), 0);
    ck_assert(tpt_wait_until(gone, &c, 20));
    ck_assert_int_eq(atomic_load(&then_in_handle), 0);
    // Outside any actor: refused.
    ck_assert_int_ne(
        tp_request_then(NULL, s, T_ECHO, "x", 1, 10, then_count, NULL, NULL),
        0);
    ck_assert(tpt_wait_until(no_timers, sys, 20));
}
END_TEST

Suite *
timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timers");
    tcase_set_timeout(tc, 90);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_send_after_order);
    tcase_add_test(tc, test_interval_and_cancel);
    tcase_add_test(tc, test_timer_after_a_cancelled_one);
    tcase_add_test(tc, test_cancelled_after_fire_is_never_handled);
    tcase_add_test(tc, test_timer_dies_with_destination);
    tcase_add_test(tc, test_many_pending_timers);
    tcase_add_test(tc, test_cancel_races_firing);
    tcase_add_test(tc, test_request_reply_and_timeout);
    tcase_add_test(tc, test_request_timeout_values);
    tcase_add_test(tc, test_call);
    tcase_add_test(tc, test_request_continuations);
    tcase_add_test(tc, test_timer_bad_args);
    suite_add_tcase(s, tc);
    return s;
}
