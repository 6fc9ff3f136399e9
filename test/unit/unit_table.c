// SPDX-License-Identifier: MIT
// The actor table (lib/core/system.c): slots handed out fresh and then
// reused, generations that make a stale pid miss the slot's next actor,
// chunks created as the table grows, and the private slot caches of
// scheduler threads spilling into the shared free list.
#include "unit.h"

#include <stdlib.h>

static tp_actor *
published(tp_system *sys, uint32_t slot, uint32_t gen)
{
    tp_actor *a = unit_actor_new();
    a->pid = tp_pid_make(0, slot, gen);
    tp__slot_publish(sys, slot, a);
    return a;
}

START_TEST(fresh_slots_in_order)
{
    tp_system *sys = unit_system_new(0);
    for (uint32_t i = 0; i < 10; i++) {
        uint32_t slot, gen;
        ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
        ck_assert_uint_eq(slot, i);
        ck_assert_uint_eq(gen, 1); // generation 0 never names an actor
    }
    unit_system_free(sys);
}
END_TEST

START_TEST(lookup_finds_published_actor_only)
{
    tp_system *sys = unit_system_new(0);
    uint32_t slot, gen;
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    tp_pid pid = tp_pid_make(0, slot, gen);
    ck_assert_ptr_null(tp__actor_lookup(sys, pid));
    tp_actor *a = published(sys, slot, gen);
    ck_assert_ptr_eq(tp__actor_lookup(sys, pid), a);
    // Another node's pid, another generation, another slot: no actor.
    ck_assert_ptr_null(tp__actor_lookup(sys, tp_pid_make(1, slot, gen)));
    ck_assert_ptr_null(tp__actor_lookup(sys, tp_pid_make(0, slot, gen + 1)));
    ck_assert_ptr_null(tp__actor_lookup(sys, tp_pid_make(0, slot + 1, gen)));
    ck_assert_ptr_null(
        tp__actor_lookup(sys, tp_pid_make(0, TP__SLOT_MAX - 1, 1)));
    // A dying actor is no longer found, though still published.
    atomic_store(&a->dead, 1);
    ck_assert_ptr_null(tp__actor_lookup(sys, pid));
    atomic_store(&a->dead, 0);
    tp__slot_clear(sys, slot);
    ck_assert_ptr_null(tp__actor_lookup(sys, pid));
    free(a);
    unit_system_free(sys);
}
END_TEST

// A released slot comes back with its generation advanced: the old pid
// misses the slot's new actor.
START_TEST(reused_slot_has_new_generation)
{
    tp_system *sys = unit_system_new(0);
    uint32_t slot, gen, slot2, gen2;
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    tp_actor *a = published(sys, slot, gen);
    tp__slot_clear(sys, slot);
    tp__slot_release(sys, slot);
    ck_assert_int_eq(tp__slot_alloc(sys, &slot2, &gen2), 0);
    ck_assert_uint_eq(slot2, slot);
    ck_assert_uint_eq(gen2, gen + 1);
    tp_actor *b = published(sys, slot2, gen2);
    ck_assert_ptr_null(tp__actor_lookup(sys, tp_pid_make(0, slot, gen)));
    ck_assert_ptr_eq(tp__actor_lookup(sys, b->pid), b);
    free(a);
    free(b);
    unit_system_free(sys);
}
END_TEST

// Generations wrap within their 24 bits and skip 0.
START_TEST(generation_wraps_past_zero)
{
    tp_system *sys = unit_system_new(0);
    uint32_t slot, gen;
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    atomic_load(&sys->chunks[0])->gen[slot] = 0xffffffu;
    tp__slot_release(sys, slot);
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    ck_assert_uint_eq(gen, 1);
    unit_system_free(sys);
}
END_TEST

// The table grows a chunk at a time; actors in each are found.
START_TEST(table_grows_by_chunks)
{
    tp_system *sys = unit_system_new(0);
    uint32_t n = TP__SLOT_CHUNK + 2, slot, gen;
    tp_actor *first = NULL, *last = NULL;
    for (uint32_t i = 0; i < n; i++) {
        UNIT_EQ(tp__slot_alloc(sys, &slot, &gen), 0);
        UNIT_EQ(slot, i);
        if (i == 0)
            first = published(sys, slot, gen);
        else if (i == n - 1)
            last = published(sys, slot, gen);
    }
    ck_assert_ptr_nonnull(atomic_load(&sys->chunks[1]));
    ck_assert_ptr_null(atomic_load(&sys->chunks[2]));
    ck_assert_ptr_eq(tp__actor_lookup(sys, first->pid), first);
    ck_assert_ptr_eq(tp__actor_lookup(sys, last->pid), last);
    free(first);
    free(last);
    unit_system_free(sys);
}
END_TEST

// A scheduler thread takes slots from its own cache: it refills half a
// cache from the shared free list, releases into the cache, and spills
// half of a full cache back to the shared list.
START_TEST(worker_cache_refills_and_spills)
{
    tp_system *sys = unit_system_new(1);
    tp__worker *w = &sys->workers[0];
    uint32_t slot, gen;
    // TP__SLOT_CACHE + 10 slots on the shared free list.
    uint32_t n = TP__SLOT_CACHE + 10;
    for (uint32_t i = 0; i < n; i++)
        UNIT_EQ(tp__slot_alloc(sys, &slot, &gen), 0);
    for (uint32_t i = 0; i < n; i++)
        tp__slot_release(sys, i);
    ck_assert_uint_eq(sys->slot_free_len, n);

    tp__self.worker = w;
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    ck_assert_uint_eq(gen, 2);
    ck_assert_uint_eq(w->nslots, TP__SLOT_CACHE / 2 - 1);
    ck_assert_uint_eq(sys->slot_free_len, n - TP__SLOT_CACHE / 2);
    tp__slot_release(sys, slot);
    ck_assert_uint_eq(w->nslots, TP__SLOT_CACHE / 2);

    // Slots taken outside the pool and released on it fill the cache;
    // one more release spills half of it.
    uint32_t taken[TP__SLOT_CACHE / 2 + 1];
    tp__self.worker = NULL;
    for (uint32_t i = 0; i <= TP__SLOT_CACHE / 2; i++)
        UNIT_EQ(tp__slot_alloc(sys, &taken[i], &gen), 0);
    tp__self.worker = w;
    for (uint32_t i = 0; i < TP__SLOT_CACHE / 2; i++)
        tp__slot_release(sys, taken[i]);
    ck_assert_uint_eq(w->nslots, TP__SLOT_CACHE);
    size_t shared = sys->slot_free_len;
    tp__slot_release(sys, taken[TP__SLOT_CACHE / 2]);
    ck_assert_uint_eq(w->nslots, TP__SLOT_CACHE / 2 + 1);
    ck_assert_uint_eq(sys->slot_free_len, shared + TP__SLOT_CACHE / 2);
    tp__self.worker = NULL;
    unit_system_free(sys);
}
END_TEST

Suite *
table_unit_suite(void)
{
    Suite *s = suite_create("unit_table");
    TCase *tc = tcase_create("actor_table");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, fresh_slots_in_order);
    tcase_add_test(tc, lookup_finds_published_actor_only);
    tcase_add_test(tc, reused_slot_has_new_generation);
    tcase_add_test(tc, generation_wraps_past_zero);
    tcase_add_test(tc, table_grows_by_chunks);
    tcase_add_test(tc, worker_cache_refills_and_spills);
    suite_add_tcase(s, tc);
    return s;
}
