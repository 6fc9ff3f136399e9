// SPDX-License-Identifier: MIT
// A worker's run queue (lib/core/sched.c, through sched_shim.c): FIFO
// order, the overflow list beyond a full ring and its refill in order,
// stealing half of another worker's ring, and no actor lost or run twice
// while an owner pushes and pops and thieves steal from it.
#include "unit.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <troupe.h>
#include <unistd.h>

#define THIEVES 2
#define ROUNDS 400
#define ACTORS 2048

static tp_actor *
actors_new(unsigned n)
{
    tp_actor *a = calloc(n, sizeof *a);
    ck_assert_ptr_nonnull(a);
    return a;
}

START_TEST(ring_is_fifo)
{
    tp__worker *w = unit_worker_new(NULL, 0);
    tp_actor *a = actors_new(100);
    ck_assert_ptr_null(unit_runq_get(w));
    for (unsigned i = 0; i < 100; i++)
        ck_assert_uint_eq(unit_runq_put(w, &a[i]), i + 1);
    for (unsigned i = 0; i < 100; i++)
        ck_assert_ptr_eq(unit_runq_get(w), &a[i]);
    ck_assert_ptr_null(unit_runq_get(w));
    free(a);
    free(w);
}
END_TEST

// The ring's indices wrap around its size many times.
START_TEST(ring_wraps)
{
    tp__worker *w = unit_worker_new(NULL, 0);
    tp_actor *a = actors_new(3);
    for (unsigned i = 0; i < 5 * TP__RUNQ_SIZE; i++) {
        unit_runq_put(w, &a[i % 3]);
        unit_runq_put(w, &a[(i + 1) % 3]);
        UNIT_EQ(unit_runq_get(w), &a[i % 3]);
        UNIT_EQ(unit_runq_get(w), &a[(i + 1) % 3]);
    }
    ck_assert_ptr_null(unit_runq_get(w));
    free(a);
    free(w);
}
END_TEST

// Beyond a full ring, actors wait in the overflow list; refills move them
// into the ring in order, and later puts queue behind them.
START_TEST(overflow_keeps_order)
{
    tp__worker *w = unit_worker_new(NULL, 0);
    unsigned n = TP__RUNQ_SIZE + 300;
    tp_actor *a = actors_new(n + 1);
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = unit_runq_put(w, &a[i]);
        UNIT_EQ(len, i < TP__RUNQ_SIZE ? i + 1 : TP__RUNQ_SIZE);
    }
    ck_assert_ptr_eq(w->overflow.head, &a[TP__RUNQ_SIZE]);
    for (unsigned i = 0; i < n; i++) {
        if (i == 10) // room in the ring now, yet order stays
            unit_runq_put(w, &a[n]);
        if (w->overflow.head != NULL)
            unit_runq_refill(w);
        UNIT_EQ(unit_runq_get(w), &a[i]);
    }
    ck_assert_ptr_eq(unit_runq_get(w), &a[n]);
    ck_assert_ptr_null(unit_runq_get(w));
    ck_assert_ptr_null(w->overflow.head);
    ck_assert_ptr_null(w->overflow.tail);
    free(a);
    free(w);
}
END_TEST

// A thief takes the older half (rounded up) of the ring: one actor to run
// now, the rest into its own ring, in order.
START_TEST(steal_takes_older_half)
{
    tp__worker *v = unit_worker_new(NULL, 0), *t = unit_worker_new(NULL, 1);
    tp_actor *a = actors_new(9);
    for (unsigned i = 0; i < 9; i++)
        unit_runq_put(v, &a[i]);
    ck_assert_ptr_eq(unit_runq_steal(t, v, false), &a[0]);
    ck_assert_uint_eq(atomic_load(&t->steals), 5);
    for (unsigned i = 1; i < 5; i++)
        ck_assert_ptr_eq(unit_runq_get(t), &a[i]);
    ck_assert_ptr_null(unit_runq_get(t));
    for (unsigned i = 5; i < 9; i++)
        ck_assert_ptr_eq(unit_runq_get(v), &a[i]);
    ck_assert_ptr_null(unit_runq_get(v));
    ck_assert_ptr_null(unit_runq_steal(t, v, true));
    free(a);
    free(v);
    free(t);
}
END_TEST

// A short ring is left to its owner unless the thief says it may take it.
START_TEST(short_ring_stolen_only_when_allowed)
{
    tp__worker *v = unit_worker_new(NULL, 0), *t = unit_worker_new(NULL, 1);
    tp_actor *a = actors_new(3);
    for (unsigned i = 0; i < 3; i++)
        unit_runq_put(v, &a[i]);
    ck_assert_ptr_null(unit_runq_steal(t, v, false));
    ck_assert_ptr_eq(unit_runq_steal(t, v, true), &a[0]);
    ck_assert_ptr_eq(unit_runq_get(t), &a[1]);
    ck_assert_ptr_eq(unit_runq_get(v), &a[2]);
    ck_assert_ptr_null(unit_runq_get(v));
    ck_assert_ptr_null(unit_runq_get(t));
    free(a);
    free(v);
    free(t);
}
END_TEST

// A thief never takes what waits in the owner's overflow list.
START_TEST(steal_leaves_overflow_to_owner)
{
    tp__worker *v = unit_worker_new(NULL, 0), *t = unit_worker_new(NULL, 1);
    unsigned n = TP__RUNQ_SIZE + 2;
    tp_actor *a = actors_new(n);
    for (unsigned i = 0; i < n; i++)
        unit_runq_put(v, &a[i]);
    ck_assert_ptr_eq(unit_runq_steal(t, v, false), &a[0]);
    for (unsigned i = 1; i < TP__RUNQ_SIZE / 2; i++)
        UNIT_EQ(unit_runq_get(t), &a[i]);
    ck_assert_ptr_null(unit_runq_get(t));
    for (unsigned i = TP__RUNQ_SIZE / 2; i < n; i++) {
        if (v->overflow.head != NULL)
            unit_runq_refill(v);
        UNIT_EQ(unit_runq_get(v), &a[i]);
    }
    ck_assert_ptr_null(unit_runq_get(v));
    free(a);
    free(v);
    free(t);
}
END_TEST

// ---- an owner and thieves at once -----------------------------------------
//
// The owner queues each of ACTORS actors ROUNDS times, popping some as it
// goes; thieves steal from it and run what they took. Every queueing
// counts in `queued` and every take in `runs`, which must never pass it
// (run twice) and must catch up with it in bounded time (lost). An actor
// is queued again only once its last run is counted, as the runtime
// schedules an actor only once it is idle again.

#define WAIT_NS 10000000000 // an actor not run by then was lost

static struct {
    tp__worker *owner;
    tp_actor *actors;
    _Atomic uint32_t queued[ACTORS];
    _Atomic uint32_t runs[ACTORS];
    _Atomic uint32_t total;
} race;

static void
ran(tp_actor *a)
{
    size_t i = (size_t)(a - race.actors);
    UNIT_TRUE(i < ACTORS);
    // acquire: pairs with the owner's release before it queued a.
    uint32_t queued =
        atomic_load_explicit(&race.queued[i], memory_order_acquire);
    // release: the owner's acquire load sees the run done before it
    // queues the actor again (and reuses its run_next).
    uint32_t runs =
        atomic_fetch_add_explicit(&race.runs[i], 1, memory_order_release);
    if (runs + 1 > queued) // run twice for one queueing
        unit_fail(__FILE__, __LINE__, "runs <= queued", runs + 1, queued);
    atomic_fetch_add_explicit(&race.total, 1, memory_order_release);
}

static void
owner_pop(tp__worker *w)
{
    if (w->overflow.head != NULL)
        unit_runq_refill(w);
    tp_actor *a = unit_runq_get(w);
    if (a != NULL)
        ran(a);
}

// Pops and runs from the owner's queue until actor i has run `round`
// times; fails if that takes so long the actor must have been lost.
static void
owner_wait(unsigned i, uint32_t round)
{
    int64_t deadline = tp__now_ns() + WAIT_NS;
    while (atomic_load_explicit(&race.runs[i], memory_order_acquire) < round) {
        owner_pop(race.owner);
        if (tp__now_ns() > deadline)
            unit_fail(__FILE__, __LINE__, "actor lost", i, round);
    }
}

static void *
thief(void *arg)
{
    tp__worker *t = arg;
    // acquire: pairs with ran()'s release, for nothing more than the end.
    while (atomic_load_explicit(&race.total, memory_order_acquire) <
           ROUNDS * ACTORS) {
        tp_actor *a = unit_runq_steal(t, race.owner, true);
        if (a == NULL) {
            sched_yield();
            continue;
        }
        ran(a);
        while ((a = unit_runq_get(t)) != NULL)
            ran(a);
    }
    return NULL;
}

START_TEST(no_actor_lost_or_duplicated_under_stealing)
{
    race.owner = unit_worker_new(NULL, 0);
    race.actors = actors_new(ACTORS);
    tp__worker *t[THIEVES];
    pthread_t th[THIEVES];
    for (unsigned i = 0; i < THIEVES; i++) {
        t[i] = unit_worker_new(NULL, i + 1);
        ck_assert_int_eq(pthread_create(&th[i], NULL, thief, t[i]), 0);
    }
    for (uint32_t round = 0; round < ROUNDS; round++) {
        for (unsigned i = 0; i < ACTORS; i++) {
            owner_wait(i, round);
            // release: a thief that runs it sees it counted as queued.
            atomic_fetch_add_explicit(&race.queued[i], 1,
                                      memory_order_release);
            unit_runq_put(race.owner, &race.actors[i]);
            if (i % 3 == 0)
                owner_pop(race.owner);
        }
    }
    for (unsigned i = 0; i < ACTORS; i++)
        owner_wait(i, ROUNDS);
    for (unsigned i = 0; i < THIEVES; i++) {
        pthread_join(th[i], NULL);
        ck_assert_ptr_null(unit_runq_get(t[i]));
        free(t[i]);
    }
    for (unsigned i = 0; i < ACTORS; i++)
        UNIT_EQ(atomic_load(&race.runs[i]), ROUNDS);
    ck_assert_uint_eq(atomic_load(&race.total), ROUNDS * ACTORS);
    ck_assert_ptr_null(unit_runq_get(race.owner));
    ck_assert_ptr_null(race.owner->overflow.head);
    free(race.actors);
    free(race.owner);
}
END_TEST

// Makes t's reading of v's pace one activation per unit_rate_ns, long
// enough to be worth moving, as of `now`.
static void
pace_long(tp__worker *t, tp__worker *v, int64_t now)
{
    t->victims[v->index].rate_at = now - unit_rate_ns;
    t->victims[v->index].rate_seq = atomic_load(&v->activations) - 1;
}

// A busy worker whose activations go by faster than moving an actor costs
// is left alone, without a probe: the thief reads its pace over
// unit_rate_ns before taking anything, holds off when it is short, and
// sleeps while every other worker is one it holds off. A slow pace lets
// the thief take half the ring.
START_TEST(short_activations_stay_with_their_worker)
{
    tp_system *sys = unit_system_new(2);
    tp__worker *v = &sys->workers[0], *t = &sys->workers[1];
    t->victims = calloc(2, sizeof *t->victims);
    tp_actor *a = actors_new(64);
    for (unsigned i = 0; i < 64; i++)
        unit_runq_put(v, &a[i]);
    int64_t now = tp__now_ns();
    tp__victim *x = &t->victims[0];
    atomic_store(&v->activations, 1);
    // No pace known yet: nothing taken, no hold, no sleep.
    ck_assert_ptr_null(unit_steal_any(t, now));
    ck_assert_int_eq(x->hold_until, 0);
    ck_assert_int_eq(unit_doze_ns(t, now), 0);
    atomic_store(&v->activations, 2); // busy, not stuck
    ck_assert_ptr_null(unit_steal_any(t, now + unit_rate_ns - 1));
    // A thousand activations in unit_rate_ns: short, held off.
    atomic_store(&v->activations, 1001);
    int64_t later = now + unit_rate_ns;
    ck_assert_ptr_null(unit_steal_any(t, later));
    ck_assert_int_eq(x->hold_ns, unit_hold_min_ns);
    ck_assert_int_eq(x->hold_until, later + unit_hold_min_ns);
    ck_assert_uint_eq(atomic_load(&t->steals), 0);
    // Held off the only other worker: the thief may sleep until the hold
    // ends, never longer than unit_rescue_ns.
    int64_t doze = unit_doze_ns(t, later);
    ck_assert_int_gt(doze, 0);
    ck_assert_int_le(doze, unit_hold_min_ns);
    ck_assert_int_le(doze, unit_rescue_ns);
    ck_assert_int_eq(unit_doze_ns(t, x->hold_until), 0);
    // Nothing queued there: nothing to doze beside (spin, then park).
    uint32_t tail = atomic_load(&v->tail), head = atomic_load(&v->head);
    atomic_store(&v->head, tail);
    ck_assert_int_eq(unit_doze_ns(t, later), 0);
    atomic_store(&v->head, head);
    // Once the hold is over, an old reading counts for nothing; one
    // activation per unit_rate_ns is worth moving: a few are taken to try
    // (the verdict on what was taken then decides, as below).
    int64_t after = x->hold_until;
    atomic_store(&v->activations, 1002);
    ck_assert_ptr_null(unit_steal_any(t, after));
    atomic_store(&v->activations, 1003);
    ck_assert_ptr_eq(unit_steal_any(t, after + unit_rate_ns), &a[0]);
    ck_assert_uint_eq(t->stolen.n, unit_probe_actors);
    free(t->victims);
    free(a);
    unit_system_free(sys);
}
END_TEST

// A thief that took actors from a busy worker and ran them in less time
// than moving them costs leaves that worker's ring alone for a while, then
// tries again with a few; a batch that was worth moving lifts the hold; a
// worker stuck in one activation for RESCUE_NS is stolen from regardless.
START_TEST(cheap_steals_hold_the_thief_back)
{
    tp_system *sys = unit_system_new(2);
    tp__worker *v = &sys->workers[0], *t = &sys->workers[1];
    t->victims = calloc(2, sizeof *t->victims);
    tp_actor *a = actors_new(64);
    for (unsigned i = 0; i < 64; i++)
        unit_runq_put(v, &a[i]);
    int64_t now = tp__now_ns();
    // Not stuck: v's activation count is new to the thief; its pace is
    // slow enough to try.
    atomic_store(&v->activations, 1);
    pace_long(t, v, now);
    ck_assert_ptr_eq(unit_steal_any(t, now), &a[0]);
    ck_assert_ptr_eq(t->stolen.from, v);
    ck_assert_uint_eq(t->stolen.n, 32);
    // The thief runs all 32 at once: far less than 32 moves.
    atomic_store(&t->activations, 32);
    t->stolen.at = tp__now_ns();
    unit_stolen_judge(t, false);
    ck_assert_ptr_null(t->stolen.from);
    ck_assert_int_eq(t->victims[0].hold_ns, unit_hold_min_ns);
    // Held: v is busy (its count moved on) and its ring long.
    atomic_store(&v->activations, 2);
    int64_t held = t->victims[0].hold_until;
    ck_assert_ptr_null(unit_steal_any(t, held - 1));
    // Then a probe of unit_probe_actors, also cheap: the hold doubles.
    atomic_store(&v->activations, 3);
    pace_long(t, v, held);
    ck_assert_ptr_eq(unit_steal_any(t, held), &a[32]);
    ck_assert_uint_eq(t->stolen.n, unit_probe_actors);
    atomic_store(&t->activations, 32 + unit_probe_actors);
    t->stolen.at = tp__now_ns();
    unit_stolen_judge(t, false);
    ck_assert_int_eq(t->victims[0].hold_ns, 2 * unit_hold_min_ns);
    // Stuck for unit_rescue_ns: taken from, held or not, half the ring.
    int64_t since = t->victims[0].since;
    ck_assert_int_lt(since + unit_rescue_ns, t->victims[0].hold_until);
    ck_assert_ptr_eq(unit_steal_any(t, since + unit_rescue_ns),
                     &a[32 + unit_probe_actors]);
    // A probe that took long per activation lifts the hold step by step.
    t->victims[0].hold_until = 0;
    atomic_store(&v->activations, 4);
    pace_long(t, v, since + unit_rescue_ns + 1);
    ck_assert_ptr_nonnull(unit_steal_any(t, since + unit_rescue_ns + 1));
    uint64_t ran = atomic_load(&t->activations) + t->stolen.n;
    atomic_store(&t->activations, ran);
    t->stolen.at = tp__now_ns() - (int64_t)t->stolen.n * unit_worth_moves *
                                      unit_move_cost() * 2;
    unit_stolen_judge(t, false);
    ck_assert_int_eq(t->victims[0].hold_ns, unit_hold_min_ns);
    free(t->victims);
    free(a);
    unit_system_free(sys);
}
END_TEST

// A child forked while its parent measures the cost of a move inherits
// the measure's state but not its two threads: the fork handler resets it,
// so the child's first system with two workers measures afresh (and its
// start does not wait out the budget). The parent's measure is left alone.
START_TEST(a_fork_mid_measure_measures_again)
{
    unit_sched_init();
    uint32_t line_was, line;
    int was = unit_move_state_swap(1, 7, &line_was);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (unit_move_state_swap(0, 0, &line) != 0 || line != 0)
            _exit(1);
        tp_config cfg = {.threads = 2};
        tp_system *sys = NULL;
        if (tp_system_new(&cfg, &sys) != 0 || tp_system_start(sys) != 0)
            _exit(2);
        tp_system_destroy(&sys);
        // The first two workers measured before they ran anything.
        _exit(unit_move_state_swap(0, 0, &line) == 2 ? 0 : 3);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(unit_move_state_swap(was, line_was, &line), 1);
    ck_assert_uint_eq(line, 7);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

// A held-off thief looks at its victim only every unit_held_look_ns, and
// an owner whose one activation keeps queueing actors is producing, not
// stuck: it is rescued only once it has queued nothing for
// unit_rescue_ns.
START_TEST(a_producing_owner_is_not_rescued)
{
    tp_system *sys = unit_system_new(2);
    tp__worker *v = &sys->workers[0], *t = &sys->workers[1];
    t->victims = calloc(2, sizeof *t->victims);
    tp_actor *a = actors_new(64);
    for (unsigned i = 0; i < 32; i++)
        unit_runq_put(v, &a[i]);
    int64_t now = tp__now_ns();
    tp__victim *x = &t->victims[0];
    x->hold_ns = unit_hold_min_ns;
    x->hold_until = now + 100 * unit_rescue_ns;
    atomic_store(&v->activations, 1);
    ck_assert_ptr_null(unit_steal_any(t, now));
    ck_assert_uint_eq(x->seq, 1);
    // Between looks, a new activation goes unseen.
    atomic_store(&v->activations, 2);
    ck_assert_ptr_null(unit_steal_any(t, now + unit_held_look_ns - 1));
    ck_assert_uint_eq(x->seq, 1);
    ck_assert_ptr_null(unit_steal_any(t, now + unit_held_look_ns));
    ck_assert_uint_eq(x->seq, 2);
    int64_t since = x->since;
    ck_assert_int_eq(since, now + unit_held_look_ns);
    // Inside that activation v queues another actor before RESCUE_NS:
    // producing, so the clock starts again.
    unit_runq_put(v, &a[32]);
    ck_assert_ptr_null(unit_steal_any(t, since + unit_rescue_ns));
    ck_assert_int_eq(x->since, since + unit_rescue_ns);
    // Then nothing for RESCUE_NS: stuck, and rescued despite the hold.
    ck_assert_ptr_eq(unit_steal_any(t, since + 2 * unit_rescue_ns), &a[0]);
    free(t->victims);
    free(a);
    unit_system_free(sys);
}
END_TEST

Suite *
runq_unit_suite(void)
{
    Suite *s = suite_create("unit_runq");
    TCase *tc = tcase_create("runq");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ring_is_fifo);
    tcase_add_test(tc, ring_wraps);
    tcase_add_test(tc, overflow_keeps_order);
    tcase_add_test(tc, steal_takes_older_half);
    tcase_add_test(tc, short_ring_stolen_only_when_allowed);
    tcase_add_test(tc, steal_leaves_overflow_to_owner);
    tcase_add_test(tc, short_activations_stay_with_their_worker);
    tcase_add_test(tc, cheap_steals_hold_the_thief_back);
    tcase_add_test(tc, a_producing_owner_is_not_rescued);
    tcase_add_test(tc, a_fork_mid_measure_measures_again);
    tcase_add_test(tc, no_actor_lost_or_duplicated_under_stealing);
    suite_add_tcase(s, tc);
    return s;
}
