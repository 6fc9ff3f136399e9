// SPDX-License-Identifier: MIT
// Shared declarations of the white-box unit tests: one Check suite per
// module, fake runtime records to test a module without starting a
// system, and the shims that reach the scheduler's static functions
// (sched_shim.c, the one file that includes a lib/*.c).
#ifndef TROUPE_UNIT_H
#define TROUPE_UNIT_H

#include "core/core.h"

#include <check.h>

// Check's assertions report every passing check to the runner (a write
// to its pipe each): too slow for loops of thousands and unsafe on other
// threads. These say nothing when they pass; a failure prints both values
// and aborts, which the runner reports as that test's error.
#define UNIT_EQ(a, b)                                                         \
    do {                                                                      \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                      \
        if (a_ != b_)                                                         \
            unit_fail(__FILE__, __LINE__, #a " == " #b, a_, b_);              \
    } while (0)
#define UNIT_TRUE(cond)                                                       \
    do {                                                                      \
        if (!(cond))                                                          \
            unit_fail(__FILE__, __LINE__, #cond, 0, 0);                       \
    } while (0)
_Noreturn void unit_fail(const char *file, int line, const char *what,
                         uint64_t a, uint64_t b);

Suite *mailbox_unit_suite(void);
Suite *runq_unit_suite(void);
Suite *epoch_unit_suite(void);
Suite *map_unit_suite(void);
Suite *table_unit_suite(void);
Suite *wire_unit_suite(void);

// A zeroed system record with `nworkers` zeroed workers and the locks the
// tested modules take initialised; no thread runs. Free it with
// unit_system_free, which also frees the actor table's chunks and free
// list.
tp_system *unit_system_new(unsigned nworkers);
void unit_system_free(tp_system *sys);

// A zeroed worker record of its own, for `sys` (may be NULL), with index
// `index`. Free it with free().
tp__worker *unit_worker_new(tp_system *sys, unsigned index);

// A zeroed actor record with empty mailbox lanes. Free it with free().
tp_actor *unit_actor_new(void);

// ---- the scheduler's static functions (sched_shim.c) ------------------
//
// Each calls the function of the same name without the prefix, as it
// stands in lib/core/sched.c today. Only sched_shim.c knows where they
// live: when they move, only it changes.

uint32_t unit_runq_put(tp__worker *w, tp_actor *a);
tp_actor *unit_runq_get(tp__worker *w);
tp_actor *unit_runq_steal(tp__worker *w, tp__worker *victim, bool short_ok);
void unit_runq_refill(tp__worker *w);
// steal_any and the verdict on what it took (sched.c), and the cost of a
// move they weigh.
tp_actor *unit_steal_any(tp__worker *w, int64_t now);
void unit_stolen_judge(tp__worker *w, bool done);
int64_t unit_move_cost(void);
// The scheduler's once-per-process setup (it registers the fork handler),
// and the move measure's state and line: both set, the old ones returned.
void unit_sched_init(void);
int unit_move_state_swap(int state, uint32_t line, uint32_t *line_was);
// How long an idle worker held off every other may sleep (0: not so).
int64_t unit_doze_ns(tp__worker *w, int64_t now);
extern const int64_t unit_hold_min_ns, unit_rescue_ns, unit_worth_moves,
    unit_rate_ns;
extern const uint32_t unit_probe_actors;
extern const int64_t unit_held_look_ns;

void unit_announce(tp__worker *w);
void unit_go_idle(tp__worker *w);
void unit_worker_reclaim(tp__worker *w);

// Called instead of tp__actor_free for every actor the reclamation code
// frees. Set by a test before it retires actors.
extern void (*unit_actor_freed)(tp_actor *a);

#endif
