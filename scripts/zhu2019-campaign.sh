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
#   --cores N       run N seeds at a time (default: all of them), on cores K … K+N-1
#   --first-core K  the first core (default 0); cores wrap around the machine's count
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
# `touch ROOT/STOP` lets the running rounds finish and starts no new one (remove it to go on).
# Killing the script and its processes at any moment is safe too: each unit continues from its
# latest checkpoint (every 500 steps), and a round that reaches a step already passed returns
# at once.
#
# Each process runs on one core (taskset): the host kernels split their sums over the cores
# they see, so the thread count is part of a trajectory's bits. One core per process keeps a
# continuation on another machine identical to an uninterrupted run. For the same reason the
# matrix products stay in matrixmultiply (`--blas none`), the engine every unit started on,
# whether or not the machine has OpenBLAS (convyu's dense layers are small: it gains little).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: $0 [--until STEP] [--every STEP] [--cores N] [--first-core K] [--bin PATH] [--out ROOT] SEED [SEED ...] [-- ESCAPE ARGS]"
until_step=""
every=""
n_cores=""
bin=""
first_core=0
root="results/zhu2019-fashionmnist"
number() { # number NAME VALUE MIN: VALUE is an integer ≥ MIN, or the script stops naming NAME
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < $3)); then
        echo "$0: $1 must be a whole number ≥ $3, not '$2'" >&2
        exit 2
    fi
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
        --out) root="$2"; shift 2 ;;
        -h | --help) sed -n 2,34p "$0"; exit 0 ;;
        -*) echo "$0: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
        *) break ;;
    esac
done
seeds=()
while [[ $# -gt 0 && "$1" != -- ]]; do
    number SEED "$1" 0
    seeds+=("$1")
    shift
done
[[ $# -eq 0 ]] || shift
extra=("$@")
if [[ ${#seeds[@]} -eq 0 ]]; then
    echo "$usage" >&2
    exit 2
fi
if [[ -n "$every" && -z "$until_step" ]]; then
    echo "$0: --every needs --until (the last round's step)" >&2
    exit 2
fi
if [[ -z "$bin" ]]; then
    # The release build: a unit runs days, and the dev build (our crates' overflow checks,
    # opt-level 1 outside the kernel crates) ran `hessian-20` up to 20% slower
    # (docs/performance.md, attempt 13).
    # Both builds give the same bits. Building burn a second time takes about 20 minutes once.
    cargo build --quiet --release
    bin="${CARGO_TARGET_DIR:-target}/release/noisescope"
fi
data="${NOISESCOPE_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd || true)}"
if [[ -z "$data" ]]; then
    echo "$0: set NOISESCOPE_DATA to the folder holding fashion-mnist (../shared/datasets)" >&2
    exit 2
fi

# The queue, round by round, each round seed by seed: "until seed" pairs.
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

machine_cores=$(nproc)
slots=${n_cores:-${#seeds[@]}}
free=()
for ((i = 0; i < slots; i++)); do
    free+=($(((first_core + i) % machine_cores)))
done
declare -A running_seed=() running_core=() running_until=() busy=()
# Background processes of a script ignore Ctrl-C: stop them with the script (they continue from
# their checkpoints when the command is run again).
trap 'kill "${!running_seed[@]}" 2>/dev/null; exit 130' INT TERM
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
        queue=("${queue[@]}")
        core=${free[0]}
        free=("${free[@]:1}")
        out="$root/seed-$seed"
        mkdir -p "$out"
        until_arg=()
        [[ "$u" == - ]] || until_arg=(--until "$u")
        echo "$(date +%H:%M:%S) seed $seed on core $core to step ${u/-/the end} → $out (log: $out/campaign.log)"
        taskset -c "$core" "$bin" --quiet --blas none escape --config configs/zhu2019/fashionmnist-escape.toml \
            --data-dir "$data" --out "$out" --set "run.seed=$seed" "${until_arg[@]}" "${extra[@]}" \
            >>"$out/campaign.log" 2>&1 &
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
        kept=()
        for entry in "${queue[@]}"; do
            [[ "${entry#* }" == "$seed" ]] || kept+=("$entry")
        done
        queue=("${kept[@]}")
    else
        echo "$(date +%H:%M:%S) seed $seed reached step ${u/-/the end}"
    fi
done
if ((${#queue[@]} > 0)); then
    echo "$root/STOP exists: ${#queue[@]} rounds not started (remove it and run the same command to go on)"
fi
exit $status
