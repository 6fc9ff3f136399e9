// SPDX-License-Identifier: MIT
// Logging: what reaches a system's log sink, and how crash reports carry
// an actor's description.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char crash_line[TP_LOG_MAX + 1];
static _Atomic long crash_lines;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void
keep_crash(void *ud, int level, const char *line)
{
    (void)ud;
    if (level != TP_LOG_ERR || strncmp(line, "crash ", 6) != 0)
        return;
    pthread_mutex_lock(&lock);
    snprintf(crash_line, sizeof crash_line, "%s", line);
    pthread_mutex_unlock(&lock);
    atomic_fetch_add(&crash_lines, 1);
}

// Describes itself as `*state` bytes of 'y' and crashes on any message.
static int
wordy_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(size_t *)state = *(size_t *)arg;
    return 0;
}

static int
wordy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_ECRASH;
}

static int
wordy_describe(const void *state, char *buf, size_t size)
{
    size_t want = *(const size_t *)state, n = want < size ? want : size - 1;
    memset(buf, 'y', n);
    buf[n] = '\0';
    return (int)n;
}

static const tp_behaviour wordy = {.name = "wordy",
                                   .state_size = sizeof(size_t),
                                   .init = wordy_init,
                                   .handle = wordy_handle,
                                   .describe = wordy_describe};

START_TEST(crash_report_carries_the_whole_description)
{
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_crash});
    size_t want = TP_DESCRIBE_MAX;
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &pid, &wordy, &want, NULL), 0);
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&crash_lines, 1, 10));
    pthread_mutex_lock(&lock);
    const char *state = strstr(crash_line, " state=\"");
    ck_assert_ptr_nonnull(state);
    state += 8;
    ck_assert_uint_eq(strspn(state, "y"), TP_DESCRIBE_MAX);
    ck_assert_str_eq(state + TP_DESCRIBE_MAX, "\"");
    pthread_mutex_unlock(&lock);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, crash_report_carries_the_whole_description);
    suite_add_tcase(s, tc);
    return s;
}
