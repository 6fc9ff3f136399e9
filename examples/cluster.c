// SPDX-License-Identifier: MIT
// A worker pool spread over a cluster: every node runs workers that join
// the group "jobs"; a dispatcher hands jobs out through a round-robin
// router over the whole group, each job a request whose continuation
// counts the answer by the node that did the work, and sends the job
// again when its worker was lost (TP_TAG_FAILED) or slow (TP_TAG_TIMEOUT).
// Kill a node and the work goes on on the others.
//
//   jobs (one_for_one)
//   ├── worker_0 .. worker_N-1: join "jobs", answer each job
//   └── dispatcher (on the nodes that dispatch): a router over "jobs"
//
// Once a second the dispatcher logs a line such as
//   jobs: done=4210 resent=12 inflight=64 members=12 alpha=1403 beta=1404 ...
//
// Built with -DCLUSTER_MODULE (build/bin/cluster.so) it is an application
// module for actord (examples/cluster.sh starts three nodes with it):
//
//   [app jobs]
//   module = cluster.so
//   workers = 4        ; 1 to 64, default 4
//   dispatch = yes     ; run a dispatcher here, default no
//
// Built as a program (build/bin/cluster) it runs three nodes in this
// process, connected as a mesh from one seed, dispatches from the first,
// stops the third half-way and prints the counts.
#include <troupe.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GROUP "jobs"
#define WORKERS_MAX 64
#define NODES_MAX 16
#define TAG_JOB 1
#define TAG_DONE 2
#define TAG_TICK 3
#define TICK_MS 20
#define REPORT_TICKS 50 // a report a second
#define INFLIGHT_MAX 64 // jobs out at once
#define JOB_TIMEOUT_MS 2000

// ---- a worker: answers a job with its sum and this node's name ---------

typedef struct done_msg {
    uint64_t sum;
    char node[TP_NODE_NAME_MAX];
} done_msg;

static int
worker_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    return tp_group_join(tp_ctx_system(ctx), GROUP, tp_self(ctx));
}

static int
worker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag != TAG_JOB || msg->size != sizeof(uint64_t))
        return TP_OK;
    uint64_t n;
    memcpy(&n, msg->data, sizeof n);
    done_msg d = {.sum = 0};
    for (uint64_t i = 1; i <= n; i++)
        d.sum += i;
    const char *node = tp_node_name(tp_ctx_system(ctx));
    snprintf(d.node, sizeof d.node, "%s", node[0] ? node : "local");
    return tp_reply(ctx, TAG_DONE, &d, sizeof d);
}

static const tp_behaviour worker_b = {
    .name = "jobs_worker", .init = worker_init, .handle = worker_handle};

// ---- the dispatcher ------------------------------------------------------

typedef struct dispatcher {
    tp_router *router;
    uint64_t next_job, done, resent, wrong;
    unsigned inflight, ticks;
    struct {
        char name[TP_NODE_NAME_MAX];
        uint64_t done;
    } by_node[NODES_MAX];
    unsigned nnodes;
} dispatcher;

static int send_job(tp_ctx *ctx, dispatcher *d, uint64_t n);

static void
count(dispatcher *d, const char *node)
{
    unsigned i;
    for (i = 0; i < d->nnodes; i++)
        if (strcmp(d->by_node[i].name, node) == 0)
            break;
    if (i == d->nnodes) {
        if (d->nnodes == NODES_MAX)
            return;
        snprintf(d->by_node[i].name, sizeof d->by_node[i].name, "%s", node);
        d->by_node[i].done = 0;
        d->nnodes++;
    }
    d->by_node[i].done++;
}

// A job's answer: counted, or the job sent again to another member.
static int
job_answered(tp_ctx *ctx, void *state, const tp_msg *answer, void *arg)
{
    dispatcher *d = state;
    uint64_t n = (uint64_t)(uintptr_t)arg;
    d->inflight--;
    if (answer->tag == TAG_DONE && answer->size == sizeof(done_msg)) {
        const done_msg *m = answer->data;
        if (m->sum != n * (n + 1) / 2)
            d->wrong++;
        d->done++;
        count(d, m->node);
        return TP_OK;
    }
    // TP_TAG_FAILED (the worker or its node was lost) or TP_TAG_TIMEOUT.
    d->resent++;
    return send_job(ctx, d, n);
}

static int
send_job(tp_ctx *ctx, dispatcher *d, uint64_t n)
{
    tp_pid to;
    if (tp_router_pick(d->router, 0, &to) != 0)
        return TP_OK; // no worker yet
    int rc = tp_request_then(ctx, to, TAG_JOB, &n, sizeof n, JOB_TIMEOUT_MS,
                             job_answered, (void *)(uintptr_t)n, NULL);
    if (rc == 0)
        d->inflight++;
    return rc == TP_EFULL ? TP_OK : rc;
}

static int
dispatcher_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)arg;
    dispatcher *d = state;
    int rc = tp_router_group(tp_ctx_system(ctx), GROUP, TP_ROUTE_ROUND_ROBIN,
                             &d->router);
    if (rc == 0)
        rc = tp_send_interval(ctx, tp_self(ctx), TICK_MS, TAG_TICK, NULL, 0,
                              NULL);
    return rc;
}

static void
report(tp_ctx *ctx, dispatcher *d)
{
    char line[1024];
    int members = tp_group_members(tp_ctx_system(ctx), GROUP, NULL, 0);
    int len =
        snprintf(line, sizeof line,
                 "jobs: done=%llu resent=%llu wrong=%llu inflight=%u "
                 "members=%d",
                 (unsigned long long)d->done, (unsigned long long)d->resent,
                 (unsigned long long)d->wrong, d->inflight, members);
    for (unsigned i = 0; i < d->nnodes && len < (int)sizeof line; i++) {
        char shortname[TP_NODE_NAME_MAX];
        snprintf(shortname, sizeof shortname, "%s", d->by_node[i].name);
        shortname[strcspn(shortname, "@")] = 0;
        len += snprintf(line + len, sizeof line - (size_t)len, " %s=%llu",
                        shortname, (unsigned long long)d->by_node[i].done);
    }
    tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "%s", line);
}

static int
dispatcher_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    dispatcher *d = state;
    if (msg->tag != TAG_TICK)
        return TP_OK;
    while (d->inflight < INFLIGHT_MAX) {
        int rc = send_job(ctx, d, 1000 + d->next_job++ % 1000);
        if (rc != 0)
            return rc;
        if (tp_group_members(tp_ctx_system(ctx), GROUP, NULL, 0) == 0)
            break;
    }
    if (++d->ticks % REPORT_TICKS == 0)
        report(ctx, d);
    return TP_OK;
}

static void
dispatcher_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    dispatcher *d = state;
    report(ctx, d);
    tp_router_free(d->router);
}

static const tp_behaviour dispatcher_b = {.name = "jobs_dispatcher",
                                          .state_size = sizeof(dispatcher),
                                          .init = dispatcher_init,
                                          .handle = dispatcher_handle,
                                          .terminate = dispatcher_terminate};

// ---- the tree ----------------------------------------------------------

typedef struct jobs_tree {
    tp_child_spec children[WORKERS_MAX + 1];
    char ids[WORKERS_MAX][24];
    tp_sup_spec spec;
} jobs_tree;

static const tp_sup_spec *
tree_spec(jobs_tree *t, unsigned workers, bool dispatch)
{
    unsigned n = 0;
    for (unsigned i = 0; i < workers; i++) {
        snprintf(t->ids[i], sizeof t->ids[i], "worker_%u", i);
        t->children[n++] =
            (tp_child_spec){.id = t->ids[i], .behaviour = &worker_b};
    }
    if (dispatch)
        t->children[n++] =
            (tp_child_spec){.id = "dispatcher", .behaviour = &dispatcher_b};
    t->spec = (tp_sup_spec){.flags = {.strategy = TP_ONE_FOR_ONE,
                                      .intensity = 10,
                                      .period_ms = 1000},
                            .children = t->children,
                            .nchildren = n};
    return &t->spec;
}

#ifdef CLUSTER_MODULE
// ---- the actord module
// -------------------------------------------------------

static int
jobs_args(const tp_app_args *args, unsigned *workers, bool *dispatch,
          char *err, size_t size)
{
    *workers = 4;
    *dispatch = false;
    for (size_t i = 0; i < args->n; i++) {
        const char *k = args->v[i].key, *v = args->v[i].value;
        char *end;
        if (strcmp(k, "workers") == 0) {
            unsigned long n = strtoul(v, &end, 10);
            if (*v < '0' || *v > '9' || *end != 0 || n < 1 ||
                n > WORKERS_MAX) {
                snprintf(err, size, "workers must be 1 to %d", WORKERS_MAX);
                return TP_EINVAL;
            }
            *workers = (unsigned)n;
        } else if (strcmp(k, "dispatch") == 0) {
            if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
                snprintf(err, size, "dispatch must be yes or no");
                return TP_EINVAL;
            }
            *dispatch = strcmp(v, "yes") == 0;
        } else {
            snprintf(err, size,
                     "unknown argument \"%s\" (jobs takes workers and "
                     "dispatch)",
                     k);
            return TP_EINVAL;
        }
    }
    return 0;
}

static int
jobs_check(const tp_app_args *args, char *err, size_t size)
{
    unsigned workers;
    bool dispatch;
    return jobs_args(args, &workers, &dispatch, err, size);
}

static int
jobs_start(tp_system *sys, const tp_app_args *args, tp_app_root *root,
           char *err, size_t size)
{
    (void)sys;
    unsigned workers;
    bool dispatch;
    int rc = jobs_args(args, &workers, &dispatch, err, size);
    if (rc != 0)
        return rc;
    jobs_tree *t = malloc(sizeof *t);
    if (t == NULL) {
        snprintf(err, size, "out of memory");
        return TP_ENOMEM;
    }
    root->spec = tree_spec(t, workers, dispatch);
    root->state = t;
    return 0;
}

static void
jobs_stop(void *state)
{
    free(state);
}

TP_APP_DESCRIPTOR(.name = "jobs", .version = "1.0", .check = jobs_check,
                  .start = jobs_start, .stop = jobs_stop);

#else
// ---- the program: three nodes in this process
// ---------------------------------

static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int
main(void)
{
    static const char *names[3] = {"alpha", "beta", "gamma"};
    static jobs_tree trees[3];
    tp_system *sys[3];
    for (int i = 0; i < 3; i++) {
        tp_config cfg = {.threads = 1};
        tp_node_config nc = {.name = names[i], .mesh = true};
        if (tp_system_new(&cfg, &sys[i]) != 0 ||
            tp_system_start(sys[i]) != 0 || tp_node_start(sys[i], &nc) != 0) {
            fprintf(stderr, "cluster: node %s did not start\n", names[i]);
            return 1;
        }
    }
    // beta and gamma know only alpha; the mesh connects them to each other.
    for (int i = 1; i < 3; i++)
        tp_node_connect(sys[i], tp_node_name(sys[0]), 5000);
    for (int i = 0; i < 3; i++)
        if (tp_sup_start(sys[i], tree_spec(&trees[i], 4, i == 0), NULL,
                         NULL) != 0) {
            fprintf(stderr, "cluster: the jobs tree did not start\n");
            return 1;
        }
    nap_ms(2000); // reports go to stderr through the log
    printf("cluster: stopping %s\n", tp_node_name(sys[2]));
    fflush(stdout);
    tp_system_destroy(&sys[2]);
    nap_ms(2000);
    for (int i = 2; i-- > 0;)
        tp_system_destroy(&sys[i]);
    return 0;
}
#endif
