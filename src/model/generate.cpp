#include "qsweep/model/generate.h"

#include "qsweep/model/engine.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <numeric>
#include <optional>

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

void run_batch(const Model& m, const Tokenizer& tok, std::vector<Row>& rows,
               const std::vector<int32_t>& eos, const GenerateOptions& o) {
  const int64_t b = static_cast<int64_t>(rows.size());
  int64_t p = 0;
  for (const auto& r : rows) p = std::max<int64_t>(p, r.prompt->size());
  // Left padding puts every row's last prompt token in the same slot, so decode steps write
  // one shared cache slot per step.
  at::Tensor ids = at::zeros({b, p}, at::kLong), real = at::zeros({b, p}, at::kBool),
             pos = at::zeros({b, p}, at::kLong);
  std::vector<int64_t> next_pos(b);
  for (int64_t i = 0; i < b; ++i) {
    const auto& prompt = *rows[i].prompt;
    const int64_t offset = p - static_cast<int64_t>(prompt.size());
    for (size_t j = 0; j < prompt.size(); ++j) {
      ids[i][offset + j] = prompt[j];
      real[i][offset + j] = true;
      pos[i][offset + j] = static_cast<int64_t>(j);
    }
    next_pos[i] = static_cast<int64_t>(prompt.size());
  }
  KVCache cache = make_kv_cache(m, b, p + o.max_new_tokens);
  const at::Tensor logits = forward(m, ids.to(m.device), real.to(m.device), pos.to(m.device), cache, true);
  DecodeState state{logits.argmax(-1), at::tensor(next_pos, at::kLong).view({b, 1}).to(m.device),
                    at::full({1}, p, at::TensorOptions().dtype(at::kLong).device(m.device))};
  std::optional<Decoder> decoder;  // built after the first token: a batch may need no decode step
  for (int step = 0; step < o.max_new_tokens; ++step) {
    const at::Tensor host = state.tokens.to(at::kCPU);
    const int64_t* tokens = host.data_ptr<int64_t>();
    bool all_done = true;
    for (int64_t i = 0; i < b; ++i) {
      if (!rows[i].done) accept(rows[i], static_cast<int32_t>(tokens[i]), eos, tok, o);
      all_done = all_done && rows[i].done;
    }
    if (all_done) break;
    if (!decoder) decoder.emplace(m, cache, state);
    decoder->step();
  }
}

}  // namespace

std::vector<Generation> generate(const Model& m, const Tokenizer& tok,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& o) {
  c10::InferenceMode inference;
  std::vector<Generation> out(prompts.size());
  if (o.max_new_tokens <= 0) return out;
  // Longest first: similar lengths share a batch, so little compute goes to padding.
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prompts[a].size() > prompts[b].size(); });
  const std::vector<int32_t> eos = eos_ids(m, tok);
  const size_t batch = static_cast<size_t>(std::max(1, o.batch_size));
  for (size_t start = 0; start < order.size(); start += batch) {
    std::vector<Row> rows;
    for (size_t k = start; k < std::min(order.size(), start + batch); ++k)
      rows.push_back(Row{&prompts[order[k]], &out[order[k]], {}, false});
    run_batch(m, tok, rows, eos, o);
  }
  for (auto& g : out) g.text = cut_at_stop(tok.decode(g.tokens, true), o.stop);
  return out;
}

}  // namespace qsweep
