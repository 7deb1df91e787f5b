#pragma once
// Reading and writing Hugging Face safetensors files: a little-endian u64 header length, a JSON
// header of {name: {dtype, shape, data_offsets}}, then the raw tensor bytes. Reading maps the
// files, so a 2.5 GB model costs no extra copy until a tensor is converted to its device dtype.
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qsweep {

struct TensorInfo {
  std::string file;
  std::string dtype;               // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  size_t begin = 0;                // byte offsets from the file's start
  size_t end = 0;
};

// All tensors of a model directory: model.safetensors, or the shards that
// model.safetensors.index.json names. Files stay mapped for the lifetime of this object.
class WeightFiles {
 public:
  static WeightFiles open_model_dir(const std::string& dir);
  static WeightFiles open_file(const std::string& path);
  WeightFiles(WeightFiles&&) noexcept;
  ~WeightFiles();

  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor viewing the mapped bytes (no copy); valid while this object lives.
  at::Tensor view(const std::string& name) const;
  // From the header alone: `name` is there, a float (F32, F16, BF16) and of the expected shape.
  // Opening already checked every tensor's offsets and byte count against the file.
  void check_float(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  // The float tensor with the expected shape (check_float), converted to dtype on device.
  at::Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape,
                  at::ScalarType dtype, const at::Device& device) const;
  std::vector<std::string> names() const;

 private:
  struct Mapping;
  WeightFiles() = default;
  void map_file(const std::string& path, const std::vector<std::string>& wanted = {});
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::unique_ptr<Mapping>> mappings_;
};

// Writes tensors (any device, converted to contiguous CPU) in the safetensors format.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace qsweep
