// SPDX-License-Identifier: MIT
// Stop sequences: children are stopped one at a time, in order, each
// with a shutdown exit signal and then a kill when its shutdown time is
// up, driven by messages (never a blocking wait). Also how a supervisor
// whose start failed in init stops what it had started.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_server.h"

// ---- stop sequences --------------------------------------------------------

static void finish_sequence(tp_ctx *ctx, sup *s);

// Sends the next child in the sequence its shutdown; ends the sequence
// when none is left.
void
tp__sup_stop_next(tp_ctx *ctx, sup *s)
{
    while (s->stop_at < s->nstop) {
        child *c = tp__sup_by_key(s, s->stop[s->stop_at]);
        if (c == NULL || tp_pid_is_nil(c->pid)) {
            s->stop_at++;
            continue;
        }
        int32_t ms = tp__sup_shutdown_ms(&c->spec);
        s->target = c->pid;
        s->kill_timer = 0;
        if (ms == TP_SHUTDOWN_BRUTAL_KILL) {
            tp_exit(ctx, c->pid, TP_REASON_KILL);
        } else {
            tp_exit(ctx, c->pid, TP_REASON_SHUTDOWN);
            if (ms != TP_SHUTDOWN_INFINITY)
                tp_send_after(ctx, tp_self(ctx), (uint32_t)ms, TAG_KILL_TIMER,
                              &c->pid, sizeof c->pid, &s->kill_timer);
        }
        return; // its exit signal moves us on
    }
    s->target = TP_PID_NIL;
    finish_sequence(ctx, s);
}

// Starts stopping the children with keys `keys` (in that order). Returns
// TP_ENOMEM if it could not.
int
tp__sup_begin_sequence(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n,
                       int cont)
{
    uint64_t *stop = malloc((n ? n : 1) * sizeof *stop);
    if (stop == NULL)
        return TP_ENOMEM;
    memcpy(stop, keys, n * sizeof *stop);
    free(s->stop);
    s->stop = stop;
    s->nstop = n;
    s->stop_at = 0;
    s->busy = true;
    s->cont = cont;
    tp__sup_stop_next(ctx, s);
    return 0;
}

// Keys of the running children from index `from` on, last started first.
uint64_t *
tp__sup_running_reversed(sup *s, size_t from, size_t *n)
{
    uint64_t *k = malloc((s->n ? s->n : 1) * sizeof *k);
    *n = 0;
    if (k == NULL)
        return NULL;
    for (size_t i = s->n; i-- > from;)
        if (!tp_pid_is_nil(s->kids[i].pid))
            k[(*n)++] = s->kids[i].key;
    return k;
}

// Stops every child, last started first, then exits with `reason`. A
// sequence already running is taken over: its current child still stops.
void
tp__sup_shut_down(tp_ctx *ctx, sup *s, int reason)
{
    size_t n;
    uint64_t *keys = tp__sup_running_reversed(s, 0, &n);
    s->exit_reason = reason;
    if (keys == NULL) {
        tp_stop_reason(ctx, reason);
        return;
    }
    free(s->again);
    s->again = NULL;
    s->nagain = 0;
    if (s->cont == CONT_ANSWER) { // the terminate call still gets its answer
        answer a = {TP_ESHUTDOWN, s->answer_to.tag, TP_PID_NIL};
        tp_reply_to(ctx, s->answer_to.from, s->answer_to.ref, TP__SUP_ANSWER,
                    &a, sizeof a);
    }
    if (s->busy && !tp_pid_is_nil(s->target)) {
        // Keep waiting for the current one; the rest follow.
        free(s->stop);
        s->stop = keys;
        s->nstop = n;
        s->stop_at = 0;
        s->cont = CONT_EXIT;
        return;
    }
    tp__sup_begin_sequence(ctx, s, keys, n, CONT_EXIT);
    free(keys);
}

// ---- ending a sequence
// ------------------------------------------------------

// A sequence ended: continue as planned, then catch up with what waited.
static void
finish_sequence(tp_ctx *ctx, sup *s)
{
    int cont = s->cont;
    s->busy = false;
    s->cont = CONT_NONE;
    switch (cont) {
    case CONT_EXIT:
        tp_stop_reason(ctx, s->exit_reason);
        return;
    case CONT_ANSWER:
        tp__sup_answer_call(ctx, &s->answer_to, 0, TP_PID_NIL);
        break;
    case CONT_RESTART: {
        uint64_t *again = s->again;
        size_t n = s->nagain;
        s->again = NULL;
        s->nagain = 0;
        child *first = NULL;
        for (size_t i = 0; i < n; i++) {
            child *c = tp__sup_by_key(s, again[i]);
            // Temporary children stopped for a sibling are not restarted.
            if (c != NULL && c->spec.restart == TP_TEMPORARY &&
                tp_pid_is_nil(c->pid))
                tp__sup_remove_child(s, c);
            else if (c != NULL)
                c->backoff = s->again_delay;
        }
        for (size_t i = 0; i < n && first == NULL; i++)
            first = tp__sup_by_key(s, again[i]);
        if (s->again_delay > 0 && first != NULL)
            tp__sup_schedule_restart(ctx, first, s->again_delay);
        else
            tp__sup_restart_set(ctx, s, again, n);
        free(again);
        break;
    }
    default:
        break;
    }
    for (size_t i = 0; i < s->n && !s->busy; i++)
        if (s->kids[i].deferred) {
            s->kids[i].deferred = false;
            tp_send(ctx, tp_self(ctx), TAG_RESTART, &s->kids[i].key,
                    sizeof s->kids[i].key);
        }
    while (!s->busy && s->nexited > 0) {
        uint64_t key = s->exited[0];
        int reason = s->exited_reason[0];
        s->nexited--;
        memmove(s->exited, s->exited + 1, s->nexited * sizeof *s->exited);
        memmove(s->exited_reason, s->exited_reason + 1,
                s->nexited * sizeof *s->exited_reason);
        child *c = tp__sup_by_key(s, key);
        if (c != NULL)
            tp__sup_handle_exit_of(ctx, s, c, reason);
    }
    // The calls that waited come back ahead of the mailbox, in order; one
    // that starts another sequence stashes the rest again.
    if (!s->busy && tp_stash_size(ctx) > 0)
        tp_unstash_all(ctx);
}

// ---- a failed start --------------------------------------------------------

// Waits until `pid` has exited (its terminate has run). Polls: this is
// only for a failed start, on a thread that may block.
static void
wait_gone(tp_system *sys, tp_pid pid)
{
    long nap_ns = 50000;
    tp_actor_stats st;
    while (tp_actor_stats_get(sys, pid, &st) == 0) {
        nanosleep(&(struct timespec){0, nap_ns}, NULL);
        if (nap_ns < 2000000)
            nap_ns *= 2;
    }
}

// A start failed in init: stops the children already started, last
// started first, each sent shutdown and killed when its shutdown time is
// up. Init cannot read its mailbox, so a reaper actor (sup_reaper.c) runs
// that sequence and logs each exit; where the thread may block, init
// waits for the reaper to finish. The children are unlinked first, so
// that our exit with the start error does not overtake their shutdown.
void
tp__sup_stop_started(tp_ctx *ctx, sup *s)
{
    tp_system *sys = tp_ctx_system(ctx);
    tp__sup_victim *v = malloc((s->n ? s->n : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = s->n; i-- > 0;) {
        const child *c = &s->kids[i];
        if (tp_pid_is_nil(c->pid))
            continue;
        tp_unlink(ctx, c->pid);
        if (v == NULL) { // no memory for the list: stop it the old way
            tp_exit(ctx, c->pid,
                    tp__sup_shutdown_ms(&c->spec) == TP_SHUTDOWN_BRUTAL_KILL
                        ? TP_REASON_KILL
                        : TP_REASON_SHUTDOWN);
            continue;
        }
        tp__sup_victim *w = &v[n++];
        w->pid = c->pid;
        w->shutdown = tp__sup_shutdown_ms(&c->spec);
        w->restarts = c->restarts;
        w->behaviour = c->spec.behaviour->name;
        memcpy(w->id, c->id, sizeof w->id);
    }
    tp_pid reaper;
    if (n > 0 && tp__sup_reap(sys, tp_self(ctx), v, n, &reaper) == 0) {
        if (tp_system_may_block(sys))
            wait_gone(sys, reaper);
        return; // the reaper owns v
    }
    if (n > 0) {
        tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                  "supervisor: no reaper; children sent "
                  "shutdown without a kill timeout");
        for (size_t i = 0; i < n; i++)
            tp_exit(ctx, v[i].pid,
                    v[i].shutdown == TP_SHUTDOWN_BRUTAL_KILL
                        ? TP_REASON_KILL
                        : TP_REASON_SHUTDOWN);
    }
    free(v);
}
