// SPDX-License-Identifier: MIT
// `actorctl ps` lists the actors of one snapshot, sorted; `actorctl top`
// compares successive snapshots taken on one connection and ranks actors
// by messages handled per second. On a terminal top redraws in place
// (alternate screen, line wrap off) until q or Ctrl-C, restoring the
// terminal whatever ends it; elsewhere it prints its reports as text.
#include "actorctl.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

typedef enum sort_key {
    BY_PID,
    BY_MAILBOX,
    BY_MSGS,
    BY_RESTARTS,
    BY_AGE,
    BY_CPU,
    BY_WAIT
} sort_key;

static const struct {
    const char *name;
    sort_key key;
} sort_names[] = {
    {"pid", BY_PID},       {"mailbox", BY_MAILBOX}, {"msgs", BY_MSGS},
    {"messages", BY_MSGS}, {"handled", BY_MSGS},    {"restarts", BY_RESTARTS},
    {"age", BY_AGE},       {"cpu", BY_CPU},         {"wait", BY_WAIT},
};

bool
ctl_sort_known(const char *key)
{
    for (size_t i = 0; i < sizeof sort_names / sizeof sort_names[0]; i++)
        if (strcmp(key, sort_names[i].name) == 0)
            return true;
    return false;
}

static sort_key
sort_parse(const char *key)
{
    for (size_t i = 0; key && i < sizeof sort_names / sizeof sort_names[0];
         i++)
        if (strcmp(key, sort_names[i].name) == 0)
            return sort_names[i].key;
    return BY_PID;
}

// qsort has no context argument: what is being sorted, and how.
static const ctl_snap *sort_snap;
static const double *sort_rate;
static sort_key sort_by;

static uint64_t
sort_value(size_t i)
{
    const ctl_actor *a = &sort_snap->actors[i];
    switch (sort_by) {
    case BY_MAILBOX:
        return a->mailbox;
    case BY_MSGS:
        return a->handled;
    case BY_RESTARTS:
        return a->restarts;
    case BY_AGE:
        return a->age_ms;
    case BY_CPU:
        return a->cpu_us;
    case BY_WAIT:
        return a->wait_p99_us;
    default:
        return 0;
    }
}

// Largest first; ties keep snapshot order.
static int
order_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    if (sort_rate != NULL && sort_rate[a] != sort_rate[b])
        return sort_rate[a] > sort_rate[b] ? -1 : 1;
    uint64_t va = sort_value(a), vb = sort_value(b);
    if (sort_rate != NULL) // top: then the fullest mailbox
        va = sort_snap->actors[a].mailbox, vb = sort_snap->actors[b].mailbox;
    if (va != vb)
        return va > vb ? -1 : 1;
    return a < b ? -1 : a > b;
}

static size_t *
sorted(const ctl_snap *s, sort_key by, const double *rate)
{
    size_t *order = malloc((s->n + 1) * sizeof *order);
    if (order == NULL)
        abort();
    for (size_t i = 0; i < s->n; i++)
        order[i] = i;
    sort_snap = s, sort_by = by, sort_rate = rate;
    qsort(order, s->n, sizeof *order, order_cmp);
    return order;
}

// What top adds to a row: messages per second and the share of one
// scheduler thread the actor used since the last report (< 0: unknown).
typedef struct top_extra {
    double rate, cpu;
} top_extra;

// One table row for actor `a`: ps's columns, or top's when `top` is set.
// `cpu_time`: the node measures run time (else CPU shows "-").
static void
row(ctl_table *tb, const ctl_actor *a, bool cpu_time, const top_extra *top)
{
    char buf[32];
    ctl_table_putf(tb, NULL, "%.*s", (int)a->pid.n, a->pid.p);
    ctl_table_put(tb, SGR_CYAN, a->name.n ? ctl_clean(a->name) : strdup("-"));
    ctl_table_put(tb, NULL, ctl_clean(a->behaviour));
    ctl_table_put(tb, ctl_status_colour(a->status), ctl_status_text(a));
    if (top != NULL) {
        ctl_table_putf(tb, top->rate >= 0.5 ? SGR_BOLD : NULL, "%.0f",
                       top->rate);
        if (top->cpu >= 0)
            ctl_table_putf(tb, top->cpu >= 0.5 ? SGR_BOLD : NULL, "%.1f",
                           top->cpu * 100);
        else
            ctl_table_putf(tb, NULL, "-");
    }
    ctl_table_putf(tb, ctl_mailbox_colour(a->mailbox, a->capacity),
                   "%llu/%llu", (unsigned long long)a->mailbox,
                   (unsigned long long)a->capacity);
    if (top == NULL)
        ctl_table_putf(tb, NULL, "%llu", (unsigned long long)a->high_water);
    ctl_table_putf(tb, NULL, "%llu", (unsigned long long)a->handled);
    if (top == NULL) {
        ctl_cpu_format(buf, sizeof buf, a->cpu_us);
        ctl_table_putf(tb, NULL, "%s", cpu_time ? buf : "-");
        ctl_cpu_format(buf, sizeof buf, a->wait_p99_us);
        ctl_table_putf(tb, NULL, "%s", cpu_time && a->waits ? buf : "-");
    }
    ctl_table_putf(tb, a->restarts ? SGR_YELLOW : NULL, "%llu",
                   (unsigned long long)a->restarts);
    if (top == NULL) {
        ctl_duration(buf, sizeof buf, a->age_ms);
        ctl_table_putf(tb, NULL, "%s", buf);
    }
}

static void
header(ctl_table *tb, bool top)
{
    static const char *const ps_cols[] = {
        "PID",     "NAME", "BEHAVIOUR", "STATUS",   "MAILBOX", "PEAK",
        "HANDLED", "CPU",  "WAIT99",    "RESTARTS", "AGE"};
    static const char *const top_names[] = {"PID",     "NAME",    "BEHAVIOUR",
                                            "STATUS",  "MSG/S",   "CPU%",
                                            "MAILBOX", "HANDLED", "RESTARTS"};
    const char *const *cols = top ? top_names : ps_cols;
    size_t n = top ? 9 : 11;
    // Numbers are right-aligned: MAILBOX and after for ps, MSG/S for top.
    ctl_table_init(tb, n, top ? 0x1f0u : 0x7f0u);
    for (size_t i = 0; i < n; i++)
        ctl_table_putf(tb, NULL, "%s", cols[i]);
}

int
ctl_cmd_ps(const ctl_target *target, const ctl_opts *o)
{
    ctl_conn c;
    ctl_snap s;
    int rc = ctl_connect(&c, target);
    if (rc != CTL_OK)
        return rc;
    rc = ctl_snap_get(&c, &s);
    ctl_close(&c);
    if (rc == CTL_OK) {
        size_t *order = sorted(&s, sort_parse(o->sort), NULL);
        size_t n =
            o->count >= 0 && (size_t)o->count < s.n ? (size_t)o->count : s.n;
        if (o->json) {
            ctl_snap_json(stdout, &s, order, n);
        } else {
            ctl_table tb;
            header(&tb, false);
            for (size_t i = 0; i < n; i++)
                row(&tb, &s.actors[order[i]], s.cpu_time, NULL);
            ctl_table_print(&tb, stdout);
            ctl_table_free(&tb);
        }
        free(order);
    }
    ctl_snap_free(&s);
    return rc;
}

// ---- top ------------------------------------------------------------------

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    interrupted = sig;
}

typedef struct top_state {
    const ctl_target *target;
    ctl_snap prev, cur;
    bool live, keys; // redrawing on a terminal; reading keys from stdin
    struct termios saved;
    int64_t prev_at; // when prev arrived, client clock, ms
} top_state;

static int64_t
clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Messages per second of each actor of `cur` since `prev`, `ms` apart,
// into the returned array, and its share of a thread into `cpu` (-1 when
// the node does not measure it). An actor not in `prev` (new, or restarted
// under a new pid) counts from 0.
static double *
rates(ctl_snap *prev, const ctl_snap *cur, double ms, double *cpu)
{
    double *r = calloc(cur->n + 1, sizeof *r);
    if (r == NULL)
        abort();
    for (size_t i = 0; i < cur->n; i++) {
        const ctl_actor *a = &cur->actors[i];
        long p = ctl_snap_find(prev, a->pid);
        uint64_t before = p >= 0 ? prev->actors[p].handled : 0;
        uint64_t ran = p >= 0 ? prev->actors[p].cpu_us : 0;
        r[i] = a->handled > before ? (double)(a->handled - before) * 1000 / ms
                                   : 0;
        cpu[i] = !cur->cpu_time    ? -1
                 : a->cpu_us > ran ? (double)(a->cpu_us - ran) / 1000 / ms
                                   : 0;
    }
    return r;
}

static void
top_render(top_state *t, double ms, FILE *f, size_t rows)
{
    double *cpu = calloc(t->cur.n + 1, sizeof *cpu), total = 0;
    if (cpu == NULL)
        abort();
    double *r = rates(&t->prev, &t->cur, ms, cpu);
    size_t *order = sorted(&t->cur, BY_PID, r);
    char up[32], *node = ctl_clean(t->cur.node);
    for (size_t i = 0; i < t->cur.n; i++)
        total += r[i];
    ctl_duration(up, sizeof up, t->cur.uptime_ms);
    fprintf(f,
            "%snode %s%s  uptime %s  actors %zu  threads %llu  "
            "%.0f msg/s%s\n",
            ctl_sgr(SGR_BOLD), node[0] ? node : "(not distributed)",
            ctl_sgr("0"), up, t->cur.n, (unsigned long long)t->cur.threads,
            total, t->live ? "   (q quits)" : "");
    ctl_table tb;
    header(&tb, true);
    for (size_t i = 0; i < t->cur.n && i < rows; i++) {
        top_extra tc = {r[order[i]], cpu[order[i]]};
        row(&tb, &t->cur.actors[order[i]], t->cur.cpu_time, &tc);
    }
    ctl_table_print(&tb, f);
    ctl_table_free(&tb);
    free(node);
    free(order);
    free(r);
    free(cpu);
}

// Waits `ms`, returning early with true when the user asked to quit.
static bool
top_wait(top_state *t, int ms)
{
    int64_t end = clock_ms() + ms;
    for (int64_t left = ms; left > 0 && !interrupted;
         left = end - clock_ms()) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int rc = poll(&p, t->keys ? 1 : 0, (int)left);
        char ch;
        if (rc > 0 && read(STDIN_FILENO, &ch, 1) == 1 &&
            (ch == 'q' || ch == 'Q'))
            return true;
        if (rc < 0 && errno != EINTR)
            break;
    }
    return interrupted != 0;
}

static void
term_enter(top_state *t)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (!t->live)
        return;
    t->keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0;
    if (t->keys) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1, raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    // Alternate screen, cursor hidden, no line wrap: cut, not wrapped.
    // Diagnostics wait until the screen is back.
    ctl_diag_hold(true);
    fputs("\033[?1049h\033[?25l\033[?7l", stdout);
    fflush(stdout);
}

static void
term_leave(top_state *t)
{
    if (!t->live)
        return;
    fputs("\033[?7h\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    if (t->keys)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    ctl_diag_hold(false);
}

static void
top_draw(top_state *t, double ms)
{
    struct winsize ws = {0};
    size_t rows = SIZE_MAX;
    if (t->live && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 3)
        rows = ws.ws_row - 3;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = t->live ? open_memstream(&buf, &len) : stdout;
    if (f == NULL)
        abort();
    top_render(t, ms, f, rows);
    if (!t->live)
        return;
    fclose(f);
    // One write per frame, drawn over the last one: no flicker.
    fputs("\033[H\033[2J", stdout);
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
    free(buf);
}

// One snapshot on a connection of its own: the node closes a connection
// that sends no request for 5 s, and top may wait longer than that.
static int
snap_once(const ctl_target *target, ctl_snap *s)
{
    ctl_conn c;
    memset(s, 0, sizeof *s);
    msgpack_unpacked_init(&s->reply.up);
    int rc = ctl_connect(&c, target);
    if (rc == CTL_OK) {
        rc = ctl_snap_get(&c, s);
        ctl_close(&c);
    }
    return rc;
}

static int
top_loop(top_state *t, const ctl_opts *o)
{
    int delay = (int)lround(o->delay * 1000);
    long n = o->count >= 0 ? o->count : (t->live ? -1 : 1);
    int rc = snap_once(t->target, &t->prev);
    t->prev_at = clock_ms();
    for (long i = 0; rc == CTL_OK && (n < 0 || i < n); i++) {
        if (top_wait(t, delay))
            break;
        rc = snap_once(t->target, &t->cur);
        if (rc != CTL_OK)
            break;
        int64_t at = clock_ms();
        // The node's clock when it advanced, else ours.
        double ms = t->cur.uptime_ms > t->prev.uptime_ms
                        ? (double)(t->cur.uptime_ms - t->prev.uptime_ms)
                        : (double)(at - t->prev_at);
        if (!t->live && i > 0)
            putchar('\n');
        top_draw(t, ms > 0 ? ms : 1);
        ctl_snap_free(&t->prev);
        t->prev = t->cur;
        memset(&t->cur, 0, sizeof t->cur);
        t->prev_at = at;
    }
    return rc;
}

int
ctl_cmd_top(const ctl_target *target, const ctl_opts *o)
{
    top_state t;
    memset(&t, 0, sizeof t);
    msgpack_unpacked_init(&t.prev.reply.up);
    msgpack_unpacked_init(&t.cur.reply.up);
    t.target = target;
    t.live = isatty(STDOUT_FILENO);
    term_enter(&t);
    int rc = top_loop(&t, o);
    term_leave(&t);
    ctl_snap_free(&t.prev);
    ctl_snap_free(&t.cur);
    return rc;
}
