// 04: block-sparse attention on a synthetic long context with a planted needle. For every backend
// present: agreement with the float64 reference, kept fraction, tiles read (== kept tiles, the skip
// fires), the needle's block kept, and time against the same pipeline with every block kept.
#include <concord/cpu/runtime.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/backend.hpp>
#endif

#include <chrono>
#include <cstdio>

#include "../tests/attention_support.hpp"

namespace {

using namespace concord;

template <class Compile, class Run>
bool demo(const char* name, const attention::device_caps& dev, Compile compile, Run run) {
  attention::config c;
  c.heads = 8, c.kv_heads = 2, c.q_len = 1024, c.kv_len = 1024, c.head_dim = 64, c.block = 64, c.kv_type = dtype::f16;
  c.per_group = true, c.top_k = 2, c.window = 1, c.sinks = 1;
  const int64_t needle = 3;
  auto in = testing::attention_inputs(c, 42, needle);
  auto runner = [&](const codegen::kernel_plan& p, const std::vector<tensor>& i) { return run(compile(p), i); };
  auto r = testing::check_attention(runner, c, dev, in);
  auto timed = [&](attention::config cc) {
    auto comp = compile(attention::build(cc, dev).plan);
    run(comp, in);
    auto t0 = std::chrono::steady_clock::now();
    run(comp, in);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  attention::config dense = c;
  dense.dense = true;
  const double ts = timed(c), td = timed(dense);
  int64_t causal = 0;
  for (int64_t qb = 0; qb < c.q_blocks(); ++qb) causal += qb + 1;
  causal *= c.list_heads();
  bool needle_kept = true;
  for (int64_t lh = 0; lh < c.list_heads(); ++lh)
    for (int64_t qb = needle; qb < c.q_blocks(); ++qb) needle_kept = needle_kept && r.keep.template as<uint32_t>()[(lh * c.q_blocks() + qb) * c.kv_blocks() + needle];
  std::printf("  %-7s %s via %s: max error %.2g, keep mask %s; kept %.3f of causal blocks; tiles read %lld (expected %lld: each kept block once per workgroup of its list's heads); needle %s; "
              "sparse %.1f ms vs dense %.1f ms (%.2fx)\n",
              name, r.out_mismatches || r.keep_mismatches ? "DISAGREES" : "agrees with the reference", r.route.c_str(), r.max_err,
              r.keep_mismatches ? "differs" : "exact", static_cast<double>(r.kept_blocks) / causal, static_cast<long long>(r.tiles_read),
              static_cast<long long>(r.tiles_expected), needle_kept ? "kept" : "DROPPED", ts, td, ts / td);
  return !r.out_mismatches && !r.keep_mismatches && needle_kept;
}

}  // namespace

int main() {
  std::printf("block-sparse attention, 8 heads over 2 KV heads, 1024 tokens, D=64, f16 K/V, top-2 + window + sink, needle in block 3:\n");
  bool ok = demo("cpu", cpu::caps(), [](const codegen::kernel_plan& p) { return cpu::compile(p); }, [](const cpu::compiled& c, const std::vector<tensor>& i) { return cpu::run(c, i); });
#if CONCORD_WITH_VULKAN
  try {
    ok = demo("vulkan", vk::caps(), [](const codegen::kernel_plan& p) { return vk::compile(p); }, [](const vk::compiled& c, const std::vector<tensor>& i) { return vk::run(c, i); }) && ok;
  } catch (const backend_unavailable& e) {
    std::printf("  vulkan  not present: %s\n", e.what());
  }
#else
  std::printf("  vulkan  not built (Vulkan development files missing)\n");
#endif
  return ok ? 0 : 1;
}
