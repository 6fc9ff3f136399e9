// SPDX-License-Identifier: MIT
// Timers and request/reply.
//
// A timer sends a message later, once or every period. Timers live in one
// heap per system, served by a timer thread; a pending timer costs about a
// hundred bytes and nothing on the send path. A timer an actor set for
// itself is cancelled when it exits, before its exit is announced; one
// aimed at an actor that has exited is dropped when it comes due. A cancelled
// timer never fires: once tp_timer_cancel returns, its message is not handled,
// even if it was already queued.
//
// A request is a message with a reference (msg->ref): the receiver answers
// with tp_reply, and the requester receives exactly one answer with that
// ref: the reply, a TP_TAG_TIMEOUT message if no reply came in time, or a
// TP_TAG_FAILED message (a tp_down_msg) as soon as the callee is found
// dead, dies before replying or its node is lost. A request monitors its
// callee under its own ref until it is answered; nothing is left behind.
// A reply arriving after the request ended is discarded.
#ifndef TROUPE_TIMER_H
#define TROUPE_TIMER_H

#include <stdint.h>

#include "actor.h"

typedef uint64_t tp_timer; // 0 is never a valid timer

// Sends a copy of `data` to `to` with `tag` after `ms` milliseconds, from
// the running actor, and stores the timer in `*out` (may be NULL). `ms` is
// a delay, not a timeout (nothing waits for it), hence unsigned: 0 sends
// at the timer thread's next turn. The message goes through `to`'s
// overflow policy like any other, except that it never waits: where a
// thread would wait it is dropped and counted. A timer an actor set for
// itself (`to` its own pid) is the exception: it passes its full mailbox,
// as a reply does, so an actor's own timeouts are never lost.
// Returns 0, TP_EINVAL (NULL ctx, reserved tag, NULL data with a size),
// TP_EMSGSIZE, TP_ENOMEM, or TP_EPERM (not on the actor's thread).
TP_API int tp_send_after(tp_ctx *ctx, tp_pid to, uint32_t ms, uint32_t tag,
                         const void *data, size_t size, tp_timer *out);

// As tp_send_after, every `ms` milliseconds (at least 1) until cancelled
// or until `to` exits.
TP_API int tp_send_interval(tp_ctx *ctx, tp_pid to, uint32_t ms, uint32_t tag,
                            const void *data, size_t size, tp_timer *out);

// Cancels timer `t`. Returns 0 when it was pending (its message will never
// be handled), TP_ENOENT when it already fired, was cancelled or never
// existed, or TP_EINVAL. Any thread; `sys` is the timer's system.
TP_API int tp_timer_cancel(tp_system *sys, tp_timer t);

// Sends a request to `to` and stores its reference in `*ref` (may be
// NULL). The running actor then receives exactly one of: the reply
// (msg->ref == *ref); TP_TAG_FAILED with that ref, whose tp_down_msg
// reason is TP_REASON_NOPROC (`to` was not alive: then 0 is returned too),
// the callee's exit reason, or TP_REASON_NOCONNECTION; or TP_TAG_TIMEOUT
// with that ref once `timeout_ms` has passed. With `timeout_ms` -1 no
// TP_TAG_TIMEOUT is ever sent: the request waits for the reply or the
// failure as long as it takes. With 0 it does not wait: the timeout is due
// at once, so TP_TAG_TIMEOUT follows unless the reply or the failure
// reached the requester first (a reply cannot be there yet when the call
// returns, so 0 only suits a callee that need not answer). Returns 0, or
// TP_EINVAL (`timeout_ms` below -1) or tp_send's other codes (TP_EFULL,
// TP_EINVAL, TP_EMSGSIZE, TP_ENOMEM, TP_EPERM), in which case nothing
// follows.
TP_API int tp_request(tp_ctx *ctx, tp_pid to, uint32_t tag, const void *data,
                      size_t size, int timeout_ms, uint64_t *ref);

// A request's continuation: it receives the request's answer (the reply,
// TP_TAG_TIMEOUT or TP_TAG_FAILED, msg->ref the request's) instead of the
// behaviour's handle, in the requester's activation, with its state and
// the `arg` given to tp_request_then. It returns what handle would
// (TP_OK, TP_STOP, or an error that crashes the actor).
typedef int (*tp_then_fn)(tp_ctx *ctx, void *state, const tp_msg *answer,
                          void *arg);

// tp_request whose answer goes to `then` instead of handle: exactly one
// call, with the reply, TP_TAG_TIMEOUT or TP_TAG_FAILED as tp_request
// describes, and nothing reaches handle. Any number may be in flight, each
// with its own continuation. A continuation never runs after its actor
// ended: those still pending end with it, uncalled (the runtime does not
// free `arg`). `ref` may be NULL. Returns tp_request's codes, and TP_EINVAL
// for a NULL `then`; after an error nothing is called.
TP_API int tp_request_then(tp_ctx *ctx, tp_pid to, uint32_t tag,
                           const void *data, size_t size, int timeout_ms,
                           tp_then_fn then, void *arg, uint64_t *ref);

// Answers the message being handled, which must be a request (msg->ref set
// and a sender): the requester receives `tag` and `data` with the request's
// ref. Returns 0 (also when the requester is gone or stopped waiting),
// TP_EINVAL (not handling a request, reserved tag), TP_EMSGSIZE, TP_ENOMEM
// or TP_EPERM. A reply passes its requester's full mailbox while the
// requester has a request pending that no reply has passed for yet.
TP_API int tp_reply(tp_ctx *ctx, uint32_t tag, const void *data, size_t size);

// Answers a request later: `to` and `ref` are the request's msg->from and
// msg->ref, kept from when it was handled. Otherwise as tp_reply. Returns
// 0, TP_EINVAL (NULL ctx, nil pid, zero ref, reserved tag), TP_EMSGSIZE,
// TP_ENOMEM or TP_EPERM.
TP_API int tp_reply_to(tp_ctx *ctx, tp_pid to, uint64_t ref, uint32_t tag,
                       const void *data, size_t size);

// A reply received by tp_call. `data` is malloc'ed; free it with free().
typedef struct tp_call_reply {
    uint32_t tag;
    void *data;
    size_t size;
} tp_call_reply;

// Sends a request from a thread that is not running an actor and blocks
// until the reply arrives or `timeout_ms` pass (-1: as long as it takes; 0:
// the request is sent and the call gives up at once unless the reply beat
// the timeout, as with tp_request). Returns 0 with the reply in `*out`,
// TP_ETIMEDOUT, tp_system_send's codes, TP_ENOACTOR when `to` exits
// without replying, TP_EINVAL (NULL `sys` or `out`, `timeout_ms` below
// -1), or TP_EPERM inside an actor (use tp_request there).
TP_API int tp_call(tp_system *sys, tp_pid to, uint32_t tag, const void *data,
                   size_t size, int timeout_ms, tp_call_reply *out);

#endif
