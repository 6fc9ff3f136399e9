#!/bin/sh
# SPDX-License-Identifier: MIT
# A cluster of three actord nodes on loopback, narrated: alpha is the seed,
# beta and gamma name only alpha and find each other through the mesh;
# each runs the jobs application of examples/cluster.c (workers in the
# group "jobs"), and alpha's dispatcher spreads jobs over all of them with
# a router. gamma is then killed with SIGKILL: its jobs are sent again to
# the others and the work goes on. beta is then stopped with SIGSTOP, so
# alpha declares it down, and resumed: it rejoins and takes jobs again. Everything lives in a temporary
# directory removed at the end; every wait is bounded. `make check` runs
# it and fails when a step does.
#
#   sh examples/cluster.sh [BUILD_DIR]        (default build)
set -u
build=$(cd "${1:-build}" && pwd) || exit 1
actord=$build/bin/actord
actorctl=$build/bin/actorctl
module=$build/bin/cluster.so
for f in "$actord" "$actorctl" "$module"; do
    [ -e "$f" ] || { echo "cluster: $f is not built (make builds it)" >&2; exit 1; }
done

tmp=$(mktemp -d) || exit 1
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM
mkdir -m 700 "$tmp/run"
unset NOTIFY_SOCKET ACTORCTL_SOCKET

say() { printf '\n== %s\n' "$*"; }
die() {
    echo "cluster: $*" >&2
    for n in alpha beta gamma; do
        [ -s "$tmp/$n.log" ] && { echo "--- $n's log:" >&2; tail -15 "$tmp/$n.log" >&2; }
    done
    exit 1
}
# wait_log FILE PATTERN SECONDS: until a line of FILE matches PATTERN.
wait_log() {
    n=0 limit=$(($3 * 20))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt $limit ] || return 1
        sleep 0.05
    done
}
plain='s/^<[0-9]>//; s/^[0-9:.T-]*Z //'
# The dispatcher's last report on alpha.
last_report() { grep 'jobs: done=' "$tmp/alpha.log" | tail -1 | sed "$plain"; }
# The count of KEY= in the last report.
report_value() { last_report | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

head -c 32 /dev/urandom >"$tmp/secret"
chmod 600 "$tmp/secret"

# start_node NAME DISPATCH [SEED]: writes NAME's configuration, starts it.
start_node() {
    {
        printf '[node]\nname = %s\nlisten = 127.0.0.1:0\n' "$1"
        printf 'secret_file = %s\nthreads = 1\nmesh = yes\n' "$tmp/secret"
        printf 'control = %s/%s.sock\n' "$tmp/run" "$1"
        [ -n "${3:-}" ] && printf 'peers = %s\n' "$3"
        printf '\n[app jobs]\nmodule = %s\nworkers = 4\ndispatch = %s\n' \
            "$module" "$2"
    } >"$tmp/$1.conf"
    "$actord" --config "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
    last=$!
    pids="$pids $last"
    wait_log "$tmp/$1.log" 'actord: ready' 10 || die "$1 did not start"
}

say "Three nodes with mesh = yes: alpha the seed, beta and gamma name only alpha"
start_node alpha yes
alpha_node=$(grep -m1 node_started "$tmp/alpha.log" | sed -n 's/.* node=\([^ ]*\).*/\1/p')
[ -n "$alpha_node" ] || die "alpha logged no name"
sed "s|$tmp/||; s|$build/bin/||; s/^/    /" "$tmp/alpha.conf"
start_node beta no "$alpha_node"
start_node gamma no "$alpha_node"
gamma=$last
wait_log "$tmp/beta.log" 'nodeup node=gamma@' 10 ||
    die "beta did not find gamma through alpha"
wait_log "$tmp/gamma.log" 'nodeup node=beta@' 10 ||
    die "gamma did not find beta through alpha"
echo "beta and gamma connected to each other through the mesh:"
grep -h 'nodeup' "$tmp/beta.log" | sed "$plain; s/^/    beta: /"
echo "$ actorctl nodes    (on beta)"
"$actorctl" --socket "$tmp/run/beta.sock" nodes | sed 's/^/    /'

say "alpha's dispatcher spreads jobs over the 12 workers of the group \"jobs\""
n=0
until [ "$(report_value members)" = 12 ] && [ "$(report_value gamma)" -gt 0 ] 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 200 ] || die "the jobs did not reach all three nodes"
    sleep 0.05
done
last_report | sed 's/^/    /'
echo "$ actorctl groups    (on alpha)"
"$actorctl" --socket "$tmp/run/alpha.sock" groups | sed 's/^/    /'
"$actorctl" --socket "$tmp/run/alpha.sock" groups | grep -q '^jobs  *4  *12 ' ||
    die "actorctl groups does not show 4 of 12 members on alpha"

say "SIGKILL gamma: its workers leave the group, its jobs go to the others"
kill -KILL "$gamma"
wait "$gamma" 2>/dev/null
wait_log "$tmp/alpha.log" 'nodedown node=gamma@' 10 || die "alpha did not see gamma go"
grep -h 'nodedown' "$tmp/alpha.log" | sed "$plain; s/^/    alpha: /"
n=0
until [ "$(report_value members)" = 8 ] 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 200 ] || die "gamma's workers did not leave the group"
    sleep 0.05
done
done_then=$(report_value done)
gamma_then=$(report_value gamma)
n=0
until [ "$(report_value done)" -gt $((done_then + 1000)) ] 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 200 ] || die "the work stopped after gamma went"
    sleep 0.05
done
last_report | sed 's/^/    /'
[ "$(report_value gamma)" = "$gamma_then" ] || die "gamma did work after its death"
[ "$(report_value wrong)" = 0 ] || die "a job came back wrong"
echo "The work goes on on alpha and beta. A job gamma held when it died came"
echo "back to the dispatcher as TP_TAG_FAILED and was sent again: resent=$(report_value resent)."

say "SIGSTOP beta: silent, it is declared down; SIGCONT: it comes back"
beta_pid=$(sed -n 's/.*actord: starting .* pid=\([0-9]*\)$/\1/p' "$tmp/beta.log")
[ -n "$beta_pid" ] || die "beta logged no pid"
kill -STOP "$beta_pid"
wait_log "$tmp/alpha.log" 'nodedown node=beta@' 10 || die "alpha did not see beta go silent"
grep -h 'nodedown node=beta@' "$tmp/alpha.log" | sed "$plain; s/^/    alpha: /"
n=0
until [ "$(report_value members)" = 4 ] 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 200 ] || die "beta's workers did not leave alpha's view"
    sleep 0.05
done
last_report | sed 's/^/    /'
beta_then=$(report_value beta)
kill -CONT "$beta_pid"
n=0
until [ "$(report_value members)" = 8 ] && [ "$(report_value beta)" -gt "$beta_then" ] 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 300 ] || die "beta did not come back into the group"
    sleep 0.05
done
grep -h 'nodeup node=beta@' "$tmp/alpha.log" | tail -1 | sed "$plain; s/^/    alpha: /"
last_report | sed 's/^/    /'
echo "beta's workers are members again and take jobs: the partition healed."

say "Stop alpha and beta (SIGTERM)"
for n in alpha beta; do
    pid=$(sed -n 's/.*actord: starting .* pid=\([0-9]*\)$/\1/p' "$tmp/$n.log")
    [ -n "$pid" ] && kill -TERM "$pid"
done
wait 2>/dev/null
grep -h 'jobs: done=' "$tmp/alpha.log" | tail -1 | sed "$plain; s/^/    final: /"
echo
echo "cluster: done"
