#!/usr/bin/env bash
# A against B in one device call, where a fresh build of each would not fit: the working tree as
# it is (A), then with the files under $AB_DIR copied over it (B), each through
# run_speed_on_gpu.sh (its build, GPU tests, kernel benchmark if asked, `qsweep bench` on the
# same made models), then A's `qsweep bench` once more (a-again). B's build is incremental:
# only what the copied files touch is rebuilt. The tables end up in $OUT/a, $OUT/b and
# $OUT/a-again. Prepare AB_DIR on the development machine from a branch (files the branch
# deletes are not removed on B's side):
#   git diff --name-only main BRANCH | while read f; do
#     mkdir -p ab/$(dirname $f); git show BRANCH:$f > ab/$f; done
#   AB_DIR=ab QUANTS=nf4_dq_bf16 bash tests/parity/run_ab_on_gpu.sh   (results under $OUT)
# TESTS, KERNELS, QUANTS and EVALS pass through (defaults: tests on, kernel benchmark off, NF4 +
# double quant, no CoQA run); TESTS_B=0 skips B's tests alone (B a state already tested); with
# KERNELS=1 analysis/kernel_ab.py compares the two kernel benchmarks (kernel-ab.md).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
AB_DIR=${AB_DIR:?AB_DIR must name the folder of B files}
[ -d "$AB_DIR" ] || { echo "AB_DIR=$AB_DIR is not a folder"; exit 2; }
# side NAME TESTS KERNELS EVALS [QSWEEP binary]
side() {
  mkdir -p "$OUT/$1"
  OUT=$OUT/$1 TESTS=$2 KERNELS=$3 EVALS=$4 QSWEEP=${5:-build-gpu/qsweep} PDLS=1 \
    QUANTS=${QUANTS:-nf4_dq_bf16} bash tests/parity/run_speed_on_gpu.sh > "$OUT/$1/speed.txt" 2>&1
  echo "== $1"
  grep -vE '^(quantize|bench) ' "$OUT/$1/speed.txt"
}
# The whole run is one function, read before it starts, and called on the line that exits: B's
# files may include this script, and bash reads a running script from its file as it goes.
main() {
  side a ${TESTS:-1} ${KERNELS:-0} "${EVALS:- }"
  # A's binary (qsweep's libraries link into it statically) for a second A round after B: what
  # moves between the A rounds moved with the GPU's state, not with the code.
  # It stays out of $OUT, which comes back from the device.
  local a_bin
  a_bin=$(mktemp /tmp/qsweep-a.XXXXXX) && install -m 755 build-gpu/qsweep "$a_bin"
  cp -r "$AB_DIR"/. .
  side b ${TESTS_B:-${TESTS:-1}} ${KERNELS:-0} "${EVALS:- }"
  side a-again 0 0 " " "$a_bin"
  rm -f "$a_bin"
  # With the kernel benchmark on both sides, their rows side by side (B / A per kernel and shape).
  if [ "${KERNELS:-0}" = 1 ]; then
    python3 analysis/kernel_ab.py "$OUT/a/bench-kernels-pdl1.json" "$OUT/b/bench-kernels-pdl1.json" \
      --rows 1 4 8 16 > "$OUT/kernel-ab.md" 2>&1
    cat "$OUT/kernel-ab.md"
  fi
}
main; exit
