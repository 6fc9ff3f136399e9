// SPDX-License-Identifier: MIT
// Names and spawning on other nodes through the public API, between nodes
// in this process: tp_whereis_at and tp_spawn_at answered as messages,
// their blocking forms, and every way a request ends without a pid (no
// such name or behaviour, a failing init, a timeout, a lost node).
#include "tp_test.h"
#include "tp_node_test.h"

#include <troupe/msgpack.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_PING 1
#define TAG_PONG 2

static _Atomic long pongs, last_value;

// ---- an echo behaviour, spawnable: init takes a number (msgpack) ---------

static int
echo_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    const tp_spawn_arg *sa = arg;
    long v = 0;
    if (sa != NULL && sa->size > 0) {
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, sa->data, sa->size, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            v = (long)u.data.via.u64;
        msgpack_unpacked_destroy(&u);
    }
    if (v == 666)
        return TP_EINVAL; // a failing init, on request
    *(long *)state = v;
    return 0;
}

static int
echo_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    if (msg->tag == TAG_PING)
        return tp_send(ctx, msg->from, TAG_PONG, state, sizeof(long));
    return TP_OK;
}

static const tp_behaviour echo_b = {.name = "echo",
                                    .state_size = sizeof(long),
                                    .init = echo_init,
                                    .handle = echo_handle};

// ---- an asker: asks in init, records the answer, pings what it got -------

typedef struct ask_arg {
    const char *node, *name;
    bool spawn;
    long value;
    int timeout_ms;
} ask_arg;

static _Atomic int answered, answer_error;
static _Atomic uint64_t answer_ref, asked_ref;
static _Atomic uint64_t answer_pid;

typedef struct asker {
    uint64_t ref;
} asker;

static int
asker_init(tp_ctx *ctx, void *state, void *arg)
{
    ask_arg *a = arg;
    asker *s = state;
    if (!a->spawn)
        return tp_whereis_at(ctx, a->name, a->node, a->timeout_ms, &s->ref);
    uint8_t buf[16];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, (uint64_t)a->value);
    memcpy(buf, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    int rc =
        tp_spawn_at(ctx, a->node, a->name, buf, n, a->timeout_ms, &s->ref);
    atomic_store(&asked_ref, s->ref);
    return rc;
}

static int
asker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    asker *s = state;
    if (msg->tag == TP_TAG_WHEREIS || msg->tag == TP_TAG_SPAWNED) {
        ck_assert_uint_eq(msg->size, sizeof(tp_remote_answer));
        const tp_remote_answer *ans = msg->data;
        atomic_store(&answer_ref, msg->ref);
        atomic_store(&answer_error, ans->error);
        atomic_store(&answer_pid, ans->pid.v);
        ck_assert_uint_eq(msg->ref, s->ref);
        atomic_store(&answered, 1);
        if (ans->error == 0)
            return tp_send(ctx, ans->pid, TAG_PING, NULL, 0);
        return TP_OK;
    }
    if (msg->tag == TAG_PONG) {
        atomic_store(&last_value, *(const long *)msg->data);
        atomic_fetch_add(&pongs, 1);
    }
    return TP_OK;
}

static const tp_behaviour asker_b = {.name = "asker",
                                     .state_size = sizeof(asker),
                                     .init = asker_init,
                                     .handle = asker_handle};

static void
reset(void)
{
    atomic_store(&answered, 0);
    atomic_store(&answer_error, 1);
    atomic_store(&pongs, 0);
    atomic_store(&last_value, -1);
}

static bool
got_answer(void *arg)
{
    (void)arg;
    return atomic_load(&answered) != 0;
}

static bool
got_pong(void *arg)
{
    (void)arg;
    return atomic_load(&pongs) > 0;
}

static tp_system *s[2];

static void
two_nodes(void)
{
    tpn_setup();
    s[0] = tpn_local("qa", NULL);
    s[1] = tpn_local("qb", NULL);
    ck_assert_int_eq(tp_node_connect(s[0], tp_node_name(s[1]), 5000), 0);
}

static void
two_nodes_down(void)
{
    for (int i = 2; i-- > 0;)
        if (s[i] != NULL)
            ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
    tpn_teardown();
}

START_TEST(whereis_at_finds_a_remote_name)
{
    ck_assert_int_eq(
        tp_spawn(s[1], &echo_b, NULL, &(tp_spawn_opts){.name = "kv"}, NULL),
        0);
    reset();
    ask_arg a = {.node = tp_node_name(s[1]), .name = "kv", .timeout_ms = 5000};
    ck_assert_int_eq(tp_spawn(s[0], &asker_b, &a, NULL, NULL), 0);
    ck_assert(tpt_wait_until(got_answer, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&answer_error), 0);
    ck_assert_uint_ne(tp_pid_node((tp_pid){atomic_load(&answer_pid)}), 0);
    // The pid it got reaches the actor: it answers the ping.
    ck_assert(tpt_wait_until(got_pong, NULL, 10.0));
    // No such name there.
    reset();
    ask_arg b = {.node = tp_node_name(s[1]), .name = "nope", .timeout_ms = -1};
    ck_assert_int_eq(tp_spawn(s[0], &asker_b, &b, NULL, NULL), 0);
    ck_assert(tpt_wait_until(got_answer, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&answer_error), TP_ENOACTOR);
    // Blocking, from outside: remote, missing, and this node's own name.
    tp_pid pid, local;
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "kv", tp_node_name(s[1]), 5000, &pid), 0);
    ck_assert_uint_ne(tp_pid_node(pid), 0);
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "nope", tp_node_name(s[1]), 5000, &pid),
        TP_ENOACTOR);
    ck_assert_int_eq(tp_whereis(s[1], "kv", &local), 0);
    ck_assert_int_eq(
        tp_system_whereis_at(s[1], "kv", tp_node_name(s[1]), 5000, &pid), 0);
    ck_assert(tp_pid_eq(pid, local));
}
END_TEST

START_TEST(spawn_at_starts_a_remote_actor)
{
    ck_assert_int_eq(tp_spawnable(s[1], "echo", &echo_b), 0);
    ck_assert_int_eq(tp_spawnable(s[1], "echo", &echo_b), TP_EEXIST);
    reset();
    ask_arg a = {.node = tp_node_name(s[1]),
                 .name = "echo",
                 .spawn = true,
                 .value = 42,
                 .timeout_ms = 5000};
    ck_assert_int_eq(tp_spawn(s[0], &asker_b, &a, NULL, NULL), 0);
    ck_assert(tpt_wait_until(got_answer, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&answer_error), 0);
    ck_assert_uint_eq(atomic_load(&answer_ref), atomic_load(&asked_ref));
    // It runs on node b, with the argument a sent.
    ck_assert(tpt_wait_until(got_pong, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&last_value), 42);
    // A failing init: its code comes back.
    reset();
    a.value = 666;
    ck_assert_int_eq(tp_spawn(s[0], &asker_b, &a, NULL, NULL), 0);
    ck_assert(tpt_wait_until(got_answer, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&answer_error), TP_EINVAL);
    // Blocking forms: a spawn, an unknown behaviour, a withdrawn one.
    tp_pid pid;
    uint8_t seven = 7; // msgpack positive fixint 7
    ck_assert_int_eq(tp_system_spawn_at(s[0], tp_node_name(s[1]), "echo",
                                        &seven, 1, 5000, &pid),
                     0);
    ck_assert_uint_ne(tp_pid_node(pid), 0);
    ck_assert_int_eq(tp_system_spawn_at(s[0], tp_node_name(s[1]), "nope", NULL,
                                        0, 5000, &pid),
                     TP_ENOENT);
    ck_assert_int_eq(tp_spawnable_remove(s[1], "echo"), 0);
    ck_assert_int_eq(tp_spawnable_remove(s[1], "echo"), TP_ENOENT);
    ck_assert_int_eq(tp_system_spawn_at(s[0], tp_node_name(s[1]), "echo", NULL,
                                        0, 5000, &pid),
                     TP_ENOENT);
    // Spawning on this node itself goes through the same table.
    ck_assert_int_eq(tp_spawnable(s[0], "here", &echo_b), 0);
    ck_assert_int_eq(tp_system_spawn_at(s[0], tp_node_name(s[0]), "here", NULL,
                                        0, 5000, &pid),
                     0);
    ck_assert_uint_eq(tp_pid_node(pid), 0);
}
END_TEST

START_TEST(lost_node_and_timeout_end_a_request)
{
    // Node b's service is gone: a's request waits, until the node is lost.
    tp_pid svc;
    ck_assert_int_eq(tp_whereis(s[1], "troupe.remote", &svc), 0);
    ck_assert_int_eq(tp_system_exit(s[1], svc, TP_REASON_KILL), 0);
    for (int i = 0; i < 10000 && tp_whereis(s[1], "troupe.remote", &svc) == 0;
         i++)
        tpt_nap_us(500);
    reset();
    ask_arg a = {.node = tp_node_name(s[1]), .name = "kv", .timeout_ms = -1};
    ck_assert_int_eq(tp_spawn(s[0], &asker_b, &a, NULL, NULL), 0);
    // The request crossed before the disconnection.
    tp_peer_info pi;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tp_node_peers(s[0], &pi, 1), 1);
        if (pi.sent >= 1 && pi.queued == 0)
            break;
        tpt_nap_us(500);
    }
    ck_assert_int_eq(tp_node_disconnect(s[0], tp_node_name(s[1])), 0);
    ck_assert(tpt_wait_until(got_answer, NULL, 10.0));
    ck_assert_int_eq(atomic_load(&answer_error), TP_ENOTCONN);
    // Connected again, a timeout ends the wait for the silent service.
    ck_assert_int_eq(tp_node_connect(s[0], tp_node_name(s[1]), 5000), 0);
    tp_pid pid;
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "kv", tp_node_name(s[1]), 200, &pid),
        TP_ETIMEDOUT);
}
END_TEST

static int
blocking_inside_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    tp_pid pid;
    tp_system *sys = tp_ctx_system(ctx);
    ck_assert_int_eq(
        tp_system_whereis_at(sys, "kv", tp_node_name(sys), 100, &pid),
        TP_EPERM);
    ck_assert_int_eq(tp_whereis_at(ctx, "kv", "bad node", 100, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_whereis_at(ctx, "", tp_node_name(sys), 100, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_whereis_at(ctx, "kv", tp_node_name(sys), -2, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(
        tp_spawn_at(ctx, tp_node_name(sys), "x", NULL, 3, 100, NULL),
        TP_EINVAL);
    return TP_IGNORE;
}

static const tp_behaviour checker_b = {
    .name = "checker", .init = blocking_inside_init, .handle = echo_handle};

START_TEST(bad_arguments)
{
    tp_pid pid;
    ck_assert_int_eq(
        tp_system_whereis_at(NULL, "kv", tp_node_name(s[1]), 100, &pid),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "kv", tp_node_name(s[1]), 100, NULL),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], NULL, tp_node_name(s[1]), 100, &pid),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "kv", "nobody@nowhere", 100, &pid),
        TP_EINVAL);
    ck_assert_int_eq(tp_spawn(s[0], &checker_b, NULL, NULL, NULL),
                     TP_EIGNORED);
    ck_assert_int_eq(tp_spawnable(NULL, "x", &echo_b), TP_EINVAL);
    ck_assert_int_eq(tp_spawnable(s[0], "", &echo_b), TP_EINVAL);
    ck_assert_int_eq(tp_spawnable(s[0], "x", NULL), TP_EINVAL);
    ck_assert_int_eq(tp_spawnable_remove(s[0], NULL), TP_EINVAL);
    // A system that is not a node asks nobody.
    tp_system *plain = tpt_system(1);
    ck_assert_int_eq(
        tp_system_whereis_at(plain, "kv", tp_node_name(s[1]), 100, &pid),
        TP_EINVAL);
    ck_assert_int_eq(tp_system_destroy(&plain), 0);
}
END_TEST

// ---- a supervisor whose child runs on the other node ---------------------

static _Atomic long rw_started, rw_alive;
static _Atomic uint64_t rw_last;

static int
rw_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    atomic_store(&rw_last, tp_self(ctx).v);
    atomic_fetch_add(&rw_started, 1);
    atomic_fetch_add(&rw_alive, 1);
    return 0;
}

static void
rw_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)state;
    (void)reason;
    atomic_fetch_sub(&rw_alive, 1);
}

static const tp_behaviour rw_b = {.name = "rworker",
                                  .init = rw_init,
                                  .handle = echo_handle,
                                  .terminate = rw_terminate};

static bool
alive_is(void *arg)
{
    return atomic_load(&rw_alive) == (long)(intptr_t)arg;
}

static bool
started_ge(void *arg)
{
    return atomic_load(&rw_started) >= (long)(intptr_t)arg;
}

static bool
gone(void *arg)
{
    tp_actor_stats st;
    return tp_actor_stats_get(s[0], *(tp_pid *)arg, &st) == TP_ENOACTOR;
}

// ---- requests by name ------------------------------------------------------

enum { TAG_ASK = 10, TAG_ASK_DIE, TAG_ASK_IGNORE, TAG_ANSWER, RQ_GO };

// What the requester is told to do: one request by name.
typedef struct rq_cmd {
    char node[TP_NODE_NAME_MAX];
    char name[32];
    uint32_t tag;
    int timeout_ms;
    bool then; // through tp_request_name_at_then
} rq_cmd;

#define RQ_MAX 16
typedef struct rq_out {
    uint64_t ref;
    uint32_t tag;
    int reason;    // TP_TAG_FAILED's
    uint64_t from; // TP_TAG_FAILED's tp_down_msg.from
    long value;    // the reply's
    bool via_then;
} rq_out;

static rq_out rq_outs[RQ_MAX];
static uint64_t rq_refs[RQ_MAX];
static _Atomic long rq_answers, rq_asked, rq_call_rc;

static void
rq_record(const tp_msg *msg, bool via_then)
{
    long i = atomic_load(&rq_answers);
    if (i >= RQ_MAX)
        return;
    rq_out *o = &rq_outs[i];
    o->ref = msg->ref;
    o->tag = msg->tag;
    o->via_then = via_then;
    if (msg->tag == TP_TAG_FAILED) {
        const tp_down_msg *d = msg->data;
        o->reason = d->reason;
        o->from = d->from.v;
    } else if (msg->tag == TAG_ANSWER && msg->size == sizeof(long)) {
        memcpy(&o->value, msg->data, sizeof(long));
    }
    atomic_store(&rq_answers, i + 1);
}

static int
rq_then(tp_ctx *ctx, void *state, const tp_msg *answer, void *arg)
{
    (void)ctx, (void)state;
    ck_assert_ptr_eq(arg, rq_outs);
    rq_record(answer, true);
    return TP_OK;
}

static int
requester_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == RQ_GO) {
        const rq_cmd *c = msg->data;
        long i = atomic_load(&rq_asked);
        long v = 7;
        int rc =
            c->then ? tp_request_name_at_then(ctx, c->name, c->node, c->tag,
                                              &v, sizeof v, c->timeout_ms,
                                              rq_then, rq_outs, &rq_refs[i])
                    : tp_request_name_at(ctx, c->name, c->node, c->tag, &v,
                                         sizeof v, c->timeout_ms, &rq_refs[i]);
        atomic_store(&rq_call_rc, rc);
        atomic_store(&rq_asked, i + 1);
        return TP_OK;
    }
    rq_record(msg, false);
    return TP_OK;
}

static const tp_behaviour requester_b = {.name = "requester",
                                         .handle = requester_handle};

static int
rserver_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    long v = 42;
    switch (msg->tag) {
    case TAG_ASK:
        if (msg->size != sizeof v || *(const long *)msg->data != 7)
            v = -1; // the request's data did not come through
        return tp_reply(ctx, TAG_ANSWER, &v, sizeof v);
    case TAG_ASK_DIE:
        return TP_ECRASH; // crashes without answering
    default:
        return TP_OK; // TAG_ASK_IGNORE: never answered
    }
}

static const tp_behaviour rserver_b = {.name = "rserver",
                                       .handle = rserver_handle};

static tp_pid requester;

// Has the requester ask `name` on `node` with `tag`, and waits for the
// answer; returns it.
static rq_out
ask_by_name(const char *node, const char *name, uint32_t tag, int timeout_ms,
            bool then)
{
    rq_cmd c = {.tag = tag, .timeout_ms = timeout_ms, .then = then};
    snprintf(c.node, sizeof c.node, "%s", node);
    snprintf(c.name, sizeof c.name, "%s", name);
    long n = atomic_load(&rq_answers), asked = atomic_load(&rq_asked);
    ck_assert_int_eq(tp_system_send(s[0], requester, RQ_GO, &c, sizeof c), 0);
    ck_assert(tpt_wait_ge(&rq_asked, asked + 1, 10.0));
    ck_assert_int_eq(atomic_load(&rq_call_rc), 0);
    ck_assert(tpt_wait_ge(&rq_answers, n + 1, 20.0));
    rq_out o = rq_outs[n];
    ck_assert_uint_eq(o.ref, rq_refs[asked]);
    ck_assert_int_eq(o.via_then, then);
    return o;
}

START_TEST(requests_by_name_get_exactly_one_answer)
{
    atomic_store(&rq_answers, 0);
    atomic_store(&rq_asked, 0);
    ck_assert_int_eq(tp_spawn(s[0], &requester_b, NULL, NULL, &requester), 0);
    tp_pid server, here;
    ck_assert_int_eq(tp_spawn(s[1], &rserver_b, NULL,
                              &(tp_spawn_opts){.name = "srv"}, &server),
                     0);
    ck_assert_int_eq(tp_spawn(s[0], &rserver_b, NULL,
                              &(tp_spawn_opts){.name = "srv"}, &here),
                     0);
    const char *b = tp_node_name(s[1]), *a = tp_node_name(s[0]);
    // Answered, on the other node and on this one, to handle or to a
    // continuation.
    // (1 s timeouts: none may follow its answer, as the end checks.)
    rq_out o = ask_by_name(b, "srv", TAG_ASK, 1000, false);
    ck_assert_uint_eq(o.tag, TAG_ANSWER);
    ck_assert_int_eq(o.value, 42);
    o = ask_by_name(a, "srv", TAG_ASK, 1000, false);
    ck_assert_uint_eq(o.tag, TAG_ANSWER);
    o = ask_by_name(b, "srv", TAG_ASK, 1000, true);
    ck_assert_uint_eq(o.tag, TAG_ANSWER);
    ck_assert_int_eq(o.value, 42);
    // No such name there: told at once (noproc, from nil), not at the
    // timeout.
    o = ask_by_name(b, "nobody", TAG_ASK, 1000, false);
    ck_assert_uint_eq(o.tag, TP_TAG_FAILED);
    ck_assert_int_eq(o.reason, TP_REASON_NOPROC);
    ck_assert_uint_eq(o.from, 0);
    o = ask_by_name(a, "nobody", TAG_ASK, 1000, true);
    ck_assert_uint_eq(o.tag, TP_TAG_FAILED);
    ck_assert_int_eq(o.reason, TP_REASON_NOPROC);
    // Never answered: the timeout.
    o = ask_by_name(b, "srv", TAG_ASK_IGNORE, 200, false);
    ck_assert_uint_eq(o.tag, TP_TAG_TIMEOUT);
    // The callee dies before answering: its reason, from its pid.
    tp_pid remote_srv;
    ck_assert_int_eq(tp_system_whereis_at(s[0], "srv", b, 5000, &remote_srv),
                     0);
    o = ask_by_name(b, "srv", TAG_ASK_DIE, 1000, false);
    ck_assert_uint_eq(o.tag, TP_TAG_FAILED);
    ck_assert_int_eq(o.reason, TP_ECRASH);
    ck_assert_uint_eq(o.from, remote_srv.v);
    // Its node is lost while a request waits: noconnection.
    ck_assert_int_eq(tp_spawn(s[1], &rserver_b, NULL,
                              &(tp_spawn_opts){.name = "srv"}, &server),
                     0);
    rq_cmd c = {.tag = TAG_ASK_IGNORE, .timeout_ms = -1};
    snprintf(c.node, sizeof c.node, "%s", b);
    snprintf(c.name, sizeof c.name, "srv");
    long n = atomic_load(&rq_answers);
    ck_assert_int_eq(tp_system_send(s[0], requester, RQ_GO, &c, sizeof c), 0);
    // Once the request reached the server, the node goes.
    tp_actor_stats st = {0};
    for (int i = 0; i < 2000; i++) {
        if (tp_actor_stats_get(s[1], server, &st) == 0 && st.handled == 1)
            break;
        tpt_nap_us(5000);
    }
    ck_assert_uint_eq(st.handled, 1);
    ck_assert_int_eq(tp_system_destroy(&s[1]), 0);
    ck_assert(tpt_wait_ge(&rq_answers, n + 1, 20.0));
    ck_assert_uint_eq(rq_outs[n].tag, TP_TAG_FAILED);
    ck_assert_int_eq(rq_outs[n].reason, TP_REASON_NOCONNECTION);
    // Exactly one answer each: the 1 s timeouts of those answered
    // otherwise would have come by now (waiting past them is the check).
    tpt_nap_us(1100000);
    ck_assert_int_eq(atomic_load(&rq_answers), atomic_load(&rq_asked));
}
END_TEST

// Bad arguments are refused before anything is sent.
static _Atomic int bad_checked;

static int
bad_rq_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state, (void)msg;
    const char *node = tp_node_name(tp_ctx_system(ctx));
    int ok = tp_request_name_at(ctx, NULL, node, 1, NULL, 0, 10, NULL) ==
                 TP_EINVAL &&
             tp_request_name_at(ctx, "x", "not a node", 1, NULL, 0, 10,
                                NULL) == TP_EINVAL &&
             tp_request_name_at(ctx, "x", node, TP_TAG_RESERVED, NULL, 0, 10,
                                NULL) == TP_EINVAL &&
             tp_request_name_at(ctx, "x", node, 1, NULL, 4, 10, NULL) ==
                 TP_EINVAL &&
             tp_request_name_at(ctx, "x", node, 1, NULL, 0, -2, NULL) ==
                 TP_EINVAL &&
             tp_request_name_at_then(ctx, "x", node, 1, NULL, 0, 10, NULL,
                                     NULL, NULL) == TP_EINVAL;
    atomic_store(&bad_checked, ok ? 1 : -1);
    return TP_OK;
}

static const tp_behaviour bad_rq_b = {.name = "bad_rq",
                                      .handle = bad_rq_handle};

START_TEST(requests_by_name_refuse_bad_arguments)
{
    tp_pid p;
    ck_assert_int_eq(tp_spawn(s[0], &bad_rq_b, NULL, NULL, &p), 0);
    ck_assert_int_eq(tp_system_send(s[0], p, 1, NULL, 0), 0);
    for (int i = 0; i < 2000 && atomic_load(&bad_checked) == 0; i++)
        tpt_nap_us(5000);
    ck_assert_int_eq(atomic_load(&bad_checked), 1);
    ck_assert_int_eq(tp_request_name_at(NULL, "x", tp_node_name(s[0]), 1, NULL,
                                        0, 10, NULL),
                     TP_EINVAL);
}
END_TEST

START_TEST(supervised_child_on_another_node)
{
    atomic_store(&rw_started, 0);
    atomic_store(&rw_alive, 0);
    ck_assert_int_eq(tp_spawnable(s[1], "rworker", &rw_b), 0);
    // The child's arg outlives node b (whose name string goes with it).
    static char node_b[TP_NODE_NAME_MAX];
    snprintf(node_b, sizeof node_b, "%s", tp_node_name(s[1]));
    tp_remote_child_arg ra = {.node = node_b, .behaviour = "rworker"};
    tp_child_spec child = {.id = "remote",
                           .behaviour = &tp_remote_child,
                           .arg = &ra,
                           .shutdown = 3000};
    tp_sup_spec spec = {.flags = {.strategy = TP_ONE_FOR_ONE, .intensity = 5},
                        .children = &child,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(s[0], &spec, NULL, &sup), 0);
    ck_assert(tpt_wait_until(alive_is, (void *)1, 10.0));
    // The remote actor is killed: the supervisor on node a restarts it.
    tp_pid first = {atomic_load(&rw_last)};
    ck_assert_int_eq(tp_system_exit(s[1], first, TP_REASON_KILL), 0);
    ck_assert(tpt_wait_until(started_ge, (void *)2, 10.0));
    ck_assert(tpt_wait_until(alive_is, (void *)1, 10.0));
    ck_assert_uint_ne(atomic_load(&rw_last), first.v);
    tp_sup_child kids[2];
    size_t nkids;
    ck_assert_int_eq(tp_sup_which_children(s[0], sup, 5000, kids, 2, &nkids),
                     0);
    ck_assert_uint_eq(nkids, 1);
    ck_assert_uint_eq(kids[0].restarts, 1);
    // The supervisor's shutdown reaches the remote actor.
    ck_assert_int_eq(tp_system_exit(s[0], sup, TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_until(alive_is, (void *)0, 10.0));
    ck_assert(tpt_wait_until(gone, &sup, 10.0));
    // The remote node dies: the local child exits with noconnection, and
    // its restarts, whose spawns time out, use up the intensity. The arg is
    // a fresh one, written before the supervisor starts: the children read
    // it on node a's workers, and what orders those reads before a later
    // write here goes through a socket, which no sanitizer sees.
    tp_remote_child_arg ra2 = {
        .node = node_b, .behaviour = "rworker", .spawn_timeout_ms = 500};
    child.arg = &ra2;
    spec.flags.intensity = 2;
    ck_assert_int_eq(tp_sup_start(s[0], &spec, NULL, &sup), 0);
    ck_assert(tpt_wait_until(alive_is, (void *)1, 10.0));
    ck_assert_int_eq(tp_system_destroy(&s[1]), 0);
    ck_assert(tpt_wait_until(gone, &sup, 20.0));
    s[1] = tpn_local("qb2", NULL);
    snprintf(node_b, sizeof node_b, "%s", tp_node_name(s[1]));
    ck_assert_int_eq(tp_spawnable(s[1], "rworker", &rw_b), 0);
    // A behaviour the node does not offer: each start fails, until the
    // supervisor gives up.
    tp_remote_child_arg bad = {.node = ra.node, .behaviour = "nope"};
    child.arg = &bad;
    ck_assert_int_eq(tp_sup_start(s[0], &spec, NULL, &sup), 0);
    ck_assert(tpt_wait_until(gone, &sup, 10.0));
    // Bad arguments fail the start at once.
    tp_remote_child_arg none = {.node = NULL, .behaviour = "rworker"};
    child.arg = &none;
    ck_assert_int_eq(tp_sup_start(s[0], &spec, NULL, &sup), TP_EINVAL);
}
END_TEST

// A spawnable whose init takes longer than its caller waits.
static int
slow_init(tp_ctx *ctx, void *state, void *arg)
{
    rw_init(ctx, state, arg);
    tpt_nap_us(400000); // holds node b's troupe.remote: a test only
    return 0;
}

static const tp_behaviour slow_b = {.name = "slow",
                                    .init = slow_init,
                                    .handle = echo_handle,
                                    .terminate = rw_terminate};

START_TEST(late_spawn_is_killed_and_requests_wait_for_their_node)
{
    atomic_store(&rw_started, 0);
    atomic_store(&rw_alive, 0);
    ck_assert_int_eq(tp_spawnable(s[1], "slow", &slow_b), 0);
    tp_pid pid;
    ck_assert_int_eq(tp_system_spawn_at(s[0], tp_node_name(s[1]), "slow", NULL,
                                        0, 100, &pid),
                     TP_ETIMEDOUT);
    // The actor came up after its caller gave up: it is killed.
    ck_assert(tpt_wait_until(started_ge, (void *)1, 10.0));
    ck_assert(tpt_wait_until(alive_is, (void *)0, 10.0));
    // A request to a node not connected waits for it to come up.
    ck_assert_int_eq(
        tp_spawn(s[1], &echo_b, NULL, &(tp_spawn_opts){.name = "kv"}, NULL),
        0);
    ck_assert_int_eq(tp_node_disconnect(s[0], tp_node_name(s[1])), 0);
    tp_peer_info pi;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tp_node_peers(s[0], &pi, 1), 1);
        if (pi.state == TP_PEER_IDLE)
            break;
        tpt_nap_us(500);
    }
    ck_assert_int_eq(pi.state, TP_PEER_IDLE);
    ck_assert_int_eq(
        tp_system_whereis_at(s[0], "kv", tp_node_name(s[1]), 5000, &pid), 0);
    ck_assert_uint_ne(tp_pid_node(pid), 0);
}
END_TEST

Suite *
remote_suite(void)
{
    Suite *su = suite_create("remote");
    TCase *tc = tcase_create("two nodes");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, two_nodes, two_nodes_down);
    tcase_add_test(tc, whereis_at_finds_a_remote_name);
    tcase_add_test(tc, spawn_at_starts_a_remote_actor);
    tcase_add_test(tc, lost_node_and_timeout_end_a_request);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, supervised_child_on_another_node);
    tcase_add_test(tc, requests_by_name_get_exactly_one_answer);
    tcase_add_test(tc, requests_by_name_refuse_bad_arguments);
    tcase_add_test(tc, late_spawn_is_killed_and_requests_wait_for_their_node);
    suite_add_tcase(su, tc);
    return su;
}
