// SPDX-License-Identifier: MIT
// Socket addresses as the runtime writes them: "HOST:PORT", where HOST is
// a numeric IPv4 address ("127.0.0.1:4370") or an IPv6 address in brackets
// ("[::1]:4370"). One parser for node names, listen addresses, actors'
// sockets and actord's configuration. Included by io.h; it needs only
// system headers, so a tool may include it alone.
#ifndef TROUPE_IO_ADDR_H
#define TROUPE_IO_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

// Longest address tp__addr_format writes, NUL included: brackets, an IPv6
// address with an IPv4 tail, a colon and five digits.
#define TP__ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

// Flags of tp__addr_parse.
enum {
    TP__ADDR_PORT0 = 1, // port 0 (the system picks one) is allowed
    TP__ADDR_CANON = 2, // HOST must be spelled as tp__addr_format spells
                        // it, so that equal addresses are equal strings
};

// Parses "HOST:PORT" into *sa and *len. HOST is a dotted-quad IPv4
// address or an IPv6 address in brackets (no zone); PORT is decimal
// without sign or leading zeros, 1 to 65535, or 0 with TP__ADDR_PORT0.
// Returns 0, or TP_EINVAL when `s` is NULL or not such an address; on
// failure *sa and *len are left unaltered. Any thread.
int tp__addr_parse(const char *s, int flags, struct sockaddr_storage *sa,
                   socklen_t *len);

// Writes IPv4 or IPv6 address `sa` as tp__addr_parse reads it into `buf`
// (TP__ADDR_STRLEN bytes suffice). Returns 0, or TP_EAFNOSUPPORT for
// another family (then `buf` holds "?"). Any thread.
int tp__addr_format(const struct sockaddr *sa, char *buf, size_t size);

// Whether `sa` is a loopback address: 127.0.0.0/8, ::1, or 127.0.0.0/8
// mapped into IPv6.
bool tp__addr_is_loopback(const struct sockaddr_storage *sa);

// The port of IPv4 or IPv6 address `sa`, host order; 0 for another family.
unsigned tp__addr_port(const struct sockaddr_storage *sa);

#endif
