#!/usr/bin/env bash
# A one-node Slurm for development and CI: scripts/slurm-dev.sh up|down|status
#
#   up      install slurm-wlm + munge when missing (scripts/deps/slurm.sh), write a one-node
#           slurm.conf, start munged, slurmctld and slurmd (as root) and wait until `sinfo`
#           shows the node idle. Idempotent: daemons already running with the same
#           configuration are left alone; a changed configuration restarts them.
#   down    stop slurmd, slurmctld and munged by the PIDs in their pid files.
#   status  say which daemons run and what `sinfo` reports; exit 0 only when the node is
#           usable (idle, mixed or allocated).
#
# Settings (environment):
#   FLOW_SLURM_DEV_CPUS   CPUs the node advertises (default 12). More than the machine has
#                         (SlurmdParameters=config_overrides) so trivial test tasks run many
#                         at once; Slurm does not check.
#   FLOW_SLURM_DEV_MEM_PER_CPU   DefMemPerCPU in MB (default 500). Without it every job gets
#                         the whole node's memory and jobs run one at a time.
#   FLOW_SLURM_DEV_CGROUPS  1 (default where the cgroup v1 memory controller is mounted):
#                         proctrack/cgroup + task/cgroup with ConstrainRAMSpace, so a job
#                         over its --mem ends OUT_OF_MEMORY as on real clusters; 0: plain
#                         process tracking, no memory enforcement.
#   FLOW_SLURM_DEV_MIN_JOB_AGE   seconds scontrol remembers a finished job (default 30, real
#                         clusters often keep 300): short, so tests also see jobs that only
#                         sacct and the jobcomp file still know.
#   FLOW_SLURM_DEV_ACCOUNTING    1 (default): run slurmdbd on a local MariaDB so `sacct`
#                         answers as on real clusters (with per-step MaxRSS/TotalCPU from
#                         jobacct_gather/linux, sampled every second, and association/QOS
#                         limits enforced: AccountingStorageEnforce=limits,qos); 0: no
#                         accounting (final states come from scontrol and the jobcomp file
#                         only, usage from the tasks' own rusage).
#
# Tested on Debian 12 with slurm-wlm 22.05 (see shared/notes/slurm.md). Needs root.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
log_dir=/var/log/slurm
ctld_spool=/var/spool/slurmctld
slurmd_spool=/var/spool/slurmd
ctld_pid=/run/slurmctld.pid
slurmd_pid=/run/slurmd.pid
munge_pid=/run/munge/munged.pid
jobcomp=$log_dir/jobcomp.log
dbd_conf=$conf_dir/slurmdbd.conf
dbd_pid=/run/slurmdbd.pid
mariadb_pid=/run/mysqld/mysqld.pid
cpus=${FLOW_SLURM_DEV_CPUS:-12}
accounting=${FLOW_SLURM_DEV_ACCOUNTING:-1}
min_job_age=${FLOW_SLURM_DEV_MIN_JOB_AGE:-30}
cgroup_conf=$conf_dir/cgroup.conf
if [ -d /sys/fs/cgroup/memory ]; then
    cgroups=${FLOW_SLURM_DEV_CGROUPS:-1}
else
    cgroups=${FLOW_SLURM_DEV_CGROUPS:-0}
fi
mem_per_cpu=${FLOW_SLURM_DEV_MEM_PER_CPU:-500}

die() {
    echo "slurm-dev: $*" >&2
    exit 1
}

say() {
    echo "slurm-dev: $*"
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (starts munged, slurmctld and slurmd)"
}

# The PID in a pid file when that process is alive, nothing otherwise.
live_pid() {
    local file=$1 pid
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# Stop the process named in a pid file; SIGKILL after 10 s.
stop_pidfile() {
    local name=$1 file=$2 pid i
    if ! pid=$(live_pid "$file"); then
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$file"
    say "stopped $name (pid $pid)"
}

# Memory the node advertises: a bit under what `slurmd -C` measures (90 %).
node_memory_mb() {
    local measured
    measured=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
    [ -n "$measured" ] || die "slurmd -C did not report RealMemory"
    echo $((measured * 9 / 10))
}

process_tracking_lines() {
    if [ "$cgroups" = 1 ]; then
        echo "ProctrackType=proctrack/cgroup"
        echo "TaskPlugin=task/cgroup"
    else
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
    fi
}

# cgroup v1 memory enforcement only: the node advertises more CPUs than it has, so cores
# are not constrained.
render_cgroup_conf() {
    cat <<CONF
# Written by flow's scripts/slurm-dev.sh. Do not edit.
CgroupPlugin=cgroup/v1
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainCores=no
ConstrainDevices=no
CONF
}

accounting_lines() {
    if [ "$accounting" = 1 ]; then
        echo "AccountingStorageType=accounting_storage/slurmdbd"
        echo "AccountingStorageHost=localhost"
        # Limits as on real clusters (jobs need an association; QOS MaxSubmitJobsPerUser and
        # the like refuse at sbatch). root's association comes with the cluster.
        echo "AccountingStorageEnforce=limits,qos"
        # MaxRSS/TotalCPU of every step in sacct; sampled each second so short test tasks
        # show their peak.
        echo "JobAcctGatherType=jobacct_gather/linux"
        echo "JobAcctGatherFrequency=task=1"
    else
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobAcctGatherType=jobacct_gather/none"
    fi
}

render_dbd_conf() {
    cat <<CONF
# Written by flow's scripts/slurm-dev.sh. Do not edit.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=flowdev
StorageLoc=slurm_acct_db
PidFile=$dbd_pid
LogFile=$log_dir/slurmdbd.log
CONF
}

# MariaDB for slurmdbd; its stdio is detached or it holds the caller's pipes open.
start_mariadb() {
    if live_pid "$mariadb_pid" >/dev/null; then
        return 0
    fi
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql </dev/null >/dev/null 2>&1 ||
            die "mariadb-install-db failed"
    fi
    setsid /usr/sbin/mariadbd --user=mysql --pid-file="$mariadb_pid" \
        --socket=/run/mysqld/mysqld.sock --skip-networking=0 --bind-address=127.0.0.1 \
        </dev/null >>"$log_dir/mariadb.log" 2>&1 &
    local i
    for i in $(seq 1 100); do
        mariadb -e 'SELECT 1' </dev/null >/dev/null 2>&1 && break
        sleep 0.1
    done
    mariadb -e 'SELECT 1' </dev/null >/dev/null 2>&1 || die "MariaDB did not start; see $log_dir/mariadb.log"
    mariadb </dev/null -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'flowdev';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" ||
        die "cannot create the slurm database user"
    say "started mariadb (pid $(live_pid "$mariadb_pid" || echo '?'))"
}

start_slurmdbd() {
    local rendered
    rendered=$(render_dbd_conf)
    if [ ! -f "$dbd_conf" ] || [ "$(cat "$dbd_conf")" != "$rendered" ]; then
        (umask 077 && printf '%s\n' "$rendered" >"$dbd_conf.tmp")
        mv "$dbd_conf.tmp" "$dbd_conf"
        stop_pidfile slurmdbd "$dbd_pid"
    fi
    chmod 600 "$dbd_conf"
    if ! live_pid "$dbd_pid" >/dev/null; then
        slurmdbd </dev/null
        local i
        for i in $(seq 1 100); do
            sacctmgr --noheader --parsable2 list cluster >/dev/null 2>&1 && break
            sleep 0.1
        done
        say "started slurmdbd (pid $(live_pid "$dbd_pid" || echo '?'))"
    fi
    sacctmgr --noheader --parsable2 list cluster >/dev/null 2>&1 ||
        die "slurmdbd does not answer; see $log_dir/slurmdbd.log"
    if ! sacctmgr --noheader --parsable2 list cluster format=cluster | grep -qx flowdev; then
        sacctmgr --immediate add cluster flowdev >/dev/null || die "cannot register cluster flowdev"
    fi
    # AccountingStorageEnforce=limits refuses jobs without an association: root's (account
    # root) is made with the cluster; make sure it exists.
    if ! sacctmgr --noheader --parsable2 list association cluster=flowdev user=root format=user |
        grep -qx root; then
        sacctmgr --immediate add user root account=root cluster=flowdev >/dev/null ||
            die "cannot add the association of root on cluster flowdev"
    fi
}

render_conf() {
    local mem
    mem=$(node_memory_mb)
    [ $((cpus * mem_per_cpu)) -le "$mem" ] ||
        die "FLOW_SLURM_DEV_CPUS ($cpus) x FLOW_SLURM_DEV_MEM_PER_CPU ($mem_per_cpu) exceeds node memory ($mem MB)"
    cat <<CONF
# Written by flow's scripts/slurm-dev.sh: a one-node development cluster. Do not edit.
ClusterName=flowdev
SlurmctldHost=localhost
AuthType=auth/munge
$(process_tracking_lines)
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$mem_per_cpu
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SlurmdParameters=config_overrides
ReturnToService=2
SlurmUser=root
StateSaveLocation=$ctld_spool
SlurmdSpoolDir=$slurmd_spool
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$jobcomp
$(accounting_lines)
MinJobAge=$min_job_age
MaxArraySize=1001
MaxJobCount=20000
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if live_pid "$munge_pid" >/dev/null; then
        return 0
    fi
    [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (reinstall munge)"
    mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
    chown munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    su -s /bin/sh munge -c /usr/sbin/munged
    local i
    for i in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null 2>&1 || die "munged started but munge -n | unmunge fails"
    say "started munged (pid $(live_pid "$munge_pid" || echo '?'))"
}

node_state() {
    sinfo -h -n localhost -o %t 2>/dev/null | head -n1 | tr -d '*~#!%$@^-'
}

wait_idle() {
    local i state=""
    for i in $(seq 1 300); do
        state=$(node_state || true)
        case $state in
        idle | mix | alloc | comp) return 0 ;;
        drain | drng | down)
            scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
            ;;
        esac
        sleep 0.1
    done
    die "node did not become idle within 30 s (sinfo says '${state:-nothing}'); see $log_dir/slurmctld.log and $log_dir/slurmd.log"
}

up() {
    require_root
    if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 ||
        ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1 ||
        { [ "$accounting" = 1 ] && ! command -v slurmdbd >/dev/null 2>&1; } ||
        { [ "$accounting" = 1 ] && ! command -v mariadbd >/dev/null 2>&1; }; then
        bash "$here/deps/slurm.sh"
    fi
    mkdir -p "$conf_dir" "$log_dir" "$ctld_spool" "$slurmd_spool"
    local rendered changed=0
    rendered=$(render_conf)
    if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$rendered" ]; then
        printf '%s\n' "$rendered" >"$conf.tmp"
        mv "$conf.tmp" "$conf"
        changed=1
    fi
    if [ "$cgroups" = 1 ]; then
        rendered=$(render_cgroup_conf)
        if [ ! -f "$cgroup_conf" ] || [ "$(cat "$cgroup_conf")" != "$rendered" ]; then
            printf '%s\n' "$rendered" >"$cgroup_conf"
            changed=1
        fi
    fi
    start_munge
    if [ "$accounting" = 1 ]; then
        start_mariadb
        start_slurmdbd
    fi
    if [ "$changed" -eq 1 ]; then
        stop_pidfile slurmd "$slurmd_pid"
        stop_pidfile slurmctld "$ctld_pid"
        say "wrote $conf"
    fi
    if ! live_pid "$ctld_pid" >/dev/null; then
        slurmctld
        local i
        for i in $(seq 1 100); do
            scontrol ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        say "started slurmctld (pid $(live_pid "$ctld_pid" || echo '?'))"
    fi
    scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer scontrol ping; see $log_dir/slurmctld.log"
    if ! live_pid "$slurmd_pid" >/dev/null; then
        slurmd -N localhost
        wait_idle
        say "started slurmd (pid $(live_pid "$slurmd_pid" || echo '?'))"
    fi
    wait_idle
    say "up: node localhost $(node_state), $cpus CPUs advertised, cgroups $cgroups, accounting $accounting, jobcomp at $jobcomp"
}

down() {
    require_root
    stop_pidfile slurmd "$slurmd_pid"
    stop_pidfile slurmctld "$ctld_pid"
    stop_pidfile slurmdbd "$dbd_pid"
    stop_pidfile mariadb "$mariadb_pid"
    stop_pidfile munged "$munge_pid"
}

status() {
    local name file pid ok=0
    local daemons=("munged:$munge_pid" "slurmctld:$ctld_pid" "slurmd:$slurmd_pid")
    if [ "$accounting" = 1 ]; then
        daemons+=("mariadb:$mariadb_pid" "slurmdbd:$dbd_pid")
    fi
    for pair in "${daemons[@]}"; do
        name=${pair%%:*}
        file=${pair#*:}
        if pid=$(live_pid "$file"); then
            say "$name running (pid $pid)"
        else
            say "$name not running"
            ok=1
        fi
    done
    local state
    state=$(node_state || true)
    say "node localhost: ${state:-unknown}"
    case $state in
    idle | mix | alloc | comp) ;;
    *) ok=1 ;;
    esac
    return $ok
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
