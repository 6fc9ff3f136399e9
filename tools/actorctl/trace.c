// SPDX-License-Identifier: MIT
// `actorctl trace`: one actor's events, live. A trace lives on one
// connection: the "trace" request starts it on the node, and each
// "trace_next" brings the events recorded since the last answer (the node
// holds its answer up to a second while there are none), until an answer
// says the trace ended and carries its last events. Closing the connection
// stops the trace, so a client that dies leaves nothing running on the
// node. Each answer's events are printed and flushed at once, for a
// terminal as for a pipe into grep: one line each, or one JSON object each.
// The header and the line saying why the trace ended go to stderr, so
// stdout holds events only.
#include "actorctl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

// The longest the node holds an answer without events (CONTROL.md).
#define LONG_POLL_MS 1000
// The protocol's defaults, for the header when the command line left them.
#define DEFAULT_COUNT 100
#define DEFAULT_SECONDS 60

// The protocol's names of what a trace follows, in CTL_TRACE_* order.
static const char *const what_names[] = {"received", "sent", "signals", "life",
                                         "state"};
#define NWHAT (sizeof what_names / sizeof what_names[0])

enum {
    EV_RECEIVED,
    EV_SENT,
    EV_SIGNAL,
    EV_SPAWN,
    EV_EXIT,
    EV_STATE,
    EV_NOTE,
    EV_OTHER, // a kind this actorctl does not know: printed by name only
};

// What each kind of event carries besides seq, at_us and kind.
static const struct {
    const char *kind;
    const char *peer; // the key of the other actor, or NULL
    const char *word; // the key of a one-word detail, or NULL
    bool message;     // "tag" and "size"
    bool reason;      // "reason" (a signal has one only for exit and down)
    bool text;        // "text"
} kinds[] = {
    [EV_RECEIVED] = {"received", "from", NULL, true, false, false},
    [EV_SENT] = {"sent", "to", "result", true, false, false},
    [EV_SIGNAL] = {"signal", "from", "signal", false, true, false},
    [EV_SPAWN] = {"spawn", "child", "behaviour", false, false, false},
    [EV_EXIT] = {"exit", NULL, NULL, false, true, false},
    [EV_STATE] = {"state", NULL, NULL, false, false, true},
    [EV_NOTE] = {"note", NULL, NULL, false, false, true},
};

// One event, decoded; its strings point into the reply. A string the kind
// does not carry has p == NULL.
typedef struct event {
    uint64_t seq, at_us;
    int kind;     // EV_*
    ctl_str name; // the kind as the node wrote it
    ctl_str peer, word, reason, text;
    uint64_t tag, size;
    int64_t wait_us; // received: -1 when queued before the trace began
} event;

// A trace as it goes.
typedef struct trace_run {
    const ctl_opts *o;
    const char *pid;            // the traced actor
    const char *name;           // as the user named it, or NULL for a pid
    uint64_t last_seq;          // of the last event printed; 0 before any
    uint64_t recorded, dropped; // the node's counts in its last answer
    char end[32];               // "running" or why it ended, cleaned
} trace_run;

// The signal that asked us to stop, or 0.
static volatile sig_atomic_t stop_signal;

static void
on_stop(int sig)
{
    stop_signal = sig;
}

// The first Ctrl-C (or SIGTERM) ends the trace once the answer on its way
// is in, within the node's long poll; the handler then resets itself, so a
// second one quits at once.
static void
catch_stop(void)
{
    struct sigaction sa = {.sa_handler = on_stop, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

// {"op": "trace", "pid": PID} and the limits the command line chose; the
// node's defaults for the others.
static void
trace_request(msgpack_sbuffer *sb, const ctl_opts *o, const char *pid)
{
    static const char *const keys[] = {"count", "seconds", "rate"};
    const long values[] = {o->count, o->seconds, o->rate};
    size_t nwhat = 0, extra = 1;
    msgpack_packer pk;
    for (size_t i = 0; i < NWHAT; i++)
        nwhat += o->what >> i & 1;
    extra += nwhat > 0;
    for (size_t i = 0; i < 3; i++)
        extra += values[i] > 0;
    ctl_request_begin(sb, &pk, "trace", extra);
    pack_cstr(&pk, "pid");
    pack_cstr(&pk, pid);
    if (nwhat > 0) {
        pack_cstr(&pk, "what");
        msgpack_pack_array(&pk, nwhat);
        for (size_t i = 0; i < NWHAT; i++)
            if (o->what >> i & 1)
                pack_cstr(&pk, what_names[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        if (values[i] <= 0)
            continue;
        pack_cstr(&pk, keys[i]);
        msgpack_pack_uint64(&pk, (uint64_t)values[i]);
    }
}

// ---- decoding --------------------------------------------------------------

// An integer that may be negative.
static int
get_int(const msgpack_object *m, const char *key, const char *where,
        int64_t *out)
{
    const msgpack_object *v = ctl_field(m, key);
    if (v == NULL)
        return ctl_bad_reply(where, "has no \"%s\"", key);
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return CTL_OK;
    }
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > INT64_MAX)
        return ctl_bad_reply(where, "has a \"%s\" that is not an integer",
                             key);
    *out = (int64_t)v->via.u64;
    return CTL_OK;
}

// The fields of kinds[e->kind] beyond seq, at_us and kind.
static int
details_decode(const msgpack_object *m, const char *where, event *e)
{
    int k = e->kind;
    if ((kinds[k].peer != NULL &&
         ctl_get_str(m, kinds[k].peer, where, &e->peer) != CTL_OK) ||
        (kinds[k].word != NULL &&
         ctl_get_str(m, kinds[k].word, where, &e->word) != CTL_OK) ||
        (kinds[k].message &&
         (ctl_get_uint(m, "tag", where, &e->tag) != CTL_OK ||
          ctl_get_uint(m, "size", where, &e->size) != CTL_OK)) ||
        (kinds[k].text && ctl_get_str(m, "text", where, &e->text) != CTL_OK))
        return CTL_ERROR;
    if (k == EV_RECEIVED)
        return get_int(m, "wait_us", where, &e->wait_us);
    if (kinds[k].reason && (k == EV_EXIT || ctl_field(m, "reason") != NULL))
        return ctl_get_str(m, "reason", where, &e->reason);
    return CTL_OK;
}

static int
event_decode(const msgpack_object *m, const char *where, event *e)
{
    memset(e, 0, sizeof *e);
    if (m->type != MSGPACK_OBJECT_MAP)
        return ctl_bad_reply(where, "is not a map");
    if (ctl_get_uint(m, "seq", where, &e->seq) != CTL_OK ||
        ctl_get_uint(m, "at_us", where, &e->at_us) != CTL_OK ||
        ctl_get_str(m, "kind", where, &e->name) != CTL_OK)
        return CTL_ERROR;
    for (e->kind = 0; e->kind < EV_OTHER; e->kind++)
        if (ctl_str_eq(e->name, kinds[e->kind].kind))
            return details_decode(m, where, e);
    return CTL_OK;
}

// ---- text ------------------------------------------------------------------

// The other actor of an event, "outside" for nil (a send from outside any
// actor: the node writes "").
static const char *
peer_or_outside(const char *peer)
{
    return peer[0] != '\0' ? peer : "outside";
}

// The details of `e` after its kind, cleaned strings in `s`: peer, word,
// reason and text.
static void
details_print(const event *e, char *const s[4])
{
    char wait[32];
    switch (e->kind) {
    case EV_RECEIVED:
        printf("  tag %llu (%llu B) from %s, ", (unsigned long long)e->tag,
               (unsigned long long)e->size, peer_or_outside(s[0]));
        if (e->wait_us < 0) {
            fputs("queued before the trace", stdout);
        } else {
            ctl_cpu_format(wait, sizeof wait, (uint64_t)e->wait_us);
            printf("waited %s", wait);
        }
        break;
    case EV_SENT:
        printf("  tag %llu (%llu B) to %s", (unsigned long long)e->tag,
               (unsigned long long)e->size, s[0]);
        if (!ctl_str_eq(e->word, "ok"))
            printf(": %s", s[1]);
        break;
    case EV_SIGNAL:
        printf("  %s from %s", s[1], peer_or_outside(s[0]));
        if (e->reason.p != NULL)
            printf(" (reason %s)", s[2]);
        break;
    case EV_SPAWN:
        printf("  %s (%s)", s[0], s[1]);
        break;
    case EV_EXIT:
        printf("  reason %s", s[2]);
        break;
    case EV_STATE:
    case EV_NOTE:
        printf("  %s", s[3]);
        break;
    default:
        break;
    }
}

// One line: "    0.412 ms  received  tag 7 (12 B) from <0.3.1>, ...".
static void
event_print(const event *e)
{
    const char *colour = e->kind == EV_EXIT     ? SGR_RED
                         : e->kind == EV_SIGNAL ? SGR_YELLOW
                                                : NULL;
    char *kind = ctl_clean(e->name);
    char *s[4] = {ctl_clean(e->peer), ctl_clean(e->word), ctl_clean(e->reason),
                  ctl_clean(e->text)};
    printf("%10.3f ms  %s%-*s%s", (double)e->at_us / 1000, ctl_sgr(colour),
           e->kind == EV_OTHER ? 0 : 8, kind, colour ? ctl_sgr("0") : "");
    details_print(e, s);
    putchar('\n');
    free(kind);
    for (size_t i = 0; i < 4; i++)
        free(s[i]);
}

// Says how many events were dropped before the one numbered `seq` (seq
// counts dropped events too).
static void
gap_print(trace_run *t, uint64_t seq)
{
    if (seq > t->last_seq + 1) {
        unsigned long long n = seq - t->last_seq - 1;
        printf("%13s  %s%-8s%s  %llu event%s\n", "", ctl_sgr(SGR_YELLOW),
               "dropped", ctl_sgr("0"), n, n == 1 ? "" : "s");
    }
    if (seq > t->last_seq)
        t->last_seq = seq;
}

// ---- JSON ------------------------------------------------------------------

static void
json_value(const msgpack_object *v)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        ctl_json_str(stdout, (ctl_str){v->via.str.ptr, v->via.str.size});
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        printf("%llu", (unsigned long long)v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        printf("%lld", (long long)v->via.i64);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(v->via.boolean ? "true" : "false", stdout);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(v->via.f64))
            printf("%.17g", v->via.f64);
        else
            fputs("null", stdout);
        break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i > 0)
                putchar(',');
            json_value(&v->via.array.ptr[i]);
        }
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0, n = 0; i < v->via.map.size; i++) {
            const msgpack_object_kv *kv = &v->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;
            if (n++ > 0)
                putchar(',');
            json_value(&kv->key);
            putchar(':');
            json_value(&kv->val);
        }
        putchar('}');
        break;
    default: // nil, binary, extensions
        fputs("null", stdout);
        break;
    }
}

// The event's fields as the node named them, after the traced "pid".
static void
event_json(const trace_run *t, const msgpack_object *m)
{
    printf("{\"pid\":\"%s\"", t->pid);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR ||
            ctl_str_eq((ctl_str){kv->key.via.str.ptr, kv->key.via.str.size},
                       "pid"))
            continue;
        putchar(',');
        json_value(&kv->key);
        putchar(':');
        json_value(&kv->val);
    }
    fputs("}\n", stdout);
}

// ---- the trace -------------------------------------------------------------

// The kinds chosen, for the header: ", received and sent only,", or ""
// for every kind.
static void
what_phrase(unsigned what, char *buf, size_t size)
{
    size_t n = 0, k = 0, len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NWHAT; i++)
        n += what >> i & 1;
    if (n == 0 || n == NWHAT)
        return;
    for (size_t i = 0; i < NWHAT; i++) {
        if (!(what >> i & 1))
            continue;
        const char *sep = k > 0 && k + 1 == n ? " and " : ", ";
        len += (size_t)snprintf(buf + len, size - len, "%s%s", sep,
                                what_names[i]);
        k++;
    }
    snprintf(buf + len, size - len, " only,");
}

// "tracing <0.5.1> (worker), received and sent only, for up to 100 events
// or 60 s; Ctrl-C stops" on stderr.
static void
header(const trace_run *t)
{
    char what[96];
    what_phrase(t->o->what, what, sizeof what);
    char *name = t->name != NULL
                     ? ctl_clean((ctl_str){t->name, (uint32_t)strlen(t->name)})
                     : NULL;
    fprintf(stderr,
            "tracing %s%s%s%s%s for up to %ld events or %ld s; "
            "Ctrl-C stops\n",
            t->pid, name ? " (" : "", name ? name : "", name ? ")" : "", what,
            t->o->count > 0 ? t->o->count : DEFAULT_COUNT,
            t->o->seconds > 0 ? t->o->seconds : DEFAULT_SECONDS);
    free(name);
}

// Prints one answer's events; `first`: the answer to "trace".
static int
take(trace_run *t, const msgpack_object *root, bool first)
{
    const msgpack_object_array *events;
    ctl_str end;
    int rc;
    if ((rc = ctl_get_array(root, "events", "the reply", &events)) != CTL_OK ||
        (rc = ctl_get_uint(root, "recorded", "the reply", &t->recorded)) !=
            CTL_OK ||
        (rc = ctl_get_uint(root, "dropped", "the reply", &t->dropped)) !=
            CTL_OK ||
        (rc = ctl_get_str(root, "end", "the reply", &end)) != CTL_OK)
        return rc;
    char *clean = ctl_clean(end);
    snprintf(t->end, sizeof t->end, "%s", clean);
    free(clean);
    if (first)
        header(t);
    for (uint32_t i = 0; i < events->size; i++) {
        char where[40];
        event e;
        snprintf(where, sizeof where, "events[%u]", i);
        if ((rc = event_decode(&events->ptr[i], where, &e)) != CTL_OK)
            return rc;
        if (t->o->json) {
            event_json(t, &events->ptr[i]);
            continue;
        }
        gap_print(t, e.seq);
        event_print(&e);
    }
    return CTL_OK;
}

// Sends `start`, then `next` after each answer, until the trace ends, a
// signal asks to stop, or something fails.
static int
follow(trace_run *t, ctl_conn *c, const msgpack_sbuffer *start,
       const msgpack_sbuffer *next)
{
    for (const msgpack_sbuffer *req = start;; req = next) {
        ctl_reply r;
        int rc = ctl_call(c, req, &r);
        if (rc == CTL_OK)
            rc = take(t, r.root, req == start);
        ctl_reply_free(&r);
        if (fflush(stdout) != 0 && rc == CTL_OK)
            rc = ctl_fail(CTL_ERROR, "writing the output failed");
        if (rc != CTL_OK || strcmp(t->end, "running") != 0 || stop_signal)
            return rc;
    }
}

// The last words, once the trace is over: the JSON summary line on stdout
// with --json, and why it ended on stderr.
static void
summary(trace_run *t, bool stopped)
{
    const char *end = stopped ? "interrupted" : t->end;
    char why[64];
    if (t->o->json) {
        fputs("{\"end\":", stdout);
        ctl_json_cstr(stdout, end);
        printf(",\"recorded\":%llu,\"dropped\":%llu}\n",
               (unsigned long long)t->recorded,
               (unsigned long long)t->dropped);
    } else if (!stopped) {
        // Those dropped after the last event printed. (The counts of a
        // trace still running may include events not yet sent.)
        gap_print(t, t->recorded + t->dropped + 1);
    }
    fflush(stdout);
    if (strcmp(end, "count") == 0)
        snprintf(why, sizeof why, "count of %llu events reached",
                 (unsigned long long)(t->o->count > 0
                                          ? (uint64_t)t->o->count
                                          : t->recorded + t->dropped));
    else
        snprintf(why, sizeof why, "%s",
                 strcmp(end, "time") == 0      ? "time limit"
                 : strcmp(end, "exited") == 0  ? "the actor exited"
                 : strcmp(end, "stopped") == 0 ? "node shutting down"
                                               : end);
    fprintf(stderr, "trace ended: %s (%llu event%s, %llu dropped)\n", why,
            (unsigned long long)t->recorded, t->recorded == 1 ? "" : "s",
            (unsigned long long)t->dropped);
}

int
ctl_cmd_trace(const ctl_target *t, const ctl_opts *o, const char *who)
{
    // Each answer may come a long poll late: the timeout counts after it.
    ctl_target patient = *t;
    patient.timeout_ms += LONG_POLL_MS;
    ctl_conn c;
    char pid[40], named[40];
    int rc = ctl_connect(&c, &patient);
    if (rc != CTL_OK)
        return rc;
    if ((rc = ctl_resolve_actor(&c, who, pid, sizeof pid)) != CTL_OK) {
        ctl_close(&c);
        return rc;
    }
    c.about = pid;
    trace_run run = {.o = o, .pid = pid, .end = "running"};
    if (!ctl_pid_normalise(who, named, sizeof named))
        run.name = who;
    msgpack_sbuffer start, next;
    msgpack_packer pk;
    trace_request(&start, o, pid);
    ctl_request_begin(&next, &pk, "trace_next", 0);
    catch_stop();
    rc = follow(&run, &c, &start, &next);
    msgpack_sbuffer_destroy(&start);
    msgpack_sbuffer_destroy(&next);
    ctl_close(&c); // the node stops the trace, if it still runs
    bool stopped = stop_signal && strcmp(run.end, "running") == 0;
    if (rc != CTL_OK)
        return rc;
    summary(&run, stopped);
    if (stopped) {
        // Die of the signal, so that a shell running us in a loop or a
        // script stops too.
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
    }
    return CTL_OK;
}
