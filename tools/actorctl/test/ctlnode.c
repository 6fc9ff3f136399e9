// SPDX-License-Identifier: MIT
// The node actorctl's tests inspect: a supervision tree started with the
// public supervisor API and served on a control socket.
//
//   ctlnode SOCKET
//
// The tree: root (one_for_one) supervises counter, gate_a, gate_b, victim
// and sub, a supervisor of leaf; loner runs outside any supervisor. Once
// serving, ctlnode prints "ready" and answers one line per command read
// from stdin, until stdin closes:
//
//   fill GATE N   holds GATE (gate_a or gate_b) inside a callback and
//                 queues N messages behind it: its mailbox stays at N
//                 until release; answers "ok"
//   release       lets every held gate drain; answers "ok" once drained
//   pid NAME      answers the pid registered as NAME, or "none"
//   tick          makes counter busy: a message every millisecond
//   join GROUP NAME...
//                 makes the actors registered as NAME... members of
//                 process group GROUP (starting the group server, one
//                 actor more, on the first join); answers "ok"
//   chat          spawns chatter, outside any supervisor, for trace to
//                 follow: every 10 ms its timer sends it a message, on
//                 which it writes a note (holding an escape sequence) and
//                 sends itself a 4-byte echo; answers "ok"
//
// A held gate spins inside its callback, which a real actor must never
// do: it occupies a scheduler thread, so the system runs one thread more
// than the gates, and after 300 ms it is reported busy.
#include <troupe.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_WORK = 1, TAG_HOLD = 2, TAG_TICK = 3, TAG_ECHO = 4 };

// A gate's control block, shared with the main thread.
typedef struct gate {
    const char *name;
    atomic_bool hold;    // main asks the gate to stay in its callback
    atomic_bool holding; // the gate is in its callback
} gate;

static gate gates[] = {{.name = "gate_a"}, {.name = "gate_b"}};

// For polling loops only, never as synchronisation.
static void
pause_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000}, NULL);
}

static int
gate_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(gate **)state = arg;
    return 0;
}

static int
gate_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    gate *g = *(gate **)state;
    (void)ctx;
    if (msg->tag != TAG_HOLD)
        return TP_OK;
    // seq_cst throughout: test control flags, not a hot path.
    atomic_store(&g->holding, true);
    for (int i = 0; i < 30000 && atomic_load(&g->hold); i++)
        pause_ms(1);
    atomic_store(&g->holding, false);
    return TP_OK;
}

static const tp_behaviour gate_behaviour = {.name = "gate",
                                            .state_size = sizeof(gate *),
                                            .init = gate_init,
                                            .handle = gate_handle};

// Counts what it handles; TAG_TICK starts a timer sending it a message
// every millisecond, so top has a busy actor to find.
static int
counter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    ++*(long *)state;
    if (msg->tag == TAG_TICK)
        return tp_send_interval(ctx, tp_self(ctx), 1, TAG_WORK, NULL, 0, NULL);
    return TP_OK;
}

static int
counter_describe(const void *state, char *buf, size_t size)
{
    return snprintf(buf, size, "count=%ld", *(const long *)state);
}

static const tp_behaviour counter_behaviour = {.name = "counter",
                                               .state_size = sizeof(long),
                                               .handle = counter_handle,
                                               .describe = counter_describe};

// Chatters for trace: TAG_TICK starts its timer; each TAG_WORK from the
// timer makes a note and an echo, a message to itself.
static int
chatter_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    long *n = state;
    if (msg->tag == TAG_TICK)
        return tp_send_interval(ctx, tp_self(ctx), 10, TAG_WORK, NULL, 0,
                                NULL);
    if (msg->tag != TAG_WORK)
        return TP_OK;
    // A hostile note: actorctl must not print the escape as it is.
    tp_trace_note(ctx, "chat %ld \033[2J", ++*n);
    return tp_send(ctx, tp_self(ctx), TAG_ECHO, "echo", 4);
}

static const tp_behaviour chatter_behaviour = {
    .name = "chatter", .state_size = sizeof(long), .handle = chatter_handle};

static const char *
chat(tp_system *sys)
{
    tp_spawn_opts opts = {.name = "chatter"};
    tp_pid pid;
    if (tp_spawn(sys, &chatter_behaviour, NULL, &opts, &pid) != 0 ||
        tp_system_send(sys, pid, TAG_TICK, NULL, 0) != 0)
        return "error: no chatter";
    return "ok";
}

static int
idle_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    return TP_OK;
}

static const tp_behaviour victim_behaviour = {.name = "victim",
                                              .handle = idle_handle};
static const tp_behaviour leaf_behaviour = {.name = "leaf",
                                            .handle = idle_handle};
static const tp_behaviour loner_behaviour = {.name = "loner",
                                             .handle = idle_handle};

static const tp_child_spec sub_children[] = {
    {.id = "leaf", .behaviour = &leaf_behaviour, .opts = {.name = "leaf"}},
};
static const tp_sup_spec sub_spec = {.children = sub_children, .nchildren = 1};

static const tp_child_spec root_children[] = {
    {.id = "counter",
     .behaviour = &counter_behaviour,
     .opts = {.name = "counter"}},
    {.id = "gate_a",
     .behaviour = &gate_behaviour,
     .arg = &gates[0],
     .opts = {.name = "gate_a"}},
    {.id = "gate_b",
     .behaviour = &gate_behaviour,
     .arg = &gates[1],
     .opts = {.name = "gate_b"}},
    {.id = "victim",
     .behaviour = &victim_behaviour,
     .opts = {.name = "victim"}},
    {.id = "sub",
     .behaviour = &tp_supervisor,
     .arg = (void *)&sub_spec,
     .type = TP_SUPERVISOR,
     .opts = {.name = "sub"}},
};

static int
start_tree(tp_system *sys)
{
    tp_sup_spec spec = {
        .flags = {.strategy = TP_ONE_FOR_ONE,
                  .intensity = 100,
                  .period_ms = 1000},
        .children = root_children,
        .nchildren = sizeof root_children / sizeof root_children[0],
    };
    tp_spawn_opts root = {.name = "root"}, loner = {.name = "loner"};
    int rc = tp_sup_start(sys, &spec, &root, NULL);
    if (rc == 0)
        rc = tp_spawn(sys, &loner_behaviour, NULL, &loner, NULL);
    return rc;
}

// Waits up to 10 s for `*flag` to become `want`.
static bool
await(atomic_bool *flag, bool want)
{
    for (int i = 0; i < 10000; i++) {
        if (atomic_load(flag) == want)
            return true;
        pause_ms(1);
    }
    return false;
}

static const char *
fill(tp_system *sys, const char *name, int n)
{
    gate *g = NULL;
    tp_pid pid;
    for (size_t i = 0; i < sizeof gates / sizeof gates[0]; i++)
        if (strcmp(gates[i].name, name) == 0)
            g = &gates[i];
    if (g == NULL || n < 0 || tp_whereis(sys, name, &pid) != 0)
        return "error: no such gate";
    if (!atomic_load(&g->holding)) {
        atomic_store(&g->hold, true);
        if (tp_system_send(sys, pid, TAG_HOLD, NULL, 0) != 0 ||
            !await(&g->holding, true))
            return "error: the gate did not hold";
    }
    for (int i = 0; i < n; i++)
        if (tp_system_send(sys, pid, TAG_WORK, NULL, 0) != 0)
            return "error: send failed";
    return "ok";
}

static const char *
release(tp_system *sys)
{
    for (size_t i = 0; i < sizeof gates / sizeof gates[0]; i++) {
        tp_pid pid;
        tp_actor_stats st;
        atomic_store(&gates[i].hold, false);
        if (!await(&gates[i].holding, false))
            return "error: a gate stays held";
        for (int k = 0; k < 10000; k++) {
            if (tp_whereis(sys, gates[i].name, &pid) != 0 ||
                tp_actor_stats_get(sys, pid, &st) != 0 || st.length == 0)
                break;
            pause_ms(1);
        }
    }
    return "ok";
}

// `names`: the actors' registered names, separated by blanks.
static const char *
join(tp_system *sys, const char *group, char *names)
{
    tp_pid pid;
    for (char *n = strtok(names, " \t\n"); n; n = strtok(NULL, " \t\n"))
        if (tp_whereis(sys, n, &pid) != 0 ||
            tp_group_join(sys, group, pid) != 0)
            return "error: cannot join";
    return "ok";
}

static void
serve_commands(tp_system *sys)
{
    char line[256], arg[128];
    int n;
    while (fgets(line, sizeof line, stdin) != NULL) {
        tp_pid pid;
        char text[TP_PID_STRLEN];
        if (sscanf(line, "fill %127s %d", arg, &n) == 2) {
            puts(fill(sys, arg, n));
        } else if (strncmp(line, "release", 7) == 0) {
            puts(release(sys));
        } else if (strncmp(line, "tick", 4) == 0) {
            puts(tp_whereis(sys, "counter", &pid) == 0 &&
                         tp_system_send(sys, pid, TAG_TICK, NULL, 0) == 0
                     ? "ok"
                     : "error: no counter");
        } else if (strncmp(line, "chat", 4) == 0) {
            puts(chat(sys));
        } else if (sscanf(line, "join %127s %n", arg, &n) == 1) {
            puts(join(sys, arg, line + n));
        } else if (sscanf(line, "pid %127s", arg) == 1) {
            if (tp_whereis(sys, arg, &pid) == 0) {
                tp_pid_format(pid, text, sizeof text);
                puts(text);
            } else {
                puts("none");
            }
        } else {
            puts("error: unknown command");
        }
        fflush(stdout);
    }
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ctlnode SOCKET\n");
        return 2;
    }
    tp_system *sys;
    // A gate held over 300 ms shows busy.
    tp_config cfg = {
        .threads = 4, .cpu_time = true, .wait_sample = 1, .stall_ms = 300};
    int rc = tp_system_new(&cfg, &sys);
    if (rc == 0 && (rc = tp_system_start(sys)) == 0 &&
        (rc = start_tree(sys)) == 0)
        rc = tp_control_start(sys, argv[1]);
    if (rc != 0) {
        fprintf(stderr, "ctlnode: %s\n", tp_strerror(rc));
        tp_system_destroy(&sys);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    serve_commands(sys);
    release(sys);
    tp_system_destroy(&sys);
    return 0;
}
