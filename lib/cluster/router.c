// SPDX-License-Identifier: MIT
// Routers: a policy over a fixed list of pids or over a group's members.
// A group router keeps a copy of the members and takes a new one when the
// group table's change counter moved, so a send reads no lock while the
// membership holds still.
#include "cluster/cluster.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tp_router {
    tp_system *sys;
    tp_route how;
    bool of_group;
    char group[TP_GROUP_NAME_MAX + 1];
    tp_pid *pids;
    size_t n, cap;
    uint64_t version; // of the group table the copy matches
    bool copied;
    size_t next; // round robin's turn
    uint64_t rng;
};

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int
router_new(tp_system *sys, tp_route how, tp_router **out)
{
    if (sys == NULL || out == NULL || how < TP_ROUTE_ROUND_ROBIN ||
        how > TP_ROUTE_HASH)
        return TP_EINVAL;
    tp_router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return TP_ENOMEM;
    r->sys = sys;
    r->how = how;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    // A test system's choices replay with its seed.
    r->rng = tp_test_system(sys)
                 ? mix(tp_test_random(sys)) | 1
                 : mix((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)r) | 1;
    *out = r;
    return 0;
}

int
tp_router_group(tp_system *sys, const char *group, tp_route how,
                tp_router **out)
{
    if (!tp__group_name_ok(group))
        return TP_EINVAL;
    int rc = router_new(sys, how, out);
    if (rc == 0) {
        (*out)->of_group = true;
        snprintf((*out)->group, sizeof(*out)->group, "%s", group);
    }
    return rc;
}

int
tp_router_pids(tp_system *sys, const tp_pid *pids, size_t n, tp_route how,
               tp_router **out)
{
    if (pids == NULL || n == 0)
        return TP_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (tp_pid_is_nil(pids[i]))
            return TP_EINVAL;
    if (n > SIZE_MAX / sizeof *pids)
        return TP_ENOMEM;
    tp_pid *copy = malloc(n * sizeof *copy);
    if (copy == NULL)
        return TP_ENOMEM;
    int rc = router_new(sys, how, out);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    memcpy(copy, pids, n * sizeof *copy);
    (*out)->pids = copy;
    (*out)->n = (*out)->cap = n;
    return 0;
}

void
tp_router_free(tp_router *r)
{
    if (r == NULL)
        return;
    free(r->pids);
    free(r);
}

// Brings a group router's copy of the members up to date.
static int
refresh(tp_router *r)
{
    if (!r->of_group)
        return 0;
    if (r->copied && tp__groups_version(r->sys) == r->version)
        return 0;
    int rc = tp__groups_snapshot(r->sys, r->group, &r->pids, &r->n, &r->cap,
                                 &r->version);
    r->copied = rc == 0;
    return rc;
}

static uint64_t
draw(tp_router *r)
{
    r->rng ^= r->rng << 13; // xorshift64
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static uint64_t
hash_score(uint64_t key, tp_pid p)
{
    return mix(key ^ mix(p.v + 0x9e3779b97f4a7c15ULL));
}

// The member with the highest score for `key` among those not in `skip`
// (bits by position; NULL: none skipped).
static size_t
hash_best(const tp_router *r, uint64_t key, const uint8_t *skip)
{
    size_t best = r->n;
    uint64_t top = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (skip != NULL && (skip[i / 8] >> (i % 8) & 1))
            continue;
        uint64_t s = hash_score(key, r->pids[i]);
        if (best == r->n || s > top) {
            best = i;
            top = s;
        }
    }
    return best;
}

// The local member with the fewest messages queued, ties broken from the
// round robin's turn on; the next remote one in turn when none is local.
static size_t
least_loaded(tp_router *r)
{
    size_t best = r->n;
    uint32_t depth = 0;
    for (size_t k = 0; k < r->n; k++) {
        size_t i = (r->next + k) % r->n;
        tp_actor_stats st;
        if (tp_pid_node(r->pids[i]) != 0 ||
            tp_actor_stats_get(r->sys, r->pids[i], &st) != 0)
            continue;
        if (best == r->n || st.length < depth) {
            best = i;
            depth = st.length;
            if (depth == 0)
                break;
        }
    }
    if (best == r->n)
        best = r->next % r->n;
    r->next = best + 1;
    return best;
}

// The position of the first choice for a message with `key`.
static size_t
first_choice(tp_router *r, uint64_t key)
{
    switch (r->how) {
    case TP_ROUTE_RANDOM:
        return draw(r) % r->n;
    case TP_ROUTE_LEAST_LOADED:
        return least_loaded(r);
    case TP_ROUTE_HASH:
        return hash_best(r, key, NULL);
    default: {
        size_t i = r->next % r->n;
        r->next = i + 1;
        return i;
    }
    }
}

int
tp_router_pick(tp_router *r, uint64_t key, tp_pid *out)
{
    if (r == NULL || out == NULL)
        return TP_EINVAL;
    if (refresh(r) != 0)
        return TP_ENOMEM;
    if (r->n == 0)
        return TP_ENOENT;
    *out = r->pids[first_choice(r, key)];
    return 0;
}

int
tp_router_send(tp_ctx *ctx, tp_router *r, uint64_t key, uint32_t tag,
               const void *data, size_t size, tp_pid *to)
{
    int rc = tp__check_ctx(ctx);
    if (rc == 0 && r == NULL)
        rc = TP_EINVAL;
    if (rc == 0)
        rc = tp__check_payload(tag, data, size);
    if (rc != 0)
        return rc;
    if (refresh(r) != 0)
        return TP_ENOMEM;
    if (r->n == 0)
        return TP_ENOENT;
    size_t n = r->n, i = first_choice(r, key);
    uint8_t *skip = NULL; // TP_ROUTE_HASH's members tried, by position
    for (size_t tries = 0; tries < n; tries++) {
        rc = tp_send(ctx, r->pids[i], tag, data, size);
        if (rc == 0) {
            if (to != NULL)
                *to = r->pids[i];
            if (r->how == TP_ROUTE_ROUND_ROBIN)
                r->next = i + 1; // the next turn is after the one that took it
            break;
        }
        if (rc != TP_EFULL && rc != TP_ENOACTOR)
            break; // the message itself, or memory: no member would take it
        if (r->how != TP_ROUTE_HASH) {
            i = (i + 1) % n;
            continue;
        }
        if (skip == NULL && (skip = calloc((n + 7) / 8, 1)) == NULL)
            return TP_ENOMEM;
        skip[i / 8] |= (uint8_t)(1u << (i % 8));
        i = hash_best(r, key, skip);
        if (i == n)
            break;
    }
    free(skip);
    return rc;
}
