// SPDX-License-Identifier: MIT
// The kvstore example as a user would run it: a separate process, several
// clients writing at once, a client sending garbage in the middle. Every
// acknowledged write must be readable afterwards.
#include "tp_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t kv_pid;
static uint16_t kv_port;

static void
kv_start(void)
{
    char path[600], self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0;
    snprintf(path, sizeof path, "%s/kvstore", self);
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    kv_pid = fork();
    ck_assert_int_ge(kv_pid, 0);
    if (kv_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(path, path, "-s", "4", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[64] = "";
    size_t len = 0;
    while (len < sizeof line - 1 && read(out[0], line + len, 1) == 1 &&
           line[len] != '\n')
        len++;
    line[len] = 0;
    close(out[0]);
    ck_assert_msg(sscanf(line, "LISTENING %hu", &kv_port) == 1,
                  "kvstore said: %s", line);
}

static void
kv_stop(void)
{
    kill(kv_pid, SIGTERM);
    int st;
    ck_assert_int_eq(waitpid(kv_pid, &st, 0), kv_pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int
dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(kv_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Reads one line (without its newline) into `buf`; false on EOF/timeout.
static bool
read_line(int fd, char *buf, size_t size)
{
    size_t len = 0;
    while (len < size - 1) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0 || read(fd, buf + len, 1) != 1)
            return false;
        if (buf[len] == '\n') {
            buf[len] = 0;
            return true;
        }
        len++;
    }
    return false;
}

static bool
ask(int fd, const char *cmd, char *reply, size_t size)
{
    size_t n = strlen(cmd);
    return write(fd, cmd, n) == (ssize_t)n && read_line(fd, reply, size);
}

#define CLIENTS 4
static long per_client;
static _Atomic long acked[CLIENTS];

static void *
writer(void *arg)
{
    long id = (long)(intptr_t)arg;
    int fd = dial();
    if (fd < 0)
        return NULL;
    char cmd[96], reply[64];
    for (long i = 0; i < per_client; i++) {
        snprintf(cmd, sizeof cmd, "PUT c%ld-k%ld v%ld-%ld\n", id, i, id, i);
        if (!ask(fd, cmd, reply, sizeof reply) || strcmp(reply, "OK") != 0)
            break;
        atomic_fetch_add(&acked[id], 1);
    }
    close(fd);
    return NULL;
}

START_TEST(kvstore_under_load_with_garbage)
{
    per_client = tpt_scaled(500);
    kv_start();
    pthread_t t[CLIENTS];
    for (long i = 0; i < CLIENTS; i++) {
        atomic_store(&acked[i], 0);
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    }
    // Garbage in the middle: only that connection goes.
    ck_assert(tpt_wait_ge(&acked[0], per_client / 4, 30));
    int bad = dial();
    ck_assert_int_ge(bad, 0);
    ck_assert_int_eq(write(bad, "HELLO THERE\n", 12), 12);
    char reply[128];
    ck_assert(!read_line(bad, reply, sizeof reply)); // closed, no answer
    close(bad);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(t[i], NULL);
    // Every acknowledged write is there.
    int fd = dial();
    ck_assert_int_ge(fd, 0);
    for (long c = 0; c < CLIENTS; c++) {
        ck_assert_int_eq(atomic_load(&acked[c]), per_client);
        for (long i = 0; i < per_client; i++) {
            char cmd[64], want[64];
            snprintf(cmd, sizeof cmd, "GET c%ld-k%ld\n", c, i);
            snprintf(want, sizeof want, "VALUE v%ld-%ld", c, i);
            ck_assert(ask(fd, cmd, reply, sizeof reply));
            ck_assert_str_eq(reply, want);
        }
    }
    ck_assert(ask(fd, "DEL c0-k0\n", reply, sizeof reply));
    ck_assert_str_eq(reply, "OK");
    ck_assert(ask(fd, "GET c0-k0\n", reply, sizeof reply));
    ck_assert_str_eq(reply, "NOT_FOUND");
    ck_assert(ask(fd, "DEL c0-k0\n", reply, sizeof reply));
    ck_assert_str_eq(reply, "NOT_FOUND");
    close(fd);
    kv_stop();
}
END_TEST

Suite *
kvstore_suite(void)
{
    Suite *s = suite_create("kvstore");
    TCase *tc = tcase_create("kvstore");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kvstore_under_load_with_garbage);
    suite_add_tcase(s, tc);
    return s;
}
