// SPDX-License-Identifier: MIT
// The promises an application leans on, through the public API: signals
// keep their place behind their sender's messages, a request never
// outlives its callee, what an actor owns is released before its death is
// announced, a sending actor's first message always gets through, and a
// killed actor is unreachable at once even while it is busy.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

// ---- an observer that logs what it receives, in order -------------------

#define LOG_MAX 4096

typedef struct event {
    uint32_t tag;
    tp_pid from; // for EXIT, DOWN and FAILED: the actor they are about
    int reason;
    uint64_t ref;
} event;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static event log_[LOG_MAX];
static _Atomic long nlog;

static void
record(const tp_msg *msg)
{
    event e = {.tag = msg->tag, .from = msg->from, .ref = msg->ref};
    if (msg->tag == TP_TAG_EXIT) {
        const tp_exit_msg *x = msg->data;
        e.from = x->from;
        e.reason = x->reason;
    } else if (msg->tag == TP_TAG_DOWN || msg->tag == TP_TAG_FAILED) {
        const tp_down_msg *d = msg->data;
        e.from = d->from;
        e.reason = d->reason;
    }
    pthread_mutex_lock(&log_lock);
    long i = atomic_load(&nlog);
    if (i < LOG_MAX) {
        log_[i] = e;
        atomic_store(&nlog, i + 1);
    }
    pthread_mutex_unlock(&log_lock);
}

// Index of the first event with `tag` about `from` (any when nil), or -1.
static long
find(uint32_t tag, tp_pid from)
{
    long n = atomic_load(&nlog);
    for (long i = 0; i < n; i++)
        if (log_[i].tag == tag &&
            (tp_pid_is_nil(from) || tp_pid_eq(log_[i].from, from)))
            return i;
    return -1;
}

static long
await(uint32_t tag, tp_pid from, double seconds)
{
    for (long waited = 0; waited < (long)(seconds * 1000); waited++) {
        long i = find(tag, from);
        if (i >= 0)
            return i;
        tpt_nap_us(1000);
    }
    return -1;
}

static void
log_reset(void)
{
    atomic_store(&nlog, 0);
}

// ---- actors -----------------------------------------------------------------

enum {
    T_WATCH = 1, // obs: link (trapping) and monitor data: tp_pid
    T_REQUEST,   // obs: data: struct req; records the ref in last_ref
    T_DO,        // talker: data: struct act
    T_MSG,       // talker -> obs: the message sent before dying
    T_HOLD,      // holder: a request it never answers
    T_REPLY,     // the reply talker sends
    T_BUSY,      // busy: spins until `gate`, then sends T_MSG to obs
};

enum { M_STOP, M_ERROR, M_FAIL, M_REPLY_STOP, M_EXIT_SELF, M_REPLY };

typedef struct act {
    int mode;
    tp_pid to;
} act;

typedef struct req {
    tp_pid to;
    uint32_t tag;
    int timeout_ms;
    act a;
} req;

static _Atomic uint64_t last_ref;
static _Atomic int last_request_rc = 12345;

static int
obs_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_WATCH) {
        tp_pid p;
        memcpy(&p, msg->data, sizeof p);
        tp_trap_exit(ctx, true);
        ck_assert_int_eq(tp_link(ctx, p), 0);
        ck_assert_int_eq(tp_monitor(ctx, p, NULL), 0);
        record(msg); // the test waits for this
        return TP_OK;
    }
    if (msg->tag == T_REQUEST) {
        req r;
        memcpy(&r, msg->data, sizeof r);
        uint64_t ref = 0;
        int rc = tp_request(ctx, r.to, r.tag, &r.a, sizeof r.a, r.timeout_ms,
                            &ref);
        atomic_store(&last_ref, ref); // before the code the test waits on
        atomic_store(&last_request_rc, rc);
        return TP_OK;
    }
    record(msg);
    return TP_OK;
}

static const tp_behaviour obs_b = {.name = "obs", .handle = obs_handle};

// Sends T_MSG (or a reply) to the asker, then ends as told.
static int
talker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != T_DO)
        return TP_OK;
    act a;
    memcpy(&a, msg->data, sizeof a);
    if (a.mode == M_REPLY_STOP || a.mode == M_REPLY)
        ck_assert_int_eq(tp_reply(ctx, T_REPLY, "r", 1), 0);
    else
        ck_assert_int_eq(tp_send(ctx, a.to, T_MSG, "m", 1), 0);
    switch (a.mode) {
    case M_STOP:
    case M_REPLY_STOP:
        return TP_STOP;
    case M_ERROR:
        return TP_EINVAL;
    case M_FAIL:
        tp_fail(ctx, TP_ECRASH, "failing on purpose");
        return TP_OK;
    case M_EXIT_SELF:
        ck_assert_int_eq(tp_exit(ctx, tp_self(ctx), TP_REASON_NORMAL), 0);
        return TP_OK;
    default:
        return TP_OK;
    }
}

static const tp_behaviour talker_b = {.name = "talker",
                                      .handle = talker_handle};

static tp_system *sys_;

static void
setup(void)
{
    sys_ = tpt_system(2);
    log_reset();
}

static void
teardown(void)
{
    tp_system_destroy(&sys_);
}

static tp_pid
spawn(const tp_behaviour *b, void *arg)
{
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys_, b, arg, NULL, &p), 0);
    return p;
}

static void
obs_watch(tp_pid obs, tp_pid target)
{
    long before = find(T_WATCH, TP_PID_NIL);
    ck_assert_int_eq(tp_system_send(sys_, obs, T_WATCH, &target, sizeof target),
                     0);
    for (int i = 0; i < 20000; i++) {
        long n = atomic_load(&nlog);
        for (long j = before + 1; j < n; j++)
            if (log_[j].tag == T_WATCH)
                return;
        tpt_nap_us(500);
    }
    ck_abort_msg("the observer did not watch");
}

// Has `obs` request `to` and waits until it has; returns the request's ref.
static uint64_t
obs_request(tp_pid obs, tp_pid to, uint32_t tag, act a, int timeout_ms)
{
    atomic_store(&last_request_rc, 12345);
    req r = {.to = to, .tag = tag, .timeout_ms = timeout_ms, .a = a};
    ck_assert_int_eq(tp_system_send(sys_, obs, T_REQUEST, &r, sizeof r), 0);
    for (int i = 0; i < 20000 && atomic_load(&last_request_rc) == 12345; i++)
        tpt_nap_us(500);
    ck_assert_int_eq(atomic_load(&last_request_rc), 0);
    return atomic_load(&last_ref);
}

// ---- 1. ordering ------------------------------------------------------------

// An actor that sends (or replies) and then exits, by each way there is:
// its message reaches the watcher before its EXIT and its DOWN, every time.
START_TEST(test_message_then_exit_in_order)
{
    const int modes[] = {M_STOP, M_ERROR, M_FAIL, M_EXIT_SELF};
    for (int round = 0; round < 9; round++) {
        for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
            log_reset();
            tp_pid obs = spawn(&obs_b, NULL), t = spawn(&talker_b, NULL);
            obs_watch(obs, t);
            act a = {.mode = modes[k], .to = obs};
            ck_assert_int_eq(tp_system_send(sys_, t, T_DO, &a, sizeof a), 0);
            long down = await(TP_TAG_DOWN, t, 20);
            long exit = await(TP_TAG_EXIT, t, 20);
            long msg = find(T_MSG, TP_PID_NIL);
            ck_assert_int_ge(down, 0);
            ck_assert_int_ge(exit, 0);
            ck_assert_msg(msg >= 0 && msg < down && msg < exit,
                          "mode %d: message at %ld, EXIT at %ld, DOWN at %ld",
                          modes[k], msg, exit, down);
            int want = modes[k] == M_STOP || modes[k] == M_EXIT_SELF
                           ? TP_REASON_NORMAL
                       : modes[k] == M_ERROR ? TP_EINVAL
                                             : TP_ECRASH;
            ck_assert_int_eq(log_[down].reason, want);
            ck_assert_int_eq(log_[exit].reason, want);
            tp_system_exit(sys_, obs, TP_REASON_KILL);
        }
    }
}
END_TEST

// A reply followed by the callee's exit: the reply is handled as a reply,
// and the request does not fail afterwards.
START_TEST(test_reply_then_stop_in_order)
{
    for (int round = 0; round < 9; round++) {
        log_reset();
        tp_pid obs = spawn(&obs_b, NULL), t = spawn(&talker_b, NULL);
        obs_watch(obs, t);
        uint64_t ref =
            obs_request(obs, t, T_DO, (act){.mode = M_REPLY_STOP}, 60000);
        long down = await(TP_TAG_DOWN, t, 20);
        long reply = find(T_REPLY, TP_PID_NIL);
        ck_assert_int_ge(down, 0);
        ck_assert_msg(reply >= 0 && reply < down, "reply %ld, DOWN %ld",
                      reply, down);
        ck_assert_uint_eq(log_[reply].ref, ref);
        ck_assert_int_lt(find(TP_TAG_FAILED, TP_PID_NIL), 0);
        ck_assert_int_lt(find(TP_TAG_TIMEOUT, TP_PID_NIL), 0);
        tp_system_exit(sys_, obs, TP_REASON_KILL);
    }
}
END_TEST

// A signal a full mailbox does not refuse: the DOWN of a monitored actor
// reaches a watcher whose user lane is over capacity under REJECT.
static _Atomic int gate;
static _Atomic long gated_in;

// Monitors the actor whose pid a T_WATCH message carries.
static void
monitor_watched(tp_ctx *ctx, const tp_msg *msg)
{
    tp_pid p;
    memcpy(&p, msg->data, sizeof p);
    ck_assert_int_eq(tp_monitor(ctx, p, NULL), 0);
}

static int
gated_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_WATCH) {
        monitor_watched(ctx, msg);
        return TP_OK;
    }
    if (msg->tag == TP_TAG_DOWN) {
        record(msg);
        return TP_OK;
    }
    atomic_fetch_add(&gated_in, 1);
    while (!atomic_load(&gate))
        tpt_nap_us(200);
    return TP_OK;
}

static const tp_behaviour gated_b = {.name = "gated", .handle = gated_handle};

START_TEST(test_down_passes_full_mailbox)
{
    atomic_store(&gate, 0);
    atomic_store(&gated_in, 0);
    tp_pid g, t = spawn(&talker_b, NULL);
    tp_spawn_opts o = {.mailbox_capacity = 4, .overflow = TP_OVERFLOW_REJECT};
    ck_assert_int_eq(tp_spawn(sys_, &gated_b, NULL, &o, &g), 0);
    ck_assert_int_eq(tp_system_send(sys_, g, T_WATCH, &t, sizeof t), 0);
    ck_assert_int_eq(tp_system_send(sys_, g, T_MSG, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gated_in, 1, 20));
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = tp_system_send(sys_, g, T_MSG, NULL, 0);
    ck_assert_int_eq(rc, TP_EFULL);
    // The talker's own message goes elsewhere: g refuses messages now.
    tp_pid obs = spawn(&obs_b, NULL);
    act a = {.mode = M_STOP, .to = obs};
    ck_assert_int_eq(tp_system_send(sys_, t, T_DO, &a, sizeof a), 0);
    // g's DOWN is queued behind a full user lane, and still gets there.
    atomic_store(&gate, 1);
    ck_assert_int_ge(await(TP_TAG_DOWN, t, 20), 0);
}
END_TEST

// ---- 2. requests ------------------------------------------------------------

static int
holder_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK; // never answers
}

static const tp_behaviour holder_b = {.name = "holder",
                                      .handle = holder_handle};

START_TEST(test_request_to_dead_fails_noproc)
{
    tp_pid obs = spawn(&obs_b, NULL), t = spawn(&talker_b, NULL);
    obs_watch(obs, t);
    act a = {.mode = M_STOP, .to = obs};
    ck_assert_int_eq(tp_system_send(sys_, t, T_DO, &a, sizeof a), 0);
    ck_assert_int_ge(await(TP_TAG_DOWN, t, 20), 0);
    uint64_t ref = obs_request(obs, t, T_HOLD, (act){0}, 60000);
    long f = await(TP_TAG_FAILED, t, 10);
    ck_assert_int_ge(f, 0);
    ck_assert_uint_eq(log_[f].ref, ref);
    ck_assert_int_eq(log_[f].reason, TP_REASON_NOPROC);
}
END_TEST

START_TEST(test_request_fails_when_callee_killed)
{
    tp_pid obs = spawn(&obs_b, NULL), h = spawn(&holder_b, NULL);
    uint64_t ref = obs_request(obs, h, T_HOLD, (act){0}, 60000);
    // The holder has the request (it answers nothing, so wait for it to
    // have handled it: its mailbox is empty once it has).
    tp_actor_stats st;
    for (int i = 0; i < 20000; i++) {
        ck_assert_int_eq(tp_actor_stats_get(sys_, h, &st), 0);
        if (st.handled >= 1)
            break;
        tpt_nap_us(500);
    }
    ck_assert_uint_ge(st.handled, 1);
    ck_assert_int_eq(tp_system_exit(sys_, h, TP_REASON_KILL), 0);
    long f = await(TP_TAG_FAILED, h, 10);
    ck_assert_int_ge(f, 0);
    ck_assert_uint_eq(log_[f].ref, ref);
    ck_assert_int_eq(log_[f].reason, TP_REASON_KILLED);
    ck_assert_int_lt(find(TP_TAG_TIMEOUT, TP_PID_NIL), 0);
}
END_TEST

START_TEST(test_request_fails_when_callee_stops)
{
    tp_pid obs = spawn(&obs_b, NULL), t = spawn(&talker_b, NULL);
    // The talker sends a plain message (not a reply) and stops.
    uint64_t ref =
        obs_request(obs, t, T_DO, (act){.mode = M_STOP, .to = obs}, 60000);
    long f = await(TP_TAG_FAILED, t, 10);
    ck_assert_int_ge(f, 0);
    ck_assert_uint_eq(log_[f].ref, ref);
    ck_assert_int_eq(log_[f].reason, TP_REASON_NORMAL);
    ck_assert_int_lt(find(T_MSG, TP_PID_NIL), f); // in order, too
}
END_TEST

// The monitor a request sets is gone once the request is answered or
// timed out, on both sides.
static void
assert_no_monitors(tp_pid obs, tp_pid callee)
{
    tp_actor_detail d;
    for (int i = 0; i < 2000; i++) {
        ck_assert_int_eq(tp_actor_detail_get(sys_, callee, 5000, &d), 0);
        if (d.nwatchers == 0)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_eq(d.nwatchers, 0);
    ck_assert_int_eq(tp_actor_detail_get(sys_, obs, 5000, &d), 0);
    ck_assert_uint_eq(d.nmonitors, 0);
}

START_TEST(test_request_leaves_no_monitor)
{
    tp_pid obs = spawn(&obs_b, NULL), t = spawn(&talker_b, NULL);
    uint64_t ref = obs_request(obs, t, T_DO, (act){.mode = M_REPLY}, 60000);
    long r = await(T_REPLY, t, 10);
    ck_assert_int_ge(r, 0);
    ck_assert_uint_eq(log_[r].ref, ref);
    assert_no_monitors(obs, t);
    tp_pid h = spawn(&holder_b, NULL);
    ref = obs_request(obs, h, T_HOLD, (act){0}, 20);
    long to = await(TP_TAG_TIMEOUT, TP_PID_NIL, 10);
    ck_assert_int_ge(to, 0);
    ck_assert_uint_eq(log_[to].ref, ref);
    assert_no_monitors(obs, h);
    // Neither exit afterwards fails anything.
    tp_system_exit(sys_, h, TP_REASON_KILL);
    tp_system_exit(sys_, t, TP_REASON_KILL);
    log_reset();
    tp_pid t2 = spawn(&talker_b, NULL);
    obs_request(obs, t2, T_DO, (act){.mode = M_REPLY}, 60000);
    ck_assert_int_ge(await(T_REPLY, t2, 10), 0);
    ck_assert_int_lt(find(TP_TAG_FAILED, TP_PID_NIL), 0);
}
END_TEST

START_TEST(test_call_to_dying_callee)
{
    tp_pid h = spawn(&holder_b, NULL);
    ck_assert_int_eq(tp_system_exit(sys_, h, TP_REASON_KILL), 0);
    tp_call_reply out;
    ck_assert_int_eq(tp_call(sys_, h, T_HOLD, NULL, 0, 60000, &out),
                     TP_ENOACTOR);
}
END_TEST

// ---- 3. ownership -----------------------------------------------------------

static uint16_t listen_port;
static _Atomic long listen_ok, listen_failed;

static int
acceptor_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)listen_port);
    tp_sock s;
    int rc = tp_sock_listen(ctx, addr, &s, NULL);
    atomic_fetch_add(rc == 0 ? &listen_ok : &listen_failed, 1);
    return rc;
}

static const tp_behaviour acceptor_b = {.name = "acceptor",
                                        .init = acceptor_init,
                                        .handle = holder_handle};

// Finds a free port by listening on port 0 from a short-lived actor.
static int
probe_port_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    tp_sock s;
    return tp_sock_listen(ctx, "127.0.0.1:0", &s, &listen_port);
}

static const tp_behaviour probe_port_b = {.name = "probe_port",
                                          .init = probe_port_init,
                                          .handle = holder_handle};

START_TEST(test_restarted_listener_listens_at_once)
{
    tp_pid p = spawn(&probe_port_b, NULL);
    ck_assert_uint_ne(listen_port, 0);
    // Its exit frees the port before it is announced: a monitor's DOWN
    // means the port can be taken.
    tp_pid obs = spawn(&obs_b, NULL);
    obs_watch(obs, p);
    tp_system_exit(sys_, p, TP_REASON_KILL);
    ck_assert_int_ge(await(TP_TAG_DOWN, p, 20), 0);

    long n = tpt_scaled(1000);
    tp_child_spec c = {.id = "acceptor",
                       .behaviour = &acceptor_b,
                       .opts = {.name = "acceptor"}};
    tp_sup_spec spec = {.flags = {.intensity = (int32_t)n * 2,
                                  .period_ms = 600000},
                        .children = &c,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys_, &spec, NULL, &sup), 0);
    for (long i = 0; i < n; i++) {
        tp_pid cur, next;
        ck_assert_int_eq(tp_whereis(sys_, "acceptor", &cur), 0);
        ck_assert_int_eq(tp_system_exit(sys_, cur, TP_REASON_KILL), 0);
        int rc = TP_ENOACTOR;
        for (int w = 0; w < 200000; w++) {
            rc = tp_whereis(sys_, "acceptor", &next);
            if (rc == 0 && !tp_pid_eq(next, cur))
                break;
            tpt_nap_us(50);
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(!tp_pid_eq(next, cur), "no restart after kill %ld", i);
    }
    // The last one may still be in init: wait for its listen.
    ck_assert(tpt_wait_ge(&listen_ok, n + 1, 20));
    ck_assert_int_eq(atomic_load(&listen_failed), 0);
    ck_assert_int_eq(atomic_load(&listen_ok), n + 1);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys_, sup, &st), 0); // still up
}
END_TEST

// The timers an actor set for itself are cancelled before its DOWN goes
// out: by then cancelling one finds nothing left to cancel.
static _Atomic uint64_t self_timer, other_timer;

static int
ticker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != T_DO)
        return TP_OK;
    tp_timer t1, t2;
    ck_assert_int_eq(tp_send_interval(ctx, tp_self(ctx), 3600000, 1, NULL, 0,
                                      &t1),
                     0);
    ck_assert_int_eq(tp_send_after(ctx, tp_self(ctx), 3600000, 1, NULL, 0,
                                   &t2),
                     0);
    atomic_store(&self_timer, t1);
    atomic_store(&other_timer, t2);
    return TP_STOP;
}

static const tp_behaviour ticker_b = {.name = "ticker",
                                      .handle = ticker_handle};

START_TEST(test_own_timers_gone_before_down)
{
    tp_pid obs = spawn(&obs_b, NULL), t = spawn(&ticker_b, NULL);
    obs_watch(obs, t);
    ck_assert_int_eq(tp_system_send(sys_, t, T_DO, NULL, 0), 0);
    ck_assert_int_ge(await(TP_TAG_DOWN, t, 20), 0);
    ck_assert_uint_ne(atomic_load(&self_timer), 0);
    ck_assert_int_eq(tp_timer_cancel(sys_, atomic_load(&self_timer)),
                     TP_ENOENT);
    ck_assert_int_eq(tp_timer_cancel(sys_, atomic_load(&other_timer)),
                     TP_ENOENT);
}
END_TEST

// A supervisor-like watcher gives a killed actor's name to a new actor as
// soon as the DOWN arrives, while two threads keep the registry busy. The
// kill drops the name on the killer's thread as the victim exits on its
// worker; whichever drop comes second must wait for the first, or the
// DOWN can overtake the name's release and the new spawn fail with
// TP_EEXIST.

static _Atomic long rewatched, rename_tries, rename_refused;
static _Atomic uint64_t renamed_pid;
static _Atomic int lookups_stop;

static int
renamer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == T_WATCH) {
        monitor_watched(ctx, msg);
        atomic_fetch_add(&rewatched, 1);
    } else if (msg->tag == TP_TAG_DOWN) {
        tp_spawn_opts o = {.name = "phoenix"};
        tp_pid p;
        if (tp_spawn(tp_ctx_system(ctx), &holder_b, NULL, &o, &p) == 0)
            atomic_store(&renamed_pid, p.v);
        else
            atomic_fetch_add(&rename_refused, 1);
        atomic_fetch_add(&rename_tries, 1);
    }
    return TP_OK;
}

static const tp_behaviour renamer_b = {.name = "renamer",
                                       .handle = renamer_handle};

static void *
lookups(void *arg)
{
    (void)arg;
    tp_pid p;
    while (!atomic_load(&lookups_stop))
        tp_whereis(sys_, "nobody", &p);
    return NULL;
}

START_TEST(test_killed_name_free_at_down)
{
    atomic_store(&rewatched, 0);
    atomic_store(&rename_tries, 0);
    atomic_store(&rename_refused, 0);
    atomic_store(&lookups_stop, 0);
    pthread_t look[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&look[i], NULL, lookups, NULL), 0);
    tp_pid r = spawn(&renamer_b, NULL), v;
    tp_spawn_opts o = {.name = "phoenix"};
    ck_assert_int_eq(tp_spawn(sys_, &holder_b, NULL, &o, &v), 0);
    long rounds = tpt_scaled(500);
    for (long i = 0; i < rounds; i++) {
        ck_assert_int_eq(tp_system_send(sys_, r, T_WATCH, &v, sizeof v), 0);
        ck_assert(tpt_wait_ge(&rewatched, i + 1, 20));
        ck_assert_int_eq(tp_system_exit(sys_, v, TP_REASON_KILL), 0);
        ck_assert(tpt_wait_ge(&rename_tries, i + 1, 20));
        long refused = atomic_load(&rename_refused);
        ck_assert_int_eq(refused, 0);
        v.v = atomic_load(&renamed_pid);
    }
    atomic_store(&lookups_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(look[i], NULL);
}
END_TEST

// ---- 4. the send contract ---------------------------------------------------

static _Atomic long collected;

static int
collector_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    while (!atomic_load(&gate))
        tpt_nap_us(200);
    atomic_fetch_add(&collected, 1);
    return TP_OK;
}

static const tp_behaviour collector_b = {.name = "collector",
                                         .handle = collector_handle};

static int
once_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    return tp_send(ctx, *(tp_pid *)arg, 1, "x", 1);
}

static int
once_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_STOP;
}

static const tp_behaviour once_b = {.name = "once",
                                    .init = once_init,
                                    .handle = once_handle};

// The first send of each of many fresh actors to one collector gets
// through, from init, however full the collector is.
START_TEST(test_first_sends_of_fresh_actors)
{
    atomic_store(&gate, 0);
    atomic_store(&collected, 0);
    tp_pid col;
    tp_spawn_opts o = {.mailbox_capacity = 16};
    ck_assert_int_eq(tp_spawn(sys_, &collector_b, NULL, &o, &col), 0);
    long n = tpt_scaled(100000);
    for (long i = 0; i < n; i++) {
        tp_pid p;
        int rc = tp_spawn(sys_, &once_b, &col, NULL, &p);
        ck_assert_msg(rc == 0, "spawn %ld: %s", i, tp_err_name(rc));
    }
    atomic_store(&gate, 1);
    ck_assert(tpt_wait_ge(&collected, n, 120));
}
END_TEST

// A callback that keeps sending to a full mailbox overshoots it by its own
// bound (a capacity's worth), then is told to stop.
static _Atomic long flood_ok, flood_rc;

static int
flooder_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    tp_pid to;
    memcpy(&to, msg->data, sizeof to);
    long ok = 0;
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)
        if ((rc = tp_send(ctx, to, 1, "x", 1)) == 0)
            ok++;
    atomic_store(&flood_ok, ok);
    atomic_store(&flood_rc, rc);
    return TP_STOP;
}

static const tp_behaviour flooder_b = {.name = "flooder",
                                       .handle = flooder_handle};

START_TEST(test_sender_bound_is_its_own)
{
    atomic_store(&gate, 0);
    atomic_store(&collected, 0);
    atomic_store(&flood_rc, 1);
    tp_pid col;
    tp_spawn_opts o = {.mailbox_capacity = 16};
    ck_assert_int_eq(tp_spawn(sys_, &collector_b, NULL, &o, &col), 0);
    tp_pid f = spawn(&flooder_b, NULL);
    ck_assert_int_eq(tp_system_send(sys_, f, 1, &col, sizeof col), 0);
    for (int i = 0; i < 20000 && atomic_load(&flood_rc) == 1; i++)
        tpt_nap_us(500);
    ck_assert_int_eq(atomic_load(&flood_rc), TP_EFULL);
    // The capacity, plus at most one message in the collector's hands,
    // plus the sender's own overshoot of one capacity.
    ck_assert_int_ge(atomic_load(&flood_ok), 32);
    ck_assert_int_le(atomic_load(&flood_ok), 33);
    atomic_store(&gate, 1);
    ck_assert(tpt_wait_ge(&collected, atomic_load(&flood_ok), 30));
}
END_TEST

// ---- 5. killing a busy actor ------------------------------------------------

static _Atomic long busy_in;

static int
busy_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != T_BUSY)
        return TP_OK;
    tp_pid obs;
    memcpy(&obs, msg->data, sizeof obs);
    atomic_fetch_add(&busy_in, 1);
    while (!atomic_load(&gate))
        tpt_nap_us(200);
    tp_send(ctx, obs, T_MSG, "late", 4); // discarded: it was killed
    return TP_OK;
}

static const tp_behaviour busy_b = {.name = "busy", .handle = busy_handle};

START_TEST(test_kill_busy_actor_unreachable_at_once)
{
    atomic_store(&gate, 0);
    atomic_store(&busy_in, 0);
    tp_pid obs = spawn(&obs_b, NULL), b, found;
    tp_spawn_opts o = {.name = "busy"};
    ck_assert_int_eq(tp_spawn(sys_, &busy_b, NULL, &o, &b), 0);
    obs_watch(obs, b);
    ck_assert_int_eq(tp_system_send(sys_, b, T_BUSY, &obs, sizeof obs), 0);
    ck_assert(tpt_wait_ge(&busy_in, 1, 20));
    ck_assert_int_eq(tp_whereis(sys_, "busy", &found), 0);
    ck_assert_int_eq(tp_system_exit(sys_, b, TP_REASON_KILL), 0);
    // At once, while its callback still runs.
    ck_assert_int_eq(tp_whereis(sys_, "busy", &found), TP_ENOACTOR);
    ck_assert_int_eq(tp_system_send(sys_, b, 1, NULL, 0), TP_ENOACTOR);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys_, b, &st), TP_ENOACTOR);
    // The name is free for someone else already.
    tp_pid other;
    ck_assert_int_eq(tp_spawn(sys_, &holder_b, NULL, &o, &other), 0);
    ck_assert_int_eq(tp_whereis(sys_, "busy", &found), 0);
    ck_assert_uint_eq(found.v, other.v);
    ck_assert_int_lt(find(TP_TAG_DOWN, b), 0); // announced only when done
    atomic_store(&gate, 1);
    long down = await(TP_TAG_DOWN, b, 20);
    ck_assert_int_ge(down, 0);
    ck_assert_int_eq(log_[down].reason, TP_REASON_KILLED);
    ck_assert_int_lt(find(T_MSG, TP_PID_NIL), 0); // what it sent after
}
END_TEST

Suite *
guarantees_suite(void)
{
    Suite *s = suite_create("guarantees");
    TCase *t = tcase_create("ordering");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_message_then_exit_in_order);
    tcase_add_test(t, test_reply_then_stop_in_order);
    tcase_add_test(t, test_down_passes_full_mailbox);
    suite_add_tcase(s, t);
    t = tcase_create("requests");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_request_to_dead_fails_noproc);
    tcase_add_test(t, test_request_fails_when_callee_killed);
    tcase_add_test(t, test_request_fails_when_callee_stops);
    tcase_add_test(t, test_request_leaves_no_monitor);
    tcase_add_test(t, test_call_to_dying_callee);
    suite_add_tcase(s, t);
    t = tcase_create("ownership");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 240);
    tcase_add_test(t, test_restarted_listener_listens_at_once);
    tcase_add_test(t, test_own_timers_gone_before_down);
    tcase_add_test(t, test_killed_name_free_at_down);
    suite_add_tcase(s, t);
    t = tcase_create("sends");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 240);
    tcase_add_test(t, test_first_sends_of_fresh_actors);
    tcase_add_test(t, test_sender_bound_is_its_own);
    suite_add_tcase(s, t);
    t = tcase_create("busy");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_kill_busy_actor_unreachable_at_once);
    suite_add_tcase(s, t);
    return s;
}
