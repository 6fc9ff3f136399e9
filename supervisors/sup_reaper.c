// SPDX-License-Identifier: MIT
// The reaper stops the children of a supervisor whose start failed. The
// supervisor's init cannot read its mailbox, so it cannot run a stop
// sequence itself: it hands the children it had started to a reaper and,
// where the thread may block (tp_system_may_block), waits for the reaper
// to be done; on a scheduler thread, or before the system runs, it
// returns at once. The reaper stops them as a supervisor would, one at a
// time: it monitors the child, sends it shutdown (or kill, for
// brutal_kill), kills it when its shutdown time is up, logs its exit at
// its DOWN and moves on. When the last is gone, the reaper exits.
#include <stdlib.h>
#include <string.h>

#include "sup_impl.h"

// Private tag (below TP_TAG_RESERVED): data: the monitor's ref.
enum { TAG_REAP_KILL = 0x7fff0101 };

typedef struct reaper {
    tp_pid sup;        // whose children these were
    tp__sup_victim *v; // owned
    size_t n, at;      // v[at] is being stopped
    uint64_t mon;      // the monitor on v[at]
    tp_timer timer;    // its kill timer, or 0
} reaper;

// Starts stopping v[at], or the next one that can be watched; exits when
// none is left.
static void
reap_next(tp_ctx *ctx, reaper *r)
{
    for (; r->at < r->n; r->at++) {
        const tp__sup_victim *v = &r->v[r->at];
        r->timer = 0;
        if (tp_monitor(ctx, v->pid, &r->mon) != 0) {
            // No memory to watch it: it goes at once.
            tp_exit(ctx, v->pid, TP_REASON_KILL);
            continue;
        }
        if (v->shutdown == TP_SHUTDOWN_BRUTAL_KILL) {
            tp_exit(ctx, v->pid, TP_REASON_KILL);
        } else {
            tp_exit(ctx, v->pid, TP_REASON_SHUTDOWN);
            if (v->shutdown != TP_SHUTDOWN_INFINITY)
                tp_send_after(ctx, tp_self(ctx), (uint32_t)v->shutdown,
                              TAG_REAP_KILL, &r->mon, sizeof r->mon,
                              &r->timer);
        }
        return; // its DOWN moves us on
    }
    tp_stop(ctx);
}

typedef struct reap_arg {
    tp_pid sup;
    tp__sup_victim *v;
    size_t n;
} reap_arg;

static int
reap_init(tp_ctx *ctx, void *state, void *arg)
{
    reaper *r = state;
    const reap_arg *a = arg;
    r->sup = a->sup;
    r->v = a->v;
    r->n = a->n;
    reap_next(ctx, r);
    return 0;
}

static int
reap_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    reaper *r = state;
    uint64_t ref;
    if (r->at >= r->n)
        return TP_OK;
    if (msg->tag == TP_TAG_DOWN &&
        ((const tp_down_msg *)msg->data)->ref == r->mon) {
        const tp__sup_victim *v = &r->v[r->at];
        if (r->timer != 0)
            tp_timer_cancel(tp_ctx_system(ctx), r->timer);
        tp__sup_log(tp_ctx_system(ctx), TP_LOG_INFO, r->sup, "child_stopped",
                    v->id, v->pid, v->behaviour,
                    ((const tp_down_msg *)msg->data)->reason, v->restarts, "");
        r->at++;
        reap_next(ctx, r);
    } else if (msg->tag == TAG_REAP_KILL && msg->size == sizeof ref) {
        memcpy(&ref, msg->data, sizeof ref);
        if (ref == r->mon)
            tp_exit(ctx, r->v[r->at].pid, TP_REASON_KILL); // time is up
    }
    return TP_OK;
}

static void
reap_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx, (void)reason;
    free(((reaper *)state)->v);
}

static const tp_behaviour reaper_b = {.name = "supervisor_reaper",
                                      .state_size = sizeof(reaper),
                                      .init = reap_init,
                                      .handle = reap_handle,
                                      .terminate = reap_terminate};

int
tp__sup_reap(tp_system *sys, tp_pid sup, tp__sup_victim *v, size_t n,
             tp_pid *out)
{
    reap_arg a = {sup, v, n};
    return tp_spawn(sys, &reaper_b, &a, NULL, out);
}
