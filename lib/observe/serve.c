// SPDX-License-Identifier: MIT
// The listener and connection machinery shared by the control socket
// (control.c) and the metrics endpoint (metrics.c), run on the I/O thread
// (io/io.h). Every connection is a small state machine with its own
// buffers and one deadline timer:
//
//   READING --whole request--> (WAITING --answer-->) WRITING --sent-->
//   READING again, or DRAINING then closed after a last reply.
//
// READING lasts at most ops->request_s, WRITING ops->reply_s, WAITING what
// the protocol asked for: a client that dawdles loses its connection, and
// holds only its own slot meanwhile. Connections closed inside a callback
// are freed when the callback that drives them returns, never inside it.
#include "core/core.h"
#include "io/io.h"
#include "observe/observe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Connections a listener accepts per readiness, so one burst of clients
// does not keep the loop from everything else.
#define ACCEPT_BURST 16
// The first read buffer; it grows up to ops->in_max.
#define IN_FIRST 512
// How long the listener rests when the process is out of descriptors or
// memory: the pending client stays queued, and a level-triggered watcher
// would otherwise spin.
#define ACCEPT_REST_S 0.5

// DRAINING follows a last reply: the client may still be sending (a
// request refused for its size), and closing with its bytes unread would
// reset the connection and lose the reply; so the server stops writing and
// reads until the client closes, for at most ops->reply_s.
enum { ST_READING, ST_WAITING, ST_WRITING, ST_DRAINING, ST_CLOSED };

struct tp__conn {
    tp__io_fd w;
    tp__io_timer deadline;
    tp__server *srv;
    int fd;
    int state;
    uint8_t *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off;
    bool last; // close once the reply is out
    void *data;
    tp__conn *prev, *next; // in srv->conns, or srv->dead once closed
};

struct tp__server {
    tp_system *sys;
    tp__io *io;
    const tp__serve_ops *ops;
    int lfd;
    tp__io_fd listen;
    tp__io_timer rest; // restarts the listener after ACCEPT_REST_S
    tp__conn *conns;   // open connections
    tp__conn *dead;    // closed, to be freed by reap
    unsigned nconns;   // in conns
    unsigned waiting;  // in conns, in ST_WAITING
    uint64_t refused;  // clients past the cap, for the log
};

// ---- connections
// ----------------------------------------------------------

static void
unlink_conn(tp__conn **list, tp__conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        *list = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void
push_conn(tp__conn **list, tp__conn *c)
{
    c->prev = NULL;
    c->next = *list;
    if (*list != NULL)
        (*list)->prev = c;
    *list = c;
}

// Arms the connection's one timer for `after` seconds from now.
static void
arm(tp__conn *c, double after)
{
    tp__io *io = c->srv->io;
    tp__io_timer_stop(io, &c->deadline);
    tp__io_timer_set(&c->deadline, after, 0);
    tp__io_timer_start(io, &c->deadline);
}

// Watches the socket for `events` (0: not at all).
static void
watch(tp__conn *c, int events)
{
    tp__io *io = c->srv->io;
    tp__io_fd_stop(io, &c->w);
    if (events != 0) {
        tp__io_fd_set(&c->w, events);
        tp__io_fd_start(io, &c->w);
    }
}

static void
set_state(tp__conn *c, int state)
{
    tp__server *s = c->srv;
    if (c->state == ST_WAITING)
        s->waiting--;
    if (state == ST_WAITING)
        s->waiting++;
    c->state = state;
}

static void
conn_close(tp__conn *c)
{
    if (c->state == ST_CLOSED)
        return;
    tp__server *s = c->srv;
    set_state(c, ST_CLOSED);
    tp__io_fd_stop(s->io, &c->w);
    tp__io_timer_stop(s->io, &c->deadline);
    close(c->fd);
    c->fd = -1;
    if (s->ops->close != NULL)
        s->ops->close(c);
    unlink_conn(&s->conns, c);
    s->nconns--;
    push_conn(&s->dead, c);
}

static void
reap(tp__server *s)
{
    while (s->dead != NULL) {
        tp__conn *c = s->dead;
        unlink_conn(&s->dead, c);
        free(c->in);
        free(c->out);
        free(c);
    }
}

static void
enter_reading(tp__conn *c)
{
    set_state(c, ST_READING);
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    watch(c, TP__IO_READ);
    arm(c, c->srv->ops->request_s);
}

static void
enter_draining(tp__conn *c)
{
    set_state(c, ST_DRAINING);
    shutdown(c->fd, SHUT_WR);
    watch(c, TP__IO_READ);
    arm(c, c->srv->ops->reply_s);
}

// Discards what a client sends after its last reply, until it closes.
static void
drain(tp__conn *c)
{
    char junk[4096];
    for (;;) {
        ssize_t n = read(c->fd, junk, sizeof junk);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);
        return;
    }
}

// Writes what the reply still holds. Returns when it is all out (then
// reading again, or closed), the socket is full, or it failed (closed).
static void
flush(tp__conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; // the write watcher says when there is room
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->last)
        enter_draining(c);
    else
        enter_reading(c);
}

// Hands what is buffered to the protocol while it finds whole requests in
// it, so several requests sent at once are all answered, in order.
static void
pump(tp__conn *c)
{
    while (c->state == ST_READING && c->in_len > 0) {
        size_t before = c->in_len;
        c->srv->ops->input(c);
        if (c->state == ST_READING && c->in_len == before)
            return; // it needs more bytes
    }
}

// Reads what the client sent. Returns false when the connection closed.
static bool
take_input(tp__conn *c)
{
    size_t max = c->srv->ops->in_max;
    if (c->in_len == c->in_cap) {
        if (c->in_cap >= max) {
            conn_close(c); // the protocol let a request outgrow its limit
            return false;
        }
        size_t cap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
        uint8_t *p = realloc(c->in, cap < max ? cap : max);
        if (p == NULL) {
            conn_close(c);
            return false;
        }
        c->in = p;
        c->in_cap = cap < max ? cap : max;
    }
    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    if (n <= 0) {
        conn_close(c); // gone, mid-request or between requests
        return false;
    }
    c->in_len += (size_t)n;
    return true;
}

static void
conn_cb(tp__io_fd *w, int events)
{
    tp__conn *c = w->data;
    tp__server *s = c->srv;
    if (c->state == ST_WRITING && (events & TP__IO_WRITE))
        flush(c);
    else if (c->state == ST_DRAINING)
        drain(c);
    else if (c->state == ST_READING && (events & TP__IO_READ) && take_input(c))
        pump(c);
    if (c->state == ST_READING)
        pump(c); // a reply went out and more requests were buffered
    reap(s);
}

static void
deadline_cb(tp__io_timer *t)
{
    tp__conn *c = t->data;
    tp__server *s = c->srv;
    if (c->state == ST_WAITING) {
        s->ops->poll(c, true);
        if (c->state == ST_WAITING)
            conn_close(c); // the protocol should have answered
    } else if (c->state == ST_DRAINING) {
        conn_close(c);
    } else {
        tp__log(s->sys, TP_LOG_INFO,
                "%s: closed a client that took over %g s to %s", s->ops->name,
                c->state == ST_READING ? s->ops->request_s : s->ops->reply_s,
                c->state == ST_READING ? "send its request"
                                       : "take its reply");
        conn_close(c);
    }
    pump(c);
    reap(s);
}

// ---- what protocols call
// ----------------------------------------------------

bool
tp__conn_send(tp__conn *c, const void *head, size_t hlen, const void *body,
              size_t blen, bool last)
{
    TP_ASSERT(c->state == ST_READING || c->state == ST_WAITING);
    char *p = malloc(hlen + blen ? hlen + blen : 1);
    if (p == NULL) {
        conn_close(c);
        return false;
    }
    if (hlen)
        memcpy(p, head, hlen);
    if (blen)
        memcpy(p + hlen, body, blen);
    free(c->out);
    c->out = p;
    c->out_len = hlen + blen;
    c->out_off = 0;
    c->last = last;
    set_state(c, ST_WRITING);
    watch(c, TP__IO_WRITE);
    arm(c, c->srv->ops->reply_s);
    flush(c);
    return true;
}

void
tp__conn_wait(tp__conn *c, double timeout_s)
{
    TP_ASSERT(c->state == ST_READING && c->srv->ops->poll != NULL);
    set_state(c, ST_WAITING);
    watch(c, 0);
    arm(c, timeout_s);
}

const uint8_t *
tp__conn_input(const tp__conn *c, size_t *len)
{
    *len = c->in_len;
    return c->in;
}

void
tp__conn_consume(tp__conn *c, size_t n)
{
    TP_ASSERT(n <= c->in_len);
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

tp__server *
tp__conn_server(const tp__conn *c)
{
    return c->srv;
}

void *
tp__conn_data(const tp__conn *c)
{
    return c->data;
}

void
tp__conn_set_data(tp__conn *c, void *data)
{
    c->data = data;
}

int
tp__conn_fd(const tp__conn *c)
{
    return c->fd;
}

tp_system *
tp__server_sys(const tp__server *s)
{
    return s->sys;
}

tp__io *
tp__server_io(const tp__server *s)
{
    return s->io;
}

// ---- the listener
// -------------------------------------------------------------

static void
refuse(tp__server *s, int fd)
{
    s->ops->refuse(fd);
    // Let the client read the refusal rather than a reset: stop sending,
    // and drop what it already sent.
    shutdown(fd, SHUT_WR);
    char junk[512];
    while (recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
    close(fd);
    if (s->refused++ % 64 == 0)
        tp__log(s->sys, TP_LOG_WARNING,
                "%s: refused a client: %d already connected (%llu refused "
                "so far)",
                s->ops->name, TP__SERVE_CLIENTS_MAX,
                (unsigned long long)s->refused);
}

static void
conn_open(tp__server *s, int fd)
{
    tp__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    c->state = ST_CLOSED; // until enter_reading
    tp__io_fd_init(&c->w, conn_cb, fd, TP__IO_READ);
    c->w.data = c;
    tp__io_timer_init(&c->deadline, deadline_cb, s->ops->request_s, 0);
    c->deadline.data = c;
    push_conn(&s->conns, c);
    s->nconns++;
    enter_reading(c);
    if (s->ops->open != NULL)
        s->ops->open(c);
}

static void
rest_cb(tp__io_timer *t)
{
    tp__server *s = t->data;
    tp__io_fd_start(s->io, &s->listen);
}

// Stops accepting for a while: see ACCEPT_REST_S.
static void
rest(tp__server *s, int err)
{
    tp__log(s->sys, TP_LOG_WARNING, "%s: cannot accept a client: %s",
            s->ops->name, strerror(err));
    tp__io_fd_stop(s->io, &s->listen);
    tp__io_timer_stop(s->io, &s->rest);
    tp__io_timer_set(&s->rest, ACCEPT_REST_S, 0);
    tp__io_timer_start(s->io, &s->rest);
}

static void
listen_cb(tp__io_fd *w, int events)
{
    (void)events;
    tp__server *s = w->data;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE ||
                       errno == ENOBUFS || errno == ENOMEM)) {
            rest(s, errno);
            break;
        }
        if (fd < 0)
            break; // EAGAIN, or a client that left before we took it
        if (s->nconns >= TP__SERVE_CLIENTS_MAX)
            refuse(s, fd);
        else
            conn_open(s, fd);
    }
    reap(s);
}

// At each wake-up of the loop: the connections waiting for an answer
// look whether it came.
static void
wake_cb(void *arg)
{
    tp__server *s = arg;
    if (s->waiting == 0)
        return;
    tp__conn *next;
    for (tp__conn *c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != ST_WAITING)
            continue;
        s->ops->poll(c, false);
        pump(c);
    }
    reap(s);
}

int
tp__server_start(tp__server **out, tp_system *sys, int lfd,
                 const tp__serve_ops *ops)
{
    tp__io *io = tp__io_get(sys);
    if (io == NULL)
        return TP_EAGAIN;
    tp__server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TP_ENOMEM;
    int fl = fcntl(lfd, F_GETFL);
    if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) != 0) {
        free(s);
        return TP_EINVAL;
    }
    s->sys = sys;
    s->io = io;
    s->ops = ops;
    s->lfd = lfd;
    tp__io_fd_init(&s->listen, listen_cb, lfd, TP__IO_READ);
    s->listen.data = s;
    tp__io_timer_init(&s->rest, rest_cb, ACCEPT_REST_S, 0);
    s->rest.data = s;
    pthread_mutex_lock(&io->lock);
    tp__io_on_wake(io, ops->wake_client, wake_cb, s);
    tp__io_fd_start(io, &s->listen);
    pthread_mutex_unlock(&io->lock);
    tp__io_wake(io); // so the loop watches the new socket
    *out = s;
    return 0;
}

void
tp__server_stop(tp__server **ps)
{
    tp__server *s = ps ? *ps : NULL;
    if (s == NULL)
        return;
    *ps = NULL;
    tp__io *io = s->io;
    pthread_mutex_lock(&io->lock);
    tp__io_on_wake(io, s->ops->wake_client, NULL, NULL);
    tp__io_fd_stop(io, &s->listen);
    tp__io_timer_stop(io, &s->rest);
    close(s->lfd);
    while (s->conns != NULL)
        conn_close(s->conns);
    reap(s);
    pthread_mutex_unlock(&io->lock);
    free(s);
}
