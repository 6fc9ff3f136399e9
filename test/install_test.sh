#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs troupe under a throwaway prefix that is not the default, after
# a normal build has already generated a troupe.pc for /usr/local (make
# check runs this after building everything), then checks that the
# installed troupe.pc names the install command's directories and builds
# and runs a program outside the tree against it using only pkg-config
# (`--static` for the static link, which needs the private libev and
# libcrypto too), once linked statically and once against the shared
# library, found through an rpath. <troupe.h> alone must compile with no
# msgpack-c headers in reach, and the opt-in <troupe/msgpack.h> with the
# flags its comment names. A second install, staged with DESTDIR and its
# own LIBDIR and INCLUDEDIR, must name those.
set -eu
cc=${1:-cc}
make=${2:-make}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

fail() {
    echo "install test: $*" >&2
    exit 1
}

# pc_is VARIABLE VALUE: the installed troupe.pc's VARIABLE is VALUE.
pc_is() {
    got=$(pkg-config --variable="$1" troupe)
    [ "$got" = "$2" ] || fail "troupe.pc has $1=$got, expected $2"
}

$make --no-print-directory -s all >/dev/null
prefix=$dest/opt/troupe
$make --no-print-directory -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pc_is prefix "$prefix"
pc_is libdir "$prefix/lib"
pc_is includedir "$prefix/include"
flags=$(pkg-config --cflags --libs troupe)
static_flags=$(pkg-config --static --cflags --libs troupe)
libdir=$(pkg-config --variable=libdir troupe)

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
    if (tp_system_new(NULL, &sys) || tp_system_start(sys) ||
        tp_spawn(sys, &greeter, NULL, NULL, &pid) ||
        tp_system_send(sys, pid, 1, "hello from an installed troupe", 30) ||
        tp_system_wait(sys, 10000))
        return 1;
    tp_system_destroy(&sys);
    return 0;
}
PROG

# shellcheck disable=SC2086
$cc -o "$dest/hello-shared" "$dest/hello.c" $flags -Wl,-rpath,"$libdir"
out=$(env -u LD_LIBRARY_PATH "$dest/hello-shared")
[ "$out" = "hello from an installed troupe" ] ||
    fail "shared build printed '$out'"
# shellcheck disable=SC2086
$cc -o "$dest/hello-static" "$dest/hello.c" -static-libgcc \
    $(echo "$static_flags" | sed "s|-ltroupe|$libdir/libtroupe.a|")
out=$("$dest/hello-static")
[ "$out" = "hello from an installed troupe" ] ||
    fail "static build printed '$out'"

# A msgpack.h that stops the compiler sits first on the include path, the
# installed include directory alone after it: <troupe.h> must not reach it,
# and <troupe/msgpack.h> must (or the trap proves nothing).
incdir=$(pkg-config --variable=includedir troupe)
mkdir "$dest/trap"
echo '#error "msgpack.h reached"' >"$dest/trap/msgpack.h"
$cc -std=c11 -Wall -Werror -I"$dest/trap" -I"$incdir" -c \
    -o "$dest/hello.o" "$dest/hello.c" ||
    fail "<troupe.h> needs msgpack-c's headers"
cat >"$dest/packed.c" <<'PROG'
#include <troupe.h>
#include <troupe/msgpack.h>

int
main(void)
{
    tp_pack p;
    tp_pack_init(&p);
    msgpack_pack_int(tp_pack_packer(&p), 42);
    int ok = p.buf.size == 1;
    tp_pack_destroy(&p);
    return ok ? 0 : 1;
}
PROG
if $cc -I"$dest/trap" -I"$incdir" -c -o "$dest/packed.o" "$dest/packed.c" \
    2>/dev/null; then
    fail "<troupe/msgpack.h> compiled without msgpack-c's headers"
fi
msgpack=$(pkg-config --exists msgpack-c && echo msgpack-c || echo msgpack)
# shellcheck disable=SC2046
$cc -o "$dest/packed" "$dest/packed.c" \
    $(pkg-config --cflags --libs troupe "$msgpack") -Wl,-rpath,"$libdir"
env -u LD_LIBRARY_PATH "$dest/packed" || fail "the msgpack helpers failed"

$make --no-print-directory -s install DESTDIR="$dest/stage" PREFIX=/opt/tp \
    LIBDIR=/opt/tp/lib64 INCLUDEDIR=/opt/tp/inc >/dev/null
export PKG_CONFIG_PATH="$dest/stage/opt/tp/lib64/pkgconfig"
pc_is prefix /opt/tp
pc_is libdir /opt/tp/lib64
pc_is includedir /opt/tp/inc
[ -f "$dest/stage/opt/tp/inc/troupe.h" ] || fail "no troupe.h in INCLUDEDIR"
[ -f "$dest/stage/opt/tp/lib64/libtroupe.a" ] || fail "no libtroupe.a in LIBDIR"
echo "install test: the .pc follows PREFIX, LIBDIR and INCLUDEDIR; shared and static builds against it work; <troupe.h> needs no msgpack headers"
