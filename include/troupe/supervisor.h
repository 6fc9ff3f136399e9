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

// Shutdown values besides a timeout in milliseconds.
#define TP_SHUTDOWN_DEFAULT 0 // 5000 ms for workers, infinity for supervisors
#define TP_SHUTDOWN_BRUTAL_KILL (-1) // killed at once, untrappably
#define TP_SHUTDOWN_INFINITY (-2)    // waited for as long as it takes

typedef struct tp_child_spec {
    const char *id;                // unique among the children, required
    const tp_behaviour *behaviour; // required
    void *arg;                     // passed to init; must outlive the child
    tp_spawn_opts opts;            // name, mailbox capacity, policy
    tp_restart restart;
    int32_t shutdown; // ms, or TP_SHUTDOWN_*
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
// TP_REASON_SHUTDOWN and killed when its shutdown timeout runs out. Where
// the spawning thread may block (tp_system_may_block: a thread outside
// the system, once the system runs) they are all gone when spawn returns,
// which can take as long as their timeouts. On a scheduler thread (a
// supervisor started by its parent, or by another actor), or before
// tp_system_start, spawn returns at once and a helper actor stops them in
// the same way afterwards; they are unlinked from the failed supervisor
// first, so its exit does not reach them.
TP_API extern const tp_behaviour tp_supervisor;

// Spawns a supervisor; tp_spawn(sys, out, &tp_supervisor, spec, opts).
// Returns tp_spawn's codes, among them the supervisor's init error.
TP_API int tp_sup_start(tp_system *sys, tp_pid *out, const tp_sup_spec *spec,
                        const tp_spawn_opts *opts);

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

// Calls on a running supervisor from a thread that is not running an actor
// (they block until the supervisor answers, up to `timeout_ms`, -1 for no
// limit). Each returns 0, TP_ETIMEDOUT, TP_ENOACTOR (no such supervisor),
// TP_EPERM (called inside an actor), or the error named with it.

// Adds and starts a child. For simple_one_for_one, `spec` is NULL and `arg`
// is the new child's init argument; otherwise `arg` is ignored. Errors:
// TP_EEXIST (the id is taken), TP_EINVAL (bad spec), the child's init error.
TP_API int tp_sup_start_child(tp_system *sys, tp_pid sup,
                              const tp_child_spec *spec, void *arg,
                              tp_pid *out, int timeout_ms);

// Stops a child, keeping its spec (by id; for simple_one_for_one by pid,
// with `id` NULL, and the child is removed). Errors: TP_ENOENT.
// The reply to tp_sup_start_child_async: what tp_sup_start_child would
// have returned, and the new child's pid when rc is 0.
typedef struct tp_sup_started {
    int32_t rc;
    tp_pid pid;
} tp_sup_started;

// From inside an actor (where tp_sup_start_child would block): asks
// simple_one_for_one supervisor `sup` to start a child with `arg` and
// returns at once. Within `timeout_ms` the running actor receives a
// message with msg->ref == *ref whose data is a tp_sup_started, or a
// TP_TAG_TIMEOUT with that ref. Returns tp_request's codes.
TP_API int tp_sup_start_child_async(tp_ctx *ctx, tp_pid sup, void *arg,
                                    uint32_t timeout_ms, uint64_t *ref);

TP_API int tp_sup_terminate_child(tp_system *sys, tp_pid sup, const char *id,
                                  tp_pid pid, int timeout_ms);

// Restarts a stopped child from its spec. Errors: TP_ENOENT, TP_EEXIST (it
// is running), the child's init error.
TP_API int tp_sup_restart_child(tp_system *sys, tp_pid sup, const char *id,
                                tp_pid *out, int timeout_ms);

// Removes a stopped child's spec. Errors: TP_ENOENT, TP_EEXIST (running).
TP_API int tp_sup_delete_child(tp_system *sys, tp_pid sup, const char *id,
                               int timeout_ms);

// Fills `out` with up to `max` children in start order and stores how many
// the supervisor has in `*n`.
TP_API int tp_sup_which_children(tp_system *sys, tp_pid sup, tp_sup_child *out,
                                 size_t max, size_t *n, int timeout_ms);

TP_API int tp_sup_count_children(tp_system *sys, tp_pid sup,
                                 tp_sup_counts *out, int timeout_ms);

#endif
