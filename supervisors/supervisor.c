// SPDX-License-Identifier: MIT
// The supervisor behaviour, written only on the public API. It traps
// exits, links to each child at spawn and reacts to their exit signals
// with OTP's strategies and restart-intensity rule. Stopping children is a
// sequence driven by messages (each child's exit signal, or its shutdown
// timer), never a blocking wait: while a sequence runs, further exits are
// noted and management calls queued, then handled when it ends. The one
// exception is a start that fails in init, which cannot receive messages:
// a reaper (sup_reaper.c) stops the children started so far, and init
// waits for it only where the thread may block. The calls' client side is
// in sup_calls.c.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

#include "sup_impl.h"

#define ID_MAX TP__SUP_ID_MAX

// Private message tags of the supervisor alone; the calls' are in
// sup_impl.h.
enum {
    TAG_KILL_TIMER = TP__SUP_KILL_TIMER, // data: tp_pid: its time is up
    TAG_RESTART = TP__SUP_RESTART,       // data: uint64_t child key
};

typedef tp__sup_start_req start_req;
typedef tp__sup_id_req id_req;
typedef tp__sup_answer answer;

typedef struct child {
    tp_child_spec spec; // id and opts.name are NULL: see id and name
    char id[ID_MAX];
    char name[TP_NAME_MAX + 1]; // registered name, or ""
    uint64_t key;               // never reused: names the child in timers
    tp_pid pid;                 // TP_PID_NIL when not running
    tp_pid last_pid;            // its previous incarnation, or nil
    uint32_t restarts;
    uint32_t streak;    // restarts in a row, for backoff
    uint32_t backoff;   // ms its pending restart waited for backoff (log)
    int64_t started_at; // when it last started (ms), for backoff
    bool waiting;       // a delayed restart is pending
    bool retry;         // its last start failed; the next try counts
    bool deferred;      // its restart came due during a stop sequence
} child;

// A pending management call, answered with tp_reply_to.
typedef struct call {
    tp_pid from;
    uint64_t ref;
    uint32_t tag;
    union {
        start_req start; // TP__SUP_CALL_START
        id_req id;       // TP__SUP_CALL_TERMINATE, _RESTART, _DELETE
    } req;
} call;

enum { CONT_NONE, CONT_RESTART, CONT_ANSWER, CONT_EXIT };

typedef struct sup {
    tp_sup_flags flags;
    child *kids; // in start order, which is also ascending key order
    size_t n, cap;
    uint64_t next_key;
    // Running children's pids -> keys: open addressing, linear probing,
    // at most half full, so that an exit in a storm of thousands is O(1).
    tp_pid *map_pid; // TP_PID_NIL: free
    uint64_t *map_key;
    size_t map_cap, map_n;
    // Restart times (ms) within the period, oldest first, in a ring that
    // grows with the restarts inside the window (not with the intensity,
    // which may be huge): expiring them is O(1) per restart.
    int64_t *stamps;
    size_t head, nstamps, capstamps;
    unsigned seed;

    // The stop sequence in progress, if any.
    bool busy;
    uint64_t *stop; // child keys, in stopping order
    size_t nstop, stop_at;
    tp_pid target; // child being stopped now, or nil
    tp_timer kill_timer;
    int cont;        // what to do when the sequence ends
    int exit_reason; // CONT_EXIT
    uint64_t *again; // CONT_RESTART: keys to restart, in start order
    size_t nagain;
    uint32_t again_delay; // CONT_RESTART: backoff before restarting them
    call answer_to;       // CONT_ANSWER: the terminate call

    // Work that arrived during a sequence.
    uint64_t *exited; // keys of children that exited meanwhile
    int *exited_reason;
    size_t nexited, capexited;
    call *calls;
    size_t ncalls, capcalls;
} sup;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
strategy_name(tp_strategy s)
{
    static const char *const names[] = {"one_for_one", "one_for_all",
                                        "rest_for_one", "simple_one_for_one"};
    return (unsigned)s < 4 ? names[s] : "?";
}

#define NO_REASON TP__SUP_NO_REASON

void
tp__sup_log(tp_system *sys, int level, tp_pid sup_pid, const char *what,
            const char *id, tp_pid child_pid, const char *behaviour,
            int reason, uint32_t restarts, const char *tail)
{
    char me[TP_PID_STRLEN], pid[TP_PID_STRLEN], why[80] = "";
    tp_pid_format(sup_pid, me, sizeof me);
    tp_pid_format(child_pid, pid, sizeof pid);
    if (reason != NO_REASON) {
        memcpy(why, " reason=", 8);
        tp_reason_format(reason, why + 8, sizeof why - 8);
    }
    tp_log_as(sys, level, TP_LOG_RUNTIME,
           "supervisor %s: %s child=%s pid=%s behaviour=%s%s restarts=%u%s",
           me, what, id, pid, behaviour, why, restarts, tail);
}

// One log line per event about child `c` (its id is a simple_one_for_one
// child's template's), ending in `tail`.
static void
log_line(tp_ctx *ctx, int level, const char *what, const child *c, int reason,
         const char *tail)
{
    tp__sup_log(tp_ctx_system(ctx), level, tp_self(ctx), what, c->id, c->pid,
                c->spec.behaviour->name, reason, c->restarts, tail);
}

static void
log_child(tp_ctx *ctx, int level, const char *what, const child *c, int reason)
{
    log_line(ctx, level, what, c, reason, "");
}

// A restart's line also says how long backoff delayed it.
static void
log_restarted(tp_ctx *ctx, const child *c)
{
    char tail[32];
    snprintf(tail, sizeof tail, " backoff_ms=%u", c->backoff);
    log_line(ctx, TP_LOG_INFO, "restarted", c, NO_REASON, tail);
}

// ---- children --------------------------------------------------------------

// Keys only grow and removals keep the order: a binary search finds one.
static child *
by_key(sup *s, uint64_t key)
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

static child *
by_pid(sup *s, tp_pid pid)
{
    size_t j = map_find(s, pid); // nil: from outside, not a stopped child
    return j == s->map_cap ? NULL : by_key(s, s->map_key[j]);
}

// `c` is no longer running.
static void
set_down(sup *s, child *c)
{
    map_del(s, c->pid);
    c->last_pid = c->pid;
    c->pid = TP_PID_NIL;
}

// Whether `c`'s registered name still belongs to its previous incarnation:
// the runtime sends a dead actor's exit signals before it releases the
// name, so restarting at once would fail with TP_EEXIST.
static bool
name_still_held(tp_ctx *ctx, const child *c)
{
    tp_pid holder;
    return c->name[0] != '\0' && !tp_pid_is_nil(c->last_pid) &&
           tp_whereis(tp_ctx_system(ctx), c->name, &holder) == 0 &&
           tp_pid_eq(holder, c->last_pid);
}

static child *
by_id(sup *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->kids[i].id, id) == 0)
            return &s->kids[i];
    return NULL;
}

static size_t
index_of(sup *s, const child *c)
{
    return (size_t)(c - s->kids);
}

static void
remove_child(sup *s, child *c)
{
    size_t i = index_of(s, c);
    memmove(&s->kids[i], &s->kids[i + 1], (s->n - i - 1) * sizeof *c);
    s->n--;
}

static int32_t
shutdown_ms(const tp_child_spec *c)
{
    if (c->shutdown != TP_SHUTDOWN_DEFAULT)
        return c->shutdown;
    return c->type == TP_SUPERVISOR ? TP_SHUTDOWN_INFINITY : 5000;
}

// Checks one spec; logs and returns TP_EINVAL when it is bad.
static int
check_spec(tp_system *sys, const tp_child_spec *c)
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
    else if (c->shutdown < TP_SHUTDOWN_INFINITY)
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

// Appends a child from `spec`, named `id` and registered as `name` (NULL
// for none); a non-NULL `arg` replaces the spec's. Any of them may point
// into s->kids, which this may move: they are copied first.
static child *
add_child(sup *s, const tp_child_spec *spec, const char *id, const char *name,
          void *arg)
{
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
    c->key = ++s->next_key;
    return c;
}

// Starts `c`, linked to us. Returns 0 (also when its init declined: then
// its pid stays nil) or the child's init error.
static int
start(tp_ctx *ctx, sup *s, child *c)
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
        rc = tp_spawn(tp_ctx_system(ctx), &c->pid, c->spec.behaviour,
                      c->spec.arg, &o);
    if (rc != 0)
        c->pid = TP_PID_NIL;
    if (!tp_pid_is_nil(c->pid)) {
        map_put(s, c->pid, c->key);
        c->started_at = now_ms();
    }
    // A child whose init declines (OTP's ignore) keeps its spec, not
    // running; that is not a failure.
    return rc == TP_EIGNORED ? 0 : rc;
}

// ---- restart intensity -----------------------------------------------------

// Records a restart; returns false when more than `intensity` happened
// within `period_ms` (counted across all children).
static bool
add_restart(sup *s)
{
    int64_t now = now_ms();
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

static size_t
restarts_in_window(const sup *s)
{
    int64_t now = now_ms();
    size_t n = 0;
    for (size_t i = 0; i < s->nstamps; i++)
        n += now - s->stamps[(s->head + i) % s->capstamps] <
             (int64_t)s->flags.period_ms;
    return n;
}

// ---- stop sequences --------------------------------------------------------

static void finish_sequence(tp_ctx *ctx, sup *s);

// Sends the next child in the sequence its shutdown; ends the sequence
// when none is left.
static void
stop_next(tp_ctx *ctx, sup *s)
{
    while (s->stop_at < s->nstop) {
        child *c = by_key(s, s->stop[s->stop_at]);
        if (c == NULL || tp_pid_is_nil(c->pid)) {
            s->stop_at++;
            continue;
        }
        int32_t ms = shutdown_ms(&c->spec);
        s->target = c->pid;
        s->kill_timer = 0;
        if (ms == TP_SHUTDOWN_BRUTAL_KILL) {
            tp_exit(ctx, c->pid, TP_REASON_KILL);
        } else {
            tp_exit(ctx, c->pid, TP_REASON_SHUTDOWN);
            if (ms != TP_SHUTDOWN_INFINITY)
                tp_send_after(ctx, tp_self(ctx), (uint32_t)ms, TAG_KILL_TIMER,
                              &c->pid, sizeof c->pid, &s->kill_timer);
        }
        return; // its exit signal moves us on
    }
    s->target = TP_PID_NIL;
    finish_sequence(ctx, s);
}

// Starts stopping the children with keys `keys` (in that order). Returns
// TP_ENOMEM if it could not.
static int
begin_sequence(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n, int cont)
{
    uint64_t *stop = malloc((n ? n : 1) * sizeof *stop);
    if (stop == NULL)
        return TP_ENOMEM;
    memcpy(stop, keys, n * sizeof *stop);
    free(s->stop);
    s->stop = stop;
    s->nstop = n;
    s->stop_at = 0;
    s->busy = true;
    s->cont = cont;
    stop_next(ctx, s);
    return 0;
}

// Keys of the running children from index `from` on, last started first.
static uint64_t *
running_reversed(sup *s, size_t from, size_t *n)
{
    uint64_t *k = malloc((s->n ? s->n : 1) * sizeof *k);
    *n = 0;
    if (k == NULL)
        return NULL;
    for (size_t i = s->n; i-- > from;)
        if (!tp_pid_is_nil(s->kids[i].pid))
            k[(*n)++] = s->kids[i].key;
    return k;
}

// Stops every child, last started first, then exits with `reason`. A
// sequence already running is taken over: its current child still stops.
static void
shut_down(tp_ctx *ctx, sup *s, int reason)
{
    size_t n;
    uint64_t *keys = running_reversed(s, 0, &n);
    s->exit_reason = reason;
    if (keys == NULL) {
        tp_stop_reason(ctx, reason);
        return;
    }
    free(s->again);
    s->again = NULL;
    s->nagain = 0;
    if (s->cont == CONT_ANSWER) { // the terminate call still gets its answer
        answer a = {TP_ESHUTDOWN, TP_PID_NIL};
        tp_reply_to(ctx, s->answer_to.from, s->answer_to.ref, TP__SUP_ANSWER,
                    &a, sizeof a);
    }
    if (s->busy && !tp_pid_is_nil(s->target)) {
        // Keep waiting for the current one; the rest follow.
        free(s->stop);
        s->stop = keys;
        s->nstop = n;
        s->stop_at = 0;
        s->cont = CONT_EXIT;
        return;
    }
    begin_sequence(ctx, s, keys, n, CONT_EXIT);
    free(keys);
}

// ---- restarting ------------------------------------------------------------

static void handle_exit_of(tp_ctx *ctx, sup *s, child *c, int reason);

// Delay before `c`'s next restart under backoff, in ms (0: at once): the
// minimum doubled for each restart in its streak, capped by the maximum
// (a zero maximum keeps the minimum), with +-25 % jitter.
static uint32_t
backoff_ms(sup *s, child *c)
{
    if (s->flags.backoff_min_ms == 0)
        return 0;
    uint64_t d = s->flags.backoff_min_ms;
    for (uint32_t i = 1; i < c->streak && d < s->flags.backoff_max_ms; i++)
        d *= 2;
    if (s->flags.backoff_max_ms && d > s->flags.backoff_max_ms)
        d = s->flags.backoff_max_ms;
    // +-25 % jitter.
    int64_t j = (int64_t)(d / 4);
    if (j > 0)
        d = (uint64_t)((int64_t)d - j +
                       (int64_t)(rand_r(&s->seed) % (unsigned)(2 * j + 1)));
    return (uint32_t)d;
}

// Counts one more restart in `c`'s streak; a child that ran a whole period
// since it last started begins a new streak (a failed start continues it).
static void
grow_streak(sup *s, child *c)
{
    if (!c->retry && now_ms() - c->started_at >= (int64_t)s->flags.period_ms)
        c->streak = 0;
    c->streak++;
}

// Asks ourselves to restart `c` (and, for one_for_all and rest_for_one,
// the waiting children after it) after `delay` ms, or now if 0.
static void
schedule_restart(tp_ctx *ctx, const child *c, uint32_t delay)
{
    if (delay > 0)
        tp_send_after(ctx, tp_self(ctx), delay, TAG_RESTART, &c->key,
                      sizeof c->key, NULL);
    else
        tp_send(ctx, tp_self(ctx), TAG_RESTART, &c->key, sizeof c->key);
}

// Marks the children keys[from..n) as waiting for the one before them,
// which comes back after `backoff` ms of backoff.
static void
wait_behind(sup *s, const uint64_t *keys, size_t from, size_t n,
            uint32_t backoff)
{
    for (size_t k = from; k < n; k++) {
        child *d = by_key(s, keys[k]);
        if (d != NULL) {
            d->waiting = true; // restarted when the one before comes back
            d->backoff = backoff;
        }
    }
}

// Restarts the children with keys `keys` in order; on a failure, the rest
// wait for a retry (which counts toward the intensity like a restart, and
// is delayed like one under backoff).
static void
restart_set(tp_ctx *ctx, sup *s, const uint64_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        child *c = by_key(s, keys[i]);
        if (c == NULL || !tp_pid_is_nil(c->pid))
            continue;
        if (name_still_held(ctx, c)) {
            // Not a failure: ask again once the old one is fully gone.
            c->waiting = true;
            schedule_restart(ctx, c, 0);
            wait_behind(s, keys, i + 1, n, c->backoff);
            return;
        }
        c->restarts++; // before the spawn: introspection shows it
        int rc = start(ctx, s, c);
        if (rc == 0) {
            tp_count_event(tp_ctx_system(ctx), TP_EVENT_RESTART);
            log_restarted(ctx, c);
            c->backoff = 0;
            continue;
        }
        c->restarts--;
        log_child(ctx, TP_LOG_ERR, "restart failed", c, rc);
        // Try again through our mailbox, from this child on.
        c->waiting = true;
        c->retry = true;
        grow_streak(s, c);
        c->backoff = backoff_ms(s, c);
        schedule_restart(ctx, c, c->backoff);
        wait_behind(s, keys, i + 1, n, c->backoff);
        return;
    }
}

// After a child exit that calls for a restart, applies the strategy.
static void
restart_for(tp_ctx *ctx, sup *s, child *c)
{
    if (!add_restart(s)) {
        tp_count_event(tp_ctx_system(ctx), TP_EVENT_INTENSITY_EXCEEDED);
        log_child(ctx, TP_LOG_ERR, "reached_max_restart_intensity", c,
                  TP_REASON_SHUTDOWN);
        shut_down(ctx, s, TP_REASON_SHUTDOWN);
        return;
    }
    grow_streak(s, c);
    uint32_t delay = backoff_ms(s, c);
    switch (s->flags.strategy) {
    case TP_ONE_FOR_ONE:
    case TP_SIMPLE_ONE_FOR_ONE:
        c->waiting = true;
        c->backoff = delay;
        if (delay > 0)
            schedule_restart(ctx, c, delay);
        else
            restart_set(ctx, s, &c->key, 1);
        return;
    case TP_ONE_FOR_ALL:
    case TP_REST_FOR_ONE: {
        size_t from = s->flags.strategy == TP_ONE_FOR_ALL ? 0 : index_of(s, c);
        size_t n = 0;
        uint64_t *again = malloc((s->n - from) * sizeof *again);
        if (again == NULL) {
            shut_down(ctx, s, TP_ENOMEM);
            return;
        }
        for (size_t i = from; i < s->n; i++)
            again[n++] = s->kids[i].key;
        size_t nstop;
        uint64_t *stop = running_reversed(s, from, &nstop);
        if (stop == NULL) {
            free(again);
            shut_down(ctx, s, TP_ENOMEM);
            return;
        }
        for (size_t i = from; i < s->n; i++)
            s->kids[i].waiting = true;
        free(s->again);
        s->again = again;
        s->nagain = n;
        s->again_delay = delay;
        begin_sequence(ctx, s, stop, nstop, CONT_RESTART);
        free(stop);
        return;
    }
    }
}

// Whether `c`, having exited with `reason`, is to be restarted.
static bool
wants_restart(const child *c, int reason)
{
    switch (c->spec.restart) {
    case TP_PERMANENT:
        return true;
    case TP_TRANSIENT:
        return reason != TP_REASON_NORMAL && reason != TP_REASON_SHUTDOWN;
    default:
        return false;
    }
}

static bool
significant_alive(sup *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].spec.significant && !tp_pid_is_nil(s->kids[i].pid))
            return true;
    return false;
}

static void
handle_exit_of(tp_ctx *ctx, sup *s, child *c, int reason)
{
    int level = reason == TP_REASON_NORMAL || reason == TP_REASON_SHUTDOWN
                    ? TP_LOG_INFO
                    : TP_LOG_ERR;
    log_child(ctx, level, "child_terminated", c, reason);
    set_down(s, c);
    bool again = wants_restart(c, reason);
    if (!again) {
        bool sig = c->spec.significant;
        if (c->spec.restart == TP_TEMPORARY ||
            s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            remove_child(s, c);
        if (sig &&
            (s->flags.auto_shutdown == TP_AUTO_SHUTDOWN_ANY_SIGNIFICANT ||
             (s->flags.auto_shutdown == TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT &&
              !significant_alive(s))))
            shut_down(ctx, s, TP_REASON_SHUTDOWN);
        return;
    }
    restart_for(ctx, s, c);
}

// ---- calls -----------------------------------------------------------------

static void
answer_call(tp_ctx *ctx, const call *k, int rc, tp_pid pid)
{
    answer a = {rc, pid};
    tp_reply_to(ctx, k->from, k->ref, TP__SUP_ANSWER, &a, sizeof a);
}

static void
do_call(tp_ctx *ctx, sup *s, const call *k)
{
    const id_req *r = &k->req.id;
    child *c;
    switch (k->tag) {
    case TP__SUP_CALL_START: {
        const start_req *q = &k->req.start;
        const tp_child_spec *spec;
        tp_child_spec local;
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE) {
            spec = &s->kids[0].spec; // the template stays at index 0
            if (q->has_spec) {
                answer_call(ctx, k, TP_EINVAL, TP_PID_NIL);
                return;
            }
        } else {
            local = q->spec;
            local.id = q->has_id ? q->id : NULL;
            local.opts.name = q->name[0] ? q->name : NULL;
            spec = &local;
            int rc =
                q->has_spec ? check_spec(tp_ctx_system(ctx), spec) : TP_EINVAL;
            if (rc == 0 && by_id(s, spec->id) != NULL)
                rc = TP_EEXIST;
            if (rc != 0) {
                answer_call(ctx, k, rc, TP_PID_NIL);
                return;
            }
        }
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            c = add_child(s, spec, s->kids[0].id, s->kids[0].name, q->arg);
        else
            c = add_child(s, spec, spec->id, spec->opts.name, NULL);
        if (c == NULL) {
            answer_call(ctx, k, TP_ENOMEM, TP_PID_NIL);
            return;
        }
        int rc = start(ctx, s, c);
        tp_pid pid = c->pid;
        if (rc != 0 ||
            (tp_pid_is_nil(pid) && s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE))
            remove_child(s, c);
        answer_call(ctx, k, rc, pid);
        return;
    }
    case TP__SUP_CALL_TERMINATE:
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            c = tp_pid_is_nil(r->pid) ? NULL : by_pid(s, r->pid);
        else
            c = by_id(s, r->id);
        if (c == NULL) {
            answer_call(ctx, k, TP_ENOENT, TP_PID_NIL);
            return;
        }
        if (tp_pid_is_nil(c->pid)) {
            c->waiting = false;
            answer_call(ctx, k, 0, TP_PID_NIL);
            return;
        }
        s->answer_to = *k;
        begin_sequence(ctx, s, &c->key, 1, CONT_ANSWER);
        return;
    case TP__SUP_CALL_RESTART:
    case TP__SUP_CALL_DELETE:
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE ||
            (c = by_id(s, r->id)) == NULL) {
            answer_call(ctx, k, TP_ENOENT, TP_PID_NIL);
            return;
        }
        if (!tp_pid_is_nil(c->pid) || c->waiting) {
            answer_call(ctx, k, TP_EEXIST, c->pid);
            return;
        }
        if (k->tag == TP__SUP_CALL_DELETE) {
            remove_child(s, c);
            answer_call(ctx, k, 0, TP_PID_NIL);
        } else {
            int rc = start(ctx, s, c);
            answer_call(ctx, k, rc, c->pid);
        }
        return;
    case TP__SUP_CALL_WHICH: {
        size_t first = s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE;
        size_t n = s->n - first;
        tp_sup_child *out = calloc(n ? n : 1, sizeof *out);
        if (out == NULL) {
            answer a = {TP_ENOMEM, TP_PID_NIL};
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
        tp_reply_to(ctx, k->from, k->ref, TP__SUP_CHILDREN, out,
                    n * sizeof *out);
        free(out);
        return;
    }
    case TP__SUP_CALL_COUNT: {
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
    }
}

// Copies the call in `msg` into `k`. Returns TP_EPERM for a call from
// another node (requests carry pointers, which mean something only in
// this process) or TP_EINVAL when the payload is not the request the tag
// names; whoever built it, its strings end inside their arrays.
static int
take_call(call *k, const tp_msg *msg)
{
    size_t want =
        msg->tag == TP__SUP_CALL_START ? sizeof k->req.start
        : msg->tag == TP__SUP_CALL_WHICH || msg->tag == TP__SUP_CALL_COUNT
            ? 0
            : sizeof k->req.id;
    if (tp_pid_node(msg->from) != 0)
        return TP_EPERM;
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

static int
queue_call(sup *s, const call *k)
{
    if (s->ncalls == s->capcalls) {
        size_t cap = s->capcalls ? s->capcalls * 2 : 4;
        call *c = realloc(s->calls, cap * sizeof *c);
        if (c == NULL)
            return TP_ENOMEM;
        s->calls = c;
        s->capcalls = cap;
    }
    s->calls[s->ncalls++] = *k;
    return 0;
}

static int
note_exit(sup *s, uint64_t key, int reason)
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

// A sequence ended: continue as planned, then catch up with what waited.
static void
finish_sequence(tp_ctx *ctx, sup *s)
{
    int cont = s->cont;
    s->busy = false;
    s->cont = CONT_NONE;
    switch (cont) {
    case CONT_EXIT:
        tp_stop_reason(ctx, s->exit_reason);
        return;
    case CONT_ANSWER:
        answer_call(ctx, &s->answer_to, 0, TP_PID_NIL);
        break;
    case CONT_RESTART: {
        uint64_t *again = s->again;
        size_t n = s->nagain;
        s->again = NULL;
        s->nagain = 0;
        child *first = NULL;
        for (size_t i = 0; i < n; i++) {
            child *c = by_key(s, again[i]);
            // Temporary children stopped for a sibling are not restarted.
            if (c != NULL && c->spec.restart == TP_TEMPORARY &&
                tp_pid_is_nil(c->pid))
                remove_child(s, c);
            else if (c != NULL)
                c->backoff = s->again_delay;
        }
        for (size_t i = 0; i < n && first == NULL; i++)
            first = by_key(s, again[i]);
        if (s->again_delay > 0 && first != NULL)
            schedule_restart(ctx, first, s->again_delay);
        else
            restart_set(ctx, s, again, n);
        free(again);
        break;
    }
    default:
        break;
    }
    for (size_t i = 0; i < s->n && !s->busy; i++)
        if (s->kids[i].deferred) {
            s->kids[i].deferred = false;
            tp_send(ctx, tp_self(ctx), TAG_RESTART, &s->kids[i].key,
                    sizeof s->kids[i].key);
        }
    while (!s->busy && s->nexited > 0) {
        uint64_t key = s->exited[0];
        int reason = s->exited_reason[0];
        s->nexited--;
        memmove(s->exited, s->exited + 1, s->nexited * sizeof *s->exited);
        memmove(s->exited_reason, s->exited_reason + 1,
                s->nexited * sizeof *s->exited_reason);
        child *c = by_key(s, key);
        if (c != NULL)
            handle_exit_of(ctx, s, c, reason);
    }
    while (!s->busy && s->ncalls > 0) {
        call k = s->calls[0];
        s->ncalls--;
        memmove(s->calls, s->calls + 1, s->ncalls * sizeof *s->calls);
        do_call(ctx, s, &k);
    }
}

// ---- a failed start --------------------------------------------------------

// Waits until `pid` has exited (its terminate has run). Polls: this is
// only for a failed start, on a thread that may block.
static void
wait_gone(tp_system *sys, tp_pid pid)
{
    long nap_ns = 50000;
    tp_actor_stats st;
    while (tp_actor_stats_get(sys, pid, &st) == 0) {
        nanosleep(&(struct timespec){0, nap_ns}, NULL);
        if (nap_ns < 2000000)
            nap_ns *= 2;
    }
}

// A start failed in init: stops the children already started, last
// started first, each sent shutdown and killed when its shutdown time is
// up. Init cannot read its mailbox, so a reaper actor (sup_reaper.c) runs
// that sequence and logs each exit; where the thread may block, init
// waits for the reaper to finish. The children are unlinked first, so
// that our exit with the start error does not overtake their shutdown.
static void
stop_started(tp_ctx *ctx, sup *s)
{
    tp_system *sys = tp_ctx_system(ctx);
    tp__sup_victim *v = malloc((s->n ? s->n : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = s->n; i-- > 0;) {
        const child *c = &s->kids[i];
        if (tp_pid_is_nil(c->pid))
            continue;
        tp_unlink(ctx, c->pid);
        if (v == NULL) { // no memory for the list: stop it the old way
            tp_exit(ctx, c->pid,
                    shutdown_ms(&c->spec) == TP_SHUTDOWN_BRUTAL_KILL
                        ? TP_REASON_KILL
                        : TP_REASON_SHUTDOWN);
            continue;
        }
        tp__sup_victim *w = &v[n++];
        w->pid = c->pid;
        w->shutdown = shutdown_ms(&c->spec);
        w->restarts = c->restarts;
        w->behaviour = c->spec.behaviour->name;
        memcpy(w->id, c->id, sizeof w->id);
    }
    tp_pid reaper;
    if (n > 0 && tp__sup_reap(sys, tp_self(ctx), v, n, &reaper) == 0) {
        if (tp_system_may_block(sys))
            wait_gone(sys, reaper);
        return; // the reaper owns v
    }
    if (n > 0) {
        tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                  "supervisor: no reaper; children sent "
                  "shutdown without a kill timeout");
        for (size_t i = 0; i < n; i++)
            tp_exit(ctx, v[i].pid,
                    v[i].shutdown == TP_SHUTDOWN_BRUTAL_KILL
                        ? TP_REASON_KILL
                        : TP_REASON_SHUTDOWN);
    }
    free(v);
}

// ---- the behaviour ---------------------------------------------------------

static void
sup_free(sup *s)
{
    free(s->kids);
    free(s->map_pid);
    free(s->map_key);
    free(s->stamps);
    free(s->stop);
    free(s->again);
    free(s->exited);
    free(s->exited_reason);
    free(s->calls);
    memset(s, 0, sizeof *s);
}

static int
sup_init(tp_ctx *ctx, void *state, void *arg)
{
    sup *s = state;
    const tp_sup_spec *spec = arg;
    tp_system *sys = tp_ctx_system(ctx);
    if (spec == NULL || (spec->nchildren > 0 && spec->children == NULL))
        return TP_EINVAL;
    s->flags = spec->flags;
    if ((unsigned)s->flags.strategy > TP_SIMPLE_ONE_FOR_ONE ||
        (unsigned)s->flags.auto_shutdown > TP_AUTO_SHUTDOWN_ALL_SIGNIFICANT ||
        s->flags.intensity < TP_SUP_NO_RESTARTS ||
        (s->flags.backoff_max_ms &&
         s->flags.backoff_max_ms < s->flags.backoff_min_ms)) {
        tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                  "supervisor: invalid flags");
        return TP_EINVAL;
    }
    if (s->flags.intensity == 0)
        s->flags.intensity = 1;
    else if (s->flags.intensity == TP_SUP_NO_RESTARTS)
        s->flags.intensity = 0;
    if (s->flags.period_ms == 0)
        s->flags.period_ms = 5000;
    if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE && spec->nchildren != 1) {
        tp_log_as(
            sys, TP_LOG_ERR, TP_LOG_RUNTIME,
            "supervisor: simple_one_for_one needs exactly one child spec");
        return TP_EINVAL;
    }
    for (size_t i = 0; i < spec->nchildren; i++) {
        int rc = check_spec(sys, &spec->children[i]);
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(spec->children[i].id, spec->children[j].id) == 0) {
                tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                          "supervisor: invalid child spec id=%s: duplicate id",
                          spec->children[i].id);
                rc = TP_EINVAL;
            }
        if (rc != 0)
            return rc;
    }
    s->seed = (unsigned)now_ms() ^ (unsigned)tp_self(ctx).v;
    tp_trap_exit(ctx, true);
    for (size_t i = 0; i < spec->nchildren; i++) {
        const tp_child_spec *cs = &spec->children[i];
        child *c = add_child(s, cs, cs->id, cs->opts.name, NULL);
        if (c == NULL) {
            stop_started(ctx, s);
            sup_free(s);
            return TP_ENOMEM;
        }
        if (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE)
            continue; // the template; children come with start_child
        int rc = start(ctx, s, c);
        if (rc != 0) {
            char why[64];
            tp_reason_format(rc, why, sizeof why);
            tp_log_as(sys, TP_LOG_ERR, TP_LOG_RUNTIME,
                   "supervisor: start_error child=%s reason=%s", c->id, why);
            stop_started(ctx, s);
            sup_free(s);
            return rc;
        }
    }
    return 0;
}

static int
on_exit_signal(tp_ctx *ctx, sup *s, const tp_exit_msg *e)
{
    child *c = by_pid(s, e->from);
    if (c == NULL) {
        // Not a child: our parent, or someone outside, wants us gone.
        if (e->reason != TP_REASON_NORMAL)
            shut_down(ctx, s, e->reason);
        return TP_OK;
    }
    if (s->busy && tp_pid_eq(e->from, s->target)) {
        if (s->kill_timer != 0)
            tp_timer_cancel(tp_ctx_system(ctx), s->kill_timer);
        log_child(ctx, TP_LOG_INFO, "child_stopped", c, e->reason);
        set_down(s, c);
        // terminate_child forgets dynamic and temporary children (OTP).
        if (s->cont == CONT_ANSWER &&
            (s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE ||
             c->spec.restart == TP_TEMPORARY))
            remove_child(s, c);
        stop_next(ctx, s); // moves past it and any other gone meanwhile
        return TP_OK;
    }
    if (s->busy) {
        // Is it one we were about to stop anyway?
        for (size_t i = s->stop_at; i < s->nstop; i++)
            if (s->stop[i] == c->key) {
                log_child(ctx, TP_LOG_INFO, "child_stopped", c, e->reason);
                set_down(s, c);
                return TP_OK;
            }
        set_down(s, c);
        return note_exit(s, c->key, e->reason);
    }
    handle_exit_of(ctx, s, c, e->reason);
    return TP_OK;
}

static int
sup_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    sup *s = state;
    switch (msg->tag) {
    case TP_TAG_EXIT:
        return on_exit_signal(ctx, s, msg->data);
    case TAG_KILL_TIMER: {
        tp_pid pid;
        if (msg->size != sizeof pid)
            return TP_OK; // not ours
        memcpy(&pid, msg->data, sizeof pid);
        if (s->busy && tp_pid_eq(pid, s->target))
            tp_exit(ctx, pid, TP_REASON_KILL); // its time is up
        return TP_OK;
    }
    case TAG_RESTART: {
        uint64_t key;
        if (msg->size != sizeof key)
            return TP_OK; // not ours
        memcpy(&key, msg->data, sizeof key);
        child *c = by_key(s, key);
        if (c == NULL || !c->waiting || !tp_pid_is_nil(c->pid))
            return TP_OK;
        if (s->busy) {
            c->deferred = true; // asked again when the sequence ends
            return TP_OK;
        }
        // A retry after a failed start counts like a restart.
        if (c->retry) {
            c->retry = false;
            if (!add_restart(s)) {
                tp_count_event(tp_ctx_system(ctx),
                               TP_EVENT_INTENSITY_EXCEEDED);
                log_child(ctx, TP_LOG_ERR, "reached_max_restart_intensity", c,
                          TP_REASON_SHUTDOWN);
                shut_down(ctx, s, TP_REASON_SHUTDOWN);
                return TP_OK;
            }
        }
        if (s->flags.strategy == TP_ONE_FOR_ONE ||
            s->flags.strategy == TP_SIMPLE_ONE_FOR_ONE) {
            restart_set(ctx, s, &c->key, 1); // the others have their own
            return TP_OK;
        }
        size_t n = 0;
        uint64_t *keys = malloc(s->n * sizeof *keys);
        if (keys == NULL)
            return TP_ENOMEM;
        for (size_t i = index_of(s, c); i < s->n; i++)
            if (s->kids[i].waiting)
                keys[n++] = s->kids[i].key;
        restart_set(ctx, s, keys, n);
        free(keys);
        return TP_OK;
    }
    case TP__SUP_CALL_START:
    case TP__SUP_CALL_TERMINATE:
    case TP__SUP_CALL_RESTART:
    case TP__SUP_CALL_DELETE:
    case TP__SUP_CALL_WHICH:
    case TP__SUP_CALL_COUNT: {
        if (msg->ref == 0)
            return TP_OK; // not a call
        call k;
        int rc = take_call(&k, msg);
        if (rc != 0) {
            answer a = {rc, TP_PID_NIL};
            tp_reply_to(ctx, msg->from, msg->ref, TP__SUP_ANSWER, &a,
                        sizeof a);
            return TP_OK;
        }
        if (s->busy)
            return queue_call(s, &k);
        do_call(ctx, s, &k);
        return TP_OK;
    }
    default:
        return TP_OK; // stray messages are ignored, as OTP's supervisor does
    }
}

static void
sup_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)reason;
    sup *s = state;
    // Normally every child is stopped already; when the system itself is
    // going down, make sure none is left behind.
    for (size_t i = s->n; i-- > 0;)
        if (!tp_pid_is_nil(s->kids[i].pid))
            tp_exit(ctx, s->kids[i].pid, TP_REASON_KILL);
    sup_free(s);
}

static int
sup_describe(const void *state, char *buf, size_t size)
{
    const sup *s = state;
    size_t len = 0;
    int w = snprintf(buf, size,
                     "strategy=%s intensity=%d period_ms=%u "
                     "restarts_in_window=%zu children=%zu",
                     strategy_name(s->flags.strategy), s->flags.intensity,
                     s->flags.period_ms, restarts_in_window(s), s->n);
    if (w < 0)
        return 0;
    len = (size_t)w < size ? (size_t)w : size - 1;
    for (size_t i = 0; i < s->n && len + 1 < size; i++) {
        const child *c = &s->kids[i];
        char pid[TP_PID_STRLEN];
        tp_pid_format(c->pid, pid, sizeof pid);
        w = snprintf(buf + len, size - len,
                     " [id=%s pid=%s state=%s restarts=%u]", c->id, pid,
                     !tp_pid_is_nil(c->pid) ? "running"
                     : c->waiting           ? "restarting"
                                            : "stopped",
                     c->restarts);
        if (w < 0)
            break;
        len += (size_t)w < size - len ? (size_t)w : size - len - 1;
    }
    return (int)len;
}

const tp_behaviour tp_supervisor = {.name = "supervisor",
                                    .state_size = sizeof(sup),
                                    .init = sup_init,
                                    .handle = sup_handle,
                                    .terminate = sup_terminate,
                                    .describe = sup_describe};

int
tp_sup_start(tp_system *sys, tp_pid *out, const tp_sup_spec *spec,
             const tp_spawn_opts *opts)
{
    return tp_spawn(sys, out, &tp_supervisor, (void *)spec, opts);
}
