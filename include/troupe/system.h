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
    // waits up to the configured send timeout and gets TP_ETIMEDOUT. The
    // bound is per sender: one activation (or init) of an actor may put up
    // to the receiver's capacity into full mailboxes, then gets TP_EFULL,
    // so memory stays bounded by what muted senders sent. Two exceptions,
    // so that actors never wait on each other in a cycle nor before they
    // run: an actor is not muted while it runs init, nor by a receiver
    // that is itself muted (waiting on a third mailbox); such a sender
    // still gets TP_EFULL past the bound, so the receiver's mailbox grows
    // by at most its capacity per activation of that sender until the
    // receiver runs again.
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

// Every call that waits takes `int timeout_ms`: -1 (TP_FOREVER) waits for
// as long as it takes, 0 does not wait (it tries once, or arms a timeout
// that is due at once), a positive value waits that many milliseconds, and
// anything below -1 is refused with TP_EINVAL. Configuration fields are
// the exception for 0, which there means "the default" (each says so).
#define TP_FOREVER (-1)

// Log levels, numbered as syslog and journald number them.
enum { TP_LOG_ERR = 3, TP_LOG_WARNING = 4, TP_LOG_INFO = 6, TP_LOG_DEBUG = 7 };

// The origin of the runtime's own log lines: crash reports, supervisors,
// distribution, the control socket and metrics.
#define TP_LOG_RUNTIME "troupe"

// Receives every log line (crash reports included), without a trailing
// newline, and where it comes from: `origin` is TP_LOG_RUNTIME for the
// runtime's own lines; for an application's, "BEHAVIOUR <PID>" of the actor
// that called tp_log, the origin given to tp_log_as, or "" (tp_log outside
// any actor). Never NULL. Called from whichever thread logs, possibly
// several at once.
typedef void (*tp_log_fn)(void *userdata, int level, const char *origin,
                          const char *line);

// The longest log line, in bytes without its NUL: a crash report carries
// its actor's whole describe output (TP_DESCRIBE_MAX bytes).
#define TP_LOG_MAX 8191

// The default sink (a tp_log_fn; `userdata` is unused): writes
// "<LEVEL>ORIGIN: LINE" to stderr, "ORIGIN: " left out when `origin` is
// "" or NULL and cut at 63 bytes, `line` cut at TP_LOG_MAX bytes and its
// newlines written as spaces,
// with one write(2) so lines from several threads stay whole. When stderr
// is not journald's stream (JOURNAL_STREAM unset, or naming another file
// than stderr) a UTC timestamp with milliseconds follows the priority
// prefix: "<6>2026-12-04T10:11:12.345Z troupe: ...". Any thread.
TP_API void tp_log_stderr(void *userdata, int level, const char *origin,
                          const char *line);

// Writes one line at `level` (TP_LOG_*) to `sys`'s log sink, or with
// tp_log_stderr when `sys` is NULL or has none. Its origin is the calling
// actor, "BEHAVIOUR <PID>" (the name cut at 47 bytes), when called inside
// one of `sys`'s actors (or any actor when `sys` is NULL), else "": the
// runtime's own lines never come from tp_log, so no tp_log line is taken
// for one of them.
// Lines are cut at TP_LOG_MAX bytes. Any thread.
TP_API void tp_log(tp_system *sys, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// tp_log with an origin of the caller's choosing (NULL for ""), such as an
// application's or a library's name. The supervisors use TP_LOG_RUNTIME.
TP_API void tp_log_as(tp_system *sys, int level, const char *origin,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// System configuration. A zeroed struct means "all defaults".
typedef struct tp_config {
    unsigned threads;          // scheduler threads; 0 = online CPUs (max 1024)
    uint32_t mailbox_capacity; // default user-lane capacity; 0 = 1024
    tp_overflow overflow;      // default overflow policy; 0 = BACKPRESSURE
    unsigned batch;            // messages per activation; 0 = 64 (max 65536)
    // How long a non-actor thread waits on a full BACKPRESSURE mailbox:
    // -1 = forever, > 0 = that many ms; 0 = the default, 5000 (a zeroed
    // config means defaults, so 0 cannot mean "no wait" here: use the
    // REJECT policy for that). Below -1: TP_EINVAL.
    int send_timeout_ms;
    tp_log_fn log; // NULL = tp_log_stderr
    void *log_userdata;
    // Catch SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT raised inside an
    // actor's callbacks: that actor crashes with reason TP_REASON_SIGNAL +
    // the signal number and a backtrace in its crash report. Installs
    // process-wide handlers at tp_system_start; faults outside actors keep
    // their previous action. The abandoned callback's locks and memory are
    // not recovered: this keeps a node up, it does not make the bug safe.
    bool catch_faults;
    // Measure how long each actor's activations run (tp_actor_info's
    // cpu_ns, `actorctl ps --sort cpu`) and how long its messages wait
    // in its mailbox (tp_actor_info's wait_*, `actorctl ps --sort wait`,
    // the metrics' troupe_message_wait_seconds). Costs two time-stamp
    // reads per activation, about 20 ns: a quarter of a one-message
    // activation's cost, nothing next to real work; two more per timed
    // message (see wait_sample); and 128 bytes per actor. Off, those
    // fields stay 0.
    bool cpu_time;
    // With cpu_time: one message sent to an actor in `wait_sample` is
    // timed, on average, each sending thread drawing the gap to its next
    // timed message at random (0 = 64; 1 = every message; above 65536 or
    // below 0: TP_EINVAL). Timing a
    // message takes two time-stamp reads and its bookkeeping (some 25 ns
    // and 140 instructions on the VM troupe is developed on, a fifth of a
    // one-message round trip): sampled, the waits' figures are estimates
    // over the timed messages, at a 64th of the cost.
    int wait_sample;
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

// Creates a system from `cfg` (NULL for all defaults) and stores it in
// `*out`. Scheduler threads start with tp_system_start; actors may be
// spawned before that and run once it is called. The caller owns the
// system and releases it with tp_system_destroy. Returns 0, TP_EINVAL (NULL
// `out`, a field out of range;
// `*out` untouched), TP_ENOMEM, TP_EAGAIN (threads could not be created) or
// TP_EPERM (called inside an actor). Any thread outside an actor.
TP_API int tp_system_new(const tp_config *cfg, tp_system **out);

// Starts the scheduler threads. Returns 0, TP_EINVAL for NULL, TP_EEXIST if
// already started, TP_EAGAIN if a thread could not be created (the system is
// then left unstarted), TP_EPERM from inside an actor.
TP_API int tp_system_start(tp_system *sys);

// Blocks until every actor has exited or tp_system_stop was called, or until
// `timeout_ms` passes (-1 waits forever, 0 only checks). Returns 0 when one
// of those happened, TP_ETIMEDOUT, TP_EINVAL (NULL, timeout below -1), or
// TP_EPERM when called from inside an actor (it would block a scheduler
// thread).
TP_API int tp_system_wait(tp_system *sys, int timeout_ms);

// Whether the calling thread may block until actors of `sys` have run:
// true on a thread that is none of the runtime's own (scheduler threads
// and I/O threads of any system must never block) while `sys` runs, that
// is once tp_system_start has returned and until tp_system_destroy
// begins; false otherwise, and for NULL. For code that can either wait
// for actors or leave the waiting to an actor, such as a supervisor whose
// start failed. Any thread, but not concurrently with tp_system_start.
TP_API bool tp_system_may_block(tp_system *sys);

// The system's clock in milliseconds: CLOCK_MONOTONIC, or on a test system
// (test.h) its virtual clock, which starts at 0 and moves only when the
// test moves it. Behaviours that measure time (a window, an age) should
// read this one, so that a test controls it. 0 for NULL. Any thread.
TP_API int64_t tp_now_ms(tp_system *sys);

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
