// SPDX-License-Identifier: MIT
// Error codes. Every fallible call returns 0 or a negative TP_E* code. Codes
// that mean what an errno value means reuse it (TP_EINVAL == -EINVAL); the
// runtime's own live in a reserved block from -4000 down. Names and messages
// come from one X-macro list so they never drift apart.
#ifndef TROUPE_ERR_H
#define TROUPE_ERR_H

#include <errno.h>

#ifndef TP_API
#define TP_API __attribute__((visibility("default")))
#endif

#define TP_ERRNO_MAP(X)                                                       \
    X(EINVAL, -EINVAL, "invalid argument")                                    \
    X(ENOMEM, -ENOMEM, "out of memory")                                       \
    X(EPERM, -EPERM, "not allowed from this thread or context")               \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                    \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
    X(EEXIST, -EEXIST, "already exists")                                      \
    X(EMSGSIZE, -EMSGSIZE, "message too large")                               \
    X(ENOENT, -ENOENT, "no such entry")                                       \
    X(ENOACTOR, -4001, "no such actor (dead or never existed)")               \
    X(EFULL, -4002, "mailbox full")                                           \
    X(ESHUTDOWN, -4003, "system is shutting down")                            \
    X(EINIT, -4004, "actor init failed")                                      \
    X(EDECODE, -4005, "payload could not be decoded")                         \
    X(ECRASH, -4006, "actor crashed")                                         \
    X(EIGNORED, -4007, "actor init chose not to start")                       \
    X(ENOTCONN, -ENOTCONN, "node not connected")                              \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                      \
    X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available on this host")    \
    X(EACCES, -EACCES, "permission denied")                                   \
    X(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")            \
    X(ENETUNREACH, -ENETUNREACH, "network unreachable")                       \
    X(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                        \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                      \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                    \
    X(EPIPE, -EPIPE, "connection closed for writing")                         \
    X(EMFILE, -EMFILE, "too many open files")

enum {
#define TP__ERR_ENUM(name, value, msg) TP_##name = (value),
    TP_ERRNO_MAP(TP__ERR_ENUM)
#undef TP__ERR_ENUM
};

// Returns a static, human-readable message for `err` (a TP_E* code, or 0).
// Unknown codes give "unknown error". Any thread.
TP_API const char *tp_strerror(int err);

// Returns the static symbolic name of `err`, such as "TP_ENOACTOR", or
// "TP_OK" for 0 and "TP_E?" for an unknown code. Any thread.
TP_API const char *tp_err_name(int err);

#endif
