#include "qsweep/quant/int8_rows.h"

#include "qsweep/model/format_int8.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>

namespace qsweep {

Int8RowWeight quantize_int8_rows(const at::Tensor& w, double threshold,
                                 at::ScalarType compute_dtype) {
  if (w.dim() != 2)
    fail("quantize_int8_rows: the weight must be 2-D [out, in], got {} dims", w.dim());
  if (threshold < 0) fail("LLM.int8 threshold must be >= 0, got {}", threshold);
  // The weight has no outliers held back: bitsandbytes quantizes it with threshold 0.
  const Int8Rows rows = int8_quantize_rows(w.to(compute_dtype).to(at::kHalf), 0.0);
  Int8RowWeight q;
  q.weight = rows.codes;
  q.row_absmax = rows.absmax;
  q.threshold = threshold;
  q.compute_dtype = compute_dtype;
  return q;
}

}  // namespace qsweep
