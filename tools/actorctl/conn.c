// SPDX-License-Identifier: MIT
// Finding a node's control socket and talking to it. A node named NAME
// listens at $TROUPE_RUNTIME_DIR/NAME.sock when that is set (and nowhere
// else is looked at then), else at $XDG_RUNTIME_DIR/troupe/NAME.sock,
// /tmp/troupe-UID/NAME.sock or, for root, /run/troupe/NAME.sock; the
// first that exists wins. Frames
// are a 4-byte big-endian length and one msgpack map (lib/observe/CONTROL.md).
// Each request has one deadline for its whole exchange, and a reply is
// checked to be one well-formed msgpack map before msgpack-c unpacks it,
// so a node that sends garbage or closes early costs a diagnostic, never
// a crash or a hang.
#include "actorctl.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_DIRS 3

static const char *who(const ctl_target *t, char *buf, size_t size);

// The directories a node's socket may be in, most specific first; only
// TROUPE_RUNTIME_DIR when it is set (runtime_dir_check has vetted it).
static size_t
socket_dirs(char dirs[MAX_DIRS][200])
{
    size_t n = 0;
    const char *own = getenv("TROUPE_RUNTIME_DIR");
    if (own != NULL && own[0] != '\0') {
        snprintf(dirs[n++], 200, "%s", own);
        return n;
    }
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg != NULL && xdg[0] == '/' && strlen(xdg) < 180)
        snprintf(dirs[n++], 200, "%s/troupe", xdg);
    snprintf(dirs[n++], 200, "/tmp/troupe-%u", (unsigned)getuid());
    if (getuid() == 0)
        snprintf(dirs[n++], 200, "/run/troupe");
    return n;
}

// Appends `s` to the string in `buf`, cutting it to fit.
static void
append(char *buf, size_t size, const char *s)
{
    size_t used = strlen(buf), n = strlen(s);
    if (n >= size - used)
        n = size - used - 1;
    memcpy(buf + used, s, n);
    buf[used + n] = '\0';
}

static int
set_path(ctl_target *t, const char *path)
{
    if (path[0] == '\0')
        return ctl_fail(CTL_USAGE, "the socket path is empty");
    if (strlen(path) >= sizeof t->path)
        return ctl_fail(CTL_USAGE, "socket path too long: %s", path);
    memcpy(t->path, path, strlen(path) + 1);
    return CTL_OK;
}

// TROUPE_RUNTIME_DIR, when set, must be an absolute path that leaves room
// for a socket's name.
static int
runtime_dir_check(void)
{
    const char *own = getenv("TROUPE_RUNTIME_DIR");
    if (own == NULL || own[0] == '\0')
        return CTL_OK;
    if (own[0] != '/')
        return ctl_fail(CTL_USAGE,
                        "TROUPE_RUNTIME_DIR must be an absolute path, not "
                        "\"%s\"",
                        own);
    if (strlen(own) >= 180)
        return ctl_fail(CTL_USAGE, "TROUPE_RUNTIME_DIR is too long: %s", own);
    return CTL_OK;
}

// "alpha" or "alpha@host:port" (a node's full name) names socket alpha.sock.
static int
resolve_name(ctl_target *t, const char *node)
{
    size_t len = strcspn(node, "@");
    if (len == 0 || len >= sizeof t->name || memchr(node, '/', len) ||
        node[0] == '.')
        return ctl_fail(CTL_USAGE, "bad node name \"%s\"", node);
    snprintf(t->name, sizeof t->name, "%.*s", (int)len, node);
    char dirs[MAX_DIRS][200], tried[1024] = "";
    size_t nd = socket_dirs(dirs);
    for (size_t i = 0; i < nd; i++) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s.sock", dirs[i], t->name);
        // EACCES: it may be there; connecting will say so precisely.
        if (lstat(path, &st) == 0 || errno == EACCES)
            return set_path(t, path);
        append(tried, sizeof tried,
               i == 0 ? "" : (i + 1 == nd ? " or " : ", "));
        append(tried, sizeof tried, path);
    }
    return ctl_fail(CTL_UNREACHABLE,
                    "node \"%s\" is not running (no socket at %s)", t->name,
                    tried);
}

// With no node named: the only socket in the usual directories.
static int
resolve_only(ctl_target *t)
{
    char dirs[MAX_DIRS][200], found[1024] = "", names[300] = "";
    size_t nd = socket_dirs(dirs), count = 0;
    for (size_t i = 0; i < nd; i++) {
        DIR *d = opendir(dirs[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len <= 5 || strcmp(e->d_name + len - 5, ".sock") != 0 ||
                e->d_name[0] == '.')
                continue;
            if (count++ == 0)
                snprintf(found, sizeof found, "%s/%s", dirs[i], e->d_name);

            e->d_name[len - 5] = '\0';
            append(names, sizeof names, names[0] ? ", " : "");
            append(names, sizeof names, e->d_name);
        }
        if (d != NULL)
            closedir(d);
    }
    if (count == 1) {
        const char *base = strrchr(found, '/') + 1;
        snprintf(t->name, sizeof t->name, "%.*s", (int)(strlen(base) - 5),
                 base);
        return set_path(t, found);
    }
    if (count > 1)
        return ctl_fail(CTL_USAGE,
                        "several nodes are running (%s): choose one with "
                        "-n NAME",
                        names);
    return ctl_fail(CTL_UNREACHABLE,
                    "no node is running (no socket in %s%s%s%s%s); choose "
                    "one with -n NAME or --socket PATH",
                    dirs[0], nd > 1 ? ", " : "", nd > 1 ? dirs[1] : "",
                    nd > 2 ? ", " : "", nd > 2 ? dirs[2] : "");
}

int
ctl_target_resolve(ctl_target *t, const char *node, const char *socket)
{
    t->name[0] = '\0';
    t->path[0] = '\0';
    if (node != NULL && socket != NULL)
        return ctl_fail(CTL_USAGE,
                        "choose the node with -n NAME or with --socket PATH, "
                        "not both");
    if (socket != NULL)
        return set_path(t, socket);
    int rc = runtime_dir_check();
    if (rc != CTL_OK)
        return rc;
    if (node != NULL)
        return resolve_name(t, node);
    const char *env = getenv("ACTORCTL_SOCKET");
    if (env != NULL && env[0] != '\0')
        return set_path(t, env);
    return resolve_only(t);
}

// The target of the last connection, for diagnostics.
static const ctl_target *current;

const char *
ctl_who(char *buf, size_t size)
{
    return current != NULL ? who(current, buf, size) : "the node";
}

// Names the target at the start of a diagnostic.
static const char *
who(const ctl_target *t, char *buf, size_t size)
{
    if (t->name[0] != '\0')
        snprintf(buf, size, "node \"%s\"", t->name);
    else
        snprintf(buf, size, "the node at %s", t->path);
    return buf;
}

static int
connect_failed(const ctl_target *t, int err)
{
    char w[300];
    bool named = t->name[0] != '\0';
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        if (named)
            return ctl_fail(CTL_UNREACHABLE,
                            "node \"%s\" is not running (no socket at %s)",
                            t->name, t->path);
        return ctl_fail(CTL_UNREACHABLE,
                        "no node is running at %s (no such socket)", t->path);
    case ECONNREFUSED:
        if (named)
            return ctl_fail(CTL_UNREACHABLE,
                            "node \"%s\" is not running (%s refuses "
                            "connections: a stale socket?)",
                            t->name, t->path);
        return ctl_fail(CTL_UNREACHABLE,
                        "no node is running at %s (it refuses connections: "
                        "a stale socket?)",
                        t->path);
    case EACCES:
    case EPERM:
        return ctl_fail(CTL_DENIED,
                        "permission denied connecting to %s%s%s (it "
                        "belongs to another user: run actorctl as that user "
                        "or root)",
                        named ? who(t, w, sizeof w) : "", named ? " at " : "",
                        t->path);
    case EAGAIN:
    case ETIMEDOUT:
        return ctl_fail(CTL_UNREACHABLE,
                        "%s did not accept the connection within %d ms",
                        who(t, w, sizeof w), t->timeout_ms);
    default:
        return ctl_fail(CTL_UNREACHABLE, "cannot connect to %s: %s",
                        named ? who(t, w, sizeof w) : t->path, strerror(err));
    }
}

int
ctl_connect(ctl_conn *c, const ctl_target *t)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, t->path, sizeof t->path);
    c->target = t;
    c->about = NULL;
    c->quiet = false;
    current = t;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return ctl_fail(CTL_ERROR, "socket: %s", strerror(errno));
    // Bounds a connect to a node whose listen queue is full.
    struct timeval tv = {.tv_sec = t->timeout_ms / 1000,
                         .tv_usec = t->timeout_ms % 1000 * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return CTL_OK;
    int err = errno;
    ctl_close(c);
    return connect_failed(t, err);
}

void
ctl_close(ctl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Waits until `fd` is ready for `events` or the deadline passes. Returns
// 0, or -1 with errno ETIMEDOUT.
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int
write_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w, n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                return -1;
        } else if (w < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

// Reads exactly `n` bytes. Returns the count read before end of file or
// an error (errno set; 0 at end of file), n on success.
static size_t
read_all(int fd, char *p, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            errno = 0;
            break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN, deadline) != 0)
                break;
        } else if (errno != EINTR) {
            break;
        }
    }
    return got;
}

static int
read_failed(const ctl_conn *c, size_t got, bool header)
{
    char w[300];
    who(c->target, w, sizeof w);
    if (errno == ETIMEDOUT)
        return ctl_fail(CTL_UNREACHABLE, "%s did not answer within %d ms", w,
                        c->target->timeout_ms);
    if (errno != 0)
        return ctl_fail(CTL_UNREACHABLE, "reading from %s: %s", w,
                        strerror(errno));
    if (got == 0 && header)
        return ctl_fail(CTL_UNREACHABLE,
                        "%s closed the connection without answering", w);
    return ctl_fail(CTL_UNREACHABLE,
                    "%s closed the connection in the middle of a reply", w);
}

void
ctl_reply_free(ctl_reply *r)
{
    msgpack_unpacked_destroy(&r->up);
    msgpack_unpacked_init(&r->up);
    free(r->buf);
    r->buf = NULL;
    r->root = NULL;
}

// Checks `n` bytes hold exactly one msgpack object (reply.c).
int ctl__pack_check(const unsigned char *p, size_t n);

static int
reply_decode(ctl_conn *c, ctl_reply *out)
{
    size_t off = 0;
    if (ctl__pack_check((const unsigned char *)out->buf, out->len) != 0 ||
        msgpack_unpack_next(&out->up, out->buf, out->len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != out->len)
        return ctl_bad_reply("the reply", "is not one well-formed msgpack "
                                          "object");
    out->root = &out->up.data;
    if (out->root->type != MSGPACK_OBJECT_MAP)
        return ctl_bad_reply("the reply", "is not a map");
    bool ok;
    int rc = ctl_get_bool(out->root, "ok", "the reply", &ok);
    if (rc != CTL_OK || ok)
        return rc;
    if (c->quiet)
        return CTL_REFUSED;
    ctl_str err = {"no reason given", 15};
    const msgpack_object *e = ctl_field(out->root, "error");
    if (e != NULL && e->type == MSGPACK_OBJECT_STR)
        err = (ctl_str){e->via.str.ptr, e->via.str.size};
    char *clean = ctl_clean(err), w[300];
    who(c->target, w, sizeof w);
    if (ctl_str_eq(err, "permission denied"))
        rc = ctl_fail(CTL_DENIED,
                      "permission denied: %s answers only its own user and "
                      "root",
                      w);
    else if (err.n >= 16 && memcmp(err.p, "too many clients", 16) == 0)
        rc = ctl_fail(CTL_UNREACHABLE, "%s: %s", w, clean); // a full node
    else
        rc = ctl_fail(CTL_ERROR, "%s%s%s: %s", w, c->about ? ": " : "",
                      c->about ? c->about : "", clean);
    free(clean);
    return rc;
}

int
ctl_call(ctl_conn *c, const msgpack_sbuffer *req, ctl_reply *out)
{
    memset(out, 0, sizeof *out);
    msgpack_unpacked_init(&out->up);
    if (req->size > CTL_REQUEST_MAX)
        return ctl_fail(CTL_USAGE, "request too long (%zu bytes)", req->size);
    int64_t deadline = now_ms() + c->target->timeout_ms;
    unsigned char hdr[4] = {
        (unsigned char)(req->size >> 24), (unsigned char)(req->size >> 16),
        (unsigned char)(req->size >> 8), (unsigned char)req->size};
    // A node that refuses us may answer and close before reading the
    // request: a failed write still leaves its answer to read.
    if (write_all(c->fd, (const char *)hdr, 4, deadline) == 0)
        write_all(c->fd, req->data, req->size, deadline);
    size_t got = read_all(c->fd, (char *)hdr, 4, deadline);
    if (got < 4)
        return read_failed(c, got, true);
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                   (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0)
        return ctl_bad_reply("the reply", "is an empty frame");
    if (len > CTL_REPLY_MAX)
        return ctl_bad_reply("the reply",
                             "is a frame of %u bytes, over the limit of %u", len,
                             CTL_REPLY_MAX);
    out->buf = malloc(len);
    if (out->buf == NULL)
        return ctl_fail(CTL_ERROR, "out of memory for a %u-byte reply", len);
    out->len = len;
    got = read_all(c->fd, out->buf, len, deadline);
    if (got < len)
        return read_failed(c, got, false);
    return reply_decode(c, out);
}

void
ctl_request_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *op,
                  size_t extra)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(pk, 1 + extra);
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, op, strlen(op));
}
