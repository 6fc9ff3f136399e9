// SPDX-License-Identifier: MIT
// The benchmark workloads, one per run:
//
//   tbench WORKLOAD THREADS OPS
//
// WORKLOAD is pingpong, counting, fanin8, fanin64, ring, big, spawn, idle,
// restart or storm. Prints one line, "RESULT troupe WORKLOAD THREADS OPS
// SECONDS PEAK_RSS_KB BYTES_PER_ACTOR", which tools/bench/run.sh and
// compare.sh read; restart also prints "LATENCY MEDIAN_US P99_US".
// TBENCH_MEASURE=1 sets tp_config.cpu_time (run time and message waits
// measured, as actord does), to weigh what measuring costs;
// TBENCH_WAIT_SAMPLE=N sets tp_config.wait_sample.
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <troupe.h>

enum { TAG_GO = 1, TAG_MSG, TAG_PING, TAG_PONG, TAG_MORE };

static tp_system *sys;
static long ops;
static tp_pid *pids; // shared, written before any actor reads it
static _Atomic long finished;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    size_t n = strlen(key);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0)
            kb = atol(line + n + 1);
    if (f != NULL)
        fclose(f);
    return kb;
}

static void
check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "tbench: %s: %s\n", what, tp_strerror(rc));
        exit(1);
    }
}

static void
finish_one(long total)
{
    if (atomic_fetch_add(&finished, 1) + 1 == total)
        tp_system_stop(sys);
}

// ---- pingpong: two actors, OPS round trips ------------------------------

static int
pp_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    long n = *(const long *)msg->data;
    if (msg->tag == TAG_GO)
        return tp_send(ctx, pids[1], TAG_PING, &n, sizeof n);
    if (msg->tag == TAG_PING)
        return tp_send(ctx, msg->from, TAG_PONG, &n, sizeof n);
    if (--n == 0) {
        tp_system_stop(sys);
        return TP_OK;
    }
    return tp_send(ctx, msg->from, TAG_PING, &n, sizeof n);
}

static const tp_behaviour pp_b = {.name = "pp", .handle = pp_handle};

static void
run_pingpong(void)
{
    pids = calloc(2, sizeof *pids);
    check(tp_spawn(sys, &pp_b, NULL, NULL, &pids[0]), "spawn");
    check(tp_spawn(sys, &pp_b, NULL, NULL, &pids[1]), "spawn");
    check(tp_system_send(sys, pids[0], TAG_GO, &ops, sizeof ops), "send");
}

// ---- counting and fan-in: P producers -> 1 counter -----------------------

typedef struct producer {
    long left;
} producer;

static long nproducers;

static int
prod_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    producer *p = state;
    if (msg->tag == TAG_GO)
        p->left = ops / nproducers;
    // A slice per activation, then continue through our own mailbox so
    // backpressure can mute us between slices.
    for (int i = 0; i < 256 && p->left > 0; i++, p->left--) {
        int rc = tp_send(ctx, pids[0], TAG_MSG, &p->left, sizeof p->left);
        if (rc == TP_EFULL)
            break; // far past the capacity: retry after a pause
        check(rc, "produce");
    }
    if (p->left == 0)
        return TP_STOP;
    return tp_send(ctx, tp_self(ctx), TAG_MORE, NULL, 0);
}

static const tp_behaviour prod_b = {
    .name = "producer",
    .state_size = sizeof(producer),
    .handle = prod_handle,
};

static int
count_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)msg;
    long *seen = state;
    if (++*seen == (ops / nproducers) * nproducers)
        tp_system_stop(sys);
    return TP_OK;
}

static const tp_behaviour count_b = {
    .name = "counter",
    .state_size = sizeof(long),
    .handle = count_handle,
};

static void
run_fanin(long producers)
{
    nproducers = producers;
    pids = calloc((size_t)producers + 1, sizeof *pids);
    check(tp_spawn(sys, &count_b, NULL, NULL, &pids[0]), "spawn");
    for (long i = 1; i <= producers; i++)
        check(tp_spawn(sys, &prod_b, NULL, NULL, &pids[i]), "spawn");
    for (long i = 1; i <= producers; i++)
        check(tp_system_send(sys, pids[i], TAG_GO, NULL, 0), "send");
}

// ---- ring: 1000 actors pass a token OPS hops -----------------------------

#define RING 1000

static int
ring_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    long me = *(long *)state;
    long n = *(const long *)msg->data;
    if (n == 0) {
        tp_system_stop(sys);
        return TP_OK;
    }
    n--;
    return tp_send(ctx, pids[(me + 1) % RING], TAG_MSG, &n, sizeof n);
}

static int
ring_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(long *)state = (long)(intptr_t)arg;
    return 0;
}

static const tp_behaviour ring_b = {
    .name = "ring",
    .state_size = sizeof(long),
    .init = ring_init,
    .handle = ring_handle,
};

static void
run_ring(void)
{
    pids = calloc(RING, sizeof *pids);
    for (long i = 0; i < RING; i++)
        check(tp_spawn(sys, &ring_b, (void *)(intptr_t)i, NULL, &pids[i]),
              "spawn");
    check(tp_system_send(sys, pids[0], TAG_MSG, &ops, sizeof ops), "send");
}

// ---- big: 1000 actors ping random peers and wait for each pong ------------

#define BIG 1000

typedef struct big {
    long me;
    long left;
    uint32_t rng;
} big;

static int
big_ping(tp_ctx *ctx, big *b)
{
    b->rng = b->rng * 1103515245u + 12345u;
    long peer = (long)((b->rng >> 8) % (BIG - 1));
    if (peer >= b->me)
        peer++;
    return tp_send(ctx, pids[peer], TAG_PING, NULL, 0);
}

static int
big_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    big *b = state;
    switch (msg->tag) {
    case TAG_PING:
        return tp_send(ctx, msg->from, TAG_PONG, NULL, 0);
    case TAG_GO:
        return big_ping(ctx, b);
    default:
        if (--b->left == 0) {
            finish_one(BIG);
            return TP_OK;
        }
        return big_ping(ctx, b);
    }
}

static int
big_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    big *b = state;
    b->me = (long)(intptr_t)arg;
    b->left = ops / (2 * BIG);
    b->rng = (uint32_t)b->me * 2654435761u + 1;
    return 0;
}

static const tp_behaviour big_b = {
    .name = "big",
    .state_size = sizeof(big),
    .init = big_init,
    .handle = big_handle,
};

static void
run_big(void)
{
    pids = calloc(BIG, sizeof *pids);
    for (long i = 0; i < BIG; i++)
        check(tp_spawn(sys, &big_b, (void *)(intptr_t)i, NULL, &pids[i]),
              "spawn");
    for (long i = 0; i < BIG; i++)
        check(tp_system_send(sys, pids[i], TAG_GO, NULL, 0), "send");
}

// ---- spawn: OPS actors spawned, each exits on its first message ------------

static int
child_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return TP_STOP;
}

static const tp_behaviour child_b = {.name = "child", .handle = child_handle};

static int
spawner_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)msg;
    long *left = state;
    if (msg->tag == TAG_GO)
        *left = ops;
    for (int i = 0; i < 256 && *left > 0; i++, (*left)--) {
        tp_pid c;
        check(tp_spawn(sys, &child_b, NULL, NULL, &c), "spawn child");
        check(tp_send(ctx, c, TAG_GO, NULL, 0), "send child");
    }
    if (*left == 0)
        return TP_STOP;
    return tp_send(ctx, tp_self(ctx), TAG_MORE, NULL, 0);
}

static const tp_behaviour spawner_b = {
    .name = "spawner",
    .state_size = sizeof(long),
    .handle = spawner_handle,
};

static void
run_spawn(void)
{
    tp_pid s;
    check(tp_spawn(sys, &spawner_b, NULL, NULL, &s), "spawn");
    check(tp_system_send(sys, s, TAG_GO, NULL, 0), "send");
}

// ---- idle: OPS idle actors, bytes each -------------------------------------

static const tp_behaviour idle_b = {
    .name = "idle",
    .state_size = sizeof(long),
    .handle = child_handle,
};

// ---- restart: OPS crashes of a supervised child, each timed from the
// crash to its replacement handling its first message ------------------------

static double crash_at, *latency;
static long restarts_done;
static tp_pid driver;

static int
victim_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    return tp_send(ctx, tp_self(ctx), TAG_GO, NULL, 0);
}

static int
victim_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TAG_MSG) { // crash now
        crash_at = now();
        return TP_ECRASH;
    }
    // Our first message: the restart is complete.
    if (crash_at > 0)
        latency[restarts_done++] = now() - crash_at;
    return tp_send(ctx, driver, TAG_MORE, NULL, 0);
}

static const tp_behaviour victim_b = {
    .name = "victim", .init = victim_init, .handle = victim_handle};

static int
driver_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (restarts_done >= ops) {
        tp_system_stop(sys);
        return TP_OK;
    }
    return tp_send(ctx, msg->from, TAG_MSG, NULL, 0);
}

static const tp_behaviour driver_b = {.name = "driver",
                                      .handle = driver_handle};

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void
run_restart(void)
{
    latency = calloc((size_t)ops, sizeof *latency);
    if (latency == NULL)
        check(TP_ENOMEM, "latencies");
    check(tp_spawn(sys, &driver_b, NULL, NULL, &driver), "spawn");
    tp_child_spec c = {.id = "victim", .behaviour = &victim_b};
    tp_sup_spec spec = {.flags = {.intensity = INT32_MAX, .period_ms = 1000},
                        .children = &c,
                        .nchildren = 1};
    check(tp_sup_start(sys, &spec, NULL, NULL), "supervisor");
}

static void
report_latency(void)
{
    if (restarts_done == 0)
        return;
    qsort(latency, (size_t)restarts_done, sizeof *latency, cmp_double);
    printf("LATENCY %.2f %.2f\n", latency[restarts_done / 2] * 1e6,
           latency[(restarts_done * 99) / 100] * 1e6);
}

// ---- storm: OPS simple_one_for_one children crash at once; time until
// every one is replaced
// --------------------------------------------------------

static _Atomic long storm_inits;

static int
storm_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx, (void)state, (void)arg;
    if (atomic_fetch_add(&storm_inits, 1) + 1 == 2 * ops)
        tp_system_stop(sys);
    return 0;
}

static int
storm_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_ECRASH;
}

static const tp_behaviour storm_b = {
    .name = "storm", .init = storm_init, .handle = storm_handle};

static void
quiet(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)level, (void)origin, (void)line;
}

static tp_pid
storm_prepare(void)
{
    tp_child_spec c = {.id = "storm", .behaviour = &storm_b};
    tp_sup_spec spec = {.flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE,
                                  .intensity = INT32_MAX,
                                  .period_ms = 1000},
                        .children = &c,
                        .nchildren = 1};
    tp_pid sup;
    check(tp_sup_start(sys, &spec, NULL, &sup), "supervisor");
    pids = calloc((size_t)ops, sizeof *pids);
    if (pids == NULL)
        check(TP_ENOMEM, "pids");
    for (long i = 0; i < ops; i++)
        check(tp_sup_start_child(sys, sup, NULL, NULL, -1, &pids[i]),
              "start_child");
    return sup;
}

int
main(int argc, char **argv)
{
    if (argc != 4 || atoi(argv[2]) <= 0 || atol(argv[3]) <= 0) {
        fprintf(stderr, "usage: tbench WORKLOAD THREADS OPS\n");
        return 2;
    }
    const char *w = argv[1];
    unsigned threads = (unsigned)atoi(argv[2]);
    ops = atol(argv[3]);
    tp_config cfg = {.threads = threads};
    const char *measure = getenv("TBENCH_MEASURE");
    cfg.cpu_time = measure != NULL && strcmp(measure, "1") == 0;
    const char *sample = getenv("TBENCH_WAIT_SAMPLE");
    cfg.wait_sample = sample != NULL ? atoi(sample) : 0;
    // Restart workloads log a crash and a restart per operation.
    if (strcmp(w, "restart") == 0 || strcmp(w, "storm") == 0)
        cfg.log = quiet;
    check(tp_system_new(&cfg, &sys), "system");
    double bytes = 0, t0 = 0, t1 = 0;
    if (strcmp(w, "idle") == 0) {
        long before = proc_status_kb("VmRSS:");
        t0 = now();
        for (long i = 0; i < ops; i++)
            check(tp_spawn(sys, &idle_b, NULL, NULL, NULL), "spawn");
        t1 = now();
        bytes = (double)(proc_status_kb("VmRSS:") - before) * 1024.0 / ops;
    } else if (strcmp(w, "storm") == 0) {
        check(tp_system_start(sys), "start");
        storm_prepare();
        t0 = now();
        for (long i = 0; i < ops; i++)
            check(tp_system_send(sys, pids[i], TAG_MSG, NULL, 0), "send");
        check(tp_system_wait(sys, -1), "wait");
        t1 = now();
    } else {
        check(tp_system_start(sys), "start");
        t0 = now();
        if (strcmp(w, "pingpong") == 0)
            run_pingpong();
        else if (strcmp(w, "counting") == 0)
            run_fanin(1);
        else if (strcmp(w, "fanin8") == 0)
            run_fanin(8);
        else if (strcmp(w, "fanin64") == 0)
            run_fanin(64);
        else if (strcmp(w, "ring") == 0)
            run_ring();
        else if (strcmp(w, "big") == 0)
            run_big();
        else if (strcmp(w, "spawn") == 0)
            run_spawn();
        else if (strcmp(w, "restart") == 0)
            run_restart();
        else {
            fprintf(stderr, "tbench: unknown workload %s\n", w);
            return 2;
        }
        check(tp_system_wait(sys, -1), "wait");
        t1 = now();
    }
    printf("RESULT troupe %s %u %ld %.6f %ld %.0f\n", w, threads, ops, t1 - t0,
           proc_status_kb("VmHWM:"), bytes);
    if (latency != NULL)
        report_latency();
    if (getenv("TBENCH_STATS") != NULL) {
        tp_system_stats st;
        tp_system_stats_get(sys, &st);
        fprintf(stderr,
                "stats: activations=%llu messages=%llu steals=%llu "
                "sleeps=%llu\n",
                (unsigned long long)st.total.activations,
                (unsigned long long)st.total.messages,
                (unsigned long long)st.total.steals,
                (unsigned long long)st.total.sleeps);
    }
    tp_system_destroy(&sys);
    free(pids);
    free(latency);
    return 0;
}
