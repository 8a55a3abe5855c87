#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm-up.sh: jobs cancelled, then slurmd,
# slurmctld and munged ended by the process ids in their pid files, waiting until they are gone.
set -uo pipefail
STATE=${DICEBENCH_SLURM_STATE:-/var/lib/dicebench-slurm}
command -v scancel >/dev/null && scancel --full --quiet --user "$(id -un)" 2>/dev/null
pids=()
for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
  [ -s "$pidfile" ] && pids+=("$(cat "$pidfile")")
done
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
for _ in $(seq 1 40); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.25
done
echo "slurm down"
exit 0
