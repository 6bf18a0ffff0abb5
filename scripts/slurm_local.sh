#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for CI and for trying deepobs-tune --executor slurm.
#
#   scripts/slurm_local.sh start    install slurm + munge if missing (Debian packages, needs root),
#                                   write a minimal slurm.conf, start munged, slurmctld and slurmd,
#                                   wait until sinfo shows the node idle
#   scripts/slurm_local.sh stop     cancel this cluster's jobs, stop the daemons this script started
#   scripts/slurm_local.sh status   the daemons and sinfo
#
# Idempotent: `start` on a running cluster only checks it; `stop` on a stopped one does nothing.
# It never overwrites a slurm.conf it did not write, and stops only the daemons it started.
# No cgroup plugins (a container cannot use them): proctrack/linuxproc, task/none.
# Environment: SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 90),
# SLURM_LOCAL_PARTITION (default "local").
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# Written by deepobs scripts/slurm_local.sh"
RUN_DIR=/run/deepobs-slurm            # what this script started (one file per daemon)
SLURM_RUN=/run/slurm
LOG_DIR=/var/log/slurm
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-90}
PARTITION=${SLURM_LOCAL_PARTITION:-local}
NODE=$(hostname -s)

say() { echo "slurm_local.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run with sudo)"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
            && command -v munged >/dev/null; then
        return
    fi
    need_root "installing slurm and munge"
    command -v apt-get >/dev/null || die "slurm is not installed and this is no Debian/Ubuntu (no apt-get); install slurmctld, slurmd, slurm-client and munge"
    say "installing slurm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get could not install slurm (packages slurmctld slurmd slurm-client munge, or slurm-wlm)"
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it (move it away to use this script)"
    fi
    local cpus memory
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # (nproc obeys OMP_NUM_THREADS)
    # 90 % of the memory, so that slurmd never finds less than the configuration claims.
    memory=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
    mkdir -p "$(dirname "$CONF")"
    local text
    text=$(cat <<EOF
$MARKER: one node, this machine ($cpus CPUs, $memory MB).
ClusterName=deepobs
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it starts again (default 120).
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
# No cgroups: containers cannot use them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
# Finished jobs stay visible to squeue/scontrol for a minute only.
MinJobAge=60
# A job may be requeued (preemption, scontrol requeue); SIGTERM gives it KillWait seconds to
# write its checkpoint before SIGKILL.
JobRequeue=1
KillWait=10
ReturnToService=2
SchedulerType=sched/backfill
# Schedule often (a requeued job would otherwise wait for the next pass, up to a minute).
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
    if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$text" ]; then
        return
    fi
    printf '%s\n' "$text" > "$CONF"
    say "wrote $CONF ($cpus CPUs, $memory MB, partition $PARTITION)"
}

# pid of a daemon this script started, if it is alive
started_pid() {
    local file=$RUN_DIR/$1.pid pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
        return 0
    fi
    rm -f "$file"
    return 1
}

# Start daemon $1 with command $2... unless it runs; its own pid file is $PIDFILE.
start_daemon() {
    local name=$1 pidfile=$2
    shift 2
    if started_pid "$name" >/dev/null; then
        return
    fi
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        return  # running, started by someone else: leave it alone
    fi
    rm -f "$pidfile"
    "$@"
    local waited=0
    until [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; do
        sleep 0.2
        waited=$((waited + 1))
        [ $waited -lt 100 ] || die "$name did not start (see its log in $LOG_DIR or /var/log/munge)"
    done
    cp "$pidfile" "$RUN_DIR/$name.pid"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating the munge key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge
    chown munge:munge /run/munge
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged answers already
    fi
    start_daemon munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
}

our_config() {
    [ -f "$CONF" ] && grep -qF "$MARKER" "$CONF"
}

node_state() {
    sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1
}

wait_for_idle() {
    local started=$SECONDS state=""
    while true; do
        state=$(node_state || true)
        case "$state" in
            idle|mix|alloc) return 0 ;;
            drain*|down*|inval*|drng*|fail*)
                # a node drained by an earlier run of the daemons (e.g. killed jobs)
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        if [ $((SECONDS - started)) -ge "$TIMEOUT" ]; then
            die "node $NODE not idle after ${TIMEOUT} s (sinfo state: '${state:-no answer}'); see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
        fi
        sleep 0.5
    done
}

start() {
    local begin=$SECONDS
    if command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1 && { ! our_config \
            || { started_pid slurmctld >/dev/null && started_pid slurmd >/dev/null; }; }; then
        if ! our_config; then
            say "a SLURM controller answers already (not started by this script): using it"
            return 0
        fi
    else
        install_packages
        need_root "starting slurm"
        mkdir -p "$RUN_DIR" "$SLURM_RUN" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
        write_config
        start_munge
        start_daemon slurmctld "$SLURM_RUN/slurmctld.pid" slurmctld
        start_daemon slurmd "$SLURM_RUN/slurmd.pid" slurmd
    fi
    wait_for_idle
    say "node $NODE is $(node_state) (partition $PARTITION) after $((SECONDS - begin)) s"
}

stop_daemon() {
    local name=$1 pid
    pid=$(started_pid "$name") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$name.pid"
    say "stopped $name (pid $pid)"
}

stop() {
    if started_pid slurmctld >/dev/null; then
        scancel --user="$(id -un)" >/dev/null 2>&1 || true  # this cluster's jobs
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

status() {
    local name pid
    for name in munged slurmctld slurmd; do
        if pid=$(started_pid "$name"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not started by this script"
        fi
    done
    if command -v sinfo >/dev/null && sinfo >/dev/null 2>&1; then
        sinfo
    else
        echo "sinfo: no controller answers"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
