// SPDX-License-Identifier: MIT
// The distribution benchmarks: two nodes in two processes on 127.0.0.1.
// The process forks before either side starts a system; the child is node
// B, which serves an echo and a counter actor, and the parent is node A,
// which connects to B (the handshake is not timed) and drives one workload:
//
//   tdist WORKLOAD THREADS OPS [-q SEND_QUEUE] [-m COUNTER_MAILBOX] [-t DIR]
//
//   pingpong  a driver on A and the echo actor on B exchange an 8-byte
//             message OPS times, one in flight (after 1000 untimed ones)
//   stream    a producer on A sends OPS 8-byte messages to the counter on
//             B in slices of 256 per activation, yielding through its own
//             mailbox when tp_send says TP_EFULL; the counter checks their
//             order and answers when it has all of them
//   spawn     a driver on A spawns OPS actors on B with tp_spawn_at, one at
//             a time (the next when the answer with its pid has come, as
//             Erlang's spawn/4 returns the pid), after 100 untimed ones;
//             the actors stay until the end
//
// THREADS is each node's number of scheduler threads, 0 for the system's
// default (one per online CPU); each node also runs its I/O thread. -q sets
// the peer send queue (default the node's, 8192), -m the counter's mailbox
// capacity (default the system's, 1024). -t runs both nodes over TLS with
// DIR/node.pem, DIR/node.key and DIR/ca.pem (both present the same
// certificate).
//
// Prints "RESULT troupe WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB 0" as
// tbench does (the peak is node A's), and for pingpong "LATENCY MEAN_US
// MEDIAN_US P99_US". With TDIST_STATS set, both nodes print their
// scheduler and node counters to stderr.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <troupe.h>

enum { TAG_GO = 1, TAG_PING, TAG_HELLO, TAG_MSG, TAG_MORE, TAG_DONE };

#define WARMUP 1000
#define SLICE 256

static tp_system *sys;
static long ops;
static char peer_node[TP_NODE_NAME_MAX];
static double *latency;
static double t_start, t_end;
static uint64_t stream_errors;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static void
check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "tdist: %s: %s\n", what, tp_strerror(rc));
        exit(1);
    }
}

static void
print_stats(const char *who)
{
    if (getenv("TDIST_STATS") == NULL)
        return;
    tp_system_stats st;
    tp_node_stats ns;
    tp_system_stats_get(sys, &st);
    tp_node_stats_get(sys, &ns);
    fprintf(stderr,
            "%s: activations=%llu messages=%llu sleeps=%llu frames_out=%llu "
            "frames_in=%llu polled=%llu bytes_out=%llu bytes_in=%llu\n",
            who, (unsigned long long)st.total.activations,
            (unsigned long long)st.total.messages,
            (unsigned long long)st.total.sleeps,
            (unsigned long long)ns.frames_out,
            (unsigned long long)ns.frames_in,
            (unsigned long long)ns.frames_in_polled,
            (unsigned long long)ns.bytes_out, (unsigned long long)ns.bytes_in);
}

// ---- node B: echo and counter ----------------------------------------------

static int
echo_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    return tp_send(ctx, msg->from, msg->tag, msg->data, msg->size);
}

static const tp_behaviour echo_b = {.name = "echo", .handle = echo_handle};

typedef struct counter {
    uint64_t expect, next, errors;
} counter;

// HELLO carries the number of messages to expect and is answered, so the
// producer learns the counter's pid; DONE reports the order errors.
static int
counter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    counter *c = state;
    if (msg->tag == TAG_HELLO && msg->size == 8) {
        memcpy(&c->expect, msg->data, 8);
        c->next = c->errors = 0;
        return tp_send(ctx, msg->from, TAG_HELLO, NULL, 0);
    }
    if (msg->tag != TAG_MSG || msg->size != 8)
        return TP_OK;
    uint64_t seq;
    memcpy(&seq, msg->data, 8);
    c->errors += seq != c->next;
    if (++c->next == c->expect)
        return tp_send(ctx, msg->from, TAG_DONE, &c->errors, 8);
    return TP_OK;
}

static const tp_behaviour counter_b = {.name = "counter",
                                       .state_size = sizeof(counter),
                                       .handle = counter_handle};

// What the spawn workload starts on B: an actor that only waits.
static int
idle_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_OK;
}

static const tp_behaviour idle_b = {.name = "idle", .handle = idle_handle};

// Runs node B until the parent closes `hold` (it exited or is done).
static int
run_peer(unsigned threads, const tp_node_config *nc, uint32_t counter_cap,
         int report, int hold)
{
    check(tp_system_new(&(tp_config){.threads = threads}, &sys), "system");
    check(tp_system_start(sys), "start");
    check(tp_node_start(sys, nc), "node");
    tp_spawn_opts eo = {.name = "echo"};
    tp_spawn_opts co = {.name = "counter", .mailbox_capacity = counter_cap};
    check(tp_spawn(sys, &echo_b, NULL, &eo, NULL), "spawn echo");
    check(tp_spawn(sys, &counter_b, NULL, &co, NULL), "spawn counter");
    check(tp_spawnable(sys, "idle", &idle_b), "spawnable");
    dprintf(report, "%s\n", tp_node_name(sys));
    close(report);
    char c;
    while (read(hold, &c, 1) < 0 && errno == EINTR)
        ;
    print_stats("node B");
    tp_system_destroy(&sys);
    return 0;
}

// ---- node A: the drivers ---------------------------------------------------

typedef struct driver {
    long round; // round trips or messages done, warm-up included
    double sent_at;
    tp_pid peer;
} driver;

static int
pp_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    driver *d = state;
    uint64_t seq = (uint64_t)d->round;
    if (msg->tag == TAG_GO) {
        d->sent_at = now();
        return tp_send_name_at(ctx, "echo", peer_node, TAG_PING, &seq, 8);
    }
    double t = now();
    if (d->round >= WARMUP)
        latency[d->round - WARMUP] = t - d->sent_at;
    else if (d->round == WARMUP - 1)
        t_start = t;
    if (++d->round == WARMUP + ops) {
        t_end = t;
        tp_system_stop(sys);
        return TP_OK;
    }
    seq = (uint64_t)d->round;
    d->sent_at = now();
    return tp_send(ctx, msg->from, TAG_PING, &seq, 8);
}

static const tp_behaviour pp_b = {
    .name = "pinger", .state_size = sizeof(driver), .handle = pp_handle};

// Sends up to a slice, then continues through its own mailbox: a muted
// producer is not scheduled again until the peer's queue has drained.
static int
produce(tp_ctx *ctx, driver *d)
{
    for (int i = 0; i < SLICE && d->round < ops; i++) {
        uint64_t seq = (uint64_t)d->round;
        int rc = tp_send(ctx, d->peer, TAG_MSG, &seq, 8);
        if (rc == TP_EFULL)
            break;
        check(rc, "stream send");
        d->round++;
    }
    if (d->round == ops)
        return TP_OK;
    return tp_send(ctx, tp_self(ctx), TAG_MORE, NULL, 0);
}

static int
stream_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    driver *d = state;
    switch (msg->tag) {
    case TAG_GO:
        return tp_send_name_at(ctx, "counter", peer_node, TAG_HELLO, &ops,
                               sizeof ops);
    case TAG_HELLO:
        d->peer = msg->from;
        t_start = now();
        return produce(ctx, d);
    case TAG_MORE:
        return produce(ctx, d);
    case TAG_DONE:
        t_end = now();
        memcpy(&stream_errors, msg->data, 8);
        tp_system_stop(sys);
        return TP_OK;
    }
    return TP_OK;
}

static const tp_behaviour stream_b = {
    .name = "producer", .state_size = sizeof(driver), .handle = stream_handle};

#define SPAWN_WARMUP 100

static int
spawn_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    driver *d = state;
    if (msg->tag == TP_TAG_SPAWNED) {
        const tp_remote_answer *a = msg->data;
        check(a->error, "remote spawn");
        if (++d->round == SPAWN_WARMUP)
            t_start = now();
        if (d->round == SPAWN_WARMUP + ops) {
            t_end = now();
            tp_system_stop(sys);
            return TP_OK;
        }
    } else if (msg->tag != TAG_GO) {
        return TP_OK;
    }
    return tp_spawn_at(ctx, peer_node, "idle", NULL, 0, 10000, NULL);
}

static const tp_behaviour spawn_b = {
    .name = "spawner", .state_size = sizeof(driver), .handle = spawn_handle};

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void
report_latency(void)
{
    double sum = 0;
    for (long i = 0; i < ops; i++)
        sum += latency[i];
    qsort(latency, (size_t)ops, sizeof *latency, cmp_double);
    printf("LATENCY %.2f %.2f %.2f\n", sum / (double)ops * 1e6,
           latency[ops / 2] * 1e6, latency[ops * 99 / 100] * 1e6);
}

// Connects to B, runs the workload and prints its result.
static int
run_driver(const char *w, unsigned threads, tp_node_config *nc)
{
    const tp_behaviour *b = strcmp(w, "pingpong") == 0 ? &pp_b
                            : strcmp(w, "spawn") == 0  ? &spawn_b
                                                       : &stream_b;
    if (b == &pp_b && (latency = calloc((size_t)ops, sizeof *latency)) == NULL)
        check(TP_ENOMEM, "latencies");
    check(tp_system_new(&(tp_config){.threads = threads}, &sys), "system");
    check(tp_system_start(sys), "start");
    nc->name = "tdista";
    check(tp_node_start(sys, nc), "node");
    check(tp_node_connect(sys, peer_node, 5000), "connect");
    tp_pid d;
    check(tp_spawn(sys, b, NULL, NULL, &d), "spawn driver");
    check(tp_system_send(sys, d, TAG_GO, NULL, 0), "go");
    check(tp_system_wait(sys, -1), "wait");
    if (stream_errors != 0) {
        fprintf(stderr, "tdist: %llu messages out of order\n",
                (unsigned long long)stream_errors);
        return 1;
    }
    tp_system_stats st;
    check(tp_system_stats_get(sys, &st), "stats");
    printf("RESULT troupe %s %u %ld %.6f %ld 0\n", w, st.threads, ops,
           t_end - t_start, peak_rss_kb());
    if (latency != NULL)
        report_latency();
    print_stats("node A");
    tp_system_destroy(&sys);
    free(latency);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: tdist pingpong|stream|spawn THREADS OPS "
                    "[-q SEND_QUEUE] [-m COUNTER_MAILBOX] [-t DIR]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    if (argc < 4 || argv[2][0] == 0 ||
        argv[2][strspn(argv[2], "0123456789")] != 0 || atol(argv[3]) <= 0 ||
        (strcmp(argv[1], "pingpong") != 0 && strcmp(argv[1], "stream") != 0 &&
         strcmp(argv[1], "spawn") != 0))
        usage();
    unsigned threads = (unsigned)atoi(argv[2]);
    ops = atol(argv[3]);
    tp_node_config nc = {.name = "tdistb"};
    uint32_t counter_cap = 0;
    int opt;
    optind = 4;
    static char cert[4096], key[4096], ca[4096];
    while ((opt = getopt(argc, argv, "q:m:t:")) != -1) {
        if (opt == 'q') {
            nc.send_queue = (uint32_t)atol(optarg);
        } else if (opt == 'm') {
            counter_cap = (uint32_t)atol(optarg);
        } else if (opt == 't') {
            snprintf(cert, sizeof cert, "%s/node.pem", optarg);
            snprintf(key, sizeof key, "%s/node.key", optarg);
            snprintf(ca, sizeof ca, "%s/ca.pem", optarg);
            nc.tls_cert_file = cert;
            nc.tls_key_file = key;
            nc.tls_ca_file = ca;
        } else {
            usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);
    int report[2], hold[2];
    if (pipe(report) != 0 || pipe(hold) != 0) {
        perror("tdist: pipe");
        return 1;
    }
    // Fork before any thread exists: the child starts its own system.
    pid_t child = fork();
    if (child < 0) {
        perror("tdist: fork");
        return 1;
    }
    if (child == 0) {
        close(report[0]);
        close(hold[1]);
        _exit(run_peer(threads, &nc, counter_cap, report[1], hold[0]));
    }
    close(report[1]);
    close(hold[0]);
    ssize_t n = read(report[0], peer_node, sizeof peer_node - 1);
    close(report[0]);
    if (n <= 0) {
        fprintf(stderr, "tdist: node B did not start\n");
        return 1;
    }
    peer_node[strcspn(peer_node, "\n")] = 0;
    int rc = run_driver(argv[1], threads, &nc);
    close(hold[1]);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tdist: node B failed\n");
        return 1;
    }
    return rc;
}
