// SPDX-License-Identifier: MIT
// Logging: one line per event, key=value fields, handed with its origin to
// the system's log sink. The runtime's own lines come from TP_LOG_RUNTIME
// ("troupe"); an application's, from the actor that logged them or the
// origin it named. tp_log_stderr, the default sink, writes a line as
// journald reads it ("<3>" priority prefix) and adds a timestamp when
// stderr is not the journal.
#include "core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// Whether stderr is a stream to journald: systemd sets JOURNAL_STREAM to
// "DEVICE:INODE" of the stream it connects, and a redirected stderr has
// another one.
static bool
stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char tail;
    struct stat st;
    if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return false;
    return fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev &&
           st.st_ino == ino;
}

// Writes "2026-12-04T10:11:12.345Z " (UTC) into `buf`; returns its length.
static size_t
timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int w = snprintf(buf + n, size - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    return w > 0 && (size_t)w < size - n ? n + (size_t)w : n;
}

// Appends `s` to the line in `buf`, newlines turned into spaces, keeping
// room for the final newline.
static size_t
append(char *buf, size_t len, size_t size, const char *s)
{
    for (; *s != 0 && len + 1 < size; s++)
        buf[len++] = *s == '\n' || *s == '\r' ? ' ' : *s;
    return len;
}

void
tp_log_stderr(void *userdata, int level, const char *origin, const char *line)
{
    (void)userdata;
    char buf[TP_LOG_MAX + 160];
    int n = snprintf(buf, sizeof buf, "<%d>", level);
    size_t len = n > 0 ? (size_t)n : 0;
    if (!stderr_is_journal())
        len += timestamp(buf + len, sizeof buf - len);
    if (origin != NULL && origin[0] != 0) {
        len = append(buf, len, len + 64, origin); // 63 bytes at most
        len = append(buf, len, sizeof buf, ": ");
    }
    // The text is cut at TP_LOG_MAX bytes, as tp_log cuts it.
    len = append(buf, len, len + TP_LOG_MAX + 1, line ? line : "");
    buf[len++] = '\n';
    // One write per line keeps lines from different threads whole.
    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; // nowhere to complain to
        off += (size_t)w;
    }
}

static void
log_v(tp_system *sys, int level, const char *origin, const char *fmt,
      va_list ap)
{
    char line[TP_LOG_MAX + 1];
    vsnprintf(line, sizeof line, fmt, ap);
    if (sys != NULL && sys->cfg.log != NULL)
        sys->cfg.log(sys->cfg.log_userdata, level, origin, line);
    else
        tp_log_stderr(NULL, level, origin, line);
}

void
tp__log(tp_system *sys, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(sys, level, TP_LOG_RUNTIME, fmt, ap);
    va_end(ap);
}

void
tp_log(tp_system *sys, int level, const char *fmt, ...)
{
    if (fmt == NULL)
        return;
    // Inside one of the system's actors the line names it.
    char origin[48 + TP_PID_STRLEN] = "";
    tp_actor *a = tp__self.actor;
    if (a != NULL && (a->system == sys || sys == NULL)) {
        char pid[TP_PID_STRLEN];
        tp_pid_format(a->pid, pid, sizeof pid);
        snprintf(origin, sizeof origin, "%.47s %s",
                 a->behaviour->name ? a->behaviour->name : "?", pid);
    }
    va_list ap;
    va_start(ap, fmt);
    log_v(sys, level, origin, fmt, ap);
    va_end(ap);
}

void
tp_log_as(tp_system *sys, int level, const char *origin, const char *fmt, ...)
{
    if (fmt == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(sys, level, origin ? origin : "", fmt, ap);
    va_end(ap);
}
