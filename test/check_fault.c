// SPDX-License-Identifier: MIT
// Native fault containment: a segfault, a floating-point trap, an illegal
// instruction or abort() inside a handler crashes only that actor when the
// system asks for it, and kills the process when it does not.
#include "tp_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic long downs, down_reason, pings;
static volatile uintptr_t bad_address = 16; // unmapped; hidden from gcc

static int
faulty_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    switch (msg->tag) {
    case 1:
        *(volatile int *)bad_address = 1;
        return TP_OK;
    case 2:
        raise(SIGFPE);
        return TP_OK;
    case 3:
        abort();
    case 4:
        __builtin_trap(); // SIGILL on x86-64
    default:
        atomic_fetch_add(&pings, 1);
        return TP_OK;
    }
}

static const tp_behaviour faulty = {.name = "faulty", .handle = faulty_handle};

// Monitors the actor named in its init argument and records its DOWN.
static int
watcher_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    return tp_monitor(ctx, *(tp_pid *)arg, NULL);
}

static int
watcher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == TP_TAG_DOWN) {
        atomic_store(&down_reason, ((const tp_down_msg *)msg->data)->reason);
        atomic_fetch_add(&downs, 1);
    }
    return TP_OK;
}

static const tp_behaviour watcher = {
    .name = "watcher", .init = watcher_init, .handle = watcher_handle};

static char log_line[1024];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
keep_log(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)level, (void)origin;
    pthread_mutex_lock(&log_lock);
    if (strstr(line, "signal") != NULL)
        snprintf(log_line, sizeof log_line, "%s", line);
    pthread_mutex_unlock(&log_lock);
}

START_TEST(test_faults_crash_only_the_actor)
{
#ifdef __SANITIZE_THREAD__
    return; // TSan owns synchronous signals; see README
#endif
    static const int sig[] = {SIGSEGV, SIGFPE, SIGABRT, SIGILL};
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 2, .catch_faults = true, .log = keep_log});
    tp_pid bystander;
    ck_assert_int_eq(tp_spawn(sys, &faulty, NULL, NULL, &bystander), 0);
    for (int i = 0; i < 4; i++) {
        atomic_store(&downs, 0);
        tp_pid f, w;
        ck_assert_int_eq(tp_spawn(sys, &faulty, NULL, NULL, &f), 0);
        ck_assert_int_eq(tp_spawn(sys, &watcher, &f, NULL, &w), 0);
        ck_assert_int_eq(tp_system_send(sys, f, (uint32_t)(i + 1), NULL, 0),
                         0);
        ck_assert(tpt_wait_ge(&downs, 1, 20));
        ck_assert_int_eq(down_reason, TP_REASON_SIGNAL + sig[i]);
        // The node goes on: the bystander still answers.
        long want = atomic_load(&pings) + 1;
        ck_assert_int_eq(tp_system_send(sys, bystander, 9, NULL, 0), 0);
        ck_assert(tpt_wait_ge(&pings, want, 20));
    }
    pthread_mutex_lock(&log_lock);
    ck_assert_ptr_nonnull(strstr(log_line, "reason=signal 4"));
    ck_assert_ptr_nonnull(strstr(log_line, "backtrace: "));
    pthread_mutex_unlock(&log_lock);
    char buf[32];
    tp_reason_format(TP_REASON_SIGNAL + SIGSEGV, buf, sizeof buf);
    ck_assert_str_eq(buf, "signal 11");
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_faults_kill_the_process_when_not_caught)
{
#ifdef __SANITIZE_THREAD__
    return;
#endif
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        alarm(20);
        tp_system *sys = NULL;
        tp_system_new(&(tp_config){.threads = 1}, &sys);
        tp_system_start(sys);
        tp_pid f;
        tp_spawn(sys, &faulty, NULL, NULL, &f);
        tp_system_send(sys, f, 2, NULL, 0);
        tp_system_wait(sys, 10000);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
#ifdef __SANITIZE_ADDRESS__
    // ASan's own handler reports the fault and exits non-zero.
    ck_assert(!WIFEXITED(status) || WEXITSTATUS(status) != 0);
#else
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGFPE);
#endif
}
END_TEST

Suite *
fault_suite(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("native");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_faults_crash_only_the_actor);
    tcase_add_test(tc, test_faults_kill_the_process_when_not_caught);
    suite_add_tcase(s, tc);
    return s;
}
