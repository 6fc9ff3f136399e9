// SPDX-License-Identifier: MIT
// Two nodes in two processes: a ping actor on node "ping" and a pong actor
// on node "pong" play ping-pong over authenticated TCP on loopback. Then
// the pong process is killed with SIGKILL, and the ping node reports the
// node going down and its monitor of the pong actor firing with
// noconnection.
//
//   two_nodes [ROUNDS]
#include <troupe.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { PING = 1, PONG = 2, START = 3 };

// ---- the pong node ----------------------------------------------------------

static int
pong_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == PING)
        tp_send(ctx, msg->from, PONG, msg->data, msg->size);
    return TP_OK;
}

static const tp_behaviour pong_b = {.name = "pong", .handle = pong_handle};

static int
run_pong(const char *secret, int report_fd)
{
    tp_system *sys = NULL;
    if (tp_system_new(&(tp_config){.threads = 1}, &sys) != 0 ||
        tp_system_start(sys) != 0)
        return 1;
    tp_node_config nc = {.name = "pong", .secret_file = secret};
    if (tp_node_start(sys, &nc) != 0 ||
        tp_spawn(sys, &pong_b, NULL, &(tp_spawn_opts){.name = "pong"}, NULL) !=
            0)
        return 1;
    dprintf(report_fd, "%s\n", tp_node_name(sys));
    close(report_fd);
    tp_system_wait(sys, -1); // until killed
    tp_system_destroy(&sys);
    return 0;
}

// ---- the ping node ----------------------------------------------------------

typedef struct ping {
    char node[TP_NODE_NAME_MAX];
    long rounds, done;
    int seen; // nodedown and DOWN: stop once both arrived
    struct timespec t0;
    pid_t child;
} ping;

static double
since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) +
           (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int
ping_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    ping *p = state;
    char pid[TP_PID_STRLEN], why[64];
    switch (msg->tag) {
    case START:
        memcpy(p, msg->data, sizeof *p);
        tp_monitor_nodes(ctx, true);
        clock_gettime(CLOCK_MONOTONIC, &p->t0);
        printf("ping: sending %ld pings to pong@%s\n", p->rounds,
               strchr(p->node, '@') + 1);
        return tp_send_name_at(ctx, "pong", p->node, PING, &p->done,
                               sizeof p->done);
    case TP_TAG_NODEUP:
        printf("ping: nodeup %s\n", ((const tp_node_msg *)msg->data)->node);
        return TP_OK;
    case PONG:
        if (++p->done < p->rounds)
            return tp_send(ctx, msg->from, PING, &p->done, sizeof p->done);
        double s = since(&p->t0);
        tp_pid_format(msg->from, pid, sizeof pid);
        printf("ping: %ld round trips in %.3f s (%.1f us each) with pong "
               "%s\n",
               p->done, s, s * 1e6 / (double)p->done, pid);
        // Watch the pong actor, then take its node down.
        tp_monitor(ctx, msg->from, NULL);
        printf("ping: monitoring %s; killing the pong process (SIGKILL)\n",
               pid);
        fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &p->t0);
        kill(p->child, SIGKILL);
        return TP_OK;
    case TP_TAG_NODEDOWN: {
        const tp_node_msg *n = msg->data;
        printf("ping: nodedown %s after %.1f ms (%s)\n", n->node,
               since(&p->t0) * 1e3, n->why);
        break;
    }
    case TP_TAG_DOWN: {
        const tp_down_msg *d = msg->data;
        tp_pid_format(d->from, pid, sizeof pid);
        tp_reason_format(d->reason, why, sizeof why);
        printf("ping: DOWN %s reason=%s\n", pid, why);
        break;
    }
    default:
        return TP_OK;
    }
    if (++p->seen < 2)
        return TP_OK;
    tp_system_stop(tp_ctx_system(ctx));
    return TP_STOP;
}

static const tp_behaviour ping_b = {
    .name = "ping", .state_size = sizeof(ping), .handle = ping_handle};

// A fresh 32-byte secret in a private file both processes read.
static int
make_secret(char *path, size_t size)
{
    snprintf(path, size, "/tmp/two_nodes-secret-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unsigned char key[32];
    char hex[65];
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    int ok = fchmod(fd, 0600) == 0 && write(fd, hex, 64) == 64;
    close(fd);
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 10000;
    if (rounds < 1)
        rounds = 1;
    char secret[64];
    if (make_secret(secret, sizeof secret) != 0) {
        perror("two_nodes: secret");
        return 1;
    }
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        close(fds[0]);
        _exit(run_pong(secret, fds[1]));
    }
    close(fds[1]);
    char node[TP_NODE_NAME_MAX] = "";
    ssize_t n = read(fds[0], node, sizeof node - 1);
    close(fds[0]);
    if (n <= 0) {
        fprintf(stderr, "two_nodes: the pong node did not start\n");
        unlink(secret);
        return 1;
    }
    node[strcspn(node, "\n")] = 0;
    printf("two_nodes: pong node %s started (pid %d)\n", node, (int)child);

    tp_system *sys = NULL;
    int rc = 1;
    if (tp_system_new(&(tp_config){.threads = 1}, &sys) == 0 &&
        tp_system_start(sys) == 0 &&
        tp_node_start(sys, &(tp_node_config){.name = "ping",
                                             .secret_file = secret}) == 0) {
        printf("two_nodes: ping node %s started\n", tp_node_name(sys));
        tp_pid p;
        ping start = {.rounds = rounds, .child = child};
        snprintf(start.node, sizeof start.node, "%s", node);
        if (tp_spawn(sys, &ping_b, NULL, NULL, &p) == 0 &&
            tp_system_send(sys, p, START, &start, sizeof start) == 0 &&
            tp_system_wait(sys, 30000) == 0)
            rc = 0;
    }
    tp_system_destroy(&sys);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    unlink(secret);
    return rc;
}
