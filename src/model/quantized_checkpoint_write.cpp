#include "qsweep/model/quantized_checkpoint.h"

#include "qsweep/model/format_int_group.h"

#include "qsweep/util/error.h"
#include "qsweep/util/log.h"
#include "qsweep/util/text.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, at::Tensor>>;

// Python's repr of a float (what json.dumps writes): the shortest digits that read back as the
// same double, always with a '.' or an exponent.
std::string python_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eninf") == std::string::npos) s += ".0";
  return s;
}

CheckpointFormat format_of(const Linear& l) {
  struct Format {
    CheckpointFormat operator()(const DenseWeight&) const { return CheckpointFormat::none; }
    CheckpointFormat operator()(const IntGroupWeight&) const { return CheckpointFormat::gptq; }
    CheckpointFormat operator()(const Bnb4Weight&) const { return CheckpointFormat::bnb_4bit; }
    CheckpointFormat operator()(const Int8RowWeight&) const { return CheckpointFormat::bnb_8bit; }
  };
  return std::visit(Format{}, l.weight);
}

bool lm_head_quantized(const Model& m) { return format_of(m.lm_head) != CheckpointFormat::none; }

// A layer whose one group spans its input: it fits any group size of at least its width.
bool per_channel(const IntGroupWeight& w) { return w.group_size >= w.in; }

// Each format's fields of quantization_config: taken from the first layer, and `differs(what)`
// where a later layer's disagree.
template <typename Differs>
void agree(const Bnb4Weight& w, bool first, CheckpointQuantization& q, Differs differs) {
  const std::string type = w.type == Bnb4Type::nf4 ? "nf4" : "fp4";
  const DType compute = dtype_of(w.compute_dtype);
  if (first) {
    q.bnb_quant_type = type;
    q.double_quant = w.double_quant;
    q.compute_dtype = compute;
  }
  if (type != q.bnb_quant_type) differs("quant type");
  if (w.double_quant != q.double_quant) differs("double quantization");
  if (compute != q.compute_dtype) differs("compute dtype");
}

template <typename Differs>
void agree(const Int8RowWeight& w, bool first, CheckpointQuantization& q, Differs differs) {
  if (first) q.threshold = w.threshold;
  if (w.threshold != q.threshold) differs("outlier threshold");
}

// group_size: that of the layers with more than one group, so far (none while all are per
// channel).
template <typename Differs>
void agree(const IntGroupWeight& w, bool first, CheckpointQuantization& q,
           std::optional<int>& group_size, Differs differs) {
  if (first) {
    q.bits = w.bits;
    q.sym = w.sym;
  }
  if (w.bits != q.bits) differs("bit width");
  if (w.sym != q.sym) differs("symmetry");
  if (!int_group_sequential(w.g_idx, w.group_size)) q.desc_act = true;
  if (per_channel(w)) return;
  if (group_size && *group_size != w.group_size) differs("group size");
  group_size = w.group_size;
}

// GPTQ's group_size, -1 where every layer has a single group; a per-channel layer wider than the
// others' groups cannot be described by it.
int gptq_group_size(const std::vector<NamedProjection>& modules, std::optional<int> group_size) {
  if (!group_size) return -1;
  for (const NamedProjection& mod : modules) {
    const auto& w = std::get<IntGroupWeight>(mod.linear->weight);
    if (per_channel(w) && w.in > *group_size)
      fail("write_quantized_checkpoint: {} has one group over its {} inputs while other layers "
           "use groups of {}; GPTQ's config holds one group_size", mod.name, w.in, *group_size);
  }
  return *group_size;
}

// The one quantization_config every quantized linear fits; config.json cannot say more.
CheckpointQuantization describe(const Model& m) {
  std::vector<NamedProjection> modules = projections(m);
  if (lm_head_quantized(m)) modules.push_back({"lm_head", &m.lm_head});
  const NamedProjection& front = modules.front();
  CheckpointQuantization q;
  q.format = format_of(*front.linear);
  q.lm_head = lm_head_quantized(m);
  if (q.format == CheckpointFormat::none)
    fail("write_quantized_checkpoint: {} is not quantized; run quantize_model first", front.name);
  std::optional<int> group_size;
  for (const NamedProjection& mod : modules) {
    const Linear& l = *mod.linear;
    if (format_of(l) != q.format)
      fail("write_quantized_checkpoint: {} is stored as {} but {} as {}; a checkpoint holds one "
           "format", mod.name, checkpoint_format_name(format_of(l)), front.name,
           checkpoint_format_name(q.format));
    const auto differs = [&](const char* what) {
      fail("write_quantized_checkpoint: {} has another {} than {}; config.json's "
           "quantization_config holds one for all layers", mod.name, what, front.name);
    };
    const bool first = &mod == &front;
    if (const auto* w = std::get_if<Bnb4Weight>(&l.weight)) agree(*w, first, q, differs);
    if (const auto* w = std::get_if<Int8RowWeight>(&l.weight)) agree(*w, first, q, differs);
    if (const auto* w = std::get_if<IntGroupWeight>(&l.weight))
      agree(*w, first, q, group_size, differs);
  }
  if (q.format == CheckpointFormat::gptq) q.group_size = gptq_group_size(modules, group_size);
  return q;
}

}  // namespace

std::string bnb4_quant_state_json(const Bnb4Weight& w) {
  // QuantState.as_dict's insertion order and json.dumps' default separators.
  std::string s = fmt::format(
      "{{\"quant_type\": \"{}\", \"blocksize\": {}, \"dtype\": \"{}\", \"shape\": [{}, {}]",
      w.type == Bnb4Type::nf4 ? "nf4" : "fp4", w.blocksize, hf_dtype_name(dtype_of(w.compute_dtype)),
      w.out, w.in);
  if (w.double_quant)
    s += fmt::format(", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", "
                     "\"nested_offset\": {}", python_float(static_cast<double>(w.offset)));
  return s + "}";
}

namespace {

at::Tensor bytes_tensor(const std::string& s) {
  at::Tensor t = at::empty({static_cast<int64_t>(s.size())}, at::kByte);
  std::copy(s.begin(), s.end(), t.data_ptr<uint8_t>());
  return t;
}

void add_linear(Tensors& out, const std::string& prefix, const Linear& layer,
                at::ScalarType dense_dtype) {
  struct Add {
    Tensors& out;
    const std::string& prefix;
    at::ScalarType dense_dtype;
    void operator()(const DenseWeight& w) const {
      out.emplace_back(prefix + ".weight", w.weight.to(dense_dtype));
    }
    void operator()(const Bnb4Weight& w) const {
      const std::string p = prefix + ".weight";
      // Params4bit keeps the packed codes as a column, [n / 2, 1].
      out.emplace_back(p, w.packed.reshape({-1, 1}));
      out.emplace_back(p + ".absmax", w.double_quant ? w.qabsmax : w.absmax);
      out.emplace_back(p + ".quant_map", w.code);
      if (w.double_quant) {
        out.emplace_back(p + ".nested_absmax", w.absmax2);
        out.emplace_back(p + ".nested_quant_map", w.code2);
      }
      out.emplace_back(p + ".quant_state.bitsandbytes__" +
                           std::string(w.type == Bnb4Type::nf4 ? "nf4" : "fp4"),
                       bytes_tensor(bnb4_quant_state_json(w)));
    }
    void operator()(const IntGroupWeight& w) const {
      out.emplace_back(prefix + ".qweight", w.qweight);
      out.emplace_back(prefix + ".qzeros", w.zeros);
      // GPTQ kernels read float16 scales; other compute dtypes are rounded to it here.
      out.emplace_back(prefix + ".scales", w.scales.to(at::kHalf));
      out.emplace_back(prefix + ".g_idx", w.g_idx.to(at::kInt));
    }
    void operator()(const Int8RowWeight& w) const {
      out.emplace_back(prefix + ".weight", w.weight);
      out.emplace_back(prefix + ".SCB", w.row_absmax.to(at::kFloat));
      // Linear8bitLt saves its layout; 0 is "row", the only one it still loads.
      out.emplace_back(prefix + ".weight_format", at::zeros({}, at::kByte));
    }
  };
  std::visit(Add{out, prefix, dense_dtype}, layer.weight);
}

void copy_side_files(const std::string& source_dir, const std::string& out) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.model", "generation_config.json"}) {
    const fs::path from = fs::path(source_dir) / name;
    if (fs::exists(from))
      fs::copy_file(from, fs::path(out) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

void write_quantized_checkpoint(const Model& m, const std::string& source_dir, DType dtype,
                                const std::string& out) {
  const CheckpointQuantization q = describe(m);
  fs::create_directories(out);
  if (fs::equivalent(source_dir, out))
    fail("{}: the quantized checkpoint would overwrite the model it is made from; give --out "
         "another directory", out);
  const at::ScalarType dense = scalar_type(dtype);
  Tensors tensors;
  tensors.emplace_back("model.embed_tokens.weight", m.embed.to(dense));
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    tensors.emplace_back(p + "input_layernorm.weight", m.layers[i].input_norm.to(dense));
    tensors.emplace_back(p + "post_attention_layernorm.weight",
                         m.layers[i].post_attention_norm.to(dense));
  }
  for (const NamedProjection& mod : projections(m)) add_linear(tensors, mod.name, *mod.linear, dense);
  tensors.emplace_back("model.norm.weight", m.final_norm.to(dense));
  // A tied lm_head is the embedding table and is not saved; quantizing unties it.
  const auto* head = std::get_if<DenseWeight>(&m.lm_head.weight);
  if (!head || !head->weight.is_same(m.embed)) add_linear(tensors, "lm_head", m.lm_head, dense);
  write_safetensors(out + "/model.safetensors", tensors);
  write_file_atomic(out + "/config.json",
                    config_json_with_quantization(read_file(source_dir + "/config.json"), q, dtype));
  copy_side_files(source_dir, out);
  log_info("wrote {} ({}{}, other tensors {})", out, checkpoint_format_name(q.format),
           q.lm_head ? ", lm_head quantized" : "", hf_dtype_name(dtype));
}

}  // namespace qsweep
