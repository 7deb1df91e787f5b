#pragma once
// Hugging Face `tokenizer.json` tokenizers as Llama-family models ship them: byte-level BPE with a
// regex pre-tokenizer (Llama 3) and SentencePiece-style BPE with byte fallback (Llama 2,
// TinyLlama). Ids equal those of the `tokenizers` library; see tests/parity/.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qsweep {

class Tokenizer {
 public:
  // tokenizer_config_json may be empty; it supplies add_bos_token, bos/eos token names and
  // clean_up_tokenization_spaces when present.
  static Tokenizer from_files(const std::string& tokenizer_json,
                              const std::string& tokenizer_config_json = "");
  // Reads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json.
  static Tokenizer from_model_dir(const std::string& dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special_tokens applies the post-processor (e.g. Llama 3's <|begin_of_text|>), as
  // `tokenizers` does with add_special_tokens=True.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // As transformers' decode(ids, skip_special_tokens=...), including
  // clean_up_tokenization_spaces when the tokenizer config asks for it.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;
  // The raw bytes one token stands for, before any decoder clean-up; empty for special tokens.
  // Concatenated, they let generation look for stop strings without re-decoding.
  std::string token_bytes(int32_t id) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;
  size_t vocab_size() const;                  // model vocab plus added tokens
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;      // tokenizer_config's eos_token
  std::string source() const;                 // the tokenizer.json path, for error messages

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsweep
