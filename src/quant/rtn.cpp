#include "qsweep/quant/rtn.h"

#include "qsweep/model/format_int_group.h"
#include "qsweep/quant/gptq_quantizer.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>

namespace qsweep {
namespace {

int64_t checked_group_size(int bits, int group_size, int64_t in) {
  check_int_group_bits("RTN", bits);
  return int_group_columns("RTN", group_size, in);
}

}  // namespace

at::Tensor rtn_fake_quantize(const at::Tensor& w, int bits, int group_size, bool sym,
                             at::ScalarType compute_dtype) {
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = checked_group_size(bits, group_size, in);
  const at::Tensor rows = w.to(compute_dtype).to(at::kFloat).reshape({-1, group});
  const GroupScale s = gptq_find_params(rows, bits, sym);
  const at::Tensor scale = s.scale.to(compute_dtype).to(at::kFloat).unsqueeze(1);
  return ((gptq_codes(rows, s, bits) - s.zero.unsqueeze(1)) * scale).view({out, in});
}

IntGroupWeight quantize_rtn(const at::Tensor& w, int bits, int group_size, bool sym,
                            at::ScalarType compute_dtype) {
  if (w.dim() != 2) fail("quantize_rtn: the weight must be 2-D [out, in], got {} dims", w.dim());
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = checked_group_size(bits, group_size, in), groups = in / group;
  // One row per (output, group): GPTQ's quantizer runs per output row over a group's columns.
  const at::Tensor rows = w.to(compute_dtype).to(at::kFloat).reshape({out * groups, group});
  const GroupScale s = gptq_find_params(rows, bits, sym);
  const at::Tensor codes = gptq_codes(rows, s, bits).view({out, in});
  const at::Tensor g_idx =
      at::arange(in, at::TensorOptions().dtype(at::kLong).device(w.device())).div(group, "floor");
  return make_int_group_weight(codes, s.scale.view({out, groups}).t(),
                               s.zero.view({out, groups}).t().to(at::kInt), g_idx, bits,
                               static_cast<int>(group), sym, compute_dtype);
}

}  // namespace qsweep
