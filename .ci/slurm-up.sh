#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on this machine (munge + slurmctld + slurmd on localhost),
# so the Slurm profile can be tested for real. Idempotent: a cluster already up is left alone.
# Needs root. Debian's slurm-wlm 22.05; no slurmdbd, so no accounting: sacct fails, and the
# profile reads job states with squeue (`slurm-status-command: squeue`).
set -euo pipefail
STATE=${DICEBENCH_SLURM_STATE:-/var/lib/dicebench-slurm}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE"/{ctld,d,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat > "$STATE/slurm.conf" <<CONF
ClusterName=dicebench
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Finished jobs stay visible to squeue/scontrol for 10 minutes (>= 3 x the first status check:
# the executor reads job states with squeue).
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=localhost CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# A fake GPU: jobs asking for one get CUDA_VISIBLE_DEVICES=0 and torch still sees no CUDA.
echo "NodeName=localhost Name=gpu File=/dev/null" > "$STATE/gres.conf"
# The executor's job step clears SLURM_CONF: the configuration must be found at the default path.
ln -sf "$STATE/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$STATE/gres.conf" /etc/slurm/gres.conf

if ! pgrep -u munge -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1k count=1 2>/dev/null; }
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
  su -s /bin/sh munge -c /usr/sbin/munged
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
  if sinfo --noheader -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm up: $(sinfo --noheader -o '%P %D %T %G')"
    exit 0
  fi
  scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm did not come up; see $STATE/log/" >&2
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
exit 1
