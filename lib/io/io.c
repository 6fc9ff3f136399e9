// SPDX-License-Identifier: MIT
// The I/O thread: one libev loop per system, started on first use by the
// distribution layer or by an actor's socket. The thread holds `lock`
// except while it waits for events, so another thread that takes the lock
// (a sender writing to an idle connection, a module registering watchers)
// touches loop state safely; it then wakes the loop with tp__io_wake.
// The only file of the runtime that includes <ev.h>: io.h's watchers wrap
// libev's here.
#include "core/core.h"
#include "io/io.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(ev_io) <= sizeof(tp__io_raw), "ev_io fits");
_Static_assert(sizeof(ev_timer) <= sizeof(tp__io_raw), "ev_timer fits");
_Static_assert(sizeof(ev_async) <= sizeof(tp__io_raw), "ev_async fits");
_Static_assert((int)TP__IO_READ == (int)EV_READ &&
                   (int)TP__IO_WRITE == (int)EV_WRITE,
               "readiness bits are libev's");
_Static_assert(offsetof(tp__io_fd, ev) == 0 && offsetof(tp__io_timer, ev) == 0,
               "a wrapper starts with its libev watcher");

#define EVIO(w) ((ev_io *)(void *)&(w)->ev)
#define EVTIMER(t) ((ev_timer *)(void *)&(t)->ev)
#define EVASYNC(io) ((ev_async *)(void *)&(io)->async)

static void
fd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    tp__io_fd *f = (tp__io_fd *)(void *)w;
    ((tp__io *)ev_userdata(loop))->dispatched++;
    f->cb(f, revents & (EV_READ | EV_WRITE));
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    tp__io_timer *t = (tp__io_timer *)(void *)w;
    t->cb(t);
}

void
tp__io_fd_init(tp__io_fd *w, tp__io_fd_cb cb, int fd, int events)
{
    ev_io_init(EVIO(w), fd_cb, fd, events);
    w->cb = cb;
}

void
tp__io_fd_set(tp__io_fd *w, int events)
{
    ev_io_set(EVIO(w), EVIO(w)->fd, events);
}

void
tp__io_fd_start(tp__io *io, tp__io_fd *w)
{
    io->changes += !ev_is_active(EVIO(w));
    ev_io_start(io->loop, EVIO(w));
}

void
tp__io_fd_stop(tp__io *io, tp__io_fd *w)
{
    io->changes += ev_is_active(EVIO(w));
    ev_io_stop(io->loop, EVIO(w));
}

bool
tp__io_fd_active(const tp__io_fd *w)
{
    return ev_is_active((const ev_io *)(const void *)&w->ev);
}

void
tp__io_timer_init(tp__io_timer *t, tp__io_timer_cb cb, double after,
                  double repeat)
{
    ev_timer_init(EVTIMER(t), timer_cb, after, repeat);
    t->cb = cb;
    t->von = false;
}

// ---- a stepped loop's timers: a short list on the virtual clock ------------

static int64_t
vnow(tp__io *io)
{
    return tp__test_now_ns(io->sys);
}

static void
vt_remove(tp__io *io, tp__io_timer *t)
{
    if (!t->von)
        return;
    for (size_t i = 0; i < io->nvt; i++)
        if (io->vt[i] == t) {
            memmove(&io->vt[i], &io->vt[i + 1],
                    (io->nvt - i - 1) * sizeof *io->vt);
            io->nvt--;
            break;
        }
    t->von = false;
}

static void
vt_arm(tp__io *io, tp__io_timer *t, double after)
{
    t->vdue = vnow(io) + (int64_t)(after * 1e9);
    if (t->von)
        return;
    if (io->nvt == io->capvt) {
        size_t c = io->capvt ? io->capvt * 2 : 16;
        void *q = realloc(io->vt, c * sizeof *io->vt);
        if (q == NULL)
            tp__assert_fail("a stepped loop's timers could grow (out of "
                            "memory)",
                            __FILE__, __LINE__, __func__);
        io->vt = q;
        io->capvt = c;
    }
    io->vt[io->nvt++] = t;
    t->von = true;
}

// The armed timer due first (the earliest armed among equals), or NULL.
static tp__io_timer *
vt_first(tp__io *io)
{
    tp__io_timer *first = NULL;
    for (size_t i = 0; i < io->nvt; i++)
        if (first == NULL || io->vt[i]->vdue < first->vdue)
            first = io->vt[i];
    return first;
}

void
tp__io_timer_set(tp__io_timer *t, double after, double repeat)
{
    ev_timer_set(EVTIMER(t), after, repeat);
}

void
tp__io_timer_start(tp__io *io, tp__io_timer *t)
{
    io->changes++;
    if (io->stepped)
        vt_arm(io, t, EVTIMER(t)->at);
    else
        ev_timer_start(io->loop, EVTIMER(t));
}

void
tp__io_timer_stop(tp__io *io, tp__io_timer *t)
{
    if (io->stepped)
        vt_remove(io, t);
    else
        ev_timer_stop(io->loop, EVTIMER(t));
}

void
tp__io_timer_again(tp__io *io, tp__io_timer *t)
{
    io->changes++;
    if (!io->stepped) {
        ev_timer_again(io->loop, EVTIMER(t));
        return;
    }
    double repeat = EVTIMER(t)->repeat; // as libev: restart, or stop
    if (repeat > 0)
        vt_arm(io, t, repeat);
    else
        vt_remove(io, t);
}

double
tp__io_now(tp__io *io)
{
    return io->stepped ? (double)vnow(io) / 1e9 : ev_now(io->loop);
}

void
tp__io_now_update(tp__io *io)
{
    if (!io->stepped)
        ev_now_update(io->loop);
}

int
tp__io_poll(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL || !io->stepped || io->stopped)
        return 0;
    pthread_mutex_lock(&io->lock);
    tp__worker *pool = tp__self.io_pool;
    tp__self.io_pool = io->pool;
    unsigned long before = io->dispatched;
    ev_run(io->loop, EVRUN_NOWAIT);
    int n = (int)(io->dispatched - before);
    tp__self.io_pool = pool;
    pthread_mutex_unlock(&io->lock);
    return n;
}

int
tp__io_fire_due(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL || !io->stepped || io->stopped)
        return 0;
    pthread_mutex_lock(&io->lock);
    tp__worker *pool = tp__self.io_pool;
    tp__self.io_pool = io->pool;
    int n = 0;
    for (;;) {
        tp__io_timer *t = vt_first(io);
        if (t == NULL || t->vdue > vnow(io))
            break;
        double repeat = EVTIMER(t)->repeat;
        if (repeat > 0)
            t->vdue += (int64_t)(repeat * 1e9);
        else
            vt_remove(io, t);
        n++;
        t->cb(t);
    }
    tp__self.io_pool = pool;
    pthread_mutex_unlock(&io->lock);
    return n;
}

int64_t
tp__io_next_due_ns(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL || !io->stepped || io->stopped)
        return -1;
    pthread_mutex_lock(&io->lock);
    tp__io_timer *t = vt_first(io);
    int64_t due = t != NULL ? t->vdue : -1;
    pthread_mutex_unlock(&io->lock);
    return due;
}

static void
io_release(struct ev_loop *loop)
{
    tp__io *io = ev_userdata(loop);
    pthread_mutex_unlock(&io->lock);
}

static void
io_acquire(struct ev_loop *loop)
{
    tp__io *io = ev_userdata(loop);
    pthread_mutex_lock(&io->lock);
}

static void
async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    tp__io *io = w->data;
    io->dispatched++;
    if (atomic_load_explicit(&io->stopping, memory_order_acquire)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    for (int i = 0; i < TP__IO_CLIENTS; i++)
        if (io->wake[i] != NULL)
            io->wake[i](io->wake_arg[i]);
}

static void *
io_main(void *arg)
{
    tp__io *io = arg;
    tp__self.io_pool = io->pool;
    pthread_mutex_lock(&io->lock);
    ev_run(io->loop, 0);
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

// The system's I/O loop, created and started on first use. Returns NULL
// when it cannot be (no memory, no thread). Any thread outside actors.
tp__io *
tp__io_get(tp_system *sys)
{
    pthread_mutex_lock(&sys->io_init_lock);
    tp__io *io = sys->io;
    if (io != NULL) {
        pthread_mutex_unlock(&sys->io_init_lock);
        return io;
    }
    io = calloc(1, sizeof *io);
    if (io == NULL)
        goto fail;
    io->sys = sys;
    io->pool = tp__pool_io_new(sys); // NULL: messages come from malloc
    if (pthread_mutex_init(&io->lock, NULL) != 0) {
        tp__pool_io_free(&io->pool);
        free(io);
        io = NULL;
        goto fail;
    }
    io->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (io->loop == NULL)
        goto fail;
    ev_set_userdata(io->loop, io);
    ev_set_loop_release_cb(io->loop, io_release, io_acquire);
    ev_async_init(EVASYNC(io), async_cb);
    EVASYNC(io)->data = io;
    ev_async_start(io->loop, EVASYNC(io));
    io->stepped = tp__test_stepped(sys);
    if (!io->stepped && pthread_create(&io->thread, NULL, io_main, io) != 0)
        goto fail;
    // release: readers of sys->io see it built.
    atomic_store_explicit(&sys->io, io, memory_order_release);
    pthread_mutex_unlock(&sys->io_init_lock);
    return io;
fail:
    if (io != NULL) {
        if (io->loop != NULL)
            ev_loop_destroy(io->loop);
        pthread_mutex_destroy(&io->lock);
        tp__pool_io_free(&io->pool);
        free(io);
    }
    pthread_mutex_unlock(&sys->io_init_lock);
    return NULL;
}

// Registers `fn(arg)` to run on the I/O thread at every wake-up, or with
// fn NULL unregisters it. Call with io->lock held (or before anything can
// wake the loop).
void
tp__io_on_wake(tp__io *io, int client, void (*fn)(void *), void *arg)
{
    io->wake_arg[client] = arg;
    io->wake[client] = fn;
}

void
tp__io_wake(tp__io *io)
{
    ev_async_send(io->loop, EVASYNC(io));
}

// Stops the I/O thread; the loop and its watchers stay until tp__io_free.
void
tp__io_stop(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL || io->stopped)
        return;
    atomic_store_explicit(&io->stopping, 1, memory_order_release);
    if (io->stepped) { // no thread: the loop just stops being polled
        io->stopped = true;
        return;
    }
    ev_async_send(io->loop, EVASYNC(io));
    pthread_join(io->thread, NULL);
    io->stopped = true;
}

void
tp__io_free(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL)
        return;
    atomic_store_explicit(&sys->io, NULL, memory_order_release);
    ev_loop_destroy(io->loop);
    pthread_mutex_destroy(&io->lock);
    free(io->vt);
    tp__pool_io_free(&io->pool); // workers and I/O thread have stopped
    free(io);
}
