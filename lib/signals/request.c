// SPDX-License-Identifier: MIT
// Requests and replies: tp_request sends a message under a fresh ref,
// arms the request's timeout (a timer, timer.c) and monitors the callee
// under the same ref (link.c), so the requester hears of a dead callee at
// once (TP_TAG_FAILED) instead of at the timeout; tp_reply answers the
// message being handled. tp_call makes a request from a thread outside
// the actors through a hidden actor that waits for the answer.
#include "core/core.h"
#include "signals/signals.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

// Opens a request of `a`: a fresh ref, its timeout armed (none for -1),
// noted as pending. Returns 0 with the ref in *ref; tp__request_done
// closes it.
static int
request_open(tp_actor *a, int timeout_ms, uint64_t *ref)
{
    tp__ext *x = tp__ext_of(a);
    if (x == NULL)
        return TP_ENOMEM;
    uint64_t r = tp__new_ref(a->system);
    uint64_t timer = 0; // none: -1 waits for the answer as long as it takes
    if (timeout_ms >= 0) {
        timer =
            tp__timer_add_timeout(a->system, a->pid, r, (uint32_t)timeout_ms);
        if (timer == 0)
            return TP_ENOMEM;
    }
    int rc = tp__map_put(&x->requests, r, timer);
    if (rc != 0) {
        if (timer != 0)
            tp__timer_cancel(a->system, timer);
        return rc;
    }
    // relaxed: a bound for tp__deliver_reply; only we increment it.
    atomic_fetch_add_explicit(&a->req_pending, 1, memory_order_relaxed);
    *ref = r;
    return 0;
}

int
tp__request_send(tp_actor *a, tp_pid to, uint64_t ref, tp__msg *m)
{
    bool gone = false;
    int rc = tp__request_monitor(a, to, ref, &gone);
    if (rc != 0 || gone) {
        tp__msg_free(m); // when gone, the failure (noproc) is on its way
        return rc;
    }
    m->pub.ref = ref;
    if ((rc = tp__deliver(a->system, a, to, m)) == 0)
        return 0;
    tp__msg_free(m);
    // The callee died or its node was lost after the monitor went out:
    // the monitor's DOWN fails the request. Anything else refused it.
    return rc == TP_ENOACTOR || rc == TP_ENOTCONN ? 0 : rc;
}

int
tp_request(tp_ctx *ctx, tp_pid to, uint32_t tag, const void *data, size_t size,
           int timeout_ms, uint64_t *ref)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc == 0 && timeout_ms < -1)
        rc = TP_EINVAL;
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    tp__msg *m = tp__msg_new_copy(a->system, tag, a->pid, data, size);
    if (m == NULL)
        return TP_ENOMEM;
    uint64_t r;
    if ((rc = request_open(a, timeout_ms, &r)) != 0) {
        tp__msg_free(m);
        return rc;
    }
    if ((rc = tp__request_send(a, to, r, m)) != 0) {
        tp__request_done(a, r, TP_PID_NIL); // nothing follows
        return rc;
    }
    if (ref != NULL)
        *ref = r;
    return 0;
}

int
tp__request_by_name(tp_actor *a, tp__msg *m, int timeout_ms, uint64_t *ref)
{
    uint64_t r;
    int rc = request_open(a, timeout_ms, &r);
    if (rc != 0)
        return rc;
    if ((rc = tp__map_put(&a->ext->byname, r, (uint64_t)(uintptr_t)m)) != 0) {
        tp__request_done(a, r, TP_PID_NIL);
        return rc;
    }
    m->pub.ref = r;
    *ref = r;
    return 0;
}

int
tp__then_attach(tp_actor *a, uint64_t ref, tp_then_fn fn, void *arg)
{
    tp__then *t = malloc(sizeof *t);
    if (t == NULL)
        return TP_ENOMEM;
    // Attached by a stale continuation: what it runs may be old code too.
    *t = (tp__then){fn, arg, a->ext->stale_running > 0};
    int rc = tp__map_put(&a->ext->thens, ref, (uint64_t)(uintptr_t)t);
    if (rc != 0)
        free(t);
    else if (t->stale)
        // relaxed: as tp__then_free.
        atomic_fetch_add_explicit(&a->system->stale_thens, 1,
                                  memory_order_relaxed);
    return rc;
}

int
tp_request_then(tp_ctx *ctx, tp_pid to, uint32_t tag, const void *data,
                size_t size, int timeout_ms, tp_then_fn then, void *arg,
                uint64_t *ref)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0 && then == NULL)
        rc = TP_EINVAL;
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    uint64_t r;
    if ((rc = tp_request(ctx, to, tag, data, size, timeout_ms, &r)) != 0)
        return rc;
    // The answer cannot come before this: answers are handled by this
    // actor's activations, and this is one.
    if ((rc = tp__then_attach(a, r, then, arg)) != 0) {
        tp__request_done(a, r, TP_PID_NIL); // no answer will come, to anyone
        return rc;
    }
    if (ref != NULL)
        *ref = r;
    return 0;
}

bool
tp__then_take(tp_actor *a, uint64_t ref, tp_then_fn *fn, void **arg)
{
    uint64_t v;
    if (a->ext == NULL || ref == 0 || !tp__map_del(&a->ext->thens, ref, &v))
        return false;
    tp__then *t = (tp__then *)(uintptr_t)v;
    *fn = t->fn;
    *arg = t->arg;
    // A stale one counts until it has run (tp__then_done), or until its
    // actor dies running it.
    a->ext->stale_running += t->stale;
    free(t);
    return true;
}

void
tp__then_done(tp_actor *a)
{
    tp__ext *x = a->ext;
    if (x == NULL || x->stale_running == 0)
        return;
    // release: the continuation has returned; pairs with tp_code_refs'
    // acquire load, after which a module may be unloaded.
    atomic_fetch_sub_explicit(&a->system->stale_thens, x->stale_running,
                              memory_order_release);
    x->stale_running = 0;
}

void
tp__then_free(tp_actor *a, tp__then *t)
{
    // relaxed: a count read to decide later, and again (tp_code_refs).
    if (t->stale)
        atomic_fetch_sub_explicit(&a->system->stale_thens, 1,
                                  memory_order_relaxed);
    free(t);
}

int
tp_reply(tp_ctx *ctx, uint32_t tag, const void *data, size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    const tp__msg *req = a->current;
    if (req == NULL || req->pub.ref == 0 || (req->flags & TP__MSG_REPLY) ||
        tp_pid_is_nil(req->pub.from))
        return TP_EINVAL;
    return tp_reply_to(ctx, req->pub.from, req->pub.ref, tag, data, size);
}

int
tp_reply_to(tp_ctx *ctx, tp_pid to, uint64_t ref, uint32_t tag,
            const void *data, size_t size)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc == 0 && (ref == 0 || tp_pid_is_nil(to)))
        rc = TP_EINVAL;
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    tp__msg *m = tp__msg_new_copy(a->system, tag, a->pid, data, size);
    if (m == NULL)
        return TP_ENOMEM;
    m->pub.ref = ref;
    m->flags |= TP__MSG_REPLY;
    tp__request_answered(a, to, ref);
    if (tp__deliver_reply(a->system, a, to, m) != 0)
        tp__msg_free(m); // the requester is gone: nobody to answer
    return 0;
}

// ---- tp_call: a request made by a hidden actor on the caller's behalf ----

typedef struct call_slot {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    tp_call_reply reply;
    tp_pid to;
    uint32_t tag;
    int timeout_ms;
    const void *data;
    size_t size;
    uint64_t ref;
} call_slot;

static void
call_finish(call_slot *c, int rc)
{
    pthread_mutex_lock(&c->lock);
    if (!c->done) {
        c->done = true;
        c->rc = rc;
        pthread_cond_signal(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
}

static int
call_init(tp_ctx *ctx, void *state, void *arg)
{
    call_slot *c = arg;
    *(call_slot **)state = c;
    return tp_request(ctx, c->to, c->tag, c->data, c->size, c->timeout_ms,
                      &c->ref);
}

static int
call_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    call_slot *c = *(call_slot **)state;
    if (c == NULL)
        return TP_STOP;
    if (msg->tag == TP_TAG_FAILED) {
        call_finish(c, TP_ENOACTOR);
    } else if (msg->tag == TP_TAG_TIMEOUT) {
        call_finish(c, TP_ETIMEDOUT);
    } else if (msg->ref == c->ref) {
        void *copy = msg->size ? malloc(msg->size) : NULL;
        if (msg->size && copy == NULL) {
            call_finish(c, TP_ENOMEM);
        } else {
            if (msg->size)
                memcpy(copy, msg->data, msg->size);
            c->reply = (tp_call_reply){msg->tag, copy, msg->size};
            call_finish(c, 0);
        }
    } else {
        return TP_OK; // not ours to read
    }
    // The caller may return (and its slot vanish) from now on.
    *(call_slot **)state = NULL;
    return TP_STOP;
}

static void
call_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    if (*(call_slot **)state != NULL)
        call_finish(*(call_slot **)state, TP_ESHUTDOWN);
}

// Whether the call's answer came (a test system's drive asks).
static bool
call_done(void *arg)
{
    call_slot *c = arg;
    pthread_mutex_lock(&c->lock);
    bool done = c->done;
    pthread_mutex_unlock(&c->lock);
    return done;
}

static const tp_behaviour call_proxy = {.name = "tp_call",
                                        .state_size = sizeof(call_slot *),
                                        .init = call_init,
                                        .handle = call_handle,
                                        .terminate = call_terminate};

int
tp_call(tp_system *sys, tp_pid to, uint32_t tag, const void *data, size_t size,
        int timeout_ms, tp_call_reply *out)
{
    if (sys == NULL || out == NULL || timeout_ms < -1)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    int rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    call_slot c = {.to = to,
                   .tag = tag,
                   .data = data,
                   .size = size,
                   .timeout_ms = timeout_ms};
    if ((rc = pthread_mutex_init(&c.lock, NULL)) != 0)
        return rc == ENOMEM ? TP_ENOMEM : TP_EAGAIN;
    if ((rc = pthread_cond_init(&c.cond, NULL)) != 0) {
        pthread_mutex_destroy(&c.lock);
        return rc == ENOMEM ? TP_ENOMEM : TP_EAGAIN;
    }
    tp_pid proxy;
    rc = tp_spawn(sys, &call_proxy, &c, NULL, &proxy);
    if (rc == 0 && sys->test != NULL) {
        // A test system: its actors run here until the answer comes. One
        // that cannot come (nothing left to run, no timer) ends the proxy,
        // whose terminate lets us go.
        if (tp__test_drive(sys, call_done, &c, timeout_ms) < 0) {
            tp_system_exit(sys, proxy, TP_REASON_KILL);
            tp__test_drive(sys, call_done, &c, -1);
            c.rc = TP_ETIMEDOUT;
        }
        rc = c.rc;
    } else if (rc == 0) {
        pthread_mutex_lock(&c.lock);
        while (!c.done)
            pthread_cond_wait(&c.cond, &c.lock);
        pthread_mutex_unlock(&c.lock);
        rc = c.rc;
    }
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
    if (rc == 0)
        *out = c.reply;
    return rc;
}
