// SPDX-License-Identifier: MIT
// The core subsystem's internal header: messages and their intrusive MPSC
// queues, the actor record, scheduler workers, the actor table, the
// registry, clocks, logging and the system record. Every lib/*/*.c
// includes it first; lib/README.md says which subsystem may call which.
#ifndef TROUPE_CORE_H
#define TROUPE_CORE_H

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe.h"

// Says an invariant of the runtime in code: checked in debug and sanitizer
// builds (the Makefile defines TP_ASSERTS for SAN=... and DEBUG=1), where
// a broken one aborts with its place and text; compiled out in release
// builds, where the expression is not evaluated. Only for the runtime's own
// invariants: bad input from users, files or peers is an error code.
#ifdef TP_ASSERTS
#define TP_ASSERT(cond)                                                       \
    ((cond) ? (void)0 : tp__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define TP_ASSERT(cond) ((void)sizeof(!(cond)))
#endif
_Noreturn void tp__assert_fail(const char *expr, const char *file, int line,
                               const char *func);

#define TP__CACHELINE 64
#define TP__ALIGNED alignas(TP__CACHELINE)

// ---- messages and queues (mailbox.c) ---------------------------------

typedef struct tp__node {
    _Atomic(struct tp__node *) next;
} tp__node;

// Kinds of message. User messages carry a payload; system messages travel
// in the system lane and are never dropped.
enum {
    TP__MSG_USER = 0,
    TP__MSG_OVERFLOW_KILL, // the user lane overflowed under EXIT_RECEIVER
    TP__MSG_LINK,          // from wants a link with us
    TP__MSG_UNLINK,        // from dropped its link with us
    TP__MSG_EXIT,          // an exit signal: tp__signal payload
    TP__MSG_MONITOR,       // from monitors us: payload ref
    TP__MSG_DEMONITOR,     // from dropped monitor ref
    TP__MSG_DOWN,          // a monitored actor exited: tp__signal payload
    TP__MSG_TIMEOUT,       // a request timed out: pub.ref
    TP__MSG_INFO,          // introspection asks for details: tp__info *
    TP__MSG_RESOLVED,      // a request by name found its callee: pub.ref
    TP__MSG_UPGRADE,       // tp_upgrade's phases (upgrade.c): aux, ref, tag
};

enum {
    TP__MSG_OWNS_BUF = 1,      // data points to a malloc'ed buffer to free
    TP__MSG_TIMER = 2,         // sent by timer `aux`, checked before handling
    TP__MSG_LOOSE = 4,         // made for `handle` outside the lanes: free it
    TP__MSG_REPLY = 8,         // a reply to one of the receiver's requests
    TP__MSG_INFO_REQ = 16,     // holds a tp__info reference, released once
    TP__MSG_SOCK_DATA = 32,    // counts in its socket's window until gone
    TP__MSG_SOCK_START = 64,   // accepted: the socket reads once it is gone
    TP__MSG_FORCED = 128,      // a reply let past the capacity on credit
    TP__MSG_UPGRADE_REQ = 256, // an upgrade's phase not yet handled
};

// Whether `r` is the reason of a native fault caught in a callback,
// TP_REASON_SIGNAL + the signal's number.
static inline bool
tp__reason_is_fault(int r)
{
    return r > TP_REASON_SIGNAL && r <= TP_REASON_SIGNAL + 64;
}

// Whether `r` is an exit reason a caller may give: an error code or one of
// the runtime's TP_REASON_* values (see actor.h).
static inline bool
tp__reason_ok(int r)
{
    return r < 0 || (r >= TP_REASON_NORMAL && r <= TP_REASON_KILLED) ||
           tp__reason_is_fault(r);
}

// The payload of exit signals and DOWN messages.
typedef struct tp__signal {
    uint64_t ref; // DOWN: the monitor
    int32_t reason;
    uint8_t linked; // EXIT: came through a link
    char text[TP_REASON_TEXT_MAX];
} tp__signal;

typedef struct tp__worker tp__worker;

typedef struct tp__msg {
    tp__node node; // must stay first: queues link messages through it
    tp_msg pub;
    uint16_t kind;
    uint16_t flags;
    // When a measuring receiver's lane took it (tp__wait_stamp), 0 when
    // not measured.
    uint32_t enq;
    tp__worker *origin; // worker whose pool it came from, or NULL (malloc)
    void *aux;          // TP__MSG_TIMER: the timer that sent it
    // Inline payload follows for copied sends.
} tp__msg;

// A Vyukov-style intrusive multi-producer single-consumer queue. Producers
// swap `head`; the single consumer owns `tail`. The stub lets the queue be
// empty without a NULL head.
typedef struct tp__mpscq {
    _Atomic(tp__node *) head;
    tp__node *tail;
    tp__node stub;
} tp__mpscq;

void tp__mpscq_init(tp__mpscq *q);
void tp__mpscq_push(tp__mpscq *q, tp__node *n);
void tp__mpscq_push_chain(tp__mpscq *q, tp__node *first, tp__node *last);

tp__msg *tp__msg_new_copy(tp_system *sys, uint32_t tag, tp_pid from,
                          const void *data, size_t size);
tp__msg *tp__msg_new_buf(tp_system *sys, uint32_t tag, tp_pid from, void *buf,
                         size_t size);
tp__msg *tp__msg_new_sys(tp_system *sys, uint16_t kind, tp_pid from);
tp__msg *tp__msg_new_raw(tp_system *sys, size_t size);
void tp__msg_free(tp__msg *m);
tp__msg *tp__mailbox_pop(tp__mpscq *q);

// Whether signal `m` keeps its place among its sender's messages: it then
// travels in the receiver's user lane, counted in the total but never
// against the capacity, so it is neither refused nor dropped yet cannot
// overtake what the same sender queued before it. Only an untrappable
// kill, which ends the receiver whatever precedes it, and the runtime's
// own requests (introspection, overflow kill, request timeouts) take the
// system lane, which the receiver reads first.
static inline bool
tp__msg_ordered(const tp__msg *m)
{
    if (m->kind < TP__MSG_LINK || m->kind > TP__MSG_DOWN)
        return false;
    if (m->kind != TP__MSG_EXIT)
        return true;
    const tp__signal *s = m->pub.data;
    return s->linked || s->reason != TP_REASON_KILL;
}
void tp__mailbox_close(tp__mpscq *q);
void tp__msg_retire(tp__msg *m);

// A worker's message pool: blocks it allocated come back to it, directly
// when freed on the same worker, in batches through `remote` otherwise.
typedef struct tp__pool_block {
    struct tp__pool_block *next;
} tp__pool_block;

typedef struct tp__pool_batch {
    tp__pool_block *head, *tail;
    unsigned len;
} tp__pool_batch;

int tp__pool_init(tp__worker *w, unsigned nworkers);
void tp__pool_free_all(tp__worker *w, unsigned nworkers);
tp__worker *tp__pool_io_new(tp_system *sys);
void tp__pool_io_free(tp__worker **w);

// ---- actors (actor.c) -------------------------------------------------

// The mailbox counter packs two numbers so one atomic add both reserves a
// place in the user lane and detects the idle -> scheduled transition: the
// high half counts user messages queued (for the capacity), the low half
// counts everything queued in both lanes plus holds taken by the runtime.
// Whoever moves the low half from 0 to 1 schedules the actor.
#define TP__CNT_ONE ((uint64_t)1)
#define TP__CNT_USER ((uint64_t)1 << 32)
#define TP__CNT_TOTAL(c) ((uint32_t)(c))
#define TP__CNT_USERS(c) ((uint32_t)((c) >> 32))

// Mute states of an actor that sent to a full BACKPRESSURE mailbox.
enum { TP__MUTE_NONE = 0, TP__MUTE_PENDING = 1, TP__MUTE_PARKED = 2 };

typedef struct tp_actor tp_actor;
typedef struct tp__timers tp__timers;
struct tp__ded;

// Fields are grouped by the thread that writes them. The record is not
// cache-line aligned: a million idle actors matter more than the false
// sharing a few hot ones would avoid, and senders touch only the first
// group (plus the queue links), the running actor mostly the second. What
// only some actors have follows the state (TP__TAIL_*), and two pairs of
// fields share their place, each pair never in use at once: see run_next
// and limbo_epoch. 208 bytes on x86-64, served with a small state as a
// 224-byte malloc chunk.
struct tp_actor {
    // Written by senders on any thread.
    _Atomic uint64_t count;
    tp__mpscq user;
    _Atomic uint32_t high_water;
    _Atomic uint32_t drop_debt; // DROP_OLDEST: queued messages to discard
    _Atomic uint64_t dropped;
    _Atomic uint64_t rejected;
    // Requests this actor made that are still pending, and replies let
    // past the capacity for them (tp__deliver_reply): a reply may skip
    // the queue's bound only while the second is below the first.
    _Atomic uint32_t req_pending;
    _Atomic uint32_t req_forced;

    // Written by the actor's own activation (the one thread running it),
    // read by senders.
    tp__mpscq sys;
    tp_pid pid;
    tp_system *system;
    const tp_behaviour *behaviour;
    uint32_t capacity; // low water and settling follow from it, below
    uint8_t overflow;  // tp_overflow, never DEFAULT
    uint8_t started;   // init succeeded
    uint8_t stopping;  // tp_stop was called
    uint8_t hold;      // holds kept in `count` (init, mute)
    uint8_t by_signal; // dying of an exit signal, not of its own doing
    uint8_t tails;     // TP__TAIL_*: fixed before publication
    _Atomic uint8_t dead;
    _Atomic uint8_t latch;      // TP__LATCH_*: set once, never cleared
    _Atomic uint8_t listed;     // on some receiver's mute list
    _Atomic uint8_t io_waiting; // the I/O thread waits for room here
    _Atomic uint8_t marks;      // TP__MARK_*
    _Atomic uint8_t mute;       // TP__MUTE_*
    _Atomic uint8_t mute_lock;  // guards mute_list
    uint8_t rec_class; // the record's size in 16 bytes (actor.c); 0: large
    // Exit signals queued that may kill us (it wraps; only a change counts).
    _Atomic uint16_t exits_pushed;
    uint16_t exits_scanned; // exits_pushed when the user lane was last read
    uint16_t spawn_seq;     // set at publication: orders spawns in a tick
    _Atomic uint64_t handled;

    // Backpressure: senders muted on this actor, guarded by mute_lock.
    _Atomic(tp_actor *) mute_list;
    // An actor is linked in a run queue (overflow, pinned, inject) or a
    // limbo list only while no receiver lists it as muted: it is listed
    // by its own activation, and taken off the list (its link read) before
    // anyone may schedule it again, or before it dies.
    union {
        tp_actor *run_next;  // link in a run queue or limbo
        tp_actor *mute_next; // link in the receiver's list
    };
    _Atomic(tp_actor *) mute_target; // receiver whose list holds us

    // Used only by the actor's activations, of which a dead actor in
    // limbo has no more; the epoch it died in is set only then.
    union {
        uint64_t limbo_epoch;
        struct {
            int stop_reason;    // exit reason once `stopping` is set
            uint32_t overshoot; // sends past full mailboxes this activation
        };
    };
    const tp__msg *current; // message being handled
    struct tp__ext *ext;    // links, monitors, requests; NULL until used
    tp_pid parent;          // the spawning actor, for introspection
    int64_t born_ms;        // CLOCK_MONOTONIC_COARSE at spawn
};

#if defined(__x86_64__)
// What an idle actor costs is a documented figure (README, "Memory"): a
// field added here should find its place in a hole, a tail part or a side
// table, or the README should say what it costs.
_Static_assert(sizeof(tp_actor) == 208, "the actor record grew or shrank");
#endif

// Bits of an actor's `marks`, set by any thread, read on its paths.
enum {
    TP__MARK_SOCKS = 1, // may own sockets: its exit closes them (sock.c)
    // Traced for TP_TRACE_* (trace.h) shifted by one: set by
    // tp_trace_start, cleared by the actor's own activation once it finds
    // its trace over, both under sys->trace_lock (trace.c).
    TP__MARK_TRACE_SHIFT = 1,
    TP__MARK_TRACED = 0x1f << 1,
    // Has faults injected by a test (test.c): looked up when it handles
    // or sends a message.
    TP__MARK_FAULT = 0x40,
    // Held by an upgrade (upgrade.c): its activation parks it, keeping a
    // hold in its count, until the upgrade releases it.
    TP__MARK_HELD = 0x80,
};

// Bits of an actor's `latch`, each set once by any thread, never cleared.
enum {
    TP__LATCH_KILL = 1, // an overflow kill is on its way (send.c)
    // Given a name at some time (registry.c): its exit takes reg_lock to
    // drop it. Set under reg_lock before the name goes in.
    TP__LATCH_NAMED = 2,
    // Its name is dropped: it is dying, and no name may go in but the one
    // its spawn gives it (registry.c).
    TP__LATCH_UNNAMED = 4,
};

// Whether any of the marks `m` is set on `a`. relaxed: as tp__traced.
static inline bool
tp__marked(const tp_actor *a, uint8_t m)
{
    return __builtin_expect(
        (atomic_load_explicit(&((tp_actor *)a)->marks, memory_order_relaxed) &
         m) != 0,
        0);
}

// Whether `a` is traced for any of `what` (TP_TRACE_*). relaxed: a trace
// that starts while this runs catches the next event; trace.c takes
// sys->trace_lock before it records anything.
static inline bool
tp__traced(const tp_actor *a, unsigned what)
{
    return __builtin_expect(
        (atomic_load_explicit(&((tp_actor *)a)->marks, memory_order_relaxed) &
         (what << TP__MARK_TRACE_SHIFT)) != 0,
        0);
}

// Where the user's state starts: the record rounded up to the alignment
// malloc gives, so the state is aligned as if allocated on its own.
#define TP__HEAD ((sizeof(tp_actor) + 15) & ~(size_t)15)

// Whether `a` may be linked through run_next: no receiver lists it as muted
// (mute_next shares its place). relaxed: whoever queues it has seen it
// unlisted (its own activation, or the receiver that unlisted it).
#define TP__LINKABLE(a)                                                       \
    (!atomic_load_explicit(&(a)->listed, memory_order_relaxed))

// The actor's state, allocated with the record (state_size bytes), or NULL
// for a behaviour without one. Derived, not kept: the behaviour is read on
// the same paths anyway.
static inline void *
tp__state(const tp_actor *a)
{
    return a->behaviour->state_size ? (char *)a + TP__HEAD : NULL;
}

// Parts of the record that only some actors have, known at spawn: they
// follow the state, in this order, each there when its bit is set in
// `tails`, so an actor without them pays nothing for them.
enum {
    TP__TAIL_CLOCK = 1,    // tp__clock: the system measures run time
    TP__TAIL_DED = 2,      // struct tp__ded *: a thread of its own
    TP__TAIL_RESTARTS = 4, // uint32_t: tp_spawn_opts.restarts, not 0
    TP__TAIL_END = 8,      // past the last: tp__tail_below gives the total
};

// An actor's run time and its messages' waits, kept when the system's
// cfg.cpu_time is set. Written by its activations only; snapshots read
// them (relaxed) for display. The wait buckets are TP_WAIT_BUCKETS'
// (introspect.h).
typedef struct tp__clock {
    _Atomic uint64_t ran;           // tp__ticks spent in its activations
    _Atomic uint64_t running_since; // tp__ticks; 0 between activations
    _Atomic uint64_t wait_sum_ns;
    _Atomic uint64_t wait_max_ns;
    _Atomic uint32_t wait[TP_WAIT_BUCKETS];
} tp__clock;

// A message's enqueue time, in units of 1024 ticks (some 0.4 us; wraps
// after half an hour or more), never 0: only compared with another.
static inline uint32_t tp__wait_stamp(void);
// Counts the wait of a message stamped `enq` that `a`, which measures,
// starts to handle on `w` (actor.c).
void tp__wait_note(tp__worker *w, tp_actor *a, uint32_t enq);

// Message waits per behaviour, for the metrics: each worker counts the
// waits its activations time in rows of its own (a behaviour's row is
// claimed once and never freed, so every count only grows); dedicated
// actors' threads, and behaviours past a worker's TP__WAIT_ROWS, count in
// the system's shared rows under wait_rows_lock.
#define TP__WAIT_ROWS 64
typedef struct tp__wait_row {
    _Atomic(const tp_behaviour *) b; // NULL: free; set once, by the owner
    const char *name_at;             // b->name when claimed
    char name[48];                   // a copy of it, for the metrics
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t bucket[TP_WAIT_BUCKETS];
} tp__wait_row;
typedef struct tp__wait_hist {
    char behaviour[48];
    uint64_t count, sum_ns;
    uint64_t bucket[TP_WAIT_BUCKETS];
} tp__wait_hist;
// Counts a wait of `ns` nanoseconds (in bucket `b`) for behaviour `beh`,
// timed on `w` (a worker, or a dedicated actor's record).
void tp__wait_count(tp__worker *w, const tp_behaviour *beh, unsigned b,
                    uint64_t ns);
// Sums every row per behaviour name into `out` (room for `max`); returns
// how many names there are. Any thread.
size_t tp__wait_by_behaviour(tp_system *sys, tp__wait_hist *out, size_t max);
// Frees a worker's rows; no scheduler thread runs.
void tp__wait_rows_free(tp__worker *w);

// Bytes of the tail parts in `tails` (TP__TAIL_*) below `part`.
static inline size_t
tp__tail_below(unsigned tails, unsigned part)
{
    size_t n = 0;
    if (TP__TAIL_CLOCK < part && (tails & TP__TAIL_CLOCK))
        n += sizeof(tp__clock);
    if (TP__TAIL_DED < part && (tails & TP__TAIL_DED))
        n += sizeof(struct tp__ded *);
    if (TP__TAIL_RESTARTS < part && (tails & TP__TAIL_RESTARTS))
        n += sizeof(uint32_t);
    return n;
}

// Where tail part `part` of `a` is; `a` must have it.
static inline void *
tp__tail(const tp_actor *a, unsigned part)
{
    TP_ASSERT(a->tails & part);
    size_t state = (a->behaviour->state_size + 7) & ~(size_t)7;
    return (char *)a + TP__HEAD + state + tp__tail_below(a->tails, part);
}

// The actor's run time, or NULL when the system does not measure it.
static inline tp__clock *
tp__clock_of(const tp_actor *a)
{
    return (a->tails & TP__TAIL_CLOCK) ? tp__tail(a, TP__TAIL_CLOCK) : NULL;
}

// The dedicated actor's thread (dedicated.c), or NULL: none, or released.
static inline struct tp__ded *
tp__ded_of(const tp_actor *a)
{
    if (!(a->tails & TP__TAIL_DED))
        return NULL;
    return *(struct tp__ded **)tp__tail(a, TP__TAIL_DED);
}

// The restarts tp_spawn_opts gave, for introspection.
static inline uint32_t
tp__restarts_of(const tp_actor *a)
{
    if (!(a->tails & TP__TAIL_RESTARTS))
        return 0;
    return *(uint32_t *)tp__tail(a, TP__TAIL_RESTARTS);
}

// A full mailbox unmutes its senders and tells the I/O thread once it has
// drained below half its capacity (at least one message).
static inline uint32_t
tp__low_water(const tp_actor *a)
{
    uint32_t l = a->capacity / 2;
    return l ? l : 1;
}

// Whether `left` user messages are below the low-water mark: what the
// consumer asks after each count update, so an empty lane answers first.
static inline bool
tp__below_low_water(const tp_actor *a, uint32_t left)
{
    return left == 0 || left < a->capacity / 2;
}

// User messages an activation handles between updates of the counter: a
// quarter of the capacity, so room shows before it is needed. Compared
// with a count of at least one, so a capacity below 4 settles after every
// message without a select here.
static inline uint32_t
tp__settle_every(const tp_actor *a)
{
    return a->capacity / 4;
}

tp_actor *tp__actor_lookup(tp_system *sys, tp_pid pid);
void tp__actor_run(tp__worker *w, tp_actor *a);
void tp__actor_free(tp_actor *a);
void tp__actor_shutdown(tp_actor *a);

// Checks a user message's tag and payload: TP_EINVAL for a reserved tag or
// NULL data with a size, TP_EMSGSIZE past TP_MSG_MAX.
static inline int
tp__check_payload(uint32_t tag, const void *data, size_t size)
{
    if (tag >= TP_TAG_RESERVED || (data == NULL && size > 0))
        return TP_EINVAL;
    if (size > TP_MSG_MAX)
        return TP_EMSGSIZE;
    return 0;
}

// ---- delivery (actor.c) ----------------------------------------------

int tp__push_sys(tp_system *sys, tp_pid to, tp__msg *m);
int tp__deliver(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m);
int tp__deliver_nowait(tp_system *sys, tp_pid to, tp__msg *m);
int tp__deliver_force(tp_system *sys, tp_pid to, tp__msg *m);
int tp__deliver_reply(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m);
void tp__actor_kill_now(tp_system *sys, tp_pid pid);
uint64_t tp__new_ref(tp_system *sys);
#define TP__EWAIT INT_MIN // internal: a thread should wait and retry

// The TP_E* code for errno value `e` (err.c), for a caller that read errno
// right after the call that failed: codes reuse errno values, so this is
// -e, which tp_err_name names when err.h lists it. An `e` of 0, from a
// call that failed without saying why, gives TP_EINVAL.
int tp__err_from_errno(int e);

// ---- hooks: how the core reaches the subsystems above it -------------
//
// The core never calls signals, io, dist or observe by name (lib/README.md,
// test/layout.sh). Where it must reach them, it calls through one of these
// tables. Each indirect call sits on a rare path (a flagged message, an
// actor with links or timers, a remote pid): local sends, the mailbox and
// the scheduler loop make none.

// Messages that hold something of an upper subsystem name it in their
// flags; the subsystem registers the function that lets go of it before
// it makes the first such message (tp__msg_on_release). The mailbox calls
// it when the message is retired or freed.
enum {
    TP__REL_INFO,  // TP__MSG_INFO_REQ: observe's tp__info reference
    TP__REL_SOCK,  // TP__MSG_SOCK_DATA / SOCK_START: io's socket window
    TP__REL_TIMER, // TP__MSG_TIMER: the signals subsystem's timer entry
    TP__REL_N
};
typedef void (*tp__msg_release_fn)(tp__msg *m);
// Registers `fn` for class `which`; any thread, any number of times (the
// same function each time).
void tp__msg_on_release(int which, tp__msg_release_fn fn);

// What the core asks of links, monitors, timers and requests (signals),
// of sockets (io) and of introspection (observe). The composition root
// (system.c) installs one table in every system it creates.
typedef struct tp__up_ops {
    // signals: a spawn_link's link, made before init runs and undone when
    // init fails.
    int (*link_spawned)(tp_actor *parent, tp_actor *child);
    void (*unlink_spawned)(tp_actor *parent, tp_actor *child);
    // signals: applies system-lane message `m` to `a`: 0, with *deliver
    // set to a message for `handle` or NULL, or an exit reason.
    int (*system_signal)(tp__msg *m, tp_actor *a, tp__msg **deliver);
    // signals: the exit signal queued in `a`'s user lane that ends it now,
    // as an exit reason, or TP__NO_EXIT.
    int (*exit_queued)(tp_actor *a);
    // signals: records the text of a tp_fail for the exit signals.
    void (*exit_text)(tp_actor *a, const char *text);
    // signals: tells links and monitors that `a` exited (a->ext set).
    void (*notify_exit)(tp_actor *a, int reason);
    // signals: answers link, monitor and request messages left in the
    // lanes of dead `a`.
    void (*answer_late)(tp_actor *a, tp__msg *m, int reason);
    // signals: frees a->ext (set).
    void (*ext_free)(tp_actor *a);
    // signals: whether reply `ref` from `from` is still awaited by `a`.
    bool (*request_done)(tp_actor *a, uint64_t ref, tp_pid from);
    // signals: takes the continuation of `a`'s request `ref`, if it has
    // one: the answer goes to it instead of handle.
    bool (*then_take)(tp_actor *a, uint64_t ref, tp_then_fn *fn, void **arg);
    // signals: the continuation then_take gave has returned.
    void (*then_done)(tp_actor *a);
    // signals: counts `a`'s pending continuations as set by code it no
    // longer runs (an upgrade committed; a->ext may be NULL).
    void (*thens_stale)(tp_actor *a);
    // signals: keeps between activations the messages tp_unstash_all put
    // back that one left unhandled (a->ext set), gives them to the next,
    // and frees a list of them.
    void (*replay_save)(tp_actor *a, tp__msg *head, tp__msg *tail);
    void (*replay_load)(tp_actor *a, tp__msg **head, tp__msg **tail);
    void (*replay_drop)(tp_actor *a, tp__msg *m);
    // signals: whether timer message `m` may still be delivered.
    bool (*timer_claim)(tp__msg *m);
    // signals: cancels the timers `a` set for itself (a->ext set).
    void (*timers_owner_died)(tp_actor *a);
    // A test system's clock moved to `now_ns`: fires the timers due by
    // then on this thread; returns how many (test.c).
    int (*timers_fire_due)(tp_system *sys, int64_t now_ns);
    // The next timer's deadline, or -1 (test.c).
    int64_t (*timers_next_due)(tp_system *sys);
    // io: closes the sockets `a` owns.
    void (*sock_owner_died)(tp_actor *a);
    // observe: answers introspection request `m` about `a`.
    void (*info_answer)(tp_actor *a, tp__msg *m);
    // cluster: `sys` became a node (end of tp_node_start): the group
    // server starts, or starts watching nodes.
    void (*node_started)(tp_system *sys);
    // cluster: behaviours made spawnable follow a committed upgrade
    // (upgrade.c); how many of them point into [lo, hi) (tp_code_refs).
    void (*code_switched)(tp_system *sys, const tp_code_change *changes,
                          size_t n);
    size_t (*code_refs)(tp_system *sys, uintptr_t lo, uintptr_t hi);
} tp__up_ops;

#define TP__NO_EXIT INT_MIN // tp__up_ops.exit_queued: nothing ends it

// What the core asks of the distribution layer, installed by dist when a
// node starts (tp__dist_hooks_install, lib/dist/hooks.c); until then a
// remote pid names no actor.
typedef struct tp__dist_ops {
    // Routes `m` for remote `to` into its peer's queue (TP__ROUTE_*);
    // consumes `m` on success.
    int (*route)(tp_system *sys, tp_actor *self, tp_pid to, tp__msg *m,
                 int mode);
    // Wakes the I/O thread for peer proxy `proxy`, whose queue left empty.
    void (*kick)(tp_actor *proxy);
    // Tells the I/O thread a mailbox it waited on has room again.
    void (*unstall)(tp_system *sys);
    // Sends the frames this thread's activation held back (tp__corked).
    void (*uncork)(void);
    // Worker polling (lib/dist/poll.c), from a worker spinning for work
    // at time `now`: whether it polls the node's connections and input is
    // ready (poll_ready, no lock taken but to take the watch over); reading
    // it, announced to the epoch (poll_read); handing the watch back before
    // it parks or stops (unpoll).
    bool (*poll_ready)(tp_system *sys, tp__worker *w, int64_t now);
    void (*poll_read)(tp_system *sys, tp__worker *w);
    void (*unpoll)(tp_system *sys, tp__worker *w);
} tp__dist_ops;

// How a message is put into a peer's send queue (tp__dist_ops.route).
enum { TP__ROUTE_NORMAL, TP__ROUTE_NOWAIT, TP__ROUTE_FORCE, TP__ROUTE_SYS };

// The peers whose queued frames this thread's activation held back (dist's
// corking); the scheduler calls tp__dist_ops.uncork after an activation
// that left any, so a plain activation pays one TLS load. Only in TLS of
// its own, not in tp__self, which callbacks run inside an activation
// (init, terminate) save and restore. Defined by dist.
#define TP__CORK_PEERS 8
typedef struct tp__corkset {
    struct tp__peer *peers[TP__CORK_PEERS];
    unsigned npeers, frames;
} tp__corkset;
extern _Thread_local tp__corkset tp__corked;

// What the core offers the distribution layer: a peer's proxy actor's
// queue (tp__proxy_put, tp__proxy_settle) and delivery from the I/O thread
// (tp__deliver_io*, tp__io_wait_room), in actor.c.
int tp__proxy_put(tp_actor *p, tp_actor *sender, tp__msg *m, int mode);
uint32_t tp__proxy_settle(tp_actor *p, uint32_t users, uint32_t total);
int tp__deliver_io(tp_system *sys, tp_pid to, tp__msg *m);
int tp__deliver_io_chain(tp_system *sys, tp_pid to, tp__msg *first,
                         tp__msg *last, uint32_t n);
bool tp__io_wait_room(tp_system *sys, tp_pid to);

// ---- clocks (clock.c) -------------------------------------------------

struct timespec;
int64_t tp__now_coarse_ms(void);
int64_t tp__now_ns(void);
int64_t tp__now_ms(void);
// Sets *dl to CLOCK_MONOTONIC now plus `timeout_ms` (>= 0), for condition
// variables made by tp__cond_init.
void tp__deadline(struct timespec *dl, int timeout_ms);
// Drops a UTF-8 sequence cut short at the end of `out`, a string that
// filled its `size` bytes (snprintf cut it); a shorter one is left alone.
void tp__utf8_trim(char *out, size_t size);
// Initialises a condition variable that waits on CLOCK_MONOTONIC; returns 0
// or a negative errno.
int tp__cond_init(pthread_cond_t *c);

// A cheap, monotonic tick count for timing activations (actors' run
// time): the time-stamp counter on x86-64, where it is invariant on every
// CPU this runtime targets and costs a few nanoseconds, CLOCK_MONOTONIC
// nanoseconds elsewhere. tp__tick_ns gives the nanoseconds per tick,
// measured since the system was created (tp__tick_calibrate, from
// tp_system_new).
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t
tp__ticks(void)
{
    return __rdtsc();
}
#else
static inline uint64_t
tp__ticks(void)
{
    return (uint64_t)tp__now_ns();
}
#endif
void tp__tick_calibrate(tp_system *sys);

static inline uint32_t
tp__wait_stamp(void)
{
    return (uint32_t)(tp__ticks() >> 10) | 1;
}
double tp__tick_ns(tp_system *sys);
// ---- scheduler (sched.c) ----------------------------------------------

#define TP__RUNQ_SIZE 1024
#define TP__SLOT_CACHE 256

// A FIFO list of actors linked through run_next: dead ones waiting for a
// grace period (oldest first), or runnable ones beyond a full ring.
typedef struct tp__limbo {
    tp_actor *head, *tail;
} tp__limbo;

// What a worker has seen of another, as a thief (sched.c).
typedef struct tp__victim {
    uint64_t seq;       // its activations when last looked at
    uint32_t tail;      // and its ring's tail
    int64_t since;      // when that count was first seen
    int64_t hold_until; // no taking from a busy v before this
    int64_t hold_ns;    // how long the last hold was; 0: none
    int64_t next_look;  // held off: when to look at it again
    uint64_t rate_seq;  // its activations at rate_at
    int64_t rate_at;    // start of the window its pace is read over
} tp__victim;

// Free actor records a worker keeps for its next spawns, per size class
// (actor.c): spawning and freeing an actor then touches neither malloc nor
// its arena lock, which a thief freeing actors it took contends for.
#define TP__REC_CLASSES 48 // records up to 16 * 48 - 8 = 760 bytes
typedef struct tp__recs {
    void *head[TP__REC_CLASSES]; // linked through each record's first word
    uint16_t n[TP__REC_CLASSES];
} tp__recs;

// A thief's watch over the actors it last took from a busy worker.
typedef struct tp__stolen {
    tp__worker *from; // NULL: none watched
    int64_t at;       // when they were taken
    uint64_t acts;    // our activations then
    uint64_t n;       // how many were taken
} tp__stolen;

struct tp__worker {
    // Read and CASed by thieves; tail written by the owner only.
    TP__ALIGNED _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic uint32_t overflowed; // actors put on the overflow list, ever
    _Atomic(tp_actor *) ring[TP__RUNQ_SIZE];

    // Owner only, but for `runnext`, which a thief may take from an owner
    // stuck in one long activation: see rn_lock in sched.c.
    TP__ALIGNED tp_system *sys;
    unsigned index;
    _Atomic(tp_actor *) runnext;
    _Atomic uint32_t rn_busy;       // the owner is reading or writing runnext
    _Atomic uint32_t rn_thief;      // a thief is about to take runnext
    tp_actor *pinned, *pinned_tail; // runnable, not to be stolen
    unsigned streak;                // consecutive runs taken from runnext
    unsigned tick;
    uint64_t seen_epoch;
    tp__limbo limbo;    // dead actors waiting for a grace period
    tp__limbo ready;    // past it, waiting for ext_lock's readers to leave
    tp__limbo overflow; // runnable actors beyond the ring, in order
    uint32_t slots[TP__SLOT_CACHE]; // free actor-table slots, ours alone
    unsigned nslots;
    uint32_t rng;
    pthread_t thread;
    jmp_buf *jb; // where tp_fail jumps to
    tp__worker *idle_next;
    struct tp__ded *ded; // a dedicated actor's private record: its thread
    uint32_t done_user;  // counts of the running activation
    uint32_t done_total;
    tp__pool_block *pool; // free message blocks
    unsigned pool_len;
    tp__pool_batch *pending;    // blocks to return, per origin worker
    struct tp__victim *victims; // per worker: what we saw of it (sched.c)
    tp__stolen stolen;
    tp__recs recs; // free actor records (actor.c)

    // Pushed by other workers returning our blocks; taken by the owner.
    // remote_len counts the blocks pushed, each batch once it is linked.
    TP__ALIGNED _Atomic(tp__pool_block *) remote;
    _Atomic unsigned remote_len;

    // Written by the owner, read by anyone.
    TP__ALIGNED _Atomic uint64_t announce; // epoch seen; UINT64_MAX = idle
    _Atomic uint64_t activations;
    // For the stall watch (watch.c): the worker thread's tp__self, set
    // once, whose `actor` names the actor running (NULL between them).
    _Atomic(struct tp__tls *) tls;
    _Atomic uint64_t messages;
    _Atomic uint64_t steals;
    _Atomic uint64_t sleeps;
    // Message waits per behaviour (clock.c): TP__WAIT_ROWS rows, allocated
    // by the worker on its first timed message; read by the metrics.
    _Atomic(tp__wait_row *) wait_rows;
    _Atomic uint32_t wake; // futex word: TP__WAKE_*
};

// Values of a parked worker's `wake`: still asleep, chosen by a waker (it
// counted the worker as spinning), or poked: asked to look around (the
// sentry, see sched.c), nothing more.
enum { TP__WAKE_NONE = 0, TP__WAKE_CHOSEN = 1, TP__WAKE_POKED = 2 };

#define TP__EPOCH_IDLE UINT64_MAX

// Actor records: from this worker's free records or malloc, and back.
tp_actor *tp__rec_alloc(size_t size);
void tp__rec_free(tp_actor *a);
void tp__recs_free_all(tp__worker *w);
void tp__rec_depot_free(tp_system *sys);

void tp__sched_schedule(tp_system *sys, tp_actor *a);
void tp__sched_requeue(tp__worker *w, tp_actor *a);
void tp__sched_pin(tp_system *sys, tp_actor *a);
int tp__sched_start(tp_system *sys);
void tp__sched_stop(tp_system *sys);
void tp__limbo_add(tp_system *sys, tp_actor *a);
void tp__limbo_reclaim_all(tp_system *sys);

// ---- thread-local context ---------------------------------------------

#define TP__FRAMES 24

typedef struct tp__tls {
    tp__worker *worker;  // set on scheduler threads
    tp__worker *io_pool; // set on the I/O thread: its message pool's record
    tp_actor *actor;     // actor whose callback is running, or NULL
    jmp_buf *jb;         // where tp_fail jumps to
    int fail_reason;
    // The running actor's messages put back by tp_unstash_all, handled
    // before its mailbox (actor.c, signals/stash.c).
    struct tp__msg *replay, *replay_tail;
    // Which messages to measuring actors are timed (send.c): the draw's
    // state, and messages left until the next timed one.
    uint32_t wait_rng, wait_left;
    // The upgrade slot whose change the running actor makes, and the one
    // its activation parks for (upgrade.c).
    void *upgrading, *parking;
    int fault_sig; // the caught signal, when a fault jumped to jb
    int fault_depth;
    void *fault_frames[TP__FRAMES];
} tp__tls;

// ---- native faults (fault.c) ------------------------------------------

int tp__faults_install(void);
void tp__faults_uninstall(void);
void *tp__fault_altstack_on(void);
void tp__fault_altstack_off(void *mem);
void tp__fault_backtrace(char *buf, size_t size);
// Reads memory that may be changing or gone without a race or a fault.
bool tp__peek(void *out, const void *p, size_t n);

extern _Thread_local tp__tls tp__self;

// The check every call made "inside the actor only" starts with: a NULL
// context is bad input, another actor's (or none) is the wrong thread.
static inline int
tp__check_ctx(tp_ctx *ctx)
{
    if (ctx == NULL)
        return TP_EINVAL;
    if (tp__self.actor != (tp_actor *)ctx)
        return TP_EPERM;
    return 0;
}

// ---- the system (system.c) --------------------------------------------

#define TP__SLOT_CHUNK_BITS 12
#define TP__SLOT_CHUNK (1u << TP__SLOT_CHUNK_BITS)
#define TP__SLOT_MAX (1u << TP_PID_SLOT_BITS)
#define TP__SLOT_CHUNKS (TP__SLOT_MAX / TP__SLOT_CHUNK)

typedef struct tp__slot_chunk {
    _Atomic(tp_actor *) actor[TP__SLOT_CHUNK];
    uint32_t gen[TP__SLOT_CHUNK]; // guarded by slot_lock
} tp__slot_chunk;

typedef struct tp__reg_entry {
    struct tp__reg_entry *next;     // in its name's bucket
    struct tp__reg_entry *pid_next; // in its pid's bucket
    tp_pid pid;
    char name[];
} tp__reg_entry;

struct tp_system {
    tp_config cfg;
    struct tp__test *test; // a test system's (test.c); NULL otherwise
    unsigned nworkers;
    tp__worker *workers;

    // Scheduling: global inject queue and sleeping workers.
    TP__ALIGNED pthread_mutex_t inject_lock;
    tp_actor *inject_head, *inject_tail;
    _Atomic uint32_t inject_len;
    TP__ALIGNED _Atomic uint32_t nspinning;
    _Atomic uint32_t nidle;
    pthread_mutex_t idle_lock;
    tp__worker *idle;
    tp__worker *sentry; // the parked worker on watch (idle_lock)
    bool sentry_deep;   // it sleeps untimed: every worker is parked
    _Atomic int stop_workers;
    _Atomic uint32_t ndozing;  // workers dozing (park.c)
    _Atomic uint32_t doze_gen; // their futex: bumped to wake them
    int started;

    // Reclamation: a global epoch (quiescent-state based) plus a lock that
    // threads outside the scheduler hold while they touch an actor.
    TP__ALIGNED _Atomic uint64_t epoch;
    pthread_rwlock_t ext_lock;
    pthread_mutex_t limbo_lock; // for actors that died outside workers
    tp__limbo limbo;
    _Atomic size_t limbo_waiting; // actors in `limbo`

    // Free actor records beyond what workers keep, in batches (actor.c);
    // any worker takes rec_lock, for one batch's push or pop.
    TP__ALIGNED pthread_mutex_t rec_lock;
    void *rec_depot[TP__REC_CLASSES];
    size_t rec_depot_bytes;

    // Actor table.
    TP__ALIGNED pthread_mutex_t slot_lock;
    _Atomic(tp__slot_chunk *) chunks[TP__SLOT_CHUNKS];
    uint32_t slot_next; // never-used slots start here
    uint32_t *slot_free;
    size_t slot_free_len, slot_free_cap;

    // Registry.
    pthread_mutex_t reg_lock;
    tp__reg_entry **reg;     // by name
    tp__reg_entry **reg_pid; // the same entries by pid, as many buckets
    size_t reg_size, reg_count;

    // Message waits per behaviour counted outside workers' rows (clock.c).
    pthread_mutex_t wait_rows_lock;
    tp__wait_row *wait_shared;
    size_t nwait_shared, capwait_shared;

    // Upgrades (upgrade.c): one at a time; the behaviours made for
    // upgraded actors, kept until the system goes.
    pthread_mutex_t upgrade_lock, shim_lock;
    struct tp__shim *shims;
    // Behaviours' version labels (tp_behaviour_version), under shim_lock;
    // how many, also read without it to skip the lookup.
    struct tp__vlabel *vlabels;
    size_t capvlabels;
    _Atomic size_t nvlabels;
    // Continuations pending that an actor set before an upgrade switched
    // its code (signals/request.c): they may run code of any older module.
    _Atomic uint64_t stale_thens;

    // Traces running (trace.c): at most TP_TRACE_MAX, found by pid.
    // trace_lock is a leaf: nothing else is taken while it is held.
    TP__ALIGNED pthread_mutex_t trace_lock; // off the read-mostly lines
    pthread_cond_t trace_cond;              // readers waiting for events
    struct tp_trace *traces[TP_TRACE_MAX];

    // Lifetime.
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    _Atomic int stop_requested;
    _Atomic int shutting_down;
    TP__ALIGNED _Atomic uint64_t live;
    _Atomic uint64_t spawned;
    _Atomic uint32_t spawn_seq; // counts publications, for actors' spawn_seq
    _Atomic uint64_t exited;
    _Atomic uint64_t crashed;
    _Atomic uint64_t dead_letters;
    _Atomic uint64_t next_ref;
    tp__timers *timers;
    const tp__up_ops *up; // set by tp_system_new, before any actor runs
    // NULL until tp_node_start; its proxy behaviour alongside, so that
    // scheduling an actor can tell a peer's proxy by one compare.
    _Atomic(const tp__dist_ops *) dist;
    _Atomic(const tp_behaviour *) proxy_behaviour;
    _Atomic(struct tp__dist *) node;   // NULL until tp_node_start
    _Atomic(struct tp__io *) io;       // the I/O thread, started on first use
    _Atomic(struct tp__socks *) socks; // actors' sockets, on first use
    _Atomic(struct tp__groups *) groups; // process groups, on first use
    _Atomic(struct tp__remote *) remote; // spawnable behaviours, on first use
    pthread_mutex_t io_init_lock;
    struct tp__control *control; // NULL until tp_control_start
    struct tp__metrics *metrics; // NULL until tp_metrics_start
    struct tp__watch *watch;     // the stall watch; NULL when off
    pthread_mutex_t ded_lock;    // guards `deds`
    struct tp__ded *deds;        // dedicated actors' threads not yet joined
    _Atomic uint64_t events[2];  // tp_event counters
    int64_t born_ms;             // for uptime
    int64_t born_ns;             // CLOCK_MONOTONIC, with born_ticks:
    uint64_t born_ticks;         // the tick rate (tp__tick_ns)
    double tick_ns0;             // a first, short measurement of it
    bool faults_installed;
};

// ---- test systems (test.c) ---------------------------------------------

typedef struct tp__test tp__test;
void tp__test_free(tp_system *sys);
// The virtual clock, in tp__now_ns's units.
int64_t tp__test_now_ns(const tp_system *sys);
// `a` is ready to run: instead of a run queue (sched.c's entry points).
void tp__test_ready(tp_system *sys, tp_actor *a);
// Runs the test system's actors on this thread until done(arg), moving
// the clock to the next timer whenever none is ready: what a call that
// would wait for actors does instead. Gives up with TP_ETIMEDOUT once
// `timeout_ms` of virtual time passed (the clock is then at that
// deadline; -1: no limit), when nothing is left to run and no timer is
// set, or after TP__TEST_DRIVE_MAX steps; else returns the steps run.
long tp__test_drive(tp_system *sys, bool (*done)(void *), void *arg,
                    int timeout_ms);
#define TP__TEST_DRIVE_MAX 1000000L
bool tp__test_crashes(tp_actor *a, const tp__msg *m);
bool tp__test_init_fails(tp_system *sys, const tp_behaviour *b);
int tp__test_intercept(tp_actor *self, tp_pid to, tp__msg *m);
// `a`, marked with faults, exits: they end with it.
void tp__test_forget(tp_actor *a);

// A test system joined to a net (lib/dist/net.c): its loop is stepped and
// these reach it and the net from here, the core calling no layer above.
typedef struct tp__test_net_ops {
    int (*poll)(tp_system *sys);         // runs its loop's ready callbacks
    int (*fire)(tp_system *sys);         // fires its loop's timers now due
    int64_t (*next_due)(tp_system *sys); // its loop's next deadline, or -1
    // Drives the whole net as tp__test_drive drives one system, `until_ns`
    // on sys's clock (-1: none).
    long (*drive)(tp_system *sys, bool (*done)(void *), void *arg,
                  long max_steps, int64_t until_ns);
    void (*leave)(tp_system *sys); // sys is destroyed (tp__test_free)
} tp__test_net_ops;
// Joins `sys` to `net` (or leaves with NULLs): 0, or TP_EEXIST.
int tp__test_net_set(tp_system *sys, void *net, const tp__test_net_ops *ops);
void *tp__test_net_of(const tp_system *sys);
// Whether the system's loop is stepped by its test instead of a thread.
bool tp__test_stepped(const tp_system *sys);
// How many actors are ready to run.
size_t tp__test_nready(tp_system *sys);
// Moves the clock to `ns` (never back) and fires every timer due by then,
// actors' and the loop's; returns how many of the actors' fired.
int tp__test_clock_to(tp_system *sys, int64_t ns);
// The next deadline of an actors' or the loop's timer, or -1.
int64_t tp__test_next_due_ns(tp_system *sys);
// The next deadline of an actors' timer alone, or -1.
int64_t tp__test_actor_due_ns(tp_system *sys);

// ---- hot code upgrade (upgrade.c) --------------------------------------

// Applies an upgrade's phase `m` (TP__MSG_UPGRADE) to `a`, in its
// activation, and retires `m`: 0, or TP__HOLD when `a` is to park.
int tp__upgrade_handle(tp_actor *a, tp__msg *m);
#define TP__HOLD (INT_MIN + 1) // beside actor.c's CONTINUE, never a reason
// `a`'s activation parked it (finish): the upgrade may go on.
void tp__upgrade_parked(tp_actor *a);
// The change `a` made crashed it (its activation's jump).
void tp__upgrade_crashed(tp_actor *a);
// An upgrade's phase freed unhandled: its actor is gone.
void tp__upgrade_msg_gone(tp__msg *m);
// The state `a`'s callbacks see: tp__state, or the block an upgrade
// moved it to.
void *tp__user_state(tp_actor *a);
// Frees the block an upgrade moved `a`'s state to, if any, once its
// terminate has run (or faulted).
void tp__upgrade_state_free(tp_actor *a);
// Frees the shims and the version labels, once every actor has gone.
void tp__shims_free(tp_system *sys);

// ---- tracing (trace.c) -------------------------------------------------
// Each records an event of traced actor `a` (tp__traced said so), on the
// thread running its activation, or ends its trace when that is over.

// `a` starts to handle `m`.
void tp__trace_received(tp_actor *a, const tp__msg *m);
// `a` sent a message with `tag` and `size` to `to`; `rc` the send's result.
void tp__trace_sent(tp_actor *a, tp_pid to, uint32_t tag, size_t size, int rc);
// Signal `m` (TP__MSG_LINK to TP__MSG_DOWN) reached `a`.
void tp__trace_signal(tp_actor *a, const tp__msg *m);
// `a` spawned `child`.
void tp__trace_spawn(tp_actor *a, const tp_actor *child);
// `a` exited with `reason` (from tp__bury): its trace ends.
void tp__trace_exit(tp_actor *a, int reason);
// Ends every trace (the system shuts down), waking their readers.
void tp__trace_shutdown(tp_system *sys);
// Has fn(arg) called, with trace_lock held, when `t` gets events to read
// after it had none, and when it ends: fn may only post a wake-up.
void tp__trace_notify(struct tp_trace *t, void (*fn)(void *), void *arg);

int tp__slot_alloc(tp_system *sys, uint32_t *slot, uint32_t *gen);
void tp__slot_publish(tp_system *sys, uint32_t slot, tp_actor *a);
void tp__slot_clear(tp_system *sys, uint32_t slot);
void tp__slot_release(tp_system *sys, uint32_t slot);
void tp__live_dec(tp_system *sys);

int tp__reg_insert(tp_actor *a, const char *name);
void tp__reg_drop(tp_actor *a);
void tp__reg_name(tp_actor *a, char out[TP_NAME_MAX + 1]);
void tp__reg_free(tp_system *sys);

// ---- reading the actor table and the workers (table.c) ---------------
// For the subsystems above the core: they read the table and the workers
// only through these calls.

// Whether behaviour `b` lies in [lo, hi): its record or one of its
// callbacks (tp_code_refs).
static inline bool
tp__behaviour_in(const tp_behaviour *b, uintptr_t lo, uintptr_t hi)
{
    uintptr_t p[] = {(uintptr_t)b, (uintptr_t)b->handle, (uintptr_t)b->init,
                     (uintptr_t)b->terminate, (uintptr_t)b->describe};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i] >= lo && p[i] < hi)
            return true;
    return false;
}

// Copies into `out` (`size` bytes) the version label of the code `b` (or
// the `to` of its shim) belongs to, or "" (upgrade.c).
void tp__behaviour_version_of(tp_system *sys, const tp_behaviour *b, char *out,
                              size_t size);

// Calls fn(a, arg) for each actor in the table, dying ones included, in
// slot order, until fn returns false; returns how many it called fn for.
// Each `a` stays valid until fn returns. fn must not block, spawn, or
// take sys->ext_lock; it may read what any thread may read of `a` (its
// immutable fields and counters). Any thread but an actor of another
// system.
size_t tp__actor_each(tp_system *sys, bool (*fn)(tp_actor *a, void *arg),
                      void *arg);
// Calls fn(a, arg) for the live actor `pid` names, under the same rules;
// returns 0, or TP_ENOACTOR (fn not called).
int tp__actor_with(tp_system *sys, tp_pid pid,
                   void (*fn)(tp_actor *a, void *arg), void *arg);
// Live actors, as the table counts them (relaxed: may be a little stale).
uint64_t tp__actor_count(tp_system *sys);

typedef struct tp__worker_counts {
    uint64_t activations, messages, steals, sleeps;
    uint32_t run_queue; // actors waiting in its run queue's ring now
} tp__worker_counts;

// Scheduler threads of the system.
unsigned tp__worker_count(tp_system *sys);
// Reads worker `index`'s counters into *out. Returns 0, or TP_EINVAL for
// an index past the last worker (*out unchanged). Any thread.
int tp__worker_counters(tp_system *sys, unsigned index,
                        tp__worker_counts *out);

// ---- end of table.c ---------------------------------------------------

// ---- dedicated actors (dedicated.c) -------------------------------------

int tp__ded_start(tp_actor *a);
void tp__ded_wake(tp_actor *a);
void tp__ded_again(tp__worker *w);
bool tp__ded_defer(tp_actor *a);
void tp__ded_release(tp_actor *a);
void tp__ded_quiesce_all(tp_system *sys);
bool tp__ded_shutdown(tp_actor *a);

// ---- logging (log.c) --------------------------------------------------

void tp__log(tp_system *sys, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Bumps a counter that only one thread writes, without a read-modify-write.
static inline void
tp__count(_Atomic uint64_t *c, uint64_t n)
{
    // relaxed: a statistic; readers tolerate staleness.
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void
tp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

#endif
