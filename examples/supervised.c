// SPDX-License-Identifier: MIT
// A supervision tree in action: a one_for_one supervisor runs a counter
// and a flaky worker that crashes on its third job. The supervisor
// restarts the worker each time; the counter, which keeps its own state,
// is never touched. Run it: build/bin/supervised
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

enum { JOB = 1, COUNT };

static int
flaky_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    int *jobs = state;
    if (msg->tag != JOB)
        return TP_OK;
    if (++*jobs == 3)
        tp_fail(ctx, TP_ECRASH, "job %d went wrong", *jobs);
    int rc = tp_send_name(ctx, "counter", COUNT, NULL, 0);
    if (rc == 0 && msg->ref != 0)
        rc = tp_reply(ctx, JOB, jobs, sizeof *jobs);
    return rc;
}

static int
flaky_describe(const void *state, char *buf, size_t size)
{
    return snprintf(buf, size, "jobs=%d", *(const int *)state);
}

static const tp_behaviour flaky = {.name = "flaky",
                                   .state_size = sizeof(int),
                                   .handle = flaky_handle,
                                   .describe = flaky_describe};

static int
counter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    if (msg->tag == COUNT)
        ++*(long *)state;
    else if (msg->ref != 0)
        return tp_reply(ctx, COUNT, state, sizeof(long));
    return TP_OK;
}

static const tp_behaviour counter = {
    .name = "counter", .state_size = sizeof(long), .handle = counter_handle};

int
main(void)
{
    tp_system *sys;
    if (tp_system_new(NULL, &sys) != 0 || tp_system_start(sys) != 0)
        return 1;
    const tp_child_spec children[] = {
        {.id = "counter", .behaviour = &counter, .opts = {.name = "counter"}},
        {.id = "worker", .behaviour = &flaky, .opts = {.name = "worker"}},
    };
    tp_sup_spec spec = {
        .flags = {.strategy = TP_ONE_FOR_ONE,
                  .intensity = 10,
                  .period_ms = 1000},
        .children = children,
        .nchildren = 2,
    };
    tp_pid sup;
    int rc = tp_sup_start(sys, &spec, NULL, &sup);
    if (rc != 0) {
        fprintf(stderr, "supervisor: %s\n", tp_strerror(rc));
        return 1;
    }
    // Eight jobs: each worker incarnation crashes on its third.
    for (int i = 1; i <= 8; i++) {
        tp_pid w;
        for (int k = 0; k < 1000 && tp_whereis(sys, "worker", &w) != 0; k++)
            nanosleep(&(struct timespec){0, 1000000}, NULL); // restarting
        char pid[TP_PID_STRLEN];
        tp_pid_format(w, pid, sizeof pid);
        tp_call_reply rep;
        rc = tp_call(sys, w, JOB, NULL, 0, 1000, &rep);
        if (rc == 0) {
            int n;
            memcpy(&n, rep.data, sizeof n);
            printf("job %d: done by worker %s (its job #%d)\n", i, pid, n);
            free(rep.data);
        } else {
            printf("job %d: worker %s crashed (%s); the supervisor "
                   "restarts it\n",
                   i, pid, tp_err_name(rc));
        }
    }
    tp_pid c;
    tp_call_reply rep;
    if (tp_whereis(sys, "counter", &c) == 0 &&
        tp_call(sys, c, 1, NULL, 0, 1000, &rep) == 0) {
        long n;
        memcpy(&n, rep.data, sizeof n);
        printf("the counter, never restarted, counted %ld jobs\n", n);
        free(rep.data);
    }
    tp_sup_counts counts;
    if (tp_sup_count_children(sys, sup, 1000, &counts) == 0)
        printf("children: %u specs, %u active\n", counts.specs, counts.active);
    // Ordered shutdown: the supervisor stops its children, last first.
    tp_system_exit(sys, sup, TP_REASON_SHUTDOWN);
    tp_system_wait(sys, 5000);
    tp_system_destroy(&sys);
    return 0;
}
