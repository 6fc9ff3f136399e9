// SPDX-License-Identifier: MIT
// Every public function given bad arguments, or called from the wrong
// thread, returns its documented error and changes nothing.
#include "tp_test.h"

#include <stdlib.h>

static int
ok_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK;
}

static const tp_behaviour ok_b = {.name = "ok", .handle = ok_handle};

START_TEST(test_config_errors)
{
    tp_system *sys = (tp_system *)&sys; // must stay untouched
    tp_system *keep = sys;
    const tp_config bad[] = {
        {.threads = 5000},
        {.batch = 0x7fffffff},
        {.overflow = (tp_overflow)42},
        {.send_timeout_ms = -5},
        {.mailbox_capacity = (1u << 30) + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tp_system_new(&bad[i], &sys), TP_EINVAL);
        ck_assert_ptr_eq(sys, keep);
    }
    ck_assert_int_eq(tp_system_new(NULL, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_system_start(NULL), TP_EINVAL);
    ck_assert_int_eq(tp_system_wait(NULL, 0), TP_EINVAL);
    ck_assert_int_eq(tp_system_stop(NULL), TP_EINVAL);
    ck_assert_int_eq(tp_system_destroy(NULL), 0);
    tp_system *none = NULL;
    ck_assert_int_eq(tp_system_destroy(&none), 0);
    ck_assert_int_eq(tp_system_stats_get(NULL, NULL), TP_EINVAL);
}
END_TEST

START_TEST(test_system_errors)
{
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_system_start(sys), TP_EEXIST);
    ck_assert_int_eq(tp_system_wait(sys, -2), TP_EINVAL);
    ck_assert_int_eq(tp_system_stats_get(sys, NULL), TP_EINVAL);
    tp_worker_stats ws;
    ck_assert_int_eq(tp_worker_stats_get(sys, 1, &ws), TP_EINVAL);
    ck_assert_int_eq(tp_worker_stats_get(sys, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_worker_stats_get(sys, 0, &ws), 0);
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.threads, 1);
    tp_system_destroy(&sys);
    ck_assert_ptr_null(sys);
}
END_TEST

START_TEST(test_spawn_errors)
{
    tp_system *sys = tpt_system(1);
    tp_pid pid = tp_pid_make(0, 5, 5);
    const tp_behaviour no_handle = {.name = "x"};
    const tp_behaviour huge = {.handle = ok_handle,
                               .state_size = ((size_t)1 << 30) + 1};
    char longname[TP_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(tp_spawn(NULL, &ok_b, NULL, NULL, &pid), TP_EINVAL);
    ck_assert_int_eq(tp_spawn(sys, NULL, NULL, NULL, &pid), TP_EINVAL);
    ck_assert_int_eq(tp_spawn(sys, &no_handle, NULL, NULL, &pid), TP_EINVAL);
    ck_assert_int_eq(tp_spawn(sys, &huge, NULL, NULL, &pid), TP_EINVAL);
    ck_assert_int_eq(
        tp_spawn(sys, &ok_b, NULL, &(tp_spawn_opts){.name = longname}, &pid),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_spawn(sys, &ok_b, NULL, &(tp_spawn_opts){.name = ""}, &pid),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_spawn(sys, &ok_b, NULL,
                 &(tp_spawn_opts){.mailbox_capacity = (1u << 30) + 1}, &pid),
        TP_EINVAL);
    ck_assert_int_eq(tp_spawn(sys, &ok_b, NULL,
                              &(tp_spawn_opts){.overflow = (tp_overflow)9},
                              &pid),
                     TP_EINVAL);
    ck_assert(tp_pid_eq(pid, tp_pid_make(0, 5, 5)));
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.actors, 0);
    ck_assert_int_eq(tp_whereis(sys, NULL, &pid), TP_EINVAL);
    ck_assert_int_eq(tp_whereis(sys, "x", NULL), TP_EINVAL);
    ck_assert_int_eq(tp_whereis(NULL, "x", &pid), TP_EINVAL);
    ck_assert_int_eq(tp_whereis(sys, "nobody", &pid), TP_ENOACTOR);
    tp_actor_stats as;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_actor_stats_get(NULL, pid, &as), TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_send_errors)
{
    tp_system *sys = tpt_system(1);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &ok_b, NULL, NULL, &pid), 0);
    ck_assert_int_eq(tp_system_send(NULL, pid, 1, "x", 1), TP_EINVAL);
    ck_assert_int_eq(tp_system_send(sys, pid, TP_TAG_RESERVED, "x", 1),
                     TP_EINVAL);
    ck_assert_int_eq(tp_system_send(sys, pid, 0xffffffffu, "x", 1), TP_EINVAL);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 5), TP_EINVAL);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, "x", TP_MSG_MAX + 1),
                     TP_EMSGSIZE);
    char *buf = malloc(8);
    ck_assert_int_eq(tp_system_send_buf(sys, pid, TP_TAG_RESERVED, buf, 8),
                     TP_EINVAL);
    ck_assert_int_eq(tp_system_send_buf(sys, tp_pid_make(0, 77, 3), 1, buf, 8),
                     TP_ENOACTOR);
    free(buf); // the failures left it ours
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 0), 0); // empty is fine
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.rejected, 0);
    // Context calls with NULL.
    ck_assert_int_eq(tp_send(NULL, pid, 1, "x", 1), TP_EINVAL);
    ck_assert_int_eq(tp_send_buf(NULL, pid, 1, NULL, 0), TP_EINVAL);
    ck_assert_int_eq(tp_stop(NULL), TP_EINVAL);
    ck_assert_int_eq(tp_fail(NULL, TP_EINVAL, "x"), TP_EINVAL);
    ck_assert(tp_pid_is_nil(tp_self(NULL)));
    ck_assert(tp_pid_is_nil(tp_sender(NULL)));
    ck_assert_ptr_null(tp_ctx_system(NULL));
    tp_system_destroy(&sys);
}
END_TEST

// Wrong-thread calls: a context kept past its callback, and blocking
// system calls made from inside an actor.
static tp_ctx *saved_ctx;
static _Atomic long checks_done;
static int inside_codes[6];

static int
nosy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    saved_ctx = ctx;
    tp_system *sys = tp_ctx_system(ctx);
    tp_system *copy = sys;
    inside_codes[0] = tp_system_send(sys, tp_self(ctx), 1, NULL, 0);
    inside_codes[1] = tp_system_wait(sys, 0);
    inside_codes[2] = tp_system_destroy(&copy);
    inside_codes[3] = tp_system_start(sys);
    inside_codes[4] = tp_fail(ctx, 5, "not an error code");
    tp_system *other;
    inside_codes[5] = tp_system_new(NULL, &other);
    atomic_store(&checks_done, 1);
    return TP_OK;
}

static const tp_behaviour nosy_b = {.name = "nosy", .handle = nosy_handle};

START_TEST(test_wrong_thread)
{
    tp_system *sys = tpt_system(1);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &nosy_b, NULL, NULL, &pid), 0);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&checks_done, 1, 20));
    ck_assert_int_eq(inside_codes[0], TP_EPERM);
    ck_assert_int_eq(inside_codes[1], TP_EPERM);
    ck_assert_int_eq(inside_codes[2], TP_EPERM);
    ck_assert_int_eq(inside_codes[3], TP_EPERM);
    ck_assert_int_eq(inside_codes[4], TP_EINVAL);
    ck_assert_int_eq(inside_codes[5], TP_EPERM);
    // The context outlived its callback: every use is refused.
    ck_assert_int_eq(tp_send(saved_ctx, pid, 1, "x", 1), TP_EPERM);
    ck_assert_int_eq(tp_send_buf(saved_ctx, pid, 1, NULL, 0), TP_EPERM);
    ck_assert_int_eq(tp_stop(saved_ctx), TP_EPERM);
    ck_assert_int_eq(tp_fail(saved_ctx, TP_EINVAL, "late"), TP_EPERM);
    ck_assert(tp_pid_is_nil(tp_sender(saved_ctx)));
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0); // still alive
    tp_system_destroy(&sys);
}
END_TEST

Suite *
api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("bad arguments");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_system_errors);
    tcase_add_test(tc, test_spawn_errors);
    tcase_add_test(tc, test_send_errors);
    tcase_add_test(tc, test_wrong_thread);
    suite_add_tcase(s, tc);
    return s;
}
