// SPDX-License-Identifier: MIT
// Introspection through the public API: snapshots of a supervision tree,
// details asked of an actor, and the control socket spoken to raw.
#include "tp_test.h"
#include <troupe/msgpack.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static _Atomic long handled;

static int
worker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    atomic_fetch_add(&handled, 1);
    return TP_OK;
}

static int
worker_describe(const void *state, char *buf, size_t size)
{
    (void)state;
    return snprintf(buf, size, "job=test");
}

static const tp_behaviour worker_b = {
    .name = "worker", .handle = worker_handle, .describe = worker_describe};

static tp_pid
start_tree(tp_system *sys)
{
    static const tp_child_spec kids[] = {
        {.id = "a", .behaviour = &worker_b, .opts = {.name = "wa"}},
        {.id = "b", .behaviour = &worker_b, .opts = {.name = "wb"}},
    };
    tp_sup_spec spec = {.flags = {.strategy = TP_ONE_FOR_ONE,
                                  .intensity = 10,
                                  .period_ms = 10000},
                        .children = kids,
                        .nchildren = 2};
    tp_pid sup;
    ck_assert_int_eq(
        tp_sup_start(sys, &spec, &(tp_spawn_opts){.name = "root"}, &sup), 0);
    return sup;
}

static const tp_actor_info *
find(const tp_snapshot *s, const char *name)
{
    for (size_t i = 0; i < tp_snapshot_len(s); i++)
        if (strcmp(tp_snapshot_at(s, i)->name, name) == 0)
            return tp_snapshot_at(s, i);
    return NULL;
}

START_TEST(snapshot_shows_the_tree)
{
    tp_system *sys = tpt_system(2);
    tp_pid sup = start_tree(sys);
    tp_snapshot *s;
    ck_assert_int_eq(tp_snapshot_take(sys, &s), 0);
    ck_assert_uint_eq(tp_snapshot_len(s), 3);
    const tp_actor_info *root = find(s, "root"), *wa = find(s, "wa");
    const tp_actor_info *wb = find(s, "wb");
    ck_assert_ptr_nonnull(root);
    ck_assert_ptr_nonnull(wa);
    ck_assert_ptr_nonnull(wb);
    // Numbered in start order: the supervisor, then its children in order.
    ck_assert_uint_gt(wa->start_order, root->start_order);
    ck_assert_uint_gt(wb->start_order, wa->start_order);
    uint64_t wb_order = wb->start_order;
    ck_assert_uint_eq(root->pid.v, sup.v);
    ck_assert(tp_pid_is_nil(root->parent));
    ck_assert_uint_eq(wa->parent.v, sup.v);
    ck_assert_str_eq(wa->behaviour, "worker");
    ck_assert_uint_eq(wa->restarts, 0);
    ck_assert_uint_eq(wa->capacity, 1024);
    ck_assert_uint_eq(tp_snapshot_stats(s)->actors, 3);
    tp_pid old = wa->pid;
    tp_snapshot_free(s);
    // A crash: the replacement has a new pid and one restart.
    ck_assert_int_eq(tp_system_exit(sys, old, TP_ECRASH), 0);
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(tp_snapshot_take(sys, &s), 0);
        wa = find(s, "wa");
        if (wa != NULL && wa->pid.v != old.v && wa->restarts == 1)
            break;
        tp_snapshot_free(s);
        s = NULL;
        tpt_nap_us(1000);
    }
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(wa->parent.v, sup.v);
    ck_assert_uint_gt(wa->start_order, wb_order); // restarted: started last
    // Actors spawned from outside, siblings as roots, in spawn order.
    tp_snapshot_free(s);
    tp_pid x, y;
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &x), 0);
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &y), 0);
    ck_assert_int_eq(tp_snapshot_take(sys, &s), 0);
    uint64_t xo = 0, yo = 0, ro = 0;
    for (size_t i = 0; i < tp_snapshot_len(s); i++) {
        const tp_actor_info *a = tp_snapshot_at(s, i);
        if (a->pid.v == x.v)
            xo = a->start_order;
        else if (a->pid.v == y.v)
            yo = a->start_order;
        else if (a->pid.v == sup.v)
            ro = a->start_order;
    }
    ck_assert_uint_gt(xo, ro);
    ck_assert_uint_gt(yo, xo);
    tp_snapshot_free(s);
    ck_assert_int_eq(tp_snapshot_take(NULL, &s), TP_EINVAL);
    ck_assert_uint_eq(tp_snapshot_len(NULL), 0);
    ck_assert_ptr_null(tp_snapshot_at(NULL, 0));
    tp_system_destroy(&sys);
}
END_TEST

static _Atomic long burned;

// While set, a burner waits (10 s at most) before it spins: a test queues
// all its messages first, so that their waits do not depend on how fast
// it sends them.
static atomic_int burner_hold;

// Spins for 5 ms of wall time per message: at least that much run time.
static int
burner_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state, (void)msg;
    for (int i = 0; i < 100000 && atomic_load(&burner_hold); i++)
        tpt_nap_us(100);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec <
           5000000L);
    atomic_fetch_add(&burned, 1);
    return TP_OK;
}

static const tp_behaviour burner_b = {.name = "burner",
                                      .handle = burner_handle};

// Spawns a burner and a worker, gives the burner 4 messages and the
// worker 100, and returns their run times as a snapshot sees them.
static void
run_times(bool on, uint64_t *burner_ns, uint64_t *worker_ns, uint64_t *age_ms)
{
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .cpu_time = on});
    tp_pid b, w;
    atomic_store(&burned, 0);
    atomic_store(&handled, 0);
    ck_assert_int_eq(tp_spawn(sys, &burner_b, NULL, NULL, &b), 0);
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &w), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tp_system_send(sys, b, 1, NULL, 0), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(tp_system_send(sys, w, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&burned, 4, 10));
    ck_assert(tpt_wait_ge(&handled, 100, 10));
    tp_snapshot *s;
    ck_assert_int_eq(tp_snapshot_take(sys, &s), 0);
    for (size_t i = 0; i < tp_snapshot_len(s); i++) {
        const tp_actor_info *a = tp_snapshot_at(s, i);
        if (a->pid.v == b.v) {
            *burner_ns = a->cpu_ns;
            *age_ms = a->age_ms;
        } else if (a->pid.v == w.v) {
            *worker_ns = a->cpu_ns;
        }
    }
    tp_snapshot_free(s);
    tp_system_destroy(&sys);
}

START_TEST(snapshot_cpu_time)
{
    uint64_t burner = 0, worker = 0, age = 0;
    run_times(true, &burner, &worker, &age);
    // 4 x 5 ms spun inside callbacks, measured in ticks whose rate a young
    // system knows within about 1 % (2 % of slack); no more than the
    // actor's whole life (age is read from a coarse clock: a few ms).
    ck_assert_uint_ge(burner, 19600000);
    ck_assert_uint_le(burner / 1000000, age + 20);
    ck_assert_uint_lt(worker, burner);
    burner = worker = 1;
    run_times(false, &burner, &worker, &age);
    ck_assert_uint_eq(burner, 0);
    ck_assert_uint_eq(worker, 0);
}
END_TEST

START_TEST(detail_from_the_actor)
{
    tp_system *sys = tpt_system(2);
    tp_pid sup = start_tree(sys), wa;
    ck_assert_int_eq(tp_whereis(sys, "wa", &wa), 0);
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, sup, 5000, &d), 0);
    ck_assert(d.trap_exit); // supervisors trap exits
    ck_assert_uint_eq(d.nlinks, 2);
    ck_assert_int_eq(tp_actor_detail_get(sys, wa, TP_FOREVER, &d), 0);
    ck_assert_uint_eq(d.nlinks, 1);
    ck_assert_uint_eq(d.links[0].v, sup.v);
    ck_assert_str_eq(d.describe, "job=test");
    ck_assert_str_eq(d.info.name, "wa");
    // A dead pid, a bad call.
    ck_assert_int_eq(tp_system_exit(sys, wa, TP_REASON_KILL), 0);
    int rc = 0;
    for (int i = 0; i < 5000; i++) {
        if ((rc = tp_actor_detail_get(sys, wa, 5000, &d)) == TP_ENOACTOR)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_int_eq(rc, TP_ENOACTOR);
    ck_assert_int_eq(tp_actor_detail_get(sys, wa, 10, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_actor_detail_get(sys, sup, -2, &d), TP_EINVAL);
    tp_system_destroy(&sys);
}
END_TEST

// Describes itself as `*state` bytes of 'x': as long as it is asked to.
static int
long_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    *(size_t *)state = *(size_t *)arg;
    return 0;
}

static int
long_describe(const void *state, char *buf, size_t size)
{
    size_t want = *(const size_t *)state, n = want < size ? want : size - 1;
    memset(buf, 'x', n);
    buf[n] = '\0';
    return (int)n;
}

static const tp_behaviour long_b = {.name = "long",
                                    .state_size = sizeof(size_t),
                                    .init = long_init,
                                    .handle = worker_handle,
                                    .describe = long_describe};

static size_t
described_len(tp_system *sys, size_t want)
{
    tp_pid pid;
    tp_actor_detail d;
    ck_assert_int_eq(tp_spawn(sys, &long_b, &want, NULL, &pid), 0);
    ck_assert_int_eq(tp_actor_detail_get(sys, pid, 5000, &d), 0);
    ck_assert_int_eq(tp_system_exit(sys, pid, TP_REASON_KILL), 0);
    return strspn(d.describe, "x") == strlen(d.describe) ? strlen(d.describe)
                                                         : 0;
}

START_TEST(detail_describe_whole_up_to_the_limit)
{
    ck_assert_uint_ge(TP_DESCRIBE_MAX, 4096);
    tp_system *sys = tpt_system(2);
    ck_assert_uint_eq(described_len(sys, 300), 300);
    ck_assert_uint_eq(described_len(sys, TP_DESCRIBE_MAX), TP_DESCRIBE_MAX);
    ck_assert_uint_eq(described_len(sys, TP_DESCRIBE_MAX + 100),
                      TP_DESCRIBE_MAX);
    // A supervisor of 12 children lists every one of them.
    tp_child_spec kids[12];
    char ids[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(ids[i], sizeof ids[i], "kid%d", i);
        kids[i] = (tp_child_spec){.id = ids[i], .behaviour = &worker_b};
    }
    tp_sup_spec spec = {.children = kids, .nchildren = 12};
    tp_pid sup;
    ck_assert_int_eq(tp_sup_start(sys, &spec, NULL, &sup), 0);
    tp_actor_detail d;
    ck_assert_int_eq(tp_actor_detail_get(sys, sup, 5000, &d), 0);
    ck_assert_uint_gt(strlen(d.describe), 256);
    ck_assert_ptr_nonnull(strstr(d.describe, "children=12 [id=kid0 "));
    const char *last = strstr(d.describe, " [id=kid11 ");
    ck_assert_ptr_nonnull(last);
    ck_assert_ptr_nonnull(strstr(last, " state=running restarts=0]"));
    ck_assert_int_eq(d.describe[strlen(d.describe) - 1], ']');
    tp_system_destroy(&sys);
}
END_TEST

// ---- the control socket, spoken raw ----------------------------------------

static char dir[32], sock[64];

static void
make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/tp-ctl-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/node.sock", dir);
}

static void
remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int
dial(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void
send_raw(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

static void
send_frame(int fd, const void *p, size_t n)
{
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};
    send_raw(fd, h, 4);
    send_raw(fd, p, n);
}

static bool
read_n(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0)
            return false;
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

// Reads one response into `u` (destroy it after). Strings in `u` point
// into the frame, which stays until the next response is read.
static char *frame;

static void
recv_frame(int fd, msgpack_unpacked *u)
{
    uint8_t h[4];
    ck_assert(read_n(fd, h, 4));
    size_t n =
        (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    free(frame);
    char *buf = frame = malloc(n);
    ck_assert(read_n(fd, buf, n));
    msgpack_unpacked_init(u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(u, buf, n, &off),
                     MSGPACK_UNPACK_SUCCESS);
    if (getenv("TP_DEBUG_CTL")) {
        msgpack_object_print(stderr, u->data);
        fputc(10, stderr);
    }
    ck_assert_int_eq(u->data.type, MSGPACK_OBJECT_MAP);
}

static const msgpack_object *
get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
            return &kv->val;
    }
    return NULL;
}

static bool
is_ok(const msgpack_object *m)
{
    const msgpack_object *ok = get(m, "ok");
    const msgpack_object *err = get(m, "error");
    if (err != NULL && err->type == MSGPACK_OBJECT_STR)
        fprintf(stderr, "control: error \"%.*s\"\n", (int)err->via.str.size,
                err->via.str.ptr);
    return ok != NULL && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

static bool
str_eq(const msgpack_object *o, const char *s)
{
    return o != NULL && o->type == MSGPACK_OBJECT_STR &&
           o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

// Sends {"op": op[, "pid": pid][, "reason": reason]} and reads the reply.
static void
ask(int fd, const char *op, const char *pid, const char *reason,
    msgpack_unpacked *u)
{
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 1 + (pid != NULL) + (reason != NULL));
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, op, strlen(op));
    if (pid) {
        msgpack_pack_str_with_body(pk, "pid", 3);
        msgpack_pack_str_with_body(pk, pid, strlen(pid));
    }
    if (reason) {
        msgpack_pack_str_with_body(pk, "reason", 6);
        msgpack_pack_str_with_body(pk, reason, strlen(reason));
    }
    send_frame(fd, p.buf.data, p.buf.size);
    tp_pack_destroy(&p);
    recv_frame(fd, u);
}

START_TEST(control_socket_requests)
{
    make_dir();
    tp_system *sys = tpt_system(2);
    tp_pid sup = start_tree(sys), wa;
    ck_assert_int_eq(tp_whereis(sys, "wa", &wa), 0);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    ck_assert_int_eq(tp_control_start(sys, sock), TP_EEXIST);
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    int fd = dial();
    msgpack_unpacked u;
    // snapshot
    ask(fd, "snapshot", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    const msgpack_object *actors = get(&u.data, "actors");
    ck_assert_ptr_nonnull(actors);
    ck_assert_int_eq(actors->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(actors->via.array.size, 3);
    char sup_s[TP_PID_STRLEN], wa_s[TP_PID_STRLEN];
    tp_pid_format(sup, sup_s, sizeof sup_s);
    tp_pid_format(wa, wa_s, sizeof wa_s);
    int seen = 0;
    for (uint32_t i = 0; i < actors->via.array.size; i++) {
        const msgpack_object *a = &actors->via.array.ptr[i];
        if (str_eq(get(a, "name"), "wa")) {
            ck_assert(str_eq(get(a, "pid"), wa_s));
            ck_assert(str_eq(get(a, "parent"), sup_s));
            ck_assert(str_eq(get(a, "behaviour"), "worker"));
            ck_assert(str_eq(get(a, "status"), "waiting"));
            ck_assert_uint_eq(get(a, "capacity")->via.u64, 1024);
            ck_assert_uint_eq(get(a, "restarts")->via.u64, 0);
            ck_assert_uint_gt(get(a, "start_order")->via.u64, 0);
            seen++;
        }
        if (str_eq(get(a, "name"), "root")) {
            ck_assert_int_eq(get(a, "parent")->type, MSGPACK_OBJECT_NIL);
            seen++;
        }
    }
    ck_assert_int_eq(seen, 2);
    msgpack_unpacked_destroy(&u);
    // info
    ask(fd, "info", wa_s, NULL, &u);
    ck_assert(is_ok(&u.data));
    const msgpack_object *a = get(&u.data, "actor");
    ck_assert(str_eq(get(a, "describe"), "job=test"));
    ck_assert_uint_eq(get(a, "links")->via.array.size, 1);
    ck_assert(str_eq(&get(a, "links")->via.array.ptr[0], sup_s));
    msgpack_unpacked_destroy(&u);
    // stats and nodes
    ask(fd, "stats", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    ck_assert_uint_eq(get(&u.data, "actors")->via.u64, 3);
    ck_assert_uint_eq(get(&u.data, "workers")->via.array.size, 2);
    msgpack_unpacked_destroy(&u);
    ask(fd, "nodes", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    ck_assert(str_eq(get(&u.data, "node"), ""));
    msgpack_unpacked_destroy(&u);
    // kill: the supervisor restarts the child under a new pid
    ask(fd, "kill", wa_s, "bogus", &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    ask(fd, "kill", wa_s, NULL, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    tp_pid now = wa;
    for (int i = 0; i < 5000 && now.v == wa.v; i++) {
        if (tp_whereis(sys, "wa", &now) != 0)
            now = wa;
        tpt_nap_us(1000);
    }
    ck_assert_uint_ne(now.v, wa.v);
    // info and kill of the dead pid
    ask(fd, "info", wa_s, NULL, &u);
    ck_assert(!is_ok(&u.data));
    ck_assert(str_eq(get(&u.data, "error"), "no such actor"));
    msgpack_unpacked_destroy(&u);
    ask(fd, "kill", wa_s, NULL, &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    ask(fd, "info", "<nonsense>", NULL, &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    ask(fd, "frobnicate", NULL, NULL, &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    // A description of TP_DESCRIBE_MAX bytes arrives whole.
    size_t want = TP_DESCRIBE_MAX;
    tp_pid talker;
    char talker_s[TP_PID_STRLEN];
    ck_assert_int_eq(tp_spawn(sys, &long_b, &want, NULL, &talker), 0);
    tp_pid_format(talker, talker_s, sizeof talker_s);
    ask(fd, "info", talker_s, NULL, &u);
    ck_assert(is_ok(&u.data));
    const msgpack_object *desc = get(get(&u.data, "actor"), "describe");
    ck_assert_int_eq(desc->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(desc->via.str.size, TP_DESCRIBE_MAX);
    msgpack_unpacked_destroy(&u);
    close(fd);
    tp_system_destroy(&sys);
    // The socket is gone with the system.
    ck_assert_int_ne(stat(sock, &st), 0);
    remove_dir();
}
END_TEST

START_TEST(control_socket_bad_input)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    msgpack_unpacked u;
    static const uint8_t bad[][8] = {
        {0xc1},                         // never used in msgpack
        {0x93, 0x01, 0x02, 0x03},       // an array, not a map
        {0xdd, 0xff, 0x00, 0x00, 0x00}, // four billion elements announced
        {0x81, 0x01, 0x02},             // no "op"
    };
    static const size_t len[] = {1, 4, 5, 3};
    for (size_t i = 0; i < 4; i++) {
        int fd = dial();
        send_frame(fd, bad[i], len[i]);
        recv_frame(fd, &u);
        ck_assert(!is_ok(&u.data));
        msgpack_unpacked_destroy(&u);
        char c;
        ck_assert_int_eq(read(fd, &c, 1), 0); // closed after the error
        close(fd);
    }
    // Oversized and zero-length frames.
    int fd = dial();
    send_raw(fd, "\x7f\xff\xff\xff", 4);
    recv_frame(fd, &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
    fd = dial();
    send_raw(fd, "\0\0\0\0", 4);
    recv_frame(fd, &u);
    ck_assert(!is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
    // A client that sends half a frame and goes away.
    fd = dial();
    send_raw(fd, "\0\0\0\x10\x81", 5);
    close(fd);
    // The node still answers.
    fd = dial();
    ask(fd, "stats", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// Sends a trace request for `pid`: `what` (NULL: left out) and `count`
// (0: left out; -1: the bad value 0).
static void
ask_trace(int fd, const char *pid, const char *what, long count,
          msgpack_unpacked *u)
{
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 2 + (what != NULL) + (count != 0));
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, "trace", 5);
    msgpack_pack_str_with_body(pk, "pid", 3);
    msgpack_pack_str_with_body(pk, pid, strlen(pid));
    if (what != NULL) {
        msgpack_pack_str_with_body(pk, "what", 4);
        msgpack_pack_array(pk, 1);
        msgpack_pack_str_with_body(pk, what, strlen(what));
    }
    if (count != 0) {
        msgpack_pack_str_with_body(pk, "count", 5);
        msgpack_pack_int64(pk, count < 0 ? 0 : count);
    }
    send_frame(fd, p.buf.data, p.buf.size);
    tp_pack_destroy(&p);
    recv_frame(fd, u);
}

static void
expect_error(msgpack_unpacked *u, const char *why)
{
    ck_assert(!is_ok(&u->data));
    ck_assert(str_eq(get(&u->data, "error"), why));
    msgpack_unpacked_destroy(u);
}

START_TEST(control_socket_trace)
{
    make_dir();
    tp_system *sys = tpt_system(2);
    start_tree(sys);
    tp_pid wa;
    ck_assert_int_eq(tp_whereis(sys, "wa", &wa), 0);
    char wa_s[TP_PID_STRLEN];
    tp_pid_format(wa, wa_s, sizeof wa_s);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    int fd = dial(), fd2 = dial();
    msgpack_unpacked u;

    ask(fd, "trace_next", NULL, NULL, &u);
    expect_error(&u, "no trace on this connection");
    ask_trace(fd, wa_s, "everything", 0, &u);
    expect_error(&u, "bad \"what\"");
    ask_trace(fd, wa_s, NULL, -1, &u);
    expect_error(&u, "bad \"count\"");
    ask_trace(fd, wa_s, NULL, 2000000, &u);
    expect_error(&u, "bad \"count\"");
    ask_trace(fd, "<0.4000.9>", NULL, 0, &u);
    expect_error(&u, "no such actor");

    // Three messages, traced on fd; fd2 cannot trace the same actor.
    ask_trace(fd, wa_s, "received", 3, &u);
    ck_assert(is_ok(&u.data));
    ck_assert(str_eq(get(&u.data, "pid"), wa_s));
    ck_assert(str_eq(get(&u.data, "end"), "running"));
    ck_assert_uint_eq(get(&u.data, "events")->via.array.size, 0);
    msgpack_unpacked_destroy(&u);
    ask_trace(fd2, wa_s, NULL, 0, &u);
    expect_error(&u, "already traced");
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_int_eq(tp_system_send(sys, wa, 40 + i, "abc", 3), 0);
    uint32_t got = 0;
    bool over = false;
    for (int round = 0; round < 60 && !over; round++) {
        ask(fd, "trace_next", NULL, NULL, &u);
        ck_assert(is_ok(&u.data));
        const msgpack_object *ev = get(&u.data, "events");
        for (uint32_t i = 0; i < ev->via.array.size; i++, got++) {
            const msgpack_object *e = &ev->via.array.ptr[i];
            ck_assert(str_eq(get(e, "kind"), "received"));
            ck_assert_uint_eq(get(e, "seq")->via.u64, got + 1);
            ck_assert_uint_eq(get(e, "tag")->via.u64, 40 + got);
            ck_assert_uint_eq(get(e, "size")->via.u64, 3);
            ck_assert(str_eq(get(e, "from"), ""));
            ck_assert_int_ge(get(e, "wait_us")->via.i64, 0);
        }
        over = !str_eq(get(&u.data, "end"), "running");
        if (over) {
            ck_assert(str_eq(get(&u.data, "end"), "count"));
            ck_assert_uint_eq(get(&u.data, "recorded")->via.u64, 3);
            ck_assert_uint_eq(get(&u.data, "dropped")->via.u64, 0);
        }
        msgpack_unpacked_destroy(&u);
    }
    ck_assert(over);
    ck_assert_uint_eq(got, 3);
    ask(fd, "trace_next", NULL, NULL, &u);
    expect_error(&u, "no trace on this connection");

    // A client that goes away takes its trace with it.
    ask_trace(fd, wa_s, NULL, 0, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
    bool free_again = false;
    for (int i = 0; i < 5000 && !free_again; i++) {
        ask_trace(fd2, wa_s, "sent", 0, &u);
        free_again = is_ok(&u.data);
        msgpack_unpacked_destroy(&u);
        if (!free_again)
            tpt_nap_us(1000);
    }
    ck_assert(free_again);
    // The actor exits: the reply says so.
    ck_assert_int_eq(tp_system_exit(sys, wa, TP_REASON_KILL), 0);
    over = false;
    for (int round = 0; round < 60 && !over; round++) {
        ask(fd2, "trace_next", NULL, NULL, &u);
        ck_assert(is_ok(&u.data));
        over = str_eq(get(&u.data, "end"), "exited");
        msgpack_unpacked_destroy(&u);
    }
    ck_assert(over);
    close(fd2);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// A program's ops: answered later from another thread, refused when the
// wait runs out (the late answer is dropped), and unknown without one.
static tp_control_call *_Atomic prog_call;
static _Atomic int prog_calls;
static char prog_seen[64];

static void
prog_op(void *arg, tp_control_call *call, const char *op,
        const char *const *keys, const char *const *values, size_t n)
{
    (void)arg;
    snprintf(prog_seen, sizeof prog_seen, "%s %zu %s=%s", op, n,
             n ? keys[0] : "-", n ? values[0] : "-");
    atomic_store(&prog_call, call);
    prog_calls++;
}

START_TEST(control_socket_program_ops)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_control_serve(sys, prog_op, NULL, 5), TP_ENOENT);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    int fd = dial();
    msgpack_unpacked u;
    ask(fd, "greet", NULL, NULL, &u); // no program op yet
    ck_assert(!is_ok(&u.data));
    ck_assert(str_eq(get(&u.data, "error"), "unknown op"));
    msgpack_unpacked_destroy(&u);
    ck_assert_int_eq(tp_control_serve(sys, NULL, NULL, 5), TP_EINVAL);
    ck_assert_int_eq(tp_control_serve(sys, prog_op, NULL, 0.5), TP_EINVAL);
    ck_assert_int_eq(tp_control_serve(sys, prog_op, NULL, 1), 0);
    // Answered from this thread while the client waits.
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, "greet", 5);
    msgpack_pack_str_with_body(pk, "who", 3);
    msgpack_pack_str_with_body(pk, "you", 3);
    send_frame(fd, p.buf.data, p.buf.size);
    for (int i = 0; i < 10000 && atomic_load(&prog_call) == NULL; i++)
        tpt_nap_us(1000);
    tp_control_call *k = atomic_exchange(&prog_call, NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(prog_seen, "greet 1 who=you");
    const char *keys[] = {"hello"}, *vals[] = {"you"};
    ck_assert_int_eq(tp_control_answer(k, true, keys, vals, 1), 0);
    recv_frame(fd, &u);
    ck_assert(is_ok(&u.data));
    ck_assert(str_eq(get(&u.data, "hello"), "you"));
    msgpack_unpacked_destroy(&u);
    // Not answered within its second: the client is told; a late answer
    // is dropped.
    send_frame(fd, p.buf.data, p.buf.size);
    recv_frame(fd, &u);
    ck_assert(!is_ok(&u.data));
    ck_assert(
        str_eq(get(&u.data, "error"), "the node did not answer in time"));
    msgpack_unpacked_destroy(&u);
    k = atomic_exchange(&prog_call, NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(tp_control_answer(k, false, keys, vals, 1), TP_ENOENT);
    // A client that goes away before the answer.
    send_frame(fd, p.buf.data, p.buf.size);
    for (int i = 0; i < 10000 && atomic_load(&prog_call) == NULL; i++)
        tpt_nap_us(1000);
    close(fd);
    k = atomic_exchange(&prog_call, NULL);
    ck_assert_ptr_nonnull(k);
    // The connection's close may come before or after: either way the
    // call is freed once both let go (ASan checks).
    int rc = tp_control_answer(k, true, keys, vals, 1);
    ck_assert(rc == 0 || rc == TP_ENOENT);
    ck_assert_int_eq(tp_control_answer(NULL, true, NULL, NULL, 0), TP_EINVAL);
    tp_pack_destroy(&p);
    ck_assert_int_eq(prog_calls, 3);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

START_TEST(control_socket_refusals)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    // A directory open to others is refused.
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(tp_control_start(sys, sock), TP_EPERM);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    // A missing directory is created 0700.
    char sub[96];
    snprintf(sub, sizeof sub, "%s/run/x.sock", dir);
    ck_assert_int_eq(tp_control_start(sys, sub), 0);
    struct stat st;
    snprintf(sub, sizeof sub, "%s/run", dir);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    // Another system may not take a live node's socket...
    tp_system *other = tpt_system(1);
    snprintf(sub, sizeof sub, "%s/run/x.sock", dir);
    ck_assert_int_eq(tp_control_start(other, sub), TP_EEXIST);
    tp_system_destroy(&sys);
    // ...but takes over one left behind.
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sub);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(lfd); // a stale socket file, nobody listening
    ck_assert_int_eq(tp_control_start(other, sub), 0);
    ck_assert_int_eq(tp_control_start(NULL, sub), TP_EINVAL);
    tp_system_destroy(&other);
    remove_dir();
}
END_TEST

// ---- metrics
// ------------------------------------------------------------------

#include <arpa/inet.h>
#include <netinet/in.h>

// GETs `path` from 127.0.0.1:port; returns the whole response (free it).
static char *
http_get(uint16_t port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    send_raw(fd, request, strlen(request));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        ck_assert_int_gt(poll(&pf, 1, 10000), 0);
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        ck_assert_int_ge(r, 0);
        if (r == 0)
            break;
        len += (size_t)r;
        ck_assert_uint_lt(len, cap - 1);
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

static bool
metric_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return false;
    return true;
}

// The value of the first sample line starting with `key` (name and
// labels), or -1.
static long
sample(const char *body, const char *key)
{
    size_t kl = strlen(key);
    for (const char *l = body; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
            return atol(l + kl + 1);
    return -1;
}

// Seventy behaviours, more than a worker keeps rows for: each still gets
// its own series, and a name cut at 47 bytes is cut between characters.
#define MANY_BEHAVIOURS 70
static char many_names[MANY_BEHAVIOURS][64];
static tp_behaviour many_b[MANY_BEHAVIOURS];

START_TEST(message_waits_of_many_behaviours)
{
    for (int i = 0; i < MANY_BEHAVIOURS; i++) {
        snprintf(many_names[i], sizeof many_names[i], "many%02d", i);
        many_b[i] =
            (tp_behaviour){.name = many_names[i], .handle = worker_handle};
    }
    // Behaviour 0's name: 45 ASCII bytes (MANY_CUT, "many00-" and 'a's),
    // then a 3-byte character (the euro sign) that the 47-byte cut splits:
    // the metrics keep the 45 bytes alone.
    enum { MANY_CUT = 45 };
    char cut[MANY_CUT + 1];
    memset(cut, 'a', MANY_CUT);
    memcpy(cut, "many00-", 7);
    cut[MANY_CUT] = '\0';
    snprintf(many_names[0], sizeof many_names[0], "%s\xe2\x82\xac", cut);
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 1, .cpu_time = true, .wait_sample = 1});
    uint16_t port = 0;
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    atomic_store(&handled, 0);
    for (int i = 0; i < MANY_BEHAVIOURS; i++) {
        tp_pid p;
        ck_assert_int_eq(tp_spawn(sys, &many_b[i], NULL, NULL, &p), 0);
        ck_assert_int_eq(tp_system_send(sys, p, 1, NULL, 0), 0);
    }
    ck_assert(tpt_wait_ge(&handled, MANY_BEHAVIOURS, 10));
    char *r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    char *body = strstr(r, "\r\n\r\n") + 4;
    for (int i = 1; i < MANY_BEHAVIOURS; i++) {
        char key[128];
        snprintf(key, sizeof key,
                 "troupe_message_wait_seconds_count{behaviour=\"%s\"}",
                 many_names[i]);
        ck_assert_int_eq(sample(body, key), 1);
    }
    char key[128];
    snprintf(key, sizeof key,
             "troupe_message_wait_seconds_count{behaviour=\"%s\"}", cut);
    ck_assert_int_eq(sample(body, key), 1);
    free(r);
    tp_system_destroy(&sys);
}
END_TEST

// Four messages queued at once to an actor that spins 5 ms on each: the
// n-th waits at least 5(n-1) ms in its mailbox. The snapshot's wait
// figures say so; /metrics has the behaviour's histogram, and keeps it
// once the actor is gone. A system that does not measure shows none.
START_TEST(message_waits_measured)
{
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 2, .cpu_time = true, .wait_sample = 1});
    uint16_t port = 0;
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    tp_pid b, w;
    atomic_store(&burned, 0);
    atomic_store(&handled, 0);
    ck_assert_int_eq(tp_spawn(sys, &burner_b, NULL, NULL, &b), 0);
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &w), 0);
    // The first waits in the callback until all four are queued: the
    // others then wait behind 5, 10 and 15 ms of spinning at least.
    atomic_store(&burner_hold, 1);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tp_system_send(sys, b, 1, NULL, 0), 0);
    tp_actor_info info;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tp_actor_info_get(sys, b, &info), 0);
        if (info.mailbox >= 3)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_uint_ge(info.mailbox, 3);
    atomic_store(&burner_hold, 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(tp_system_send(sys, w, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&burned, 4, 10));
    ck_assert(tpt_wait_ge(&handled, 100, 10));
    ck_assert_int_eq(tp_actor_info_get(sys, b, &info), 0);
    ck_assert_uint_eq(info.waits, 4);
    uint64_t in_buckets = 0, under_4ms = 0;
    for (unsigned i = 0; i < TP_WAIT_BUCKETS; i++) {
        in_buckets += info.wait_hist[i];
        if (i <= 12) // below 2^12 us
            under_4ms += info.wait_hist[i];
    }
    ck_assert_uint_eq(in_buckets, 4);
    ck_assert_uint_le(under_4ms, 1); // only the first can have
    // Less a little: the tick rate of a young system is known within
    // about 1 %.
    ck_assert_uint_ge(info.wait_p50_us, 4900);
    ck_assert_uint_le(info.wait_p50_us, info.wait_p99_us);
    ck_assert_uint_ge(info.wait_p99_us, 14800); // the fourth's, at most max
    ck_assert_uint_le(info.wait_p99_us, info.wait_max_us);
    ck_assert_uint_ge(info.wait_sum_us, 29600);
    ck_assert_uint_ge(info.wait_sum_us, info.wait_max_us);
    ck_assert_uint_le(info.wait_sum_us, 4 * info.wait_max_us);
    ck_assert_int_eq(tp_actor_info_get(sys, w, &info), 0);
    ck_assert_uint_eq(info.waits, 100);
    char *r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    char *body = strstr(r, "\r\n\r\n") + 4;
    ck_assert_ptr_nonnull(
        strstr(body, "# TYPE troupe_message_wait_seconds histogram\n"));
    ck_assert_int_eq(
        sample(body,
               "troupe_message_wait_seconds_count{behaviour=\"burner\"}"),
        4);
    ck_assert_int_eq(sample(body, "troupe_message_wait_seconds_bucket{"
                                  "behaviour=\"burner\",le=\"+Inf\"}"),
                     4);
    ck_assert_int_le(sample(body, "troupe_message_wait_seconds_bucket{"
                                  "behaviour=\"burner\",le=\"0.004096\"}"),
                     1);
    ck_assert_int_eq(
        sample(body,
               "troupe_message_wait_seconds_count{behaviour=\"worker\"}"),
        100);
    free(r);
    // Gone, the burner's waits stay counted; a new one adds its own.
    ck_assert_int_eq(tp_system_exit(sys, b, TP_REASON_KILL), 0);
    int rc = 0;
    for (int i = 0; i < 5000; i++) {
        if ((rc = tp_actor_info_get(sys, b, &info)) == TP_ENOACTOR)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_int_eq(rc, TP_ENOACTOR);
    ck_assert_int_eq(tp_spawn(sys, &burner_b, NULL, NULL, &b), 0);
    ck_assert_int_eq(tp_system_send(sys, b, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&burned, 5, 10));
    r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    body = strstr(r, "\r\n\r\n") + 4;
    ck_assert_int_eq(
        sample(body,
               "troupe_message_wait_seconds_count{behaviour=\"burner\"}"),
        5);
    free(r);
    tp_system_destroy(&sys);
    // By default one message in 64 is timed on average, the gaps drawn from
    // 1 to 127: about 100 of 6400 (at least 50, at most 6400).
    sys = tpt_system_cfg(&(tp_config){.threads = 1, .cpu_time = true});
    atomic_store(&handled, 0);
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &w), 0);
    for (int i = 0; i < 6400; i++)
        ck_assert_int_eq(tp_system_send(sys, w, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&handled, 6400, 10));
    ck_assert_int_eq(tp_actor_info_get(sys, w, &info), 0);
    ck_assert_uint_ge(info.waits, 50);
    ck_assert_uint_le(info.waits, 160);
    tp_system_destroy(&sys);
    tp_config bad = {.cpu_time = true, .wait_sample = -1};
    ck_assert_int_eq(tp_system_new(&bad, &sys), TP_EINVAL);
    bad.wait_sample = 65537;
    ck_assert_int_eq(tp_system_new(&bad, &sys), TP_EINVAL);
    // Not measured: no figures, no histogram.
    sys = tpt_system_cfg(&(tp_config){.threads = 1});
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    atomic_store(&handled, 0);
    ck_assert_int_eq(tp_spawn(sys, &worker_b, NULL, NULL, &w), 0);
    ck_assert_int_eq(tp_system_send(sys, w, 1, NULL, 0), 0);
    ck_assert(tpt_wait_ge(&handled, 1, 10));
    ck_assert_int_eq(tp_actor_info_get(sys, w, &info), 0);
    ck_assert_uint_eq(info.waits, 0);
    ck_assert_uint_eq(info.wait_max_us, 0);
    r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_ptr_null(strstr(r, "troupe_message_wait_seconds"));
    free(r);
    tp_system_destroy(&sys);
}
END_TEST

// /metrics on the IPv6 loopback, and the addresses it refuses.
START_TEST(metrics_ipv6)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have6 =
        probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0)
        close(probe);
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_metrics_start(sys, "[::1", false, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_metrics_start(sys, "::1:80", false, NULL), TP_EINVAL);
    ck_assert_int_eq(tp_metrics_start(sys, "[2001:db8::1]:0", false, NULL),
                     TP_EINVAL); // not loopback, allow_remote off
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:-1", false, NULL),
                     TP_EINVAL);
    if (!have6) { // no IPv6 loopback here: the refusals are what we check
        tp_system_destroy(&sys);
        return;
    }
    uint16_t port = 0;
    ck_assert_int_eq(tp_metrics_start(sys, "[::1]:0", false, &port), 0);
    ck_assert_uint_ne(port, 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    lo.sin6_port = htons(port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&lo, sizeof lo), 0);
    const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
    send_raw(fd, req, strlen(req));
    char buf[64] = {0};
    size_t len = 0;
    while (len < 17) {
        struct pollfd pf = {fd, POLLIN, 0};
        ck_assert_int_gt(poll(&pf, 1, 10000), 0);
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        ck_assert_int_gt(r, 0);
        len += (size_t)r;
    }
    ck_assert_int_eq(strncmp(buf, "HTTP/1.0 200 OK\r\n", 17), 0);
    close(fd);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(metrics_scrape)
{
    tp_system *sys = tpt_system(2);
    start_tree(sys);
    tp_pid wa;
    ck_assert_int_eq(tp_whereis(sys, "wa", &wa), 0);
    ck_assert_int_eq(tp_system_exit(sys, wa, TP_ECRASH), 0);
    uint16_t port = 0;
    ck_assert_int_eq(tp_metrics_start(sys, "10.1.2.3:0", false, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_metrics_start(sys, "nonsense", false, NULL),
                     TP_EINVAL);
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    ck_assert_uint_ne(port, 0);
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, NULL),
                     TP_EEXIST);
    char *r = NULL;
    // Wait until the restart is counted.
    for (int i = 0; i < 5000; i++) {
        free(r);
        r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
        const char *b = strstr(r, "\r\n\r\n");
        if (b && sample(b + 4, "troupe_restarts_total") == 1)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_int_eq(strncmp(r, "HTTP/1.0 200 OK\r\n", 17), 0);
    ck_assert_ptr_nonnull(strstr(r, "text/plain; version=0.0.4"));
    char *body = strstr(r, "\r\n\r\n") + 4;
    // Line by line: comments, or NAME[{labels}] VALUE.
    int samples = 0;
    for (char *l = body; *l;) {
        char *nl = strchr(l, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = 0;
        if (l[0] == '#') {
            ck_assert(strncmp(l, "# HELP troupe_", 14) == 0 ||
                      strncmp(l, "# TYPE troupe_", 14) == 0);
        } else {
            size_t n = strcspn(l, "{ ");
            ck_assert_msg(metric_name_ok(l, n), "bad line: %s", l);
            char *sp = strrchr(l, ' ');
            ck_assert_ptr_nonnull(sp);
            char *end;
            strtoull(sp + 1, &end, 10);
            ck_assert_msg(*end == 0 && end > sp + 1, "bad value: %s", l);
            samples++;
        }
        l = nl + 1;
    }
    ck_assert_int_gt(samples, 10);
    *strstr(r, "\r\n\r\n") = 0; // headers only from here
    free(r);
    r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    body = strstr(r, "\r\n\r\n") + 4;
    ck_assert_int_eq(sample(body, "troupe_restarts_total"), 1);
    ck_assert_int_eq(sample(body, "troupe_actors{status=\"waiting\"}") +
                         sample(body, "troupe_actors{status=\"runnable\"}"),
                     3);
    ck_assert_int_eq(sample(body, "troupe_intensity_exceeded_total"), 0);
    ck_assert_int_ge(sample(body, "troupe_run_queue{thread=\"1\"}"), 0);
    free(r);
    // Anything else.
    r = http_get(port, "GET /other HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(strncmp(r, "HTTP/1.0 404", 12), 0);
    free(r);
    r = http_get(port, "POST /metrics HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(strncmp(r, "HTTP/1.0 400", 12), 0);
    free(r);
    tp_system_destroy(&sys);
}
END_TEST

// ---- busy actors: the stall watch ------------------------------------------

// An actor that spins in its callback until told to stop (at most 20 s).
static _Atomic int stuck_hold, stuck_inside;

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
stuck_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx, (void)state;
    if (msg->tag != 7)
        return TP_OK;
    atomic_store(&stuck_inside, 1);
    double end = mono_s() + 20;
    while (atomic_load(&stuck_hold) && mono_s() < end)
        ;
    atomic_store(&stuck_inside, 0);
    return TP_OK;
}

static const tp_behaviour stuck_b = {.name = "stuck", .handle = stuck_handle};

// Sends tag 7 to the pid it is given, so the stuck actor's message has an
// actor for its sender.
static int
poker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    return tp_send(ctx, *(const tp_pid *)msg->data, 7, NULL, 0);
}

static const tp_behaviour poker_b = {.name = "poker", .handle = poker_handle};

static char stall_line[1024];
static _Atomic long stall_lines;
static pthread_mutex_t stall_lock = PTHREAD_MUTEX_INITIALIZER;

static void
keep_stall(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)origin;
    if (strncmp(line, "stall ", 6) != 0)
        return;
    ck_assert_int_eq(level, TP_LOG_WARNING);
    pthread_mutex_lock(&stall_lock);
    snprintf(stall_line, sizeof stall_line, "%s", line);
    pthread_mutex_unlock(&stall_lock);
    atomic_fetch_add(&stall_lines, 1);
}

// Spawns a stuck actor (named "stuck_one") and a poker, and makes the
// first spin in a callback. Returns their pids.
static void
get_stuck(tp_system *sys, tp_pid *stuck, tp_pid *poker)
{
    atomic_store(&stuck_hold, 1);
    ck_assert_int_eq(tp_spawn(sys, &stuck_b, NULL,
                              &(tp_spawn_opts){.name = "stuck_one"}, stuck),
                     0);
    ck_assert_int_eq(tp_spawn(sys, &poker_b, NULL, NULL, poker), 0);
    ck_assert_int_eq(tp_system_send(sys, *poker, 1, stuck, sizeof *stuck), 0);
    for (int i = 0; i < 10000 && !atomic_load(&stuck_inside); i++)
        tpt_nap_us(1000);
    ck_assert(atomic_load(&stuck_inside));
}

static void
unstick(void)
{
    atomic_store(&stuck_hold, 0);
    for (int i = 0; i < 10000 && atomic_load(&stuck_inside); i++)
        tpt_nap_us(1000);
    ck_assert(!atomic_load(&stuck_inside));
}

// With one scheduler thread, the stuck one: the watch still reports.
START_TEST(stall_logged_and_shown)
{
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 1, .stall_ms = 100, .log = keep_stall});
    tp_pid stuck, poker;
    get_stuck(sys, &stuck, &poker);
    ck_assert(tpt_wait_ge(&stall_lines, 1, 10));
    char want[256], pid[TP_PID_STRLEN], from[TP_PID_STRLEN];
    tp_pid_format(stuck, pid, sizeof pid);
    tp_pid_format(poker, from, sizeof from);
    snprintf(want, sizeof want,
             "stall actor=%s behaviour=stuck name=stuck_one msg_tag=7 "
             "msg_from=%s running_ms=",
             pid, from);
    pthread_mutex_lock(&stall_lock);
    ck_assert_msg(strncmp(stall_line, want, strlen(want)) == 0, "got: %s",
                  stall_line);
    long ran = atol(stall_line + strlen(want));
    pthread_mutex_unlock(&stall_lock);
    ck_assert_int_ge(ran, 100);
    ck_assert_int_lt(ran, 5000);
    // Shown busy, by the snapshot and by tp_actor_info_get.
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, stuck, &info), 0);
    ck_assert_int_eq(info.status, TP_ACTOR_BUSY);
    ck_assert_uint_ge(info.busy_ms, 100);
    ck_assert_int_eq(tp_actor_info_get(sys, poker, &info), 0);
    ck_assert_int_ne(info.status, TP_ACTOR_BUSY);
    ck_assert_uint_eq(info.busy_ms, 0);
    tp_snapshot *s;
    ck_assert_int_eq(tp_snapshot_take(sys, &s), 0);
    const tp_actor_info *a = find(s, "stuck_one");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->status, TP_ACTOR_BUSY);
    ck_assert_uint_ge(a->busy_ms, 100);
    tp_snapshot_free(s);
    // Once per activation, however long it lasts. A window, not a
    // synchronisation: the watch looks every 12.5 ms, so 400 ms more of
    // the same activation are 32 looks that must not report it again.
    tpt_nap_us(400000);
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.stalls, 1);
    ck_assert_int_eq(atomic_load(&stall_lines), 1);
    unstick();
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(tp_actor_info_get(sys, stuck, &info), 0);
        if (info.status != TP_ACTOR_BUSY)
            break;
        tpt_nap_us(1000);
    }
    ck_assert_int_ne(info.status, TP_ACTOR_BUSY);
    ck_assert_int_eq(tp_actor_info_get(sys, TP_PID_NIL, &info), TP_ENOACTOR);
    ck_assert_int_eq(tp_actor_info_get(sys, stuck, NULL), TP_EINVAL);
    // A second stuck activation is a second stall.
    atomic_store(&stuck_hold, 1);
    ck_assert_int_eq(tp_system_send(sys, poker, 1, &stuck, sizeof stuck), 0);
    ck_assert(tpt_wait_ge(&stall_lines, 2, 10));
    unstick();
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.stalls, 2);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(stall_watch_off)
{
    tp_config bad = {.stall_ms = -2};
    tp_system *sys = NULL;
    ck_assert_int_eq(tp_system_new(&bad, &sys), TP_EINVAL);
    sys = tpt_system_cfg(
        &(tp_config){.threads = 1, .stall_ms = -1, .log = keep_stall});
    tp_pid stuck, poker;
    get_stuck(sys, &stuck, &poker);
    // A window, not a synchronisation: with the watch off nothing may
    // report or show busy in 300 ms, three times the stall_ms that gets a
    // report in stall_logged_and_shown.
    tpt_nap_us(300000);
    tp_actor_info info;
    ck_assert_int_eq(tp_actor_info_get(sys, stuck, &info), 0);
    ck_assert_int_eq(info.status, TP_ACTOR_RUNNABLE);
    unstick();
    tp_system_stats st;
    ck_assert_int_eq(tp_system_stats_get(sys, &st), 0);
    ck_assert_uint_eq(st.stalls, 0);
    ck_assert_int_eq(atomic_load(&stall_lines), 0);
    tp_system_destroy(&sys);
}
END_TEST

// The control socket answers `info` about a busy actor at once, from what
// a snapshot shows; /metrics counts the stall and the busy actor.
START_TEST(stall_over_control_and_metrics)
{
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 2, .stall_ms = 100, .log = keep_stall});
    make_dir();
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    uint16_t port = 0;
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    tp_pid stuck, poker;
    get_stuck(sys, &stuck, &poker);
    ck_assert(tpt_wait_ge(&stall_lines, 1, 10));
    char pid[TP_PID_STRLEN];
    tp_pid_format(stuck, pid, sizeof pid);
    int fd = dial();
    msgpack_unpacked u;
    double t0 = mono_s();
    ask(fd, "info", pid, NULL, &u);
    ck_assert(mono_s() - t0 < 1.5); // not the 2 s the actor is given
    ck_assert(is_ok(&u.data));
    const msgpack_object *a = get(&u.data, "actor");
    ck_assert_ptr_nonnull(a);
    ck_assert(str_eq(get(a, "status"), "busy"));
    const msgpack_object *busy = get(a, "busy_ms");
    ck_assert_ptr_nonnull(busy);
    ck_assert_uint_ge(busy->via.u64, 100);
    ck_assert_ptr_null(get(a, "links")); // only the actor could tell
    msgpack_unpacked_destroy(&u);
    ask(fd, "snapshot", NULL, NULL, &u);
    const msgpack_object *actors = get(&u.data, "actors");
    ck_assert_ptr_nonnull(actors);
    int busy_seen = 0;
    for (uint32_t i = 0; i < actors->via.array.size; i++)
        busy_seen += str_eq(get(&actors->via.array.ptr[i], "status"), "busy");
    ck_assert_int_eq(busy_seen, 1);
    msgpack_unpacked_destroy(&u);
    ask(fd, "stats", NULL, NULL, &u);
    const msgpack_object *stalls = get(&u.data, "stalls");
    ck_assert_ptr_nonnull(stalls);
    ck_assert_uint_eq(stalls->via.u64, 1);
    msgpack_unpacked_destroy(&u);
    close(fd);
    char *r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    char *body = strstr(r, "\r\n\r\n") + 4;
    ck_assert_int_eq(sample(body, "troupe_stalls_total"), 1);
    ck_assert_int_eq(sample(body, "troupe_actors{status=\"busy\"}"), 1);
    free(r);
    unstick();
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// ---- many clients at once: deadlines, the cap, nobody waits for another ---

// Connects without waiting: a server that does not accept fails the test
// instead of hanging it.
static int
dial_nb(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, 0), 0);
    return fd;
}

// Writes what it can: the node may have closed the connection already.
static void
send_quiet(int fd, const void *p, size_t n)
{
    if (send(fd, p, n, MSG_NOSIGNAL) < 0) {
        // EPIPE or ECONNRESET: the caller looks for the close itself.
    }
}

// Whether the node closes `fd` within `seconds`, reading what comes first.
static bool
closed_within(int fd, double seconds)
{
    double end = mono_s() + seconds;
    char buf[256];
    while (mono_s() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) > 0) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno == ECONNRESET))
                return true;
        }
    }
    return false;
}

// Asks `op` on a fresh connection; the answer must come within `seconds`.
static void
ask_within(const char *op, double seconds)
{
    int fd = dial_nb();
    double t0 = mono_s();
    msgpack_unpacked u;
    ask(fd, op, NULL, NULL, &u);
    double took = mono_s() - t0;
    if (took >= seconds)
        fprintf(stderr, "control: %s took %.2f s\n", op, took);
    ck_assert(took < seconds);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
}

// A client that sends nothing, one that sends a byte now and then, and an
// info request waiting for a stuck actor: others are answered at once.
START_TEST(control_slow_clients_block_nobody)
{
    make_dir();
    tp_system *sys = tpt_system_cfg(
        &(tp_config){.threads = 2, .stall_ms = 60000}); // never "busy"
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    int silent = dial_nb(), drip = dial_nb();
    send_raw(drip, "\0", 1);
    tp_pid stuck, poker;
    get_stuck(sys, &stuck, &poker);
    char stuck_s[TP_PID_STRLEN];
    tp_pid_format(stuck, stuck_s, sizeof stuck_s);
    int asker = dial_nb();
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, "info", 4);
    msgpack_pack_str_with_body(pk, "pid", 3);
    msgpack_pack_str_with_body(pk, stuck_s, strlen(stuck_s));
    double asked = mono_s();
    send_frame(asker, p.buf.data, p.buf.size);
    tp_pack_destroy(&p);
    for (int i = 0; i < 3; i++) {
        send_quiet(drip, "\0", 1);
        ask_within("stats", 1.5);
        ask_within("snapshot", 1.5);
    }
    // The info comes after the actor's 2 s, with what a snapshot shows.
    msgpack_unpacked u;
    recv_frame(asker, &u);
    ck_assert(mono_s() - asked > 1.5);
    ck_assert(is_ok(&u.data));
    const msgpack_object *a = get(&u.data, "actor");
    ck_assert(str_eq(get(a, "pid"), stuck_s));
    ck_assert_ptr_null(get(a, "describe"));
    msgpack_unpacked_destroy(&u);
    unstick();
    close(silent);
    close(drip);
    close(asker);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// A client that does not finish its request within 5 s of connecting is
// disconnected, however steadily it trickles bytes; so is a silent one.
START_TEST(control_deadline_closes_dawdlers)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    int silent = dial_nb(), drip = dial_nb();
    double t0 = mono_s();
    send_raw(drip, "\0\0\0\x64", 4); // announces 100 bytes
    bool closed = false;
    while (!closed && mono_s() - t0 < 9) {
        send_quiet(drip, "\x81", 1); // one more byte each 0.4 s
        closed = closed_within(drip, 0.4);
    }
    double took = mono_s() - t0;
    ck_assert(closed);
    ck_assert(took > 4.5 && took < 8);
    ck_assert(closed_within(silent, 2));
    close(drip);
    close(silent);
    // The node still serves.
    ask_within("stats", 1.5);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// As ask(op) with no arguments, for a connection the node may have
// refused and closed already: the write may fail (EPIPE, no signal), and
// the frame read is then the refusal the node sent before closing.
static void
ask_quiet(int fd, const char *op, msgpack_unpacked *u)
{
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, op, strlen(op));
    size_t n = p.buf.size;
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};
    send_quiet(fd, h, 4);
    send_quiet(fd, p.buf.data, n);
    tp_pack_destroy(&p);
    recv_frame(fd, u);
}

// 64 clients are served at once; the next is told so and disconnected,
// and a place that frees up is taken again.
START_TEST(control_client_cap)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    enum { CAP = 64 };
    int fds[CAP];
    msgpack_unpacked u;
    for (int i = 0; i < CAP; i++) {
        fds[i] = dial_nb();
        ask(fds[i], "stats", NULL, NULL, &u); // accepted and held
        ck_assert(is_ok(&u.data));
        msgpack_unpacked_destroy(&u);
    }
    int extra = dial_nb();
    recv_frame(extra, &u);
    ck_assert(!is_ok(&u.data));
    const msgpack_object *err = get(&u.data, "error");
    ck_assert(err != NULL && err->type == MSGPACK_OBJECT_STR);
    ck_assert_ptr_nonnull(
        memmem(err->via.str.ptr, err->via.str.size, "too many clients", 16));
    msgpack_unpacked_destroy(&u);
    ck_assert(closed_within(extra, 2));
    close(extra);
    // Those held are still served.
    ask(fds[CAP - 1], "nodes", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    // One leaves: a newcomer gets its place once the node saw it go.
    close(fds[0]);
    bool served = false;
    for (int i = 0; i < 200 && !served; i++) {
        int fd = dial_nb();
        ask_quiet(fd, "stats", &u);
        const msgpack_object *ok = get(&u.data, "ok");
        served = ok != NULL && ok->type == MSGPACK_OBJECT_BOOLEAN &&
                 ok->via.boolean;
        msgpack_unpacked_destroy(&u);
        close(fd);
        if (!served)
            tpt_nap_us(10000);
    }
    ck_assert(served);
    for (int i = 1; i < CAP; i++)
        close(fds[i]);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

// Several requests written at once are answered in order; a bad pid gets
// an error and the connection goes on.
START_TEST(control_requests_in_one_write)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    int fd = dial_nb();
    static const uint8_t two[] = {
        0, 0, 0, 10, 0x81, 0xa2, 'o', 'p', 0xa5, 's', 't', 'a', 't', 's',
        0, 0, 0, 10, 0x81, 0xa2, 'o', 'p', 0xa5, 'n', 'o', 'd', 'e', 's'};
    send_raw(fd, two, sizeof two);
    msgpack_unpacked u;
    recv_frame(fd, &u);
    ck_assert(is_ok(&u.data));
    ck_assert_ptr_nonnull(get(&u.data, "workers")); // stats
    msgpack_unpacked_destroy(&u);
    recv_frame(fd, &u);
    ck_assert(is_ok(&u.data));
    ck_assert_ptr_nonnull(get(&u.data, "peers")); // nodes
    msgpack_unpacked_destroy(&u);
    ask(fd, "info", "<0.99999.1>", NULL, &u);
    ck_assert(str_eq(get(&u.data, "error"), "no such actor"));
    msgpack_unpacked_destroy(&u);
    ask(fd, "stats", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(fd);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

static _Atomic long accept_fails;

static void
count_accept_fails(void *ud, int level, const char *origin, const char *line)
{
    (void)ud, (void)level, (void)origin;
    if (strstr(line, "control: cannot accept a client") != NULL)
        atomic_fetch_add(&accept_fails, 1);
}

// Out of descriptors, the listener rests between tries instead of
// spinning, and serves the waiting client once one is free again.
START_TEST(control_out_of_descriptors)
{
    make_dir();
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 1, .log = count_accept_fails});
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    ask_within("stats", 1.5); // the I/O thread has all it needs open
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    // Take every descriptor but one, which the client's socket takes.
    int spare[256], nspare = 0, fd;
    while (nspare < 256 && (fd = dup(0)) >= 0)
        spare[nspare++] = fd;
    ck_assert_int_gt(nspare, 1);
    close(spare[--nspare]);
    int client = dial_nb();
    double t0 = mono_s();
    while (mono_s() - t0 < 1.2)
        tpt_nap_us(10000);
    long fails = atomic_load(&accept_fails);
    ck_assert_int_ge(fails, 1);
    ck_assert_int_le(fails, 6); // a try each 0.5 s, not a spin
    close(spare[--nspare]);
    msgpack_unpacked u;
    ask(client, "stats", NULL, NULL, &u);
    ck_assert(is_ok(&u.data));
    msgpack_unpacked_destroy(&u);
    close(client);
    while (nspare > 0)
        close(spare[--nspare]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

static int
tcp_dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

// Scrapes go on while control and metrics clients dawdle, and bad
// requests get their status.
START_TEST(metrics_while_clients_dawdle)
{
    make_dir();
    tp_system *sys = tpt_system(1);
    uint16_t port;
    ck_assert_int_eq(tp_control_start(sys, sock), 0);
    ck_assert_int_eq(tp_metrics_start(sys, "127.0.0.1:0", false, &port), 0);
    int ctl = dial_nb();
    send_raw(ctl, "\0", 1);
    int m1 = tcp_dial(port), m2 = tcp_dial(port);
    send_raw(m1, "GET /met", 8);
    send_raw(m2, "G", 1);
    for (int i = 0; i < 2; i++) {
        double t0 = mono_s();
        char *r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
        ck_assert(mono_s() - t0 < 1.5);
        ck_assert_ptr_nonnull(strstr(r, "HTTP/1.0 200 OK\r\n"));
        ck_assert_ptr_nonnull(strstr(r, "troupe_actors{status=\"waiting\"}"));
        free(r);
        ask_within("stats", 1.5);
    }
    // A head past 4096 bytes without its blank line.
    char big[5000];
    memset(big, 'x', sizeof big);
    memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
    big[sizeof big - 1] = 0;
    char *r = http_get(port, big);
    ck_assert_ptr_nonnull(strstr(r, "HTTP/1.0 431 "));
    free(r);
    // The dawdlers are let go (2 s for a request head).
    ck_assert(closed_within(m1, 4));
    ck_assert(closed_within(m2, 1));
    r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_ptr_nonnull(strstr(r, "HTTP/1.0 200 OK\r\n"));
    free(r);
    close(m1);
    close(m2);
    close(ctl);
    tp_system_destroy(&sys);
    remove_dir();
}
END_TEST

Suite *
introspect_suite(void)
{
    Suite *s = suite_create("introspect");
    TCase *tc = tcase_create("introspect");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, snapshot_shows_the_tree);
    tcase_add_test(tc, snapshot_cpu_time);
    tcase_add_test(tc, message_waits_measured);
    tcase_add_test(tc, message_waits_of_many_behaviours);
    tcase_add_test(tc, detail_from_the_actor);
    tcase_add_test(tc, detail_describe_whole_up_to_the_limit);
    tcase_add_test(tc, control_socket_requests);
    tcase_add_test(tc, control_socket_bad_input);
    tcase_add_test(tc, control_socket_refusals);
    tcase_add_test(tc, control_socket_trace);
    tcase_add_test(tc, control_socket_program_ops);
    tcase_add_test(tc, metrics_scrape);
    tcase_add_test(tc, metrics_ipv6);
    tcase_add_test(tc, stall_logged_and_shown);
    tcase_add_test(tc, stall_watch_off);
    tcase_add_test(tc, stall_over_control_and_metrics);
    suite_add_tcase(s, tc);
    tc = tcase_create("serve");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, control_slow_clients_block_nobody);
    tcase_add_test(tc, control_deadline_closes_dawdlers);
    tcase_add_test(tc, control_client_cap);
    tcase_add_test(tc, control_requests_in_one_write);
    tcase_add_test(tc, control_out_of_descriptors);
    tcase_add_test(tc, metrics_while_clients_dawdle);
    suite_add_tcase(s, tc);
    return s;
}
