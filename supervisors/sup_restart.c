// SPDX-License-Identifier: MIT
// What a supervisor does when a child exits: whether it restarts, which
// siblings its strategy takes down and brings back, in which order, and
// after how much backoff.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_server.h"

// ---- restarting ------------------------------------------------------------

// Delay before `c`'s next restart under backoff, in ms (0: at once): the
// minimum doubled for each restart in its streak, capped by the maximum
// (a zero maximum keeps the minimum), with +-25 % jitter.
static uint32_t
backoff_ms(sup *s, child *c)
{
    if (s->flags.backoff_min_ms == 0)
        return 0;
    uint64_t d = s->flags.backoff_min_ms;
    for (uint32_t i = 1; i < c->streak && d < s->flags.backoff_max_ms; i++)
        d *= 2;
    if (s->flags.backoff_max_ms && d > s->flags.backoff_max_ms)
        d = s->flags.backoff_max_ms;
    // +-25 % jitter.
    int64_t j = (int64_t)(d / 4);
    if (j > 0)
        d = (uint64_t)((int64_t)d - j +
                       (int64_t)(rand_r(&s->seed) % (unsigned)(2 * j + 1)));
    return (uint32_t)d;
}

// Counts one more restart in `c`'s streak; a child that ran a whole period
// since it last started begins a new streak (a failed start continues it).
static void
grow_streak(sup *s, child *c)
{
    if (!c->retry &&
        tp__sup_now_ms(s) - c->started_at >= (int64_t)s->flags.period_ms)
        c->streak = 0;
    c->streak++;
}

// Asks ourselves to restart `c` (and, for one_for_all and rest_for_one,
// the waiting children after it) after `delay` ms, or now if 0.
void
tp__sup_schedule_restart(tp_ctx *ctx, const child *c, uint32_t delay)
{
    if (delay > 0)
        tp_send_after(ctx, tp_self(ctx), delay, TAG_RESTART, &c->key,
                      sizeof c->key, NULL);
    else
        tp_send(ctx, tp_self(ctx), TAG_RESTART, &c->key, sizeof c->key);
}

// Marks the children keys[from..n) as waiting for the one before them,
// which comes back after `backoff` ms of backoff.
static void
wait_behind(sup *s, const uint64_t *keys, size_t from, size_t n,
            uint32_t backoff)
{
    for (size_t k = from; k < n; k++) {
        child *d = tp__sup_by_key(s, keys[k]);
        if (d != NULL) {
            d->waiting = true; // restarted when the one before comes back
            d->backoff = backoff;
        }
    }
}

// Restarts the children with keys `keys` in order; on a failure, the rest
// wait for a retry (which counts toward the intensity like a restart, and
// is delayed like one under backoff).
void
tp__sup_restart_set(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        child *c = tp__sup_by_key(s, keys[i]);
        if (c == NULL || !tp_pid_is_nil(c->pid))
            continue;
        if (tp__sup_name_still_held(ctx, c)) {
            // Not a failure: ask again once the old one is fully gone.
            c->waiting = true;
            tp__sup_schedule_restart(ctx, c, 0);
            wait_behind(s, keys, i + 1, n, c->backoff);
            return;
        }
        c->restarts++; // before the spawn: introspection shows it
        int rc = tp__sup_start(ctx, s, c);
        if (rc == 0) {
            tp_count_event(tp_ctx_system(ctx), TP_EVENT_RESTART);
            tp__sup_log_restarted(ctx, c);
            c->backoff = 0;
            continue;
        }
        c->restarts--;
        tp__sup_log_child(ctx, TP_LOG_ERR, "restart failed", c, rc);
        // Try again through our mailbox, from this child on.
        c->waiting = true;
        c->retry = true;
        grow_streak(s, c);
        c->backoff = backoff_ms(s, c);
        tp__sup_schedule_restart(ctx, c, c->backoff);
        wait_behind(s, keys, i + 1, n, c->backoff);
        return;
    }
}

// After a child exit that calls for a restart, applies the strategy.
static void
restart_for(tp_ctx *ctx, sup *s, child *c)
{
    if (!tp__sup_add_restart(s)) {
        tp_count_event(tp_ctx_system(ctx), TP_EVENT_INTENSITY_EXCEEDED);
        tp__sup_log_child(ctx, TP_LOG_ERR, "reached_max_restart_intensity", c,
                          TP_REASON_SHUTDOWN);
        tp__sup_shut_down(ctx, s, TP_REASON_SHUTDOWN);
        return;
    }
    grow_streak(s, c);
    uint32_t delay = backoff_ms(s, c);
    switch (s->flags.strategy) {
    case TP_ONE_FOR_ONE:
    case TP_SIMPLE_ONE_FOR_ONE:
        c->waiting = true;
        c->backoff = delay;
        if (delay > 0)
            tp__sup_schedule_restart(ctx, c, delay);
        else
            tp__sup_restart_set(ctx, s, &c->key, 1);
        return;
    case TP_ONE_FOR_ALL:
    case TP_REST_FOR_ONE: {
        size_t from =
            s->flags.strategy == TP_ONE_FOR_ALL ? 0 : tp__sup_index_of(s, c);
        size_t n = 0;
        uint64_t *again = malloc((s->n - from) * sizeof *again);
        if (again == NULL) {
            tp__sup_shut_down(ctx, s, TP_ENOMEM);
            return;
        }
        for (size_t i = from; i < s->n; i++)
            again[n++] = s->kids[i].key;
        size_t nstop;
        uint64_t *stop = tp__sup_running_reversed(s, from, &nstop);
        if (stop == NULL) {
            free(again);
            tp__sup_shut_down(ctx, s, TP_ENOMEM);
            return;
        }
        for (size_t i = from; i < s->n; i++)
            s->kids[i].waiting = true;
        free(s->again);
        s->again = again;
        s->nagain = n;
        s->again_delay = delay;
        tp__sup_begin_sequence(ctx, s, stop, nstop, CONT_RESTART);
        free(stop);
        return;
    }
    }
}

// Whether `c`, having exited with `reason`, is to be restarted.
static bool
wants_restart(const child *c, int reason)
{
    switch (c->spec.restart) {
    case TP_PERMANENT:
        return true;
    case TP_TRANSIENT:
        return reason != TP_REASON_NORMAL && reason != TP_REASON_SHUTDOWN;
    default:
        return false;
    }
}

static bool
significant_alive(sup *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].spec.significant && !tp_pid_is_nil(s->kids[i].pid))
            return true;
    return false;
}

void
tp__sup_handle_exit_of(tp_ctx *ctx, sup *s, child *c, int reason)
{
    int level = reason == TP_REASON_NORMAL || reason == TP_REASON_SHUTDOWN
                    ? TP_LOG_INFO
                    : TP_LOG_ERR;
    tp__sup_log_child(ctx, level, "child_terminated", c, reason);
    tp__sup_set_down(s, c);
    bool again = wants_restart(c, reason);
    if (!again) {
        bool sig = c->spec.significant;
        if (c->spec.restart == TP_TEMPORARY ||
            s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            tp__sup_remove_child(s, c);
        if (sig &&
            (s->flags.auto_shutdown == TP_AUTO_SHUTDOWN_ANY_SIGNIFICANT ||
             (s->flags.auto_shutdown == TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT &&
              !significant_alive(s))))
            tp__sup_shut_down(ctx, s, TP_REASON_SHUTDOWN);
        return;
    }
    restart_for(ctx, s, c);
}
