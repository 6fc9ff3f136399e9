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
// can never come) or after 1,000,000 steps (on a member of a net, moves
// of the clocks count as steps: see "nets" below). Not available on a test
// system: dedicated actors (TP_EINVAL), and distribution outside a net
// (tp_node_start gives TP_EPERM; see "nets" below); the stall watch never
// runs. One thread drives a test system: the one that made it. A
// behaviour's own random choices replay with the seed when drawn from
// tp_test_random.
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
// timer is set (it never will). On a member of a net it runs the whole
// net, as tp_test_net_run_until, and each move of the clocks counts as a
// step too.
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
// how many fired (INT_MAX at most), or TP_EINVAL, TP_EPERM.
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

// ---- nets: several test systems as nodes -----------------------------------
//
// Test systems added to a net may start nodes (node.h) and reach each
// other as nodes do, over an in-memory network: tp_node_start's listen
// address exists only in the net (nothing is bound; port 0 takes a free
// one of the net's), and the distribution protocol runs unchanged between
// members: handshake with the secret, heartbeats, monitors and links
// across nodes, TP_REASON_NOCONNECTION, reconnects with backoff, remote
// names and spawns, the mesh and seeds given as addresses (a seed by DNS
// name needs a dedicated actor: not on a test system). A dial to an
// address where no member listens is refused. A node's incarnation is
// drawn from the net's seed, so a member made again with the same seed,
// name and address is a new incarnation.
//
//     tp_test_net *net;
//     tp_test_net_new(seed, &net);
//     tp_test_system_new(NULL, 1, &a);
//     tp_test_system_new(NULL, 2, &b);
//     tp_test_net_add(net, a);
//     tp_test_net_add(net, b);
//     tp_node_start(a, &(tp_node_config){.name = "a"});
//     tp_node_start(b, &(tp_node_config){.name = "b"});
//     tp_node_connect(a, tp_node_name(b), 1000); // runs the net until up
//     ...                                        // spawn, send, monitor
//     tp_test_net_run(net, 100000);
//     tp_test_net_partition(net, a, b);
//     tp_test_net_advance(net, 20000);           // heartbeats time out
//     tp_test_net_heal(net, a, b);
//     tp_system_destroy(&a);
//     tp_system_destroy(&b);
//     tp_test_net_free(&net);
//
// A member's I/O (its node's connections, and its actors' sockets, control
// socket and metrics endpoint, if any) runs on the test's thread when it
// is stepped: tp_test_step and tp_test_run on a member run that system
// alone, with what the net has brought it. tp_test_net_run and
// tp_test_net_run_until run the whole net, and so do tp_test_run_until on
// a member and every call on a member that waits (tp_call,
// tp_node_connect, tp_system_whereis_at, tp_system_send to a full mailbox
// or peer queue under BACKPRESSURE, ...): they move every member's clock,
// as tp_test_net_advance does, whenever nothing is ready. Node timers
// (heartbeats, handshake limits, reconnect backoff) follow the virtual
// clock and are always set, so for such a wait "nothing is left to run"
// means: no actor ready, no actor's timer set, and the clocks moved with
// no actor run for twice the largest timeout_ms, handshake_timeout_ms and
// reconnect_max_ms of the members' nodes (a minute at least). Pings are
// stamped with the virtual clock, so round trips measure 0 when both
// clocks move together. tp_test_advance on one member moves its clock
// alone, so its peers look silent to it; tp_test_net_advance moves them
// all together. One thread drives a net and every member.

typedef struct tp_test_net tp_test_net;

// Makes an empty net whose draws (the member to step, the nodes'
// incarnations) follow `seed`. Returns 0, TP_EINVAL or TP_ENOMEM.
TP_API int tp_test_net_new(uint64_t seed, tp_test_net **out);

// Adds test system `sys` to `net`, before it starts a node or anything
// else that does I/O. Returns 0, TP_EINVAL (not a test system, a NULL
// net), TP_EEXIST (in a net already), TP_EPERM (its I/O runs already:
// added too late; or called from an actor) or TP_ENOMEM. It stays a member
// until destroyed.
TP_API int tp_test_net_add(tp_test_net *net, tp_system *sys);

// Steps the net until no member has an actor ready and no byte is in
// flight, at most `max_steps` activations, each of an actor of a member
// the net's seed picks among those with actors ready (the member's own
// seed then picks the actor). Returns the steps run, or TP_ETIMEDOUT when
// actors were still ready after max_steps; TP_EINVAL, TP_EPERM. Clocks do
// not move.
TP_API long tp_test_net_run(tp_test_net *net, long max_steps);

// Steps the net until pred(arg) is true (asked before each step), moving
// every clock to the next timer of any member whenever nothing is ready;
// each step and each move counts towards max_steps. Returns the count
// once pred holds, or TP_ETIMEDOUT after max_steps or when nothing is
// left to run (as above); TP_EINVAL, TP_EPERM. pred may look at members
// but must not destroy one nor free the net.
TP_API long tp_test_net_run_until(tp_test_net *net, bool (*pred)(void *arg),
                                  void *arg, long max_steps);

// Moves every member's clock `ms` later together, firing their timers in
// order of their deadlines and carrying what they send (heartbeats among
// it) between each; actors' messages are queued, not handled. Returns
// how many actors' timers fired (INT_MAX at most), or TP_EINVAL, TP_EPERM.
// Every node timer on the way is visited, so the real time it takes grows
// with `ms` (for two connected nodes with default settings, some 0.4 s
// per virtual hour on a 2-core machine).
TP_API int tp_test_net_advance(tp_test_net *net, uint32_t ms);

// Partitions members `a` and `b`: from now on nothing crosses between
// them, either way: neither bytes nor a connection's close (not even when
// one of them is destroyed meanwhile), and a dial across is not seen by
// the listener until they heal, nor at all if its dialler gave up by
// then. Their connections stay open, as over a network that drops
// everything; heartbeats time them out (tp_test_net_advance past the
// node's timeout_ms) and each side then sees the other go: nodedown,
// TP_REASON_NOCONNECTION. Returns 0 (also when they were partitioned
// already), TP_EINVAL (not both members, the same system), TP_EPERM or
// TP_ENOMEM.
TP_API int tp_test_net_partition(tp_test_net *net, tp_system *a, tp_system *b);

// Heals their partition: what each wrote meanwhile crosses now, in order,
// to a receiving end still open (then a close, if the writer closed its
// end meanwhile, as TCP delivers what was sent before a FIN), and dials
// go through again.
// Returns 0, TP_ENOENT (they were not partitioned), TP_EINVAL or TP_EPERM.
TP_API int tp_test_net_heal(tp_test_net *net, tp_system *a, tp_system *b);

// Frees `net` and sets *net to NULL (NULL: nothing). Members still alive
// keep what they need of it until the last is destroyed (destroy them
// before or after, in any order); the net itself must not be used again.
TP_API void tp_test_net_free(tp_test_net **net);

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
