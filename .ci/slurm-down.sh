#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm-up.sh (jobs cancelled, daemons ended).
set -uo pipefail
STATE=${DICEBENCH_SLURM_STATE:-/var/lib/dicebench-slurm}
command -v scancel >/dev/null && scancel --full --quiet --user root 2>/dev/null
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
  [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
for _ in $(seq 1 20); do
  [ -s "$STATE/slurmd.pid" ] && kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null && { sleep 0.5; continue; }
  [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null && { sleep 0.5; continue; }
  break
done
[ -s /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null
echo "slurm down"
exit 0
