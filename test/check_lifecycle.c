// SPDX-License-Identifier: MIT
// Actor lifecycle: init failure, normal exit, crashes, terminate exactly
// once, dead letters, waiting, names, spawning from actors, crash reports.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long inits, handled, terminates, last_reason = 12345;
static _Atomic long after_fail;

static int
rec_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx, (void)state;
    atomic_fetch_add(&inits, 1);
    return arg ? *(int *)arg : 0;
}

// Tag 1: ok; 2: stop; 3: crash with TP_EINVAL; 4: tp_fail deep inside;
// 5: return a bogus positive value; 6: tp_stop then continue.
static void
deep(tp_ctx *ctx, int depth)
{
    if (depth == 0) {
        tp_fail(ctx, TP_EDECODE, "bad input at depth %d", depth);
        atomic_fetch_add(&after_fail, 1);
        return;
    }
    deep(ctx, depth - 1);
    atomic_fetch_add(&after_fail, 1);
}

static int
rec_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    atomic_fetch_add(&handled, 1);
    switch (msg->tag) {
    case 2:
        return TP_STOP;
    case 3:
        return TP_EINVAL;
    case 4:
        deep(ctx, 5);
        return TP_OK;
    case 5:
        return 77;
    case 6:
        ck_assert_int_eq(tp_stop(ctx), 0);
        return TP_OK;
    default:
        return TP_OK;
    }
}

static void
rec_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)state;
    atomic_store(&last_reason, reason);
    atomic_fetch_add(&terminates, 1);
}

static int
rec_describe(const void *state, char *buf, size_t size)
{
    (void)state;
    return snprintf(buf, size, "mood=grumpy");
}

static const tp_behaviour rec = {
    .name = "recorder",
    .state_size = 64,
    .init = rec_init,
    .handle = rec_handle,
    .terminate = rec_terminate,
    .describe = rec_describe,
};

START_TEST(test_init_failure_leaves_nothing)
{
    tp_system *sys = tpt_system(2);
    int refuse = TP_EDECODE;
    tp_pid pid = tp_pid_make(0, 99, 99);
    ck_assert_int_eq(
        tp_spawn(sys, &rec, &refuse, &(tp_spawn_opts){.name = "taken?"}, &pid),
        TP_EDECODE);
    ck_assert(tp_pid_eq(pid, tp_pid_make(0, 99, 99))); // untouched
    ck_assert_int_eq(atomic_load(&inits), 1);
    ck_assert_int_eq(atomic_load(&terminates), 0);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.actors, 0);
    ck_assert_uint_eq(st.spawned, 0);
    tp_pid w;
    ck_assert_int_eq(tp_whereis(sys, "taken?", &w), TP_ENOACTOR);
    ck_assert_int_eq(
        tp_spawn(sys, &rec, NULL, &(tp_spawn_opts){.name = "taken?"}, &pid),
        0);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&terminates), 1);
    ck_assert_int_eq(atomic_load(&last_reason), TP_REASON_SHUTDOWN);
}
END_TEST

static int
stop_in_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    return tp_stop(ctx);
}

static const tp_behaviour quitter = {
    .name = "quitter", .init = stop_in_init, .handle = rec_handle};

START_TEST(test_stop_in_init_is_einit)
{
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_spawn(sys, &quitter, NULL, NULL, NULL), TP_EINIT);
    tp_system_destroy(&sys);
}
END_TEST

// Spawns a recorder, sends `tag`, waits for its exit; returns the reason.
static long
exit_with(unsigned tag, tp_system_stats *st)
{
    tp_system *sys = tpt_system(2);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, NULL, &pid), 0);
    ck_assert_int_eq(tp_system_send(sys, pid, tag, "x", 1), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert_int_eq(atomic_load(&terminates), 1);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, "x", 1), TP_ENOACTOR);
    tp_system_stats_get(sys, st);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&terminates), 1); // exactly once
    return atomic_load(&last_reason);
}

START_TEST(test_stop_is_normal_exit)
{
    tp_system_stats st;
    ck_assert_int_eq(exit_with(2, &st), TP_REASON_NORMAL);
    ck_assert_uint_eq(st.exited, 1);
    ck_assert_uint_eq(st.crashed, 0);
}
END_TEST

START_TEST(test_tp_stop_then_ok_is_normal_exit)
{
    tp_system_stats st;
    ck_assert_int_eq(exit_with(6, &st), TP_REASON_NORMAL);
    ck_assert_uint_eq(st.crashed, 0);
}
END_TEST

START_TEST(test_negative_return_crashes)
{
    tp_system_stats st;
    ck_assert_int_eq(exit_with(3, &st), TP_EINVAL);
    ck_assert_uint_eq(st.crashed, 1);
}
END_TEST

START_TEST(test_bogus_return_crashes)
{
    tp_system_stats st;
    ck_assert_int_eq(exit_with(5, &st), TP_EINVAL);
    ck_assert_uint_eq(st.crashed, 1);
}
END_TEST

START_TEST(test_tp_fail_from_deep_inside)
{
    tp_system_stats st;
    ck_assert_int_eq(exit_with(4, &st), TP_EDECODE);
    ck_assert_int_eq(atomic_load(&after_fail), 0); // no code after tp_fail
    ck_assert_uint_eq(st.crashed, 1);
}
END_TEST

// A gate that keeps an actor inside its handler until the test opens it.
static _Atomic int gate_open;
static _Atomic long gate_entered;

static int
gated_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    atomic_fetch_add(&gate_entered, 1);
    while (!atomic_load(&gate_open))
        tpt_nap_us(100);
    return msg->tag == 2 ? TP_STOP : TP_OK;
}

static const tp_behaviour gated = {
    .name = "gated", .handle = gated_handle, .terminate = rec_terminate};

START_TEST(test_queued_messages_freed_at_death)
{
    tp_system *sys = tpt_system(2);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &gated, NULL, NULL, &pid), 0);
    ck_assert_int_eq(tp_system_send(sys, pid, 2, "bye", 3), 0);
    ck_assert(tpt_wait_ge(&gate_entered, 1, 20));
    for (int i = 0; i < 100; i++) // queued behind the stop
        ck_assert_int_eq(tp_system_send(sys, pid, 1, "payload", 7), 0);
    char *big = malloc(4096);
    ck_assert_int_eq(tp_system_send_buf(sys, pid, 1, big, 4096), 0);
    atomic_store(&gate_open, 1);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.dead_letters, 101);
    tp_system_destroy(&sys); // ASan reports the buffer if it leaked
}
END_TEST

START_TEST(test_wait_timeout_and_stop)
{
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_system_wait(sys, 0), 0); // no actors yet
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, NULL, NULL), 0);
    ck_assert_int_eq(tp_system_wait(sys, 50), TP_ETIMEDOUT);
    ck_assert_int_eq(tp_system_stop(sys), 0);
    ck_assert_int_eq(tp_system_wait(sys, -1), 0);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&last_reason), TP_REASON_SHUTDOWN);
}
END_TEST

static pid_t waiter_tid;
static _Atomic int waiter_asleep;

// Stops the system once the waiter sleeps in tp_system_wait (it sleeps
// nowhere else after starting this thread).
static void *
stopper_thread(void *arg)
{
    atomic_store(&waiter_asleep, tpt_wait_asleep(waiter_tid, 20));
    tp_system_stop(arg);
    return NULL;
}

START_TEST(test_stop_wakes_a_waiter)
{
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, NULL, NULL), 0);
    pthread_t t;
    waiter_tid = tpt_tid();
    pthread_create(&t, NULL, stopper_thread, sys);
    ck_assert_int_eq(tp_system_wait(sys, 30000), 0);
    pthread_join(t, NULL);
    ck_assert(atomic_load(&waiter_asleep));
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_names)
{
    tp_system *sys = tpt_system(2);
    tp_pid a, b, found;
    tp_spawn_opts o = {.name = "keeper"};
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, &o, &a), 0);
    ck_assert_int_eq(tp_whereis(sys, "keeper", &found), 0);
    ck_assert(tp_pid_eq(found, a));
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, &o, &b), TP_EEXIST);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, a, &st), 0);
    ck_assert_str_eq(st.name, "keeper");
    ck_assert_str_eq(st.behaviour, "recorder");
    ck_assert_int_eq(tp_system_send(sys, a, 2, "x", 1), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert_int_eq(tp_whereis(sys, "keeper", &found), TP_ENOACTOR);
    ck_assert_int_eq(tp_spawn(sys, &rec, NULL, &o, &b), 0); // released
    ck_assert_int_eq(tp_whereis(sys, "keeper", &found), 0);
    ck_assert(tp_pid_eq(found, b));
    tp_system_destroy(&sys);
}
END_TEST

// A parent that spawns a child from its handler and forwards to it; the
// child sends itself a message from init, which arrives after init.
static _Atomic long child_got_self, child_init_done;

static int
child_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    ck_assert_int_eq(tp_send(ctx, tp_self(ctx), 9, "me", 2), 0);
    atomic_store(&child_init_done, 1);
    return 0;
}

static int
child_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == 9) {
        ck_assert(atomic_load(&child_init_done));
        atomic_fetch_add(&child_got_self, 1);
        return TP_OK;
    }
    return TP_STOP;
}

static const tp_behaviour child = {
    .name = "child", .init = child_init, .handle = child_handle};

static int
parent_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    tp_pid c;
    ck_assert_int_eq(tp_spawn(tp_ctx_system(ctx), &child, NULL, NULL, &c), 0);
    ck_assert_int_eq(tp_send(ctx, c, 2, NULL, 0), 0);
    return TP_STOP;
}

static const tp_behaviour parent = {.name = "parent", .handle = parent_handle};

START_TEST(test_spawn_from_actor_and_self_send_in_init)
{
    tp_system *sys = tpt_system(2);
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, &parent, NULL, NULL, &p), 0);
    ck_assert_int_eq(tp_system_send(sys, p, 1, NULL, 0), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert_int_eq(atomic_load(&child_got_self), 1);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.spawned, 2);
    ck_assert_uint_eq(st.exited, 2);
    tp_system_destroy(&sys);
}
END_TEST

// A worker reuses the records of actors that died on it: a spawn must
// still find its state zeroed, whatever the size, whichever worker.
#define ZERO_KINDS 4
static _Atomic long zero_inits, zero_dirty, zero_exits;
static long zero_rounds;

static int
zero_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    const tp_behaviour *b = arg;
    unsigned char *p = state;
    for (size_t i = 0; i < b->state_size; i++)
        if (p[i] != 0) {
            atomic_fetch_add(&zero_dirty, 1);
            break;
        }
    memset(p, 0xa5, b->state_size);
    atomic_fetch_add(&zero_inits, 1);
    return 0;
}

static int
zero_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&zero_exits, 1);
    return TP_STOP;
}

static const tp_behaviour zero_kinds[ZERO_KINDS] = {
    {.name = "z8", .state_size = 8, .init = zero_init, .handle = zero_handle},
    {.name = "z100", .state_size = 100, .init = zero_init,
     .handle = zero_handle},
    {.name = "z500", .state_size = 500, .init = zero_init,
     .handle = zero_handle},
    {.name = "z3000", .state_size = 3000, .init = zero_init,
     .handle = zero_handle},
};

static int
zero_spawner(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)msg;
    long *round = state;
    for (int i = 0; i < 64; i++) {
        tp_pid c;
        const tp_behaviour *b = &zero_kinds[i % ZERO_KINDS];
        if (tp_spawn(tp_ctx_system(ctx), b, (void *)b, NULL, &c) != 0 ||
            tp_send(ctx, c, 1, NULL, 0) != 0)
            atomic_fetch_add(&zero_dirty, 1000000);
    }
    if (++*round == zero_rounds)
        return TP_STOP;
    return tp_send(ctx, tp_self(ctx), 1, NULL, 0);
}

START_TEST(test_reused_records_start_zeroed)
{
    zero_rounds = tpt_scaled(400);
    tp_system *sys = tpt_system(2);
    static const tp_behaviour spawner = {
        .name = "zspawner", .state_size = sizeof(long), .handle = zero_spawner};
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, &spawner, NULL, NULL, &p), 0);
    ck_assert_int_eq(tp_system_send(sys, p, 1, NULL, 0), 0);
    ck_assert_int_eq(tp_system_wait(sys, 60000), 0);
    ck_assert_int_eq(atomic_load(&zero_dirty), 0);
    ck_assert_int_eq(atomic_load(&zero_inits), 64 * zero_rounds);
    ck_assert_int_eq(atomic_load(&zero_exits), 64 * zero_rounds);
    tp_system_destroy(&sys);
}
END_TEST

static char log_line[1024];
static _Atomic long log_lines;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
capture_log(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)origin;
    if (level != TP_LOG_ERR || strstr(line, "crash ") != line)
        return;
    pthread_mutex_lock(&log_lock);
    snprintf(log_line, sizeof log_line, "%s", line);
    pthread_mutex_unlock(&log_lock);
    atomic_fetch_add(&log_lines, 1);
}

START_TEST(test_crash_report_logged)
{
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .log = capture_log});
    tp_pid pid;
    ck_assert_int_eq(
        tp_spawn(sys, &rec, NULL, &(tp_spawn_opts){.name = "victim"}, &pid),
        0);
    ck_assert_int_eq(tp_system_send(sys, pid, 4, "x", 1), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert(tpt_wait_ge(&log_lines, 1, 5));
    char pidtxt[TP_PID_STRLEN];
    tp_pid_format(pid, pidtxt, sizeof pidtxt);
    pthread_mutex_lock(&log_lock);
    ck_assert_ptr_nonnull(strstr(log_line, pidtxt));
    ck_assert_ptr_nonnull(strstr(log_line, "behaviour=recorder"));
    ck_assert_ptr_nonnull(strstr(log_line, "name=victim"));
    ck_assert_ptr_nonnull(strstr(log_line, "reason=TP_EDECODE"));
    ck_assert_ptr_nonnull(strstr(log_line, "msg_tag=4"));
    ck_assert_ptr_nonnull(strstr(log_line, "bad input at depth 0"));
    pthread_mutex_unlock(&log_lock);
    tp_system_destroy(&sys);
}
END_TEST

static _Atomic long sink_level;
static char sink_line[64];

static void
sink(void *ud, int level, const char *origin, const char *line)
{
    (void)origin;
    ck_assert_ptr_eq(ud, &sink_level);
    snprintf(sink_line, sizeof sink_line, "%s", line);
    atomic_store(&sink_level, level);
}

START_TEST(test_tp_log_uses_the_sink)
{
    tp_system *sys = NULL;
    ck_assert_int_eq(
        tp_system_new(&(tp_config){.log = sink, .log_userdata = &sink_level},
                      &sys),
        0);
    tp_log(sys, TP_LOG_WARNING, "restart child=%s n=%d", "db", 3);
    ck_assert_int_eq(atomic_load(&sink_level), TP_LOG_WARNING);
    ck_assert_str_eq(sink_line, "restart child=db n=3");
    tp_log(sys, TP_LOG_INFO, NULL); // ignored
    ck_assert_int_eq(atomic_load(&sink_level), TP_LOG_WARNING);
    tp_system_destroy(&sys);
}
END_TEST

// Actors that keep each other busy forever: destroy must still stop the
// workers, run every terminate and free every queued message.
enum { BUSY_N = 64 };
static tp_pid busy_peer[BUSY_N];
static _Atomic long busy_handled, busy_terminated;

static int
busy_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(tp_pid **)state = arg;
    return TP_OK;
}

static int
busy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)msg;
    tp_pid peer = **(tp_pid **)state;
    atomic_fetch_add(&busy_handled, 1);
    // Two messages for each one handled: mailboxes stay full.
    for (int i = 0; i < 2; i++) {
        int rc = tp_send(ctx, peer, 2, "payload", 7);
        if (rc != 0 && rc != TP_EFULL)
            return rc;
    }
    return TP_OK;
}

static void
busy_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)state;
    (void)reason;
    atomic_fetch_add(&busy_terminated, 1);
}

static const tp_behaviour busy = {.name = "busy",
                                  .state_size = sizeof(tp_pid *),
                                  .init = busy_init,
                                  .handle = busy_handle,
                                  .terminate = busy_terminate};

START_TEST(test_destroy_while_busy)
{
    enum { N = BUSY_N, H = BUSY_N / 2 };
    atomic_store(&busy_handled, 0);
    atomic_store(&busy_terminated, 0);
    tp_system *sys = tpt_system(2);
    tp_pid p[N];
    tp_spawn_opts o = {.mailbox_capacity = 8};
    for (int i = 0; i < N; i++) {
        o.overflow =
            i % 2 ? TP_OVERFLOW_BACKPRESSURE : TP_OVERFLOW_DROP_OLDEST;
        ck_assert_int_eq(tp_spawn(sys, &busy, &busy_peer[i], &o, &p[i]), 0);
    }
    // Half the actors are their own peer, half form a ring.
    for (int i = 0; i < N; i++)
        busy_peer[i] = i < H ? p[i] : p[H + (i + 1) % H];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tp_system_send(sys, p[i], 1, NULL, 0), 0);
    ck_assert_msg(tpt_wait_ge(&busy_handled, 100000, 30), "handled %ld",
                  atomic_load(&busy_handled));
    ck_assert_int_eq(tp_system_wait(sys, 0), TP_ETIMEDOUT);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
    ck_assert_ptr_null(sys);
    ck_assert_int_eq(atomic_load(&busy_terminated), N);
}
END_TEST

Suite *
lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_init_failure_leaves_nothing);
    tcase_add_test(tc, test_stop_in_init_is_einit);
    tcase_add_test(tc, test_stop_is_normal_exit);
    tcase_add_test(tc, test_tp_stop_then_ok_is_normal_exit);
    tcase_add_test(tc, test_negative_return_crashes);
    tcase_add_test(tc, test_bogus_return_crashes);
    tcase_add_test(tc, test_tp_fail_from_deep_inside);
    tcase_add_test(tc, test_queued_messages_freed_at_death);
    tcase_add_test(tc, test_wait_timeout_and_stop);
    tcase_add_test(tc, test_stop_wakes_a_waiter);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_spawn_from_actor_and_self_send_in_init);
    tcase_add_test(tc, test_reused_records_start_zeroed);
    tcase_add_test(tc, test_crash_report_logged);
    tcase_add_test(tc, test_destroy_while_busy);
    tcase_add_test(tc, test_tp_log_uses_the_sink);
    suite_add_tcase(s, tc);
    return s;
}
