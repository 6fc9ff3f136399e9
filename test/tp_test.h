// SPDX-License-Identifier: MIT
// Helpers shared by the Check suites: bounded waits on counters, the test
// scale (smaller under sanitizers), and a system with N threads.
#ifndef TROUPE_TP_TEST_H
#define TROUPE_TP_TEST_H

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <troupe.h>

// Under AddressSanitizer and ThreadSanitizer malloc is theirs, and
// mallinfo2 does not see it (TPT_SAN_MALLOC then says so).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TPT_SAN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TPT_SAN_MALLOC 1
#endif
#endif

// Multiplier for message counts: TP_TEST_SCALE (default 1).
double tpt_scale(void);
long tpt_scaled(long n);

// Polls until *v >= want or `seconds` pass; returns whether it got there.
bool tpt_wait_ge(_Atomic long *v, long want, double seconds);

// A started system with `threads` workers and the given overrides.
tp_system *tpt_system(unsigned threads);
tp_system *tpt_system_cfg(const tp_config *cfg);

// Stops briefly (for polling loops only, never as synchronisation).
void tpt_nap_us(long us);

// Polls until pred(arg) is true or `seconds` pass; returns whether it got
// there.
bool tpt_wait_until(bool (*pred)(void *), void *arg, double seconds);

// Heap bytes the process has allocated and not yet freed, whatever the
// allocator caches (mallinfo2, or the sanitizer's allocator under ASan and
// TSan).
size_t tpt_heap_in_use(void);

// The calling thread's kernel id, for tpt_wait_asleep.
pid_t tpt_tid(void);

// Polls until thread `tid` of this process (0: every thread but the
// caller) is asleep in the kernel, as a thread blocked on a condition
// variable or parked for lack of work is, on two looks in a row; returns
// whether it got there within `seconds`. Linux's /proc/self/task.
bool tpt_wait_asleep(pid_t tid, double seconds);

Suite *err_suite(void);
Suite *pid_suite(void);
Suite *lifecycle_suite(void);
Suite *log_suite(void);
Suite *mailbox_suite(void);
Suite *sched_suite(void);
Suite *race_suite(void);
Suite *api_suite(void);
Suite *pack_suite(void);
Suite *link_suite(void);
Suite *timer_suite(void);
Suite *fault_suite(void);
Suite *supervisor_suite(void);
Suite *node_suite(void);
Suite *wire_suite(void);
Suite *tls_suite(void);
Suite *introspect_suite(void);
Suite *sock_suite(void);
Suite *kvstore_suite(void);
Suite *guarantees_suite(void);
Suite *dedicated_suite(void);
Suite *group_suite(void);
Suite *remote_suite(void);
Suite *statem_suite(void);
Suite *trace_suite(void);
Suite *testmode_suite(void);
Suite *testnet_suite(void);
Suite *upgrade_suite(void);

#endif
