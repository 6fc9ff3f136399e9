// SPDX-License-Identifier: MIT
// The name registry: names registered for local actors, at most one name
// per actor. Each entry is chained twice, by its name's hash for
// tp_whereis and by its pid's for the actor's side (its name in
// introspection and crash reports, dropping it at exit), so the actor
// record keeps no name of its own. Everything here runs under reg_lock,
// except the test of the actor's latch that lets one never named (most
// are) exit without taking it.
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t
name_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t
pid_hash(tp_pid pid)
{
    // Fibonacci hashing: the slot bits, which vary most, reach the top.
    return (size_t)((pid.v * 0x9e3779b97f4a7c15ull) >> 32);
}

static int
reg_grow(tp_system *sys)
{
    size_t size = sys->reg_size ? sys->reg_size * 2 : 64;
    tp__reg_entry **t = calloc(size, sizeof *t);
    tp__reg_entry **tp = calloc(size, sizeof *tp);
    if (t == NULL || tp == NULL) {
        free(t);
        free(tp);
        return TP_ENOMEM;
    }
    for (size_t i = 0; i < sys->reg_size; i++) {
        tp__reg_entry *e = sys->reg[i];
        while (e != NULL) {
            tp__reg_entry *next = e->next;
            size_t b = name_hash(e->name) & (size - 1);
            e->next = t[b];
            t[b] = e;
            b = pid_hash(e->pid) & (size - 1);
            e->pid_next = tp[b];
            tp[b] = e;
            e = next;
        }
    }
    free(sys->reg);
    free(sys->reg_pid);
    sys->reg = t;
    sys->reg_pid = tp;
    sys->reg_size = size;
    return 0;
}

static tp__reg_entry *
find_name(tp_system *sys, const char *name)
{
    if (sys->reg_size == 0)
        return NULL;
    size_t b = name_hash(name) & (sys->reg_size - 1);
    for (tp__reg_entry *e = sys->reg[b]; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static tp__reg_entry *
find_pid(tp_system *sys, tp_pid pid)
{
    if (sys->reg_size == 0)
        return NULL;
    size_t b = pid_hash(pid) & (sys->reg_size - 1);
    for (tp__reg_entry *e = sys->reg_pid[b]; e != NULL; e = e->pid_next)
        if (e->pid.v == pid.v)
            return e;
    return NULL;
}

// Takes `e` off both chains and frees it.
static void
unlink_free(tp_system *sys, tp__reg_entry *e)
{
    tp__reg_entry **p = &sys->reg[name_hash(e->name) & (sys->reg_size - 1)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    p = &sys->reg_pid[pid_hash(e->pid) & (sys->reg_size - 1)];
    while (*p != e)
        p = &(*p)->pid_next;
    *p = e->pid_next;
    free(e);
    sys->reg_count--;
}

// Registers `name` for `pid`: TP_EEXIST when the name is taken or the pid
// already has one, TP_ENOMEM; the registry is then unchanged.
static int
insert_locked(tp_system *sys, const char *name, tp_pid pid)
{
    int rc;
    if (find_name(sys, name) != NULL || find_pid(sys, pid) != NULL)
        return TP_EEXIST;
    if (sys->reg_count >= sys->reg_size && (rc = reg_grow(sys)) != 0)
        return rc;
    size_t len = strlen(name);
    tp__reg_entry *e = malloc(sizeof *e + len + 1);
    if (e == NULL)
        return TP_ENOMEM;
    memcpy(e->name, name, len + 1);
    e->pid = pid;
    size_t b = name_hash(name) & (sys->reg_size - 1);
    e->next = sys->reg[b];
    sys->reg[b] = e;
    b = pid_hash(pid) & (sys->reg_size - 1);
    e->pid_next = sys->reg_pid[b];
    sys->reg_pid[b] = e;
    sys->reg_count++;
    return 0;
}

// Marks `a` as named, before a name goes in under reg_lock, so that its
// drop takes the lock; returns whether its name was dropped already.
static bool
mark_named(tp_actor *a)
{
    // seq_cst: against tp__reg_drop's, on the same byte: whichever comes
    // first, the other sees it.
    return atomic_fetch_or_explicit(&a->latch, TP__LATCH_NAMED,
                                    memory_order_seq_cst) &
           TP__LATCH_UNNAMED;
}

// The name given at spawn, before init: a kill may have reached the new
// pid and dropped its name already, but the actor's own exit, which
// always follows, drops this one (NAMED is set), so the spawn goes on and
// the kill ends the actor, as it would a moment later.
int
tp__reg_insert(tp_actor *a, const char *name)
{
    tp_system *sys = a->system;
    pthread_mutex_lock(&sys->reg_lock);
    (void)mark_named(a); // dropped or not, its exit drops this name
    int rc = insert_locked(sys, name, a->pid);
    pthread_mutex_unlock(&sys->reg_lock);
    return rc;
}

// Releases the name of an actor that is going away, if it has one, and
// lets it take no other. An actor never named (most are) takes no lock.
// One that was takes it even when another drop came first (a kill's,
// while the actor exits): the second waits for the first to finish, so
// the name is gone before the actor's exit is announced.
void
tp__reg_drop(tp_actor *a)
{
    tp_system *sys = a->system;
    // seq_cst: see mark_named. A name going in before this finds
    // NAMED set, and we wait for it under the lock; after this, none can
    // but the spawn's (see tp__reg_insert).
    uint8_t was = atomic_fetch_or_explicit(&a->latch, TP__LATCH_UNNAMED,
                                           memory_order_seq_cst);
    if (!(was & TP__LATCH_NAMED))
        return;
    pthread_mutex_lock(&sys->reg_lock);
    tp__reg_entry *e = find_pid(sys, a->pid);
    if (e != NULL)
        unlink_free(sys, e);
    pthread_mutex_unlock(&sys->reg_lock);
}

// Copies the actor's registered name ("" if none); names change under
// reg_lock, from any thread.
void
tp__reg_name(tp_actor *a, char out[TP_NAME_MAX + 1])
{
    pthread_mutex_lock(&a->system->reg_lock);
    tp__reg_entry *e = find_pid(a->system, a->pid);
    snprintf(out, TP_NAME_MAX + 1, "%s", e ? e->name : "");
    pthread_mutex_unlock(&a->system->reg_lock);
}

static bool
on_worker_of(tp_system *sys)
{
    return tp__self.worker != NULL && tp__self.worker->sys == sys;
}

static bool
name_ok(const char *name)
{
    return name != NULL && name[0] != '\0' && strlen(name) <= TP_NAME_MAX;
}

int
tp_register(tp_system *sys, const char *name, tp_pid pid)
{
    if (sys == NULL || !name_ok(name))
        return TP_EINVAL;
    bool ext = !on_worker_of(sys);
    if (ext)
        pthread_rwlock_rdlock(&sys->ext_lock);
    int rc = TP_ENOACTOR;
    tp_actor *a = tp__actor_lookup(sys, pid);
    if (a != NULL) {
        pthread_mutex_lock(&sys->reg_lock);
        // A dying actor has dropped its name already, or will (it is
        // dead), and must not get one.
        if (atomic_load_explicit(&a->dead, memory_order_acquire) ||
            mark_named(a))
            rc = TP_ENOACTOR;
        else
            rc = insert_locked(sys, name, pid);
        pthread_mutex_unlock(&sys->reg_lock);
    }
    if (ext)
        pthread_rwlock_unlock(&sys->ext_lock);
    return rc;
}

int
tp_unregister(tp_system *sys, const char *name)
{
    if (sys == NULL || !name_ok(name))
        return TP_EINVAL;
    pthread_mutex_lock(&sys->reg_lock);
    tp__reg_entry *e = find_name(sys, name);
    if (e != NULL)
        unlink_free(sys, e);
    pthread_mutex_unlock(&sys->reg_lock);
    return e != NULL ? 0 : TP_ENOACTOR;
}

void
tp__reg_free(tp_system *sys)
{
    for (size_t i = 0; i < sys->reg_size; i++) {
        while (sys->reg[i] != NULL) {
            tp__reg_entry *e = sys->reg[i];
            sys->reg[i] = e->next;
            free(e);
        }
    }
    free(sys->reg);
    free(sys->reg_pid);
    sys->reg = sys->reg_pid = NULL;
    sys->reg_size = sys->reg_count = 0;
}

int
tp_whereis(tp_system *sys, const char *name, tp_pid *out)
{
    if (sys == NULL || name == NULL || out == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&sys->reg_lock);
    tp__reg_entry *e = find_name(sys, name);
    if (e != NULL)
        *out = e->pid;
    pthread_mutex_unlock(&sys->reg_lock);
    return e != NULL ? 0 : TP_ENOACTOR;
}
