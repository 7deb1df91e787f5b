#include "qsweep/model/format_int_group.h"

#include "qsweep/util/error.h"

#include <ATen/ATen.h>

#include <cstdint>

namespace qsweep {
namespace {

void check_bits(int bits) { check_int_group_bits("int-group", bits); }

uint32_t code_mask(int bits) { return (uint32_t(1) << bits) - 1; }

// The codes of one lane (one column of qweight, one row of zeros) as a little-endian bit
// stream; a code whose bits run past a word continues at bit 0 of the next.
void pack_lane(const int32_t* codes, int64_t n, int bits, uint32_t* words) {
  for (int64_t k = 0; k < n; ++k) {
    const uint32_t code = static_cast<uint32_t>(codes[k]);
    const int64_t bit = k * bits, word = bit / 32;
    const int shift = static_cast<int>(bit % 32);
    words[word] |= code << shift;
    if (shift + bits > 32) words[word + 1] |= code >> (32 - shift);
  }
}

void unpack_lane(const uint32_t* words, int64_t n, int bits, int32_t* codes) {
  for (int64_t k = 0; k < n; ++k) {
    const int64_t bit = k * bits, word = bit / 32;
    const int shift = static_cast<int>(bit % 32);
    uint32_t v = words[word] >> shift;
    if (shift + bits > 32) v |= words[word + 1] << (32 - shift);
    codes[k] = static_cast<int32_t>(v & code_mask(bits));
  }
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
  const at::Tensor lanes = codes.cpu().movedim(dim, 1).contiguous();
  const int64_t max_code = code_mask(bits);
  if (lanes.numel() > 0 && (lanes.min().item<int32_t>() < 0 || lanes.max().item<int32_t>() > max_code))
    fail("pack_int_codes: codes must lie in [0, {}] for {} bits", max_code, bits);
  at::Tensor packed = at::zeros({lanes.size(0), n * bits / 32}, at::kInt);
  for (int64_t lane = 0; lane < lanes.size(0); ++lane)
    pack_lane(lanes.data_ptr<int32_t>() + lane * n, n, bits,
              reinterpret_cast<uint32_t*>(packed.data_ptr<int32_t>()) + lane * packed.size(1));
  return packed.movedim(1, dim).contiguous();
}

at::Tensor unpack_int_codes(const at::Tensor& packed, int bits, int64_t dim) {
  check_bits(bits);
  TORCH_CHECK(packed.dim() == 2 && packed.scalar_type() == at::kInt,
              "unpack_int_codes: packed must be a 2-D int32 tensor");
  const at::Tensor lanes = packed.cpu().movedim(dim, 1).contiguous();
  const int64_t n = lanes.size(1) * 32 / bits;
  at::Tensor codes = at::empty({lanes.size(0), n}, at::kInt);
  for (int64_t lane = 0; lane < lanes.size(0); ++lane)
    unpack_lane(reinterpret_cast<const uint32_t*>(lanes.data_ptr<int32_t>()) + lane * lanes.size(1),
                n, bits, codes.data_ptr<int32_t>() + lane * n);
  return codes.movedim(1, dim).contiguous();
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
  return w;
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
