// SPDX-License-Identifier: MIT
// Pids: printing, parsing, and stale pids that must never reach an actor.
#include "tp_test.h"

#include <string.h>

START_TEST(test_format_parse_round_trip)
{
    tp_pid p = tp_pid_make(3, 4242, 77), q;
    char buf[TP_PID_STRLEN];
    ck_assert_int_eq(tp_pid_format(p, buf, sizeof buf), 11);
    ck_assert_str_eq(buf, "<3.4242.77>");
    ck_assert_int_eq(tp_pid_parse("  <3.4242.77> ", &q), 0);
    ck_assert(tp_pid_eq(p, q));
    ck_assert_uint_eq(tp_pid_node(q), 3);
    ck_assert_uint_eq(tp_pid_slot(q), 4242);
    ck_assert_uint_eq(tp_pid_gen(q), 77);
    ck_assert(tp_pid_is_nil(TP_PID_NIL));
    ck_assert(!tp_pid_is_nil(p));
}
END_TEST

START_TEST(test_parse_rejects_garbage)
{
    const char *bad[] = {"",
                         "<>",
                         "<1.2>",
                         "<1.2.3",
                         "1.2.3>",
                         "<1.2.3>x",
                         "<a.2.3>",
                         "<1..3>",
                         "<65536.1.1>",
                         "<0.16777216.1>",
                         "<0.1.16777216>",
                         "<-1.2.3>",
                         "<1.2.3.4>",
                         "<99999999999999999999.1.1>"};
    tp_pid keep = tp_pid_make(9, 9, 9), p = keep;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(tp_pid_parse(bad[i], &p) == TP_EINVAL, "accepted '%s'",
                      bad[i]);
        ck_assert(tp_pid_eq(p, keep)); // unchanged on failure
    }
    ck_assert_int_eq(tp_pid_parse("<1.2.3>", NULL), TP_EINVAL);
    ck_assert_int_eq(tp_pid_parse(NULL, &p), TP_EINVAL);
}
END_TEST

static int
stop_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_STOP;
}

static const tp_behaviour stopper = {.name = "stopper", .handle = stop_handle};

static _Atomic long got, got_at_marker = -1;

// Counts messages; a tag 2 marker is not counted but notes the count.
static int
count_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == 2)
        atomic_store(&got_at_marker, atomic_load(&got));
    else
        atomic_fetch_add(&got, 1);
    return TP_OK;
}

static const tp_behaviour counter = {.name = "counter",
                                     .handle = count_handle};

START_TEST(test_stale_pid_after_reuse)
{
    tp_system *sys = tpt_system(2);
    tp_pid old;
    ck_assert_int_eq(tp_spawn(sys, &stopper, NULL, NULL, &old), 0);
    ck_assert_int_eq(tp_system_send(sys, old, 1, NULL, 0), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert_int_eq(tp_system_send(sys, old, 1, NULL, 0), TP_ENOACTOR);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, old, &st), TP_ENOACTOR);

    tp_system_destroy(&sys);
}
END_TEST

static tp_pid init_self;

static int
refusing_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    init_self = tp_self(ctx);
    return TP_EINVAL;
}

static const tp_behaviour refuser = {
    .name = "refuser", .init = refusing_init, .handle = count_handle};

// A slot freed on this thread is the next one handed out here, so the new
// actor takes the old pid's slot with the next generation.
START_TEST(test_stale_pid_after_reuse_of_slot)
{
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &refuser, NULL, NULL, NULL), TP_EINVAL);
    tp_pid old = init_self, fresh;
    ck_assert(!tp_pid_is_nil(old));
    ck_assert_int_eq(tp_spawn(sys, &counter, NULL, NULL, &fresh), 0);
    ck_assert_uint_eq(tp_pid_slot(fresh), tp_pid_slot(old));
    ck_assert(!tp_pid_eq(fresh, old));
    ck_assert_int_eq(tp_system_send(sys, old, 1, NULL, 0), TP_ENOACTOR);
    ck_assert_int_eq(tp_system_send(sys, fresh, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&got, 1, 20));
    ck_assert_int_eq(tp_system_send(sys, old, 1, NULL, 0), TP_ENOACTOR);
    ck_assert_int_eq(tp_system_send(sys, fresh, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&got, 2, 20));
    // The stale sends reached nobody: had they reached the new actor, they
    // would be counted before this marker.
    ck_assert_int_eq(tp_system_send(sys, fresh, 2, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&got_at_marker, 0, 20));
    ck_assert_int_eq(got_at_marker, 2);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_never_existing_pids)
{
    tp_system *sys = tpt_system(1);
    tp_pid pids[] = {TP_PID_NIL, tp_pid_make(0, 12345, 1),
                     tp_pid_make(0, 0, 999),
                     tp_pid_make(0, 0xffffff, 0xffffff), tp_pid_make(7, 0, 1)};
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++)
        ck_assert_int_eq(tp_system_send(sys, pids[i], 1, "x", 1), TP_ENOACTOR);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
pid_suite(void)
{
    Suite *s = suite_create("pid");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_format_parse_round_trip);
    tcase_add_test(tc, test_parse_rejects_garbage);
    tcase_add_test(tc, test_stale_pid_after_reuse);
    tcase_add_test(tc, test_stale_pid_after_reuse_of_slot);
    tcase_add_test(tc, test_never_existing_pids);
    suite_add_tcase(s, tc);
    return s;
}
