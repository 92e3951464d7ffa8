#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for `extract --dask slurm:N` tests (tests/test_slurm.py).
#
#   bash tests/slurm/one_node_slurm.sh start   # installs slurmctld, slurmd, munge (apt-get, as root) if missing,
#                                              # starts munged, slurmctld, slurmd; prints SLURM_CONF=... last
#   bash tests/slurm/one_node_slurm.sh stop    # cancels every job, stops the daemons, removes the folder
#
# Everything it makes lives in one folder ($SAMCACHE_SLURM_DIR, default /tmp/samcache-one-node-slurm):
# slurm.conf, its own munge key and socket, state, spool, logs and pid files. Nothing in /etc, /run or
# /var is written (the system's munged, if any, is left alone), the ports are its own (16817/16818 or the next
# free ones), and commands find this cluster through SLURM_CONF. Both commands are idempotent.
# Exit status 3: no cluster can be had here (not root, no apt-get, packages unavailable); the test skips.
set -euo pipefail

DIR=${SAMCACHE_SLURM_DIR:-/tmp/samcache-one-node-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "one_node_slurm: $*" >&2; }
unavailable() { echo "SKIP: $*"; exit 3; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sbatch sinfo squeue scancel munged; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || unavailable "SLURM is not installed (${missing[*]} missing) and there is no apt-get"
    say "installing ${PACKAGES[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"${TMPDIR:-/tmp}/one_node_slurm_apt.log" 2>&1; then
        apt-get update -q >/dev/null 2>&1 || true
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"${TMPDIR:-/tmp}/one_node_slurm_apt.log" 2>&1 ||
            unavailable "apt-get install ${PACKAGES[*]} failed: $(tail -n 1 "${TMPDIR:-/tmp}/one_node_slurm_apt.log")"
    fi
}

# slurmd runs slurmstepd from the path it was compiled with; Debian's alternatives normally put it there.
check_slurmstepd() {
    local found
    found=$(command -v slurmstepd-wlm || command -v slurmstepd || ls /usr/lib/*/slurm-wlm/slurmstepd 2>/dev/null | head -n 1 || true)
    [[ -n $found ]] || { say "no slurmstepd binary found"; exit 1; }
    for wanted in /usr/sbin/slurmstepd /usr/sbin/slurmstepd-wlm; do
        if [[ ! -e $wanted ]] && grep -qa "$wanted" "$(command -v slurmd)"; then
            ln -s "$(readlink -f "$found")" "$wanted"
            echo "$wanted" >>"$DIR/made-links"
            say "linked $wanted -> $found"
        fi
    done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
    local ctld=16817 memory topology
    while ! port_free "$ctld" || ! port_free $((ctld + 1)); do ctld=$((ctld + 2)); done
    memory=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
    (( memory >= 512 )) || memory=512
    # the node as slurmd sees it (CPUs alone would make slurmctld count one core); memory less a margin
    topology=$(slurmd -C | head -n 1 | grep -o 'CPUs=.*ThreadsPerCore=[0-9]*')
    cat >"$CONF" <<EOF
# written by tests/slurm/one_node_slurm.sh; removed by its 'stop'
ClusterName=samcachetest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld
SlurmdPort=$((ctld + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MailProg=/bin/true
NodeName=$NODE NodeAddr=127.0.0.1 $topology RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1; }

start() {
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && alive "$DIR/munged.pid" && [[ $(node_state) == idle* || $(node_state) == mix* || $(node_state) == alloc* ]]; then
        say "already running"
        echo "SLURM_CONF=$CONF"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || unavailable "a one-node SLURM cluster needs root (slurmd starts jobs as their user)"
    install_packages
    [[ -e $DIR ]] && stop  # a half-started or stale cluster: begin again from nothing
    mkdir -p "$DIR/state" "$DIR/spool"
    chmod 755 "$DIR"  # munged wants its socket's folder searchable by all
    check_slurmstepd
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$DIR/munge.key"
    else
        dd if=/dev/urandom of="$DIR/munge.key" bs=1 count=1024 status=none
    fi
    chmod 0400 "$DIR/munge.key"
    munged --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
    write_conf
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 120); do
        [[ $(node_state) == idle* ]] && { say "node $NODE idle"; echo "SLURM_CONF=$CONF"; return 0; }
        sleep 0.5
    done
    say "the node did not become idle within 60 s (state: $(node_state || true)); logs:"
    tail -n 20 "$DIR"/*.log >&2 || true
    stop
    exit 1
}

# Stops a daemon by its pid file: TERM, then KILL after 10 s.
stop_daemon() {
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# Every slurmstepd this cluster's slurmd started, and their jobs' processes (same session).
stepd_sessions() {
    local pid
    for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF" && ps -o sid= -p "$pid"
    done | sort -u
}

stop() {
    [[ -d $DIR ]] || { say "not running"; return 0; }
    if alive "$DIR/slurmctld.pid"; then
        scancel --full --partition=debug 2>/dev/null || true
        for _ in $(seq 50); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 0.2; done
    fi
    stop_daemon "$DIR/slurmd.pid"
    stop_daemon "$DIR/slurmctld.pid"
    local sid
    for sid in $(stepd_sessions); do pkill -KILL -s "$sid" 2>/dev/null || true; done
    stop_daemon "$DIR/munged.pid"
    if [[ -f $DIR/made-links ]]; then
        while read -r link; do rm -f "$link"; done <"$DIR/made-links"
    fi
    rm -rf "$DIR"
    say "stopped"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
