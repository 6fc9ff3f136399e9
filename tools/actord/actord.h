// SPDX-License-Identifier: MIT
// actord's internal interface. actord is the node daemon: it reads an INI
// configuration (config.c, with libinih), loads application modules and
// starts and stops their supervision trees (apps.c), logs to stderr with
// journald priority prefixes (log.c), speaks systemd's notify protocol
// without libsystemd (notify.c), and runs the node: startup, signals,
// reload and ordered shutdown (node.c), its peers and the log of their
// nodeups and nodedowns (peers.c). main.c parses the command line.
//
// Everything here runs on the main thread except the log sink, which the
// library calls from any thread, and the watcher actors in apps.c and
// peers.c.
#ifndef TROUPE_ACTORD_H
#define TROUPE_ACTORD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sysexits.h>

#include <troupe.h>

// Exit statuses (documented in actord.8): 0, 1 when an application's root
// supervisor exited on its own, and sysexits.h's EX_USAGE (64),
// EX_UNAVAILABLE (69: an address or socket is taken), EX_SOFTWARE (70: an
// application failed to start), EX_OSERR (71) and EX_CONFIG (78).
enum { AD_EXIT_APP_DIED = 1 };

// ---- diagnostics (log.c) --------------------------------------------------

// A list of "FILE:LINE: reason" messages gathered while reading a
// configuration, so that every mistake is reported at once.
typedef struct ad_diag {
    char **msg;
    size_t n, cap;
} ad_diag;

// Appends one formatted message (a message that cannot be stored is
// replaced by a note that memory ran out).
void ad_diag_add(ad_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Prints every message on stderr, one line each: plain, or as log lines at
// TP_LOG_ERR when `as_log`.
void ad_diag_print(const ad_diag *d, bool as_log);
void ad_diag_free(ad_diag *d);

// ---- logging (log.c) ------------------------------------------------------

// Lines above this level (TP_LOG_*) are dropped. Any thread.
void ad_log_set_level(int level);
int ad_log_level(void);
// "err", "warning", "info" or "debug"; NULL for another level.
const char *ad_log_level_name(int level);
// The level named `name`, or -1.
int ad_log_level_parse(const char *name);

// Writes the formatted text as one line on stderr with tp_log_stderr,
// origin "actord". Any thread.
void ad_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// The library's log sink (tp_log_fn): the same filter, then tp_log_stderr
// with the line's origin, "app" for an application's line logged outside
// any actor.
void ad_log_sink(void *userdata, int level, const char *origin,
                 const char *line);

// Writes `s` into `buf` as a log field value: unchanged when it is
// non-empty and holds no space, quote, '=' or control character, else
// double-quoted with '"' and '\' escaped and control characters dropped.
// Returns `buf`.
const char *ad_quote(char *buf, size_t size, const char *s);
#define AD_Q(s) ad_quote((char[320]){0}, 320, (s))

// ---- systemd notify (notify.c) --------------------------------------------

// Takes NOTIFY_SOCKET (and WATCHDOG_USEC/WATCHDOG_PID) from the
// environment and removes them, so that nothing actord starts inherits
// them. Returns the watchdog interval in microseconds, 0 for none.
uint64_t ad_notify_init(void);
// Sends the formatted state ("READY=1\nSTATUS=...") to the service
// manager; does nothing when NOTIFY_SOCKET was not set. A failure is
// logged once, as a warning.
void ad_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// ---- configuration (config.c) ---------------------------------------------

typedef struct ad_kv {
    char *key, *value;
    int line;
} ad_kv;

// One [app NAME] section.
typedef struct ad_app_conf {
    char *name;
    char *module; // resolved against the configuration's directory
    int line;     // of the section header
    int module_line;
    ad_kv *args; // every other key, in file order
    size_t nargs;
} ad_app_conf;

#define AD_INFINITY (-1)

// One entry of [node] peers: a full node name ("beta@127.0.0.1:4371").
typedef struct ad_peer {
    char *node;
    int line;
} ad_peer;

#define AD_PEERS_MAX 64

typedef struct ad_config {
    char *path;   // as given, for messages
    char *name;   // [node] name
    char *listen; // NULL: not a distributed node
    char *secret_file;
    char *tls_cert, *tls_key, *tls_ca; // all or none: TLS between nodes
    unsigned threads;                  // 0: one per online CPU
    int wait_sample;                   // tp_config.wait_sample
    char *control; // the socket's path (defaulted), NULL when off
    char *metrics; // NULL: no /metrics
    bool metrics_allow_remote;
    bool mesh;               // connect to every node a peer is connected to
    char *seeds;             // tp_node_config.seeds, DNS names allowed
    int log_level;           // TP_LOG_*
    int shutdown_timeout_ms; // per application, or AD_INFINITY
    int node_line;           // the [node] header's line, 0 if none
    ad_app_conf *apps;       // in file order
    size_t napps;
    ad_peer *peers; // [node] peers, in file order
    size_t npeers;
} ad_config;

// Reads the configuration at `path`. Returns 0 with `*out` to free with
// ad_config_free, or EX_CONFIG with every problem found in `diag` ("PATH:
// LINE: reason"), or EX_OSERR when memory ran out.
int ad_config_load(ad_config **out, const char *path, ad_diag *diag);
void ad_config_free(ad_config *cfg);

// The control socket's default path for node `name`: $TROUPE_RUNTIME_DIR,
// else $RUNTIME_DIRECTORY (set by systemd's RuntimeDirectory=),
// /run/troupe for root, $XDG_RUNTIME_DIR/troupe, else /tmp/troupe-UID; then
// "/NAME.sock". Returns a malloc'ed string or NULL (out of memory).
char *ad_control_default(const char *name);

// Deep copy of one application's section; NULL when memory ran out.
ad_app_conf *ad_app_conf_dup(const ad_app_conf *a);
// Frees what the section holds (clear) and the section itself (free).
void ad_app_conf_clear(ad_app_conf *a);
void ad_app_conf_free(ad_app_conf *a);
// True when the two sections name the same module with the same
// arguments in the same order.
bool ad_app_conf_same(const ad_app_conf *a, const ad_app_conf *b);
// True when the two sections have the same arguments in the same order.
bool ad_app_args_same(const ad_app_conf *a, const ad_app_conf *b);

struct ad_node;

// ---- applications (apps.c) ------------------------------------------------

typedef enum ad_app_state {
    AD_APP_LOADED = 0, // module loaded and checked, not started
    AD_APP_RUNNING,
    AD_APP_STOPPED,
} ad_app_state;

// Where a watcher actor reports that a root supervisor exited.
typedef struct ad_watch {
    uint64_t id; // the application's run, unique in the process
    tp_pid root;
    int fd; // the write end of the node's event pipe
} ad_watch;

// What a watcher writes to the event pipe (less than PIPE_BUF: atomic).
typedef struct ad_event {
    uint64_t id;
    int32_t reason;
    char text[TP_REASON_TEXT_MAX];
} ad_event;

typedef struct ad_app {
    ad_app_conf *conf; // owned copy
    void *handle;      // dlopen's; once the application stops or upgrades,
                       // handed to ad_node_retire, which closes it when unused
    const tp_app_descriptor *desc;
    ad_app_state state;
    tp_pid root;
    void *state_ptr;     // tp_app_root.state
    ad_watch watch;      // the watcher's argument; lives as long as this
    int64_t started_ms;  // monotonic, when `start` was called
    int64_t stopping_ms; // when the shutdown signal was sent, or 0
    unsigned long long dev, ino; // the module file's, when it was loaded
    // The module its configuration section named when last applied: a
    // reload upgrades when the section names another (an upgrade by
    // actorctl changes the module running, not this).
    char *section_module;
} ad_app;

// What an upgrade did, for actorctl.
typedef struct ad_upgrade_result {
    const char *from, *to; // the versions (the modules' own strings)
    unsigned actors;
    size_t specs;
    size_t stragglers; // started from old specs meanwhile, still old
    long long pause_p50_us, pause_max_us;
    char error[200]; // why it failed, or ""
} ad_upgrade_result;

// Loads `conf`'s module, checks its descriptor and ABI and runs its
// `check`. Returns 0 with `*out` (free with ad_app_free), or EX_CONFIG
// with the reason in `diag`, or EX_OSERR.
int ad_app_load(ad_app **out, const ad_app_conf *conf, const char *path,
                ad_diag *diag);
// Frees an application that is not running. Accepts NULL.
void ad_app_free(ad_app *app);

// Spawns an actor that monitors `w->root` and writes an ad_event with
// `w->id` to `w->fd` when it exits (at once if it is already gone); `*w`
// is copied. Returns tp_spawn's codes.
int ad_watch_start(tp_system *sys, ad_watch *w);

// Spawns the actor that answers the watchdog's pings. Returns tp_spawn's
// codes.
int ad_health_start(tp_system *sys, tp_pid *out);
// Asks the health actor to answer within `timeout_ms`. Returns 0 or
// tp_call's codes.
int ad_health_ping(tp_system *sys, tp_pid health, int timeout_ms);

// Starts `app` in `sys`: calls its `start`, starts the root supervisor
// from the spec it returned, registers the root under the app's name and
// spawns a watcher that writes an ad_event to `event_fd` when the root
// exits. Returns 0, or EX_SOFTWARE having logged why (nothing is left
// running then). `id` must be unique in the process.
int ad_app_start(ad_app *app, tp_system *sys, uint64_t id, int event_fd);
// Labels the behaviours `app`'s module lists with its version (`on`), or
// removes their labels (tp_behaviour_version): introspection shows them.
void ad_app_label(const ad_app *app, tp_system *sys, bool on);
// Runs the module's `stop` and marks the application stopped; called
// once its root has exited.
void ad_app_finish(ad_app *app);
// Whether `app`'s module file is no longer the one it loaded (replaced by
// a new file at the same path).
bool ad_app_module_changed(const ad_app *app);
// Upgrades running `app` to the module of `next` (same arguments): loads
// it beside the running one, switches every actor of the old version's
// behaviours to the new version's (tp_upgrade) and the application's
// supervisors' specs (tp_sup_upgrade). Returns 0, having logged
// app_upgraded, or a TP_E* code having logged why (app_upgrade_failed:
// the old version keeps running, unchanged).
// The old version's module is handed to ad_node_retire.
int ad_app_upgrade(ad_app *app, struct ad_node *n, const ad_app_conf *next,
                   const char *source, int timeout_ms, ad_upgrade_result *res);
// Whether `root` is a supervisor (tp_supervisor, by its name): a module
// may spawn a root of its own, which has no specs and answers no call.
bool ad_root_is_supervisor(tp_system *sys, tp_pid root);
// How long an upgrade waits for every actor to build its new state.
#define AD_UPGRADE_TIMEOUT_MS 10000

// ---- the node (node.c, reload.c) -----------------------------------------

typedef struct ad_node {
    ad_config *cfg; // the configuration in effect
    tp_system *sys;
    int sigfd;     // signalfd for `signals`
    int event[2];  // pipe: watchers write ad_events, the main thread reads
    ad_app **apps; // in start order; stopped ones stay (see ad_app.handle)
    size_t napps, cap;
    uint64_t next_id;
    tp_pid health;
    ad_watch nodes;          // how the nodes watcher (peers.c) is watched
    bool nodes_running;      // the nodes watcher is alive
    int nodes_restarts;      // restarts since nodes_window_ms
    int64_t nodes_window_ms; // when the current restart window began
    int64_t watchdog_ms, watchdog_next; // 0: no watchdog
    int64_t started_ms;
    int term_signal; // SIGTERM or SIGINT once asked to stop, else 0
    bool term_again; // asked twice: kill what is left
    bool hup;        // SIGHUP seen, reload pending
    bool stopping;   // in the final shutdown
    int status;      // the exit status so far
    // Control requests for actord itself (actorctl upgrade), queued by the
    // I/O thread for the main thread (node.c).
    pthread_mutex_t ctl_lock;
    struct ad_ctl_req *ctl_reqs;
    // Modules no application runs any more, closed once unused (retire.c).
    struct ad_retired *retired;
    size_t nretired, capretired;
} ad_node;

// ---- unloading modules (retire.c) ----------------------------------------

// Takes over `handle`, the module of application `app` that no longer
// runs it (upgraded away from, or stopped), and closes it once nothing
// runs its code nor points into it: actors, continuations, and the child
// specs of the supervisors under `root` (nil once the application
// stopped). Logs app_module_unloaded then.
void ad_node_retire(ad_node *n, void *handle, const char *app,
                    const char *module, const char *version, tp_pid root);
// Looks again at the modules whose time came; main thread.
void ad_node_retire_check(ad_node *n);
// Milliseconds until the next look is due, or -1 for none.
int ad_node_retire_timeout(const ad_node *n);
// Forgets the modules waiting (left loaded), once the system is gone.
void ad_node_retire_free(ad_node *n);

// Milliseconds on the monotonic clock.
int64_t ad_now_ms(void);

// Runs the node that `cfg` describes with `apps` loaded (all taken over:
// freed before returning) until a signal stops it. `signals` is the set
// blocked in every thread; `watchdog_usec` what ad_notify_init returned.
// Returns the process's exit status.
int ad_node_run(ad_config *cfg, ad_app **apps, size_t napps,
                const sigset_t *signals, uint64_t watchdog_usec);

// Waits up to `timeout_ms` (-1: no limit) for a signal or a watcher's
// event and handles what came.
void ad_node_wait(ad_node *n, int timeout_ms);

// Starts `app` (loaded) and adds it to the node. Returns 0, or EX_SOFTWARE
// or EX_OSERR having freed it.
int ad_node_start_app(ad_node *n, ad_app *app);
// Stops a running application: its root gets TP_REASON_SHUTDOWN and is
// waited for, up to the configured shutdown_timeout (then killed).
// Signals and other applications' exits are handled meanwhile.
void ad_node_stop_app(ad_node *n, ad_app *app);
// Sends the service manager "READY=1" and a STATUS line naming the node
// and its running applications.
void ad_node_ready(ad_node *n);

// Re-reads the configuration and applies what can change while running
// (reload.c).
void ad_node_reload(ad_node *n);
// The running application named `name`, or NULL (reload.c).
ad_app *ad_node_app_running(ad_node *n, const char *name);

// ---- peers (peers.c) ------------------------------------------------------

// On a node that listens: spawns the nodes watcher, the actor registered
// as "actord_nodes" that logs every nodeup and nodedown, then connects to
// each configured peer. Does nothing on a node that does not listen.
// Returns 0 or EX_OSERR having logged why.
int ad_peers_start(ad_node *n);
// Connects to `node` (a configured peer) and keeps reconnecting; logged.
void ad_peer_connect(ad_node *n, const char *node);
// Stops reconnecting to `node` and closes the connection; logged.
void ad_peer_disconnect(ad_node *n, const char *node);
// Handles `ev` when it says the nodes watcher exited: restarts it unless
// the node is stopping or it keeps dying. Returns false for another event.
bool ad_peers_event(ad_node *n, const ad_event *ev);
// Stops the nodes watcher and waits (a second at most) until it is gone;
// called once the applications have stopped.
void ad_peers_stop(ad_node *n);

#endif
