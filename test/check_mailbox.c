// SPDX-License-Identifier: MIT
// Mailboxes: exact delivery and per-producer FIFO, every overflow policy at
// its bound, the system lane getting through a full user lane, and
// backpressure keeping memory bounded.
#include "tp_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    long producer, seq;
} item;

#define MAXP 64

// The consumer checks each producer's sequence is consecutive.
typedef struct consumer {
    long next[MAXP];
} consumer;

static _Atomic long consumed, order_errors;

static int
consumer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    consumer *c = state;
    if (msg->size != sizeof(item))
        return TP_EINVAL;
    item it;
    memcpy(&it, msg->data, sizeof it);
    if (it.producer < 0 || it.producer >= MAXP ||
        it.seq != c->next[it.producer])
        atomic_fetch_add(&order_errors, 1);
    c->next[it.producer] = it.seq + 1;
    atomic_fetch_add(&consumed, 1);
    return TP_OK;
}

static const tp_behaviour consumer_b = {.name = "consumer",
                                        .state_size = sizeof(consumer),
                                        .handle = consumer_handle};

typedef struct producer {
    tp_pid to;
    long id, next, count;
} producer;

static int
producer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    producer *p = state;
    if (msg->tag == 1)
        memcpy(p, msg->data, sizeof *p);
    for (int i = 0; i < 100 && p->next < p->count; i++) {
        item it = {p->id, p->next};
        int rc = tp_send(ctx, p->to, 7, &it, sizeof it);
        if (rc == TP_EFULL)
            break; // far over capacity: try again after a pause
        if (rc != 0)
            return rc;
        p->next++;
    }
    if (p->next == p->count)
        return TP_STOP;
    return tp_send(ctx, tp_self(ctx), 2, NULL, 0);
}

static const tp_behaviour producer_b = {.name = "producer",
                                        .state_size = sizeof(producer),
                                        .handle = producer_handle};

static void
fifo_with_actor_producers(long nprod, uint32_t capacity)
{
    long per = tpt_scaled(2000000) / nprod;
    tp_system *sys = tpt_system(nprod > 1 ? 4 : 2);
    tp_pid c;
    tp_spawn_opts o = {.mailbox_capacity = capacity};
    ck_assert_int_eq(tp_spawn(sys, &consumer_b, NULL, &o, &c), 0);
    for (long i = 0; i < nprod; i++) {
        tp_pid p;
        producer init = {c, i, 0, per};
        ck_assert_int_eq(tp_spawn(sys, &producer_b, NULL, NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, &init, sizeof init), 0);
    }
    ck_assert(tpt_wait_ge(&consumed, per * nprod, 120));
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, c, &st), 0);
    // Each sender may overshoot a full mailbox by a capacity per activation,
    // and the count includes up to a quarter capacity handled but not yet
    // given back by the receiver.
    ck_assert_uint_le(st.high_water,
                      capacity * (uint32_t)(nprod + 1) + capacity / 4);
    ck_assert_uint_eq(st.dropped, 0);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&consumed), per * nprod);
    ck_assert_int_eq(atomic_load(&order_errors), 0);
}

START_TEST(test_fifo_1_producer)
{
    fifo_with_actor_producers(1, 1024);
}
END_TEST

START_TEST(test_fifo_2_producers)
{
    fifo_with_actor_producers(2, 1024);
}
END_TEST

START_TEST(test_fifo_8_producers_small_mailbox)
{
    fifo_with_actor_producers(8, 16);
}
END_TEST

typedef struct ext_arg {
    tp_system *sys;
    tp_pid to;
    long id, count;
} ext_arg;

static void *
ext_producer(void *p)
{
    ext_arg *a = p;
    for (long i = 0; i < a->count; i++) {
        item it = {a->id, i};
        int rc;
        while ((rc = tp_system_send(a->sys, a->to, 7, &it, sizeof it)) ==
               TP_ETIMEDOUT)
            ;
        ck_assert_int_eq(rc, 0);
    }
    return NULL;
}

START_TEST(test_fifo_external_threads)
{
    enum { N = 8 };
    long per = tpt_scaled(400000) / N;
    tp_system *sys = tpt_system(2);
    tp_pid c;
    ck_assert_int_eq(tp_spawn(sys, &consumer_b, NULL,
                              &(tp_spawn_opts){.mailbox_capacity = 64}, &c),
                     0);
    pthread_t t[N];
    ext_arg a[N];
    for (long i = 0; i < N; i++) {
        a[i] = (ext_arg){sys, c, i, per};
        pthread_create(&t[i], NULL, ext_producer, &a[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    ck_assert(tpt_wait_ge(&consumed, per * N, 60));
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, c, &st), 0);
    // Threads wait for room: one message over per sending thread at most.
    ck_assert_uint_le(st.high_water, 64 + N);
    tp_system_destroy(&sys);
    ck_assert_int_eq(atomic_load(&order_errors), 0);
}
END_TEST

// Overflow policies, checked on a system not yet started so nothing
// drains; then started to see what was kept.
static _Atomic long seen_values[16], seen_count, seen_at_marker = -1;
static _Atomic long term_reason = 999, terms;

// Records each value; a tag 2 marker is not recorded but notes the count.
static int
record_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag == 2) {
        atomic_store(&seen_at_marker, atomic_load(&seen_count));
        return TP_OK;
    }
    long v;
    memcpy(&v, msg->data, sizeof v);
    long i = atomic_fetch_add(&seen_count, 1);
    if (i < 16)
        atomic_store(&seen_values[i], v);
    return TP_OK;
}

static void
record_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)state;
    atomic_store(&term_reason, reason);
    atomic_fetch_add(&terms, 1);
}

static const tp_behaviour record_b = {
    .name = "record", .handle = record_handle, .terminate = record_terminate};

static tp_system *
unstarted(void)
{
    tp_system *sys;
    ck_assert_int_eq(
        tp_system_new(&(tp_config){.threads = 2, .send_timeout_ms = 50}, &sys),
        0);
    return sys;
}

static tp_pid
spawn_policy(tp_system *sys, tp_overflow policy)
{
    tp_pid pid;
    tp_spawn_opts o = {.mailbox_capacity = 8, .overflow = policy};
    ck_assert_int_eq(tp_spawn(sys, &record_b, NULL, &o, &pid), 0);
    return pid;
}

static void
fill(tp_system *sys, tp_pid pid, long n)
{
    for (long v = 0; v < n; v++)
        ck_assert_int_eq(tp_system_send(sys, pid, 1, &v, sizeof v), 0);
}

// Checks that `pid`, having recorded eight values, has nothing more
// queued: a marker sent now is handled after anything still there.
static void
nothing_after_eight(tp_system *sys, tp_pid pid)
{
    ck_assert_int_eq(tp_system_send(sys, pid, 2, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&seen_at_marker, 0, 20));
    ck_assert_int_eq(seen_at_marker, 8);
}

START_TEST(test_reject)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_REJECT);
    fill(sys, pid, 8);
    long v = 8;
    ck_assert_int_eq(tp_system_send(sys, pid, 1, &v, sizeof v), TP_EFULL);
    char *buf = malloc(16);
    ck_assert_int_eq(tp_system_send_buf(sys, pid, 1, buf, 16), TP_EFULL);
    free(buf); // still ours after a failure
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.length, 8);
    ck_assert_uint_eq(st.high_water, 8);
    ck_assert_uint_eq(st.rejected, 2);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert(tpt_wait_ge(&seen_count, 8, 20));
    nothing_after_eight(sys, pid);
    for (long i = 0; i < 8; i++)
        ck_assert_int_eq(atomic_load(&seen_values[i]), i);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_drop_newest)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_DROP_NEWEST);
    fill(sys, pid, 12);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.length, 8);
    ck_assert_uint_eq(st.dropped, 4);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert(tpt_wait_ge(&seen_count, 8, 20));
    nothing_after_eight(sys, pid);
    for (long i = 0; i < 8; i++)
        ck_assert_int_eq(atomic_load(&seen_values[i]), i);
    tp_system_stats ss;
    tp_system_stats_get(sys, &ss);
    ck_assert_uint_eq(ss.dead_letters, 4);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_drop_oldest)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_DROP_OLDEST);
    fill(sys, pid, 12);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert(tpt_wait_ge(&seen_count, 8, 20));
    nothing_after_eight(sys, pid);
    for (long i = 0; i < 8; i++) // the newest eight survive, in order
        ck_assert_int_eq(atomic_load(&seen_values[i]), i + 4);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.dropped, 4);
    tp_system_destroy(&sys);
}
END_TEST

// Past twice the capacity the newest is dropped instead, so a receiver that
// is not running cannot make its mailbox grow without bound.
START_TEST(test_drop_oldest_memory_bounded)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_DROP_OLDEST);
    fill(sys, pid, 1000);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.length, 16);
    ck_assert_uint_eq(st.dropped, 984);
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert(tpt_wait_ge(&seen_count, 8, 20));
    nothing_after_eight(sys, pid);
    for (long i = 0; i < 8; i++)
        ck_assert_int_eq(atomic_load(&seen_values[i]), i + 8);
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.dropped, 992);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_exit_receiver_through_full_lane)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_EXIT_RECEIVER);
    fill(sys, pid, 9); // the ninth overflows
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert_int_eq(tp_system_wait(sys, 20000), 0);
    ck_assert_int_eq(atomic_load(&terms), 1);
    ck_assert_int_eq(atomic_load(&term_reason), TP_REASON_MAILBOX_OVERFLOW);
    // The kill travelled in the system lane, ahead of the full user lane.
    ck_assert_int_eq(atomic_load(&seen_count), 0);
    tp_system_stats ss;
    tp_system_stats_get(sys, &ss);
    ck_assert_uint_eq(ss.crashed, 1);
    ck_assert_uint_eq(ss.dead_letters, 9); // 1 dropped + 8 queued at death
    ck_assert_int_eq(tp_system_send(sys, pid, 1, "x", 1), TP_ENOACTOR);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_backpressure_thread_times_out)
{
    tp_system *sys = unstarted();
    tp_pid pid = spawn_policy(sys, TP_OVERFLOW_BACKPRESSURE);
    fill(sys, pid, 8);
    long v = 8;
    ck_assert_int_eq(tp_system_send(sys, pid, 1, &v, sizeof v), TP_ETIMEDOUT);
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, pid, &st), 0);
    ck_assert_uint_eq(st.length, 8); // nothing was sent
    ck_assert_int_eq(tp_system_start(sys), 0);
    ck_assert(tpt_wait_ge(&seen_count, 8, 20));
    // Room again: the same send now succeeds.
    ck_assert_int_eq(tp_system_send(sys, pid, 1, &v, sizeof v), 0);
    ck_assert(tpt_wait_ge(&seen_count, 9, 20));
    tp_system_destroy(&sys);
}
END_TEST

// A fast producer actor and a slow consumer with a small BACKPRESSURE
// mailbox: everything arrives in order and the mailbox stays bounded.
static int
slow_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    consumer_handle(ctx, state, msg);
    for (volatile int i = 0; i < 200; i++)
        ;
    return TP_OK;
}

static const tp_behaviour slow_b = {
    .name = "slow", .state_size = sizeof(consumer), .handle = slow_handle};

START_TEST(test_backpressure_between_actors)
{
    long n = tpt_scaled(1000000);
    tp_system *sys = tpt_system(2);
    tp_pid c, p;
    ck_assert_int_eq(tp_spawn(sys, &slow_b, NULL,
                              &(tp_spawn_opts){.mailbox_capacity = 64}, &c),
                     0);
    ck_assert_int_eq(tp_spawn(sys, &producer_b, NULL, NULL, &p), 0);
    producer init = {c, 0, 0, n};
    ck_assert_int_eq(tp_system_send(sys, p, 1, &init, sizeof init), 0);
    ck_assert(tpt_wait_ge(&consumed, n, 120));
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, c, &st), 0);
    ck_assert_uint_le(st.high_water, 128); // twice the capacity at most
    ck_assert_uint_ge(st.high_water, 64);  // it did fill up
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_int_eq(atomic_load(&order_errors), 0);
    tp_system_destroy(&sys);
}
END_TEST

// Two actors flooding each other's small BACKPRESSURE mailboxes: neither
// may stay muted on a receiver that is itself muted.
static _Atomic long twin_received;

typedef struct twin {
    tp_pid peer;
    long to_send;
    bool reminded; // a reminder to ourselves is queued
} twin;

static int
twin_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    twin *t = state;
    if (msg->tag == 7)
        atomic_fetch_add(&twin_received, 1);
    else if (msg->tag == 1)
        memcpy(t, msg->data, sizeof *t);
    else
        t->reminded = false;
    // Every message is a chance to send more; one reminder at a time keeps
    // us going when nothing else arrives.
    for (int i = 0; i < 50 && t->to_send > 0; i++) {
        int rc = tp_send(ctx, t->peer, 7, NULL, 0);
        if (rc == TP_EFULL)
            break;
        if (rc != 0)
            return rc;
        t->to_send--;
    }
    if (t->to_send > 0 && !t->reminded) {
        int rc = tp_send(ctx, tp_self(ctx), 2, NULL, 0);
        if (rc != 0 && rc != TP_EFULL)
            return rc;
        t->reminded = rc == 0;
    }
    return TP_OK;
}

static const tp_behaviour twin_b = {
    .name = "twin", .state_size = sizeof(twin), .handle = twin_handle};

START_TEST(test_mutual_backpressure_no_deadlock)
{
    long n = tpt_scaled(300000);
    for (unsigned threads = 1; threads <= 2; threads++) {
        atomic_store(&twin_received, 0);
        tp_system *sys = tpt_system(threads);
        tp_pid a, b;
        tp_spawn_opts o = {.mailbox_capacity = 16};
        ck_assert_int_eq(tp_spawn(sys, &twin_b, NULL, &o, &a), 0);
        ck_assert_int_eq(tp_spawn(sys, &twin_b, NULL, &o, &b), 0);
        twin ta = {b, n, false}, tb = {a, n, false};
        ck_assert_int_eq(tp_system_send(sys, a, 1, &ta, sizeof ta), 0);
        ck_assert_int_eq(tp_system_send(sys, b, 1, &tb, sizeof tb), 0);
        ck_assert_msg(tpt_wait_ge(&twin_received, 2 * n, 60),
                      "stuck at %ld of %ld with %u threads",
                      atomic_load(&twin_received), 2 * n, threads);
        tp_system_destroy(&sys);
    }
}
END_TEST

// An actor that sends itself one message per message handled keeps one
// queued: its small mailbox is never full, whatever the batch size, so no
// send may be refused or dropped.
static _Atomic long relay_left, relay_bad;

static int
relay_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    (void)msg;
    if (atomic_fetch_sub(&relay_left, 1) <= 1)
        return TP_STOP;
    int rc = tp_send(ctx, tp_self(ctx), 2, NULL, 0);
    if (rc != 0) {
        atomic_fetch_add(&relay_bad, 1);
        return rc;
    }
    return TP_OK;
}

static const tp_behaviour relay = {.name = "relay", .handle = relay_handle};

START_TEST(test_self_relay_small_mailbox)
{
    static const tp_overflow pol[] = {
        TP_OVERFLOW_BACKPRESSURE, TP_OVERFLOW_REJECT, TP_OVERFLOW_DROP_NEWEST,
        TP_OVERFLOW_DROP_OLDEST};
    for (size_t i = 0; i < sizeof pol / sizeof pol[0]; i++) {
        atomic_store(&relay_left, tpt_scaled(200000));
        atomic_store(&relay_bad, 0);
        tp_system *sys =
            tpt_system_cfg(&(tp_config){.threads = 1, .batch = 1000});
        tp_pid p;
        tp_spawn_opts o = {.mailbox_capacity = 4, .overflow = pol[i]};
        ck_assert_int_eq(tp_spawn(sys, &relay, NULL, &o, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, NULL, 0), 0);
        ck_assert_int_eq(tp_system_wait(sys, 30000), 0);
        ck_assert_msg(atomic_load(&relay_left) == 0 &&
                          atomic_load(&relay_bad) == 0,
                      "policy %d: %ld left, %ld refused", (int)pol[i],
                      atomic_load(&relay_left), atomic_load(&relay_bad));
        tp_system_stats st;
        ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
        ck_assert_uint_eq(st.dead_letters, 0);
        tp_system_destroy(&sys);
    }
}
END_TEST

static _Atomic long big_handled;

static int
big_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&big_handled, 1);
    return TP_OK;
}

static const tp_behaviour big_b = {.name = "big", .handle = big_handle};

typedef struct heap_below {
    size_t limit;
} heap_below;

static bool
heap_is_below(void *p)
{
    return tpt_heap_in_use() < ((heap_below *)p)->limit;
}

// A handled payload is freed when its handler returns, not when the next
// message arrives: an actor keeps its last message as a lane's stub, and
// that must not keep a large payload alive. Eight idle actors, each sent
// one big message, end up holding less than one of them.
START_TEST(test_handled_payload_freed)
{
    enum { N = 8 };
#ifdef TPT_SAN_MALLOC
    size_t size = (size_t)4 << 20; // the sanitizers' shadow grows with it
#else
    size_t size = (size_t)16 << 20;
#endif
    char *payload = malloc(size);
    ck_assert_ptr_nonnull(payload);
    memset(payload, 0x5a, size);
    tp_system *sys = tpt_system(2);
    tp_pid p[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tp_spawn(sys, &big_b, NULL, NULL, &p[i]), 0);
    size_t before = tpt_heap_in_use();
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tp_system_send(sys, p[i], 1, payload, size), 0);
    ck_assert(tpt_wait_ge(&big_handled, N, 60));
    heap_below hb = {before + size};
    bool freed = tpt_wait_until(heap_is_below, &hb, 10);
    ck_assert_msg(freed,
                  "%zu bytes still allocated after %d messages of %zu "
                  "were handled",
                  tpt_heap_in_use() - before, N, size);
    tp_system_destroy(&sys);
    free(payload);
}
END_TEST

// ---- stashing
// ------------------------------------------------------------------

enum { G_WORK = 1, G_OPEN, G_CLOSE, G_SIZE, G_STOP };

#define GATE_LOG 8192

// Handles work while open; stashes it while closed. Opening sends itself
// one more piece of work first, then puts the stash back: the stashed
// work must come before it.
static long gate_log[GATE_LOG];
static _Atomic long gate_seen, gate_full, gate_unstashed, gate_size,
    gate_init_rc, gate_sizes;

static int
gate_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    atomic_store(&gate_init_rc, tp_stash(ctx) == TP_EINVAL &&
                                    tp_unstash_all(ctx) == TP_EINVAL &&
                                    tp_stash_size(ctx) == 0);
    return 0;
}

static int
gate_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    bool *open = state;
    long seq;
    switch (msg->tag) {
    case G_WORK:
        memcpy(&seq, msg->data, sizeof seq);
        if (seq < 0)
            return TP_EINVAL; // crash on purpose
        if (!*open) {
            int rc = tp_stash(ctx);
            if (rc == TP_EFULL)
                atomic_fetch_add(&gate_full, 1);
            else
                ck_assert_int_eq(rc, 0);
            return TP_OK;
        }
        gate_log[atomic_load(&gate_seen) % GATE_LOG] = seq;
        atomic_fetch_add(&gate_seen, 1);
        return TP_OK;
    case G_OPEN: {
        *open = true;
        seq = 99999;
        ck_assert_int_eq(tp_send(ctx, tp_self(ctx), G_WORK, &seq, sizeof seq),
                         0);
        int n = tp_unstash_all(ctx);
        ck_assert_int_eq(tp_stash_size(ctx), 0);
        atomic_store(&gate_unstashed, n);
        return TP_OK;
    }
    case G_CLOSE:
        *open = false;
        return TP_OK;
    case G_SIZE:
        atomic_store(&gate_size, tp_stash_size(ctx));
        atomic_fetch_add(&gate_sizes, 1);
        return TP_OK;
    case G_STOP:
        return TP_STOP;
    }
    return TP_OK;
}

static const tp_behaviour gate_b = {.name = "gate",
                                    .state_size = sizeof(bool),
                                    .init = gate_init,
                                    .handle = gate_handle};

static void
gate_work(tp_system *sys, tp_pid g, long from, long to)
{
    for (long seq = from; seq < to; seq++)
        ck_assert_int_eq(tp_system_send(sys, g, G_WORK, &seq, sizeof seq), 0);
}

static long
gate_size_now(tp_system *sys, tp_pid g)
{
    long want = atomic_load(&gate_sizes) + 1;
    ck_assert_int_eq(tp_system_send(sys, g, G_SIZE, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gate_sizes, want, 20));
    return atomic_load(&gate_size);
}

START_TEST(test_stash_and_unstash)
{
    tp_system *sys = tpt_system(2);
    gate_seen = gate_full = gate_unstashed = gate_sizes = 0;
    tp_pid g;
    ck_assert_int_eq(tp_spawn(sys, &gate_b, NULL,
                              &(tp_spawn_opts){.mailbox_capacity = 8192}, &g),
                     0);
    ck_assert(tpt_wait_ge(&gate_init_rc, 1, 20)); // refused in init
    // Closed: three pieces of work are stashed; opening puts them back
    // ahead of the one it sent itself, which was in the mailbox first.
    gate_work(sys, g, 0, 3);
    ck_assert_int_eq(gate_size_now(sys, g), 3);
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, g, 5000, &d), 0);
    ck_assert_uint_eq(d.stashed, 3);
    ck_assert_int_eq(tp_system_send(sys, g, G_OPEN, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gate_seen, 4, 20));
    gate_work(sys, g, 3, 4);
    ck_assert(tpt_wait_ge(&gate_seen, 5, 20));
    ck_assert_int_eq(atomic_load(&gate_unstashed), 3);
    const long want[] = {0, 1, 2, 99999, 3};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(gate_log[i], want[i]);
    // The bound: TP_STASH_MAX kept, the rest refused with TP_EFULL; all
    // of them handled in order once put back, longer than one activation.
    ck_assert_int_eq(tp_system_send(sys, g, G_CLOSE, NULL, 0), 0);
    gate_work(sys, g, 100, 100 + TP_STASH_MAX + 10);
    ck_assert_int_eq(gate_size_now(sys, g), TP_STASH_MAX);
    ck_assert_int_eq(atomic_load(&gate_full), 10);
    ck_assert_int_eq(tp_system_send(sys, g, G_OPEN, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&gate_seen, 5 + TP_STASH_MAX + 1, 20));
    ck_assert_int_eq(gate_log[5], 100);
    ck_assert_int_eq(gate_log[5 + TP_STASH_MAX - 1], 100 + TP_STASH_MAX - 1);
    ck_assert_int_eq(gate_log[5 + TP_STASH_MAX], 99999);
    ck_assert_int_eq(gate_size_now(sys, g), 0);
    // Outside the actor: refused.
    ck_assert_int_eq(tp_stash(NULL), TP_EINVAL);
    ck_assert_int_eq(tp_unstash_all(NULL), TP_EINVAL);
    ck_assert_int_eq(tp_stash_size(NULL), TP_EINVAL);
    // Stashed and put-back messages die with their actor, freed (the
    // sanitizers' leak check) and counted as dead letters at its death:
    // one that crashes with two stashed (and three queued, counted when
    // it is buried, later), one that stops with five stashed.
    tp_system_stats st0, st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st0), 0);
    tp_pid h;
    ck_assert_int_eq(tp_spawn(sys, &gate_b, NULL, NULL, &h), 0);
    gate_work(sys, h, 0, 2);
    long bad = -1;
    ck_assert_int_eq(tp_system_send(sys, h, G_WORK, &bad, sizeof bad), 0);
    gate_work(sys, h, 2, 4);
    ck_assert_int_eq(tp_system_send(sys, h, G_OPEN, NULL, 0), 0);
    ck_assert_int_eq(tp_system_send(sys, g, G_CLOSE, NULL, 0), 0);
    gate_work(sys, g, 0, 5);
    ck_assert_int_eq(gate_size_now(sys, g), 5);
    ck_assert_int_eq(tp_system_send(sys, g, G_STOP, NULL, 0), 0);
    for (int i = 0; i < 20000; i++) {
        ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
        if (st.dead_letters >= st0.dead_letters + 7)
            break;
        tpt_nap_us(500);
    }
    ck_assert_uint_ge(st.dead_letters, st0.dead_letters + 7);
    ck_assert_uint_le(st.dead_letters, st0.dead_letters + 10);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
mailbox_suite(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("delivery");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_fifo_1_producer);
    tcase_add_test(tc, test_fifo_2_producers);
    tcase_add_test(tc, test_fifo_8_producers_small_mailbox);
    tcase_add_test(tc, test_fifo_external_threads);
    tcase_add_test(tc, test_backpressure_between_actors);
    tcase_add_test(tc, test_mutual_backpressure_no_deadlock);
    suite_add_tcase(s, tc);
    tc = tcase_create("overflow");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reject);
    tcase_add_test(tc, test_drop_newest);
    tcase_add_test(tc, test_drop_oldest);
    tcase_add_test(tc, test_drop_oldest_memory_bounded);
    tcase_add_test(tc, test_self_relay_small_mailbox);
    tcase_add_test(tc, test_exit_receiver_through_full_lane);
    tcase_add_test(tc, test_backpressure_thread_times_out);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_handled_payload_freed);
    tcase_add_test(tc, test_stash_and_unstash);
    suite_add_tcase(s, tc);
    return s;
}
