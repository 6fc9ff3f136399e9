// SPDX-License-Identifier: MIT
// Baselines for the distribution benchmarks: the same two workloads as
// tdist, in plain C over TCP on 127.0.0.1 with no runtime at all, between
// two processes (the parent connects to a child it forks):
//
//   tbare [-s] pingpong OPS   OPS round trips of one 12-byte frame (a
//                             4-byte length and an 8-byte payload),
//                             TCP_NODELAY, one frame in flight
//   tbare [-s] stream OPS     OPS frames of the same shape, written in
//                             64 KiB batches; the child parses every frame,
//                             checks the sequence numbers and answers one
//                             byte at the end
//
// By default both processes block in read and write, so each hop of a
// round trip pays the kernel's wake-up of the reader. With -s (spin) the
// sockets are non-blocking and both processes busy-poll them, retrying
// at once on EAGAIN and never sleeping: no thread is ever woken, which is
// the floor for a round trip on this host (and costs a core per process
// while it runs).
//
// Prints "RESULT IMPL WORKLOAD 1 OPS SECONDS PEAK_RSS_KB 0", as tbench and
// tdist do, with IMPL "bare" or, with -s, "bare-spin"; for pingpong also
// "LATENCY MEAN_US MEDIAN_US P99_US".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FRAME 12 // 4-byte big-endian length, 8-byte payload
#define BATCH (64 * 1024 / FRAME * FRAME)
#define WARMUP 1000

static bool spin; // -s: non-blocking sockets, busy-polled

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "tbare: %s: %s\n", what, strerror(errno));
    exit(1);
}

static long
peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f != NULL)
        fclose(f);
    return kb;
}

// Whether a failed read or write is to be retried at once: interrupted,
// or, when spinning, nothing to read or no room to write yet.
static bool
again(void)
{
    return errno == EINTR ||
           (spin && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void
write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && again())
            continue;
        if (w <= 0)
            die("write");
        p += w;
        len -= (size_t)w;
    }
}

// Reads exactly `len` bytes; false at end of stream before the first byte.
static bool
read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r < 0 && again())
            continue;
        if (r == 0 && got == 0)
            return false;
        if (r <= 0)
            die("read");
        got += (size_t)r;
    }
    return true;
}

static void
frame_put(unsigned char *out, uint64_t v)
{
    uint32_t len = htonl(8);
    memcpy(out, &len, 4);
    memcpy(out + 4, &v, 8);
}

// Sets TCP_NODELAY and, when spinning, O_NONBLOCK.
static void
sock_setup(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("TCP_NODELAY");
    int fl = fcntl(fd, F_GETFL);
    if (spin && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0))
        die("O_NONBLOCK");
}

// ---- the child: echo or count ---------------------------------------------

static void
echo_loop(int fd)
{
    unsigned char f[FRAME];
    while (read_all(fd, f, FRAME))
        write_all(fd, f, FRAME);
}

// Parses frames out of large reads, as a runtime's reader would: a length,
// then a payload, with frames split across reads kept for the next one.
static void
count_loop(int fd, long ops)
{
    size_t cap = 256 * 1024, len = 0;
    unsigned char *buf = malloc(cap);
    uint64_t next = 0, errors = 0;
    if (buf == NULL)
        die("malloc");
    while ((long)next < ops) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && again())
            continue;
        if (r <= 0)
            die("read");
        len += (size_t)r;
        size_t off = 0;
        while (len - off >= 4) {
            uint32_t n;
            memcpy(&n, buf + off, 4);
            n = ntohl(n);
            if (len - off - 4 < n)
                break;
            uint64_t seq;
            memcpy(&seq, buf + off + 4, 8);
            errors += seq != next;
            next++;
            off += 4 + n;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
    unsigned char ok = errors == 0;
    write_all(fd, &ok, 1);
    free(buf);
}

// ---- the parent: drive and time -------------------------------------------

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
run_pingpong(int fd, long ops)
{
    unsigned char f[FRAME];
    double *lat = malloc((size_t)ops * sizeof *lat);
    if (lat == NULL)
        die("malloc");
    for (long i = 0; i < WARMUP + ops; i++) {
        double t = now();
        frame_put(f, (uint64_t)i);
        write_all(fd, f, FRAME);
        if (!read_all(fd, f, FRAME))
            die("echo closed");
        if (i >= WARMUP)
            lat[i - WARMUP] = now() - t;
    }
    double sum = 0;
    for (long i = 0; i < ops; i++)
        sum += lat[i];
    qsort(lat, (size_t)ops, sizeof *lat, cmp_double);
    printf("LATENCY %.2f %.2f %.2f\n", sum / (double)ops * 1e6,
           lat[ops / 2] * 1e6, lat[ops * 99 / 100] * 1e6);
    free(lat);
    return sum;
}

static double
run_stream(int fd, long ops)
{
    unsigned char *buf = malloc(BATCH);
    if (buf == NULL)
        die("malloc");
    double t0 = now();
    long seq = 0;
    while (seq < ops) {
        size_t len = 0;
        for (; len + FRAME <= BATCH && seq < ops; len += FRAME)
            frame_put(buf + len, (uint64_t)seq++);
        write_all(fd, buf, len);
    }
    unsigned char ok;
    if (!read_all(fd, &ok, 1) || !ok) {
        fprintf(stderr, "tbare: the counter saw frames out of order\n");
        exit(1);
    }
    free(buf);
    return now() - t0;
}

static int
listener(struct sockaddr_in *sa)
{
    socklen_t len = sizeof *sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof *sa) != 0 ||
        listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) != 0)
        die("listen");
    return fd;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-s") == 0) {
        spin = true;
        argv++;
        argc--;
    }
    long ops = argc == 3 ? atol(argv[2]) : 0;
    bool pp = argc == 3 && strcmp(argv[1], "pingpong") == 0;
    if (ops <= 0 || (!pp && strcmp(argv[1], "stream") != 0)) {
        fprintf(stderr, "usage: tbare [-s] pingpong|stream OPS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sa;
    int lfd = listener(&sa);
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            die("accept");
        close(lfd);
        sock_setup(fd);
        if (pp)
            echo_loop(fd);
        else
            count_loop(fd, ops);
        _exit(0);
    }
    close(lfd);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect");
    sock_setup(fd);
    double secs = pp ? run_pingpong(fd, ops) : run_stream(fd, ops);
    close(fd);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tbare: the child failed\n");
        return 1;
    }
    printf("RESULT %s %s 1 %ld %.6f %ld 0\n", spin ? "bare-spin" : "bare",
           argv[1], ops, secs, peak_rss_kb());
    return 0;
}
