// SPDX-License-Identifier: MIT
// Process groups and routers.
//
// A group is a named set of actors that spans the nodes a node is
// connected to, as OTP's pg: any actor joins and leaves groups on its own
// node, and every connected node learns of the change. Each system keeps a
// group server (an actor registered as "troupe.groups", started by
// tp_node_start, or on a system that is not a node by the first
// tp_group_join or tp_group_monitor; if it is killed, the next of those
// calls starts another, which takes over the table), which watches the local
// members and exchanges memberships with the group servers of the other nodes:
//
// - A local member leaves every group when it exits, whatever the reason
//   (seen by the group server: while a killed server has not been
//   replaced, exits are taken into account when the next one starts).
// - When a node comes up, a node with members sends them to it, and it
//   answers with its own; when a connection is lost, every member of that
//   node leaves the other's view (and comes back when it reconnects).
// - Changes made on a node reach the others in the order they were made
//   there, a little later: two nodes may see different members for the
//   time a message takes to cross. There is no lock across the cluster.
//   What crosses is a member's state when the node's group server gets
//   to the change: a member that joins and leaves again (or leaves and
//   rejoins) before then may show on the other nodes as no change.
// - A node sees the members of the nodes it is connected to: connect the
//   nodes of a cluster to each other (a full mesh) to see every member.
//
// Changes made on the calling node are visible to tp_group_members as soon
// as tp_group_join or tp_group_leave returns.
//
// A router spreads messages over a group's members, or over a list of
// pids, by one of four policies (tp_route).
#ifndef TROUPE_GROUP_H
#define TROUPE_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"

// Longest group name, without its NUL.
#define TP_GROUP_NAME_MAX 63

// Messages delivered to actors that called tp_group_monitor.
#define TP_TAG_GROUP_JOIN (TP_TAG_RESERVED + 18)  // data: tp_group_msg
#define TP_TAG_GROUP_LEAVE (TP_TAG_RESERVED + 19) // data: tp_group_msg

typedef struct tp_group_msg {
    char group[TP_GROUP_NAME_MAX + 1];
    tp_pid member; // local or remote
} tp_group_msg;

// Makes local actor `pid` a member of `group` (1 to TP_GROUP_NAME_MAX
// bytes, any but NUL; the first not 0x1F, which marks global names). Joining a
// group it is already in does nothing: a group holds each actor once. Returns
// 0, TP_EINVAL (NULL or a bad name, nil or a remote pid), TP_ENOACTOR (`pid`
// is not alive), TP_ENOMEM, or tp_spawn's codes when the group server had to
// be started and could not (TP_EEXIST: another actor holds its name). Any
// thread, actors included.
TP_API int tp_group_join(tp_system *sys, const char *group, tp_pid pid);

// Takes local actor `pid` out of `group`. Returns 0, TP_ENOENT (it was not
// a member), TP_EINVAL or TP_ENOMEM. Any thread, actors included.
TP_API int tp_group_leave(tp_system *sys, const char *group, tp_pid pid);

// Copies up to `max` members of `group`, local and remote, into `out` and
// returns how many members there are (may exceed `max`; 0 for a group no
// one is in), or TP_EINVAL, in no particular order. Any thread.
TP_API int tp_group_members(tp_system *sys, const char *group, tp_pid *out,
                            size_t max);

// As tp_group_members, the members on this node only.
TP_API int tp_group_local_members(tp_system *sys, const char *group,
                                  tp_pid *out, size_t max);

// Copies the names of up to `max` groups that have members (local or
// remote) into `names`, in no particular order, and returns how many such
// groups there are (may exceed `max`), or TP_EINVAL (NULL `sys`, NULL
// `names` with `max` > 0). Any thread.
TP_API int tp_group_names(tp_system *sys, char (*names)[TP_GROUP_NAME_MAX + 1],
                          size_t max);

// Subscribes the running actor to `group`'s membership (off with `on`
// false): it receives TP_TAG_GROUP_JOIN at once for each current member,
// then TP_TAG_GROUP_JOIN and TP_TAG_GROUP_LEAVE for every change, in the
// order this node saw them (changes made on other nodes as they arrived,
// see above). Subscribing twice does nothing. Returns 0,
// TP_EINVAL, TP_EPERM (not on the actor's thread), TP_ENOMEM, or
// tp_group_join's codes for starting the group server.
TP_API int tp_group_monitor(tp_ctx *ctx, const char *group, bool on);

// Sends a copy of the message to every member of `group`, from the
// running actor, as tp_send would to each. Returns how many members it
// reached (0 for an empty group), or TP_EINVAL, TP_EMSGSIZE, TP_ENOMEM or
// TP_EPERM; a member whose send failed (a full mailbox, an actor that just
// exited) is skipped.
TP_API int tp_group_send(tp_ctx *ctx, const char *group, uint32_t tag,
                         const void *data, size_t size);

// ---- global names -------------------------------------------------------
//
// A global name is held by one actor among the connected nodes, as OTP's
// global: registering it on one node makes it visible on the others, as a
// group's membership is (the same group server carries it). An actor's
// exit releases its names; a lost connection releases that node's on the
// other side. There is no lock across the cluster: two nodes may register
// the same name at once, or each while a partition keeps them apart. When
// two nodes connected to each other see both, each applies one rule: the
// holder whose node's full name sorts first (bytewise) keeps the name, and
// the other's node unregisters it and sends it TP_TAG_GLOBAL_LOST (OTP's
// global kills one of the two by default; here the loser decides what to
// do, such as exiting). Holders on two nodes that are not connected to
// each other both keep it: connect the cluster's nodes as a mesh.

#define TP_GLOBAL_NAME_MAX 62
#define TP_TAG_GLOBAL_LOST (TP_TAG_RESERVED + 22) // data: tp_global_msg

typedef struct tp_global_msg {
    char name[TP_GLOBAL_NAME_MAX + 1];
    tp_pid holder; // the actor that keeps it
} tp_global_msg;

// Registers local actor `pid` under global `name` (1 to TP_GLOBAL_NAME_MAX
// bytes, any but NUL). Returns 0 (also when `pid` holds it already),
// TP_EEXIST (another actor holds it, as this node sees it), TP_EINVAL,
// TP_ENOACTOR (`pid` is not alive), TP_ENOMEM, or tp_group_join's codes
// for starting the group server. An actor may hold several names. Any
// thread.
TP_API int tp_global_register(tp_system *sys, const char *name, tp_pid pid);

// Releases global `name` held by an actor of this node. Returns 0,
// TP_ENOENT (no local actor holds it) or TP_EINVAL.
TP_API int tp_global_unregister(tp_system *sys, const char *name);

// The holder of global `name`, as this node sees it: 0 with the pid in
// `*out` (local or remote), TP_ENOACTOR (no one holds it) or TP_EINVAL.
// While two actors hold it, the rule's choice. Any thread.
TP_API int tp_global_whereis(tp_system *sys, const char *name, tp_pid *out);

// tp_global_whereis, then tp_send to the holder from the running actor:
// its codes (TP_ENOACTOR for a name no one holds).
TP_API int tp_global_send(tp_ctx *ctx, const char *name, uint32_t tag,
                          const void *data, size_t size);

// ---- routers ----------------------------------------------------------

typedef enum tp_route {
    // Each member in turn.
    TP_ROUTE_ROUND_ROBIN = 0,
    // A member drawn at random.
    TP_ROUTE_RANDOM,
    // The local member with the fewest messages queued (ties in turn). A
    // remote member's mailbox cannot be read, so remote members are used,
    // in turn, only when no member is local.
    TP_ROUTE_LEAST_LOADED,
    // The member the message's key maps to (rendezvous hashing): with this
    // router, the same key goes to the same member while the members stay;
    // when one leaves only its keys move, and one that joins takes keys
    // from the others without moving any between them. (Two routers on
    // different nodes may map a key to different members.)
    TP_ROUTE_HASH,
} tp_route;

typedef struct tp_router tp_router;

// Creates a router over the members of `group` (as tp_group_members sees
// them at each send) or over a fixed list of `n` pids (copied; remote pids
// allowed). Returns 0 with the router in `*out`, TP_EINVAL (NULL, a bad
// name or policy, an empty list, a nil pid) or TP_ENOMEM. A router belongs
// to one thread at a time: give each actor its own (kept in its state).
TP_API int tp_router_group(tp_system *sys, const char *group, tp_route how,
                           tp_router **out);
TP_API int tp_router_pids(tp_system *sys, const tp_pid *pids, size_t n,
                          tp_route how, tp_router **out);

// Picks the member the next message goes to, by the router's policy
// (`key` is used by TP_ROUTE_HASH only). Returns 0, TP_ENOENT (no member),
// TP_EINVAL or TP_ENOMEM.
TP_API int tp_router_pick(tp_router *r, uint64_t key, tp_pid *out);

// Sends a copy of the message to the member tp_router_pick gives, from the
// running actor. When tp_send refuses it there because the member has
// exited (TP_ENOACTOR) or is full (TP_EFULL: a REJECT mailbox that is
// full; under BACKPRESSURE a full mailbox takes a sender's first message
// and mutes the sender, so TP_EFULL only comes past that), the other
// members are tried, each once, in turn from the chosen one (for
// TP_ROUTE_HASH: in the key's order of preference), so a message is
// refused only when no member takes it. Stores the member that took it in
// `*to` (may be NULL). Returns 0, TP_ENOENT (no member), TP_EINVAL, TP_EPERM
// (not on the actor's thread), TP_EMSGSIZE, TP_ENOMEM, or the last
// member's TP_EFULL or TP_ENOACTOR.
TP_API int tp_router_send(tp_ctx *ctx, tp_router *r, uint64_t key,
                          uint32_t tag, const void *data, size_t size,
                          tp_pid *to);

// Frees `r`. Accepts NULL.
TP_API void tp_router_free(tp_router *r);

#endif
