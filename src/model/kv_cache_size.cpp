#include "qsweep/model/kv_cache_size.h"

namespace qsweep {

int64_t kv_cache_bytes(const ModelConfig& c, int64_t batch, int64_t tokens, int element_bytes) {
  return 2 * int64_t(c.num_layers) * batch * c.num_kv_heads * tokens * c.head_dim * element_bytes;
}

}  // namespace qsweep
