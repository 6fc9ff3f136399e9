// SPDX-License-Identifier: MIT
// The values of actord's configuration: one checker per [node] key, each
// saying what it expected when a value is wrong, and the small string and
// path helpers the reader uses. Also copies and comparisons of [app]
// sections, which reload needs.
#include "confval.h"
#include "io/addr.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const ad_node_key_names[AD_NODE_KEYS + 1] = {
    [AD_KEY_NAME] = "name",
    [AD_KEY_LISTEN] = "listen",
    [AD_KEY_SECRET_FILE] = "secret_file",
    [AD_KEY_THREADS] = "threads",
    [AD_KEY_CONTROL] = "control",
    [AD_KEY_METRICS] = "metrics",
    [AD_KEY_METRICS_ALLOW_REMOTE] = "metrics_allow_remote",
    [AD_KEY_LOG_LEVEL] = "log_level",
    [AD_KEY_SHUTDOWN_TIMEOUT] = "shutdown_timeout",
    [AD_KEY_PEERS] = "peers",
    [AD_KEY_TLS_CERT] = "tls_cert",
    [AD_KEY_TLS_KEY] = "tls_key",
    [AD_KEY_TLS_CA] = "tls_ca",
    [AD_KEY_MESH] = "mesh",
    [AD_KEY_SEEDS] = "seeds",
    [AD_KEY_WAIT_SAMPLE] = "wait_sample",
    [AD_NODE_KEYS] = NULL,
};

int
ad_node_key_find(const char *key)
{
    for (int k = 0; k < AD_NODE_KEYS; k++)
        if (strcmp(ad_node_key_names[k], key) == 0)
            return k;
    return -1;
}

// ---- addresses -------------------------------------------------------------

// The library's own parser (lib/io/addr.c, linked into actord with the
// rest of the static library), so that what --check accepts is what
// tp_node_start and the metrics endpoint accept.
static bool
addr_parse(const char *addr, int flags, struct sockaddr_storage *sa)
{
    socklen_t len;
    return tp__addr_parse(addr, flags, sa, &len) == 0;
}

bool
ad_addr_ok(const char *addr, char *why, size_t size)
{
    struct sockaddr_storage sa;
    if (addr_parse(addr, TP__ADDR_PORT0, &sa))
        return true;
    // Say which half is wrong: is the host good with a good port?
    const char *colon = strrchr(addr, ':');
    if (addr[0] == '[') { // IPv6: the port follows the bracket
        colon = strstr(addr, "]:");
        colon = colon ? colon + 1 : NULL;
    }
    const char *port = colon ? colon + 1 : "";
    char probe[TP__ADDR_STRLEN + 8];
    int hl = colon ? (int)(colon - addr) : 0;
    snprintf(probe, sizeof probe, "%.*s:1", hl, addr);
    if (hl > 0 && *port != 0 && strspn(port, "0123456789") == strlen(port) &&
        hl < TP__ADDR_STRLEN && !addr_parse(probe, 0, &sa)) {
        snprintf(why, size,
                 "\"%.*s\" is not a numeric IPv4 address or an IPv6 "
                 "address in brackets",
                 hl, addr);
        return false;
    }
    snprintf(why, size,
             "expected HOST:PORT with a numeric IPv4 address or an IPv6 "
             "address in brackets and a port from 0 to 65535 without "
             "leading zeros, such as 127.0.0.1:4370 or [::1]:4370");
    return false;
}

bool
ad_addr_is_loopback(const char *addr)
{
    struct sockaddr_storage sa;
    return addr_parse(addr, TP__ADDR_PORT0, &sa) && tp__addr_is_loopback(&sa);
}

#define NAME_WHY "a node name is 1 to 48 of A-Z a-z 0-9 _ . -"

// The short name of `len` bytes at `s` (not NUL-terminated).
static bool
name_ok(const char *s, size_t len)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz0123456789_.-";
    if (len == 0 || len > 48)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 0 || strchr(chars, s[i]) == NULL)
            return false;
    return true;
}

// ---- peers -----------------------------------------------------------------

// Checks one entry of peers: "NAME@HOST:PORT" as tp_node_connect takes
// it (and as tp_node_name writes it: no leading zeros in the port).
static bool
peer_ok(const char *e, char *why, size_t n)
{
    const char *at = strchr(e, '@');
    const char *addr = at != NULL ? at + 1 : "";
    const char *colon = strrchr(addr, ':');
    if (at == NULL || at == e || strchr(addr, '@') != NULL || colon == NULL) {
        snprintf(why, n,
                 "expected NAME@HOST:PORT, such as beta@127.0.0.1:4371");
        return false;
    }
    if (!name_ok(e, (size_t)(at - e))) {
        snprintf(why, n, NAME_WHY);
        return false;
    }
    const char *port = colon + 1;
    size_t pl = strlen(port);
    unsigned long p = 0;
    if (pl > 0 && pl <= 5 && strspn(port, "0123456789") == pl)
        p = strtoul(port, NULL, 10);
    if (p == 0 || p > 65535) {
        snprintf(why, n, "port \"%s\": a peer's port is 1 to 65535", port);
        return false;
    }
    if (port[0] == '0') {
        snprintf(why, n, "port \"%s\": write it without leading zeros", port);
        return false;
    }
    if (!ad_addr_ok(addr, why, n))
        return false;
    if (tp_node_name_check(e) != 0) { // what is left: the library's view
        snprintf(why, n,
                 "not a node name troupe accepts (an IPv6 address is "
                 "written as the node writes it: [::1], not [0:0::1])");
        return false;
    }
    return true;
}

static const ad_peer *
peer_find(const ad_peer *v, size_t nv, const char *node)
{
    for (size_t i = 0; i < nv; i++)
        if (strcmp(v[i].node, node) == 0)
            return &v[i];
    return NULL;
}

bool
ad_peers_add(ad_config *c, const char *value, int line, char *why, size_t n)
{
    static const char sep[] = " \t,";
    why[0] = 0;
    char *copy = strdup(value);
    ad_peer *v = NULL;
    size_t nv = 0;
    bool oom = copy == NULL;
    char *save = NULL;
    for (char *e = copy ? strtok_r(copy, sep, &save) : NULL;
         e != NULL && !oom && why[0] == 0; e = strtok_r(NULL, sep, &save)) {
        const ad_peer *twice = peer_find(c->peers, c->npeers, e);
        if (twice == NULL)
            twice = peer_find(v, nv, e);
        char bad[160];
        if (!peer_ok(e, bad, sizeof bad)) {
            // Name the entry when the line lists more than one.
            if (strcmp(e, value) == 0)
                snprintf(why, n, "%s", bad);
            else
                snprintf(why, n, "\"%s\": %s", e, bad);
        } else if (twice != NULL) {
            snprintf(why, n, "\"%s\" is listed twice (first at line %d)", e,
                     twice->line);
        } else if (c->npeers + nv >= AD_PEERS_MAX) {
            snprintf(why, n, "at most %d peers", AD_PEERS_MAX);
        } else {
            ad_peer *grown = realloc(v, (nv + 1) * sizeof *v);
            if (grown == NULL || (grown[nv].node = strdup(e)) == NULL) {
                v = grown != NULL ? grown : v;
                oom = true;
                break;
            }
            v = grown;
            v[nv++].line = line;
        }
    }
    if (!oom && why[0] == 0 && nv == 0)
        snprintf(why, n, "no peer listed");
    ad_peer *all = NULL;
    if (!oom && why[0] == 0 &&
        (all = realloc(c->peers, (c->npeers + nv) * sizeof *all)) == NULL)
        oom = true;
    if (all != NULL) {
        memcpy(all + c->npeers, v, nv * sizeof *v);
        c->peers = all;
        c->npeers += nv;
    } else {
        for (size_t i = 0; i < nv; i++)
            free(v[i].node);
    }
    free(v);
    free(copy);
    return !oom;
}

bool
ad_peer_is_self(const char *node, const char *name, const char *listen)
{
    const char *at = strchr(node, '@');
    size_t nl = (size_t)(at - node);
    if (strlen(name) != nl || strncmp(node, name, nl) != 0)
        return false;
    // Compare addresses as addresses: listen may spell an IPv6 address
    // another way than the peer's name does.
    struct sockaddr_storage a, l;
    socklen_t al, ll;
    return tp__addr_parse(at + 1, 0, &a, &al) == 0 &&
           tp__addr_parse(listen, 0, &l, &ll) == 0 && al == ll &&
           memcmp(&a, &l, al) == 0;
}

// ---- the [node] keys -------------------------------------------------------

static bool
set_str(char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return false; // the caller sees the field still NULL
    free(*field);
    *field = copy;
    return true;
}

static void
set_name(ad_config *c, const char *v, char *why, size_t n)
{
    if (!name_ok(v, strlen(v)))
        snprintf(why, n, NAME_WHY);
    else
        set_str(&c->name, v);
}

static void
set_listen(ad_config *c, const char *v, char *why, size_t n)
{
    if (ad_addr_ok(v, why, n))
        set_str(&c->listen, v);
}

// The checks tp_node_start makes, made early so that --check finds them.
static void
set_secret(ad_config *c, const char *v, const char *dir, char *why, size_t n)
{
    char *path = ad_path_resolve(dir, v);
    struct stat st;
    if (path == NULL)
        return;
    if (stat(path, &st) != 0)
        snprintf(why, n, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, n, "not a regular file");
    else if ((st.st_mode & 077) != 0)
        snprintf(why, n,
                 "mode %03o: it must be readable by its owner only (0600 or "
                 "0400)",
                 (unsigned)(st.st_mode & 0777));
    else if (st.st_size < 32 || st.st_size > 4096)
        snprintf(why, n, "it holds %lld bytes: a secret is 32 to 4096",
                 (long long)st.st_size);
    else if (access(path, R_OK) != 0)
        snprintf(why, n, "%s", strerror(errno));
    if (why[0] == 0) {
        free(c->secret_file);
        c->secret_file = path;
    } else {
        free(path);
    }
}

// A TLS file: it must be there and readable (tp_node_start checks what it
// holds).
static void
set_tls_file(char **slot, const char *v, const char *dir, char *why, size_t n)
{
    char *path = ad_path_resolve(dir, v);
    if (path == NULL)
        return;
    struct stat st;
    if (stat(path, &st) != 0)
        snprintf(why, n, "%s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, n, "not a regular file");
    else if (access(path, R_OK) != 0)
        snprintf(why, n, "%s", strerror(errno));
    if (why[0] == 0) {
        free(*slot);
        *slot = path;
    } else {
        free(path);
    }
}

static void
set_threads(ad_config *c, const char *v, char *why, size_t n)
{
    char *end;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (strcmp(v, "auto") == 0)
        c->threads = 0;
    else if (*end != 0 || errno != 0 || t < 1 || t > 1024)
        snprintf(why, n, "expected auto or a whole number from 1 to 1024");
    else
        c->threads = (unsigned)t;
}

static void
set_wait_sample(ad_config *c, const char *v, char *why, size_t n)
{
    char *end;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (*end != 0 || end == v || errno != 0 || t < 1 || t > 65536)
        snprintf(why, n, "expected a whole number from 1 to 65536");
    else
        c->wait_sample = (int)t;
}

static void
set_control(ad_config *c, const char *v, char *why, size_t n)
{
    if (strcmp(v, "off") == 0) {
        free(c->control);
        c->control = NULL;
    } else if (v[0] != '/') {
        snprintf(why, n, "expected off or an absolute path");
    } else if (strlen(v) >= AD_SUN_PATH_MAX) {
        snprintf(why, n, "a socket path is at most %d bytes",
                 AD_SUN_PATH_MAX - 1);
    } else {
        set_str(&c->control, v);
    }
}

static void
set_metrics(ad_config *c, const char *v, char *why, size_t n)
{
    if (ad_addr_ok(v, why, n))
        set_str(&c->metrics, v);
}

static void
set_bool(bool *field, const char *v, char *why, size_t n)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *field = true;
            return;
        }
        if (strcmp(v, no[i]) == 0) {
            *field = false;
            return;
        }
    }
    snprintf(why, n, "expected yes or no");
}

static void
set_log_level(ad_config *c, const char *v, char *why, size_t n)
{
    int level = ad_log_level_parse(v);
    if (level < 0)
        snprintf(why, n, "expected err, warning, info or debug");
    else
        c->log_level = level;
}

static void
set_shutdown_timeout(ad_config *c, const char *v, char *why, size_t n)
{
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (strcmp(v, "infinity") == 0)
        c->shutdown_timeout_ms = AD_INFINITY;
    else if (*end != 0 || errno != 0 || !(s >= 0.001 && s <= 86400))
        snprintf(why, n,
                 "expected infinity or seconds from 0.001 to 86400 (one day)");
    else
        c->shutdown_timeout_ms = (int)lround(s * 1000);
}

void
ad_node_key_set(ad_config *c, int k, const char *value, const char *dir,
                char *why, size_t size)
{
    why[0] = 0;
    switch (k) {
    case AD_KEY_NAME:
        set_name(c, value, why, size);
        break;
    case AD_KEY_LISTEN:
        set_listen(c, value, why, size);
        break;
    case AD_KEY_SECRET_FILE:
        set_secret(c, value, dir, why, size);
        break;
    case AD_KEY_TLS_CERT:
        set_tls_file(&c->tls_cert, value, dir, why, size);
        break;
    case AD_KEY_TLS_KEY:
        set_tls_file(&c->tls_key, value, dir, why, size);
        break;
    case AD_KEY_TLS_CA:
        set_tls_file(&c->tls_ca, value, dir, why, size);
        break;
    case AD_KEY_THREADS:
        set_threads(c, value, why, size);
        break;
    case AD_KEY_WAIT_SAMPLE:
        set_wait_sample(c, value, why, size);
        break;
    case AD_KEY_CONTROL:
        set_control(c, value, why, size);
        break;
    case AD_KEY_METRICS:
        set_metrics(c, value, why, size);
        break;
    case AD_KEY_METRICS_ALLOW_REMOTE:
        set_bool(&c->metrics_allow_remote, value, why, size);
        break;
    case AD_KEY_MESH:
        set_bool(&c->mesh, value, why, size);
        break;
    case AD_KEY_SEEDS:
        if (tp_node_seeds_check(value) != 0)
            snprintf(why, size,
                     "expected NAME@HOST:PORT entries separated by commas "
                     "or blanks, HOST an address or a DNS name");
        else
            set_str(&c->seeds, value);
        break;
    case AD_KEY_LOG_LEVEL:
        set_log_level(c, value, why, size);
        break;
    case AD_KEY_SHUTDOWN_TIMEOUT:
        set_shutdown_timeout(c, value, why, size);
        break;
    }
}

char *
ad_control_default(const char *name)
{
    const char *own = getenv("TROUPE_RUNTIME_DIR");
    const char *rd = getenv("RUNTIME_DIRECTORY");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char *path = NULL;
    int n;
    // systemd lists several directories separated by ':'; take one only.
    if (own != NULL && own[0] != '\0')
        n = asprintf(&path, "%s/%s.sock", own, name);
    else if (rd != NULL && rd[0] == '/' && strchr(rd, ':') == NULL)
        n = asprintf(&path, "%s/%s.sock", rd, name);
    else if (geteuid() == 0)
        n = asprintf(&path, "/run/troupe/%s.sock", name);
    else if (xdg != NULL && xdg[0] == '/')
        n = asprintf(&path, "%s/troupe/%s.sock", xdg, name);
    else
        n = asprintf(&path, "/tmp/troupe-%u/%s.sock", (unsigned)geteuid(),
                     name);
    return n < 0 ? NULL : path;
}

// ---- strings and paths -----------------------------------------------------

char *
ad_trim(char *s)
{
    s += strspn(s, " \t\r\n\v\f");
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n\v\f", s[n - 1]) != NULL)
        s[--n] = 0;
    return s;
}

char *
ad_unquote(const char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        return strndup(s + 1, n - 2);
    return strdup(s);
}

// Levenshtein distance, for words short enough to be keys.
static size_t
distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *
ad_suggest(const char *word, const char *const *names)
{
    const char *best = NULL;
    size_t best_d = 3; // two edits at most, and fewer than half the word
    for (size_t i = 0; names[i] != NULL; i++) {
        size_t d = distance(word, names[i]);
        if (d < best_d && 2 * d < strlen(names[i])) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

char *
ad_path_resolve(const char *dir, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    return asprintf(&out, "%s/%s", dir, path) < 0 ? NULL : out;
}

char *
ad_config_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return NULL;
    char *dir = realpath(dirname(copy), NULL);
    free(copy);
    return dir;
}

// ---- [app] sections --------------------------------------------------------

void
ad_app_conf_clear(ad_app_conf *a)
{
    free(a->name);
    free(a->module);
    for (size_t i = 0; i < a->nargs; i++) {
        free(a->args[i].key);
        free(a->args[i].value);
    }
    free(a->args);
    *a = (ad_app_conf){0};
}

void
ad_app_conf_free(ad_app_conf *a)
{
    if (a == NULL)
        return;
    ad_app_conf_clear(a);
    free(a);
}

ad_app_conf *
ad_app_conf_dup(const ad_app_conf *a)
{
    ad_app_conf *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->line = a->line;
    d->module_line = a->module_line;
    d->name = strdup(a->name);
    d->module = strdup(a->module);
    d->args = calloc(a->nargs ? a->nargs : 1, sizeof *d->args);
    bool ok = d->name != NULL && d->module != NULL && d->args != NULL;
    for (size_t i = 0; ok && i < a->nargs; i++) {
        ad_kv *kv = &d->args[i];
        kv->key = strdup(a->args[i].key);
        kv->value = strdup(a->args[i].value);
        kv->line = a->args[i].line;
        d->nargs++;
        ok = kv->key != NULL && kv->value != NULL;
    }
    if (!ok) {
        ad_app_conf_free(d);
        return NULL;
    }
    return d;
}

bool
ad_app_conf_same(const ad_app_conf *a, const ad_app_conf *b)
{
    return strcmp(a->module, b->module) == 0 && ad_app_args_same(a, b);
}

bool
ad_app_args_same(const ad_app_conf *a, const ad_app_conf *b)
{
    if (a->nargs != b->nargs)
        return false;
    for (size_t i = 0; i < a->nargs; i++)
        if (strcmp(a->args[i].key, b->args[i].key) != 0 ||
            strcmp(a->args[i].value, b->args[i].value) != 0)
            return false;
    return true;
}
