// SPDX-License-Identifier: MIT
// The growable output buffer of wbuf.h: doubles from WBUF_FIRST bytes, and
// remembers a failed allocation instead of losing bytes silently.
#include "io/wbuf.h"

#include <stdlib.h>
#include <string.h>

#define WBUF_FIRST 256

void
tp__wbuf_reserve(tp__wbuf *b, size_t more)
{
    if (b->failed || b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : WBUF_FIRST;
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
