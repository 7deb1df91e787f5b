#include "qsweep/quant/calibrated.h"

#include "qsweep/model/format_int_group.h"
#include "qsweep/model/layer_forward.h"
#include "qsweep/quant/awq.h"
#include "qsweep/quant/gptq.h"
#include "qsweep/quant/rtn.h"
#include "qsweep/util/error.h"
#include "qsweep/util/log.h"

#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <map>

namespace qsweep {
namespace {

// Calibration sequences go through a layer a few at a time, so that the MLP's intermediate
// activations of 128 x 2048 tokens never exist at once.
constexpr int64_t kChunkTokens = 16384;

std::vector<at::Tensor> chunks_of(const at::Tensor& x) {
  return x.split(std::max<int64_t>(1, kChunkTokens / x.size(1)));
}

// f applied to x [N, L, ...] a few sequences at a time, the results concatenated.
at::Tensor by_chunks(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& f) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& chunk : chunks_of(x)) out.push_back(f(chunk));
  return at::cat(out);
}

at::Tensor dense_weight(const Linear& l) {
  const auto* dense = std::get_if<DenseWeight>(&l.weight);
  if (!dense) fail("calibrated quantization: a projection is already quantized");
  return dense->weight;
}

std::string layer_name(int layer, ProjectionGroup group) {
  return fmt::format("model.layers.{}.{}", layer, projection_group_name(group));
}

// The Hugging Face module name of the group's i-th projection, after "model.layers.N.".
const char* projection_name(ProjectionGroup group, size_t i) {
  static const char* const qkv[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
  switch (group) {
    case ProjectionGroup::qkv: return qkv[i];
    case ProjectionGroup::o: return "self_attn.o_proj";
    case ProjectionGroup::gate_up: return i == 0 ? "mlp.gate_proj" : "mlp.up_proj";
    case ProjectionGroup::down: return "mlp.down_proj";
  }
  return "?";
}

double mean_squared_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).pow(2).mean().item<double>();
}

// ||X D^T||^2 per output element and row of X, from the Hessian H = 2/n X^T X: d H d^T / 2 for
// each row d of D = W - Q, averaged over the rows [first, first + n).
double hessian_error(const at::Tensor& d, const at::Tensor& h, int64_t first, int64_t n) {
  const at::Tensor rows = d.narrow(0, first, n);
  return (rows.matmul(h) * rows).sum().item<double>() / 2.0 / static_cast<double>(n);
}

// GPTQ's and RTN's loss per projection of the group, on the inputs GPTQ saw.
void report_gptq(const Model& m, int layer, ProjectionGroup group, const at::Tensor& w,
                 const at::Tensor& gptq, const Hessian& hessian, const std::vector<int64_t>& rows,
                 const QuantConfig& c, CalibrationReport& report) {
  const at::Tensor dense = w.to(at::kFloat);
  const at::Tensor d_gptq = dense - gptq;
  const at::Tensor d_rtn = dense - rtn_fake_quantize(w, c.bits, c.group_size, c.sym, m.dtype);
  int64_t first = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    report.errors.push_back({fmt::format("model.layers.{}.{}", layer, projection_name(group, i)),
                             hessian_error(d_gptq, hessian.h, first, rows[i]),
                             hessian_error(d_rtn, hessian.h, first, rows[i])});
    first += rows[i];
  }
}

// The group's projections share one input and so one Hessian; GPTQ treats rows independently
// given it, so they are quantized as one matrix (a third of the column steps for q/k/v) and
// split again.
void gptq_group(const Model& m, LayerWeights& l, int layer, const at::Tensor& x,
                ProjectionGroup group, const QuantConfig& c, CalibrationReport& report) {
  Hessian hessian;
  for (const at::Tensor& chunk : chunks_of(x))
    add_to_hessian(hessian, group_input(m, l, chunk, group));
  const std::vector<Linear*> linears = group_linears(l, group);
  std::vector<at::Tensor> weights;
  std::vector<int64_t> rows;
  for (Linear* p : linears) {
    weights.push_back(dense_weight(*p));
    rows.push_back(weights.back().size(0));
  }
  const GptqOptions options{c.bits, c.group_size, c.sym, c.damp_percent, c.desc_act,
                            c.static_groups};
  const at::Tensor w = at::cat(weights);
  const GptqResult r = gptq_quantize(w, hessian, options, m.dtype, layer_name(layer, group));
  report_gptq(m, layer, group, w, r.dequantized, hessian, rows, c, report);
  const std::vector<IntGroupWeight> parts = split_int_group_outputs(r.weight, rows);
  for (size_t i = 0; i < linears.size(); ++i) *linears[i] = linear_to({parts[i]}, m.device);
}

void gptq_layer(const Model& m, LayerWeights& l, int layer, const at::Tensor& x,
                const QuantConfig& c, CalibrationReport& report) {
  // True-sequential, as the reference runs it: each group's inputs come from the groups of the
  // same layer already quantized before it.
  for (ProjectionGroup group : kProjectionGroups) gptq_group(m, l, layer, x, group, c, report);
}

// --- AWQ ---

// The layer's projection weights are held in float32 while AWQ scales and clips them, and
// quantized only at the end; the model's copies follow each change in its dtype, so replayed
// blocks see the current weights.
struct AwqLayer {
  const Model& m;
  LayerWeights& l;
  std::vector<at::Tensor> inputs;  // per group, [N, L, in], scaled with the weights
  std::map<const Linear*, at::Tensor> masters;

  at::Tensor master(const Linear& p) {
    auto it = masters.find(&p);
    if (it == masters.end()) it = masters.emplace(&p, dense_weight(p).to(at::kFloat)).first;
    return it->second;
  }
  void set(Linear& p, const at::Tensor& w) {
    masters[&p] = w;
    p = Linear{DenseWeight{w.to(m.dtype)}};
  }
};

// The block's output with candidate weights for the group's projections.
at::Tensor replay(AwqLayer& a, ProjectionGroup group, const std::vector<at::Tensor>& weights) {
  LayerWeights trial = a.l;
  const std::vector<Linear*> linears = group_linears(trial, group);
  for (size_t i = 0; i < linears.size(); ++i)
    *linears[i] = Linear{DenseWeight{weights[i].to(a.m.dtype)}};
  return by_chunks(a.inputs[static_cast<int>(group)], [&](const at::Tensor& chunk) {
    return group_output(a.m, trial, chunk, group);
  });
}

// Scales s multiply the group's input columns and divide what produces its input: an RMSNorm
// weight, or the rows of the linear before it. The product is unchanged; quantization then
// sees salient channels enlarged.
void fold_scales(AwqLayer& a, ProjectionGroup group, const at::Tensor& s) {
  LayerWeights& l = a.l;
  auto divide_rows = [&](Linear& p) { a.set(p, a.master(p) / s.unsqueeze(1)); };
  auto divide_norm = [&](at::Tensor& norm) { norm = (norm.to(at::kFloat) / s).to(norm.scalar_type()); };
  switch (group) {
    case ProjectionGroup::qkv: divide_norm(l.input_norm); break;
    case ProjectionGroup::o: divide_rows(l.v); break;
    case ProjectionGroup::gate_up: divide_norm(l.post_attention_norm); break;
    case ProjectionGroup::down: divide_rows(l.up); break;
  }
  for (Linear* p : group_linears(l, group)) a.set(*p, a.master(*p) * s);
  at::Tensor& input = a.inputs[static_cast<int>(group)];
  input = (input.to(at::kFloat) / s).to(input.scalar_type());
}

// v -> o scaling needs v's outputs to be o's inputs one to one, which grouped-query attention
// breaks (each v row feeds several heads); llm-awq skips it there too.
bool can_scale(const Model& m, ProjectionGroup group) {
  return group != ProjectionGroup::o || m.config.num_heads == m.config.num_kv_heads;
}

void awq_scale_group(AwqLayer& a, ProjectionGroup group, const AwqOptions& options) {
  std::vector<at::Tensor> weights;
  for (Linear* p : group_linears(a.l, group)) weights.push_back(a.master(*p));
  const at::Tensor reference = replay(a, group, weights);
  const AwqScale best = awq_search_scale(
      awq_channel_magnitude(a.inputs[static_cast<int>(group)]), weights,
      [&](const std::vector<at::Tensor>& candidate) { return replay(a, group, candidate); },
      reference, options);
  log_debug("awq: {} ratio {:.2f}, block error {:.3g}", projection_group_name(group), best.ratio,
            best.error);
  fold_scales(a, group, best.scales);
}

// The block error that RTN (the sweep's rtn method, asymmetric, same bits and groups) gives
// each group, before AWQ changes anything.
std::vector<double> rtn_block_errors(AwqLayer& a, const QuantConfig& c) {
  std::vector<double> errors;
  for (ProjectionGroup group : kProjectionGroups) {
    std::vector<at::Tensor> dense, rtn;
    for (Linear* p : group_linears(a.l, group)) {
      dense.push_back(a.master(*p));
      rtn.push_back(rtn_fake_quantize(dense.back(), c.bits, c.group_size, false, a.m.dtype));
    }
    errors.push_back(mean_squared_difference(replay(a, group, rtn), replay(a, group, dense)));
  }
  return errors;
}

// Clipping after scaling, on every projection but q and k: their errors pass through the
// softmax of q.k, which a per-layer output error does not see (llm-awq leaves them out too).
// Each group's block error with its final weights goes into the report.
void awq_clip_and_quantize(AwqLayer& a, int layer, const AwqOptions& options,
                           const std::vector<double>& rtn_errors, CalibrationReport& report) {
  for (ProjectionGroup group : kProjectionGroups) {
    const at::Tensor input = a.inputs[static_cast<int>(group)];
    std::vector<Linear*> linears = group_linears(a.l, group);
    std::vector<at::Tensor> dense, quantized;
    std::vector<IntGroupWeight> stored;
    for (Linear* p : linears) {
      at::Tensor w = a.master(*p);
      dense.push_back(w);
      if (options.clip && p != &a.l.q && p != &a.l.k)
        w = awq_apply_clip(w, awq_search_clip(w, input.flatten(0, 1), options), options.group_size);
      stored.push_back(awq_quantize(w, options.bits, options.group_size, a.m.dtype));
      // The fake-quantized weight is what is stored up to the scales' rounding to the dtype.
      quantized.push_back(awq_fake_quantize(w, options.bits, options.group_size));
    }
    report.errors.push_back({layer_name(layer, group),
                             mean_squared_difference(replay(a, group, quantized),
                                                     replay(a, group, dense)),
                             rtn_errors[static_cast<size_t>(group)]});
    for (size_t i = 0; i < linears.size(); ++i) *linears[i] = linear_to({stored[i]}, a.m.device);
  }
}

void awq_layer(const Model& m, LayerWeights& l, int layer, const at::Tensor& x,
               const QuantConfig& c, CalibrationReport& report) {
  AwqLayer a{m, l, {}, {}};
  for (ProjectionGroup group : kProjectionGroups)
    a.inputs.push_back(by_chunks(x, [&](const at::Tensor& chunk) {
      return group_input(m, l, chunk, group);
    }));
  AwqOptions options;
  options.bits = c.bits;
  options.group_size = c.group_size;
  options.clip = c.clip;
  const std::vector<double> rtn_errors = rtn_block_errors(a, c);
  for (ProjectionGroup group : kProjectionGroups)
    if (can_scale(m, group)) awq_scale_group(a, group, options);
  awq_clip_and_quantize(a, layer, options, rtn_errors, report);
}

}  // namespace

CalibrationReport quantize_calibrated(Model& m, const QuantConfig& c, const at::Tensor& tokens) {
  QSWEEP_CHECK(needs_calibration(c.method), "quantize_calibrated: method '{}' takes no "
               "calibration data", quant_method_name(c.method));
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  at::Tensor x = embed_tokens(m, tokens.to(m.device));
  double last_log = 0;
  CalibrationReport report;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    LayerWeights& l = m.layers[i];
    const int layer = static_cast<int>(i);
    if (c.method == QuantMethod::gptq) gptq_layer(m, l, layer, x, c, report);
    if (c.method == QuantMethod::awq) awq_layer(m, l, layer, x, c, report);
    x = by_chunks(x, [&](const at::Tensor& chunk) { return layer_forward(m, l, chunk); });
    if (elapsed() - last_log >= 5 || i + 1 == m.layers.size()) {
      last_log = elapsed();
      log_info("{}: {} of {} layers quantized on {} x {} calibration tokens, {:.1f} s",
               quant_method_name(c.method), i + 1, m.layers.size(), tokens.size(0),
               tokens.size(1), last_log);
    }
  }
  return report;
}

}  // namespace qsweep
