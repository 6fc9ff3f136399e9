// SPDX-License-Identifier: MIT
// Actors: behaviours, spawning, sending and the context a callback runs in.
// An actor is private state plus a behaviour (a const struct of callbacks).
// Its callbacks never run on two threads at once, and they must not block:
// a full mailbox parks the sending actor, never the thread. They are not
// preempted either: a long one holds its scheduler thread (and is reported,
// see tp_config.stall_ms). An actor that must block or compute for long is
// spawned dedicated, with a thread of its own (tp_spawn_opts.dedicated).
#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pid.h"
#include "system.h"

#ifndef TP_API
#define TP_API __attribute__((visibility("default")))
#endif

// The context a callback runs in. It names the running actor and is valid
// only during that callback, on the thread that called it.
typedef struct tp_ctx tp_ctx;

// A received message, valid until `handle` returns. Tags at or above
// TP_TAG_RESERVED belong to the runtime.
typedef struct tp_msg {
    uint32_t tag;
    tp_pid from; // TP_PID_NIL when sent from outside any actor
    const void *data;
    size_t size;
    uint64_t ref; // a request's or a reply's reference (tp_request), else 0
} tp_msg;

#define TP_TAG_RESERVED 0xffff0000u

// Largest payload one message may carry.
#define TP_MSG_MAX ((size_t)64 << 20)

// Exit reasons. The runtime's reasons are the positive values below, from
// 1001 on: far from 0 and from TP_OK, TP_STOP and TP_IGNORE (what
// callbacks return), so that one is never taken for the other. A negative
// value is an error code (a crash), as returned by `handle`. Nothing else
// is a reason: 0 is none, and calls that take a reason refuse any other
// value with TP_EINVAL.
enum {
    TP_REASON_NORMAL = 1001,
    TP_REASON_SHUTDOWN = 1002,
    TP_REASON_KILL = 1003,
    TP_REASON_NOPROC = 1004,
    TP_REASON_NOCONNECTION = 1005,
    TP_REASON_MAILBOX_OVERFLOW = 1006,
    // What an actor killed with TP_REASON_KILL dies of.
    TP_REASON_KILLED = 1007,
    // + N (1 to 64): a native fault caught (tp_config.catch_faults).
    TP_REASON_SIGNAL = 1100,
};

// Return values of `handle` besides errors; TP_IGNORE is for `init`.
enum { TP_OK = 0, TP_STOP = 1, TP_IGNORE = 2 };

// A behaviour. Keep it `const` and static; the runtime never copies it.
typedef struct tp_behaviour {
    const char *name;  // shown in logs and introspection
    size_t state_size; // bytes of private state, zeroed before init
    // Optional. Runs on the spawning thread before the actor handles any
    // message; the actor exists already (its name is taken, and what is
    // sent to it waits in its mailbox). Return 0 to start, TP_IGNORE to
    // decline without an error (spawn returns TP_EIGNORED; a supervisor
    // keeps the child's spec, not running), or a negative error code to
    // refuse: spawn then fails with that code. Either way no actor is left
    // behind: its name is free again, terminate does not run, what was
    // queued for it is counted as dead letters, and the actors linked to
    // it or monitoring it are told as of any exit: with the error (or the
    // signal of a fault caught in init), normal when it declined or
    // stopped (tp_stop_reason's reason, if it gave one), TP_EINIT for any
    // other positive value. What it sent stays sent.
    int (*init)(tp_ctx *ctx, void *state, void *arg);
    // Required. Handles one message. Return TP_OK to go on, TP_STOP to exit
    // normally, or a negative error code to crash with that reason.
    int (*handle)(tp_ctx *ctx, void *state, const tp_msg *msg);
    // Optional. Runs exactly once when an actor that started exits, for any
    // reason, before its state is freed. Must not send to itself.
    void (*terminate)(tp_ctx *ctx, void *state, int reason);
    // Optional. Writes a "key=value ..." description of the state into
    // `buf` (at most `size` bytes, NUL-terminated) for introspection and
    // crash reports, and returns the length written. `size` is
    // TP_DESCRIBE_MAX + 1: up to TP_DESCRIBE_MAX bytes reach
    // tp_actor_detail_get, the control socket and crash reports whole.
    // Runs inside the actor, between messages.
    int (*describe)(const void *state, char *buf, size_t size);
} tp_behaviour;

// The longest description (without its NUL) a behaviour's describe can
// hand to introspection and crash reports.
#define TP_DESCRIBE_MAX 4096

// Options for spawning. A zeroed struct (or NULL) means "defaults".
typedef struct tp_spawn_opts {
    const char *name;          // registered name, or NULL; at most 63 bytes
    uint32_t mailbox_capacity; // 0 = the system's default (max 2^30)
    tp_overflow overflow;      // TP_OVERFLOW_DEFAULT = the system's default
    // Link the new actor to the spawning actor before its init runs, so
    // not even an immediate crash escapes the link (spawn_link). Only from
    // an actor's callback; TP_EINVAL elsewhere. If init fails no exit
    // signal is sent: spawn's return value says it.
    bool link;
    // Shown by introspection: how many times this child has been
    // restarted. Supervisors set it; nothing else reads it.
    uint32_t restarts;
    // Give the actor an OS thread of its own, where its callbacks (init
    // excepted, which runs on the spawning thread) run and may block:
    // CPU-heavy work, blocking libraries. It is an ordinary actor in every
    // other way: same mailbox and overflow policies, links, monitors,
    // supervision; a send to it wakes its thread; a muted one waits there.
    // It runs as soon as it has messages, before tp_system_start too, and
    // the stall watch leaves it alone. Cost: one thread (with its stack)
    // per actor, a thread wake-up per message that finds it idle, and its
    // sends take the lock threads outside the pool take. Its thread ends
    // when it exits; tp_system_destroy waits for a callback it is in.
    bool dedicated;
} tp_spawn_opts;

#define TP_NAME_MAX 63

// Spawns an actor running behaviour `b` with `arg` passed to its init, and
// stores its pid in `*out` (may be NULL). Returns after init succeeded; init
// runs on the calling thread, so spawning never blocks a scheduler thread.
// Returns 0, TP_EINVAL (NULL sys or b, no handle callback, state_size over
// 1 GiB, a bad option), TP_EEXIST (the name is taken), TP_ENOMEM, TP_EAGAIN
// (actor table full), TP_ESHUTDOWN (system being destroyed), TP_EIGNORED
// (init returned TP_IGNORE), TP_EINIT (init returned another positive value
// or called tp_stop), or init's own negative code (in each of these cases
// no actor is left behind, as `init` says, and `*out` is untouched).
// Any thread, actors included.
TP_API int tp_spawn(tp_system *sys, const tp_behaviour *b, void *arg,
                    const tp_spawn_opts *opts, tp_pid *out);

// Sends a copy of `size` bytes at `data` to `to` with tag `tag`, from the
// running actor. Per pair of actors, messages and signals arrive in the
// order they were caused. Returns 0 when the message was accepted (under
// DROP_* and EXIT_RECEIVER policies an accepted message may be discarded;
// it is then counted; a message from an actor killed while its callback
// runs is discarded too), TP_ENOACTOR (`to` is dead or never existed),
// TP_EFULL (nothing was sent: REJECT policy and full, or BACKPRESSURE and
// this activation of the sender has already put `to`'s capacity's worth
// of messages into full mailboxes; a sender's first send past a full
// mailbox always succeeds), TP_EINVAL (NULL ctx, reserved tag, NULL data
// with a size), TP_EMSGSIZE (size over TP_MSG_MAX), TP_ENOMEM, or TP_EPERM
// (`ctx` is not the actor running on this thread). Inside a callback of the
// actor.
TP_API int tp_send(tp_ctx *ctx, tp_pid to, uint32_t tag, const void *data,
                   size_t size);

// As tp_send, but hands over `buf`, which must come from malloc: on success
// the runtime owns it and frees it; on failure the caller still owns it.
TP_API int tp_send_buf(tp_ctx *ctx, tp_pid to, uint32_t tag, void *buf,
                       size_t size);

// Sends from a thread that is not running an actor (main, tests, external
// code); the message's sender is TP_PID_NIL. Under BACKPRESSURE a full
// mailbox makes the call wait up to the configured send timeout, then
// return TP_ETIMEDOUT with nothing sent. Returns tp_send's codes, TP_EINVAL
// for a NULL system, or TP_EPERM when called from inside an actor (use
// tp_send there).
TP_API int tp_system_send(tp_system *sys, tp_pid to, uint32_t tag,
                          const void *data, size_t size);

// As tp_system_send, handing over `buf` as tp_send_buf does.
TP_API int tp_system_send_buf(tp_system *sys, tp_pid to, uint32_t tag,
                              void *buf, size_t size);

// The running actor's pid, or TP_PID_NIL when `ctx` is NULL.
TP_API tp_pid tp_self(tp_ctx *ctx);

// The sender of the message being handled; TP_PID_NIL outside `handle`,
// for messages from outside the system, or when `ctx` is NULL.
TP_API tp_pid tp_sender(tp_ctx *ctx);

// The system the actor belongs to, or NULL when `ctx` is NULL.
TP_API tp_system *tp_ctx_system(tp_ctx *ctx);

// The running actor's behaviour, or NULL when `ctx` is NULL. A behaviour
// embedded first in a larger const struct (tp_statem_spec) finds that
// struct through it.
TP_API const tp_behaviour *tp_ctx_behaviour(tp_ctx *ctx);

// The running actor's state (what its callbacks receive), or NULL when
// `ctx` is NULL or the behaviour has no state.
TP_API void *tp_ctx_state(tp_ctx *ctx);

// Asks the running actor to exit normally once the current callback
// returns (init included: spawn then fails with TP_EINIT). Returns 0,
// TP_EINVAL for NULL, or TP_EPERM from any other thread.
TP_API int tp_stop(tp_ctx *ctx);

// Crashes the running actor at once with `reason` (a negative error code),
// logging a crash report with the formatted text. Called from inside one of
// the actor's callbacks it does not return: control leaves the callback
// (through longjmp, so the frames in between must hold no resources).
// Otherwise it returns TP_EINVAL (NULL ctx, reason not negative) or
// TP_EPERM (not on the actor's thread).
TP_API int tp_fail(tp_ctx *ctx, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Writes a human-readable form of exit reason `reason` into `buf` ("normal",
// "shutdown", "mailbox_overflow", "TP_EINVAL", ...; "error_-N" for a
// negative code troupe does not define). Returns snprintf's count. Any thread.
TP_API int tp_reason_format(int reason, char *buf, size_t size);

// ---- stashing
// ---------------------------------------------------------------
//
// An actor can set a message aside while it cannot handle it yet (waiting
// for its own initialisation, a lock, a reply) and take everything it set
// aside back later, in order, ahead of what arrived meanwhile: Akka's
// StashBuffer. A stash holds at most TP_STASH_MAX messages; what it holds
// dies with the actor, as its mailbox does (counted as dead letters), and
// shows in tp_actor_detail.

#define TP_STASH_MAX 4096

// Keeps a copy of the message being handled (tag, sender, ref, data) in the
// running actor's stash. Returns 0, TP_EFULL (TP_STASH_MAX already
// stashed: not kept), TP_EINVAL (NULL ctx; not handling a message: init,
// terminate), TP_ENOMEM, or TP_EPERM (not the running actor).
TP_API int tp_stash(tp_ctx *ctx);

// Puts every stashed message back, in the order they were stashed: they
// are handled next, before the mailbox (and before those an earlier
// unstash put back that are not handled yet). Returns how many, or
// TP_EINVAL / TP_EPERM as tp_stash (init and terminate included).
TP_API int tp_unstash_all(tp_ctx *ctx);

// How many messages the running actor has stashed (in init and terminate
// too: 0 in init), or TP_EINVAL (NULL ctx) / TP_EPERM (not the running
// actor).
TP_API int tp_stash_size(tp_ctx *ctx);

// Looks up the actor registered as `name`. Returns 0 with its pid in `*out`,
// TP_ENOACTOR when no live actor has the name, or TP_EINVAL. Any thread.
TP_API int tp_whereis(tp_system *sys, const char *name, tp_pid *out);

// Mailbox and activity counters of one actor.
typedef struct tp_actor_stats {
    const char *behaviour;      // the behaviour's name (static)
    char name[TP_NAME_MAX + 1]; // registered name or ""
    uint32_t capacity;          // user-lane capacity
    tp_overflow overflow;       // its policy
    // Messages in the user lane, the one being handled included (it
    // counts against the capacity until its callback returns). A running
    // actor gives back the messages it handled each time they reach a
    // quarter of its capacity, and when its activation ends: during an
    // activation this may still count up to that many it handled, and
    // `handled` moves in the same steps.
    uint32_t length;
    uint32_t high_water; // most messages the user lane has held
    // Discarded by DROP_* or EXIT_RECEIVER, and timer messages that found
    // a full BACKPRESSURE mailbox (the timer thread never waits).
    uint64_t dropped;
    // Refused with TP_EFULL, timer messages a full REJECT mailbox refused
    // included.
    uint64_t rejected;
    uint64_t handled; // messages handled so far (see `length`)
    int muted;        // 1 while muted by backpressure
} tp_actor_stats;

// Fills `*out` with `pid`'s counters. Returns 0, TP_ENOACTOR or TP_EINVAL.
// Any thread.
TP_API int tp_actor_stats_get(tp_system *sys, tp_pid pid, tp_actor_stats *out);

#endif
