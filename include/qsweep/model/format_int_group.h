#pragma once
// The GPTQ storage layout of IntGroupWeight: packing `bits`-bit codes into int32 words, reading
// them back, and the float32 weight the layout represents.
#include "qsweep/model/linear.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace qsweep {

// The checks every method that stores int groups (RTN, GPTQ, AWQ) makes of its parameters;
// `who` begins the message ("RTN", "GPTQ model.layers.3.qkv:").
// bits must be a width the storage packs: 2, 3, 4 or 8.
void check_int_group_bits(const std::string& who, int bits);
// Input channels per group for `in` inputs: group_size if it divides in, all of them for -1.
int64_t int_group_columns(const std::string& who, int group_size, int64_t in);

// Codes int32 [rows, cols] with values in [0, 2^bits) packed along `dim` (0: qweight, 1: zeros)
// into int32 words, 32 / bits codes per word for 2, 4 and 8 bits, 32 codes per 3 words for
// 3 bits. The codes along `dim` form a little-endian bit stream: code k occupies bits
// [k * bits, (k + 1) * bits), so 3-bit codes 10 and 21 of every 32 straddle two words.
at::Tensor pack_int_codes(const at::Tensor& codes, int bits, int64_t dim);
// The inverse: int32 codes with `dim` of size packed.size(dim) * 32 / bits.
at::Tensor unpack_int_codes(const at::Tensor& packed, int bits, int64_t dim);

// An IntGroupWeight from unpacked codes int32 [out, in], scales [groups, out] (stored in
// `dtype`), zero points int32 [groups, out] and g_idx int32 [in]: what RTN, GPTQ and AWQ all end
// with. Checks that `in` and `out` fill whole words at `bits`.
IntGroupWeight make_int_group_weight(const at::Tensor& codes, const at::Tensor& scales,
                                     const at::Tensor& zero_points, const at::Tensor& g_idx,
                                     int bits, int group_size, bool sym, at::ScalarType dtype);

// The weight of the output rows [0, rows[0]), [rows[0], rows[0] + rows[1]), ... as weights of
// their own: what a matrix quantized as the concatenation of several projections splits into.
std::vector<IntGroupWeight> split_int_group_outputs(const IntGroupWeight& w,
                                                    const std::vector<int64_t>& rows);

// Whether g_idx [in] puts channel k in group k / group_size, as every weight without act-order
// has it (IntGroupWeight::sequential_groups).
bool int_group_sequential(const at::Tensor& g_idx, int64_t group_size);

// Zero points int32 [groups, out], the stored zero - 1 plus one modulo 2^bits.
at::Tensor int_group_zero_points(const IntGroupWeight& w);
// scale[g_idx[i], o] * (q[i, o] - zero[g_idx[i], o]) as float32 [out, in].
at::Tensor int_group_dequantize(const IntGroupWeight& w);

}  // namespace qsweep
