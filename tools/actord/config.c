// SPDX-License-Identifier: MIT
// actord's configuration: an INI file read with libinih. A [node] section
// sets the node's name, addresses, peers, threads and logging; each
// [app NAME] section names a module and the arguments passed to it.
//
// libinih splits "key = value" lines, strips inline comments and calls
// back for each pair. It is fed through a reader of our own that counts
// lines (the handler is not told the line number), strips indentation (so
// an indented key is never taken for a continuation of the previous
// value), reports lines libinih would truncate or reject, and reads the
// section headers itself: libinih does not report empty sections or
// repeated ones, and cuts long section names short. Every problem is
// recorded as "FILE:LINE: reason" and reading goes on, so that one run
// reports them all.
#include "actord.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confval.h"

typedef enum section {
    SEC_NONE = 0, // before the first header
    SEC_NODE,
    SEC_APP,
    SEC_SKIP, // a header already reported: its keys are ignored
} section;

typedef struct parse {
    FILE *f;
    char *line_buf;
    size_t line_cap;
    int line;
    ad_config *cfg;
    ad_diag *diag;
    char *dir; // the configuration's directory, for relative paths
    section sec;
    size_t app;             // the current [app], an index into cfg->apps
    int seen[AD_NODE_KEYS]; // line where each [node] key was set
    bool oom;
} parse;

#define ERR(p, ...) ad_diag_add((p)->diag, __VA_ARGS__)

// ---- section headers -------------------------------------------------------

static bool
app_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TP_NAME_MAX)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789_.-") == n;
}

static void
add_app(parse *p, const char *name)
{
    ad_config *c = p->cfg;
    for (size_t i = 0; i < c->napps; i++)
        if (strcmp(c->apps[i].name, name) == 0) {
            ERR(p, "%s:%d: duplicate application \"%s\" (first at line %d)",
                c->path, p->line, name, c->apps[i].line);
            p->sec = SEC_SKIP;
            return;
        }
    ad_app_conf *apps = realloc(c->apps, (c->napps + 1) * sizeof *apps);
    if (apps == NULL) {
        p->oom = true;
        return;
    }
    c->apps = apps;
    apps[c->napps] = (ad_app_conf){.name = strdup(name), .line = p->line};
    if (apps[c->napps].name == NULL) {
        p->oom = true;
        return;
    }
    p->app = c->napps++;
    p->sec = SEC_APP;
}

// Reads "[node]" or "[app NAME]" (inner blanks allowed, then a comment).
static void
header(parse *p, char *s)
{
    p->sec = SEC_SKIP;
    char *end = strchr(s, ']');
    if (end == NULL) {
        ERR(p, "%s:%d: section header without \"]\"", p->cfg->path, p->line);
        return;
    }
    *end = 0;
    char *rest = end + 1 + strspn(end + 1, " \t");
    if (*rest != 0 && *rest != ';' && *rest != '#') {
        ERR(p, "%s:%d: unexpected text after the section header: %s",
            p->cfg->path, p->line, rest);
        return;
    }
    char *name = ad_trim(s + 1);
    if (strcmp(name, "node") == 0) {
        if (p->cfg->node_line != 0) {
            ERR(p, "%s:%d: duplicate section [node] (first at line %d)",
                p->cfg->path, p->line, p->cfg->node_line);
            return;
        }
        p->cfg->node_line = p->line;
        p->sec = SEC_NODE;
    } else if (strncmp(name, "app", 3) == 0 &&
               (name[3] == 0 || name[3] == ' ' || name[3] == '\t')) {
        char *app = ad_trim(name + 3);
        if (*app == 0)
            ERR(p, "%s:%d: [app] needs a name: [app NAME]", p->cfg->path,
                p->line);
        else if (!app_name_ok(app))
            ERR(p,
                "%s:%d: invalid application name \"%s\": 1 to %d of "
                "A-Z a-z 0-9 _ . -",
                p->cfg->path, p->line, app, TP_NAME_MAX);
        else
            add_app(p, app);
    } else {
        static const char *const known[] = {"node", "app", NULL};
        const char *like = ad_suggest(name, known);
        ERR(p, "%s:%d: unknown section [%s]%s%s%s", p->cfg->path, p->line,
            name, like ? " (did you mean [" : "", like ? like : "",
            like ? strcmp(like, "app") == 0 ? " NAME]?)" : "]?)" : "");
    }
}

// ---- the reader libinih calls ----------------------------------------------

// Hands libinih one line at a time, normalised; see the file's comment.
// Lines it must not see (headers, mistakes) become empty lines.
static char *
reader(char *str, int num, void *stream)
{
    parse *p = stream;
    ssize_t len = getline(&p->line_buf, &p->line_cap, p->f);
    if (len < 0)
        return NULL;
    p->line++;
    snprintf(str, (size_t)num, "\n");
    char *s = p->line_buf;
    if ((size_t)len != strlen(s)) {
        ERR(p, "%s:%d: NUL byte in line", p->cfg->path, p->line);
        return str;
    }
    if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
        s += 3; // UTF-8 byte order mark
    s = ad_trim(s);
    if (*s == 0 || *s == ';' || *s == '#')
        return str;
    if (*s == '[') {
        header(p, s);
        return str;
    }
    if (strpbrk(s, "=:") == NULL) {
        ERR(p, "%s:%d: expected \"key = value\" or \"[section]\", got: %s",
            p->cfg->path, p->line, s);
        return str;
    }
    if (strlen(s) + 2 >= (size_t)num) {
        ERR(p, "%s:%d: line longer than %d bytes", p->cfg->path, p->line,
            num - 3);
        return str;
    }
    snprintf(str, (size_t)num, "%s\n", s);
    return str;
}

// ---- keys ------------------------------------------------------------------

static void
node_key(parse *p, const char *key, const char *value)
{
    int k = ad_node_key_find(key);
    if (k < 0) {
        const char *like = ad_suggest(key, ad_node_key_names);
        ERR(p, "%s:%d: unknown key \"%s\" in [node]%s%s%s", p->cfg->path,
            p->line, key, like ? " (did you mean \"" : "", like ? like : "",
            like ? "\"?)" : "");
        return;
    }
    // peers may take several lines (a line holds 197 bytes): they add up.
    if (p->seen[k] != 0 && k != AD_KEY_PEERS) {
        ERR(p, "%s:%d: duplicate key \"%s\" in [node] (first at line %d)",
            p->cfg->path, p->line, key, p->seen[k]);
        return;
    }
    if (p->seen[k] == 0)
        p->seen[k] = p->line;
    char why[256] = "";
    if (*value == 0)
        snprintf(why, sizeof why, "empty value");
    else if (k == AD_KEY_PEERS)
        p->oom |= !ad_peers_add(p->cfg, value, p->line, why, sizeof why);
    else
        ad_node_key_set(p->cfg, k, value, p->dir, why, sizeof why);
    if (why[0] != 0)
        ERR(p, "%s:%d: invalid %s \"%s\": %s", p->cfg->path, p->line, key,
            value, why);
}

static void
app_key(parse *p, const char *key, const char *value)
{
    ad_app_conf *a = &p->cfg->apps[p->app];
    if (strcmp(key, "module") == 0) {
        if (a->module_line != 0) {
            ERR(p,
                "%s:%d: duplicate key \"module\" in [app %s] (first at "
                "line %d)",
                p->cfg->path, p->line, a->name, a->module_line);
            return;
        }
        a->module_line = p->line;
        if (*value == 0) {
            ERR(p, "%s:%d: invalid module \"\": empty value", p->cfg->path,
                p->line);
            return;
        }
        if ((a->module = ad_path_resolve(p->dir, value)) == NULL)
            p->oom = true;
        return;
    }
    for (size_t i = 0; i < a->nargs; i++)
        if (strcmp(a->args[i].key, key) == 0) {
            ERR(p,
                "%s:%d: duplicate key \"%s\" in [app %s] (first at line "
                "%d)",
                p->cfg->path, p->line, key, a->name, a->args[i].line);
            return;
        }
    ad_kv *args = realloc(a->args, (a->nargs + 1) * sizeof *args);
    if (args == NULL) {
        p->oom = true;
        return;
    }
    a->args = args;
    ad_kv *kv = &args[a->nargs];
    *kv = (ad_kv){.key = strdup(key), .value = strdup(value), .line = p->line};
    if (kv->key == NULL || kv->value == NULL) {
        free(kv->key);
        free(kv->value);
        p->oom = true;
        return;
    }
    a->nargs++;
}

// libinih's callback: one "key = value" pair of the current line.
static int
handler(void *user, const char *section_name, const char *key,
        const char *value)
{
    parse *p = user;
    (void)section_name; // ours is exact: see header()
    if (*key == 0) {
        ERR(p, "%s:%d: empty key", p->cfg->path, p->line);
        return 1;
    }
    char *v = ad_unquote(value);
    if (v == NULL) {
        p->oom = true;
        return 1;
    }
    switch (p->sec) {
    case SEC_NONE:
        ERR(p, "%s:%d: key \"%s\" outside any section (start with [node])",
            p->cfg->path, p->line, key);
        break;
    case SEC_NODE:
        node_key(p, key, v);
        break;
    case SEC_APP:
        app_key(p, key, v);
        break;
    case SEC_SKIP:
        break;
    }
    free(v);
    return 1; // keep reading: every mistake is reported
}

// ---- after the last line ---------------------------------------------------

static void
check_whole(parse *p)
{
    ad_config *c = p->cfg;
    if (c->node_line == 0)
        ERR(p, "%s: no [node] section", c->path);
    else if (c->name == NULL && p->seen[AD_KEY_NAME] == 0)
        ERR(p, "%s:%d: [node] has no name", c->path, c->node_line);
    int sl = p->seen[AD_KEY_SECRET_FILE], ll = p->seen[AD_KEY_LISTEN];
    if (c->secret_file != NULL && c->listen == NULL && ll == 0)
        ERR(p,
            "%s:%d: secret_file is set but listen is not: only a node that "
            "listens uses a secret",
            c->path, sl);
    int tl = p->seen[AD_KEY_TLS_CERT]  ? p->seen[AD_KEY_TLS_CERT]
             : p->seen[AD_KEY_TLS_KEY] ? p->seen[AD_KEY_TLS_KEY]
                                       : p->seen[AD_KEY_TLS_CA];
    int tn = (p->seen[AD_KEY_TLS_CERT] != 0) + (p->seen[AD_KEY_TLS_KEY] != 0) +
             (p->seen[AD_KEY_TLS_CA] != 0);
    if (tn != 0 && tn != 3)
        ERR(p, "%s:%d: TLS needs tls_cert, tls_key and tls_ca together",
            c->path, tl);
    if (tn != 0 && c->listen == NULL && ll == 0)
        ERR(p,
            "%s:%d: tls_cert is set but listen is not: only a node that "
            "listens talks to peers",
            c->path, tl);
    if (c->npeers != 0 && c->listen == NULL && ll == 0)
        ERR(p,
            "%s:%d: peers is set but listen is not: only a node that listens "
            "connects to peers",
            c->path, c->peers[0].line);
    if (c->seeds != NULL && c->listen == NULL && ll == 0)
        ERR(p,
            "%s:%d: seeds is set but listen is not: only a node that listens "
            "connects to seeds",
            c->path, p->seen[AD_KEY_SEEDS]);
    if (c->mesh && c->listen == NULL && ll == 0)
        ERR(p,
            "%s:%d: mesh is on but listen is not: only a node that listens "
            "joins a mesh",
            c->path, p->seen[AD_KEY_MESH]);
    for (size_t i = 0; i < c->npeers && c->name != NULL && c->listen != NULL;
         i++)
        if (ad_peer_is_self(c->peers[i].node, c->name, c->listen))
            ERR(p,
                "%s:%d: invalid peers: \"%s\" is this node itself (name and "
                "listen)",
                c->path, c->peers[i].line, c->peers[i].node);
    if (c->listen != NULL && c->secret_file == NULL && sl == 0 &&
        !ad_addr_is_loopback(c->listen))
        ERR(p,
            "%s:%d: listening on %s needs secret_file (only loopback may go "
            "without)",
            c->path, ll, c->listen);
    if (c->metrics != NULL && !c->metrics_allow_remote &&
        !ad_addr_is_loopback(c->metrics))
        ERR(p,
            "%s:%d: metrics on %s needs metrics_allow_remote = yes (only "
            "loopback is allowed by default)",
            c->path, p->seen[AD_KEY_METRICS], c->metrics);
    for (size_t i = 0; i < c->napps; i++)
        if (c->apps[i].module_line == 0)
            ERR(p, "%s:%d: [app %s] has no module", c->path, c->apps[i].line,
                c->apps[i].name);
    if (c->name != NULL && p->seen[AD_KEY_CONTROL] == 0) {
        c->control = ad_control_default(c->name);
        if (c->control == NULL)
            p->oom = true;
        else if (c->control[0] != '/')
            ERR(p,
                "%s:%d: the default control socket %s is not an absolute "
                "path: TROUPE_RUNTIME_DIR must be one",
                c->path, c->node_line, c->control);
        else if (strlen(c->control) >= AD_SUN_PATH_MAX)
            ERR(p,
                "%s:%d: the default control socket %s is too long: set "
                "control",
                c->path, c->node_line, c->control);
    }
}

static int
parse_file(parse *p)
{
    struct stat st;
    if (fstat(fileno(p->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        ERR(p, "%s: not a regular file", p->cfg->path);
        return EX_CONFIG;
    }
    int rc = ini_parse_stream(reader, p, handler, p);
    if (rc == -2 || p->oom)
        return EX_OSERR;
    if (rc != 0 && p->diag->n == 0)
        ERR(p, "%s:%d: syntax error", p->cfg->path, rc);
    if (ferror(p->f)) {
        ERR(p, "%s:%d: read error: %s", p->cfg->path, p->line,
            strerror(errno));
        return EX_CONFIG;
    }
    check_whole(p);
    if (p->oom)
        return EX_OSERR;
    return p->diag->n != 0 ? EX_CONFIG : 0;
}

// The line a message of `path` names, 0 for the whole file.
static long
line_of(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) != 0 || msg[n] != ':')
        return 0;
    return strtol(msg + n + 1, NULL, 10);
}

// Puts the messages from `from` on in line order (checks made after the
// last line come last otherwise); stable, and the lists are short.
static void
sort_by_line(ad_diag *d, size_t from, const char *path)
{
    for (size_t i = from + 1; i < d->n; i++) {
        char *m = d->msg[i];
        long line = line_of(m, path);
        size_t j = i;
        for (; j > from && line_of(d->msg[j - 1], path) > line; j--)
            d->msg[j] = d->msg[j - 1];
        d->msg[j] = m;
    }
}

int
ad_config_load(ad_config **out, const char *path, ad_diag *diag)
{
    ad_config *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        return EX_OSERR;
    }
    c->log_level = TP_LOG_INFO;
    c->shutdown_timeout_ms = AD_SHUTDOWN_TIMEOUT_DEFAULT_MS;
    c->wait_sample = AD_WAIT_SAMPLE_DEFAULT;
    size_t before = diag->n;
    parse p = {.cfg = c, .diag = diag};
    int rc;
    if ((p.f = fopen(path, "re")) == NULL) {
        ERR(&p, "%s: %s", path, strerror(errno));
        rc = EX_CONFIG;
    } else if ((p.dir = ad_config_dir(path)) == NULL) {
        ERR(&p, "%s: cannot resolve its directory: %s", path, strerror(errno));
        rc = EX_CONFIG;
    } else {
        rc = parse_file(&p);
    }
    if (p.f != NULL)
        fclose(p.f);
    free(p.line_buf);
    free(p.dir);
    if (rc == 0 && diag->n != before)
        rc = EX_CONFIG;
    sort_by_line(diag, before, path);
    if (rc != 0) {
        ad_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
ad_config_free(ad_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->napps; i++)
        ad_app_conf_clear(&c->apps[i]);
    free(c->apps);
    for (size_t i = 0; i < c->npeers; i++)
        free(c->peers[i].node);
    free(c->peers);
    free(c->path);
    free(c->name);
    free(c->listen);
    free(c->secret_file);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_ca);
    free(c->seeds);
    free(c->control);
    free(c->metrics);
    free(c);
}
