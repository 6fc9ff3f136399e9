// SPDX-License-Identifier: MIT
// The fake node of the wire suite (tp_wire_test.h): bytes, proofs, sockets
// and the initiator's side of a handshake.
#include "tp_wire_test.h"
#include "tp_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

// What tpn_setup writes into the secret file.
static const char secret[] = "0123456789abcdef0123456789abcdef-test";

// ---- bytes -----------------------------------------------------------------

void
tpw_put(tpw_bytes *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->len + n, sizeof b->p);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void
tpw_put_byte(tpw_bytes *b, uint8_t v)
{
    tpw_put(b, &v, 1);
}

void
tpw_put_be(tpw_bytes *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        tpw_put_byte(b, (uint8_t)(v >> (8 * i)));
}

void
tpw_put_uint(tpw_bytes *b, uint64_t v)
{
    if (v < 128) {
        tpw_put_byte(b, (uint8_t)v);
    } else if (v <= 0xff) {
        tpw_put_byte(b, 0xcc);
        tpw_put_be(b, v, 1);
    } else if (v <= 0xffff) {
        tpw_put_byte(b, 0xcd);
        tpw_put_be(b, v, 2);
    } else if (v <= 0xffffffffu) {
        tpw_put_byte(b, 0xce);
        tpw_put_be(b, v, 4);
    } else {
        tpw_put_byte(b, 0xcf);
        tpw_put_be(b, v, 8);
    }
}

void
tpw_put_str(tpw_bytes *b, const char *s, size_t n)
{
    ck_assert_uint_lt(n, 256);
    if (n < 32) {
        tpw_put_byte(b, (uint8_t)(0xa0 | n));
    } else {
        tpw_put_byte(b, 0xd9);
        tpw_put_be(b, n, 1);
    }
    tpw_put(b, s, n);
}

void
tpw_put_bin(tpw_bytes *b, const void *p, size_t n)
{
    ck_assert_uint_le(n, 0xffff);
    if (n <= 0xff) {
        tpw_put_byte(b, 0xc4);
        tpw_put_be(b, n, 1);
    } else {
        tpw_put_byte(b, 0xc5);
        tpw_put_be(b, n, 2);
    }
    tpw_put(b, p, n);
}

void
tpw_put_hex(tpw_bytes *b, const char *hex)
{
    const char *digits = "0123456789abcdef";
    int high = -1;
    for (const char *s = hex; *s; s++) {
        if (*s == ' ')
            continue;
        const char *d = strchr(digits, *s);
        ck_assert_msg(d != NULL, "bad hex: %s", hex);
        if (high < 0) {
            high = (int)(d - digits);
        } else {
            tpw_put_byte(b, (uint8_t)(high << 4 | (int)(d - digits)));
            high = -1;
        }
    }
    ck_assert_msg(high < 0, "odd hex: %s", hex);
}

void
tpw_put_frame(tpw_bytes *b, const void *env, size_t n)
{
    tpw_put_be(b, n, 4);
    tpw_put(b, env, n);
}

void
tpw_env_hello(tpw_bytes *b, int type, uint32_t vsn, const char *name,
              size_t name_len, uint32_t inc, const uint8_t *nonce,
              const uint8_t *mac)
{
    tpw_put_byte(b, mac ? 0x96 : 0x95);
    tpw_put_uint(b, (uint64_t)type);
    tpw_put_uint(b, vsn);
    tpw_put_str(b, name, name_len);
    tpw_put_uint(b, inc);
    tpw_put_bin(b, nonce, TPW_NONCE);
    if (mac)
        tpw_put_bin(b, mac, TPW_MAC);
}

void
tpw_env_reply(tpw_bytes *b, const uint8_t *mac)
{
    tpw_put_byte(b, 0x92);
    tpw_put_uint(b, TPW_F_REPLY);
    tpw_put_bin(b, mac, TPW_MAC);
}

// ---- proofs ----------------------------------------------------------------

void
tpw_node_of(tpw_node *n, tp_system *sys)
{
    snprintf(n->name, sizeof n->name, "%s", tp_node_name(sys));
    n->inc = tp_node_incarnation(sys);
    const char *colon = strrchr(n->name, ':');
    ck_assert_ptr_nonnull(colon);
    n->port = (uint16_t)atoi(colon + 1);
}

void
tpw_proof(uint8_t out[TPW_MAC], char role, const uint8_t *nonce_a,
          const uint8_t *nonce_b, const char *name_a, const char *name_b,
          uint32_t inc_a, uint32_t inc_b)
{
    const char *label =
        role == 'a' ? "troupe/1 initiator" : "troupe/1 acceptor";
    tpw_bytes m = {.len = 0};
    tpw_put(&m, label, strlen(label) + 1);
    tpw_put(&m, nonce_a, TPW_NONCE);
    tpw_put(&m, nonce_b, TPW_NONCE);
    tpw_put(&m, name_a, strlen(name_a) + 1);
    tpw_put(&m, name_b, strlen(name_b) + 1);
    tpw_put_be(&m, inc_a, 4);
    tpw_put_be(&m, inc_b, 4);
    unsigned len = TPW_MAC;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret), m.p,
                               m.len, out, &len));
    ck_assert_uint_eq(len, TPW_MAC);
}

void
tpw_nonce(uint8_t nonce[TPW_NONCE])
{
    ck_assert_int_eq(getrandom(nonce, TPW_NONCE, 0), TPW_NONCE);
}

// ---- sockets ---------------------------------------------------------------

double
tpw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// ---- TLS
// ----------------------------------------------------------------------

#define TLS_FDS 4096

static SSL_CTX *tls_ctx;
static SSL *tls_of[TLS_FDS]; // by descriptor

void
tpw_tls(const char *ca, const char *cert, const char *key)
{
    tpw_tls_forget();
    SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
    if (cert == NULL)
        return;
    signal(SIGPIPE, SIG_IGN); // writes to connections the node closed
    tls_ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(tls_ctx);
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(tls_ctx, ca, NULL), 1);
    ck_assert_int_eq(
        SSL_CTX_use_certificate_file(tls_ctx, cert, SSL_FILETYPE_PEM), 1);
    ck_assert_int_eq(
        SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
}

bool
tpw_tls_on(void)
{
    return tls_ctx != NULL;
}

void
tpw_tls_forget(void)
{
    for (int i = 0; i < TLS_FDS; i++) {
        SSL_free(tls_of[i]);
        tls_of[i] = NULL;
    }
    ERR_clear_error();
}

static SSL *
tls(int fd)
{
    return fd >= 0 && fd < TLS_FDS ? tls_of[fd] : NULL;
}

// ---- sockets
// -------------------------------------------------------------------

int
tpw_dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (fd < TLS_FDS) {
        SSL_free(tls_of[fd]); // of a descriptor closed with close(2)
        tls_of[fd] = NULL;
    }
    if (tls_ctx != NULL) {
        ck_assert_int_lt(fd, TLS_FDS);
        SSL *s = SSL_new(tls_ctx);
        ck_assert_ptr_nonnull(s);
        SSL_set_fd(s, fd);
        struct timeval tv = {.tv_sec = TPW_WAIT_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ck_assert_msg(SSL_connect(s) == 1, "TLS handshake failed");
        tv.tv_sec = 0;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        tls_of[fd] = s;
    }
    return fd;
}

// read(2) or recv(2), through TLS when `fd` has it.
static ssize_t
fd_read(int fd, void *p, size_t n)
{
    SSL *s = tls(fd);
    if (s == NULL)
        return read(fd, p, n);
    ERR_clear_error();
    int r = SSL_read(s, p, (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(s, r);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && errno == 0)
        return 0;
    if (e != SSL_ERROR_SYSCALL)
        errno = ECONNRESET; // an alert: the node refused
    return -1;
}

void
tpw_send(int fd, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t w;
        SSL *t = tls(fd);
        if (t != NULL) {
            int k = SSL_write(t, s, (int)n);
            ERR_clear_error();
            w = k;
            if (k <= 0 && errno == 0)
                errno = EPIPE;
        } else {
            w = send(fd, s, n, MSG_NOSIGNAL);
        }
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

// Waits until `fd` is readable or `deadline` passes.
static bool
readable(int fd, double deadline)
{
    for (;;) {
        int left = (int)((deadline - tpw_now()) * 1000);
        if (left <= 0)
            return false;
        if (tls(fd) != NULL && SSL_pending(tls(fd)) > 0)
            return true;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, left);
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

static bool
read_n(int fd, uint8_t *p, size_t n, double deadline)
{
    size_t got = 0;
    while (got < n) {
        if (!readable(fd, deadline))
            return false;
        ssize_t r = fd_read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static size_t
get_be32(const uint8_t *h)
{
    return (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
}

bool
tpw_read_frame(int fd, tpw_bytes *b)
{
    double deadline = tpw_now() + TPW_WAIT_MS / 1000.0;
    uint8_t h[4];
    if (!read_n(fd, h, 4, deadline))
        return false;
    b->len = get_be32(h);
    ck_assert_uint_le(b->len, sizeof b->p);
    return read_n(fd, b->p, b->len, deadline);
}

bool
tpw_closed(int fd, tpw_bytes *got)
{
    double deadline = tpw_now() + TPW_WAIT_MS / 1000.0;
    bool closed = false;
    if (got != NULL)
        got->len = 0;
    while (readable(fd, deadline)) {
        uint8_t buf[4096];
        ssize_t r = fd_read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            closed = r == 0 || errno == ECONNRESET;
            break;
        }
        if (got != NULL) {
            size_t room = sizeof got->p - got->len;
            tpw_put(got, buf, (size_t)r < room ? (size_t)r : room);
        }
    }
    if (tls(fd) != NULL) {
        SSL_free(tls_of[fd]);
        tls_of[fd] = NULL;
    }
    close(fd);
    return closed;
}

bool
tpw_open(int fd)
{
    if (tls(fd) != NULL && SSL_pending(tls(fd)) > 0)
        return false;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 0) == 0;
}

// ---- envelopes -------------------------------------------------------------

msgpack_object *
tpw_envelope(msgpack_unpacked *u, const tpw_bytes *b, unsigned type,
             unsigned fields)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    ck_assert_int_eq(msgpack_unpack_next(u, (const char *)b->p, b->len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, b->len);
    ck_assert_int_eq(u->data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_ge(u->data.via.array.size, 1);
    msgpack_object *f = u->data.via.array.ptr;
    ck_assert_int_eq(f[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_uint_eq(f[0].via.u64, type);
    ck_assert_uint_eq(u->data.via.array.size, fields);
    return f;
}

void
tpw_field_bin(const msgpack_object *o, size_t len, uint8_t *out)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_BIN);
    ck_assert_uint_eq(o->via.bin.size, len);
    memcpy(out, o->via.bin.ptr, len);
}

void
tpw_field_str(const msgpack_object *o, char *out, size_t size)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_lt(o->via.str.size, size);
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
}

static bool
is_refuse(const uint8_t *p, size_t n, const char *why)
{
    msgpack_unpacked u;
    size_t off = 0;
    bool hit = false;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, n, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2 &&
        u.data.via.array.ptr[0].via.u64 == TPW_F_REFUSE &&
        u.data.via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
        const msgpack_object_str *s = &u.data.via.array.ptr[1].via.str;
        hit = s->size == strlen(why) && memcmp(s->ptr, why, s->size) == 0;
    }
    msgpack_unpacked_destroy(&u);
    return hit;
}

bool
tpw_refused_with(const tpw_bytes *got, const char *why)
{
    size_t off = 0;
    while (got->len - off >= 4) {
        size_t len = get_be32(got->p + off);
        if (got->len - off - 4 < len)
            return false;
        if (is_refuse(got->p + off + 4, len, why))
            return true;
        off += 4 + len;
    }
    return false;
}

// ---- the initiator's handshake ---------------------------------------------

void
tpw_check_challenge(const tpw_node *n, const tpw_bytes *in, const char *name,
                    uint32_t inc, const uint8_t *nonce_a, uint8_t *nonce_b)
{
    msgpack_unpacked u;
    msgpack_object *f = tpw_envelope(&u, in, TPW_F_CHALLENGE, 6);
    ck_assert_uint_eq(f[1].via.u64, TPW_VSN);
    char who[TP_NODE_NAME_MAX];
    tpw_field_str(&f[2], who, sizeof who);
    ck_assert_str_eq(who, n->name);
    ck_assert_uint_eq(f[3].via.u64, n->inc);
    tpw_field_bin(&f[4], TPW_NONCE, nonce_b);
    uint8_t mac[TPW_MAC], want[TPW_MAC];
    tpw_field_bin(&f[5], TPW_MAC, mac);
    msgpack_unpacked_destroy(&u);
    tpw_proof(want, 'b', nonce_a, nonce_b, name, n->name, inc, n->inc);
    ck_assert_msg(memcmp(mac, want, TPW_MAC) == 0, "%s: wrong proof", n->name);
}

int
tpw_join(const tpw_node *n, const char *name, uint32_t inc,
         tpw_transcript *rec)
{
    int fd = tpw_dial(n->port);
    uint8_t na[TPW_NONCE], nb[TPW_NONCE], mac[TPW_MAC];
    tpw_nonce(na);
    tpw_bytes env = {.len = 0}, hello = {.len = 0}, reply = {.len = 0}, in;
    tpw_env_hello(&env, TPW_F_HELLO, TPW_VSN, name, strlen(name), inc, na,
                  NULL);
    tpw_put_frame(&hello, env.p, env.len);
    tpw_send(fd, hello.p, hello.len);
    ck_assert_msg(tpw_read_frame(fd, &in), "no CHALLENGE for %s", name);
    tpw_check_challenge(n, &in, name, inc, na, nb);
    tpw_proof(mac, 'a', na, nb, name, n->name, inc, n->inc);
    env.len = 0;
    tpw_env_reply(&env, mac);
    tpw_put_frame(&reply, env.p, env.len);
    tpw_send(fd, reply.p, reply.len);
    ck_assert_msg(tpw_read_frame(fd, &in), "no ACCEPT for %s", name);
    msgpack_unpacked u;
    tpw_envelope(&u, &in, TPW_F_ACCEPT, 1);
    msgpack_unpacked_destroy(&u);
    if (rec != NULL) {
        rec->hello = hello;
        rec->reply = reply;
    }
    return fd;
}
