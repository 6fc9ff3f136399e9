// SPDX-License-Identifier: MIT
// What the control socket answers (lib/observe/CONTROL.md): each request's
// reply packed as a msgpack map, from snapshots, node statistics, peers,
// process groups and actors' details. control.c frames them and serves
// the connections.
#include "core/core.h"
#include "observe/observe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- packing helpers
// ----------------------------------------------------------

static void
pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
pk_key_str(msgpack_packer *pk, const char *k, const char *v)
{
    pk_str(pk, k);
    pk_str(pk, v);
}

static void
pk_key_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
pk_pid(msgpack_packer *pk, tp_pid p)
{
    char buf[TP_PID_STRLEN];
    tp_pid_format(p, buf, sizeof buf);
    pk_str(pk, buf);
}

void
tp__ans_error(msgpack_packer *pk, const char *why)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "ok");
    msgpack_pack_false(pk);
    pk_key_str(pk, "error", why);
}

static const char *
status_name(tp_actor_status s)
{
    switch (s) {
    case TP_ACTOR_WAITING:
        return "waiting";
    case TP_ACTOR_RUNNABLE:
        return "runnable";
    case TP_ACTOR_MUTED:
        return "muted";
    case TP_ACTOR_EXITING:
        return "exiting";
    case TP_ACTOR_BUSY:
        return "busy";
    }
    return "?";
}

#define ACTOR_KEYS 21 // pk_actor_fields

static void
pk_actor_fields(msgpack_packer *pk, const tp_actor_info *a)
{
    pk_str(pk, "pid");
    pk_pid(pk, a->pid);
    pk_str(pk, "parent");
    if (tp_pid_is_nil(a->parent))
        msgpack_pack_nil(pk);
    else
        pk_pid(pk, a->parent);
    pk_key_str(pk, "name", a->name);
    pk_key_str(pk, "behaviour", a->behaviour);
    pk_key_str(pk, "version", a->version);
    pk_key_str(pk, "status", status_name(a->status));
    pk_key_u64(pk, "mailbox", a->mailbox);
    pk_key_u64(pk, "capacity", a->capacity);
    pk_key_u64(pk, "high_water", a->high_water);
    pk_key_u64(pk, "handled", a->handled);
    pk_key_u64(pk, "dropped", a->dropped);
    pk_key_u64(pk, "rejected", a->rejected);
    pk_key_u64(pk, "restarts", a->restarts);
    pk_key_u64(pk, "age_ms", a->age_ms);
    pk_key_u64(pk, "cpu_us", a->cpu_ns / 1000);
    pk_key_u64(pk, "start_order", a->start_order);
    pk_key_u64(pk, "busy_ms", a->busy_ms);
    pk_key_u64(pk, "waits", a->waits);
    pk_key_u64(pk, "wait_p50_us", a->wait_p50_us);
    pk_key_u64(pk, "wait_p99_us", a->wait_p99_us);
    pk_key_u64(pk, "wait_max_us", a->wait_max_us);
}

// "cpu_time": whether the node measures its actors' run time.
static void
pk_cpu_time(msgpack_packer *pk, tp_system *sys)
{
    pk_str(pk, "cpu_time");
    if (sys->cfg.cpu_time)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void
pk_pids(msgpack_packer *pk, const char *key, const tp_pid *p, uint32_t n)
{
    pk_str(pk, key);
    uint32_t shown = n < TP_DETAIL_PIDS ? n : TP_DETAIL_PIDS;
    msgpack_pack_array(pk, shown);
    for (uint32_t i = 0; i < shown; i++)
        pk_pid(pk, p[i]);
}

// ---- requests
// -------------------------------------------------------------------

void
tp__ans_snapshot(tp_system *sys, msgpack_packer *pk)
{
    tp_snapshot *s;
    if (tp_snapshot_take(sys, &s) != 0) {
        tp__ans_error(pk, "out of memory");
        return;
    }
    msgpack_pack_map(pk, 6);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_key_u64(pk, "uptime_ms", tp_snapshot_uptime_ms(s));
    pk_key_u64(pk, "threads", tp_snapshot_stats(s)->threads);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actors");
    size_t n = tp_snapshot_len(s);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, ACTOR_KEYS);
        pk_actor_fields(pk, tp_snapshot_at(s, i));
    }
    tp_snapshot_free(s);
}

// An actor stuck in a callback cannot say what only it knows: the reply
// then holds what a snapshot shows of it, without the detail keys.
void
tp__ans_info_busy(tp_system *sys, msgpack_packer *pk,
                  const tp_actor_info *info)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS);
    pk_actor_fields(pk, info);
}

// The answer to `info` once the question is settled: rc is
// tp__info_poll's (TP_EAGAIN: the actor did not answer in time) or
// tp__info_ask's.
void
tp__ans_info(tp_system *sys, msgpack_packer *pk, tp_pid pid, int rc,
             const tp_actor_detail *d)
{
    tp_actor_info info;
    if (rc == TP_EAGAIN && tp_actor_info_get(sys, pid, &info) == 0) {
        tp__ans_info_busy(sys, pk, &info);
        return;
    }
    if (rc != 0) {
        tp__ans_error(pk, rc == TP_ENOACTOR ? "no such actor"
                          : rc == TP_EAGAIN
                              ? "the actor did not answer in time"
                              : tp_strerror(rc));
        return;
    }
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_cpu_time(pk, sys);
    pk_str(pk, "actor");
    msgpack_pack_map(pk, ACTOR_KEYS + 6);
    pk_actor_fields(pk, &d->info);
    pk_str(pk, "trap_exit");
    if (d->trap_exit)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pk_pids(pk, "links", d->links, d->nlinks);
    pk_pids(pk, "monitors", d->monitors, d->nmonitors);
    pk_pids(pk, "monitored_by", d->watchers, d->nwatchers);
    pk_str(pk, "stashed");
    msgpack_pack_uint32(pk, d->stashed);
    pk_key_str(pk, "describe", d->describe);
}

static bool
parse_reason(const msgpack_object *o, int *out)
{
    if (o == NULL) {
        *out = TP_REASON_KILL;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT_MIN) {
        *out = (int)o->via.i64;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    static const struct {
        const char *name;
        int reason;
    } names[] = {{"kill", TP_REASON_KILL},
                 {"shutdown", TP_REASON_SHUTDOWN},
                 {"normal", TP_REASON_NORMAL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (o->via.str.size == strlen(names[i].name) &&
            memcmp(o->via.str.ptr, names[i].name, o->via.str.size) == 0) {
            *out = names[i].reason;
            return true;
        }
    return false;
}

void
tp__ans_kill(tp_system *sys, msgpack_packer *pk, tp_pid pid,
             const msgpack_object *reason)
{
    int r;
    if (!parse_reason(reason, &r)) {
        tp__ans_error(pk,
                      "bad reason: use kill, shutdown, normal or a negative "
                      "error code");
        return;
    }
    int rc = tp_system_exit(sys, pid, r);
    if (rc != 0) {
        tp__ans_error(pk,
                      rc == TP_ENOACTOR ? "no such actor" : tp_strerror(rc));
        return;
    }
    msgpack_pack_map(pk, 1);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
}

static uint64_t
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void
tp__ans_stats(tp_system *sys, msgpack_packer *pk)
{
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    int64_t now = tp__now_coarse_ms();
    // Where messages wait longest, on a node that measures.
    tp_actor_info slow_info;
    const tp_actor_info *slow =
        sys->cfg.cpu_time && tp__longest_wait(sys, &slow_info) == 0
            ? &slow_info
            : NULL;
    msgpack_pack_map(pk, slow != NULL ? 18 : 17);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_key_u64(pk, "uptime_ms", (uint64_t)(now - sys->born_ms));
    pk_key_u64(pk, "threads", st.threads);
    pk_key_u64(pk, "actors", st.actors);
    pk_key_u64(pk, "spawned", st.spawned);
    pk_key_u64(pk, "exited", st.exited);
    pk_key_u64(pk, "crashed", st.crashed);
    pk_key_u64(pk, "dead_letters", st.dead_letters);
    pk_key_u64(pk, "timers", st.timers);
    pk_key_u64(pk, "stalls", st.stalls);
    pk_key_u64(pk, "messages", st.total.messages);
    pk_key_u64(pk, "activations", st.total.activations);
    pk_key_u64(pk, "steals", st.total.steals);
    pk_key_u64(pk, "sleeps", st.total.sleeps);
    pk_str(pk, "workers");
    msgpack_pack_array(pk, st.threads);
    for (unsigned i = 0; i < st.threads; i++) {
        tp_worker_stats w;
        tp_worker_stats_get(sys, i, &w);
        msgpack_pack_map(pk, 4);
        pk_key_u64(pk, "activations", w.activations);
        pk_key_u64(pk, "messages", w.messages);
        pk_key_u64(pk, "steals", w.steals);
        pk_key_u64(pk, "sleeps", w.sleeps);
    }
    pk_key_u64(pk, "rss_bytes", rss_bytes());
    if (slow != NULL) {
        pk_str(pk, "longest_wait");
        msgpack_pack_map(pk, 6);
        pk_str(pk, "pid");
        pk_pid(pk, slow->pid);
        pk_key_str(pk, "name", slow->name);
        pk_key_str(pk, "behaviour", slow->behaviour);
        pk_key_u64(pk, "wait_p50_us", slow->wait_p50_us);
        pk_key_u64(pk, "wait_p99_us", slow->wait_p99_us);
        pk_key_u64(pk, "wait_max_us", slow->wait_max_us);
    }
}

static const char *
peer_state(tp_peer_state s)
{
    switch (s) {
    case TP_PEER_IDLE:
        return "idle";
    case TP_PEER_CONNECTING:
        return "connecting";
    case TP_PEER_UP:
        return "up";
    case TP_PEER_BACKOFF:
        return "backoff";
    }
    return "?";
}

void
tp__ans_nodes(tp_system *sys, msgpack_packer *pk)
{
    int n = tp_node_peers(sys, NULL, 0);
    if (n < 0)
        n = 0;
    tp_peer_info *pi = n ? calloc((size_t)n, sizeof *pi) : NULL;
    if (n > 0 && pi == NULL) {
        tp__ans_error(pk, "out of memory");
        return;
    }
    int got = n ? tp_node_peers(sys, pi, (size_t)n) : 0;
    if (got > n)
        got = n;
    if (got < 0)
        got = 0;
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_str(pk, "peers");
    msgpack_pack_array(pk, (size_t)got);
    for (int i = 0; i < got; i++) {
        msgpack_pack_map(pk, 9);
        pk_key_str(pk, "node", pi[i].node);
        pk_key_u64(pk, "incarnation", pi[i].incarnation);
        pk_key_str(pk, "state", peer_state(pi[i].state));
        pk_key_u64(pk, "rtt_us", pi[i].rtt_us);
        pk_key_u64(pk, "queued", pi[i].queued);
        pk_key_u64(pk, "sent", pi[i].sent);
        pk_key_u64(pk, "received", pi[i].received);
        pk_key_u64(pk, "dropped", pi[i].dropped);
        pk_key_u64(pk, "connects", pi[i].connects);
    }
    free(pi);
}

// ---- groups
// ---------------------------------------------------------------------

// Members listed per group in the answer to `groups`; its counts are exact.
#define GROUP_PIDS 128

static int
name_order(const void *a, const void *b)
{
    return strcmp(a, b);
}

// Local members first (node 0), then by node, slot and generation.
static int
pid_order(const void *a, const void *b)
{
    tp_pid x = *(const tp_pid *)a, y = *(const tp_pid *)b;
    uint64_t kx = (uint64_t)tp_pid_node(x) << 48 |
                  (uint64_t)tp_pid_slot(x) << 24 | tp_pid_gen(x);
    uint64_t ky = (uint64_t)tp_pid_node(y) << 48 |
                  (uint64_t)tp_pid_slot(y) << 24 | tp_pid_gen(y);
    return kx < ky ? -1 : kx > ky;
}

// Packs group `name` into `pk`, using `pids` (GROUP_PIDS long). Returns
// false, packing nothing, for a group its last member left meanwhile.
static bool
pk_group(tp_system *sys, msgpack_packer *pk, const char *name, tp_pid *pids)
{
    int total = tp_group_members(sys, name, pids, GROUP_PIDS);
    int local = tp_group_local_members(sys, name, NULL, 0);
    if (total <= 0)
        return false;
    // Members may join or leave between the two calls.
    if (local < 0)
        local = 0;
    if (local > total)
        local = total;
    size_t shown = total < GROUP_PIDS ? (size_t)total : GROUP_PIDS;
    qsort(pids, shown, sizeof *pids, pid_order);
    msgpack_pack_map(pk, 5);
    pk_key_str(pk, "name", name);
    pk_key_u64(pk, "local", (uint64_t)local);
    pk_key_u64(pk, "total", (uint64_t)total);
    pk_str(pk, "members");
    msgpack_pack_array(pk, shown);
    for (size_t i = 0; i < shown; i++)
        pk_pid(pk, pids[i]);
    pk_str(pk, "truncated");
    if (shown < (size_t)total)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    return true;
}

void
tp__ans_groups(tp_system *sys, msgpack_packer *pk)
{
    int n = tp_group_names(sys, NULL, 0);
    if (n < 0)
        n = 0;
    char(*names)[TP_GROUP_NAME_MAX + 1] =
        n ? calloc((size_t)n, sizeof *names) : NULL;
    tp_pid *pids = malloc(GROUP_PIDS * sizeof *pids);
    if ((n > 0 && names == NULL) || pids == NULL) {
        free(names);
        free(pids);
        tp__ans_error(pk, "out of memory");
        return;
    }
    int got = n ? tp_group_names(sys, names, (size_t)n) : 0;
    if (got > n)
        got = n; // groups added meanwhile wait for the next request
    if (got < 0)
        got = 0;
    if (got > 0) // qsort's array may not be NULL, even when empty
        qsort(names, (size_t)got, sizeof *names, name_order);
    // The groups are packed apart first: one may have emptied meanwhile,
    // and the array's length comes before them.
    msgpack_sbuffer body;
    msgpack_packer bp;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
    size_t listed = 0;
    for (int i = 0; i < got; i++)
        listed += pk_group(sys, &bp, names[i], pids);
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_key_str(pk, "node", tp_node_name(sys));
    pk_str(pk, "groups");
    msgpack_pack_array(pk, listed);
    if (body.size > 0)
        pk->callback(pk->data, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
    free(names);
    free(pids);
}

// ---- trace
// -------------------------------------------------------------------

static const char *
trace_end_name(tp_trace_end e)
{
    switch (e) {
    case TP_TRACE_END_COUNT:
        return "count";
    case TP_TRACE_END_TIME:
        return "time";
    case TP_TRACE_END_EXITED:
        return "exited";
    case TP_TRACE_END_STOPPED:
        return "stopped";
    default:
        return "running";
    }
}

static void
pk_key_i64(msgpack_packer *pk, const char *k, int64_t v)
{
    pk_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void
pk_key_reason(msgpack_packer *pk, const char *k, int reason)
{
    char why[64];
    tp_reason_format(reason, why, sizeof why);
    pk_key_str(pk, k, why);
}

static void
pk_key_pid(msgpack_packer *pk, const char *k, tp_pid p)
{
    pk_str(pk, k);
    if (tp_pid_is_nil(p))
        pk_str(pk, "");
    else
        pk_pid(pk, p);
}

static void
pk_event(msgpack_packer *pk, const tp_trace_event *e)
{
    static const char *const kinds[] = {
        [TP_TEV_RECEIVED] = "received", [TP_TEV_SENT] = "sent",
        [TP_TEV_SIGNAL] = "signal",     [TP_TEV_SPAWN] = "spawn",
        [TP_TEV_EXIT] = "exit",         [TP_TEV_STATE] = "state",
        [TP_TEV_NOTE] = "note"};
    bool down_or_exit =
        e->kind == TP_TEV_SIGNAL &&
        (strcmp(e->text, "exit") == 0 || strcmp(e->text, "down") == 0);
    size_t n = e->kind == TP_TEV_RECEIVED ? 7
               : e->kind == TP_TEV_SENT   ? 7
               : e->kind == TP_TEV_SIGNAL ? 5 + (down_or_exit ? 1 : 0)
               : e->kind == TP_TEV_SPAWN  ? 5
                                          : 4;
    msgpack_pack_map(pk, n);
    pk_key_u64(pk, "seq", e->seq);
    pk_key_u64(pk, "at_us", e->at_us > 0 ? (uint64_t)e->at_us : 0);
    pk_key_str(pk, "kind", kinds[e->kind]);
    switch (e->kind) {
    case TP_TEV_RECEIVED:
        pk_key_pid(pk, "from", e->peer);
        pk_key_u64(pk, "tag", e->tag);
        pk_key_u64(pk, "size", e->size);
        pk_key_i64(pk, "wait_us", e->wait_us);
        break;
    case TP_TEV_SENT:
        pk_key_pid(pk, "to", e->peer);
        pk_key_u64(pk, "tag", e->tag);
        pk_key_u64(pk, "size", e->size);
        pk_key_str(pk, "result",
                   e->result == 0 ? "ok" : tp_err_name(e->result));
        break;
    case TP_TEV_SIGNAL:
        pk_key_pid(pk, "from", e->peer);
        pk_key_str(pk, "signal", e->text);
        if (down_or_exit)
            pk_key_reason(pk, "reason", e->reason);
        break;
    case TP_TEV_SPAWN:
        pk_key_pid(pk, "child", e->peer);
        pk_key_str(pk, "behaviour", e->text);
        break;
    case TP_TEV_EXIT:
        pk_key_reason(pk, "reason", e->reason);
        break;
    default:
        pk_key_str(pk, "text", e->text);
        break;
    }
}

void
tp__ans_trace(msgpack_packer *pk, const tp_trace_status *st,
              const tp_trace_event *ev, size_t n)
{
    msgpack_pack_map(pk, 6);
    pk_str(pk, "ok");
    msgpack_pack_true(pk);
    pk_str(pk, "pid");
    pk_pid(pk, st->pid);
    pk_str(pk, "events");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pk_event(pk, &ev[i]);
    pk_key_u64(pk, "recorded", st->events);
    pk_key_u64(pk, "dropped", st->dropped);
    pk_key_str(pk, "end", trace_end_name(st->end));
}
