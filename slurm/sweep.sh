#!/bin/bash
# sweep.sh: runs one qsweep sweep as a Slurm batch job, one MPI rank per GPU.
#
#   sbatch slurm/sweep.sh jobs/llama32_1b_coqa.yaml [qsweep run options: --store FILE, --retry-failed, -v]
#
# Submit from the repository root: the paths below (build/qsweep, slurm/env.sh, logs/) are taken
# relative to the directory sbatch was run in ($SLURM_SUBMIT_DIR), because Slurm runs a copy of
# this script from its spool directory. The #SBATCH lines are defaults only: options given to
# sbatch on its command line win over them, e.g.
#   sbatch --ntasks=8 --time=12:00:00 --partition=gpu slurm/sweep.sh jobs/llama32_1b_coqa.yaml
#   sbatch --ntasks=3 --gpus-per-task=0 --cpus-per-task=4 slurm/sweep.sh jobs/demo.yaml   # no GPUs
#
# GPUs: with --gpus-per-task=1 Slurm shows each task exactly one GPU (CUDA_VISIBLE_DEVICES), and
# qsweep's device "auto" takes GPU (node-local rank % visible GPUs) = 0: its own one. Sites whose
# Slurm predates --gpus-per-task use `#SBATCH --gres=gpu:N` with --ntasks-per-node=N instead;
# then every task of a node sees all N GPUs and the same rule gives node-local rank r GPU r. Both
# layouts therefore put one rank on each GPU without any binding options here.
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
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
# --open-mode=append: a requeued job writes to the same logs/qsweep-<jobid>.out, and without it
# Slurm would truncate the log of the run before. Slurm opens that file before this script runs
# and fails the job if logs/ is missing; the repository ships logs/ for that reason.

say() { echo "sweep.sh: $*" >&2; }

if [ $# -lt 1 ]; then
  say "usage: sbatch [sbatch options] slurm/sweep.sh JOB.yaml [qsweep run options]"
  exit 2
fi

REPO=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
mkdir -p "$REPO/logs"

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
    launch=(mpirun -q -np "${SLURM_NTASKS:-1}" --bind-to none)
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
  local state
  state=$(squeue -h -j "${SLURM_JOB_ID:-0}" -o %T 2>/dev/null)
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
  "${SLURM_NTASKS:-1} ranks, ${SLURM_CPUS_PER_TASK:-1} CPUs each, launcher $LAUNCHER"
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
