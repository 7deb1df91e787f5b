// The BPE model: one pre-token (word) in, ids out. Starts from one symbol per character and
// applies the lowest-ranked merge first (leftmost on ties), as `tokenizers` does, using a heap so
// long words (SentencePiece-style tokenizers have no pre-tokenizer, so a whole line is one word)
// stay O(n log n).
#include "tokenizer_impl.h"

#include <queue>

namespace qsweep::tok {

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

struct Candidate {
  int32_t rank;
  int32_t pos;  // the left symbol
  int32_t id;   // what the pair merges into
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

void push_symbol(std::vector<Symbol>& symbols, int32_t id) {
  const auto n = static_cast<int32_t>(symbols.size());
  symbols.push_back({id, n - 1, -1, true});
  if (n > 0) symbols[n - 1].next = n;
}

// One symbol per character; characters missing from the vocab become <0xNN> byte tokens
// (byte_fallback) or the unk token, consecutive unks fused into one when fuse_unk is set.
std::vector<Symbol> initial_symbols(const Bpe& bpe, std::string_view word) {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool last_was_unk = false;
  std::string ch;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = 0;
    decode_utf8_char(word.substr(i), &len);
    ch.assign(word.data() + i, len);
    i += len;
    if (auto it = bpe.vocab.find(ch); it != bpe.vocab.end()) {
      push_symbol(symbols, it->second);
      last_was_unk = false;
      continue;
    }
    if (bpe.byte_fallback) {
      bool all_bytes = true;
      for (unsigned char b : ch) all_bytes = all_bytes && bpe.byte_ids[b] >= 0;
      if (all_bytes) {
        for (unsigned char b : ch) push_symbol(symbols, bpe.byte_ids[b]);
        last_was_unk = false;
        continue;
      }
    }
    // Without an unk token `tokenizers` drops the character; so do we.
    if (bpe.unk_id < 0) continue;
    if (!(bpe.fuse_unk && last_was_unk)) push_symbol(symbols, bpe.unk_id);
    last_was_unk = true;
  }
  return symbols;
}

}  // namespace

void bpe_encode_word(const Bpe& bpe, std::string_view word, std::vector<int32_t>& out) {
  // ignore_merges (Llama 3): a word that is itself a token is emitted whole, even where the
  // merges would have split it differently.
  if (bpe.ignore_merges) {
    if (auto it = bpe.vocab.find(std::string(word)); it != bpe.vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols = initial_symbols(bpe, word);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    auto it = bpe.merges.find(merge_key(symbols[left].id, symbols[symbols[left].next].id));
    if (it != bpe.merges.end()) heap.push({it->second.rank, left, it->second.id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // A stale entry: one side has merged with something else since it was pushed.
    auto it = bpe.merges.find(merge_key(left.id, symbols[left.next].id));
    if (it == bpe.merges.end() || it->second.id != top.id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace qsweep::tok
