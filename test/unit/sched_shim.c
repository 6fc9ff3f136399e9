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

// Each shim runs its function as the owner of `w`, as the functions
// require (and assert, in builds with TP_ASSERTS): on w's thread.
static tp__worker *
own(tp__worker *w)
{
    tp__worker *was = tp__self.worker;
    tp__self.worker = w;
    return was;
}

uint32_t
unit_runq_put(tp__worker *w, tp_actor *a)
{
    tp__worker *was = own(w);
    uint32_t n = runq_put(w, a);
    tp__self.worker = was;
    return n;
}

tp_actor *
unit_runq_get(tp__worker *w)
{
    tp__worker *was = own(w);
    tp_actor *a = runq_get(w);
    tp__self.worker = was;
    return a;
}

tp_actor *
unit_runq_steal(tp__worker *w, tp__worker *victim, bool short_ok)
{
    tp__worker *was = own(w);
    tp_actor *a = runq_steal(w, victim, short_ok, TP__RUNQ_SIZE / 2);
    tp__self.worker = was;
    return a;
}

void
unit_runq_refill(tp__worker *w)
{
    tp__worker *was = own(w);
    runq_refill(w);
    tp__self.worker = was;
}

// The split layout's names for the same three functions.
#ifdef UNIT_EPOCH_SPLIT
#define announce tp__announce
#define go_idle tp__go_idle
#define worker_reclaim tp__worker_reclaim
#endif

tp_actor *
unit_steal_any(tp__worker *w, int64_t now)
{
    tp__worker *was = own(w);
    tp_actor *a = steal_any(w, now);
    tp__self.worker = was;
    return a;
}

void
unit_stolen_judge(tp__worker *w, bool done)
{
    tp__worker *was = own(w);
    stolen_judge(w, done);
    tp__self.worker = was;
}

int64_t
unit_doze_ns(tp__worker *w, int64_t now)
{
    return doze_ns(w, now);
}

const int64_t unit_hold_min_ns = HOLD_MIN_NS, unit_rescue_ns = RESCUE_NS,
              unit_worth_moves = WORTH_MOVES, unit_rate_ns = RATE_NS;
const uint32_t unit_probe_actors = PROBE_ACTORS;
const int64_t unit_held_look_ns = HELD_LOOK_NS;

int64_t
unit_move_cost(void)
{
    return move_cost();
}

void
unit_sched_init(void)
{
    pthread_once(&sched_once, sched_init);
}

int
unit_move_state_swap(int state, uint32_t line, uint32_t *line_was)
{
    *line_was = atomic_exchange(&move_line, line);
    return atomic_exchange(&move_state, state);
}

void
unit_announce(tp__worker *w)
{
    tp__worker *was = own(w);
    announce(w);
    tp__self.worker = was;
}

void
unit_go_idle(tp__worker *w)
{
    tp__worker *was = own(w);
    go_idle(w);
    tp__self.worker = was;
}

void
unit_worker_reclaim(tp__worker *w)
{
    tp__worker *was = own(w);
    worker_reclaim(w);
    tp__self.worker = was;
}
