// SPDX-License-Identifier: MIT
// `actorctl tree`: the supervision tree, rebuilt from the parent link
// each actor of a snapshot carries. An actor whose parent is nil or no
// longer alive is a root; roots and siblings are listed in start order
// (their start_order; a snapshot lists actors by pid slot, and slots are
// reused), so a restarted child comes after its siblings. Whatever the
// node sends, each actor is printed exactly once: a parent cycle,
// impossible from a real node, is broken where it is found.
#include "actorctl.h"

#include <stdlib.h>
#include <string.h>

// Indentation is drawn for this many levels; deeper actors are drawn at
// this depth, marked with an ellipsis.
#define DRAW_DEPTH 48

typedef struct tree {
    size_t n;
    size_t *order;      // pre-order
    unsigned *depth;    // by position in order
    bool *last;         // by position in order: last among its siblings
    long *first, *next; // children lists, by actor index
} tree;

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n + 1, size);
    if (p == NULL)
        abort();
    return p;
}

static void
tree_free(tree *t)
{
    free(t->order);
    free(t->depth);
    free(t->last);
    free(t->first);
    free(t->next);
}

// qsort has no context argument: the snapshot being ordered.
static const ctl_snap *sorting;

// By start_order, then snapshot order (a node that sends no start_order).
static int
by_start(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    uint64_t si = sorting->actors[i].start_order;
    uint64_t sj = sorting->actors[j].start_order;
    if (si != sj)
        return si < sj ? -1 : 1;
    return i < j ? -1 : i > j;
}

// Links each actor to its parent, siblings in start order (`start`).
static void
link_children(ctl_snap *s, tree *t, const size_t *start, bool *root)
{
    for (size_t i = 0; i < s->n; i++)
        t->first[i] = t->next[i] = -1;
    for (size_t j = s->n; j-- > 0;) {
        size_t k = start[j];
        long p =
            s->actors[k].parent.n ? ctl_snap_find(s, s->actors[k].parent) : -1;
        root[k] = p < 0 || (size_t)p == k;
        if (!root[k]) {
            t->next[k] = t->first[p];
            t->first[p] = (long)k;
        }
    }
}

// Walks depth first from `start`, appending to the pre-order.
static void
walk(tree *t, size_t start, bool *seen, size_t *stack, unsigned *sdepth)
{
    size_t top = 0;
    stack[top] = start, sdepth[top++] = 0;
    while (top > 0) {
        size_t i = stack[--top];
        unsigned d = sdepth[top];
        if (seen[i])
            continue;
        seen[i] = true;
        t->order[t->n] = i;
        t->depth[t->n] = d;
        t->last[t->n++] = d == 0 || t->next[i] < 0;
        // Push children last first so the first is popped first.
        size_t mark = top;
        for (long c = t->first[i]; c >= 0; c = t->next[c])
            if (!seen[c])
                stack[top] = (size_t)c, sdepth[top++] = d + 1;
        for (size_t a = mark, b = top; b > a + 1; a++, b--) {
            size_t tmp = stack[a];
            stack[a] = stack[b - 1], stack[b - 1] = tmp;
        }
    }
}

static void
tree_build(ctl_snap *s, tree *t)
{
    memset(t, 0, sizeof *t);
    t->order = xcalloc(s->n, sizeof *t->order);
    t->depth = xcalloc(s->n, sizeof *t->depth);
    t->last = xcalloc(s->n, sizeof *t->last);
    t->first = xcalloc(s->n, sizeof *t->first);
    t->next = xcalloc(s->n, sizeof *t->next);
    bool *root = xcalloc(s->n, sizeof *root);
    bool *seen = xcalloc(s->n, sizeof *seen);
    // Each actor is pushed at most once per parent link it has: n in all.
    size_t *stack = xcalloc(s->n, sizeof *stack);
    unsigned *sdepth = xcalloc(s->n, sizeof *sdepth);
    size_t *start = xcalloc(s->n, sizeof *start);
    for (size_t i = 0; i < s->n; i++)
        start[i] = i;
    sorting = s;
    qsort(start, s->n, sizeof *start, by_start);
    link_children(s, t, start, root);
    for (size_t j = 0; j < s->n; j++)
        if (root[start[j]])
            walk(t, start[j], seen, stack, sdepth);
    for (size_t j = 0; j < s->n; j++)
        if (!seen[start[j]])
            walk(t, start[j], seen, stack, sdepth);
    free(start);
    free(root);
    free(seen);
    free(stack);
    free(sdepth);
}

// The drawing before row `k`, or with `note` before a note under it;
// `lastat` tracks, per depth, whether the ancestor there was the last of
// its siblings.
static void
prefix(const tree *t, size_t k, bool note, bool *lastat, char *buf,
       size_t size)
{
    static const char *const glyph[2][4] = {
        {"|  ", "   ", "|- ", "`- "},
        {"\u2502  ", "   ", "\u251c\u2500 ", "\u2514\u2500 "},
    };
    const char *const *g = glyph[ctl_utf8];
    unsigned d = t->depth[k];
    size_t used = 0;
    buf[0] = '\0';
    if (!note && d < DRAW_DEPTH)
        lastat[d] = t->last[k];
    for (unsigned j = 1; j < d && j < DRAW_DEPTH; j++)
        used += (size_t)snprintf(buf + used, size - used, "%s",
                                 g[lastat[j] ? 1 : 0]);
    if (d >= DRAW_DEPTH)
        used += (size_t)snprintf(buf + used, size - used, "%s",
                                 ctl_utf8 ? "\u2026 " : "... ");
    if (note && d > 0)
        used += (size_t)snprintf(buf + used, size - used, "%s",
                                 g[t->last[k] ? 1 : 0]);
    if (note)
        snprintf(buf + used, size - used, "%s",
                 g[t->first[t->order[k]] >= 0 ? 0 : 1]);
    else if (d > 0)
        snprintf(buf + used, size - used, "%s", g[t->last[k] ? 3 : 2]);
}

// The part of a describe line before its first '[': a supervisor lists
// its children after it, which the tree already shows.
static ctl_str
describe_head(ctl_str d)
{
    const char *bracket = memchr(d.p, '[', d.n);
    uint32_t n = bracket != NULL ? (uint32_t)(bracket - d.p) : d.n;
    while (n > 0 && d.p[n - 1] == ' ')
        n--;
    return (ctl_str){d.p, n};
}

static void
tree_text(const ctl_snap *s, const tree *t)
{
    ctl_table tb;
    bool lastat[DRAW_DEPTH] = {false};
    char pre[DRAW_DEPTH * 8 + 16];
    ctl_table_init(&tb, 6, 1u << 3 | 1u << 4 | 1u << 5);
    ctl_table_putf(&tb, NULL, "ACTOR");
    ctl_table_putf(&tb, NULL, "BEHAVIOUR");
    ctl_table_putf(&tb, NULL, "STATUS");
    ctl_table_putf(&tb, NULL, "MAILBOX");
    ctl_table_putf(&tb, NULL, "HANDLED");
    ctl_table_putf(&tb, NULL, "RESTARTS");
    for (size_t k = 0; k < t->n; k++) {
        const ctl_actor *a = &s->actors[t->order[k]];
        char *name = ctl_clean(a->name), *beh = ctl_clean(a->behaviour);
        char *st = ctl_status_text(a);
        prefix(t, k, false, lastat, pre, sizeof pre);
        ctl_table_putf(&tb, NULL, "%s%s%s%.*s%s%s%s%s", ctl_sgr(SGR_DIM), pre,
                       ctl_sgr("0"), (int)a->pid.n, a->pid.p,
                       name[0] ? " " : "", ctl_sgr(SGR_CYAN), name,
                       ctl_sgr("0"));
        ctl_table_put(&tb, NULL, beh);
        ctl_table_put(&tb, ctl_status_colour(a->status), st);
        ctl_table_putf(&tb, ctl_mailbox_colour(a->mailbox, a->capacity),
                       "%llu/%llu", (unsigned long long)a->mailbox,
                       (unsigned long long)a->capacity);
        ctl_table_putf(&tb, NULL, "%llu", (unsigned long long)a->handled);
        ctl_table_putf(&tb, a->restarts ? SGR_YELLOW : NULL, "%llu",
                       (unsigned long long)a->restarts);
        free(name);
        const ctl_str *d = s->describe ? &s->describe[t->order[k]] : NULL;
        if (d != NULL && (d->p != NULL || a->version.n > 0)) {
            char *text = ctl_clean(d->p != NULL ? describe_head(*d)
                                                : (ctl_str){"", 0}),
                 *note;
            char *vsn = ctl_clean(a->version);
            prefix(t, k, true, lastat, pre, sizeof pre);
            // The version of its code first, when labelled.
            if (asprintf(&note, "%s%s%s%s%s", pre, vsn[0] ? "version " : "",
                         vsn, vsn[0] && text[0] ? ", " : "", text) < 0)
                abort();
            free(vsn);
            ctl_table_note(&tb, SGR_DIM, note);
            free(text);
        }
    }
    ctl_table_print(&tb, stdout);
    ctl_table_free(&tb);
}

// Writes `s` cleaned, as the inside of a Graphviz quoted string.
static void
dot_str(FILE *f, ctl_str s)
{
    char *c = ctl_clean(s);
    for (const char *p = c; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    free(c);
}

static void
tree_dot(const ctl_snap *s, const tree *t)
{
    printf("digraph troupe {\n"
           "  node [shape=box, style=rounded, fontname=\"monospace\"];\n");
    for (size_t k = 0; k < t->n; k++) {
        const ctl_actor *a = &s->actors[t->order[k]];
        printf("  \"%.*s\" [label=\"", (int)a->pid.n, a->pid.p);
        if (a->name.n > 0) {
            dot_str(stdout, a->name);
            fputs("\\n", stdout);
        }
        dot_str(stdout, a->behaviour);
        printf(" %.*s\\nmailbox %llu/%llu  restarts %llu", (int)a->pid.n,
               a->pid.p, (unsigned long long)a->mailbox,
               (unsigned long long)a->capacity,
               (unsigned long long)a->restarts);
        if (s->describe != NULL && s->describe[t->order[k]].p != NULL) {
            fputs("\\n", stdout);
            dot_str(stdout, describe_head(s->describe[t->order[k]]));
        }
        fputc('"', stdout);
        if (ctl_str_eq(a->behaviour, "supervisor"))
            fputs(", style=\"rounded,bold\"", stdout);
        if (ctl_mailbox_colour(a->mailbox, a->capacity) != NULL)
            fputs(", color=red", stdout);
        else if (a->restarts > 0)
            fputs(", color=orange", stdout);
        fputs("];\n", stdout);
    }
    for (size_t k = 0; k < t->n; k++) {
        const ctl_actor *a = &s->actors[t->order[k]];
        if (t->depth[k] > 0)
            printf("  \"%.*s\" -> \"%.*s\";\n", (int)a->parent.n, a->parent.p,
                   (int)a->pid.n, a->pid.p);
    }
    printf("}\n");
}

// Asks the supervisor at index `i` for its describe line. One that died
// since the snapshot or cannot answer in time simply has none.
static int
describe_one(ctl_conn *c, ctl_snap *s, size_t i)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ctl_reply r;
    const msgpack_object *m;
    ctl_str d;
    ctl_request_begin(&sb, &pk, "info", 1);
    msgpack_pack_str_with_body(&pk, "pid", 3);
    msgpack_pack_str_with_body(&pk, s->actors[i].pid.p, s->actors[i].pid.n);
    int rc = ctl_call(c, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    if (rc == CTL_OK &&
        (rc = ctl_get_map(r.root, "actor", "the reply", &m)) == CTL_OK &&
        (rc = ctl_get_str(m, "describe", "actor", &d)) == CTL_OK) {
        char *copy = malloc((size_t)d.n + 1);
        if (copy == NULL)
            abort();
        memcpy(copy, d.p, d.n);
        s->describe[i] = (ctl_str){copy, d.n};
    }
    ctl_reply_free(&r);
    return rc == CTL_REFUSED ? CTL_OK : rc;
}

// tree --describe: each supervisor's describe line (its strategy,
// intensity and restarts in the current window), asked of it on `c`.
static int
describe_supervisors(ctl_conn *c, ctl_snap *s)
{
    int rc = CTL_OK;
    s->describe = calloc(s->n + 1, sizeof *s->describe);
    if (s->describe == NULL)
        abort();
    c->quiet = true;
    for (size_t i = 0; rc == CTL_OK && i < s->n; i++)
        if (ctl_str_eq(s->actors[i].behaviour, "supervisor"))
            rc = describe_one(c, s, i);
    c->quiet = false;
    return rc;
}

int
ctl_cmd_tree(const ctl_target *target, const ctl_opts *o)
{
    ctl_conn c;
    ctl_snap s;
    int rc = ctl_connect(&c, target);
    if (rc != CTL_OK)
        return rc;
    rc = ctl_snap_get(&c, &s);
    if (rc == CTL_OK && o->describe)
        rc = describe_supervisors(&c, &s);
    ctl_close(&c);
    if (rc == CTL_OK) {
        tree t;
        tree_build(&s, &t);
        if (o->json)
            ctl_snap_json(stdout, &s, t.order, t.n);
        else if (o->dot)
            tree_dot(&s, &t);
        else
            tree_text(&s, &t);
        tree_free(&t);
    }
    ctl_snap_free(&s);
    return rc;
}
