// SPDX-License-Identifier: MIT
// The demo: two actors bounce a counter back and forth, then a third floods
// a slow consumer through a small BACKPRESSURE mailbox. Prints what
// happened and the scheduler's counters.
//
//   build/bin/pingpong [ROUND_TRIPS]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <troupe.h>

enum { TAG_BALL = 1, TAG_START, TAG_ITEM };

typedef struct player {
    long hops; // hops the ball makes in all: two per round trip
} player;

static int
player_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    ((player *)state)->hops = arg ? 2 * *(long *)arg : 0;
    return 0;
}

// The ball carries the hops still to go; each player sends it back with
// one less, and both leave the game when it reaches zero.
static int
player_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    player *p = state;
    if (msg->tag == TAG_START) { // payload: the peer's pid
        tp_pid peer = *(const tp_pid *)msg->data;
        return tp_send(ctx, peer, TAG_BALL, &p->hops, sizeof p->hops);
    }
    long left = *(const long *)msg->data - 1;
    if (left < 0)
        return TP_STOP;
    int rc = tp_send(ctx, tp_sender(ctx), TAG_BALL, &left, sizeof left);
    return rc != 0 ? rc : left == 0 ? TP_STOP : TP_OK;
}

static const tp_behaviour player_behaviour = {
    .name = "player",
    .state_size = sizeof(player),
    .init = player_init,
    .handle = player_handle,
};

typedef struct consumer {
    long seen;
    long expect;
} consumer;

static int
consumer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    consumer *c = state;
    long v = *(const long *)msg->data;
    if (v != c->seen)
        return TP_EINVAL; // out of order: crash loudly
    c->seen++;
    return c->seen == c->expect ? TP_STOP : TP_OK;
}

static int
consumer_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    ((consumer *)state)->expect = *(long *)arg;
    return 0;
}

static const tp_behaviour consumer_behaviour = {
    .name = "consumer",
    .state_size = sizeof(consumer),
    .init = consumer_init,
    .handle = consumer_handle,
};

typedef struct producer {
    tp_pid to;
    long next, count;
} producer;

static int
producer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    producer *p = state;
    if (msg->tag == TAG_START) {
        p->to = *(const tp_pid *)msg->data;
    }
    // Send a slice, then ask ourselves to continue: while the consumer's
    // mailbox is full, backpressure keeps us from being scheduled.
    for (int i = 0; i < 64 && p->next < p->count; i++, p->next++) {
        int rc = tp_send(ctx, p->to, TAG_ITEM, &p->next, sizeof p->next);
        if (rc != 0)
            return rc;
    }
    if (p->next == p->count)
        return TP_STOP;
    return tp_send(ctx, tp_self(ctx), TAG_ITEM, NULL, 0);
}

static int
producer_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    ((producer *)state)->count = *(long *)arg;
    return 0;
}

static const tp_behaviour producer_behaviour = {
    .name = "producer",
    .state_size = sizeof(producer),
    .init = producer_init,
    .handle = producer_handle,
};

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "pingpong: %s: %s\n", what, tp_strerror(rc));
        exit(1);
    }
}

int
main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    if (rounds <= 0) {
        fprintf(stderr, "usage: pingpong [ROUND_TRIPS > 0]\n");
        return 2;
    }
    tp_system *sys;
    check(tp_system_new(&(tp_config){.threads = 2}, &sys), "system");
    check(tp_system_start(sys), "start");

    tp_pid a, b;
    check(tp_spawn(sys, &player_behaviour, &rounds, NULL, &a), "spawn");
    check(tp_spawn(sys, &player_behaviour, NULL, NULL, &b), "spawn");
    double t0 = now();
    check(tp_system_send(sys, a, TAG_START, &b, sizeof b), "send");
    check(tp_system_wait(sys, -1), "wait");
    double dt = now() - t0;
    printf("ping-pong: %ld round trips in %.3f s: %.2f M round trips/s, "
           "%.0f ns each\n",
           rounds, dt, rounds / dt / 1e6, dt * 1e9 / rounds);

    long items = 1000000;
    tp_pid c, p;
    check(
        tp_spawn(sys, &consumer_behaviour, &items,
                 &(tp_spawn_opts){.name = "consumer", .mailbox_capacity = 256},
                 &c),
        "spawn");
    check(tp_spawn(sys, &producer_behaviour, &items, NULL, &p), "spawn");
    t0 = now();
    check(tp_system_send(sys, p, TAG_START, &c, sizeof c), "send");
    tp_actor_stats st;
    tp_actor_stats_get(sys, c, &st);
    check(tp_system_wait(sys, -1), "wait");
    dt = now() - t0;
    printf("backpressure: %ld messages in order through a 256-slot mailbox "
           "in %.3f s (%.1f M msg/s)\n",
           items, dt, items / dt / 1e6);

    tp_system_stats s;
    tp_system_stats_get(sys, &s);
    printf("system: %u threads, %llu actors spawned, %llu exited, "
           "%llu crashed, %llu activations, %llu messages, %llu steals, "
           "%llu sleeps\n",
           s.threads, (unsigned long long)s.spawned,
           (unsigned long long)s.exited, (unsigned long long)s.crashed,
           (unsigned long long)s.total.activations,
           (unsigned long long)s.total.messages,
           (unsigned long long)s.total.steals,
           (unsigned long long)s.total.sleeps);
    tp_system_destroy(&sys);
    return s.crashed == 0 ? 0 : 1;
}
