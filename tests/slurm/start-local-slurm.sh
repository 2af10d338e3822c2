#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for the test marked `slurm`
# (tests/test_workflow_slurm.py): munge, a local MariaDB, slurmdbd (accounting, which
# the executor plugin's `sacct` status queries need), slurmctld and slurmd, with one
# partition `local` of this machine's cores and memory, and an account `local`.
#
# Run as root on Debian (or Ubuntu); it installs what is missing from Debian's packages.
# Idempotent: a second call, with everything up, only checks that it is. Stop it again with
# tests/slurm/stop-local-slurm.sh, which stops only what this script started.
# It writes /etc/slurm/slurm.conf and slurmdbd.conf, and refuses to when a slurm.conf that
# it did not write is there (a real cluster's node).
set -euo pipefail

MARK="# written by tests/slurm/start-local-slurm.sh"
STATE=/run/local-slurm          # what this script started, read by stop-local-slurm.sh
CLUSTER=local
ACCOUNT=local
PARTITION=local
MEM_MARGIN_MB=${LOCAL_SLURM_MEM_MARGIN_MB:-2048}  # memory kept back from SLURM for the OS

say() { echo "start-local-slurm: $*"; }
die() { echo "start-local-slurm: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
[ -f /etc/debian_version ] || die "this script is for Debian-like systems (apt-get)"
if [ -f /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf; then
    die "/etc/slurm/slurm.conf exists and was not written by this script: not touching it"
fi

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND every half second
wait_for() {
    local what=$1 seconds=$2 i
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within ${seconds}s (logs: /var/log/slurm/, /var/log/munge/)"
}

cluster_ready() {
    sinfo -h -p "$PARTITION" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' &&
        sacct -n -X -S now-1minute >/dev/null 2>&1
}

if command -v sinfo >/dev/null && [ -f /etc/slurm/slurm.conf ] && cluster_ready &&
    [ -n "$(sacctmgr -n list association user=root account="$ACCOUNT" format=user)" ]; then
    say "already up: $(sinfo -h -o '%P %D node(s) %c cpus %m MB %T' | head -1)"
    exit 0
fi

# --- packages (Debian's slurm-wlm 22.05 on bookworm)
packages=()
command -v slurmctld >/dev/null || packages+=(slurm-wlm)
command -v slurmdbd >/dev/null || packages+=(slurmdbd)
command -v munged >/dev/null || packages+=(munge)
command -v mariadbd >/dev/null || packages+=(mariadb-server)
if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
fi
mkdir -p "$STATE"

# --- munge (authentication between the SLURM daemons and commands)
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force  # --force: past a stale socket of a killed one
    touch "$STATE/munge"
    wait_for munged 20 sh -c 'munge -n </dev/null | unmunge'
fi

# --- MariaDB, the accounting database of slurmdbd
if ! mysqladmin ping >/dev/null 2>&1; then
    say "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    /etc/init.d/mariadb start >/dev/null
    touch "$STATE/mariadb"
    wait_for MariaDB 60 mysqladmin ping
fi
DB_PASS_FILE=/etc/slurm/.local-slurmdbd-password
mkdir -p /etc/slurm
if [ ! -s "$DB_PASS_FILE" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASS_FILE")
fi
DB_PASS=$(cat "$DB_PASS_FILE")
mysql <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# --- configuration: one node (this machine) with its real cores and its memory less a margin
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/ {print $2}')
REAL_MEMORY=$((MEM_TOTAL - MEM_MARGIN_MB))
[ "$REAL_MEMORY" -gt 1000 ] || die "too little memory for a SLURM node (${MEM_TOTAL} MB)"
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm

cat >/etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups (containers rarely delegate them): processes tracked through /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MpiDefault=none
ReturnToService=2
# a job over its time limit is killed 5 s after the signal (the test waits for that)
KillWait=5
OverTimeLimit=0
MinJobAge=300
SchedulerType=sched/backfill
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

cat >/etc/slurm/slurmdbd.conf <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf

# --- daemons: slurmdbd first (slurmctld registers the cluster with it), then the others
if ! sacctmgr -n list cluster >/dev/null 2>&1; then
    say "starting slurmdbd"
    /usr/sbin/slurmdbd
    touch "$STATE/slurmdbd"
    wait_for slurmdbd 60 sacctmgr -n list cluster
fi
if [ -z "$(sacctmgr -n list cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if [ -z "$(sacctmgr -n list account "$ACCOUNT" format=account)" ]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
        description="local test cluster" organization=local >/dev/null
fi
for user in root "${SUDO_USER:-}"; do
    [ -n "$user" ] || continue
    if [ -z "$(sacctmgr -n list association user="$user" account="$ACCOUNT" format=user)" ]; then
        sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
done
if ! scontrol ping 2>/dev/null | grep -q UP; then
    say "starting slurmctld"
    /usr/sbin/slurmctld
    touch "$STATE/slurmctld"
    wait_for slurmctld 60 sh -c 'scontrol ping | grep -q UP'
fi
if ! [ -f /run/slurm/slurmd.pid ] || ! kill -0 "$(cat /run/slurm/slurmd.pid)" 2>/dev/null; then
    say "starting slurmd"
    /usr/sbin/slurmd
    touch "$STATE/slurmd"
fi
# a node left down by an earlier run (e.g. killed hard) comes back
scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
wait_for "node $HOST" 60 sh -c "sinfo -h -n $HOST -o %T | grep -qE '^(idle|mixed|allocated)'"
wait_for accounting 30 cluster_ready
say "up: $(sinfo -h -o '%P %D node(s) %c cpus %m MB %T' | head -1); account $ACCOUNT"
