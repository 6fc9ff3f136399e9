// SPDX-License-Identifier: MIT
// The I/O thread shared by distribution (lib/dist), actors' sockets
// (sock.c), the control socket and metrics endpoint (observe/serve.c) and
// the stall watch's timer: one libev loop per system, and the runtime's only
// window onto libev: io.c is the one file that includes <ev.h>. A watcher
// lives inside the object it serves (no allocation per watcher) as storage the
// size of libev's own, which io.c checks when it is compiled. Watchers are
// started, stopped and changed with io->lock held: on the I/O thread (in a
// callback or a wake-up) or by a thread that took the lock.
#ifndef TROUPE_IO_H
#define TROUPE_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"
#include "io/addr.h"
#include "io/wbuf.h"

// The modules that run code at each wake-up of the loop (tp__io_on_wake):
// distribution, actors' sockets, and the two servers of observe/serve.c.
enum {
    TP__IO_NODE = 0,
    TP__IO_SOCK = 1,
    TP__IO_CONTROL = 2,
    TP__IO_METRICS = 3,
    TP__IO_CLIENTS = 4
};

// Readiness, as tp__io_fd_init takes it and callbacks receive it.
enum { TP__IO_READ = 1, TP__IO_WRITE = 2 };

// Storage for one libev watcher; first in each wrapper, so libev's
// watcher and the wrapper share an address.
typedef union tp__io_raw {
    max_align_t align;
    unsigned char bytes[64];
} tp__io_raw;

typedef struct tp__io_fd tp__io_fd;
typedef struct tp__io_timer tp__io_timer;

// `events`: the TP__IO_* that are ready.
typedef void (*tp__io_fd_cb)(tp__io_fd *w, int events);
typedef void (*tp__io_timer_cb)(tp__io_timer *t);

// Watches a file descriptor for readiness.
struct tp__io_fd {
    tp__io_raw ev;
    tp__io_fd_cb cb;
    void *data; // the owner's, for the callback
};

// Fires `after` seconds after it is started, then every `repeat` (0: once).
struct tp__io_timer {
    tp__io_raw ev;
    tp__io_timer_cb cb;
    void *data;
    int64_t vdue; // a stepped loop's: the virtual deadline, in ns
    bool von;     // a stepped loop's: armed
};

typedef struct tp__io {
    tp_system *sys;
    struct ev_loop *loop; // opaque outside io.c
    tp__io_raw async;     // the wake-up watcher
    pthread_t thread;
    // Held by the I/O thread except while it waits for events.
    pthread_mutex_t lock;
    // Under lock: counts watchers started or stopped and timers (re)armed.
    // A thread that took the lock and ran callbacks (dist's worker polling)
    // compares it before and after, and wakes the loop to apply changes.
    unsigned changes;
    _Atomic int stopping;
    bool stopped;
    void (*wake[TP__IO_CLIENTS])(void *);
    void *wake_arg[TP__IO_CLIENTS];
    tp__worker *pool; // the I/O thread's message pool (mailbox.c)
    // A test system in a net (troupe/test.h) has a stepped loop: no thread;
    // the test's thread polls it (tp__io_poll) and its timers follow the
    // virtual clock, kept here instead of in libev.
    bool stepped;
    unsigned long dispatched; // callbacks run, under lock
    tp__io_timer **vt;
    size_t nvt, capvt;
} tp__io;

tp__io *tp__io_get(tp_system *sys);
// Stops the I/O thread (system.c, at shutdown); the loop and its
// watchers stay until tp__io_free, once nothing uses them.
void tp__io_stop(tp_system *sys);
void tp__io_free(tp_system *sys);
void tp__io_on_wake(tp__io *io, int client, void (*fn)(void *), void *arg);
void tp__io_wake(tp__io *io);

void tp__io_fd_init(tp__io_fd *w, tp__io_fd_cb cb, int fd, int events);
// Changes which readiness a stopped watcher waits for (TP__IO_*).
void tp__io_fd_set(tp__io_fd *w, int events);
void tp__io_fd_start(tp__io *io, tp__io_fd *w);
void tp__io_fd_stop(tp__io *io, tp__io_fd *w);
bool tp__io_fd_active(const tp__io_fd *w);

void tp__io_timer_init(tp__io_timer *t, tp__io_timer_cb cb, double after,
                       double repeat);
// Changes when a stopped timer fires.
void tp__io_timer_set(tp__io_timer *t, double after, double repeat);
void tp__io_timer_start(tp__io *io, tp__io_timer *t);
void tp__io_timer_stop(tp__io *io, tp__io_timer *t);
// Restarts a repeating timer from now (libev's ev_timer_again).
void tp__io_timer_again(tp__io *io, tp__io_timer *t);

// A stepped loop (a test system in a net), on the test's thread, io->lock
// not held: runs what is ready without waiting and returns how many
// callbacks ran (0 with no loop); fires the timers due by the virtual
// clock and returns how many; the next one's deadline in virtual ns, or -1.
int tp__io_poll(tp_system *sys);
int tp__io_fire_due(tp_system *sys);
int64_t tp__io_next_due_ns(tp_system *sys);

// The loop's clock in seconds, as of its last wake-up or update.
double tp__io_now(tp__io *io);
void tp__io_now_update(tp__io *io);

// Actors' sockets (sock.c), as the core and the I/O thread call them.
void tp__sock_data_done(tp__msg *m);
void tp__sock_owner_died(tp_actor *a);
void tp__sock_free(tp_system *sys);
// Stops the I/O thread (tp__io_stop); frees its loop and watchers once
// nothing else uses them (tp__io_free). The system calls both at its end.
void tp__io_stop(tp_system *sys);
void tp__io_free(tp_system *sys);

#endif
