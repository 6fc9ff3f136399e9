// SPDX-License-Identifier: MIT
// The signals subsystem's internal header: links, monitors and exit
// signals (link.c), timers (timer.c) and requests (request.c). It sits on
// the core and is called by it only through the hooks core.h declares.
#ifndef TROUPE_SIGNALS_H
#define TROUPE_SIGNALS_H

#include "core/core.h"

// ---- links, monitors and requests (link.c) ----------------------------

// A set or map of 64-bit keys (never 0 or UINT64_MAX) by open addressing.
typedef struct tp__map {
    uint64_t *keys;
    uint64_t *vals;
    uint32_t cap, len, used; // used counts tombstones too
} tp__map;

bool tp__map_get(const tp__map *m, uint64_t key, uint64_t *val);
int tp__map_put(tp__map *m, uint64_t key, uint64_t val);
bool tp__map_del(tp__map *m, uint64_t key, uint64_t *val);
void tp__map_free(tp__map *m);

// Touched only by the actor's own activation (or its spawner before init
// returns).
typedef struct tp__ext {
    bool trap_exit;
    tp__map links;    // pid -> 1
    tp__map watchers; // ref -> pid of the actor monitoring us
    tp__map monitors; // ref -> pid we monitor
    tp__map requests; // ref -> timer of our pending requests
    tp__map thens;    // ref -> tp__then * of those with a continuation
    tp__map byname;   // ref -> tp__msg * of requests by name not yet sent
    // Stashed messages (stash.c), and those put back that the last
    // activation left unhandled; linked through their queue nodes.
    struct tp__msg *stash, *stash_tail, *replay, *replay_tail;
    uint32_t nstash;
    // Stale continuations (tp__then.stale) running now: what they attach
    // is stale too, and they count in sys->stale_thens until they return.
    uint32_t stale_running;
    struct tmr *timers; // timers set for ourselves, under the timers' lock
    bool own_timers;    // we set one: our exit walks `timers`
    char exit_text[TP_REASON_TEXT_MAX]; // tp_fail's text, for signals
} tp__ext;

tp__ext *tp__ext_of(tp_actor *a);
int tp__link_spawned(tp_actor *parent, tp_actor *child);
void tp__unlink_spawned(tp_actor *parent, tp_actor *child);
int tp__system_signal(tp__msg *m, tp_actor *a, tp__msg **deliver);
void tp__notify_exit(tp_actor *a, int reason);
int tp__exit_queued(tp_actor *a);
void tp__exit_text(tp_actor *a, const char *text);
void tp__answer_late(tp_actor *a, tp__msg *m, int reason);
void tp__ext_free(tp_actor *a);
// Fills the links, monitors and trap flag of `a` into `d` (introspection).
void tp__ext_detail(tp_actor *a, tp_actor_detail *d);
bool tp__request_done(tp_actor *a, uint64_t ref, tp_pid from);
// A request by name (tp_request_name_at, cluster/remote.c): registers
// request `m` of `a` (its timeout armed, the request pending) without a
// callee yet; `m` belongs to the request from then on, sent once
// tp__request_resolved names the callee. Returns 0 with the ref in *ref.
int tp__request_by_name(tp_actor *a, tp__msg *m, int timeout_ms,
                        uint64_t *ref);
// Sends request `m` of `a` (open under `ref`) to `to`, under the monitor
// that fails it if `to` dies. Returns 0 when it went out or that
// monitor's DOWN answers it (`to` already gone, dead meanwhile, its node
// lost); otherwise the error, nothing sent. `m` is consumed either way.
int tp__request_send(tp_actor *a, tp_pid to, uint64_t ref, tp__msg *m);
// Gives pending request `ref` of `a` continuation `fn`. Returns 0, or
// TP_ENOMEM with nothing attached.
int tp__then_attach(tp_actor *a, uint64_t ref, tp_then_fn fn, void *arg);
// Tells `caller` what its request `ref` by name resolved to: 0 and the
// callee's pid, or the lookup's error (TP_ENOACTOR: not registered).
int tp__request_resolved(tp_system *sys, tp_pid caller, uint64_t ref,
                         int error, tp_pid pid);
// A pending request's continuation (tp_request_then).
typedef struct tp__then {
    tp_then_fn fn;
    void *arg;
    bool stale; // counted in sys->stale_thens
} tp__then;
void tp__then_free(tp_actor *a, tp__then *t);
void tp__then_done(tp_actor *a);
void tp__thens_stale(tp_actor *a);
bool tp__then_take(tp_actor *a, uint64_t ref, tp_then_fn *fn, void **arg);
// stash.c
void tp__replay_save(tp_actor *a, tp__msg *head, tp__msg *tail);
void tp__replay_load(tp_actor *a, tp__msg **head, tp__msg **tail);
void tp__replay_drop(tp_actor *a, tp__msg *m);
// Frees the stash and what was put back; returns how many messages.
uint64_t tp__stash_free(tp__ext *x);
int tp__request_monitor(tp_actor *a, tp_pid to, uint64_t ref, bool *gone);
void tp__request_answered(tp_actor *a, tp_pid to, uint64_t ref);

// ---- timers (timer.c) -------------------------------------------------

typedef struct tp__timers tp__timers;
int tp__timers_new(tp_system *sys);
void tp__timers_stop(tp_system *sys);
void tp__timers_free(tp_system *sys);
uint64_t tp__timers_live(tp_system *sys);
// For test systems (tp__up_ops): fires the timers due by `now_ns` (the
// virtual clock) on this thread, returning how many; the next deadline,
// or -1.
int tp__timers_fire_due(tp_system *sys, int64_t now_ns);
int64_t tp__timers_next_due(tp_system *sys);
bool tp__timer_claim(tp__msg *m);
void tp__timer_msg_gone(tp__msg *m);
uint64_t tp__timer_add_timeout(tp_system *sys, tp_pid to, uint64_t ref,
                               uint32_t ms);
int tp__timer_cancel(tp_system *sys, uint64_t id);
void tp__timers_owner_died(tp_actor *a);

#endif
