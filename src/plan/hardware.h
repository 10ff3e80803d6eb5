// The hardware catalog: what one device offers a deployment (memory, bandwidth, FLOP/s per
// precision, interconnect, power, price) and how much of its peak an engine reaches. Shipped as
// data/hardware.json (compiled in); users extend or override it with their own file.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern::plan {

struct Device {
  std::string id;               // "h100-sxm", "this-machine"
  std::string name;
  std::string kind = "gpu";     // "gpu" or "cpu"
  double memory_gib = 0;
  double usable_fraction = 0.9; // of memory the engine may fill (allocator slack, other processes)
  double bandwidth_gbs = 0;     // peak memory bandwidth, GB/s (1e9 bytes)
  std::map<std::string, double> tflops;  // dense peak per compute precision: f32, bf16, fp16, fp8, int8
  std::string interconnect = "none";
  double interconnect_gbs = 0;  // per device, one direction
  double interconnect_latency_us = 10;
  int devices_per_node = 1;     // the largest tensor-parallel group on one fast interconnect
  double power_w = 0;
  double price_per_hour = 0;    // per device
  double decode_efficiency = 0.75;   // achieved / peak bandwidth in decode
  double prefill_efficiency = 0.6;   // achieved / peak FLOP/s in prefill
  // Achieved / peak FLOP/s of a compute-bound batched decode step (a few rows of x per weight row,
  // weights streamed from memory: lower than prefill's on CPUs). 0: the prefill efficiency.
  double batched_decode_efficiency = 0;
  double decode_compute_efficiency() const {
    return batched_decode_efficiency > 0 ? batched_decode_efficiency : prefill_efficiency;
  }
  // Fixed cost of a decode step beyond its bytes and FLOPs (engine/step_overhead.h; --calibrate
  // measures it on CPUs; 0 where unmeasured): per step, per layer, per sequence in the batch and per
  // sequence per layer; and per matmul call streamed from memory (plan/calibrate.h: what a short
  // call loses to its streams ramping up and its threads joining, beyond bytes ÷ bandwidth).
  double step_overhead_us = 0, layer_overhead_us = 0, sequence_overhead_us = 0, sequence_layer_overhead_us = 0;
  double matmul_call_us = 0;
  // GB/s of KV cache that decode attention gets through (engine/step_overhead.h); 0: the decode
  // bandwidth (bandwidth_gbs × decode_efficiency).
  double attention_kv_gbs = 0;
  double decode_step_overhead_s(int layers, int64_t matmul_calls, int64_t batch) const {
    return (step_overhead_us + layers * layer_overhead_us +
            double(batch) * (sequence_overhead_us + layers * sequence_layer_overhead_us) +
            double(matmul_calls) * matmul_call_us) * 1e-6;
  }
  double runtime_overhead_gib = 1.0; // CUDA context, library workspaces, the process itself
  int threads = 0;              // cpu entries measured by --calibrate: the thread count measured with

  double memory_bytes() const { return memory_gib * double(1ull << 30); }
  double usable_bytes() const { return memory_bytes() * usable_fraction; }
  double overhead_bytes() const { return runtime_overhead_gib * double(1ull << 30); }
  // FLOP/s for a compute precision, falling back to bf16 (a device without fp8/int8 units
  // dequantizes to bf16), then f32.
  double flops(const std::string& precision) const;
  bool is_gpu() const { return kind == "gpu"; }
};

class Catalog {
 public:
  // The catalog compiled from data/hardware.json.
  static Result<Catalog> shipped();
  // Parses catalog JSON text ({"devices": [...]}); `source` names it in errors.
  static Result<Catalog> parse(const std::string& json_text, const std::string& source);

  // Adds or replaces (same id) every device of `other`.
  void merge(const Catalog& other);
  const Device* find(const std::string& id) const;
  const std::vector<Device>& devices() const { return devices_; }
  std::string ids() const;  // "h100-sxm, h100-pcie, ..." for error messages

 private:
  std::vector<Device> devices_;
};

// JSON of one device in the catalog's layout (what --calibrate writes).
std::string device_to_json(const Device& d);
// Adds or replaces `d` in the catalog file at `path` (created when absent).
Status save_device(const std::string& path, const Device& d);

// The text of data/hardware.json (generated into the build from the data file).
const char* shipped_catalog_json();

}  // namespace tern::plan
