#pragma once
// q|k|v and gate|up as one projection each. A decode step at small batch is bound by how many
// kernels it launches and how many DRAM round trips each takes, not by its bytes, so three
// products that read one input become one launch (and prefill one GEMM instead of three).
#include "qsweep/model/model.h"

#include <optional>
#include <string>
#include <vector>

namespace qsweep {

// Stacks every layer's q, k, v into LayerWeights::qkv and gate, up into gate_up, along the
// output dimension, and makes the separate projections views into the stacked tensors: nothing
// is held twice, and whatever reads a projection on its own (byte counts, checkpoint writers,
// the per-projection tables) still can. The stacked product equals the separate products side
// by side: every output row keeps its codes and scales. A group whose parts cannot be stacked
// exactly (formats or settings that differ, act-order groups that differ, sizes that would split
// a packed word, an absmax block or a nested block) stays separate; the log says which.
// Run it once a model is ready to run, after quantization: quantizers work per projection.
// QSWEEP_STACK_PROJECTIONS=0 leaves every model unstacked (for measuring what stacking gives).
void stack_projections(Model& model);

// The parts stacked, each part then a view into the result; or nothing, with the reason in
// `why` and the parts untouched, when they do not stack exactly.
std::optional<Linear> stack_linears(const std::vector<Linear*>& parts, std::string& why);

}  // namespace qsweep
