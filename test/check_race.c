// SPDX-License-Identifier: MIT
// Races with death and shutdown: sends to actors that are exiting, and
// destroying a system with millions of queued messages.
#include "tp_test.h"

#include <pthread.h>
#include <stdlib.h>

// Each mortal exits after a few messages; senders keep sending to them.
static _Atomic long deaths, bad_codes;

static int
mortal_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(long *)state = (long)(intptr_t)arg;
    return 0;
}

static int
mortal_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)msg;
    long *left = state;
    return --*left <= 0 ? TP_STOP : TP_OK;
}

static void
mortal_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)state, (void)reason;
    atomic_fetch_add(&deaths, 1);
}

static const tp_behaviour mortal_b = {.name = "mortal",
                                      .state_size = sizeof(long),
                                      .init = mortal_init,
                                      .handle = mortal_handle,
                                      .terminate = mortal_terminate};

enum { MORTALS = 256 };
static tp_pid mortals[MORTALS];

typedef struct hammer_state {
    long left;
    uint32_t rng;
} hammer_state;

static int
hammer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    hammer_state *h = state;
    if (msg->tag == 1)
        *h = *(const hammer_state *)msg->data;
    for (int i = 0; i < 64 && h->left > 0; i++, h->left--) {
        h->rng = h->rng * 1103515245u + 12345u;
        char payload[24] = "racing";
        int rc = tp_send(ctx, mortals[(h->rng >> 8) % MORTALS], 5, payload,
                         sizeof payload);
        if (rc != 0 && rc != TP_ENOACTOR && rc != TP_EFULL)
            atomic_fetch_add(&bad_codes, 1);
    }
    return h->left > 0 ? tp_send(ctx, tp_self(ctx), 2, NULL, 0) : TP_STOP;
}

static const tp_behaviour hammer_b = {.name = "hammer",
                                      .state_size = sizeof(hammer_state),
                                      .handle = hammer_handle};

typedef struct ext {
    tp_system *sys;
    long n;
    uint32_t seed;
} ext;

static void *
ext_hammer(void *p)
{
    ext *e = p;
    uint32_t rng = e->seed;
    for (long i = 0; i < e->n; i++) {
        rng = rng * 1103515245u + 12345u;
        char *buf = malloc(40);
        int rc = tp_system_send_buf(e->sys, mortals[(rng >> 8) % MORTALS], 5,
                                    buf, 40);
        if (rc != 0)
            free(buf); // still ours on failure
        if (rc != 0 && rc != TP_ENOACTOR && rc != TP_ETIMEDOUT)
            atomic_fetch_add(&bad_codes, 1);
    }
    return NULL;
}

START_TEST(test_sends_racing_with_death)
{
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 4, .send_timeout_ms = 5});
    for (int i = 0; i < MORTALS; i++)
        ck_assert_int_eq(tp_spawn(sys, &mortal_b,
                                  (void *)(intptr_t)(1 + i % 50), NULL,
                                  &mortals[i]),
                         0);
    for (int i = 0; i < 8; i++) {
        tp_pid h;
        hammer_state hs = {tpt_scaled(50000), (uint32_t)i * 7919u + 1};
        ck_assert_int_eq(tp_spawn(sys, &hammer_b, NULL, NULL, &h), 0);
        ck_assert_int_eq(tp_system_send(sys, h, 1, &hs, sizeof hs), 0);
    }
    pthread_t t[2];
    ext e[2] = {{sys, tpt_scaled(20000), 17}, {sys, tpt_scaled(20000), 29}};
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, ext_hammer, &e[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(tp_system_wait(sys, 120000), 0);
    ck_assert_int_eq(atomic_load(&bad_codes), 0);
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    ck_assert_uint_eq(st.exited, MORTALS + 8);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&deaths), MORTALS);
}
END_TEST

// Respawning while sending: pids of the dead keep failing cleanly.
START_TEST(test_churn_spawn_and_send)
{
    tp_system *sys = tpt_system(2);
    long n = tpt_scaled(50000);
    tp_pid prev = TP_PID_NIL;
    for (long i = 0; i < n; i++) {
        tp_pid p;
        ck_assert_int_eq(
            tp_spawn(sys, &mortal_b, (void *)(intptr_t)1, NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, "x", 1), 0);
        int rc = tp_system_send(sys, prev, 1, "y", 1);
        ck_assert(rc == 0 || rc == TP_ENOACTOR);
        prev = p;
    }
    ck_assert_int_eq(tp_system_wait(sys, 60000), 0);
    ck_assert_int_eq(atomic_load(&deaths), n);
    tp_system_destroy(&sys);
}
END_TEST

static _Atomic long shutdown_terms;

static void
count_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)state;
    ck_assert_int_eq(reason, TP_REASON_SHUTDOWN);
    atomic_fetch_add(&shutdown_terms, 1);
}

static int
sink_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK;
}

static const tp_behaviour sink_b = {
    .name = "sink", .handle = sink_handle, .terminate = count_terminate};

START_TEST(test_shutdown_with_millions_queued)
{
    tp_system *sys;
    ck_assert_int_eq(tp_system_new(&(tp_config){.threads = 2}, &sys), 0);
    enum { SINKS = 100 };
    long per = tpt_scaled(2000000) / SINKS;
    tp_pid p[SINKS];
    for (int i = 0; i < SINKS; i++)
        ck_assert_int_eq(
            tp_spawn(sys, &sink_b, NULL,
                     &(tp_spawn_opts){.mailbox_capacity = (uint32_t)per},
                     &p[i]),
            0);
    for (long k = 0; k < per; k++)
        for (int i = 0; i < SINKS; i++)
            ck_assert_int_eq(tp_system_send(sys, p[i], 1, &k, sizeof k), 0);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, p[0], &st), 0);
    ck_assert_uint_eq(st.length, per);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert_int_eq(tp_system_destroy(&sys), 0); // with most still queued
    ck_assert_ptr_null(sys);
    ck_assert_int_eq(atomic_load(&shutdown_terms), SINKS);
}
END_TEST

Suite *
race_suite(void)
{
    Suite *s = suite_create("race");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_sends_racing_with_death);
    tcase_add_test(tc, test_churn_spawn_and_send);
    tcase_add_test(tc, test_shutdown_with_millions_queued);
    suite_add_tcase(s, tc);
    return s;
}
