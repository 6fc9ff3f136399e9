// SPDX-License-Identifier: MIT
// Supervisors: the scenarios of OTP's supervisor suite on troupe's API.
// Children are "workers" registered under their id, so a test finds the
// current incarnation with tp_whereis; each init and terminate is counted.
#include "tp_test.h"

#include "../supervisors/sup_impl.h" // the private tags, for bad requests

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_DIE = 1, W_PING };

// How a worker's init fails once it applies.
enum { INIT_RETURNS = 0, INIT_CRASHES, INIT_STOPS };

// How a worker behaves; one per child id, static for the whole test.
typedef struct wcfg {
    int init_rc;           // returned by init (after `ok_starts` good ones)
    int ok_starts;         // starts that succeed before init_rc applies
    int init_how;          // INIT_*: return init_rc, tp_fail, tp_stop
    bool trap;             // traps exits
    bool ignore_exit;      // and then ignores the shutdown signal
    _Atomic long starts;   // inits that succeeded
    _Atomic long stops;    // terminates
    _Atomic long stop_seq; // when it last terminated (global order)
    _Atomic int reason;    // the reason its terminate last saw
    _Atomic long exits;    // exit signals received while trapping
} wcfg;

static _Atomic long stop_clock, pings;

static int
w_init(tp_ctx *ctx, void *state, void *arg)
{
    wcfg *c = arg;
    *(wcfg **)state = c;
    if (c->init_rc != 0 && atomic_load(&c->starts) >= c->ok_starts) {
        if (c->init_how == INIT_CRASHES)
            tp_fail(ctx, c->init_rc, "init crashes on purpose");
        if (c->init_how == INIT_STOPS)
            return tp_stop(ctx);
        return c->init_rc;
    }
    if (c->trap)
        tp_trap_exit(ctx, true);
    atomic_fetch_add(&c->starts, 1);
    return 0;
}

static int
w_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    wcfg *c = *(wcfg **)state;
    switch (msg->tag) {
    case W_DIE: {
        int reason;
        memcpy(&reason, msg->data, sizeof reason);
        if (reason < 0)
            return reason;
        tp_stop_reason(ctx, reason);
        return TP_OK;
    }
    case W_PING:
        atomic_fetch_add(&pings, 1);
        return TP_OK;
    case TP_TAG_EXIT:
        atomic_fetch_add(&c->exits, 1);
        if (c->ignore_exit)
            return TP_OK;
        tp_stop_reason(ctx, ((const tp_exit_msg *)msg->data)->reason);
        return TP_OK;
    default:
        return TP_OK;
    }
}

static void
w_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    wcfg *c = *(wcfg **)state;
    atomic_store(&c->reason, reason);
    atomic_store(&c->stop_seq, atomic_fetch_add(&stop_clock, 1) + 1);
    atomic_fetch_add(&c->stops, 1);
}

static const tp_behaviour worker = {.name = "worker",
                                    .state_size = sizeof(wcfg *),
                                    .init = w_init,
                                    .handle = w_handle,
                                    .terminate = w_terminate};

static tp_system *sys;
static wcfg cfg[8];
static _Atomic long log_errors;
static _Atomic bool log_all; // keep the info lines too
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192]; // the error lines (all with log_all), as far
                            // as they fit

static void
quiet_log(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)origin;
    if (level > TP_LOG_ERR && !atomic_load(&log_all))
        return;
    atomic_fetch_add(&log_errors, level <= TP_LOG_ERR);
    pthread_mutex_lock(&log_lock);
    size_t len = strlen(log_text);
    snprintf(log_text + len, sizeof log_text - len, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}

// Whether an error line containing `needle` was logged.
static bool
logged(const char *needle)
{
    pthread_mutex_lock(&log_lock);
    bool found = strstr(log_text, needle) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

// Whether one logged line contains both `a` and, after it, `b`.
static bool
logged_both(const char *a, const char *b)
{
    bool found = false;
    pthread_mutex_lock(&log_lock);
    for (const char *p = log_text; !found && (p = strstr(p, a)) != NULL; p++) {
        const char *end = strchr(p, '\n'), *q = strstr(p, b);
        found = q != NULL && (end == NULL || q < end);
    }
    pthread_mutex_unlock(&log_lock);
    return found;
}

// The number after `key` on the last logged line containing `needle`, or
// -1 when there is no such line or it lacks `key`.
static long
logged_value(const char *needle, const char *key)
{
    long v = -1;
    pthread_mutex_lock(&log_lock);
    const char *line = NULL;
    for (const char *p = log_text; (p = strstr(p, needle)) != NULL; p++)
        line = p;
    if (line != NULL) {
        const char *end = strchr(line, '\n');
        const char *k = strstr(line, key);
        if (k != NULL && (end == NULL || k < end))
            v = strtol(k + strlen(key), NULL, 10);
    }
    pthread_mutex_unlock(&log_lock);
    return v;
}

static void
setup(void)
{
    memset(cfg, 0, sizeof cfg);
    stop_clock = pings = log_errors = 0;
    log_all = false;
    log_text[0] = '\0';
    sys = tpt_system_cfg(&(tp_config){.threads = 2, .log = quiet_log});
}

static void
teardown(void)
{
    tp_system_destroy(&sys);
}

static const char *const ids[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

static tp_child_spec
spec(int i, tp_restart restart)
{
    return (tp_child_spec){.id = ids[i],
                           .behaviour = &worker,
                           .arg = &cfg[i],
                           .opts = {.name = ids[i]},
                           .restart = restart};
}

static tp_pid
where(int i)
{
    tp_pid p = TP_PID_NIL;
    tp_whereis(sys, ids[i], &p);
    return p;
}

// Makes child `i` exit with `reason`. Its name may still name the
// previous incarnation for a moment (a dead actor's exit signals go out
// before its name is released), so a send to a dead pid is tried again.
static void
die(int i, int reason)
{
    int rc = TP_ENOACTOR;
    for (int k = 0; k < 20000 && rc == TP_ENOACTOR; k++) {
        rc = tp_system_send(sys, where(i), W_DIE, &reason, sizeof reason);
        if (rc == TP_ENOACTOR)
            tpt_nap_us(200);
    }
    ck_assert_int_eq(rc, 0);
}

// The pid of the child with id `id`, from which_children (nil if none).
static tp_pid
child_pid(tp_pid sup, const char *id)
{
    tp_sup_child kids[8];
    size_t n;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 8, &n), 0);
    for (size_t i = 0; i < n && i < 8; i++)
        if (strcmp(kids[i].id, id) == 0)
            return kids[i].pid;
    return TP_PID_NIL;
}

// Watches an actor from outside: a monitor held by a small actor.
static _Atomic long mon_downs, mon_reason;

static int
mon_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    return tp_monitor(ctx, *(tp_pid *)arg, NULL);
}

static int
mon_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == TP_TAG_DOWN) {
        atomic_store(&mon_reason, ((const tp_down_msg *)msg->data)->reason);
        atomic_fetch_add(&mon_downs, 1);
    }
    return TP_OK;
}

static const tp_behaviour mon = {
    .name = "mon", .init = mon_init, .handle = mon_handle};

static void
watch(tp_pid p)
{
    atomic_store(&mon_downs, 0);
    ck_assert_int_eq(tp_spawn(sys, &mon, &p, NULL, NULL), 0);
}

static tp_pid
start_sup(tp_sup_flags flags, const tp_child_spec *c, size_t n)
{
    tp_sup_spec s = {.flags = flags, .children = c, .nchildren = n};
    tp_pid p;
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, &p), 0);
    return p;
}

static void
wait_starts(int i, long n)
{
    ck_assert_msg(tpt_wait_ge(&cfg[i].starts, n, 20),
                  "child %s started %ld times, want %ld", ids[i],
                  atomic_load(&cfg[i].starts), n);
    // Registered once init returned; wait for the name too.
    for (int k = 0; k < 20000 && tp_pid_is_nil(where(i)); k++)
        tpt_nap_us(200);
}

static tp_sup_counts
counts(tp_pid sup)
{
    tp_sup_counts c;
    ck_assert_int_eq(tp_sup_count_children(sys, sup, TP_FOREVER, &c), 0);
    return c;
}

// Waits until the supervisor reports `specs` children, `active` running:
// a child's terminate runs before its exit signal leaves, so having seen
// it stop does not mean the supervisor has seen it yet.
static void
settle(tp_pid sup, uint32_t specs, uint32_t active)
{
    tp_sup_counts c = counts(sup);
    for (int k = 0; k < 20000 && (c.specs != specs || c.active != active);
         k++) {
        tpt_nap_us(500);
        c = counts(sup);
    }
    ck_assert_msg(c.specs == specs && c.active == active,
                  "%u specs, %u active; want %u, %u", c.specs, c.active, specs,
                  active);
}

// As settle, for a simple_one_for_one supervisor of workers: one spec
// (the template) and `kids` children, `active` of them running.
static void
settle_dyn(tp_pid sup, uint32_t kids, uint32_t active)
{
    tp_sup_counts c = counts(sup);
    for (int k = 0; k < 20000 && (c.workers != kids || c.active != active);
         k++) {
        tpt_nap_us(500);
        c = counts(sup);
    }
    ck_assert_msg(c.specs == 1 && c.workers == kids && c.active == active,
                  "%u specs, %u children, %u active; want 1, %u, %u", c.specs,
                  c.workers, c.active, kids, active);
}

// ---- strategies ------------------------------------------------------------

START_TEST(test_one_for_one)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 5}, c, 3);
    tp_pid a = where(0), b = where(1), cc = where(2);
    die(1, TP_EINVAL);
    wait_starts(1, 2);
    ck_assert(!tp_pid_eq(where(1), b));
    ck_assert(tp_pid_eq(where(0), a));
    ck_assert(tp_pid_eq(where(2), cc));
    ck_assert_int_eq(cfg[0].starts, 1);
    ck_assert_int_eq(counts(sup).active, 3);
}
END_TEST

START_TEST(test_one_for_all_takes_temporary_bystander)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_TEMPORARY)};
    tp_pid sup = start_sup(
        (tp_sup_flags){.strategy = TP_ONE_FOR_ALL, .intensity = 5}, c, 3);
    die(1, TP_EINVAL);
    wait_starts(0, 2);
    wait_starts(1, 2);
    ck_assert(tpt_wait_ge(&cfg[2].stops, 1, 20));
    tp_sup_counts n = counts(sup);
    ck_assert_int_eq(n.specs, 2); // the temporary child is gone
    ck_assert_int_eq(n.active, 2);
    ck_assert_int_eq(cfg[2].starts, 1);
    // Siblings stop last-started first: c before a.
    ck_assert_int_lt(cfg[2].stop_seq, cfg[0].stop_seq);
}
END_TEST

START_TEST(test_rest_for_one)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT), spec(3, TP_TEMPORARY)};
    tp_pid sup = start_sup(
        (tp_sup_flags){.strategy = TP_REST_FOR_ONE, .intensity = 5}, c, 4);
    tp_pid a = where(0);
    die(1, TP_EINVAL);
    wait_starts(1, 2);
    wait_starts(2, 2);
    ck_assert(tpt_wait_ge(&cfg[3].stops, 1, 20));
    ck_assert(tp_pid_eq(where(0), a));
    ck_assert_int_eq(cfg[0].starts, 1);
    ck_assert_int_lt(cfg[3].stop_seq, cfg[2].stop_seq);
    tp_sup_counts n = counts(sup);
    ck_assert_int_eq(n.specs, 3);
    ck_assert_int_eq(n.active, 3);
}
END_TEST

// ---- restart types --------------------------------------------------------

START_TEST(test_restart_types)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_TRANSIENT),
                         spec(2, TP_TRANSIENT), spec(3, TP_TEMPORARY),
                         spec(4, TP_TRANSIENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 10}, c, 5);
    die(0, TP_REASON_NORMAL); // permanent: restarted even after normal
    wait_starts(0, 2);
    die(1, TP_REASON_NORMAL);   // transient, normal: not restarted
    die(2, TP_REASON_SHUTDOWN); // transient, shutdown: not restarted
    die(4, TP_EDECODE);         // transient, abnormal: restarted
    die(3, TP_EDECODE);         // temporary: never, and removed
    wait_starts(4, 2);
    ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
    ck_assert(tpt_wait_ge(&cfg[2].stops, 1, 20));
    ck_assert(tpt_wait_ge(&cfg[3].stops, 1, 20));
    settle(sup, 4, 2);
    ck_assert_int_eq(cfg[1].starts, 1);
    ck_assert_int_eq(cfg[2].starts, 1);
    ck_assert_int_eq(cfg[3].starts, 1);
}
END_TEST

// The restart types under each strategy: a transient child exiting normal
// and a temporary one exiting abnormally are not restarted (the temporary
// one is forgotten); a permanent one exiting shutdown is, and under
// one_for_all and rest_for_one it takes the siblings after it along, the
// stopped transient one included, as OTP does.
START_TEST(test_restart_types_each_strategy)
{
    static const tp_strategy st[] = {TP_ONE_FOR_ONE, TP_ONE_FOR_ALL,
                                     TP_REST_FOR_ONE};
    for (int k = 0; k < 3; k++) {
        memset(cfg, 0, sizeof cfg);
        tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_TRANSIENT),
                             spec(2, TP_TEMPORARY)};
        tp_pid sup = start_sup(
            (tp_sup_flags){.strategy = st[k], .intensity = 10}, c, 3);
        die(1, TP_REASON_NORMAL);
        ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
        die(2, TP_EDECODE);
        ck_assert(tpt_wait_ge(&cfg[2].stops, 1, 20));
        settle(sup, 2, 1);
        ck_assert_int_eq(cfg[0].starts + cfg[1].starts + cfg[2].starts, 3);
        die(0, TP_REASON_SHUTDOWN);
        wait_starts(0, 2);
        if (st[k] != TP_ONE_FOR_ONE)
            wait_starts(1, 2);
        tp_sup_counts n = counts(sup);
        ck_assert_int_eq(n.active, st[k] == TP_ONE_FOR_ONE ? 1 : 2);
        ck_assert_int_eq(cfg[1].starts, st[k] == TP_ONE_FOR_ONE ? 1 : 2);
        ck_assert_int_eq(cfg[2].starts, 1);
        watch(sup);
        ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
        ck_assert_msg(tpt_wait_ge(&mon_downs, 1, 20), "strategy %d", k);
    }
}
END_TEST

// A child that traps exits and never stops, with an infinite shutdown:
// the supervisor waits for it (and answers nothing else meanwhile).
START_TEST(test_infinity_waits)
{
    cfg[0].trap = cfg[0].ignore_exit = true;
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    c[0].shutdown = TP_SHUTDOWN_INFINITY;
    tp_pid sup = start_sup((tp_sup_flags){0}, c, 1);
    watch(sup);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&cfg[0].exits, 1, 20)); // the child was told
    // Its calls wait too: they are answered once the sequence ends. The
    // call's 100 ms are also the window in which nothing may end.
    tp_sup_counts k;
    ck_assert_int_eq(tp_sup_count_children(sys, sup, 100, &k), TP_ETIMEDOUT);
    ck_assert_int_eq(tp_sup_count_children(sys, sup, 0, &k), TP_ETIMEDOUT);
    ck_assert_int_eq(tp_sup_count_children(sys, sup, -2, &k), TP_EINVAL);
    ck_assert_int_eq(mon_downs, 0); // still waiting
    ck_assert_int_eq(cfg[0].stops, 0);
    // Killing the child by hand ends the wait; the supervisor goes.
    ck_assert_int_eq(tp_system_exit(sys, where(0), TP_REASON_KILL), 0);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
}
END_TEST

// ---- intensity -------------------------------------------------------------

START_TEST(test_intensity_exceeded_shuts_down)
{
    static const tp_strategy strategies[] = {TP_ONE_FOR_ONE, TP_ONE_FOR_ALL,
                                             TP_REST_FOR_ONE};
    for (int k = 0; k < 3; k++) {
        memset(cfg, 0, sizeof cfg);
        tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
        tp_pid sup = start_sup((tp_sup_flags){.strategy = strategies[k],
                                              .intensity = 2,
                                              .period_ms = 60000},
                               c, 2);
        watch(sup);
        for (long i = 1; i <= 3; i++) {
            wait_starts(1, i);
            die(1, TP_EINVAL);
            if (i < 3)
                wait_starts(1, i + 1);
        }
        ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
        ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
        // Everything was stopped on the way out.
        ck_assert(tpt_wait_ge(&cfg[0].stops, cfg[0].starts, 20));
        ck_assert_int_eq(cfg[1].starts, 3);
    }
}
END_TEST

START_TEST(test_restarts_outside_the_window)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = 1, .period_ms = 40}, c, 1);
    for (long i = 1; i <= 6; i++) {
        wait_starts(0, i);
        // Time passing is the scenario: the previous restart must be
        // older than the 40 ms period.
        tpt_nap_us(60000);
        die(0, TP_EINVAL);
    }
    wait_starts(0, 7);
    ck_assert_int_eq(counts(sup).active, 1);
}
END_TEST

START_TEST(test_no_restarts_allowed)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = TP_SUP_NO_RESTARTS}, c, 1);
    watch(sup);
    die(0, TP_EINVAL);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[0].starts, 1);
}
END_TEST

// Three levels, top -> mid -> bottom -> two workers (child `w` and a
// bystander started after it), each level with strategy `st` and one
// restart allowed per minute. Two crashes of the worker use up bottom's
// budget; two exits of bottom use up mid's, two of mid top's: after 8
// crashes the whole tree is gone, with reason shutdown.
static void
escalate(tp_strategy st, int w)
{
    tp_child_spec kids[] = {spec(w, TP_PERMANENT), spec(w + 1, TP_PERMANENT)};
    tp_sup_flags flags = {.strategy = st, .intensity = 1, .period_ms = 60000};
    tp_sup_spec bottom = {.flags = flags, .children = kids, .nchildren = 2};
    tp_child_spec b[] = {{.id = "bottom",
                          .behaviour = &tp_supervisor,
                          .arg = &bottom,
                          .type = TP_SUPERVISOR}};
    tp_sup_spec mid = {.flags = flags, .children = b, .nchildren = 1};
    tp_child_spec m[] = {{.id = "mid",
                          .behaviour = &tp_supervisor,
                          .arg = &mid,
                          .type = TP_SUPERVISOR}};
    tp_pid top = start_sup(flags, m, 1);
    watch(top);
    long n = 0;
    while (atomic_load(&mon_downs) == 0 && n < 64) {
        wait_starts(w, n + 1);
        die(w, TP_EINVAL);
        n++;
        // Either the worker comes back or the whole tree goes.
        for (int k = 0; k < 40000 && atomic_load(&cfg[w].starts) == n &&
                        atomic_load(&mon_downs) == 0;
             k++)
            tpt_nap_us(250);
    }
    ck_assert_int_eq(mon_downs, 1);
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    ck_assert_msg(n == 8, "strategy %d: tree gone after %ld crashes", st, n);
    ck_assert(tpt_wait_ge(&cfg[w].stops, cfg[w].starts, 20));
    ck_assert(tpt_wait_ge(&cfg[w + 1].stops, cfg[w + 1].starts, 20));
    // Each new bottom started the bystander again.
    ck_assert_int_ge(cfg[w + 1].starts, 4);
}

START_TEST(test_escalation_through_three_levels)
{
    escalate(TP_ONE_FOR_ONE, 0);
    escalate(TP_ONE_FOR_ALL, 2);
    escalate(TP_REST_FOR_ONE, 4);
}
END_TEST

// ---- failing starts --------------------------------------------------------

START_TEST(test_init_failure_at_start)
{
    cfg[2].init_rc = TP_EDECODE;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT)};
    tp_sup_spec s = {.children = c, .nchildren = 3};
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EDECODE);
    // The two that started are stopped again.
    ck_assert(tpt_wait_ge(&cfg[0].stops, 1, 20));
    ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
    ck_assert(logged("start_error child=c reason=TP_EDECODE"));
}
END_TEST

// A child whose init declines is kept, not running; nothing fails.
START_TEST(test_init_that_ignores)
{
    cfg[1].init_rc = TP_IGNORE;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){0}, c, 3);
    tp_sup_counts n = counts(sup);
    ck_assert_int_eq(n.specs, 3);
    ck_assert_int_eq(n.active, 2);
    tp_sup_child kids[3];
    size_t got;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 3, &got), 0);
    ck_assert(tp_pid_is_nil(kids[1].pid));
    ck_assert(!tp_pid_is_nil(kids[2].pid));
    // tp_spawn reports it as such, and leaves nothing behind.
    tp_pid p = TP_PID_NIL;
    ck_assert_int_eq(tp_spawn(sys, &worker, &cfg[1], NULL, &p), TP_EIGNORED);
    ck_assert(tp_pid_is_nil(p));
}
END_TEST

START_TEST(test_restart_that_fails_gives_up)
{
    cfg[0].init_rc = TP_EDECODE;
    cfg[0].ok_starts = 1; // starts once, then every init fails
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = 5, .period_ms = 60000}, c, 1);
    watch(sup);
    die(0, TP_EINVAL);
    // Each failed retry counts: the supervisor gives up after 5.
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[0].starts, 1);
}
END_TEST

START_TEST(test_invalid_specs)
{
    tp_child_spec dup[] = {spec(0, TP_PERMANENT), spec(0, TP_PERMANENT)};
    tp_sup_spec s = {.children = dup, .nchildren = 2};
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    ck_assert(logged("id=a: duplicate id"));
    tp_child_spec bad = spec(1, TP_PERMANENT);
    bad.significant = true;
    s = (tp_sup_spec){.children = &bad, .nchildren = 1};
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    ck_assert(logged("id=b: a permanent child cannot be significant"));
    bad = spec(1, TP_PERMANENT);
    bad.shutdown = -7;
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    bad = spec(1, (tp_restart)9);
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    bad = spec(1, TP_PERMANENT);
    bad.id = NULL;
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    tp_child_spec two[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    s = (tp_sup_spec){.flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE},
                      .children = two,
                      .nchildren = 2};
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    s = (tp_sup_spec){.flags = {.strategy = (tp_strategy)7}};
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_sup_start(sys, NULL, NULL, NULL), TP_EINVAL);
    ck_assert_int_eq(cfg[0].starts + cfg[1].starts, 0);
}
END_TEST

// A supervisor child's spec is copied with the specs under it, at most 32
// levels: a chain of 32 supervisors under the top one starts, 33 do not,
// and a spec that contains itself is refused as invalid, at start and by
// start_child alike.
START_TEST(test_nested_specs_depth)
{
    enum { LEVELS = 33 };
    tp_sup_spec chain[LEVELS + 1];
    tp_child_spec link[LEVELS];
    for (int i = 0; i < LEVELS; i++) {
        link[i] = (tp_child_spec){.id = "sub",
                                  .behaviour = &tp_supervisor,
                                  .arg = &chain[i + 1],
                                  .type = TP_SUPERVISOR};
        chain[i] = (tp_sup_spec){.children = &link[i], .nchildren = 1};
    }
    chain[LEVELS] = (tp_sup_spec){0};
    ck_assert_int_eq(tp_sup_start(sys, &chain[0], NULL, NULL), TP_EINVAL);
    ck_assert(logged("supervisors nested over 32 deep"));
    chain[LEVELS - 1] = (tp_sup_spec){0}; // 32 under the top one
    tp_pid top;
    ck_assert_int_eq(tp_sup_start(sys, &chain[0], NULL, &top), 0);
    tp_pid p = top;
    for (int i = 0; i < LEVELS - 1; i++) {
        tp_sup_child kid;
        size_t n = 0;
        ck_assert_int_eq(tp_sup_which_children(sys, p, 5000, &kid, 1, &n), 0);
        ck_assert_uint_eq(n, 1);
        p = kid.pid;
    }
    ck_assert(!tp_pid_is_nil(p));
    tp_child_spec me = {.id = "me",
                        .behaviour = &tp_supervisor,
                        .type = TP_SUPERVISOR};
    tp_sup_spec self = {.children = &me, .nchildren = 1};
    me.arg = &self;
    ck_assert_int_eq(tp_sup_start(sys, &self, NULL, NULL), TP_EINVAL);
    ck_assert(logged("(a spec that contains itself)"));
    ck_assert_int_eq(tp_sup_start_child(sys, top, &me, NULL, 5000, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(counts(top).specs, 1);
}
END_TEST

// ---- shutdown --------------------------------------------------------------

START_TEST(test_ordered_shutdown_and_timeouts)
{
    cfg[1].trap = cfg[1].ignore_exit = true; // ignores shutdown: killed
    cfg[2].trap = true;                      // traps, but stops
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT), spec(3, TP_PERMANENT)};
    c[1].shutdown = 50;
    c[2].shutdown = TP_SHUTDOWN_INFINITY;
    c[3].shutdown = TP_SHUTDOWN_BRUTAL_KILL;
    tp_pid sup = start_sup((tp_sup_flags){0}, c, 4);
    watch(sup);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(cfg[i].stops, 1);
    // Reverse start order.
    ck_assert_int_lt(cfg[3].stop_seq, cfg[2].stop_seq);
    ck_assert_int_lt(cfg[2].stop_seq, cfg[1].stop_seq);
    ck_assert_int_lt(cfg[1].stop_seq, cfg[0].stop_seq);
}
END_TEST

// A child that exits on its own while the supervisor is stopping another
// one, before its own turn, is logged like every other exit.
START_TEST(test_exit_during_a_stop_is_logged)
{
    atomic_store(&log_all, true);
    cfg[1].trap = cfg[1].ignore_exit = true;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    c[1].shutdown = 300;
    tp_pid sup = start_sup((tp_sup_flags){0}, c, 2);
    watch(sup);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&cfg[1].exits, 1, 20)); // b is being stopped
    die(0, TP_EDECODE); // while b is given its 300 ms
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(cfg[0].reason, TP_EDECODE);
    ck_assert_msg(
        logged_both("child_stopped child=a pid=<0.", " reason=TP_EDECODE "),
        "%s", log_text);
}
END_TEST

// ---- management calls ------------------------------------------------------

START_TEST(test_child_management)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 5}, c, 1);
    tp_child_spec b = spec(1, TP_TRANSIENT);
    tp_pid pb;
    ck_assert_int_eq(tp_sup_start_child(sys, sup, &b, NULL, 5000, &pb), 0);
    ck_assert(tp_pid_eq(pb, where(1)));
    ck_assert_int_eq(tp_sup_start_child(sys, sup, &b, NULL, 5000, NULL),
                     TP_EEXIST);
    tp_child_spec bad = spec(2, TP_PERMANENT);
    bad.behaviour = NULL;
    ck_assert_int_eq(tp_sup_start_child(sys, sup, &bad, NULL, 5000, NULL),
                     TP_EINVAL);
    cfg[3].init_rc = TP_EDECODE;
    tp_child_spec failing = spec(3, TP_PERMANENT);
    ck_assert_int_eq(tp_sup_start_child(sys, sup, &failing, NULL, 5000, NULL),
                     TP_EDECODE);
    tp_sup_child kids[4];
    size_t n;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 4, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(kids[0].id, "a");
    ck_assert_str_eq(kids[1].id, "b");
    ck_assert(tp_pid_eq(kids[1].pid, pb));
    // terminate keeps the spec; restart brings it back; delete removes it.
    ck_assert_int_eq(tp_sup_restart_child(sys, sup, "b", 5000, NULL),
                     TP_EEXIST);
    ck_assert_int_eq(tp_sup_delete_child(sys, sup, "b", 5000), TP_EEXIST);
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, "b", TP_PID_NIL, 5000),
                     0);
    ck_assert_int_eq(cfg[1].stops, 1);
    tp_sup_counts k = counts(sup);
    ck_assert_int_eq(k.specs, 2);
    ck_assert_int_eq(k.active, 1);
    ck_assert_int_eq(k.workers, 2);
    ck_assert_int_eq(tp_sup_restart_child(sys, sup, "b", 5000, &pb), 0);
    ck_assert(tp_pid_eq(pb, where(1)));
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, "b", TP_PID_NIL, 5000),
                     0);
    ck_assert_int_eq(tp_sup_delete_child(sys, sup, "b", 5000), 0);
    ck_assert_int_eq(tp_sup_delete_child(sys, sup, "b", 5000), TP_ENOENT);
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, "zz", TP_PID_NIL, 5000),
                     TP_ENOENT);
    ck_assert_int_eq(counts(sup).specs, 1);
    // A pid that is not a supervisor's, and calls from an actor.
    ck_assert_int_eq(tp_sup_count_children(sys, TP_PID_NIL, 1000, &k),
                     TP_ENOACTOR);
}
END_TEST

START_TEST(test_simple_one_for_one_storm)
{
    long n = tpt_scaled(10000);
    tp_child_spec t = {.id = "tmpl", .behaviour = &worker, .arg = &cfg[0]};
    tp_pid sup = start_sup((tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE,
                                          .intensity = (int32_t)(2 * n),
                                          .period_ms = 60000},
                           &t, 1);
    tp_pid *kids = malloc((size_t)n * sizeof *kids);
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(
            tp_sup_start_child(sys, sup, NULL, &cfg[0], 5000, &kids[i]), 0);
    ck_assert_int_eq(counts(sup).active, n);
    int reason = TP_EINVAL;
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(
            tp_system_send(sys, kids[i], W_DIE, &reason, sizeof reason), 0);
    ck_assert(tpt_wait_ge(&cfg[0].starts, 2 * n, 60));
    tp_sup_counts k = counts(sup);
    ck_assert_int_eq(k.active, n);
    ck_assert_int_eq(k.workers, n);
    ck_assert_int_eq(k.specs, 1);
    // Terminating one by pid removes it.
    tp_sup_child *list = malloc((size_t)n * sizeof *list);
    size_t got;
    ck_assert_int_eq(
        tp_sup_which_children(sys, sup, 5000, list, (size_t)n, &got), 0);
    ck_assert_uint_eq(got, (size_t)n);
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, NULL, list[0].pid, 5000),
                     0);
    ck_assert_int_eq(counts(sup).workers, n - 1);
    ck_assert_int_eq(tp_sup_start_child(sys, sup, &t, NULL, 5000, NULL),
                     TP_EINVAL);
    free(list);
    free(kids);
}
END_TEST

// Dynamic transient children: those exiting normal are forgotten, those
// crashing come back; each one left can be terminated by pid, after which
// none is left. Exercises the supervisor's pid lookup under churn.
START_TEST(test_simple_one_for_one_churn)
{
    long n = tpt_scaled(3000);
    tp_child_spec t = {.id = "tmpl",
                       .behaviour = &worker,
                       .arg = &cfg[0],
                       .restart = TP_TRANSIENT};
    tp_pid sup = start_sup((tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE,
                                          .intensity = (int32_t)n,
                                          .period_ms = 60000},
                           &t, 1);
    tp_pid *kids = malloc((size_t)n * sizeof *kids);
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(
            tp_sup_start_child(sys, sup, NULL, &cfg[0], 5000, &kids[i]), 0);
    long gone = 0;
    for (long i = 0; i < n; i++) {
        int reason = i % 3 == 0 ? TP_REASON_NORMAL : TP_EINVAL;
        gone += i % 3 == 0;
        ck_assert_int_eq(
            tp_system_send(sys, kids[i], W_DIE, &reason, sizeof reason), 0);
    }
    ck_assert(tpt_wait_ge(&cfg[0].starts, 2 * n - gone, 60));
    settle_dyn(sup, (uint32_t)(n - gone), (uint32_t)(n - gone));
    tp_sup_child *list = malloc((size_t)n * sizeof *list);
    size_t got;
    ck_assert_int_eq(
        tp_sup_which_children(sys, sup, 5000, list, (size_t)n, &got), 0);
    ck_assert_uint_eq(got, (size_t)(n - gone));
    for (size_t i = 0; i < got; i++)
        ck_assert_int_eq(
            tp_sup_terminate_child(sys, sup, NULL, list[i].pid, 5000), 0);
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, NULL, list[0].pid, 5000),
                     TP_ENOENT);
    settle_dyn(sup, 0, 0);
    ck_assert_int_eq(cfg[0].stops, cfg[0].starts);
    free(list);
    free(kids);
}
END_TEST

START_TEST(test_auto_shutdown)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_TRANSIENT),
                         spec(2, TP_TEMPORARY)};
    c[1].significant = c[2].significant = true;
    tp_pid sup = start_sup(
        (tp_sup_flags){.auto_shutdown = TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT}, c,
        3);
    watch(sup);
    die(1, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
    settle(sup, 3, 2); // c is still significant: no shutdown yet
    die(2, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    ck_assert(tpt_wait_ge(&cfg[0].stops, 1, 20));

    memset(cfg, 0, sizeof cfg);
    sup = start_sup(
        (tp_sup_flags){.auto_shutdown = TP_AUTO_SHUTDOWN_ANY_SIGNIFICANT}, c,
        3);
    watch(sup);
    die(2, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
}
END_TEST

START_TEST(test_backoff_delays_restart)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 5,
                                          .backoff_min_ms = 80,
                                          .backoff_max_ms = 200},
                           c, 1);
    die(0, TP_EINVAL);
    ck_assert(tpt_wait_ge(&cfg[0].stops, 1, 20));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wait_starts(0, 2);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(ms >= 55, "restarted after %.1f ms, before the backoff", ms);
    ck_assert_int_eq(counts(sup).active, 1);
}
END_TEST

// A delayed restart that comes due while the supervisor is stopping
// another child (here: one slow to stop) is not lost: it happens once the
// stop is done.
START_TEST(test_delayed_restart_while_busy)
{
    cfg[0].trap = cfg[0].ignore_exit = true;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    c[0].shutdown = 300;
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = 5, .backoff_min_ms = 40}, c, 2);
    die(1, TP_EINVAL);
    // Wait until the supervisor has seen b exit (its restart is pending).
    tp_sup_child kids[2];
    size_t n = 0;
    for (int k = 0; k < 20000; k++) {
        ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 2, &n),
                         0);
        if (tp_pid_is_nil(kids[1].pid))
            break;
        tpt_nap_us(200);
    }
    ck_assert(tp_pid_is_nil(kids[1].pid));
    // a ignores its shutdown: the supervisor is busy for 300 ms, and b's
    // restart comes due meanwhile.
    ck_assert_int_eq(tp_sup_terminate_child(sys, sup, "a", TP_PID_NIL, 5000),
                     0);
    wait_starts(1, 2);
    ck_assert_int_eq(counts(sup).active, 1);
}
END_TEST

// Each restart type exiting normal, shutdown and abnormally under each
// strategy, between two permanent siblings: permanent children always
// come back, transient ones only after an abnormal exit, temporary ones
// never (and are forgotten); one_for_all restarts both siblings with it,
// rest_for_one the later one only.
START_TEST(test_restart_matrix)
{
    static const tp_strategy st[] = {TP_ONE_FOR_ONE, TP_ONE_FOR_ALL,
                                     TP_REST_FOR_ONE};
    static const tp_restart rt[] = {TP_PERMANENT, TP_TRANSIENT, TP_TEMPORARY};
    static const int why[] = {TP_REASON_NORMAL, TP_REASON_SHUTDOWN, TP_EINVAL};
    for (int k = 0; k < 27; k++) {
        tp_strategy strategy = st[k / 9];
        tp_restart r = rt[k / 3 % 3];
        int reason = why[k % 3];
        memset(cfg, 0, sizeof cfg);
        // Unnamed: the next round's children would want the same names.
        tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, r),
                             spec(2, TP_PERMANENT)};
        for (int i = 0; i < 3; i++)
            c[i].opts.name = NULL;
        tp_pid sup = start_sup(
            (tp_sup_flags){.strategy = strategy, .intensity = 10}, c, 3);
        ck_assert_int_eq(tp_system_send(sys, child_pid(sup, "b"), W_DIE,
                                        &reason, sizeof reason),
                         0);
        bool again = r == TP_PERMANENT || (r == TP_TRANSIENT && reason < 0);
        if (again) {
            ck_assert(tpt_wait_ge(&cfg[1].starts, 2, 20));
            settle(sup, 3, 3);
        } else {
            ck_assert(tpt_wait_ge(&cfg[1].stops, 1, 20));
            settle(sup, r == TP_TEMPORARY ? 2 : 3, 2);
        }
        ck_assert_msg(cfg[0].starts ==
                          (again && strategy == TP_ONE_FOR_ALL ? 2 : 1),
                      "case %d: a started %ld times", k, cfg[0].starts);
        ck_assert_msg(cfg[2].starts ==
                          (again && strategy != TP_ONE_FOR_ONE ? 2 : 1),
                      "case %d: c started %ld times", k, cfg[2].starts);
        watch(sup);
        ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
        ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    }
}
END_TEST

// As many restarts as the intensity allows within the period are fine;
// one more and the supervisor gives up.
START_TEST(test_many_restarts_inside_the_window)
{
    long max = 20;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    tp_pid sup = start_sup(
        (tp_sup_flags){.intensity = (int32_t)max, .period_ms = 60000}, c, 2);
    watch(sup);
    for (long i = 1; i <= max; i++) {
        wait_starts(i % 2, (i + 1) / 2);
        die(i % 2, TP_EINVAL); // alternating: the count is the supervisor's
    }
    wait_starts(0, max / 2 + 1);
    wait_starts(1, max / 2 + 1);
    settle(sup, 2, 2);
    ck_assert_int_eq(mon_downs, 0);
    die(0, TP_EINVAL);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[0].starts, max / 2 + 1);
    ck_assert(tpt_wait_ge(&cfg[1].stops, cfg[1].starts, 20));
}
END_TEST

// A child's init that crashes (tp_fail) or stops fails the supervisor's
// start with its reason, logged with the child's id; the children already
// started are stopped.
START_TEST(test_init_crashes_or_stops)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    c[0].opts.name = c[1].opts.name = NULL; // started twice below
    tp_sup_spec s = {.children = c, .nchildren = 2};
    cfg[1].init_rc = TP_EDECODE;
    cfg[1].init_how = INIT_CRASHES;
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EDECODE);
    ck_assert(tpt_wait_ge(&cfg[0].stops, 1, 20));
    ck_assert(logged("start_error child=b"));
    cfg[1].init_how = INIT_STOPS;
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EINIT);
    ck_assert(tpt_wait_ge(&cfg[0].stops, 2, 20));
    ck_assert_int_eq(cfg[1].starts, 0);
}
END_TEST

static double
ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

// Crashes child 0 and returns how long its restart took, in ms.
static double
timed_restart(long starts)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    die(0, TP_EINVAL);
    wait_starts(0, starts);
    return ms_since(&t0);
}

// Backoff under one_for_all: each restart in a streak waits twice as long
// (30, 60, 120, 240 ms, +-25 %); once the child has run a whole period
// the streak starts over.
START_TEST(test_backoff_streak)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.strategy = TP_ONE_FOR_ALL,
                                          .intensity = 20,
                                          .period_ms = 200,
                                          .backoff_min_ms = 30,
                                          .backoff_max_ms = 5000},
                           c, 2);
    wait_starts(0, 1);
    double first = timed_restart(2);
    ck_assert_msg(first >= 22, "first restart after %.1f ms", first);
    timed_restart(3);
    timed_restart(4);
    double fourth = timed_restart(5);
    ck_assert_msg(fourth >= 180, "fourth restart after %.1f ms", fourth);
    // The sibling came back each time (it starts just after child 0).
    wait_starts(1, 5);
    ck_assert_int_eq(cfg[1].starts, 5);
    tpt_nap_us(250000); // runs longer than the period: time is the input
    double fresh = timed_restart(6);
    ck_assert_msg(fresh >= 22 && fresh < 150, "after a calm period: %.1f ms",
                  fresh);
    settle(sup, 2, 2);
}
END_TEST

// A named child that monitors many actors: when it dies its exit signal
// reaches the supervisor while it is still dropping its monitors, before
// it releases its name. The restart waits for the name instead of failing
// (and counting toward the intensity): ten crashes, ten restarts allowed.
enum { NWATCHED = 1000 };
static tp_pid watched[NWATCHED];

static int
idle_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK;
}

static const tp_behaviour idle = {.name = "idle", .handle = idle_handle};

static int
watcher_init(tp_ctx *ctx, void *state, void *arg)
{
    for (int i = 0; i < NWATCHED; i++)
        ck_assert_int_eq(tp_monitor(ctx, watched[i], NULL), 0);
    return w_init(ctx, state, arg);
}

static const tp_behaviour watcher = {.name = "watcher",
                                     .state_size = sizeof(wcfg *),
                                     .init = watcher_init,
                                     .handle = w_handle,
                                     .terminate = w_terminate};

START_TEST(test_named_child_restarts_once_its_name_is_free)
{
    for (int i = 0; i < NWATCHED; i++)
        ck_assert_int_eq(tp_spawn(sys, &idle, NULL, NULL, &watched[i]), 0);
    tp_child_spec c[] = {spec(0, TP_PERMANENT)};
    c[0].behaviour = &watcher;
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = 10, .period_ms = 60000}, c, 1);
    for (long i = 1; i <= 10; i++) {
        wait_starts(0, i);
        die(0, TP_EINVAL);
    }
    wait_starts(0, 11);
    settle(sup, 1, 1);
    ck_assert_msg(!logged("restart failed"), "%s", log_text);
}
END_TEST

// A supervisor that exits abnormally (an exit signal from outside) stops
// its children first; its crash report carries the describe line:
// strategy, intensity, restarts in the window, each child's state.
START_TEST(test_describe)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    tp_pid sup =
        start_sup((tp_sup_flags){.intensity = 4, .period_ms = 60000}, c, 2);
    die(1, TP_EINVAL);
    wait_starts(1, 2);
    watch(sup);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_EDECODE), 0);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ck_assert_int_eq(mon_reason, TP_EDECODE);
    ck_assert_int_eq(cfg[0].stops, 1);
    ck_assert_int_eq(cfg[1].stops, 2);
    ck_assert_msg(logged("strategy=one_for_one intensity=4 period_ms=60000 "
                         "restarts_in_window=1 children=2"),
                  "%s", log_text);
    ck_assert(logged("[id=a pid=<0.0.0> state=stopped restarts=0] "
                     "[id=b pid=<0.0.0> state=stopped restarts=1]"));
    // Cut to the buffer, NUL-terminated.
    void *state = calloc(1, tp_supervisor.state_size);
    char buf[12];
    int n = tp_supervisor.describe(state, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(buf));
    ck_assert_str_eq(buf, "strategy=on");
    free(state);
}
END_TEST

// which_children reports each child's restart count.
START_TEST(test_restart_counts)
{
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 3}, c, 2);
    die(1, TP_EINVAL);
    wait_starts(1, 2);
    tp_sup_child kids[2];
    size_t n;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 2, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(kids[1].restarts, 1);
    ck_assert_uint_eq(kids[0].restarts, 0);
    ck_assert_int_eq(kids[0].restart, TP_PERMANENT);
    ck_assert_int_eq(kids[0].type, TP_WORKER);
}
END_TEST

// ---- simple_one_for_one ----------------------------------------------------

// count_children of a simple_one_for_one supervisor reports one spec, the
// template, as OTP does; `workers` (or `supervisors`, after the template's
// type) counts its children and `active` those running, so a child
// waiting out its backoff counts in the one and not in the other.
START_TEST(test_simple_one_for_one_counts)
{
    tp_child_spec t = {.id = "tmpl", .behaviour = &worker, .arg = &cfg[0]};
    tp_pid sup = start_sup((tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE,
                                          .intensity = 5,
                                          .backoff_min_ms = 400},
                           &t, 1);
    tp_sup_counts k = counts(sup);
    ck_assert_uint_eq(k.specs, 1);
    ck_assert_uint_eq(k.active + k.workers + k.supervisors, 0);
    tp_pid kids[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(
            tp_sup_start_child(sys, sup, NULL, &cfg[0], 5000, &kids[i]), 0);
    k = counts(sup);
    ck_assert_uint_eq(k.specs, 1);
    ck_assert_uint_eq(k.active, 3);
    ck_assert_uint_eq(k.workers, 3);
    ck_assert_uint_eq(k.supervisors, 0);
    int reason = TP_EINVAL;
    ck_assert_int_eq(
        tp_system_send(sys, kids[1], W_DIE, &reason, sizeof reason), 0);
    settle_dyn(sup, 3, 2); // it waits 300 ms or more before its restart
    ck_assert(tpt_wait_ge(&cfg[0].starts, 4, 20));
    settle_dyn(sup, 3, 3);

    // A template of type supervisor: its children count as supervisors.
    tp_sup_spec inner = {.flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE},
                         .children = &t,
                         .nchildren = 1};
    tp_child_spec st = {.id = "subs",
                        .behaviour = &tp_supervisor,
                        .arg = &inner,
                        .type = TP_SUPERVISOR};
    tp_pid sup2 =
        start_sup((tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE}, &st, 1);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(
            tp_sup_start_child(sys, sup2, NULL, &inner, 5000, NULL), 0);
    k = counts(sup2);
    ck_assert_uint_eq(k.specs, 1);
    ck_assert_uint_eq(k.active, 2);
    ck_assert_uint_eq(k.supervisors, 2);
    ck_assert_uint_eq(k.workers, 0);
}
END_TEST

// A simple_one_for_one child is named by its template's id, in
// which_children and, with its pid, in the supervisor's log lines.
START_TEST(test_simple_one_for_one_names)
{
    atomic_store(&log_all, true);
    tp_child_spec t = {.id = "tmpl", .behaviour = &worker, .arg = &cfg[0]};
    tp_pid sup = start_sup(
        (tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE, .intensity = 5}, &t,
        1);
    tp_pid kid;
    ck_assert_int_eq(tp_sup_start_child(sys, sup, NULL, &cfg[0], 5000, &kid),
                     0);
    tp_sup_child kids[2];
    size_t n;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 2, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(kids[0].id, "tmpl");
    ck_assert(tp_pid_eq(kids[0].pid, kid));
    int reason = TP_EINVAL;
    ck_assert_int_eq(tp_system_send(sys, kid, W_DIE, &reason, sizeof reason),
                     0);
    ck_assert(tpt_wait_ge(&cfg[0].starts, 2, 20));
    settle_dyn(sup, 1, 1);
    char pid[TP_PID_STRLEN], want[128];
    tp_pid_format(kid, pid, sizeof pid);
    snprintf(want, sizeof want, "child_terminated child=tmpl pid=%s ", pid);
    ck_assert_msg(logged(want), "%s", log_text);
    ck_assert_msg(logged("restarted child=tmpl pid=<"), "%s", log_text);
    ck_assert_msg(!logged("(null)"), "%s", log_text);
}
END_TEST

// The restarted line says how long the restart waited for backoff:
// backoff_ms=0 without backoff, the delay (with its jitter) with it.
START_TEST(test_restart_log_names_backoff)
{
    atomic_store(&log_all, true);
    tp_child_spec a[] = {spec(0, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){.intensity = 5}, a, 1);
    die(0, TP_EINVAL);
    wait_starts(0, 2);
    settle(sup, 1, 1);
    ck_assert_msg(logged_value("restarted child=a ", " backoff_ms=") == 0,
                  "%s", log_text);
    tp_child_spec b[] = {spec(1, TP_PERMANENT)};
    sup = start_sup((tp_sup_flags){.intensity = 5,
                                   .backoff_min_ms = 80,
                                   .backoff_max_ms = 80},
                    b, 1);
    die(1, TP_EINVAL);
    wait_starts(1, 2);
    settle(sup, 1, 1);
    long ms = logged_value("restarted child=b ", " backoff_ms=");
    ck_assert_msg(ms >= 60 && ms <= 100, "backoff_ms=%ld in %s", ms, log_text);
}
END_TEST

// ---- cleaning up after a failed start -------------------------------------

// A child that fails to start makes the supervisor stop the children it
// had started, as it stops children anywhere else (last started first,
// each sent shutdown and killed when its shutdown time is up), and all
// of that is done when tp_sup_start returns its error.
START_TEST(test_failed_start_stops_the_started)
{
    cfg[1].trap = true;                      // traps exits, stops on shutdown
    cfg[2].trap = cfg[2].ignore_exit = true; // ignores shutdown: killed
    cfg[4].init_rc = TP_EDECODE;
    atomic_store(&log_all, true);
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT), spec(3, TP_PERMANENT),
                         spec(4, TP_PERMANENT)};
    c[2].shutdown = 150;
    c[3].shutdown = TP_SHUTDOWN_BRUTAL_KILL;
    tp_sup_spec s = {.children = c, .nchildren = 5};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(tp_sup_start(sys, &s, NULL, NULL), TP_EDECODE);
    double ms = ms_since(&t0);
    // Done already, not merely under way.
    for (int i = 0; i < 4; i++)
        ck_assert_msg(cfg[i].stops == 1, "%s stopped %ld times", ids[i],
                      cfg[i].stops);
    ck_assert_int_eq(cfg[0].reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[1].reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[2].reason, TP_REASON_KILLED);
    ck_assert_int_eq(cfg[3].reason, TP_REASON_KILLED);
    ck_assert_int_lt(cfg[3].stop_seq, cfg[2].stop_seq);
    ck_assert_int_lt(cfg[2].stop_seq, cfg[1].stop_seq);
    ck_assert_int_lt(cfg[1].stop_seq, cfg[0].stop_seq);
    ck_assert_msg(ms >= 140, "c was killed after %.1f ms, before 150", ms);
    ck_assert(logged("start_error child=e reason=TP_EDECODE"));
    ck_assert_int_eq(cfg[4].starts + cfg[4].stops, 0);
    // Each exit logged, as the supervisor logs its children's.
    ck_assert_msg(logged_both("child_stopped child=c pid=", " reason=killed"),
                  "%s", log_text);
    ck_assert_msg(
        logged_both("child_stopped child=a pid=", " reason=shutdown "), "%s",
        log_text);
}
END_TEST

// The same on a scheduler thread, where init must not wait: a supervisor
// child, started by its parent, whose own child fails. start_child
// reports the error, and the children that had started are stopped in
// the same order and with the same timeouts, by an actor the failed
// supervisor left the work to.
START_TEST(test_failed_nested_start_stops_the_started)
{
    cfg[1].trap = cfg[1].ignore_exit = true;
    cfg[2].trap = true;
    cfg[3].init_rc = TP_EDECODE;
    tp_child_spec kids[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                            spec(2, TP_PERMANENT), spec(3, TP_PERMANENT)};
    kids[1].shutdown = 150;
    tp_sup_spec inner = {.children = kids, .nchildren = 4};
    tp_pid top = start_sup((tp_sup_flags){0}, NULL, 0);
    tp_child_spec sub = {.id = "sub",
                         .behaviour = &tp_supervisor,
                         .arg = &inner,
                         .type = TP_SUPERVISOR};
    ck_assert_int_eq(tp_sup_start_child(sys, top, &sub, NULL, 5000, NULL),
                     TP_EDECODE);
    for (int i = 0; i < 3; i++)
        ck_assert(tpt_wait_ge(&cfg[i].stops, 1, 20));
    ck_assert_int_eq(cfg[0].reason, TP_REASON_SHUTDOWN);
    ck_assert_int_eq(cfg[1].reason, TP_REASON_KILLED);
    ck_assert_int_eq(cfg[2].reason, TP_REASON_SHUTDOWN);
    ck_assert_int_lt(cfg[2].stop_seq, cfg[1].stop_seq);
    ck_assert_int_lt(cfg[1].stop_seq, cfg[0].stop_seq);
    ck_assert_int_eq(counts(top).specs, 0);
}
END_TEST

// Before the system runs nothing could stop the children, so a failed
// start does not wait for them: it returns, and they are stopped, in
// order, once the system starts.
START_TEST(test_failed_start_before_the_system_runs)
{
    tp_system *idle_sys;
    ck_assert_int_eq(
        tp_system_new(&(tp_config){.threads = 2, .log = quiet_log}, &idle_sys),
        0);
    cfg[1].trap = cfg[1].ignore_exit = true;
    cfg[2].init_rc = TP_EDECODE;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT),
                         spec(2, TP_PERMANENT)};
    c[1].shutdown = 50;
    tp_sup_spec s = {.children = c, .nchildren = 3};
    ck_assert_int_eq(tp_sup_start(idle_sys, &s, NULL, NULL), TP_EDECODE);
    ck_assert_int_eq(cfg[0].stops + cfg[1].stops, 0);
    ck_assert_int_eq(tp_system_start(idle_sys), 0);
    ck_assert(tpt_wait_ge(&cfg[0].stops, 1, 20));
    ck_assert_int_eq(cfg[1].stops, 1);
    ck_assert_int_eq(cfg[1].reason, TP_REASON_KILLED);
    ck_assert_int_lt(cfg[1].stop_seq, cfg[0].stop_seq);
    ck_assert_int_eq(tp_system_destroy(&idle_sys), 0);
}
END_TEST

// tp_system_may_block, which decides whether a failed start waits, is
// true on this thread while the system runs, false before it runs and
// inside an actor (on a scheduler thread).
static _Atomic long may_block_inside = -1;

static int
probe_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    atomic_store(&may_block_inside, tp_system_may_block(tp_ctx_system(ctx)));
    return TP_STOP;
}

static const tp_behaviour probe = {.name = "probe", .handle = probe_handle};

START_TEST(test_may_block)
{
    ck_assert(tp_system_may_block(sys));
    ck_assert(!tp_system_may_block(NULL));
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, &probe, NULL, NULL, &p), 0);
    ck_assert_int_eq(tp_system_send(sys, p, W_PING, NULL, 0), 0);
    for (int k = 0; k < 20000 && atomic_load(&may_block_inside) < 0; k++)
        tpt_nap_us(200);
    ck_assert_int_eq(may_block_inside, 0);
    tp_system *idle_sys;
    ck_assert_int_eq(tp_system_new(NULL, &idle_sys), 0);
    ck_assert(!tp_system_may_block(idle_sys));
    ck_assert_int_eq(tp_system_start(idle_sys), 0);
    ck_assert(tp_system_may_block(idle_sys));
    ck_assert_int_eq(tp_system_destroy(&idle_sys), 0);
}
END_TEST

// Requests are checked: one whose payload is not what its tag names is
// answered TP_EINVAL, and the supervisor's own messages of the wrong size
// are ignored; either way it goes on serving. A failed call's answer is
// its own decoder's error, and TP_EDECODE to the others.
START_TEST(test_malformed_requests)
{
    tp_child_spec a[] = {spec(0, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){0}, a, 1);
    static const uint32_t tags[] = {
        TP__SUP_CALL_START,  TP__SUP_CALL_TERMINATE, TP__SUP_CALL_RESTART,
        TP__SUP_CALL_DELETE, TP__SUP_CALL_WHICH,     TP__SUP_CALL_COUNT};
    char junk[3] = "ab";
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        tp_call_reply rep;
        ck_assert_int_eq(
            tp_call(sys, sup, tags[i], junk, sizeof junk, 5000, &rep), 0);
        tp_msg msg = {.tag = rep.tag, .data = rep.data, .size = rep.size};
        tp_sup_child kid;
        tp_sup_counts counts;
        size_t n = 0;
        int which = tp_sup_result_children(&msg, &kid, 1, &n);
        int count = tp_sup_result_counts(&msg, &counts);
        int other = tp_sup_result(&msg, NULL);
        if (tags[i] == TP__SUP_CALL_WHICH)
            ck_assert(which == TP_EINVAL && count == TP_EDECODE &&
                      other == TP_EDECODE);
        else if (tags[i] == TP__SUP_CALL_COUNT)
            ck_assert(which == TP_EDECODE && count == TP_EINVAL &&
                      other == TP_EDECODE);
        else
            ck_assert(which == TP_EDECODE && count == TP_EDECODE &&
                      other == TP_EINVAL);
        free(rep.data);
    }
    ck_assert_int_eq(tp_system_send(sys, sup, TP__SUP_KILL_TIMER, junk, 1), 0);
    ck_assert_int_eq(tp_system_send(sys, sup, TP__SUP_RESTART, junk, 1), 0);
    settle(sup, 1, 1);
}
END_TEST

// ---- calls from actors -----------------------------------------------------

// A client actor makes one _async call per C_DO message (its data: a
// pointer to the test's `aop`, alive until the answer is in) and decodes
// the answer into `res`, then bumps `answers`; the test thread reads `res`
// after that.
enum { C_DO = 10 };
enum { OP_START, OP_TERMINATE, OP_RESTART, OP_DELETE, OP_WHICH, OP_COUNT };
enum { OP_BLOCKING_COUNT = 100 }; // the blocking form, from the actor

typedef struct aop {
    int op;
    tp_pid sup;
    const tp_child_spec *spec; // start_child
    void *arg;                 // start_child
    const char *id;
    tp_pid pid; // terminate_child under simple_one_for_one
    int timeout_ms;
} aop;

typedef struct ares {
    int call_rc;  // what the _async call returned
    int rc;       // what its decoder made of the answer
    int wrong;    // what the decoder of another kind of call made of it
    uint32_t tag; // the answer's tag
    tp_pid pid;   // tp_sup_result's
    tp_sup_counts counts;
    tp_sup_child kids[4];
    size_t n;
} ares;

static ares res;
static _Atomic long answers, issued;

typedef struct client {
    int op;
    uint64_t ref;
} client;

static int
client_call(tp_ctx *ctx, client *c, const aop *o)
{
    int t = o->timeout_ms ? o->timeout_ms : 5000;
    switch (o->op) {
    case OP_START:
        return tp_sup_start_child_async(ctx, o->sup, o->spec, o->arg, t,
                                        &c->ref);
    case OP_TERMINATE:
        return tp_sup_terminate_child_async(ctx, o->sup, o->id, o->pid, t,
                                            &c->ref);
    case OP_RESTART:
        return tp_sup_restart_child_async(ctx, o->sup, o->id, t, &c->ref);
    case OP_DELETE:
        return tp_sup_delete_child_async(ctx, o->sup, o->id, t, &c->ref);
    case OP_WHICH:
        return tp_sup_which_children_async(ctx, o->sup, t, &c->ref);
    case OP_COUNT:
        return tp_sup_count_children_async(ctx, o->sup, t, &c->ref);
    default: {
        tp_sup_counts k;
        int rc = tp_sup_count_children(tp_ctx_system(ctx), o->sup, 1000, &k);
        return rc == 0 ? TP_EINVAL : rc; // it must not have worked
    }
    }
}

static void
client_decode(client *c, const tp_msg *msg)
{
    tp_sup_counts junk;
    res.tag = msg->tag;
    switch (c->op) {
    case OP_WHICH:
        res.rc = tp_sup_result_children(msg, res.kids, 4, &res.n);
        res.wrong = tp_sup_result_counts(msg, &junk);
        break;
    case OP_COUNT:
        res.rc = tp_sup_result_counts(msg, &res.counts);
        res.wrong = tp_sup_result(msg, NULL);
        break;
    default:
        res.rc = tp_sup_result(msg, &res.pid);
        res.wrong = tp_sup_result_counts(msg, &junk);
        break;
    }
}

static int
client_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    client *c = state;
    if (msg->tag == C_DO) {
        const aop *o;
        memcpy(&o, msg->data, sizeof o);
        memset(&res, 0, sizeof res);
        c->op = o->op;
        c->ref = 0;
        res.call_rc = client_call(ctx, c, o);
        atomic_fetch_add(&issued, 1);
        if (res.call_rc != 0 || o->op == OP_BLOCKING_COUNT)
            atomic_fetch_add(&answers, 1); // no answer follows
        return TP_OK;
    }
    if (c->ref != 0 && msg->ref == c->ref) {
        client_decode(c, msg);
        c->ref = 0;
        atomic_fetch_add(&answers, 1);
    }
    return TP_OK;
}

static const tp_behaviour client_b = {
    .name = "client", .state_size = sizeof(client), .handle = client_handle};

// Has `cl` make the call `o` and returns what it saw, once it saw it.
static ares
ask(tp_pid cl, aop o)
{
    long before = atomic_load(&answers);
    const aop *p = &o;
    ck_assert_int_eq(tp_system_send(sys, cl, C_DO, &p, sizeof p), 0);
    ck_assert(tpt_wait_ge(&answers, before + 1, 30));
    return res;
}

// Asks and expects the call to be sent and answered with `rc`.
static ares
ask_rc(tp_pid cl, aop o, int rc)
{
    ares r = ask(cl, o);
    ck_assert_msg(r.call_rc == 0, "op %d: call returned %s", o.op,
                  tp_err_name(r.call_rc));
    ck_assert_msg(r.rc == rc, "op %d: answer %s, want %s", o.op,
                  tp_err_name(r.rc), tp_err_name(rc));
    return r;
}

// Every call under one_for_one, one_for_all and rest_for_one, from an
// actor: the answer arrives as a message with the call's ref, and its
// decoder returns what the blocking form returns; another kind's decoder
// refuses it.
START_TEST(test_async_calls_each_strategy)
{
    static const tp_strategy st[] = {TP_ONE_FOR_ONE, TP_ONE_FOR_ALL,
                                     TP_REST_FOR_ONE};
    tp_pid cl;
    ck_assert_int_eq(tp_spawn(sys, &client_b, NULL, NULL, &cl), 0);
    for (int k = 0; k < 3; k++) {
        memset(cfg, 0, sizeof cfg);
        tp_child_spec a[] = {spec(0, TP_PERMANENT)};
        tp_pid sup =
            start_sup((tp_sup_flags){.strategy = st[k], .intensity = 5}, a, 1);
        tp_child_spec b = spec(1, TP_PERMANENT), bad = spec(2, TP_PERMANENT);
        bad.behaviour = NULL;

        ares r = ask_rc(cl, (aop){.op = OP_START, .sup = sup, .spec = &b}, 0);
        ck_assert(tp_pid_eq(r.pid, where(1)));
        ck_assert_int_eq(r.wrong, TP_EDECODE);
        ck_assert_int_eq(r.tag < TP_TAG_RESERVED, 1);
        ask_rc(cl, (aop){.op = OP_START, .sup = sup, .spec = &b}, TP_EEXIST);
        ask_rc(cl, (aop){.op = OP_START, .sup = sup, .spec = &bad}, TP_EINVAL);
        ask_rc(cl, (aop){.op = OP_START, .sup = sup, .spec = NULL}, TP_EINVAL);

        r = ask_rc(cl, (aop){.op = OP_WHICH, .sup = sup}, 0);
        ck_assert_uint_eq(r.n, 2);
        ck_assert_str_eq(r.kids[0].id, "a");
        ck_assert_str_eq(r.kids[1].id, "b");
        ck_assert(tp_pid_eq(r.kids[1].pid, where(1)));
        ck_assert_int_eq(r.wrong, TP_EDECODE);
        r = ask_rc(cl, (aop){.op = OP_COUNT, .sup = sup}, 0);
        ck_assert_uint_eq(r.counts.specs, 2);
        ck_assert_uint_eq(r.counts.active, 2);
        ck_assert_uint_eq(r.counts.workers, 2);
        ck_assert_int_eq(r.wrong, TP_EDECODE);

        ask_rc(cl, (aop){.op = OP_RESTART, .sup = sup, .id = "b"}, TP_EEXIST);
        ask_rc(cl, (aop){.op = OP_DELETE, .sup = sup, .id = "b"}, TP_EEXIST);
        ask_rc(cl, (aop){.op = OP_TERMINATE, .sup = sup, .id = "b"}, 0);
        ck_assert_int_eq(cfg[1].stops, 1); // stopped before the answer
        ck_assert_uint_eq(
            ask_rc(cl, (aop){.op = OP_COUNT, .sup = sup}, 0).counts.active, 1);
        r = ask_rc(cl, (aop){.op = OP_RESTART, .sup = sup, .id = "b"}, 0);
        ck_assert_int_eq(cfg[1].starts, 2);
        ck_assert(tp_pid_eq(r.pid, where(1)));
        ask_rc(cl, (aop){.op = OP_TERMINATE, .sup = sup, .id = "b"}, 0);
        ask_rc(cl, (aop){.op = OP_DELETE, .sup = sup, .id = "b"}, 0);
        ask_rc(cl, (aop){.op = OP_DELETE, .sup = sup, .id = "b"}, TP_ENOENT);
        ask_rc(cl, (aop){.op = OP_RESTART, .sup = sup, .id = "zz"}, TP_ENOENT);
        ask_rc(cl, (aop){.op = OP_TERMINATE, .sup = sup, .id = "zz"},
               TP_ENOENT);
        ck_assert_uint_eq(
            ask_rc(cl, (aop){.op = OP_COUNT, .sup = sup}, 0).counts.specs, 1);

        // Refused before anything is sent: no answer follows.
        ck_assert_int_eq(
            ask(cl, (aop){.op = OP_RESTART, .sup = sup, .id = NULL}).call_rc,
            TP_EINVAL);
        ck_assert_int_eq(
            ask(cl, (aop){.op = OP_TERMINATE,
                          .sup = sup,
                          .id = "an id longer than any child's: it has more "
                                "than sixty-three bytes"})
                .call_rc,
            TP_ENOENT);
        // The blocking forms refuse to run inside an actor.
        ck_assert_int_eq(
            ask(cl, (aop){.op = OP_BLOCKING_COUNT, .sup = sup}).call_rc,
            TP_EPERM);
        watch(sup);
        ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
        ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    }
}
END_TEST

// The same under simple_one_for_one: children are started from the
// template with an argument and terminated by pid; restart and delete do
// not apply.
START_TEST(test_async_calls_simple_one_for_one)
{
    tp_pid cl;
    ck_assert_int_eq(tp_spawn(sys, &client_b, NULL, NULL, &cl), 0);
    tp_child_spec t = {.id = "tmpl", .behaviour = &worker, .arg = &cfg[1]};
    tp_pid sup = start_sup(
        (tp_sup_flags){.strategy = TP_SIMPLE_ONE_FOR_ONE, .intensity = 5}, &t,
        1);
    ares r = ask_rc(cl, (aop){.op = OP_START, .sup = sup, .arg = &cfg[0]}, 0);
    tp_pid kid = r.pid;
    ck_assert(!tp_pid_is_nil(kid));
    ck_assert_int_eq(cfg[0].starts, 1); // with the argument given
    ck_assert_int_eq(cfg[1].starts, 0);
    ask_rc(cl, (aop){.op = OP_START, .sup = sup, .spec = &t}, TP_EINVAL);
    r = ask_rc(cl, (aop){.op = OP_WHICH, .sup = sup}, 0);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.kids[0].id, "tmpl");
    ck_assert(tp_pid_eq(r.kids[0].pid, kid));
    r = ask_rc(cl, (aop){.op = OP_COUNT, .sup = sup}, 0);
    ck_assert_uint_eq(r.counts.specs, 1);
    ck_assert_uint_eq(r.counts.active, 1);
    ck_assert_uint_eq(r.counts.workers, 1);
    ask_rc(cl, (aop){.op = OP_RESTART, .sup = sup, .id = "tmpl"}, TP_ENOENT);
    ask_rc(cl, (aop){.op = OP_DELETE, .sup = sup, .id = "tmpl"}, TP_ENOENT);
    ask_rc(cl, (aop){.op = OP_TERMINATE, .sup = sup, .pid = kid}, 0);
    ck_assert_int_eq(cfg[0].stops, 1);
    ask_rc(cl, (aop){.op = OP_TERMINATE, .sup = sup, .pid = kid}, TP_ENOENT);
    r = ask_rc(cl, (aop){.op = OP_COUNT, .sup = sup}, 0);
    ck_assert_uint_eq(r.counts.specs, 1);
    ck_assert_uint_eq(r.counts.active + r.counts.workers, 0);
    ck_assert_int_eq(
        ask(cl, (aop){.op = OP_BLOCKING_COUNT, .sup = sup}).call_rc, TP_EPERM);
}
END_TEST

// A supervisor that is dead, or dies before answering, is never silence:
// the call fails at once, or the message tp_request sends instead of an
// answer comes with the call's ref and decodes as a failure.
START_TEST(test_async_call_to_a_gone_supervisor)
{
    tp_pid cl;
    ck_assert_int_eq(tp_spawn(sys, &client_b, NULL, NULL, &cl), 0);
    tp_child_spec a[] = {spec(0, TP_PERMANENT)};
    tp_pid sup = start_sup((tp_sup_flags){0}, a, 1);
    watch(sup);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&mon_downs, 1, 20));
    ares r = ask(cl, (aop){.op = OP_COUNT, .sup = sup, .timeout_ms = 200});
    ck_assert_msg(
        r.call_rc == TP_ENOACTOR || (r.call_rc == 0 && r.rc == TP_ENOACTOR),
        "call %s, answer %s", tp_err_name(r.call_rc), tp_err_name(r.rc));

    // A supervisor busy stopping a child that ignores its shutdown
    // answers nothing meanwhile: the call times out.
    memset(cfg, 0, sizeof cfg);
    cfg[1].trap = cfg[1].ignore_exit = true;
    tp_child_spec b[] = {spec(1, TP_PERMANENT)};
    b[0].shutdown = TP_SHUTDOWN_INFINITY;
    sup = start_sup((tp_sup_flags){0}, b, 1);
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&cfg[1].exits, 1, 20)); // it is stopping b
    r = ask(cl, (aop){.op = OP_WHICH, .sup = sup, .timeout_ms = 100});
    ck_assert_int_eq(r.call_rc, 0);
    ck_assert_int_eq(r.tag, TP_TAG_TIMEOUT);
    ck_assert_int_eq(r.rc, TP_ETIMEDOUT);
    ck_assert_int_eq(r.wrong, TP_ETIMEDOUT);

    // Killed while a call waits: the call fails, at once where tp_request
    // reports a dead callee, at its timeout otherwise.
    long before = atomic_load(&answers), sent = atomic_load(&issued);
    aop o = {.op = OP_START, .sup = sup, .spec = &a[0], .timeout_ms = 300};
    const aop *p = &o;
    ck_assert_int_eq(tp_system_send(sys, cl, C_DO, &p, sizeof p), 0);
    ck_assert(tpt_wait_ge(&issued, sent + 1, 20));
    ck_assert_int_eq(tp_system_exit(sys, sup, TP_REASON_KILL), 0);
    ck_assert(tpt_wait_ge(&answers, before + 1, 20));
    ck_assert_int_eq(res.call_rc, 0);
    ck_assert_int_ge(res.tag, TP_TAG_RESERVED);
    ck_assert_msg(res.rc == TP_ETIMEDOUT || res.rc == TP_ENOACTOR, "%s",
                  tp_err_name(res.rc));
    ck_assert_int_eq(cfg[0].starts, 0);
}
END_TEST

// ---- calls waiting in the stash --------------------------------------------

// A flooder makes FLOOD count_children calls, FLOOD_STEP per activation,
// while its supervisor is busy stopping a child; it records each call's
// ref and checks the answers against them.
#define FLOOD (TP_STASH_MAX + 8)
#define FLOOD_STEP 256
enum { F_GO = 20, F_MORE };

static uint64_t flood_refs[FLOOD];
static _Atomic long flood_sent, flood_ok, flood_full, flood_bad;
static tp_pid flood_sup;

static int
flood_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == F_GO || msg->tag == F_MORE) {
        long i = atomic_load(&flood_sent);
        for (int k = 0; k < FLOOD_STEP && i < FLOOD; k++) {
            int rc = tp_sup_count_children_async(ctx, flood_sup, -1,
                                                 &flood_refs[i]);
            if (rc == TP_EFULL)
                break; // its mailbox is full: again next time
            if (rc != 0)
                atomic_fetch_add(&flood_bad, 1);
            atomic_store(&flood_sent, ++i);
        }
        if (i < FLOOD)
            return tp_send(ctx, tp_self(ctx), F_MORE, NULL, 0);
        return TP_OK;
    }
    tp_sup_counts k;
    int rc = tp_sup_result_counts(msg, &k);
    // The first TP_STASH_MAX calls wait and are answered in order; those
    // past the stash's bound are refused at once.
    long ok = atomic_load(&flood_ok), full = atomic_load(&flood_full);
    if (rc == 0 && msg->ref == flood_refs[ok] && ok < TP_STASH_MAX)
        atomic_store(&flood_ok, ok + 1);
    else if (rc == TP_EFULL && msg->ref == flood_refs[TP_STASH_MAX + full])
        atomic_store(&flood_full, full + 1);
    else
        atomic_fetch_add(&flood_bad, 1);
    return TP_OK;
}

static const tp_behaviour flood_b = {.name = "flooder",
                                     .handle = flood_handle};

// Calls that come while a stop sequence runs wait in the supervisor's
// stash, bounded and counted, and are answered in order once it ends.
START_TEST(test_calls_wait_in_the_stash)
{
    cfg[0].trap = cfg[0].ignore_exit = true;
    tp_child_spec c[] = {spec(0, TP_PERMANENT), spec(1, TP_PERMANENT)};
    c[0].shutdown = TP_SHUTDOWN_INFINITY;
    flood_sup = start_sup((tp_sup_flags){0}, c, 2);
    // Terminating a: the sequence waits for a, which ignores its shutdown.
    ck_assert_int_eq(
        tp_sup_terminate_child(sys, flood_sup, "a", TP_PID_NIL, 0),
        TP_ETIMEDOUT);
    ck_assert(tpt_wait_ge(&cfg[0].exits, 1, 20));
    tp_pid fl;
    ck_assert_int_eq(tp_spawn(sys, &flood_b, NULL, NULL, &fl), 0);
    ck_assert_int_eq(tp_system_send(sys, fl, F_GO, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&flood_sent, FLOOD, 60));
    ck_assert(tpt_wait_ge(&flood_full, FLOOD - TP_STASH_MAX, 60));
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, flood_sup, 10000, &d), 0);
    ck_assert_uint_eq(d.stashed, TP_STASH_MAX);
    ck_assert_int_eq(atomic_load(&flood_ok), 0);
    // a is killed by hand: the sequence ends and the calls are answered.
    ck_assert_int_eq(tp_system_exit(sys, where(0), TP_REASON_KILL), 0);
    ck_assert(tpt_wait_ge(&flood_ok, TP_STASH_MAX, 60));
    ck_assert_int_eq(atomic_load(&flood_bad), 0);
    ck_assert_int_eq(tp_actor_detail_get(sys, flood_sup, 10000, &d), 0);
    ck_assert_uint_eq(d.stashed, 0);
    tp_sup_counts k;
    ck_assert_int_eq(tp_sup_count_children(sys, flood_sup, 10000, &k), 0);
    ck_assert_uint_eq(k.active, 1);
}
END_TEST

Suite *
supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("otp");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_one_for_one);
    tcase_add_test(tc, test_one_for_all_takes_temporary_bystander);
    tcase_add_test(tc, test_rest_for_one);
    tcase_add_test(tc, test_restart_types);
    tcase_add_test(tc, test_restart_types_each_strategy);
    tcase_add_test(tc, test_infinity_waits);
    tcase_add_test(tc, test_intensity_exceeded_shuts_down);
    tcase_add_test(tc, test_restarts_outside_the_window);
    tcase_add_test(tc, test_no_restarts_allowed);
    tcase_add_test(tc, test_escalation_through_three_levels);
    tcase_add_test(tc, test_init_failure_at_start);
    tcase_add_test(tc, test_init_that_ignores);
    tcase_add_test(tc, test_restart_that_fails_gives_up);
    tcase_add_test(tc, test_invalid_specs);
    tcase_add_test(tc, test_ordered_shutdown_and_timeouts);
    tcase_add_test(tc, test_child_management);
    tcase_add_test(tc, test_simple_one_for_one_storm);
    tcase_add_test(tc, test_simple_one_for_one_churn);
    tcase_add_test(tc, test_auto_shutdown);
    tcase_add_test(tc, test_backoff_delays_restart);
    tcase_add_test(tc, test_restart_counts);
    tcase_add_test(tc, test_delayed_restart_while_busy);
    tcase_add_test(tc, test_restart_matrix);
    tcase_add_test(tc, test_many_restarts_inside_the_window);
    tcase_add_test(tc, test_init_crashes_or_stops);
    tcase_add_test(tc, test_backoff_streak);
    tcase_add_test(tc, test_named_child_restarts_once_its_name_is_free);
    tcase_add_test(tc, test_describe);
    tcase_add_test(tc, test_simple_one_for_one_counts);
    tcase_add_test(tc, test_simple_one_for_one_names);
    tcase_add_test(tc, test_restart_log_names_backoff);
    tcase_add_test(tc, test_failed_start_stops_the_started);
    tcase_add_test(tc, test_failed_nested_start_stops_the_started);
    tcase_add_test(tc, test_nested_specs_depth);
    tcase_add_test(tc, test_failed_start_before_the_system_runs);
    tcase_add_test(tc, test_may_block);
    tcase_add_test(tc, test_async_calls_each_strategy);
    tcase_add_test(tc, test_async_calls_simple_one_for_one);
    tcase_add_test(tc, test_async_call_to_a_gone_supervisor);
    tcase_add_test(tc, test_calls_wait_in_the_stash);
    tcase_add_test(tc, test_exit_during_a_stop_is_logged);
    tcase_add_test(tc, test_malformed_requests);
    suite_add_tcase(s, tc);
    return s;
}
