// SPDX-License-Identifier: MIT
// State machines (statem.h), written on <troupe.h> alone.
//
// The actor's state is one pointer to a machine: the spec (found from the
// running actor's behaviour, the spec's first member), the current state,
// the armed timeouts and the user's data, in one allocation made by init
// and freed by terminate.
//
// Timeouts are timers the machine sets for itself (tp_send_after) with the
// tag TP_SM_TAG_TIMER and, as data, a 64-bit serial that no other timeout
// of this machine ever had. What was given with it (tag, data, a name) is
// kept here; the message names it by serial. A timeout cancelled with
// tp_timer_cancel never arrives, so a change of state cancels its state
// timeout exactly; a serial matching nothing is dropped all the same.
//
// Postponed messages are the actor's stash: a change of state unstashes
// them all, so they come back ahead of the mailbox in their order, as
// gen_statem retries postponed events.
//
// An upgrade (tp_statem_change) builds a second machine whose header is a
// copy of the first's: the two share the timeouts' data, the named
// timeouts' array and the inserted events, and whichever the upgrade
// drops is freed alone (tp_statem_discard), so that the other keeps them.
// As the serials are copied too, the timeouts' messages still name them.
//
// The actions (tp_sm_*) find the machine from their ctx: the running
// actor's behaviour tells a machine, its state holds the pointer, and the
// machine notes which of its callbacks runs. Nothing is kept per thread,
// so a state function that spawns another machine (whose init runs on the
// same thread), or a callback that leaves through tp_fail, leaves nothing
// stale behind.
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <troupe.h>

typedef struct sm_timeout {
    tp_timer timer; // 0 when not armed
    uint64_t serial;
    uint32_t tag;
    void *data; // malloc'ed copy, or NULL
    size_t size;
    char name[TP_SM_TIMEOUT_NAME_MAX + 1]; // named ones only
} sm_timeout;

// Which callback of the machine runs.
enum { IN_NONE, IN_INIT, IN_ENTER, IN_HANDLE, IN_TERMINATE };

// An event inserted by tp_sm_next_event: handled right after the callback
// that inserted it, before anything else.
typedef struct sm_inserted {
    struct sm_inserted *next;
    uint32_t tag;
    size_t size;
    alignas(max_align_t) unsigned char data[];
} sm_inserted;

typedef struct machine {
    const tp_statem_spec *spec;
    const tp_state *state;
    tp_ctx *ctx; // the running callback's
    int in;      // IN_*
    // Set by the running state function.
    const tp_state *next;
    bool repeat;
    bool state_set; // the state timeout was set during this callback
    const tp_sm_event *event;
    void *fired; // the data of the timeout being handled (terminate frees
                 // it after a tp_fail)
    struct sm_inserted *handling; // the inserted event being handled, too
    uint64_t serials;
    sm_timeout state_to;
    sm_timeout event_to;
    sm_timeout *named; // nnamed of them, armed or not
    size_t nnamed;
    uint64_t transitions;
    // Inserted events not yet handled, oldest first, and those the running
    // callback inserts (kept apart: they go before the older ones).
    sm_inserted *inserted, *adding, *adding_tail;
    alignas(max_align_t) unsigned char data[];
} machine;

static void
inserted_free(sm_inserted *e)
{
    while (e != NULL) {
        sm_inserted *next = e->next;
        free(e);
        e = next;
    }
}

// The machine whose callback runs with `ctx`, or NULL.
static machine *
current(tp_ctx *ctx)
{
    const tp_behaviour *b = tp_ctx_behaviour(ctx);
    if (b == NULL || b->init != tp_statem_init)
        return NULL;
    machine *m = *(machine **)tp_ctx_state(ctx);
    return m != NULL && m->ctx == ctx && m->in != IN_NONE ? m : NULL;
}

// current(), for the actions that set timeouts: not in terminate.
static int
timeouts_ok(tp_ctx *ctx, machine **out)
{
    machine *m = current(ctx);
    if (m == NULL)
        return TP_EINVAL;
    *out = m;
    return m->in == IN_TERMINATE ? TP_EPERM : 0;
}

// current(), for the actions that belong to a state function only.
static int
handling(tp_ctx *ctx, machine **out)
{
    machine *m = current(ctx);
    if (m == NULL)
        return TP_EINVAL;
    *out = m;
    return m->in == IN_HANDLE ? 0 : TP_EPERM;
}

static void
timeout_clear(sm_timeout *t)
{
    free(t->data);
    t->data = NULL;
    t->size = 0;
    t->timer = 0;
    t->serial = 0;
}

static void
timeout_cancel(machine *m, sm_timeout *t)
{
    if (t->timer != 0)
        tp_timer_cancel(tp_ctx_system(m->ctx), t->timer);
    timeout_clear(t);
}

static int
timeout_arm(machine *m, sm_timeout *t, uint32_t ms, uint32_t tag,
            const void *data, size_t size)
{
    if (data == NULL && size != 0)
        return TP_EINVAL;
    if (size > TP_MSG_MAX)
        return TP_EMSGSIZE;
    void *copy = NULL;
    if (size != 0) {
        copy = malloc(size);
        if (copy == NULL)
            return TP_ENOMEM;
        memcpy(copy, data, size);
    }
    uint64_t serial = ++m->serials;
    tp_timer timer;
    int rc = tp_send_after(m->ctx, tp_self(m->ctx), ms, TP_SM_TAG_TIMER,
                           &serial, sizeof serial, &timer);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    timeout_cancel(m, t); // the one it replaces
    t->timer = timer;
    t->serial = serial;
    t->tag = tag;
    t->data = copy;
    t->size = size;
    return 0;
}

// A state's name for logs and describe: a state without one is "?".
static const char *
state_name(const tp_state *s)
{
    return s->name != NULL ? s->name : "?";
}

// Logs a transition when the spec asks, and traces it when the actor is
// traced for state changes (actorctl trace --state).
static void
log_transition(machine *m, const tp_state *from, const tp_state *to)
{
    const char *was = from ? state_name(from) : "(start)";
    if (m->spec->log_transitions) // the line's origin names the actor
        tp_log(tp_ctx_system(m->ctx), TP_LOG_INFO, "statem: %s -> %s", was,
               state_name(to));
    tp_trace_state(m->ctx, was, state_name(to));
}

// Runs the current state's enter, if any, with `from`.
static int
enter(machine *m, const tp_state *from)
{
    if (m->state->enter == NULL)
        return TP_OK;
    int saved = m->in;
    m->in = IN_ENTER;
    int rc = m->state->enter(m->ctx, m->data, from);
    m->in = saved;
    return rc;
}

// Frees `m` with its timeouts (cancelled: those of a machine whose init
// failed would otherwise outlive it), its inserted events and the data of
// an event a tp_fail left behind.
static void
machine_free(machine *m)
{
    timeout_cancel(m, &m->state_to);
    timeout_cancel(m, &m->event_to);
    for (size_t i = 0; i < m->nnamed; i++)
        timeout_cancel(m, &m->named[i]);
    free(m->named);
    free(m->fired);
    inserted_free(m->inserted);
    inserted_free(m->adding);
    free(m->handling);
    free(m);
}

int
tp_statem_init(tp_ctx *ctx, void *state, void *arg)
{
    const tp_statem_spec *spec = (const tp_statem_spec *)tp_ctx_behaviour(ctx);
    if (spec == NULL || spec->behaviour.init != tp_statem_init ||
        spec->data_size > ((size_t)1 << 30))
        return TP_EINVAL;
    machine *m = calloc(1, sizeof *m + spec->data_size);
    if (m == NULL)
        return TP_ENOMEM;
    m->spec = spec;
    m->ctx = ctx;
    m->in = IN_INIT;
    // Found by the actions from here on. A tp_fail in init or the first
    // enter ends the spawn without terminate: the machine is then lost.
    *(machine **)state = m;
    const tp_state *first = spec->initial;
    int rc = spec->init ? spec->init(ctx, m->data, arg, &first) : 0;
    if (rc == 0 && (first == NULL || first->handle == NULL)) {
        tp_log(tp_ctx_system(ctx), TP_LOG_ERR,
               "statem: no first state, or one without handle");
        rc = TP_EINVAL;
    }
    if (rc == 0) {
        m->state = first;
        rc = enter(m, NULL); // TP_STOP here: spawn fails with TP_EINIT
        if (rc == 0)
            log_transition(m, NULL, first);
    }
    m->in = IN_NONE;
    if (rc != 0) {
        // Not started: terminate will not run.
        machine_free(m);
        *(machine **)state = NULL;
        return rc;
    }
    return 0;
}

// The timeout a timer message names, or NULL.
static sm_timeout *
timeout_of(machine *m, const tp_msg *msg, tp_sm_event_kind *kind)
{
    uint64_t serial;
    if (msg->size != sizeof serial || !tp_pid_eq(msg->from, tp_self(m->ctx)))
        return NULL;
    memcpy(&serial, msg->data, sizeof serial);
    if (serial == 0)
        return NULL;
    if (m->state_to.serial == serial) {
        *kind = TP_SM_STATE_TIMEOUT;
        return &m->state_to;
    }
    if (m->event_to.serial == serial) {
        *kind = TP_SM_EVENT_TIMEOUT;
        return &m->event_to;
    }
    for (size_t i = 0; i < m->nnamed; i++)
        if (m->named[i].serial == serial) {
            *kind = TP_SM_TIMEOUT;
            return &m->named[i];
        }
    return NULL;
}

// After a state function returned TP_OK: the change of state or the
// repeat it asked for.
static int
transition(machine *m)
{
    const tp_state *next = m->next;
    if (next != NULL && next != m->state) {
        const tp_state *from = m->state;
        if (!m->state_set)
            timeout_cancel(m, &m->state_to);
        m->state = next;
        m->transitions++;
        log_transition(m, from, next);
        int n = tp_unstash_all(m->ctx);
        if (n < 0)
            return n;
        return enter(m, from);
    }
    if (m->repeat)
        return enter(m, m->state);
    return TP_OK;
}

// Hands `ev` to the current state's function, then makes the change of
// state or the repeat it asked for.
static int
dispatch(machine *m, const tp_sm_event *ev)
{
    // Any event cancels the event timeout (one firing is already cleared).
    timeout_cancel(m, &m->event_to);
    m->in = IN_HANDLE;
    m->next = NULL;
    m->repeat = false;
    m->state_set = false;
    m->event = ev;
    int rc = m->state->handle(m->ctx, m->data, ev);
    m->in = IN_NONE;
    m->event = NULL;
    // What this callback inserted comes before what earlier ones did.
    if (m->adding != NULL) {
        m->adding_tail->next = m->inserted;
        m->inserted = m->adding;
        m->adding = m->adding_tail = NULL;
    }
    if (rc == TP_OK)
        rc = transition(m);
    m->in = IN_NONE;
    return rc;
}

int
tp_statem_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    machine *m = *(machine **)state;
    m->ctx = ctx;
    tp_sm_event ev = {.kind = TP_SM_MESSAGE, .msg = msg};
    tp_msg tmsg;
    sm_timeout fired = {0};
    if (msg->tag == TP_SM_TAG_TIMER) {
        sm_timeout *t = timeout_of(m, msg, &ev.kind);
        if (t == NULL && tp_pid_eq(msg->from, tp_self(ctx)))
            return TP_OK; // a cancelled timeout's: never delivered
        if (t != NULL) {
            fired = *t; // the data is the event's until the call returns
            m->fired = t->data;
            t->data = NULL;
            timeout_clear(t);
            tmsg = (tp_msg){.tag = fired.tag,
                            .from = msg->from,
                            .data = fired.data,
                            .size = fired.size};
            ev.msg = &tmsg;
            if (ev.kind == TP_SM_TIMEOUT)
                ev.name = fired.name;
        }
    }
    int rc = dispatch(m, &ev);
    free(m->fired);
    m->fired = NULL;
    // Inserted events, each before anything else that waits.
    while (rc == TP_OK && m->inserted != NULL) {
        sm_inserted *e = m->handling = m->inserted;
        m->inserted = e->next;
        tp_msg imsg = {.tag = e->tag,
                       .from = tp_self(ctx),
                       .data = e->size ? e->data : NULL,
                       .size = e->size};
        tp_sm_event iev = {.kind = TP_SM_INTERNAL, .msg = &imsg};
        rc = dispatch(m, &iev);
        free(e);
        m->handling = NULL;
    }
    return rc;
}

void
tp_statem_terminate(tp_ctx *ctx, void *state, int reason)
{
    machine *m = *(machine **)state;
    if (m == NULL)
        return;
    m->ctx = ctx;
    if (m->spec->terminate) {
        m->in = IN_TERMINATE; // tp_sm_state only
        m->spec->terminate(ctx, m->data, m->state, reason);
    }
    machine_free(m);
    *(machine **)state = NULL;
}

int
tp_statem_describe(const void *state, char *buf, size_t size)
{
    const machine *m = *(machine *const *)state;
    if (m == NULL)
        return snprintf(buf, size, "state=(none)");
    int n = snprintf(buf, size, "state=%s transitions=%llu",
                     state_name(m->state), (unsigned long long)m->transitions);
    if (n < 0 || (size_t)n >= size)
        return n;
    if (m->spec->describe != NULL && (size_t)n + 2 < size) {
        buf[n] = ' ';
        int u = m->spec->describe(m->data, buf + n + 1, size - (size_t)n - 1);
        if (u > 0)
            n += 1 + u;
        else
            buf[n] = '\0';
    }
    return n;
}

// ---- hot code upgrade

// `spec`'s state named `name`, or NULL.
static const tp_state *
state_named(const tp_statem_spec *spec, const char *name)
{
    if (spec->states == NULL || name == NULL)
        return NULL;
    for (const tp_state *const *s = spec->states; *s != NULL; s++)
        if ((*s)->name != NULL && strcmp((*s)->name, name) == 0)
            return *s;
    return NULL;
}

// Fills m's data and state for `spec` from `old`; 0 or a code.
static int
convert(tp_ctx *ctx, machine *m, const machine *old)
{
    const tp_statem_spec *spec = m->spec;
    const tp_state *st = state_named(spec, old->state->name);
    int rc = 0;
    if (spec->code_change != NULL) {
        rc = spec->code_change(ctx, old->data, m->data, old->state, &st);
    } else {
        size_t was = old->spec->data_size;
        memcpy(m->data, old->data,
               was < spec->data_size ? was : spec->data_size);
    }
    if (rc == 0 && (st == NULL || st->handle == NULL)) {
        tp_log(tp_ctx_system(ctx), TP_LOG_ERR,
               "statem: upgrade to %s: no state for %s",
               spec->behaviour.name ? spec->behaviour.name : "?",
               state_name(old->state));
        rc = TP_EINVAL;
    }
    m->state = st;
    return rc;
}

int
tp_statem_change(tp_ctx *ctx, const void *old_state, void *new_state,
                 void *arg)
{
    const tp_statem_spec *spec = arg;
    const tp_behaviour *from = tp_ctx_behaviour(ctx);
    if (spec == NULL || spec->behaviour.handle != tp_statem_handle ||
        spec->data_size > ((size_t)1 << 30) || from == NULL ||
        from->handle != tp_statem_handle || old_state == NULL)
        return TP_EINVAL;
    const machine *old = *(machine *const *)old_state;
    if (old == NULL)
        return TP_EINVAL;
    // Upgrades run between two messages: no callback runs, and what one
    // leaves behind (the fired timeout's data, the inserted event being
    // handled or just inserted) is gone.
    if (old->in != IN_NONE || old->fired != NULL || old->handling != NULL ||
        old->adding != NULL)
        return TP_EPERM;
    machine *m = calloc(1, sizeof *m + spec->data_size);
    if (m == NULL)
        return TP_ENOMEM;
    // The header as it is: the timeouts keep their timers and serials (so
    // their messages, already queued or still to come, are recognised),
    // their data, the named ones' array and the inserted events, all of
    // which the new machine takes over if the upgrade commits; and the
    // serial counter, so that no new timeout reuses a pending one's.
    *m = *old;
    m->spec = spec;
    m->ctx = ctx;
    m->next = NULL; // pointed into the old code
    m->event = NULL;
    int rc = convert(ctx, m, old);
    if (rc != 0) {
        free(m); // its parts are still the old machine's
        return rc;
    }
    *(machine **)new_state = m;
    return 0;
}

void
tp_statem_discard(void *state, bool committed, void *arg)
{
    (void)committed, (void)arg;
    // Either way, the machine that goes shares all it points to with the
    // one that stays: the old after a commit, the new after a rollback.
    free(*(machine **)state);
}

// ---- actions

int
tp_sm_next(tp_ctx *ctx, const tp_state *state)
{
    machine *m;
    if (state == NULL || state->handle == NULL)
        return TP_EINVAL;
    // Not in init (it picks the first state), enter or terminate.
    int rc = handling(ctx, &m);
    if (rc == 0)
        m->next = state;
    return rc;
}

int
tp_sm_repeat(tp_ctx *ctx)
{
    machine *m;
    int rc = handling(ctx, &m);
    if (rc == 0)
        m->repeat = true;
    return rc;
}

int
tp_sm_next_event(tp_ctx *ctx, uint32_t tag, const void *data, size_t size)
{
    machine *m;
    if (data == NULL && size != 0)
        return TP_EINVAL;
    int rc = handling(ctx, &m);
    if (rc != 0)
        return rc;
    if (size > TP_MSG_MAX)
        return TP_EMSGSIZE;
    sm_inserted *e = malloc(sizeof *e + size);
    if (e == NULL)
        return TP_ENOMEM;
    e->next = NULL;
    e->tag = tag;
    e->size = size;
    if (size != 0)
        memcpy(e->data, data, size);
    if (m->adding_tail != NULL)
        m->adding_tail->next = e;
    else
        m->adding = e;
    m->adding_tail = e;
    return 0;
}

int
tp_sm_postpone(tp_ctx *ctx)
{
    machine *m;
    int rc = handling(ctx, &m);
    if (rc != 0)
        return rc;
    if (m->event == NULL || m->event->kind != TP_SM_MESSAGE)
        return TP_EINVAL;
    return tp_stash(ctx);
}

int
tp_sm_state_timeout(tp_ctx *ctx, uint32_t ms, uint32_t tag, const void *data,
                    size_t size)
{
    machine *m;
    int rc = timeouts_ok(ctx, &m);
    if (rc != 0)
        return rc;
    rc = timeout_arm(m, &m->state_to, ms, tag, data, size);
    if (rc == 0)
        m->state_set = true;
    return rc;
}

int
tp_sm_state_timeout_cancel(tp_ctx *ctx)
{
    machine *m;
    int rc = timeouts_ok(ctx, &m);
    if (rc != 0)
        return rc;
    if (m->state_to.serial == 0)
        return TP_ENOENT;
    timeout_cancel(m, &m->state_to);
    m->state_set = false;
    return 0;
}

int
tp_sm_event_timeout(tp_ctx *ctx, uint32_t ms, uint32_t tag, const void *data,
                    size_t size)
{
    machine *m;
    int rc = timeouts_ok(ctx, &m);
    if (rc != 0)
        return rc;
    return timeout_arm(m, &m->event_to, ms, tag, data, size);
}

static sm_timeout *
named(machine *m, const char *name)
{
    for (size_t i = 0; i < m->nnamed; i++)
        if (m->named[i].serial != 0 && strcmp(m->named[i].name, name) == 0)
            return &m->named[i];
    return NULL;
}

static bool
name_ok(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, TP_SM_TIMEOUT_NAME_MAX + 1);
    return n > 0 && n <= TP_SM_TIMEOUT_NAME_MAX;
}

int
tp_sm_timeout(tp_ctx *ctx, const char *name, uint32_t ms, uint32_t tag,
              const void *data, size_t size)
{
    machine *m;
    int rc = timeouts_ok(ctx, &m);
    if (rc != 0 || !name_ok(name))
        return rc != 0 ? rc : TP_EINVAL;
    sm_timeout *t = named(m, name);
    if (t == NULL) {
        for (size_t i = 0; i < m->nnamed && t == NULL; i++)
            if (m->named[i].serial == 0)
                t = &m->named[i]; // a free slot
    }
    if (t == NULL) {
        sm_timeout *grown =
            realloc(m->named, (m->nnamed + 1) * sizeof *m->named);
        if (grown == NULL)
            return TP_ENOMEM;
        m->named = grown;
        t = &m->named[m->nnamed++];
        memset(t, 0, sizeof *t);
    }
    rc = timeout_arm(m, t, ms, tag, data, size);
    if (rc == 0)
        snprintf(t->name, sizeof t->name, "%s", name);
    return rc;
}

int
tp_sm_timeout_cancel(tp_ctx *ctx, const char *name)
{
    machine *m;
    int rc = timeouts_ok(ctx, &m);
    if (rc != 0 || !name_ok(name))
        return rc != 0 ? rc : TP_EINVAL;
    sm_timeout *t = named(m, name);
    if (t == NULL)
        return TP_ENOENT;
    timeout_cancel(m, t);
    return 0;
}

const tp_state *
tp_sm_state(tp_ctx *ctx)
{
    machine *m = current(ctx);
    return m ? m->state : NULL;
}
