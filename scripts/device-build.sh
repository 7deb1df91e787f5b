#!/usr/bin/env bash
# Builds qsweep on the GPU machine (PyTorch's libtorch 2.x + CUDA). That image lacks Boost.Log
# and a few Debian headers; .devdeps/ carries Debian 12's packages for them (see docs/gpu.md).
# Usage: source scripts/device-build.sh   (leaves LD_LIBRARY_PATH set for running the binaries)
#        QSWEEP_DEVICE_TARGET=qsweep source scripts/device-build.sh   (that target only)
source .devdeps/unpack-boost-log.sh .devdeps /tmp/deps >/dev/null
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  $QSWEEP_DEVICE_CMAKE_FLAGS > build-gpu-configure.log 2>&1 || { tail -40 build-gpu-configure.log; return 1 2>/dev/null || exit 1; }
cmake --build build-gpu -j 16 ${QSWEEP_DEVICE_TARGET:+--target $QSWEEP_DEVICE_TARGET} 2>&1 | grep -E "error|Error|FAILED|warning: .*deprecated" | head -40
test -x build-gpu/qsweep
