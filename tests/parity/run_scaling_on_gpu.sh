#!/usr/bin/env bash
# Issue 15's scaling run: the study (jobs/llama32_1b_coqa.yaml on the made Llama-3.2-1B-shaped
# model and 500 CoQA-format stories of study_inputs.sh) on 1, 2, 4 and 8 GPUs of one host, one
# rank per GPU, each into a store and GPTQ/AWQ cache of its own, then analysis/scaling.py over
# them. The four runs take about 25 min, more than one device call (the 1-GPU run alone about
# 13 min on an H200): each call works for at most BUDGET seconds, the next call resumes the run
# it stopped (SIGTERM: that store keeps a "stopped" timing segment, the resume appends another,
# and scaling.py adds them up in a row "all"), and runs already complete are skipped.
#   BUDGET=560 NPS="1 2 4 8" bash tests/parity/run_scaling_on_gpu.sh   (results under $OUT)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-results}
BUDGET=${BUDGET:-560}
NPS=${NPS:-1 2 4 8}
mkdir -p "$OUT"
start=$SECONDS
source scripts/device-build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build $((SECONDS - start)) s"
source tests/parity/study_inputs.sh
export NCCL_NVLS_ENABLE=0   # never NVLink multicast on these machines
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
(( gpus > 0 )) || { echo "nvidia-smi lists no GPU"; exit 1; }
stores=()
for np in $NPS; do
  (( np <= gpus )) || { echo "-np $np skipped: $gpus GPU(s) here"; continue; }
  dir=$WORK/scaling/np$np
  mkdir -p "$dir"
  if ! grep -q "all [0-9]* units done" "$dir/sweep.log" 2>/dev/null; then
    left=$((BUDGET - (SECONDS - start)))
    (( left > 60 )) || { echo "-np $np: no time left in this call; call again to go on"; break; }
    LLAMA32_1B=$WORK/m1b COQA_DEV=$WORK/coqa500.json timeout -s TERM -k 60 "$left" \
      mpirun --allow-run-as-root -np "$np" -x NCCL_NVLS_ENABLE \
      build-gpu/qsweep run jobs/llama32_1b_coqa.yaml --store "$dir/study.h5" >> "$dir/sweep.log" 2>&1
    echo "-np $np: exit $? after $((SECONDS - start)) s"
  fi
  grep -A$((np + 2)) "where the time went" "$dir/sweep.log" | tail -n $((np + 2))
  cp "$dir/study.h5" "$OUT/np$np.h5" && stores+=("$OUT/np$np.h5")
done
# Debian's /usr/bin/python3 has h5py and pandas; elsewhere run it on the copies in $OUT.
/usr/bin/python3 analysis/scaling.py "${stores[@]}" --out "$OUT/scaling" ||
  echo "analysis/scaling.py failed here: run it on $OUT/np*.h5 where h5py and pandas are"
