#!/bin/sh
# SPDX-License-Identifier: MIT
# The largest mesh `make check` runs: eight actord processes on loopback,
# each with `mesh = yes`, n1 the seed and the seven others naming only n1
# (`seeds`). Checks that every node comes to know the seven others; that
# all see n8 go when it is killed with SIGKILL; and that n7, stopped with
# SIGSTOP until the others declare it down, rejoins all six when resumed
# (a partition that heals). Private sockets and a temporary directory;
# every wait is bounded.
#
#   sh test/mesh.sh [BUILD_DIR]        (default build)
set -u
build=$(cd "${1:-build}" && pwd) || exit 1
actord=$build/bin/actord
actorctl=$build/bin/actorctl
for f in "$actord" "$actorctl"; do
    [ -x "$f" ] || { echo "mesh: $f is not built" >&2; exit 1; }
done
N=8

tmp=$(mktemp -d) || exit 1
pids=""
cleanup() {
    for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM
mkdir -m 700 "$tmp/run"
unset NOTIFY_SOCKET ACTORCTL_SOCKET
head -c 32 /dev/urandom >"$tmp/secret"
chmod 600 "$tmp/secret"

die() {
    echo "mesh: $*" >&2
    for i in $(seq 1 $N); do
        [ -s "$tmp/n$i.log" ] &&
            { echo "--- n$i's log:" >&2; tail -12 "$tmp/n$i.log" >&2; }
    done
    exit 1
}
# until_true SECONDS COMMAND...: polls COMMAND every 50 ms.
until_true() {
    limit=$(($1 * 20)) k=0
    shift
    until "$@"; do
        k=$((k + 1))
        [ $k -lt $limit ] || return 1
        sleep 0.05
    done
}
# peers_seen I: how many other nodes node I has logged coming up.
peers_seen() {
    sed -n 's/.*nodeup node=\([^ ]*\).*/\1/p' "$tmp/n$1.log" | sort -u | wc -l
}
# ups_of I J: how many times node I logged node J coming up.
ups_of() { grep -c "nodeup node=n$2@" "$tmp/n$1.log"; }
has() { grep -q -- "$2" "$tmp/n$1.log"; }
all_peers() {
    for i in $(seq 1 $N); do [ "$(peers_seen "$i")" -eq $((N - 1)) ] || return 1; done
}

start_node() { # I [SEED]
    {
        printf '[node]\nname = n%s\nlisten = 127.0.0.1:0\n' "$1"
        printf 'secret_file = %s\nthreads = 1\nmesh = yes\n' "$tmp/secret"
        printf 'control = %s/n%s.sock\n' "$tmp/run" "$1"
        [ -n "${2:-}" ] && printf 'seeds = %s\n' "$2"
    } >"$tmp/n$1.conf"
    "$actord" --config "$tmp/n$1.conf" >"$tmp/n$1.log" 2>&1 &
    eval "pid_$1=$!"
    pids="$pids $!"
}

start_node 1
until_true 10 has 1 'actord: ready' || die "n1 did not start"
seed=$(grep -m1 node_started "$tmp/n1.log" | sed -n 's/.* node=\([^ ]*\).*/\1/p')
[ -n "$seed" ] || die "n1 logged no name"
t0=$(date +%s)
for i in $(seq 2 $N); do start_node "$i" "$seed"; done
until_true 60 all_peers || die "the $N nodes did not all see each other"
echo "mesh: $N nodes, each sees the $((N - 1)) others ($(($(date +%s) - t0)) s)"
"$actorctl" --socket "$tmp/run/n1.sock" nodes | grep -c ' up ' |
    grep -qx $((N - 1)) || die "actorctl nodes on n1 does not list $((N - 1)) peers up"

# SIGKILL n8: every other node sees it go.
kill -KILL "$pid_8"
for i in $(seq 1 7); do
    until_true 20 has "$i" 'nodedown node=n8@' || die "n$i did not see n8 go"
done
echo "mesh: n8 killed, seen down by the seven others"

# SIGSTOP n7 until the others declare it down, then SIGCONT: it rejoins
# every one of them.
kill -STOP "$pid_7"
for i in $(seq 1 6); do
    until_true 20 has "$i" 'nodedown node=n7@' || die "n$i did not see n7 go silent"
done
kill -CONT "$pid_7"
healed() {
    for i in $(seq 1 6); do [ "$(ups_of "$i" 7)" -ge 2 ] || return 1; done
}
until_true 30 healed || die "n7 did not rejoin all six after SIGCONT"
up_on_n7() {
    [ "$("$actorctl" --socket "$tmp/run/n7.sock" nodes | grep -c ' up ')" -eq 6 ]
}
until_true 30 up_on_n7 || die "n7 does not list the six others up"
echo "mesh: n7 stopped, declared down by the six others, resumed: rejoined all six"
