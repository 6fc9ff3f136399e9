// SPDX-License-Identifier: MIT
// /metrics in Prometheus text format over HTTP/1.0, one request per
// connection, served on the I/O thread by serve.c: a client has a few
// seconds to send its request head (at most REQ_MAX bytes) and to take the
// reply, and waits for nobody else. Anything but GET /metrics gets 404 or
// 400. Counts are node-wide or per behaviour, never per actor, so a scrape
// stays small however many actors run.
#include "core/core.h"
#include "io/io.h"
#include "observe/observe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// A request head's most bytes.
#define REQ_MAX 4096
// A client has this long to send its request head, and this long to take
// the reply.
#define REQUEST_S 2.0
#define REPLY_S 2.0

typedef struct tp__metrics {
    tp__server *srv;
} tp__metrics;

void
tp_count_event(tp_system *sys, tp_event ev)
{
    if (sys == NULL || (unsigned)ev > TP_EVENT_INTENSITY_EXCEEDED)
        return;
    atomic_fetch_add_explicit(&sys->events[ev], 1, memory_order_relaxed);
}

// ---- the text
// ---------------------------------------------------------------

typedef struct text {
    char *p;
    size_t len, cap;
    bool failed;
} text;

static void
put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 8192;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void
head(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(text *t, const char *name, const char *type, const char *help, uint64_t v)
{
    head(t, name, type, help);
    put(t, "%s %llu\n", name, (unsigned long long)v);
}

// ---- message waits per behaviour -------------------------------------------

// A label value: backslash, double quote and newline escaped.
static void
put_label(text *t, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            put(t, "\\%c", *v);
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

// troupe_message_wait_seconds: the waits timed on every thread, per
// behaviour, counted since the node started (tp__wait_by_behaviour: the
// counts only grow, whatever actors come and go).
static void
render_waits(tp_system *sys, text *t)
{
    if (!sys->cfg.cpu_time)
        return;
    size_t max = tp__wait_by_behaviour(sys, NULL, 0) + 16, n;
    tp__wait_hist *h = calloc(max, sizeof *h);
    if (h == NULL) {
        t->failed = true;
        return;
    }
    n = tp__wait_by_behaviour(sys, h, max);
    if (n > max)
        n = max; // behaviours that appeared meanwhile show next time
    head(t, "troupe_message_wait_seconds", "histogram",
         "Time user messages waited in mailboxes, from being queued to the "
         "start of their handling, per behaviour (the timed ones: "
         "tp_config.wait_sample).");
    for (size_t i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (unsigned b = 0; b < TP_WAIT_BUCKETS; b++) {
            cum += h[i].bucket[b];
            put(t, "troupe_message_wait_seconds_bucket{behaviour=\"");
            put_label(t, h[i].behaviour);
            if (b == TP_WAIT_BUCKETS - 1)
                put(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
            else
                put(t, "\",le=\"%.6f\"} %llu\n", (double)(1ull << b) / 1e6,
                    (unsigned long long)cum);
        }
        put(t, "troupe_message_wait_seconds_sum{behaviour=\"");
        put_label(t, h[i].behaviour);
        put(t, "\"} %.6f\n", (double)h[i].sum_ns / 1e9);
        put(t, "troupe_message_wait_seconds_count{behaviour=\"");
        put_label(t, h[i].behaviour);
        put(t, "\"} %llu\n", (unsigned long long)h[i].count);
    }
    free(h);
}

static void
render(tp_system *sys, text *t)
{
    tp_snapshot *s = NULL;
    static const char *status[] = {"waiting", "runnable", "muted", "exiting",
                                   "busy"};
    enum { NSTATUS = sizeof status / sizeof status[0] };
    uint64_t by_status[NSTATUS] = {0}, dropped = 0, rejected = 0, queued = 0;
    if (tp_snapshot_take(sys, &s) == 0) {
        for (size_t i = 0; i < tp_snapshot_len(s); i++) {
            const tp_actor_info *a = tp_snapshot_at(s, i);
            if ((unsigned)a->status < NSTATUS)
                by_status[a->status]++;
            dropped += a->dropped;
            rejected += a->rejected;
            queued += a->mailbox;
        }
    }
    tp_system_stats st;
    tp_system_stats_get(sys, &st);
    head(t, "troupe_actors", "gauge", "Live actors by status.");
    for (int i = 0; i < NSTATUS; i++)
        put(t, "troupe_actors{status=\"%s\"} %llu\n", status[i],
            (unsigned long long)by_status[i]);
    one(t, "troupe_actors_spawned_total", "counter",
        "Actors spawned since the node started.", st.spawned);
    one(t, "troupe_actors_crashed_total", "counter",
        "Actors that exited abnormally.", st.crashed);
    one(t, "troupe_messages_handled_total", "counter",
        "Messages handled by actors.", st.total.messages);
    one(t, "troupe_mailbox_queued", "gauge",
        "User messages waiting in mailboxes.", queued);
    one(t, "troupe_mailbox_dropped_total", "counter",
        "Messages discarded by overflow policies (live actors).", dropped);
    one(t, "troupe_mailbox_rejected_total", "counter",
        "Sends refused with TP_EFULL (live actors).", rejected);
    one(t, "troupe_dead_letters_total", "counter",
        "Messages discarded: dropped, or queued when their actor died.",
        st.dead_letters);
    one(t, "troupe_restarts_total", "counter",
        "Children restarted by supervisors.",
        atomic_load_explicit(&sys->events[TP_EVENT_RESTART],
                             memory_order_relaxed));
    one(t, "troupe_intensity_exceeded_total", "counter",
        "Supervisors that gave up after too many restarts.",
        atomic_load_explicit(&sys->events[TP_EVENT_INTENSITY_EXCEEDED],
                             memory_order_relaxed));
    one(t, "troupe_timers", "gauge", "Pending timers.", st.timers);
    one(t, "troupe_stalls_total", "counter",
        "Activations that ran past the stall threshold (tp_config.stall_ms).",
        st.stalls);
    head(t, "troupe_run_queue", "gauge",
         "Actors waiting in each scheduler thread's run queue.");
    for (unsigned i = 0; i < tp__worker_count(sys); i++) {
        tp__worker_counts w;
        if (tp__worker_counters(sys, i, &w) == 0)
            put(t, "troupe_run_queue{thread=\"%u\"} %u\n", i, w.run_queue);
    }
    tp_node_stats ns;
    if (tp_node_stats_get(sys, &ns) == 0) {
        one(t, "troupe_peers_up", "gauge", "Peers connected.", ns.peers_up);
        one(t, "troupe_frames_in_total", "counter", "Frames received.",
            ns.frames_in);
        one(t, "troupe_frames_in_polled_total", "counter",
            "Frames received that a scheduler thread read while polling.",
            ns.frames_in_polled);
        one(t, "troupe_frames_out_total", "counter", "Frames sent.",
            ns.frames_out);
        one(t, "troupe_frames_rejected_total", "counter",
            "Malformed or oversized frames (connection closed).",
            ns.frames_rejected);
        one(t, "troupe_auth_failures_total", "counter",
            "Handshakes refused for a bad proof.", ns.auth_failures);
        one(t, "troupe_connections_evicted_total", "counter",
            "Unauthenticated connections closed to make room for newer ones.",
            ns.connections_evicted);
        one(t, "troupe_nodedowns_total", "counter",
            "Connections to peers lost.", ns.nodedowns);
    }
    one(t, "troupe_uptime_seconds", "gauge", "Seconds since the node started.",
        s ? tp_snapshot_uptime_ms(s) / 1000 : 0);
    render_waits(sys, t);
    tp_snapshot_free(s);
}

// ---- HTTP -----------------------------------------------------------------

static void
reply(tp__conn *c, const char *status, const char *type, const char *body,
      size_t len)
{
    char h[256];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     status, type, len);
    tp__conn_send(c, h, (size_t)n, body, len, true);
}

// Answers once the request head is whole (up to its blank line), or once
// it has outgrown REQ_MAX.
static void
m_input(tp__conn *c)
{
    size_t len;
    const uint8_t *in = tp__conn_input(c, &len);
    char req[REQ_MAX + 1];
    memcpy(req, in, len);
    req[len] = 0;
    static const char bad[] = "bad request\n",
                      nf[] = "not found: try /metrics\n";
    bool whole =
        strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL;
    if (!whole && len < REQ_MAX)
        return;
    tp__conn_consume(c, len);
    if (!whole) {
        reply(c, "431 Request Header Fields Too Large", "text/plain", bad,
              sizeof bad - 1);
        return;
    }
    if (strncmp(req, "GET ", 4) != 0) {
        reply(c, "400 Bad Request", "text/plain", bad, sizeof bad - 1);
        return;
    }
    const char *path = req + 4;
    size_t plen = strcspn(path, " \r\n?");
    if (plen != 8 || strncmp(path, "/metrics", 8) != 0) {
        reply(c, "404 Not Found", "text/plain", nf, sizeof nf - 1);
        return;
    }
    text t = {0};
    render(tp__server_sys(tp__conn_server(c)), &t);
    if (t.failed)
        reply(c, "500 Internal Server Error", "text/plain", bad,
              sizeof bad - 1);
    else
        reply(c, "200 OK", "text/plain; version=0.0.4", t.p, t.len);
    free(t.p);
}

// Past the cap: a short 503, written without waiting.
static void
m_refuse(int fd)
{
    static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 18\r\n"
                               "Connection: close\r\n\r\n"
                               "too many clients\r\n";
    if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        // The client left already: nothing to tell it.
    }
}

static const tp__serve_ops m_ops = {
    .name = "metrics",
    .in_max = REQ_MAX,
    .request_s = REQUEST_S,
    .reply_s = REPLY_S,
    .wake_client = TP__IO_METRICS,
    .input = m_input,
    .refuse = m_refuse,
};

int
tp_metrics_start(tp_system *sys, const char *addr, bool allow_remote,
                 uint16_t *port)
{
    if (sys == NULL || addr == NULL)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    if (sys->metrics != NULL)
        return TP_EEXIST;
    struct sockaddr_storage sa;
    socklen_t sl;
    if (tp__addr_parse(addr, TP__ADDR_PORT0, &sa, &sl) != 0) {
        tp__log(sys, TP_LOG_ERR,
                "metrics: \"%s\" is not HOST:PORT (IPv4, or [IPv6])", addr);
        return TP_EINVAL;
    }
    if (!allow_remote && !tp__addr_is_loopback(&sa)) {
        tp__log(sys, TP_LOG_ERR,
                "metrics: %s is not a loopback address (allow_remote is off)",
                addr);
        return TP_EINVAL;
    }
    tp__metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return TP_ENOMEM;
    int rc = 0, one = 1;
    int lfd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        rc = tp__err_from_errno(errno);
        free(m);
        return rc;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sl) != 0 ||
        listen(lfd, TP__SERVE_CLIENTS_MAX) != 0) {
        int e = errno;
        rc = tp__err_from_errno(e);
        tp__log(sys, TP_LOG_ERR, "metrics: cannot listen on %s: %s", addr,
                strerror(e));
        goto fail;
    }
    sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    if ((rc = tp__server_start(&m->srv, sys, lfd, &m_ops)) != 0)
        goto fail;
    sys->metrics = m;
    if (port != NULL)
        *port = (uint16_t)tp__addr_port(&sa);
    char where[TP__ADDR_STRLEN];
    tp__addr_format((struct sockaddr *)&sa, where, sizeof where);
    tp__log(sys, TP_LOG_INFO, "metrics: serving http://%s/metrics", where);
    return 0;
fail:
    close(lfd);
    free(m);
    return rc;
}

void
tp__metrics_stop(tp_system *sys)
{
    tp__metrics *m = sys->metrics;
    if (m == NULL)
        return;
    sys->metrics = NULL;
    tp__server_stop(&m->srv);
    free(m);
}
