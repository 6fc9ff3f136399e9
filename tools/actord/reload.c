// SPDX-License-Identifier: MIT
// SIGHUP: read the configuration again and apply what can change while
// the node runs. log_level and shutdown_timeout take effect at once, and
// so does peers: the peers added are connected to, those removed
// disconnected from. An [app] section that is new starts its application,
// one that is gone stops its application (reverse start order, as at
// shutdown). What the running node cannot change (its name, addresses,
// secret, threads, control socket, an application's module or arguments)
// is logged as needing a restart and the running value is kept, so the
// next reload reports it again. An application whose module changed (the
// section names another file, or a new file replaced the one it names)
// with the same arguments is upgraded in place (apps.c, ad_app_upgrade). A
// configuration with errors changes nothing: the errors are logged and the
// node goes on as it was.
#include "actord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static const char *
or_none(const char *s)
{
    return s != NULL ? s : "none";
}

static void
fixed(const char *key, const char *was, const char *now, int *pending)
{
    if (same_str(was, now))
        return;
    ad_log(TP_LOG_WARNING, "reload_needs_restart key=%s running=%s new=%s",
           key, AD_Q(or_none(was)), AD_Q(or_none(now)));
    ++*pending;
}

static void
fixed_num(const char *key, long was, long now, int *pending)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "%ld", was);
    snprintf(b, sizeof b, "%ld", now);
    fixed(key, a, b, pending);
}

// The [node] keys: apply the ones that can change, report the others.
static void
node_keys(ad_node *n, const ad_config *next, int *applied, int *pending)
{
    ad_config *cur = n->cfg;
    if (next->log_level != cur->log_level) {
        ad_log_set_level(next->log_level);
        ad_log(TP_LOG_INFO, "reload_applied key=log_level old=%s new=%s",
               ad_log_level_name(cur->log_level),
               ad_log_level_name(next->log_level));
        cur->log_level = next->log_level;
        ++*applied;
    }
    if (next->shutdown_timeout_ms != cur->shutdown_timeout_ms) {
        ad_log(TP_LOG_INFO,
               "reload_applied key=shutdown_timeout old_ms=%d new_ms=%d",
               cur->shutdown_timeout_ms, next->shutdown_timeout_ms);
        cur->shutdown_timeout_ms = next->shutdown_timeout_ms;
        ++*applied;
    }
    fixed("name", cur->name, next->name, pending);
    fixed("listen", cur->listen, next->listen, pending);
    fixed("secret_file", cur->secret_file, next->secret_file, pending);
    fixed("tls_cert", cur->tls_cert, next->tls_cert, pending);
    fixed("tls_key", cur->tls_key, next->tls_key, pending);
    fixed("tls_ca", cur->tls_ca, next->tls_ca, pending);
    fixed_num("threads", (long)cur->threads, (long)next->threads, pending);
    fixed_num("wait_sample", cur->wait_sample, next->wait_sample, pending);
    fixed("control", cur->control, next->control, pending);
    fixed("metrics", cur->metrics, next->metrics, pending);
    fixed_num("metrics_allow_remote", cur->metrics_allow_remote,
              next->metrics_allow_remote, pending);
    fixed_num("mesh", cur->mesh, next->mesh, pending);
    fixed("seeds", cur->seeds, next->seeds, pending);
}

static bool
has_peer(const ad_config *c, const char *node)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].node, node) == 0)
            return true;
    return false;
}

// [node] peers: disconnects from the peers dropped, connects to the new
// ones, and keeps the new list (taken from `next`).
static void
peers(ad_node *n, ad_config *next, int *applied, int *pending)
{
    ad_config *cur = n->cfg;
    if (cur->listen == NULL) {
        // Not distributed: peers need listen, and listen a restart.
        if (next->npeers != 0) {
            ad_log(TP_LOG_WARNING,
                   "reload_needs_restart key=peers running=none new=%zu",
                   next->npeers);
            ++*pending;
        }
        return;
    }
    for (size_t i = 0; i < cur->npeers; i++) {
        const char *node = cur->peers[i].node;
        if (has_peer(next, node))
            continue;
        ad_log(TP_LOG_INFO, "reload_peer_removed node=%s", AD_Q(node));
        ad_peer_disconnect(n, node);
        ++*applied;
    }
    for (size_t i = 0; i < next->npeers; i++) {
        const char *node = next->peers[i].node;
        if (has_peer(cur, node))
            continue;
        ad_log(TP_LOG_INFO, "reload_peer_added node=%s", AD_Q(node));
        ad_peer_connect(n, node);
        ++*applied;
    }
    ad_peer *v = cur->peers;
    size_t nv = cur->npeers;
    cur->peers = next->peers;
    cur->npeers = next->npeers;
    next->peers = v; // freed with `next`
    next->npeers = nv;
}

static const ad_app_conf *
conf_named(const ad_config *c, const char *name)
{
    for (size_t i = 0; i < c->napps; i++)
        if (strcmp(c->apps[i].name, name) == 0)
            return &c->apps[i];
    return NULL;
}

ad_app *
ad_node_app_running(ad_node *n, const char *name)
{
    for (size_t i = 0; i < n->napps; i++)
        if (n->apps[i]->state == AD_APP_RUNNING &&
            strcmp(n->apps[i]->conf->name, name) == 0)
            return n->apps[i];
    return NULL;
}

// Stops the running applications the new configuration drops, last
// started first, and reports those whose section changed.
static void
old_apps(ad_node *n, const ad_config *next, int *applied, int *pending,
         int *failed)
{
    for (size_t i = n->napps; i-- > 0;) {
        ad_app *app = n->apps[i];
        if (app->state != AD_APP_RUNNING)
            continue;
        const ad_app_conf *c = conf_named(next, app->conf->name);
        if (c == NULL) {
            ad_log(TP_LOG_INFO, "reload_app_removed app=%s", app->conf->name);
            ad_node_stop_app(n, app);
            ++*applied;
        } else if (!ad_app_args_same(app->conf, c)) {
            ad_log(TP_LOG_WARNING,
                   "reload_needs_restart app=%s what=arguments",
                   app->conf->name);
            ++*pending;
        } else if (strcmp(app->section_module, c->module) != 0 ||
                   ad_app_module_changed(app)) {
            // Another module named, or a new file at the module's path:
            // upgraded in place; a failure leaves the running version.
            char via[64];
            snprintf(via, sizeof via, "reload:%d", c->module_line);
            ad_upgrade_result res;
            char *section = strdup(c->module);
            if (section != NULL &&
                ad_app_upgrade(app, n, c, via, AD_UPGRADE_TIMEOUT_MS, &res) ==
                    0) {
                free(app->section_module);
                app->section_module = section;
                ++*applied;
            } else {
                free(section);
                ++*failed;
            }
        }
    }
}

// Loads and starts, in file order, the applications that are not running.
static void
new_apps(ad_node *n, const ad_config *next, int *applied, int *failed)
{
    for (size_t i = 0; i < next->napps && n->term_signal == 0; i++) {
        const ad_app_conf *c = &next->apps[i];
        if (ad_node_app_running(n, c->name) != NULL)
            continue;
        ad_log(TP_LOG_INFO, "reload_app_added app=%s", c->name);
        ad_diag diag = {0};
        ad_app *app;
        if (ad_app_load(&app, c, next->path, &diag) != 0) {
            ad_diag_print(&diag, true);
            ++*failed;
        } else if (ad_node_start_app(n, app) != 0) {
            ++*failed;
        } else {
            ++*applied;
        }
        ad_diag_free(&diag);
    }
}

void
ad_node_reload(ad_node *n)
{
    int64_t t0 = ad_now_ms();
    ad_log(TP_LOG_INFO, "reloading config=%s", AD_Q(n->cfg->path));
    ad_notify("RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=Reloading",
              (long long)t0 * 1000);
    ad_diag diag = {0};
    ad_config *next = NULL;
    if (ad_config_load(&next, n->cfg->path, &diag) != 0) {
        ad_diag_print(&diag, true);
        ad_log(TP_LOG_ERR, "reload_failed errors=%zu action=keep_running",
               diag.n);
        ad_diag_free(&diag);
        ad_node_ready(n);
        return;
    }
    ad_diag_free(&diag);
    int applied = 0, pending = 0, failed = 0;
    node_keys(n, next, &applied, &pending);
    peers(n, next, &applied, &pending);
    old_apps(n, next, &applied, &pending, &failed);
    new_apps(n, next, &applied, &failed);
    ad_config_free(next);
    ad_log(failed ? TP_LOG_ERR : TP_LOG_INFO,
           "reloaded applied=%d needs_restart=%d failed=%d ms=%lld", applied,
           pending, failed, (long long)(ad_now_ms() - t0));
    ad_node_ready(n);
}
