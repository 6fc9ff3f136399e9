// SPDX-License-Identifier: MIT
// The supervisor's calls, from the caller's side: each builds a request,
// sends it to a supervisor (supervisor.c answers it) and reads the answer.
// Written on the public API only, as the supervisor is.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup_impl.h"

typedef tp__sup_start_req start_req;
typedef tp__sup_id_req id_req;
typedef tp__sup_answer answer;

static int
sup_call(tp_system *sys, tp_pid sup_pid, uint32_t tag, const void *data,
         size_t size, int timeout_ms, void *out, size_t out_size, size_t *got)
{
    tp_call_reply rep;
    int rc = tp_call(sys, sup_pid, tag, data, size, timeout_ms, &rep);
    if (rc != 0)
        return rc;
    if (got != NULL)
        *got = rep.size;
    if (out != NULL)
        memcpy(out, rep.data, rep.size < out_size ? rep.size : out_size);
    free(rep.data);
    return 0;
}

static int
answered(tp_system *sys, tp_pid sup_pid, uint32_t tag, const void *data,
         size_t size, int timeout_ms, tp_pid *out)
{
    answer a = {TP_EINVAL, TP_PID_NIL};
    int rc = sup_call(sys, sup_pid, tag, data, size, timeout_ms, &a, sizeof a,
                      NULL);
    if (rc != 0)
        return rc;
    if (out != NULL && a.rc == 0)
        *out = a.pid;
    return a.rc;
}

int
tp_sup_start_child(tp_system *sys, tp_pid sup_pid, const tp_child_spec *spec,
                   void *arg, tp_pid *out, int timeout_ms)
{
    start_req r = {.has_spec = spec != NULL, .arg = arg};
    if (spec != NULL) {
        r.spec = *spec;
        r.spec.id = NULL;
        r.spec.opts.name = NULL;
        // Too long to copy: the supervisor refuses it as it would anyway.
        if ((spec->id != NULL && strlen(spec->id) >= sizeof r.id) ||
            (spec->opts.name != NULL &&
             strlen(spec->opts.name) >= sizeof r.name))
            return TP_EINVAL;
        r.has_id = spec->id != NULL;
        snprintf(r.id, sizeof r.id, "%s", spec->id ? spec->id : "");
        snprintf(r.name, sizeof r.name, "%s",
                 spec->opts.name ? spec->opts.name : "");
    }
    return answered(sys, sup_pid, TP__SUP_CALL_START, &r, sizeof r, timeout_ms,
                    out);
}

int
tp_sup_start_child_async(tp_ctx *ctx, tp_pid sup_pid, void *arg,
                         uint32_t timeout_ms, uint64_t *ref)
{
    start_req r = {.arg = arg};
    return tp_request(ctx, sup_pid, TP__SUP_CALL_START, &r, sizeof r,
                      timeout_ms, ref);
}

static int
id_call(tp_system *sys, tp_pid sup_pid, uint32_t tag, const char *id,
        tp_pid pid, tp_pid *out, int timeout_ms)
{
    id_req r = {.pid = pid};
    if (id != NULL) {
        if (strlen(id) >= sizeof r.id)
            return TP_ENOENT;
        snprintf(r.id, sizeof r.id, "%s", id);
    }
    return answered(sys, sup_pid, tag, &r, sizeof r, timeout_ms, out);
}

int
tp_sup_terminate_child(tp_system *sys, tp_pid sup_pid, const char *id,
                       tp_pid pid, int timeout_ms)
{
    return id_call(sys, sup_pid, TP__SUP_CALL_TERMINATE, id, pid, NULL,
                   timeout_ms);
}

int
tp_sup_restart_child(tp_system *sys, tp_pid sup_pid, const char *id,
                     tp_pid *out, int timeout_ms)
{
    if (id == NULL)
        return TP_EINVAL;
    return id_call(sys, sup_pid, TP__SUP_CALL_RESTART, id, TP_PID_NIL, out,
                   timeout_ms);
}

int
tp_sup_delete_child(tp_system *sys, tp_pid sup_pid, const char *id,
                    int timeout_ms)
{
    if (id == NULL)
        return TP_EINVAL;
    return id_call(sys, sup_pid, TP__SUP_CALL_DELETE, id, TP_PID_NIL, NULL,
                   timeout_ms);
}

int
tp_sup_which_children(tp_system *sys, tp_pid sup_pid, tp_sup_child *out,
                      size_t max, size_t *n, int timeout_ms)
{
    if (n == NULL || (out == NULL && max > 0))
        return TP_EINVAL;
    tp_call_reply rep;
    int rc =
        tp_call(sys, sup_pid, TP__SUP_CALL_WHICH, NULL, 0, timeout_ms, &rep);
    if (rc != 0)
        return rc;
    if (rep.size % sizeof(tp_sup_child) != 0) { // an error answer
        answer a = {TP_EINVAL, TP_PID_NIL};
        memcpy(&a, rep.data, rep.size < sizeof a ? rep.size : sizeof a);
        free(rep.data);
        return a.rc;
    }
    *n = rep.size / sizeof(tp_sup_child);
    if (max > 0)
        memcpy(out, rep.data, (*n < max ? *n : max) * sizeof(tp_sup_child));
    free(rep.data);
    return 0;
}

int
tp_sup_count_children(tp_system *sys, tp_pid sup_pid, tp_sup_counts *out,
                      int timeout_ms)
{
    if (out == NULL)
        return TP_EINVAL;
    size_t got = 0;
    int rc = sup_call(sys, sup_pid, TP__SUP_CALL_COUNT, NULL, 0, timeout_ms,
                      out, sizeof *out, &got);
    return rc == 0 && got != sizeof *out ? TP_EINVAL : rc;
}
