// SPDX-License-Identifier: MIT
// Process identifiers. A tp_pid is a 64-bit value naming a node, a slot in
// that node's actor table and the slot's generation. Copy it freely; it holds
// no reference. A pid whose actor has died stays harmless, even after the
// slot has been reused: a call that reaches the actor now (a send, a link,
// an exit signal, a lookup of its information) answers TP_ENOACTOR, and
// one that answers later (a monitor, a request, a timer) returns 0 and
// tells its caller as its header says (DOWN or FAILED noproc, or nothing
// delivered).
#ifndef TROUPE_PID_H
#define TROUPE_PID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef TP_API
#define TP_API __attribute__((visibility("default")))
#endif

// Layout, from the most significant bit: node (16 bits), generation (24),
// slot (24). Node 0 is the local node until distribution assigns ids.
typedef struct tp_pid {
    uint64_t v;
} tp_pid;

#define TP_PID_NODE_BITS 16
#define TP_PID_GEN_BITS 24
#define TP_PID_SLOT_BITS 24

// The nil pid: the sender of a message sent from outside any actor.
#define TP_PID_NIL ((tp_pid){0})

// Builds a pid from its parts; parts wider than their field are truncated.
static inline tp_pid
tp_pid_make(uint32_t node, uint32_t slot, uint32_t gen)
{
    tp_pid p;
    p.v = ((uint64_t)(node & 0xffffu) << 48) |
          ((uint64_t)(gen & 0xffffffu) << 24) | (uint64_t)(slot & 0xffffffu);
    return p;
}

static inline uint32_t
tp_pid_node(tp_pid p)
{
    return (uint32_t)(p.v >> 48);
}

static inline uint32_t
tp_pid_gen(tp_pid p)
{
    return (uint32_t)(p.v >> 24) & 0xffffffu;
}

static inline uint32_t
tp_pid_slot(tp_pid p)
{
    return (uint32_t)p.v & 0xffffffu;
}

static inline bool
tp_pid_eq(tp_pid a, tp_pid b)
{
    return a.v == b.v;
}

static inline bool
tp_pid_is_nil(tp_pid p)
{
    return p.v == 0;
}

// Longest text tp_pid_format writes, with the terminating NUL.
#define TP_PID_STRLEN 32

// Writes `p` as "<node.slot.gen>" into `buf` (at most `size` bytes, always
// NUL-terminated when size > 0). Returns the length the full text needs, like
// snprintf. Any thread.
TP_API int tp_pid_format(tp_pid p, char *buf, size_t size);

// Parses "<node.slot.gen>" (surrounding spaces allowed) into `*out`. Returns
// 0, or TP_EINVAL for NULL arguments, bad syntax or a field out of range,
// leaving `*out` unchanged. Any thread.
TP_API int tp_pid_parse(const char *text, tp_pid *out);

#endif
