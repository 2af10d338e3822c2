#!/usr/bin/env bash
# Stop the single-node SLURM that tests/slurm/start-local-slurm.sh started: only the
# daemons it started (recorded in /run/local-slurm), each by its pid file or its own
# shutdown command. Idempotent: with nothing running it does nothing. Packages, the
# configuration and the accounting database stay, so the next start is fast.
set -uo pipefail

STATE=/run/local-slurm
say() { echo "stop-local-slurm: $*"; }

[ "$(id -u)" = 0 ] || { echo "stop-local-slurm: run as root" >&2; exit 1; }
[ -d "$STATE" ] || { say "nothing to stop"; exit 0; }

# stop_pidfile NAME PIDFILE: SIGTERM the process of PIDFILE and wait up to 30 s for it
stop_pidfile() {
    local name=$1 pidfile=$2 pid i
    if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
        say "stopping $name ($pid)"
        kill "$pid"
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name did not stop, killing it"
            kill -9 "$pid" 2>/dev/null
        fi
    fi
}

if [ -e "$STATE/slurmd" ] || [ -e "$STATE/slurmctld" ]; then
    # jobs still running would keep slurmstepd processes around
    scancel --full --quiet --state=RUNNING,PENDING 2>/dev/null || true
fi
[ -e "$STATE/slurmd" ] && stop_pidfile slurmd /run/slurm/slurmd.pid
[ -e "$STATE/slurmctld" ] && stop_pidfile slurmctld /run/slurm/slurmctld.pid
[ -e "$STATE/slurmdbd" ] && stop_pidfile slurmdbd /run/slurm/slurmdbd.pid
if [ -e "$STATE/mariadb" ]; then
    say "stopping MariaDB"
    /etc/init.d/mariadb stop >/dev/null 2>&1 || true
fi
[ -e "$STATE/munge" ] && stop_pidfile munged /run/munge/munged.pid
rm -rf "$STATE"
say "stopped"
