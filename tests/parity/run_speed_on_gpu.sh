#!/usr/bin/env bash
# The decode-speed figures of docs/performance.md in one device call: build, the GPU tests, the
# kernel benchmark, then `qsweep bench` on a made Llama-3.2-1B-shaped model in bf16 and in each
# data-free quantized format, each in its checkpoint's dtype (--dtype auto) (STACKS="1 0" adds separate projections, QSWEEP_STACK_PROJECTIONS=0,
# for an A/B; PDLS="1 0" likewise for programmatic dependent launch, QSWEEP_PDL=0, in both
# benchmarks), and `qsweep eval` on 500 CoQA-format samples for each EVALS entry model:batch.
# PRESET=llama-3.1-8b measures that shape instead (models $PRESET and $PRESET-q_<quant>);
# TESTS=0 and KERNELS=0 skip the GPU tests and the kernel benchmark; ROUNDS=3 runs the bench
# loop three times (files -r1, -r2, -r3), so that differences between processes show as such.
# SETTINGS="QSWEEP_INT_GROUP_BLOCKS_PER_SM=4 QSWEEP_INT_GROUP_BLOCKS_PER_SM=7" runs the kernel
# benchmark and every bench under each setting in turn (a comma joins several variables; files
# end in the setting's name), for a measurement of a knob in one call.
# QSWEEP names another qsweep binary for quantize, bench and eval (run_ab_on_gpu.sh's copy of
# side A's, run again after side B).
#   bash tests/parity/run_speed_on_gpu.sh        (results under $OUT, or ./gpu-results)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
QSWEEP=${QSWEEP:-build-gpu/qsweep}
mkdir -p "$OUT"
start=$SECONDS
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $((SECONDS - start)) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt"
if [ "${TESTS:-1}" = 1 ]; then
  (cd build-gpu && ctest -L gpu --output-on-failure) > "$OUT/gpu-tests.log" 2>&1
  grep -E "tests passed|Failed|FAILED|\*\*\*" "$OUT/gpu-tests.log" | head -20
fi
# The environment of one SETTINGS entry, and the suffix of its files.
settings_env() { [ "$1" = default ] || tr , '\n' <<< "$1"; }
settings_tag() { [ "$1" = default ] || echo "-${1//[=,]/-}"; }
for setting in ${SETTINGS:-default}; do
  mapfile -t vars < <(settings_env "$setting"); tag=$(settings_tag "$setting")
  for pdl in $([ "${KERNELS:-1}" = 1 ] && echo ${PDLS:-1}); do
    env "${vars[@]}" QSWEEP_PDL=$pdl build-gpu/src/kernels/qsweep_bench_kernels \
      "$OUT/bench-kernels-pdl$pdl$tag.json" > "$OUT/bench-kernels-pdl$pdl$tag.log" 2>&1
    echo "kernel bench pdl=$pdl $setting: exit $?"
  done
done
source tests/parity/study_inputs.sh
QUANTS=${QUANTS:-nf4_dq_bf16 rtn4_g128 int8_fp16}
for q in $QUANTS; do
  [ -d $WORK/${PREFIX}q_$q ] && continue
  s=$SECONDS
  "$QSWEEP" quantize --model $WORK/$BASE --config configs/quant/$q.yaml \
    --out $WORK/${PREFIX}q_$q > "$OUT/quantize-$PREFIX$q.log" 2>&1
  echo "quantize $q: exit $? in $((SECONDS - s)) s (load + quantize + write)"
done
for round in $(seq ${ROUNDS:-1}); do
  for dir in $BASE $(printf "${PREFIX}q_%s " $QUANTS); do
    for setting in ${SETTINGS:-default}; do
      mapfile -t vars < <(settings_env "$setting"); tag=$(settings_tag "$setting")
      for stack in ${STACKS:-1}; do
        for pdl in ${PDLS:-1}; do
          name=$dir-stack$stack-pdl$pdl$tag$([ "${ROUNDS:-1}" = 1 ] || echo -r$round)
          env "${vars[@]}" QSWEEP_STACK_PROJECTIONS=$stack QSWEEP_PDL=$pdl "$QSWEEP" bench \
            --model $WORK/$dir --device cuda --batch-sizes 1 4 8 16 --out "$OUT/bench-$name.json" \
            > "$OUT/bench-$name.log" 2>&1
          echo "bench $name: exit $?"
        done
      done
    done
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
print("model stack | decode ms/token | % copy bw | tok/s b1 b4 b8 b16 | J/token | prefill ms (% matmul)")
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*-stack*.json"))):
    j = json.load(open(f)); s = j["stats"]; med = lambda k: s[k]["median"] if k in s else float("nan")
    print(os.path.basename(f)[6:-5], "| %.3f | %.1f%% |" % (med("decode_ms_per_token"), 100 * j.get("decode_fraction_of_copy_bandwidth", float("nan"))),
          " ".join("%.0f" % med("throughput_b%d" % b) for b in (1, 4, 8, 16)), "| %.3f | %.2f (%.0f%%)" % (
          med("energy_j_per_token"), med("prefill_ms"), 100 * j.get("prefill_fraction_of_matmul_rate", float("nan"))))
PY
# --dtype auto: each checkpoint's own (bf16 for the made model, the config's for a quantized one).
for run in ${EVALS:-m1b:64 m1b:256 q_nf4_dq_bf16:256 q_rtn4_g128:256 q_int8_fp16:256}; do
  dir=${run%%:*} batch=${run##*:}
  s=$SECONDS
  "$QSWEEP" eval --model $WORK/$dir --coqa $WORK/coqa500.json --device cuda \
    --batch-size $batch > "$OUT/eval-$dir-b$batch.log" 2>&1
  echo "eval 500 $dir batch $batch: exit $? in $((SECONDS - s)) s; $(grep -E 'generate:' "$OUT/eval-$dir-b$batch.log" | tail -1 | cut -c1-200)"
done
echo "total $((SECONDS - start)) s"
