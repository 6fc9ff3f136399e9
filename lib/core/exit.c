// SPDX-License-Identifier: MIT
// How an actor ends: the crash report, terminate, releasing what it owns
// before anyone hears of its exit, notifying links and monitors, burial
// (unreachable at once, its memory freed after a grace period in limbo)
// and discarding its mailbox as dead letters.
#include "core/actor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Frees everything queued in both lanes, counting dead letters. With
// `answer`, link and monitor requests still queued are answered as if they
// had come after the exit with `reason`.
void
tp__drain(tp_actor *a, bool answer, int reason)
{
    tp__msg *m;
    uint64_t lost = 0;
    while ((m = tp__mailbox_pop(&a->sys)) != NULL) {
        if (answer)
            a->system->up->answer_late(a, m, reason);
        tp__msg_retire(m);
    }
    while ((m = tp__mailbox_pop(&a->user)) != NULL) {
        if (m->kind != TP__MSG_USER) {
            if (answer)
                a->system->up->answer_late(a, m, reason);
        } else {
            lost++;
        }
        tp__msg_retire(m);
    }
    if (lost)
        // relaxed: a statistic.
        atomic_fetch_add_explicit(&a->system->dead_letters, lost,
                                  memory_order_relaxed);
}

// ---- logging crashes -------------------------------------------------------

// Logs one line: who crashed, why, the message being handled and the
// actor's own description of its state.
void
tp__crash_report(tp_actor *a, int reason, const char *text)
{
    char pid[TP_PID_STRLEN], from[TP_PID_STRLEN], why[64], msg[64];
    char state[TP_DESCRIBE_MAX + 1] = "";
    tp_pid_format(a->pid, pid, sizeof pid);
    tp_reason_format(reason, why, sizeof why);
    if (a->current != NULL) {
        tp_pid_format(a->current->pub.from, from, sizeof from);
        snprintf(msg, sizeof msg, "msg_tag=%u msg_from=%s",
                 (unsigned)a->current->pub.tag, from);
    } else {
        snprintf(msg, sizeof msg, "msg=none");
    }
    if (a->behaviour->describe != NULL) {
        a->behaviour->describe(tp__state(a), state, sizeof state);
        state[sizeof state - 1] = '\0';
    }
    char name[TP_NAME_MAX + 1];
    tp__reg_name(a, name);
    tp__log(a->system, TP_LOG_ERR,
            "crash actor=%s behaviour=%s name=%s reason=%s %s%s%s%s%s%s%s",
            pid, a->behaviour->name ? a->behaviour->name : "?",
            name[0] ? name : "-", why, msg, text ? " text=\"" : "",
            text ? text : "", text ? "\"" : "", state[0] ? " state=\"" : "",
            state, state[0] ? "\"" : "");
}

// Logs the crash report of a native fault caught in one of a's callbacks.
void
tp__report_fault(tp_actor *a)
{
    if (tp__self.fault_sig == 0)
        return;
    char text[768];
    int n = snprintf(text, sizeof text, "backtrace: ");
    tp__fault_backtrace(text + n, sizeof text - (size_t)n);
    tp__crash_report(a, TP_REASON_SIGNAL + tp__self.fault_sig, text);
    tp__self.fault_sig = 0;
}

// ---- exit and burial -------------------------------------------------------

// Releases what `a` owns before anyone hears of its exit: its name (as in
// Erlang), its sockets, closed here rather than later by the I/O thread,
// and the timers it set for itself, so a supervisor can restart it under
// the same name and on the same port at once. tp__notify_exit drops its
// monitors and request timers before the signals go out.
void
tp__release_owned(tp_actor *a)
{
    tp__reg_drop(a);
    // seq_cst: pairs with mark_owner's store of the mark (sock.c).
    if (atomic_load_explicit(&a->marks, memory_order_seq_cst) & TP__MARK_SOCKS)
        a->system->up->sock_owner_died(a);
    if (a->ext != NULL)
        a->system->up->timers_owner_died(a);
}

// Makes `a` unreachable and releases what it holds, except its memory,
// which waits for a grace period in limbo. Callers have released its name
// and timers (release_owned) first, or it never had them; its sockets are
// looked at again for one given to it while it was dying.
void
tp__bury(tp_actor *a, int reason)
{
    tp_system *sys = a->system;
    tp__slot_clear(sys, tp_pid_slot(a->pid));
    // seq_cst: after the slot is cleared, so maybe_mute and lookups that
    // still find the actor see it dead.
    atomic_store_explicit(&a->dead, 1, memory_order_seq_cst);
    // seq_cst: pairs with tp_sock_give's mark and load of `dead`, and
    // with tp_trace_start's.
    uint8_t marks = atomic_load_explicit(&a->marks, memory_order_seq_cst);
    if (marks & TP__MARK_SOCKS)
        a->system->up->sock_owner_died(a);
    if (marks & TP__MARK_TRACED)
        tp__trace_exit(a, reason);
    if (marks & TP__MARK_FAULT)
        tp__test_forget(a);
    tp__unmute_all(a);
    tp__unlist(a);
    tp__drain(a, true, reason);
    tp__slot_release(sys, tp_pid_slot(a->pid));
    tp__limbo_add(sys, a);
}

static void
run_terminate(tp_actor *a, int reason)
{
    if (!a->started || a->behaviour->terminate == NULL)
        return;
    jmp_buf jb;
    tp__tls saved = tp__self;
    tp__self.actor = a;
    tp__self.jb = &jb;
    a->current = NULL;
    if (setjmp(jb) == 0)
        a->behaviour->terminate(ctx_of(a), tp__state(a), reason);
    else
        tp__report_fault(a);
    tp__self = saved;
    tp__upgrade_state_free(a); // after a fault too
}

// Frees or retires the message `a` was handling.
void
tp__done_with_current(tp_actor *a)
{
    tp__msg *m = (tp__msg *)a->current;
    a->current = NULL;
    if (m == NULL)
        return;
    if (m->flags & TP__MSG_LOOSE)
        tp__msg_free(m);
    else
        tp__msg_retire(m);
}

void
tp__actor_exit(tp_actor *a, int reason, bool reported)
{
    tp_system *sys = a->system;
    // Actors that die of a signal did not crash themselves: no report, as
    // in Erlang, or one crash would be logged once per linked actor.
    if (reason != TP_REASON_NORMAL && reason != TP_REASON_SHUTDOWN &&
        !reported && !a->by_signal)
        tp__crash_report(a, reason, NULL);
    tp__done_with_current(a);
    run_terminate(a, reason);
    tp__release_owned(a);
    if (a->ext != NULL)
        sys->up->notify_exit(a, reason);
    tp__bury(a, reason);
    // relaxed: statistics.
    atomic_fetch_add_explicit(&sys->exited, 1, memory_order_relaxed);
    if (reason < 0 || reason == TP_REASON_KILL || reason == TP_REASON_KILLED ||
        reason == TP_REASON_MAILBOX_OVERFLOW || reason > TP_REASON_SIGNAL)
        atomic_fetch_add_explicit(&sys->crashed, 1, memory_order_relaxed);
    tp__live_dec(sys);
}

void
tp__actor_free(tp_actor *a)
{
    // Messages pushed by senders that raced with the death; at system
    // destruction (no workers) nobody is left to answer.
    // relaxed: workers were stopped and joined when it is set (joining
    // orders it), or run and never set it: the value read is current.
    bool answer =
        a->system->started &&
        !atomic_load_explicit(&a->system->stop_workers, memory_order_relaxed);
    tp__drain(a, answer, TP_REASON_NOPROC);
    if (a->ext != NULL)
        a->system->up->ext_free(a);
    tp__ded_release(a); // ends and joins its thread, if it has one
    tp__mailbox_close(&a->sys);
    tp__mailbox_close(&a->user);
    tp__rec_free(a);
}

// Terminates an actor at system destruction; no scheduler thread runs.
void
tp__actor_shutdown(tp_actor *a)
{
    run_terminate(a, TP_REASON_SHUTDOWN);
    tp_system *sys = a->system;
    if (a->ext != NULL)
        sys->up->timers_owner_died(a);
    tp__reg_drop(a);
    tp__slot_clear(sys, tp_pid_slot(a->pid));
    // relaxed: no scheduler thread runs at system destruction.
    atomic_store_explicit(&a->dead, 1, memory_order_relaxed);
    tp__drain(a, false, 0);
    // relaxed: statistics.
    atomic_fetch_add_explicit(&sys->exited, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sys->live, 1, memory_order_relaxed);
    tp__actor_free(a);
}
