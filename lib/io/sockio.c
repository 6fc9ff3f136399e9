// SPDX-License-Identifier: MIT
// Actors' sockets, the I/O thread's side: accepting, reading and writing,
// completing connects, closing and telling owners, and running the
// commands actors queue (sock.c). sock_impl.h has the shared structs.
#include "core/core.h"
#include "io/sock_impl.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void sock_read_cb(tp__io_fd *w, int revents);
static void sock_write_cb(tp__io_fd *w, int revents);
static void sock_linger_cb(tp__io_timer *tm);

// Frees the socket in slot `idx`; tells its owner unless `quiet` or the
// socket was closing (its owner asked for no TP_TAG_SOCK_CLOSED, or is
// gone).
static void
sock_free(tp__socks *t, uint32_t idx, int err, bool quiet)
{
    slot *sl = &t->slots[idx];
    tsock *s = sl->s;
    if (s == NULL)
        return;
    quiet = quiet || s->closing;
    tp_sock h = handle(sl, idx);
    tp__io_fd_stop(t->io, &s->rio);
    tp__io_fd_stop(t->io, &s->wio);
    tp__io_timer_stop(t->io, &s->linger);
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
    tp__sock_close_gently(t, idx);
    return false;
}

// A closing connection whose output is all written: shuts our side, so the
// peer reads to the end of it, and closes once the peer has closed too.
static void
sock_shut(tp__socks *t, uint32_t idx)
{
    tsock *s = t->slots[idx].s;
    if (!s->shut) {
        s->shut = true;
        shutdown(s->fd, SHUT_WR);
    }
    if (s->peer_eof)
        sock_free(t, idx, 0, true);
}

static void
sock_flush(tp__socks *t, uint32_t idx)
{
    tsock *s = t->slots[idx].s;
    while (s->out_off < s->out.len) {
        ssize_t w = send(s->fd, s->out.p + s->out_off, s->out.len - s->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN)
                break;
            sock_free(t, idx, tp__err_from_errno(e), false);
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
            sock_shut(t, idx);
    } else {
        tp__io_fd_start(t->io, &s->wio);
    }
}

uint32_t
tp__sock_slot_alloc(tp__socks *t)
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

tsock *
tp__tsock_new(tp__socks *t, uint32_t idx, int fd, int kind)
{
    tsock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->idx = idx;
    s->fd = fd;
    s->kind = kind;
    tp__io_fd_init(&s->rio, sock_read_cb, fd, TP__IO_READ);
    tp__io_fd_init(&s->wio, sock_write_cb, fd, TP__IO_WRITE);
    tp__io_timer_init(&s->linger, sock_linger_cb, LINGER_S, 0);
    s->rio.data = s->wio.data = s->linger.data = t;
    return s;
}

// A closing connection, connected: reads again (to drop what comes), and
// writes what is left; sock_flush shuts it once that is out.
static void
closing_connected(tp__socks *t, uint32_t idx)
{
    tsock *s = t->slots[idx].s;
    tp__io_fd_start(t->io, &s->rio);
    if (s->out_off < s->out.len)
        sock_flush(t, idx);
    else
        sock_shut(t, idx);
}

void
tp__sock_close_gently(tp__socks *t, uint32_t idx)
{
    slot *sl = &t->slots[idx];
    tsock *s = sl->s;
    // release: pairs with slot_of's acquire (sock.c): the handle is dead
    // for its owner from now on.
    atomic_store_explicit(&sl->open, 0, memory_order_release);
    if (s->kind == K_LISTEN) {
        sock_free(t, idx, 0, true);
        return;
    }
    if (s->closing)
        return;
    s->closing = true;
    s->paused = false;
    tp__io_timer_start(t->io, &s->linger);
    if (s->kind == K_STREAM)
        closing_connected(t, idx);
    // else sock_write_cb goes on once connected
}

// A closing connection's input: read and dropped until the peer closes
// (or fails), since closing with input unread would reset the connection.
static void
drain_closing(tp__socks *t, uint32_t idx)
{
    tsock *s = t->slots[idx].s;
    char buf[16384];
    for (;;) {
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        // The peer closed, or the connection failed: nothing more to read.
        tp__io_fd_stop(t->io, &s->rio);
        s->peer_eof = true;
        if (s->shut || r < 0)
            sock_free(t, idx, 0, true);
        return;
    }
}

static void
sock_linger_cb(tp__io_timer *tm)
{
    tp__socks *t = tm->data;
    tsock *s = (tsock *)((char *)tm - offsetof(tsock, linger));
    sock_free(t, s->idx, 0, true);
}

static void
do_accept(tp__socks *t, uint32_t lidx)
{
    tsock *l = t->slots[lidx].s;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        uint32_t idx = tp__sock_slot_alloc(t);
        tsock *s =
            idx == UINT32_MAX ? NULL : tp__tsock_new(t, idx, fd, K_STREAM);
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
        // The longest IPv6 forms do not fit tp_sock_accepted's 48 bytes:
        // they are cut short.
        tp__addr_format((struct sockaddr *)&sa, a.peer, sizeof a.peer);
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
    if (s->closing) {
        drain_closing(t, idx);
        return;
    }
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
        int e = r < 0 ? errno : 0; // before the free may change it
        tp__msg_free(m);
        if (e == EAGAIN || e == EINTR)
            return;
        sock_free(t, idx, e == 0 ? 0 : tp__err_from_errno(e), false);
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
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            sock_free(t, idx, tp__err_from_errno(err), false);
            return;
        }
        s->kind = K_STREAM;
        tp__io_fd_stop(t->io, &s->wio);
        if (s->closing) {
            // Closed while connecting: the close carries on from here.
            closing_connected(t, idx);
            return;
        }
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
void
tp__sock_close_owned(tp__socks *t, uint64_t pid)
{
    pthread_mutex_lock(&t->lock);
    uint32_t n = t->next_idx;
    pthread_mutex_unlock(&t->lock);
    for (uint32_t i = 0; i < n; i++)
        if (t->slots[i].s != NULL &&
            atomic_load_explicit(&t->slots[i].owner, memory_order_acquire) ==
                pid)
            tp__sock_close_gently(t, i);
}

static void
run_cmd(tp__socks *t, cmd *c)
{
    slot *sl = &t->slots[c->idx];
    tsock *s = sl->s;
    if (c->op == C_OWNER_DIED) {
        tp__sock_close_owned(t, c->pid);
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
        tp__sock_close_gently(t, c->idx);
        break;
    case C_RESUME:
        if (s->paused && !s->closing &&
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
            tp__sock_close_gently(t, c->idx);
        break;
    }
    }
}

void
tp__socks_wake(void *arg)
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
