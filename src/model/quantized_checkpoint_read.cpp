#include "qsweep/model/quantized_checkpoint.h"

#include "qsweep/model/format_bnb4.h"
#include "qsweep/model/format_int_group.h"
#include "qsweep/quant/quant_config.h"
#include "qsweep/util/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace qsweep {
namespace {

using nlohmann::json;

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The tensors of one linear module, read and checked against what its format needs.
struct ModuleReader {
  const WeightFiles& files;
  const CheckpointQuantization& stored;
  const std::string& prefix;
  const at::Device& device;

  // The file holding this module, for messages: where its weight or qweight is.
  std::string file() const {
    for (const std::string& name : {prefix + ".weight", prefix + ".qweight"})
      if (files.contains(name)) return files.info(name).file;
    return stored.source.substr(0, stored.source.rfind('/')) + "/model.safetensors";
  }

  // NAME's bytes on the device, after checking its safetensors dtype and shape. `dtypes` lists
  // what the format allows, the first being what it writes.
  at::Tensor get(const std::string& name, const std::vector<std::string>& dtypes,
                 const std::vector<int64_t>& shape) const {
    if (!files.contains(name))
      fail("{}: tensor '{}' is missing; a {} layer stores it (quantization_config in {})",
           file(), name, checkpoint_format_name(stored.format), stored.source);
    const TensorInfo& t = files.info(name);
    if (std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end() || t.shape != shape)
      fail("{}: tensor '{}' is {} {} but a {} layer of [{}, ...] stores it as {} {}", t.file,
           name, t.dtype, shape_text(t.shape), checkpoint_format_name(stored.format), prefix,
           fmt::join(dtypes, " or "), shape_text(shape));
    const at::Tensor mapped = files.view(name);
    return mapped.to(device, mapped.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  }
};

// The non-tensor items of a bitsandbytes quant_state, each error naming tensor and key.
struct QuantStateKeys {
  const json& j;
  const std::string& file;
  const std::string& tensor;

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail("{}: tensor '{}': quant_state key '{}' {}", file, tensor, key, what);
  }
  const json& at(const std::string& key) const {
    if (!j.contains(key)) bad(key, "is missing (QuantState.as_dict writes it)");
    return j[key];
  }
  int64_t integer(const std::string& key) const {
    if (!at(key).is_number_integer()) bad(key, "must be an integer, got " + at(key).dump());
    return at(key).get<int64_t>();
  }
  std::string text(const std::string& key, const std::vector<std::string>& allowed) const {
    const json& v = at(key);
    if (!v.is_string() || std::find(allowed.begin(), allowed.end(), v.get<std::string>()) == allowed.end())
      bad(key, fmt::format("is {}; qsweep reads {}", v.dump(), fmt::join(allowed, ", ")));
    return v.get<std::string>();
  }
};

// The JSON a quant_state tensor holds (uint8 bytes), refused with its file and name where not.
json parse_quant_state(const WeightFiles& files, const std::string& state_name) {
  const TensorInfo& info = files.info(state_name);
  if (info.dtype != "U8" || info.shape.size() != 1)
    fail("{}: tensor '{}' is {} {} but a quant_state is uint8 JSON bytes [n]", info.file,
         state_name, info.dtype, shape_text(info.shape));
  const at::Tensor bytes = files.view(state_name);
  try {
    const auto* p = bytes.data_ptr<uint8_t>();
    return json::parse(p, p + bytes.numel());
  } catch (const json::parse_error& e) {
    fail("{}: tensor '{}' is not the JSON of a quant_state ({})", info.file, state_name, e.what());
  }
}

// The quant_state keys every 4-bit weight has; returns its blocksize.
int64_t check_quant_state(const QuantStateKeys& k, Bnb4Type type, int64_t out, int64_t in) {
  if (!k.j.is_object()) k.bad("(all)", "the quant_state must be a JSON object");
  k.text("quant_type", {type == Bnb4Type::nf4 ? "nf4" : "fp4"});
  const int64_t blocksize = k.integer("blocksize");
  if (std::find(std::begin(kBnb4Blocksizes), std::end(kBnb4Blocksizes), blocksize) ==
      std::end(kBnb4Blocksizes))
    k.bad("blocksize", fmt::format("is {}; bitsandbytes uses {}", blocksize,
                                   fmt::join(kBnb4Blocksizes, ", ")));
  k.text("dtype", {"float16", "bfloat16", "float32"});
  const json& shape = k.at("shape");
  if (shape != json::array({out, in}))
    k.bad("shape", fmt::format("is {} but config.json implies [{}, {}]", shape.dump(), out, in));
  return blocksize;
}

// A double-quantized absmax: uint8 codes, their float32 absmax per nested block, its code map
// and offset.
void read_nested_absmax(const ModuleReader& r, const QuantStateKeys& k, const std::string& w,
                        int64_t blocks, Bnb4Weight& q) {
  if (k.integer("nested_blocksize") != kBnbNestedBlocksize)
    k.bad("nested_blocksize", fmt::format("is {}; bitsandbytes nests blocks of {}",
                                          k.integer("nested_blocksize"), kBnbNestedBlocksize));
  k.text("nested_dtype", {"float32"});
  if (!k.at("nested_offset").is_number())
    k.bad("nested_offset", "must be a number, got " + k.at("nested_offset").dump());
  q.offset = k.at("nested_offset").get<float>();
  q.qabsmax = r.get(w + ".absmax", {"U8"}, {blocks});
  q.absmax2 = r.get(w + ".nested_absmax", {"F32"}, {ceil_div(blocks, kBnbNestedBlocksize)});
  q.code2 = r.get(w + ".nested_quant_map", {"F32"}, {256});
}

Linear read_bnb4(const ModuleReader& r, int64_t out, int64_t in, const std::string& state_name,
                 Bnb4Type type) {
  const std::string w = r.prefix + ".weight";
  const json state = parse_quant_state(r.files, state_name);
  const QuantStateKeys k{state, r.files.info(state_name).file, state_name};
  Bnb4Weight q;
  q.type = type;
  q.out = out;
  q.in = in;
  q.blocksize = static_cast<int>(check_quant_state(k, type, out, in));
  q.compute_dtype = scalar_type(r.stored.compute_dtype);
  const int64_t n = out * in, blocks = ceil_div(n, q.blocksize);
  q.packed = r.get(w, {"U8"}, {ceil_div(n, 2), 1}).reshape({-1});
  q.code = r.get(w + ".quant_map", {"F32"}, {16});
  q.double_quant = state.contains("nested_offset");
  if (q.double_quant != r.files.contains(w + ".nested_absmax"))
    k.bad("nested_offset", q.double_quant ? "is there but tensor '" + w + ".nested_absmax' is not"
                                          : "is missing but tensor '" + w + ".nested_absmax' is there");
  if (q.double_quant)
    read_nested_absmax(r, k, w, blocks, q);
  else
    q.absmax = r.get(w + ".absmax", {"F32"}, {blocks});
  return {q};
}

Linear read_gptq(const ModuleReader& r, int64_t out, int64_t in) {
  const CheckpointQuantization& s = r.stored;
  const std::string& p = r.prefix;
  if (in * s.bits % 32 != 0 || out * s.bits % 32 != 0)
    fail("{}: {} [{}, {}] cannot hold {}-bit GPTQ codes: both sizes must fill whole int32 words",
         s.source, p, out, in, s.bits);
  IntGroupWeight w;
  w.bits = s.bits;
  w.group_size = s.group_size == -1 ? static_cast<int>(in) : s.group_size;
  w.sym = s.sym;
  w.in = in;
  w.out = out;
  const int64_t groups = ceil_div(in, w.group_size);
  w.qweight = r.get(p + ".qweight", {"I32"}, {in * s.bits / 32, out});
  w.zeros = r.get(p + ".qzeros", {"I32"}, {groups, out * s.bits / 32});
  w.scales = r.get(p + ".scales", {"F16", "BF16", "F32"}, {groups, out});
  if (r.files.contains(p + ".g_idx")) {
    w.g_idx = r.get(p + ".g_idx", {"I32"}, {in});
    const at::Tensor g = w.g_idx.cpu();
    if (g.min().item<int32_t>() < 0 || g.max().item<int32_t>() >= groups)
      fail("{}: tensor '{}.g_idx' names groups outside [0, {})", r.file(), p, groups);
  } else {
    // Checkpoints saved without act-order may leave g_idx out: channel i is in group i / size.
    w.g_idx = at::arange(in, at::kLong).div(w.group_size, "floor").to(at::kInt).to(r.device);
  }
  w.sequential_groups = int_group_sequential(w.g_idx, w.group_size);
  if (!s.zeros_minus_one) {
    // gptq_v2 stores the zero point itself; qsweep holds zero - 1, as v1 does.
    const at::Tensor zero = unpack_int_codes(w.zeros.cpu(), s.bits, 1);
    w.zeros = pack_int_codes(at::bitwise_and(zero - 1, (int64_t(1) << s.bits) - 1), s.bits, 1)
                  .to(r.device);
  }
  // AutoGPTQ saves a bias for every layer; Llama's are zero, and qsweep's linears have none.
  if (r.files.contains(p + ".bias") && r.files.view(p + ".bias").to(at::kFloat).abs().max().item<float>() != 0)
    fail("{}: tensor '{}.bias' is not zero; qsweep's Llama linears have no bias", r.file(), p);
  return {w};
}

// AutoAWQ's GEMM layout packs 8 codes along the output dimension, nibble i of word j holding
// output column 8j + kAwqOrder[i] (awq/utils/packing_utils.py): codes int32 [rows, out].
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

at::Tensor unpack_awq(const at::Tensor& packed) {
  const at::Tensor words = packed.cpu();
  at::Tensor codes = at::empty({words.size(0), words.size(1) * 8}, at::kInt);
  for (int i = 0; i < 8; ++i)
    codes.slice(1, kAwqOrder[i], codes.size(1), 8)
        .copy_(at::bitwise_and(at::bitwise_right_shift(words, 4 * i), 15));
  return codes;
}

// AWQ's codes, zero points and scales, held in qsweep's int groups (GPTQ's layout).
Linear read_awq(const ModuleReader& r, int64_t out, int64_t in) {
  const CheckpointQuantization& s = r.stored;
  const std::string& p = r.prefix;
  if (out % 8 != 0 || in % 8 != 0)
    fail("{}: {} [{}, {}] cannot hold AWQ's 4-bit GEMM layout: both sizes must be multiples of 8",
         s.source, p, out, in);
  const int group = s.group_size == -1 ? static_cast<int>(in) : s.group_size;
  const int64_t groups = ceil_div(in, group);
  const at::Tensor codes = unpack_awq(r.get(p + ".qweight", {"I32"}, {in, out / 8}));
  const at::Tensor zeros = unpack_awq(r.get(p + ".qzeros", {"I32"}, {groups, out / 8}));
  const at::Tensor scales = r.get(p + ".scales", {"F16", "BF16", "F32"}, {groups, out});
  const at::Tensor g_idx = at::arange(in, at::kLong).div(group, "floor");
  IntGroupWeight w = make_int_group_weight(codes.t(), scales.cpu(), zeros, g_idx, 4, group, false,
                                           scales.scalar_type());
  return linear_to({w}, r.device);
}

Linear read_int8(const ModuleReader& r, int64_t out, int64_t in) {
  Int8RowWeight w;
  w.weight = r.get(r.prefix + ".weight", {"I8"}, {out, in});
  w.row_absmax = r.get(r.prefix + ".SCB", {"F32"}, {out});
  const std::string format = r.prefix + ".weight_format";
  if (r.files.contains(format)) {
    const at::Tensor f = r.get(format, {"U8"}, {});
    if (f.item<uint8_t>() != 0)
      fail("{}: tensor '{}' is {}; only 0 (row-major) is a layout bitsandbytes still loads",
           r.file(), format, f.item<uint8_t>());
  }
  w.threshold = r.stored.threshold;
  return {w};
}

}  // namespace

Linear read_checkpoint_linear(const WeightFiles& files, const CheckpointQuantization& stored,
                              const std::string& prefix, int64_t out, int64_t in,
                              at::ScalarType dtype, const at::Device& device) {
  const ModuleReader r{files, stored, prefix, device};
  const std::string w = prefix + ".weight";
  switch (stored.format) {
    case CheckpointFormat::bnb_4bit: {
      const std::string nf4 = w + ".quant_state.bitsandbytes__nf4";
      const std::string fp4 = w + ".quant_state.bitsandbytes__fp4";
      if (files.contains(nf4) && files.contains(fp4))
        fail("{}: both '{}' and '{}' are there; a layer has one quant_state", r.file(), nf4, fp4);
      if (files.contains(nf4)) return read_bnb4(r, out, in, nf4, Bnb4Type::nf4);
      if (files.contains(fp4)) return read_bnb4(r, out, in, fp4, Bnb4Type::fp4);
      break;
    }
    case CheckpointFormat::bnb_8bit:
      if (files.contains(prefix + ".SCB")) return read_int8(r, out, in);
      break;
    case CheckpointFormat::gptq:
      if (files.contains(prefix + ".qweight")) return read_gptq(r, out, in);
      break;
    case CheckpointFormat::awq_gemm:
      if (files.contains(prefix + ".qweight")) return read_awq(r, out, in);
      break;
    case CheckpointFormat::none: break;
  }
  // A module the quantizer skipped is stored as it was; a quantized one missing its state is not.
  if (files.contains(w)) {
    const std::string& type = files.info(w).dtype;
    if (type != "F32" && type != "F16" && type != "BF16")
      fail("{}: tensor '{}' is {} but has none of the tensors of a {} layer beside it ({})",
           files.info(w).file, w, type, checkpoint_format_name(stored.format),
           stored.format == CheckpointFormat::bnb_4bit ? "weight.quant_state.bitsandbytes__nf4|fp4"
           : stored.format == CheckpointFormat::bnb_8bit ? "SCB" : "qweight");
  }
  return {DenseWeight{files.load(w, {out, in}, dtype, device)}};
}

}  // namespace qsweep
