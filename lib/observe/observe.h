// SPDX-License-Identifier: MIT
// The observation subsystem's internal header: introspection answers
// (introspect.c), the control socket (control.c), metrics (metrics.c)
// and the stall watch (watch.c).
#ifndef TROUPE_OBSERVE_H
#define TROUPE_OBSERVE_H

#include "core/core.h"

// ---- introspection (introspect.c, control.c) ---------------------------

struct tp__info;
void tp__info_answer(tp_actor *a, tp__msg *m);
void tp__info_release(tp__msg *m);
void tp__control_stop(tp_system *sys);
void tp__metrics_stop(tp_system *sys);


// ---- the stall watch (watch.c) -----------------------------------------

int tp__watch_start(tp_system *sys);
void tp__watch_free(tp_system *sys);
uint64_t tp__watch_stalls(tp_system *sys);

// The actors a snapshot shows as busy: those in an activation the watch
// found stalled, which still runs.
typedef struct tp__busy {
    unsigned n;
    struct {
        uint64_t pid;
        int64_t since_ns; // tp__now_ns clock
    } at[];
} tp__busy;

tp__busy *tp__watch_busy(tp_system *sys);

#endif
