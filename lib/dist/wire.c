// SPDX-License-Identifier: MIT
// Encoding and decoding distribution frames. The decoder is a bounds-checked
// cursor over the frame's bytes that understands only the msgpack types the
// envelope uses; anything else is refused, so a peer cannot make us build
// nested structures or allocate by announcing large counts.
#include "dist/wire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

// ---- output ---------------------------------------------------------------

static uint8_t *
put_be(uint8_t *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

static uint8_t *
put_uint(uint8_t *o, uint64_t v)
{
    if (v < 128) {
        *o++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *o++ = 0xcc;
        *o++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *o++ = 0xcd;
        o = put_be(o, v, 2);
    } else if (v <= 0xffffffffu) {
        *o++ = 0xce;
        o = put_be(o, v, 4);
    } else {
        *o++ = 0xcf;
        o = put_be(o, v, 8);
    }
    return o;
}

static uint8_t *
put_int(uint8_t *o, int32_t v)
{
    if (v >= 0)
        return put_uint(o, (uint64_t)v);
    if (v >= -32) {
        *o++ = (uint8_t)(int8_t)v;
        return o;
    }
    *o++ = 0xd2;
    return put_be(o, (uint32_t)v, 4);
}

static uint8_t *
put_str(uint8_t *o, const char *s, size_t n)
{
    if (n < 32) {
        *o++ = (uint8_t)(0xa0 | n);
    } else {
        *o++ = 0xd9;
        *o++ = (uint8_t)n; // callers keep strings under 256 bytes
    }
    if (n > 0)
        memcpy(o, s, n);
    return o + n;
}

static uint8_t *
put_bin_hdr(uint8_t *o, size_t n)
{
    if (n <= 0xff) {
        *o++ = 0xc4;
        *o++ = (uint8_t)n;
    } else if (n <= 0xffff) {
        *o++ = 0xc5;
        o = put_be(o, n, 2);
    } else {
        *o++ = 0xc6;
        o = put_be(o, n, 4);
    }
    return o;
}

static uint8_t *
put_bin(uint8_t *o, const void *p, size_t n)
{
    o = put_bin_hdr(o, n);
    if (n > 0)
        memcpy(o, p, n);
    return o + n;
}

// Starts a frame: leaves room for the length and writes the array header.
static uint8_t *
frame_open(uint8_t *out, unsigned fields, int type)
{
    uint8_t *o = out + 4;
    *o++ = (uint8_t)(0x90 | fields);
    *o++ = (uint8_t)type;
    return o;
}

static size_t
frame_close(uint8_t *out, uint8_t *end)
{
    size_t n = (size_t)(end - out);
    put_be(out, n - 4, 4);
    return n;
}

static size_t
clamp_len(const char *s, size_t max)
{
    return s ? strnlen(s, max) : 0;
}

#define HS_MAX (16 + TP__WIRE_NODE_MAX + 2 * (TP__WIRE_NONCE + 2) + 16)

void
tp__wire_hello(tp__wbuf *b, int type, const char *name, uint32_t inc,
               const uint8_t *nonce, const uint8_t *mac)
{
    tp__wbuf_reserve(b, HS_MAX);
    if (b->failed)
        return;
    uint8_t *out = b->p + b->len;
    uint8_t *o = frame_open(out, mac ? 6 : 5, type);
    o = put_uint(o, TP__WIRE_VERSION);
    o = put_str(o, name, clamp_len(name, TP__WIRE_NODE_MAX));
    o = put_uint(o, inc);
    o = put_bin(o, nonce, TP__WIRE_NONCE);
    if (mac)
        o = put_bin(o, mac, TP__WIRE_MAC);
    b->len += frame_close(out, o);
}

void
tp__wire_reply(tp__wbuf *b, const uint8_t *mac)
{
    tp__wbuf_reserve(b, 64);
    if (b->failed)
        return;
    uint8_t *out = b->p + b->len;
    uint8_t *o = frame_open(out, 2, TP__F_REPLY);
    o = put_bin(o, mac, TP__WIRE_MAC);
    b->len += frame_close(out, o);
}

void
tp__wire_simple(tp__wbuf *b, int type)
{
    tp__wbuf_reserve(b, 8);
    if (b->failed)
        return;
    uint8_t *out = b->p + b->len;
    b->len += frame_close(out, frame_open(out, 1, type));
}

void
tp__wire_refuse(tp__wbuf *b, const char *text)
{
    tp__wbuf_reserve(b, 16 + TP__WIRE_TEXT_MAX);
    if (b->failed)
        return;
    uint8_t *out = b->p + b->len;
    uint8_t *o = frame_open(out, 2, TP__F_REFUSE);
    o = put_str(o, text, clamp_len(text, TP__WIRE_TEXT_MAX));
    b->len += frame_close(out, o);
}

void
tp__wire_ping(tp__wbuf *b, int type, uint64_t stamp)
{
    tp__wbuf_reserve(b, 16);
    if (b->failed)
        return;
    uint8_t *out = b->p + b->len;
    uint8_t *o = frame_open(out, 2, type);
    o = put_uint(o, stamp);
    b->len += frame_close(out, o);
}

static size_t
uint_len(uint64_t v)
{
    return v < 128            ? 1
           : v <= 0xff        ? 2
           : v <= 0xffff      ? 3
           : v <= 0xffffffffu ? 5
                              : 9;
}

size_t
tp__wire_send_size(uint32_t to_inc, uint64_t to, uint64_t from, uint32_t tag,
                   uint64_t ref, uint32_t flags, size_t size)
{
    size_t bin = size <= 0xff ? 2 : size <= 0xffff ? 3 : 5;
    return 4 + 2 + uint_len(to_inc) + uint_len(to) + uint_len(from) +
           uint_len(tag) + uint_len(ref) + uint_len(flags) + bin + size;
}

size_t
tp__wire_send(uint8_t *out, uint32_t to_inc, uint64_t to, uint64_t from,
              uint32_t tag, uint64_t ref, uint32_t flags, const void *payload,
              size_t size)
{
    uint8_t *o = frame_open(out, 8, TP__F_SEND);
    o = put_uint(o, to_inc);
    o = put_uint(o, to);
    o = put_uint(o, from);
    o = put_uint(o, tag);
    o = put_uint(o, ref);
    o = put_uint(o, flags);
    o = put_bin(o, payload, size);
    return frame_close(out, o);
}

size_t
tp__wire_send_name(uint8_t *out, const char *name, uint64_t from, uint32_t tag,
                   uint64_t ref, uint32_t flags, const void *payload,
                   size_t size)
{
    uint8_t *o = frame_open(out, 7, TP__F_SEND_NAME);
    o = put_str(o, name, clamp_len(name, TP_NAME_MAX_WIRE - 1));
    o = put_uint(o, from);
    o = put_uint(o, tag);
    o = put_uint(o, ref);
    o = put_uint(o, flags);
    o = put_bin(o, payload, size);
    return frame_close(out, o);
}

size_t
tp__wire_signal(uint8_t *out, int type, uint32_t to_inc, uint64_t to,
                uint64_t from, uint64_t ref, int32_t reason, bool linked,
                const char *text)
{
    static const unsigned fields[] = {
        [TP__F_LINK] = 4,    [TP__F_UNLINK] = 4,    [TP__F_EXIT] = 7,
        [TP__F_MONITOR] = 5, [TP__F_DEMONITOR] = 5, [TP__F_DOWN] = 7,
    };
    uint8_t *o = frame_open(out, fields[type], type);
    o = put_uint(o, to_inc);
    o = put_uint(o, to);
    o = put_uint(o, from);
    if (type == TP__F_EXIT) {
        o = put_int(o, reason);
        *o++ = linked ? 0xc3 : 0xc2;
        o = put_str(o, text, clamp_len(text, TP__WIRE_TEXT_MAX));
    } else if (type == TP__F_MONITOR || type == TP__F_DEMONITOR) {
        o = put_uint(o, ref);
    } else if (type == TP__F_DOWN) {
        o = put_uint(o, ref);
        o = put_int(o, reason);
        o = put_str(o, text, clamp_len(text, TP__WIRE_TEXT_MAX));
    }
    return frame_close(out, o);
}

// ---- input ----------------------------------------------------------------

typedef struct cur {
    const uint8_t *p, *end;
    int err;
} cur;

static bool
need(cur *c, size_t n)
{
    if (c->err)
        return false;
    if ((size_t)(c->end - c->p) < n) {
        c->err = TP__W_TRUNCATED;
        return false;
    }
    return true;
}

static uint64_t
get_be(cur *c, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | *c->p++;
    return v;
}

static uint64_t
rd_uint(cur *c, uint64_t max)
{
    if (!need(c, 1))
        return 0;
    uint8_t t = *c->p++;
    uint64_t v;
    int bytes;
    if (t < 0x80)
        v = t;
    else if (t >= 0xcc && t <= 0xcf) {
        bytes = 1 << (t - 0xcc);
        if (!need(c, (size_t)bytes))
            return 0;
        v = get_be(c, bytes);
    } else {
        c->err = TP__W_BAD_FIELD;
        return 0;
    }
    if (v > max) {
        c->err = TP__W_BAD_FIELD;
        return 0;
    }
    return v;
}

static int32_t
rd_int(cur *c)
{
    if (!need(c, 1))
        return 0;
    uint8_t t = *c->p;
    if (t >= 0xe0) {
        c->p++;
        return (int8_t)t;
    }
    if (t == 0xd2) {
        c->p++;
        if (!need(c, 4))
            return 0;
        return (int32_t)(uint32_t)get_be(c, 4);
    }
    return (int32_t)rd_uint(c, INT32_MAX);
}

static bool
rd_bool(cur *c)
{
    if (!need(c, 1))
        return false;
    uint8_t t = *c->p++;
    if (t != 0xc2 && t != 0xc3)
        c->err = TP__W_BAD_FIELD;
    return t == 0xc3;
}

// A str (or, with `bin`, a bin) of at most `max` bytes.
static const uint8_t *
rd_bytes(cur *c, bool bin, size_t max, size_t *len)
{
    *len = 0;
    if (!need(c, 1))
        return NULL;
    uint8_t t = *c->p++;
    size_t n;
    if (!bin && (t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else if (t == (bin ? 0xc4 : 0xd9)) {
        if (!need(c, 1))
            return NULL;
        n = (size_t)get_be(c, 1);
    } else if (t == (bin ? 0xc5 : 0xda)) {
        if (!need(c, 2))
            return NULL;
        n = (size_t)get_be(c, 2);
    } else if (t == (bin ? 0xc6 : 0xdb)) {
        if (!need(c, 4))
            return NULL;
        n = (size_t)get_be(c, 4);
    } else {
        c->err = TP__W_BAD_FIELD;
        return NULL;
    }
    if (n > max) {
        c->err = TP__W_BAD_FIELD;
        return NULL;
    }
    if (!need(c, n))
        return NULL;
    const uint8_t *p = c->p;
    c->p += n;
    *len = n;
    return p;
}

static const uint8_t *
rd_fixed_bin(cur *c, size_t want)
{
    size_t n;
    const uint8_t *p = rd_bytes(c, true, want, &n);
    if (!c->err && n != want)
        c->err = TP__W_BAD_FIELD;
    return p;
}

const char *
tp__wire_why(int why)
{
    switch (why) {
    case TP__W_OK:
        return "ok";
    case TP__W_TRUNCATED:
        return "truncated envelope";
    case TP__W_TRAILING:
        return "trailing bytes after envelope";
    case TP__W_NOT_ARRAY:
        return "envelope is not an array";
    case TP__W_BAD_TYPE:
        return "unknown frame type";
    case TP__W_BAD_FIELD:
        return "malformed field";
    case TP__W_BAD_ARITY:
        return "wrong number of fields";
    }
    return "?";
}

#define PID_MAX ((1ull << 48) - 1) // node bits must be zero on the wire
#define REF_MAX ((1ull << 48) - 1)

static unsigned
arity(uint32_t type)
{
    switch (type) {
    case TP__F_HELLO:
        return 5;
    case TP__F_CHALLENGE:
        return 6;
    case TP__F_REPLY:
    case TP__F_REFUSE:
    case TP__F_PING:
    case TP__F_PONG:
        return 2;
    case TP__F_ACCEPT:
        return 1;
    case TP__F_SEND:
        return 8;
    case TP__F_SEND_NAME:
        return 7;
    case TP__F_LINK:
    case TP__F_UNLINK:
        return 4;
    case TP__F_MONITOR:
    case TP__F_DEMONITOR:
        return 5;
    case TP__F_EXIT:
    case TP__F_DOWN:
        return 7;
    }
    return 0;
}

int
tp__wire_decode(const uint8_t *p, size_t n, tp__frame *f)
{
    cur c = {p, p + n, 0};
    memset(f, 0, sizeof *f);
    if (!need(&c, 1))
        return c.err;
    uint8_t h = *c.p++;
    unsigned fields;
    if ((h & 0xf0) == 0x90)
        fields = h & 0x0f;
    else
        return TP__W_NOT_ARRAY; // envelopes never need more than 15 fields
    if (fields == 0)
        return TP__W_BAD_ARITY;
    f->type = (uint32_t)rd_uint(&c, 255);
    if (c.err)
        return c.err;
    unsigned want = arity(f->type);
    if (want == 0)
        return TP__W_BAD_TYPE;
    if (fields != want)
        return TP__W_BAD_ARITY;
    switch (f->type) {
    case TP__F_HELLO:
    case TP__F_CHALLENGE:
        f->vsn = (uint32_t)rd_uint(&c, UINT32_MAX);
        f->name = rd_bytes(&c, false, TP__WIRE_NODE_MAX, &f->name_len);
        if (!c.err && memchr(f->name, 0, f->name_len) != NULL)
            c.err = TP__W_BAD_FIELD; // names are text: no NUL inside
        f->inc = (uint32_t)rd_uint(&c, UINT32_MAX);
        f->nonce = rd_fixed_bin(&c, TP__WIRE_NONCE);
        if (f->type == TP__F_CHALLENGE)
            f->mac = rd_fixed_bin(&c, TP__WIRE_MAC);
        break;
    case TP__F_REPLY:
        f->mac = rd_fixed_bin(&c, TP__WIRE_MAC);
        break;
    case TP__F_REFUSE:
        f->text = rd_bytes(&c, false, TP__WIRE_TEXT_MAX, &f->text_len);
        break;
    case TP__F_ACCEPT:
        break;
    case TP__F_PING:
    case TP__F_PONG:
        f->stamp = rd_uint(&c, UINT64_MAX);
        break;
    case TP__F_SEND:
    case TP__F_SEND_NAME:
        if (f->type == TP__F_SEND) {
            f->to_inc = (uint32_t)rd_uint(&c, UINT32_MAX);
            f->to = rd_uint(&c, PID_MAX);
        } else {
            f->name = rd_bytes(&c, false, TP_NAME_MAX_WIRE - 1, &f->name_len);
            if (!c.err && (f->name_len == 0 ||
                           memchr(f->name, 0, f->name_len) != NULL))
                c.err = TP__W_BAD_FIELD;
        }
        f->from = rd_uint(&c, PID_MAX);
        f->tag = (uint32_t)rd_uint(&c, UINT32_MAX);
        f->ref = rd_uint(&c, UINT64_MAX);
        f->flags = (uint32_t)rd_uint(&c, TP__WF_REPLY);
        f->payload = rd_bytes(&c, true, SIZE_MAX, &f->payload_len);
        break;
    default: // signals
        f->to_inc = (uint32_t)rd_uint(&c, UINT32_MAX);
        f->to = rd_uint(&c, PID_MAX);
        f->from = rd_uint(&c, PID_MAX);
        if (f->type == TP__F_EXIT) {
            f->reason = rd_int(&c);
            f->linked = rd_bool(&c);
            f->text = rd_bytes(&c, false, TP__WIRE_TEXT_MAX, &f->text_len);
        } else if (f->type == TP__F_MONITOR || f->type == TP__F_DEMONITOR) {
            f->ref = rd_uint(&c, REF_MAX);
        } else if (f->type == TP__F_DOWN) {
            f->ref = rd_uint(&c, UINT64_MAX);
            f->reason = rd_int(&c);
            f->text = rd_bytes(&c, false, TP__WIRE_TEXT_MAX, &f->text_len);
        }
        break;
    }
    if (c.err)
        return c.err;
    if (c.p != c.end)
        return TP__W_TRAILING;
    return TP__W_OK;
}

// ---- handshake proofs -----------------------------------------------------

bool
tp__wire_mac(uint8_t out[TP__WIRE_MAC], const uint8_t *key, size_t key_len,
             char role, const uint8_t *nonce_a, const uint8_t *nonce_b,
             const char *name_a, const char *name_b, uint32_t inc_a,
             uint32_t inc_b)
{
    // The role label keeps one side's proof from ever serving as the
    // other's: a node cannot be used as an oracle for its own challenge.
    uint8_t msg[32 + 2 * TP__WIRE_NONCE + 2 * (TP__WIRE_NODE_MAX + 1) + 8];
    size_t n = 0;
    const char *label =
        role == 'a' ? "troupe/1 initiator" : "troupe/1 acceptor";
    size_t ll = strlen(label) + 1;
    memcpy(msg, label, ll);
    n += ll;
    memcpy(msg + n, nonce_a, TP__WIRE_NONCE);
    n += TP__WIRE_NONCE;
    memcpy(msg + n, nonce_b, TP__WIRE_NONCE);
    n += TP__WIRE_NONCE;
    size_t la = strnlen(name_a, TP__WIRE_NODE_MAX);
    memcpy(msg + n, name_a, la);
    n += la;
    msg[n++] = 0;
    size_t lb = strnlen(name_b, TP__WIRE_NODE_MAX);
    memcpy(msg + n, name_b, lb);
    n += lb;
    msg[n++] = 0;
    put_be(msg + n, inc_a, 4);
    put_be(msg + n + 4, inc_b, 4);
    n += 8;
    unsigned outlen = TP__WIRE_MAC;
    static const uint8_t nokey[1] = {0};
    return HMAC(EVP_sha256(), key_len ? key : nokey, (int)key_len, msg, n, out,
                &outlen) != NULL &&
           outlen == TP__WIRE_MAC;
}

bool
tp__wire_mac_eq(const uint8_t *a, const uint8_t *b)
{
    return CRYPTO_memcmp(a, b, TP__WIRE_MAC) == 0;
}
