// SPDX-License-Identifier: MIT
// The full mesh (tp_node_config.mesh): an actor registered as "troupe.mesh"
// on each node watches nodes come up. When node N comes up, it tells N the
// names of the other nodes it is connected to, and tells each of those
// N's name, in one message to their own mesh actor:
//
//   NODES [name, name, ...]
//
// A mesh actor that hears of a node it is not connected to connects to
// it (tp_node_connect, so the connection is kept up). Two nodes that dial
// each other at once settle it in the handshake (WIRE.md), so each pair
// ends with one connection.
#include "cluster/cluster.h"
#include "core/core.h"
#include "dist/dist.h"

#include <troupe/msgpack.h>

#include <stdlib.h>
#include <string.h>

#define MESH_NAME "troupe.mesh"
#define MESH_CAPACITY (1u << 16)
#define MESH_NODES_MAX 4096 // names in one message, as many as peers

enum { M_NODES = 0x74706d01u }; // "tpm", below the reserved tags

// The names of the nodes up now, but `except`; *n of them.
static char (*up_nodes(tp_system *sys, const char *except,
                       size_t *n))[TP_NODE_NAME_MAX]
{
    *n = 0;
    int total = tp_node_peers(sys, NULL, 0);
    if (total <= 0)
        return NULL;
    size_t max =
        (size_t)total < MESH_NODES_MAX ? (size_t)total : MESH_NODES_MAX;
    tp_peer_info *info = malloc(max * sizeof *info);
    char(*names)[TP_NODE_NAME_MAX] = malloc(max * sizeof *names);
    if (info == NULL || names == NULL) {
        free(info);
        free(names);
        return NULL;
    }
    int got = tp_node_peers(sys, info, max);
    for (int i = 0; i < got && (size_t)i < max; i++)
        if (info[i].state == TP_PEER_UP &&
            (except == NULL || strcmp(info[i].node, except) != 0))
            memcpy(names[(*n)++], info[i].node, sizeof names[0]);
    free(info);
    return names;
}

// Sends NODES with `n` names to the mesh actor of `node`, if it is up.
static void
tell(tp_ctx *ctx, const char *node, char (*names)[TP_NODE_NAME_MAX], size_t n)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (n == 0 || !tp__node_peer_up(sys, TP_PID_NIL, node))
        return;
    tp_pack p;
    tp_pack_init(&p);
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, names[i], len);
    }
    tp_send_name_at(ctx, MESH_NAME, node, M_NODES, p.buf.data, p.buf.size);
    tp_pack_destroy(&p);
}

// Node `node` came up: it hears of the others, and they of it.
static void
introduce(tp_ctx *ctx, const char *node)
{
    size_t n;
    char(*others)[TP_NODE_NAME_MAX] = up_nodes(tp_ctx_system(ctx), node, &n);
    if (others == NULL)
        return;
    tell(ctx, node, others, n);
    char one[1][TP_NODE_NAME_MAX];
    snprintf(one[0], sizeof one[0], "%s", node);
    for (size_t i = 0; i < n; i++)
        tell(ctx, others[i], one, 1);
    free(others);
}

// NODES from another node's mesh actor: connect to those not connected.
static void
heard(tp_ctx *ctx, const tp_msg *msg)
{
    tp_system *sys = tp_ctx_system(ctx);
    if (tp_pid_node(msg->from) == 0)
        return; // only other nodes' mesh actors send it
    msgpack_unpacked u;
    if (tp_msg_unpack(msg, &u) == 0 && u.data.type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object_array *a = &u.data.via.array;
        for (uint32_t i = 0; i < a->size && i < MESH_NODES_MAX; i++) {
            const msgpack_object *o = &a->ptr[i];
            char name[TP_NODE_NAME_MAX];
            if (o->type != MSGPACK_OBJECT_STR ||
                o->via.str.size >= sizeof name)
                continue;
            memcpy(name, o->via.str.ptr, o->via.str.size);
            name[o->via.str.size] = 0;
            if (strlen(name) != o->via.str.size ||
                tp_node_name_check(name) != 0 ||
                strcmp(name, tp_node_name(sys)) == 0 ||
                tp__node_peer_up(sys, TP_PID_NIL, name))
                continue;
            int rc = tp_node_connect(sys, name, 0);
            if (rc != 0)
                tp_log(sys, TP_LOG_WARNING,
                       "mesh: cannot connect to %s, which a peer named: %s",
                       name, tp_err_name(rc));
        }
    }
    msgpack_unpacked_destroy(&u);
}

static int
mesh_init(tp_ctx *ctx, void *state, void *arg)
{
    (void)state;
    (void)arg;
    int rc = tp_monitor_nodes(ctx, true);
    if (rc != 0)
        return rc;
    // Nodes that came up before this actor ran.
    size_t n;
    char(*up)[TP_NODE_NAME_MAX] = up_nodes(tp_ctx_system(ctx), NULL, &n);
    for (size_t i = 0; i < n; i++)
        introduce(ctx, up[i]);
    free(up);
    return 0;
}

static int
mesh_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TP_TAG_NODEUP && msg->size == sizeof(tp_node_msg)) {
        tp_node_msg nm;
        memcpy(&nm, msg->data, sizeof nm);
        nm.node[sizeof nm.node - 1] = 0;
        introduce(ctx, nm.node);
    } else if (msg->tag == M_NODES) {
        heard(ctx, msg);
    }
    return TP_OK;
}

static const tp_behaviour mesh_b = {
    .name = "troupe.mesh",
    .init = mesh_init,
    .handle = mesh_handle,
};

void
tp__cluster_node_started(tp_system *sys)
{
    tp__groups_node_started(sys);
    int rc = tp__remote_start(sys);
    if (rc != 0)
        tp_log(sys, TP_LOG_ERR,
               "remote: the troupe.remote actor could not start (%s): other "
               "nodes' lookups and spawns here go unanswered, and this "
               "node's fail",
               tp_err_name(rc));
    tp__seeds_start(sys);
    if (!tp__node_mesh(sys))
        return;
    tp_spawn_opts o = {.name = MESH_NAME, .mailbox_capacity = MESH_CAPACITY};
    rc = tp_spawn(sys, &mesh_b, NULL, &o, NULL);
    if (rc != 0)
        tp_log(sys, TP_LOG_ERR,
               "mesh: the mesh actor could not start (%s): this node "
               "connects only to the nodes it is told to",
               tp_err_name(rc));
}
