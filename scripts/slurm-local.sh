#!/usr/bin/env bash
# One-node Slurm cluster on localhost, for integration tests and CI (Debian 12, run as root).
#
#   eval "$(scripts/slurm-local.sh start STATE_DIR)"   # prints one line: export SLURM_CONF=STATE_DIR/slurm.conf
#   sbatch/squeue/scontrol/scancel ...                 # clients need SLURM_CONF in their environment
#   scripts/slurm-local.sh stop STATE_DIR
#
# start: reuses a munged that answers (else starts one as user munge), writes STATE_DIR/slurm.conf,
#   starts slurmctld and slurmd on it (fresh state: no old jobs, job ids from 1), waits (<= 30 s)
#   for the node to be idle and writes the pids it started (munged only if it started it), one a
#   line, to STATE_DIR/pids. Config, state, spool, logs and pid files live in STATE_DIR; munge
#   keeps its system paths (/etc/munge/munge.key, /run/munge), which libmunge clients use.
# stop: cancels this cluster's jobs (their slurmstepd would outlive slurmd), then TERMs exactly
#   the pids in STATE_DIR/pids (KILL after 5 s); a pid that is gone or reused is left alone.
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (not installed here).
# One cluster per host at a time: slurmctld and slurmd listen on the fixed ports 6817/6818.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin   # the daemons live in sbin, which a non-login root PATH may lack

die() { echo "slurm-local: $*" >&2; exit 1; }
failed() { echo "slurm-local: $1; last lines of $2:" >&2; tail -n 20 "$2" >&2 || true; exit 1; }
case "$#:${1:-}" in 2:start|2:stop) ;; *) die "usage: $0 start|stop STATE_DIR" ;; esac
cmd=$1
if [ "$cmd" = stop ] && [ ! -d "$2" ]; then exit 0; fi
mkdir -p "$2"
dir=$(cd "$2" && pwd)
conf=$dir/slurm.conf

alive() { # alive PID [NAME]: PID runs a process named NAME (default: any of our daemons)
  local stat comm st  # zombies count as dead: some container inits reap them late
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  comm=${stat#*(}; comm=${comm%%)*}; st=${stat##*) }; st=${st%% *}
  [ "$st" != Z ] && [ "$st" != X ] || return 1
  case $comm in "${2:-munged}"|"${2:-slurmctld}"|"${2:-slurmd}") return 0 ;; *) return 1 ;; esac
}

stop() {
  local jobs pid p left=() still=()
  pid=$(cat "$dir/slurmctld.pid" 2>/dev/null || true)
  if alive "$pid" slurmctld && grep -qx "$pid" "$dir/pids" 2>/dev/null; then
    export SLURM_CONF=$conf
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    # shellcheck disable=SC2086 # one word per job id
    if [ -n "$jobs" ]; then scancel $jobs 2>/dev/null || true; fi
    for _ in $(seq 100); do   # a job that ignores SIGTERM is killed and gone within ~5 s
      if [ -z "$(squeue -h -o %A 2>/dev/null || true)" ]; then break; fi; sleep 0.1
    done
  fi
  while read -r pid; do
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && kill -TERM "$pid" 2>/dev/null; then left+=("$pid"); fi
  done < <(cat "$dir/pids" 2>/dev/null || true)
  for _ in $(seq 50); do
    still=()
    for p in "${left[@]+"${left[@]}"}"; do if alive "$p"; then still+=("$p"); fi; done
    [ ${#still[@]} -eq 0 ] && { rm -f "$dir/pids"; return 0; }
    sleep 0.1
  done
  kill -KILL "${still[@]}" 2>/dev/null || true
  sleep 0.5
  for p in "${still[@]}"; do if alive "$p"; then die "pid $p survived SIGKILL"; fi; done
  rm -f "$dir/pids"
}

record() { # record PIDFILE NAME LOG: append the pid to STATE_DIR/pids once PIDFILE names a live NAME
  local pid
  for _ in $(seq 100); do
    pid=$(cat "$1" 2>/dev/null || true)
    if alive "$pid" "$2"; then echo "$pid" >>"$dir/pids"; return 0; fi
    sleep 0.1
  done
  failed "$2 did not start" "$3"
}

ok=0
start() {
  local b pid
  for b in munged:munge munge:munge unmunge:munge slurmctld:slurmctld slurmd:slurmd \
           sinfo:slurm-client squeue:slurm-client scancel:slurm-client runuser:util-linux; do
    command -v "${b%:*}" >/dev/null || die "${b%:*} not found: install the Debian package ${b#*:}"
  done
  if alive "$(cat "$dir/slurmctld.pid" 2>/dev/null)" slurmctld; then
    die "a slurmctld (pid $(cat "$dir/slurmctld.pid")) is already running with state dir $dir"
  fi
  for pid in $(pgrep -x slurmctld || true) $(pgrep -x slurmd || true); do
    if alive "$pid"; then die "a $(cat "/proc/$pid/comm") (pid $pid) is running already: stop it first"; fi
  done
  [ "$(id -u)" = 0 ] || die "must run as root (munge key, SlurmUser=root)"

  rm -f "$dir/pids"; : >"$dir/pids"
  trap '[ "$ok" = 1 ] || stop' EXIT   # failed start: stop what it started
  # munge: reuse a daemon that already answers; otherwise start one as the munge user.
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -e /etc/munge/munge.key ]; then
      mkdir -p /etc/munge
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge{,/munge.key} /run/munge /var/lib/munge /var/log/munge
    chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --force   # --force: take over a stale socket left by a killed munged
    record /run/munge/munged.pid munged /var/log/munge/munged.log
    munge -n </dev/null | unmunge >/dev/null || die "munged started but does not answer"
  fi

  local host mem state=""
  host=$(hostname -s)
  mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  rm -rf "$dir/state" "$dir/spool" "$dir/slurmctld.pid" "$dir/slurmd.pid"
  mkdir -p "$dir/state" "$dir/spool"
  cat >"$conf" <<EOF
# Written by scripts/slurm-local.sh; the cluster lives in $dir.
ClusterName=noisescope
# The host name resolves through 127.0.0.1 explicitly: no DNS needed.
SlurmctldHost=$host(127.0.0.1)
# slurmctld runs as root: no slurm user, no file ownership to fix (jobs run as their submitter).
SlurmUser=root
AuthType=auth/munge
# No cgroups (containers often have none): plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# slurmctld acts on submit/completion events once a second; backfill (which starts most array
# tasks here) every bf_interval s, default 30: with 1, a free CPU gets its next task within ~1 s.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
# Array tasks count as jobs: room for big arrays.
MaxArraySize=100001
MaxJobCount=200000
# Finished jobs stay visible to "scontrol show job" for 10 min (there is no accounting).
MinJobAge=600
# No mail on this host; silences "Configured MailProg is invalid".
MailProg=/bin/true
# scancel: SIGKILL 2 s after SIGTERM (default 30 s).
KillWait=2
# A node that went DOWN (e.g. slurmd restarted) returns to service when it registers again.
ReturnToService=2
SlurmdTimeout=30
# No accounting database, no job completion log.
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# Memory 10% below the machine's: slurmd refuses a node configured with more than it has.
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$conf
  # Both daemonize (stdio detached, so a caller reading our stdout is not held) and write pid files.
  # -i: ignore unreadable state files (there are none after the rm above).
  slurmctld -i -f "$conf" </dev/null >>"$dir/slurmctld.log" 2>&1 || failed "slurmctld failed" "$dir/slurmctld.log"
  record "$dir/slurmctld.pid" slurmctld "$dir/slurmctld.log"
  slurmd -f "$conf" </dev/null >>"$dir/slurmd.log" 2>&1 || failed "slurmd failed" "$dir/slurmd.log"
  record "$dir/slurmd.pid" slurmd "$dir/slurmd.log"
  for _ in $(seq 300); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    if [ "$state" = idle ]; then ok=1; printf 'export SLURM_CONF=%q\n' "$conf"; return 0; fi
    case $state in inval*|drain*|fail*) break ;; esac   # the node was refused: no use waiting
    sleep 0.1
  done
  echo "slurm-local: node $host not idle (state: '${state:-none}'); logs:" >&2
  tail -n 15 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
}

if [ "$cmd" = start ]; then start; else stop; fi
