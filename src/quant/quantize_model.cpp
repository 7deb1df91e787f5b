#include "qsweep/quant/quantize_model.h"

#include "qsweep/quant/bnb4.h"
#include "qsweep/quant/calibrated.h"
#include "qsweep/quant/int8_rows.h"
#include "qsweep/quant/rtn.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"

#include <ATen/ATen.h>

namespace qsweep {
namespace {

// Quantization works on a dense weight; anything else has been quantized already.
const at::Tensor& dense_weight(const Linear& layer) {
  const auto* dense = std::get_if<DenseWeight>(&layer.weight);
  if (!dense) fail("quantize_model: a projection is already quantized");
  return dense->weight;
}

// One line a researcher can check: did calibration beat round-to-nearest everywhere?
void log_summary(const QuantConfig& c, const CalibrationReport& report) {
  size_t better = 0;
  const QuantError* worst = nullptr;
  for (const QuantError& e : report.errors) {
    if (e.error < e.rtn_error) ++better;
    if (!worst || e.error / e.rtn_error > worst->error / worst->rtn_error) worst = &e;
  }
  if (!worst) return;
  log_info("{}: output error below RTN's on {} of {} {} on the calibration inputs (worst: {}, "
           "{:.3g} vs {:.3g})", quant_method_name(c.method), better, report.errors.size(),
           c.method == QuantMethod::gptq ? "projections" : "blocks", worst->name, worst->error,
           worst->rtn_error);
}

}  // namespace

// Quantizes on the weight's device, where the result stays.
Linear quantize_linear(const at::Tensor& w, const QuantConfig& c, at::ScalarType compute) {
  switch (c.method) {
    case QuantMethod::rtn:
      return {quantize_rtn(w, c.bits, c.group_size, c.sym, compute)};
    case QuantMethod::bnb_nf4:
    case QuantMethod::bnb_fp4: {
      const Bnb4Type type = c.method == QuantMethod::bnb_nf4 ? Bnb4Type::nf4 : Bnb4Type::fp4;
      return {quantize_bnb4(w, type, c.blocksize, c.double_quant, compute)};
    }
    case QuantMethod::llm_int8:
      return {quantize_int8_rows(w, c.threshold, compute)};
    case QuantMethod::none: return {DenseWeight{w}};
    case QuantMethod::gptq:
    case QuantMethod::awq:
    case QuantMethod::from_checkpoint: break;
  }
  fail("method '{}' cannot quantize a layer on its own (it needs calibration data or a "
       "checkpoint)", quant_method_name(c.method));
}

void quantize_model(Model& m, const QuantConfig& c, const at::Tensor& calibration) {
  // A from_checkpoint model was read in its stored format by load_model; it runs as loaded.
  if (c.method == QuantMethod::none || c.method == QuantMethod::from_checkpoint) return;
  if (needs_calibration(c.method)) {
    if (!calibration.defined())
      fail("method '{}' needs calibration windows (calibration_tokens)", quant_method_name(c.method));
    log_summary(c, quantize_calibrated(m, c, calibration));
    return;
  }
  const at::ScalarType compute = c.compute_dtype ? scalar_type(*c.compute_dtype) : m.dtype;
  for (LayerWeights& l : m.layers)
    for (Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
      *p = quantize_linear(dense_weight(*p), c, compute);
  if (c.quantize_lm_head) m.lm_head = quantize_linear(dense_weight(m.lm_head), c, compute);
}

}  // namespace qsweep
