// SPDX-License-Identifier: MIT
// The I/O thread shared by distribution (node.c) and actors' sockets
// (sock.c): one libev loop per system. See io.c.
#ifndef TROUPE_IO_H
#define TROUPE_IO_H

#include <ev.h>

#include "troupe_impl.h"

enum { TP__IO_NODE = 0, TP__IO_SOCK = 1, TP__IO_CLIENTS = 2 };

typedef struct tp__io {
    tp_system *sys;
    struct ev_loop *loop;
    ev_async async;
    pthread_t thread;
    // Held by the I/O thread except while it waits for events.
    pthread_mutex_t lock;
    _Atomic int stopping;
    bool stopped;
    void (*wake[TP__IO_CLIENTS])(void *);
    void *wake_arg[TP__IO_CLIENTS];
    tp__worker *pool; // the I/O thread's message pool (mailbox.c)
} tp__io;

tp__io *tp__io_get(tp_system *sys);
void tp__io_on_wake(tp__io *io, int client, void (*fn)(void *), void *arg);
void tp__io_wake(tp__io *io);

#endif
