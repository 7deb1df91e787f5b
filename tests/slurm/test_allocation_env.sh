#!/usr/bin/env bash
# test_allocation_env.sh BUILD_DIR: slurm/sweep.sh under the environment that allocations this
# machine's one-node cluster cannot give would set (2 nodes x 4 tasks, uneven nodes), with
# stand-ins for mpirun and srun that record how sweep.sh launched them: the rank count, the
# launcher and its options, the CPU variables, and the exit code passed back. What Slurm itself
# does with -N 2 or --gres (placing the tasks, CUDA_VISIBLE_DEVICES) is not tested here.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath "${1:-$REPO/build}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "test_allocation_env: FAILED: $*" >&2; exit 1; }

# The stand-ins write their name, arguments and CPU variables to $RECORD and exit $LAUNCH_RC.
mkdir "$WORK/bin"
for tool in mpirun srun; do
  cat > "$WORK/bin/$tool" <<'TOOL'
#!/usr/bin/env bash
if [ "$*" = "--mpi=list" ]; then echo "MPI plugin types are... ${PLUGINS:-none}"; exit 0; fi
echo "$(basename "$0") $* | OMP_NUM_THREADS=${OMP_NUM_THREADS:-} SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-}" > "$RECORD"
exit "${LAUNCH_RC:-0}"
TOOL
  chmod +x "$WORK/bin/$tool"
done

# sweep ENV...: sweep.sh with a 2-node allocation's variables (overridable), as Slurm would start it.
sweep() {
  env -u SLURM_NTASKS PATH="$WORK/bin:$PATH" RECORD="$WORK/record" QSWEEP_HOME="$REPO" \
    QSWEEP_BIN="$BUILD/qsweep" SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=2 \
    SLURM_JOB_NODELIST="gpu[01-02]" SLURM_NTASKS_PER_NODE=4 SLURM_TASKS_PER_NODE="4(x2)" \
    SLURM_CPUS_PER_TASK=8 "$@" bash "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" --store s.h5 \
    2> "$WORK/err"
}
expect() {  # expect TEXT FILE
  grep -qF -- "$1" "$2" || fail "'$1' not in $(basename "$2"): $(cat "$2")"
}

# sbatch -N 2 --ntasks-per-node=4 sets SLURM_NTASKS=8: mpirun gets 8 ranks, 8 threads each.
sweep SLURM_NTASKS=8 QSWEEP_LAUNCHER=mpirun
root=""
if [ "$(id -u)" -eq 0 ]; then root=" --allow-run-as-root"; fi
expect "mpirun -q -np 8 --bind-to none$root $BUILD/qsweep run $REPO/jobs/demo.yaml --store s.h5" "$WORK/record"
expect "OMP_NUM_THREADS=8 SRUN_CPUS_PER_TASK=8" "$WORK/record"
expect "8 ranks, 8 CPUs each, launcher mpirun" "$WORK/err"

# Without SLURM_NTASKS the count comes from the tasks per node: 4 on two nodes and 3 on a third.
sweep SLURM_TASKS_PER_NODE="4(x2),3" QSWEEP_LAUNCHER=mpirun
expect "mpirun -q -np 11 " "$WORK/record"

# Where Slurm has PMIx, srun launches and takes the ranks from the allocation itself.
sweep SLURM_NTASKS=8 PLUGINS="cray_shasta pmix pmix_v4"
expect "srun --mpi=pmix $BUILD/qsweep run" "$WORK/record"
expect "launcher srun" "$WORK/err"

# Outside Slurm (no SLURM_* at all, `set -u` in the script): one rank.
env -u SLURM_NTASKS -u SLURM_TASKS_PER_NODE -u SLURM_JOB_ID PATH="$WORK/bin:$PATH" \
  RECORD="$WORK/record" QSWEEP_HOME="$REPO" QSWEEP_BIN="$BUILD/qsweep" QSWEEP_LAUNCHER=mpirun \
  bash "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" 2> "$WORK/err" || fail "outside Slurm: $(cat "$WORK/err")"
expect "mpirun -q -np 1 " "$WORK/record"

# qsweep's exit code is the job's (3: units left undone).
rc=0
sweep SLURM_NTASKS=8 QSWEEP_LAUNCHER=mpirun LAUNCH_RC=3 || rc=$?
[ "$rc" -eq 3 ] || fail "sweep.sh exited $rc for a launcher exiting 3"
expect "qsweep run exited with 3" "$WORK/err"
echo "test_allocation_env: ok"
