// SPDX-License-Identifier: MIT
// Logging: what reaches a system's log sink and from whom (the runtime's
// lines from "troupe", an application's from the actor that logged them),
// how crash reports carry an actor's description, and how the default
// sink writes a line to stderr, with a timestamp unless stderr is
// journald's stream.
#include "tp_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char crash_line[TP_LOG_MAX + 1];
static _Atomic long crash_lines;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void
keep_crash(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)origin;
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
    ck_assert_int_eq(tp_spawn(sys, &wordy, &want, NULL, &pid), 0);
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

// A behaviour without state may still describe itself (from what it
// keeps elsewhere): its crash report carries that too, as introspection
// does.
static int
plain_describe(const void *state, char *buf, size_t size)
{
    return snprintf(buf, size, "stateless=%s", state == NULL ? "yes" : "no");
}

static const tp_behaviour plain = {
    .name = "plain", .handle = wordy_handle, .describe = plain_describe};

START_TEST(crash_report_describes_a_stateless_actor)
{
    atomic_store(&crash_lines, 0);
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_crash});
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &plain, NULL, NULL, &pid), 0);
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 10000, &d), 0);
    ck_assert_str_eq(d.describe, "stateless=yes");
    ck_assert_int_eq(tp_system_send(sys, pid, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&crash_lines, 1, 10));
    pthread_mutex_lock(&lock);
    ck_assert_ptr_nonnull(strstr(crash_line, " state=\"stateless=yes\""));
    pthread_mutex_unlock(&lock);
    tp_system_destroy(&sys);
}
END_TEST

// ---- origins
// ----------------------------------------------------------------

enum { KEPT = 16 };
static struct {
    int level;
    char origin[96], line[256];
} kept[KEPT];
static _Atomic long nkept;

static void
keep_all(void *ud, int level, const char *origin, const char *line)
{
    (void)ud;
    ck_assert_ptr_nonnull(origin);
    pthread_mutex_lock(&lock);
    long i = atomic_load(&nkept);
    if (i < KEPT) {
        kept[i].level = level;
        snprintf(kept[i].origin, sizeof kept[i].origin, "%s", origin);
        snprintf(kept[i].line, sizeof kept[i].line, "%s", line);
        atomic_store(&nkept, i + 1);
    }
    pthread_mutex_unlock(&lock);
}

// The origin of the first kept line starting with `start`, or NULL.
static const char *
origin_of(const char *start)
{
    for (long i = 0; i < atomic_load(&nkept); i++)
        if (strncmp(kept[i].line, start, strlen(start)) == 0)
            return kept[i].origin;
    return NULL;
}

static int
chatty_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "handled n=1");
    return TP_ECRASH;
}

static const tp_behaviour chatty = {.name = "chatty", .handle = chatty_handle};

START_TEST(origins_tell_the_runtime_from_applications)
{
    atomic_store(&nkept, 0);
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_all});
    tp_child_spec kid = {.id = "c",
                         .behaviour = &chatty,
                         .restart = TP_TEMPORARY,
                         .opts = {.name = "chatty"}};
    tp_sup_spec spec = {.children = &kid, .nchildren = 1};
    tp_pid sup, c;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    ck_assert_int_eq(tp_whereis(sys, "chatty", &c), 0);
    tp_log(sys, TP_LOG_INFO, "outside n=2");
    tp_log_as(sys, TP_LOG_WARNING, "myapp", "named n=3");
    tp_log_as(sys, TP_LOG_WARNING, NULL, "unnamed n=4");
    ck_assert_int_eq(tp_system_send(sys, c, 1, NULL, 0), 0);
    // handled, the crash report, the supervisor's child_terminated
    ck_assert(tpt_wait_ge(&nkept, 6, 10));
    pthread_mutex_lock(&lock);
    char want[64], pid[TP_PID_STRLEN];
    tp_pid_format(c, pid, sizeof pid);
    snprintf(want, sizeof want, "chatty %s", pid);
    ck_assert_str_eq(origin_of("handled n=1"), want);
    ck_assert_str_eq(origin_of("outside n=2"), "");
    ck_assert_str_eq(origin_of("named n=3"), "myapp");
    ck_assert_str_eq(origin_of("unnamed n=4"), "");
    ck_assert_str_eq(origin_of("crash actor="), TP_LOG_RUNTIME);
    ck_assert_str_eq(origin_of("supervisor <"), TP_LOG_RUNTIME);
    pthread_mutex_unlock(&lock);
    tp_system_destroy(&sys);
}
END_TEST

// ---- the default sink
// --------------------------------------------------------

// Runs tp_log_stderr with stderr sent to a fresh file; JOURNAL_STREAM names
// that file when `journal`, another one when not. Returns what it wrote.
static char *
written(bool journal, int level, const char *origin, const char *line)
{
    char path[] = "/tmp/tp-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(journal ? fstat(fd, &st) : stat("/", &st), 0);
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    ck_assert_int_eq(setenv("JOURNAL_STREAM", js, 1), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    tp_log_stderr(NULL, level, origin, line);
    ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    unsetenv("JOURNAL_STREAM");
    static char out[TP_LOG_MAX + 512];
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n] = 0;
    close(fd);
    unlink(path);
    return out;
}

static bool
matches(const char *text, const char *pattern)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

// An ISO 8601 UTC timestamp with milliseconds, and the space after it.
#define TS_DATE "[0-9]{4}-[01][0-9]-[0-3][0-9]"
#define TS TS_DATE "T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "

START_TEST(stderr_lines_carry_a_timestamp_unless_journald_reads_them)
{
    char *out = written(false, TP_LOG_WARNING, "troupe", "crash a=1");
    ck_assert_msg(matches(out, "^<4>" TS "troupe: crash a=1\n$"), "%s", out);
    out = written(true, TP_LOG_WARNING, "troupe", "crash a=1");
    ck_assert_str_eq(out, "<4>troupe: crash a=1\n");
    // No origin, no "ORIGIN: "; a newline inside stays one line.
    out = written(true, TP_LOG_INFO, "", "two\nlines");
    ck_assert_str_eq(out, "<6>two lines\n");
    out = written(false, TP_LOG_INFO, NULL, "plain");
    ck_assert_msg(matches(out, "^<6>" TS "plain\n$"), "%s", out);
    // A longer text is cut at TP_LOG_MAX bytes, as tp_log cuts it.
    static char longer[3 * TP_LOG_MAX];
    memset(longer, 'z', sizeof longer - 1);
    out = written(true, TP_LOG_INFO, NULL, longer);
    ck_assert_uint_eq(strlen(out), 3 + TP_LOG_MAX + 1);
    ck_assert_uint_eq(strspn(out + 3, "z"), TP_LOG_MAX);
    ck_assert_str_eq(out + 3 + TP_LOG_MAX, "\n");
}
END_TEST

Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, crash_report_carries_the_whole_description);
    tcase_add_test(tc, crash_report_describes_a_stateless_actor);
    tcase_add_test(tc, origins_tell_the_runtime_from_applications);
    tcase_add_test(tc,
                   stderr_lines_carry_a_timestamp_unless_journald_reads_them);
    suite_add_tcase(s, tc);
    return s;
}
