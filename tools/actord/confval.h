// SPDX-License-Identifier: MIT
// The values of actord's configuration: the [node] keys and how each is
// checked, and the string helpers config.c reads lines with. Private to
// config.c and confval.c.
#ifndef TROUPE_ACTORD_CONFVAL_H
#define TROUPE_ACTORD_CONFVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "actord.h"

// The [node] keys, in the order of ad_node_key_names.
enum {
    AD_KEY_NAME = 0,
    AD_KEY_LISTEN,
    AD_KEY_SECRET_FILE,
    AD_KEY_THREADS,
    AD_KEY_CONTROL,
    AD_KEY_METRICS,
    AD_KEY_METRICS_ALLOW_REMOTE,
    AD_KEY_LOG_LEVEL,
    AD_KEY_SHUTDOWN_TIMEOUT,
    AD_KEY_PEERS,
    AD_KEY_TLS_CERT,
    AD_KEY_TLS_KEY,
    AD_KEY_TLS_CA,
    AD_KEY_MESH,
    AD_KEY_SEEDS,
    AD_KEY_WAIT_SAMPLE,
    AD_NODE_KEYS
};

// NULL-terminated.
extern const char *const ad_node_key_names[AD_NODE_KEYS + 1];

#define AD_SHUTDOWN_TIMEOUT_DEFAULT_MS 30000
#define AD_WAIT_SAMPLE_DEFAULT 64 // tp_config.wait_sample's default
#define AD_SUN_PATH_MAX 108       // sizeof sockaddr_un.sun_path

// The index of [node] key `key`, or -1.
int ad_node_key_find(const char *key);

// Sets key `k` of `cfg` from the non-empty `value`, resolving a relative
// path against `dir`. On a bad value leaves `cfg` unchanged and writes why
// into `why` (left empty on success, also when memory ran out: the caller
// notices the NULL field).
void ad_node_key_set(ad_config *cfg, int k, const char *value, const char *dir,
                     char *why, size_t size);

// Adds the peers that `value` (line `line`) lists, separated by blanks
// and/or commas, to `cfg`. On a bad entry, a duplicate or too many adds
// none of them and writes why into `why` (left empty on success, also
// when memory ran out: then returns false).
bool ad_peers_add(ad_config *cfg, const char *value, int line, char *why,
                  size_t size);
// True when peer `node` (well formed) is the node that `name` and
// `listen` (well formed, port not 0) describe.
bool ad_peer_is_self(const char *node, const char *name, const char *listen);

// Strips blanks at both ends, in place. Returns the first non-blank.
char *ad_trim(char *s);
// A malloc'ed copy of `s` without one pair of surrounding double quotes.
char *ad_unquote(const char *s);
// The entry of `names` (NULL-terminated) closest to `word`, when it is
// close enough to be a typing mistake, else NULL.
const char *ad_suggest(const char *word, const char *const *names);
// `path` if absolute, else "DIR/path"; malloc'ed, NULL when out of memory.
char *ad_path_resolve(const char *dir, const char *path);
// The absolute directory of the file at `path`, malloc'ed, or NULL.
char *ad_config_dir(const char *path);
// Checks "A.B.C.D:PORT" or "[IPv6]:PORT" (port 0 allowed) as the library
// parses it. Returns true when it is well formed, else false with why in
// `why`.
bool ad_addr_ok(const char *addr, char *why, size_t size);
// True when `addr` (well formed) is a loopback address (127.0.0.0/8, ::1).
bool ad_addr_is_loopback(const char *addr);

#endif
