#!/usr/bin/env bash
# The ncu profiles behind docs/performance.md, clocks as they run (--clock-control none):
#  - the tensor-core tile kernel and the GEMV of each format at a few batch rows, every section
#    (stalls, occupancy, DRAM and L2 traffic), as reports and as text;
#  - every kernel of a short bench run of the made Llama-3.2-1B-shaped model, bf16 or the
#    quantized directory DECODE_MODEL names (q_nf4_dq_bf16, ...; time and DRAM bytes per launch,
#    CSV), from which analysis/ncu_decode_step.py sums one decode step.
# Run after a device build (run_speed_on_gpu.sh or `source scripts/device-build.sh`).
#   bash tests/parity/run_ncu_on_gpu.sh   (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
source .devdeps/unpack-boost-log.sh .devdeps /tmp/deps >/dev/null
BENCH=build-gpu/src/kernels/qsweep_bench_kernels
for run in ${KERNELS-nf4_double_quant_tc:16 nf4_double_quant_tc:64 nf4_double_quant_gemv:1 \
                       int4_g128_tc:16 llm_int8_t6_tc:16}; do
  kernel=${run%%:*} m=${run##*:}
  # The first matching launch is the eager call before the graph capture: cold L2, as in decode.
  timeout 120 ncu --clock-control none --set full -k regex:'tile_mma|gemv' -c 1 \
    -f -o "$OUT/ncu-$kernel-m$m" $BENCH /tmp/ncu-bench.json "$kernel" "$m" > "$OUT/ncu-$kernel-m$m.log" 2>&1
  echo "ncu $kernel M=$m: exit $?"
  ncu -i "$OUT/ncu-$kernel-m$m.ncu-rep" --page details > "$OUT/ncu-$kernel-m$m.txt" 2>&1
done
source tests/parity/study_inputs.sh
timeout 240 ncu --clock-control none --csv --page raw \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__grid_size \
  -c ${DECODE_LAUNCHES:-6000} build-gpu/qsweep bench --model $WORK/${DECODE_MODEL:-m1b} --device cuda --batch-sizes 1 \
  --warmup 0 --repeats 1 --prefill-tokens 32 --decode-tokens 16 --throughput-prompt-tokens 32 \
  --out "$OUT/ncu-decode-bench.json" > "$OUT/ncu-decode.csv" 2> "$OUT/ncu-decode.log"
echo "ncu decode run: exit $?"
