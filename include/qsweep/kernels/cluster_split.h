#pragma once
// How a GEMV splits its input channels across the blocks of a thread-block cluster
// (src/kernels/int_group.cu): plain arithmetic, without CUDA, so that the rule can be tested
// on any machine.
#include <algorithm>
#include <cstdint>

namespace qsweep::cuda {

// At most the portable cluster size.
constexpr int64_t kMaxClusterSplit = 8;

struct ClusterSplit {
  int64_t blocks;    // blocks of a cluster along `in`
  int64_t channels;  // input channels per block (the last block may have fewer)
};

// Splits `in` channels for `tiles` column tiles so that the grid gives each of `multiprocessors`
// about `blocks_per_sm` blocks (clusters need compute capability 9: without them, one block),
// each block a whole number of `grain` channels. An empty weight (no channels or no tiles) gets
// a split too, with no blocks where there are no channels, so that its caller may plan before
// it returns early.
inline ClusterSplit cluster_split(int64_t in, int64_t tiles, int64_t multiprocessors,
                                  bool clusters, int64_t blocks_per_sm, int64_t grain) {
  const int64_t aim = blocks_per_sm * multiprocessors, per_tile = std::max<int64_t>(tiles, 1);
  const int64_t split =
      std::clamp<int64_t>(clusters ? (aim + per_tile - 1) / per_tile : 1, 1, kMaxClusterSplit);
  const int64_t channels =
      std::max<int64_t>(grain, ((in + split - 1) / split + grain - 1) / grain * grain);
  return {(in + channels - 1) / channels, channels};
}

}  // namespace qsweep::cuda
