#!/bin/bash
# The tiny preset through a real one-node Slurm (issue 13), against a plain local run:
#   1. installs Debian's Slurm and MUNGE where missing (apt-get), writes a one-node slurm.conf for
#      this host (no cgroups: proctrack/linuxproc, task/none; state under $WORK), starts munged
#      (unless one answers already), slurmctld and slurmd;
#   2. runs `neuralign reproduce --preset tiny` locally, then through `--slurm --submit`, waits for
#      the jobs (squeue) and checks that results.json's numbers equal the local run's;
#   3. again in a fresh folder, has every curve job kill itself midway (SIGKILL between its two
#      checkpoint files; its dependents are cancelled with it), checks that --status reports it
#      failed, resubmits (only what is missing), waits and checks the numbers again;
#   4. stops the daemons it started.
# Root on Debian only (it installs packages and runs the daemons); elsewhere it says why and
# exits 0. Uses dist/cli.js of this checkout (built when missing). Ports 16817/16818 on localhost.
#   SLURM_E2E_DIR   its folder (default /tmp/neuralign-slurm-e2e; cleared first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

skip() { echo "slurm-e2e: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (installs Slurm and runs its daemons)"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null || skip "needs Debian (apt-get)"

start_all=$(date +%s)
missing=()
for p in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slurm-e2e: installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -f dist/cli.js ] || node scripts/build.mjs
NEURALIGN=(node "$ROOT/dist/cli.js")

WORK=${SLURM_E2E_DIR:-/tmp/neuralign-slurm-e2e}
rm -rf "$WORK"
mkdir -p "$WORK/state" "$WORK/spool"
HOST=$(hostname -s)
export SLURM_CONF="$WORK/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=neuralign-e2e
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=e2e Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

started=()
# munged runs as the munge user, so its pid file stays in its own /run/munge.
pidfile() { if [ "$1" = munged ]; then echo /run/munge/munged.pid; else echo "$WORK/$1.pid"; fi; }
cleanup() {
  for name in "${started[@]}"; do
    pid=$(cat "$(pidfile "$name")" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge && chown munge:munge /run/munge /var/lib/munge /var/log/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  [ -f /run/munge/munged.pid ] && started+=(munged)
fi
slurmctld -f "$SLURM_CONF" && started+=(slurmctld)
slurmd -f "$SLURM_CONF" && started+=(slurmd)
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  [[ "$state" == down* || "$state" == drain* ]] && scontrol update nodename="$HOST" state=resume 2>/dev/null || true
  sleep 1
done
[ "$state" = idle ] || { echo "slurm-e2e: the node did not come up (state '$state'); see $WORK/slurmctld.log, $WORK/slurmd.log"; exit 1; }
echo "slurm-e2e: one-node Slurm up on $HOST ($(nproc) CPUs), $(sinfo --version)"

# The numbers of results.json (not its wall times, versions or paths).
numbers() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(JSON.stringify({ curves: r.curves, lines: r.lines, alignment: r.alignment, effect: r.effect }))' "$1/results.json"; }
# Waits until none of the jobs in DIR/slurm/jobs.txt is queued or running.
wait_jobs() {
  ids=$(cut -d' ' -f2 "$1/slurm/jobs.txt" | paste -sd, -)
  [ -z "$ids" ] && return 0
  for _ in $(seq 1800); do
    [ -z "$(squeue -h -j "$ids" 2>/dev/null)" ] && return 0
    sleep 1
  done
  echo "slurm-e2e: jobs $ids still queued after 30 minutes"; squeue; exit 1
}
same() {
  if [ "$(numbers "$1")" = "$(numbers "$2")" ]; then echo "slurm-e2e: $3: results.json's numbers equal the local run's"
  else echo "slurm-e2e: FAIL: $3: results.json differs from the local run's"; diff <(numbers "$1" | tr , '\n') <(numbers "$2" | tr , '\n') | head -20; exit 1; fi
}

t0=$(date +%s)
"${NEURALIGN[@]}" reproduce --preset tiny --out "$WORK/local" > "$WORK/local.out" 2>&1 || { tail -20 "$WORK/local.out"; exit 1; }
t_local=$(( $(date +%s) - t0 ))
echo "slurm-e2e: local run: ${t_local} s"

t0=$(date +%s)
"${NEURALIGN[@]}" reproduce --preset tiny --out "$WORK/cluster" --slurm --submit --time-per-stage 00:30:00
wait_jobs "$WORK/cluster"
t_slurm=$(( $(date +%s) - t0 ))
"${NEURALIGN[@]}" reproduce --status --out "$WORK/cluster" || { echo "slurm-e2e: FAIL: a stage did not finish"; tail -5 "$WORK"/cluster/slurm/logs/*.log; exit 1; }
same "$WORK/local" "$WORK/cluster" "through Slurm"
echo "slurm-e2e: through Slurm: ${t_slurm} s (submit to the last job's end)"

# Curve jobs killed midway, then a resubmission. Deterministic, not a race with scancel (a tiny
# curve can finish before the cancel lands): with NEURALIGN_KILL_AT (src/nn/checkpoint/atomic.ts
# crashPoint) every curve job SIGKILLs itself between writing its optimizer file and its curve file
# (sbatch hands the submitting environment to its jobs); their dependents are cancelled with them.
t0=$(date +%s)
NEURALIGN_KILL_AT='rename:curve.safetensors' "${NEURALIGN[@]}" reproduce --preset tiny --out "$WORK/killed" --slurm --submit --time-per-stage 00:30:00 > "$WORK/killed-submit.out"
name=curve-p1-unaligned
wait_jobs "$WORK/killed"
echo "slurm-e2e: the curve jobs killed themselves midway (between their optimizer and curve files)"
set +e
"${NEURALIGN[@]}" reproduce --status --out "$WORK/killed" > "$WORK/killed-status.out"
rc=$?
set -e
cat "$WORK/killed-status.out"
[ "$rc" = 3 ] && grep -q "^$name  *failed" "$WORK/killed-status.out" || { echo "slurm-e2e: FAIL: --status did not report $name failed (exit $rc)"; exit 1; }
"${NEURALIGN[@]}" reproduce --preset tiny --out "$WORK/killed" --slurm --submit --time-per-stage 00:30:00 | tee "$WORK/resubmit.out"
grep -q "^  train " "$WORK/resubmit.out" && { echo "slurm-e2e: FAIL: the resubmission trained the endpoints again"; exit 1; }
wait_jobs "$WORK/killed"
"${NEURALIGN[@]}" reproduce --status --out "$WORK/killed" || { echo "slurm-e2e: FAIL: a stage did not finish after the resubmission"; exit 1; }
same "$WORK/local" "$WORK/killed" "killed and resubmitted"
t_killed=$(( $(date +%s) - t0 ))
echo "slurm-e2e: passed. local ${t_local} s, through Slurm ${t_slurm} s, killed + resubmitted ${t_killed} s; whole script $(( $(date +%s) - start_all )) s (Slurm $(sinfo --version | cut -d' ' -f2), $(nproc) CPUs)"
