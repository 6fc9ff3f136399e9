// SPDX-License-Identifier: MIT
// The supervisor's children: the table in start order, the pid -> child
// map that keeps an exit O(1) in a storm, starting one child, and the
// restart-intensity window.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_server.h"

// ---- children --------------------------------------------------------------

// Keys only grow and removals keep the order: a binary search finds one.
child *
tp__sup_by_key(sup *s, uint64_t key)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->kids[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->kids[lo].key == key ? &s->kids[lo] : NULL;
}

static size_t
map_slot(const sup *s, tp_pid pid)
{
    // Fibonacci hashing spreads the slot and generation bits.
    return (size_t)((pid.v * UINT64_C(0x9e3779b97f4a7c15)) >> 32) &
           (s->map_cap - 1);
}

// Makes room for one more running child; TP_ENOMEM if there is none.
static int
map_reserve(sup *s)
{
    if (2 * (s->map_n + 1) <= s->map_cap)
        return 0;
    size_t cap = s->map_cap ? 2 * s->map_cap : 16;
    tp_pid *pids = calloc(cap, sizeof *pids);
    uint64_t *keys = calloc(cap, sizeof *keys);
    if (pids == NULL || keys == NULL) {
        free(pids);
        free(keys);
        return TP_ENOMEM;
    }
    tp_pid *old_pids = s->map_pid;
    uint64_t *old_keys = s->map_key;
    size_t old_cap = s->map_cap;
    s->map_pid = pids;
    s->map_key = keys;
    s->map_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (tp_pid_is_nil(old_pids[i]))
            continue;
        size_t j = map_slot(s, old_pids[i]);
        while (!tp_pid_is_nil(pids[j]))
            j = (j + 1) & (cap - 1);
        pids[j] = old_pids[i];
        keys[j] = old_keys[i];
    }
    free(old_pids);
    free(old_keys);
    return 0;
}

// Adds `pid` -> `key`; map_reserve made room.
static void
map_put(sup *s, tp_pid pid, uint64_t key)
{
    size_t j = map_slot(s, pid);
    while (!tp_pid_is_nil(s->map_pid[j]))
        j = (j + 1) & (s->map_cap - 1);
    s->map_pid[j] = pid;
    s->map_key[j] = key;
    s->map_n++;
}

// The slot holding `pid`, or map_cap when it is not there.
static size_t
map_find(const sup *s, tp_pid pid)
{
    if (s->map_cap == 0 || tp_pid_is_nil(pid))
        return s->map_cap;
    for (size_t j = map_slot(s, pid); !tp_pid_is_nil(s->map_pid[j]);
         j = (j + 1) & (s->map_cap - 1))
        if (tp_pid_eq(s->map_pid[j], pid))
            return j;
    return s->map_cap;
}

// Removes `pid`, shifting back the entries after it that probed past it.
static void
map_del(sup *s, tp_pid pid)
{
    size_t hole = map_find(s, pid);
    if (hole == s->map_cap)
        return;
    size_t mask = s->map_cap - 1;
    for (size_t j = (hole + 1) & mask; !tp_pid_is_nil(s->map_pid[j]);
         j = (j + 1) & mask) {
        size_t home = map_slot(s, s->map_pid[j]);
        // Movable when its home is not in (hole, j], cyclically.
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->map_pid[hole] = s->map_pid[j];
            s->map_key[hole] = s->map_key[j];
            hole = j;
        }
    }
    s->map_pid[hole] = TP_PID_NIL;
    s->map_n--;
}

child *
tp__sup_by_pid(sup *s, tp_pid pid)
{
    size_t j = map_find(s, pid); // nil: from outside, not a stopped child
    return j == s->map_cap ? NULL : tp__sup_by_key(s, s->map_key[j]);
}

// `c` is no longer running.
void
tp__sup_set_down(sup *s, child *c)
{
    map_del(s, c->pid);
    c->last_pid = c->pid;
    c->pid = TP_PID_NIL;
}

// Whether `c`'s registered name still belongs to its previous incarnation:
// the runtime sends a dead actor's exit signals before it releases the
// name, so restarting at once would fail with TP_EEXIST.
bool
tp__sup_name_still_held(tp_ctx *ctx, const child *c)
{
    tp_pid holder;
    return c->name[0] != '\0' && !tp_pid_is_nil(c->last_pid) &&
           tp_whereis(tp_ctx_system(ctx), c->name, &holder) == 0 &&
           tp_pid_eq(holder, c->last_pid);
}

child *
tp__sup_by_id(sup *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->kids[i].id, id) == 0)
            return &s->kids[i];
    return NULL;
}

size_t
tp__sup_index_of(sup *s, const child *c)
{
    return (size_t)(c - s->kids);
}

void
tp__sup_remove_child(sup *s, child *c)
{
    tp__sup_child_free(c);
    size_t i = tp__sup_index_of(s, c);
    memmove(&s->kids[i], &s->kids[i + 1], (s->n - i - 1) * sizeof *c);
    s->n--;
}

int32_t
tp__sup_shutdown_ms(const tp_child_spec *c)
{
    if (c->shutdown != TP_SHUTDOWN_DEFAULT)
        return c->shutdown;
    return c->type == TP_SUPERVISOR ? TP_SHUTDOWN_INFINITY : 5000;
}

// Checks one spec; logs and returns TP_EINVAL when it is bad.
int
tp__sup_check_spec(tp_system *sys, const tp_child_spec *c)
{
    const char *why = NULL;
    if (c->id == NULL || c->id[0] == '\0' || strlen(c->id) >= ID_MAX)
        why = "id missing or longer than 63 bytes";
    else if (c->behaviour == NULL || c->behaviour->handle == NULL)
        why = "no behaviour";
    else if (c->opts.name != NULL && strlen(c->opts.name) > TP_NAME_MAX)
        why = "name longer than 63 bytes";
    else if ((unsigned)c->restart > TP_TEMPORARY)
        why = "bad restart type";
    else if ((unsigned)c->type > TP_SUPERVISOR)
        why = "bad child type";
    else if (c->shutdown < TP_SHUTDOWN_BRUTAL_KILL)
        why = "bad shutdown value";
    else if (c->significant && c->restart == TP_PERMANENT)
        why = "a permanent child cannot be significant";
    if (why == NULL)
        return 0;
    tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
              "supervisor: invalid child spec id=%s: %s",
              c->id ? c->id : "(null)", why);
    return TP_EINVAL;
}

// ---- nested supervisors' specs ---------------------------------------------
//
// A child that is a supervisor gets its spec as its `arg`, and reads it
// again at each restart. The caller's spec (and the specs of supervisors
// under it) may be static in a module that an upgrade replaces: so the
// parent keeps a deep copy of it, whose behaviours the upgrade changes
// (tp_sup_upgrade) and which no longer points into the module, but for
// the leaves' own `arg`s (tp_sup_refs counts those).

typedef struct spec_copy {
    tp_sup_spec spec; // first: what the child's `arg` points to
    tp_child_spec *kids;
    bool *owned; // kids[i].arg is a spec_copy too
} spec_copy;

// Deeper: a spec that contains itself (supervisor.h says so). A spec that
// appears at several places is copied at each.
#define COPY_DEPTH 32

static bool
nested(const tp_child_spec *c)
{
    return c->behaviour == &tp_supervisor && c->arg != NULL;
}

static void
copy_free(spec_copy *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; k->kids != NULL && i < k->spec.nchildren; i++) {
        free((void *)k->kids[i].id);
        free((void *)k->kids[i].opts.name);
        if (k->owned[i])
            copy_free(k->kids[i].arg);
    }
    free(k->kids);
    free(k->owned);
    free(k);
}

static char *
str_dup(const char *s, bool *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    *ok = *ok && d != NULL;
    return d;
}

// A copy of `src` and the specs nested in it, or NULL with `*err` set:
// TP_EINVAL past COPY_DEPTH levels (a spec that contains itself), else
// TP_ENOMEM.
static spec_copy *
copy_of(const tp_sup_spec *src, int depth, int *err)
{
    *err = TP_EINVAL;
    if (depth >= COPY_DEPTH)
        return NULL;
    *err = TP_ENOMEM;
    spec_copy *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->spec = *src;
    size_t n = src->children != NULL ? src->nchildren : 0;
    if (n == 0) {
        k->spec.children = NULL; // init refuses what needs children
        return k;
    }
    k->kids = calloc(n, sizeof *k->kids);
    k->owned = calloc(n, sizeof *k->owned);
    k->spec.children = k->kids;
    bool ok = k->kids != NULL && k->owned != NULL;
    if (!ok) {
        k->spec.nchildren = 0;
        copy_free(k);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        tp_child_spec *c = &k->kids[i];
        *c = src->children[i];
        c->id = str_dup(c->id, &ok);
        c->opts.name = str_dup(c->opts.name, &ok);
        if (ok && nested(c)) {
            c->arg = copy_of(c->arg, depth + 1, err);
            k->owned[i] = ok = c->arg != NULL;
        }
        if (!ok) {
            k->spec.nchildren = i + 1; // what copy_free may look at
            copy_free(k);
            return NULL;
        }
    }
    return k;
}

void
tp__sup_child_free(child *c)
{
    if (c->owns_arg)
        copy_free(c->spec.arg);
    c->owns_arg = false;
    c->spec.arg = NULL;
}

static int32_t
copy_upgrade(spec_copy *k, const tp_code_change *ch, size_t n)
{
    int32_t changed = 0;
    for (size_t i = 0; k->kids != NULL && i < k->spec.nchildren; i++) {
        for (size_t c = 0; c < n; c++)
            if (k->kids[i].behaviour == ch[c].from) {
                k->kids[i].behaviour = ch[c].to;
                changed++;
                break;
            }
        if (k->owned[i])
            changed += copy_upgrade(k->kids[i].arg, ch, n);
    }
    return changed;
}

int32_t
tp__sup_copy_upgrade(const child *c, const tp_code_change *ch, size_t n)
{
    return c->owns_arg ? copy_upgrade(c->spec.arg, ch, n) : 0;
}

static bool
within(uintptr_t lo, uintptr_t hi, uintptr_t p)
{
    return p >= lo && p < hi;
}

bool
tp__sup_spec_refs(const tp_child_spec *c, uintptr_t lo, uintptr_t hi)
{
    const tp_behaviour *b = c->behaviour;
    return within(lo, hi, (uintptr_t)b) ||
           (b != NULL && (within(lo, hi, (uintptr_t)b->handle) ||
                          within(lo, hi, (uintptr_t)b->init) ||
                          within(lo, hi, (uintptr_t)b->terminate) ||
                          within(lo, hi, (uintptr_t)b->describe))) ||
           within(lo, hi, (uintptr_t)c->arg);
}

static int32_t
copy_refs(const spec_copy *k, uintptr_t lo, uintptr_t hi)
{
    int32_t refs = 0;
    for (size_t i = 0; k->kids != NULL && i < k->spec.nchildren; i++) {
        refs += tp__sup_spec_refs(&k->kids[i], lo, hi);
        if (k->owned[i])
            refs += copy_refs(k->kids[i].arg, lo, hi);
    }
    return refs;
}

int32_t
tp__sup_copy_refs(const child *c, uintptr_t lo, uintptr_t hi)
{
    return c->owns_arg ? copy_refs(c->spec.arg, lo, hi) : 0;
}

// Appends a child from `spec`, named `id` and registered as `name` (NULL
// for none); a non-NULL `arg` replaces the spec's. Any of them may point
// into s->kids, which this may move: they are copied first. NULL, with
// `*err` TP_ENOMEM or TP_EINVAL (a nested spec that contains itself),
// when the child cannot be added.
child *
tp__sup_add_child(sup *s, const tp_child_spec *spec, const char *id,
                  const char *name, void *arg, int *err)
{
    *err = TP_ENOMEM;
    tp_child_spec sp = *spec;
    char idc[ID_MAX], namec[TP_NAME_MAX + 1];
    snprintf(idc, sizeof idc, "%s", id);
    snprintf(namec, sizeof namec, "%s", name ? name : "");
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        child *k = realloc(s->kids, cap * sizeof *k);
        if (k == NULL)
            return NULL;
        s->kids = k;
        s->cap = cap;
    }
    child *c = &s->kids[s->n++];
    memset(c, 0, sizeof *c);
    c->spec = sp;
    memcpy(c->id, idc, sizeof c->id);
    memcpy(c->name, namec, sizeof c->name);
    // The caller's strings may not outlive this call: keep copies.
    c->spec.id = NULL;
    c->spec.opts.name = NULL;
    if (arg != NULL)
        c->spec.arg = arg;
    if (nested(&c->spec)) {
        if ((c->spec.arg = copy_of(c->spec.arg, 0, err)) == NULL) {
            if (*err == TP_EINVAL)
                tp_log_as(s->sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                          "supervisor: child spec id=%s: supervisors nested "
                          "over %d deep (a spec that contains itself)",
                          idc, COPY_DEPTH);
            else
                tp_log_as(s->sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                          "supervisor: child spec id=%s: its spec cannot be "
                          "copied (out of memory)",
                          idc);
            s->n--;
            return NULL;
        }
        c->owns_arg = true;
    }
    c->key = ++s->next_key;
    return c;
}

// Starts `c`, linked to us. Returns 0 (also when its init declined: then
// its pid stays nil) or the child's init error.
int
tp__sup_start(tp_ctx *ctx, sup *s, child *c)
{
    tp_spawn_opts o = c->spec.opts;
    o.name = c->name[0] ? c->name : NULL;
    o.link = true;
    o.restarts = c->restarts;
    c->waiting = false;
    c->retry = false;
    // Room in the pid map first: a running child we could not find would
    // look like an outsider when it exits.
    int rc = map_reserve(s);
    if (rc == 0)
        rc = tp_spawn(tp_ctx_system(ctx), c->spec.behaviour, c->spec.arg, &o,
                      &c->pid);
    if (rc != 0)
        c->pid = TP_PID_NIL;
    if (!tp_pid_is_nil(c->pid)) {
        map_put(s, c->pid, c->key);
        c->started_at = tp__sup_now_ms(s);
    }
    // A child whose init declines (OTP's ignore) keeps its spec, not
    // running; that is not a failure.
    return rc == TP_EIGNORED ? 0 : rc;
}

// ---- restart intensity -----------------------------------------------------

// Records a restart; returns false when more than `intensity` happened
// within `period_ms` (counted across all children).
bool
tp__sup_add_restart(sup *s)
{
    int64_t now = tp__sup_now_ms(s);
    while (s->nstamps > 0 &&
           now - s->stamps[s->head] >= (int64_t)s->flags.period_ms) {
        s->head = (s->head + 1) % s->capstamps;
        s->nstamps--;
    }
    if (s->nstamps == s->capstamps) {
        size_t cap = s->capstamps ? s->capstamps * 2 : 8;
        int64_t *st = malloc(cap * sizeof *st);
        if (st == NULL)
            return false; // no memory to count: give up as if exceeded
        for (size_t i = 0; i < s->nstamps; i++)
            st[i] = s->stamps[(s->head + i) % s->capstamps];
        free(s->stamps);
        s->stamps = st;
        s->capstamps = cap;
        s->head = 0;
    }
    s->stamps[(s->head + s->nstamps++) % s->capstamps] = now;
    return s->nstamps <= (size_t)s->flags.intensity;
}

size_t
tp__sup_restarts_in_window(const sup *s)
{
    int64_t now = tp__sup_now_ms(s);
    size_t n = 0;
    for (size_t i = 0; i < s->nstamps; i++)
        n += now - s->stamps[(s->head + i) % s->capstamps] <
             (int64_t)s->flags.period_ms;
    return n;
}
