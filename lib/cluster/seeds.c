// SPDX-License-Identifier: MIT
// Seeds (tp_node_config.seeds). A seed whose host is an address is
// connected to at start, as tp_node_connect does. Those whose host is a
// DNS name go to an actor registered as "troupe.seeds", on a thread of its
// own since getaddrinfo blocks: it resolves them at start and every
// SEEDS_REFRESH_MS, and connects to each node an address names (of the
// family this node listens on) that it has not connected to before. A node
// whose address has been missing from the answers for SEEDS_FORGET rounds
// and that is not up is disconnected from, so it is no longer dialled.
#include "cluster/cluster.h"
#include "core/core.h"
#include "dist/dist.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SEEDS_NAME "troupe.seeds"
#define SEEDS_REFRESH_MS 10000
#define SEEDS_KNOWN_MAX 4096 // nodes it connects to, as many as peers
#define SEEDS_FORGET 3       // rounds an address may be missing

enum { S_TICK = 0x74707301u }; // "tps", below the reserved tags

// A node an address named, connected to.
typedef struct known_node {
    char name[TP_NODE_NAME_MAX];
    unsigned unseen; // rounds since an answer last named it
} known_node;

typedef struct seeder {
    tp__seed *dns; // the seeds to resolve
    size_t ndns;
    bool *failing; // resolving it failed last time (logged once)
    known_node *known;
    size_t nknown, known_cap;
    int family; // of this node's listening address
} seeder;

static known_node *
known(seeder *s, const char *node)
{
    for (size_t i = 0; i < s->nknown; i++)
        if (strcmp(s->known[i].name, node) == 0)
            return &s->known[i];
    return NULL;
}

// Connects to `node` once, from here on kept connected by the node.
static void
connect_once(tp_system *sys, seeder *s, const char *node)
{
    known_node *k = known(s, node);
    if (k != NULL) {
        k->unseen = 0;
        return;
    }
    if (strcmp(node, tp_node_name(sys)) == 0 || s->nknown >= SEEDS_KNOWN_MAX)
        return;
    if (s->nknown == s->known_cap) {
        size_t cap = s->known_cap ? s->known_cap * 2 : 16;
        known_node *grown = realloc(s->known, cap * sizeof *s->known);
        if (grown == NULL)
            return; // the next round tries again
        s->known = grown;
        s->known_cap = cap;
    }
    int rc = tp_node_connect(sys, node, 0);
    if (rc != 0) {
        tp_log(sys, TP_LOG_WARNING, "seeds: cannot connect to %s: %s", node,
               tp_err_name(rc));
        return;
    }
    known_node *n = &s->known[s->nknown++];
    size_t len = strnlen(node, sizeof n->name - 1); // checked: shorter
    memcpy(n->name, node, len);
    n->name[len] = 0;
    n->unseen = 0;
    tp_log(sys, TP_LOG_INFO, "seeds: connecting to %s", node);
}

static void
resolve_all(tp_system *sys, seeder *s)
{
    bool answered = false; // by every name: then absence means gone
    for (size_t i = 0; i < s->nknown; i++)
        s->known[i].unseen++;
    for (size_t i = 0; i < s->ndns; i++) {
        const tp__seed *sd = &s->dns[i];
        struct addrinfo hints = {.ai_family = s->family,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(sd->host, NULL, &hints, &res);
        if (rc != 0) {
            if (!s->failing[i])
                tp_log(sys, TP_LOG_WARNING,
                       "seeds: %s does not resolve: %s (tried again every "
                       "%d s)",
                       sd->host, gai_strerror(rc), SEEDS_REFRESH_MS / 1000);
            s->failing[i] = true;
            continue;
        }
        s->failing[i] = false;
        answered = true;
        for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
            char host[INET6_ADDRSTRLEN], node[TP_NODE_NAME_MAX + 64];
            if (a->ai_family == AF_INET) {
                inet_ntop(AF_INET,
                          &((struct sockaddr_in *)a->ai_addr)->sin_addr, host,
                          sizeof host);
                snprintf(node, sizeof node, "%s@%s:%u", sd->name, host,
                         sd->port);
            } else if (a->ai_family == AF_INET6) {
                inet_ntop(AF_INET6,
                          &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr,
                          host, sizeof host);
                snprintf(node, sizeof node, "%s@[%s]:%u", sd->name, host,
                         sd->port);
            } else {
                continue;
            }
            if (tp_node_name_check(node) == 0)
                connect_once(sys, s, node);
        }
        freeaddrinfo(res);
    }
    // Nodes the names no longer list, and that are down: forgotten.
    for (size_t i = s->nknown; answered && i-- > 0;) {
        known_node *k = &s->known[i];
        if (k->unseen < SEEDS_FORGET ||
            tp__node_peer_up(sys, TP_PID_NIL, k->name))
            continue;
        tp_node_disconnect(sys, k->name);
        tp_log(sys, TP_LOG_INFO,
               "seeds: %s is no longer named by the seeds, and down: no "
               "longer dialled",
               k->name);
        *k = s->known[--s->nknown];
    }
}

static int
seeder_init(tp_ctx *ctx, void *state, void *arg)
{
    seeder *s = state;
    seeder *from = arg;
    *s = *from; // takes over the lists
    int rc = tp_send_interval(ctx, tp_self(ctx), SEEDS_REFRESH_MS, S_TICK,
                              NULL, 0, NULL);
    if (rc == 0) // the first round, on this actor's thread
        rc = tp_send(ctx, tp_self(ctx), S_TICK, NULL, 0);
    return rc;
}

static int
seeder_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    if (msg->tag == S_TICK && tp_pid_eq(msg->from, tp_self(ctx)))
        resolve_all(tp_ctx_system(ctx), state);
    return TP_OK;
}

static void
seeder_terminate(tp_ctx *ctx, void *state, int reason)
{
    (void)ctx;
    (void)reason;
    seeder *s = state;
    free(s->dns);
    free(s->failing);
    free(s->known);
}

static const tp_behaviour seeder_b = {.name = "troupe.seeds",
                                      .state_size = sizeof(seeder),
                                      .init = seeder_init,
                                      .handle = seeder_handle,
                                      .terminate = seeder_terminate};

void
tp__seeds_start(tp_system *sys)
{
    const char *list = tp__node_seeds(sys);
    if (list == NULL)
        return;
    seeder s = {.family = strchr(tp_node_name(sys), '[') != NULL ? AF_INET6
                                                                 : AF_INET};
    tp__seed sd;
    size_t cap = 0;
    // Checked at tp_node_start: every entry parses.
    while (tp__seed_next(&list, &sd) == 1) {
        if (!sd.dns) {
            char node[sizeof sd.name + sizeof sd.host + 8];
            snprintf(node, sizeof node, "%s@%s:%u", sd.name, sd.host, sd.port);
            if (strcmp(node, tp_node_name(sys)) == 0)
                continue; // a list shared by every node names this one too
            int rc = tp_node_connect(sys, node, 0);
            if (rc != 0)
                tp_log(sys, TP_LOG_WARNING, "seeds: cannot connect to %s: %s",
                       node, tp_err_name(rc));
            continue;
        }
        if (s.ndns == cap) {
            cap = cap ? cap * 2 : 4;
            tp__seed *d = realloc(s.dns, cap * sizeof *d);
            bool *f = realloc(s.failing, cap * sizeof *f);
            if (d != NULL)
                s.dns = d;
            if (f != NULL)
                s.failing = f;
            if (d == NULL || f == NULL)
                break;
        }
        s.failing[s.ndns] = false;
        s.dns[s.ndns++] = sd;
    }
    if (s.ndns == 0) {
        free(s.dns);
        free(s.failing);
        return;
    }
    tp_spawn_opts o = {.name = SEEDS_NAME, .dedicated = true};
    int rc = tp_spawn(sys, &seeder_b, &s, &o, NULL);
    if (rc != 0) {
        tp_log(sys, TP_LOG_ERR,
               "seeds: the troupe.seeds actor could not start (%s): DNS "
               "seeds are not resolved again",
               tp_err_name(rc));
        free(s.dns);
        free(s.failing);
        free(s.known);
    }
}
