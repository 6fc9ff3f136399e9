// SPDX-License-Identifier: MIT
// The application module tools/actord/test.sh runs under actord: a
// one_for_one root supervisor with `workers` workers (w1, w2, ...). Its
// arguments make it fail where the tests need it to:
//
//   workers = N        1 to 8 workers (default 3)
//   fail = check       check() refuses the arguments
//   fail = start       start() fails
//   fail = init        the last worker's init fails, so the root does not
//   root = self        start() spawns the root itself and returns its pid
//   root = stubborn    the root is an actor that ignores exit signals, so
//                      only actord's shutdown_timeout gets rid of it
//   machine = yes      one more child, "door", a state machine
//
// Built four times: as is (version 1.0), with TESTAPP_VERSION=2 (2.0: the
// door's data grows, its describe says which version runs; for upgrades),
// with TESTAPP_NO_DESCRIPTOR (its descriptor under another symbol: not an
// application) and with TESTAPP_ABI set to another ABI.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <troupe.h>

#define MAX_WORKERS 8

#ifndef TESTAPP_VERSION
#define TESTAPP_VERSION 1
#endif

// A worker's init argument.
typedef struct worker_arg {
    bool fail; // init refuses
} worker_arg;

typedef struct app {
    tp_system *sys;
    char name[TP_NAME_MAX + 1];
    worker_arg wargs[MAX_WORKERS];
    char id[MAX_WORKERS][16];                // "w" and any int: no truncation
    tp_child_spec children[MAX_WORKERS + 1]; // the door last
    tp_sup_spec spec; // must outlive start(): actord starts the root later
} app;

static int
worker_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    if (((const worker_arg *)arg)->fail)
        return TP_EINVAL;
    tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "worker_ready");
    return 0;
}

static int
worker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK;
}

static const tp_behaviour worker = {
    .name = "testapp_worker", .init = worker_init, .handle = worker_handle};

// Traps exits and ignores them all: only a kill stops it.
static int
stubborn_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state, (void)arg;
    tp_trap_exit(ctx, true);
    return 0;
}

static const tp_behaviour stubborn = {.name = "testapp_stubborn",
                                      .init = stubborn_init,
                                      .handle = worker_handle};

// The door: a state machine that opens as it starts. 2.0 counts in a
// larger layout, and its describe says which version runs.
typedef struct door_v1 {
    int opens;
} door_v1;
typedef struct door_v2 {
    long opens;
    char note[32];
} door_v2;

static int
door_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)ctx, (void)data, (void)ev;
    return TP_OK;
}

static const tp_state door_open = {.name = "open", .handle = door_handle};
static const tp_state door_closed = {.name = "closed", .handle = door_handle};
static const tp_state *const door_states[] = {&door_open, &door_closed, NULL};

#if TESTAPP_VERSION == 1
typedef door_v1 door_data;

static int
door_describe(const void *data, char *buf, size_t size)
{
    return snprintf(buf, size, "v1 opens=%d", ((const door_v1 *)data)->opens);
}
#define DOOR_CHANGE NULL
#else
typedef door_v2 door_data;

static int
door_describe(const void *data, char *buf, size_t size)
{
    const door_v2 *d = data;
    return snprintf(buf, size, "v2 opens=%ld note=%s", d->opens, d->note);
}

static int
door_change(tp_ctx *ctx, const void *old_data, void *new_data,
            const tp_state *old_state, const tp_state **state)
{
    (void)ctx, (void)old_state, (void)state; // *state: the namesake
    door_v2 *n = new_data;
    n->opens = ((const door_v1 *)old_data)->opens;
    snprintf(n->note, sizeof n->note, "from-1.0");
    return 0;
}
#define DOOR_CHANGE door_change
#endif

static int
door_init(tp_ctx *ctx, void *data, void *arg, const tp_state **state)
{
    (void)ctx, (void)arg;
    ((door_data *)data)->opens = 1;
    *state = &door_open;
    return 0;
}

static const tp_statem_spec door = {
    .behaviour = TP_STATEM_BEHAVIOUR("testapp_door"),
    .data_size = sizeof(door_data),
    .initial = &door_closed,
    .init = door_init,
    .describe = door_describe,
    .states = door_states,
    .code_change = DOOR_CHANGE,
};

static const tp_behaviour *const testapp_behaviours[] = {
    &worker, &stubborn, &door.behaviour, NULL};

static int
int_arg(const tp_app_args *args, const char *key, int dflt, int lo, int hi)
{
    const char *v = tp_app_arg_get(args, key);
    if (v == NULL)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *v != 0 && *end == 0 && n >= lo && n <= hi ? (int)n : lo - 1;
}

static int
testapp_check(const tp_app_args *args, char *err, size_t size)
{
    static const char *const known[] = {"workers", "fail", "root", "machine",
                                        NULL};
    for (size_t i = 0; i < args->n; i++) {
        size_t k = 0;
        while (known[k] != NULL && strcmp(known[k], args->v[i].key) != 0)
            k++;
        if (known[k] == NULL) {
            snprintf(err, size, "unknown argument \"%s\"", args->v[i].key);
            return TP_EINVAL;
        }
    }
    if (int_arg(args, "workers", 3, 1, MAX_WORKERS) < 1) {
        snprintf(err, size, "workers: expected 1 to %d", MAX_WORKERS);
        return TP_EINVAL;
    }
    const char *fail = tp_app_arg_get(args, "fail");
    if (fail != NULL && strcmp(fail, "check") == 0) {
        snprintf(err, size, "fail = check: refusing as asked");
        return TP_EINVAL;
    }
    return 0;
}

static int
testapp_start(tp_system *sys, const tp_app_args *args, tp_app_root *root,
              char *err, size_t size)
{
    const char *fail = tp_app_arg_get(args, "fail");
    const char *how = tp_app_arg_get(args, "root");
    if (fail != NULL && strcmp(fail, "start") == 0) {
        snprintf(err, size, "fail = start: refusing as asked");
        return TP_EINVAL;
    }
    if (how != NULL && strcmp(how, "stubborn") == 0)
        return tp_spawn(sys, &stubborn, NULL, NULL, &root->pid);
    app *a = calloc(1, sizeof *a);
    if (a == NULL)
        return TP_ENOMEM;
    a->sys = sys;
    snprintf(a->name, sizeof a->name, "%s", args->app);
    int n = int_arg(args, "workers", 3, 1, MAX_WORKERS);
    for (int i = 0; i < n; i++) {
        a->wargs[i].fail =
            i == n - 1 && fail != NULL && strcmp(fail, "init") == 0;
        snprintf(a->id[i], sizeof a->id[i], "w%d", i + 1);
        a->children[i] = (tp_child_spec){.id = a->id[i],
                                         .behaviour = &worker,
                                         .arg = &a->wargs[i],
                                         .shutdown = 1000};
    }
    const char *machine = tp_app_arg_get(args, "machine");
    if (machine != NULL && strcmp(machine, "yes") == 0)
        a->children[n++] = (tp_child_spec){.id = "door",
                                           .behaviour = &door.behaviour,
                                           .opts = {.name = "door"}};
    a->spec = (tp_sup_spec){.flags = {.strategy = TP_ONE_FOR_ONE},
                            .children = a->children,
                            .nchildren = (size_t)n};
    tp_log(sys, TP_LOG_INFO, "testapp: start app=%s workers=%d", a->name, n);
    root->state = a;
    if (how != NULL && strcmp(how, "self") == 0) {
        int rc = tp_sup_start(sys, &a->spec, NULL, &root->pid);
        if (rc != 0)
            free(a); // a failed start leaves nothing behind
        return rc;
    }
    root->spec = &a->spec;
    return 0;
}

static void
testapp_stop(void *state)
{
    app *a = state;
    if (a == NULL)
        return;
    tp_log(a->sys, TP_LOG_INFO, "testapp: stop app=%s", a->name);
    free(a);
}

#if defined(TESTAPP_ABI)
__attribute__((visibility("default"))) const tp_app_descriptor tp_app = {
    .abi = TESTAPP_ABI,
    .troupe_major = TP_VERSION_MAJOR,
    .troupe_minor = TP_VERSION_MINOR,
    .name = "testapp",
    .check = testapp_check,
    .start = testapp_start,
    .stop = testapp_stop,
    .behaviours = testapp_behaviours,
};
#elif defined(TESTAPP_NO_DESCRIPTOR)
// A descriptor under another name is no descriptor.
__attribute__((visibility("default"))) const tp_app_descriptor testapp = {
    .abi = TP_APP_ABI,
    .name = "testapp",
    .check = testapp_check,
    .start = testapp_start,
    .stop = testapp_stop,
    .behaviours = testapp_behaviours,
};
#else
TP_APP_DESCRIPTOR(.name = "testapp",
                  .version = TESTAPP_VERSION == 1 ? "1.0" : "2.0",
                  .check = testapp_check, .start = testapp_start,
                  .stop = testapp_stop, .behaviours = testapp_behaviours);
#endif
