#pragma once
// Batched greedy generation. Free of libtorch types so evaluation and the CLI include it cheaply.
#include <cstdint>
#include <string>
#include <vector>

namespace qsweep {

struct Model;
class Tokenizer;

enum class StopReason { eos, stop_string, length };
const char* stop_reason_name(StopReason reason);

struct GenerateOptions {
  int max_new_tokens = 256;
  std::vector<std::string> stop;   // cut the text at the first of these, as lm-eval's `until`
  // Prompts per batch. In fp32 the results do not depend on it; in fp16/bf16 on a GPU, greedy
  // tokens can change with it (cuBLAS picks kernels by shape, so rounding differs).
  int batch_size = 8;
};

struct Generation {
  std::vector<int32_t> tokens;     // generated ids, EOS excluded
  std::string text;                // decoded, cut before the first stop string
  StopReason stop_reason = StopReason::length;
};

// Greedy continuation of each prompt (token ids, BOS already applied as the caller wants).
// Stops a row at an EOS id of the model or tokenizer, at a stop string, or at max_new_tokens.
// Prompts are batched by length (continuous batching, prefilled right-padded), and the results
// returned in input order.
std::vector<Generation> generate(const Model& model, const Tokenizer& tokenizer,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& options);

}  // namespace qsweep
