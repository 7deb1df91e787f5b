#include "qsweep/model/format_int_group.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>

#include <cstdint>

namespace qsweep {
namespace {

void check_bits(int bits) { check_int_group_bits("int-group", bits); }

uint32_t code_mask(int bits) { return (uint32_t(1) << bits) - 1; }

// Where code k of a lane lives in its little-endian bit stream: word k * bits / 32 from bit
// k * bits % 32; a 3-bit code whose bits run past a word continues at bit 0 of the next.
struct BitPositions {
  at::Tensor word, shift;   // [n] int64 on the device
  at::Tensor crosses;       // [n] bool: the code continues in word + 1
};

BitPositions bit_positions(int64_t n, int bits, const at::Device& device) {
  const at::Tensor bit = at::arange(n, at::TensorOptions().dtype(at::kLong).device(device)) * bits;
  const at::Tensor shift = bit.remainder(32);
  return {bit.div(32, "floor"), shift, shift + bits > 32};
}

constexpr int64_t kWordMask = 0xffffffffLL;

// Words held as int64 in [0, 2^32) back to int32 with the same bits.
at::Tensor as_int32_words(const at::Tensor& words) {
  return at::where(words >= (int64_t(1) << 31), words - (int64_t(1) << 32), words).to(at::kInt);
}

}  // namespace

void check_int_group_bits(const std::string& who, int bits) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    fail("{} bits must be 2, 3, 4 or 8, got {}", who, bits);
}

int64_t int_group_columns(const std::string& who, int group_size, int64_t in) {
  if (group_size == -1) return in;
  if (group_size <= 0)
    fail("{} group_size must be positive, or -1 for one group per output row, got {}", who,
         group_size);
  if (in % group_size != 0)
    fail("{} group_size {} does not divide the {} input features", who, group_size, in);
  return group_size;
}

at::Tensor pack_int_codes(const at::Tensor& codes, int bits, int64_t dim) {
  check_bits(bits);
  TORCH_CHECK(codes.dim() == 2 && codes.scalar_type() == at::kInt,
              "pack_int_codes: codes must be a 2-D int32 tensor");
  const int64_t n = codes.size(dim);
  if (n * bits % 32 != 0)
    fail("pack_int_codes: {} codes of {} bits along dim {} do not fill whole int32 words "
         "(need a multiple of {})", n, bits, dim, bits == 3 ? 32 : 32 / bits);
  // Tensor operations rather than a loop, so packing runs where the codes are (a GPU packs a
  // model's worth in milliseconds). Codes have disjoint bits, so adding them is OR-ing them.
  const at::Tensor lanes = codes.movedim(dim, 1).to(at::kLong);   // [lanes, n]
  const int64_t max_code = code_mask(bits);
  if (lanes.numel() > 0 && (lanes.min().item<int64_t>() < 0 || lanes.max().item<int64_t>() > max_code))
    fail("pack_int_codes: codes must lie in [0, {}] for {} bits", max_code, bits);
  const BitPositions at_bit = bit_positions(n, bits, codes.device());
  at::Tensor words = at::zeros({lanes.size(0), n * bits / 32}, lanes.options());
  const auto expand = [&](const at::Tensor& index) { return index.expand_as(lanes); };
  words.scatter_add_(1, expand(at_bit.word), lanes.bitwise_left_shift(at_bit.shift).bitwise_and(kWordMask));
  const at::Tensor high = at::where(at_bit.crosses, lanes.bitwise_right_shift(32 - at_bit.shift),
                                    at::zeros_like(lanes));
  words.scatter_add_(1, expand(at::clamp_max(at_bit.word + 1, words.size(1) - 1)), high);
  return as_int32_words(words).movedim(1, dim).contiguous();
}

at::Tensor unpack_int_codes(const at::Tensor& packed, int bits, int64_t dim) {
  check_bits(bits);
  TORCH_CHECK(packed.dim() == 2 && packed.scalar_type() == at::kInt,
              "unpack_int_codes: packed must be a 2-D int32 tensor");
  const at::Tensor words = packed.movedim(dim, 1).to(at::kLong).bitwise_and(kWordMask);
  const int64_t n = words.size(1) * 32 / bits;
  const BitPositions at_bit = bit_positions(n, bits, packed.device());
  const at::Tensor low = words.index_select(1, at_bit.word).bitwise_right_shift(at_bit.shift);
  const at::Tensor next = words.index_select(1, at::clamp_max(at_bit.word + 1, words.size(1) - 1));
  const at::Tensor high = at::where(at_bit.crosses, next.bitwise_left_shift(32 - at_bit.shift),
                                    at::zeros_like(next));
  return low.bitwise_or(high).bitwise_and(int64_t(code_mask(bits))).to(at::kInt).movedim(1, dim).contiguous();
}

IntGroupWeight make_int_group_weight(const at::Tensor& codes, const at::Tensor& scales,
                                     const at::Tensor& zero_points, const at::Tensor& g_idx,
                                     int bits, int group_size, bool sym, at::ScalarType dtype) {
  check_bits(bits);
  IntGroupWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.sym = sym;
  w.out = codes.size(0);
  w.in = codes.size(1);
  const int64_t per_word = bits == 3 ? 32 : 32 / bits;
  if (w.in % per_word != 0 || w.out % per_word != 0)
    fail("a {}-bit int-group weight needs in and out features divisible by {}, got {} x {}",
         bits, per_word, w.out, w.in);
  w.qweight = pack_int_codes(codes.to(at::kInt).t(), bits, 0);
  // Stored as zero - 1 in `bits` bits, as GPTQ checkpoints hold them.
  const at::Tensor stored = at::bitwise_and(zero_points.to(at::kInt) - 1, int64_t(code_mask(bits)));
  w.zeros = pack_int_codes(stored, bits, 1);
  w.scales = scales.to(dtype).contiguous();
  w.g_idx = g_idx.to(at::kInt).contiguous();
  w.sequential_groups = int_group_sequential(w.g_idx, group_size);
  return w;
}

bool int_group_sequential(const at::Tensor& g_idx, int64_t group_size) {
  const at::Tensor expected = at::arange(g_idx.numel(), at::kLong).div(group_size, "floor");
  return g_idx.cpu().to(at::kLong).equal(expected);
}

at::Tensor int_group_zero_points(const IntGroupWeight& w) {
  const at::Tensor stored = unpack_int_codes(w.zeros.cpu(), w.bits, 1);
  return at::bitwise_and(stored + 1, static_cast<int64_t>(code_mask(w.bits)));
}

at::Tensor int_group_dequantize(const IntGroupWeight& w) {
  const at::Tensor q = unpack_int_codes(w.qweight.cpu(), w.bits, 0);   // [in, out]
  TORCH_CHECK(q.size(0) == w.in && q.size(1) == w.out, "int-group qweight does not match ",
              w.in, " x ", w.out);
  const at::Tensor group = w.g_idx.cpu().to(at::kLong);
  const at::Tensor zero = int_group_zero_points(w).index_select(0, group);
  const at::Tensor scale = w.scales.cpu().to(at::kFloat).index_select(0, group);
  return (scale * (q - zero).to(at::kFloat)).t().contiguous();
}

}  // namespace qsweep

namespace qsweep {

std::vector<IntGroupWeight> split_int_group_outputs(const IntGroupWeight& w,
                                                    const std::vector<int64_t>& rows) {
  const at::Tensor zeros = unpack_int_codes(w.zeros.cpu(), w.bits, 1);  // [groups, out]
  std::vector<IntGroupWeight> parts;
  int64_t first = 0;
  for (const int64_t n : rows) {
    IntGroupWeight part = w;
    part.out = n;
    part.qweight = w.qweight.narrow(1, first, n).contiguous();
    part.zeros = pack_int_codes(zeros.narrow(1, first, n).contiguous(), w.bits, 1)
                     .to(w.zeros.device());
    part.scales = w.scales.narrow(1, first, n).contiguous();
    parts.push_back(part);
    first += n;
  }
  QSWEEP_CHECK(first == w.out, "split_int_group_outputs: {} rows asked of a weight with {}",
               first, w.out);
  return parts;
}

}  // namespace qsweep
