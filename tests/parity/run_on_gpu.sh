#!/usr/bin/env bash
# Everything the GPU figures in docs/gpu.md come from, in one device call: build, GPU tests,
# tokenizer parity with HF tokenizers, engine parity and decode speed against transformers.
# Usage on the GPU machine (results under $OUT, or ./gpu-results):
#   bash tests/parity/run_on_gpu.sh
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt"
(cd build-gpu && ctest -L gpu --output-on-failure) > "$OUT/gpu-tests.log" 2>&1
tail -3 "$OUT/gpu-tests.log"
TOK=.cache/tokenizers/llama3/tokenizer.json
python3 tests/parity/tokenizer_parity.py --qsweep build-gpu/qsweep --tokenizer $TOK \
  --coqa data/coqa/coqa_dev_format_sample_10stories.json --n-random 300 \
  --out "$OUT/tokenizer_parity.json" > "$OUT/tokenizer_parity.log" 2>&1
echo "tokenizer parity exit $?"; tail -3 "$OUT/tokenizer_parity.log"
PYTHONUNBUFFERED=1 python3 tests/parity/engine_parity.py --qsweep build-gpu/qsweep --tokenizer $TOK \
  --work /tmp/parity --out "$OUT/engine_parity.json" > "$OUT/engine_parity.log" 2>&1
echo "engine parity exit $?"; grep -E '^\{' "$OUT/engine_parity.log" | cut -c1-400
