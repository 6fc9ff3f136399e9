// SPDX-License-Identifier: MIT
// libFuzzer target for what a peer can send a node (`make fuzz`). Each
// input is used twice. First tp__wire_decode reads it whole as one
// envelope, then each length-prefixed frame in it: whatever the decoder
// accepts must lie inside its input and come back unchanged from the
// encoder. Then a real node, started once in this process on loopback,
// receives it: bit 0 of the first byte says whether the harness completes
// a valid handshake first, bit 1 whether it addresses the frames to a live
// actor (aim), and the rest is written to the connection; the writing side
// is shut, and the harness reads until the node closes the connection.
// Delivered messages go to an actor that unpacks their payload and echoes
// them, so the answer path runs too.
#include "dist/wire.h"

#include <troupe.h>
#include <troupe/msgpack.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// Sorts before the node's name, so a connection from the harness wins
// over the node's own attempts to reach it (port 1: nobody listens).
#define PEER "a-fuzzer@127.0.0.1:1"
#define PEER_INC 7u
#define WAIT_MS 2000

static const char secret[] = "fuzz-wire-secret-0123456789abcdef-0123456789";

static tp_system *sys;
static char node_name[TP_NODE_NAME_MAX];
static uint32_t node_inc;
static uint16_t node_port;
static unsigned long failed_handshakes;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_wire: %s:%d: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

// The length prefix of a frame.
static size_t
be32(const uint8_t *h)
{
    return (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
}

// ---- the decoder against the encoder ---------------------------------------

static void
check_inside(const uint8_t *p, size_t n, const uint8_t *q, size_t len)
{
    if (q != NULL)
        CHECK(q >= p && len <= n && (size_t)(q - p) <= n - len);
}

// A decoded str field as a C string, in `buf`; NULL when it holds a NUL,
// which the encoders' C strings cannot carry.
static const char *
cstr(char *buf, const uint8_t *p, size_t n)
{
    if (n > 0 && memchr(p, 0, n) != NULL)
        return NULL;
    if (n > 0)
        memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

// Encodes `f` again with the library's builders into `b`. Returns the
// frame's length, or 0 for a frame the builders cannot express (a NUL in
// a string, a protocol version other than theirs).
static size_t
encode_again(const tp__frame *f, tp__wbuf *b)
{
    char name[TP__WIRE_NODE_MAX + 1], text[TP__WIRE_TEXT_MAX + 1];
    const char *n = cstr(name, f->name, f->name_len);
    const char *t = cstr(text, f->text, f->text_len);
    if (n == NULL || t == NULL)
        return 0;
    tp__wbuf_reserve(b, TP__WIRE_SEND_MAX(f->payload_len) + 256);
    CHECK(!b->failed);
    uint8_t *o = b->p;
    switch (f->type) {
    case TP__F_HELLO:
    case TP__F_CHALLENGE:
        if (f->vsn != TP__WIRE_VERSION)
            return 0;
        tp__wire_hello(b, (int)f->type, n, f->inc, f->nonce, f->mac);
        return b->len;
    case TP__F_REPLY:
        tp__wire_reply(b, f->mac);
        return b->len;
    case TP__F_ACCEPT:
        tp__wire_simple(b, TP__F_ACCEPT);
        return b->len;
    case TP__F_REFUSE:
        tp__wire_refuse(b, t);
        return b->len;
    case TP__F_PING:
    case TP__F_PONG:
        tp__wire_ping(b, (int)f->type, f->stamp);
        return b->len;
    case TP__F_SEND:
        return tp__wire_send(o, f->to_inc, f->to, f->from, f->tag, f->ref,
                             f->flags, f->payload, f->payload_len);
    case TP__F_SEND_NAME:
        return tp__wire_send_name(o, n, f->from, f->tag, f->ref, f->flags,
                                  f->payload, f->payload_len);
    }
    return tp__wire_signal(o, (int)f->type, f->to_inc, f->to, f->from, f->ref,
                           f->reason, f->linked, t);
}

static bool
same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void
check_same(const tp__frame *f, const tp__frame *g)
{
    CHECK(g->type == f->type && g->to_inc == f->to_inc && g->to == f->to &&
          g->from == f->from && g->ref == f->ref && g->stamp == f->stamp &&
          g->tag == f->tag && g->flags == f->flags && g->reason == f->reason &&
          g->linked == f->linked && g->inc == f->inc);
    CHECK(same_bytes(g->name, g->name_len, f->name, f->name_len));
    CHECK(same_bytes(g->text, g->text_len, f->text, f->text_len));
    CHECK(same_bytes(g->payload, g->payload_len, f->payload, f->payload_len));
    CHECK((g->nonce == NULL) == (f->nonce == NULL));
    CHECK(g->nonce == NULL || memcmp(g->nonce, f->nonce, TP__WIRE_NONCE) == 0);
    CHECK((g->mac == NULL) == (f->mac == NULL));
    CHECK(g->mac == NULL || memcmp(g->mac, f->mac, TP__WIRE_MAC) == 0);
}

static void
check_envelope(const uint8_t *p, size_t n)
{
    tp__frame f;
    if (tp__wire_decode(p, n, &f) != TP__W_OK)
        return;
    check_inside(p, n, f.name, f.name_len);
    check_inside(p, n, f.text, f.text_len);
    check_inside(p, n, f.payload, f.payload_len);
    check_inside(p, n, f.nonce, TP__WIRE_NONCE);
    check_inside(p, n, f.mac, TP__WIRE_MAC);
    CHECK(f.name_len <= TP__WIRE_NODE_MAX && f.text_len <= TP__WIRE_TEXT_MAX);
    tp__wbuf b = {0};
    size_t len = encode_again(&f, &b);
    if (len > 0) {
        CHECK(len >= 5 && len <= b.cap);
        uint32_t prefix = (uint32_t)b.p[0] << 24 | (uint32_t)b.p[1] << 16 |
                          (uint32_t)b.p[2] << 8 | b.p[3];
        CHECK(prefix == len - 4);
        tp__frame g;
        CHECK(tp__wire_decode(b.p + 4, len - 4, &g) == TP__W_OK);
        check_same(&f, &g);
        if (f.type == TP__F_SEND)
            CHECK(len == tp__wire_send_size(f.to_inc, f.to, f.from, f.tag,
                                            f.ref, f.flags, f.payload_len));
    }
    tp__wbuf_free(&b);
}

// The whole input as one envelope, then each frame of the stream part.
static void
decode_all(const uint8_t *data, size_t size)
{
    check_envelope(data, size);
    size_t off = 1;
    while (size > off && size - off >= 4 &&
           be32(data + off) <= size - off - 4) {
        size_t len = be32(data + off);
        check_envelope(data + off + 4, len);
        off += 4 + len;
    }
}

// ---- the node --------------------------------------------------------------

static int
sink_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    tp_trap_exit(ctx, true);
    return 0;
}

static int
sink_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag >= TP_TAG_RESERVED)
        return TP_OK;
    msgpack_unpacked u;
    if (tp_msg_unpack(msg, &u) == 0)
        msgpack_unpacked_destroy(&u);
    if (!tp_pid_is_nil(msg->from))
        tp_send(ctx, msg->from, msg->tag, msg->data, msg->size);
    return TP_OK;
}

static const tp_behaviour sink_b = {
    .name = "sink", .init = sink_init, .handle = sink_handle};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Each input gets a sink of its own, killed once the input is done, so
// that what one input does to it (links, monitors, signals) never carries
// over to the next: a finding replays from its input alone.
static tp_pid
sink_start(void)
{
    tp_pid p;
    CHECK(tp_spawn(sys, &sink_b, NULL, &(tp_spawn_opts){.name = "sink"}, &p) ==
          0);
    return p;
}

// Kills the sink, unless a frame did, and waits until it is gone.
static void
sink_stop(tp_pid sink)
{
    tp_pid p;
    tp_system_exit(sys, sink, TP_REASON_KILL);
    double end = now_s() + WAIT_MS / 1000.0;
    while (tp_whereis(sys, "sink", &p) == 0) {
        CHECK(now_s() < end); // the sink is stuck: it never takes the kill
        nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

static void
quiet(void *userdata, int level, const char *origin, const char *line)
{
    (void)userdata;
    (void)level;
    (void)origin;
    (void)line;
}

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_wire: %s: %s\n", what, strerror(errno));
    exit(1);
}

// Writes the secret to a private temporary file the node loads, then
// removes it.
static void
start_node(void)
{
    char dir[] = "/tmp/fuzz-wire-XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    char path[64];
    snprintf(path, sizeof path, "%s/secret", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, secret, strlen(secret)) != (ssize_t)strlen(secret))
        die("secret file");
    close(fd);
    if (tp_system_new(&(tp_config){.threads = 1, .log = quiet}, &sys) != 0 ||
        tp_system_start(sys) != 0)
        die("system");
    tp_node_config nc = {.name = "fuzz",
                         .secret_file = path,
                         .max_frame = 65536,
                         .heartbeat_ms = 1000,
                         .timeout_ms = 60000,
                         .reconnect_max_ms = 100};
    int rc = tp_node_start(sys, &nc);
    unlink(path);
    rmdir(dir);
    if (rc != 0) {
        fprintf(stderr, "fuzz_wire: node: %s\n", tp_strerror(rc));
        exit(1);
    }
    snprintf(node_name, sizeof node_name, "%s", tp_node_name(sys));
    node_inc = tp_node_incarnation(sys);
    node_port = (uint16_t)atoi(strrchr(node_name, ':') + 1);
}

// ---- a connection ----------------------------------------------------------

static int
dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(node_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool
ready(int fd, short events)
{
    struct pollfd pf = {.fd = fd, .events = events};
    int r;
    do
        r = poll(&pf, 1, WAIT_MS);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

// Writes what the node takes; stops when it has closed the connection.
static bool
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!ready(fd, POLLOUT))
            return false;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool
read_n(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!ready(fd, POLLIN))
            return false;
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

// Reads one frame and decodes it into `f` (pointing into `buf`).
static bool
read_frame(int fd, uint8_t *buf, size_t size, tp__frame *f)
{
    uint8_t h[4];
    if (!read_n(fd, h, 4))
        return false;
    size_t len = be32(h);
    return len <= size && read_n(fd, buf, len) &&
           tp__wire_decode(buf, len, f) == TP__W_OK;
}

// The initiator's side of a handshake, as PEER.
static bool
handshake(int fd)
{
    uint8_t na[TP__WIRE_NONCE] = {1, 2, 3}, mac[TP__WIRE_MAC];
    uint8_t in[1024];
    tp__frame f;
    tp__wbuf b = {0};
    tp__wire_hello(&b, TP__F_HELLO, PEER, PEER_INC, na, NULL);
    bool ok = !b.failed && write_all(fd, b.p, b.len) &&
              read_frame(fd, in, sizeof in, &f) && f.type == TP__F_CHALLENGE &&
              tp__wire_mac(mac, (const uint8_t *)secret, strlen(secret), 'a',
                           na, f.nonce, PEER, node_name, PEER_INC, node_inc);
    if (ok) {
        b.len = 0;
        tp__wire_reply(&b, mac);
        ok = !b.failed && write_all(fd, b.p, b.len) &&
             read_frame(fd, in, sizeof in, &f) && f.type == TP__F_ACCEPT;
    }
    tp__wbuf_free(&b);
    return ok;
}

// Appends `f` to `b` addressed to `to` in this life of the node. Returns
// false for a frame that names nobody or whose text cannot be rebuilt.
static bool
readdress(tp__wbuf *b, const tp__frame *f, tp_pid to)
{
    char text[TP__WIRE_TEXT_MAX + 1];
    if (f->type == TP__F_SEND) {
        tp__wbuf_reserve(b, TP__WIRE_SEND_MAX(f->payload_len));
        if (b->failed)
            return false;
        b->len += tp__wire_send(b->p + b->len, node_inc, to.v, f->from, f->tag,
                                f->ref, f->flags, f->payload, f->payload_len);
        return true;
    }
    if (f->type < TP__F_LINK || f->type > TP__F_DOWN ||
        (f->text_len > 0 && memchr(f->text, 0, f->text_len) != NULL))
        return false;
    if (f->text_len > 0)
        memcpy(text, f->text, f->text_len);
    text[f->text_len] = 0;
    tp__wbuf_reserve(b, TP__WIRE_SIG_MAX);
    if (b->failed)
        return false;
    b->len += tp__wire_signal(b->p + b->len, (int)f->type, node_inc, to.v,
                              f->from, f->ref, f->reason, f->linked, text);
    return true;
}

// With bit 1 of the mode byte, each well-formed SEND and signal frame of
// the input is addressed to the sink in this life of the node, which
// random bytes would hardly ever hit; everything else stays as it is.
static void
aim(tp__wbuf *out, const uint8_t *in, size_t n, tp_pid to)
{
    size_t off = 0;
    while (n - off >= 4 && be32(in + off) <= n - off - 4) {
        size_t len = be32(in + off);
        tp__frame f;
        if (tp__wire_decode(in + off + 4, len, &f) != TP__W_OK ||
            !readdress(out, &f, to)) {
            tp__wbuf_reserve(out, 4 + len);
            if (out->failed)
                return;
            memcpy(out->p + out->len, in + off, 4 + len);
            out->len += 4 + len;
        }
        off += 4 + len;
    }
    tp__wbuf_reserve(out, n - off);
    if (!out->failed && n > off) {
        memcpy(out->p + out->len, in + off, n - off);
        out->len += n - off;
    }
}

// Reads until the node closes the connection. The harness has shut its
// side already, so a node that holds on to it for seconds is stuck.
static void
drain(int fd)
{
    uint8_t buf[4096];
    double end = now_s() + 2.5 * WAIT_MS / 1000.0;
    for (;;) {
        CHECK(now_s() < end); // the node keeps a connection its peer ended
        if (!ready(fd, POLLIN))
            continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno != EINTR))
            return;
    }
}

// Now and then: the process holds only the sockets of live connections,
// so neither the harness nor the node leaks descriptors.
static void
check_fds(void)
{
    static unsigned long runs;
    if (++runs % 4096 != 0)
        return;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    CHECK(n < 256);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    start_node();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_all(data, size);
    if (size == 0)
        return 0;
    int fd = dial();
    if (fd < 0)
        return 0;
    tp_pid sink = sink_start();
    if ((data[0] & 1) && !handshake(fd)) {
        // Only while the node still holds an earlier connection of PEER.
        // Say so now and then: inputs then miss the authenticated path.
        if (failed_handshakes++ % 1000 == 0)
            fprintf(stderr, "fuzz_wire: %lu handshakes failed\n",
                    failed_handshakes);
    } else if (data[0] & 2) {
        tp__wbuf b = {0};
        aim(&b, data + 1, size - 1, sink);
        if (!b.failed)
            write_all(fd, b.p, b.len);
        tp__wbuf_free(&b);
    } else {
        write_all(fd, data + 1, size - 1);
    }
    shutdown(fd, SHUT_WR);
    drain(fd);
    close(fd);
    sink_stop(sink);
    check_fds();
    return 0;
}
