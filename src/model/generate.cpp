#include "qsweep/model/generate.h"

#include "qsweep/model/dequantized_weights.h"
#include "qsweep/model/device_memory.h"
#include "qsweep/model/engine.h"
#include "qsweep/model/linear.h"
#include "qsweep/model/model.h"
#include "qsweep/tokenizer/tokenizer.h"
#include "qsweep/util/log.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <variant>

namespace qsweep {

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::eos: return "eos";
    case StopReason::stop_string: return "stop_string";
    case StopReason::length: return "length";
  }
  return "?";
}

namespace {

struct Row {
  const std::vector<int32_t>* prompt;
  Generation* out;
  std::string raw;   // token bytes so far, searched for stop strings
  bool done = false;
};

std::vector<int32_t> eos_ids(const Model& m, const Tokenizer& tok) {
  std::vector<int32_t> ids(m.config.eos_token_ids.begin(), m.config.eos_token_ids.end());
  if (auto eos = tok.eos_id()) ids.push_back(*eos);
  return ids;
}

bool contains_stop(const std::string& raw, size_t old_size, const std::vector<std::string>& stop) {
  for (const auto& s : stop) {
    const size_t from = old_size >= s.size() ? old_size - s.size() + 1 : 0;
    if (raw.find(s, from) != std::string::npos) return true;
  }
  return false;
}

// Appends one generated token to a row and decides whether the row is finished.
void accept(Row& row, int32_t token, const std::vector<int32_t>& eos, const Tokenizer& tok,
            const GenerateOptions& o) {
  if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
    row.out->stop_reason = StopReason::eos;
    row.done = true;
    return;
  }
  row.out->tokens.push_back(token);
  const size_t old_size = row.raw.size();
  row.raw += tok.token_bytes(token);
  if (contains_stop(row.raw, old_size, o.stop)) {
    row.out->stop_reason = StopReason::stop_string;
    row.done = true;
  } else if (static_cast<int>(row.out->tokens.size()) >= o.max_new_tokens) {
    row.done = true;
  }
}

std::string cut_at_stop(std::string text, const std::vector<std::string>& stop) {
  size_t cut = text.size();
  for (const auto& s : stop) cut = std::min(cut, text.find(s));
  text.resize(cut);
  return text;
}

// Continuous batching: `batch` rows decode together; a row whose prompt finished takes the next
// waiting prompt at once, so a batch never runs as long as its longest member for every row.
// Each row has its own cache slot and RoPE position; newly admitted prompts are prefilled
// together, right-padded, in a cache of their own and copied into their rows, each row then
// decoding on from its own prompt length.
class Batcher {
 public:
  Batcher(const Model& m, const Tokenizer& tok, std::vector<Row>& queue, int64_t batch,
          int64_t capacity, const std::vector<int32_t>& eos, const GenerateOptions& o)
      : m_(m), tok_(tok), queue_(queue), eos_(eos), o_(o), row_of_(batch, -1),
        cache_(make_kv_cache(m, batch, capacity)) {
    const auto on = at::TensorOptions().dtype(at::kLong).device(m.device);
    state_ = {at::zeros({batch, 1}, on), at::zeros({batch, 1}, on), at::zeros({batch}, on)};
  }

  // Where a generate call spent its time, for the log: prefill (admissions) and decode steps.
  struct Stats {
    int64_t steps = 0, prefills = 0;
    double prefill_s = 0, decode_s = 0;
  };

  Stats run() {
    admit();
    while (active() > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      if (!decoder_) decoder_.emplace(m_, cache_, state_);
      decoder_->step();
      const at::Tensor host = state_.tokens.to(at::kCPU);
      stats_.decode_s += seconds_since(t0);
      ++stats_.steps;
      for (size_t r = 0; r < row_of_.size(); ++r)
        if (row_of_[r] >= 0) take(r, static_cast<int32_t>(host.data_ptr<int64_t>()[r]));
      admit();
    }
    return stats_;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  int64_t active() const {
    return std::count_if(row_of_.begin(), row_of_.end(), [](int64_t p) { return p >= 0; });
  }

  // Accepts a row's new token; a finished row is freed, and an idle row's slot goes back to 0
  // so that the steps it idles through stay inside the cache.
  void take(size_t r, int32_t token) {
    Row& row = queue_[row_of_[r]];
    accept(row, token, eos_, tok_, o_);
    if (!row.done) return;
    row_of_[r] = -1;
    state_.slot[static_cast<int64_t>(r)].fill_(0);
  }

  // Fills free rows with waiting prompts until none is free or none waits; a prompt whose
  // first token already ends it frees its row again at once.
  void admit() {
    while (next_ < queue_.size()) {
      std::vector<int64_t> rows;
      for (size_t r = 0; r < row_of_.size() && next_ + rows.size() < queue_.size(); ++r)
        if (row_of_[r] < 0) rows.push_back(static_cast<int64_t>(r));
      if (rows.empty()) return;
      prefill(rows);
    }
  }

  void prefill(const std::vector<int64_t>& rows) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t g = static_cast<int64_t>(rows.size());
    int64_t p = 0;
    for (int64_t i = 0; i < g; ++i) p = std::max<int64_t>(p, queue_[next_ + i].prompt->size());
    std::vector<int64_t> ids(g * p, 0), lengths(g);
    for (int64_t i = 0; i < g; ++i) {
      const auto& prompt = *queue_[next_ + i].prompt;
      std::copy(prompt.begin(), prompt.end(), ids.begin() + i * p);
      lengths[i] = static_cast<int64_t>(prompt.size());
    }
    const at::Tensor length = at::tensor(lengths, at::kLong).to(m_.device);
    KVCache fresh = make_kv_cache(m_, g, p);
    const at::Tensor first =
        forward_right_padded(m_, at::tensor(ids, at::kLong).view({g, p}).to(m_.device), length, fresh)
            .argmax(-1, /*keepdim=*/true);
    const at::Tensor index = at::tensor(rows, at::kLong).to(m_.device);
    for (size_t l = 0; l < cache_.k.size(); ++l) {
      cache_.k[l].narrow(2, 0, p).index_copy_(0, index, fresh.k[l]);
      cache_.v[l].narrow(2, 0, p).index_copy_(0, index, fresh.v[l]);
    }
    cache_.key_mask.index_fill_(0, index, false);
    cache_.key_mask.narrow(1, 0, p).index_copy_(0, index, fresh.key_mask);
    state_.tokens.index_copy_(0, index, first);
    state_.positions.index_copy_(0, index, length.view({g, 1}));
    state_.slot.index_copy_(0, index, length);
    const at::Tensor host = first.to(at::kCPU);
    stats_.prefill_s += seconds_since(t0);
    ++stats_.prefills;
    for (int64_t i = 0; i < g; ++i) {
      row_of_[rows[i]] = static_cast<int64_t>(next_++);
      take(rows[i], static_cast<int32_t>(host.data_ptr<int64_t>()[i]));
    }
  }

  const Model& m_;
  const Tokenizer& tok_;
  std::vector<Row>& queue_;
  const std::vector<int32_t>& eos_;
  const GenerateOptions& o_;
  size_t next_ = 0;                // the first prompt of the queue not yet admitted
  std::vector<int64_t> row_of_;    // the queue index each cache row decodes, -1 when free
  KVCache cache_;
  DecodeState state_;
  std::optional<Decoder> decoder_;  // built on the first step: the prompts may need none
  Stats stats_;
};

// Whether dense copies of the model's quantized projections fit in a quarter of the memory the
// device has free: then a call keeps them (DequantizedWeights) rather than dequantizing each
// weight for every prefill and every decode step past the fused kernels' batch.
bool dequantized_weights_fit(const Model& m) {
  int64_t elements = 0;
  for (const NamedProjection& p : projections(m))
    if (!std::holds_alternative<DenseWeight>(p.linear->weight))
      elements += linear_in_features(*p.linear) * linear_out_features(*p.linear);
  if (elements == 0) return false;
  const int64_t bytes = elements * (m.device.is_cuda() ? 2 : 4);  // compute dtype / float32
  return bytes <= available_memory_bytes(m.device) / 4;
}

}  // namespace

std::vector<Generation> generate(const Model& m, const Tokenizer& tok,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& o) {
  c10::InferenceMode inference;
  std::vector<Generation> out(prompts.size());
  if (o.max_new_tokens <= 0 || prompts.empty()) return out;
  // Longest first: the prompts admitted together are of similar lengths, so little of their
  // prefill goes to padding, and the longest are not left for the end.
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prompts[a].size() > prompts[b].size(); });
  std::vector<Row> queue;
  for (size_t k : order) queue.push_back(Row{&prompts[k], &out[k], {}, false});
  const std::vector<int32_t> eos = eos_ids(m, tok);
  const int64_t batch = std::min<int64_t>(std::max(1, o.batch_size), queue.size());
  const int64_t capacity = static_cast<int64_t>(prompts[order.front()].size()) + o.max_new_tokens;
  std::optional<DequantizedWeights> dense;
  if (dequantized_weights_fit(m)) dense.emplace();
  const auto stats = Batcher(m, tok, queue, batch, capacity, eos, o).run();
  log_info("generate: {} prompts, {} rows: {} prefills in {:.2f} s, {} decode steps in {:.2f} s{}",
           prompts.size(), batch, stats.prefills, stats.prefill_s, stats.steps, stats.decode_s,
           dense ? fmt::format(" ({} dequantized weights kept)", dense->size()) : "");
  for (auto& g : out) g.text = cut_at_stop(tok.decode(g.tokens, true), o.stop);
  return out;
}

}  // namespace qsweep
