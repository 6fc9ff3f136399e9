// SPDX-License-Identifier: MIT
// The supervisor behaviour's own state and the functions its files share:
// supervisor.c (the behaviour: init, messages, exit signals, shutdown),
// sup_children.c (the children table, starting a child, restart
// intensity), sup_restart.c (the strategies: which children restart and
// when), sup_stop.c (stop sequences, driven by messages, and stopping the
// children of a start that failed) and sup_serve.c (answering management
// calls). Like them, written on <troupe.h> alone.
#ifndef TROUPE_SUP_SERVER_H
#define TROUPE_SUP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <troupe.h>

#include "sup_impl.h"

#define ID_MAX TP__SUP_ID_MAX

// Private message tags of the supervisor alone; the calls' are in
// sup_impl.h.
enum {
    TAG_KILL_TIMER = TP__SUP_KILL_TIMER, // data: tp_pid: its time is up
    TAG_RESTART = TP__SUP_RESTART,       // data: uint64_t child key
};

typedef tp__sup_start_req start_req;
typedef tp__sup_id_req id_req;
typedef tp__sup_answer answer;

typedef struct child {
    tp_child_spec spec; // id and opts.name are NULL: see id and name
    char id[ID_MAX];
    char name[TP_NAME_MAX + 1]; // registered name, or ""
    uint64_t key;               // never reused: names the child in timers
    tp_pid pid;                 // TP_PID_NIL when not running
    tp_pid last_pid;            // its previous incarnation, or nil
    uint32_t restarts;
    uint32_t streak;    // restarts in a row, for backoff
    uint32_t backoff;   // ms its pending restart waited for backoff (log)
    int64_t started_at; // when it last started (ms), for backoff
    bool waiting;       // a delayed restart is pending
    bool retry;         // its last start failed; the next try counts
    bool deferred;      // its restart came due during a stop sequence
    // A supervisor child's spec (its `arg`) is a copy of ours (spec_copy,
    // sup_children.c): restarts read it, and upgrades change it.
    bool owns_arg;
} child;

// A pending management call, answered with tp_reply_to.
typedef struct call {
    tp_pid from;
    uint64_t ref;
    uint32_t tag;
    union {
        start_req start; // TP__SUP_CALL_START
        id_req id;       // TP__SUP_CALL_TERMINATE, _RESTART, _DELETE
        tp__sup_upgrade_req upgrade; // TP__SUP_CALL_UPGRADE
        tp__sup_refs_req refs;       // TP__SUP_CALL_REFS
    } req;
} call;

enum { CONT_NONE, CONT_RESTART, CONT_ANSWER, CONT_EXIT };

typedef struct sup {
    tp_sup_flags flags;
    child *kids; // in start order, which is also ascending key order
    size_t n, cap;
    uint64_t next_key;
    // Running children's pids -> keys: open addressing, linear probing,
    // at most half full, so that an exit in a storm of thousands is O(1).
    tp_pid *map_pid; // TP_PID_NIL: free
    uint64_t *map_key;
    size_t map_cap, map_n;
    // Restart times (ms) within the period, oldest first, in a ring that
    // grows with the restarts inside the window (not with the intensity,
    // which may be huge): expiring them is O(1) per restart.
    int64_t *stamps;
    size_t head, nstamps, capstamps;
    unsigned seed;
    tp_system *sys;

    // The stop sequence in progress, if any.
    bool busy;
    uint64_t *stop; // child keys, in stopping order
    size_t nstop, stop_at;
    tp_pid target; // child being stopped now, or nil
    tp_timer kill_timer;
    int cont;        // what to do when the sequence ends
    int exit_reason; // CONT_EXIT
    uint64_t *again; // CONT_RESTART: keys to restart, in start order
    size_t nagain;
    uint32_t again_delay; // CONT_RESTART: backoff before restarting them
    call answer_to;       // CONT_ANSWER: the terminate call

    // Work that arrived during a sequence. Calls wait in the actor's
    // stash (tp_stash), put back when the sequence ends.
    uint64_t *exited; // keys of children that exited meanwhile
    int *exited_reason;
    size_t nexited, capexited;
} sup;

#define NO_REASON TP__SUP_NO_REASON

// sup_children.c
child *tp__sup_by_key(sup *s, uint64_t key);
child *tp__sup_by_pid(sup *s, tp_pid pid);
void tp__sup_set_down(sup *s, child *c);
bool tp__sup_name_still_held(tp_ctx *ctx, const child *c);
child *tp__sup_by_id(sup *s, const char *id);
size_t tp__sup_index_of(sup *s, const child *c);
void tp__sup_remove_child(sup *s, child *c);
// Frees what child `c` owns (its spec's copy), when it leaves `s`.
void tp__sup_child_free(child *c);
// Replaces, in the spec copies `c` owns, each change's `from` by its `to`;
// returns how many specs changed.
int32_t tp__sup_copy_upgrade(const child *c, const tp_code_change *ch,
                             size_t n);
// How many specs in the copies `c` owns point into [lo, hi).
int32_t tp__sup_copy_refs(const child *c, uintptr_t lo, uintptr_t hi);
// Whether a spec's behaviour or arg point into [lo, hi).
bool tp__sup_spec_refs(const tp_child_spec *c, uintptr_t lo, uintptr_t hi);
int32_t tp__sup_shutdown_ms(const tp_child_spec *c);
int tp__sup_check_spec(tp_system *sys, const tp_child_spec *c);
child *tp__sup_add_child(sup *s, const tp_child_spec *spec, const char *id,
                         const char *name, void *arg, int *err);
int tp__sup_start(tp_ctx *ctx, sup *s, child *c);
bool tp__sup_add_restart(sup *s);
size_t tp__sup_restarts_in_window(const sup *s);

// sup_restart.c
void tp__sup_schedule_restart(tp_ctx *ctx, const child *c, uint32_t delay);
void tp__sup_restart_set(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n);
void tp__sup_handle_exit_of(tp_ctx *ctx, sup *s, child *c, int reason);

// sup_stop.c
void tp__sup_stop_next(tp_ctx *ctx, sup *s);
int tp__sup_begin_sequence(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n,
                           int cont);
uint64_t *tp__sup_running_reversed(sup *s, size_t from, size_t *n);
void tp__sup_shut_down(tp_ctx *ctx, sup *s, int reason);
void tp__sup_stop_started(tp_ctx *ctx, sup *s);

// sup_serve.c
void tp__sup_answer_call(tp_ctx *ctx, const call *k, int rc, tp_pid pid);
void tp__sup_do_call(tp_ctx *ctx, sup *s, const call *k);
int tp__sup_take_call(call *k, const tp_msg *msg);
int tp__sup_note_exit(sup *s, uint64_t key, int reason);

// supervisor.c
// The system's clock (tp_now_ms): virtual on a test system.
int64_t tp__sup_now_ms(const sup *s);
void tp__sup_log_child(tp_ctx *ctx, int level, const char *what,
                       const child *c, int reason);
void tp__sup_log_restarted(tp_ctx *ctx, const child *c);

#endif
