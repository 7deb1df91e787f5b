#include "qsweep/kernels/cuda_check.h"

#include "qsweep/util/error.h"

namespace qsweep {

void cuda_failed(cudaError_t status, const char* call, const char* file, int line) {
  throw DeviceError(fmt::format("{}:{}: {} failed: {} ({})", file, line, call,
                                cudaGetErrorString(status), cudaGetErrorName(status)));
}

}  // namespace qsweep
