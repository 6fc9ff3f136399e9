// SPDX-License-Identifier: MIT
// A node that misbehaves on purpose, for actorctl's robustness tests. It
// listens on one socket per behaviour in DIR, prints "ready" and serves
// until its standard input closes:
//
//   ctlfake DIR
//
//   good.sock      valid replies to every op, with hostile content: names
//                  holding escape sequences, quotes and bytes that are not
//                  UTF-8, a parent cycle, an actor that is its own parent,
//                  an orphan, two peers, two groups (one listed in
//                  part), a trace of two answers with every kind of
//                  event, one kind unknown and two events dropped
//   garbage.sock   a frame of bytes that are not msgpack
//   close.sock     reads the request, closes without a word
//   half.sock      announces 100 bytes, sends 10, closes
//   huge.sock      announces a 4 GiB frame
//   empty.sock     a frame of length 0
//   notmap.sock    an array instead of a map
//   bomb.sock      a map claiming 4 billion entries in a few bytes
//   deep.sock      arrays nested 200 deep
//   trailing.sock  a valid reply followed by a stray byte inside the frame
//   types.sock     a snapshot whose mailbox is a string
//   badpid.sock    a snapshot with a pid that is not one
//   noreason.sock  {"ok": false} without an error
//   denied.sock    {"ok": false, "error": "permission denied"}, then closes
//   silent.sock    reads the request and never answers
//   busy.sock      {"ok": false, "error": "too many clients (64): ..."},
//                  then closes, as a node serving its most clients does
#include <msgpack.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const modes[] = {
    "good",   "garbage", "close",    "half",  "huge",   "empty",
    "notmap", "bomb",    "trailing", "types", "badpid", "noreason",
    "denied", "silent",  "deep",     "busy",
};
#define NMODES (sizeof modes / sizeof modes[0])

static unsigned calls; // snapshots served, so counters move for top

static void
put_raw(int fd, const void *p, size_t n)
{
    if (send(fd, p, n, MSG_NOSIGNAL) < 0) {
        // The client went away: nothing to do.
    }
}

static void
put_frame(int fd, const void *p, size_t n)
{
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    put_raw(fd, h, 4);
    put_raw(fd, p, n);
}

static void
str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    str(pk, k);
    if (v == NULL)
        msgpack_pack_nil(pk);
    else
        str(pk, v);
}

static void
kv_u(msgpack_packer *pk, const char *k, uint64_t v)
{
    str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
ok(msgpack_packer *pk, size_t more)
{
    msgpack_pack_map(pk, 1 + more);
    str(pk, "ok");
    msgpack_pack_true(pk);
}

typedef struct fake_actor {
    const char *pid, *parent, *name, *behaviour, *status;
    uint64_t mailbox, handled, restarts;
    uint64_t start_order; // <0.3.1> before <0.2.1>, unlike their slots
} fake_actor;

static const fake_actor actors[] = {
    {"<0.1.1>", NULL, "root", "supervisor", "waiting", 0, 5, 0, 1},
    {"<0.2.1>", "<0.1.1>", "\033[2J\033[31mevil", "bad\xff\xfe", "runnable", 3,
     100, 2, 5},
    {"<0.3.1>", "<0.1.1>", "q\"uo\\te\ttab", "worker", "muted", 1000, 7, 0, 2},
    {"<0.4.1>", "<0.5.1>", "cycle_a", "worker", "waiting", 0, 0, 0, 3},
    {"<0.5.1>", "<0.4.1>", "cycle_b", "worker", "waiting", 0, 0, 0, 4},
    {"<0.6.1>", "<0.99.1>", "orphan", "worker", "exiting", 0, 0, 0, 6},
    {"<0.7.1>", "<0.7.1>", "", "self", "waiting", 0, 0, 0, 7},
};
#define NACTORS (sizeof actors / sizeof actors[0])

// `extra` more keys follow, packed by the caller.
static void
actor(msgpack_packer *pk, const fake_actor *a, size_t extra,
      const char *mailbox_type)
{
    msgpack_pack_map(pk, 14 + extra);
    kv_str(pk, "pid", a->pid);
    kv_str(pk, "parent", a->parent);
    kv_str(pk, "name", a->name);
    kv_str(pk, "behaviour", a->behaviour);
    kv_str(pk, "status", a->status);
    if (mailbox_type != NULL)
        kv_str(pk, "mailbox", mailbox_type);
    else
        kv_u(pk, "mailbox", a->mailbox);
    kv_u(pk, "capacity", 1024);
    kv_u(pk, "high_water", a->mailbox);
    // The busiest actor handles 50 messages per snapshot.
    kv_u(pk, "handled", a->handled + (a->handled == 100 ? 50 * calls : 0));
    kv_u(pk, "dropped", 0);
    kv_u(pk, "rejected", 0);
    kv_u(pk, "restarts", a->restarts);
    kv_u(pk, "age_ms", 90061000);
    kv_u(pk, "start_order", a->start_order);
}

static void
snapshot(msgpack_packer *pk, const char *mode)
{
    calls++;
    ok(pk, 4);
    kv_str(pk, "node", "fake@127.0.0.1:1");
    kv_u(pk, "uptime_ms", 1000 + 100 * calls);
    kv_u(pk, "threads", 2);
    str(pk, "actors");
    msgpack_pack_array(pk, NACTORS);
    for (size_t i = 0; i < NACTORS; i++) {
        fake_actor a = actors[i];
        if (strcmp(mode, "badpid") == 0 && i == 2)
            a.pid = "not-a-pid";
        actor(pk, &a, 0, strcmp(mode, "types") == 0 && i == 2 ? "lots" : NULL);
    }
}

static void
info(msgpack_packer *pk)
{
    ok(pk, 1);
    str(pk, "actor");
    actor(pk, &actors[1], 5, NULL);
    str(pk, "trap_exit");
    msgpack_pack_true(pk);
    str(pk, "links");
    msgpack_pack_array(pk, 2);
    str(pk, "<0.1.1>");
    str(pk, "<0.3.1>");
    str(pk, "monitors");
    msgpack_pack_array(pk, 0);
    str(pk, "monitored_by");
    msgpack_pack_array(pk, 1);
    str(pk, "<0.1.1>");
    kv_str(pk, "describe", "state=\033[31mred \xc3\xa9t\xc3\xa9");
}

static void
stats(msgpack_packer *pk)
{
    static const char *const keys[] = {
        "uptime_ms", "threads",      "actors",   "spawned",  "exited",
        "crashed",   "dead_letters", "timers",   "messages", "activations",
        "steals",    "sleeps",       "rss_bytes"};
    ok(pk, 15);
    kv_str(pk, "node", "fake@127.0.0.1:1");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        kv_u(pk, keys[i], i == 1 ? 2 : 1000 + i);
    str(pk, "workers");
    msgpack_pack_array(pk, 2);
    for (int w = 0; w < 2; w++) {
        msgpack_pack_map(pk, 4);
        kv_u(pk, "activations", 10 + w);
        kv_u(pk, "messages", 20 + w);
        kv_u(pk, "steals", 30 + w);
        kv_u(pk, "sleeps", 40 + w);
    }
}

static void
nodes(msgpack_packer *pk)
{
    static const char *const names[] = {"beta@127.0.0.1:4371",
                                        "gamma\033[5m@127.0.0.1:4372"};
    static const char *const states[] = {"up", "backoff"};
    ok(pk, 2);
    kv_str(pk, "node", "fake@127.0.0.1:1");
    str(pk, "peers");
    msgpack_pack_array(pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(pk, 9);
        kv_str(pk, "node", names[i]);
        kv_u(pk, "incarnation", 7 + i);
        kv_str(pk, "state", states[i]);
        kv_u(pk, "rtt_us", i ? 0 : 1500);
        kv_u(pk, "queued", 1);
        kv_u(pk, "sent", 2);
        kv_u(pk, "received", 3);
        kv_u(pk, "dropped", 4);
        kv_u(pk, "connects", 5);
    }
}

// A group listed in part (the node's cap) and one with a hostile name.
static void
groups(msgpack_packer *pk)
{
    static const char *const names[] = {"z\033[2Jpool", "q\"uo\\te"};
    static const char *const pids[] = {"<0.2.1>", "<0.3.1>", "<1.9.1>"};
    ok(pk, 2);
    kv_str(pk, "node", "fake@127.0.0.1:1");
    str(pk, "groups");
    msgpack_pack_array(pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(pk, 5);
        kv_str(pk, "name", names[i]);
        kv_u(pk, "local", i ? 1 : 2);
        kv_u(pk, "total", i ? 1 : 500);
        str(pk, "members");
        msgpack_pack_array(pk, i ? 1 : 3);
        for (int k = 0; k < (i ? 1 : 3); k++)
            str(pk, pids[k]);
        str(pk, "truncated");
        if (i)
            msgpack_pack_false(pk);
        else
            msgpack_pack_true(pk);
    }
}

// An event's seq, at_us and kind; `more` keys follow.
static void
event(msgpack_packer *pk, uint64_t seq, uint64_t at_us, const char *kind,
      size_t more)
{
    msgpack_pack_map(pk, 3 + more);
    kv_u(pk, "seq", seq);
    kv_u(pk, "at_us", at_us);
    kv_str(pk, "kind", kind);
}

static void
message(msgpack_packer *pk, const char *peer_key, const char *peer,
        uint32_t tag, uint32_t size)
{
    kv_str(pk, peer_key, peer);
    kv_u(pk, "tag", tag);
    kv_u(pk, "size", size);
}

// The first answer (to "trace"): four events, the trace running.
static void
trace_first(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    event(pk, 1, 412, "received", 4);
    message(pk, "from", "<0.3.1>", 7, 12);
    str(pk, "wait_us");
    msgpack_pack_int64(pk, 15);
    event(pk, 2, 415, "sent", 4);
    message(pk, "to", "<0.4.1>", 8, 4);
    kv_str(pk, "result", "TP_EFULL");
    event(pk, 3, 1002, "signal", 3);
    kv_str(pk, "from", "");
    kv_str(pk, "signal", "exit");
    kv_str(pk, "reason", "shutdown");
    event(pk, 4, 1100, "spawn", 2);
    kv_str(pk, "child", "<0.9.1>");
    kv_str(pk, "behaviour", "work\033[2Jer");
}

// The last (to "trace_next"): events 5 and 6 dropped, hostile texts, a
// kind actorctl does not know, the actor's exit.
static void
trace_last(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 5);
    event(pk, 7, 2100, "state", 1);
    kv_str(pk, "text", "locked -> \033[31mopen");
    event(pk, 8, 2200, "note", 1);
    kv_str(pk, "text", "q\"uo\\te\xff");
    event(pk, 9, 2300, "teleport", 1);
    kv_str(pk, "where", "\033]0;title\007");
    event(pk, 10, 2500, "received", 4);
    message(pk, "from", "", 1, 0);
    str(pk, "wait_us");
    msgpack_pack_int64(pk, -1);
    event(pk, 11, 3000, "exit", 1);
    kv_str(pk, "reason", "kill");
}

static void
trace(msgpack_packer *pk, bool first)
{
    ok(pk, 5);
    kv_str(pk, "pid", "<0.2.1>");
    str(pk, "events");
    if (first)
        trace_first(pk);
    else
        trace_last(pk);
    kv_u(pk, "recorded", first ? 4 : 9);
    kv_u(pk, "dropped", first ? 0 : 2);
    kv_str(pk, "end", first ? "running" : "exited");
}

static void
error(msgpack_packer *pk, const char *why)
{
    msgpack_pack_map(pk, why ? 2 : 1);
    str(pk, "ok");
    msgpack_pack_false(pk);
    if (why != NULL)
        kv_str(pk, "error", why);
}

// The op of a request, or "" for one that has none.
static void
request_op(const char *req, size_t n, char *op, size_t size)
{
    msgpack_unpacked u;
    size_t off = 0;
    op[0] = '\0';
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, req, n, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR &&
                kv->key.via.str.size == 2 &&
                memcmp(kv->key.via.str.ptr, "op", 2) == 0 &&
                kv->val.type == MSGPACK_OBJECT_STR)
                snprintf(op, size, "%.*s", (int)kv->val.via.str.size,
                         kv->val.via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&u);
}

// Reads one request frame (5 s at most). Returns its length or -1.
static long
read_request(int fd, char *buf, size_t max)
{
    unsigned char h[4];
    size_t need = 4, got = 0;
    char *dst = (char *)h;
    for (int part = 0; part < 2; part++) {
        while (got < need) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t r;
            if (poll(&p, 1, 5000) <= 0 ||
                (r = read(fd, dst + got, need - got)) <= 0)
                return -1;
            got += (size_t)r;
        }
        if (part == 0) {
            need = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
                   (size_t)h[2] << 8 | h[3];
            if (need == 0 || need > max)
                return -1;
            dst = buf, got = 0;
        }
    }
    return (long)need;
}

// Answers `op` on `fd` as `mode` does. Returns false to close.
static bool
answer(int fd, const char *mode, const char *op)
{
    static const unsigned char garbage[] = {0xc1, 0xc1, 'h', 'i', 0xc1};
    static const unsigned char bomb[] = {0xdf, 0xff, 0xff, 0xff, 0xff,
                                         0xa2, 'o',  'k',  0xc3};
    static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
    static const unsigned char half[] = {
        0, 0, 0, 100, 0x85, 0xa2, 'o', 'k', 0xc3, 0xa4, 'n', 'o', 'd', 'e'};
    static const unsigned char zero[] = {0, 0, 0, 0};
    unsigned char deep[201];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool keep = true;
    if (strcmp(mode, "good") == 0 || strcmp(mode, "types") == 0 ||
        strcmp(mode, "badpid") == 0 || strcmp(mode, "trailing") == 0) {
        if (strcmp(op, "snapshot") == 0)
            snapshot(&pk, mode);
        else if (strcmp(op, "info") == 0)
            info(&pk);
        else if (strcmp(op, "stats") == 0)
            stats(&pk);
        else if (strcmp(op, "nodes") == 0)
            nodes(&pk);
        else if (strcmp(op, "groups") == 0)
            groups(&pk);
        else if (strcmp(op, "kill") == 0)
            ok(&pk, 0);
        else if (strcmp(op, "trace") == 0 || strcmp(op, "trace_next") == 0)
            trace(&pk, strcmp(op, "trace") == 0);
        else
            error(&pk, "unknown op");
        if (strcmp(mode, "trailing") == 0)
            msgpack_pack_nil(&pk);
        put_frame(fd, sb.data, sb.size);
    } else if (strcmp(mode, "garbage") == 0) {
        put_frame(fd, garbage, sizeof garbage);
    } else if (strcmp(mode, "bomb") == 0) {
        put_frame(fd, bomb, sizeof bomb);
    } else if (strcmp(mode, "huge") == 0) {
        put_raw(fd, huge, sizeof huge);
        keep = false;
    } else if (strcmp(mode, "half") == 0) {
        put_raw(fd, half, sizeof half);
        keep = false;
    } else if (strcmp(mode, "empty") == 0) {
        put_raw(fd, zero, sizeof zero);
    } else if (strcmp(mode, "notmap") == 0) {
        msgpack_pack_array(&pk, 3);
        for (int i = 1; i <= 3; i++)
            msgpack_pack_int(&pk, i);
        put_frame(fd, sb.data, sb.size);
    } else if (strcmp(mode, "deep") == 0) {
        memset(deep, 0x91, 200);
        deep[200] = 0x01;
        put_frame(fd, deep, sizeof deep);
    } else if (strcmp(mode, "noreason") == 0) {
        error(&pk, NULL);
        put_frame(fd, sb.data, sb.size);
    } else if (strcmp(mode, "denied") == 0) {
        error(&pk, "permission denied");
        put_frame(fd, sb.data, sb.size);
        keep = false;
    } else if (strcmp(mode, "busy") == 0) {
        error(&pk, "too many clients (64): try again later");
        put_frame(fd, sb.data, sb.size);
        keep = false;
    } else if (strcmp(mode, "silent") == 0) {
        char c;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, 10000) > 0 && read(fd, &c, 1) > 0)
            ;
        keep = false;
    } else { // close
        keep = false;
    }
    msgpack_sbuffer_destroy(&sb);
    return keep;
}

static void
serve(int fd, const char *mode)
{
    static char req[65536];
    char op[32];
    long n;
    while ((n = read_request(fd, req, sizeof req)) > 0) {
        request_op(req, (size_t)n, op, sizeof op);
        if (!answer(fd, mode, op))
            break;
    }
    close(fd);
}

static int
listen_on(const char *dir, const char *mode)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s.sock", dir, mode);
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 8) != 0) {
        perror("ctlfake: listen");
        exit(1);
    }
    return fd;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ctlfake DIR\n");
        return 2;
    }
    struct pollfd p[NMODES + 1];
    for (size_t i = 0; i < NMODES; i++)
        p[i] = (struct pollfd){.fd = listen_on(argv[1], modes[i]),
                               .events = POLLIN};
    p[NMODES] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        if (poll(p, NMODES + 1, -1) < 0)
            continue;
        char c;
        if (p[NMODES].revents != 0 && read(STDIN_FILENO, &c, 1) <= 0)
            break;
        for (size_t i = 0; i < NMODES; i++) {
            int fd;
            if (p[i].revents != 0 && (fd = accept(p[i].fd, NULL, NULL)) >= 0)
                serve(fd, modes[i]);
        }
    }
    for (size_t i = 0; i < NMODES; i++) {
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        snprintf(path, sizeof path, "%s/%s.sock", argv[1], modes[i]);
        unlink(path);
    }
    return 0;
}
