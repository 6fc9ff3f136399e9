// SPDX-License-Identifier: MIT
// What the files of supervisors/ share. Not part of the public API: like
// the supervisor itself, it is written on <troupe.h> alone.
#ifndef TROUPE_SUP_IMPL_H
#define TROUPE_SUP_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <troupe.h>

// A child to stop, and how: a timeout in ms, TP_SHUTDOWN_BRUTAL_KILL or
// TP_SHUTDOWN_INFINITY (never TP_SHUTDOWN_DEFAULT: resolved already).
typedef struct tp__sup_victim {
    tp_pid pid;
    int32_t shutdown;
} tp__sup_victim;

// Spawns a reaper: an actor that stops the `n` (at least 1) children in
// `v`, in that order and one at a time, as a supervisor stops its
// children (shutdown, then kill when the time is up), then exits. Takes
// ownership of `v`, which must come from malloc, on success; on failure
// the caller still owns it. Returns 0 or tp_spawn's codes. Any thread.
int tp__sup_reap(tp_system *sys, tp__sup_victim *v, size_t n);

#endif
