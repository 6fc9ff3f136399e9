// SPDX-License-Identifier: MIT
// The distribution wire format (lib/dist/WIRE.md describes it for humans): a
// frame is a 4-byte big-endian length followed by one msgpack array, the
// envelope, whose first element is the frame type. Encoding writes into a
// caller's buffer; decoding reads a frame in place and allocates nothing,
// so hostile input can only be refused, never make us allocate.
#ifndef TROUPE_WIRE_H
#define TROUPE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TP__WIRE_VERSION 1
#define TP__WIRE_NONCE 32
#define TP__WIRE_MAC 32
#define TP__WIRE_NODE_MAX 127 // longest full node name, bytes
#define TP__WIRE_TEXT_MAX 95  // longest exit-reason text, bytes
#define TP_NAME_MAX_WIRE 64   // registered names, NUL included

enum {
    TP__F_HELLO = 1,      // [1, vsn, name, inc, nonce]
    TP__F_CHALLENGE = 2,  // [2, vsn, name, inc, nonce, mac]
    TP__F_REPLY = 3,      // [3, mac]
    TP__F_ACCEPT = 4,     // [4]
    TP__F_REFUSE = 5,     // [5, text]
    TP__F_SEND = 16,      // [16, to_inc, to, from, tag, ref, flags, payload]
    TP__F_SEND_NAME = 17, // [17, name, from, tag, ref, flags, payload]
    TP__F_LINK = 18,      // [18, to_inc, to, from]
    TP__F_UNLINK = 19,    // [19, to_inc, to, from]
    TP__F_EXIT = 20,      // [20, to_inc, to, from, reason, linked, text]
    TP__F_MONITOR = 21,   // [21, to_inc, to, from, ref]
    TP__F_DEMONITOR = 22, // [22, to_inc, to, from, ref]
    TP__F_DOWN = 23,      // [23, to_inc, to, from, ref, reason, text]
    TP__F_PING = 32,      // [32, stamp]
    TP__F_PONG = 33,      // [33, stamp]
};

// Flags of a SEND frame.
enum { TP__WF_REPLY = 1 };

// A decoded frame. Pointers point into the frame's bytes.
typedef struct tp__frame {
    uint32_t type;
    uint32_t vsn;
    uint32_t to_inc;
    uint64_t to, from; // pids local to the receiver / the sender
    uint64_t ref;      // SEND, MONITOR, DEMONITOR, DOWN
    uint64_t stamp;    // PING, PONG
    uint32_t tag;
    uint32_t flags;
    int32_t reason;
    bool linked;
    uint32_t inc; // HELLO, CHALLENGE
    const uint8_t *name;
    size_t name_len;
    const uint8_t *nonce; // TP__WIRE_NONCE bytes
    const uint8_t *mac;   // TP__WIRE_MAC bytes
    const uint8_t *text;  // REFUSE, EXIT, DOWN
    size_t text_len;
    const uint8_t *payload;
    size_t payload_len;
} tp__frame;

// Why a frame was refused (names for logs: tp__wire_why).
enum {
    TP__W_OK = 0,
    TP__W_TRUNCATED, // the envelope ends early
    TP__W_TRAILING,  // bytes after the envelope
    TP__W_NOT_ARRAY, // the envelope is not an array
    TP__W_BAD_TYPE,  // unknown frame type
    TP__W_BAD_FIELD, // a field of the wrong msgpack type or range
    TP__W_BAD_ARITY, // the array has the wrong number of fields
};

const char *tp__wire_why(int why);

// Decodes the envelope at `p` (`n` bytes, the length prefix excluded).
// Returns TP__W_OK or a reason; never reads outside [p, p+n).
int tp__wire_decode(const uint8_t *p, size_t n, tp__frame *f);

// Builders. Each appends a whole frame (length prefix included) to `b`.
void tp__wire_hello(tp__wbuf *b, int type, const char *name, uint32_t inc,
                    const uint8_t *nonce, const uint8_t *mac);
void tp__wire_reply(tp__wbuf *b, const uint8_t *mac);
void tp__wire_simple(tp__wbuf *b, int type);
void tp__wire_refuse(tp__wbuf *b, const char *text);
void tp__wire_ping(tp__wbuf *b, int type, uint64_t stamp);

// Bytes a SEND frame with a `size`-byte payload needs at most.
#define TP__WIRE_SEND_MAX(size) ((size) + 64)
#define TP__WIRE_SIG_MAX (64 + TP__WIRE_TEXT_MAX)

// Exact bytes tp__wire_send writes for these fields.
size_t tp__wire_send_size(uint32_t to_inc, uint64_t to, uint64_t from,
                          uint32_t tag, uint64_t ref, uint32_t flags,
                          size_t size);

// Writes a whole frame into `out` (at least TP__WIRE_SEND_MAX(size) bytes,
// or TP__WIRE_SIG_MAX for signals) and returns its length.
size_t tp__wire_send(uint8_t *out, uint32_t to_inc, uint64_t to, uint64_t from,
                     uint32_t tag, uint64_t ref, uint32_t flags,
                     const void *payload, size_t size);
size_t tp__wire_send_name(uint8_t *out, const char *name, uint64_t from,
                          uint32_t tag, uint64_t ref, uint32_t flags,
                          const void *payload, size_t size);
size_t tp__wire_signal(uint8_t *out, int type, uint32_t to_inc, uint64_t to,
                       uint64_t from, uint64_t ref, int32_t reason,
                       bool linked, const char *text);

// HMAC-SHA256 proof over a handshake's transcript. `role` is 'a' for the
// node that connected, 'b' for the one that accepted. Returns false when
// the digest could not be computed (the handshake must then fail).
bool tp__wire_mac(uint8_t out[TP__WIRE_MAC], const uint8_t *key,
                  size_t key_len, char role, const uint8_t *nonce_a,
                  const uint8_t *nonce_b, const char *name_a,
                  const char *name_b, uint32_t inc_a, uint32_t inc_b);

// Constant-time comparison of two MACs.
bool tp__wire_mac_eq(const uint8_t *a, const uint8_t *b);

#endif
