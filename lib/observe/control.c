// SPDX-License-Identifier: MIT
// The control socket: a Unix stream socket answering msgpack requests with
// introspection data (lib/observe/CONTROL.md), served on the I/O thread by
// serve.c. Each client has its own connection and deadlines, so a slow or
// bad client costs its own slot, never the node or the other clients; a
// request that needs an actor's answer (info) waits for it without
// holding up the I/O thread.
#include "core/core.h"
#include "io/io.h"
#include "observe/observe.h"

#include <errno.h>
#include <limits.h>
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
} tp__control;

// ---- packing helpers
// ----------------------------------------------------------

static void
pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
pk_key_str(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

static void
pk_key_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
pk_pid(msgpack_packer *pk, tp_pid p)
{
    char buf[TP_PID_STRLEN];
    tp_pid_format(p, buf, sizeof buf);
    pk_str(pk, buf);
}

static void
pk_error(msgpack_packer *pk, const char *why)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "ok");
    msgpack_pack_false(pk);
    pk_key_str(pk, "error", why);
}

static const char *
status_name(tp_actor_status s)
{
    switch (s) {
    case TP_ACTOR_WAITING:
        return "waiting";
    case TP_ACTOR_RUNNABLE:
        return "runnable";
    case TP_ACTOR_MUTED:
        return "muted";
    case TP_ACTOR_EXITING:
        return "exiting";
    case TP_ACTOR_BUSY:
        return "busy";
    }
    return "?";
}

#define ACTOR_KEYS 16 // pk_actor_fields

static void
pk_actor_fields(msgpack_packer *pk, const tp_actor_info *a)
{
    pk_str(pk, "pid");
    pk_pid(pk, a->pid);
    pk_str(pk, "parent");
    if (tp_pid_is_nil(a->parent))
        msgpack_pack_nil(pk);
    else
        pk_pid(pk, a->parent);
    pk_key_str(pk, "name", a->name);
    pk_key_str(pk, "behaviour", a->behaviour);
    pk_key_str(pk, "status", status_name(a->status));
    pk_key_u64(pk, "mailbox", a->mailbox);
    pk_key_u64(pk, "capacity", a->capacity);
    pk_key_u64(pk, "high_water", a->high_water);
    pk_key_u64(pk, "handled", a->handled);
    pk_key_u64(pk, "dropped", a->dropped);
    pk_key_u64(pk, "rejected", a->rejected);
    pk_key_u64(pk, "restarts", a->restarts);
    pk_key_u64(pk, "age_ms", a->age_ms);
    pk_key_u64(pk, "cpu_us", a->cpu_ns / 1000);
    pk_key_u64(pk, "start_order", a->start_order);
    pk_key_u64(pk, "busy_ms", a->busy_ms);
}

// "cpu_time": whether the node measures its actors' run time.
static void
pk_cpu_time(msgpack_packer *pk, tp_system *sys)
{
    pk_str(pk, "cpu_time");
    if (sys->cfg.cpu_time)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void
pk_pids(msgpack_packer *pk, const char *key, const tp_pid *p, uint32_t n)
{
    pk_str(pk, key);
    uint32_t shown = n < TP_DETAIL_PIDS ? n : TP_DETAIL_PIDS;
    msgpack_pack_array(pk, shown);
    for (uint32_t i = 0; i < shown; i++)
        pk_pid(pk, p[i]);
}

// ---- requests
// -------------------------------------------------------------------

static void
op_snapshot(tp_system *sys, msgpack_packer *pk)
{
    tp_snapshot *s;
    if (tp_snapshot_take(sys, &s) != 0) {
        pk_error(pk, "out of memory");
        return;
    }
    msgpack_pack_map(pk, 6);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_key_u64(pk, "uptime_ms", tp_snapshot_uptime_ms(s));
    pk_key_u64(pk, "threads", tp_snapshot_stats(s)->threads);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actors");
    size_t n = tp_snapshot_len(s);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, ACTOR_KEYS);
        pk_actor_fields(pk, tp_snapshot_at(s, i));
    }
    tp_snapshot_free(s);
}

// An actor stuck in a callback cannot say what only it knows: the reply
// then holds what a snapshot shows of it, without the detail keys.
static void
info_busy(tp_system *sys, msgpack_packer *pk, const tp_actor_info *info)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS);
    pk_actor_fields(pk, info);
}

// The answer to `info` once the question is settled: rc is
// tp__info_poll's (TP_EAGAIN: the actor did not answer in time) or
// tp__info_ask's.
static void
info_reply(tp_system *sys, msgpack_packer *pk, tp_pid pid, int rc,
           const tp_actor_detail *d)
{
    tp_actor_info info;
    if (rc == TP_EAGAIN && tp_actor_info_get(sys, pid, &info) == 0) {
        info_busy(sys, pk, &info);
        return;
    }
    if (rc != 0) {
        pk_error(pk, rc == TP_ENOACTOR ? "no such actor"
                     : rc == TP_EAGAIN ? "the actor did not answer in time"
                                       : tp_strerror(rc));
        return;
    }
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS + 5);
    pk_actor_fields(pk, &d->info);
    pk_str(pk, "trap_exit");
    if (d->trap_exit)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pk_pids(pk, "links", d->links, d->nlinks);
    pk_pids(pk, "monitors", d->monitors, d->nmonitors);
    pk_pids(pk, "monitored_by", d->watchers, d->nwatchers);
    pk_key_str(pk, "describe", d->describe);
}

static bool
parse_reason(const msgpack_object *o, int *out)
{
    if (o == NULL) {
        *out = TP_REASON_KILL;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT_MIN) {
        *out = (int)o->via.i64;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    static const struct {
        const char *name;
        int reason;
    } names[] = {{"kill", TP_REASON_KILL},
                 {"shutdown", TP_REASON_SHUTDOWN},
                 {"normal", TP_REASON_NORMAL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (o->via.str.size == strlen(names[i].name) &&
            memcmp(o->via.str.ptr, names[i].name, o->via.str.size) == 0) {
            *out = names[i].reason;
            return true;
        }
    return false;
}

static void
op_kill(tp_system *sys, msgpack_packer *pk, tp_pid pid,
        const msgpack_object *reason)
{
    int r;
    if (!parse_reason(reason, &r)) {
        pk_error(pk, "bad reason: use kill, shutdown, normal or a negative "
                     "error code");
        return;
    }
    int rc = tp_system_exit(sys, pid, r);
    if (rc != 0) {
        pk_error(pk, rc == TP_ENOACTOR ? "no such actor" : tp_strerror(rc));
        return;
    }
    msgpack_pack_map(pk, 1);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
}

static uint64_t
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void
op_stats(tp_system *sys, msgpack_packer *pk)
{
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    int64_t now = tp__now_coarse_ms();
    msgpack_pack_map(pk, 17);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_key_u64(pk, "uptime_ms", (uint64_t)(now - sys->born_ms));
    pk_key_u64(pk, "threads", st.threads);
    pk_key_u64(pk, "actors", st.actors);
    pk_key_u64(pk, "spawned", st.spawned);
    pk_key_u64(pk, "exited", st.exited);
    pk_key_u64(pk, "crashed", st.crashed);
    pk_key_u64(pk, "dead_letters", st.dead_letters);
    pk_key_u64(pk, "timers", st.timers);
    pk_key_u64(pk, "stalls", st.stalls);
    pk_key_u64(pk, "messages", st.total.messages);
    pk_key_u64(pk, "activations", st.total.activations);
    pk_key_u64(pk, "steals", st.total.steals);
    pk_key_u64(pk, "sleeps", st.total.sleeps);
    pk_str(pk, "workers");
    msgpack_pack_array(pk, st.threads);
    for (unsigned i = 0; i < st.threads; i++) {
        tp_worker_stats w;
        tp_worker_stats_get(sys, i, &w);
        msgpack_pack_map(pk, 4);
        pk_key_u64(pk, "activations", w.activations);
        pk_key_u64(pk, "messages", w.messages);
        pk_key_u64(pk, "steals", w.steals);
        pk_key_u64(pk, "sleeps", w.sleeps);
    }
    pk_key_u64(pk, "rss_bytes", rss_bytes());
}

static const char *
peer_state(tp_peer_state s)
{
    switch (s) {
    case TP_PEER_IDLE:
        return "idle";
    case TP_PEER_CONNECTING:
        return "connecting";
    case TP_PEER_UP:
        return "up";
    case TP_PEER_BACKOFF:
        return "backoff";
    }
    return "?";
}

static void
op_nodes(tp_system *sys, msgpack_packer *pk)
{
    int n = tp_node_peers(sys, NULL, 0);
    if (n < 0)
        n = 0;
    tp_peer_info *pi = n ? calloc((size_t)n, sizeof *pi) : NULL;
    if (n > 0 && pi == NULL) {
        pk_error(pk, "out of memory");
        return;
    }
    int got = n ? tp_node_peers(sys, pi, (size_t)n) : 0;
    if (got > n)
        got = n;
    if (got < 0)
        got = 0;
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_str(pk, "peers");
    msgpack_pack_array(pk, (size_t)got);
    for (int i = 0; i < got; i++) {
        msgpack_pack_map(pk, 9);
        pk_key_str(pk, "node", pi[i].node);
        pk_key_u64(pk, "incarnation", pi[i].incarnation);
        pk_key_str(pk, "state", peer_state(pi[i].state));
        pk_key_u64(pk, "rtt_us", pi[i].rtt_us);
        pk_key_u64(pk, "queued", pi[i].queued);
        pk_key_u64(pk, "sent", pi[i].sent);
        pk_key_u64(pk, "received", pi[i].received);
        pk_key_u64(pk, "dropped", pi[i].dropped);
        pk_key_u64(pk, "connects", pi[i].connects);
    }
    free(pi);
}

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
    pk_error(&r.pk, why);
    reply_send(c, &r, last);
}

// An `info` waiting for the actor's answer.
typedef struct pending {
    tp__info *q;
    tp_pid pid;
} pending;

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
        info_busy(sys, &r->pk, &info);
        reply_send(c, r, false);
        return;
    }
    pending *p = rc == 0 ? malloc(sizeof *p) : NULL;
    if (p != NULL)
        p->q = tp__info_ask(sys, pid, wake_io, tp__server_io(srv), &rc);
    else if (rc == 0)
        rc = TP_ENOMEM;
    if (rc != 0) {
        free(p);
        info_reply(sys, &r->pk, pid, rc, NULL);
        reply_send(c, r, false);
        return;
    }
    msgpack_sbuffer_destroy(&r->buf);
    p->pid = pid;
    tp__conn_set_data(c, p);
    tp__conn_wait(c, INFO_TIMEOUT_S);
}

static void
ctl_poll(tp__conn *c, bool expired)
{
    pending *p = tp__conn_data(c);
    tp_actor_detail *d = malloc(sizeof *d);
    int rc = d != NULL ? tp__info_poll(p->q, d) : TP_ENOMEM;
    if (rc == TP_EAGAIN && !expired) {
        free(d);
        return;
    }
    tp__info_drop(p->q);
    tp__conn_set_data(c, NULL);
    reply r;
    reply_init(&r);
    info_reply(tp__server_sys(tp__conn_server(c)), &r.pk, p->pid, rc, d);
    free(p);
    free(d);
    reply_send(c, &r, false);
}

static void
ctl_close(tp__conn *c)
{
    pending *p = tp__conn_data(c);
    if (p != NULL) {
        tp__info_drop(p->q);
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
    if (tp_pid_parse(pid, buf) != 0 || tp_pid_is_nil(*pid)) {
        send_error(c, "malformed pid: expected <node.slot.generation>", false);
        return false;
    }
    return true;
}

// Answers one well-formed request (a map with a string "op").
static void
run_op(tp__conn *c, const msgpack_object *req, const msgpack_object *op)
{
    tp_system *sys = tp__server_sys(tp__conn_server(c));
    tp_pid pid;
    bool info = str_is(op, "info");
    if ((info || str_is(op, "kill")) && !req_pid(c, req, &pid))
        return;
    reply r;
    reply_init(&r);
    if (info) {
        op_info(c, &r, pid); // answers now or later
        return;
    }
    if (str_is(op, "snapshot"))
        op_snapshot(sys, &r.pk);
    else if (str_is(op, "stats"))
        op_stats(sys, &r.pk);
    else if (str_is(op, "nodes"))
        op_nodes(sys, &r.pk);
    else if (str_is(op, "kill"))
        op_kill(sys, &r.pk, pid, field(req, "reason"));
    else
        pk_error(&r.pk, "unknown op");
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
    pk_error(&r.pk, why);
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
    if ((rc = tp__server_start(&c->srv, sys, lfd, &ctl_ops, c)) != 0) {
        unlink(path);
        goto fail;
    }
    sys->control = c;
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
