#!/usr/bin/env bash
# The sweep layer against a real Slurm: start a throwaway single-node Slurm on this machine, run
# the Slurm tests of tests/test_sweeps.py through it, stop it again.
#
#     bash scripts/test_slurm.sh              # as root; extra arguments go to pytest
#
# Needs the Debian/Ubuntu packages: apt-get install -y slurm-wlm munge (CI installs them). Nothing
# system-wide is changed: a private munged, slurmctld and slurmd (ports 16817/16818, overridable
# with SLURM_TEST_PORT) with a minimal slurm.conf in a temp folder: no cgroups
# (proctrack/linuxproc, task/none), no accounting database; Slurm's own record of every ended job
# is its job-completion log (jobcomp/filetxt), which the tests read. The folder (configuration,
# daemon logs, job-completion log) is removed on success and kept on failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
for binary in munged slurmctld slurmd sbatch squeue scontrol; do
  command -v "$binary" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$binary" >/dev/null ||
    { echo "error: $binary not found; apt-get install -y slurm-wlm munge" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "error: slurmd must run as root here; run this script as root" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/dkd-slurm.XXXXXX")
port=${SLURM_TEST_PORT:-16817}
host=$(hostname -s)
pids=()
stop() {
  local status=$? pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do  # they write their state on the way out
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
  if ((status == 0)); then rm -rf "$dir"; else echo "Slurm test folder kept: $dir" >&2; fi
  exit "$status"
}
trap stop EXIT
daemon_pid() {  # wait for a daemon's pid file (a minute: daemons start slowly on a busy machine), remember the pid
  for _ in $(seq 300); do [[ -s "$1" ]] && { pids+=("$(cat "$1")"); return 0; }; sleep 0.2; done
  echo "error: $1 did not appear; see the logs in $dir" >&2; exit 1
}

mkdir -p "$dir/state" "$dir/spool"
munged --force --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
  --seed-file="$dir/munged.seed" --key-file=/etc/munge/munge.key || exit 1
daemon_pid "$dir/munged.pid"
cat >"$dir/slurm.conf" <<EOF
ClusterName=dkd-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || exit 1
daemon_pid "$dir/slurmctld.pid"
slurmd -f "$SLURM_CONF" || exit 1
daemon_pid "$dir/slurmd.pid"
for _ in $(seq 60); do
  [[ $(sinfo --noheader --format=%t 2>/dev/null) == idle ]] && break
  sleep 0.5
done
sinfo
touch "$dir/jobcomp.log"

DKD_TEST_SLURM_JOBCOMP="$dir/jobcomp.log" bash scripts/test.sh tests/test_sweeps.py -k slurm -v -rs "$@"
status=$?
echo "--- Slurm's job-completion log ($dir/jobcomp.log):"
cut -d" " -f1,4,5,8,9,22,23,25 "$dir/jobcomp.log"
# pytest exits 5 when the -k selection runs nothing; skipped tests count as a failure here too
if ((status == 0)) && ! [[ -s "$dir/jobcomp.log" ]]; then
  echo "error: no job reached Slurm" >&2
  status=1
fi
exit "$status"
