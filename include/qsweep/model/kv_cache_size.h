#pragma once
// How much memory a KV cache takes, from config.json alone: what the checks before a sweep or a
// generation compare with the device's available memory (bench/device.h).
#include "qsweep/model/model_config.h"

#include <cstdint>

namespace qsweep {

// Bytes of a KV cache holding `tokens` positions of `batch` sequences: keys and values of every
// layer, `element_bytes` each (as engine.h allocates it).
int64_t kv_cache_bytes(const ModelConfig& config, int64_t batch, int64_t tokens, int element_bytes);

}  // namespace qsweep
