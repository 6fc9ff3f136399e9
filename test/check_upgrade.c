// SPDX-License-Identifier: MIT
// Hot code upgrade (upgrade.h) through the public API: counters switched
// from v1 to v2 (a larger state, a new request) while threads keep
// sending, with no increment lost; a v3 whose change fails for one actor
// rolls every actor back, again losing nothing; a change that crashes its
// actor; states that shrink or keep their size; an upgrade of upgraded
// actors; the arguments refused; and an upgrade on a test system.
#include "tp_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_INC = 1, TAG_GET, TAG_VERSION, TAG_ASK };

#define NACT 16

typedef struct v1 {
    uint64_t count;
    uint32_t id;
} v1;

typedef struct v2 {
    uint64_t count;
    uint32_t id;
    uint64_t seen_since; // counted since the upgrade
    char pad[200];       // larger than v1: kept in a block of its own
} v2;

typedef struct small {
    uint32_t count32;
} small;

static int
v1_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    ((v1 *)state)->id = (uint32_t)(uintptr_t)arg;
    return 0;
}

// TAG_ASK (data: a pid): a request that times out in 100 ms, whose
// timeout adds 1000 to the count, in either version.
static int
ask(tp_ctx *ctx, const tp_msg *msg)
{
    tp_pid to;
    memcpy(&to, msg->data, sizeof to);
    uint64_t ref;
    return tp_request(ctx, to, TAG_GET, NULL, 0, 100, &ref);
}

static int
v1_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    v1 *s = state;
    if (msg->tag == TAG_ASK)
        return ask(ctx, msg);
    if (msg->tag == TP_TAG_TIMEOUT)
        s->count += 1000;
    if (msg->tag == TAG_INC)
        s->count++;
    if (msg->tag == TAG_GET)
        return tp_reply(ctx, TAG_GET, &s->count, sizeof s->count);
    if (msg->tag == TAG_VERSION)
        return tp_reply(ctx, TAG_VERSION, "1", 1);
    return TP_OK;
}

static int
v2_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    v2 *s = state;
    if (msg->tag == TAG_ASK)
        return ask(ctx, msg);
    if (msg->tag == TP_TAG_TIMEOUT)
        s->count += 1000;
    if (msg->tag == TAG_INC) {
        s->count++;
        s->seen_since++;
    }
    if (msg->tag == TAG_GET)
        return tp_reply(ctx, TAG_GET, &s->count, sizeof s->count);
    if (msg->tag == TAG_VERSION)
        return tp_reply(ctx, TAG_VERSION, "2", 1);
    return TP_OK;
}

static _Atomic long v2_terminated;

static void
v2_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    v2 *s = state;
    if (s->pad[0] == 'v')
        v2_terminated++;
}

static int
small_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    small *s = state;
    if (msg->tag == TAG_INC)
        s->count32++;
    if (msg->tag == TAG_GET) {
        uint64_t c = s->count32;
        return tp_reply(ctx, TAG_GET, &c, sizeof c);
    }
    if (msg->tag == TAG_VERSION)
        return tp_reply(ctx, TAG_VERSION, "s", 1);
    return TP_OK;
}

static const tp_behaviour v1_b = {.name = "counter",
                                  .state_size = sizeof(v1),
                                  .init = v1_init,
                                  .handle = v1_handle};
static const tp_behaviour v2_b = {.name = "counter",
                                  .state_size = sizeof(v2),
                                  .handle = v2_handle,
                                  .terminate = v2_terminate};
static const tp_behaviour v1b_b = {.name = "counter",
                                   .state_size = sizeof(v1),
                                   .handle = v2_handle}; // same size
static const tp_behaviour small_b = {
    .name = "counter", .state_size = sizeof(small), .handle = small_handle};

static int
to_v2(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    (void)ctx;
    (void)arg;
    const v1 *o = old_state;
    v2 *n = new_state;
    n->count = o->count;
    n->id = o->id;
    n->pad[0] = 'v';
    return 0;
}

// Fails for the actor whose id is *arg.
static int
to_v2_but(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    const v1 *o = old_state;
    if (o->id == *(uint32_t *)arg)
        return TP_EDECODE;
    return to_v2(ctx, old_state, new_state, NULL);
}

static int
to_v2_crash(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    const v1 *o = old_state;
    if (o->id == *(uint32_t *)arg)
        tp_fail(ctx, TP_EINVAL, "this change crashes");
    return to_v2(ctx, old_state, new_state, NULL);
}

static int
to_small(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    (void)ctx;
    (void)arg;
    ((small *)new_state)->count32 = (uint32_t)((const v2 *)old_state)->count;
    return 0;
}

// ---- load --------------------------------------------------------------

typedef struct load {
    tp_system *sys;
    tp_pid *pids;
    _Atomic int stop;
    _Atomic long sent;
} load;

static void *
sender(void *arg)
{
    load *l = arg;
    unsigned i = 0;
    while (!atomic_load(&l->stop)) {
        if (tp_system_send(l->sys, l->pids[i++ % NACT], TAG_INC, NULL, 0) == 0)
            atomic_fetch_add(&l->sent, 1);
    }
    return NULL;
}

static uint64_t
count_of(tp_system *sys, tp_pid pid)
{
    tp_call_reply r;
    ck_assert_int_eq(tp_call(sys, pid, TAG_GET, NULL, 0, 10000, &r), 0);
    uint64_t c;
    memcpy(&c, r.data, sizeof c);
    free((void *)r.data);
    return c;
}

static char
version_of(tp_system *sys, tp_pid pid)
{
    tp_call_reply r;
    ck_assert_int_eq(tp_call(sys, pid, TAG_VERSION, NULL, 0, 10000, &r), 0);
    char v = *(const char *)r.data;
    free((void *)r.data);
    return v;
}

static void
spawn_counters(tp_system *sys, const tp_behaviour *b, tp_pid *pids)
{
    for (uintptr_t i = 0; i < NACT; i++)
        ck_assert_int_eq(tp_spawn(sys, b, (void *)i, NULL, &pids[i]), 0);
}

static uint64_t
total(tp_system *sys, const tp_pid *pids)
{
    uint64_t t = 0;
    for (int i = 0; i < NACT; i++)
        t += count_of(sys, pids[i]);
    return t;
}

// Runs two senders, calls `fn` with `arg` in the middle, stops them and
// checks that every increment sent was counted.
static void
under_load(tp_system *sys, tp_pid *pids, void (*fn)(void *), void *arg)
{
    load l = {.sys = sys, .pids = pids};
    uint64_t before = total(sys, pids);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, sender, &l), 0);
    while (atomic_load(&l.sent) < tpt_scaled(20000))
        tpt_nap_us(500);
    fn(arg);
    long at = atomic_load(&l.sent);
    while (atomic_load(&l.sent) < at + tpt_scaled(20000))
        tpt_nap_us(500);
    atomic_store(&l.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    // tp_call's request queues behind every increment already sent.
    ck_assert_uint_eq(total(sys, pids) - before, (uint64_t)l.sent);
}

typedef struct job {
    tp_system *sys;
    const tp_code_change *ch;
    size_t n;
    int rc;
    tp_upgrade_report rep;
} job;

static void
run_upgrade(void *arg)
{
    job *j = arg;
    j->rc = tp_upgrade(j->sys, j->ch, j->n, 10000, &j->rep);
}

START_TEST(upgrade_under_load_loses_nothing)
{
    v2_terminated = 0;
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1_b), NACT);
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2};
    job j = {.sys = sys, .ch = &ch, .n = 1};
    under_load(sys, pids, run_upgrade, &j);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(j.rep.actors, NACT);
    ck_assert_int_eq(j.rep.failed, 0);
    ck_assert_int_ge(j.rep.pause_max_us, j.rep.pause_p50_us);
    if (getenv("TP_DEBUG_UPGRADE"))
        fprintf(stderr, "upgrade: %u actors, pause p50 %lld us, max %lld us\n",
                j.rep.actors, (long long)j.rep.pause_p50_us,
                (long long)j.rep.pause_max_us);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1_b), 0);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v2_b), NACT);
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(version_of(sys, pids[i]), '2');
    // Introspection names the new code; terminate sees the new state.
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, pids[0], &info), 0);
    ck_assert_str_eq(info.behaviour, "counter");
    ck_assert_int_eq(tp_system_exit(sys, pids[0], TP_REASON_SHUTDOWN), 0);
    ck_assert(tpt_wait_ge(&v2_terminated, 1, 10));
    tp_system_destroy(&sys);
    ck_assert_int_eq(v2_terminated, NACT);
}
END_TEST

START_TEST(a_failed_change_rolls_every_actor_back)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    uint32_t bad = 7;
    tp_code_change ch = {
        .from = &v1_b, .to = &v2_b, .change = to_v2_but, .arg = &bad};
    job j = {.sys = sys, .ch = &ch, .n = 1};
    under_load(sys, pids, run_upgrade, &j);
    ck_assert_int_eq(j.rc, TP_EDECODE);
    ck_assert_int_eq(j.rep.failed, TP_EDECODE);
    ck_assert(tp_pid_eq(j.rep.failed_pid, pids[7]));
    ck_assert_uint_eq(j.rep.actors, NACT - 1); // held, then let go
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(version_of(sys, pids[i]), '1');
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1_b), NACT);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v2_b), 0);
    // And then it works.
    ch.change = to_v2;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, NULL), 0);
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(version_of(sys, pids[i]), '2');
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(a_change_that_crashes_rolls_back)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    uint32_t bad = 3;
    tp_code_change ch = {
        .from = &v1_b, .to = &v2_b, .change = to_v2_crash, .arg = &bad};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), TP_ECRASH);
    ck_assert(tp_pid_eq(rep.failed_pid, pids[3]));
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, pids[3], &info), TP_ENOACTOR);
    for (int i = 0; i < NACT; i++)
        if (i != 3)
            ck_assert_int_eq(version_of(sys, pids[i]), '1');
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(states_that_shrink_keep_their_size_and_upgrade_again)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    for (int i = 0; i < NACT; i++)
        for (int k = 0; k <= i; k++)
            ck_assert_int_eq(tp_system_send(sys, pids[i], TAG_INC, NULL, 0),
                             0);
    // Same size: the behaviour itself, bytes copied.
    tp_code_change same = {.from = &v1_b, .to = &v1b_b};
    ck_assert_int_eq(tp_upgrade(sys, &same, 1, 10000, NULL), 0);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1b_b), NACT);
    for (int i = 0; i < NACT; i++) {
        ck_assert_int_eq(version_of(sys, pids[i]), '2');
        ck_assert_uint_eq(count_of(sys, pids[i]), (uint64_t)i + 1);
    }
    // Larger (a block of its own), then smaller again (back in place).
    tp_code_change up = {.from = &v1b_b, .to = &v2_b, .change = to_v2};
    ck_assert_int_eq(tp_upgrade(sys, &up, 1, 10000, NULL), 0);
    tp_code_change down = {.from = &v2_b, .to = &small_b, .change = to_small};
    ck_assert_int_eq(tp_upgrade(sys, &down, 1, 10000, NULL), 0);
    ck_assert_uint_eq(tp_behaviour_users(sys, &v2_b), 0);
    ck_assert_uint_eq(tp_behaviour_users(sys, &small_b), NACT);
    for (int i = 0; i < NACT; i++) {
        ck_assert_int_eq(version_of(sys, pids[i]), 's');
        ck_assert_uint_eq(count_of(sys, pids[i]), (uint64_t)i + 1);
    }
    tp_system_destroy(&sys);
}
END_TEST

// From inside an actor, tp_upgrade would wait for actors: refused.
static int
inside_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    (void)msg;
    tp_code_change ch = {.from = &v1_b, .to = &v2_b};
    int rc = tp_upgrade(tp_ctx_system(ctx), &ch, 1, 0, NULL);
    return tp_reply(ctx, TAG_GET, &rc, sizeof rc);
}

static const tp_behaviour inside_b = {.name = "inside",
                                      .handle = inside_handle};
static const tp_behaviour tiny_b = {
    .name = "tiny", .state_size = 4, .handle = small_handle};

START_TEST(upgrade_refuses_bad_arguments)
{
    tp_system *sys = tpt_system(1);
    tp_code_change ok = {.from = &v1_b, .to = &v2_b};
    tp_code_change twice[] = {ok, ok};
    tp_code_change no_to = {.from = &v1_b};
    tp_behaviour nohandle = {.name = "x", .state_size = 8};
    tp_code_change bad_to = {.from = &v1_b, .to = &nohandle};
    ck_assert_int_eq(tp_upgrade(NULL, &ok, 1, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, NULL, 1, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, &ok, 0, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, twice, 2, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, &no_to, 1, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, &bad_to, 1, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_upgrade(sys, &ok, 1, -2, NULL), TP_EINVAL);
    // Nothing runs v1: nothing to do.
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ok, 1, 1000, &rep), 0);
    ck_assert_uint_eq(rep.actors, 0);
    // From an actor.
    tp_pid in;
    ck_assert_int_eq(tp_spawn(sys, &inside_b, NULL, NULL, &in), 0);
    tp_call_reply r;
    ck_assert_int_eq(tp_call(sys, in, 1, NULL, 0, 10000, &r), 0);
    int rc;
    memcpy(&rc, r.data, sizeof rc);
    free((void *)r.data);
    ck_assert_int_eq(rc, TP_EPERM);
    // A 4-byte state cannot hold the address of a larger one's block.
    tp_pid t;
    ck_assert_int_eq(tp_spawn(sys, &tiny_b, NULL, NULL, &t), 0);
    tp_code_change grow = {.from = &tiny_b, .to = &v2_b};
    ck_assert_int_eq(tp_upgrade(sys, &grow, 1, 10000, &rep), TP_EINVAL);
    ck_assert(tp_pid_eq(rep.failed_pid, t));
    ck_assert_int_eq(version_of(sys, t), 's');
    ck_assert_uint_eq(tp_behaviour_users(NULL, &v1_b), 0);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(upgrade_on_a_test_system)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 9, &sys), 0);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(tp_system_send(sys, pids[i], TAG_INC, NULL, 0), 0);
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 1000, &rep), 0);
    ck_assert_uint_eq(rep.actors, NACT);
    for (int i = 0; i < NACT; i++) {
        ck_assert_int_eq(version_of(sys, pids[i]), '2');
        ck_assert_uint_eq(count_of(sys, pids[i]), 1);
    }
    tp_system_destroy(&sys);
}
END_TEST

// States that own memory: `owner` keeps a malloc'ed buffer, which its
// change copies into a new one; `discard` frees the old buffer of a
// committed actor and the new buffer of a rolled-back one.
typedef struct owner {
    char *buf;
} owner;
typedef struct owner2 {
    char *buf;
    uint64_t extra[8]; // larger: a block of its own
} owner2;

static _Atomic int discarded_old, discarded_new, owner_then_ran;
static char unrelated[64]; // a range nothing points into

// On the first timeout, asks again (arg: whom), with itself as the
// continuation: a continuation a stale one attaches is stale too.
static int
owner_then(tp_ctx *ctx, void *state, const tp_msg *answer, void *arg)
{
    (void)state;
    if (answer->tag != TP_TAG_TIMEOUT)
        return TP_OK;
    owner_then_ran++;
    if (arg == NULL)
        return TP_OK;
    return tp_request_then(ctx, *(const tp_pid *)arg, TAG_GET, NULL, 0, 5000,
                           owner_then, NULL, NULL);
}

static int
owner_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx, (void)arg;
    owner *o = state;
    return (o->buf = strdup("v1")) != NULL ? 0 : TP_ENOMEM;
}

static int
owner_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TAG_ASK) {
        // A continuation of this code, pending across the upgrade.
        static tp_pid to; // the actors run on the test's one thread
        memcpy(&to, msg->data, sizeof to);
        return tp_request_then(ctx, to, TAG_GET, NULL, 0, 5000, owner_then,
                               &to, NULL);
    }
    if (msg->tag == TAG_VERSION)
        return tp_reply(ctx, TAG_VERSION, ((owner *)state)->buf, 3);
    return TP_OK;
}

static void
owner_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason;
    free(((owner *)state)->buf); // both versions: buf comes first
}

static const tp_behaviour owner_b = {.name = "owner",
                                     .state_size = sizeof(owner),
                                     .init = owner_init,
                                     .handle = owner_handle,
                                     .terminate = owner_terminate};
static const tp_behaviour owner2_b = {.name = "owner",
                                      .state_size = sizeof(owner2),
                                      .handle = owner_handle,
                                      .terminate = owner_terminate};

// Copies the buffer, as "v2"; fails for the actor whose arg says so.
static int
owner_change(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    (void)old_state;
    if (arg != NULL && tp_pid_eq(tp_self(ctx), *(const tp_pid *)arg))
        return TP_EINVAL;
    owner2 *n = new_state;
    return (n->buf = strdup("v2")) != NULL ? 0 : TP_ENOMEM;
}

static void
owner_discard(void *state, bool committed, void *arg)
{
    (void)arg;
    free(((owner *)state)->buf);
    if (committed)
        discarded_old++;
    else
        discarded_new++;
}

// A change's discard frees what the dropped state owns: the old state's
// once committed, the new one's after a rollback (LeakSanitizer checks
// that nothing else leaks). tp_code_refs counts the actors whose code
// lies in a range, and continuations set before an upgrade until they
// ran; tp_sup_refs counts the specs.
START_TEST(discard_and_what_still_points_into_code)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 3, &sys), 0);
    enum { N = 6 };
    tp_pid pids[N], silent;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tp_spawn(sys, &owner_b, NULL, NULL, &pids[i]), 0);
    ck_assert_int_eq(tp_spawn(sys, &owner2_b, NULL, NULL, &silent), 0);
    tp_test_run(sys, 10000);
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, sizeof owner_b), N);
    ck_assert_uint_eq(
        tp_code_refs(sys, (const void *)(uintptr_t)owner_init, 1), N);
    ck_assert_uint_eq(tp_code_refs(sys, unrelated, sizeof unrelated), 0);
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, 0), 0);

    // A rollback: every built state goes through discard, not the failed.
    tp_code_change ch = {.from = &owner_b,
                         .to = &owner2_b,
                         .change = owner_change,
                         .discard = owner_discard,
                         .arg = &pids[2]};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 5000, &rep), TP_EINVAL);
    ck_assert_int_eq(discarded_new, N - 1);
    ck_assert_int_eq(discarded_old, 0);
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, sizeof owner_b), N);

    // Pid 0 leaves a continuation pending, then all commit.
    ck_assert_int_eq(
        tp_system_send(sys, pids[0], TAG_ASK, &silent, sizeof silent), 0);
    tp_test_run(sys, 10000);
    ck_assert_uint_eq(tp_code_refs(sys, unrelated, sizeof unrelated), 0);
    ch.arg = NULL;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 5000, &rep), 0);
    ck_assert_uint_eq(rep.actors, N);
    ck_assert_int_eq(discarded_old, N);
    ck_assert_int_eq(discarded_new, N - 1);
    tp_call_reply r;
    ck_assert_int_eq(tp_call(sys, pids[1], TAG_VERSION, NULL, 0, 1000, &r), 0);
    ck_assert_str_eq(r.data, "v2");
    free((void *)r.data);
    // No actor runs owner_b; the continuation set by it still counts,
    // wherever it points, until it ran.
    ck_assert_uint_eq(tp_behaviour_users(sys, &owner_b), 0);
    ck_assert_uint_eq(tp_code_refs(sys, unrelated, sizeof unrelated), 1);
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, sizeof owner_b), 1);
    ck_assert_uint_eq(tp_code_refs(sys, &owner2_b, sizeof owner2_b), N + 2);
    ck_assert_int_eq(tp_test_advance(sys, 6000), 1); // the timeout
    tp_test_run(sys, 10000);
    ck_assert_int_eq(owner_then_ran, 1);
    // It asked again: the continuation it attached may be old code too.
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, sizeof owner_b), 1);
    ck_assert_int_eq(tp_test_advance(sys, 6000), 1);
    tp_test_run(sys, 10000);
    ck_assert_int_eq(owner_then_ran, 2);
    ck_assert_uint_eq(tp_code_refs(sys, &owner_b, sizeof owner_b), 0);

    // A pending continuation of a dead actor stops counting too.
    ck_assert_int_eq(
        tp_system_send(sys, pids[3], TAG_ASK, &silent, sizeof silent), 0);
    tp_test_run(sys, 10000);
    // Every owner2 actor switches back: pid 3's continuation, set before,
    // counts as stale until its actor is gone.
    tp_code_change back = {.from = &owner2_b, .to = &owner_b};
    ck_assert_int_eq(tp_upgrade(sys, &back, 1, 5000, &rep), 0);
    ck_assert_uint_eq(tp_code_refs(sys, unrelated, sizeof unrelated), 1);
    ck_assert_int_eq(tp_system_exit(sys, pids[3], TP_REASON_KILL), 0);
    tp_test_run(sys, 10000);
    ck_assert_uint_eq(tp_code_refs(sys, unrelated, sizeof unrelated), 0);

    // Specs: a supervisor whose child runs owner_b with an arg in
    // `unrelated`.
    tp_child_spec kid = {.id = "o",
                         .behaviour = &owner_b,
                         .arg = unrelated,
                         .restart = TP_TEMPORARY};
    tp_sup_spec spec = {.flags = {.strategy = TP_ONE_FOR_ONE},
                        .children = &kid,
                        .nchildren = 1};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    size_t n = 99;
    ck_assert_int_eq(tp_sup_refs(sys, sup, &owner_b, sizeof owner_b, 1000, &n),
                     0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(
        tp_sup_refs(sys, sup, unrelated + 1, sizeof unrelated - 1, 1000, &n),
        0);
    ck_assert_uint_eq(n, 0); // arg points at unrelated[0]
    ck_assert_int_eq(tp_sup_refs(sys, sup, unrelated, 1, 1000, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tp_sup_refs(sys, sup, unrelated, SIZE_MAX, 1000, &n), 0);
    ck_assert_uint_ge(n, 1); // up to the end of the address space
    ch = (tp_code_change){.from = &owner_b, .to = &owner2_b};
    ck_assert_int_eq(tp_sup_upgrade(sys, sup, &ch, 1, 1000, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tp_sup_refs(sys, sup, &owner_b, sizeof owner_b, 1000, &n),
                     0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tp_sup_refs(sys, sup, unrelated, 1, 1000, NULL),
                     TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

static int
refuse(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    (void)ctx, (void)old_state, (void)new_state, (void)arg;
    return TP_EDECODE;
}

// A behaviour made spawnable by other nodes follows an upgrade, even one
// with no actor to switch, and counts as a reference to its code.
START_TEST(spawnables_follow_an_upgrade)
{
    tp_system *sys;
    ck_assert_int_eq(tp_system_new(NULL, &sys), 0);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert_int_eq(tp_spawnable(sys, "counter", &v1_b), 0);
    ck_assert_uint_eq(tp_code_refs(sys, &v1_b, sizeof v1_b), 1);
    // A range too long for the address space ends with it.
    ck_assert_uint_ge(tp_code_refs(sys, &v1_b, SIZE_MAX), 1);
    ck_assert_uint_eq(tp_code_refs(sys, &v2_b, sizeof v2_b), 0);
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 5000, &rep), 0);
    ck_assert_uint_eq(rep.actors, 0);
    ck_assert_uint_eq(tp_code_refs(sys, &v1_b, sizeof v1_b), 0);
    ck_assert_uint_eq(tp_code_refs(sys, &v2_b, sizeof v2_b), 1);
    // A rolled-back upgrade leaves it where it was.
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &v2_b, NULL, NULL, &pid), 0);
    tp_code_change back = {.from = &v2_b, .to = &v1_b, .change = refuse};
    ck_assert_int_eq(tp_upgrade(sys, &back, 1, 5000, &rep), TP_EDECODE);
    ck_assert_uint_eq(tp_code_refs(sys, &v2_b, sizeof v2_b), 2);
    ck_assert_uint_eq(tp_code_refs(sys, &v1_b, sizeof v1_b), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Version labels: an actor shows its code's, through a shim too.
START_TEST(version_labels_follow_the_code)
{
    tp_system *sys;
    ck_assert_int_eq(tp_test_system_new(NULL, 5, &sys), 0);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &v1_b, NULL, NULL, &pid), 0);
    tp_test_run(sys, 1000);
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, pid, &info), 0);
    ck_assert_str_eq(info.version, "");
    ck_assert_int_eq(tp_behaviour_version(sys, &v1_b, "1.0"), 0);
    ck_assert_int_eq(tp_behaviour_version(sys, &v2_b, "2.0-rc1"), 0);
    ck_assert_int_eq(tp_behaviour_version(sys, &v2_b, "2.0"), 0); // again
    ck_assert_int_eq(tp_actor_info_get(sys, pid, &info), 0);
    ck_assert_str_eq(info.version, "1.0");
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2};
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 1000, NULL), 0);
    ck_assert_int_eq(tp_actor_info_get(sys, pid, &info), 0);
    ck_assert_str_eq(info.behaviour, "counter");
    ck_assert_str_eq(info.version, "2.0"); // v2_b, behind its shim
    ck_assert_int_eq(tp_behaviour_version(sys, &v2_b, NULL), 0);
    ck_assert_int_eq(tp_actor_info_get(sys, pid, &info), 0);
    ck_assert_str_eq(info.version, "");
    ck_assert_int_eq(tp_behaviour_version(sys, &v2_b, ""), 0); // none: fine
    char big[40];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(tp_behaviour_version(sys, &v2_b, big), TP_EINVAL);
    ck_assert_int_eq(tp_behaviour_version(NULL, &v2_b, "1"), TP_EINVAL);
    ck_assert_int_eq(tp_behaviour_version(sys, NULL, "1"), TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

// A supervised tree: the running workers switch, and the specs too, so a
// restarted worker and a new simple_one_for_one child run the new code.
START_TEST(supervisors_restart_the_new_code)
{
    tp_system *sys = tpt_system(2);
    static const tp_child_spec workers[] = {
        {.id = "w0", .behaviour = &v1_b, .opts = {.name = "w0"}},
        {.id = "w1", .behaviour = &v1_b, .opts = {.name = "w1"}},
    };
    static const tp_child_spec pool_template[] = {
        {.id = "p", .behaviour = &v1_b, .restart = TP_TEMPORARY}};
    static tp_sup_spec inner = {
        .flags = {.intensity = 10}, .children = workers, .nchildren = 2};
    static tp_sup_spec pool = {
        .flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE, .intensity = 10},
        .children = pool_template,
        .nchildren = 1};
    static const tp_child_spec top[] = {
        {.id = "inner",
         .behaviour = &tp_supervisor,
         .arg = &inner,
         .type = TP_SUPERVISOR},
        {.id = "pool",
         .behaviour = &tp_supervisor,
         .arg = &pool,
         .type = TP_SUPERVISOR,
         .opts = {.name = "pool"}},
    };
    tp_sup_spec root = {
        .flags = {.intensity = 10}, .children = top, .nchildren = 2};
    tp_pid sup, pool_pid, w0;
    ck_assert_int_eq(tp_sup_start(sys, &root, NULL, &sup), 0);
    ck_assert_int_eq(tp_whereis(sys, "pool", &pool_pid), 0);
    tp_pid p1;
    ck_assert_int_eq(tp_sup_start_child(sys, pool_pid, NULL, NULL, 5000, &p1),
                     0);
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), 0);
    ck_assert_uint_eq(rep.actors, 3);
    size_t replaced = 0;
    ck_assert_int_eq(tp_sup_upgrade(sys, sup, &ch, 1, 5000, &replaced), 0);
    // Two workers, the template, and the spec of the pool child started
    // from it; and in the root's copies of inner's and pool's specs, which
    // they restart from, the two workers and the template.
    ck_assert_uint_eq(replaced, 7);
    // Nothing points at v1 nor at the caller's specs any more.
    size_t refs = 9;
    ck_assert_int_eq(tp_sup_refs(sys, sup, &v1_b, sizeof v1_b, 5000, &refs),
                     0);
    ck_assert_uint_eq(refs, 0);
    ck_assert_int_eq(tp_sup_refs(sys, sup, &inner, sizeof inner, 5000, &refs),
                     0);
    ck_assert_uint_eq(refs, 0);
    ck_assert_int_eq(
        tp_sup_refs(sys, sup, workers, sizeof workers, 5000, &refs), 0);
    ck_assert_uint_eq(refs, 0);
    ck_assert_int_eq(tp_sup_upgrade(sys, sup, NULL, 0, 5000, NULL), TP_EINVAL);
    // A restarted worker, and a new pool child, run v2.
    ck_assert_int_eq(tp_whereis(sys, "w0", &w0), 0);
    ck_assert_int_eq(tp_system_exit(sys, w0, TP_REASON_KILL), 0);
    tp_pid w0b = w0;
    for (int i = 0; i < 10000 && tp_pid_eq(w0b, w0); i++) {
        tpt_nap_us(1000);
        tp_whereis(sys, "w0", &w0b);
    }
    ck_assert(!tp_pid_eq(w0b, w0));
    ck_assert_int_eq(version_of(sys, w0b), '2');
    tp_pid p2;
    ck_assert_int_eq(tp_sup_start_child(sys, pool_pid, NULL, NULL, 5000, &p2),
                     0);
    ck_assert_int_eq(version_of(sys, p2), '2');
    // The inner supervisor killed: the root restarts it from its copy of
    // inner's spec, and its workers start as v2.
    tp_sup_child kids[2];
    size_t nk;
    ck_assert_int_eq(tp_sup_which_children(sys, sup, 5000, kids, 2, &nk), 0);
    ck_assert_uint_eq(nk, 2);
    tp_pid w1 = w0b, w1b = w0b;
    ck_assert_int_eq(tp_whereis(sys, "w1", &w1), 0);
    ck_assert_int_eq(tp_system_exit(sys, kids[0].pid, TP_REASON_KILL), 0);
    for (int i = 0; i < 10000; i++) {
        tpt_nap_us(1000);
        if (tp_whereis(sys, "w1", &w1b) == 0 && !tp_pid_eq(w1b, w1))
            break;
    }
    ck_assert(!tp_pid_eq(w1b, w1));
    ck_assert_int_eq(version_of(sys, w1b), '2');
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1_b), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Specs a supervisor copies but cannot start: a template whose spec has
// no children array, which refs and upgrades walk without harm, and a
// spec that contains itself, refused.
START_TEST(odd_nested_specs)
{
    tp_system *sys = tpt_system(2);
    static tp_sup_spec broken = {.children = NULL, .nchildren = 2};
    static const tp_child_spec tmpl[] = {{.id = "t",
                                          .behaviour = &tp_supervisor,
                                          .arg = &broken,
                                          .type = TP_SUPERVISOR}};
    tp_sup_spec pool = {.flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE},
                        .children = tmpl,
                        .nchildren = 1};
    tp_pid sup, kid;
    ck_assert_int_eq(tp_sup_start(sys, &pool, NULL, &sup), 0);
    size_t n = 9;
    ck_assert_int_eq(tp_sup_refs(sys, sup, &broken, sizeof broken, 5000, &n),
                     0);
    ck_assert_uint_eq(n, 0);
    tp_code_change ch = {.from = &v1_b, .to = &v2_b};
    ck_assert_int_eq(tp_sup_upgrade(sys, sup, &ch, 1, 5000, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tp_sup_start_child(sys, sup, NULL, NULL, 5000, &kid),
                     TP_EINVAL);
    static tp_sup_spec self;
    static tp_child_spec inside[] = {{.id = "again",
                                      .behaviour = &tp_supervisor,
                                      .arg = &self,
                                      .type = TP_SUPERVISOR}};
    self = (tp_sup_spec){.children = inside, .nchildren = 1};
    ck_assert_int_ne(tp_sup_start(sys, &self, NULL, &kid), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Slow for the actor whose id is *arg: past the upgrade's timeout.
static int
to_v2_slow(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    const v1 *o = old_state;
    if (o->id == *(uint32_t *)arg) {
        struct timespec ts = {0, 300 * 1000000};
        nanosleep(&ts, NULL); // a change that takes its time: the point
    }
    return to_v2(ctx, old_state, new_state, NULL);
}

START_TEST(a_change_past_the_timeout_rolls_back)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    uint32_t slow = 5;
    tp_code_change ch = {
        .from = &v1_b, .to = &v2_b, .change = to_v2_slow, .arg = &slow};
    tp_upgrade_report rep;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 100, &rep), TP_ETIMEDOUT);
    ck_assert_int_eq(rep.failed, TP_ETIMEDOUT);
    // Every actor, the slow one included, runs v1 and answers.
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(version_of(sys, pids[i]), '1');
    ck_assert_uint_eq(tp_behaviour_users(sys, &v1_b), NACT);
    slow = 99;
    ck_assert_int_eq(tp_upgrade(sys, &ch, 1, 10000, &rep), 0);
    for (int i = 0; i < NACT; i++)
        ck_assert_int_eq(version_of(sys, pids[i]), '2');
    tp_system_destroy(&sys);
}
END_TEST

// The actor whose id is slow_id waits in its change until released;
// the others count theirs.
static _Atomic int slow_in, slow_go, changes_done;
static uint32_t slow_id;

static int
to_v2_gated(tp_ctx *ctx, const void *old_state, void *new_state, void *arg)
{
    (void)arg;
    const v1 *o = old_state;
    if (o->id == slow_id) {
        slow_in = 1;
        for (int i = 0; i < 20000 && !slow_go; i++)
            tpt_nap_us(500); // held here by the test, at most 10 s
    } else {
        changes_done++;
    }
    return to_v2(ctx, old_state, new_state, NULL);
}

static void *
upgrade_thread(void *arg)
{
    run_upgrade(arg);
    return NULL;
}

// An actor killed while it is held: the verdict comes before anything
// queued, so it switches, then the kill ends it; the others switch.
START_TEST(an_actor_killed_while_held)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT];
    spawn_counters(sys, &v1_b, pids);
    slow_in = slow_go = changes_done = 0;
    slow_id = 0;
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2_gated};
    job j = {.sys = sys, .ch = &ch, .n = 1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, upgrade_thread, &j), 0);
    for (int i = 0; i < 20000 && (!slow_in || changes_done < NACT - 1); i++)
        tpt_nap_us(500);
    ck_assert_int_eq(changes_done, NACT - 1);
    ck_assert_int_eq(tp_system_exit(sys, pids[9], TP_REASON_KILL), 0);
    slow_go = 1;
    pthread_join(th, NULL);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(j.rep.actors, NACT);
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, pids[9], &info), TP_ENOACTOR);
    for (int i = 0; i < NACT; i++)
        if (i != 9)
            ck_assert_int_eq(version_of(sys, pids[i]), '2');
    tp_system_destroy(&sys);
}
END_TEST

static int
silent_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK;
}

static const tp_behaviour silent_b = {.name = "silent",
                                      .handle = silent_handle};

// A request's timeout that comes while its actor is held waits behind the
// verdict: the new code handles it, on the new state, and the count
// keeps it.
START_TEST(what_comes_while_held_is_handled_by_the_new_code)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[NACT], quiet;
    spawn_counters(sys, &v1_b, pids);
    ck_assert_int_eq(tp_spawn(sys, &silent_b, NULL, NULL, &quiet), 0);
    // pids[3] asks first: its request's 100 ms timeout comes while it is
    // held, below.
    ck_assert_int_eq(
        tp_system_send(sys, pids[3], TAG_ASK, &quiet, sizeof quiet), 0);
    tp_actor_stats qs = {0};
    for (int i = 0; i < 10000 && qs.handled < 1; i++) {
        tpt_nap_us(500);
        tp_actor_stats_get(sys, quiet, &qs);
    }
    ck_assert_uint_ge(qs.handled, 1);
    slow_in = slow_go = changes_done = 0;
    slow_id = 0; // pids[0] holds the upgrade in its change
    tp_code_change ch = {.from = &v1_b, .to = &v2_b, .change = to_v2_gated};
    job j = {.sys = sys, .ch = &ch, .n = 1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, upgrade_thread, &j), 0);
    for (int i = 0; i < 20000 && (!slow_in || changes_done < NACT - 1); i++)
        tpt_nap_us(500);
    ck_assert_int_eq(changes_done, NACT - 1);
    tpt_nap_us(300000); // past the timeout, while held: the point
    slow_go = 1;
    pthread_join(th, NULL);
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(count_of(sys, pids[3]), 1000);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("upgrade");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, upgrade_under_load_loses_nothing);
    tcase_add_test(tc, a_failed_change_rolls_every_actor_back);
    tcase_add_test(tc, a_change_that_crashes_rolls_back);
    tcase_add_test(tc, states_that_shrink_keep_their_size_and_upgrade_again);
    tcase_add_test(tc, upgrade_refuses_bad_arguments);
    tcase_add_test(tc, upgrade_on_a_test_system);
    tcase_add_test(tc, discard_and_what_still_points_into_code);
    tcase_add_test(tc, spawnables_follow_an_upgrade);
    tcase_add_test(tc, version_labels_follow_the_code);
    tcase_add_test(tc, odd_nested_specs);
    tcase_add_test(tc, supervisors_restart_the_new_code);
    tcase_add_test(tc, a_change_past_the_timeout_rolls_back);
    tcase_add_test(tc, an_actor_killed_while_held);
    tcase_add_test(tc, what_comes_while_held_is_handled_by_the_new_code);
    suite_add_tcase(s, tc);
    return s;
}
