// SPDX-License-Identifier: MIT
// State machines (statem.h) through the public API: enter actions, changes
// of state, state, event and named timeouts and what cancels each, the
// order postponed messages come back in, describe, transition logs,
// supervision, every action refused where it does not apply, and hot
// code upgrade of running machines (tp_statem_change): what carries over,
// a code_change that picks the state, and rollbacks.
//
// The machine under test records each event in a trace kept in its data;
// a tp_call (TAG_GET) answers it, so each test reads exactly what the
// machine saw, in order. What must never arrive (a cancelled timeout) is
// shown by what the runtime guarantees: a timer cancelled before it is
// handled is never handled, and a machine handles its own message, sent
// before it arms a timer, before that timer's message.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TAG_GO = 1,     // data: 'A' or 'B': tp_sm_next to that state
    TAG_REPEAT,     // tp_sm_repeat
    TAG_POSTPONE,   // tp_sm_postpone (data: one byte, traced)
    TAG_STATE_TO,   // data: uint32 ms: tp_sm_state_timeout
    TAG_EVENT_TO,   // data: uint32 ms: tp_sm_event_timeout
    TAG_NAMED_TO,   // data: cmd_named: tp_sm_timeout
    TAG_NAMED_STOP, // data: name: tp_sm_timeout_cancel
    TAG_STATE_STOP, // tp_sm_state_timeout_cancel
    TAG_RACE_STATE, // sends itself GO B, then a state timeout of 0 ms
    TAG_RACE_EVENT, // sends itself NOTE, then an event timeout of 0 ms
    TAG_GO_ARMED,   // GO B and a state timeout of 0 ms, in one callback
    TAG_GO_NAMED,   // GO to the other state and "keep" of 0 ms, likewise
    TAG_EV_NAMED,   // event timeout 30 ms, "n0" 0 ms and "late" 100 ms
    TAG_REPLACE,    // "slow" 100 ms, replaced by 0 ms, and "late" 300 ms
    TAG_TERM_CHECK, // terminate records what the actions return there
    TAG_INSERT,     // inserts events 201 and 202, and goes to the other
    TAG_NOTE,       // traced, nothing else
    TAG_CRASH,      // returns TP_EINVAL
    TAG_STOP,       // returns TP_STOP
    TAG_GET,        // request: replies with the trace (not traced)
    TAG_CHECKS,     // request: the actions refused here; replies "ok"/why
    TAG_WAIT_BUILT, // holds its thread until an upgrade built a machine
    TAG_TO_ST = 100,
    TAG_TO_EV,
    TAG_TO_NAMED,
};

typedef struct cmd_named {
    uint32_t ms;
    char name[24];
} cmd_named;

typedef struct probe {
    char trace[1024];
    size_t len;
    int enter_checks; // what enter's refused actions returned, 0 = as due
} probe;

static _Atomic long terminated, term_reason;
// Upgrades: machines that v2's code_change built, and whether a machine
// is in TAG_WAIT_BUILT.
static _Atomic long built, waiting;
// Event timeouts fired: waited on without messages, which would cancel
// them.
static _Atomic long ev_fired, named_fired;
static char term_state[16];

static void trace(probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trace(probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->trace + p->len, sizeof p->trace - p->len, fmt, ap);
    va_end(ap);
    if (n > 0 && p->len + (size_t)n < sizeof p->trace)
        p->len += (size_t)n;
}

static const tp_state st_a, st_b;

static int
probe_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    probe *p = data;
    trace(p, "%s:enter<%s ", tp_sm_state(ctx)->name, from ? from->name : "-");
    // Neither a change of state nor postponing belongs in enter.
    if (tp_sm_next(ctx, &st_a) != TP_EPERM || tp_sm_repeat(ctx) != TP_EPERM ||
        tp_sm_postpone(ctx) != TP_EPERM ||
        tp_sm_next_event(ctx, 1, NULL, 0) != TP_EPERM)
        p->enter_checks++;
    return TP_OK;
}

static int
probe_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    probe *p = data;
    const char *st = tp_sm_state(ctx)->name;
    const tp_msg *m = ev->msg;
    switch (ev->kind) {
    case TP_SM_STATE_TIMEOUT:
        trace(p, "%s:st%u ", st, m->tag);
        return TP_OK;
    case TP_SM_EVENT_TIMEOUT:
        trace(p, "%s:ev%u ", st, m->tag);
        atomic_fetch_add(&ev_fired, 1);
        return TP_OK;
    case TP_SM_TIMEOUT:
        trace(p, "%s:to(%s,%.*s) ", st, ev->name, (int)m->size,
              (const char *)m->data);
        atomic_fetch_add(&named_fired, 1);
        // A timeout is not a message: it cannot be postponed.
        if (tp_sm_postpone(ctx) != TP_EINVAL)
            trace(p, "POSTPONED-A-TIMEOUT ");
        return TP_OK;
    case TP_SM_INTERNAL:
        trace(p, "%s:in%u", st, m->tag);
        if (m->tag == 201) // an inserted event cannot be postponed
            trace(p, "(pp=%d)", tp_sm_postpone(ctx));
        trace(p, " ");
        // One inserted while handling one comes before the older ones.
        return m->tag == 201 ? tp_sm_next_event(ctx, 203, NULL, 0) : TP_OK;
    case TP_SM_MESSAGE:
        break;
    }
    uint32_t ms = 0;
    if (m->size == sizeof ms)
        memcpy(&ms, m->data, sizeof ms);
    switch (m->tag) {
    case TAG_GO:
        trace(p, "%s:go%c ", st, *(const char *)m->data);
        return tp_sm_next(ctx, *(const char *)m->data == 'A' ? &st_a : &st_b);
    case TAG_REPEAT:
        trace(p, "%s:repeat ", st);
        return tp_sm_repeat(ctx);
    case TAG_POSTPONE: {
        char c = *(const char *)m->data;
        trace(p, "%s:%c%s ", st, c, st[0] == 'A' ? "(postponed)" : "");
        // Postponed in A, handled in B.
        return st[0] == 'A' ? tp_sm_postpone(ctx) : TP_OK;
    }
    case TAG_STATE_TO:
        return tp_sm_state_timeout(ctx, ms, TAG_TO_ST, NULL, 0);
    case TAG_EVENT_TO:
        return tp_sm_event_timeout(ctx, ms, TAG_TO_EV, NULL, 0);
    case TAG_NAMED_TO: {
        const cmd_named *c = m->data;
        return tp_sm_timeout(ctx, c->name, c->ms, TAG_TO_NAMED, c->name,
                             strlen(c->name));
    }
    case TAG_NAMED_STOP: {
        char name[24];
        snprintf(name, sizeof name, "%.*s", (int)m->size,
                 (const char *)m->data);
        int rc = tp_sm_timeout_cancel(ctx, name);
        trace(p, "%s:cancel(%s)=%d ", st, name, rc);
        return TP_OK;
    }
    case TAG_STATE_STOP:
        trace(p, "%s:stcancel=%d ", st, tp_sm_state_timeout_cancel(ctx));
        return TP_OK;
    case TAG_RACE_STATE: {
        int rc = tp_send(ctx, tp_self(ctx), TAG_GO, "B", 1);
        return rc ? rc : tp_sm_state_timeout(ctx, 0, TAG_TO_ST, NULL, 0);
    }
    case TAG_RACE_EVENT: {
        int rc = tp_send(ctx, tp_self(ctx), TAG_NOTE, NULL, 0);
        return rc ? rc : tp_sm_event_timeout(ctx, 0, TAG_TO_EV, NULL, 0);
    }
    case TAG_GO_ARMED:
        trace(p, "%s:goB+st ", st);
        tp_sm_next(ctx, &st_b);
        return tp_sm_state_timeout(ctx, 0, TAG_TO_ST, NULL, 0);
    case TAG_GO_NAMED: {
        const tp_state *other = st[0] == 'A' ? &st_b : &st_a;
        trace(p, "%s:go%s+keep ", st, other->name);
        tp_sm_next(ctx, other);
        return tp_sm_timeout(ctx, "keep", 0, TAG_TO_NAMED, "keep", 4);
    }
    case TAG_EV_NAMED: {
        int rc = tp_sm_event_timeout(ctx, 30, TAG_TO_EV, NULL, 0);
        if (rc == 0)
            rc = tp_sm_timeout(ctx, "n0", 0, TAG_TO_NAMED, "n0", 2);
        return rc ? rc
                  : tp_sm_timeout(ctx, "late", 100, TAG_TO_NAMED, "late", 4);
    }
    case TAG_INSERT: {
        trace(p, "%s:insert ", st);
        int rc = tp_sm_next_event(ctx, 201, "x", 1);
        if (rc == 0)
            rc = tp_sm_next_event(ctx, 202, NULL, 0);
        if (rc == 0 && tp_sm_next_event(ctx, 1, NULL, 5) != TP_EINVAL)
            rc = TP_ECRASH;
        return rc ? rc : tp_sm_next(ctx, st[0] == 'A' ? &st_b : &st_a);
    }
    case TAG_REPLACE: {
        int rc = tp_sm_timeout(ctx, "slow", 100, TAG_TO_NAMED, "slow", 4);
        if (rc == 0)
            rc = tp_sm_timeout(ctx, "slow", 0, TAG_TO_NAMED, "slow", 4);
        return rc ? rc
                  : tp_sm_timeout(ctx, "late", 300, TAG_TO_NAMED, "late", 4);
    }
    case TAG_NOTE:
        trace(p, "%s:note ", st);
        return TP_OK;
    case TAG_WAIT_BUILT: // 10 s at most
        atomic_store(&waiting, 1);
        for (int i = 0; i < 1000 && atomic_load(&built) == 0; i++)
            tpt_nap_us(10000);
        return TP_OK;
    case TAG_CRASH:
        return TP_EINVAL;
    case TAG_STOP:
        return TP_STOP;
    case TAG_GET:
        return tp_reply(ctx, TAG_GET, p->trace, p->len);
    case TAG_CHECKS: {
        const char *why = "ok";
        char toolong[TP_SM_TIMEOUT_NAME_MAX + 2];
        memset(toolong, 'x', sizeof toolong - 1);
        toolong[sizeof toolong - 1] = '\0';
        if (tp_sm_next(ctx, NULL) != TP_EINVAL)
            why = "next NULL";
        else if (tp_sm_next(NULL, &st_a) != TP_EINVAL)
            why = "next NULL ctx";
        else if (tp_sm_timeout(ctx, "", 1, 1, NULL, 0) != TP_EINVAL)
            why = "empty name";
        else if (tp_sm_timeout(ctx, toolong, 1, 1, NULL, 0) != TP_EINVAL)
            why = "long name";
        else if (tp_sm_timeout(ctx, "n", 1, 1, NULL, 3) != TP_EINVAL)
            why = "NULL data with a size";
        else if (tp_sm_timeout_cancel(ctx, "never-set") != TP_ENOENT)
            why = "cancel unknown";
        else if (p->enter_checks != 0)
            why = "enter";
        return tp_reply(ctx, TAG_CHECKS, why, strlen(why));
    }
    default:
        trace(p, "%s:?%u ", st, m->tag);
        return TP_OK;
    }
}

static const tp_state st_a = {
    .name = "A", .handle = probe_handle, .enter = probe_enter};
static const tp_state st_b = {
    .name = "B", .handle = probe_handle, .enter = probe_enter};

static _Atomic long term_actions; // 1: as documented in terminate

static void
probe_terminate(tp_ctx *ctx, void *data, const tp_state *state, int reason)
{
    (void)data;
    atomic_store(&term_actions,
                 tp_sm_state(ctx) == state &&
                         tp_sm_state_timeout(ctx, 1, 1, NULL, 0) == TP_EPERM &&
                         tp_sm_timeout(ctx, "t", 1, 1, NULL, 0) == TP_EPERM &&
                         tp_sm_next(ctx, &st_a) == TP_EPERM &&
                         tp_sm_postpone(ctx) == TP_EPERM
                     ? 1
                     : -1);
    snprintf(term_state, sizeof term_state, "%s", state->name);
    atomic_store(&term_reason, reason);
    atomic_fetch_add(&terminated, 1);
}

static int
probe_describe(const void *data, char *buf, size_t size)
{
    const probe *p = data;
    return snprintf(buf, size, "events=%zu", p->len);
}

static const tp_statem_spec probe_m = {
    .behaviour = TP_STATEM_BEHAVIOUR("probe"),
    .data_size = sizeof(probe),
    .initial = &st_a,
    .terminate = probe_terminate,
    .describe = probe_describe,
    .log_transitions = true,
};

static tp_system *sys;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];

static void
keep_log(void *u, int level, const char *origin, const char *line)
{
    (void)u;
    (void)level;
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s: %s\n", origin, line);
    pthread_mutex_unlock(&log_lock);
}

static void
setup(void)
{
    log_text[0] = '\0';
    atomic_store(&terminated, 0);
    sys = tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_log});
}

// A test system: its virtual clock fires timeouts when the test says.
static void
setup_virtual(void)
{
    log_text[0] = '\0';
    atomic_store(&terminated, 0);
    ck_assert_int_eq(
        tp_test_system_new(&(tp_config){.log = keep_log}, 1, &sys), 0);
}

static void
teardown(void)
{
    tp_system_destroy(&sys);
}

static void
send(tp_pid pid, uint32_t tag, const void *data, size_t size)
{
    ck_assert_int_eq(tp_system_send(sys, pid, tag, data, size), 0);
}

static void
send_ms(tp_pid pid, uint32_t tag, uint32_t ms)
{
    send(pid, tag, &ms, sizeof ms);
}

// The trace so far; ends with `want` within 10 s (timeouts come from the
// timer thread).
static bool
trace_ends(tp_pid pid, const char *want, char *out, size_t size)
{
    for (int i = 0; i < 1000; i++) {
        tp_call_reply r;
        ck_assert_int_eq(tp_call(sys, pid, TAG_GET, NULL, 0, 10000, &r), 0);
        snprintf(out, size, "%.*s", (int)r.size, (const char *)r.data);
        free(r.data);
        size_t n = strlen(out), w = strlen(want);
        if (n >= w && strcmp(out + n - w, want) == 0)
            return true;
        tpt_nap_us(10000);
    }
    return false;
}

#define ASSERT_TRACE(pid, want)                                               \
    do {                                                                      \
        char got_[1024];                                                      \
        ck_assert_msg(trace_ends(pid, want, got_, sizeof got_),               \
                      "trace \"%s\" does not end with \"%s\"", got_, want);   \
    } while (0)

static tp_pid
start(void)
{
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &probe_m.behaviour, NULL, NULL, &pid), 0);
    return pid;
}

START_TEST(enter_runs_at_start_on_changes_and_repeats)
{
    tp_pid pid = start();
    send(pid, TAG_GO, "B", 1);
    send(pid, TAG_GO, "B", 1); // the same state: nothing runs
    send(pid, TAG_REPEAT, NULL, 0);
    send(pid, TAG_GO, "A", 1);
    ASSERT_TRACE(pid, "A:enter<- A:goB B:enter<A B:goB B:repeat B:enter<B "
                      "B:goA A:enter<B ");
    tp_call_reply r;
    ck_assert_int_eq(tp_call(sys, pid, TAG_CHECKS, NULL, 0, 10000, &r), 0);
    ck_assert_msg(r.size == 2 && memcmp(r.data, "ok", 2) == 0, "%.*s",
                  (int)r.size, (char *)r.data);
    free(r.data);
}
END_TEST

START_TEST(state_timeout_fires_and_a_change_of_state_cancels_it)
{
    tp_pid pid = start();
    // Survives staying and repeating: still there to cancel.
    send_ms(pid, TAG_STATE_TO, 60000);
    send(pid, TAG_GO, "A", 1);
    send(pid, TAG_REPEAT, NULL, 0);
    send(pid, TAG_STATE_STOP, NULL, 0);
    ASSERT_TRACE(pid, "A:goA A:repeat A:enter<A A:stcancel=0 ");
    // Fires in the state that set it.
    send_ms(pid, TAG_STATE_TO, 20);
    ASSERT_TRACE(pid, "A:stcancel=0 A:st100 ");
    // The GO B the machine sends itself is queued before its state
    // timeout of 0 ms can be: the change of state cancels the timeout,
    // so it never comes.
    send(pid, TAG_RACE_STATE, NULL, 0);
    ASSERT_TRACE(pid, "A:st100 A:goB B:enter<A ");
    send(pid, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(pid, "A:goB B:enter<A B:note ");
    // A state timeout set by the callback that changes state is the new
    // state's.
    send(pid, TAG_GO, "A", 1);
    send(pid, TAG_GO_ARMED, NULL, 0);
    ASSERT_TRACE(pid, "A:goB+st B:enter<A B:st100 ");
    // Cancelled by hand; cancelling one not set says so.
    send_ms(pid, TAG_STATE_TO, 60000);
    send(pid, TAG_STATE_STOP, NULL, 0);
    send(pid, TAG_STATE_STOP, NULL, 0);
    ASSERT_TRACE(pid, "B:st100 B:stcancel=0 B:stcancel=-2 ");
}
END_TEST

START_TEST(event_timeout_is_cancelled_by_any_event)
{
    tp_pid pid = start();
    // The NOTE the machine sends itself comes before its event timeout
    // of 0 ms can, and cancels it.
    send(pid, TAG_RACE_EVENT, NULL, 0);
    ASSERT_TRACE(pid, "A:enter<- A:note ");
    send(pid, TAG_GO, "B", 1);
    ASSERT_TRACE(pid, "A:enter<- A:note A:goB B:enter<A ");
    // With nothing else coming, it fires.
    atomic_store(&ev_fired, 0);
    send_ms(pid, TAG_EVENT_TO, 10);
    ck_assert(tpt_wait_ge(&ev_fired, 1, 10.0));
    ASSERT_TRACE(pid, "B:enter<A B:ev101 ");
    // Another timeout is an event too: "n0" (0 ms) cancels the event
    // timeout of 30 ms, which would have come before "late" (100 ms).
    atomic_store(&named_fired, 0);
    send(pid, TAG_EV_NAMED, NULL, 0);
    ck_assert(tpt_wait_ge(&named_fired, 2, 10.0));
    ASSERT_TRACE(pid, "B:ev101 B:to(n0,n0) B:to(late,late) ");
}
END_TEST

START_TEST(named_timeouts_outlive_state_changes_and_are_replaced_by_name)
{
    tp_pid pid = start();
    // "gone" is cancelled; "slow" is replaced by a 0 ms one of the same
    // name before it fires; "keep" fires in B although set in A.
    send(pid, TAG_NAMED_TO, &(cmd_named){.ms = 60000, .name = "gone"},
         sizeof(cmd_named));
    send(pid, TAG_NAMED_STOP, "gone", 4);
    send(pid, TAG_NAMED_STOP, "gone", 4);
    send(pid, TAG_GO, "B", 1);
    ASSERT_TRACE(pid, "A:cancel(gone)=0 A:cancel(gone)=-2 A:goB B:enter<A ");
    // The 100 ms "slow" would come before "late" (300 ms): it never does.
    atomic_store(&named_fired, 0);
    send(pid, TAG_REPLACE, NULL, 0);
    ck_assert(tpt_wait_ge(&named_fired, 2, 10.0));
    ASSERT_TRACE(pid, "B:enter<A B:to(slow,slow) B:to(late,late) ");
    send(pid, TAG_GO_NAMED, NULL, 0);
    ASSERT_TRACE(pid, "B:goA+keep A:enter<B A:to(keep,keep) ");
}
END_TEST

START_TEST(postponed_messages_come_back_in_order_after_a_change_of_state)
{
    tp_pid pid = start();
    send(pid, TAG_POSTPONE, "1", 1);
    send(pid, TAG_GO, "A", 1);      // staying: nothing comes back
    send(pid, TAG_REPEAT, NULL, 0); // repeating neither
    send(pid, TAG_POSTPONE, "2", 1);
    send(pid, TAG_GO, "B", 1);
    send(pid, TAG_POSTPONE, "3", 1);
    ASSERT_TRACE(pid, "A:1(postponed) A:goA A:repeat A:enter<A "
                      "A:2(postponed) A:goB B:enter<A B:1 B:2 B:3 ");
    // Postponed again in A, and back when B comes again.
    send(pid, TAG_GO, "A", 1);
    send(pid, TAG_POSTPONE, "4", 1);
    send(pid, TAG_POSTPONE, "5", 1);
    tp_actor_detail d;
    char got[1024];
    ck_assert(trace_ends(pid, "A:5(postponed) ", got, sizeof got));
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 10000, &d), 0);
    ck_assert_uint_eq(d.stashed, 2);
    ck_assert_msg(strstr(d.describe, "state=A transitions=2 events=") ==
                      d.describe,
                  "%s", d.describe);
    send(pid, TAG_GO, "B", 1);
    ASSERT_TRACE(pid, "A:goB B:enter<A B:4 B:5 ");
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 10000, &d), 0);
    ck_assert_uint_eq(d.stashed, 0);
    ck_assert_str_eq(d.info.behaviour, "probe");
}
END_TEST

// Inserted events come right after the change of state, before the
// postponed messages and the mailbox; one inserted while handling another
// comes before the rest.
START_TEST(inserted_events_come_first)
{
    tp_pid pid = start();
    send(pid, TAG_POSTPONE, "1", 1);
    send(pid, TAG_INSERT, NULL, 0);
    send(pid, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(pid, "A:1(postponed) A:insert B:enter<A B:in201(pp=-22) "
                      "B:in203 B:in202 B:1 B:note ");
}
END_TEST

START_TEST(transitions_are_logged_and_terminate_sees_the_state)
{
    tp_pid pid = start();
    send(pid, TAG_GO, "B", 1);
    ASSERT_TRACE(pid, "B:enter<A ");
    send(pid, TAG_CRASH, NULL, 0);
    ck_assert(tpt_wait_ge(&terminated, 1, 10.0));
    ck_assert_int_eq(atomic_load(&term_reason), TP_EINVAL);
    ck_assert_str_eq(term_state, "B");
    ck_assert_int_eq(atomic_load(&term_actions), 1);
    pthread_mutex_lock(&log_lock);
    char pidtxt[TP_PID_STRLEN], want[128];
    tp_pid_format(pid, pidtxt, sizeof pidtxt);
    snprintf(want, sizeof want, "probe %s: statem: (start) -> A\n", pidtxt);
    ck_assert_msg(strstr(log_text, want) != NULL, "%s", log_text);
    snprintf(want, sizeof want, "probe %s: statem: A -> B\n", pidtxt);
    ck_assert_msg(strstr(log_text, want) != NULL, "%s", log_text);
    pthread_mutex_unlock(&log_lock);
    // A normal stop.
    pid = start();
    send(pid, TAG_STOP, NULL, 0);
    ck_assert(tpt_wait_ge(&terminated, 2, 10.0));
    ck_assert_int_eq(atomic_load(&term_reason), TP_REASON_NORMAL);
    ck_assert_str_eq(term_state, "A");
}
END_TEST

// A machine under a supervisor starts over in its first state.
START_TEST(a_supervised_machine_restarts_in_its_first_state)
{
    tp_child_spec child = {.id = "probe", .behaviour = &probe_m.behaviour};
    tp_sup_spec spec = {.flags = {.strategy = TP_ONE_FOR_ONE, .intensity = 3},
                        .children = &child,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    tp_sup_child kid;
    size_t n;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, &kid, 1, &n), 0);
    ck_assert_uint_eq(n, 1);
    tp_pid first = kid.pid;
    send(first, TAG_GO, "B", 1);
    send(first, TAG_CRASH, NULL, 0);
    ck_assert(tpt_wait_ge(&terminated, 1, 10.0));
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, &kid, 1, &n),
                         0);
        if (!tp_pid_is_nil(kid.pid) && !tp_pid_eq(kid.pid, first))
            break;
        tpt_nap_us(10000);
    }
    ck_assert(!tp_pid_eq(kid.pid, first));
    ASSERT_TRACE(kid.pid, "A:enter<- ");
}
END_TEST

// ---- a timeout while the mailbox is over its capacity --------------------

enum { F_POST = 1, F_GO };
static _Atomic long full_fired, full_b_posts;
static const tp_state full_b;

static int
full_a_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)data;
    if (ev->kind == TP_SM_MESSAGE && ev->msg->tag == F_POST)
        return tp_sm_postpone(ctx);
    if (ev->kind == TP_SM_MESSAGE && ev->msg->tag == F_GO)
        return tp_sm_next(ctx, &full_b);
    return TP_OK;
}

static int
full_b_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    (void)data, (void)from;
    return tp_sm_state_timeout(ctx, 0, 7, NULL, 0);
}

static int
full_b_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)ctx, (void)data;
    if (ev->kind == TP_SM_STATE_TIMEOUT)
        atomic_fetch_add(&full_fired, 1);
    else if (ev->msg->tag == F_POST) {
        tpt_nap_us(2000); // slow, so the timeout fires while they wait
        atomic_fetch_add(&full_b_posts, 1);
    }
    return TP_OK;
}

static const tp_state full_a = {.name = "A", .handle = full_a_handle};
static const tp_state full_b = {
    .name = "B", .handle = full_b_handle, .enter = full_b_enter};
static const tp_statem_spec full_m = {.behaviour = TP_STATEM_BEHAVIOUR("full"),
                                      .initial = &full_a};

// Twenty postponed messages come back to a mailbox of capacity 4 with a
// state timeout of 0 ms: the timeout passes the full mailbox, as every
// timer an actor sets for itself does.
START_TEST(a_timeout_passes_a_full_mailbox)
{
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &full_m.behaviour, NULL,
                              &(tp_spawn_opts){.mailbox_capacity = 4}, &pid),
                     0);
    for (int n = 0; n < 20;) // the default policy: waits while it is full
        if (tp_system_send(sys, pid, F_POST, NULL, 0) == 0)
            n++;
    ck_assert_int_eq(tp_system_send(sys, pid, F_GO, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&full_b_posts, 20, 10.0));
    ck_assert(tpt_wait_ge(&full_fired, 1, 10.0));
}
END_TEST

// ---- machines that do not start ---------------------------------------

static int
init_ignore(tp_ctx *ctx, void *data, void *arg, const tp_state **state)
{
    (void)ctx, (void)data, (void)arg, (void)state;
    return TP_IGNORE;
}

static int
init_no_state(tp_ctx *ctx, void *data, void *arg, const tp_state **state)
{
    (void)ctx, (void)data, (void)arg;
    *state = NULL;
    return 0;
}

// Picks B from the spawn's argument, and arms a timeout at once; with
// "F", then fails (the timeouts armed go with the machine that never was).
static int
init_pick(tp_ctx *ctx, void *data, void *arg, const tp_state **state)
{
    (void)data;
    if (arg != NULL && *(const char *)arg == 'B')
        *state = &st_b;
    if (tp_sm_next(ctx, &st_a) != TP_EPERM)
        return TP_EINVAL;
    int rc = tp_sm_timeout(ctx, "boot", 0, TAG_TO_NAMED, "boot", 4);
    if (rc == 0 && arg != NULL && *(const char *)arg == 'F') {
        tp_sm_state_timeout(ctx, 0, 1, "s", 1);
        tp_sm_event_timeout(ctx, 60000, 1, NULL, 0);
        return TP_ECRASH;
    }
    return rc;
}

static int
enter_stop(tp_ctx *ctx, void *data, const tp_state *from)
{
    (void)ctx, (void)data, (void)from;
    return TP_STOP;
}

static const tp_state st_stop = {
    .name = "stop", .handle = probe_handle, .enter = enter_stop};

static const tp_statem_spec ignore_m = {.behaviour =
                                            TP_STATEM_BEHAVIOUR("ignore"),
                                        .initial = &st_a,
                                        .init = init_ignore};
static const tp_statem_spec nostate_m = {
    .behaviour = TP_STATEM_BEHAVIOUR("nostate"), .init = init_no_state};
static const tp_statem_spec stop_m = {.behaviour = TP_STATEM_BEHAVIOUR("stop"),
                                      .initial = &st_stop};
// A state without a name: logged and described as "?".
static const tp_state st_anon = {.handle = probe_handle};
static const tp_statem_spec anon_m = {.behaviour = TP_STATEM_BEHAVIOUR("anon"),
                                      .data_size = sizeof(probe),
                                      .initial = &st_anon,
                                      .log_transitions = true};

static const tp_statem_spec pick_m = {.behaviour = TP_STATEM_BEHAVIOUR("pick"),
                                      .data_size = sizeof(probe),
                                      .initial = &st_a,
                                      .init = init_pick};

// A plain actor: the actions are refused outside a machine.
static _Atomic long plain_checked;

static int
plain_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    if (tp_sm_next(ctx, &st_a) == TP_EINVAL &&
        tp_sm_postpone(ctx) == TP_EINVAL &&
        tp_sm_state_timeout(ctx, 1, 1, NULL, 0) == TP_EINVAL &&
        tp_sm_timeout(ctx, "x", 1, 1, NULL, 0) == TP_EINVAL &&
        tp_sm_state(ctx) == NULL)
        atomic_store(&plain_checked, 1);
    else
        atomic_store(&plain_checked, -1);
    return TP_OK;
}

static const tp_behaviour plain_b = {.name = "plain", .handle = plain_handle};

START_TEST(machines_that_do_not_start_and_actions_outside_one)
{
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &ignore_m.behaviour, NULL, NULL, &pid),
                     TP_EIGNORED);
    ck_assert_int_eq(tp_spawn(sys, &nostate_m.behaviour, NULL, NULL, &pid),
                     TP_EINVAL);
    ck_assert_int_eq(tp_spawn(sys, &stop_m.behaviour, NULL, NULL, &pid),
                     TP_EINIT);
    ck_assert_int_eq(tp_spawn(sys, &pick_m.behaviour, "F", NULL, &pid),
                     TP_ECRASH);
    ck_assert_int_eq(tp_spawn(sys, &pick_m.behaviour, "B", NULL, &pid), 0);
    ASSERT_TRACE(pid, "B:enter<- B:to(boot,boot) ");
    ck_assert_int_eq(tp_spawn(sys, &anon_m.behaviour, NULL, NULL, &pid), 0);
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 10000, &d), 0);
    ck_assert_str_eq(d.describe, "state=? transitions=0");
    ck_assert_int_eq(tp_spawn(sys, &plain_b, NULL, NULL, &pid), 0);
    send(pid, 1, NULL, 0);
    for (int i = 0; i < 1000 && atomic_load(&plain_checked) == 0; i++)
        tpt_nap_us(10000);
    ck_assert_int_eq(atomic_load(&plain_checked), 1);
    ck_assert_int_eq(tp_sm_next(NULL, &st_a), TP_EINVAL);
    ck_assert_int_eq(tp_sm_postpone(NULL), TP_EINVAL);
    ck_assert_ptr_null(tp_sm_state(NULL));
}
END_TEST

// ---- hot code upgrade: probe (v1) to probe2 (v2) ---------------------------

// v2's data: larger than v1's, which it holds converted.
typedef struct probe2 {
    probe p;
    char note[32]; // set by v2's code_change
} probe2;

static const tp_state v2_a, v2_b;
static _Atomic long v2_terminated;

// What v2's code_change does: convert, refuse a machine in B, or also
// move a machine from A to B.
enum { CH_CONVERT, CH_REFUSE_B, CH_PICK_B };
static _Atomic int change_mode;

static int
v2_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    probe2 *q = data;
    trace(&q->p, "v2%s:enter<%s ", tp_sm_state(ctx)->name,
          from ? from->name : "-");
    return TP_OK;
}

// v2's handlers: each trace entry starts with "v2".
static int
v2_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    probe2 *q = data;
    probe *p = &q->p;
    const char *st = tp_sm_state(ctx)->name;
    const tp_msg *m = ev->msg;
    if (ev->kind == TP_SM_STATE_TIMEOUT || ev->kind == TP_SM_EVENT_TIMEOUT) {
        trace(p, "v2%s:%s%u ", st,
              ev->kind == TP_SM_STATE_TIMEOUT ? "st" : "ev", m->tag);
        return TP_OK;
    }
    if (ev->kind == TP_SM_TIMEOUT) {
        trace(p, "v2%s:to(%s,%.*s) ", st, ev->name, (int)m->size,
              (const char *)m->data);
        return TP_OK;
    }
    char c = m->size > 0 ? *(const char *)m->data : '-';
    switch (m->tag) {
    case TAG_GO:
        trace(p, "v2%s:go%c ", st, c);
        return tp_sm_next(ctx, c == 'A' ? &v2_a : &v2_b);
    case TAG_POSTPONE:
        trace(p, "v2%s:%c%s ", st, c, st[0] == 'A' ? "(postponed)" : "");
        return st[0] == 'A' ? tp_sm_postpone(ctx) : TP_OK;
    case TAG_NAMED_TO: {
        const cmd_named *n = m->data;
        return tp_sm_timeout(ctx, n->name, n->ms, TAG_TO_NAMED, n->name,
                             strlen(n->name));
    }
    case TAG_NOTE:
        trace(p, "v2%s:note(%s) ", st, q->note);
        return TP_OK;
    case TAG_STOP:
        return TP_STOP;
    case TAG_GET:
        return tp_reply(ctx, TAG_GET, p->trace, p->len);
    default:
        trace(p, "v2%s:?%u ", st, m->tag);
        return TP_OK;
    }
}

static void
v2_terminate(tp_ctx *ctx, void *data, const tp_state *state, int reason)
{
    (void)ctx, (void)data, (void)reason;
    snprintf(term_state, sizeof term_state, "v2%s", state->name);
    atomic_fetch_add(&v2_terminated, 1);
}

static int
v2_describe(const void *data, char *buf, size_t size)
{
    const probe2 *q = data;
    return snprintf(buf, size, "note=%s", q->note);
}

// Checks what it is documented to get (the old spec still running, the
// same-named state preset, zeroed data, the actions refused), then
// converts.
static int
v2_change(tp_ctx *ctx, const void *old_data, void *new_data,
          const tp_state *old_state, const tp_state **state)
{
    const probe *o = old_data;
    probe2 *q = new_data;
    if (tp_ctx_behaviour(ctx) != &probe_m.behaviour ||
        (old_state != &st_a && old_state != &st_b) ||
        *state != (old_state == &st_a ? &v2_a : &v2_b) ||
        tp_sm_state(ctx) != NULL ||
        tp_sm_timeout(ctx, "x", 1, 1, NULL, 0) != TP_EINVAL ||
        q->note[0] != '\0')
        return TP_ECRASH;
    int mode = atomic_load(&change_mode);
    if (mode == CH_REFUSE_B && old_state == &st_b)
        return TP_EACCES;
    q->p = *o;
    snprintf(q->note, sizeof q->note, "was-%s", old_state->name);
    if (mode == CH_PICK_B)
        *state = &v2_b;
    atomic_fetch_add(&built, 1);
    return 0;
}

static const tp_state v2_a = {
    .name = "A", .handle = v2_handle, .enter = v2_enter};
static const tp_state v2_b = {
    .name = "B", .handle = v2_handle, .enter = v2_enter};
static const tp_state *const v2_states[] = {&v2_a, &v2_b, NULL};

static const tp_statem_spec v2_m = {
    .behaviour = TP_STATEM_BEHAVIOUR("probe2"),
    .data_size = sizeof(probe2),
    .initial = &v2_a,
    .terminate = v2_terminate,
    .describe = v2_describe,
    .log_transitions = true,
    .states = v2_states,
    .code_change = v2_change,
};

// No code_change, and no state B.
static const tp_state *const v2_only_a[] = {&v2_a, NULL};
static const tp_statem_spec v2_only_a_m = {
    .behaviour = TP_STATEM_BEHAVIOUR("probe2"),
    .data_size = sizeof(probe2),
    .initial = &v2_a,
    .describe = v2_describe,
    .states = v2_only_a,
};

static tp_code_change
to_spec(const tp_statem_spec *spec)
{
    return (tp_code_change){.from = &probe_m.behaviour,
                            .to = &spec->behaviour,
                            .change = tp_statem_change,
                            .discard = tp_statem_discard,
                            .arg = (void *)spec};
}

static void
run_all(void)
{
    ck_assert_int_ge(tp_test_run(sys, 10000), 0);
}

static void
detail(tp_pid pid, tp_actor_detail *d)
{
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 10000, d), 0);
}

// On virtual time: the timeouts a v1 machine set, and the messages it
// postponed, reach v2's handlers, in the state of the same name.
START_TEST(an_upgraded_machine_keeps_its_timeouts_and_postponed_messages)
{
    tp_pid pid = start();
    send(pid, TAG_GO, "B", 1);
    send(pid, TAG_GO, "A", 1);
    send_ms(pid, TAG_STATE_TO, 1000);
    send(pid, TAG_NAMED_TO, &(cmd_named){.ms = 2000, .name = "keep"},
         sizeof(cmd_named));
    send(pid, TAG_POSTPONE, "1", 1);
    send(pid, TAG_POSTPONE, "2", 1);
    const char *v1 = "A:enter<- A:goB B:enter<A B:goA A:enter<B "
                     "A:1(postponed) A:2(postponed) ";
    ASSERT_TRACE(pid, v1);
    send_ms(pid, TAG_EVENT_TO, 500); // after the GET: any event cancels it
    run_all();
    int64_t t0 = tp_test_now_ms(sys);

    tp_code_change ch = to_spec(&v2_m);
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), 0);
    ck_assert_uint_eq(rep.actors, 1);
    ck_assert_int_eq(atomic_load(&built), 1);
    ck_assert_int_eq(tp_test_now_ms(sys), t0);
    tp_actor_detail d;
    detail(pid, &d); // the same pid, v2's name, describe and data
    ck_assert_str_eq(d.info.behaviour, "probe2");
    ck_assert_str_eq(d.describe, "state=A transitions=2 note=was-A");
    ck_assert_uint_eq(d.stashed, 2);
    ck_assert_uint_eq(tp_behaviour_users(sys, &probe_m.behaviour), 0);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v2_m.behaviour), 1);

    tp_test_advance(sys, 500); // the event timeout
    run_all();
    // A timeout v2 sets gets a serial of its own, not a pending one's.
    send(pid, TAG_NAMED_TO, &(cmd_named){.ms = 300, .name = "n2"},
         sizeof(cmd_named));
    run_all();
    tp_test_advance(sys, 300);
    run_all();
    tp_test_advance(sys, 200); // the state timeout
    run_all();
    send(pid, TAG_GO, "B", 1); // the postponed messages, in order
    run_all();
    tp_test_advance(sys, 1000); // "keep"
    run_all();
    send(pid, TAG_NOTE, NULL, 0);
    char want[1024];
    snprintf(want, sizeof want,
             "%sv2A:ev101 v2A:to(n2,n2) v2A:st100 v2A:goB v2B:enter<A "
             "v2B:1 v2B:2 v2B:to(keep,keep) v2B:note(was-A) ",
             v1);
    char got[1024];
    ck_assert_msg(trace_ends(pid, want, got, sizeof got), "trace \"%s\"", got);
    ck_assert_str_eq(got, want);
    detail(pid, &d);
    ck_assert_str_eq(d.describe, "state=B transitions=3 note=was-A");
    ck_assert_uint_eq(d.stashed, 0);

    // It ends with v2's terminate, not v1's.
    send(pid, TAG_STOP, NULL, 0);
    run_all();
    ck_assert_int_eq(atomic_load(&v2_terminated), 1);
    ck_assert_int_eq(atomic_load(&terminated), 0);
    ck_assert_str_eq(term_state, "v2B");
}
END_TEST

// Two machines, the one in B refused by v2's code_change once the other's
// new machine is built: both go on as v1, with their data, timeouts and
// postponed messages.
START_TEST(a_refused_machine_rolls_every_machine_back)
{
    tp_pid good = start(), bad = start();
    send_ms(good, TAG_STATE_TO, 60000);
    send(good, TAG_POSTPONE, "1", 1);
    send(bad, TAG_NAMED_TO, &(cmd_named){.ms = 60000, .name = "keep"},
         sizeof(cmd_named));
    send(bad, TAG_GO, "B", 1);
    ASSERT_TRACE(good, "A:enter<- A:1(postponed) ");
    ASSERT_TRACE(bad, "A:enter<- A:goB B:enter<A ");
    // `bad` prepares only after `good` has built its new machine, which
    // the rollback then drops.
    send(bad, TAG_WAIT_BUILT, NULL, 0);
    ck_assert(tpt_wait_ge(&waiting, 1, 10.0));
    atomic_store(&change_mode, CH_REFUSE_B);
    tp_code_change ch = to_spec(&v2_m);
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), TP_EACCES);
    ck_assert_int_eq(rep.failed, TP_EACCES);
    ck_assert(tp_pid_eq(rep.failed_pid, bad));
    ck_assert_int_eq(atomic_load(&built), 1);
    ck_assert_uint_eq(tp_behaviour_users(sys, &probe_m.behaviour), 2);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v2_m.behaviour), 0);

    tp_actor_detail d;
    detail(good, &d);
    ck_assert_str_eq(d.info.behaviour, "probe");
    ck_assert_str_eq(d.describe, "state=A transitions=0 events=25");
    ck_assert_uint_eq(d.stashed, 1);
    send(good, TAG_STATE_STOP, NULL, 0);
    send(good, TAG_GO, "B", 1);
    ASSERT_TRACE(good, "A:enter<- A:1(postponed) A:stcancel=0 A:goB "
                       "B:enter<A B:1 ");
    send(bad, TAG_NAMED_STOP, "keep", 4);
    send(bad, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(bad, "A:enter<- A:goB B:enter<A B:cancel(keep)=0 B:note ");
    detail(bad, &d);
    ck_assert_str_eq(d.info.behaviour, "probe");
}
END_TEST

// A machine in a state v2 lacks, with no code_change to pick one, rolls
// back with TP_EINVAL; so do a NULL spec, a spec that is not a machine's
// and an actor that is not a machine. Without code_change, the data's
// bytes are copied.
START_TEST(an_upgrade_without_a_state_of_the_same_name_rolls_back)
{
    tp_pid in_a = start(), in_b = start();
    send(in_b, TAG_GO, "B", 1);
    ASSERT_TRACE(in_b, "A:enter<- A:goB B:enter<A ");
    tp_code_change ch = to_spec(&v2_only_a_m);
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), TP_EINVAL);
    ck_assert_int_eq(rep.failed, TP_EINVAL);
    ck_assert(tp_pid_eq(rep.failed_pid, in_b));
    pthread_mutex_lock(&log_lock);
    ck_assert_msg(strstr(log_text, "statem: upgrade to probe2: no state "
                                   "for B\n") != NULL,
                  "%s", log_text);
    pthread_mutex_unlock(&log_lock);
    send(in_b, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(in_b, "B:enter<A B:note ");

    static const tp_statem_spec not_machine = {
        .behaviour = {.name = "plain", .handle = plain_handle}};
    ch.arg = NULL;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), TP_EINVAL);
    ch.arg = (void *)&not_machine;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), TP_EINVAL);
    tp_pid plain;
    ck_assert_int_eq(tp_spawn(sys, &plain_b, NULL, NULL, &plain), 0);
    tp_code_change from_plain = to_spec(&v2_m);
    from_plain.from = &plain_b;
    ck_assert_int_eq(tp_upgrade(sys, &from_plain, 1, 10000, &rep), TP_EINVAL);
    ck_assert(tp_pid_eq(rep.failed_pid, plain));
    ck_assert_uint_eq(tp_behaviour_users(sys, &probe_m.behaviour), 2);

    // Both in A: v1's bytes copied, the note left empty.
    send(in_b, TAG_GO, "A", 1);
    ASSERT_TRACE(in_b, "B:note B:goA A:enter<B ");
    ch = to_spec(&v2_only_a_m);
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), 0);
    ck_assert_uint_eq(rep.actors, 2);
    send(in_b, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(in_b, "B:note B:goA A:enter<B v2A:note() ");
    send(in_a, TAG_NOTE, NULL, 0);
    ASSERT_TRACE(in_a, "A:enter<- v2A:note() ");
}
END_TEST

// v2's code_change moves a machine from A to B: describe shows B at once,
// and as no change of state happened, no enter ran, no transition was
// logged or counted, and the message postponed in A stays postponed until
// the next one.
START_TEST(code_change_picks_the_state)
{
    tp_pid pid = start();
    send(pid, TAG_POSTPONE, "1", 1);
    ASSERT_TRACE(pid, "A:enter<- A:1(postponed) ");
    atomic_store(&change_mode, CH_PICK_B);
    tp_code_change ch = to_spec(&v2_m);
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, NULL), 0);
    tp_actor_detail d;
    detail(pid, &d);
    ck_assert_str_eq(d.describe, "state=B transitions=0 note=was-A");
    ck_assert_uint_eq(d.stashed, 1);
    send(pid, TAG_POSTPONE, "2", 1); // B handles it
    send(pid, TAG_GO, "A", 1);
    send(pid, TAG_GO, "B", 1);
    ASSERT_TRACE(pid, "A:enter<- A:1(postponed) v2B:2 v2B:goA v2A:enter<B "
                      "v2A:1(postponed) v2A:goB v2B:enter<A v2B:1 ");
    detail(pid, &d);
    ck_assert_str_eq(d.describe, "state=B transitions=2 note=was-A");
    pthread_mutex_lock(&log_lock);
    char pidtxt[TP_PID_STRLEN], want[256];
    tp_pid_format(pid, pidtxt, sizeof pidtxt);
    snprintf(want, sizeof want,
             "probe %s: statem: (start) -> A\n"
             "probe2 %s: statem: B -> A\n"
             "probe2 %s: statem: A -> B\n",
             pidtxt, pidtxt, pidtxt);
    ck_assert_str_eq(log_text, want);
    pthread_mutex_unlock(&log_lock);
}
END_TEST

Suite *
statem_suite(void)
{
    Suite *su = suite_create("statem");
    TCase *tc = tcase_create("state machines");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, enter_runs_at_start_on_changes_and_repeats);
    tcase_add_test(tc, state_timeout_fires_and_a_change_of_state_cancels_it);
    tcase_add_test(tc, event_timeout_is_cancelled_by_any_event);
    tcase_add_test(
        tc, named_timeouts_outlive_state_changes_and_are_replaced_by_name);
    tcase_add_test(
        tc, postponed_messages_come_back_in_order_after_a_change_of_state);
    tcase_add_test(tc, inserted_events_come_first);
    tcase_add_test(tc, transitions_are_logged_and_terminate_sees_the_state);
    tcase_add_test(tc, a_supervised_machine_restarts_in_its_first_state);
    tcase_add_test(tc, machines_that_do_not_start_and_actions_outside_one);
    tcase_add_test(tc, a_timeout_passes_a_full_mailbox);
    tcase_add_test(tc, a_refused_machine_rolls_every_machine_back);
    tcase_add_test(tc, an_upgrade_without_a_state_of_the_same_name_rolls_back);
    tcase_add_test(tc, code_change_picks_the_state);
    suite_add_tcase(su, tc);
    TCase *tv = tcase_create("upgrades on virtual time");
    tcase_add_checked_fixture(tv, setup_virtual, teardown);
    tcase_set_timeout(tv, 60);
    tcase_add_test(
        tv, an_upgraded_machine_keeps_its_timeouts_and_postponed_messages);
    suite_add_tcase(su, tv);
    return su;
}
