// SPDX-License-Identifier: MIT
// The distribution layer against a hostile peer. The test speaks the wire
// protocol itself (test/tp_wire_test.h), over raw TCP, to a node running
// in the test process: handshakes with good and bad proofs, replays, then
// frames malformed in each way the decoder must refuse. Every bad input
// must close only its own connection and be counted, and the node must go
// on serving: after each one an authenticated witness connection still
// delivers, and a new node still completes a handshake. Waits end on a
// closed socket, a counter or a delivery, each bounded.
#include "tp_test.h"
#include <troupe/msgpack.h>
#include "tp_node_test.h"
#include "tp_wire_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME 16384

// The node under test and what the tests keep about it.
static struct {
    tp_system *sys;
    tpw_node t;
    tp_pid sink;
    int witness; // an authenticated connection kept for the whole test
    unsigned names;
} node;

static int
dial(void)
{
    return tpw_dial(node.t.port);
}

static void
send_bytes(int fd, const tpw_bytes *b)
{
    tpw_send(fd, b->p, b->len);
}

// A SEND to the sink: tag 1, a reference in its 8-byte form, `text` as
// the payload.
static void
env_send(tpw_bytes *b, const char *text)
{
    tpw_put_byte(b, 0x98);
    tpw_put_uint(b, TPW_F_SEND);
    tpw_put_uint(b, node.t.inc);
    tpw_put_uint(b, node.sink.v);
    tpw_put_uint(b, 0x1234); // from: some actor on the sending node
    tpw_put_uint(b, 1);
    tpw_put_uint(b, 0x100000000ull);
    tpw_put_uint(b, 0);
    tpw_put_bin(b, text, strlen(text));
}

// Joins as a node no connection of this test has used yet.
static int
join(void)
{
    char name[64];
    snprintf(name, sizeof name, "mallory%u@127.0.0.1:5", ++node.names);
    return tpw_join(&node.t, name, 1, NULL);
}

// ---- the node under test ---------------------------------------------------

static _Atomic long sunk; // user messages the sink received
static char sunk_last[64];

static int
sink_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    if (msg->tag != 1)
        return TP_OK;
    size_t n =
        msg->size < sizeof sunk_last - 1 ? msg->size : sizeof sunk_last - 1;
    memcpy(sunk_last, msg->data, n);
    sunk_last[n] = 0;
    atomic_fetch_add(&sunk, 1); // publishes sunk_last to the test
    return TP_OK;
}

static const tp_behaviour sink_b = {.name = "sink", .handle = sink_handle};

// The node logs each refusal; the test keeps the lines for its checks.
static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char lines[64][256];
static unsigned nlines;

static void
keep_line(void *userdata, int level, const char *origin, const char *line)
{
    (void)userdata;
    (void)level;
    (void)origin;
    pthread_mutex_lock(&lines_lock);
    snprintf(lines[nlines++ % 64], sizeof lines[0], "%s", line);
    pthread_mutex_unlock(&lines_lock);
}

// How many lines were logged so far.
static unsigned
line_count(void)
{
    pthread_mutex_lock(&lines_lock);
    unsigned n = nlines;
    pthread_mutex_unlock(&lines_lock);
    return n;
}

static bool
logged(const char *text)
{
    bool hit = false;
    pthread_mutex_lock(&lines_lock);
    for (unsigned i = 0; i < 64 && i < nlines && !hit; i++)
        hit = strstr(lines[i], text) != NULL;
    pthread_mutex_unlock(&lines_lock);
    return hit;
}

static tp_node_stats
stats(void)
{
    tp_node_stats s;
    ck_assert_int_eq(tp_node_stats_get(node.sys, &s), 0);
    return s;
}

// Starts the node with `over` (max_frame and timeouts default to the
// suite's), its sink, and the witness connection.
static void
start(const tp_node_config *over)
{
    tpn_setup();
    node.sys = tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_line});
    tp_node_config nc = over ? *over : (tp_node_config){0};
    nc.name = "alpha";
    nc.secret_file = tpn_secret;
    if (nc.max_frame == 0)
        nc.max_frame = MAX_FRAME;
    if (nc.timeout_ms == 0)
        nc.timeout_ms = 30000; // fake peers never ping
    if (tpw_tls_on()) {        // the wire-tls case: every test again, over TLS
        nc.tls_cert_file = tpn_cert("b", "pem");
        nc.tls_key_file = tpn_cert("b", "key");
        nc.tls_ca_file = tpn_cert("ca", "pem");
    }
    ck_assert_int_eq(tp_node_start(node.sys, &nc), 0);
    tpw_node_of(&node.t, node.sys);
    ck_assert_int_eq(tp_spawn(node.sys, &sink_b, NULL,
                              &(tp_spawn_opts){.name = "sink"}, &node.sink),
                     0);
    atomic_store(&sunk, 0);
    node.names = 0;
    node.witness = tpw_join(&node.t, "witness@127.0.0.1:6", 7, NULL);
}

static void
stop(void)
{
    close(node.witness);
    tp_system_destroy(&node.sys);
    tpw_tls_forget();
    tpn_teardown();
}

// A message over the witness connection still reaches the sink, and
// nothing else did meanwhile.
static void
witness_delivers(void)
{
    long want = atomic_load(&sunk) + 1;
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    env_send(&env, "witness");
    tpw_put_frame(&fr, env.p, env.len);
    send_bytes(node.witness, &fr);
    ck_assert(tpt_wait_ge(&sunk, want, TPW_WAIT_MS / 1000.0));
    ck_assert_int_eq(atomic_load(&sunk), want);
    ck_assert_str_eq(sunk_last, "witness");
}

// The node keeps serving: the witness delivers and a new node joins.
static void
still_serving(void)
{
    witness_delivers();
    close(join());
}

// Writes `raw` on a new connection (authenticated first with `auth`) and
// checks that the node closes it, counts one rejected frame and keeps
// serving.
static void
rejected_raw(bool auth, const tpw_bytes *raw)
{
    tp_node_stats before = stats();
    int fd = auth ? join() : dial();
    send_bytes(fd, raw);
    ck_assert_msg(tpw_closed(fd, NULL), "connection left open");
    tp_node_stats after = stats();
    ck_assert_uint_eq(after.frames_rejected, before.frames_rejected + 1);
    ck_assert_uint_eq(after.auth_failures, before.auth_failures);
    still_serving();
}

// The same for one frame holding the envelope given in hex.
static void
rejected_hex(bool auth, const char *hex)
{
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    tpw_put_hex(&env, hex);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(auth, &fr);
}

// Writes handshake frames on a new connection and checks that the node
// refuses the handshake with `why`, counted as an authentication failure,
// and keeps serving.
static void
auth_refused(const tpw_bytes *frames, const char *why)
{
    tp_node_stats before = stats();
    int fd = dial();
    send_bytes(fd, frames);
    tpw_bytes got;
    ck_assert_msg(tpw_closed(fd, &got), "connection left open");
    ck_assert_msg(tpw_refused_with(&got, why), "no REFUSE \"%s\"", why);
    ck_assert_uint_eq(stats().auth_failures, before.auth_failures + 1);
    still_serving();
}

static void
hello_refused(uint32_t vsn, const char *name, size_t name_len, uint32_t inc,
              const char *why)
{
    uint8_t na[TPW_NONCE];
    tpw_nonce(na);
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    tpw_env_hello(&env, TPW_F_HELLO, vsn, name, name_len, inc, na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    auth_refused(&fr, why);
}

// ---- before authentication -------------------------------------------------

START_TEST(send_before_handshake)
{
    start(NULL);
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    env_send(&env, "early");
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(false, &fr);
    ck_assert_int_eq(atomic_load(&sunk), 1); // the witness's
    // A REPLY or an ACCEPT out of turn fares no better.
    rejected_hex(false, "92 03 c4 20 00000000000000000000000000000000"
                        "00000000000000000000000000000000");
    rejected_hex(false, "91 04");
    // Nor does a handshake frame over 1024 bytes.
    fr.len = 0;
    tpw_put_be(&fr, 1025, 4);
    rejected_raw(false, &fr);
    stop();
}
END_TEST

START_TEST(replayed_handshake_refused)
{
    start(NULL);
    tpw_transcript t;
    int fd = tpw_join(&node.t, "mallory@127.0.0.1:5", 42, &t);
    // An eavesdropper replays the initiator's bytes verbatim: the node's
    // fresh nonce makes the recorded proof worthless.
    tpw_bytes both = t.hello;
    tpw_put(&both, t.reply.p, t.reply.len);
    auth_refused(&both, "authentication failed");
    // The same, after the original connection is gone.
    close(fd);
    auth_refused(&both, "authentication failed");
    stop();
}
END_TEST

START_TEST(wrong_mac_refused)
{
    start(NULL);
    const char *name = "mallory@127.0.0.1:5";
    for (int round = 0; round < 3; round++) {
        tp_node_stats before = stats();
        int fd = dial();
        uint8_t na[TPW_NONCE], nb[TPW_NONCE], mac[TPW_MAC];
        tpw_nonce(na);
        tpw_bytes env = {.len = 0}, fr = {.len = 0}, in;
        tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, name, strlen(name), 9, na,
                      NULL);
        tpw_put_frame(&fr, env.p, env.len);
        send_bytes(fd, &fr);
        ck_assert(tpw_read_frame(fd, &in));
        tpw_check_challenge(&node.t, &in, name, 9, na, nb);
        if (round == 0) { // one bit off
            tpw_proof(mac, 'a', na, nb, name, node.t.name, 9, node.t.inc);
            mac[TPW_MAC - 1] ^= 1;
        } else if (round == 1) { // the acceptor's label: a reflected proof
            tpw_proof(mac, 'b', na, nb, name, node.t.name, 9, node.t.inc);
        } else { // the node's own proof sent back
            msgpack_unpacked u;
            msgpack_object *f = tpw_envelope(&u, &in, TPW_F_CHALLENGE, 6);
            tpw_field_bin(&f[5], TPW_MAC, mac);
            msgpack_unpacked_destroy(&u);
        }
        env.len = fr.len = 0;
        tpw_env_reply(&env, mac);
        tpw_put_frame(&fr, env.p, env.len);
        send_bytes(fd, &fr);
        tpw_bytes got;
        ck_assert(tpw_closed(fd, &got));
        ck_assert(tpw_refused_with(&got, "authentication failed"));
        ck_assert_uint_eq(stats().auth_failures, before.auth_failures + 1);
        still_serving();
    }
    stop();
}
END_TEST

START_TEST(wrong_version_refused)
{
    start(NULL);
    const char *name = "mallory@127.0.0.1:5";
    // 1 is troupe 0.1's: its exit reasons mean something else.
    uint32_t versions[] = {0, 1, 3, 0xffffffffu};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        hello_refused(versions[i], name, strlen(name), 1,
                      "unsupported protocol version");
    stop();
}
END_TEST

START_TEST(bad_node_name_refused)
{
    start(NULL);
    const char *names[] = {
        "",
        "mallory",
        "@127.0.0.1:5",
        "mallory@",
        "mal lory@127.0.0.1:5",
        "mallory@127.0.0.1",
        "mallory@127.0.0.1:0",
        "mallory@127.0.0.1:65536",
        "mallory@localhost:5",
        "mallory@::1:5",
        "mallory@127.0.0.1:5 ",
        "m\xc3\xa9llory@127.0.0.1:5",
        node.t.name, // its own
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        hello_refused(TPW_VSN, names[i], strlen(names[i]), 1, "bad node name");
    // A short name of 49 bytes, one over the limit.
    char name[TP_NODE_NAME_MAX];
    memset(name, 'a', 49);
    snprintf(name + 49, sizeof name - 49, "@127.0.0.1:5");
    hello_refused(TPW_VSN, name, strlen(name), 1, "bad node name");
    // A good name with incarnation 0, which no node draws.
    hello_refused(TPW_VSN, "mallory@127.0.0.1:5", 19, 0, "bad node name");
    // A NUL inside the name, or past 127 bytes: the frame itself is
    // malformed (names are text).
    uint8_t na[TPW_NONCE] = {0};
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, "ok@127.0.0.1:5\0junk", 19, 1,
                  na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(false, &fr);
    env.len = fr.len = 0;
    char longer[160];
    memset(longer, 'a', sizeof longer);
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, longer, 128, 1, na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(false, &fr);
    stop();
}
END_TEST

// ---- framing after authentication ------------------------------------------

START_TEST(truncated_send_closed)
{
    start(NULL);
    tpw_bytes env = {.len = 0};
    env_send(&env, "cut");
    // The length prefix tells the truth about an envelope cut short at
    // each offset; every one closes its connection and delivers nothing.
    for (size_t cut = 1; cut < env.len; cut++) {
        tpw_bytes fr = {.len = 0};
        tpw_put_frame(&fr, env.p, cut);
        rejected_raw(true, &fr);
    }
    ck_assert_int_eq(atomic_load(&sunk), (long)(env.len - 1)); // witness
    stop();
}
END_TEST

// Waits until the node has read `want` bytes in all.
static bool
bytes_in_reach(uint64_t want)
{
    for (int i = 0; i < TPW_WAIT_MS * 5; i++) {
        if (stats().bytes_in >= want)
            return true;
        tpt_nap_us(200);
    }
    return false;
}

START_TEST(split_send_delivered)
{
    start(NULL);
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    env_send(&env, "split");
    tpw_put_frame(&fr, env.p, env.len);
    int fd = join();
    uint64_t rejected = stats().frames_rejected;
    // The second part goes out only once the node has read the first.
    for (size_t cut = 1; cut < fr.len; cut++) {
        long want = atomic_load(&sunk) + 1;
        uint64_t in = stats().bytes_in;
        tpw_send(fd, fr.p, cut);
        ck_assert(bytes_in_reach(in + cut));
        tpw_send(fd, fr.p + cut, fr.len - cut);
        ck_assert_msg(tpt_wait_ge(&sunk, want, TPW_WAIT_MS / 1000.0),
                      "split at %zu not delivered", cut);
        ck_assert_str_eq(sunk_last, "split");
    }
    ck_assert(tpw_open(fd));
    ck_assert_uint_eq(stats().frames_rejected, rejected);
    close(fd);
    stop();
}
END_TEST

// A SEND with the reply flag passes a full mailbox only as the answer to
// a request pending at its receiver; a peer that calls everything a reply
// meets the capacity like any sender.
static _Atomic int reply_gate;
static _Atomic long reply_gated;

static int
reply_gated_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    atomic_fetch_add(&reply_gated, 1);
    while (!atomic_load(&reply_gate))
        tpt_nap_us(200);
    return TP_OK;
}

static const tp_behaviour reply_gated_b = {.name = "gated",
                                           .handle = reply_gated_handle};

START_TEST(reply_flag_without_request_counts)
{
    start(NULL);
    atomic_store(&reply_gate, 0);
    atomic_store(&reply_gated, 0);
    tp_pid g;
    tp_spawn_opts o = {.mailbox_capacity = 4};
    ck_assert_int_eq(tp_spawn(node.sys, &reply_gated_b, NULL, &o, &g), 0);
    int fd = join();
    tpw_bytes fr = {.len = 0};
    long n = 40;
    for (long i = 0; i < n; i++) {
        tpw_bytes env = {.len = 0};
        tpw_put_byte(&env, 0x98);
        tpw_put_uint(&env, TPW_F_SEND);
        tpw_put_uint(&env, node.t.inc);
        tpw_put_uint(&env, g.v);
        tpw_put_uint(&env, 0x1234);
        tpw_put_uint(&env, 1);
        tpw_put_uint(&env, 1000 + (uint64_t)i); // a ref nobody asked for
        tpw_put_uint(&env, i == 0 ? 0 : 1);     // the reply flag
        tpw_put_bin(&env, "r", 1);
        tpw_put_frame(&fr, env.p, env.len);
    }
    uint64_t in = stats().bytes_in;
    send_bytes(fd, &fr);
    ck_assert(tpt_wait_ge(&reply_gated, 1, TPW_WAIT_MS / 1000.0));
    ck_assert(bytes_in_reach(in + fr.len));
    // The I/O thread is done with those frames once it has served the
    // witness after them.
    witness_delivers();
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(node.sys, g, &st), 0);
    ck_assert_uint_le(st.length, 4);
    ck_assert_uint_le(st.high_water, 4);
    // Refusing to force them past the capacity lost no connection.
    atomic_store(&reply_gate, 1);
    witness_delivers();
    ck_assert(tpw_open(fd));
    close(fd);
    stop();
}
END_TEST

START_TEST(frame_lengths)
{
    start(NULL);
    tpw_bytes fr = {.len = 0};
    tpw_put_be(&fr, 0, 4); // zero
    rejected_raw(true, &fr);
    fr.len = 0;
    tpw_put_be(&fr, MAX_FRAME + 1, 4); // one over: refused before any body
    rejected_raw(true, &fr);
    ck_assert(logged("frame length 16385 outside 1..16384"));
    fr.len = 0;
    tpw_put_be(&fr, 0xffffffffu, 4);
    rejected_raw(true, &fr);
    // Exactly max_frame is delivered: a payload that fills the frame.
    tpw_bytes env = {.len = 0};
    env_send(&env, "");
    size_t size = MAX_FRAME - env.len - 1; // bin16's header is one longer
    char *text = malloc(size + 1);
    memset(text, 'x', size);
    text[size] = 0;
    env.len = 0;
    env_send(&env, text);
    free(text);
    ck_assert_uint_eq(env.len, MAX_FRAME);
    fr.len = 0;
    tpw_put_frame(&fr, env.p, env.len);
    int fd = join();
    long want = atomic_load(&sunk) + 1;
    send_bytes(fd, &fr);
    ck_assert(tpt_wait_ge(&sunk, want, TPW_WAIT_MS / 1000.0));
    ck_assert(tpw_open(fd));
    close(fd);
    stop();
}
END_TEST

// A good SEND and a bad length in one read: the connection closes, and
// the message that came before still reaches the sink (the reader had
// batched it; it must neither be lost nor leak).
START_TEST(send_then_bad_length)
{
    start(NULL);
    for (int i = 0; i < 20; i++) {
        tpw_bytes env = {.len = 0}, fr = {.len = 0};
        env_send(&env, "before");
        tpw_put_frame(&fr, env.p, env.len);
        tpw_put_be(&fr, i % 2 ? 0 : MAX_FRAME + 1, 4);
        long want = atomic_load(&sunk) + 1;
        int fd = join();
        send_bytes(fd, &fr);
        ck_assert_msg(tpt_wait_ge(&sunk, want, TPW_WAIT_MS / 1000.0),
                      "round %d: the SEND before the bad length was lost", i);
        ck_assert_str_eq(sunk_last, "before");
        ck_assert(tpw_closed(fd, NULL)); // and closes fd
    }
    stop();
}
END_TEST

START_TEST(nested_arrays_closed)
{
    start(NULL);
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    for (int i = 0; i < 10000; i++)
        tpw_put_byte(&env, 0x91);
    tpw_put_uint(&env, TPW_F_PING);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    rejected_raw(false, &fr);
    stop();
}
END_TEST

START_TEST(malformed_envelopes_closed)
{
    start(NULL);
    const char *bad[] = {
        "dd ff 00 00 00",    // array32 claiming 4G elements
        "dc ff ff",          // array16
        "dd 00 00 00 01 20", // a one-element array32: not fixarray
        "90",                // empty
        "80",                // a map
        "81 10 00",          // a map holding a frame type
        "c0",                // nil
        "a4 53 45 4e 44",    // a string
        "91 c0",             // nil type
        "91 ca 41 80 00 00", // float type
        "91 e0",             // negative type
        "92 20 a1 31",       // PING stamp as a string
        "92 20 cb 00 00 00 00 00 00 00 00", // PING stamp as a double
        "92 20 c3",                         // PING stamp as a boolean
        "92 20 cf 00 00 00",                // PING stamp cut short
        "91 20",                            // PING without a stamp
        "93 20 01 02",                      // PING with one field too many
        "97 10 01 01 00 01 00 00",          // SEND, one field short
        "99 10 01 01 00 01 00 00 c4 00 00", // SEND, one too many
        "98 10 01 01 00 01 00 00 c6 ff ff ff ff", // bin32 past the end
        "98 10 01 01 00 01 00 00 a1 78",          // str payload
        "98 10 01 01 00 01 00 02 c4 00",          // unknown flag
        "98 10 01 cf 00 01 00 00 00 00 00 01 00 01 00 00 c4 00", // to >2^48
        "98 10 cf 00 00 00 01 00 00 00 00 01 00 01 00 00 c4 00", // to_inc
        "98 10 01 01 d0 ff 01 00 00 c4 00",                      // int8 from
        "97 11 a0 00 01 00 00 c4 00",                // SEND_NAME, empty name
        "94 12 01 01 c2",                            // LINK from as boolean
        "95 15 01 01 00 cf 00 01 00 00 00 00 00 00", // MONITOR ref >2^48
        "97 14 01 01 00 00 01 a0",                   // EXIT linked as int
        "97 14 01 01 00 d3 00 00 00 00 00 00 00 00 c2 a0", // int64 reason
        "97 14 01 01 00 ce 80 00 00 00 c2 a0", // reason over INT32_MAX
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected_hex(true, bad[i]);
    // A SEND_NAME whose name is 64 bytes, one over the limit.
    tpw_bytes env = {.len = 0};
    tpw_put_hex(&env, "97 11 d9 40");
    for (int i = 0; i < 64; i++)
        tpw_put_byte(&env, 'n');
    tpw_put_hex(&env, "00 01 00 00 c4 00");
    tpw_bytes fr = {.len = 0};
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    // An EXIT whose text is 96 bytes.
    env.len = fr.len = 0;
    tpw_put_hex(&env, "97 14 01 01 00 00 c2 d9 60");
    for (int i = 0; i < 96; i++)
        tpw_put_byte(&env, 't');
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    stop();
}
END_TEST

START_TEST(extension_types_closed)
{
    start(NULL);
    const char *bad[] = {
        "c7 03 7f 01 02 03",                   // the envelope an ext8
        "d4 01 00",                            // the envelope a fixext1
        "d6 ff 00 00 00 00",                   // the envelope a timestamp
        "91 d4 00 10",                         // the frame type a fixext1
        "92 20 d7 ff 00 00 00 00 00 00 00 00", // a timestamp as the stamp
        // A pid (extension type 1) where a SEND expects a bare pid.
        "98 10 01 c7 1d 01 10 62 65 74 61 40 31 32 37 2e 30 2e 30 2e 31 3a"
        "35 00 00 00 01 00 00 00 00 00 00 00 02 00 01 00 00 c4 00",
        "98 10 01 01 00 01 00 00 c7 02 05 aa bb", // ext payload
        "98 10 01 01 00 01 00 00 d5 05 aa bb",    // fixext2 payload
        "98 10 01 01 d8 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        " 01 00 00 c4 00",                              // fixext16, type -128
        "98 10 01 01 00 c8 00 01 40 00 01 00 c4 00",    // ext16 tag
        "98 10 01 01 00 01 00 c9 00 00 00 00 01 c4 00", // ext32 flags
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected_hex(true, bad[i]);
    stop();
}
END_TEST

START_TEST(trailing_bytes_closed)
{
    start(NULL);
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    env_send(&env, "trailing");
    tpw_put_byte(&env, 0xc0);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    // Two envelopes in one frame: neither is delivered.
    env.len = fr.len = 0;
    env_send(&env, "first");
    size_t one = env.len;
    tpw_put(&env, env.p, one);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    ck_assert_int_eq(atomic_load(&sunk), 2); // the witness's
    stop();
}
END_TEST

START_TEST(unknown_frame_types_closed)
{
    start(NULL);
    const char *bad[] = {
        "91 00", "91 06", "91 0f",    "92 06 00", "91 18",       "92 1f 00",
        "91 22", "91 7f", "91 cc 80", "91 cc ff", "91 cd 01 00", "92 d0 10 00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected_hex(true, bad[i]);
    stop();
}
END_TEST

START_TEST(handshake_frame_after_auth)
{
    start(NULL);
    uint8_t na[TPW_NONCE] = {0}, mac[TPW_MAC] = {0};
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    const char *me = "eve@127.0.0.1:5";
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, me, strlen(me), 3, na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    env.len = fr.len = 0;
    tpw_env_hello(&env, TPW_F_CHALLENGE, TPW_VSN, me, strlen(me), 3, na, mac);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    env.len = fr.len = 0;
    tpw_env_reply(&env, mac);
    tpw_put_frame(&fr, env.p, env.len);
    rejected_raw(true, &fr);
    rejected_hex(true, "91 04");             // ACCEPT
    rejected_hex(true, "92 05 a3 62 79 65"); // REFUSE "bye"
    ck_assert(logged("handshake frame after authentication"));
    stop();
}
END_TEST

// Well-formed frames that name nobody are dropped, not punished: the
// connection stays and answers a PING.
START_TEST(harmless_frames_kept)
{
    start(NULL);
    int fd = join();
    tpw_bytes fr = {.len = 0}, env = {.len = 0};
    const char *kept[] = {
        "98 10 01 01 00 01 00 00 c4 00", // an earlier incarnation
        "97 11 a6 6e 6f 62 6f 64 79 00 01 00 00 c4 00", // unknown name
        "94 12 01 01 00",                               // LINK, earlier life
        "92 21 05", // a PONG nobody asked for
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        env.len = 0;
        tpw_put_hex(&env, kept[i]);
        tpw_put_frame(&fr, env.p, env.len);
    }
    // A SEND to a pid that never lived, and one with a reserved tag.
    env.len = 0;
    tpw_put_byte(&env, 0x98);
    tpw_put_uint(&env, TPW_F_SEND);
    tpw_put_uint(&env, node.t.inc);
    tpw_put_uint(&env, 0xfffff0ffffffull);
    tpw_put_hex(&env, "00 01 00 00 c4 00");
    tpw_put_frame(&fr, env.p, env.len);
    env.len = 0;
    tpw_put_byte(&env, 0x98);
    tpw_put_uint(&env, TPW_F_SEND);
    tpw_put_uint(&env, node.t.inc);
    tpw_put_uint(&env, node.sink.v);
    tpw_put_hex(&env, "00 ce ff ff 00 00 00 00 c4 00");
    tpw_put_frame(&fr, env.p, env.len);
    env.len = 0;
    tpw_put_byte(&env, 0x92);
    tpw_put_uint(&env, TPW_F_PING);
    tpw_put_uint(&env, 0xfeedfacecafeull);
    tpw_put_frame(&fr, env.p, env.len);
    send_bytes(fd, &fr);
    bool pong = false;
    tpw_bytes in;
    while (!pong && tpw_read_frame(fd, &in)) {
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(
            msgpack_unpack_next(&u, (const char *)in.p, in.len, &off),
            MSGPACK_UNPACK_SUCCESS);
        msgpack_object *f = u.data.via.array.ptr;
        if (f[0].via.u64 == TPW_F_PONG) {
            ck_assert_uint_eq(f[1].via.u64, 0xfeedfacecafeull);
            pong = true;
        }
        msgpack_unpacked_destroy(&u);
    }
    ck_assert(pong);
    ck_assert_uint_eq(stats().frames_rejected, 0);
    ck_assert_int_eq(atomic_load(&sunk), 0);
    close(fd);
    witness_delivers();
    stop();
}
END_TEST

// ---- limits on connections -------------------------------------------------

START_TEST(unauthenticated_cap)
{
    start(&(tp_node_config){.max_unauthenticated = 4,
                            .handshake_timeout_ms = 20000});
    int silent[4];
    for (int i = 0; i < 4; i++)
        silent[i] = dial();
    // A fifth is accepted: the oldest of the four makes room for it.
    // Connections are accepted in order, so that is silent[0].
    double t0 = tpw_now();
    int fifth = dial();
    ck_assert(tpw_closed(silent[0], NULL));
    ck_assert_double_lt(tpw_now() - t0, 2.0); // at once, no timeout involved
    tp_node_stats s = stats();
    ck_assert_uint_eq(s.connections_evicted, 1);
    ck_assert_uint_eq(s.connections_refused, 0);
    ck_assert(tpw_open(fifth));
    for (int i = 1; i < 4; i++)
        ck_assert(tpw_open(silent[i]));
    // A connection that sent its HELLO goes after every silent one, even
    // younger ones: the next newcomer evicts silent[2], not silent[1].
    const char *name = "early@127.0.0.1:5";
    uint8_t na[TPW_NONCE], nb[TPW_NONCE];
    tpw_nonce(na);
    tpw_bytes env = {.len = 0}, fr = {.len = 0}, in;
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, name, strlen(name), 4, na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    send_bytes(silent[1], &fr);
    ck_assert(tpw_read_frame(silent[1], &in));
    tpw_check_challenge(&node.t, &in, name, 4, na, nb);
    int sixth = dial();
    ck_assert(tpw_closed(silent[2], NULL));
    ck_assert(tpw_open(silent[1]));
    ck_assert(tpw_open(silent[3]));
    ck_assert(tpw_open(fifth));
    ck_assert_uint_eq(stats().connections_evicted, 2);
    // Authenticated traffic is not affected, and a peer gets in although
    // every slot is taken (its HELLO is read as it is accepted, so it
    // evicts silent[3], the oldest silent one, and is not evicted itself).
    witness_delivers();
    close(join());
    ck_assert(tpw_closed(silent[3], NULL));
    ck_assert(tpw_open(silent[1]));
    ck_assert_uint_eq(stats().connections_evicted, 3);
    ck_assert_uint_eq(stats().connections_refused, 0);
    // Among those that sent a HELLO, age decides: silent[1] before fifth
    // once fifth has sent one too.
    tpw_bytes env2 = {.len = 0}, fr2 = {.len = 0};
    tpw_nonce(na);
    tpw_env_hello(&env2, TPW_F_HELLO, TPW_VSN, "late@127.0.0.1:5", 16, 4, na,
                  NULL);
    tpw_put_frame(&fr2, env2.p, env2.len);
    send_bytes(fifth, &fr2);
    ck_assert(tpw_read_frame(fifth, &in));
    send_bytes(sixth, &fr2);
    ck_assert(tpw_read_frame(sixth, &in));
    int seventh = dial(); // four: silent[1], fifth, sixth and seventh
    send_bytes(seventh, &fr2);
    ck_assert(tpw_read_frame(seventh, &in));
    close(join()); // evicts silent[1], the oldest that said HELLO
    ck_assert(tpw_closed(silent[1], NULL));
    ck_assert(tpw_open(fifth));
    ck_assert_uint_eq(stats().connections_evicted, 4);
    close(fifth);
    close(sixth);
    close(seventh);
    stop();
}
END_TEST

// ---- a reconnecting flood of silent connections
// -----------------------------
//
// An attacker without the secret keeps FLOOD_CONNS connections open and
// opens a new one as soon as the node closes one. Peers must still get in,
// and the warnings must come as summaries, not one line per connection.

#define FLOOD_CONNS 500

static _Atomic int flood_stop;
// With flood_hello set, each connection sends this HELLO, which anyone can
// make without the secret, and says nothing more.
static bool flood_hello;
static tpw_bytes flood_hello_frame;

static int
flood_dial(uint16_t port)
{
    int fd = socket(
        AF_INET,
        SOCK_STREAM | SOCK_CLOEXEC | (flood_hello ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa); // EINPROGRESS
    if (flood_hello) {
        if (rc == 0)
            send(fd, flood_hello_frame.p, flood_hello_frame.len,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    return fd;
}

static void *
flood_main(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    static struct pollfd pf[FLOOD_CONNS];
    for (int i = 0; i < FLOOD_CONNS; i++)
        pf[i] = (struct pollfd){.fd = flood_dial(port), .events = POLLIN};
    while (!atomic_load(&flood_stop)) {
        if (poll(pf, FLOOD_CONNS, 10) <= 0)
            continue;
        for (int i = 0; i < FLOOD_CONNS; i++) {
            if (pf[i].revents == 0)
                continue;
            char buf[256];
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
                continue;
            close(pf[i].fd); // closed by the node: open another at once
            pf[i].fd = flood_dial(port);
        }
    }
    for (int i = 0; i < FLOOD_CONNS; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    return NULL;
}

// Starts the flood on the node under test and waits until it has made the
// node evict `evicted` connections.
static pthread_t
flood_start(uint64_t evicted, bool hello)
{
    static uint16_t port;
    port = node.t.port;
    flood_hello = hello;
    if (hello) {
        const char *name = "mallory@127.0.0.1:5";
        uint8_t na[TPW_NONCE];
        tpw_nonce(na);
        tpw_bytes env = {.len = 0};
        tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, name, strlen(name), 9, na,
                      NULL);
        flood_hello_frame.len = 0;
        tpw_put_frame(&flood_hello_frame, env.p, env.len);
    }
    atomic_store(&flood_stop, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, flood_main, &port), 0);
    for (int i = 0; i < 20000 && stats().connections_evicted < evicted; i++)
        tpt_nap_us(1000);
    ck_assert_uint_ge(stats().connections_evicted, evicted);
    return t;
}

// A real node connects and disconnects 20 times, trying each time as a
// reconnecting peer does, up to 5 times; returns in how many rounds it got
// in. Its handshake takes a round trip, during which 64 newer connections
// push it out: on a loaded machine a try can lose that race, which is why
// one failed try is not a lockout, but five in a row are.
static int
peer_attempts(void)
{
    tp_system *peer = tpn_local("legit", NULL);
    const char *target = tp_node_name(node.sys);
    int ok = 0;
    for (int round = 0; round < 20; round++) {
        for (int try = 0; try < 5; try++)
            if (tp_node_connect(peer, target, 2000) == 0) {
                ok++;
                break;
            }
        ck_assert_int_eq(tp_node_disconnect(peer, target), 0);
        tp_peer_info pi;
        for (int i = 0; i < 5000; i++) {
            ck_assert_int_eq(tp_node_peers(peer, &pi, 1), 1);
            if (pi.state == TP_PEER_IDLE)
                break;
            tpt_nap_us(1000);
        }
        ck_assert_int_eq(pi.state, TP_PEER_IDLE);
    }
    tp_system_destroy(&peer);
    return ok;
}

// The flood's connections send a HELLO, which needs no secret: they must
// not outrank the peer's for it.
START_TEST(hello_flood_does_not_lock_peers_out)
{
    start(NULL);
    pthread_t flood = flood_start(500, true);
    int ok = peer_attempts();
    ck_assert_msg(ok == 20, "the peer got in %d times of 20", ok);
    witness_delivers();
    atomic_store(&flood_stop, 1);
    pthread_join(flood, NULL);
    ck_assert_uint_eq(stats().connections_refused, 0);
    stop();
}
END_TEST

START_TEST(reconnecting_flood_does_not_lock_peers_out)
{
    start(NULL); // the default 64 slots for unauthenticated connections
    unsigned lines0 = line_count();
    // The flood holds every slot and turns them over.
    pthread_t flood = flood_start(1000, false);
    // A real node connects and disconnects 20 times.
    int ok = peer_attempts();
    ck_assert_msg(ok == 20, "the peer got in %d times of 20", ok);
    // Authenticated traffic went on throughout.
    witness_delivers();
    // Evictions are logged one by one only at first, then summed up once
    // the window ends.
    bool summed = false;
    for (int i = 0; i < 20000 && !summed; i++) {
        summed = logged("more unauthenticated connections evicted");
        if (!summed)
            tpt_nap_us(1000);
    }
    ck_assert_msg(summed, "no summary of the evictions");
    atomic_store(&flood_stop, 1);
    pthread_join(flood, NULL);
    tp_node_stats s = stats();
    ck_assert_uint_ge(s.connections_evicted, 1000);
    ck_assert_uint_eq(s.connections_refused, 0);
    // Some lines per kind and window, a summary each: nowhere near one a
    // connection.
    ck_assert_uint_lt(line_count() - lines0, 100);
    stop();
}
END_TEST

// The state the node under test has for peer `name`, or -1 if unknown.
static int
peer_state(const char *name)
{
    tp_peer_info pi[8];
    int n = tp_node_peers(node.sys, pi, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (strcmp(pi[i].node, name) == 0)
            return (int)pi[i].state;
    return -1;
}

START_TEST(paused_peer_gets_back_in_during_flood)
{
    // Peers are found down within about a second here.
    start(&(tp_node_config){.timeout_ms = 1000, .heartbeat_ms = 200});
    pthread_t flood = flood_start(500, false);
    // A peer process that dials the node and keeps reconnecting to it.
    tpn_child c;
    const char *argv[] = {
        "beta", "-s",   tpn_secret, "-c",  tp_node_name(node.sys),
        "-t",   "1000", "-b",       "200", NULL};
    ck_assert_int_eq(tpn_start(&c, argv), 0);
    for (int i = 0; i < 10000 && peer_state(c.node) != TP_PEER_UP; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(peer_state(c.node), TP_PEER_UP);
    // Paused, it is found down; resumed, it is back in within a second.
    tpn_kill(&c, SIGSTOP);
    for (int i = 0; i < 10000 && peer_state(c.node) == TP_PEER_UP; i++)
        tpt_nap_us(1000);
    ck_assert_int_ne(peer_state(c.node), TP_PEER_UP);
    double t0 = tpw_now();
    tpn_kill(&c, SIGCONT);
    for (int i = 0; i < 10000 && peer_state(c.node) != TP_PEER_UP; i++)
        tpt_nap_us(1000);
    double took = tpw_now() - t0;
    ck_assert_int_eq(peer_state(c.node), TP_PEER_UP);
    ck_assert_msg(took < 1.0, "back in after %.2f s", took);
    atomic_store(&flood_stop, 1);
    pthread_join(flood, NULL);
    tpn_stop(&c);
    stop();
}
END_TEST

START_TEST(handshake_timeout)
{
    start(&(tp_node_config){.handshake_timeout_ms = 300});
    double t0 = tpw_now();
    int silent = dial();
    // The other sends its HELLO, reads the CHALLENGE and says no more.
    int halfway = dial();
    const char *name = "slow@127.0.0.1:5";
    uint8_t na[TPW_NONCE], nb[TPW_NONCE];
    tpw_nonce(na);
    tpw_bytes env = {.len = 0}, fr = {.len = 0}, in;
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, name, strlen(name), 4, na, NULL);
    tpw_put_frame(&fr, env.p, env.len);
    send_bytes(halfway, &fr);
    ck_assert(tpw_read_frame(halfway, &in));
    tpw_check_challenge(&node.t, &in, name, 4, na, nb);
    ck_assert(tpw_closed(silent, NULL));
    ck_assert(tpw_closed(halfway, NULL));
    double took = tpw_now() - t0;
    ck_assert_double_ge(took, 0.25);
    tp_node_stats s = stats();
    ck_assert_uint_eq(s.handshakes_timed_out, 2);
    ck_assert_uint_eq(s.auth_failures, 0);
    // The witness, up since before, is not subject to it.
    still_serving();
    ck_assert_uint_eq(stats().handshakes_timed_out, 2);
    stop();
}
END_TEST

// ---- the node as initiator -------------------------------------------------

// The node dials a fake acceptor listening here. Returns the accepted
// socket and the node's HELLO nonce; checks the HELLO.
static int
accept_hello(int lfd, uint8_t *nonce_a)
{
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, TPW_WAIT_MS), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    tpw_bytes in;
    ck_assert(tpw_read_frame(fd, &in));
    msgpack_unpacked u;
    msgpack_object *f = tpw_envelope(&u, &in, TPW_F_HELLO, 5);
    ck_assert_uint_eq(f[1].via.u64, TPW_VSN);
    char who[TP_NODE_NAME_MAX];
    tpw_field_str(&f[2], who, sizeof who);
    ck_assert_str_eq(who, node.t.name);
    ck_assert_uint_eq(f[3].via.u64, node.t.inc);
    tpw_field_bin(&f[4], TPW_NONCE, nonce_a);
    msgpack_unpacked_destroy(&u);
    return fd;
}

static void
send_challenge(int fd, const char *me, const uint8_t *nb, const uint8_t *mac)
{
    tpw_bytes env = {.len = 0}, fr = {.len = 0};
    tpw_env_hello(&env, TPW_F_CHALLENGE, TPW_VSN, me, strlen(me), 11, nb, mac);
    tpw_put_frame(&fr, env.p, env.len);
    send_bytes(fd, &fr);
}

START_TEST(fake_acceptor)
{
    start(NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char me[64];
    snprintf(me, sizeof me, "fake@127.0.0.1:%u", ntohs(sa.sin_port));
    ck_assert_int_eq(tp_node_connect(node.sys, me, 0), 0);
    uint8_t na[TPW_NONCE], nb[TPW_NONCE], mac[TPW_MAC];
    tpw_nonce(nb);
    // First attempt: a proof one bit off.
    int fd = accept_hello(lfd, na);
    tpw_proof(mac, 'b', na, nb, node.t.name, me, node.t.inc, 11);
    mac[0] ^= 0x80;
    send_challenge(fd, me, nb, mac);
    ck_assert(tpw_closed(fd, NULL));
    ck_assert_uint_eq(stats().auth_failures, 1);
    // Second: an honest acceptor under another name.
    fd = accept_hello(lfd, na);
    const char *other = "other@127.0.0.1:5";
    tpw_proof(mac, 'b', na, nb, node.t.name, other, node.t.inc, 11);
    send_challenge(fd, other, nb, mac);
    ck_assert(tpw_closed(fd, NULL));
    ck_assert_uint_eq(stats().auth_failures, 2);
    // Third: honest. The node's REPLY carries the initiator's proof.
    fd = accept_hello(lfd, na);
    tpw_proof(mac, 'b', na, nb, node.t.name, me, node.t.inc, 11);
    send_challenge(fd, me, nb, mac);
    tpw_bytes in;
    ck_assert(tpw_read_frame(fd, &in));
    msgpack_unpacked u;
    msgpack_object *f = tpw_envelope(&u, &in, TPW_F_REPLY, 2);
    uint8_t got[TPW_MAC], want[TPW_MAC];
    tpw_field_bin(&f[1], TPW_MAC, got);
    msgpack_unpacked_destroy(&u);
    tpw_proof(want, 'a', na, nb, node.t.name, me, node.t.inc, 11);
    ck_assert(memcmp(got, want, TPW_MAC) == 0);
    tpw_bytes fr = {.len = 0};
    tpw_put_hex(&fr, "00 00 00 02 91 04");
    send_bytes(fd, &fr);
    tp_peer_info pi[4];
    int up = 0;
    for (int i = 0; i < TPW_WAIT_MS && up == 0; i++) {
        int n = tp_node_peers(node.sys, pi, 4);
        for (int j = 0; j < n && j < 4; j++)
            up |= strcmp(pi[j].node, me) == 0 && pi[j].state == TP_PEER_UP;
        tpt_nap_us(1000);
    }
    ck_assert(up);
    ck_assert_int_eq(tp_node_disconnect(node.sys, me), 0);
    ck_assert(tpw_closed(fd, NULL));
    close(lfd);
    ck_assert_uint_eq(stats().frames_rejected, 0);
    stop();
}
END_TEST

static void
tls_on(void)
{
    tpw_tls(tpn_cert("ca", "pem"), tpn_cert("a", "pem"), tpn_cert("a", "key"));
}

Suite *
wire_suite(void)
{
    // The byte-level tests, run plain and again over TLS: what reaches the
    // decoder is the same, through another layer.
    const TTest *bytes[] = {
        send_before_handshake,
        replayed_handshake_refused,
        wrong_mac_refused,
        wrong_version_refused,
        bad_node_name_refused,
        truncated_send_closed,
        split_send_delivered,
        frame_lengths,
        send_then_bad_length,
        nested_arrays_closed,
        malformed_envelopes_closed,
        extension_types_closed,
        trailing_bytes_closed,
        unknown_frame_types_closed,
        handshake_frame_after_auth,
        harmless_frames_kept,
        unauthenticated_cap,
        handshake_timeout,
        reply_flag_without_request_counts,
    };
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("wire");
    tcase_set_timeout(tc, 60);
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        tcase_add_test(tc, bytes[i]);
    // Plain only: the flood's connections are raw TCP on purpose, and the
    // fake acceptor would have to be a TLS server.
    tcase_add_test(tc, reconnecting_flood_does_not_lock_peers_out);
    tcase_add_test(tc, hello_flood_does_not_lock_peers_out);
    tcase_add_test(tc, paused_peer_gets_back_in_during_flood);
    tcase_add_test(tc, fake_acceptor);
    suite_add_tcase(s, tc);
    tc = tcase_create("wire-tls");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, tpn_certs_make, tpn_certs_remove);
    tcase_add_checked_fixture(tc, tls_on, NULL);
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        tcase_add_test(tc, bytes[i]);
    suite_add_tcase(s, tc);
    return s;
}
