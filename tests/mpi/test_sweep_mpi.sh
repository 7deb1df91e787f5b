#!/usr/bin/env bash
# test_sweep_mpi.sh CASE BUILD_DIR: `qsweep run` end to end under `mpirun -np 3` on the CPU, with
# the tiny demo model (QSWEEP_DEMO_MODEL, else BUILD_DIR/demo-model, made there if missing).
#   three_ranks_match_one   the demo sweep on 3 ranks and on 1 rank: every unit done once in both
#                           stores, and per config the same samples and exactly the same metrics
#                           (same samples, same seeded bootstrap), however units were shared out.
#   kill_and_resume         a longer sweep is killed with SIGKILL (mpirun and every rank) once some
#                           units are done; meanwhile a second writer on its store is refused (exit
#                           2, naming the lock file). The store left is readable and partial; the
#                           rerun completes it: every unit done once, no sample twice, units done
#                           before the kill not run again, results equal to an uninterrupted run.
#   failed_config_isolated  one config's model file is truncated: exit code 1, its units failed
#                           with errors naming the file, the other configs complete, rank 0 lists
#                           the failures; a rerun runs nothing (exit 1); with the model fixed,
#                           `--retry-failed` completes the store (exit 0).
#   calibrated_once         a GPTQ config on 3 ranks: its checkpoint is computed once (one
#                           "quantized" preparation in the store, one "cached in" log line), every
#                           other rank loads it from the cache; the sweep is killed after that and
#                           resumed, and the rerun loads the checkpoint rather than quantizing again.
# Each case works in its own temporary directory, removed when it passes (kept, with the sweeps'
# output shown, when it fails). Processes the case started are killed however it ends.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CASES="three_ranks_match_one kill_and_resume failed_config_isolated calibrated_once"
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

case_failed_config_isolated() {
  local job keys key
  cp -r "$QSWEEP_DEMO_MODEL" "$TMP/broken-model"
  local size
  size=$(stat -c %s "$TMP/broken-model/model.safetensors")
  # An odd byte count half-way: inside a tensor's data, well past the header.
  truncate -s $((size / 2 | 1)) "$TMP/broken-model/model.safetensors"
  say "truncated $TMP/broken-model/model.safetensors from $size to $((size / 2 | 1)) bytes"
  job=$TMP/failing.yaml
  cat >"$job" <<EOF
name: failing
model: \${QSWEEP_DEMO_MODEL}
baseline: fp32
seed: 1234
device: cpu
configs:
  - {name: fp32, dtype: fp32}
  - {name: broken, dtype: bf16, model: $TMP/broken-model}
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
  store failed "$TMP/failing.h5" broken "$TMP/broken-model/model.safetensors" truncated ||
    fail "the broken config's failures are not recorded as they should be"
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

  cp "$QSWEEP_DEMO_MODEL/model.safetensors" "$TMP/broken-model/model.safetensors"
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

say "qsweep $QSWEEP, model $QSWEEP_DEMO_MODEL, work in $TMP"
start=$SECONDS
"case_$CASE"
say "PASS ($((SECONDS - start)) s)"
