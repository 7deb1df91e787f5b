#!/usr/bin/env bash
# The prototype's study (jobs/llama32_1b_coqa.yaml: 12 configs incl. GPTQ and AWQ, 500 CoQA-format
# samples, benchmarks, perplexity and KL) on a made Llama-3.2-1B-shaped model, on one GPU, within
# device calls of limited length: each call runs for at most BUDGET seconds and a later call
# resumes the same store (build-gpu/ outlives calls), as a killed sweep on a cluster would.
#   BUDGET=420 bash tests/parity/run_study_on_gpu.sh     (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
BUDGET=${BUDGET:-420}
mkdir -p "$OUT"
start=$SECONDS
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $((SECONDS - start)) s"
WORK=$PWD/build-gpu/study     # absolute: the job resolves relative paths against its own dir
mkdir -p $WORK
TOK=.cache/tokenizers/llama3/tokenizer.json
[ -s $WORK/m1b/model.safetensors ] || build-gpu/qsweep make-model --preset llama-3.2-1b \
  --tokenizer $TOK --seed 1 --dtype bf16 --outliers 4 --out $WORK/m1b > "$OUT/make-model.log" 2>&1
[ -s $WORK/coqa500.json ] || python3 tests/parity/replicate_coqa.py \
  data/coqa/coqa_dev_format_sample_10stories.json 500 $WORK/coqa500.json
LLAMA32_1B=$WORK/m1b COQA_DEV=$WORK/coqa500.json timeout -s TERM "$BUDGET" mpirun --allow-run-as-root \
  -np 1 build-gpu/qsweep run jobs/llama32_1b_coqa.yaml --store $WORK/study.h5 >> "$OUT/sweep.log" 2>&1
echo "sweep exit $? after $((SECONDS - start)) s"
grep -E "prepared|output error|quantized on|cached in|FAILED|error" "$OUT/sweep.log" | cut -c1-260 | tail -40
cp $WORK/study.h5 "$OUT/"
build-gpu/qsweep show $WORK/study.h5 > "$OUT/show.txt" 2>&1; cut -c1-220 "$OUT/show.txt" | head -60
