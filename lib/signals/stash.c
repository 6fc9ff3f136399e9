// SPDX-License-Identifier: MIT
// Stashing: an actor keeps copies of messages it cannot handle yet
// (tp_stash) and puts them all back, in order, ahead of its mailbox
// (tp_unstash_all). The stash lives in the actor's tables (tp__ext);
// messages put back wait in the running thread's tp__self.replay while the
// activation runs, and in the tables between activations, counted in the
// actor's mailbox count so that it runs again for them (actor.c).
#include "core/core.h"
#include "signals/signals.h"

#include <stdlib.h>

static tp__msg *
next_of(tp__msg *m)
{
    // relaxed: these lists belong to the actor's own activation.
    return (tp__msg *)atomic_load_explicit(&m->node.next,
                                           memory_order_relaxed);
}

static void
link_to(tp__msg *m, tp__msg *next)
{
    // relaxed: as in next_of.
    atomic_store_explicit(&m->node.next, next != NULL ? &next->node : NULL,
                          memory_order_relaxed);
}

// Frees list `m`; returns how many it held.
static uint64_t
list_free(tp__msg *m)
{
    uint64_t n = 0;
    while (m != NULL) {
        tp__msg *next = next_of(m);
        tp__msg_free(m);
        m = next;
        n++;
    }
    return n;
}

int
tp_stash(tp_ctx *ctx)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    const tp__msg *cur = a->current;
    if (cur == NULL || !a->started)
        return TP_EINVAL; // init and terminate handle no message
    tp__ext *x = tp__ext_of(a);
    if (x == NULL)
        return TP_ENOMEM;
    if (x->nstash >= TP_STASH_MAX)
        return TP_EFULL;
    tp__msg *m = tp__msg_new_copy(a->system, cur->pub.tag, cur->pub.from,
                                  cur->pub.data, cur->pub.size);
    if (m == NULL)
        return TP_ENOMEM;
    m->pub.ref = cur->pub.ref;
    m->flags |= TP__MSG_LOOSE;
    // relaxed: as in next_of.
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    if (x->stash_tail != NULL)
        link_to(x->stash_tail, m);
    else
        x->stash = m;
    x->stash_tail = m;
    x->nstash++;
    return 0;
}

int
tp_unstash_all(tp_ctx *ctx)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    if (a->current == NULL)
        return TP_EINVAL; // init and terminate: nothing to put back before
    tp__ext *x = a->ext;
    if (x == NULL || x->nstash == 0)
        return 0;
    uint32_t n = x->nstash;
    // Ahead of what an earlier unstash left to handle: this one is newer
    // in the actor's mind, and its messages older in the mailbox's.
    link_to(x->stash_tail, tp__self.replay);
    if (tp__self.replay == NULL)
        tp__self.replay_tail = x->stash_tail;
    tp__self.replay = x->stash;
    x->stash = x->stash_tail = NULL;
    x->nstash = 0;
    // Counted as mail again: the actor runs until it has handled them.
    // seq_cst: as every change of the count the activation makes.
    atomic_fetch_add_explicit(&a->count, n * (TP__CNT_USER + TP__CNT_ONE),
                              memory_order_seq_cst);
    return (int)n;
}

int
tp_stash_size(tp_ctx *ctx)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    return a->ext != NULL ? (int)a->ext->nstash : 0;
}

// Between activations the messages put back wait in the actor's tables.
void
tp__replay_save(tp_actor *a, tp__msg *head, tp__msg *tail)
{
    tp__ext *x = a->ext; // set: only an unstash makes a replay list
    x->replay = head;
    x->replay_tail = tail;
}

void
tp__replay_load(tp_actor *a, tp__msg **head, tp__msg **tail)
{
    tp__ext *x = a->ext;
    *head = x->replay;
    *tail = x->replay_tail;
    x->replay = x->replay_tail = NULL;
}

uint64_t
tp__stash_free(tp__ext *x)
{
    uint64_t n = list_free(x->stash) + list_free(x->replay);
    x->stash = x->stash_tail = x->replay = x->replay_tail = NULL;
    x->nstash = 0;
    return n;
}

// Messages put back that `a` will not handle: it is exiting. They are
// dead letters, as what its mailbox still holds.
void
tp__replay_drop(tp_actor *a, tp__msg *m)
{
    uint64_t n = list_free(m);
    // relaxed: a statistic.
    atomic_fetch_add_explicit(&a->system->dead_letters, n,
                              memory_order_relaxed);
}
