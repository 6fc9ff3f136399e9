// SPDX-License-Identifier: MIT
// actord's logging: one line per event on stderr, written by the
// library's tp_log_stderr: "<N>" journald priority prefix first (systemd
// turns it into the entry's priority), a timestamp unless stderr is the
// journal, then the origin: "actord: " for actord's own lines, "troupe: "
// for the runtime's, the logging actor ("kv_acceptor <0.10.1>: ") or
// "app: " for an application's, then the event and its key=value fields.
// A level filter set from the configuration (and changed by SIGHUP) drops
// lines above it. Also the diagnostics list the configuration reader
// fills.
#include "actord.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Read by every thread that logs, written by the main thread on reload.
// Relaxed: a line racing with a change may use either level, and nothing
// else is published through it.
static atomic_int log_level = TP_LOG_INFO;

static const char *const level_names[8] = {
    [TP_LOG_ERR] = "err",
    [TP_LOG_WARNING] = "warning",
    [TP_LOG_INFO] = "info",
    [TP_LOG_DEBUG] = "debug",
};

void
ad_log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int
ad_log_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

const char *
ad_log_level_name(int level)
{
    return level >= 0 && level < 8 ? level_names[level] : NULL;
}

int
ad_log_level_parse(const char *name)
{
    for (int i = 0; i < 8; i++)
        if (level_names[i] != NULL && strcmp(level_names[i], name) == 0)
            return i;
    return -1;
}

void
ad_log(int level, const char *fmt, ...)
{
    if (level > ad_log_level())
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tp_log_stderr(NULL, level, "actord", text);
}

void
ad_log_sink(void *userdata, int level, const char *origin, const char *line)
{
    if (level <= ad_log_level())
        tp_log_stderr(userdata, level, origin[0] ? origin : "app", line);
}

const char *
ad_quote(char *buf, size_t size, const char *s)
{
    if (s == NULL)
        s = "";
    bool plain = *s != 0;
    for (const char *c = s; *c != 0 && plain; c++)
        plain =
            (unsigned char)*c > ' ' && *c != '"' && *c != '=' && *c != 0x7f;
    if (plain) {
        snprintf(buf, size, "%s", s);
        return buf;
    }
    size_t n = 0;
    buf[n++] = '"';
    for (const char *c = s; *c != 0 && n + 3 < size; c++) {
        if ((unsigned char)*c < ' ' || *c == 0x7f)
            continue;
        if (*c == '"' || *c == '\\')
            buf[n++] = '\\';
        buf[n++] = *c;
    }
    buf[n++] = '"';
    buf[n] = 0;
    return buf;
}

// ---- diagnostics -----------------------------------------------------------

// Stands in for a message that could not be allocated; never freed.
static char no_memory[] = "out of memory while reporting an error";

void
ad_diag_add(ad_diag *d, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        char **m = realloc(d->msg, cap * sizeof *m);
        if (m == NULL) {
            free(msg);
            return;
        }
        d->msg = m;
        d->cap = cap;
    }
    d->msg[d->n++] = msg != NULL ? msg : no_memory;
}

void
ad_diag_print(const ad_diag *d, bool as_log)
{
    for (size_t i = 0; i < d->n; i++) {
        if (as_log)
            ad_log(TP_LOG_ERR, "%s", d->msg[i]);
        else
            fprintf(stderr, "%s\n", d->msg[i]);
    }
}

void
ad_diag_free(ad_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->msg[i] != no_memory)
            free(d->msg[i]);
    free(d->msg);
    *d = (ad_diag){0};
}
