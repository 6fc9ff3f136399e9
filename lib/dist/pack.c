// SPDX-License-Identifier: MIT
// The msgpack payload helpers, beside the wire codec in dist because a pid
// packs as its node name, incarnation and local part: the one file that
// includes msgpack-c's headers (through troupe/msgpack.h). Packing writes
// into an sbuffer whose
// malloc'ed bytes are handed to the zero-copy send.
#include "core/core.h"
#include "dist/dist.h"

#include <troupe/msgpack.h>

#include <stdlib.h>
#include <string.h>
#include <stdint.h>

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

// Deepest nesting of arrays and maps a payload may have.
#define PACK_DEPTH 64

static uint32_t
be(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

// Reads the header at p[0..left): sets *skip to the bytes the object
// itself takes (for containers, only the header) and *items to the number
// of objects it contains. Returns -1 when the header does not fit.
static int
pack_header(const uint8_t *p, size_t left, size_t *skip, uint64_t *items)
{
    static const uint8_t fixed[] = {
        [0xc0] = 1, [0xc2] = 1,  [0xc3] = 1, [0xca] = 5, [0xcb] = 9,
        [0xcc] = 2, [0xcd] = 3,  [0xce] = 5, [0xcf] = 9, [0xd0] = 2,
        [0xd1] = 3, [0xd2] = 5,  [0xd3] = 9, [0xd4] = 3, [0xd5] = 4,
        [0xd6] = 6, [0xd7] = 10, [0xd8] = 18};
    uint8_t b = p[0];
    int lenbytes = 0, extra = 0;
    *items = 0;
    if (b <= 0x7f || b >= 0xe0) {
        *skip = 1;
        return 0;
    }
    if (b <= 0x9f) { // fixmap, fixarray
        *items = (uint64_t)(b & 0x0f) * (b <= 0x8f ? 2 : 1);
        *skip = 1;
        return 0;
    }
    if (b <= 0xbf) { // fixstr
        *skip = 1 + (size_t)(b & 0x1f);
        return 0;
    }
    if (b < sizeof fixed && fixed[b] != 0) {
        *skip = fixed[b];
        return 0;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        lenbytes = 1;
        break; // bin8, str8
    case 0xc5:
    case 0xda:
        lenbytes = 2;
        break;
    case 0xc6:
    case 0xdb:
        lenbytes = 4;
        break;
    case 0xc7:
        lenbytes = 1, extra = 1;
        break; // ext8 (+ type byte)
    case 0xc8:
        lenbytes = 2, extra = 1;
        break;
    case 0xc9:
        lenbytes = 4, extra = 1;
        break;
    case 0xdc:
    case 0xde:
        lenbytes = 2;
        break; // array16, map16
    case 0xdd:
    case 0xdf:
        lenbytes = 4;
        break; // array32, map32
    default:
        return -1; // 0xc1 is never used
    }
    if (left < 1 + (size_t)lenbytes)
        return -1;
    uint32_t len = be(p + 1, lenbytes);
    if (b >= 0xdc) {
        *items = (uint64_t)len * (b >= 0xde ? 2 : 1);
        *skip = 1 + (size_t)lenbytes;
    } else {
        *skip = 1 + (size_t)lenbytes + (size_t)extra + len;
    }
    return 0;
}

// Checks that `n` bytes hold exactly one msgpack object, nested at most
// PACK_DEPTH deep, whose every declared length and element count fits in
// the bytes present: so msgpack-c never allocates for what is not there.
static int
pack_check(const uint8_t *p, size_t n)
{
    uint64_t pending[PACK_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        size_t skip;
        uint64_t items;
        if (pos >= n || pack_header(p + pos, n - pos, &skip, &items) != 0 ||
            skip > n - pos)
            return TP_EDECODE;
        pos += skip;
        if (items > 0) {
            // Every element takes at least one byte.
            if (items > n - pos || depth == PACK_DEPTH)
                return TP_EDECODE;
            pending[++depth] = items;
        }
    }
    return pos == n ? 0 : TP_EDECODE;
}

int
tp__pack_check(const uint8_t *p, size_t n)
{
    return n == 0 ? TP_EDECODE : pack_check(p, n);
}

int
tp_msg_unpack(const tp_msg *msg, msgpack_unpacked *out)
{
    if (out == NULL)
        return TP_EINVAL;
    msgpack_unpacked_init(out);
    if (msg == NULL || (msg->data == NULL && msg->size > 0))
        return TP_EINVAL;
    if (msg->size == 0 || pack_check(msg->data, msg->size) != 0)
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

// ---- pids inside payloads --------------------------------------------------

// Extension body: name length (1 byte), the node's full name, its
// incarnation (4 bytes, big-endian) and the node-local pid (8 bytes).
#define PID_EXT_MAX (1 + 127 + 4 + 8)

int
tp_pack_pid(tp_system *sys, tp_pid pid, msgpack_packer *pk)
{
    if (sys == NULL || pk == NULL)
        return TP_EINVAL;
    const char *node;
    uint32_t inc;
    uint64_t local;
    if (tp__node_pid_encode(sys, pid, &node, &inc, &local) != 0)
        return TP_EINVAL;
    size_t len = strlen(node);
    if (len > 127)
        return TP_EINVAL;
    uint8_t body[PID_EXT_MAX];
    size_t n = 0;
    body[n++] = (uint8_t)len;
    memcpy(body + n, node, len);
    n += len;
    for (int i = 3; i >= 0; i--)
        body[n++] = (uint8_t)(inc >> (8 * i));
    for (int i = 7; i >= 0; i--)
        body[n++] = (uint8_t)(local >> (8 * i));
    if (msgpack_pack_ext(pk, n, TP_PID_EXT_TYPE) != 0 ||
        msgpack_pack_ext_body(pk, body, n) != 0)
        return TP_ENOMEM;
    return 0;
}

int
tp_unpack_pid(tp_system *sys, const msgpack_object *obj, tp_pid *out)
{
    if (sys == NULL || obj == NULL || out == NULL ||
        obj->type != MSGPACK_OBJECT_EXT ||
        obj->via.ext.type != TP_PID_EXT_TYPE)
        return TP_EINVAL;
    const uint8_t *p = (const uint8_t *)obj->via.ext.ptr;
    size_t n = obj->via.ext.size;
    if (n < 1 + 12 || n != 1 + (size_t)p[0] + 12 || p[0] > 127)
        return TP_EINVAL;
    char node[128];
    memcpy(node, p + 1, p[0]);
    node[p[0]] = 0;
    if (memchr(node, 0, p[0]) != NULL)
        return TP_EINVAL;
    const uint8_t *q = p + 1 + p[0];
    uint32_t inc = 0;
    uint64_t local = 0;
    for (int i = 0; i < 4; i++)
        inc = inc << 8 | q[i];
    for (int i = 0; i < 8; i++)
        local = local << 8 | q[4 + i];
    return tp__node_pid_decode(sys, node, inc, local, out);
}
