#include "qsweep/model/stacked_projections.h"

#include "qsweep/model/format_bnb4.h"
#include "qsweep/util/log.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace qsweep {
namespace {

// Why parts cannot be stacked, or empty when they can.
using Refusal = std::string;

template <typename W, typename Key>
Refusal all_equal(const std::vector<W*>& ws, Key key, const char* what) {
  for (const W* w : ws)
    if (key(*w) != key(*ws.front())) return std::string("their ") + what + " differ";
  return {};
}

// Replaces the parts' `field` by views of their concatenation along `dim`; returns it.
template <typename W>
at::Tensor stack_field(const std::vector<W*>& ws, at::Tensor W::*field, int64_t dim) {
  std::vector<at::Tensor> parts;
  for (const W* w : ws) parts.push_back(w->*field);
  const at::Tensor stacked = at::cat(parts, dim);
  int64_t at = 0;
  for (W* w : ws) {
    const int64_t n = (w->*field).size(dim);
    w->*field = stacked.narrow(dim, at, n);
    at += n;
  }
  return stacked;
}

Refusal refusal(const std::vector<DenseWeight*>& ws) {
  Refusal r = all_equal(ws, [](const DenseWeight& w) { return w.weight.size(1); }, "input sizes");
  if (r.empty()) r = all_equal(ws, [](const DenseWeight& w) { return w.weight.scalar_type(); }, "dtypes");
  return r;
}

Linear stack(const std::vector<DenseWeight*>& ws) {
  return Linear{DenseWeight{stack_field(ws, &DenseWeight::weight, 0)}};
}

Refusal refusal(const std::vector<Int8RowWeight*>& ws) {
  Refusal r = all_equal(ws, [](const Int8RowWeight& w) { return w.weight.size(1); }, "input sizes");
  if (r.empty()) r = all_equal(ws, [](const Int8RowWeight& w) { return w.threshold; }, "thresholds");
  if (r.empty())
    r = all_equal(ws, [](const Int8RowWeight& w) { return w.compute_dtype; }, "compute dtypes");
  return r;
}

Linear stack(const std::vector<Int8RowWeight*>& ws) {
  Int8RowWeight s = *ws.front();
  s.weight = stack_field(ws, &Int8RowWeight::weight, 0);
  s.row_absmax = stack_field(ws, &Int8RowWeight::row_absmax, 0);
  return Linear{s};
}

Refusal refusal(const std::vector<IntGroupWeight*>& ws) {
  Refusal r = all_equal(ws, [](const IntGroupWeight& w) { return w.in; }, "input sizes");
  if (r.empty()) r = all_equal(ws, [](const IntGroupWeight& w) { return w.bits; }, "bits");
  if (r.empty()) r = all_equal(ws, [](const IntGroupWeight& w) { return w.group_size; }, "group sizes");
  if (r.empty()) r = all_equal(ws, [](const IntGroupWeight& w) { return w.sym; }, "sym settings");
  if (r.empty())
    r = all_equal(ws, [](const IntGroupWeight& w) { return w.scales.scalar_type(); }, "scale dtypes");
  if (!r.empty()) return r;
  for (const IntGroupWeight* w : ws) {
    // Zero points are packed along the output dimension: a part must end on a word boundary
    // (and, for 16-byte column loads, on a multiple of 4 columns).
    if (w->out % 32 != 0) return "an output size is not a multiple of 32";
    if (!at::equal(w->g_idx, ws.front()->g_idx)) return "their act-order groups (g_idx) differ";
  }
  return {};
}

Linear stack(const std::vector<IntGroupWeight*>& ws) {
  IntGroupWeight s = *ws.front();
  s.out = 0;
  for (const IntGroupWeight* w : ws) s.out += w->out;
  s.qweight = stack_field(ws, &IntGroupWeight::qweight, 1);
  s.zeros = stack_field(ws, &IntGroupWeight::zeros, 1);
  s.scales = stack_field(ws, &IntGroupWeight::scales, 1);
  for (IntGroupWeight* w : ws) w->g_idx = s.g_idx;
  return Linear{s};
}

int64_t bnb4_blocks(const Bnb4Weight& w) { return w.out * w.in / w.blocksize; }

Refusal refusal(const std::vector<Bnb4Weight*>& ws) {
  Refusal r = all_equal(ws, [](const Bnb4Weight& w) { return w.in; }, "input sizes");
  if (r.empty()) r = all_equal(ws, [](const Bnb4Weight& w) { return w.type; }, "4-bit types");
  if (r.empty()) r = all_equal(ws, [](const Bnb4Weight& w) { return w.blocksize; }, "block sizes");
  if (r.empty())
    r = all_equal(ws, [](const Bnb4Weight& w) { return w.double_quant; }, "double-quant settings");
  if (r.empty())
    r = all_equal(ws, [](const Bnb4Weight& w) { return w.compute_dtype; }, "compute dtypes");
  if (!r.empty()) return r;
  for (const Bnb4Weight* w : ws) {
    if (w->out * w->in % w->blocksize != 0) return "a part ends inside an absmax block";
    if (!at::equal(w->code, ws.front()->code)) return "their code tables differ";
    if (!w->double_quant) continue;
    if (bnb4_blocks(*w) % kBnbNestedBlocksize != 0) return "a part ends inside a nested block";
    if (!at::equal(w->code2, ws.front()->code2)) return "their nested code tables differ";
  }
  return {};
}

// Each part keeps its own nested offset: one per nested block of the stacked weight.
at::Tensor nested_offsets(const std::vector<Bnb4Weight*>& ws) {
  std::vector<at::Tensor> parts;
  for (const Bnb4Weight* w : ws)
    parts.push_back(w->offsets.defined()
                        ? w->offsets
                        : at::full({bnb4_blocks(*w) / kBnbNestedBlocksize}, w->offset,
                                   w->absmax2.options()));
  return at::cat(parts, 0);
}

Linear stack(const std::vector<Bnb4Weight*>& ws) {
  Bnb4Weight s = *ws.front();
  s.out = 0;
  for (const Bnb4Weight* w : ws) s.out += w->out;
  s.packed = stack_field(ws, &Bnb4Weight::packed, 0);
  if (!s.double_quant) {
    s.absmax = stack_field(ws, &Bnb4Weight::absmax, 0);
    return Linear{s};
  }
  s.offsets = nested_offsets(ws);
  s.offset = 0;
  s.qabsmax = stack_field(ws, &Bnb4Weight::qabsmax, 0);
  s.absmax2 = stack_field(ws, &Bnb4Weight::absmax2, 0);
  return Linear{s};
}

}  // namespace

std::optional<Linear> stack_linears(const std::vector<Linear*>& parts, std::string& why) {
  return std::visit(
      [&](const auto& first) -> std::optional<Linear> {
        using W = std::decay_t<decltype(first)>;
        std::vector<W*> ws;
        for (Linear* p : parts) {
          W* w = std::get_if<W>(&p->weight);
          if (!w) {
            why = "their storage formats differ";
            return std::nullopt;
          }
          ws.push_back(w);
        }
        why = refusal(ws);
        if (!why.empty()) return std::nullopt;
        return stack(ws);
      },
      parts.front()->weight);
}

void stack_projections(Model& m) {
  const char* env = std::getenv("QSWEEP_STACK_PROJECTIONS");  // 0: measure without stacking
  if (env && std::strcmp(env, "0") == 0) {
    log_info("QSWEEP_STACK_PROJECTIONS=0: q, k, v and gate, up stay separate projections");
    return;
  }
  Refusal qkv_why, gate_up_why;
  int separate_qkv = 0, separate_gate_up = 0;
  for (LayerWeights& l : m.layers) {
    if (!l.qkv) l.qkv = stack_linears({&l.q, &l.k, &l.v}, qkv_why);
    if (!l.gate_up) l.gate_up = stack_linears({&l.gate, &l.up}, gate_up_why);
    separate_qkv += !l.qkv;
    separate_gate_up += !l.gate_up;
  }
  if (separate_qkv > 0)
    log_info("q, k, v stay separate projections in {} of {} layers: {}", separate_qkv,
             m.layers.size(), qkv_why);
  if (separate_gate_up > 0)
    log_info("gate, up stay separate projections in {} of {} layers: {}", separate_gate_up,
             m.layers.size(), gate_up_why);
}

}  // namespace qsweep
