// SPDX-License-Identifier: MIT
// WHITE-BOX COUPLING: the one place where the unit tests include library
// source files. The run queues and epoch reclamation live in static
// functions, so this file compiles their sources into the test binary
// (which then never pulls those objects from libtroupe.a: every symbol
// they define is defined here first) and wraps each function the tests
// need in a unit_ shim (unit.h). When those functions move or change
// name, only this file changes.
//
// tp__actor_free is renamed for the included reclamation code only, so
// the tests see which actors it frees instead of the real destructor
// running on their fake actors.
//
// Two layouts are known: epoch reclamation inside lib/core/sched.c (as
// on main when this was written), or split out into lib/core/epoch.c
// with the announcement inline in lib/core/sched.h.
#if __has_include("core/epoch.c")

#define tp__actor_free unit_actor_free_hook
#include "core/epoch.c"
#undef tp__actor_free
#include "core/sched.c"
#define UNIT_EPOCH_SPLIT 1

#else

#define tp__actor_free unit_actor_free_hook
#include "core/sched.c"
#undef tp__actor_free

#endif

#include "unit.h"

void (*unit_actor_freed)(tp_actor *a);

void
unit_actor_free_hook(tp_actor *a)
{
    ck_assert_ptr_nonnull(unit_actor_freed);
    unit_actor_freed(a);
}

uint32_t
unit_runq_put(tp__worker *w, tp_actor *a)
{
    return runq_put(w, a);
}

tp_actor *
unit_runq_get(tp__worker *w)
{
    return runq_get(w);
}

tp_actor *
unit_runq_steal(tp__worker *w, tp__worker *victim, bool short_ok)
{
    return runq_steal(w, victim, short_ok);
}

void
unit_runq_refill(tp__worker *w)
{
    runq_refill(w);
}

#ifdef UNIT_EPOCH_SPLIT

void
unit_announce(tp__worker *w)
{
    tp__announce(w);
}

void
unit_go_idle(tp__worker *w)
{
    tp__go_idle(w);
}

void
unit_worker_reclaim(tp__worker *w)
{
    tp__worker_reclaim(w);
}

#else

void
unit_announce(tp__worker *w)
{
    announce(w);
}

void
unit_go_idle(tp__worker *w)
{
    go_idle(w);
}

void
unit_worker_reclaim(tp__worker *w)
{
    worker_reclaim(w);
}

#endif
