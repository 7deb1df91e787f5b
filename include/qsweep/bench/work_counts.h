#pragma once
// How much a decode step reads and how much arithmetic a prefill does: the numerators of the
// benchmark's bandwidth and matmul-rate figures, counted from the model's shapes and stored bytes.
#include <cstdint>

namespace qsweep {

struct Model;

// Bytes one greedy decode step of `batch` rows reads when each row attends over `context` cache
// slots (the new token's included): every projection's stored bytes (lm_head's too, even when it
// is the tied embedding table), the norms, the `batch` embedding rows gathered (not the whole
// table), and the keys and values of `context` slots in every layer.
double decode_step_bytes(const Model& model, int64_t batch, int64_t context);

// Bytes of `steps` decode steps after a cache filled to `filled` slots: step s attends over
// filled + s + 1 slots.
double decode_bytes(const Model& model, int64_t batch, int64_t filled, int64_t steps);

// Floating-point operations of a prefill of `batch` x `tokens` with the logits of the last token
// only: 2 x projection weights x tokens, 2 x lm_head weights per row, and causal attention
// (query i against keys 0..i: 2 x head_dim for the scores and 2 x head_dim for the weighted sum
// of values, per head and pair).
double prefill_flops(const Model& model, int64_t batch, int64_t tokens);

}  // namespace qsweep
