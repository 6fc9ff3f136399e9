// SPDX-License-Identifier: MIT
// A growable byte buffer for pending writes (buf.c). Standalone, so the
// wire codec's header can use it without the rest of the core.
#ifndef TROUPE_CORE_BUF_H
#define TROUPE_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A growable output buffer (sockets' and connections' pending writes).
typedef struct tp__wbuf {
    uint8_t *p;
    size_t len, cap;
    bool failed; // an allocation failed; contents are unusable
} tp__wbuf;

// Makes room for `more` bytes after len; on failure sets `failed` and
// leaves the contents as they were.
void tp__wbuf_reserve(tp__wbuf *b, size_t more);
// Frees the bytes and empties `b`.
void tp__wbuf_free(tp__wbuf *b);

#endif
