#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the integration tests (run as root by scripts/test.sh).
#
# Follows shared/notes/slurm-on-this-machine.md: Debian's slurmctld/slurmd/munge, no systemd, the
# daemons run as root (jobs run as root too, so any path on this machine, such as a project's
# .venv/bin/python, works inside a job).
#
# A Slurm that already runs here and has a node that takes jobs is left alone, whoever set it up:
# the script only checks it and exits (well under 2 s).  GRAINLIKE_SLURM_RECONFIGURE=1 makes it
# write its own configuration and restart the daemons all the same.  An existing slurm.conf is
# copied to slurm.conf.bak-<time> before it is replaced.  scripts/test.sh skips this script when
# GRAINLIKE_NO_SLURM=1.
set -euo pipefail

WAIT_SECONDS=${GRAINLIKE_SLURM_WAIT:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

die() {
    echo "setup-slurm: $*" >&2
    exit 1
}
say() { echo "setup-slurm: $*" >&2; }
# die_with_logs MESSAGE LOG...: the last lines of each log, then the message (CI shows them).
die_with_logs() {
    local message=$1 log
    shift
    for log in "$@"; do
        if [ -s "$log" ]; then
            echo "setup-slurm: the last lines of $log:" >&2
            tail -n 25 "$log" | sed 's/^/    /' >&2
        fi
    done
    die "$message"
}

[ "$(id -u)" = 0 ] || die "must run as root (the daemons and the test jobs run as root)"

# --- packages ---------------------------------------------------------------------------------
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # Without systemd, package scripts would try to start the daemons before they are configured;
    # a temporary policy-rc.d stops that (an existing one, as in containers, is left alone).
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp /tmp/setup-slurm-apt.XXXXXX)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        die "could not install ${missing[*]} with apt-get (full log: $apt_log)"
    fi
    rm -f "$apt_log"
    if [ -n "$made_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi
getent passwd munge >/dev/null || die "the munge package did not create the user 'munge'"

# --- a Slurm that runs already is not ours to change --------------------------------------------
if [ "${GRAINLIKE_SLURM_RECONFIGURE:-}" != 1 ] && states=$(timeout 15 sinfo -h -o %T 2>/dev/null) &&
    [ -n "$states" ]; then
    for state in $states; do
        case "$state" in
        idle | mixed | allocated | completing)
            say "a Slurm runs here already, with a node $state: leaving it as it is" \
                "(GRAINLIKE_SLURM_RECONFIGURE=1 rewrites $CONF and restarts it)"
            exit 0
            ;;
        esac
    done
    die "a Slurm runs here already but no node takes jobs (states: $(echo $states));" \
        "not touching it: fix it, or rerun with GRAINLIKE_SLURM_RECONFIGURE=1"
fi

# --- munge --------------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged ||
        die_with_logs "munged did not start" /var/log/munge/munged.log
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munge -n | unmunge fails after starting munged"
fi

# --- slurm.conf for this host -------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc --all)
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# Leave the system some headroom so that slurmd never finds less memory than configured.
headroom=$((mem_mb / 20 > 512 ? mem_mb / 20 : 512))
real_mb=$((mem_mb - headroom))
[ "$real_mb" -gt 0 ] || die "too little memory for a node: MemTotal is ${mem_mb} MB"

wanted=$(
    cat <<EOF
# Written by grainlike's scripts/setup-slurm.sh: a one-node Slurm for the integration tests.
ClusterName=grainlike
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
TaskPlugin=task/affinity
ProctrackType=proctrack/linuxproc
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=120
InactiveLimit=0
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=1-00:00:00 State=UP
EOF
)

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
changed=""
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$wanted" ]; then
    if [ -f "$CONF" ]; then
        backup=$CONF.bak-$(date +%Y%m%d-%H%M%S)
        cp -p "$CONF" "$backup"
        say "kept the previous configuration as $backup"
    fi
    printf '%s\n' "$wanted" >"$CONF.new"
    chmod 0644 "$CONF.new"
    mv "$CONF.new" "$CONF"
    changed=1
    say "wrote $CONF (node $host, $cpus CPUs, ${real_mb} MB)"
fi

# --- daemons ------------------------------------------------------------------------------------
running() { # running PIDFILE NAME: the daemon named in the pid file is alive
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

stop() { # stop PIDFILE NAME: end the daemon this script started earlier, by its pid
    local pid
    running "$1" "$2" || return 0
    pid=$(cat "$1")
    say "stopping $2 (pid $pid) to apply the new configuration"
    kill "$pid"
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    die "$2 (pid $pid) did not stop within 10 s"
}

if [ -n "$changed" ]; then
    # A changed node or TaskPlugin only takes effect after a restart of both daemons.
    stop "$SLURMD_PID" slurmd
    stop "$CTLD_PID" slurmctld
fi
if ! running "$CTLD_PID" slurmctld; then
    say "starting slurmctld"
    slurmctld || die_with_logs "slurmctld did not start" "$LOG_DIR/slurmctld.log"
fi
if ! running "$SLURMD_PID" slurmd; then
    say "starting slurmd"
    slurmd || die_with_logs "slurmd did not start" "$LOG_DIR/slurmd.log"
fi

# --- wait for the node --------------------------------------------------------------------------
node_state() { sinfo -h -n "$host" -o %T 2>/dev/null | head -n1; }
deadline=$((SECONDS + WAIT_SECONDS))
resumed=""
while :; do
    state=$(node_state || true)
    case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain*)
        # After a restart the controller may remember the node as down; it is healthy now.
        if [ -z "$resumed" ] && running "$SLURMD_PID" slurmd; then
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        die_with_logs "node $host is '${state:-not listed}' after ${WAIT_SECONDS} s, not idle" \
            "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"
    fi
    sleep 0.5
done
say "node $host is $state (${cpus} CPUs, ${real_mb} MB, partition debug)"
