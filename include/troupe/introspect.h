// SPDX-License-Identifier: MIT
// Introspection: a snapshot of every actor of a system with its counters
// and its place in the tree (the actor that spawned it), details only an
// actor itself can give (links, monitors, its describe output), and a
// control socket that serves all of it to tools such as actorctl.
#ifndef TROUPE_INTROSPECT_H
#define TROUPE_INTROSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"

typedef enum tp_actor_status {
    TP_ACTOR_WAITING = 0, // nothing queued
    TP_ACTOR_RUNNABLE,    // messages queued or running
    TP_ACTOR_MUTED,       // parked by backpressure
    TP_ACTOR_EXITING,     // dead, not yet reclaimed
    TP_ACTOR_BUSY,        // in one activation for over tp_config.stall_ms
} tp_actor_status;

// Buckets of an actor's message waits (tp_actor_info.wait_hist): bucket 0
// counts waits under 1 us, bucket i (1 to 22) those from 2^(i-1) us up to
// 2^i us, bucket 23 those of 2^22 us (about 4.2 s) and more.
#define TP_WAIT_BUCKETS 24

// One actor as the snapshot saw it.
typedef struct tp_actor_info {
    tp_pid pid;
    tp_pid parent; // the actor that spawned it; nil if spawned from outside
    char name[TP_NAME_MAX + 1]; // registered name or ""
    char behaviour[48];
    // The version of the code it runs, as labelled (tp_behaviour_version:
    // actord labels an application's behaviours with its module's
    // version), or "".
    char version[32];
    tp_actor_status status;
    // User messages queued, the one being handled included; while the
    // actor runs, handled ones are given back in steps (tp_actor_stats).
    uint32_t mailbox;
    uint32_t capacity; // user-lane capacity
    uint32_t high_water;
    uint64_t handled, dropped, rejected;
    uint32_t restarts; // set by its supervisor: times this child restarted
    uint64_t age_ms;   // since it was spawned
    // Larger for an actor spawned later: the millisecond of its spawn
    // (CLOCK_MONOTONIC_COARSE) times 65536 plus its number among the
    // system's spawns modulo 65536. Siblings sorted by it are in start
    // order (a restarted child comes last) unless 65536 spawns happened in
    // one clock tick.
    uint64_t start_order;
    // Time its callbacks have run on scheduler threads (wall time of its
    // activations, the one in progress included: CPU time unless the
    // thread was preempted or blocked meanwhile). An init called from an
    // activation (a supervisor starting a child) counts for the caller.
    // 0 unless the system's tp_config.cpu_time is set.
    uint64_t cpu_ns;
    // TP_ACTOR_BUSY: how long its activation has run so far, at least (as
    // the stall watch measures it: short by up to an eighth of
    // tp_config.stall_ms). 0 otherwise.
    uint64_t busy_ms;
    // How long its user messages waited, from entering its mailbox to the
    // start of their handling, when the system's tp_config.cpu_time is set
    // (all 0 otherwise): how many were timed (tp_config.wait_sample),
    // their percentiles, the longest and their sum. A percentile is the upper
    // bound of the wait_hist bucket it falls in, or wait_max_us when that is
    // lower.
    uint64_t waits;
    uint64_t wait_p50_us, wait_p99_us, wait_max_us;
    uint64_t wait_sum_us;
    uint32_t wait_hist[TP_WAIT_BUCKETS];
} tp_actor_info;

typedef struct tp_snapshot tp_snapshot;

// Takes a snapshot of every live actor of `sys` and its statistics, in
// pid-slot order (slots are reused: sort by start_order for start order),
// without stopping anything (each actor's counters are read at a slightly
// different moment). Returns 0 with `*out` to free with tp_snapshot_free,
// TP_EINVAL or TP_ENOMEM. Any thread.
TP_API int tp_snapshot_take(tp_system *sys, tp_snapshot **out);
TP_API size_t tp_snapshot_len(const tp_snapshot *s);
// The i-th actor, or NULL past the end.
TP_API const tp_actor_info *tp_snapshot_at(const tp_snapshot *s, size_t i);
TP_API const tp_system_stats *tp_snapshot_stats(const tp_snapshot *s);
// Milliseconds since the system was created.
TP_API uint64_t tp_snapshot_uptime_ms(const tp_snapshot *s);
TP_API void tp_snapshot_free(tp_snapshot *s);

// Fills `*out` with what a snapshot shows of the live actor `pid`, without
// asking the actor (so it answers at once, busy or not). Returns 0,
// TP_ENOACTOR or TP_EINVAL. Any thread.
TP_API int tp_actor_info_get(tp_system *sys, tp_pid pid, tp_actor_info *out);

#define TP_DETAIL_PIDS 32 // pids listed per kind; counts are exact

// What only the actor itself knows, asked of it between two messages.
typedef struct tp_actor_detail {
    tp_actor_info info;
    bool trap_exit;
    uint32_t nlinks, nmonitors, nwatchers;
    tp_pid links[TP_DETAIL_PIDS];       // actors linked to it
    tp_pid monitors[TP_DETAIL_PIDS];    // actors it monitors
    tp_pid watchers[TP_DETAIL_PIDS];    // actors monitoring it
    uint32_t stashed;                   // messages in its stash (tp_stash)
    char describe[TP_DESCRIBE_MAX + 1]; // behaviour's describe(), or ""
} tp_actor_detail;

// Asks the actor `pid` for its details and waits up to `timeout_ms` for
// the answer (-1: as long as it takes; 0: no wait, so TP_ETIMEDOUT unless
// the answer is already there). An actor stuck in a long callback cannot
// answer: ask tp_actor_info_get first to see whether it is TP_ACTOR_BUSY.
// Returns 0, TP_ENOACTOR, TP_ETIMEDOUT, TP_EINVAL (NULL `sys` or `out`,
// `timeout_ms` below -1), TP_ENOMEM, or TP_EPERM from inside an actor (it
// would block a scheduler thread).
TP_API int tp_actor_detail_get(tp_system *sys, tp_pid pid, int timeout_ms,
                               tp_actor_detail *out);

// Serves introspection on a Unix socket at `path` (see
// lib/observe/CONTROL.md): the socket is created with mode 0600 in a directory
// that must be, or is created, mode 0700 and owned by the caller; only clients
// of the same user or root are answered. A thread serves one request at a
// time; a malformed or oversized request gets an error reply. Only the
// last directory of `path` is created. Returns 0, TP_EINVAL (NULL or empty
// path, path too long, or a directory that cannot be created), TP_EPERM
// (directory owned by someone else or open to others; from inside an
// actor), TP_EEXIST (a live node already serves that path, something that
// is not a socket is there, or this system already has a control socket),
// TP_EADDRINUSE or TP_EAGAIN. The socket is removed when the system is
// destroyed.
TP_API int tp_control_start(tp_system *sys, const char *path);

// A request on the control socket whose op the runtime does not serve,
// handed to the program (actord serves "upgrade" this way).
typedef struct tp_control_call tp_control_call;

// Runs on the runtime's I/O thread and must not block: `op` and the
// request's string-valued fields (keys[i] = values[i], valid only during
// the call) describe it. The program answers it later, from any thread,
// with tp_control_answer, exactly once; the client waits up to
// `wait_s` given to tp_control_serve, then gets an error.
typedef void (*tp_control_fn)(void *arg, tp_control_call *call, const char *op,
                              const char *const *keys,
                              const char *const *values, size_t n);

// Hands the control socket's unknown ops to fn(arg, ...), answered within
// `wait_s` seconds (1 to 3600). Returns 0, TP_EINVAL, or TP_ENOENT when
// the system serves no control socket. The thread that started it.
TP_API int tp_control_serve(tp_system *sys, tp_control_fn fn, void *arg,
                            double wait_s);

// Answers `call`: ok true with the string fields keys[i] = values[i], or
// ok false with one field "error". Returns 0 (also when the client has
// gone meanwhile: the answer is then dropped), TP_ENOENT when the client
// was already told the wait ran out (the answer is dropped), or TP_EINVAL
// for a NULL call; the call is freed either way. Any thread.
TP_API int tp_control_answer(tp_control_call *call, bool ok,
                             const char *const *keys,
                             const char *const *values, size_t n);

// Events counted for metrics by code outside the runtime (supervisors).
typedef enum tp_event {
    TP_EVENT_RESTART = 0,        // a supervisor restarted a child
    TP_EVENT_INTENSITY_EXCEEDED, // a supervisor gave up: too many restarts
} tp_event;

// Counts one `ev` on `sys`. Any thread.
TP_API void tp_count_event(tp_system *sys, tp_event ev);

// Serves GET /metrics in Prometheus text format (version 0.0.4) on
// `addr` ("HOST:PORT" or "[IPV6]:PORT"; port 0 picks one), from the
// system's I/O thread: actors by status, messages handled, mailbox drops
// and rejections, restarts, intensity exceeded, stalls, run queues, and
// on a node peers, frames rejected and authentication failures; with
// tp_config.cpu_time, troupe_message_wait_seconds, a histogram of message
// waits per behaviour (TP_WAIT_BUCKETS' bounds; the actors gone included).
// No per-actor labels. Anything but loopback needs `allow_remote`. Stores the
// bound port in `*port` (may be NULL). Returns 0, TP_EINVAL, TP_EPERM (from an
// actor), TP_EEXIST (already serving), TP_ENOMEM, or the socket's error
// (TP_EADDRINUSE, TP_EADDRNOTAVAIL, TP_EACCES, TP_EMFILE ...). Stopped
// when the system is destroyed.
TP_API int tp_metrics_start(tp_system *sys, const char *addr,
                            bool allow_remote, uint16_t *port);

#endif
