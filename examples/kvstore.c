// SPDX-License-Identifier: MIT
// A key-value store served over TCP with a line protocol, built from
// supervised actors:
//
//   kv_root (rest_for_one)
//   ├── kv_shards (one_for_one): kv_shard_0 .. kv_shard_N-1, the data
//   ├── kv_conns (simple_one_for_one): one temporary actor per client
//   └── kv_acceptor: listens, has kv_conns start a connection actor for
//       each client and hands it the socket
//
// Protocol, one command per line (keys: 1..200 bytes without spaces;
// values: up to 64 KiB, rest of the line):
//   PUT key value  -> OK
//   GET key        -> VALUE value | NOT_FOUND
//   DEL key        -> OK | NOT_FOUND
// Anything else crashes that client's connection actor (its socket closes
// with it); every other client and the data are untouched.
//
//   kvstore [-l HOST:PORT] [-s SHARDS] [-c CONTROL_SOCKET]
// prints "LISTENING <port>" when ready and runs until SIGTERM or SIGINT.
//
// Built with -DKVSTORE_MODULE (build/bin/kvstore.so) it is instead an
// application module for actord, started from a section such as
//
//   [app kv]
//   module = kvstore.so
//   listen = 127.0.0.1:7070     ; default 127.0.0.1:0, the port is logged
//   shards = 8                  ; 1 to 64, default 4
//
// which runs the same tree with the root registered as the section's name.
// Its actors' names (kv_shards, kv_conns, kv_acceptor, kv_shard_N) are
// global to the node, so a node runs one kvstore.
//
// Built with -DKVSTORE_VERSION=2 as well (build/bin/kvstore-v2.so), it is
// version 2.0 of the module, which a running 1.0 upgrades to in place
// (actord.8, "Upgrading an application"): its shards keep one more count,
// placed first so that their state's layout changes, and serve one more
// command,
//   LEN key        -> LEN n | NOT_FOUND
// and its code_change moves a 1.0 shard's keys into the new layout.
// -DKVSTORE_VERSION=3 (kvstore-v3.so) is a version whose code_change
// refuses every shard, to show an upgrade rolled back.
#include <troupe.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KVSTORE_VERSION
#define KVSTORE_VERSION 1
#endif

#define KEY_MAX 200
#define VALUE_MAX 65536
#define LINE_MAX_ (KEY_MAX + VALUE_MAX + 16)
#define SHARDS_MAX 64

enum { OP_GET = 1, OP_PUT, OP_DEL, OP_LEN };
enum { ST_OK = 0, ST_NOT_FOUND = 1, ST_LEN = 2 };
enum { TAG_KV = 1, TAG_KV_REPLY };

typedef struct kv_config {
    char listen[64];
    unsigned shards;
} kv_config;

// ---- shards ---------------------------------------------------------------

typedef struct entry {
    struct entry *next;
    size_t klen, vlen;
    char data[]; // key then value
} entry;

#define BUCKETS 4096

typedef struct shard {
#if KVSTORE_VERSION >= 2
    uint64_t lens; // LEN commands served (2.0)
#endif
    entry *b[BUCKETS];
    size_t count;
} shard;

static uint64_t
hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 1099511628211ULL;
    return h;
}

static entry **
find(shard *s, const char *k, size_t n)
{
    entry **p = &s->b[hash(k, n) % BUCKETS];
    while (*p && ((*p)->klen != n || memcmp((*p)->data, k, n) != 0))
        p = &(*p)->next;
    return p;
}

// A request: op (1 byte), key length (1 byte), key, value.
static int
shard_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    shard *s = state;
    if (msg->tag != TAG_KV || msg->size < 2)
        return TP_OK;
    const char *d = msg->data;
    size_t klen = (uint8_t)d[1];
    if (2 + klen > msg->size)
        return TP_OK;
    const char *key = d + 2, *val = key + klen;
    size_t vlen = msg->size - 2 - klen;
    entry **p = find(s, key, klen);
    char st = ST_OK;
    switch (d[0]) {
    case OP_GET:
        if (*p == NULL) {
            st = ST_NOT_FOUND;
            return tp_reply(ctx, TAG_KV_REPLY, &st, 1);
        } else {
            char *r = malloc(1 + (*p)->vlen);
            if (r == NULL)
                return TP_ENOMEM;
            r[0] = ST_OK;
            memcpy(r + 1, (*p)->data + (*p)->klen, (*p)->vlen);
            int rc = tp_reply(ctx, TAG_KV_REPLY, r, 1 + (*p)->vlen);
            free(r);
            return rc;
        }
    case OP_PUT: {
        entry *e = malloc(sizeof *e + klen + vlen);
        if (e == NULL)
            return TP_ENOMEM;
        e->klen = klen;
        e->vlen = vlen;
        memcpy(e->data, key, klen);
        memcpy(e->data + klen, val, vlen);
        if (*p != NULL) {
            e->next = (*p)->next;
            free(*p);
        } else {
            e->next = NULL;
            s->count++;
        }
        *p = e;
        break;
    }
    case OP_DEL:
        if (*p == NULL) {
            st = ST_NOT_FOUND;
        } else {
            entry *e = *p;
            *p = e->next;
            free(e);
            s->count--;
        }
        break;
#if KVSTORE_VERSION >= 2
    case OP_LEN: {
        s->lens++;
        if (*p == NULL) {
            st = ST_NOT_FOUND;
            break;
        }
        char r[32];
        int n = snprintf(r + 1, sizeof r - 1, "LEN %zu", (*p)->vlen);
        r[0] = ST_LEN;
        return tp_reply(ctx, TAG_KV_REPLY, r, 1 + (size_t)n);
    }
#endif
    }
    return tp_reply(ctx, TAG_KV_REPLY, &st, 1);
}

static void
shard_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    shard *s = state;
    for (size_t i = 0; i < BUCKETS; i++)
        while (s->b[i]) {
            entry *e = s->b[i];
            s->b[i] = e->next;
            free(e);
        }
}

static int
shard_describe(const void *state, char *buf, size_t size)
{
    return snprintf(buf, size, "keys=%zu", ((const shard *)state)->count);
}

static const tp_behaviour shard_b = {.name = "kv_shard",
                                     .state_size = sizeof(shard),
                                     .handle = shard_handle,
                                     .terminate = shard_terminate,
                                     .describe = shard_describe};

// ---- one client
// --------------------------------------------------------------

typedef struct conn {
    tp_sock sock;
    unsigned shards;
    uint64_t pending; // the request in flight, 0 for none
    char *in;         // bytes read, not yet a whole line
    size_t len;
    uint64_t served;
} conn;

static int
conn_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)ctx;
    conn *c = state;
    c->shards = (unsigned)(uintptr_t)arg;
    c->in = malloc(LINE_MAX_ + 1);
    return c->in ? 0 : TP_ENOMEM;
}

// Sends the next whole line's request, if any and none is in flight.
static int
next_command(tp_ctx *ctx, conn *c)
{
    while (c->pending == 0) {
        char *nl = memchr(c->in, '\n', c->len);
        if (nl == NULL) {
            if (c->len >= LINE_MAX_)
                return tp_fail(ctx, TP_EINVAL, "line too long");
            return TP_OK;
        }
        size_t n = (size_t)(nl - c->in);
        if (n > 0 && c->in[n - 1] == '\r')
            n--;
        char *line = c->in;
        int op = n >= 4 && memcmp(line, "GET ", 4) == 0   ? OP_GET
                 : n >= 4 && memcmp(line, "PUT ", 4) == 0 ? OP_PUT
                 : n >= 4 && memcmp(line, "DEL ", 4) == 0 ? OP_DEL
#if KVSTORE_VERSION >= 2
                 : n >= 4 && memcmp(line, "LEN ", 4) == 0 ? OP_LEN
#endif
                                                          : 0;
        if (op == 0)
            return tp_fail(ctx, TP_EINVAL, "bad command");
        char *key = line + 4;
        size_t rest = n - 4;
        char *sp = memchr(key, ' ', rest);
        size_t klen = sp ? (size_t)(sp - key) : rest;
        if (klen == 0 || klen > KEY_MAX || (op != OP_PUT && sp != NULL) ||
            (op == OP_PUT && sp == NULL))
            return tp_fail(ctx, TP_EINVAL, "bad key or arguments");
        size_t vlen = op == OP_PUT ? rest - klen - 1 : 0;
        char *req = malloc(2 + klen + vlen);
        if (req == NULL)
            return TP_ENOMEM;
        req[0] = (char)op;
        req[1] = (char)klen;
        memcpy(req + 2, key, klen);
        if (vlen)
            memcpy(req + 2 + klen, sp + 1, vlen);
        char name[32];
        snprintf(name, sizeof name, "kv_shard_%u",
                 (unsigned)(hash(key, klen) % c->shards));
        tp_pid owner;
        int rc = tp_whereis(tp_ctx_system(ctx), name, &owner);
        if (rc == 0)
            rc = tp_request(ctx, owner, TAG_KV, req, 2 + klen + vlen, 5000,
                            &c->pending);
        free(req);
        if (rc != 0) // a shard restarting: say so, keep the client
            tp_sock_send(ctx, c->sock, "ERROR busy\n", 11);
        size_t used = (size_t)(nl - c->in) + 1;
        memmove(c->in, c->in + used, c->len - used);
        c->len -= used;
    }
    return TP_OK;
}

static int
conn_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    conn *c = state;
    if (msg->tag == TP_TAG_SOCK_DATA) {
        c->sock = msg->ref;
        if (msg->size > LINE_MAX_ - c->len)
            return tp_fail(ctx, TP_EINVAL, "line too long");
        memcpy(c->in + c->len, msg->data, msg->size);
        c->len += msg->size;
        return next_command(ctx, c);
    }
    if (msg->tag == TP_TAG_SOCK_CLOSED)
        return TP_STOP;
    if (msg->ref != 0 && msg->ref == c->pending) {
        c->pending = 0;
        if (msg->tag == TP_TAG_TIMEOUT) {
            tp_sock_send(ctx, c->sock, "ERROR timeout\n", 14);
        } else if (msg->tag == TP_TAG_FAILED) {
            // The shard died before answering: its supervisor restarts it.
            tp_sock_send(ctx, c->sock, "ERROR busy\n", 11);
        } else if (msg->tag == TAG_KV_REPLY && msg->size >= 1) {
            const char *r = msg->data;
            if (r[0] == ST_NOT_FOUND) {
                tp_sock_send(ctx, c->sock, "NOT_FOUND\n", 10);
            } else if (r[0] == ST_LEN) { // "LEN n"
                char out[40];
                int k = snprintf(out, sizeof out, "%.*s\n",
                                 (int)(msg->size - 1), r + 1);
                tp_sock_send(ctx, c->sock, out, (size_t)k);
            } else if (msg->size > 1) {
                char *out = malloc(msg->size + 7);
                if (out == NULL)
                    return TP_ENOMEM;
                memcpy(out, "VALUE ", 6);
                memcpy(out + 6, r + 1, msg->size - 1);
                out[msg->size + 5] = '\n';
                tp_sock_send(ctx, c->sock, out, msg->size + 6);
                free(out);
            } else {
                tp_sock_send(ctx, c->sock, "OK\n", 3);
            }
        }
        c->served++;
        return next_command(ctx, c);
    }
    return TP_OK;
}

static void
conn_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    free(((conn *)state)->in);
}

static int
conn_describe(const void *state, char *buf, size_t size)
{
    const conn *c = state;
    return snprintf(buf, size, "served=%llu buffered=%zu",
                    (unsigned long long)c->served, c->len);
}

static const tp_behaviour conn_b = {.name = "kv_conn",
                                    .state_size = sizeof(conn),
                                    .init = conn_init,
                                    .handle = conn_handle,
                                    .terminate = conn_terminate,
                                    .describe = conn_describe};

// ---- the acceptor
// -------------------------------------------------------------

#define WAITING 256

typedef struct acceptor {
    tp_sock listener;
    unsigned shards;
    uint64_t ref[WAITING]; // start requests in flight
    tp_sock sock[WAITING];
    uint64_t accepted;
} acceptor;

static _Atomic uint16_t bound_port; // for the program to print

static int
acceptor_init(tp_ctx *ctx, void *state, void *arg)
{
    acceptor *a = state;
    const kv_config *cfg = arg;
    a->shards = cfg->shards;
    uint16_t port = 0;
    int rc = tp_sock_listen(ctx, cfg->listen, &a->listener, &port);
    if (rc == 0) {
        atomic_store(&bound_port, port);
        tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "listening port=%u shards=%u",
               port, cfg->shards);
    }
    return rc;
}

static int
acceptor_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    acceptor *a = state;
    if (msg->tag == TP_TAG_SOCK_ACCEPTED) {
        const tp_sock_accepted *acc = msg->data;
        tp_pid conns;
        int slot = -1;
        for (int i = 0; i < WAITING && slot < 0; i++)
            if (a->ref[i] == 0)
                slot = i;
        if (slot < 0 || tp_whereis(tp_ctx_system(ctx), "kv_conns", &conns) ||
            tp_sock_hold(ctx, acc->sock) != 0 ||
            tp_sup_start_child_async(ctx, conns, NULL,
                                     (void *)(uintptr_t)a->shards, 5000,
                                     &a->ref[slot]) != 0) {
            tp_sock_close(ctx, acc->sock); // too busy: turn it away
            if (slot >= 0)
                a->ref[slot] = 0;
            return TP_OK;
        }
        a->sock[slot] = acc->sock;
        a->accepted++;
        return TP_OK;
    }
    for (int i = 0; msg->ref != 0 && i < WAITING; i++) {
        if (a->ref[i] != msg->ref)
            continue;
        a->ref[i] = 0;
        tp_pid pid;
        if (tp_sup_result(msg, &pid) != 0 ||
            tp_sock_give(ctx, a->sock[i], pid) != 0)
            tp_sock_close(ctx, a->sock[i]);
        break;
    }
    return TP_OK;
}

static int
acceptor_describe(const void *state, char *buf, size_t size)
{
    return snprintf(buf, size, "accepted=%llu",
                    (unsigned long long)((const acceptor *)state)->accepted);
}

static const tp_behaviour acceptor_b = {.name = "kv_acceptor",
                                        .state_size = sizeof(acceptor),
                                        .init = acceptor_init,
                                        .handle = acceptor_handle,
                                        .describe = acceptor_describe};

// ---- the tree
// ------------------------------------------------------------------

static const tp_child_spec conn_template[] = {
    {.id = "kv_conn", .behaviour = &conn_b, .restart = TP_TEMPORARY}};

// The whole tree's specs, with the configuration the acceptor reads. The
// module allocates it and hands it over as the application's state: the
// supervisors copy their specs, but the acceptor's `arg` stays a pointer
// to cfg, which must not lie in the module's own memory for actord to
// unload an old version after an upgrade.
typedef struct kv_tree {
    kv_config cfg;
    tp_child_spec shard_specs[SHARDS_MAX];
    char shard_ids[SHARDS_MAX][32];
    tp_sup_spec shards, conns, root;
    tp_child_spec root_children[3];
} kv_tree;

// Fills the specs of the whole tree from t->cfg.
static const tp_sup_spec *
tree_spec(kv_tree *t)
{
    for (unsigned i = 0; i < t->cfg.shards; i++) {
        snprintf(t->shard_ids[i], sizeof t->shard_ids[i], "kv_shard_%u", i);
        t->shard_specs[i] = (tp_child_spec){.id = t->shard_ids[i],
                                            .behaviour = &shard_b,
                                            .opts = {.name = t->shard_ids[i]}};
    }
    t->shards = (tp_sup_spec){.flags = {.strategy = TP_ONE_FOR_ONE,
                                        .intensity = 10,
                                        .period_ms = 10000},
                              .children = t->shard_specs,
                              .nchildren = t->cfg.shards};
    t->conns = (tp_sup_spec){.flags = {.strategy = TP_SIMPLE_ONE_FOR_ONE,
                                       .intensity = 1000,
                                       .period_ms = 1000},
                             .children = conn_template,
                             .nchildren = 1};
    t->root_children[0] = (tp_child_spec){.id = "kv_shards",
                                          .behaviour = &tp_supervisor,
                                          .arg = &t->shards,
                                          .opts = {.name = "kv_shards"},
                                          .type = TP_SUPERVISOR};
    t->root_children[1] = (tp_child_spec){.id = "kv_conns",
                                          .behaviour = &tp_supervisor,
                                          .arg = &t->conns,
                                          .opts = {.name = "kv_conns"},
                                          .type = TP_SUPERVISOR};
    t->root_children[2] = (tp_child_spec){.id = "kv_acceptor",
                                          .behaviour = &acceptor_b,
                                          .arg = &t->cfg,
                                          .opts = {.name = "kv_acceptor"}};
    t->root = (tp_sup_spec){.flags = {.strategy = TP_REST_FOR_ONE,
                                      .intensity = 5,
                                      .period_ms = 10000},
                            .children = t->root_children,
                            .nchildren = 3};
    return &t->root;
}

#ifdef KVSTORE_MODULE
// ---- the actord module
// -----------------------------------------------------------

// Reads the section's arguments into `cfg`; an unknown key or a bad value
// is refused with a one-line reason.
static int
kv_args(const tp_app_args *args, kv_config *cfg, char *err, size_t size)
{
    *cfg = (kv_config){.listen = "127.0.0.1:0", .shards = 4};
    for (size_t i = 0; i < args->n; i++) {
        const char *k = args->v[i].key, *v = args->v[i].value;
        char *end;
        if (strcmp(k, "listen") == 0) {
            const char *colon = strrchr(v, ':');
            char host[INET_ADDRSTRLEN] = "";
            struct in_addr in;
            unsigned long port = 65536;
            if (colon != NULL && colon[1] >= '0' && colon[1] <= '9')
                port = strtoul(colon + 1, &end, 10);
            if (colon != NULL && (size_t)(colon - v) < sizeof host)
                memcpy(host, v, (size_t)(colon - v));
            if (port > 65535 || *end != 0 || strlen(v) >= sizeof cfg->listen ||
                inet_pton(AF_INET, host, &in) != 1) {
                snprintf(err, size,
                         "listen must be a numeric IPv4 HOST:PORT, such as "
                         "127.0.0.1:7070");
                return TP_EINVAL;
            }
            snprintf(cfg->listen, sizeof cfg->listen, "%s", v);
        } else if (strcmp(k, "shards") == 0) {
            unsigned long n = strtoul(v, &end, 10);
            if (*v < '0' || *v > '9' || *end != 0 || n < 1 || n > SHARDS_MAX) {
                snprintf(err, size, "shards must be 1 to %d", SHARDS_MAX);
                return TP_EINVAL;
            }
            cfg->shards = (unsigned)n;
        } else {
            snprintf(err, size,
                     "unknown argument \"%s\" (kvstore takes listen and "
                     "shards)",
                     k);
            return TP_EINVAL;
        }
    }
    return 0;
}

static int
kv_check(const tp_app_args *args, char *err, size_t size)
{
    kv_config cfg;
    return kv_args(args, &cfg, err, size);
}

// actord starts the tree from the spec once this returns; the acceptor's
// init (which listens) failing makes that start fail with its reason.
// The tree is the application's state, freed by kv_stop (of whichever
// version runs by then: the layout is the same in every version).
static int
kv_start(tp_system *sys, const tp_app_args *args, tp_app_root *root, char *err,
         size_t size)
{
    (void)sys;
    kv_tree *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, size, "out of memory");
        return TP_ENOMEM;
    }
    int rc = kv_args(args, &t->cfg, err, size);
    if (rc != 0) {
        free(t);
        return rc;
    }
    root->spec = tree_spec(t);
    root->state = t;
    return 0;
}

// The root exited (or did not start): the specs may go.
static void
kv_stop(void *state)
{
    free(state);
}

// What an upgrade switches: every actor of these, by name.
static const tp_behaviour *const kv_behaviours[] = {&shard_b, &conn_b,
                                                    &acceptor_b, NULL};

#if KVSTORE_VERSION == 1
#define KV_CHANGE NULL
#define KV_VERSION "1.0"
#else
// A 1.0 shard's state: its keys move into this version's layout (the
// entries themselves are taken over, not copied: the new state owns them
// once the upgrade commits, and a rollback leaves them to the old one).
typedef struct shard_1 {
    entry *b[BUCKETS];
    size_t count;
} shard_1;

static int
kv_change(const char *behaviour, const char *old_version, tp_ctx *ctx,
          const void *old_state, void *new_state)
{
    (void)ctx;
    bool shard_state = strcmp(behaviour, "kv_shard") == 0;
#if KVSTORE_VERSION == 3
    if (shard_state)
        return TP_EDECODE; // this version cannot read a shard: rolled back
#endif
    if (shard_state && strcmp(old_version, "1.0") == 0) {
        const shard_1 *o = old_state;
        shard *n = new_state;
        memcpy(n->b, o->b, sizeof n->b);
        n->count = o->count;
        return 0;
    }
    size_t size = shard_state                         ? sizeof(shard)
                  : strcmp(behaviour, "kv_conn") == 0 ? sizeof(conn)
                                                      : sizeof(acceptor);
    memcpy(new_state, old_state, size); // a layout that did not change
    return 0;
}
#define KV_CHANGE kv_change
#define KV_VERSION (KVSTORE_VERSION == 2 ? "2.0" : "3.0")
#endif

TP_APP_DESCRIPTOR(.name = "kvstore", .version = KV_VERSION, .check = kv_check,
                  .start = kv_start, .stop = kv_stop,
                  .behaviours = kv_behaviours, .code_change = KV_CHANGE);

#else
// ---- the program
// ----------------------------------------------------------------

int
main(int argc, char **argv)
{
    static kv_tree tree = {.cfg = {.listen = "127.0.0.1:0", .shards = 4}};
    kv_config *cfg = &tree.cfg;
    const char *control = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "l:s:c:")) != -1) {
        switch (opt) {
        case 'l':
            snprintf(cfg->listen, sizeof cfg->listen, "%s", optarg);
            break;
        case 's':
            cfg->shards = (unsigned)atoi(optarg);
            break;
        case 'c':
            control = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: kvstore [-l HOST:PORT] [-s SHARDS] [-c SOCKET]\n");
            return 2;
        }
    }
    if (cfg->shards < 1 || cfg->shards > SHARDS_MAX) {
        fprintf(stderr, "kvstore: shards must be 1..%d\n", SHARDS_MAX);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); // threads inherit the mask
    tp_system *sys = NULL;
    tp_pid root;
    int rc = tp_system_new(NULL, &sys);
    if (rc == 0)
        rc = tp_system_start(sys);
    if (rc == 0 && control != NULL)
        rc = tp_control_start(sys, control);
    if (rc == 0)
        rc = tp_sup_start(sys, tree_spec(&tree),
                          &(tp_spawn_opts){.name = "kv_root"}, &root);
    if (rc != 0) {
        fprintf(stderr, "kvstore: cannot start: %s\n", tp_strerror(rc));
        tp_system_destroy(&sys);
        return 1;
    }
    // The acceptor's init ran inside tp_sup_start: the port is known.
    printf("LISTENING %u\n", atomic_load(&bound_port));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    tp_log_as(sys, TP_LOG_INFO, "kvstore", "signal %d: stopping", sig);
    tp_system_exit(sys, root, TP_REASON_SHUTDOWN);
    tp_system_wait(sys, 5000);
    tp_system_destroy(&sys);
    return 0;
}
#endif
