#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs troupe's benchmark workloads several times each and prints one row
# per workload with the median run: workload, threads, operations, seconds,
# rate, ns/op, peak RSS (and bytes per actor for `idle`).
#
#   tools/bench/run.sh [TBENCH] [-r RUNS] [-t THREADS] [-q]
#
# RUNS defaults to 5, THREADS to 2; -q divides the operation counts by 10.
# WORKLOADS="pingpong ring" restricts the set.
#
# Then what measuring costs: pingpong and counting with tp_config.cpu_time
# off, on with one message in 65536 timed (the run-time clock alone), and
# on as actord runs it (run time, and one message in 64 timed for its
# wait), runs interleaved: the medians and what each adds to the first.
# MEASURE=0 leaves this out.
set -eu

bin=build/bin/tbench
case "${1:-}" in -*|"") ;; *) bin=$1; shift ;; esac
runs=5 threads=2 div=1
while [ $# -gt 0 ]; do
    case "$1" in
    -r) runs=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -q) div=10; shift ;;
    *) echo "usage: run.sh [TBENCH] [-r RUNS] [-t THREADS] [-q]" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "run.sh: $bin not built (make $bin)" >&2; exit 1; }

ops_for() {
    case "$1" in
    pingpong) echo 1000000 ;;
    big) echo 4000000 ;;
    spawn|idle) echo 1000000 ;;
    restart) echo 100000 ;;
    storm) echo 10000 ;;
    *) echo 10000000 ;;
    esac
}

printf '%-9s %7s %10s %9s %12s %8s %10s %s\n' workload threads ops seconds \
    rate ns/op peak_rss bytes/actor
for w in ${WORKLOADS:-pingpong counting fanin8 fanin64 ring big spawn idle \
        restart storm}; do
    ops=$(( $(ops_for "$w") / div ))
    out=$(i=0; while [ "$i" -lt "$runs" ]; do
        timeout 300 "$bin" "$w" "$threads" "$ops" || echo "FAIL"
        i=$((i + 1))
    done)
    if echo "$out" | grep -q FAIL; then
        printf '%-9s %7s %10s %s\n' "$w" "$threads" "$ops" "a run failed"
        continue
    fi
    # Median by seconds (bytes per actor for idle, where time is not the point).
    col=6; [ "$w" = idle ] && col=8
    echo "$out" | grep '^RESULT' | sort -g -k$col | awk -v n="$runs" '
        NR == int((n + 1) / 2) {
            rate = $5 / $6
            if (rate >= 1e6) unit = sprintf("%.2fM/s", rate / 1e6)
            else unit = sprintf("%.0fk/s", rate / 1e3)
            printf "%-9s %7s %10s %9.4f %12s %8.1f %8.1fMB %s\n", $3, $4, $5,
                $6, unit, $6 * 1e9 / $5, $7 / 1024, ($3 == "idle" ? $8 : "-")
        }'
    # Restart latency: the medians over the runs of each run's median and
    # 99th percentile.
    if [ "$w" = restart ]; then
        med=$(echo "$out" | awk '/^LATENCY/ {print $2}' | sort -g |
            awk -v n="$runs" 'NR == int((n + 1) / 2)')
        p99=$(echo "$out" | awk '/^LATENCY/ {print $3}' | sort -g |
            awk -v n="$runs" 'NR == int((n + 1) / 2)')
        printf '%-9s crash to replacement handling its first message: median %s us, p99 %s us\n' \
            "" "$med" "$p99"
    fi
done

[ "${MEASURE:-1}" = 0 ] && exit 0
echo
printf '%-9s %10s %10s %10s %8s %8s\n' measured "off ns/op" "clock" "waits" \
    "+clock" "+waits"
for w in pingpong counting; do
    ops=$(( $(ops_for "$w") / div ))
    off="" clock="" waits=""
    i=0
    while [ "$i" -lt "$runs" ]; do
        off="$off $(timeout 300 "$bin" "$w" "$threads" "$ops" |
            awk '/^RESULT/ {print $6}')"
        clock="$clock $(TBENCH_MEASURE=1 TBENCH_WAIT_SAMPLE=65536 \
            timeout 300 "$bin" "$w" "$threads" "$ops" |
            awk '/^RESULT/ {print $6}')"
        waits="$waits $(TBENCH_MEASURE=1 timeout 300 "$bin" "$w" "$threads" \
            "$ops" | awk '/^RESULT/ {print $6}')"
        i=$((i + 1))
    done
    med() { echo "$1" | tr ' ' '\n' | grep . | sort -g |
        awk -v n="$runs" 'NR == int((n + 1) / 2)'; }
    a=$(med "$off") b=$(med "$clock") c=$(med "$waits")
    if [ -z "$a" ] || [ -z "$b" ] || [ -z "$c" ]; then
        printf '%-9s %s\n' "$w" "a run failed"
        continue
    fi
    awk -v w="$w" -v a="$a" -v b="$b" -v c="$c" -v ops="$ops" 'BEGIN {
        printf "%-9s %10.1f %10.1f %10.1f %7.1f%% %7.1f%%\n", w, a * 1e9 / ops,
            b * 1e9 / ops, c * 1e9 / ops, (b - a) * 100 / a, (c - b) * 100 / a }'
done
