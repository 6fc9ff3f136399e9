// SPDX-License-Identifier: MIT
// Process groups and routers through the public API: membership on one
// node (joins, leaves, members that exit, subscribers), groups across
// nodes in this process (a node's members seen by the others, removed
// when they exit or their node is lost, back when it reconnects), and
// routers' policies. Every wait is bounded and keyed on what it awaits.
#include "tp_test.h"
#include "tp_node_test.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_WORK 1
#define TAG_STOP 2
#define TAG_BLOCK 3

// ---- a worker that counts what it handles ------------------------------

#define WORKERS_MAX 64

static _Atomic long handled[WORKERS_MAX];
static _Atomic long total_handled;
static _Atomic int release_block;

static int
worker_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(long *)state = (long)(intptr_t)arg;
    return 0;
}

static int
worker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    long me = *(long *)state;
    if (msg->tag == TAG_STOP)
        return TP_STOP;
    if (msg->tag == TAG_BLOCK) {
        while (!atomic_load(&release_block))
            tpt_nap_us(200);
        return TP_OK;
    }
    atomic_fetch_add(&handled[me], 1);
    atomic_fetch_add(&total_handled, 1);
    return TP_OK;
}

static const tp_behaviour worker_b = {.name = "worker",
                                      .state_size = sizeof(long),
                                      .init = worker_init,
                                      .handle = worker_handle};

static tp_pid
spawn_worker(tp_system *sys, long i)
{
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, &worker_b, (void *)(intptr_t)i, NULL, &p),
                     0);
    return p;
}

// A worker on a thread of its own, which may block in TAG_BLOCK.
static tp_pid
spawn_blocking_worker(tp_system *sys, long i)
{
    tp_pid p;
    tp_spawn_opts o = {.dedicated = true};
    ck_assert_int_eq(tp_spawn(sys, &worker_b, (void *)(intptr_t)i, &o, &p), 0);
    return p;
}

static void
reset_counts(void)
{
    for (int i = 0; i < WORKERS_MAX; i++)
        atomic_store(&handled[i], 0);
    atomic_store(&total_handled, 0);
    atomic_store(&release_block, 0);
}

// ---- a watcher that logs group messages --------------------------------

#define EVENTS_MAX 1024

typedef struct gevent {
    uint32_t tag;
    tp_pid member;
    char group[TP_GROUP_NAME_MAX + 1];
} gevent;

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static gevent events[EVENTS_MAX];
static _Atomic long nevents;

typedef struct watch_arg {
    const char *group;
} watch_arg;

static int
watcher_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    watch_arg *w = arg;
    return tp_group_monitor(ctx, w->group, true);
}

static int
watcher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->tag == TAG_STOP)
        return TP_STOP;
    if (msg->tag != TP_TAG_GROUP_JOIN && msg->tag != TP_TAG_GROUP_LEAVE)
        return TP_OK;
    ck_assert_uint_eq(msg->size, sizeof(tp_group_msg));
    const tp_group_msg *gm = msg->data;
    pthread_mutex_lock(&ev_lock);
    long i = atomic_load(&nevents);
    if (i < EVENTS_MAX) {
        events[i].tag = msg->tag;
        events[i].member = gm->member;
        snprintf(events[i].group, sizeof events[i].group, "%s", gm->group);
        atomic_store(&nevents, i + 1);
    }
    pthread_mutex_unlock(&ev_lock);
    return TP_OK;
}

static const tp_behaviour watcher_b = {
    .name = "watcher", .init = watcher_init, .handle = watcher_handle};

static long
events_of(uint32_t tag, tp_pid member)
{
    long n = 0;
    pthread_mutex_lock(&ev_lock);
    for (long i = 0; i < atomic_load(&nevents); i++)
        if (events[i].tag == tag && tp_pid_eq(events[i].member, member))
            n++;
    pthread_mutex_unlock(&ev_lock);
    return n;
}

// ---- waiting on membership ------------------------------------------------

typedef struct count_arg {
    tp_system *sys;
    const char *group;
    int want;
    bool local;
} count_arg;

static bool
count_is(void *arg)
{
    count_arg *c = arg;
    int n = c->local ? tp_group_local_members(c->sys, c->group, NULL, 0)
                     : tp_group_members(c->sys, c->group, NULL, 0);
    return n == c->want;
}

static bool
await_count(tp_system *sys, const char *group, int want)
{
    count_arg c = {sys, group, want, false};
    return tpt_wait_until(count_is, &c, 10.0);
}

static bool
has_member(tp_system *sys, const char *group, tp_pid pid)
{
    tp_pid out[WORKERS_MAX];
    int n = tp_group_members(sys, group, out, WORKERS_MAX);
    for (int i = 0; i < n && i < WORKERS_MAX; i++)
        if (tp_pid_eq(out[i], pid))
            return true;
    return false;
}

// ---- one node ----------------------------------------------------------

START_TEST(join_leave_members)
{
    tp_system *sys = tpt_system(2);
    tp_pid a = spawn_worker(sys, 0), b = spawn_worker(sys, 1);
    ck_assert_int_eq(tp_group_members(sys, "pool", NULL, 0), 0);
    ck_assert_int_eq(tp_group_join(sys, "pool", a), 0);
    ck_assert_int_eq(tp_group_join(sys, "pool", b), 0);
    ck_assert_int_eq(tp_group_join(sys, "pool", a), 0); // once only
    ck_assert_int_eq(tp_group_join(sys, "other", a), 0);
    // Visible as soon as the calls return.
    tp_pid out[4];
    ck_assert_int_eq(tp_group_members(sys, "pool", out, 4), 2);
    ck_assert(has_member(sys, "pool", a) && has_member(sys, "pool", b));
    ck_assert_int_eq(tp_group_local_members(sys, "pool", out, 4), 2);
    // A short buffer still gets the count.
    ck_assert_int_eq(tp_group_members(sys, "pool", out, 1), 2);
    ck_assert_int_eq(tp_group_leave(sys, "pool", a), 0);
    ck_assert_int_eq(tp_group_leave(sys, "pool", a), TP_ENOENT);
    ck_assert_int_eq(tp_group_leave(sys, "nosuch", a), TP_ENOENT);
    ck_assert_int_eq(tp_group_members(sys, "pool", out, 4), 1);
    ck_assert(tp_pid_eq(out[0], b));
    ck_assert_int_eq(tp_group_members(sys, "other", out, 4), 1);
    char names[4][TP_GROUP_NAME_MAX + 1];
    ck_assert_int_eq(tp_group_names(sys, names, 4), 2);
    ck_assert(strcmp(names[0], "pool") == 0 || strcmp(names[1], "pool") == 0);
    ck_assert_int_eq(tp_group_names(sys, NULL, 0), 2);
    ck_assert_int_eq(tp_group_names(NULL, names, 4), TP_EINVAL);
    // The group server is an actor with a registered name.
    tp_pid server;
    ck_assert_int_eq(tp_whereis(sys, "troupe.groups", &server), 0);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(bad_arguments)
{
    tp_system *sys = tpt_system(1);
    tp_pid a = spawn_worker(sys, 0);
    char long_name[TP_GROUP_NAME_MAX + 2];
    memset(long_name, 'g', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    ck_assert_int_eq(tp_group_join(NULL, "g", a), TP_EINVAL);
    ck_assert_int_eq(tp_group_join(sys, NULL, a), TP_EINVAL);
    ck_assert_int_eq(tp_group_join(sys, "", a), TP_EINVAL);
    ck_assert_int_eq(tp_group_join(sys, long_name, a), TP_EINVAL);
    long_name[TP_GROUP_NAME_MAX] = 0; // exactly the longest
    ck_assert_int_eq(tp_group_join(sys, long_name, a), 0);
    ck_assert_int_eq(tp_group_join(sys, "g", TP_PID_NIL), TP_EINVAL);
    ck_assert_int_eq(tp_group_join(sys, "\x1fg", a), TP_EINVAL); // global's
    ck_assert_int_eq(tp_global_register(sys, NULL, a), TP_EINVAL);
    ck_assert_int_eq(tp_global_register(sys, "", a), TP_EINVAL);
    ck_assert_int_eq(tp_global_register(sys, long_name, a), TP_EINVAL); // 63
    ck_assert_int_eq(tp_global_register(sys, "x", TP_PID_NIL), TP_EINVAL);
    ck_assert_int_eq(tp_global_unregister(sys, "x"), TP_ENOENT);
    tp_pid who;
    ck_assert_int_eq(tp_global_whereis(sys, "x", &who), TP_ENOACTOR);
    ck_assert_int_eq(tp_global_whereis(sys, "x", NULL), TP_EINVAL);
    ck_assert_int_eq(tp_global_send(NULL, "x", 1, NULL, 0), TP_EINVAL);
    ck_assert_int_eq(tp_group_join(sys, "g", tp_pid_make(3, 1, 1)),
                     TP_EINVAL); // not local
    ck_assert_int_eq(tp_group_join(sys, "g", tp_pid_make(0, 9999, 7)),
                     TP_ENOACTOR);
    ck_assert_int_eq(tp_group_leave(sys, "g", TP_PID_NIL), TP_EINVAL);
    ck_assert_int_eq(tp_group_members(NULL, "g", NULL, 0), TP_EINVAL);
    ck_assert_int_eq(tp_group_members(sys, NULL, NULL, 0), TP_EINVAL);
    ck_assert_int_eq(tp_group_members(sys, "g", NULL, 3), TP_EINVAL);
    ck_assert_int_eq(tp_group_monitor(NULL, "g", true), TP_EINVAL);
    ck_assert_int_eq(tp_group_send(NULL, "g", 1, NULL, 0), TP_EINVAL);
    // Outside an actor, the calls for actors are refused.
    ck_assert_int_eq(tp_group_monitor((tp_ctx *)sys, "g", true), TP_EPERM);
    tp_router *r = NULL;
    ck_assert_int_eq(tp_router_group(sys, "", TP_ROUTE_HASH, &r), TP_EINVAL);
    ck_assert_int_eq(tp_router_group(sys, "g", (tp_route)42, &r), TP_EINVAL);
    ck_assert_int_eq(tp_router_group(NULL, "g", TP_ROUTE_HASH, &r), TP_EINVAL);
    ck_assert_int_eq(tp_router_pids(sys, &a, 0, TP_ROUTE_RANDOM, &r),
                     TP_EINVAL);
    tp_pid nil = TP_PID_NIL;
    ck_assert_int_eq(tp_router_pids(sys, &nil, 1, TP_ROUTE_RANDOM, &r),
                     TP_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(tp_router_group(sys, "empty", TP_ROUTE_ROUND_ROBIN, &r),
                     0);
    tp_pid to;
    ck_assert_int_eq(tp_router_pick(r, 0, &to), TP_ENOENT);
    ck_assert_int_eq(tp_router_pick(r, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_router_pick(NULL, 0, &to), TP_EINVAL);
    ck_assert_int_eq(tp_router_send(NULL, r, 0, 1, NULL, 0, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_router_send((tp_ctx *)sys, r, 0, 1, NULL, 0, NULL),
                     TP_EPERM);
    tp_router_free(r);
    tp_router_free(NULL);
    // Someone else holding the server's name: the first group call says so.
    tp_system *sys2 = tpt_system(1);
    ck_assert_int_eq(tp_spawn(sys2, &worker_b, NULL,
                              &(tp_spawn_opts){.name = "troupe.groups"}, NULL),
                     0);
    tp_pid b = spawn_worker(sys2, 1);
    ck_assert_int_eq(tp_group_join(sys2, "g", b), TP_EEXIST);
    ck_assert_int_eq(tp_group_members(sys2, "g", NULL, 0), 0);
    ck_assert_int_eq(tp_system_destroy(&sys2), 0);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(exited_member_leaves)
{
    tp_system *sys = tpt_system(2);
    atomic_store(&nevents, 0);
    tp_pid w;
    ck_assert_int_eq(tp_spawn(sys, &watcher_b, &(watch_arg){"pool"}, NULL, &w),
                     0);
    tp_pid a = spawn_worker(sys, 0), b = spawn_worker(sys, 1);
    ck_assert_int_eq(tp_group_join(sys, "pool", a), 0);
    ck_assert_int_eq(tp_group_join(sys, "pool", b), 0);
    ck_assert_int_eq(tp_system_send(sys, a, TAG_STOP, NULL, 0), 0);
    ck_assert(await_count(sys, "pool", 1));
    ck_assert(has_member(sys, "pool", b));
    // A killed member leaves too.
    ck_assert_int_eq(tp_system_exit(sys, b, TP_REASON_KILL), 0);
    ck_assert(await_count(sys, "pool", 0));
    // The watcher saw each join and each leave, a's before b's leave.
    for (int i = 0; i < 1000 && events_of(TP_TAG_GROUP_LEAVE, b) == 0; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(events_of(TP_TAG_GROUP_JOIN, a), 1);
    ck_assert_int_eq(events_of(TP_TAG_GROUP_JOIN, b), 1);
    ck_assert_int_eq(events_of(TP_TAG_GROUP_LEAVE, a), 1);
    ck_assert_int_eq(events_of(TP_TAG_GROUP_LEAVE, b), 1);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(monitor_gets_current_members_first)
{
    tp_system *sys = tpt_system(2);
    atomic_store(&nevents, 0);
    tp_pid a = spawn_worker(sys, 0), b = spawn_worker(sys, 1);
    ck_assert_int_eq(tp_group_join(sys, "pool", a), 0);
    tp_pid w;
    ck_assert_int_eq(tp_spawn(sys, &watcher_b, &(watch_arg){"pool"}, NULL, &w),
                     0);
    ck_assert_int_eq(tp_group_join(sys, "pool", b), 0);
    ck_assert_int_eq(tp_group_leave(sys, "pool", a), 0);
    for (int i = 0; i < 5000 && atomic_load(&nevents) < 3; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(atomic_load(&nevents), 3);
    ck_assert_uint_eq(events[0].tag, TP_TAG_GROUP_JOIN);
    ck_assert(tp_pid_eq(events[0].member, a));
    ck_assert_str_eq(events[0].group, "pool");
    ck_assert_uint_eq(events[1].tag, TP_TAG_GROUP_JOIN);
    ck_assert(tp_pid_eq(events[1].member, b));
    ck_assert_uint_eq(events[2].tag, TP_TAG_GROUP_LEAVE);
    ck_assert(tp_pid_eq(events[2].member, a));
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

// An actor that publishes to a group, then routes through a router of
// its own, as a user writes it.
typedef struct pub_arg {
    const char *group;
    tp_route how;
    long count;
    uint64_t key_mod; // keys are i % key_mod (0: the key is i)
    _Atomic long *reached;
    _Atomic int *done;
} pub_arg;

static int
publisher_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    pub_arg *p = arg;
    if (p->count == 0) {
        atomic_store(p->reached,
                     tp_group_send(ctx, p->group, TAG_WORK, "x", 1));
        atomic_store(p->done, 1);
        return TP_OK;
    }
    tp_router *r;
    int rc = tp_router_group(tp_ctx_system(ctx), p->group, p->how, &r);
    if (rc != 0)
        return rc;
    for (long i = 0; i < p->count; i++) {
        uint64_t key = p->key_mod ? (uint64_t)i % p->key_mod : (uint64_t)i;
        if (tp_router_send(ctx, r, key, TAG_WORK, &i, sizeof i, NULL) == 0)
            atomic_fetch_add(p->reached, 1);
    }
    tp_router_free(r);
    atomic_store(p->done, 1);
    return TP_OK;
}

static int
publisher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_STOP;
}

static const tp_behaviour publisher_b = {
    .name = "publisher", .init = publisher_init, .handle = publisher_handle};

static long
run_publisher(tp_system *sys, pub_arg *p)
{
    _Atomic long reached = 0;
    _Atomic int done = 0;
    p->reached = &reached;
    p->done = &done;
    ck_assert_int_eq(tp_spawn(sys, &publisher_b, p, NULL, NULL), 0);
    ck_assert(atomic_load(&done));
    return atomic_load(&reached);
}

START_TEST(group_send_reaches_every_member)
{
    tp_system *sys = tpt_system(2);
    reset_counts();
    for (long i = 0; i < 5; i++)
        ck_assert_int_eq(tp_group_join(sys, "all", spawn_worker(sys, i)), 0);
    pub_arg p = {.group = "all"};
    ck_assert_int_eq(run_publisher(sys, &p), 5);
    _Atomic long *t = &total_handled;
    ck_assert(tpt_wait_ge(t, 5, 10.0));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(atomic_load(&handled[i]), 1);
    pub_arg none = {.group = "nobody"};
    ck_assert_int_eq(run_publisher(sys, &none), 0);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

// ---- routers ---------------------------------------------------------------

START_TEST(router_round_robin_and_random)
{
    tp_system *sys = tpt_system(2);
    reset_counts();
    for (long i = 0; i < 4; i++)
        ck_assert_int_eq(tp_group_join(sys, "rr", spawn_worker(sys, i)), 0);
    pub_arg p = {.group = "rr", .how = TP_ROUTE_ROUND_ROBIN, .count = 400};
    ck_assert_int_eq(run_publisher(sys, &p), 400);
    ck_assert(tpt_wait_ge(&total_handled, 400, 10.0));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(atomic_load(&handled[i]), 100);
    reset_counts();
    pub_arg q = {.group = "rr", .how = TP_ROUTE_RANDOM, .count = 4000};
    ck_assert_int_eq(run_publisher(sys, &q), 4000);
    ck_assert(tpt_wait_ge(&total_handled, 4000, 10.0));
    for (int i = 0; i < 4; i++) // 1000 expected; 6 sigma is about 164
        ck_assert_int_gt(atomic_load(&handled[i]), 700);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(router_hash_is_stable)
{
    tp_system *sys = tpt_system(2);
    tp_pid pids[8];
    for (long i = 0; i < 8; i++)
        pids[i] = spawn_worker(sys, i);
    tp_router *r, *r7;
    ck_assert_int_eq(tp_router_pids(sys, pids, 8, TP_ROUTE_HASH, &r), 0);
    ck_assert_int_eq(tp_router_pids(sys, pids, 7, TP_ROUTE_HASH, &r7), 0);
    int moved = 0, spread[8] = {0};
    for (uint64_t key = 0; key < 8000; key++) {
        tp_pid x, y, z;
        ck_assert_int_eq(tp_router_pick(r, key, &x), 0);
        ck_assert_int_eq(tp_router_pick(r, key, &y), 0);
        ck_assert(tp_pid_eq(x, y)); // the same key, the same member
        ck_assert_int_eq(tp_router_pick(r7, key, &z), 0);
        for (int i = 0; i < 8; i++)
            if (tp_pid_eq(x, pids[i]))
                spread[i]++;
        // Without the eighth member only its keys move.
        if (!tp_pid_eq(x, z)) {
            ck_assert(tp_pid_eq(x, pids[7]));
            moved++;
        }
    }
    ck_assert_int_eq(moved, spread[7]);
    for (int i = 0; i < 8; i++) // 1000 each expected
        ck_assert_int_gt(spread[i], 700);
    tp_router_free(r);
    tp_router_free(r7);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(router_least_loaded_avoids_busy_members)
{
    tp_system *sys = tpt_system(2);
    reset_counts();
    tp_pid busy = spawn_blocking_worker(sys, 0), idle = spawn_worker(sys, 1);
    ck_assert_int_eq(tp_group_join(sys, "ll", busy), 0);
    ck_assert_int_eq(tp_group_join(sys, "ll", idle), 0);
    // `busy` blocks in its handler with messages queued behind.
    ck_assert_int_eq(tp_system_send(sys, busy, TAG_BLOCK, NULL, 0), 0);
    // More queued than `idle` can fall behind by while the 50 go out.
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(tp_system_send(sys, busy, TAG_WORK, NULL, 0), 0);
    pub_arg p = {.group = "ll", .how = TP_ROUTE_LEAST_LOADED, .count = 50};
    ck_assert_int_eq(run_publisher(sys, &p), 50);
    ck_assert(tpt_wait_ge(&handled[1], 50, 10.0));
    atomic_store(&release_block, 1);
    ck_assert(tpt_wait_ge(&total_handled, 250, 10.0));
    ck_assert_int_eq(atomic_load(&handled[0]), 200);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

START_TEST(router_skips_dead_and_full_members)
{
    tp_config cfg = {
        .threads = 2, .mailbox_capacity = 4, .overflow = TP_OVERFLOW_REJECT};
    tp_system *sys = tpt_system_cfg(&cfg);
    reset_counts();
    tp_pid pids[3];
    for (long i = 0; i < 3; i++)
        pids[i] =
            i == 1 ? spawn_blocking_worker(sys, i) : spawn_worker(sys, i);
    // pids[0] is dead, pids[1] blocked with a full mailbox: everything goes
    // to pids[2] whatever the policy picks first.
    ck_assert_int_eq(tp_system_send(sys, pids[0], TAG_STOP, NULL, 0), 0);
    ck_assert_int_eq(tp_system_send(sys, pids[1], TAG_BLOCK, NULL, 0), 0);
    tp_actor_stats st;
    for (int i = 0; i < 10000 && tp_actor_stats_get(sys, pids[0], &st) == 0;
         i++)
        tpt_nap_us(500);
    // pids[1] has taken TAG_BLOCK out of its mailbox: it is in the handler.
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tp_actor_stats_get(sys, pids[1], &st), 0);
        if (st.length == 0)
            break;
        tpt_nap_us(500);
    }
    int filled = 0;
    while (tp_system_send(sys, pids[1], TAG_WORK, NULL, 0) == 0)
        filled++;
    ck_assert_int_ge(filled, 3);
    for (tp_route how = TP_ROUTE_ROUND_ROBIN; how <= TP_ROUTE_HASH; how++) {
        for (long i = 0; i < 3; i++)
            ck_assert_int_eq(tp_group_join(sys, "skip", pids[i]),
                             i == 0 ? TP_ENOACTOR : 0);
        tp_router *r;
        ck_assert_int_eq(tp_router_pids(sys, pids, 3, how, &r), 0);
        tp_router_free(r);
        pub_arg p = {.group = "skip", .how = how, .count = 4};
        ck_assert_int_eq(run_publisher(sys, &p), 4);
        // pids[2] took them all; its mailbox empties before the next round.
        ck_assert(tpt_wait_ge(&handled[2], 4 * ((long)how + 1), 10.0));
    }
    ck_assert(tpt_wait_ge(&handled[2], 16, 10.0));
    atomic_store(&release_block, 1);
    ck_assert_int_eq(tp_system_destroy(&sys), 0);
}
END_TEST

// ---- across nodes (three nodes in this process) ---------------------------

static void
connect_all(tp_system **s, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            ck_assert_int_eq(tp_node_connect(s[i], tp_node_name(s[j]), 5000),
                             0);
}

START_TEST(groups_span_nodes)
{
    tp_system *s[3] = {tpn_local("ga", NULL), tpn_local("gb", NULL),
                       tpn_local("gc", NULL)};
    connect_all(s, 3);
    tp_pid a = spawn_worker(s[0], 0), b = spawn_worker(s[1], 1),
           c = spawn_worker(s[2], 2);
    ck_assert_int_eq(tp_group_join(s[0], "pool", a), 0);
    ck_assert_int_eq(tp_group_join(s[1], "pool", b), 0);
    ck_assert_int_eq(tp_group_join(s[2], "pool", c), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(await_count(s[i], "pool", 3));
        count_arg lc = {s[i], "pool", 1, true};
        ck_assert(count_is(&lc));
    }
    // A leave on one node reaches the others.
    ck_assert_int_eq(tp_group_leave(s[1], "pool", b), 0);
    ck_assert(await_count(s[0], "pool", 2));
    ck_assert(await_count(s[2], "pool", 2));
    // A member that exits leaves everywhere.
    ck_assert_int_eq(tp_system_send(s[2], c, TAG_STOP, NULL, 0), 0);
    ck_assert(await_count(s[0], "pool", 1));
    ck_assert(await_count(s[1], "pool", 1));
    // A remote member is a pid messages reach: route from node b to a.
    reset_counts();
    pub_arg p = {.group = "pool", .how = TP_ROUTE_LEAST_LOADED, .count = 10};
    ck_assert_int_eq(run_publisher(s[1], &p), 10);
    ck_assert(tpt_wait_ge(&handled[0], 10, 10.0));
    for (int i = 3; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

// A dispatcher that pushes LOAD_N messages through a router over a group,
// LOAD_STEP per activation, going on in the next when a send is refused
// (every member full): nothing is lost or counted twice.
#define LOAD_N 40000
#define LOAD_STEP 500
enum { TAG_PUMP = 9 };

typedef struct pump {
    tp_router *r;
    long sent;
} pump;

static _Atomic long pump_sent, pump_refused;

static int
pump_init(tp_ctx *ctx, void *state, void *arg)
{
    pump *p = state;
    return tp_router_group(tp_ctx_system(ctx), "load", (tp_route)(intptr_t)arg,
                           &p->r);
}

static int
pump_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    pump *p = state;
    (void)msg;
    for (int k = 0; k < LOAD_STEP && p->sent < LOAD_N; k++) {
        int rc = tp_router_send(ctx, p->r, (uint64_t)p->sent, TAG_WORK,
                                &p->sent, sizeof p->sent, NULL);
        if (rc != 0) {
            atomic_fetch_add(&pump_refused, 1);
            break; // full everywhere: the next activation goes on
        }
        atomic_store(&pump_sent, ++p->sent);
    }
    if (p->sent < LOAD_N)
        return tp_send(ctx, tp_self(ctx), TAG_PUMP, NULL, 0);
    return TP_STOP;
}

static void
pump_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason;
    tp_router_free(((pump *)state)->r);
}

static const tp_behaviour pump_b = {.name = "pump",
                                    .state_size = sizeof(pump),
                                    .init = pump_init,
                                    .handle = pump_handle,
                                    .terminate = pump_terminate};

// Routers under load over a group spanning two nodes (three workers on
// each): every policy delivers every message exactly once, and round
// robin and hashing use the workers of both nodes.
START_TEST(routers_under_load_across_nodes)
{
    tp_system *s[2] = {tpn_local("la", NULL), tpn_local("lb", NULL)};
    connect_all(s, 2);
    for (long i = 0; i < 6; i++)
        ck_assert_int_eq(
            tp_group_join(s[i / 3], "load", spawn_worker(s[i / 3], i)), 0);
    ck_assert(await_count(s[0], "load", 6));
    static const tp_route how[] = {TP_ROUTE_ROUND_ROBIN, TP_ROUTE_RANDOM,
                                   TP_ROUTE_LEAST_LOADED, TP_ROUTE_HASH};
    for (size_t h = 0; h < sizeof how / sizeof *how; h++) {
        reset_counts();
        atomic_store(&pump_sent, 0);
        tp_pid p;
        ck_assert_int_eq(
            tp_spawn(s[0], &pump_b, (void *)(intptr_t)how[h], NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(s[0], p, TAG_PUMP, NULL, 0), 0);
        ck_assert(tpt_wait_ge(&pump_sent, LOAD_N, 120.0));
        ck_assert(tpt_wait_ge(&total_handled, LOAD_N, 120.0));
        long local = 0, remote = 0;
        for (int i = 0; i < 6; i++)
            *(i < 3 ? &local : &remote) += atomic_load(&handled[i]);
        ck_assert_int_eq(local + remote, LOAD_N);
        if (how[h] != TP_ROUTE_LEAST_LOADED) { // local members come first
            ck_assert_int_gt(local, 0);
            ck_assert_int_gt(remote, 0);
        }
    }
    // Nothing more arrives: exactly once each, counted once both systems
    // are gone and no worker can run again.
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
    ck_assert_int_eq(atomic_load(&total_handled), LOAD_N);
}
END_TEST

START_TEST(lost_node_members_leave_and_come_back)
{
    tp_system *s[2] = {tpn_local("ha", NULL), tpn_local("hb", NULL)};
    atomic_store(&nevents, 0);
    tp_pid w;
    ck_assert_int_eq(
        tp_spawn(s[0], &watcher_b, &(watch_arg){"pool"}, NULL, &w), 0);
    tp_pid pids[4];
    for (long i = 0; i < 4; i++) {
        pids[i] = spawn_worker(s[1], i);
        ck_assert_int_eq(tp_group_join(s[1], "pool", pids[i]), 0);
    }
    // Joined before the nodes met: the sync on nodeup carries them.
    connect_all(s, 2);
    ck_assert(await_count(s[0], "pool", 4));
    ck_assert_int_eq(tp_node_disconnect(s[0], tp_node_name(s[1])), 0);
    ck_assert(await_count(s[0], "pool", 0));
    ck_assert(await_count(s[1], "pool", 4)); // its own stay
    ck_assert_int_eq(tp_node_connect(s[0], tp_node_name(s[1]), 5000), 0);
    ck_assert(await_count(s[0], "pool", 4));
    // The watcher on node a saw each remote member join, leave and join.
    tp_pid seen[4];
    ck_assert_int_eq(tp_group_members(s[0], "pool", seen, 4), 4);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 5000 && events_of(TP_TAG_GROUP_JOIN, seen[i]) < 2;
             k++)
            tpt_nap_us(1000);
        ck_assert_int_eq(events_of(TP_TAG_GROUP_JOIN, seen[i]), 2);
        ck_assert_int_eq(events_of(TP_TAG_GROUP_LEAVE, seen[i]), 1);
    }
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

START_TEST(killed_server_restarts)
{
    tp_system *s[2] = {tpn_local("ka", NULL), tpn_local("kb", NULL)};
    connect_all(s, 2);
    tp_pid a = spawn_worker(s[0], 0), b = spawn_worker(s[0], 1);
    ck_assert_int_eq(tp_group_join(s[0], "pool", a), 0);
    ck_assert(await_count(s[1], "pool", 1));
    tp_pid server;
    ck_assert_int_eq(tp_whereis(s[0], "troupe.groups", &server), 0);
    ck_assert_int_eq(tp_system_exit(s[0], server, TP_REASON_KILL), 0);
    // Node b hears the server is gone and forgets what it told.
    ck_assert(await_count(s[1], "pool", 0));
    // The next group call starts a new server, which tells b again and
    // still watches the members it found.
    ck_assert_int_eq(tp_group_join(s[0], "pool", b), 0);
    ck_assert(await_count(s[1], "pool", 2));
    ck_assert_int_eq(tp_system_send(s[0], a, TAG_STOP, NULL, 0), 0);
    ck_assert(await_count(s[0], "pool", 1));
    ck_assert(await_count(s[1], "pool", 1));
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

START_TEST(restarted_server_without_members_asks_again)
{
    tp_system *s[2] = {tpn_local("ra", NULL), tpn_local("rb", NULL)};
    connect_all(s, 2);
    // Node a only watches the group; node b has the member.
    atomic_store(&nevents, 0);
    tp_pid w;
    ck_assert_int_eq(
        tp_spawn(s[0], &watcher_b, &(watch_arg){"pool"}, NULL, &w), 0);
    ck_assert_int_eq(tp_group_join(s[1], "pool", spawn_worker(s[1], 0)), 0);
    ck_assert(await_count(s[0], "pool", 1));
    tp_pid server;
    ck_assert_int_eq(tp_whereis(s[0], "troupe.groups", &server), 0);
    ck_assert_int_eq(tp_system_exit(s[0], server, TP_REASON_KILL), 0);
    for (int i = 0;
         i < 10000 && tp_whereis(s[0], "troupe.groups", &server) == 0; i++)
        tpt_nap_us(500);
    // A subscription starts a new server, which drops what the old one was
    // told, then asks b again (b has forgotten the old server).
    tp_pid w2;
    ck_assert_int_eq(
        tp_spawn(s[0], &watcher_b, &(watch_arg){"pool"}, NULL, &w2), 0);
    ck_assert(await_count(s[0], "pool", 1));
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

START_TEST(many_members_cross_small_frames)
{
    // Node a's frames are small: its memberships cross in many chunks.
    tp_system *s[2] = {tpn_local("fa", &(tp_node_config){.max_frame = 4096}),
                       tpn_local("fb", NULL)};
    enum { N = 300 };
    for (long i = 0; i < N; i++) {
        char group[16];
        snprintf(group, sizeof group, "g%ld", i % 3);
        ck_assert_int_eq(tp_group_join(s[0], group, spawn_worker(s[0], 0)), 0);
    }
    connect_all(s, 2);
    for (int k = 0; k < 3; k++) {
        char group[16];
        snprintf(group, sizeof group, "g%d", k);
        ck_assert(await_count(s[1], group, N / 3));
    }
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

// ---- global names ---------------------------------------------------------

typedef struct holder_state {
    long me;
} holder_state;

static _Atomic long lost_count;
static _Atomic uint64_t lost_to;

static int
holder_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->tag == TP_TAG_GLOBAL_LOST) {
        ck_assert_uint_eq(msg->size, sizeof(tp_global_msg));
        const tp_global_msg *gm = msg->data;
        ck_assert_str_eq(gm->name, "boss");
        atomic_store(&lost_to, gm->holder.v);
        atomic_fetch_add(&lost_count, 1);
    }
    return TP_OK;
}

static const tp_behaviour holder_b = {.name = "holder",
                                      .handle = holder_handle};

typedef struct where_arg {
    tp_system *sys;
    const char *name;
    tp_pid want; // nil: nobody
} where_arg;

static bool
whereis_is(void *arg)
{
    where_arg *w = arg;
    tp_pid p;
    int rc = tp_global_whereis(w->sys, w->name, &p);
    return tp_pid_is_nil(w->want) ? rc == TP_ENOACTOR
                                  : rc == 0 && tp_pid_eq(p, w->want);
}

// A sender that reaches a global name from an actor.
static int
gsend_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    return tp_global_send(ctx, arg, TAG_WORK, NULL, 0);
}

static const tp_behaviour gsend_b = {
    .name = "gsend", .init = gsend_init, .handle = holder_handle};

START_TEST(global_name_has_one_holder)
{
    tp_system *s[2] = {tpn_local("na", NULL), tpn_local("nb", NULL)};
    connect_all(s, 2);
    reset_counts();
    tp_pid a = spawn_worker(s[0], 0), b = spawn_worker(s[1], 1);
    ck_assert_int_eq(tp_global_register(s[0], "leader", a), 0);
    ck_assert_int_eq(tp_global_register(s[0], "leader", a), 0); // again
    tp_pid who;
    ck_assert_int_eq(tp_global_whereis(s[0], "leader", &who), 0);
    ck_assert(tp_pid_eq(who, a));
    // Node b sees it as a remote pid, and cannot take the name.
    ck_assert_int_eq(tp_global_register(s[0], "leader", spawn_worker(s[0], 2)),
                     TP_EEXIST);
    for (int i = 0; i < 10000 && tp_global_whereis(s[1], "leader", &who) != 0;
         i++)
        tpt_nap_us(500);
    ck_assert_int_eq(tp_global_whereis(s[1], "leader", &who), 0);
    ck_assert_uint_ne(tp_pid_node(who), 0);
    ck_assert_int_eq(tp_global_register(s[1], "leader", b), TP_EEXIST);
    ck_assert_int_eq(tp_global_unregister(s[1], "leader"), TP_ENOENT);
    // A message sent to the name from node b reaches the holder on a.
    ck_assert_int_eq(tp_spawn(s[1], &gsend_b, "leader", NULL, NULL), 0);
    ck_assert(tpt_wait_ge(&handled[0], 1, 10.0));
    // The holder exits: the name is free on both nodes; b takes it.
    ck_assert_int_eq(tp_system_send(s[0], a, TAG_STOP, NULL, 0), 0);
    where_arg none0 = {s[0], "leader", TP_PID_NIL},
              none1 = {s[1], "leader", TP_PID_NIL};
    ck_assert(tpt_wait_until(whereis_is, &none0, 10.0));
    ck_assert(tpt_wait_until(whereis_is, &none1, 10.0));
    ck_assert_int_eq(tp_global_register(s[1], "leader", b), 0);
    ck_assert_int_eq(tp_global_unregister(s[1], "leader"), 0);
    ck_assert(tpt_wait_until(whereis_is, &none0, 10.0));
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

START_TEST(global_name_conflict_after_partition)
{
    // "pa@..." sorts before "pb@...": a's holder keeps the name.
    tp_system *s[2] = {tpn_local("pa", NULL), tpn_local("pb", NULL)};
    atomic_store(&lost_count, 0);
    tp_pid ha, hb;
    ck_assert_int_eq(tp_spawn(s[0], &holder_b, NULL, NULL, &ha), 0);
    ck_assert_int_eq(tp_spawn(s[1], &holder_b, NULL, NULL, &hb), 0);
    // Apart, each registers the name.
    ck_assert_int_eq(tp_global_register(s[0], "boss", ha), 0);
    ck_assert_int_eq(tp_global_register(s[1], "boss", hb), 0);
    connect_all(s, 2);
    where_arg w0 = {s[0], "boss", ha};
    ck_assert(tpt_wait_until(whereis_is, &w0, 10.0));
    // On b the rule gives it to a's holder too; b's holder hears it lost.
    for (int i = 0; i < 20000 && atomic_load(&lost_count) == 0; i++)
        tpt_nap_us(500);
    ck_assert_int_eq(atomic_load(&lost_count), 1);
    tp_pid who;
    ck_assert_int_eq(tp_global_whereis(s[1], "boss", &who), 0);
    ck_assert_uint_ne(tp_pid_node(who), 0);
    ck_assert_uint_eq(atomic_load(&lost_to), who.v);
    ck_assert_int_eq(tp_global_unregister(s[1], "boss"), TP_ENOENT);
    // And a's view holds a's holder alone.
    ck_assert_int_eq(tp_global_whereis(s[0], "boss", &who), 0);
    ck_assert(tp_pid_eq(who, ha));
    for (int i = 2; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

// ---- a mesh of nodes joined from one seed -------------------------------

#define MESH_N 8

typedef struct up_arg {
    tp_system *sys;
    int want;
} up_arg;

static bool
peers_up_is(void *arg)
{
    up_arg *u = arg;
    tp_peer_info info[MESH_N];
    int n = tp_node_peers(u->sys, info, MESH_N);
    int up = 0;
    for (int i = 0; i < n && i < MESH_N; i++)
        up += info[i].state == TP_PEER_UP;
    return up == u->want;
}

START_TEST(mesh_forms_from_one_seed)
{
    tp_system *s[MESH_N];
    char name[16];
    for (int i = 0; i < MESH_N; i++) {
        snprintf(name, sizeof name, "m%d", i);
        s[i] = tpn_local(name, &(tp_node_config){.mesh = true});
    }
    // Each node is told of the first only; the mesh does the rest.
    for (int i = 1; i < MESH_N; i++)
        ck_assert_int_eq(tp_node_connect(s[i], tp_node_name(s[0]), 0), 0);
    for (int i = 0; i < MESH_N; i++) {
        up_arg u = {s[i], MESH_N - 1};
        ck_assert(tpt_wait_until(peers_up_is, &u, 20.0));
    }
    // A group over the mesh: every node sees every member.
    for (int i = 0; i < MESH_N; i++)
        ck_assert_int_eq(tp_group_join(s[i], "all", spawn_worker(s[i], i)), 0);
    for (int i = 0; i < MESH_N; i++)
        ck_assert(await_count(s[i], "all", MESH_N));
    // A member node goes: the others see it down and its member gone.
    ck_assert_int_eq(tp_system_destroy(&s[MESH_N - 1]), 0);
    for (int i = 0; i < MESH_N - 1; i++) {
        up_arg u = {s[i], MESH_N - 2};
        ck_assert(tpt_wait_until(peers_up_is, &u, 20.0));
        ck_assert(await_count(s[i], "all", MESH_N - 1));
    }
    for (int i = MESH_N - 1; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

START_TEST(seeds_by_address_and_by_dns_name)
{
    tp_system *a = tpn_local("dn", NULL);
    const char *an = tp_node_name(a); // dn@127.0.0.1:PORT
    char seeds[128];
    // "localhost" resolves (/etc/hosts) to 127.0.0.1: node dn there.
    snprintf(seeds, sizeof seeds, " other@127.0.0.1:1 ,dn@localhost:%s",
             strrchr(an, ':') + 1);
    tp_system *b = tpn_local("ds", &(tp_node_config){.seeds = seeds});
    tp_system *c = tpn_local("dt", &(tp_node_config){.seeds = an});
    for (int k = 0; k < 2; k++) {
        tp_system *sys = k == 0 ? b : c;
        up_arg u = {sys, 1};
        ck_assert(tpt_wait_until(peers_up_is, &u, 10.0));
        tp_peer_info pi[4];
        int n = tp_node_peers(sys, pi, 4);
        bool found = false;
        for (int i = 0; i < n && i < 4; i++)
            found |= strcmp(pi[i].node, an) == 0 && pi[i].state == TP_PEER_UP;
        ck_assert(found);
    }
    ck_assert_int_eq(tp_node_seeds_check(NULL), 0);
    ck_assert_int_eq(tp_node_seeds_check(""), 0);
    ck_assert_int_eq(tp_node_seeds_check("a@b.example:4370, c@[::1]:1"), 0);
    const char *bad[] = {"a@b",       "a@:1",    "@b:1",    "a@b:0",
                         "a@b:65536", "a@b:01",  "a@-b:1",  "a@b-.c:1",
                         "a@b..c:1",  "a b@c:1", "a@b_c:1", "a@[::1:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tp_node_seeds_check(bad[i]) == TP_EINVAL, "%s", bad[i]);
    tp_system *d = tpt_system(1);
    ck_assert_int_eq(
        tp_node_start(d, &(tp_node_config){.name = "dx", .seeds = "a@b"}),
        TP_EINVAL);
    ck_assert_int_eq(tp_system_destroy(&d), 0);
    ck_assert_int_eq(tp_system_destroy(&c), 0);
    ck_assert_int_eq(tp_system_destroy(&b), 0);
    ck_assert_int_eq(tp_system_destroy(&a), 0);
}
END_TEST

// Whether this machine can listen on the IPv6 loopback address.
static bool
have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

START_TEST(groups_over_ipv6)
{
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "groups_over_ipv6: no IPv6 loopback here, skipped\n");
        return;
    }
    tp_node_config v6 = {.listen = "[::1]:0", .mesh = true};
    tp_system *s[3] = {tpn_local("va", &v6), tpn_local("vb", &v6),
                       tpn_local("vc", &v6)};
    ck_assert_int_eq(strncmp(tp_node_name(s[0]), "va@[::1]:", 9), 0);
    // One seed, the mesh does the rest, over IPv6.
    for (int i = 1; i < 3; i++)
        ck_assert_int_eq(tp_node_connect(s[i], tp_node_name(s[0]), 5000), 0);
    for (int i = 0; i < 3; i++) {
        up_arg u = {s[i], 2};
        ck_assert(tpt_wait_until(peers_up_is, &u, 10.0));
        ck_assert_int_eq(tp_group_join(s[i], "v6", spawn_worker(s[i], i)), 0);
    }
    for (int i = 0; i < 3; i++)
        ck_assert(await_count(s[i], "v6", 3));
    tp_pid a = spawn_worker(s[2], 9);
    ck_assert_int_eq(tp_global_register(s[2], "v6-leader", a), 0);
    where_arg w = {s[0], "v6-leader", TP_PID_NIL};
    for (int i = 0;
         i < 10000 && tp_global_whereis(s[0], "v6-leader", &w.want) != 0; i++)
        tpt_nap_us(500);
    ck_assert_uint_ne(tp_pid_node(w.want), 0);
    for (int i = 3; i-- > 0;)
        ck_assert_int_eq(tp_system_destroy(&s[i]), 0);
}
END_TEST

static void
nodes_setup(void)
{
    tpn_setup();
}

static void
nodes_teardown(void)
{
    tpn_teardown();
}

Suite *
group_suite(void)
{
    Suite *s = suite_create("group");
    TCase *tc = tcase_create("local");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, join_leave_members);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, exited_member_leaves);
    tcase_add_test(tc, monitor_gets_current_members_first);
    tcase_add_test(tc, group_send_reaches_every_member);
    tcase_add_test(tc, router_round_robin_and_random);
    tcase_add_test(tc, router_hash_is_stable);
    tcase_add_test(tc, router_least_loaded_avoids_busy_members);
    tcase_add_test(tc, router_skips_dead_and_full_members);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("nodes");
    tcase_set_timeout(tn, 60);
    tcase_add_checked_fixture(tn, nodes_setup, nodes_teardown);
    tcase_add_test(tn, groups_span_nodes);
    tcase_add_test(tn, routers_under_load_across_nodes);
    tcase_add_test(tn, killed_server_restarts);
    tcase_add_test(tn, lost_node_members_leave_and_come_back);
    tcase_add_test(tn, mesh_forms_from_one_seed);
    tcase_add_test(tn, restarted_server_without_members_asks_again);
    tcase_add_test(tn, many_members_cross_small_frames);
    tcase_add_test(tn, global_name_has_one_holder);
    tcase_add_test(tn, global_name_conflict_after_partition);
    tcase_add_test(tn, seeds_by_address_and_by_dns_name);
    tcase_add_test(tn, groups_over_ipv6);
    suite_add_tcase(s, tn);
    return s;
}
