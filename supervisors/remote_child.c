// SPDX-License-Identifier: MIT
// tp_remote_child: a supervisor's child that runs on another node. The
// local actor the supervisor starts stands for the remote one: its init
// asks the node to spawn the behaviour (tp_spawn_at), and once the answer
// comes it links to the actor spawned, so that
//
// - the remote actor's exit (a crash, or noconnection when its node is
//   lost) ends this one with the same reason, and the supervisor restarts
//   it as it would any child: a new remote actor is spawned;
// - the supervisor's shutdown (or kill) is passed on to the remote actor,
//   and this one exits when it has (within the child's shutdown time).
//
// Written on the public API only, like the supervisor.
#include <stdio.h>
#include <string.h>

#include "sup_impl.h"

#define SPAWN_TIMEOUT_DEFAULT_MS 5000

typedef struct remote_child {
    const tp_remote_child_arg *a;
    uint64_t ref;  // the spawn's answer
    tp_pid remote; // nil until the answer came
    bool stopping; // a shutdown came: the remote actor is being stopped
    int stop_reason;
} remote_child;

static int
rc_init(tp_ctx *ctx, void *state, void *arg)
{
    remote_child *r = state;
    const tp_remote_child_arg *a = arg;
    if (a == NULL || a->node == NULL || a->behaviour == NULL ||
        a->spawn_timeout_ms < 0)
        return TP_EINVAL;
    r->a = a;
    int rc = tp_trap_exit(ctx, true);
    if (rc == 0)
        rc = tp_spawn_at(ctx, a->node, a->behaviour, a->arg, a->size,
                         a->spawn_timeout_ms ? a->spawn_timeout_ms
                                             : SPAWN_TIMEOUT_DEFAULT_MS,
                         &r->ref);
    return rc;
}

static int
rc_spawned(tp_ctx *ctx, remote_child *r, const tp_remote_answer *ans)
{
    if (ans->error != 0) {
        if (r->stopping)
            return tp_stop_reason(ctx, r->stop_reason);
        tp_log(tp_ctx_system(ctx), TP_LOG_WARNING,
               "remote child: spawning %s on %s failed: %s", r->a->behaviour,
               r->a->node, tp_err_name(ans->error));
        return ans->error; // the supervisor restarts us, or gives up
    }
    r->remote = ans->pid;
    // A remote actor that exited meanwhile answers the link with an exit
    // signal (noproc), which ends us as its exit would.
    int rc = tp_link(ctx, r->remote);
    if (rc != 0) {
        tp_exit(ctx, r->remote, TP_REASON_KILL); // not left unwatched
        return rc;
    }
    if (r->stopping)
        return tp_exit(ctx, r->remote, r->stop_reason);
    return TP_OK;
}

static int
rc_exit(tp_ctx *ctx, remote_child *r, const tp_exit_msg *x)
{
    if (!tp_pid_is_nil(r->remote) && tp_pid_eq(x->from, r->remote))
        // The remote actor is gone: so are we, with its reason unless we
        // asked it to stop.
        return tp_stop_reason(ctx, r->stopping ? r->stop_reason : x->reason);
    // Anyone else's exit signal, our supervisor's shutdown above all:
    // passed on to the remote actor, whose exit then ends us. A normal one
    // would not end an actor that does not trap exits: ignored.
    if (r->stopping || x->reason == TP_REASON_NORMAL)
        return TP_OK;
    r->stopping = true;
    r->stop_reason = x->reason;
    if (!tp_pid_is_nil(r->remote))
        return tp_exit(ctx, r->remote, x->reason);
    return TP_OK; // the spawn's answer is awaited: it stops what it started
}

static int
rc_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    remote_child *r = state;
    if (msg->tag == TP_TAG_SPAWNED && msg->ref == r->ref &&
        msg->size == sizeof(tp_remote_answer)) {
        tp_remote_answer ans;
        memcpy(&ans, msg->data, sizeof ans);
        return rc_spawned(ctx, r, &ans);
    }
    if (msg->tag == TP_TAG_EXIT && msg->size == sizeof(tp_exit_msg)) {
        tp_exit_msg x;
        memcpy(&x, msg->data, sizeof x);
        return rc_exit(ctx, r, &x);
    }
    return TP_OK;
}

static int
rc_describe(const void *state, char *buf, size_t size)
{
    const remote_child *r = state;
    char pid[TP_PID_STRLEN] = "-";
    if (!tp_pid_is_nil(r->remote))
        tp_pid_format(r->remote, pid, sizeof pid);
    return snprintf(buf, size, "behaviour=%s node=%s remote=%s%s",
                    r->a ? r->a->behaviour : "?", r->a ? r->a->node : "?", pid,
                    r->stopping ? " stopping" : "");
}

const tp_behaviour tp_remote_child = {.name = "remote_child",
                                      .state_size = sizeof(remote_child),
                                      .init = rc_init,
                                      .handle = rc_handle,
                                      .describe = rc_describe};
