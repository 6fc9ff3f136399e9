// SPDX-License-Identifier: MIT
// Applications: loading a module with dlopen, checking its descriptor
// (include/troupe/app.h), starting its root supervisor and watching it.
//
// A watcher actor per running application monitors the root supervisor
// and, when it exits, writes an ad_event to the node's event pipe, where
// the main thread (node.c) sees it next to the signals. That is how
// actord waits for an ordered shutdown to finish without blocking a
// scheduler thread, and how it notices a root that gave up on its own.
#include "actord.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TAG_PING = 1, TAG_PONG };

// ---- the actors ------------------------------------------------------------

static int
watch_init(tp_ctx *ctx, void *state, void *arg)
{
    ad_watch *w = state;
    *w = *(const ad_watch *)arg;
    return tp_monitor(ctx, w->root, NULL); // DOWN at once if already gone
}

static int
watch_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    const ad_watch *w = state;
    if (msg->tag != TP_TAG_DOWN)
        return TP_OK;
    const tp_down_msg *down = msg->data;
    ad_event ev = {.id = w->id, .reason = down->reason};
    snprintf(ev.text, sizeof ev.text, "%s", down->text);
    // One record under PIPE_BUF: written whole or not at all. The pipe is
    // non-blocking, and it cannot fill: the main thread drains it and
    // each application writes to it once.
    ssize_t n;
    do
        n = write(w->fd, &ev, sizeof ev);
    while (n < 0 && errno == EINTR);
    return TP_STOP;
}

static const tp_behaviour watcher = {.name = "actord_watch",
                                     .state_size = sizeof(ad_watch),
                                     .init = watch_init,
                                     .handle = watch_handle};

int
ad_watch_start(tp_system *sys, ad_watch *w)
{
    return tp_spawn(sys, &watcher, w, NULL, NULL);
}

static int
health_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    if (msg->tag == TAG_PING && msg->ref != 0)
        return tp_reply(ctx, TAG_PONG, NULL, 0);
    return TP_OK;
}

static const tp_behaviour health = {.name = "actord_health",
                                    .handle = health_handle};

int
ad_health_start(tp_system *sys, tp_pid *out)
{
    return tp_spawn(sys, &health, NULL, NULL, out);
}

int
ad_health_ping(tp_system *sys, tp_pid pid, int timeout_ms)
{
    tp_call_reply reply = {0};
    int rc = tp_call(sys, pid, TAG_PING, NULL, 0, timeout_ms, &reply);
    free(reply.data);
    return rc;
}

// ---- loading ---------------------------------------------------------------

// The arguments as the module sees them; they point into `conf`.
static tp_app_arg *
args_of(const ad_app_conf *conf, tp_app_args *out)
{
    tp_app_arg *v = calloc(conf->nargs ? conf->nargs : 1, sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < conf->nargs; i++)
        v[i] = (tp_app_arg){conf->args[i].key, conf->args[i].value};
    *out = (tp_app_args){.app = conf->name, .v = v, .n = conf->nargs};
    return v;
}

// What is wrong with descriptor `d`, or NULL.
static const char *
descriptor_problem(const tp_app_descriptor *d, char *why, size_t size)
{
    if (d->abi != TP_APP_ABI)
        snprintf(why, size,
                 "built for application ABI %u, this actord loads ABI %d",
                 (unsigned)d->abi, TP_APP_ABI);
    else if (d->troupe_major != TP_VERSION_MAJOR ||
             (TP_VERSION_MAJOR == 0 && d->troupe_minor != TP_VERSION_MINOR))
        snprintf(why, size,
                 "built against troupe %u.%u, this actord runs troupe %s",
                 (unsigned)d->troupe_major, (unsigned)d->troupe_minor,
                 TP_VERSION_STRING);
    else if (d->start == NULL)
        snprintf(why, size, "its descriptor has no start function");
    else
        return NULL;
    return why;
}

// Runs the module's check, if it has one. Returns 0 or EX_CONFIG/EX_OSERR.
static int
check_args(ad_app *app, const char *path, ad_diag *diag)
{
    if (app->desc->check == NULL)
        return 0;
    tp_app_args args;
    tp_app_arg *v = args_of(app->conf, &args);
    if (v == NULL)
        return EX_OSERR;
    char err[256] = "";
    int rc = app->desc->check(&args, err, sizeof err);
    free(v);
    if (rc == 0)
        return 0;
    ad_diag_add(diag, "%s:%d: application %s: %s", path, app->conf->line,
                app->conf->name, err[0] ? err : tp_strerror(rc));
    return EX_CONFIG;
}

// Opens the module at `path` through a name of its descriptor under /proc
// that no load used before. dlopen first looks a name up among the names
// modules were loaded or found under, so a new file at the path of a
// module still loaded (an application upgraded, or re-added, after its
// file was replaced) would get the old code, and so would a second file
// opened under a /proc name reused with its descriptor's number. The file
// itself is still recognised: opening a loaded one again hands back its
// module. Returns the handle, or NULL with why in `why`. Main thread.
static void *
open_module(const char *path, char *why, size_t size)
{
    static uint32_t loads; // spelled into the name: "./" for a 1 bit
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    uint32_t k = ++loads;
    char alias[128] = "/proc/self/";
    size_t len = strlen(alias);
    for (int b = 0; b < 32; b++)
        len += (size_t)snprintf(alias + len, sizeof alias - len, "%s",
                                (k >> b) & 1 ? "./" : "/");
    snprintf(alias + len, sizeof alias - len, "fd/%d", fd);
    dlerror();
    void *h = dlopen(alias, RTLD_NOW | RTLD_LOCAL);
    close(fd);
    if (h == NULL) {
        const char *e = dlerror();
        size_t n = strlen(alias);
        if (e == NULL)
            e = "unknown error";
        else if (strncmp(e, alias, n) == 0 && strncmp(e + n, ": ", 2) == 0)
            e += n + 2; // the alias means nothing to the reader
        snprintf(why, size, "%s: %s", path, e);
    }
    return h;
}

int
ad_app_load(ad_app **out, const ad_app_conf *conf, const char *path,
            ad_diag *diag)
{
    ad_app *app = calloc(1, sizeof *app);
    if (app == NULL || (app->conf = ad_app_conf_dup(conf)) == NULL) {
        free(app);
        return EX_OSERR;
    }
    int line = conf->module_line;
    char why_open[300];
    app->handle = open_module(conf->module, why_open, sizeof why_open);
    if (app->handle == NULL) {
        ad_diag_add(diag, "%s:%d: application %s: cannot load module: %s",
                    path, line, conf->name, why_open);
        ad_app_free(app);
        return EX_CONFIG;
    }
    app->desc = dlsym(app->handle, TP_APP_SYMBOL);
    char why[160];
    int rc = 0;
    if (app->desc == NULL) {
        ad_diag_add(diag,
                    "%s:%d: application %s: %s has no \"%s\" descriptor: "
                    "not a troupe application module",
                    path, line, conf->name, conf->module, TP_APP_SYMBOL);
        rc = EX_CONFIG;
    } else if (descriptor_problem(app->desc, why, sizeof why) != NULL) {
        ad_diag_add(diag, "%s:%d: application %s: module %s: %s", path, line,
                    conf->name, conf->module, why);
        rc = EX_CONFIG;
    } else {
        rc = check_args(app, path, diag);
    }
    if (rc != 0) {
        dlclose(app->handle); // nothing of it has run but constructors
        app->handle = NULL;
        ad_app_free(app);
        return rc;
    }
    ad_log(TP_LOG_DEBUG, "module_loaded app=%s module=%s name=%s version=%s",
           conf->name, AD_Q(conf->module), AD_Q(app->desc->name),
           AD_Q(app->desc->version ? app->desc->version : "-"));
    struct stat st;
    if (stat(conf->module, &st) == 0) {
        app->dev = (unsigned long long)st.st_dev;
        app->ino = (unsigned long long)st.st_ino;
    }
    if ((app->section_module = strdup(conf->module)) == NULL) {
        ad_app_free(app); // loaded, never run: its handle stays open
        return EX_OSERR;
    }
    *out = app;
    return 0;
}

// ---- upgrading -------------------------------------------------------------

bool
ad_app_module_changed(const ad_app *app)
{
    struct stat st;
    return stat(app->conf->module, &st) == 0 &&
           ((unsigned long long)st.st_dev != app->dev ||
            (unsigned long long)st.st_ino != app->ino);
}

// What one change needs to call the new version's code_change.
typedef struct change_arg {
    const tp_app_descriptor *to;
    const char *name, *old_version;
} change_arg;

static int
change_trampoline(tp_ctx *ctx, const void *old_state, void *new_state,
                  void *arg)
{
    const change_arg *c = arg;
    return c->to->code_change(c->name, c->old_version, ctx, old_state,
                              new_state);
}

static const tp_behaviour *
named(const tp_behaviour *const *list, const char *name)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (list[i]->name != NULL && strcmp(list[i]->name, name) == 0)
            return list[i];
    return NULL;
}

static const char *
version_of(const tp_app_descriptor *d)
{
    return d->version != NULL ? d->version : "";
}

// Loads and checks the new version; on failure logs why and returns NULL.
static void *
load_new(ad_app *app, const ad_app_conf *next, const char *source,
         const tp_app_descriptor **out, ad_upgrade_result *res)
{
    const char *name = app->conf->name;
    char why_open[300];
    void *h = open_module(next->module, why_open, sizeof why_open);
    const tp_app_descriptor *d = h != NULL ? dlsym(h, TP_APP_SYMBOL) : NULL;
    char why[200] = "";
    if (h == NULL)
        snprintf(why, sizeof why, "cannot load module: %.170s", why_open);
    else if (d == NULL)
        snprintf(why, sizeof why, "no \"%s\" descriptor", TP_APP_SYMBOL);
    else if (descriptor_problem(d, why, sizeof why) != NULL)
        ;
    else if (d->behaviours == NULL || app->desc->behaviours == NULL)
        snprintf(why, sizeof why,
                 "the running and the new version must both list their "
                 "behaviours to be upgraded");
    if (why[0] == '\0' && d->check != NULL) {
        tp_app_args args;
        tp_app_arg *v = args_of(next, &args);
        char err[160] = "";
        int rc = v != NULL ? d->check(&args, err, sizeof err) : TP_ENOMEM;
        free(v);
        if (rc != 0)
            snprintf(why, sizeof why, "%s", err[0] ? err : tp_strerror(rc));
    }
    if (why[0] != '\0') {
        ad_log(TP_LOG_ERR,
               "app_upgrade_failed app=%s module=%s reason=%s via=%s", name,
               AD_Q(next->module), AD_Q(why), AD_Q(source));
        snprintf(res->error, sizeof res->error, "%s", why);
        if (h != NULL)
            dlclose(h); // nothing of it has run but constructors
        return NULL;
    }
    *out = d;
    return h;
}

// How many actors still run one of the changes' `from` (none when the
// new version is the module running: from and to are the same).
static size_t
old_users(tp_system *sys, const tp_code_change *ch, size_t k)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++)
        if (ch[i].from != ch[i].to)
            n += tp_behaviour_users(sys, ch[i].from);
    return n;
}

bool
ad_root_is_supervisor(tp_system *sys, tp_pid root)
{
    tp_actor_info info;
    return !tp_pid_is_nil(root) && tp_actor_info_get(sys, root, &info) == 0 &&
           strcmp(info.behaviour, tp_supervisor.name) == 0;
}

int
ad_app_upgrade(ad_app *app, ad_node *node, const ad_app_conf *next,
               const char *source, int timeout_ms, ad_upgrade_result *res)
{
    tp_system *sys = node->sys;
    const char *name = app->conf->name;
    const tp_app_descriptor *to;
    *res = (ad_upgrade_result){.from = version_of(app->desc)};
    void *h = load_new(app, next, source, &to, res);
    if (h == NULL)
        return TP_EINVAL;
    res->to = version_of(to);
    size_t n = 0;
    while (app->desc->behaviours[n] != NULL)
        n++;
    tp_code_change *ch = calloc(n ? n : 1, sizeof *ch);
    change_arg *args = calloc(n ? n : 1, sizeof *args);
    ad_app_conf *conf = ad_app_conf_dup(next);
    int rc = ch == NULL || args == NULL || conf == NULL ? TP_ENOMEM : 0;
    if (rc != 0)
        snprintf(res->error, sizeof res->error, "out of memory");
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const tp_behaviour *from = app->desc->behaviours[i];
        const tp_behaviour *nb =
            from->name != NULL ? named(to->behaviours, from->name) : NULL;
        if (nb == NULL) {
            if (tp_behaviour_users(sys, from) == 0)
                continue; // nothing runs it: nothing to switch
            ad_log(TP_LOG_ERR,
                   "app_upgrade_failed app=%s module=%s reason=%s "
                   "behaviour=%s",
                   name, AD_Q(next->module),
                   AD_Q("the new version has no behaviour of that name"),
                   AD_Q(from->name ? from->name : "?"));
            snprintf(res->error, sizeof res->error,
                     "the new version has no behaviour %s, which actors run",
                     from->name ? from->name : "?");
            rc = TP_EINVAL;
            break;
        }
        args[k] = (change_arg){to, from->name, version_of(app->desc)};
        ch[k] = (tp_code_change){
            .from = from,
            .to = nb,
            .change = to->code_change != NULL ? change_trampoline : NULL,
            .arg = &args[k]};
        if ((from->handle == tp_statem_handle) !=
            (nb->handle == tp_statem_handle)) {
            snprintf(res->error, sizeof res->error,
                     "behaviour %s is a state machine in one version only",
                     from->name);
            ad_log(TP_LOG_ERR,
                   "app_upgrade_failed app=%s module=%s reason=%s "
                   "behaviour=%s",
                   name, AD_Q(next->module),
                   AD_Q("a state machine in one version only"),
                   AD_Q(from->name));
            rc = TP_EINVAL;
            break;
        }
        if (nb->handle == tp_statem_handle)
            // A state machine: its new spec converts its data, and the
            // machine itself moves to a new block (statem.h).
            ch[k] = (tp_code_change){.from = from,
                                     .to = nb,
                                     .change = tp_statem_change,
                                     .discard = tp_statem_discard,
                                     .arg = (void *)nb};
        k++;
    }
    tp_upgrade_report rep = {0};
    int64_t t0 = ad_now_ms();
    if (rc == 0 && k > 0 &&
        (rc = tp_upgrade(sys, ch, k, timeout_ms, &rep)) != 0) {
        char pid[TP_PID_STRLEN] = "-";
        if (!tp_pid_is_nil(rep.failed_pid))
            tp_pid_format(rep.failed_pid, pid, sizeof pid);
        ad_log(TP_LOG_ERR,
               "app_upgrade_failed app=%s module=%s error=%s pid=%s "
               "action=rolled_back actors_held=%u",
               name, AD_Q(next->module), tp_err_name(rc), pid, rep.actors);
        snprintf(res->error, sizeof res->error,
                 "the change of %s failed (%s): rolled back, %s still runs",
                 pid, tp_err_name(rc), res->from);
    }
    size_t specs = 0;
    if (rc == 0 && k > 0) {
        // The actors switched; restarts must run the new code too. A
        // supervisor that does not answer keeps old specs: logged.
        // A root the module spawned may be no supervisor: no specs.
        if (ad_root_is_supervisor(sys, app->root) &&
            tp_sup_upgrade(sys, app->root, ch, k, timeout_ms, &specs) != 0)
            ad_log(TP_LOG_WARNING,
                   "app_upgrade_specs_incomplete app=%s specs=%zu", name,
                   specs);
        // Actors started from the old specs while the others switched (a
        // connection accepted meanwhile) run the old code: they switch
        // now, the specs being new. Each pass is all or none of them.
        for (int pass = 0; pass < 3 && old_users(sys, ch, k) > 0; pass++) {
            tp_upgrade_report more = {0};
            int again = tp_upgrade(sys, ch, k, timeout_ms, &more);
            rep.actors += more.actors;
            if (again != 0)
                break;
        }
        // Those a later pass could not switch keep the old version; the
        // others stay upgraded. Said in the log and to actorctl.
        res->stragglers = old_users(sys, ch, k);
        if (res->stragglers > 0)
            ad_log(TP_LOG_WARNING,
                   "app_upgrade_stragglers app=%s actors=%zu version=%s", name,
                   res->stragglers, AD_Q(version_of(app->desc)));
    }
    if (rc != 0) {
        free(ch);
        free(args); // none is held: tp_upgrade returned
        ad_app_conf_free(conf);
        // Nothing runs the new version (rolled back, or never switched):
        // it may go. Shims made for it hold no pointer an actor follows.
        dlclose(h);
        return rc;
    }
    // The new version runs; the old one goes once nothing points into it
    // (child specs' arguments, continuations may, for a while).
    ad_log(TP_LOG_INFO,
           "app_upgraded app=%s module=%s from=%s to=%s actors=%u specs=%zu "
           "pause_p50_us=%lld pause_max_us=%lld ms=%lld",
           name, AD_Q(next->module), AD_Q(version_of(app->desc)),
           AD_Q(version_of(to)), rep.actors, specs,
           (long long)rep.pause_p50_us, (long long)rep.pause_max_us,
           (long long)(ad_now_ms() - t0));
    ad_app_label(app, sys, false);
    if (h == app->handle)
        // The file running (dlopen found it loaded): one reference less,
        // nothing to put aside.
        dlclose(h);
    else
        ad_node_retire(node, app->handle, name, app->conf->module,
                       version_of(app->desc), app->root);
    app->handle = h;
    app->desc = to;
    // Its labels, and those of any other application of the same module.
    for (size_t i = 0; i < node->napps; i++)
        if (node->apps[i]->state == AD_APP_RUNNING)
            ad_app_label(node->apps[i], sys, true);
    ad_app_conf_free(app->conf);
    app->conf = conf;
    res->actors = rep.actors;
    res->specs = specs;
    res->pause_p50_us = (long long)rep.pause_p50_us;
    res->pause_max_us = (long long)rep.pause_max_us;
    struct stat st;
    if (stat(next->module, &st) == 0) {
        app->dev = (unsigned long long)st.st_dev;
        app->ino = (unsigned long long)st.st_ino;
    }
    // The changes' arguments are read by code_change only during
    // tp_upgrade: they may go.
    free(ch);
    free(args);
    return 0;
}

void
ad_app_free(ad_app *app)
{
    if (app == NULL)
        return;
    ad_app_conf_free(app->conf);
    free(app->section_module);
    free(app);
}

// ---- starting --------------------------------------------------------------

// Starts the root from what `start` returned. Returns 0 or a TP_E* code,
// with what went wrong in `why`.
static int
start_root(ad_app *app, tp_system *sys, const tp_app_root *root, char *why,
           size_t size)
{
    const char *name = app->conf->name;
    if ((root->spec != NULL) == !tp_pid_is_nil(root->pid)) {
        snprintf(why, size, "start must set exactly one of spec and pid");
        if (!tp_pid_is_nil(root->pid))
            tp_system_exit(sys, root->pid, TP_REASON_SHUTDOWN);
        return TP_EINVAL;
    }
    int rc;
    if (root->spec != NULL) {
        rc = tp_sup_start(sys, root->spec, &(tp_spawn_opts){.name = name},
                          &app->root);
        if (rc != 0)
            snprintf(why, size, "the root supervisor did not start");
        return rc;
    }
    app->root = root->pid;
    tp_pid named;
    if (tp_whereis(sys, name, &named) == 0 && tp_pid_eq(named, root->pid))
        return 0;
    if ((rc = tp_register(sys, name, root->pid)) != 0) {
        snprintf(why, size, "cannot register the root as %s", name);
        tp_system_exit(sys, root->pid, TP_REASON_SHUTDOWN);
    }
    return rc;
}

// Logs the start; counts the children of a root started from a spec (a
// root the module spawned might be no supervisor and never answer).
static void
log_started(ad_app *app, tp_system *sys, bool from_spec)
{
    char pid[TP_PID_STRLEN], children[32] = "";
    tp_sup_counts counts;
    tp_pid_format(app->root, pid, sizeof pid);
    if (from_spec && tp_sup_count_children(sys, app->root, 1000, &counts) == 0)
        snprintf(children, sizeof children, " children=%u", counts.active);
    ad_log(TP_LOG_INFO, "app_started app=%s root=%s%s module=%s ms=%lld",
           app->conf->name, pid, children, AD_Q(app->conf->module),
           (long long)(ad_now_ms() - app->started_ms));
}

int
ad_app_start(ad_app *app, tp_system *sys, uint64_t id, int event_fd)
{
    const ad_app_conf *conf = app->conf;
    tp_app_args args;
    tp_app_arg *v = args_of(conf, &args);
    if (v == NULL)
        return EX_OSERR;
    ad_log(TP_LOG_INFO, "app_starting app=%s module=%s", conf->name,
           AD_Q(conf->module));
    app->started_ms = ad_now_ms();
    app->stopping_ms = 0;
    tp_app_root root = {0};
    char err[256] = "";
    int rc = app->desc->start(sys, &args, &root, err, sizeof err);
    free(v);
    if (rc == 0 && (rc = start_root(app, sys, &root, err, sizeof err)) != 0 &&
        app->desc->stop != NULL)
        app->desc->stop(root.state);
    if (rc == 0) {
        app->state_ptr = root.state;
        app->watch = (ad_watch){.id = id, .root = app->root, .fd = event_fd};
        rc = ad_watch_start(sys, &app->watch);
        if (rc != 0) {
            snprintf(err, sizeof err, "cannot watch the root supervisor");
            tp_system_exit(sys, app->root, TP_REASON_KILL);
            if (app->desc->stop != NULL)
                app->desc->stop(root.state);
        }
    }
    if (rc != 0) {
        ad_log(TP_LOG_ERR, "app_start_failed app=%s module=%s error=%s%s%s",
               conf->name, AD_Q(conf->module), tp_err_name(rc),
               err[0] ? " reason=" : "", err[0] ? AD_Q(err) : "");
        app->state = AD_APP_STOPPED;
        return EX_SOFTWARE;
    }
    app->state = AD_APP_RUNNING;
    ad_app_label(app, sys, true);
    log_started(app, sys, root.spec != NULL);
    return 0;
}

void
ad_app_label(const ad_app *app, tp_system *sys, bool on)
{
    const tp_behaviour *const *list = app->desc->behaviours;
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        // A version too long for a label goes without one.
        tp_behaviour_version(sys, list[i], on ? version_of(app->desc) : NULL);
}

void
ad_app_finish(ad_app *app)
{
    if (app->state != AD_APP_RUNNING)
        return;
    app->state = AD_APP_STOPPED;
    if (app->desc->stop != NULL)
        app->desc->stop(app->state_ptr);
    app->state_ptr = NULL;
}
