// SPDX-License-Identifier: MIT
// The intrusive MPSC queue behind both mailbox lanes (lib/core/mailbox.c):
// FIFO order per producer, the stub and the popped message that stays
// linked as the next stub, a producer caught between its exchange and its
// link, chains, and both lanes of one actor under concurrent producers.
// Messages come from malloc: the test threads are no scheduler workers,
// except where a test poses as one to check the message-block pools.
#include "unit.h"

#include <sched.h>
#include <stdlib.h>

#define PRODUCERS 3
#define PER_PRODUCER 20000

typedef struct item {
    uint32_t producer;
    uint32_t seq;
} item;

static tp__msg *
msg_of(uint32_t producer, uint32_t seq)
{
    item it = {producer, seq};
    tp__msg *m = tp__msg_new_copy(NULL, 1, TP_PID_NIL, &it, sizeof it);
    UNIT_TRUE(m != NULL);
    return m;
}

static item
item_of(const tp__msg *m)
{
    UNIT_EQ(m->pub.size, sizeof(item));
    return *(const item *)m->pub.data;
}

START_TEST(empty_queue_pops_nothing)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    ck_assert_ptr_eq(atomic_load(&q.head), &q.stub);
    ck_assert_ptr_eq(q.tail, &q.stub);
    tp__mailbox_close(&q);
}
END_TEST

// A popped message stays the queue's stub until the next pop frees it;
// the queue then reads empty again, and close frees the last one.
START_TEST(popped_message_becomes_stub)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    tp__msg *a = msg_of(0, 0);
    tp__mpscq_push(&q, &a->node);
    ck_assert_ptr_eq(tp__mailbox_pop(&q), a);
    ck_assert_ptr_eq(q.tail, &a->node);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    ck_assert_ptr_eq(q.tail, &a->node);

    tp__msg *b = msg_of(0, 1);
    tp__mpscq_push(&q, &b->node);
    ck_assert_ptr_eq(tp__mailbox_pop(&q), b); // frees a
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    tp__mailbox_close(&q); // frees b
    ck_assert_ptr_eq(q.tail, &q.stub);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
}
END_TEST

START_TEST(single_producer_fifo)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    for (uint32_t round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 1000; i++)
            tp__mpscq_push(&q, &msg_of(round, i)->node);
        for (uint32_t i = 0; i < 1000; i++) {
            tp__msg *m = tp__mailbox_pop(&q);
            UNIT_TRUE(m != NULL);
            UNIT_EQ(item_of(m).producer, round);
            UNIT_EQ(item_of(m).seq, i);
            tp__msg_retire(m);
        }
        ck_assert_ptr_null(tp__mailbox_pop(&q));
    }
    tp__mailbox_close(&q);
}
END_TEST

// A producer that has swapped the head but not yet linked its node: the
// consumer sees nothing past the link (NULL, "retry later"), and nothing
// is lost once the link lands, even with a later push behind it.
START_TEST(producer_between_exchange_and_link)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    tp__msg *first = msg_of(0, 0), *slow = msg_of(1, 0), *late = msg_of(2, 0);
    tp__mpscq_push(&q, &first->node);

    // The first half of tp__mpscq_push, done by hand.
    atomic_store(&slow->node.next, NULL);
    tp__node *prev = atomic_exchange(&q.head, &slow->node);
    ck_assert_ptr_eq(prev, &first->node);
    tp__mpscq_push(&q, &late->node); // links behind `slow`

    ck_assert_ptr_eq(tp__mailbox_pop(&q), first);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    ck_assert_ptr_null(tp__mailbox_pop(&q));

    atomic_store(&prev->next, &slow->node); // the second half
    ck_assert_ptr_eq(tp__mailbox_pop(&q), slow);
    ck_assert_ptr_eq(tp__mailbox_pop(&q), late);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    tp__mailbox_close(&q);
}
END_TEST

START_TEST(chain_keeps_order_after_earlier_pushes)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    tp__mpscq_push(&q, &msg_of(0, 0)->node);
    tp__msg *c[4];
    for (uint32_t i = 0; i < 4; i++)
        c[i] = msg_of(0, i + 1);
    for (uint32_t i = 0; i + 1 < 4; i++)
        atomic_store_explicit(&c[i]->node.next, &c[i + 1]->node,
                              memory_order_relaxed);
    tp__mpscq_push_chain(&q, &c[0]->node, &c[3]->node);
    tp__mpscq_push(&q, &msg_of(0, 5)->node);
    for (uint32_t i = 0; i <= 5; i++) {
        tp__msg *m = tp__mailbox_pop(&q);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(item_of(m).seq, i);
    }
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    tp__mailbox_close(&q);
}
END_TEST

// A chain of one is a push.
START_TEST(chain_of_one)
{
    tp__mpscq q;
    tp__mpscq_init(&q);
    tp__msg *m = msg_of(0, 0);
    tp__mpscq_push_chain(&q, &m->node, &m->node);
    ck_assert_ptr_eq(tp__mailbox_pop(&q), m);
    ck_assert_ptr_null(tp__mailbox_pop(&q));
    tp__mailbox_close(&q);
}
END_TEST

// ---- concurrent producers ---------------------------------------------

typedef struct producer {
    pthread_t thread;
    tp_actor *a;
    uint32_t id;
    bool both; // alternate between the lanes, the system lane on odd seqs
} producer;

static void *
produce(void *arg)
{
    producer *p = arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        tp__mpscq *q = p->both && (i & 1) ? &p->a->sys : &p->a->user;
        tp__mpscq_push(q, &msg_of(p->id, i)->node);
    }
    return NULL;
}

// Pops what `q` has and checks each producer's order within the lane:
// `next[p]` is the sequence number expected next, advancing by `step`.
static unsigned
drain_lane(tp__mpscq *q, uint32_t *next, uint32_t step)
{
    unsigned n = 0;
    tp__msg *m;
    while ((m = tp__mailbox_pop(q)) != NULL) {
        item it = item_of(m);
        UNIT_TRUE(it.producer < PRODUCERS);
        UNIT_EQ(it.seq, next[it.producer]);
        next[it.producer] += step;
        tp__msg_retire(m);
        n++;
    }
    return n;
}

static void
run_producers(bool both)
{
    tp_actor *a = unit_actor_new();
    producer p[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        p[i] = (producer){.a = a, .id = i, .both = both};
        ck_assert_int_eq(pthread_create(&p[i].thread, NULL, produce, &p[i]),
                         0);
    }
    uint32_t next_user[PRODUCERS] = {0}, next_sys[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++)
        next_sys[i] = 1;
    unsigned got = 0, want = PRODUCERS * PER_PRODUCER;
    uint32_t step = both ? 2 : 1;
    while (got < want) {
        // The system lane first, as an activation reads them.
        unsigned n = drain_lane(&a->sys, next_sys, step);
        n += drain_lane(&a->user, next_user, step);
        if (n == 0)
            sched_yield();
        got += n;
    }
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        pthread_join(p[i].thread, NULL);
        ck_assert_uint_eq(next_user[i], PER_PRODUCER);
        if (both)
            ck_assert_uint_eq(next_sys[i], PER_PRODUCER + 1);
    }
    ck_assert_ptr_null(tp__mailbox_pop(&a->user));
    ck_assert_ptr_null(tp__mailbox_pop(&a->sys));
    tp__mailbox_close(&a->user);
    tp__mailbox_close(&a->sys);
    free(a);
}

START_TEST(producers_keep_their_order)
{
    run_producers(false);
}
END_TEST

START_TEST(producers_keep_their_order_in_both_lanes)
{
    run_producers(true);
}
END_TEST

// ---- which lane a signal takes ------------------------------------------

static bool
ordered(uint16_t kind, int32_t reason, uint8_t linked)
{
    tp__signal s = {.reason = reason, .linked = linked};
    tp__msg m = {.kind = kind};
    m.pub.data = &s;
    return tp__msg_ordered(&m);
}

START_TEST(signals_choose_their_lane)
{
    ck_assert(!ordered(TP__MSG_USER, 0, 0));
    ck_assert(!ordered(TP__MSG_OVERFLOW_KILL, 0, 0));
    ck_assert(ordered(TP__MSG_LINK, 0, 0));
    ck_assert(ordered(TP__MSG_UNLINK, 0, 0));
    ck_assert(ordered(TP__MSG_MONITOR, 0, 0));
    ck_assert(ordered(TP__MSG_DEMONITOR, 0, 0));
    ck_assert(ordered(TP__MSG_DOWN, TP_REASON_KILL, 0));
    ck_assert(!ordered(TP__MSG_TIMEOUT, 0, 0));
    ck_assert(!ordered(TP__MSG_INFO, 0, 0));
    // An exit signal keeps its place unless it is an untrappable kill.
    ck_assert(ordered(TP__MSG_EXIT, TP_REASON_NORMAL, 0));
    ck_assert(ordered(TP__MSG_EXIT, TP_REASON_KILL, 1));
    ck_assert(!ordered(TP__MSG_EXIT, TP_REASON_KILL, 0));
}
END_TEST

// ---- message blocks going back to the worker they came from -------------

// Blocks that worker 1 allocated and worker 0 freed go back to worker 1 in
// batches. Worker 1 counts what it takes exactly, so it goes on caching up
// to its bound instead of handing blocks to malloc early.
START_TEST(returned_blocks_are_counted)
{
    enum { N = 640 }; // ten batches
    tp_system *sys = unit_system_new(2);
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(tp__pool_init(&sys->workers[i], 2), 0);
    tp__worker *was = tp__self.worker, *w1 = &sys->workers[1];
    static tp__msg *m[N];
    tp__self.worker = w1;
    for (int i = 0; i < N; i++)
        UNIT_TRUE((m[i] = tp__msg_new_copy(sys, 1, TP_PID_NIL, NULL, 0)));
    tp__self.worker = &sys->workers[0];
    for (int i = 0; i < N; i++)
        tp__msg_free(m[i]);
    UNIT_EQ(atomic_load(&w1->remote_len), N);
    tp__self.worker = w1;
    tp__msg *one = tp__msg_new_copy(sys, 1, TP_PID_NIL, NULL, 0);
    UNIT_TRUE(one != NULL);
    UNIT_EQ(w1->pool_len, N - 1);
    UNIT_EQ(atomic_load(&w1->remote_len), 0);
    tp__msg_free(one);
    UNIT_EQ(w1->pool_len, N);
    // Emptied, the pool counts none, whatever it was told.
    for (int i = 0; i < N; i++)
        UNIT_TRUE((m[i] = tp__msg_new_copy(sys, 1, TP_PID_NIL, NULL, 0)));
    ck_assert_ptr_null(w1->pool);
    UNIT_EQ(w1->pool_len, 0);
    for (int i = 0; i < N; i++)
        tp__msg_free(m[i]);
    UNIT_EQ(w1->pool_len, N);
    tp__self.worker = was;
    for (unsigned i = 0; i < 2; i++)
        tp__pool_free_all(&sys->workers[i], 2);
    unit_system_free(sys);
}
END_TEST

Suite *
mailbox_unit_suite(void)
{
    Suite *s = suite_create("unit_mailbox");
    TCase *tc = tcase_create("mpscq");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, empty_queue_pops_nothing);
    tcase_add_test(tc, popped_message_becomes_stub);
    tcase_add_test(tc, single_producer_fifo);
    tcase_add_test(tc, producer_between_exchange_and_link);
    tcase_add_test(tc, chain_keeps_order_after_earlier_pushes);
    tcase_add_test(tc, chain_of_one);
    tcase_add_test(tc, producers_keep_their_order);
    tcase_add_test(tc, producers_keep_their_order_in_both_lanes);
    tcase_add_test(tc, signals_choose_their_lane);
    tcase_add_test(tc, returned_blocks_are_counted);
    suite_add_tcase(s, tc);
    return s;
}
