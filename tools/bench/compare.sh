#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the benchmark workloads on troupe, Erlang/OTP and CAF and prints one
# row per workload with each runtime's median rate and troupe's ratios.
#
#   tools/bench/compare.sh [-r RUNS] [-t THREADS] [-q] [-s]
#
# RUNS defaults to 5, THREADS to 2; -q divides the operation counts by 10.
# -s (scaling) runs each workload at 1 thread and at THREADS, interleaved,
# and prints each runtime's two rates and the second over the first (above
# 1: the extra threads help); its WORKLOADS default to big, spawn and
# fanin64.
# WORKLOADS="pingpong ring" restricts the set. TBENCH names the troupe
# program (default build/bin/tbench), BENCH_TIMEOUT the per-run limit in
# seconds (default 120).
#
# The Erlang module is compiled into build/bench-erl and run as
#   erl -noshell +S T:T [+P N] -pa build/bench-erl -run tbench main W OPS
# (+P only for spawn and idle, which need more processes than the default
# limit); the CAF program is built as build/bench-caf/tbench-caf (CXX,
# CAF_CXXFLAGS and CAF_LIBS override the compiler and flags). A runtime
# whose toolchain is missing is left out. All three print
#   RESULT RUNTIME WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB BYTES_PER_ACTOR
#
# Runs are interleaved (troupe, erlang, caf, troupe, ...) so that noise on the
# machine hits all runtimes alike. A cell shows "fail" when a run exited
# non-zero, timed out or printed no RESULT line (the runtime's remaining runs
# of that workload are skipped), and "-" when the runtime is missing or its
# program skips the workload (exit 0, no RESULT line). Stderr of all runs goes
# to build/bench-compare.log.
#
# Rates are operations per second of the median run; ratios are troupe's
# rate over the other's, so above 1 means troupe is faster. For idle the
# cells are bytes per actor and the ratio is the other's bytes over
# troupe's, so above 1 still favours troupe. A block of raw medians for
# scripts follows the table.
set -euo pipefail

usage() {
    echo "usage: compare.sh [-r RUNS] [-t THREADS] [-q] [-s]" >&2
    exit 2
}

runs=5 threads=2 div=1 scaling=0
while getopts r:t:qsh opt; do
    case $opt in
    r) runs=$OPTARG ;;
    t) threads=$OPTARG ;;
    q) div=10 ;;
    s) scaling=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $runs =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ ]] || usage

# TBENCH is taken relative to the caller's directory; everything else is
# relative to the repository root.
tbench=${TBENCH:-}
if [ -n "$tbench" ] && [[ $tbench != /* ]]; then
    tbench=$PWD/$tbench
fi
cd "$(dirname "$0")/../.."
tbench=${tbench:-$PWD/build/bin/tbench}
limit=${BENCH_TIMEOUT:-120}
cxx=${CXX:-g++}
erl_dir=build/bench-erl
caf_bin=build/bench-caf/tbench-caf
log=build/bench-compare.log
mkdir -p build
: >"$log"

note() { echo "compare.sh: $*" >&2; }

# ---- the runtimes that can take part ----------------------------------------

runtimes=()
if [ -x "$tbench" ]; then
    runtimes+=(troupe)
else
    note "no troupe program at $tbench (make build/bin/tbench); skipping troupe"
fi

if command -v erl >/dev/null && command -v erlc >/dev/null; then
    src=tools/bench/erl/tbench.erl
    mkdir -p "$erl_dir"
    if [ "$erl_dir/tbench.beam" -nt "$src" ] ||
        erlc -o "$erl_dir" "$src" 2>>"$log"; then
        runtimes+=(erlang)
    else
        note "erlc failed (see $log); skipping Erlang"
    fi
else
    note "erl/erlc not found; skipping Erlang"
fi

# shellcheck disable=SC2086 # the flag variables are word lists
if echo '#include <caf/all.hpp>' |
    $cxx -std=c++17 ${CAF_CXXFLAGS:-} -E -x c++ - >/dev/null 2>&1; then
    src=tools/bench/caf/tbench.cpp
    mkdir -p "$(dirname "$caf_bin")"
    if [ "$caf_bin" -nt "$src" ] ||
        { note "building $caf_bin"
          $cxx -O2 -std=c++17 ${CAF_CXXFLAGS:-} -o "$caf_bin" "$src" \
              ${CAF_LIBS:--lcaf_core} -pthread 2>>"$log"; }; then
        runtimes+=(caf)
    else
        note "building the CAF program failed (see $log); skipping CAF"
    fi
else
    note "CAF headers (caf/all.hpp) not found; skipping CAF"
fi

# ---- running ---------------------------------------------------------------

default_ops() {
    case $1 in
    pingpong | spawn | idle) echo 1000000 ;;
    big) echo 4000000 ;;
    restart) echo 100000 ;;
    storm) echo 10000 ;;
    *) echo 10000000 ;;
    esac
}

# One run: prints "SECONDS PEAK_RSS_KB BYTES_PER_ACTOR", "fail" or "skip".
# A fourth argument overrides the thread count.
run_one() {
    local rt=$1 w=$2 ops=$3 threads=${4:-$threads} out rc=0 procs
    local -a cmd
    case $rt in
    troupe) cmd=("$tbench" "$w" "$threads" "$ops") ;;
    erlang)
        cmd=(erl -noshell +S "$threads:$threads")
        if [ "$w" = spawn ] || [ "$w" = idle ]; then
            procs=$((ops + 100000))
            [ "$procs" -ge 262144 ] || procs=262144
            cmd+=(+P "$procs")
        fi
        cmd+=(-pa "$erl_dir" -run tbench main "$w" "$ops")
        ;;
    caf)
        # The CAF program has no supervisor workloads.
        case $w in restart | storm) echo skip; return ;; esac
        cmd=("$caf_bin" "$w" "$threads" "$ops")
        ;;
    esac
    echo "== $rt $w $threads $ops" >>"$log"
    out=$(timeout -k 5 "$limit" "${cmd[@]}" 2>>"$log") || rc=$?
    out=$(printf '%s\n' "$out" | awk -v rt="$rt" -v w="$w" \
        '$1 == "RESULT" && $2 == rt && $3 == w && NF == 8 \
         { print $6, $7, $8; exit }')
    if [ "$rc" -ne 0 ]; then
        echo "== $rt $w: exit status $rc" >>"$log"
        echo fail
    elif [ -n "$out" ]; then
        echo "$out"
    else
        echo skip
    fi
}

# Field N of each line of TEXT.
column() { printf '%s' "$2" | awk -v n="$1" '{ print $n }'; }

# Median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) exit
            m = int((NR + 1) / 2)
            printf "%.6f\n", NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2
        }'
}

# OPS over SECONDS as a rate like 12.3M: three significant digits, a suffix.
# (Parenthesised ">" in awk's print: a bare one would redirect to a file.)
rate() {
    awk -v o="$1" -v s="$2" 'BEGIN {
        x = (s + 0 > 0) ? o / s : 0
        u = ""
        if (x >= 999.5e6) { x /= 1e9; u = "G" }
        else if (x >= 999.5e3) { x /= 1e6; u = "M" }
        else if (x >= 999.5) { x /= 1e3; u = "k" }
        f = (x >= 99.95) ? "%.0f%s\n" : (x >= 9.995) ? "%.1f%s\n" : "%.2f%s\n"
        printf f, x, u
    }'
}

# A over B as "1.23x", or "-" when B is not positive.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b + 0 > 0) printf "%.2fx\n", a / b; else print "-"
    }'
}

declare -A state med_s med_rss med_bytes
all_runtimes=(troupe erlang caf)

# -s: each workload at 1 thread and at THREADS, runs interleaved.
if [ "$scaling" = 1 ]; then
    sfmt='%-9s %9s %-7s %9s %9s %9s\n'
    # shellcheck disable=SC2059 # the format is ours
    printf "$sfmt" workload ops runtime "1 thread" "$threads thr" "ratio"
    for w in ${WORKLOADS:-big spawn fanin64}; do
        ops=$(($(default_ops "$w") / div))
        declare -A one=() more=() bad=()
        for ((i = 1; i <= runs; i++)); do
            for rt in "${runtimes[@]}"; do
                [ -z "${bad[$rt]:-}" ] || continue
                for t in 1 "$threads"; do
                    [ ! -t 2 ] || printf '%s run %d/%d: %s %s   \r' \
                        "$w" "$i" "$runs" "$rt" "$t" >&2
                    r=$(run_one "$rt" "$w" "$ops" "$t")
                    case $r in
                    fail | skip) bad[$rt]=$r ;;
                    *) if [ "$t" = 1 ]; then one[$rt]+="$r"$'\n'
                       else more[$rt]+="$r"$'\n'; fi ;;
                    esac
                done
            done
        done
        [ ! -t 2 ] || printf '%-40s\r' "" >&2
        for rt in "${all_runtimes[@]}"; do
            if [ -n "${bad[$rt]:-}" ] || [ -z "${one[$rt]:-}" ]; then
                # shellcheck disable=SC2059 # the format is ours
                printf "$sfmt" "$w" "$ops" "$rt" - - "${bad[$rt]:--}"
                continue
            fi
            s1=$(column 1 "${one[$rt]}" | median)
            sn=$(column 1 "${more[$rt]}" | median)
            # shellcheck disable=SC2059 # the format is ours
            printf "$sfmt" "$w" "$ops" "$rt" "$(rate "$ops" "$s1")" \
                "$(rate "$ops" "$sn")" "$(ratio "$s1" "$sn")"
        done
        unset one more bad
    done
    echo
    echo "rates in operations/s, medians of $runs; ratio = rate at $threads" \
        "threads over rate at 1 (below 1: the extra threads slow it down)"
    exit 0
fi

workloads=${WORKLOADS:-pingpong counting fanin8 fanin64 ring big spawn idle \
    restart storm}

fmt='%-9s %7s %9s %9s %9s %9s %10s %10s\n'
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" workload threads ops troupe erlang caf troupe/erl troupe/caf
raw=""
for w in $workloads; do
    ops=$(($(default_ops "$w") / div))
    declare -A samples=()
    for rt in "${all_runtimes[@]}"; do
        state[$rt]=-
        samples[$rt]=""
    done
    for rt in "${runtimes[@]}"; do state[$rt]=ok; done
    for ((i = 1; i <= runs; i++)); do
        for rt in "${runtimes[@]}"; do
            [ "${state[$rt]}" = ok ] || continue
            [ ! -t 2 ] ||
                printf '%s run %d/%d: %s   \r' "$w" "$i" "$runs" "$rt" >&2
            r=$(run_one "$rt" "$w" "$ops")
            case $r in
            fail) state[$rt]=fail ;;
            skip) state[$rt]=- ;;
            *) samples[$rt]+="$r"$'\n' ;;
            esac
        done
    done
    [ ! -t 2 ] || printf '%-40s\r' "" >&2
    cells=()
    for rt in "${all_runtimes[@]}"; do
        if [ "${state[$rt]}" != ok ]; then
            med_s[$rt]=${state[$rt]} med_rss[$rt]=${state[$rt]}
            med_bytes[$rt]=${state[$rt]}
            cells+=("${state[$rt]}")
            raw+="MEDIAN $w $rt $threads $ops ${state[$rt]} - -"$'\n'
            continue
        fi
        med_s[$rt]=$(column 1 "${samples[$rt]}" | median)
        med_rss[$rt]=$(column 2 "${samples[$rt]}" | median)
        med_bytes[$rt]=$(column 3 "${samples[$rt]}" | median)
        if [ "$w" = idle ]; then
            cells+=("$(printf '%.0fB' "${med_bytes[$rt]}")")
        else
            cells+=("$(rate "$ops" "${med_s[$rt]}")")
        fi
        raw+="MEDIAN $w $rt $threads $ops ${med_s[$rt]} ${med_rss[$rt]%.*}"
        raw+=" ${med_bytes[$rt]%.*}"$'\n'
    done
    # Ratios: other's seconds over troupe's (= troupe's rate over the
    # other's); for idle, other's bytes over troupe's.
    ratios=()
    for rt in erlang caf; do
        if [ "${state[troupe]}" != ok ] || [ "${state[$rt]}" != ok ]; then
            ratios+=(-)
        elif [ "$w" = idle ]; then
            ratios+=("$(ratio "${med_bytes[$rt]}" "${med_bytes[troupe]}")")
        else
            ratios+=("$(ratio "${med_s[$rt]}" "${med_s[troupe]}")")
        fi
    done
    # shellcheck disable=SC2059 # the format is ours
    printf "$fmt" "$w" "$threads" "$ops" "${cells[@]}" "${ratios[@]}"
    unset samples
done

echo
echo "rates in operations/s (idle: bytes per actor); ratio > 1 favours troupe"
echo
echo "# raw medians: MEDIAN workload runtime threads ops seconds" \
    "peak_rss_kb bytes_per_actor"
printf '%s' "$raw"
