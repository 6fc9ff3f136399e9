// SPDX-License-Identifier: MIT
// The side tables: the open-addressing map of 64-bit keys behind each
// actor's links, monitors and requests (lib/signals/link.c), and the
// registry's chained hash table of names (lib/core/registry.c): insert,
// lookup, update, remove, growth, and the tombstones removal leaves.
#include "signals/signals.h"
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Keys spread over the whole 64-bit range, never 0 or UINT64_MAX.
static uint64_t
key_of(uint64_t i)
{
    return (i + 1) * 0x9e3779b97f4a7c15ULL | 1;
}

START_TEST(map_empty)
{
    tp__map m = {0};
    uint64_t v = 7;
    ck_assert(!tp__map_get(&m, 1, &v));
    ck_assert(!tp__map_del(&m, 1, &v));
    ck_assert_uint_eq(v, 7);
    tp__map_free(&m);
    tp__map_free(&m); // a freed map is an empty one
    ck_assert_uint_eq(m.cap, 0);
}
END_TEST

START_TEST(map_put_get_update_del)
{
    tp__map m = {0};
    uint64_t v;
    ck_assert_int_eq(tp__map_put(&m, 42, 1), 0);
    ck_assert(tp__map_get(&m, 42, &v));
    ck_assert_uint_eq(v, 1);
    ck_assert(tp__map_get(&m, 42, NULL));
    ck_assert(!tp__map_get(&m, 43, &v));

    ck_assert_int_eq(tp__map_put(&m, 42, 2), 0); // update, not a second
    ck_assert_uint_eq(m.len, 1);
    ck_assert(tp__map_get(&m, 42, &v));
    ck_assert_uint_eq(v, 2);

    ck_assert(tp__map_del(&m, 42, &v));
    ck_assert_uint_eq(v, 2);
    ck_assert_uint_eq(m.len, 0);
    ck_assert(!tp__map_get(&m, 42, &v));
    ck_assert(!tp__map_del(&m, 42, NULL));
    tp__map_free(&m);
}
END_TEST

// The marker keys are refused, and never found.
START_TEST(map_refuses_marker_keys)
{
    tp__map m = {0};
    ck_assert_int_eq(tp__map_put(&m, 0, 1), TP_EINVAL);
    ck_assert_int_eq(tp__map_put(&m, UINT64_MAX, 1), TP_EINVAL);
    ck_assert_int_eq(tp__map_put(&m, 5, 1), 0);
    ck_assert(!tp__map_get(&m, 0, NULL));
    ck_assert(!tp__map_get(&m, UINT64_MAX, NULL));
    ck_assert(!tp__map_del(&m, 0, NULL));
    ck_assert(!tp__map_del(&m, UINT64_MAX, NULL));
    ck_assert_uint_eq(m.len, 1);
    tp__map_free(&m);
}
END_TEST

START_TEST(map_grows)
{
    tp__map m = {0};
    const uint64_t n = 20000;
    uint32_t cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        UNIT_EQ(tp__map_put(&m, key_of(i), i), 0);
        UNIT_EQ(m.len, i + 1);
        UNIT_TRUE(m.cap >= cap);
        cap = m.cap;
        UNIT_TRUE((uint64_t)m.used * 4 <= (uint64_t)m.cap * 3);
    }
    ck_assert_uint_eq(m.cap & (m.cap - 1), 0); // a power of two
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        UNIT_TRUE(tp__map_get(&m, key_of(i), &v));
        UNIT_EQ(v, i);
    }
    ck_assert(!tp__map_get(&m, key_of(n), NULL));
    tp__map_free(&m);
}
END_TEST

// Removing keys from the middle of probe chains leaves tombstones that
// keep the keys behind them reachable, and puts reuse them.
START_TEST(map_tombstones_keep_chains)
{
    tp__map m = {0};
    const uint64_t n = 1000;
    for (uint64_t i = 0; i < n; i++)
        UNIT_EQ(tp__map_put(&m, key_of(i), i), 0);
    for (uint64_t i = 0; i < n; i += 2)
        UNIT_TRUE(tp__map_del(&m, key_of(i), NULL));
    ck_assert_uint_eq(m.len, n / 2);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = UINT64_MAX;
        UNIT_EQ(tp__map_get(&m, key_of(i), &v), i % 2 == 1);
        if (i % 2 == 1)
            UNIT_EQ(v, i);
    }
    // Putting a key back fills a tombstone, or a fresh slot.
    uint32_t used = m.used;
    for (uint64_t i = 0; i < n; i += 2)
        UNIT_EQ(tp__map_put(&m, key_of(i), i + 1), 0);
    ck_assert_uint_le(m.used, used + n / 2);
    ck_assert_uint_eq(m.len, n);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        UNIT_TRUE(tp__map_get(&m, key_of(i), &v));
        UNIT_EQ(v, i % 2 == 0 ? i + 1 : i);
    }
    tp__map_free(&m);
}
END_TEST

// Churn (a key put and removed, again and again, as monitors come and
// go) sweeps tombstones instead of growing: the table stays small, and a
// lookup of a missing key still ends.
START_TEST(map_churn_sweeps_tombstones)
{
    tp__map m = {0};
    for (uint64_t i = 0; i < 4; i++)
        UNIT_EQ(tp__map_put(&m, key_of(i), i), 0);
    for (uint64_t i = 100; i < 100000; i++) {
        UNIT_EQ(tp__map_put(&m, key_of(i), i), 0);
        UNIT_TRUE(tp__map_del(&m, key_of(i), NULL));
        UNIT_TRUE(m.cap <= 16);
    }
    ck_assert_uint_eq(m.len, 4);
    for (uint64_t i = 0; i < 4; i++)
        UNIT_TRUE(tp__map_get(&m, key_of(i), NULL));
    ck_assert(!tp__map_get(&m, key_of(7), NULL));
    ck_assert(!tp__map_del(&m, key_of(7), NULL));
    tp__map_free(&m);
}
END_TEST

// ---- the registry ----------------------------------------------------------

static tp_pid
pid_of(uint64_t i)
{
    return (tp_pid){i + 1};
}

// What the registry reads of an actor is its system, its pid and its
// latch: one fake record, given each pid in turn with a fresh latch,
// stands for many actors.
static tp_actor *
as_actor(tp_actor *a, tp_system *sys, tp_pid pid)
{
    a->system = sys;
    a->pid = pid;
    atomic_store(&a->latch, 0);
    return a;
}

START_TEST(registry_insert_find)
{
    tp_system *sys = unit_system_new(0);
    tp_actor *a = unit_actor_new();
    tp_pid p;
    ck_assert_int_eq(tp_whereis(sys, "a", &p), TP_ENOACTOR);
    ck_assert_int_eq(tp__reg_insert(as_actor(a, sys, pid_of(1)), "a"), 0);
    ck_assert_int_eq(tp__reg_insert(as_actor(a, sys, pid_of(2)), "b"), 0);
    ck_assert_int_eq(tp__reg_insert(as_actor(a, sys, pid_of(3)), "a"),
                     TP_EEXIST);
    ck_assert_int_eq(tp_whereis(sys, "a", &p), 0);
    ck_assert_uint_eq(p.v, pid_of(1).v);
    ck_assert_int_eq(tp_whereis(sys, "b", &p), 0);
    ck_assert_uint_eq(p.v, pid_of(2).v);
    ck_assert_int_eq(tp_whereis(sys, "c", &p), TP_ENOACTOR);
    ck_assert_uint_eq(sys->reg_count, 2);
    tp__reg_free(sys);
    ck_assert_int_eq(tp_whereis(sys, "a", &p), TP_ENOACTOR);
    free(a);
    unit_system_free(sys);
}
END_TEST

START_TEST(registry_grows)
{
    tp_system *sys = unit_system_new(0);
    tp_actor *a = unit_actor_new();
    char name[32];
    const unsigned n = 5000;
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "actor-%u", i);
        UNIT_EQ(tp__reg_insert(as_actor(a, sys, pid_of(i)), name), 0);
    }
    ck_assert_uint_eq(sys->reg_count, n);
    ck_assert_uint_ge(sys->reg_size, n);
    ck_assert_uint_eq(sys->reg_size & (sys->reg_size - 1), 0);
    for (unsigned i = 0; i < n; i++) {
        tp_pid p;
        snprintf(name, sizeof name, "actor-%u", i);
        UNIT_EQ(tp_whereis(sys, name, &p), 0);
        UNIT_EQ(p.v, pid_of(i).v);
    }
    tp__reg_free(sys);
    free(a);
    unit_system_free(sys);
}
END_TEST

// A fake actor of `sys` in its actor table, so tp_register finds it.
static tp_actor *
published(tp_system *sys)
{
    uint32_t slot, gen;
    ck_assert_int_eq(tp__slot_alloc(sys, &slot, &gen), 0);
    tp_actor *a = as_actor(unit_actor_new(), sys, tp_pid_make(0, slot, gen));
    tp__slot_publish(sys, slot, a);
    return a;
}

static void *
drop_thread(void *a)
{
    tp__reg_drop(a);
    return NULL;
}

// Whether tp__reg_drop(a) returns within `secs` while reg_lock is held
// (the lock is then released, and the drop always finishes).
static bool
drops_while_locked(tp_actor *a, int secs)
{
    tp_system *sys = a->system;
    pthread_mutex_lock(&sys->reg_lock);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, drop_thread, a), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += secs;
    int rc = pthread_timedjoin_np(t, NULL, &until);
    pthread_mutex_unlock(&sys->reg_lock);
    if (rc != 0)
        pthread_join(t, NULL);
    return rc == 0;
}

// A dying actor drops its own name, and only its own: the registry finds
// an actor's name by its pid, and a pid holds one name at most. Once
// dropped, an actor takes no name again.
START_TEST(registry_drop_removes_own_entry_only)
{
    tp_system *sys = unit_system_new(0);
    tp_actor *a = published(sys), *b = published(sys), *c = published(sys);
    ck_assert_int_eq(tp__reg_insert(a, "x"), 0);
    ck_assert_int_eq(tp__reg_insert(a, "y"), TP_EEXIST);
    char out[TP_NAME_MAX + 1];
    tp__reg_name(a, out);
    ck_assert_str_eq(out, "x");
    tp__reg_name(b, out);
    ck_assert_str_eq(out, "");

    // b was never named: its drop takes no lock (held here, it would wait)
    // and leaves x.
    ck_assert(drops_while_locked(b, 10));
    tp_pid p;
    ck_assert_int_eq(tp_whereis(sys, "x", &p), 0);
    ck_assert_uint_eq(p.v, a->pid.v);

    tp__reg_drop(a);
    ck_assert_int_eq(tp_whereis(sys, "x", &p), TP_ENOACTOR);
    ck_assert_uint_eq(sys->reg_count, 0);
    tp__reg_name(a, out);
    ck_assert_str_eq(out, "");
    tp__reg_drop(a); // nothing left to drop
    ck_assert_int_eq(tp_register(sys, "x", a->pid), TP_ENOACTOR);
    ck_assert_int_eq(tp_register(sys, "x", b->pid), TP_ENOACTOR);
    ck_assert_int_eq(tp_register(sys, "x", c->pid), 0);
    tp__reg_name(c, out);
    ck_assert_str_eq(out, "x");
    tp__reg_free(sys);
    free(a);
    free(b);
    free(c);
    unit_system_free(sys);
}
END_TEST

// A named actor killed while it exits is dropped twice, by the kill and
// by its exit. Whichever comes second waits for the first under the lock,
// so the name is gone when it returns: here the kill has set UNNAMED but
// not yet taken the lock, and the exit's drop removes the name itself.
START_TEST(registry_second_drop_waits_for_the_first)
{
    tp_system *sys = unit_system_new(0);
    tp_actor *a = as_actor(unit_actor_new(), sys, pid_of(1));
    ck_assert_int_eq(tp__reg_insert(a, "x"), 0);
    // It waits as long as the lock is held (a second is enough to show it:
    // a drop that did not wait returns at once), then drops x.
    ck_assert(!drops_while_locked(a, 1));
    tp_pid p;
    ck_assert_int_eq(tp_whereis(sys, "x", &p), TP_ENOACTOR);
    ck_assert_int_eq(tp__reg_insert(as_actor(a, sys, pid_of(2)), "x"), 0);
    atomic_fetch_or(&a->latch, TP__LATCH_UNNAMED); // the kill's, half done
    tp__reg_drop(a);
    ck_assert_int_eq(tp_whereis(sys, "x", &p), TP_ENOACTOR);
    // The name a spawn gives goes in even after a kill's drop: the
    // actor's own exit, which follows, drops it.
    ck_assert_int_eq(tp__reg_insert(a, "y"), 0);
    tp__reg_drop(a);
    ck_assert_int_eq(tp_whereis(sys, "y", &p), TP_ENOACTOR);
    tp__reg_free(sys);
    free(a);
    unit_system_free(sys);
}
END_TEST

// Both chains follow the table as it grows: each name is still found by
// its pid after many inserts and some removals.
START_TEST(registry_pid_chains_survive_growth)
{
    tp_system *sys = unit_system_new(0);
    tp_actor *a = unit_actor_new();
    char name[32], out[TP_NAME_MAX + 1];
    const unsigned n = 3000;
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "actor-%u", i);
        UNIT_EQ(tp__reg_insert(as_actor(a, sys, pid_of(i)), name), 0);
    }
    for (unsigned i = 0; i < n; i += 2) {
        // Named before: the latch says so.
        as_actor(a, sys, pid_of(i));
        atomic_store(&a->latch, TP__LATCH_NAMED);
        tp__reg_drop(a);
    }
    ck_assert_uint_eq(sys->reg_count, n / 2);
    for (unsigned i = 0; i < n; i++) {
        a->pid = pid_of(i);
        tp__reg_name(a, out);
        snprintf(name, sizeof name, "actor-%u", i);
        UNIT_TRUE(strcmp(out, i % 2 ? name : "") == 0);
    }
    ck_assert_int_eq(tp_unregister(sys, "actor-1"), 0);
    ck_assert_int_eq(tp_unregister(sys, "actor-1"), TP_ENOACTOR);
    a->pid = pid_of(1);
    tp__reg_name(a, out);
    ck_assert_str_eq(out, "");
    tp__reg_free(sys);
    free(a);
    unit_system_free(sys);
}
END_TEST

Suite *
map_unit_suite(void)
{
    Suite *s = suite_create("unit_map");
    TCase *tc = tcase_create("map");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, map_empty);
    tcase_add_test(tc, map_put_get_update_del);
    tcase_add_test(tc, map_refuses_marker_keys);
    tcase_add_test(tc, map_grows);
    tcase_add_test(tc, map_tombstones_keep_chains);
    tcase_add_test(tc, map_churn_sweeps_tombstones);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, registry_insert_find);
    tcase_add_test(tc, registry_grows);
    tcase_add_test(tc, registry_drop_removes_own_entry_only);
    tcase_add_test(tc, registry_pid_chains_survive_growth);
    tcase_add_test(tc, registry_second_drop_waits_for_the_first);
    suite_add_tcase(s, tc);
    return s;
}
