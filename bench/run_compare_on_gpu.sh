#!/usr/bin/env bash
# qsweep against transformers on the GPU machine in one device call: build, make the model,
# bench/compare_hf.py (bf16, fp16, and the bitsandbytes NF4/int8 checkpoints when bitsandbytes
# is importable), results under $OUT (or ./gpu-results):
#   bash bench/run_compare_on_gpu.sh
# with .devdeps/ (../shared/device/README.md) and .cache/ (the Llama-3 tokenizer) carried, as for
# tests/parity/run_on_gpu.sh.
# PRESET=llama-3.1-8b for the 8B shape; BUDGET (seconds, default 480) bounds the comparison so
# the call ends inside the device's 10-minute limit; compare.json is rewritten after every
# config, so a run cut short keeps the configs it finished. Extra arguments go to compare_hf.py
# (e.g. --skip-bnb, --repeats 5).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
PRESET=${PRESET:-llama-3.2-1b}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers",
transformers.__version__)' > "$OUT/versions.txt" 2>&1
python3 -c 'import bitsandbytes; print("bitsandbytes", bitsandbytes.__version__)' \
  >> "$OUT/versions.txt" 2>&1 || echo "bitsandbytes not importable" >> "$OUT/versions.txt"
cat "$OUT/gpu.txt" "$OUT/versions.txt"
MODEL=/tmp/compare-$PRESET
if [ ! -f "$MODEL/model.safetensors" ] && [ ! -f "$MODEL/model.safetensors.index.json" ]; then
  build-gpu/qsweep make-model --preset "$PRESET" --tokenizer .cache/tokenizers/llama3/tokenizer.json \
    --seed 1 --dtype bf16 --out "$MODEL" > "$OUT/make-model.log" 2>&1 \
    || { tail -20 "$OUT/make-model.log"; exit 1; }
fi
PYTHONUNBUFFERED=1 timeout "$BUDGET" python3 bench/compare_hf.py --qsweep build-gpu/qsweep \
  --model "$MODEL" --coqa data/coqa/coqa_dev_format_sample_10stories.json \
  --work /tmp/compare-work-$PRESET --out "$OUT/compare-$PRESET.json" \
  --markdown "$OUT/compare-$PRESET.md" "$@" > "$OUT/compare-$PRESET.log" 2>&1
status=$?
echo "compare_hf.py exit $status"
if [ -f "$OUT/compare-$PRESET.md" ]; then cat "$OUT/compare-$PRESET.md"
else grep -E '^(\||###|GPU|\+)|Error|error' "$OUT/compare-$PRESET.log" | cut -c1-300 | tail -60; fi
exit $status
