// SPDX-License-Identifier: MIT
// The wire codec (lib/dist/wire.c, specified in lib/dist/WIRE.md): every
// frame kind encoded and decoded back, integers at the edges of each
// msgpack form and of each field's range, and input cut short or
// corrupted, which must be refused with a reason and never read outside
// its bytes (each envelope is decoded from a buffer of exactly its size,
// so AddressSanitizer builds catch any overread).
#include "dist/wire.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PID_MAX ((1ULL << 48) - 1)

// ---- helpers ---------------------------------------------------------------

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

// Decodes `n` bytes of envelope from a copy of exactly that size, which
// the caller frees (the frame's pointers point into it).
static int
decode_copy(const uint8_t *env, size_t n, tp__frame *f, uint8_t **copy)
{
    *copy = malloc(n > 0 ? n : 1);
    UNIT_TRUE(*copy != NULL);
    if (n > 0)
        memcpy(*copy, env, n);
    return tp__wire_decode(*copy, n, f);
}

// Every proper prefix of a good envelope is refused, and so is the
// envelope with a byte after it.
static void
check_cut_and_padded(const uint8_t *env, size_t n)
{
    tp__frame f;
    uint8_t *copy;
    for (size_t cut = 0; cut < n; cut++) {
        int why = decode_copy(env, cut, &f, &copy);
        if (why == TP__W_OK)
            unit_fail(__FILE__, __LINE__, "a proper prefix accepted", cut, n);
        free(copy);
    }
    uint8_t *padded = malloc(n + 1);
    ck_assert_ptr_nonnull(padded);
    memcpy(padded, env, n);
    padded[n] = 0;
    ck_assert_int_eq(tp__wire_decode(padded, n + 1, &f), TP__W_TRAILING);
    free(padded);
}

// Decodes a whole frame (length prefix first), checks what every good
// frame must satisfy, and returns the copy its fields point into.
static uint8_t *
decode_frame(const uint8_t *frame, size_t len, tp__frame *f)
{
    ck_assert_uint_gt(len, 4);
    ck_assert_uint_eq(be32(frame), len - 4);
    check_cut_and_padded(frame + 4, len - 4);
    uint8_t *copy;
    int why = decode_copy(frame + 4, len - 4, f, &copy);
    ck_assert_msg(why == TP__W_OK, "decode: %s", tp__wire_why(why));
    return copy;
}

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

// A hand-built envelope, for forms the encoder never writes.
typedef struct env {
    uint8_t p[512];
    size_t n;
} env;

static void
put(env *e, const char *hex)
{
    for (; *hex != '\0'; hex++) {
        if (*hex == ' ')
            continue;
        unsigned v;
        UNIT_EQ(sscanf(hex, "%2x", &v), 1);
        UNIT_TRUE(e->n < sizeof e->p);
        e->p[e->n++] = (uint8_t)v;
        hex++;
    }
}

static void
put_zeros(env *e, size_t n)
{
    ck_assert_uint_le(e->n + n, sizeof e->p);
    memset(e->p + e->n, 'z', n);
    e->n += n;
}

static int
decode_env(const env *e, tp__frame *f)
{
    uint8_t *copy;
    int why = decode_copy(e->p, e->n, f, &copy);
    free(copy);
    return why;
}

// An envelope from hex digits alone.
static int
decode_hex(const char *hex, tp__frame *f)
{
    env e = {.n = 0};
    put(&e, hex);
    return decode_env(&e, f);
}

// ---- round trips -----------------------------------------------------------

START_TEST(handshake_frames_round_trip)
{
    uint8_t nonce[TP__WIRE_NONCE], mac[TP__WIRE_MAC];
    fill(nonce, sizeof nonce, 1);
    fill(mac, sizeof mac, 99);
    tp__wbuf b = {0};
    tp__wire_hello(&b, TP__F_HELLO, "a@host", 7, nonce, NULL);
    size_t hello = b.len;
    tp__wire_hello(&b, TP__F_CHALLENGE, "b@host", UINT32_MAX, nonce, mac);
    size_t challenge = b.len;
    tp__wire_reply(&b, mac);
    size_t reply = b.len;
    tp__wire_simple(&b, TP__F_ACCEPT);
    size_t accept = b.len;
    tp__wire_refuse(&b, "no");
    ck_assert(!b.failed);

    tp__frame f;
    uint8_t *c = decode_frame(b.p, hello, &f);
    ck_assert_uint_eq(f.type, TP__F_HELLO);
    ck_assert_uint_eq(f.vsn, TP__WIRE_VERSION);
    ck_assert_uint_eq(f.name_len, 6);
    ck_assert_mem_eq(f.name, "a@host", 6);
    ck_assert_uint_eq(f.inc, 7);
    ck_assert_mem_eq(f.nonce, nonce, TP__WIRE_NONCE);
    ck_assert_ptr_null(f.mac);
    free(c);

    c = decode_frame(b.p + hello, challenge - hello, &f);
    ck_assert_uint_eq(f.type, TP__F_CHALLENGE);
    ck_assert_mem_eq(f.name, "b@host", 6);
    ck_assert_uint_eq(f.inc, UINT32_MAX);
    ck_assert_mem_eq(f.nonce, nonce, TP__WIRE_NONCE);
    ck_assert_mem_eq(f.mac, mac, TP__WIRE_MAC);
    free(c);

    c = decode_frame(b.p + challenge, reply - challenge, &f);
    ck_assert_uint_eq(f.type, TP__F_REPLY);
    ck_assert_mem_eq(f.mac, mac, TP__WIRE_MAC);
    free(c);

    c = decode_frame(b.p + reply, accept - reply, &f);
    ck_assert_uint_eq(f.type, TP__F_ACCEPT);
    free(c);

    c = decode_frame(b.p + accept, b.len - accept, &f);
    ck_assert_uint_eq(f.type, TP__F_REFUSE);
    ck_assert_uint_eq(f.text_len, 2);
    ck_assert_mem_eq(f.text, "no", 2);
    free(c);
    tp__wbuf_free(&b);
    ck_assert_ptr_null(b.p);
}
END_TEST

// The longest node name and refusal text go through whole; longer ones
// are cut to the limit by the encoder, never sent too long.
START_TEST(handshake_text_limits)
{
    char name[TP__WIRE_NODE_MAX + 2], text[TP__WIRE_TEXT_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(text, 't', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    uint8_t nonce[TP__WIRE_NONCE] = {0};
    for (int over = 0; over <= 1; over++) {
        tp__wbuf b = {0};
        name[TP__WIRE_NODE_MAX + over] = '\0';
        text[TP__WIRE_TEXT_MAX + over] = '\0';
        tp__wire_hello(&b, TP__F_HELLO, name, 1, nonce, NULL);
        size_t hello = b.len;
        tp__wire_refuse(&b, text);
        tp__frame f;
        uint8_t *c = decode_frame(b.p, hello, &f);
        ck_assert_uint_eq(f.name_len, TP__WIRE_NODE_MAX);
        free(c);
        c = decode_frame(b.p + hello, b.len - hello, &f);
        ck_assert_uint_eq(f.text_len, TP__WIRE_TEXT_MAX);
        free(c);
        tp__wbuf_free(&b);
    }
}
END_TEST

START_TEST(ping_pong_round_trip)
{
    static const uint64_t stamps[] = {0,          127,       128,   255,
                                      256,        65535,     65536, UINT32_MAX,
                                      1ULL << 32, UINT64_MAX};
    for (size_t i = 0; i < sizeof stamps / sizeof *stamps; i++) {
        tp__wbuf b = {0};
        tp__wire_ping(&b, i % 2 ? TP__F_PONG : TP__F_PING, stamps[i]);
        tp__frame f;
        uint8_t *c = decode_frame(b.p, b.len, &f);
        ck_assert_uint_eq(f.type, i % 2 ? TP__F_PONG : TP__F_PING);
        ck_assert_uint_eq(f.stamp, stamps[i]);
        free(c);
        tp__wbuf_free(&b);
    }
}
END_TEST

// Integers at each edge of the msgpack forms, and at the edges of the
// fields' ranges.
static const uint64_t edges[] = {0,     1,     127,   128,      255,       256,
                                 65535, 65536, 65537, 1u << 31, UINT32_MAX};
#define NEDGES (sizeof edges / sizeof *edges)

static void
send_round_trip(uint32_t to_inc, uint64_t to, uint64_t from, uint32_t tag,
                uint64_t ref, uint32_t flags, size_t size)
{
    uint8_t *payload = malloc(size + 1);
    uint8_t *out = malloc(TP__WIRE_SEND_MAX(size));
    ck_assert(payload && out);
    fill(payload, size, (uint8_t)size);
    size_t len =
        tp__wire_send(out, to_inc, to, from, tag, ref, flags, payload, size);
    ck_assert_uint_le(len, TP__WIRE_SEND_MAX(size));
    ck_assert_uint_eq(
        len, tp__wire_send_size(to_inc, to, from, tag, ref, flags, size));
    tp__frame f;
    uint8_t *c;
    if (size <= 300) {
        c = decode_frame(out, len, &f);
    } else { // cutting every prefix of a big frame takes too long: one cut
        ck_assert_uint_eq(be32(out), len - 4);
        ck_assert_int_eq(decode_copy(out + 4, len - 5, &f, &c),
                         TP__W_TRUNCATED);
        free(c);
        ck_assert_int_eq(decode_copy(out + 4, len - 4, &f, &c), TP__W_OK);
    }
    ck_assert_uint_eq(f.type, TP__F_SEND);
    ck_assert_uint_eq(f.to_inc, to_inc);
    ck_assert_uint_eq(f.to, to);
    ck_assert_uint_eq(f.from, from);
    ck_assert_uint_eq(f.tag, tag);
    ck_assert_uint_eq(f.ref, ref);
    ck_assert_uint_eq(f.flags, flags);
    ck_assert_uint_eq(f.payload_len, size);
    if (size > 0)
        ck_assert_mem_eq(f.payload, payload, size);
    free(c);
    free(out);
    free(payload);
}

START_TEST(send_round_trip_edges)
{
    for (size_t i = 0; i < NEDGES; i++) {
        uint64_t v = edges[i];
        send_round_trip((uint32_t)v, v, v, (uint32_t)v, v, 0, i * 3);
        send_round_trip(0, PID_MAX - v, v, 1, UINT64_MAX - v, TP__WF_REPLY, 0);
    }
    send_round_trip(UINT32_MAX, PID_MAX, PID_MAX, UINT32_MAX, UINT64_MAX,
                    TP__WF_REPLY, 1);
}
END_TEST

// Payloads at the edges of the bin forms.
START_TEST(send_payload_sizes)
{
    static const size_t sizes[] = {0,     1,     255,   256,
                                   65535, 65536, 70000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        send_round_trip(1, 2, 3, 4, 5, 0, sizes[i]);
}
END_TEST

START_TEST(send_name_round_trip)
{
    char name[TP_NAME_MAX_WIRE + 1];
    memset(name, 'q', sizeof name - 1);
    static const size_t lens[] = {1, 31, 32, TP_NAME_MAX_WIRE - 1,
                                  TP_NAME_MAX_WIRE};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        name[lens[i]] = '\0';
        uint8_t payload[3] = {1, 2, 3};
        uint8_t out[TP__WIRE_SEND_MAX(3) + TP_NAME_MAX_WIRE];
        size_t len = tp__wire_send_name(out, name, PID_MAX, 9, UINT64_MAX,
                                        TP__WF_REPLY, payload, 3);
        tp__frame f;
        uint8_t *c = decode_frame(out, len, &f);
        ck_assert_uint_eq(f.type, TP__F_SEND_NAME);
        size_t want =
            lens[i] < TP_NAME_MAX_WIRE ? lens[i] : TP_NAME_MAX_WIRE - 1;
        ck_assert_uint_eq(f.name_len, want);
        ck_assert_mem_eq(f.name, name, want);
        ck_assert_uint_eq(f.from, PID_MAX);
        ck_assert_uint_eq(f.tag, 9);
        ck_assert_uint_eq(f.ref, UINT64_MAX);
        ck_assert_uint_eq(f.flags, TP__WF_REPLY);
        ck_assert_uint_eq(f.payload_len, 3);
        ck_assert_mem_eq(f.payload, payload, 3);
        free(c);
        name[lens[i]] = 'q';
    }
}
END_TEST

static void
signal_round_trip(int type, uint32_t to_inc, uint64_t to, uint64_t from,
                  uint64_t ref, int32_t reason, bool linked, const char *text)
{
    uint8_t out[TP__WIRE_SIG_MAX];
    size_t len = tp__wire_signal(out, type, to_inc, to, from, ref, reason,
                                 linked, text);
    ck_assert_uint_le(len, sizeof out);
    tp__frame f;
    uint8_t *c = decode_frame(out, len, &f);
    ck_assert_uint_eq(f.type, (uint32_t)type);
    ck_assert_uint_eq(f.to_inc, to_inc);
    ck_assert_uint_eq(f.to, to);
    ck_assert_uint_eq(f.from, from);
    if (type == TP__F_MONITOR || type == TP__F_DEMONITOR || type == TP__F_DOWN)
        ck_assert_uint_eq(f.ref, ref);
    if (type == TP__F_EXIT || type == TP__F_DOWN) {
        ck_assert_int_eq(f.reason, reason);
        size_t n = text ? strlen(text) : 0;
        if (n > TP__WIRE_TEXT_MAX)
            n = TP__WIRE_TEXT_MAX;
        ck_assert_uint_eq(f.text_len, n);
        if (n > 0)
            ck_assert_mem_eq(f.text, text, n);
    }
    if (type == TP__F_EXIT)
        ck_assert_int_eq(f.linked, linked);
    free(c);
}

START_TEST(signals_round_trip)
{
    static const int types[] = {TP__F_LINK,    TP__F_UNLINK,    TP__F_EXIT,
                                TP__F_MONITOR, TP__F_DEMONITOR, TP__F_DOWN};
    static const int32_t reasons[] = {
        INT32_MIN, -129, -128, -33, -32, -1, 0, 1, 127, 128, 65536, INT32_MAX};
    char longtext[TP__WIRE_TEXT_MAX + 10];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    const char *texts[] = {NULL, "", "boom", longtext};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++)
        for (size_t i = 0; i < NEDGES; i++)
            signal_round_trip(types[t], (uint32_t)edges[i], edges[i],
                              PID_MAX - edges[i], (1ULL << 48) - 1 - i,
                              reasons[i], i % 2, texts[i % 4]);
    for (size_t r = 0; r < sizeof reasons / sizeof *reasons; r++) {
        signal_round_trip(TP__F_EXIT, 1, 2, 3, 0, reasons[r], r % 2, "t");
        signal_round_trip(TP__F_DOWN, 1, 2, 3, 4, reasons[r], 0, "t");
    }
}
END_TEST

// A buffer takes frames one after another and grows as they come.
START_TEST(wbuf_appends_and_grows)
{
    tp__wbuf b = {0};
    uint8_t nonce[TP__WIRE_NONCE] = {0};
    for (uint64_t i = 0; i < 200; i++) {
        tp__wire_ping(&b, TP__F_PING, i << 20);
        tp__wire_hello(&b, TP__F_HELLO, "node", (uint32_t)i, nonce, NULL);
    }
    ck_assert(!b.failed);
    ck_assert_uint_ge(b.cap, b.len);
    size_t off = 0;
    for (uint64_t i = 0; i < 400; i++) {
        ck_assert_uint_le(off + 4, b.len);
        size_t n = be32(b.p + off);
        tp__frame f;
        ck_assert_int_eq(tp__wire_decode(b.p + off + 4, n, &f), TP__W_OK);
        if (i % 2 == 0)
            ck_assert_uint_eq(f.stamp, (i / 2) << 20);
        else
            ck_assert_uint_eq(f.inc, i / 2);
        off += 4 + n;
    }
    ck_assert_uint_eq(off, b.len);
    tp__wbuf_free(&b);
}
END_TEST

// ---- integers in every msgpack form ----------------------------------------

// An unsigned field takes any of msgpack's unsigned forms, not only the
// shortest.
START_TEST(uint_field_any_form)
{
    static const char *fives[] = {"05", "cc 05", "cd 0005", "ce 00000005",
                                  "cf 0000000000000005"};
    for (size_t i = 0; i < 5; i++) {
        env e = {.n = 0};
        put(&e, "92 20");
        put(&e, fives[i]);
        tp__frame f;
        ck_assert_int_eq(decode_env(&e, &f), TP__W_OK);
        ck_assert_uint_eq(f.stamp, 5);
    }
    tp__frame f;
    ck_assert_int_eq(decode_hex("92 20 cf ffffffffffffffff", &f), TP__W_OK);
    ck_assert_uint_eq(f.stamp, UINT64_MAX);
}
END_TEST

// Each field's range: to_inc 32 bits, pids 48, refs of monitors 48, flags
// the one defined bit.
START_TEST(field_ranges)
{
    tp__frame f;
    ck_assert_int_eq(decode_hex("94 12 ce ffffffff 01 02", &f), TP__W_OK);
    ck_assert_uint_eq(f.to_inc, UINT32_MAX);
    ck_assert_int_eq(decode_hex("94 12 cf 0000000100000000 01 02", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("94 12 01 cf 0000ffffffffffff 02", &f),
                     TP__W_OK);
    ck_assert_uint_eq(f.to, PID_MAX);
    ck_assert_int_eq(decode_hex("94 12 01 cf 0001000000000000 02", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("94 12 01 02 cf 0001000000000000", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("95 15 01 02 03 cf 0000ffffffffffff", &f),
                     TP__W_OK);
    ck_assert_uint_eq(f.ref, (1ULL << 48) - 1);
    ck_assert_int_eq(decode_hex("95 15 01 02 03 cf 0001000000000000", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("95 16 01 02 03 cf 0001000000000000", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 01 c4 00", &f),
                     TP__W_OK);
    ck_assert_uint_eq(f.flags, TP__WF_REPLY);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 02 c4 00", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 ce ffffffff 05 00 c4 00", &f),
                     TP__W_OK);
    ck_assert_uint_eq(f.tag, UINT32_MAX);
    ck_assert_int_eq(
        decode_hex("98 10 01 02 03 cf 0000000100000000 05 00 c4 00", &f),
        TP__W_BAD_FIELD);
}
END_TEST

// Reasons are int32 (WIRE.md): the unsigned forms up to INT32_MAX, and
// the signed forms an encoder may pick for an int32 (int 8, 16 and 32).
// int 64 is refused, as test/check_wire.c expects of the decoder.
START_TEST(int32_field_any_form)
{
    static const struct {
        const char *hex;
        int32_t v;
    } ok[] = {
        {"00", 0},
        {"7f", 127},
        {"ff", -1},
        {"e0", -32},
        {"cc ff", 255},
        {"cd ffff", 65535},
        {"ce 7fffffff", INT32_MAX},
        {"cf 000000007fffffff", INT32_MAX},
        {"d0 80", -128},
        {"d0 05", 5},
        {"d1 8000", -32768},
        {"d2 80000000", INT32_MIN},
        {"d2 00000001", 1},
    };
    static const char *bad[] = {
        "ce 80000000",
        "cf 0000000080000000",
        "d3 ffffffff7fffffff",
        "d3 0000000080000000",
        "c0",
        "c2",
        "ca 00000000",
        "a1 41",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        env e = {.n = 0};
        put(&e, "97 14 01 02 03");
        put(&e, ok[i].hex);
        put(&e, "c3 a0");
        tp__frame f;
        int why = decode_env(&e, &f);
        ck_assert_msg(why == TP__W_OK, "reason %s: %s", ok[i].hex,
                      tp__wire_why(why));
        ck_assert_int_eq(f.reason, ok[i].v);
        ck_assert(f.linked);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        env e = {.n = 0};
        put(&e, "97 17 01 02 03 04");
        put(&e, bad[i]);
        put(&e, "a0");
        tp__frame f;
        ck_assert_msg(decode_env(&e, &f) == TP__W_BAD_FIELD, "reason %s",
                      bad[i]);
    }
}
END_TEST

// ---- malformed envelopes ---------------------------------------------------

START_TEST(envelope_shape_refused)
{
    tp__frame f;
    ck_assert_int_eq(decode_hex("", &f), TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("81 20 00", &f), TP__W_NOT_ARRAY);
    ck_assert_int_eq(decode_hex("dc 0002 20 00", &f), TP__W_NOT_ARRAY);
    ck_assert_int_eq(decode_hex("20", &f), TP__W_NOT_ARRAY);
    ck_assert_int_eq(decode_hex("90", &f), TP__W_BAD_ARITY);
    ck_assert_int_eq(decode_hex("91 63", &f), TP__W_BAD_TYPE);
    ck_assert_int_eq(decode_hex("91 00", &f), TP__W_BAD_TYPE);
    ck_assert_int_eq(decode_hex("91 cd 0100", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("91 a1 41", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("91 20", &f), TP__W_BAD_ARITY);
    ck_assert_int_eq(decode_hex("93 20 01 02", &f), TP__W_BAD_ARITY);
    ck_assert_int_eq(decode_hex("92 04 00", &f), TP__W_BAD_ARITY);
    ck_assert_int_eq(decode_hex("91 04", &f), TP__W_OK);
    ck_assert_int_eq(decode_hex("91 04 00", &f), TP__W_TRAILING);
    ck_assert_int_eq(decode_hex("92 20", &f), TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("92 20 cf 0000", &f), TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("92 20 c0", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 20 90", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 20 80", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 20 cb 0000000000000000", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 20 ff", &f), TP__W_BAD_FIELD);
}
END_TEST

START_TEST(strings_and_bins_refused)
{
    tp__frame f;
    env e = {.n = 0};
    // REFUSE: the longest text in str8 and str16 forms, then one byte more.
    put(&e, "92 05 d9 5f");
    put_zeros(&e, TP__WIRE_TEXT_MAX);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_OK);
    ck_assert_uint_eq(f.text_len, TP__WIRE_TEXT_MAX);
    e.n = 0;
    put(&e, "92 05 da 005f");
    put_zeros(&e, TP__WIRE_TEXT_MAX);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_OK);
    e.n = 0;
    put(&e, "92 05 d9 60");
    put_zeros(&e, TP__WIRE_TEXT_MAX + 1);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 05 db 00000003 414243", &f), TP__W_OK);
    ck_assert_int_eq(decode_hex("92 05 db ffffffff 41", &f), TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("92 05 a3 4142", &f), TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("92 05 c4 01 41", &f), TP__W_BAD_FIELD);

    // A payload announcing more than the frame holds.
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 00 c6 ffffffff 00", &f),
                     TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 00 c5 0002 00", &f),
                     TP__W_TRUNCATED);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 00 a1 41", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("98 10 01 02 03 04 05 00 c5 0001 41", &f),
                     TP__W_OK);

    // SEND_NAME: no empty name, no NUL inside, at most 63 bytes.
    ck_assert_int_eq(decode_hex("97 11 a0 01 02 03 00 c4 00", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("97 11 a2 4100 01 02 03 00 c4 00", &f),
                     TP__W_BAD_FIELD);
    e.n = 0;
    put(&e, "97 11 d9 40");
    put_zeros(&e, TP_NAME_MAX_WIRE);
    put(&e, "01 02 03 00 c4 00");
    ck_assert_int_eq(decode_env(&e, &f), TP__W_BAD_FIELD);

    // HELLO: the nonce is exactly 32 bytes; the name has no NUL.
    e.n = 0;
    put(&e, "95 01 01 a1 41 07 c4 1f");
    put_zeros(&e, TP__WIRE_NONCE - 1);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_BAD_FIELD);
    e.n = 0;
    put(&e, "95 01 01 a1 00 07 c4 20");
    put_zeros(&e, TP__WIRE_NONCE);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_BAD_FIELD);
    e.n = 0;
    put(&e, "95 01 01 a1 41 07 c4 20");
    put_zeros(&e, TP__WIRE_NONCE);
    ck_assert_int_eq(decode_env(&e, &f), TP__W_OK);

    // EXIT: linked is a boolean.
    ck_assert_int_eq(decode_hex("97 14 01 02 03 00 01 a0", &f),
                     TP__W_BAD_FIELD);
    ck_assert_int_eq(decode_hex("97 14 01 02 03 00 c2 a0", &f), TP__W_OK);
    ck_assert(!f.linked);
}
END_TEST

// Every byte of good envelopes of each kind replaced by values that
// matter to the decoder: refused with a reason, or accepted with fields
// that lie inside the envelope; never a read outside it.
static void
corrupt_each_byte(const uint8_t *good, size_t n)
{
    static const uint8_t vals[] = {0x00, 0x01, 0x1f, 0x20, 0x7f, 0x80, 0x90,
                                   0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xc4, 0xc5,
                                   0xc6, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd2,
                                   0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xe0, 0xff};
    uint8_t *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        for (size_t v = 0; v < sizeof vals / sizeof *vals + 2; v++) {
            memcpy(p, good, n);
            p[i] = v < sizeof vals / sizeof *vals ? vals[v]
                   : v == sizeof vals / sizeof *vals
                       ? (uint8_t)(good[i] ^ 1)
                       : (uint8_t)(good[i] ^ 0x80);
            tp__frame f;
            int why = tp__wire_decode(p, n, &f);
            UNIT_TRUE(why >= TP__W_OK && why <= TP__W_BAD_ARITY);
            UNIT_TRUE(strcmp(tp__wire_why(why), "?") != 0);
            if (why != TP__W_OK)
                continue;
            const uint8_t *end = p + n;
            if (f.name)
                UNIT_TRUE(f.name >= p && f.name + f.name_len <= end);
            if (f.text)
                UNIT_TRUE(f.text >= p && f.text + f.text_len <= end);
            if (f.payload)
                UNIT_TRUE(f.payload >= p && f.payload + f.payload_len <= end);
            if (f.nonce)
                UNIT_TRUE(f.nonce >= p && f.nonce + TP__WIRE_NONCE <= end);
            if (f.mac)
                UNIT_TRUE(f.mac >= p && f.mac + TP__WIRE_MAC <= end);
        }
    }
    free(p);
}

START_TEST(corrupted_frames_refused_safely)
{
    uint8_t nonce[TP__WIRE_NONCE], mac[TP__WIRE_MAC];
    fill(nonce, sizeof nonce, 3);
    fill(mac, sizeof mac, 5);
    tp__wbuf b = {0};
    tp__wire_hello(&b, TP__F_CHALLENGE, "node@host", 70000, nonce, mac);
    tp__wire_reply(&b, mac);
    tp__wire_simple(&b, TP__F_ACCEPT);
    tp__wire_refuse(&b, "already connected");
    tp__wire_ping(&b, TP__F_PING, 1ULL << 40);
    uint8_t frame[TP__WIRE_SEND_MAX(300)];
    uint8_t payload[300];
    fill(payload, sizeof payload, 0);
    size_t len = tp__wire_send(frame, 3, 70000, PID_MAX, 40000, UINT64_MAX,
                               TP__WF_REPLY, payload, sizeof payload);
    tp__wbuf_reserve(&b, len);
    memcpy(b.p + b.len, frame, len);
    b.len += len;
    len = tp__wire_send_name(frame, "registered", 5, 6, 7, 0, payload, 40);
    tp__wbuf_reserve(&b, len);
    memcpy(b.p + b.len, frame, len);
    b.len += len;
    static const int sigs[] = {TP__F_LINK,    TP__F_UNLINK,    TP__F_EXIT,
                               TP__F_MONITOR, TP__F_DEMONITOR, TP__F_DOWN};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        len = tp__wire_signal(frame, sigs[i], 1, 300, 70000, 99, -200, true,
                              "the reason");
        tp__wbuf_reserve(&b, len);
        memcpy(b.p + b.len, frame, len);
        b.len += len;
    }
    ck_assert(!b.failed);
    unsigned frames = 0;
    for (size_t off = 0; off < b.len; frames++) {
        size_t n = be32(b.p + off);
        corrupt_each_byte(b.p + off + 4, n);
        off += 4 + n;
    }
    ck_assert_uint_eq(frames, 13);
    tp__wbuf_free(&b);
}
END_TEST

Suite *
wire_unit_suite(void)
{
    Suite *s = suite_create("unit_wire");
    TCase *tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, handshake_frames_round_trip);
    tcase_add_test(tc, handshake_text_limits);
    tcase_add_test(tc, ping_pong_round_trip);
    tcase_add_test(tc, send_round_trip_edges);
    tcase_add_test(tc, send_payload_sizes);
    tcase_add_test(tc, send_name_round_trip);
    tcase_add_test(tc, signals_round_trip);
    tcase_add_test(tc, wbuf_appends_and_grows);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, uint_field_any_form);
    tcase_add_test(tc, field_ranges);
    tcase_add_test(tc, int32_field_any_form);
    tcase_add_test(tc, envelope_shape_refused);
    tcase_add_test(tc, strings_and_bins_refused);
    tcase_add_test(tc, corrupted_frames_refused_safely);
    suite_add_tcase(s, tc);
    return s;
}
