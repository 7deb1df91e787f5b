#!/usr/bin/env bash
# test_sweep_mpi.sh CASE BUILD_DIR: `qsweep run` end to end under `mpirun -np 3` on the CPU, with
# the tiny demo model (QSWEEP_DEMO_MODEL, else BUILD_DIR/demo-model, made there if missing).
#   three_ranks_match_one   the demo sweep on 3 ranks and on 1 rank: every unit done once in both
#                           stores, and per config the same samples and exactly the same metrics
#                           (same samples, same seeded bootstrap), however units were shared out;
#                           each store's timing segment consistent (store_checks.py timing), a
#                           resume on 2 ranks appending one, analysis/scaling.py over both.
#   kill_and_resume         a longer sweep is killed with SIGKILL (mpirun and every rank) once some
#                           units are done; meanwhile a second writer on its store is refused (exit
#                           2, naming the lock file). The store left is readable and partial; the
#                           rerun completes it: every unit done once, no sample twice, units done
#                           before the kill not run again, results equal to an uninterrupted run.
#   failed_config_isolated  one config's checkpoint has a garbled quant_state (a fault inside the
#                           tensor data, which the checks of the headers before the sweep cannot
#                           see): exit code 1, its sanity unit fails naming the file and its
#                           other units are skipped naming that failure, the other configs
#                           complete, rank 0 lists the failures; a rerun runs nothing (exit 1);
#                           with the model fixed, `--retry-failed` completes the store (exit 0).
#   calibrated_once         a GPTQ config on 3 ranks: its checkpoint is computed once (one
#                           "quantized" preparation in the store, one "cached in" log line), every
#                           other rank loads it from the cache; the sweep is killed after that and
#                           resumed, and the rerun loads the checkpoint rather than quantizing again.
#   disk_full               the store on a 3 MiB tmpfs that is filled up once some units are done:
#                           exit 4 with "no space left on <mount> (tmpfs) writing <store>", no crash
#                           or MPI banner, the store on disk whole and partial, no temporary left;
#                           with space again the rerun completes it. Needs root to mount the tmpfs
#                           (skipped, exit 77, otherwise).
#   edited_job_resume       a finished sweep resumed with another baseline and bootstrap_resamples:
#                           metrics, deltas and KL all follow the edited job, equal to a clean run
#                           of it.
#   signal_and_resume       SIGTERM to every rank (as srun delivers it), then SIGUSR1 to mpirun (as
#                           slurm/sweep.sh passes a signal on), half-way: rank 0 logs "stopping on
#                           SIG...: N units done, M left, resubmit to resume", exit 5, no MPI
#                           banner; each rerun completes the store, equal to an uninterrupted run.
#   rank_stopped            one worker rank is stopped (SIGSTOP) mid-sweep: rank 0 gives up on it
#                           after the heartbeat timeout, its unit runs on the others, and the store
#                           is complete and equal to an uninterrupted run.
#   rank_killed             one worker rank is killed (SIGKILL) mid-sweep: Open MPI ends the whole
#                           job (it cannot survive a dead process); the store left is readable and
#                           partial, and the rerun completes it, equal to an uninterrupted run.
# Each case works in its own temporary directory, removed when it passes (kept, with the sweeps'
# output shown, when it fails). Processes the case started are killed however it ends.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CASES="three_ranks_match_one kill_and_resume failed_config_isolated calibrated_once disk_full
  edited_job_resume signal_and_resume rank_stopped rank_killed"
CASES=$(echo $CASES)
CASE=${1:-}
[[ " $CASES " == *" $CASE "* && -n "$CASE" ]] || { echo "usage: $0 {${CASES// /|}} [BUILD_DIR]" >&2; exit 2; }
BUILD=$(realpath "${2:-$REPO/build}")
NAME=mpi_$CASE
# One budget for the case, below ctest's TIMEOUT (600 s): ctest's SIGKILL would skip the cleanup.
DEADLINE=$((SECONDS + 560))

say() { echo "$NAME: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
left() { echo $((DEADLINE - SECONDS > 1 ? DEADLINE - SECONDS : 1)); }
store() { /usr/bin/python3 "$REPO/tests/store_checks.py" "$@"; }

QSWEEP=$BUILD/qsweep
[ -x "$QSWEEP" ] || fail "no qsweep binary at $QSWEEP: build first (scripts/setup.sh)"
command -v mpirun >/dev/null || fail "no mpirun on PATH (Debian: apt-get install openmpi-bin)"
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" -ne 0 ] || MPIRUN+=(--allow-run-as-root)

TMP=$(mktemp -d "/tmp/qsweep-$NAME.XXXXXX")
# Every process of the case has $TMP/ in its command line (job file, store): those still running
# at the end are leftovers of a failed or interrupted case, and are killed by their PIDs.
finish() {
  local rc=$?
  trap - EXIT INT TERM
  local pids
  pids=$(pgrep -f -- "$TMP/" || true)
  [ -z "$pids" ] || { say "killing leftover processes $(echo $pids)"; kill -9 $pids 2>/dev/null || true; }
  if [ $rc -eq 0 ]; then
    rm -rf "$TMP"
  else
    for f in "$TMP"/*.out; do [ -e "$f" ] && { echo "--- $f (last 30 lines)"; tail -n 30 "$f"; }; done
    say "kept $TMP for inspection"
  fi
  exit $rc
}
trap finish EXIT
trap 'exit 143' INT TERM

export QSWEEP_DEMO_MODEL=${QSWEEP_DEMO_MODEL:-$BUILD/demo-model}
if [ ! -s "$QSWEEP_DEMO_MODEL/model.safetensors" ]; then   # the model scripts/demo.sh makes
  TOKENIZER=$REPO/.cache/tokenizers/llama3/tokenizer.json   # scripts/setup.sh fetches it
  [ -s "$TOKENIZER" ] || fail "no $TOKENIZER to make the demo model with: run scripts/setup.sh"
  "$QSWEEP" make-model --preset tiny --tokenizer "$TOKENIZER" --init-std 0.2 --seed 1 \
    --out "$QSWEEP_DEMO_MODEL" >"$TMP/make-model.out" 2>&1 || fail "make-model failed"
fi
QSWEEP_DEMO_MODEL=$(realpath "$QSWEEP_DEMO_MODEL")
COQA=$REPO/data/coqa/coqa_dev_format_sample_10stories.json

# sweep LOG RANKS JOB STORE [ARGS...]: run the sweep to the end; rank 0's output goes to LOG, the
# exit code to RC.
sweep() {
  local log=$1 ranks=$2 job=$3 store=$4
  shift 4
  RC=0
  timeout -k 10 "$(left)" "${MPIRUN[@]}" -np "$ranks" "$QSWEEP" run "$job" --store "$store" "$@" \
    >"$log" 2>&1 || RC=$?
  [ $RC -ne 124 ] && [ $RC -ne 137 ] || fail "sweep $job on $ranks rank(s) did not end within the time budget (see $log)"
}

# expect_rc WHAT EXPECTED LOG: fail unless the last sweep exited EXPECTED.
expect_rc() {
  [ "$RC" -eq "$2" ] || fail "$1 exited $RC, expected $2 (see $3)"
  say "$1: exit code $RC as expected"
}

# job_copy: the demo job in a copy of the repository's layout (jobs/, data/, configs/), so that its
# relative paths resolve and its logs land in $TMP rather than in the source tree.
job_copy() {
  mkdir -p "$TMP/jobs"
  cp "$REPO/jobs/demo.yaml" "$TMP/jobs/"
  ln -s "$REPO/data" "$TMP/data"
  ln -s "$REPO/configs" "$TMP/configs"
  echo "$TMP/jobs/demo.yaml"
}

case_three_ranks_match_one() {
  local job
  job=$(job_copy)
  sweep "$TMP/three.out" 3 "$job" "$TMP/three.h5"
  expect_rc "the demo sweep on 3 ranks" 0 "$TMP/three.out"
  sweep "$TMP/one.out" 1 "$job" "$TMP/one.h5"
  expect_rc "the demo sweep on 1 rank" 0 "$TMP/one.out"
  store complete "$TMP/three.h5" || fail "3-rank store incomplete"
  store complete "$TMP/one.h5" || fail "1-rank store incomplete"
  # Otherwise the comparison would show nothing about sharing units out.
  store spread "$TMP/three.h5" 2 || fail "the 3-rank sweep did not share its units out"
  # The KL of every config against the baseline's logits, computed once for both sweeps (they
  # share the cache beside their stores).
  [ "$(cat "$TMP"/jobs/logs/*-rank*.log | grep -c "logits on the perplexity text cached in")" -eq 1 ] ||
    fail "the baseline's logits were not computed exactly once (see $TMP/jobs/logs)"
  store same-results "$TMP/three.h5" "$TMP/one.h5" || fail "results depend on the number of ranks"
  # Where the time went: one timing segment per run, each rank's parts adding up to the wall time,
  # preparations counted as the prepare tables list them; a resume appends a segment and leaves
  # the first as it was; analysis/scaling.py tabulates both stores, the 1-rank run the yardstick.
  store timing "$TMP/three.h5" 1 3 "$TMP/timing.json" || fail "3-rank timing (see $TMP/three.out)"
  store timing "$TMP/one.h5" 1 1 || fail "1-rank timing (see $TMP/one.out)"
  grep -q "parallel efficiency [0-9.]*% (busy / ranks x wall)" "$TMP/three.out" ||
    fail "rank 0 logged no per-rank timing table in $TMP/three.out"
  sweep "$TMP/resume.out" 2 "$job" "$TMP/three.h5"
  expect_rc "the finished 3-rank sweep resumed on 2 ranks" 0 "$TMP/resume.out"
  store timing "$TMP/three.h5" 2 2 "$TMP/timing.json" || fail "the resume's timing segment"
  /usr/bin/python3 "$REPO/analysis/scaling.py" "$TMP/one.h5" "$TMP/three.h5" --out "$TMP/scaling" \
    >"$TMP/scaling.out" 2>&1 || fail "analysis/scaling.py failed (see $TMP/scaling.out)"
  /usr/bin/python3 - "$TMP/scaling/scaling.csv" <<'PY' || fail "scaling table (see $TMP/scaling.out)"
import sys, pandas as pd
runs = pd.read_csv(sys.argv[1])
assert list(runs["ranks"]) == [1, 2, 3], runs
assert runs["speedup"][0] == 1 and runs["speedup"][2] > 0, runs  # the full runs compare
assert pd.isna(runs["speedup"][1]), runs  # the resume ran nothing: no yardstick for it
PY
  # Rank 0's progress: ETA as h/m/s and, after CoQA units, the config's running mean.
  grep -Eq '\| elapsed [0-9hms]+, ETA ([0-9]+h)?([0-9]+m)?[0-9]+s$' "$TMP/three.out" ||
    fail "no progress line with an h/m/s ETA in $TMP/three.out"
  grep -Eq 'fp32: running mean EM [0-9.]+ F1 [0-9.]+ over [0-9]+ samples' "$TMP/three.out" ||
    fail "no running mean EM/F1 of fp32 in $TMP/three.out"
  # One log file per rank, named after the sweep and this (non-Slurm) job.
  [ "$(ls "$TMP"/jobs/logs/demo-local*-rank*.log | wc -l)" -ge 4 ] ||
    fail "expected per-rank logs demo-local<time>-<pid>-rank<N>.log of both sweeps in $TMP/jobs/logs"
}

# A sweep that runs long enough (about 15 s on 3 ranks of 2 cores) to be caught half-way: one
# story per unit, longer answers, and each dtype twice under another name.
long_job() {
  cat >"$TMP/long.yaml" <<EOF
name: long
model: \${QSWEEP_DEMO_MODEL}
baseline: fp32
seed: 1234
device: cpu
configs:
  - {name: fp32, dtype: fp32}
  - {name: bf16, dtype: bf16}
  - {name: fp32-again, dtype: fp32}
  - {name: bf16-again, dtype: bf16}
evaluation:
  coqa: $COQA
  shard_size: 1
  batch_size: 2
  max_new_tokens: 48
  bootstrap_resamples: 1000
  sanity_prompts: ["The capital of France is"]
benchmarks: {prefill_tokens: 64, decode_tokens: 16, batch_sizes: [1, 2], warmup: 1, repeats: 3}
EOF
  echo "$TMP/long.yaml"
}

# kill_sweep PID: SIGKILL to mpirun and every rank at once. Open MPI puts each rank in a process
# group of its own, so mpirun's group alone would leave the ranks (rank 0 writing) running.
kill_sweep() {
  local mpirun=$1 ranks pid
  ranks=$(pgrep -P "$mpirun" || true)
  [ -n "$ranks" ] || fail "mpirun (PID $mpirun) has no rank processes to kill"
  local groups=(-"$mpirun")
  for pid in $ranks; do groups+=(-"$pid"); done
  kill -9 -- "${groups[@]}" 2>/dev/null || true
  wait "$mpirun" 2>/dev/null || true
  for _ in $(seq 100); do
    local alive=""
    for pid in $ranks; do
      # A killed rank may linger as a zombie until its new parent reaps it: that is dead too.
      if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        alive+=" $pid"
      fi
    done
    [ -n "$alive" ] || { say "killed mpirun (PID $mpirun) and its ranks (PIDs $(echo $ranks)) with SIGKILL"; return; }
    sleep 0.1
  done
  fail "ranks$alive still alive 10 s after SIGKILL"
}

case_kill_and_resume() {
  local job mpirun
  job=$(long_job)
  sweep "$TMP/reference.out" 3 "$job" "$TMP/reference.h5"
  expect_rc "the uninterrupted 3-rank sweep (the reference)" 0 "$TMP/reference.out"
  store complete "$TMP/reference.h5" || fail "reference store incomplete"

  # setsid: mpirun leads a process group of its own, which the kill below takes down.
  setsid "${MPIRUN[@]}" -np 3 "$QSWEEP" run "$job" --store "$TMP/killed.h5" >"$TMP/killed.out" 2>&1 &
  mpirun=$!
  # The lock file names its holder once the sweep holds the store.
  for _ in $(seq 300); do [ -s "$TMP/killed.h5.lock" ] && break; sleep 0.1; done
  [ -s "$TMP/killed.h5.lock" ] || fail "the sweep did not lock its store within 30 s"
  RC=0
  timeout 60 "$QSWEEP" run "$job" --store "$TMP/killed.h5" >"$TMP/second-writer.out" 2>&1 || RC=$?
  kill -0 "$mpirun" 2>/dev/null || fail "the sweep ended before the second writer was tried"
  expect_rc "a second writer on the store of a running sweep" 2 "$TMP/second-writer.out"
  grep -qF "lock file '$TMP/killed.h5.lock'" "$TMP/second-writer.out" ||
    fail "the refusal does not name the lock file: $(cat "$TMP/second-writer.out")"
  say "the refusal names the lock file: $(grep -o "is being written by.*lock')" "$TMP/second-writer.out")"

  store wait-partial "$TMP/killed.h5" 2 "$(($(left) - 200))" "$mpirun" ||
    fail "no partial store to kill the sweep at"
  kill_sweep "$mpirun"
  store partial "$TMP/killed.h5" "$TMP/before-kill.json" ||
    fail "the store left by the kill is unreadable or not partial"
  [ ! -e "$TMP/killed.h5.tmp" ] || say "(the kill left $TMP/killed.h5.tmp, a rewrite in flight)"

  sweep "$TMP/resumed.out" 3 "$job" "$TMP/killed.h5"
  expect_rc "the rerun of the killed sweep (its lock released by the kill)" 0 "$TMP/resumed.out"
  say "the rerun: $(grep -o '[0-9]* units planned, [0-9]* already done, [0-9]* to run' "$TMP/resumed.out")"
  store complete "$TMP/killed.h5" "$TMP/before-kill.json" || fail "the resumed store"
  store same-results "$TMP/reference.h5" "$TMP/killed.h5" ||
    fail "the killed and resumed sweep's results differ from the uninterrupted one's"
}

# A pre-quantized NF4 checkpoint whose first quant_state (the JSON bytes of a uint8 tensor) is
# garbage: its safetensors header is sound, so it passes the checks before the sweep, and its
# config fails where its model is loaded.
corrupt_quant_state() {
  /usr/bin/python3 - "$1" <<'PY'
import json, struct, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    name = sorted(k for k in header if "quant_state" in k)[0]
    f.seek(8 + n + header[name]["data_offsets"][0])
    f.write(b"#")
print(name)
PY
}

case_failed_config_isolated() {
  local job keys key state
  "$QSWEEP" quantize --model "$QSWEEP_DEMO_MODEL" --config "$REPO/configs/quant/nf4_dq_bf16.yaml" \
    --out "$TMP/nf4-model" >"$TMP/quantize.out" 2>&1 || fail "qsweep quantize failed (see $TMP/quantize.out)"
  cp -r "$TMP/nf4-model" "$TMP/broken-model"
  state=$(corrupt_quant_state "$TMP/broken-model/model.safetensors")
  say "garbled tensor $state of $TMP/broken-model/model.safetensors"
  job=$TMP/failing.yaml
  cat >"$job" <<EOF
name: failing
model: \${QSWEEP_DEMO_MODEL}
baseline: fp32
seed: 1234
device: cpu
configs:
  - {name: fp32, dtype: fp32}
  - {name: broken, method: from_checkpoint, dtype: bf16, model: $TMP/broken-model}
  - {name: bf16, dtype: bf16}
evaluation:
  coqa: $COQA
  shard_size: 2
  batch_size: 2
  max_new_tokens: 16
  bootstrap_resamples: 1000
  sanity_prompts: ["The capital of France is"]
benchmarks: {prefill_tokens: 64, decode_tokens: 16, batch_sizes: [1, 2], warmup: 1, repeats: 3}
EOF
  sweep "$TMP/first.out" 3 "$job" "$TMP/failing.h5"
  expect_rc "the sweep with a broken config" 1 "$TMP/first.out"
  store failed "$TMP/failing.h5" broken "$TMP/broken-model/model.safetensors" "not the JSON of a quant_state" ||
    fail "the broken config's failures are not recorded as they should be"
  store skipped "$TMP/failing.h5" broken/sanity ||
    fail "the broken config's failed sanity unit did not end its other units"
  # Rank 0's report: an errors section naming every failed unit, and them as missing.
  keys=$(/usr/bin/python3 -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r")
print(" ".join(k for k in f["units/key"].asstr()[:] if k.startswith("broken/")))' "$TMP/failing.h5")
  grep -q '^errors (' "$TMP/first.out" || fail "rank 0's output has no errors section"
  for key in $keys; do
    grep -q "^  $key (rank [0-9]* on .*model.safetensors" "$TMP/first.out" ||
      fail "rank 0's errors section does not list $key with its cause"
    grep -q "^  $key (failed)" "$TMP/first.out" || fail "rank 0's output does not list $key as failed"
  done
  say "rank 0's output lists the failures: $(echo $keys)"

  store snapshot "$TMP/failing.h5" "$TMP/after-failure.json" >/dev/null
  sweep "$TMP/rerun.out" 3 "$job" "$TMP/failing.h5"
  expect_rc "the rerun without --retry-failed" 1 "$TMP/rerun.out"
  grep -q ' 0 to run on 3 rank' "$TMP/rerun.out" || fail "the rerun planned units to run: $(grep 'units planned' "$TMP/rerun.out")"
  store unchanged "$TMP/failing.h5" "$TMP/after-failure.json" || fail "the rerun ran units"

  cp "$TMP/nf4-model/model.safetensors" "$TMP/broken-model/model.safetensors"
  say "restored $TMP/broken-model/model.safetensors"
  sweep "$TMP/retry.out" 3 "$job" "$TMP/failing.h5" --retry-failed
  expect_rc "the rerun with --retry-failed after the fix" 0 "$TMP/retry.out"
  say "the retry: $(grep -o '[0-9]* units planned, [0-9]* already done, [0-9]* to run' "$TMP/retry.out")"
  store complete "$TMP/failing.h5" "$TMP/after-failure.json" ||
    fail "the store after --retry-failed (done units must be kept, earlier errors too)"
}

case_calibrated_once() {
  local job=$TMP/calibrated.yaml mpirun counts
  cat >"$job" <<EOF
name: calibrated
model: \${QSWEEP_DEMO_MODEL}
baseline: fp32
seed: 1234
device: cpu
configs:
  - {name: fp32, dtype: fp32}
  - name: gptq
    method: gptq
    dtype: fp32
    bits: 4
    group_size: 32
    calibration: {text: $REPO/data/calibration/moby_dick.txt, samples: 8, seq_len: 128}
evaluation:
  coqa: $COQA
  shard_size: 1
  batch_size: 2
  max_new_tokens: 48
  bootstrap_resamples: 1000
EOF
  # setsid: mpirun leads a process group of its own, which the kill below takes down.
  setsid "${MPIRUN[@]}" -np 3 "$QSWEEP" run "$job" --store "$TMP/calibrated.h5" >"$TMP/first.out" 2>&1 &
  mpirun=$!
  for _ in $(seq 600); do store prepared "$TMP/calibrated.h5" gptq 1 >/dev/null 2>&1 && break; sleep 0.1; done
  store wait-partial "$TMP/calibrated.h5" 8 "$(($(left) - 200))" "$mpirun" ||
    fail "no partial store to kill the sweep at"
  kill_sweep "$mpirun"
  counts=$(store prepared "$TMP/calibrated.h5" gptq 1) || fail "before the kill: $counts"
  say "before the kill, gptq was quantized once and loaded from the cache ${counts#* } time(s)"
  # Each rank logs to logs/<sweep>-<job id>-rank<N>.log (rank 0 to the console too).
  cached() { cat "$TMP"/logs/*-rank*.log | grep -c 'quantized checkpoint cached in' || true; }
  [ "$(cached)" -eq 1 ] || fail "the ranks' logs do not say once that the checkpoint was cached"

  sweep "$TMP/resumed.out" 3 "$job" "$TMP/calibrated.h5"
  expect_rc "the resumed sweep" 0 "$TMP/resumed.out"
  store complete "$TMP/calibrated.h5" || fail "the resumed store"
  counts=$(store prepared "$TMP/calibrated.h5" gptq 1) || fail "after the resume: $counts"
  [ "$(cached)" -eq 1 ] || fail "the resumed sweep quantized again (see $TMP/logs)"
  say "after the resume, still one quantization; ${counts#* } loads from the cache"
}

# The reference for the cases that interrupt the long job: the same job run straight through.
reference() {
  sweep "$TMP/reference.out" 3 "$1" "$TMP/reference.h5"
  expect_rc "the uninterrupted 3-rank sweep (the reference)" 0 "$TMP/reference.out"
}

# start_long STORE LOG [ARGS...]: the long job on 3 ranks in the background; MPIRUN_PID is set.
start_long() {
  local store=$1 log=$2
  shift 2
  setsid "${MPIRUN[@]}" -np 3 "$QSWEEP" run "$TMP/long.yaml" --store "$store" "$@" >"$log" 2>&1 &
  MPIRUN_PID=$!
}

# rank_pid N: the PID of MPI rank N of the sweep started by start_long.
rank_pid() {
  local pid
  for pid in $(pgrep -P "$MPIRUN_PID"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"
      return
    fi
  done
  fail "no rank $1 among the children of mpirun (PID $MPIRUN_PID)"
}

# wait_sweep LOG: wait for the background sweep, its exit code to RC.
wait_sweep() {
  local waited=0
  while kill -0 "$MPIRUN_PID" 2>/dev/null && [ -z "$(awk '$3 == "Z"' "/proc/$MPIRUN_PID/stat" 2>/dev/null)" ]; do
    [ "$waited" -lt "$(left)" ] || fail "the sweep did not end within the time budget (see $1)"
    sleep 1
    waited=$((waited + 1))
  done
  RC=0
  wait "$MPIRUN_PID" || RC=$?
}

BANNER="MPI_ABORT|ORTE_ERROR_LOG|Primary job|mpirun detected|mpirun noticed|Segmentation|core dumped"
no_banner() {
  ! grep -qE "$BANNER" "$1" || fail "$2 printed an MPI banner or crashed: $(grep -E "$BANNER" "$1" | head -3)"
}

case_disk_full() {
  local job mount=$TMP/tiny
  job=$(long_job)
  mkdir -p "$mount"
  mount -t tmpfs -o size=3m tmpfs "$mount" 2>/dev/null || { say "SKIPPED: cannot mount a tmpfs (needs root)"; exit 77; }
  # Unmounted however the case ends, before its directory is removed.
  trap 'rc=$?; umount -l "$TMP/tiny" 2>/dev/null; (exit $rc); finish' EXIT
  MPIRUN+=(-q)
  start_long "$mount/full.h5" "$TMP/full.out"
  store wait-partial "$mount/full.h5" 2 "$(($(left) - 200))" "$MPIRUN_PID" || fail "no partial store"
  # All the space left, taken at once: the next rewrite of the store does not fit.
  dd if=/dev/zero of="$mount/filler" bs=4k 2>/dev/null || true
  say "filled $mount: $(df -k --output=avail "$mount" | tail -1 | tr -d ' ') KiB left"
  wait_sweep "$TMP/full.out"
  expect_rc "the sweep whose disk filled up" 4 "$TMP/full.out"
  grep -qF "no space left on $mount (tmpfs) writing $mount/full.h5" "$TMP/full.out" ||
    fail "no 'no space left on $mount (tmpfs) writing $mount/full.h5' in $TMP/full.out"
  say "rank 0 said: $(grep -o "no space left on.*" "$TMP/full.out" | head -1)"
  no_banner "$TMP/full.out" "the sweep on a full disk"
  store partial "$mount/full.h5" "$TMP/after-full.json" || fail "the store left on the full disk"
  [ ! -e "$mount/full.h5.tmp" ] || fail "the failed rewrite left $mount/full.h5.tmp behind"
  rm -f "$mount/filler"
  sweep "$TMP/resumed.out" 3 "$job" "$mount/full.h5"
  expect_rc "the rerun with space again" 0 "$TMP/resumed.out"
  store complete "$mount/full.h5" "$TMP/after-full.json" || fail "the resumed store"
}

case_edited_job_resume() {
  local job=$TMP/edited.yaml
  cat >"$job" <<EOF
name: edited
model: \${QSWEEP_DEMO_MODEL}
baseline: fp32
seed: 1234
device: cpu
configs:
  - {name: fp32, dtype: fp32}
  - {name: bf16, dtype: bf16}
evaluation:
  coqa: $COQA
  limit: 4
  shard_size: 2
  batch_size: 2
  max_new_tokens: 16
  bootstrap_resamples: 1000
  perplexity_text: $REPO/data/perplexity/coqa_train_story.txt
  sanity_prompts: ["The capital of France is"]
EOF
  sweep "$TMP/first.out" 3 "$job" "$TMP/edited.h5"
  expect_rc "the sweep with baseline fp32, 1000 resamples" 0 "$TMP/first.out"
  store derived "$TMP/edited.h5" fp32 1000 || fail "the first run's derived tables"
  sed -i 's/^baseline: fp32/baseline: bf16/; s/bootstrap_resamples: 1000/bootstrap_resamples: 1500/' "$job"
  say "edited the job: baseline bf16, bootstrap_resamples 1500"
  sweep "$TMP/resumed.out" 3 "$job" "$TMP/edited.h5"
  expect_rc "the resumed edited job" 0 "$TMP/resumed.out"
  grep -q "metrics recomputed from its stored samples" "$TMP/resumed.out" ||
    fail "the resumed run did not say it recomputed the metrics"
  store derived "$TMP/edited.h5" bf16 1500 || fail "the resumed store keeps derived tables of the old job"
  sweep "$TMP/clean.out" 3 "$job" "$TMP/clean.h5"
  expect_rc "a clean run of the edited job" 0 "$TMP/clean.out"
  store same-results "$TMP/clean.h5" "$TMP/edited.h5" ||
    fail "the resumed edited job's results differ from a clean run of it"
}

# interrupt_and_resume WHAT SIGNAL TARGETS...: the long job on 3 ranks, SIGNAL sent to TARGETS
# ("mpirun" or rank numbers) once 2 units are done; it must stop as docs/reliability.md says,
# and a rerun must complete the store, equal to the reference.
interrupt_and_resume() {
  local what=$1 signal=$2 target pids=""
  shift 2
  start_long "$TMP/$what.h5" "$TMP/$what.out"
  store wait-partial "$TMP/$what.h5" 2 "$(($(left) - 200))" "$MPIRUN_PID" || fail "no partial store"
  for target in "$@"; do
    if [ "$target" = mpirun ]; then pids+=" $MPIRUN_PID"; else pids+=" $(rank_pid "$target")"; fi
  done
  # shellcheck disable=SC2086  # one PID per word
  kill -s "$signal" $pids
  say "$what: sent SIG$signal to$pids"
  wait_sweep "$TMP/$what.out"
  expect_rc "$what: the sweep sent SIG$signal" 5 "$TMP/$what.out"
  grep -qE "stopping on SIG$signal: [0-9]+ units done, [0-9]+ left, resubmit to resume" "$TMP/$what.out" ||
    fail "$what: no 'stopping on SIG$signal: N units done, M left, resubmit to resume' in $TMP/$what.out"
  say "$what: $(grep -oE "stopping on SIG$signal: .*" "$TMP/$what.out")"
  no_banner "$TMP/$what.out" "$what"
  store partial "$TMP/$what.h5" "$TMP/$what.json" || fail "$what: the store left by the stop"
  sweep "$TMP/$what-resumed.out" 3 "$TMP/long.yaml" "$TMP/$what.h5"
  expect_rc "$what: the rerun" 0 "$TMP/$what-resumed.out"
  store complete "$TMP/$what.h5" "$TMP/$what.json" || fail "$what: the resumed store"
  store same-results "$TMP/reference.h5" "$TMP/$what.h5" || fail "$what: results differ from the reference"
}

case_signal_and_resume() {
  MPIRUN+=(-q)   # as slurm/sweep.sh runs it: mpirun's own banner for a non-zero exit is left out
  reference "$(long_job)"
  interrupt_and_resume sigterm TERM 0 1 2
  interrupt_and_resume sigusr1 USR1 mpirun
}

case_rank_stopped() {
  local pid
  reference "$(long_job)"
  MPIRUN+=(-q)
  start_long "$TMP/stopped.h5" "$TMP/stopped.out" --heartbeat-timeout 4
  store wait-partial "$TMP/stopped.h5" 2 "$(($(left) - 200))" "$MPIRUN_PID" || fail "no partial store"
  pid=$(rank_pid 2)
  kill -STOP "$pid"
  say "stopped rank 2 (PID $pid) with SIGSTOP"
  wait_sweep "$TMP/stopped.out"
  kill -KILL "$pid" 2>/dev/null || true
  grep -qE "rank 2 is lost \(no heartbeat for [0-9]+ s" "$TMP/stopped.out" ||
    fail "rank 0 did not say rank 2 was lost (see $TMP/stopped.out)"
  say "rank 0: $(grep -oE "rank 2 is lost.*" "$TMP/stopped.out")"
  expect_rc "the sweep that lost rank 2" 6 "$TMP/stopped.out"
  store complete "$TMP/stopped.h5" || fail "the sweep did not finish on the remaining ranks"
  store same-results "$TMP/reference.h5" "$TMP/stopped.h5" || fail "results differ from the reference"
}

case_rank_killed() {
  local pid
  reference "$(long_job)"
  start_long "$TMP/killed.h5" "$TMP/killed.out"
  store wait-partial "$TMP/killed.h5" 2 "$(($(left) - 200))" "$MPIRUN_PID" || fail "no partial store"
  pid=$(rank_pid 2)
  kill -KILL "$pid"
  say "killed rank 2 (PID $pid) with SIGKILL"
  wait_sweep "$TMP/killed.out"
  [ "$RC" -ne 0 ] || fail "the sweep with a killed rank exited 0"
  say "Open MPI ended the job: exit code $RC"
  store partial "$TMP/killed.h5" "$TMP/killed.json" || fail "the store left by the dead rank"
  sweep "$TMP/killed-resumed.out" 3 "$TMP/long.yaml" "$TMP/killed.h5"
  expect_rc "the rerun after the dead rank" 0 "$TMP/killed-resumed.out"
  store complete "$TMP/killed.h5" "$TMP/killed.json" || fail "the resumed store"
  store same-results "$TMP/reference.h5" "$TMP/killed.h5" || fail "results differ from the reference"
}

say "qsweep $QSWEEP, model $QSWEEP_DEMO_MODEL, work in $TMP"
start=$SECONDS
"case_$CASE"
say "PASS ($((SECONDS - start)) s)"
