#!/usr/bin/env bash
# Whether a change to the CUDA sources leaves the kernels they compile to as they were, on a
# machine without a GPU: each .cu file (those named, or those under src/kernels that differ from
# REV, headers counted as changing every file) is compiled to sm_90 PTX at REV and in the working
# tree and compared kernel by kernel (scripts/ptx_kernels.py). Unchanged PTX is unchanged
# behaviour and speed, so a refactor that passes needs no device time to land.
#   bash scripts/same_ptx.sh [REV] [src/kernels/X.cu ...]      (REV: HEAD by default)
# Needs nvcc (NVCC=..., default /usr/local/cuda/bin/nvcc) and libtorch's headers, CPU-only ones
# will do (the one CUDA build header they lack is written to a scratch include folder).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}; shift || true
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
torch_inc=${TORCH_INCLUDE:-/usr/include}
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/inc/c10/cuda/impl" "$scratch/rev"
[ -e "$torch_inc/c10/cuda/impl/cuda_cmake_macros.h" ] ||
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$scratch/inc/c10/cuda/impl/cuda_cmake_macros.h"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  changed=$(git diff --name-only "$rev" -- src/kernels include/qsweep/kernels)
  if grep -qvE '\.cu$' <<< "$changed"; then files=(src/kernels/*.cu); else files=($changed); fi
fi
[ ${#files[@]} -gt 0 ] && [ -n "${files[0]}" ] || { echo "no CUDA source differs from $rev"; exit 0; }
git archive "$rev" src/kernels include | tar -x -C "$scratch/rev"
ptx() {  # source root, file, output
  "$nvcc" -std=c++17 -arch=sm_90 -O3 -ptx -I"$scratch/inc" -I"$1/include" -I"$1/src/kernels" \
    -I"$torch_inc" -I"$torch_inc/torch/csrc/api/include" "$1/$2" -o "$3"
}
status=0
for f in "${files[@]}"; do
  b=$(basename "$f" .cu)
  ptx "$scratch/rev" "$f" "$scratch/$b.before.ptx" & ptx . "$f" "$scratch/$b.after.ptx"; wait
  echo "$f:"
  python3 scripts/ptx_kernels.py "$scratch/$b.before.ptx" "$scratch/$b.after.ptx" || status=1
done
exit $status
