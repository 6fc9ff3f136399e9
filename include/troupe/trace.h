// SPDX-License-Identifier: MIT
// Tracing one actor: the messages it handles and sends, the signals it
// gets, the actors it spawns, its exit and its state changes, as events a
// reader takes from a bounded buffer. A trace is opt-in, per actor, and
// stops itself: after a count of events, after a time limit, or when the
// actor exits. Beyond a rate (events per second) and whenever the buffer
// is full, events are dropped and counted, never waited for, so tracing a
// hot actor cannot slow its node by more than the cost of noting an event.
// An actor nobody traces pays one test of a flag per message.
//
// actorctl trace reads the same events from a running node through the
// control socket (lib/observe/CONTROL.md).
#ifndef TROUPE_TRACE_H
#define TROUPE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"

// What a trace records (tp_trace_opts.what), or'ed together.
enum {
    TP_TRACE_RECEIVED = 1u << 0, // messages it starts to handle
    TP_TRACE_SENT = 1u << 1,     // messages it sends
    TP_TRACE_SIGNALS = 1u << 2,  // link, unlink, exit, monitor, demonitor
                                 // and DOWN signals that reach it
    TP_TRACE_LIFE = 1u << 3,     // actors it spawns, and its own exit
    TP_TRACE_STATE = 1u << 4,    // state changes of a state machine, and
                                 // notes (tp_trace_note)
    TP_TRACE_ALL = 0x1f,
};

typedef enum tp_trace_kind {
    TP_TEV_RECEIVED = 1, // peer: the sender; tag, size, wait_us
    TP_TEV_SENT,         // peer: the receiver; tag, size; result: the send's
    TP_TEV_SIGNAL,       // peer: the signal's sender; text: "link",
                         // "unlink", "exit", "monitor", "demonitor" or
                         // "down"; reason: an exit's or a DOWN's
    TP_TEV_SPAWN,        // peer: the new actor; text: its behaviour
    TP_TEV_EXIT,         // reason: why the actor exited (the trace's last)
    TP_TEV_STATE,        // text: "FROM -> TO"
    TP_TEV_NOTE,         // text: what tp_trace_note wrote
} tp_trace_kind;

// Room for an event's text, its terminating NUL included; longer texts are
// cut (at a UTF-8 character's boundary).
#define TP_TRACE_TEXT 64

typedef struct tp_trace_event {
    uint64_t seq;  // 1 for the trace's first event, then one more for
                   // each, dropped ones included (a gap: drops)
    int64_t at_us; // when, in microseconds since the trace started
    tp_trace_kind kind;
    tp_pid actor;    // the traced actor
    tp_pid peer;     // see tp_trace_kind; nil where it has none
    uint32_t tag;    // RECEIVED, SENT: the message's tag
    uint32_t size;   // RECEIVED, SENT: its payload's size in bytes
    int64_t wait_us; // RECEIVED: how long it waited in the mailbox;
                     // -1 when it was queued before the trace started
                     // (unless the wait-time metrics timed it)
    int reason;      // SIGNAL (exit, down), EXIT: the reason
    int result;      // SENT: 0 or the send's TP_E* code
    char text[TP_TRACE_TEXT];
} tp_trace_event;

typedef struct tp_trace_opts {
    unsigned what;    // TP_TRACE_*; 0: TP_TRACE_ALL
    uint32_t count;   // ends after this many events, dropped ones
                      // included; 0: 100
    uint32_t seconds; // ends this long after it started; 0: 60
    uint32_t rate;    // events per second kept at most, beyond which they
                      // are dropped; 0: 1000
} tp_trace_opts;

// Why a trace ended (tp_trace_status.end).
typedef enum tp_trace_end {
    TP_TRACE_RUNNING = 0,
    TP_TRACE_END_COUNT,   // it recorded opts.count events
    TP_TRACE_END_TIME,    // opts.seconds passed
    TP_TRACE_END_EXITED,  // the actor exited
    TP_TRACE_END_STOPPED, // stopped: the system shut down, or (for a
                          // reader on another thread) tp_trace_stop
} tp_trace_end;

typedef struct tp_trace_status {
    tp_pid pid;
    tp_trace_end end;
    uint64_t events;  // recorded so far, read or not
    uint64_t dropped; // dropped by the rate or a full buffer
} tp_trace_status;

// At most this many traces run at once in a system.
#define TP_TRACE_MAX 16

typedef struct tp_trace tp_trace;

// Starts tracing the local actor `pid`, with `opts` (NULL: the defaults).
// Returns 0 with *out set; TP_EINVAL for a bad argument (what outside
// TP_TRACE_ALL, rate or count over 1,000,000, seconds over 86,400),
// TP_ENOACTOR when the actor is not alive here, TP_EEXIST when another
// trace already follows it, TP_EAGAIN when TP_TRACE_MAX traces run,
// TP_ESHUTDOWN once tp_system_destroy began, TP_ENOMEM. Any thread,
// actors' included.
TP_API int tp_trace_start(tp_system *sys, tp_pid pid,
                          const tp_trace_opts *opts, tp_trace **out);

// Takes up to `max` events, oldest first, waiting up to timeout_ms (-1:
// without limit; 0: not at all) for the first. Returns how many it took;
// 0 when none came in time; TP_ESHUTDOWN once the trace has ended and every
// event was taken. Not from an actor unless timeout_ms is 0 (TP_EPERM);
// one reader at a time per trace. On a test system nothing runs while it
// waits: read with timeout_ms 0 after stepping.
TP_API int tp_trace_read(tp_trace *t, tp_trace_event *out, size_t max,
                         int timeout_ms);

// The trace's counts and whether, and why, it ended. Any thread.
TP_API void tp_trace_status_get(tp_trace *t, tp_trace_status *out);

// Ends the trace if it runs and frees it, with its unread events; sets *t
// to NULL. Accepts NULL and a pointer to NULL. Call it once for each
// tp_trace_start, before tp_system_destroy. A read waiting on another
// thread returns TP_ESHUTDOWN first (stop waits for it to leave); that
// thread must not use the trace again.
TP_API void tp_trace_stop(tp_trace **t);

// Whether the calling actor is traced for `what` (TP_TRACE_*): a cheap
// test before formatting a note.
TP_API bool tp_traced(tp_ctx *ctx, unsigned what);

// Records a TP_TEV_NOTE event, printf-style, when the calling actor is
// traced with TP_TRACE_STATE; does nothing otherwise.
TP_API void tp_trace_note(tp_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Records a TP_TEV_STATE event "FROM -> TO" when the calling actor is
// traced with TP_TRACE_STATE. State machines call it on each change of
// state; a hand-written behaviour may too.
TP_API void tp_trace_state(tp_ctx *ctx, const char *from, const char *to);

#endif
