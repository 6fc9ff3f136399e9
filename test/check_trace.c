// SPDX-License-Identifier: MIT
// Tracing (trace.h) through the public API: the events of each kind in the
// order the actor made them, with their fields; selection by kind; the
// three ends (count, time, exit) and stopping; the rate and the full
// buffer dropping and counting; state changes of a state machine; bad
// arguments; and traces that start while their actor dies.
//
// Each test reads the events as they come (tp_trace_read with a bounded
// wait): the actor under test makes them in an order its messages fix.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    TAG_PING = 1, // data: a pid: sends it TAG_PONG with 4 bytes
    TAG_PONG,
    TAG_SPAWN, // data: a pid: spawns an idle child, monitors it, then
               // sends the pid a TAG_PONG (the monitor is set by then)
    TAG_NOTE,  // a note and a state change
    TAG_BUSY,  // data: uint32 ms: runs that long
    TAG_QUIT,  // stops the idle child
    TAG_FLIP,  // a state machine: to the other state
};

static int
idle_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    return msg->tag == TAG_QUIT ? TP_STOP : TP_OK;
}

static const tp_behaviour idle_b = {.name = "idle", .handle = idle_handle};

static void
spin_ms(uint32_t ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 <
           ms);
}

static int
subject_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    switch (msg->tag) {
    case TAG_PING: {
        tp_pid to;
        memcpy(&to, msg->data, sizeof to);
        return tp_send(ctx, to, TAG_PONG, "pong", 4);
    }
    case TAG_SPAWN: {
        tp_pid child, to;
        memcpy(&to, msg->data, sizeof to);
        int rc = tp_spawn(tp_ctx_system(ctx), &idle_b, NULL, NULL, &child);
        uint64_t ref;
        if (rc == 0)
            rc = tp_monitor(ctx, child, &ref);
        return rc != 0 ? rc : tp_send(ctx, to, TAG_PONG, NULL, 0);
    }
    case TAG_NOTE:
        if (tp_traced(ctx, TP_TRACE_STATE))
            tp_trace_note(ctx, "note %d", 7);
        tp_trace_state(ctx, "idle", "busy");
        return TP_OK;
    case TAG_BUSY: {
        uint32_t ms;
        memcpy(&ms, msg->data, sizeof ms);
        spin_ms(ms);
        return TP_OK;
    }
    default:
        return TP_OK; // pongs, DOWN
    }
}

static const tp_behaviour subject_b = {.name = "subject",
                                       .handle = subject_handle};

static tp_pid
spawn(tp_system *sys, const tp_behaviour *b)
{
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, b, NULL, NULL, &pid), 0);
    return pid;
}

static void
send_pid(tp_system *sys, tp_pid to, uint32_t tag, tp_pid data)
{
    ck_assert_int_eq(tp_system_send(sys, to, tag, &data, sizeof data), 0);
}

static void
send_u32(tp_system *sys, tp_pid to, uint32_t tag, uint32_t v)
{
    ck_assert_int_eq(tp_system_send(sys, to, tag, &v, sizeof v), 0);
}

// The next event, within 10 s.
static tp_trace_event
next(tp_trace *t)
{
    tp_trace_event ev;
    memset(&ev, 0, sizeof ev);
    int n = tp_trace_read(t, &ev, 1, tpt_scaled(10000));
    ck_assert_int_eq(n, 1);
    return ev;
}

static void
expect_received(tp_trace *t, uint64_t seq, uint32_t tag, uint32_t size)
{
    tp_trace_event ev = next(t);
    ck_assert_uint_eq(ev.seq, seq);
    ck_assert_int_eq(ev.kind, TP_TEV_RECEIVED);
    ck_assert_uint_eq(ev.tag, tag);
    ck_assert_uint_eq(ev.size, size);
    ck_assert(tp_pid_is_nil(ev.peer)); // sent from outside any actor
    ck_assert_int_ge(ev.wait_us, 0);
}

START_TEST(trace_records_what_an_actor_does)
{
    tp_system *sys = tpt_system(2);
    tp_pid subject = spawn(sys, &subject_b), sink = spawn(sys, &idle_b);
    tp_trace *t = NULL;
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &t), 0);

    // A message handled, and one sent.
    send_pid(sys, subject, TAG_PING, sink);
    expect_received(t, 1, TAG_PING, sizeof(tp_pid));
    tp_trace_event ev = next(t);
    ck_assert_uint_eq(ev.seq, 2);
    ck_assert_int_eq(ev.kind, TP_TEV_SENT);
    ck_assert(tp_pid_eq(ev.peer, sink));
    ck_assert(tp_pid_eq(ev.actor, subject));
    ck_assert_uint_eq(ev.tag, TAG_PONG);
    ck_assert_uint_eq(ev.size, 4);
    ck_assert_int_eq(ev.result, 0);

    // A spawn, then the child's DOWN signal (once the send after the
    // monitor shows the monitor set).
    send_pid(sys, subject, TAG_SPAWN, sink);
    expect_received(t, 3, TAG_SPAWN, sizeof(tp_pid));
    ev = next(t);
    ck_assert_int_eq(ev.kind, TP_TEV_SPAWN);
    ck_assert_str_eq(ev.text, "idle");
    tp_pid child = ev.peer;
    ck_assert(!tp_pid_is_nil(child));
    ev = next(t);
    ck_assert_int_eq(ev.kind, TP_TEV_SENT);
    ck_assert_uint_eq(ev.seq, 5);
    ck_assert_int_eq(tp_system_send(sys, child, TAG_QUIT, NULL, 0), 0);
    ev = next(t);
    ck_assert_uint_eq(ev.seq, 6);
    ck_assert_int_eq(ev.kind, TP_TEV_SIGNAL);
    ck_assert_str_eq(ev.text, "down");
    ck_assert(tp_pid_eq(ev.peer, child));
    ck_assert_int_eq(ev.reason, TP_REASON_NORMAL);

    // A note and a state change.
    ck_assert_int_eq(tp_system_send(sys, subject, TAG_NOTE, NULL, 0), 0);
    expect_received(t, 7, TAG_NOTE, 0);
    ev = next(t);
    ck_assert_int_eq(ev.kind, TP_TEV_NOTE);
    ck_assert_str_eq(ev.text, "note 7");
    ev = next(t);
    ck_assert_int_eq(ev.kind, TP_TEV_STATE);
    ck_assert_str_eq(ev.text, "idle -> busy");

    // How long a message waited: the second queued behind 50 ms of work.
    send_u32(sys, subject, TAG_BUSY, 50);
    send_u32(sys, subject, TAG_BUSY, 0);
    expect_received(t, 10, TAG_BUSY, 4);
    ev = next(t);
    ck_assert_uint_eq(ev.seq, 11);
    ck_assert_int_ge(ev.wait_us, 40000);
    ck_assert_int_ge(ev.at_us, 40000);

    // The exit ends the trace: its last event, then TP_ESHUTDOWN.
    ck_assert_int_eq(tp_system_exit(sys, subject, TP_REASON_SHUTDOWN), 0);
    ev = next(t);
    ck_assert_uint_eq(ev.seq, 12);
    ck_assert_int_eq(ev.kind, TP_TEV_EXIT);
    ck_assert_int_eq(ev.reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(tp_trace_read(t, &ev, 1, 1000), TP_ESHUTDOWN);
    tp_trace_status st;
    tp_trace_status_get(t, &st);
    ck_assert_int_eq(st.end, TP_TRACE_END_EXITED);
    ck_assert_uint_eq(st.events, 12);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert(tp_pid_eq(st.pid, subject));
    tp_trace_stop(&t);
    ck_assert_ptr_null(t);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(trace_selects_kinds_and_ends_at_its_count)
{
    tp_system *sys = tpt_system(2);
    tp_pid subject = spawn(sys, &subject_b), sink = spawn(sys, &idle_b);
    tp_trace *t = NULL;
    tp_trace_opts o = {.what = TP_TRACE_SENT, .count = 3};
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    for (int i = 0; i < 5; i++)
        send_pid(sys, subject, TAG_PING, sink);
    tp_trace_event ev[8];
    int got = 0;
    for (int n; (n = tp_trace_read(t, ev + got, 8 - (size_t)got,
                                   tpt_scaled(10000))) > 0;)
        got += n;
    ck_assert_int_eq(got, 3); // then TP_ESHUTDOWN: the count ended it
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ev[i].kind, TP_TEV_SENT);
        ck_assert_uint_eq(ev[i].seq, (uint64_t)i + 1);
    }
    tp_trace_status st;
    tp_trace_status_get(t, &st);
    ck_assert_int_eq(st.end, TP_TRACE_END_COUNT);
    tp_trace_stop(&t);
    // Over: the actor can be traced again, here for what it receives.
    o = (tp_trace_opts){.what = TP_TRACE_RECEIVED, .count = 1};
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    send_pid(sys, subject, TAG_PING, sink);
    ev[0] = next(t);
    ck_assert_int_eq(ev[0].kind, TP_TEV_RECEIVED);
    ck_assert_int_eq(tp_trace_read(t, ev, 1, 0), TP_ESHUTDOWN);
    tp_trace_stop(&t);
    tp_system_destroy(&sys);
}
END_TEST

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool
settled(void *arg)
{
    tp_trace_status st;
    tp_trace_status_get(arg, &st);
    return st.events + st.dropped == 2000;
}

START_TEST(trace_drops_past_its_rate_and_a_full_buffer)
{
    tp_system *sys = tpt_system(2);
    tp_pid subject = spawn(sys, &subject_b);
    tp_trace *t = NULL;
    // 10 a second: a second is at least one window, so of 100 messages
    // handled within `took` seconds at most 10 * (took + 1) are kept.
    tp_trace_opts o = {.what = TP_TRACE_RECEIVED, .rate = 10, .count = 100};
    double t0 = now_s();
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    for (int i = 0; i < 100; i++)
        send_u32(sys, subject, TAG_BUSY, 0);
    tp_trace_event ev[100];
    int got = 0;
    uint64_t last = 0, gaps = 0;
    for (int n; (n = tp_trace_read(t, ev, 100, tpt_scaled(10000))) > 0;)
        for (int i = 0; i < n; i++, got++) {
            gaps += ev[i].seq - last - 1;
            last = ev[i].seq;
        }
    double took = now_s() - t0;
    tp_trace_status st;
    tp_trace_status_get(t, &st);
    ck_assert_int_eq(st.end, TP_TRACE_END_COUNT);
    ck_assert_uint_eq(st.events, (uint64_t)got);
    ck_assert_uint_eq(st.events + st.dropped, 100);
    ck_assert_int_ge(got, 10);
    ck_assert_int_le(got, 10 * ((int)took + 1));
    ck_assert_uint_eq(gaps + (100 - last), st.dropped); // seq shows drops
    tp_trace_stop(&t);

    // Unread, the buffer keeps 512 events; the rest are dropped.
    o = (tp_trace_opts){
        .what = TP_TRACE_RECEIVED, .rate = 1000000, .count = 1000000};
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    for (int i = 0; i < 2000; i++)
        send_u32(sys, subject, TAG_BUSY, 0);
    ck_assert(tpt_wait_until(settled, t, 30));
    tp_trace_status_get(t, &st);
    ck_assert_uint_eq(st.events, 512);
    ck_assert_uint_eq(st.dropped, 2000 - 512);
    ck_assert_int_eq(st.end, TP_TRACE_RUNNING);
    tp_trace_stop(&t);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(trace_ends_at_its_time_limit)
{
    tp_system *sys = tpt_system(1);
    tp_pid subject = spawn(sys, &subject_b);
    tp_trace *t = NULL;
    tp_trace_opts o = {.seconds = 1};
    double t0 = now_s();
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    tp_trace_event ev;
    ck_assert_int_eq(tp_trace_read(t, &ev, 1, -1), TP_ESHUTDOWN);
    ck_assert(now_s() - t0 >= 0.99);
    tp_trace_status st;
    tp_trace_status_get(t, &st);
    ck_assert_int_eq(st.end, TP_TRACE_END_TIME);
    ck_assert_uint_eq(st.events, 0);
    tp_trace_stop(&t);
    // Its marks are cleared by the actor's next event, which finds no
    // trace: a new one starts at once.
    send_u32(sys, subject, TAG_BUSY, 0);
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &t), 0);
    tp_trace_stop(&t);
    tp_system_destroy(&sys);
}
END_TEST

// A two-state machine that flips on TAG_FLIP.
static int flip_a(tp_ctx *ctx, void *data, const tp_sm_event *ev);
static int flip_b(tp_ctx *ctx, void *data, const tp_sm_event *ev);
static const tp_state state_a = {.name = "A", .handle = flip_a};
static const tp_state state_b = {.name = "B", .handle = flip_b};

static int
flip_a(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)data;
    return ev->msg->tag == TAG_FLIP ? tp_sm_next(ctx, &state_b) : TP_OK;
}

static int
flip_b(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)data;
    return ev->msg->tag == TAG_FLIP ? tp_sm_next(ctx, &state_a) : TP_OK;
}

static const tp_statem_spec flipper = {
    .behaviour = TP_STATEM_BEHAVIOUR("flipper"),
    .initial = &state_a,
};

START_TEST(trace_shows_a_state_machines_changes)
{
    tp_system *sys = tpt_system(2);
    tp_pid m = spawn(sys, &flipper.behaviour);
    tp_trace *t = NULL;
    tp_trace_opts o = {.what = TP_TRACE_STATE};
    ck_assert_int_eq(tp_trace_start(sys, m, &o, &t), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tp_system_send(sys, m, TAG_FLIP, NULL, 0), 0);
    const char *want[] = {"A -> B", "B -> A", "A -> B"};
    for (int i = 0; i < 3; i++) {
        tp_trace_event ev = next(t);
        ck_assert_int_eq(ev.kind, TP_TEV_STATE);
        ck_assert_str_eq(ev.text, want[i]);
        ck_assert_uint_eq(ev.seq, (uint64_t)i + 1);
    }
    tp_trace_stop(&t);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(trace_refuses_bad_arguments)
{
    tp_system *sys = tpt_system(1);
    tp_pid subject = spawn(sys, &subject_b);
    tp_trace *t = NULL, *u = NULL;
    ck_assert_int_eq(tp_trace_start(NULL, subject, NULL, &t), TP_EINVAL);
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, NULL), TP_EINVAL);
    tp_trace_opts bad[] = {{.what = 0x20},
                           {.count = 1000001},
                           {.rate = 1000001},
                           {.seconds = 86401}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(tp_trace_start(sys, subject, &bad[i], &t), TP_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(tp_trace_start(sys, TP_PID_NIL, NULL, &t), TP_ENOACTOR);
    ck_assert_int_eq(tp_trace_start(sys, tp_pid_make(3, 1, 1), NULL, &t),
                     TP_ENOACTOR);
    tp_pid gone = spawn(sys, &idle_b);
    ck_assert_int_eq(tp_system_send(sys, gone, TAG_QUIT, NULL, 0), 0);
    tp_actor_stats as;
    for (int i = 0; i < 10000 && tp_actor_stats_get(sys, gone, &as) == 0; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(tp_trace_start(sys, gone, NULL, &t), TP_ENOACTOR);

    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &t), 0);
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &u), TP_EEXIST);
    tp_trace_event ev;
    ck_assert_int_eq(tp_trace_read(NULL, &ev, 1, 0), TP_EINVAL);
    ck_assert_int_eq(tp_trace_read(t, NULL, 1, 0), TP_EINVAL);
    ck_assert_int_eq(tp_trace_read(t, &ev, 0, 0), TP_EINVAL);
    ck_assert_int_eq(tp_trace_read(t, &ev, 1, -2), TP_EINVAL);
    ck_assert_int_eq(tp_trace_read(t, &ev, 1, 0), 0); // nothing yet
    tp_trace_status st = {.end = TP_TRACE_END_TIME};
    tp_trace_status_get(NULL, &st);
    tp_trace_status_get(t, NULL);
    ck_assert_int_eq(st.end, TP_TRACE_END_TIME); // untouched
    // TP_TRACE_MAX at once; one more is refused until one stops.
    tp_trace *more[TP_TRACE_MAX];
    for (int i = 0; i < TP_TRACE_MAX - 1; i++)
        ck_assert_int_eq(
            tp_trace_start(sys, spawn(sys, &idle_b), NULL, &more[i]), 0);
    tp_pid last = spawn(sys, &idle_b);
    ck_assert_int_eq(tp_trace_start(sys, last, NULL, &u), TP_EAGAIN);
    tp_trace_stop(&t);
    ck_assert_int_eq(tp_trace_start(sys, last, NULL, &u), 0);
    tp_trace_stop(&u);
    for (int i = 0; i < TP_TRACE_MAX - 1; i++)
        tp_trace_stop(&more[i]);
    tp_trace_stop(NULL);
    tp_trace_stop(&t); // NULL already
    // Outside an actor these do nothing.
    ck_assert(!tp_traced(NULL, TP_TRACE_ALL));
    tp_trace_note(NULL, "x");
    tp_trace_state(NULL, "a", "b");
    tp_system_destroy(&sys);
}
END_TEST

// Traces that start while their actor dies end, whichever comes first:
// the reader always sees TP_ESHUTDOWN (or the start TP_ENOACTOR), never a
// trace that waits for an exit it missed.
START_TEST(trace_of_an_actor_that_dies_meanwhile_ends)
{
    tp_system *sys = tpt_system(2);
    long rounds = tpt_scaled(300);
    for (long i = 0; i < rounds; i++) {
        tp_pid p = spawn(sys, &idle_b);
        ck_assert_int_eq(tp_system_send(sys, p, TAG_QUIT, NULL, 0), 0);
        tp_trace *t = NULL;
        tp_trace_opts o = {.what = TP_TRACE_LIFE, .seconds = 60};
        int rc = tp_trace_start(sys, p, &o, &t);
        if (rc == TP_ENOACTOR)
            continue;
        ck_assert_int_eq(rc, 0);
        tp_trace_event ev;
        int n;
        while ((n = tp_trace_read(t, &ev, 1, tpt_scaled(10000))) == 1)
            ck_assert_int_eq(ev.kind, TP_TEV_EXIT);
        ck_assert_int_eq(n, TP_ESHUTDOWN);
        tp_trace_status st;
        tp_trace_status_get(t, &st);
        ck_assert_int_eq(st.end, TP_TRACE_END_EXITED);
        tp_trace_stop(&t);
    }
    tp_system_destroy(&sys);
}
END_TEST

// A trace that ended leaves its kinds marked on the actor until its next
// event: a new trace records only its own kinds all the same; and one past
// its time holds neither the actor nor a place.
START_TEST(a_new_trace_records_only_its_own_kinds)
{
    tp_system *sys = tpt_system(1);
    tp_pid subject = spawn(sys, &subject_b);
    tp_trace *t = NULL;
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &t), 0);
    tp_trace_stop(&t);
    tp_trace_opts o = {.what = TP_TRACE_STATE};
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    for (int i = 0; i < 5; i++)
        send_u32(sys, subject, TAG_BUSY, 0);
    ck_assert_int_eq(tp_system_send(sys, subject, TAG_NOTE, NULL, 0), 0);
    tp_trace_event ev = next(t);
    ck_assert_int_eq(ev.kind, TP_TEV_NOTE); // no RECEIVED before it
    ck_assert_uint_eq(ev.seq, 1);
    tp_trace_stop(&t);
    // Past its time, unread: a new trace of the actor starts at once.
    o = (tp_trace_opts){.seconds = 1};
    ck_assert_int_eq(tp_trace_start(sys, subject, &o, &t), 0);
    tp_trace *u = NULL;
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &u), TP_EEXIST);
    double t0 = now_s();
    while (now_s() - t0 < 1.05) // the trace's own second, not a sync
        tpt_nap_us(10000);
    ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &u), 0);
    tp_trace_stop(&u);
    tp_trace_stop(&t);
    tp_system_destroy(&sys);
}
END_TEST

typedef struct waiting_reader {
    tp_trace *t;
    _Atomic int rc, in;
    _Atomic pid_t tid;
} waiting_reader;

static void *
read_forever(void *arg)
{
    waiting_reader *w = arg;
    tp_trace_event ev;
    w->tid = tpt_tid();
    w->in = 1;
    w->rc = tp_trace_read(w->t, &ev, 1, -1);
    return NULL;
}

// tp_trace_stop while another thread waits in tp_trace_read: the read
// returns TP_ESHUTDOWN before the trace is freed.
START_TEST(stop_while_a_reader_waits)
{
    tp_system *sys = tpt_system(1);
    tp_pid subject = spawn(sys, &subject_b);
    for (int round = 0; round < 20; round++) {
        waiting_reader w = {.rc = 1};
        ck_assert_int_eq(tp_trace_start(sys, subject, NULL, &w.t), 0);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, read_forever, &w), 0);
        while (!w.in)
            tpt_nap_us(100);
        // Asleep in the read's wait: only then may the trace go.
        ck_assert(tpt_wait_asleep(w.tid, 10));
        tp_trace *t = w.t;
        tp_trace_stop(&t);
        pthread_join(th, NULL);
        ck_assert_int_eq(w.rc, TP_ESHUTDOWN);
    }
    tp_system_destroy(&sys);
}
END_TEST

Suite *
trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, trace_records_what_an_actor_does);
    tcase_add_test(tc, trace_selects_kinds_and_ends_at_its_count);
    tcase_add_test(tc, trace_drops_past_its_rate_and_a_full_buffer);
    tcase_add_test(tc, trace_ends_at_its_time_limit);
    tcase_add_test(tc, trace_shows_a_state_machines_changes);
    tcase_add_test(tc, trace_refuses_bad_arguments);
    tcase_add_test(tc, trace_of_an_actor_that_dies_meanwhile_ends);
    tcase_add_test(tc, a_new_trace_records_only_its_own_kinds);
    tcase_add_test(tc, stop_while_a_reader_waits);
    suite_add_tcase(s, tc);
    return s;
}
