#!/usr/bin/env bash
# Runs every test: the GoogleTest suite (MPI tests included) through ctest, then the Python
# analysis tests. GPU-labelled tests are skipped where no GPU is present, and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd build
ctest --output-on-failure -j2 --timeout 900
