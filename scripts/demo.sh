#!/usr/bin/env bash
# The embedded default: sets up and builds qsweep (scripts/setup.sh), makes a tiny random-init
# Llama with the real Llama-3 tokenizer, and runs jobs/demo.yaml (several configs over the
# shipped CoQA sample) on 3 MPI ranks on the CPU, then prints the results table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QSWEEP_DEMO_MODEL=${QSWEEP_DEMO_MODEL:-$PWD/build/demo-model}
if [ ! -s "$QSWEEP_DEMO_MODEL/model.safetensors" ]; then
  build/qsweep make-model --preset tiny --tokenizer .cache/tokenizers/llama3/tokenizer.json \
    --seed 1 --init-std 0.2 --out "$QSWEEP_DEMO_MODEL"
fi
RANKS=${RANKS:-3}
MPIRUN=(mpirun --oversubscribe -np "$RANKS")
[ "$(id -u)" -ne 0 ] || MPIRUN+=(--allow-run-as-root)
# Rank 0 prints the results table at the end; `build/qsweep show jobs/demo.h5` prints it again.
# A second run resumes (nothing left to do); delete jobs/demo.h5 to start over.
exec "${MPIRUN[@]}" build/qsweep run jobs/demo.yaml "$@"
