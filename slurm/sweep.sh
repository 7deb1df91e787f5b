#!/bin/bash
# sweep.sh: runs one qsweep sweep as a Slurm batch job, one MPI rank per GPU.
#
#   sbatch [sbatch options] /path/to/qsweep/slurm/sweep.sh JOB.yaml [qsweep run options]
#
# Submit from any directory. Slurm runs a copy of this script from its spool directory, so the
# installation (build/qsweep, slurm/env.sh) is found, in this order, from $QSWEEP_HOME, from
# where sbatch found this script (scontrol's Command=), or from the job file's location (the
# first directory above it that holds slurm/sweep.sh); the script says so and exits 2 if none
# works. Relative paths on the command line are relative to the submit directory, where the job
# runs. Slurm's own output goes to qsweep-<jobid>.out in the submit directory (--output= to move
# it); each rank logs to <log_dir>/<sweep>-<jobid>-rank<N>.log (log_dir: the job file's logs/).
#
# The #SBATCH lines are defaults only: options given to sbatch on its command line win over
# them, e.g.
#   sbatch -N 2 slurm/sweep.sh JOB.yaml                         # 2 nodes x 4 ranks = 8 ranks
#   sbatch -N 2 --ntasks-per-node=8 --time=12:00:00 -p gpu slurm/sweep.sh JOB.yaml  # 16 ranks
#   sbatch --ntasks=2 slurm/sweep.sh JOB.yaml                   # 2 ranks on one node
#   sbatch --ntasks-per-node=3 --gpus-per-task=0 --cpus-per-task=4 slurm/sweep.sh jobs/demo.yaml
# The rank count is nodes x --ntasks-per-node (or --ntasks where given): the script asks for
# nodes and tasks per node, not a total, so -N alone scales it.
# Memory: --mem is per node. A rank holds its model (2.3 GiB for Llama-3.2-1B in bf16, 16 GiB for
# 8B) in host memory while loading, plus a few GiB of libtorch and CoQA data; calibrated configs
# (gptq, awq) hold the calibration activations too. --mem-per-cpu=8G with the default 8 CPUs per
# rank gives 64 GiB per rank, enough up to 8B; site defaults are often far lower.
#
# GPUs: with --gpus-per-task=1 Slurm shows each task exactly one GPU (CUDA_VISIBLE_DEVICES), and
# qsweep's device "auto" takes GPU (node-local rank % visible GPUs) = 0: its own one. Sites whose
# Slurm predates --gpus-per-task use `#SBATCH --gres=gpu:N` with --ntasks-per-node=N instead;
# then every task of a node sees all N GPUs and the same rule gives node-local rank r GPU r. Both
# layouts therefore put one rank on each GPU without any binding options here. For --gres, drop
# the per-task request on the command line, no edit needed:
#   sbatch --gpus-per-task=0 --gres=gpu:4 slurm/sweep.sh JOB.yaml
# CPU-only clusters: override with --gpus-per-task=0 (or --gres=none for the --gres variant);
# qsweep then finds no GPU and runs on the CPU, with --cpus-per-task threads per rank.
#
# Time limit and preemption: Slurm sends USR1 to this script 120 s before --time runs out
# (--signal=B:USR1@120), and preemption with a grace time sends TERM. Either way the signal goes
# on to the qsweep ranks and the job is requeued (--requeue); rank 0 logs "stopping on SIGUSR1:
# N units done, M left, resubmit to resume" and every rank exits 5. The store keeps every unit
# finished so far, and the requeued job (same job ID, same arguments) resumes from it. A job that
# is being cancelled (scancel) is not requeued. Units in flight at the signal run again after the
# requeue. mpirun is sent USR1 for TERM too: it passes USR1 on to the ranks, whereas on TERM it
# kills them itself.
#
# Exit code: qsweep's (docs/reliability.md: 0 all units ok, 1 some unit failed, 2 fatal error,
# 3 units left undone, 4 store not writable, 5 stopped by a signal, 6 all done but a rank lost);
# 2 also for a missing binary or job file here.
#SBATCH --job-name=qsweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
# --output: Slurm opens it before this script runs and fails the job, with no log anywhere, when
# its directory is missing; the submit directory always exists. --open-mode=append: a requeued
# job writes to the same file, which Slurm would otherwise truncate.

say() { echo "sweep.sh: $*" >&2; }

if [ $# -lt 1 ]; then
  say "usage: sbatch [sbatch options] slurm/sweep.sh JOB.yaml [qsweep run options]"
  exit 2
fi

# installation_of DIR: DIR or the first directory above it holding slurm/sweep.sh.
installation_of() {
  local dir
  dir=$(cd "$1" 2>/dev/null && pwd) || return 1
  while [ "$dir" != / ]; do
    if [ -f "$dir/slurm/sweep.sh" ]; then echo "$dir"; return 0; fi
    dir=$(dirname "$dir")
  done
  return 1
}
# The script sbatch was given (not the spool copy running now), from the job's record.
submitted_script() {
  [ -n "${SLURM_JOB_ID:-}" ] || return 1
  scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p'
}
if [ -n "${QSWEEP_HOME:-}" ]; then
  REPO=$QSWEEP_HOME
  found="QSWEEP_HOME"
elif script=$(submitted_script) && [ -f "$script" ] && REPO=$(installation_of "$(dirname "$script")/.."); then
  found="the submitted script $script"
elif REPO=$(installation_of "$(dirname "$1")"); then
  found="the job file's location"
else
  say "cannot find the qsweep installation (slurm/sweep.sh) from the submitted script or above" \
    "the job file '$1': set QSWEEP_HOME to the qsweep directory (e.g. sbatch --export=ALL,QSWEEP_HOME=\$HOME/qsweep)"
  exit 2
fi
say "installation $REPO (from $found)"

# Site hook for `module load` lines and library paths. Sourced without `set -u`: module commands
# often read unset variables.
ENV_FILE=${QSWEEP_ENV:-$REPO/slurm/env.sh}
if [ -n "${QSWEEP_ENV:-}" ] && [ ! -r "$QSWEEP_ENV" ]; then
  say "QSWEEP_ENV names '$QSWEEP_ENV', which cannot be read"
  exit 2
fi
if [ -r "$ENV_FILE" ]; then
  # shellcheck source=slurm/env.sh
  . "$ENV_FILE" || { say "sourcing $ENV_FILE failed"; exit 2; }
fi
set -uo pipefail

QSWEEP=${QSWEEP_BIN:-$REPO/build/qsweep}
if [ ! -x "$QSWEEP" ]; then
  say "no qsweep binary at '$QSWEEP': build it (scripts/setup.sh, or docs/cluster.md) or set QSWEEP_BIN"
  exit 2
fi

# Slurm 22.05 and 23.02 no longer pass --cpus-per-task from the allocation to srun; without this
# every rank would get one CPU. Each rank runs as many libtorch threads as it has CPUs.
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
fi

# srun with PMIx where Slurm has it (QSWEEP_LAUNCHER=srun|mpirun forces one). Otherwise Open MPI's
# mpirun, which reads the allocation from Slurm; its default binding (one core per rank for up to
# two ranks) would squeeze a rank's threads onto one core, hence --bind-to none.
# Ranks: SLURM_NTASKS, which sbatch sets to nodes x --ntasks-per-node when no --ntasks is given;
# else the allocation's tasks per node ("4(x2),3" is 4 on two nodes and 3 on one).
ranks() {
  if [ -n "${SLURM_NTASKS:-}" ]; then echo "$SLURM_NTASKS"; return; fi
  local total=0 part count times
  local per_node=${SLURM_TASKS_PER_NODE:-}
  for part in ${per_node//,/ }; do
    count=${part%%(*}
    times=1
    if [[ $part == *"(x"* ]]; then times=${part#*(x}; times=${times%)}; fi
    total=$((total + count * times))
  done
  echo $((total > 0 ? total : 1))
}
RANKS=$(ranks)

LAUNCHER=${QSWEEP_LAUNCHER:-auto}
if [ "$LAUNCHER" = auto ]; then
  LAUNCHER=mpirun
  if grep -qw pmix <<<"$(srun --mpi=list 2>&1)"; then LAUNCHER=srun; fi
fi
case $LAUNCHER in
  srun) launch=(srun --mpi=pmix) ;;
  mpirun)
    # -q: no "Primary job terminated normally, but 1 process returned a non-zero exit code"
    # banner after qsweep's own message; the exit code is kept.
    launch=(mpirun -q -np "$RANKS" --bind-to none)
    if [ "$(id -u)" -eq 0 ]; then launch+=(--allow-run-as-root); fi ;;
  *) say "QSWEEP_LAUNCHER must be auto, srun or mpirun, not '$LAUNCHER'"; exit 2 ;;
esac

step=""           # PID of the launcher, once started
requeued=""
signals=0
# on_signal SIG: pass SIG on to the ranks, and requeue the job unless it is already ending (a job
# being cancelled is COMPLETING; requeueing it would bring back a job its owner stopped).
# shellcheck disable=SC2317  # reached through the traps below
on_signal() {
  signals=$((signals + 1))
  say "got SIG$1 at $(date '+%F %T')"
  local pass=$1
  [ "$LAUNCHER" != mpirun ] || pass=USR1
  if [ -n "$step" ]; then kill -s "$pass" "$step" 2>/dev/null || true; fi
  [ -n "$requeued" ] && return
  if [ -z "${SLURM_JOB_ID:-}" ]; then say "not a Slurm job: nothing to requeue"; return; fi
  local state
  state=$(squeue -h -j "$SLURM_JOB_ID" -o %T 2>/dev/null)
  if [ "$state" = RUNNING ]; then
    if scontrol requeue "$SLURM_JOB_ID"; then
      requeued=1
      say "requeued job $SLURM_JOB_ID: it resumes from the store when it starts again"
    else
      say "scontrol requeue $SLURM_JOB_ID failed: resubmit the same command to resume"
    fi
  else
    say "job $SLURM_JOB_ID is ${state:-gone}, not requeueing it: resubmit the same command to resume"
  fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

say "job ${SLURM_JOB_ID:-none} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname)}:" \
  "$RANKS ranks, ${SLURM_CPUS_PER_TASK:-1} CPUs each, launcher $LAUNCHER"
say "${launch[*]} $QSWEEP run $*"

# In the background so that the traps run at once: bash defers traps until a foreground command
# ends, but interrupts `wait`.
"${launch[@]}" "$QSWEEP" run "$@" &
step=$!
while :; do
  seen=$signals
  wait "$step"
  rc=$?
  # A trap that ran cut the wait short (rc 128+n): wait again. bash keeps the status of a step
  # that has ended meanwhile, so the second wait returns it.
  [ "$signals" -ne "$seen" ] || break
done
say "qsweep run exited with $rc"
exit "$rc"
