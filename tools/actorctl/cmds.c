// SPDX-License-Identifier: MIT
// The commands about one actor (`info`, `kill`) and about the node
// (`stats`, `nodes`). An actor is named by its pid, with or without the
// angle brackets, or by its registered name, looked up in a snapshot.
#include "actorctl.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int
ctl_resolve_actor(ctl_conn *c, const char *who, char *buf, size_t size)
{
    if (ctl_pid_normalise(who, buf, size))
        return CTL_OK;
    if (who[0] == '\0' || who[0] == '<' || (who[0] >= '0' && who[0] <= '9'))
        return ctl_fail(CTL_USAGE,
                        "\"%s\" is not a pid (like <0.42.1>) or a name", who);
    ctl_snap s;
    int rc = ctl_snap_get(c, &s);
    for (size_t i = 0; rc == CTL_OK && i < s.n; i++) {
        if (ctl_str_eq(s.actors[i].name, who)) {
            snprintf(buf, size, "%.*s", (int)s.actors[i].pid.n,
                     s.actors[i].pid.p);
            ctl_snap_free(&s);
            return CTL_OK;
        }
    }
    ctl_snap_free(&s);
    return rc != CTL_OK ? rc
                        : ctl_fail(CTL_ERROR,
                                   "no actor is registered as "
                                   "\"%s\"",
                                   who);
}

// Connects and resolves `who`. On success the connection is open.
static int
open_actor(ctl_conn *c, const ctl_target *t, const char *who, char *pid,
           size_t size)
{
    int rc = ctl_connect(c, t);
    if (rc == CTL_OK && (rc = ctl_resolve_actor(c, who, pid, size)) != CTL_OK)
        ctl_close(c);
    c->about = pid;
    return rc;
}

// ---- info
// -------------------------------------------------------------------

static const char *const pid_lists[] = {"links", "monitors", "monitored_by"};

typedef struct detail {
    ctl_actor a;
    bool cpu_time; // the node measures run time (optional in the reply)
    bool partial;  // busy: what only the actor knows is missing
    bool trap_exit;
    uint64_t stashed; // 0 from a node that does not say
    const msgpack_object_array *lists[3];
    ctl_str describe;
} detail;

static int
detail_decode(const msgpack_object *root, detail *d)
{
    const msgpack_object *m;
    int rc = ctl_get_map(root, "actor", "the reply", &m);
    if (rc != CTL_OK || (rc = ctl_actor_decode(m, "actor", &d->a)) != CTL_OK)
        return rc;
    d->cpu_time = false;
    if (ctl_field(root, "cpu_time") != NULL &&
        (rc = ctl_get_bool(root, "cpu_time", "the reply", &d->cpu_time)) !=
            CTL_OK)
        return rc;
    // A busy actor cannot answer: the node sends what a snapshot shows.
    d->partial = ctl_field(m, "trap_exit") == NULL;
    if (d->partial)
        return CTL_OK;
    if ((rc = ctl_get_bool(m, "trap_exit", "actor", &d->trap_exit)) !=
            CTL_OK ||
        (rc = ctl_get_str(m, "describe", "actor", &d->describe)) != CTL_OK)
        return rc;
    d->stashed = 0;
    if (ctl_field(m, "stashed") != NULL &&
        (rc = ctl_get_uint(m, "stashed", "actor", &d->stashed)) != CTL_OK)
        return rc;
    for (size_t k = 0; k < 3; k++) {
        if ((rc = ctl_get_array(m, pid_lists[k], "actor", &d->lists[k])) !=
            CTL_OK)
            return rc;
        for (uint32_t i = 0; i < d->lists[k]->size; i++) {
            const msgpack_object *p = &d->lists[k]->ptr[i];
            if (p->type != MSGPACK_OBJECT_STR ||
                !ctl_pid_valid(p->via.str.ptr, p->via.str.size))
                return ctl_bad_reply("actor",
                                     "has \"%s\"[%u] that is not a "
                                     "pid",
                                     pid_lists[k], i);
        }
    }
    return CTL_OK;
}

static void
info_json(const detail *d)
{
    fputc('{', stdout);
    ctl_actor_json_fields(stdout, &d->a);
    if (d->partial) {
        fputs("}\n", stdout);
        return;
    }
    printf(",\"trap_exit\":%s", d->trap_exit ? "true" : "false");
    for (size_t k = 0; k < 3; k++) {
        printf(",\"%s\":[", pid_lists[k]);
        for (uint32_t i = 0; i < d->lists[k]->size; i++) {
            const msgpack_object *p = &d->lists[k]->ptr[i];
            if (i > 0)
                fputc(',', stdout);
            ctl_json_str(stdout, (ctl_str){p->via.str.ptr, p->via.str.size});
        }
        fputc(']', stdout);
    }
    printf(",\"stashed\":%llu", (unsigned long long)d->stashed);
    fputs(",\"describe\":", stdout);
    ctl_json_str(stdout, d->describe);
    fputs("}\n", stdout);
}

static void field(const char *key, const char *colour, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
field(const char *key, const char *colour, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s%-13s%s %s", ctl_sgr(SGR_BOLD), key, ctl_sgr("0"),
           ctl_sgr(colour));
    vprintf(fmt, ap);
    printf("%s\n", colour ? ctl_sgr("0") : "");
    va_end(ap);
}

static void
field_str(const char *key, const char *colour, ctl_str s)
{
    char *c = ctl_clean(s);
    field(key, colour, "%s", c[0] ? c : "-");
    free(c);
}

static void
info_text(const detail *d)
{
    const ctl_actor *a = &d->a;
    char age[32];
    field_str("pid", NULL, a->pid);
    field_str("name", SGR_CYAN, a->name);
    field_str("behaviour", NULL, a->behaviour);
    field_str("version", NULL, a->version);
    field_str("parent", NULL, a->parent);
    char *st = ctl_status_text(a);
    field("status", ctl_status_colour(a->status), "%s", st);
    free(st);
    field("mailbox", ctl_mailbox_colour(a->mailbox, a->capacity),
          "%llu/%llu (peak %llu)", (unsigned long long)a->mailbox,
          (unsigned long long)a->capacity, (unsigned long long)a->high_water);
    field("handled", NULL, "%llu", (unsigned long long)a->handled);
    field("dropped", NULL, "%llu", (unsigned long long)a->dropped);
    field("rejected", NULL, "%llu", (unsigned long long)a->rejected);
    field("restarts", a->restarts ? SGR_YELLOW : NULL, "%llu",
          (unsigned long long)a->restarts);
    ctl_duration(age, sizeof age, a->age_ms);
    field("age", NULL, "%s", age);
    ctl_cpu_format(age, sizeof age, a->cpu_us);
    field("cpu", NULL, "%s", d->cpu_time ? age : "-");
    if (d->cpu_time && a->waits > 0) {
        char p50[32], p99[32], max[32];
        ctl_cpu_format(p50, sizeof p50, a->wait_p50_us);
        ctl_cpu_format(p99, sizeof p99, a->wait_p99_us);
        ctl_cpu_format(max, sizeof max, a->wait_max_us);
        field("wait", NULL, "p50 %s, p99 %s, max %s (%llu timed)", p50, p99,
              max, (unsigned long long)a->waits);
    } else {
        field("wait", NULL, "-");
    }
    if (d->partial) {
        // Only the actor knows the rest, and it is stuck in a callback.
        field("detail", SGR_RED, "unavailable: busy in a callback");
        return;
    }
    field("trap_exit", NULL, "%s", d->trap_exit ? "true" : "false");
    field("stashed", d->stashed ? SGR_YELLOW : NULL, "%llu",
          (unsigned long long)d->stashed);
    for (size_t k = 0; k < 3; k++) {
        const msgpack_object_array *l = d->lists[k];
        printf("%s%-13s%s", ctl_sgr(SGR_BOLD), pid_lists[k], ctl_sgr("0"));
        for (uint32_t i = 0; i < l->size; i++)
            printf(" %.*s", (int)l->ptr[i].via.str.size,
                   l->ptr[i].via.str.ptr);
        printf("%s\n", l->size == 0 ? " -" : "");
    }
    field_str("describe", NULL, d->describe);
}

int
ctl_cmd_info(const ctl_target *t, const ctl_opts *o, const char *who)
{
    ctl_conn c;
    char pid[40];
    int rc = open_actor(&c, t, who, pid, sizeof pid);
    if (rc != CTL_OK)
        return rc;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ctl_request_begin(&sb, &pk, "info", 1);
    msgpack_pack_str_with_body(&pk, "pid", 3);
    msgpack_pack_str_with_body(&pk, pid, strlen(pid));
    ctl_reply r;
    detail d;
    rc = ctl_call(&c, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    ctl_close(&c);
    if (rc == CTL_OK && (rc = detail_decode(r.root, &d)) == CTL_OK) {
        if (o->json)
            info_json(&d);
        else
            info_text(&d);
    }
    ctl_reply_free(&r);
    return rc;
}

// ---- kill
// -------------------------------------------------------------------

// Says what kill did: "killed <0.5.1> (reason kill)", or for a trappable
// reason "sent <0.5.1> an exit signal (reason shutdown)", the name after
// the pid when the actor was named; with --json the same as data.
static void
kill_report(bool json, const char *pid, const char *name, const char *reason,
            const long *code)
{
    if (json) {
        printf("{\"ok\":true,\"pid\":\"%s\",\"reason\":", pid);
        if (code != NULL)
            printf("%ld", *code);
        else
            ctl_json_str(stdout, (ctl_str){reason, (uint32_t)strlen(reason)});
        fputs("}\n", stdout);
        return;
    }
    char *clean =
        name ? ctl_clean((ctl_str){name, (uint32_t)strlen(name)}) : NULL;
    char who[300], why[32];
    snprintf(who, sizeof who, "%s%s%s", pid, clean ? " " : "",
             clean ? clean : "");
    free(clean);
    if (code != NULL)
        snprintf(why, sizeof why, "%ld", *code);
    else
        snprintf(why, sizeof why, "%s", reason);
    if (strcmp(why, "kill") == 0)
        printf("killed %s (reason kill)\n", who);
    else
        printf("sent %s an exit signal (reason %s)\n", who, why);
}

int
ctl_cmd_kill(const ctl_target *t, const ctl_opts *o, const char *who)
{
    const char *reason = o->reason ? o->reason : "kill";
    char *end;
    long code = strtol(reason, &end, 10);
    bool numeric = end != reason && *end == '\0';
    if (numeric ? code >= 0 || code < INT32_MIN
                : strcmp(reason, "kill") && strcmp(reason, "shutdown") &&
                      strcmp(reason, "normal"))
        return ctl_fail(CTL_USAGE,
                        "kill: bad reason \"%s\" (kill, shutdown, normal or "
                        "a negative error code)",
                        reason);
    ctl_conn c;
    char pid[40];
    int rc = open_actor(&c, t, who, pid, sizeof pid);
    if (rc != CTL_OK)
        return rc;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ctl_request_begin(&sb, &pk, "kill", 2);
    msgpack_pack_str_with_body(&pk, "pid", 3);
    msgpack_pack_str_with_body(&pk, pid, strlen(pid));
    msgpack_pack_str_with_body(&pk, "reason", 6);
    if (numeric)
        msgpack_pack_int64(&pk, code);
    else
        msgpack_pack_str_with_body(&pk, reason, strlen(reason));
    ctl_reply r;
    rc = ctl_call(&c, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    ctl_close(&c);
    ctl_reply_free(&r);
    char named[40];
    if (rc == CTL_OK)
        kill_report(o->json, pid,
                    ctl_pid_normalise(who, named, sizeof named) ? NULL : who,
                    reason, numeric ? &code : NULL);
    return rc;
}

// ---- upgrade
// ----------------------------------------------------------------

int
ctl_cmd_upgrade(const ctl_target *t, const ctl_opts *o, const char *app,
                const char *module)
{
    char abs[PATH_MAX];
    if (realpath(module, abs) == NULL)
        return ctl_fail(CTL_ERROR, "upgrade: cannot find %s: %s", module,
                        strerror(errno));
    ctl_target longer = *t; // an upgrade waits for every actor
    if (longer.timeout_ms < 60000)
        longer.timeout_ms = 60000;
    ctl_conn c;
    int rc = ctl_connect(&c, &longer);
    if (rc != CTL_OK)
        return rc;
    c.about = app;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ctl_request_begin(&sb, &pk, "upgrade", 2);
    msgpack_pack_str_with_body(&pk, "app", 3);
    msgpack_pack_str_with_body(&pk, app, strlen(app));
    msgpack_pack_str_with_body(&pk, "module", 6);
    msgpack_pack_str_with_body(&pk, abs, strlen(abs));
    ctl_reply r;
    rc = ctl_call(&c, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    ctl_close(&c);
    static const char *const keys[] = {"app",          "from",        "to",
                                       "actors",       "specs",       "module",
                                       "pause_p50_us", "pause_max_us"};
    ctl_str v[8];
    for (size_t i = 0; rc == CTL_OK && i < 8; i++)
        rc = ctl_get_str(r.root, keys[i], "the reply", &v[i]);
    // Only when some actors, started from old specs during the upgrade,
    // kept the old version.
    ctl_str left = {"", 0};
    if (rc == CTL_OK && ctl_field(r.root, "stragglers") != NULL)
        rc = ctl_get_str(r.root, "stragglers", "the reply", &left);
    if (rc == CTL_OK && o->json) {
        fputc('{', stdout);
        for (size_t i = 0; i < 8; i++) {
            printf("%s\"%s\":", i ? "," : "", keys[i]);
            ctl_json_str(stdout, v[i]);
        }
        if (left.n > 0) {
            fputs(",\"stragglers\":", stdout);
            ctl_json_str(stdout, left);
        }
        fputs("}\n", stdout);
    } else if (rc == CTL_OK) {
        char *s[8];
        for (size_t i = 0; i < 8; i++)
            s[i] = ctl_clean(v[i]); // what the node says may be anything
        printf("upgraded %s from %s to %s: %s actors switched, held %s us "
               "(median), %s us at most; %s child specs\n",
               s[0], s[1], s[2], s[3], s[6], s[7], s[4]);
        if (left.n > 0) {
            char *l = ctl_clean(left);
            printf("%s actors started during the upgrade kept %s: their "
                   "change failed\n",
                   l, s[1]);
            free(l);
        }
        for (size_t i = 0; i < 8; i++)
            free(s[i]);
    }
    ctl_reply_free(&r);
    return rc;
}
