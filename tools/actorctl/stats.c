// SPDX-License-Identifier: MIT
// The commands about the node as a whole: `stats` (the system's counters,
// one `key value` line each under the protocol's key, then a table of
// workers), `nodes` (the peers of a distributed node) and `groups` (its
// process groups, or one group's members).
#include "actorctl.h"

#include <stdlib.h>
#include <string.h>

// Sends {"op": op} and reads the reply into `*r` (freed by the caller).
static int
simple_call(const ctl_target *t, const char *op, ctl_reply *r)
{
    ctl_conn c;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->up);
    int rc = ctl_connect(&c, t);
    if (rc != CTL_OK)
        return rc;
    ctl_request_begin(&sb, &pk, op, 0);
    rc = ctl_call(&c, &sb, r);
    msgpack_sbuffer_destroy(&sb);
    ctl_close(&c);
    return rc;
}

// The counters of `stats`, in the order printed.
static const char *const stat_keys[] = {
    "uptime_ms",   "threads",      "actors", "spawned",   "exited",
    "crashed",     "dead_letters", "timers", "stalls",    "messages",
    "activations", "steals",       "sleeps", "rss_bytes",
};
#define NSTATS (sizeof stat_keys / sizeof stat_keys[0])

static const char *const worker_keys[] = {"activations", "messages", "steals",
                                          "sleeps"};

typedef struct stats {
    ctl_str node;
    uint64_t v[NSTATS];
    const msgpack_object_array *workers;
    // Optional: the actor whose messages waited longest.
    bool slow;
    ctl_str slow_pid, slow_name, slow_behaviour;
    uint64_t slow_p50, slow_p99, slow_max;
} stats;

static int
stats_decode(const msgpack_object *r, stats *s)
{
    int rc = ctl_get_str(r, "node", "the stats", &s->node);
    for (size_t i = 0; rc == CTL_OK && i < NSTATS; i++) {
        s->v[i] = 0;
        // Nodes older than the stall watch send no "stalls".
        if (strcmp(stat_keys[i], "stalls") != 0 ||
            ctl_field(r, stat_keys[i]) != NULL)
            rc = ctl_get_uint(r, stat_keys[i], "the stats", &s->v[i]);
    }
    if (rc == CTL_OK)
        rc = ctl_get_array(r, "workers", "the stats", &s->workers);
    for (uint32_t w = 0; rc == CTL_OK && w < s->workers->size; w++) {
        char where[32];
        uint64_t v;
        snprintf(where, sizeof where, "workers[%u]", w);
        if (s->workers->ptr[w].type != MSGPACK_OBJECT_MAP)
            return ctl_bad_reply(where, "is not a map");
        for (size_t k = 0; rc == CTL_OK && k < 4; k++)
            rc = ctl_get_uint(&s->workers->ptr[w], worker_keys[k], where, &v);
    }
    const msgpack_object *lw = ctl_field(r, "longest_wait");
    s->slow = lw != NULL;
    if (rc == CTL_OK && lw != NULL) {
        const char *where = "longest_wait";
        if (lw->type != MSGPACK_OBJECT_MAP)
            return ctl_bad_reply(where, "is not a map");
        if ((rc = ctl_get_str(lw, "pid", where, &s->slow_pid)) == CTL_OK &&
            (rc = ctl_get_str(lw, "name", where, &s->slow_name)) == CTL_OK &&
            (rc = ctl_get_str(lw, "behaviour", where, &s->slow_behaviour)) ==
                CTL_OK &&
            (rc = ctl_get_uint(lw, "wait_p50_us", where, &s->slow_p50)) ==
                CTL_OK &&
            (rc = ctl_get_uint(lw, "wait_p99_us", where, &s->slow_p99)) ==
                CTL_OK)
            rc = ctl_get_uint(lw, "wait_max_us", where, &s->slow_max);
    }
    return rc;
}

static void
stats_json(const stats *s)
{
    fputs("{\"node\":", stdout);
    ctl_json_str(stdout, s->node);
    for (size_t i = 0; i < NSTATS; i++)
        printf(",\"%s\":%llu", stat_keys[i], (unsigned long long)s->v[i]);
    fputs(",\"workers\":[", stdout);
    for (uint32_t w = 0; w < s->workers->size; w++) {
        for (size_t k = 0; k < 4; k++) {
            uint64_t v =
                ctl_field(&s->workers->ptr[w], worker_keys[k])->via.u64;
            printf("%s\"%s\":%llu", k == 0 ? (w ? ",{" : "{") : ",",
                   worker_keys[k], (unsigned long long)v);
        }
        fputc('}', stdout);
    }
    fputc(']', stdout);
    if (s->slow) {
        fputs(",\"longest_wait\":{\"pid\":", stdout);
        ctl_json_str(stdout, s->slow_pid);
        fputs(",\"name\":", stdout);
        ctl_json_str(stdout, s->slow_name);
        fputs(",\"behaviour\":", stdout);
        ctl_json_str(stdout, s->slow_behaviour);
        printf(",\"wait_p50_us\":%llu,\"wait_p99_us\":%llu,"
               "\"wait_max_us\":%llu}",
               (unsigned long long)s->slow_p50,
               (unsigned long long)s->slow_p99,
               (unsigned long long)s->slow_max);
    }
    fputs("}\n", stdout);
}

static void
stats_text(const stats *s)
{
    char *node = ctl_clean(s->node), up[32];
    printf("%-13s %s\n", "node", node[0] ? node : "-");
    free(node);
    ctl_duration(up, sizeof up, s->v[0]);
    for (size_t i = 0; i < NSTATS; i++) {
        printf("%-13s %llu", stat_keys[i], (unsigned long long)s->v[i]);
        if (i == 0)
            printf(" (%s)", up);
        if (i == NSTATS - 1)
            printf(" (%.1f MiB)", (double)s->v[i] / (1 << 20));
        putchar('\n');
    }
    if (s->slow) {
        char p50[32], p99[32], max[32];
        char *pid = ctl_clean(s->slow_pid), *name = ctl_clean(s->slow_name),
             *beh = ctl_clean(s->slow_behaviour);
        ctl_cpu_format(p50, sizeof p50, s->slow_p50);
        ctl_cpu_format(p99, sizeof p99, s->slow_p99);
        ctl_cpu_format(max, sizeof max, s->slow_max);
        printf("%-13s %s %s (%s): p50 %s, p99 %s, max %s\n", "longest_wait",
               pid, name[0] ? name : "-", beh, p50, p99, max);
        free(pid);
        free(name);
        free(beh);
    }
    if (s->workers->size == 0)
        return;
    ctl_table tb;
    ctl_table_init(&tb, 5, 0x1fu);
    static const char *const cols[] = {"WORKER", "ACTIVATIONS", "MESSAGES",
                                       "STEALS", "SLEEPS"};
    for (size_t k = 0; k < 5; k++)
        ctl_table_putf(&tb, NULL, "%s", cols[k]);
    for (uint32_t w = 0; w < s->workers->size; w++) {
        ctl_table_putf(&tb, NULL, "%u", w);
        for (size_t k = 0; k < 4; k++)
            ctl_table_putf(&tb, NULL, "%llu",
                           (unsigned long long)ctl_field(&s->workers->ptr[w],
                                                         worker_keys[k])
                               ->via.u64);
    }
    putchar('\n');
    ctl_table_print(&tb, stdout);
    ctl_table_free(&tb);
}

int
ctl_cmd_stats(const ctl_target *t, const ctl_opts *o)
{
    ctl_reply r;
    stats s;
    int rc = simple_call(t, "stats", &r);
    if (rc == CTL_OK && (rc = stats_decode(r.root, &s)) == CTL_OK) {
        if (o->json)
            stats_json(&s);
        else
            stats_text(&s);
    }
    ctl_reply_free(&r);
    return rc;
}

// ---- nodes
// ------------------------------------------------------------------

static const char *const peer_uints[] = {"incarnation", "rtt_us",   "queued",
                                         "sent",        "received", "dropped",
                                         "connects"};
#define NPEER (sizeof peer_uints / sizeof peer_uints[0])

typedef struct peer {
    ctl_str node, state;
    uint64_t v[NPEER];
} peer;

static int
peer_decode(const msgpack_object *m, uint32_t i, peer *p)
{
    char where[32];
    snprintf(where, sizeof where, "peers[%u]", i);
    if (m->type != MSGPACK_OBJECT_MAP)
        return ctl_bad_reply(where, "is not a map");
    int rc = ctl_get_str(m, "node", where, &p->node);
    if (rc == CTL_OK)
        rc = ctl_get_str(m, "state", where, &p->state);
    for (size_t k = 0; rc == CTL_OK && k < NPEER; k++)
        rc = ctl_get_uint(m, peer_uints[k], where, &p->v[k]);
    return rc;
}

static void
peer_json(const peer *p, bool first)
{
    fputs(first ? "\n{\"node\":" : ",\n{\"node\":", stdout);
    ctl_json_str(stdout, p->node);
    fputs(",\"state\":", stdout);
    ctl_json_str(stdout, p->state);
    for (size_t k = 0; k < NPEER; k++)
        printf(",\"%s\":%llu", peer_uints[k], (unsigned long long)p->v[k]);
    fputc('}', stdout);
}

static void
peer_row(ctl_table *tb, const peer *p)
{
    ctl_table_put(tb, NULL, ctl_clean(p->node));
    ctl_table_put(tb,
                  ctl_str_eq(p->state, "up")     ? SGR_GREEN
                  : ctl_str_eq(p->state, "idle") ? NULL
                                                 : SGR_YELLOW,
                  ctl_clean(p->state));
    for (size_t k = 0; k < NPEER; k++) {
        if (k == 1 && p->v[k] >= 1000)
            ctl_table_putf(tb, NULL, "%.1fms", (double)p->v[k] / 1000);
        else
            ctl_table_putf(tb, NULL, k == 1 ? "%lluus" : "%llu",
                           (unsigned long long)p->v[k]);
    }
}

static void
peer_table(const peer *ps, uint32_t n)
{
    static const char *const cols[] = {"NODE",     "STATE",   "INCARNATION",
                                       "RTT",      "QUEUED",  "SENT",
                                       "RECEIVED", "DROPPED", "CONNECTS"};
    ctl_table tb;
    ctl_table_init(&tb, 9, 0x1fcu);
    for (size_t k = 0; k < 9; k++)
        ctl_table_putf(&tb, NULL, "%s", cols[k]);
    for (uint32_t i = 0; i < n; i++)
        peer_row(&tb, &ps[i]);
    ctl_table_print(&tb, stdout);
    ctl_table_free(&tb);
}

static int
nodes_print(const msgpack_object *r, bool json)
{
    ctl_str node;
    const msgpack_object_array *peers;
    int rc = ctl_get_str(r, "node", "the reply", &node);
    if (rc != CTL_OK ||
        (rc = ctl_get_array(r, "peers", "the reply", &peers)) != CTL_OK)
        return rc;
    peer *ps = calloc(peers->size + 1, sizeof *ps);
    if (ps == NULL)
        abort();
    for (uint32_t i = 0; rc == CTL_OK && i < peers->size; i++)
        rc = peer_decode(&peers->ptr[i], i, &ps[i]);
    if (rc == CTL_OK && json) {
        fputs("{\"node\":", stdout);
        ctl_json_str(stdout, node);
        fputs(",\"peers\":[", stdout);
        for (uint32_t i = 0; i < peers->size; i++)
            peer_json(&ps[i], i == 0);
        fputs(peers->size ? "\n]}\n" : "]}\n", stdout);
    } else if (rc == CTL_OK && node.n == 0) {
        printf("this node is not distributed: it has no peers\n");
    } else if (rc == CTL_OK && peers->size == 0) {
        char *c = ctl_clean(node);
        printf("%s has no peers\n", c);
        free(c);
    } else if (rc == CTL_OK) {
        peer_table(ps, peers->size);
    }
    free(ps);
    return rc;
}

int
ctl_cmd_nodes(const ctl_target *t, const ctl_opts *o)
{
    ctl_reply r;
    int rc = simple_call(t, "nodes", &r);
    if (rc == CTL_OK)
        rc = nodes_print(r.root, o->json);
    ctl_reply_free(&r);
    return rc;
}

// ---- groups
// -----------------------------------------------------------------

// Widest MEMBERS cell: the pids that fit, then "...".
#define MEMBERS_WIDTH 48

typedef struct group {
    ctl_str name;
    uint64_t local, total;
    bool truncated; // the node listed only some members
    const msgpack_object_array *members;
} group;

static int
group_decode(const msgpack_object *m, uint32_t i, group *g)
{
    char where[32];
    snprintf(where, sizeof where, "groups[%u]", i);
    if (m->type != MSGPACK_OBJECT_MAP)
        return ctl_bad_reply(where, "is not a map");
    int rc = ctl_get_str(m, "name", where, &g->name);
    if (rc == CTL_OK)
        rc = ctl_get_uint(m, "local", where, &g->local);
    if (rc == CTL_OK)
        rc = ctl_get_uint(m, "total", where, &g->total);
    if (rc == CTL_OK)
        rc = ctl_get_bool(m, "truncated", where, &g->truncated);
    if (rc == CTL_OK)
        rc = ctl_get_array(m, "members", where, &g->members);
    for (uint32_t k = 0; rc == CTL_OK && k < g->members->size; k++) {
        const msgpack_object *p = &g->members->ptr[k];
        if (p->type != MSGPACK_OBJECT_STR ||
            !ctl_pid_valid(p->via.str.ptr, p->via.str.size))
            return ctl_bad_reply(where,
                                 "has \"members\"[%u] that is not a pid", k);
    }
    return rc;
}

// Bytewise by name, as the node sorts them.
static int
group_order(const void *a, const void *b)
{
    const group *x = a, *y = b;
    uint32_t n = x->name.n < y->name.n ? x->name.n : y->name.n;
    int c = n ? memcmp(x->name.p, y->name.p, n) : 0;
    return c ? c : (x->name.n > y->name.n) - (x->name.n < y->name.n);
}

static ctl_str
member(const group *g, uint32_t k)
{
    const msgpack_object *p = &g->members->ptr[k];
    return (ctl_str){p->via.str.ptr, p->via.str.size};
}

static void
group_json(const group *g)
{
    fputs("{\"name\":", stdout);
    ctl_json_str(stdout, g->name);
    printf(",\"local\":%llu,\"total\":%llu,\"members\":[",
           (unsigned long long)g->local, (unsigned long long)g->total);
    for (uint32_t k = 0; k < g->members->size; k++) {
        if (k > 0)
            fputc(',', stdout);
        ctl_json_str(stdout, member(g, k));
    }
    printf("],\"truncated\":%s}", g->truncated ? "true" : "false");
}

// The members that fit in MEMBERS_WIDTH, then "..." when some do not or
// the node did not list them all. The caller frees it.
static char *
members_text(const group *g)
{
    char buf[MEMBERS_WIDTH + 1];
    size_t len = 0;
    bool cut = g->truncated || g->members->size < g->total;
    for (uint32_t k = 0; k < g->members->size; k++) {
        ctl_str p = member(g, k);
        bool last = k + 1 == g->members->size && !cut;
        size_t need = (len ? 1 : 0) + p.n;
        if (len + need > MEMBERS_WIDTH - (last ? 0 : 4)) {
            cut = true;
            break;
        }
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.*s",
                                len ? " " : "", (int)p.n, p.p);
    }
    if (cut)
        snprintf(buf + len, sizeof buf - len, "%s...", len ? " " : "");
    else if (len == 0)
        snprintf(buf, sizeof buf, "-");
    char *s = strdup(buf);
    if (s == NULL)
        abort();
    return s;
}

static void
group_table(const group *gs, uint32_t n)
{
    static const char *const cols[] = {"GROUP", "LOCAL", "TOTAL", "MEMBERS"};
    ctl_table tb;
    ctl_table_init(&tb, 4, 0x6u);
    for (size_t k = 0; k < 4; k++)
        ctl_table_putf(&tb, NULL, "%s", cols[k]);
    for (uint32_t i = 0; i < n; i++) {
        ctl_table_put(&tb, SGR_CYAN, ctl_clean(gs[i].name));
        ctl_table_putf(&tb, NULL, "%llu", (unsigned long long)gs[i].local);
        ctl_table_putf(&tb, NULL, "%llu", (unsigned long long)gs[i].total);
        ctl_table_put(&tb, NULL, members_text(&gs[i]));
    }
    ctl_table_print(&tb, stdout);
    ctl_table_free(&tb);
}

static void
groups_all(ctl_str node, const group *gs, uint32_t n, bool json)
{
    if (json) {
        fputs("{\"node\":", stdout);
        ctl_json_str(stdout, node);
        fputs(",\"groups\":[", stdout);
        for (uint32_t i = 0; i < n; i++) {
            fputs(i ? ",\n" : "\n", stdout);
            group_json(&gs[i]);
        }
        fputs(n ? "\n]}\n" : "]}\n", stdout);
    } else if (n == 0) {
        char *c = ctl_clean(node);
        printf("%s has no process groups\n", c[0] ? c : "this node");
        free(c);
    } else {
        group_table(gs, n);
    }
}

// One group: its members one per line, then how many the node left out.
static int
groups_one(const group *gs, uint32_t n, const char *name, bool json)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!ctl_str_eq(gs[i].name, name))
            continue;
        if (json) {
            group_json(&gs[i]);
            fputc('\n', stdout);
            return CTL_OK;
        }
        for (uint32_t k = 0; k < gs[i].members->size; k++)
            printf("%.*s\n", (int)member(&gs[i], k).n, member(&gs[i], k).p);
        if (gs[i].members->size < gs[i].total)
            printf("... %llu more\n",
                   (unsigned long long)(gs[i].total - gs[i].members->size));
        return CTL_OK;
    }
    char w[300];
    return ctl_fail(CTL_ERROR, "%s: group \"%s\": no such group",
                    ctl_who(w, sizeof w), name);
}

static int
groups_print(const msgpack_object *r, const char *name, bool json)
{
    ctl_str node;
    const msgpack_object_array *arr;
    int rc = ctl_get_str(r, "node", "the reply", &node);
    if (rc != CTL_OK ||
        (rc = ctl_get_array(r, "groups", "the reply", &arr)) != CTL_OK)
        return rc;
    group *gs = calloc(arr->size + 1, sizeof *gs);
    if (gs == NULL)
        abort();
    for (uint32_t i = 0; rc == CTL_OK && i < arr->size; i++)
        rc = group_decode(&arr->ptr[i], i, &gs[i]);
    if (rc == CTL_OK) {
        qsort(gs, arr->size, sizeof *gs, group_order);
        if (name != NULL)
            rc = groups_one(gs, arr->size, name, json);
        else
            groups_all(node, gs, arr->size, json);
    }
    free(gs);
    return rc;
}

int
ctl_cmd_groups(const ctl_target *t, const ctl_opts *o, const char *name)
{
    ctl_reply r;
    int rc = simple_call(t, "groups", &r);
    if (rc == CTL_OK)
        rc = groups_print(r.root, name, o->json);
    ctl_reply_free(&r);
    return rc;
}
