// SPDX-License-Identifier: MIT
// The runner of the white-box unit tests, and the fake runtime records
// they share. Check's fork mode stays on: a crash stays inside one test.
#include "unit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
unit_fail(const char *file, int line, const char *what, uint64_t a, uint64_t b)
{
    fprintf(stderr, "%s:%d: %s failed (%" PRIu64 ", %" PRIu64 ")\n", file,
            line, what, a, b);
    abort();
}

// Rounds `size` up to whole cache lines, for aligned_alloc.
static size_t
lines(size_t size)
{
    return (size + TP__CACHELINE - 1) & ~(size_t)(TP__CACHELINE - 1);
}

static void *
zalloc_aligned(size_t size)
{
    void *p = aligned_alloc(TP__CACHELINE, lines(size));
    ck_assert_ptr_nonnull(p);
    memset(p, 0, lines(size));
    return p;
}

tp_system *
unit_system_new(unsigned nworkers)
{
    tp_system *sys = zalloc_aligned(sizeof *sys);
    sys->nworkers = nworkers;
    if (nworkers > 0)
        sys->workers = zalloc_aligned(nworkers * sizeof *sys->workers);
    for (unsigned i = 0; i < nworkers; i++) {
        sys->workers[i].sys = sys;
        sys->workers[i].index = i;
    }
    pthread_mutex_init(&sys->inject_lock, NULL);
    pthread_mutex_init(&sys->idle_lock, NULL);
    pthread_mutex_init(&sys->limbo_lock, NULL);
    pthread_mutex_init(&sys->reg_lock, NULL);
    pthread_mutex_init(&sys->slot_lock, NULL);
    pthread_rwlock_init(&sys->ext_lock, NULL);
    return sys;
}

void
unit_system_free(tp_system *sys)
{
    if (sys == NULL)
        return;
    pthread_mutex_destroy(&sys->inject_lock);
    pthread_mutex_destroy(&sys->idle_lock);
    pthread_mutex_destroy(&sys->limbo_lock);
    pthread_mutex_destroy(&sys->reg_lock);
    pthread_mutex_destroy(&sys->slot_lock);
    for (size_t i = 0; i < TP__SLOT_CHUNKS; i++)
        free(atomic_load(&sys->chunks[i]));
    free(sys->slot_free);
    pthread_rwlock_destroy(&sys->ext_lock);
    free(sys->workers);
    free(sys);
}

tp__worker *
unit_worker_new(tp_system *sys, unsigned index)
{
    tp__worker *w = zalloc_aligned(sizeof *w);
    w->sys = sys;
    w->index = index;
    return w;
}

tp_actor *
unit_actor_new(void)
{
    tp_actor *a = calloc(1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    tp__mpscq_init(&a->user);
    tp__mpscq_init(&a->sys);
    return a;
}

int
main(void)
{
    SRunner *sr = srunner_create(mailbox_unit_suite());
    srunner_add_suite(sr, runq_unit_suite());
    srunner_add_suite(sr, epoch_unit_suite());
    srunner_add_suite(sr, map_unit_suite());
    srunner_add_suite(sr, table_unit_suite());
    srunner_add_suite(sr, wire_unit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
