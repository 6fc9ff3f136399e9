// SPDX-License-Identifier: MIT
// The control socket: a Unix stream socket answering msgpack requests with
// introspection data (lib/observe/CONTROL.md), served on the I/O thread by
// serve.c. Each client has its own connection and deadlines, so a slow or
// bad client costs its own slot, never the node or the other clients; a
// request that needs an actor's answer (info) waits for it without
// holding up the I/O thread.
#include "core/core.h"
#include "dist/dist.h"
#include "io/io.h"
#include "observe/observe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

// A request's most bytes, after its 4-byte length.
#define REQ_MAX 65536
// A client has this long to send a whole request (from its connect or
// from the end of the previous reply), and this long to take a reply.
#define REQUEST_S 5.0
#define REPLY_S 2.0
// How long `info` waits for the actor's own answer.
#define INFO_TIMEOUT_S 2.0

typedef struct tp__control {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    tp__server *srv;
    tp_control_fn fn; // the program's ops (tp_control_serve), or NULL
    void *fn_arg;
    double fn_wait_s;
} tp__control;

// A request handed to the program: held by its connection while it waits
// and by the program until it answers (refs), the answer under the lock.
struct tp_control_call {
    pthread_mutex_t lock;
    unsigned refs;
    bool answered, waiting; // waiting: its connection still wants it
    msgpack_sbuffer answer;
    struct tp__io *io; // to wake the loop when the answer comes
};

// ---- reading requests
// ---------------------------------------------------------

static const msgpack_object *
field(const msgpack_object *map, const char *key)
{
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kl &&
            memcmp(kv->key.via.str.ptr, key, kl) == 0)
            return &kv->val;
    }
    return NULL;
}

static bool
str_is(const msgpack_object *o, const char *s)
{
    return o != NULL && o->type == MSGPACK_OBJECT_STR &&
           o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

// ---- connections
// ----------------------------------------------------------

// One reply being built: a frame whose 4-byte length is filled in last.
typedef struct reply {
    msgpack_sbuffer buf;
    msgpack_packer pk;
} reply;

static void
reply_init(reply *r)
{
    msgpack_sbuffer_init(&r->buf);
    msgpack_packer_init(&r->pk, &r->buf, msgpack_sbuffer_write);
}

// Sends the reply built in `r` and frees it; `last` closes the connection
// after it.
static void
reply_send(tp__conn *c, reply *r, bool last)
{
    size_t n = r->buf.size;
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};
    tp__conn_send(c, h, 4, r->buf.data, n, last);
    msgpack_sbuffer_destroy(&r->buf);
}

static void
send_error(tp__conn *c, const char *why, bool last)
{
    reply r;
    reply_init(&r);
    tp__ans_error(&r.pk, why);
    reply_send(c, &r, last);
}

// What a connection holds between requests: an `info` waiting for the
// actor's answer (q), or the trace it runs (trace), whose next events a
// `trace` or `trace_next` waits for (tracing).
typedef struct pending {
    tp__info *q;
    tp_pid pid;
    tp_trace *trace;
    bool tracing;
    tp_control_call *call; // a program's op being answered
} pending;

static void call_poll(tp__conn *c, pending *p, bool expired);
static void call_drop(pending *p);

// The connection's, made on first use; NULL when out of memory.
static pending *
pending_of(tp__conn *c)
{
    pending *p = tp__conn_data(c);
    if (p == NULL && (p = calloc(1, sizeof *p)) != NULL)
        tp__conn_set_data(c, p);
    return p;
}

static void
wake_io(void *io)
{
    tp__io_wake(io);
}

// Asks the actor for its details; the answer goes out from ctl_poll. An
// actor already known to be busy, or gone, is answered at once.
static void
op_info(tp__conn *c, reply *r, tp_pid pid)
{
    tp__server *srv = tp__conn_server(c);
    tp_system *sys = tp__server_sys(srv);
    tp_actor_info info;
    int rc = tp_actor_info_get(sys, pid, &info);
    if (rc == 0 && info.status == TP_ACTOR_BUSY) {
        tp__ans_info_busy(sys, &r->pk, &info);
        reply_send(c, r, false);
        return;
    }
    pending *p = rc == 0 ? pending_of(c) : NULL;
    if (p != NULL)
        p->q = tp__info_ask(sys, pid, wake_io, tp__server_io(srv), &rc);
    else if (rc == 0)
        rc = TP_ENOMEM;
    if (rc != 0) {
        tp__ans_info(sys, &r->pk, pid, rc, NULL);
        reply_send(c, r, false);
        return;
    }
    msgpack_sbuffer_destroy(&r->buf);
    p->pid = pid;
    tp__conn_wait(c, INFO_TIMEOUT_S);
}

// ---- trace
// -------------------------------------------------------------------

static const char *const trace_kinds[] = {"received", "sent", "signals",
                                          "life", "state"};

// Reads the optional unsigned `key` of `req` into *out, within 1..max;
// false when present and not that.
static bool
opt_uint(const msgpack_object *req, const char *key, uint32_t max,
         uint32_t *out)
{
    const msgpack_object *o = field(req, key);
    if (o == NULL)
        return true;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < 1 ||
        o->via.u64 > max)
        return false;
    *out = (uint32_t)o->via.u64;
    return true;
}

// Parses a trace request's options; on failure answers the error.
static bool
trace_opts(tp__conn *c, const msgpack_object *req, tp_trace_opts *o)
{
    *o = (tp_trace_opts){0};
    const msgpack_object *w = field(req, "what");
    if (w != NULL) {
        bool ok = w->type == MSGPACK_OBJECT_ARRAY && w->via.array.size > 0;
        for (uint32_t i = 0; ok && i < w->via.array.size; i++) {
            unsigned bit = 0;
            for (unsigned k = 0; k < 5; k++)
                if (str_is(&w->via.array.ptr[i], trace_kinds[k]))
                    bit = 1u << k;
            ok = bit != 0;
            o->what |= bit;
        }
        if (!ok) {
            send_error(c, "bad \"what\"", false);
            return false;
        }
    }
    const char *why = !opt_uint(req, "count", 1000000, &o->count) ? "count"
                      : !opt_uint(req, "seconds", 86400, &o->seconds)
                          ? "seconds"
                      : !opt_uint(req, "rate", 1000000, &o->rate) ? "rate"
                                                                  : NULL;
    if (why != NULL) {
        char msg[32];
        snprintf(msg, sizeof msg, "bad \"%s\"", why);
        send_error(c, msg, false);
        return false;
    }
    return true;
}

// Events a reply carries at most.
#define TRACE_BATCH 256
// How long a reply waits for events before it goes out without any.
#define TRACE_WAIT_S 1.0

// Answers a waiting trace request with the events there are, or with
// none once `expired`; returns whether it answered. A trace answered as
// ended is over.
static bool
trace_answer(tp__conn *c, pending *p, bool expired)
{
    // A trace seen ended before the read gets no more events: a read
    // short of a full batch then took its last ones.
    tp_trace_status st;
    tp_trace_status_get(p->trace, &st);
    tp_trace_event *ev = malloc(TRACE_BATCH * sizeof *ev);
    int n = ev != NULL ? tp_trace_read(p->trace, ev, TRACE_BATCH, 0) : 0;
    if (n == 0 && !expired && ev != NULL && st.end == TP_TRACE_RUNNING) {
        free(ev);
        return false;
    }
    if (n < 0) // it ended since the status was read
        tp_trace_status_get(p->trace, &st);
    else if (n == TRACE_BATCH)
        st.end = TP_TRACE_RUNNING; // more may be left: not the last reply
    reply r;
    reply_init(&r);
    if (ev == NULL)
        tp__ans_error(&r.pk, "out of memory");
    else
        tp__ans_trace(&r.pk, &st, ev, n > 0 ? (size_t)n : 0);
    free(ev);
    p->tracing = false;
    if (ev == NULL || st.end != TP_TRACE_RUNNING)
        tp_trace_stop(&p->trace);
    reply_send(c, &r, false);
    return true;
}

// Waits for the running trace's next events (trace, trace_next).
static void
trace_wait(tp__conn *c, pending *p)
{
    p->tracing = true;
    if (!trace_answer(c, p, false))
        tp__conn_wait(c, TRACE_WAIT_S);
}

// Starts a trace of `pid` on this connection, stopping the one it had.
static void
op_trace(tp__conn *c, const msgpack_object *req, tp_pid pid)
{
    tp__server *srv = tp__conn_server(c);
    tp_trace_opts o;
    if (!trace_opts(c, req, &o))
        return;
    pending *p = pending_of(c);
    if (p == NULL) {
        send_error(c, "out of memory", false);
        return;
    }
    tp_trace_stop(&p->trace);
    int rc = tp_trace_start(tp__server_sys(srv), pid, &o, &p->trace);
    if (rc != 0) {
        send_error(c,
                   rc == TP_ENOACTOR ? "no such actor"
                   : rc == TP_EEXIST ? "already traced"
                   : rc == TP_EAGAIN ? "too many traces (16)"
                                     : tp_strerror(rc),
                   false);
        return;
    }
    tp__trace_notify(p->trace, wake_io, tp__server_io(srv));
    trace_wait(c, p);
}

static void
op_trace_next(tp__conn *c)
{
    pending *p = tp__conn_data(c);
    if (p == NULL || p->trace == NULL) {
        send_error(c, "no trace on this connection", false);
        return;
    }
    trace_wait(c, p);
}

static void
ctl_poll(tp__conn *c, bool expired)
{
    pending *p = tp__conn_data(c);
    if (p->tracing) {
        trace_answer(c, p, expired);
        return;
    }
    if (p->call != NULL) {
        call_poll(c, p, expired);
        return;
    }
    tp_actor_detail *d = malloc(sizeof *d);
    int rc = d != NULL ? tp__info_poll(p->q, d) : TP_ENOMEM;
    if (rc == TP_EAGAIN && !expired) {
        free(d);
        return;
    }
    tp__info_drop(p->q);
    p->q = NULL;
    reply r;
    reply_init(&r);
    tp__ans_info(tp__server_sys(tp__conn_server(c)), &r.pk, p->pid, rc, d);
    free(d);
    reply_send(c, &r, false);
}

static void
ctl_close(tp__conn *c)
{
    pending *p = tp__conn_data(c);
    if (p != NULL) {
        tp__info_drop(p->q);
        tp_trace_stop(&p->trace);
        call_drop(p);
        free(p);
        tp__conn_set_data(c, NULL);
    }
}

// Parses the pid of an info or kill request into *pid; on failure answers
// the error and returns false.
static bool
req_pid(tp__conn *c, const msgpack_object *req, tp_pid *pid)
{
    const msgpack_object *p = field(req, "pid");
    char buf[TP_PID_STRLEN];
    if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
        p->via.str.size >= sizeof buf) {
        send_error(c, "missing or malformed \"pid\"", false);
        return false;
    }
    memcpy(buf, p->via.str.ptr, p->via.str.size);
    buf[p->via.str.size] = 0;
    if (tp_pid_parse(buf, pid) != 0 || tp_pid_is_nil(*pid)) {
        send_error(c, "malformed pid: expected <node.slot.generation>", false);
        return false;
    }
    return true;
}

// ---- the program's ops
// ---------------------------------------------------------

static void
call_unref(tp_control_call *k)
{
    pthread_mutex_lock(&k->lock);
    bool last = --k->refs == 0;
    pthread_mutex_unlock(&k->lock);
    if (last) {
        msgpack_sbuffer_destroy(&k->answer);
        pthread_mutex_destroy(&k->lock);
        free(k);
    }
}

int
tp_control_answer(tp_control_call *k, bool ok, const char *const *keys,
                  const char *const *values, size_t n)
{
    if (k == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&k->lock);
    bool wanted = k->waiting && !k->answered;
    if (wanted) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &k->answer, msgpack_sbuffer_write);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += keys[i] != NULL && values[i] != NULL;
        msgpack_pack_map(&pk, 1 + m);
        msgpack_pack_str_with_body(&pk, "ok", 2);
        if (ok)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        for (size_t i = 0; i < n; i++) {
            if (keys[i] == NULL || values[i] == NULL)
                continue;
            msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
            msgpack_pack_str_with_body(&pk, values[i], strlen(values[i]));
        }
        k->answered = true;
        tp__io_wake(k->io);
    }
    pthread_mutex_unlock(&k->lock);
    call_unref(k); // the program's reference
    return wanted ? 0 : TP_ENOENT;
}

// Hands an op the runtime does not serve to the program; false when it
// serves none.
static bool
op_program(tp__conn *c, const msgpack_object *req, const msgpack_object *op)
{
    tp__server *srv = tp__conn_server(c);
    tp__control *ctl = tp__server_sys(srv)->control;
    // acquire: pairs with tp_control_serve's release store of fn.
    tp_control_fn fn =
        ctl != NULL ? __atomic_load_n(&ctl->fn, __ATOMIC_ACQUIRE) : NULL;
    if (fn == NULL)
        return false;
    pending *p = pending_of(c);
    tp_control_call *k = calloc(1, sizeof *k);
    uint32_t nf = req->via.map.size;
    const char **keys = calloc(nf ? nf : 1, sizeof *keys);
    const char **vals = calloc(nf ? nf : 1, sizeof *vals);
    char *opname = malloc(op->via.str.size + 1);
    if (p == NULL || k == NULL || keys == NULL || vals == NULL ||
        opname == NULL || pthread_mutex_init(&k->lock, NULL) != 0) {
        free(k);
        free(keys);
        free(vals);
        free(opname);
        send_error(c, "out of memory", false);
        return true;
    }
    memcpy(opname, op->via.str.ptr, op->via.str.size);
    opname[op->via.str.size] = 0;
    size_t n = 0;
    for (uint32_t i = 0; i < nf; i++) {
        const msgpack_object_kv *kv = &req->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR ||
            kv->val.type != MSGPACK_OBJECT_STR || str_is(&kv->key, "op"))
            continue;
        char *kk = malloc(kv->key.via.str.size + 1);
        char *vv = malloc(kv->val.via.str.size + 1);
        if (kk == NULL || vv == NULL) {
            free(kk);
            free(vv);
            continue;
        }
        memcpy(kk, kv->key.via.str.ptr, kv->key.via.str.size);
        kk[kv->key.via.str.size] = 0;
        memcpy(vv, kv->val.via.str.ptr, kv->val.via.str.size);
        vv[kv->val.via.str.size] = 0;
        keys[n] = kk;
        vals[n] = vv;
        n++;
    }
    msgpack_sbuffer_init(&k->answer);
    k->io = tp__server_io(srv);
    k->refs = 2; // the connection's, the program's
    k->waiting = true;
    p->call = k;
    tp__conn_wait(c, ctl->fn_wait_s);
    fn(ctl->fn_arg, k, opname, keys, vals, n);
    for (size_t i = 0; i < n; i++) {
        free((void *)keys[i]);
        free((void *)vals[i]);
    }
    free(keys);
    free(vals);
    free(opname);
    return true;
}

// A program's op waiting: answers it once the program has, or with an
// error once the wait ran out.
static void
call_poll(tp__conn *c, pending *p, bool expired)
{
    tp_control_call *k = p->call;
    pthread_mutex_lock(&k->lock);
    bool answered = k->answered;
    if (!answered && !expired) {
        pthread_mutex_unlock(&k->lock);
        return;
    }
    k->waiting = false;
    size_t len = k->answer.size;
    char *copy = answered ? malloc(len ? len : 1) : NULL;
    if (copy != NULL)
        memcpy(copy, k->answer.data, len);
    pthread_mutex_unlock(&k->lock);
    p->call = NULL;
    call_unref(k);
    if (!answered || copy == NULL) {
        free(copy);
        send_error(
            c, answered ? "out of memory" : "the node did not answer in time",
            false);
        return;
    }
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 8), (uint8_t)len};
    tp__conn_send(c, h, 4, copy, len, false);
    free(copy);
}

// Drops the connection's part in a call it still waits for.
static void
call_drop(pending *p)
{
    tp_control_call *k = p->call;
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->lock);
    k->waiting = false;
    pthread_mutex_unlock(&k->lock);
    p->call = NULL;
    call_unref(k);
}

int
tp_control_serve(tp_system *sys, tp_control_fn fn, void *arg, double wait_s)
{
    if (sys == NULL || fn == NULL || !(wait_s >= 1 && wait_s <= 3600))
        return TP_EINVAL;
    if (sys->control == NULL)
        return TP_ENOENT;
    sys->control->fn_arg = arg;
    sys->control->fn_wait_s = wait_s;
    // The I/O thread reads fn: set it last. release: pairs with nothing
    // stronger than the loop's own wake-ups; a request racing the very
    // first set is served as an unknown op.
    __atomic_store_n(&sys->control->fn, fn, __ATOMIC_RELEASE);
    return 0;
}

// Answers one well-formed request (a map with a string "op").
static void
run_op(tp__conn *c, const msgpack_object *req, const msgpack_object *op)
{
    tp_system *sys = tp__server_sys(tp__conn_server(c));
    tp_pid pid;
    bool info = str_is(op, "info"), trace = str_is(op, "trace");
    if ((info || trace || str_is(op, "kill")) && !req_pid(c, req, &pid))
        return;
    if (trace) {
        op_trace(c, req, pid); // answers now or later
        return;
    }
    if (str_is(op, "trace_next")) {
        op_trace_next(c);
        return;
    }
    reply r;
    reply_init(&r);
    if (info) {
        op_info(c, &r, pid); // answers now or later
        return;
    }
    if (str_is(op, "snapshot"))
        tp__ans_snapshot(sys, &r.pk);
    else if (str_is(op, "stats"))
        tp__ans_stats(sys, &r.pk);
    else if (str_is(op, "nodes"))
        tp__ans_nodes(sys, &r.pk);
    else if (str_is(op, "groups"))
        tp__ans_groups(sys, &r.pk);
    else if (str_is(op, "kill"))
        tp__ans_kill(sys, &r.pk, pid, field(req, "reason"));
    else if (op_program(c, req, op)) { // answered later, or an error now
        msgpack_sbuffer_destroy(&r.buf);
        return;
    } else
        tp__ans_error(&r.pk, "unknown op");
    reply_send(c, &r, false);
}

// Answers the request `req` of `n` bytes. A malformed one gets an error and
// the connection closes after it.
static void
dispatch(tp__conn *c, const uint8_t *req, size_t n)
{
    if (tp__pack_check(req, n) != 0) {
        send_error(c, "malformed request: not one msgpack object", true);
        return;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const msgpack_object *op = NULL;
    if (msgpack_unpack_next(&u, (const char *)req, n, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP)
        send_error(c, "malformed request: not a map", true);
    else if ((op = field(&u.data, "op")) == NULL ||
             op->type != MSGPACK_OBJECT_STR)
        send_error(c, "malformed request: no \"op\" string", true);
    else
        run_op(c, &u.data, op);
    msgpack_unpacked_destroy(&u);
}

// A whole frame in the buffer is answered; a bad length is answered with
// an error and closes the connection.
static void
ctl_input(tp__conn *c)
{
    size_t have;
    const uint8_t *in = tp__conn_input(c, &have);
    if (have < 4)
        return;
    uint32_t len = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 |
                   (uint32_t)in[2] << 8 | in[3];
    if (len == 0 || len > REQ_MAX) {
        tp__conn_consume(c, have);
        send_error(c, "request length outside 1..65536", true);
        return;
    }
    if (have - 4 < len)
        return;
    dispatch(c, in + 4, len);
    tp__conn_consume(c, 4 + (size_t)len);
}

static bool
peer_allowed(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return false;
    return cr.uid == 0 || cr.uid == geteuid();
}

static void
ctl_open(tp__conn *c)
{
    if (peer_allowed(tp__conn_fd(c)))
        return;
    tp__log(tp__server_sys(tp__conn_server(c)), TP_LOG_WARNING,
            "control: refused a client of another user");
    send_error(c, "permission denied", true);
}

// Past the cap: one short frame, written without waiting (a new socket's
// buffer has room for it).
static void
ctl_refuse(int fd)
{
    reply r;
    reply_init(&r);
    char why[64];
    snprintf(why, sizeof why, "too many clients (%d): try again later",
             TP__SERVE_CLIENTS_MAX);
    tp__ans_error(&r.pk, why);
    size_t n = r.buf.size;
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};
    struct iovec v[2] = {{h, 4}, {r.buf.data, n}};
    struct msghdr mh = {.msg_iov = v, .msg_iovlen = 2};
    if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        // The client left already: nothing to tell it.
    }
    msgpack_sbuffer_destroy(&r.buf);
}

static const tp__serve_ops ctl_ops = {
    .name = "control",
    .in_max = 4 + REQ_MAX,
    .request_s = REQUEST_S,
    .reply_s = REPLY_S,
    .wake_client = TP__IO_CONTROL,
    .open = ctl_open,
    .input = ctl_input,
    .poll = ctl_poll,
    .close = ctl_close,
    .refuse = ctl_refuse,
};

// ---- lifetime
// -----------------------------------------------------------------

// The socket's directory: created 0700 if missing, else it must be ours
// and closed to others.
static int
check_dir(tp_system *sys, const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0700) != 0 || stat(dir, &st) != 0) {
            tp__log(sys, TP_LOG_ERR, "control: cannot create %s: %s", dir,
                    strerror(errno));
            return TP_EINVAL;
        }
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0) {
        tp__log(sys, TP_LOG_ERR,
                "control: directory %s must be owned by uid %u with mode 0700 "
                "(it has uid %u, mode %03o)",
                dir, (unsigned)geteuid(), (unsigned)st.st_uid,
                (unsigned)(st.st_mode & 0777));
        return TP_EPERM;
    }
    return 0;
}

int
tp_control_start(tp_system *sys, const char *path)
{
    if (sys == NULL || path == NULL || path[0] == 0)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    if (sys->control != NULL)
        return TP_EEXIST;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return TP_EINVAL;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = check_dir(sys, path);
    if (rc != 0)
        return rc;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            tp__log(sys, TP_LOG_ERR, "control: %s exists and is not a socket",
                    path);
            return TP_EEXIST;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 &&
                    connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            tp__log(sys, TP_LOG_ERR, "control: %s is served by a running node",
                    path);
            return TP_EEXIST;
        }
        unlink(path); // left behind by a node that died
    }
    tp__control *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TP_ENOMEM;
    snprintf(c->path, sizeof c->path, "%s", path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        free(c);
        return TP_EAGAIN;
    }
    mode_t old = umask(077);
    int b = bind(lfd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b != 0 || chmod(path, 0600) != 0 ||
        listen(lfd, TP__SERVE_CLIENTS_MAX) != 0) {
        rc = errno == EADDRINUSE ? TP_EADDRINUSE : TP_EINVAL;
        tp__log(sys, TP_LOG_ERR, "control: cannot listen on %s: %s", path,
                strerror(errno));
        if (b == 0)
            unlink(path);
        goto fail;
    }
    // Set before the server starts: the I/O thread reads it to serve
    // program ops, and starting the server orders this write before
    // anything it runs.
    sys->control = c;
    if ((rc = tp__server_start(&c->srv, sys, lfd, &ctl_ops)) != 0) {
        sys->control = NULL;
        unlink(path);
        goto fail;
    }
    tp__log(sys, TP_LOG_INFO, "control: listening on %s", path);
    return 0;
fail:
    close(lfd);
    free(c);
    return rc;
}

void
tp__control_stop(tp_system *sys)
{
    tp__control *c = sys->control;
    if (c == NULL)
        return;
    sys->control = NULL;
    tp__server_stop(&c->srv);
    unlink(c->path);
    free(c);
}
