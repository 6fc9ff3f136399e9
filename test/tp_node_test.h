// SPDX-License-Identifier: MIT
// Helpers for the distribution suites: a temporary directory with a secret
// file, child node processes (test/node/tnode) and a local node.
#ifndef TROUPE_TP_NODE_TEST_H
#define TROUPE_TP_NODE_TEST_H

#include <sys/types.h>
#include <troupe.h>

typedef struct tpn_child {
    pid_t pid;
    int in; // its stdin: closing it asks the child to exit
    char node[TP_NODE_NAME_MAX];
} tpn_child;

extern char tpn_dir[64];
extern char tpn_secret[128];

void tpn_setup(void);
void tpn_teardown(void);
void tpn_write_secret(const char *path, const char *text, int mode);
int tpn_start(tpn_child *c, const char *const *argv);
void tpn_stop(tpn_child *c);
void tpn_kill(tpn_child *c, int sig);
tp_system *tpn_local(const char *name, const tp_node_config *over);

// Certificates made by test/tls_certs.sh into tpn_certs, for a test case's
// unchecked fixture; tpn_cert("a", "pem") is a path in it.
extern char tpn_certs[64];
void tpn_certs_make(void);
void tpn_certs_remove(void);
const char *tpn_cert(const char *name, const char *ext);

#endif
