#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs troupe into a throwaway DESTDIR, then builds and runs a program
# outside the tree against it using only pkg-config (`--static` for the
# static link, which needs the private libev and libcrypto too), once linked
# statically and once against the shared library.
set -eu
cc=${1:-cc}
make=${2:-make}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

$make --no-print-directory -s install DESTDIR="$dest" PREFIX=/usr/local >/dev/null
export PKG_CONFIG_PATH="$dest/usr/local/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs troupe)
static_flags=$(pkg-config --static --cflags --libs troupe)

cat > "$dest/hello.c" <<'PROG'
#include <stdio.h>
#include <troupe.h>

static int
hello(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)ctx;
    (void)state;
    printf("%.*s\n", (int)msg->size, (const char *)msg->data);
    return TP_STOP;
}

static const tp_behaviour greeter = {.name = "greeter", .handle = hello};

int
main(void)
{
    tp_system *sys;
    tp_pid pid;
    if (tp_system_new(&sys, NULL) || tp_system_start(sys) ||
        tp_spawn(sys, &pid, &greeter, NULL, NULL) ||
        tp_system_send(sys, pid, 1, "hello from an installed troupe", 30) ||
        tp_system_wait(sys, 10000))
        return 1;
    tp_system_destroy(&sys);
    return 0;
}
PROG

# shellcheck disable=SC2086
$cc -o "$dest/hello-shared" "$dest/hello.c" $flags
out=$(LD_LIBRARY_PATH="$dest/usr/local/lib" "$dest/hello-shared")
[ "$out" = "hello from an installed troupe" ] || {
    echo "install test: shared build printed '$out'" >&2
    exit 1
}
# shellcheck disable=SC2086
$cc -o "$dest/hello-static" "$dest/hello.c" -static-libgcc \
    $(echo "$static_flags" | sed "s|-ltroupe|$dest/usr/local/lib/libtroupe.a|")
out=$("$dest/hello-static")
[ "$out" = "hello from an installed troupe" ] || {
    echo "install test: static build printed '$out'" >&2
    exit 1
}
echo "install test: shared and static builds against the installed library work"
