// SPDX-License-Identifier: MIT
// What the files of supervisors/ share. Not part of the public API: like
// the supervisor itself, it is written on <troupe.h> alone.
#ifndef TROUPE_SUP_IMPL_H
#define TROUPE_SUP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <troupe.h>

#define TP__SUP_ID_MAX 64 // a child id's bytes, NUL included

// Private message tags (below TP_TAG_RESERVED) of supervisors.
enum {
    TP__SUP_KILL_TIMER = 0x7fff0001, // supervisor.c's own
    TP__SUP_RESTART,                 // supervisor.c's own
    TP__SUP_CALL_START,              // data: tp__sup_start_req
    TP__SUP_CALL_TERMINATE,          // data: tp__sup_id_req
    TP__SUP_CALL_RESTART,            // data: tp__sup_id_req
    TP__SUP_CALL_DELETE,             // data: tp__sup_id_req
    TP__SUP_CALL_WHICH,              // no data
    TP__SUP_CALL_COUNT,              // no data
    TP__SUP_ANSWER,                  // data: tp__sup_answer
    TP__SUP_CHILDREN,                // data: tp_sup_child[n], n >= 0
    TP__SUP_COUNTS,                  // data: tp_sup_counts
    TP__SUP_CALL_UPGRADE,            // data: tp_code_change[n], n >= 1
    TP__SUP_CALL_REFS,               // data: tp__sup_refs_req
};

// Which child specs point into [lo, hi) (tp_sup_refs).
typedef struct tp__sup_refs_req {
    uintptr_t lo, hi;
} tp__sup_refs_req;

// An upgrade of the child specs: the changes, in the call's own message
// (a copy, so a caller that gave up may free its array).
typedef struct tp__sup_upgrade_req {
    const tp_code_change *changes;
    size_t n;
} tp__sup_upgrade_req;

// A start_child request. The spec's strings travel by value: a caller
// whose call timed out may free them before a busy supervisor gets to it.
typedef struct tp__sup_start_req {
    bool has_spec, has_id;
    tp_child_spec spec; // id and opts.name: see id and name
    char id[TP__SUP_ID_MAX];
    char name[TP_NAME_MAX + 1]; // "" for none
    void *arg;
} tp__sup_start_req;

// A terminate, restart or delete request: by id, or by pid.
typedef struct tp__sup_id_req {
    char id[TP__SUP_ID_MAX];
    tp_pid pid;
} tp__sup_id_req;

// The answer to a start, terminate, restart, delete, upgrade or refs
// call, and to any call that failed: the result, after a start or a
// restart the child's pid, and the call it answers (its TP__SUP_CALL_*
// tag), so that a decoder can tell another call's answer from its own.
typedef struct tp__sup_answer {
    int32_t rc;
    uint32_t call;
    tp_pid pid;
} tp__sup_answer;

#define TP__SUP_NO_REASON INT32_MIN

// Logs one line about child `id` of supervisor `sup`: the event, the
// child's pid and behaviour, `reason` unless TP__SUP_NO_REASON, its
// restart count, then `tail`. Any thread.
void tp__sup_log(tp_system *sys, int level, tp_pid sup, const char *what,
                 const char *id, tp_pid child, const char *behaviour,
                 int reason, uint32_t restarts, const char *tail);

// A child to stop, how (a timeout in ms, TP_SHUTDOWN_BRUTAL_KILL or
// TP_SHUTDOWN_INFINITY, never TP_SHUTDOWN_DEFAULT), and what to log.
typedef struct tp__sup_victim {
    tp_pid pid;
    int32_t shutdown;
    uint32_t restarts;
    const char *behaviour; // its behaviour's name (static)
    char id[TP__SUP_ID_MAX];
} tp__sup_victim;

// Spawns a reaper for supervisor `sup`: an actor that stops the `n` (at
// least 1) children in `v`, in that order and one at a time, as a
// supervisor stops its children (shutdown, then kill when the time is
// up), logs each exit as `sup`'s, then exits. Stores its pid in `*out`.
// Takes ownership of `v`, which must come from malloc, on success; on
// failure the caller still owns it. Returns 0 or tp_spawn's codes. Any
// thread.
int tp__sup_reap(tp_system *sys, tp_pid sup, tp__sup_victim *v, size_t n,
                 tp_pid *out);

#endif
