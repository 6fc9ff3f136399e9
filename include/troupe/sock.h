// SPDX-License-Identifier: MIT
// Actors that serve sockets: TCP listening, accepting, connecting, reading
// and writing through the I/O thread, with readiness, data and closure
// arriving as messages to the socket's owner (like Erlang's gen_tcp in
// active mode). Reading is flow-controlled: a socket has at most a few
// data messages waiting in its owner's mailbox; it reads on once the owner
// has handled them, so a slow owner slows its peer instead of growing
// without bound. When the owner exits, for any reason, its sockets are
// closed before its links and monitors hear of it (a listener's port is
// free again by then), as tp_sock_close closes them: a connection first
// writes what the owner queued for it.
#ifndef TROUPE_SOCK_H
#define TROUPE_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"

// A socket's handle; 0 never names one. Messages about a socket carry it
// in msg->ref.
typedef uint64_t tp_sock;

// Messages to the owner, in msg->tag.
#define TP_TAG_SOCK_ACCEPTED (TP_TAG_RESERVED + 32)  // data: tp_sock_accepted
#define TP_TAG_SOCK_CONNECTED (TP_TAG_RESERVED + 33) // no data
#define TP_TAG_SOCK_DATA (TP_TAG_RESERVED + 34)      // data: the bytes read
#define TP_TAG_SOCK_CLOSED (TP_TAG_RESERVED + 35)    // data: int32 error

// A connection accepted by a listener (msg->ref names the listener); the
// new socket belongs to the listener's owner.
typedef struct tp_sock_accepted {
    tp_sock sock;
    char peer[64]; // "HOST:PORT", or "[IPV6]:PORT"
} tp_sock_accepted;

// Data messages a socket may have waiting in its owner's mailbox before
// it stops reading, and the most bytes one of them carries.
#define TP_SOCK_WINDOW 4
#define TP_SOCK_READ_MAX 65536

// Bytes a socket may hold unsent before tp_sock_send refuses more.
#define TP_SOCK_SEND_MAX ((size_t)4 << 20)

// Listens on `addr` ("A.B.C.D:PORT" or "[IPv6]:PORT", port 0 picks one)
// for the running actor, which receives TP_TAG_SOCK_ACCEPTED for each
// connection. Stores the handle in `*out` and the bound port in `*port`
// (may be NULL). Returns 0, TP_EINVAL (a malformed address), the error
// socket(2), bind(2) or listen(2) gave (TP_EADDRINUSE, TP_EADDRNOTAVAIL,
// TP_EACCES, TP_EAFNOSUPPORT, TP_EMFILE, ...), TP_EAGAIN (no I/O thread,
// socket table full), TP_ENOMEM, TP_EPERM (not on the actor's thread).
TP_API int tp_sock_listen(tp_ctx *ctx, const char *addr, tp_sock *out,
                          uint16_t *port);

// Connects to `addr` for the running actor, without waiting: the actor
// receives TP_TAG_SOCK_CONNECTED, or TP_TAG_SOCK_CLOSED with the error.
// Returns 0, TP_EINVAL, the error socket(2) or connect(2) gave at once
// (TP_ENETUNREACH, TP_EAFNOSUPPORT, ...), TP_EAGAIN, TP_ENOMEM or
// TP_EPERM.
TP_API int tp_sock_connect(tp_ctx *ctx, const char *addr, tp_sock *out);

// Queues `size` bytes (copied) for sending on `s`, which the running actor
// must own. Returns 0, TP_EFULL (TP_SOCK_SEND_MAX bytes already wait:
// try again later), TP_ENOENT (not an open socket: it closed, and a
// TP_TAG_SOCK_CLOSED is or was on its way), TP_EPERM (owned by another
// actor, or not on the actor's thread), TP_EINVAL or TP_ENOMEM.
TP_API int tp_sock_send(tp_ctx *ctx, tp_sock s, const void *data, size_t size);

// Closes `s`; no TP_TAG_SOCK_CLOSED follows and the handle is dead at once.
// A connection first sends what was queued, in order, then shuts down its
// side; what the peer still sends is read and dropped until the peer closes
// too (closing with input unread would make the kernel reset the
// connection, and the peer lose what was sent), for 5 seconds at most,
// after which it is closed regardless (a connection still connecting
// waits to connect within that time). A listener closes at once. Returns 0,
// TP_ENOENT, TP_EPERM or TP_EINVAL.
TP_API int tp_sock_close(tp_ctx *ctx, tp_sock s);

// Hands `s` to the actor `owner` (of the same system): what is read from
// now on goes to it, and it may send and close. Messages already queued
// stay with the running actor. A held socket starts reading. Returns 0,
// TP_ENOENT, TP_EPERM, TP_EINVAL or TP_ENOACTOR (`owner` is dead: the
// socket stays the running actor's); if `owner` dies later, the socket is
// closed as at any owner's exit.
TP_API int tp_sock_give(tp_ctx *ctx, tp_sock s, tp_pid owner);

// An accepted socket starts reading once its TP_TAG_SOCK_ACCEPTED message
// has been handled, so handing it over within that callback is enough. To
// hand it over later (say, once a supervisor has started the actor that
// will serve it), call tp_sock_hold in that callback: the socket then
// reads nothing until tp_sock_give or tp_sock_activate. Both return 0,
// TP_ENOENT, TP_EPERM or TP_EINVAL.
TP_API int tp_sock_hold(tp_ctx *ctx, tp_sock s);
TP_API int tp_sock_activate(tp_ctx *ctx, tp_sock s);

#endif
