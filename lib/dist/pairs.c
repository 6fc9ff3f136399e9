// SPDX-License-Identifier: MIT
// Links and monitors across connections. For `noconnection`, the I/O
// thread watches the link and monitor frames that cross each connection
// and keeps, per peer, the pairs they set up. When the connection goes,
// each local end receives the exit signal, DOWN or cleanup it would have
// got had the remote actors died. Also the pushes that answer link and
// monitor requests which never reach their peer.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <stdlib.h>
#include <string.h>

uint64_t
tp__pair_key(uint64_t a, uint64_t b)
{
    uint64_t k = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
    k ^= k >> 31;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 29;
    if (k == 0 || k == UINT64_MAX)
        k = 1;
    return k;
}

#define PAIRS_FIRST_CAP 16

// Grows `s` by doubling. Returns 0 or TP_ENOMEM (`s` still usable).
static int
pairset_grow(pairset *s)
{
    uint32_t cap = s->cap ? s->cap * 2 : PAIRS_FIRST_CAP;
    pair *p = realloc(s->slots, cap * sizeof *p);
    if (p == NULL)
        return TP_ENOMEM;
    s->slots = p;
    uint64_t *k = realloc(s->keys, cap * sizeof *k);
    if (k == NULL)
        return TP_ENOMEM;
    s->keys = k;
    uint32_t *f = realloc(s->free, cap * sizeof *f);
    if (f == NULL)
        return TP_ENOMEM;
    s->free = f;
    s->cap = cap;
    return 0;
}

int
tp__pairset_put(pairset *s, uint64_t key, uint64_t a, uint64_t b, uint64_t ref)
{
    uint64_t v;
    if (tp__map_get(&s->index, key, &v)) {
        s->slots[v - 1] = (pair){a, b, ref};
        return 0;
    }
    uint32_t i;
    if (s->nfree > 0) {
        i = s->free[--s->nfree];
    } else {
        if (s->len == s->cap && pairset_grow(s) != 0)
            return TP_ENOMEM;
        i = s->len++;
    }
    if (tp__map_put(&s->index, key, (uint64_t)i + 1) != 0) {
        s->keys[i] = 0; // a free slot, skipped by tp__pairs_fire
        s->free[s->nfree++] = i;
        return TP_ENOMEM;
    }
    s->slots[i] = (pair){a, b, ref};
    s->keys[i] = key;
    return 0;
}

void
tp__pairs_put(tp__peer *p, pairset *s, uint64_t key, uint64_t a, uint64_t b,
              uint64_t ref)
{
    if (tp__pairset_put(s, key, a, b, ref) != 0)
        tp__log(p->node->sys, TP_LOG_WARNING,
                "node: out of memory: a link or monitor across %s is not "
                "tracked, and will not fire noconnection if the connection "
                "goes",
                p->name);
}

bool
tp__pairset_del(pairset *s, uint64_t key, pair *out)
{
    uint64_t v;
    if (!tp__map_del(&s->index, key, &v))
        return false;
    uint32_t i = (uint32_t)(v - 1);
    if (out != NULL)
        *out = s->slots[i];
    s->keys[i] = 0;
    s->free[s->nfree++] = i;
    return true;
}

void
tp__pairset_free(pairset *s)
{
    tp__map_free(&s->index);
    free(s->slots);
    free(s->keys);
    free(s->free);
    memset(s, 0, sizeof *s);
}

static tp__msg *
signal_msg(tp_system *sys, uint16_t kind, tp_pid from, uint64_t ref,
           int reason, bool linked, const char *text, size_t text_len)
{
    tp__signal s = {.ref = ref, .reason = reason, .linked = linked};
    if (text_len >= sizeof s.text)
        text_len = sizeof s.text - 1;
    if (text != NULL)
        memcpy(s.text, text, text_len);
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &s, sizeof s);
    if (m != NULL)
        m->kind = kind;
    return m;
}

void
tp__push_signal(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from,
                uint64_t ref, int reason, bool linked, const char *text,
                size_t text_len)
{
    tp__msg *m =
        signal_msg(sys, kind, from, ref, reason, linked, text, text_len);
    if (m != NULL && tp__push_sys(sys, to, m) != 0)
        tp__msg_free(m);
}

void
tp__push_ref(tp_system *sys, tp_pid to, uint16_t kind, tp_pid from,
             uint64_t ref)
{
    tp__msg *m = tp__msg_new_copy(sys, 0, from, &ref, sizeof ref);
    if (m == NULL)
        return;
    m->kind = kind;
    if (tp__push_sys(sys, to, m) != 0)
        tp__msg_free(m);
}

// A link or monitor request that will never reach its peer is answered as
// a lost connection would be: exit signal or DOWN with noconnection.
void
tp__answer_lost(tp_system *sys, uint16_t kind, tp_pid local, tp_pid remote,
                uint64_t ref)
{
    if (kind == TP__MSG_LINK)
        tp__push_signal(sys, local, TP__MSG_EXIT, remote, 0,
                        TP_REASON_NOCONNECTION, true, NULL, 0);
    else if (kind == TP__MSG_MONITOR)
        tp__push_signal(sys, local, TP__MSG_DOWN, remote, ref,
                        TP_REASON_NOCONNECTION, false, NULL, 0);
}

// Fires noconnection at every local end of a link or monitor across `p`.
void
tp__pairs_fire(tp__peer *p)
{
    tp_system *sys = p->node->sys;
    for (uint32_t i = 0; i < p->links.len; i++)
        if (p->links.keys[i] != 0)
            tp__push_signal(sys, (tp_pid){p->links.slots[i].a}, TP__MSG_EXIT,
                            (tp_pid){p->links.slots[i].b}, 0,
                            TP_REASON_NOCONNECTION, true, NULL, 0);
    for (uint32_t i = 0; i < p->mon_out.len; i++)
        if (p->mon_out.keys[i] != 0)
            tp__push_signal(sys, (tp_pid){p->mon_out.slots[i].a}, TP__MSG_DOWN,
                            (tp_pid){p->mon_out.slots[i].b},
                            p->mon_out.slots[i].ref, TP_REASON_NOCONNECTION,
                            false, NULL, 0);
    for (uint32_t i = 0; i < p->mon_in.len; i++)
        if (p->mon_in.keys[i] != 0)
            tp__push_ref(sys, (tp_pid){p->mon_in.slots[i].a},
                         TP__MSG_DEMONITOR, (tp_pid){p->mon_in.slots[i].b},
                         p->mon_in.slots[i].ref);
    tp__pairset_free(&p->links);
    tp__pairset_free(&p->mon_out);
    tp__pairset_free(&p->mon_in);
}

// Keeps the pairs that link and monitor frames set up across the
// connection, as frame `m` (to `remote`) leaves for the peer.
void
tp__pairs_note(tp__peer *p, const tp__msg *m, tp_pid remote)
{
    tp_pid local = m->pub.from;
    switch (m->kind) {
    case TP__MSG_LINK:
        tp__pairs_put(p, &p->links, tp__pair_key(local.v, remote.v), local.v,
                      remote.v, 0);
        break;
    case TP__MSG_UNLINK:
    case TP__MSG_EXIT:
        tp__pairset_del(&p->links, tp__pair_key(local.v, remote.v), NULL);
        break;
    case TP__MSG_MONITOR:
        tp__pairs_put(p, &p->mon_out, m->pub.ref, local.v, remote.v,
                      m->pub.ref);
        break;
    case TP__MSG_DEMONITOR:
        tp__pairset_del(&p->mon_out, m->pub.ref, NULL);
        break;
    case TP__MSG_DOWN: {
        uint16_t idx = atomic_load_explicit(&p->idx, memory_order_relaxed);
        tp__pairset_del(&p->mon_in,
                        ((uint64_t)idx << TP__NODE_IDX_SHIFT) | m->pub.ref,
                        NULL);
        break;
    }
    }
}
