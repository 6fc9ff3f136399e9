// SPDX-License-Identifier: MIT
// A growable byte buffer for pending writes: the sockets (io) and the
// peer connections (dist) both queue output in one, so it lives below them.
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

void
tp__wbuf_reserve(tp__wbuf *b, size_t more)
{
    if (b->failed || b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void
tp__wbuf_free(tp__wbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
