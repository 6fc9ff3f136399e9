// SPDX-License-Identifier: MIT
// Error names and messages, generated from the list in troupe/err.h, and
// the text of exit reasons.
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
tp_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define TP__ERR_MSG(name, value, msg)                                         \
    case (value):                                                             \
        return msg;
        TP_ERRNO_MAP(TP__ERR_MSG)
#undef TP__ERR_MSG
    }
    return "unknown error";
}

const char *
tp_err_name(int err)
{
    if (err == 0)
        return "TP_OK";
    switch (err) {
#define TP__ERR_NAME(name, value, msg)                                        \
    case (value):                                                             \
        return "TP_" #name;
        TP_ERRNO_MAP(TP__ERR_NAME)
#undef TP__ERR_NAME
    }
    return "TP_E?";
}

int
tp__err_from_errno(int e)
{
    return e > 0 ? -e : TP_EINVAL;
}

int
tp_reason_format(int reason, char *buf, size_t size)
{
    static const char *const names[] = {
        [TP_REASON_NORMAL - TP_REASON_NORMAL] = "normal",
        [TP_REASON_SHUTDOWN - TP_REASON_NORMAL] = "shutdown",
        [TP_REASON_KILL - TP_REASON_NORMAL] = "kill",
        [TP_REASON_NOPROC - TP_REASON_NORMAL] = "noproc",
        [TP_REASON_NOCONNECTION - TP_REASON_NORMAL] = "noconnection",
        [TP_REASON_MAILBOX_OVERFLOW - TP_REASON_NORMAL] = "mailbox_overflow",
        [TP_REASON_KILLED - TP_REASON_NORMAL] = "killed",
    };
    if (reason >= TP_REASON_NORMAL &&
        (size_t)(reason - TP_REASON_NORMAL) < sizeof names / sizeof names[0])
        return snprintf(buf, size, "%s", names[reason - TP_REASON_NORMAL]);
    if (reason > TP_REASON_SIGNAL && reason < TP_REASON_SIGNAL + 65)
        return snprintf(buf, size, "signal %d", reason - TP_REASON_SIGNAL);
    if (reason < 0 && strcmp(tp_err_name(reason), "TP_E?") != 0)
        return snprintf(buf, size, "%s", tp_err_name(reason));
    if (reason < 0)
        return snprintf(buf, size, "error_%d", reason);
    return snprintf(buf, size, "reason_%d", reason);
}

void
tp__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "troupe: %s:%d: %s: invariant broken: %s\n", file, line,
            func, expr);
    abort();
}
