// SPDX-License-Identifier: MIT
// Deterministic testing. A test system has no scheduler thread: the test
// runs its actors on the calling thread, one activation (one message, with
// the signals before it) per step, choosing among the actors ready to run
// from a seed. The same seed and the same test replay the same
// interleaving exactly; other seeds try others. Timers, send_after,
// request timeouts and supervisors' backoffs follow a virtual clock that
// only the test moves. Faults are injected by the test: an actor crashes
// at its N-th message or at a tag, an init fails, messages between two
// actors are dropped or held back and released later.
//
//     tp_system *sys;
//     tp_test_system_new(NULL, seed, &sys);
//     tp_spawn(sys, &counter, NULL, NULL, &pid);
//     tp_system_send(sys, pid, TAG_ADD, &one, sizeof one);
//     tp_test_run(sys, 1000);              // until no actor is ready
//     tp_test_advance(sys, 5000);          // 5 s later: timers fire
//     tp_test_run(sys, 1000);
//     tp_system_destroy(&sys);
//
// Everything else works as on any system: spawn, send, links, monitors,
// supervisors, state machines, traces, introspection, upgrades. A call
// that would wait for actors (tp_call, a supervisor's calls,
// tp_system_wait, tp_actor_detail_get, tp_upgrade, tp_system_send to a
// full BACKPRESSURE mailbox) runs them on the calling thread instead,
// moving the virtual clock to the next timer whenever none is ready; its
// timeout is virtual time, and it gives up with TP_ETIMEDOUT when nothing
// is left to run and no timer is set (so, with no timeout, when the answer
// can never come) or after 1,000,000 steps. Not available on a test
// system: dedicated actors (TP_EINVAL), distribution (tp_node_start gives
// TP_EPERM); the stall watch never runs. One thread drives a test system:
// the one that made it. A behaviour's own random choices replay with the
// seed when drawn from tp_test_random.
#ifndef TROUPE_TEST_H
#define TROUPE_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "system.h"

// Makes a test system with `cfg` (NULL: defaults; threads, batch and
// cpu_time are ignored) whose choices follow `seed`. tp_system_start is
// allowed and does nothing. Returns 0, TP_EINVAL or TP_ENOMEM.
TP_API int tp_test_system_new(const tp_config *cfg, uint64_t seed,
                              tp_system **out);

// Whether `sys` is a test system.
TP_API bool tp_test_system(const tp_system *sys);

// Runs one activation of an actor chosen by the seed among those ready:
// it handles its queued signals and at most one message. Returns 1 with
// *ran (NULL: not wanted) its pid, 0 when no actor is ready, TP_EINVAL
// for a system that is not a test system, TP_EPERM from an actor.
TP_API int tp_test_step(tp_system *sys, tp_pid *ran);

// Steps until no actor is ready, at most `max_steps` times. Returns the
// steps run, or TP_ETIMEDOUT when actors were still ready after
// max_steps (a livelock, or a bound too small); TP_EINVAL, TP_EPERM.
// The clock does not move.
TP_API long tp_test_run(tp_system *sys, long max_steps);

// Steps until pred(arg) is true (asked before each step), at most
// max_steps times, moving the virtual clock to the next timer whenever no
// actor is ready. Returns the steps run once pred holds; TP_ETIMEDOUT when
// it does not after max_steps, or when nothing is left to run and no
// timer is set (it never will).
TP_API long tp_test_run_until(tp_system *sys, bool (*pred)(void *arg),
                              void *arg, long max_steps);

// A number drawn from the test system's seed (0 on another system), for
// a behaviour's own random choices, so that they replay with the seed too
// (supervisors' backoff jitter and random routers use it). Drawing one
// moves the sequence the steps are drawn from.
TP_API uint64_t tp_test_random(tp_system *sys);

// The virtual clock, in milliseconds since the system was made.
TP_API int64_t tp_test_now_ms(const tp_system *sys);

// Moves the virtual clock `ms` later and fires, in order of their
// deadlines, the timers due by then (their messages are queued; a step
// handles them). A periodic timer fires once per period passed. Returns
// how many fired, or TP_EINVAL, TP_EPERM.
TP_API int tp_test_advance(tp_system *sys, uint32_t ms);

// Milliseconds until the next timer is due (0 when one is due now), or -1
// when none is set.
TP_API int64_t tp_test_next_timer_ms(tp_system *sys);

// ---- faults -------------------------------------------------------------
// Each returns 0, TP_EINVAL (not a test system, a bad argument),
// TP_ENOACTOR (no such local actor) or TP_ENOMEM.

// The `nth` user message `pid` starts to handle from now on (1: the
// next) crashes it with TP_ECRASH instead of reaching its handle: a crash
// report is logged, links and monitors are told, a supervisor restarts it.
TP_API int tp_test_crash_at(tp_system *sys, tp_pid pid, uint32_t nth);

// The next user message with `tag` that `pid` starts to handle crashes it
// likewise.
TP_API int tp_test_crash_on_tag(tp_system *sys, tp_pid pid, uint32_t tag);

// The `nth` spawn from now on (1: the next) of a behaviour named
// `behaviour` fails as if its init returned TP_ECRASH: the spawn returns
// TP_ECRASH (a supervisor's start or restart of it fails).
TP_API int tp_test_fail_init(tp_system *sys, const char *behaviour,
                             uint32_t nth);

// The next `count` messages actor `from` sends to `to` (local actors, by
// pid; what it sends with tp_send, tp_send_buf, requests and replies, not
// its timers' messages nor signals) are lost: the send succeeds and
// nothing arrives, as a message in flight to a node that goes away. Each
// counts as a dead letter.
TP_API int tp_test_drop(tp_system *sys, tp_pid from, tp_pid to,
                        uint32_t count);

// Messages actor `from` sends to `to` from now on (as for tp_test_drop)
// are held back, in order, until tp_test_release delivers them, in that
// order and past a full mailbox, and lets the next through. A drop or hold
// ends when either actor exits: a send to a receiver gone fails as usual,
// and messages held for it are dead letters when released.
TP_API int tp_test_hold(tp_system *sys, tp_pid from, tp_pid to);
// Returns how many held messages it delivered or lost, or TP_ENOENT when
// nothing was held between them, or a code as above.
TP_API int tp_test_release(tp_system *sys, tp_pid from, tp_pid to);

// ---- sweeping seeds --------------------------------------------------------

// A scenario: builds a test system with `seed`, runs it, checks it and
// destroys it; returns 0 when it passed, anything else when it failed.
typedef int (*tp_test_scenario)(uint64_t seed, void *arg);

// Runs `fn` for seeds first, first + 1, ... (count of them) and stops at
// the first that fails: returns what it returned, with *failed (NULL: not
// wanted) its seed; 0 when every seed passed. A failing seed replays with
// fn(seed, arg) alone.
TP_API int tp_test_sweep(uint64_t first, uint64_t count, tp_test_scenario fn,
                         void *arg, uint64_t *failed);

#endif
