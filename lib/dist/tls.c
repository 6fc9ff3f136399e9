// SPDX-License-Identifier: MIT
// TLS 1.3 under the distribution protocol (OpenSSL's libssl), when the node
// is configured with a certificate, its key and a CA. Every connection then
// starts with a TLS handshake in which each side presents a certificate the
// other verifies against the CA (mutual TLS); the HELLO/CHALLENGE handshake
// of WIRE.md, proving the shared secret, runs inside it, and every frame
// after it. A plaintext peer, or a certificate that is missing, expired or
// not from the CA, fails the TLS handshake: the connection is closed with
// the reason logged.
//
// A connection's SSL object is used only under io->lock, as every other
// part of the connection: on the I/O thread, by a polling worker, or by a
// worker writing its corked frames. Reads and writes go through
// tp__conn_recv and tp__conn_write, which speak plain sockets' language
// (a count, 0 at the end, -1 with errno EAGAIN or another).
#include "core/core.h"
#include "dist/node_impl.h"

#include <errno.h>
#include <stdint.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// The first OpenSSL error queued on this thread, as text, and the queue
// emptied (each thread has its own).
static const char *
ssl_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, size, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}

static int
tls_refused(tp__dist *n, const char *what, const char *path)
{
    char err[256];
    tp__log(n->sys, TP_LOG_ERR, "node: TLS: %s%s%s: %s", what, path ? " " : "",
            path ? path : "", ssl_error(err, sizeof err));
    return TP_EINVAL;
}

int
tp__tls_init(tp__dist *n, const tp_node_config *cfg)
{
    int set = (cfg->tls_cert_file != NULL) + (cfg->tls_key_file != NULL) +
              (cfg->tls_ca_file != NULL);
    if (set == 0)
        return 0;
    if (set != 3) {
        tp__log(n->sys, TP_LOG_ERR,
                "node: TLS needs tls_cert_file, tls_key_file and tls_ca_file "
                "together");
        return TP_EINVAL;
    }
    const char *files[] = {cfg->tls_cert_file, cfg->tls_key_file,
                           cfg->tls_ca_file};
    for (int i = 0; i < 3; i++)
        if (access(files[i], R_OK) != 0) {
            int e = errno;
            tp__log(n->sys, TP_LOG_ERR, "node: TLS: %s: %s", files[i],
                    strerror(e));
            return e == ENOENT ? TP_ENOENT : tp__err_from_errno(e);
        }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL)
        return tls_refused(n, "cannot create a context", NULL);
    int rc = 0;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
        rc = tls_refused(n, "TLS 1.3 is not available", NULL);
    else if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1)
        rc = tls_refused(n, "certificate", cfg->tls_cert_file);
    else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file,
                                         SSL_FILETYPE_PEM) != 1)
        rc = tls_refused(n, "private key", cfg->tls_key_file);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = tls_refused(n, "the key does not match the certificate",
                         cfg->tls_key_file);
    else if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1)
        rc = tls_refused(n, "CA certificates", cfg->tls_ca_file);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    // Our own certificate must pass the checks a peer will make: an expired
    // or foreign one is refused here, not at every connection.
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    X509 *mine = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    if (vctx == NULL || X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(ctx),
                                            mine, chain) != 1) {
        X509_STORE_CTX_free(vctx);
        SSL_CTX_free(ctx);
        return tls_refused(n, "cannot check the certificate", NULL);
    }
    if (X509_verify_cert(vctx) != 1) {
        tp__log(n->sys, TP_LOG_ERR, "node: TLS: certificate %s: %s",
                cfg->tls_cert_file,
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
        X509_STORE_CTX_free(vctx);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return TP_EINVAL;
    }
    X509_STORE_CTX_free(vctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Nodes reconnect rarely: no session resumption, no tickets to send.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    // Whole socket reads, not a record header and then its body.
    SSL_CTX_set_read_ahead(ctx, 1);
    n->tls = ctx;
    return 0;
}

void
tp__tls_free(tp__dist *n)
{
    SSL_CTX_free(n->tls);
    n->tls = NULL;
}

// ---- the socket under TLS
// ---------------------------------------------------
//
// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE on a
// connection the peer closed; a library must not, so connections use this
// one, which sends with MSG_NOSIGNAL.

static BIO_METHOD *sock_method;
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int
sock_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int
sock_write(BIO *b, const char *p, int size)
{
    ssize_t w = send(sock_fd(b), p, (size_t)size, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)w;
}

static int
sock_read(BIO *b, char *p, int size)
{
    ssize_t r = recv(sock_fd(b), p, (size_t)size, 0);
    BIO_clear_retry_flags(b);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)r;
}

static long
sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void
sock_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                     BIO_TYPE_DESCRIPTOR,
                                 "troupe socket");
    if (m == NULL || BIO_meth_set_write(m, sock_write) != 1 ||
        BIO_meth_set_read(m, sock_read) != 1 ||
        BIO_meth_set_ctrl(m, sock_ctrl) != 1 ||
        BIO_meth_set_create(m, sock_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    sock_method = m;
}

bool
tp__tls_attach(conn *c)
{
    tp__dist *n = c->node;
    pthread_once(&sock_once, sock_method_init);
    if (sock_method == NULL)
        return false;
    SSL *s = SSL_new(n->tls);
    BIO *b = s != NULL ? BIO_new(sock_method) : NULL;
    if (b == NULL) {
        SSL_free(s);
        ERR_clear_error();
        return false;
    }
    BIO_set_data(b, (void *)(intptr_t)c->fd);
    SSL_set_bio(s, b, b);
    if (c->outbound)
        SSL_set_connect_state(s);
    else
        SSL_set_accept_state(s);
    c->ssl = s;
    c->tls_st = TP__TLS_HANDSHAKE;
    return true;
}

void
tp__tls_detach(conn *c)
{
    if (c->ssl == NULL)
        return;
    // A close_notify, if the socket takes it at once; nobody waits for the
    // answer.
    if (c->tls_st == TP__TLS_UP) // not after a fatal error: OpenSSL says no
        SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
}

// Why the TLS handshake of `c` failed, for the log.
static const char *
handshake_error(conn *c, int ret, char *buf, size_t size)
{
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(buf, size, "TLS: peer certificate: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
        return buf;
    }
    if (ERR_peek_error() != 0) {
        char err[200];
        snprintf(buf, size, "TLS: %s", ssl_error(err, sizeof err));
        return buf;
    }
    if (ret == 0 || SSL_get_error(c->ssl, ret) == SSL_ERROR_SYSCALL)
        snprintf(buf, size, "TLS: closed during the handshake%s%s",
                 errno ? ": " : "", errno ? strerror(errno) : "");
    else
        snprintf(buf, size, "TLS: handshake failed");
    return buf;
}

int
tp__tls_step(conn *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_st = TP__TLS_UP;
        return 1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        tp__io_fd_stop(c->node->io, &c->wio);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        tp__io_fd_start(c->node->io, &c->wio);
        return 0;
    default: {
        char why[300];
        tp__conn_close(c, handshake_error(c, r, why, sizeof why), true);
        return -1;
    }
    }
}

// A fatal error of `c`'s TLS, from SSL_read or SSL_write's result `r`: no
// close_notify will follow. Returns true for an error of the socket
// (errno says which, 0 for an end without close_notify); otherwise sets
// errno to EPROTO.
static bool
broken(conn *c, int r)
{
    c->tls_st = TP__TLS_BROKEN;
    if (SSL_get_error(c->ssl, r) == SSL_ERROR_SYSCALL)
        return true;
    ERR_clear_error();
    errno = EPROTO;
    return false;
}

ssize_t
tp__conn_recv(conn *c, void *buf, size_t size)
{
    if (c->ssl == NULL)
        return read(c->fd, buf, size);
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        // A message of the TLS layer waits to go out (a key update's
        // answer): once the socket takes it, the write callback reads
        // again (tls_read_writes).
        c->tls_read_writes = true;
        tp__io_fd_start(c->node->io, &c->wio);
        errno = EAGAIN;
        return -1;
    default:
        if (broken(c, r) && errno == 0)
            return 0; // closed without close_notify
        return -1;
    }
}

ssize_t
tp__conn_write(conn *c, const void *buf, size_t size)
{
    if (c->ssl == NULL)
        return send(c->fd, buf, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    default:
        if (broken(c, r) && errno == 0)
            errno = EPIPE;
        return -1;
    }
}

bool
tp__conn_pending(const conn *c)
{
    return c->ssl != NULL && SSL_has_pending(c->ssl);
}
