// SPDX-License-Identifier: MIT
// A stand-in for systemd's notify socket, for tools/actord/test.sh:
// binds a datagram socket at PATH ('@' first: in the abstract namespace)
// and writes "bound", then each datagram it receives, its lines joined
// with "|", one line each, on stdout until SECONDS pass.
//
//   sdnotify PATH SECONDS
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sdnotify PATH SECONDS\n");
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(argv[1]);
    if (n < 2 || n >= sizeof sa.sun_path) {
        fprintf(stderr, "sdnotify: bad path\n");
        return 2;
    }
    memcpy(sa.sun_path, argv[1], n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    else
        len++;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0) {
        fprintf(stderr, "sdnotify: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    time_t end = time(NULL) + atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bound\n");
    while (time(NULL) < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        char buf[4096];
        ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
        if (got <= 0)
            continue;
        for (ssize_t i = 0; i < got; i++)
            if (buf[i] == '\n')
                buf[i] = '|';
        buf[got] = 0;
        printf("%s\n", buf);
    }
    return 0;
}
