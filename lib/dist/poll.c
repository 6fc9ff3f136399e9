// SPDX-License-Identifier: MIT
// Reading connections, and worker polling. Every connection's socket is in
// one epoll set of the node's own (pfd), which the I/O loop watches as one
// descriptor. A scheduler worker that spins looking for work while input
// flows takes that watch over: the loop stops watching the set, and the
// worker looks at it at each turn of its spin and reads what is ready
// itself, holding the I/O lock as the loop's callbacks do. The actors its
// frames wake are queued on that worker, which runs them next; so a message
// from another node reaches its actor with no thread woken, and a round
// trip between two nodes costs little more than the sockets' own. When the
// node reads one connection and input came a moment ago, the look is a
// read of it: a frame costs one system call (the read), not two (epoll's
// answer, then the read), which took a round trip from 1.9 to about 1.2
// times a busy-polled TCP one on a 2-core VM whose system calls cost about
// a microsecond.
//
// The loop takes the watch back when the worker parks or stops (it hands it
// back), and when the worker has not looked for POLL_STALE_NS, because it
// runs actors: pwatch checks that every POLL_WATCH_S while a worker polls.
// Another spinning worker takes it over sooner (POLL_TAKE_NS).
#include "core/core.h"
#include "dist/node_impl.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

// A worker takes the watch only while input came within RECENT_NS; another
// takes it over from a poller that has not looked for TAKE_NS, and the
// loop takes it back after STALE_NS, checking every WATCH_S.
#define POLL_RECENT_NS 10000000
#define POLL_TAKE_NS 50000
#define POLL_STALE_NS 500000
#define POLL_WATCH_S 0.001
#define POLL_BATCH 64 // ready sockets read per pass
#define POLL_FEW 8    // connections a worker looks through
// A poller reads the solo connection unasked only within UNASKED_NS of
// the last input: in a conversation the next frame comes soon, and
// otherwise a look that asks epoll takes no lock (another worker's direct
// write to the peer, and the loop, find io->lock free).
#define POLL_UNASKED_NS 50000

// The connection a worker's last look found ready (poll_ready), or the
// solo one taken as ready unasked, for it to read first (poll_read) if it
// is still there.
static _Thread_local conn *seen_ready;

// Reads the ready connections, one at a time: reading one may close and
// free another, so each comes from its own epoll_wait. io->lock held.
// `first`, when not NULL, is still open and was found ready or is the solo
// connection: it is read without asking, and when it is the only
// connection nothing more is asked (a look that finds it ready again comes
// soon).
static void
dispatch(tp__dist *n, conn *first)
{
    if (first != NULL) {
        tp__conn_read(first);
        if (n->nreading <= 1)
            return;
    }
    for (unsigned got = 0; got < POLL_BATCH; got++) {
        struct epoll_event ev;
        int k = epoll_wait(n->pfd, &ev, 1, 0);
        if (k <= 0)
            break;
        tp__conn_read(ev.data.ptr);
    }
}

// Whether `c` is one of `n`'s connections and read; io->lock held. Looks
// only among a few.
static bool
still_read(tp__dist *n, conn *c)
{
    if (c == NULL || n->nreading > POLL_FEW)
        return false;
    for (conn *x = n->conns; x != NULL; x = x->next)
        if (x == c)
            return c->reading;
    return false;
}

static void
pio_cb(tp__io_fd *w, int revents)
{
    (void)revents;
    dispatch(w->data, NULL);
}

static void
pwatch_cb(tp__io_timer *t)
{
    tp__dist *n = t->data;
    // relaxed: the poller is changed only under io->lock, which we hold;
    // poll_seen is a clock reading, a hint.
    if (atomic_load_explicit(&n->poller, memory_order_relaxed) != NULL &&
        tp__now_ns() -
                atomic_load_explicit(&n->poll_seen, memory_order_relaxed) >
            POLL_STALE_NS)
        tp__poll_reclaim(n);
}

int
tp__poll_init(tp__dist *n)
{
    n->pfd = epoll_create1(EPOLL_CLOEXEC);
    if (n->pfd < 0)
        return tp__err_from_errno(errno);
    tp__io_fd_init(&n->pio, pio_cb, n->pfd, TP__IO_READ);
    n->pio.data = n;
    tp__io_timer_init(&n->pwatch, pwatch_cb, POLL_WATCH_S, POLL_WATCH_S);
    n->pwatch.data = n;
    return 0;
}

// io->lock held.
void
tp__poll_start(tp__dist *n)
{
    tp__io_fd_start(n->io, &n->pio);
}

void
tp__poll_free(tp__dist *n)
{
    if (n->pfd < 0)
        return;
    if (n->watching) {
        tp__io_fd_stop(n->io, &n->pio);
        tp__io_timer_stop(n->io, &n->pwatch);
    }
    close(n->pfd);
    n->pfd = -1;
}

// Keeps n->solo: the connection read, when it is the only one. Reading it
// when nothing came is harmless in any state (a TLS handshake only asks
// for more, as after a spurious wake-up). io->lock held.
static void
solo_update(tp__dist *n)
{
    conn *solo = NULL;
    if (n->nreading == 1)
        for (conn *x = n->conns; x != NULL; x = x->next)
            if (x->reading) {
                solo = x;
                break;
            }
    // relaxed: a hint (see tp__node_poll_ready).
    atomic_store_explicit(&n->solo, solo, memory_order_relaxed);
}

bool
tp__conn_read_on(conn *c)
{
    if (c->reading)
        return true;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(c->node->pfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        tp__log(c->node->sys, TP_LOG_ERR, "node: cannot watch %s: %s", c->addr,
                strerror(errno));
        return false;
    }
    c->reading = true;
    c->node->nreading++;
    solo_update(c->node);
    return true;
}

void
tp__conn_read_off(conn *c)
{
    if (!c->reading)
        return;
    epoll_ctl(c->node->pfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->reading = false;
    c->node->nreading--;
    solo_update(c->node);
}

void
tp__poll_reclaim(tp__dist *n)
{
    // relaxed: under io->lock, as every write of the poller.
    if (atomic_load_explicit(&n->poller, memory_order_relaxed) == NULL)
        return;
    atomic_store_explicit(&n->poller, NULL, memory_order_relaxed);
    tp__io_timer_stop(n->io, &n->pwatch);
    tp__io_fd_start(n->io, &n->pio);
}

bool
tp__node_poll_ready(tp_system *sys, tp__worker *w, int64_t now)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return false;
    // relaxed, all three: hints; the lock taken below decides.
    void *owner = atomic_load_explicit(&n->poller, memory_order_relaxed);
    if (owner != w) {
        if (now - atomic_load_explicit(&n->last_input, memory_order_relaxed) >
            POLL_RECENT_NS)
            return false;
        if (owner != NULL &&
            now - atomic_load_explicit(&n->poll_seen, memory_order_relaxed) <
                POLL_TAKE_NS)
            return false;
        // Take the watch. From the loop, it wakes the loop once, to arm
        // pwatch (the set leaves the loop's own at the next input).
        if (pthread_mutex_trylock(&n->io->lock) != 0)
            return false;
        bool take = !atomic_load_explicit(&n->io->stopping,
                                          memory_order_acquire) &&
                    n->nreading > 0,
             from_loop = false;
        if (take) {
            // relaxed: a hint, read by pwatch under this lock.
            atomic_store_explicit(&n->poll_seen, now, memory_order_relaxed);
            if (atomic_load_explicit(&n->poller, memory_order_relaxed) ==
                NULL) {
                tp__io_fd_stop(n->io, &n->pio);
                tp__io_now_update(n->io); // the timer counts from now
                tp__io_timer_again(n->io, &n->pwatch);
                from_loop = true;
            }
            atomic_store_explicit(&n->poller, w, memory_order_relaxed);
        }
        pthread_mutex_unlock(&n->io->lock);
        if (from_loop)
            tp__io_wake(n->io);
        if (!take)
            return false;
    }
    atomic_store_explicit(&n->poll_seen, now, memory_order_relaxed);
    // One connection, and input a moment ago: reading it is the look.
    // Asking epoll first would put a second system call before every
    // frame read.
    // relaxed: a hint; poll_read checks it under the lock.
    conn *solo = atomic_load_explicit(&n->solo, memory_order_relaxed);
    if (solo != NULL &&
        now - atomic_load_explicit(&n->last_input, memory_order_relaxed) <
            POLL_UNASKED_NS) {
        seen_ready = solo;
        return true;
    }
    struct epoll_event ev;
    if (epoll_wait(n->pfd, &ev, 1, 0) <= 0)
        return false;
    seen_ready = ev.data.ptr;
    return true;
}

void
tp__node_poll_read(tp_system *sys, tp__worker *w)
{
    tp__dist *n = node_of(sys);
    tp__io *io = n->io;
    if (pthread_mutex_trylock(&io->lock) != 0)
        return; // the loop is at work: next look
    // relaxed: under the lock, as every write of the poller.
    if (atomic_load_explicit(&n->poller, memory_order_relaxed) != w ||
        atomic_load_explicit(&io->stopping, memory_order_acquire)) {
        pthread_mutex_unlock(&io->lock);
        return;
    }
    unsigned changes = io->changes;
    // relaxed: frames_in grows only under io->lock, which we hold.
    uint64_t in = atomic_load_explicit(&n->frames_in, memory_order_relaxed);
    tp__io_now_update(io); // the loop's clock stamps what we read
    dispatch(n, still_read(n, seen_ready) ? seen_ready : NULL);
    bump(&n->frames_polled,
         atomic_load_explicit(&n->frames_in, memory_order_relaxed) - in);
    seen_ready = NULL;
    bool wake = io->changes != changes;
    pthread_mutex_unlock(&io->lock);
    if (wake)
        tp__io_wake(io); // a watcher or timer the loop must apply
}

void
tp__node_unpoll(tp_system *sys, tp__worker *w)
{
    tp__dist *n = node_of(sys);
    // relaxed: only `w` makes itself the poller; anyone may clear it.
    if (n == NULL ||
        atomic_load_explicit(&n->poller, memory_order_relaxed) != w)
        return;
    pthread_mutex_lock(&n->io->lock);
    bool mine = atomic_load_explicit(&n->poller, memory_order_relaxed) == w;
    if (mine)
        tp__poll_reclaim(n);
    pthread_mutex_unlock(&n->io->lock);
    if (mine)
        tp__io_wake(n->io);
}
