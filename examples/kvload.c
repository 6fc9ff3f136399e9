// SPDX-License-Identifier: MIT
// A load client for the kvstore example: several clients at once, each
// on a connection of its own, write keys with PUT and read every one back
// with GET; a write counts as acknowledged when the store answered OK, and
// lost when a later GET does not return its value. Optionally one more
// client sends garbage in the middle, which must cost only its own
// connection.
//
//   kvload HOST:PORT [-c CLIENTS] [-n KEYS] [-p PREFIX] [-g]
//
// CLIENTS (default 4, at most 64) each write KEYS keys (default 1000)
// named PREFIX-CLIENT-I (PREFIX default "k"). Prints one summary line and
// exits 0 when every acknowledged write was read back, 1 otherwise, 2 on
// bad arguments. Every read waits at most 5 s.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS_MAX 64

static struct sockaddr_in server;
static long keys = 1000;
static const char *prefix = "k";
static _Atomic long progress; // writes acknowledged so far, all clients

typedef struct client {
    pthread_t thread;
    int id;
    long acked, lost, failed; // failed: no answer or an unexpected one
    char why[128];
} client;

// A connection with a small read buffer, for reading answers by line.
typedef struct conn {
    int fd;
    char buf[4096];
    size_t len;
} conn;

static int
conn_open(conn *c)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server, sizeof server) != 0) {
        close(c->fd);
        return -1;
    }
    return 0;
}

static bool
send_all(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

// Reads one answer line into `out` (without the newline). Returns false
// when the connection closed (`*closed` set, when not NULL), failed or
// stayed silent for 5 s.
static bool
read_line_or_close(conn *c, char *out, size_t size, bool *closed)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            snprintf(out, size, "%.*s", (int)n, c->buf);
            c->len -= n + 1;
            memmove(c->buf, nl + 1, c->len);
            return true;
        }
        if (c->len == sizeof c->buf)
            return false; // a line longer than any answer we expect
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r <= 0) {
            if (closed != NULL)
                *closed = r == 0 || errno == ECONNRESET;
            return false;
        }
        c->len += (size_t)r;
    }
}

static bool
read_line(conn *c, char *out, size_t size)
{
    return read_line_or_close(c, out, size, NULL);
}

// One request and its answer; false when no answer came.
static bool
ask(conn *c, const char *req, char *answer, size_t size)
{
    return send_all(c, req, strlen(req)) && read_line(c, answer, size);
}

// Writes every key of the client; marks in `acked` those answered OK.
// Returns false when the connection broke.
static bool
write_keys(client *cl, conn *c, char *acked)
{
    char req[256], answer[256];
    for (long i = 0; i < keys; i++) {
        snprintf(req, sizeof req, "PUT %s-%d-%ld value-%d-%ld\n", prefix,
                 cl->id, i, cl->id, i);
        if (!ask(c, req, answer, sizeof answer)) {
            snprintf(cl->why, sizeof cl->why, "no answer to a PUT");
            cl->failed += keys - i;
            return false;
        }
        acked[i] = strcmp(answer, "OK") == 0;
        if (!acked[i]) {
            cl->failed++;
            continue;
        }
        cl->acked++;
        atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    }
    return true;
}

// Reads back every acknowledged key; one that does not come back is lost.
static void
read_keys(client *cl, conn *c, const char *acked)
{
    char req[256], answer[256], want[128];
    for (long i = 0; i < keys; i++) {
        if (!acked[i])
            continue;
        snprintf(req, sizeof req, "GET %s-%d-%ld\n", prefix, cl->id, i);
        snprintf(want, sizeof want, "VALUE value-%d-%ld", cl->id, i);
        if (!ask(c, req, answer, sizeof answer)) {
            snprintf(cl->why, sizeof cl->why, "no answer to a GET");
            for (; i < keys; i++)
                cl->lost += acked[i];
            return;
        }
        if (strcmp(answer, want) != 0)
            cl->lost++;
    }
}

static void *
client_main(void *arg)
{
    client *cl = arg;
    conn c;
    char *acked = calloc((size_t)keys, 1);
    if (acked == NULL || conn_open(&c) != 0) {
        snprintf(cl->why, sizeof cl->why, "cannot connect");
        cl->failed = keys;
        free(acked);
        return NULL;
    }
    if (!write_keys(cl, &c, acked)) {
        // What was acknowledged must still be there: read it back on a
        // new connection.
        close(c.fd);
        if (conn_open(&c) != 0) {
            cl->lost = cl->acked;
            free(acked);
            return NULL;
        }
    }
    read_keys(cl, &c, acked);
    close(c.fd);
    free(acked);
    return NULL;
}

// Sends a line the protocol does not know: the store must close this
// connection and only this one. Returns true when it did.
static bool
garbage(void)
{
    conn c;
    char answer[64];
    if (conn_open(&c) != 0)
        return false;
    bool closed = false;
    if (send_all(&c, "FROB \x01\x02\x03\n", 9))
        read_line_or_close(&c, answer, sizeof answer, &closed);
    close(c.fd);
    return closed;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
usage(void)
{
    fprintf(stderr, "usage: kvload HOST:PORT [-c CLIENTS] [-n KEYS] "
                    "[-p PREFIX] [-g]\n");
    return 2;
}

static bool
parse_addr(const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return false;
    long port = strtol(colon + 1, &end, 10);
    snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    return *end == 0 && port > 0 && port < 65536 &&
           inet_pton(AF_INET, host, &server.sin_addr) == 1;
}

int
main(int argc, char **argv)
{
    int nclients = 4, opt;
    bool with_garbage = false;
    char *end;
    while ((opt = getopt(argc, argv, "c:n:p:g")) != -1) {
        switch (opt) {
        case 'c':
            nclients = (int)strtol(optarg, &end, 10);
            if (*end != 0 || nclients < 1 || nclients > CLIENTS_MAX)
                return usage();
            break;
        case 'n':
            keys = strtol(optarg, &end, 10);
            if (*end != 0 || keys < 1 || keys > 10000000)
                return usage();
            break;
        case 'p':
            prefix = optarg;
            if (strlen(prefix) > 64 || strpbrk(prefix, " \t\r\n") != NULL)
                return usage();
            break;
        case 'g':
            with_garbage = true;
            break;
        default:
            return usage();
        }
    }
    if (optind != argc - 1 || !parse_addr(argv[optind]))
        return usage();
    static client cl[CLIENTS_MAX];
    double t0 = now();
    for (int i = 0; i < nclients; i++) {
        cl[i].id = i;
        if (pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) != 0) {
            fprintf(stderr, "kvload: cannot start client %d\n", i);
            return 1;
        }
    }
    // The garbage goes in the middle: once a quarter of the writes are in
    // (or after 2 s, whatever happened).
    for (int i = 0; with_garbage && i < 2000 &&
                    atomic_load_explicit(&progress, memory_order_relaxed) <
                        keys * nclients / 4;
         i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    bool garbage_closed = with_garbage ? garbage() : true;
    long acked = 0, lost = 0, failed = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(cl[i].thread, NULL);
        acked += cl[i].acked, lost += cl[i].lost, failed += cl[i].failed;
        if (cl[i].why[0])
            fprintf(stderr, "kvload: client %d: %s\n", i, cl[i].why);
    }
    double secs = now() - t0;
    printf("kvload: %d clients, %ld writes acknowledged, %ld failed, "
           "%ld lost; %.0f requests/s",
           nclients, acked, failed, lost,
           (double)(2 * keys * nclients) / (secs > 0 ? secs : 1));
    if (with_garbage)
        printf("; the garbage client's connection was %s",
               garbage_closed ? "closed" : "NOT closed");
    printf("\n");
    return lost == 0 && failed == 0 && garbage_closed ? 0 : 1;
}
