// SPDX-License-Identifier: MIT
// The actor system: a pool of scheduler threads, an actor table and a
// registry. Create it with a configuration, start it, spawn actors into it,
// wait for it to finish and destroy it. Several systems may live in one
// process; each is independent.
#ifndef TROUPE_SYSTEM_H
#define TROUPE_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

#ifndef TP_API
#define TP_API __attribute__((visibility("default")))
#endif

typedef struct tp_system tp_system;

// What happens when a message is sent to an actor whose user lane is full.
// TP_OVERFLOW_DEFAULT means "the system's default" in spawn options and
// TP_OVERFLOW_BACKPRESSURE in a system configuration.
typedef enum tp_overflow {
    TP_OVERFLOW_DEFAULT = 0,
    // Accept the message; a sending actor is muted (not scheduled) until the
    // receiver drains below half its capacity; a thread outside the system
    // waits up to the configured send timeout and gets TP_ETIMEDOUT. A
    // callback that goes on sending to the full receiver gets TP_EFULL once
    // it holds twice its capacity, so memory stays bounded.
    TP_OVERFLOW_BACKPRESSURE,
    // Refuse the message with TP_EFULL; the caller keeps it.
    TP_OVERFLOW_REJECT,
    // Accept and discard the new message, counting it as dropped.
    TP_OVERFLOW_DROP_NEWEST,
    // Accept the new message and discard the oldest queued one, counting it.
    // The receiver discards lazily, before it handles its next message; if
    // it falls behind by twice its capacity the newest are dropped instead,
    // so memory stays bounded.
    TP_OVERFLOW_DROP_OLDEST,
    // Discard the message and crash the receiver with reason
    // TP_REASON_MAILBOX_OVERFLOW.
    TP_OVERFLOW_EXIT_RECEIVER,
} tp_overflow;

// Log levels, numbered as syslog and journald number them.
enum { TP_LOG_ERR = 3, TP_LOG_WARNING = 4, TP_LOG_INFO = 6, TP_LOG_DEBUG = 7 };

// Receives every log line (crash reports included), without a trailing
// newline. Called from whichever thread logs, possibly several at once.
typedef void (*tp_log_fn)(void *userdata, int level, const char *line);

// Writes one line at `level` (TP_LOG_*) to `sys`'s log sink, or to stderr
// with a journald priority prefix when `sys` is NULL or has none. Lines
// are cut at 1023 bytes. Any thread.
TP_API void tp_log(tp_system *sys, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// System configuration. A zeroed struct means "all defaults".
typedef struct tp_config {
    unsigned threads;          // scheduler threads; 0 = online CPUs (max 1024)
    uint32_t mailbox_capacity; // default user-lane capacity; 0 = 1024
    tp_overflow overflow;      // default overflow policy; 0 = BACKPRESSURE
    unsigned batch;            // messages per activation; 0 = 64 (max 65536)
    int send_timeout_ms;       // how long a non-actor thread waits on a full
                               // BACKPRESSURE mailbox; 0 = 5000, -1 = forever
    tp_log_fn log;             // NULL = stderr, journald priority prefixes
    void *log_userdata;
    // Catch SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT raised inside an
    // actor's callbacks: that actor crashes with reason TP_REASON_SIGNAL +
    // the signal number and a backtrace in its crash report. Installs
    // process-wide handlers at tp_system_start; faults outside actors keep
    // their previous action. The abandoned callback's locks and memory are
    // not recovered: this keeps a node up, it does not make the bug safe.
    bool catch_faults;
    // Measure how long each actor's activations run (tp_actor_info's
    // cpu_ns, `actorctl ps --sort cpu`). Costs two time-stamp reads per
    // activation, about 20 ns: a quarter of a one-message activation's
    // cost, nothing next to real work. Off, cpu_ns stays 0.
    bool cpu_time;
    // Callbacks are not preempted: one that runs long holds its scheduler
    // thread (what it woke runs on another one). An activation still
    // running after `stall_ms` is logged once, as a warning naming the
    // actor and the message it handles; introspection shows the actor as
    // TP_ACTOR_BUSY and tp_system_stats counts it. 0 = 1000, -1 = off.
    // The I/O thread watches, from tp_system_start on, eight times per
    // `stall_ms` (capped at 125 ms): a stall is reported by 1.25 times
    // `stall_ms` after the activation began.
    int stall_ms;
} tp_config;

// Creates a system in `*out` from `cfg` (NULL for all defaults). Scheduler
// threads start with tp_system_start; actors may be spawned before that and
// run once it is called. The caller owns the system and releases it with
// tp_system_destroy. Returns 0, TP_EINVAL (NULL `out`, a field out of range;
// `*out` untouched), TP_ENOMEM or TP_EAGAIN (threads could not be created).
// Any thread outside an actor.
TP_API int tp_system_new(tp_system **out, const tp_config *cfg);

// Starts the scheduler threads. Returns 0, TP_EINVAL for NULL, TP_EEXIST if
// already started, TP_EAGAIN if a thread could not be created (the system is
// then left unstarted), TP_EPERM from inside an actor.
TP_API int tp_system_start(tp_system *sys);

// Blocks until every actor has exited or tp_system_stop was called, or until
// `timeout_ms` passes (-1 waits forever). Returns 0 when one of those
// happened, TP_ETIMEDOUT, TP_EINVAL (NULL, timeout below -1), or TP_EPERM
// when called from inside an actor (it would block a scheduler thread).
TP_API int tp_system_wait(tp_system *sys, int timeout_ms);

// Asks the system to stop: wakes every tp_system_wait. Actors keep running
// until tp_system_destroy. Returns 0 or TP_EINVAL. Any thread, actors too.
TP_API int tp_system_stop(tp_system *sys);

// Stops the scheduler threads, terminates every remaining actor with reason
// TP_REASON_SHUTDOWN (its terminate callback runs on the calling thread),
// frees every queued message and all memory, and sets `*sys` to NULL.
// Accepts NULL and a pointer to NULL. Returns 0, or TP_EPERM from inside an
// actor (nothing is changed then).
TP_API int tp_system_destroy(tp_system **sys);

// Counters of one scheduler thread; each is a running total.
typedef struct tp_worker_stats {
    uint64_t activations; // times an actor was run
    uint64_t messages;    // messages handled
    uint64_t steals;      // actors taken from another worker's queue
    uint64_t sleeps;      // times the thread parked for lack of work
} tp_worker_stats;

// System-wide figures.
typedef struct tp_system_stats {
    unsigned threads;
    uint64_t actors;       // live actors now
    uint64_t spawned;      // actors spawned since creation
    uint64_t exited;       // actors exited since creation
    uint64_t crashed;      // of which exited abnormally
    uint64_t dead_letters; // messages discarded: dropped, or queued at death
    uint64_t timers;       // timers pending (or whose message is queued)
    uint64_t stalls;       // activations that ran past tp_config.stall_ms
    tp_worker_stats total; // the sum over workers
} tp_system_stats;

// Fills `*out` with a snapshot of the system's counters. Counters are read
// without stopping the system, so they may be mutually a little stale.
// Returns 0 or TP_EINVAL. Any thread.
TP_API int tp_system_stats_get(tp_system *sys, tp_system_stats *out);

// Fills `*out` with the counters of worker `index` (0 .. threads-1). Returns
// 0 or TP_EINVAL (NULL, index out of range). Any thread.
TP_API int tp_worker_stats_get(tp_system *sys, unsigned index,
                               tp_worker_stats *out);

#endif
