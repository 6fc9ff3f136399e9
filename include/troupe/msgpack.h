// SPDX-License-Identifier: MIT
// msgpack helpers, opt-in: pack a payload with msgpack-c's packer and send
// it without touching buffers, unpack a received payload, and carry pids
// between nodes. <troupe.h> does not include this header, so programs that
// do not use msgpack need none of its headers; those that do include it
// after <troupe.h>, and build with msgpack-c's flags too:
// `pkg-config --cflags --libs troupe msgpack` (msgpack-c on distributions
// newer than Debian 12).
#ifndef TROUPE_MSGPACK_H
#define TROUPE_MSGPACK_H

#include <msgpack.h>

#include "actor.h"

// A growable buffer with a msgpack packer writing into it. Initialise with
// tp_pack_init, pack into tp_pack_packer(p) with msgpack_pack_* calls, then
// hand it to tp_pack_send. Owned by whoever declared it.
typedef struct tp_pack {
    msgpack_sbuffer buf;
    msgpack_packer pk;
} tp_pack;

// Makes `p` empty and ready to pack into.
TP_API void tp_pack_init(tp_pack *p);

// The packer writing into `p`.
static inline msgpack_packer *
tp_pack_packer(tp_pack *p)
{
    return &p->pk;
}

// Frees what `p` holds; it may be initialised again. Accepts NULL.
TP_API void tp_pack_destroy(tp_pack *p);

// Sends what was packed into `p` from the running actor, handing the bytes
// over without a copy; on success `p` is left empty and ready for reuse, on
// failure it keeps its contents. Returns tp_send_buf's codes, and TP_EINVAL
// for an empty pack.
TP_API int tp_pack_send(tp_ctx *ctx, tp_pid to, uint32_t tag, tp_pack *p);

// As tp_pack_send, from a thread outside the system (see tp_system_send).
TP_API int tp_system_pack_send(tp_system *sys, tp_pid to, uint32_t tag,
                               tp_pack *p);

// Unpacks `msg`'s payload, which must be exactly one msgpack object, into
// `out` (initialised here). Returns 0, TP_EINVAL (NULL `msg` or `out`, or
// NULL data with a size), or TP_EDECODE
// (empty, truncated, malformed, or trailing bytes). The caller releases
// `out` with msgpack_unpacked_destroy in every case.
TP_API int tp_msg_unpack(const tp_msg *msg, msgpack_unpacked *out);

// The msgpack extension type that carries a pid between nodes: the full
// name of the pid's node, its incarnation and the node-local part, so the
// pid can be used on any node that receives it.
#define TP_PID_EXT_TYPE 1

// Packs `pid` as a TP_PID_EXT_TYPE extension into `pk`. `sys` is the system
// the pid is valid in. Returns 0, TP_EINVAL (NULL, or a pid whose node `sys`
// does not know) or TP_ENOMEM.
TP_API int tp_pack_pid(tp_system *sys, tp_pid pid, msgpack_packer *pk);

// Reads a pid packed by tp_pack_pid on any node into `*out`, valid in
// `sys`: a pid of `sys`'s own node becomes local, any other names its node
// (connected on first use). Returns 0, TP_EINVAL (not a pid extension,
// malformed, or another node's pid while `sys` is not a node), TP_ENOACTOR (a pid of an earlier incarnation of this node:
// its actor is gone) or TP_EAGAIN (node table full).
TP_API int tp_unpack_pid(tp_system *sys, const msgpack_object *obj,
                         tp_pid *out);

#endif
