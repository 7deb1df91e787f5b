#!/usr/bin/env bash
# The evaluation and speed figures of docs/gpu.md, in one device call: GPU tests, decode speed of
# the Llama-3.2-1B shape against transformers, and the 500-sample CoQA evaluation in bf16 and
# fp16 (a random-init model, so every answer runs to the 256-token limit: the slowest case).
#   bash tests/parity/run_eval_on_gpu.sh      (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
(cd build-gpu && ctest -L gpu --output-on-failure) > "$OUT/gpu-tests.log" 2>&1
tail -4 "$OUT/gpu-tests.log"
TOK=.cache/tokenizers/llama3/tokenizer.json
PYTHONUNBUFFERED=1 python3 tests/parity/engine_parity.py --qsweep build-gpu/qsweep --tokenizer $TOK \
  --work /tmp/parity --presets llama-3.2-1b --speed-only --out "$OUT/decode_speed.json" \
  > "$OUT/decode_speed.log" 2>&1
echo "decode speed exit $?"; grep -E '^\{' "$OUT/decode_speed.log" | cut -c1-300
python3 tests/parity/replicate_coqa.py data/coqa/coqa_dev_format_sample_10stories.json 500 /tmp/coqa500.json
for dtype in bf16 fp16; do
  build-gpu/qsweep eval --model /tmp/parity/llama-3.2-1b \
    --coqa /tmp/coqa500.json --dtype $dtype --device cuda --batch-size 64 \
    --output "$OUT/eval_$dtype.json" --log-samples "$OUT/eval_$dtype.jsonl" 2>&1 | tail -4
done
