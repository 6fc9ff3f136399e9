// SPDX-License-Identifier: MIT
// Actors' sockets, private to sock.c (the actors' side: handles, commands,
// the public calls) and sockio.c (the I/O thread's side: reading,
// writing, accepting, running commands). The I/O thread owns every
// socket's state; actors reach it through a command list and a table of
// slots whose few shared fields (generation, owner, bytes waiting, data
// messages in flight) are atomics, so checking a handle and its owner
// never waits for the I/O thread.
#ifndef TROUPE_IO_SOCK_IMPL_H
#define TROUPE_IO_SOCK_IMPL_H

#include "core/core.h"
#include "io/io.h"

#define SLOTS_MAX 65536
#define SOCK_BACKLOG 128 // listen(2)'s
#define ACCEPT_BATCH 16  // accepts per readiness event

enum { K_LISTEN, K_CONNECTING, K_STREAM };
enum { C_WATCH, C_SEND, C_CLOSE, C_RESUME, C_OWNER_DIED, C_GIVEN };

// How long a closing connection may take to write what is left and see
// its peer close, in seconds (tp__sock_close_gently).
#define LINGER_S 5.0

typedef struct tsock {
    uint32_t idx;
    int fd;
    int kind;
    bool paused;   // stopped reading: the owner has a window's worth
    bool closing;  // closing: its input is dropped, its output goes on
    bool shut;     // closing, output all written, our side shut down
    bool peer_eof; // closing, and the peer has closed its side
    tp__io_fd rio, wio;
    tp__io_timer linger; // ends a closing connection's wait
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

// A handle is the slot's index and generation: a closed socket's handle
// stays dead when its slot is reused.
static inline tp_sock
handle(const slot *sl, uint32_t idx)
{
    // relaxed: the generation only changes on the I/O thread, at close.
    return ((uint64_t)atomic_load_explicit(&sl->gen, memory_order_relaxed)
            << 32) |
           (idx + 1);
}

// ---- sockio.c: the I/O thread (or io->lock held) ---------------------

// A free slot's index, or UINT32_MAX when all SLOTS_MAX are taken. Any
// thread.
uint32_t tp__sock_slot_alloc(tp__socks *t);
// A socket record for `fd` in slot `idx`, its watchers ready; NULL when
// memory ran out. Any thread.
tsock *tp__tsock_new(tp__socks *t, uint32_t idx, int fd, int kind);
// Closes `idx` quietly (no TP_TAG_SOCK_CLOSED), its handle dead at once. A
// connection goes on writing what was queued, then shuts its side down,
// and what its peer still sends is read and dropped until the peer closes
// too: a close(2) with input unread would reset the connection, and the
// peer would lose what we sent; one still connecting does so once
// connected. LINGER_S ends the wait. A listener closes at once. io->lock
// held.
void tp__sock_close_gently(tp__socks *t, uint32_t idx);
// Closes every socket `pid` owns, quietly, as tp__sock_close_gently;
// io->lock held.
void tp__sock_close_owned(tp__socks *t, uint64_t pid);
// Runs the queued commands, io->lock held: the I/O thread's wake-up, and
// a dying owner's thread before it closes the owner's sockets (so what it
// sent goes out first).
void tp__socks_wake(void *arg);

#endif
