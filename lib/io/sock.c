// SPDX-License-Identifier: MIT
// Actors' sockets, the actors' side: handles, the command list to the I/O
// thread (sockio.c), the public calls and the runtime's hooks.
// sock_impl.h has the shared structs and says how the two sides meet.
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

// ---- handles --------------------------------------------------------------

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
    i--; // the table holds SLOTS_MAX slots from the start
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
        bool locked = pthread_mutex_init(&t->lock, NULL) == 0;
        t->slots = calloc(SLOTS_MAX, sizeof *t->slots);
        t->free_idx = malloc(SLOTS_MAX * sizeof *t->free_idx);
        for (uint32_t i = 0; t->slots != NULL && i < SLOTS_MAX; i++) {
            t->slots[i].t = t;
            t->slots[i].idx = i;
        }
        if (!locked || t->slots == NULL || t->free_idx == NULL) {
            free(t->slots);
            free(t->free_idx);
            if (locked)
                pthread_mutex_destroy(&t->lock);
            free(t);
            t = NULL;
        } else {
            tp__io_on_wake(io, TP__IO_SOCK, tp__socks_wake, t);
            atomic_store_explicit(&sys->socks, t, memory_order_release);
        }
    }
    pthread_mutex_unlock(&io->lock);
    return t;
}

// Records that `a` may own sockets, so its exit closes them.
static void
mark_owner(tp__socks *t, tp_actor *a)
{
    // seq_cst: pairs with the exit path's store of `dead` and load of
    // `socks`: either it sees the mark or we see it dead.
    atomic_fetch_or_explicit(&a->marks, TP__MARK_SOCKS, memory_order_seq_cst);
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
    uint32_t idx = tp__sock_slot_alloc(t);
    if (idx == UINT32_MAX) {
        close(fd);
        return TP_EAGAIN;
    }
    tsock *s = tp__tsock_new(t, idx, fd, kind);
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
    struct sockaddr_storage sa;
    socklen_t sl;
    if ((rc = tp__addr_parse(addr, TP__ADDR_PORT0, &sa, &sl)) != 0)
        return rc;
    tp__socks *t = socks_get(a->system);
    if (t == NULL)
        return TP_EAGAIN;
    int fd =
        socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tp__err_from_errno(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0 ||
        listen(fd, SOCK_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &(socklen_t){sizeof sa}) !=
            0) {
        rc = tp__err_from_errno(errno); // before close() may change it
        close(fd);
        return rc;
    }
    if ((rc = open_sock(a, t, fd, K_LISTEN, out)) == 0 && port != NULL)
        *port = (uint16_t)tp__addr_port(&sa);
    return rc;
}

int
tp_sock_connect(tp_ctx *ctx, const char *addr, tp_sock *out)
{
    int rc = tp__check_ctx(ctx);
    if (rc != 0)
        return rc;
    tp_actor *a = (tp_actor *)ctx;
    struct sockaddr_storage sa;
    socklen_t sl;
    if ((rc = tp__addr_parse(addr, 0, &sa, &sl)) != 0)
        return rc;
    tp__socks *t = socks_get(a->system);
    if (t == NULL)
        return TP_EAGAIN;
    int fd =
        socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tp__err_from_errno(errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Completion (or failure) shows as writability on the I/O thread.
    if (connect(fd, (struct sockaddr *)&sa, sl) != 0 && errno != EINPROGRESS) {
        rc = tp__err_from_errno(errno); // before close() may change it
        close(fd);
        return rc;
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
    atomic_fetch_or_explicit(&to->marks, TP__MARK_SOCKS, memory_order_seq_cst);
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
    // The commands queued so far run first, in order, so that what the
    // actor sent before it died is written, not dropped.
    pthread_mutex_lock(&t->io->lock);
    tp__socks_wake(t);
    tp__sock_close_owned(t, a->pid.v);
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
