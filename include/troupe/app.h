// SPDX-License-Identifier: MIT
// Applications: supervision trees packaged as shared objects that the node
// daemon, actord, loads with dlopen and starts from its configuration.
//
// A module exports one `tp_app_descriptor` under the symbol name `tp_app`
// (TP_APP_SYMBOL); TP_APP_DESCRIPTOR defines it with the ABI fields filled
// in. For each `[app NAME]` section of its configuration, actord checks the
// descriptor's ABI, calls `check` (also under `actord --check`) and then
// `start`, which either returns the spec of the application's root
// supervisor (actord starts it) or starts the root supervisor itself and
// returns its pid. Either way the root is registered under NAME. Apps
// start in configuration order and stop in reverse order: actord sends the
// root TP_REASON_SHUTDOWN, the supervisor stops its children last started
// first, and `stop` runs once the root has exited. A root that exits
// otherwise (killed, say) stops its children through their links, so
// they may still be exiting when `stop` runs.
//
// A module calls the library's functions as any program does; they resolve
// to the copy inside actord, so a module needs no -ltroupe.
#ifndef TROUPE_APP_H
#define TROUPE_APP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pid.h"
#include "supervisor.h"
#include "system.h"
#include "version.h"

// The layout of the structures below. actord refuses a module built for
// another one, or against a troupe with another major version (another
// minor version too while the major is 0).
#define TP_APP_ABI 2

// The name of the descriptor's symbol, for dlsym.
#define TP_APP_SYMBOL "tp_app"

// One `key = value` line of the application's section, in file order
// (`module` excluded).
typedef struct tp_app_arg {
    const char *key;
    const char *value;
} tp_app_arg;

// An application's arguments. They are valid only during the call they
// are passed to: copy what the application keeps.
typedef struct tp_app_args {
    const char *app; // the section's NAME, also the root's registered name
    const tp_app_arg *v;
    size_t n;
} tp_app_args;

// What `start` hands back. Set exactly one of `spec` and `pid`.
typedef struct tp_app_root {
    // The root supervisor's spec: actord starts it with tp_sup_start,
    // registered under the app's name, once `start` has returned. So the
    // spec and the child specs it points to must outlive `start` (keep
    // them in `state`, or static); the supervisor copies them as it
    // starts (a supervisor child's spec, its `arg`, included). The other
    // children's `arg`s must outlive the children. actord unloads a
    // module no application runs any more (after an upgrade, or once the
    // application stopped) only when no child spec points into it: `arg`s
    // allocated and kept in `state` let an old version go, static ones
    // keep it loaded while the application runs.
    const tp_sup_spec *spec;
    // Or the root supervisor `start` spawned itself: actord registers it
    // under the app's name, so it must have no other name.
    tp_pid pid;
    // Handed to `stop` once the root has exited; may be NULL.
    void *state;
} tp_app_root;

typedef struct tp_app_descriptor {
    // TP_APP_ABI and TP_VERSION_MAJOR/MINOR at the module's build time.
    // Read before anything else: they stay first in every ABI version.
    uint32_t abi;
    uint16_t troupe_major, troupe_minor;
    const char *name;    // the module's name, for logs ("kvstore")
    const char *version; // the module's own version, or NULL
    // Optional. Validates the arguments without starting anything (actord
    // calls it under --check, before `start` and on reload). Returns 0, or
    // a negative TP_E* code with a one-line reason written into `err`
    // (`size` bytes, NUL-terminated). Must not touch any system.
    int (*check)(const tp_app_args *args, char *err, size_t size);
    // Required. Starts the application in `sys` from its arguments and
    // fills `*root`. Runs on actord's main thread, outside any actor, after
    // the system started. Returns 0, or a negative TP_E* code with a reason
    // in `err`; on failure nothing the call started may be left running
    // and `stop` is not called.
    int (*start)(tp_system *sys, const tp_app_args *args, tp_app_root *root,
                 char *err, size_t size);
    // Optional. Runs once the root supervisor has exited (or failed to
    // start from `spec`), with root->state. The system is still running.
    // After an upgrade it is the new version's stop that runs, with the
    // state the old version's start returned.
    void (*stop)(void *state);
    // Optional, for hot code upgrade (upgrade.h): the behaviours this
    // version's actors run, NULL-terminated. When actord loads a new
    // version of a running application's module (actord.8, "Upgrading an
    // application"), every actor running a behaviour of the old version's
    // list switches to the behaviour of the same name in the new version's
    // list, and the application's supervisors' child specs follow. Both
    // versions need the list.
    const tp_behaviour *const *behaviours;
    // Optional: builds the new state of an actor of `behaviour` (its name)
    // from its state under version `old_version` of the module (the old
    // descriptor's `version`, or "" without one), as tp_code_change's
    // change does; NULL copies the bytes. A failure rolls the upgrade back:
    // every actor keeps the old version. A state machine's behaviour
    // (statem.h) is not passed here: it upgrades with tp_statem_change,
    // its new spec's `states` and `code_change` converting its data.
    int (*code_change)(const char *behaviour, const char *old_version,
                       tp_ctx *ctx, const void *old_state, void *new_state);
} tp_app_descriptor;

// Defines the module's descriptor; list the other fields as designated
// initialisers: TP_APP_DESCRIPTOR(.name = "kv", .start = kv_start);
#define TP_APP_DESCRIPTOR(...)                                                \
    __attribute__((visibility("default")))                                    \
    const tp_app_descriptor tp_app = {.abi = TP_APP_ABI,                      \
                                      .troupe_major = TP_VERSION_MAJOR,       \
                                      .troupe_minor = TP_VERSION_MINOR,       \
                                      __VA_ARGS__}

// The value of `key` in `args`, or NULL when it is absent.
static inline const char *
tp_app_arg_get(const tp_app_args *args, const char *key)
{
    for (size_t i = 0; args != NULL && i < args->n; i++)
        if (strcmp(args->v[i].key, key) == 0)
            return args->v[i].value;
    return NULL;
}

#endif
