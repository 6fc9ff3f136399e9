// SPDX-License-Identifier: MIT
// The cluster subsystem's internal header: process groups (groups.c) and
// routers (router.c). It sits above distribution: the group server is an
// actor that talks to the other nodes' group servers with ordinary
// messages, so it needs no frame of its own.
#ifndef TROUPE_CLUSTER_H
#define TROUPE_CLUSTER_H

#include "core/core.h"

// tp_node_start's hook (tp__up_ops.node_started), mesh.c: starts the
// group server (or tells the running one that the system became a node)
// and, for tp_node_config.mesh, the mesh actor.
void tp__cluster_node_started(tp_system *sys);
void tp__groups_node_started(tp_system *sys);
// Frees the group table: tp_system_destroy, once every actor has ended.
void tp__groups_free(tp_system *sys);
// remote.c: starts the "troupe.remote" service (tp_spawn's code), and
// frees the spawnables at tp_system_destroy.
int tp__remote_start(tp_system *sys);
// seeds.c: connects to tp_node_config.seeds, and starts the actor that
// resolves the DNS ones again and again.
void tp__seeds_start(tp_system *sys);
void tp__remote_free(tp_system *sys);
// remote.c, tp__up_ops.code_switched and code_refs: the spawnables follow
// a committed upgrade; how many point into [lo, hi).
void tp__spawnables_switch(tp_system *sys, const tp_code_change *changes,
                           size_t n);
size_t tp__spawnables_refs(tp_system *sys, uintptr_t lo, uintptr_t hi);

// A change counter of `sys`'s group table (0 before any group call): a
// router's copy of a group's members is current while it is unchanged.
uint64_t tp__groups_version(tp_system *sys);
// Copies `group`'s members into *pids (grown with realloc, capacity in
// *cap) and sets *n; *version gets the counter the copy matches. Returns 0
// or TP_ENOMEM (*pids as it was).
int tp__groups_snapshot(tp_system *sys, const char *group, tp_pid **pids,
                        size_t *n, size_t *cap, uint64_t *version);
// Whether `group` is a valid group name.
bool tp__group_name_ok(const char *group);

#endif
