#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks the layering rules lib/README.md states, from the sources' quoted
# #include lines: a behaviour folder (supervisors/, lib/behaviours/)
# includes only <troupe.h> and its own headers, and each runtime
# subsystem under lib/ includes only its own headers and those of the
# subsystems below it.
#
#   sh test/layout.sh [BUILD_DIR]      (the argument is ignored)
set -eu
cd "$(dirname "$0")/.."

# The subsystems each one may include, besides itself.
allowed() {
    case "$1" in
    core) echo "" ;;
    signals) echo "core" ;;
    io) echo "core" ;;
    dist) echo "core io signals" ;;
    observe) echo "core io signals dist" ;;
    cluster) echo "core io signals dist" ;;
    *) echo "?" ;;
    esac
}

# The one exception: lib/core/system.c is the composition root. Creating
# and destroying a system creates and stops every subsystem in order
# (timers, the I/O thread, the node, the control socket, metrics, the stall
# watch), and it fills the table of hooks (tp__up_ops) through which the
# rest of the core reaches signals, io and observe. Calling each of those
# through hooks too would only move the same list of names into another
# table; keeping it in one named file keeps every other core file honest.
# The distribution layer installs its own hooks (lib/dist/hooks.c) when a
# node starts.
root=lib/core/system.c

bad=0
for f in lib/*/*.[ch]; do
    sub=$(echo "$f" | cut -d/ -f2)
    [ "$sub" = behaviours ] && continue # a behaviour folder: below
    ok="$sub $(allowed "$sub")"
    [ "$f" = "$root" ] && ok="core signals io dist observe cluster"
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        dir=${inc%%/*}
        [ "$dir" = "$inc" ] && dir=$sub # a header beside the file
        case " $ok " in
        *" $dir "*) ;;
        *) echo "layout: $f includes \"$inc\": $sub may not call $dir"
           bad=1 ;;
        esac
    done
done
for d in supervisors lib/behaviours; do
    for f in "$d"/*.[ch]; do
        for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
            case "$inc" in
            */*|..*) echo "layout: $f includes \"$inc\": $d/ sees only" \
                "<troupe.h> and its own headers"; bad=1 ;;
            *) [ -f "$d/$inc" ] || { echo "layout: $f includes \"$inc\"," \
                "which is not in $d/"; bad=1; } ;;
            esac
        done
    done
done
[ "$bad" -eq 0 ] && echo "layout: the include rules hold"
exit "$bad"
