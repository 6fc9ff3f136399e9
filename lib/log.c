// SPDX-License-Identifier: MIT
// Logging: one line per event, key=value fields, written to the system's
// log callback or to stderr with a journald priority prefix ("<3>").
#include "troupe_impl.h"

#include <stdarg.h>
#include <stdio.h>

void
tp__log(tp_system *sys, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (sys != NULL && sys->cfg.log != NULL) {
        sys->cfg.log(sys->cfg.log_userdata, level, line);
        return;
    }
    // One fprintf per line keeps lines from different threads whole.
    fprintf(stderr, "<%d>troupe: %s\n", level, line);
}
