// SPDX-License-Identifier: MIT
// A node process for the distribution tests: it starts a node, prints
// "NODE <full name>" on stdout, runs a few registered test actors and
// exits when its standard input closes (the test went away) or on SIGTERM.
//
//   tnode NAME [-s SECRET_FILE] [-l HOST:PORT] [-t TIMEOUT_MS]
//              [-b HEARTBEAT_MS] [-q SEND_QUEUE] [-c NODE_TO_CONNECT]
//
// Actors (tags are the test protocol):
//   echo     replies to the sender with the same tag and payload
//   pinger   tag 2, payload a msgpack pid: sends tag 7 "pong" to that pid
//   counter  tag 3, payload a uint64 sequence number per sender, checked
//            to increase by one; tag 4: replies tag 5 with {count, errors}
//   victim   tag 9, payload an int32: exits with that reason; tag 10,
//            the same after sending tag 11 "bye" to the sender; echoes
//            any other tag
//   watcher  tag 12, payload a msgpack array [target pid, report pid]:
//            links to and monitors the target while trapping exits, answers
//            tag 15; then reports tag 13 {int32 reason} for each exit
//            signal and tag 14 {int32 reason} for each DOWN to the report pid
#include <troupe.h>
#include <troupe/msgpack.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
echo_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (!tp_pid_is_nil(msg->from) && msg->tag < TP_TAG_RESERVED)
        tp_send(ctx, msg->from, msg->tag, msg->data, msg->size);
    return TP_OK;
}

static int
pinger_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != 2)
        return TP_OK;
    msgpack_unpacked u;
    tp_pid to;
    if (tp_msg_unpack(msg, &u) == 0 &&
        tp_unpack_pid(tp_ctx_system(ctx), &u.data, &to) == 0)
        tp_send(ctx, to, 7, "pong", 4);
    msgpack_unpacked_destroy(&u);
    return TP_OK;
}

typedef struct counter {
    uint64_t count, errors, next;
} counter;

static int
counter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    counter *c = state;
    if (msg->tag == 3 && msg->size == 8) {
        uint64_t seq;
        memcpy(&seq, msg->data, 8);
        if (seq != c->next)
            c->errors++;
        c->next = seq + 1;
        c->count++;
    } else if (msg->tag == 4) {
        uint64_t r[2] = {c->count, c->errors};
        tp_send(ctx, msg->from, 5, r, sizeof r);
    }
    return TP_OK;
}

static int
victim_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if ((msg->tag == 9 || msg->tag == 10) && msg->size == 4) {
        int32_t reason;
        memcpy(&reason, msg->data, 4);
        if (msg->tag == 10)
            tp_send(ctx, msg->from, 11, "bye", 3);
        if (reason < 0)
            return reason;
        tp_stop_reason(ctx, reason);
    } else if (!tp_pid_is_nil(msg->from) && msg->tag < TP_TAG_RESERVED) {
        tp_send(ctx, msg->from, msg->tag, msg->data, msg->size);
    }
    return TP_OK;
}

typedef struct watcher {
    tp_pid report;
} watcher;

static int
watcher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    watcher *w = state;
    if (msg->tag == 12) {
        msgpack_unpacked u;
        tp_pid target;
        tp_system *sys = tp_ctx_system(ctx);
        if (tp_msg_unpack(msg, &u) == 0 &&
            u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2 &&
            tp_unpack_pid(sys, &u.data.via.array.ptr[0], &target) == 0 &&
            tp_unpack_pid(sys, &u.data.via.array.ptr[1], &w->report) == 0) {
            tp_trap_exit(ctx, true);
            tp_link(ctx, target);
            tp_monitor(ctx, target, NULL);
            tp_send(ctx, w->report, 15, "ok", 2);
        }
        msgpack_unpacked_destroy(&u);
    } else if (msg->tag == TP_TAG_EXIT) {
        const tp_exit_msg *e = msg->data;
        int32_t r = e->reason;
        tp_send(ctx, w->report, 13, &r, sizeof r);
    } else if (msg->tag == TP_TAG_DOWN) {
        const tp_down_msg *d = msg->data;
        int32_t r = d->reason;
        tp_send(ctx, w->report, 14, &r, sizeof r);
    }
    return TP_OK;
}

static const tp_behaviour echo_b = {.name = "echo", .handle = echo_handle};
static const tp_behaviour pinger_b = {.name = "pinger",
                                      .handle = pinger_handle};
static const tp_behaviour counter_b = {.name = "counter",
                                       .state_size = sizeof(counter),
                                       .handle = counter_handle};
static const tp_behaviour victim_b = {.name = "victim",
                                      .handle = victim_handle};
static const tp_behaviour watcher_b = {.name = "watcher",
                                       .state_size = sizeof(watcher),
                                       .handle = watcher_handle};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tnode NAME [options]\n");
        return 2;
    }
    tp_node_config nc = {.name = argv[1]};
    int opt;
    const char *dial = NULL;
    optind = 2;
    while ((opt = getopt(argc, argv, "s:l:t:b:q:c:")) != -1) {
        switch (opt) {
        case 's':
            nc.secret_file = optarg;
            break;
        case 'l':
            nc.listen = optarg;
            break;
        case 't':
            nc.timeout_ms = atoi(optarg);
            break;
        case 'b':
            nc.heartbeat_ms = atoi(optarg);
            break;
        case 'q':
            nc.send_queue = (uint32_t)atoi(optarg);
            break;
        case 'c':
            dial = optarg;
            break;
        default:
            return 2;
        }
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    tp_system *sys = NULL;
    if (tp_system_new(&(tp_config){.threads = 2}, &sys) != 0 ||
        tp_system_start(sys) != 0)
        return 1;
    int rc = tp_node_start(sys, &nc);
    if (rc != 0) {
        printf("ERROR %s\n", tp_err_name(rc));
        fflush(stdout);
        tp_system_destroy(&sys);
        return 1;
    }
    tp_spawn(sys, &echo_b, NULL, &(tp_spawn_opts){.name = "echo"}, NULL);
    tp_spawn(sys, &pinger_b, NULL, &(tp_spawn_opts){.name = "pinger"}, NULL);
    tp_spawn(sys, &counter_b, NULL,
             &(tp_spawn_opts){.name = "counter", .mailbox_capacity = 4096},
             NULL);
    tp_spawn(sys, &victim_b, NULL, &(tp_spawn_opts){.name = "victim"}, NULL);
    tp_spawn(sys, &watcher_b, NULL, &(tp_spawn_opts){.name = "watcher"}, NULL);
    printf("NODE %s\n", tp_node_name(sys));
    fflush(stdout);
    if (dial != NULL)
        tp_node_connect(sys, dial, 0);
    char buf[256];
    while (!stop && read(0, buf, sizeof buf) > 0)
        ;
    tp_system_destroy(&sys);
    return 0;
}
