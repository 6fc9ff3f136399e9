#!/bin/sh
# SPDX-License-Identifier: MIT
# The demo `make demo` runs, narrated on the terminal: two actord nodes on
# loopback that share a freshly generated secret, each running the
# kvstore application; a client load (with a client that sends garbage);
# actorctl's view of the live tree; a shard killed with actorctl and
# restarted by its supervisor; a shard traced; kvstore upgraded from 1.0
# to 2.0 under load; one node killed with SIGKILL and the other
# reporting it down; the survivor stopped with SIGTERM, its ordered
# shutdown read back from its log. Everything lives in a temporary
# directory removed at the end; every wait is bounded.
#
#   sh examples/demo.sh [BUILD_DIR]        (default build)
set -u
build=$(cd "${1:-build}" && pwd) || exit 1
actord=$build/bin/actord
actorctl=$build/bin/actorctl
kvload=$build/bin/kvload
module=$build/bin/kvstore.so
for f in "$actord" "$actorctl" "$kvload" "$module"; do
    [ -e "$f" ] || { echo "demo: $f is not built (make demo builds it)" >&2; exit 1; }
done

tmp=$(mktemp -d) || exit 1 # mode 0700, under $TMPDIR or /tmp
# Every process started in the background, as soon as it is started.
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM

# actorctl finds a node's control socket by its name under here first.
export XDG_RUNTIME_DIR="$tmp/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset NOTIFY_SOCKET ACTORCTL_SOCKET

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    bold=$(printf '\033[1m') dim=$(printf '\033[2m') off=$(printf '\033[0m')
else
    bold="" dim="" off=""
fi
step=0
say() {
    step=$((step + 1))
    printf '\n%s== %d. %s%s\n' "$bold" "$step" "$*" "$off"
}
# show COMMAND...: prints the command as typed, then runs it.
show() {
    printf '%s$ %s%s\n' "$dim" "$*" "$off" | sed "s|$build/bin/||g; s|$tmp/||g"
    "$@"
}
die() {
    echo "demo: $*" >&2
    for n in alpha beta; do
        [ -s "$tmp/$n.log" ] && { echo "--- $n's log:" >&2; tail -20 "$tmp/$n.log" >&2; }
    done
    exit 1
}

# wait_log FILE PATTERN SECONDS [PID]: until a line of FILE matches
# PATTERN; fails after SECONDS, or at once when process PID has exited.
wait_log() {
    n=0 limit=$(($3 * 20))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt $limit ] || return 1
        [ -z "${4:-}" ] || kill -0 "$4" 2>/dev/null || return 1
        sleep 0.05
    done
}

# A log line without its priority prefix and timestamp, for reading.
plain='s/^<[0-9]>//; s/^[0-9:.T-]*Z //'

# The value of KEY=... in the first line of FILE matching PATTERN.
log_value() {
    grep -- "$2" "$1" | head -1 | sed -n "s/.* $3=\([^ ]*\).*/\1/p"
}

# The control sockets, named explicitly: should a node of the demo die,
# `-n NAME` would find another node of that name on this machine.
ctl_alpha=$XDG_RUNTIME_DIR/troupe/alpha.sock

# The pid (<...>) actorctl's JSON lists under NAME on alpha.
pid_of() {
    "$actorctl" --socket "$ctl_alpha" ps --json |
        sed -n "s/.*\"pid\":\"\(<[0-9.]*>\)\".*\"name\":\"$1\".*/\1/p"
}

# ---- 1. the secret ---------------------------------------------------------

say "A fresh 32-byte secret, mode 0600: the nodes authenticate each other with it"
head -c 32 /dev/urandom >"$tmp/secret"
chmod 600 "$tmp/secret"
show ls -l "$tmp/secret" | sed "s|$tmp/||"

# ---- 2. two nodes ----------------------------------------------------------

# start_node NAME [PEER]: writes NAME's configuration and starts actord on
# it, both ports picked by the system; waits until the node is ready.
start_node() {
    {
        printf '[node]\nname = %s\nlisten = 127.0.0.1:0\n' "$1"
        printf 'secret_file = %s\nthreads = 2\n' "$tmp/secret"
        # Where actorctl -n NAME looks first (as root actord would use
        # /run/troupe, shared with any other node of that name).
        printf 'control = %s/troupe/%s.sock\n' "$XDG_RUNTIME_DIR" "$1"
        [ -n "${2:-}" ] && printf 'peers = %s\n' "$2"
        printf '\n[app kv]\nmodule = %s\nlisten = 127.0.0.1:0\nshards = 4\n' \
            "$module"
    } >"$tmp/$1.conf"
    "$actord" --config "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
    last=$!
    pids="$pids $last"
    wait_log "$tmp/$1.log" 'actord: ready' 10 $last || die "$1 did not start"
}

say "Start node alpha: actord running the kvstore application"
start_node alpha
alpha=$last
printf '%s$ actord --config alpha.conf%s\n' "$dim" "$off"
sed "s|$tmp/||; s|$build/bin/||; s/^/    /" "$tmp/alpha.conf"
alpha_node=$(log_value "$tmp/alpha.log" node_started node)
alpha_kv=$(log_value "$tmp/alpha.log" 'kv_acceptor <[0-9.]*>: listening' port)
{ [ -n "$alpha_node" ] && [ -n "$alpha_kv" ]; } || die "alpha logged no ports"
echo "alpha is $alpha_node, kvstore on port $alpha_kv"

say "Start node beta, which lists alpha as a peer"
start_node beta "$alpha_node"
beta=$last
beta_node=$(log_value "$tmp/beta.log" node_started node)
beta_kv=$(log_value "$tmp/beta.log" 'kv_acceptor <[0-9.]*>: listening' port)
{ [ -n "$beta_node" ] && [ -n "$beta_kv" ]; } || die "beta logged no ports"
echo "beta is $beta_node, kvstore on port $beta_kv"
wait_log "$tmp/alpha.log" "nodeup node=beta@" 10 ||
    die "alpha did not see beta come up"
grep -h 'nodeup' "$tmp/alpha.log" "$tmp/beta.log" | sed "$plain"


# ---- 3. load ---------------------------------------------------------------

say "Client load: 8 clients write 2000 keys each into alpha and read them back, one more sends garbage; actorctl top samples alpha meanwhile"
printf '%s$ kvload 127.0.0.1:%s -c 8 -n 2000 -g &%s\n' "$dim" "$alpha_kv" "$off"
"$kvload" "127.0.0.1:$alpha_kv" -c 8 -n 2000 -g >"$tmp/load.out" 2>&1 &
load=$!
pids="$pids $load"
sleep 0.2
show "$actorctl" --socket "$ctl_alpha" top -d 0.5 -n 1 | head -12
wait $load || { cat "$tmp/load.out"; die "lost writes on alpha"; }
cat "$tmp/load.out"
show "$kvload" "127.0.0.1:$beta_kv" -c 4 -n 500 || die "lost writes on beta"

say "The live supervision tree of alpha"
show "$actorctl" --socket "$ctl_alpha" tree

# ---- 4. kill a shard -------------------------------------------------------

old=$(pid_of kv_shard_2)
say "Kill shard kv_shard_2 ($old); its one_for_one supervisor restarts it"
show "$actorctl" --socket "$ctl_alpha" kill kv_shard_2 || die "kill failed"
n=0
until new=$(pid_of kv_shard_2) && [ -n "$new" ] && [ "$new" != "$old" ]; do
    n=$((n + 1))
    [ $n -lt 200 ] || die "kv_shard_2 was not restarted"
    sleep 0.05
done
show "$actorctl" --socket "$ctl_alpha" tree
echo "kv_shard_2 is back as $new with RESTARTS 1; its siblings kept their pids."
grep 'restarted child=kv_shard_2' "$tmp/alpha.log" | sed "$plain"
show "$actorctl" --socket "$ctl_alpha" info kv_shard_2
echo "Its keys were in its memory and are gone; the store keeps serving:"
show "$kvload" "127.0.0.1:$alpha_kv" -c 4 -n 500 -p after || die "alpha stopped serving"
say "The actors that ran longest on alpha's schedulers"
show "$actorctl" --socket "$ctl_alpha" ps --sort cpu -n 6

say "Trace kv_shard_1 while clients use the store: its next 6 messages, in and out"
printf '%s$ actorctl trace kv_shard_1 --received --sent -n 6%s\n' "$dim" "$off"
"$actorctl" --socket "$ctl_alpha" trace kv_shard_1 --received --sent -n 6 \
    --seconds 20 >"$tmp/trace.out" 2>"$tmp/trace.err" &
tracer=$!
pids="$pids $tracer"
wait_log "$tmp/trace.err" '^tracing' 10 $tracer || die "the trace did not start"
"$kvload" "127.0.0.1:$alpha_kv" -c 2 -n 200 -p traced >/dev/null ||
    die "alpha stopped serving"
wait $tracer || { cat "$tmp/trace.err"; die "the trace failed"; }
head -1 "$tmp/trace.err"
cat "$tmp/trace.out"
tail -1 "$tmp/trace.err"

say "Upgrade kvstore on alpha from 1.0 to 2.0 while 4 clients write and read: no request fails, no key is lost"
printf '%s$ kvload 127.0.0.1:%s -c 4 -n 3000 -p upgrade &%s\n' "$dim" "$alpha_kv" "$off"
"$kvload" "127.0.0.1:$alpha_kv" -c 4 -n 3000 -p upgrade >"$tmp/upgrade.out" 2>&1 &
load=$!
pids="$pids $load"
show "$actorctl" --socket "$ctl_alpha" upgrade kv "$build/bin/kvstore-v2.so" ||
    die "the upgrade failed"
wait $load || { cat "$tmp/upgrade.out"; die "lost writes across the upgrade"; }
cat "$tmp/upgrade.out"
printf '%s$ actorctl info kv_shard_1 | grep -E "^(behaviour|version|describe)"%s\n' \
    "$dim" "$off"
"$actorctl" --socket "$ctl_alpha" info kv_shard_1 |
    grep -E '^[^ ]*(behaviour|version|describe)' || die "no info after the upgrade"
wait_log "$tmp/alpha.log" 'app_module_unloaded app=kv' 10 ||
    die "alpha did not unload kvstore 1.0"
echo "Every actor of 1.0 switched; nothing runs 1.0 any more, so actord unloaded it:"
grep -h 'app_upgraded\|app_module_unloaded' "$tmp/alpha.log" |
    sed "$plain; s|$build/bin/||g"

# ---- 5. lose a node --------------------------------------------------------

say "alpha's peers: beta is up, its round trip measured by heartbeats"
n=0
until "$actorctl" --socket "$ctl_alpha" nodes --json | grep -q '"rtt_us":[1-9]'; do
    n=$((n + 1))
    [ $n -lt 60 ] || break
    sleep 0.05
done
show "$actorctl" --socket "$ctl_alpha" nodes

say "SIGKILL node beta: alpha must report it down"
t0=$(date +%s%N)
show kill -KILL "$beta"
wait "$beta" 2>/dev/null
wait_log "$tmp/alpha.log" "nodedown node=beta@" 10 || die "alpha did not notice"
t1=$(date +%s%N)
grep 'nodedown' "$tmp/alpha.log" | sed "$plain"
echo "alpha noticed in $(((t1 - t0) / 1000000)) ms"
show "$actorctl" --socket "$ctl_alpha" nodes

# ---- 6. ordered shutdown ---------------------------------------------------

say "SIGTERM node alpha: the tree stops in reverse start order"
show kill -TERM "$alpha"
# Bounded: a shutdown stuck for 20 s is killed, and the demo fails.
(sleep 20 && kill -KILL "$alpha" 2>/dev/null) &
watchdog=$!
pids="$pids $watchdog"
wait "$alpha"
status=$?
kill "$watchdog" 2>/dev/null
grep -E 'stop_requested|app_stopping|child_stopped|app_stopped|stopped status' \
    "$tmp/alpha.log" | sed "$plain; s/^troupe: //"
[ "$status" -eq 0 ] || die "alpha exited with status $status"
printf '\n%sactord exited with status 0. Demo over.%s\n' "$bold" "$off"
