// SPDX-License-Identifier: MIT
// The supervisor's side of the management calls (start_child,
// terminate_child, restart_child, delete_child, which_children,
// count_children): checking a request, stashing it while a stop sequence
// runs, and answering it. The client side is in sup_calls.c.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_server.h"

// ---- calls -----------------------------------------------------------------

void
tp__sup_answer_call(tp_ctx *ctx, const call *k, int rc, tp_pid pid)
{
    answer a = {rc, k->tag, pid};
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_ANSWER, &a, sizeof a);
}

// start_child: a new child from the call's spec (or, under
// simple_one_for_one, from the template with the call's argument).
static void
call_start(tp_ctx *ctx, sup *s, const call *k)
{
    child *c;
    const start_req *q = &k->req.start;
    const tp_child_spec *spec;
    tp_child_spec local;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE) {
        spec = &s->kids[0].spec; // the template stays at index 0
        if (q->has_spec) {
            tp__sup_answer_call(ctx, k, TP_EINVAL, TP_PID_NIL);
            return;
        }
    } else {
        local = q->spec;
        local.id = q->has_id ? q->id : NULL;
        local.opts.name = q->name[0] ? q->name : NULL;
        spec = &local;
        int rc = q->has_spec ? tp__sup_check_spec(tp_ctx_system(ctx), spec)
                             : TP_EINVAL;
        if (rc == 0 && tp__sup_by_id(s, spec->id) != NULL)
            rc = TP_EEXIST;
        if (rc != 0) {
            tp__sup_answer_call(ctx, k, rc, TP_PID_NIL);
            return;
        }
    }
    int rc;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
        c = tp__sup_add_child(s, spec, s->kids[0].id, s->kids[0].name, q->arg,
                              &rc);
    else
        c = tp__sup_add_child(s, spec, spec->id, spec->opts.name, NULL, &rc);
    if (c == NULL) {
        tp__sup_answer_call(ctx, k, rc, TP_PID_NIL);
        return;
    }
    rc = tp__sup_start(ctx, s, c);
    tp_pid pid = c->pid;
    if (rc != 0 ||
        (tp_pid_is_nil(pid) && s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE))
        tp__sup_remove_child(s, c);
    tp__sup_answer_call(ctx, k, rc, pid);
    return;
}

// terminate_child: stopped through a one-child stop sequence, answered
// when it ends; kept in the table.
static void
call_terminate(tp_ctx *ctx, sup *s, const call *k)
{
    const id_req *r = &k->req.id;
    child *c;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
        c = tp_pid_is_nil(r->pid) ? NULL : tp__sup_by_pid(s, r->pid);
    else
        c = tp__sup_by_id(s, r->id);
    if (c == NULL) {
        tp__sup_answer_call(ctx, k, TP_ENOENT, TP_PID_NIL);
        return;
    }
    if (tp_pid_is_nil(c->pid)) {
        c->waiting = false;
        tp__sup_answer_call(ctx, k, 0, TP_PID_NIL);
        return;
    }
    s->answer_to = *k;
    tp__sup_begin_sequence(ctx, s, &c->key, 1, CONT_ANSWER);
    return;
}

// restart_child and delete_child: only for a child that is not running.
static void
call_restart_delete(tp_ctx *ctx, sup *s, const call *k)
{
    const id_req *r = &k->req.id;
    child *c;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE ||
        (c = tp__sup_by_id(s, r->id)) == NULL) {
        tp__sup_answer_call(ctx, k, TP_ENOENT, TP_PID_NIL);
        return;
    }
    if (!tp_pid_is_nil(c->pid) || c->waiting) {
        tp__sup_answer_call(ctx, k, TP_EEXIST, c->pid);
        return;
    }
    if (k->tag == TP__SUP_CALL_DELETE) {
        tp__sup_remove_child(s, c);
        tp__sup_answer_call(ctx, k, 0, TP_PID_NIL);
    } else {
        int rc = tp__sup_start(ctx, s, c);
        tp__sup_answer_call(ctx, k, rc, c->pid);
    }
    return;
}

// which_children: one tp_sup_child per child, in start order.
static void
call_which(tp_ctx *ctx, sup *s, const call *k)
{
    size_t first = s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE;
    size_t n = s->n - first;
    tp_sup_child *out = calloc(n ? n : 1, sizeof *out);
    if (out == NULL) {
        answer a = {TP_ENOMEM, k->tag, TP_PID_NIL};
        tp_reply_to(ctx, k->from, k->ref, TP__SUP_ANSWER, &a, sizeof a);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const child *ch = &s->kids[first + i];
        snprintf(out[i].id, sizeof out[i].id, "%s", ch->id);
        out[i].pid = ch->pid;
        out[i].type = ch->spec.type;
        out[i].restart = ch->spec.restart;
        out[i].restarts = ch->restarts;
    }
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_CHILDREN, out, n * sizeof *out);
    free(out);
    return;
}

// An upgrade: each child spec (a simple_one_for_one's template included)
// whose behaviour is a change's `from` gets its `to`, so that children
// started from now on run the new code. Answers how many changed.
static void
call_upgrade(tp_ctx *ctx, sup *s, const call *k)
{
    int32_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t c = 0; c < k->req.upgrade.n; c++)
            if (s->kids[i].spec.behaviour == k->req.upgrade.changes[c].from) {
                s->kids[i].spec.behaviour = k->req.upgrade.changes[c].to;
                n++;
                break;
            }
        // The specs a supervisor child restarts from, ours.
        n += tp__sup_copy_upgrade(&s->kids[i], k->req.upgrade.changes,
                                  k->req.upgrade.n);
    }
    answer a = {n, k->tag, TP_PID_NIL};
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_ANSWER, &a, sizeof a);
}

// How many child specs (a simple_one_for_one's template included, and
// those in the copies of supervisor children's specs) point into the
// range: their behaviour, its callbacks, or their `arg`.
static void
call_refs(tp_ctx *ctx, sup *s, const call *k)
{
    const tp__sup_refs_req *r = &k->req.refs;
    int32_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        n += tp__sup_spec_refs(&s->kids[i].spec, r->lo, r->hi);
        n += tp__sup_copy_refs(&s->kids[i], r->lo, r->hi);
    }
    answer a = {n, k->tag, TP_PID_NIL};
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_ANSWER, &a, sizeof a);
}

// count_children: OTP's counts.
static void
call_count(tp_ctx *ctx, sup *s, const call *k)
{
    // A simple_one_for_one supervisor has one spec, the template at
    // index 0, and counts its children by the template's type (OTP).
    bool simple = s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE;
    tp_sup_counts n = {.specs = simple};
    for (size_t i = simple; i < s->n; i++) {
        const child *ch = &s->kids[i];
        n.specs += !simple;
        n.active += !tp_pid_is_nil(ch->pid);
        if (ch->spec.type == TP_SUPERVISOR)
            n.supervisors++;
        else
            n.workers++;
    }
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_COUNTS, &n, sizeof n);
    return;
}

void
tp__sup_do_call(tp_ctx *ctx, sup *s, const call *k)
{
    switch (k->tag) {
    case TP__SUP_CALL_START:
        call_start(ctx, s, k);
        return;
    case TP__SUP_CALL_TERMINATE:
        call_terminate(ctx, s, k);
        return;
    case TP__SUP_CALL_RESTART:
    case TP__SUP_CALL_DELETE:
        call_restart_delete(ctx, s, k);
        return;
    case TP__SUP_CALL_WHICH:
        call_which(ctx, s, k);
        return;
    case TP__SUP_CALL_COUNT:
        call_count(ctx, s, k);
        return;
    case TP__SUP_CALL_UPGRADE:
        call_upgrade(ctx, s, k);
        return;
    case TP__SUP_CALL_REFS:
        call_refs(ctx, s, k);
        return;
    }
}

// Copies the call in `msg` into `k`. Returns TP_EPERM for a call from
// another node (requests carry pointers, which mean something only in
// this process) or TP_EINVAL when the payload is not the request the tag
// names; whoever built it, its strings end inside their arrays.
int
tp__sup_take_call(call *k, const tp_msg *msg)
{
    if (tp_pid_node(msg->from) != 0)
        return TP_EPERM;
    if (msg->tag == TP__SUP_CALL_UPGRADE) {
        // Read in place: the message lives while the call is handled.
        if (msg->size == 0 || msg->size % sizeof(tp_code_change) != 0)
            return TP_EINVAL;
        k->from = msg->from;
        k->ref = msg->ref;
        k->tag = msg->tag;
        k->req.upgrade.changes = msg->data;
        k->req.upgrade.n = msg->size / sizeof(tp_code_change);
        return 0;
    }
    size_t want =
        msg->tag == TP__SUP_CALL_START  ? sizeof k->req.start
        : msg->tag == TP__SUP_CALL_REFS ? sizeof k->req.refs
        : msg->tag == TP__SUP_CALL_WHICH || msg->tag == TP__SUP_CALL_COUNT
            ? 0
            : sizeof k->req.id;
    if (msg->size != want)
        return TP_EINVAL;
    k->from = msg->from;
    k->ref = msg->ref;
    k->tag = msg->tag;
    memcpy(&k->req, msg->data, want);
    if (msg->tag == TP__SUP_CALL_START) {
        k->req.start.id[ID_MAX - 1] = '\0';
        k->req.start.name[TP_NAME_MAX] = '\0';
    } else if (want > 0) {
        k->req.id.id[ID_MAX - 1] = '\0';
    }
    return 0;
}

int
tp__sup_note_exit(sup *s, uint64_t key, int reason)
{
    if (s->nexited == s->capexited) {
        size_t cap = s->capexited ? s->capexited * 2 : 8;
        uint64_t *k = realloc(s->exited, cap * sizeof *k);
        if (k == NULL)
            return TP_ENOMEM;
        s->exited = k;
        int *r = realloc(s->exited_reason, cap * sizeof *r);
        if (r == NULL)
            return TP_ENOMEM;
        s->exited_reason = r;
        s->capexited = cap;
    }
    s->exited[s->nexited] = key;
    s->exited_reason[s->nexited++] = reason;
    return 0;
}
