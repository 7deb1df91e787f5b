#!/usr/bin/env bash
# The prototype's study (jobs/llama32_1b_coqa.yaml: 12 configs incl. GPTQ and AWQ, 500 CoQA-format
# samples, benchmarks, perplexity and KL) on a made Llama-3.2-1B-shaped model, on one GPU, within
# device calls of limited length: each call runs for at most BUDGET seconds and a later call
# resumes the same store, as a killed sweep on a cluster would. The store is build-gpu/study/
# study.h5; a call on a fresh machine resumes it when it is carried there (the made model is
# made again, bit for bit, from its seed). Only the qsweep executable is built.
#   BUDGET=420 bash tests/parity/run_study_on_gpu.sh     (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
BUDGET=${BUDGET:-420}
mkdir -p "$OUT"
start=$SECONDS
QSWEEP_DEVICE_TARGET=qsweep source scripts/device-build.sh > "$OUT/build.log" 2>&1 \
  || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $((SECONDS - start)) s"
source tests/parity/study_inputs.sh
LLAMA32_1B=$WORK/m1b COQA_DEV=$WORK/coqa500.json timeout -s TERM "$BUDGET" mpirun --allow-run-as-root \
  -np 1 build-gpu/qsweep run jobs/llama32_1b_coqa.yaml --store $WORK/study.h5 >> "$OUT/sweep.log" 2>&1
echo "sweep exit $? after $((SECONDS - start)) s"
grep -E "prepared|cached in|FAILED|error|units done" "$OUT/sweep.log" | cut -c1-220 | tail -30
cp $WORK/study.h5 "$OUT/"
build-gpu/qsweep show $WORK/study.h5 > "$OUT/show.txt" 2>&1
