// SPDX-License-Identifier: MIT
// Test systems joined by an in-memory network (troupe/test.h): nodes
// listen on addresses that exist only in their net, dial each other there
// and run the distribution protocol unchanged, handshake and heartbeats
// included, over pairs of Unix sockets; nothing is bound, so no port of
// the machine is used. Every member's loop is stepped by the test's
// thread (io.c) and its timers follow the virtual clock.
//
// A connection is two socket pairs with the net in the middle: the
// dialler's end <-> a_in, b_in <-> the acceptor's end. The net copies
// bytes between a_in and b_in when the test steps it, unless the two
// systems are partitioned: then nothing crosses, in either direction,
// and a close does not cross either, as on a network that drops
// everything; bytes written meanwhile wait in the sockets, and cross
// once the partition heals if the receiving end is still open (then the
// close, if the writer closed meanwhile), as TCP retransmits both. A dial
// across a partition is not seen by the listener until it heals, and not at
// all if the dialler gave up by then.
#include "core/core.h"
#include "dist/node_impl.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    NET_BUF = 256 * 1024, // bytes in flight per direction, at most
    NET_ROUNDS = 100000,  // passes of I/O one net_io makes, at most: a
                          // bound on a bug, never reached by traffic
    NET_PORT0 = 20000,    // first port handed to a listener of port 0
    NET_PORTS = 65536 - NET_PORT0, // ports handed out, in turn
    // What each socket of a link takes before a write is cut short, fixed
    // so that how a large message splits (and so the interleaving a seed
    // gives) does not follow the host's socket defaults. The kernel
    // doubles it for its bookkeeping.
    NET_SNDBUF = 64 * 1024,
};

typedef struct listener {
    struct listener *next;
    struct sockaddr_storage addr;
    socklen_t len;
    tp__dist *node;
    struct nlink **queue; // dials offered, not accepted yet, in order
    size_t nqueue, capqueue;
} listener;

typedef struct buf {
    uint8_t *p;
    size_t len;
} buf;

typedef struct nlink {
    struct nlink *next;
    tp_system *a, *b; // the dialler's and the listener's
    listener *l;      // until accepted; NULL once the listener went
    struct sockaddr_storage from; // the dialler's address, as accepted
    int a_in, b_in;               // the net's ends
    int b_end;                    // the acceptor's end, until accepted
    bool offered, a_eof, b_eof, ab_shut, ba_shut, a_gone, b_gone;
    bool severed; // a member left while they were partitioned: for good
    buf ab, ba;
} nlink;

typedef struct cut {
    tp_system *a, *b;
} cut;

struct tp_test_net {
    uint64_t rng;
    tp_system **sys;
    size_t nsys, capsys;
    listener *listeners;
    nlink *links, **links_tail;
    cut *cuts;
    size_t ncuts, capcuts;
    unsigned next_port;
    bool freed; // tp_test_net_free ran: the last member to go frees it
};

static bool
grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *q = realloc(*p, c * size);
    if (q == NULL)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static uint64_t
draw(tp_test_net *net)
{
    uint64_t z = (net->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool
is_cut(const tp_test_net *net, const tp_system *a, const tp_system *b)
{
    for (size_t i = 0; i < net->ncuts; i++)
        if ((net->cuts[i].a == a && net->cuts[i].b == b) ||
            (net->cuts[i].a == b && net->cuts[i].b == a))
            return true;
    return false;
}

static bool
same_addr(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
    if (x->ss_family != y->ss_family)
        return false;
    if (x->ss_family == AF_INET) {
        const struct sockaddr_in *p = (const void *)x, *q = (const void *)y;
        return p->sin_port == q->sin_port &&
               p->sin_addr.s_addr == q->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *p = (const void *)x, *q = (const void *)y;
    return p->sin6_port == q->sin6_port &&
           memcmp(&p->sin6_addr, &q->sin6_addr, sizeof p->sin6_addr) == 0;
}

static uint16_t
port_of(const struct sockaddr_storage *sa)
{
    return ntohs(
        sa->ss_family == AF_INET
            ? ((const struct sockaddr_in *)(const void *)sa)->sin_port
            : ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

static void
set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)sa)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons(port);
}

static listener *
listener_at(tp_test_net *net, const struct sockaddr_storage *sa)
{
    for (listener *l = net->listeners; l != NULL; l = l->next)
        if (same_addr(&l->addr, sa))
            return l;
    return NULL;
}

static listener *
listener_of(tp_test_net *net, const tp__dist *n)
{
    for (listener *l = net->listeners; l != NULL; l = l->next)
        if (l->node == n)
            return l;
    return NULL;
}

// ---- the relay -------------------------------------------------------------

static void
link_free(nlink *k)
{
    if (k->a_in >= 0)
        close(k->a_in);
    if (k->b_in >= 0)
        close(k->b_in);
    if (k->b_end >= 0)
        close(k->b_end);
    free(k->ab.p);
    free(k->ba.p);
    free(k);
}

// Moves what `src` has into `q`, and from `q` into `dst`; passes an end
// of stream on once `q` is empty. Returns how much happened.
static int
pump(int src, int dst, buf *q, bool *eof, bool *shut, bool *gone)
{
    int moved = 0;
    while (!*eof) {
        if (q->p == NULL && (q->p = malloc(NET_BUF)) == NULL)
            break; // no memory: try again at the next pass
        if (q->len == NET_BUF)
            break;
        ssize_t r = read(src, q->p + q->len, NET_BUF - q->len);
        if (r > 0) {
            q->len += (size_t)r;
            moved++;
        } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        } else { // the end, or its writer reset
            *eof = true;
            moved++;
        }
    }
    while (q->len > 0 && !*gone) {
        ssize_t w = send(dst, q->p, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            memmove(q->p, q->p + w, q->len - (size_t)w);
            q->len -= (size_t)w;
            moved++;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        } else {
            *gone = true; // the receiver closed its end
        }
    }
    if (*gone)
        q->len = 0; // lost, as bytes sent to a closed socket
    if (*eof && q->len == 0 && !*shut) {
        shutdown(dst, SHUT_WR);
        *shut = true;
        moved++;
    }
    return moved;
}

// Offers a dial to its listener (the listener's loop sees its descriptor
// readable). Returns false when it could not be queued (no memory).
static bool
offer(nlink *k)
{
    listener *l = k->l;
    if (!grow((void **)&l->queue, &l->capqueue, l->nqueue, sizeof *l->queue))
        return false;
    l->queue[l->nqueue++] = k;
    uint64_t one = 1;
    if (write(l->node->lfd, &one, sizeof one) != sizeof one)
        tp__log(l->node->sys, TP_LOG_ERR, "test net: cannot signal a dial");
    k->offered = true;
    return true;
}

// Whether the other end of the pair `fd` belongs to is closed.
static bool
hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

// One pass over link `k`. Returns how much happened; sets *done when the
// link is finished with (both ways closed, or the dial dropped).
static int
relay(tp_test_net *net, nlink *k, bool *done)
{
    *done = false;
    if (k->severed || is_cut(net, k->a, k->b)) {
        // Nothing crosses; only the ends are watched, so that a dial the
        // listener never saw ends with its dialler, and a connection once
        // both its ends are closed (a link queued at its listener, b_end
        // still held, is never finished here).
        bool a_hup = hung_up(k->a_in);
        *done = a_hup && (!k->offered || (k->b_end < 0 && hung_up(k->b_in)));
        return *done;
    }
    int moved =
        pump(k->a_in, k->b_in, &k->ab, &k->a_eof, &k->ab_shut, &k->b_gone);
    if (!k->offered) {
        if (k->a_eof || k->l == NULL) { // the dialler gave up, or no one
            *done = true;               // listens any more: never seen
            return moved + 1;
        }
        if (!offer(k))
            return moved;
        moved++;
    }
    moved +=
        pump(k->b_in, k->a_in, &k->ba, &k->b_eof, &k->ba_shut, &k->a_gone);
    *done = k->ab_shut && k->ba_shut;
    return moved;
}

static int
relay_all(tp_test_net *net)
{
    int moved = 0;
    for (nlink **pp = &net->links; *pp != NULL;) {
        nlink *k = *pp;
        bool done;
        moved += relay(net, k, &done);
        if (!done || (k->l != NULL && k->b_end >= 0 && k->offered)) {
            pp = &k->next; // a finished dial still queued: its listener's
            continue;
        }
        *pp = k->next;
        if (net->links_tail == &k->next)
            net->links_tail = pp;
        link_free(k);
    }
    return moved;
}

// Passes of I/O until nothing moves: the links, then every member's loop.
static int
net_io(tp_test_net *net)
{
    int total = 0;
    for (int round = 0; round < NET_ROUNDS; round++) {
        int moved = relay_all(net);
        for (size_t i = 0; i < net->nsys; i++)
            moved += tp__io_poll(net->sys[i]);
        if (moved == 0)
            break;
        total += moved;
    }
    return total;
}

// ---- the distribution layer's side (connect.c, node.c) ---------------------

int
tp__net_listen(tp__dist *n, struct sockaddr_storage *sa, socklen_t *sl)
{
    tp_test_net *net = n->net;
    if (port_of(sa) == 0) {
        unsigned tries = 0;
        do {
            if (tries++ == NET_PORTS)
                return EADDRINUSE; // every port of the net is listened on
            set_port(sa, (uint16_t)(NET_PORT0 + net->next_port++ % NET_PORTS));
        } while (listener_at(net, sa) != NULL);
    }
    if (listener_at(net, sa) != NULL)
        return EADDRINUSE;
    listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return ENOMEM;
    // The listening descriptor: readable while dials wait to be accepted.
    n->lfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->lfd < 0) {
        int e = errno;
        free(l);
        return e;
    }
    l->addr = *sa;
    l->len = *sl;
    l->node = n;
    l->next = net->listeners;
    net->listeners = l;
    return 0;
}

void
tp__net_unlisten(tp__dist *n)
{
    tp_test_net *net = n->net;
    if (net == NULL)
        return;
    for (listener **pp = &net->listeners; *pp != NULL; pp = &(*pp)->next) {
        listener *l = *pp;
        if (l->node != n)
            continue;
        *pp = l->next;
        for (nlink *k = net->links; k != NULL; k = k->next)
            if (k->l == l) {
                k->l = NULL;
                if (k->b_end >= 0) { // never accepted: as if refused
                    close(k->b_end);
                    k->b_end = -1;
                }
            }
        free(l->queue);
        free(l);
        break;
    }
    n->net = NULL;
}

static int
unix_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds) != 0)
        return -1;
    int size = NET_SNDBUF;
    for (int i = 0; i < 2; i++)
        // A failure leaves the default: the link still works.
        (void)setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return 0;
}

int
tp__net_dial(tp__dist *n, const struct sockaddr_storage *sa)
{
    tp_test_net *net = n->net;
    listener *l = listener_at(net, sa);
    if (l == NULL) {
        errno = ECONNREFUSED;
        return -1;
    }
    nlink *k = calloc(1, sizeof *k);
    int pa[2] = {-1, -1}, pb[2] = {-1, -1};
    if (k == NULL || unix_pair(pa) != 0 || unix_pair(pb) != 0) {
        int e = k == NULL ? ENOMEM : errno;
        for (int i = 0; i < 2; i++) {
            if (pa[i] >= 0)
                close(pa[i]);
            if (pb[i] >= 0)
                close(pb[i]);
        }
        free(k);
        errno = e;
        return -1;
    }
    k->a = n->sys;
    k->b = l->node->sys;
    k->l = l;
    listener *mine = listener_of(net, n);
    if (mine != NULL) {
        k->from = mine->addr;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)&k->from;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    k->a_in = pa[1];
    k->b_in = pb[1];
    k->b_end = pb[0];
    *net->links_tail = k;
    net->links_tail = &k->next;
    return pa[0];
}

int
tp__net_accept(tp__dist *n, struct sockaddr_storage *sa)
{
    tp_test_net *net = n->net;
    listener *l = net != NULL ? listener_of(net, n) : NULL;
    while (l != NULL && l->nqueue > 0) {
        nlink *k = l->queue[0];
        memmove(&l->queue[0], &l->queue[1],
                (l->nqueue - 1) * sizeof *l->queue);
        l->nqueue--;
        if (l->nqueue == 0) {
            uint64_t v;
            if (read(n->lfd, &v, sizeof v) < 0 && errno != EAGAIN)
                tp__log(n->sys, TP_LOG_ERR, "test net: cannot clear a dial");
        }
        int fd = k->b_end;
        k->b_end = -1;
        k->l = NULL;
        if (fd < 0)
            continue;
        *sa = k->from;
        return fd;
    }
    errno = EAGAIN;
    return -1;
}

uint32_t
tp__net_incarnation(tp__dist *n)
{
    uint32_t inc = 0;
    while (inc == 0)
        inc = (uint32_t)draw(n->net);
    return inc;
}

// ---- the test's side -------------------------------------------------------

static int
check(tp_test_net *net)
{
    if (net == NULL || net->freed)
        return TP_EINVAL;
    if (tp__self.actor != NULL || tp__self.worker != NULL)
        return TP_EPERM;
    return 0;
}

static bool
member(const tp_test_net *net, const tp_system *sys)
{
    for (size_t i = 0; i < net->nsys; i++)
        if (net->sys[i] == sys)
            return true;
    return false;
}

static void
net_free(tp_test_net *net)
{
    while (net->links != NULL) {
        nlink *k = net->links;
        net->links = k->next;
        link_free(k);
    }
    while (net->listeners != NULL) {
        listener *l = net->listeners;
        net->listeners = l->next;
        free(l->queue);
        free(l);
    }
    free(net->cuts);
    free(net->sys);
    free(net);
}

// Moves every member's clock `ns` later, visiting each timer's deadline
// on the way in order, with the net's I/O run after each; returns how
// many of the actors' timers fired.
static int
advance_by(tp_test_net *net, int64_t ns)
{
    int fired = 0;
    for (;;) {
        int64_t step = -1;
        for (size_t i = 0; i < net->nsys; i++) {
            int64_t due = tp__test_next_due_ns(net->sys[i]);
            if (due < 0)
                continue;
            int64_t d = due - tp__test_now_ns(net->sys[i]);
            if (d < 0)
                d = 0;
            if (step < 0 || d < step)
                step = d;
        }
        if (step < 0 || step > ns)
            step = ns;
        for (size_t i = 0; i < net->nsys; i++) {
            int got = tp__test_clock_to(net->sys[i],
                                        tp__test_now_ns(net->sys[i]) + step);
            fired = got > INT_MAX - fired ? INT_MAX : fired + got;
        }
        net_io(net);
        ns -= step;
        if (ns <= 0)
            break;
    }
    return fired;
}

// One step: an activation of an actor of a member the seed picks among
// those with actors ready. Returns 1, or 0 when none is ready.
static int
net_step(tp_test_net *net)
{
    net_io(net);
    size_t ready = 0;
    for (size_t i = 0; i < net->nsys; i++)
        ready += tp__test_nready(net->sys[i]) > 0;
    if (ready == 0)
        return 0;
    size_t pick = (size_t)(draw(net) % ready);
    for (size_t i = 0; i < net->nsys; i++)
        if (tp__test_nready(net->sys[i]) > 0 && pick-- == 0)
            return tp_test_step(net->sys[i], NULL) == 1;
    return 0;
}

// How long the clocks may move with no actor run and no actor's timer
// set before a wait gives up: the nodes' own timers (heartbeats, handshake
// limits, backoff) have then had their effect, twice over. A minute at
// least.
static int64_t
idle_horizon_ns(tp_test_net *net)
{
    int64_t ms = 60000;
    for (size_t i = 0; i < net->nsys; i++) {
        tp__dist *n = node_of(net->sys[i]);
        if (n == NULL)
            continue;
        int64_t most = n->cfg.timeout_ms;
        if (n->cfg.handshake_timeout_ms > most)
            most = n->cfg.handshake_timeout_ms;
        if (n->cfg.reconnect_max_ms > most)
            most = n->cfg.reconnect_max_ms;
        if (2 * most > ms)
            ms = 2 * most;
    }
    return ms * 1000000;
}

static bool
actor_timers(tp_test_net *net)
{
    for (size_t i = 0; i < net->nsys; i++)
        if (tp__test_actor_due_ns(net->sys[i]) >= 0)
            return true;
    return false;
}

// As test.c's drive, over the whole net: `until_ns` on sys's clock. Node
// timers are always set (heartbeats), so "nothing is left to run" is:
// no actor ready, no actor's timer, and the clocks moved past the idle
// horizon since an actor last ran.
static long
drive(tp_test_net *net, tp_system *sys, bool (*done)(void *), void *arg,
      long max_steps, int64_t until_ns)
{
    long n = 0;
    int64_t idle = 0;
    while (!done(arg)) {
        if (n >= max_steps)
            return TP_ETIMEDOUT;
        n++; // a step, or a move of the clocks: both count
        if (net_step(net) == 1) {
            idle = 0;
            continue;
        }
        if (idle >= idle_horizon_ns(net) && !actor_timers(net))
            return TP_ETIMEDOUT;
        int64_t step = -1;
        for (size_t i = 0; i < net->nsys; i++) {
            int64_t due = tp__test_next_due_ns(net->sys[i]);
            if (due < 0)
                continue;
            int64_t d = due - tp__test_now_ns(net->sys[i]);
            if (step < 0 || d < step)
                step = d < 0 ? 0 : d;
        }
        int64_t now = tp__test_now_ns(sys);
        if (step < 0 || (until_ns >= 0 && now + step > until_ns)) {
            if (until_ns >= 0 && until_ns > now)
                advance_by(net, until_ns - now);
            return TP_ETIMEDOUT;
        }
        advance_by(net, step);
        idle += step;
    }
    return n;
}

static long
member_drive(tp_system *sys, bool (*done)(void *), void *arg, long max_steps,
             int64_t until_ns)
{
    return drive(tp__test_net_of(sys), sys, done, arg, max_steps, until_ns);
}

static void
member_leave(tp_system *sys)
{
    tp_test_net *net = tp__test_net_of(sys);
    tp__dist *n = node_of(sys);
    if (n != NULL)
        tp__net_unlisten(n); // its node is freed later
    for (size_t i = 0; i < net->nsys; i++)
        if (net->sys[i] == sys) {
            memmove(&net->sys[i], &net->sys[i + 1],
                    (net->nsys - i - 1) * sizeof *net->sys);
            net->nsys--;
            break;
        }
    for (nlink *k = net->links; k != NULL; k = k->next) {
        if (k->a != sys && k->b != sys)
            continue;
        // Its close does not cross a partition, now or later: the link
        // stays cut. Otherwise the relay passes the close on.
        if (is_cut(net, k->a, k->b))
            k->severed = true;
        if (k->a == sys)
            k->a = NULL;
        if (k->b == sys)
            k->b = NULL;
    }
    for (size_t i = 0; i < net->ncuts;) // its address may be reused
        if (net->cuts[i].a == sys || net->cuts[i].b == sys)
            net->cuts[i] = net->cuts[--net->ncuts];
        else
            i++;
    tp__test_net_set(sys, NULL, NULL);
    if (net->freed && net->nsys == 0)
        net_free(net);
}

static const tp__test_net_ops member_ops = {
    .poll = tp__io_poll,
    .fire = tp__io_fire_due,
    .next_due = tp__io_next_due_ns,
    .drive = member_drive,
    .leave = member_leave,
};

int
tp_test_net_new(uint64_t seed, tp_test_net **out)
{
    if (out == NULL)
        return TP_EINVAL;
    tp_test_net *net = calloc(1, sizeof *net);
    if (net == NULL)
        return TP_ENOMEM;
    net->rng = seed;
    net->links_tail = &net->links;
    *out = net;
    return 0;
}

int
tp_test_net_add(tp_test_net *net, tp_system *sys)
{
    int rc = check(net);
    if (rc != 0)
        return rc;
    if (!tp_test_system(sys))
        return TP_EINVAL;
    if (tp__test_net_of(sys) != NULL)
        return TP_EEXIST;
    if (atomic_load_explicit(&sys->io, memory_order_acquire) != NULL)
        return TP_EPERM; // its loop has a thread already
    if (!grow((void **)&net->sys, &net->capsys, net->nsys, sizeof *net->sys))
        return TP_ENOMEM;
    if ((rc = tp__test_net_set(sys, net, &member_ops)) != 0)
        return rc;
    net->sys[net->nsys++] = sys;
    return 0;
}

long
tp_test_net_run(tp_test_net *net, long max_steps)
{
    int rc = check(net);
    if (rc != 0 || max_steps < 0)
        return rc != 0 ? rc : TP_EINVAL;
    long n = 0;
    while (n < max_steps && net_step(net) == 1)
        n++;
    if (n == max_steps) {
        net_io(net);
        for (size_t i = 0; i < net->nsys; i++)
            if (tp__test_nready(net->sys[i]) > 0)
                return TP_ETIMEDOUT;
    }
    return n;
}

long
tp_test_net_run_until(tp_test_net *net, bool (*pred)(void *arg), void *arg,
                      long max_steps)
{
    int rc = check(net);
    if (rc != 0 || pred == NULL || max_steps < 0)
        return rc != 0 ? rc : TP_EINVAL;
    if (net->nsys == 0)
        return pred(arg) ? 0 : TP_ETIMEDOUT;
    return drive(net, net->sys[0], pred, arg, max_steps, -1);
}

int
tp_test_net_advance(tp_test_net *net, uint32_t ms)
{
    int rc = check(net);
    if (rc != 0)
        return rc;
    return advance_by(net, (int64_t)ms * 1000000);
}

int
tp_test_net_partition(tp_test_net *net, tp_system *a, tp_system *b)
{
    int rc = check(net);
    if (rc != 0)
        return rc;
    if (a == b || !member(net, a) || !member(net, b))
        return TP_EINVAL;
    if (is_cut(net, a, b))
        return 0;
    if (!grow((void **)&net->cuts, &net->capcuts, net->ncuts,
              sizeof *net->cuts))
        return TP_ENOMEM;
    net->cuts[net->ncuts++] = (cut){a, b};
    return 0;
}

int
tp_test_net_heal(tp_test_net *net, tp_system *a, tp_system *b)
{
    int rc = check(net);
    if (rc != 0)
        return rc;
    if (a == b || !member(net, a) || !member(net, b))
        return TP_EINVAL;
    for (size_t i = 0; i < net->ncuts; i++)
        if ((net->cuts[i].a == a && net->cuts[i].b == b) ||
            (net->cuts[i].a == b && net->cuts[i].b == a)) {
            net->cuts[i] = net->cuts[--net->ncuts];
            return 0;
        }
    return TP_ENOENT;
}

void
tp_test_net_free(tp_test_net **netp)
{
    if (netp == NULL || *netp == NULL)
        return;
    tp_test_net *net = *netp;
    *netp = NULL;
    net->freed = true;
    if (net->nsys == 0)
        net_free(net);
}
