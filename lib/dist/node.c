// SPDX-License-Identifier: MIT
// Distribution: a node's life (configuration, the secret, start, stop),
// the I/O thread's wake-ups, the queries of the public API and the
// subscribers of tp_monitor_nodes. The rest lives beside it: node_impl.h
// says which file does what.
#include "core/core.h"
#include "dist/node_impl.h"
#include "signals/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
tp_monitor_nodes(tp_ctx *ctx, bool on)
{
    if (ctx == NULL)
        return TP_EINVAL;
    if (tp__self.actor != (tp_actor *)ctx)
        return TP_EPERM;
    tp_actor *a = (tp_actor *)ctx;
    tp__dist *n = node_of(a->system);
    if (n == NULL)
        return TP_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    size_t i;
    for (i = 0; i < n->nsubs && n->subs[i].v != a->pid.v; i++)
        ;
    if (!on && i < n->nsubs) {
        n->subs[i] = n->subs[--n->nsubs];
    } else if (on && i == n->nsubs) {
        if (n->nsubs == n->subs_cap) {
            size_t cap = n->subs_cap ? n->subs_cap * 2 : 8;
            tp_pid *s = realloc(n->subs, cap * sizeof *s);
            if (s == NULL)
                rc = TP_ENOMEM;
            else {
                n->subs = s;
                n->subs_cap = cap;
            }
        }
        if (rc == 0)
            n->subs[n->nsubs++] = a->pid;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

void
tp__node_notify(tp__dist *n, tp__peer *p, uint32_t tag, uint32_t inc,
                const char *why)
{
    tp_node_msg nm;
    memset(&nm, 0, sizeof nm);
    snprintf(nm.node, sizeof nm.node, "%s", p->name);
    nm.incarnation = inc;
    snprintf(nm.why, sizeof nm.why, "%s", why ? why : "");
    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nsubs;) {
        tp__msg *m = tp__msg_new_copy(n->sys, tag, TP_PID_NIL, &nm, sizeof nm);
        if (m == NULL)
            break;
        if (tp__deliver_force(n->sys, n->subs[i], m) != 0) {
            tp__msg_free(m);
            n->subs[i] = n->subs[--n->nsubs]; // its actor is gone
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&n->lock);
}

// On the I/O thread at each wake-up: requests flagged on peers.
static void
node_wake(void *arg)
{
    tp__dist *n = arg;
    tp__io *io = n->io;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer *p = n->peers[i];
        if (atomic_exchange_explicit(&p->want_disconnect, 0,
                                     memory_order_acq_rel)) {
            atomic_store_explicit(&p->persistent, 0, memory_order_relaxed);
            tp__io_timer_stop(io, &p->backoff);
            if (p->conn != NULL) {
                atomic_store_explicit(&p->want_disconnect, 1,
                                      memory_order_relaxed);
                tp__conn_close(p->conn, "disconnected locally", true);
            } else {
                tp__peer_set_state(p, TP_PEER_IDLE);
            }
        }
        if (atomic_exchange_explicit(&p->want_connect, 0,
                                     memory_order_acq_rel)) {
            int st = atomic_load_explicit(&p->state, memory_order_relaxed);
            if (p->conn == NULL &&
                (st == TP_PEER_IDLE ||
                 (st == TP_PEER_BACKOFF &&
                  atomic_load_explicit(&p->persistent, memory_order_relaxed))))
                tp__peer_connect(p);
        }
        if (atomic_exchange_explicit(&p->want_flush, 0,
                                     memory_order_acq_rel) &&
            p->conn != NULL && p->conn->st == C_UP)
            tp__conn_flush(p->conn);
        if (atomic_exchange_explicit(&p->kicked, 0, memory_order_acq_rel))
            tp__peer_drain(p);
    }
    tp__node_retry_stalled(n);
    tp__node_read_more(n);
}

// The code for a secret file open(2) refused with errno `e`: a missing
// file is TP_ENOENT and one we may not read TP_EPERM, as documented; a
// lack of descriptors or memory keeps its errno; any other failure is a
// bad path, TP_EINVAL.
static int
open_error(int e)
{
    if (e == ENOENT)
        return TP_ENOENT;
    if (e == EACCES)
        return TP_EPERM;
    if (e == EMFILE || e == ENFILE || e == ENOMEM)
        return tp__err_from_errno(e);
    return TP_EINVAL;
}

// Checks what fstat(2) says of the secret file at `path`.
static int
check_secret_stat(tp_system *sys, const char *path, const struct stat *st)
{
    if (!S_ISREG(st->st_mode)) {
        tp__log(sys, TP_LOG_ERR, "node: secret file %s is not a regular file",
                path);
        return TP_EPERM;
    }
    if ((st->st_mode & 077) != 0) {
        tp__log(sys, TP_LOG_ERR,
                "node: secret file %s has mode %03o: group and others must "
                "have no permission (0600 or 0400, say)",
                path, (unsigned)(st->st_mode & 0777));
        return TP_EPERM;
    }
    if (st->st_size < TP__NODE_SECRET_MIN ||
        st->st_size > TP__NODE_SECRET_MAX) {
        tp__log(sys, TP_LOG_ERR,
                "node: secret file %s holds %lld bytes: it needs %d to %d",
                path, (long long)st->st_size, TP__NODE_SECRET_MIN,
                TP__NODE_SECRET_MAX);
        return TP_EINVAL;
    }
    return 0;
}

// Reads `size` bytes of the secret from `fd` into n->secret.
static int
read_secret(tp__dist *n, int fd, const char *path, size_t size)
{
    if ((n->secret = malloc(size)) == NULL)
        return TP_ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, n->secret + got, size - got);
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            tp__log(n->sys, TP_LOG_ERR, "node: secret file %s: %s", path,
                    strerror(e));
            return tp__err_from_errno(e);
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    n->secret_len = got;
    if (got < TP__NODE_SECRET_MIN) {
        tp__log(n->sys, TP_LOG_ERR, "node: secret file %s: short read", path);
        return TP_EINVAL;
    }
    return 0;
}

static int
load_secret(tp__dist *n, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        tp__log(n->sys, TP_LOG_ERR, "node: secret file %s: %s", path,
                strerror(e));
        return open_error(e);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        tp__log(n->sys, TP_LOG_ERR, "node: secret file %s: %s", path,
                strerror(e));
        rc = tp__err_from_errno(e);
    } else if ((rc = check_secret_stat(n->sys, path, &st)) == 0) {
        rc = read_secret(n, fd, path, (size_t)st.st_size);
    }
    close(fd);
    return rc;
}

static void
node_free(tp__dist *n)
{
    if (n == NULL)
        return;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer_free(n->peers[i]);
    }
    for (uint32_t i = 1; i <= n->nents; i++)
        free(atomic_load_explicit(&n->ents[i], memory_order_relaxed));
    if (n->secret != NULL) {
        OPENSSL_cleanse(n->secret, n->secret_len);
        free(n->secret);
    }
    free(n->subs);
    free(n->seeds);
    tp__net_unlisten(n);
    if (n->lfd >= 0)
        close(n->lfd);
    if (n->watching) {
        tp__io_timer_stop(n->io, &n->tick);
        if (n->lfd >= 0)
            tp__io_fd_stop(n->io, &n->lio);
    }
    tp__poll_free(n);
    tp__tls_free(n);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
}

static int
check_config(tp_system *sys, const tp_node_config *in, tp_node_config *cfg)
{
    if (in == NULL || in->name == NULL || !tp__short_name_ok(in->name)) {
        tp__log(sys, TP_LOG_ERR,
                "node: name must be 1 to 48 characters of [A-Za-z0-9_.-]");
        return TP_EINVAL;
    }
    *cfg = *in;
    if (cfg->listen == NULL)
        cfg->listen = TP__NODE_LISTEN_DEFAULT;
    if (cfg->max_frame == 0)
        cfg->max_frame = TP__NODE_MAX_FRAME_DEFAULT;
    if (cfg->heartbeat_ms == 0)
        cfg->heartbeat_ms = TP__NODE_HEARTBEAT_MS_DEFAULT;
    if (cfg->timeout_ms == 0)
        cfg->timeout_ms = TP__NODE_TIMEOUT_MS_DEFAULT;
    if (cfg->handshake_timeout_ms == 0)
        cfg->handshake_timeout_ms = TP__NODE_HANDSHAKE_MS_DEFAULT;
    if (cfg->send_queue == 0)
        cfg->send_queue = TP__NODE_SEND_QUEUE_DEFAULT;
    if (cfg->overflow == TP_OVERFLOW_DEFAULT)
        cfg->overflow = TP_OVERFLOW_BACKPRESSURE;
    if (cfg->max_unauthenticated == 0)
        cfg->max_unauthenticated = TP__NODE_MAX_UNAUTH_DEFAULT;
    if (cfg->reconnect_max_ms == 0)
        cfg->reconnect_max_ms = TP__NODE_RECONNECT_MAX_MS_DEFAULT;
    if (cfg->max_frame < TP__NODE_MAX_FRAME_MIN ||
        cfg->max_frame > TP__NODE_MAX_FRAME_MAX ||
        cfg->heartbeat_ms < TP__NODE_HEARTBEAT_MS_MIN ||
        cfg->timeout_ms < TP__NODE_TIMEOUT_BEATS * cfg->heartbeat_ms ||
        cfg->handshake_timeout_ms < TP__NODE_HANDSHAKE_MS_MIN ||
        cfg->send_queue > TP__NODE_SEND_QUEUE_MAX ||
        cfg->overflow > TP_OVERFLOW_DROP_OLDEST ||
        cfg->max_unauthenticated > TP__NODE_MAX_UNAUTH_MAX ||
        cfg->reconnect_max_ms < TP__NODE_RECONNECT_MAX_MS_MIN) {
        tp__log(sys, TP_LOG_ERR, "node: configuration field out of range");
        return TP_EINVAL;
    }
    return 0;
}

int
tp_node_start(tp_system *sys, const tp_node_config *in)
{
    if (sys == NULL)
        return TP_EINVAL;
    // A test system may be a node only in a net (troupe/test.h).
    if (tp__self.actor != NULL || tp__self.worker != NULL ||
        (sys->test != NULL && tp__test_net_of(sys) == NULL))
        return TP_EPERM;
    if (node_of(sys) != NULL)
        return TP_EEXIST;
    tp__dist *n = calloc(1, sizeof *n);
    if (n == NULL)
        return TP_ENOMEM;
    n->sys = sys;
    n->lfd = -1;
    n->pfd = -1;
    n->net = tp__test_net_of(sys);
    if (pthread_mutex_init(&n->lock, NULL) != 0) {
        free(n);
        return TP_EAGAIN;
    }
    if (tp__cond_init(&n->cond) != 0) {
        pthread_mutex_destroy(&n->lock);
        free(n);
        return TP_EAGAIN;
    }
    int rc = check_config(sys, in, &n->cfg);
    if (rc != 0)
        goto fail;
    if (in->seeds != NULL) {
        if (tp_node_seeds_check(in->seeds) != 0) {
            tp__log(sys, TP_LOG_ERR,
                    "node: seeds must be NAME@HOST:PORT entries separated by "
                    "commas or blanks, HOST an address or a DNS name: \"%s\"",
                    in->seeds);
            rc = TP_EINVAL;
            goto fail;
        }
        if ((n->seeds = strdup(in->seeds)) == NULL) {
            rc = TP_ENOMEM;
            goto fail;
        }
        n->cfg.seeds = n->seeds;
    }
    snprintf(n->short_name, sizeof n->short_name, "%s", in->name);
    n->cfg.name = n->short_name;
    if (in->secret_file != NULL && (rc = load_secret(n, in->secret_file)) != 0)
        goto fail;
    n->cfg.secret_file = NULL;
    if ((rc = tp__tls_init(n, in)) != 0)
        goto fail;
    n->cfg.tls_cert_file = n->cfg.tls_key_file = n->cfg.tls_ca_file = NULL;
    if ((rc = tp__node_listen(n)) != 0)
        goto fail;
    n->cfg.listen = NULL;
    if (n->net != NULL) // replays with the net's seed
        n->inc = tp__net_incarnation(n);
    while (n->inc == 0)
        if (getrandom(&n->inc, sizeof n->inc, 0) != sizeof n->inc)
            n->inc = 0;
    if ((n->io = tp__io_get(sys)) == NULL) {
        rc = TP_EAGAIN;
        goto fail;
    }
    if ((rc = tp__poll_init(n)) != 0)
        goto fail;
    double tick = n->cfg.heartbeat_ms;
    if (tick > n->cfg.timeout_ms / TP__NODE_TICKS_PER_TIMEOUT)
        tick = n->cfg.timeout_ms / TP__NODE_TICKS_PER_TIMEOUT;
    tp__io_timer_init(&n->tick, tp__node_tick_cb, tick / 1000.0,
                      tick / 1000.0);
    n->tick.data = n;
    if (n->lfd >= 0) {
        tp__io_fd_init(&n->lio, tp__node_accept_cb, n->lfd, TP__IO_READ);
        n->lio.data = n;
    }
    // The loop runs already: register while it waits, then wake it.
    pthread_mutex_lock(&n->io->lock);
    tp__io_timer_start(n->io, &n->tick);
    if (n->lfd >= 0)
        tp__io_fd_start(n->io, &n->lio);
    tp__poll_start(n);
    n->watching = true;
    tp__io_on_wake(n->io, TP__IO_NODE, node_wake, n);
    tp__dist_hooks_install(sys);
    // release: routers and the I/O thread see the node complete.
    atomic_store_explicit(&sys->node, n, memory_order_release);
    pthread_mutex_unlock(&n->io->lock);
    tp__io_wake(n->io);
    tp__log(sys, TP_LOG_INFO, "node: started name=%s incarnation=%u%s%s",
            n->name, n->inc, n->secret ? " secret=yes" : " secret=no",
            n->tls ? " tls=yes" : " tls=no");
    sys->up->node_started(sys); // the group server
    return 0;
fail:
    node_free(n);
    return rc;
}

// Closes every connection once the I/O thread has stopped; run before
// the scheduler stops, so muted senders are released.
void
tp__node_stop(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->io->lock); // senders may still try a direct write
    tp__poll_reclaim(n);              // a worker may poll: no more
    while (n->conns != NULL)
        tp__conn_free(n->conns);
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_relaxed);
    for (uint32_t i = 0; i < np; i++) {
        tp__peer *p = n->peers[i];
        p->conn = NULL;
        tp__io_timer_stop(n->io, &p->backoff);
        atomic_store_explicit(&p->state, TP_PEER_BACKOFF,
                              memory_order_release);
        tp__peer_drain(p);
    }
    pthread_mutex_unlock(&n->io->lock);
}

void
tp__node_free(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return;
    atomic_store_explicit(&sys->node, NULL, memory_order_release);
    node_free(n);
}

const char *
tp_node_name(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n ? n->name : "";
}

uint32_t
tp_node_incarnation(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n ? n->inc : 0;
}

typedef struct connect_wait {
    tp__peer *p;
    uint64_t fails; // before the attempt
} connect_wait;

static bool
connect_settled(void *arg)
{
    connect_wait *w = arg;
    return atomic_load_explicit(&w->p->state, memory_order_acquire) ==
               TP_PEER_UP ||
           atomic_load_explicit(&w->p->fails, memory_order_acquire) !=
               w->fails;
}

int
tp_node_connect(tp_system *sys, const char *node, int timeout_ms)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || tp_node_name_check(node) != 0 ||
        strcmp(node, n->name) == 0 || timeout_ms < -1)
        return TP_EINVAL;
    if (timeout_ms != 0 && (tp__self.actor != NULL || tp__self.worker != NULL))
        return TP_EPERM;
    tp__peer *p;
    int rc = tp__peer_get(n, node, &p);
    if (rc != 0)
        return rc;
    uint64_t fails = atomic_load_explicit(&p->fails, memory_order_acquire);
    atomic_store_explicit(&p->persistent, 1, memory_order_relaxed);
    atomic_store_explicit(&p->want_connect, 1, memory_order_release);
    tp__peer_kick(n, p);
    if (timeout_ms == 0)
        return 0;
    if (sys->test != NULL) { // its net runs here meanwhile
        connect_wait w = {p, fails};
        tp__test_drive(sys, connect_settled, &w, timeout_ms);
        if (atomic_load_explicit(&p->state, memory_order_acquire) ==
            TP_PEER_UP)
            return 0;
        return connect_settled(&w) ? TP_ENOTCONN : TP_ETIMEDOUT;
    }
    struct timespec dl;
    if (timeout_ms > 0)
        tp__deadline(&dl, timeout_ms);
    rc = 0;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        if (atomic_load_explicit(&p->state, memory_order_acquire) ==
            TP_PEER_UP)
            break;
        if (atomic_load_explicit(&p->fails, memory_order_acquire) != fails) {
            rc = TP_ENOTCONN;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&n->cond, &n->lock);
        else if (pthread_cond_timedwait(&n->cond, &n->lock, &dl) ==
                 ETIMEDOUT) {
            rc = TP_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

int
tp_node_disconnect(tp_system *sys, const char *node)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || node == NULL)
        return TP_EINVAL;
    pthread_mutex_lock(&n->lock);
    tp__peer *p = tp__peer_find_locked(n, node);
    pthread_mutex_unlock(&n->lock);
    if (p == NULL)
        return TP_ENOENT;
    atomic_store_explicit(&p->want_disconnect, 1, memory_order_release);
    tp__peer_kick(n, p);
    return 0;
}

int
tp_node_peers(tp_system *sys, tp_peer_info *out, size_t max)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || (out == NULL && max > 0))
        return TP_EINVAL;
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np && i < max; i++) {
        tp__peer *p = n->peers[i];
        tp_peer_info *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->node, sizeof o->node, "%s", p->name);
        // relaxed: a snapshot of statistics.
        o->incarnation = atomic_load_explicit(&p->inc, memory_order_relaxed);
        o->state = atomic_load_explicit(&p->state, memory_order_relaxed);
        o->rtt_us = atomic_load_explicit(&p->rtt_us, memory_order_relaxed);
        o->queued = TP__CNT_USERS(
            atomic_load_explicit(&p->proxy->count, memory_order_relaxed));
        o->sent = atomic_load_explicit(&p->sent, memory_order_relaxed);
        o->received = atomic_load_explicit(&p->received, memory_order_relaxed);
        o->bytes_out =
            atomic_load_explicit(&p->bytes_out, memory_order_relaxed);
        o->bytes_in = atomic_load_explicit(&p->bytes_in, memory_order_relaxed);
        // The queue's own drops (DROP_NEWEST, and DROP_OLDEST past twice
        // the capacity) are counted where every mailbox counts them.
        o->dropped =
            atomic_load_explicit(&p->dropped, memory_order_relaxed) +
            atomic_load_explicit(&p->proxy->dropped, memory_order_relaxed);
        o->connects = atomic_load_explicit(&p->connects, memory_order_relaxed);
    }
    return (int)np;
}

// A DNS name: labels of [A-Za-z0-9-], not starting or ending with '-',
// joined by dots, at most 253 bytes.
static bool
dns_name_ok(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9') || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return h[n - 1] != '-';
}

int
tp__seed_next(const char **s, tp__seed *out)
{
    const char *p = *s;
    while (*p == ',' || *p == ' ' || *p == '\t')
        p++;
    if (*p == 0) {
        *s = p;
        return 0;
    }
    size_t len = strcspn(p, ", \t");
    *s = p + len;
    char entry[TP_NODE_NAME_MAX + 256];
    if (len >= sizeof entry)
        return TP_EINVAL;
    memcpy(entry, p, len);
    entry[len] = 0;
    memset(out, 0, sizeof *out);
    char *at = strchr(entry, '@'), *colon = strrchr(entry, ':');
    if (at == NULL || colon == NULL || colon < at ||
        (size_t)(at - entry) > TP__NODE_SHORT_MAX)
        return TP_EINVAL;
    memcpy(out->name, entry, (size_t)(at - entry));
    if (!tp__short_name_ok(out->name))
        return TP_EINVAL;
    if (tp_node_name_check(entry) == 0) {
        *colon = 0;
        snprintf(out->host, sizeof out->host, "%s", at + 1);
        out->port = (unsigned)atoi(colon + 1);
        return 1;
    }
    // NAME@DNSNAME:PORT, the port 1 to 65535 without leading zeros.
    const char *port = colon + 1;
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5 || port[0] == '0' ||
        strspn(port, "0123456789") != pl || atoi(port) > 65535)
        return TP_EINVAL;
    *colon = 0;
    if (!dns_name_ok(at + 1))
        return TP_EINVAL;
    snprintf(out->host, sizeof out->host, "%s", at + 1);
    out->port = (unsigned)atoi(port);
    out->dns = true;
    return 1;
}

int
tp_node_seeds_check(const char *seeds)
{
    tp__seed sd;
    int rc;
    if (seeds == NULL)
        return 0;
    while ((rc = tp__seed_next(&seeds, &sd)) == 1)
        ;
    return rc;
}

const char *
tp__node_seeds(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n != NULL ? n->seeds : NULL;
}

uint32_t
tp__node_max_frame(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n != NULL ? n->cfg.max_frame : 0;
}

bool
tp__node_mesh(tp_system *sys)
{
    tp__dist *n = node_of(sys);
    return n != NULL && n->cfg.mesh;
}

bool
tp__node_peer_up(tp_system *sys, tp_pid pid, const char *node)
{
    tp__dist *n = node_of(sys);
    if (n == NULL)
        return false;
    tp__peer *p = NULL;
    if (node == NULL) {
        ent *e = tp__ent_at(n, tp_pid_node(pid));
        if (e == NULL)
            return false;
        p = e->peer;
        // acquire: as in tp__node_route.
        if (atomic_load_explicit(&p->inc, memory_order_acquire) != e->inc)
            return false; // a pid of the peer's earlier life
    } else {
        pthread_mutex_lock(&n->lock);
        p = tp__peer_find_locked(n, node);
        pthread_mutex_unlock(&n->lock);
        if (p == NULL)
            return false;
    }
    // relaxed: a hint; the send that follows checks again.
    return atomic_load_explicit(&p->state, memory_order_relaxed) == TP_PEER_UP;
}

int
tp_node_stats_get(tp_system *sys, tp_node_stats *out)
{
    tp__dist *n = node_of(sys);
    if (n == NULL || out == NULL)
        return TP_EINVAL;
    memset(out, 0, sizeof *out);
    uint32_t np = atomic_load_explicit(&n->npeers, memory_order_acquire);
    for (uint32_t i = 0; i < np; i++)
        out->peers_up +=
            atomic_load_explicit(&n->peers[i]->state, memory_order_relaxed) ==
            TP_PEER_UP;
    // relaxed: statistics.
    out->frames_in = atomic_load_explicit(&n->frames_in, memory_order_relaxed);
    out->connections_evicted =
        atomic_load_explicit(&n->evicted, memory_order_relaxed);
    out->frames_in_polled =
        atomic_load_explicit(&n->frames_polled, memory_order_relaxed);
    out->frames_out =
        atomic_load_explicit(&n->frames_out, memory_order_relaxed);
    out->bytes_in = atomic_load_explicit(&n->bytes_in, memory_order_relaxed);
    out->bytes_out = atomic_load_explicit(&n->bytes_out, memory_order_relaxed);
    out->frames_rejected =
        atomic_load_explicit(&n->rejected, memory_order_relaxed);
    out->auth_failures =
        atomic_load_explicit(&n->auth_failures, memory_order_relaxed);
    out->handshakes_timed_out =
        atomic_load_explicit(&n->hs_timeouts, memory_order_relaxed);
    out->connections_refused =
        atomic_load_explicit(&n->refused, memory_order_relaxed);
    out->nodedowns = atomic_load_explicit(&n->nodedowns, memory_order_relaxed);
    return 0;
}
