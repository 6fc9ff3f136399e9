// SPDX-License-Identifier: MIT
// The I/O thread: one libev loop per system, started on first use by the
// distribution layer or by an actor's socket. The thread holds `lock`
// except while it waits for events, so another thread that takes the lock
// (a sender writing to an idle connection, a module registering watchers)
// touches loop state safely; it then wakes the loop with tp__io_wake.
#include "troupe_impl.h"
#include "io.h"

#include <stdlib.h>
#include <string.h>

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
    pthread_mutex_init(&io->lock, NULL);
    io->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (io->loop == NULL)
        goto fail;
    ev_set_userdata(io->loop, io);
    ev_set_loop_release_cb(io->loop, io_release, io_acquire);
    ev_async_init(&io->async, async_cb);
    io->async.data = io;
    ev_async_start(io->loop, &io->async);
    if (pthread_create(&io->thread, NULL, io_main, io) != 0)
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

// Registers `fn(arg)` to run on the I/O thread at every wake-up. Call with
// io->lock held (or before anything can wake the loop).
void
tp__io_on_wake(tp__io *io, int client, void (*fn)(void *), void *arg)
{
    io->wake_arg[client] = arg;
    io->wake[client] = fn;
}

void
tp__io_wake(tp__io *io)
{
    ev_async_send(io->loop, &io->async);
}

// Stops the I/O thread; the loop and its watchers stay until tp__io_free.
void
tp__io_stop(tp_system *sys)
{
    tp__io *io = atomic_load_explicit(&sys->io, memory_order_acquire);
    if (io == NULL || io->stopped)
        return;
    atomic_store_explicit(&io->stopping, 1, memory_order_release);
    ev_async_send(io->loop, &io->async);
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
    tp__pool_io_free(&io->pool); // workers and I/O thread have stopped
    free(io);
}
