// SPDX-License-Identifier: MIT
// Hot code upgrade: every live actor running a behaviour switches to a new
// one, keeping its pid, name, mailbox, links, monitors and timers, with
// its state converted by a code change, between two of its messages; all
// of them or none.
//
// tp_upgrade works in two phases. First each actor, between two of its
// messages, builds its new state from the old (the change below) and is
// then held: it handles nothing more, its messages queue in its mailbox.
// Once every actor has done so, each installs its new code and state and
// goes on with its mailbox, in order. If any change fails, or an actor's
// change does not come within the timeout, each actor keeps, or gets back,
// its old code and state, and nothing was lost: a held actor had handled
// nothing since it built the state it now drops.
//
// What a change may do, so that a rollback is possible: read the old
// state and copy from it, pointers included; it must not modify the old
// state nor free anything it owns. Once the upgrade commits, the new state
// owns what such pointers point to, and the old state is dropped without
// its behaviour's terminate; once it rolls back, the new state is freed
// and the old one goes on. Either dropped state passes through the
// change's `discard`, when it has one, before its memory is freed.
#ifndef TROUPE_UPGRADE_H
#define TROUPE_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "system.h"

typedef struct tp_code_change {
    const tp_behaviour *from; // the running behaviour
    const tp_behaviour *to;   // what its actors run from now on
    // Builds the new state, to->state_size bytes already zeroed, from the
    // old one (from->state_size bytes), on the actor's own thread between
    // two of its messages; `ctx` is the actor's. Returns 0, or a negative
    // TP_E* code, which rolls the whole upgrade back. NULL copies the old
    // state's bytes (as many as both sizes allow).
    int (*change)(tp_ctx *ctx, const void *old_state, void *new_state,
                  void *arg);
    void *arg;
    // Optional, for states that own memory their change shares or
    // replaces: runs on the state the actor drops once the verdict is
    // known, before that state's memory is freed. `committed`: the old
    // state, the new one now runs; otherwise a new state that `change`
    // built (it returned 0) and the rollback, or the actor's death while
    // held, drops. It frees what that state owns and the other does not
    // (what `change` allocated, after a rollback). Any thread; it must not
    // block nor touch the actor.
    void (*discard)(void *state, bool committed, void *arg);
} tp_code_change;

typedef struct tp_upgrade_report {
    uint32_t actors;      // actors switched; after a rollback, those held
    int failed;           // 0, or why it rolled back: the first change's
                          // code, TP_ECRASH for a change that crashed its
                          // actor, TP_ETIMEDOUT
    tp_pid failed_pid;    // whose change failed, or nil
    uint32_t gone;        // actors that exited before their turn
    int64_t pause_p50_us; // how long an actor was held: median and longest
    int64_t pause_max_us;
} tp_upgrade_report;

// Switches every live local actor whose behaviour is one of the `n`
// changes' `from` to its `to`. A `to` whose state is larger than its
// `from`'s keeps its state in a block of its own (from->state_size must
// then be at least a pointer's size); tp_ctx_behaviour then returns a
// behaviour named as `to` but not `to` itself. Outside actors, on a thread
// that may block (a test system runs its actors meanwhile). Returns 0 when
// every actor switched, with `out` (may be NULL) filled; the code of the
// failure when it rolled back (out->failed); TP_EINVAL for bad changes (a
// `from` twice, NULL behaviours, a `to` without handle, a state that would
// need a block of its own but whose `from` holds less than a pointer);
// TP_EPERM from an actor; TP_ENOMEM. It returns once no change runs any
// more (a late one, past the timeout, included), so the changes' `arg`s
// may be freed then.
//
// The actors are those running a `from` when it starts: one spawned with
// a `from` meanwhile (by a supervisor whose specs tp_sup_upgrade has not
// changed yet, say) keeps the old code. After tp_sup_upgrade, upgrade
// again while tp_behaviour_users(sys, from) is not 0, as actord does (a
// few times: a change that keeps failing leaves those on the old code).
//
// Once it commits, behaviours made spawnable by other nodes
// (tp_spawnable) that are a change's `from` are its `to` from then on.
//
// What reaches a held actor (messages, request timeouts, signals, a kill)
// waits in its mailbox and is handled after the verdict, by the code the
// verdict leaves. A change runs as the actor: what it sends goes out at
// once, and a tp_stop takes effect after the actor's next message. On a
// test system the timeout is virtual time. tp_system_destroy must not run
// while another thread is in tp_upgrade. An actor muted by backpressure
// (BACKPRESSURE mailboxes) prepares only once its receiver drains: when
// that receiver is held by the same upgrade, the upgrade times out and
// rolls back; upgrade such a pair in two upgrades, the sender first.
//
// A state machine (statem.h) is upgraded with tp_statem_change and
// tp_statem_discard as the change's `change` and `discard`, and the new
// tp_statem_spec as its `arg` (statem.h says what carries over). A
// continuation (tp_request_then) set by the old code runs after the
// upgrade with the new state: upgrade an actor once its continuations are
// done, or make its new state begin as the old did. Timers' data keeps
// pointing where the old code put it.
TP_API int tp_upgrade(tp_system *sys, const tp_code_change *changes, size_t n,
                      int timeout_ms, tp_upgrade_report *out);

// How many live local actors run `b`, directly or as the `to` of an
// upgrade: 0 once a module's behaviours can be unloaded (as far as actors
// go: supervisors' child specs and continuations may still point into
// it). Any thread.
TP_API size_t tp_behaviour_users(tp_system *sys, const tp_behaviour *b);

// Labels behaviour `b` with the version of the code it belongs to
// (copied: at most 31 bytes; NULL or "" removes the label). An actor
// running `b`, directly or as the `to` of an upgrade, shows it in
// tp_actor_info's `version`, and so in the control socket's answers
// (actorctl info, tree --describe). actord labels the behaviours an
// application lists with its module's version, and moves the labels at
// each upgrade. Returns 0, TP_EINVAL (NULL sys or b, a version too long)
// or TP_ENOMEM. Any thread.
TP_API int tp_behaviour_version(tp_system *sys, const tp_behaviour *b,
                                const char *version);

// What may still run code at addresses [start, start + size), such as a
// loaded module's mapping, before that module can be unloaded: the local
// actors (dying ones too, until they are gone) whose behaviour (the
// record, or its handle, init, terminate or describe) lies there,
// directly or as the `to` of an upgrade; the behaviours made spawnable
// (tp_spawnable) that lie there; plus every continuation
// (tp_request_then), pending or running, that its actor set before an
// upgrade switched its code, or that such a continuation set, wherever
// it points, since it may run any older code. 0 means none of those, and
// only those: supervisors' child specs are counted by tp_sup_refs, and
// what else a module handed over (threads, pointers in messages or
// timers' data, functions given to routers, logs or the control socket)
// is the module's to account for. Any thread; a count that may change at
// once, for a decision made again later.
TP_API size_t tp_code_refs(tp_system *sys, const void *start, size_t size);

#endif
