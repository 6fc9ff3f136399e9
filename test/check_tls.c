// SPDX-License-Identifier: MIT
// TLS between nodes: nodes in this process on 127.0.0.1, with certificates
// made by test/tls_certs.sh (the openssl command, as the README shows), and
// a bare TLS client written here for what no node would present. Every
// refusal must close the connection with its reason logged and leave the
// node serving its good peers.
#include "tp_test.h"
#include "tp_node_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

// ---- log lines, kept
// ---------------------------------------------------------

static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char lines[256][512];
static unsigned nlines;

static void
keep_line(void *userdata, int level, const char *origin, const char *line)
{
    (void)userdata, (void)level, (void)origin;
    pthread_mutex_lock(&lines_lock);
    snprintf(lines[nlines++ % 256], sizeof lines[0], "%s", line);
    pthread_mutex_unlock(&lines_lock);
}

// Waits up to 10 s for a log line with all of `a` and `b` (NULL: any).
static bool
logged(const char *a, const char *b)
{
    for (int i = 0; i < 10000; i++) {
        bool hit = false;
        pthread_mutex_lock(&lines_lock);
        for (unsigned k = 0; k < 256 && k < nlines && !hit; k++)
            hit = strstr(lines[k], a) != NULL &&
                  (b == NULL || strstr(lines[k], b) != NULL);
        pthread_mutex_unlock(&lines_lock);
        if (hit)
            return true;
        tpt_nap_us(1000);
    }
    return false;
}

// ---- nodes
// --------------------------------------------------------------------

// Starts node `name` presenting certificate `cert` (NULL: no TLS), trusting
// CA `ca`; returns tp_node_start's code, and the system in *out (destroyed
// on failure).
static int
node_try(const char *name, const char *cert, const char *ca, tp_system **out)
{
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 2, .log = keep_line});
    tp_node_config nc = {.name = name, .secret_file = tpn_secret};
    if (cert != NULL) {
        nc.tls_cert_file = tpn_cert(cert, "pem");
        nc.tls_key_file = tpn_cert(cert, "key");
        nc.tls_ca_file = tpn_cert(ca, "pem");
    }
    int rc = tp_node_start(sys, &nc);
    if (rc != 0)
        tp_system_destroy(&sys);
    *out = sys;
    return rc;
}

static tp_system *
node_new(const char *name, const char *cert)
{
    tp_system *sys;
    ck_assert_int_eq(node_try(name, cert, "ca", &sys), 0);
    return sys;
}

static uint16_t
port_of(tp_system *sys)
{
    return (uint16_t)atoi(strrchr(tp_node_name(sys), ':') + 1);
}

static int
echo_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (!tp_pid_is_nil(msg->from) && msg->tag < TP_TAG_RESERVED)
        tp_send(ctx, msg->from, msg->tag, msg->data, msg->size);
    return TP_OK;
}

static const tp_behaviour echo_b = {.name = "echo", .handle = echo_handle};

static _Atomic int echoed, big_echoed;

// A payload several TLS records long, numbered so that order shows.
#define BIG (64 * 1024 + 7)
static unsigned char big[BIG];

static int
asker_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == 100) { // data: the node to ask
        tp_send_name_at(ctx, "echo", msg->data, 7, "over tls", 8);
    } else if (msg->tag == 101) { // the same, many big messages then one
        for (uint32_t i = 0; i < 20; i++) {
            memcpy(big, &i, sizeof i);
            tp_send_name_at(ctx, "echo", msg->data, 8, big, BIG);
        }
    } else if (msg->tag == 7 && msg->size == 8 &&
               memcmp(msg->data, "over tls", 8) == 0) {
        atomic_fetch_add(&echoed, 1);
    } else if (msg->tag == 8 && msg->size == BIG) {
        uint32_t i;
        memcpy(&i, msg->data, sizeof i);
        if ((int)i == atomic_load(&big_echoed) && // in order, whole
            memcmp((const char *)msg->data + sizeof i, big + sizeof i,
                   BIG - sizeof i) == 0)
            atomic_fetch_add(&big_echoed, 1);
    }
    return TP_OK;
}

static const tp_behaviour asker_b = {.name = "asker", .handle = asker_handle};

// A message from `from` reaches the echo on `to` and comes back.
static void
round_trip(tp_system *from, tp_system *to)
{
    tp_pid echo, asker;
    tp_spawn(to, &echo_b, NULL, &(tp_spawn_opts){.name = "echo"}, &echo);
    ck_assert_int_eq(tp_spawn(from, &asker_b, NULL, NULL, &asker), 0);
    int before = atomic_load(&echoed);
    const char *node = tp_node_name(to);
    ck_assert_int_eq(tp_system_send(from, asker, 100, node, strlen(node) + 1),
                     0);
    for (int i = 0; i < 10000 && atomic_load(&echoed) == before; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(atomic_load(&echoed), before + 1);
}

// ---- a bare TLS client
// ------------------------------------------------------

// Connects to `port` over TLS, presenting certificate `cert` (NULL: none)
// and trusting the suite's CA, and waits for the node's answer. Returns
// true when the node closed the connection without a word.
static bool
bare_client_refused(uint16_t port, const char *cert)
{
    signal(SIGPIPE, SIG_IGN); // writes to a connection the node closed
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    ck_assert_int_eq(
        SSL_CTX_load_verify_locations(ctx, tpn_cert("ca", "pem"), NULL), 1);
    if (cert != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate_file(
                             ctx, tpn_cert(cert, "pem"), SSL_FILETYPE_PEM),
                         1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(
                             ctx, tpn_cert(cert, "key"), SSL_FILETYPE_PEM),
                         1);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    // TLS 1.3: the client is done before the node has checked its
    // certificate; a refusal comes as an alert or a close, on reading.
    bool refused = SSL_connect(s) != 1;
    if (!refused) {
        char b;
        refused = SSL_read(s, &b, 1) <= 0;
    }
    SSL_free(s);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(fd);
    return refused;
}

// ---- tests
// --------------------------------------------------------------------

START_TEST(tls_nodes_talk)
{
    tpn_setup();
    tp_system *a = node_new("alpha", "a");
    tp_system *b = node_new("beta", "b");
    ck_assert(logged("name=alpha@", "tls=yes"));
    ck_assert_int_eq(tp_node_connect(a, tp_node_name(b), 10000), 0);
    round_trip(a, b);
    round_trip(b, a);
    // Messages larger than a TLS record (16 KiB) cross whole and in order.
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 7);
    tp_pid asker;
    ck_assert_int_eq(tp_spawn(a, &asker_b, NULL, NULL, &asker), 0);
    const char *node = tp_node_name(b);
    ck_assert_int_eq(tp_system_send(a, asker, 101, node, strlen(node) + 1), 0);
    for (int i = 0; i < 20000 && atomic_load(&big_echoed) < 20; i++)
        tpt_nap_us(1000);
    ck_assert_int_eq(atomic_load(&big_echoed), 20);
    tp_system_destroy(&a);
    tp_system_destroy(&b);
    tpn_teardown();
}
END_TEST

START_TEST(tls_refuses_bad_peers)
{
    tpn_setup();
    tp_system *a = node_new("alpha", "a");
    uint16_t port = port_of(a);
    // A certificate that expired.
    ck_assert(bare_client_refused(port, "old"));
    ck_assert(logged("TLS: peer certificate", "certificate has expired"));
    // No certificate at all.
    ck_assert(bare_client_refused(port, NULL));
    ck_assert(logged("TLS:", "did not return a certificate"));
    // A certificate from another CA.
    ck_assert(bare_client_refused(port, "stranger"));
    ck_assert(logged("TLS: peer certificate", "local issuer"));
    // A node of another CA: it refuses alpha's certificate in turn.
    tp_system *g;
    ck_assert_int_eq(node_try("gamma", "stranger", "other", &g), 0);
    ck_assert_int_ne(tp_node_connect(g, tp_node_name(a), 5000), 0);
    ck_assert(logged("connection to alpha@", "TLS"));
    tp_system_destroy(&g);
    // A node that speaks plaintext to it.
    tp_system *p = node_new("plain", NULL);
    ck_assert_int_ne(tp_node_connect(p, tp_node_name(a), 5000), 0);
    ck_assert(logged("connection from 127.0.0.1:", "TLS"));
    tp_system_destroy(&p);
    // Through all that, a good peer gets in and is served.
    tp_system *b = node_new("beta", "b");
    ck_assert_int_eq(tp_node_connect(b, tp_node_name(a), 10000), 0);
    round_trip(b, a);
    tp_system_destroy(&b);
    tp_system_destroy(&a);
    tpn_teardown();
}
END_TEST

START_TEST(tls_node_dialling_plaintext_is_refused)
{
    tpn_setup();
    tp_system *p = node_new("plain", NULL);
    tp_system *a = node_new("alpha", "a");
    ck_assert_int_ne(tp_node_connect(a, tp_node_name(p), 5000), 0);
    // The plaintext node reads a TLS hello as a frame, and refuses it.
    ck_assert(logged("connection to plain@", "TLS"));
    tp_node_stats s;
    ck_assert_int_eq(tp_node_stats_get(p, &s), 0);
    ck_assert_uint_ge(s.frames_rejected, 1);
    tp_system_destroy(&a);
    // The plaintext node still serves plaintext peers.
    tp_system *q = node_new("plain2", NULL);
    ck_assert_int_eq(tp_node_connect(q, tp_node_name(p), 10000), 0);
    round_trip(q, p);
    tp_system_destroy(&q);
    tp_system_destroy(&p);
    tpn_teardown();
}
END_TEST

START_TEST(tls_configuration_refused)
{
    tpn_setup();
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 1, .log = keep_line});
    tp_node_config nc = {.name = "alpha", .secret_file = tpn_secret};
    // Not all three files.
    nc.tls_cert_file = tpn_cert("a", "pem");
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    ck_assert(logged("tls_cert_file, tls_key_file and tls_ca_file", NULL));
    // A file that is not there.
    nc.tls_key_file = tpn_cert("a", "key");
    nc.tls_ca_file = tpn_cert("nothere", "pem");
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_ENOENT);
    ck_assert(logged("nothere.pem", "No such file"));
    // A key that is not the certificate's.
    nc.tls_ca_file = tpn_cert("ca", "pem");
    nc.tls_key_file = tpn_cert("b", "key");
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    ck_assert(logged("b.key", "mismatch"));
    // An expired certificate, or one the CA did not sign.
    nc.tls_cert_file = tpn_cert("old", "pem");
    nc.tls_key_file = tpn_cert("old", "key");
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    ck_assert(logged("old.pem", "certificate has expired"));
    nc.tls_cert_file = tpn_cert("stranger", "pem");
    nc.tls_key_file = tpn_cert("stranger", "key");
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    ck_assert(logged("stranger.pem", "local issuer"));
    // Not a certificate at all.
    nc.tls_cert_file = tpn_secret;
    ck_assert_int_eq(tp_node_start(sys, &nc), TP_EINVAL);
    // Each refusal left nothing behind: a good configuration starts.
    nc.tls_cert_file = tpn_cert("a", "pem");
    nc.tls_key_file = tpn_cert("a", "key");
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    tp_system_destroy(&sys);
    tpn_teardown();
}
END_TEST

START_TEST(listening_beyond_loopback_without_tls_warns)
{
    tpn_setup();
    // 0.0.0.0 is every address, not loopback.
    tp_system *sys =
        tpt_system_cfg(&(tp_config){.threads = 1, .log = keep_line});
    tp_node_config nc = {
        .name = "open", .listen = "0.0.0.0:0", .secret_file = tpn_secret};
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    ck_assert(logged("listening on 0.0.0.0:0 without TLS", NULL));
    tp_system_destroy(&sys);
    // With TLS, no warning; on loopback, none either.
    sys = tpt_system_cfg(&(tp_config){.threads = 1, .log = keep_line});
    nc.name = "closed";
    nc.tls_cert_file = tpn_cert("a", "pem");
    nc.tls_key_file = tpn_cert("a", "key");
    nc.tls_ca_file = tpn_cert("ca", "pem");
    ck_assert_int_eq(tp_node_start(sys, &nc), 0);
    tp_system_destroy(&sys);
    sys = tpt_system_cfg(&(tp_config){.threads = 1, .log = keep_line});
    tp_node_config lo = {.name = "local", .secret_file = tpn_secret};
    ck_assert_int_eq(tp_node_start(sys, &lo), 0);
    tp_system_destroy(&sys);
    unsigned warned = 0;
    pthread_mutex_lock(&lines_lock);
    for (unsigned k = 0; k < 256 && k < nlines; k++)
        warned += strstr(lines[k], "without TLS") != NULL;
    pthread_mutex_unlock(&lines_lock);
    ck_assert_uint_eq(warned, 1);
    tpn_teardown();
}
END_TEST

// ---- a peer that goes away as TLS comes up
// ------------------------------------

typedef struct vanishing {
    int lfd;
    int rounds;
} vanishing;

// Accepts `rounds` connections; on each, answers the client's hello with
// the server's whole flight, then closes before the client's answer.
static void *
vanishing_main(void *arg)
{
    vanishing *v = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_file(ctx, tpn_cert("c", "pem"), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, tpn_cert("c", "key"), SSL_FILETYPE_PEM);
    SSL_CTX_load_verify_locations(ctx, tpn_cert("ca", "pem"), NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_num_tickets(ctx, 0);
    for (int i = 0; i < v->rounds; i++) {
        int fd = accept(v->lfd, NULL, NULL);
        if (fd < 0)
            break;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL *t = SSL_new(ctx);
        SSL_set_fd(t, fd);
        // Non-blocking: SSL_accept says WANT_READ once our flight is out
        // and it waits for the client's.
        BIO_set_nbio(SSL_get_rbio(t), 1);
        for (int k = 0; k < 5000; k++) {
            int r = SSL_accept(t);
            if (r == 1)
                break;
            int e = SSL_get_error(t, r);
            if (e == SSL_ERROR_WANT_READ &&
                BIO_number_written(SSL_get_wbio(t)) > 0)
                break; // our flight is out
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                break;
            usleep(1000);
        }
        close(fd); // gone before the client's flight arrives
        SSL_free(t);
        ERR_clear_error();
    }
    SSL_CTX_free(ctx);
    return NULL;
}

START_TEST(tls_peer_gone_after_its_flight)
{
    tpn_setup();
    tp_system *a = node_new("alpha", "a");
    vanishing v = {.rounds = 10};
    v.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(v.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(v.lfd, 8), 0);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(getsockname(v.lfd, (struct sockaddr *)&sa, &sl), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, vanishing_main, &v), 0);
    char peer[64];
    snprintf(peer, sizeof peer, "ghost@127.0.0.1:%u", ntohs(sa.sin_port));
    // Each attempt fails, with a reason, and leaves the node as it was.
    for (int i = 0; i < v.rounds; i++) {
        ck_assert_int_ne(tp_node_connect(a, peer, 5000), 0);
        ck_assert_int_eq(tp_node_disconnect(a, peer), 0);
    }
    pthread_join(t, NULL);
    close(v.lfd);
    ck_assert(logged("connection to ghost@", NULL));
    tp_system *b = node_new("beta", "b");
    ck_assert_int_eq(tp_node_connect(b, tp_node_name(a), 10000), 0);
    round_trip(b, a);
    tp_system_destroy(&b);
    tp_system_destroy(&a);
    tpn_teardown();
}
END_TEST

Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, tpn_certs_make, tpn_certs_remove);
    tcase_add_test(tc, tls_nodes_talk);
    tcase_add_test(tc, tls_refuses_bad_peers);
    tcase_add_test(tc, tls_node_dialling_plaintext_is_refused);
    tcase_add_test(tc, tls_configuration_refused);
    tcase_add_test(tc, listening_beyond_loopback_without_tls_warns);
    tcase_add_test(tc, tls_peer_gone_after_its_flight);
    suite_add_tcase(s, tc);
    return s;
}
