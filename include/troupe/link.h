// SPDX-License-Identifier: MIT
// Links, monitors and exit signals, with Erlang/OTP's semantics.
//
// A link joins two actors both ways: when one exits, the other receives an
// exit signal carrying the reason. A signal with reason TP_REASON_NORMAL is
// ignored; any other kills the receiver with the same reason, unless the
// receiver traps exits, in which case the signal arrives as a message with
// tag TP_TAG_EXIT. tp_exit with TP_REASON_KILL cannot be trapped: the
// target dies with TP_REASON_KILLED, and that is what its links see.
//
// A monitor watches one actor one way: when it exits (or if it was already
// gone) the watcher receives a message with tag TP_TAG_DOWN. Monitors never
// kill the watcher.
//
// Exit signals, DOWN messages and link and monitor requests are never
// refused or dropped, whatever the user lane holds, and they keep their
// place: between two actors, everything one causes the other to receive
// (messages, replies, signals) arrives in the order it was caused,
// locally and across nodes. An exit signal that kills a receiver not
// trapping exits takes effect as soon as it arrives, ahead of messages
// the receiver would never handle; so does TP_REASON_KILL.
#ifndef TROUPE_LINK_H
#define TROUPE_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "actor.h"

// Message tags the runtime delivers to `handle`.
#define TP_TAG_EXIT (TP_TAG_RESERVED + 1)    // data: tp_exit_msg
#define TP_TAG_DOWN (TP_TAG_RESERVED + 2)    // data: tp_down_msg
#define TP_TAG_TIMEOUT (TP_TAG_RESERVED + 3) // msg->ref: the request's ref
// A request's callee was not alive, died before replying, or its node was
// lost: msg->ref is the request's ref, data a tp_down_msg whose reason is
// TP_REASON_NOPROC, the callee's exit reason, or TP_REASON_NOCONNECTION.
#define TP_TAG_FAILED (TP_TAG_RESERVED + 4)

// Longest text an exit reason carries (from tp_fail), NUL included.
#define TP_REASON_TEXT_MAX 96

// An exit signal received while trapping exits.
typedef struct tp_exit_msg {
    tp_pid from; // the actor that exited (link) or sent it (tp_exit)
    int reason;  // TP_REASON_* or a negative error code
    bool linked; // true when it came through a link
    char text[TP_REASON_TEXT_MAX]; // tp_fail's text, or ""
} tp_exit_msg;

// A monitored actor exited, or was not alive when the monitor was set.
typedef struct tp_down_msg {
    uint64_t ref; // as returned by tp_monitor
    tp_pid from;  // the monitored actor
    int reason;   // TP_REASON_NOPROC if it was already gone
    char text[TP_REASON_TEXT_MAX];
} tp_down_msg;

// Links the running actor to `pid`. Linking twice, or to oneself, is a
// no-op. Returns 0, TP_ENOACTOR (`pid` is not alive; no link is made),
// TP_EINVAL (NULL ctx), TP_EPERM (not on the actor's thread) or TP_ENOMEM.
// Inside the actor's callbacks, init included.
TP_API int tp_link(tp_ctx *ctx, tp_pid pid);

// Removes the link with `pid`, if any; an exit signal from it that is
// already on its way is then ignored. Returns 0, TP_EINVAL or TP_EPERM.
TP_API int tp_unlink(tp_ctx *ctx, tp_pid pid);

// Turns trapping of exit signals on or off for the running actor. Returns
// the previous setting (0 or 1), TP_EINVAL or TP_EPERM.
TP_API int tp_trap_exit(tp_ctx *ctx, bool on);

// Sends an exit signal with `reason` (TP_REASON_* or a negative code) to
// `pid`, from the running actor. With TP_REASON_KILL the target is
// unreachable at once, even while one of its callbacks runs: tp_whereis no
// longer finds it, sends to it return TP_ENOACTOR and what it sends from
// then on is discarded; its EXIT and DOWN go out when its callback
// returns. As erlang:exit/2, TP_REASON_NORMAL sent to the caller itself,
// when it does not trap exits, ends it with reason normal once the
// callback returns. Returns 0, TP_ENOACTOR, TP_EINVAL (NULL ctx, or
// `reason` neither a TP_REASON_* nor negative), TP_EPERM or TP_ENOMEM.
// Inside an actor's callbacks.
TP_API int tp_exit(tp_ctx *ctx, tp_pid pid, int reason);

// As tp_exit, from a thread that is not running an actor; the signal's
// sender is TP_PID_NIL. Returns TP_EPERM inside an actor.
TP_API int tp_system_exit(tp_system *sys, tp_pid pid, int reason);

// Monitors `pid` from the running actor and stores the monitor's reference
// in `*ref` (may be NULL). If `pid` is not alive, a DOWN with reason
// TP_REASON_NOPROC is queued at once and 0 returned. Returns 0, TP_EINVAL,
// TP_EPERM or TP_ENOMEM. Inside the actor's callbacks, init included.
TP_API int tp_monitor(tp_ctx *ctx, tp_pid pid, uint64_t *ref);

// Removes the monitor `ref`. Once it returns, no DOWN for `ref` is
// delivered, even one already queued. Unknown references are ignored.
// Returns 0, TP_EINVAL or TP_EPERM.
TP_API int tp_demonitor(tp_ctx *ctx, uint64_t ref);

// Asks the running actor to exit with `reason` once the current callback
// returns (in init: spawn fails with TP_EINIT). tp_stop is
// tp_stop_reason(ctx, TP_REASON_NORMAL). Returns 0, TP_EINVAL (NULL ctx,
// or `reason` neither a TP_REASON_* nor negative) or TP_EPERM.
TP_API int tp_stop_reason(tp_ctx *ctx, int reason);

// Registers `pid` under `name` (1 to TP_NAME_MAX bytes). An actor has at
// most one name; it is released when the actor exits. Returns 0, TP_EEXIST
// (the name is taken or the actor already has one), TP_ENOACTOR (no such
// actor, or one whose exit has released its name already), TP_EINVAL or
// TP_ENOMEM. Any thread.
TP_API int tp_register(tp_system *sys, const char *name, tp_pid pid);

// Releases `name`. Returns 0, TP_ENOACTOR (not registered) or TP_EINVAL.
// Any thread.
TP_API int tp_unregister(tp_system *sys, const char *name);

// As tp_send and tp_system_send, to the actor registered as `name`;
// TP_ENOACTOR when no actor has the name.
TP_API int tp_send_name(tp_ctx *ctx, const char *name, uint32_t tag,
                        const void *data, size_t size);
TP_API int tp_system_send_name(tp_system *sys, const char *name, uint32_t tag,
                               const void *data, size_t size);

#endif
