#include "qsweep/model/safetensors.h"

#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qsweep {
namespace {

using nlohmann::json;

at::ScalarType scalar_type(const std::string& dtype, const std::string& where) {
  if (dtype == "F64") return at::kDouble;
  if (dtype == "F32") return at::kFloat;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "I64") return at::kLong;
  if (dtype == "I32") return at::kInt;
  if (dtype == "I8") return at::kChar;
  if (dtype == "U8") return at::kByte;
  if (dtype == "BOOL") return at::kBool;
  fail("{}: dtype '{}' is not supported (F64, F32, F16, BF16, I64, I32, I8, U8, BOOL)", where,
       dtype);
}

std::string safetensors_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    default: fail("safetensors: cannot write tensors of type {}", c10::toString(t));
  }
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
}

// One tensor's entry of the header, its offsets made absolute; a malformed entry names the
// tensor and the field instead of surfacing as a JSON library exception.
TensorInfo header_entry(const std::string& path, const std::string& name, const json& entry,
                        size_t data_start) {
  auto bad = [&](const std::string& what) {
    fail("{}: header entry of tensor '{}' {} (a safetensors entry is {{\"dtype\": \"F32\", "
         "\"shape\": [...], \"data_offsets\": [begin, end]}})", path, name, what);
  };
  if (!entry.is_object()) bad("is not an object");
  if (!entry.contains("dtype") || !entry["dtype"].is_string()) bad("has no string 'dtype'");
  if (!entry.contains("shape") || !entry["shape"].is_array()) bad("has no list 'shape'");
  const json& offsets = entry.contains("data_offsets") ? entry["data_offsets"] : json();
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    bad("has no 'data_offsets' pair of byte offsets");
  TensorInfo info;
  info.file = path;
  info.dtype = entry["dtype"].get<std::string>();
  for (const json& d : entry["shape"]) {
    if (!d.is_number_unsigned()) bad("has a shape entry that is not a size: " + d.dump());
    info.shape.push_back(d.get<int64_t>());
  }
  info.begin = data_start + offsets[0].get<size_t>();
  info.end = data_start + offsets[1].get<size_t>();
  if (info.begin > info.end) bad(fmt::format("begins after it ends ({})", offsets.dump()));
  return info;
}

// The bytes between a tensor's offsets must be exactly what its shape and dtype take.
void check_byte_count(const TensorInfo& t, const std::string& name) {
  const at::ScalarType type = scalar_type(t.dtype, t.file + " tensor '" + name + "'");
  size_t count = 1;
  for (int64_t d : t.shape) count *= static_cast<size_t>(d);
  if (count * c10::elementSize(type) != t.end - t.begin)
    fail("{}: tensor '{}' has {} bytes but shape {} of {} needs {}", t.file, name,
         t.end - t.begin, shape_text(t.shape), t.dtype, count * c10::elementSize(type));
}

}  // namespace

struct WeightFiles::Mapping {
  void* data = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (data != MAP_FAILED) munmap(data, size);
  }
};

WeightFiles::WeightFiles(WeightFiles&&) noexcept = default;
WeightFiles::~WeightFiles() = default;

WeightFiles WeightFiles::open_file(const std::string& path) {
  WeightFiles files;
  files.map_file(path);
  return files;
}

WeightFiles WeightFiles::open_model_dir(const std::string& dir) {
  WeightFiles files;
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (std::filesystem::exists(single)) {
    files.map_file(single);
    return files;
  }
  if (!std::filesystem::exists(index))
    fail("{}: no model.safetensors or model.safetensors.index.json; qsweep reads Hugging Face "
         "safetensors weights (convert .bin checkpoints with transformers' save_pretrained)",
         dir);
  json j;
  try {
    j = json::parse(read_file(index));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({})", index, e.what());
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail("{}: missing object 'weight_map'", index);
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [name, shard] : j["weight_map"].items())
    by_shard[shard.get<std::string>()].push_back(name);
  for (const auto& [shard, names] : by_shard) files.map_file(dir + "/" + shard, names);
  return files;
}

void WeightFiles::map_file(const std::string& path, const std::vector<std::string>& wanted) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  auto mapping = std::make_unique<Mapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size >= 8)
    mapping->data = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping->data == MAP_FAILED) fail("{}: too short or unreadable for a safetensors file", path);

  const auto* bytes = static_cast<const unsigned char*>(mapping->data);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > mapping->size - 8)
    fail("{}: header length {} exceeds the file size {} (truncated download?)", path, header_size,
         mapping->size);
  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(bytes) + 8,
                         reinterpret_cast<const char*>(bytes) + 8 + header_size);
  } catch (const json::parse_error& e) {
    fail("{}: header is not valid JSON ({})", path, e.what());
  }
  if (!header.is_object())
    fail("{}: header is {}, not a JSON object of tensors", path, header.type_name());
  const size_t data_start = 8 + header_size;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    TensorInfo info = header_entry(path, name, entry, data_start);
    if (info.end > mapping->size)
      fail("{}: tensor '{}' ends at byte {} but the file has {} bytes (truncated shard?)", path,
           name, info.end, mapping->size);
    check_byte_count(info, name);
    tensors_[name] = std::move(info);
  }
  for (const auto& name : wanted)
    if (!tensors_.count(name))
      fail("{}: tensor '{}' is listed in the index but not in this shard", path, name);
  mappings_[path] = std::move(mapping);
}

const TensorInfo& WeightFiles::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    const std::string where = tensors_.empty() ? "the weights" : tensors_.begin()->second.file;
    fail("{}: tensor '{}' is missing (is this a Llama-family checkpoint?)", where, name);
  }
  return it->second;
}

at::Tensor WeightFiles::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  const at::ScalarType type = scalar_type(t.dtype, t.file + " tensor '" + name + "'");
  auto* base = static_cast<char*>(mappings_.at(t.file)->data);
  return at::from_blob(base + t.begin, t.shape, at::TensorOptions().dtype(type));
}

at::Tensor WeightFiles::load(const std::string& name, const std::vector<int64_t>& expected_shape,
                             at::ScalarType dtype, const at::Device& device) const {
  check_float(name, expected_shape);
  return view(name).to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

void WeightFiles::check_float(const std::string& name,
                              const std::vector<int64_t>& expected_shape) const {
  const TensorInfo& t = info(name);
  // Integer bytes converted to floats would load without complaint and compute garbage.
  if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
    fail("{}: tensor '{}' is labelled {}, but it is a float weight (F32, F16 or BF16 expected)",
         t.file, name, t.dtype);
  if (t.shape != expected_shape)
    fail("{}: tensor '{}' has shape {} but config.json implies {}", t.file, name,
         shape_text(t.shape), shape_text(expected_shape));
}

std::vector<std::string> WeightFiles::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  json header = json::object();
  std::vector<at::Tensor> cpu;
  size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor c = tensor.detach().to(at::kCPU).contiguous();
    const size_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(c);
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps tensor data 8-byte aligned
  std::ofstream out(path + ".tmp", std::ios::binary);
  if (!out) fail("{}: cannot write: {}", path, std::strerror(errno));
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
  out.write(text.data(), text.size());
  for (const auto& c : cpu) out.write(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  out.close();
  if (!out || std::rename((path + ".tmp").c_str(), path.c_str()) != 0)
    fail("{}: writing failed: {}", path, std::strerror(errno));
}

}  // namespace qsweep
