// SPDX-License-Identifier: MIT
// A raw control-socket client for actorctl's tests: it writes bytes given
// in hex, well formed or not, and reports the node's answer on one line:
// "ok", "error: TEXT", "closed" (no answer) or "bad: WHY".
//
//   ctlraw [-s] [-p] SOCKET HEX...
//
// HEX is the bytes to write, frame headers included ("00000001 80"), or
// "" for none.
// -s shuts down the writing side afterwards, so the node sees the end of
// a request cut short at once.
// -p prints "sent" once the bytes are written, before the answer, so a
// script knows this client is connected.
#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_MAX ((size_t)16 << 20)

static size_t
unhex(int argc, char **argv, unsigned char *out, size_t max)
{
    size_t n = 0;
    int half = -1;
    for (int i = 0; i < argc; i++) {
        for (const char *p = argv[i]; *p; p++) {
            const char *digits = "0123456789abcdef";
            const char *d = strchr(digits, *p | 0x20);
            if (*p == ' ' || d == NULL || *d == 0)
                continue;
            if (half < 0) {
                half = (int)(d - digits);
            } else if (n < max) {
                out[n++] = (unsigned char)(half << 4 | (int)(d - digits));
                half = -1;
            }
        }
    }
    return n;
}

// Reads exactly n bytes within 10 s. Returns the count read.
static size_t
read_n(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            break;
        if (r > 0)
            got += (size_t)r;
    }
    return got;
}

static int
report(const unsigned char *buf, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)buf, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        printf("bad: not a msgpack map\n");
        msgpack_unpacked_destroy(&u);
        return 1;
    }
    const msgpack_object_map *m = &u.data.via.map;
    const msgpack_object *ok = NULL, *err = NULL;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 2 &&
            memcmp(k->via.str.ptr, "ok", 2) == 0)
            ok = &m->ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 5 &&
            memcmp(k->via.str.ptr, "error", 5) == 0)
            err = &m->ptr[i].val;
    }
    int rc = 0;
    if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        printf("bad: no \"ok\"\n");
        rc = 1;
    } else if (ok->via.boolean) {
        printf("ok\n");
    } else if (err != NULL && err->type == MSGPACK_OBJECT_STR) {
        printf("error: %.*s\n", (int)err->via.str.size, err->via.str.ptr);
    } else {
        printf("bad: an error without a reason\n");
        rc = 1;
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

int
main(int argc, char **argv)
{
    bool shut = false, said = false;
    for (; argc > 1 && argv[1][0] == '-' && argv[1][1] != 0; argv++, argc--)
        if (strcmp(argv[1], "-s") == 0)
            shut = true;
        else if (strcmp(argv[1], "-p") == 0)
            said = true;
        else
            break;
    if (argc < 3) {
        fprintf(stderr, "usage: ctlraw [-s] [-p] SOCKET HEX...\n");
        return 2;
    }
    static unsigned char req[1 << 20];
    size_t n = unhex(argc - 2, argv + 2, req, sizeof req);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("ctlraw: connect");
        return 1;
    }
    // A node that refuses the request may close before reading it all.
    if (send(fd, req, n, MSG_NOSIGNAL) < 0 && errno != EPIPE &&
        errno != ECONNRESET) {
        perror("ctlraw: send");
        return 1;
    }
    if (shut)
        shutdown(fd, SHUT_WR);
    if (said) {
        printf("sent\n");
        fflush(stdout);
    }
    unsigned char hdr[4];
    if (read_n(fd, hdr, 4) < 4) {
        printf("closed\n");
        return 0;
    }
    size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
                 (size_t)hdr[2] << 8 | hdr[3];
    unsigned char *buf = len <= REPLY_MAX ? malloc(len + 1) : NULL;
    if (buf == NULL || read_n(fd, buf, len) < len) {
        printf("bad: a reply of %zu bytes cut short\n", len);
        return 1;
    }
    int rc = report(buf, len);
    free(buf);
    close(fd);
    return rc;
}
