// SPDX-License-Identifier: MIT
// A fake node for the wire suite: envelopes built byte by byte, handshake
// proofs computed with OpenSSL from the transcript lib/dist/WIRE.md specifies
// (not with the library's code), and blocking socket helpers whose every
// wait is bounded by TPW_WAIT_MS. Failures are Check assertions.
#ifndef TROUPE_TP_WIRE_TEST_H
#define TROUPE_TP_WIRE_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <troupe.h>
#include <troupe/msgpack.h>

#define TPW_VSN 2 // the protocol version this troupe speaks
#define TPW_NONCE 32
#define TPW_MAC 32
#define TPW_WAIT_MS 5000

enum {
    TPW_F_HELLO = 1,
    TPW_F_CHALLENGE = 2,
    TPW_F_REPLY = 3,
    TPW_F_ACCEPT = 4,
    TPW_F_REFUSE = 5,
    TPW_F_SEND = 16,
    TPW_F_PING = 32,
    TPW_F_PONG = 33,
};

// Bytes to send or received; big enough for a 16 KiB frame.
typedef struct tpw_bytes {
    uint8_t p[20 * 1024];
    size_t len;
} tpw_bytes;

void tpw_put(tpw_bytes *b, const void *p, size_t n);
void tpw_put_byte(tpw_bytes *b, uint8_t v);
void tpw_put_be(tpw_bytes *b, uint64_t v, int bytes);
// msgpack items in their shortest forms.
void tpw_put_uint(tpw_bytes *b, uint64_t v);
void tpw_put_str(tpw_bytes *b, const char *s, size_t n);
void tpw_put_bin(tpw_bytes *b, const void *p, size_t n);
// Hex digits ("98 10 ce ..."); spaces are ignored.
void tpw_put_hex(tpw_bytes *b, const char *hex);
// A whole frame: the length prefix for `n` bytes of envelope, then them.
void tpw_put_frame(tpw_bytes *b, const void *env, size_t n);

// HELLO (`mac` NULL) or CHALLENGE envelopes, and REPLY.
void tpw_env_hello(tpw_bytes *b, int type, uint32_t vsn, const char *name,
                   size_t name_len, uint32_t inc, const uint8_t *nonce,
                   const uint8_t *mac);
void tpw_env_reply(tpw_bytes *b, const uint8_t *mac);

// The node a fake peer talks to.
typedef struct tpw_node {
    char name[TP_NODE_NAME_MAX];
    uint32_t inc;
    uint16_t port;
} tpw_node;

void tpw_node_of(tpw_node *n, tp_system *sys);

// The proof of role 'a' (initiator) or 'b' (acceptor), keyed with the
// secret tpn_setup writes.
void tpw_proof(uint8_t out[TPW_MAC], char role, const uint8_t *nonce_a,
               const uint8_t *nonce_b, const char *name_a, const char *name_b,
               uint32_t inc_a, uint32_t inc_b);
void tpw_nonce(uint8_t nonce[TPW_NONCE]);

double tpw_now(void);
// Under TLS (tpw_tls), a dialled connection has finished its TLS
// handshake, and the other helpers read and write through it; a test that
// closes a connection with close(2) leaves its TLS state to the next dial
// of that descriptor or to tpw_tls_forget.
int tpw_dial(uint16_t port);
void tpw_send(int fd, const void *p, size_t n);
// Reads one frame's envelope. False when the connection ended or the
// wait ran out first.
bool tpw_read_frame(int fd, tpw_bytes *b);
// Reads until the peer closes `fd` (end of stream or reset), keeping what
// arrived in `got` (may be NULL), then closes `fd`. False when the
// connection stayed open for TPW_WAIT_MS.
bool tpw_closed(int fd, tpw_bytes *got);
// Whether `fd` is still open with nothing to read.
bool tpw_open(int fd);

// From now on, connections use TLS 1.3, presenting certificate `cert` with
// key `key` and trusting the CA in `ca` (three paths), or plain TCP again
// when `cert` is NULL. tpw_tls_on says which.
void tpw_tls(const char *ca, const char *cert, const char *key);
bool tpw_tls_on(void);
// Frees the TLS state of every connection (closed or not).
void tpw_tls_forget(void);

// Unpacks `b` as an envelope of `fields` elements of frame type `type`
// and returns its elements. The caller destroys `u`.
msgpack_object *tpw_envelope(msgpack_unpacked *u, const tpw_bytes *b,
                             unsigned type, unsigned fields);
void tpw_field_bin(const msgpack_object *o, size_t len, uint8_t *out);
void tpw_field_str(const msgpack_object *o, char *out, size_t size);
// Whether the frames in `got` include a REFUSE saying `why`.
bool tpw_refused_with(const tpw_bytes *got, const char *why);

// The frames an initiator sent, for replays.
typedef struct tpw_transcript {
    tpw_bytes hello, reply;
} tpw_transcript;

// Checks `in`, the CHALLENGE `n` answered a HELLO from `name` (`inc`,
// `nonce_a`) with, and returns its nonce in `nonce_b`.
void tpw_check_challenge(const tpw_node *n, const tpw_bytes *in,
                         const char *name, uint32_t inc,
                         const uint8_t *nonce_a, uint8_t *nonce_b);

// Connects to `n` as node `name` with incarnation `inc` and completes a
// handshake, checking `n`'s proof on the way. Returns the socket, up.
// `rec` (may be NULL) receives the HELLO and REPLY frames as sent.
int tpw_join(const tpw_node *n, const char *name, uint32_t inc,
             tpw_transcript *rec);

#endif
