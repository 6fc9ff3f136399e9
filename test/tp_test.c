// SPDX-License-Identifier: MIT
// Helpers for the suites, and the runner: every suite, fork mode on.
#include "tp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double
tpt_scale(void)
{
    const char *s = getenv("TP_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

long
tpt_scaled(long n)
{
    long v = (long)(n * tpt_scale());
    return v > 0 ? v : 1;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
tpt_nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

bool
tpt_wait_ge(_Atomic long *v, long want, double seconds)
{
    double end = now_s() + seconds;
    while (atomic_load(v) < want) {
        if (now_s() > end)
            return false;
        tpt_nap_us(200);
    }
    return true;
}

tp_system *
tpt_system_cfg(const tp_config *cfg)
{
    tp_system *sys = NULL;
    ck_assert_int_eq(tp_system_new(&sys, cfg), 0);
    ck_assert_int_eq(tp_system_start(sys), 0);
    return sys;
}

tp_system *
tpt_system(unsigned threads)
{
    return tpt_system_cfg(&(tp_config){.threads = threads});
}

int
main(void)
{
    SRunner *sr = srunner_create(err_suite());
    srunner_add_suite(sr, pid_suite());
    srunner_add_suite(sr, api_suite());
    srunner_add_suite(sr, pack_suite());
    srunner_add_suite(sr, lifecycle_suite());
    srunner_add_suite(sr, log_suite());
    srunner_add_suite(sr, mailbox_suite());
    srunner_add_suite(sr, sched_suite());
    srunner_add_suite(sr, race_suite());
    srunner_add_suite(sr, link_suite());
    srunner_add_suite(sr, timer_suite());
    srunner_add_suite(sr, fault_suite());
    srunner_add_suite(sr, supervisor_suite());
    srunner_add_suite(sr, node_suite());
    srunner_add_suite(sr, wire_suite());
    srunner_add_suite(sr, introspect_suite());
    srunner_add_suite(sr, sock_suite());
    srunner_add_suite(sr, kvstore_suite());
    srunner_add_suite(sr, guarantees_suite());
    srunner_add_suite(sr, dedicated_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
