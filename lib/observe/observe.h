// SPDX-License-Identifier: MIT
// The observation subsystem's internal header: introspection answers
// (introspect.c), the servers on the I/O thread (serve.c) behind the
// control socket (control.c, its replies packed by answer.c) and metrics
// (metrics.c), and the stall watch (watch.c).
#ifndef TROUPE_OBSERVE_H
#define TROUPE_OBSERVE_H

#include "core/core.h"

#include <troupe/msgpack.h>

struct tp__io;

// ---- introspection (introspect.c, control.c) ---------------------------

typedef struct tp__info tp__info;
void tp__info_answer(tp_actor *a, tp__msg *m);
void tp__info_release(tp__msg *m);
void tp__control_stop(tp_system *sys);
void tp__metrics_stop(tp_system *sys);

// Asks the local actor `pid` for its details (what tp_actor_detail_get
// returns) without waiting for them. done(arg) runs once the question is
// settled (answered, or the actor died first), on the thread that settled
// it and with the question's lock held: it may only post a wake-up
// (tp__io_wake). Returns the question, which the caller lets go with
// tp__info_drop; or NULL with *rc TP_ENOACTOR or TP_ENOMEM. Any thread
// outside actors.
tp__info *tp__info_ask(tp_system *sys, tp_pid pid, void (*done)(void *),
                       void *arg, int *rc);
// Returns 0 with *out filled once answered, TP_ENOACTOR once the actor died
// without answering, TP_EAGAIN (*out unchanged) while it has not answered.
int tp__info_poll(tp__info *r, tp_actor_detail *out);
// Lets go of a question, settled or not: its done is not called once this
// returns. Accepts NULL.
void tp__info_drop(tp__info *r);

// ---- the control socket's answers (answer.c) ---------------------------

// Each packs one whole reply map into `pk` (CONTROL.md says what each
// holds). Run on the I/O thread; none blocks.
void tp__ans_error(msgpack_packer *pk, const char *why);
void tp__ans_snapshot(tp_system *sys, msgpack_packer *pk);
void tp__ans_stats(tp_system *sys, msgpack_packer *pk);
// The live actor whose messages waited longest (the highest 99th
// percentile, then the longest wait), found without a snapshot: 0, or
// TP_ENOACTOR when no actor has timed a wait (introspect.c).
int tp__longest_wait(tp_system *sys, tp_actor_info *out);
void tp__ans_nodes(tp_system *sys, msgpack_packer *pk);
void tp__ans_groups(tp_system *sys, msgpack_packer *pk);
// `reason`: the request's, or NULL for the default (kill).
void tp__ans_kill(tp_system *sys, msgpack_packer *pk, tp_pid pid,
                  const msgpack_object *reason);
// A trace's next events (CONTROL.md, trace): `st` says whether it ended.
void tp__ans_trace(msgpack_packer *pk, const tp_trace_status *st,
                   const tp_trace_event *ev, size_t n);
// What a snapshot shows of an actor that cannot answer for itself.
void tp__ans_info_busy(tp_system *sys, msgpack_packer *pk,
                       const tp_actor_info *info);
// The answer to `info` once its question is settled: rc is tp__info_poll's
// (TP_EAGAIN: the actor did not answer in time; `d` is then unused) or
// tp__info_ask's.
void tp__ans_info(tp_system *sys, msgpack_packer *pk, tp_pid pid, int rc,
                  const tp_actor_detail *d);

// ---- serving clients from the I/O thread (serve.c) ---------------------

// A server answers the clients of one listening socket on the I/O thread:
// each connection has its own buffers, state and deadline, so a slow or
// silent client holds one slot and nobody else. The protocol (control.c,
// metrics.c) supplies a tp__serve_ops; every callback runs on the I/O
// thread with io->lock held and must not block.

// Clients one server serves at once; the next one is refused.
#define TP__SERVE_CLIENTS_MAX 64

typedef struct tp__server tp__server;
typedef struct tp__conn tp__conn;

typedef struct tp__serve_ops {
    const char *name; // in log lines: "control", "metrics"
    size_t in_max;    // the most bytes a request may take, framing included
    double request_s; // to send a whole request: from the connect, or from
                      // the end of the previous reply
    double reply_s;   // to take a whole reply
    int wake_client;  // its TP__IO_* slot for tp__io_on_wake (io/io.h)
    // A client connected: it may be answered at once (a refusal).
    // Optional, as is close.
    void (*open)(tp__conn *c);
    // Bytes arrived (tp__conn_input): if they hold a whole request, answer
    // it (tp__conn_send, or tp__conn_wait for an answer that comes later)
    // and consume it (tp__conn_consume); else leave them for more.
    void (*input)(tp__conn *c);
    // A connection in tp__conn_wait: at each wake-up of the loop, which
    // may bring its answer (expired false), and when its wait is over
    // (expired true, when it must be answered). Needed only by a protocol
    // that calls tp__conn_wait.
    void (*poll)(tp__conn *c, bool expired);
    // The connection closes: release what tp__conn_data holds.
    void (*close)(tp__conn *c);
    // A client past TP__SERVE_CLIENTS_MAX: the bytes it gets before it is
    // disconnected (one short write; the server never waits for it).
    void (*refuse)(int fd);
} tp__serve_ops;

// Serves `lfd`, a listening socket, with `ops` (which must outlive the
// server). Takes ownership of lfd on success; on failure the caller still
// owns it. Returns 0, or
// TP_EAGAIN when the I/O thread cannot start, or TP_ENOMEM. Any thread
// outside actors and the I/O thread.
int tp__server_start(tp__server **out, tp_system *sys, int lfd,
                     const tp__serve_ops *ops);
// Closes the listening socket and every connection (their ops->close
// runs), and frees the server; sets *ps to NULL. Accepts NULL. The thread
// that started it, with the I/O thread still running.
void tp__server_stop(tp__server **ps);

tp_system *tp__server_sys(const tp__server *s);
struct tp__io *tp__server_io(const tp__server *s);

// The server and the protocol's pointer for the connection.
tp__server *tp__conn_server(const tp__conn *c);
void *tp__conn_data(const tp__conn *c);
void tp__conn_set_data(tp__conn *c, void *data);
// The client's file descriptor (for its credentials; not for I/O).
int tp__conn_fd(const tp__conn *c);
// The bytes received and not consumed yet; *len gets their count.
const uint8_t *tp__conn_input(const tp__conn *c, size_t *len);
// Drops the first n bytes received (n at most what tp__conn_input gave).
void tp__conn_consume(tp__conn *c, size_t n);
// Answers: copies head then body (either may be empty) out to the client
// within ops->reply_s, then reads its next request; or, when `last`, stops
// writing and closes the connection once the client has (or ops->reply_s
// later). Returns false when out of memory: the connection is then closed.
bool tp__conn_send(tp__conn *c, const void *head, size_t hlen,
                   const void *body, size_t blen, bool last);
// The answer comes later: ops->poll runs at each wake-up of the loop until
// it calls tp__conn_send, and with `expired` once `timeout_s` has passed.
void tp__conn_wait(tp__conn *c, double timeout_s);

// ---- the stall watch (watch.c) -----------------------------------------

int tp__watch_start(tp_system *sys);
void tp__watch_free(tp_system *sys);
uint64_t tp__watch_stalls(tp_system *sys);

// The actors a snapshot shows as busy: those in an activation the watch
// found stalled, which still runs.
typedef struct tp__busy {
    unsigned n;
    struct {
        uint64_t pid;
        int64_t since_ns; // tp__now_ns clock
    } at[];
} tp__busy;

tp__busy *tp__watch_busy(tp_system *sys);

#endif
