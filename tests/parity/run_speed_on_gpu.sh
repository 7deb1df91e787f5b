#!/usr/bin/env bash
# The decode-speed figures of docs/performance.md in one device call: build, the GPU tests, then
# `qsweep bench` on a made Llama-3.2-1B-shaped model in bf16 and in each data-free quantized
# format, with the fused decode kernels and with QSWEEP_FUSED_DECODE=0 (the libtorch operations),
# and `qsweep eval` on 500 CoQA-format samples with each.
#   bash tests/parity/run_speed_on_gpu.sh        (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
start=$SECONDS
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $((SECONDS - start)) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt"
(cd build-gpu && ctest -L gpu --output-on-failure) > "$OUT/gpu-tests.log" 2>&1
grep -E "tests passed|Failed|FAILED|\*\*\*" "$OUT/gpu-tests.log" | head -20
source tests/parity/study_inputs.sh
QUANTS=${QUANTS:-nf4_dq_bf16 rtn4_g128 int8_fp16}
for q in $QUANTS; do
  [ -d $WORK/q_$q ] && continue
  s=$SECONDS
  build-gpu/qsweep quantize --model $WORK/m1b --config configs/quant/$q.yaml --out $WORK/q_$q \
    > "$OUT/quantize-$q.log" 2>&1
  echo "quantize $q: exit $? in $((SECONDS - s)) s (load + quantize + write)"
done
for dir in m1b $(printf 'q_%s ' $QUANTS); do
  for fused in 1 0; do
    QSWEEP_FUSED_DECODE=$fused build-gpu/qsweep bench --model $WORK/$dir --device cuda \
      --batch-sizes 1 4 8 16 --out "$OUT/bench-$dir-fused$fused.json" > "$OUT/bench-$dir-fused$fused.log" 2>&1
    echo "bench $dir fused=$fused: $(tail -1 "$OUT/bench-$dir-fused$fused.log" | cut -c1-200)"
  done
done
for fused in 1 0; do
  s=$SECONDS
  QSWEEP_FUSED_DECODE=$fused build-gpu/qsweep eval --model $WORK/m1b --coqa $WORK/coqa500.json \
    --device cuda --batch-size 64 > "$OUT/eval-fused$fused.log" 2>&1
  echo "eval 500 bf16 fused=$fused: exit $? in $((SECONDS - s)) s; $(grep -iE 'samples|tokens/s|em ' "$OUT/eval-fused$fused.log" | tail -2 | cut -c1-200)"
done
echo "total $((SECONDS - start)) s"
