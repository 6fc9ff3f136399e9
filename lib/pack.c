// SPDX-License-Identifier: MIT
// The msgpack payload helpers: the one core file that includes msgpack-c's
// headers (through troupe/pack.h). Packing writes into an sbuffer whose
// malloc'ed bytes are handed to the zero-copy send.
#include "troupe_impl.h"

#include <stdlib.h>
#include <string.h>

void
tp_pack_init(tp_pack *p)
{
    if (p == NULL)
        return;
    msgpack_sbuffer_init(&p->buf);
    msgpack_packer_init(&p->pk, &p->buf, msgpack_sbuffer_write);
}

void
tp_pack_destroy(tp_pack *p)
{
    if (p == NULL)
        return;
    msgpack_sbuffer_destroy(&p->buf);
    msgpack_sbuffer_init(&p->buf);
}

static int
pack_send(tp_ctx *ctx, tp_system *sys, tp_pid to, uint32_t tag, tp_pack *p)
{
    if (p == NULL || p->buf.size == 0)
        return TP_EINVAL;
    int rc = ctx ? tp_send_buf(ctx, to, tag, p->buf.data, p->buf.size)
                 : tp_system_send_buf(sys, to, tag, p->buf.data, p->buf.size);
    if (rc == 0) {
        // The bytes now belong to the message; start a fresh buffer.
        msgpack_sbuffer_init(&p->buf);
    }
    return rc;
}

int
tp_pack_send(tp_ctx *ctx, tp_pid to, uint32_t tag, tp_pack *p)
{
    if (ctx == NULL)
        return TP_EINVAL;
    return pack_send(ctx, NULL, to, tag, p);
}

int
tp_system_pack_send(tp_system *sys, tp_pid to, uint32_t tag, tp_pack *p)
{
    if (sys == NULL)
        return TP_EINVAL;
    return pack_send(NULL, sys, to, tag, p);
}

int
tp_msg_unpack(const tp_msg *msg, msgpack_unpacked *out)
{
    if (out == NULL)
        return TP_EINVAL;
    msgpack_unpacked_init(out);
    if (msg == NULL)
        return TP_EINVAL;
    if (msg->size == 0)
        return TP_EDECODE;
    size_t off = 0;
    msgpack_unpack_return r =
        msgpack_unpack_next(out, msg->data, msg->size, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != msg->size) {
        msgpack_unpacked_destroy(out);
        msgpack_unpacked_init(out);
        return TP_EDECODE;
    }
    return 0;
}
