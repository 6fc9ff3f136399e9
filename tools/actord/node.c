// SPDX-License-Identifier: MIT
// The node's life: create the system, make it a node, open the control
// socket and /metrics, spawn the nodes watcher and connect to the peers
// (peers.c), start the applications in configuration order, tell
// systemd it is ready; then wait in one poll() on a signalfd and on the
// pipe the watcher actors write to. SIGTERM and SIGINT stop the
// applications in reverse start order, each waited for; SIGHUP reloads
// (reload.c); a root supervisor that exits on its own stops the node with
// status 1, as a permanent application does in Erlang/OTP.
//
// No signal handler runs here: the signals are blocked in every thread
// from the start of main() and read from the signalfd by the main thread.
#include "actord.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

int64_t
ad_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---- waiting ---------------------------------------------------------------

static void
on_signal(ad_node *n, int sig)
{
    if (sig == SIGHUP) {
        if (n->stopping)
            ad_log(TP_LOG_INFO, "reload_ignored signal=SIGHUP stopping=yes");
        else
            n->hup = true;
        return;
    }
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (n->term_signal == 0) {
        n->term_signal = sig;
        ad_log(TP_LOG_INFO, "stop_requested signal=%s", name);
    } else if (!n->term_again) {
        n->term_again = true;
        ad_log(TP_LOG_WARNING,
               "stop_requested_again signal=%s action=kill_remaining", name);
    }
}

// ---- control requests for actord itself -----------------------------------
// The control socket is the runtime's; ops it does not serve come here
// (tp_control_serve), on its I/O thread, which must not block: they are
// queued for the main thread, woken through the event pipe, which runs
// them and answers.

#define CTL_EVENT UINT64_MAX // an ad_event id no application has

typedef struct ad_ctl_req {
    struct ad_ctl_req *next;
    tp_control_call *call;
    char app[TP_NAME_MAX + 1];
    char *module;
} ad_ctl_req;

static void
ctl_error(tp_control_call *call, const char *why)
{
    const char *k[] = {"error"}, *v[] = {why};
    tp_control_answer(call, false, k, v, 1);
}

static const char *
ctl_field(const char *const *keys, const char *const *values, size_t n,
          const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

// On the I/O thread: queues an upgrade, answers anything else at once.
static void
ctl_request(void *arg, tp_control_call *call, const char *op,
            const char *const *keys, const char *const *values, size_t n)
{
    ad_node *node = arg;
    if (strcmp(op, "upgrade") != 0) {
        ctl_error(call, "unknown op");
        return;
    }
    const char *app = ctl_field(keys, values, n, "app");
    const char *module = ctl_field(keys, values, n, "module");
    if (app == NULL || module == NULL || app[0] == '\0' ||
        strlen(app) > TP_NAME_MAX || module[0] != '/') {
        ctl_error(call, "upgrade needs \"app\" and an absolute \"module\"");
        return;
    }
    ad_ctl_req *r = calloc(1, sizeof *r);
    if (r == NULL || (r->module = strdup(module)) == NULL) {
        free(r);
        ctl_error(call, "out of memory");
        return;
    }
    r->call = call;
    snprintf(r->app, sizeof r->app, "%s", app);
    pthread_mutex_lock(&node->ctl_lock);
    ad_ctl_req **tail = &node->ctl_reqs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = r;
    pthread_mutex_unlock(&node->ctl_lock);
    ad_event ev = {.id = CTL_EVENT};
    ssize_t w;
    do // one record under PIPE_BUF; a full pipe already wakes the loop
        w = write(node->event[1], &ev, sizeof ev);
    while (w < 0 && errno == EINTR);
}

// On the main thread: an upgrade asked by actorctl.
static void
ctl_upgrade(ad_node *n, ad_ctl_req *r)
{
    ad_app *app = ad_node_app_running(n, r->app);
    char why[300];
    if (app == NULL) {
        snprintf(why, sizeof why, "no application \"%s\" runs", r->app);
        ctl_error(r->call, why);
        return;
    }
    if (access(r->module, R_OK) != 0) {
        snprintf(why, sizeof why, "cannot read %s: %s", r->module,
                 strerror(errno));
        ctl_error(r->call, why);
        return;
    }
    ad_app_conf *next = ad_app_conf_dup(app->conf);
    char *module = strdup(r->module);
    if (next == NULL || module == NULL) {
        ad_app_conf_free(next);
        free(module);
        ctl_error(r->call, "out of memory");
        return;
    }
    free(next->module);
    next->module = module;
    ad_upgrade_result res;
    int rc =
        ad_app_upgrade(app, n, next, "actorctl", AD_UPGRADE_TIMEOUT_MS, &res);
    ad_app_conf_free(next);
    if (rc != 0) {
        ctl_error(r->call, res.error[0] ? res.error : tp_strerror(rc));
        return;
    }
    char actors[24], specs[24], p50[24], max[24];
    snprintf(actors, sizeof actors, "%u", res.actors);
    snprintf(specs, sizeof specs, "%zu", res.specs);
    snprintf(p50, sizeof p50, "%lld", res.pause_p50_us);
    snprintf(max, sizeof max, "%lld", res.pause_max_us);
    char left[24];
    snprintf(left, sizeof left, "%zu", res.stragglers);
    const char *k[] = {"app",          "from",         "to",
                       "actors",       "specs",        "module",
                       "pause_p50_us", "pause_max_us", "stragglers"};
    const char *v[] = {r->app,    res.from, res.to, actors, specs,
                       r->module, p50,      max,    left};
    // "stragglers" only when some actors kept the old version.
    tp_control_answer(r->call, true, k, v, res.stragglers > 0 ? 9 : 8);
}

// Runs the queued requests; with `refuse`, answers each with an error.
static void
ctl_run(ad_node *n, bool refuse)
{
    pthread_mutex_lock(&n->ctl_lock);
    ad_ctl_req *r = n->ctl_reqs;
    n->ctl_reqs = NULL;
    pthread_mutex_unlock(&n->ctl_lock);
    while (r != NULL) {
        ad_ctl_req *next = r->next;
        if (refuse || n->term_signal != 0)
            ctl_error(r->call, "the node is stopping");
        else
            ctl_upgrade(n, r);
        free(r->module);
        free(r);
        r = next;
    }
}

// Runs the application's stop; its module is closed once unused (during
// the final shutdown, modules stay loaded until the process ends).
static void
app_done(ad_node *n, ad_app *app)
{
    if (app->state != AD_APP_RUNNING)
        return;
    ad_app_finish(app);
    ad_app_label(app, n->sys, false);
    // Another application may run the same module: its labels stay.
    for (size_t i = 0; i < n->napps; i++)
        if (n->apps[i]->state == AD_APP_RUNNING)
            ad_app_label(n->apps[i], n->sys, true);
    if (n->stopping || app->handle == NULL)
        return;
    ad_node_retire(n, app->handle, app->conf->name, app->conf->module,
                   app->desc->version, TP_PID_NIL);
    app->handle = NULL;
    app->desc = NULL; // in the module: no longer to be read
}

static ad_app *
app_by_id(ad_node *n, uint64_t id)
{
    for (size_t i = 0; i < n->napps; i++)
        if (n->apps[i]->watch.id == id)
            return n->apps[i];
    return NULL;
}

static void
on_event(ad_node *n, const ad_event *ev)
{
    if (ev->id == CTL_EVENT) {
        ctl_run(n, false);
        return;
    }
    if (ad_peers_event(n, ev))
        return;
    ad_app *app = app_by_id(n, ev->id);
    if (app == NULL || app->state != AD_APP_RUNNING)
        return;
    char why[64];
    tp_reason_format(ev->reason, why, sizeof why);
    const char *text = ev->text[0] ? AD_Q(ev->text) : NULL;
    if (app->stopping_ms != 0) {
        ad_log(TP_LOG_INFO, "app_stopped app=%s reason=%s ms=%lld",
               app->conf->name, why,
               (long long)(ad_now_ms() - app->stopping_ms));
    } else {
        // Nobody asked: its supervisor gave up (or was killed).
        ad_log(TP_LOG_ERR, "app_exited app=%s reason=%s%s%s action=%s",
               app->conf->name, why, text ? " text=" : "", text ? text : "",
               n->stopping ? "none" : "stop_node");
        if (!n->stopping) {
            n->status = AD_EXIT_APP_DIED;
            if (n->term_signal == 0)
                n->term_signal = -1; // stop, not for a signal
        }
    }
    app_done(n, app);
}

void
ad_node_wait(ad_node *n, int timeout_ms)
{
    struct pollfd pfd[2] = {{.fd = n->sigfd, .events = POLLIN},
                            {.fd = n->event[0], .events = POLLIN}};
    if (poll(pfd, 2, timeout_ms) < 0) {
        if (errno != EINTR)
            ad_log(TP_LOG_ERR, "poll_failed error=%s", AD_Q(strerror(errno)));
        return;
    }
    struct signalfd_siginfo si;
    while (pfd[0].revents != 0 && read(n->sigfd, &si, sizeof si) == sizeof si)
        on_signal(n, (int)si.ssi_signo);
    ad_event ev;
    while (pfd[1].revents != 0 &&
           read(n->event[0], &ev, sizeof ev) == sizeof ev)
        on_event(n, &ev);
}

// ---- readiness and the watchdog --------------------------------------------

void
ad_node_ready(ad_node *n)
{
    char list[512] = "";
    size_t len = 0, running = 0;
    for (size_t i = 0; i < n->napps; i++) {
        if (n->apps[i]->state != AD_APP_RUNNING)
            continue;
        running++;
        int w = snprintf(list + len, sizeof list - len, "%s%s",
                         len ? ", " : "", n->apps[i]->conf->name);
        if (w < 0 || (size_t)w >= sizeof list - len)
            break;
        len += (size_t)w;
    }
    const char *node = tp_node_name(n->sys);
    ad_notify("READY=1\nSTATUS=Running: node %s, %zu application%s%s%s%s",
              node[0] ? node : n->cfg->name, running, running == 1 ? "" : "s",
              running ? " (" : "", list, running ? ")" : "");
}

static void
watchdog(ad_node *n)
{
    if (n->watchdog_ms == 0 || ad_now_ms() < n->watchdog_next)
        return;
    // Pet the watchdog only when the schedulers still run actors.
    int wait = (int)(n->watchdog_ms / 2 < 5000 ? n->watchdog_ms / 2 : 5000);
    int rc = ad_health_ping(n->sys, n->health, wait > 0 ? wait : 1);
    if (rc == 0)
        ad_notify("WATCHDOG=1");
    else
        ad_log(TP_LOG_WARNING, "watchdog_skipped error=%s", tp_err_name(rc));
    n->watchdog_next = ad_now_ms() + n->watchdog_ms;
}

static int
next_timeout(const ad_node *n)
{
    int retire = ad_node_retire_timeout(n);
    if (n->watchdog_ms == 0)
        return retire;
    int64_t left = n->watchdog_next - ad_now_ms();
    int pet = left < 0 ? 0 : (int)left;
    return retire >= 0 && retire < pet ? retire : pet;
}

// ---- starting and stopping applications ------------------------------------

int
ad_node_start_app(ad_node *n, ad_app *app)
{
    if (n->napps == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 8;
        ad_app **apps = realloc(n->apps, cap * sizeof *apps);
        if (apps == NULL) {
            ad_app_free(app);
            return EX_OSERR;
        }
        n->apps = apps;
        n->cap = cap;
    }
    ad_notify("STATUS=Starting application %s", app->conf->name);
    int rc = ad_app_start(app, n->sys, ++n->next_id, n->event[1]);
    if (rc != 0) {
        // Nothing of it should run; its module goes once that is so.
        if (!n->stopping)
            ad_node_retire(n, app->handle, app->conf->name, app->conf->module,
                           app->desc->version, TP_PID_NIL);
        ad_app_free(app);
        return rc;
    }
    n->apps[n->napps++] = app;
    return 0;
}

static void
kill_root(ad_node *n, ad_app *app, const char *why)
{
    char pid[TP_PID_STRLEN];
    tp_pid_format(app->root, pid, sizeof pid);
    ad_log(TP_LOG_ERR, "app_killed app=%s root=%s why=%s", app->conf->name,
           pid, why);
    tp_system_exit(n->sys, app->root, TP_REASON_KILL);
}

void
ad_node_stop_app(ad_node *n, ad_app *app)
{
    if (app->state != AD_APP_RUNNING)
        return;
    char pid[TP_PID_STRLEN];
    tp_pid_format(app->root, pid, sizeof pid);
    ad_log(TP_LOG_INFO, "app_stopping app=%s root=%s", app->conf->name, pid);
    ad_notify("STATUS=Stopping application %s", app->conf->name);
    app->stopping_ms = ad_now_ms();
    bool killed = n->term_again;
    // A root already gone is reported by its watcher's monitor all the same.
    tp_system_exit(n->sys, app->root,
                   killed ? TP_REASON_KILL : TP_REASON_SHUTDOWN);
    int limit = n->cfg->shutdown_timeout_ms;
    int64_t deadline = limit == AD_INFINITY ? -1 : app->stopping_ms + limit;
    while (app->state == AD_APP_RUNNING) {
        int64_t left = deadline < 0 ? -1 : deadline - ad_now_ms();
        if (left <= 0 && deadline >= 0) {
            if (killed) {
                // A killed actor is gone at once; its DOWN cannot be lost.
                // Should it be, the system's destruction finishes the job.
                ad_log(TP_LOG_ERR, "app_stop_unconfirmed app=%s",
                       app->conf->name);
                app_done(n, app);
                break;
            }
            kill_root(n, app, "shutdown_timeout");
            killed = true;
            deadline = ad_now_ms() + 5000;
            continue;
        }
        int wait = left > INT32_MAX ? INT32_MAX : (int)left;
        int pet = next_timeout(n);
        ad_node_wait(n, pet >= 0 && (wait < 0 || pet < wait) ? pet : wait);
        watchdog(n);
        ad_node_retire_check(n); // its time is in next_timeout's

        if (n->term_again && !killed && app->state == AD_APP_RUNNING) {
            kill_root(n, app, "second_signal");
            killed = true;
            deadline = ad_now_ms() + 5000;
        }
    }
}

// ---- setting up ------------------------------------------------------------

// The exit status for a failure to bind or create something the
// configuration names.
static int
status_of(int rc)
{
    switch (rc) {
    case TP_EADDRINUSE:
    case TP_EEXIST:
        return EX_UNAVAILABLE;
    case TP_EINVAL:
    case TP_EPERM:
    case TP_ENOENT:
        return EX_CONFIG;
    default:
        return EX_OSERR;
    }
}

static int
start_system(ad_node *n)
{
    const ad_config *c = n->cfg;
    // Operators sort by CPU (actorctl ps --sort cpu): measure run time.
    tp_config tc = {.threads = c->threads,
                    .log = ad_log_sink,
                    .cpu_time = true,
                    .wait_sample = c->wait_sample};
    int rc = tp_system_new(&tc, &n->sys);
    if (rc == 0 && (rc = tp_system_start(n->sys)) != 0)
        tp_system_destroy(&n->sys);
    if (rc != 0) {
        ad_log(TP_LOG_ERR, "system_failed error=%s", tp_err_name(rc));
        return EX_OSERR;
    }
    tp_system_stats st;
    tp_system_stats_get(n->sys, &st);
    ad_log(TP_LOG_INFO, "system_started threads=%u", st.threads);
    if (c->listen == NULL) {
        ad_log(TP_LOG_INFO, "node name=%s distribution=off", c->name);
        return 0;
    }
    tp_node_config nc = {.name = c->name,
                         .listen = c->listen,
                         .secret_file = c->secret_file,
                         .tls_cert_file = c->tls_cert,
                         .tls_key_file = c->tls_key,
                         .tls_ca_file = c->tls_ca,
                         .mesh = c->mesh,
                         .seeds = c->seeds};
    if ((rc = tp_node_start(n->sys, &nc)) != 0) {
        ad_log(TP_LOG_ERR, "node_failed listen=%s error=%s", c->listen,
               tp_err_name(rc));
        return status_of(rc);
    }
    ad_log(TP_LOG_INFO, "node_started node=%s incarnation=%u secret=%s tls=%s",
           tp_node_name(n->sys), (unsigned)tp_node_incarnation(n->sys),
           c->secret_file ? "yes" : "no", c->tls_cert ? "yes" : "no");
    return 0;
}

static int
start_services(ad_node *n)
{
    const ad_config *c = n->cfg;
    int rc;
    if (c->control != NULL) {
        if ((rc = tp_control_start(n->sys, c->control)) != 0) {
            ad_log(TP_LOG_ERR, "control_failed path=%s error=%s",
                   AD_Q(c->control), tp_err_name(rc));
            return status_of(rc);
        }
        ad_log(TP_LOG_INFO, "control_listening path=%s", AD_Q(c->control));
        // actorctl upgrade: answered within the upgrade's own time limit.
        tp_control_serve(n->sys, ctl_request, n,
                         AD_UPGRADE_TIMEOUT_MS / 1000.0 + 20);
    }
    if (c->metrics != NULL) {
        uint16_t port = 0;
        rc = tp_metrics_start(n->sys, c->metrics, c->metrics_allow_remote,
                              &port);
        if (rc != 0) {
            ad_log(TP_LOG_ERR, "metrics_failed addr=%s error=%s", c->metrics,
                   tp_err_name(rc));
            return status_of(rc);
        }
        ad_log(TP_LOG_INFO, "metrics_listening addr=%.*s:%u",
               (int)(strrchr(c->metrics, ':') - c->metrics), c->metrics,
               (unsigned)port);
    }
    if ((rc = ad_health_start(n->sys, &n->health)) != 0) {
        ad_log(TP_LOG_ERR, "health_failed error=%s", tp_err_name(rc));
        return EX_OSERR;
    }
    return ad_peers_start(n);
}

static int
open_fds(ad_node *n, const sigset_t *signals)
{
    n->sigfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (n->sigfd < 0 || pipe2(n->event, O_CLOEXEC | O_NONBLOCK) != 0) {
        ad_log(TP_LOG_ERR, "setup_failed error=%s", AD_Q(strerror(errno)));
        return EX_OSERR;
    }
    return 0;
}

// ---- the whole life --------------------------------------------------------

static void
stop_all(ad_node *n)
{
    for (size_t i = n->napps; i-- > 0;)
        ad_node_stop_app(n, n->apps[i]);
}

static int
start_all(ad_node *n, ad_app **apps, size_t napps)
{
    size_t i = 0;
    int rc = 0;
    for (; i < napps && rc == 0; i++)
        rc = ad_node_start_app(n, apps[i]);
    for (; i < napps; i++)
        ad_app_free(apps[i]); // never started
    return rc;
}

static void
run_loop(ad_node *n)
{
    while (n->term_signal == 0) {
        ad_node_wait(n, next_timeout(n));
        if (n->hup && n->term_signal == 0) {
            n->hup = false;
            ad_node_reload(n);
        }
        watchdog(n);
        ad_node_retire_check(n);
    }
}

static void
shut_down(ad_node *n)
{
    n->stopping = true;
    int64_t t0 = ad_now_ms();
    const char *why = n->term_signal == SIGINT    ? "SIGINT"
                      : n->term_signal == SIGTERM ? "SIGTERM"
                                                  : "app_exited";
    ad_log(TP_LOG_INFO, "stopping reason=%s", why);
    ad_notify("STOPPING=1\nSTATUS=Stopping (%s)", why);
    stop_all(n);
    ad_log(TP_LOG_INFO, "apps_stopped ms=%lld", (long long)(ad_now_ms() - t0));
    ad_peers_stop(n); // nodedowns are logged until the applications are gone
}

static void
tear_down(ad_node *n)
{
    tp_system_destroy(&n->sys); // what is left dies; modules stay loaded
    ad_node_retire_free(n);
    ctl_run(n, true); // the control socket is gone: no client
    pthread_mutex_destroy(&n->ctl_lock);
    for (size_t i = 0; i < n->napps; i++)
        ad_app_free(n->apps[i]);
    free(n->apps);
    if (n->sigfd >= 0)
        close(n->sigfd);
    for (int i = 0; i < 2; i++)
        if (n->event[i] >= 0)
            close(n->event[i]);
    ad_config_free(n->cfg);
}

int
ad_node_run(ad_config *cfg, ad_app **apps, size_t napps,
            const sigset_t *signals, uint64_t watchdog_usec)
{
    ad_node n = {.cfg = cfg, .sigfd = -1, .event = {-1, -1}};
    pthread_mutex_init(&n.ctl_lock, NULL);
    n.started_ms = ad_now_ms();
    if (watchdog_usec != 0) {
        n.watchdog_ms = (int64_t)(watchdog_usec / 2000);
        if (n.watchdog_ms == 0)
            n.watchdog_ms = 1;
    }
    int rc = open_fds(&n, signals);
    if (rc == 0)
        rc = start_system(&n);
    if (rc == 0)
        rc = start_services(&n);
    if (rc == 0) {
        rc = start_all(&n, apps, napps);
        napps = 0;
    }
    for (size_t i = 0; i < napps; i++)
        ad_app_free(apps[i]);
    free(apps);
    if (rc == 0) {
        ad_log(TP_LOG_INFO, "ready ms=%lld",
               (long long)(ad_now_ms() - n.started_ms));
        ad_node_ready(&n);
        run_loop(&n);
        shut_down(&n);
        rc = n.status;
    } else {
        ad_notify("STATUS=Failed to start (exit status %d)", rc);
        n.stopping = true;
        stop_all(&n); // those that started, in reverse order
        ad_peers_stop(&n);
    }
    tear_down(&n);
    ad_log(rc == 0 ? TP_LOG_INFO : TP_LOG_ERR, "stopped status=%d", rc);
    return rc;
}
