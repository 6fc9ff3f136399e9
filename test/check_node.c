// SPDX-License-Identifier: MIT
// Distribution between real node processes: the test process is one node,
// test/node/tnode (started and killed here) the other, both on 127.0.0.1
// with ephemeral ports (and on ::1 for the IPv6 pair). Every wait is bounded
// and keyed on a message.
#include "tp_test.h"
#include <troupe/msgpack.h>
#include "tp_node_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ---- child nodes
// -------------------------------------------------------------

char tpn_dir[64];
char tpn_secret[128];

void
tpn_setup(void)
{
    // mkdtemp's template: it replaces the Xs with a unique suffix.
    snprintf(tpn_dir, sizeof tpn_dir, "/tmp/tp-node-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tpn_dir));
    snprintf(tpn_secret, sizeof tpn_secret, "%s/secret", tpn_dir);
    tpn_write_secret(tpn_secret, "0123456789abcdef0123456789abcdef-test",
                     0600);
}

void
tpn_teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tpn_dir);
    ck_assert_int_eq(system(cmd), 0);
}

void
tpn_write_secret(const char *path, const char *text, int mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
}

static void
tnode_path(char *out, size_t size)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    snprintf(out, size, "%s/tnode", self);
}

// Starts tnode with `argv` (NULL-terminated, name first) and waits for its
// "NODE" line. Returns 0, or -1 with the line it printed instead in
// c->node.
int
tpn_start(tpn_child *c, const char *const *argv)
{
    char path[600];
    tnode_path(path, sizeof path);
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        const char *args[16] = {path};
        for (int i = 0; argv[i] && i < 14; i++)
            args[i + 1] = argv[i];
        execv(path, (char *const *)args);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->pid = pid;
    c->in = in[1];
    c->node[0] = 0;
    char line[TP_NODE_NAME_MAX - 8];
    size_t len = 0;
    // Bounded: the child prints its line at once or exits.
    while (len < sizeof line - 1) {
        ssize_t r = read(out[0], line + len, 1);
        if (r <= 0 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = 0;
    close(out[0]);
    if (strncmp(line, "NODE ", 5) != 0) {
        snprintf(c->node, sizeof c->node, "%s", line);
        return -1;
    }
    snprintf(c->node, sizeof c->node, "%s", line + 5);
    return 0;
}

void
tpn_stop(tpn_child *c)
{
    if (c->pid <= 0)
        return;
    close(c->in); // the child exits when its stdin closes
    int st;
    for (int i = 0; i < 500; i++) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            return;
        }
        tpt_nap_us(10000);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
}

void
tpn_kill(tpn_child *c, int sig)
{
    kill(c->pid, sig);
    if (sig == SIGKILL) {
        int st;
        waitpid(c->pid, &st, 0);
        close(c->in);
        c->pid = 0;
    }
}

tp_system *
tpn_local(const char *name, const tp_node_config *over)
{
    tp_system *sys = tpt_system(2);
    tp_node_config nc = over ? *over : (tp_node_config){0};
    nc.name = name;
    if (nc.secret_file == NULL)
        nc.secret_file = tpn_secret;
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    return sys;
}

// ---- certificates (test/tls_certs.sh), made once per test case -------------

char tpn_certs[64];

void
tpn_certs_make(void)
{
    char self[512], cmd[1200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0; // BUILD/bin
    // mkdtemp's template: it replaces the Xs with a unique suffix.
    snprintf(tpn_certs, sizeof tpn_certs, "/tmp/tp-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tpn_certs));
    // The binary is in BUILD/bin; the script in the source tree's test/.
    snprintf(cmd, sizeof cmd,
             "s=%s/../../test/tls_certs.sh; [ -f \"$s\" ] || "
             "s=test/tls_certs.sh; sh \"$s\" %s",
             self, tpn_certs);
    ck_assert_int_eq(system(cmd), 0);
}

void
tpn_certs_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tpn_certs);
    ck_assert_int_eq(system(cmd), 0);
}

const char *
tpn_cert(const char *name, const char *ext)
{
    static char paths[8][160];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s.%s", tpn_certs, name, ext);
    return p;
}

// ---- the probe: an actor that records what it receives
// ----------------------

#define LOG_MAX 64

typedef struct entry {
    uint32_t tag;
    tp_pid from;
    int reason;
    bool linked;
    char data[256];
    size_t size;
} entry;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static entry log_[LOG_MAX];
static _Atomic long nlog;
static tp_system *the_sys;

enum {
    P_SEND_NAME = 100, // data: "name@node" NUL payload...
    P_LINK,            // data: tp_pid
    P_MONITOR,         // data: tp_pid
    P_SEND,            // data: struct psend
    P_SEND_SELF_PID,   // data: node name of pinger
    P_WATCH,           // data: struct pwatch
    P_STREAM,          // data: struct pstream
    P_NODES,
    P_REQUEST, // data: struct psend; records the ref in last_ref
};

static _Atomic uint64_t last_ref;

typedef struct psend {
    tp_pid to;
    uint32_t tag;
    char data[32];
    size_t size;
} psend;

typedef struct pwatch {
    tp_pid target;
    char node[TP_NODE_NAME_MAX];
} pwatch;

typedef struct pstream {
    char node[TP_NODE_NAME_MAX];
    uint64_t next, total;
} pstream;

static void
record(const tp_msg *msg)
{
    pthread_mutex_lock(&log_lock);
    long i = atomic_load(&nlog);
    if (i < LOG_MAX) {
        entry *e = &log_[i];
        memset(e, 0, sizeof *e);
        e->tag = msg->tag;
        e->from = msg->from;
        if (msg->tag == TP_TAG_EXIT) {
            const tp_exit_msg *x = msg->data;
            e->reason = x->reason;
            e->linked = x->linked;
            e->from = x->from;
        } else if (msg->tag == TP_TAG_DOWN || msg->tag == TP_TAG_FAILED) {
            const tp_down_msg *d = msg->data;
            e->reason = d->reason;
            e->from = d->from;
            e->size = sizeof msg->ref;
            memcpy(e->data, &msg->ref, sizeof msg->ref);
        } else {
            e->size = msg->size < sizeof e->data ? msg->size : sizeof e->data;
            memcpy(e->data, msg->data, e->size);
        }
        atomic_store(&nlog, i + 1);
    }
    pthread_mutex_unlock(&log_lock);
}

// Waits for the first entry with `tag` at or after `*from`; returns it.
static entry *
await_tag(uint32_t tag, double seconds)
{
    for (long waited = 0; waited < (long)(seconds * 1000); waited++) {
        long n = atomic_load(&nlog);
        for (long i = 0; i < n; i++)
            if (log_[i].tag == tag)
                return &log_[i];
        tpt_nap_us(1000);
    }
    return NULL;
}

static int
probe_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    switch (msg->tag) {
    case P_SEND_NAME: {
        const char *name = msg->data;
        const char *node = name + strlen(name) + 1;
        ck_assert_int_eq(tp_send_name_at(ctx, name, node, 1, "hello", 5), 0);
        return TP_OK;
    }
    case P_LINK: {
        tp_pid p;
        memcpy(&p, msg->data, sizeof p);
        tp_trap_exit(ctx, true);
        ck_assert_int_eq(tp_link(ctx, p), 0);
        return TP_OK;
    }
    case P_MONITOR: {
        tp_pid p;
        memcpy(&p, msg->data, sizeof p);
        ck_assert_int_eq(tp_monitor(ctx, p, NULL), 0);
        return TP_OK;
    }
    case P_SEND: {
        const psend *s = msg->data;
        ck_assert_int_eq(tp_send(ctx, s->to, s->tag, s->data, s->size), 0);
        return TP_OK;
    }
    case P_SEND_SELF_PID: {
        tp_pack pk;
        tp_pack_init(&pk);
        ck_assert_int_eq(
            tp_pack_pid(tp_ctx_system(ctx), tp_self(ctx), tp_pack_packer(&pk)),
            0);
        ck_assert_int_eq(tp_send_name_at(ctx, "pinger", msg->data, 2,
                                         pk.buf.data, pk.buf.size),
                         0);
        tp_pack_destroy(&pk);
        return TP_OK;
    }
    case P_WATCH: {
        const pwatch *w = msg->data;
        tp_system *sys = tp_ctx_system(ctx);
        tp_pack pk;
        tp_pack_init(&pk);
        msgpack_pack_array(tp_pack_packer(&pk), 2);
        ck_assert_int_eq(tp_pack_pid(sys, w->target, tp_pack_packer(&pk)), 0);
        ck_assert_int_eq(tp_pack_pid(sys, tp_self(ctx), tp_pack_packer(&pk)),
                         0);
        ck_assert_int_eq(tp_send_name_at(ctx, "watcher", w->node, 12,
                                         pk.buf.data, pk.buf.size),
                         0);
        tp_pack_destroy(&pk);
        return TP_OK;
    }
    case P_NODES:
        ck_assert_int_eq(tp_monitor_nodes(ctx, true), 0);
        return TP_OK;
    case P_REQUEST: {
        const psend *s = msg->data;
        uint64_t ref;
        ck_assert_int_eq(
            tp_request(ctx, s->to, s->tag, s->data, s->size, 600000, &ref), 0);
        atomic_store(&last_ref, ref);
        return TP_OK;
    }
    }
    record(msg);
    return TP_OK;
}

static const tp_behaviour probe_b = {.name = "probe", .handle = probe_handle};

static tp_pid
probe_new(tp_system *sys)
{
    atomic_store(&nlog, 0);
    the_sys = sys;
    tp_pid p;
    ck_assert_int_eq(tp_spawn(sys, &probe_b, NULL, NULL, &p), 0);
    return p;
}

static void
ask_name(tp_system *sys, tp_pid probe, const char *name, const char *node)
{
    char buf[256];
    size_t a = strlen(name) + 1, b = strlen(node) + 1;
    memcpy(buf, name, a);
    memcpy(buf + a, node, b);
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND_NAME, buf, a + b), 0);
}

static void
ask_pid(tp_system *sys, tp_pid probe, uint32_t cmd, tp_pid target)
{
    ck_assert_int_eq(tp_system_send(sys, probe, cmd, &target, sizeof target),
                     0);
}

// The pid of `name` on the child node, learned from the reply of an echo:
// `name` must answer tag 1 (echo and victim do).
static tp_pid
remote_pid(tp_system *sys, tp_pid probe, const char *name, const char *node)
{
    long before = atomic_load(&nlog);
    ask_name(sys, probe, name, node);
    for (int i = 0; i < 10000; i++) {
        long n = atomic_load(&nlog);
        for (long j = before; j < n; j++)
            if (log_[j].tag == 1) {
                ck_assert_uint_ne(tp_pid_node(log_[j].from), 0);
                return log_[j].from;
            }
        tpt_nap_us(1000);
    }
    ck_abort_msg("no reply from %s at %s", name, node);
    return TP_PID_NIL;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// ---- tests
// ---------------------------------------------------------------------

START_TEST(remote_send_and_reply)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    // By name: the first send connects; echo replies to our pid.
    tp_pid echo = remote_pid(sys, probe, "echo", c.node);
    ck_assert_str_eq(log_[0].data, "hello");
    // By pid, from the reply's sender.
    psend s = {.to = echo, .tag = 6, .data = "again", .size = 5};
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
    entry *e = await_tag(6, 10);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(memcmp(e->data, "again", 5), 0);
    ck_assert_uint_eq(e->from.v, echo.v);
    // From outside any actor, too.
    ck_assert_int_eq(tp_system_send(sys, echo, 8, "x", 1), 0);
    tp_peer_info pi[4];
    ck_assert_int_eq(tp_node_peers(sys, pi, 4), 1);
    ck_assert_str_eq(pi[0].node, c.node);
    ck_assert_int_eq(pi[0].state, TP_PEER_UP);
    ck_assert_uint_ne(pi[0].incarnation, 0);
    // A message the peer would refuse as oversized is refused here, and
    // the connection stays up.
    size_t big = (1u << 20) + 1;
    char *buf = calloc(1, big);
    ck_assert_int_eq(tp_system_send(sys, echo, 6, buf, big), TP_EMSGSIZE);
    free(buf);
    atomic_store(&nlog, 0);
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
    ck_assert_ptr_nonnull(await_tag(6, 10));
    // Disconnecting: the peer goes idle and the next send reconnects.
    ck_assert_int_eq(tp_node_disconnect(sys, "nobody@127.0.0.1:9"), TP_ENOENT);
    ck_assert_int_eq(tp_node_disconnect(sys, c.node), 0);
    for (int i = 0; i < 5000; i++) {
        tp_node_peers(sys, pi, 1);
        if (pi[0].state == TP_PEER_IDLE)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_int_eq(pi[0].state, TP_PEER_IDLE);
    atomic_store(&nlog, 0);
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
    ck_assert_ptr_nonnull(await_tag(6, 10));
    tp_node_peers(sys, pi, 1);
    ck_assert_uint_eq(pi[0].connects, 2);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(reply_through_pid_in_payload)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND_SELF_PID, c.node,
                                    strlen(c.node) + 1),
                     0);
    entry *e = await_tag(7, 10);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(memcmp(e->data, "pong", 4), 0);
    ck_assert_uint_ne(tp_pid_node(e->from), 0);
    // A pid of our own node round-trips to a local pid.
    tp_pack pk;
    tp_pack_init(&pk);
    ck_assert_int_eq(tp_pack_pid(sys, probe, tp_pack_packer(&pk)), 0);
    msgpack_unpacked u;
    tp_msg m = {.data = pk.buf.data, .size = pk.buf.size};
    ck_assert_int_eq(tp_msg_unpack(&m, &u), 0);
    tp_pid back;
    ck_assert_int_eq(tp_unpack_pid(sys, &u.data, &back), 0);
    ck_assert_uint_eq(back.v, probe.v);
    msgpack_unpacked_destroy(&u);
    tp_pack_destroy(&pk);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(remote_link_and_monitor)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    // Remote actor dies: our link and monitor fire with its reason.
    tp_pid victim = remote_pid(sys, probe, "victim", c.node);
    ask_pid(sys, probe, P_LINK, victim);
    ask_pid(sys, probe, P_MONITOR, victim);
    psend s = {.to = victim, .tag = 9, .size = 4};
    int32_t reason = TP_EINVAL;
    memcpy(s.data, &reason, 4);
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
    entry *x = await_tag(TP_TAG_EXIT, 10);
    entry *d = await_tag(TP_TAG_DOWN, 10);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(x->reason, TP_EINVAL);
    ck_assert(x->linked);
    ck_assert_uint_eq(x->from.v, victim.v);
    ck_assert_int_eq(d->reason, TP_EINVAL);
    // Monitoring a dead remote actor: DOWN noproc.
    atomic_store(&nlog, 0);
    ask_pid(sys, probe, P_MONITOR, victim);
    d = await_tag(TP_TAG_DOWN, 10);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->reason, TP_REASON_NOPROC);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

// Index of the first entry with `tag`, or -1.
static long
index_of(uint32_t tag)
{
    long n = atomic_load(&nlog);
    for (long i = 0; i < n; i++)
        if (log_[i].tag == tag)
            return i;
    return -1;
}

// A remote actor that sends and then exits: its message arrives before
// its exit signal and its DOWN, as locally.
START_TEST(remote_message_then_exit_in_order)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    {
        tp_pid victim = remote_pid(sys, probe, "victim", c.node);
        atomic_store(&nlog, 0);
        ask_pid(sys, probe, P_LINK, victim);
        ask_pid(sys, probe, P_MONITOR, victim);
        psend s = {.to = victim, .tag = 10, .size = 4};
        int32_t reason = TP_EINVAL;
        memcpy(s.data, &reason, 4);
        ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
        ck_assert_ptr_nonnull(await_tag(TP_TAG_EXIT, 10));
        ck_assert_ptr_nonnull(await_tag(TP_TAG_DOWN, 10));
        long bye = index_of(11), x = index_of(TP_TAG_EXIT),
             d = index_of(TP_TAG_DOWN);
        ck_assert_msg(bye >= 0 && bye < x && bye < d,
                      "message at %ld, EXIT at %ld, DOWN at %ld", bye, x, d);
        ck_assert_int_eq(log_[x].reason, reason);
    }
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

// A request to a remote actor fails at once when the actor dies without
// replying, and when its node is lost.
START_TEST(remote_request_fails_fast)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    tp_pid victim = remote_pid(sys, probe, "victim", c.node);
    atomic_store(&nlog, 0);
    psend s = {.to = victim, .tag = 9, .size = 4};
    int32_t reason = TP_EINVAL;
    memcpy(s.data, &reason, 4);
    ck_assert_int_eq(tp_system_send(sys, probe, P_REQUEST, &s, sizeof s), 0);
    entry *f = await_tag(TP_TAG_FAILED, 10);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->reason, TP_EINVAL);
    ck_assert_uint_eq(f->from.v, victim.v);
    uint64_t ref;
    memcpy(&ref, f->data, sizeof ref);
    ck_assert_uint_eq(ref, atomic_load(&last_ref));
    // Dead now: noproc, from the peer.
    atomic_store(&nlog, 0);
    ck_assert_int_eq(tp_system_send(sys, probe, P_REQUEST, &s, sizeof s), 0);
    f = await_tag(TP_TAG_FAILED, 10);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->reason, TP_REASON_NOPROC);
    // A request the echo answers with a plain message, not a reply: still
    // pending when the node dies, then failed with noconnection.
    tp_pid echo = remote_pid(sys, probe, "echo", c.node);
    atomic_store(&nlog, 0);
    psend e = {.to = echo, .tag = 20, .data = "q", .size = 1};
    ck_assert_int_eq(tp_system_send(sys, probe, P_REQUEST, &e, sizeof e), 0);
    ck_assert_ptr_nonnull(await_tag(20, 10));
    ck_assert_int_lt(index_of(TP_TAG_FAILED), 0);
    tpn_kill(&c, SIGKILL);
    f = await_tag(TP_TAG_FAILED, 30);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->reason, TP_REASON_NOCONNECTION);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

START_TEST(remote_watcher_sees_local_exit)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    // The remote watcher links to and monitors a local actor, reporting
    // to the probe; the local actor then crashes.
    tp_pid local;
    ck_assert_int_eq(tp_spawn(sys, &probe_b, NULL, NULL, &local), 0);
    pwatch w = {.target = local};
    snprintf(w.node, sizeof w.node, "%s", c.node);
    ck_assert_int_eq(tp_system_send(sys, probe, P_WATCH, &w, sizeof w), 0);
    entry *ok = await_tag(15, 10);
    ck_assert_ptr_nonnull(ok);
    tp_pid watcher = ok->from;
    ck_assert_uint_ne(tp_pid_node(watcher), 0);
    ck_assert_int_eq(tp_system_exit(sys, local, TP_ECRASH), 0);
    entry *r13 = await_tag(13, 10), *r14 = await_tag(14, 10);
    ck_assert_ptr_nonnull(r13);
    ck_assert_ptr_nonnull(r14);
    int32_t why;
    memcpy(&why, r13->data, 4);
    ck_assert_int_eq(why, TP_ECRASH);
    memcpy(&why, r14->data, 4);
    ck_assert_int_eq(why, TP_ECRASH);
    // An exit signal sent across to a trapping actor arrives as a message.
    atomic_store(&nlog, 0);
    ck_assert_int_eq(tp_system_exit(sys, watcher, TP_REASON_SHUTDOWN), 0);
    entry *r = await_tag(13, 10);
    ck_assert_ptr_nonnull(r);
    memcpy(&why, r->data, 4);
    ck_assert_int_eq(why, TP_REASON_SHUTDOWN);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

// An actor that streams sequence numbers to the counter on a node, a chunk
// per activation so backpressure can mute it between chunks.
static _Atomic long stream_done, stream_errors;

static int
streamer_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    pstream *s = state;
    if (msg->tag == 1) {
        memcpy(s, msg->data, sizeof *s);
    } else if (msg->tag != 2) {
        record(msg);
        return TP_OK;
    }
    for (int i = 0; i < 2000 && s->next < s->total; i++) {
        int rc = tp_send_name_at(ctx, "counter", s->node, 3, &s->next, 8);
        if (rc == TP_EFULL)
            break;   // muted; resume on the next activation
        if (rc != 0) // no ck_assert per message: each one writes a record
            atomic_fetch_add(&stream_errors, 1);
        s->next++;
    }
    if (s->next < s->total) {
        tp_send(ctx, tp_self(ctx), 2, NULL, 0);
    } else {
        tp_send_name_at(ctx, "counter", s->node, 4, NULL, 0);
        atomic_store(&stream_done, 1);
    }
    return TP_OK;
}

static const tp_behaviour streamer_b = {.name = "streamer",
                                        .state_size = sizeof(pstream),
                                        .handle = streamer_handle};

START_TEST(fifo_million)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", &(tp_node_config){.send_queue = 1024});
    atomic_store(&nlog, 0);
    atomic_store(&stream_done, 0);
    atomic_store(&stream_errors, 0);
    tp_pid st;
    ck_assert_int_eq(tp_spawn(sys, &streamer_b, NULL, NULL, &st), 0);
    pstream ps = {.total = (uint64_t)tpt_scaled(1000000)};
    snprintf(ps.node, sizeof ps.node, "%s", c.node);
    double t0 = now_s();
    ck_assert_int_eq(tp_system_send(sys, st, 1, &ps, sizeof ps), 0);
    entry *e = await_tag(5, 120);
    fprintf(stderr, "node: %llu messages in order in %.2f s\n",
            (unsigned long long)ps.total, now_s() - t0);
    ck_assert_ptr_nonnull(e);
    uint64_t r[2];
    memcpy(r, e->data, sizeof r);
    ck_assert_uint_eq(r[0], ps.total);
    ck_assert_uint_eq(r[1], 0);
    ck_assert_int_eq(atomic_load(&stream_errors), 0);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

// kill -9 or SIGSTOP of the peer: links, monitors and node monitors fire
// with noconnection within the configured bound.
static void
peer_loss(int sig)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, "-t", "1000",
                                       "-b", "200", NULL}),
        0);
    tp_system *sys = tpn_local(
        "alpha", &(tp_node_config){.timeout_ms = 1000, .heartbeat_ms = 200});
    tp_pid probe = probe_new(sys);
    ck_assert_int_eq(tp_system_send(sys, probe, P_NODES, NULL, 0), 0);
    tp_pid victim = remote_pid(sys, probe, "victim", c.node);
    ask_pid(sys, probe, P_LINK, victim);
    ask_pid(sys, probe, P_MONITOR, victim);
    ck_assert_ptr_nonnull(await_tag(TP_TAG_NODEUP, 10));
    // The link and monitor frames are out once a round trip completes.
    tp_pid echo = remote_pid(sys, probe, "echo", c.node);
    (void)echo;
    double t0 = now_s();
    tpn_kill(&c, sig);
    entry *nd = await_tag(TP_TAG_NODEDOWN, 10);
    double took = now_s() - t0;
    ck_assert_ptr_nonnull(nd);
    entry *x = await_tag(TP_TAG_EXIT, 5), *d = await_tag(TP_TAG_DOWN, 5);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(x->reason, TP_REASON_NOCONNECTION);
    ck_assert_int_eq(d->reason, TP_REASON_NOCONNECTION);
    ck_assert_uint_eq(d->from.v, victim.v);
    tp_node_msg nm;
    memcpy(&nm, nd->data, sizeof nm < nd->size ? sizeof nm : nd->size);
    ck_assert_str_eq(nm.node, c.node);
    fprintf(stderr, "node: %s detected in %.0f ms (%s)\n",
            sig == SIGKILL ? "kill -9" : "SIGSTOP", took * 1000, nm.why);
    // Timeout 1 s, checked every 200 ms: well within 3 s even on a slow
    // machine; a kill is seen as soon as the socket closes.
    ck_assert_double_lt(took, sig == SIGKILL ? 2.0 : 3.0);
    if (sig == SIGSTOP) {
        tpn_kill(&c, SIGCONT);
        tpn_stop(&c);
    }
    // Sending to the lost node's actor now fails fast or is dropped; it
    // never blocks.
    tp_system_send(sys, victim, 1, "x", 1);
    tp_system_destroy(&sys);
    tpn_teardown();
}

START_TEST(kill9_fires_noconnection)
{
    peer_loss(SIGKILL);
}
END_TEST

START_TEST(sigstop_detected_by_heartbeat)
{
    peer_loss(SIGSTOP);
}
END_TEST

// Both ends measure the round trip, even when the peer pings far more
// often (its PINGs make us answer, so we are never idle).
START_TEST(both_sides_measure_rtt)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret,
                                                    "-b", "20", NULL}),
                     0);
    tp_system *sys =
        tpn_local("alpha", &(tp_node_config){.heartbeat_ms = 200});
    ck_assert_int_eq(tp_node_connect(sys, c.node, TP_FOREVER), 0);
    tp_peer_info pi = {0};
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(tp_node_peers(sys, &pi, 1), 1);
        if (pi.rtt_us > 0)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_gt(pi.rtt_us, 0);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(restarted_peer_new_incarnation)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    tp_pid old_echo = remote_pid(sys, probe, "echo", c.node);
    tp_peer_info pi;
    ck_assert_int_eq(tp_node_peers(sys, &pi, 1), 1);
    uint32_t inc1 = pi.incarnation;
    char node[TP_NODE_NAME_MAX], listen[64];
    snprintf(node, sizeof node, "%s", c.node);
    snprintf(listen, sizeof listen, "%s", strchr(node, '@') + 1);
    tpn_kill(&c, SIGKILL);
    // Same name and port, new process.
    ck_assert_int_eq(tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret,
                                                    "-l", listen, NULL}),
                     0);
    ck_assert_str_eq(c.node, node);
    ck_assert_int_eq(tp_node_connect(sys, node, 10000), 0);
    // The connect may have found the old connection still up, its loss
    // not yet read: wait (bounded) for the new incarnation.
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tp_node_peers(sys, &pi, 1), 1);
        if (pi.state == TP_PEER_UP && pi.incarnation != inc1)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_ne(pi.incarnation, inc1);
    ck_assert_uint_ge(pi.connects, 2);
    // A pid of the earlier life names no actor any more.
    ck_assert_int_eq(tp_system_send(sys, old_echo, 1, "x", 1), TP_ENOACTOR);
    atomic_store(&nlog, 0);
    tp_pid new_echo = remote_pid(sys, probe, "echo", c.node);
    ck_assert_uint_ne(new_echo.v, old_echo.v);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(simultaneous_connect)
{
    tpn_setup();
    tp_system *sys = tpn_local("alpha", NULL);
    // Both nodes dial each other at once: one connection survives.
    for (int round = 0; round < 3; round++) {
        tpn_child c;
        const char *name = round == 1 ? "aaa" : "zzz"; // either side wins
        ck_assert_int_eq(
            tpn_start(&c, (const char *[]){name, "-s", tpn_secret, "-c",
                                           tp_node_name(sys), NULL}),
            0);
        ck_assert_int_eq(tp_node_connect(sys, c.node, 10000), 0);
        tp_pid probe = probe_new(sys);
        remote_pid(sys, probe, "echo", c.node);
        tp_node_stats ns;
        ck_assert_int_eq(tp_node_stats_get(sys, &ns), 0);
        ck_assert_uint_eq(ns.peers_up, 1);
        tp_system_exit(sys, probe, TP_REASON_KILL);
        tp_node_disconnect(sys, c.node);
        tpn_stop(&c);
        for (int i = 0; i < 5000; i++) {
            tp_node_stats_get(sys, &ns);
            if (ns.peers_up == 0)
                break;
            tpt_nap_us(1000);
        }
        ck_assert_uint_eq(ns.peers_up, 0);
    }
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

// Node beta in a child process, stopped (SIGSTOP) once node alpha, whose
// peer send queue holds 8 messages under `policy`, has the pid of beta's
// "victim": what alpha sends it piles up. Returns alpha; *echo is the pid.
static tp_system *
stopped_peer(tpn_child *c, tp_overflow policy, tp_pid *echo)
{
    tpn_setup();
    ck_assert_int_eq(
        tpn_start(c, (const char *[]){"beta", "-s", tpn_secret, "-t", "60000",
                                      "-b", "10000", NULL}),
        0);
    tp_system *sys =
        tpn_local("alpha", &(tp_node_config){.send_queue = 8,
                                             .overflow = policy,
                                             .timeout_ms = 60000,
                                             .heartbeat_ms = 10000});
    tp_pid probe = probe_new(sys);
    *echo = remote_pid(sys, probe, "victim", c->node);
    tpn_kill(c, SIGSTOP);
    return sys;
}

// A peer that stops reading: the socket buffers fill, then our output
// buffer, then the peer's send queue, whose policy then speaks.
START_TEST(peer_queue_full)
{
    tpn_child c;
    tp_pid echo;
    tp_system *sys = stopped_peer(&c, TP_OVERFLOW_REJECT, &echo);
    size_t size = 64 * 1024;
    char *buf = calloc(1, size);
    int rc = 0;
    long sent = 0;
    // At most a few hundred MB can be buffered before REJECT answers.
    while (sent < 10000 && (rc = tp_system_send(sys, echo, 6, buf, size)) == 0)
        sent++;
    free(buf);
    ck_assert_int_eq(rc, TP_EFULL);
    tp_peer_info pi;
    tp_node_peers(sys, &pi, 1);
    // Some of the queue may have moved on into the output buffer since,
    // as the kernel took more: what is left is still waiting.
    ck_assert_uint_ge(pi.queued, 1);
    ck_assert_int_eq(pi.state, TP_PEER_UP);
    tpn_kill(&c, SIGCONT);
    tpn_stop(&c);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

// The same under DROP_NEWEST: every send is accepted, and what the full
// queue discards is counted in the peer's `dropped`.
START_TEST(peer_queue_drops_counted)
{
    tpn_child c;
    tp_pid echo;
    tp_system *sys = stopped_peer(&c, TP_OVERFLOW_DROP_NEWEST, &echo);
    size_t size = 64 * 1024;
    char *buf = calloc(1, size);
    tp_peer_info pi = {0};
    for (long sent = 0; sent < 10000 && pi.dropped == 0; sent++) {
        ck_assert_int_eq(tp_system_send(sys, echo, 6, buf, size), 0);
        if (sent % 64 == 63)
            tp_node_peers(sys, &pi, 1);
    }
    free(buf);
    ck_assert_uint_ge(pi.dropped, 1);
    tpn_kill(&c, SIGCONT);
    tpn_stop(&c);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

START_TEST(wrong_secret_refused)
{
    tpn_setup();
    char other[160];
    snprintf(other, sizeof other, "%s/other", tpn_dir);
    tpn_write_secret(other, "a-different-secret-of-enough-bytes-here", 0600);
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", other, NULL}), 0);
    tp_system *sys = tpn_local("alpha", NULL);
    ck_assert_int_eq(tp_node_connect(sys, c.node, TP_FOREVER), TP_ENOTCONN);
    tp_node_stats ns;
    ck_assert_int_eq(tp_node_stats_get(sys, &ns), 0);
    ck_assert_uint_ge(ns.auth_failures, 1);
    ck_assert_uint_eq(ns.peers_up, 0);
    // The child is alive and still refuses politely.
    ck_assert_int_eq(kill(c.pid, 0), 0);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(secret_file_checks)
{
    tpn_setup();
    tp_system *sys = tpt_system(1);
    char path[160];
    snprintf(path, sizeof path, "%s/missing", tpn_dir);
    tp_node_config nc = {.name = "alpha", .secret_file = path};
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_ENOENT);
    snprintf(path, sizeof path, "%s/loose", tpn_dir);
    tpn_write_secret(path, "0123456789abcdef0123456789abcdef", 0644);
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EPERM);
    snprintf(path, sizeof path, "%s/short", tpn_dir);
    tpn_write_secret(path, "too short", 0600);
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    nc.secret_file = tpn_dir; // a directory
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EPERM);
    // Listening beyond loopback needs a secret.
    ck_assert_int_eq(
        tp_node_start(
            sys, &(tp_node_config){.name = "alpha", .listen = "0.0.0.0:0"}),
        TP_EINVAL);
    ck_assert_int_eq(
        tp_node_start(sys, &(tp_node_config){.name = "bad name!"}), TP_EINVAL);
    ck_assert_int_eq(tp_node_start(sys, NULL), TP_EINVAL);
    ck_assert_str_eq(tp_node_name(sys), "");
    // Then a good one, once.
    nc.secret_file = tpn_secret;
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EEXIST);
    ck_assert_int_eq(tp_node_name_check(tp_node_name(sys)), 0);
    ck_assert_int_eq(tp_node_connect(sys, "nobody", 0), TP_EINVAL);
    ck_assert_int_eq(tp_node_connect(sys, "x@1.2.3.4:0", 0), TP_EINVAL);
    ck_assert_int_eq(tp_node_connect(sys, "x@127.0.0.1:05", 0), TP_EINVAL);
    ck_assert_int_eq(tp_node_connect(sys, "x@127.0.0.1:5", -2), TP_EINVAL);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

START_TEST(unreachable_node_fails_fast)
{
    tpn_setup();
    tp_system *sys = tpn_local("alpha", NULL);
    tp_pid probe = probe_new(sys);
    // A pid on a node nobody runs: linking to it gets noconnection, as
    // the connection attempt fails (nothing listens on port 1).
    tp_pack pk;
    tp_pack_init(&pk);
    msgpack_pack_ext(tp_pack_packer(&pk), 1 + 17 + 12, TP_PID_EXT_TYPE);
    char body[64] = "\x11ghost@127.0.0.1:1\0\0\0\5\0\0\0\0\0\0\1\2";
    msgpack_pack_ext_body(tp_pack_packer(&pk), body, 1 + 17 + 12);
    msgpack_unpacked u;
    tp_msg m = {.data = pk.buf.data, .size = pk.buf.size};
    ck_assert_int_eq(tp_msg_unpack(&m, &u), 0);
    tp_pid ghost;
    ck_assert_int_eq(tp_unpack_pid(sys, &u.data, &ghost), 0);
    msgpack_unpacked_destroy(&u);
    tp_pack_destroy(&pk);
    ck_assert_uint_ne(tp_pid_node(ghost), 0);
    ask_pid(sys, probe, P_LINK, ghost);
    entry *x = await_tag(TP_TAG_EXIT, 10);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->reason, TP_REASON_NOCONNECTION);
    ck_assert_uint_eq(x->from.v, ghost.v);
    // An explicit connect says it failed; while backing off, sends fail
    // fast instead of queueing.
    ck_assert_int_eq(tp_node_connect(sys, "ghost@127.0.0.1:1", 5000),
                     TP_ENOTCONN);
    int rc =
        tp_system_send_name_at(sys, "echo", "ghost@127.0.0.1:1", 1, "x", 1);
    ck_assert(rc == TP_ENOTCONN || rc == 0);
    tp_peer_info pi;
    ck_assert_int_eq(tp_node_peers(sys, &pi, 1), 1);
    ck_assert_int_ne(pi.state, TP_PEER_UP);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

// Whether this machine can listen on the IPv6 loopback address.
static bool
have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

START_TEST(ipv6_pair)
{
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "ipv6_pair: no IPv6 loopback here, skipped\n");
        return;
    }
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret,
                                                    "-l", "[::1]:0", NULL}),
                     0);
    ck_assert_int_eq(strncmp(c.node, "beta@[::1]:", 11), 0);
    tp_node_config nc = {.listen = "[::1]:0"};
    tp_system *sys = tpn_local("alpha", &nc);
    ck_assert_int_eq(strncmp(tp_node_name(sys), "alpha@[::1]:", 12), 0);
    ck_assert_int_eq(tp_node_name_check(tp_node_name(sys)), 0);
    // Dial, handshake, and a round trip by name and by pid.
    ck_assert_int_eq(tp_node_connect(sys, c.node, 10000), 0);
    tp_pid probe = probe_new(sys);
    tp_pid echo = remote_pid(sys, probe, "echo", c.node);
    psend s = {.to = echo, .tag = 6, .data = "v6", .size = 2};
    ck_assert_int_eq(tp_system_send(sys, probe, P_SEND, &s, sizeof s), 0);
    entry *e = await_tag(6, 10);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(memcmp(e->data, "v6", 2), 0);
    tp_peer_info pi;
    ck_assert_int_eq(tp_node_peers(sys, &pi, 1), 1);
    ck_assert_str_eq(pi.node, c.node);
    ck_assert_int_eq(pi.state, TP_PEER_UP);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

START_TEST(bad_addresses)
{
    // Names carry one spelling of their address: IPv6 in brackets and
    // as inet_ntop writes it, ports without sign or leading zeros.
    ck_assert_int_eq(tp_node_name_check("a@127.0.0.1:4370"), 0);
    ck_assert_int_eq(tp_node_name_check("a@[::1]:4370"), 0);
    ck_assert_int_eq(tp_node_name_check("a@[2001:db8::7]:1"), 0);
    const char *bad[] = {
        "a@::1:4370",
        "a@[::1]4370",
        "a@[::1]:",
        "a@[::1:4370",
        "a@[0:0:0:0:0:0:0:1]:4370",
        "a@[::1%lo]:4370",
        "a@[2001:DB8::7]:1",
        "a@[127.0.0.1]:1",
        "a@127.0.0.1:65536",
        "a@127.0.0.1:+1",
        "a@127.0.0.1:-1",
        "a@127.0.0.1:04370",
        "a@127.0.0.01:4370",
        "a@127.1:4370",
        "a@localhost:4370",
        "a@127.0.0.1:0",
        "a@[::1]:0",
        "a@:4370",
        "a@[]:4370",
        "@127.0.0.1:4370",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tp_node_name_check(bad[i]) == TP_EINVAL,
                      "%s was accepted", bad[i]);
    tpn_setup();
    tp_system *sys = tpt_system(1);
    const char *listen[] = {"[::1",      "::1:0",           "localhost:0",
                            "127.0.0.1", "127.0.0.1:65536", "[::1]:x"};
    for (size_t i = 0; i < sizeof listen / sizeof listen[0]; i++) {
        tp_node_config nc = {.name = "alpha", .listen = listen[i]};
        ck_assert_msg(tp_node_start(sys, &nc) == TP_EINVAL,
                      "listen %s was accepted", listen[i]);
    }
    ck_assert_str_eq(tp_node_name(sys), "");
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

START_TEST(listen_errors_keep_errno)
{
    tpn_setup();
    tp_system *sys = tpt_system(1);
    // 192.0.2.1 (TEST-NET-1) is on no interface of this machine.
    tp_node_config nc = {
        .name = "alpha", .listen = "192.0.2.1:0", .secret_file = tpn_secret};
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EADDRNOTAVAIL);
    if (have_ipv6_loopback()) {
        nc.listen = "[2001:db8::1]:0"; // the documentation prefix
        ck_assert_int_eq(tp_node_start(sys, &nc), TP_EADDRNOTAVAIL);
    }
    // A port in use is still TP_EADDRINUSE.
    tp_system *other = tpn_local("beta", NULL);
    const char *at = strchr(tp_node_name(other), '@');
    nc.listen = at + 1;
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EADDRINUSE);
    tp_system_destroy(&other);
    // The failures left nothing behind: the node starts.
    nc.listen = NULL;
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

// ---- worker polling --------------------------------------------------------
//
// While messages from another node flow, a scheduler thread that looks for
// work reads the node's connections itself. When it then runs a long
// activation, the input must not wait for it to end.

enum { R_START = 210, R_BALL = 7, R_LATE = 9 };

#define RALLY_BUSY_S 5.0 // longest the busy activation holds its thread

static tp_pid rally_echo, rally_probe;
static _Atomic int rally_outcome; // 0 running, 1 reply seen while busy, 2 not

// Sends a ball to the remote echo and back `left` times; the last return
// asks the dedicated probe to send to the echo, then keeps this node's only
// scheduler thread busy until the probe has the answer (or RALLY_BUSY_S).
static int
rally_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    int *left = state;
    if (msg->tag == R_START) {
        memcpy(left, msg->data, sizeof *left);
        ck_assert_int_eq(tp_send(ctx, rally_echo, R_BALL, "b", 1), 0);
        return TP_OK;
    }
    if (msg->tag != R_BALL)
        return TP_OK;
    if (--*left > 0) {
        ck_assert_int_eq(tp_send(ctx, rally_echo, R_BALL, "b", 1), 0);
        return TP_OK;
    }
    psend s = {.to = rally_echo, .tag = R_LATE, .data = "late", .size = 4};
    ck_assert_int_eq(tp_send(ctx, rally_probe, P_SEND, &s, sizeof s), 0);
    double t0 = now_s();
    int outcome = 2;
    while (now_s() - t0 < RALLY_BUSY_S) {
        long n = atomic_load(&nlog);
        for (long i = 0; i < n; i++)
            if (log_[i].tag == R_LATE)
                outcome = 1;
        if (outcome == 1)
            break;
    }
    atomic_store(&rally_outcome, outcome);
    return TP_OK;
}

static const tp_behaviour rally_b = {
    .name = "rally", .state_size = sizeof(int), .handle = rally_handle};

START_TEST(busy_polling_worker_does_not_hold_input)
{
    tpn_setup();
    tpn_child c;
    ck_assert_int_eq(
        tpn_start(&c, (const char *[]){"beta", "-s", tpn_secret, NULL}), 0);
    tp_system *sys = tpt_system(1);
    tp_node_config nc = {.name = "alpha", .secret_file = tpn_secret};
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    atomic_store(&nlog, 0);
    the_sys = sys;
    ck_assert_int_eq(tp_spawn(sys, &probe_b, NULL,
                              &(tp_spawn_opts){.dedicated = true},
                              &rally_probe),
                     0);
    rally_echo = remote_pid(sys, rally_probe, "echo", c.node);
    atomic_store(&nlog, 0);
    atomic_store(&rally_outcome, 0);
    tp_pid rally;
    ck_assert_int_eq(tp_spawn(sys, &rally_b, NULL, NULL, &rally), 0);
    int rounds = 500;
    ck_assert_int_eq(
        tp_system_send(sys, rally, R_START, &rounds, sizeof rounds), 0);
    for (int i = 0; i < 30000 && atomic_load(&rally_outcome) == 0; i++)
        tpt_nap_us(1000);
    ck_assert_msg(atomic_load(&rally_outcome) == 1,
                  "the answer waited for the busy activation to end");
    // The rally's returns were read by the scheduler thread, not only by
    // the I/O thread: the case above is the one polling creates.
    tp_node_stats ns;
    ck_assert_int_eq(tp_node_stats_get(sys, &ns), 0);
    ck_assert_uint_gt(ns.frames_in_polled, 0);
    ck_assert_uint_le(ns.frames_in_polled, ns.frames_in);
    tp_system_destroy(&sys);
    tpn_stop(&c);
    tpn_teardown();
}
END_TEST

Suite *
node_suite(void)
{
    Suite *s = suite_create("node");
    TCase *tc = tcase_create("node");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, remote_send_and_reply);
    tcase_add_test(tc, reply_through_pid_in_payload);
    tcase_add_test(tc, remote_link_and_monitor);
    tcase_add_test(tc, remote_message_then_exit_in_order);
    tcase_add_test(tc, remote_request_fails_fast);
    tcase_add_test(tc, remote_watcher_sees_local_exit);
    tcase_add_test(tc, fifo_million);
    tcase_add_test(tc, kill9_fires_noconnection);
    tcase_add_test(tc, sigstop_detected_by_heartbeat);
    tcase_add_test(tc, both_sides_measure_rtt);
    tcase_add_test(tc, restarted_peer_new_incarnation);
    tcase_add_test(tc, simultaneous_connect);
    tcase_add_test(tc, peer_queue_full);
    tcase_add_test(tc, peer_queue_drops_counted);
    tcase_add_test(tc, wrong_secret_refused);
    tcase_add_test(tc, secret_file_checks);
    tcase_add_test(tc, unreachable_node_fails_fast);
    tcase_add_test(tc, ipv6_pair);
    tcase_add_test(tc, bad_addresses);
    tcase_add_test(tc, listen_errors_keep_errno);
    tcase_add_test(tc, busy_polling_worker_does_not_hold_input);
    suite_add_tcase(s, tc);
    return s;
}
