// SPDX-License-Identifier: MIT
// A code lock as a state machine (troupe/statem.h). Three states:
//
//   locked   buttons are collected; the right code opens the door, a wrong
//            one clears them, and the third wrong code in a row locks the
//            keypad out. Half a code with no button for 5 s is forgotten
//            (an event timeout: any event cancels it).
//   open     relocks by itself after a while (a state timeout). Buttons
//            pressed while open are postponed: they are handled once the
//            door has locked again, in the order they were pressed.
//   lockout  ignores buttons until its state timeout ends it.
//
// Every state answers STATUS requests with its name. main() presses the
// buttons, checks each outcome and prints what happened; the machine logs
// its transitions. Run it: build/bin/statem (exits 1 if anything went
// otherwise).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <troupe.h>

enum { BUTTON = 1, STATUS, FORGET };

#define CODE_MAX 8

typedef struct lock_arg {
    const char *code;
    uint32_t open_ms, lockout_ms;
} lock_arg;

typedef struct lock {
    char code[CODE_MAX + 1];
    char typed[CODE_MAX + 1];
    size_t ntyped;
    int wrong; // wrong codes in a row
    uint32_t open_ms, lockout_ms;
    unsigned opened; // times the door opened
} lock;

static const tp_state locked, open, lockout;

// Answers a STATUS request with the state's name; true if it was one.
static bool
status(tp_ctx *ctx, const tp_sm_event *ev, int *rc)
{
    if (ev->kind != TP_SM_MESSAGE || ev->msg->tag != STATUS)
        return false;
    const char *name = tp_sm_state(ctx)->name;
    *rc = tp_reply(ctx, STATUS, name, strlen(name));
    return true;
}

static int
locked_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    (void)ctx;
    (void)from;
    lock *l = data;
    l->ntyped = 0;
    return TP_OK;
}

static int
locked_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    lock *l = data;
    int rc;
    if (status(ctx, ev, &rc))
        return rc;
    if (ev->kind == TP_SM_EVENT_TIMEOUT) { // half a code, left alone
        tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "forgot %zu buttons",
               l->ntyped);
        l->ntyped = 0;
        return TP_OK;
    }
    if (ev->kind != TP_SM_MESSAGE || ev->msg->tag != BUTTON ||
        ev->msg->size != 1)
        return TP_OK;
    l->typed[l->ntyped++] = *(const char *)ev->msg->data;
    if (l->ntyped < strlen(l->code))
        return tp_sm_event_timeout(ctx, 5000, FORGET, NULL, 0);
    l->typed[l->ntyped] = '\0';
    l->ntyped = 0;
    if (strcmp(l->typed, l->code) == 0) {
        l->wrong = 0;
        return tp_sm_next(ctx, &open);
    }
    tp_log(tp_ctx_system(ctx), TP_LOG_INFO, "wrong code %s", l->typed);
    return ++l->wrong == 3 ? tp_sm_next(ctx, &lockout) : TP_OK;
}

static int
open_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    (void)from;
    lock *l = data;
    l->opened++;
    return tp_sm_state_timeout(ctx, l->open_ms, 0, NULL, 0);
}

static int
open_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)data;
    int rc;
    if (status(ctx, ev, &rc))
        return rc;
    if (ev->kind == TP_SM_STATE_TIMEOUT)
        return tp_sm_next(ctx, &locked);
    if (ev->kind == TP_SM_MESSAGE && ev->msg->tag == BUTTON)
        return tp_sm_postpone(ctx); // for when it has locked again
    return TP_OK;
}

static int
lockout_enter(tp_ctx *ctx, void *data, const tp_state *from)
{
    (void)from;
    lock *l = data;
    l->wrong = 0;
    return tp_sm_state_timeout(ctx, l->lockout_ms, 0, NULL, 0);
}

static int
lockout_handle(tp_ctx *ctx, void *data, const tp_sm_event *ev)
{
    (void)data;
    int rc;
    if (status(ctx, ev, &rc))
        return rc;
    if (ev->kind == TP_SM_STATE_TIMEOUT)
        return tp_sm_next(ctx, &locked);
    return TP_OK; // buttons do nothing here
}

static const tp_state locked = {
    .name = "locked", .handle = locked_handle, .enter = locked_enter};
static const tp_state open = {
    .name = "open", .handle = open_handle, .enter = open_enter};
static const tp_state lockout = {
    .name = "lockout", .handle = lockout_handle, .enter = lockout_enter};

static int
lock_init(tp_ctx *ctx, void *data, void *arg, const tp_state **state)
{
    (void)ctx;
    (void)state; // starts in .initial
    lock *l = data;
    const lock_arg *a = arg;
    if (a == NULL || a->code == NULL || strlen(a->code) == 0 ||
        strlen(a->code) > CODE_MAX)
        return TP_EINVAL;
    snprintf(l->code, sizeof l->code, "%s", a->code);
    l->open_ms = a->open_ms;
    l->lockout_ms = a->lockout_ms;
    return 0;
}

static int
lock_describe(const void *data, char *buf, size_t size)
{
    const lock *l = data;
    return snprintf(buf, size, "typed=%zu wrong=%d opened=%u", l->ntyped,
                    l->wrong, l->opened);
}

static const tp_statem_spec code_lock = {
    .behaviour = TP_STATEM_BEHAVIOUR("code_lock"),
    .data_size = sizeof(lock),
    .initial = &locked,
    .init = lock_init,
    .describe = lock_describe,
    .log_transitions = true,
};

// ---- main: press buttons, check what the lock says ----------------------

static tp_system *sys;
static tp_pid door;
static int failures;

static void
press(const char *buttons)
{
    printf("press %s\n", buttons);
    for (const char *b = buttons; *b; b++)
        tp_system_send(sys, door, BUTTON, b, 1);
}

// Waits up to 5 s for the lock to say `want`.
static void
expect(const char *want)
{
    char got[32] = "";
    for (int i = 0; i < 500; i++) {
        tp_call_reply r;
        if (tp_call(sys, door, STATUS, NULL, 0, 5000, &r) == 0) {
            snprintf(got, sizeof got, "%.*s", (int)r.size, (char *)r.data);
            free(r.data);
            if (strcmp(got, want) == 0) {
                printf("  the lock is %s\n", got);
                return;
            }
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); // polling another actor: a bounded wait
    }
    printf("  expected %s, the lock is %s\n", want, got);
    failures++;
}

// Waits up to 5 s for the lock's description to hold `want`.
static void
expect_described(const char *want)
{
    tp_actor_detail d = {0};
    for (int i = 0; i < 500; i++) {
        if (tp_actor_detail_get(sys, door, 5000, &d) == 0 &&
            strstr(d.describe, want) != NULL) {
            printf("  described: %s\n", d.describe);
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("  expected %s, described: %s\n", want, d.describe);
    failures++;
}

int
main(void)
{
    if (tp_system_new(&(tp_config){.threads = 2}, &sys) != 0 ||
        tp_system_start(sys) != 0)
        return 1;
    lock_arg arg = {.code = "4711", .open_ms = 300, .lockout_ms = 500};
    int rc = tp_spawn(sys, &code_lock.behaviour, &arg,
                      &(tp_spawn_opts){.name = "door"}, &door);
    if (rc != 0) {
        fprintf(stderr, "spawn: %s\n", tp_strerror(rc));
        return 1;
    }
    press("1234"); // wrong
    expect("locked");
    press("4711");
    expect("open");
    // Pressed while open: postponed, then handled once the door relocks
    // (300 ms later), before anything sent meanwhile, so it opens again at
    // once: no STATUS request can find it locked in between.
    press("4711");
    expect_described("opened=2");
    expect("locked");
    press("0000");
    press("0000");
    press("0000"); // the third wrong code in a row
    expect("lockout");
    expect("locked"); // its state timeout
    expect_described("state=locked transitions=6 typed=0 wrong=0 opened=2");
    tp_system_destroy(&sys);
    printf(failures ? "FAILED\n" : "ok\n");
    return failures ? 1 : 0;
}
