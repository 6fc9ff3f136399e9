// SPDX-License-Identifier: MIT
// Epoch reclamation (lib/core/sched.c today, through sched_shim.c): an
// actor retired while some worker may still hold a pointer to it, one that
// announced the epoch of the retirement or an older one, is not freed
// until that worker has announced a newer epoch or gone idle; it is freed
// once every worker has. Workers are fake records driven by hand, so every
// step is deterministic; a last test runs readers on threads of their own.
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>

#define MAX_FREED 64

static struct {
    tp_actor *freed[MAX_FREED];
    unsigned nfreed;
} log_;

static void
record_free(tp_actor *a)
{
    ck_assert_uint_lt(log_.nfreed, MAX_FREED);
    log_.freed[log_.nfreed++] = a;
    free(a);
}

static bool
was_freed(const tp_actor *a)
{
    for (unsigned i = 0; i < log_.nfreed; i++)
        if (log_.freed[i] == a)
            return true;
    return false;
}

static tp_system *
setup(unsigned nworkers)
{
    log_.nfreed = 0;
    unit_actor_freed = record_free;
    tp_system *sys = unit_system_new(nworkers);
    for (unsigned i = 0; i < nworkers; i++)
        unit_announce(&sys->workers[i]);
    return sys;
}

// Retires `a` as the worker `w` would (a dead actor goes to its limbo).
static void
retire_on(tp__worker *w, tp_actor *a)
{
    tp__self.worker = w;
    tp__limbo_add(w->sys, a);
    tp__self.worker = NULL;
}

static void
teardown(tp_system *sys)
{
    tp__limbo_reclaim_all(sys);
    unit_system_free(sys);
    unit_actor_freed = NULL;
}

// Runs `n` reclamation passes of worker `w`, each after it announced.
static void
passes(tp__worker *w, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        unit_announce(w);
        unit_worker_reclaim(w);
    }
}

START_TEST(reader_in_epoch_holds_back_free)
{
    tp_system *sys = setup(2);
    tp__worker *w0 = &sys->workers[0], *reader = &sys->workers[1];
    uint64_t e = atomic_load(&sys->epoch);
    tp_actor *a = unit_actor_new();
    retire_on(w0, a);
    ck_assert_uint_eq(a->limbo_epoch, e);

    // The reader stays in epoch e: the epoch moves once, then no further.
    passes(w0, 10);
    ck_assert_uint_eq(atomic_load(&sys->epoch), e + 1);
    ck_assert(!was_freed(a));
    ck_assert_ptr_eq(w0->limbo.head, a);

    // Once it announces the newer epoch, the grace period can end.
    unit_announce(reader);
    passes(w0, 2);
    ck_assert_uint_ge(atomic_load(&sys->epoch), e + 2);
    ck_assert(was_freed(a));
    ck_assert_ptr_null(w0->limbo.head);
    ck_assert_ptr_null(w0->limbo.tail);
    teardown(sys);
}
END_TEST

// An idle worker holds no pointers: it never holds back the epoch.
START_TEST(idle_reader_does_not_hold_back)
{
    tp_system *sys = setup(3);
    tp__worker *w0 = &sys->workers[0];
    unit_go_idle(&sys->workers[1]);
    unit_go_idle(&sys->workers[2]);
    tp_actor *a = unit_actor_new();
    retire_on(w0, a);
    passes(w0, 2);
    ck_assert(was_freed(a));
    teardown(sys);
}
END_TEST

// Actors retired in later epochs wait for their own grace periods; the
// limbo list is freed from its head, oldest first.
START_TEST(later_retirements_wait_their_turn)
{
    tp_system *sys = setup(2);
    tp__worker *w0 = &sys->workers[0], *reader = &sys->workers[1];
    tp_actor *old = unit_actor_new();
    retire_on(w0, old);
    passes(w0, 1); // epoch e + 1; the reader still announces e
    tp_actor *young = unit_actor_new();
    retire_on(w0, young);
    ck_assert_uint_eq(young->limbo_epoch, old->limbo_epoch + 1);

    unit_announce(reader); // e + 1
    passes(w0, 1);         // epoch e + 2: old's grace period is over
    ck_assert(was_freed(old));
    ck_assert(!was_freed(young));
    ck_assert_ptr_eq(w0->limbo.head, young);

    passes(w0, 5); // the reader stays in e + 1 or older: young waits
    ck_assert(!was_freed(young));
    unit_announce(reader);
    passes(w0, 2);
    ck_assert(was_freed(young));
    teardown(sys);
}
END_TEST

// Actors that died outside the workers wait in the system's limbo, which
// worker 0 reclaims, under the same rule.
START_TEST(outside_retirement_waits_for_readers)
{
    tp_system *sys = setup(2);
    tp__worker *w0 = &sys->workers[0], *reader = &sys->workers[1];
    tp_actor *a = unit_actor_new();
    tp__limbo_add(sys, a); // from a thread that is no worker
    ck_assert_ptr_eq(sys->limbo.head, a);
    ck_assert_uint_eq(atomic_load(&sys->limbo_waiting), 1);
    passes(w0, 10);
    ck_assert(!was_freed(a));
    unit_announce(reader);
    passes(w0, 2);
    ck_assert(was_freed(a));
    ck_assert_ptr_null(sys->limbo.head);
    ck_assert_uint_eq(atomic_load(&sys->limbo_waiting), 0);
    teardown(sys);
}
END_TEST

// Only worker 0 reclaims the system's limbo.
START_TEST(outside_retirement_reclaimed_by_worker_0_only)
{
    tp_system *sys = setup(2);
    tp_actor *a = unit_actor_new();
    tp__limbo_add(sys, a);
    for (unsigned i = 0; i < 5; i++) {
        unit_announce(&sys->workers[0]);
        passes(&sys->workers[1], 1);
    }
    ck_assert(!was_freed(a));
    passes(&sys->workers[0], 1);
    ck_assert(was_freed(a));
    teardown(sys);
}
END_TEST

// At system destruction, whatever is still in limbo is freed at once.
START_TEST(reclaim_all_frees_everything)
{
    tp_system *sys = setup(2);
    tp_actor *a = unit_actor_new(), *b = unit_actor_new(),
             *c = unit_actor_new();
    retire_on(&sys->workers[0], a);
    retire_on(&sys->workers[1], b);
    tp__limbo_add(sys, c);
    tp__limbo_reclaim_all(sys);
    ck_assert_uint_eq(log_.nfreed, 3);
    ck_assert(was_freed(a) && was_freed(b) && was_freed(c));
    ck_assert_ptr_null(sys->workers[0].limbo.tail);
    ck_assert_ptr_null(sys->limbo.tail);
    teardown(sys);
}
END_TEST

// ---- readers on other threads ----------------------------------------------
//
// Two reader threads act as workers: each announces the epoch, then reads
// the actor a shared slot points to, as a worker looks an actor up
// between two announcements. The test thread, worker 0, keeps replacing
// that actor, retiring the old one and reclaiming. A reclaimed actor is
// marked dead and kept (freed at the end), so a reader that still sees it
// fails in every build, not only under AddressSanitizer; ThreadSanitizer
// also sees the mark race with the read if the grace period is too short.

#define REPLACEMENTS 20000
#define LIVE 0x11u
#define DEAD 0xddu

static struct {
    tp_system *sys;
    _Atomic(tp_actor *) slot;
    _Atomic int done;
    tp_actor *graveyard; // reclaimed actors, linked through mute_next
    unsigned buried;
} rd;

static void
bury(tp_actor *a)
{
    a->capacity = DEAD;
    a->mute_next = rd.graveyard;
    rd.graveyard = a;
    rd.buried++;
}

static void *
reader(void *arg)
{
    tp__worker *w = arg;
    tp__self.worker = w;
    // acquire: pairs with the test's release of `done`.
    while (!atomic_load_explicit(&rd.done, memory_order_acquire)) {
        unit_announce(w);
        // seq_cst: as tp__actor_lookup reads an actor's slot.
        tp_actor *a = atomic_load_explicit(&rd.slot, memory_order_seq_cst);
        // Hold it a while, as an activation would.
        for (int i = 0; i < 64; i++) {
            if (a->capacity != LIVE)
                unit_fail(__FILE__, __LINE__, "reader saw it reclaimed",
                          a->capacity, LIVE);
            tp__cpu_relax();
        }
    }
    unit_go_idle(w);
    tp__self.worker = NULL;
    return NULL;
}

static tp_actor *
live_actor(void)
{
    tp_actor *a = unit_actor_new();
    a->capacity = LIVE;
    return a;
}

START_TEST(readers_never_see_a_reclaimed_actor)
{
    rd.sys = unit_system_new(3);
    unit_actor_freed = bury;
    tp__worker *w0 = &rd.sys->workers[0];
    atomic_store(&rd.slot, live_actor());
    pthread_t th[2];
    for (unsigned i = 0; i < 2; i++)
        ck_assert_int_eq(
            pthread_create(&th[i], NULL, reader, &rd.sys->workers[i + 1]), 0);
    tp__self.worker = w0;
    for (unsigned i = 0; i < REPLACEMENTS; i++) {
        // seq_cst: as tp__slot_clear, before the retirement reads the epoch.
        tp_actor *old = atomic_exchange_explicit(&rd.slot, live_actor(),
                                                 memory_order_seq_cst);
        tp__limbo_add(rd.sys, old);
        unit_announce(w0);
        unit_worker_reclaim(w0);
    }
    // release: the readers stop after the last replacement.
    atomic_store_explicit(&rd.done, 1, memory_order_release);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    // Every reader idle: what was retired is freed within two passes.
    unit_announce(w0);
    unit_worker_reclaim(w0);
    unit_announce(w0);
    unit_worker_reclaim(w0);
    tp__self.worker = NULL;
    ck_assert_uint_eq(rd.buried, REPLACEMENTS);
    ck_assert_ptr_null(w0->limbo.head);
    ck_assert_uint_gt(atomic_load(&rd.sys->epoch), 2);
    while (rd.graveyard != NULL) {
        tp_actor *next = rd.graveyard->mute_next;
        free(rd.graveyard);
        rd.graveyard = next;
    }
    free(atomic_load(&rd.slot));
    unit_system_free(rd.sys);
    unit_actor_freed = NULL;
}
END_TEST

Suite *
epoch_unit_suite(void)
{
    Suite *s = suite_create("unit_epoch");
    TCase *tc = tcase_create("epoch");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, reader_in_epoch_holds_back_free);
    tcase_add_test(tc, idle_reader_does_not_hold_back);
    tcase_add_test(tc, later_retirements_wait_their_turn);
    tcase_add_test(tc, outside_retirement_waits_for_readers);
    tcase_add_test(tc, outside_retirement_reclaimed_by_worker_0_only);
    tcase_add_test(tc, reclaim_all_frees_everything);
    tcase_add_test(tc, readers_never_see_a_reclaimed_actor);
    suite_add_tcase(s, tc);
    return s;
}
