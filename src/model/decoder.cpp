// The decode loop's CUDA graph. A 1B-parameter model at batch 1 runs some 400 small kernels per
// token; launched one by one from the host they, not the GPU, set the pace. Captured once per
// batch and replayed, a token costs one launch.
#include "qsweep/model/engine.h"

#include <torch/version.h>

#include <cstdlib>
#include <cstring>

#if defined(QSWEEP_CUDA) && TORCH_VERSION_MAJOR >= 2
#define QSWEEP_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace qsweep {

struct Decoder::Graph {
#ifdef QSWEEP_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
};

#ifdef QSWEEP_CUDA_GRAPHS
namespace {
bool graphs_wanted(const Model& m) {
  const char* env = std::getenv("QSWEEP_CUDA_GRAPHS");
  return m.device.is_cuda() && !(env && std::strcmp(env, "0") == 0);
}
}  // namespace
#endif

Decoder::Decoder(const Model& model, KVCache& cache, DecodeState& state)
    : model_(model), cache_(cache), state_(state) {
#ifdef QSWEEP_CUDA_GRAPHS
  if (!graphs_wanted(model)) return;
  const c10::DeviceIndex device = model.device.index();
  at::cuda::getCurrentCUDAStream(device).synchronize();  // prefill's writes are in place
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device);
  c10::cuda::CUDAStreamGuard guard(side);
  // One eager step first, so cuBLAS and the allocator set themselves up outside the capture;
  // its effects are undone (the cache slot it wrote is written again by the first real step).
  const at::Tensor tokens = state.tokens.clone(), positions = state.positions.clone(),
                   slot = state.slot.clone(), mask = cache.key_mask.clone();
  decode_step(model, cache, state);
  state.tokens.copy_(tokens);
  state.positions.copy_(positions);
  state.slot.copy_(slot);
  cache.key_mask.copy_(mask);
  graph_ = std::make_unique<Graph>();
  graph_->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
  decode_step(model, cache, state);
  graph_->graph.capture_end();
  side.synchronize();
#endif
}

Decoder::~Decoder() = default;

void Decoder::step() {
#ifdef QSWEEP_CUDA_GRAPHS
  if (graph_) {
    graph_->graph.replay();
    return;
  }
#endif
  decode_step(model_, cache_, state_);
}

}  // namespace qsweep
