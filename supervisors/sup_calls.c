// SPDX-License-Identifier: MIT
// The supervisor's calls, from the caller's side. Each call builds a
// request (sup_impl.h), sends it to the supervisor and decodes the
// answer supervisor.c sends back. The blocking forms send it with tp_call
// from a thread outside the system; the _async forms with tp_request from
// an actor, which later hands the answer (or tp_request's message that
// none came) to a decoder. Both read answers with the same decoders, so
// the two forms return the same results. Written on the public API only,
// as the supervisor is.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup_impl.h"

// ---- requests --------------------------------------------------------------

// Fills a start request from `spec` (NULL for simple_one_for_one) and
// `arg`. Returns 0, or TP_EINVAL for strings too long to copy (the
// supervisor would refuse them anyway).
static int
start_request(tp__sup_start_req *r, const tp_child_spec *spec, void *arg)
{
    memset(r, 0, sizeof *r);
    r->has_spec = spec != NULL;
    r->arg = arg;
    if (spec == NULL)
        return 0;
    if ((spec->id != NULL && strlen(spec->id) >= sizeof r->id) ||
        (spec->opts.name != NULL && strlen(spec->opts.name) >= sizeof r->name))
        return TP_EINVAL;
    r->spec = *spec;
    r->spec.id = NULL;
    r->spec.opts.name = NULL;
    r->has_id = spec->id != NULL;
    snprintf(r->id, sizeof r->id, "%s", spec->id ? spec->id : "");
    snprintf(r->name, sizeof r->name, "%s",
             spec->opts.name ? spec->opts.name : "");
    return 0;
}

// Fills a terminate, restart or delete request. Returns 0, or TP_ENOENT
// for an id too long for any child to have.
static int
id_request(tp__sup_id_req *r, const char *id, tp_pid pid)
{
    memset(r, 0, sizeof *r);
    r->pid = pid;
    if (id == NULL)
        return 0;
    if (strlen(id) >= sizeof r->id)
        return TP_ENOENT;
    snprintf(r->id, sizeof r->id, "%s", id);
    return 0;
}

// ---- decoding answers ------------------------------------------------------

// Whether an answer to the call tagged `got` is one for the decoder of
// `want` (0: tp_sup_result, which decodes start, terminate, restart and
// delete).
static bool
answers(uint32_t got, uint32_t want)
{
    if (want != 0)
        return got == want;
    return got == TP__SUP_CALL_START || got == TP__SUP_CALL_TERMINATE ||
           got == TP__SUP_CALL_RESTART || got == TP__SUP_CALL_DELETE;
}

// What a message that is not the answer a decoder reads says: tp_request's
// news that none came, the failure of the decoder's own call (`call`, a
// TP__SUP_CALL_* tag, or 0 for those tp_sup_result decodes), or that it
// answers another call or is no answer at all (TP_EDECODE).
static int
not_answer(const tp_msg *msg, uint32_t call)
{
    if (msg->tag == TP_TAG_TIMEOUT)
        return TP_ETIMEDOUT;
    if (msg->tag >= TP_TAG_RESERVED)
        return TP_ENOACTOR;
    tp__sup_answer a;
    if (msg->tag != TP__SUP_ANSWER || msg->size != sizeof a)
        return TP_EDECODE;
    memcpy(&a, msg->data, sizeof a);
    if (!answers(a.call, call))
        return TP_EDECODE;
    // which_children and count_children answer a success in their own form.
    return call != 0 && a.rc == 0 ? TP_EDECODE : a.rc;
}

int
tp_sup_result(const tp_msg *msg, tp_pid *pid)
{
    if (msg == NULL)
        return TP_EINVAL;
    int rc = not_answer(msg, 0);
    if (rc == 0 && pid != NULL) {
        tp__sup_answer a;
        memcpy(&a, msg->data, sizeof a);
        *pid = a.pid;
    }
    return rc;
}

int
tp_sup_result_children(const tp_msg *msg, tp_sup_child *out, size_t max,
                       size_t *n)
{
    if (msg == NULL || n == NULL || (out == NULL && max > 0))
        return TP_EINVAL;
    if (msg->tag != TP__SUP_CHILDREN || msg->size % sizeof *out != 0)
        return not_answer(msg, TP__SUP_CALL_WHICH);
    *n = msg->size / sizeof *out;
    if (max > 0 && *n > 0) // no children: no data to copy from
        memcpy(out, msg->data, (*n < max ? *n : max) * sizeof *out);
    return 0;
}

int
tp_sup_result_counts(const tp_msg *msg, tp_sup_counts *out)
{
    if (msg == NULL || out == NULL)
        return TP_EINVAL;
    if (msg->tag != TP__SUP_COUNTS || msg->size != sizeof *out)
        return not_answer(msg, TP__SUP_CALL_COUNT);
    memcpy(out, msg->data, sizeof *out);
    return 0;
}

// ---- blocking calls, from threads outside the system -----------------------

// Sends a request with tp_call and hands the answer to the caller as a
// message. Returns 0 with `*msg` set (free msg->data with free()), or
// tp_call's error.
static int
call(tp_system *sys, tp_pid sup_pid, uint32_t tag, const void *data,
     size_t size, int timeout_ms, tp_msg *msg)
{
    tp_call_reply rep;
    int rc = tp_call(sys, sup_pid, tag, data, size, timeout_ms, &rep);
    if (rc != 0)
        return rc;
    *msg = (tp_msg){
        .tag = rep.tag, .from = sup_pid, .data = rep.data, .size = rep.size};
    return 0;
}

// A call answered with a tp__sup_answer.
static int
call_pid(tp_system *sys, tp_pid sup_pid, uint32_t tag, const void *data,
         size_t size, int timeout_ms, tp_pid *out)
{
    tp_msg msg;
    int rc = call(sys, sup_pid, tag, data, size, timeout_ms, &msg);
    if (rc != 0)
        return rc;
    rc = tp_sup_result(&msg, out);
    free((void *)msg.data);
    return rc;
}

int
tp_sup_start_child(tp_system *sys, tp_pid sup_pid, const tp_child_spec *spec,
                   void *arg, int timeout_ms, tp_pid *out)
{
    tp__sup_start_req r;
    int rc = start_request(&r, spec, arg);
    if (rc != 0)
        return rc;
    return call_pid(sys, sup_pid, TP__SUP_CALL_START, &r, sizeof r, timeout_ms,
                    out);
}

int
tp_sup_terminate_child(tp_system *sys, tp_pid sup_pid, const char *id,
                       tp_pid pid, int timeout_ms)
{
    tp__sup_id_req r;
    int rc = id_request(&r, id, pid);
    if (rc != 0)
        return rc;
    return call_pid(sys, sup_pid, TP__SUP_CALL_TERMINATE, &r, sizeof r,
                    timeout_ms, NULL);
}

int
tp_sup_restart_child(tp_system *sys, tp_pid sup_pid, const char *id,
                     int timeout_ms, tp_pid *out)
{
    tp__sup_id_req r;
    int rc = id == NULL ? TP_EINVAL : id_request(&r, id, TP_PID_NIL);
    if (rc != 0)
        return rc;
    return call_pid(sys, sup_pid, TP__SUP_CALL_RESTART, &r, sizeof r,
                    timeout_ms, out);
}

int
tp_sup_delete_child(tp_system *sys, tp_pid sup_pid, const char *id,
                    int timeout_ms)
{
    tp__sup_id_req r;
    int rc = id == NULL ? TP_EINVAL : id_request(&r, id, TP_PID_NIL);
    if (rc != 0)
        return rc;
    return call_pid(sys, sup_pid, TP__SUP_CALL_DELETE, &r, sizeof r,
                    timeout_ms, NULL);
}

int
tp_sup_which_children(tp_system *sys, tp_pid sup_pid, int timeout_ms,
                      tp_sup_child *out, size_t max, size_t *n)
{
    if (n == NULL || (out == NULL && max > 0))
        return TP_EINVAL;
    tp_msg msg;
    int rc = call(sys, sup_pid, TP__SUP_CALL_WHICH, NULL, 0, timeout_ms, &msg);
    if (rc != 0)
        return rc;
    rc = tp_sup_result_children(&msg, out, max, n);
    free((void *)msg.data);
    return rc;
}

// Asks `sup_pid` and every supervisor under it the call `tag` answered
// with a count, and adds the counts into *total.
static int
tree_count(tp_system *sys, tp_pid sup_pid, uint32_t tag, const void *data,
           size_t size, int timeout_ms, size_t *total)
{
    tp_msg msg;
    int rc = call(sys, sup_pid, tag, data, size, timeout_ms, &msg);
    if (rc != 0)
        return rc;
    tp__sup_answer a = {TP_EINVAL, 0, TP_PID_NIL};
    if (msg.tag == TP__SUP_ANSWER && msg.size == sizeof a)
        memcpy(&a, msg.data, sizeof a);
    free((void *)msg.data);
    if (a.rc < 0)
        return a.rc;
    *total += (size_t)a.rc;
    // Then the supervisors under it: all of them, however many (a child
    // added between the two asks is looked under by neither, as one added
    // once this returned).
    size_t nk = 0, got = 0;
    rc = tp_sup_which_children(sys, sup_pid, timeout_ms, NULL, 0, &nk);
    tp_sup_child *kids = rc == 0 ? malloc((nk ? nk : 1) * sizeof *kids) : NULL;
    if (rc == 0 && kids == NULL)
        rc = TP_ENOMEM;
    if (rc == 0)
        rc = tp_sup_which_children(sys, sup_pid, timeout_ms, kids, nk, &got);
    for (size_t i = 0; rc == 0 && i < nk && i < got; i++)
        if (kids[i].type == TP_SUPERVISOR && !tp_pid_is_nil(kids[i].pid))
            rc = tree_count(sys, kids[i].pid, tag, data, size, timeout_ms,
                            total);
    free(kids);
    return rc;
}

int
tp_sup_upgrade(tp_system *sys, tp_pid sup_pid, const tp_code_change *changes,
               size_t n, int timeout_ms, size_t *replaced)
{
    if (changes == NULL || n == 0)
        return TP_EINVAL;
    size_t total = 0;
    int rc = tree_count(sys, sup_pid, TP__SUP_CALL_UPGRADE, changes,
                        n * sizeof *changes, timeout_ms, &total);
    if (replaced != NULL)
        *replaced = total;
    return rc;
}

int
tp_sup_refs(tp_system *sys, tp_pid sup_pid, const void *start, size_t size,
            int timeout_ms, size_t *refs)
{
    if (refs == NULL)
        return TP_EINVAL;
    *refs = 0;
    uintptr_t lo = (uintptr_t)start;
    // A range past the end of the address space ends there.
    tp__sup_refs_req r = {lo,
                          size > UINTPTR_MAX - lo ? UINTPTR_MAX : lo + size};
    return tree_count(sys, sup_pid, TP__SUP_CALL_REFS, &r, sizeof r,
                      timeout_ms, refs);
}

int
tp_sup_count_children(tp_system *sys, tp_pid sup_pid, int timeout_ms,
                      tp_sup_counts *out)
{
    if (out == NULL)
        return TP_EINVAL;
    tp_msg msg;
    int rc = call(sys, sup_pid, TP__SUP_CALL_COUNT, NULL, 0, timeout_ms, &msg);
    if (rc != 0)
        return rc;
    rc = tp_sup_result_counts(&msg, out);
    free((void *)msg.data);
    return rc;
}

// ---- asynchronous calls, from actors ---------------------------------------

int
tp_sup_start_child_async(tp_ctx *ctx, tp_pid sup_pid,
                         const tp_child_spec *spec, void *arg, int timeout_ms,
                         uint64_t *ref)
{
    tp__sup_start_req r;
    int rc = start_request(&r, spec, arg);
    if (rc != 0)
        return rc;
    return tp_request(ctx, sup_pid, TP__SUP_CALL_START, &r, sizeof r,
                      timeout_ms, ref);
}

// Sends a terminate, restart or delete request.
static int
id_async(tp_ctx *ctx, uint64_t *ref, tp_pid sup_pid, uint32_t tag,
         const char *id, tp_pid pid, int timeout_ms)
{
    tp__sup_id_req r;
    int rc = id_request(&r, id, pid);
    if (rc != 0)
        return rc;
    return tp_request(ctx, sup_pid, tag, &r, sizeof r, timeout_ms, ref);
}

int
tp_sup_terminate_child_async(tp_ctx *ctx, tp_pid sup_pid, const char *id,
                             tp_pid pid, int timeout_ms, uint64_t *ref)
{
    return id_async(ctx, ref, sup_pid, TP__SUP_CALL_TERMINATE, id, pid,
                    timeout_ms);
}

int
tp_sup_restart_child_async(tp_ctx *ctx, tp_pid sup_pid, const char *id,
                           int timeout_ms, uint64_t *ref)
{
    if (id == NULL)
        return TP_EINVAL;
    return id_async(ctx, ref, sup_pid, TP__SUP_CALL_RESTART, id, TP_PID_NIL,
                    timeout_ms);
}

int
tp_sup_delete_child_async(tp_ctx *ctx, tp_pid sup_pid, const char *id,
                          int timeout_ms, uint64_t *ref)
{
    if (id == NULL)
        return TP_EINVAL;
    return id_async(ctx, ref, sup_pid, TP__SUP_CALL_DELETE, id, TP_PID_NIL,
                    timeout_ms);
}

int
tp_sup_which_children_async(tp_ctx *ctx, tp_pid sup_pid, int timeout_ms,
                            uint64_t *ref)
{
    return tp_request(ctx, sup_pid, TP__SUP_CALL_WHICH, NULL, 0, timeout_ms,
                      ref);
}

int
tp_sup_count_children_async(tp_ctx *ctx, tp_pid sup_pid, int timeout_ms,
                            uint64_t *ref)
{
    return tp_request(ctx, sup_pid, TP__SUP_CALL_COUNT, NULL, 0, timeout_ms,
                      ref);
}
