// HIP backend: a kernel plan is emitted as one HIP translation unit (kernels + extern "C"
// launchers), compiled at run time (hip::compile_kernels: nvcc with the compat headers on NVIDIA,
// hipcc on AMD, flags in jit.hpp), and run stage by stage on one stream.
#pragma once
#include <concord/attention.hpp>
#include <concord/codegen/hip.hpp>
#include <concord/hip/jit.hpp>
#include <concord/hip/runtime.hpp>

#include <cstdlib>

namespace concord::hip {

using launch_fn = int (*)(void* const*, unsigned, void*);

struct compiled {
  codegen::kernel_plan plan;
  std::string source;
  std::shared_ptr<jit::library> lib;
  std::vector<launch_fn> launch;
};

// prefill_mma's products go on wgmma on sm_90 devices (built as sm_90a) unless CONCORD_WGMMA=0
// (H100, 16K causal dense, same calls: 4.07 against 6.19 ms on mma.sync by default, run 76; 2.61
// against 4.44 with f16 products, run 75). Kernels are built for $CONCORD_HIP_ARCH, else sm_90a
// where wgmma is on and the device is sm_90, else compile_kernels' default.
inline bool wgmma_asked() {
  const char* w = std::getenv("CONCORD_WGMMA");
  return !(w && std::string(w) == "0");
}
inline std::string kernel_arch() {
  if (const char* a = std::getenv("CONCORD_HIP_ARCH"); a && *a) return a;
  return wgmma_asked() && select_platform() == platform::nvidia && context::get().info().arch == "sm_90" ? "sm_90a" : "";
}

inline compiled compile(codegen::kernel_plan plan) {
  compiled c;
  c.plan = std::move(plan);
  const char* rb = std::getenv("CONCORD_HIP_REDUCTION_BATCH");  // 64: no batches of 128 (codegen/hip.hpp; A/B runs)
  c.source = codegen::hip_emitter(rb && std::atoll(rb) == 64 ? 64 : 128).emit(c.plan);
  c.lib = compile_kernels(c.source, kernel_arch());
  for (const codegen::stage& st : c.plan.stages) c.launch.push_back(reinterpret_cast<launch_fn>(c.lib->symbol(st.name + "_launch")));
  return c;
}

inline attention::device_caps caps() {
  attention::device_caps d;
  const device_info& di = context::get().info();
  d.backend = "hip";
  d.parallelism = static_cast<int64_t>(di.sm_count) * 2048;
  d.max_accumulator = 1024;
  d.dialect = "hip", d.shared_bytes = 48 * 1024;  // static __shared__ limit
  d.subgroup = di.warp_size;                        // __shfl_xor within a warp (wavefront)
  attention::tune_caps_from_env(d);
  if (select_platform() != platform::nvidia) d.fence_once = 0;  // PTX fences only are cumulative (attention_gpu.hpp)
  d.notes = di.describe() + "; flags: " + std::string(select_platform() == platform::nvidia ? nvcc_flags : hipcc_flags);
  // Tensor cores (prefill_mma) on NVIDIA sm_70+; CONCORD_HIP_MMA=0 keeps prefill on CUDA cores (A/B runs).
  const char* mma = std::getenv("CONCORD_HIP_MMA");
  const bool sm70 = di.arch.rfind("sm_", 0) == 0 && std::atoi(di.arch.c_str() + 3) >= 70;
  d.mma_f16 = select_platform() == platform::nvidia && sm70 && !(mma && *mma == '0');
  if (d.mma_f16) d.notes += "; f16 tensor cores (nvcuda::wmma)";
  // sm_80+: the register-fragment kernels of decode_mma and prefill_mma (mma.sync m16n8k16); CONCORD_MMA_SYNC=0 keeps wmma.
  const char* msync = std::getenv("CONCORD_MMA_SYNC");
  d.mma_sync = d.mma_f16 && std::atoi(di.arch.c_str() + 3) >= 80 && !(msync && *msync == '0');
  if (d.mma_sync) d.notes += " and mma.sync";
  // Dynamic shared memory a block may opt in to (prefill_mma past D = 128 needs 66 KiB): sm_80 / 87
  // 163 KiB, sm_90 / 100 227 KiB, the others of sm_80+ 99 KiB.
  if (d.mma_sync) {
    const int sm = std::atoi(di.arch.c_str() + 3);
    d.shared_optin = (sm == 80 || sm == 87 ? 163 : sm == 90 || sm == 100 ? 227 : 99) * 1024;
  }
  d.wgmma = d.mma_sync && wgmma_asked() && kernel_arch() == "sm_90a";
  if (d.wgmma) d.notes += " and wgmma";
  return d;
}

struct device_buffers {
  std::vector<buffer> bufs;
  std::vector<void*> ptr;
};

// Allocates every buffer, uploads inputs, poisons the rest.
inline device_buffers prepare(const compiled& c, const std::vector<tensor>& inputs) {
  codegen::check_plan_inputs(c.plan, inputs);
  device_buffers d;
  for (size_t b = 0, in = 0; b < c.plan.buffers.size(); ++b) {
    const codegen::buffer_ref& r = c.plan.buffers[b];
    const size_t bytes = static_cast<size_t>(numel(r.shape)) * dtype_bytes(r.type);
    d.bufs.emplace_back(bytes);
    if (codegen::is_given(r.role)) d.bufs.back().upload(inputs[in++].bytes.data(), bytes);
    else d.bufs.back().fill_bytes(poison_byte);
  }
  for (buffer& b : d.bufs) d.ptr.push_back(b.data());
  return d;
}

// Launches every stage once in order; returns each stage's GPU time in ms (events).
inline std::vector<double> launch_all(const compiled& c, device_buffers& d) {
  std::vector<timer> timers(c.plan.stages.size());
  for (size_t s = 0; s < c.plan.stages.size(); ++s) {
    const codegen::stage& st = c.plan.stages[s];
    std::vector<void*> params;
    for (int32_t b : st.params) params.push_back(d.ptr[b]);
    timers[s].start();
    int e = c.launch[s](params.data(), static_cast<unsigned>(st.count), nullptr);
    timers[s].stop();
    if (e != 0) CONCORD_HIP_CHECK(static_cast<hipError_t>(e));
  }
  std::vector<double> ms;
  for (timer& t : timers) ms.push_back(t.elapsed_ms());
  return ms;
}

inline std::vector<tensor> download_outputs(const compiled& c, const device_buffers& d) {
  return codegen::collect_outputs(c.plan, [&](size_t b, tensor& t) { d.bufs[b].download(t.bytes.data(), t.bytes.size()); });
}

inline std::vector<tensor> run(const compiled& c, const std::vector<tensor>& inputs) {
  device_buffers d = prepare(c, inputs);
  launch_all(c, d);
  CONCORD_HIP_CHECK(hipDeviceSynchronize());
  return download_outputs(c, d);
}

inline std::vector<tensor> run(const program& p, const std::vector<tensor>& inputs) { return run(compile(codegen::make_plan(p)), inputs); }

}  // namespace concord::hip
