// SPDX-License-Identifier: MIT
// Native fault containment, opt-in per system (tp_config.catch_faults):
// SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT raised inside an actor's
// callback jump back to the runtime, which crashes that actor with reason
// TP_REASON_SIGNAL + N and logs a backtrace. A fault anywhere else gets the
// action that was installed before us (by default, the process dies).
//
// What it cannot promise: the faulting callback is abandoned wherever it
// was, so locks it held stay held and memory it allocated leaks; a fault
// inside malloc or another library may leave that library broken; memory
// the bug corrupted stays corrupted. It keeps a node serving while its
// supervisors replace the broken actor; it does not make the bug safe.
#include "core/core.h"

#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NSIG_FAULT (sizeof fault_signals / sizeof fault_signals[0])

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned fault_users; // systems that catch faults
static struct sigaction fault_saved[NSIG_FAULT];

static int
slot_of(int sig)
{
    for (unsigned i = 0; i < NSIG_FAULT; i++)
        if (fault_signals[i] == sig)
            return (int)i;
    return -1;
}

static void
on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    tp_actor *a = tp__self.actor;
    if (a != NULL && tp__self.jb != NULL && a->system->cfg.catch_faults) {
        // backtrace() was called once at install, so it does not load
        // anything here.
        tp__self.fault_depth = backtrace(tp__self.fault_frames, TP__FRAMES);
        tp__self.fault_sig = sig;
        tp__self.fail_reason = TP_REASON_SIGNAL + sig;
        // SA_NODEFER left the signal unblocked, so a plain longjmp is
        // enough and the activation's setjmp stays cheap.
        longjmp(*tp__self.jb, 1);
    }
    // Not an actor's fault: what would have happened without us.
    int i = slot_of(sig);
    if (i >= 0)
        sigaction(sig, &fault_saved[i], NULL);
    raise(sig);
}

int
tp__faults_install(void)
{
    int rc = 0;
    pthread_mutex_lock(&fault_lock);
    if (fault_users++ == 0) {
        void *warm[1];
        backtrace(warm, 1);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        for (unsigned i = 0; i < NSIG_FAULT; i++) {
            if (sigaction(fault_signals[i], &sa, &fault_saved[i]) != 0) {
                while (i-- > 0)
                    sigaction(fault_signals[i], &fault_saved[i], NULL);
                fault_users--;
                rc = TP_EINVAL;
                break;
            }
        }
    }
    pthread_mutex_unlock(&fault_lock);
    return rc;
}

void
tp__faults_uninstall(void)
{
    pthread_mutex_lock(&fault_lock);
    if (fault_users > 0 && --fault_users == 0)
        for (unsigned i = 0; i < NSIG_FAULT; i++)
            sigaction(fault_signals[i], &fault_saved[i], NULL);
    pthread_mutex_unlock(&fault_lock);
}

// Gives the calling scheduler thread its own signal stack, so that a stack
// overflow in a callback can still be caught.
void *
tp__fault_altstack_on(void)
{
    size_t size = 64 * 1024;
    void *mem = malloc(size);
    if (mem == NULL)
        return NULL;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(mem);
        return NULL;
    }
    return mem;
}

void
tp__fault_altstack_off(void *mem)
{
    if (mem == NULL)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(mem);
}

// Writes the backtrace of the last caught fault as "f1 < f2 < ...".
void
tp__fault_backtrace(char *buf, size_t size)
{
    buf[0] = '\0';
    char **names =
        backtrace_symbols(tp__self.fault_frames, tp__self.fault_depth);
    if (names == NULL)
        return;
    size_t len = 0;
    // Frame 0 is the handler itself.
    for (int i = 1; i < tp__self.fault_depth && len + 4 < size; i++) {
        const char *n = names[i];
        const char *slash = strrchr(n, '/');
        int w = snprintf(buf + len, size - len, "%s%s", i > 1 ? " < " : "",
                         slash ? slash + 1 : n);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    free(names);
}

// Copies `n` bytes at `p` into `out` through the kernel, as a debugger
// reads a process: memory another thread may be writing, or may have
// freed, is read without a data race or a fault (false when it could not
// be: unmapped, or the system call is not allowed). The caller checks
// afterwards that what it read was still current, or orders the read
// otherwise (sched.c's thieves, after membarrier).
bool
tp__peek(void *out, const void *p, size_t n)
{
    struct iovec mine = {out, n}, theirs = {(void *)p, n};
    return process_vm_readv(getpid(), &mine, 1, &theirs, 1, 0) == (ssize_t)n;
}
