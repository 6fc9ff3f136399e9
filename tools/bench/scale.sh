#!/bin/sh
# SPDX-License-Identifier: MIT
# How the scheduler scales: runs the core workloads at 1, 2, 4, 8 and 16
# scheduler threads (RUNS times each, the median run kept) and prints, per
# workload and thread count, the rate and the speed-up over one thread.
#
#   tools/bench/scale.sh [TBENCH] [-r RUNS] [-t "1 2 4 8 16"] [-q]
#
# WORKLOADS="big fanin64" restricts the set; -q divides the operation
# counts by 10. Thread counts above the machine's cores still run (they
# show what oversubscription costs) and are marked with a '*'.
set -eu

bin=build/bin/tbench
case "${1:-}" in -*|"") ;; *) bin=$1; shift ;; esac
runs=3 threads="1 2 4 8 16" div=1
while [ $# -gt 0 ]; do
    case "$1" in
    -r) runs=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -q) div=10; shift ;;
    *) echo "usage: scale.sh [TBENCH] [-r RUNS] [-t THREADS] [-q]" >&2
       exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "scale.sh: $bin not built (make $bin)" >&2; exit 1; }
cores=$(nproc 2>/dev/null || echo 1)

ops_for() {
    case "$1" in
    pingpong) echo 1000000 ;;
    big) echo 4000000 ;;
    spawn) echo 1000000 ;;
    *) echo 10000000 ;;
    esac
}

# The median of RUNS runs' seconds, or FAIL.
median_seconds() {
    i=0
    while [ "$i" -lt "$runs" ]; do
        timeout 300 "$bin" "$1" "$2" "$3" | awk '/^RESULT/ {print $6}' ||
            echo FAIL
        i=$((i + 1))
    done | sort -g | awk -v n="$runs" '
        /FAIL/ {bad = 1}
        NR == int((n + 1) / 2) {m = $1}
        END {print (bad || m == "") ? "FAIL" : m}'
}

echo "cores: $cores, runs per point: $runs (median kept)"
printf '%-9s %8s %12s %12s %9s\n' workload threads ops rate speed-up
for w in ${WORKLOADS:-big fanin64 fanin8 counting ring spawn pingpong}; do
    ops=$(( $(ops_for "$w") / div ))
    base=
    for t in $threads; do
        s=$(median_seconds "$w" "$t" "$ops")
        mark=" "; [ "$t" -gt "$cores" ] && mark="*"
        if [ "$s" = FAIL ]; then
            printf '%-9s %7s%s %12s %12s\n' "$w" "$t" "$mark" "$ops" "a run failed"
            continue
        fi
        [ -z "$base" ] && base=$s
        awk -v w="$w" -v t="$t" -v m="$mark" -v ops="$ops" -v s="$s" \
            -v b="$base" 'BEGIN {
            rate = ops / s
            if (rate >= 1e6) r = sprintf("%.2fM/s", rate / 1e6)
            else r = sprintf("%.0fk/s", rate / 1e3)
            printf "%-9s %7s%s %12s %12s %8.2fx\n", w, t, m, ops, r, b / s
        }'
    done
done
