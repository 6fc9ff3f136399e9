// SPDX-License-Identifier: MIT
// Printing and parsing pids as "<node.slot.gen>".
#include "core/core.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int
tp_pid_format(tp_pid p, char *buf, size_t size)
{
    return snprintf(buf, size, "<%" PRIu32 ".%" PRIu32 ".%" PRIu32 ">",
                    tp_pid_node(p), tp_pid_slot(p), tp_pid_gen(p));
}

// Reads a decimal field no larger than `max`; advances *s past it.
static int
field(const char **s, uint32_t max, uint32_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > max)
            return -1;
    }
    *out = (uint32_t)v;
    *s = p;
    return 0;
}

int
tp_pid_parse(const char *text, tp_pid *out)
{
    if (out == NULL || text == NULL)
        return TP_EINVAL;
    const char *s = text;
    uint32_t node, slot, gen;
    while (isspace((unsigned char)*s))
        s++;
    if (*s++ != '<' || field(&s, 0xffff, &node) != 0 || *s++ != '.' ||
        field(&s, 0xffffff, &slot) != 0 || *s++ != '.' ||
        field(&s, 0xffffff, &gen) != 0 || *s++ != '>')
        return TP_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '\0')
        return TP_EINVAL;
    *out = tp_pid_make(node, slot, gen);
    return 0;
}
