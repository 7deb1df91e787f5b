#pragma once
// The sweep's cache of quantized checkpoints: a GPTQ or AWQ config is computed once, by the
// first rank that needs it, and every other rank and every resumed run loads the result.
//
// CACHE_DIR/<method>-<16 hex>/ is a Hugging Face directory as `qsweep quantize` writes it, plus
// qsweep_cache_key.txt, the text whose sha256 names it: the model's identity, the config's
// preparation keys (the calibration text's sha256, samples, seq_len, seed among them) and the
// tokenizer. It is written into a temporary sibling and renamed into place when complete, under
// an flock on <entry>.lock, so ranks that need it at once wait for the one computing it and a
// killed computation leaves no entry to be mistaken for a finished one. Private to src/sweep.
#include "qsweep/sweep/sweep_spec.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qsweep {

struct CacheEntry {
  std::string dir;
  std::string key;  // the key text
};

// `seq_len` is the calibration window length after capping at the model's context.
CacheEntry cache_entry(const SweepSpec& spec, const PrepConfig& config, int seq_len);
// The baseline's next-token logits on the perplexity text's windows, which every other config's
// KL is measured against: CACHE/kl-baseline-<16 hex>/logits.safetensors (tensor "window.<i>"),
// keyed by the model, the baseline config, the tokenizer and the windows' tokens.
CacheEntry baseline_logits_entry(const SweepSpec& spec, const PrepConfig& baseline,
                                 const std::vector<std::vector<int32_t>>& windows);

// The entry's directory is there and was written for this key.
bool cache_entry_complete(const CacheEntry& entry);
// A directory to write the entry into, emptied; publish_cache_entry renames it into place.
std::string cache_entry_staging(const CacheEntry& entry);
void publish_cache_entry(const CacheEntry& entry, const std::string& staging);

// An exclusive flock on ENTRY.lock, waited for (with a log line saying who holds it).
class CacheLock {
 public:
  explicit CacheLock(const CacheEntry& entry);
  ~CacheLock();
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace qsweep
