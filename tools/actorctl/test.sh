#!/bin/sh
# SPDX-License-Identifier: MIT
# actorctl against a real node: test/ctlnode runs a supervision tree and a
# control socket; this script drives it through a pair of FIFOs (commands
# in, one answer line out) and checks what actorctl prints and how it
# exits. Then raw malformed requests must leave the node answering, a
# node that misbehaves on purpose (test/ctlfake) must cost actorctl a
# clear diagnostic and never a crash, and, as root, another user must be
# refused. Every wait is bounded and waits for a condition.
#
#   sh tools/actorctl/test.sh BUILD_DIR      (make check runs it)
set -u
build=${1:?usage: test.sh BUILD_DIR}
actorctl=$build/bin/actorctl
tools=$build/test/actorctl
tmp=$(mktemp -d)
failures=0
checks=0
began=$(date +%s)

unset ACTORCTL_SOCKET NO_COLOR
# Only this test's nodes: with TROUPE_RUNTIME_DIR set actorctl looks
# nowhere else, whatever runs in /run/troupe or /tmp/troupe-UID.
export LC_ALL=C XDG_RUNTIME_DIR="$tmp/xdg" TROUPE_RUNTIME_DIR="$tmp/xdg/troupe"
mkdir -m 700 "$tmp/xdg"
sock=$tmp/xdg/troupe/alpha.sock

cleanup() {
    exec 3>&- 4<&- 5>&- 6<&-
    wait
    rm -rf "$tmp" ${bindir:+"$bindir"}
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    printf "actorctl test: FAIL: %s\n" "$*" >&2
    failures=$((failures + 1))
}

# Runs a command with its output in $tmp/out and $tmp/err, status in $rc.
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect STATUS WHAT COMMAND...: the command exits with STATUS.
expect() {
    want=$1 what=$2
    shift 2
    checks=$((checks + 1))
    run "$@"
    [ "$rc" = "$want" ] ||
        fail "$what: exit $rc, expected $want; stderr: $(cat "$tmp/err")"
}

# has FILE PATTERN WHAT: a line of FILE matches the basic regex PATTERN.
has() {
    checks=$((checks + 1))
    grep -q -- "$2" "$1" || {
        fail "$3: no line matches '$2' in:"
        sed 's/^/    /' "$1" >&2
    }
}

# one_line WHAT: the diagnostic in $tmp/err is one "actorctl: " line.
one_line() {
    checks=$((checks + 1))
    if ! { [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
        grep -q '^actorctl: ' "$tmp/err"; }; then
        fail "$1: expected one diagnostic line, got: $(cat "$tmp/err")"
    fi
}

# eventually COMMAND...: retries COMMAND until it succeeds, for 10 s.
eventually() {
    n=0
    until "$@"; do
        n=$((n + 1))
        [ $n -lt 200 ] || return 1
        sleep 0.05
    done
}

# The value of KEY in one line of actorctl's JSON (quotes removed).
field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# The line of actor NAME in $tmp/out (tree --json or ps --json output).
actor() {
    grep "\"name\":\"$1\"" "$tmp/out"
}

# ---- the node -------------------------------------------------------------

mkfifo "$tmp/node.in" "$tmp/node.out"
timeout 100 "$tools/ctlnode" "$sock" <"$tmp/node.in" >"$tmp/node.out" \
    2>"$tmp/node.log" &
node=$!
exec 3>"$tmp/node.in" 4<"$tmp/node.out"
if ! read -r line <&4 || [ "$line" != ready ]; then
    echo "actorctl test: the test node did not start:" >&2
    cat "$tmp/node.log" >&2
    exit 1
fi

# ask COMMAND: one command to the node; its answer in $answer.
ask() {
    echo "$*" >&3
    read -r answer <&4 || answer="(the node went away)"
}

# ---- the command line -----------------------------------------------------

expect 0 "--version" "$actorctl" --version
has "$tmp/out" '^actorctl (troupe) [0-9]' "--version"
expect 0 "--help" "$actorctl" --help
has "$tmp/out" '^Usage: actorctl' "--help"
expect 0 "help kill" "$actorctl" help kill
has "$tmp/out" 'REASON' "help kill"
expect 2 "no command" "$actorctl"
expect 2 "an unknown command" "$actorctl" -n alpha frobnicate
one_line "an unknown command"
expect 2 "an unknown option" "$actorctl" -n alpha tree --frob
expect 2 "ps --sort nonsense" "$actorctl" -n alpha ps --sort nonsense
expect 2 "kill with a bad reason" "$actorctl" -n alpha kill victim explode
expect 2 "kill with a positive code" "$actorctl" -n alpha kill victim 5
expect 2 "info without an actor" "$actorctl" -n alpha info
expect 2 "-n and --socket together" "$actorctl" -n alpha --socket "$sock" tree

# ---- tree -----------------------------------------------------------------

# Two gates held with 30 and 12 messages queued: mailboxes that stay put.
ask fill gate_a 30
[ "$answer" = ok ] || fail "fill gate_a: $answer"
ask fill gate_b 12
[ "$answer" = ok ] || fail "fill gate_b: $answer"

expect 0 "tree" "$actorctl" -n alpha tree
has "$tmp/out" '^ACTOR  *BEHAVIOUR  *STATUS  *MAILBOX  *HANDLED  *RESTARTS$' \
    "tree header"
has "$tmp/out" '^<0\.[0-9]*\.[0-9]*> root  *supervisor ' "tree root"
# A held gate is "runnable", or "busy 312ms" once held for 300 ms.
status_re='[a-z]*\( [0-9.]*m*s\)\{0,1\}'
has "$tmp/out" "^|- <0\\.[0-9]*\\.[0-9]*> gate_a  *gate  *$status_re  *3[01]/1024 " \
    "tree gate_a"
has "$tmp/out" '^`- <0\.[0-9]*\.[0-9]*> sub  *supervisor ' "tree sub"
has "$tmp/out" '^   `- <0\.[0-9]*\.[0-9]*> leaf  *leaf ' "tree leaf"
has "$tmp/out" '^<0\.[0-9]*\.[0-9]*> loner  *loner ' "tree loner"

expect 0 "tree --json" "$actorctl" -n alpha tree --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "tree --json is not valid JSON"
cp "$tmp/out" "$tmp/tree.json"
# One actor per line, in tree order, every field of the protocol typed.
pid='"<[0-9]*\.[0-9]*\.[0-9]*>"'
schema="^{\"pid\":$pid,\"parent\":\\(null\\|$pid\\),\"name\":\"[a-z_]*\","
schema="$schema\"behaviour\":\"[a-z]*\","
schema="$schema\"status\":\"\\(waiting\\|runnable\\|muted\\|exiting\\|busy\\)\""
for k in mailbox capacity high_water handled dropped rejected restarts; do
    schema="$schema,\"$k\":[0-9][0-9]*"
done
schema="$schema,\"age_ms\":[0-9][0-9]*,\"cpu_us\":[0-9][0-9]*"
schema="$schema,\"start_order\":[1-9][0-9]*,\"busy_ms\":[0-9][0-9]*"
for k in waits wait_p50_us wait_p99_us wait_max_us; do
    schema="$schema,\"$k\":[0-9][0-9]*"
done
schema="$schema},\\{0,1\\}\$"
checks=$((checks + 1))
[ "$(grep -c "$schema" "$tmp/out")" -eq 8 ] ||
    fail "tree --json: not 8 actor lines of the protocol's schema: $(cat "$tmp/out")"
order=$(sed -n 's/.*"name":"\([a-z_]*\)".*/\1/p' "$tmp/out" | tr '\n' ' ')
checks=$((checks + 1))
[ "$order" = "root counter gate_a gate_b victim sub leaf loner " ] ||
    fail "tree --json order: $order"
has "$tmp/out" '^{"node":"","uptime_ms":[0-9]*,"threads":4,"cpu_time":true,"actors":\[$' \
    "tree --json header"
root=$(field "$(actor root)" pid)
sub=$(field "$(actor sub)" pid)
leaf=$(field "$(actor leaf)" pid)
for name in root counter gate_a gate_b victim sub leaf loner; do
    line=$(actor "$name")
    case $name in
    root | loner) parent=null ;;
    leaf) parent=$sub ;;
    *) parent=$root ;;
    esac
    ask pid "$name"
    checks=$((checks + 4))
    [ "$(field "$line" pid)" = "$answer" ] ||
        fail "tree --json: $name has pid $(field "$line" pid), the node says $answer"
    [ "$(field "$line" parent)" = "$parent" ] ||
        fail "tree --json: $name's parent is $(field "$line" parent), not $parent"
    [ "$(field "$line" capacity)" = 1024 ] ||
        fail "tree --json: $name's capacity is $(field "$line" capacity)"
    [ "$(field "$line" restarts)" = 0 ] ||
        fail "tree --json: $name has restarted $(field "$line" restarts) times"
done
behaviour=$(field "$(actor sub)" behaviour)
checks=$((checks + 1))
[ "$behaviour" = supervisor ] || fail "tree --json: sub's behaviour: $behaviour"
depth=$(field "$(actor gate_a)" mailbox)
checks=$((checks + 1))
if ! { [ "$depth" -ge 30 ] && [ "$depth" -le 31 ]; }; then
    fail "tree --json: gate_a holds $depth messages, not 30 (or 31 with the one it handles)"
fi

expect 0 "tree --describe" "$actorctl" -n alpha tree --describe
has "$tmp/out" '^|  strategy=one_for_one intensity=100 period_ms=1000 restarts_in_window=0 children=5$' \
    "tree --describe, root"
has "$tmp/out" '^   |  strategy=one_for_one intensity=1 period_ms=5000 ' \
    "tree --describe, sub"
expect 0 "tree --describe --json" "$actorctl" -n alpha tree --describe --json
checks=$((checks + 2))
"$tools/ctljson" <"$tmp/out" || fail "tree --describe --json is not valid JSON"
[ "$(grep -c '"describe":"strategy=one_for_one ' "$tmp/out")" -eq 2 ] ||
    fail "tree --describe --json: not two supervisors described: $(cat "$tmp/out")"

expect 0 "tree --dot" "$actorctl" -n alpha tree --dot
has "$tmp/out" '^digraph troupe {$' "tree --dot"
has "$tmp/out" "^  \"$sub\" -> \"$leaf\";\$" "tree --dot edge"

# ---- ps -------------------------------------------------------------------

expect 0 "ps --sort mailbox" "$actorctl" -n alpha ps --sort mailbox
has "$tmp/out" '^PID  *NAME  *BEHAVIOUR  *STATUS  *MAILBOX  *PEAK  *HANDLED  *CPU  *WAIT99  *RESTARTS  *AGE$' \
    "ps header"
rows=$(sed -n '2,3s/^<[0-9.]*>  *\([a-z_]*\) .*/\1/p' "$tmp/out" | tr '\n' ' ')
checks=$((checks + 1))
[ "$rows" = "gate_a gate_b " ] || fail "ps --sort mailbox begins with: $rows"
expect 0 "ps --sort mailbox -n 2 --json" "$actorctl" -n alpha ps \
    --sort mailbox -n 2 --json
checks=$((checks + 2))
"$tools/ctljson" <"$tmp/out" || fail "ps --json is not valid JSON"
[ "$(sed -n 's/.*"name":"\([a-z_]*\)".*/\1/p' "$tmp/out" | tr '\n' ' ')" = \
    "gate_a gate_b " ] || fail "ps --sort mailbox -n 2 --json: $(cat "$tmp/out")"
# The gates are inside a callback: their activations, still running, have
# taken more scheduler time than any other actor's.
expect 0 "ps --sort cpu" "$actorctl" -n alpha ps --sort cpu -n 2
rows=$(sed -n '2,3s/^<[0-9.]*>  *\([a-z_]*\) .*/\1/p' "$tmp/out" | sort |
    tr '\n' ' ')
checks=$((checks + 1))
[ "$rows" = "gate_a gate_b " ] || fail "ps --sort cpu begins with: $rows"
expect 0 "ps --json for cpu_us" "$actorctl" -n alpha ps --sort cpu --json
cpu=$(field "$(actor gate_a)" cpu_us)
checks=$((checks + 1))
[ "${cpu:-0}" -ge 1000 ] || fail "gate_a held in a callback: cpu_us=$cpu"
expect 2 "ps -n with a name" "$actorctl" ps -n alpha
has "$tmp/err" 'actorctl -n NODE ps' "ps -n with a name"

# A gate held in its callback for over the node's stall_ms (300 ms) is
# busy: ps and tree say for how long, and info answers at once with what
# a snapshot shows (the actor itself cannot answer).
gate_busy() {
    run "$actorctl" -n alpha ps
    grep -q '^<[0-9.]*>  *gate_a  *gate  *busy [0-9.]*m*s  ' "$tmp/out"
}
checks=$((checks + 1))
eventually gate_busy || fail "ps: gate_a not busy: $(cat "$tmp/out")"
expect 0 "info of a busy actor" "$actorctl" -n alpha info gate_a
has "$tmp/out" '^status  *busy [0-9.]*m*s$' "info of a busy actor: status"
has "$tmp/out" '^detail  *unavailable: busy in a callback$' \
    "info of a busy actor: detail"
expect 0 "info of a busy actor, --json" "$actorctl" -n alpha info gate_a --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "info --json of a busy actor: not JSON"
has "$tmp/out" '"status":"busy",.*"busy_ms":[1-9][0-9]*,"waits":[0-9]*,.*}$' \
    "info --json of a busy actor"
expect 0 "stats of a node with stalls" "$actorctl" -n alpha stats
has "$tmp/out" '^stalls  *[1-9][0-9]*$' "stats counts stalls"

ask release
[ "$answer" = ok ] || fail "release: $answer"

# Released, each gate handled the messages that had waited in its mailbox
# for the whole hold (over the 300 ms it took to be reported busy): their
# waits are the longest on the node. One message in 64 is timed by
# default: the test node times every one (wait_sample 1), so that the 30
# queued behind the held one surely are.
expect 0 "ps --sort wait" "$actorctl" -n alpha ps --sort wait -n 2
rows=$(sed -n '2,3s/^<[0-9.]*>  *\([a-z_]*\) .*/\1/p' "$tmp/out" | sort |
    tr '\n' ' ')
checks=$((checks + 1))
[ "$rows" = "gate_a gate_b " ] || fail "ps --sort wait begins with: $rows"
# CPU and WAIT99 are each a hold long: milliseconds, or seconds on a slow
# machine ("1.52s"), never microseconds.
has "$tmp/out" '^<[0-9.]*>  *gate_[ab]  *gate  .* [0-9.]*m*s  *[0-9.]*m*s  *0  ' \
    "ps shows a gate's CPU and WAIT99 in ms or s"
expect 0 "ps --json for waits" "$actorctl" -n alpha ps --sort wait --json
wait99=$(field "$(actor gate_a)" wait_p99_us)
waits=$(field "$(actor gate_a)" waits)
checks=$((checks + 2))
[ "${wait99:-0}" -ge 250000 ] || fail "gate_a's messages waited: p99 $wait99 us"
[ "${waits:-0}" -ge 1 ] || fail "gate_a's waits timed: $waits"
expect 0 "info of a released gate" "$actorctl" -n alpha info gate_a
has "$tmp/out" '^wait  *p50 [0-9.]*[mu]*s, p99 [0-9.]*m*s, max [0-9.]*m*s ([1-9][0-9]* timed)$' \
    "info wait"
expect 0 "stats names the longest wait" "$actorctl" -n alpha stats
has "$tmp/out" '^longest_wait  *<[0-9.]*> gate_[ab] (gate): p50 [0-9.]*[mu]*s, p99 [0-9.]*m*s, max [0-9.]*m*s$' \
    "stats longest_wait"
expect 0 "stats --json with the longest wait" "$actorctl" -n alpha stats --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "stats --json is not valid JSON"
has "$tmp/out" '"longest_wait":{"pid":"<[0-9.]*>","name":"gate_[ab]","behaviour":"gate","wait_p50_us":[0-9]*,"wait_p99_us":[0-9]*,"wait_max_us":[0-9]*}}$' \
    "stats --json longest_wait"
expect 2 "ps --sort with an unknown key" "$actorctl" -n alpha ps --sort waits
has "$tmp/err" 'unknown sort key "waits" (mailbox, msgs, cpu, wait, ' \
    "ps --sort with an unknown key"

# ---- info -----------------------------------------------------------------

cp "$tmp/tree.json" "$tmp/out"
counter=$(field "$(actor counter)" pid)
expect 0 "info counter" "$actorctl" -n alpha info counter
has "$tmp/out" "^pid  *$counter\$" "info pid"
has "$tmp/out" '^describe  *count=[0-9]*$' "info describe"
has "$tmp/out" "^links  *$root\$" "info links"
has "$tmp/out" '^trap_exit  *false$' "info trap_exit"
has "$tmp/out" '^cpu  *\([0-9.]*[mu]*s\|-\)$' "info cpu"
# The root lists its five children: longer than the 256 bytes once kept.
expect 0 "info root" "$actorctl" -n alpha info root
has "$tmp/out" '^describe  *strategy=one_for_one .* \[id=sub pid=<[0-9.]*> state=running restarts=0\]$' \
    "info root: the whole describe line"
bare=$(printf '%s' "$counter" | tr -d '<>')
expect 0 "info by a bare pid, --json" "$actorctl" -n alpha info "$bare" --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "info --json is not valid JSON"
has "$tmp/out" "\"links\":\[\"$root\"\],\"monitors\":\[\],\"monitored_by\":\[\]" \
    "info --json lists"
has "$tmp/out" "\"trap_exit\":false" "info --json trap_exit"
expect 1 "info of a name nobody has" "$actorctl" -n alpha info nobody_here
one_line "info of a name nobody has"

# ---- kill -----------------------------------------------------------------

# kill_and_wait REASON: kills victim with REASON; its supervisor must
# restart it under a new pid with its restart count one higher.
kill_and_wait() {
    run "$actorctl" -n alpha ps --json
    before=$(actor victim)
    old=$(field "$before" pid)
    restarts=$(field "$before" restarts)
    expect 0 "kill victim $*" "$actorctl" -n alpha kill "$old" "$@"
    case ${1:-kill} in
    kill) said="killed $old (reason kill)" ;;
    *) said="sent $old an exit signal (reason $1)" ;;
    esac
    checks=$((checks + 1))
    [ "$(cat "$tmp/out")" = "$said" ] ||
        fail "kill victim $*: printed '$(cat "$tmp/out")', not '$said'"
    eventually restarted "$old" $((restarts + 1)) ||
        fail "kill victim $*: no restart of $old (now: $(actor victim))"
}

restarted() {
    run "$actorctl" -n alpha ps --json
    line=$(actor victim)
    [ -n "$line" ] && [ "$(field "$line" pid)" != "$1" ] &&
        [ "$(field "$line" restarts)" = "$2" ]
}

checks=$((checks + 1))
kill_and_wait
dead=$old
expect 1 "info of a dead pid" "$actorctl" -n alpha info "$dead"
one_line "info of a dead pid"
has "$tmp/err" "$dead: no such actor" "info of a dead pid"
expect 1 "kill of a dead pid" "$actorctl" -n alpha kill "$dead"
one_line "kill of a dead pid"
# upgrade is actord's: a node that serves no such op says so.
expect 1 "upgrade on a node that is not actord" \
    "$actorctl" -n alpha upgrade app "$actorctl"
one_line "upgrade on a node that is not actord"
has "$tmp/err" 'unknown op' "upgrade on a node that is not actord"
expect 2 "upgrade without its arguments" "$actorctl" -n alpha upgrade app
has "$tmp/err" 'upgrade: which application and module?' \
    "upgrade without its arguments"
expect 1 "upgrade of a file that is not there" \
    "$actorctl" -n alpha upgrade app "$tmp/none.so"
has "$tmp/err" 'cannot find' "upgrade of a file that is not there"
checks=$((checks + 2))
kill_and_wait shutdown
kill_and_wait -22
expect 0 "ps --sort restarts" "$actorctl" -n alpha ps --sort restarts -n 1
has "$tmp/out" '^<[0-9.]*>  *victim .* 3  *[0-9.]*[a-z]*$' "ps --sort restarts"
# Siblings in start order: the restarted victim now comes after sub.
expect 0 "tree --json after restarts" "$actorctl" -n alpha tree --json
order=$(sed -n 's/.*"name":"\([a-z_]*\)".*/\1/p' "$tmp/out" | tr '\n' ' ')
checks=$((checks + 1))
[ "$order" = "root counter gate_a gate_b sub leaf victim loner " ] ||
    fail "tree --json order after restarts: $order"
# By name, as JSON: the pid it resolved to and the reason.
run "$actorctl" -n alpha ps --json
old=$(field "$(actor victim)" pid)
expect 0 "kill victim by name --json" "$actorctl" -n alpha kill victim \
    --json
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "{\"ok\":true,\"pid\":\"$old\",\"reason\":\"kill\"}" ] ||
    fail "kill victim --json printed: $(cat "$tmp/out")"
eventually restarted "$old" 4 || fail "kill victim by name: no restart"
old=$(field "$(actor victim)" pid)
expect 0 "kill victim by name, reason -22" "$actorctl" -n alpha kill victim -22
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "sent $old victim an exit signal (reason -22)" ] ||
    fail "kill victim -22 printed: $(cat "$tmp/out")"
eventually restarted "$old" 5 || fail "kill victim by name: no restart"

# ---- top, stats, nodes ----------------------------------------------------

# counter handles a message a millisecond: top must rank it first.
ask tick
[ "$answer" = ok ] || fail "tick: $answer"
expect 0 "top, not on a terminal" "$actorctl" -n alpha top -d 0.2 -n 2
checks=$((checks + 1))
[ "$(grep -c '^node (not distributed)  uptime ' "$tmp/out")" -eq 2 ] ||
    fail "top -n 2 printed: $(cat "$tmp/out")"
has "$tmp/out" '^PID  *NAME  *BEHAVIOUR  *STATUS  *MSG/S  *CPU%  *MAILBOX' "top header"
first=$(sed -n '3p' "$tmp/out")
rate=$(printf '%s\n' "$first" | awk '{print $5}')
checks=$((checks + 1))
case $first in
*" counter "*) [ "$rate" -gt 0 ] || fail "top: counter handles $rate msg/s" ;;
*) fail "top does not rank the busy counter first: $(cat "$tmp/out")" ;;
esac
expect 0 "ps --sort msgs" "$actorctl" -n alpha ps --sort msgs -n 1
has "$tmp/out" '^<[0-9.]*>  *counter ' "ps --sort msgs"

expect 0 "stats" "$actorctl" -n alpha stats
has "$tmp/out" '^actors  *8$' "stats actors"
has "$tmp/out" '^threads  *4$' "stats threads"
has "$tmp/out" '^WORKER  *ACTIVATIONS  *MESSAGES  *STEALS  *SLEEPS$' "stats workers"
expect 0 "stats --json" "$actorctl" -n alpha stats --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "stats --json is not valid JSON"
has "$tmp/out" '"actors":8,.*"workers":\[{"activations":' "stats --json"

expect 0 "nodes" "$actorctl" -n alpha nodes
has "$tmp/out" 'not distributed' "nodes"
expect 0 "nodes --json" "$actorctl" -n alpha nodes --json
has "$tmp/out" '^{"node":"","peers":\[\]}$' "nodes --json"

# ---- groups ---------------------------------------------------------------

# pids NAME...: the pids of the actors registered as NAME..., in slot order
# (the order the node lists a group's local members in), one per line.
pids() {
    for name in "$@"; do
        ask pid "$name"
        echo "$answer"
    done | sort -t. -k2,2n
}

expect 0 "groups, none yet" "$actorctl" -n alpha groups
has "$tmp/out" '^this node has no process groups$' "groups, none yet"
expect 0 "groups --json, none yet" "$actorctl" -n alpha groups --json
has "$tmp/out" '^{"node":"","groups":\[\]}$' "groups --json, none yet"

for join in "beta gate_b victim" "alpha-pool loner counter leaf" \
    "crowd root counter gate_a gate_b sub leaf loner"; do
    ask join "$join"
    [ "$answer" = ok ] || fail "join $join: $answer"
done
alpha_pool=$(pids counter leaf loner)
beta=$(pids gate_b victim)
row=$(printf '%s' "$alpha_pool" | tr '\n' ' ')
expect 0 "groups" "$actorctl" -n alpha groups
has "$tmp/out" '^GROUP  *LOCAL  *TOTAL  *MEMBERS$' "groups header"
has "$tmp/out" "^alpha-pool  *3  *3  *$row\$" "groups alpha-pool"
has "$tmp/out" "^beta  *2  *2  *$(printf '%s' "$beta" | tr '\n' ' ')\$" \
    "groups beta"
has "$tmp/out" '^crowd  *7  *7  *\(<0\.[0-9]*\.[0-9]*> \)\{2,\}\.\.\.$' \
    "groups: a long list cut"
order=$(sed -n '2,$s/ .*//p' "$tmp/out" | tr '\n' ' ')
checks=$((checks + 1))
[ "$order" = "alpha-pool beta crowd " ] || fail "groups order: $order"
expect 0 "groups --json" "$actorctl" -n alpha groups --json
checks=$((checks + 1))
"$tools/ctljson" <"$tmp/out" || fail "groups --json is not valid JSON"
has "$tmp/out" '^{"node":"","groups":\[$' "groups --json header"
members=$(printf '%s\n' "$alpha_pool" | sed 's/.*/"&"/' | tr '\n' ,)
has "$tmp/out" "^{\"name\":\"alpha-pool\",\"local\":3,\"total\":3,\"members\":\[${members%,}\],\"truncated\":false},\$" \
    "groups --json alpha-pool"
has "$tmp/out" '^{"name":"crowd","local":7,"total":7,"members":\["<[0-9.]*>"\(,"<[0-9.]*>"\)\{6\}\],"truncated":false}$' \
    "groups --json crowd: every member"
expect 0 "groups alpha-pool" "$actorctl" -n alpha groups alpha-pool
checks=$((checks + 1))
[ "$(cat "$tmp/out")" = "$alpha_pool" ] ||
    fail "groups alpha-pool printed: $(cat "$tmp/out")"
expect 0 "groups alpha-pool --json" "$actorctl" -n alpha groups alpha-pool \
    --json
has "$tmp/out" "^{\"name\":\"alpha-pool\",\"local\":3,.*\"truncated\":false}\$" \
    "groups alpha-pool --json"
expect 1 "groups of a group nobody is in" "$actorctl" -n alpha groups nosuch
one_line "groups of a group nobody is in"
has "$tmp/err" 'node "alpha": group "nosuch": no such group$' \
    "groups of a group nobody is in"
expect 2 "groups with two groups" "$actorctl" -n alpha groups alpha-pool beta
one_line "groups with two groups"
expect 2 "groups with an unknown option" "$actorctl" -n alpha groups --sort age
# A member leaves its groups when it exits: the restarted victim is not in
# beta.
old=$(pids victim)
expect 0 "kill a member" "$actorctl" -n alpha kill victim
beta_left() {
    run "$actorctl" -n alpha groups beta
    [ "$(cat "$tmp/out")" = "$(pids gate_b)" ] && [ "$(pids victim)" != "$old" ]
}
checks=$((checks + 1))
eventually beta_left || fail "a killed member stays in beta: $(cat "$tmp/out")"

# ---- trace ----------------------------------------------------------------

# chatter, spawned for these tests alone and killed by the last of them,
# handles a message from its timer every 10 ms: a note, an echo sent to
# itself, the echo received.
ask chat
[ "$answer" = ok ] || fail "chat: $answer"
ask pid chatter
chatter=$answer
event='^ *[0-9]*\.[0-9][0-9][0-9] ms  '
esc=$(printf '\033')
from="from \\(outside\\|<[0-9.]*>\\)"
waited="\\(waited [0-9.]*[mu]*s\\|queued before the trace\\)"

# json_lines FILE: each line of FILE is one JSON value.
json_lines() {
    while IFS= read -r l; do
        printf '%s\n' "$l" | "$tools/ctljson" || return 1
    done <"$1"
}

for wrong in "-n 0" "-n -1" "-n abc" "-n 1000001" "--count 2.5" \
    "--seconds 0" "--seconds 86401" "--rate 0" "--rate x"; do
    # shellcheck disable=SC2086
    expect 2 "trace $wrong" "$actorctl" -n alpha trace chatter $wrong
    one_line "trace $wrong"
done
has "$tmp/err" '^actorctl: trace --rate takes a whole number from 1 to 1000000, not "x"$' \
    "trace --rate x"
expect 2 "trace without an actor" "$actorctl" -n alpha trace
expect 2 "trace --sort" "$actorctl" -n alpha trace chatter --sort age
expect 0 "help trace" "$actorctl" help trace
has "$tmp/out" '^  --received  ' "help trace"

# By name: a header, five events (of the four kinds chatter makes, so a
# send among them), and why the trace ended.
expect 0 "trace -n 5" "$actorctl" -n alpha trace chatter -n 5
checks=$((checks + 2))
kinds="$event\\(received\\|sent    \\|note    \\)  "
if ! { [ "$(wc -l <"$tmp/out")" -eq 5 ] &&
    [ "$(grep -c "$kinds" "$tmp/out")" -eq 5 ]; }; then
    fail "trace -n 5 printed: $(cat "$tmp/out")"
fi
! grep -q "$esc" "$tmp/out" || fail "trace printed a note's escape character"
has "$tmp/out" "${event}sent      tag 4 (4 B) to $chatter\$" "trace: a send"
has "$tmp/err" "^tracing $chatter (chatter) for up to 5 events or 60 s; Ctrl-C stops\$" \
    "trace: the header"
has "$tmp/err" '^trace ended: count of 5 events reached (5 events, 0 dropped)$' \
    "trace -n 5: why it ended"
checks=$((checks + 1))
[ "$(wc -l <"$tmp/err")" -eq 2 ] || fail "trace -n 5 said: $(cat "$tmp/err")"

expect 0 "trace --received" "$actorctl" -n alpha trace chatter --received -n 6
checks=$((checks + 1))
received="${event}received  tag [14] ([04] B) $from, $waited\$"
if ! { [ "$(wc -l <"$tmp/out")" -eq 6 ] &&
    [ "$(grep -c "$received" "$tmp/out")" -eq 6 ]; }; then
    fail "trace --received printed: $(cat "$tmp/out")"
fi
has "$tmp/err" "^tracing $chatter (chatter), received only, for up to 6 events" \
    "trace --received: the header"
expect 0 "trace --state" "$actorctl" -n alpha trace chatter --state --sent -n 4
checks=$((checks + 1))
if ! { [ "$(grep -c "${event}note      chat [0-9]* ?\\[2J\$" "$tmp/out")" -eq 2 ] &&
    [ "$(grep -c "${event}sent      tag 4 (4 B) to $chatter\$" "$tmp/out")" -eq 2 ]; }; then
    fail "trace --state --sent printed: $(cat "$tmp/out")"
fi

# At one event a second, the rest of a burst is dropped, and counted
# towards -n: a line says how many were dropped.
expect 0 "trace --rate 1" "$actorctl" -n alpha trace chatter --rate 1 -n 3
checks=$((checks + 1))
if ! { [ "$(wc -l <"$tmp/out")" -eq 2 ] && grep -q "$event" "$tmp/out" &&
    [ "$(sed -n '2p' "$tmp/out")" = "               dropped   2 events" ]; }; then
    fail "trace --rate 1 printed: $(cat "$tmp/out")"
fi
has "$tmp/err" '^trace ended: count of 3 events reached (1 event, 2 dropped)$' \
    "trace --rate 1: why it ended"

# By a bare pid, as JSON lines: the protocol's fields, the traced pid,
# then how it ended.
bare=$(printf '%s' "$chatter" | tr -d '<>')
expect 0 "trace --json" "$actorctl" -n alpha trace "$bare" -n 5 --json
checks=$((checks + 3))
json_lines "$tmp/out" || fail "trace --json: not one JSON value a line: $(cat "$tmp/out")"
[ "$(grep -c "^{\"pid\":\"$chatter\",.*\"seq\":[1-9][0-9]*,.*\"at_us\":[0-9]*,.*\"kind\":\"\\(received\\|sent\\|note\\)\"" "$tmp/out")" -eq 5 ] ||
    fail "trace --json: not 5 events: $(cat "$tmp/out")"
[ "$(sed -n '6p' "$tmp/out")" = '{"end":"count","recorded":5,"dropped":0}' ] ||
    fail "trace --json ended with: $(sed -n '6,$p' "$tmp/out")"
has "$tmp/out" "\"kind\":\"sent\",.*\"to\":\"$chatter\",.*\"size\":4,.*\"result\":\"ok\"" \
    "trace --json: a send"

expect 1 "trace of a dead pid" "$actorctl" -n alpha trace "$dead"
one_line "trace of a dead pid"
has "$tmp/err" "$dead: no such actor\$" "trace of a dead pid"
expect 1 "trace of a name nobody has" "$actorctl" -n alpha trace nobody_here
one_line "trace of a name nobody has"

# loner handles nothing: its trace ends by the clock.
expect 0 "trace --seconds 1" "$actorctl" -n alpha trace loner --seconds 1
has "$tmp/err" '^trace ended: time limit ([0-9]* events*, 0 dropped)$' \
    "trace --seconds 1: why it ended"

# A trace in the background: a second one of the same actor is refused;
# Ctrl-C stops the first with its output whole, and it dies of the signal
# (status 130) as a shell loop expects; the node then lets the actor be
# traced again.
: >"$tmp/bg.out"
"$actorctl" -n alpha trace chatter -n 1000000 >"$tmp/bg.out" 2>"$tmp/bg.err" &
bg=$!
some_events() { [ "$(grep -c "$event" "$tmp/bg.out")" -ge 3 ]; }
checks=$((checks + 1))
eventually some_events || fail "a long trace shows no events: $(cat "$tmp/bg.err")"
expect 1 "a second trace of a traced actor" "$actorctl" -n alpha trace chatter
one_line "a second trace of a traced actor"
has "$tmp/err" "$chatter: already traced\$" "a second trace of a traced actor"
kill -INT "$bg"
wait "$bg"
st=$?
checks=$((checks + 3))
[ "$st" = 130 ] || fail "trace stopped by SIGINT: exit $st, not 130"
[ "$(tail -c 1 "$tmp/bg.out" | od -An -tx1 | tr -d ' ')" = 0a ] ||
    fail "trace stopped by SIGINT: its last line is cut"
! grep -v -e "$event" -e '^  *dropped   [0-9]* events*$' "$tmp/bg.out" |
    grep -q . || fail "trace stopped by SIGINT printed: $(cat "$tmp/bg.out")"
has "$tmp/bg.err" '^trace ended: interrupted ([0-9]* events, [0-9]* dropped)$' \
    "trace stopped by SIGINT"
traced_again() {
    run "$actorctl" -n alpha trace chatter -n 1
    [ "$rc" = 0 ]
}
checks=$((checks + 1))
eventually traced_again || fail "chatter stays traced: $(cat "$tmp/err")"

# The actor killed while traced: its exit is the trace's last event.
: >"$tmp/bg.err"
"$actorctl" -n alpha trace chatter --life >"$tmp/bg.out" 2>"$tmp/bg.err" &
bg=$!
trace_started() { grep -q '^tracing ' "$tmp/bg.err"; }
checks=$((checks + 1))
eventually trace_started || fail "the trace did not start: $(cat "$tmp/bg.err")"
expect 0 "kill a traced actor" "$actorctl" -n alpha kill chatter
wait "$bg"
st=$?
checks=$((checks + 2))
[ "$st" = 0 ] || fail "trace of a killed actor: exit $st: $(cat "$tmp/bg.err")"
if ! { [ "$(wc -l <"$tmp/bg.out")" -eq 1 ] &&
    grep -q "${event}exit      reason killed\$" "$tmp/bg.out"; }; then
    fail "trace of a killed actor printed: $(cat "$tmp/bg.out")"
fi
has "$tmp/bg.err" '^trace ended: the actor exited (1 event, 0 dropped)$' \
    "trace of a killed actor"
ask pid chatter
checks=$((checks + 1))
[ "$answer" = none ] || fail "chatter outlived its kill: $answer"

# ---- choosing the node ----------------------------------------------------

expect 0 "--socket" "$actorctl" --socket "$sock" stats
expect 0 "ACTORCTL_SOCKET" env ACTORCTL_SOCKET="$sock" "$actorctl" stats
expect 0 "the only node running" "$actorctl" stats
mkdir -m 700 "$tmp/empty"
expect 69 "no node running" env TROUPE_RUNTIME_DIR="$tmp/empty" "$actorctl" stats
has "$tmp/err" "no node is running (no socket in $tmp/empty); choose" \
    "no node running"
expect 69 "TROUPE_RUNTIME_DIR elsewhere" env TROUPE_RUNTIME_DIR="$tmp/empty" \
    "$actorctl" -n alpha stats
has "$tmp/err" "node \"alpha\" is not running (no socket at $tmp/empty/alpha.sock)\$" \
    "TROUPE_RUNTIME_DIR elsewhere"
expect 2 "TROUPE_RUNTIME_DIR relative" env TROUPE_RUNTIME_DIR=xdg/troupe \
    "$actorctl" -n alpha stats
one_line "TROUPE_RUNTIME_DIR relative"
expect 0 "-n in XDG_RUNTIME_DIR/troupe" env -u TROUPE_RUNTIME_DIR \
    "$actorctl" -n alpha stats
expect 69 "a node that is not running" "$actorctl" -n nosuch tree
one_line "a node that is not running"
has "$tmp/err" "node \"nosuch\" is not running (no socket at $tmp/xdg/troupe/nosuch.sock" \
    "a node that is not running"
expect 69 "a missing socket" "$actorctl" --socket "$tmp/none.sock" tree
one_line "a missing socket"
: >"$tmp/xdg/troupe/stale.sock"
expect 69 "a stale socket file" "$actorctl" -n stale tree
one_line "a stale socket file"
rm -f "$tmp/xdg/troupe/stale.sock"

# ---- malformed requests ---------------------------------------------------

# raw WANT HEX...: the node answers the raw bytes with WANT ("error" is
# any error), then still serves actorctl.
raw() {
    want=$1
    shift
    checks=$((checks + 2))
    got=$("$tools/ctlraw" "$sock" "$@")
    case $got in
    "$want"*) ;;
    *) fail "raw request $*: '$got', expected '$want'" ;;
    esac
    "$actorctl" -n alpha stats >/dev/null 2>"$tmp/err" ||
        fail "after raw request $*: $(cat "$tmp/err")"
}

raw ok 0000000a 81 a26f70 a57374617473                   # {"op":"stats"}
raw error 00000003 c1c1c1                                # not msgpack
raw error 00000001 93                                    # a cut array
raw error 00000001 90                                    # not a map
raw error 00000001 80                                    # no op
raw error 00000005 81 a26f70 01                          # op not a string
raw ok 0000000b 81 a26f70 a667726f757073               # {"op":"groups"}
raw error 0000000a 81 a26f70 a5626f677573                # unknown op
raw error 00000000                                       # empty frame
raw error 00010001                                       # over 64 KiB
raw error 00000006 81 a26f70 c0 c0                       # trailing byte
raw error 00000015 82 a26f70 a4696e666f a3706964 a7676172626167 65 \
    # {"op":"info","pid":"garbage"}
raw error 00000024 83 a26f70 a46b696c6c a3706964 a73c302e392e393e \
    a6726561736f6e a76578706c6f6465 # kill with reason "explode"
checks=$((checks + 1))
got=$("$tools/ctlraw" -s "$sock" 00000064 81a26f70)     # cut short
case $got in
closed | error*) ;;
*) fail "a request cut short: $got" ;;
esac
expect 0 "tree after malformed requests" "$actorctl" -n alpha tree --json
checks=$((checks + 1))
[ "$(grep -c "$schema" "$tmp/out")" -eq 8 ] ||
    fail "after malformed requests the tree is: $(cat "$tmp/out")"
checks=$((checks + 1))
kill -0 "$node" 2>/dev/null || fail "the node died"

# ---- clients that dawdle ---------------------------------------------------

# One client sends a byte of a request and nothing more, another sends
# nothing: actorctl is answered at once beside them, and the node closes
# both when their 5 s to send a request are up.
"$tools/ctlraw" -p "$sock" 00 >"$tmp/slow1" &
slow1=$!
"$tools/ctlraw" -p "$sock" "" >"$tmp/slow2" &
slow2=$!
both_sent() { grep -q '^sent$' "$tmp/slow1" && grep -q '^sent$' "$tmp/slow2"; }
checks=$((checks + 1))
eventually both_sent || fail "the dawdling clients did not connect"
for cmd in stats "tree --json" ps nodes; do
    # shellcheck disable=SC2086
    expect 0 "$cmd beside dawdling clients" "$actorctl" -t 2 -n alpha $cmd
done
wait "$slow1"
wait "$slow2"
has "$tmp/slow1" '^closed$' "a client that stops mid-request is let go"
has "$tmp/slow2" '^closed$' "a silent client is let go"

# ---- a node that misbehaves -----------------------------------------------

mkdir -m 700 "$tmp/fake"
mkfifo "$tmp/fake.in" "$tmp/fake.out"
timeout 100 "$tools/ctlfake" "$tmp/fake" <"$tmp/fake.in" >"$tmp/fake.out" &
exec 5>"$tmp/fake.in" 6<"$tmp/fake.out"
read -r line <&6 || fail "the fake node did not start"

# bad WANT MODE: actorctl tree against MODE.sock exits WANT, one line.
bad() {
    expect "$1" "a node answering '$2'" "$actorctl" -t 2 \
        --socket "$tmp/fake/$2.sock" tree
    one_line "a node answering '$2'"
}
bad 1 garbage
bad 69 close
bad 69 half
bad 1 huge
has "$tmp/err" 'over the limit' "a huge frame"
bad 1 empty
bad 1 notmap
bad 1 bomb
bad 1 deep
bad 1 trailing
bad 1 types
has "$tmp/err" 'actors\[2\]\.mailbox is a string, expected an unsigned integer' \
    "a field of the wrong type"
bad 1 badpid
bad 1 noreason
bad 77 denied
bad 69 busy
has "$tmp/err" 'too many clients (64): try again later' "a node with no room"
expect 69 "a node that never answers" "$actorctl" -t 0.3 \
    --socket "$tmp/fake/silent.sock" tree
has "$tmp/err" 'did not answer within 300 ms' "a node that never answers"

good="$actorctl --socket $tmp/fake/good.sock"
for cmd in tree "tree --json" "tree --dot" "tree --describe" \
    "tree --describe --json" ps "ps --json" "info 0.2.1" \
    "info 0.2.1 --json" stats "stats --json" nodes "nodes --json" \
    groups "groups --json" "top -n 2 -d 0.05" "kill 0.2.1"; do
    # shellcheck disable=SC2086
    expect 0 "$cmd against hostile content" $good $cmd
    checks=$((checks + 1))
    ! grep -q "$esc" "$tmp/out" || fail "$cmd printed an escape character"
    case $cmd in
    *--json)
        checks=$((checks + 1))
        "$tools/ctljson" <"$tmp/out" || fail "$cmd: not valid JSON"
        ;;
    esac
done
$good tree >"$tmp/out" 2>&1
checks=$((checks + 1))
[ "$(grep -c '^[-|` ]*<0\.' "$tmp/out")" -eq 7 ] ||
    fail "a parent cycle: not each actor once: $(cat "$tmp/out")"
# Siblings and roots in start order (start_order), not the snapshot's.
$good tree --json >"$tmp/out" 2>&1
order=$(sed -n 's/.*"pid":"\(<[0-9.]*>\)".*/\1/p' "$tmp/out" | tr '\n' ' ')
checks=$((checks + 1))
[ "$order" = "<0.1.1> <0.3.1> <0.2.1> <0.6.1> <0.7.1> <0.4.1> <0.5.1> " ] ||
    fail "tree: not in start order: $order"
# A group the node listed in part: "..." in the table, a count after the
# pids of one group, each name cleaned.
$good groups >"$tmp/out" 2>&1
has "$tmp/out" '^q"uo\\te  *1  *1  *<0\.2\.1>$' "groups: a quoted name"
has "$tmp/out" '^z?\[2Jpool  *2  *500  *<0\.2\.1> <0\.3\.1> <1\.9\.1> \.\.\.$' \
    "groups: a list the node cut"
$good groups "$(printf 'z\033[2Jpool')" >"$tmp/out" 2>&1
checks=$((checks + 1))
[ "$(tr '\n' ' ' <"$tmp/out")" = "<0.2.1> <0.3.1> <1.9.1> ... 497 more " ] ||
    fail "groups GROUP of a list the node cut: $(cat "$tmp/out")"
$good --color=always tree >"$tmp/out" 2>&1
has "$tmp/out" "$esc\\[" "--color=always"
NO_COLOR=1 $good --color=always tree >"$tmp/out" 2>&1
checks=$((checks + 1))
! grep -q "$esc" "$tmp/out" || fail "NO_COLOR did not turn colour off"
# A trace of two answers: every kind of event, each text cleaned, a line
# where two events were dropped, a kind actorctl does not know by its name.
# shellcheck disable=SC2086
expect 0 "trace against hostile content" $good trace 0.2.1
cat >"$tmp/want" <<'END'
     0.412 ms  received  tag 7 (12 B) from <0.3.1>, waited 15us
     0.415 ms  sent      tag 8 (4 B) to <0.4.1>: TP_EFULL
     1.002 ms  signal    exit from outside (reason shutdown)
     1.100 ms  spawn     <0.9.1> (work?[2Jer)
               dropped   2 events
     2.100 ms  state     locked -> ?[31mopen
     2.200 ms  note      q"uo\te?
     2.300 ms  teleport
     2.500 ms  received  tag 1 (0 B) from outside, queued before the trace
     3.000 ms  exit      reason kill
END
checks=$((checks + 2))
cmp -s "$tmp/out" "$tmp/want" || fail "trace against hostile content printed:
$(cat "$tmp/out")"
! grep -q "$esc" "$tmp/out" "$tmp/err" || fail "trace printed an escape character"
has "$tmp/err" '^trace ended: the actor exited (9 events, 2 dropped)$' \
    "trace against hostile content"
# shellcheck disable=SC2086
expect 0 "trace --json against hostile content" $good trace 0.2.1 --json
checks=$((checks + 2))
json_lines "$tmp/out" || fail "trace --json against hostile content: not JSON lines"
[ "$(sed -n '$p' "$tmp/out")" = '{"end":"exited","recorded":9,"dropped":2}' ] ||
    fail "trace --json against hostile content ended with: $(sed -n '$p' "$tmp/out")"
has "$tmp/out" '^{"pid":"<0.2.1>","seq":9,"at_us":2300,"kind":"teleport","where":"\\u001b]0;title\\u0007"}$' \
    "trace --json passes an unknown kind's fields"
exec 5>&-

# ---- another user ---------------------------------------------------------

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    bindir=$(mktemp -d)
    chmod 755 "$bindir"
    cp "$actorctl" "$bindir/"
    as_nobody() {
        if command -v setpriv >/dev/null; then
            setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"
        else
            # shellcheck disable=SC2016 # expanded by the user's shell
            su -s /bin/sh nobody -c '"$0" "$@"' "$@"
        fi
    }
    # The socket's directory is 0700: the kernel refuses nobody.
    expect 77 "another user" as_nobody "$bindir/actorctl" --socket "$sock" tree
    one_line "another user"
    has "$tmp/err" 'permission denied' "another user"
    # With the directory opened up, the node itself refuses nobody.
    chmod 711 "$tmp" "$tmp/xdg" "$tmp/xdg/troupe"
    chmod 666 "$sock"
    expect 77 "another user, past the directory" as_nobody \
        "$bindir/actorctl" --socket "$sock" tree
    one_line "another user, past the directory"
    has "$tmp/err" 'answers only its own user and root' \
        "another user, past the directory"
    chmod 700 "$tmp" "$tmp/xdg" "$tmp/xdg/troupe"
    chmod 600 "$sock"
fi

exec 3>&-
wait "$node" || fail "the node exited with status $?: $(cat "$tmp/node.log")"
echo "actorctl test: $checks checks, $failures failed, $(($(date +%s) - began)) s"
[ "$failures" -eq 0 ]
