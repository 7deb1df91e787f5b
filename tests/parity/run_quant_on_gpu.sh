#!/usr/bin/env bash
# Quantization on the GPU in one device call (docs/gpu-quant.md): build, the GPU tests (every
# kernel against the CPU reference), the kernel benchmark, and jobs/gpu_quant_check.yaml on a
# made Llama-3.2-1B-shaped model (quantization time, CoQA, perplexity and KL, benchmarks).
#   bash tests/parity/run_quant_on_gpu.sh      (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
(cd build-gpu && ctest -L gpu --output-on-failure) > "$OUT/gpu-tests.log" 2>&1
grep -E "tests passed|FAILED|Failed" "$OUT/gpu-tests.log" | head -20
build-gpu/src/kernels/qsweep_bench_kernels "$OUT/bench_kernels.json" > "$OUT/bench_kernels.log" 2>&1
echo "kernel benchmark exit $?"
TOK=.cache/tokenizers/llama3/tokenizer.json
build-gpu/qsweep make-model --preset llama-3.2-1b --tokenizer $TOK --seed 1 --dtype bf16 \
  --outliers 4 --out /tmp/m1b > "$OUT/make-model.log" 2>&1
python3 tests/parity/replicate_coqa.py data/coqa/coqa_dev_format_sample_10stories.json 500 /tmp/coqa500.json
LLAMA32_1B=/tmp/m1b COQA_DEV=/tmp/coqa500.json timeout 420 mpirun --allow-run-as-root -np 1 \
  build-gpu/qsweep run jobs/gpu_quant_check.yaml --store "$OUT/quant_1b.h5" > "$OUT/sweep.log" 2>&1
echo "sweep exit $?"
grep -E "prepared|FAILED|error" "$OUT/sweep.log" | cut -c1-240 | head -30
build-gpu/qsweep show "$OUT/quant_1b.h5" > "$OUT/show.txt" 2>&1; cat "$OUT/show.txt" | cut -c1-200
