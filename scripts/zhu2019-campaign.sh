#!/usr/bin/env bash
# Zhu et al. (2019) Fig. 2 as a CPU campaign (docs/zhu2019-fashionmnist.md): `escape` processes,
# one per seed at a time and each pinned to one core, writing their units into
# ROOT/seed-N/<dynamic>/ (ROOT = results/zhu2019-fashionmnist). Re-running continues every
# unfinished unit from its latest checkpoint, bit for bit, and skips finished ones.
#
#   scripts/zhu2019-campaign.sh [--until STEP] [--every STEP] [--cores N] [--first-core K]
#                               [--bin PATH] [--out ROOT] SEED [SEED ...] [-- ESCAPE ARGS]
#
#   --until STEP    stop every unit at this step (default: the config's full length)
#   --every STEP    grow breadth first: every seed to STEP, then 2·STEP, …, then --until
#   --cores N       run N seeds at a time, on cores K … K+N-1 (default: every seed at once, or
#                   as many as there are usable cores)
#   --first-core K  the first core (default 0), counted among the cores this process may
#                   use; cores wrap around their count
#   --bin PATH      the noisescope binary (default: build the release binary)
#   --out ROOT      the campaign's folder (default: results/zhu2019-fashionmnist)
#   -- ESCAPE ARGS  passed on to every `escape` (e.g. -- --dynamics gd,sgd)
#
# e.g. scripts/zhu2019-campaign.sh --until 1000 0 1   (seeds 0 and 1 side by side, to step 1000)
#      scripts/zhu2019-campaign.sh --first-core 1 2   (seed 2 on core 1, beside a run on core 0)
#      scripts/zhu2019-campaign.sh --until 20000 --every 1000 --cores 2 0 1 2
#          (three seeds on two cores, round after round of 1000 steps: a free core takes the
#          lowest round of a seed not running, so the seeds grow together and a campaign
#          stopped at any moment already shows every seed)
#
# `touch ROOT/STOP` lets the running rounds finish and starts no new one (the script exits 0;
# remove the file and run the same command to go on). Stopping the script (Ctrl-C, kill) stops
# its processes too, and killing them at any moment is safe: each unit continues from its
# latest checkpoint (every 500 steps), and a round that reaches a step already passed returns
# at once. (A script started with `&` from another script ignores Ctrl-C: use kill.) A round
# that fails drops its seed's later rounds, the other seeds go on, and the script exits 1.
# Never run two of these scripts on the same seed at once: nothing locks a unit's folder.
#
# Each round is `taskset -c CORE noisescope --quiet --threads 1 --blas none --backend ndarray
# escape --config configs/zhu2019/fashionmnist-escape.toml --data-dir DATA --out ROOT/seed-N
# --set run.seed=N [--until STEP] [ESCAPE ARGS]`; those settings are refused after --.
#
# Each process runs on one core (taskset) with one thread: the host kernels split their sums
# over their threads, so the thread count is part of a trajectory's bits. One thread per
# process keeps a continuation on another machine identical to an uninterrupted run. For the
# same reason the matrix products stay in matrixmultiply (`--blas none`), the engine every unit
# started on, whether or not the machine has OpenBLAS (convyu's dense layers are small: it
# gains little). Needs Linux (taskset) and bash 5.1 or later.
set -euo pipefail
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
    echo "$0: needs bash 5.1 or later (this is $BASH_VERSION)" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
usage="usage: $0 [--until STEP] [--every STEP] [--cores N] [--first-core K] [--bin PATH] [--out ROOT] SEED [SEED ...] [-- ESCAPE ARGS]"
until_step=""
every=""
n_cores=""
bin=""
first_core=0
root="results/zhu2019-fashionmnist"
number() { # number NAME VALUE MIN: VALUE is a decimal whole number ≥ MIN, or the script stops
    if ! [[ "$2" =~ ^(0|[1-9][0-9]{0,17})$ ]] || (($2 < $3)); then
        echo "$0: $1 must be a whole number ≥ $3, not '$2'" >&2
        exit 2
    fi
}
absolute() { # a path given on the command line, from the caller's folder
    if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --until | --every | --cores | --first-core | --bin | --out)
            if [[ $# -lt 2 ]]; then
                echo "$0: $1 needs a value" >&2
                exit 2
            fi ;;&
        --until) number --until "$2" 1; until_step="$2"; shift 2 ;;
        --every) number --every "$2" 1; every="$2"; shift 2 ;;
        --cores) number --cores "$2" 1; n_cores="$2"; shift 2 ;;
        --first-core) number --first-core "$2" 0; first_core="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --out) root="$(absolute "$2")"; shift 2 ;;
        -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$here/$(basename "$0")"; exit 0 ;;
        -*) echo "$0: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
        *) break ;;
    esac
done
seeds=()
declare -A seen=()
while [[ $# -gt 0 && "$1" != -- ]]; do
    number SEED "$1" 0
    if [[ -n "${seen[$1]:-}" ]]; then
        echo "$0: seed $1 is given twice" >&2
        exit 2
    fi
    seen[$1]=1
    seeds+=("$1")
    shift
done
[[ $# -eq 0 ]] || shift
extra=("$@")
if [[ ${#seeds[@]} -eq 0 ]]; then
    echo "$usage" >&2
    exit 2
fi
# What the script sets itself, once per round: the same again after `--` would fail every
# round (clap refuses a repeated option) or worse (`--restart` would wipe the units each round).
for a in "${extra[@]}"; do
    case "$a" in
        --until | --until=* | --restart | --out | --out=* | --config | --config=* | --data-dir | \
            --data-dir=* | --threads | --threads=* | --blas | --blas=* | --backend | --backend=* | \
            run.seed=* | *" run.seed="*)
            echo "$0: '$a' may not follow --: the script sets it itself (see --help for each round's command), or, for --restart, every round would start the units over" >&2
            exit 2 ;;
    esac
done
if [[ -n "$every" && -z "$until_step" ]]; then
    echo "$0: --every needs --until (the last round's step)" >&2
    exit 2
fi
if [[ -n "$bin" && "$bin" == */* ]]; then
    bin="$(absolute "$bin")"
fi
data="${NOISESCOPE_DATA:-$(cd "$here/../../shared/datasets" 2>/dev/null && pwd || true)}"
if [[ -z "$data" ]]; then
    echo "$0: set NOISESCOPE_DATA to the folder holding fashion-mnist (../shared/datasets)" >&2
    exit 2
fi
data="$(absolute "$data")"
# The cores this process may use (a cpuset or an outer taskset may leave out some).
allowed=()
IFS=, read -ra ranges <<<"$(taskset -cp $$ | sed 's/.*: *//')"
for r in "${ranges[@]}"; do
    lo=${r%-*}
    hi=${r#*-}
    for ((c = lo; c <= hi; c++)); do
        allowed+=("$c")
    done
done
if [[ -n "$n_cores" ]] && ((n_cores > ${#allowed[@]})); then
    echo "$0: --cores $n_cores, but this process may use ${#allowed[@]} cores (${allowed[*]})" >&2
    exit 2
fi
cd "$here/.."
if [[ -z "$bin" ]]; then
    # The release build: a unit runs days, and the dev build (our crates' overflow checks,
    # opt-level 1 outside the kernel crates) ran `hessian-20` up to 20% slower
    # (docs/performance.md, attempt 13).
    # Both builds give the same bits. Building burn a second time takes about 20 minutes once.
    cargo build --quiet --release
    bin="$(absolute "${CARGO_TARGET_DIR:-target}/release/noisescope")"
fi

# The queue, round by round, each round seed by seed: "until seed" pairs. Started rounds are
# unset; the loops walk the remaining indices in order.
rounds=()
if [[ -n "$every" ]]; then
    for ((u = every; u < until_step; u += every)); do
        rounds+=("$u")
    done
fi
rounds+=("${until_step:--}")
queue=()
for u in "${rounds[@]}"; do
    for seed in "${seeds[@]}"; do
        queue+=("$u $seed")
    done
done

# By default every seed at once, but never two processes on one core.
slots=${n_cores:-$((${#seeds[@]} < ${#allowed[@]} ? ${#seeds[@]} : ${#allowed[@]}))}
free=()
for ((i = 0; i < slots; i++)); do
    free+=("${allowed[$(((first_core + i) % ${#allowed[@]}))]}")
done
declare -A running_seed=() running_core=() running_until=() busy=()
stop_all() { # the running processes go with the script; they continue from their checkpoints
    kill "${!running_seed[@]}" 2>/dev/null || true
    wait "${!running_seed[@]}" 2>/dev/null || true
    exit "$1"
}
trap 'stop_all 130' INT
trap 'stop_all 143' TERM
status=0
mkdir -p "$root"
while true; do
    # Start rounds while a core is free: the first queued round of a seed not running.
    while ((${#free[@]} > 0)) && [[ ! -e "$root/STOP" ]]; do
        pick=-1
        for i in "${!queue[@]}"; do
            read -r u seed <<<"${queue[$i]}"
            if [[ -z "${busy[$seed]:-}" ]]; then
                pick=$i
                break
            fi
        done
        ((pick >= 0)) || break
        unset "queue[$pick]"
        core=${free[0]}
        free=("${free[@]:1}")
        out="$root/seed-$seed"
        mkdir -p "$out"
        until_arg=()
        [[ "$u" == - ]] || until_arg=(--until "$u")
        echo "$(date +%H:%M:%S) seed $seed on core $core to step ${u/-/the end} → $out (log: $out/campaign.log)"
        taskset -c "$core" "$bin" --quiet --threads 1 --blas none --backend ndarray escape \
            --config configs/zhu2019/fashionmnist-escape.toml --data-dir "$data" --out "$out" \
            --set "run.seed=$seed" "${until_arg[@]}" "${extra[@]}" >>"$out/campaign.log" 2>&1 &
        running_seed[$!]=$seed
        running_core[$!]=$core
        running_until[$!]=$u
        busy[$seed]=1
    done
    ((${#running_seed[@]} > 0)) || break
    pid=""
    rc=0
    wait -n -p pid "${!running_seed[@]}" || rc=$?
    seed=${running_seed[$pid]}
    u=${running_until[$pid]}
    free+=("${running_core[$pid]}")
    unset "running_seed[$pid]" "running_core[$pid]" "running_until[$pid]" "busy[$seed]"
    if ((rc != 0)); then
        # Its later rounds would meet the same fault: drop them, and say where to look.
        echo "$(date +%H:%M:%S) seed $seed failed on its way to step ${u/-/the end} (exit $rc); its later rounds are dropped: see $root/seed-$seed/campaign.log" >&2
        status=1
        for i in "${!queue[@]}"; do
            [[ "${queue[$i]#* }" != "$seed" ]] || unset "queue[$i]"
        done
    else
        echo "$(date +%H:%M:%S) seed $seed reached step ${u/-/the end}"
    fi
done
if ((${#queue[@]} > 0)); then
    echo "$root/STOP exists: ${#queue[@]} rounds not started (remove it and run the same command to go on)"
fi
exit $status
