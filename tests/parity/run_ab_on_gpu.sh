#!/usr/bin/env bash
# A against B in one device call, where a fresh build of each would not fit: the working tree as
# it is (A), then with the files under $AB_DIR copied over it (B), each through
# run_speed_on_gpu.sh (its build, GPU tests, kernel benchmark if asked, `qsweep bench` on the
# same made models). B's build is incremental: only what the copied files touch is rebuilt. The
# two tables end up side by side in $OUT/a and $OUT/b. Prepare AB_DIR on the development machine
# from a branch (files the branch deletes are not removed on B's side):
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
side() {
  mkdir -p "$OUT/$1"
  OUT=$OUT/$1 TESTS=$2 KERNELS=${KERNELS:-0} PDLS=1 QUANTS=${QUANTS:-nf4_dq_bf16} \
    EVALS=${EVALS:- } bash tests/parity/run_speed_on_gpu.sh > "$OUT/$1/speed.txt" 2>&1
  echo "== $1"
  grep -vE '^(quantize|bench) ' "$OUT/$1/speed.txt"
}
# The whole run is one function, read before it starts, and called on the line that exits: B's
# files may include this script, and bash reads a running script from its file as it goes.
main() {
  side a ${TESTS:-1}
  cp -r "$AB_DIR"/. .
  side b ${TESTS_B:-${TESTS:-1}}
  # With the kernel benchmark on both sides, their rows side by side (B / A per kernel and shape).
  if [ "${KERNELS:-0}" = 1 ]; then
    python3 analysis/kernel_ab.py "$OUT/a/bench-kernels-pdl1.json" "$OUT/b/bench-kernels-pdl1.json" \
      --rows 1 4 8 16 > "$OUT/kernel-ab.md" 2>&1
    cat "$OUT/kernel-ab.md"
  fi
}
main; exit
