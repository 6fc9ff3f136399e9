#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the distribution benchmarks several times each and prints one row
# per workload and implementation with the median over the runs, then
# troupe's ratios against the baselines:
#
#   tools/bench/dist.sh [-r RUNS] [-t THREADS] [-q] [-e]
#
# Each run is two processes on 127.0.0.1. pingpong is one small message
# echoed back OPS times, one in flight; stream is OPS small messages sent
# one way as fast as flow control allows; spawn is OPS actors started on
# the other node one at a time (tp_spawn_at, Erlang's spawn/4). The
# implementations:
#
#   troupe    build/bin/tdist (TDIST): two troupe nodes, default node
#             configuration
#   troupe-tls  the same over TLS 1.3 (tdist -t), with certificates made by
#             test/tls_certs.sh (needs the openssl command)
#   tcp       build/bin/tbare (TBARE): the same over a bare TCP socket, no
#             runtime, blocking reads: each hop pays the kernel's wake-up
#             of the reader
#   tcp-spin  tbare -s (pingpong only): the same, but both processes
#             busy-poll non-blocking sockets and never sleep; the real
#             floor for a round trip on this host
#   erlang    tools/bench/erl/tdist.erl on two distributed Erlang nodes
#             (-e only; needs erl and erlc)
#
# RUNS defaults to 5, THREADS (scheduler threads per node: troupe's and
# Erlang's +S) to 0, each runtime's default (one per online CPU); -q
# divides the operation counts by 10. DIST_WORKLOADS="pingpong" restricts the set,
# BENCH_TIMEOUT is the per-run limit in seconds (default 60). Runs are
# interleaved across implementations; a run's stderr goes to
# build/bench-dist.log. Each program prints
#
#   RESULT IMPL WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB 0
#   LATENCY MEAN_US MEDIAN_US P99_US     (pingpong only)
#
# The table shows per column the median over the runs. Targets: a troupe
# round trip within 1.2 times a bare TCP one (both baselines are
# reported, each with its verdict) and at most half an Erlang one,
# troupe's stream at least 10 times Erlang's.
set -euo pipefail

usage() {
    echo "usage: dist.sh [-r RUNS] [-t THREADS] [-q] [-e]" >&2
    exit 2
}

runs=5 threads=0 div=1 erlang=0
while getopts r:t:qeh opt; do
    case $opt in
    r) runs=$OPTARG ;;
    t) threads=$OPTARG ;;
    q) div=10 ;;
    e) erlang=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $runs =~ ^[1-9][0-9]*$ && $threads =~ ^[0-9]+$ ]] || usage

# TDIST and TBARE are taken relative to the caller's directory.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
tdist=${TDIST:+$(abs "$TDIST")}
tbare=${TBARE:+$(abs "$TBARE")}
cd "$(dirname "$0")/../.."
tdist=${tdist:-$PWD/build/bin/tdist}
tbare=${tbare:-$PWD/build/bin/tbare}
limit=${BENCH_TIMEOUT:-60}
erl_dir=build/bench-erl
log=build/bench-dist.log
mkdir -p build
: >"$log"

note() { echo "dist.sh: $*" >&2; }

impls=()
for pair in "troupe:$tdist" "tcp:$tbare" "tcp-spin:$tbare"; do
    if [ -x "${pair#*:}" ]; then
        impls+=("${pair%%:*}")
    elif [ "${pair%%:*}" != tcp-spin ]; then
        note "no ${pair#*:} (make ${pair#*:})"
    fi
done
tls_dir=build/bench-tls
if [ -x "$tdist" ]; then
    if command -v openssl >/dev/null &&
        { [ -f "$tls_dir/node.pem" ] ||
            { sh test/tls_certs.sh "$tls_dir" >>"$log" 2>&1 &&
                cp "$tls_dir/a.pem" "$tls_dir/node.pem" &&
                cp "$tls_dir/a.key" "$tls_dir/node.key"; }; }; then
        impls+=(troupe-tls)
    else
        note "no certificates for TLS (needs openssl); skipping troupe-tls"
    fi
fi

# ---- Erlang: compile, and an epmd we stop again if we started it ---------

epmd_ours=0
if [ "$erlang" = 1 ]; then
    src=tools/bench/erl/tdist.erl
    if ! command -v erl >/dev/null || ! command -v erlc >/dev/null; then
        note "erl/erlc not found; skipping Erlang"
    elif ! { mkdir -p "$erl_dir" && { [ "$erl_dir/tdist.beam" -nt "$src" ] ||
        erlc -o "$erl_dir" "$src" 2>>"$log"; }; }; then
        note "erlc failed (see $log); skipping Erlang"
    else
        if ! epmd -names >/dev/null 2>&1; then
            epmd -daemon </dev/null >/dev/null 2>&1
            epmd_ours=1
        fi
        impls+=(erlang)
    fi
fi
cleanup() {
    [ "$epmd_ours" = 0 ] || epmd -kill >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The nodes listen on loopback only; the cookie is fresh for each script run.
cookie=tdist$RANDOM$RANDOM
erl_common=(-noshell -setcookie "$cookie"
    -kernel inet_dist_use_interface "{127,0,0,1}" -pa "$erl_dir")
[ "$threads" = 0 ] || erl_common+=(+S "$threads:$threads")
erl_seq=0

# Runs both Erlang nodes for one run; prints node A's output.
run_erlang() {
    local w=$1 ops=$2 b a bpid rc=0
    erl_seq=$((erl_seq + 1))
    b=tdistb$$x$erl_seq@127.0.0.1 a=tdista$$x$erl_seq@127.0.0.1
    erl "${erl_common[@]}" -name "$b" -run tdist peer \
        </dev/null >/dev/null 2>>"$log" &
    bpid=$!
    timeout -k 5 "$limit" erl "${erl_common[@]}" -name "$a" \
        -run tdist main "$w" "$ops" "$b" </dev/null 2>>"$log" || rc=$?
    # B halts when A goes; make sure of it if A never connected.
    kill "$bpid" 2>/dev/null || true
    wait "$bpid" 2>/dev/null || true
    return "$rc"
}

default_ops() {
    case $1:$2 in
    pingpong:tcp | pingpong:tcp-spin) echo 50000 ;;
    pingpong:*) echo 20000 ;;
    stream:troupe | stream:troupe-tls) echo 1000000 ;;
    stream:tcp) echo 50000000 ;;
    stream:erlang) echo 500000 ;;
    spawn:troupe | spawn:troupe-tls | spawn:erlang) echo 20000 ;;
    esac
}

# One run: prints "SECONDS MEAN_US MEDIAN_US P99_US" ("-" for the latency
# of a stream) or "fail".
run_one() {
    local impl=$1 w=$2 ops=$3 out rc=0
    echo "== $impl $w $threads $ops" >>"$log"
    case $impl in
    troupe)
        out=$(timeout -k 5 "$limit" "$tdist" "$w" "$threads" "$ops" \
            </dev/null 2>>"$log") || rc=$?
        ;;
    troupe-tls)
        out=$(timeout -k 5 "$limit" "$tdist" "$w" "$threads" "$ops" \
            -t "$tls_dir" </dev/null 2>>"$log") || rc=$?
        ;;
    tcp)
        out=$(timeout -k 5 "$limit" "$tbare" "$w" "$ops" \
            </dev/null 2>>"$log") || rc=$?
        ;;
    tcp-spin)
        out=$(timeout -k 5 "$limit" "$tbare" -s "$w" "$ops" \
            </dev/null 2>>"$log") || rc=$?
        ;;
    erlang) out=$(run_erlang "$w" "$ops") || rc=$? ;;
    esac
    out=$(printf '%s\n' "$out" | awk -v w="$w" '
        $1 == "RESULT" && $3 == w && NF == 8 { s = $6 }
        $1 == "LATENCY" && NF == 4 { l = $2 " " $3 " " $4 }
        END { if (s != "") print s, (l != "" ? l : "- - -") }')
    if [ "$rc" -ne 0 ] || [ -z "$out" ]; then
        echo "== $impl $w: exit status $rc" >>"$log"
        echo fail
    else
        echo "$out"
    fi
}

# Median of the numbers on stdin, one a line; "-" if there are none.
median() {
    sort -g | awk '$1 != "-" { v[++n] = $1 }
        END {
            if (n == 0) { print "-"; exit }
            m = int((n + 1) / 2)
            printf "%.6f\n", n % 2 ? v[m] : (v[m] + v[m + 1]) / 2
        }'
}

# OPS over SECONDS as a rate like 12.3M/s.
rate() {
    awk -v o="$1" -v s="$2" 'BEGIN {
        x = (s + 0 > 0) ? o / s : 0
        u = ""
        if (x >= 999.5e6) { x /= 1e9; u = "G" }
        else if (x >= 999.5e3) { x /= 1e6; u = "M" }
        else if (x >= 999.5) { x /= 1e3; u = "k" }
        f = (x >= 99.95) ? "%.0f%s/s\n" : (x >= 9.995) ? "%.1f%s/s\n" \
            : "%.2f%s/s\n"
        printf f, x, u
    }'
}

# A over B as "1.23x" ("0.0012x" below 0.01), or "-".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 <= 0) { print "-"; exit }
        r = a / b
        printf (r < 0.01 ? "%.4fx\n" : "%.2fx\n"), r
    }'
}

us() { [ "$1" = - ] && echo - || printf '%.1f' "$1"; }

declare -A ops med
# Whether implementation $1 runs workload $2: busy-polling only matters
# for a round trip, and bare TCP spawns nothing.
takes_part() {
    case $1:$2 in
    tcp-spin:pingpong) return 0 ;;
    tcp-spin:* | tcp:spawn) return 1 ;;
    esac
}

fmt='%-9s %-10s %9s %9s %10s %8s %9s %8s\n'
if [ "$threads" = 0 ]; then
    tdesc="the runtimes' default scheduler threads ($(nproc) online CPUs)"
else
    tdesc="$threads scheduler thread(s)"
fi
echo "distribution: two processes on 127.0.0.1, $tdesc per node," \
    "median of $runs runs"
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" workload impl ops seconds rate mean_us median_us p99_us
raw=""
for w in ${DIST_WORKLOADS:-pingpong stream spawn}; do
    declare -A samples=() state=()
    for impl in "${impls[@]}"; do
        state[$impl]=skip
        takes_part "$impl" "$w" || continue
        ops[$w:$impl]=$(($(default_ops "$w" "$impl") / div))
        state[$impl]=ok
    done
    for ((i = 1; i <= runs; i++)); do
        for impl in "${impls[@]}"; do
            [ "${state[$impl]}" = ok ] || continue
            [ ! -t 2 ] ||
                printf '%s run %d/%d: %s   \r' "$w" "$i" "$runs" "$impl" >&2
            r=$(run_one "$impl" "$w" "${ops[$w:$impl]}")
            if [ "$r" = fail ]; then
                state[$impl]=fail
            else
                samples[$impl]+="$r"$'\n'
            fi
        done
    done
    [ ! -t 2 ] || printf '%-40s\r' "" >&2
    for impl in "${impls[@]}"; do
        [ "${state[$impl]}" != skip ] || continue
        o=${ops[$w:$impl]}
        if [ "${state[$impl]}" != ok ]; then
            # shellcheck disable=SC2059
            printf "$fmt" "$w" "$impl" "$o" "a run failed (see $log)" "" "" \
                "" ""
            for k in s mean med p99; do med[$w:$impl:$k]=-; done
            continue
        fi
        col=1
        for k in s mean med p99; do
            med[$w:$impl:$k]=$(printf '%s' "${samples[$impl]}" |
                awk -v n="$col" '{ print $n }' | median)
            col=$((col + 1))
        done
        s=${med[$w:$impl:s]}
        # shellcheck disable=SC2059
        printf "$fmt" "$w" "$impl" "$o" "$(printf '%.4f' "$s")" \
            "$(rate "$o" "$s")" "$(us "${med[$w:$impl:mean]}")" \
            "$(us "${med[$w:$impl:med]}")" "$(us "${med[$w:$impl:p99]}")"
        raw+="DMEDIAN $w $impl $threads $o $s ${med[$w:$impl:mean]}"
        raw+=" ${med[$w:$impl:med]} ${med[$w:$impl:p99]}"$'\n'
    done
    unset samples state
done

# Rates of the median runs of workload $2 (default stream), for ratios.
stream_rate() {
    local w=${2:-stream}
    local s=${med[$w:$1:s]:--}
    [ "$s" != - ] || { echo -; return; }
    awk -v o="${ops[$w:$1]}" -v s="$s" 'BEGIN { print o / s }'
}

# "met" or "not met" for ratio $1 (like 1.23x) against at most $2, "" if
# there is no ratio.
verdict() {
    [ "$1" != - ] || return 0
    awk -v r="${1%x}" -v t="$2" \
        'BEGIN { print (r + 0 <= t + 0) ? "met" : "NOT met" }'
}

echo
echo "ratios (troupe over the other; targets on the median in brackets):"
for other in tcp-spin tcp erlang; do
    [ -n "${med[pingpong:$other:mean]:-}" ] || continue
    case $other in
    erlang) target=0.50 ;;
    *) target=1.20 ;;
    esac
    r=$(ratio "${med[pingpong:troupe:med]:--}" "${med[pingpong:$other:med]}")
    printf '  pingpong round trip, troupe/%-8s mean %s, median %s' "$other" \
        "$(ratio "${med[pingpong:troupe:mean]:--}" \
            "${med[pingpong:$other:mean]}")" "$r"
    printf '   [<= %sx: %s]\n' "$target" "$(verdict "$r" "$target")"
done
for other in erlang tcp; do
    [ -n "${med[stream:$other:s]:-}" ] || continue
    printf '  stream rate,         troupe/%-8s %s%s\n' "$other" \
        "$(ratio "$(stream_rate troupe)" "$(stream_rate "$other")")" \
        "$([ "$other" = erlang ] && echo '   [>= 10x]')"
done
if [ -n "${med[spawn:erlang:s]:-}" ]; then
    printf '  remote spawn rate,   troupe/%-8s %s\n' erlang \
        "$(ratio "$(stream_rate troupe spawn)" "$(stream_rate erlang spawn)")"
fi
if [ -n "${med[pingpong:troupe-tls:med]:-}" ] ||
    [ -n "${med[stream:troupe-tls:s]:-}" ]; then
    echo "TLS (troupe-tls over troupe):"
    [ -z "${med[pingpong:troupe-tls:med]:-}" ] ||
        printf '  pingpong round trip, median %s\n' \
            "$(ratio "${med[pingpong:troupe-tls:med]}" \
                "${med[pingpong:troupe:med]:--}")"
    [ -z "${med[stream:troupe-tls:s]:-}" ] ||
        printf '  stream rate,         %s\n' \
            "$(ratio "$(stream_rate troupe-tls)" "$(stream_rate troupe)")"
fi
echo
echo "# raw medians: DMEDIAN workload impl threads ops seconds mean_us" \
    "median_us p99_us"
printf '%s' "$raw"
