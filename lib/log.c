// SPDX-License-Identifier: MIT
// Logging: one line per event, key=value fields, written to the system's
// log callback or to stderr with a journald priority prefix ("<3>").
#include "troupe_impl.h"

#include <stdarg.h>
#include <stdio.h>

static void
log_v(tp_system *sys, int level, const char *fmt, va_list ap)
{
    char line[TP_LOG_MAX + 1];
    vsnprintf(line, sizeof line, fmt, ap);
    if (sys != NULL && sys->cfg.log != NULL) {
        sys->cfg.log(sys->cfg.log_userdata, level, line);
        return;
    }
    // One fprintf per line keeps lines from different threads whole.
    fprintf(stderr, "<%d>troupe: %s\n", level, line);
}

void
tp__log(tp_system *sys, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(sys, level, fmt, ap);
    va_end(ap);
}

void
tp_log(tp_system *sys, int level, const char *fmt, ...)
{
    if (fmt == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(sys, level, fmt, ap);
    va_end(ap);
}
