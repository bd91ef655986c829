// Vulkan backend: every stage of a kernel plan is emitted as a GLSL compute shader, compiled in
// process with glslang, validated, and dispatched in one command buffer (barriers between stages).
// f16 buffers use 16-bit storage when the device has it, else packed words (see glsl.hpp).
#pragma once
#include <concord/attention.hpp>
#include <concord/codegen/glsl.hpp>
#include <concord/vulkan/glsl.hpp>
#include <concord/vulkan/runtime.hpp>

namespace concord::vk {

struct compiled {
  codegen::kernel_plan plan;
  std::vector<std::string> sources;
  std::vector<std::shared_ptr<pipeline>> pipes;
};

// llvmpipe (lavapipe) ends an invocation's loops after this many iterations in total.
inline int64_t loop_limit(const device_info& di) {
  return di.device_type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 65535 : 0;
}

// Rejects DSL stages whose loops exceed the device's loop limit (a silent truncation otherwise).
inline void check_loops(const codegen::kernel_plan& kp, const device_info& di) {
  const int64_t limit = loop_limit(di);
  if (!limit) return;
  for (const codegen::stage& st : kp.stages) {
    if (const int64_t len = codegen::loop_length(kp, st); len > limit)
      throw backend_error("concord vulkan: stage " + st.name + " loops " + std::to_string(len) + " times per invocation; " + di.name +
                          " ends loops after " + std::to_string(limit) + " iterations");
  }
}

inline compiled compile(codegen::kernel_plan plan) {
  context& ctx = context::get();
  check_loops(plan, ctx.info());
  compiled c;
  c.plan = std::move(plan);
  // CONCORD_VK_NO_STORAGE16=1 forces the packed-f16 path (tests run it on devices that have 16-bit storage).
  const char* no16 = std::getenv("CONCORD_VK_NO_STORAGE16");
  codegen::glsl_emitter em(ctx.info().storage_buffer_16bit && !(no16 && *no16 == '1'), ctx.info().signed_zero_inf_nan_f32);
  for (const codegen::stage& st : c.plan.stages) {
    c.sources.push_back(em.emit_stage_source(c.plan, st));
    std::vector<uint32_t> spirv = compile_glsl(c.sources.back(), st.name);
    validate_spirv(spirv);
    // Stages whose lanes shuffle within subgroups (decode_stream) ask for full subgroups.
    const bool shuffles = st.group > 0 && (st.body.find("CC_SHFL_") != std::string::npos || st.body.find("CC_SUBGROUP_LANE") != std::string::npos);
    const uint32_t smax = std::max<uint32_t>(1, ctx.info().subgroup_max);
    c.pipes.push_back(ctx.make_pipeline(spirv, static_cast<uint32_t>(st.params.size()), 12, shuffles && st.group % smax == 0));
  }
  return c;
}

inline attention::device_caps caps() {
  const device_info& di = context::get().info();
  attention::device_caps d;
  d.backend = "vulkan";
  d.parallelism = di.device_type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 64 : 262144;
  d.max_accumulator = 1024;
  d.max_loop_iterations = loop_limit(di);
  d.dialect = "glsl";
  d.shared_bytes = di.max_group_size_x >= 128 ? di.max_shared_bytes : 0;
  d.max_buffer_bytes = static_cast<int64_t>(di.max_storage_range);
  d.subgroup = di.subgroup_shuffle ? static_cast<int64_t>(di.subgroup_min) : 0;
  // [[unroll]] on decode_stream's constant loops (GL_EXT_control_flow_attributes). H200 run 38,
  // NVIDIA's driver: MHA decode 32K 0.0711 -> 0.0427 ms, 128K 0.2495 -> 0.1338; GQA 4:1 32K one
  // workgroup per head 0.2070 -> 0.0753, one per group (now planned everywhere) 0.0667.
  d.unroll_hints = true;
  attention::tune_caps_from_env(d);
  d.notes = di.describe();
  return d;
}

struct device_buffers {
  std::vector<buffer> bufs;
};

inline device_buffers prepare(const compiled& c, const std::vector<tensor>& inputs) {
  codegen::check_plan_inputs(c.plan, inputs);
  context& ctx = context::get();
  device_buffers d;
  for (size_t b = 0, in = 0; b < c.plan.buffers.size(); ++b) {
    const codegen::buffer_ref& r = c.plan.buffers[b];
    const size_t bytes = static_cast<size_t>(numel(r.shape)) * dtype_bytes(r.type);
    d.bufs.push_back(ctx.alloc((bytes + 3) / 4 * 4));
    if (codegen::is_given(r.role)) {
      std::vector<uint8_t> padded(inputs[in++].bytes);
      padded.resize((bytes + 3) / 4 * 4, 0);
      d.bufs.back().upload(padded.data(), padded.size());
    } else {
      std::vector<uint8_t> poison((bytes + 3) / 4 * 4, poison_byte);
      d.bufs.back().upload(poison.data(), poison.size());
    }
  }
  return d;
}

// Runs every stage once in one submission; returns GPU nanoseconds per stage (or -1 entries).
inline std::vector<double> dispatch_all(const compiled& c, device_buffers& d) {
  std::vector<dispatch_cmd> cmds;
  for (size_t s = 0; s < c.plan.stages.size(); ++s) {
    const codegen::stage& st = c.plan.stages[s];
    dispatch_cmd cmd;
    cmd.pipe = c.pipes[s].get();
    for (int32_t b : st.params) cmd.buffers.push_back(&d.bufs[b]);
    const uint64_t per_group = st.group > 0 ? 1 : st.threads > 0 ? st.threads : codegen::glsl_local_size;  // cooperative: one workgroup per i
    const uint64_t groups = (static_cast<uint64_t>(st.count) + per_group - 1) / per_group;
    const uint32_t gx = static_cast<uint32_t>(std::min<uint64_t>(groups, 65535));
    const uint32_t gy = static_cast<uint32_t>((groups + gx - 1) / gx);
    const uint32_t push[3] = {static_cast<uint32_t>(st.count), gx * static_cast<uint32_t>(per_group), 0u};
    cmd.push.assign(reinterpret_cast<const uint8_t*>(push), reinterpret_cast<const uint8_t*>(push) + sizeof push);
    cmd.groups[0] = gx, cmd.groups[1] = gy, cmd.groups[2] = 1;
    cmds.push_back(std::move(cmd));
  }
  return context::get().run(cmds);
}

inline std::vector<tensor> download_outputs(const compiled& c, const device_buffers& d) {
  return codegen::collect_outputs(c.plan, [&](size_t b, tensor& t) {
    std::vector<uint8_t> raw((t.bytes.size() + 3) / 4 * 4);  // buffers are padded to whole words
    d.bufs[b].download(raw.data(), raw.size());
    std::memcpy(t.bytes.data(), raw.data(), t.bytes.size());
  });
}

inline std::vector<tensor> run(const compiled& c, const std::vector<tensor>& inputs) {
  device_buffers d = prepare(c, inputs);
  dispatch_all(c, d);
  return download_outputs(c, d);
}

inline std::vector<tensor> run(const program& p, const std::vector<tensor>& inputs) { return run(compile(codegen::make_plan(p)), inputs); }

}  // namespace concord::vk
