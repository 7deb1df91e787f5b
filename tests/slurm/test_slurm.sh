#!/usr/bin/env bash
# test_slurm.sh BUILD_DIR: slurm/sweep.sh on a real (local, single-node) Slurm cluster.
#   a) the demo sweep on 3 CPU ranks through `sbatch --wait` from outside the repository, the rank
#      count set by --ntasks-per-node alone: exit code 0, every unit done, one log per rank
#      named after the sweep and the job
#   a') sweep.sh outside Slurm (no SLURM_JOB_ID) takes a USR1 without dying on the unset variable
#   b) cancel and resume: the same sweep to a fresh store is cancelled (scancel) once some but not
#      all units are done; the store it leaves is readable and partial, the job is not requeued;
#      resubmitted, it finishes: every unit done exactly once, units done before the cancel were
#      not run again, and no config has a sample (id, turn) twice.
#   c) requeue: USR1 (what Slurm sends near the time limit) half-way through a third sweep; rank 0
#      logs "stopping on SIGUSR1: N units done, M left, resubmit to resume", the first run exits 5
#      without an MPI banner, the job requeues itself and its second run completes the store, as
#      in b).
# Needs root (to start the daemons; CI runs as root): exit 77 (skipped) otherwise. The daemons run
# from a temporary directory and are stopped, their jobs cancelled, however the test ends.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(realpath "${1:-$REPO/build}")
HERE=$REPO/tests/slurm
# One budget for the whole test, below ctest's TIMEOUT (900 s): ctest kills with SIGKILL, which
# would leave the daemons running.
DEADLINE=$((SECONDS + 840))

say() { echo "test_slurm: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
left() { echo $((DEADLINE - SECONDS > 1 ? DEADLINE - SECONDS : 1)); }
# sweep WHAT STORE: submit the demo sweep, wait for it, and fail unless it exits 0.
sweep() {
  local rc=0 id
  id=$(timeout "$(left)" "${SBATCH[@]}" --wait "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" \
    --store "$2") || rc=$?
  [ $rc -ne 124 ] || fail "$1 did not finish within the test's time budget"
  [ $rc -eq 0 ] || fail "$1 exited $rc (sbatch --wait slurm/sweep.sh), expected 0"
  say "$1: job $id exited 0"
  LAST_JOB=$id
}

if [ "$(id -u)" -ne 0 ]; then
  say "SKIPPED: needs root to start a local Slurm cluster (munged, slurmctld, slurmd)"
  exit 77
fi
[ -x "$BUILD/qsweep" ] || fail "no qsweep binary at $BUILD/qsweep: build first (scripts/setup.sh)"
TOKENIZER=$REPO/.cache/tokenizers/llama3/tokenizer.json   # scripts/setup.sh fetches it

TMP=$(mktemp -d /tmp/qsweep-slurm-test.XXXXXX)
chmod 755 "$TMP"   # munged runs as user munge and must reach its directory inside
export QSWEEP_SLURM_DIR=$TMP/cluster
export QSWEEP_SLURM_PORT=${QSWEEP_SLURM_PORT:-6847}   # apart from a cluster started by hand
finish() {
  local rc=$?
  trap - EXIT INT TERM
  bash "$HERE/local-cluster.sh" stop || rc=1
  if [ $rc -eq 0 ]; then
    rm -rf "$TMP"
  else
    for f in "$TMP"/job-*.out; do [ -e "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done
    say "kept $TMP for inspection"
  fi
  exit $rc
}
trap finish EXIT
trap 'exit 143' INT TERM
bash "$HERE/local-cluster.sh" start
# shellcheck source=/dev/null  # written by local-cluster.sh start
. "$QSWEEP_SLURM_DIR/env.sh"

# sbatch exports the whole environment (--export=ALL), so these reach the job.
export QSWEEP_BIN=$BUILD/qsweep
export QSWEEP_DEMO_MODEL=${QSWEEP_DEMO_MODEL:-$BUILD/demo-model}
if [ ! -s "$QSWEEP_DEMO_MODEL/model.safetensors" ]; then   # the model scripts/demo.sh makes
  [ -s "$TOKENIZER" ] || fail "no $TOKENIZER: run scripts/setup.sh"
  "$BUILD/qsweep" make-model --preset tiny --tokenizer "$TOKENIZER" --seed 1 --init-std 0.2 \
    --out "$QSWEEP_DEMO_MODEL"
fi

store() { /usr/bin/python3 "$REPO/tests/store_checks.py" "$@"; }
# Fits the local cluster on a 2-core machine: 3 ranks of one CPU each (it advertises 4), no GPUs.
# --ntasks-per-node without --ntasks: the script asks for nodes x tasks per node, so this (like
# -N on a real cluster) sets the rank count.
SBATCH=(sbatch --parsable --ntasks-per-node=3 --gpus-per-task=0 --cpus-per-task=1 --time=15
  --output="$TMP/job-%j.out")
mkdir "$TMP/elsewhere"
cd "$TMP/elsewhere"   # sweep.sh finds its installation from where it was submitted, not the cwd

say "a) sweep to a new store, submitted from outside the repository"
sweep "a) the sweep" "$TMP/a.h5"
[ -s "$TMP/a.h5" ] || fail "a) no store at $TMP/a.h5"
store complete "$TMP/a.h5" || fail "a) store incomplete"
a_job=$LAST_JOB
grep -q "3 ranks" "$TMP/job-$a_job.out" || fail "a) --ntasks-per-node=3 did not give 3 ranks"
for r in 0 1 2; do
  [ -s "$REPO/jobs/logs/demo-$a_job-rank$r.log" ] || fail "a) no log jobs/logs/demo-$a_job-rank$r.log"
done

say "a') outside Slurm: USR1 without a job to requeue"
env -u SLURM_JOB_ID QSWEEP_LAUNCHER=mpirun bash "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" \
  --store "$TMP/outside.h5" >"$TMP/outside.out" 2>&1 &
outside=$!
for _ in $(seq 100); do grep -q "qsweep run" "$TMP/outside.out" 2>/dev/null && break; sleep 0.2; done
kill -USR1 "$outside"
for _ in $(seq 50); do grep -q "nothing to requeue" "$TMP/outside.out" && break; sleep 0.2; done
kill -TERM "$outside" 2>/dev/null || true   # the sweep itself is not what this case tests
wait "$outside" || true
grep -q "not a Slurm job: nothing to requeue" "$TMP/outside.out" ||
  fail "a') sweep.sh outside Slurm did not handle USR1: $(tail -n 5 "$TMP/outside.out")"
if grep -q "unbound variable" "$TMP/outside.out"; then fail "a') sweep.sh used an unset variable"; fi

# wait_partial WHAT JOB STORE: wait until STORE shows a unit done, while JOB runs.
wait_partial() {
  local progress=""
  while :; do
    [ "$(left)" -gt 60 ] || fail "$1: no unit done within the time budget"
    if [ -s "$3" ]; then progress=$(store progress "$3" 2>/dev/null) || progress=""; fi
    if [ -n "$progress" ] && [ "${progress% *}" -ge 1 ]; then break; fi
    [ -n "$(squeue -h -j "$2" -o %T 2>/dev/null)" ] || fail "$1: job $2 ended before any unit was done"
    sleep 0.2
  done
  say "$1: ${progress% *} of ${progress#* } units done in job $2"
}
# The first run of (b) and (c) has one rank, so that the sweep (seconds on 3 ranks) takes long
# enough to be caught half-way; the resumed runs have 3, which resuming must allow.
ONE_RANK=(--ntasks=1)

say "b) cancel once some units are done, then resume"
job=$(timeout 30 "${SBATCH[@]}" "${ONE_RANK[@]}" "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" \
  --store "$TMP/b.h5")
wait_partial "b) before the cancel" "$job" "$TMP/b.h5"
scancel "$job"
for _ in $(seq 60); do
  state=$(squeue -h -j "$job" -o %T 2>/dev/null) || state=""
  [ "$state" != PENDING ] || fail "b) job $job was requeued after scancel"
  [ -n "$state" ] || break
  sleep 1
done
[ -z "$state" ] || fail "b) job $job still $state 60 s after scancel"
store partial "$TMP/b.h5" "$TMP/b-partial.json" || fail "b) store after the cancel"
sweep "b) the resumed sweep" "$TMP/b.h5"
store complete "$TMP/b.h5" "$TMP/b-partial.json" || fail "b) store after the resume"

# c) What --signal=B:USR1@120 does near the time limit, sent at once: sweep.sh passes USR1 to the
# ranks and requeues the job, which resumes from the store; sbatch --wait follows it to the end.
say "c) USR1 (time limit near) once some units are done: requeue and resume"
timeout "$(left)" "${SBATCH[@]}" "${ONE_RANK[@]}" --wait "$REPO/slurm/sweep.sh" "$REPO/jobs/demo.yaml" \
  --store "$TMP/c.h5" >"$TMP/c.id" &
waiter=$!
for _ in $(seq 100); do [ -s "$TMP/c.id" ] && break; sleep 0.2; done
job=$(cat "$TMP/c.id")
[ -n "$job" ] || fail "c) sbatch printed no job ID"
wait_partial "c) before USR1" "$job" "$TMP/c.h5"
scancel --batch --signal=USR1 "$job"
for _ in $(seq 60); do
  state=$(squeue -h -j "$job" -o %T 2>/dev/null) || state=""
  [ "$state" = PENDING ] && break
  sleep 1
done
[ "$state" = PENDING ] || fail "c) job $job not requeued after USR1 (state '$state')"
store partial "$TMP/c.h5" "$TMP/c-partial.json" || fail "c) store after USR1"
# Slurm holds a requeued job back for about two minutes; release it now.
scontrol update jobid="$job" starttime=now
rc=0
wait "$waiter" || rc=$?
[ $rc -eq 0 ] || fail "c) the requeued job $job exited $rc, expected 0"
grep -q "restart 1" "$TMP/job-$job.out" || fail "c) job $job did not run a second time"
grep -qE "stopping on SIGUSR1: [0-9]+ units done, [0-9]+ left, resubmit to resume" "$TMP/job-$job.out" ||
  fail "c) rank 0 did not log 'stopping on SIGUSR1: N units done, M left, resubmit to resume'"
grep -q "qsweep run exited with 5" "$TMP/job-$job.out" || fail "c) the run stopped by USR1 did not exit 5"
! grep -qE "MPI_ABORT|ORTE_ERROR_LOG|Primary job|mpirun detected|mpirun noticed" "$TMP/job-$job.out" ||
  fail "c) the stopped run printed an MPI banner: $(grep -E "MPI_ABORT|ORTE_ERROR_LOG|Primary job|mpirun" "$TMP/job-$job.out" | head -3)"
say "c) $(grep -oE "stopping on SIGUSR1: .*" "$TMP/job-$job.out"); exit 5, no MPI banner"
store complete "$TMP/c.h5" "$TMP/c-partial.json" || fail "c) store after the requeue"
say "passed"
