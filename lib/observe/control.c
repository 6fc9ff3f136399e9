// SPDX-License-Identifier: MIT
// The control socket: a Unix stream socket answering msgpack requests with
// introspection data (lib/observe/CONTROL.md). One thread serves one client at a
// time; every read has a deadline and every frame a size limit, so a bad
// client costs at most a few seconds of this thread, never the node.
#include "core/core.h"
#include "dist/dist.h"
#include "observe/observe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQ_MAX 65536
#define IO_TIMEOUT_MS 5000
#define INFO_TIMEOUT_MS 2000

typedef struct tp__control {
    tp_system *sys;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lfd;
    int wake[2];
    pthread_t thread;
} tp__control;

// ---- I/O with deadlines
// -----------------------------------------------------

// Reads exactly `n` bytes unless EOF, an error, the deadline or a stop
// request comes first. Returns 1 when done, 0 at a clean EOF before any
// byte, -1 otherwise.
static int
read_full(tp__control *c, int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
        int r = poll(pf, 2, IO_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (pf[1].revents & POLLIN))
            return -1;
        ssize_t k = read(fd, p + got, n - got);
        if (k == 0)
            return got == 0 ? 0 : -1;
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        got += (size_t)k;
    }
    return 1;
}

static bool
write_frame(int fd, const msgpack_sbuffer *b)
{
    uint8_t h[4] = {(uint8_t)(b->size >> 24), (uint8_t)(b->size >> 16),
                    (uint8_t)(b->size >> 8), (uint8_t)b->size};
    struct iovec v[2] = {{h, 4}, {b->data, b->size}};
    size_t left = 4 + b->size;
    int idx = 0;
    while (left > 0) {
        struct msghdr mh = {.msg_iov = v + idx, .msg_iovlen = 2 - (size_t)idx};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0)
                    return false;
                continue;
            }
            return false;
        }
        left -= (size_t)w;
        while (w > 0) {
            size_t take =
                (size_t)w < v[idx].iov_len ? (size_t)w : v[idx].iov_len;
            v[idx].iov_base = (char *)v[idx].iov_base + take;
            v[idx].iov_len -= take;
            w -= (ssize_t)take;
            if (v[idx].iov_len == 0 && idx < 1)
                idx++;
        }
    }
    return true;
}

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
op_snapshot(tp__control *c, msgpack_packer *pk)
{
    tp_snapshot *s;
    if (tp_snapshot_take(c->sys, &s) != 0) {
        pk_error(pk, "out of memory");
        return;
    }
    msgpack_pack_map(pk, 6);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(c->sys));
    pk_key_u64(pk, "uptime_ms", tp_snapshot_uptime_ms(s));
    pk_key_u64(pk, "threads", tp_snapshot_stats(s)->threads);
    pk_cpu_time(pk, c->sys);
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
info_busy(tp__control *c, msgpack_packer *pk, const tp_actor_info *info)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, c->sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS);
    pk_actor_fields(pk, info);
}

static void
op_info(tp__control *c, msgpack_packer *pk, tp_pid pid)
{
    tp_actor_detail d;
    int rc = tp_actor_info_get(c->sys, pid, &d.info);
    if (rc == 0 && d.info.status == TP_ACTOR_BUSY) {
        info_busy(c, pk, &d.info);
        return;
    }
    if (rc == 0)
        rc = tp_actor_detail_get(c->sys, pid, &d, INFO_TIMEOUT_MS);
    if (rc == TP_ETIMEDOUT && tp_actor_info_get(c->sys, pid, &d.info) == 0) {
        info_busy(c, pk, &d.info);
        return;
    }
    if (rc == TP_ENOACTOR) {
        pk_error(pk, "no such actor");
        return;
    }
    if (rc != 0) {
        pk_error(pk, rc == TP_ETIMEDOUT ? "the actor did not answer in time"
                                        : tp_strerror(rc));
        return;
    }
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, c->sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS + 5);
    pk_actor_fields(pk, &d.info);
    pk_str(pk, "trap_exit");
    if (d.trap_exit)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pk_pids(pk, "links", d.links, d.nlinks);
    pk_pids(pk, "monitors", d.monitors, d.nmonitors);
    pk_pids(pk, "monitored_by", d.watchers, d.nwatchers);
    pk_key_str(pk, "describe", d.describe);
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
op_kill(tp__control *c, msgpack_packer *pk, tp_pid pid,
        const msgpack_object *reason)
{
    int r;
    if (!parse_reason(reason, &r)) {
        pk_error(pk, "bad reason: use kill, shutdown, normal or a negative "
                     "error code");
        return;
    }
    int rc = tp_system_exit(c->sys, pid, r);
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
op_stats(tp__control *c, msgpack_packer *pk)
{
    tp_system_stats st;
    tp_system_stats_get(c->sys, &st);
    int64_t now = tp__now_coarse_ms();
    msgpack_pack_map(pk, 17);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(c->sys));
    pk_key_u64(pk, "uptime_ms", (uint64_t)(now - c->sys->born_ms));
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
        tp_worker_stats_get(c->sys, i, &w);
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
op_nodes(tp__control *c, msgpack_packer *pk)
{
    int n = tp_node_peers(c->sys, NULL, 0);
    if (n < 0)
        n = 0;
    tp_peer_info *pi = n ? calloc((size_t)n, sizeof *pi) : NULL;
    if (n > 0 && pi == NULL) {
        pk_error(pk, "out of memory");
        return;
    }
    int got = n ? tp_node_peers(c->sys, pi, (size_t)n) : 0;
    if (got > n)
        got = n;
    if (got < 0)
        got = 0;
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(c->sys));
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

// Answers one request into `pk`. Returns false when the connection should
// close after the reply (a malformed request).
static bool
dispatch(tp__control *c, const uint8_t *req, size_t n, msgpack_packer *pk)
{
    if (tp__pack_check(req, n) != 0) {
        pk_error(pk, "malformed request: not one msgpack object");
        return false;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool keep = true;
    if (msgpack_unpack_next(&u, (const char *)req, n, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        pk_error(pk, "malformed request: not a map");
        keep = false;
        goto out;
    }
    const msgpack_object *op = field(&u.data, "op");
    if (op == NULL || op->type != MSGPACK_OBJECT_STR) {
        pk_error(pk, "malformed request: no \"op\" string");
        keep = false;
        goto out;
    }
    if (str_is(op, "snapshot")) {
        op_snapshot(c, pk);
    } else if (str_is(op, "stats")) {
        op_stats(c, pk);
    } else if (str_is(op, "nodes")) {
        op_nodes(c, pk);
    } else if (str_is(op, "info") || str_is(op, "kill")) {
        const msgpack_object *p = field(&u.data, "pid");
        char buf[TP_PID_STRLEN];
        tp_pid pid;
        if (p == NULL || p->type != MSGPACK_OBJECT_STR ||
            p->via.str.size >= sizeof buf) {
            pk_error(pk, "missing or malformed \"pid\"");
            goto out;
        }
        memcpy(buf, p->via.str.ptr, p->via.str.size);
        buf[p->via.str.size] = 0;
        if (tp_pid_parse(&pid, buf) != 0 || tp_pid_is_nil(pid)) {
            pk_error(pk, "malformed pid: expected <node.slot.generation>");
            goto out;
        }
        if (str_is(op, "info"))
            op_info(c, pk, pid);
        else
            op_kill(c, pk, pid, field(&u.data, "reason"));
    } else {
        pk_error(pk, "unknown op");
    }
out:
    msgpack_unpacked_destroy(&u);
    return keep;
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
serve(tp__control *c, int fd)
{
    msgpack_sbuffer out;
    msgpack_packer pk;
    msgpack_sbuffer_init(&out);
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    uint8_t *req = NULL;
    if (!peer_allowed(fd)) {
        pk_error(&pk, "permission denied");
        write_frame(fd, &out);
        tp__log(c->sys, TP_LOG_WARNING,
                "control: refused a client of another user");
        goto done;
    }
    for (;;) {
        uint8_t h[4];
        int r = read_full(c, fd, h, 4);
        if (r <= 0)
            break;
        uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                       (uint32_t)h[2] << 8 | h[3];
        msgpack_sbuffer_clear(&out);
        if (len == 0 || len > REQ_MAX) {
            pk_error(&pk, "request length outside 1..65536");
            write_frame(fd, &out);
            break;
        }
        uint8_t *nreq = realloc(req, len);
        if (nreq == NULL)
            break;
        req = nreq;
        if (read_full(c, fd, req, len) != 1)
            break;
        bool keep = dispatch(c, req, len, &pk);
        if (!write_frame(fd, &out) || !keep)
            break;
    }
done:
    free(req);
    msgpack_sbuffer_destroy(&out);
}

static void *
control_main(void *arg)
{
    tp__control *c = arg;
    for (;;) {
        struct pollfd pf[2] = {{c->lfd, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve(c, fd);
        close(fd);
    }
    return NULL;
}

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
    c->sys = sys;
    c->wake[0] = c->wake[1] = -1;
    snprintf(c->path, sizeof c->path, "%s", path);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || pipe2(c->wake, O_CLOEXEC) != 0) {
        rc = TP_EAGAIN;
        goto fail;
    }
    mode_t old = umask(077);
    int b = bind(c->lfd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b != 0 || chmod(path, 0600) != 0 || listen(c->lfd, 16) != 0) {
        rc = errno == EADDRINUSE ? TP_EADDRINUSE : TP_EINVAL;
        tp__log(sys, TP_LOG_ERR, "control: cannot listen on %s: %s", path,
                strerror(errno));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
        unlink(path);
        rc = TP_EAGAIN;
        goto fail;
    }
    sys->control = c;
    tp__log(sys, TP_LOG_INFO, "control: listening on %s", path);
    return 0;
fail:
    if (c->lfd >= 0)
        close(c->lfd);
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
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
    if (write(c->wake[1], "x", 1) < 0) {
        // The pipe is ours and empty: this cannot fail in practice.
    }
    pthread_join(c->thread, NULL);
    close(c->lfd);
    close(c->wake[0]);
    close(c->wake[1]);
    unlink(c->path);
    free(c);
}
