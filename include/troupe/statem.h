// SPDX-License-Identifier: MIT
// State machines: a behaviour whose states are functions, with what OTP's
// gen_statem gives (state functions mode): actions on entering a state,
// state timeouts cancelled by a change of state, event timeouts cancelled
// by any event, named timeouts that outlive changes of state, and
// postponing a message until the state changes. Written on the public API
// only, like the supervisor.
//
// A machine is a spec whose first member is its behaviour:
//
//     static const tp_state locked, open;
//     static const tp_statem_spec door = {
//         .behaviour = TP_STATEM_BEHAVIOUR("door"),
//         .data_size = sizeof(struct door), .initial = &locked,
//     };
//     tp_spawn(sys, &door.behaviour, arg, NULL, &pid);
//
// `&door.behaviour` is an ordinary behaviour: it can be a supervisor's
// child, made spawnable by name, shown by introspection under the
// machine's name. Its state is the machine's; the user's data (data_size
// bytes, zeroed) is handed to every callback.
#ifndef TROUPE_STATEM_H
#define TROUPE_STATEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "timer.h"

// What a state function is called with.
typedef enum tp_sm_event_kind {
    // A message, requests and the runtime's messages (TP_TAG_EXIT,
    // TP_TAG_DOWN, ...) included; a request is answered with tp_reply.
    TP_SM_MESSAGE = 1,
    // The state timeout ran out (tp_sm_state_timeout).
    TP_SM_STATE_TIMEOUT,
    // No event came within the event timeout (tp_sm_event_timeout).
    TP_SM_EVENT_TIMEOUT,
    // A named timeout ran out (tp_sm_timeout); `name` says which.
    TP_SM_TIMEOUT,
    // An event the machine inserted itself (tp_sm_next_event).
    TP_SM_INTERNAL,
} tp_sm_event_kind;

typedef struct tp_sm_event {
    tp_sm_event_kind kind;
    // The message; for a timeout, one with the tag, data and size given
    // when it was set, from the machine itself, ref 0. Valid until the
    // state function returns.
    const tp_msg *msg;
    const char *name; // TP_SM_TIMEOUT: the timeout's name; else NULL
} tp_sm_event;

typedef struct tp_state tp_state;

// A state. Keep it `const` and static, like a behaviour: the machine
// holds a pointer to it and compares pointers to tell states apart.
struct tp_state {
    const char *name; // in logs, describe and introspection ("?" if NULL)
    // Required. Handles one event in this state. Returns what a
    // behaviour's handle does: TP_OK, TP_STOP, or an error (a crash).
    int (*handle)(tp_ctx *ctx, void *data, const tp_sm_event *ev);
    // Optional. Runs when the machine enters this state: at start (`from`
    // NULL), after every change of state (`from` the state left), and
    // after tp_sm_repeat (`from` this state). It may set timeouts; it may
    // not change state or postpone (TP_EPERM). Returns as `handle`.
    int (*enter)(tp_ctx *ctx, void *data, const tp_state *from);
};

typedef struct tp_statem_spec {
    // TP_STATEM_BEHAVIOUR("name"): must come first.
    tp_behaviour behaviour;
    size_t data_size;        // bytes of user data, zeroed before init
    const tp_state *initial; // the first state, unless init picks one
    // Optional. Runs as a behaviour's init does, with the spawn's `arg`,
    // and may set `*state` (preset to `initial`) and timeouts. Returns 0,
    // TP_IGNORE or an error, as a behaviour's init. The first state's
    // enter runs after it.
    int (*init)(tp_ctx *ctx, void *data, void *arg, const tp_state **state);
    // Optional. Runs once when a machine that started exits, in the state
    // it was in, as a behaviour's terminate. Of the actions only
    // tp_sm_state works there (the others return TP_EPERM). A tp_fail in
    // init or in the first state's enter ends the spawn without terminate
    // and loses the machine's memory.
    void (*terminate)(tp_ctx *ctx, void *data, const tp_state *state,
                      int reason);
    // Optional. Describes the user data ("key=value ..."); introspection
    // shows "state=NAME transitions=N" before it.
    int (*describe)(const void *data, char *buf, size_t size);
    // Log every change of state at TP_LOG_INFO, from the actor: a line
    // "NAME PID: statem: FROM -> TO" ("(start)" for the first state, once
    // the machine has started).
    bool log_transitions;
    // For a machine that is the new code of an upgrade (tp_statem_change
    // below): every state, NULL-terminated. A running machine goes on in
    // the state of the same name (compared with strcmp; a state without a
    // name matches none). Optional otherwise.
    const tp_state *const *states;
    // Optional, for the same: builds the new data (data_size bytes,
    // zeroed) from the old (the old spec's data_size bytes), as an
    // upgrade's change does (upgrade.h): it reads the old data and copies
    // from it, pointers included, and never modifies nor frees it. A
    // rollback frees the new data's bytes and nothing they point to: what
    // code_change allocates for them is then lost. `*state` comes preset
    // to this spec's state named as `old_state`, or NULL when there is
    // none; it may pick another, which must have a handle. Returns 0, or
    // a negative TP_E* code, which rolls the upgrade back. It runs on the
    // actor's thread, with its ctx, between two of its messages; the
    // actions are refused there (TP_EINVAL), and tp_ctx_behaviour(ctx) is
    // still the old spec's behaviour (for a code_change that converts
    // from more than one version). NULL: the data's first bytes are
    // copied (as many as both sizes allow), and a state of the same name
    // is required.
    int (*code_change)(tp_ctx *ctx, const void *old_data, void *new_data,
                       const tp_state *old_state, const tp_state **state);
} tp_statem_spec;

// The behaviour's callbacks, for TP_STATEM_BEHAVIOUR; not to be called
// otherwise.
TP_API int tp_statem_init(tp_ctx *ctx, void *state, void *arg);
TP_API int tp_statem_handle(tp_ctx *ctx, void *state, const tp_msg *msg);
TP_API void tp_statem_terminate(tp_ctx *ctx, void *state, int reason);
TP_API int tp_statem_describe(const void *state, char *buf, size_t size);

#define TP_STATEM_BEHAVIOUR(NAME)                                             \
    {                                                                         \
        .name = (NAME), .state_size = sizeof(void *), .init = tp_statem_init, \
        .handle = tp_statem_handle, .terminate = tp_statem_terminate,         \
        .describe = tp_statem_describe,                                       \
    }

// Hot code upgrade (upgrade.h) of running machines: a tp_code_change's
// `change` and `discard`, with the new spec as `arg`, whose behaviour is
// the change's `to`:
//
//     tp_code_change ch = {.from = &v1.behaviour, .to = &v2.behaviour,
//                          .change = tp_statem_change,
//                          .discard = tp_statem_discard, .arg = (void *)&v2};
//     tp_upgrade(sys, &ch, 1, 5000, &report);
//
// Each machine keeps its pid, mailbox, timeouts, postponed messages and
// transition count, and goes on in the state that v2's code_change picks
// (by default v2's state of the same name, from v2's `states`) with the
// data it built. An upgrade is not a change of state, even to another
// state: no enter runs, no transition is logged nor counted, the state
// timeout, the event timeout and the named timeouts stay set (each comes,
// when it runs out, to the new state's handle, as set: tag, data, name),
// and postponed messages stay postponed until the next change of state.
// Once the upgrade commits the new machine owns what the old one did (its
// timeouts, and what the old data's pointers that code_change copied
// point to) and the old is freed without the old spec's terminate; after
// a rollback the old machine goes on as it was. A code_change that
// crashes its actor loses the new machine's memory.
//
// tp_statem_change returns TP_EINVAL when `arg` is NULL or not a machine
// (its behaviour's handle is not tp_statem_handle), when the running
// actor is not a machine, for a data_size over 1 GiB, and when no state
// is picked (no state of the same name and no code_change, or one that
// leaves none, or one without handle); TP_EPERM from inside one of the
// machine's callbacks; TP_ENOMEM; or what code_change returned. On the
// actor's thread, as the change. tp_statem_discard frees the machine that
// the upgrade drops (any thread).
TP_API int tp_statem_change(tp_ctx *ctx, const void *old_state,
                            void *new_state, void *arg);
TP_API void tp_statem_discard(void *state, bool committed, void *arg);

// The machine's own tag: its timeouts reach it as messages with this tag
// from itself. A machine must not send itself messages with it.
#define TP_SM_TAG_TIMER 0x7ffe0000u

// ---- actions: from a state function, an enter or the spec's init, with
// the ctx it was given. Each returns 0 or an error: TP_EINVAL for a NULL
// ctx, or one that is not running a state machine's callback (a
// tp_request_then continuation of a machine is not one), TP_EPERM in the
// spec's terminate, unless said otherwise.

// Goes to `state` once this state function returns TP_OK (it is ignored
// when it returns anything else; the last call wins). A change of state
// cancels the state timeout (unless this same callback set it: it then
// belongs to the new state), runs the new state's enter, and puts every
// postponed message back ahead of the mailbox, in the order they came.
// Going to the current state changes nothing. TP_EPERM in enter and init
// (init picks the first state through its `state` argument); TP_EINVAL
// for a NULL state or one without handle.
TP_API int tp_sm_next(tp_ctx *ctx, const tp_state *state);

// Runs the current state's enter again once this state function returns
// TP_OK, without changing state: the state timeout stays and postponed
// messages stay postponed (gen_statem's repeat_state). A tp_sm_next to
// another state in the same callback takes precedence. TP_EPERM in enter
// and init.
TP_API int tp_sm_repeat(tp_ctx *ctx);

// Inserts an event (gen_statem's next_event): once this state function
// returns TP_OK and its change of state (with enter) is made, the
// machine's state function receives TP_SM_INTERNAL with `tag` and a copy
// of `data`, before anything else: postponed messages, the mailbox, and
// the events inserted earlier. Several from one callback come in the
// order they were inserted; if it returns anything else they are dropped
// with the machine. An inserted event cannot be postponed. Returns 0,
// TP_EINVAL (also NULL data with a size), TP_EPERM (in enter, init or
// terminate), TP_EMSGSIZE, TP_ENOMEM.
TP_API int tp_sm_next_event(tp_ctx *ctx, uint32_t tag, const void *data,
                            size_t size);

// Postpones the message being handled: it is handled again after the next
// change of state, before what arrived meanwhile. Postponed messages are
// the actor's stash (tp_stash): at most TP_STASH_MAX, counted in
// tp_actor_detail; a machine does not call tp_unstash_all itself. Returns
// 0, TP_EFULL (the stash is full: not postponed), TP_EINVAL (the event is
// a timeout or an inserted event, not a message), TP_EPERM (in enter or
// init), TP_ENOMEM.
TP_API int tp_sm_postpone(tp_ctx *ctx);

// Sets the state timeout: after `ms` milliseconds in this state the
// machine receives TP_SM_STATE_TIMEOUT with `tag` and a copy of `data`.
// Setting it again replaces it; a change of state cancels it. Returns 0,
// TP_EINVAL (also NULL data with a size), TP_EMSGSIZE, TP_ENOMEM.
//
// Every timeout is a timer the machine sets for itself, so it passes a
// full mailbox (tp_send_after) and is never lost; it is queued behind the
// messages already in the mailbox, even with `ms` 0 (where OTP 24 and
// later handle a zero timeout first).
TP_API int tp_sm_state_timeout(tp_ctx *ctx, uint32_t ms, uint32_t tag,
                               const void *data, size_t size);

// Cancels the state timeout. Returns 0, or TP_ENOENT when none was set.
TP_API int tp_sm_state_timeout_cancel(tp_ctx *ctx);

// Sets the event timeout: TP_SM_EVENT_TIMEOUT (with `tag` and `data`)
// comes after `ms` milliseconds unless an event (a message, another
// timeout or an inserted event, as a state function receives them) comes
// first, which cancels
// it; an answer that goes to a tp_request_then continuation does not.
// Returns as tp_sm_state_timeout.
TP_API int tp_sm_event_timeout(tp_ctx *ctx, uint32_t ms, uint32_t tag,
                               const void *data, size_t size);

// Sets the timeout named `name` (1 to TP_SM_TIMEOUT_NAME_MAX bytes):
// TP_SM_TIMEOUT with that name, `tag` and `data` comes after `ms`
// milliseconds, whatever the states meanwhile. Setting a name again
// replaces its timeout. Returns as tp_sm_state_timeout.
TP_API int tp_sm_timeout(tp_ctx *ctx, const char *name, uint32_t ms,
                         uint32_t tag, const void *data, size_t size);

#define TP_SM_TIMEOUT_NAME_MAX 63

// Cancels the timeout named `name`. Returns 0, or TP_ENOENT when none of
// that name is pending.
TP_API int tp_sm_timeout_cancel(tp_ctx *ctx, const char *name);

// The machine's current state (during a tp_sm_next callback still the one
// being left), or NULL when `ctx` is not running a state machine's
// callback.
TP_API const tp_state *tp_sm_state(tp_ctx *ctx);

#endif
