# SPDX-License-Identifier: MIT
# bash completion for actorctl: commands, options, node names (the sockets
# in the directories actorctl searches), and for info, trace and kill the
# actors of the chosen node (registered names and pids) and for groups its
# process groups, asked of the node itself.
# Install as /usr/share/bash-completion/completions/actorctl, or source it.

_actorctl_nodes()
{
    local dir f dirs
    if [[ -n $TROUPE_RUNTIME_DIR ]]; then
        dirs=("$TROUPE_RUNTIME_DIR")
    else
        dirs=(${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/troupe"} \
            "/tmp/troupe-$UID" /run/troupe)
    fi
    for dir in "${dirs[@]}"; do
        for f in "$dir"/*.sock; do
            [[ -S $f ]] || continue
            f=${f##*/}
            printf '%s\n' "${f%.sock}"
        done
    done
}

# The actors of the node chosen by the options in "$@": each registered
# name and each pid, without angle brackets (which the shell would take
# for redirections).
_actorctl_actors()
{
    actorctl "$@" --timeout 1 ps --json 2>/dev/null |
        sed -n 's/^{"pid":"<\([0-9.]*\)>".*"name":"\([^"]*\)".*/\1 \2/p' |
        tr ' ' '\n' | sed '/^$/d'
}

# The process groups of the node chosen by the options in "$@".
_actorctl_groups()
{
    actorctl "$@" --timeout 1 groups --json 2>/dev/null |
        sed -n 's/^{"name":"\([^"]*\)".*/\1/p'
}

_actorctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmd="" nargs=0 i w
    local -a target=()
    local global="-n --node -s --socket -t --timeout --color --json -h --help
        -V --version"
    local common="--node --socket --timeout --color --help"
    local commands="tree ps top info trace kill upgrade stats nodes groups"

    # Find the command, the node options and how many arguments follow.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -n)
            # After ps, top and trace, -n is a count.
            if [[ -z $cmd || ! $cmd =~ ^(ps|top|trace)$ ]]; then
                target+=(-n "${COMP_WORDS[i + 1]}")
            fi
            ((i++))
            ;;
        --node | -s | --socket)
            target+=("$w" "${COMP_WORDS[i + 1]}")
            ((i++))
            ;;
        -t | --timeout | --color | --colour | --sort | -d | --count | \
            --seconds | --rate) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=$w
            else
                ((nargs++))
            fi
            ;;
        esac
    done

    case $prev in
    --node)
        mapfile -t COMPREPLY < <(compgen -W "$(_actorctl_nodes)" -- "$cur")
        return
        ;;
    -n)
        if [[ ! $cmd =~ ^(ps|top|trace)$ ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$(_actorctl_nodes)" -- "$cur")
        fi
        return
        ;;
    -s | --socket)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --color | --colour)
        mapfile -t COMPREPLY < <(compgen -W "auto always never" -- "$cur")
        return
        ;;
    --sort)
        mapfile -t COMPREPLY < <(compgen -W "mailbox msgs cpu wait restarts age pid" \
            -- "$cur")
        return
        ;;
    -t | --timeout | -d | --count | --seconds | --rate) return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$global" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands help" -- "$cur")
        fi
        return
    fi

    local opts words=""
    case $cmd in
    tree) opts="--describe --json --dot" ;;
    ps) opts="--sort -n --count --json" ;;
    top) opts="-d --delay -n --count" ;;
    info) opts="--json" ;;
    trace)
        opts="--received --sent --signals --life --state -n --count --seconds
            --rate --json"
        ;;
    kill | upgrade) opts="--json" ;;
    stats | nodes | groups) opts="--json" ;;
    help)
        ((nargs == 0)) && words=$commands
        opts=""
        ;;
    esac
    if [[ $cur == -* ]]; then
        [[ $cmd == help ]] || opts="$opts $common"
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        return
    fi
    case $cmd in
    info | trace) ((nargs == 0)) && words=$(_actorctl_actors "${target[@]}") ;;
    groups) ((nargs == 0)) && words=$(_actorctl_groups "${target[@]}") ;;
    kill)
        if ((nargs == 0)); then
            words=$(_actorctl_actors "${target[@]}")
        elif ((nargs == 1)); then
            words="kill shutdown normal"
        fi
        ;;
    upgrade)
        if ((nargs == 1)); then # the module: a file
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
        fi
        ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}

complete -F _actorctl actorctl
