// SPDX-License-Identifier: MIT
// "HOST:PORT" addresses, IPv4 and IPv6 (addr.h). The grammar is strict on
// purpose: a node's full name carries its address and nodes compare names
// as strings, so an address has one spelling wherever TP__ADDR_CANON asks
// for it, and a port always has one.
#include "core/core.h"
#include "io/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define PORT_DIGITS 5

// Reads the decimal port at `p` (the whole rest of the string). Returns
// 0 and sets *port, or TP_EINVAL.
static int
parse_port(const char *p, int flags, unsigned *port)
{
    size_t n = strlen(p);
    if (n == 0 || n > PORT_DIGITS || strspn(p, "0123456789") != n ||
        (p[0] == '0' && n > 1))
        return TP_EINVAL; // one spelling per port: no sign, no leading zero
    unsigned v = 0;
    for (; *p; p++)
        v = v * 10 + (unsigned)(*p - '0');
    if (v > 65535 || (v == 0 && !(flags & TP__ADDR_PORT0)))
        return TP_EINVAL;
    *port = v;
    return 0;
}

// Splits `s` into its host (without brackets) and the port's text.
// Returns the family the host claims (AF_INET, AF_INET6) or -1.
static int
split(const char *s, char *host, size_t size, const char **port)
{
    const char *end;
    int family;
    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        s++;
        *port = end + 2;
        family = AF_INET6;
    } else {
        end = strrchr(s, ':');
        if (end == NULL)
            return -1;
        *port = end + 1;
        family = AF_INET;
    }
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= size)
        return -1;
    memcpy(host, s, n);
    host[n] = 0;
    return family;
}

int
tp__addr_parse(const char *s, int flags, struct sockaddr_storage *sa,
               socklen_t *len)
{
    char host[INET6_ADDRSTRLEN];
    const char *ptext;
    unsigned port;
    if (s == NULL)
        return TP_EINVAL;
    int family = split(s, host, sizeof host, &ptext);
    if (family < 0 || parse_port(ptext, flags, &port) != 0)
        return TP_EINVAL;
    struct sockaddr_storage out;
    memset(&out, 0, sizeof out);
    socklen_t ol;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return TP_EINVAL;
        ol = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return TP_EINVAL;
        ol = sizeof *in6;
    }
    if (flags & TP__ADDR_CANON) {
        char again[TP__ADDR_STRLEN];
        if (tp__addr_format((struct sockaddr *)&out, again, sizeof again) !=
                0 ||
            strcmp(again, s) != 0)
            return TP_EINVAL;
    }
    *sa = out;
    *len = ol;
    return 0;
}

int
tp__addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
        return 0;
    }
    snprintf(buf, size, "?");
    return TP_EAFNOSUPPORT;
}

bool
tp__addr_is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->ss_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

unsigned
tp__addr_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}
