// Vulkan memory-path probe: where does a plain copy lose bandwidth on this device?
// Prints the memory types and the one storage buffers get, then times copies of 512 MiB
// (64 MiB on a CPU device; GPU timestamps, median of 10) that differ in one thing each: element width (u32 / uvec4),
// one element per invocation or a grid-stride loop, workgroup size; then concord's own copy graph
// and its decode attention stage, each as emitted and without the float-controls execution mode.
#include <concord/concord.hpp>
#include <concord/vulkan/backend.hpp>
#include <concord/vulkan/glsl.hpp>

#include "../tests/attention_support.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

using namespace concord;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string shader(int width, int local, bool stride) {
  const std::string t = width == 4 ? "uvec4" : "uint";
  std::string s = "#version 450\nlayout(local_size_x = " + std::to_string(local) + ") in;\n";
  s += "layout(push_constant) uniform pc_t { uint n; } pc;\n";
  s += "layout(std430, set = 0, binding = 0) readonly buffer A { " + t + " a[]; };\n";
  s += "layout(std430, set = 0, binding = 1) writeonly buffer B { " + t + " b[]; };\nvoid main() {\n";
  if (stride)
    s += "  for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) b[i] = a[i];\n}\n";
  else
    s += "  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x; if (i < pc.n) b[i] = a[i];\n}\n";
  return s;
}

}  // namespace

int main() {
  try {
    auto& ctx = vk::context::get();
    std::printf("%s\n%s", ctx.info().describe().c_str(), ctx.memory_report().c_str());
    const size_t bytes = size_t{1} << (ctx.info().device_type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 26 : 29);
    auto a = ctx.alloc(bytes), b = ctx.alloc(bytes);
    std::vector<uint32_t> host(bytes / 4);
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<uint32_t>(i * 2654435761u);
    a.upload(host.data(), bytes);
    struct variant {
      int width, local;
      bool stride;
      uint32_t groups;
    };
    const uint32_t sms = 132;
    std::vector<variant> vs = {{1, 256, false, 0}, {4, 256, false, 0}, {1, 1024, false, 0}, {4, 64, false, 0},
                               {1, 256, true, sms * 8}, {4, 256, true, sms * 8}, {4, 256, true, sms * 32}};
    for (const auto& v : vs) {
      const uint32_t n = static_cast<uint32_t>(bytes / 4 / v.width);
      auto spv = vk::compile_glsl(shader(v.width, v.local, v.stride), "probe");
      auto pipe = ctx.make_pipeline(spv, 2, 4);
      vk::dispatch_cmd c;
      c.pipe = pipe.get();
      c.buffers = {&a, &b};
      c.push.resize(4);
      std::memcpy(c.push.data(), &n, 4);
      const uint32_t total = (n + v.local - 1) / v.local;
      c.groups[0] = v.stride ? v.groups : std::min<uint32_t>(total, 32768);
      c.groups[1] = v.stride ? 1 : (total + c.groups[0] - 1) / c.groups[0];
      std::vector<double> t;
      ctx.run({c});
      for (int r = 0; r < 10; ++r) t.push_back(ctx.run({c})[0]);
      std::vector<vk::dispatch_cmd> ten(10, c);
      auto t10 = ctx.run(ten);
      const double ms = median(t) / 1e6;
      std::printf("copy %-5s local %4d %-12s groups %7u: %.4f ms  %.1f GB/s (10 in one submit: median %.4f ms)\n", v.width == 4 ? "uvec4" : "u32",
                  v.local, v.stride ? "grid-stride" : "one each", c.groups[0], ms, 2.0 * bytes / (ms / 1e3) / 1e9, median(t10) / 1e6);
    }
    auto drop_float_controls = [](std::string src) {
      const size_t a = src.find("spirv_execution_mode(");
      if (a != std::string::npos) src.erase(a, src.find('\n', a) - a + 1);
      return src;
    };
    auto replace_all = [](std::string src, const std::string& from, const std::string& to) {
      for (size_t k = 0; (k = src.find(from, k)) != std::string::npos; k += to.size()) src.replace(k, from.size(), to);
      return src;
    };
    struct source_variant {
      const char* label;
      std::function<std::string(std::string)> edit;
      uint32_t max_gx;
    };
    const std::vector<source_variant> variants = {
        {"as emitted", [](std::string x) { return x; }, 65535},
        {"no float-controls mode", drop_float_controls, 65535},
        {"x groups <= 32768", [](std::string x) { return x; }, 32768},
        {"buffers restrict", [&](std::string x) { return replace_all(x, ") buffer B", ") restrict buffer B"); }, 65535},
        {"output writeonly (copy only)", [&](std::string x) { return x.find("graph 'copy'") == std::string::npos ? x : replace_all(x, "binding = 1) buffer B", "binding = 1) writeonly buffer B"); }, 65535},
    };
    // Runs the whole plan once (earlier stages fill the inputs of `stage`), then times `stage` alone.
    auto time_variants = [&](const std::string& what, const codegen::kernel_plan& plan, const std::vector<tensor>& in, size_t stage) {
      vk::compiled c = vk::compile(plan);
      vk::device_buffers d = vk::prepare(c, in);
      vk::dispatch_all(c, d);
      const codegen::stage& st = plan.stages[stage];
      for (const auto& v : variants) {
        auto pipe = ctx.make_pipeline(vk::compile_glsl(v.edit(c.sources[stage]), "probe"), static_cast<uint32_t>(st.params.size()), 12);
        vk::dispatch_cmd cmd;
        cmd.pipe = pipe.get();
        for (int32_t b : st.params) cmd.buffers.push_back(&d.bufs[b]);
        const uint64_t per = st.group > 0 ? 1 : st.threads > 0 ? st.threads : codegen::glsl_local_size, groups = (static_cast<uint64_t>(st.count) + per - 1) / per;
        const uint32_t gx = static_cast<uint32_t>(std::min<uint64_t>(groups, v.max_gx)), gy = static_cast<uint32_t>((groups + gx - 1) / gx);
        const uint32_t push[3] = {static_cast<uint32_t>(st.count), gx * static_cast<uint32_t>(per), 0u};
        cmd.push.assign(reinterpret_cast<const uint8_t*>(push), reinterpret_cast<const uint8_t*>(push) + sizeof push);
        cmd.groups[0] = gx, cmd.groups[1] = gy;
        std::vector<double> t;
        ctx.run({cmd});
        for (int r = 0; r < 10; ++r) t.push_back(ctx.run({cmd})[0]);
        std::printf("%s, stage %s, %s (groups %u x %u): %.4f ms\n", what.c_str(), st.name.c_str(), v.label, gx, gy, median(t) / 1e6);
      }
    };
    {
      const int64_t n = static_cast<int64_t>(bytes / 4);
      graph g("copy");
      g.output("y", g.input<u32>("x", {n}) + 0u);
      auto raw0 = ctx.make_pipeline(vk::compile_glsl(shader(1, 256, false), "probe"), 2, 4);
      auto raw_cmd = [&] {
        vk::dispatch_cmd cmd;
        cmd.pipe = raw0.get();
        cmd.buffers = {&a, &b};
        const uint32_t nn = static_cast<uint32_t>(n);
        cmd.push.resize(4);
        std::memcpy(cmd.push.data(), &nn, 4);
        cmd.groups[0] = 32768, cmd.groups[1] = static_cast<uint32_t>(n / 256 / 32768);
        return cmd;
      };
      auto raw_check = [&](const char* after) {
        const vk::dispatch_cmd cmd = raw_cmd();
        std::vector<double> t;
        for (int r = 0; r < 5; ++r) t.push_back(ctx.run({cmd})[0]);
        std::string clock;
        if (FILE* f = popen("nvidia-smi --query-gpu=clocks.sm --format=csv,noheader 2>/dev/null", "r")) {
          char line[64] = {0};
          if (std::fgets(line, sizeof line, f)) clock = line;
          pclose(f);
          if (!clock.empty() && clock.back() == '\n') clock.pop_back();
        }
        std::printf("u32 probe copy after %s: %.4f ms (SM clock now: %s)\n", after, median(t) / 1e6, clock.empty() ? "n/a" : clock.c_str());
      };
      raw_check("the variants");
      auto plan = codegen::make_plan(lower(g));
      const tensor x = testing::make_input(dtype::u32, {n}, 3);
      raw_check("make_input");
      {
        vk::compiled c1 = vk::compile(plan);
        raw_check("vk::compile");
        vk::buffer extra = ctx.alloc(bytes);
        raw_check("one more alloc");
        extra.upload(host.data(), bytes);
        raw_check("its upload");
        vk::device_buffers d1 = vk::prepare(c1, {x});
        raw_check("vk::prepare");
        vk::dispatch_all(c1, d1);
        raw_check("vk::dispatch_all");
      }
      raw_check("freeing them");
      ctx.run(std::vector<vk::dispatch_cmd>(300, raw_cmd()));
      raw_check("300 copies in one submission");
      ctx.run(std::vector<vk::dispatch_cmd>(1000, raw_cmd()));
      raw_check("1000 more");
      time_variants("concord copy graph, same size", plan, {x}, 0);
      // Swap one thing at a time between the two: the buffers (and their data) or the shader.
      vk::compiled cc = vk::compile(plan);
      vk::device_buffers d = vk::prepare(cc, {x});
      auto time_cmd = [&](const char* what, vk::pipeline* pipe, vk::buffer* in, vk::buffer* out, bool concord_push) {
        vk::dispatch_cmd cmd;
        cmd.pipe = pipe;
        cmd.buffers = {in, out};
        const uint32_t groups = static_cast<uint32_t>(n / 256), gx = 32768, gy = groups / gx;
        const uint32_t push[3] = {static_cast<uint32_t>(n), gx * 256u, 0u};
        cmd.push.assign(reinterpret_cast<const uint8_t*>(push), reinterpret_cast<const uint8_t*>(push) + (concord_push ? 12 : 4));
        cmd.groups[0] = gx, cmd.groups[1] = gy;
        std::vector<double> t;
        ctx.run({cmd});
        for (int r = 0; r < 10; ++r) t.push_back(ctx.run({cmd})[0]);
        std::printf("%s: %.4f ms\n", what, median(t) / 1e6);
      };
      auto raw = ctx.make_pipeline(vk::compile_glsl(shader(1, 256, false), "probe"), 2, 4);
      time_cmd("probe u32 shader on the probe's buffers", raw.get(), &a, &b, false);
      time_cmd("probe u32 shader on concord's buffers (input from make_input)", raw.get(), &d.bufs[0], &d.bufs[1], false);
      time_cmd("concord copy shader on the probe's buffers", cc.pipes[0].get(), &a, &b, true);
      time_cmd("concord copy shader on concord's buffers", cc.pipes[0].get(), &d.bufs[0], &d.bufs[1], true);
      std::vector<uint32_t> xin(static_cast<size_t>(n));
      std::memcpy(xin.data(), x.bytes.data(), x.bytes.size());
      size_t zeros = 0;
      for (uint32_t v : xin) zeros += v == 0;
      std::printf("make_input u32: %zu of %zu words are 0; first words %08x %08x %08x %08x\n", zeros, xin.size(), xin[0], xin[1], xin[2], xin[3]);
    }
    {
      attention::config c;
      c.heads = 8, c.kv_heads = 8, c.q_len = 1, c.kv_len = 32768, c.head_dim = 128, c.block = 128, c.kv_type = dtype::f16, c.per_group = true, c.dense = true;
      auto p = attention::build(c, vk::caps());
      const auto in = testing::attention_inputs(c, 11);
      for (size_t st = 0; st < p.plan.stages.size(); ++st)
        if (p.plan.stages[st].name == "sparse_attend" || p.plan.stages[st].name == "sparse_combine")
          time_variants("decode 8 heads 32K D=128 f16, route " + p.chosen.variant + "/s" + std::to_string(p.chosen.splits), p.plan, in, st);
    }
    std::vector<uint32_t> back(bytes / 4);
    b.download(back.data(), bytes);
    std::printf("copy checked: %s\n", back == host ? "equal" : "MISMATCH");
    return back == host ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("vk_probe: %s\n", e.what());
    return 2;
  }
}
