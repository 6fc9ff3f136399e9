// SPDX-License-Identifier: MIT
// Actors that serve sockets: an echo server of one acceptor and one actor
// per connection, driven by plain sockets from the test thread.
#include "tp_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static _Atomic long accepted, conn_bytes, conn_closed, conn_closed_err;
static _Atomic int gate = 1;
static _Atomic uint16_t port;
static _Atomic long api_checks;
static tp_pid conn_pid;

// What "last" makes a connection send before it crashes: more than the
// kernel takes at once, so some of it is still queued when the actor dies.
#define LAST_WORDS ((size_t)3 << 20)
static char last_words[LAST_WORDS];

enum { TAG_NAP_THEN_CRASH = 77 };
static _Atomic long slow_queued; // the nap is queued: data comes after it

// One connection: echoes what it reads; "die" crashes it, "bye" closes,
// "last" sends a short line and LAST_WORDS bytes, then crashes; "slow"
// does the same but crashes in its next message, 300 ms later.
static int
conn_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TP_TAG_SOCK_DATA) {
        while (!atomic_load(&gate))
            tpt_nap_us(500);
        atomic_fetch_add(&conn_bytes, (long)msg->size);
        if (msg->size >= 3 && memcmp(msg->data, "die", 3) == 0)
            return TP_ECRASH;
        bool slow = msg->size >= 4 && memcmp(msg->data, "slow", 4) == 0;
        if (slow || (msg->size >= 4 && memcmp(msg->data, "last", 4) == 0)) {
            if (tp_sock_send(ctx, msg->ref, "OK\n", 3) != 0 ||
                tp_sock_send(ctx, msg->ref, last_words, LAST_WORDS) != 0)
                return TP_EINVAL;
            if (!slow)
                return TP_ECRASH;
            int rc = tp_send(ctx, tp_self(ctx), TAG_NAP_THEN_CRASH, NULL, 0);
            atomic_store(&slow_queued, 1);
            return rc;
        }
        if (msg->size >= 3 && memcmp(msg->data, "bye", 3) == 0)
            return tp_sock_close(ctx, msg->ref) == 0 ? TP_OK : TP_EINVAL;
        int rc = tp_sock_send(ctx, msg->ref, msg->data, msg->size);
        return rc == 0 || rc == TP_EFULL ? TP_OK : rc;
    }
    if (msg->tag == TAG_NAP_THEN_CRASH) {
        tpt_nap_us(300000); // the peer's data fills our window meanwhile
        return TP_ECRASH;
    }
    if (msg->tag == TP_TAG_SOCK_CLOSED) {
        int32_t e;
        memcpy(&e, msg->data, sizeof e);
        atomic_store(&conn_closed_err, e);
        atomic_fetch_add(&conn_closed, 1);
        return TP_STOP;
    }
    return TP_OK;
}

static const tp_behaviour conn_b = {.name = "conn", .handle = conn_handle};

// The acceptor: listens in init, hands each connection to a new actor.
static int
acceptor_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)arg;
    uint16_t p = 0;
    int rc = tp_sock_listen(ctx, "127.0.0.1:0", state, &p);
    atomic_store(&port, p);
    return rc;
}

static int
acceptor_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != TP_TAG_SOCK_ACCEPTED)
        return TP_OK;
    const tp_sock_accepted *a = msg->data;
    tp_pid c;
    int rc = tp_spawn(tp_ctx_system(ctx), &conn_b, NULL, NULL, &c);
    if (rc != 0)
        return rc;
    conn_pid = c;
    if ((rc = tp_sock_give(ctx, a->sock, c)) != 0)
        return rc;
    // Once given away, it is no longer ours.
    if (tp_sock_send(ctx, a->sock, "x", 1) == TP_EPERM &&
        tp_sock_close(ctx, a->sock) == TP_EPERM &&
        tp_sock_send(ctx, 12345, "x", 1) == TP_ENOENT)
        atomic_fetch_add(&api_checks, 1);
    atomic_fetch_add(&accepted, 1);
    return TP_OK;
}

static const tp_behaviour acceptor_b = {.name = "acceptor",
                                        .state_size = sizeof(tp_sock),
                                        .init = acceptor_init,
                                        .handle = acceptor_handle};

static void
reset(void)
{
    accepted = conn_bytes = conn_closed = api_checks = 0;
    conn_closed_err = 12345;
    atomic_store(&gate, 1);
    atomic_store(&port, 0);
}

static int
dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(atomic_load(&port))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

// Reads until `n` bytes came or EOF; returns how many.
static size_t
read_upto(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static bool
closed_by_peer(int fd)
{
    char c;
    struct pollfd pf = {fd, POLLIN, 0};
    return poll(&pf, 1, 10000) > 0 && read(fd, &c, 1) == 0;
}

START_TEST(echo_and_close)
{
    reset();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    ck_assert_uint_ne(atomic_load(&port), 0);
    int fd = dial();
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    char buf[16];
    ck_assert_uint_eq(read_upto(fd, buf, 5), 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert_int_eq(atomic_load(&accepted), 1);
    ck_assert(tpt_wait_ge(&api_checks, 1, 10));
    // The actor closes: we see EOF, it gets no CLOSED of its own.
    ck_assert_int_eq(write(fd, "bye", 3), 3);
    ck_assert(closed_by_peer(fd));
    close(fd);
    // The peer closes: the owner is told, with no error.
    fd = dial();
    ck_assert_int_eq(write(fd, "ping", 4), 4);
    ck_assert_uint_eq(read_upto(fd, buf, 4), 4);
    close(fd);
    ck_assert(tpt_wait_ge(&conn_closed, 1, 10));
    ck_assert_int_eq(atomic_load(&conn_closed_err), 0);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(owner_death_closes)
{
    reset();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    int fd = dial();
    ck_assert_int_eq(write(fd, "die", 3), 3);
    ck_assert(closed_by_peer(fd));
    close(fd);
    // Killed from outside, too.
    fd = dial();
    ck_assert_int_eq(write(fd, "hi", 2), 2);
    char buf[4];
    ck_assert_uint_eq(read_upto(fd, buf, 2), 2);
    ck_assert_int_eq(tp_system_exit(sys, conn_pid, TP_REASON_KILL), 0);
    ck_assert(closed_by_peer(fd));
    close(fd);
    tp_system_destroy(&sys);
}
END_TEST

static void
fill_last_words(void)
{
    for (size_t i = 0; i < LAST_WORDS; i++)
        last_words[i] = (char)('a' + i % 23);
}

// Reads from `fd` to its end: "OK\n" and LAST_WORDS, all of it, no more.
static void
expect_last_words(int fd)
{
    size_t want = 3 + LAST_WORDS;
    char *buf = malloc(want + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(read_upto(fd, buf, want + 1), want);
    ck_assert_int_eq(memcmp(buf, "OK\n", 3), 0);
    ck_assert_int_eq(memcmp(buf + 3, last_words, LAST_WORDS), 0);
    free(buf);
}

// What an owner sent before it died still goes out, in order, whole, and
// then the connection closes: a short reply at once, and megabytes the
// kernel could not take before the owner was gone.
START_TEST(owner_death_flushes_what_it_sent)
{
    reset();
    fill_last_words();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    for (int round = 0; round < 20; round++) {
        int fd = dial();
        ck_assert_int_eq(write(fd, "last", 4), 4);
        if (round == 0)
            tpt_nap_us(100000); // the actor is gone before we read
        expect_last_words(fd);
        close(fd);
    }
    tp_system_destroy(&sys);
}
END_TEST

// The same while the peer keeps sending: the owner dies with a window of
// data messages queued, which it never handles, and input keeps coming
// while the connection closes. Neither may cost the peer what was sent:
// the closing connection reads no more for its owner (it would be gone),
// and it drops the peer's input until the peer closes, rather than
// closing with input unread, which makes the kernel reset the connection.
static int flood_fd;

static void *
flood(void *arg)
{
    (void)arg;
    static char junk[65536];
    for (int i = 0; i < 64; i++)
        if (send(flood_fd, junk, sizeof junk, MSG_NOSIGNAL) <= 0)
            break;
    shutdown(flood_fd, SHUT_WR);
    return NULL;
}

START_TEST(owner_death_with_input_flowing)
{
    reset();
    fill_last_words();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 8192; // so that most of what the actor sends stays queued
    ck_assert_int_eq(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(atomic_load(&port))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    atomic_store(&slow_queued, 0);
    ck_assert_int_eq(write(fd, "slow", 4), 4);
    ck_assert(tpt_wait_ge(&slow_queued, 1, 10));
    flood_fd = fd;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, flood, NULL), 0);
    tpt_nap_us(600000); // the actor has crashed by now
    expect_last_words(fd);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    close(fd);
    tp_system_destroy(&sys);
}
END_TEST

// A slow owner does not get flooded: its mailbox holds at most the window
// while the client's writes back up.
START_TEST(flow_control)
{
    reset();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    int fd = dial();
    ck_assert_int_eq(write(fd, "a", 1), 1);
    char c;
    ck_assert_uint_eq(read_upto(fd, &c, 1), 1);
    atomic_store(&gate, 0); // the connection actor blocks on its next data
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    long wrote = 0;
    for (int stalls = 0; stalls < 200;) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w > 0) {
            wrote += w;
            stalls = 0;
            continue;
        }
        ck_assert(errno == EAGAIN);
        stalls++;
        tpt_nap_us(2000); // polls for a full pipe; not a synchronisation
    }
    tp_actor_stats st;
    ck_assert_int_eq(tp_actor_stats_get(sys, conn_pid, &st), 0);
    ck_assert_uint_le(st.length, TP_SOCK_WINDOW + 1);
    ck_assert_int_gt(wrote, TP_SOCK_WINDOW * TP_SOCK_READ_MAX);
    // Let it go: everything arrives (and is echoed; drain the echo).
    atomic_store(&gate, 1);
    long want = wrote + 1;
    static char sink[65536];
    for (int i = 0; i < 20000 && atomic_load(&conn_bytes) < want; i++) {
        while (read(fd, sink, sizeof sink) > 0)
            ;
        tpt_nap_us(500);
    }
    ck_assert_int_eq(atomic_load(&conn_bytes), want);
    close(fd);
    tp_system_destroy(&sys);
}
END_TEST

// ---- the client side and bad calls
// ------------------------------------------

static _Atomic long client_connected, client_refused, client_err;

static int
client_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == 1) {
        tp_sock s;
        char addr[32];
        snprintf(addr, sizeof addr, "%.*s", (int)msg->size,
                 (const char *)msg->data);
        return tp_sock_connect(ctx, addr, &s);
    }
    if (msg->tag == TP_TAG_SOCK_CONNECTED) {
        atomic_fetch_add(&client_connected, 1);
        tp_sock_send(ctx, msg->ref, "hello", 5);
    } else if (msg->tag == TP_TAG_SOCK_DATA) {
        if (msg->size == 5 && memcmp(msg->data, "hello", 5) == 0)
            tp_sock_close(ctx, msg->ref);
        // After close the handle is dead for everything.
        if (tp_sock_send(ctx, msg->ref, "x", 1) == TP_ENOENT)
            atomic_fetch_add(&client_connected, 10);
    } else if (msg->tag == TP_TAG_SOCK_CLOSED) {
        int32_t e;
        memcpy(&e, msg->data, sizeof e);
        atomic_store(&client_err, e);
        atomic_fetch_add(&client_refused, 1);
    }
    return TP_OK;
}

static const tp_behaviour client_b = {.name = "client",
                                      .handle = client_handle};

START_TEST(client_connects)
{
    reset();
    client_connected = client_refused = client_err = 0;
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    tp_pid cl;
    ck_assert_int_eq(tp_spawn(sys, &client_b, NULL, NULL, &cl), 0);
    char addr[32];
    int n = snprintf(addr, sizeof addr, "127.0.0.1:%u", atomic_load(&port));
    ck_assert_int_eq(tp_system_send(sys, cl, 1, addr, (size_t)n), 0);
    ck_assert(tpt_wait_ge(&client_connected, 11, 10));
    // Nothing listens on port 1: CLOSED with the error.
    ck_assert_int_eq(tp_system_send(sys, cl, 1, "127.0.0.1:1", 11), 0);
    ck_assert(tpt_wait_ge(&client_refused, 1, 10));
    ck_assert_int_eq(atomic_load(&client_err), -ECONNREFUSED);
    // Outside any actor, and bad arguments.
    ck_assert_int_eq(tp_sock_send(NULL, 1, "x", 1), TP_EINVAL);
    tp_sock s;
    ck_assert_int_eq(tp_sock_listen(NULL, "127.0.0.1:0", &s, NULL), TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

// Connects, sends and closes in one callback, before the connection is
// up: what it sent still arrives, then the end of the stream.
static int
hasty_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    char addr[32];
    snprintf(addr, sizeof addr, "%.*s", (int)msg->size,
             (const char *)msg->data);
    tp_sock s;
    int rc = tp_sock_connect(ctx, addr, &s);
    if (rc == 0)
        rc = tp_sock_send(ctx, s, "hasty hello", 11);
    if (rc == 0)
        rc = tp_sock_close(ctx, s);
    return rc == 0 ? TP_STOP : rc;
}

static const tp_behaviour hasty_b = {.name = "hasty", .handle = hasty_handle};

START_TEST(close_while_connecting_sends)
{
    tp_system *sys = tpt_system(2);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    char addr[32];
    int n = snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(sa.sin_port));
    for (int round = 0; round < 10; round++) {
        tp_pid h;
        ck_assert_int_eq(tp_spawn(sys, &hasty_b, NULL, NULL, &h), 0);
        ck_assert_int_eq(tp_system_send(sys, h, 1, addr, (size_t)n), 0);
        struct pollfd pf = {l, POLLIN, 0};
        ck_assert_int_eq(poll(&pf, 1, 10000), 1);
        int fd = accept(l, NULL, NULL);
        ck_assert_int_ge(fd, 0);
        char buf[32];
        ck_assert_uint_eq(read_upto(fd, buf, sizeof buf), 11);
        ck_assert_int_eq(memcmp(buf, "hasty hello", 11), 0);
        close(fd);
    }
    close(l);
    tp_system_destroy(&sys);
}
END_TEST

static _Atomic long bad_args_ok;

static int
bad_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    tp_sock s;
    if (tp_sock_listen(ctx, "nonsense", &s, NULL) == TP_EINVAL &&
        tp_sock_listen(ctx, "1.2.3.4.5:80", &s, NULL) == TP_EINVAL &&
        tp_sock_connect(ctx, "127.0.0.1:0", &s) == TP_EINVAL &&
        tp_sock_listen(ctx, "[::1", &s, NULL) == TP_EINVAL &&
        tp_sock_connect(ctx, "::1:80", &s) == TP_EINVAL &&
        // An address on no interface of this machine keeps its errno.
        tp_sock_listen(ctx, "192.0.2.1:0", &s, NULL) == TP_EADDRNOTAVAIL &&
        tp_sock_send(ctx, 0, "x", 1) == TP_ENOENT &&
        tp_sock_close(ctx, 77) == TP_ENOENT &&
        tp_sock_give(ctx, 77, tp_self(ctx)) == TP_ENOENT)
        atomic_store(&bad_args_ok, 1);
    return 0;
}

static const tp_behaviour bad_b = {
    .name = "bad", .init = bad_init, .handle = client_handle};

START_TEST(bad_arguments)
{
    tp_system *sys = tpt_system(1);
    bad_args_ok = 0;
    ck_assert_int_eq(tp_spawn(sys, &bad_b, NULL, NULL, NULL), 0);
    ck_assert_int_eq(atomic_load(&bad_args_ok), 1);
    tp_system_destroy(&sys);
}
END_TEST

typedef struct heap_below {
    size_t limit;
} heap_below;

static bool
heap_is_below(void *p)
{
    return tpt_heap_in_use() < ((heap_below *)p)->limit;
}

// What a connection read is freed once its owner has handled it: an idle
// owner keeps its last message as a lane's stub, and that must not keep a
// read buffer (up to 64 KiB) alive per connection.
START_TEST(handled_reads_freed)
{
    enum { N = 32 };
    reset();
    tp_system *sys = tpt_system(2);
    ck_assert_int_eq(tp_spawn(sys, &acceptor_b, NULL, NULL, NULL), 0);
    size_t before = tpt_heap_in_use();
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = dial();
        ck_assert_int_eq(write(fd[i], "a", 1), 1);
        char c;
        ck_assert_uint_eq(read_upto(fd[i], &c, 1), 1);
    }
    // Each connection costs its actor, its socket and an output buffer,
    // a few KiB at most; a kept read buffer alone would be 64 KiB.
    heap_below hb = {before + (size_t)N * 16384};
    bool freed = tpt_wait_until(heap_is_below, &hb, 10);
    ck_assert_msg(freed, "%zu bytes still allocated for %d idle connections",
                  tpt_heap_in_use() - before, N);
    for (int i = 0; i < N; i++)
        close(fd[i]);
    ck_assert(tpt_wait_ge(&conn_closed, N, 20));
    tp_system_destroy(&sys);
}
END_TEST

Suite *
sock_suite(void)
{
    Suite *s = suite_create("sock");
    TCase *tc = tcase_create("sock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_and_close);
    tcase_add_test(tc, handled_reads_freed);
    tcase_add_test(tc, owner_death_closes);
    tcase_add_test(tc, owner_death_flushes_what_it_sent);
    tcase_add_test(tc, owner_death_with_input_flowing);
    tcase_add_test(tc, flow_control);
    tcase_add_test(tc, client_connects);
    tcase_add_test(tc, close_while_connecting_sends);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
