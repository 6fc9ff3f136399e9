// SPDX-License-Identifier: MIT
// Helpers for the suites, and the runner: every suite, fork mode on.
#include "tp_test.h"

#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

bool
tpt_wait_until(bool (*pred)(void *), void *arg, double seconds)
{
    double end = now_s() + seconds;
    while (!pred(arg)) {
        if (now_s() > end)
            return false;
        tpt_nap_us(200);
    }
    return true;
}

pid_t
tpt_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

// Whether thread `tid` is asleep: state S in its stat line, which follows
// the last ')' (the name before it may hold anything). A thread gone
// meanwhile counts as asleep.
static bool
thread_asleep(long tid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    return p == NULL || (p[1] == ' ' && p[2] == 'S');
}

static bool
all_asleep(pid_t tid)
{
    if (tid != 0)
        return thread_asleep(tid);
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    long me = tpt_tid();
    bool all = true;
    struct dirent *e;
    while (all && (e = readdir(d)) != NULL) {
        long t = atol(e->d_name);
        if (t > 0 && t != me)
            all = thread_asleep(t);
    }
    closedir(d);
    return all;
}

bool
tpt_wait_asleep(pid_t tid, double seconds)
{
    double end = now_s() + seconds;
    for (int seen = 0;;) {
        seen = all_asleep(tid) ? seen + 1 : 0;
        if (seen == 2)
            return true;
        if (now_s() > end)
            return false;
        tpt_nap_us(1000);
    }
}

tp_system *
tpt_system_cfg(const tp_config *cfg)
{
    tp_system *sys = NULL;
    ck_assert_int_eq(tp_system_new(cfg, &sys), 0);
    ck_assert_int_eq(tp_system_start(sys), 0);
    return sys;
}

tp_system *
tpt_system(unsigned threads)
{
    return tpt_system_cfg(&(tp_config){.threads = threads});
}

#ifdef TPT_SAN_MALLOC
// From the sanitizer runtime (sanitizer/allocator_interface.h, which not
// every toolchain installs).
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

// Heap bytes the process has allocated and not freed, whatever the
// allocator keeps cached or has yet to give back to the kernel.
size_t
tpt_heap_in_use(void)
{
#ifdef TPT_SAN_MALLOC
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
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
    srunner_add_suite(sr, tls_suite());
    srunner_add_suite(sr, introspect_suite());
    srunner_add_suite(sr, sock_suite());
    srunner_add_suite(sr, kvstore_suite());
    srunner_add_suite(sr, guarantees_suite());
    srunner_add_suite(sr, dedicated_suite());
    srunner_add_suite(sr, group_suite());
    srunner_add_suite(sr, remote_suite());
    srunner_add_suite(sr, statem_suite());
    srunner_add_suite(sr, trace_suite());
    srunner_add_suite(sr, testmode_suite());
    srunner_add_suite(sr, testnet_suite());
    srunner_add_suite(sr, upgrade_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
