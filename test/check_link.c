// SPDX-License-Identifier: MIT
// Links, monitors, exit signals and names: Erlang's semantics through the
// public API. Each test drives "probe" actors with command messages and
// watches what they record.
#include "tp_test.h"

#include <pthread.h>
#include <string.h>

enum {
    CMD_LINK = 1, // data: tp_pid
    CMD_UNLINK,   // data: tp_pid
    CMD_TRAP,     // data: int
    CMD_MONITOR,  // data: tp_pid
    CMD_DIE,      // data: int reason (via tp_stop_reason)
    CMD_EXIT,     // data: struct exit_cmd
    CMD_PING,     // records a ping
    CMD_FLUSH,    // waits for one more actor to exit, then demonitors
};

typedef struct exit_cmd {
    tp_pid to;
    int reason;
} exit_cmd;

#define NPROBES 8
static _Atomic long pings[NPROBES];
static _Atomic long exits_seen[NPROBES], downs_seen[NPROBES];
static _Atomic long last_exit_reason[NPROBES], last_down_reason[NPROBES];
static _Atomic long last_exit_linked[NPROBES];
static tp_pid last_exit_from[NPROBES], last_down_from[NPROBES];
static char last_text[NPROBES][TP_REASON_TEXT_MAX];
static _Atomic long died[NPROBES], died_reason[NPROBES];
static uint64_t refs[NPROBES];
static _Atomic long name_at_down = 12345; // tp_whereis("held") in a DOWN
static tp_system *the_sys;
static _Atomic long flushing; // CMD_FLUSH began

static void
reset(void)
{
    flushing = 0;
    for (int i = 0; i < NPROBES; i++) {
        pings[i] = exits_seen[i] = downs_seen[i] = died[i] = 0;
        last_exit_reason[i] = last_down_reason[i] = died_reason[i] = 12345;
        last_exit_linked[i] = -1;
        last_text[i][0] = '\0';
        refs[i] = 0;
    }
}

static int
probe_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(int *)state = (int)(intptr_t)arg;
    return 0;
}

static uint64_t exited_before;

static uint64_t
exited_now(tp_system *sys)
{
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    return st.exited;
}

static bool
one_more_exited(void *sys)
{
    return exited_now(sys) > exited_before;
}

static int
probe_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    int id = *(int *)state;
    tp_pid pid;
    switch (msg->tag) {
    case CMD_LINK:
        memcpy(&pid, msg->data, sizeof pid);
        ck_assert_int_eq(tp_link(ctx, pid), 0);
        return TP_OK;
    case CMD_UNLINK:
        memcpy(&pid, msg->data, sizeof pid);
        ck_assert_int_eq(tp_unlink(ctx, pid), 0);
        return TP_OK;
    case CMD_TRAP: {
        int on;
        memcpy(&on, msg->data, sizeof on);
        ck_assert_int_ge(tp_trap_exit(ctx, on), 0);
        return TP_OK;
    }
    case CMD_MONITOR:
        memcpy(&pid, msg->data, sizeof pid);
        ck_assert_int_eq(tp_monitor(ctx, pid, &refs[id]), 0);
        return TP_OK;
    case CMD_DIE: {
        int reason;
        memcpy(&reason, msg->data, sizeof reason);
        if (reason < 0)
            tp_fail(ctx, reason, "probe %d told to crash", id);
        tp_stop_reason(ctx, reason);
        return TP_OK;
    }
    case CMD_EXIT: {
        exit_cmd c;
        memcpy(&c, msg->data, sizeof c);
        ck_assert_int_eq(tp_exit(ctx, c.to, c.reason), 0);
        return TP_OK;
    }
    case CMD_PING:
        atomic_fetch_add(&pings[id], 1);
        return TP_OK;
    case CMD_FLUSH: {
        // The test kills the target while we are busy here, so its DOWN
        // is queued behind this message; demonitor must flush it. An
        // actor counts as exited once its DOWN went out. (Killed from
        // here, the target could wait in this worker's runnext slot.)
        atomic_fetch_add(&flushing, 1);
        ck_assert(tpt_wait_until(one_more_exited, tp_ctx_system(ctx), 20));
        ck_assert_int_eq(tp_demonitor(ctx, refs[id]), 0);
        ck_assert_int_eq(tp_send(ctx, tp_self(ctx), CMD_PING, NULL, 0), 0);
        return TP_OK;
    }
    case TP_TAG_EXIT: {
        const tp_exit_msg *e = msg->data;
        ck_assert_uint_eq(msg->size, sizeof *e);
        tp_pid held;
        atomic_store(&name_at_down,
                     tp_whereis(tp_ctx_system(ctx), "held", &held));
        last_exit_from[id] = e->from;
        memcpy(last_text[id], e->text, sizeof e->text);
        atomic_store(&last_exit_linked[id], e->linked);
        atomic_store(&last_exit_reason[id], e->reason);
        atomic_fetch_add(&exits_seen[id], 1);
        return TP_OK;
    }
    case TP_TAG_DOWN: {
        const tp_down_msg *d = msg->data;
        ck_assert_uint_eq(msg->size, sizeof *d);
        if (id != 5) // probe 5 holds many monitors and keeps no refs
            ck_assert_uint_eq(d->ref, refs[id]);
        last_down_from[id] = d->from;
        memcpy(last_text[id], d->text, sizeof d->text);
        atomic_store(&last_down_reason[id], d->reason);
        atomic_fetch_add(&downs_seen[id], 1);
        return TP_OK;
    }
    default:
        return TP_EINVAL;
    }
}

static void
probe_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    int id = *(int *)state;
    atomic_store(&died_reason[id], reason);
    atomic_fetch_add(&died[id], 1);
}

static const tp_behaviour probe = {.name = "probe",
                                   .state_size = sizeof(int),
                                   .init = probe_init,
                                   .handle = probe_handle,
                                   .terminate = probe_terminate};

static tp_pid
spawn_probe(int id)
{
    tp_pid p;
    ck_assert_int_eq(tp_spawn(the_sys, &probe, (void *)(intptr_t)id, NULL, &p),
                     0);
    return p;
}

static void
cmd(tp_pid to, uint32_t tag, const void *data, size_t size)
{
    ck_assert_int_eq(tp_system_send(the_sys, to, tag, data, size), 0);
}

static void
cmd_pid(tp_pid to, uint32_t tag, tp_pid arg)
{
    cmd(to, tag, &arg, sizeof arg);
}

static void
cmd_int(tp_pid to, uint32_t tag, int arg)
{
    cmd(to, tag, &arg, sizeof arg);
}

// Sends a ping and waits for it: everything sent before has been handled.
static void
sync_probe(tp_pid p, int id)
{
    long want = atomic_load(&pings[id]) + 1;
    cmd(p, CMD_PING, NULL, 0);
    ck_assert(tpt_wait_ge(&pings[id], want, 20));
}

static void
setup(void)
{
    reset();
    the_sys = tpt_system(2);
}

static void
teardown(void)
{
    tp_system_destroy(&the_sys);
}

START_TEST(test_link_crash_kills_linked)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1), c = spawn_probe(2);
    cmd_pid(a, CMD_LINK, b);
    cmd_pid(b, CMD_LINK, c); // a - b - c
    sync_probe(a, 0);
    sync_probe(b, 1);
    cmd_int(c, CMD_DIE, TP_EDECODE);
    ck_assert(tpt_wait_ge(&died[0], 1, 20));
    ck_assert(tpt_wait_ge(&died[1], 1, 20));
    ck_assert_int_eq(died_reason[2], TP_EDECODE);
    ck_assert_int_eq(died_reason[1], TP_EDECODE);
    ck_assert_int_eq(died_reason[0], TP_EDECODE);
}
END_TEST

START_TEST(test_trap_exit_gets_message_with_text)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1);
    cmd_int(a, CMD_TRAP, 1);
    cmd_pid(a, CMD_LINK, b);
    sync_probe(a, 0);
    cmd_int(b, CMD_DIE, TP_EDECODE);
    ck_assert(tpt_wait_ge(&exits_seen[0], 1, 20));
    ck_assert_int_eq(last_exit_reason[0], TP_EDECODE);
    ck_assert_int_eq(last_exit_linked[0], 1);
    ck_assert(tp_pid_eq(last_exit_from[0], b));
    ck_assert_str_eq(last_text[0], "probe 1 told to crash");
    sync_probe(a, 0);
    ck_assert_int_eq(died[0], 0);
}
END_TEST

START_TEST(test_normal_exit_does_not_kill)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1), c = spawn_probe(2);
    cmd_pid(a, CMD_LINK, b);
    cmd_int(c, CMD_TRAP, 1);
    cmd_pid(c, CMD_LINK, b);
    sync_probe(a, 0);
    sync_probe(c, 2);
    cmd_int(b, CMD_DIE, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&exits_seen[2], 1, 20));
    ck_assert_int_eq(last_exit_reason[2], TP_REASON_NORMAL);
    sync_probe(a, 0);
    ck_assert_int_eq(died[0], 0);
    // tp_exit with normal is ignored by an actor that does not trap.
    exit_cmd e = {a, TP_REASON_NORMAL};
    cmd(c, CMD_EXIT, &e, sizeof e);
    sync_probe(c, 2);
    sync_probe(a, 0);
    ck_assert_int_eq(died[0], 0);
}
END_TEST

START_TEST(test_unlink_stops_propagation)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1);
    cmd_pid(a, CMD_LINK, b);
    cmd_pid(a, CMD_UNLINK, b);
    sync_probe(a, 0);
    sync_probe(b, 1);
    cmd_int(b, CMD_DIE, TP_EINVAL);
    ck_assert(tpt_wait_ge(&died[1], 1, 20));
    sync_probe(a, 0);
    ck_assert_int_eq(died[0], 0);
}
END_TEST

START_TEST(test_kill_is_untrappable)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1), c = spawn_probe(2);
    cmd_int(a, CMD_TRAP, 1);
    cmd_int(c, CMD_TRAP, 1);
    cmd_pid(c, CMD_LINK, a);
    sync_probe(a, 0);
    sync_probe(c, 2);
    exit_cmd e = {a, TP_REASON_KILL};
    cmd(b, CMD_EXIT, &e, sizeof e);
    ck_assert(tpt_wait_ge(&died[0], 1, 20));
    ck_assert_int_eq(died_reason[0], TP_REASON_KILLED);
    ck_assert_int_eq(exits_seen[0], 0);
    // Linked actors see `killed`, which they can trap.
    ck_assert(tpt_wait_ge(&exits_seen[2], 1, 20));
    ck_assert_int_eq(last_exit_reason[2], TP_REASON_KILLED);
    // A trapped tp_exit with another reason is a message.
    e = (exit_cmd){c, TP_REASON_SHUTDOWN};
    cmd(b, CMD_EXIT, &e, sizeof e);
    ck_assert(tpt_wait_ge(&exits_seen[2], 2, 20));
    ck_assert_int_eq(last_exit_reason[2], TP_REASON_SHUTDOWN);
    ck_assert_int_eq(last_exit_linked[2], 0);
    ck_assert(tp_pid_eq(last_exit_from[2], b));
}
END_TEST

// Whether the pid in *arg no longer names a live actor.
static bool
pid_gone(void *arg)
{
    tp_actor_stats st;
    return tp_actor_stats_get(the_sys, *(tp_pid *)arg, &st) == TP_ENOACTOR;
}

START_TEST(test_system_exit_from_outside)
{
    tp_pid a = spawn_probe(0);
    // Values that are no reason are refused, and nothing is sent: 0, what
    // callbacks return, and the bases of the reason ranges.
    int bad[] = {0,
                 TP_STOP,
                 TP_IGNORE,
                 1000,
                 TP_REASON_KILLED + 1,
                 TP_REASON_SIGNAL,
                 TP_REASON_SIGNAL + 65};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(tp_system_exit(the_sys, a, bad[i]), TP_EINVAL);
    ck_assert_int_eq(tp_system_exit(the_sys, a, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&died[0], 1, 20));
    ck_assert_int_eq(died_reason[0], TP_REASON_SHUTDOWN);
    // `died` is counted in terminate, which runs before the actor leaves
    // the table: wait for that (a slow build makes the gap visible).
    ck_assert(tpt_wait_until(pid_gone, &a, 20));
    ck_assert_int_eq(tp_system_exit(the_sys, a, TP_REASON_SHUTDOWN),
                     TP_ENOACTOR);
    ck_assert_int_eq(tp_system_exit(NULL, a, 1), TP_EINVAL);
}
END_TEST

START_TEST(test_monitor_down_and_noproc)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1);
    cmd_pid(a, CMD_MONITOR, b);
    sync_probe(a, 0);
    cmd_int(b, CMD_DIE, TP_REASON_SHUTDOWN);
    ck_assert(tpt_wait_ge(&downs_seen[0], 1, 20));
    ck_assert_int_eq(last_down_reason[0], TP_REASON_SHUTDOWN);
    ck_assert(tp_pid_eq(last_down_from[0], b));
    ck_assert_int_eq(died[0], 0); // monitors never kill
    // b is gone now: a new monitor gets noproc at once.
    cmd_pid(a, CMD_MONITOR, b);
    ck_assert(tpt_wait_ge(&downs_seen[0], 2, 20));
    ck_assert_int_eq(last_down_reason[0], TP_REASON_NOPROC);
}
END_TEST

START_TEST(test_demonitor_flushes_queued_down)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1);
    cmd_pid(a, CMD_MONITOR, b);
    sync_probe(a, 0);
    exited_before = exited_now(the_sys);
    cmd(a, CMD_FLUSH, NULL, 0);
    ck_assert(tpt_wait_ge(&flushing, 1, 20));
    ck_assert_int_eq(tp_system_exit(the_sys, b, TP_REASON_KILL), 0);
    ck_assert(tpt_wait_ge(&pings[0], 2, 30));
    ck_assert(tpt_wait_ge(&died[1], 1, 20));
    sync_probe(a, 0);
    ck_assert_int_eq(downs_seen[0], 0);
}
END_TEST

// Signals travel in the system lane: a full user lane does not stop them.
static _Atomic int gate;
static _Atomic long gated_in;

static int
gated_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&gated_in, 1);
    while (!atomic_load(&gate))
        tpt_nap_us(200);
    return TP_OK;
}

static const tp_behaviour gated = {.name = "gated", .handle = gated_handle};

START_TEST(test_exit_signal_passes_full_mailbox)
{
    atomic_store(&gate, 0);
    atomic_store(&gated_in, 0);
    tp_pid g, m = spawn_probe(0);
    tp_spawn_opts o = {.mailbox_capacity = 4, .overflow = TP_OVERFLOW_REJECT};
    ck_assert_int_eq(tp_spawn(the_sys, &gated, NULL, &o, &g), 0);
    cmd_pid(m, CMD_MONITOR, g);
    sync_probe(m, 0);
    ck_assert_int_eq(tp_system_send(the_sys, g, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gated_in, 1, 20));
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = tp_system_send(the_sys, g, 1, NULL, 0);
    ck_assert_int_eq(rc, TP_EFULL);
    ck_assert_int_eq(tp_system_exit(the_sys, g, TP_REASON_SHUTDOWN), 0);
    atomic_store(&gate, 1);
    ck_assert(tpt_wait_ge(&downs_seen[0], 1, 20));
    ck_assert_int_eq(last_down_reason[0], TP_REASON_SHUTDOWN);
    ck_assert_int_eq(gated_in, 1); // died before the queued messages
}
END_TEST

START_TEST(test_link_to_dead_and_bad_args)
{
    tp_pid a = spawn_probe(0);
    cmd_int(a, CMD_DIE, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&died[0], 1, 20));
    ck_assert_int_eq(tp_link(NULL, a), TP_EINVAL);
    ck_assert_int_eq(tp_monitor(NULL, a, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_trap_exit(NULL, true), TP_EINVAL);
    ck_assert_int_eq(tp_stop_reason(NULL, 1), TP_EINVAL);
    ck_assert_int_eq(tp_demonitor(NULL, 1), TP_EINVAL);
    ck_assert_int_eq(tp_exit(NULL, a, 1), TP_EINVAL);
}
END_TEST

// A child linked at spawn cannot escape the link, even by dying at once.
static _Atomic long parent_exits, parent_reason, parent_others;

static int
dies_at_once_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    return tp_send(ctx, tp_self(ctx), 1, NULL, 0);
}

static int
dies_at_once_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_ECRASH;
}

static const tp_behaviour dies_at_once = {.name = "short_lived",
                                          .init = dies_at_once_init,
                                          .handle = dies_at_once_handle};

static int
refuses_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx, (void)state, (void)arg;
    return TP_EDECODE;
}

static const tp_behaviour refuses = {
    .name = "refuses", .init = refuses_init, .handle = dies_at_once_handle};

static int
parent_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    tp_trap_exit(ctx, true);
    tp_spawn_opts o = {.link = true};
    ck_assert_int_eq(tp_spawn(tp_ctx_system(ctx), &refuses, NULL, &o, NULL),
                     TP_EDECODE);
    return tp_spawn(tp_ctx_system(ctx), &dies_at_once, NULL, &o, NULL);
}

static int
parent_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == TP_TAG_EXIT) {
        atomic_store(&parent_reason, ((const tp_exit_msg *)msg->data)->reason);
        atomic_fetch_add(&parent_exits, 1);
    } else {
        atomic_fetch_add(&parent_others, 1);
    }
    return TP_OK;
}

static const tp_behaviour parent = {
    .name = "parent", .init = parent_init, .handle = parent_handle};

START_TEST(test_spawn_link)
{
    atomic_store(&parent_exits, 0);
    atomic_store(&parent_others, 0);
    tp_pid p;
    ck_assert_int_eq(tp_spawn(the_sys, &parent, NULL, NULL, &p), 0);
    ck_assert(tpt_wait_ge(&parent_exits, 1, 20));
    ck_assert_int_eq(parent_reason, TP_ECRASH);
    // The child whose init failed sent nothing: anything it sent would
    // have been queued while the parent's init ran, ahead of this ping.
    ck_assert_int_eq(tp_system_send(the_sys, p, CMD_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&parent_others, 1, 20));
    ck_assert_int_eq(parent_exits, 1);
    // Outside an actor there is nobody to link to.
    tp_spawn_opts o = {.link = true};
    ck_assert_int_eq(tp_spawn(the_sys, &refuses, NULL, &o, NULL), TP_EINVAL);
}
END_TEST

// An init that links and then fails leaves its links told as of any exit:
// with init's error, which kills a linked actor that does not trap, but
// with normal when init declines (TP_IGNORE) or stops, as OTP's ignore and
// {stop, normal} exit normally.
typedef struct link_then {
    tp_pid to;
    int rc; // what init returns; TP_STOP here means tp_stop, then 0
} link_then;

static int
link_then_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    const link_then *l = arg;
    ck_assert_int_eq(tp_link(ctx, l->to), 0);
    if (l->rc == TP_STOP)
        return tp_stop(ctx);
    return l->rc;
}

// Has probe 1 link to it while its init runs (its pid is known from then
// on), then declines.
static int
linked_late_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    tp_pid me = tp_self(ctx), probe1 = *(const tp_pid *)arg;
    long want = atomic_load(&pings[1]) + 1;
    ck_assert_int_eq(tp_send(ctx, probe1, CMD_LINK, &me, sizeof me), 0);
    ck_assert_int_eq(tp_send(ctx, probe1, CMD_PING, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&pings[1], want, 20));
    return TP_IGNORE;
}

static const tp_behaviour linked_late = {.name = "linked_late",
                                         .init = linked_late_init,
                                         .handle = dies_at_once_handle};

static const tp_behaviour links_then_fails = {
    .name = "links_then_fails",
    .init = link_then_init,
    .handle = dies_at_once_handle};

START_TEST(test_failed_init_tells_its_links)
{
    tp_pid quiet = spawn_probe(0), trapper = spawn_probe(1);
    cmd_int(trapper, CMD_TRAP, 1);
    sync_probe(trapper, 1);
    static const struct {
        int rc, spawn_rc, told;
    } cases[] = {{TP_IGNORE, TP_EIGNORED, TP_REASON_NORMAL},
                 {TP_STOP, TP_EINIT, TP_REASON_NORMAL},
                 {7, TP_EINIT, TP_EINIT}, // no value init may return
                 {TP_EDECODE, TP_EDECODE, TP_EDECODE}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        link_then t = {trapper, cases[i].rc};
        ck_assert_int_eq(tp_spawn(the_sys, &links_then_fails, &t, NULL, NULL),
                         cases[i].spawn_rc);
        ck_assert(tpt_wait_ge(&exits_seen[1], (long)i + 1, 20));
        ck_assert_int_eq(last_exit_reason[1], cases[i].told);
        if (cases[i].told != TP_REASON_NORMAL)
            continue;
        t.to = quiet;
        ck_assert_int_eq(tp_spawn(the_sys, &links_then_fails, &t, NULL, NULL),
                         cases[i].spawn_rc);
        sync_probe(quiet, 0); // alive: a normal exit signal is ignored
    }
    ck_assert_int_eq(died[0], 0);
    // An actor that linked to it from outside while init ran is told the
    // same.
    long seen = atomic_load(&exits_seen[1]);
    ck_assert_int_eq(tp_spawn(the_sys, &linked_late, &trapper, NULL, NULL),
                     TP_EIGNORED);
    ck_assert(tpt_wait_ge(&exits_seen[1], seen + 1, 20));
    ck_assert_int_eq(last_exit_reason[1], TP_REASON_NORMAL);
    link_then t = {quiet, TP_EDECODE};
    ck_assert_int_eq(tp_spawn(the_sys, &links_then_fails, &t, NULL, NULL),
                     TP_EDECODE);
    ck_assert(tpt_wait_ge(&died[0], 1, 20));
    ck_assert_int_eq(died_reason[0], TP_EDECODE);
}
END_TEST

START_TEST(test_names)
{
    tp_pid a = spawn_probe(0), b = spawn_probe(1), w;
    ck_assert_int_eq(tp_register(the_sys, "alpha", a), 0);
    ck_assert_int_eq(tp_register(the_sys, "alpha", b), TP_EEXIST);
    ck_assert_int_eq(tp_register(the_sys, "other", a), TP_EEXIST);
    ck_assert_int_eq(tp_register(the_sys, "", b), TP_EINVAL);
    ck_assert_int_eq(tp_register(NULL, "x", b), TP_EINVAL);
    ck_assert_int_eq(tp_whereis(the_sys, "alpha", &w), 0);
    ck_assert(tp_pid_eq(w, a));
    ck_assert_int_eq(tp_system_send_name(the_sys, "alpha", CMD_PING, NULL, 0),
                     0);
    ck_assert(tpt_wait_ge(&pings[0], 1, 20));
    ck_assert_int_eq(tp_system_send_name(the_sys, "nobody", CMD_PING, NULL, 0),
                     TP_ENOACTOR);
    ck_assert_int_eq(tp_unregister(the_sys, "alpha"), 0);
    ck_assert_int_eq(tp_unregister(the_sys, "alpha"), TP_ENOACTOR);
    ck_assert_int_eq(tp_whereis(the_sys, "alpha", &w), TP_ENOACTOR);
    // Released at death.
    ck_assert_int_eq(tp_register(the_sys, "beta", b), 0);
    cmd_int(b, CMD_DIE, TP_REASON_NORMAL);
    ck_assert(tpt_wait_ge(&died[1], 1, 20));
    ck_assert_int_eq(tp_whereis(the_sys, "beta", &w), TP_ENOACTOR);
    ck_assert_int_eq(tp_register(the_sys, "beta", a), 0);
    // died[1] is set by its terminate callback, before the actor is gone:
    // wait until it is, then a name cannot be given to it.
    tp_actor_stats bst;
    for (int i = 0; i < 20000; i++) {
        if (tp_actor_stats_get(the_sys, b, &bst) == TP_ENOACTOR)
            break;
        tpt_nap_us(200);
    }
    ck_assert_int_eq(tp_register(the_sys, "gamma", b), TP_ENOACTOR);
    // Released before the exit is announced: whoever hears of it can
    // take the name at once.
    // The linked trapping probe d hears first; 3,000 monitors from probe
    // 5 keep the dying actor busy announcing after that.
    tp_pid c = spawn_probe(2), d = spawn_probe(3), e = spawn_probe(5);
    ck_assert_int_eq(tp_register(the_sys, "held", c), 0);
    cmd_int(d, CMD_TRAP, 1);
    cmd_pid(d, CMD_LINK, c);
    sync_probe(d, 3);
    for (int i = 0; i < 3000; i++)
        cmd_pid(e, CMD_MONITOR, c);
    sync_probe(e, 5);
    cmd_int(c, CMD_DIE, TP_EINVAL);
    ck_assert(tpt_wait_ge(&exits_seen[3], 1, 20));
    ck_assert_int_eq(name_at_down, TP_ENOACTOR);
    ck_assert(tpt_wait_ge(&downs_seen[5], 3000, 20));
}
END_TEST

// Nil pids and zero refs are never keys of an actor's tables: unlinking
// nil or demonitoring 0 again and again must not wear the table out (it
// once turned slots into tombstones until a lookup looped forever).
static _Atomic long marker_ok;

static int
marker_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    tp_pid other = *(const tp_pid *)arg;
    if (tp_link(ctx, other) != 0)
        return TP_EINVAL;
    for (int i = 0; i < 64; i++)
        if (tp_unlink(ctx, TP_PID_NIL) != 0 || tp_demonitor(ctx, 0) != 0)
            return TP_EINVAL;
    if (tp_unlink(ctx, other) != 0 || tp_link(ctx, other) != 0)
        return TP_EINVAL;
    atomic_store(&marker_ok, 1);
    return 0;
}

static int
marker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK;
}

static const tp_behaviour marker_b = {
    .name = "marker", .init = marker_init, .handle = marker_handle};

START_TEST(test_marker_keys)
{
    tp_pid other = spawn_probe(0), m;
    marker_ok = 0;
    ck_assert_int_eq(tp_spawn(the_sys, &marker_b, &other, NULL, &m), 0);
    ck_assert_int_eq(atomic_load(&marker_ok), 1);
}
END_TEST

Suite *
link_suite(void)
{
    Suite *s = suite_create("link");
    TCase *tc = tcase_create("signals");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_link_crash_kills_linked);
    tcase_add_test(tc, test_trap_exit_gets_message_with_text);
    tcase_add_test(tc, test_normal_exit_does_not_kill);
    tcase_add_test(tc, test_unlink_stops_propagation);
    tcase_add_test(tc, test_kill_is_untrappable);
    tcase_add_test(tc, test_system_exit_from_outside);
    tcase_add_test(tc, test_monitor_down_and_noproc);
    tcase_add_test(tc, test_demonitor_flushes_queued_down);
    tcase_add_test(tc, test_exit_signal_passes_full_mailbox);
    tcase_add_test(tc, test_link_to_dead_and_bad_args);
    tcase_add_test(tc, test_spawn_link);
    tcase_add_test(tc, test_failed_init_tells_its_links);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_marker_keys);
    suite_add_tcase(s, tc);
    return s;
}
