// SPDX-License-Identifier: MIT
// The supervisor behaviour, written only on the public API. It traps
// exits, links to each child at spawn and reacts to their exit signals
// with OTP's strategies and restart-intensity rule. Stopping children is a
// sequence driven by messages (each child's exit signal, or its shutdown
// timer), never a blocking wait: while a sequence runs, further exits are
// noted and management calls stashed, then handled when it ends. The one
// exception is a start that fails in init, which cannot receive messages:
// a reaper (sup_reaper.c) stops the children started so far, and init
// waits for it only where the thread may block. The other files
// of the behaviour are named in sup_server.h.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_server.h"

int64_t
tp__sup_now_ms(const sup *s)
{
    return tp_now_ms(s->sys);
}

static const char *
strategy_name(tp_strategy s)
{
    static const char *const names[] = {"one_for_one", "one_for_all",
                                        "rest_for_one", "simple_one_for_one"};
    return (unsigned)s < 4 ? names[s] : "?";
}

void
tp__sup_log(tp_system *sys, int level, tp_pid sup_pid, const char *what,
            const char *id, tp_pid child_pid, const char *behaviour,
            int reason, uint32_t restarts, const char *tail)
{
    char me[TP_PID_STRLEN], pid[TP_PID_STRLEN], why[80] = "";
    tp_pid_format(sup_pid, me, sizeof me);
    tp_pid_format(child_pid, pid, sizeof pid);
    if (reason != NO_REASON) {
        memcpy(why, " reason=", 8);
        tp_reason_format(reason, why + 8, sizeof why - 8);
    }
    tp_log_as(sys, level, TP_LOG_RUNTIME,
              "supervisor %s: %s child=%s pid=%s behaviour=%s%s restarts=%u%s",
              me, what, id, pid, behaviour, why, restarts, tail);
}

// One log line per event about child `c` (its id is a simple_one_for_one
// child's template's), ending in `tail`.
static void
log_line(tp_ctx *ctx, int level, const char *what, const child *c, int reason,
         const char *tail)
{
    tp__sup_log(tp_ctx_system(ctx), level, tp_self(ctx), what, c->id, c->pid,
                c->spec.behaviour->name, reason, c->restarts, tail);
}

void
tp__sup_log_child(tp_ctx *ctx, int level, const char *what, const child *c,
                  int reason)
{
    log_line(ctx, level, what, c, reason, "");
}

// A restart's line also says how long backoff delayed it.
void
tp__sup_log_restarted(tp_ctx *ctx, const child *c)
{
    char tail[32];
    snprintf(tail, sizeof tail, " backoff_ms=%u", c->backoff);
    log_line(ctx, TP_LOG_INFO, "restarted", c, NO_REASON, tail);
}

// ---- the behaviour ---------------------------------------------------------

static void
sup_free(sup *s)
{
    for (size_t i = 0; i < s->n; i++)
        tp__sup_child_free(&s->kids[i]);
    free(s->kids);
    free(s->map_pid);
    free(s->map_key);
    free(s->stamps);
    free(s->stop);
    free(s->again);
    free(s->exited);
    free(s->exited_reason);
    memset(s, 0, sizeof *s);
}

static int
sup_init(tp_ctx *ctx, void *state, void *arg)
{
    sup *s = state;
    const tp_sup_spec *spec = arg;
    tp_system *sys = tp_ctx_system(ctx);
    if (spec == NULL || (spec->nchildren > 0 && spec->children == NULL))
        return TP_EINVAL;
    s->flags = spec->flags;
    if ((unsigned)s->flags.strategy > TP_SIMPLE_ONE_FOR_ONE ||
        (unsigned)s->flags.auto_shutdown > TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT ||
        s->flags.intensity < TP_SUP_NO_RESTARTS ||
        (s->flags.backoff_max_ms &&
         s->flags.backoff_max_ms < s->flags.backoff_min_ms)) {
        tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                  "supervisor: invalid flags");
        return TP_EINVAL;
    }
    if (s->flags.intensity == 0)
        s->flags.intensity = 1;
    else if (s->flags.intensity == TP_SUP_NO_RESTARTS)
        s->flags.intensity = 0;
    if (s->flags.period_ms == 0)
        s->flags.period_ms = 5000;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE && spec->nchildren != 1) {
        tp_log_as(
            sys, TP_LOG_ERR, TP_LOG_RUNTIME,
            "supervisor: simple_one_for_one needs exactly one child spec");
        return TP_EINVAL;
    }
    for (size_t i = 0; i < spec->nchildren; i++) {
        int rc = tp__sup_check_spec(sys, &spec->children[i]);
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(spec->children[i].id, spec->children[j].id) == 0) {
                tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                          "supervisor: invalid child spec id=%s: duplicate id",
                          spec->children[i].id);
                rc = TP_EINVAL;
            }
        if (rc != 0)
            return rc;
    }
    s->sys = sys;
    // On a test system the seed, and so the backoffs' jitter, comes from
    // the test's seed, and replays with it.
    s->seed = (unsigned)tp__sup_now_ms(s) ^ (unsigned)tp_self(ctx).v ^
              (unsigned)tp_test_random(sys);
    tp_trap_exit(ctx, true);
    for (size_t i = 0; i < spec->nchildren; i++) {
        const tp_child_spec *cs = &spec->children[i];
        int rc;
        child *c = tp__sup_add_child(s, cs, cs->id, cs->opts.name, NULL, &rc);
        if (c == NULL) {
            tp__sup_stop_started(ctx, s);
            sup_free(s);
            return rc;
        }
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            continue; // the template; children come with start_child
        rc = tp__sup_start(ctx, s, c);
        if (rc != 0) {
            char why[64];
            tp_reason_format(rc, why, sizeof why);
            tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                      "supervisor: start_error child=%s reason=%s", c->id,
                      why);
            tp__sup_stop_started(ctx, s);
            sup_free(s);
            return rc;
        }
    }
    return 0;
}

static int
on_exit_signal(tp_ctx *ctx, sup *s, const tp_exit_msg *e)
{
    child *c = tp__sup_by_pid(s, e->from);
    if (c == NULL) {
        // Not a child: our parent, or someone outside, wants us gone.
        if (e->reason != TP_REASON_NORMAL)
            tp__sup_shut_down(ctx, s, e->reason);
        return TP_OK;
    }
    if (s->busy && tp_pid_eq(e->from, s->target)) {
        if (s->kill_timer != 0)
            tp_timer_cancel(tp_ctx_system(ctx), s->kill_timer);
        tp__sup_log_child(ctx, TP_LOG_INFO, "child_stopped", c, e->reason);
        tp__sup_set_down(s, c);
        // terminate_child forgets dynamic and temporary children (OTP).
        if (s->cont == CONT_ANSWER &&
            (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE ||
             c->spec.restart == TP_TEMPORARY))
            tp__sup_remove_child(s, c);
        tp__sup_stop_next(ctx,
                          s); // moves past it and any other gone meanwhile
        return TP_OK;
    }
    if (s->busy) {
        // Is it one we were about to stop anyway?
        for (size_t i = s->stop_at; i < s->nstop; i++)
            if (s->stop[i] == c->key) {
                tp__sup_log_child(ctx, TP_LOG_INFO, "child_stopped", c,
                                  e->reason);
                tp__sup_set_down(s, c);
                return TP_OK;
            }
        tp__sup_set_down(s, c);
        return tp__sup_note_exit(s, c->key, e->reason);
    }
    tp__sup_handle_exit_of(ctx, s, c, e->reason);
    return TP_OK;
}

// A child's shutdown timeout ran out: it is killed if it is still the one
// the stop sequence waits for.
static int
on_kill_timer(tp_ctx *ctx, sup *s, const tp_msg *msg)
{
    tp_pid pid;
    if (msg->size != sizeof pid)
        return TP_OK; // not ours
    memcpy(&pid, msg->data, sizeof pid);
    if (s->busy && tp_pid_eq(pid, s->target))
        tp_exit(ctx, pid, TP_REASON_KILL); // its time is up
    return TP_OK;
}

// A child's restart delay ran out (or a failed start is retried): it is
// started again, with the children its strategy restarts beside it.
static int
on_restart_timer(tp_ctx *ctx, sup *s, const tp_msg *msg)
{
    uint64_t key;
    if (msg->size != sizeof key)
        return TP_OK; // not ours
    memcpy(&key, msg->data, sizeof key);
    child *c = tp__sup_by_key(s, key);
    if (c == NULL || !c->waiting || !tp_pid_is_nil(c->pid))
        return TP_OK;
    if (s->busy) {
        c->deferred = true; // asked again when the sequence ends
        return TP_OK;
    }
    // A retry after a failed start counts like a restart.
    if (c->retry) {
        c->retry = false;
        if (!tp__sup_add_restart(s)) {
            tp_count_event(tp_ctx_system(ctx), TP_EVENT_INTENSITY_EXCEEDED);
            tp__sup_log_child(ctx, TP_LOG_ERR, "reached_max_restart_intensity",
                              c, TP_REASON_SHUTDOWN);
            tp__sup_shut_down(ctx, s, TP_REASON_SHUTDOWN);
            return TP_OK;
        }
    }
    if (s->flags.strategy == TP_ONE_FOR_ONE ||
        s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE) {
        tp__sup_restart_set(ctx, s, &c->key, 1); // the others have their own
        return TP_OK;
    }
    size_t n = 0;
    uint64_t *keys = malloc(s->n * sizeof *keys);
    if (keys == NULL)
        return TP_ENOMEM;
    for (size_t i = tp__sup_index_of(s, c); i < s->n; i++)
        if (s->kids[i].waiting)
            keys[n++] = s->kids[i].key;
    tp__sup_restart_set(ctx, s, keys, n);
    free(keys);
    return TP_OK;
}

static int
sup_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    sup *s = state;
    switch (msg->tag) {
    case TP_TAG_EXIT:
        return on_exit_signal(ctx, s, msg->data);
    case TAG_KILL_TIMER:
        return on_kill_timer(ctx, s, msg);
    case TAG_RESTART:
        return on_restart_timer(ctx, s, msg);
    case TP__SUP_CALL_START:
    case TP__SUP_CALL_TERMINATE:
    case TP__SUP_CALL_RESTART:
    case TP__SUP_CALL_DELETE:
    case TP__SUP_CALL_WHICH:
    case TP__SUP_CALL_COUNT:
    case TP__SUP_CALL_UPGRADE:
    case TP__SUP_CALL_REFS: {
        if (msg->ref == 0)
            return TP_OK; // not a call
        call k;
        int rc = tp__sup_take_call(&k, msg);
        if (rc != 0) {
            answer a = {rc, msg->tag, TP_PID_NIL};
            tp_reply_to(ctx, msg->from, msg->ref, TP__SUP_ANSWER, &a,
                        sizeof a);
            return TP_OK;
        }
        if (s->busy) {
            // Handled when the stop sequence ends, in the order they came,
            // before anything newer (tp_unstash_all in sup_stop.c). Past
            // TP_STASH_MAX waiting, the caller is told TP_EFULL.
            rc = tp_stash(ctx);
            if (rc != 0)
                tp__sup_answer_call(ctx, &k, rc, TP_PID_NIL);
            return TP_OK;
        }
        tp__sup_do_call(ctx, s, &k);
        return TP_OK;
    }
    default:
        return TP_OK; // stray messages are ignored, as OTP's supervisor does
    }
}

static void
sup_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)reason;
    sup *s = state;
    // Normally every child is stopped already; when the system itself is
    // going down, make sure none is left behind.
    for (size_t i = s->n; i-- > 0;)
        if (!tp_pid_is_nil(s->kids[i].pid))
            tp_exit(ctx, s->kids[i].pid, TP_REASON_KILL);
    sup_free(s);
}

static int
sup_describe(const void *state, char *buf, size_t size)
{
    const sup *s = state;
    size_t len = 0;
    int w = snprintf(buf, size,
                     "strategy=%s intensity=%d period_ms=%u "
                     "restarts_in_window=%zu children=%zu",
                     strategy_name(s->flags.strategy), s->flags.intensity,
                     s->flags.period_ms, tp__sup_restarts_in_window(s), s->n);
    if (w < 0)
        return 0;
    len = (size_t)w < size ? (size_t)w : size - 1;
    for (size_t i = 0; i < s->n && len + 1 < size; i++) {
        const child *c = &s->kids[i];
        char pid[TP_PID_STRLEN];
        tp_pid_format(c->pid, pid, sizeof pid);
        w = snprintf(buf + len, size - len,
                     " [id=%s pid=%s state=%s restarts=%u]", c->id, pid,
                     !tp_pid_is_nil(c->pid) ? "running"
                     : c->waiting           ? "restarting"
                                            : "stopped",
                     c->restarts);
        if (w < 0)
            break;
        len += (size_t)w < size - len ? (size_t)w : size - len - 1;
    }
    return (int)len;
}

const tp_behaviour tp_supervisor = {.name = "supervisor",
                                    .state_size = sizeof(sup),
                                    .init = sup_init,
                                    .handle = sup_handle,
                                    .terminate = sup_terminate,
                                    .describe = sup_describe};

int
tp_sup_start(tp_system *sys, const tp_sup_spec *spec,
             const tp_spawn_opts *opts, tp_pid *out)
{
    return tp_spawn(sys, &tp_supervisor, (void *)spec, opts, out);
}
