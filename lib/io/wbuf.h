// SPDX-License-Identifier: MIT
// A growable output buffer, for connections' and sockets' pending bytes
// (wbuf.c). Included by io.h and by dist/wire.h, whose frame builders
// append to one; it needs only system headers.
#ifndef TROUPE_IO_WBUF_H
#define TROUPE_IO_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tp__wbuf {
    uint8_t *p;
    size_t len, cap;
    bool failed; // an allocation failed; contents are unusable
} tp__wbuf;

// Makes room for `more` bytes after b->len, or sets b->failed.
void tp__wbuf_reserve(tp__wbuf *b, size_t more);
// Frees the bytes and empties `b`; it may be used again.
void tp__wbuf_free(tp__wbuf *b);

#endif
