#include "qsweep/kernels/launch_overlap.h"

#include <ATen/cuda/CUDAContext.h>

#include <cstdlib>
#include <string_view>

namespace qsweep::cuda {

bool overlapped_launches() {
  const char* env = std::getenv("QSWEEP_PDL");
  const bool off = env && std::string_view(env) == "0";
  return !off && at::cuda::getCurrentDeviceProperties()->major >= 9;
}

}  // namespace qsweep::cuda
