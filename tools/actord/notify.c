// SPDX-License-Identifier: MIT
// systemd's notify protocol without libsystemd: each state change is one
// datagram of "KEY=VALUE" lines sent to the Unix socket named by
// NOTIFY_SOCKET (in the abstract namespace when the name starts with '@').
// Outside systemd the variable is unset and every call does nothing.
#include "actord.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un notify_addr;
static socklen_t notify_len; // 0: no service manager to tell
static bool notify_failed;

uint64_t
ad_notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t n = path != NULL ? strlen(path) : 0;
    if (n >= 2 && n < sizeof notify_addr.sun_path &&
        (path[0] == '/' || path[0] == '@')) {
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, path, n);
        if (path[0] == '@')
            notify_addr.sun_path[0] = 0; // abstract: no trailing NUL counts
        else
            n++; // the path's NUL
        notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else if (path != NULL) {
        ad_log(TP_LOG_WARNING, "notify_socket_ignored path=%s", AD_Q(path));
    }
    uint64_t usec = 0;
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wpid = getenv("WATCHDOG_PID");
    if (wd != NULL && (wpid == NULL || atol(wpid) == (long)getpid()))
        usec = strtoull(wd, NULL, 10);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return usec;
}

void
ad_notify(const char *fmt, ...)
{
    if (notify_len == 0)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t sent = -1;
    int err = errno;
    if (fd >= 0) {
        do
            sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
                          (struct sockaddr *)&notify_addr, notify_len);
        while (sent < 0 && errno == EINTR);
        err = errno;
        close(fd);
    }
    if (sent < 0 && !notify_failed) {
        notify_failed = true; // once: the manager may simply be gone
        ad_log(TP_LOG_WARNING, "notify_failed error=%s", AD_Q(strerror(err)));
    }
}
