// SPDX-License-Identifier: MIT
// Supervisors: actors that start children, watch them through links and
// restart them as OTP's supervisor does. They are written only on the
// public API (supervisors/), so a user can write their own the same way.
//
// A supervisor traps exits and links to each child. Children start in
// order, each after the previous one's init succeeded; they stop in
// reverse order, each sent TP_REASON_SHUTDOWN and killed if it has not
// exited when its shutdown timeout runs out. When more than `intensity`
// restarts happen within `period_ms` (counted across all children), the
// supervisor stops its remaining children and exits with
// TP_REASON_SHUTDOWN, so that its own supervisor decides.
#ifndef TROUPE_SUPERVISOR_H
#define TROUPE_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include "actor.h"
#include "upgrade.h"

typedef enum tp_strategy {
    TP_ONE_FOR_ONE = 0,    // restart the child that exited
    TP_ONE_FOR_ALL,        // stop all children, restart all
    TP_REST_FOR_ONE,       // stop and restart it and those started after it
    TP_SIMPLE_ONE_FOR_ONE, // one template, children added at run time
} tp_strategy;

typedef enum tp_restart {
    TP_PERMANENT = 0, // always restarted
    TP_TRANSIENT,     // restarted unless it exits normal or shutdown
    TP_TEMPORARY,     // never restarted
} tp_restart;

typedef enum tp_child_type { TP_WORKER = 0, TP_SUPERVISOR } tp_child_type;

typedef enum tp_auto_shutdown {
    TP_AUTO_SHUTDOWN_NEVER = 0,
    TP_AUTO_SHUTDOWN_ANY_SIGNIFICANT, // exit when any significant child does
    TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT, // exit when all significant ones have
} tp_auto_shutdown;

// Shutdown values besides a timeout in milliseconds (> 0). A zeroed spec
// gets the default, so 0 does not mean "no wait" here: that is
// TP_SHUTDOWN_BRUTAL_KILL. TP_SHUTDOWN_INFINITY is -1, "forever", as for
// every timeout. Anything below -2 is refused (TP_EINVAL).
#define TP_SHUTDOWN_DEFAULT 0 // 5000 ms for workers, infinity for supervisors
#define TP_SHUTDOWN_INFINITY TP_FOREVER // waited for as long as it takes
#define TP_SHUTDOWN_BRUTAL_KILL (-2)    // killed at once, untrappably

typedef struct tp_child_spec {
    const char *id;                // unique among the children, required
    const tp_behaviour *behaviour; // required
    // Passed to init; must outlive the child. But for a child whose
    // behaviour is &tp_supervisor it is that supervisor's spec, which the
    // parent copies, with the specs of the supervisors under it (at most
    // 32 levels deep: a spec that contains itself is refused), when it
    // adds the child: it need not outlive that, restarts start from the
    // copy, and tp_sup_upgrade changes it.
    void *arg;
    tp_spawn_opts opts;            // name, mailbox capacity, policy
    tp_restart restart;
    int shutdown; // ms, or TP_SHUTDOWN_*
    tp_child_type type;
    bool significant; // not allowed with TP_PERMANENT
} tp_child_spec;

// A zeroed struct means one_for_one, intensity 1 in 5 s, no auto shutdown,
// no backoff.
typedef struct tp_sup_flags {
    tp_strategy strategy;
    int32_t intensity;  // 0 = default (1); TP_SUP_NO_RESTARTS for none
    uint32_t period_ms; // 0 = default (5000)
    tp_auto_shutdown auto_shutdown;
    // Beyond OTP: wait before restarting, doubling from min to max with
    // up to 25 % jitter; 0 and 0 restart at once.
    uint32_t backoff_min_ms, backoff_max_ms;
} tp_sup_flags;

#define TP_SUP_NO_RESTARTS (-1)

// What a supervisor starts with. For TP_SIMPLE_ONE_FOR_ONE, `children`
// holds exactly one spec, the template, and no child starts at first.
typedef struct tp_sup_spec {
    tp_sup_flags flags;
    const tp_child_spec *children; // copied at start
    size_t nchildren;
} tp_sup_spec;

// The supervisor behaviour; its init argument is a `const tp_sup_spec *`.
// Spawn it with tp_spawn (or tp_sup_start), or name it in a child spec of
// type TP_SUPERVISOR to nest supervisors. Its init fails with TP_EINVAL on
// an invalid spec (logging which child and why), or with the first child's
// init error when a child fails to start (logging the child's id).
//
// Before failing, it stops the children it had started as it stops
// children anywhere else: last started first, each sent
// TP_REASON_SHUTDOWN and killed when its shutdown timeout runs out, each
// exit logged. As init cannot receive messages, a helper actor (behaviour
// "supervisor_reaper") sends those signals and watches the exits, the
// children being unlinked from the failed supervisor first. Where the
// spawning thread may block (tp_system_may_block: a thread outside the
// system, once the system runs), they are all gone when spawn returns,
// which can take as long as their timeouts. On a scheduler thread (a
// supervisor started by its parent, or by another actor), or before
// tp_system_start, spawn returns at once and the helper finishes later.
TP_API extern const tp_behaviour tp_supervisor;

// A child on another node: name tp_remote_child as a child spec's
// behaviour, with a `tp_remote_child_arg *` as its `arg` (which must
// outlive the child), and the supervisor's tree spans nodes. The local
// actor it starts asks `node` to spawn `behaviour` (registered there with
// tp_spawnable; its init gets the `size` bytes at `arg`) and links to the
// actor spawned. The remote actor's exit ends the local one with the same
// reason (noconnection when its node is lost), so the supervisor restarts
// it by the child's restart type, spawning a new remote actor; a spawn
// that fails ends it with the error (TP_ENOENT, TP_ENOTCONN,
// TP_ETIMEDOUT...). The supervisor's shutdown is passed on to the remote
// actor, and the local one exits once the remote has: give the child a
// shutdown time that covers the round trip. A kill (brutal_kill, or the
// shutdown time running out) ends the local actor at once; the link then
// kills the remote one, without the supervisor waiting for it, and an
// actor whose spawn was still under way is killed when its answer comes.
// Its init fails with TP_EINVAL for a NULL node or behaviour, or with
// tp_spawn_at's error.
typedef struct tp_remote_child_arg {
    const char *node;      // "NAME@HOST:PORT"
    const char *behaviour; // spawnable there
    const void *arg;       // bytes for its init, or NULL
    size_t size;
    int spawn_timeout_ms; // the spawn's answer, at most; 0 = 5000
} tp_remote_child_arg;

TP_API extern const tp_behaviour tp_remote_child;

// Spawns a supervisor; tp_spawn(sys, &tp_supervisor, spec, opts, out).
// Returns tp_spawn's codes, among them the supervisor's init error.
TP_API int tp_sup_start(tp_system *sys, const tp_sup_spec *spec,
                        const tp_spawn_opts *opts, tp_pid *out);

// What which_children reports for one child.
typedef struct tp_sup_child {
    char id[64]; // a simple_one_for_one child's is its template's
    tp_pid pid;  // TP_PID_NIL when not running
    tp_child_type type;
    tp_restart restart;
    uint32_t restarts; // times this child was restarted
} tp_sup_child;

// What count_children reports, as OTP does: `specs` child specs (1, the
// template, under simple_one_for_one), `active` children running, and
// the children of type supervisor and worker (running or not; under
// simple_one_for_one, its children counted by the template's type).
typedef struct tp_sup_counts {
    uint32_t specs, active, supervisors, workers;
} tp_sup_counts;

// ---- calls from threads outside the system ---------------------------------
//
// These block until the supervisor answers, up to `timeout_ms` (-1: no
// limit; 0: no wait, which gives TP_ETIMEDOUT unless the answer beat the
// timeout, as with tp_call), so they are for threads that are not running
// an actor; inside an actor use the _async forms below. Each returns 0,
// the errors named with it, or tp_call's: TP_ETIMEDOUT, TP_ENOACTOR
// (`sup` is not alive, or exited before answering), TP_EPERM (called
// inside an actor), TP_EINVAL (NULL `sys`, `timeout_ms` below -1),
// TP_ESHUTDOWN, TP_ENOMEM. Outputs come last and are written only on
// success. A supervisor answers calls that arrive while it stops children
// (which may take their shutdown timeouts) once it is done, in the order
// they came: they wait in its stash (tp_stash), and one past TP_STASH_MAX
// waiting is answered TP_EFULL at once. Calls carry
// pointers, so they come from this process only: one from another node is
// answered TP_EPERM.

// Adds a child and starts it, storing its pid in `*out` (may be NULL), or
// TP_PID_NIL when its init declined (TP_IGNORE). For simple_one_for_one,
// `spec` is NULL, the child is made from the template, and `arg` replaces
// the template's init argument unless NULL; otherwise `spec` is copied
// (with its strings) and `arg` is ignored. A child that fails to start is
// not kept; one whose init declined is kept, not running (under
// simple_one_for_one, not kept either). Errors: TP_EEXIST (the id is
// taken), TP_EINVAL (a bad spec, logged; a spec given to a
// simple_one_for_one supervisor, or none to another), TP_ENOMEM, or what
// tp_spawn returned for the child (its init's error, TP_EEXIST for a
// registered name taken, ...).
TP_API int tp_sup_start_child(tp_system *sys, tp_pid sup,
                              const tp_child_spec *spec, void *arg,
                              int timeout_ms, tp_pid *out);

// Stops a child, as the supervisor stops children (shutdown, then kill
// when its shutdown timeout runs out), and keeps its spec: by `id` (`pid`
// is ignored), or, for simple_one_for_one, by `pid` (`id` is ignored). A
// temporary or simple_one_for_one child is forgotten once stopped, as in
// OTP. A child that is not running is left so, and a pending restart of
// it cancelled. Errors:
// TP_ENOENT (no such child), TP_ESHUTDOWN (the supervisor began shutting
// down before the child was stopped).
TP_API int tp_sup_terminate_child(tp_system *sys, tp_pid sup, const char *id,
                                  tp_pid pid, int timeout_ms);

// Starts a stopped child again from its spec, storing its pid in `*out`
// (may be NULL; TP_PID_NIL when its init declined). Errors: TP_EINVAL
// (NULL id), TP_ENOENT (no such child; always for simple_one_for_one),
// TP_EEXIST (it is running, or a restart of it is pending), TP_ENOMEM,
// what tp_spawn returned for the child.
TP_API int tp_sup_restart_child(tp_system *sys, tp_pid sup, const char *id,
                                int timeout_ms, tp_pid *out);

// Removes a stopped child's spec. Errors: TP_EINVAL (NULL id), TP_ENOENT
// (no such child; always for simple_one_for_one), TP_EEXIST (it is
// running, or a restart of it is pending).
TP_API int tp_sup_delete_child(tp_system *sys, tp_pid sup, const char *id,
                               int timeout_ms);

// Fills `out` with up to `max` children in start order and stores how many
// the supervisor has in `*n`. Errors: TP_EINVAL (NULL `n`, NULL `out` with
// a `max`), TP_ENOMEM.
TP_API int tp_sup_which_children(tp_system *sys, tp_pid sup, int timeout_ms,
                                 tp_sup_child *out, size_t max, size_t *n);

// Replaces, in the child specs of supervisor `sup` and of every
// supervisor under it, each change's `from` by its `to` (a
// simple_one_for_one's template included), so that children started or
// restarted from now on run the new code; tp_upgrade switches those that
// run; in the copies of supervisor children's specs too (tp_child_spec's
// `arg`). Other `arg`s stay as they are. Returns 0 with *replaced (may be
// NULL) how many specs changed, TP_EINVAL, or a tp_call error (the specs
// of the supervisors already asked stay replaced). Outside actors.
TP_API int tp_sup_upgrade(tp_system *sys, tp_pid sup,
                          const tp_code_change *changes, size_t n,
                          int timeout_ms, size_t *replaced);

// Counts in *refs the child specs of supervisor `sup` and of every
// supervisor under it (a simple_one_for_one's template included) that
// point into [start, start + size), such as a loaded module's mapping:
// through their behaviour (the record or its callbacks) or their `arg`.
// A module such specs point into must stay loaded: a restart would run
// or read it. Returns 0, TP_EINVAL (NULL refs), or a tp_call error (with
// the count so far). Outside actors.
TP_API int tp_sup_refs(tp_system *sys, tp_pid sup, const void *start,
                       size_t size, int timeout_ms, size_t *refs);

// Stores the supervisor's counts in `*out`. Errors: TP_EINVAL (NULL out).
TP_API int tp_sup_count_children(tp_system *sys, tp_pid sup, int timeout_ms,
                                 tp_sup_counts *out);

// ---- calls from actors -----------------------------------------------------
//
// The same calls for actors, which must not block. Each sends its request
// with tp_request and returns at once: 0, with the request's reference in
// `*ref` (may be NULL when the answer does not matter), or an error, after
// which no answer comes: TP_EINVAL (an argument the blocking form refuses
// the same way), TP_ENOENT (for terminate, restart or delete, an id of 64
// bytes or more, which no child has), or tp_request's codes, among them
// TP_EPERM (`ctx` is not the actor running on this thread) and TP_EINVAL
// (`timeout_ms` below -1). `timeout_ms` means what it means for
// tp_request: -1 sends no TP_TAG_TIMEOUT ever, 0 makes it due at once.
// Inside a callback of the running actor.
//
// After 0, the running actor receives one message with msg->ref == *ref:
// the supervisor's answer (a private tag below TP_TAG_RESERVED), or
// tp_request's message that none came: TP_TAG_TIMEOUT once `timeout_ms`
// passed, or whatever tp_request delivers when the supervisor is dead or
// dies before answering. (A supervisor that is not alive is reported as
// tp_request reports a dead callee: TP_ENOACTOR from the call, or such a
// message.) Hand that message to the decoder named with the call: it
// returns what the blocking form would have returned and fills the same
// out-parameters.

// As tp_sup_start_child; decode with tp_sup_result (the child's pid). The
// spec is copied into the request: it need not outlive the call.
TP_API int tp_sup_start_child_async(tp_ctx *ctx, tp_pid sup,
                                    const tp_child_spec *spec, void *arg,
                                    int timeout_ms, uint64_t *ref);

// As tp_sup_terminate_child; decode with tp_sup_result.
TP_API int tp_sup_terminate_child_async(tp_ctx *ctx, tp_pid sup,
                                        const char *id, tp_pid pid,
                                        int timeout_ms, uint64_t *ref);

// As tp_sup_restart_child; decode with tp_sup_result (the child's pid).
TP_API int tp_sup_restart_child_async(tp_ctx *ctx, tp_pid sup, const char *id,
                                      int timeout_ms, uint64_t *ref);

// As tp_sup_delete_child; decode with tp_sup_result.
TP_API int tp_sup_delete_child_async(tp_ctx *ctx, tp_pid sup, const char *id,
                                     int timeout_ms, uint64_t *ref);

// As tp_sup_which_children; decode with tp_sup_result_children.
TP_API int tp_sup_which_children_async(tp_ctx *ctx, tp_pid sup, int timeout_ms,
                                       uint64_t *ref);

// As tp_sup_count_children; decode with tp_sup_result_counts.
TP_API int tp_sup_count_children_async(tp_ctx *ctx, tp_pid sup, int timeout_ms,
                                       uint64_t *ref);

// The decoders. Each reads `msg`, the message with an _async call's ref,
// and returns the call's result: 0, or the error its blocking form names
// (TP_ENOENT, TP_EEXIST, a child's init error, ...); TP_ETIMEDOUT for a
// TP_TAG_TIMEOUT; TP_ENOACTOR for any other message with a tag at or above
// TP_TAG_RESERVED (tp_request telling that the supervisor is gone);
// TP_EDECODE when `msg` answers another kind of call or is no answer at
// all; TP_EINVAL for a NULL pointer, as named. They copy out what they
// return and leave out-parameters untouched unless they return 0. Any
// thread.

// Decodes the answer to a start, terminate, restart or delete call. On 0
// it stores in `*pid` (`pid` may be NULL) the child's pid after a start or
// a restart (TP_PID_NIL when its init declined), TP_PID_NIL after a
// terminate or a delete.
TP_API int tp_sup_result(const tp_msg *msg, tp_pid *pid);

// Decodes the answer to a which_children call: on 0, fills `out` with up
// to `max` children in start order and stores how many the supervisor has
// in `*n`. TP_EINVAL for a NULL `msg` or `n`, or a NULL `out` with a `max`.
TP_API int tp_sup_result_children(const tp_msg *msg, tp_sup_child *out,
                                  size_t max, size_t *n);

// Decodes the answer to a count_children call into `*out` (not NULL).
TP_API int tp_sup_result_counts(const tp_msg *msg, tp_sup_counts *out);

#endif
