// Every quantized format through Linear on the GPU (the kernels the engine dispatches to, fused
// for decode rows and a dense weight on cuBLAS beyond) against the same layer's CPU
// reference, the definition in src/model/format_*.cpp. Labelled "gpu"; skipped, visibly, where
// libtorch sees no GPU.
#include "qsweep/model/dequantized_weights.h"
#include "qsweep/model/linear.h"
#include "qsweep/model/stacked_projections.h"
#include "qsweep/quant/quantize_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "gpu_test_helpers.h"

using namespace qsweep;

namespace {

// Relative Frobenius error of the fp16 GPU product against the float32 CPU reference: fp16
// activations and outputs carry 2^-11, the fused kernels accumulate in fp32.
constexpr double kHalfProductTolerance = 4e-3;
// LLM.int8 rounds activations to int8 on both sides; the GPU's fp16 outlier product and a
// differently ordered int32 sum may move a value across a rounding step.
constexpr double kInt8Tolerance = 1e-2;

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kFloat).cpu() - want).norm() / want.norm()).item<double>();
}

// 1 and 5 rows take the GEMVs, 16 to 64 the tensor-core tile kernel, 100 dequantize + cuBLAS (for
// LLM.int8 with x^ as its activations): the paths of decode at small and large batches and of
// prefill.
void expect_gpu_matches_cpu(const QuantConfig& config, double tolerance, double outlier = 0) {
  c10::InferenceMode guard;
  at::manual_seed(7);
  const int64_t out = 384, in = 512;
  const at::Tensor w = at::randn({out, in}) * 0.05;
  const Linear cpu = quantize_linear(w, config, at::kHalf);
  const Linear gpu = quantize_linear(w.to(at::kCUDA), config, at::kHalf);
  for (int64_t rows : {1, 5, 16, 20, 64, 100}) {
    at::Tensor x = at::randn({rows, in});
    if (outlier > 0) x.select(1, 3).mul_(outlier), x.select(1, 100).mul_(outlier);
    const at::Tensor want = linear_forward(cpu, x);
    const at::Tensor got = linear_forward(gpu, x.to(at::kHalf).to(at::kCUDA));
    EXPECT_LT(relative_error(got, want), tolerance) << quant_method_name(config.method) << ", "
                                                   << rows << " rows";
  }
}

QuantConfig config_of(QuantMethod method) {
  QuantConfig c;
  c.method = method;
  return c;
}

class GpuLinear : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no GPU visible: the quantized GPU paths are not checked here";
  }
};

}  // namespace

TEST_F(GpuLinear, IntGroupsOfEveryWidthMatchTheCpuReference) {
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 128, -1}) {
      QuantConfig c = config_of(QuantMethod::rtn);
      c.bits = bits;
      c.group_size = group;
      c.sym = bits != 3;
      expect_gpu_matches_cpu(c, kHalfProductTolerance);
    }
}

TEST_F(GpuLinear, Bnb4BitWithAndWithoutDoubleQuantMatchesTheCpuReference) {
  for (QuantMethod method : {QuantMethod::bnb_nf4, QuantMethod::bnb_fp4})
    for (bool dq : {false, true}) {
      QuantConfig c = config_of(method);
      c.double_quant = dq;
      expect_gpu_matches_cpu(c, kHalfProductTolerance);
    }
}

TEST_F(GpuLinear, Int8WithOutlierColumnsMatchesTheCpuReference) {
  QuantConfig c = config_of(QuantMethod::llm_int8);
  expect_gpu_matches_cpu(c, kInt8Tolerance, /*outlier=*/40);
  c.threshold = 0;
  expect_gpu_matches_cpu(c, kInt8Tolerance);
}

namespace {

// Every tensor a stored format holds, so two quantizations can be compared bit for bit.
std::vector<at::Tensor> stored_tensors(const Linear& l) {
  struct Tensors {
    std::vector<at::Tensor> operator()(const DenseWeight& w) const { return {w.weight}; }
    std::vector<at::Tensor> operator()(const IntGroupWeight& w) const {
      return {w.qweight, w.zeros, w.scales, w.g_idx};
    }
    std::vector<at::Tensor> operator()(const Bnb4Weight& w) const {
      return {w.packed, w.code, w.absmax, w.qabsmax, w.absmax2, w.code2};
    }
    std::vector<at::Tensor> operator()(const Int8RowWeight& w) const {
      return {w.weight, w.row_absmax};
    }
  };
  return std::visit(Tensors{}, l.weight);
}

void expect_same_storage(const QuantConfig& config) {
  c10::InferenceMode guard;
  at::manual_seed(11);
  at::Tensor w = at::randn({256, 512}) * 0.05;
  w.narrow(0, 0, 2).zero_();  // whole zero blocks: the 0 * (1 / 0) path
  const std::vector<at::Tensor> cpu = stored_tensors(quantize_linear(w, config, at::kHalf));
  const std::vector<at::Tensor> gpu =
      stored_tensors(quantize_linear(w.to(at::kCUDA), config, at::kHalf));
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_EQ(cpu[i].defined(), gpu[i].defined()) << "tensor " << i;
    if (!cpu[i].defined()) continue;
    EXPECT_TRUE(gpu[i].is_cuda()) << "tensor " << i << " left the GPU";
    EXPECT_TRUE(gpu[i].cpu().equal(cpu[i])) << quant_method_name(config.method) << ", tensor " << i;
  }
}

}  // namespace

// Data-free methods quantize where the weight is; on a GPU they must store what the CPU does.
TEST_F(GpuLinear, QuantizingOnTheGpuStoresWhatTheCpuStores) {
  for (QuantMethod method : {QuantMethod::bnb_nf4, QuantMethod::bnb_fp4})
    for (bool dq : {false, true}) {
      QuantConfig c = config_of(method);
      c.double_quant = dq;
      expect_same_storage(c);
    }
  for (int bits : {3, 4}) {
    QuantConfig c = config_of(QuantMethod::rtn);
    c.bits = bits;
    c.sym = bits == 4;
    expect_same_storage(c);
  }
  expect_same_storage(config_of(QuantMethod::llm_int8));
}

// A stacked q|k|v on the GPU (the parts' tensors concatenated, the parts then strided views)
// gives the CPU reference's stacked product (test_stacked_projections: the parts side by side), through the fused kernels and the prefill paths,
// and each part as a view still gives its own.
TEST_F(GpuLinear, StackedProjectionsMatchTheCpuReferenceInEveryFormat) {
  c10::InferenceMode guard;
  std::vector<QuantConfig> configs;
  for (int bits : {3, 4}) {
    QuantConfig c = config_of(QuantMethod::rtn);
    c.bits = bits;
    configs.push_back(c);
  }
  for (bool dq : {false, true}) {
    QuantConfig c = config_of(QuantMethod::bnb_nf4);
    c.double_quant = dq;
    configs.push_back(c);
  }
  configs.push_back(config_of(QuantMethod::llm_int8));
  for (const QuantConfig& config : configs) {
    at::manual_seed(3);
    std::vector<Linear> cpu, gpu;
    // 512 x 512 / 64 = 4096 and 128 x 512 / 64 = 1024 absmax blocks: whole nested blocks.
    for (int64_t out : {512, 128, 128}) {
      cpu.push_back(quantize_linear(at::randn({out, 512}) * 0.05, config, at::kHalf));
      gpu.push_back(linear_to(cpu.back(), at::kCUDA));
    }
    std::string why;
    const std::optional<Linear> cpu_stacked = stack_linears({&cpu[0], &cpu[1], &cpu[2]}, why);
    const std::optional<Linear> stacked = stack_linears({&gpu[0], &gpu[1], &gpu[2]}, why);
    ASSERT_TRUE(stacked && cpu_stacked) << why;
    const double tolerance =
        config.method == QuantMethod::llm_int8 ? kInt8Tolerance : kHalfProductTolerance;
    for (int64_t rows : {1, 5, 16, 20, 64, 100}) {
      const at::Tensor x = at::randn({rows, 512});
      const at::Tensor xg = x.to(at::kHalf).to(at::kCUDA);
      EXPECT_LT(relative_error(linear_forward(*stacked, xg), linear_forward(*cpu_stacked, x)), tolerance)
          << quant_method_name(config.method) << " " << config.bits << " bits, " << rows << " rows";
      EXPECT_LT(relative_error(linear_forward(gpu[1], xg), linear_forward(cpu[1], x)), tolerance)
          << quant_method_name(config.method) << ": the k part as a view, " << rows << " rows";
    }
  }
}

// The MLP's product of a stacked gate|up on the GPU (the batch-1 GEMVs' epilogue, the other
// paths' product and SiLU * up) against the CPU's, in every format and at every path's rows.
TEST_F(GpuLinear, SiluGateUpMatchesTheCpuReferenceInEveryFormat) {
  c10::InferenceMode guard;
  std::vector<QuantConfig> configs = {config_of(QuantMethod::none), config_of(QuantMethod::rtn),
                                      config_of(QuantMethod::bnb_nf4),
                                      config_of(QuantMethod::llm_int8)};
  configs[2].double_quant = true;
  for (const QuantConfig& config : configs) {
    at::manual_seed(5);
    std::vector<Linear> cpu, gpu;
    for (int i = 0; i < 2; ++i) {
      const at::Tensor w = at::randn({384, 512}) * 0.05;
      cpu.push_back(quantize_linear(w, config, at::kHalf));
      // A dense weight is kept as given: the GPU's is the model's float16.
      gpu.push_back(config.method == QuantMethod::none
                        ? Linear{DenseWeight{w.to(at::kHalf).to(at::kCUDA)}}
                        : linear_to(cpu.back(), at::kCUDA));
    }
    std::string why;
    const std::optional<Linear> cpu_stacked = stack_linears({&cpu[0], &cpu[1]}, why);
    const std::optional<Linear> stacked = stack_linears({&gpu[0], &gpu[1]}, why);
    ASSERT_TRUE(stacked && cpu_stacked) << why;
    const double tolerance =
        config.method == QuantMethod::llm_int8 ? kInt8Tolerance : kHalfProductTolerance;
    for (int64_t rows : {1, 5, 20, 100}) {
      const at::Tensor x = at::randn({rows, 512});
      const at::Tensor got = linear_forward(*stacked, x.to(at::kHalf).to(at::kCUDA), GemvOutput::silu_gate_up);
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{rows, 384}));
      EXPECT_LT(relative_error(got, linear_forward(*cpu_stacked, x, GemvOutput::silu_gate_up)), tolerance)
          << quant_method_name(config.method) << ", " << rows << " rows";
    }
  }
}

// Past the fused kernels' rows an open DequantizedWeights scope keeps the dequantized weight:
// the same product bit for bit, the weight made once.
TEST_F(GpuLinear, DequantizedWeightsKeptForAScopeGiveTheSameProducts) {
  c10::InferenceMode guard;
  at::manual_seed(3);
  for (QuantMethod method : {QuantMethod::rtn, QuantMethod::bnb_nf4}) {
    const Linear gpu =
        quantize_linear((at::randn({384, 512}) * 0.05).to(at::kCUDA), config_of(method), at::kHalf);
    const at::Tensor x = at::randn({100, 512}).to(at::kHalf).to(at::kCUDA);
    const at::Tensor want = linear_forward(gpu, x);
    const DequantizedWeights scope;
    EXPECT_TRUE(at::equal(linear_forward(gpu, x), want)) << quant_method_name(method);
    EXPECT_TRUE(at::equal(linear_forward(gpu, x), want)) << quant_method_name(method);
    EXPECT_EQ(scope.size(), 1u) << quant_method_name(method);
  }
}
