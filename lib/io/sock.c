// SPDX-License-Identifier: MIT
// Actors' sockets. The I/O thread owns every socket's state; actors reach
// it through a command list and a table of slots whose few shared fields
// (generation, owner, bytes waiting, data messages in flight) are atomics,
// so checking a handle and its owner never waits for the I/O thread. A
// handle is the slot's index and generation: a closed socket's handle
// stays dead when its slot is reused.
#include "core/core.h"
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS_MAX 65536

enum { K_LISTEN, K_CONNECTING, K_STREAM };
enum { C_WATCH, C_SEND, C_CLOSE, C_RESUME, C_OWNER_DIED, C_GIVEN };

typedef struct tsock {
    uint32_t idx;
    int fd;
    int kind;
    bool paused;  // stopped reading: the owner has a window's worth
    bool closing; // close once the output is written
    tp__io_fd rio, wio;
    tp__wbuf out;
    size_t out_off;
} tsock;

typedef struct tp__socks tp__socks;

typedef struct slot {
    tp__socks *t;
    uint32_t idx;
    bool zombie; // closed with data messages still out; under t->lock
    _Atomic uint32_t gen;
    _Atomic int open;
    _Atomic uint64_t owner;    // pid
    _Atomic uint64_t pending;  // bytes queued to send
    _Atomic uint32_t inflight; // data messages in the owner's mailbox
    _Atomic int held;          // accepted, not to read until given
    tsock *s;                  // I/O thread only
} slot;

typedef struct cmd {
    struct cmd *next;
    int op;
    uint32_t idx, gen;
    uint64_t pid;
    size_t size;
    uint8_t data[];
} cmd;

struct tp__socks {
    tp_system *sys;
    tp__io *io;
    pthread_mutex_t lock; // slot allocation and the command list
    slot *slots;
    uint32_t next_idx;
    uint32_t *free_idx;
    uint32_t nfree;
    cmd *head, *tail;
};

// ---- handles --------------------------------------------------------------

static tp_sock
handle(const slot *sl, uint32_t idx)
{
    // relaxed: the generation only changes on the I/O thread, at close.
    return ((uint64_t)atomic_load_explicit(&sl->gen, memory_order_relaxed)
            << 32) |
           (idx + 1);
}

static tp__socks *
socks_of(tp_system *sys)
{
    return atomic_load_explicit(&sys->socks, memory_order_acquire);
}

// The slot `s` names if it is open, else NULL.
static slot *
slot_of(tp__socks *t, tp_sock s, uint32_t *idx)
{
    uint32_t i = (uint32_t)s;
    if (t == NULL || i == 0 || i > SLOTS_MAX)
        return NULL;
    i--;
    // acquire: the table grows only under the lock; next_idx is read
    // racily but every index below it points into allocated slots.
    if (i >= SLOTS_MAX)
        return NULL;
    slot *sl = &t->slots[i];
    if (atomic_load_explicit(&sl->gen, memory_order_acquire) !=
            (uint32_t)(s >> 32) ||
        !atomic_load_explicit(&sl->open, memory_order_acquire))
        return NULL;
    *idx = i;
    return sl;
}

static void
push_cmd(tp__socks *t, cmd *c)
{
    c->next = NULL;
    pthread_mutex_lock(&t->lock);
    if (t->tail)
        t->tail->next = c;
    else
        t->head = c;
    t->tail = c;
    pthread_mutex_unlock(&t->lock);
    tp__io_wake(t->io);
}

static cmd *
cmd_new(int op, uint32_t idx, uint32_t gen, size_t size)
{
    cmd *c = malloc(sizeof *c + size);
    if (c != NULL) {
        c->op = op;
        c->idx = idx;
        c->gen = gen;
        c->pid = 0;
        c->size = size;
    }
    return c;
}

// ---- the I/O thread
// ---------------------------------------------------------

static void sock_read_cb(tp__io_fd *w, int revents);
static void sock_write_cb(tp__io_fd *w, int revents);

// Frees the socket in slot `idx`; tells its owner unless `quiet`.
static void
sock_free(tp__socks *t, uint32_t idx, int err, bool quiet)
{
    slot *sl = &t->slots[idx];
    tsock *s = sl->s;
    if (s == NULL)
        return;
    tp_sock h = handle(sl, idx);
    tp__io_fd_stop(t->io, &s->rio);
    tp__io_fd_stop(t->io, &s->wio);
    close(s->fd);
    tp__wbuf_free(&s->out);
    free(s);
    sl->s = NULL;
    tp_pid owner = {atomic_load_explicit(&sl->owner, memory_order_acquire)};
    atomic_store_explicit(&sl->open, 0, memory_order_release);
    if (!quiet) {
        int32_t e = err;
        tp__msg *m = tp__msg_new_copy(t->sys, TP_TAG_SOCK_CLOSED, TP_PID_NIL,
                                      &e, sizeof e);
        if (m != NULL) {
            m->pub.ref = h;
            if (tp__deliver_force(t->sys, owner, m) != 0)
                tp__msg_free(m);
        }
    }
    pthread_mutex_lock(&t->lock);
    // release: a handle of the old generation is dead from here on.
    atomic_fetch_add_explicit(&sl->gen, 1, memory_order_release);
    atomic_store_explicit(&sl->pending, 0, memory_order_relaxed);
    // A slot with data messages still out is reused only once they are
    // gone, so their accounting never reaches a newer socket.
    if (atomic_load_explicit(&sl->inflight, memory_order_acquire) == 0)
        t->free_idx[t->nfree++] = idx;
    else
        sl->zombie = true;
    pthread_mutex_unlock(&t->lock);
}

// Delivers `m` about slot `idx` to its owner; a dead owner closes it.
static bool
to_owner(tp__socks *t, uint32_t idx, tp__msg *m)
{
    slot *sl = &t->slots[idx];
    m->pub.ref = handle(sl, idx);
    tp_pid owner = {atomic_load_explicit(&sl->owner, memory_order_acquire)};
    if (tp__deliver_force(t->sys, owner, m) == 0)
        return true;
    tp__msg_free(m);
    sock_free(t, idx, 0, true);
    return false;
}

static void
sock_flush(tp__socks *t, uint32_t idx)
{
    tsock *s = t->slots[idx].s;
    while (s->out_off < s->out.len) {
        ssize_t w = send(s->fd, s->out.p + s->out_off, s->out.len - s->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            sock_free(t, idx, -errno, false);
            return;
        }
        s->out_off += (size_t)w;
        atomic_fetch_sub_explicit(&t->slots[idx].pending, (uint64_t)w,
                                  memory_order_relaxed);
    }
    if (s->out_off == s->out.len) {
        s->out.len = s->out_off = 0;
        tp__io_fd_stop(t->io, &s->wio);
        if (s->closing)
            sock_free(t, idx, 0, true);
    } else {
        tp__io_fd_start(t->io, &s->wio);
    }
}

static uint32_t
slot_alloc(tp__socks *t)
{
    uint32_t idx = UINT32_MAX;
    pthread_mutex_lock(&t->lock);
    if (t->nfree > 0)
        idx = t->free_idx[--t->nfree];
    else if (t->next_idx < SLOTS_MAX)
        idx = t->next_idx++;
    pthread_mutex_unlock(&t->lock);
    return idx;
}

static tsock *
tsock_new(tp__socks *t, uint32_t idx, int fd, int kind)
{
    tsock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->idx = idx;
    s->fd = fd;
    s->kind = kind;
    tp__io_fd_init(&s->rio, sock_read_cb, fd, TP__IO_READ);
    tp__io_fd_init(&s->wio, sock_write_cb, fd, TP__IO_WRITE);
    s->rio.data = s->wio.data = t;
    return s;
}

static void
do_accept(tp__socks *t, uint32_t lidx)
{
    tsock *l = t->slots[lidx].s;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        uint32_t idx = slot_alloc(t);
        tsock *s = idx == UINT32_MAX ? NULL : tsock_new(t, idx, fd, K_STREAM);
        if (s == NULL) {
            if (idx != UINT32_MAX) {
                pthread_mutex_lock(&t->lock);
                t->free_idx[t->nfree++] = idx;
                pthread_mutex_unlock(&t->lock);
            }
            close(fd);
            tp__log(t->sys, TP_LOG_WARNING,
                    "sock: connection refused: socket table full");
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        slot *ns = &t->slots[idx];
        ns->s = s;
        atomic_store_explicit(
            &ns->owner,
            atomic_load_explicit(&t->slots[lidx].owner, memory_order_acquire),
            memory_order_release);
        atomic_store_explicit(&ns->inflight, 0, memory_order_relaxed);
        atomic_store_explicit(&ns->held, 0, memory_order_relaxed);
        atomic_store_explicit(&ns->open, 1, memory_order_release);
        tp_sock_accepted a = {.sock = handle(ns, idx)};
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
        snprintf(a.peer, sizeof a.peer, "%s:%u", ip, ntohs(sa.sin_port));
        tp__msg *m = tp__msg_new_copy(t->sys, TP_TAG_SOCK_ACCEPTED, TP_PID_NIL,
                                      &a, sizeof a);
        if (m == NULL) {
            sock_free(t, idx, 0, true);
            continue;
        }
        // Reading starts once the owner has handled this message, so data
        // goes to whoever it handed the socket to.
        s->paused = true;
        m->flags |= TP__MSG_SOCK_START;
        m->aux = ns;
        if (!to_owner(t, lidx, m)) {
            sock_free(t, idx, 0, true);
            return; // the listener's owner is gone: so is the listener
        }
    }
}

static void
do_read(tp__socks *t, uint32_t idx)
{
    slot *sl = &t->slots[idx];
    tsock *s = sl->s;
    if (atomic_load_explicit(&sl->inflight, memory_order_acquire) >=
        TP_SOCK_WINDOW) {
        tp__io_fd_stop(t->io, &s->rio);
        s->paused = true; // resumed when the owner has caught up
        return;
    }
    // The bytes go in a buffer of their own, which the mailbox frees as
    // soon as the owner has handled them (TP__MSG_OWNS_BUF): inline, a
    // full read's 64 KiB would stay allocated while the message is kept
    // as its lane's stub, for as long as the owner stays idle.
    void *buf = malloc(TP_SOCK_READ_MAX);
    tp__msg *m = buf != NULL ? tp__msg_new_buf(t->sys, TP_TAG_SOCK_DATA,
                                               TP_PID_NIL, buf, 0)
                             : NULL;
    if (m == NULL) {
        free(buf);
        return;
    }
    ssize_t r = read(s->fd, buf, TP_SOCK_READ_MAX);
    if (r <= 0) {
        tp__msg_free(m);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        sock_free(t, idx, r == 0 ? 0 : -errno, false);
        return;
    }
    m->pub.size = (size_t)r;
    m->flags |= TP__MSG_SOCK_DATA;
    m->aux = sl;
    atomic_fetch_add_explicit(&sl->inflight, 1, memory_order_acq_rel);
    to_owner(t, idx, m);
}

static void
sock_read_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    tp__socks *t = w->data;
    tsock *s = (tsock *)((char *)w - offsetof(tsock, rio));
    if (s->kind == K_LISTEN)
        do_accept(t, s->idx);
    else
        do_read(t, s->idx);
}

static void
sock_write_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    tp__socks *t = w->data;
    tsock *s = (tsock *)((char *)w - offsetof(tsock, wio));
    uint32_t idx = s->idx;
    if (s->kind == K_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            sock_free(t, idx, -err, false);
            return;
        }
        s->kind = K_STREAM;
        tp__io_fd_stop(t->io, &s->wio);
        tp__msg *m = tp__msg_new_copy(t->sys, TP_TAG_SOCK_CONNECTED,
                                      TP_PID_NIL, NULL, 0);
        if (m == NULL || !to_owner(t, idx, m))
            return;
        tp__io_fd_start(t->io, &s->rio);
        if (s->out.len > s->out_off)
            sock_flush(t, idx);
        return;
    }
    sock_flush(t, idx);
}

// Closes every socket `pid` owns, quietly; io->lock held.
static void
close_owned(tp__socks *t, uint64_t pid)
{
    pthread_mutex_lock(&t->lock);
    uint32_t n = t->next_idx;
    pthread_mutex_unlock(&t->lock);
    for (uint32_t i = 0; i < n; i++)
        if (t->slots[i].s != NULL &&
            atomic_load_explicit(&t->slots[i].owner, memory_order_acquire) ==
                pid)
            sock_free(t, i, 0, true);
}

static void
run_cmd(tp__socks *t, cmd *c)
{
    slot *sl = &t->slots[c->idx];
    tsock *s = sl->s;
    if (c->op == C_OWNER_DIED) {
        close_owned(t, c->pid);
        return;
    }
    if (s == NULL ||
        atomic_load_explicit(&sl->gen, memory_order_relaxed) != c->gen)
        return; // closed meanwhile
    switch (c->op) {
    case C_WATCH:
        if (s->kind == K_CONNECTING)
            tp__io_fd_start(t->io, &s->wio);
        else
            tp__io_fd_start(t->io, &s->rio);
        break;
    case C_SEND:
        tp__wbuf_reserve(&s->out, c->size);
        if (s->out.failed) {
            sock_free(t, c->idx, TP_ENOMEM, false);
            return;
        }
        memcpy(s->out.p + s->out.len, c->data, c->size);
        s->out.len += c->size;
        if (s->kind == K_STREAM)
            sock_flush(t, c->idx);
        break;
    case C_CLOSE:
        s->closing = true;
        if (s->out.len == s->out_off || s->kind != K_STREAM)
            sock_free(t, c->idx, 0, true);
        break;
    case C_RESUME:
        if (s->paused &&
            atomic_load_explicit(&sl->inflight, memory_order_acquire) <
                TP_SOCK_WINDOW) {
            s->paused = false;
            tp__io_fd_start(t->io, &s->rio);
        }
        break;
    case C_GIVEN: {
        // The new owner turned out dead: close.
        tp_pid owner = {
            atomic_load_explicit(&sl->owner, memory_order_acquire)};
        if (tp_pid_eq(owner, (tp_pid){c->pid}))
            sock_free(t, c->idx, 0, true);
        break;
    }
    }
}

static void
socks_wake(void *arg)
{
    tp__socks *t = arg;
    pthread_mutex_lock(&t->lock);
    cmd *c = t->head;
    t->head = t->tail = NULL;
    pthread_mutex_unlock(&t->lock);
    while (c != NULL) {
        cmd *next = c->next;
        run_cmd(t, c);
        free(c);
        c = next;
    }
}

// ---- setup
// ------------------------------------------------------------------

static tp__socks *
socks_get(tp_system *sys)
{
    tp__socks *t = socks_of(sys);
    if (t != NULL)
        return t;
    tp__io *io = tp__io_get(sys);
    if (io == NULL)
        return NULL;
    pthread_mutex_lock(&io->lock);
    if ((t = socks_of(sys)) == NULL && (t = calloc(1, sizeof *t)) != NULL) {
        // Before any socket message exists: the mailbox releases them.
        tp__msg_on_release(TP__REL_SOCK, tp__sock_data_done);
        t->sys = sys;
        t->io = io;
        pthread_mutex_init(&t->lock, NULL);
        t->slots = calloc(SLOTS_MAX, sizeof *t->slots);
        t->free_idx = malloc(SLOTS_MAX * sizeof *t->free_idx);
        for (uint32_t i = 0; t->slots != NULL && i < SLOTS_MAX; i++) {
            t->slots[i].t = t;
            t->slots[i].idx = i;
        }
        if (t->slots == NULL || t->free_idx == NULL) {
            free(t->slots);
            free(t->free_idx);
            pthread_mutex_destroy(&t->lock);
            free(t);
            t = NULL;
        } else {
            tp__io_on_wake(io, TP__IO_SOCK, socks_wake, t);
            atomic_store_explicit(&sys->socks, t, memory_order_release);
        }
    }
    pthread_mutex_unlock(&io->lock);
    return t;
}

static int
parse(const char *addr, struct sockaddr_in *sa, bool any_port)
{
    if (addr == NULL)
        return TP_EINVAL;
    const char *colon = strrchr(addr, ':');
    char host[INET_ADDRSTRLEN];
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return TP_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == 0 || *end != 0 || port < 0 || port > 65535 ||
        (port == 0 && !any_port))
        return TP_EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : TP_EINVAL;
}

// Records that `a` may own sockets, so its exit closes them.
static void
mark_owner(tp__socks *t, tp_actor *a)
{
    // seq_cst: pairs with the exit path's store of `dead` and load of
    // `socks`: either it sees the mark or we see it dead.
    atomic_store_explicit(&a->socks, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&a->dead, memory_order_seq_cst)) {
        cmd *c = cmd_new(C_OWNER_DIED, 0, 0, 0);
        if (c != NULL) {
            c->pid = a->pid.v;
            push_cmd(t, c);
        }
    }
}

// Publishes a new socket for the running actor and has the I/O thread
// watch it.
static int
open_sock(tp_actor *a, tp__socks *t, int fd, int kind, tp_sock *out)
{
    uint32_t idx = slot_alloc(t);
    if (idx == UINT32_MAX) {
        close(fd);
        return TP_EAGAIN;
    }
    tsock *s = tsock_new(t, idx, fd, kind);
    cmd *c = cmd_new(C_WATCH, idx, 0, 0);
    if (s == NULL || c == NULL) {
        free(s);
        free(c);
        close(fd);
        pthread_mutex_lock(&t->lock);
        t->free_idx[t->nfree++] = idx;
        pthread_mutex_unlock(&t->lock);
        return TP_ENOMEM;
    }
    slot *sl = &t->slots[idx];
    pthread_mutex_lock(&t->io->lock); // the slot's `s` is the I/O thread's
    sl->s = s;
    atomic_store_explicit(&sl->owner, a->pid.v, memory_order_release);
    atomic_store_explicit(&sl->inflight, 0, memory_order_relaxed);
    atomic_store_explicit(&sl->open, 1, memory_order_release);
    pthread_mutex_unlock(&t->io->lock);
    c->gen = atomic_load_explicit(&sl->gen, memory_order_relaxed);
    mark_owner(t, a);
    if (out != NULL)
        *out = handle(sl, idx);
    push_cmd(t, c);
    return 0;
}

int
tp_sock_listen(tp_ctx *ctx, const char *addr, tp_sock *out, uint16_t *port)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    struct sockaddr_in sa;
    if ((rc = parse(addr, &sa, true)) != 0)
        return rc;
    tp__socks *t = socks_get(a->system);
    if (t == NULL)
        return TP_EAGAIN;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TP_EAGAIN;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 128) != 0) {
        rc = errno == EADDRINUSE ? TP_EADDRINUSE : TP_EINVAL;
        close(fd);
        return rc;
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    if ((rc = open_sock(a, t, fd, K_LISTEN, out)) == 0 && port != NULL)
        *port = ntohs(sa.sin_port);
    return rc;
}

int
tp_sock_connect(tp_ctx *ctx, const char *addr, tp_sock *out)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    struct sockaddr_in sa;
    if ((rc = parse(addr, &sa, false)) != 0)
        return rc;
    tp__socks *t = socks_get(a->system);
    if (t == NULL)
        return TP_EAGAIN;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TP_EAGAIN;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Completion (or failure) shows as writability on the I/O thread.
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return TP_EINVAL;
    }
    return open_sock(a, t, fd, K_CONNECTING, out);
}

// The open slot `s` names, owned by the running actor.
static int
owned(tp_ctx *ctx, tp_sock s, tp__socks **tp, uint32_t *idx)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    tp__socks *t = socks_of(a->system);
    slot *sl = slot_of(t, s, idx);
    if (sl == NULL)
        return TP_ENOENT;
    if (atomic_load_explicit(&sl->owner, memory_order_acquire) != a->pid.v)
        return TP_EPERM;
    *tp = t;
    return 0;
}

int
tp_sock_send(tp_ctx *ctx, tp_sock s, const void *data, size_t size)
{
    tp__socks *t;
    uint32_t idx;
    int rc = owned(ctx, s, &t, &idx);
    if (rc != 0)
        return rc;
    if (data == NULL && size > 0)
        return TP_EINVAL;
    if (size == 0)
        return 0;
    slot *sl = &t->slots[idx];
    if (atomic_load_explicit(&sl->pending, memory_order_relaxed) + size >
        TP_SOCK_SEND_MAX)
        return TP_EFULL;
    cmd *c = cmd_new(C_SEND, idx, (uint32_t)(s >> 32), size);
    if (c == NULL)
        return TP_ENOMEM;
    memcpy(c->data, data, size);
    atomic_fetch_add_explicit(&sl->pending, size, memory_order_relaxed);
    push_cmd(t, c);
    return 0;
}

int
tp_sock_close(tp_ctx *ctx, tp_sock s)
{
    tp__socks *t;
    uint32_t idx;
    int rc = owned(ctx, s, &t, &idx);
    if (rc != 0)
        return rc;
    cmd *c = cmd_new(C_CLOSE, idx, (uint32_t)(s >> 32), 0);
    if (c == NULL)
        return TP_ENOMEM;
    // The handle is dead for its owner from now on.
    atomic_store_explicit(&t->slots[idx].open, 0, memory_order_release);
    push_cmd(t, c);
    return 0;
}

// A held socket starts reading.
static void
release_hold(tp__socks *t, slot *sl, uint32_t idx)
{
    if (!atomic_exchange_explicit(&sl->held, 0, memory_order_acq_rel))
        return;
    cmd *c = cmd_new(C_RESUME, idx,
                     atomic_load_explicit(&sl->gen, memory_order_relaxed), 0);
    if (c != NULL)
        push_cmd(t, c);
}

int
tp_sock_hold(tp_ctx *ctx, tp_sock s)
{
    tp__socks *t;
    uint32_t idx;
    int rc = owned(ctx, s, &t, &idx);
    if (rc == 0)
        atomic_store_explicit(&t->slots[idx].held, 1, memory_order_release);
    return rc;
}

int
tp_sock_activate(tp_ctx *ctx, tp_sock s)
{
    tp__socks *t;
    uint32_t idx;
    int rc = owned(ctx, s, &t, &idx);
    if (rc == 0)
        release_hold(t, &t->slots[idx], idx);
    return rc;
}

int
tp_sock_give(tp_ctx *ctx, tp_sock s, tp_pid owner)
{
    tp__socks *t;
    uint32_t idx;
    int rc = owned(ctx, s, &t, &idx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    // A dedicated actor's thread is outside the pool: `to` stays valid
    // while it holds ext_lock, as on a worker until its next activation.
    bool ext = tp__self.worker == NULL;
    if (ext)
        pthread_rwlock_rdlock(&a->system->ext_lock);
    tp_actor *to = tp__actor_lookup(a->system, owner);
    if (to == NULL) {
        if (ext)
            pthread_rwlock_unlock(&a->system->ext_lock);
        return TP_ENOACTOR;
    }
    slot *sl = &t->slots[idx];
    atomic_store_explicit(&sl->owner, owner.v, memory_order_seq_cst);
    release_hold(t, sl, idx);
    // The new owner may die at any moment: if it already has, close.
    atomic_store_explicit(&to->socks, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&to->dead, memory_order_seq_cst)) {
        cmd *c = cmd_new(C_GIVEN, idx, (uint32_t)(s >> 32), 0);
        if (c != NULL) {
            c->pid = owner.v;
            push_cmd(t, c);
        }
    }
    if (ext)
        pthread_rwlock_unlock(&a->system->ext_lock);
    return 0;
}

// ---- hooks from the runtime ------------------------------------------------

// A data message left its owner's mailbox (handled or dropped): the
// socket may read again.
void
tp__sock_data_done(tp__msg *m)
{
    slot *sl = m->aux;
    tp__socks *t = sl->t;
    if (m->flags & TP__MSG_SOCK_START) {
        m->flags &= (uint16_t)~TP__MSG_SOCK_START;
        if (atomic_load_explicit(&sl->held, memory_order_acquire))
            return; // reads once given or activated
        cmd *c =
            cmd_new(C_RESUME, sl->idx,
                    atomic_load_explicit(&sl->gen, memory_order_relaxed), 0);
        if (c != NULL)
            push_cmd(t, c);
        return;
    }
    m->flags &= (uint16_t)~TP__MSG_SOCK_DATA;
    uint32_t was =
        atomic_fetch_sub_explicit(&sl->inflight, 1, memory_order_acq_rel);
    if (was == 1) {
        pthread_mutex_lock(&t->lock);
        if (sl->zombie) {
            sl->zombie = false;
            t->free_idx[t->nfree++] = sl->idx;
        }
        pthread_mutex_unlock(&t->lock);
    }
    if (was == TP_SOCK_WINDOW) {
        cmd *c =
            cmd_new(C_RESUME, sl->idx,
                    atomic_load_explicit(&sl->gen, memory_order_relaxed), 0);
        if (c != NULL)
            push_cmd(t, c);
    }
}

// An actor that may own sockets exited: close them.
void
tp__sock_owner_died(tp_actor *a)
{
    tp__socks *t = socks_of(a->system);
    if (t == NULL)
        return;
    // Closed now, on the dying actor's thread, not later by the I/O
    // thread: its links and monitors hear of the death only after its
    // ports are free. The I/O lock makes this thread the loop's owner for
    // the moment (io.h); it waits at most for one round of I/O callbacks.
    pthread_mutex_lock(&t->io->lock);
    close_owned(t, a->pid.v);
    pthread_mutex_unlock(&t->io->lock);
}

// With the I/O thread stopped: closes every socket and frees the table.
void
tp__sock_free(tp_system *sys)
{
    tp__socks *t = socks_of(sys);
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->next_idx; i++) {
        tsock *s = t->slots[i].s;
        if (s != NULL) {
            close(s->fd);
            tp__wbuf_free(&s->out);
            free(s);
        }
    }
    cmd *c = t->head;
    while (c != NULL) {
        cmd *next = c->next;
        free(c);
        c = next;
    }
    atomic_store_explicit(&sys->socks, NULL, memory_order_release);
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->free_idx);
    free(t);
}
