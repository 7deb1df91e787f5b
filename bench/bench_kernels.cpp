// Times the quantized-weight kernels on Llama MLP shapes and writes JSON: per kernel, shape and
// batch the median time per call (CUDA events around CUDA-graph replays of one call per weight
// copy, the copies rotating so the weights come from HBM, not L2), the bytes the call must read
// (stored weight bytes + activations), the achieved GB/s and its fraction of the device-to-device
// copy bandwidth measured in the same run; bf16 at::matmul (cuBLAS) alongside for comparison.
// The quantized formats run through each kernel behind their *_matmul (the GEMV and the tensor-core
// tile kernel, MatmulPath), and int4 and NF4 + double quant also as the prefill path does it
// (dequantize, then cuBLAS), at batches 1 to 256, so the crossovers qsweep uses
// (kTensorCoreRows, linear.cpp's kFusedMaxRows) are read off one run. Then decode attention at
// a few cache lengths, in one pass and split over blocks (M is the batch there).
// Usage: qsweep_bench_kernels [out.json [kernel-substring [M]]]
//   (the filter runs only the matching variants, e.g. under ncu: nf4_double_quant_tc 16;
//   QSWEEP_BENCH_REPLAYS=1 for one timed replay, e.g. under compute-sanitizer)
#include "qsweep/kernels/decode_kernels.h"
#include "qsweep/kernels/dense_gemv.h"
#include "qsweep/kernels/launch_overlap.h"
#include "qsweep/kernels/quant_kernels.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDAGuard.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace qsweep;
using namespace qsweep::cuda;

namespace {

// QSWEEP_BENCH_REPLAYS=N times N replays, warming up with up to 3: a run under
// compute-sanitizer, where each launch is slow, with 1. Anything but a positive integer stops
// the benchmark before it runs, rather than timing 25 replays the caller did not ask for.
int replays_from_env() {
  const char* v = std::getenv("QSWEEP_BENCH_REPLAYS");
  if (!v) return 25;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < 1 || n > 100000) {
    std::fprintf(stderr,
                 "qsweep_bench_kernels: QSWEEP_BENCH_REPLAYS='%s' is not a replay count; give a "
                 "whole number from 1 to 100000 (1 under compute-sanitizer), or unset it for 25\n",
                 v);
    std::exit(2);
  }
  return static_cast<int>(n);
}
const int kTimedReplays = replays_from_env();
const int kWarmupReplays = std::min(3, kTimedReplays);
const at::Device kGpu("cuda:0");

int64_t bytes_of(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// Prints one results line (two shape columns, the rows) and returns the keys every row has;
// the caller adds its shape's.
nlohmann::json result_row(const std::string& kernel, int64_t col1, int64_t col2,
                          const std::string& rows, const std::vector<double>& samples_ms,
                          int64_t bytes, double copy_gbps) {
  const double med = percentile(samples_ms, 0.5);
  const double gbps = bytes / (med * 1e-3) / 1e9;
  std::printf("%-24s %6lld %6lld %3s %10.2f %9.0f %6.1f%%\n", kernel.c_str(),
              static_cast<long long>(col1), static_cast<long long>(col2), rows.c_str(), med * 1e3,
              gbps, 100 * gbps / copy_gbps);
  std::vector<double> us;
  for (double v : samples_ms) us.push_back(v * 1e3);
  return {{"kernel", kernel}, {"median_us", med * 1e3}, {"samples_us", us}, {"GBps", gbps},
          {"fraction_of_copy_bandwidth", gbps / copy_gbps}};
}

// Milliseconds of each timed run of `run` (CUDA events around it), divided by `calls_per_run`.
std::vector<double> time_runs(const std::function<void()>& run, int calls_per_run) {
  for (int i = 0; i < kWarmupReplays; ++i) run();
  std::vector<double> samples;
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  for (int i = 0; i < kTimedReplays; ++i) {
    start.record();
    run();
    stop.record();
    stop.synchronize();
    samples.push_back(start.elapsed_time(stop) / calls_per_run);
  }
  return samples;
}

// Captures calls(0), ..., calls(copies - 1) into one graph on a side stream and times it.
std::vector<double> time_calls(const std::function<void(int)>& call, int copies) {
  // The inputs were made on the current stream, and a pool stream does not wait for it: the
  // eager call below once read a cache slot index before at::full had written it, and the
  // attention it ran faulted (with overlapped launches only, the host being further ahead).
  at::cuda::getCurrentCUDAStream().synchronize();
  at::cuda::CUDAGraph graph;
  {
    const c10::cuda::CUDAStreamGuard guard(c10::cuda::getStreamFromPool());
    call(0);  // eager once first: lazy initialisation (cuBLAS handles) stays out of the capture
    at::cuda::getCurrentCUDAStream().synchronize();
    graph.capture_begin();
    for (int i = 0; i < copies; ++i) call(i);
    graph.capture_end();
  }
  return time_runs([&] { graph.replay(); }, copies);
}

// Timed eagerly, as `qsweep bench` and compare_hf.py time theirs. Captured into a graph the copy
// is a memcpy node, which measured 2.75 TB/s on an H200 where the eager copy moved 4.18 in the
// same session (a copy engine rather than the SMs, presumably): fractions of it came out 1.5x
// high, dense bf16 at 109 %.
double copy_bandwidth_gbps(std::vector<double>& samples_out) {
  const int64_t bytes = int64_t{1} << 30;
  const auto opts = at::TensorOptions().dtype(at::kByte).device(kGpu);
  at::Tensor a = at::randint(255, {bytes}, opts), b = at::empty({bytes}, opts);
  samples_out = time_runs([&] { b.copy_(a); }, 1);
  return 2.0 * bytes / (percentile(samples_out, 0.5) * 1e-3) / 1e9;  // read + written
}

struct Variant {
  std::string kernel;
  int64_t stored_bytes;
  int copies;
  std::function<void(int, const at::Tensor&)> run;  // (copy, x)
  int64_t max_rows = std::numeric_limits<int64_t>::max();  // the largest M it takes
};

// The kernels behind one *_matmul, each its own row of the results.
const std::vector<std::pair<MatmulPath, std::string>> kPaths = {{MatmulPath::gemv, "_gemv"},
                                                                {MatmulPath::tensor_core, "_tc"}};

int copies_for(int64_t bytes, int64_t l2) {
  return static_cast<int>(std::clamp<int64_t>((4 * l2 + bytes - 1) / bytes, 2, 64));
}

// A bf16 weight through cuBLAS and through the dense GEMV of decode.
std::vector<Variant> dense_variants(int64_t out, int64_t in, int64_t l2) {
  const int64_t stored = out * in * 2;
  const int copies = copies_for(stored, l2);
  std::vector<at::Tensor> ws;
  for (int c = 0; c < copies; ++c)
    ws.push_back(at::randn({out, in}, at::TensorOptions().device(kGpu).dtype(at::kBFloat16)));
  return {{"bf16_dense_at_matmul", stored, copies,
           [ws](int c, const at::Tensor& x) { at::matmul(x, ws[c].t()); }},
          {"bf16_dense_gemv", stored, copies,
           [ws](int c, const at::Tensor& x) { dense_gemv(x, ws[c]); }, kDenseGemvMaxRows}};
}

std::vector<Variant> variants(int64_t out, int64_t in, int64_t l2) {
  std::vector<Variant> v;
  const auto on = at::TensorOptions().device(kGpu);
  const int64_t i32min = -(int64_t{1} << 31), i32max = (int64_t{1} << 31) - 1;

  auto add_int_group = [&](int bits, bool act_order) {
    // Without act-order the groups are sequential and g_idx is not given, as the model runs it.
    const int64_t groups = in / 128;
    const int64_t stored = in * bits / 32 * out * 4 + groups * ((out * bits + 31) / 32) * 4 +
                           groups * out * 2 + (act_order ? in * 4 : 0);
    const int copies = copies_for(stored, l2);
    auto ws = std::make_shared<std::vector<IntGroupTensors>>();
    for (int c = 0; c < copies; ++c)
      ws->push_back({at::randint(i32min, i32max, {in * bits / 32, out}, on.dtype(at::kInt)),
                     at::randint(i32min, i32max, {groups, (out * bits + 31) / 32}, on.dtype(at::kInt)),
                     (at::rand({groups, out}, on) * 0.01).to(at::kBFloat16),
                     act_order ? at::floor_divide(at::randperm(in, on.dtype(at::kLong)), 128)
                                     .to(at::kInt)
                               : at::Tensor(),
                     bits, in, 128});
    const std::string name = "int" + std::to_string(bits) + "_g128" + (act_order ? "_actorder" : "");
    for (const auto& [path, suffix] : kPaths)
      v.push_back({name + suffix, stored, copies, [ws, path = path](int c, const at::Tensor& x) {
                     int_group_matmul(x, (*ws)[c], path);
                   }});
    if (bits == 4 && !act_order)
      v.push_back({name + "_dequant_matmul", stored, copies, [ws](int c, const at::Tensor& x) {
                     at::matmul(x, int_group_dequantize((*ws)[c]).t());
                   }});
  };
  for (int bits : {4, 3, 2, 8}) add_int_group(bits, false);
  add_int_group(4, true);

  auto add_bnb = [&](const std::string& name, bool dq) {
    const int64_t blocks = out * in / 64;
    std::vector<Bnb4Tensors> ws;
    int64_t stored = out * in / 2 + 64 + (dq ? blocks + (blocks + 255) / 256 * 4 + 1024 : blocks * 4);
    const int copies = copies_for(stored, l2);
    for (int c = 0; c < copies; ++c) {
      Bnb4Tensors w;
      w.out = out, w.in = in, w.blocksize = 64;
      w.packed = at::randint(256, {out * in / 2}, on.dtype(at::kByte));
      w.code = at::linspace(-1, 1, 16, on.dtype(at::kFloat));
      if (dq) {
        w.qabsmax = at::randint(256, {blocks}, on.dtype(at::kByte));
        w.absmax2 = at::rand({(blocks + 255) / 256}, on);
        w.code2 = at::linspace(-1, 1, 256, on.dtype(at::kFloat));
        w.offset = 0.1;
      } else {
        w.absmax = at::rand({blocks}, on);
      }
      ws.push_back(w);
    }
    for (const auto& [path, suffix] : kPaths)
      v.push_back({name + suffix, stored, copies,
                   [ws, path = path](int c, const at::Tensor& x) { bnb4_matmul(x, ws[c], path); }});
    if (dq)
      v.push_back({name + "_dequant_matmul", stored, copies, [ws](int c, const at::Tensor& x) {
                     at::matmul(x, bnb4_dequantize(ws[c], x.scalar_type()).t());
                   }});
  };
  add_bnb("nf4", false);
  add_bnb("nf4_double_quant", true);

  {
    const int64_t stored = out * in + out * 4;
    const int copies = copies_for(stored, l2);
    std::vector<std::pair<at::Tensor, at::Tensor>> ws;
    for (int c = 0; c < copies; ++c)
      ws.emplace_back(at::randint(-127, 128, {out, in}, on.dtype(at::kChar)), at::rand({out}, on));
    auto scratch = std::make_shared<at::Tensor>(at::empty({int8_workspace_bytes(256, in)}, on.dtype(at::kByte)));
    for (const auto& [path, suffix] : kPaths)
      v.push_back({"llm_int8_t6" + suffix, stored, copies,
                   [ws, scratch, path = path](int c, const at::Tensor& x) {
                     int8_matmul(x, ws[c].first, ws[c].second, 6.0, *scratch, path);
                   }});
  }
  for (Variant& d : dense_variants(out, in, l2)) v.push_back(std::move(d));
  return v;
}

// Decode attention on Llama-3's heads (32 query, 8 kv, dim 128: the 1B and 8B shapes alike),
// bf16, each row at the last slot of a cache of `context` slots: in one pass per (row, kv head)
// and split as decode_attention chooses (the last block of a row's kv head merging). Bytes
// read: q and the keys and values attended to.
// The cache copies rotate like the weights, but a short cache still fits L2 several times.
nlohmann::json measure_attention(int64_t l2, double copy_gbps, const std::string& only_kernel,
                                 int64_t only_m) {
  constexpr int64_t kHeads = 32, kKvHeads = 8, kDim = 128;
  nlohmann::json rows = nlohmann::json::array();
  const auto on = at::TensorOptions().device(kGpu).dtype(at::kBFloat16);
  for (int64_t batch : {1, 4})
    for (int64_t context : {128, 512, 1024}) {
      if (only_m && batch != only_m) continue;
      const int64_t kv_bytes = 2 * batch * kKvHeads * context * kDim * 2;
      const int copies = copies_for(kv_bytes, l2);
      std::vector<at::Tensor> ks, vs;
      for (int c = 0; c < copies; ++c) {
        ks.push_back(at::randn({batch, kKvHeads, context, kDim}, on));
        vs.push_back(at::randn({batch, kKvHeads, context, kDim}, on));
      }
      const at::Tensor q = at::randn({batch, kHeads, kDim}, on);
      const at::Tensor mask = at::ones({batch, context}, on.dtype(at::kBool));
      const at::Tensor slot = at::full({batch}, context - 1, on.dtype(at::kLong));
      const at::Tensor arrivals = at::zeros({batch * kKvHeads}, on.dtype(at::kInt));
      for (const auto& [name, splits] : {std::pair{"attention_one_pass", 1}, {"attention_split", 0}}) {
        if (std::string(name).find(only_kernel) == std::string::npos) continue;
        const std::vector<double> samples = time_calls(
            [&](int c) { decode_attention(q, ks[c], vs[c], mask, slot, 0.088, splits, arrivals); }, copies);
        const int64_t bytes = kv_bytes + bytes_of(q);
        nlohmann::json row =
            result_row(name, context, kDim, std::to_string(batch), samples, bytes, copy_gbps);
        row.update({{"context", context}, {"heads", kHeads}, {"kv_heads", kKvHeads},
                    {"head_dim", kDim}, {"M", batch}, {"cache_copies", copies},
                    {"bytes_read", bytes}});
        rows.push_back(std::move(row));
      }
    }
  return rows;
}

std::string today() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // A row per line as it is measured: when a kernel faults, the last row names the one before it.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string path = argc > 1 ? argv[1] : "bench_kernels.json";
  const std::string only_kernel = argc > 2 ? argv[2] : "";
  const int64_t only_m = argc > 3 ? std::stoll(argv[3]) : 0;
  c10::InferenceMode inference;
  at::manual_seed(0);
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  const int64_t l2 = prop->l2CacheSize;

  std::vector<double> copy_samples;
  const double copy_gbps = copy_bandwidth_gbps(copy_samples);
  std::printf("device %s, %d SMs, L2 %lld MB; copy bandwidth (read + write) %.0f GB/s\n", prop->name,
              prop->multiProcessorCount, static_cast<long long>(l2 >> 20), copy_gbps);

  nlohmann::json results = nlohmann::json::array();
  std::printf("%-24s %6s %6s %3s %10s %9s %7s\n", "kernel", "out", "in", "M", "median_us", "GB/s", "copy%");
  struct Shape { int64_t out, in; };
  // Times `vs` at each of `batches` rows on one weight shape, a results row each.
  const auto measure = [&](const Shape& shape, const std::vector<Variant>& vs,
                           std::initializer_list<int64_t> batches) {
    for (int64_t m : batches) {
      if (only_m && m != only_m) continue;
      const at::Tensor x = at::randn({m, shape.in}, at::TensorOptions().device(kGpu).dtype(at::kBFloat16));
      for (const Variant& v : vs) {
        if (v.kernel.find(only_kernel) == std::string::npos || m > v.max_rows) continue;
        const std::vector<double> samples = time_calls([&](int c) { v.run(c, x); }, v.copies);
        const int64_t bytes = v.stored_bytes + m * shape.in * 2;
        nlohmann::json row = result_row(v.kernel, shape.out, shape.in, std::to_string(m), samples,
                                        bytes, copy_gbps);
        row.update({{"out", shape.out}, {"in", shape.in}, {"M", m},
                    {"p90_us", percentile(samples, 0.9) * 1e3}, {"weight_copies", v.copies},
                    {"bytes_read", bytes}});
        results.push_back(std::move(row));
      }
    }
  };
  // The Llama-3 lm_head's shape too, for the dense kernels only: the largest dense projection of
  // a decode step, which cuBLAS already streams at near the copy rate.
  const Shape lm_head{128256, 2048};
  measure(lm_head, dense_variants(lm_head.out, lm_head.in, l2), {1, 4});
  for (const Shape shape : {Shape{8192, 2048}, Shape{2048, 8192}}) {
    measure(shape, variants(shape.out, shape.in, l2), {1, 4, 8, 16, 32, 64, 128, 256});
    // Dequantize-to-buffer (the prefill path's first half): bytes read + bytes written.
    if (only_kernel.empty()) {
      const auto on = at::TensorOptions().device(kGpu);
      const int64_t groups = shape.in / 128;
      const at::Tensor q = at::randint(-(int64_t{1} << 31), (int64_t{1} << 31) - 1, {shape.in / 8, shape.out}, on.dtype(at::kInt));
      const at::Tensor z = at::randint(0, 1 << 30, {groups, shape.out / 8}, on.dtype(at::kInt));
      const at::Tensor s = (at::rand({groups, shape.out}, on) * 0.01).to(at::kBFloat16);
      Bnb4Tensors nf4;
      nf4.out = shape.out, nf4.in = shape.in, nf4.blocksize = 64;
      nf4.packed = at::randint(256, {shape.out * shape.in / 2}, on.dtype(at::kByte));
      nf4.code = at::linspace(-1, 1, 16, on.dtype(at::kFloat));
      nf4.absmax = at::rand({shape.out * shape.in / 64}, on);
      const at::Tensor w8 = at::randint(-127, 128, {shape.out, shape.in}, on.dtype(at::kChar));
      const at::Tensor scb = at::rand({shape.out}, on);
      const int64_t written = shape.out * shape.in * 2;
      struct D { std::string name; int64_t read; std::function<void()> f; };
      const std::vector<D> ds = {
          {"dequant_int4_g128", bytes_of(q) + bytes_of(z) + bytes_of(s),
           [&] { int_group_dequantize({q, z, s, {}, 4, shape.in, 128}); }},
          {"dequant_nf4", bytes_of(nf4.packed) + bytes_of(nf4.absmax),
           [&] { bnb4_dequantize(nf4, at::kBFloat16); }},
          {"dequant_int8", bytes_of(w8) + bytes_of(scb), [&] { int8_dequantize(w8, scb, at::kBFloat16); }}};
      for (const D& d : ds) {
        const std::vector<double> samples = time_calls([&](int) { d.f(); }, 1);
        nlohmann::json row = result_row(d.name, shape.out, shape.in, "-", samples,
                                        d.read + written, copy_gbps);
        row.update({{"out", shape.out}, {"in", shape.in}, {"bytes_read", d.read},
                    {"bytes_written", written}});
        results.push_back(std::move(row));
      }
    }
  }

  for (nlohmann::json& row : measure_attention(l2, copy_gbps, only_kernel, only_m))
    results.push_back(std::move(row));

  nlohmann::json doc = {
      {"date", today()},
      {"device", prop->name},
      {"multiprocessors", prop->multiProcessorCount},
      {"l2_bytes", l2},
      {"copy_bandwidth_GBps", copy_gbps},
      {"copy_samples_ms", copy_samples},
      {"method",
       {{"timing", "CUDA events around CUDA-graph replays; each replay calls the kernel once per "
                   "weight copy (copies rotate so the weights total >= 4x L2); time per call = "
                   "replay time / copies"},
        {"warmup_replays", kWarmupReplays},
        {"timed_replays", kTimedReplays},
        {"statistic", "median of the timed replays"},
        {"bytes_read", "stored weight bytes (codes, scales, zeros, g_idx, absmax and second-level "
                       "state) + activations M x in x 2; dequant rows also count bytes written"},
        {"copy_bandwidth", "1 GiB device-to-device copy_, eager (not in a graph), CUDA events, "
                           "median; bytes read + bytes written"},
        {"activations", "bfloat16, random normal"},
        {"launches", qsweep::cuda::overlapped_launches()
                         ? "overlapped: each kernel may start, and prefetch its weights into L2, "
                           "while the one before it finishes (programmatic dependent launch)"
                         : "serialized (QSWEEP_PDL=0, or before compute capability 9.0)"}}},
      {"results", results}};
  std::ofstream(path) << doc.dump(2) << "\n";
  std::printf("wrote %s\n", path.c_str());
  return 0;
}
